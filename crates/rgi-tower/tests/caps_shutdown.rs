//! A long-poll parked in a readiness wait hears the host's shutdown
//! through `caps::Shutdown` and answers in time, served through
//! `AsyncService` over real hyper on 127.0.0.1.

#![cfg(unix)]
// Helpers outside `#[test]` functions fail the test that calls them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rgi::{Address, BoxError, ConnectionInfo, Environ, ServerInfo};
use rgi_async::{Capabilities, Interest, Responder, WaitOutcome};
use rgi_tower::caps::{HostCapabilities, Shutdown, TokioContext};
use rgi_tower::{AsyncService, Host, PoolConfig};
use tokio::net::{TcpListener, TcpStream};
use tower_service::Service;

const BOUND: Duration = Duration::from_secs(10);

/// Waits for news on `feed` (a readiness wait without a timeout), or for
/// the host's shutdown, whichever comes first.
async fn long_poll(
    environ: Environ,
    response: Responder,
    feed: Arc<UnixStream>,
) -> Result<(), BoxError> {
    let capabilities = Capabilities::of(&environ).ok_or("an asynchronous host")?;
    let readiness = capabilities.readiness().ok_or("readiness")?.clone();
    let shutdown = Shutdown::of(&environ).cloned().unwrap_or_default();
    tokio::select! {
        outcome = readiness.wait(&*feed, Interest::READABLE, None) => {
            if !matches!(outcome?, WaitOutcome::Ready(_)) {
                return Err("a wait without a timeout timed out".into());
            }
            let mut news = [0; 64];
            let read = (&*feed).read(&mut news)?;
            response.send(Bytes::copy_from_slice(&news[..read])).await;
        }
        () = shutdown.triggered() => {
            response.set_status(StatusCode::SERVICE_UNAVAILABLE)?;
            response.append_header("retry-after", "5")?;
        }
    }
    Ok(())
}

async fn serve(feed: Arc<UnixStream>, shutdown: &Shutdown) -> SocketAddr {
    let capabilities = HostCapabilities::builder(TokioContext::current().unwrap())
        .shutdown(shutdown.clone())
        .build();
    let server = ServerInfo::new("127.0.0.1", 80)
        .unwrap()
        .with_extension(shutdown.clone());
    let host = Host::builder(server)
        .pool(PoolConfig {
            threads: 2,
            queue: 2,
            per_connection: 2,
        })
        .capabilities(move |builder| capabilities.add_to(builder))
        .build();
    let app = rgi_async::from_async_fn(move |environ, response| {
        long_poll(environ, response, Arc::clone(&feed))
    });
    let service = AsyncService::new(app, host);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let info = ConnectionInfo::new().with_peer_addr(Address::Tcp(peer));
            let connection = service.connection(Arc::new(info));
            tokio::spawn(async move {
                let hyper_service = hyper::service::service_fn(move |request| {
                    let mut connection = connection.clone();
                    connection.call(request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .await;
            });
        }
    });
    addr
}

async fn get(addr: SocketAddr) -> (StatusCode, Bytes) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("/poll")
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(BOUND, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    let status = response.status();
    let body = tokio::time::timeout(BOUND, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_long_poll_answers_when_the_host_begins_to_shut_down() {
    let (feed, mut publisher) = UnixStream::pair().unwrap();
    feed.set_nonblocking(true).unwrap();
    let feed = Arc::new(feed);
    let shutdown = Shutdown::new();
    let addr = serve(Arc::clone(&feed), &shutdown).await;

    // Before the shutdown, news wakes the parked request.
    let polling = tokio::spawn(get(addr));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!polling.is_finished(), "answered without news");
    publisher.write_all(b"news").unwrap();
    assert_eq!(
        polling.await.unwrap(),
        (StatusCode::OK, Bytes::from("news"))
    );

    // Then a request parks with no news coming; the shutdown wakes it.
    let polling = tokio::spawn(get(addr));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!polling.is_finished(), "answered without news");
    let triggered = Instant::now();
    shutdown.trigger();
    let (status, _) = polling.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(triggered.elapsed() < Duration::from_secs(1));
}
