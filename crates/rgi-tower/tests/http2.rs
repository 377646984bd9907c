//! The services under hyper's HTTP/2 server (h2c prior knowledge) with
//! hyper's HTTP/2 client: plain exchanges, client body errors without the
//! HTTP/1-only `connection` field, and an extended CONNECT (RFC 8441)
//! accepted through the upgrade capability.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is the test's failure")]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::{LIMIT, TestBody, small_pool};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rgi::{Address, BoxError, ConnectionInfo, ResponseHead, ServerInfo, StartResponse};
use rgi_async::{AsyncBody, ByteStream, Capabilities, Step, Upgraded};
use rgi_tower::caps::HostCapabilities;
use rgi_tower::{AsyncService, Host, ResponseBody};
use tokio::net::{TcpListener, TcpStream};
use tower_service::Service;

async fn serve_h2<S, F>(make: F) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(Arc<ConnectionInfo>) -> S + Send + Sync + 'static,
    S: Service<
            http::Request<Incoming>,
            Response = http::Response<ResponseBody>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let service = make(Arc::new(
                ConnectionInfo::new().with_peer_addr(Address::Tcp(peer)),
            ));
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let mut service = service.clone();
                    service.call(request)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .enable_connect_protocol()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

async fn h2_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<TestBody> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

fn host() -> Host {
    Host::builder(ServerInfo::new("127.0.0.1", 80).unwrap())
        .pool(small_pool())
        .max_body(8)
        .tokio_capabilities(HostCapabilities::current().unwrap())
        .build()
}

/// Echoes what arrives on the upgraded stream.
enum Echo {
    Waiting(Upgraded),
    Echoing(Box<dyn ByteStream>),
}

impl AsyncBody for Echo {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this {
                Echo::Waiting(upgraded) => {
                    let stream = std::task::ready!(Pin::new(upgraded).poll(cx))?;
                    *this = Echo::Echoing(stream);
                }
                Echo::Echoing(stream) => {
                    let mut buffer = [0; 256];
                    let read = std::task::ready!(stream.poll_read(cx, &mut buffer))?;
                    if read == 0 {
                        return Poll::Ready(None);
                    }
                    let written = std::task::ready!(stream.poll_write(cx, &buffer[..read]))?;
                    if written != read {
                        return Poll::Ready(Some(Err("short write on loopback".into())));
                    }
                    std::task::ready!(stream.poll_flush(cx))?;
                }
            }
        }
    }
}

fn app() -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(|environ: rgi::Environ, start: &mut StartResponse<'_>| {
        if let Some(upgrade) = Capabilities::of(&environ).and_then(Capabilities::upgrade) {
            let upgraded = upgrade.accept(HeaderMap::new())?;
            return Ok(Box::new(Echo::Waiting(upgraded)) as Box<dyn AsyncBody + Unpin>);
        }
        start.start(ResponseHead::new(StatusCode::OK))?;
        let host = environ
            .headers()
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("(none)")
            .to_owned();
        Ok(Box::new(Bytes::from(format!(
            "{:?} {} {host}",
            environ.version(),
            environ.uri()
        ))))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_over_h2c() {
    let service = AsyncService::new(app(), host());
    let (addr, server) = serve_h2(move |connection| service.connection(connection)).await;
    let mut sender = h2_client(addr).await;
    let request = http::Request::get("http://127.0.0.1:8080/h2?x=1")
        .body(TestBody::empty())
        .unwrap();
    let response = tokio::time::timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    // `uri()` is the `:path`; `:authority` is the `host` entry.
    assert_eq!(body, "HTTP/2.0 /h2?x=1 127.0.0.1:8080");
    // A Host field naming another authority than `:authority`: 400.
    let request = http::Request::get("http://127.0.0.1:8080/h2")
        .header("host", "other.test")
        .body(TestBody::empty())
        .unwrap();
    let response = tokio::time::timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A declared length over the limit: 413, and no HTTP/1 `connection`
    // field on an HTTP/2 response.
    let request = http::Request::post("http://127.0.0.1/big")
        .body(TestBody::full("123456789"))
        .unwrap();
    let response = tokio::time::timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!response.headers().contains_key("connection"));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_connect_is_accepted_as_an_upgrade() {
    let service = AsyncService::new(app(), host());
    let (addr, server) = serve_h2(move |connection| service.connection(connection)).await;
    let mut sender = h2_client(addr).await;
    let mut request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri("http://127.0.0.1/chat")
        .body(TestBody::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("rgi-echo"));
    let response = tokio::time::timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // hyper's client hands the stream over as an upgrade, as its server did.
    let upgraded = tokio::time::timeout(LIMIT, hyper::upgrade::on(response))
        .await
        .unwrap()
        .unwrap();
    let mut stream = TokioIo::new(upgraded);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"over h2").await.unwrap();
    stream.flush().await.unwrap();
    let mut echoed = [0; 7];
    tokio::time::timeout(LIMIT, stream.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"over h2");
    server.abort();
}

/// The length the service declares for a body of known size reaches the
/// client as `content-length` over HTTP/2 too, an empty body's included:
/// hyper writes the field from the body's exact size, which an empty body
/// never shows it (`[RGI-CL-12]`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_lengths_over_h2c() {
    let app = rgi_async::from_fn(|environ: rgi::Environ, start: &mut StartResponse<'_>| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(if environ.path_info() == "/empty" {
            Bytes::new()
        } else {
            Bytes::from_static(b"four")
        })
    });
    let service = AsyncService::new(app, host());
    let (addr, server) = serve_h2(move |connection| service.connection(connection)).await;
    let mut sender = h2_client(addr).await;
    for (path, length, body) in [("/full", "4", "four"), ("/empty", "0", "")] {
        let request = http::Request::get(format!("http://127.0.0.1{path}"))
            .body(TestBody::empty())
            .unwrap();
        let response = tokio::time::timeout(LIMIT, sender.send_request(request))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-length"], length, "{path}");
        let received = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(received, body, "{path}");
    }
    server.abort();
}
