//! The watchdog (issue 11 §2, "Time"): every call into the application
//! that must not block is timed, and blocking beyond the allowance is
//! reported with its clause and side; time the thread spends running (or
//! waiting for a core) is never blamed, and applications that may block
//! are left alone.
//!
//! Every broken example blocks for several times the allowance it
//! exceeds, and every clean one stays far below it or does not block at
//! all, so no test depends on a tight race.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, reason = "the other examples are run by validate_sync.rs")]
mod support_validate;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{BoxError, Environ, Hints, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Capabilities, OffloadFuture, Step, Threaded};
use rgi_conformance::client::{AsyncTestClient, TestClient, TestRequest};
use rgi_conformance::rt::{Recorder, serve_async};
use rgi_conformance::validate::{AsyncValidator, Validator, Watchdog};
use rgi_conformance::{Side, Violation};

use support_validate::common::{async_environ, build, collect, has, text};
use support_validate::watch_examples::{
    self as examples, LONG_BLOCK, inline_hints, pipe_waiter, sleeping_sync_app, ticking_app,
    via_sync_validator,
};

fn only(violations: &[Violation], clause: &str, side: Side) {
    assert!(has(violations, clause, side), "{violations:?}");
    assert!(
        violations.iter().all(|v| v.clause() == clause),
        "{violations:?}"
    );
}

fn nothing() {}

fn sleep_long() {
    thread::sleep(LONG_BLOCK);
}

// ---- broken: each check trips ----

#[test]
fn an_async_call_that_sleeps_is_rgia_app_2() {
    only(
        &examples::async_call_blocked(),
        "RGIA-APP-2",
        Side::Application,
    );
}

#[test]
fn a_poll_step_that_sleeps_is_rgia_app_3() {
    only(
        &examples::async_poll_blocked(),
        "RGIA-APP-3",
        Side::Application,
    );
}

#[test]
fn an_async_body_drop_that_blocks_is_rgia_app_3() {
    only(
        &examples::async_drop_blocked(),
        "RGIA-APP-3",
        Side::Application,
    );
}

#[test]
fn a_sync_app_hinting_it_never_blocks_that_sleeps_in_call_is_rgi_hint_3() {
    only(
        &examples::non_blocking_hint_broken(),
        "RGI-HINT-3",
        Side::Application,
    );
}

/// A synchronous body whose `next_chunk` sleeps once.
struct SleepsInPull(bool);

impl rgi::Body for SleepsInPull {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if std::mem::replace(&mut self.0, true) {
            return None;
        }
        thread::sleep(LONG_BLOCK);
        Some(Ok(Bytes::from_static(b"late")))
    }
}

#[test]
fn a_sync_app_hinting_it_never_blocks_that_sleeps_in_next_chunk_is_rgi_hint_3() {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(SleepsInPull(false))
    })
    .with_hints(inline_hints());
    only(
        &via_sync_validator(app, Watchdog::new()),
        "RGI-HINT-3",
        Side::Application,
    );
}

#[test]
fn an_app_the_threaded_adapter_runs_inline_that_sleeps_is_rgi_hint_3() {
    only(
        &examples::inline_sync_app_blocked(),
        "RGI-HINT-3",
        Side::Application,
    );
}

#[test]
fn a_slow_sync_body_drop_is_rgi_body_13() {
    only(
        &examples::slow_body_drop(),
        "RGI-BODY-13",
        Side::Application,
    );
}

#[test]
fn a_blocking_sync_app_run_inside_an_async_call_is_the_servers_rgi_hint_5() {
    only(
        &examples::blocking_app_on_loop_thread(),
        "RGI-HINT-5",
        Side::Server,
    );
}

#[test]
fn a_readiness_wait_that_can_never_resolve_is_the_servers_rgia_ready_1_not_the_apps() {
    only(
        &examples::readiness_pending_without_wakeup(),
        "RGIA-READY-1",
        Side::Server,
    );
}

#[test]
fn a_middleware_pending_its_inner_body_did_not_return_is_rgia_comp_9() {
    only(
        &examples::middleware_pending_without_cause(),
        "RGIA-COMP-9",
        Side::Application,
    );
}

#[test]
fn a_server_that_polls_long_after_the_wake_up_is_rgia_poll_3() {
    only(&examples::wake_honoured_late(), "RGIA-POLL-3", Side::Server);
}

#[test]
fn a_server_that_polls_when_woken_is_clean() {
    clean_async(examples::woken_soon());
}

#[test]
fn an_offload_execute_that_waits_for_capacity_is_the_servers_rgia_offload_2_not_the_apps() {
    only(
        &examples::offload_execute_blocked(),
        "RGIA-OFFLOAD-2",
        Side::Server,
    );
}

#[test]
fn an_after_response_spawn_that_blocks_is_the_servers_rgia_after_4_not_the_apps() {
    only(
        &examples::after_spawn_blocked(),
        "RGIA-AFTER-4",
        Side::Server,
    );
}

#[test]
fn services_that_return_at_once_are_clean() {
    let seen = examples::with_services(
        support_validate::common::capabilities()
            .after_response(rgi_async::AfterResponse::new(
                rgi_conformance::rt::AfterQueue::new(),
            ))
            .build(),
    );
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn a_middleware_that_runs_the_inner_continuation_itself_is_rgia_comp_11() {
    // Judged by the nested validators' comparison (`async_mw_runs_continuation`).
    let violations = examples::middleware_ran_continuation();
    assert!(
        has(&violations, "RGIA-COMP-11", Side::Application),
        "{violations:?}"
    );
}

#[test]
fn a_middleware_that_passes_the_switch_on_is_clean() {
    let inner = collect();
    struct PassesSwitch<A>(A);
    impl<A: AsyncApplication> AsyncApplication for PassesSwitch<A> {
        type Body = A::Body;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<A::Body, BoxError> {
            self.0.call(environ, start)
        }
    }
    clean_async(PassesSwitch(AsyncValidator::new(
        examples::switcher(),
        inner.clone(),
    )));
    assert!(inner.is_empty(), "{:?}", inner.all());
}

#[test]
fn a_readiness_wait_still_pending_long_after_its_timeout_is_the_servers_rgia_ready_7() {
    only(
        &examples::readiness_timeout_missed(),
        "RGIA-READY-7",
        Side::Server,
    );
}

#[test]
fn a_readiness_wait_dropped_within_its_timeout_and_allowance_is_not_blamed() {
    let reports = collect();
    let validator = AsyncValidator::new(pipe_waiter(), reports.clone());
    let environ = build(
        support_validate::common::environ().extension(
            support_validate::common::capabilities()
                .readiness(rgi_async::Readiness::new(examples::NoTimer))
                .build(),
        ),
    );
    let served = rgi_conformance::rt::serve_async_within(
        &validator,
        environ,
        &mut Recorder::new(),
        Duration::from_millis(200),
    );
    assert!(matches!(
        served.outcome,
        rgi_conformance::rt::Outcome::Stalled { .. }
    ));
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

#[test]
fn the_violation_says_how_long_the_thread_was_blocked() {
    let violations = examples::async_call_blocked();
    let violation = violations
        .iter()
        .find(|v| v.clause() == "RGIA-APP-2")
        .unwrap();
    assert!(
        violation.value().contains("allowed"),
        "{}",
        violation.value()
    );
}

// ---- clean: nothing is blamed ----

fn clean_async<A: AsyncApplication>(app: A) {
    let response = AsyncTestClient::new(app)
        .request(TestRequest::get("/"))
        .unwrap();
    assert!(response.violations.is_empty(), "{:?}", response.violations);
    assert!(response.ending.is_complete(), "{:?}", response.ending);
}

/// Burns CPU for `LONG_BLOCK` without blocking: running (or waiting for a
/// core on a loaded machine) is not blocking.
fn spin_long() {
    let until = Instant::now() + LONG_BLOCK;
    let mut x = 0u64;
    while Instant::now() < until {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

#[test]
fn a_poll_that_computes_without_blocking_is_not_blamed_for_the_scheduler() {
    if !Watchdog::measures_blocked_time() {
        return; // the wall-clock floor is far above the spin anyway
    }
    clean_async(ticking_app(nothing, spin_long, nothing));
}

/// Offloads its blocking work and waits for it without blocking.
struct Offloaded(Option<OffloadFuture<&'static str>>);

impl AsyncBody for Offloaded {
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

#[test]
fn an_app_that_offloads_its_blocking_work_is_clean() {
    clean_async(rgi_async::from_fn(|environ: Environ, start| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        let job = capabilities.offload().run(|| {
            thread::sleep(LONG_BLOCK);
            "done"
        });
        start.start(text(StatusCode::OK))?;
        Ok(Offloaded(Some(job)))
    }));
}

#[test]
fn a_blocking_app_under_the_threaded_adapter_is_offloaded_and_clean() {
    clean_async(Threaded::new(sleeping_sync_app(Hints::default())));
}

#[test]
fn a_readiness_wait_the_server_resolves_is_clean() {
    clean_async(pipe_waiter());
}

/// A body that waits for a thread to wake it after a while.
struct LongPoll {
    slot: Arc<Mutex<(bool, Option<Waker>)>>,
    done: bool,
}

impl AsyncBody for LongPoll {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut slot = self.slot.lock().unwrap();
        if slot.0 {
            drop(slot);
            self.done = true;
            return Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"event")))));
        }
        slot.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn long_poll_app() -> impl AsyncApplication<Body = LongPoll> {
    rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        let slot: Arc<Mutex<(bool, Option<Waker>)>> = Arc::default();
        let publisher = Arc::clone(&slot);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            let mut slot = publisher.lock().unwrap();
            slot.0 = true;
            if let Some(waker) = slot.1.take() {
                waker.wake();
            }
        });
        Ok(LongPoll { slot, done: false })
    })
}

#[test]
fn a_middleware_that_passes_its_inner_pending_through_is_clean() {
    let inner = collect();
    struct PassThrough<A>(A);
    impl<A: AsyncApplication> AsyncApplication for PassThrough<A> {
        type Body = A::Body;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<A::Body, BoxError> {
            self.0.call(environ, start)
        }
    }
    clean_async(PassThrough(AsyncValidator::new(
        long_poll_app(),
        inner.clone(),
    )));
    assert!(inner.is_empty(), "{:?}", inner.all());
}

#[test]
fn a_sync_app_that_may_block_can_sleep() {
    let response = TestClient::new(sleeping_sync_app(Hints::default()))
        .get("/")
        .unwrap();
    assert!(response.violations.is_empty(), "{:?}", response.violations);
}

#[test]
fn a_sync_app_that_keeps_its_non_blocking_promise_is_clean() {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"quick"))
    })
    .with_hints(inline_hints());
    assert!(via_sync_validator(app, Watchdog::new()).is_empty());
}

#[test]
fn a_sync_body_drop_within_the_allowance_is_clean() {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::NO_CONTENT))?;
        Ok(examples::SlowDrop(Duration::from_millis(30)))
    });
    assert!(via_sync_validator(app, Watchdog::new()).is_empty());
}

fn served_with(watchdog: Watchdog) -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(
        ticking_app(sleep_long, sleep_long, sleep_long),
        reports.clone(),
    )
    .with_watchdog(watchdog);
    let served = serve_async(&validator, build(async_environ()), &mut Recorder::new());
    assert!(served.outcome.is_complete(), "{:?}", served.outcome);
    drop(validator);
    reports.all()
}

#[test]
fn a_disabled_watchdog_times_nothing() {
    assert!(served_with(Watchdog::disabled()).is_empty());
}

#[test]
fn a_wider_allowance_lets_the_same_sleeps_pass() {
    let wide = Watchdog::new().with_blocking(Duration::from_secs(30));
    assert!(served_with(wide).is_empty());
    let default = served_with(Watchdog::new());
    assert!(
        has(&default, "RGIA-APP-2", Side::Application),
        "{default:?}"
    );
    assert!(
        has(&default, "RGIA-APP-3", Side::Application),
        "{default:?}"
    );
}

#[test]
fn the_defaults_are_documented_values() {
    let watchdog = Watchdog::default();
    assert_eq!(watchdog, Watchdog::new());
    assert_eq!(watchdog.blocking(), Some(Watchdog::DEFAULT_BLOCKING));
    assert_eq!(watchdog.slow_drop(), Some(Watchdog::DEFAULT_SLOW_DROP));
    let validator = Validator::new(sleeping_sync_app(Hints::default()), collect());
    assert_eq!(validator.watchdog(), Watchdog::new());
    if cfg!(target_os = "linux") {
        assert!(Watchdog::measures_blocked_time());
    }
}
