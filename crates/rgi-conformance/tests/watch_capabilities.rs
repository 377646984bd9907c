//! The validator watches the capabilities, the switch and the
//! after-response tasks over the whole request (issue 11 §2): each check
//! has a broken example that trips it, with its clause and side, and a
//! clean one that does not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support_validate/cap_examples.rs"]
mod cap_examples;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use http::HeaderMap;
use rgi::{Environ, ResponseState};
use rgi_async::{
    AfterError, AfterResponseService, AfterTask, AsyncApplication, AsyncBody, Capabilities, Step,
};
use rgi_conformance::client::AsyncTestClient;
use rgi_conformance::rt::{Recorder, ThreadOffload, serve_async};
use rgi_conformance::validate::AsyncValidator;
use rgi_conformance::{Policy, Reports, Side, Violation};

use cap_examples::*;

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

// ---- RGIA-UPGRADE-3: the server's half of the protocol choice -------------

#[test]
fn a_server_that_accepts_a_protocol_nobody_offered_breaks_upgrade_3() {
    let seen = upgrade_choice_not_enforced();
    assert!(names(&seen, "RGIA-UPGRADE-3", Side::Server), "{seen:?}");
}

#[test]
fn a_server_that_accepts_only_what_was_offered_is_clean() {
    let offered = vec!["echo".to_owned()];
    let seen = served(upgrader(Some("echo")), echo_upgrade_with(Chooses(offered)));
    assert!(seen.is_empty(), "{seen:?}");
}
