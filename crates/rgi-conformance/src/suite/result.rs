//! What a suite run produces: a verdict per case, the run, its tally.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::Claims;
use crate::Check;

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Verdict {
    /// The server did what the clause requires.
    Passed,
    /// The server broke `clause`; `reason` says how, with the offending
    /// value.
    Failed {
        /// The clause broken (one of the case's clauses).
        clause: &'static str,
        /// What was observed.
        reason: String,
    },
    /// The case did not run: the server does not claim the capability it
    /// needs. Never counted as passed.
    Skipped {
        /// Which capability was missing.
        reason: String,
    },
}

impl Verdict {
    /// Whether the case failed.
    #[must_use]
    pub fn is_failed(&self) -> bool {
        matches!(self, Verdict::Failed { .. })
    }
}

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The case that ran.
    pub check: Check,
    /// How it ended.
    pub verdict: Verdict,
    /// How long it took, wall clock.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

/// Serialises a duration as whole milliseconds.
fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(duration.as_millis())
}

/// The results of running the suite against one server.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteRun {
    /// The server's name.
    pub server: String,
    /// What it claimed.
    pub claims: Claims,
    /// One result per case, in the suite's order.
    pub results: Vec<CaseResult>,
}

impl SuiteRun {
    /// Whether any case failed.
    #[must_use]
    pub fn has_failures(&self) -> bool {
        self.results.iter().any(|result| result.verdict.is_failed())
    }

    /// The run in numbers.
    #[must_use]
    pub fn tally(&self) -> Tally {
        let mut tally = Tally {
            cases: self.results.len(),
            ..Tally::default()
        };
        let mut judged: BTreeSet<&str> = BTreeSet::new();
        for result in &self.results {
            tally.duration += result.duration;
            match result.verdict {
                Verdict::Passed => tally.passed += 1,
                Verdict::Failed { .. } => tally.failed += 1,
                Verdict::Skipped { .. } => tally.skipped += 1,
            }
            if !matches!(result.verdict, Verdict::Skipped { .. }) {
                judged.extend(result.check.clauses());
            }
        }
        tally.clauses_judged = judged.len();
        tally
    }
}

/// A suite run in numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Cases in the run.
    pub cases: usize,
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases skipped for an unclaimed capability.
    pub skipped: usize,
    /// Distinct clauses cited by the cases that ran (passed or failed).
    pub clauses_judged: usize,
    /// The cases' durations added up.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

impl Verdict {
    /// `PASS`, `FAIL` or `SKIP`, as the table shows it.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Passed => "PASS",
            Verdict::Failed { .. } => "FAIL",
            Verdict::Skipped { .. } => "SKIP",
        }
    }
}
