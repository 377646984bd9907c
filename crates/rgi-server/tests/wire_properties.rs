//! Property tests over a real socket: arbitrary bytes, and valid requests
//! with random damage, thrown at `rgi-server` over HTTP/1.1. Whatever
//! arrives, the server answers only with well-formed responses of the
//! statuses it and hyper give, closes after every refusal, never serves a
//! request smuggled behind a refused one, and keeps serving other clients.
// A failed unwrap in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use proptest::prelude::*;
use rgi::{Environ, ResponseHead, StartResponse};
use rgi_server::{Limits, Server};

/// Every socket operation gives up after this long.
const PATIENCE: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads until the server closes (or `PATIENCE`): the bytes, and whether
/// it closed.
fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + PATIENCE;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
        if Instant::now() > deadline {
            return (out, false);
        }
    }
}

/// The statuses a request can get from this server with the echo
/// application: its answer, or one of the parser's and limits' refusals.
const EXPECTED: [u16; 12] = [200, 400, 408, 411, 413, 414, 417, 431, 500, 501, 503, 505];

/// Reads the whole body (so body faults surface) and records each path.
fn recording_echo(seen: Arc<Mutex<Vec<String>>>) -> impl rgi::Application {
    rgi::from_fn(move |mut environ: Environ, start: &mut StartResponse<'_>| {
        seen.lock().unwrap().push(environ.raw_path().to_string());
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(body))
    })
}

fn server(seen: &Arc<Mutex<Vec<String>>>) -> Server {
    Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(1)
        .handle_signals(false)
        .limits(Limits::default().header_read_timeout(Duration::from_millis(500)))
        .serve_sync(recording_echo(Arc::clone(seen)))
        .expect("the server starts")
}

/// One response as far as the property needs it.
struct Seen {
    status: u16,
    closes: bool,
}

/// Splits `bytes` into responses without trusting them: `None` when what
/// came back is not a sequence of well-formed HTTP/1.1 responses (a head,
/// then a body framed by Content-Length or chunked, or none).
fn parse(mut bytes: &[u8]) -> Option<Vec<Seen>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut fields);
        let httparse::Status::Complete(head_len) = response.parse(bytes).ok()? else {
            return None;
        };
        let status = response.code?;
        let field = |name: &str| {
            response
                .headers
                .iter()
                .find(|field| field.name.eq_ignore_ascii_case(name))
                .map(|field| String::from_utf8_lossy(field.value).to_ascii_lowercase())
        };
        let closes = field("connection").is_some_and(|value| value.contains("close"));
        let length = field("content-length");
        let chunked = field("transfer-encoding").is_some_and(|value| value == "chunked");
        bytes = &bytes[head_len..];
        if status != 100 {
            if let Some(length) = length {
                let length: usize = length.parse().ok()?;
                bytes = bytes.get(length..)?;
            } else if chunked {
                let end = bytes.windows(5).position(|w| w == b"0\r\n\r\n")?;
                bytes = &bytes[end + 5..];
            }
            out.push(Seen { status, closes });
        }
    }
    Some(out)
}

/// Sends `request`, ends the sending side, and judges what comes back.
fn judge(addr: SocketAddr, request: &[u8]) -> Result<Vec<Seen>, TestCaseError> {
    let mut stream = connect(addr);
    // A server that refuses early may reset before all is written.
    let _ = stream.write_all(request);
    let _ = stream.shutdown(Shutdown::Write);
    let (bytes, closed) = read_to_close(&mut stream);
    prop_assert!(closed, "the server neither answered nor closed");
    let seen = parse(&bytes);
    prop_assert!(
        seen.is_some(),
        "malformed answer: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    let seen = seen.unwrap_or_default();
    for (index, response) in seen.iter().enumerate() {
        prop_assert!(
            EXPECTED.contains(&response.status),
            "unexpected status {}",
            response.status
        );
        if response.status >= 400 {
            prop_assert!(response.closes, "a {} without close", response.status);
            prop_assert_eq!(index + 1, seen.len(), "a response after a refusal");
        }
    }
    Ok(seen)
}

/// A valid request with a body, framed either way.
fn valid_request() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(chunked, body)| {
        let mut request = b"POST /echo HTTP/1.1\r\nHost: a\r\n".to_vec();
        if chunked {
            request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            if !body.is_empty() {
                request.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                request.extend_from_slice(&body);
                request.extend_from_slice(b"\r\n");
            }
            request.extend_from_slice(b"0\r\n\r\n");
        } else {
            request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            request.extend_from_slice(&body);
        }
        request
    })
}

/// Damage to a request: a byte changed, inserted or removed at a place.
#[derive(Debug, Clone)]
enum Damage {
    Replace(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Replace(at, byte)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Insert(at, byte)),
        any::<usize>().prop_map(Damage::Remove),
    ]
}

fn apply(request: &mut Vec<u8>, damage: &[Damage]) {
    for one in damage {
        if request.is_empty() {
            return;
        }
        match *one {
            Damage::Replace(at, byte) => {
                let at = at % request.len();
                request[at] = byte;
            }
            Damage::Insert(at, byte) => {
                let at = at % (request.len() + 1);
                request.insert(at, byte);
            }
            Damage::Remove(at) => {
                let at = at % request.len();
                request.remove(at);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Bytes of any kind: well-formed answers only, and a server that goes
    /// on serving.
    #[test]
    fn arbitrary_bytes_get_well_formed_answers(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = server(&seen);
        let addr = server.local_addr().unwrap();
        judge(addr, &bytes)?;
        let after = judge(addr, b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")?;
        prop_assert_eq!(after.first().map(|r| r.status), Some(200));
        server.shutdown();
    }

    /// A damaged request followed by a second one in the same write: if the
    /// first is refused, the second is never served.
    #[test]
    fn nothing_is_smuggled_behind_a_damaged_request(
        mut request in valid_request(),
        damage in proptest::collection::vec(damage(), 1..4),
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = server(&seen);
        let addr = server.local_addr().unwrap();
        apply(&mut request, &damage);
        request.extend_from_slice(b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
        let answers = judge(addr, &request)?;
        let refused = answers.first().is_some_and(|first| first.status >= 400);
        let served = seen.lock().unwrap().clone();
        if refused || answers.is_empty() {
            prop_assert!(
                !served.iter().any(|path| path == "/smuggled"),
                "served behind a refusal: {:?} (request {:?})",
                served,
                String::from_utf8_lossy(&request)
            );
        }
        server.shutdown();
    }
}

/// A client that ends its sending side right after its request (`nc -N`, a
/// test harness's `shutdown(SHUT_WR)`) still gets the answer, which the
/// application produces on a pool thread after the end of input arrived.
#[test]
fn a_client_that_half_closes_gets_its_answer() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = server(&seen);
    let addr = server.local_addr().unwrap();
    for request in [
        &b"GET /half HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[..],
        b"POST /half HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /half HTTP/1.0\r\n\r\n",
    ] {
        let answers = judge(addr, request).unwrap();
        assert_eq!(
            answers
                .iter()
                .map(|answer| answer.status)
                .collect::<Vec<_>>(),
            [200],
            "{}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(seen.lock().unwrap().len(), 3);
    server.shutdown();
}
