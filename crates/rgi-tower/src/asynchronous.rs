//! An asynchronous [`rgi_async::AsyncApplication`] as a tower service: its
//! body polled by hyper, a switch to synchronous processing run on the
//! pool.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Body as HttpBody, SizeHint};
use rgi::{BoxError, ConnectionInfo, Environ, ResponseState, ServerInfo};
use rgi_async::{AsyncApplication, AsyncBody, Capabilities, Step, SyncSwitch};
use tower_service::Service;

use crate::body::{ResponseBody, relayed_response, status_only};
use crate::caps::ForRequest;
use crate::host::Host;
use crate::pool::{ConnectionPool, PoolError};
use crate::relay::{Relay, RelayHead, run_on_worker};
use crate::request::{
    RequestSource, mark_extended_connect, normalize_authority, remove_decoded_framing, trailer_slot,
};
use crate::response::{
    Driver, FrameResult, HeadSink, Outcome, ResponseError, SentHead, Stream, end_of_stream,
    ready_frame, stream_hint,
};
use crate::sync::{DrivenStream, bad_request, into_response, panicked, refused, response_state};

/// An asynchronous RGI application served as a tower service.
///
/// The application is called on the runtime thread that polls the
/// service's future, and its body is polled by hyper as it polls the
/// [`ResponseBody`], so output never outruns the client. Its input reads
/// the request body only as the application polls it (hyper's
/// `100 Continue` goes out on that first poll). Every request is lent the
/// host's [`Capabilities`](rgi_async::Capabilities) through the
/// connection's [`ServerInfo`] (built once per connection, so a request
/// pays no allocation for them): offload onto this connection's share of
/// the host's pool, and what [`HostBuilder::capabilities`](crate::HostBuilder::capabilities)
/// adds. A [`Step::Switch`] runs its continuation on the pool, over the
/// same response state, with the input's blocking face reading exactly
/// the unread rest of the body (`503` with `Retry-After` if the pool is
/// full before the head, an aborted response after).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use http_body_util::{BodyExt, Full};
/// use tower::ServiceExt;
/// use rgi::{ConnectionInfo, ResponseHead, ServerInfo};
/// use rgi_tower::{AsyncService, Host};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = rgi_async::from_fn(|environ, start| {
///     let offload = rgi_async::Capabilities::of(&environ).is_some();
///     start.start(ResponseHead::new(http::StatusCode::OK))?;
///     Ok(bytes::Bytes::from(format!("offload: {offload}")))
/// });
/// let service = AsyncService::new(app, Host::builder(ServerInfo::new("localhost", 80)?).build());
///
/// let request = http::Request::post("/").body(Full::new(bytes::Bytes::from("ignored")))?;
/// let response = service.connection(Arc::new(ConnectionInfo::new())).oneshot(request).await?;
/// let body = response.into_body().collect().await.map_err(|err| err.to_string())?;
/// assert_eq!(body.to_bytes(), "offload: true");
/// # Ok(())
/// # }
/// ```
pub struct AsyncService<A> {
    app: Arc<A>,
    host: Host,
}

impl<A: AsyncApplication> AsyncService<A> {
    /// Serves `app` on `host`.
    pub fn new(app: A, host: Host) -> Self {
        Self::from_arc(Arc::new(app), host)
    }

    /// Serves an application the caller shares, such as a server that ran
    /// its [`startup`](AsyncApplication::startup) before it built `host`
    /// and calls its [`shutdown`](AsyncApplication::shutdown) after the
    /// last response.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rgi::{ResponseHead, ServerInfo};
    /// use rgi_async::AsyncApplication;
    /// use rgi_tower::{AsyncService, Host};
    ///
    /// let app = Arc::new(rgi_async::from_fn(|_environ, start| {
    ///     start.start(ResponseHead::new(http::StatusCode::NO_CONTENT))?;
    ///     Ok(bytes::Bytes::new())
    /// }));
    /// let info = rgi::run_startup(ServerInfo::new("localhost", 80)?, |startup| app.startup(startup))?;
    /// let service = AsyncService::from_arc(Arc::clone(&app), Host::builder(info).build());
    /// # drop(service);
    /// app.shutdown(); // after the last response
    /// # Ok::<(), rgi::BoxError>(())
    /// ```
    pub fn from_arc(app: Arc<A>, host: Host) -> Self {
        AsyncService { app, host }
    }

    /// The service for one connection, described by `connection` (built
    /// once per connection by the server). Builds the connection's
    /// [`ServerInfo`] with its capabilities, once.
    pub fn connection(&self, connection: Arc<ConnectionInfo>) -> AsyncConnection<A> {
        let pool = self.host.pool().connection();
        let server = self.host.async_server_info(&pool);
        AsyncConnection {
            app: Arc::clone(&self.app),
            shared: Arc::new(ConnectionShared {
                server,
                connection,
                pool,
                host: self.host.clone(),
            }),
        }
    }

    /// The host.
    #[must_use]
    pub fn host(&self) -> &Host {
        &self.host
    }
}

impl<A> Clone for AsyncService<A> {
    fn clone(&self) -> Self {
        AsyncService {
            app: Arc::clone(&self.app),
            host: self.host.clone(),
        }
    }
}

impl<A> fmt::Debug for AsyncService<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncService")
            .field("app", &std::any::type_name::<A>())
            .field("host", &self.host)
            .finish()
    }
}

/// What every request of one connection shares.
struct ConnectionShared {
    server: Arc<ServerInfo>,
    connection: Arc<ConnectionInfo>,
    pool: ConnectionPool,
    host: Host,
}

impl ConnectionShared {
    fn retry_after(&self) -> &HeaderValue {
        &self.host.inner.retry_after
    }
}

/// An [`AsyncService`] for one connection: a `Service<http::Request<B>>`.
pub struct AsyncConnection<A> {
    app: Arc<A>,
    shared: Arc<ConnectionShared>,
}

impl<A> Clone for AsyncConnection<A> {
    fn clone(&self) -> Self {
        AsyncConnection {
            app: Arc::clone(&self.app),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<A> fmt::Debug for AsyncConnection<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncConnection")
            .field("app", &std::any::type_name::<A>())
            .field("connection", &self.shared.connection)
            .finish_non_exhaustive()
    }
}

impl<A> AsyncConnection<A> {
    /// The server description every request of this connection gets, with
    /// the capabilities it is lent.
    #[must_use]
    pub fn server_info(&self) -> &Arc<ServerInfo> {
        &self.shared.server
    }
}

impl<A, B> Service<Request<B>> for AsyncConnection<A>
where
    A: AsyncApplication,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = AsyncFuture<A::Body>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // What differs from one request to the next (after-response tasks,
        // an upgrade) goes into the request's own capabilities.
        let per_request = self.shared.host.inner.tokio.as_ref().and_then(|tokio| {
            let base = self.shared.server.extension::<Capabilities>()?;
            Some(tokio.for_request(base, &mut request))
        });
        let (mut parts, body) = request.into_parts();
        remove_decoded_framing(&mut parts, body.is_end_stream(), body.size_hint().exact());
        mark_extended_connect(&mut parts);
        if normalize_authority(&mut parts).is_err() {
            return AsyncFuture::ready(status_only(StatusCode::BAD_REQUEST, parts.version, true));
        }
        let (version, connect) = (
            parts.version,
            parts.method == Method::CONNECT && parts.uri.authority().is_some(),
        );
        let limits = self.shared.host.inner.limits;
        if body
            .size_hint()
            .exact()
            .is_some_and(|length| length > limits.max_bytes)
        {
            // Refused before the application runs (`[RGI-INPUT-18]`).
            return AsyncFuture::ready(status_only(StatusCode::PAYLOAD_TOO_LARGE, version, true));
        }
        let host = &self.shared.host.inner;
        let slot = trailer_slot(host.request_trailers, version, &body);
        let (input, detach) = RequestSource::input(body, limits, slot);
        let mut driver = Box::pin(AsyncDriver {
            stream: Stream::new(response_state(&parts, host), detach),
            shared: Arc::clone(&self.shared),
            relay: None,
            per_request,
            body: None,
        });
        let environ =
            match Environ::from_parts(parts, input, &self.shared.server, &self.shared.connection) {
                Ok(environ) => environ,
                Err(err) => return AsyncFuture::ready(bad_request(&err, connect, version)),
            };
        let mut head = None;
        let mut this = driver.as_mut().project();
        let called = catch_unwind(AssertUnwindSafe(|| {
            let mut sink = HeadSink {
                head: &mut head,
                chunks: &mut this.stream.chunks,
            };
            self.app
                .call(environ, &mut this.stream.state.start_response(&mut sink))
        }));
        match called {
            Ok(Ok(called)) => {
                if let Some(size) = called.size_hint() {
                    // A refusal (the head already went out) changes nothing.
                    this.stream.state.declare_length(size).ok();
                }
                this.body.set(Some(called));
            }
            Ok(Err(err)) => this.stream.fail(err),
            Err(payload) => this.stream.fail(panicked(payload.as_ref())),
        }
        AsyncFuture {
            state: FutureState::Head {
                driver: Some(driver),
                head,
                version,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// An asynchronous body served on the runtime, and what it needs
    /// after the head: the pool for a switch, and the relay once it
    /// switched.
    struct AsyncDriver<Bd> {
        stream: Stream,
        shared: Arc<ConnectionShared>,
        relay: Option<Arc<Relay>>,
        // Completed (its after-response tasks released) when the driver
        // goes: once the response is complete, or ended abnormally.
        per_request: Option<ForRequest>,
        #[pin]
        body: Option<Bd>,
    }

    impl<Bd> PinnedDrop for AsyncDriver<Bd> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(relay) = this.relay.take() {
                relay.receiver_gone();
            }
            close(this.body);
        }
    }
}

/// Drops an asynchronous body in place, exactly once, containing a panic
/// in its `Drop`.
fn close<Bd>(mut body: Pin<&mut Option<Bd>>) {
    if body.is_some() {
        let dropped = catch_unwind(AssertUnwindSafe(|| body.set(None)));
        if let Err(payload) = dropped {
            tracing::error!(
                panic = %crate::response::panic_message(payload.as_ref()),
                "an RGI application body panicked while being dropped"
            );
        }
    }
}

/// What polling the application's body up to the head came to.
enum HeadOutcome {
    /// The head was sent, or the response failed before one.
    Done,
    /// The body switched to synchronous processing before its head; the
    /// worker's relay delivers the head.
    Switched(Arc<Relay>),
    /// The switch could not be run.
    Refused(PoolError),
}

impl<Bd: AsyncBody> AsyncDriver<Bd> {
    /// Polls the body once, applying the step to the state; a switch is
    /// returned to the caller.
    fn poll_once(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        head: Option<&mut Option<SentHead>>,
    ) -> Poll<Option<SyncSwitch>> {
        let mut this = self.project();
        let Some(body) = this.body.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let stream = &mut *this.stream;
        let polled = catch_unwind(AssertUnwindSafe(|| match head {
            Some(head) => {
                let mut sink = HeadSink {
                    head,
                    chunks: &mut stream.chunks,
                };
                let step = body.poll_step(cx, &mut stream.state.start_response(&mut sink));
                (step, Some(head))
            }
            None => (
                body.poll_step(cx, &mut stream.state.start_response(&mut stream.chunks)),
                None,
            ),
        }));
        let (done, switch) = match polled {
            Ok((Poll::Pending, _)) => return Poll::Pending,
            Ok((Poll::Ready(step), head)) => match step {
                Some(Ok(Step::Chunk(chunk))) => (stream.deliver(head, Outcome::Chunk(chunk)), None),
                Some(Ok(Step::Switch(switch))) => (true, Some(switch)),
                Some(Ok(other)) => {
                    let error: BoxError =
                        format!("an asynchronous step this server does not know: {other:?}").into();
                    (stream.deliver(head, Outcome::Failed(error)), None)
                }
                Some(Err(err)) => (stream.deliver(head, Outcome::Failed(err)), None),
                None => (stream.deliver(head, Outcome::End), None),
            },
            Err(payload) => {
                stream.fail(panicked(payload.as_ref()));
                (true, None)
            }
        };
        if done {
            // Closed exactly once: at its end, its failure, or before a
            // switch's continuation runs (`[RGIA-SWITCH-2]`).
            close(this.body);
        }
        Poll::Ready(switch)
    }

    /// Hands the response to a pool worker running `switch` over the same
    /// state; the chunks not yet given to hyper go first.
    fn switch(self: Pin<&mut Self>, switch: SyncSwitch) -> Result<Arc<Relay>, PoolError> {
        let this = self.project();
        // Only a stand-in: the driver delegates to the relay from now on.
        let state = std::mem::replace(&mut this.stream.state, ResponseState::new(&Method::GET));
        let mut chunks = VecDeque::new();
        this.stream.chunks.drain_into(&mut chunks);
        let relay = Relay::new(
            state.content_length(),
            this.stream.delivered,
            chunks,
            state.is_head_sent(),
            this.stream.detach.take(),
        );
        let worker_relay = Arc::clone(&relay);
        let continuation = switch.into_continuation();
        let admitted = this.shared.pool.try_execute(move || {
            run_on_worker(&worker_relay, state, continuation);
        });
        match admitted {
            Ok(()) => Ok(relay),
            Err(err) => {
                tracing::error!(error = %err, "a switch to synchronous processing was refused");
                // What was sent before the switch still goes out, in order,
                // before the abort.
                for chunk in relay.take_chunks() {
                    rgi::ResponseSink::send_data(&mut this.stream.chunks, chunk).ok();
                }
                Err(err)
            }
        }
    }

    fn poll_head(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        head: &mut Option<SentHead>,
    ) -> Poll<HeadOutcome> {
        while self.stream.before_head() && self.body.is_some() {
            if let Some(switch) = std::task::ready!(self.as_mut().poll_once(cx, Some(&mut *head))) {
                return Poll::Ready(match self.as_mut().switch(switch) {
                    Ok(relay) => HeadOutcome::Switched(relay),
                    Err(err) => HeadOutcome::Refused(err),
                });
            }
        }
        Poll::Ready(HeadOutcome::Done)
    }
}

impl<Bd: AsyncBody> AsyncDriver<Bd> {
    /// The head of an upgrade the application accepted, to go out now.
    fn take_upgrade(self: Pin<&mut Self>) -> Option<http::Response<()>> {
        self.project()
            .per_request
            .as_ref()?
            .upgrade()?
            .take_switch()
    }

    /// Closes the upgrade offer as the application's own head is about to
    /// go out; the head of an upgrade accepted first, if any.
    fn seal_upgrade(self: Pin<&mut Self>) -> Option<http::Response<()>> {
        self.project().per_request.as_ref()?.upgrade()?.seal()
    }

    /// Polls the body of an upgraded request to its end, its output
    /// discarded: it talks over the upgraded connection now.
    fn poll_detached(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut this = self.as_mut().project();
            let Some(body) = this.body.as_mut().as_pin_mut() else {
                return Poll::Ready(());
            };
            let state = &mut this.stream.state;
            let polled = catch_unwind(AssertUnwindSafe(|| {
                body.poll_step(cx, &mut state.start_response(&mut Discard))
            }));
            match polled {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(Some(Ok(Step::Chunk(_))))) => {}
                Ok(Poll::Ready(_)) => {
                    close(this.body);
                    return Poll::Ready(());
                }
                Err(payload) => {
                    drop(panicked(payload.as_ref()));
                    close(this.body);
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// Where an upgraded request's response output goes: nowhere, the
/// connection belongs to the application now.
struct Discard;

impl rgi::ResponseSink for Discard {
    fn send_head(&mut self, _head: rgi::ResponseHead) -> std::io::Result<()> {
        Ok(())
    }

    fn send_data(&mut self, _data: Bytes) -> std::io::Result<()> {
        Ok(())
    }
}

/// An upgraded request's body, polled on its own task.
struct Detached<Bd>(Pin<Box<AsyncDriver<Bd>>>);

impl<Bd: AsyncBody> Future for Detached<Bd> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().0.as_mut().poll_detached(cx)
    }
}

/// Answers an accepted upgrade with its head and keeps polling the
/// application's body on a task of its own.
fn upgraded<Bd: AsyncBody + 'static>(
    head: http::Response<()>,
    driver: Pin<Box<AsyncDriver<Bd>>>,
) -> Response<ResponseBody> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(Detached(driver));
        }
        Err(_) => {
            tracing::error!(
                "no tokio runtime to poll an upgraded request's body on; it is dropped"
            );
            drop(driver);
        }
    }
    head.map(|()| ResponseBody::empty())
}

impl<Bd: AsyncBody> Driver for AsyncDriver<Bd> {
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        loop {
            if let Some(relay) = &self.relay {
                return relay.poll_frame(cx);
            }
            let mut this = self.as_mut().project();
            let open = this.body.is_some();
            let body = this.body.as_mut();
            if let Some(frame) = ready_frame(cx, this.stream, open, || close(body)) {
                return frame;
            }
            if let Some(switch) = std::task::ready!(self.as_mut().poll_once(cx, None)) {
                match self.as_mut().switch(switch) {
                    Ok(relay) => *self.as_mut().project().relay = Some(relay),
                    Err(err) => self
                        .as_mut()
                        .project()
                        .stream
                        .fail(Box::new(ResponseError::SwitchRefused(err))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.relay {
            Some(relay) => relay.is_end_stream(),
            None => end_of_stream(&self.stream, self.body.is_some()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.relay {
            Some(relay) => relay.size_hint(),
            None => stream_hint(&self.stream),
        }
    }
}

impl<Bd: AsyncBody> DrivenStream for AsyncDriver<Bd> {
    fn stream_mut(self: Pin<&mut Self>) -> &mut Stream {
        self.project().stream
    }
}

/// The future of an [`AsyncConnection`]'s response.
pub struct AsyncFuture<Bd> {
    state: FutureState<Bd>,
}

enum FutureState<Bd> {
    Ready(Option<Response<ResponseBody>>),
    Head {
        driver: Option<Pin<Box<AsyncDriver<Bd>>>>,
        head: Option<SentHead>,
        version: Version,
    },
    Relay(RelayHead),
}

impl<Bd> AsyncFuture<Bd> {
    fn ready(response: Response<ResponseBody>) -> Self {
        AsyncFuture {
            state: FutureState::Ready(Some(response)),
        }
    }
}

impl<Bd> fmt::Debug for AsyncFuture<Bd> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            FutureState::Ready(_) => "ready",
            FutureState::Head { .. } => "polling the body for its head",
            FutureState::Relay(_) => "waiting for the switch's head",
        };
        f.debug_struct("AsyncFuture")
            .field("state", &state)
            .finish()
    }
}

// The driver is pinned in its own box; nothing else is structurally pinned.
impl<Bd> Unpin for AsyncFuture<Bd> {}

impl<Bd: AsyncBody + 'static> Future for AsyncFuture<Bd> {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                FutureState::Ready(response) => {
                    return Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                        status_only(StatusCode::INTERNAL_SERVER_ERROR, Version::HTTP_11, false)
                    })));
                }
                FutureState::Relay(head) => {
                    return head.poll(cx).map(|head| Ok(relayed_response(head)));
                }
                FutureState::Head {
                    driver,
                    head,
                    version,
                } => {
                    let version = *version;
                    let Some(current) = driver.as_mut() else {
                        this.state = FutureState::Ready(None);
                        continue;
                    };
                    let polled = current.as_mut().poll_head(cx, head);
                    // An upgrade the application accepted answers now,
                    // whatever its body does next (`[RGIA-UPGRADE-4]`).
                    if let Some(switch) = current.as_mut().take_upgrade() {
                        if let Some(driver) = driver.take() {
                            this.state = FutureState::Ready(Some(upgraded(switch, driver)));
                        }
                        continue;
                    }
                    let outcome = std::task::ready!(polled);
                    if matches!(outcome, HeadOutcome::Done) {
                        // The application's head is about to go out: no
                        // upgrade after this, and one accepted first wins.
                        if let Some(switch) = current.as_mut().seal_upgrade() {
                            if let Some(driver) = driver.take() {
                                this.state = FutureState::Ready(Some(upgraded(switch, driver)));
                            }
                            continue;
                        }
                    }
                    let (Some(driver), head) = (driver.take(), head.take()) else {
                        continue;
                    };
                    this.state = match outcome {
                        HeadOutcome::Done => {
                            FutureState::Ready(Some(into_response(driver, head, version)))
                        }
                        HeadOutcome::Switched(relay) => {
                            drop(driver);
                            FutureState::Relay(RelayHead::new(relay, version))
                        }
                        HeadOutcome::Refused(err) => {
                            let retry_after = driver.shared.retry_after().clone();
                            drop(driver);
                            FutureState::Ready(Some(refused(&err, &retry_after, version)))
                        }
                    };
                }
            }
        }
    }
}
