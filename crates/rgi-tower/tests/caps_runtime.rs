//! The tokio runtime context (spec/rgi-async.md §4.1): an application
//! that uses tokio's timers and sockets inside `poll_step`, served through
//! `AsyncService` over real hyper on 127.0.0.1, and the typed refusal on a
//! host that declares no runtime.

// Helpers outside `#[test]` functions fail the test that calls them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rgi::{Address, BoxError, ConnectionInfo, Environ, ServerInfo};
use rgi_async::{Capabilities, Responder, Runtime, RuntimeError};
use rgi_tower::caps::{HostCapabilities, TOKIO};
use rgi_tower::{AsyncService, Host, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_service::Service;

/// Every exchange's bound.
const BOUND: Duration = Duration::from_secs(10);

/// A TCP echo server: what the application talks to with tokio's sockets.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0; 64];
                while let Ok(read) = stream.read(&mut buf).await {
                    if read == 0 || stream.write_all(&buf[..read]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// What the application saw when it asked for tokio.
type Seen = Arc<Mutex<Vec<Result<(), RuntimeError>>>>;

/// Sleeps on tokio's timer and round-trips through a tokio socket, all in
/// `poll_step`, after asking for the runtime (`[RGIA-RT-4]`).
async fn tokio_app(
    environ: Environ,
    response: Responder,
    echo: SocketAddr,
    seen: Seen,
) -> Result<(), BoxError> {
    let capabilities = Capabilities::of(&environ).ok_or("an asynchronous host")?;
    let asked = capabilities.require_runtime(Runtime::Tokio);
    seen.lock().unwrap().push(asked);
    asked?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let slept = started.elapsed();
    let mut socket = TcpStream::connect(echo).await?;
    socket.write_all(b"ping").await?;
    let mut answer = [0; 4];
    socket.read_exact(&mut answer).await?;
    response.append_header("content-type", "text/plain")?;
    response
        .send(format!(
            "slept {}ms, echo {}",
            slept.as_millis().min(30),
            String::from_utf8_lossy(&answer)
        ))
        .await;
    Ok(())
}

/// Serves `host`'s `AsyncService` of the tokio application on 127.0.0.1.
async fn serve(host: Host, echo: SocketAddr, seen: Seen) -> SocketAddr {
    let app = rgi_async::from_async_fn(move |environ, response| {
        tokio_app(environ, response, echo, Arc::clone(&seen))
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

/// One GET on a fresh connection.
async fn get(addr: SocketAddr) -> (StatusCode, Bytes) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("/")
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

fn host_builder() -> rgi_tower::HostBuilder {
    Host::builder(ServerInfo::new("127.0.0.1", 80).unwrap()).pool(PoolConfig {
        threads: 2,
        queue: 2,
        per_connection: 2,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_uses_tokio_timers_and_sockets_inside_poll_step() {
    let capabilities = HostCapabilities::current().unwrap();
    assert_eq!(capabilities.context().runtime(), TOKIO);
    let host = host_builder()
        .capabilities(move |builder| capabilities.add_to(builder))
        .build();
    let seen = Seen::default();
    let addr = serve(host, echo_server().await, Arc::clone(&seen)).await;
    for _ in 0..3 {
        let (status, body) = get(addr).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        assert_eq!(body, "slept 30ms, echo ping");
    }
    assert_eq!(*seen.lock().unwrap(), [Ok(()), Ok(()), Ok(())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_declaration_require_runtime_refuses_typed_and_the_answer_is_500() {
    let host = host_builder().build();
    let seen = Seen::default();
    let addr = serve(host, echo_server().await, Arc::clone(&seen)).await;
    let (status, _) = get(addr).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        *seen.lock().unwrap(),
        [Err(RuntimeError::NotDeclared {
            wanted: Runtime::Tokio
        })]
    );
}

#[test]
fn the_declaration_is_refused_for_a_runtime_without_its_drivers() {
    let no_timers = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let refused = no_timers.block_on(async {
        // tokio reports the missing driver by panicking; the check catches
        // it, and the panic hook would print it: silence the hook.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let refused = HostCapabilities::current();
        std::panic::set_hook(hook);
        refused
    });
    assert_eq!(
        refused.unwrap_err(),
        rgi_tower::caps::ContextError::TimeDisabled
    );
}
