//! RGI applications inside axum (issue 14, items 2 and 5), over real
//! sockets on 127.0.0.1, the Router served by `axum::serve`:
//!
//! - synchronous and asynchronous applications nested with
//!   `Router::nest_service` and as the `fallback_service`, beside plain
//!   axum routes, each seeing its mount point as `SCRIPT_NAME` and the rest
//!   as `PATH_INFO`, with the raw query;
//! - request bodies (sized and chunked) and a streamed response;
//! - the kit's validators around both kinds, reporting nothing;
//! - the bounded pool under axum: a blocking synchronous application and
//!   an asynchronous one's switch and offload answered `503` with
//!   `Retry-After` when the pool is full;
//! - tower-http's `TraceLayer` around an RGI application, and a Trace +
//!   Compression + Timeout stack serving gzip.
//!
//! How an RGI application goes into a Router (what `Mounted` does, and
//! what the crate's docs show): the host's `ServerInfo` carries the mount
//! point as its script name, the request gets back the target axum's
//! nesting stripped (`axum::extract::OriginalUri`), and each request gets
//! a connection description from axum's `ConnectInfo`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed unwrap is the test's failure"
)]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{OriginalUri, Request};
use axum::routing::get;
use axum::serve::IncomingStream;
use bytes::Bytes;
use common::{LIMIT, TestBody, client, fetch, request};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use rgi::{Address, BoxError, ConnectionInfo, Environ, Input, ResponseHead, ServerInfo};
use rgi::{StartResponse, sse};
use rgi_async::{AsyncBody, Capabilities, OffloadError, Step, SyncSwitch};
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports};
use rgi_tower::{AsyncService, Host, PoolConfig, SyncService};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::util::Oneshot;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::decompression::Decompression;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_service::Service;

// ---------------------------------------------------------------------
// Mounting: what a user of axum writes.
// ---------------------------------------------------------------------

/// Both ends of a connection, recorded by axum per accepted connection
/// (`into_make_service_with_connect_info`).
#[derive(Clone, Copy, Debug)]
struct Ends {
    peer: SocketAddr,
    local: SocketAddr,
}

impl Connected<IncomingStream<'_, TcpListener>> for Ends {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let peer = *stream.remote_addr();
        // A socket that lost its local address still has a peer; the
        // unspecified address says "unknown" without failing the request.
        let local = stream
            .io()
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ends { peer, local }
    }
}

/// An RGI service (made per request by `connect`, given the request's
/// connection description) as a service axum nests: the target axum's
/// nesting stripped is put back, so that the environ splits it at the
/// host's script name.
#[derive(Clone)]
struct Mounted<F>(F);

impl<F, S> Service<Request> for Mounted<F>
where
    F: Fn(Arc<ConnectionInfo>) -> S,
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Oneshot<S, Request>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if let Some(OriginalUri(original)) = request.extensions().get::<OriginalUri>() {
            *request.uri_mut() = original.clone();
        }
        let mut connection = ConnectionInfo::new();
        if let Some(ConnectInfo(ends)) = request.extensions().get::<ConnectInfo<Ends>>() {
            connection = connection
                .with_peer_addr(Address::Tcp(ends.peer))
                .with_local_addr(Address::Tcp(ends.local));
        }
        (self.0)(Arc::new(connection)).oneshot(request)
    }
}

fn sync_mount<A: rgi::Application>(
    service: SyncService<A>,
) -> Mounted<impl Fn(Arc<ConnectionInfo>) -> rgi_tower::SyncConnection<A> + Clone> {
    Mounted(move |connection| service.connection(connection))
}

fn async_mount<A: rgi_async::AsyncApplication>(
    service: AsyncService<A>,
) -> Mounted<impl Fn(Arc<ConnectionInfo>) -> rgi_tower::AsyncConnection<A> + Clone> {
    Mounted(move |connection| service.connection(connection))
}

/// The host of an application mounted at `script_name` on `addr`.
fn host_at(addr: SocketAddr, script_name: &'static str, pool: PoolConfig) -> Host {
    let info = ServerInfo::new("127.0.0.1", addr.port())
        .unwrap()
        .with_script_name(script_name)
        .unwrap();
    Host::builder(info).pool(pool).build()
}

fn pool() -> PoolConfig {
    PoolConfig {
        threads: 4,
        queue: 4,
        per_connection: 4,
    }
}

/// A running `axum::serve`, stopped gracefully by [`AxumServer::stop`]
/// (or aborted when dropped).
struct AxumServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl AxumServer {
    fn start(listener: TcpListener, router: Router) -> Self {
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serve = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<Ends>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move { serve.await });
        AxumServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops accepting, waits (bounded) for the open connections to end.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = &mut self.task;
        tokio::time::timeout(LIMIT, task)
            .await
            .expect("the server stopped in time")
            .unwrap()
            .unwrap();
    }
}

impl Drop for AxumServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

// ---------------------------------------------------------------------
// Applications.
// ---------------------------------------------------------------------

fn text_head() -> ResponseHead {
    ResponseHead::new(StatusCode::OK).with_header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    )
}

/// What the environ says of the request's target and peer.
fn describe(kind: &str, environ: &Environ) -> String {
    format!(
        "{kind} script={} path={} query={} uri={} peer={}",
        environ.script_name(),
        environ.path_info(),
        environ.query_string(),
        environ.uri(),
        environ
            .remote_addr()
            .map(|peer| peer.ip().to_string())
            .unwrap_or_default(),
    )
}

/// Describes the target, or at `/echo` echoes the body, read blocking.
fn sync_app(kind: &'static str) -> impl rgi::Application {
    rgi::from_fn(move |mut environ: Environ, start: &mut StartResponse<'_>| {
        let body = if environ.path_info() == "/echo" {
            let mut bytes = Vec::new();
            environ.input_mut().read_to_end(&mut bytes)?;
            Bytes::from(bytes)
        } else {
            Bytes::from(describe(kind, &environ))
        };
        start.start(text_head())?;
        Ok(body)
    })
}

/// Streams the input back through the non-blocking face.
struct AsyncEcho(Input);

impl AsyncBody for AsyncEcho {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        match std::task::ready!(self.get_mut().0.poll_chunk(cx, 4096)) {
            Ok(chunk) if chunk.is_empty() => Poll::Ready(None),
            Ok(chunk) => Step::ready(Ok::<_, BoxError>(chunk)),
            Err(err) => Step::ready(Err::<Bytes, _>(err)),
        }
    }
}

/// A whole body, or another one: one asynchronous application answers
/// with either.
enum Either<B> {
    Whole(Option<Bytes>),
    Other(B),
}

impl<B: AsyncBody + Unpin> AsyncBody for Either<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        match self.get_mut() {
            Either::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Step::Chunk(b)))),
            Either::Other(body) => Pin::new(body).poll_step(cx, start),
        }
    }

    fn size_hint(&self) -> Option<u64> {
        match self {
            Either::Whole(bytes) => Some(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Either::Other(body) => body.size_hint(),
        }
    }
}

/// The asynchronous twin of [`sync_app`].
fn async_app() -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(|environ: Environ, start: &mut StartResponse<'_>| {
        start.start(text_head())?;
        if environ.path_info() == "/echo" {
            Ok(Either::Other(AsyncEcho(environ.into_input())))
        } else {
            Ok(Either::Whole(Some(Bytes::from(describe(
                "async", &environ,
            )))))
        }
    })
}

/// A stream of what a test feeds through a channel.
struct Fed(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl futures_util::Stream for Fed {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|event| event.map(Ok))
    }
}

type Feed = Arc<Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Bytes>>>>;

/// An event stream of what the test feeds (one request per feed).
fn events_app(feed: Feed) -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(move |_environ: Environ, _start: &mut StartResponse<'_>| {
        let events = feed.lock().unwrap().take().ok_or("one request per feed")?;
        Ok(rgi_async::from_stream(Fed(events)).with_head(sse::head()))
    })
}

fn event(text: &str) -> Bytes {
    sse::Event::new().data(text).to_bytes()
}

// ---------------------------------------------------------------------
// Helpers for the client side.
// ---------------------------------------------------------------------

async fn get_text(addr: SocketAddr, target: &str) -> (StatusCode, String) {
    let (parts, body) = fetch(addr, request("GET", target, TestBody::empty())).await;
    (parts.status, String::from_utf8(body.to_vec()).unwrap())
}

/// POSTs `chunks` on a fresh connection: whole with a Content-Length
/// when `sized`, else chunked, one chunk per element.
async fn post(addr: SocketAddr, target: &str, chunks: &[Bytes], sized: bool) -> Bytes {
    let whole = Bytes::from(chunks.concat());
    if sized {
        let (parts, body) = fetch(addr, request("POST", target, TestBody::full(whole))).await;
        assert_eq!(parts.status, StatusCode::OK);
        return body;
    }
    let (feed, body) = TestBody::channel(chunks.len().max(1));
    for chunk in chunks {
        feed.send(chunk.clone()).await.unwrap();
    }
    drop(feed);
    let (parts, body) = fetch(addr, request("POST", target, body)).await;
    assert_eq!(parts.status, StatusCode::OK);
    body
}

fn chunks(parts: &[&'static str]) -> Vec<Bytes> {
    parts
        .iter()
        .map(|part| Bytes::from_static(part.as_bytes()))
        .collect()
}

// ---------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------

#[tokio::test]
async fn nested_and_fallback_applications_see_their_mount_point() {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/", get(|| async { "axum root" }))
        .route("/health", get(|| async { "axum health" }))
        .nest_service(
            "/rgi",
            sync_mount(SyncService::new(
                sync_app("sync"),
                host_at(addr, "/rgi", pool()),
            )),
        )
        .nest_service(
            "/async",
            async_mount(AsyncService::new(
                async_app(),
                host_at(addr, "/async", pool()),
            )),
        )
        .fallback_service(sync_mount(SyncService::new(
            sync_app("fallback"),
            host_at(addr, "", pool()),
        )));
    let server = AxumServer::start(listener, router);

    let cases = [
        ("/", "axum root"),
        ("/health", "axum health"),
        // The mount point itself: an empty PATH_INFO, not axum's "/".
        (
            "/rgi",
            "sync script=/rgi path= query= uri=/rgi peer=127.0.0.1",
        ),
        (
            "/rgi/",
            "sync script=/rgi path=/ query= uri=/rgi/ peer=127.0.0.1",
        ),
        (
            "/rgi/a/b?x=1&y=%20z",
            "sync script=/rgi path=/a/b query=x=1&y=%20z uri=/rgi/a/b?x=1&y=%20z peer=127.0.0.1",
        ),
        // PATH_INFO is decoded; the target and query stay raw.
        (
            "/rgi/caf%C3%A9?q=%C3%A9",
            "sync script=/rgi path=/café query=q=%C3%A9 uri=/rgi/caf%C3%A9?q=%C3%A9 peer=127.0.0.1",
        ),
        (
            "/async/deep/er?k",
            "async script=/async path=/deep/er query=k uri=/async/deep/er?k peer=127.0.0.1",
        ),
        (
            "/async",
            "async script=/async path= query= uri=/async peer=127.0.0.1",
        ),
        // Not inside the mount point: a segment boundary, not a prefix.
        (
            "/rgix/y",
            "fallback script= path=/rgix/y query= uri=/rgix/y peer=127.0.0.1",
        ),
        (
            "/elsewhere?a=b",
            "fallback script= path=/elsewhere query=a=b uri=/elsewhere?a=b peer=127.0.0.1",
        ),
    ];
    for (target, expected) in cases {
        let (status, body) = get_text(server.addr, target).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, expected),
            "{target}"
        );
    }
    server.stop().await;
}

/// The pitfall the docs name: a service nested without its target put
/// back reaches the environ with a path that does not start with the
/// script name, and is refused.
#[tokio::test]
async fn without_the_restored_target_the_request_is_refused() {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let service = SyncService::new(sync_app("bare"), host_at(addr, "/rgi", pool()));
    let bare = tower::service_fn(move |request: Request| {
        service
            .connection(Arc::new(ConnectionInfo::new()))
            .oneshot(request)
    });
    let router = Router::new().nest_service("/rgi", bare);
    let server = AxumServer::start(listener, router);
    let (status, _) = get_text(server.addr, "/rgi/x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;
}

/// Inside a nested Router the script name is the whole path from the
/// root (`OriginalUri` is what the outermost Router saw); under a nest
/// path with a parameter the host has none, and the application moves
/// the mount's segments over itself.
#[tokio::test]
async fn nested_routers_and_a_nest_path_with_a_parameter() {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let inner = Router::new().nest_service(
        "/rgi",
        sync_mount(SyncService::new(
            sync_app("inner"),
            host_at(addr, "/outer/rgi", pool()),
        )),
    );
    let per_tenant = rgi::from_fn(|mut environ: Environ, start: &mut StartResponse<'_>| {
        // "/t/{tenant}": two segments, whatever the tenant.
        let t = environ.shift_path().ok_or("no /t")?;
        let tenant = environ.shift_path().ok_or("no tenant")?;
        start.start(text_head())?;
        Ok(format!("{t}{tenant} {}", describe("tenant", &environ)))
    });
    let router = Router::new().nest("/outer", inner).nest_service(
        "/t/{tenant}",
        sync_mount(SyncService::new(per_tenant, host_at(addr, "", pool()))),
    );
    let server = AxumServer::start(listener, router);

    let cases = [
        (
            "/outer/rgi/x?y",
            "inner script=/outer/rgi path=/x query=y uri=/outer/rgi/x?y peer=127.0.0.1",
        ),
        (
            "/t/acme/orders/7?full",
            "/t/acme tenant script=/t/acme path=/orders/7 query=full uri=/t/acme/orders/7?full peer=127.0.0.1",
        ),
        (
            "/t/other",
            "/t/other tenant script=/t/other path= query= uri=/t/other peer=127.0.0.1",
        ),
    ];
    for (target, expected) in cases {
        let (status, body) = get_text(server.addr, target).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, expected),
            "{target}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn request_bodies_sized_and_chunked_and_a_streamed_response() {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let (feed, events) = tokio::sync::mpsc::unbounded_channel();
    let slot: Feed = Arc::new(Mutex::new(Some(events)));
    let router = Router::new()
        .nest_service(
            "/rgi",
            sync_mount(SyncService::new(
                sync_app("sync"),
                host_at(addr, "/rgi", pool()),
            )),
        )
        .nest_service(
            "/async",
            async_mount(AsyncService::new(
                async_app(),
                host_at(addr, "/async", pool()),
            )),
        )
        .nest_service(
            "/events",
            async_mount(AsyncService::new(
                events_app(slot),
                host_at(addr, "/events", pool()),
            )),
        );
    let server = AxumServer::start(listener, router);

    let three = chunks(&["first chunk, ", "second chunk, ", "and the last one"]);
    for mount in ["/rgi/echo", "/async/echo"] {
        for sized in [true, false] {
            let body = post(server.addr, mount, &three, sized).await;
            assert_eq!(body, three.concat(), "{mount} sized={sized}");
        }
    }
    // A body larger than one read.
    let large = Bytes::from("0123456789abcdef".repeat(20_000));
    let twice = [large.clone(), large];
    for mount in ["/rgi/echo", "/async/echo"] {
        for sized in [true, false] {
            let body = post(server.addr, mount, &twice, sized).await;
            assert_eq!(body, twice.concat(), "{mount} sized={sized}");
        }
    }

    // Each event reaches the client before the next one exists.
    feed.send(event("one")).unwrap();
    let mut sender = client(server.addr).await;
    let response = tokio::time::timeout(
        LIMIT,
        sender.send_request(request("GET", "/events/live", TestBody::empty())),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    for (n, next) in [
        ("one", Some("two")),
        ("two", Some("three")),
        ("three", None),
    ] {
        let frame = tokio::time::timeout(LIMIT, body.frame())
            .await
            .expect("the event arrived on its own")
            .unwrap()
            .unwrap();
        assert_eq!(frame.into_data().unwrap(), event(n));
        if let Some(next) = next {
            feed.send(event(next)).unwrap();
        }
    }
    drop(feed);
    let rest = tokio::time::timeout(LIMIT, body.collect())
        .await
        .unwrap()
        .unwrap();
    assert!(rest.to_bytes().is_empty());
    drop(sender);
    server.stop().await;
}

#[tokio::test]
async fn validated_applications_in_axum_report_no_violations() {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let reports = Reports::new(Policy::Collect);
    let router = Router::new()
        .route("/", get(|| async { "axum root" }))
        .nest_service(
            "/rgi",
            sync_mount(SyncService::new(
                Validator::new(sync_app("sync"), reports.clone()),
                host_at(addr, "/rgi", pool()),
            )),
        )
        .nest_service(
            "/async",
            async_mount(AsyncService::new(
                AsyncValidator::new(async_app(), reports.clone()),
                host_at(addr, "/async", pool()),
            )),
        );
    let server = AxumServer::start(listener, router);

    for mount in ["/rgi", "/async"] {
        let (status, body) = get_text(server.addr, &format!("{mount}/x?y=z")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("path=/x query=y=z"), "{body}");
        let (status, _) = get_text(server.addr, mount).await;
        assert_eq!(status, StatusCode::OK);
        for sized in [true, false] {
            let echo = format!("{mount}/echo");
            let body = post(server.addr, &echo, &chunks(&["validated ", "body"]), sized).await;
            assert_eq!(body, "validated body");
        }
    }
    // Every connection closed and the Router dropped: the validators'
    // checks over the whole request (bodies dropped) have run.
    server.stop().await;
    let all = reports.all();
    assert!(all.is_empty(), "violations: {all:#?}");
}

/// Waits (bounded) until the pool runs nothing.
async fn drained(pool: &rgi_tower::Pool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while pool.stats().running + pool.stats().queued > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pool never drained"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn tiny_pool() -> PoolConfig {
    PoolConfig {
        threads: 1,
        queue: 0,
        per_connection: 1,
    }
}

#[tokio::test]
async fn a_blocking_application_under_axum_gets_503_when_the_pool_is_full() {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let (entered, entries) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new((entered, released)));
    let app = rgi::from_fn(move |environ: Environ, start: &mut StartResponse<'_>| {
        if environ.path_info() == "/block" {
            let gate = gate.lock().unwrap();
            gate.0.send(()).unwrap();
            gate.1.recv_timeout(LIMIT)?;
        }
        start.start(text_head())?;
        Ok(String::from("done"))
    });
    let host = host_at(addr, "/rgi", tiny_pool());
    let pool = host.pool().clone();
    let router = Router::new()
        .route("/", get(|| async { "axum root" }))
        .nest_service("/rgi", sync_mount(SyncService::new(app, host)));
    let server = AxumServer::start(listener, router);

    let held = tokio::spawn(get_text(server.addr, "/rgi/block"));
    tokio::task::spawn_blocking(move || entries.recv_timeout(LIMIT).unwrap())
        .await
        .unwrap();
    // The one thread is taken and nothing may queue: refused at once.
    let (parts, body) = fetch(server.addr, request("GET", "/rgi/other", TestBody::empty())).await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(parts.headers[header::RETRY_AFTER], "1");
    assert!(body.is_empty());
    assert!(pool.stats().rejected >= 1);
    // axum's own routes are not held up by the full pool.
    assert_eq!(
        get_text(server.addr, "/").await,
        (StatusCode::OK, String::from("axum root"))
    );

    release.send(()).unwrap();
    let answered = tokio::time::timeout(LIMIT, held).await.unwrap().unwrap();
    assert_eq!(answered, (StatusCode::OK, String::from("done")));
    drained(&pool).await;
    assert_eq!(
        get_text(server.addr, "/rgi/other").await,
        (StatusCode::OK, String::from("done"))
    );
    server.stop().await;
}

/// Switches at once to a continuation that answers "switched".
struct SwitchNow;

impl AsyncBody for SwitchNow {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Step::ready(Ok::<_, BoxError>(SyncSwitch::new(|start| {
            start.start(text_head())?;
            Ok(String::from("switched"))
        })))
    }
}

/// Waits for an offload job, then answers with its result: its thread's
/// name, or `503` with `Retry-After` when the pool refused it.
struct Offloaded<F>(Option<F>);

impl<F> AsyncBody for Offloaded<F>
where
    F: Future<Output = Result<String, OffloadError>> + Send + Unpin,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        let Some(job) = this.0.as_mut() else {
            return Poll::Ready(None);
        };
        let result = std::task::ready!(Pin::new(job).poll(cx));
        this.0 = None;
        match result {
            Ok(name) => {
                start.start(text_head())?;
                Step::ready(Ok::<_, BoxError>(Bytes::from(name)))
            }
            Err(OffloadError::Saturated { capacity }) => {
                start.start(
                    ResponseHead::new(StatusCode::SERVICE_UNAVAILABLE)
                        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
                        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
                )?;
                Step::ready(Ok::<_, BoxError>(Bytes::from(format!(
                    "pool full ({capacity})"
                ))))
            }
            Err(other) => Step::ready(Err::<Bytes, _>(Box::new(other))),
        }
    }
}

/// The switch of an asynchronous application, and its offload, under
/// axum with a full pool.
#[tokio::test]
async fn an_asynchronous_applications_switch_and_offload_under_axum_meet_the_bound() {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let switching =
        rgi_async::from_fn(|_environ: Environ, _start: &mut StartResponse<'_>| Ok(SwitchNow));
    let offloading = rgi_async::from_fn(|environ: Environ, _start: &mut StartResponse<'_>| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        let job = capabilities
            .offload()
            .run(|| std::thread::current().name().unwrap_or("").to_owned());
        Ok(Offloaded(Some(Box::pin(job))))
    });
    // One pool for both mounts, as one host would have.
    let switch_host = host_at(addr, "/switch", tiny_pool());
    let pool = switch_host.pool().clone();
    let offload_host = Host::builder(
        ServerInfo::new("127.0.0.1", addr.port())
            .unwrap()
            .with_script_name("/offload")
            .unwrap(),
    )
    .shared_pool(pool.clone())
    .build();
    let router = Router::new()
        .nest_service(
            "/switch",
            async_mount(AsyncService::new(switching, switch_host)),
        )
        .nest_service(
            "/offload",
            async_mount(AsyncService::new(offloading, offload_host)),
        );
    let server = AxumServer::start(listener, router);

    // With a free pool both run there.
    assert_eq!(
        get_text(server.addr, "/switch").await,
        (StatusCode::OK, String::from("switched"))
    );
    drained(&pool).await;
    let (status, name) = get_text(server.addr, "/offload").await;
    assert_eq!(status, StatusCode::OK);
    assert!(name.starts_with("rgi-pool-"), "{name}");
    drained(&pool).await;

    // The one thread taken: the switch is answered 503 by the service,
    // the offload refused to the application, which answers 503 itself.
    let (entered, entries) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    pool.try_execute(move || {
        entered.send(()).ok();
        released.recv_timeout(LIMIT).ok();
    })
    .unwrap();
    tokio::task::spawn_blocking(move || entries.recv_timeout(LIMIT).unwrap())
        .await
        .unwrap();
    let (parts, _) = fetch(server.addr, request("GET", "/switch/x", TestBody::empty())).await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(parts.headers[header::RETRY_AFTER], "1");
    let (parts, body) = fetch(server.addr, request("GET", "/offload/x", TestBody::empty())).await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(parts.headers[header::RETRY_AFTER], "1");
    assert_eq!(body, "pool full (1)");

    release.send(()).unwrap();
    drained(&pool).await;
    assert_eq!(
        get_text(server.addr, "/switch/x").await,
        (StatusCode::OK, String::from("switched"))
    );
    server.stop().await;
}

/// What the tracing subscriber of a test writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a subscriber writing into the returned buffer, for this
/// thread (the test's runtime is current-thread, so its server tasks run
/// here too).
fn capture_traces() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(flavor = "current_thread")]
async fn the_trace_layer_around_an_rgi_application_records_its_requests() {
    let (captured, _guard) = capture_traces();
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let traced = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .service(async_mount(AsyncService::new(
            async_app(),
            host_at(addr, "/rgi", pool()),
        )));
    let router = Router::new().nest_service("/rgi", traced);
    let server = AxumServer::start(listener, router);

    let (status, body) = get_text(server.addr, "/rgi/traced?n=1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("script=/rgi path=/traced query=n=1"),
        "{body}"
    );
    let echoed = post(
        server.addr,
        "/rgi/echo",
        &chunks(&["traced ", "body"]),
        false,
    )
    .await;
    assert_eq!(echoed, "traced body");
    server.stop().await;

    let log = captured.text();
    // The layer sits inside the nesting: it sees the mount-relative target.
    let span = "request{method=GET uri=/traced?n=1 version=HTTP/1.1}";
    let lines: Vec<&str> = log.lines().filter(|line| line.contains(span)).collect();
    assert!(
        lines
            .iter()
            .any(|line| line.contains("started processing request")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("finished processing request") && line.contains("status=200")),
        "{log}"
    );
    // The span closed: the response was complete and its body dropped.
    assert!(lines.iter().any(|line| line.contains("close")), "{log}");
    let post_span = "request{method=POST uri=/echo version=HTTP/1.1}";
    assert!(
        log.lines()
            .any(|line| line.contains(post_span) && line.contains("status=200")),
        "{log}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn trace_compression_and_timeout_around_an_rgi_application_serve_gzip() {
    let (captured, _guard) = capture_traces();
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let text = "an RGI application behind three tower-http layers. ".repeat(200);
    let served = text.clone();
    let (never, waiting) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let waiting: Feed = Arc::new(Mutex::new(Some(waiting)));
    let app = rgi_async::from_fn(move |environ: Environ, start: &mut StartResponse<'_>| {
        if environ.path_info() == "/wait" {
            // Nothing is ever fed: the timeout layer answers.
            let events = waiting.lock().unwrap().take().ok_or("one wait")?;
            return Ok(Either::Other(
                rgi_async::from_stream(Fed(events)).with_head(sse::head()),
            ));
        }
        start.start(text_head())?;
        Ok(Either::Whole(Some(Bytes::from(served.clone()))))
    });
    let stack = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(300),
        ))
        .service(async_mount(AsyncService::new(
            app,
            host_at(addr, "/rgi", pool()),
        )));
    let router = Router::new().nest_service("/rgi", stack);
    let server = AxumServer::start(listener, router);

    // A client that asks for gzip gets it, and it decodes to the text.
    let mut gzip = request("GET", "/rgi/text", TestBody::empty());
    gzip.headers_mut()
        .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    let (parts, body) = fetch(server.addr, gzip).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[header::CONTENT_ENCODING], "gzip");
    assert!(body.starts_with(&[0x1f, 0x8b]), "a gzip stream");
    assert!(
        body.len() < text.len() / 4,
        "compressed: {} bytes",
        body.len()
    );
    let encoded = Response::builder()
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Full::new(body))
        .unwrap();
    let decoder = Decompression::new(tower::service_fn(move |_: http::Request<()>| {
        let encoded = encoded.clone();
        async move { Ok::<_, Infallible>(encoded) }
    }));
    let decoded = decoder.oneshot(http::Request::new(())).await.unwrap();
    let decoded = decoded.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(decoded, text);

    // One that does not gets the text as it is.
    let (parts, body) = fetch(server.addr, request("GET", "/rgi/text", TestBody::empty())).await;
    assert!(!parts.headers.contains_key(header::CONTENT_ENCODING));
    assert_eq!(
        parts.headers[header::CONTENT_LENGTH],
        text.len().to_string()
    );
    assert_eq!(body, text);

    // A head that does not come within the timeout: the layer answers.
    let started = tokio::time::Instant::now();
    let (status, _) = get_text(server.addr, "/rgi/wait").await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_millis(300));
    drop(never);
    server.stop().await;

    let log = captured.text();
    assert!(
        log.lines().any(|line| line.contains("uri=/text")
            && line.contains("finished processing request")
            && line.contains("status=200")),
        "{log}"
    );
    assert!(
        log.lines().any(|line| line.contains("uri=/wait")
            && line.contains("finished processing request")
            && line.contains("status=408")),
        "{log}"
    );
}
