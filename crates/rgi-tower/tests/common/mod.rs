//! Real hyper over 127.0.0.1 for the integration tests: a server that
//! serves one of this crate's services per connection, and a client.

#![allow(dead_code, unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure here is the failure of the test"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rgi::{Address, ConnectionInfo, ServerInfo};
use rgi_tower::{Host, PoolConfig, ResponseBody};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower_service::Service;

/// Every test's bound.
pub const LIMIT: Duration = Duration::from_secs(20);

pub fn host(pool: PoolConfig) -> Host {
    Host::builder(ServerInfo::new("127.0.0.1", 80).unwrap())
        .pool(pool)
        .build()
}

pub fn small_pool() -> PoolConfig {
    PoolConfig {
        threads: 4,
        queue: 4,
        per_connection: 8,
    }
}

/// A running test server.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves HTTP/1.1 on 127.0.0.1 with `make(connection)` as each
/// connection's service.
pub async fn serve<S, F>(make: F) -> Server
where
    F: Fn(Arc<ConnectionInfo>) -> S + Send + Sync + 'static,
    S: Service<Request<Incoming>, Response = Response<ResponseBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let info = Arc::new(
                ConnectionInfo::new()
                    .with_peer_addr(Address::Tcp(peer))
                    .with_local_addr(Address::Tcp(addr)),
            );
            let service = make(info);
            tokio::spawn(async move {
                let hyper_service = hyper::service::service_fn(move |request| {
                    let mut service = service.clone();
                    service.call(request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Server { addr, task }
}

/// A request body: whole, or fed chunk by chunk through a channel (ending
/// when the sender is dropped), or failing after its chunks.
pub enum TestBody {
    Full(Option<Bytes>),
    Channel(tokio::sync::mpsc::Receiver<Bytes>),
}

impl TestBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        TestBody::Full(Some(bytes.into()))
    }

    pub fn empty() -> Self {
        TestBody::Full(None)
    }

    pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<Bytes>, Self) {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity);
        (sender, TestBody::Channel(receiver))
    }
}

impl hyper::body::Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            TestBody::Full(bytes) => {
                std::task::Poll::Ready(bytes.take().map(|b| Ok(hyper::body::Frame::data(b))))
            }
            TestBody::Channel(receiver) => receiver
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(hyper::body::Frame::data(c)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, TestBody::Full(None))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            TestBody::Full(Some(bytes)) => hyper::body::SizeHint::with_exact(bytes.len() as u64),
            TestBody::Full(None) => hyper::body::SizeHint::with_exact(0),
            TestBody::Channel(_) => hyper::body::SizeHint::default(),
        }
    }
}

/// One HTTP/1.1 client connection.
pub async fn client(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<TestBody> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// Sends `request` on a fresh connection and collects the answer.
pub async fn fetch(addr: SocketAddr, request: Request<TestBody>) -> (http::response::Parts, Bytes) {
    let mut sender = client(addr).await;
    let response = tokio::time::timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(LIMIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (parts, body)
}

/// A request with a method, target and body.
pub fn request(method: &str, target: &str, body: TestBody) -> Request<TestBody> {
    Request::builder()
        .method(method)
        .uri(target)
        .header("host", "127.0.0.1")
        .body(body)
        .unwrap()
}

/// Counts drops of an application body.
#[derive(Clone, Default)]
pub struct DropCounter(pub Arc<AtomicUsize>);

impl DropCounter {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub fn token(&self) -> DropToken {
        DropToken(Arc::clone(&self.0))
    }

    /// Waits (bounded) until `expected` drops happened, then checks no
    /// more come.
    pub async fn expect(&self, expected: usize) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        while self.count() < expected && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(self.count(), expected, "body drops");
    }
}

/// Owned by a body: its drop is counted.
pub struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
