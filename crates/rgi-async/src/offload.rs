//! Running blocking work off the event loop (spec/rgi-async.md, "Offload").

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// Why offloaded work produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffloadError {
    /// The closure panicked; the panic was caught and never unwound into the
    /// server.
    #[error("offloaded job panicked: {message}")]
    Panicked {
        /// The panic's message (its payload, when that is a string).
        message: String,
    },
    /// The service's bounded queue is full, or the share of it that the
    /// request's connection may use is taken; the job was not accepted.
    #[error("offload service saturated (capacity {capacity})")]
    Saturated {
        /// The bound that refused the job: how many jobs the service runs
        /// or queues at most, or, when a server caps each connection's
        /// share (so one HTTP/2 connection cannot take the whole pool),
        /// that per-connection cap.
        capacity: usize,
    },
    /// The server is shutting down; the job was dropped without running.
    #[error("offload service shut down before the job ran")]
    ShutDown,
}

/// One unit of blocking work handed to an [`OffloadService`].
///
/// The service runs it with [`Job::run`] on one of its blocking threads, or
/// drops it unrun (at shutdown); dropping a job unrun makes the waiting
/// [`OffloadFuture`] resolve to [`OffloadError::ShutDown`]. Jobs made by
/// [`Offload::run`] catch their closure's panics, so `run` does not unwind.
pub struct Job {
    work: Box<dyn FnOnce() + Send>,
}

impl Job {
    /// A job that calls `work`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let flag = Arc::clone(&ran);
    /// let job = rgi_async::Job::new(move || flag.store(true, Ordering::SeqCst));
    /// job.run();
    /// assert!(ran.load(Ordering::SeqCst));
    /// ```
    pub fn new(work: impl FnOnce() + Send + 'static) -> Self {
        Job {
            work: Box::new(work),
        }
    }

    /// Runs the job on the calling thread (server side: a blocking thread,
    /// never the event loop).
    pub fn run(self) {
        (self.work)();
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

/// The server's pool of blocking threads, as applications see it through
/// [`Offload`].
///
/// # Examples
///
/// A service with one thread per job (a real server bounds and reuses its
/// threads):
///
/// ```
/// use rgi_async::{Job, OffloadError, OffloadService};
///
/// struct ThreadPerJob;
///
/// impl OffloadService for ThreadPerJob {
///     fn execute(&self, job: Job) -> Result<(), OffloadError> {
///         std::thread::spawn(move || job.run());
///         Ok(())
///     }
/// }
/// ```
pub trait OffloadService: Send + Sync {
    /// Accepts `job` to run on a blocking thread, now or after the jobs
    /// queued before it. It never blocks the caller and never queues without
    /// bound.
    ///
    /// # Errors
    ///
    /// [`OffloadError::Saturated`] when the bounded queue is full, or
    /// [`OffloadError::ShutDown`] once the server stops accepting work; the
    /// job is then dropped unrun.
    fn execute(&self, job: Job) -> Result<(), OffloadError>;
}

/// A handle to the server's blocking threads: the application's way to run
/// blocking code (DNS lookups, file systems, synchronous libraries) without
/// blocking the event loop.
///
/// # Examples
///
/// ```
/// # struct ThreadPerJob;
/// # impl rgi_async::OffloadService for ThreadPerJob {
/// #     fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
/// #         std::thread::spawn(move || job.run());
/// #         Ok(())
/// #     }
/// # }
/// use std::net::ToSocketAddrs;
///
/// let offload = rgi_async::Offload::new(ThreadPerJob);
/// // Inside an async body: `let addrs = lookup.await??;`
/// let lookup = offload.run(|| "localhost:80".to_socket_addrs().map(Vec::from_iter));
/// # drop(lookup);
/// ```
#[derive(Clone)]
pub struct Offload {
    service: Arc<dyn OffloadService>,
}

impl Offload {
    /// A handle over `service` (server side).
    pub fn new(service: impl OffloadService + 'static) -> Self {
        Offload {
            service: Arc::new(service),
        }
    }

    /// A handle over a shared `service` (server side).
    pub fn from_arc(service: Arc<dyn OffloadService>) -> Self {
        Offload { service }
    }

    /// Runs `work` on one of the server's blocking threads; the future
    /// resolves to its result.
    ///
    /// A panic in `work` is caught and becomes [`OffloadError::Panicked`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels the job: if it has not started it is
    /// skipped; if it is running it finishes and its result is discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// # struct ThreadPerJob;
    /// # impl rgi_async::OffloadService for ThreadPerJob {
    /// #     fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
    /// #         std::thread::spawn(move || job.run());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(&waker)) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// use rgi_async::{Offload, OffloadError};
    ///
    /// let offload = Offload::new(ThreadPerJob);
    /// assert_eq!(block_on(offload.run(|| 6 * 7)), Ok(42));
    /// let failed = block_on(offload.run(|| -> u32 { panic!("no answer") }));
    /// assert_eq!(failed, Err(OffloadError::Panicked { message: "no answer".into() }));
    /// ```
    pub fn run<F, T>(&self, work: F) -> OffloadFuture<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let shared = Arc::new(Shared {
            cancelled: AtomicBool::new(false),
            slot: Mutex::new(Slot {
                result: None,
                waker: None,
            }),
        });
        let task = Task {
            shared: Arc::clone(&shared),
            work: Some(work),
        };
        match self.service.execute(Job::new(move || task.run())) {
            Ok(()) => OffloadFuture {
                state: FutureState::Waiting(shared),
            },
            Err(err) => {
                // The service refused the job; should it have kept it
                // anyway, it must not run.
                shared.cancelled.store(true, Ordering::SeqCst);
                OffloadFuture {
                    state: FutureState::Refused(err),
                }
            }
        }
    }
}

impl fmt::Debug for Offload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Offload").finish_non_exhaustive()
    }
}

/// The one-shot channel between a job and its future.
struct Shared<T> {
    cancelled: AtomicBool,
    slot: Mutex<Slot<T>>,
}

struct Slot<T> {
    result: Option<Result<T, OffloadError>>,
    waker: Option<Waker>,
}

impl<T> Shared<T> {
    fn complete(&self, result: Result<T, OffloadError>) {
        let waker = {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The job side: runs the closure, or reports `ShutDown` if it is dropped
/// unrun.
struct Task<F, T> {
    shared: Arc<Shared<T>>,
    work: Option<F>,
}

impl<F: FnOnce() -> T, T> Task<F, T> {
    fn run(mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        if self.shared.cancelled.load(Ordering::SeqCst) {
            return;
        }
        let result =
            catch_unwind(AssertUnwindSafe(work)).map_err(|payload| OffloadError::Panicked {
                message: panic_message(payload.as_ref()),
            });
        self.shared.complete(result);
    }
}

impl<F, T> Drop for Task<F, T> {
    fn drop(&mut self) {
        if self.work.is_some() {
            self.shared.complete(Err(OffloadError::ShutDown));
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        String::from("panic payload is not a string")
    }
}

enum FutureState<T> {
    Waiting(Arc<Shared<T>>),
    Refused(OffloadError),
    Done,
}

/// The result of [`Offload::run`]: resolves to the closure's value, or to
/// why there is none.
///
/// # Panics
///
/// Polling it again after it resolved panics.
///
/// # Cancel safety
///
/// Dropping it cancels the job; see [`Offload::run`].
#[must_use = "dropping the future cancels the job"]
pub struct OffloadFuture<T> {
    state: FutureState<T>,
}

impl<T> Future for OffloadFuture<T> {
    type Output = Result<T, OffloadError>;

    #[allow(clippy::panic, reason = "polling a completed future is a caller bug")]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, FutureState::Done) {
            FutureState::Waiting(shared) => {
                let mut slot = shared.slot.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(result) = slot.result.take() {
                    return Poll::Ready(result);
                }
                slot.waker = Some(cx.waker().clone());
                drop(slot);
                this.state = FutureState::Waiting(shared);
                Poll::Pending
            }
            FutureState::Refused(err) => Poll::Ready(Err(err)),
            FutureState::Done => panic!("OffloadFuture polled after completion"),
        }
    }
}

impl<T> Drop for OffloadFuture<T> {
    fn drop(&mut self) {
        if let FutureState::Waiting(shared) = &self.state {
            shared.cancelled.store(true, Ordering::SeqCst);
        }
    }
}

impl<T> fmt::Debug for OffloadFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            FutureState::Waiting(_) => "waiting",
            FutureState::Refused(_) => "refused",
            FutureState::Done => "done",
        };
        f.debug_struct("OffloadFuture")
            .field("state", &state)
            .finish()
    }
}
