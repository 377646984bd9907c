//! The file body forwarded by a middleware that does not touch the bytes
//! (`RGI-MW-8`), start-up and shut-down forwarded (`RGI-LIFE-4`,
//! `RGIA-LIFE-2`), and `on_drop` for an aborted response: driven the way a
//! server drives them, with a validator on each side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, StatusCode};
use rgi::{
    Application, Body, BoxError, Environ, FileBody, ResponseSink, ResponseState, ServerInfo,
    StartResponse, Startup,
};
use rgi_async::{AsyncApplication, AsyncBody};
use rgi_conformance::rt::Recorder;
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports};
use rgi_middleware::{BodyAccess, CatchErrors, Ending, Incoming, Middleware, Outcome};

use common::{Parts, text_head};

type Log = Arc<Mutex<Vec<Outcome>>>;

/// Logs each outcome; its body access is chosen per test.
struct Logged(Log, BodyAccess);

impl Middleware for Logged {
    type State = ();

    fn on_request(&self, _request: &mut Incoming<'_>) {}

    fn body_access(&self, _state: &()) -> BodyAccess {
        self.1
    }

    fn on_drop(&self, _state: (), outcome: Outcome) {
        self.0.lock().expect("not poisoned").push(outcome);
    }
}

fn environ() -> Environ {
    Environ::builder()
        .header(HOST, HeaderValue::from_static("example.org"))
        .build()
        .expect("a plain environ")
}

fn assert_empty(reports: &Reports, side: &str) {
    let seen = reports.take();
    assert!(seen.is_empty(), "{side} validator: {seen:#?}");
}

fn file_app() -> impl Application {
    // Tests run in parallel: each request gets a file of its own.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    rgi::from_fn(|_environ, start: &mut StartResponse<'_>| {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "rgi-middleware-file-{}-{n}.txt",
            std::process::id()
        ));
        std::fs::File::create(&path)?.write_all(b"0123456789")?;
        let file = std::fs::File::open(&path)?;
        std::fs::remove_file(&path)?;
        start.start(text_head(Some(10)))?;
        Ok(FileBody::new(file)?)
    })
}

#[test]
fn file_body_forwarded_and_counted_after_platform_transfer() -> Result<(), BoxError> {
    let (log, outer, inner) = (
        Log::default(),
        Reports::new(Policy::Collect),
        Reports::new(Policy::Collect),
    );
    let app = Validator::new(
        Logged(log.clone(), BodyAccess::PassThrough)
            .wrap(Validator::new(file_app(), inner.clone())),
        outer.clone(),
    );
    let environ = environ();
    let mut state = ResponseState::new(environ.method());
    let mut sink = Recorder::new();
    let mut body = app.call(environ, &mut state.start_response(&mut sink))?;
    let file = body.file().ok_or("the file body was not forwarded")?;
    assert_eq!((file.offset(), file.remaining()), (0, Some(10)));

    // Four bytes by "platform transfer", as a server does it (RGI-FILE-3
    // to RGI-FILE-5): the head alone, the bytes, the accounting.
    state.send_head(&mut sink)?;
    sink.send_data(Bytes::from_static(b"0123"))?;
    state.record_sent(4)?;
    file.advance(4);

    // The rest through the portable fallback.
    while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut sink)) {
        state.send_chunk(&mut sink, chunk?)?;
    }
    drop(body);
    state.finish(&mut sink)?;

    assert_eq!(sink.body(), b"0123456789");
    assert_empty(&outer, "outer");
    assert_empty(&inner, "inner");
    let outcome = log.lock().expect("not poisoned")[0];
    assert_eq!(outcome.ending, Ending::Complete);
    assert_eq!(
        outcome.body_bytes, 10,
        "bytes sent by platform transfer are counted"
    );
    Ok(())
}

#[test]
fn file_body_hidden_when_the_middleware_sees_the_bytes() -> Result<(), BoxError> {
    for access in [BodyAccess::Observe, BodyAccess::Transform] {
        let app = Logged(Log::default(), access).wrap(file_app());
        let environ = environ();
        let mut state = ResponseState::new(environ.method());
        let mut sink = Recorder::new();
        let mut body = app.call(environ, &mut state.start_response(&mut sink))?;
        assert!(
            body.file().is_none(),
            "{access:?} must not hand out the file"
        );
    }
    Ok(())
}

#[test]
fn aborted_response_logged_sync() -> Result<(), BoxError> {
    let log = Log::default();
    let app =
        Logged(log.clone(), BodyAccess::PassThrough).wrap(rgi::from_fn(|_environ, _start| {
            Ok(Parts::new(Some(text_head(None)), &["first", "second"]))
        }));
    let environ = environ();
    let mut state = ResponseState::new(environ.method());
    let mut sink = Recorder::new();
    let mut body = app.call(environ, &mut state.start_response(&mut sink))?;
    let chunk = body
        .next_chunk(&mut state.start_response(&mut sink))
        .ok_or("a chunk")??;
    state.send_chunk(&mut sink, chunk)?;
    assert!(
        log.lock().expect("not poisoned").is_empty(),
        "not before the drop"
    );
    drop(body); // the client went away
    let outcome = log.lock().expect("not poisoned")[0];
    assert_eq!(outcome.ending, Ending::Aborted);
    assert_eq!(outcome.body_bytes, 5);
    assert_eq!(outcome.status, Some(StatusCode::OK));
    Ok(())
}

#[test]
fn aborted_response_logged_async() -> Result<(), BoxError> {
    let log = Log::default();
    let app = Logged(log.clone(), BodyAccess::PassThrough).wrap(rgi_async::from_fn(
        |_environ, _start| Ok(Parts::new(Some(text_head(None)), &["first", "second"])),
    ));
    let environ = environ();
    let mut state = ResponseState::new(environ.method());
    let mut sink = Recorder::new();
    let mut body = Box::pin(AsyncApplication::call(
        &app,
        environ,
        &mut state.start_response(&mut sink),
    )?);
    let mut cx = Context::from_waker(Waker::noop());
    let step = body
        .as_mut()
        .poll_step(&mut cx, &mut state.start_response(&mut sink));
    assert!(
        matches!(step, std::task::Poll::Ready(Some(Ok(rgi_async::Step::Chunk(ref c)))) if c == "first")
    );
    drop(body);
    let outcome = log.lock().expect("not poisoned")[0];
    assert_eq!((outcome.ending, outcome.body_bytes), (Ending::Aborted, 5));
    Ok(())
}

// ---- Lifespan -------------------------------------------------------------

type Order = Arc<Mutex<Vec<&'static str>>>;

/// What the inner start-up shares.
#[derive(Clone)]
struct Pool;

/// Records its start-up (which must come after the inner one: it finds
/// the inner state) and its shut-down.
struct Life(Order);

impl Middleware for Life {
    type State = ();

    fn on_request(&self, _request: &mut Incoming<'_>) {}

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        startup
            .server_info()
            .extension::<Pool>()
            .ok_or("the inner start-up has not run")?;
        self.0
            .lock()
            .expect("not poisoned")
            .push("middleware startup");
        Ok(())
    }

    fn shutdown(&self) {
        self.0
            .lock()
            .expect("not poisoned")
            .push("middleware shutdown");
    }
}

const EXPECTED: [&str; 4] = [
    "inner startup",
    "middleware startup",
    "middleware shutdown",
    "inner shutdown",
];

#[test]
fn lifespan_forwarded_sync() -> Result<(), Box<dyn std::error::Error>> {
    let order = Order::default();
    let (up, down) = (order.clone(), order.clone());
    let inner_app = rgi::with_lifespan(
        rgi::from_fn(|_environ, start: &mut StartResponse<'_>| {
            start.start(StatusCode::NO_CONTENT)?;
            Ok(rgi::Empty)
        }),
        move |startup| {
            up.lock().expect("not poisoned").push("inner startup");
            startup.insert_state(Pool);
            Ok(())
        },
        move || down.lock().expect("not poisoned").push("inner shutdown"),
    );
    let (outer, inner) = (Reports::new(Policy::Collect), Reports::new(Policy::Collect));
    // CatchErrors in the stack too: it forwards the hooks as well.
    let app = Validator::new(
        CatchErrors::new(Life(order.clone()).wrap(Validator::new(inner_app, inner.clone()))),
        outer.clone(),
    );
    let server = rgi::run_startup(ServerInfo::new("localhost", 80)?, |s| app.startup(s))?;
    assert!(server.extension::<Pool>().is_some());
    rgi::run_shutdown(|| app.shutdown())?;
    assert_eq!(*order.lock().expect("not poisoned"), EXPECTED);
    assert_empty(&outer, "outer");
    assert_empty(&inner, "inner");
    Ok(())
}

/// An asynchronous application with a start-up and a shut-down.
struct AsyncLife(Order);

impl AsyncApplication for AsyncLife {
    type Body = rgi::Empty;

    fn call(
        &self,
        _environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<rgi::Empty, BoxError> {
        start.start(StatusCode::NO_CONTENT)?;
        Ok(rgi::Empty)
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.0.lock().expect("not poisoned").push("inner startup");
        startup.insert_state(Pool);
        Ok(())
    }

    fn shutdown(&self) {
        self.0.lock().expect("not poisoned").push("inner shutdown");
    }
}

#[test]
fn lifespan_forwarded_async() -> Result<(), Box<dyn std::error::Error>> {
    let order = Order::default();
    let (outer, inner) = (Reports::new(Policy::Collect), Reports::new(Policy::Collect));
    let app = AsyncValidator::new(
        CatchErrors::new(
            Life(order.clone()).wrap(AsyncValidator::new(AsyncLife(order.clone()), inner.clone())),
        ),
        outer.clone(),
    );
    let server = rgi::run_startup(ServerInfo::new("localhost", 80)?, |s| app.startup(s))?;
    assert!(server.extension::<Pool>().is_some());
    rgi::run_shutdown(|| app.shutdown())?;
    assert_eq!(*order.lock().expect("not poisoned"), EXPECTED);
    assert_empty(&outer, "outer");
    assert_empty(&inner, "inner");
    Ok(())
}
