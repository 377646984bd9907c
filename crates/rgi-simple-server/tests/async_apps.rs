//! Asynchronous applications on real sockets, with no async runtime:
//! `Builder::serve_async`, its capabilities, readiness, offload, the switch
//! and after-response tasks.
// A failed unwrap in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{BoxError, Environ, Input, ResponseHead, StartResponse};
use rgi_async::{
    AsyncApplication, AsyncBody, Capabilities, Interest, OffloadError, OffloadFuture,
    ReadinessError, Runtime, RuntimeError, Step, SyncSwitch, WaitAnyOutcome, WaitOutcome,
};
use rgi_simple_server::{Builder, Server};

use common::{PATIENCE, connect, exchange, read_to_close, responses};

type Stepped = Poll<Option<Result<Step, BoxError>>>;

/// A body made of a closure, so each test writes only its steps.
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

fn body<F>(f: F) -> PollBody<F>
where
    F: FnMut(&mut Context<'_>, &mut StartResponse<'_>) -> Stepped + Send + Unpin,
{
    PollBody(f)
}

/// Counts its drops: moved into a body's closure, it drops with the body.
struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn start_async<A: AsyncApplication>(app: A) -> Server {
    Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .async_threads(2)
        .serve_async(app)
        .unwrap()
}

fn ok(start: &mut StartResponse<'_>) -> Result<(), BoxError> {
    start.start(ResponseHead::new(StatusCode::OK))?;
    Ok(())
}

fn chunk(text: impl Into<Bytes>) -> Stepped {
    Poll::Ready(Some(Ok(Step::Chunk(text.into()))))
}

/// Waits until `done` holds, for at most `PATIENCE`.
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

fn get(addr: SocketAddr, path: &str) -> common::Response {
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let (bytes, closed) = exchange(addr, request.as_bytes());
    assert!(
        closed,
        "the server closed after a connection: close request"
    );
    responses(&bytes, &[]).remove(0)
}

#[test]
fn hello_gets_a_content_length_and_keeps_the_connection() {
    let server = start_async(rgi_async::from_fn(|environ: Environ, start| {
        ok(start)?;
        Ok(Bytes::from(format!("hello {}", environ.raw_path())))
    }));
    let addr = server.tcp_addr().unwrap();
    // Two pipelined requests on one connection, then a third that closes.
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (bytes, closed) = read_to_close(&mut stream);
    assert!(closed);
    let all = responses(&bytes, &[]);
    assert_eq!(all.len(), 3);
    for (r, path) in all.iter().zip(["/a", "/b", "/c"]) {
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("hello {path}").as_bytes());
        assert_eq!(r.header("content-length"), Some("8"));
    }
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_pending_body_is_woken_from_another_thread_without_busy_polling() {
    let polls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&polls);
    let server = start_async(rgi_async::from_fn(move |_environ, _start| {
        let polls = Arc::clone(&seen);
        let fired = Arc::new(AtomicBool::new(false));
        let mut spawned = false;
        Ok(body(move |cx, start| {
            polls.fetch_add(1, Ordering::SeqCst);
            if fired.load(Ordering::SeqCst) {
                if !start.is_started() {
                    ok(start)?;
                    return chunk("woken");
                }
                return Poll::Ready(None);
            }
            if !spawned {
                spawned = true;
                let waker = cx.waker().clone();
                let fired = Arc::clone(&fired);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(200));
                    fired.store(true, Ordering::SeqCst);
                    waker.wake();
                });
            }
            Poll::Pending
        }))
    }));
    let r = get(server.tcp_addr().unwrap(), "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"woken");
    // One poll before the wake-up, two after (the chunk, the end): a body
    // that stays pending 200 ms is not polled in a loop (`[RGIA-POLL-4]`).
    let count = polls.load(Ordering::SeqCst);
    assert!(count <= 4, "polled {count} times");
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn lazy_head_streams_chunked_and_head_requests_send_no_body() {
    let server = start_async(rgi_async::from_fn(|_environ, _start| {
        let mut left = 3u32;
        Ok(body(move |cx, start| {
            if !start.is_started() {
                ok(start)?;
                // An empty chunk is a yield point: nothing on the wire.
                cx.waker().wake_by_ref();
                return chunk(Bytes::new());
            }
            if left == 0 {
                return Poll::Ready(None);
            }
            left -= 1;
            chunk(format!("{left};"))
        }))
    }));
    let addr = server.tcp_addr().unwrap();
    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body, b"2;1;0;");
    let (bytes, _) = exchange(
        addr,
        b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let r = &responses(&bytes, &[true])[0];
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn errors_and_panics_become_500_or_an_abnormal_end_and_bodies_drop_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&drops);
    let server = start_async(rgi_async::from_fn(move |environ: Environ, _start| {
        let guard = DropGuard(Arc::clone(&counted));
        let path = environ.raw_path().to_owned();
        Ok(body(move |_cx, start| {
            let _ = &guard;
            match path.as_str() {
                "/error" => Poll::Ready(Some(Err("no luck".into()))),
                "/panic" => panic!("the body panicked"),
                "/late" => {
                    if start.is_started() {
                        return Poll::Ready(Some(Err("after the head".into())));
                    }
                    ok(start)?;
                    chunk("partial")
                }
                _ => {
                    if start.is_started() {
                        return Poll::Ready(None);
                    }
                    ok(start)?;
                    chunk("fine")
                }
            }
        }))
    }));
    let addr = server.tcp_addr().unwrap();
    assert_eq!(get(addr, "/error").status, 500);
    assert_eq!(get(addr, "/panic").status, 500);
    // The head went out: the response ends without its last chunk.
    let (bytes, closed) = exchange(
        addr,
        b"GET /late HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(closed);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("partial"));
    assert!(!text.ends_with("0\r\n\r\n"), "{text}");
    let r = get(addr, "/fine");
    assert_eq!((r.status, &r.body[..]), (200, &b"fine"[..]));
    assert!(eventually(|| drops.load(Ordering::SeqCst) == 4));
    server.shutdown(Duration::from_secs(5));
    assert_eq!(drops.load(Ordering::SeqCst), 4);
}

#[test]
fn an_error_from_call_is_replaced_by_500() {
    let server = start_async(rgi_async::from_fn(|_environ, start| {
        // A stored head is replaced by the error head.
        start.start(ResponseHead::new(StatusCode::OK))?;
        Err::<rgi::Empty, BoxError>("refused".into())
    }));
    let r = get(server.tcp_addr().unwrap(), "/");
    assert_eq!(r.status, 500);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_parked_body_is_dropped_when_the_client_goes_away() {
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&drops);
    let server = start_async(rgi_async::from_fn(move |_environ, _start| {
        let guard = DropGuard(Arc::clone(&counted));
        // Never woken: only the disconnect can end it.
        Ok(body(move |_cx, _start| {
            let _ = &guard;
            Poll::Pending
        }))
    }));
    let addr = server.tcp_addr().unwrap();
    let mut stream = connect(addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(stream);
    assert!(
        eventually(|| drops.load(Ordering::SeqCst) == 1),
        "the parked body was not dropped after the client left"
    );
    server.shutdown(Duration::from_secs(5));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_slow_client_holds_the_body_back_and_loses_nothing() {
    const CHUNK: usize = 16 * 1024;
    const TOTAL: usize = 64 * 1024 * 1024;
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&produced);
    let server = start_async(rgi_async::from_fn(move |_environ, start| {
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(http::header::CONTENT_LENGTH, TOTAL.into()),
        )?;
        let counter = Arc::clone(&counter);
        Ok(body(move |_cx, _start| {
            let done = counter.load(Ordering::SeqCst);
            if done >= TOTAL {
                return Poll::Ready(None);
            }
            counter.fetch_add(CHUNK, Ordering::SeqCst);
            chunk(vec![b'x'; CHUNK])
        }))
    }));
    let mut stream = connect(server.tcp_addr().unwrap());
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    // The client reads nothing: production stops once the kernel's buffers
    // and the server's bound are full (`[RGIA-OUT-2]`).
    let mut last = usize::MAX;
    assert!(eventually(|| {
        std::thread::sleep(Duration::from_millis(150));
        let now = produced.load(Ordering::SeqCst);
        let settled = now == last;
        last = now;
        settled
    }));
    let held = produced.load(Ordering::SeqCst);
    assert!(
        held < TOTAL / 2,
        "produced {held} bytes for a client that reads nothing"
    );
    let mut received = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(error) => panic!("read failed after {received} bytes: {error}"),
        }
    }
    assert!(received > TOTAL, "received {received}");
    assert_eq!(produced.load(Ordering::SeqCst), TOTAL);
    server.shutdown(Duration::from_secs(5));
}

/// Reads the request body through the non-blocking face and echoes it.
fn echo_app() -> impl AsyncApplication {
    rgi_async::from_fn(|environ: Environ, _start| {
        let mut input = environ.into_input();
        assert!(input.is_async());
        let mut got = Vec::new();
        Ok(body(move |cx, start| {
            if start.is_started() {
                return Poll::Ready(None);
            }
            loop {
                match input.poll_chunk(cx, 7) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(piece)) if piece.is_empty() => break,
                    Poll::Ready(Ok(piece)) => got.extend_from_slice(&piece),
                    Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                }
            }
            ok(start)?;
            chunk(std::mem::take(&mut got))
        }))
    })
}

#[test]
fn the_request_body_is_read_without_blocking_after_100_continue() {
    let server = start_async(echo_app());
    let addr = server.tcp_addr().unwrap();
    let mut stream = connect(addr);
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"abcdefghijklm").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stream.write_all(b"nopqrstuvwxyz").unwrap();
    let (bytes, closed) = read_to_close(&mut stream);
    assert!(closed);
    let r = &responses(&bytes, &[])[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"abcdefghijklmnopqrstuvwxyz");

    // Chunked, then a second request on the same connection.
    let mut stream = connect(addr);
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye")
        .unwrap();
    let (bytes, closed) = read_to_close(&mut stream);
    assert!(closed);
    let all = responses(&bytes, &[]);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].body, b"hello world");
    assert_eq!(all[1].body, b"bye");
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn no_100_continue_when_the_body_is_never_asked_for() {
    let server = start_async(rgi_async::from_fn(|_environ, start| {
        ok(start)?;
        Ok(Bytes::from_static(b"not reading"))
    }));
    let mut stream = connect(server.tcp_addr().unwrap());
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let (bytes, _) = read_to_close(&mut stream);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("100 Continue"));
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn capabilities_are_declared_and_no_runtime_is_claimed() {
    let server = start_async(rgi_async::from_fn(|environ: Environ, start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let report = format!(
            "readiness={} after={} upgrade={} runtime={:?} spec={}",
            caps.readiness().is_some(),
            caps.after_response().is_some(),
            caps.upgrade().is_some(),
            caps.runtime(),
            caps.spec_version(),
        );
        assert_eq!(
            caps.require_runtime(Runtime::Tokio),
            Err(RuntimeError::NotDeclared {
                wanted: Runtime::Tokio
            })
        );
        if environ.raw_path() == "/tokio" {
            // An application that needs a runtime refuses (`[RGIA-RT-4]`).
            caps.require_runtime(Runtime::Tokio)?;
        }
        ok(start)?;
        Ok(Bytes::from(report))
    }));
    let addr = server.tcp_addr().unwrap();
    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        format!(
            "readiness=true after=true upgrade=false runtime=None spec={}",
            rgi_async::SPEC_VERSION
        )
    );
    assert_eq!(get(addr, "/tokio").status, 500);
    server.shutdown(Duration::from_secs(5));
}

/// A body that awaits one offloaded job and answers with its result.
fn offloaded(job: OffloadFuture<String>) -> impl AsyncBody {
    let mut job = Some(job);
    body(move |cx, start| {
        let Some(future) = job.as_mut() else {
            return Poll::Ready(None);
        };
        let Poll::Ready(result) = Pin::new(future).poll(cx) else {
            return Poll::Pending;
        };
        job = None;
        ok(start)?;
        chunk(result.unwrap_or_else(|error| format!("error: {error}")))
    })
}

#[test]
fn offload_runs_on_a_worker_and_a_full_queue_is_refused() {
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate_rx));
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let server = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .async_threads(1)
        .blocking_queue(1)
        .serve_async(rgi_async::from_fn(move |environ: Environ, _start| {
            let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
            let offload = caps.offload().clone();
            match environ.raw_path() {
                "/hold" => {
                    let gate = Arc::clone(&gate);
                    let started = started_tx.lock().unwrap().clone();
                    Ok(offloaded(offload.run(move || {
                        let _ = started.send(());
                        let _ = gate.lock().unwrap().recv_timeout(PATIENCE);
                        std::thread::current().name().unwrap_or("").to_owned()
                    }))
                    .boxed())
                }
                _ => {
                    // The one worker is busy: one job queues, the next is
                    // refused at once (`[RGIA-OFFLOAD-2]`).
                    let queued = offload.run(|| String::from("queued ran"));
                    let refused = offload.run(|| String::from("must not run"));
                    let mut refused = Some(refused);
                    let mut queued = Some(queued);
                    Ok(body(move |cx, start| {
                        if let Some(future) = refused.as_mut() {
                            let Poll::Ready(result) = Pin::new(future).poll(cx) else {
                                return Poll::Pending;
                            };
                            refused = None;
                            assert!(matches!(
                                result,
                                Err(OffloadError::Saturated { capacity: 1 })
                            ));
                            ok(start)?;
                            return chunk("saturated;");
                        }
                        // Dropping the queued job's future skips it.
                        drop(queued.take());
                        Poll::Ready(None)
                    })
                    .boxed())
                }
            }
        }))
        .unwrap();
    let addr = server.tcp_addr().unwrap();
    let holder = std::thread::spawn(move || get(addr, "/hold"));
    started_rx.recv_timeout(PATIENCE).unwrap();
    let r = get(addr, "/fill");
    assert_eq!(r.body, b"saturated;");
    gate_tx.send(()).unwrap();
    let held = holder.join().unwrap();
    assert_eq!(held.status, 200);
    assert!(
        held.body.starts_with(b"rgi-simple-worker"),
        "{}",
        String::from_utf8_lossy(&held.body)
    );
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_blocking_switch_continuation_does_not_starve_async_requests() {
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate_rx));
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&drops);
    let server = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .async_threads(1)
        .serve_async(rgi_async::from_fn(move |environ: Environ, _start| {
            if environ.raw_path() != "/switch" {
                ok(_start)?;
                return Ok(Bytes::from_static(b"async still answers").boxed());
            }
            let mut input: Option<Input> = Some(environ.into_input());
            let guard = DropGuard(Arc::clone(&counted));
            let gate = Arc::clone(&gate);
            let started = started_tx.lock().unwrap().clone();
            let mut first = Vec::new();
            Ok(PinnedBody::new(body(move |cx, start| {
                let _ = &guard;
                let Some(reading) = input.as_mut() else {
                    return Poll::Ready(None);
                };
                // Five bytes without blocking, then a chunk, then the switch.
                while !start.is_started() && first.len() < 5 {
                    match reading.poll_chunk(cx, 5 - first.len()) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(piece)) if piece.is_empty() => break,
                        Poll::Ready(Ok(piece)) => first.extend_from_slice(&piece),
                        Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                    }
                }
                if !start.is_started() {
                    ok(start)?;
                    return chunk(std::mem::take(&mut first));
                }
                let mut input = input.take().ok_or("switched twice")?;
                let gate = Arc::clone(&gate);
                let started = started.clone();
                Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(
                    move |start: &mut StartResponse<'_>| {
                        assert!(start.is_started(), "the head stays sent");
                        let _ = started.send(());
                        let _ = gate.lock().unwrap().recv_timeout(PATIENCE);
                        // The blocking face: the rest of the body.
                        let rest = input.read_to_bytes(1024)?;
                        let name = std::thread::current().name().unwrap_or("").to_owned();
                        Ok::<_, BoxError>(Bytes::from(format!(
                            "|{}|{name}",
                            String::from_utf8_lossy(&rest)
                        )))
                    },
                )))))
            }))
            .boxed())
        }))
        .unwrap();
    let addr = server.tcp_addr().unwrap();
    let switcher = std::thread::spawn(move || {
        let (bytes, closed) = exchange(
            addr,
            b"POST /switch HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
        );
        assert!(closed);
        responses(&bytes, &[]).remove(0)
    });
    // The only worker now blocks in the continuation.
    started_rx.recv_timeout(PATIENCE).unwrap();
    let r = get(addr, "/other");
    assert_eq!((r.status, &r.body[..]), (200, &b"async still answers"[..]));
    gate_tx.send(()).unwrap();
    let switched = switcher.join().unwrap();
    assert_eq!(switched.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&switched.body),
        "hello| world|rgi-simple-worker-0"
    );
    // Dropped before the continuation ran, once.
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    server.shutdown(Duration::from_secs(5));
}

/// Two kinds of body behind one type, for an application that picks.
struct PinnedBody(Pin<Box<dyn AsyncBody>>);

impl PinnedBody {
    fn new(body: impl AsyncBody + 'static) -> Self {
        Self(Box::pin(body))
    }
}

trait Boxed {
    fn boxed(self) -> PinnedBody;
}

impl<B: AsyncBody + 'static> Boxed for B {
    fn boxed(self) -> PinnedBody {
        PinnedBody::new(self)
    }
}

impl AsyncBody for PinnedBody {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Stepped {
        self.0.as_mut().poll_step(cx, start)
    }
}

#[test]
fn after_response_tasks_run_once_the_response_is_complete() {
    let (tx, rx) = mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    let server = start_async(rgi_async::from_fn(move |environ: Environ, start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let after = caps.after_response().ok_or("no after-response tasks")?;
        let tx = tx.lock().unwrap().clone();
        after.spawn(move || {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            let _ = tx.send(name);
        })?;
        ok(start)?;
        Ok(Bytes::from_static(b"done"))
    }));
    let r = get(server.tcp_addr().unwrap(), "/");
    assert_eq!(r.body, b"done");
    let ran_on = rx.recv_timeout(PATIENCE).unwrap();
    assert!(ran_on.starts_with("rgi-simple-worker"), "{ran_on}");
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn readiness_waits_through_the_poller_with_timeouts() {
    let server = start_async(rgi_async::from_fn(move |environ: Environ, _start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let readiness = caps.readiness().ok_or("no readiness")?.clone();
        let (mine, mut theirs) = UnixStream::pair()?;
        mine.set_nonblocking(true)?;
        let file = std::fs::File::open("/proc/self/exe")?;
        let mut steps = Box::pin(async move {
            let mut log = String::new();
            // A regular file cannot be polled: refused at once.
            match readiness.wait(&file, Interest::READABLE, None).await {
                Err(ReadinessError::Unpollable { .. }) => log.push_str("unpollable;"),
                other => log.push_str(&format!("unexpected {other:?};")),
            }
            // An empty wait_any is a timer.
            match readiness
                .wait_any(Vec::new(), Some(Duration::from_millis(30)))
                .await
            {
                Ok(WaitAnyOutcome::TimedOut) => log.push_str("timer;"),
                other => log.push_str(&format!("unexpected {other:?};")),
            }
            match readiness
                .wait(&mine, Interest::READABLE, Some(Duration::from_millis(30)))
                .await
            {
                Ok(WaitOutcome::TimedOut) => log.push_str("quiet;"),
                other => log.push_str(&format!("unexpected {other:?};")),
            }
            // Writable at once; a zero timeout answers at the first poll.
            match readiness
                .wait(&mine, Interest::WRITABLE, Some(Duration::ZERO))
                .await
            {
                Ok(WaitOutcome::Ready(ready)) if ready.is_writable() => log.push_str("writable;"),
                other => log.push_str(&format!("unexpected {other:?};")),
            }
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                let _ = theirs.write_all(b"x");
                std::thread::sleep(PATIENCE);
            });
            match readiness
                .wait(&mine, Interest::READABLE, Some(PATIENCE))
                .await
            {
                Ok(WaitOutcome::Ready(ready)) if ready.is_readable() => log.push_str("readable;"),
                other => log.push_str(&format!("unexpected {other:?};")),
            }
            // Level-triggered: the byte is still unread, so a new wait on
            // the same descriptor is ready again (`[RGIA-READY-22]`).
            match readiness
                .wait(&mine, Interest::READABLE, Some(PATIENCE))
                .await
            {
                Ok(WaitOutcome::Ready(ready)) if ready.is_readable() => log.push_str("again;"),
                other => log.push_str(&format!("unexpected {other:?};")),
            }
            log
        });
        Ok(body(move |cx, start| {
            if start.is_started() {
                return Poll::Ready(None);
            }
            let Poll::Ready(log) = steps.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            ok(start)?;
            chunk(log)
        }))
    }));
    let r = get(server.tcp_addr().unwrap(), "/");
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "unpollable;timer;quiet;writable;readable;again;"
    );
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn an_upgrade_hands_over_the_raw_connection() {
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&drops);
    let server = start_async(rgi_async::from_fn(move |environ: Environ, _start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let upgrade = caps.upgrade().ok_or("no upgrade offered")?.clone();
        let upgraded = upgrade.accept(http::HeaderMap::new())?;
        let guard = DropGuard(Arc::clone(&counted));
        // Echo every byte until the client ends its side, then close ours.
        let mut echo = Box::pin(async move {
            let mut stream = upgraded.await?;
            let mut buf = [0u8; 1024];
            loop {
                let n = std::future::poll_fn(|cx| stream.poll_read(cx, &mut buf)).await?;
                if n == 0 {
                    break;
                }
                let mut at = 0;
                while at < n {
                    at += std::future::poll_fn(|cx| stream.poll_write(cx, &buf[at..n])).await?;
                }
            }
            std::future::poll_fn(|cx| stream.poll_close(cx)).await?;
            Ok::<(), BoxError>(())
        });
        Ok(body(move |cx, _start| {
            let _ = &guard;
            match echo.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(())) => Poll::Ready(None),
                Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error))),
            }
        }))
    }));
    let mut stream = connect(server.tcp_addr().unwrap());
    // Bytes right behind the request belong to the new protocol.
    stream
        .write_all(b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x-echo\r\n\r\nearly;")
        .unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed inside the 101");
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 101 switching protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nupgrade: x-echo\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    let mut early = [0u8; 6];
    stream.read_exact(&mut early).unwrap();
    assert_eq!(&early, b"early;");
    stream.write_all(b"ping").unwrap();
    let mut pong = [0u8; 4];
    stream.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"ping");
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (rest, closed) = read_to_close(&mut stream);
    assert!(closed && rest.is_empty(), "{rest:?}");
    assert!(eventually(|| drops.load(Ordering::SeqCst) == 1));
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn shutdown_drops_parked_bodies_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&drops);
    let (parked_tx, parked_rx) = mpsc::channel::<()>();
    let parked_tx = Mutex::new(parked_tx);
    let server = start_async(rgi_async::from_fn(move |_environ, _start| {
        let guard = DropGuard(Arc::clone(&counted));
        let parked = parked_tx.lock().unwrap().clone();
        Ok(body(move |_cx, _start| {
            let _ = &guard;
            let _ = parked.send(());
            Poll::Pending
        }))
    }));
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(server.tcp_addr().unwrap());
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        parked_rx.recv_timeout(PATIENCE).unwrap();
        streams.push(stream);
    }
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    server.shutdown(Duration::from_millis(200));
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    for mut stream in streams {
        let (_, closed) = read_to_close(&mut stream);
        assert!(closed);
    }
}

#[test]
fn a_switch_the_full_pool_cannot_take_is_a_503() {
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate_rx));
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let server = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .async_threads(1)
        .blocking_queue(1)
        .serve_async(rgi_async::from_fn(move |environ: Environ, _start| {
            let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
            let offload = caps.offload().clone();
            if environ.raw_path() == "/hold" {
                let gate = Arc::clone(&gate);
                let started = started_tx.lock().unwrap().clone();
                return Ok(offloaded(offload.run(move || {
                    let _ = started.send(());
                    let _ = gate.lock().unwrap().recv_timeout(PATIENCE);
                    String::from("held")
                }))
                .boxed());
            }
            // The one worker is busy and this job fills the queue: the
            // switch cannot be run (`[RGIA-SWITCH-8]`).
            let queued = offload.run(|| String::from("queued"));
            let mut queued = Some(queued);
            Ok(body(move |_cx, _start| {
                drop(queued.take());
                Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(
                    |start: &mut StartResponse<'_>| {
                        ok(start)?;
                        Ok::<_, BoxError>(Bytes::from_static(b"must not run"))
                    },
                )))))
            })
            .boxed())
        }))
        .unwrap();
    let addr = server.tcp_addr().unwrap();
    let holder = std::thread::spawn(move || get(addr, "/hold"));
    started_rx.recv_timeout(PATIENCE).unwrap();
    let r = get(addr, "/switch");
    assert_eq!(r.status, 503);
    gate_tx.send(()).unwrap();
    assert_eq!(holder.join().unwrap().body, b"held");
    server.shutdown(Duration::from_secs(5));
}

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the body's drop panicked");
    }
}

#[test]
fn a_panic_in_a_body_s_drop_is_contained() {
    let server = start_async(rgi_async::from_fn(|_environ, _start| {
        let bomb = PanicsOnDrop;
        let mut sent = false;
        Ok(body(move |_cx, start| {
            let _ = &bomb;
            if sent {
                return Poll::Ready(None);
            }
            sent = true;
            ok(start)?;
            chunk("complete")
        }))
    }));
    let addr = server.tcp_addr().unwrap();
    for _ in 0..2 {
        let r = get(addr, "/");
        assert_eq!((r.status, &r.body[..]), (200, &b"complete"[..]));
    }
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn async_apps_serve_unix_sockets_and_http_1_0() {
    let dir = std::env::temp_dir().join(format!("rgi-simple-async-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("async.sock");
    let _ = std::fs::remove_file(&path);
    let app = || {
        rgi_async::from_fn(|environ: Environ, _start| {
            let version = format!("{:?}", environ.version());
            Ok(body(move |_cx, start| {
                if start.is_started() {
                    return Poll::Ready(None);
                }
                ok(start)?;
                chunk(version.clone())
            }))
        })
    };
    let server = Builder::new().bind_unix(&path).serve_async(app()).unwrap();
    let mut stream = UnixStream::connect(&path).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let r = &responses(&bytes, &[])[0];
    assert_eq!((r.status, &r.body[..]), (200, &b"HTTP/1.1"[..]));
    drop(stream);
    server.shutdown(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);

    // HTTP/1.0 gets a close-delimited body: no chunked coding.
    let server = start_async(app());
    let (bytes, closed) = exchange(server.tcp_addr().unwrap(), b"GET / HTTP/1.0\r\n\r\n");
    assert!(closed);
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );
    assert!(text.ends_with("HTTP/1.0"), "{text}");
    server.shutdown(Duration::from_secs(5));
}

/// A client that half-closes after a complete request (`nc -N`) still
/// reads the whole response: only a parked body with nothing left to send
/// is given up for a closed read side.
#[test]
fn a_half_closed_client_gets_the_whole_response() {
    const SIZE: usize = 16 << 20;
    let server = start_async(rgi_async::from_fn(|_environ, start| {
        ok(start)?;
        Ok(Bytes::from(vec![b'x'; SIZE]))
    }));
    let mut stream = common::connect(server.tcp_addr().unwrap());
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (bytes, closed) = common::read_to_close(&mut stream);
    assert!(closed);
    assert!(
        bytes.len() > SIZE,
        "only {} bytes of a {SIZE}-byte body",
        bytes.len()
    );
    server.shutdown(Duration::from_secs(1));
}
