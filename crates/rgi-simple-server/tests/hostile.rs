//! Hostile and malformed requests: each gets the right status,
//! `connection: close`, and a closed connection, and the request smuggled
//! behind it in the same write is never served.
// A failed unwrap in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::StatusCode;
use rgi::{Environ, ResponseHead, StartResponse};
use rgi_simple_server::Limits;

use common::{connect, exchange, read_to_close, responses, start_with};

const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// Reads the whole body (so body faults surface) and records each path.
fn recording_echo(seen: Arc<Mutex<Vec<String>>>) -> impl rgi::Application {
    rgi::from_fn(move |mut environ: Environ, start: &mut StartResponse<'_>| {
        seen.lock().unwrap().push(environ.raw_path().to_string());
        let body = environ.input_mut().read_to_bytes(1 << 20)?;
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(body)
    })
}

/// A chunked request whose body `ok` is followed by the field lines
/// `trailer` and the empty line that ends the trailer section.
fn chunked_with_trailers(trailer: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n{trailer}\r\n"
    )
    .into_bytes()
}

fn cases() -> Vec<(&'static str, Vec<u8>, u16)> {
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000)).into_bytes();
    let many_fields = {
        let mut r = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..120 {
            r.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r
    };
    let huge_head = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70 * 1024)
    )
    .into_bytes();
    let v = |s: &str| s.as_bytes().to_vec();
    vec![
        ("missing Host on 1.1", v("GET / HTTP/1.1\r\n\r\n"), 400),
        (
            "duplicate Host",
            v("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            400,
        ),
        (
            "Host with a space",
            v("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            400,
        ),
        (
            "Host port too large",
            v("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n"),
            400,
        ),
        ("empty Host", v("GET / HTTP/1.1\r\nHost: \r\n\r\n"), 400),
        (
            "Host with userinfo",
            v("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"),
            400,
        ),
        ("HTTP/2.0", v("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505),
        ("HTTP/3.0", v("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), 505),
        (
            "version with junk",
            v("GET / HTTP/1.1x\r\nHost: a\r\n\r\n"),
            400,
        ),
        (
            "lowercase version",
            v("GET / http/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
        ("double space", v("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
        (
            "trailing space",
            v("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),
            400,
        ),
        ("missing version", v("GET /\r\nHost: a\r\n\r\n"), 400),
        (
            "DEL in target",
            v("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
        (
            "quote in target",
            v("GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
        (
            "fragment in target",
            v("GET /#f HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
        (
            "method not a token",
            v("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
        (
            "space before colon",
            v("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
            400,
        ),
        (
            "obs-fold",
            v("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n"),
            400,
        ),
        (
            "NUL in value",
            v("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"),
            400,
        ),
        (
            "CR in value",
            v("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"),
            400,
        ),
        (
            "bare CR line end",
            v("GET / HTTP/1.1\rHost: a\r\n\r\n"),
            400,
        ),
        (
            "name not a token",
            v("GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n"),
            400,
        ),
        (
            "Content-Length letters",
            v("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n"),
            400,
        ),
        (
            "Content-Length negative",
            v("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            400,
        ),
        (
            "Content-Length plus",
            v("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx"),
            400,
        ),
        (
            "Content-Length list",
            v("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx"),
            400,
        ),
        (
            "Content-Length conflict",
            v("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"),
            400,
        ),
        (
            "Content-Length overflow",
            v("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            400,
        ),
        (
            "Content-Length empty",
            v("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n"),
            400,
        ),
        (
            "TE gzip alone",
            v("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400,
        ),
        (
            "TE chunked not last",
            v("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            400,
        ),
        (
            "TE chunked twice",
            v(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "TE unknown coding",
            v("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
            501,
        ),
        (
            "TE on HTTP/1.0",
            v("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "CL and TE",
            v(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "unknown expectation",
            v("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx"),
            417,
        ),
        ("target too long", long_target, 414),
        ("too many fields", many_fields, 431),
        ("head too large", huge_head, 431),
        (
            "declared body over limit",
            v("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n"),
            413,
        ),
        (
            "chunk size not hex",
            v(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk size overflow",
            v(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nx\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk data without CRLF",
            v(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk size bare LF",
            v(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk extension without name",
            v(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;=x\r\nabc\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "negative chunk size",
            v(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "malformed trailer",
            v(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n",
            ),
            400,
        ),
        (
            "trailer with obs-fold",
            chunked_with_trailers("X: a\r\n b\r\n"),
            400,
        ),
        (
            "trailer with a space before its colon",
            chunked_with_trailers("X : a\r\n"),
            400,
        ),
        (
            "trailer line ending in a bare LF",
            chunked_with_trailers("X: a\nY: b\r\n"),
            400,
        ),
        (
            "trailer with a bare CR",
            chunked_with_trailers("X: a\rb\r\n"),
            400,
        ),
        (
            "trailer with NUL",
            chunked_with_trailers("X: a\0b\r\n"),
            400,
        ),
        (
            "trailer name not a token",
            chunked_with_trailers("X(y): z\r\n"),
            400,
        ),
        (
            "trailer section over the head size limit",
            chunked_with_trailers(&format!("X-Big: {}\r\n", "b".repeat(70 * 1024))),
            431,
        ),
        (
            "more trailer fields than the head leaves",
            chunked_with_trailers(
                &(0..120)
                    .map(|i| format!("X-{i}: v\r\n"))
                    .collect::<String>(),
            ),
            431,
        ),
        (
            "chunked over the limit",
            v("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n"),
            413,
        ),
        (
            "asterisk with GET",
            v("GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
        (
            "CONNECT",
            v("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
            501,
        ),
        (
            "authority-form with GET",
            v("GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
        (
            "absolute-form ftp",
            v("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
        (
            "absolute-form Host mismatch",
            v("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n"),
            400,
        ),
        (
            "bad percent-encoding",
            v("GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
        (
            "whitespace after a chunk size",
            v(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "five empty lines before the request line",
            v("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
    ]
}

/// RFC 9112 §2.2: a server SHOULD ignore at least one empty line before a
/// request line (a client may send a CRLF after a POST body); a few are.
#[test]
fn empty_lines_before_a_request_line_are_skipped() {
    let server = start_with(
        recording_echo(Arc::new(Mutex::new(Vec::new()))),
        Limits::default(),
    );
    let addr = server.tcp_addr().unwrap();
    let (bytes, _) = exchange(
        addr,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n\
          \r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let got = responses(&bytes, &[]);
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200]);
}

/// Bytes that cannot begin a request line are refused as they arrive, not
/// after the head timeout: a TLS handshake sent to the plain-text port gets
/// its 400 at once.
#[test]
fn a_tls_handshake_on_the_plain_port_is_refused_at_once() {
    let limits = Limits::default().with_head_timeout(Duration::from_secs(30));
    let server = start_with(recording_echo(Arc::new(Mutex::new(Vec::new()))), limits);
    let addr = server.tcp_addr().unwrap();
    let started = Instant::now();
    // A ClientHello's first bytes: no line end in sight.
    let (bytes, closed) = exchange(addr, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03");
    let got = responses(&bytes, &[]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, 400);
    assert!(closed);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered after {:?}, as if by the head timeout",
        started.elapsed()
    );
}

#[test]
fn every_malformed_request_is_refused_and_closed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let limits = Limits::default().with_max_body(1024);
    let server = start_with(recording_echo(Arc::clone(&seen)), limits);
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    refuse_all(&server, &seen, cases);
}

/// The trailer-section cases against an asynchronous application, which
/// reads the body through the input's non-blocking face.
#[test]
fn every_malformed_trailer_section_is_refused_and_closed_on_the_async_path() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = rgi_simple_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .async_threads(2)
        .limits(Limits::default().with_max_body(1024))
        .serve_async(async_recording_echo(Arc::clone(&seen)))
        .unwrap();
    let cases: Vec<_> = cases()
        .into_iter()
        .filter(|(name, _, _)| name.contains("trailer"))
        .collect();
    assert_eq!(cases.len(), 9);
    refuse_all(&server, &seen, cases);
}

/// `recording_echo` for `serve_async`: the body is read to its end with
/// `poll_chunk` before the response starts.
fn async_recording_echo(seen: Arc<Mutex<Vec<String>>>) -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
        seen.lock().unwrap().push(environ.raw_path().to_string());
        let mut input = environ.into_input();
        let mut body = Vec::new();
        let mut done = false;
        Ok(PollEcho(Box::new(move |cx, start| {
            if done {
                return Poll::Ready(None);
            }
            loop {
                match input.poll_chunk(cx, 4096) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                    Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                    Poll::Ready(Ok(chunk)) => body.extend_from_slice(&chunk),
                }
            }
            done = true;
            if let Err(error) = start.start(ResponseHead::new(StatusCode::OK)) {
                return Poll::Ready(Some(Err(error.into())));
            }
            Poll::Ready(Some(Ok(rgi_async::Step::Chunk(
                std::mem::take(&mut body).into(),
            ))))
        })))
    })
}

type Echoing = Box<
    dyn FnMut(
            &mut Context<'_>,
            &mut StartResponse<'_>,
        ) -> Poll<Option<Result<rgi_async::Step, rgi::BoxError>>>
        + Send,
>;

/// The echo's body: its steps, from a closure.
struct PollEcho(Echoing);

impl rgi_async::AsyncBody for PollEcho {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<rgi_async::Step, rgi::BoxError>>> {
        (self.get_mut().0)(cx, start)
    }
}

/// Sends each case with `SMUGGLED` behind it: one answer with the case's
/// status and `connection: close`, a closed connection, and the smuggled
/// request never served; the server still serves afterwards.
fn refuse_all(
    server: &rgi_simple_server::Server,
    seen: &Arc<Mutex<Vec<String>>>,
    cases: Vec<(&'static str, Vec<u8>, u16)>,
) {
    let addr = server.tcp_addr().unwrap();
    let mut failures = Vec::new();
    for (name, mut request, status) in cases {
        request.extend_from_slice(SMUGGLED);
        let (bytes, closed) = exchange(addr, &request);
        let got = std::panic::catch_unwind(|| responses(&bytes, &[]));
        let Ok(got) = got else {
            failures.push(format!(
                "{name}: unparsable answer {:?}",
                String::from_utf8_lossy(&bytes)
            ));
            continue;
        };
        if got.len() != 1
            || got[0].status != status
            || got[0].header("connection") != Some("close")
            || !closed
        {
            failures.push(format!(
                "{name}: expected one {status} with close, got {:?} (closed: {closed})",
                got.iter()
                    .map(|r| (r.status, r.header("connection").map(str::to_string)))
                    .collect::<Vec<_>>()
            ));
        }
    }
    let served = seen.lock().unwrap().clone();
    assert!(
        !served.iter().any(|p| p == "/smuggled"),
        "a smuggled request was served: {served:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Still serving after all that.
    let (bytes, _) = exchange(
        addr,
        b"GET /fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(responses(&bytes, &[])[0].status, 200);
}

#[test]
fn a_partial_head_times_out_with_408_and_an_idle_connection_closes_silently() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let limits = Limits::default()
        .with_head_timeout(Duration::from_millis(300))
        .with_idle_timeout(Duration::from_millis(300));
    let server = start_with(recording_echo(seen), limits);
    let addr = server.tcp_addr().unwrap();

    let mut partial = connect(addr);
    partial.write_all(b"GET / HTTP/1.1\r\nHost").unwrap();
    let started = Instant::now();
    let (bytes, closed) = read_to_close(&mut partial);
    assert!(closed);
    let got = responses(&bytes, &[]);
    assert_eq!(got[0].status, 408);
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut silent = connect(addr);
    let (bytes, closed) = read_to_close(&mut silent);
    assert!(closed && bytes.is_empty());

    // A kept connection goes idle after its response and closes silently.
    let mut kept = connect(addr);
    kept.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (bytes, closed) = read_to_close(&mut kept);
    assert!(closed);
    assert_eq!(responses(&bytes, &[]).len(), 1);
}

#[test]
fn a_stalled_body_is_408() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let limits = Limits::default().with_body_timeout(Duration::from_millis(300));
    let server = start_with(recording_echo(seen), limits);
    let addr = server.tcp_addr().unwrap();
    let mut stream = connect(addr);
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let (bytes, closed) = read_to_close(&mut stream);
    assert!(closed);
    let got = responses(&bytes, &[]);
    assert_eq!(got[0].status, 408);
    assert_eq!(got[0].header("connection"), Some("close"));
}

#[test]
fn a_truncated_body_is_400() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = start_with(recording_echo(seen), Limits::default());
    let addr = server.tcp_addr().unwrap();
    let mut stream = connect(addr);
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (bytes, closed) = read_to_close(&mut stream);
    assert!(closed);
    assert_eq!(responses(&bytes, &[])[0].status, 400);
}

#[test]
fn a_truncated_declared_length_is_400() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = start_with(recording_echo(seen), Limits::default());
    let addr = server.tcp_addr().unwrap();
    let mut stream = connect(addr);
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (bytes, closed) = read_to_close(&mut stream);
    assert!(closed);
    let got = responses(&bytes, &[]);
    assert_eq!(got[0].status, 400);
    assert_eq!(got[0].header("connection"), Some("close"));
}

/// Framing fields in a trailer section are discarded (RFC 9110 §6.5.1):
/// they neither reach the application nor change where the next request
/// begins.
#[test]
fn framing_fields_in_a_trailer_section_change_nothing() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = start_with(recording_echo(Arc::clone(&seen)), Limits::default());
    let addr = server.tcp_addr().unwrap();
    let mut request = chunked_with_trailers(
        "Content-Length: 40\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
    );
    request.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let (bytes, closed) = exchange(addr, &request);
    assert!(closed);
    let got = responses(&bytes, &[]);
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200]);
    assert_eq!(got[0].body, b"ok");
    assert_eq!(
        got[0].header("connection"),
        None,
        "the trailer's close was not acted on"
    );
    assert_eq!(*seen.lock().unwrap(), ["/", "/next"]);
}
