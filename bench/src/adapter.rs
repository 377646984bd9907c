//! The thinnest honest hyper 1.x adapter for RGI applications.
//!
//! Everything that touches the RGI types lives in this module, so that a
//! change of the interface's shape (the environ built from `Parts`, the
//! head handed to the sink by value, cheaper capabilities) is adapted here
//! and nowhere else.
//!
//! The per-request path is split into the same steps the `steps` mode
//! measures: [`environ_from_parts`], [`Exchange::call_sync`] /
//! [`Exchange::call_async`], [`Exchange::pull_head_sync`] /
//! [`Exchange::poll_head_async`], and the response bodies
//! [`SyncResponseBody`] / [`AsyncResponseBody`], which hyper polls.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use rgi::{
    Address, Application, AsyncSource, Body, BoxError, Concurrency, ConnectionInfo, Environ,
    EnvironError, Input, ResponseHead, ResponseSink, ResponseState, ServerInfo,
};
use rgi_async::{AsyncApplication, AsyncBody, Capabilities, Job, Offload, OffloadError, Step};
use tokio::net::TcpStream;

/// The largest request body the synchronous inline adapter reads ahead
/// before calling the application (it cannot let an inline application
/// block the event loop on the socket, see [`pre_read`]).
pub const PRE_READ_LIMIT: usize = 1024 * 1024;

/// What the adapter tells every request of one connection, built once
/// when it is accepted: the server's description of itself (with the
/// capabilities it lends an asynchronous application, server-wide) and the
/// connection's, each shared by reference count.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    /// The server's name, port and how it runs applications.
    pub server: Arc<ServerInfo>,
    /// The connection's addresses (plain TCP: no TLS).
    pub connection: Arc<ConnectionInfo>,
}

impl ConnectionContext {
    /// The context of a connection from `peer` arriving on `local`; the
    /// server names itself by the local IP address, and lends every request
    /// `capabilities` (an asynchronous server) through its [`ServerInfo`],
    /// so that no request pays an allocation for them.
    ///
    /// # Errors
    ///
    /// What [`ServerInfo::new`] refuses (an empty name, which an address
    /// never prints as).
    pub fn new(
        local: SocketAddr,
        peer: SocketAddr,
        capabilities: Option<Capabilities>,
    ) -> Result<Self, EnvironError> {
        // Served inline on one current-thread loop, in one process.
        let concurrency = Concurrency::MULTITHREADED.with_multithread(false);
        let mut server =
            ServerInfo::new(local.ip().to_string(), local.port())?.with_concurrency(concurrency);
        if let Some(capabilities) = capabilities {
            server = server.with_extension(capabilities);
        }
        Ok(ConnectionContext {
            server: Arc::new(server),
            connection: Arc::new(
                ConnectionInfo::new()
                    .with_local_addr(Address::Tcp(local))
                    .with_peer_addr(Address::Tcp(peer)),
            ),
        })
    }

    /// The context of an accepted TCP connection, as
    /// [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// The socket's addresses cannot be read (it was already closed), or
    /// [`ConnectionContext::new`] refused them.
    pub fn of(stream: &TcpStream, capabilities: Option<Capabilities>) -> io::Result<Self> {
        Self::new(stream.local_addr()?, stream.peer_addr()?, capabilities).map_err(io::Error::other)
    }
}

/// Why the adapter ended a response without the application's answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The request could not be described to the application.
    #[error("request refused before the application: {0}")]
    Environ(#[from] EnvironError),
    /// The request body was larger than the pre-read limit.
    #[error("request body over the {limit}-byte pre-read limit")]
    BodyTooLarge {
        /// The limit, [`PRE_READ_LIMIT`].
        limit: usize,
    },
    /// Reading the request body from the connection failed.
    #[error("reading the request body failed: {0}")]
    Body(#[source] hyper::Error),
    /// The asynchronous application asked to switch to synchronous
    /// processing, which this benchmark adapter does not run (it has no
    /// worker threads); the response fails instead.
    #[error("the benchmark adapter does not run synchronous switches")]
    SwitchNotRun,
}

/// Builds the environ of one request from hyper's request head with
/// [`Environ::from_parts`]: the method, target, header map and extensions
/// move in, and the server and connection descriptions (capabilities
/// included) are shared.
///
/// # Errors
///
/// Whatever [`Environ::from_parts`] refuses (a CONNECT, a bad
/// percent-encoding, a Content-Length that disagrees with the body).
// Inlined, here and on the other per-request steps that take or return an
// environ or a response by value: those are 400 to 500 bytes, and each call
// boundary otherwise copies them (callgrind: about 60 instructions a copy).
#[inline(always)]
pub fn environ_from_parts(
    parts: Parts,
    input: Input,
    context: &ConnectionContext,
) -> Result<Environ, EnvironError> {
    Environ::from_parts(parts, input, &context.server, &context.connection)
}

/// Removes the `Transfer-Encoding` hyper has decoded (an environ carries
/// no framing of the connection's) from a request head whose body is not
/// known to be empty. hyper makes a bodiless request's body empty only
/// when nothing framed one (a chunked request always gets a streaming
/// body), so the lookup is skipped there; should such a request carry the
/// field anyway, [`Environ::from_parts`] still refuses it and the client
/// gets a 400.
pub fn remove_decoded_framing(parts: &mut Parts, body_is_empty: bool) {
    if !body_is_empty {
        parts.headers.remove(TRANSFER_ENCODING);
    }
}

/// Reads a request body whole, up to [`PRE_READ_LIMIT`], for an
/// application served inline: its blocking reads must never wait on the
/// socket from the event-loop thread (that would park the only thread that
/// could fill them). A bodiless request costs nothing.
///
/// # Errors
///
/// [`AdapterError::BodyTooLarge`] past the limit, [`AdapterError::Body`]
/// if the connection fails.
pub async fn pre_read(mut body: Incoming) -> Result<Input, AdapterError> {
    if body.is_end_stream() {
        return Ok(Input::empty());
    }
    let mut collected = BytesMut::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(AdapterError::Body)?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > PRE_READ_LIMIT {
                return Err(AdapterError::BodyTooLarge {
                    limit: PRE_READ_LIMIT,
                });
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(Input::from_bytes(collected.freeze()))
}

/// The request body as the non-blocking face of [`Input`], for an
/// asynchronous application: the connection is read only when the
/// application polls.
#[derive(Debug)]
pub struct IncomingSource(Incoming);

impl IncomingSource {
    /// The input over hyper's request body: empty when hyper knows there is
    /// none, otherwise read to its end with the length hyper framed it by.
    #[must_use]
    pub fn input(body: Incoming) -> Input {
        if body.is_end_stream() {
            return Input::empty();
        }
        let length = body.size_hint().exact();
        Input::from_async(IncomingSource(body), length)
    }
}

impl AsyncSource for IncomingSource {
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let body = &mut self.get_mut().0;
        loop {
            // Input keeps what exceeds `max` for its next read, so a frame
            // is handed over whole.
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                None => return Poll::Ready(Ok(Bytes::new())),
                Some(Err(err)) => return Poll::Ready(Err(io::Error::other(err))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Poll::Ready(Ok(data)),
                    // Empty data and trailers carry no body bytes.
                    _ => {}
                },
            }
        }
    }
}

/// The status and fields hyper's `Response` is built from.
type SentHead = (StatusCode, HeaderMap);

/// The body chunks [`ResponseState`] hands over, queued until hyper polls
/// for them. It is also the transport once hyper has the response: by then
/// the state has sent the head (it sends one at most, before any data), so
/// a head arriving here would break that promise, and is refused.
#[derive(Debug, Default)]
struct Chunks {
    /// The next chunk; nearly every pull yields at most one, so the queue
    /// behind it stays unallocated.
    next: Option<Bytes>,
    /// The chunks after `next`, taken from `taken` on. A `Vec` rather than a
    /// `VecDeque`: dropping an empty one is a capacity check, where the
    /// deque's drop cost about 35 instructions a request (callgrind).
    more: Vec<Bytes>,
    taken: usize,
}

impl Chunks {
    #[inline]
    fn take_data(&mut self) -> Option<Bytes> {
        let data = self.next.take()?;
        if !self.more.is_empty() {
            self.advance_queue();
        }
        Some(data)
    }

    /// Moves the first queued chunk to `next`: rare (a pull that yielded
    /// several chunks), so kept out of the inlined path.
    #[cold]
    fn advance_queue(&mut self) {
        if let Some(queued) = self.more.get_mut(self.taken) {
            self.next = Some(std::mem::take(queued));
            self.taken += 1;
            if self.taken == self.more.len() {
                self.more.clear();
                self.taken = 0;
            }
        }
    }

    fn has_data(&self) -> bool {
        self.next.is_some()
    }
}

impl ResponseSink for Chunks {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        Err(io::Error::other(format!(
            "a second head ({}) after hyper's response was built",
            head.status()
        )))
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        if self.next.is_none() {
            self.next = Some(data);
        } else {
            self.more.push(data);
        }
        Ok(())
    }
}

/// The transport of the call and of the pulls up to the head: it keeps the
/// head for hyper's `Response` and queues data in [`Chunks`]. The head slot
/// stays out of [`Stream`], which hyper moves about ten times per request
/// with the body (each byte of it costs about one instruction a request).
struct HeadSink<'a> {
    head: &'a mut Option<SentHead>,
    chunks: &'a mut Chunks,
}

impl ResponseSink for HeadSink<'_> {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        // The sink owns the head: its map moves on into hyper's response.
        *self.head = Some(head.into_parts());
        Ok(())
    }

    /// The declared length stays out of the map: hyper writes
    /// `content-length` itself from the body's exact size hint, which
    /// [`Stream::exact_remaining`] takes from the state's enforced length,
    /// the same number (RGI-CL-11, RGI-CL-12).
    fn send_head_with_length(
        &mut self,
        head: ResponseHead,
        _declared: Option<u64>,
    ) -> io::Result<()> {
        self.send_head(head)
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.chunks.send_data(data)
    }
}

/// What a response needs once hyper has it: the RGI state, the chunks
/// queued for hyper, and what went wrong after the head was sent.
#[derive(Debug)]
pub struct Stream {
    state: ResponseState,
    chunks: Chunks,
    /// Body bytes handed to hyper.
    delivered: u64,
    /// A failure after the head went out: hyper aborts the response with it
    /// once the data before it was delivered.
    error: Option<BoxError>,
}

impl Stream {
    /// The exact number of body bytes hyper has still to send, when the
    /// response's length is fixed: the length the state enforces less what
    /// hyper already has. This is what hyper frames by, so it comes from the
    /// state and nowhere else.
    fn exact_remaining(&self) -> Option<u64> {
        let declared = self.state.remaining_length()? + self.state.body_bytes();
        Some(declared.saturating_sub(self.delivered))
    }

    /// Applies one outcome of the body to the state. A head the state sends
    /// goes to `head`; `None` once hyper has the response.
    fn deliver(
        &mut self,
        head: Option<&mut Option<SentHead>>,
        outcome: Option<Result<Bytes, BoxError>>,
    ) -> Option<()> {
        let Stream {
            state,
            chunks,
            error,
            ..
        } = self;
        let mut head_sink;
        let sink: &mut dyn ResponseSink = match head {
            Some(head) => {
                head_sink = HeadSink { head, chunks };
                &mut head_sink
            }
            None => chunks,
        };
        match outcome {
            Some(Ok(chunk)) => {
                if let Err(err) = state.send_chunk(sink, chunk) {
                    *error = Some(err.into());
                }
                Some(())
            }
            Some(Err(err)) => {
                *error = Some(err);
                Some(())
            }
            None => {
                if let Err(err) = state.finish(sink) {
                    *error = Some(err.into());
                }
                None
            }
        }
    }
}

/// One request's response until hyper has it: the [`Stream`], and the head
/// once the state has sent it.
#[derive(Debug)]
pub struct Exchange {
    /// Kept by value while the request is answered in place; boxed only
    /// when the body outlives the head (see [`Exchange::into_response`]).
    stream: Stream,
    head: Option<SentHead>,
}

impl Exchange {
    /// The exchange for a request with this method.
    #[must_use]
    pub fn new(method: &Method) -> Self {
        Exchange {
            stream: Stream {
                state: ResponseState::new(method),
                chunks: Chunks::default(),
                delivered: 0,
                error: None,
            },
            head: None,
        }
    }
    /// Calls a synchronous application, then declares the body's exact size
    /// when it is known (issue 9, D1: the state writes it into the head
    /// unless the application's own Content-Length wins, and enforces it).
    ///
    /// # Errors
    ///
    /// The application's own error (the response is then a 500).
    #[inline(always)]
    pub fn call_sync<A: Application>(
        &mut self,
        app: &A,
        environ: Environ,
    ) -> Result<A::Body, BoxError> {
        let Exchange { stream, head } = self;
        let mut sink = HeadSink {
            head,
            chunks: &mut stream.chunks,
        };
        let body = app.call(environ, &mut stream.state.start_response(&mut sink))?;
        self.declare_size(body.size_hint());
        Ok(body)
    }

    /// Calls an asynchronous application, as [`call_sync`](Self::call_sync).
    ///
    /// # Errors
    ///
    /// The application's own error (the response is then a 500).
    #[inline(always)]
    pub fn call_async<A: AsyncApplication>(
        &mut self,
        app: &A,
        environ: Environ,
    ) -> Result<A::Body, BoxError> {
        let Exchange { stream, head } = self;
        let mut sink = HeadSink {
            head,
            chunks: &mut stream.chunks,
        };
        let body = app.call(environ, &mut stream.state.start_response(&mut sink))?;
        self.declare_size(body.size_hint());
        Ok(body)
    }

    /// Declares an exact body size to the state, which makes it the head's
    /// Content-Length unless the application gave one (issue 9, D1). The
    /// head cannot have been sent yet (only a pull sends it), and if it
    /// had, its framing would stand and the declaration rightly be refused.
    fn declare_size(&mut self, size: Option<u64>) {
        if let Some(size) = size {
            // A refusal changes nothing, which is what a sent head needs.
            self.stream.state.declare_length(size).ok();
        }
    }

    /// Whether pulling must go on before hyper can have the response.
    fn before_head(&self) -> bool {
        !self.stream.state.is_head_sent() && self.stream.error.is_none()
    }

    /// Pulls a synchronous body until the head has been sent (with the
    /// first non-empty chunk, or at the end of the body).
    pub fn pull_head_sync<B: Body>(&mut self, body: &mut Option<B>) {
        while self.before_head() {
            let Some(current) = body.as_mut() else {
                return;
            };
            let Exchange { stream, head } = self;
            let mut sink = HeadSink {
                head: &mut *head,
                chunks: &mut stream.chunks,
            };
            let outcome = current.next_chunk(&mut stream.state.start_response(&mut sink));
            if stream.deliver(Some(head), outcome).is_none() || stream.error.is_some() {
                // Closed exactly once: here, at its end or failure.
                *body = None;
            }
        }
    }

    /// Polls an asynchronous body until the head has been sent, as
    /// [`pull_head_sync`](Self::pull_head_sync).
    pub fn poll_head_async<B: AsyncBody + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut Option<B>,
    ) -> Poll<()> {
        while self.before_head() {
            let Some(current) = body.as_mut() else {
                return Poll::Ready(());
            };
            let Exchange { stream, head } = self;
            let mut sink = HeadSink {
                head: &mut *head,
                chunks: &mut stream.chunks,
            };
            let step = ready!(
                Pin::new(current).poll_step(cx, &mut stream.state.start_response(&mut sink))
            );
            if stream.deliver(Some(head), step_outcome(step)).is_none() || stream.error.is_some() {
                *body = None;
            }
        }
        Poll::Ready(())
    }

    /// Whether the response is whole once its head was sent: the state
    /// wants no more of the body (its enforced length is reached, or it
    /// answers HEAD, 204 or 304) and nothing failed. The body is then closed
    /// and the state finished at once (`RGI-BODY-16`), so the response that
    /// hyper gets carries only the queued bytes, with nothing of RGI's to
    /// keep alive, move or box.
    fn complete_at_head<B>(&mut self, body: &mut Option<B>) -> bool {
        let stream = &mut self.stream;
        if stream.error.is_some() || !stream.state.is_head_sent() {
            return false;
        }
        if body.is_none() {
            // Closed at its end, when the state was finished.
            return true;
        }
        if stream.state.wants_body() {
            return false;
        }
        // Closed exactly once, before the state finishes (RGI-BODY-11).
        *body = None;
        if let Err(err) = stream.state.finish(&mut stream.chunks) {
            stream.error = Some(err.into());
            return false;
        }
        true
    }

    /// The response hyper sends: the sent head and `body`, or a 500 when the
    /// application failed before its head went out.
    #[inline(always)]
    pub fn into_response<T>(mut self, mut body: Option<T>) -> Response<ResponseBody<T>> {
        let whole = self.complete_at_head(&mut body);
        match self.head {
            Some((status, headers)) => {
                let response_body = if whole && self.stream.chunks.more.is_empty() {
                    let remaining = self.stream.exact_remaining();
                    ResponseBody::whole(self.stream.chunks.next.take(), remaining)
                } else {
                    ResponseBody::streaming(body, Box::new(self.stream))
                };
                let mut response = Response::new(response_body);
                *response.status_mut() = status;
                // What comes back is the empty map `Response::new` made,
                // which owns no allocation: not dropping it leaks nothing and
                // saves its drop (about 50 instructions a request).
                let _empty =
                    std::mem::ManuallyDrop::new(std::mem::replace(response.headers_mut(), headers));
                response
            }
            None => {
                // Before the head nothing reached the client: a 500, and the
                // application's body (if any) is closed here.
                drop(body);
                internal_error()
            }
        }
    }
}

/// What one step of an asynchronous body means for the response: a chunk,
/// a failure (a switch this adapter does not run is one), or the end.
fn step_outcome(step: Option<Result<Step, BoxError>>) -> Option<Result<Bytes, BoxError>> {
    match step {
        Some(Ok(Step::Chunk(chunk))) => Some(Ok(chunk)),
        Some(Ok(_)) => Some(Err(AdapterError::SwitchNotRun.into())),
        Some(Err(err)) => Some(Err(err)),
        None => None,
    }
}

/// A 500 with an empty body.
fn internal_error<T>() -> Response<ResponseBody<T>> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

/// One frame for hyper, or the failure that aborts the response.
type FrameResult = Result<Frame<Bytes>, BoxError>;

/// The body of a response hyper sends for an RGI application (synchronous
/// or asynchronous, by `T`).
#[derive(Debug)]
pub struct ResponseBody<T>(Kind<T>);

#[derive(Debug)]
enum Kind<T> {
    /// The response was whole when its head went out, its bytes (if any)
    /// in one chunk: the chunk not yet given to hyper, and the exact length
    /// still to send, if fixed.
    Whole {
        data: Option<Bytes>,
        remaining: Option<u64>,
    },
    /// The application's body outlives the head.
    Streaming {
        /// `None` once it was closed.
        body: Option<T>,
        exchange: Box<Stream>,
    },
}

impl<T> ResponseBody<T> {
    fn whole(data: Option<Bytes>, remaining: Option<u64>) -> Self {
        ResponseBody(Kind::Whole { data, remaining })
    }

    fn streaming(body: Option<T>, exchange: Box<Stream>) -> Self {
        ResponseBody(Kind::Streaming { body, exchange })
    }

    fn empty() -> Self {
        Self::whole(None, Some(0))
    }

    /// The next frame already produced (data, then a failure), if any.
    fn ready_frame(&mut self) -> Option<Poll<Option<FrameResult>>> {
        let (body, exchange) = match &mut self.0 {
            Kind::Whole { data, remaining } => {
                let frame = data.take().map(|data| {
                    if let Some(left) = remaining {
                        *left = left.saturating_sub(data.len() as u64);
                    }
                    Ok(Frame::data(data))
                });
                return Some(Poll::Ready(frame));
            }
            Kind::Streaming { body, exchange } => (body, exchange),
        };
        if let Some(data) = exchange.chunks.take_data() {
            exchange.delivered += data.len() as u64;
            return Some(Poll::Ready(Some(Ok(Frame::data(data)))));
        }
        if let Some(err) = exchange.error.take() {
            *body = None;
            return Some(Poll::Ready(Some(Err(err))));
        }
        if body.is_none() || !exchange.state.wants_body() {
            // At the declared length the rest cannot reach the client; stop
            // pulling and close the body now.
            *body = None;
            return Some(Poll::Ready(None));
        }
        None
    }

    /// Whether hyper may stop polling. With a fixed length only once all of
    /// it was delivered: hyper writes no Content-Length for a body that is
    /// over before it starts, and a HEAD answer must still carry the GET's
    /// length (nothing is delivered for HEAD, so its body never looks over
    /// early; polling it ends it).
    fn end_of_stream(&self) -> bool {
        match &self.0 {
            Kind::Whole { data, remaining } => {
                data.is_none() && remaining.is_none_or(|left| left == 0)
            }
            Kind::Streaming { body, exchange } => {
                !exchange.chunks.has_data()
                    && exchange.error.is_none()
                    && match exchange.exact_remaining() {
                        Some(remaining) => remaining == 0,
                        None => body.is_none() || !exchange.state.wants_body(),
                    }
            }
        }
    }

    fn hint(&self) -> SizeHint {
        let exact = match &self.0 {
            Kind::Whole { remaining, .. } => *remaining,
            Kind::Streaming { exchange, .. } => exchange.exact_remaining(),
        };
        exact.map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// The response body of a synchronous application served inline: each
/// chunk is pulled on the event loop when hyper asks for it.
pub type SyncResponseBody<B> = ResponseBody<SyncBody<B>>;

/// The response body of an asynchronous application, polled by hyper.
pub type AsyncResponseBody<B> = ResponseBody<AsyncBodyOf<B>>;

/// Marks a synchronous RGI body inside [`ResponseBody`].
#[derive(Debug)]
pub struct SyncBody<B>(pub B);

/// Marks an asynchronous RGI body inside [`ResponseBody`].
#[derive(Debug)]
pub struct AsyncBodyOf<B>(pub B);

impl<B: Body + Unpin> HttpBody for ResponseBody<SyncBody<B>> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(frame) = this.ready_frame() {
                return frame;
            }
            let Kind::Streaming {
                body: slot,
                exchange,
            } = &mut this.0
            else {
                return Poll::Ready(None);
            };
            let Some(SyncBody(body)) = slot else {
                return Poll::Ready(None);
            };
            let outcome = body.next_chunk(&mut exchange.state.start_response(&mut exchange.chunks));
            if exchange.deliver(None, outcome).is_none() {
                *slot = None;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end_of_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.hint()
    }
}

impl<B: AsyncBody + Unpin> HttpBody for ResponseBody<AsyncBodyOf<B>> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(frame) = this.ready_frame() {
                return frame;
            }
            let Kind::Streaming {
                body: slot,
                exchange,
            } = &mut this.0
            else {
                return Poll::Ready(None);
            };
            let Some(AsyncBodyOf(body)) = slot else {
                return Poll::Ready(None);
            };
            let step = ready!(
                Pin::new(body)
                    .poll_step(cx, &mut exchange.state.start_response(&mut exchange.chunks))
            );
            if exchange.deliver(None, step_outcome(step)).is_none() {
                *slot = None;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end_of_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.hint()
    }
}

/// The read-ahead of a request with a body, then the application's answer.
type PreReadReply<'a, B> = Pin<Box<dyn Future<Output = Response<SyncResponseBody<B>>> + 'a>>;

/// The answer to one request for a synchronous application served inline:
/// ready at once for a bodiless request (answered inside
/// [`Service::call`](hyper::service::Service::call), so no future carries
/// the request across a poll), or after the body was read ahead.
pub enum SyncReply<'a, A: Application> {
    /// The response, already built.
    Ready(Option<Response<SyncResponseBody<A::Body>>>),
    /// The request body is being read ahead; the application is called once
    /// it is whole.
    PreRead(PreReadReply<'a, A::Body>),
}

impl<A: Application> std::fmt::Debug for SyncReply<'_, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyncReply::Ready(_) => "SyncReply::Ready",
            SyncReply::PreRead(_) => "SyncReply::PreRead",
        })
    }
}

impl<A: Application> Future for SyncReply<'_, A>
where
    A::Body: Unpin,
{
    type Output = Result<Response<SyncResponseBody<A::Body>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            // Polled once after it is ready; a second poll after completion
            // is a caller's bug, answered with a 500 rather than a panic.
            SyncReply::Ready(response) => {
                Poll::Ready(Ok(response.take().unwrap_or_else(internal_error)))
            }
            SyncReply::PreRead(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

/// Answers one request with a synchronous application, inline on the
/// event loop: at once when the request has no body, otherwise after
/// reading it ahead ([`pre_read`]).
pub fn respond_sync<'a, A: Application>(
    app: &'a A,
    request: Request<Incoming>,
    context: &'a ConnectionContext,
) -> SyncReply<'a, A>
where
    A::Body: Unpin,
{
    let (mut parts, body) = request.into_parts();
    if body.is_end_stream() {
        return SyncReply::Ready(Some(respond_sync_to(app, parts, Input::empty(), context)));
    }
    remove_decoded_framing(&mut parts, false);
    SyncReply::PreRead(Box::pin(async move {
        match pre_read(body).await {
            Ok(input) => respond_sync_to(app, parts, input, context),
            Err(AdapterError::BodyTooLarge { .. }) => status_only(StatusCode::PAYLOAD_TOO_LARGE),
            Err(_) => status_only(StatusCode::BAD_REQUEST),
        }
    }))
}

/// The synchronous steps of [`respond_sync`] once the body is an [`Input`].
#[inline(always)]
pub fn respond_sync_to<A: Application>(
    app: &A,
    parts: Parts,
    input: Input,
    context: &ConnectionContext,
) -> Response<SyncResponseBody<A::Body>>
where
    A::Body: Unpin,
{
    // The environ goes from the result straight into the call: bound to a
    // local first, it cost 20 to 30 more instructions a request.
    let mut exchange = Exchange::new(&parts.method);
    let called = match environ_from_parts(parts, input, context) {
        Ok(environ) => exchange.call_sync(app, environ),
        Err(_) => return status_only(StatusCode::BAD_REQUEST),
    };
    let Ok(body) = called else {
        return internal_error();
    };
    let mut body = Some(body);
    exchange.pull_head_sync(&mut body);
    exchange.into_response(body.map(SyncBody))
}

/// The answer to one request for an asynchronous application: the
/// application is called inside [`Service::call`](hyper::service::Service::call),
/// and the future polls its body until the head is sent.
#[derive(Debug)]
pub enum AsyncReply<B> {
    /// Answered without polling the body (a refused request, a failed call).
    Ready(Option<Response<AsyncResponseBody<B>>>),
    /// Polling the body for its head (it was not ready at the first poll).
    Head {
        /// The response so far, boxed: it waits across polls, and hyper
        /// moves this future.
        exchange: Option<Box<Exchange>>,
        /// The application's body, `None` once it was closed.
        body: Option<B>,
    },
}

impl<B: AsyncBody + Unpin> Future for AsyncReply<B> {
    type Output = Result<Response<AsyncResponseBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            // Polled after completion only by a caller's bug: a 500 rather
            // than a panic.
            AsyncReply::Ready(response) => {
                Poll::Ready(Ok(response.take().unwrap_or_else(internal_error)))
            }
            AsyncReply::Head { exchange, body } => {
                let Some(current) = exchange.as_mut() else {
                    return Poll::Ready(Ok(internal_error()));
                };
                ready!(current.poll_head_async(cx, body));
                let response = match exchange.take() {
                    Some(done) => (*done).into_response(body.take().map(AsyncBodyOf)),
                    None => internal_error(),
                };
                Poll::Ready(Ok(response))
            }
        }
    }
}

/// Answers one request with an asynchronous application: calls it now, and
/// returns the future that polls its body to the head.
pub fn respond_async<A: AsyncApplication>(
    app: &A,
    request: Request<Incoming>,
    context: &ConnectionContext,
) -> AsyncReply<A::Body>
where
    A::Body: Unpin,
{
    let (mut parts, body) = request.into_parts();
    remove_decoded_framing(&mut parts, body.is_end_stream());
    let input = IncomingSource::input(body);
    let mut exchange = Exchange::new(&parts.method);
    let called = match environ_from_parts(parts, input, context) {
        Ok(environ) => exchange.call_async(app, environ),
        Err(_) => return AsyncReply::Ready(Some(status_only(StatusCode::BAD_REQUEST))),
    };
    let Ok(body) = called else {
        return AsyncReply::Ready(Some(internal_error()));
    };
    // A first poll here, with no waker to keep: a body whose head is ready
    // at once (the common case) is answered without a future that carries
    // the exchange. A body that is not ready is polled again at once by
    // hyper, with the task's waker, which replaces this registration; a
    // spurious poll is one every body tolerates (RGIA-APP-6).
    let mut body = Some(body);
    let mut first = Context::from_waker(std::task::Waker::noop());
    if exchange.poll_head_async(&mut first, &mut body).is_ready() {
        return AsyncReply::Ready(Some(exchange.into_response(body.map(AsyncBodyOf))));
    }
    AsyncReply::Head {
        exchange: Some(Box::new(exchange)),
        body,
    }
}

/// A response the adapter gives itself, without calling the application.
fn status_only<T>(status: StatusCode) -> Response<ResponseBody<T>> {
    let mut response = internal_error();
    *response.status_mut() = status;
    response
}

/// Serves one connection with a synchronous application inline, until the
/// client closes it; counts the requests answered.
///
/// # Errors
///
/// hyper's, when the connection fails.
pub async fn serve_sync<A: Application>(
    app: Arc<A>,
    stream: TcpStream,
    served: Arc<AtomicU64>,
) -> Result<(), hyper::Error>
where
    A::Body: Unpin,
{
    let Ok(context) = ConnectionContext::of(&stream, None) else {
        return Ok(());
    };
    let service = hyper::service::service_fn(|request| {
        // Counted when answered or when the read-ahead starts; a request
        // whose body then fails is answered with a 4xx, still one answer.
        served.fetch_add(1, Ordering::Relaxed);
        respond_sync(&*app, request, &context)
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
}

/// Serves one connection with an asynchronous application until the client
/// closes it; counts the requests answered.
///
/// # Errors
///
/// hyper's, when the connection fails.
pub async fn serve_async<A: AsyncApplication>(
    app: Arc<A>,
    stream: TcpStream,
    served: Arc<AtomicU64>,
) -> Result<(), hyper::Error>
where
    A::Body: Unpin,
{
    let Ok(context) = ConnectionContext::of(&stream, Some(connection_capabilities())) else {
        return Ok(());
    };
    let service = hyper::service::service_fn(|request| {
        served.fetch_add(1, Ordering::Relaxed);
        respond_async(&*app, request, &context)
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
}

/// The capabilities lent to every request of a connection: offload onto
/// tokio's blocking pool, bounded.
#[must_use]
pub fn connection_capabilities() -> Capabilities {
    Capabilities::builder(Offload::new(BlockingPool::new(64))).build()
}

/// An offload service over tokio's blocking threads that accepts at most
/// `capacity` jobs at once, so the queue is bounded.
#[derive(Debug)]
pub struct BlockingPool {
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
}

impl BlockingPool {
    /// A pool accepting at most `capacity` jobs at once.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        BlockingPool {
            in_flight: Arc::new(AtomicUsize::new(0)),
            capacity,
        }
    }
}

impl rgi_async::OffloadService for BlockingPool {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(OffloadError::ShutDown);
        };
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < self.capacity).then_some(count + 1)
            });
        if taken.is_err() {
            return Err(OffloadError::Saturated {
                capacity: self.capacity,
            });
        }
        let in_flight = Arc::clone(&self.in_flight);
        runtime.spawn_blocking(move || {
            job.run();
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
        Ok(())
    }
}
