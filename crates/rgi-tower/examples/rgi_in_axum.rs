//! An RGI application nested in an axum `Router`: axum serves its own
//! routes, and everything under `/rgi` goes to a synchronous RGI
//! application behind tower-http's `TraceLayer` and `CompressionLayer`.
//! The application sees the mount point as `SCRIPT_NAME`, the rest of the
//! path as `PATH_INFO`, the raw query, and the client's address.
//!
//! ```text
//! cargo run -p rgi-tower --example rgi_in_axum            # 127.0.0.1:8080
//! curl http://127.0.0.1:8080/                              # axum's route
//! curl 'http://127.0.0.1:8080/rgi/hello?name=axum'         # the RGI application
//! curl -d 'echo me' http://127.0.0.1:8080/rgi/echo         # a request body, echoed
//! curl --compressed -v http://127.0.0.1:8080/rgi/long      # gzip from CompressionLayer
//! ```
//!
//! Each request is logged by `TraceLayer` on the terminal.
//!
//! `cargo run -p rgi-tower --example rgi_in_axum -- --check` serves on a
//! free port, sends its own requests (axum's route, the mount point, a
//! query, a sized and a chunked body, gzip), checks each answer, stops the
//! server gracefully and exits 0 when everything held, 1 otherwise, in
//! well under a second (at most 30 when something is held back).
#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::error::Error;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, OriginalUri, Request};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use rgi::{Address, ConnectionInfo, Environ, ResponseHead, ServerInfo, StartResponse};
use rgi_tower::{Host, PoolConfig, SyncService};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

/// Where the RGI application is mounted.
const MOUNT: &str = "/rgi";

/// One line of the long text at `/rgi/long`, sent 100 times.
const LINE: &str = "RGI inside axum, compressed by tower-http.\n";

/// The RGI application: a greeting that says where it runs, an echo, and
/// a long text worth compressing. It reads its input blocking, so the
/// service runs it on the host's pool.
fn app() -> impl rgi::Application {
    rgi::from_fn(|mut environ: Environ, start: &mut StartResponse<'_>| {
        let text = ResponseHead::new(StatusCode::OK).with_header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let body = if environ.path_info() == "/echo" {
            let mut bytes = Vec::new();
            environ.input_mut().read_to_end(&mut bytes)?;
            Bytes::from(bytes)
        } else if environ.path_info() == "/long" {
            Bytes::from(LINE.repeat(100))
        } else {
            Bytes::from(format!(
                "SCRIPT_NAME={} PATH_INFO={} QUERY_STRING={} REMOTE_ADDR={}\n",
                environ.script_name(),
                environ.path_info(),
                environ.query_string(),
                environ
                    .remote_addr()
                    .map(|peer| peer.ip().to_string())
                    .unwrap_or_default(),
            ))
        };
        start.start(text)?;
        Ok(body)
    })
}

/// The Router: axum's routes, and the RGI application at [`MOUNT`].
///
/// # Errors
///
/// The mount point refused as a script name (it is not: `/rgi`).
fn router(addr: SocketAddr) -> Result<Router, rgi::EnvironError> {
    let info = ServerInfo::new("127.0.0.1", addr.port())?.with_script_name(MOUNT)?;
    let host = Host::builder(info)
        .pool(PoolConfig {
            threads: 4,
            queue: 16,
            // Each request gets its own connection half (see below): this
            // bounds one request's share.
            per_connection: 4,
        })
        .build();
    let rgi = SyncService::new(app(), host);
    // axum strips the mount point from the URI: put the target back, so
    // that the environ splits it at the script name, and describe the
    // peer from axum's ConnectInfo.
    let mounted = tower::service_fn(move |mut request: Request| {
        if let Some(OriginalUri(original)) = request.extensions().get::<OriginalUri>() {
            *request.uri_mut() = original.clone();
        }
        let mut connection = ConnectionInfo::new();
        if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
            connection = connection.with_peer_addr(Address::Tcp(*peer));
        }
        rgi.connection(Arc::new(connection)).oneshot(request)
    });
    let layered = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(CompressionLayer::new())
        .service(mounted);
    Ok(Router::new()
        .route("/", get(|| async { "axum's own route\n" }))
        .nest_service(MOUNT, layered))
}

/// Serves `router` on `listener` until `stop` resolves.
async fn serve(
    listener: TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    if std::env::args().nth(1).as_deref() == Some("--check") {
        return tokio::time::timeout(Duration::from_secs(30), check())
            .await
            .map_err(|_| "the check did not finish within 30 s")?;
    }
    // TraceLayer's spans and events (at DEBUG) on the terminal.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .init();
    let listener = TcpListener::bind("127.0.0.1:8080").await?;
    let addr = listener.local_addr()?;
    println!("axum with an RGI application at {MOUNT}, on http://{addr} (Ctrl-C to stop)");
    println!("  curl http://{addr}/");
    println!("  curl 'http://{addr}{MOUNT}/hello?name=axum'");
    println!("  curl -d 'echo me' http://{addr}{MOUNT}/echo");
    println!("  curl --compressed -v http://{addr}{MOUNT}/long");
    serve(listener, router(addr)?, std::future::pending()).await?;
    Ok(())
}

/// One answer: status, Content-Encoding, body.
struct Answer {
    status: StatusCode,
    encoding: Option<HeaderValue>,
    body: Bytes,
}

/// Sends one request on a fresh connection; `chunks` are sent with a
/// Content-Length when `sized`, else chunked.
async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    chunks: &[&'static str],
    sized: bool,
    gzip: bool,
) -> Result<Answer, Box<dyn Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(target)
        .header(header::HOST, "127.0.0.1");
    if gzip {
        request = request.header(header::ACCEPT_ENCODING, "gzip");
    }
    let body = if sized {
        http_body_util::Either::Left(Full::new(Bytes::from(chunks.concat())))
    } else {
        let frames: Vec<_> = chunks
            .iter()
            .map(|chunk| Ok::<_, Infallible>(Frame::data(Bytes::from_static(chunk.as_bytes()))))
            .collect();
        http_body_util::Either::Right(StreamBody::new(futures_util::stream::iter(frames)))
    };
    let response = sender.send_request(request.body(body)?).await?;
    let status = response.status();
    let encoding = response.headers().get(header::CONTENT_ENCODING).cloned();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        encoding,
        body,
    })
}

/// `--check`: serves on a free port, asks, checks, stops.
async fn check() -> Result<(), Box<dyn Error + Send + Sync>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router(addr)?, async move {
        let _ = stopped.await;
    }));

    let mut failures = 0;
    let mut verdict = |what: &str, ok: bool| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failures += 1;
        }
    };
    let root = send(addr, "GET", "/", &[], true, false).await?;
    verdict(
        "axum's own route answers beside the mount",
        root.status == StatusCode::OK && root.body == "axum's own route\n",
    );
    let mount = send(addr, "GET", MOUNT, &[], true, false).await?;
    verdict(
        "the mount point itself: SCRIPT_NAME=/rgi, an empty PATH_INFO",
        mount.status == StatusCode::OK
            && mount.body == "SCRIPT_NAME=/rgi PATH_INFO= QUERY_STRING= REMOTE_ADDR=127.0.0.1\n",
    );
    let hello = send(
        addr,
        "GET",
        "/rgi/hello/caf%C3%A9?name=a%20b",
        &[],
        true,
        false,
    )
    .await?;
    verdict(
        "below it: PATH_INFO decoded, the query raw",
        hello.status == StatusCode::OK
            && hello.body
                == "SCRIPT_NAME=/rgi PATH_INFO=/hello/café QUERY_STRING=name=a%20b REMOTE_ADDR=127.0.0.1\n",
    );
    let chunks = ["a request body ", "in ", "three chunks"];
    let sized = send(addr, "POST", "/rgi/echo", &chunks, true, false).await?;
    let chunked = send(addr, "POST", "/rgi/echo", &chunks, false, false).await?;
    verdict(
        "a sized and a chunked request body are echoed",
        sized.status == StatusCode::OK
            && sized.body == chunks.concat()
            && chunked.status == StatusCode::OK
            && chunked.body == chunks.concat(),
    );
    let plain = send(addr, "GET", "/rgi/long", &[], true, false).await?;
    let gzip = send(addr, "GET", "/rgi/long", &[], true, true).await?;
    verdict(
        "CompressionLayer: gzip to a client that asks, the text to one that does not",
        plain.encoding.is_none()
            && plain.body == LINE.repeat(100)
            && gzip.encoding.as_ref().is_some_and(|value| value == "gzip")
            && gzip.body.starts_with(&[0x1f, 0x8b])
            && gzip.body.len() < plain.body.len() / 4,
    );

    let _ = stop.send(());
    server.await??;
    if failures > 0 {
        return Err(format!("{failures} checks failed").into());
    }
    println!("the RGI application answered inside axum as expected; the server stopped");
    Ok(())
}
