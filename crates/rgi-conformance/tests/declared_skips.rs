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
