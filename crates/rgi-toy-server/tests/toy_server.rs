//! The conforming toy server, driven over raw sockets: keep-alive,
//! pipelining, chunked uploads and truncation, HEAD, `100 Continue`,
//! unread bodies, failures, asynchronous applications with their
//! capabilities, the upgrade, and stopping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rgi::{Body, BoxError, Environ, InputError, ResponseHead, StartResponse};
use rgi_async::{AsyncBody, ByteStream, Capabilities, Step};
use rgi_conformance::suite::{Probe, ServerUnderTest};
use rgi_toy_server::{self as toy, ToyServer};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A response as read off the wire.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// Chunked responses: whether the last-chunk arrived.
    complete: bool,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
    }
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    BufReader::new(stream)
}

fn send(conn: &mut BufReader<TcpStream>, bytes: &[u8]) {
    conn.get_mut().write_all(bytes).unwrap();
}

/// Reads one response head (interim 1xx responses included).
fn read_head(conn: &mut BufReader<TcpStream>) -> (u16, Vec<(String, Vec<u8>)>) {
    let mut raw = Vec::new();
    loop {
        let mut line = Vec::new();
        let count = conn.read_until(b'\n', &mut line).unwrap();
        assert!(count > 0, "connection closed inside a head: {raw:?}");
        raw.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut fields);
    assert!(parsed.parse(&raw).unwrap().is_complete());
    let headers = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    (parsed.code.unwrap(), headers)
}

/// Reads a whole response to a request with `method`.
fn read_response(conn: &mut BufReader<TcpStream>, method: &str) -> Response {
    let (status, headers) = read_head(conn);
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        complete: true,
    };
    if method == "HEAD" || status == 204 || status == 304 {
        return response;
    }
    if response.header("transfer-encoding") == Some("chunked") {
        response.complete = false;
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line).unwrap_or(0) == 0 {
                return response;
            }
            let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
            if size == 0 {
                let mut end = String::new();
                conn.read_line(&mut end).unwrap();
                assert_eq!(end, "\r\n");
                response.complete = true;
                return response;
            }
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).unwrap();
            assert_eq!(&chunk[size..], b"\r\n");
            response.body.extend_from_slice(&chunk[..size]);
        }
    }
    if let Some(length) = response.header("content-length") {
        let mut body = vec![0; length.parse().unwrap()];
        conn.read_exact(&mut body).unwrap();
        response.body = body;
        return response;
    }
    conn.read_to_end(&mut response.body).unwrap();
    response
}

/// Whether the server closed the connection (EOF within the timeout).
fn closed(conn: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

/// Echoes the path and the request body, read whole.
fn echo() -> impl rgi::Application {
    rgi::from_fn(|mut environ: Environ, start| {
        let body = environ.input_mut().read_to_bytes(1 << 20)?;
        let mut out = environ.raw_path().as_bytes().to_vec();
        out.push(b':');
        out.extend_from_slice(&body);
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(out))
    })
}

#[test]
fn keep_alive_and_framing() {
    let server = toy::serve_sync(rgi::from_fn(
        |environ: Environ, start| -> Result<Box<dyn rgi::Body>, rgi::BoxError> {
            let body = Bytes::from(format!("path {}", environ.raw_path()));
            let head = if environ.raw_path() == "/length" {
                ResponseHead::new(StatusCode::OK)
                    .with_header(header::CONTENT_LENGTH, HeaderValue::from(body.len()))
            } else {
                ResponseHead::new(StatusCode::OK)
            };
            start.start(head)?;
            if environ.raw_path() == "/hinted" {
                // An exact size hint: the toy declares it (RGI-CL-6).
                return Ok(Box::new(body));
            }
            // No size hint: the toy cannot know the length.
            Ok(Box::new(rgi::from_iter([body])))
        },
    ))
    .unwrap();
    let mut conn = connect(server.addr());
    send(&mut conn, b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n");
    let first = read_response(&mut conn, "GET");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("transfer-encoding"), Some("chunked"));
    assert!(first.header("content-length").is_none());
    assert!(first.header("date").is_some());
    assert!(first.complete);
    assert_eq!(first.body, b"path /chunked");
    send(&mut conn, b"GET /length HTTP/1.1\r\nHost: x\r\n\r\n");
    let second = read_response(&mut conn, "GET");
    assert_eq!(second.header("content-length"), Some("12"));
    assert!(second.header("transfer-encoding").is_none());
    assert_eq!(second.body, b"path /length");
    send(&mut conn, b"GET /hinted HTTP/1.1\r\nHost: x\r\n\r\n");
    let hinted = read_response(&mut conn, "GET");
    assert_eq!(hinted.header("content-length"), Some("12"));
    assert!(hinted.header("transfer-encoding").is_none());
    assert_eq!(hinted.body, b"path /hinted");
    send(
        &mut conn,
        b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let last = read_response(&mut conn, "GET");
    assert_eq!(last.header("connection"), Some("close"));
    assert!(closed(&mut conn));
    server.stop().unwrap();
}

#[test]
fn http_10_is_close_delimited_unless_kept_alive() {
    let server = toy::serve_sync(rgi::from_fn(|_environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(rgi::from_iter(["a", "b"]))
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(&mut conn, b"GET / HTTP/1.0\r\n\r\n");
    let response = read_response(&mut conn, "GET");
    assert!(response.header("transfer-encoding").is_none());
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.body, b"ab");
    server.stop().unwrap();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = toy::serve_sync(echo()).unwrap();
    let mut conn = connect(server.addr());
    send(
        &mut conn,
        b"POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /two HTTP/1.1\r\nHost: x\r\n\r\nPOST /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(read_response(&mut conn, "POST").body, b"/one:hello");
    assert_eq!(read_response(&mut conn, "GET").body, b"/two:");
    assert_eq!(read_response(&mut conn, "POST").body, b"/three:abc");
    server.stop().unwrap();
}

#[test]
fn chunked_upload_with_extensions_and_trailers() {
    let server = toy::serve_sync(echo()).unwrap();
    let mut conn = connect(server.addr());
    send(
        &mut conn,
        b"PUT /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n1\r\n \r\n",
    );
    // The rest arrives later, in pieces.
    std::thread::sleep(Duration::from_millis(50));
    send(&mut conn, b"5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n");
    let response = read_response(&mut conn, "PUT");
    assert_eq!(response.body, b"/up:hello world");
    send(&mut conn, b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_response(&mut conn, "GET").body, b"/after:");
    server.stop().unwrap();
}

/// Records what the application's input reported.
fn truncation_probe(seen: Arc<Mutex<Option<String>>>) -> impl rgi::Application {
    rgi::from_fn(move |mut environ: Environ, start| {
        let mut body = Vec::new();
        let outcome = environ.input_mut().read_to_end(&mut body);
        let described = match &outcome {
            Ok(_) => format!("eof after {}", body.len()),
            Err(err) => match InputError::from_io(err) {
                Some(InputError::Truncated { declared, received }) => {
                    format!("truncated {declared} {received}")
                }
                _ => format!("error {err}"),
            },
        };
        *seen.lock().unwrap() = Some(described);
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::new())
    })
}

fn wait_for(seen: &Mutex<Option<String>>) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(seen) = seen.lock().unwrap().clone() {
            return seen;
        }
        assert!(Instant::now() < deadline, "the application never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn truncated_uploads_are_typed_errors() {
    for (request, expected) in [
        (
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"[..],
            "truncated 10 3",
        ),
        (
            &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\nabc"[..],
            "truncated 10 3",
        ),
    ] {
        let seen = Arc::new(Mutex::new(None));
        let server = toy::serve_sync(truncation_probe(Arc::clone(&seen))).unwrap();
        let mut conn = connect(server.addr());
        send(&mut conn, request);
        conn.get_ref().shutdown(Shutdown::Write).unwrap();
        assert_eq!(wait_for(&seen), expected);
        server.stop().unwrap();
    }
}

#[test]
fn head_requests_get_the_head_only() {
    let server = toy::serve_sync(rgi::from_fn(|_environ: Environ, start| {
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("11")),
        )?;
        Ok(Bytes::from_static(b"hello world"))
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(&mut conn, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = read_response(&mut conn, "HEAD");
    assert_eq!(head.header("content-length"), Some("11"));
    send(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let get = read_response(&mut conn, "GET");
    assert_eq!(get.status, 200, "the HEAD response carried body bytes");
    assert_eq!(get.body, b"hello world");
    server.stop().unwrap();
}

#[test]
fn continue_is_sent_when_the_body_is_first_read() {
    let server = toy::serve_sync(echo()).unwrap();
    let mut conn = connect(server.addr());
    send(
        &mut conn,
        b"PUT /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    let (status, _) = read_head(&mut conn);
    assert_eq!(status, 100);
    send(&mut conn, b"data");
    assert_eq!(read_response(&mut conn, "PUT").body, b"/c:data");
    server.stop().unwrap();
}

#[test]
fn no_continue_for_a_body_nobody_reads() {
    let server = toy::serve_sync(rgi::from_fn(|_environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::FORBIDDEN))?;
        Ok(Bytes::from_static(b"no"))
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(
        &mut conn,
        b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    let response = read_response(&mut conn, "PUT");
    assert_eq!(response.status, 403);
    // The body never came, so the connection cannot be reused.
    assert!(closed(&mut conn));
    server.stop().unwrap();
}

#[test]
fn unread_bodies_are_drained_not_parsed() {
    let server = toy::serve_sync(rgi::from_fn(|environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(environ.raw_path().to_owned()))
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(
        &mut conn,
        b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(read_response(&mut conn, "POST").body, b"/first");
    assert_eq!(read_response(&mut conn, "GET").body, b"/second");
    server.stop().unwrap();
}

#[test]
fn bad_heads_get_400_and_a_close() {
    let server = toy::serve_sync(echo()).unwrap();
    for request in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    ] {
        let mut conn = connect(server.addr());
        send(&mut conn, request);
        let response = read_response(&mut conn, "GET");
        assert_eq!(response.status, 400, "{}", String::from_utf8_lossy(request));
        assert!(closed(&mut conn));
    }
    server.stop().unwrap();
}

#[test]
fn failures_before_and_after_the_head() {
    let server = toy::serve_sync(rgi::from_fn(|environ: Environ, start| {
        match environ.raw_path() {
            "/before" => Err::<Box<dyn Body>, BoxError>("secret detail".into()),
            "/panic" => std::panic::panic_any("boom"),
            _ => {
                start.start(ResponseHead::new(StatusCode::OK))?;
                let mut sent = false;
                Ok(Box::new(
                    rgi::from_iter(std::iter::from_fn(move || {
                        (!sent).then(|| {
                            sent = true;
                            Bytes::from_static(b"partial")
                        })
                    }))
                    .chain_error(),
                ) as Box<dyn Body>)
            }
        }
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(&mut conn, b"GET /before HTTP/1.1\r\nHost: x\r\n\r\n");
    let before = read_response(&mut conn, "GET");
    assert_eq!(before.status, 500);
    assert!(!String::from_utf8_lossy(&before.body).contains("secret"));
    send(&mut conn, b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_response(&mut conn, "GET").status, 500);
    send(&mut conn, b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    let after = read_response(&mut conn, "GET");
    assert_eq!(after.status, 200);
    assert_eq!(after.body, b"partial");
    assert!(!after.complete, "the last-chunk went out after a failure");
    server.stop().unwrap();
}

/// A body that yields its chunks, then fails.
struct ThenFail<B>(B, bool);

impl<B: Body> Body for ThenFail<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match self.0.next_chunk(start) {
            None if !self.1 => {
                self.1 = true;
                Some(Err("failed mid-body".into()))
            }
            other => other,
        }
    }
}

trait ChainError: Sized {
    fn chain_error(self) -> ThenFail<Self>;
}

impl<B: Body> ChainError for B {
    fn chain_error(self) -> ThenFail<Self> {
        ThenFail(self, false)
    }
}

#[test]
fn chunks_reach_the_client_before_the_next_pull() {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let server = toy::serve_sync(rgi::from_fn(move |_environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        let rx = Arc::clone(&rx);
        let mut step = 0;
        Ok(rgi::from_iter(std::iter::from_fn(move || {
            step += 1;
            match step {
                1 => Some(Bytes::from_static(b"first")),
                // The second chunk waits until the client saw the first.
                2 => rx
                    .lock()
                    .unwrap()
                    .recv_timeout(TIMEOUT)
                    .ok()
                    .map(|()| Bytes::from_static(b"second")),
                _ => None,
            }
        })))
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, _) = read_head(&mut conn);
    assert_eq!(status, 200);
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    assert_eq!(line, "5\r\n");
    let mut first = [0; 7];
    conn.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"first\r\n");
    tx.send(()).unwrap();
    let mut rest = String::new();
    conn.read_line(&mut rest).unwrap();
    assert_eq!(rest, "6\r\n");
    server.stop().unwrap();
}

/// An asynchronous body that reads the request through the non-blocking
/// face, then answers with what it read and what the environ offered.
struct AsyncEcho {
    environ: Environ,
    read: Vec<u8>,
}

impl AsyncBody for AsyncEcho {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if start.is_head_sent() {
            return Poll::Ready(None);
        }
        loop {
            match this.environ.input_mut().poll_chunk(cx, 4) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                Poll::Ready(Ok(chunk)) => this.read.extend_from_slice(&chunk),
            }
        }
        let caps = Capabilities::of(&this.environ).unwrap();
        let mut out = this.read.clone();
        out.extend_from_slice(
            format!(
                " readiness={} after={} upgrade={}",
                caps.readiness().is_some(),
                caps.after_response().is_some(),
                caps.upgrade().is_some()
            )
            .as_bytes(),
        );
        if let Err(err) = start.start(ResponseHead::new(StatusCode::OK)) {
            return Poll::Ready(Some(Err(err.into())));
        }
        Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(out)))))
    }
}

#[test]
fn asynchronous_applications_read_without_blocking() {
    let server = toy::serve_async(rgi_async::from_fn(|environ: Environ, _start| {
        assert!(environ.input().is_async());
        Ok(AsyncEcho {
            environ,
            read: Vec::new(),
        })
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(
        &mut conn,
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let (status, _) = read_head(&mut conn);
    assert_eq!(status, 100);
    send(&mut conn, b"6\r\nasync \r\n4\r\nbody\r\n0\r\n\r\n");
    let response = read_response(&mut conn, "POST");
    assert_eq!(
        String::from_utf8(response.body).unwrap(),
        format!(
            "async body readiness={} after=true upgrade=false",
            cfg!(unix)
        )
    );
    server.stop().unwrap();
}

/// Yields `first`, waits for an offload job to finish, yields `last`.
struct TwoSteps {
    step: u8,
    wait: rgi_async::OffloadFuture<bool>,
}

impl AsyncBody for TwoSteps {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        this.step += 1;
        match this.step {
            1 => Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"first"))))),
            2 => match Pin::new(&mut this.wait).poll(cx) {
                Poll::Pending => {
                    this.step = 1;
                    Poll::Pending
                }
                Poll::Ready(_) => Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"last"))))),
            },
            _ => Poll::Ready(None),
        }
    }
}

#[test]
fn after_response_tasks_run_after_the_response() {
    let ran = Arc::new(AtomicBool::new(false));
    let (release, released) = mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(Some(released)));
    let task_ran = Arc::clone(&ran);
    let server = toy::serve_async(rgi_async::from_fn(move |environ: Environ, start| {
        let caps = Capabilities::of(&environ).unwrap();
        let task_ran = Arc::clone(&task_ran);
        caps.after_response()
            .unwrap()
            .spawn(move || task_ran.store(true, Ordering::SeqCst))
            .unwrap();
        let released = released.lock().unwrap().take().unwrap();
        let wait = caps
            .offload()
            .run(move || released.recv_timeout(TIMEOUT).is_ok());
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(TwoSteps { step: 0, wait })
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, _) = read_head(&mut conn);
    assert_eq!(status, 200);
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    assert_eq!(line, "5\r\n");
    // The response is under way, not complete: the task must wait.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !ran.load(Ordering::SeqCst),
        "the task ran before the response was complete"
    );
    release.send(()).unwrap();
    let mut rest = String::new();
    conn.read_to_string(&mut rest).unwrap_or_default();
    let deadline = Instant::now() + TIMEOUT;
    while !ran.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the task never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.stop().unwrap();
}

/// Accepts the upgrade and echoes what the client sends, upper-cased,
/// until the client closes its side.
struct Upgraded {
    upgraded: Option<rgi_async::Upgraded>,
    stream: Option<Box<dyn ByteStream>>,
    pending: Vec<u8>,
}

impl AsyncBody for Upgraded {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if let Some(upgraded) = &mut this.upgraded {
            match Pin::new(upgraded).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(Ok(stream)) => {
                    this.stream = Some(stream);
                    this.upgraded = None;
                }
            }
        }
        let Some(stream) = this.stream.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            while !this.pending.is_empty() {
                match stream.poll_write(cx, &this.pending) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                    Poll::Ready(Ok(count)) => {
                        this.pending.drain(..count);
                    }
                }
            }
            let mut buf = [0; 64];
            match stream.poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(Ok(0)) => {
                    return match stream.poll_close(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(_) => Poll::Ready(None),
                    };
                }
                Poll::Ready(Ok(count)) => this.pending = buf[..count].to_ascii_uppercase(),
            }
        }
    }
}

#[test]
fn upgrade_hands_the_connection_over() {
    let server = toy::serve_async(rgi_async::from_fn(|environ: Environ, _start| {
        let upgrade = Capabilities::of(&environ)
            .and_then(Capabilities::upgrade)
            .ok_or("no upgrade")?;
        let mut fields = HeaderMap::new();
        fields.insert("x-accepted", HeaderValue::from_static("yes"));
        Ok(Upgraded {
            upgraded: Some(upgrade.accept(fields)?),
            stream: None,
            pending: Vec::new(),
        })
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    // The first protocol bytes travel with the request.
    send(
        &mut conn,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\nhello ",
    );
    let (status, headers) = read_head(&mut conn);
    assert_eq!(status, 101);
    let field = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
    };
    assert_eq!(field("upgrade").as_deref(), Some("shout"));
    assert_eq!(field("connection").as_deref(), Some("upgrade"));
    assert_eq!(field("x-accepted").as_deref(), Some("yes"));
    send(&mut conn, b"world");
    conn.get_ref().shutdown(Shutdown::Write).unwrap();
    let mut echoed = Vec::new();
    conn.read_to_end(&mut echoed).unwrap();
    assert_eq!(echoed, b"HELLO WORLD");
    server.stop().unwrap();
}

#[test]
fn the_suite_trait_serves_both_kinds_of_probe() {
    let server = ToyServer::new();
    assert_eq!(server.name(), "toy");
    let sync = Probe::sync(echo());
    let running = server.start(sync).unwrap();
    let mut conn = connect(running.addr());
    send(
        &mut conn,
        b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(read_response(&mut conn, "POST").body, b"/s:hi");
    running.stop().unwrap();

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let asynchronous = Probe::asynchronous(rgi_async::from_fn(move |environ: Environ, start| {
        counted.fetch_add(1, Ordering::SeqCst);
        let has_caps = Capabilities::of(&environ).is_some();
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(format!("caps={has_caps}")))
    }));
    let running = server.start(asynchronous).unwrap();
    let mut conn = connect(running.addr());
    send(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_response(&mut conn, "GET").body, b"caps=true");
    running.stop().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Never ends: it stays pending, with no wake-up arranged by anyone but
/// the server's shutdown.
struct Forever(Arc<AtomicBool>);

impl AsyncBody for Forever {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Pending
    }
}

impl Drop for Forever {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn stop_ends_idle_connections_and_parked_bodies() {
    let dropped = Arc::new(AtomicBool::new(false));
    let called = Arc::new(AtomicBool::new(false));
    let (flag, seen) = (Arc::clone(&dropped), Arc::clone(&called));
    let server = toy::serve_async(rgi_async::from_fn(move |_environ: Environ, start| {
        seen.store(true, Ordering::SeqCst);
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Forever(Arc::clone(&flag)))
    }))
    .unwrap();
    let addr = server.addr();
    let mut idle = connect(addr);
    let mut parked = connect(addr);
    send(&mut parked, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let deadline = Instant::now() + TIMEOUT;
    while !called.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the request never reached the application"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    server.stop().unwrap();
    assert!(started.elapsed() < TIMEOUT);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the parked body was not dropped"
    );
    assert!(closed(&mut idle));
    let mut rest = Vec::new();
    let _ = parked.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "a parked body without output sent {rest:?}"
    );
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

#[test]
fn errors_go_to_the_log_and_never_fail() {
    let server = toy::serve_sync(rgi::from_fn(|mut environ: Environ, start| {
        environ.errors_mut().write_all(b"a line\nand \xff bytes")?;
        environ.errors_mut().flush()?;
        start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
        Ok(rgi::Empty)
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = read_response(&mut conn, "GET");
    assert_eq!(response.status, 204);
    assert!(response.header("transfer-encoding").is_none());
    assert!(response.header("content-length").is_none());
    server.stop().unwrap();
}

#[test]
fn environ_describes_the_connection() {
    let server = toy::serve_sync(rgi::from_fn(|environ: Environ, start| {
        let text = format!(
            "{} {} {} {} {:?} {} {}",
            environ.method(),
            environ.server_name(),
            environ.server_port(),
            environ
                .remote_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            environ.url_scheme(),
            environ.concurrency().multithread,
            environ.headers().get_all("x-repeat").iter().count(),
        );
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(text))
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(
        &mut conn,
        b"get /p HTTP/1.1\r\nHost: example.test:99\r\nX-Repeat: 1\r\nX-Repeat: 2\r\n\r\n",
    );
    let body = String::from_utf8(read_response(&mut conn, "GET").body).unwrap();
    assert_eq!(
        body,
        format!(
            "get example.test {} 127.0.0.1 Http true 2",
            server.addr().port()
        )
    );
    server.stop().unwrap();
}

#[test]
fn stop_does_not_wait_for_an_input_the_application_kept() {
    // The application keeps the request's input beyond the request (here,
    // the test holds it), after a read started the input's pump thread.
    let (keep, kept) = mpsc::channel::<rgi::Input>();
    let keep = Mutex::new(keep);
    let server = toy::serve_async(rgi_async::from_fn(move |mut environ: Environ, start| {
        let waker = std::task::Waker::noop();
        let _ = environ
            .input_mut()
            .poll_chunk(&mut Context::from_waker(waker), 16);
        let _ = keep.lock().unwrap().send(environ.into_input());
        start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
        Ok(rgi::Empty)
    }))
    .unwrap();
    let mut conn = connect(server.addr());
    send(
        &mut conn,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
    );
    let input = kept.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(read_head(&mut conn).0, 204);
    let started = Instant::now();
    server.stop().unwrap();
    assert!(
        started.elapsed() < TIMEOUT,
        "stop waited {:?} for the kept input",
        started.elapsed()
    );
    drop(input);
}
