//! The pieces stacked in front of asynchronous applications and served by
//! `rgi-server` on 127.0.0.1, asked over real sockets: the concurrency and
//! body limits, the router, the pre-read over the server's non-blocking
//! input, and the timeout on the server's own readiness capability (a
//! tokio `AsyncFd` wait, not the test client's poller).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::Method;
use rgi::{BoxError, Environ, StartResponse};
use rgi_async::{AsyncBody, Step};
use rgi_middleware::{
    BodyLimit, BoxAsyncApplication, ConcurrencyLimit, Middleware, Mount, PreRead, Router, Timeout,
};
use rgi_server::Server;

use common::text_head;

/// Pending for ever, keeping its waker: a backend that hangs.
struct Hanging(Option<Waker>);

impl AsyncBody for Hanging {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        self.get_mut().0 = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Echoes a body that must already be in memory (read with a waker
/// that does nothing, inside `call`).
fn echo(mut environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut body = BytesMut::new();
    loop {
        match environ.input_mut().poll_chunk(&mut cx, 4096) {
            Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
            Poll::Ready(Ok(chunk)) => body.extend_from_slice(&chunk),
            Poll::Ready(Err(err)) => return Err(err.into()),
            Poll::Pending => return Err("not in memory".into()),
        }
    }
    start.start(text_head(Some(body.len())))?;
    Ok(body.freeze())
}

type Echo = fn(Environ, &mut StartResponse<'_>) -> Result<Bytes, BoxError>;

fn serve() -> Server {
    let slow = Timeout::new(
        rgi_async::from_fn(|_e, _s: &mut StartResponse<'_>| Ok(Hanging(None))),
        Duration::from_millis(200),
    );
    let router = Router::new()
        .mount(Mount::at("/slow").unwrap(), BoxAsyncApplication::new(slow))
        .mount(
            Mount::at("/upload").unwrap().methods([Method::POST]),
            BoxAsyncApplication::new(PreRead::new(rgi_async::from_fn(echo as Echo), 16)),
        );
    let app = ConcurrencyLimit::new(8).wrap(BodyLimit::new(1024).wrap(router));
    Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(1)
        .shutdown_timeout(Duration::from_secs(2))
        .serve_async(app)
        .expect("the server starts")
}

/// Sends `head` (and `body`) on a new connection that the server closes
/// after the response; the whole response, as text. Every wait is bounded.
fn ask(address: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!("{head}\r\nhost: test.example\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn the_asynchronous_stack_served_by_rgi_server() {
    let server = serve();
    let address = server.local_addr().expect("a TCP listener");

    let began = Instant::now();
    let slow = ask(address, "GET /slow HTTP/1.1", b"");
    let took = began.elapsed();
    assert!(slow.starts_with("HTTP/1.1 504"), "{slow}");
    assert!(slow.ends_with("gateway timeout\n"), "{slow}");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");

    let upload = ask(
        address,
        "POST /upload/x HTTP/1.1\r\ncontent-length: 5",
        b"hello",
    );
    assert!(upload.starts_with("HTTP/1.1 200"), "{upload}");
    assert!(upload.ends_with("\r\n\r\nhello"), "{upload}");

    let chunked = ask(
        address,
        "POST /upload HTTP/1.1\r\ntransfer-encoding: chunked",
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");
    assert!(chunked.ends_with("\r\n\r\nabcde"), "{chunked}");

    let large = ask(
        address,
        "POST /upload HTTP/1.1\r\ncontent-length: 17",
        &[b'x'; 17],
    );
    assert!(large.starts_with("HTTP/1.1 413"), "{large}");

    let huge = ask(
        address,
        "POST /upload HTTP/1.1\r\ncontent-length: 2048",
        b"",
    );
    assert!(
        huge.starts_with("HTTP/1.1 413"),
        "the body limit, before the router: {huge}"
    );

    let missing = ask(address, "GET /nowhere HTTP/1.1", b"");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    let wrong = ask(address, "GET /upload HTTP/1.1", b"");
    assert!(wrong.starts_with("HTTP/1.1 405"), "{wrong}");
    assert!(
        wrong.to_ascii_lowercase().contains("\r\nallow: post\r\n"),
        "{wrong}"
    );

    server.shutdown();
}

/// Reads its input with the blocking face, as synchronous code does.
fn sync_echo(mut environ: Environ, start: &mut StartResponse<'_>) -> Result<Vec<u8>, BoxError> {
    let mut body = Vec::new();
    environ.input_mut().read_to_end(&mut body)?;
    start.start(text_head(Some(body.len())))?;
    Ok(body)
}

type SyncEcho = fn(Environ, &mut StartResponse<'_>) -> Result<Vec<u8>, BoxError>;

#[test]
fn the_synchronous_stack_served_by_rgi_server() {
    let router = Router::new()
        .mount(
            Mount::at("/whole").unwrap(),
            rgi_middleware::BoxApplication::new(PreRead::new(
                rgi::from_fn(sync_echo as SyncEcho),
                16,
            )),
        )
        .mount(
            Mount::at("/stream").unwrap().methods([Method::POST]),
            rgi_middleware::BoxApplication::new(rgi::from_fn(sync_echo as SyncEcho)),
        );
    let app = ConcurrencyLimit::new(8).wrap(BodyLimit::new(8).wrap(router));
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(1)
        .shutdown_timeout(Duration::from_secs(2))
        .serve_sync(app)
        .expect("the server starts");
    let address = server.local_addr().expect("a TCP listener");

    let whole = ask(address, "POST /whole HTTP/1.1\r\ncontent-length: 3", b"abc");
    assert!(whole.starts_with("HTTP/1.1 200"), "{whole}");
    assert!(whole.ends_with("\r\n\r\nabc"), "{whole}");

    let streamed = ask(
        address,
        "POST /stream HTTP/1.1\r\ntransfer-encoding: chunked",
        b"4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n",
    );
    assert!(streamed.starts_with("HTTP/1.1 200"), "{streamed}");
    assert!(streamed.ends_with("\r\n\r\nabcdefgh"), "{streamed}");

    // Counted as read: the ninth byte fails the read, the server answers 413.
    let over = ask(
        address,
        "POST /stream HTTP/1.1\r\ntransfer-encoding: chunked",
        b"4\r\nabcd\r\n5\r\nefghi\r\n0\r\n\r\n",
    );
    assert!(over.starts_with("HTTP/1.1 413"), "{over}");

    let declared = ask(
        address,
        "POST /stream HTTP/1.1\r\ncontent-length: 9",
        b"123456789",
    );
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");

    let head = ask(address, "HEAD /stream HTTP/1.1", b"");
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");

    server.shutdown();
}
