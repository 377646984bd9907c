//! The blocking pool of an asynchronous server: a fixed set of worker
//! threads with a bounded queue, running offload jobs, switch continuations
//! and after-response tasks. Nothing here ever runs on an async thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rgi_async::{AfterError, AfterResponseService, AfterTask, Job, OffloadError, OffloadService};

use crate::queue::{PushRefused, WaitQueue};
use crate::worker::panic_message;

/// One unit of blocking work.
pub(crate) type Work = Box<dyn FnOnce() + Send>;

/// Why the pool did not take a piece of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds `capacity` items already.
    Full { capacity: usize },
    /// The server is shutting down.
    Closed,
}

/// The pool's shared queue; the threads are started by the server.
pub(crate) struct BlockingPool {
    queue: WaitQueue<Work>,
    capacity: usize,
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl BlockingPool {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: WaitQueue::new(),
            capacity,
        }
    }

    /// Queues `work` without waiting; refused when `capacity` items wait
    /// already or the pool is closed (the work is then dropped unrun, here).
    pub(crate) fn submit(&self, work: Work) -> Result<(), Refused> {
        match self.queue.push_bounded(work, self.capacity) {
            Ok(()) => Ok(()),
            Err((_, PushRefused::Full)) => Err(Refused::Full {
                capacity: self.capacity,
            }),
            Err((_, PushRefused::Closed)) => Err(Refused::Closed),
        }
    }

    /// One thread's loop: runs work until the pool is closed. A panic in
    /// one item is logged and the thread carries on (`[RGIA-OFFLOAD-7]`).
    pub(crate) fn run_thread(&self) {
        while let Some(work) = self.queue.next() {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(work)) {
                tracing::error!(error = %panic_message(payload.as_ref()), "a blocking job panicked");
            }
        }
    }

    /// Refuses new work and drops what is queued unrun, so that offload
    /// futures resolve to `ShutDown` (`[RGIA-OFFLOAD-9]`); running items
    /// finish and the threads then return.
    pub(crate) fn close(&self) {
        let dropped = self.queue.close_and_take();
        for work in dropped {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(work))) {
                tracing::error!(error = %panic_message(payload.as_ref()), "dropping a queued job panicked");
            }
        }
    }
}

/// The `Offload` capability over the pool.
#[derive(Debug)]
pub(crate) struct PoolOffload(pub(crate) Arc<BlockingPool>);

impl OffloadService for PoolOffload {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        self.0
            .submit(Box::new(move || job.run()))
            .map_err(|refused| match refused {
                Refused::Full { capacity } => OffloadError::Saturated { capacity },
                Refused::Closed => OffloadError::ShutDown,
            })
    }
}

/// The after-response tasks of one request: held until its response is
/// complete, then queued on the pool; a task spawned after that is queued at
/// once.
pub(crate) struct AfterTasks {
    pool: Arc<BlockingPool>,
    /// `None` once the response is complete.
    held: Mutex<Option<Vec<AfterTask>>>,
    limit: usize,
}

impl std::fmt::Debug for AfterTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfterTasks")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl AfterTasks {
    pub(crate) fn new(pool: Arc<BlockingPool>, limit: usize) -> Self {
        Self {
            pool,
            held: Mutex::new(Some(Vec::new())),
            limit,
        }
    }

    fn held(&self) -> MutexGuard<'_, Option<Vec<AfterTask>>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The response is complete (or abandoned): the held tasks go to the
    /// pool; one the pool refuses is logged and dropped unrun.
    pub(crate) fn release(&self) {
        let tasks = self.held().take().unwrap_or_default();
        for task in tasks {
            if let Err(refused) = self.pool.submit(task) {
                tracing::warn!(?refused, "an after-response task was dropped unrun");
            }
        }
    }
}

impl AfterResponseService for AfterTasks {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        let mut held = self.held();
        match held.as_mut() {
            Some(tasks) if tasks.len() >= self.limit => {
                Err(AfterError::Rejected { limit: self.limit })
            }
            Some(tasks) => {
                tasks.push(task);
                Ok(())
            }
            None => {
                drop(held);
                self.pool.submit(task).map_err(|refused| match refused {
                    Refused::Full { capacity } => AfterError::Rejected { limit: capacity },
                    Refused::Closed => AfterError::ShutDown,
                })
            }
        }
    }
}
