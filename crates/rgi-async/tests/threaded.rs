//! The threaded adapter: a synchronous application under an asynchronous
//! server, with backpressure, cancellation, failures and inline running.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::{self, ThreadId};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{
    Body, BoxError, Environ, FinishError, Hints, Input, InputUse, ResponseHead, ResponseState,
    StartResponse,
};
use rgi_async::{
    AsyncApplication, AsyncBody, Capabilities, Offload, OffloadError, Step, Threaded, ThreadedError,
};
use support::{Queue, Recorder, Refusing, ThreadPerJob, serve};

fn env_with(offload: Offload) -> Environ {
    Environ::builder()
        .extension(Capabilities::builder(offload).build())
        .build()
        .unwrap()
}

fn ok() -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
}

/// Counts pulls and records where it was dropped.
struct Counted {
    remaining: usize,
    pulled: Arc<AtomicUsize>,
    dropped_on: Arc<Mutex<Option<ThreadId>>>,
}

impl Body for Counted {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.remaining = self.remaining.checked_sub(1)?;
        self.pulled.fetch_add(1, Ordering::SeqCst);
        Some(Ok(Bytes::from_static(b"x")))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        *self.dropped_on.lock().unwrap() = Some(thread::current().id());
    }
}

#[derive(Clone, Default)]
struct Probe {
    called: Arc<AtomicBool>,
    called_on: Arc<Mutex<Option<ThreadId>>>,
    pulled: Arc<AtomicUsize>,
    dropped_on: Arc<Mutex<Option<ThreadId>>>,
}

impl Probe {
    fn app(&self, chunks: usize) -> impl rgi::Application<Body = Counted> {
        self.app_with(chunks, Hints::default())
    }

    fn app_with(&self, chunks: usize, hints: Hints) -> impl rgi::Application<Body = Counted> {
        let probe = self.clone();
        rgi::from_fn(move |_environ, start| {
            probe.called.store(true, Ordering::SeqCst);
            *probe.called_on.lock().unwrap() = Some(thread::current().id());
            start.start(ok())?;
            Ok(Counted {
                remaining: chunks,
                pulled: Arc::clone(&probe.pulled),
                dropped_on: Arc::clone(&probe.dropped_on),
            })
        })
        .with_hints(hints)
    }
}

/// Polls `body` with a parking waker until it is ready.
fn next_step<B: AsyncBody + Unpin>(
    body: &mut B,
    state: &mut ResponseState,
    wire: &mut Recorder,
) -> Option<Result<Step, BoxError>> {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    loop {
        let poll = Pin::new(&mut *body).poll_step(
            &mut Context::from_waker(&waker),
            &mut state.start_response(wire),
        );
        match poll {
            Poll::Ready(step) => return step,
            Poll::Pending => thread::park(),
        }
    }
}

#[test]
fn the_application_runs_on_a_worker_and_its_chunks_reach_the_server() {
    let probe = Probe::default();
    let app = Threaded::new(probe.app(5));
    let served = serve(&app, env_with(Offload::new(ThreadPerJob))).unwrap();
    assert_eq!(served.wire.heads().len(), 1);
    assert_eq!(served.wire.heads()[0].status(), StatusCode::OK);
    assert_eq!(served.wire.body(), b"xxxxx");
    assert_eq!(served.steps, 5);
    let worker = probe.called_on.lock().unwrap().unwrap();
    assert_ne!(worker, thread::current().id());
    assert_eq!(*probe.dropped_on.lock().unwrap(), Some(worker));
}

#[test]
fn the_worker_pulls_only_as_fast_as_the_server_polls() {
    let probe = Probe::default();
    let app = Threaded::new(probe.app(1_000));
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut body = app
        .call(
            env_with(Offload::new(ThreadPerJob)),
            &mut state.start_response(&mut wire),
        )
        .unwrap();
    let Some(Ok(Step::Chunk(first))) = next_step(&mut body, &mut state, &mut wire) else {
        panic!("expected a chunk");
    };
    assert_eq!(first, "x");
    thread::sleep(Duration::from_millis(50));
    // One chunk taken, one in the slot, one waiting to be handed over.
    assert!(probe.pulled.load(Ordering::SeqCst) <= 3);
    drop(body);
}

#[test]
fn dropping_the_body_stops_the_worker_and_drops_its_body_there() {
    let probe = Probe::default();
    let app = Threaded::new(probe.app(1_000));
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut body = app
        .call(
            env_with(Offload::new(ThreadPerJob)),
            &mut state.start_response(&mut wire),
        )
        .unwrap();
    assert!(matches!(
        next_step(&mut body, &mut state, &mut wire),
        Some(Ok(Step::Chunk(_)))
    ));
    drop(body);
    let mut waited = 0;
    while probe.dropped_on.lock().unwrap().is_none() && waited < 500 {
        thread::sleep(Duration::from_millis(10));
        waited += 1;
    }
    let dropped_on = probe.dropped_on.lock().unwrap().unwrap();
    assert_eq!(Some(dropped_on), *probe.called_on.lock().unwrap());
    assert!(probe.pulled.load(Ordering::SeqCst) < 1_000);
}

#[test]
fn a_request_cancelled_before_its_job_started_never_calls_the_application() {
    let probe = Probe::default();
    let app = Threaded::new(probe.app(1));
    let queue = Queue::default();
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let body = app
        .call(
            env_with(Offload::new(queue.clone())),
            &mut state.start_response(&mut wire),
        )
        .unwrap();
    drop(body);
    queue.run_all();
    assert!(!probe.called.load(Ordering::SeqCst));
}

#[test]
fn a_panicking_application_becomes_an_error_not_an_unwind() {
    let app = Threaded::new(rgi::from_fn(
        |_environ, _start| -> Result<Bytes, BoxError> { panic!("sync app exploded") },
    ));
    let err = serve(&app, env_with(Offload::new(ThreadPerJob))).unwrap_err();
    let err = err.downcast::<ThreadedError>().unwrap();
    assert!(matches!(
        *err,
        ThreadedError::Offload(OffloadError::Panicked { ref message }) if message == "sync app exploded"
    ));
}

#[test]
fn a_saturated_offload_is_answered_503() {
    let probe = Probe::default();
    let app = Threaded::new(probe.app(1));
    let offload = Offload::new(Refusing(OffloadError::Saturated { capacity: 2 }));
    let served = serve(&app, env_with(offload)).unwrap();
    assert_eq!(served.wire.heads().len(), 1);
    assert_eq!(
        served.wire.heads()[0].status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        served.wire.heads()[0].headers()[header::CONTENT_LENGTH],
        "0"
    );
    assert!(served.wire.body().is_empty());
    assert!(!probe.called.load(Ordering::SeqCst));
}

#[test]
fn a_job_dropped_at_shutdown_is_answered_503() {
    let app = Threaded::new(Probe::default().app(1));
    let queue = Queue::default();
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut body = app
        .call(
            env_with(Offload::new(queue.clone())),
            &mut state.start_response(&mut wire),
        )
        .unwrap();
    queue.shut_down();
    assert!(next_step(&mut body, &mut state, &mut wire).is_none());
    state.finish(&mut wire).unwrap();
    assert_eq!(wire.heads()[0].status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn a_job_dropped_after_the_head_was_started_is_an_error() {
    let app = Threaded::new(Probe::default().app(1));
    let queue = Queue::default();
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut body = app
        .call(
            env_with(Offload::new(queue.clone())),
            &mut state.start_response(&mut wire),
        )
        .unwrap();
    // An outer layer (middleware) already started a response.
    state.start_response(&mut wire).start(ok()).unwrap();
    queue.shut_down();
    let Some(Err(err)) = next_step(&mut body, &mut state, &mut wire) else {
        panic!("expected an error");
    };
    assert!(matches!(
        *err.downcast::<ThreadedError>().unwrap(),
        ThreadedError::Offload(OffloadError::ShutDown)
    ));
}

#[test]
fn without_capabilities_a_blocking_application_cannot_run() {
    let app = Threaded::new(Probe::default().app(1));
    let environ = Environ::builder().build().unwrap();
    let Err(err) = serve(&app, environ) else {
        panic!("expected NoOffload");
    };
    assert!(matches!(
        *err.downcast::<ThreadedError>().unwrap(),
        ThreadedError::NoOffload
    ));
}

#[test]
fn a_non_blocking_application_without_input_runs_inline() {
    let probe = Probe::default();
    let app = Threaded::new(
        probe.app_with(
            3,
            Hints::default()
                .with_input(InputUse::None)
                .with_may_block(false),
        ),
    );
    // No capabilities needed: it never leaves the calling thread.
    let served = serve(&app, Environ::builder().build().unwrap()).unwrap();
    assert_eq!(served.wire.body(), b"xxx");
    let here = Some(thread::current().id());
    assert_eq!(*probe.called_on.lock().unwrap(), here);
    assert_eq!(*probe.dropped_on.lock().unwrap(), here);
}

#[test]
fn a_non_blocking_application_that_may_read_input_is_offloaded() {
    let probe = Probe::default();
    let app = Threaded::new(probe.app_with(1, Hints::default().with_may_block(false)));
    serve(&app, env_with(Offload::new(ThreadPerJob))).unwrap();
    assert_ne!(
        *probe.called_on.lock().unwrap(),
        Some(thread::current().id())
    );
}

/// Starts lazily, replaces its head once, then yields one chunk.
struct Lazy(bool);

impl Body for Lazy {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if self.0 {
            return None;
        }
        self.0 = true;
        let result = start.start(ok()).and_then(|()| {
            start.replace(
                ResponseHead::new(StatusCode::SERVICE_UNAVAILABLE),
                "backend down",
            )
        });
        Some(
            result
                .map(|()| Bytes::from_static(b"try later"))
                .map_err(Into::into),
        )
    }
}

#[test]
fn a_lazily_started_and_replaced_head_is_relayed_once_in_its_final_form() {
    let app = Threaded::new(rgi::from_fn(|_environ, _start| Ok(Lazy(false))));
    let served = serve(&app, env_with(Offload::new(ThreadPerJob))).unwrap();
    assert_eq!(served.wire.heads().len(), 1);
    assert_eq!(
        served.wire.heads()[0].status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(served.wire.body(), b"try later");
}

#[test]
fn a_head_without_body_is_relayed_at_the_end() {
    let app = Threaded::new(rgi::from_fn(|_environ, start| {
        start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
        Ok(rgi::Empty)
    }));
    let served = serve(&app, env_with(Offload::new(ThreadPerJob))).unwrap();
    assert_eq!(served.wire.heads()[0].status(), StatusCode::NO_CONTENT);
    assert!(served.wire.body().is_empty());
    assert_eq!(served.steps, 0);
}

/// A 204 whose application still produces body bytes is relayed as a
/// complete, empty 204, not replaced by a 500: the worker stops pulling at
/// the refused chunk as the server loop does (`RGI-BODY-18`).
#[test]
fn a_body_refused_for_a_204_ends_the_response_as_a_204() {
    let app = Threaded::new(rgi::from_fn(|_environ, start| {
        start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
        Ok(Bytes::from_static(b"not allowed"))
    }));
    let served = serve(&app, env_with(Offload::new(ThreadPerJob))).unwrap();
    assert_eq!(served.wire.heads().len(), 1);
    assert_eq!(served.wire.heads()[0].status(), StatusCode::NO_CONTENT);
    assert!(served.wire.body().is_empty());
}

/// Bytes past the declared Content-Length are cut, and the response ends
/// complete at the declared length (`RGI-CL-2`).
#[test]
fn an_excess_past_the_content_length_ends_the_response_at_its_length() {
    let app = Threaded::new(rgi::from_fn(|_environ, start| {
        start.start(ok().with_header(header::CONTENT_LENGTH, HeaderValue::from_static("3")))?;
        Ok(rgi::from_iter([
            Bytes::from_static(b"ab"),
            Bytes::from_static(b"cdef"),
            Bytes::from_static(b"never pulled"),
        ]))
    }));
    let served = serve(&app, env_with(Offload::new(ThreadPerJob))).unwrap();
    assert_eq!(served.wire.heads()[0].status(), StatusCode::OK);
    assert_eq!(served.wire.body(), b"abc");
}

#[test]
fn the_workers_response_rules_are_enforced_and_reported() {
    let app = Threaded::new(rgi::from_fn(|_environ, start| {
        start.start(ok().with_header(header::CONTENT_LENGTH, HeaderValue::from_static("10")))?;
        Ok(Bytes::from_static(b"short"))
    }));
    let err = serve(&app, env_with(Offload::new(ThreadPerJob))).unwrap_err();
    assert!(matches!(
        *err.downcast::<FinishError>().unwrap(),
        FinishError::ContentLengthShort {
            declared: 10,
            sent: 5
        }
    ));
}

#[test]
fn the_application_reads_its_input_blocking_on_the_worker() {
    let app = Threaded::new(rgi::from_fn(|mut environ: Environ, start| {
        let mut body = String::new();
        environ.input_mut().read_to_string(&mut body)?;
        start.start(ok())?;
        Ok(body.chars().rev().collect::<String>())
    }));
    let environ = Environ::builder()
        .method(Method::POST)
        .header(header::CONTENT_LENGTH, HeaderValue::from_static("5"))
        .input(Input::from_bytes(&b"stack"[..]))
        .extension(Capabilities::builder(Offload::new(ThreadPerJob)).build())
        .build()
        .unwrap();
    assert_eq!(serve(&app, environ).unwrap().wire.body(), b"kcats");
}

#[test]
fn a_head_request_gets_the_head_and_no_body() {
    let app = Threaded::new(Probe::default().app(3));
    let environ = Environ::builder()
        .method(Method::HEAD)
        .extension(Capabilities::builder(Offload::new(ThreadPerJob)).build())
        .build()
        .unwrap();
    let served = serve(&app, environ).unwrap();
    assert_eq!(served.wire.heads().len(), 1);
    assert!(served.wire.body().is_empty());
}

#[test]
fn the_adapter_is_cloneable_and_exposes_the_application() {
    let app = Threaded::new(Probe::default().app(0));
    let clone = app.clone();
    assert_eq!(rgi::Application::hints(clone.get_ref()), Hints::default());
    assert!(format!("{clone:?}").starts_with("Threaded { app: "));
}

/// Reads its input whole and echoes it; never blocks otherwise.
#[derive(Clone, Default)]
struct WholeEcho {
    called_on: Arc<Mutex<Option<ThreadId>>>,
}

impl rgi::Application for WholeEcho {
    type Body = Bytes;

    fn call(&self, mut environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
        *self.called_on.lock().unwrap() = Some(thread::current().id());
        let body = environ.input_mut().read_to_bytes(8 * 1024 * 1024)?;
        start.start(ok())?;
        Ok(body)
    }

    fn hints(&self) -> Hints {
        Hints::default()
            .with_input(InputUse::Whole)
            .with_may_block(false)
    }
}

/// An environ whose body arrives through the non-blocking face, in
/// `pieces`, with a Content-Length unless `chunked`.
fn fed_environ(offload: Offload, pieces: &[Bytes], chunked: bool) -> Environ {
    let fed = support::Fed::default();
    for piece in pieces {
        fed.push(piece.clone());
    }
    fed.end();
    let length: usize = pieces.iter().map(Bytes::len).sum();
    let mut builder = Environ::builder()
        .method(Method::POST)
        .extension(Capabilities::builder(offload).build());
    // A chunked body reaches the application without a length (and
    // without the transfer-encoding field, which the server consumes).
    let declared = if chunked {
        None
    } else {
        builder = builder.header(header::CONTENT_LENGTH, HeaderValue::from(length));
        Some(length as u64)
    };
    builder
        .input(Input::from_async(fed, declared))
        .build()
        .unwrap()
}

#[test]
fn a_whole_input_application_runs_inline_after_a_pre_read() {
    for chunked in [false, true] {
        let app = WholeEcho::default();
        let pieces = [Bytes::from_static(b"name="), Bytes::from_static(b"Ada")];
        let served = serve(
            &Threaded::new(app.clone()),
            fed_environ(Offload::new(ThreadPerJob), &pieces, chunked),
        )
        .unwrap();
        assert_eq!(served.wire.body(), b"name=Ada");
        assert_eq!(
            *app.called_on.lock().unwrap(),
            Some(thread::current().id()),
            "called on the polling thread"
        );
    }
}

#[test]
fn a_body_past_the_pre_read_limit_goes_to_the_offload_path_whole() {
    let app = WholeEcho::default();
    let piece = Bytes::from(vec![b'x'; 64 * 1024]);
    let count = rgi_async::PRE_READ_LIMIT / piece.len() + 2;
    let mut pieces: Vec<Bytes> = vec![piece; count];
    pieces.push(Bytes::from_static(b"end"));
    for chunked in [false, true] {
        let served = serve(
            &Threaded::new(app.clone()),
            fed_environ(Offload::new(ThreadPerJob), &pieces, chunked),
        )
        .unwrap();
        let expected: Vec<u8> = pieces.iter().flatten().copied().collect();
        assert_eq!(served.wire.body().len(), expected.len());
        assert!(served.wire.body() == expected, "bytes lost or reordered");
        assert_ne!(
            *app.called_on.lock().unwrap(),
            Some(thread::current().id()),
            "offloaded"
        );
    }
}

#[test]
fn a_declared_length_past_the_limit_is_offloaded_without_a_pre_read() {
    let app = WholeEcho::default();
    let queue = Queue::default();
    let environ = Environ::builder()
        .method(Method::POST)
        .header(
            header::CONTENT_LENGTH,
            HeaderValue::from(rgi_async::PRE_READ_LIMIT + 1),
        )
        .extension(Capabilities::builder(Offload::new(queue.clone())).build())
        .input(Input::from_async(
            support::Fed::default(),
            Some(rgi_async::PRE_READ_LIMIT as u64 + 1),
        ))
        .build()
        .unwrap();
    let (mut state, mut wire) = (ResponseState::new(&Method::POST), Recorder::default());
    let _body = Threaded::new(app)
        .call(environ, &mut state.start_response(&mut wire))
        .unwrap();
    assert_eq!(queue.len(), 1, "offloaded at once");
}

#[test]
fn a_blocking_input_sends_a_whole_input_application_to_the_offload_path() {
    let app = WholeEcho::default();
    let environ = Environ::builder()
        .method(Method::POST)
        .header(header::CONTENT_LENGTH, HeaderValue::from_static("5"))
        .extension(Capabilities::builder(Offload::new(ThreadPerJob)).build())
        .input(Input::new(std::io::Cursor::new(b"hello".to_vec()), Some(5)))
        .build()
        .unwrap();
    let served = serve(&Threaded::new(app.clone()), environ).unwrap();
    assert_eq!(served.wire.body(), b"hello");
    assert_ne!(*app.called_on.lock().unwrap(), Some(thread::current().id()));
}

/// Declares that it reads no input and never blocks, then reads the input
/// whole all the same (against RGI-HINT-3): the D5 application.
struct ReadsDespiteItsHints;

impl rgi::Application for ReadsDespiteItsHints {
    type Body = Bytes;

    fn call(&self, mut environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        start.start(ok())?;
        Ok(Bytes::from(body))
    }

    fn hints(&self) -> Hints {
        Hints::default()
            .with_input(InputUse::None)
            .with_may_block(false)
    }
}

/// Runs `work` on a thread of its own and fails the test, instead of
/// hanging it, when it does not finish within `limit`.
fn within<T: Send + 'static>(limit: Duration, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(work());
    });
    finished
        .recv_timeout(limit)
        .expect("the event-loop thread stayed parked: a deadlock on a single-threaded loop")
}

#[test]
fn d5_an_inline_read_that_would_wait_fails_typed_instead_of_parking_the_loop() {
    // The client's bytes reach the source only when the loop thread runs
    // again, as on a current-thread runtime: a read that parks the loop
    // thread until they arrive never returns.
    let result = within(Duration::from_secs(10), || {
        let fed = support::Fed::default();
        let environ = Environ::builder()
            .method(Method::POST)
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("5"))
            .extension(Capabilities::builder(Offload::new(Queue::default())).build())
            .input(Input::from_async(fed.clone(), Some(5)))
            .build()
            .unwrap();
        let (mut state, mut wire) = (ResponseState::new(&Method::POST), Recorder::default());
        let called = Threaded::new(ReadsDespiteItsHints)
            .call(environ, &mut state.start_response(&mut wire))
            .map(|_body| ())
            .map_err(|err| {
                let typed = err
                    .downcast_ref::<std::io::Error>()
                    .and_then(rgi::InputError::from_io);
                (
                    matches!(typed, Some(rgi::InputError::WouldBlockThread)),
                    err.to_string(),
                )
            });
        fed.push("hello"); // what the loop would have done next
        called
    });
    let (typed, message) = result.expect_err("the read cannot succeed before the bytes arrive");
    assert!(typed, "not InputError::WouldBlockThread: {message}");
}

#[test]
fn d5_an_inline_read_still_gets_the_bytes_already_there() {
    let served = within(Duration::from_secs(10), || {
        let pieces = [Bytes::from_static(b"hel"), Bytes::from_static(b"lo")];
        let environ = fed_environ(Offload::new(Queue::default()), &pieces, true);
        serve(&Threaded::new(ReadsDespiteItsHints), environ).map_err(|err| err.to_string())
    })
    .unwrap();
    assert_eq!(served.wire.body(), b"hello");
}
