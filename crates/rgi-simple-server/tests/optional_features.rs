//! RGI 1.2's optional features through real sockets on 127.0.0.1, for
//! synchronous applications (`serve_sync`) and asynchronous ones
//! (`serve_async`): the declared features, request trailers, response
//! trailers, `103 Early Hints`, the lifespan calls and server-sent events.
//! Wire bytes are read with a plain `TcpStream`; every wait is bounded.
// A failed unwrap in a test is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use rgi::sse::Event;
use rgi::{
    Body, BoxError, Environ, FileBody, Input, ResponseHead, StartResponse, Startup, StartupError,
    TrailersError,
};
use rgi_async::sse::EventStream;
use rgi_async::{AsyncApplication, AsyncBody, Capabilities, Interest, Source, Step};
use rgi_simple_server::{Builder, Error, Server};

use common::{PATIENCE, connect, read_to_close, responses};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn builder() -> Builder {
    Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(4)
        .async_threads(2)
}

fn serve_sync<A: rgi::Application>(app: A) -> Server {
    builder().serve_sync(app).unwrap()
}

fn serve_async<A: AsyncApplication>(app: A) -> Server {
    builder().serve_async(app).unwrap()
}

type Stepped = Poll<Option<Result<Step, BoxError>>>;

/// An asynchronous body made of a closure.
struct PollBody<F>(F);

impl<F> AsyncBody for PollBody<F>
where
    F: FnMut(&mut Context<'_>, &mut StartResponse<'_>) -> Stepped + Send + Unpin,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Stepped {
        (self.get_mut().0)(cx, start)
    }
}

fn fields(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect()
}

/// Sends `request` on a fresh connection and reads to the close.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    let (bytes, closed) = read_to_close(&mut stream);
    assert!(closed, "the server did not close: {}", text(&bytes));
    bytes
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The head (up to and with its empty line) and what follows it.
fn split_head(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4;
    (text(&bytes[..end]), &bytes[end..])
}

/// Reads until `seen` holds `needle` after `from`; where it ends.
fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, from: usize, needle: &[u8]) -> usize {
    let deadline = Instant::now() + PATIENCE;
    let mut buf = [0u8; 4096];
    loop {
        if let Some(at) = seen[from.min(seen.len())..]
            .windows(needle.len())
            .position(|w| w == needle)
        {
            return from + at + needle.len();
        }
        assert!(
            Instant::now() < deadline,
            "{:?} did not arrive; got {:?}",
            text(needle),
            text(seen)
        );
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "closed before {:?} arrived; got {:?}",
                text(needle),
                text(seen)
            ),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(error) => panic!("{error} before {:?}; got {:?}", text(needle), text(seen)),
        }
    }
}

/// A one-shot signal an asynchronous body can park on.
#[derive(Default)]
struct Latch {
    open: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Latch {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }

    fn poll_open(&self, cx: &mut Context<'_>) -> Poll<()> {
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.open.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

// ---------------------------------------------------------------------------
// Declared features
// ---------------------------------------------------------------------------

fn describe_features(environ: &Environ) -> String {
    let features = environ.features();
    format!(
        "request_trailers={} response_trailers={} early_hints={} lifespan={}",
        features.request_trailers(),
        features.response_trailers(),
        features.early_hints(),
        features.lifespan()
    )
}

#[test]
fn every_request_declares_the_features_on_both_paths() {
    let expected = "request_trailers=true response_trailers=true early_hints=true lifespan=true";
    let sync = serve_sync(rgi::from_fn(|environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(describe_features(&environ)))
    }));
    let asynchronous = serve_async(rgi_async::from_fn(|environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(describe_features(&environ)))
    }));
    for server in [&sync, &asynchronous] {
        for version in ["HTTP/1.1", "HTTP/1.0"] {
            let request = format!("GET / {version}\r\nhost: a\r\nconnection: close\r\n\r\n");
            let bytes = exchange(server.tcp_addr().unwrap(), request.as_bytes());
            assert_eq!(text(&responses(&bytes, &[])[0].body), expected);
        }
    }
}

// ---------------------------------------------------------------------------
// Request trailers
// ---------------------------------------------------------------------------

/// The body and the trailers as the application saw them.
fn describe_input(
    path: &str,
    body: &[u8],
    early: &str,
    trailers: Result<Option<HeaderMap>, TrailersError>,
) -> String {
    let trailers = match trailers {
        Err(error) => format!("error: {error}"),
        Ok(None) => "none".to_owned(),
        Ok(Some(fields)) => {
            let mut pairs: Vec<String> = fields
                .iter()
                .map(|(name, value)| format!("{name}={}", text(value.as_bytes())))
                .collect();
            pairs.sort();
            pairs.join(",")
        }
    };
    format!(
        "{path} body={} before={early} trailers={trailers}",
        text(body)
    )
}

fn before_the_end(input: &Input) -> &'static str {
    match input.trailers() {
        Err(TrailersError::BodyNotFinished { .. }) => "not-finished",
        Err(_) => "other-error",
        Ok(_) => "due-too-early",
    }
}

/// Reads the whole body, then its trailers; reports both, and the path.
fn trailer_reader_sync() -> impl rgi::Application {
    rgi::from_fn(|mut environ: Environ, start| {
        let early = before_the_end(environ.input());
        let body = environ.input_mut().read_to_bytes(1 << 20)?;
        let report = describe_input(environ.raw_path(), &body, early, environ.input().trailers());
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(report))
    })
}

/// The same, reading through the input's non-blocking face.
fn trailer_reader_async() -> impl AsyncApplication {
    rgi_async::from_fn(|environ: Environ, _start| {
        let path = environ.raw_path().to_owned();
        let mut input = environ.into_input();
        let early = before_the_end(&input);
        let mut body = Vec::new();
        let mut done = false;
        Ok(PollBody(
            move |cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
                if done {
                    return Poll::Ready(None);
                }
                loop {
                    match input.poll_chunk(cx, 64 * 1024) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                        Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                        Poll::Ready(Ok(chunk)) => body.extend_from_slice(&chunk),
                    }
                }
                done = true;
                let report = describe_input(&path, &body, early, input.trailers());
                if let Err(error) = start.start(ResponseHead::new(StatusCode::OK)) {
                    return Poll::Ready(Some(Err(error.into())));
                }
                Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(report)))))
            },
        ))
    })
}

const WITH_TRAILERS: &[u8] =
    b"POST /upload HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n\
    5\r\nhello\r\n6\r\n world\r\n0\r\n\
    X-Checksum: abc\r\nServer-Timing: db;dur=5\r\nContent-Length: 99\r\nHost: evil\r\n\
    Set-Cookie: a=b\r\nX-Checksum: def\r\n\r\n\
    GET /next HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc";

fn check_trailers_reach_the_application(server: &Server) {
    let bytes = exchange(server.tcp_addr().unwrap(), WITH_TRAILERS);
    let got = responses(&bytes, &[]);
    assert_eq!(got.len(), 2, "{}", text(&bytes));
    assert_eq!(
        text(&got[0].body),
        "/upload body=hello world before=not-finished \
         trailers=server-timing=db;dur=5,x-checksum=abc,x-checksum=def"
    );
    // Nothing of the trailer section reached the next request: its body is
    // its own, and a Content-Length body has no trailers.
    assert_eq!(
        text(&got[1].body),
        "/next body=abc before=not-finished trailers=none"
    );
}

#[test]
fn a_chunked_request_hands_its_permitted_trailers_to_a_sync_application() {
    let server = serve_sync(trailer_reader_sync());
    check_trailers_reach_the_application(&server);
}

#[test]
fn a_chunked_request_hands_its_permitted_trailers_to_an_async_application() {
    let server = serve_async(trailer_reader_async());
    check_trailers_reach_the_application(&server);
}

/// The trailer section arrives in pieces, after the application has read
/// every data byte: the end is not reported before the section is whole,
/// and the fields are there when it is.
fn check_late_trailers(server: &Server) {
    let mut stream = connect(server.tcp_addr().unwrap());
    stream
        .write_all(b"POST /late HTTP/1.1\r\nhost: a\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n")
        .unwrap();
    for piece in [&b"X-Dig"[..], b"est: 42\r\n", b"\r\n"] {
        std::thread::sleep(Duration::from_millis(100));
        stream.write_all(piece).unwrap();
    }
    let (bytes, closed) = read_to_close(&mut stream);
    assert!(closed);
    assert_eq!(
        text(&responses(&bytes, &[])[0].body),
        "/late body=abc before=not-finished trailers=x-digest=42"
    );
}

#[test]
fn trailers_that_arrive_late_are_there_at_the_end_sync() {
    check_late_trailers(&serve_sync(trailer_reader_sync()));
}

#[test]
fn trailers_that_arrive_late_are_there_at_the_end_async() {
    check_late_trailers(&serve_async(trailer_reader_async()));
}

#[test]
fn a_chunked_request_without_trailers_has_none() {
    for server in [
        serve_sync(trailer_reader_sync()),
        serve_async(trailer_reader_async()),
    ] {
        let bytes = exchange(
            server.tcp_addr().unwrap(),
            b"POST /plain HTTP/1.1\r\nhost: a\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        );
        assert_eq!(
            text(&responses(&bytes, &[])[0].body),
            "/plain body=hi before=not-finished trailers=none"
        );
    }
}

// ---------------------------------------------------------------------------
// Response trailers
// ---------------------------------------------------------------------------

/// Streams its rows, then gives their count as a trailer from its last pull.
struct Report {
    rows: VecDeque<&'static str>,
    count: usize,
}

impl Body for Report {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if let Some(row) = self.rows.pop_front() {
            self.count += 1;
            return Some(Ok(Bytes::from_static(row.as_bytes())));
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("x-rows", HeaderValue::from(self.count));
        start.send_trailers(trailers).err().map(|e| Err(e.into()))
    }
}

/// Serves a file and gives a trailer once the file has been sent.
struct TrailedFile(FileBody);

impl Body for TrailedFile {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        let chunk = self.0.next_chunk(start);
        if chunk.is_some() {
            return chunk;
        }
        let sent = start.send_trailers(fields(&[("x-file", "done")]));
        sent.err().map(|e| Err(e.into()))
    }

    fn size_hint(&self) -> Option<u64> {
        self.0.size_hint()
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        Some(&mut self.0)
    }
}

fn deliverable_fields(start: &StartResponse<'_>) -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
        .with_header(
            HeaderName::from_static("x-trailers-deliverable"),
            HeaderValue::from_static(if start.trailers_deliverable() {
                "yes"
            } else {
                "no"
            }),
        )
        .with_header(
            HeaderName::from_static("x-hints-deliverable"),
            HeaderValue::from_static(if start.early_hints_deliverable() {
                "yes"
            } else {
                "no"
            }),
        )
}

fn trailer_writer(file: PathBuf) -> impl rgi::Application {
    rgi::from_fn(
        move |environ: Environ, start| -> Result<Box<dyn Body>, BoxError> {
            let head = deliverable_fields(start);
            match environ.raw_path() {
                "/report" => {
                    start.start(
                        head.with_header(header::TRAILER, HeaderValue::from_static("x-rows")),
                    )?;
                    Ok(Box::new(Report {
                        rows: VecDeque::from(["a,1\n", "b,2\n"]),
                        count: 0,
                    }))
                }
                // An exact size hint, but a head announcing trailers: chunked.
                "/announced" => {
                    start.start(
                        head.with_header(header::TRAILER, HeaderValue::from_static("x-sum")),
                    )?;
                    start.send_trailers(fields(&[("x-sum", "5")]))?;
                    Ok(Box::new(Bytes::from_static(b"hello")))
                }
                // Not announced: the size hint frames it, and the trailers are lost.
                "/unannounced" => {
                    start.start(head)?;
                    start.send_trailers(fields(&[("x-sum", "5")]))?;
                    Ok(Box::new(Bytes::from_static(b"hello")))
                }
                "/file" => {
                    start.start(
                        head.with_header(header::TRAILER, HeaderValue::from_static("x-file")),
                    )?;
                    Ok(Box::new(TrailedFile(FileBody::new(std::fs::File::open(
                        &file,
                    )?)?)))
                }
                "/fails" => {
                    start.send_trailers(fields(&[("x-sum", "5")]))?;
                    Err("failed after giving trailers".into())
                }
                "/no-content" => {
                    start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
                    start.send_trailers(fields(&[("x-sum", "0")]))?;
                    Ok(Box::new(Bytes::new()))
                }
                _ => Err("no such route".into()),
            }
        },
    )
}

fn temp_file(label: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let path = std::env::temp_dir().join(format!(
        "rgi-simple-features-{label}-{}",
        std::process::id()
    ));
    let bytes: Vec<u8> = (0..len).map(|i| b"0123456789abcdef"[i % 16]).collect();
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n{extra}\r\n").into_bytes()
}

#[test]
fn response_trailers_go_out_after_the_last_chunk_with_te_trailers() {
    let (path, _) = temp_file("report", 16);
    let server = serve_sync(trailer_writer(path.clone()));
    let addr = server.tcp_addr().unwrap();

    let bytes = exchange(addr, &get("/report", "te: trailers\r\n"));
    let (head, rest) = split_head(&bytes);
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\ntrailer: x-rows\r\n"), "{head}");
    assert!(
        head.contains("\r\nx-trailers-deliverable: yes\r\n"),
        "{head}"
    );
    assert!(!head.contains("content-length"), "{head}");
    assert_eq!(
        text(rest),
        "4\r\na,1\n\r\n4\r\nb,2\n\r\n0\r\nx-rows: 2\r\n\r\n"
    );

    // TE is a list; `trailers` is found among other members.
    let bytes = exchange(addr, &get("/report", "TE: deflate;q=0.5, Trailers\r\n"));
    assert!(split_head(&bytes).1.ends_with(b"0\r\nx-rows: 2\r\n\r\n"));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn without_te_trailers_on_http_1_0_and_for_head_the_trailers_are_dropped() {
    let (path, _) = temp_file("dropped", 16);
    let server = serve_sync(trailer_writer(path.clone()));
    let addr = server.tcp_addr().unwrap();

    // No TE: still chunked (announced), the same body, no trailer fields.
    let bytes = exchange(addr, &get("/report", ""));
    let (head, rest) = split_head(&bytes);
    assert!(
        head.contains("\r\nx-trailers-deliverable: no\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nx-hints-deliverable: yes\r\n"), "{head}");
    assert_eq!(text(rest), "4\r\na,1\n\r\n4\r\nb,2\n\r\n0\r\n\r\n");

    // HTTP/1.0: delimited by the close, no trailers even with TE.
    let bytes = exchange(addr, b"GET /report HTTP/1.0\r\nte: trailers\r\n\r\n");
    let (head, rest) = split_head(&bytes);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(
        head.contains("\r\nx-trailers-deliverable: no\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nx-hints-deliverable: no\r\n"), "{head}");
    assert_eq!(text(rest), "a,1\nb,2\n");

    // HEAD: the head alone, and the connection stays usable.
    let mut stream = connect(addr);
    stream
        .write_all(b"HEAD /report HTTP/1.1\r\nhost: a\r\nte: trailers\r\n\r\nGET /report HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .unwrap();
    let (bytes, closed) = read_to_close(&mut stream);
    assert!(closed);
    let got = responses(&bytes, &[true, false]);
    assert_eq!(got.len(), 2, "{}", text(&bytes));
    assert_eq!(got[0].header("x-trailers-deliverable"), Some("no"));
    assert!(got[0].trailers.is_empty());
    assert_eq!(got[1].body, b"a,1\nb,2\n");
    assert!(got[1].trailers.is_empty());

    // 204: no body, no trailers, and the next response follows cleanly.
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /no-content HTTP/1.1\r\nhost: a\r\nte: trailers\r\n\r\nGET /report HTTP/1.1\r\nhost: a\r\nte: trailers\r\nconnection: close\r\n\r\n")
        .unwrap();
    let (bytes, _) = read_to_close(&mut stream);
    let got = responses(&bytes, &[]);
    assert_eq!(got[0].status, 204);
    assert_eq!(got[1].trailers, [("x-rows".to_owned(), "2".to_owned())]);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_head_announcing_trailers_is_chunked_although_its_length_is_known() {
    let (path, _) = temp_file("announced", 16);
    let server = serve_sync(trailer_writer(path.clone()));
    let addr = server.tcp_addr().unwrap();

    let bytes = exchange(addr, &get("/announced", "te: trailers\r\n"));
    let (head, rest) = split_head(&bytes);
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
    assert!(!head.contains("content-length"), "{head}");
    assert_eq!(text(rest), "5\r\nhello\r\n0\r\nx-sum: 5\r\n\r\n");

    // Without TE: chunked all the same, the trailers dropped.
    let bytes = exchange(addr, &get("/announced", ""));
    let (head, rest) = split_head(&bytes);
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
    assert_eq!(text(rest), "5\r\nhello\r\n0\r\n\r\n");

    // Not announced: framed by the size hint, and the trailers are lost.
    let bytes = exchange(addr, &get("/unannounced", "te: trailers\r\n"));
    let (head, rest) = split_head(&bytes);
    assert!(head.contains("\r\ncontent-length: 5\r\n"), "{head}");
    assert_eq!(text(rest), "hello");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_file_body_announcing_trailers_goes_out_chunked_with_them() {
    let (path, bytes) = temp_file("file", 100_000);
    let server = serve_sync(trailer_writer(path.clone()));
    let raw = exchange(
        server.tcp_addr().unwrap(),
        &get("/file", "te: trailers\r\n"),
    );
    let (head, rest) = split_head(&raw);
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
    assert!(!head.contains("content-length"), "{head}");
    // One chunk of the whole file (sendfile fills it), then the trailers.
    let mut expected = b"186a0\r\n".to_vec();
    expected.extend_from_slice(&bytes);
    expected.extend_from_slice(b"\r\n0\r\nx-file: done\r\n\r\n");
    assert!(
        rest == expected,
        "the chunked file with its trailers differs"
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn an_error_response_in_place_of_the_application_s_carries_no_trailers() {
    let (path, _) = temp_file("fails", 16);
    let server = serve_sync(trailer_writer(path.clone()));
    let raw = exchange(
        server.tcp_addr().unwrap(),
        &get("/fails", "te: trailers\r\n"),
    );
    let got = responses(&raw, &[]);
    assert_eq!(got[0].status, 500);
    assert!(got[0].trailers.is_empty(), "{}", text(&raw));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn an_async_body_sends_its_trailers_from_its_last_poll() {
    let server = serve_async(rgi_async::from_fn(|_environ: Environ, start| {
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(header::TRAILER, HeaderValue::from_static("grpc-status")),
        )?;
        let mut parts = VecDeque::from(["one ", "two"]);
        Ok(PollBody(
            move |_cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
                if let Some(part) = parts.pop_front() {
                    return Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(part.as_bytes())))));
                }
                match start.send_trailers(fields(&[("grpc-status", "0")])) {
                    Ok(()) => Poll::Ready(None),
                    Err(error) => Poll::Ready(Some(Err(error.into()))),
                }
            },
        ))
    }));
    let addr = server.tcp_addr().unwrap();
    let bytes = exchange(addr, &get("/", "te: trailers\r\n"));
    let (head, rest) = split_head(&bytes);
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
    assert_eq!(
        text(rest),
        "4\r\none \r\n3\r\ntwo\r\n0\r\ngrpc-status: 0\r\n\r\n"
    );

    let bytes = exchange(addr, &get("/", ""));
    assert_eq!(
        text(split_head(&bytes).1),
        "4\r\none \r\n3\r\ntwo\r\n0\r\n\r\n"
    );
    let bytes = exchange(addr, b"GET / HTTP/1.0\r\nte: trailers\r\n\r\n");
    assert_eq!(text(split_head(&bytes).1), "one two");
}

// ---------------------------------------------------------------------------
// 103 Early Hints
// ---------------------------------------------------------------------------

const HINTS: &str = "HTTP/1.1 103 Early Hints\r\n\
    link: </app.css>; rel=preload; as=style\r\n\
    link: </app.js>; rel=preload; as=script\r\n\r\n";

fn links() -> HeaderMap {
    let mut hints = HeaderMap::new();
    hints.append(
        header::LINK,
        HeaderValue::from_static("</app.css>; rel=preload; as=style"),
    );
    hints.append(
        header::LINK,
        HeaderValue::from_static("</app.js>; rel=preload; as=script"),
    );
    hints
}

/// Sends early hints, then waits for the client to say it has read them
/// before it produces the final response: a 103 held back for the final
/// head would never arrive, and the wait would time out.
fn hinting_app(seen: Arc<Mutex<mpsc::Receiver<()>>>) -> impl rgi::Application {
    rgi::from_fn(move |environ: Environ, start| {
        match environ.raw_path() {
            "/lazy" => {
                // A stored head is not sent by a hint.
                start.start(ResponseHead::new(StatusCode::ACCEPTED))?;
                start.send_early_hints(links())?;
            }
            "/fails" => {
                start.send_early_hints(links())?;
                return Err("the page failed after its hints".into());
            }
            _ => {
                let deliverable = start.early_hints_deliverable();
                start.send_early_hints(links())?;
                let waited = if deliverable {
                    seen.lock().unwrap().recv_timeout(PATIENCE).is_ok()
                } else {
                    true
                };
                let status = if waited {
                    StatusCode::OK
                } else {
                    StatusCode::GATEWAY_TIMEOUT
                };
                start.start(ResponseHead::new(status))?;
            }
        }
        Ok(Bytes::from_static(b"page"))
    })
}

#[test]
fn early_hints_go_out_at_once_before_the_final_head_sync() {
    let (read_hints, seen) = mpsc::channel();
    let server = serve_sync(hinting_app(Arc::new(Mutex::new(seen))));
    let addr = server.tcp_addr().unwrap();

    let mut stream = connect(addr);
    stream.write_all(&get("/", "")).unwrap();
    let mut raw = Vec::new();
    let end = read_until(&mut stream, &mut raw, 0, b"\r\n\r\n");
    assert_eq!(text(&raw[..end]), HINTS);
    read_hints.send(()).unwrap();
    let (rest, closed) = read_to_close(&mut stream);
    assert!(closed);
    raw.extend_from_slice(&rest);
    let got = responses(&raw, &[]);
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [103, 200]);
    assert_eq!(got[1].body, b"page");
    assert_eq!(got[1].header("content-length"), Some("4"));

    // The lazy head is unchanged by the hint; an error after it replaces
    // the head as before.
    let got = responses(&exchange(addr, &get("/lazy", "")), &[]);
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [103, 202]);
    let raw = exchange(addr, &get("/fails", ""));
    assert!(text(&raw).starts_with(HINTS), "{}", text(&raw));
    let got = responses(&raw, &[]);
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [103, 500]);
}

#[test]
fn no_early_hints_reach_an_http_1_0_client() {
    let (_read_hints, seen) = mpsc::channel();
    let server = serve_sync(hinting_app(Arc::new(Mutex::new(seen))));
    let raw = exchange(server.tcp_addr().unwrap(), b"GET / HTTP/1.0\r\n\r\n");
    assert!(
        text(&raw).starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        text(&raw)
    );
    assert!(!text(&raw).contains("103"));
}

/// The asynchronous twin of `hinting_app`: the hints in `call`, the final
/// head only once the client has read them.
fn hinting_async_app(latch: Arc<Latch>) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        start.send_early_hints(links())?;
        if environ.raw_path() == "/fails" {
            return Err("the page failed after its hints".into());
        }
        let latch = Arc::clone(&latch);
        let mut input = (environ.raw_path() == "/echo").then(|| environ.into_input());
        let mut echoed = Vec::new();
        let mut done = false;
        Ok(PollBody(
            move |cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
                if done {
                    return Poll::Ready(None);
                }
                if let Some(input) = input.as_mut() {
                    // Reading the body sends the `100 Continue` the client waits
                    // for: after the 103, never inside it.
                    loop {
                        match input.poll_chunk(cx, 1024) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                            Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                            Poll::Ready(Ok(chunk)) => echoed.extend_from_slice(&chunk),
                        }
                    }
                } else if latch.poll_open(cx).is_pending() {
                    return Poll::Pending;
                }
                done = true;
                if let Err(error) = start.start(ResponseHead::new(StatusCode::OK)) {
                    return Poll::Ready(Some(Err(error.into())));
                }
                let page = if echoed.is_empty() {
                    Bytes::from_static(b"page")
                } else {
                    Bytes::from(std::mem::take(&mut echoed))
                };
                Poll::Ready(Some(Ok(Step::Chunk(page))))
            },
        ))
    })
}

#[test]
fn early_hints_go_out_at_once_before_the_final_head_async() {
    let latch = Arc::new(Latch::default());
    let server = serve_async(hinting_async_app(Arc::clone(&latch)));
    let addr = server.tcp_addr().unwrap();

    let mut stream = connect(addr);
    stream.write_all(&get("/", "")).unwrap();
    let mut raw = Vec::new();
    let end = read_until(&mut stream, &mut raw, 0, b"\r\n\r\n");
    assert_eq!(text(&raw[..end]), HINTS);
    latch.open();
    let (rest, closed) = read_to_close(&mut stream);
    assert!(closed);
    raw.extend_from_slice(&rest);
    let got = responses(&raw, &[]);
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [103, 200]);
    assert_eq!(got[1].body, b"page");

    let got = responses(&exchange(addr, &get("/fails", "")), &[]);
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [103, 500]);
    let raw = exchange(addr, b"GET /fails HTTP/1.0\r\n\r\n");
    assert!(text(&raw).starts_with("HTTP/1.1 500 "), "{}", text(&raw));
}

#[test]
fn early_hints_and_100_continue_go_out_whole_and_in_order_async() {
    let server = serve_async(hinting_async_app(Arc::new(Latch::default())));
    let mut stream = connect(server.tcp_addr().unwrap());
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: a\r\nconnection: close\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let end = read_until(&mut stream, &mut raw, 0, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(
        text(&raw[..end]),
        format!("{HINTS}HTTP/1.1 100 Continue\r\n\r\n")
    );
    stream.write_all(b"hello").unwrap();
    let (rest, _) = read_to_close(&mut stream);
    raw.extend_from_slice(&rest);
    let got = responses(&raw, &[]);
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [103, 100, 200]
    );
    assert_eq!(got[2].body, b"hello");
}

// ---------------------------------------------------------------------------
// Lifespan
// ---------------------------------------------------------------------------

/// State the start-up shares with every request.
#[derive(Clone, Debug)]
struct Pool(&'static str);

type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, entry: impl Into<String>) {
    log.lock().unwrap().push(entry.into());
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Waits, bounded, until `done` holds.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

/// In the start-up: a client connects and sends a request while the
/// start-up still runs; it must not be served before the start-up ends.
fn early_client(startup: &Startup<'_>, log: &Log) -> std::thread::JoinHandle<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], startup.server_info().port()));
    let theirs = Arc::clone(log);
    let handle = std::thread::spawn(move || {
        let mut stream = connect(addr);
        stream.write_all(&get("/early", "")).unwrap();
        note(&theirs, "client sent");
        read_to_close(&mut stream).0
    });
    assert!(eventually(|| entries(log)
        .iter()
        .any(|e| e == "client sent")));
    // Time for a server that accepted early to call the application.
    std::thread::sleep(Duration::from_millis(200));
    handle
}

/// A body that takes a while, and notes when it is dropped.
struct Slow(Log, bool);

impl Body for Slow {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if self.1 {
            return None;
        }
        self.1 = true;
        std::thread::sleep(Duration::from_millis(300));
        Some(Ok(Bytes::from_static(b"slow done")))
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        note(&self.0, "body dropped");
    }
}

fn lifespan_app(
    log: Log,
    early: Arc<Mutex<Option<std::thread::JoinHandle<Vec<u8>>>>>,
) -> impl rgi::Application {
    let (starting, stopping) = (Arc::clone(&log), Arc::clone(&log));
    rgi::with_lifespan(
        rgi::from_fn(
            move |environ: Environ, start| -> Result<Box<dyn Body>, BoxError> {
                let pool = environ.server_extension::<Pool>().ok_or("no pool")?;
                note(
                    &log,
                    format!("request {} with {}", environ.raw_path(), pool.0),
                );
                start.start(ResponseHead::new(StatusCode::OK))?;
                Ok(match environ.raw_path() {
                    "/slow" => Box::new(Slow(Arc::clone(&log), false)),
                    _ => Box::new(Bytes::from_static(b"fast")),
                })
            },
        ),
        move |startup| {
            note(&starting, "startup begins");
            *early.lock().unwrap() = Some(early_client(startup, &starting));
            startup.insert_state(Pool("the pool"));
            note(&starting, "startup ends");
            Ok(())
        },
        move || note(&stopping, "shutdown"),
    )
}

/// The order of events around a slow request in flight at shutdown.
fn check_lifespan(
    log: &Log,
    early: &Arc<Mutex<Option<std::thread::JoinHandle<Vec<u8>>>>>,
    server: Server,
) {
    let addr = server.tcp_addr().unwrap();
    let served_early = early.lock().unwrap().take().unwrap().join().unwrap();
    assert_eq!(responses(&served_early, &[])[0].body, b"fast");

    let slow = std::thread::spawn(move || exchange(addr, &get("/slow", "")));
    assert!(eventually(|| entries(log)
        .iter()
        .any(|e| e.starts_with("request /slow"))));
    server.shutdown(Duration::from_secs(10));
    let answer = slow.join().unwrap();
    assert_eq!(responses(&answer, &[])[0].body, b"slow done");
    assert_eq!(
        entries(log),
        [
            "startup begins",
            "client sent",
            "startup ends",
            "request /early with the pool",
            "request /slow with the pool",
            "body dropped",
            "shutdown",
        ]
    );
}

#[test]
fn startup_runs_before_the_first_accept_and_shutdown_after_the_last_response_sync() {
    let log = Log::default();
    let early = Arc::new(Mutex::new(None));
    let server = serve_sync(lifespan_app(Arc::clone(&log), Arc::clone(&early)));
    check_lifespan(&log, &early, server);
}

/// The asynchronous lifespan application: its own startup and shutdown.
struct AsyncLife {
    log: Log,
    early: Arc<Mutex<Option<std::thread::JoinHandle<Vec<u8>>>>>,
}

impl AsyncApplication for AsyncLife {
    type Body = Pin<Box<dyn AsyncBody>>;

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        note(&self.log, "startup begins");
        *self.early.lock().unwrap() = Some(early_client(startup, &self.log));
        startup.insert_state(Pool("the pool"));
        note(&self.log, "startup ends");
        Ok(())
    }

    fn shutdown(&self) {
        note(&self.log, "shutdown");
    }

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let pool = environ.server_extension::<Pool>().ok_or("no pool")?;
        note(
            &self.log,
            format!("request {} with {}", environ.raw_path(), pool.0),
        );
        start.start(ResponseHead::new(StatusCode::OK))?;
        if environ.raw_path() != "/slow" {
            return Ok(Box::pin(Bytes::from_static(b"fast")));
        }
        // Ready after 300 ms, woken by a thread; notes its drop.
        let guard = Slow(Arc::clone(&self.log), true);
        let latch = Arc::new(Latch::default());
        let mut timer = Some(Arc::clone(&latch));
        let mut sent = false;
        Ok(Box::pin(PollBody(
            move |cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                let _keep = &guard;
                if let Some(latch) = timer.take() {
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(300));
                        latch.open();
                    });
                }
                if sent {
                    return Poll::Ready(None);
                }
                if latch.poll_open(cx).is_pending() {
                    return Poll::Pending;
                }
                sent = true;
                Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"slow done")))))
            },
        )))
    }
}

#[test]
fn startup_runs_before_the_first_accept_and_shutdown_after_the_last_response_async() {
    let log = Log::default();
    let early = Arc::new(Mutex::new(None));
    let server = serve_async(AsyncLife {
        log: Arc::clone(&log),
        early: Arc::clone(&early),
    });
    check_lifespan(&log, &early, server);
}

/// An application whose start-up fails as `fail` says, recording the port
/// it was to serve on and whether anything else of it ran.
fn failing(
    fail: fn() -> Result<(), BoxError>,
    port: Arc<AtomicUsize>,
    ran: &Log,
) -> impl rgi::Application {
    let (called, stopped) = (Arc::clone(ran), Arc::clone(ran));
    rgi::with_lifespan(
        rgi::from_fn(move |_environ, start| {
            note(&called, "request");
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(Bytes::new())
        }),
        move |startup| {
            port.store(usize::from(startup.server_info().port()), Ordering::SeqCst);
            fail()
        },
        move || note(&stopped, "shutdown"),
    )
}

fn check_refused(result: Result<Server, Error>, port: &AtomicUsize, ran: &Log) -> StartupError {
    let error = match result {
        Err(Error::Startup(error)) => error,
        other => panic!("the server started, or failed otherwise: {other:?}"),
    };
    let port = u16::try_from(port.load(Ordering::SeqCst)).unwrap();
    assert_ne!(port, 0);
    assert!(
        TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err(),
        "the port still accepts connections"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(entries(ran).is_empty(), "{:?}", entries(ran));
    error
}

#[test]
fn a_failing_or_panicking_startup_stops_the_server_with_a_typed_error() {
    let (port, ran) = (Arc::new(AtomicUsize::new(0)), Log::default());
    let result = builder().serve_sync(failing(
        || Err("no database".into()),
        Arc::clone(&port),
        &ran,
    ));
    let error = check_refused(result, &port, &ran);
    assert!(matches!(&error, StartupError::Failed(inner) if inner.to_string() == "no database"));
    assert_eq!(
        Error::Startup(error).to_string(),
        "the application's start-up failed: no database"
    );

    let (port, ran) = (Arc::new(AtomicUsize::new(0)), Log::default());
    let result = builder().serve_sync(failing(
        || panic!("config missing"),
        Arc::clone(&port),
        &ran,
    ));
    let error = check_refused(result, &port, &ran);
    assert!(matches!(&error, StartupError::Panicked(text) if text == "config missing"));

    // The same through serve_async (`Threaded` forwards the hooks).
    let (port, ran) = (Arc::new(AtomicUsize::new(0)), Log::default());
    let app = rgi_async::Threaded::new(failing(|| Err("no cache".into()), Arc::clone(&port), &ran));
    let error = check_refused(builder().serve_async(app), &port, &ran);
    assert!(matches!(&error, StartupError::Failed(inner) if inner.to_string() == "no cache"));
}

#[test]
fn a_startup_over_the_timeout_stops_the_server() {
    let (port, ran) = (Arc::new(AtomicUsize::new(0)), Log::default());
    let slow = failing(
        || {
            std::thread::sleep(Duration::from_secs(2));
            Ok(())
        },
        Arc::clone(&port),
        &ran,
    );
    let began = Instant::now();
    let result = builder()
        .startup_timeout(Duration::from_millis(100))
        .serve_sync(slow);
    assert!(
        began.elapsed() < Duration::from_millis(1500),
        "{:?}",
        began.elapsed()
    );
    let error = check_refused(result, &port, &ran);
    assert!(matches!(error, StartupError::TimedOut(limit) if limit == Duration::from_millis(100)));
}

#[test]
fn shutdown_runs_once_on_drop_too_and_a_panic_there_is_contained() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = rgi::with_lifespan(
        rgi::from_fn(|_environ, start| {
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(Bytes::new())
        }),
        |_startup| Ok(()),
        move || {
            counted.fetch_add(1, Ordering::SeqCst);
            panic!("cannot flush");
        },
    );
    let server = serve_sync(app);
    let raw = exchange(server.tcp_addr().unwrap(), &get("/", ""));
    assert_eq!(responses(&raw, &[])[0].status, 200);
    drop(server);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------

/// Checks one event stream: the first event arrives before the test
/// produces the second, a keep-alive comes while it waits, and the end of
/// the source ends the response.
fn check_event_stream(addr: SocketAddr, mut send: impl FnMut(Option<Event>)) {
    let mut stream = connect(addr);
    stream.write_all(&get("/events", "")).unwrap();
    let mut seen = Vec::new();
    let head_end = read_until(&mut stream, &mut seen, 0, b"\r\n\r\n");
    let (head, _) = split_head(&seen);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\ncache-control: no-cache\r\n"), "{head}");
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );

    send(Some(Event::new().id("1").unwrap().data("first\nline")));
    let first = read_until(
        &mut stream,
        &mut seen,
        head_end,
        b"id: 1\ndata: first\ndata: line\n\n\r\n",
    );
    // Idle for longer than the keep-alive interval.
    let kept = read_until(&mut stream, &mut seen, first, b"3\r\n:\n\n\r\n");
    send(Some(Event::from_data("second")));
    read_until(&mut stream, &mut seen, kept, b"e\r\ndata: second\n\n\r\n");
    send(None);
    let (rest, closed) = read_to_close(&mut stream);
    assert!(closed);
    assert!(rest.ends_with(b"0\r\n\r\n"), "{}", text(&rest));
}

#[test]
fn each_event_of_a_sync_event_body_is_sent_before_the_next_is_produced() {
    let (give, senders) = mpsc::channel();
    let give = Mutex::new(give);
    let server = serve_sync(rgi::from_fn(move |_environ, start| {
        let (events, receiver) = mpsc::channel();
        give.lock().unwrap().send(events)?;
        start.start(rgi::sse::head())?;
        Ok(rgi::sse::EventBody::new(receiver).keep_alive(Duration::from_millis(150)))
    }));
    let addr = server.tcp_addr().unwrap();
    let mut events: Option<mpsc::Sender<Event>> = None;
    check_event_stream(addr, |event| {
        if events.is_none() {
            events = Some(senders.recv_timeout(PATIENCE).unwrap());
        }
        match event {
            Some(event) => events.as_ref().unwrap().send(event).unwrap(),
            None => events = None,
        }
    });
}

/// An event source the test feeds: `Some` for an event, `None` for the end.
#[derive(Default)]
struct Feed {
    queue: Mutex<VecDeque<Option<Event>>>,
    waker: Mutex<Option<Waker>>,
}

impl Feed {
    fn push(&self, item: Option<Event>) {
        self.queue.lock().unwrap().push_back(item);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }
}

struct FeedStream(Arc<Feed>);

impl Stream for FeedStream {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        match self.0.queue.lock().unwrap().pop_front() {
            Some(item) => Poll::Ready(item),
            None => Poll::Pending,
        }
    }
}

/// Keep-alive ticks from the server's poller: an empty readiness wait is a
/// timer.
struct Ticker {
    readiness: rgi_async::Readiness,
    every: Duration,
    wait: Option<rgi_async::WaitAnyFuture<'static>>,
}

impl Stream for Ticker {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let this = &mut *self;
        let (readiness, every) = (&this.readiness, this.every);
        let wait = this.wait.get_or_insert_with(|| {
            readiness.wait_any(
                std::iter::empty::<(Source<'static>, Interest)>(),
                Some(every),
            )
        });
        match wait.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(_)) => {
                this.wait = None;
                Poll::Ready(Some(()))
            }
            Poll::Ready(Err(_)) => Poll::Ready(None),
        }
    }
}

#[test]
fn each_event_of_an_async_event_stream_is_sent_before_the_next_is_produced() {
    let feeds: Arc<Mutex<Vec<Arc<Feed>>>> = Arc::default();
    let registered = Arc::clone(&feeds);
    let server = serve_async(rgi_async::from_fn(move |environ: Environ, _start| {
        let feed = Arc::new(Feed::default());
        registered.lock().unwrap().push(Arc::clone(&feed));
        let readiness = Capabilities::of(&environ)
            .and_then(Capabilities::readiness)
            .cloned()
            .ok_or("no readiness")?;
        Ok(EventStream::new(FeedStream(feed)).keep_alive(Ticker {
            readiness,
            every: Duration::from_millis(150),
            wait: None,
        }))
    }));
    let addr = server.tcp_addr().unwrap();
    check_event_stream(addr, |event| {
        assert!(eventually(|| !feeds.lock().unwrap().is_empty()));
        let feed = Arc::clone(&feeds.lock().unwrap()[0]);
        feed.push(event);
    });
}
