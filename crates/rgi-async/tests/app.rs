//! The asynchronous application and body: adapters, the built-in bodies,
//! streams, and the switch to synchronous processing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{BoxError, Environ, Input, ResponseHead, ResponseState, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Step, SyncSwitch};
use support::{Recorder, Sent, poll_body, serve};

fn ok() -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
}

fn env() -> Environ {
    Environ::builder().build().unwrap()
}

fn hello() -> impl AsyncApplication<Body = Bytes> {
    rgi_async::from_fn(|_environ, start| {
        start.start(ok())?;
        Ok(Bytes::from_static(b"hello"))
    })
}

#[test]
fn a_closure_application_answers_through_a_server_loop() {
    let served = serve(&hello(), env()).unwrap();
    assert_eq!(served.wire.heads().len(), 1);
    assert_eq!(served.wire.heads()[0].status(), StatusCode::OK);
    assert_eq!(served.wire.body(), b"hello");
    assert_eq!(served.steps, 1);
    assert!(!served.switched);
}

#[test]
fn arc_and_box_forward_to_the_application() {
    let arc = Arc::new(hello());
    assert_eq!(serve(&arc, env()).unwrap().wire.body(), b"hello");
    let boxed: Box<dyn AsyncApplication<Body = Bytes>> = Box::new(hello());
    assert_eq!(serve(&boxed, env()).unwrap().wire.body(), b"hello");
}

#[test]
fn an_error_from_call_reaches_the_server() {
    let app = rgi_async::from_fn(|_environ, _start| -> Result<Bytes, BoxError> {
        Err("no such thing".into())
    });
    let err = serve(&app, env()).unwrap_err();
    assert_eq!(err.to_string(), "no such thing");
}

#[test]
fn the_fn_adapter_debug_names_the_closure_type() {
    let debug = format!("{:?}", rgi_async::from_fn(|_e, _s| Ok(rgi::Empty)));
    assert!(
        debug.starts_with("FnAsyncApplication { handler: "),
        "{debug}"
    );
}

fn collect<B: AsyncBody + Unpin>(mut body: B) -> Vec<Bytes> {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut chunks = Vec::new();
    loop {
        match poll_body(&mut body, &mut state, &mut wire) {
            Poll::Ready(Some(Ok(Step::Chunk(chunk)))) => chunks.push(chunk),
            Poll::Ready(None) => return chunks,
            other => panic!("unexpected poll result {other:?}"),
        }
    }
}

#[test]
fn byte_bodies_yield_one_chunk_with_an_exact_size_hint() {
    assert_eq!(Bytes::from_static(b"abc").size_hint(), Some(3));
    assert_eq!(
        collect(Bytes::from_static(b"abc")),
        vec![Bytes::from_static(b"abc")]
    );
    assert_eq!(b"de".to_vec().size_hint(), Some(2));
    assert_eq!(collect(b"de".to_vec()), vec![Bytes::from_static(b"de")]);
    assert_eq!(String::from("f").size_hint(), Some(1));
    assert_eq!(collect(String::from("f")), vec![Bytes::from_static(b"f")]);
}

#[test]
fn empty_bodies_yield_nothing() {
    assert_eq!(AsyncBody::size_hint(&rgi::Empty), Some(0));
    assert!(collect(rgi::Empty).is_empty());
    assert!(collect(Bytes::new()).is_empty());
    assert!(collect(Vec::new()).is_empty());
    assert!(collect(String::new()).is_empty());
}

#[test]
fn the_size_hint_tracks_what_remains() {
    let mut body = Bytes::from_static(b"xyz");
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    assert!(matches!(
        poll_body(&mut body, &mut state, &mut wire),
        Poll::Ready(Some(Ok(Step::Chunk(_))))
    ));
    assert_eq!(body.size_hint(), Some(0));
}

/// Yields `Pending` (waking itself) `pending` times, then one chunk.
struct Late {
    pending: u32,
    polls: u32,
}

impl AsyncBody for Late {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        self.polls += 1;
        if self.pending > 0 {
            self.pending -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if start.is_started() {
            return Poll::Ready(None);
        }
        if let Err(err) = start.start(ok()) {
            return Poll::Ready(Some(Err(err.into())));
        }
        Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"late")))))
    }

    fn size_hint(&self) -> Option<u64> {
        Some(u64::from(self.polls))
    }
}

#[test]
fn boxed_and_pinned_bodies_forward_polls_and_hints() {
    let mut boxed = Box::new(Late {
        pending: 0,
        polls: 0,
    });
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    assert!(poll_body(&mut boxed, &mut state, &mut wire).is_ready());
    assert_eq!(boxed.size_hint(), Some(1));

    let mut pinned: Pin<Box<dyn AsyncBody>> = Box::pin(Late {
        pending: 1,
        polls: 0,
    });
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    assert!(poll_body(&mut pinned, &mut state, &mut wire).is_pending());
    assert!(matches!(
        poll_body(&mut pinned, &mut state, &mut wire),
        Poll::Ready(Some(Ok(Step::Chunk(ref c)))) if c == "late"
    ));
    assert_eq!(pinned.size_hint(), Some(2));
}

#[test]
fn a_pending_body_is_polled_again_after_its_wake_up_and_starts_lazily() {
    let app = rgi_async::from_fn(|_environ, _start| {
        Ok(Late {
            pending: 3,
            polls: 0,
        })
    });
    let served = serve(&app, env()).unwrap();
    assert_eq!(served.wire.heads()[0].status(), StatusCode::OK);
    assert_eq!(served.wire.body(), b"late");
}

/// Items from a list; `Pending` (with a wake-up) before each.
struct Items {
    items: Vec<Result<&'static str, std::io::Error>>,
    ready: bool,
}

impl Stream for Items {
    type Item = Result<&'static str, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        if self.items.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(self.items.remove(0)))
    }
}

#[test]
fn a_stream_body_passes_pending_through_and_yields_each_item() {
    let app = rgi_async::from_fn(|_environ, start| {
        start.start(ok())?;
        Ok(rgi_async::from_stream(Items {
            items: vec![Ok("data: 1\n\n"), Ok(""), Ok("data: 2\n\n")],
            ready: false,
        }))
    });
    let served = serve(&app, env()).unwrap();
    assert_eq!(served.steps, 3);
    assert_eq!(served.wire.body(), b"data: 1\n\ndata: 2\n\n");
    // Each non-empty chunk went to the transport separately.
    assert_eq!(served.wire.sent.len(), 3);
}

#[test]
fn a_stream_error_ends_the_body_with_that_error() {
    let mut body = rgi_async::from_stream(Items {
        items: vec![Err(std::io::Error::other("upstream gone"))],
        ready: true,
    });
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut body = Pin::new(&mut body);
    let step = body.as_mut().poll_step(
        &mut Context::from_waker(std::task::Waker::noop()),
        &mut state.start_response(&mut wire),
    );
    let Poll::Ready(Some(Err(err))) = step else {
        panic!("expected an error, got {step:?}");
    };
    assert_eq!(err.to_string(), "upstream gone");
}

/// Yields one chunk asynchronously, then switches to `then`.
struct HalfAndHalf {
    chunk: Option<Bytes>,
    then: Option<SyncSwitch>,
}

impl AsyncBody for HalfAndHalf {
    fn poll_step(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if let Some(chunk) = self.chunk.take() {
            return Poll::Ready(Some(Ok(Step::Chunk(chunk))));
        }
        Poll::Ready(self.then.take().map(|switch| Ok(Step::Switch(switch))))
    }
}

#[test]
fn a_switch_after_the_head_was_sent_keeps_the_response_state() {
    let app = rgi_async::from_fn(|_environ, start| {
        start.start(ok())?;
        Ok(HalfAndHalf {
            chunk: Some(Bytes::from_static(b"async part, ")),
            then: Some(SyncSwitch::new(|start| {
                assert!(start.is_started() && start.is_head_sent());
                // The head is already out: starting again is refused.
                assert!(
                    start
                        .start(ResponseHead::new(StatusCode::NOT_FOUND))
                        .is_err()
                );
                Ok(rgi::from_iter(["sync ", "part"]))
            })),
        })
    });
    let served = serve(&app, env()).unwrap();
    assert!(served.switched);
    assert_ne!(served.switch_thread, Some(std::thread::current().id()));
    assert_eq!(served.wire.heads().len(), 1);
    assert_eq!(served.wire.heads()[0].status(), StatusCode::OK);
    assert_eq!(served.wire.body(), b"async part, sync part");
}

#[test]
fn a_switch_before_the_head_lets_the_continuation_start_the_response() {
    let app = rgi_async::from_fn(|_environ, _start| {
        Ok(HalfAndHalf {
            chunk: None,
            then: Some(SyncSwitch::new(|start| {
                assert!(!start.is_started());
                start.start(ResponseHead::new(StatusCode::ACCEPTED))?;
                Ok(Bytes::from_static(b"queued"))
            })),
        })
    });
    let served = serve(&app, env()).unwrap();
    assert_eq!(
        served.wire.sent[0],
        Sent::Head(ResponseHead::new(StatusCode::ACCEPTED))
    );
    assert_eq!(served.wire.body(), b"queued");
}

#[test]
fn a_failing_continuation_returns_its_error() {
    let switch =
        SyncSwitch::new(|_start| -> Result<rgi::Empty, BoxError> { Err("disk full".into()) });
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let Err(err) = switch.run(&mut state.start_response(&mut wire)) else {
        panic!("the continuation's error was lost");
    };
    assert_eq!(err.to_string(), "disk full");
    assert!(wire.sent.is_empty());
}

#[test]
fn the_continuation_owns_the_input_and_reads_it_blocking() {
    /// Switches at once, taking the input along.
    struct Upload(Option<Input>);

    impl AsyncBody for Upload {
        fn poll_step(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _start: &mut StartResponse<'_>,
        ) -> Poll<Option<Result<Step, BoxError>>> {
            let Some(mut input) = self.0.take() else {
                return Poll::Ready(None);
            };
            Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |start| {
                let mut body = String::new();
                input.read_to_string(&mut body)?;
                start.start(ok())?;
                Ok(body.to_uppercase())
            })))))
        }
    }

    let app = rgi_async::from_fn(|environ: Environ, _start| Ok(Upload(Some(environ.into_input()))));
    let environ = Environ::builder()
        .method(Method::POST)
        .header(header::CONTENT_LENGTH, HeaderValue::from_static("11"))
        .input(Input::from_bytes(&b"hello world"[..]))
        .build()
        .unwrap();
    let served = serve(&app, environ).unwrap();
    assert_eq!(served.wire.body(), b"HELLO WORLD");
}

#[test]
fn steps_convert_from_their_payloads_and_debug_print() {
    assert!(matches!(Step::from(Bytes::from_static(b"x")), Step::Chunk(ref c) if c == "x"));
    let switch = Step::from(SyncSwitch::new(|_start| Ok(rgi::Empty)));
    assert_eq!(format!("{switch:?}"), "Switch(SyncSwitch { .. })");
}

/// Marks every head it sees.
struct Stamp;

impl rgi::Intercept for Stamp {
    fn on_start(&mut self, head: &mut rgi::ResponseHead) {
        head.headers_mut()
            .insert("x-stamp", http::HeaderValue::from_static("1"));
    }
}

#[test]
fn a_middleware_wraps_the_continuation_so_its_interception_survives_the_switch() {
    let inner = rgi_async::SyncSwitch::new(|start| {
        start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
        Ok(bytes::Bytes::from_static(b"sync"))
    });
    let continuation = inner.into_continuation();
    let wrapped =
        rgi_async::SyncSwitch::new(move |start| continuation(&mut start.intercept(&mut Stamp)));
    let mut state = rgi::ResponseState::new(&http::Method::GET);
    let mut sink = NullSink;
    let _body = wrapped.run(&mut state.start_response(&mut sink)).unwrap();
    assert_eq!(state.head().unwrap().headers()["x-stamp"], "1");
}

struct NullSink;

impl rgi::ResponseSink for NullSink {
    fn send_head(&mut self, _: rgi::ResponseHead) -> std::io::Result<()> {
        Ok(())
    }

    fn send_data(&mut self, _: bytes::Bytes) -> std::io::Result<()> {
        Ok(())
    }
}
