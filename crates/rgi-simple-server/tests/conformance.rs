//! The conformance kit's whole server suite against `rgi-simple-server`:
//! every case, synchronous and asynchronous, one `#[test]` each, with
//! nothing skipped.

use rgi_conformance::suite::{self, ServerUnderTest};
use rgi_simple_server::conformance::SuiteServer;

rgi_conformance::server_suite!(SuiteServer::new);

/// `server_suite!` can only print a skip; this proves there is none: the
/// server claims every capability the suite's cases need, and times short
/// enough for every timing case.
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
    assert!(
        skipped.is_empty(),
        "cases the server would skip: {skipped:?}"
    );
}
