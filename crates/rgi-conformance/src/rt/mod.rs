//! The kit's own small runtime: what the test client and the toy server
//! need to run applications without an async runtime crate.
//!
//! - [`block_on`] runs a future on the calling thread;
//! - [`ThreadOffload`] is an [`OffloadService`] with a thread per job;
//! - [`AfterQueue`] is an [`AfterResponseService`] that holds tasks until
//!   the response is complete, then runs them on a worker thread;
//! - [`PollerReadiness`] (Unix) is a [`ReadinessService`] over a real
//!   poller (epoll, kqueue);
//! - [`serve_sync`] and [`serve_async`] drive one request through an
//!   application to a [`ResponseSink`], with the server's failure rules
//!   (`RGI-FAIL-*`) and the switch to synchronous processing
//!   (`RGIA-SWITCH-*`); [`serve_sync_with`], [`serve_async_with`] and
//!   [`serve_async_within_with`] take the [`ResponseState`] a server
//!   prepared, with trailers or early hints enabled where the request
//!   allows them (RGI 1.2).
//!
//! [`ReadinessService`]: rgi_async::ReadinessService

#[cfg(unix)]
mod poller;

#[cfg(unix)]
pub use poller::PollerReadiness;

use std::any::Any;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};
use std::{fmt, io};

use bytes::Bytes;
use http::StatusCode;
use rgi::{
    Application, Body, BoxError, Environ, FinishError, ResponseHead, ResponseSink, ResponseState,
    SendError,
};
use rgi_async::{
    AfterError, AfterResponseService, AfterTask, AsyncApplication, AsyncBody, Job, OffloadError,
    OffloadService, Step, SyncSwitch,
};

/// Wakes a parked thread, and remembers that it did.
struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl ThreadWaker {
    /// Parks until woken or until `bound` has passed; whether it was
    /// woken. Parking may end spuriously, so the flag decides.
    fn park_within(&self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        loop {
            if self.woken.swap(false, Ordering::SeqCst) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            thread::park_timeout(left);
        }
    }
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A waker that unparks the calling thread.
fn thread_waker() -> Waker {
    Waker::from(parking_waker())
}

fn parking_waker() -> Arc<ThreadWaker> {
    Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    })
}

/// Runs `future` to completion on the calling thread, parking it between
/// polls until a waker fires.
///
/// # Examples
///
/// ```
/// assert_eq!(rgi_conformance::rt::block_on(async { 6 * 7 }), 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// An [`OffloadService`] that runs every job on a thread of its own and
/// counts the jobs it accepted.
///
/// Enough for tests and the toy server; a production server bounds its
/// pool (`RGIA-OFFLOAD`).
#[derive(Debug, Clone, Default)]
pub struct ThreadOffload {
    accepted: Arc<AtomicUsize>,
}

impl ThreadOffload {
    /// A service that has accepted no job yet.
    #[must_use]
    pub fn new() -> Self {
        ThreadOffload::default()
    }

    /// How many jobs it accepted so far (clones share the count).
    #[must_use]
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl OffloadService for ThreadOffload {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        let spawned = thread::Builder::new()
            .name("rgi-offload".into())
            .spawn(move || job.run());
        match spawned {
            Ok(_) => {
                self.accepted.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            // The job was moved into the failed spawn and dropped unrun,
            // which resolves its future to an error; say why here too.
            Err(_) => Err(OffloadError::ShutDown),
        }
    }
}

/// An [`AfterResponseService`] for one request: holds the tasks until
/// [`run`](Self::run) is called once the response is complete
/// (`RGIA-AFTER-1`), then runs them on a worker thread with panics
/// contained (`RGIA-AFTER-2`).
#[derive(Clone, Default)]
pub struct AfterQueue {
    tasks: Arc<Mutex<Vec<AfterTask>>>,
    ran: Arc<AtomicUsize>,
}

impl fmt::Debug for AfterQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterQueue")
            .field("queued", &self.queued())
            .field("ran", &self.ran())
            .finish()
    }
}

impl AfterQueue {
    /// An empty queue.
    #[must_use]
    pub fn new() -> Self {
        AfterQueue::default()
    }

    /// How many tasks wait for the response to complete.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// How many tasks have run to completion or panicked so far.
    #[must_use]
    pub fn ran(&self) -> usize {
        self.ran.load(Ordering::SeqCst)
    }

    /// Runs the queued tasks, in order, on a new worker thread; a panicking
    /// task does not stop the ones after it. Returns the thread's handle.
    ///
    /// # Errors
    ///
    /// If the worker thread cannot be spawned (the tasks are dropped).
    pub fn run(&self) -> io::Result<thread::JoinHandle<()>> {
        let tasks: Vec<AfterTask> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let ran = Arc::clone(&self.ran);
        thread::Builder::new()
            .name("rgi-after-response".into())
            .spawn(move || {
                for task in tasks {
                    let _contained = panic::catch_unwind(AssertUnwindSafe(task));
                    ran.fetch_add(1, Ordering::SeqCst);
                }
            })
    }
}

impl AfterResponseService for AfterQueue {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        self.tasks
            .lock()
            .map_err(|_| AfterError::ShutDown)?
            .push(task);
        Ok(())
    }
}

/// How serving one request ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The response went out whole; the transport adds its end-of-message
    /// framing.
    Complete {
        /// Body bytes sent (counted even for HEAD, where none go out).
        body_bytes: u64,
    },
    /// The application failed before the head was sent: a bare `500` went
    /// out instead (`RGI-FAIL-3`, `RGI-FAIL-7`); the connection may be
    /// reused.
    FailedBeforeHead {
        /// What the application did wrong; for the server's log only
        /// (`RGI-FAIL-4`).
        error: BoxError,
    },
    /// The application failed after the head was sent: the transport must
    /// end the response abnormally (`RGI-FAIL-5`) and append nothing
    /// (`RGI-FAIL-6`).
    FailedAfterHead {
        /// What went wrong; for the server's log only.
        error: BoxError,
    },
    /// The transport failed (the client went away); the body was dropped
    /// at once (`RGI-FAIL-8`).
    Disconnected {
        /// The transport's error.
        error: io::Error,
    },
    /// The asynchronous body returned `Pending` and nothing woke it within
    /// the bound given to [`serve_async_within`]: the driver dropped it
    /// and gave up (a bare `500` went out if the head had not). A body
    /// that never arranged a wake-up is reported by the validator
    /// (`RGIA-APP-5`); one that did looks, from outside, like a long poll.
    Stalled {
        /// How long the driver waited for a wake-up.
        waited: Duration,
    },
}

impl Outcome {
    /// Whether the response went out whole.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        matches!(self, Outcome::Complete { .. })
    }

    /// Whether the connection can carry another request after this one.
    #[must_use]
    pub fn is_reusable(&self) -> bool {
        matches!(
            self,
            Outcome::Complete { .. } | Outcome::FailedBeforeHead { .. }
        )
    }
}

/// What a driver saw besides the outcome.
#[derive(Debug)]
pub struct Served {
    /// How the request ended.
    pub outcome: Outcome,
    /// Whether an asynchronous body switched to synchronous processing.
    pub switched: bool,
}

/// Turns a caught panic's payload into an error that says it panicked.
fn panic_error(payload: &(dyn Any + Send)) -> BoxError {
    let text = payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_owned());
    BoxError::from(format!("the application panicked: {text}"))
}

/// Runs `work`, turning a panic into an error (`RGI-FAIL-2`).
fn contained<T>(work: impl FnOnce() -> Result<T, BoxError>) -> Result<T, BoxError> {
    panic::catch_unwind(AssertUnwindSafe(work))
        .unwrap_or_else(|payload| Err(panic_error(&*payload)))
}

/// Drops `value`, containing a panic in its `Drop` (`RGI-FAIL-2`).
fn drop_contained<T>(value: T) -> Result<(), BoxError> {
    contained(move || {
        drop(value);
        Ok(())
    })
}

/// Why pulling stopped early.
enum Stop {
    Application(BoxError),
    Transport(io::Error),
    /// No wake-up came within the bound.
    Stalled(Duration),
}

impl From<SendError> for Stop {
    fn from(err: SendError) -> Self {
        match err {
            SendError::Transport(err) => Stop::Transport(err),
            other => Stop::Application(other.into()),
        }
    }
}

/// The outcome of a failure, sending the `500` if nothing was sent yet.
fn fail<S: ResponseSink>(state: &ResponseState, sink: &mut S, stop: Stop) -> Outcome {
    match stop {
        Stop::Transport(error) => Outcome::Disconnected { error },
        Stop::Stalled(waited) => {
            if !state.is_head_sent() {
                let head = ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR).with_header(
                    http::header::CONTENT_LENGTH,
                    http::HeaderValue::from_static("0"),
                );
                if let Err(error) = sink.send_head(head) {
                    return Outcome::Disconnected { error };
                }
            }
            Outcome::Stalled { waited }
        }
        Stop::Application(error) if state.is_head_sent() => Outcome::FailedAfterHead { error },
        Stop::Application(error) => {
            // RGI-FAIL-10: the client's fault, propagated by the
            // application, is answered with its status, and the
            // connection, whose body is in doubt, closes after it.
            let client_status = rgi::client_body_error(&*error).and_then(rgi::InputError::status);
            let mut head =
                ResponseHead::new(client_status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                    .with_header(
                        http::header::CONTENT_LENGTH,
                        http::HeaderValue::from_static("0"),
                    );
            if client_status.is_some() {
                head = head.with_header(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            match sink.send_head(head) {
                Ok(()) => Outcome::FailedBeforeHead { error },
                Err(error) => Outcome::Disconnected { error },
            }
        }
    }
}

/// Ends the response after the body ended and was dropped.
fn finish<S: ResponseSink>(state: &mut ResponseState, sink: &mut S) -> Outcome {
    match state.finish(sink) {
        Ok(body_bytes) => Outcome::Complete { body_bytes },
        Err(FinishError::Transport(error)) => Outcome::Disconnected { error },
        Err(FinishError::NotStarted) => fail(
            state,
            sink,
            Stop::Application(FinishError::NotStarted.into()),
        ),
        Err(other) => fail(state, sink, Stop::Application(other.into())),
    }
}

/// Pulls a synchronous body to its end, chunk by chunk.
fn pull<S: ResponseSink>(
    body: &mut dyn Body,
    state: &mut ResponseState,
    sink: &mut S,
) -> Result<(), Stop> {
    loop {
        let chunk = contained(|| Ok(body.next_chunk(&mut state.start_response(sink))))
            .map_err(Stop::Application)?;
        match chunk {
            None => return Ok(()),
            Some(Err(err)) => return Err(Stop::Application(err)),
            Some(Ok(chunk)) => match state.send_chunk(sink, chunk) {
                // RGI-BODY-18: stop pulling and complete the bodiless
                // response; its head still goes out.
                Err(SendError::BodyNotAllowed { .. }) => return Ok(()),
                other => other?,
            },
        }
    }
}

/// Serves one request to a synchronous application over `sink`: calls it,
/// pulls its body, drops the body exactly once, and applies the failure
/// rules. A panic anywhere in the application becomes a failure.
///
/// # Examples
///
/// ```
/// use rgi::{Environ, ResponseHead, ResponseSink};
/// use rgi_conformance::rt::{serve_sync, Outcome};
///
/// #[derive(Default)]
/// struct Wire(Vec<u8>);
/// impl ResponseSink for Wire {
///     fn send_head(&mut self, head: ResponseHead) -> std::io::Result<()> {
///         self.0.extend_from_slice(head.status().as_str().as_bytes());
///         Ok(())
///     }
///     fn send_data(&mut self, data: bytes::Bytes) -> std::io::Result<()> {
///         self.0.extend_from_slice(&data);
///         Ok(())
///     }
/// }
///
/// let app = rgi::from_fn(|_environ: Environ, start| {
///     start.start(http::StatusCode::OK)?;
///     Ok(bytes::Bytes::from_static(b" hello"))
/// });
/// let mut wire = Wire::default();
/// let served = serve_sync(&app, Environ::builder().build()?, &mut wire);
/// assert!(matches!(served.outcome, Outcome::Complete { body_bytes: 6 }));
/// assert_eq!(wire.0, b"200 hello");
/// # Ok::<(), rgi::EnvironError>(())
/// ```
pub fn serve_sync<A, S>(app: &A, environ: Environ, sink: &mut S) -> Served
where
    A: Application + ?Sized,
    S: ResponseSink,
{
    serve_sync_hinted(app, environ, sink, |_, _, _| {})
}

/// As [`serve_sync`], and when the body's `size_hint()` is `Some(n)` once
/// `call` has returned without sending the head, hands `n` to `hinted`
/// before the first pull (the moment `RGI-CL-6` lets a server declare it).
///
/// # Examples
///
/// ```
/// use rgi::{Environ, ResponseHead, ResponseSink};
/// use rgi_conformance::rt::serve_sync_hinted;
///
/// struct Discard;
/// impl ResponseSink for Discard {
///     fn send_head(&mut self, _: ResponseHead) -> std::io::Result<()> { Ok(()) }
///     fn send_data(&mut self, _: bytes::Bytes) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let app = rgi::from_fn(|_environ: Environ, start| {
///     start.start(http::StatusCode::OK)?;
///     Ok(bytes::Bytes::from_static(b"hello"))
/// });
/// let mut hinted = None;
/// let served = serve_sync_hinted(&app, Environ::builder().build()?, &mut Discard, |_, _, n| {
///     hinted = Some(n);
/// });
/// assert!(served.outcome.is_complete());
/// assert_eq!(hinted, Some(5));
/// # Ok::<(), rgi::EnvironError>(())
/// ```
pub fn serve_sync_hinted<A, S>(
    app: &A,
    environ: Environ,
    sink: &mut S,
    hinted: impl FnOnce(&mut ResponseState, &mut S, u64),
) -> Served
where
    A: Application + ?Sized,
    S: ResponseSink,
{
    let state = ResponseState::new(environ.method());
    serve_sync_with(app, environ, state, sink, hinted)
}

/// As [`serve_sync_hinted`], with a response state the caller made and
/// prepared: a server enables on it what this request can carry
/// (`ResponseState::enable_trailers`, `ResponseState::enable_early_hints`,
/// `[RGI-TRAILER-7]`, `[RGI-EARLY-3]`) before the application gets its
/// first handle. `state` must be fresh and made for the environ's method.
///
/// # Examples
///
/// ```
/// use http::{header, HeaderMap, HeaderValue};
/// use rgi::{Environ, ResponseState};
/// use rgi_conformance::rt::{serve_sync_with, Recorder};
///
/// let app = rgi::from_fn(|_environ: Environ, start| {
///     let mut hints = HeaderMap::new();
///     hints.insert(header::LINK, HeaderValue::from_static("</a.css>; rel=preload"));
///     start.send_early_hints(hints)?;
///     start.start(http::StatusCode::NO_CONTENT)?;
///     Ok(rgi::Empty)
/// });
/// let environ = Environ::builder().build()?;
/// let mut state = ResponseState::new(environ.method());
/// state.enable_early_hints();
/// let mut wire = Recorder::new();
/// let served = serve_sync_with(&app, environ, state, &mut wire, |_, _, _| {});
/// assert!(served.outcome.is_complete());
/// assert_eq!(wire.early_hints().len(), 1);
/// # Ok::<(), rgi::EnvironError>(())
/// ```
pub fn serve_sync_with<A, S>(
    app: &A,
    environ: Environ,
    mut state: ResponseState,
    sink: &mut S,
    hinted: impl FnOnce(&mut ResponseState, &mut S, u64),
) -> Served
where
    A: Application + ?Sized,
    S: ResponseSink,
{
    let called = contained(|| app.call(environ, &mut state.start_response(sink)));
    let outcome = match called {
        Err(err) => fail(&state, sink, Stop::Application(err)),
        Ok(mut body) => {
            if !state.is_head_sent() {
                if let Some(length) = body.size_hint() {
                    hinted(&mut state, sink, length);
                }
            }
            let pulled = pull(&mut body, &mut state, sink);
            let dropped = drop_contained(body);
            match (pulled, dropped) {
                (Err(stop), _) => fail(&state, sink, stop),
                (Ok(()), Err(err)) => fail(&state, sink, Stop::Application(err)),
                (Ok(()), Ok(())) => finish(&mut state, sink),
            }
        }
    };
    Served {
        outcome,
        switched: false,
    }
}

/// Serves one request to an asynchronous application over `sink`, parking
/// the calling thread while the body is pending. A [`Step::Switch`] drops
/// the asynchronous body first (`RGIA-SWITCH-2`), then runs the
/// continuation and pulls its synchronous body on a worker thread
/// (`RGIA-SWITCH-3`) with the same response state (`RGIA-SWITCH-4`).
///
/// # Examples
///
/// ```
/// use rgi::{Environ, ResponseHead, ResponseSink};
/// use rgi_conformance::rt::serve_async;
///
/// struct Discard;
/// impl ResponseSink for Discard {
///     fn send_head(&mut self, _: ResponseHead) -> std::io::Result<()> { Ok(()) }
///     fn send_data(&mut self, _: bytes::Bytes) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let app = rgi_async::from_fn(|_environ: Environ, start| {
///     start.start(http::StatusCode::NO_CONTENT)?;
///     Ok(rgi::Empty)
/// });
/// let served = serve_async(&app, Environ::builder().build()?, &mut Discard);
/// assert!(served.outcome.is_complete());
/// # Ok::<(), rgi::EnvironError>(())
/// ```
pub fn serve_async<A, S>(app: &A, environ: Environ, sink: &mut S) -> Served
where
    A: AsyncApplication + ?Sized,
    S: ResponseSink + Send,
{
    let state = ResponseState::new(environ.method());
    drive_async(app, environ, state, sink, None)
}

/// As [`serve_async`], with a response state the caller made and
/// prepared (see [`serve_sync_with`]): fresh, made for the environ's
/// method, with what the request can carry enabled.
///
/// # Examples
///
/// ```
/// use http::{header, HeaderMap, HeaderValue};
/// use rgi::{Environ, ResponseState};
/// use rgi_conformance::rt::{serve_async_with, Recorder};
///
/// let app = rgi_async::from_fn(|_environ: Environ, start| {
///     start.start(
///         rgi::ResponseHead::new(http::StatusCode::OK)
///             .with_header(header::TRAILER, HeaderValue::from_static("x-done")),
///     )?;
///     let mut fields = HeaderMap::new();
///     fields.insert("x-done", HeaderValue::from_static("yes"));
///     start.send_trailers(fields)?;
///     Ok(bytes::Bytes::from_static(b"body"))
/// });
/// let environ = Environ::builder().build()?;
/// let mut state = ResponseState::new(environ.method());
/// state.enable_trailers();
/// let mut wire = Recorder::new();
/// assert!(serve_async_with(&app, environ, state, &mut wire).outcome.is_complete());
/// assert_eq!(wire.trailers().map(|fields| fields["x-done"].clone()), Some(HeaderValue::from_static("yes")));
/// # Ok::<(), rgi::EnvironError>(())
/// ```
pub fn serve_async_with<A, S>(
    app: &A,
    environ: Environ,
    state: ResponseState,
    sink: &mut S,
) -> Served
where
    A: AsyncApplication + ?Sized,
    S: ResponseSink + Send,
{
    drive_async(app, environ, state, sink, None)
}

/// As [`serve_async`], but never waits longer than `stall` for a pending
/// body to be woken: then it drops the body and ends with
/// [`Outcome::Stalled`], so that a body that is never woken cannot hang
/// the caller. The in-process test client serves this way.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rgi::{Environ, ResponseHead, ResponseSink};
/// use rgi_conformance::rt::{serve_async_within, Outcome, Recorder};
///
/// // Pending for ever, and nobody will wake it.
/// let app = rgi_async::from_fn(|_environ: Environ, _start| {
///     Ok(futures_free_pending())
/// });
/// # fn futures_free_pending() -> impl rgi_async::AsyncBody {
/// #     struct Never;
/// #     impl rgi_async::AsyncBody for Never {
/// #         fn poll_step(
/// #             self: std::pin::Pin<&mut Self>,
/// #             _cx: &mut std::task::Context<'_>,
/// #             _start: &mut rgi::StartResponse<'_>,
/// #         ) -> std::task::Poll<Option<Result<rgi_async::Step, rgi::BoxError>>> {
/// #             std::task::Poll::Pending
/// #         }
/// #     }
/// #     Never
/// # }
/// let mut wire = Recorder::new();
/// let served = serve_async_within(&app, Environ::builder().build()?, &mut wire, Duration::from_millis(50));
/// assert!(matches!(served.outcome, Outcome::Stalled { .. }));
/// assert_eq!(wire.heads()[0].status(), http::StatusCode::INTERNAL_SERVER_ERROR);
/// # Ok::<(), rgi::EnvironError>(())
/// ```
pub fn serve_async_within<A, S>(app: &A, environ: Environ, sink: &mut S, stall: Duration) -> Served
where
    A: AsyncApplication + ?Sized,
    S: ResponseSink + Send,
{
    let state = ResponseState::new(environ.method());
    drive_async(app, environ, state, sink, Some(stall))
}

/// As [`serve_async_within`], with a response state the caller made and
/// prepared (see [`serve_sync_with`]).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rgi::{Environ, ResponseState};
/// use rgi_conformance::rt::{serve_async_within_with, Recorder};
///
/// let app = rgi_async::from_fn(|_environ: Environ, start| {
///     start.start(http::StatusCode::NO_CONTENT)?;
///     Ok(rgi::Empty)
/// });
/// let environ = Environ::builder().build()?;
/// let state = ResponseState::new(environ.method());
/// let served = serve_async_within_with(&app, environ, state, &mut Recorder::new(), Duration::from_secs(1));
/// assert!(served.outcome.is_complete());
/// # Ok::<(), rgi::EnvironError>(())
/// ```
pub fn serve_async_within_with<A, S>(
    app: &A,
    environ: Environ,
    state: ResponseState,
    sink: &mut S,
    stall: Duration,
) -> Served
where
    A: AsyncApplication + ?Sized,
    S: ResponseSink + Send,
{
    drive_async(app, environ, state, sink, Some(stall))
}

fn drive_async<A, S>(
    app: &A,
    environ: Environ,
    mut state: ResponseState,
    sink: &mut S,
    stall: Option<Duration>,
) -> Served
where
    A: AsyncApplication + ?Sized,
    S: ResponseSink + Send,
{
    let called = contained(|| app.call(environ, &mut state.start_response(sink)));
    let body = match called {
        Ok(body) => body,
        Err(err) => {
            return Served {
                outcome: fail(&state, sink, Stop::Application(err)),
                switched: false,
            };
        }
    };
    let mut body = Box::pin(body);
    let parker = parking_waker();
    let waker = Waker::from(Arc::clone(&parker));
    let mut cx = Context::from_waker(&waker);
    let stopped = loop {
        let step = contained(|| {
            Ok(body
                .as_mut()
                .poll_step(&mut cx, &mut state.start_response(sink)))
        });
        match step {
            Err(err) => break Err(Stop::Application(err)),
            Ok(Poll::Pending) => match stall {
                Some(bound) if !parker.park_within(bound) => break Err(Stop::Stalled(bound)),
                Some(_) => {}
                None => {
                    while !parker.woken.swap(false, Ordering::SeqCst) {
                        thread::park();
                    }
                }
            },
            Ok(Poll::Ready(None)) => break Ok(None),
            Ok(Poll::Ready(Some(Err(err)))) => break Err(Stop::Application(err)),
            Ok(Poll::Ready(Some(Ok(Step::Chunk(chunk))))) => {
                match state.send_chunk(sink, chunk) {
                    Ok(()) => {}
                    // RGI-BODY-18, as in `pull`.
                    Err(SendError::BodyNotAllowed { .. }) => break Ok(None),
                    Err(err) => break Err(err.into()),
                }
            }
            Ok(Poll::Ready(Some(Ok(Step::Switch(switch))))) => break Ok(Some(switch)),
            // RGIA-VER-4: a step this server does not know is a failure.
            Ok(Poll::Ready(Some(Ok(other)))) => {
                break Err(Stop::Application(
                    format!("the body yielded a step this server does not know: {other:?}").into(),
                ));
            }
        }
    };
    let dropped = drop_contained(body);
    let outcome = match (stopped, dropped) {
        (Err(stop), _) => fail(&state, sink, stop),
        (Ok(_), Err(err)) => fail(&state, sink, Stop::Application(err)),
        (Ok(None), Ok(())) => finish(&mut state, sink),
        (Ok(Some(switch)), Ok(())) => {
            return Served {
                outcome: run_switch(switch, &mut state, sink),
                switched: true,
            };
        }
    };
    Served {
        outcome,
        switched: false,
    }
}

/// Runs a switch's continuation and its synchronous body on a worker
/// thread, then finishes the response on the calling thread.
fn run_switch<S: ResponseSink + Send>(
    switch: SyncSwitch,
    state: &mut ResponseState,
    sink: &mut S,
) -> Outcome {
    let pulled = thread::scope(|scope| {
        let worker = thread::Builder::new()
            .name("rgi-switch".into())
            .spawn_scoped(scope, || -> Result<(), Stop> {
                let mut body = contained(|| switch.run(&mut state.start_response(sink)))
                    .map_err(Stop::Application)?;
                let pulled = pull(&mut body, state, sink);
                drop_contained(body).map_err(Stop::Application)?;
                pulled
            });
        match worker {
            Ok(worker) => worker
                .join()
                .unwrap_or_else(|payload| Err(Stop::Application(panic_error(&*payload)))),
            Err(err) => Err(Stop::Application(err.into())),
        }
    });
    match pulled {
        Ok(()) => finish(state, sink),
        Err(stop) => fail(state, sink, stop),
    }
}

/// The protocols a request's `upgrade` fields offer, in order (the
/// comma-separated elements of every field, trimmed, empty ones left out).
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::UPGRADE};
///
/// let mut headers = HeaderMap::new();
/// headers.append(UPGRADE, HeaderValue::from_static("websocket, h2c"));
/// headers.append(UPGRADE, HeaderValue::from_static("x-echo"));
/// assert_eq!(rgi_conformance::rt::offered_protocols(&headers), ["websocket", "h2c", "x-echo"]);
/// ```
#[must_use]
pub fn offered_protocols(request_headers: &http::HeaderMap) -> Vec<String> {
    request_headers
        .get_all(http::header::UPGRADE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(|element| String::from_utf8_lossy(element.trim_ascii()).into_owned())
        .filter(|element| !element.is_empty())
        .collect()
}

/// Picks the protocol of a `101` (`RGIA-UPGRADE-3`): the one the
/// application named in `headers` (taken out of them, since the server
/// writes the field itself), which has to be among `offered`; else the
/// request's only offer.
///
/// # Errors
///
/// [`UpgradeError::ProtocolNotOffered`](rgi_async::UpgradeError::ProtocolNotOffered) when the application chose a
/// protocol the request did not offer;
/// [`UpgradeError::ProtocolNotChosen`](rgi_async::UpgradeError::ProtocolNotChosen)
/// when the request offered several (or none) and the application chose
/// none.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::UPGRADE};
/// use rgi_conformance::rt::choose_protocol;
///
/// let offered = ["websocket".to_owned(), "x-echo".to_owned()];
/// let mut headers = HeaderMap::new();
/// headers.insert(UPGRADE, HeaderValue::from_static("X-Echo"));
/// assert_eq!(choose_protocol(&offered, &mut headers)?, "x-echo");
/// assert!(headers.is_empty());
/// assert!(choose_protocol(&offered, &mut HeaderMap::new()).is_err());
/// # Ok::<(), rgi_async::UpgradeError>(())
/// ```
pub fn choose_protocol(
    offered: &[String],
    headers: &mut http::HeaderMap,
) -> Result<String, rgi_async::UpgradeError> {
    let joined = || {
        http::HeaderValue::from_str(&offered.join(", "))
            .unwrap_or_else(|_| http::HeaderValue::from_static("(not representable)"))
    };
    match headers.remove(http::header::UPGRADE) {
        Some(chosen) => offered
            .iter()
            .find(|protocol| protocol.as_bytes().eq_ignore_ascii_case(chosen.as_bytes()))
            .cloned()
            .ok_or_else(|| rgi_async::UpgradeError::ProtocolNotOffered {
                chosen,
                offered: joined(),
            }),
        None => match offered {
            [only] => Ok(only.clone()),
            _ => Err(rgi_async::UpgradeError::ProtocolNotChosen { offered: joined() }),
        },
    }
}

/// A [`ResponseSink`] that records what reached it, in order: for tests and
/// the in-process client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorder {
    heads: Vec<ResponseHead>,
    body: Vec<u8>,
    chunks: Vec<Bytes>,
    trailers: Option<http::HeaderMap>,
    early_hints: Vec<http::HeaderMap>,
}

impl Recorder {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        Recorder::default()
    }

    /// The heads sent, in order (more than one only if the server's 500
    /// followed a sent head, which [`serve_sync`] never does).
    #[must_use]
    pub fn heads(&self) -> &[ResponseHead] {
        &self.heads
    }

    /// The body bytes sent, joined.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body chunks sent, as the sink received them.
    #[must_use]
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// The trailer section the response state handed over after the body
    /// (`ResponseSink::send_trailers`), if it did.
    #[must_use]
    pub fn trailers(&self) -> Option<&http::HeaderMap> {
        self.trailers.as_ref()
    }

    /// The `103 Early Hints` sent before the final head, in order.
    #[must_use]
    pub fn early_hints(&self) -> &[http::HeaderMap] {
        &self.early_hints
    }
}

impl ResponseSink for Recorder {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.heads.push(head);
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.body.extend_from_slice(&data);
        self.chunks.push(data);
        Ok(())
    }

    fn send_trailers(&mut self, fields: http::HeaderMap) -> io::Result<()> {
        self.trailers = Some(fields);
        Ok(())
    }

    fn send_early_hints(&mut self, fields: http::HeaderMap) -> io::Result<()> {
        self.early_hints.push(fields);
        Ok(())
    }
}

/// Whether `body` is a trait object the drivers accept (compile-time check
/// that boxed bodies of both kinds are bodies).
const _: fn() = || {
    fn is_body<B: Body>() {}
    fn is_async_body<B: AsyncBody>() {}
    is_body::<Box<dyn Body>>();
    is_async_body::<std::pin::Pin<Box<dyn AsyncBody>>>();
};
