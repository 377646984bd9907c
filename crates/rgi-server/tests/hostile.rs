//! Malformed and hostile requests over a real socket on 127.0.0.1: every
//! case checks the status, that the connection is closed afterwards (on
//! HTTP/1.1) or that only the stream ended (on HTTP/2), and that nothing
//! smuggled behind a refused request ever reaches the application.
//!
//! The server under test is hyper's HTTP/1.1 + h2c connection (hyper-util's
//! auto builder) with the limits spec/rgi.md §12.2 recommends and
//! `rgi_server::strict` judging every head before the application sees it,
//! which is where rgi-server calls it; the application records each request
//! that reaches it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rgi_server::strict::{RequestRules, check_request, present_host};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long any one exchange may take before the test calls it a hang.
const EXCHANGE: Duration = Duration::from_secs(5);
/// The head-read time of the server under test, short so the slow-head
/// case ends quickly.
const HEAD_TIME: Duration = Duration::from_millis(1500);
/// The recommended body limit of spec/rgi.md §12.2.
const BODY_LIMIT: u64 = 64 * 1024 * 1024;

/// The requests the application was called for: method and target.
type Seen = Arc<Mutex<Vec<String>>>;

struct Server {
    address: SocketAddr,
    seen: Seen,
}

impl Server {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn smuggled(&self) -> bool {
        self.seen().iter().any(|target| target.contains("smuggled"))
    }
}

async fn application(request: Request<Incoming>, seen: Seen) -> Response<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    if let Err(rejection) = check_request(&parts, &RequestRules::new()) {
        return rejection.response(Full::new(Bytes::new()));
    }
    present_host(&mut parts);
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let close = |status: StatusCode| {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONNECTION, "close".parse().unwrap());
        response
    };
    if declared.is_some_and(|length| length > BODY_LIMIT) {
        return close(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let target = format!("{} {}", parts.method, parts.uri);
    seen.lock().unwrap().push(target.clone());
    match Limited::new(body, usize::try_from(BODY_LIMIT).unwrap())
        .collect()
        .await
    {
        Ok(collected) => {
            let body = collected.to_bytes();
            Response::new(Full::new(Bytes::from(format!(
                "served {target} with {} body bytes",
                body.len()
            ))))
        }
        // A body whose framing broke part-way: the rest of the connection
        // cannot be trusted (RGI-PROTO-10).
        Err(_) => close(StatusCode::BAD_REQUEST),
    }
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let app_seen = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let seen = app_seen.clone();
            tokio::spawn(async move {
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIME)
                    .max_headers(100)
                    .max_buf_size(8 * 1024 + 64 * 1024);
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(100)
                    .max_header_list_size(64 * 1024);
                let service = hyper::service::service_fn(move |request| {
                    let seen = seen.clone();
                    async move { Ok::<_, Infallible>(application(request, seen).await) }
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { address, seen }
}

/// What came back on an HTTP/1.1 connection: everything the server sent,
/// and whether it closed the connection within [`EXCHANGE`].
struct Reply {
    bytes: Vec<u8>,
    closed: bool,
}

impl Reply {
    fn statuses(&self) -> Vec<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.match_indices("HTTP/1.1 ")
            .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Sends `bytes` on a new connection and reads until the server closes it
/// or [`EXCHANGE`] passes.
async fn exchange(server: &Server, bytes: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    // A reset from the server (it closed with unread bytes) still counts
    // as written: what matters is what it answered.
    let _ = stream.write_all(bytes).await;
    read_to_close(&mut stream, EXCHANGE).await
}

async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Reply {
    let deadline = Instant::now() + within;
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Reply {
                    bytes: received,
                    closed: true,
                };
            }
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Err(_) => {
                return Reply {
                    bytes: received,
                    closed: false,
                };
            }
        }
    }
}

/// One HTTP/1.1 case: the bytes, the statuses expected in order (each
/// position may allow several), and whether the application may see the
/// request.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    statuses: Vec<&'static [u16]>,
}

fn case(name: &'static str, bytes: impl Into<Vec<u8>>, statuses: &[&'static [u16]]) -> Case {
    Case {
        name,
        bytes: bytes.into(),
        statuses: statuses.to_vec(),
    }
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

fn with_smuggled(head: &str) -> Vec<u8> {
    format!("{head}{SMUGGLED}").into_bytes()
}

fn http1_cases() -> Vec<Case> {
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n{SMUGGLED}",
        "a".repeat(8 * 1024 + 1)
    );
    let huge_head = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n{SMUGGLED}",
        "b".repeat(100 * 1024)
    );
    // Inside hyper's read buffer, outside the 64 KiB header limit.
    let large_head = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n{SMUGGLED}",
        "b".repeat(65 * 1024)
    );
    let many_fields = {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for index in 0..101 {
            head.push_str(&format!("X-{index}: 1\r\n"));
        }
        head.push_str("\r\n");
        with_smuggled(&head)
    };
    vec![
        // Request smuggling through framing.
        case(
            "CL.TE: Content-Length before Transfer-Encoding (framed by TE, then closed)",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            &[&[200, 400]],
        ),
        case(
            "TE.CL: Transfer-Encoding before Content-Length (framed by TE, then closed)",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n",
            ),
            &[&[200, 400]],
        ),
        case(
            "two differing Content-Length lines",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 37\r\n\r\n",
            ),
            &[&[400]],
        ),
        case(
            "Content-Length list with differing members",
            with_smuggled("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 37\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "Content-Length with a plus sign",
            with_smuggled("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +0\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "negative Content-Length",
            with_smuggled("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "Content-Length beyond 64 bits",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
            ),
            &[&[400]],
        ),
        case(
            "hexadecimal Content-Length",
            with_smuggled("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x0\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "Content-Length above the body limit",
            with_smuggled("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 67108865\r\n\r\n"),
            &[&[413]],
        ),
        case(
            "Transfer-Encoding chunked then identity",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
            ),
            &[&[400]],
        ),
        case(
            "Transfer-Encoding chunked twice",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            ),
            &[&[400]],
        ),
        case(
            "Transfer-Encoding gzip alone",
            with_smuggled("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            &[&[400, 501]],
        ),
        case(
            "Transfer-Encoding gzip before chunked (not implemented)",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            ),
            &[&[501]],
        ),
        case(
            "Transfer-Encoding xchunked",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            ),
            &[&[400]],
        ),
        case(
            "Transfer-Encoding with whitespace before the colon",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            ),
            &[&[400]],
        ),
        case(
            "Transfer-Encoding in HTTP/1.0",
            with_smuggled("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "chunk size that is not hexadecimal",
            with_smuggled("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            &[&[400]],
        ),
        case(
            "chunk size overflowing 64 bits",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",
            ),
            &[&[400]],
        ),
        case(
            "chunk data longer than its size",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
            ),
            &[&[400]],
        ),
        case(
            "bare LF inside chunked framing",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n0\r\n\r\n",
            ),
            &[&[400]],
        ),
        // Field syntax.
        case(
            "bare CR in a field value",
            with_smuggled("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "bare CR as a line ending",
            with_smuggled("GET / HTTP/1.1\rHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "obs-fold continuation line",
            with_smuggled("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "NUL in a field value",
            with_smuggled("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "DEL in a field value",
            with_smuggled("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x7f2\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "field name that is not a token",
            with_smuggled("GET / HTTP/1.1\r\nHost: a\r\nX(A): 1\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "whitespace before the colon",
            with_smuggled("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "first field line starting with whitespace",
            with_smuggled("GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
            &[&[400]],
        ),
        case("101 field lines", many_fields, &[&[431]]),
        case("a 100 KiB header section", huge_head, &[&[431]]),
        case("a 65 KiB header section", large_head, &[&[431]]),
        // Request line.
        case("target over 8 KiB", long_target, &[&[414]]),
        case(
            "method that is not a token",
            with_smuggled("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "two spaces after the method",
            with_smuggled("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "space after the version",
            with_smuggled("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "lowercase version",
            with_smuggled("GET / http/1.1\r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "HTTP/1.2",
            with_smuggled("GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
            &[&[400, 505]],
        ),
        case(
            "HTTP/2.0 in a request line",
            with_smuggled("GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            &[&[400, 505]],
        ),
        case(
            "HTTP/0.9 simple request",
            with_smuggled("GET /\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "a TLS ClientHello on the plain-text port",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            &[&[400]],
        ),
        case(
            "double quote in the target",
            with_smuggled("GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "invalid percent-encoding in the target",
            with_smuggled("GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "raw UTF-8 in the target",
            with_smuggled("GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "NUL in the target",
            with_smuggled("GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        // Host and target forms.
        case(
            "HTTP/1.1 without Host",
            with_smuggled("GET / HTTP/1.1\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "two Host fields",
            with_smuggled("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "Host with userinfo",
            with_smuggled("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "Host with a port above 65535",
            with_smuggled("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "Host with a space",
            with_smuggled("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "absolute-form target disagreeing with Host",
            with_smuggled("GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "absolute-form target with another scheme",
            with_smuggled("GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "CONNECT in authority-form",
            with_smuggled("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
            &[&[501]],
        ),
        case(
            "CONNECT in origin-form",
            with_smuggled("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "authority-form with GET",
            with_smuggled("GET a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "asterisk-form with GET",
            with_smuggled("GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[&[400]],
        ),
        case(
            "unknown expectation",
            with_smuggled(
                "POST / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nContent-Length: 0\r\n\r\n",
            ),
            &[&[417]],
        ),
        case(
            "garbage pipelined after a good request",
            "GET /first HTTP/1.1\r\nHost: a\r\n\r\nXYZ\x01\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            &[&[200], &[400]],
        ),
        case(
            "a good request, a refused one, and one behind it",
            format!(
                "GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n{SMUGGLED}"
            ),
            &[&[200], &[400]],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http1_requests_are_refused_and_the_connection_closed() {
    let server = start().await;
    let cases = http1_cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let reply = tokio::time::timeout(EXCHANGE * 2, exchange(&server, &case.bytes))
            .await
            .unwrap_or(Reply {
                bytes: Vec::new(),
                closed: false,
            });
        let statuses = reply.statuses();
        let matches = statuses.len() == case.statuses.len()
            && statuses
                .iter()
                .zip(&case.statuses)
                .all(|(status, allowed)| allowed.contains(status));
        if !matches || !reply.closed {
            failures.push(format!(
                "{}: statuses {statuses:?} (expected {:?}), closed {}; reply {:?}",
                case.name,
                case.statuses,
                reply.closed,
                reply.text().chars().take(300).collect::<String>()
            ));
        }
        if server.smuggled() && !failures.iter().any(|f: &String| f.contains("smuggled")) {
            failures.push(format!(
                "{}: a smuggled request reached the application: {:?}",
                case.name,
                server.seen()
            ));
        }
        // Every refusal says it closes.
        if statuses.iter().any(|&status| status >= 400)
            && !reply.text().contains("connection: close")
        {
            failures.push(format!(
                "{}: a refusal without connection: close",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!server.smuggled(), "{:?}", server.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_edge_cases_keep_the_connection() {
    let server = start().await;
    // What spec/rgi.md §12.3 accepts on purpose: a bare LF line ending,
    // obs-text in a value, agreeing Content-Length lines, OPTIONS *.
    for (name, bytes) in [
        (
            "bare LF line endings",
            &b"GET /lf HTTP/1.1\nHost: a\n\n"[..],
        ),
        (
            "obs-text in a value",
            b"GET /latin HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9\r\n\r\n",
        ),
        (
            "agreeing Content-Length lines",
            b"POST /same HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
        ),
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
        (
            "absolute-form agreeing with Host",
            b"GET http://A.example:80/abs HTTP/1.1\r\nHost: a.example\r\n\r\n",
        ),
    ] {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        stream
            .write_all(b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let reply = read_to_close(&mut stream, EXCHANGE).await;
        assert_eq!(reply.statuses(), [200, 200], "{name}: {}", reply.text());
        assert!(reply.text().contains("served GET /after"), "{name}");
    }
    let seen = server.seen();
    assert!(seen.contains(&"OPTIONS *".to_owned()), "{seen:?}");
    assert!(seen.contains(&"POST /same".to_owned()), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_is_cut_off() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One field line every 300 ms: never a complete head.
    let closed_after = loop {
        if stream.write_all(b"X-Drip: 1\r\n").await.is_err() {
            break started.elapsed();
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => break started.elapsed(),
            // RGI-LIMIT-5: a 408 is the answer when part of a head came.
            Ok(Ok(_)) => {
                let rest = read_to_close(&mut stream, EXCHANGE).await;
                assert!(rest.closed);
                break started.elapsed();
            }
            Err(_) => {}
        }
        assert!(
            started.elapsed() < HEAD_TIME + EXCHANGE,
            "a dripping head kept the connection for {:?}",
            started.elapsed()
        );
    };
    assert!(closed_after >= HEAD_TIME - Duration::from_millis(100));
    assert!(server.seen().is_empty());
}

// ---- HTTP/2 (h2c with prior knowledge), raw frames. ----

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const DATA: u8 = 0x0;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut bytes = vec![length[1], length[2], length[3], kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// An HPACK integer with a prefix of `bits` bits (RFC 7541 §5.1).
fn hpack_integer(first: u8, bits: u32, mut value: usize, out: &mut Vec<u8>) {
    let max = (1usize << bits) - 1;
    if value < max {
        out.push(first | u8::try_from(value).unwrap());
        return;
    }
    out.push(first | u8::try_from(max).unwrap());
    value -= max;
    while value >= 128 {
        out.push(u8::try_from(value % 128).unwrap() | 0x80);
        value /= 128;
    }
    out.push(u8::try_from(value).unwrap());
}

/// A header block of literal fields without indexing, names and values
/// sent as they are (no Huffman), so any byte can be sent.
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_integer(0, 7, name.len(), &mut out);
        out.extend_from_slice(name.as_bytes());
        hpack_integer(0, 7, value.len(), &mut out);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum H2Outcome {
    /// A response head whose first field is the static-table `:status`
    /// 200 (index 8) or 400 (index 12); `other` for anything else.
    Status(u16),
    /// `RST_STREAM` with this error code.
    Reset(u32),
    /// `GOAWAY` with this error code: the whole connection.
    GoAway(u32),
}

struct H2Connection {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl H2Connection {
    async fn open(server: &Server) -> Self {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        stream.write_all(&hello).await.unwrap();
        H2Connection {
            stream,
            pending: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn next_frame(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        loop {
            if self.pending.len() >= 9 {
                let length = usize::from(self.pending[0]) << 16
                    | usize::from(self.pending[1]) << 8
                    | usize::from(self.pending[2]);
                if self.pending.len() >= 9 + length {
                    let head: Vec<u8> = self.pending.drain(..9 + length).collect();
                    let stream =
                        u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                    return Some((head[3], head[4], stream, head[9..].to_vec()));
                }
            }
            let mut buffer = [0u8; 4096];
            let read = self.stream.read(&mut buffer).await.ok()?;
            if read == 0 {
                return None;
            }
            self.pending.extend_from_slice(&buffer[..read]);
        }
    }

    /// What happened to `stream_id`, within [`EXCHANGE`].
    async fn outcome(&mut self, stream_id: u32) -> Option<H2Outcome> {
        let wait = async {
            while let Some((kind, flags, stream, payload)) = self.next_frame().await {
                match kind {
                    SETTINGS if flags & 0x1 == 0 => {
                        let ack = frame(SETTINGS, 0x1, 0, &[]);
                        self.send(&ack).await;
                    }
                    HEADERS if stream == stream_id => {
                        let status = match payload.first() {
                            Some(0x88) => 200,
                            Some(0x8c) => 400,
                            _ => 0,
                        };
                        return Some(H2Outcome::Status(status));
                    }
                    RST_STREAM if stream == stream_id => {
                        let code = u32::from_be_bytes(payload.get(..4)?.try_into().ok()?);
                        return Some(H2Outcome::Reset(code));
                    }
                    GOAWAY => {
                        let code = u32::from_be_bytes(payload.get(4..8)?.try_into().ok()?);
                        return Some(H2Outcome::GoAway(code));
                    }
                    _ => {}
                }
            }
            None
        };
        tokio::time::timeout(EXCHANGE, wait).await.ok().flatten()
    }
}

fn request_fields<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "a.example"),
        (":path", "/h2"),
    ];
    fields.extend_from_slice(extra);
    fields
}

const PROTOCOL_ERROR: u32 = 0x1;

/// A name, the request's fields in order, and the outcomes allowed.
type H2Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [H2Outcome]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http2_requests_end_the_stream_not_the_connection() {
    let server = start().await;
    let smuggle_path = [(":path", "/h2-smuggled")];
    let cases: Vec<H2Case<'_>> = vec![
        (
            "connection field",
            request_fields(&[("connection", "keep-alive")]),
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "keep-alive field",
            request_fields(&[("keep-alive", "timeout=5")]),
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "proxy-connection field",
            request_fields(&[("proxy-connection", "close")]),
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "transfer-encoding field",
            request_fields(&[("transfer-encoding", "chunked")]),
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "upgrade field",
            request_fields(&[("upgrade", "websocket")]),
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "TE other than trailers",
            request_fields(&[("te", "gzip")]),
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "no :method",
            vec![(":scheme", "http"), (":authority", "a"), (":path", "/")],
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "no :path",
            vec![(":method", "GET"), (":scheme", "http"), (":authority", "a")],
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "empty :path",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", ""),
            ],
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "no :scheme",
            vec![(":method", "GET"), (":authority", "a"), (":path", "/")],
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "pseudo-header after a regular field",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                ("x-a", "1"),
                (":authority", "a"),
                (":path", "/"),
            ],
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "repeated :path",
            [request_fields(&[]), smuggle_path.to_vec()].concat(),
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            ":status in a request",
            request_fields(&[(":status", "200")]),
            &[
                H2Outcome::Reset(PROTOCOL_ERROR),
                H2Outcome::GoAway(PROTOCOL_ERROR),
            ],
        ),
        (
            "unknown pseudo-header",
            request_fields(&[(":smuggle", "1")]),
            &[
                H2Outcome::Reset(PROTOCOL_ERROR),
                H2Outcome::GoAway(PROTOCOL_ERROR),
            ],
        ),
        (
            "uppercase field name",
            request_fields(&[("X-Upper", "1")]),
            &[
                H2Outcome::Reset(PROTOCOL_ERROR),
                H2Outcome::GoAway(PROTOCOL_ERROR),
            ],
        ),
        (
            ":protocol without CONNECT",
            request_fields(&[(":protocol", "websocket")]),
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "CONNECT with :path",
            vec![
                (":method", "CONNECT"),
                (":authority", "a.example:443"),
                (":path", "/"),
            ],
            &[H2Outcome::Reset(PROTOCOL_ERROR)],
        ),
        (
            "Host disagreeing with :authority",
            request_fields(&[("host", "b.example")]),
            &[H2Outcome::Status(400)],
        ),
        (
            "two Host fields",
            request_fields(&[("host", "a.example"), ("host", "a.example")]),
            &[H2Outcome::Status(400)],
        ),
        (
            "neither :authority nor Host",
            vec![(":method", "GET"), (":scheme", "http"), (":path", "/")],
            &[H2Outcome::Status(400)],
        ),
        (
            ":authority with userinfo",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "user@a.example"),
                (":path", "/"),
            ],
            &[H2Outcome::Status(400)],
        ),
        (
            "invalid percent-encoding in :path",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", "/a%zz"),
            ],
            &[H2Outcome::Status(400)],
        ),
        (
            "asterisk :path with GET",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", "*"),
            ],
            &[H2Outcome::Status(400)],
        ),
    ];
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (name, fields, allowed) in &cases {
        let mut connection = H2Connection::open(&server).await;
        connection
            .send(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &block(fields)))
            .await;
        let outcome = connection.outcome(1).await;
        if !outcome.as_ref().is_some_and(|got| allowed.contains(got)) {
            failures.push(format!("{name}: {outcome:?}, expected one of {allowed:?}"));
            continue;
        }
        if matches!(outcome, Some(H2Outcome::GoAway(_))) {
            continue;
        }
        // RGI-H2-7: the stream ended, the connection goes on.
        connection
            .send(&frame(
                HEADERS,
                END_STREAM | END_HEADERS,
                3,
                &block(&request_fields(&[])),
            ))
            .await;
        let next = connection.outcome(3).await;
        if next != Some(H2Outcome::Status(200)) {
            failures.push(format!("{name}: the next stream got {next:?}"));
        }
    }
    assert!(
        !server.smuggled(),
        "a malformed request reached the application: {:?}",
        server.seen()
    );
    let seen = server.seen();
    assert!(
        seen.iter()
            .all(|target| target == "GET http://a.example/h2"),
        "{seen:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_body_disagreeing_with_content_length_is_reset() {
    let server = start().await;
    let mut connection = H2Connection::open(&server).await;
    let fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "a"),
        (":path", "/short"),
        ("content-length", "10"),
    ];
    connection
        .send(&frame(HEADERS, END_HEADERS, 1, &block(&fields)))
        .await;
    connection.send(&frame(DATA, END_STREAM, 1, b"abc")).await;
    let outcome = connection.outcome(1).await;
    assert!(
        matches!(
            outcome,
            Some(H2Outcome::Reset(PROTOCOL_ERROR) | H2Outcome::Status(400))
        ),
        "{outcome:?}"
    );
}

/// Statuses HPACK cannot show as one static-table byte, through hyper's
/// own HTTP/2 client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_refusals_with_their_statuses() {
    let server = start().await;
    let stream = TcpStream::connect(server.address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let long = format!("http://a.example/{}", "a".repeat(8 * 1024));
    let requests = [
        (
            Request::get("http://a.example/x")
                .header("expect", "teapot")
                .body(Full::new(Bytes::new())),
            417,
        ),
        (
            Request::connect("a.example:443").body(Full::new(Bytes::new())),
            501,
        ),
        (
            Request::get(long.as_str()).body(Full::new(Bytes::new())),
            414,
        ),
        (
            Request::get("http://a.example/fine").body(Full::new(Bytes::new())),
            200,
        ),
    ];
    for (request, expected) in requests {
        let mut request = request.unwrap();
        *request.version_mut() = Version::HTTP_2;
        let response = tokio::time::timeout(EXCHANGE, sender.send_request(request))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status().as_u16(), expected);
        // HTTP/2 refusals end the stream; no connection field is sent.
        assert!(!response.headers().contains_key(header::CONNECTION));
    }
    assert_eq!(server.seen(), ["GET http://a.example/fine"]);
}
