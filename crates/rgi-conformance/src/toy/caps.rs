//! The asynchronous capabilities the toy lends: offload (the kit's
//! [`ThreadOffload`]), readiness (one [`PollerReadiness`] per server) and
//! after-response tasks (an [`AfterQueue`] per request, run once the
//! response is complete).

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rgi_async::{
    AfterError, AfterResponseService, AfterTask, Interest, Job, Offload, OffloadError,
    OffloadService, Readiness, ReadinessService, Source, WaitAnyFuture, WaitFuture,
};

use super::Fault;
use super::conn::lock;
use super::server::Shared;
use crate::rt::{AfterQueue, ThreadOffload};

/// The server's offload service.
pub(crate) fn offload(fault: Option<Fault>) -> Offload {
    if fault == Some(Fault::InlineOffload) {
        return Offload::new(Inline);
    }
    Offload::new(ThreadOffload::new())
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

/// The server's readiness service, where the platform has one.
pub(crate) fn readiness(fault: Option<Fault>) -> io::Result<Option<Readiness>> {
    #[cfg(unix)]
    {
        let poller: Arc<dyn ReadinessService> = Arc::new(crate::rt::PollerReadiness::new()?);
        if fault == Some(Fault::NoReadinessTimeout) {
            return Ok(Some(Readiness::new(Timeless(poller))));
        }
        Ok(Some(Readiness::from_arc(poller)))
    }
    #[cfg(not(unix))]
    {
        let _ = fault;
        Ok(None)
    }
}

/// Forwards every wait without its timeout: [`Fault::NoReadinessTimeout`].
struct Timeless(Arc<dyn ReadinessService>);

impl ReadinessService for Timeless {
    fn wait<'a>(
        &self,
        source: Source<'a>,
        interest: Interest,
        _timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        self.0.wait(source, interest, None)
    }

    fn wait_any<'a>(
        &self,
        sources: Vec<(Source<'a>, Interest)>,
        _timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        self.0.wait_any(sources, None)
    }
}

/// Where a request's after-response tasks stand.
#[derive(Debug)]
enum Stage {
    /// The response is not complete: tasks wait in the queue.
    Queuing(AfterQueue),
    /// The response is complete: a new task runs at once, on its own
    /// thread (`RGIA-AFTER-1`: "as soon as capacity allows").
    Complete,
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
            stage: Arc::new(Mutex::new(Stage::Queuing(AfterQueue::new()))),
            server,
        }
    }

    /// The response is complete: runs the queued tasks on a worker thread
    /// without waiting for them (`RGIA-AFTER-3`).
    pub(crate) fn complete(&self) {
        let queue = match std::mem::replace(&mut *lock(&self.stage), Stage::Complete) {
            Stage::Queuing(queue) => queue,
            Stage::Complete => return,
        };
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
        let spawned = thread::Builder::new()
            .name("toy-after-response".into())
            .spawn(move || {
                if panic::catch_unwind(AssertUnwindSafe(task)).is_err() {
                    tracing::warn!("toy server: an after-response task panicked");
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
        let stage = lock(&self.stage);
        match (&*stage, self.server.fault) {
            (Stage::Queuing(_), Some(Fault::AfterTasksBeforeResponse)) | (Stage::Complete, _) => {
                drop(stage);
                self.run_now(task)
            }
            (Stage::Queuing(queue), _) => queue.spawn(task),
        }
    }
}
