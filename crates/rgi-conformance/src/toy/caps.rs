//! The asynchronous capabilities the toy lends: offload (the kit's
//! [`ThreadOffload`]), readiness (one [`PollerReadiness`] per server) and
//! after-response tasks (an [`AfterQueue`] per request, run once the
//! response is complete).

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread;
#[cfg(unix)]
use std::time::Duration;

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
use super::conn::lock;
use super::server::Shared;
use crate::rt::{AfterQueue, ThreadOffload};

/// The server's offload service.
pub(crate) fn offload(fault: Option<Fault>) -> Offload {
    match fault {
        Some(Fault::InlineOffload) => Offload::new(Inline),
        Some(Fault::HollowOffload) => Offload::new(Hollow),
        _ => Offload::new(ThreadOffload::new()),
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

/// The server's readiness service, where the platform has one.
pub(crate) fn readiness(fault: Option<Fault>) -> io::Result<Option<Readiness>> {
    #[cfg(unix)]
    {
        let poller: Arc<dyn ReadinessService> = Arc::new(crate::rt::PollerReadiness::new()?);
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
            )
        );
        match fault {
            Some(fault) if faulty => Ok(Some(Readiness::new(Faulty {
                inner: poller,
                fault,
                ghosts: Ghosts::default(),
            }))),
            _ => Ok(Some(Readiness::from_arc(poller))),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = fault;
        Ok(None)
    }
}

/// The readiness faults, around the real poller.
#[cfg(unix)]
struct Faulty {
    inner: Arc<dyn ReadinessService>,
    fault: Fault,
    ghosts: Ghosts,
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
