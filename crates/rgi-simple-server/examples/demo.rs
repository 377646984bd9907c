//! The rgi-simple-server demo: one asynchronous application on 127.0.0.1
//! port 8087, served by `Builder::serve_async` without an async runtime.
//!
//! ```text
//! cargo run -p rgi-simple-server --example demo
//! curl -i http://127.0.0.1:8087/                       # hello
//! curl -N http://127.0.0.1:8087/stream                 # five chunks, 300 ms apart
//! curl -d 'name=Ada+Lovelace&lang=rust%21' http://127.0.0.1:8087/form   # form echo
//! curl -i 'http://127.0.0.1:8087/poll?since=0'          # long-poll: waits up to 25 s ...
//! curl -d 'hello board' http://127.0.0.1:8087/post      # ... until someone posts
//! curl http://127.0.0.1:8087/environ                   # what the application sees
//! ```
//!
//! Ctrl-C or SIGTERM stops it gracefully (in-flight responses get 5 s);
//! a second one ends it at once.
//!
//! `cargo run -p rgi-simple-server --example demo -- --check` starts the
//! same application on a free port instead, requests every route with a
//! plain `TcpStream` client, prints what came back, and exits: 0 if every
//! answer was right, 1 otherwise. It parks twenty long-polls at once on a
//! server with one async thread and one worker, wakes them all with one
//! post, lets one more time out (it asks for `wait=1`), and leaves one
//! parked poll to see it dropped; the whole check takes about three
//! seconds, and at most about twenty when the long-polls are broken.
//!
//! Where each route runs:
//!
//! - `/poll` is an [`AsyncBody`] that parks: it registers its task's waker
//!   on the board and returns `Pending`, so a waiting long-poll holds no
//!   thread at all. A post wakes every parked poll; its timeout is a timer
//!   of the server's poller (an empty readiness wait), not a sleeping thread.
//! - `/stream` and `/post` are `async fn`s: the ticks wait on the same
//!   timers, and the posted body is read through the input's non-blocking
//!   face.
//! - `/form` and `/environ` are an ordinary synchronous application, wrapped
//!   in [`Threaded`]: it runs on the server's worker threads, where its
//!   blocking read of the form body cannot stall the async threads.
#![allow(clippy::print_stdout)]

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::fmt::Write as _;
use std::future::poll_fn;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{BoxError, Environ, ResponseHead, StartResponse};
use rgi_async::{
    AsyncApplication, AsyncBody, Capabilities, Interest, Readiness, Responder, Source, Step,
    Threaded, WaitAnyFuture,
};
use rgi_simple_server::{Builder, Limits, ShutdownSignals};

/// The demo's fixed address.
const ADDRESS: ([u8; 4], u16) = ([127, 0, 0, 1], 8087);
/// How long a long-poll waits for a message before answering 204, at
/// most: a client may ask for less (`wait=S`).
const POLL_WAIT: Duration = Duration::from_secs(25);
/// The pause between two lines of `/stream`.
const TICK: Duration = Duration::from_millis(300);
/// Largest form or message accepted.
const MAX_FORM: usize = 16 * 1024;
/// Messages kept on the board; older ones are forgotten.
const BOARD_SIZE: usize = 100;
/// Long-polls the check parks at once on one async thread and one worker.
const CHECK_POLLS: usize = 20;

/// The long-poll board: numbered messages, and the wakers of the polls
/// parked until the next one.
#[derive(Default)]
struct Board {
    state: Mutex<BoardState>,
}

#[derive(Default)]
struct BoardState {
    last: u64,
    messages: VecDeque<(u64, String)>,
    /// Each parked poll's waker, under a ticket of its own so that a poll
    /// that goes away (its client left) takes its waker with it.
    parked: HashMap<u64, Waker>,
    tickets: u64,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a message and wakes every parked poll.
    fn publish(&self, text: String) -> u64 {
        let mut state = self.lock();
        state.last += 1;
        let id = state.last;
        state.messages.push_back((id, text));
        if state.messages.len() > BOARD_SIZE {
            state.messages.pop_front();
        }
        let wakers: Vec<Waker> = state.parked.drain().map(|(_, waker)| waker).collect();
        // Woken outside the lock: a waker may run its task at once on
        // another thread, which then takes the lock itself.
        drop(state);
        for waker in wakers {
            waker.wake();
        }
        id
    }

    /// The first message after `since`; when there is none yet, `waker`
    /// is parked under `ticket` until the next publish. Looking and parking
    /// under one lock means a publish in between cannot be missed.
    fn next_or_park(
        &self,
        since: u64,
        ticket: &mut Option<u64>,
        waker: &Waker,
    ) -> Option<(u64, String)> {
        let mut state = self.lock();
        if let Some(found) = state.messages.iter().find(|(id, _)| *id > since).cloned() {
            if let Some(ticket) = ticket.take() {
                state.parked.remove(&ticket);
            }
            return Some(found);
        }
        let ticket = *ticket.get_or_insert_with(|| {
            state.tickets += 1;
            state.tickets
        });
        match state.parked.get_mut(&ticket) {
            Some(parked) if parked.will_wake(waker) => {}
            Some(parked) => parked.clone_from(waker),
            None => {
                state.parked.insert(ticket, waker.clone());
            }
        }
        None
    }

    fn unpark(&self, ticket: u64) {
        self.lock().parked.remove(&ticket);
    }

    /// How many polls wait for the next message.
    fn parked(&self) -> usize {
        self.lock().parked.len()
    }
}

/// `GET /poll?since=N`: parks until the board has a message newer than N
/// (200 with it) or the timer fires (204).
struct LongPoll {
    board: Arc<Board>,
    since: u64,
    ticket: Option<u64>,
    /// The timeout: an empty readiness wait, which the server's poller
    /// resolves at its deadline (spec/rgi-async.md `[RGIA-READY-16]`).
    timer: WaitAnyFuture<'static>,
    done: bool,
}

impl AsyncBody for LongPoll {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some((id, message)) =
            this.board
                .next_or_park(this.since, &mut this.ticket, cx.waker())
        {
            this.done = true;
            let answer = Bytes::from(format!("{id}\n{message}\n"));
            // Known now, so declared: the answer goes out with a length.
            let (head, _) = text(StatusCode::OK, Bytes::new());
            let head = head.with_header(header::CONTENT_LENGTH, HeaderValue::from(answer.len()));
            return Poll::Ready(Some(
                start
                    .start(head)
                    .map(|()| Step::Chunk(answer))
                    .map_err(BoxError::from),
            ));
        }
        // Parked on the board; the timer keeps the same waker.
        let Poll::Ready(outcome) = this.timer.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        this.done = true;
        if let Some(ticket) = this.ticket.take() {
            this.board.unpark(ticket);
        }
        Poll::Ready(match outcome {
            // An empty wait can only time out.
            Ok(_) => start
                .start(ResponseHead::new(StatusCode::NO_CONTENT))
                .err()
                .map(|error| Err(error.into())),
            Err(error) => Some(Err(error.into())),
        })
    }
}

impl Drop for LongPoll {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.board.unpark(ticket);
        }
    }
}

/// The server's poller, for timers: this server lends one to every
/// asynchronous request.
fn readiness(environ: &Environ) -> Result<Readiness, BoxError> {
    Capabilities::of(environ)
        .ok_or("needs an asynchronous server")?
        .readiness()
        .cloned()
        .ok_or_else(|| "needs a server with readiness waits".into())
}

/// A timer on the server's poller: a wait on no descriptor at all.
fn timer(readiness: &Readiness, after: Duration) -> WaitAnyFuture<'static> {
    readiness.wait_any(Vec::<(Source<'static>, Interest)>::new(), Some(after))
}

fn long_poll(environ: &Environ, board: &Arc<Board>) -> Result<LongPoll, BoxError> {
    let param = |name: &str| {
        environ
            .query_string()
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let wait = param("wait").map_or(POLL_WAIT, |seconds| {
        Duration::from_secs(seconds).min(POLL_WAIT)
    });
    Ok(LongPoll {
        board: Arc::clone(board),
        since: param("since").unwrap_or(0),
        ticket: None,
        timer: timer(&readiness(environ)?, wait),
        done: false,
    })
}

/// `GET /stream`: five lines, 300 ms apart, with no size known up front,
/// so the server chunks it (HTTP/1.1) or closes after it (HTTP/1.0).
async fn ticks(environ: Environ, response: Responder) -> Result<(), BoxError> {
    let readiness = readiness(&environ)?;
    response.append_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    for n in 1..=5 {
        if n > 1 {
            timer(&readiness, TICK).await?;
        }
        response.send(format!("tick {n} of 5\n")).await;
    }
    Ok(())
}

/// `POST /post`: the body becomes the next message, read without blocking.
async fn post(
    board: Arc<Board>,
    mut environ: Environ,
    response: Responder,
) -> Result<(), BoxError> {
    response.append_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    let mut body = BytesMut::new();
    loop {
        let chunk = poll_fn(|cx| environ.input_mut().poll_chunk(cx, MAX_FORM)).await?;
        if chunk.is_empty() {
            break;
        }
        if body.len() + chunk.len() > MAX_FORM {
            response.set_status(StatusCode::PAYLOAD_TOO_LARGE)?;
            response
                .send(format!("a message has at most {MAX_FORM} bytes\n"))
                .await;
            return Ok(());
        }
        body.extend_from_slice(&chunk);
    }
    let id = board.publish(String::from_utf8_lossy(&body).into_owned());
    response.send(format!("published {id}\n")).await;
    Ok(())
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> (ResponseHead, Bytes) {
    let head = ResponseHead::new(status).with_header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (head, body.into())
}

fn not_allowed(allow: &'static str) -> (ResponseHead, Bytes) {
    let (head, body) = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    (
        head.with_header(header::ALLOW, HeaderValue::from_static(allow)),
        body,
    )
}

/// The router: each route's body, boxed.
fn demo(board: Arc<Board>) -> impl AsyncApplication {
    let pages = Threaded::new(pages());
    rgi_async::from_fn(
        move |environ: Environ,
              start: &mut StartResponse<'_>|
              -> Result<Pin<Box<dyn AsyncBody>>, BoxError> {
            let method = environ.method().clone();
            let (head, body) = match (environ.raw_path(), method) {
                ("/", Method::GET | Method::HEAD) => text(StatusCode::OK, HELLO),
                ("/stream", Method::GET | Method::HEAD) => {
                    return Ok(Box::pin(
                        rgi_async::from_async_fn(ticks).call(environ, start)?,
                    ));
                }
                ("/form" | "/environ", _) => return Ok(Box::pin(pages.call(environ, start)?)),
                ("/poll", Method::GET) => {
                    return Ok(Box::pin(long_poll(&environ, &board)?));
                }
                ("/post", Method::POST) => {
                    let board = Arc::clone(&board);
                    let app = rgi_async::from_async_fn(move |environ, response| {
                        post(Arc::clone(&board), environ, response)
                    });
                    return Ok(Box::pin(app.call(environ, start)?));
                }
                ("/" | "/stream", _) => not_allowed("GET, HEAD"),
                ("/poll", _) => not_allowed("GET"),
                ("/post", _) => not_allowed("POST"),
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            };
            start.start(head)?;
            Ok(Box::pin(body))
        },
    )
}

const HELLO: &str = "hello from rgi-simple-server\n\n\
     GET  /stream          five chunks, 300 ms apart\n\
     GET  /form            a form; POST /form echoes its fields\n\
     GET  /poll?since=N    waits for a message newer than N (25 s, or wait=S)\n\
     POST /post            posts the body as a message\n\
     GET  /environ         what the application sees of this request\n";

/// The synchronous part: `/form` and `/environ`, run on a worker thread by
/// [`Threaded`].
fn pages() -> impl rgi::Application {
    rgi::from_fn(|environ: Environ, start: &mut StartResponse<'_>| {
        let method = environ.method().clone();
        let (head, body) = match (environ.raw_path(), method) {
            ("/form", Method::GET | Method::HEAD) => form_page(),
            ("/form", Method::POST) => form_echo(environ)?,
            ("/environ", Method::GET | Method::HEAD) => show_environ(&environ),
            ("/form", _) => not_allowed("GET, HEAD, POST"),
            ("/environ", _) => not_allowed("GET, HEAD"),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        };
        start.start(head)?;
        Ok(body)
    })
}

fn form_page() -> (ResponseHead, Bytes) {
    let head = ResponseHead::new(StatusCode::OK).with_header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let page = "<!doctype html><title>form echo</title>\
                <form method=post action=/form>\
                <label>name <input name=name></label> \
                <label>language <input name=lang></label> \
                <button>send</button></form>\n";
    (head, Bytes::from_static(page.as_bytes()))
}

/// Echoes the fields of an `application/x-www-form-urlencoded` body, one
/// `name = value` line each.
fn form_echo(mut environ: Environ) -> Result<(ResponseHead, Bytes), BoxError> {
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
    // A blocking read: fine here, on a worker thread. An over-long body is
    // the client's error, answered with its status (413) by the server.
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

/// What the environ holds: behind a reverse proxy this shows which
/// values are the proxy's and which the client's (docs/simple-server.md).
fn show_environ(environ: &Environ) -> (ResponseHead, Bytes) {
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
    // The defaults: async threads as many as cores, workers (for the form
    // pages) twice as many; a parked long-poll takes neither.
    let server = Builder::new()
        .bind(SocketAddr::from(ADDRESS))
        .limits(Limits::default().with_max_body(1 << 20))
        .serve_async(demo(board))?;
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

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n")
}

/// Waits, bounded, until `ready` holds.
fn eventually(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ready()
}

/// `--check`: every route against a server on a free port.
fn check() -> Result<(), Box<dyn Error>> {
    let board = Arc::new(Board::default());
    // One thread of each kind: the parked long-polls below must hold none.
    let server = Builder::new()
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .async_threads(1)
        .workers(1)
        .serve_async(demo(Arc::clone(&board)))?;
    let addr = server.tcp_addr().ok_or("no TCP address")?;
    let get = |path: &str| fetch(addr, &get_request(path));
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
    let failures = Cell::new(0);
    let verdict = |what: &str, ok: bool| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failures.set(failures.get() + 1);
        }
    };
    let judge = |what: &str, ok: bool, got: &(u16, String)| {
        let first_line = got.1.lines().next().unwrap_or("");
        verdict(&format!("{what}: {} {first_line:?}", got.0), ok);
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
    let environ = get("/environ?x=1")?;
    judge(
        "environ",
        environ.0 == 200 && environ.1.contains("query_string x=1\n"),
        &environ,
    );

    // Twenty long-polls park at once on one async thread and one worker,
    // and one post answers them all.
    let polls: Vec<_> = (0..CHECK_POLLS)
        .map(|_| {
            std::thread::spawn(move || {
                fetch(addr, &get_request("/poll?since=0")).map_err(|error| error.to_string())
            })
        })
        .collect();
    let all_parked = eventually(Duration::from_secs(5), || board.parked() == CHECK_POLLS);
    verdict(
        &format!(
            "{CHECK_POLLS} long-polls parked at once, holding no thread: {} parked",
            board.parked()
        ),
        all_parked,
    );
    let posted = post("/post", "text/plain", "hello board")?;
    judge("post", posted == (200, "published 1\n".into()), &posted);
    let mut woken = 0;
    for poll in polls {
        match poll.join() {
            Ok(Ok(polled)) if polled == (200, "1\nhello board\n".into()) => woken += 1,
            Ok(Ok(polled)) => judge("long-poll woken by the post", false, &polled),
            Ok(Err(error)) => verdict(&format!("long-poll woken by the post: {error}"), false),
            Err(_) => verdict("a long-poll's client thread panicked", false),
        }
    }
    verdict(
        &format!("long-polls woken by the post: {woken} of {CHECK_POLLS}"),
        woken == CHECK_POLLS,
    );
    let began = Instant::now();
    let timed_out = get("/poll?since=1&wait=1")?;
    let waited = began.elapsed();
    judge(
        &format!("long-poll timed out after {} ms", waited.as_millis()),
        timed_out.0 == 204 && waited >= Duration::from_secs(1),
        &timed_out,
    );

    // A client that leaves takes its parked poll with it: the server drops
    // the body, which unparks its waker, long before the poll's 25 s.
    let mut leaving = TcpStream::connect(addr)?;
    leaving.write_all(get_request("/poll?since=1").as_bytes())?;
    let parked = eventually(Duration::from_secs(5), || board.parked() == 1);
    drop(leaving);
    let dropped = parked && eventually(Duration::from_secs(5), || board.parked() == 0);
    verdict(
        "a long-poll whose client leaves is dropped at once",
        dropped,
    );

    server.shutdown(Duration::from_secs(2));
    if failures.get() > 0 {
        return Err(format!("{} checks failed", failures.get()).into());
    }
    println!("every route answered as expected");
    Ok(())
}
