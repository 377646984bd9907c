//! What the server's integration tests share: a small tower service, a
//! client runtime, raw-socket helpers.

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rgi::ConnectionInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every test bounds its client side with this.
pub const BOUND: Duration = Duration::from_secs(30);

/// Runs a client future on a runtime of its own, bounded in time.
pub fn run<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    runtime
        .block_on(async { tokio::time::timeout(BOUND, future).await })
        .expect("test bounded in time")
}

/// A response body: whole (with a length) or in chunks (no length, so
/// HTTP/1.1 sends it chunked).
#[derive(Debug)]
pub enum TestBody {
    Whole(Option<Bytes>),
    Chunks(VecDeque<Bytes>),
    /// `left` chunks of 64 KiB, each made only when hyper asks for it;
    /// every chunk made is counted in `PRODUCED`.
    Lazy {
        left: usize,
    },
}

/// Bytes the lazy bodies have produced (pulled by hyper) so far.
pub static PRODUCED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl TestBody {
    pub fn text(text: impl Into<Bytes>) -> Self {
        Self::Whole(Some(text.into()))
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = match self.get_mut() {
            Self::Whole(bytes) => bytes.take(),
            Self::Chunks(chunks) => chunks.pop_front(),
            Self::Lazy { left } => {
                if *left == 0 {
                    None
                } else {
                    *left -= 1;
                    PRODUCED.fetch_add(65_536, std::sync::atomic::Ordering::Relaxed);
                    Some(Bytes::from(vec![b'x'; 65_536]))
                }
            }
        };
        Poll::Ready(next.map(|bytes| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Whole(bytes) => bytes.is_none(),
            Self::Chunks(chunks) => chunks.is_empty(),
            Self::Lazy { left } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Whole(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Whole(None) => SizeHint::with_exact(0),
            Self::Chunks(_) | Self::Lazy { .. } => SizeHint::default(),
        }
    }
}

/// The test application, as a tower service:
/// - `/`: `hello`;
/// - `/echo`: the request body, sent back in chunks;
/// - `/info`: what the connection information says;
/// - `/sleep/<ms>`: `slept` after that many milliseconds;
/// - `/version`: the request's HTTP version;
/// - `/lazy/<n>`: n chunks of 64 KiB, made as hyper pulls them;
/// - `/upgrade`: `101`, then an echo over the upgraded connection.
#[derive(Debug, Clone)]
pub struct TestService {
    pub info: Arc<ConnectionInfo>,
}

pub fn factory() -> impl rgi_server::ServiceFactory {
    |info: Arc<ConnectionInfo>| TestService { info }
}

impl tower_service::Service<Request<Incoming>> for TestService {
    type Response = Response<TestBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<TestBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        let info = Arc::clone(&self.info);
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let body = match path.as_str() {
                "/upgrade" => {
                    let upgrade = hyper::upgrade::on(&mut request);
                    tokio::spawn(async move {
                        let Ok(upgraded) = upgrade.await else { return };
                        let mut io = hyper_util::rt::TokioIo::new(upgraded);
                        let mut buffer = [0_u8; 1024];
                        loop {
                            match io.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if io.write_all(&buffer[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                    let mut response = Response::new(TestBody::Whole(None));
                    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    response
                        .headers_mut()
                        .insert("connection", http::HeaderValue::from_static("upgrade"));
                    response
                        .headers_mut()
                        .insert("upgrade", http::HeaderValue::from_static("echo"));
                    return Ok(response);
                }
                "/" => TestBody::text("hello"),
                "/echo" => {
                    let collected = request.into_body().collect().await;
                    let bytes = collected
                        .map(http_body_util::Collected::to_bytes)
                        .unwrap_or_default();
                    let mut chunks = VecDeque::new();
                    for chunk in bytes.chunks(7) {
                        chunks.push_back(Bytes::copy_from_slice(chunk));
                    }
                    TestBody::Chunks(chunks)
                }
                "/info" => {
                    let tls = info.tls();
                    TestBody::text(format!(
                        "peer={} local={} scheme={:?} tls={:?} sni={:?} alpn={:?} certs={}",
                        info.peer_addr()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        info.local_addr()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        info.url_scheme(),
                        tls.and_then(rgi::TlsInfo::version),
                        tls.and_then(|t| t.server_name()),
                        tls.and_then(|t| t.alpn_protocol())
                            .map(|p| String::from_utf8_lossy(p).into_owned()),
                        tls.map_or(0, |t| t.peer_certificates().len()),
                    ))
                }
                lazy if lazy.starts_with("/lazy/") => TestBody::Lazy {
                    left: lazy["/lazy/".len()..].parse().unwrap_or(0),
                },
                "/version" => TestBody::text(format!("{:?}", request.version())),
                sleep if sleep.starts_with("/sleep/") => {
                    let ms: u64 = sleep["/sleep/".len()..].parse().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    TestBody::text("slept")
                }
                _ => {
                    let mut response = Response::new(TestBody::text("not found"));
                    *response.status_mut() = StatusCode::NOT_FOUND;
                    return Ok(response);
                }
            };
            Ok(Response::new(body))
        })
    }
}

/// Starts a plain server on 127.0.0.1 with the test service.
pub fn start(builder: rgi_server::Builder) -> rgi_server::Server {
    builder
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .serve(factory())
        .expect("server starts")
}

pub fn addr(server: &rgi_server::Server) -> std::net::SocketAddr {
    server.local_addr().expect("a TCP listener")
}

/// Writes `request` on a new connection and reads until the server closes
/// it (or `BOUND` passes).
pub async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_to_close(&mut stream).await
}

/// Reads until end of stream or a reset.
pub async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// An HTTP/1.1 client connection (hyper) over TCP.
pub async fn h1_client(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    sender
}

/// An HTTP/2 client connection (hyper, prior knowledge) over TCP.
pub async fn h2_client(
    address: std::net::SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Full<Bytes>> {
    let stream = TcpStream::connect(address).await.expect("connect");
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    sender
}

pub async fn body_text(response: Response<Incoming>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("whole body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn get(path: &str) -> Request<http_body_util::Full<Bytes>> {
    Request::get(path)
        .header("host", "test.example")
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request")
}

/// Bare hyper on its own one-worker runtime, with rgi-server's hyper
/// settings, answering with a fresh `make()` service per request: the
/// baseline the allocation and memory tests compare rgi-server with.
pub fn bare_hyper<S, M>(make: M) -> (tokio::runtime::Runtime, std::net::SocketAddr)
where
    M: Fn() -> S + Copy + Send + 'static,
    S: tower_service::Service<
            Request<Incoming>,
            Response = Response<http_body_util::Full<Bytes>>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).expect("nodelay");
            tokio::spawn(async move {
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(None)
                    .keep_alive(true)
                    .half_close(false)
                    .max_headers(100)
                    .max_header_size(64 * 1024)
                    .max_buf_size(64 * 1024);
                let service = hyper::service::service_fn(move |request| {
                    tower_service::Service::call(&mut make(), request)
                });
                let _ = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (runtime, address)
}

/// Waits (bounded) until `check` holds.
pub async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

/// Sends the server's log to the test output (`RGI_TEST_LOG=1`).
pub fn log() {
    if std::env::var_os("RGI_TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_test_writer()
            .try_init();
    }
}
