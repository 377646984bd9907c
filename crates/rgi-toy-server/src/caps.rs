//! The asynchronous capabilities the toy lends: offload (the kit's
//! [`ThreadOffload`]), readiness (one [`PollerReadiness`] per server) and
//! after-response tasks (an [`AfterQueue`] per request, run once the
//! response is complete).

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rgi_async::{
    AfterError, AfterResponseService, AfterTask, Job, Offload, OffloadError, OffloadService,
    Readiness,
};
#[cfg(unix)]
use rgi_async::{
    Interest, ReadinessError, ReadinessService, Ready, Source, WaitAnyFuture, WaitAnyOutcome,
    WaitFuture, WaitOutcome,
};

use super::Fault;
use super::shared::Shared;
use super::shared::lock;
use rgi_conformance::rt::{AfterQueue, ThreadOffload};

/// The server's offload service: a thread per job, refused once `stop`
/// has begun (`RGIA-OFFLOAD-9`).
pub(crate) fn offload(fault: Option<Fault>, stopping: &Arc<AtomicBool>) -> Offload {
    let inner: Box<dyn OffloadService> = match fault {
        Some(Fault::InlineOffload) => Box::new(Inline),
        Some(Fault::HollowOffload) => Box::new(Hollow),
        Some(Fault::BlockingOffload) => Box::new(Blocking::default()),
        _ => Box::new(ThreadOffload::new()),
    };
    Offload::new(UntilStop {
        inner,
        stopping: Arc::clone(stopping),
        refuses: fault != Some(Fault::OffloadAfterShutdown),
    })
}

/// Refuses every job once `stop` has begun, unless
/// [`Fault::OffloadAfterShutdown`] is on.
struct UntilStop {
    inner: Box<dyn OffloadService>,
    stopping: Arc<AtomicBool>,
    refuses: bool,
}

impl OffloadService for UntilStop {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        if self.refuses && self.stopping.load(Ordering::SeqCst) {
            // Dropped unrun, so a future that kept waiting for it resolves
            // to `ShutDown` too.
            drop(job);
            return Err(OffloadError::ShutDown);
        }
        self.inner.execute(job)
    }
}

/// Runs every job on the calling thread: [`Fault::InlineOffload`].
#[derive(Debug)]
struct Inline;

impl OffloadService for Inline {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        job.run();
        Ok(())
    }
}

/// Refuses every job: [`Fault::HollowOffload`].
#[derive(Debug)]
struct Hollow;

impl OffloadService for Hollow {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        drop(job);
        Err(OffloadError::ShutDown)
    }
}

/// How many workers [`Fault::BlockingOffload`] has.
const BLOCKING_WORKERS: usize = 2;

/// How long [`Fault::BlockingOffload`] waits for a free worker before it
/// starts the job anyway, so that nothing hangs for ever on the fault.
const BLOCKING_PATIENCE: Duration = Duration::from_secs(30);

/// Two workers, and an `execute` that waits for one of them to be free:
/// [`Fault::BlockingOffload`].
#[derive(Debug, Default)]
struct Blocking {
    busy: Arc<(Mutex<usize>, Condvar)>,
}

/// Gives a [`Blocking`] worker back when its job ends (or never starts).
struct Release(Arc<(Mutex<usize>, Condvar)>);

impl Drop for Release {
    fn drop(&mut self) {
        let (busy, freed) = &*self.0;
        let mut count = lock(busy);
        *count = count.saturating_sub(1);
        drop(count);
        freed.notify_one();
    }
}

impl OffloadService for Blocking {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        let (busy, freed) = &*self.busy;
        let deadline = Instant::now() + BLOCKING_PATIENCE;
        let mut count = lock(busy);
        // The fault: it waits for capacity instead of answering Saturated.
        while *count >= BLOCKING_WORKERS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            count = freed
                .wait_timeout(count, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *count += 1;
        drop(count);
        let release = Release(Arc::clone(&self.busy));
        let spawned = thread::Builder::new()
            .name("toy-offload".into())
            .spawn(move || {
                let _release = release;
                job.run();
            });
        spawned.map(drop).map_err(|_| OffloadError::ShutDown)
    }
}

/// The server's readiness service, where the platform has one.
pub(crate) fn readiness(
    fault: Option<Fault>,
    stopping: &Arc<AtomicBool>,
) -> io::Result<Option<Readiness>> {
    #[cfg(unix)]
    {
        let poller: Arc<dyn ReadinessService> =
            Arc::new(rgi_conformance::rt::PollerReadiness::new()?);
        let faulty = matches!(
            fault,
            Some(
                Fault::NoReadinessTimeout
                    | Fault::ReadinessIgnoresReadiness
                    | Fault::EdgeTriggeredReadiness
                    | Fault::HangupIgnored
                    | Fault::FilesLookReady
                    | Fault::DroppedWaitsLinger
                    | Fault::WaitAnyWrongIndex
                    | Fault::ShutdownDrainsWaitedDescriptors
                    | Fault::LeakedWaitsKeepTheirNumber
                    | Fault::WaitsHoldDuplicates
            )
        );
        match fault {
            Some(fault) if faulty => Ok(Some(Readiness::new(Faulty {
                inner: poller,
                fault,
                ghosts: Ghosts::default(),
                numbers: Ghosts::default(),
                stopping: Arc::clone(stopping),
            }))),
            _ => Ok(Some(Readiness::from_arc(poller))),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (fault, stopping);
        Ok(None)
    }
}

/// The readiness faults, around the real poller.
#[cfg(unix)]
struct Faulty {
    inner: Arc<dyn ReadinessService>,
    fault: Fault,
    ghosts: Ghosts,
    /// [`Fault::LeakedWaitsKeepTheirNumber`]: the descriptor numbers that
    /// have a wait which was polled and not dropped yet.
    numbers: Ghosts,
    stopping: Arc<AtomicBool>,
}

/// [`Fault::DroppedWaitsLinger`]: the descriptors whose wait was dropped
/// before it resolved; the next wait on one of them sees no readiness.
#[cfg(unix)]
type Ghosts = Arc<Mutex<std::collections::HashSet<std::os::fd::RawFd>>>;

/// Leaves a ghost behind when its wait is dropped unresolved.
#[cfg(unix)]
struct Ghost {
    fd: std::os::fd::RawFd,
    ghosts: Ghosts,
    armed: bool,
}

#[cfg(unix)]
impl Drop for Ghost {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.ghosts).insert(self.fd);
        }
    }
}

/// [`Fault::LeakedWaitsKeepTheirNumber`]: gives a descriptor number back
/// when its wait is dropped; a leaked wait never gives it back.
#[cfg(unix)]
struct Claim {
    fd: std::os::fd::RawFd,
    numbers: Ghosts,
}

#[cfg(unix)]
impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.numbers).remove(&self.fd);
    }
}

/// [`Fault::ShutdownDrainsWaitedDescriptors`]: a duplicate of a waited-on
/// descriptor, read dry when its wait is dropped unresolved after `stop`
/// has begun.
#[cfg(unix)]
struct DrainAtStop {
    fd: Option<std::os::fd::OwnedFd>,
    stopping: Arc<AtomicBool>,
}

#[cfg(unix)]
impl Drop for DrainAtStop {
    fn drop(&mut self) {
        use std::io::Read as _;
        let Some(fd) = self.fd.take() else {
            return;
        };
        if !self.stopping.load(Ordering::SeqCst) {
            return;
        }
        // The fault: "cleaning up" the descriptors of cancelled requests.
        // Non-blocking first (a flag the application's descriptor shares),
        // so that the drain cannot hang the shutdown.
        let stream = std::os::unix::net::UnixStream::from(fd);
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let mut file = std::fs::File::from(std::os::fd::OwnedFd::from(stream));
        let mut buf = [0_u8; 4096];
        for _ in 0..256 {
            match file.read(&mut buf) {
                Ok(read) if read > 0 => {}
                _ => break,
            }
        }
    }
}

#[cfg(unix)]
impl ReadinessService for Faulty {
    fn wait<'a>(
        &self,
        source: Source<'a>,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        let inner = Arc::clone(&self.inner);
        let fault = self.fault;
        let ghosts = Arc::clone(&self.ghosts);
        let numbers = Arc::clone(&self.numbers);
        let stopping = Arc::clone(&self.stopping);
        Box::pin(async move {
            match fault {
                Fault::NoReadinessTimeout => inner.wait(source, interest, None).await,
                Fault::ReadinessIgnoresReadiness => {
                    inner.wait_any(Vec::new(), timeout).await?;
                    Ok(WaitOutcome::TimedOut)
                }
                Fault::EdgeTriggeredReadiness => {
                    match inner.wait(source, interest, Some(Duration::ZERO)).await? {
                        WaitOutcome::Ready(_) => {
                            inner.wait_any(Vec::new(), timeout).await?;
                            Ok(WaitOutcome::TimedOut)
                        }
                        _ => inner.wait(source, interest, timeout).await,
                    }
                }
                Fault::HangupIgnored => {
                    let started = std::time::Instant::now();
                    match inner.wait(source, interest, timeout).await? {
                        WaitOutcome::Ready(ready) if ready.is_hangup() || ready.is_error() => {
                            let left =
                                timeout.map(|timeout| timeout.saturating_sub(started.elapsed()));
                            inner.wait_any(Vec::new(), left).await?;
                            Ok(WaitOutcome::TimedOut)
                        }
                        other => Ok(other),
                    }
                }
                Fault::FilesLookReady => match inner.wait(source, interest, timeout).await {
                    Err(ReadinessError::Unpollable { .. }) => {
                        Ok(WaitOutcome::Ready(Ready::READABLE))
                    }
                    other => other,
                },
                Fault::DroppedWaitsLinger => {
                    let fd = source.as_raw();
                    if lock(&ghosts).remove(&fd) {
                        // The ghost of a dropped wait swallows this one.
                        inner.wait_any(Vec::new(), timeout).await?;
                        return Ok(WaitOutcome::TimedOut);
                    }
                    let mut ghost = Ghost {
                        fd,
                        ghosts,
                        armed: true,
                    };
                    let outcome = inner.wait(source, interest, timeout).await;
                    ghost.armed = false;
                    outcome
                }
                Fault::ShutdownDrainsWaitedDescriptors => {
                    let mut drain = DrainAtStop {
                        fd: source.borrowed().try_clone_to_owned().ok(),
                        stopping,
                    };
                    let outcome = inner.wait(source, interest, timeout).await;
                    drain.fd = None;
                    outcome
                }
                Fault::LeakedWaitsKeepTheirNumber => {
                    let fd = source.as_raw();
                    if !lock(&numbers).insert(fd) {
                        // The fault: the number still belongs to a wait that
                        // was never dropped, and this wait joins its stale
                        // registration, which never fires.
                        inner.wait_any(Vec::new(), timeout).await?;
                        return Ok(WaitOutcome::TimedOut);
                    }
                    let _claim = Claim { fd, numbers };
                    inner.wait(source, interest, timeout).await
                }
                Fault::WaitsHoldDuplicates => {
                    // The fault: a duplicate that lives as long as the
                    // future, which a leak makes forever.
                    let _duplicate = source.borrowed().try_clone_to_owned();
                    inner.wait(source, interest, timeout).await
                }
                _ => inner.wait(source, interest, timeout).await,
            }
        })
    }

    fn wait_any<'a>(
        &self,
        sources: Vec<(Source<'a>, Interest)>,
        timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        let inner = Arc::clone(&self.inner);
        let fault = self.fault;
        Box::pin(async move {
            match fault {
                Fault::NoReadinessTimeout => inner.wait_any(sources, None).await,
                Fault::ReadinessIgnoresReadiness => {
                    inner.wait_any(Vec::new(), timeout).await?;
                    Ok(WaitAnyOutcome::TimedOut)
                }
                Fault::EdgeTriggeredReadiness => {
                    match inner
                        .wait_any(sources.clone(), Some(Duration::ZERO))
                        .await?
                    {
                        WaitAnyOutcome::Ready(_) => {
                            inner.wait_any(Vec::new(), timeout).await?;
                            Ok(WaitAnyOutcome::TimedOut)
                        }
                        _ => inner.wait_any(sources, timeout).await,
                    }
                }
                Fault::HangupIgnored => {
                    let started = std::time::Instant::now();
                    match inner.wait_any(sources, timeout).await? {
                        WaitAnyOutcome::Ready(ready)
                            if ready
                                .iter()
                                .any(|(_, seen)| seen.is_hangup() || seen.is_error()) =>
                        {
                            let left =
                                timeout.map(|timeout| timeout.saturating_sub(started.elapsed()));
                            inner.wait_any(Vec::new(), left).await?;
                            Ok(WaitAnyOutcome::TimedOut)
                        }
                        other => Ok(other),
                    }
                }
                Fault::FilesLookReady => match inner.wait_any(sources, timeout).await {
                    Err(ReadinessError::Unpollable { .. }) => {
                        Ok(WaitAnyOutcome::Ready(vec![(0, Ready::READABLE)]))
                    }
                    other => other,
                },
                Fault::WaitAnyWrongIndex => {
                    let count = sources.len().max(1);
                    Ok(match inner.wait_any(sources, timeout).await? {
                        WaitAnyOutcome::Ready(ready) => WaitAnyOutcome::Ready(
                            ready
                                .into_iter()
                                .map(|(index, seen)| ((index + 1) % count, seen))
                                .collect(),
                        ),
                        other => other,
                    })
                }
                _ => inner.wait_any(sources, timeout).await,
            }
        })
    }
}

/// Where a request's after-response tasks stand.
enum Stage {
    /// The response is not complete: tasks wait in the queue (or, for
    /// [`Fault::AfterTaskPanicKillsServer`], in a list the toy runs
    /// itself).
    Queuing(AfterQueue, Vec<AfterTask>),
    /// The response is complete: a new task runs at once, on its own
    /// thread (`RGIA-AFTER-1`: "as soon as capacity allows").
    Complete,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Queuing(queue, own) => f
                .debug_tuple("Queuing")
                .field(queue)
                .field(&own.len())
                .finish(),
            Stage::Complete => f.write_str("Complete"),
        }
    }
}

/// A request's after-response service.
#[derive(Debug, Clone)]
pub(crate) struct After {
    stage: Arc<Mutex<Stage>>,
    server: Arc<Shared>,
}

impl After {
    pub(crate) fn new(server: Arc<Shared>) -> Self {
        After {
            stage: Arc::new(Mutex::new(Stage::Queuing(AfterQueue::new(), Vec::new()))),
            server,
        }
    }

    /// The response is complete: runs the queued tasks on a worker thread
    /// without waiting for them (`RGIA-AFTER-3`).
    pub(crate) fn complete(&self) {
        let (queue, own) = match std::mem::replace(&mut *lock(&self.stage), Stage::Complete) {
            Stage::Queuing(queue, own) => (queue, own),
            Stage::Complete => return,
        };
        for task in own {
            let _ran = self.run_now(task);
        }
        if queue.queued() == 0 {
            return;
        }
        match self.server.fault {
            Some(Fault::AfterTasksDropped) => drop(queue),
            _ => match queue.run() {
                Ok(handle) => self.server.track(handle),
                Err(err) => {
                    tracing::warn!(error = %err, "toy server: after-response tasks dropped");
                }
            },
        }
    }

    fn run_now(&self, task: AfterTask) -> Result<(), AfterError> {
        let server = Arc::clone(&self.server);
        let spawned = thread::Builder::new()
            .name("toy-after-response".into())
            .spawn(move || {
                if panic::catch_unwind(AssertUnwindSafe(task)).is_err() {
                    tracing::warn!("toy server: an after-response task panicked");
                    if server.fault == Some(Fault::AfterTaskPanicKillsServer) {
                        server.kill();
                    }
                }
            });
        match spawned {
            Ok(handle) => {
                self.server.track(handle);
                Ok(())
            }
            Err(_) => Err(AfterError::ShutDown),
        }
    }
}

impl AfterResponseService for After {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        if self.server.is_stopping() {
            if self.server.fault == Some(Fault::AfterShutdownLooksRejected) {
                // The fault: a refusal that blames a full queue.
                return Err(AfterError::Rejected { limit: 0 });
            }
            // RGIA-AFTER-5: refused, and distinct from `Rejected`.
            return Err(AfterError::ShutDown);
        }
        let mut stage = lock(&self.stage);
        match (&mut *stage, self.server.fault) {
            (Stage::Queuing(..), Some(Fault::AfterTasksBeforeResponse)) | (Stage::Complete, _) => {
                drop(stage);
                self.run_now(task)
            }
            (Stage::Queuing(_, own), Some(Fault::AfterTaskPanicKillsServer)) => {
                own.push(task);
                Ok(())
            }
            (Stage::Queuing(queue, _), _) => queue.spawn(task),
        }
    }
}
