//! The capabilities of `caps` wired through `Host` into `AsyncService`:
//! an upgrade accepted over real hyper, after-response tasks run once the
//! response is complete.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is the test's failure")]

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, HeaderValue, StatusCode};
use rgi::{BoxError, ResponseHead, ServerInfo, StartResponse};
use rgi_async::{AsyncBody, ByteStream, Capabilities, Step, Upgraded};
use rgi_tower::caps::HostCapabilities;
use rgi_tower::{AsyncService, Host};
use tokio::io::AsyncWriteExt;

fn tokio_host() -> Host {
    Host::builder(ServerInfo::new("127.0.0.1", 80).unwrap())
        .pool(small_pool())
        .tokio_capabilities(HostCapabilities::current().unwrap())
        .build()
}

/// Waits for the upgraded connection, then echoes what arrives on it.
enum EchoOverUpgrade {
    Waiting(Upgraded),
    Echoing(Box<dyn ByteStream>),
    Done,
}

impl AsyncBody for EchoOverUpgrade {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this {
                EchoOverUpgrade::Waiting(upgraded) => {
                    let stream = std::task::ready!(Pin::new(upgraded).poll(cx))?;
                    *this = EchoOverUpgrade::Echoing(stream);
                }
                EchoOverUpgrade::Echoing(stream) => {
                    let mut buffer = [0; 256];
                    let read = std::task::ready!(stream.poll_read(cx, &mut buffer))?;
                    if read == 0 {
                        *this = EchoOverUpgrade::Done;
                        continue;
                    }
                    // Small writes on loopback: one poll writes them whole.
                    let written = std::task::ready!(stream.poll_write(cx, &buffer[..read]))?;
                    assert_eq!(written, read);
                    std::task::ready!(stream.poll_flush(cx))?;
                }
                EchoOverUpgrade::Done => return Poll::Ready(None),
            }
        }
    }
}

use std::future::Future;

#[tokio::test]
async fn an_accepted_upgrade_hands_the_connection_to_the_application() {
    let app = rgi_async::from_fn(|environ: rgi::Environ, start: &mut StartResponse<'_>| {
        let upgrade = Capabilities::of(&environ).and_then(Capabilities::upgrade);
        match upgrade {
            Some(upgrade) => {
                let mut headers = HeaderMap::new();
                headers.insert(http::header::UPGRADE, HeaderValue::from_static("rgi-echo"));
                let upgraded = upgrade.accept(headers)?;
                Ok(Box::new(EchoOverUpgrade::Waiting(upgraded)) as Box<dyn AsyncBody + Unpin>)
            }
            None => {
                start.start(ResponseHead::new(StatusCode::OK))?;
                Ok(Box::new(Bytes::from_static(b"no upgrade offered")))
            }
        }
    });
    let service = AsyncService::new(app, tokio_host());
    let server = serve(move |connection| service.connection(connection)).await;
    // A plain request is offered no upgrade.
    let (_, body) = fetch(server.addr, request("GET", "/", TestBody::empty())).await;
    assert_eq!(body, "no upgrade offered");

    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: rgi-echo\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut stream, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: rgi-echo"),
        "{head}"
    );
    stream.write_all(b"ping").await.unwrap();
    let echoed = read_until(&mut stream, "ping").await;
    assert_eq!(echoed, "ping");
    stream.write_all(b"pong").await.unwrap();
    assert_eq!(read_until(&mut stream, "pong").await, "pong");
}

/// A body whose drop is recorded.
struct Flagged(Arc<AtomicBool>, Option<Bytes>);

impl AsyncBody for Flagged {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(self.get_mut().1.take().map(|chunk| Ok(Step::Chunk(chunk))))
    }
}

impl Drop for Flagged {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn after_response_tasks_run_once_the_response_is_complete() {
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let app = rgi_async::from_fn(
        move |environ: rgi::Environ, start: &mut StartResponse<'_>| {
            let dropped = Arc::new(AtomicBool::new(false));
            let seen = Arc::clone(&dropped);
            let report = report.clone();
            let after = Capabilities::of(&environ)
                .and_then(Capabilities::after_response)
                .ok_or("no after-response tasks")?;
            after.spawn(move || {
                report.send(seen.load(Ordering::SeqCst)).ok();
            })?;
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(Flagged(dropped, Some(Bytes::from_static(b"answered"))))
        },
    );
    let service = AsyncService::new(app, tokio_host());
    let server = serve(move |connection| service.connection(connection)).await;
    let (parts, body) = fetch(server.addr, request("GET", "/", TestBody::empty())).await;
    assert_eq!(
        (parts.status, body),
        (StatusCode::OK, Bytes::from_static(b"answered"))
    );
    let body_was_dropped = tokio::time::timeout(LIMIT, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        body_was_dropped,
        "the task ran before the response was complete"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(reports.try_recv().is_err(), "the task ran more than once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_runtime_are_lent_server_wide() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let app = rgi_async::from_fn(|environ: rgi::Environ, start: &mut StartResponse<'_>| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        let answer = format!(
            "readiness {} runtime {:?} after {}",
            capabilities.readiness().is_some(),
            capabilities.runtime(),
            capabilities.after_response().is_some()
        );
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(answer))
    });
    let service = AsyncService::new(app, tokio_host());
    let response = service
        .connection(Arc::new(rgi::ConnectionInfo::new()))
        .oneshot(
            http::Request::get("/")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "readiness true runtime Some(Tokio) after true");
}
