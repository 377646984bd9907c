//! Broken and clean components for the checks of capabilities, upgrade,
//! switch, offload and after-response (issue 11 §2): shared by
//! `watch_capabilities.rs` (broken and clean example of each check) and
//! the table of broken examples in this directory.
#![allow(dead_code, reason = "each test crate uses a part of the fixtures")]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rgi::{BoxError, Environ, ResponseHead, StartResponse};
use rgi_async::{
    AfterError, AfterResponse, AfterResponseService, AfterTask, AsyncApplication, AsyncBody,
    Capabilities, Job, Offload, OffloadError, OffloadFuture, OffloadService, Step, SyncSwitch,
    Upgrade, UpgradeError, UpgradeFuture, UpgradeService,
};
use rgi_conformance::client::{AsyncTestClient, TestRequest};
use rgi_conformance::rt::{Recorder, ThreadOffload, choose_protocol, serve_async};
use rgi_conformance::validate::AsyncValidator;
use rgi_conformance::{Policy, Reports, Side, Violation};

pub(crate) type StepPoll = Poll<Option<Result<Step, BoxError>>>;

pub(crate) fn text(status: StatusCode) -> ResponseHead {
    ResponseHead::new(status)
        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

/// A body made of a closure.
pub(crate) struct Steps<F>(pub(crate) F);

impl<F> AsyncBody for Steps<F>
where
    F: FnMut(&mut Context<'_>, &mut StartResponse<'_>) -> StepPoll + Send + Unpin + 'static,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> StepPoll {
        (self.get_mut().0)(cx, start)
    }
}

pub(crate) fn chunk(bytes: &'static [u8]) -> StepPoll {
    Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(bytes)))))
}

/// Whether `violations` name `clause` against `side`.
pub(crate) fn names(violations: &[Violation], clause: &str, side: Side) -> bool {
    violations
        .iter()
        .any(|v| v.clause() == clause && v.side() == side)
}

pub(crate) fn environ_with(
    caps: Capabilities,
    headers: &[(header::HeaderName, &'static str)],
) -> Environ {
    let mut builder = Environ::builder()
        .method(Method::GET)
        .header(header::HOST, HeaderValue::from_static("example.org"));
    for (name, value) in headers {
        builder = builder.header(name.clone(), HeaderValue::from_static(value));
    }
    builder.extension(caps).build().unwrap()
}

/// Serves `app` once through `serve_async`, returning what the validator
/// reported.
pub(crate) fn served<A: AsyncApplication>(app: A, environ: Environ) -> Vec<Violation> {
    let reports = Reports::new(Policy::Collect);
    let validator = AsyncValidator::new(app, reports.clone());
    let mut wire = Recorder::new();
    let _served = serve_async(&validator, environ, &mut wire);
    drop(validator);
    reports.all()
}

// ---- RGIA-APP-6: a spurious poll ------------------------------------------

/// An application that waits for an offload job; `tolerant` decides
/// whether a poll that finds the job unfinished returns `Pending` again
/// (right) or fails (wrong). The job finishes only once the body has been
/// polled twice (or dropped), so the second poll always finds it
/// unfinished, however loaded the machine.
pub(crate) fn waits_for_job(tolerant: bool) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let (release, released) = std::sync::mpsc::channel::<()>();
        let mut release = Some(release);
        let mut job: Option<OffloadFuture<u32>> = Some(caps.offload().run(move || {
            let _ = released.recv_timeout(Duration::from_secs(10));
            7
        }));
        start.start(text(StatusCode::OK))?;
        let mut polls = 0;
        Ok(Steps(
            move |cx: &mut Context<'_>, _: &mut StartResponse<'_>| {
                polls += 1;
                let Some(pending) = job.as_mut() else {
                    return Poll::Ready(None);
                };
                match Pin::new(pending).poll(cx) {
                    Poll::Ready(_) => {
                        job = None;
                        chunk(b"done")
                    }
                    Poll::Pending if polls > 1 && !tolerant => {
                        Poll::Ready(Some(Err("polled before the job finished".into())))
                    }
                    Poll::Pending => {
                        if polls > 1 {
                            release.take();
                        }
                        Poll::Pending
                    }
                }
            },
        ))
    })
}

// ---- RGIA-CAP-10: a middleware removes the capabilities --------------------

/// A middleware that hands the inner application `rewrite(environ)`.
pub(crate) struct Rewrite<A> {
    pub(crate) inner: A,
    pub(crate) rewrite: fn(Environ) -> Environ,
}

impl<A: AsyncApplication> AsyncApplication for Rewrite<A> {
    type Body = A::Body;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        self.inner.call((self.rewrite)(environ), start)
    }
}

pub(crate) fn hello() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"hello"))
    })
}

/// Runs `rewrite` as a middleware between the test client's validator and
/// one around `hello`; returns what both reported.
pub(crate) fn through_middleware(rewrite: fn(Environ) -> Environ) -> Vec<Violation> {
    let inner_reports = Reports::new(Policy::Collect);
    let app = Rewrite {
        inner: AsyncValidator::new(hello(), inner_reports.clone()),
        rewrite,
    };
    let response = AsyncTestClient::new(app).get("/").unwrap();
    let mut seen = response.violations.clone();
    seen.extend(inner_reports.all());
    seen
}

// ---- RGIA-UPGRADE-11: no upgrade on offer ----------------------------------

pub(crate) fn websocket_endpoint(answers_501: bool) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        if caps.upgrade().is_none() {
            if answers_501 {
                start.start(text(StatusCode::NOT_IMPLEMENTED))?;
                return Ok(Bytes::from_static(b"no upgrades here"));
            }
            return Err("cannot upgrade".into());
        }
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::new())
    })
}

/// HTTP/1.0 has no upgrade, so the server cannot provide one.
pub(crate) fn websocket_request() -> TestRequest {
    TestRequest::get("/ws")
        .version(http::Version::HTTP_10)
        .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
        .header(header::UPGRADE, HeaderValue::from_static("websocket"))
}

// ---- RGIA-OFFLOAD-2 and RGIA-CAP-5: the offload service --------------------

/// Waits for a "free worker" inside `execute`, then starts the job.
pub(crate) struct WaitsForCapacity;

impl OffloadService for WaitsForCapacity {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        thread::sleep(Duration::from_millis(600));
        thread::spawn(move || job.run());
        Ok(())
    }
}

/// Refuses every job as saturated, with the given capacity.
pub(crate) struct Saturated(pub(crate) usize);

impl OffloadService for Saturated {
    fn execute(&self, _job: Job) -> Result<(), OffloadError> {
        Err(OffloadError::Saturated { capacity: self.0 })
    }
}

/// Offloads one job and answers with its result, or 503 when the
/// offload refuses it.
pub(crate) fn offloader() -> impl AsyncApplication {
    rgi_async::from_fn(|environ: Environ, _start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let mut job: Option<OffloadFuture<&'static str>> = Some(caps.offload().run(|| "computed"));
        Ok(Steps(
            move |cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
                let Some(pending) = job.as_mut() else {
                    return Poll::Ready(None);
                };
                let answer = match Pin::new(pending).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(answer) => answer,
                };
                job = None;
                let (status, text_body) = match answer {
                    Ok(answer) => (StatusCode::OK, answer),
                    Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
                };
                match start.start(text(status)) {
                    Ok(()) => Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(
                        text_body.as_bytes(),
                    ))))),
                    Err(error) => Poll::Ready(Some(Err(error.into()))),
                }
            },
        ))
    })
}

pub(crate) fn with_offload(service: impl OffloadService + 'static) -> Environ {
    environ_with(Capabilities::builder(Offload::new(service)).build(), &[])
}

// ---- RGIA-UPGRADE-12 and RGIA-COMP-3: accepting an upgrade -----------------

/// Accepts the upgrade, naming `protocol` (or nothing).
pub(crate) fn upgrader(protocol: Option<&'static str>) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, _start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let upgrade = caps.upgrade().ok_or("no upgrade")?;
        let mut headers = HeaderMap::new();
        if let Some(protocol) = protocol {
            headers.insert(header::UPGRADE, HeaderValue::from_static(protocol));
        }
        let _stream = upgrade.accept(headers)?;
        Ok(rgi::Empty)
    })
}

pub(crate) fn offering(protocols: &'static str) -> TestRequest {
    TestRequest::get("/chat").upgrade(HeaderValue::from_static(protocols), |_peer| Ok(()))
}

// ---- RGIA-SWITCH-3: the continuation's thread ------------------------------

/// Switches at once; the continuation answers.
pub(crate) fn switcher() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, _start| {
        Ok(Steps(|_: &mut Context<'_>, _: &mut StartResponse<'_>| {
            Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|start| {
                start.start(text(StatusCode::OK))?;
                Ok(Bytes::from_static(b"switched"))
            })))))
        }))
    })
}

// ---- RGIA-AFTER-1 and RGIA-AFTER-2: when and where tasks run ---------------

/// Spawns one after-response task that counts its runs.
pub(crate) fn after_spawner(ran: Arc<AtomicUsize>) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let after = caps.after_response().ok_or("no after-response")?;
        let ran = Arc::clone(&ran);
        after.spawn(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })?;
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"queued"))
    })
}

pub(crate) fn with_after(service: impl AfterResponseService + 'static) -> Environ {
    environ_with(
        Capabilities::builder(Offload::new(ThreadOffload::new()))
            .after_response(AfterResponse::new(service))
            .build(),
        &[],
    )
}

/// Starts each task at once on a thread of its own, and returns once it
/// has run (so the test does not depend on how fast threads start).
pub(crate) struct StartsAtOnce(pub(crate) Mutex<Vec<thread::JoinHandle<()>>>);

impl AfterResponseService for StartsAtOnce {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        let (ran, has_run) = std::sync::mpsc::channel();
        let handle = thread::spawn(move || {
            task();
            let _ = ran.send(());
        });
        let _ = has_run.recv();
        self.0
            .lock()
            .map_err(|_| AfterError::ShutDown)?
            .push(handle);
        Ok(())
    }
}

/// Keeps the tasks for whoever runs them (clones share the list).
#[derive(Clone, Default)]
pub(crate) struct Collected(pub(crate) Arc<Mutex<Vec<AfterTask>>>);

impl AfterResponseService for Collected {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        self.0.lock().map_err(|_| AfterError::ShutDown)?.push(task);
        Ok(())
    }
}

/// Serves `after_spawner` with a queue, then runs its tasks once the
/// response is complete: on a worker thread (right) or on the thread that
/// served the request (wrong).
pub(crate) fn after_tasks_run(on_the_loop_thread: bool) -> Vec<Violation> {
    let ran = Arc::new(AtomicUsize::new(0));
    let queue = Collected::default();
    let reports = Reports::new(Policy::Collect);
    let validator = AsyncValidator::new(after_spawner(Arc::clone(&ran)), reports.clone());
    let mut wire = Recorder::new();
    let served = serve_async(&validator, with_after(queue.clone()), &mut wire);
    assert!(served.outcome.is_complete(), "{:?}", served.outcome);
    let tasks = std::mem::take(&mut *queue.0.lock().unwrap());
    let run_all = move || {
        for task in tasks {
            task();
        }
    };
    if on_the_loop_thread {
        run_all();
    } else {
        thread::spawn(run_all).join().unwrap();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    drop(validator);
    reports.all()
}

// ---- the broken example of each check, for the table ----------------------

/// `fails_on_spurious_poll`: a body that fails when a poll finds its
/// offload job unfinished.
pub(crate) fn fails_on_spurious_poll() -> Vec<Violation> {
    AsyncTestClient::new(waits_for_job(false))
        .get("/")
        .map(|response| response.violations)
        .unwrap_or_default()
}

/// `capabilities_removed`: a middleware removes the capabilities.
pub(crate) fn capabilities_removed() -> Vec<Violation> {
    through_middleware(|mut environ| {
        environ.extensions_mut().remove::<Capabilities>();
        environ
    })
}

/// `upgrade_unavailable_failed`: a WebSocket endpoint fails where it
/// cannot upgrade.
pub(crate) fn upgrade_unavailable_failed() -> Vec<Violation> {
    AsyncTestClient::new(websocket_endpoint(false))
        .request(websocket_request())
        .map(|response| response.violations)
        .unwrap_or_default()
}

/// `offload_execute_blocked`: `execute` waits for capacity.
pub(crate) fn offload_execute_blocked() -> Vec<Violation> {
    served(offloader(), with_offload(WaitsForCapacity))
}

/// `upgrade_protocol_not_named`: accepts one of two protocols without
/// naming it.
pub(crate) fn upgrade_protocol_not_named() -> Vec<Violation> {
    AsyncTestClient::new(upgrader(None))
        .request(offering("echo, chat"))
        .map(|response| response.violations)
        .unwrap_or_default()
}

/// Accepts every upgrade, whatever the application chose.
pub(crate) struct AcceptsAnything;

impl UpgradeService for AcceptsAnything {
    fn accept(&self, _headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        Ok(Box::pin(std::future::ready(Err(UpgradeError::Closed))))
    }
}

/// Accepts an upgrade only with a protocol of the offer (or the single
/// offer), as RGIA-UPGRADE-3 wants.
pub(crate) struct Chooses(pub(crate) Vec<String>);

impl UpgradeService for Chooses {
    fn accept(&self, mut headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        choose_protocol(&self.0, &mut headers)?;
        Ok(Box::pin(std::future::ready(Err(UpgradeError::Closed))))
    }
}

/// A request offering `echo`, served with `service` as its upgrade.
pub(crate) fn echo_upgrade_with(service: impl UpgradeService + 'static) -> Environ {
    environ_with(
        Capabilities::builder(Offload::new(ThreadOffload::new()))
            .upgrade(Upgrade::new(service))
            .build(),
        &[(header::UPGRADE, "echo"), (header::CONNECTION, "upgrade")],
    )
}

/// `upgrade_choice_not_enforced`: the server accepts a protocol the
/// request did not offer.
pub(crate) fn upgrade_choice_not_enforced() -> Vec<Violation> {
    served(upgrader(Some("chat")), echo_upgrade_with(AcceptsAnything))
}
