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
//! A case needs what the server claims ([`Claims`]: asynchronous
//! applications, readiness, after-response tasks, the upgrade, short
//! timers, and RGI 1.2's optional features it declares in its
//! `ServerInfo`). A server that lacks a capability declares the cases it
//! skips, by capability and with a reason, in the invocation:
//!
//! ```no_run
//! # use rgi_conformance::suite::{Claims, Probe, RunningServer, ServerUnderTest};
//! # struct SyncOnly;
//! # impl ServerUnderTest for SyncOnly {
//! #     fn name(&self) -> String { "sync-only".into() }
//! #     fn claims(&self) -> Claims { Claims::synchronous() }
//! #     fn start(&self, _: Probe) -> Result<Box<dyn RunningServer>, rgi::BoxError> {
//! #         Err("not in this example".into())
//! #     }
//! # }
//! # fn sync_only() -> SyncOnly { SyncOnly }
//! rgi_conformance::server_suite!(sync_only, skips {
//!     Asynchronous: "serves synchronous applications only",
//! });
//! # fn main() {}
//! ```
//!
//! A case skipped for a capability the invocation does not declare fails,
//! so nothing is skipped by accident. Cargo cannot mark a test as skipped
//! at run time, so each declared skip also expands to one ignored test,
//! `rgi_declared_skips::<Capability>`, which `cargo test` lists as
//! `ignored, <reason>`; the skipped cases themselves return after printing
//! `SKIPPED (declared: <reason>)` on stderr. A declaration for a
//! capability the server claims fails too (it would hide nothing but
//! mislead). The reports of [`run`] (and the CLI) list every skipped case
//! as skipped, never as passed.
//!
//! # Running the suite as a program
//!
//! [`run`] and [`run_with`] run every case and return a
//! [`SuiteRun`] for the reports; [`cases`] and
//! [`case`] give the cases themselves.

mod case;
pub(crate) mod cases;
pub mod garbled;
mod probe;
mod result;
mod server;
pub mod wire;

pub use case::{Case, CaseFn, Failure, Needs};
pub use probe::Probe;
pub use result::{CaseResult, SuiteRun, Tally, Verdict};
pub use server::{Claims, Limits, RunningServer, ServerUnderTest};

/// The names of the synchronous cases, in order: the same list that
/// [`server_suite!`](crate::server_suite) expands.
#[doc(hidden)]
pub const SYNC_CASE_NAMES: &[&str] = crate::__rgi_sync_cases!(names);

/// Every case of the suite, in order: the synchronous interface first,
/// then the asynchronous extensions, then RGI 1.2's optional features.
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
        .chain(cases::features::FEATURE_CASES)
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
/// ```
/// use rgi_conformance::suite::{self, ServerUnderTest};
///
/// /// Whether `server` passes every case it claims.
/// fn conforms(server: &dyn ServerUnderTest) -> bool {
///     !suite::run(server).has_failures()
/// }
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
/// ```
/// use rgi_conformance::suite::{self, ServerUnderTest, Verdict};
///
/// /// Runs the suite, printing each failure as it happens.
/// fn judge(server: &dyn ServerUnderTest) {
///     let run = suite::run_with(server, |result| {
///         if let Verdict::Failed { clause, reason } = &result.verdict {
///             eprintln!("{} failed [{clause}]: {reason}", result.check.name());
///         }
///     });
///     assert_eq!(run.results.len(), suite::cases().len());
/// }
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

/// Runs the case called `name` against `server`, which declares no skip.
///
/// Equivalent to [`assert_case_declaring`] with an empty list.
///
/// # Examples
///
/// ```
/// use rgi_conformance::suite::{self, ServerUnderTest};
///
/// #[allow(dead_code)] // the body of a #[test] of the server's crate
/// fn repeated_fields_stay_separate(server: &dyn ServerUnderTest) {
///     suite::assert_case("rgi_hdr_2_repeated_fields_stay_separate", server);
/// }
/// ```
///
/// # Panics
///
/// If the case fails (with the clause and the reason), if the server does
/// not claim what the case needs, or if there is no case called `name`.
pub fn assert_case(name: &str, server: &dyn ServerUnderTest) {
    assert_case_declaring(name, server, &[]);
}

/// Runs the case called `name` against `server` for a `#[test]` generated
/// by [`server_suite!`](crate::server_suite), with the capabilities whose
/// cases the invocation declares skipped.
///
/// A case the server cannot run because it lacks a capability declared in
/// `declared` prints `SKIPPED (declared: <reason>)` on stderr and returns.
///
/// # Examples
///
/// ```
/// use rgi_conformance::suite::{self, Claims, Needs, Probe, RunningServer, ServerUnderTest};
///
/// /// A server that claims nothing beyond the synchronous interface.
/// struct SyncOnly;
///
/// impl ServerUnderTest for SyncOnly {
///     fn name(&self) -> String {
///         "sync-only".into()
///     }
///     fn claims(&self) -> Claims {
///         Claims::synchronous()
///     }
///     fn start(&self, _app: Probe) -> Result<Box<dyn RunningServer>, rgi::BoxError> {
///         Err("never started: the case is skipped first".into())
///     }
/// }
///
/// suite::assert_case_declaring(
///     "rgia_offload_1_jobs_run_on_worker_threads",
///     &SyncOnly,
///     &[(Needs::Asynchronous, "synchronous applications only")],
/// );
/// ```
///
/// # Panics
///
/// If the case fails (with the clause and the reason), if it needs a
/// capability the server neither claims nor declares skipped, if
/// `declared` names a capability the server claims, or if there is no case
/// called `name`.
#[allow(
    clippy::panic,
    reason = "a failing case must fail the #[test] that runs it"
)]
pub fn assert_case_declaring(name: &str, server: &dyn ServerUnderTest, declared: &[(Needs, &str)]) {
    quiet_deliberate_panics();
    let Some(case) = case(name) else {
        panic!("the RGI server suite has no case called {name:?}");
    };
    let claims = server.claims();
    check_declared_skips(claims, declared);
    if let Some(missing) = case.needs().missing_from(claims) {
        match declared.iter().find(|(need, _)| *need == case.needs()) {
            Some((_, reason)) => {
                eprintln!("{name}: SKIPPED (declared: {reason})");
                return;
            }
            None => panic!(
                "{name} needs {missing}, which {} neither claims nor declares skipped; \
                 claim it, or declare the skip: server_suite!(factory, skips {{ {:?}: \"why\" }})",
                server.name(),
                case.needs()
            ),
        }
    }
    let result = case.run(server);
    match result.verdict {
        Verdict::Passed => {}
        Verdict::Skipped { reason } => {
            panic!("{name} was skipped after its claims were checked: {reason}");
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

/// Installs, once per process, a panic hook that passes over the probes'
/// deliberate panics (their message carries the suite's secret) and hands
/// every other panic to the hook it replaces. Under `cargo test` with
/// `RUST_BACKTRACE` set, the default hook resolves a backtrace for each
/// deliberate panic, which on a loaded machine takes longer than a case
/// waits for the server's 500; and the output is noise. The CLI installs
/// its own hook (`--show-panics`).
fn quiet_deliberate_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            if !message.is_some_and(|message| message.contains(cases::kit::SECRET)) {
                previous(info);
            }
        }));
    });
}

/// Checks that every declared skip is for a capability `claims` lacks.
///
/// # Panics
///
/// If one is claimed after all: the declaration is stale.
#[doc(hidden)]
#[allow(clippy::panic, reason = "a stale declaration must fail its test")]
pub fn check_declared_skips(claims: Claims, declared: &[(Needs, &str)]) {
    for (need, reason) in declared {
        assert!(
            need.missing_from(claims).is_some(),
            "the skip of {need:?} cases is declared ({reason:?}), but the server claims what they need"
        );
    }
}

/// Expands to one `#[test]` per case of the server suite, each running the
/// case against a server made by `factory` (a function or a path to one,
/// returning a [`ServerUnderTest`]), and, after `skips`, one ignored test
/// per capability whose cases the server declares skipped (the
/// capabilities are the variants of [`Needs`]).
///
/// Invoke it once per module: the tests are named after the cases. See the
/// [module documentation](crate::suite) for a whole test file.
#[macro_export]
macro_rules! server_suite {
    ($factory:path) => {
        $crate::server_suite!($factory, skips {});
    };
    ($factory:path, skips { $($need:ident : $reason:literal),* $(,)? }) => {
        /// The capabilities whose cases this invocation declares skipped.
        const RGI_DECLARED_SKIPS: &[($crate::suite::Needs, &str)] =
            &[$(($crate::suite::Needs::$need, $reason)),*];
        $crate::__rgi_sync_cases!(tests $factory);
        $crate::__rgi_async_cases!($factory);
        $crate::__rgi_feature_cases!(tests $factory);

        /// One ignored test per declared skip, so that `cargo test` shows
        /// each with its reason.
        #[allow(non_snake_case)]
        mod rgi_declared_skips {
            $(
                #[test]
                #[ignore = $reason]
                fn $need() {}
            )*
        }

        /// A declared skip must be for a capability the server lacks.
        #[test]
        fn rgi_declared_skips_are_not_claimed() {
            $crate::suite::check_declared_skips(
                $crate::suite::ServerUnderTest::claims(&$factory()),
                RGI_DECLARED_SKIPS,
            );
        }
    };
}
