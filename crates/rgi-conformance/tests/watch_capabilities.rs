//! The validator watches the capabilities, the switch and the
//! after-response tasks over the whole request (issue 11 §2): each check
//! has a broken example that trips it, with its clause and side, and a
//! clean one that does not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rgi::{BoxError, Environ, ResponseHead, ResponseState, StartResponse};
use rgi_async::{
    AfterError, AfterResponse, AfterResponseService, AfterTask, AsyncApplication, AsyncBody,
    Capabilities, Job, Offload, OffloadError, OffloadFuture, OffloadService, Step, SyncSwitch,
};
use rgi_conformance::client::{AsyncTestClient, TestRequest};
use rgi_conformance::rt::{Recorder, ThreadOffload, serve_async};
use rgi_conformance::validate::AsyncValidator;
use rgi_conformance::{Policy, Reports, Side, Violation};

type StepPoll = Poll<Option<Result<Step, BoxError>>>;

fn text(status: StatusCode) -> ResponseHead {
    ResponseHead::new(status)
        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

/// A body made of a closure.
struct Steps<F>(F);

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

fn chunk(bytes: &'static [u8]) -> StepPoll {
    Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(bytes)))))
}

/// Whether `violations` name `clause` against `side`.
fn names(violations: &[Violation], clause: &str, side: Side) -> bool {
    violations
        .iter()
        .any(|v| v.clause() == clause && v.side() == side)
}

fn environ_with(caps: Capabilities, headers: &[(header::HeaderName, &'static str)]) -> Environ {
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
fn served<A: AsyncApplication>(app: A, environ: Environ) -> Vec<Violation> {
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
/// (right) or fails (wrong).
fn waits_for_job(tolerant: bool) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let mut job: Option<OffloadFuture<u32>> = Some(caps.offload().run(|| {
            thread::sleep(Duration::from_millis(200));
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
                    Poll::Pending => Poll::Pending,
                }
            },
        ))
    })
}

#[test]
fn a_body_that_fails_on_a_poll_nothing_asked_for_breaks_app_6() {
    let response = AsyncTestClient::new(waits_for_job(false)).get("/").unwrap();
    assert!(
        names(&response.violations, "RGIA-APP-6", Side::Application),
        "{:?}",
        response.violations
    );
}

#[test]
fn a_body_that_returns_pending_again_on_a_spurious_poll_is_clean() {
    let response = AsyncTestClient::new(waits_for_job(true)).get("/").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "done");
}

// ---- RGIA-CAP-10: a middleware removes the capabilities --------------------

/// A middleware that hands the inner application `rewrite(environ)`.
struct Rewrite<A> {
    inner: A,
    rewrite: fn(Environ) -> Environ,
}

impl<A: AsyncApplication> AsyncApplication for Rewrite<A> {
    type Body = A::Body;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        self.inner.call((self.rewrite)(environ), start)
    }
}

fn hello() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"hello"))
    })
}

/// Runs `rewrite` as a middleware between the test client's validator and
/// one around `hello`; returns what both reported.
fn through_middleware(rewrite: fn(Environ) -> Environ) -> Vec<Violation> {
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

#[test]
fn a_middleware_that_removes_the_capabilities_breaks_cap_10() {
    let seen = through_middleware(|mut environ| {
        environ.extensions_mut().remove::<Capabilities>();
        environ
    });
    assert!(names(&seen, "RGIA-CAP-10", Side::Server), "{seen:?}");
}

#[test]
fn a_middleware_that_withholds_a_capability_by_its_own_set_is_clean() {
    let seen = through_middleware(|mut environ| {
        let offload = Capabilities::of(&environ).unwrap().offload().clone();
        environ
            .extensions_mut()
            .insert(Capabilities::builder(offload).build());
        environ
    });
    assert!(seen.iter().all(Violation::is_warning), "{seen:?}");
}

// ---- RGIA-UPGRADE-11: no upgrade on offer ----------------------------------

fn websocket_endpoint(answers_501: bool) -> impl AsyncApplication {
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
fn websocket_request() -> TestRequest {
    TestRequest::get("/ws")
        .version(http::Version::HTTP_10)
        .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
        .header(header::UPGRADE, HeaderValue::from_static("websocket"))
}

#[test]
fn failing_an_upgrade_the_server_cannot_provide_warns_under_upgrade_11() {
    let response = AsyncTestClient::new(websocket_endpoint(false))
        .request(websocket_request())
        .unwrap();
    assert!(
        names(&response.violations, "RGIA-UPGRADE-11", Side::Application),
        "{:?}",
        response.violations
    );
}

#[test]
fn answering_501_to_an_upgrade_the_server_cannot_provide_is_clean() {
    let response = AsyncTestClient::new(websocket_endpoint(true))
        .request(websocket_request())
        .unwrap();
    response.assert_valid();
    assert!(response.violations.is_empty(), "{:?}", response.violations);
}

// ---- RGIA-OFFLOAD-2 and RGIA-CAP-5: the offload service --------------------

/// Waits for a "free worker" inside `execute`, then starts the job.
struct WaitsForCapacity;

impl OffloadService for WaitsForCapacity {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        thread::sleep(Duration::from_millis(600));
        thread::spawn(move || job.run());
        Ok(())
    }
}

/// Refuses every job as saturated, with the given capacity.
struct Saturated(usize);

impl OffloadService for Saturated {
    fn execute(&self, _job: Job) -> Result<(), OffloadError> {
        Err(OffloadError::Saturated { capacity: self.0 })
    }
}

/// Offloads one job and answers with its result, or 503 when the
/// offload refuses it.
fn offloader() -> impl AsyncApplication {
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

fn with_offload(service: impl OffloadService + 'static) -> Environ {
    environ_with(Capabilities::builder(Offload::new(service)).build(), &[])
}

#[test]
fn an_offload_that_waits_for_capacity_in_execute_breaks_offload_2() {
    let seen = served(offloader(), with_offload(WaitsForCapacity));
    assert!(names(&seen, "RGIA-OFFLOAD-2", Side::Server), "{seen:?}");
}

#[test]
fn an_offload_that_starts_its_job_at_once_is_clean() {
    let seen = served(offloader(), with_offload(ThreadOffload::new()));
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn an_offload_without_any_capacity_is_hollow_under_cap_5() {
    let seen = served(offloader(), with_offload(Saturated(0)));
    assert!(names(&seen, "RGIA-CAP-5", Side::Server), "{seen:?}");
}

#[test]
fn an_offload_saturated_for_now_is_clean() {
    let seen = served(offloader(), with_offload(Saturated(8)));
    assert!(seen.is_empty(), "{seen:?}");
}

// ---- RGIA-UPGRADE-12 and RGIA-COMP-3: accepting an upgrade -----------------

/// Accepts the upgrade, naming `protocol` (or nothing).
fn upgrader(protocol: Option<&'static str>) -> impl AsyncApplication {
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

fn offering(protocols: &'static str) -> TestRequest {
    TestRequest::get("/chat").upgrade(HeaderValue::from_static(protocols), |_peer| Ok(()))
}

#[test]
fn accepting_one_of_several_protocols_without_naming_it_breaks_upgrade_12() {
    let response = AsyncTestClient::new(upgrader(None))
        .request(offering("echo, chat"))
        .unwrap();
    assert!(
        names(&response.violations, "RGIA-UPGRADE-12", Side::Application),
        "{:?}",
        response.violations
    );
}

#[test]
fn accepting_one_of_several_protocols_by_name_is_clean() {
    let response = AsyncTestClient::new(upgrader(Some("chat")))
        .request(offering("echo, chat"))
        .unwrap();
    assert!(response.violations.is_empty(), "{:?}", response.violations);
}

#[test]
fn synchronous_code_under_the_threaded_adapter_that_upgrades_warns_under_comp_3() {
    let app = rgi_async::Threaded::new(rgi::from_fn(|environ: Environ, _start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let upgrade = caps.upgrade().ok_or("no upgrade")?;
        let _stream = upgrade.accept(HeaderMap::new())?;
        Ok(rgi::Empty)
    }));
    let response = AsyncTestClient::new(app).request(offering("echo")).unwrap();
    assert!(
        names(&response.violations, "RGIA-COMP-3", Side::Application),
        "{:?}",
        response.violations
    );
}

#[test]
fn an_asynchronous_application_that_upgrades_from_call_is_clean() {
    let response = AsyncTestClient::new(upgrader(None))
        .request(offering("echo"))
        .unwrap();
    assert!(response.violations.is_empty(), "{:?}", response.violations);
}

// ---- RGIA-SWITCH-3: the continuation's thread ------------------------------

/// Switches at once; the continuation answers.
fn switcher() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, _start| {
        Ok(Steps(|_: &mut Context<'_>, _: &mut StartResponse<'_>| {
            Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|start| {
                start.start(text(StatusCode::OK))?;
                Ok(Bytes::from_static(b"switched"))
            })))))
        }))
    })
}

#[test]
fn a_continuation_run_on_the_thread_that_polled_the_body_breaks_switch_3() {
    let reports = Reports::new(Policy::Collect);
    let validator = AsyncValidator::new(switcher(), reports.clone());
    let environ = with_offload(ThreadOffload::new());
    let mut state = ResponseState::new(environ.method());
    let mut wire = Recorder::new();
    let body = validator
        .call(environ, &mut state.start_response(&mut wire))
        .unwrap();
    let mut body = Box::pin(body);
    let mut cx = Context::from_waker(Waker::noop());
    let step = body
        .as_mut()
        .poll_step(&mut cx, &mut state.start_response(&mut wire));
    drop(body);
    let Poll::Ready(Some(Ok(Step::Switch(switch)))) = step else {
        panic!("expected a switch");
    };
    // The mistake: the loop thread runs the synchronous work itself.
    let mut sync_body = switch.run(&mut state.start_response(&mut wire)).unwrap();
    while let Some(Ok(chunk)) =
        rgi::Body::next_chunk(&mut sync_body, &mut state.start_response(&mut wire))
    {
        state.send_chunk(&mut wire, chunk).unwrap();
    }
    drop(sync_body);
    state.finish(&mut wire).unwrap();
    drop(validator);
    let seen = reports.all();
    assert!(names(&seen, "RGIA-SWITCH-3", Side::Server), "{seen:?}");
}

#[test]
fn a_continuation_run_on_a_worker_thread_is_clean() {
    let seen = served(switcher(), with_offload(ThreadOffload::new()));
    assert!(seen.is_empty(), "{seen:?}");
}

// ---- RGIA-AFTER-1 and RGIA-AFTER-2: when and where tasks run ---------------

/// Spawns one after-response task that counts its runs.
fn after_spawner(ran: Arc<AtomicUsize>) -> impl AsyncApplication {
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

fn with_after(service: impl AfterResponseService + 'static) -> Environ {
    environ_with(
        Capabilities::builder(Offload::new(ThreadOffload::new()))
            .after_response(AfterResponse::new(service))
            .build(),
        &[],
    )
}

/// Starts each task at once on a thread of its own, and returns once that
/// thread is running (so the test does not depend on how fast threads
/// start).
struct StartsAtOnce(Mutex<Vec<thread::JoinHandle<()>>>);

impl AfterResponseService for StartsAtOnce {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        let (running, is_running) = std::sync::mpsc::channel();
        let handle = thread::spawn(move || {
            let _ = running.send(());
            task();
        });
        let _ = is_running.recv();
        self.0
            .lock()
            .map_err(|_| AfterError::ShutDown)?
            .push(handle);
        Ok(())
    }
}

#[test]
fn a_task_started_before_the_response_is_complete_breaks_after_1() {
    let ran = Arc::new(AtomicUsize::new(0));
    let service = Arc::new(StartsAtOnce(Mutex::default()));
    struct Shared(Arc<StartsAtOnce>);
    impl AfterResponseService for Shared {
        fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
            self.0.spawn(task)
        }
    }
    let reports = Reports::new(Policy::Collect);
    let validator = AsyncValidator::new(after_spawner(Arc::clone(&ran)), reports.clone());
    let mut wire = Recorder::new();
    let _served = serve_async(
        &validator,
        with_after(Shared(Arc::clone(&service))),
        &mut wire,
    );
    for handle in std::mem::take(&mut *service.0.lock().unwrap()) {
        handle.join().unwrap();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    drop(validator);
    let seen = reports.all();
    assert!(names(&seen, "RGIA-AFTER-1", Side::Server), "{seen:?}");
}

/// Keeps the tasks for whoever runs them (clones share the list).
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<AfterTask>>>);

impl AfterResponseService for Collected {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        self.0.lock().map_err(|_| AfterError::ShutDown)?.push(task);
        Ok(())
    }
}

/// Serves `after_spawner` with a queue, then runs its tasks once the
/// response is complete: on a worker thread (right) or on the thread that
/// served the request (wrong).
fn after_tasks_run(on_the_loop_thread: bool) -> Vec<Violation> {
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

#[test]
fn a_task_run_on_the_thread_that_served_the_request_breaks_after_2() {
    let seen = after_tasks_run(true);
    assert!(names(&seen, "RGIA-AFTER-2", Side::Server), "{seen:?}");
}

#[test]
fn a_task_run_on_a_worker_after_the_response_is_clean() {
    let seen = after_tasks_run(false);
    assert!(seen.is_empty(), "{seen:?}");
}
