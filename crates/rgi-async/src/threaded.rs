//! Running a synchronous application under an asynchronous server
//! (spec/rgi-async.md, "Composition").

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use rgi::{
    Application, Body, BoxError, Environ, Input, InputError, InputUse, ResponseHead, ResponseSink,
    ResponseState, SendError, StartResponse, TrailerSlot,
};

use crate::app::AsyncApplication;
use crate::body::AsyncBody;
use crate::capabilities::Capabilities;
use crate::offload::{OffloadError, OffloadFuture};
use crate::switch::Step;

/// Why a [`Threaded`] application produced no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThreadedError {
    /// The request carries no [`Capabilities`], so there is no offload to
    /// run the synchronous application on.
    #[error("no rgi_async::Capabilities in the environ: cannot offload the application")]
    NoOffload,
    /// The offload job failed: the application panicked, or the service was
    /// saturated or shut down after the response had started. (A job that
    /// never ran before anything was started is answered `503 Service
    /// Unavailable` instead, `[RGIA-COMP-8]`.)
    #[error("running the synchronous application failed: {0}")]
    Offload(#[from] OffloadError),
}

/// An [`rgi::Application`] adapted to [`AsyncApplication`]: the adapter
/// that lets synchronous code sit below asynchronous middleware.
///
/// Each request runs as one offload job: the job calls the application and
/// pulls its body on a worker thread, with a response state of its own
/// (which enforces the synchronous rules), and relays the head and each
/// chunk through a one-slot channel to the asynchronous body, which replays
/// them on the server's [`StartResponse`]. The worker blocks until the
/// server has taken the previous item, so backpressure is preserved; the
/// synchronous body is dropped once, on the worker thread. Dropping the
/// asynchronous body (client gone) makes the worker stop pulling and drop
/// its body; a job that has not started is skipped.
///
/// An application whose hints say it never blocks and reads no input
/// (or the request has no body) runs inline instead, without offload; if
/// it reads its input all the same, a read that would have to wait for the
/// client fails with [`rgi::InputError::WouldBlockThread`] instead of
/// parking the event loop's thread (`[RGIA-COMP-13]`). One
/// that never blocks and reads its input whole runs inline too, once the
/// body has been read through the non-blocking face into memory, up to
/// [`PRE_READ_LIMIT`] bytes; past that, or when the input has no
/// non-blocking face, it goes to the offload path with the bytes already
/// read put back in front of the rest (`[RGIA-COMP-6]`).
///
/// # Examples
///
/// ```
/// use rgi::ResponseHead;
/// use rgi_async::Threaded;
/// use http::StatusCode;
///
/// let sync_app = rgi::from_fn(|_environ, start| {
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(rgi::from_iter(["blocking ", "is fine here"]))
/// });
/// let app = Threaded::new(sync_app); // an AsyncApplication
/// # let _ = app;
/// ```
pub struct Threaded<A> {
    app: Arc<A>,
}

impl<A> Threaded<A> {
    /// Adapts `app`.
    pub fn new(app: A) -> Self {
        Threaded { app: Arc::new(app) }
    }

    /// The adapted application.
    pub fn get_ref(&self) -> &A {
        &self.app
    }
}

impl<A> Clone for Threaded<A> {
    fn clone(&self) -> Self {
        Threaded {
            app: Arc::clone(&self.app),
        }
    }
}

impl<A> fmt::Debug for Threaded<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Threaded")
            .field("app", &std::any::type_name::<A>())
            .finish()
    }
}

impl<A: Application> AsyncApplication for Threaded<A> {
    type Body = ThreadedBody<A::Body>;

    /// The synchronous application's start-up (`[RGIA-LIFE-2]`).
    fn startup(&self, startup: &mut rgi::Startup<'_>) -> Result<(), BoxError> {
        self.app.startup(startup)
    }

    /// The synchronous application's shut-down (`[RGIA-LIFE-2]`).
    fn shutdown(&self) {
        self.app.shutdown();
    }

    /// # Errors
    ///
    /// [`ThreadedError::NoOffload`] when the request has no
    /// [`Capabilities`] and the application cannot run inline; the inline
    /// application's own error when it runs inline.
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let hints = self.app.hints();
        let no_input = hints.input == InputUse::None || environ.content_length() == Some(0);
        if hints.can_run_inline() && no_input {
            let body = self.app.call(never_parks(environ), start)?;
            return Ok(ThreadedBody {
                inner: Inner::Inline(Some(body)),
            });
        }
        let fits = environ
            .content_length()
            .is_none_or(|length| length <= PRE_READ_LIMIT as u64);
        if hints.can_run_inline() && hints.input == InputUse::Whole && fits {
            let (inline, offloaded) = (Arc::clone(&self.app), Arc::clone(&self.app));
            return Ok(ThreadedBody {
                inner: Inner::PreReading(Some(Box::new(PreRead {
                    environ,
                    read: Vec::new(),
                    call_inline: Box::new(move |environ, start| inline.call(environ, start)),
                    offload: Box::new(move |environ, delivery| {
                        offload(offloaded, environ, delivery)
                    }),
                }))),
            });
        }
        offload(Arc::clone(&self.app), environ, Delivery::of(start))
            .map(|inner| ThreadedBody { inner })
    }
}

/// The environ of an application that runs inline, on the thread that
/// polls: its input's blocking face must never park that thread
/// (`[RGIA-COMP-13]`). An `Input::from_async` parks until the server's I/O
/// wakes it, and on a single-threaded event loop that I/O is this very
/// thread, so a read it has to wait for would never return. The wrapper
/// delivers what the source has now (bytes, the end, an error) and answers
/// a read that would have to wait with [`rgi::InputError::WouldBlockThread`].
fn never_parks(mut environ: Environ) -> Environ {
    if environ.input().is_finished() {
        return environ; // nothing left to read, nothing to wait for
    }
    let original = environ.replace_input(Input::empty());
    let length = original.content_length();
    let slot = TrailerSlot::new();
    environ
        .replace_input(Input::new(NeverParks(original, slot.clone()), length).with_trailers(slot));
    environ
}

/// The blocking face of an input read on a loop thread; see [`never_parks`].
/// At the end it hands the original input's trailers on to the slot of the
/// input that replaced it (`[RGI-TRAILER-2]`).
struct NeverParks(Input, TrailerSlot);

impl io::Read for NeverParks {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        // Nobody waits for this wake-up: a read that is not ready now fails
        // instead of waiting, so the waker only has to be valid.
        let mut cx = Context::from_waker(Waker::noop());
        match self.0.poll_chunk(&mut cx, out.len()) {
            Poll::Ready(Ok(chunk)) if chunk.is_empty() => {
                forward_trailers(&mut self.0, &self.1);
                Ok(0)
            }
            Poll::Ready(Ok(chunk)) => {
                let count = chunk.len().min(out.len());
                out[..count].copy_from_slice(&chunk[..count]);
                Ok(count)
            }
            Poll::Ready(Err(err)) => Err(err),
            Poll::Pending => Err(InputError::WouldBlockThread.into()),
        }
    }
}

/// Moves the trailers of an input that has ended into `slot`, the slot of
/// the input that replaced it (`[RGI-TRAILER-2]`).
fn forward_trailers(ended: &mut Input, slot: &TrailerSlot) {
    if let Ok(Some(fields)) = ended.take_trailers() {
        slot.fill(fields);
    }
}

/// The rest of a partly pre-read input, read through; its trailers go to
/// the replacing input's slot when it ends.
struct ReadThrough(Input, TrailerSlot);

impl io::Read for ReadThrough {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let count = self.0.read(out)?;
        if count == 0 && !out.is_empty() {
            forward_trailers(&mut self.0, &self.1);
        }
        Ok(count)
    }
}

/// How many body bytes [`Threaded`] reads into memory before it runs an
/// application inline whose hints promise it never blocks and reads its
/// input whole (`[RGIA-COMP-6]`); a longer body sends the application to
/// the offload path instead, with the bytes already read put back in front
/// of the rest.
pub const PRE_READ_LIMIT: usize = 1024 * 1024;

/// How much one pre-read poll asks for.
const PRE_READ_STEP: usize = 16 * 1024;

/// What the server can deliver of the response beyond head and body, read
/// from the handle the asynchronous body is lent, for the worker's own
/// response state to allow the same (RGI 1.2 trailers and early hints).
#[derive(Clone, Copy)]
struct Delivery {
    trailers: bool,
    early_hints: bool,
}

impl Delivery {
    fn of(start: &StartResponse<'_>) -> Self {
        Delivery {
            trailers: start.trailers_deliverable(),
            early_hints: start.early_hints_deliverable(),
        }
    }
}

/// Starts the job that runs `app` on the request's offload service.
fn offload<A: Application>(
    app: Arc<A>,
    environ: Environ,
    delivery: Delivery,
) -> Result<Inner<A::Body>, BoxError> {
    let offload = Capabilities::of(&environ)
        .ok_or(ThreadedError::NoOffload)?
        .offload()
        .clone();
    let chan = Arc::new(Chan {
        state: Mutex::new(ChanState {
            slot: None,
            waker: None,
            sender_gone: false,
            receiver_gone: false,
        }),
        space: Condvar::new(),
    });
    let sender = Sender(Arc::clone(&chan));
    let job = offload.run(move || run_on_worker(&*app, environ, sender, delivery));
    Ok(Inner::Relayed {
        receiver: Receiver(chan),
        job: Some(job),
    })
}

/// Calls the application inline once its body is in memory.
type CallInline<B> = Box<dyn FnOnce(Environ, &mut StartResponse<'_>) -> Result<B, BoxError> + Send>;

/// Sends the application to the offload path.
type SendToOffload<B> = Box<dyn FnOnce(Environ, Delivery) -> Result<Inner<B>, BoxError> + Send>;

/// A request whose body is being read into memory before an inline call.
struct PreRead<B> {
    environ: Environ,
    read: Vec<u8>,
    call_inline: CallInline<B>,
    offload: SendToOffload<B>,
}

impl<B> PreRead<B> {
    /// Reads on through the non-blocking face: `Ready(Ok(true))` once the
    /// whole body is in memory, `Ready(Ok(false))` when the body is too
    /// long or cannot be read without blocking (the offload path takes
    /// over).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            match self.environ.input_mut().poll_chunk(cx, PRE_READ_STEP) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => return Poll::Ready(true),
                Poll::Ready(Ok(chunk)) => {
                    self.read.extend_from_slice(&chunk);
                    if self.read.len() > PRE_READ_LIMIT {
                        return Poll::Ready(false);
                    }
                }
                // A blocking source, or a failed body: the application meets
                // the error itself, on a worker, where reading may block.
                Poll::Ready(Err(_)) => return Poll::Ready(false),
            }
        }
    }

    /// The environ with its input replaced: the bytes read, followed by the
    /// rest of the original input (nothing, when it was read whole).
    fn into_environ(self) -> (Environ, CallInline<B>, SendToOffload<B>) {
        let PreRead {
            mut environ,
            read,
            call_inline,
            offload,
        } = self;
        let mut rest = environ.replace_input(Input::empty());
        let length = rest.content_length();
        let read = io::Cursor::new(read);
        let slot = TrailerSlot::new();
        let input = if rest.is_finished() {
            forward_trailers(&mut rest, &slot);
            Input::new(read, length)
        } else {
            Input::new(
                io::Read::chain(read, ReadThrough(rest, slot.clone())),
                length,
            )
        };
        environ.replace_input(input.with_trailers(slot));
        (environ, call_inline, offload)
    }
}

/// The answer when the offload service could not run the application: `503
/// Service Unavailable`, empty.
fn unavailable() -> ResponseHead {
    ResponseHead::new(http::StatusCode::SERVICE_UNAVAILABLE).with_header(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from_static("0"),
    )
}

/// The worker's side: the synchronous server loop for one request.
fn run_on_worker<A: Application>(app: &A, environ: Environ, sender: Sender, delivery: Delivery) {
    let mut state = ResponseState::new(environ.method());
    if delivery.trailers {
        state.enable_trailers();
    }
    if delivery.early_hints {
        state.enable_early_hints();
    }
    let mut sink = RelaySink(&sender);
    let result = (|| -> Result<(), BoxError> {
        let mut body = app.call(environ, &mut state.start_response(&mut sink))?;
        while state.wants_body() {
            let Some(chunk) = body.next_chunk(&mut state.start_response(&mut sink)) else {
                break;
            };
            match state.send_chunk(&mut sink, chunk?) {
                Ok(()) => {}
                // The application's mistake, caught before any of it was
                // sent: what is relayed is still a well-framed response, so
                // pulling stops and the response completes, as the server
                // loop does (`[RGI-BODY-18]`, `[RGI-CL-2]`).
                Err(SendError::BodyNotAllowed { .. } | SendError::ContentLengthExceeded { .. }) => {
                    break;
                }
                Err(err) => return Err(err.into()),
            }
        }
        drop(body);
        state.finish(&mut sink)?;
        Ok(())
    })();
    // A receiver that went away needs no end.
    let _ = sender.send(Message::End(result));
    drop(sender); // wakes a receiver that is still waiting
}

/// The asynchronous body of a [`Threaded`] application.
pub struct ThreadedBody<B> {
    inner: Inner<B>,
}

enum Inner<B> {
    Inline(Option<B>),
    // Boxed: the environ is large, and only this rare state holds it.
    PreReading(Option<Box<PreRead<B>>>),
    Relayed {
        receiver: Receiver,
        job: Option<OffloadFuture<()>>,
    },
}

// The inline body is only ever used through `&mut`, never pinned.
impl<B> Unpin for ThreadedBody<B> {}

impl<B: Body> AsyncBody for ThreadedBody<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if let Inner::PreReading(pre) = &mut this.inner {
            let Some(reading) = pre.as_mut() else {
                return Poll::Ready(None);
            };
            let Poll::Ready(whole) = reading.poll_read(cx) else {
                return Poll::Pending;
            };
            let Some(reading) = pre.take() else {
                return Poll::Ready(None);
            };
            let (environ, call_inline, offload) = (*reading).into_environ();
            let next = if whole {
                call_inline(environ, start).map(|body| Inner::Inline(Some(body)))
            } else {
                offload(environ, Delivery::of(start))
            };
            match next {
                Ok(next) => this.inner = next,
                Err(err) => return Poll::Ready(Some(Err(err))),
            }
        }
        match &mut this.inner {
            Inner::PreReading(_) => Poll::Ready(None),
            Inner::Inline(body) => {
                let Some(inner) = body.as_mut() else {
                    return Poll::Ready(None);
                };
                let step = inner.next_chunk(start);
                if step.as_ref().is_none_or(Result::is_err) {
                    *body = None; // dropped once, at the end
                }
                Poll::Ready(step.map(|chunk| chunk.map(Step::Chunk)))
            }
            Inner::Relayed { receiver, job } => loop {
                match receiver.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Message::Head(head))) => {
                        if let Err(err) = start.start(head) {
                            *job = None;
                            return Poll::Ready(Some(Err(err.into())));
                        }
                    }
                    Poll::Ready(Some(Message::Data(data))) => {
                        return Poll::Ready(Some(Ok(Step::Chunk(data))));
                    }
                    Poll::Ready(Some(Message::EarlyHints(fields))) => {
                        if let Err(err) = start.send_early_hints(fields) {
                            *job = None;
                            return Poll::Ready(Some(Err(err.into())));
                        }
                    }
                    Poll::Ready(Some(Message::Trailers(fields))) => {
                        if let Err(err) = start.send_trailers(fields) {
                            *job = None;
                            return Poll::Ready(Some(Err(err.into())));
                        }
                    }
                    Poll::Ready(Some(Message::End(result))) => {
                        *job = None;
                        return Poll::Ready(result.err().map(Err));
                    }
                    Poll::Ready(None) => {
                        // The worker went away without an end: the job
                        // panicked, was refused or was dropped unrun.
                        let Some(future) = job.as_mut() else {
                            return Poll::Ready(None);
                        };
                        let Poll::Ready(result) = Pin::new(future).poll(cx) else {
                            return Poll::Pending;
                        };
                        *job = None;
                        return Poll::Ready(match result {
                            Ok(()) => None,
                            // The job never ran, so nothing was started:
                            // the server is busy, not the application
                            // broken (`[RGIA-COMP-8]`).
                            Err(OffloadError::Saturated { .. } | OffloadError::ShutDown)
                                if !start.is_started() =>
                            {
                                match start.start(unavailable()) {
                                    Ok(()) => None,
                                    Err(err) => Some(Err(err.into())),
                                }
                            }
                            Err(err) => Some(Err(BoxError::from(ThreadedError::Offload(err)))),
                        });
                    }
                }
            },
        }
    }
}

impl<B> fmt::Debug for ThreadedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.inner {
            Inner::Inline(_) => "inline",
            Inner::PreReading(_) => "pre-reading",
            Inner::Relayed { .. } => "relayed",
        };
        f.debug_struct("ThreadedBody").field("mode", &mode).finish()
    }
}

/// What the worker relays.
enum Message {
    EarlyHints(HeaderMap),
    Head(ResponseHead),
    Data(Bytes),
    Trailers(HeaderMap),
    End(Result<(), BoxError>),
}

/// A one-slot channel: a blocking sender (the worker) and a polled
/// receiver (the asynchronous body).
struct Chan {
    state: Mutex<ChanState>,
    space: Condvar,
}

struct ChanState {
    slot: Option<Message>,
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

impl Chan {
    fn lock(&self) -> MutexGuard<'_, ChanState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Sender(Arc<Chan>);

impl Sender {
    /// Waits for the slot to be free, then fills it; fails once the
    /// receiver is gone.
    fn send(&self, message: Message) -> io::Result<()> {
        let mut state = self.0.lock();
        loop {
            if state.receiver_gone {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the asynchronous body was dropped",
                ));
            }
            if state.slot.is_none() {
                state.slot = Some(message);
                let waker = state.waker.take();
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
                return Ok(());
            }
            state = self
                .0
                .space
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.lock();
            state.sender_gone = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

struct Receiver(Arc<Chan>);

impl Receiver {
    /// The next message; `None` once the sender is gone and the slot empty.
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let mut state = self.0.lock();
        if let Some(message) = state.slot.take() {
            self.0.space.notify_all();
            return Poll::Ready(Some(message));
        }
        if state.sender_gone {
            return Poll::Ready(None);
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let message = {
            let mut state = self.0.lock();
            state.receiver_gone = true;
            state.slot.take()
        };
        self.0.space.notify_all();
        drop(message);
    }
}

/// The worker's transport: relays to the asynchronous body.
struct RelaySink<'a>(&'a Sender);

impl ResponseSink for RelaySink<'_> {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.0.send(Message::Head(head))
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.0.send(Message::Data(data))
    }

    fn send_trailers(&mut self, fields: HeaderMap) -> io::Result<()> {
        self.0.send(Message::Trailers(fields))
    }

    fn send_early_hints(&mut self, fields: HeaderMap) -> io::Result<()> {
        self.0.send(Message::EarlyHints(fields))
    }
}
