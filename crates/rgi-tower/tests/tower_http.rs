//! An asynchronous RGI application served by `AsyncService` behind
//! tower-http's `TimeoutLayer` and `CompressionLayer` (issue 14 §3), over
//! real hyper on 127.0.0.1. The service's response future resolves when
//! the RGI head is sent (with the first body bytes, or at the end), so:
//!
//! - `TimeoutLayer` bounds the time to the head: a long poll whose event
//!   comes later is answered `408` by the layer (and its body dropped),
//!   while a response whose head went out streams on past the timeout;
//! - `CompressionLayer`'s default predicate leaves `text/event-stream`
//!   alone, so events arrive one by one (`[RGI-SSE-5]`); a predicate that
//!   compresses them anyway still gets each event out at once, the
//!   encoder flushing whenever the body waits (tower-http 0.7).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed unwrap is the test's failure"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, Request, StatusCode, Version, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rgi::{ConnectionInfo, ServerInfo};
use rgi_tower::{AsyncService, Host};
use tokio::sync::mpsc;
use tower::Layer;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;
use tower_service::Service;

const BOUND: Duration = Duration::from_secs(20);

/// Serves `make()`'s service per connection with hyper's HTTP/1.1 server.
async fn serve<S, B>(make: impl Fn(Arc<ConnectionInfo>) -> S + Send + 'static) -> SocketAddr
where
    S: Service<Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _peer)) = listener.accept().await {
            let service = make(Arc::new(ConnectionInfo::new()));
            tokio::spawn(async move {
                let hyper_service = hyper::service::service_fn(move |request| {
                    let mut service = service.clone();
                    service.call(request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .await;
            });
        }
    });
    addr
}

fn host() -> Host {
    Host::builder(ServerInfo::new("127.0.0.1", 80).unwrap()).build()
}

async fn send(
    addr: SocketAddr,
    target: &str,
    accept_encoding: Option<&str>,
) -> http::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::get(target).header(header::HOST, "127.0.0.1");
    if let Some(encoding) = accept_encoding {
        request = request.header(header::ACCEPT_ENCODING, encoding);
    }
    sender
        .send_request(request.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap()
}

/// A stream of the events a test feeds through a channel.
struct Events(mpsc::UnboundedReceiver<Bytes>);

impl Stream for Events {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|event| event.map(Ok))
    }
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A body of the events fed to it (and a drop flag): its head goes out
/// with the first event, so a test that feeds one before asking gets a
/// stream, and one that feeds none a long poll.
fn events_app(
    feed: Arc<std::sync::Mutex<Option<mpsc::UnboundedReceiver<Bytes>>>>,
    dropped: Arc<AtomicBool>,
) -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(move |_environ, _start| {
        let receiver = feed.lock().unwrap().take().ok_or("one request per test")?;
        let flag = DropFlag(Arc::clone(&dropped));
        let body = rgi_async::from_stream(Events(receiver)).with_head(rgi::sse::head());
        Ok(Guarded {
            body,
            _dropped: flag,
        })
    })
}

/// An asynchronous body with a flag dropped along with it.
struct Guarded<B> {
    body: B,
    _dropped: DropFlag,
}

impl<B: rgi_async::AsyncBody + Unpin> rgi_async::AsyncBody for Guarded<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut rgi::StartResponse<'_>,
    ) -> Poll<Option<Result<rgi_async::Step, rgi::BoxError>>> {
        Pin::new(&mut self.get_mut().body).poll_step(cx, start)
    }
}

fn event(text: &str) -> Bytes {
    rgi::sse::Event::new().data(text).to_bytes()
}

#[test]
fn a_long_poll_behind_the_timeout_layer_is_answered_by_the_layer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (feed, events) = mpsc::unbounded_channel();
        let slot = Arc::new(std::sync::Mutex::new(Some(events)));
        let dropped = Arc::new(AtomicBool::new(false));
        let service = AsyncService::new(events_app(slot, Arc::clone(&dropped)), host());
        let layer =
            TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_millis(200));
        let addr = serve(move |connection| layer.layer(service.connection(connection))).await;

        let started = Instant::now();
        let response = tokio::time::timeout(BOUND, send(addr, "/poll", None))
            .await
            .unwrap();
        // No event within the timeout: the head was never sent, and the
        // layer answered for the application.
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .is_empty()
        );
        assert!(
            wait_for(|| dropped.load(Ordering::SeqCst)).await,
            "the application's body outlived the layer's answer"
        );
        drop(feed);
    });
}

#[test]
fn a_stream_whose_head_went_out_outlives_the_timeout_layer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (feed, events) = mpsc::unbounded_channel();
        let slot = Arc::new(std::sync::Mutex::new(Some(events)));
        let dropped = Arc::new(AtomicBool::new(false));
        let service = AsyncService::new(events_app(slot, dropped), host());
        let layer =
            TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_millis(100));
        let addr = serve(move |connection| layer.layer(service.connection(connection))).await;

        feed.send(event("first")).unwrap();
        let response = tokio::time::timeout(BOUND, send(addr, "/stream", None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, event("first"));
        // Well past the layer's timeout, the stream goes on.
        for n in 0..3 {
            tokio::time::sleep(Duration::from_millis(80)).await;
            feed.send(event(&format!("later {n}"))).unwrap();
            let next = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(next, event(&format!("later {n}")));
        }
        drop(feed);
        assert!(body.frame().await.is_none());
    });
}

/// Waits (bounded) until `check` holds.
async fn wait_for(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

#[test]
fn server_sent_events_pass_the_default_compression_layer_one_by_one() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (feed, events) = mpsc::unbounded_channel();
        let slot = Arc::new(std::sync::Mutex::new(Some(events)));
        let service = AsyncService::new(events_app(slot, Arc::default()), host());
        let layer = CompressionLayer::new();
        let addr = serve(move |connection| layer.layer(service.connection(connection))).await;

        feed.send(event("one")).unwrap();
        let response = tokio::time::timeout(BOUND, send(addr, "/stream", Some("gzip")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        assert!(!response.headers().contains_key(header::CONTENT_ENCODING));
        let mut body = response.into_body();
        // Each event arrives before the next one exists.
        for n in ["one", "two", "three"] {
            let frame = tokio::time::timeout(BOUND, body.frame())
                .await
                .expect("the event arrived on its own")
                .unwrap()
                .unwrap();
            assert_eq!(frame.into_data().unwrap(), event(n));
            match n {
                "one" => feed.send(event("two")).unwrap(),
                "two" => feed.send(event("three")).unwrap(),
                _ => {}
            }
        }
    });
}

#[test]
fn events_compressed_anyway_are_flushed_one_by_one() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (feed, events) = mpsc::unbounded_channel();
        let slot = Arc::new(std::sync::Mutex::new(Some(events)));
        let service = AsyncService::new(events_app(slot, Arc::default()), host());
        // A predicate that compresses event streams too.
        let everything = |_: StatusCode, _: Version, _: &HeaderMap, _: &http::Extensions| true;
        let layer = CompressionLayer::new().compress_when(everything);
        let addr = serve(move |connection| layer.layer(service.connection(connection))).await;

        feed.send(event("one")).unwrap();
        let response = tokio::time::timeout(BOUND, send(addr, "/stream", Some("gzip")))
            .await
            .unwrap();
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        let mut body = response.into_body();
        // Each event comes out of the encoder before the next one exists,
        // ended by a sync flush (an empty stored block: 00 00 ff ff).
        for n in 0..3 {
            let frame = tokio::time::timeout(BOUND, body.frame())
                .await
                .expect("the encoder let the event through")
                .unwrap()
                .unwrap()
                .into_data()
                .unwrap();
            if n == 0 {
                assert!(frame.starts_with(&[0x1f, 0x8b]), "a gzip stream: {frame:?}");
            }
            assert!(frame.ends_with(&[0, 0, 0xff, 0xff]), "flushed: {frame:?}");
            feed.send(event(&format!("next {n}"))).unwrap();
        }
        drop(feed);
        let rest = tokio::time::timeout(BOUND, body.collect())
            .await
            .unwrap()
            .unwrap();
        assert!(
            !rest.to_bytes().is_empty(),
            "the last event and the gzip trailer"
        );
    });
}
