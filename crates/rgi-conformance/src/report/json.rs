//! The JSON rendering of a suite run.

use serde::Serialize;

use crate::suite::Claims;
use crate::suite::{SuiteRun, Tally, Verdict};

/// The format tag at the top of every document; a change of field names or
/// meanings changes it.
pub(super) const FORMAT: &str = "rgi-conformance-suite/1";

#[derive(Serialize)]
struct Document<'a> {
    format: &'static str,
    server: &'a str,
    claims: Claims,
    summary: Summary,
    results: Vec<Row<'a>>,
}

#[derive(Serialize)]
struct Summary {
    cases: usize,
    passed: usize,
    failed: usize,
    skipped: usize,
    clauses_judged: usize,
    duration_ms: u128,
}

#[derive(Serialize)]
struct Row<'a> {
    case: &'static str,
    title: &'static str,
    clauses: &'static [&'static str],
    result: &'static str,
    /// The clause broken; `null` unless failed.
    clause: Option<&'static str>,
    /// Why it failed or was skipped; `null` if passed.
    reason: Option<&'a str>,
    duration_ms: u128,
}

/// The run as pretty-printed JSON with stable field names:
///
/// ```text
/// { "format": "rgi-conformance-suite/1", "server", "claims": {…},
///   "summary": { "cases", "passed", "failed", "skipped", "clauses_judged", "duration_ms" },
///   "results": [ { "case", "title", "clauses": [...], "result": "passed" | "failed" | "skipped",
///                  "clause": string | null, "reason": string | null, "duration_ms" } ] }
/// ```
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
///         verdict: Verdict::Passed,
///         duration: Duration::from_millis(3),
///     }],
/// };
/// let document: serde_json::Value = serde_json::from_str(&report::json(&run))?;
/// assert_eq!(document["results"][0]["result"], "passed");
/// assert_eq!(document["summary"]["passed"], 1);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[must_use]
pub fn json(run: &SuiteRun) -> String {
    let Tally {
        cases,
        passed,
        failed,
        skipped,
        clauses_judged,
        duration,
    } = run.tally();
    let document = Document {
        format: FORMAT,
        server: &run.server,
        claims: run.claims,
        summary: Summary {
            cases,
            passed,
            failed,
            skipped,
            clauses_judged,
            duration_ms: duration.as_millis(),
        },
        results: run
            .results
            .iter()
            .map(|result| {
                let (result_name, clause, reason) = match &result.verdict {
                    Verdict::Passed => ("passed", None, None),
                    Verdict::Failed { clause, reason } => {
                        ("failed", Some(*clause), Some(reason.as_str()))
                    }
                    Verdict::Skipped { reason } => ("skipped", None, Some(reason.as_str())),
                };
                Row {
                    case: result.check.name(),
                    title: result.check.title(),
                    clauses: result.check.clauses(),
                    result: result_name,
                    clause,
                    reason,
                    duration_ms: result.duration.as_millis(),
                }
            })
            .collect(),
    };
    // Plain structs of strings, numbers and booleans: serialisation cannot
    // fail (that needs maps with non-string keys or a failing Serialize), but
    // a report must never panic, so an error still yields a JSON document.
    match serde_json::to_string_pretty(&document) {
        Ok(mut text) => {
            text.push('\n');
            text
        }
        Err(error) => format!(
            "{{\"format\": \"{FORMAT}\", \"error\": {}}}\n",
            serde_json::Value::String(error.to_string())
        ),
    }
}
