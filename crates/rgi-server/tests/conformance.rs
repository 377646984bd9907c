//! The conformance kit's whole server suite against `rgi-server`: every
//! case, synchronous and asynchronous, one `#[test]` each, with nothing
//! skipped but the two early-hints cases: hyper 1.x has no server API for
//! 1xx responses, so the server does not declare early hints (RGI-EARLY-4).

use rgi_conformance::suite::{self, Needs, ServerUnderTest};
use rgi_server::conformance::SuiteServer;

rgi_conformance::server_suite!(
    SuiteServer::new,
    skips {
        EarlyHints: "hyper 1.x has no server API for 1xx responses; early hints are not declared",
        AsyncEarlyHints: "hyper 1.x has no server API for 1xx responses; early hints are not declared",
    }
);

/// `server_suite!` can only print a skip; this proves there is none beyond
/// the two declared above: the server claims every other capability, and
/// times short enough, for every case.
#[test]
fn the_server_claims_what_every_case_needs() {
    let claims = SuiteServer::new().claims();
    let skipped: Vec<(&str, &str)> = suite::cases()
        .iter()
        .filter_map(|case| {
            case.needs()
                .missing_from(claims)
                .map(|missing| (case.name(), missing))
        })
        .collect();
    let undeclared: Vec<_> = suite::cases()
        .iter()
        .filter(|case| !matches!(case.needs(), Needs::EarlyHints | Needs::AsyncEarlyHints))
        .filter_map(|case| {
            case.needs()
                .missing_from(claims)
                .map(|missing| (case.name(), missing))
        })
        .collect();
    assert!(
        undeclared.is_empty(),
        "cases the server would skip: {undeclared:?}"
    );
    assert_eq!(
        skipped.len(),
        2,
        "only the two early-hints cases: {skipped:?}"
    );
}
