//! RGI-async 1.2: the event-stream body and the lifespan calls through the
//! threaded adapter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_core::Stream;
use http::{Method, StatusCode};
use rgi::sse::{Event, KEEP_ALIVE};
use rgi::{ResponseHead, ResponseSink, ResponseState, ServerInfo};
use rgi_async::sse::EventStream;
use rgi_async::{AsyncApplication, AsyncBody, Step, Threaded};

#[derive(Default)]
struct Sink {
    heads: Vec<ResponseHead>,
}

impl ResponseSink for Sink {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.heads.push(head);
        Ok(())
    }
    fn send_data(&mut self, _data: Bytes) -> io::Result<()> {
        Ok(())
    }
}

/// A stream fed by the test: `Pending` while empty, `None` once closed.
#[derive(Clone, Default)]
struct Feed<T>(Arc<Mutex<(VecDeque<T>, bool)>>);

impl<T> Feed<T> {
    fn push(&self, item: T) {
        self.0.lock().unwrap().0.push_back(item);
    }
    fn close(&self) {
        self.0.lock().unwrap().1 = true;
    }
}

impl<T> Stream for Feed<T> {
    type Item = T;
    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut feed = self.0.lock().unwrap();
        match feed.0.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if feed.1 => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

fn poll<B: AsyncBody>(
    body: Pin<&mut B>,
    state: &mut ResponseState,
    sink: &mut Sink,
) -> Poll<Option<Bytes>> {
    let mut cx = Context::from_waker(Waker::noop());
    match body.poll_step(&mut cx, &mut state.start_response(sink)) {
        Poll::Ready(Some(Ok(Step::Chunk(chunk)))) => Poll::Ready(Some(chunk)),
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
        Poll::Ready(other) => panic!("unexpected step: {:?}", other.map(|r| r.is_ok())),
    }
}

#[test]
fn an_event_stream_yields_one_chunk_per_event_and_a_keep_alive_per_idle_tick() {
    let (events, ticks) = (Feed::<Event>::default(), Feed::<()>::default());
    let mut body = Box::pin(EventStream::new(events.clone()).keep_alive(ticks.clone()));
    let mut state = ResponseState::new(&Method::GET);
    let mut sink = Sink::default();

    assert_eq!(poll(body.as_mut(), &mut state, &mut sink), Poll::Pending);
    assert!(
        state.is_started(),
        "the event-stream head is started at the first poll"
    );
    assert_eq!(
        state.head().unwrap().headers()["content-type"],
        "text/event-stream"
    );

    events.push(Event::from_data("a"));
    events.push(Event::from_data("b"));
    ticks.push(());
    // Events first, one chunk each; the tick only when none is ready.
    assert_eq!(
        poll(body.as_mut(), &mut state, &mut sink),
        Poll::Ready(Some(Bytes::from("data: a\n\n")))
    );
    assert_eq!(
        poll(body.as_mut(), &mut state, &mut sink),
        Poll::Ready(Some(Bytes::from("data: b\n\n")))
    );
    assert_eq!(
        poll(body.as_mut(), &mut state, &mut sink),
        Poll::Ready(Some(Bytes::from_static(KEEP_ALIVE)))
    );
    assert_eq!(poll(body.as_mut(), &mut state, &mut sink), Poll::Pending);
    events.close();
    assert_eq!(
        poll(body.as_mut(), &mut state, &mut sink),
        Poll::Ready(None)
    );
}

#[test]
fn an_event_stream_keeps_a_head_the_application_started() {
    let events = Feed::<Event>::default();
    events.close();
    let mut body = Box::pin(EventStream::new(events));
    let mut state = ResponseState::new(&Method::GET);
    let mut sink = Sink::default();
    state
        .start_response(&mut sink)
        .start(ResponseHead::new(StatusCode::ACCEPTED))
        .unwrap();
    assert_eq!(
        poll(body.as_mut(), &mut state, &mut sink),
        Poll::Ready(None)
    );
    assert_eq!(state.status(), Some(StatusCode::ACCEPTED));
}

#[test]
fn threaded_forwards_startup_and_shutdown_to_the_synchronous_application() {
    #[derive(Clone)]
    struct Ready(bool);
    let stopped = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&stopped);
    let app = Threaded::new(rgi::with_lifespan(
        rgi::from_fn(|_e, start| {
            start.start(StatusCode::OK)?;
            Ok(rgi::Empty)
        }),
        |startup| {
            startup.insert_state(Ready(true));
            Ok(())
        },
        move || *flag.lock().unwrap() = true,
    ));
    let server = rgi::run_startup(ServerInfo::new("localhost", 80).unwrap(), |s| {
        AsyncApplication::startup(&app, s)
    })
    .unwrap();
    assert!(server.extension::<Ready>().is_some_and(|r| r.0));
    AsyncApplication::shutdown(&app);
    assert!(*stopped.lock().unwrap());
}

/// A transport recording the order of everything, 1.2 calls included.
#[derive(Debug, Default)]
struct Wire(Vec<String>);

impl ResponseSink for Wire {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.0.push(format!("head {}", head.status().as_u16()));
        Ok(())
    }
    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.0
            .push(format!("data {}", String::from_utf8_lossy(&data)));
        Ok(())
    }
    fn send_trailers(&mut self, fields: http::HeaderMap) -> io::Result<()> {
        self.0.push(format!("trailers {:?}", fields.get("x-sum")));
        Ok(())
    }
    fn send_early_hints(&mut self, fields: http::HeaderMap) -> io::Result<()> {
        self.0.push(format!("103 {:?}", fields.get("link")));
        Ok(())
    }
}

/// Serves `app` to its end with a parking waker, trailers and early hints
/// enabled as a server that can deliver them does.
fn serve_delivering<A: AsyncApplication>(app: &A, environ: rgi::Environ) -> Vec<String> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut state = ResponseState::new(environ.method());
    state.enable_trailers();
    state.enable_early_hints();
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .unwrap();
    let mut body = Box::pin(body);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    loop {
        let step = body.as_mut().poll_step(
            &mut Context::from_waker(&waker),
            &mut state.start_response(&mut wire),
        );
        match step {
            Poll::Pending => std::thread::park_timeout(std::time::Duration::from_millis(50)),
            Poll::Ready(None) => break,
            Poll::Ready(Some(Ok(Step::Chunk(chunk)))) => {
                state.send_chunk(&mut wire, chunk).unwrap();
            }
            Poll::Ready(Some(other)) => panic!("unexpected step: {:?}", other.map(|_| ())),
        }
    }
    drop(body);
    state.finish(&mut wire).unwrap();
    wire.0
}

/// Reads its body whole, sends a 103, then echoes the body with the
/// request's `x-sum` trailer as its own.
fn echo_with_trailers(hints: rgi::Hints) -> impl rgi::Application {
    rgi::from_fn(|mut environ: rgi::Environ, start| {
        let body = environ.input_mut().read_to_bytes(1024)?;
        let trailers = environ.input().trailers()?.unwrap_or_default();
        let mut hint = http::HeaderMap::new();
        hint.insert("link", http::HeaderValue::from_static("</a.css>"));
        start.send_early_hints(hint)?;
        start.start(ResponseHead::new(StatusCode::OK).with_header(
            http::header::TRAILER,
            http::HeaderValue::from_static("x-sum"),
        ))?;
        start.send_trailers(trailers)?;
        Ok(body)
    })
    .with_hints(hints)
}

fn environ_with_trailers() -> rgi::Environ {
    let slot = rgi::TrailerSlot::new();
    let mut fields = http::HeaderMap::new();
    fields.insert("x-sum", http::HeaderValue::from_static("6"));
    slot.fill(fields);
    rgi::Environ::builder()
        .method(Method::POST)
        .input(rgi::Input::new(&b"123"[..], None).with_trailers(slot))
        .extension(
            rgi_async::Capabilities::builder(rgi_async::Offload::new(support::ThreadPerJob))
                .build(),
        )
        .build()
        .unwrap()
}

#[test]
fn threaded_relays_early_hints_and_trailers_from_a_worker_and_keeps_request_trailers() {
    let wire = serve_delivering(
        &Threaded::new(echo_with_trailers(rgi::Hints::default())),
        environ_with_trailers(),
    );
    assert_eq!(
        wire,
        [
            "103 Some(\"</a.css>\")",
            "head 200",
            "data 123",
            "trailers Some(\"6\")"
        ]
    );
}

#[test]
fn threaded_keeps_request_trailers_through_its_pre_read() {
    let hints = rgi::Hints::default()
        .with_input(rgi::InputUse::Whole)
        .with_may_block(false);
    let wire = serve_delivering(
        &Threaded::new(echo_with_trailers(hints)),
        environ_with_trailers(),
    );
    assert_eq!(
        wire.last().map(String::as_str),
        Some("trailers Some(\"6\")"),
        "{wire:?}"
    );
}
