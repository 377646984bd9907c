//! The conformance kit's whole server suite against `rgi-simple-server`:
//! one `#[test]` per case, synchronous and asynchronous.
//!
//! The server serves synchronous applications only so far, so the cases of
//! the asynchronous extensions are declared skipped, each capability with
//! the same reason, and `cargo test` lists them as ignored. Nothing else is
//! skipped: the configuration claims times short enough for every timing
//! case (checked below).

use rgi_conformance::suite::{self, Needs, ServerUnderTest};
use rgi_simple_server::conformance::SuiteServer;

rgi_conformance::server_suite!(
    SuiteServer::new,
    skips {
        Asynchronous: "async applications not yet served",
        Readiness: "async applications not yet served",
        AfterResponse: "async applications not yet served",
        Upgrade: "async applications not yet served",
    }
);

/// `server_suite!` can only print a skip; this proves that the only cases
/// skipped are those of the asynchronous extensions, and that every
/// synchronous case runs.
#[test]
fn only_asynchronous_cases_are_skipped() {
    let claims = SuiteServer::new().claims();
    let skipped: Vec<(&str, Needs)> = suite::cases()
        .iter()
        .filter(|case| case.needs().missing_from(claims).is_some())
        .map(|case| (case.name(), case.needs()))
        .collect();
    let unexpected: Vec<&(&str, Needs)> = skipped
        .iter()
        .filter(|(_, needs)| {
            !matches!(
                needs,
                Needs::Asynchronous | Needs::Readiness | Needs::AfterResponse | Needs::Upgrade
            )
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "cases skipped for something other than asynchronous applications: {unexpected:?}"
    );
    for name in suite::SYNC_CASE_NAMES {
        assert!(
            !skipped.iter().any(|(skipped, _)| skipped == name),
            "synchronous case {name} would be skipped"
        );
    }
}
