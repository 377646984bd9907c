//! The clause-level table: every clause, how the kit judges it and, after
//! a run, what the run found.

use std::fmt::Write as _;

use crate::catalogue::{By, Coverage, Judged};
use crate::suite::{SuiteRun, Verdict};

/// What a run found about one clause.
fn outcome(id: &str, run: &SuiteRun) -> &'static str {
    let citing: Vec<&Verdict> = run
        .results
        .iter()
        .filter(|result| result.check.clauses().contains(&id))
        .map(|result| &result.verdict)
        .collect();
    if citing.is_empty() {
        "-"
    } else if citing
        .iter()
        .any(|verdict| matches!(verdict, Verdict::Failed { clause, .. } if *clause == id))
    {
        "FAIL"
    } else if citing.iter().any(|verdict| **verdict == Verdict::Passed) {
        "PASS"
    } else {
        // Every case citing it was skipped, or stopped at another clause.
        "SKIP"
    }
}

/// Every clause of `coverage` as a table: ID, level, party, how it is
/// judged (`checked`, `reason` or `-`), with `run` also what the suite
/// found (`PASS`, `FAIL`, `SKIP`, or `-` when no case of the run cites it),
/// and the title; below each row, the checks that judge it or the written
/// reason why none does. [`coverage::summary`] gives the counts to print
/// after it.
///
/// [`coverage::summary`]: crate::coverage::summary
///
/// # Examples
///
/// ```
/// use rgi_conformance::{coverage, report};
///
/// let table = report::clause_table(&coverage::coverage(), None);
/// assert!(table.contains("RGI-START-2"));
/// assert!(table.contains("MUST NOT"));
/// ```
#[must_use]
pub fn clause_table(coverage: &[Coverage], run: Option<&SuiteRun>) -> String {
    let id_width = coverage
        .iter()
        .map(|entry| entry.clause.id.len())
        .chain([6])
        .max()
        .unwrap_or(6);
    let mut out = String::new();
    let _ = write!(
        out,
        "{:<id_width$}  {:<10}  {:<11}  {:<7}  ",
        "CLAUSE", "LEVEL", "PARTY", "JUDGED"
    );
    if run.is_some() {
        let _ = write!(out, "{:<6}  ", "RESULT");
    }
    out.push_str("TITLE\n");
    for entry in coverage {
        let clause = entry.clause;
        let judged = match entry.judged {
            Judged::Checked(_) => "checked",
            Judged::Unchecked(_) => "reason",
            Judged::Neither => "-",
        };
        let _ = write!(
            out,
            "{:<id_width$}  {:<10}  {:<11}  {judged:<7}  ",
            clause.id,
            clause.level.keyword(),
            clause.party.name(),
        );
        if let Some(run) = run {
            let _ = write!(out, "{:<6}  ", outcome(clause.id, run));
        }
        let _ = writeln!(out, "{}", clause.title);
        match &entry.judged {
            Judged::Checked(checks) => {
                for by in [By::Validator, By::Suite] {
                    let names: Vec<&str> = checks
                        .iter()
                        .filter(|checker| checker.by == by)
                        .map(|checker| checker.check.name())
                        .collect();
                    if !names.is_empty() {
                        let _ = writeln!(out, "    {by}: {}", names.join(", "));
                    }
                }
            }
            Judged::Unchecked(reason) => {
                let _ = writeln!(out, "    not checked: {reason}");
            }
            Judged::Neither => {}
        }
    }
    out
}
