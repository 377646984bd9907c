//! The benchmark's hyper adapter behaves as an RGI server must: the body is
//! dropped exactly once before the next request, a lazily started head is
//! streamed, a declared length is never exceeded on the wire, failures
//! become a 500 before the head and an abort after it, and request bodies
//! reach both kinds of application.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, StatusCode};
use rgi::{Application, Body, BoxError, Environ, Input, ResponseHead, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Step};
use rgi_bench::adapter;

/// Serves one connection of `app` on a current-thread runtime, as the
/// benchmark's server does; returns its address and the served count.
fn start<F>(serve: F) -> (SocketAddr, JoinHandle<u64>)
where
    F: FnOnce(tokio::net::TcpStream, Arc<AtomicU64>) -> Pin<Box<dyn Future<Output = ()>>>
        + Send
        + 'static,
{
    let (sender, receiver) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let served = Arc::new(AtomicU64::new(0));
            let work = serve(stream, Arc::clone(&served));
            tokio::time::timeout(Duration::from_secs(20), work)
                .await
                .unwrap();
            served.load(Ordering::Relaxed)
        })
    });
    (
        receiver.recv_timeout(Duration::from_secs(10)).unwrap(),
        server,
    )
}

fn start_sync<A: Application>(app: A) -> (SocketAddr, JoinHandle<u64>)
where
    A::Body: Unpin,
{
    start(move |stream, served| {
        Box::pin(async move {
            let _ = adapter::serve_sync(Arc::new(app), stream, served).await;
        })
    })
}

fn start_async<A: AsyncApplication>(app: A) -> (SocketAddr, JoinHandle<u64>)
where
    A::Body: Unpin,
{
    start(move |stream, served| {
        Box::pin(async move {
            let _ = adapter::serve_async(Arc::new(app), stream, served).await;
        })
    })
}

/// A response read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
    /// Whether the body was complete by its framing (an abort cuts it).
    complete: bool,
}

impl Answer {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

fn read_answer(reader: &mut BufReader<TcpStream>, head_request: bool) -> Option<Answer> {
    let mut status_line = String::new();
    if reader.read_line(&mut status_line).ok()? == 0 {
        return None;
    }
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let mut fields = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end_matches("\r\n");
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        fields.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut answer = Answer {
        status,
        fields,
        body: Vec::new(),
        complete: true,
    };
    if head_request {
        return Some(answer);
    }
    if let Some(length) = answer.field("content-length") {
        let mut body = vec![0; length.parse().ok()?];
        answer.complete = reader.read_exact(&mut body).is_ok();
        answer.body = body;
    } else if answer.field("transfer-encoding") == Some("chunked") {
        answer.complete = false;
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let Ok(size) = usize::from_str_radix(size.trim_end(), 16) else {
                break;
            };
            let mut chunk = vec![0; size + 2];
            if reader.read_exact(&mut chunk).is_err() {
                break;
            }
            if size == 0 {
                answer.complete = true;
                break;
            }
            answer.body.extend_from_slice(&chunk[..size]);
        }
    }
    Some(answer)
}

/// Sends each request in turn on one connection and reads its answer.
fn exchange(addr: SocketAddr, requests: &[&str]) -> Vec<Option<Answer>> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let answers = requests
        .iter()
        .map(|request| {
            writer.write_all(request.as_bytes()).ok()?;
            read_answer(&mut reader, request.starts_with("HEAD "))
        })
        .collect();
    let _ = writer.shutdown(std::net::Shutdown::Write);
    answers
}

const GET: &str = "GET /x HTTP/1.1\r\nhost: t\r\n\r\n";

/// Counts calls and body drops; flags a call made while an earlier body
/// was still alive.
#[derive(Clone, Default)]
struct Ledger {
    calls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
    overlaps: Arc<AtomicUsize>,
}

impl Ledger {
    fn call(&self) {
        if self.calls.fetch_add(1, Ordering::SeqCst) != self.drops.load(Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A body that starts the response itself in its first pull (no
/// Content-Length), yields `chunks`, and records its drop.
struct Lazy {
    chunks: Vec<&'static str>,
    ledger: Ledger,
    /// What it claims as its size: lies are the application's fault, but
    /// a claim made before the head exists must not reach the wire.
    claimed: Option<u64>,
}

impl Drop for Lazy {
    fn drop(&mut self) {
        self.ledger.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Body for Lazy {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if !start.is_started() {
            if let Err(err) = start.start(StatusCode::OK) {
                return Some(Err(err.into()));
            }
        }
        (!self.chunks.is_empty()).then(|| Ok(Bytes::from_static(self.chunks.remove(0).as_bytes())))
    }

    fn size_hint(&self) -> Option<u64> {
        self.claimed
    }
}

impl AsyncBody for Lazy {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(
            self.get_mut()
                .next_chunk(start)
                .map(|chunk| chunk.map(Step::Chunk)),
        )
    }

    fn size_hint(&self) -> Option<u64> {
        self.claimed
    }
}

fn lazy(ledger: &Ledger, chunks: &[&'static str], claimed: Option<u64>) -> Lazy {
    ledger.call();
    Lazy {
        chunks: chunks.to_vec(),
        ledger: ledger.clone(),
        claimed,
    }
}

#[test]
fn sync_body_is_dropped_exactly_once_before_the_next_request_and_a_lazy_head_streams() {
    let ledger = Ledger::default();
    let app_ledger = ledger.clone();
    let (addr, server) = start_sync(rgi::from_fn(move |_environ: Environ, _start| {
        Ok(lazy(&app_ledger, &["one ", "two ", "three"], None))
    }));
    let answers = exchange(addr, &[GET, GET, GET]);
    for answer in &answers {
        let answer = answer.as_ref().unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.field("transfer-encoding"), Some("chunked"));
        assert_eq!(answer.body, b"one two three");
        assert!(answer.complete);
    }
    assert_eq!(server.join().unwrap(), 3);
    assert_eq!(ledger.calls.load(Ordering::SeqCst), 3);
    assert_eq!(ledger.drops.load(Ordering::SeqCst), 3);
    assert_eq!(ledger.overlaps.load(Ordering::SeqCst), 0);
}

#[test]
fn async_body_is_dropped_exactly_once_before_the_next_request_and_a_lazy_head_streams() {
    let ledger = Ledger::default();
    let app_ledger = ledger.clone();
    let (addr, server) = start_async(rgi_async::from_fn(move |_environ: Environ, _start| {
        Ok(lazy(&app_ledger, &["one ", "two ", "three"], None))
    }));
    let answers = exchange(
        addr,
        &[GET, GET, "HEAD /x HTTP/1.1\r\nhost: t\r\n\r\n", GET],
    );
    for answer in &answers {
        assert_eq!(answer.as_ref().unwrap().status, 200);
    }
    assert_eq!(answers[0].as_ref().unwrap().body, b"one two three");
    assert_eq!(answers[3].as_ref().unwrap().body, b"one two three");
    assert_eq!(server.join().unwrap(), 4);
    assert_eq!(ledger.drops.load(Ordering::SeqCst), 4);
    assert_eq!(ledger.overlaps.load(Ordering::SeqCst), 0);
}

/// D1 through the adapter: a body that claims an exact size but starts its
/// head lazily (without Content-Length), then yields more than it claimed.
/// The claim becomes the head's Content-Length (the state writes it) and is
/// enforced: the excess never reaches the wire, so the client cannot read
/// it as the next response, and the connection serves the next request.
#[test]
fn a_size_claimed_before_a_lazy_head_frames_it_and_the_excess_never_reaches_the_wire() {
    let ledger = Ledger::default();
    let app_ledger = ledger.clone();
    let (addr, server) = start_sync(rgi::from_fn(move |_environ: Environ, _start| {
        Ok(lazy(
            &app_ledger,
            &["abc", "HTTP/1.1 204 Smuggled\r\n\r\n"],
            Some(3),
        ))
    }));
    let answers = exchange(addr, &[GET, GET]);
    for answer in &answers {
        let answer = answer.as_ref().unwrap();
        assert_eq!((answer.status, &answer.body[..]), (200, &b"abc"[..]));
        assert_eq!(answer.field("content-length"), Some("3"));
        assert_eq!(answer.field("transfer-encoding"), None);
        assert!(answer.complete);
    }
    assert_eq!(server.join().unwrap(), 2);
    assert_eq!(ledger.drops.load(Ordering::SeqCst), 2);
}

/// The application's Content-Length is the framing; what the body offers
/// past it never reaches the wire and the connection stays usable (D4: the
/// adapter stops pulling at the declared length).
#[test]
fn a_declared_length_is_never_exceeded_on_the_wire() {
    let ledger = Ledger::default();
    let app_ledger = ledger.clone();
    let (addr, server) = start_async(rgi_async::from_fn(move |_environ: Environ, start| {
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(CONTENT_LENGTH, HeaderValue::from_static("5")),
        )?;
        Ok(lazy(
            &app_ledger,
            &["hello", "HTTP/1.1 204 Smuggled\r\n\r\n"],
            None,
        ))
    }));
    let answers = exchange(addr, &[GET, GET]);
    for answer in &answers {
        let answer = answer.as_ref().unwrap();
        assert_eq!((answer.status, &answer.body[..]), (200, &b"hello"[..]));
        assert_eq!(answer.field("content-length"), Some("5"));
    }
    assert_eq!(server.join().unwrap(), 2);
    assert_eq!(ledger.drops.load(Ordering::SeqCst), 2);
}

/// Fails in its second pull, after the head went out with the first.
struct FailsLate(u8);

impl Body for FailsLate {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.0 += 1;
        if self.0 == 1 {
            if let Err(err) = start.start(StatusCode::OK) {
                return Some(Err(err.into()));
            }
            return Some(Ok(Bytes::from_static(b"partial")));
        }
        Some(Err("the database went away".into()))
    }
}

#[test]
fn failures_are_a_500_before_the_head_and_an_abort_after_it() {
    let (addr, server) = start_sync(rgi::from_fn(|environ: Environ, _start| {
        if environ.path_info() == "/early" {
            return Err::<FailsLate, BoxError>("refused before any head".into());
        }
        Ok(FailsLate(0))
    }));
    let answers = exchange(addr, &["GET /early HTTP/1.1\r\nhost: t\r\n\r\n", GET, GET]);
    let early = answers[0].as_ref().expect("an answer to /early");
    assert_eq!((early.status, early.body.len()), (500, 0));
    // hyper may close before flushing what it buffered: either nothing or
    // an incomplete message, never a complete one.
    if let Some(late) = &answers[1] {
        assert_eq!(late.status, 200);
        assert!(
            !late.complete,
            "an aborted response must not look complete: {late:?}"
        );
    }
    assert!(
        answers[2].is_none(),
        "the connection must close after an abort"
    );
    server.join().unwrap();
}

/// Echoes the request body, read through the blocking face of its input.
fn sync_echo(mut environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
    let body = environ.input_mut().read_to_bytes(1024)?;
    start.start(StatusCode::OK)?;
    Ok(body)
}

/// Echoes the request body, polled through the input's non-blocking face.
struct AsyncEcho(Input);

impl AsyncBody for AsyncEcho {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if !start.is_started() {
            if let Err(err) = start.start(StatusCode::OK) {
                return Poll::Ready(Some(Err(err.into())));
            }
        }
        match self.get_mut().0.poll_chunk(cx, 4) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(Ok(chunk)) if chunk.is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(chunk)) => Poll::Ready(Some(Ok(Step::Chunk(chunk)))),
        }
    }
}

const POSTS: [&str; 4] = [
    "POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 11\r\n\r\nhello there",
    "POST /x HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    // An empty chunked body still has its decoded framing removed.
    "POST /x HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    GET,
];

#[test]
fn request_bodies_reach_both_kinds_of_application() {
    let (sync_addr, sync_server) = start_sync(rgi::from_fn(sync_echo));
    let (async_addr, async_server) = start_async(rgi_async::from_fn(
        |environ: Environ, _start: &mut StartResponse<'_>| Ok(AsyncEcho(environ.into_input())),
    ));
    for (addr, server) in [(sync_addr, sync_server), (async_addr, async_server)] {
        let answers = exchange(addr, &POSTS);
        let bodies: Vec<&[u8]> = answers
            .iter()
            .map(|answer| {
                let answer = answer.as_ref().unwrap();
                assert_eq!(answer.status, 200, "{answer:?}");
                &answer.body[..]
            })
            .collect();
        assert_eq!(bodies, [&b"hello there"[..], b"abcde", b"", b""]);
        assert_eq!(server.join().unwrap(), 4);
    }
}

/// An asynchronous application finds the server's capabilities (lent
/// server-wide, through `ServerInfo`) on every request; a synchronous one
/// finds none, which is how it knows it is not on an event loop.
#[test]
fn only_the_asynchronous_adapter_lends_capabilities_on_every_request() {
    fn answer(environ: &Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
        start.start(StatusCode::OK)?;
        Ok(match rgi_async::Capabilities::of(environ) {
            Some(_) => Bytes::from_static(b"capabilities"),
            None => Bytes::from_static(b"none"),
        })
    }
    let (sync_addr, sync_server) = start_sync(rgi::from_fn(|environ: Environ, start| {
        answer(&environ, start)
    }));
    let (async_addr, async_server) = start_async(rgi_async::from_fn(
        |environ: Environ, start: &mut StartResponse<'_>| answer(&environ, start),
    ));
    for (addr, server, expected) in [
        (sync_addr, sync_server, &b"none"[..]),
        (async_addr, async_server, &b"capabilities"[..]),
    ] {
        for answer in exchange(addr, &[GET, GET]) {
            assert_eq!(answer.unwrap().body, expected);
        }
        assert_eq!(server.join().unwrap(), 2);
    }
}

/// An asynchronous body whose head is not ready at the adapter's first
/// poll (made inside hyper's `call`, with no waker to keep): it is woken
/// from another thread later, and the response still arrives whole, once.
struct LateHead {
    ready: Arc<std::sync::atomic::AtomicBool>,
    armed: bool,
    done: bool,
}

impl AsyncBody for LateHead {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> std::task::Poll<Option<Result<Step, BoxError>>> {
        use std::task::Poll;
        if self.done {
            return Poll::Ready(None);
        }
        if !self.ready.load(Ordering::SeqCst) {
            if !self.armed {
                self.armed = true;
                let (ready, waker) = (Arc::clone(&self.ready), cx.waker().clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(30));
                    ready.store(true, Ordering::SeqCst);
                    waker.wake();
                });
            } else {
                // Any later poll may come with another waker: keep the
                // latest, as every body must.
                let (ready, waker) = (Arc::clone(&self.ready), cx.waker().clone());
                std::thread::spawn(move || {
                    while !ready.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    waker.wake();
                });
            }
            return Poll::Pending;
        }
        self.done = true;
        if let Err(err) = start.start(ResponseHead::new(StatusCode::OK)) {
            return Poll::Ready(Some(Err(err.into())));
        }
        Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"late")))))
    }
}

#[test]
fn an_async_head_not_ready_at_the_first_poll_is_answered_when_woken() {
    let (addr, server) = start_async(rgi_async::from_fn(|_environ: Environ, _start| {
        Ok(LateHead {
            ready: Arc::default(),
            armed: false,
            done: false,
        })
    }));
    let answers = exchange(addr, &[GET, GET]);
    for answer in &answers {
        let answer = answer.as_ref().unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, b"late");
        assert!(answer.complete);
    }
    assert_eq!(server.join().unwrap(), 2);
}
