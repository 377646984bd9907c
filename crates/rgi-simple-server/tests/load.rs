//! The done-when load test of issue 12: 10,000 keep-alive requests from 64
//! client threads over loopback, eight in ten of them in pipelined bursts, with
//! bodies both ways framed every way the server frames them; none may be
//! lost and every response must be the right one, in order.
//!
//! Bounded: every socket read and write gives up after `PATIENCE`, and the
//! whole run must end within `BUDGET`; the figures are printed (run with
//! `--nocapture` to see them).
// A failed unwrap in a test is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{Environ, ResponseHead, StartResponse};
use rgi_simple_server::Builder;

const REQUESTS: usize = 10_000;
const CLIENTS: usize = 64;
/// Requests written back to back in one burst before any answer is read.
const BURST: usize = 8;
/// Each socket operation gives up after this long.
const PATIENCE: Duration = Duration::from_secs(30);
/// The whole run, on a loaded two-core machine in a debug build, with a
/// wide margin; a lost response shows up as a read timeout well before.
const BUDGET: Duration = Duration::from_secs(240);

/// Answers `<path> <body length> <byte sum>`; the requests ending in
/// `/chunked` get a streamed (chunked) answer, the others a Content-Length.
fn app(calls: Arc<AtomicUsize>) -> impl rgi::Application {
    rgi::from_fn(move |mut environ: Environ, start: &mut StartResponse<'_>| {
        calls.fetch_add(1, Ordering::Relaxed);
        let body = environ.input_mut().read_to_bytes(1 << 16)?;
        let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
        let answer = format!("{} {} {sum}", environ.raw_path(), body.len());
        start.start(ResponseHead::new(StatusCode::OK))?;
        let body: Box<dyn rgi::Body> = if environ.raw_path().ends_with("/chunked") {
            // No size hint: the server must chunk it.
            let chunks: Vec<Bytes> = answer
                .into_bytes()
                .chunks(5)
                .map(Bytes::copy_from_slice)
                .collect();
            Box::new(rgi::from_iter(chunks))
        } else {
            // An exact size hint: a Content-Length.
            Box::new(Bytes::from(answer))
        };
        Ok(body)
    })
}

/// The `index`-th request of client `client`: its bytes and the answer it
/// must get.
fn request(client: usize, index: usize) -> (Vec<u8>, String) {
    let body: Vec<u8> = (0..(index * 7 + client) % 300)
        .map(|i| u8::try_from((i * 31 + client) % 251).unwrap())
        .collect();
    let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
    match index % 4 {
        0 => {
            let path = format!("/c{client}/r{index}");
            (
                format!("GET {path} HTTP/1.1\r\nhost: load\r\n\r\n").into_bytes(),
                format!("{path} 0 0"),
            )
        }
        1 => {
            let path = format!("/c{client}/r{index}");
            let mut bytes = format!(
                "POST {path} HTTP/1.1\r\nhost: load\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            bytes.extend_from_slice(&body);
            (bytes, format!("{path} {} {sum}", body.len()))
        }
        2 => {
            let path = format!("/c{client}/r{index}/chunked");
            let mut bytes =
                format!("POST {path} HTTP/1.1\r\nhost: load\r\ntransfer-encoding: chunked\r\n\r\n")
                    .into_bytes();
            for piece in body.chunks(64) {
                bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                bytes.extend_from_slice(piece);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
            (bytes, format!("{path} {} {sum}", body.len()))
        }
        _ => {
            let path = format!("/c{client}/r{index}/chunked");
            (
                format!("GET {path}?q={index} HTTP/1.1\r\nhost: load\r\n\r\n").into_bytes(),
                format!("{path} 0 0"),
            )
        }
    }
}

/// Reads one response: status, whether it said `connection: close`, body.
fn read_response(reader: &mut BufReader<TcpStream>) -> Result<(u16, bool, Vec<u8>), String> {
    let mut line = String::new();
    let mut status = None;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| format!("reading the head: {e}"))?;
        if read == 0 {
            return Err("the connection closed before a response".into());
        }
        let text = line.trim_end_matches("\r\n");
        if status.is_none() {
            let code = text
                .strip_prefix("HTTP/1.1 ")
                .and_then(|rest| rest.get(..3))
                .and_then(|code| code.parse::<u16>().ok())
                .ok_or_else(|| format!("bad status line {text:?}"))?;
            status = Some(code);
            continue;
        }
        if text.is_empty() {
            break;
        }
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("bad field {text:?}"))?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader
                .read_line(&mut line)
                .map_err(|e| format!("reading a chunk size: {e}"))?;
            let size = usize::from_str_radix(line.trim_end_matches("\r\n"), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            let mut chunk = vec![0; size + 2];
            reader
                .read_exact(&mut chunk)
                .map_err(|e| format!("reading a chunk: {e}"))?;
            if &chunk[size..] != b"\r\n" {
                return Err("a chunk not followed by CRLF".into());
            }
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("reading the body: {e}"))?;
    } else {
        return Err("a response without framing on a kept connection".into());
    }
    Ok((status.unwrap_or(0), close, body))
}

/// What one client saw.
#[derive(Debug, Default)]
struct Outcome {
    correct: usize,
    pipelined: usize,
    latencies: Vec<Duration>,
    error: Option<String>,
}

/// Client `client` sends `count` requests on one kept connection: every
/// third round a pipelined burst, otherwise one request at a time.
fn client(addr: SocketAddr, client: usize, count: usize) -> Outcome {
    let mut outcome = Outcome::default();
    let run = |outcome: &mut Outcome| -> Result<(), String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(PATIENCE))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(PATIENCE))
            .map_err(|e| e.to_string())?;
        let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut index = 0;
        let mut round = 0;
        while index < count {
            let size = if round % 3 == 2 {
                BURST.min(count - index)
            } else {
                1
            };
            round += 1;
            let mut bytes = Vec::new();
            let mut expected = Vec::with_capacity(size);
            for at in index..index + size {
                let (request, answer) = request(client, at);
                bytes.extend_from_slice(&request);
                expected.push(answer);
            }
            let sent = Instant::now();
            writer
                .write_all(&bytes)
                .map_err(|e| format!("request {index}: writing: {e}"))?;
            for (offset, answer) in expected.iter().enumerate() {
                let (status, close, body) = read_response(&mut reader)
                    .map_err(|e| format!("request {}: {e}", index + offset))?;
                if status != 200 || close || body != answer.as_bytes() {
                    return Err(format!(
                        "request {}: got {status} (close: {close}) {:?}, wanted 200 {answer:?}",
                        index + offset,
                        String::from_utf8_lossy(&body)
                    ));
                }
                outcome.correct += 1;
                if size > 1 {
                    outcome.pipelined += 1;
                }
            }
            outcome.latencies.push(sent.elapsed());
            index += size;
        }
        Ok(())
    };
    if let Err(error) = run(&mut outcome) {
        outcome.error = Some(format!("client {client}: {error}"));
    }
    outcome
}

#[test]
fn ten_thousand_keep_alive_requests_from_64_clients_none_lost() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(8)
        .serve_sync(app(Arc::clone(&calls)))
        .unwrap();
    let addr = server.tcp_addr().unwrap();

    let started = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|id| {
            // 10,000 over 64: the first 16 clients send one more.
            let count = REQUESTS / CLIENTS + usize::from(id < REQUESTS % CLIENTS);
            thread::Builder::new()
                .name(format!("load-client-{id}"))
                .spawn(move || client(addr, id, count))
                .unwrap()
        })
        .collect();
    let outcomes: Vec<Outcome> = handles
        .into_iter()
        .map(|handle| handle.join().expect("a client thread panicked"))
        .collect();
    let elapsed = started.elapsed();
    server.shutdown(Duration::from_secs(5));

    let errors: Vec<&String> = outcomes.iter().filter_map(|o| o.error.as_ref()).collect();
    let correct: usize = outcomes.iter().map(|o| o.correct).sum();
    let pipelined: usize = outcomes.iter().map(|o| o.pipelined).sum();
    let mut latencies: Vec<Duration> = outcomes
        .iter()
        .flat_map(|o| o.latencies.iter().copied())
        .collect();
    latencies.sort();
    let percentile = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    eprintln!(
        "load: {correct} of {REQUESTS} correct ({pipelined} in pipelined bursts of up to {BURST}) \
         from {CLIENTS} clients in {:.2} s: {:.0} req/s; round trip per write (a request or a burst) p50 {:?}, p99 {:?}, max {:?}",
        elapsed.as_secs_f64(),
        correct as f64 / elapsed.as_secs_f64(),
        percentile(50),
        percentile(99),
        latencies.last().copied().unwrap_or_default(),
    );
    assert!(
        errors.is_empty(),
        "{} clients failed: {errors:#?}",
        errors.len()
    );
    assert_eq!(correct, REQUESTS, "responses lost");
    assert_eq!(calls.load(Ordering::Relaxed), REQUESTS, "application calls");
    assert!(pipelined >= REQUESTS / 4, "too few pipelined: {pipelined}");
    assert!(
        elapsed < BUDGET,
        "the run took {elapsed:?}, over its budget of {BUDGET:?}"
    );
}
