//! After-response tasks on tokio's blocking threads (spec/rgi-async.md §11,
//! RGIA-AFTER).
//!
//! One [`AfterResponseTasks`] per host holds the cap, the queue and the
//! workers; each request gets a [`RequestTasks`] whose
//! [`AfterResponse`] handle keeps the request's tasks until the response is
//! complete, then hands them to the queue. Workers are tokio blocking
//! threads (never a runtime worker, so never a loop thread), at most
//! [`AfterConfig::workers`] at once, each running queued tasks one after
//! another with panics caught.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rgi_async::{AfterError, AfterResponse, AfterResponseService, AfterTask};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::runtime::TokioContext;
use super::shutdown::Shutdown;

/// Limits of [`AfterResponseTasks`].
///
/// # Examples
///
/// ```
/// use rgi_tower::caps::AfterConfig;
///
/// let config = AfterConfig { max_tasks: 64, ..AfterConfig::default() };
/// assert_eq!(config.workers, AfterConfig::default().workers);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterConfig {
    /// Tasks accepted and not yet finished (waiting for their response,
    /// queued or running), over all requests; `spawn` beyond it answers
    /// [`AfterError::Rejected`] (`[RGIA-AFTER-4]`). Default 1024.
    pub max_tasks: usize,
    /// Blocking threads running tasks at once. Default 4.
    pub workers: usize,
}

impl Default for AfterConfig {
    fn default() -> Self {
        AfterConfig {
            max_tasks: 1024,
            workers: 4,
        }
    }
}

/// The host's after-response tasks: what backs every request's
/// [`AfterResponse`] handle.
///
/// Once the [`Shutdown`] it listens to is triggered, `spawn` answers
/// [`AfterError::ShutDown`], tasks not yet started are dropped unrun (and
/// counted), and [`AfterResponseTasks::drain`] waits for the running ones up
/// to a grace period (`[RGIA-AFTER-5]`). Tasks are at most once: never
/// retried.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use rgi_tower::caps::{AfterConfig, AfterResponseTasks, Shutdown, TokioContext};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
/// let context = TokioContext::new(runtime.handle().clone())?;
/// let shutdown = Shutdown::new();
/// let tasks = AfterResponseTasks::new(&context, AfterConfig::default(), shutdown.clone());
///
/// let request = tasks.request();
/// let (ran, done) = mpsc::channel();
/// request.handle().spawn(move || ran.send("resized").unwrap_or(()))?;
/// assert!(done.try_recv().is_err(), "waits for the response");
/// request.complete(); // the response's last byte went out
/// assert_eq!(done.recv_timeout(Duration::from_secs(5))?, "resized");
///
/// shutdown.trigger();
/// let report = runtime.block_on(tasks.drain(Duration::from_secs(1)));
/// assert_eq!((report.dropped, report.still_running), (0, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AfterResponseTasks {
    runner: Arc<Runner>,
}

/// The queue, the workers and the counters.
struct Runner {
    blocking: Handle,
    config: AfterConfig,
    shutdown: Shutdown,
    /// Tasks accepted and neither finished nor dropped.
    accepted: AtomicUsize,
    queue: Mutex<Queue>,
    /// Notified whenever a worker finds nothing left to do.
    idle: Notify,
    ran: AtomicU64,
    panicked: AtomicU64,
    dropped: AtomicU64,
}

/// Tasks whose response is complete, and the workers taking them.
#[derive(Default)]
struct Queue {
    tasks: VecDeque<AfterTask>,
    workers: usize,
    running: usize,
}

/// Counters of [`AfterResponseTasks`], for the host's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AfterStats {
    /// Tasks accepted and not yet finished (waiting for their response,
    /// queued or running).
    pub pending: usize,
    /// Tasks queued for a worker.
    pub queued: usize,
    /// Tasks running now.
    pub running: usize,
    /// Tasks that ran to their end, panics included.
    pub ran: u64,
    /// Tasks that panicked (each logged).
    pub panicked: u64,
    /// Tasks dropped unrun at shutdown.
    pub dropped: u64,
}

/// What [`AfterResponseTasks::drain`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Tasks dropped unrun so far, because the host was shutting down.
    pub dropped: u64,
    /// Tasks still running when the grace period ended.
    pub still_running: usize,
}

impl AfterResponseTasks {
    /// The host's tasks, on `context`'s blocking threads, ending with
    /// `shutdown`.
    #[must_use]
    pub fn new(context: &TokioContext, config: AfterConfig, shutdown: Shutdown) -> Self {
        AfterResponseTasks {
            runner: Arc::new(Runner {
                blocking: context.handle().clone(),
                config: AfterConfig {
                    workers: config.workers.max(1),
                    ..config
                },
                shutdown,
                accepted: AtomicUsize::new(0),
                queue: Mutex::new(Queue::default()),
                idle: Notify::new(),
                ran: AtomicU64::new(0),
                panicked: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// A new request's tasks: give its [`RequestTasks::handle`] to the
    /// application, and complete (or drop) it when the response is
    /// complete. Costs one allocation.
    #[must_use]
    pub fn request(&self) -> RequestTasks {
        RequestTasks {
            request: Arc::new(Request {
                runner: Arc::clone(&self.runner),
                waiting: Mutex::new(Some(Vec::new())),
            }),
        }
    }

    /// The limits in force.
    #[must_use]
    pub fn config(&self) -> AfterConfig {
        self.runner.config
    }

    /// The counters now.
    #[must_use]
    pub fn stats(&self) -> AfterStats {
        let queue = self.runner.lock_queue();
        AfterStats {
            pending: self.runner.accepted.load(Ordering::Acquire),
            queued: queue.tasks.len(),
            running: queue.running,
            ran: self.runner.ran.load(Ordering::Relaxed),
            panicked: self.runner.panicked.load(Ordering::Relaxed),
            dropped: self.runner.dropped.load(Ordering::Relaxed),
        }
    }

    /// At shutdown: drops the queued tasks unrun, waits up to `grace` for
    /// the running ones, and logs what it dropped and left running
    /// (`[RGIA-AFTER-5]`). Call it once the [`Shutdown`] was triggered;
    /// before, it triggers nothing and only waits for the queue to empty.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the waiting only.
    pub async fn drain(&self, grace: Duration) -> DrainReport {
        if self.runner.shutdown.is_triggered() {
            let unrun: Vec<AfterTask> = self.runner.lock_queue().tasks.drain(..).collect();
            self.runner.drop_unrun(unrun.len());
        }
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.runner.idle.notified();
            let busy = {
                let queue = self.runner.lock_queue();
                queue.running + queue.tasks.len()
            };
            if busy == 0 || tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        let report = DrainReport {
            dropped: self.runner.dropped.load(Ordering::Relaxed),
            still_running: self.runner.lock_queue().running,
        };
        if report.dropped > 0 || report.still_running > 0 {
            tracing::warn!(
                dropped = report.dropped,
                still_running = report.still_running,
                "after-response tasks lost at shutdown"
            );
        }
        report
    }
}

impl fmt::Debug for AfterResponseTasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterResponseTasks")
            .field("config", &self.runner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Runner {
    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        // A task's panic is caught outside the lock, so poisoning can only
        // come from a bug here; the queue's state stays consistent anyway.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one slot under the cap.
    fn admit(&self) -> Result<(), AfterError> {
        if self.shutdown.is_triggered() {
            return Err(AfterError::ShutDown);
        }
        let limit = self.config.max_tasks;
        self.accepted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < limit).then_some(now + 1)
            })
            .map(drop)
            .map_err(|_| AfterError::Rejected { limit })
    }

    /// Counts `count` tasks dropped unrun and frees their slots.
    fn drop_unrun(&self, count: usize) {
        if count > 0 {
            self.dropped.fetch_add(count as u64, Ordering::Relaxed);
            self.accepted.fetch_sub(count, Ordering::AcqRel);
        }
    }

    /// Gives a worker slot back under the lock that saw the queue empty,
    /// so that a task queued right after finds a free slot and starts a
    /// worker of its own.
    fn leave(&self, mut queue: MutexGuard<'_, Queue>) {
        queue.workers -= 1;
        let idle = queue.running == 0 && queue.tasks.is_empty();
        drop(queue);
        if idle {
            self.idle.notify_waiters();
        }
    }

    /// Queues tasks whose response is complete, starting workers as
    /// needed; at shutdown drops them instead.
    fn enqueue(self: &Arc<Self>, tasks: Vec<AfterTask>) {
        if tasks.is_empty() {
            return;
        }
        if self.shutdown.is_triggered() {
            self.drop_unrun(tasks.len());
            return;
        }
        let mut queue = self.lock_queue();
        queue.tasks.extend(tasks);
        let wanted = queue.tasks.len().min(self.config.workers);
        let starting = wanted.saturating_sub(queue.workers);
        queue.workers += starting;
        drop(queue);
        for _ in 0..starting {
            let worker = Worker {
                runner: Arc::clone(self),
                holds_slot: true,
            };
            // A runtime shutting down drops the closure unrun; `Worker`'s
            // drop then gives the worker slot back.
            drop(self.blocking.spawn_blocking(move || worker.work()));
        }
    }
}

/// One blocking thread's turn at the queue; it holds a worker slot until
/// it finds the queue empty (or, never run, until it is dropped).
struct Worker {
    runner: Arc<Runner>,
    holds_slot: bool,
}

impl Worker {
    fn work(mut self) {
        loop {
            let task = {
                let mut queue = self.runner.lock_queue();
                if self.runner.shutdown.is_triggered() {
                    let unrun = queue.tasks.len();
                    queue.tasks.clear();
                    self.holds_slot = false;
                    self.runner.leave(queue);
                    self.runner.drop_unrun(unrun);
                    return;
                }
                let Some(task) = queue.tasks.pop_front() else {
                    self.holds_slot = false;
                    self.runner.leave(queue);
                    return;
                };
                queue.running += 1;
                task
            };
            if panic::catch_unwind(AssertUnwindSafe(task)).is_err() {
                self.runner.panicked.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("an after-response task panicked; the panic was contained");
            }
            self.runner.ran.fetch_add(1, Ordering::Relaxed);
            self.runner.accepted.fetch_sub(1, Ordering::AcqRel);
            self.runner.lock_queue().running -= 1;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.holds_slot {
            self.runner.leave(self.runner.lock_queue());
        }
    }
}

/// One request's tasks: held until its response is complete.
///
/// Give [`RequestTasks::handle`] to the application (in the request's
/// `Capabilities`); call [`RequestTasks::complete`], or drop it, once the
/// response's last byte was handed to the transport or the response ended
/// abnormally (`[RGIA-AFTER-1]`). A task spawned through the handle after
/// that (from a body's drop, an offload job or another task) is queued at
/// once.
pub struct RequestTasks {
    request: Arc<Request>,
}

/// The request's side of the handle.
struct Request {
    runner: Arc<Runner>,
    /// `Some` until the response is complete.
    waiting: Mutex<Option<Vec<AfterTask>>>,
}

impl RequestTasks {
    /// The application's handle to this request's tasks.
    #[must_use]
    pub fn handle(&self) -> AfterResponse {
        AfterResponse::from_arc(Arc::clone(&self.request) as Arc<dyn AfterResponseService>)
    }

    /// The response is complete: the request's tasks go to the workers,
    /// without waiting for them (`[RGIA-AFTER-3]`).
    pub fn complete(self) {
        drop(self);
    }
}

impl Drop for RequestTasks {
    fn drop(&mut self) {
        let tasks = self
            .request
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(tasks) = tasks {
            self.request.runner.enqueue(tasks);
        }
    }
}

impl fmt::Debug for RequestTasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = self
            .request
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, Vec::len);
        f.debug_struct("RequestTasks")
            .field("waiting", &waiting)
            .finish()
    }
}

impl AfterResponseService for Request {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        self.runner.admit()?;
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        match waiting.as_mut() {
            Some(tasks) => tasks.push(task),
            None => {
                drop(waiting);
                self.runner.enqueue(vec![task]);
            }
        }
        Ok(())
    }
}

impl Drop for Request {
    /// The last handle is gone with tasks still waiting: only possible if
    /// the request's [`RequestTasks`] was never completed nor dropped
    /// (leaked), so nothing would ever run them.
    fn drop(&mut self) {
        let unrun = self
            .waiting
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map_or(0, |tasks| tasks.len());
        self.runner.drop_unrun(unrun);
    }
}
