//! rgi-middleware's overhead (issue 15, item 1): the hello application
//! bare, behind a hand-written middleware, and behind the same middleware
//! written as an [`rgi_middleware::Middleware`] and run by
//! [`rgi_middleware::Wrapped`], for both stacks, driven in process.
//!
//! No sockets and no HTTP: each request is an environ built from a request
//! head, a [`ResponseState`] and a [`Recorder`] sink, the body pulled (or
//! polled) to its end. What differs between stacks is then only the
//! middleware, which an HTTP server's parsing would drown.
//!
//! Two middlewares, each written twice:
//!
//! - **header**: adds `x-served-by: rgi` to every response head
//!   ([`AddHeader`] by hand, [`HeaderMiddleware`] for `Wrapped`);
//! - **count**: counts the body bytes it sees (chunks and writes), and puts
//!   the count in an `x-body-bytes` trailer at the end, or into the inner
//!   application's own trailers ([`CountBytes`] by hand, [`CountMiddleware`]
//!   for `Wrapped`, which says `BodyAccess::Observe`).
//!
//! The hand-written ones are what a careful author writes for these two
//! jobs: an [`Intercept`] on the handle for `call` and every step, the size
//! hint forwarded, no allocation. They do forward an asynchronous body's
//! switch to synchronous processing (wrapping the continuation's handle
//! and body), because a header or a count would otherwise be lost for an
//! inner body that switches; that costs nothing on a path that does not
//! switch. They do not forward a file body for the count (its bytes would
//! pass unseen), as `Wrapped` does not under `Observe`. Their asynchronous
//! bodies take an `Unpin` inner body (the hello body is `Bytes`) rather
//! than project a pin; that changes no instruction of the measured path.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method};
use rgi::{
    Application, Body, BoxError, Environ, FileBody, Hints, Input, Intercept, ResponseHead,
    ResponseSink, ResponseState, StartResponse, Startup,
};
use rgi_async::{AsyncApplication, AsyncBody, Step, SyncSwitch};
use rgi_middleware::{BodyAccess, Emit, Incoming, Middleware};

use crate::adapter::{ConnectionContext, environ_from_parts};
use crate::apps::{async_hello, sync_hello};
use crate::steps::request_parts;

/// The field the header-adding middleware adds.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");

/// Its value.
pub const SERVED_BY_VALUE: HeaderValue = HeaderValue::from_static("rgi");

/// The trailer the byte-counting middleware gives.
pub const BODY_BYTES: HeaderName = HeaderName::from_static("x-body-bytes");

/// The two stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `rgi::Application`, pulled.
    Sync,
    /// `rgi_async::AsyncApplication`, polled.
    Async,
}

impl Flavor {
    /// Both, in report order.
    pub const ALL: [Flavor; 2] = [Flavor::Sync, Flavor::Async];

    /// The command-line name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Sync => "sync",
            Flavor::Async => "async",
        }
    }

    /// The flavor named `name`.
    ///
    /// # Errors
    ///
    /// [`MwError::Usage`] for any other name.
    pub fn parse(name: &str) -> Result<Self, MwError> {
        Self::ALL
            .into_iter()
            .find(|flavor| flavor.name() == name)
            .ok_or_else(|| MwError::Usage(format!("no flavor {name:?}: sync or async")))
    }
}

/// What answers: the hello application bare or behind one of the
/// middlewares, hand-written or wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// The hello application alone.
    Bare,
    /// Behind [`AddHeader`].
    HeaderHand,
    /// Behind [`HeaderMiddleware`] in `Wrapped`.
    HeaderWrapped,
    /// Behind [`CountBytes`].
    CountHand,
    /// Behind [`CountMiddleware`] in `Wrapped`.
    CountWrapped,
}

impl Stack {
    /// Every stack, in report order.
    pub const ALL: [Stack; 5] = [
        Stack::Bare,
        Stack::HeaderHand,
        Stack::HeaderWrapped,
        Stack::CountHand,
        Stack::CountWrapped,
    ];

    /// The command-line name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Stack::Bare => "bare",
            Stack::HeaderHand => "header-hand",
            Stack::HeaderWrapped => "header-wrapped",
            Stack::CountHand => "count-hand",
            Stack::CountWrapped => "count-wrapped",
        }
    }

    /// The stack named `name`.
    ///
    /// # Errors
    ///
    /// [`MwError::Usage`] for any other name.
    pub fn parse(name: &str) -> Result<Self, MwError> {
        Self::ALL
            .into_iter()
            .find(|stack| stack.name() == name)
            .ok_or_else(|| MwError::Usage(format!("no stack {name:?}")))
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MwError {
    /// A name on the command line is not known.
    #[error("{0}")]
    Usage(String),
    /// The environ, the call, a step, or the state's rules failed; none
    /// should for the hello application.
    #[error("request failed: {0}")]
    Request(BoxError),
    /// An asynchronous body asked to wait; the hello body never does.
    #[error("the body asked to wait")]
    Pending,
    /// An asynchronous body switched; the hello body never does, and this
    /// driver has no worker thread to run a continuation on.
    #[error("the body switched to synchronous processing")]
    Switched,
}

fn failed(err: impl Into<BoxError>) -> MwError {
    MwError::Request(err.into())
}

// ---------------------------------------------------------------------------
// The middlewares, written for `Wrapped`.

/// Adds [`SERVED_BY`] to every head, as a [`Middleware`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderMiddleware;

impl Middleware for HeaderMiddleware {
    type State = ();

    fn on_request(&self, _request: &mut Incoming<'_>) {}

    fn on_head(&self, _state: &mut (), head: &mut ResponseHead) {
        head.headers_mut().insert(SERVED_BY, SERVED_BY_VALUE);
    }
}

/// Counts body bytes into a [`BODY_BYTES`] trailer, as a [`Middleware`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CountMiddleware;

impl Middleware for CountMiddleware {
    type State = u64;

    fn on_request(&self, _request: &mut Incoming<'_>) -> u64 {
        0
    }

    fn body_access(&self, _state: &u64) -> BodyAccess {
        BodyAccess::Observe
    }

    fn on_chunk(&self, count: &mut u64, chunk: Bytes, out: &mut Emit<'_>) {
        *count += chunk.len() as u64;
        out.push(chunk);
    }

    fn on_trailers(&self, count: &mut u64, fields: &mut HeaderMap) {
        fields.insert(BODY_BYTES, HeaderValue::from(*count));
    }
}

// ---------------------------------------------------------------------------
// The same, written by hand.

/// The hello application (or any) behind a hand-written header adder:
/// [`AddHeaderHook`] on the handle of `call` and of every step.
#[derive(Debug, Clone, Copy)]
pub struct AddHeader<A>(pub A);

/// The [`Intercept`] that adds [`SERVED_BY`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AddHeaderHook;

impl Intercept for AddHeaderHook {
    fn on_start(&mut self, head: &mut ResponseHead) {
        head.headers_mut().insert(SERVED_BY, SERVED_BY_VALUE);
    }
}

/// [`AddHeader`]'s body: the inner body, its steps intercepted.
#[derive(Debug)]
pub struct AddHeaderBody<B>(B);

impl<A: Application> Application for AddHeader<A> {
    type Body = AddHeaderBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let body = self
            .0
            .call(environ, &mut start.intercept(&mut AddHeaderHook))?;
        Ok(AddHeaderBody(body))
    }

    fn hints(&self) -> Hints {
        self.0.hints()
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.0.startup(startup)
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}

impl<A: AsyncApplication> AsyncApplication for AddHeader<A>
where
    A::Body: Unpin,
{
    type Body = AddHeaderBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let body = self
            .0
            .call(environ, &mut start.intercept(&mut AddHeaderHook))?;
        Ok(AddHeaderBody(body))
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.0.startup(startup)
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}

impl<B: Body> Body for AddHeaderBody<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.0.next_chunk(&mut start.intercept(&mut AddHeaderHook))
    }

    fn size_hint(&self) -> Option<u64> {
        self.0.size_hint()
    }

    // The bytes are untouched: a server may send the file itself.
    fn file(&mut self) -> Option<&mut FileBody> {
        self.0.file()
    }
}

impl<B: AsyncBody + Unpin> AsyncBody for AddHeaderBody<B> {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let step = Pin::new(&mut self.0).poll_step(cx, &mut start.intercept(&mut AddHeaderHook));
        match step {
            // A head the continuation starts must get the field too.
            Poll::Ready(Some(Ok(Step::Switch(switch)))) => {
                let continuation = switch.into_continuation();
                Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |start| {
                    let body = continuation(&mut start.intercept(&mut AddHeaderHook))?;
                    Ok(AddHeaderBody(body))
                })))))
            }
            other => other,
        }
    }

    fn size_hint(&self) -> Option<u64> {
        self.0.size_hint()
    }
}

/// The hello application (or any) behind a hand-written byte counter.
#[derive(Debug, Clone, Copy)]
pub struct CountBytes<A>(pub A);

/// [`CountBytes`]'s body: the inner body, the count, and whether the
/// inner application gave trailers of its own (the count went into them).
#[derive(Debug)]
pub struct CountBody<B> {
    inner: B,
    count: Counted,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counted {
    bytes: u64,
    trailers_given: bool,
    ended: bool,
}

/// The [`Intercept`] that counts writes and puts the count into the inner
/// application's own trailers.
#[derive(Debug)]
struct CountHook<'a>(&'a mut Counted);

impl Intercept for CountHook<'_> {
    fn on_write(&mut self, data: &mut Bytes) {
        self.0.bytes += data.len() as u64;
    }

    fn on_trailers(&mut self, fields: &mut HeaderMap) {
        self.0.trailers_given = true;
        fields.insert(BODY_BYTES, HeaderValue::from(self.0.bytes));
    }
}

impl Counted {
    /// One step's outcome: a chunk counted, or at the end the trailer
    /// given unless the inner application gave its own.
    fn after(
        &mut self,
        step: Option<Result<Bytes, BoxError>>,
        start: &mut StartResponse<'_>,
    ) -> Option<Result<Bytes, BoxError>> {
        match step {
            Some(Ok(chunk)) => {
                self.bytes += chunk.len() as u64;
                Some(Ok(chunk))
            }
            Some(Err(err)) => Some(Err(err)),
            None => {
                if !self.trailers_given && !self.ended {
                    self.ended = true;
                    let mut fields = HeaderMap::new();
                    fields.insert(BODY_BYTES, HeaderValue::from(self.bytes));
                    if let Err(err) = start.send_trailers(fields) {
                        return Some(Err(err.into()));
                    }
                }
                None
            }
        }
    }
}

impl<A: Application> Application for CountBytes<A> {
    type Body = CountBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let mut count = Counted::default();
        let inner = self
            .0
            .call(environ, &mut start.intercept(&mut CountHook(&mut count)))?;
        Ok(CountBody { inner, count })
    }

    fn hints(&self) -> Hints {
        self.0.hints()
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.0.startup(startup)
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}

impl<A: AsyncApplication> AsyncApplication for CountBytes<A>
where
    A::Body: Unpin,
{
    type Body = CountBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let mut count = Counted::default();
        let inner = self
            .0
            .call(environ, &mut start.intercept(&mut CountHook(&mut count)))?;
        Ok(CountBody { inner, count })
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.0.startup(startup)
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}

impl<B: Body> Body for CountBody<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        let step = self
            .inner
            .next_chunk(&mut start.intercept(&mut CountHook(&mut self.count)));
        self.count.after(step, start)
    }

    // Same length, so the hint stays; no file body: its bytes would not be
    // counted.
    fn size_hint(&self) -> Option<u64> {
        self.inner.size_hint()
    }
}

impl<B: AsyncBody + Unpin> AsyncBody for CountBody<B> {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner)
            .poll_step(cx, &mut start.intercept(&mut CountHook(&mut this.count)));
        let Poll::Ready(step) = polled else {
            return Poll::Pending;
        };
        let step = match step {
            Some(Ok(Step::Chunk(chunk))) => Some(Ok(chunk)),
            Some(Ok(Step::Switch(switch))) => {
                // The count moves into the continuation with the response.
                let mut count = this.count;
                let continuation = switch.into_continuation();
                return Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |start| {
                    let inner = continuation(&mut start.intercept(&mut CountHook(&mut count)))?;
                    Ok(CountBody { inner, count })
                })))));
            }
            Some(Ok(other)) => return Poll::Ready(Some(Ok(other))),
            Some(Err(err)) => Some(Err(err)),
            None => None,
        };
        Poll::Ready(this.count.after(step, start).map(|r| r.map(Step::Chunk)))
    }

    fn size_hint(&self) -> Option<u64> {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------
// The driver.

/// A minimal [`ResponseSink`] that keeps the last response: its head, its
/// chunks and its trailers. Cleared for each request, it keeps its chunk
/// list's capacity, so after the first request it allocates nothing.
#[derive(Debug, Default)]
pub struct Recorder {
    head: Option<ResponseHead>,
    body: Vec<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Recorder {
    fn clear(&mut self) {
        self.head = None;
        self.body.clear();
        self.trailers = None;
    }

    /// The last response as text a test can compare: the status, the
    /// fields in order, a blank line, the body, and the trailers after
    /// another blank line.
    #[must_use]
    pub fn wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(head) = &self.head else {
            return b"(no head)".to_vec();
        };
        out.extend_from_slice(head.status().as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
        fields(&mut out, head.headers());
        out.extend_from_slice(b"\r\n");
        for chunk in &self.body {
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(b"\r\n");
        if let Some(trailers) = &self.trailers {
            fields(&mut out, trailers);
        }
        out
    }
}

fn fields(out: &mut Vec<u8>, map: &HeaderMap) {
    for (name, value) in map {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

impl ResponseSink for Recorder {
    fn send_head(&mut self, head: ResponseHead) -> std::io::Result<()> {
        self.head = Some(head);
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> std::io::Result<()> {
        self.body.push(data);
        Ok(())
    }

    fn send_trailers(&mut self, fields: HeaderMap) -> std::io::Result<()> {
        self.trailers = Some(fields);
        Ok(())
    }
}

/// One request's fixed parts: the connection, the host field, the sink.
#[derive(Debug)]
pub struct Driver {
    connection: ConnectionContext,
    host: HeaderValue,
    /// What the last request answered.
    pub sink: Recorder,
}

impl Driver {
    /// A driver for `flavor` (the asynchronous one lends capabilities, as
    /// the interface benchmark's adapter does).
    ///
    /// # Errors
    ///
    /// The connection context cannot be built.
    pub fn new(flavor: Flavor) -> Result<Self, MwError> {
        let capabilities = (flavor == Flavor::Async).then(crate::adapter::connection_capabilities);
        let connection = ConnectionContext::new(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 50000)),
            capabilities,
        )
        .map_err(failed)?;
        Ok(Driver {
            connection,
            host: HeaderValue::from_static("127.0.0.1:8080"),
            sink: Recorder::default(),
        })
    }

    fn environ(&self) -> Result<(Environ, ResponseState), MwError> {
        let parts = black_box(request_parts(&self.host));
        let environ =
            environ_from_parts(parts, Input::empty(), &self.connection).map_err(failed)?;
        let mut state = ResponseState::new(&Method::GET);
        // Trailers go to the sink, so the count's trailer is seen.
        state.enable_trailers();
        Ok((environ, state))
    }

    /// One request through a synchronous application: called, the body's
    /// exact size declared, pulled to its end, finished, dropped.
    ///
    /// # Errors
    ///
    /// See [`MwError`].
    pub fn sync_once<A: Application>(&mut self, app: &A) -> Result<(), MwError> {
        let (environ, mut state) = self.environ()?;
        self.sink.clear();
        let sink = &mut self.sink;
        let mut body = app
            .call(environ, &mut state.start_response(sink))
            .map_err(MwError::Request)?;
        // A head already sent (by a write in `call`) has its framing.
        if let (false, Some(length)) = (state.is_head_sent(), Body::size_hint(&body)) {
            state.declare_length(length).map_err(failed)?;
        }
        // Pulled to the end, not only to the declared length, so a
        // trailer given at the end is seen (a server sending trailers
        // must do the same).
        while let Some(chunk) = body.next_chunk(&mut state.start_response(sink)) {
            let chunk = chunk.map_err(MwError::Request)?;
            state.send_chunk(sink, chunk).map_err(failed)?;
        }
        state.finish(sink).map_err(failed)?;
        drop(body);
        Ok(())
    }

    /// One request through an asynchronous application, polled with a
    /// no-op waker.
    ///
    /// # Errors
    ///
    /// See [`MwError`]; [`MwError::Pending`] and [`MwError::Switched`] for
    /// a body that waits or switches.
    pub fn async_once<A: AsyncApplication>(&mut self, app: &A) -> Result<(), MwError> {
        let (environ, mut state) = self.environ()?;
        self.sink.clear();
        let sink = &mut self.sink;
        let body = app
            .call(environ, &mut state.start_response(sink))
            .map_err(MwError::Request)?;
        let mut body = std::pin::pin!(body);
        // A head already sent (by a write in `call`) has its framing.
        if let (false, Some(length)) = (state.is_head_sent(), AsyncBody::size_hint(&*body)) {
            state.declare_length(length).map_err(failed)?;
        }
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            match body
                .as_mut()
                .poll_step(&mut cx, &mut state.start_response(sink))
            {
                Poll::Ready(Some(Ok(Step::Chunk(chunk)))) => {
                    state.send_chunk(sink, chunk).map_err(failed)?;
                }
                Poll::Ready(Some(Ok(_))) => return Err(MwError::Switched),
                Poll::Ready(Some(Err(err))) => return Err(MwError::Request(err)),
                Poll::Ready(None) => break,
                Poll::Pending => return Err(MwError::Pending),
            }
        }
        state.finish(sink).map_err(failed)?;
        Ok(())
    }

    /// `n` requests through `stack` of `flavor`, its application built
    /// once for them (as [`run`] does).
    ///
    /// # Errors
    ///
    /// See [`MwError`].
    pub fn repeat(&mut self, flavor: Flavor, stack: Stack, n: u64) -> Result<(), MwError> {
        run_on(self, flavor, stack, n)
    }
}

fn repeat_sync<A: Application>(driver: &mut Driver, app: &A, n: u64) -> Result<(), MwError> {
    for _ in 0..n {
        driver.sync_once(app)?;
    }
    Ok(())
}

fn repeat_async<A: AsyncApplication>(driver: &mut Driver, app: &A, n: u64) -> Result<(), MwError> {
    for _ in 0..n {
        driver.async_once(app)?;
    }
    Ok(())
}

fn run_on(driver: &mut Driver, flavor: Flavor, stack: Stack, n: u64) -> Result<(), MwError> {
    match flavor {
        Flavor::Sync => {
            let app = sync_hello();
            match stack {
                Stack::Bare => repeat_sync(driver, &app, n),
                Stack::HeaderHand => repeat_sync(driver, &AddHeader(app), n),
                Stack::HeaderWrapped => repeat_sync(driver, &HeaderMiddleware.wrap(app), n),
                Stack::CountHand => repeat_sync(driver, &CountBytes(app), n),
                Stack::CountWrapped => repeat_sync(driver, &CountMiddleware.wrap(app), n),
            }
        }
        Flavor::Async => {
            let app = async_hello();
            match stack {
                Stack::Bare => repeat_async(driver, &app, n),
                Stack::HeaderHand => repeat_async(driver, &AddHeader(app), n),
                Stack::HeaderWrapped => repeat_async(driver, &HeaderMiddleware.wrap(app), n),
                Stack::CountHand => repeat_async(driver, &CountBytes(app), n),
                Stack::CountWrapped => repeat_async(driver, &CountMiddleware.wrap(app), n),
            }
        }
    }
}

/// Drives `n` requests through `stack` of `flavor` (what `rgi-bench mw`
/// runs under callgrind, twice, to subtract).
///
/// # Errors
///
/// See [`MwError`].
pub fn run(flavor: Flavor, stack: Stack, n: u64) -> Result<(), MwError> {
    let mut driver = Driver::new(flavor)?;
    run_on(&mut driver, flavor, stack, n)
}
