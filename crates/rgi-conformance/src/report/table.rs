//! The human table of a suite run.

use std::fmt::Write as _;

use crate::suite::{SuiteRun, Verdict};

/// The run as a table for people: one row per case (clause, case, result,
/// title), the failure or skip reason indented below its row, then a
/// summary line.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rgi_conformance::Check;
/// use rgi_conformance::report;
/// use rgi_conformance::suite::{CaseResult, SuiteRun, Verdict};
/// use rgi_conformance::suite::Claims;
///
/// let run = SuiteRun {
///     server: "demo".into(),
///     claims: Claims::synchronous(),
///     results: vec![CaseResult {
///         check: Check::new("start_once", &["RGI-START-2"], "the head is sent once"),
///         verdict: Verdict::Failed { clause: "RGI-START-2", reason: "sent twice".into() },
///         duration: Duration::from_millis(3),
///     }],
/// };
/// let table = report::table(&run);
/// assert!(table.contains("RGI-START-2  start_once  FAIL    the head is sent once"));
/// assert!(table.contains("    RGI-START-2: sent twice"));
/// assert!(table.ends_with("0 passed, 1 failed, 0 skipped, of 1 cases; 1 clauses judged\n"));
/// ```
#[must_use]
pub fn table(run: &SuiteRun) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "RGI server suite: {} (claims: {})",
        run.server,
        claims_list(run)
    );
    let rows: Vec<(String, &str, &str, &str)> = run
        .results
        .iter()
        .map(|result| {
            let clauses = result.check.clauses();
            let shown = match &result.verdict {
                Verdict::Failed { clause, .. } => clause,
                _ => clauses.first().unwrap_or(&"-"),
            };
            let others = clauses.iter().filter(|id| *id != shown).count();
            let clause = if others == 0 {
                (*shown).to_owned()
            } else {
                format!("{shown} +{others}")
            };
            (
                clause,
                result.check.name(),
                result.verdict.label(),
                result.check.title(),
            )
        })
        .collect();
    let clause_width = rows
        .iter()
        .map(|row| row.0.chars().count())
        .chain([6])
        .max()
        .unwrap_or(6);
    let case_width = rows
        .iter()
        .map(|row| row.1.chars().count())
        .chain([4])
        .max()
        .unwrap_or(4);
    let _ = writeln!(
        out,
        "\n{:<clause_width$}  {:<case_width$}  RESULT  TITLE",
        "CLAUSE", "CASE"
    );
    for ((clause, name, label, title), result) in rows.iter().zip(&run.results) {
        let _ = writeln!(
            out,
            "{clause:<clause_width$}  {name:<case_width$}  {label:<6}  {title}"
        );
        let detail = match &result.verdict {
            Verdict::Passed => None,
            Verdict::Failed { clause, reason } => Some(format!("{clause}: {reason}")),
            Verdict::Skipped { reason } => Some(format!("skipped: {reason}")),
        };
        for line in detail.iter().flat_map(|detail| detail.lines()) {
            let _ = writeln!(out, "    {line}");
        }
    }
    let tally = run.tally();
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} skipped, of {} cases; {} clauses judged",
        tally.passed, tally.failed, tally.skipped, tally.cases, tally.clauses_judged
    );
    out
}

/// The claimed capabilities as words.
pub(super) fn claims_list(run: &SuiteRun) -> String {
    let claims = run.claims;
    let mut list = vec!["synchronous"];
    for (claimed, name) in [
        (claims.asynchronous, "asynchronous"),
        (claims.readiness, "readiness"),
        (claims.after_response, "after-response"),
        (claims.upgrade, "upgrade"),
        (claims.features.request_trailers(), "request-trailers"),
        (claims.features.response_trailers(), "response-trailers"),
        (claims.features.early_hints(), "early-hints"),
        (claims.features.lifespan(), "lifespan"),
    ] {
        if claimed {
            list.push(name);
        }
    }
    list.join(", ")
}
