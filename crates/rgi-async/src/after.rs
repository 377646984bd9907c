//! Work that runs after the response is complete (spec/rgi-async.md,
//! "After-response tasks").

use std::fmt;
use std::sync::Arc;

/// Why an after-response task was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AfterError {
    /// The server's queue of after-response tasks is full.
    #[error("after-response task rejected: {limit} tasks already queued")]
    Rejected {
        /// How many tasks the server queues at most.
        limit: usize,
    },
    /// The server is shutting down and accepts no more tasks.
    #[error("server shutting down; after-response task not accepted")]
    ShutDown,
}

/// An after-response task as the server receives it.
pub type AfterTask = Box<dyn FnOnce() + Send + 'static>;

/// The server's side of [`AfterResponse`].
///
/// The server runs each accepted task on its blocking threads once the
/// response is complete (its last byte handed to the transport), even if the
/// client disconnected. At shutdown it stops accepting tasks, waits for
/// running ones up to a grace period and drops queued ones. Tasks are not
/// durable: there is no retry.
pub trait AfterResponseService: Send + Sync {
    /// Accepts `task` to run after the current response.
    ///
    /// # Errors
    ///
    /// [`AfterError::Rejected`] when the queue is full;
    /// [`AfterError::ShutDown`] during shutdown. The task is dropped unrun.
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError>;
}

/// A handle for work that should happen after the response is sent
/// (rendering other image sizes, sending mail, warming a cache), so the
/// client does not wait for it.
///
/// Its service is per request: a server builds one for each request's
/// [`Capabilities`](crate::Capabilities).
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
/// use rgi_async::{AfterError, AfterResponse, AfterResponseService, AfterTask};
///
/// /// Runs the tasks when the response is complete.
/// #[derive(Default)]
/// struct Later(Mutex<Vec<AfterTask>>);
///
/// impl AfterResponseService for Later {
///     fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
///         self.0.lock().map_err(|_| AfterError::ShutDown)?.push(task);
///         Ok(())
///     }
/// }
///
/// let after = AfterResponse::new(Later::default());
/// after.spawn(|| { /* resize the uploaded image */ })?;
/// # Ok::<(), AfterError>(())
/// ```
#[derive(Clone)]
pub struct AfterResponse {
    service: Arc<dyn AfterResponseService>,
}

impl AfterResponse {
    /// A handle over `service` (server side).
    pub fn new(service: impl AfterResponseService + 'static) -> Self {
        AfterResponse {
            service: Arc::new(service),
        }
    }

    /// A handle over a shared `service` (server side).
    pub fn from_arc(service: Arc<dyn AfterResponseService>) -> Self {
        AfterResponse { service }
    }

    /// Runs `task` on the server's blocking threads after the response is
    /// complete.
    ///
    /// # Errors
    ///
    /// [`AfterError::Rejected`] when the server's queue is full,
    /// [`AfterError::ShutDown`] during shutdown; `task` is then dropped
    /// without running.
    pub fn spawn(&self, task: impl FnOnce() + Send + 'static) -> Result<(), AfterError> {
        self.service.spawn(Box::new(task))
    }
}

impl fmt::Debug for AfterResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterResponse").finish_non_exhaustive()
    }
}
