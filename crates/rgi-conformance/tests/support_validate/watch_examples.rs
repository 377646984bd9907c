//! Broken examples for the watchdog's checks (issue 11 §2, time and
//! stalls): applications that block where they must not, a server that
//! runs a blocking application on a loop thread, a readiness service that
//! can never resolve, and a middleware that makes up a `Pending`.
//!
//! The sleeps are several times the allowances they exceed, so that the
//! examples trip the checks on a loaded machine too.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use rgi::{Application, BoxError, Environ, Hints, InputUse, StartResponse};
use rgi_async::{
    AsyncApplication, AsyncBody, Interest, Readiness, ReadinessService, Source, Step, Threaded,
    WaitAnyFuture, WaitFuture,
};
use rgi_conformance::Violation;
use rgi_conformance::client::{AsyncTestClient, TestRequest};
use rgi_conformance::rt::{Recorder, serve_async_within, serve_sync};
use rgi_conformance::validate::{AsyncValidator, Validator, Watchdog};

use super::common::{build, capabilities, collect, environ, text};

/// Three times the default allowance for calls that must not block.
pub(crate) const LONG_BLOCK: Duration = Duration::from_millis(450);

/// How long the stall examples let a body stay pending.
pub(crate) const STALL: Duration = Duration::from_millis(300);

/// One `GET` through the asynchronous test client; what it reported.
pub(crate) fn via_async_client<A: AsyncApplication>(app: A) -> Vec<Violation> {
    AsyncTestClient::new(app)
        .with_stall_timeout(STALL)
        .request(TestRequest::get("/"))
        .expect("the request is well-formed")
        .violations
}

/// One request served to `app` through a [`Validator`] with `watchdog`.
pub(crate) fn via_sync_validator<A: Application>(app: A, watchdog: Watchdog) -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(app, reports.clone()).with_watchdog(watchdog);
    let _ = serve_sync(&validator, build(environ()), &mut Recorder::new());
    drop(validator);
    reports.all()
}

/// An asynchronous body that yields `steps` chunks, running `each` before
/// every poll, and `on_drop` when dropped.
pub(crate) struct Ticking {
    pub(crate) steps: u32,
    pub(crate) each: fn(),
    pub(crate) on_drop: fn(),
}

impl AsyncBody for Ticking {
    fn poll_step(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if self.steps == 0 {
            return Poll::Ready(None);
        }
        self.steps -= 1;
        (self.each)();
        Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"tick\n")))))
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        (self.on_drop)();
    }
}

fn nothing() {}

fn sleep_long() {
    thread::sleep(LONG_BLOCK);
}

/// An asynchronous application whose bodies tick; `call` runs `in_call`.
pub(crate) fn ticking_app(
    in_call: fn(),
    each: fn(),
    on_drop: fn(),
) -> impl AsyncApplication<Body = Ticking> {
    rgi_async::from_fn(move |_environ: Environ, start| {
        in_call();
        start.start(text(StatusCode::OK))?;
        Ok(Ticking {
            steps: 2,
            each,
            on_drop,
        })
    })
}

/// Sleeps in `call` (a blocking rate limiter). RGIA-APP-2.
pub(crate) fn async_call_blocked() -> Vec<Violation> {
    via_async_client(ticking_app(sleep_long, nothing, nothing))
}

/// Sleeps in `poll_step`. RGIA-APP-3.
pub(crate) fn async_poll_blocked() -> Vec<Violation> {
    via_async_client(ticking_app(nothing, sleep_long, nothing))
}

/// Sleeps in the body's `Drop`. RGIA-APP-3.
pub(crate) fn async_drop_blocked() -> Vec<Violation> {
    via_async_client(ticking_app(nothing, nothing, sleep_long))
}

/// The hints a synchronous application that claims to run inline gives.
pub(crate) fn inline_hints() -> Hints {
    Hints::default()
        .with_input(InputUse::None)
        .with_may_block(false)
}

/// A synchronous application that sleeps in `call`, with `hints`.
pub(crate) fn sleeping_sync_app(hints: Hints) -> impl Application {
    rgi::from_fn(|_environ: Environ, start| {
        thread::sleep(LONG_BLOCK);
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"slow"))
    })
    .with_hints(hints)
}

/// Says it never blocks, then sleeps in `call`. RGI-HINT-3.
pub(crate) fn non_blocking_hint_broken() -> Vec<Violation> {
    via_sync_validator(sleeping_sync_app(inline_hints()), Watchdog::new())
}

/// The same, run inline by the threaded adapter on the loop thread.
/// RGI-HINT-3.
pub(crate) fn inline_sync_app_blocked() -> Vec<Violation> {
    via_async_client(Threaded::new(sleeping_sync_app(inline_hints())))
}

/// A synchronous body whose `Drop` flushes slowly. RGI-BODY-13.
pub(crate) struct SlowDrop(pub(crate) Duration);

impl rgi::Body for SlowDrop {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        None
    }
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        thread::sleep(self.0);
    }
}

/// A body whose `Drop` takes three times the drop allowance set.
/// RGI-BODY-13.
pub(crate) fn slow_body_drop() -> Vec<Violation> {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::NO_CONTENT))?;
        Ok(SlowDrop(LONG_BLOCK))
    });
    via_sync_validator(
        app,
        Watchdog::new().with_slow_drop(Duration::from_millis(150)),
    )
}

/// A hand-written adapter that calls a synchronous application (default
/// hints: it may block) inside its own asynchronous `call`, on the loop
/// thread. RGI-HINT-5, as the synchronous application's server.
struct OnLoop<A>(A);

impl<A: Application> AsyncApplication for OnLoop<A> {
    type Body = Pulled<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        self.0
            .call(environ, start)
            .map(|body| Pulled(Box::new(body)))
    }
}

/// Pulls the synchronous body inside `poll_step`, on the loop thread.
pub(crate) struct Pulled<B>(Box<B>);

impl<B: rgi::Body> AsyncBody for Pulled<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(
            self.get_mut()
                .0
                .next_chunk(start)
                .map(|chunk| chunk.map(Step::Chunk)),
        )
    }
}

/// RGI-HINT-5: the inner validator sees its application run on a loop
/// thread.
pub(crate) fn blocking_app_on_loop_thread() -> Vec<Violation> {
    let inner = collect();
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"fast, but it may block"))
    });
    let mut seen = via_async_client(OnLoop(Validator::new(app, inner.clone())));
    seen.extend(inner.all());
    seen
}

/// A readiness service whose waits register nothing: they stay pending
/// for ever, however ready the descriptor is.
pub(crate) struct Deaf;

impl ReadinessService for Deaf {
    fn wait<'a>(
        &self,
        _source: Source<'a>,
        _interest: Interest,
        _timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        Box::pin(std::future::pending())
    }

    fn wait_any<'a>(
        &self,
        _sources: Vec<(Source<'a>, Interest)>,
        _timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        Box::pin(std::future::pending())
    }
}

/// A body that waits until a pipe with data in it is readable.
pub(crate) struct WaitsForPipe {
    wait: Option<WaitFuture<'static>>,
}

impl AsyncBody for WaitsForPipe {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let Some(wait) = self.wait.as_mut() else {
            return Poll::Ready(None);
        };
        match wait.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(outcome) => {
                self.wait = None;
                let text = format!("{:?}", outcome.map_err(BoxError::from));
                Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(text)))))
            }
        }
    }
}

/// An application that waits for a readable pipe with its request's
/// readiness capability (the pipe is leaked: the wait borrows it for
/// `'static`, which a test can afford).
pub(crate) fn pipe_waiter() -> impl AsyncApplication<Body = WaitsForPipe> {
    rgi_async::from_fn(|environ: Environ, start| {
        let capabilities = rgi_async::Capabilities::of(&environ).ok_or("no capabilities")?;
        let readiness = capabilities.readiness().ok_or("no readiness")?.clone();
        let (reader, mut writer) = std::io::pipe()?;
        std::io::Write::write_all(&mut writer, b"x")?;
        let reader: &'static std::io::PipeReader = Box::leak(Box::new(reader));
        Box::leak(Box::new(writer));
        start.start(text(StatusCode::OK))?;
        Ok(WaitsForPipe {
            wait: Some(readiness.wait(
                reader,
                Interest::READABLE,
                Some(Duration::from_millis(100)),
            )),
        })
    })
}

/// A server whose readiness waits never resolve: the stall is the
/// server's (RGIA-READY-1), not the body's.
pub(crate) fn readiness_pending_without_wakeup() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(pipe_waiter(), reports.clone());
    let environ =
        build(environ().extension(capabilities().readiness(Readiness::new(Deaf)).build()));
    let _ = serve_async_within(&validator, environ, &mut Recorder::new(), STALL);
    drop(validator);
    reports.all()
}

/// A middleware that returns `Pending` on its first poll, without polling
/// the inner body or arranging a wake-up. RGIA-COMP-9.
pub(crate) struct MakesUpPending<A>(pub(crate) A);

/// Its body.
pub(crate) struct MadeUp<B> {
    inner: Pin<Box<B>>,
    first: bool,
}

impl<A: AsyncApplication> AsyncApplication for MakesUpPending<A> {
    type Body = MadeUp<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        Ok(MadeUp {
            inner: Box::pin(self.0.call(environ, start)?),
            first: true,
        })
    }
}

impl<B: AsyncBody> AsyncBody for MadeUp<B> {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if std::mem::replace(&mut self.first, false) {
            return Poll::Pending;
        }
        self.inner.as_mut().poll_step(cx, start)
    }
}

/// RGIA-COMP-9, seen by the validator outside the middleware.
pub(crate) fn middleware_pending_without_cause() -> Vec<Violation> {
    let inner = collect();
    let app = ticking_app(nothing, nothing, nothing);
    let mut seen = via_async_client(MakesUpPending(AsyncValidator::new(app, inner.clone())));
    seen.extend(inner.all());
    seen
}

/// A body that waits for a thread that wakes it soon.
pub(crate) struct WokenSoon(pub(crate) Arc<Mutex<(bool, Option<Waker>)>>);

impl AsyncBody for WokenSoon {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let mut slot = self.0.lock().expect("not poisoned");
        if slot.0 {
            return Poll::Ready(None);
        }
        slot.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// An application whose body is woken by a thread after `SOON`.
pub(crate) fn woken_soon() -> impl AsyncApplication<Body = WokenSoon> {
    rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::NO_CONTENT))?;
        let slot: Arc<Mutex<(bool, Option<Waker>)>> = Arc::default();
        let waker = Arc::clone(&slot);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            let mut slot = waker.lock().expect("not poisoned");
            slot.0 = true;
            if let Some(waker) = slot.1.take() {
                waker.wake();
            }
        });
        Ok(WokenSoon(slot))
    })
}

/// A server that, after `Pending`, sleeps its fixed tick before polling
/// again instead of waiting for the wake-up. RGIA-POLL-3.
pub(crate) fn wake_honoured_late() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(woken_soon(), reports.clone())
        .with_watchdog(Watchdog::new().with_late_wake(Duration::from_millis(200)));
    let environ = build(environ().extension(capabilities().build()));
    let mut state = rgi::ResponseState::new(environ.method());
    let mut wire = Recorder::new();
    let body = validator
        .call(environ, &mut state.start_response(&mut wire))
        .expect("the application starts");
    let mut body = Box::pin(body);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..4 {
        match body
            .as_mut()
            .poll_step(&mut cx, &mut state.start_response(&mut wire))
        {
            Poll::Pending => thread::sleep(Duration::from_millis(800)),
            Poll::Ready(_) => break,
        }
    }
    drop(body);
    let _ = state.finish(&mut wire);
    drop(validator);
    reports.all()
}

/// An offload service whose `execute` waits for capacity (here: sleeps)
/// before it starts the job's thread. RGIA-OFFLOAD-2.
pub(crate) struct WaitsForCapacity;

impl rgi_async::OffloadService for WaitsForCapacity {
    fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
        thread::sleep(LONG_BLOCK);
        thread::spawn(move || job.run());
        Ok(())
    }
}

/// An after-response service whose `spawn` blocks before queuing (the
/// tasks are kept, never run: the response never completes in this
/// example's eyes). RGIA-AFTER-4.
#[derive(Default)]
pub(crate) struct SlowQueue(Mutex<Vec<rgi_async::AfterTask>>);

impl rgi_async::AfterResponseService for SlowQueue {
    fn spawn(&self, task: rgi_async::AfterTask) -> Result<(), rgi_async::AfterError> {
        thread::sleep(LONG_BLOCK);
        self.0.lock().expect("not poisoned").push(task);
        Ok(())
    }
}

/// An application that hands its server one offload job and one
/// after-response task in `call`, and waits for the job.
pub(crate) fn uses_services() -> impl AsyncApplication {
    rgi_async::from_fn(|environ: Environ, start| {
        let capabilities = rgi_async::Capabilities::of(&environ).ok_or("no capabilities")?;
        if let Some(after) = capabilities.after_response() {
            after.spawn(|| {})?;
        }
        let job = capabilities.offload().run(|| "done");
        start.start(text(StatusCode::OK))?;
        Ok(AwaitsJob(Some(job)))
    })
}

/// Waits for an offload job, then yields its answer.
pub(crate) struct AwaitsJob(Option<rgi_async::OffloadFuture<&'static str>>);

impl AsyncBody for AwaitsJob {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let Some(job) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(job).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(answer) => {
                self.0 = None;
                Poll::Ready(Some(
                    answer
                        .map(|text| Step::Chunk(Bytes::from_static(text.as_bytes())))
                        .map_err(BoxError::from),
                ))
            }
        }
    }
}

/// Serves `uses_services` with `capabilities`; what the validator saw.
pub(crate) fn with_services(capabilities: rgi_async::Capabilities) -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(uses_services(), reports.clone());
    let environ = build(environ().extension(capabilities));
    let _ = serve_async_within(&validator, environ, &mut Recorder::new(), STALL * 10);
    drop(validator);
    reports.all()
}

/// RGIA-OFFLOAD-2: the blocked time is the server's, not the
/// application's (no RGIA-APP-2).
pub(crate) fn offload_execute_blocked() -> Vec<Violation> {
    with_services(
        rgi_async::Capabilities::builder(rgi_async::Offload::new(WaitsForCapacity)).build(),
    )
}

/// RGIA-AFTER-4, likewise.
pub(crate) fn after_spawn_blocked() -> Vec<Violation> {
    with_services(
        capabilities()
            .after_response(rgi_async::AfterResponse::new(SlowQueue::default()))
            .build(),
    )
}

/// An application that switches at once; its continuation answers.
pub(crate) fn switcher() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, _start| {
        Ok(SwitchesOnce(Some(rgi_async::SyncSwitch::new(|start| {
            start.start(text(StatusCode::OK))?;
            Ok(Bytes::from_static(b"switched"))
        }))))
    })
}

/// Yields its switch at the first poll.
pub(crate) struct SwitchesOnce(Option<rgi_async::SyncSwitch>);

impl AsyncBody for SwitchesOnce {
    fn poll_step(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(self.0.take().map(|switch| Ok(Step::Switch(switch))))
    }
}

/// A middleware that runs the inner body's continuation itself, inside
/// its own poll on the loop thread, and streams the synchronous body as
/// chunks. RGIA-COMP-11.
pub(crate) struct RunsContinuation<A>(pub(crate) A);

/// Its body: the inner asynchronous body, then the continuation's body.
pub(crate) enum Running<B> {
    Inner(Pin<Box<B>>),
    Sync(Box<dyn rgi::Body>),
    Done,
}

impl<A: AsyncApplication> AsyncApplication for RunsContinuation<A> {
    type Body = Running<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        Ok(Running::Inner(Box::pin(self.0.call(environ, start)?)))
    }
}

impl<B: AsyncBody> AsyncBody for Running<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if let Running::Sync(body) = this {
            let next = body.next_chunk(start);
            if next.is_none() {
                *this = Running::Done;
            }
            return Poll::Ready(next.map(|chunk| chunk.map(Step::Chunk)));
        }
        let Running::Inner(inner) = this else {
            return Poll::Ready(None);
        };
        match inner.as_mut().poll_step(cx, start) {
            Poll::Ready(Some(Ok(Step::Switch(switch)))) => {
                *this = Running::Done; // the inner body is dropped first
                match switch.run(start) {
                    Ok(body) => {
                        *this = Running::Sync(body);
                        Poll::Ready(Some(Ok(Step::Chunk(Bytes::new()))))
                    }
                    Err(err) => Poll::Ready(Some(Err(err))),
                }
            }
            other => other,
        }
    }
}

/// RGIA-COMP-11, seen by the validator inside the middleware.
pub(crate) fn middleware_ran_continuation() -> Vec<Violation> {
    let inner = collect();
    let mut seen = via_async_client(RunsContinuation(AsyncValidator::new(
        switcher(),
        inner.clone(),
    )));
    seen.extend(inner.all());
    seen
}

/// A readiness service whose waits keep the waker but never resolve,
/// not even when their timeout has passed.
pub(crate) struct NoTimer;

/// Its wait.
pub(crate) struct Unresolved;

impl Future for Unresolved {
    type Output = Result<rgi_async::WaitOutcome, rgi_async::ReadinessError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Kept, so the body is not blamed; never woken.
        Box::leak(Box::new(cx.waker().clone()));
        Poll::Pending
    }
}

impl ReadinessService for NoTimer {
    fn wait<'a>(
        &self,
        _source: Source<'a>,
        _interest: Interest,
        _timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        Box::pin(Unresolved)
    }

    fn wait_any<'a>(
        &self,
        _sources: Vec<(Source<'a>, Interest)>,
        _timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        Box::pin(std::future::pending())
    }
}

/// A wait with a 100 ms timeout still pending when the stalled body is
/// dropped, seconds later by the late-wake allowance set. RGIA-READY-7.
pub(crate) fn readiness_timeout_missed() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(pipe_waiter(), reports.clone())
        .with_watchdog(Watchdog::new().with_late_wake(Duration::from_millis(100)));
    let environ =
        build(environ().extension(capabilities().readiness(Readiness::new(NoTimer)).build()));
    let _ = serve_async_within(&validator, environ, &mut Recorder::new(), STALL * 2);
    drop(validator);
    reports.all()
}
