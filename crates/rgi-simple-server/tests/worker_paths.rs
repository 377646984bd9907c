//! The worker's own paths: a socket that stays non-blocking on the worker
//! (reads and writes wait within the body timeout), and a kept connection
//! whose next request is served on the same worker when it is already there,
//! without an idle connection or a partial head ever holding one.
// A failed unwrap in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{Body, BoxError, Environ, ResponseHead, StartResponse};
use rgi_simple_server::{Builder, Limits, Server};

use common::{PATIENCE, connect, responses};

/// Answers with the request's path, or the request body for a POST.
fn path_or_body() -> impl rgi::Application {
    rgi::from_fn(|mut environ: Environ, start: &mut StartResponse<'_>| {
        let body = if environ.method() == http::Method::POST {
            environ.input_mut().read_to_bytes(1 << 20)?
        } else {
            Bytes::from(environ.raw_path().to_string())
        };
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(body)
    })
}

fn one_worker<A: rgi::Application>(app: A, limits: Limits) -> Server {
    Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .limits(limits)
        .serve_sync(app)
        .unwrap()
}

/// Reads until `bytes` holds `count` complete Content-Length responses;
/// panics after `PATIENCE`.
fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<u8> {
    let deadline = Instant::now() + PATIENCE;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while complete(&out) < count {
        assert!(Instant::now() < deadline, "no {count} responses in time");
        match stream.read(&mut buf) {
            Ok(0) => panic!("closed after {} responses", complete(&out)),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(error) => panic!("read failed after {} responses: {error}", complete(&out)),
        }
    }
    out
}

/// How many complete Content-Length responses `bytes` holds.
fn complete(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if bytes.len() < end + 4 + length {
            break;
        }
        bytes = &bytes[end + 4 + length..];
        count += 1;
    }
    count
}

fn get(addr: SocketAddr, path: &str) -> Vec<u8> {
    let mut stream = connect(addr);
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .unwrap();
    let bytes = read_responses(&mut stream, 1);
    responses(&bytes, &[]).remove(0).body
}

#[test]
fn more_pipelined_requests_than_a_worker_serves_in_a_row_all_come_back_in_order() {
    let server = one_worker(path_or_body(), Limits::default());
    let addr = server.tcp_addr().unwrap();
    let mut stream = connect(addr);
    let mut burst = Vec::new();
    for index in 0..40 {
        burst.extend_from_slice(format!("GET /{index} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
    stream.write_all(&burst).unwrap();
    let bytes = read_responses(&mut stream, 40);
    let answers = responses(&bytes, &[]);
    assert_eq!(answers.len(), 40);
    for (index, answer) in answers.iter().enumerate() {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, format!("/{index}").as_bytes());
    }
    // The connection is still kept after the burst.
    stream
        .write_all(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let bytes = read_responses(&mut stream, 1);
    assert_eq!(responses(&bytes, &[])[0].body, b"/after");
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_partial_head_after_a_response_and_an_idle_connection_hold_no_worker() {
    // One worker: if either connection held it, the other client would
    // get no answer before its read gives up.
    let server = one_worker(path_or_body(), Limits::default());
    let addr = server.tcp_addr().unwrap();

    // A complete request followed at once by the start of another.
    let mut partial = connect(addr);
    partial
        .write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /sec")
        .unwrap();
    let bytes = read_responses(&mut partial, 1);
    assert_eq!(responses(&bytes, &[])[0].body, b"/first");

    // A kept connection that goes quiet after its answer.
    let mut idle = connect(addr);
    idle.write_all(b"GET /idle HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let bytes = read_responses(&mut idle, 1);
    assert_eq!(responses(&bytes, &[])[0].body, b"/idle");

    assert_eq!(get(addr, "/third"), b"/third");

    // Both are still served when they go on.
    partial
        .write_all(b"ond HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let bytes = read_responses(&mut partial, 1);
    assert_eq!(responses(&bytes, &[])[0].body, b"/second");
    idle.write_all(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let bytes = read_responses(&mut idle, 1);
    assert_eq!(responses(&bytes, &[])[0].body, b"/again");
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_slow_body_within_the_timeout_is_read_whole() {
    let limits = Limits::default().with_body_timeout(Duration::from_secs(2));
    let server = one_worker(path_or_body(), limits);
    let addr = server.tcp_addr().unwrap();
    let mut stream = connect(addr);
    stream
        .write_all(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\nab")
        .unwrap();
    for piece in [&b"cdef"[..], b"ghij", b"kl"] {
        // Each pause leaves the worker's read waiting on its socket.
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(piece).unwrap();
    }
    let bytes = read_responses(&mut stream, 1);
    assert_eq!(responses(&bytes, &[])[0].body, b"abcdefghijkl");
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_client_that_stops_reading_frees_its_worker_after_the_body_timeout() {
    struct Endless(Arc<AtomicUsize>);
    impl Body for Endless {
        fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
            if !start.is_started() {
                if let Err(e) = start.start(ResponseHead::new(StatusCode::OK)) {
                    return Some(Err(e.into()));
                }
            }
            Some(Ok(Bytes::from(vec![b'x'; 64 * 1024])))
        }
    }
    impl Drop for Endless {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&dropped);
    let app = rgi::from_fn(move |environ: Environ, start: &mut StartResponse<'_>| {
        if environ.raw_path() == "/endless" {
            return Ok(Box::new(Endless(Arc::clone(&counter))) as Box<dyn Body>);
        }
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Box::new(Bytes::from_static(b"ok")) as Box<dyn Body>)
    });
    let limits = Limits::default().with_body_timeout(Duration::from_millis(300));
    let server = one_worker(app, limits);
    let addr = server.tcp_addr().unwrap();
    // Open, ask, and never read: the socket buffers fill and the worker's
    // write waits for room.
    let mut stalled = connect(addr);
    stalled
        .write_all(b"GET /endless HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while dropped.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the stalled write never ended"
    );
    // The only worker is free again.
    assert_eq!(get(addr, "/next"), b"ok");
    drop(stalled);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_pipelined_stream_larger_than_one_head_read_is_served_to_the_end() {
    // The poller stops reading a connection at max_head + max_target
    // buffered bytes; what stays in the socket then brings no new edge and
    // must still be read when the connection comes back from its worker.
    let limits = Limits::default().with_max_head(1024).with_max_target(256);
    let server = one_worker(path_or_body(), limits);
    let addr = server.tcp_addr().unwrap();
    let mut stream = connect(addr);
    let mut writer = stream.try_clone().unwrap();
    const COUNT: usize = 600;
    let sender = std::thread::spawn(move || {
        let mut all = Vec::new();
        for index in 0..COUNT {
            all.extend_from_slice(
                format!("GET /{index:04} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
            );
        }
        writer.write_all(&all).unwrap();
    });
    let bytes = read_responses(&mut stream, COUNT);
    sender.join().unwrap();
    let answers = responses(&bytes, &[]);
    assert_eq!(answers.len(), COUNT);
    for (index, answer) in answers.iter().enumerate() {
        assert_eq!(answer.body, format!("/{index:04}").as_bytes());
    }
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_client_that_half_closes_after_its_request_is_answered_and_closed() {
    // A long idle timeout: the close must come from the end of stream,
    // not from the timeout.
    let limits = Limits::default().with_idle_timeout(Duration::from_secs(60));
    let server = one_worker(path_or_body(), limits);
    let addr = server.tcp_addr().unwrap();
    for _ in 0..3 {
        let mut stream = connect(addr);
        stream
            .write_all(b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let (bytes, closed) = common::read_to_close(&mut stream);
        assert!(closed, "the server kept a half-closed connection open");
        assert_eq!(responses(&bytes, &[])[0].body, b"/last");
    }
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_partial_head_and_the_end_of_stream_together_close_without_waiting_for_the_timeout() {
    // The bytes and the end come in one edge; a short read of the bytes
    // alone must not leave the end unseen until the head timeout.
    let limits = Limits::default().with_head_timeout(Duration::from_secs(60));
    let server = one_worker(path_or_body(), limits);
    let addr = server.tcp_addr().unwrap();
    for _ in 0..3 {
        let mut stream = connect(addr);
        stream.write_all(b"GET /never HTTP/1.1\r\nHo").unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let (bytes, closed) = common::read_to_close(&mut stream);
        assert!(closed, "the server waited on a connection that had ended");
        assert!(bytes.is_empty(), "a peer that ends mid-head gets no answer");
    }
    server.shutdown(Duration::from_secs(5));
}
