//! A case of the server suite, and how one is run against a server.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use super::{CaseResult, Verdict};
use crate::Check;

use super::{Claims, ServerUnderTest};

/// The capability a case needs; the runner skips the case when the server
/// does not claim it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Needs {
    /// Any RGI server.
    Nothing,
    /// A server of asynchronous applications (offload and the switch).
    Asynchronous,
    /// Readiness waits.
    Readiness,
    /// After-response tasks.
    AfterResponse,
    /// The upgrade.
    Upgrade,
    /// Head-read, idle keep-alive and stalled-body times of at most
    /// [`Limits::LONGEST_TIMED`](super::Limits::LONGEST_TIMED), so that the
    /// case can wait them out.
    ShortTimes,
    /// Request trailers declared ([`rgi::Features::request_trailers`]).
    RequestTrailers,
    /// Response trailers declared ([`rgi::Features::response_trailers`]).
    ResponseTrailers,
    /// `103 Early Hints` declared ([`rgi::Features::early_hints`]).
    EarlyHints,
    /// The lifespan calls declared ([`rgi::Features::lifespan`]).
    Lifespan,
    /// Asynchronous applications, and request trailers declared.
    AsyncRequestTrailers,
    /// Asynchronous applications, and response trailers declared.
    AsyncResponseTrailers,
    /// Asynchronous applications, and `103 Early Hints` declared.
    AsyncEarlyHints,
    /// Asynchronous applications, and the lifespan calls declared.
    AsyncLifespan,
}

impl Needs {
    /// Why a server with `claims` cannot run the case, if it cannot.
    #[must_use]
    pub fn missing_from(self, claims: Claims) -> Option<&'static str> {
        let (claimed, what) = match self {
            Needs::Nothing => (true, ""),
            Needs::Asynchronous => (claims.asynchronous, "asynchronous applications"),
            Needs::Readiness => (claims.asynchronous && claims.readiness, "readiness waits"),
            Needs::AfterResponse => (
                claims.asynchronous && claims.after_response,
                "after-response tasks",
            ),
            Needs::Upgrade => (claims.asynchronous && claims.upgrade, "the upgrade"),
            Needs::ShortTimes => (
                claims.limits.head_time <= super::Limits::LONGEST_TIMED
                    && claims.limits.idle_time <= super::Limits::LONGEST_TIMED
                    && claims.limits.body_time <= super::Limits::LONGEST_TIMED,
                "head-read, idle and stalled-body times the suite can wait out (at most 10 s)",
            ),
            Needs::RequestTrailers => (
                claims.features.request_trailers(),
                "request trailers (Features::request_trailers)",
            ),
            Needs::ResponseTrailers => (
                claims.features.response_trailers(),
                "response trailers (Features::response_trailers)",
            ),
            Needs::EarlyHints => (
                claims.features.early_hints(),
                "103 Early Hints (Features::early_hints)",
            ),
            Needs::Lifespan => (
                claims.features.lifespan(),
                "the lifespan calls (Features::lifespan)",
            ),
            Needs::AsyncRequestTrailers => (
                claims.asynchronous && claims.features.request_trailers(),
                "asynchronous applications with request trailers",
            ),
            Needs::AsyncResponseTrailers => (
                claims.asynchronous && claims.features.response_trailers(),
                "asynchronous applications with response trailers",
            ),
            Needs::AsyncEarlyHints => (
                claims.asynchronous && claims.features.early_hints(),
                "asynchronous applications with 103 Early Hints",
            ),
            Needs::AsyncLifespan => (
                claims.asynchronous && claims.features.lifespan(),
                "asynchronous applications with the lifespan calls",
            ),
        };
        (!claimed).then_some(what)
    }
}

/// Why a case failed: the clause broken and what was observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    clause: &'static str,
    reason: String,
}

impl Failure {
    /// A failure of `clause`: `reason` says what was observed, with the
    /// offending value.
    pub fn new(clause: &'static str, reason: impl Into<String>) -> Self {
        Failure {
            clause,
            reason: reason.into(),
        }
    }

    /// The clause broken.
    #[must_use]
    pub fn clause(&self) -> &'static str {
        self.clause
    }

    /// What was observed.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.clause, self.reason)
    }
}

impl std::error::Error for Failure {}

/// The body of a case: drives the server and judges what it saw.
pub type CaseFn = fn(&dyn ServerUnderTest) -> Result<(), Failure>;

/// One case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    check: Check,
    needs: Needs,
    run: CaseFn,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("check", &self.check)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

impl Case {
    /// A case judged by `check`, needing `needs`, run by `run`.
    #[must_use]
    pub const fn new(check: Check, needs: Needs, run: CaseFn) -> Self {
        Case { check, needs, run }
    }

    /// What the case checks.
    #[must_use]
    pub const fn check(&self) -> Check {
        self.check
    }

    /// The case's unique name (also its test's name).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.check.name()
    }

    /// The capability it needs.
    #[must_use]
    pub const fn needs(&self) -> Needs {
        self.needs
    }

    /// Runs the case against `server`: skipped if the server does not claim
    /// what the case needs; a panic inside the case is a failure of its
    /// main clause.
    pub fn run(&self, server: &dyn ServerUnderTest) -> CaseResult {
        let started = Instant::now();
        let verdict = match self.needs.missing_from(server.claims()) {
            Some(missing) => Verdict::Skipped {
                reason: format!("the server does not claim {missing}"),
            },
            None => match panic::catch_unwind(AssertUnwindSafe(|| (self.run)(server))) {
                Ok(Ok(())) => Verdict::Passed,
                Ok(Err(failure)) => Verdict::Failed {
                    clause: failure.clause,
                    reason: failure.reason,
                },
                Err(payload) => Verdict::Failed {
                    clause: self.check.clauses().first().copied().unwrap_or("RGI"),
                    reason: format!(
                        "the case panicked: {}",
                        payload
                            .downcast_ref::<&str>()
                            .map(|text| (*text).to_owned())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_default()
                    ),
                },
            },
        };
        CaseResult {
            check: self.check,
            verdict,
            duration: started.elapsed(),
        }
    }
}
