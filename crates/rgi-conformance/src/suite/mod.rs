//! The server suite: probe applications, a raw-socket HTTP/1.1 client and
//! one case per externally checkable clause.
//!
//! What `Plack::Test::Suite` (36 cases) and rack-conform (11) are for PSGI
//! and Rack servers, for RGI servers — with the cases those suites lack:
//! slow clients and backpressure, client disconnects mid-response, HEAD,
//! `Expect: 100-continue`, chunked and truncated uploads, unread bodies on
//! kept-alive and pipelined connections, lazy heads, failures before and
//! after the head, panics, shutdown.
//!
//! A server author implements one small trait, [`ServerUnderTest`]
//! (start a fresh server on 127.0.0.1 with the probe application the case
//! hands over, mounted at the root; stop it), and runs every case. Each
//! case starts its own server on its own port, drives it with
//! [`wire::Connection`] the way a hostile or slow client would, judges
//! what it sees against one clause of `spec/rgi.md`, and stops the server
//! again, also when it fails. Every wait is bounded, so a case takes a few
//! seconds at worst, even against a server that hangs.
//!
//! A failure names the clause broken and what was observed, with the
//! offending bytes. Broken response framing is always reported against
//! `RGI-CL-9`, whichever case met it; a server that does not stop cleanly
//! fails `RGI-CONN-5`.
//!
//! # Running the suite from `cargo test`
//!
//! [`server_suite!`](crate::server_suite) expands to one `#[test]` per
//! case, so `cargo test` lists and runs them one by one. A server crate's
//! `tests/rgi_suite.rs`:
//!
//! ```no_run
//! use std::net::SocketAddr;
//!
//! use rgi_conformance::suite::{Claims, Probe, RunningServer, ServerUnderTest};
//!
//! /// My server, as the suite sees it.
//! struct MyServer;
//!
//! struct Running {
//!     addr: SocketAddr,
//!     // handles to stop the server
//! }
//!
//! impl ServerUnderTest for MyServer {
//!     fn name(&self) -> String {
//!         "my-server".into()
//!     }
//!
//!     fn claims(&self) -> Claims {
//!         Claims::synchronous()
//!     }
//!
//!     fn start(&self, app: Probe) -> Result<Box<dyn RunningServer>, rgi::BoxError> {
//!         // Bind 127.0.0.1:0, serve `app` (an `rgi::Application`) at the
//!         // root on a thread, and return once it accepts connections.
//!         # let _ = app;
//!         let addr = "127.0.0.1:0".parse()?;
//!         Ok(Box::new(Running { addr }))
//!     }
//! }
//!
//! impl RunningServer for Running {
//!     fn addr(&self) -> SocketAddr {
//!         self.addr
//!     }
//!
//!     fn stop(self: Box<Self>) -> Result<(), rgi::BoxError> {
//!         // Close the listener and the connections, join the threads.
//!         Ok(())
//!     }
//! }
//!
//! fn my_server() -> MyServer {
//!     MyServer
//! }
//!
//! // One #[test] per case: `cargo test rgi_cl_` runs the Content-Length
//! // cases, `cargo test rgi_fail_8` the disconnect cases.
//! rgi_conformance::server_suite!(my_server);
//! # fn main() {}
//! ```
//!
//! Cargo has no way to mark a test as skipped at run time: a case that
//! needs a capability the server does not claim returns from its test
//! after printing `SKIPPED (<reason>)` on stderr, and cargo lists it as
//! `ok`. The reports of [`run`] (and the CLI) are where a skipped case
//! shows as skipped — never as passed.
//!
//! # Running the suite as a program
//!
//! [`run`] and [`run_with`] run every case and return a
//! [`SuiteRun`] for the reports; [`cases`] and
//! [`case`] give the cases themselves.

mod case;
pub(crate) mod cases;
mod probe;
mod server;
pub mod wire;

pub use case::{Case, CaseFn, Failure, Needs};
pub use probe::Probe;
pub use server::{Claims, Limits, RunningServer, ServerUnderTest};

use crate::report::{CaseResult, SuiteRun, Verdict};

/// The names of the synchronous cases, in order: the same list that
/// [`server_suite!`](crate::server_suite) expands.
#[doc(hidden)]
pub const SYNC_CASE_NAMES: &[&str] = crate::__rgi_sync_cases!(names);

/// Every case of the suite, in order: the synchronous interface first,
/// then the asynchronous extensions.
///
/// # Examples
///
/// ```
/// let cases = rgi_conformance::suite::cases();
/// assert!(cases.iter().any(|case| case.check().clauses().contains(&"RGI-CONN-1")));
/// ```
#[must_use]
pub fn cases() -> Vec<Case> {
    cases::synchronous::SYNC_CASES
        .iter()
        .chain(cases::asynchronous::ASYNC_CASES)
        .copied()
        .collect()
}

/// The case called `name`, if there is one.
///
/// # Examples
///
/// ```
/// use rgi_conformance::suite;
///
/// let case = suite::case("rgi_hdr_2_repeated_fields_stay_separate").expect("a case");
/// assert_eq!(case.check().clauses()[0], "RGI-HDR-2");
/// assert!(suite::case("no_such_case").is_none());
/// ```
#[must_use]
pub fn case(name: &str) -> Option<Case> {
    cases().into_iter().find(|case| case.name() == name)
}

/// Runs every case against `server`, one after the other.
///
/// # Examples
///
/// ```no_run
/// use rgi_conformance::toy::ToyServer;
///
/// let run = rgi_conformance::suite::run(&ToyServer::new());
/// assert!(!run.has_failures());
/// ```
#[must_use]
pub fn run(server: &dyn ServerUnderTest) -> SuiteRun {
    run_with(server, |_| {})
}

/// Runs every case against `server`, calling `progress` with each result as
/// it comes (for a progress line).
///
/// # Examples
///
/// ```no_run
/// use rgi_conformance::report::Verdict;
/// use rgi_conformance::toy::ToyServer;
///
/// let run = rgi_conformance::suite::run_with(&ToyServer::new(), |result| {
///     if let Verdict::Failed { clause, reason } = &result.verdict {
///         eprintln!("{} failed [{clause}]: {reason}", result.check.name());
///     }
/// });
/// assert_eq!(run.results.len(), rgi_conformance::suite::cases().len());
/// ```
#[must_use]
pub fn run_with(server: &dyn ServerUnderTest, mut progress: impl FnMut(&CaseResult)) -> SuiteRun {
    let results = cases()
        .iter()
        .map(|case| {
            let result = case.run(server);
            progress(&result);
            result
        })
        .collect();
    SuiteRun {
        server: server.name(),
        claims: server.claims(),
        results,
    }
}

/// Runs the case called `name` against `server` for a `#[test]` generated
/// by [`server_suite!`](crate::server_suite).
///
/// A skipped case prints `SKIPPED (<reason>)` on stderr and returns, since
/// cargo cannot mark a test as skipped.
///
/// # Examples
///
/// ```
/// use rgi_conformance::suite;
/// use rgi_conformance::toy::ToyServer;
///
/// suite::assert_case("rgi_hdr_2_repeated_fields_stay_separate", &ToyServer::new());
/// ```
///
/// # Panics
///
/// If the case fails (with the clause and the reason), or if there is no
/// case called `name`.
#[allow(
    clippy::panic,
    reason = "a failing case must fail the #[test] that runs it"
)]
pub fn assert_case(name: &str, server: &dyn ServerUnderTest) {
    let Some(case) = case(name) else {
        panic!("the RGI server suite has no case called {name:?}");
    };
    let result = case.run(server);
    match result.verdict {
        Verdict::Passed => {}
        Verdict::Skipped { reason } => {
            eprintln!("{name}: SKIPPED ({reason})");
        }
        Verdict::Failed { clause, reason } => {
            panic!(
                "{name} failed [{clause}] on {}: {reason}\n(case: {})",
                server.name(),
                case.check().title()
            );
        }
    }
}

/// Expands to one `#[test]` per case of the server suite, each running the
/// case against a server made by `factory` (a function or a path to one,
/// returning a [`ServerUnderTest`]).
///
/// Invoke it once per module: the tests are named after the cases. See the
/// [module documentation](crate::suite) for a whole test file.
#[macro_export]
macro_rules! server_suite {
    ($factory:path) => {
        $crate::__rgi_sync_cases!(tests $factory);
        $crate::__rgi_async_cases!($factory);
    };
}
