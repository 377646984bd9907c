//! Server-sent events on `rgi-server`: a small notification hub. Every
//! `GET /events` subscribes to it and receives what is published, one
//! event per message, as an asynchronous `rgi_async::sse::EventStream`
//! with keep-alive comments paced by a tokio interval (the runtime the
//! server declares); `POST /publish` sends its body to every subscriber.
//! A stream ends when the server begins a graceful shutdown.
//!
//! ```text
//! cargo run -p rgi-server --example sse                  # 127.0.0.1:8080
//! curl -N http://127.0.0.1:8080/events                    # in one terminal
//! curl -d 'hello, subscribers' http://127.0.0.1:8080/publish   # in another
//! ```
//!
//! `cargo run -p rgi-server --example sse -- --check` starts the hub on a
//! free port with keep-alives every 100 ms, subscribes with a plain
//! `TcpStream`, publishes twice, and checks that each event reaches the
//! subscriber before the next is published (each is sent at once,
//! `[RGI-SSE-3]`), that a keep-alive comment follows, and that the stream
//! is well formed; it exits 0 when all of it holds, 1 otherwise, in well
//! under a second (at most about thirty when something is held back).
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::sse::{DEFAULT_KEEP_ALIVE, Event};
use rgi::{BoxError, Environ, Input, ResponseHead, StartResponse};
use rgi_async::sse::EventStream;
use rgi_async::{AsyncBody, Step};
use rgi_server::{Server, Shutdown};
use tokio::sync::mpsc;

/// The subscribers, and the id of the next event.
#[derive(Default)]
struct Hub {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Event>>>,
    next_id: AtomicU64,
}

impl Hub {
    fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.lock().push(sender);
        receiver
    }

    /// Sends `text` to every subscriber still there; returns how many.
    fn publish(&self, text: &str) -> usize {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let event = Event::new()
            .id(id.to_string())
            .and_then(|event| event.event("message"))
            .map(|event| event.data(text));
        let Ok(event) = event else {
            return 0;
        };
        let mut subscribers = self.lock();
        // A subscriber whose stream was dropped (its client left) is gone.
        subscribers.retain(|subscriber| subscriber.send(event.clone()).is_ok());
        subscribers.len()
    }

    fn subscribers(&self) -> usize {
        let mut subscribers = self.lock();
        subscribers.retain(|subscriber| !subscriber.is_closed());
        subscribers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Event>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One subscription as the events of an [`EventStream`]: it ends when the
/// server begins to shut down, so that an open stream does not hold the
/// shutdown for its whole grace period.
struct Subscription {
    events: mpsc::UnboundedReceiver<Event>,
    stopping: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Stream for Subscription {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        if let Some(stopping) = this.stopping.as_mut() {
            if stopping.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        this.events.poll_recv(cx)
    }
}

/// The keep-alive ticker: a tokio interval, whose first tick comes one
/// period after the subscription.
struct Ticks(tokio::time::Interval);

impl Ticks {
    fn every(period: Duration) -> Self {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks(interval)
    }
}

impl Stream for Ticks {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.get_mut().0.poll_tick(cx).map(|_| Some(()))
    }
}

/// `POST /publish`: reads the message through the input's non-blocking
/// face, then publishes it.
struct Publish {
    input: Input,
    message: Vec<u8>,
    hub: Arc<Hub>,
}

/// The largest message the hub takes.
const MAX_MESSAGE: usize = 16 * 1024;

impl AsyncBody for Publish {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if start.is_started() {
            return Poll::Ready(None);
        }
        loop {
            match this.input.poll_chunk(cx, MAX_MESSAGE) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                Poll::Ready(Ok(chunk)) => {
                    if this.message.len() + chunk.len() > MAX_MESSAGE {
                        return Poll::Ready(Some(Err("the message is too long".into())));
                    }
                    this.message.extend_from_slice(&chunk);
                }
            }
        }
        let text = String::from_utf8_lossy(&this.message);
        let reached = this.hub.publish(&text);
        Poll::Ready(Some(
            start
                .start(text_head(StatusCode::OK))
                .map(|()| Step::Chunk(Bytes::from(format!("published to {reached}\n"))))
                .map_err(Into::into),
        ))
    }
}

fn text_head(status: StatusCode) -> ResponseHead {
    ResponseHead::new(status).with_header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    )
}

type Boxed = Pin<Box<dyn AsyncBody + Send>>;

/// The hub's application; `keep_alive` paces the comments of idle streams.
fn hub_app(hub: Arc<Hub>, keep_alive: Duration) -> impl rgi_async::AsyncApplication<Body = Boxed> {
    rgi_async::from_fn(move |environ: Environ, start: &mut StartResponse<'_>| {
        let route = (environ.method().clone(), environ.uri().path().to_owned());
        let body: Boxed = match (route.0, route.1.as_str()) {
            (Method::GET, "/events") => {
                let stopping = Shutdown::of(&environ).map(|shutdown| {
                    Box::pin(shutdown.triggered()) as Pin<Box<dyn Future<Output = ()> + Send>>
                });
                let subscription = Subscription {
                    events: hub.subscribe(),
                    stopping,
                };
                // Starts the response with rgi::sse::head() at its first poll.
                Box::pin(EventStream::new(subscription).keep_alive(Ticks::every(keep_alive)))
            }
            (Method::POST, "/publish") => Box::pin(Publish {
                input: environ.into_input(),
                message: Vec::new(),
                hub: Arc::clone(&hub),
            }),
            (_, "/") => {
                start.start(text_head(StatusCode::OK))?;
                Box::pin(Bytes::from_static(
                    b"GET /events: the event stream\nPOST /publish: send the body to every subscriber\n",
                ))
            }
            _ => {
                start.start(text_head(StatusCode::NOT_FOUND))?;
                Box::pin(Bytes::from_static(b"not found\n"))
            }
        };
        Ok(body)
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let argument = std::env::args().nth(1);
    if argument.as_deref() == Some("--check") {
        return check();
    }
    let address: SocketAddr = argument
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()?;
    let server = Server::builder()
        .bind(address)
        .handle_signals(true)
        .serve_async(hub_app(Arc::new(Hub::default()), DEFAULT_KEEP_ALIVE))?;
    println!("event hub on http://{address}/events (Ctrl-C to stop)");
    server.wait();
    Ok(())
}

/// Reads from `stream` into `seen` until what came after its first `from`
/// bytes contains `wanted`, at most `within`.
fn read_until(
    stream: &mut TcpStream,
    seen: &mut Vec<u8>,
    from: usize,
    wanted: &str,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while !String::from_utf8_lossy(seen.get(from..).unwrap_or_default()).contains(wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{wanted:?} did not arrive in {within:?}"));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|error| error.to_string())?;
        let mut buffer = [0_u8; 1024];
        let read = stream
            .read(&mut buffer)
            .map_err(|error| format!("reading for {wanted:?}: {error}"))?;
        if read == 0 {
            return Err(format!("the stream ended before {wanted:?}"));
        }
        seen.extend_from_slice(&buffer[..read]);
    }
    Ok(())
}

/// One `POST /publish` on its own connection; the answer's
/// `published to …` line (its content, chunked).
fn publish(address: SocketAddr, message: &str) -> Result<String, Box<dyn Error>> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST /publish HTTP/1.1\r\nhost: hub\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{message}",
        message.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let line = answer
        .lines()
        .find(|line| line.starts_with("published to"))
        .ok_or_else(|| format!("no answer from the hub: {answer:?}"))?;
    Ok(line.to_owned())
}

/// `--check`: subscribe, publish, and watch each event arrive on its own.
fn check() -> Result<(), Box<dyn Error>> {
    let hub = Arc::new(Hub::default());
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .serve_async(hub_app(Arc::clone(&hub), Duration::from_millis(100)))?;
    let address = server.local_addr().ok_or("no TCP address")?;
    let within = Duration::from_secs(10);
    let mut failures = 0;
    let mut verdict = |what: &str, ok: bool| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failures += 1;
        }
    };

    let mut subscriber = TcpStream::connect(address)?;
    subscriber.write_all(b"GET /events HTTP/1.1\r\nhost: hub\r\n\r\n")?;
    // The head goes out with the first event or keep-alive comment.
    let mut seen = Vec::new();
    read_until(&mut subscriber, &mut seen, 0, "\r\n\r\n", within)?;
    let head = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    verdict(
        "the stream's head: 200, text/event-stream, no-cache, chunked",
        head.starts_with("http/1.1 200")
            && head.contains("content-type: text/event-stream")
            && head.contains("cache-control: no-cache")
            && head.contains("transfer-encoding: chunked"),
    );
    verdict("one subscriber", hub.subscribers() == 1);

    // Each message is published only once the one before it has reached
    // the subscriber: an event the server held back would never arrive.
    let messages = [
        ("first", "id: 1\nevent: message\ndata: first\n\n"),
        (
            "second,\non two lines",
            "id: 2\nevent: message\ndata: second,\ndata: on two lines\n\n",
        ),
    ];
    for (message, frame) in messages {
        let published = publish(address, message)?;
        verdict(
            &format!("{message:?}: {published}"),
            published == "published to 1",
        );
        let from = seen.len();
        let arrived = read_until(&mut subscriber, &mut seen, from, frame, within);
        verdict(
            &format!("{message:?} arrived as its own event: {arrived:?}"),
            arrived.is_ok(),
        );
    }

    let from = seen.len();
    let kept_alive = read_until(&mut subscriber, &mut seen, from, ":\n\n", within);
    verdict(
        &format!("a keep-alive comment while idle: {kept_alive:?}"),
        kept_alive.is_ok(),
    );

    // The client leaves: its stream is dropped, and it is no subscriber
    // any more once the hub notices.
    drop(subscriber);
    let began = Instant::now();
    while hub.subscribers() > 0 && began.elapsed() < within {
        std::thread::sleep(Duration::from_millis(10));
    }
    verdict("a client that leaves unsubscribes", hub.subscribers() == 0);

    server.shutdown();
    if failures > 0 {
        return Err(format!("{failures} checks failed").into());
    }
    println!("every event went out on its own");
    Ok(())
}
