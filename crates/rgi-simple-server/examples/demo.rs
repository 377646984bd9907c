//! The rgi-simple-server demo: four small synchronous applications behind
//! one router, on 127.0.0.1 port 8087.
//!
//! ```text
//! cargo run -p rgi-simple-server --example demo
//! curl -i http://127.0.0.1:8087/                       # hello
//! curl -N http://127.0.0.1:8087/stream                 # five chunks, 300 ms apart
//! curl -d 'name=Ada+Lovelace&lang=rust%21' http://127.0.0.1:8087/form   # form echo
//! curl -i 'http://127.0.0.1:8087/poll?since=0'          # long-poll: waits up to 25 s ...
//! curl -d 'hello board' http://127.0.0.1:8087/poll      # ... until someone publishes
//! curl http://127.0.0.1:8087/environ                   # what the application sees
//! ```
//!
//! Ctrl-C or SIGTERM stops it gracefully (in-flight responses get 5 s);
//! a second one ends it at once.
//!
//! `cargo run -p rgi-simple-server --example demo -- --check` starts the
//! same applications on a free port instead, requests every route once
//! with a plain `TcpStream` client, prints what came back, and exits: 0 if
//! every answer was right, 1 otherwise (the long-poll times out after 1 s
//! in this mode, so the whole check takes about two seconds).
//!
//! Every long-poll holds a worker thread while it waits (a synchronous
//! application blocks), so the demo runs 16 workers and bounds each wait.
#![allow(clippy::print_stdout)]

use std::collections::VecDeque;
use std::error::Error;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{Body, BoxError, Environ, ResponseHead, StartResponse};
use rgi_simple_server::{Builder, Limits, ShutdownSignals};

/// The demo's fixed address.
const ADDRESS: ([u8; 4], u16) = ([127, 0, 0, 1], 8087);
/// How long a long-poll waits for a message before answering 204.
const POLL_WAIT: Duration = Duration::from_secs(25);
/// The same in `--check` mode.
const CHECK_POLL_WAIT: Duration = Duration::from_secs(1);
/// Largest form or message accepted.
const MAX_FORM: usize = 16 * 1024;
/// Messages kept on the board; older ones are forgotten.
const BOARD_SIZE: usize = 100;

/// The long-poll board: numbered messages, and a condition variable that
/// wakes the waiting polls when one is published.
#[derive(Default)]
struct Board {
    messages: Mutex<(u64, VecDeque<(u64, String)>)>,
    published: Condvar,
}

impl Board {
    fn publish(&self, text: String) -> u64 {
        let mut guard = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, messages) = &mut *guard;
        *last += 1;
        messages.push_back((*last, text));
        if messages.len() > BOARD_SIZE {
            messages.pop_front();
        }
        let id = *last;
        drop(guard);
        self.published.notify_all();
        id
    }

    /// The first message after `since`, waiting up to `wait` for one.
    fn next_after(&self, since: u64, wait: Duration) -> Option<(u64, String)> {
        let deadline = Instant::now() + wait;
        let mut guard = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(found) = guard.1.iter().find(|(id, _)| *id > since) {
                return Some(found.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            guard = self
                .published
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A streamed body: five lines, 300 ms apart, with no size known up front,
/// so the server chunks it (HTTP/1.1) or closes after it (HTTP/1.0).
struct Ticks {
    sent: u32,
}

impl Body for Ticks {
    fn next_chunk(&mut self, _: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if self.sent == 5 {
            return None;
        }
        if self.sent > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        self.sent += 1;
        Some(Ok(Bytes::from(format!("tick {} of 5\n", self.sent))))
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> (ResponseHead, Box<dyn Body>) {
    let head = ResponseHead::new(status).with_header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (head, Box::new(body.into()))
}

/// The router: one function per route.
fn demo(board: Arc<Board>, poll_wait: Duration) -> impl rgi::Application {
    rgi::from_fn(move |environ: Environ, start: &mut StartResponse<'_>| {
        let method = environ.method().clone();
        let (head, body) = match (environ.raw_path(), method) {
            ("/", Method::GET | Method::HEAD) => hello(),
            ("/stream", Method::GET | Method::HEAD) => (
                ResponseHead::new(StatusCode::OK).with_header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                Box::new(Ticks { sent: 0 }) as Box<dyn Body>,
            ),
            ("/form", Method::GET | Method::HEAD) => form_page(),
            ("/form", Method::POST) => form_echo(environ)?,
            ("/poll", Method::GET) => long_poll(&environ, &board, poll_wait),
            ("/poll", Method::POST) => publish(environ, &board)?,
            ("/environ", Method::GET | Method::HEAD) => show_environ(&environ),
            ("/" | "/stream" | "/form" | "/poll" | "/environ", _) => {
                let (head, body) = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                let allow = if matches!(environ.raw_path(), "/form" | "/poll") {
                    "GET, HEAD, POST"
                } else {
                    "GET, HEAD"
                };
                (
                    head.with_header(header::ALLOW, HeaderValue::from_static(allow)),
                    body,
                )
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        };
        start.start(head)?;
        Ok(body)
    })
}

fn hello() -> (ResponseHead, Box<dyn Body>) {
    text(
        StatusCode::OK,
        "hello from rgi-simple-server\n\n\
         GET  /stream          five chunks, 300 ms apart\n\
         GET  /form            a form; POST /form echoes its fields\n\
         GET  /poll?since=N    waits for a message newer than N\n\
         POST /poll            publishes the body as a message\n\
         GET  /environ         what the application sees of this request\n",
    )
}

fn form_page() -> (ResponseHead, Box<dyn Body>) {
    let head = ResponseHead::new(StatusCode::OK).with_header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let page = "<!doctype html><title>form echo</title>\
                <form method=post action=/form>\
                <label>name <input name=name></label> \
                <label>language <input name=lang></label> \
                <button>send</button></form>\n";
    (head, Box::new(Bytes::from_static(page.as_bytes())))
}

/// Echoes the fields of an `application/x-www-form-urlencoded` body, one
/// `name = value` line each.
fn form_echo(mut environ: Environ) -> Result<(ResponseHead, Box<dyn Body>), BoxError> {
    let urlencoded = environ
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !urlencoded {
        return Ok(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/x-www-form-urlencoded\n",
        ));
    }
    // An over-long body is the client's error, answered with its status
    // (413) by the server.
    let body = environ.input_mut().read_to_bytes(MAX_FORM)?;
    let mut echo = String::new();
    for pair in body.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let _ = writeln!(echo, "{} = {}", form_decode(name), form_decode(value));
    }
    if echo.is_empty() {
        echo.push_str("(no fields)\n");
    }
    Ok(text(StatusCode::OK, echo))
}

/// `+` is a space, `%XX` a byte; anything malformed is kept as sent.
fn form_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /poll?since=N`: the first message newer than N, as soon as there
/// is one, or 204 after the wait.
fn long_poll(environ: &Environ, board: &Board, wait: Duration) -> (ResponseHead, Box<dyn Body>) {
    let since = environ
        .query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("since="))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    match board.next_after(since, wait) {
        Some((id, message)) => text(StatusCode::OK, format!("{id}\n{message}\n")),
        None => (
            ResponseHead::new(StatusCode::NO_CONTENT),
            Box::new(Bytes::new()),
        ),
    }
}

/// `POST /poll`: the body becomes the next message.
fn publish(mut environ: Environ, board: &Board) -> Result<(ResponseHead, Box<dyn Body>), BoxError> {
    let body = environ.input_mut().read_to_bytes(MAX_FORM)?;
    let id = board.publish(String::from_utf8_lossy(&body).into_owned());
    Ok(text(StatusCode::OK, format!("published {id}\n")))
}

/// What the environ holds: behind a reverse proxy this shows which
/// values are the proxy's and which the client's (docs/simple-server.md).
fn show_environ(environ: &Environ) -> (ResponseHead, Box<dyn Body>) {
    let mut out = String::new();
    let _ = writeln!(out, "method       {}", environ.method());
    let _ = writeln!(out, "raw_path     {}", environ.raw_path());
    let _ = writeln!(out, "query_string {}", environ.query_string());
    let _ = writeln!(out, "url_scheme   {:?}", environ.url_scheme());
    let _ = writeln!(out, "server_name  {}", environ.server_name());
    let _ = writeln!(out, "server_port  {}", environ.server_port());
    let _ = writeln!(out, "remote_addr  {:?}", environ.remote_addr());
    for (name, value) in environ.headers() {
        let _ = writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
    text(StatusCode::OK, out)
}

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::args().nth(1).as_deref() == Some("--check") {
        return check();
    }
    // Before the server starts: from here on a signal waits for
    // `run_until` instead of ending the process.
    let signals = ShutdownSignals::install()?;
    let board = Arc::new(Board::default());
    let server = Builder::new()
        .bind(SocketAddr::from(ADDRESS))
        .workers(16)
        .limits(Limits::default().with_max_body(1 << 20))
        .serve_sync(demo(board, POLL_WAIT))?;
    println!(
        "rgi-simple-server demo on http://{}/ (Ctrl-C stops it)",
        SocketAddr::from(ADDRESS)
    );
    let cause = server.run_until(signals, Duration::from_secs(5))?;
    println!("stopped ({cause:?})");
    Ok(())
}

/// One request on a fresh connection (`connection: close`): the status
/// and the body, de-chunked.
fn fetch(addr: SocketAddr, request: &str) -> Result<(u16, String), Box<dyn Error>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8(raw)?;
    let (head, mut body) = raw
        .split_once("\r\n\r\n")
        .ok_or("a response without a complete head")?;
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or("no status")?;
    let mut decoded = String::new();
    if head
        .to_ascii_lowercase()
        .contains("\r\ntransfer-encoding: chunked")
    {
        loop {
            let (size, rest) = body.split_once("\r\n").ok_or("a cut chunk")?;
            let size = usize::from_str_radix(size, 16)?;
            if size == 0 {
                break;
            }
            decoded.push_str(rest.get(..size).ok_or("a short chunk")?);
            body = rest.get(size + 2..).ok_or("a chunk without CRLF")?;
        }
    } else {
        decoded.push_str(body);
    }
    Ok((status, decoded))
}

/// `--check`: every route once against a server on a free port.
fn check() -> Result<(), Box<dyn Error>> {
    let board = Arc::new(Board::default());
    let server = Builder::new()
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .workers(4)
        .serve_sync(demo(board, CHECK_POLL_WAIT))?;
    let addr = server.tcp_addr().ok_or("no TCP address")?;
    let get = |path: &str| {
        fetch(
            addr,
            &format!("GET {path} HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n"),
        )
    };
    let post = |path: &str, kind: &str, body: &str| {
        fetch(
            addr,
            &format!(
                "POST {path} HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\
                 content-type: {kind}\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let mut failures = 0;
    let mut judge = |what: &str, ok: bool, got: &(u16, String)| {
        let first_line = got.1.lines().next().unwrap_or("");
        println!(
            "{} {what}: {} {first_line:?}",
            if ok { "ok  " } else { "FAIL" },
            got.0
        );
        if !ok {
            failures += 1;
        }
    };

    let hello = get("/")?;
    judge(
        "hello",
        hello.0 == 200 && hello.1.starts_with("hello"),
        &hello,
    );
    let stream = get("/stream")?;
    judge(
        "streamed response",
        stream.0 == 200 && stream.1.lines().count() == 5 && stream.1.ends_with("tick 5 of 5\n"),
        &stream,
    );
    let form = post(
        "/form",
        "application/x-www-form-urlencoded",
        "name=Ada+Lovelace&lang=rust%21",
    )?;
    judge(
        "form echo",
        form.0 == 200 && form.1 == "name = Ada Lovelace\nlang = rust!\n",
        &form,
    );
    // The poll waits on its own thread while this one publishes; whichever
    // reaches the server first, the poll gets message 1.
    let waiting = std::thread::spawn(move || {
        fetch(
            addr,
            "GET /poll?since=0 HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n",
        )
        .map_err(|error| error.to_string())
    });
    let published = post("/poll", "text/plain", "hello board")?;
    judge(
        "publish",
        published == (200, "published 1\n".into()),
        &published,
    );
    let polled = waiting.join().map_err(|_| "the poll thread panicked")??;
    judge(
        "long-poll answered",
        polled == (200, "1\nhello board\n".into()),
        &polled,
    );
    let timed_out = get("/poll?since=1")?;
    judge("long-poll timed out", timed_out.0 == 204, &timed_out);

    server.shutdown(Duration::from_secs(2));
    if failures > 0 {
        return Err(format!("{failures} routes answered wrongly").into());
    }
    println!("every route answered as expected");
    Ok(())
}
