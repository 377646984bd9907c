//! Harness code the components share: clients, sinks, wakers, services.
//! No mistake lives here; every mistake is written out in its component.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{Application, Body, Environ, ResponseHead, ResponseSink, ResponseState};
use rgi_async::{
    AsyncApplication, AsyncBody, Capabilities, Job, Offload, OffloadError, OffloadService, Step,
};
use rgi_conformance::client::{AsyncTestClient, TestClient, TestRequest};
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports, Violation};

/// A `200`-style head with a content type, so that no component trips the
/// content-type warning by accident.
pub(crate) fn head(status: StatusCode) -> ResponseHead {
    ResponseHead::new(status)
        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

/// `head(200)`.
pub(crate) fn ok() -> ResponseHead {
    head(StatusCode::OK)
}

/// `ok()` with a Content-Length.
pub(crate) fn ok_with_length(length: u64) -> ResponseHead {
    ok().with_header(header::CONTENT_LENGTH, HeaderValue::from(length))
}

thread_local! {
    /// Set by the harness for correct components: a response that did not
    /// complete means the component (or the kit) failed, which must not
    /// pass as clean.
    static REQUIRE_COMPLETE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the client helpers on this thread fail a run whose response did
/// not complete (the harness sets this for correct components).
pub(crate) fn require_complete(on: bool) {
    REQUIRE_COMPLETE.with(|flag| flag.set(on));
}

fn check(response: &rgi_conformance::client::TestResponse) -> Result<(), String> {
    if REQUIRE_COMPLETE.with(std::cell::Cell::get) && !response.ending.is_complete() {
        return Err(format!(
            "the response did not complete: {:?}",
            response.ending
        ));
    }
    Ok(())
}

/// Runs `requests` through a synchronous test client for `app`.
pub(crate) fn sync_client<A: Application>(
    app: A,
    requests: impl IntoIterator<Item = TestRequest>,
) -> Result<Vec<Violation>, String> {
    let client = TestClient::new(app);
    let mut seen = Vec::new();
    for request in requests {
        let response = client.request(request).map_err(|e| e.to_string())?;
        check(&response)?;
        seen.extend(response.violations);
    }
    Ok(seen)
}

/// Runs `requests` through an asynchronous test client.
pub(crate) fn async_client<A: AsyncApplication>(
    client: &AsyncTestClient<A>,
    requests: impl IntoIterator<Item = TestRequest>,
) -> Result<Vec<Violation>, String> {
    let mut seen = Vec::new();
    for request in requests {
        let response = client.request(request).map_err(|e| e.to_string())?;
        check(&response)?;
        seen.extend(response.violations);
    }
    Ok(seen)
}

/// One asynchronous request to a fresh client for `app`.
pub(crate) fn async_one<A: AsyncApplication>(
    app: A,
    request: TestRequest,
) -> Result<Vec<Violation>, String> {
    async_client(&AsyncTestClient::new(app), [request])
}

/// Runs a synchronous middleware the way its author would test it: the
/// test client (with its validator) outside, and a validator between the
/// middleware and the inner application, both reporting.
pub(crate) fn sync_mw<A, M>(
    inner: A,
    wrap: impl FnOnce(Validator<A>) -> M,
    requests: impl IntoIterator<Item = TestRequest>,
) -> Result<Vec<Violation>, String>
where
    A: Application,
    M: Application,
{
    let reports = Reports::new(Policy::Collect);
    let outer = wrap(Validator::new(inner, reports.clone()));
    let mut seen = sync_client(outer, requests)?;
    seen.extend(reports.all());
    Ok(seen)
}

/// As [`sync_mw`], for an asynchronous middleware.
pub(crate) fn async_mw<A, M>(
    inner: A,
    wrap: impl FnOnce(AsyncValidator<A>) -> M,
    request: TestRequest,
) -> Result<Vec<Violation>, String>
where
    A: AsyncApplication,
    M: AsyncApplication,
{
    let reports = Reports::new(Policy::Collect);
    let outer = wrap(AsyncValidator::new(inner, reports.clone()));
    let mut seen = async_one(outer, request)?;
    seen.extend(reports.all());
    Ok(seen)
}

/// As [`sync_mw`], for an asynchronous adapter over a synchronous
/// application.
pub(crate) fn adapter_mw<A, M>(
    inner: A,
    wrap: impl FnOnce(Validator<A>) -> M,
    request: TestRequest,
) -> Result<Vec<Violation>, String>
where
    A: Application,
    M: AsyncApplication,
{
    let reports = Reports::new(Policy::Collect);
    let outer = wrap(Validator::new(inner, reports.clone()));
    let mut seen = async_one(outer, request)?;
    seen.extend(reports.all());
    Ok(seen)
}

/// A transport that keeps what it is given.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    pub(crate) heads: Vec<ResponseHead>,
    pub(crate) data: Vec<u8>,
}

impl ResponseSink for Wire {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.heads.push(head);
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.data.extend_from_slice(&data);
        Ok(())
    }
}

/// A request head as a careful HTTP/1.1 server would build it: a Host
/// field and nothing else.
pub(crate) fn request(method: Method) -> rgi::EnvironBuilder {
    Environ::builder()
        .method(method)
        .header(header::HOST, HeaderValue::from_static("example.org"))
}

/// A fresh collecting report list.
pub(crate) fn reports() -> Reports {
    Reports::new(Policy::Collect)
}

/// What a probe's validator saw, once the validator is gone (so that any
/// check it makes when dropped has run).
pub(crate) fn seen<V>(validator: V, reports: &Reports) -> Vec<Violation> {
    drop(validator);
    reports.all()
}

/// The correct pull loop of spec/rgi.md §2.1, for the parts of a server
/// component that are not its mistake.
pub(crate) fn pull_all(
    body: &mut dyn Body,
    state: &mut ResponseState,
    wire: &mut Wire,
) -> Result<(), String> {
    while let Some(chunk) = body.next_chunk(&mut state.start_response(wire)) {
        let chunk = chunk.map_err(|e| e.to_string())?;
        state.send_chunk(wire, chunk).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A waker that unparks the polling thread and remembers that it fired.
#[derive(Debug)]
pub(crate) struct Flag {
    woken: AtomicBool,
    thread: Thread,
}

impl Flag {
    /// A flag for the current thread, and its waker.
    pub(crate) fn new() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(false),
            thread: thread::current(),
        });
        let waker = Waker::from(Arc::clone(&flag));
        (flag, waker)
    }

    /// Parks until woken or `limit` passes; whether it was woken.
    pub(crate) fn wait(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.woken.swap(false, Ordering::AcqRel) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            thread::park_timeout(deadline - now);
        }
        true
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// An offload service that starts a thread per job: correct, if lavish.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ThreadPerJob;

impl OffloadService for ThreadPerJob {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        thread::Builder::new()
            .name("corpus-offload".to_owned())
            .spawn(move || job.run())
            .map(|_| ())
            .map_err(|_| OffloadError::Saturated { capacity: 0 })
    }
}

/// Capabilities with a working offload and nothing else.
pub(crate) fn capabilities() -> Capabilities {
    Capabilities::builder(Offload::new(ThreadPerJob)).build()
}

/// Polls `body` once with `waker`, lending a handle over `state`.
pub(crate) fn poll_step<B: AsyncBody + ?Sized>(
    body: Pin<&mut B>,
    waker: &Waker,
    state: &mut ResponseState,
    wire: &mut Wire,
) -> Poll<Option<Result<Step, rgi::BoxError>>> {
    let mut cx = Context::from_waker(waker);
    body.poll_step(&mut cx, &mut state.start_response(wire))
}

/// The correct asynchronous server loop for everything a server component
/// does not get wrong: poll, send each chunk before the next poll, wait
/// for the waker after `Pending`, run a switch on a worker thread after
/// dropping the body, finish.
pub(crate) fn drive_async<B: AsyncBody>(
    body: B,
    state: &mut ResponseState,
    wire: &mut Wire,
) -> Result<(), String> {
    let (flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    loop {
        match poll_step(body.as_mut(), &waker, state, wire) {
            Poll::Pending => {
                if !flag.wait(Duration::from_secs(2)) {
                    return Err("the body was never woken".to_owned());
                }
            }
            Poll::Ready(None) => break,
            Poll::Ready(Some(Err(e))) => return Err(e.to_string()),
            Poll::Ready(Some(Ok(Step::Chunk(chunk)))) => {
                state.send_chunk(wire, chunk).map_err(|e| e.to_string())?;
            }
            Poll::Ready(Some(Ok(Step::Switch(switch)))) => {
                drop(body);
                return thread::scope(|scope| {
                    scope
                        .spawn(|| {
                            let mut sync_body = switch
                                .run(&mut state.start_response(wire))
                                .map_err(|e| e.to_string())?;
                            pull_all(sync_body.as_mut(), state, wire)?;
                            drop(sync_body);
                            state.finish(wire).map(|_| ()).map_err(|e| e.to_string())
                        })
                        .join()
                        .unwrap_or_else(|_| Err("the continuation panicked".to_owned()))
                });
            }
            Poll::Ready(Some(Ok(_))) => return Err("a step this server does not know".to_owned()),
        }
    }
    drop(body);
    state.finish(wire).map(|_| ()).map_err(|e| e.to_string())
}

/// A broken component.
pub(crate) fn broken(
    name: &'static str,
    kind: crate::Kind,
    interface: crate::Interface,
    clause: &'static str,
    side: rgi_conformance::Side,
    run: fn() -> Result<Vec<Violation>, String>,
) -> crate::Component {
    crate::Component {
        name,
        kind,
        interface,
        expect: crate::Expect::Broken { clause, side },
        run,
    }
}

/// A correct component.
pub(crate) fn correct(
    name: &'static str,
    kind: crate::Kind,
    interface: crate::Interface,
    run: fn() -> Result<Vec<Violation>, String>,
) -> crate::Component {
    crate::Component {
        name,
        kind,
        interface,
        expect: crate::Expect::Correct,
        run,
    }
}

/// A synchronous body whose pulls a closure answers; the closure is where
/// a component writes its behaviour (right or wrong).
pub(crate) struct Script<F> {
    pub(crate) next: F,
    pub(crate) hint: Option<u64>,
}

impl<F> Script<F> {
    /// A body without a size hint.
    pub(crate) fn new(next: F) -> Self {
        Script { next, hint: None }
    }
}

impl<F> Body for Script<F>
where
    F: FnMut(&mut rgi::StartResponse<'_>) -> Option<Result<Bytes, rgi::BoxError>> + Send,
{
    fn next_chunk(
        &mut self,
        start: &mut rgi::StartResponse<'_>,
    ) -> Option<Result<Bytes, rgi::BoxError>> {
        (self.next)(start)
    }

    fn size_hint(&self) -> Option<u64> {
        self.hint
    }
}

/// The asynchronous counterpart of [`Script`].
pub(crate) struct AsyncScript<F> {
    pub(crate) next: F,
    pub(crate) hint: Option<u64>,
}

impl<F> AsyncScript<F> {
    /// A body without a size hint.
    pub(crate) fn new(next: F) -> Self {
        AsyncScript { next, hint: None }
    }
}

impl<F> AsyncBody for AsyncScript<F>
where
    F: FnMut(
            &mut Context<'_>,
            &mut rgi::StartResponse<'_>,
        ) -> Poll<Option<Result<Step, rgi::BoxError>>>
        + Send
        + Unpin,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut rgi::StartResponse<'_>,
    ) -> Poll<Option<Result<Step, rgi::BoxError>>> {
        (self.get_mut().next)(cx, start)
    }

    fn size_hint(&self) -> Option<u64> {
        self.hint
    }
}

/// `Poll::Ready(Some(Ok(Step::Chunk(..))))`.
pub(crate) fn chunk(data: &'static [u8]) -> Poll<Option<Result<Step, rgi::BoxError>>> {
    Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(data)))))
}

/// A head as a plain `http` status, for components that need an unusual
/// one.
pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
