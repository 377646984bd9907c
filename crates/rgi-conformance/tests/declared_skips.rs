//! A case is skipped only for a capability the invocation declares: an
//! undeclared skip fails its test, and so does a declaration for a
//! capability the server claims after all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rgi_conformance::suite::{self, Claims, Needs, Probe, RunningServer, ServerUnderTest};

/// A server that claims only the synchronous interface and is never
/// started: every case below is decided from its claims alone.
struct SyncOnly;

impl ServerUnderTest for SyncOnly {
    fn name(&self) -> String {
        "sync-only".into()
    }

    fn claims(&self) -> Claims {
        Claims::synchronous()
    }

    fn start(&self, _app: Probe) -> Result<Box<dyn RunningServer>, rgi::BoxError> {
        Err("a skipped case never starts the server".into())
    }
}

const ASYNC_CASE: &str = "rgia_offload_1_jobs_run_on_worker_threads";

#[test]
fn a_declared_skip_passes_without_starting_the_server() {
    suite::assert_case_declaring(
        ASYNC_CASE,
        &SyncOnly,
        &[(Needs::Asynchronous, "synchronous applications only")],
    );
}

#[test]
#[should_panic(expected = "neither claims nor declares skipped")]
fn an_undeclared_skip_fails() {
    suite::assert_case(ASYNC_CASE, &SyncOnly);
}

#[test]
#[should_panic(expected = "neither claims nor declares skipped")]
fn a_skip_declared_for_another_capability_fails() {
    suite::assert_case_declaring(
        ASYNC_CASE,
        &SyncOnly,
        &[(Needs::ShortTimes, "minutes-long timers")],
    );
}

#[test]
#[should_panic(expected = "but the server claims what they need")]
fn a_declaration_for_a_claimed_capability_fails() {
    suite::check_declared_skips(Claims::asynchronous(), &[(Needs::Asynchronous, "stale")]);
}

#[test]
fn a_declared_skip_shows_in_the_reports_as_skipped() {
    let case = suite::case(ASYNC_CASE).unwrap();
    let result = case.run(&SyncOnly);
    assert!(matches!(
        result.verdict,
        rgi_conformance::suite::Verdict::Skipped { .. }
    ));
}

#[test]
fn a_feature_case_is_skipped_when_its_feature_is_declared_absent() {
    suite::assert_case_declaring(
        "rgi_early_3_hints_go_out_before_the_final_head",
        &SyncOnly,
        &[(Needs::EarlyHints, "no API for 1xx responses")],
    );
    suite::assert_case_declaring(
        "rgi_early_3_async_hints_go_out_before_the_final_head",
        &SyncOnly,
        &[(Needs::AsyncEarlyHints, "no API for 1xx responses")],
    );
}

#[test]
#[should_panic(expected = "neither claims nor declares skipped")]
fn an_undeclared_feature_skip_fails() {
    suite::assert_case("rgi_life_1_startup_before_the_first_request", &SyncOnly);
}

#[test]
#[should_panic(expected = "but the server claims what they need")]
fn a_skip_declared_for_a_claimed_feature_fails() {
    let claims = Claims::synchronous().with_features(rgi::Features::none().with_lifespan(true));
    suite::check_declared_skips(claims, &[(Needs::Lifespan, "stale")]);
}
