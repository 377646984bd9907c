//! [`PreRead`]: the whole request body in memory before the application
//! runs, up to a limit.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{HeaderValue, StatusCode};
use rgi::{
    Application, Body, BoxError, Environ, Hints, Input, InputError, InputUse, ResponseHead,
    StartResponse, Startup, TrailerSlot,
};
use rgi_async::{AsyncApplication, AsyncBody, Step};

/// How much one non-blocking read asks for.
const STEP: usize = 16 * 1024;

/// Why [`PreRead`] produced no response on the asynchronous stack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreReadError {
    /// The server gave the request an input with no non-blocking face
    /// (`Input::is_async` is false): reading it would block the event
    /// loop's thread, so the request fails before the head (a `500`).
    /// Servers of the asynchronous interface give a non-blocking input.
    #[error("the request body has no non-blocking face; pre-reading it would block the event loop")]
    BlockingInput,
}

/// The `413 Content Too Large` answer, shared by the pre-read and the
/// body limit.
pub(crate) fn too_large() -> (ResponseHead, Bytes) {
    const TEXT: &str = "request body too large\n";
    let head = ResponseHead::new(StatusCode::PAYLOAD_TOO_LARGE)
        .with_header(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )
        .with_header(CONTENT_LENGTH, HeaderValue::from(TEXT.len()));
    (head, Bytes::from_static(TEXT.as_bytes()))
}

/// An application that sees the whole request body in memory: reads it up
/// to `limit` bytes into an [`Input`] before calling the application, and
/// answers `413 Content Too Large` without calling it when the body is
/// longer.
///
/// - A declared `content-length` over the limit is answered at once,
///   before a byte is read.
/// - A body without a declared length (chunked) is read until the limit;
///   one byte more and the answer is 413.
/// - The request's trailer section, when the server carries one, is kept:
///   the new input gives it through [`Input::trailers`] as the original
///   would have (`RGI-TRAILER-2`).
/// - The new input has both faces (blocking reads and `poll_chunk`), and
///   the `content-length` field is set to its length (`RGI-INPUT-16`);
///   `transfer-encoding` is removed, since the body is no longer framed by
///   it. A request that came with no body and no `content-length` (a
///   plain `GET`) keeps its fields as they were.
/// - A failed read (a malformed body, the server's own limit, a client
///   that stalled) is the request's error before the head: the server
///   answers the status the [`InputError`] names (`RGI-FAIL-10`).
///
/// On the synchronous stack the body is read inside `call`, blocking, as
/// any synchronous application would. On the asynchronous stack `call`
/// only starts: the body reads through the input's non-blocking face
/// ([`Input::poll_chunk`]) in its first steps, never blocking the loop's
/// thread, and calls the application once the body is in memory; an input
/// with no non-blocking face fails with [`PreReadError::BlockingInput`].
///
/// Its [`Hints`] combine its own (it reads the input whole,
/// [`InputUse::Whole`]) with the application's, the more demanding of the
/// two as `RGI-HINT-8` requires: an application behind it whose input is
/// in memory declares so itself (`InputUse::Whole`, or `InputUse::None`,
/// with `may_block: false` if nothing else blocks), and the pair may then
/// run inline on a server that honours hints. An application that
/// declares nothing keeps [`InputUse::Streaming`] and `may_block`.
///
/// # Examples
///
/// ```
/// use std::io::Read;
///
/// use http::StatusCode;
/// use rgi::ResponseHead;
/// use rgi_conformance::client::{TestClient, TestRequest};
/// use rgi_middleware::PreRead;
///
/// let echo = rgi::from_fn(|mut environ: rgi::Environ, start: &mut rgi::StartResponse<'_>| {
///     let mut body = Vec::new();
///     environ.input_mut().read_to_end(&mut body)?; // from memory, never from the client
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(body)
/// });
/// let client = TestClient::new(PreRead::new(echo, 8));
/// assert_eq!(client.request(TestRequest::post("/", "12345678"))?.text(), "12345678");
/// assert_eq!(client.request(TestRequest::post("/", "123456789"))?.status, StatusCode::PAYLOAD_TOO_LARGE);
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
pub struct PreRead<A> {
    app: Arc<A>,
    limit: usize,
}

impl<A> PreRead<A> {
    /// `app`, given request bodies of at most `limit` bytes, in memory.
    pub fn new(app: A, limit: usize) -> Self {
        PreRead {
            app: Arc::new(app),
            limit,
        }
    }

    /// The largest body passed on, in bytes.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The wrapped application.
    #[must_use]
    pub fn get_ref(&self) -> &A {
        &self.app
    }

    /// Whether the declared length alone refuses the request.
    fn declared_over(&self, environ: &Environ) -> bool {
        environ
            .input()
            .content_length()
            .is_some_and(|length| length > self.limit as u64)
    }
}

impl<A> Clone for PreRead<A> {
    fn clone(&self) -> Self {
        PreRead {
            app: Arc::clone(&self.app),
            limit: self.limit,
        }
    }
}

impl<A> fmt::Debug for PreRead<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreRead")
            .field("app", &std::any::type_name::<A>())
            .field("limit", &self.limit)
            .finish()
    }
}

/// Puts the body read into the environ as its input, with the original
/// input's trailers, and the fields that describe it.
fn install(environ: &mut Environ, body: Bytes) {
    let mut original = environ.replace_input(Input::empty());
    let declared = original.content_length();
    let length = body.len();
    // The original input has ended here, so its trailers, if any, are in.
    let input = match original.take_trailers() {
        Ok(Some(fields)) => Input::from_bytes(body).with_trailers(TrailerSlot::filled(fields)),
        _ => Input::from_bytes(body),
    };
    environ.replace_input(input);
    let headers = environ.headers_mut();
    // A request that came without a body (a plain GET: a declared length
    // of 0 and no field) keeps its fields as they were; a de-chunked one,
    // even empty, gets the length it now has.
    if declared != Some(0) || headers.contains_key(CONTENT_LENGTH) {
        headers.remove(TRANSFER_ENCODING);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
}

/// Starts the 413 answer and gives the body that sends it.
fn refuse<B>(start: &mut StartResponse<'_>) -> Result<PreReadBody<B>, BoxError> {
    let (head, text) = too_large();
    start.start(head)?;
    Ok(PreReadBody {
        state: State::Own { text: Some(text) },
    })
}

impl<A: Application> Application for PreRead<A> {
    type Body = PreReadBody<A::Body>;

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        if self.declared_over(&environ) {
            return refuse(start);
        }
        let body = match environ.input_mut().read_to_bytes(self.limit) {
            Ok(body) => body,
            Err(InputError::TooLarge { .. }) => return refuse(start),
            Err(err) => return Err(err.into()),
        };
        install(&mut environ, body);
        let body = self.app.call(environ, start)?;
        Ok(PreReadBody {
            state: State::Inner { body },
        })
    }

    fn hints(&self) -> Hints {
        let inner = self.app.hints();
        // The more demanding of the two (`RGI-HINT-8`): this reads whole.
        match inner.input {
            InputUse::Streaming => inner,
            _ => inner.with_input(InputUse::Whole),
        }
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.app.startup(startup)
    }

    fn shutdown(&self) {
        self.app.shutdown();
    }
}

/// Calls the application once the body is in memory.
type Call<B> = Box<dyn FnOnce(Environ, &mut StartResponse<'_>) -> Result<B, BoxError> + Send>;

/// A body being read on the asynchronous stack.
struct Reading<B> {
    environ: Environ,
    read: BytesMut,
    limit: usize,
    call: Call<B>,
}

impl<A: AsyncApplication> AsyncApplication for PreRead<A> {
    type Body = PreReadBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        if self.declared_over(&environ) {
            return refuse(start);
        }
        if !environ.input().is_async() {
            return Err(PreReadError::BlockingInput.into());
        }
        let app = Arc::clone(&self.app);
        let call: Call<A::Body> = Box::new(move |environ, start| app.call(environ, start));
        Ok(PreReadBody {
            state: State::Reading {
                reading: Some(Box::new(Reading {
                    environ,
                    read: BytesMut::new(),
                    limit: self.limit,
                    call,
                })),
            },
        })
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.app.startup(startup)
    }

    fn shutdown(&self) {
        self.app.shutdown();
    }
}

pin_project_lite::pin_project! {
    /// The body of a [`PreRead`] application: the application's body, or
    /// the 413 answer; on the asynchronous stack, first the reading.
    pub struct PreReadBody<B> {
        #[pin]
        state: State<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<B> {
        // Boxed: the environ is large and only this passing state holds it.
        Reading { reading: Option<Box<Reading<B>>> },
        Inner { #[pin] body: B },
        Own { text: Option<Bytes> },
    }
}

impl<B> fmt::Debug for PreReadBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Reading { .. } => "reading",
            State::Inner { .. } => "inner",
            State::Own { .. } => "answer",
        };
        f.debug_struct("PreReadBody")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// What a read step came to.
enum Read {
    Whole,
    TooLarge,
    Failed(io::Error),
}

impl<B> Reading<B> {
    /// Reads on through the non-blocking face until the body has ended,
    /// is over the limit, or fails.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Read> {
        loop {
            // One byte more than the limit allows tells "over" from "exactly".
            let room = (self.limit + 1).saturating_sub(self.read.len()).min(STEP);
            match self.environ.input_mut().poll_chunk(cx, room.max(1)) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => return Poll::Ready(Read::Whole),
                Poll::Ready(Ok(chunk)) => {
                    self.read.extend_from_slice(&chunk);
                    if self.read.len() > self.limit {
                        return Poll::Ready(Read::TooLarge);
                    }
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Read::Failed(err)),
            }
        }
    }
}

impl<B: Body> Body for PreReadBody<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match &mut self.state {
            State::Inner { body } => body.next_chunk(start),
            State::Own { text } => text.take().map(Ok),
            // Only the asynchronous stack reads in the body.
            State::Reading { .. } => None,
        }
    }

    fn size_hint(&self) -> Option<u64> {
        match &self.state {
            State::Inner { body } => body.size_hint(),
            State::Own { text } => Some(text.as_ref().map_or(0, |t| t.len() as u64)),
            State::Reading { .. } => None,
        }
    }

    fn file(&mut self) -> Option<&mut rgi::FileBody> {
        match &mut self.state {
            State::Inner { body } => body.file(),
            _ => None,
        }
    }
}

impl<B: AsyncBody> AsyncBody for PreReadBody<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { body } => return body.poll_step(cx, start),
                StateProj::Own { text } => {
                    return Poll::Ready(text.take().map(|t| Ok(Step::Chunk(t))));
                }
                StateProj::Reading { reading } => {
                    let Some(current) = reading.as_mut() else {
                        return Poll::Ready(None);
                    };
                    let read = match current.poll_read(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(read) => read,
                    };
                    let Some(current) = reading.take() else {
                        return Poll::Ready(None);
                    };
                    let Reading {
                        mut environ,
                        read: bytes,
                        call,
                        ..
                    } = *current;
                    match read {
                        Read::Whole => {
                            install(&mut environ, bytes.freeze());
                            match call(environ, start) {
                                Ok(body) => this.state.set(State::Inner { body }),
                                Err(err) => return Poll::Ready(Some(Err(err))),
                            }
                        }
                        Read::TooLarge => {
                            let (head, text) = too_large();
                            if let Err(err) = start.start(head) {
                                return Poll::Ready(Some(Err(err.into())));
                            }
                            this.state.set(State::Own { text: Some(text) });
                        }
                        Read::Failed(err) => return Poll::Ready(Some(Err(err.into()))),
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> Option<u64> {
        match &self.state {
            State::Inner { body } => body.size_hint(),
            State::Own { text } => Some(text.as_ref().map_or(0, |t| t.len() as u64)),
            State::Reading { .. } => None,
        }
    }
}
