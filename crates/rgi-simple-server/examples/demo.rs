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
//! curl -i http://127.0.0.1:8087/hints                  # 103 Early Hints, then the page
//! curl -i --raw -H 'TE: trailers' http://127.0.0.1:8087/report   # CSV, then trailers
//! curl -N http://127.0.0.1:8087/events                 # server-sent events (async)
//! curl -N http://127.0.0.1:8087/events-sync            # the same from a sync body
//! printf 'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 4f9f2cab\r\n\r\n' \
//!     | nc 127.0.0.1 8087                               # a checksum in the trailers
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
//! parked poll to see it dropped, then checks the RGI 1.2 routes below;
//! the whole check takes about five seconds, and at most about twenty
//! when the long-polls are broken.
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
//!
//! RGI 1.2's optional features, all of which this server declares:
//!
//! - **Lifespan:** [`Demo`] has a `startup`, which the server runs before it
//!   accepts anything and which shares a [`Started`] value with every
//!   request (`/environ` shows it), and a `shutdown`, which runs once after
//!   the last response of a graceful stop.
//! - **Early hints:** `/hints` sends `103 Early Hints` with a `Link` to its
//!   style sheet at once, then takes 300 ms to "render" the page.
//! - **Trailers:** `/report` streams CSV rows and then a trailer section
//!   with their count and a `Server-Timing` (ask with `TE: trailers`);
//!   `POST /upload` checks an `X-Checksum` sent in the head or, after a
//!   chunked body, in its trailers (an FNV-1a of the body, in hex).
//! - **Server-sent events:** `/events` is an `rgi_async::sse::EventStream`
//!   of clock ticks on the poller's timers, with keep-alive comments;
//!   `/events-sync` the same from an `rgi::sse::EventBody` on a worker.
//!   Both take `count`, `every_ms` and `keepalive_ms` in the query.
//!
//! `--check` asks for each of these too, over raw sockets: the 103 ahead of
//! the final head, the trailer section after the last chunk, a good and a
//! bad checksum in the trailers, each event arriving as it is produced,
//! the start-up state in a request, and the shut-down after the stop.
#![allow(clippy::print_stdout)]

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::fmt::Write as _;
use std::future::poll_fn;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use rgi::sse::{Event, EventBody, EventError};
use rgi::{Body, BoxError, Environ, ResponseHead, StartResponse, Startup};
use rgi_async::sse::EventStream;
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

/// What the start-up shares with every request: a typed value in the
/// server's description, read with `Environ::server_extension`.
#[derive(Clone, Debug)]
struct Started {
    at: SystemTime,
    requests: Arc<AtomicU64>,
}

/// The demo application with its lifespan hooks around the router.
struct Demo<A> {
    router: A,
    /// Set by the shut-down, for `--check` to see.
    stopped: Arc<AtomicBool>,
}

impl<A: AsyncApplication> AsyncApplication for Demo<A> {
    type Body = A::Body;

    /// Runs once, before the server accepts its first connection; a slow
    /// start-up (opening a pool, loading a model) would hold off traffic
    /// here, and an error would keep the server from serving at all.
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        startup.insert_state(Started {
            at: SystemTime::now(),
            requests: Arc::new(AtomicU64::new(0)),
        });
        Ok(())
    }

    /// Runs once, after the last response of a graceful stop.
    fn shutdown(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        println!("the demo application shut down");
    }

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        if let Some(started) = environ.server_extension::<Started>() {
            started.requests.fetch_add(1, Ordering::Relaxed);
        }
        self.router.call(environ, start)
    }
}

/// The `Link` `/hints` sends ahead of its page, and again in the page's
/// head for clients that saw no hints.
const STYLE_LINK: &str = "</style.css>; rel=preload; as=style";

/// `GET /hints`: a `103 Early Hints` at once, then a page that takes 300 ms
/// to render (a timer of the server's poller stands in for the work).
struct Hinted {
    render: WaitAnyFuture<'static>,
    hinted: bool,
    done: bool,
}

impl AsyncBody for Hinted {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if !this.hinted {
            this.hinted = true;
            let mut hints = HeaderMap::new();
            hints.insert(header::LINK, HeaderValue::from_static(STYLE_LINK));
            // Out now where the client can take it; dropped where it cannot
            // (HTTP/1.0), which changes nothing else.
            if let Err(error) = start.send_early_hints(hints) {
                return Poll::Ready(Some(Err(error.into())));
            }
        }
        match this.render.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(Ok(_)) => {}
        }
        this.done = true;
        let head = ResponseHead::new(StatusCode::OK)
            .with_header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )
            .with_header(header::LINK, HeaderValue::from_static(STYLE_LINK));
        let page = "<!doctype html><link rel=stylesheet href=/style.css><p>rendered\n";
        Poll::Ready(Some(
            start
                .start(head)
                .map(|()| Step::Chunk(Bytes::from_static(page.as_bytes())))
                .map_err(BoxError::from),
        ))
    }
}

/// A number from the query string.
fn query_param(environ: &Environ, name: &str) -> Option<u64> {
    environ
        .query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|n| n.parse::<u64>().ok())
}

/// What `/events` and `/events-sync` send: `count` ticks `every_ms` apart,
/// with a keep-alive comment after `keepalive_ms` without an event.
#[derive(Clone, Copy)]
struct Ticks {
    count: u64,
    every: Duration,
    keep_alive: Duration,
}

impl Ticks {
    fn of(environ: &Environ) -> Self {
        let millis = |name, default| {
            Duration::from_millis(
                query_param(environ, name)
                    .unwrap_or(default)
                    .clamp(10, 60_000),
            )
        };
        Ticks {
            count: query_param(environ, "count").unwrap_or(5).clamp(1, 100),
            every: millis("every_ms", 1000),
            keep_alive: millis("keepalive_ms", 15_000),
        }
    }

    /// The `n`th tick: an id to resume from, a type, and two lines of data.
    fn event(self, n: u64) -> Result<Event, EventError> {
        Ok(Event::new().id(n.to_string())?.event("tick")?.data(format!(
            "tick {n} of {}\nsent by rgi-simple-server",
            self.count
        )))
    }
}

/// The ticks of `/events` as a stream, paced by the poller's timers.
struct Clock {
    ticks: Ticks,
    readiness: Readiness,
    wait: Option<WaitAnyFuture<'static>>,
    next: u64,
}

impl Stream for Clock {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        if this.next > this.ticks.count {
            return Poll::Ready(None);
        }
        if this.next > 1 {
            let (readiness, every) = (&this.readiness, this.ticks.every);
            let wait = this.wait.get_or_insert_with(|| timer(readiness, every));
            match wait.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // No timer, no more ticks.
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) => this.wait = None,
            }
        }
        let n = this.next;
        this.next += 1;
        // A number and a fixed word hold no line break: never the fallback.
        Poll::Ready(Some(
            this.ticks
                .event(n)
                .unwrap_or_else(|_| Event::from_data(format!("tick {n}"))),
        ))
    }
}

/// Keep-alive ticks on the poller's timers: one every `every`.
struct KeepAlive {
    readiness: Readiness,
    every: Duration,
    wait: Option<WaitAnyFuture<'static>>,
}

impl Stream for KeepAlive {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let this = self.get_mut();
        let (readiness, every) = (&this.readiness, this.every);
        let wait = this.wait.get_or_insert_with(|| timer(readiness, every));
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

/// `GET /events`: server-sent events from an async body; each tick is one
/// chunk, written to the client as soon as it is produced.
fn events(environ: &Environ) -> Result<EventStream<Clock>, BoxError> {
    let ticks = Ticks::of(environ);
    let readiness = readiness(environ)?;
    let clock = Clock {
        ticks,
        readiness: readiness.clone(),
        wait: None,
        next: 1,
    };
    Ok(EventStream::new(clock).keep_alive(KeepAlive {
        readiness,
        every: ticks.keep_alive,
        wait: None,
    }))
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
                ("/hints", Method::GET | Method::HEAD) => {
                    return Ok(Box::pin(Hinted {
                        render: timer(&readiness(&environ)?, RENDER),
                        hinted: false,
                        done: false,
                    }));
                }
                ("/events", Method::GET) => return Ok(Box::pin(events(&environ)?)),
                ("/report", Method::GET | Method::HEAD) => {
                    start.start(report_head())?;
                    return Ok(Box::pin(Report::new()));
                }
                ("/form" | "/environ" | "/upload" | "/events-sync", _) => {
                    return Ok(Box::pin(pages.call(environ, start)?));
                }
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
                ("/" | "/stream" | "/hints" | "/report", _) => not_allowed("GET, HEAD"),
                ("/poll" | "/events", _) => not_allowed("GET"),
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
     GET  /environ         what the application sees of this request\n\
     GET  /hints           103 Early Hints, then the page 300 ms later\n\
     GET  /report          CSV rows, then trailers (send TE: trailers)\n\
     POST /upload          checks X-Checksum (FNV-1a, hex) from the head or the trailers\n\
     GET  /events          server-sent events (count, every_ms, keepalive_ms)\n\
     GET  /events-sync     the same from a synchronous body\n";

/// How long `/hints` takes to render its page.
const RENDER: Duration = Duration::from_millis(300);

/// The synchronous part: `/form` and `/environ`, run on a worker thread by
/// [`Threaded`].
fn pages() -> impl rgi::Application {
    rgi::from_fn(
        |environ: Environ, start: &mut StartResponse<'_>| -> Result<Box<dyn Body>, BoxError> {
            let method = environ.method().clone();
            let (head, body) = match (environ.raw_path(), method) {
                ("/form", Method::GET | Method::HEAD) => form_page(),
                ("/form", Method::POST) => form_echo(environ)?,
                ("/environ", Method::GET | Method::HEAD) => show_environ(&environ),
                ("/upload", Method::POST) => upload(environ)?,
                ("/events-sync", Method::GET) => {
                    start.start(rgi::sse::head())?;
                    return Ok(Box::new(sync_events(Ticks::of(&environ))));
                }
                ("/form", _) => not_allowed("GET, HEAD, POST"),
                ("/environ", _) => not_allowed("GET, HEAD"),
                ("/upload", _) => not_allowed("POST"),
                ("/events-sync", _) => not_allowed("GET"),
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            };
            start.start(head)?;
            Ok(Box::new(body))
        },
    )
}

/// The rows of `/report`.
const ROWS: [&str; 3] = ["fruit,count\n", "apple,3\n", "pear,5\n"];

fn report_head() -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
        .with_header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        )
        // Announced: the server frames the response so that they can follow.
        .with_header(
            header::TRAILER,
            HeaderValue::from_static("x-rows, server-timing"),
        )
}

/// `GET /report`: streams its rows, then says how many there were and how
/// long they took, in trailers given from its last poll. (Through
/// [`Threaded`] they would be lost: its relay from the worker carries the
/// head and the data, not trailers or early hints.)
struct Report {
    rows: std::slice::Iter<'static, &'static str>,
    count: usize,
    began: Instant,
}

impl Report {
    fn new() -> Self {
        Report {
            rows: ROWS.iter(),
            count: 0,
            began: Instant::now(),
        }
    }
}

impl AsyncBody for Report {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if let Some(row) = this.rows.next() {
            this.count += 1;
            return Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(row.as_bytes())))));
        }
        // The last poll: the trailers go in before the body reports its end.
        let mut fields = HeaderMap::new();
        fields.insert("x-rows", HeaderValue::from(this.count));
        let timing = format!("report;dur={}", this.began.elapsed().as_millis());
        if let Ok(value) = HeaderValue::try_from(timing) {
            fields.insert(HeaderName::from_static("server-timing"), value);
        }
        // Sent after the last chunk to a client that asked for them with
        // `TE: trailers`; dropped silently for any other.
        Poll::Ready(
            start
                .send_trailers(fields)
                .err()
                .map(|error| Err(error.into())),
        )
    }
}

/// FNV-1a (32 bits) of `bytes`, in hex: the demo's stand-in for a digest.
fn checksum(bytes: &[u8]) -> String {
    let sum = bytes.iter().fold(0x811c_9dc5_u32, |sum, &byte| {
        (sum ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    format!("{sum:08x}")
}

/// `POST /upload`: reads the body to its end, then checks the checksum the
/// client sent in its head or, after a chunked body, in its trailers.
fn upload(mut environ: Environ) -> Result<(ResponseHead, Bytes), BoxError> {
    let body = environ.input_mut().read_to_bytes(MAX_FORM)?;
    // Due now that the body has ended: `Some` or `None`, never "not yet".
    let trailers = environ.input().trailers()?.unwrap_or_default();
    let claimed = environ
        .headers()
        .get("x-checksum")
        .or_else(|| trailers.get("x-checksum"))
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let actual = checksum(&body);
    Ok(match claimed {
        Some(claimed) if claimed != actual => text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("checksum mismatch: {claimed} claimed, {actual} received\n"),
        ),
        Some(_) => text(
            StatusCode::OK,
            format!("stored {} bytes, checksum {actual} ok\n", body.len()),
        ),
        None => text(
            StatusCode::OK,
            format!("stored {} bytes, no checksum to check\n", body.len()),
        ),
    })
}

/// `GET /events-sync`: a producer thread sends the ticks through a channel;
/// the synchronous body writes each as it arrives, and a keep-alive when
/// none came for a while. The producer stops when the client leaves (the
/// body, and with it the receiver, is dropped).
fn sync_events(ticks: Ticks) -> EventBody {
    let (events, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for n in 1..=ticks.count {
            if n > 1 {
                std::thread::sleep(ticks.every);
            }
            let Ok(event) = ticks.event(n) else { return };
            if events.send(event).is_err() {
                return;
            }
        }
    });
    EventBody::new(receiver).keep_alive(ticks.keep_alive)
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
    let features = environ.features();
    let _ = writeln!(
        out,
        "features     request_trailers={} response_trailers={} early_hints={} lifespan={}",
        features.request_trailers(),
        features.response_trailers(),
        features.early_hints(),
        features.lifespan()
    );
    if let Some(started) = environ.server_extension::<Started>() {
        let up = started.at.elapsed().unwrap_or_default();
        let _ = writeln!(
            out,
            "start-up     {} ms ago; {} requests since",
            up.as_millis(),
            started.requests.load(Ordering::Relaxed)
        );
    }
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
        .serve_async(Demo {
            router: demo(board),
            stopped: Arc::new(AtomicBool::new(false)),
        })?;
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

/// One request on a fresh connection: every byte that came back, 1xx
/// responses and trailer sections included.
fn fetch_raw(addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

/// One response as it came: the status, the head's text, the body (de-chunked)
/// and the trailer section's text.
struct Answer {
    status: u16,
    head: String,
    body: String,
    trailers: String,
}

/// The next line of `raw` from `at` (without its CRLF), and where the
/// line after it starts.
fn line_at(raw: &[u8], at: usize) -> Result<(String, usize), Box<dyn Error>> {
    let rest = raw.get(at..).ok_or("past the end")?;
    let end = rest
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .ok_or("a line without CRLF")?;
    Ok((
        String::from_utf8_lossy(&rest[..end]).into_owned(),
        at + end + 2,
    ))
}

/// Every response in `raw` (a connection that closed after the last).
fn answers(raw: &[u8]) -> Result<Vec<Answer>, Box<dyn Error>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let mut head = String::new();
        loop {
            let (line, next) = line_at(raw, at)?;
            at = next;
            if line.is_empty() {
                break;
            }
            head.push_str(&line);
            head.push_str("\r\n");
        }
        let status: u16 = head.get(9..12).ok_or("no status")?.parse()?;
        let lower = head.to_ascii_lowercase();
        let mut answer = Answer {
            status,
            head,
            body: String::new(),
            trailers: String::new(),
        };
        if status < 200 {
            out.push(answer);
            continue;
        }
        if lower.contains("\r\ntransfer-encoding: chunked\r\n") {
            loop {
                let (size, next) = line_at(raw, at)?;
                let size = usize::from_str_radix(&size, 16)?;
                at = next;
                if size == 0 {
                    break;
                }
                let data = raw.get(at..at + size).ok_or("a short chunk")?;
                answer.body.push_str(&String::from_utf8_lossy(data));
                at += size + 2;
            }
            loop {
                let (line, next) = line_at(raw, at)?;
                at = next;
                if line.is_empty() {
                    break;
                }
                answer.trailers.push_str(&line);
                answer.trailers.push('\n');
            }
        } else {
            answer.body = String::from_utf8_lossy(&raw[at..]).into_owned();
            at = raw.len();
        }
        out.push(answer);
    }
    Ok(out)
}

/// What an event stream looked like as it arrived.
struct Watched {
    bytes: Vec<u8>,
    /// When the first event's frame was complete.
    first: Instant,
    /// When the stream ended.
    end: Instant,
}

/// Reads an event stream to its end, noting when its first event arrived.
fn watch_events(addr: SocketAddr, path: &str) -> Result<Watched, Box<dyn Error>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(get_request(path).as_bytes())?;
    let mut bytes = Vec::new();
    let mut first = None;
    let mut buf = [0u8; 4096];
    loop {
        let read = stream.read(&mut buf)?;
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..read]);
        if first.is_none()
            && contains(&bytes, b"id: 1\nevent: tick\n")
            && bytes.ends_with(b"\n\n\r\n")
        {
            first = Some(Instant::now());
        }
    }
    Ok(Watched {
        bytes,
        first: first.ok_or("the first event never arrived whole")?,
        end: Instant::now(),
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|window| window == needle)
}

/// `--check` of the RGI 1.2 routes: early hints, trailers both ways,
/// both event streams, the start-up state.
fn check_features(addr: SocketAddr, verdict: &dyn Fn(&str, bool)) -> Result<(), Box<dyn Error>> {
    let hinted = answers(&fetch_raw(addr, get_request("/hints").as_bytes())?)?;
    let statuses: Vec<u16> = hinted.iter().map(|answer| answer.status).collect();
    verdict(
        &format!("early hints: {statuses:?}, the 103 with the page's Link"),
        statuses == [103, 200]
            && hinted.iter().all(|answer| answer.head.contains(STYLE_LINK))
            && hinted
                .get(1)
                .is_some_and(|page| page.body.contains("rendered")),
    );

    let report = |te: &str| -> Result<Answer, Box<dyn Error>> {
        let request =
            format!("GET /report HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n{te}\r\n");
        answers(&fetch_raw(addr, request.as_bytes())?)?
            .pop()
            .ok_or_else(|| "no answer".into())
    };
    let with = report("te: trailers\r\n")?;
    verdict(
        &format!("response trailers after the rows: {:?}", with.trailers),
        with.body == ROWS.concat()
            && with.trailers.contains("x-rows: 3\n")
            && with.trailers.contains("server-timing: report;dur="),
    );
    let without = report("")?;
    verdict(
        "no trailers for a client without TE: trailers",
        without.body == ROWS.concat() && without.trailers.is_empty(),
    );

    let upload = |sum: &str| -> Result<Answer, Box<dyn Error>> {
        let request = format!(
            "POST /upload HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\
             transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: {sum}\r\n\r\n"
        );
        answers(&fetch_raw(addr, request.as_bytes())?)?
            .pop()
            .ok_or_else(|| "no answer".into())
    };
    let good = upload(&checksum(b"hello"))?;
    verdict(
        &format!(
            "request trailers: a good checksum: {} {:?}",
            good.status,
            good.body.trim_end()
        ),
        good.status == 200 && good.body.contains("ok"),
    );
    let bad = upload("00000000")?;
    verdict(
        &format!(
            "request trailers: a bad checksum: {} {:?}",
            bad.status,
            bad.body.trim_end()
        ),
        bad.status == 422,
    );

    for path in ["/events", "/events-sync"] {
        let every = Duration::from_millis(350);
        let watched = watch_events(
            addr,
            &format!(
                "{path}?count=3&every_ms={}&keepalive_ms=100",
                every.as_millis()
            ),
        )?;
        let ids = [1, 2, 3].map(|n| {
            contains(
                &watched.bytes,
                format!("id: {n}\nevent: tick\ndata: tick {n} of 3\n").as_bytes(),
            )
        });
        let ahead = watched.end.saturating_duration_since(watched.first);
        verdict(
            &format!(
                "{path}: three events, keep-alives between them, the first {} ms before the end",
                ahead.as_millis()
            ),
            ids == [true; 3]
                && contains(&watched.bytes, b"3\r\n:\n\n\r\n")
                && watched.bytes.ends_with(b"0\r\n\r\n")
                // Two intervals follow the first event: it was not held back.
                && ahead >= every,
        );
    }

    let (status, environ) = fetch(addr, &get_request("/environ"))?;
    verdict(
        "the start-up's state and the declared features reach a request",
        status == 200
            && environ.contains("\nstart-up     ")
            && environ.contains("early_hints=true lifespan=true"),
    );
    Ok(())
}

/// `--check`: every route against a server on a free port.
fn check() -> Result<(), Box<dyn Error>> {
    let board = Arc::new(Board::default());
    let stopped = Arc::new(AtomicBool::new(false));
    // One thread of each kind: the parked long-polls below must hold none.
    let server = Builder::new()
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .async_threads(1)
        .workers(1)
        .serve_async(Demo {
            router: demo(Arc::clone(&board)),
            stopped: Arc::clone(&stopped),
        })?;
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

    check_features(addr, &verdict)?;

    server.shutdown(Duration::from_secs(2));
    verdict(
        "the application's shut-down ran once the server had stopped",
        stopped.load(Ordering::SeqCst),
    );
    if failures.get() > 0 {
        return Err(format!("{} checks failed", failures.get()).into());
    }
    println!("every route answered as expected");
    Ok(())
}
