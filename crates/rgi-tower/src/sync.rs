//! A synchronous [`rgi::Application`] as a tower service, dispatched from
//! its hints: inline on the runtime, inline after a pre-read, or on the
//! pool.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body as HttpBody, SizeHint};
use rgi::{
    Application, Body, BoxError, ConnectionInfo, Environ, Hints, Input, InputError, InputUse,
    ResponseState,
};
use tower_service::Service;

use crate::body::{
    ResponseBody, failure_response, relayed_response, status_only, unavailable, with_head,
};
use crate::host::{Host, HostInner};
use crate::pool::{ConnectionPool, PoolError};
use crate::relay::{Relay, RelayHead, run_on_worker};
use crate::request::{
    PreRead, RequestSource, mark_extended_connect, normalize_authority, remove_decoded_framing,
    response_takes_trailers, trailer_slot,
};
use crate::response::{
    Driver, FrameResult, HeadSink, Outcome, ResponseError, SentHead, Stream, drop_contained,
    end_of_stream, panic_message, ready_frame, stream_hint,
};

/// How a synchronous application is run, from its hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dispatch {
    /// Never blocks and reads no input: called on the runtime thread.
    Inline,
    /// Never blocks, reads its input whole: called on the runtime thread
    /// once the body is in memory.
    PreRead,
    /// Anything else: on a pool worker, reading its input blocking.
    Pool,
}

impl Dispatch {
    fn of(hints: Hints) -> Self {
        match (hints.may_block, hints.input) {
            (false, InputUse::None) => Dispatch::Inline,
            (false, InputUse::Whole) => Dispatch::PreRead,
            _ => Dispatch::Pool,
        }
    }
}

/// A synchronous RGI application served as a tower service.
///
/// The dispatch follows the application's [`Hints`]: one that never
/// blocks and reads no input runs inline on the runtime (a read that would
/// wait for the client fails with [`InputError::WouldBlockThread`] instead
/// of parking the runtime); one that never blocks and reads its input
/// whole runs inline once the body was read into memory (`413` past the
/// host's pre-read limit); any other runs on the host's [`Pool`](crate::Pool),
/// reading its input blocking from the connection as it goes, its output
/// relayed as hyper asks for it (`503` with `Retry-After` when the pool
/// is full). A request without a body never waits for a pre-read.
///
/// [`connection`](Self::connection) gives the service for one connection.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use http_body_util::{BodyExt, Empty};
/// use tower::ServiceExt;
/// use rgi::{ConnectionInfo, Hints, InputUse, ResponseHead, ServerInfo};
/// use rgi_tower::{Host, SyncService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = rgi::from_fn(|_environ, start| {
///     start.start(ResponseHead::new(http::StatusCode::OK))?;
///     Ok(String::from("hello"))
/// })
/// .with_hints(Hints::default().with_input(InputUse::None).with_may_block(false));
/// let service = SyncService::new(app, Host::builder(ServerInfo::new("localhost", 80)?).build());
///
/// let request = http::Request::get("/").body(Empty::<bytes::Bytes>::new())?;
/// let response = service.connection(Arc::new(ConnectionInfo::new())).oneshot(request).await?;
/// // The length the host declared for the body goes to hyper as the body's
/// // exact size, which hyper writes as `content-length: 5` (RGI-CL-12).
/// assert_eq!(http_body::Body::size_hint(response.body()).exact(), Some(5));
/// let body = response.into_body().collect().await.map_err(|err| err.to_string())?;
/// assert_eq!(body.to_bytes(), "hello");
/// # Ok(())
/// # }
/// ```
pub struct SyncService<A> {
    app: Arc<A>,
    host: Host,
    dispatch: Dispatch,
}

impl<A: Application> SyncService<A> {
    /// Serves `app` on `host`; its hints are read once, here.
    pub fn new(app: A, host: Host) -> Self {
        Self::from_arc(Arc::new(app), host)
    }

    /// Serves an application the caller shares, such as a server that ran
    /// its [`startup`](Application::startup) before it built `host` and
    /// calls its [`shutdown`](Application::shutdown) after the last
    /// response; its hints are read once, here.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rgi::{Application, ResponseHead, ServerInfo};
    /// use rgi_tower::{Host, SyncService};
    ///
    /// let app = Arc::new(rgi::from_fn(|_environ, start| {
    ///     start.start(ResponseHead::new(http::StatusCode::NO_CONTENT))?;
    ///     Ok(bytes::Bytes::new())
    /// }));
    /// let info = rgi::run_startup(ServerInfo::new("localhost", 80)?, |startup| app.startup(startup))?;
    /// let service = SyncService::from_arc(Arc::clone(&app), Host::builder(info).build());
    /// # drop(service);
    /// app.shutdown(); // after the last response
    /// # Ok::<(), rgi::BoxError>(())
    /// ```
    pub fn from_arc(app: Arc<A>, host: Host) -> Self {
        let dispatch = Dispatch::of(app.hints());
        SyncService {
            app,
            host,
            dispatch,
        }
    }

    /// The service for one connection, described by `connection` (built
    /// once per connection by the server).
    pub fn connection(&self, connection: Arc<ConnectionInfo>) -> SyncConnection<A> {
        SyncConnection {
            app: Arc::clone(&self.app),
            pool: self.host.pool().connection(),
            host: self.host.clone(),
            connection,
            dispatch: self.dispatch,
        }
    }

    /// The host.
    #[must_use]
    pub fn host(&self) -> &Host {
        &self.host
    }
}

impl<A> Clone for SyncService<A> {
    fn clone(&self) -> Self {
        SyncService {
            app: Arc::clone(&self.app),
            host: self.host.clone(),
            dispatch: self.dispatch,
        }
    }
}

impl<A> fmt::Debug for SyncService<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncService")
            .field("app", &std::any::type_name::<A>())
            .field("dispatch", &self.dispatch)
            .finish_non_exhaustive()
    }
}

/// A [`SyncService`] for one connection: a `Service<http::Request<B>>`.
pub struct SyncConnection<A> {
    app: Arc<A>,
    host: Host,
    pool: ConnectionPool,
    connection: Arc<ConnectionInfo>,
    dispatch: Dispatch,
}

impl<A> Clone for SyncConnection<A> {
    fn clone(&self) -> Self {
        SyncConnection {
            app: Arc::clone(&self.app),
            host: self.host.clone(),
            pool: self.pool.clone(),
            connection: Arc::clone(&self.connection),
            dispatch: self.dispatch,
        }
    }
}

impl<A> fmt::Debug for SyncConnection<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncConnection")
            .field("app", &std::any::type_name::<A>())
            .field("connection", &self.connection)
            .field("dispatch", &self.dispatch)
            .finish_non_exhaustive()
    }
}

impl<A, B> Service<Request<B>> for SyncConnection<A>
where
    A: Application,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = SyncFuture<A, B>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let body_is_empty = body.is_end_stream();
        remove_decoded_framing(&mut parts, body_is_empty, body.size_hint().exact());
        mark_extended_connect(&mut parts);
        if normalize_authority(&mut parts).is_err() {
            return ready(status_only(StatusCode::BAD_REQUEST, parts.version, true));
        }
        let host = &self.host.inner;
        if let Some(length) = body.size_hint().exact() {
            if length > host.limits.max_bytes {
                // Refused before the application runs (`[RGI-INPUT-18]`).
                return ready(status_only(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    parts.version,
                    true,
                ));
            }
        }
        match self.dispatch {
            Dispatch::Inline => {
                let input = if body_is_empty {
                    Input::empty()
                } else {
                    never_parks(body.size_hint().exact())
                };
                ready(respond_inline(
                    &*self.app,
                    parts,
                    input,
                    host,
                    &self.connection,
                ))
            }
            Dispatch::PreRead if body_is_empty => ready(respond_inline(
                &*self.app,
                parts,
                Input::empty(),
                host,
                &self.connection,
            )),
            Dispatch::PreRead => SyncFuture {
                state: FutureState::PreRead(Box::new(PreReading {
                    read: PreRead::new(
                        trailer_slot(host.request_trailers, parts.version, &body),
                        body,
                        host.limits,
                        host.pre_read_limit,
                    ),
                    parts: Some(parts),
                    app: Arc::clone(&self.app),
                    host: self.host.clone(),
                    connection: Arc::clone(&self.connection),
                })),
            },
            Dispatch::Pool => {
                let (version, connect) = (
                    parts.version,
                    parts.method == Method::CONNECT && parts.uri.authority().is_some(),
                );
                let slot = trailer_slot(host.request_trailers, parts.version, &body);
                let (input, detach) = RequestSource::input(body, host.limits, slot);
                let state = response_state(&parts, host);
                let environ =
                    match Environ::from_parts(parts, input, &host.server, &self.connection) {
                        Ok(environ) => environ,
                        Err(err) => return ready(bad_request(&err, connect, version)),
                    };
                let relay = Relay::new(None, 0, Default::default(), false, detach);
                let app = Arc::clone(&self.app);
                let worker_relay = Arc::clone(&relay);
                let admitted = self.pool.try_execute(move || {
                    run_on_worker(&worker_relay, state, |start| app.call(environ, start));
                });
                match admitted {
                    Ok(()) => SyncFuture {
                        state: FutureState::Relay(RelayHead::new(relay, version)),
                    },
                    Err(err) => ready(refused(&err, &host.retry_after, version)),
                }
            }
        }
    }
}

/// The state of the response to the request `parts` describe, enabled
/// for trailers when the host declares them and the request's protocol
/// can carry them (`[RGI-TRAILER-7]`).
#[inline]
pub(crate) fn response_state(parts: &Parts, host: &HostInner) -> ResponseState {
    let mut state = ResponseState::new(&parts.method);
    if host.response_trailers && response_takes_trailers(parts) {
        state.enable_trailers();
    }
    state
}

/// The answer when the pool refuses a request.
pub(crate) fn refused(
    error: &PoolError,
    retry_after: &http::HeaderValue,
    version: Version,
) -> Response<ResponseBody> {
    tracing::warn!(error = %error, "blocking pool refused a request; answering 503");
    unavailable(retry_after, version)
}

/// The answer to a request the environ cannot describe.
pub(crate) fn bad_request(
    error: &rgi::EnvironError,
    connect: bool,
    version: Version,
) -> Response<ResponseBody> {
    // A CONNECT to an authority (a tunnel) is a method this gateway does
    // not implement, not a malformed request (`[RGI-PATH-10]`); any other
    // target form with CONNECT, and the authority form with any other
    // method, is malformed (`[RGI-PROTO-6]`).
    let status = match error {
        rgi::EnvironError::UnsupportedTarget { .. } if connect => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::BAD_REQUEST,
    };
    tracing::info!(error = %error, "request refused before the application; answering {status}");
    status_only(status, version, true)
}

fn ready<A, B>(response: Response<ResponseBody>) -> SyncFuture<A, B> {
    SyncFuture {
        state: FutureState::Ready(Some(response)),
    }
}

/// The input of an application that promised never to read it, run on the
/// runtime: a read that would have to wait for the client fails instead
/// of parking the runtime's thread.
fn never_parks(length: Option<u64>) -> Input {
    Input::new(NeverParks, length)
}

struct NeverParks;

impl std::io::Read for NeverParks {
    fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
        Err(InputError::WouldBlockThread.into())
    }
}

/// Calls the application on the runtime thread and pulls its body up to
/// the head.
fn respond_inline<A: Application>(
    app: &A,
    parts: Parts,
    input: Input,
    host: &HostInner,
    connection: &Arc<ConnectionInfo>,
) -> Response<ResponseBody> {
    let (version, connect) = (
        parts.version,
        parts.method == Method::CONNECT && parts.uri.authority().is_some(),
    );
    let mut driver = Box::pin(SyncDriver::<A::Body> {
        stream: Stream::new(response_state(&parts, host), None),
        body: None,
    });
    let environ = match Environ::from_parts(parts, input, &host.server, connection) {
        Ok(environ) => environ,
        Err(err) => return bad_request(&err, connect, version),
    };
    let mut head = None;
    let current = driver.as_mut().get_mut();
    // One containment for the call and the pulls up to the head: a panic
    // in either is a 500 all the same.
    let contained = catch_unwind(AssertUnwindSafe(|| {
        let SyncDriver { stream, body } = &mut *current;
        let mut sink = HeadSink {
            head: &mut head,
            chunks: &mut stream.chunks,
        };
        match app.call(environ, &mut stream.state.start_response(&mut sink)) {
            Ok(called) => {
                if let Some(size) = called.size_hint() {
                    // A refusal (the head already went out) changes nothing.
                    stream.state.declare_length(size).ok();
                }
                *body = Some(called);
            }
            Err(err) => stream.fail(err),
        }
        current.pull_head_uncontained(&mut head);
    }));
    if let Err(payload) = contained {
        let SyncDriver { stream, body } = driver.as_mut().get_mut();
        stream.fail(panicked(payload.as_ref()));
        if let Some(closed) = body.take() {
            drop_contained(closed);
        }
    }
    into_response(driver, head, version)
}

/// The response hyper gets for a driven body: its head, or the failure
/// before one.
pub(crate) fn into_response<D: DrivenStream + 'static>(
    mut driver: Pin<Box<D>>,
    head: Option<SentHead>,
    version: Version,
) -> Response<ResponseBody> {
    match head {
        Some(head) => with_head(head, ResponseBody::driven(driver)),
        None => {
            let error = driver
                .as_mut()
                .stream_mut()
                .error
                .take()
                .unwrap_or_else(|| Box::new(rgi::FinishError::NotStarted));
            drop(driver);
            failure_response(&error, version)
        }
    }
}

/// A driver whose [`Stream`] can be reached, to build the response.
pub(crate) trait DrivenStream: Driver {
    fn stream_mut(self: Pin<&mut Self>) -> &mut Stream;
}

/// A panic of the application as the error that ends its response.
pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> BoxError {
    let message = panic_message(payload);
    tracing::error!(panic = %message, "the RGI application panicked");
    Box::new(ResponseError::Panicked { message })
}

/// A synchronous body served on the runtime.
struct SyncDriver<Bd> {
    stream: Stream,
    /// `None` once closed.
    body: Option<Bd>,
}

// A synchronous body is only ever reached through `&mut` (`next_chunk`),
// never pinned, so the driver may move freely.
impl<Bd> Unpin for SyncDriver<Bd> {}

impl<Bd: Body> SyncDriver<Bd> {
    /// Pulls one chunk once hyper has the response, containing a panic.
    fn pull(&mut self) {
        let SyncDriver { stream, body } = self;
        let Some(current) = body.as_mut() else {
            return;
        };
        let pulled = catch_unwind(AssertUnwindSafe(|| {
            current.next_chunk(&mut stream.state.start_response(&mut stream.chunks))
        }));
        let done = match pulled {
            Ok(outcome) => {
                let outcome = match outcome {
                    Some(Ok(chunk)) => Outcome::Chunk(chunk),
                    Some(Err(err)) => Outcome::Failed(err),
                    None => Outcome::End,
                };
                stream.deliver(None, outcome)
            }
            Err(payload) => {
                stream.fail(panicked(payload.as_ref()));
                true
            }
        };
        if done {
            // Closed exactly once: here, at its end or failure.
            if let Some(closed) = body.take() {
                drop_contained(closed);
            }
        }
    }

    /// Pulls up to the head inside the caller's containment of panics.
    fn pull_head_uncontained(&mut self, head: &mut Option<SentHead>) {
        while self.stream.before_head() {
            let SyncDriver { stream, body } = self;
            let Some(current) = body.as_mut() else {
                return;
            };
            let mut sink = HeadSink {
                head: &mut *head,
                chunks: &mut stream.chunks,
            };
            let outcome = match current.next_chunk(&mut stream.state.start_response(&mut sink)) {
                Some(Ok(chunk)) => Outcome::Chunk(chunk),
                Some(Err(err)) => Outcome::Failed(err),
                None => Outcome::End,
            };
            if stream.deliver(Some(&mut *head), outcome) {
                if let Some(closed) = body.take() {
                    drop_contained(closed);
                }
            }
        }
    }
}

impl<Bd: Body> Driver for SyncDriver<Bd> {
    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        let this = self.get_mut();
        loop {
            let SyncDriver { stream, body } = this;
            let open = body.is_some();
            if let Some(frame) = ready_frame(cx, stream, open, || {
                if let Some(closed) = body.take() {
                    drop_contained(closed);
                }
            }) {
                return frame;
            }
            this.pull();
        }
    }

    fn is_end_stream(&self) -> bool {
        end_of_stream(&self.stream, self.body.is_some())
    }

    fn size_hint(&self) -> SizeHint {
        stream_hint(&self.stream)
    }
}

impl<Bd: Body> DrivenStream for SyncDriver<Bd> {
    fn stream_mut(self: Pin<&mut Self>) -> &mut Stream {
        &mut self.get_mut().stream
    }
}

impl<Bd> Drop for SyncDriver<Bd> {
    fn drop(&mut self) {
        if let Some(body) = self.body.take() {
            drop_contained(body);
        }
    }
}

/// The future of a [`SyncConnection`]'s response.
pub struct SyncFuture<A, B> {
    state: FutureState<A, B>,
}

enum FutureState<A, B> {
    Ready(Option<Response<ResponseBody>>),
    /// Boxed: the rarer path, which would otherwise make every inline
    /// future (moved by hyper) several times larger.
    PreRead(Box<PreReading<A, B>>),
    Relay(RelayHead),
}

struct PreReading<A, B> {
    read: PreRead<B>,
    parts: Option<Parts>,
    app: Arc<A>,
    host: Host,
    connection: Arc<ConnectionInfo>,
}

impl<A, B> fmt::Debug for SyncFuture<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            FutureState::Ready(_) => "ready",
            FutureState::PreRead { .. } => "pre-reading the body",
            FutureState::Relay(_) => "waiting for the pool worker's head",
        };
        f.debug_struct("SyncFuture").field("state", &state).finish()
    }
}

// Nothing in the future is structurally pinned: the body is polled through
// `Pin::new` on an `Unpin` field.
impl<A, B: Unpin> Unpin for SyncFuture<A, B> {}

impl<A, B> Future for SyncFuture<A, B>
where
    A: Application,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            FutureState::Ready(response) => Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                status_only(StatusCode::INTERNAL_SERVER_ERROR, Version::HTTP_11, false)
            }))),
            FutureState::Relay(head) => head.poll(cx).map(|head| Ok(relayed_response(head))),
            FutureState::PreRead(reading) => {
                let PreReading {
                    read,
                    parts,
                    app,
                    host,
                    connection,
                } = &mut **reading;
                let read = std::task::ready!(read.poll_read(cx));
                let Some(parts) = parts.take() else {
                    return Poll::Ready(Ok(status_only(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Version::HTTP_11,
                        false,
                    )));
                };
                let response = match read {
                    Ok(input) => respond_inline(&**app, parts, input, &host.inner, connection),
                    Err(err) => {
                        let status = err.status().unwrap_or(StatusCode::BAD_REQUEST);
                        tracing::info!(error = %err, "pre-reading the request body failed; answering {status}");
                        status_only(status, parts.version, true)
                    }
                };
                this.state = FutureState::Ready(None);
                Poll::Ready(Ok(response))
            }
        }
    }
}
