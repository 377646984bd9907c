//! Runs the components through the kit and classifies what it reported.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use rgi_conformance::Violation;

use crate::component::{Component, Expect, Interface, Kind};
use crate::{async_apps, async_mw, async_servers, correct, sync_apps, sync_mw, sync_servers};

/// How the kit did on one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Broken, reported with the expected clause and side.
    Caught,
    /// Broken, reported with the expected clause but the other side.
    WrongSide,
    /// Broken, reported, but only under other clauses.
    OtherClauses,
    /// Broken, and nothing was reported.
    Missed,
    /// The run did not finish within the bounded wait.
    Hung,
    /// The run failed or panicked outside the component (the kit or the
    /// harness gave up); counted as missed for a broken component.
    Crashed(String),
    /// Correct, and no error was reported (warnings may be).
    Clean,
    /// Correct, and the kit reported at least one error.
    FalsePositive,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Caught => f.write_str("caught"),
            Outcome::WrongSide => f.write_str("caught, wrong side"),
            Outcome::OtherClauses => f.write_str("caught, other clauses only"),
            Outcome::Missed => f.write_str("missed"),
            Outcome::Hung => f.write_str("missed (hung)"),
            Outcome::Crashed(why) => write!(f, "missed (crashed: {why})"),
            Outcome::Clean => f.write_str("clean"),
            Outcome::FalsePositive => f.write_str("FALSE POSITIVE"),
        }
    }
}

/// A component and what became of it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The component.
    pub component: Component,
    /// The classification.
    pub outcome: Outcome,
    /// What the kit reported, as `[CLAUSE] side` (warnings marked).
    pub reported: Vec<String>,
}

/// Every component of the corpus, broken ones first.
#[must_use]
pub fn components() -> Vec<Component> {
    let mut all = Vec::new();
    all.extend(sync_apps::components());
    all.extend(async_apps::components());
    all.extend(sync_mw::components());
    all.extend(async_mw::components());
    all.extend(sync_servers::components());
    all.extend(async_servers::components());
    all.extend(correct::components());
    all
}

/// Runs one component on a thread of its own and classifies the result;
/// a run that takes longer than `timeout` is abandoned (its thread is left
/// parked or running: Rust cannot stop a thread) and counted as hung.
#[must_use]
pub fn run_one(component: Component, timeout: Duration) -> Record {
    let (tx, rx) = mpsc::channel();
    let run = component.run;
    let must_complete = component.expect == Expect::Correct;
    let spawned = std::thread::Builder::new()
        .name(format!("corpus-{}", component.name))
        .spawn(move || {
            crate::support::require_complete(must_complete);
            let result = catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|payload| {
                Err(format!("panicked: {}", panic_text(payload.as_ref())))
            });
            // The receiver is gone when the run was abandoned as hung.
            let _ = tx.send(result);
        });
    let result = match spawned {
        Ok(_) => rx.recv_timeout(timeout).ok(),
        Err(err) => Some(Err(format!("cannot start a thread: {err}"))),
    };
    classify(component, result)
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string payload".to_owned()
    }
}

fn short(violation: &Violation) -> String {
    if violation.is_warning() {
        format!("[{}] {} (warning)", violation.clause(), violation.side())
    } else {
        format!("[{}] {}", violation.clause(), violation.side())
    }
}

fn classify(component: Component, result: Option<Result<Vec<Violation>, String>>) -> Record {
    let violations = match result {
        None => {
            return Record {
                component,
                outcome: Outcome::Hung,
                reported: Vec::new(),
            };
        }
        Some(Err(why)) => {
            return Record {
                component,
                outcome: Outcome::Crashed(why),
                reported: Vec::new(),
            };
        }
        Some(Ok(violations)) => violations,
    };
    let mut reported: Vec<String> = violations.iter().map(short).collect();
    reported.dedup();
    let outcome = match component.expect {
        Expect::Broken { clause, side } => {
            let same_clause: Vec<&Violation> =
                violations.iter().filter(|v| v.clause() == clause).collect();
            if same_clause.iter().any(|v| v.side() == side) {
                Outcome::Caught
            } else if !same_clause.is_empty() {
                Outcome::WrongSide
            } else if !violations.is_empty() {
                Outcome::OtherClauses
            } else {
                Outcome::Missed
            }
        }
        Expect::Correct => {
            if violations.iter().any(|v| !v.is_warning()) {
                Outcome::FalsePositive
            } else {
                Outcome::Clean
            }
        }
    };
    Record {
        component,
        outcome,
        reported,
    }
}

/// Runs every component in turn.
#[must_use]
pub fn run(components: &[Component], timeout: Duration) -> Vec<Record> {
    components.iter().map(|c| run_one(*c, timeout)).collect()
}

/// Counts over a set of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Broken components.
    pub broken: usize,
    /// Broken and caught with the right clause and side.
    pub caught: usize,
    /// Right clause, wrong side.
    pub wrong_side: usize,
    /// Reported only under other clauses.
    pub other_clauses: usize,
    /// Missed, hung or crashed.
    pub missed: usize,
    /// Correct components.
    pub correct: usize,
    /// Correct components the kit reported an error for.
    pub false_positives: usize,
    /// Correct components whose run hung or crashed.
    pub correct_not_run: usize,
}

impl Summary {
    /// Tallies `records`.
    #[must_use]
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut s = Summary::default();
        for record in records {
            match (record.component.expect, &record.outcome) {
                (Expect::Broken { .. }, outcome) => {
                    s.broken += 1;
                    match outcome {
                        Outcome::Caught => s.caught += 1,
                        Outcome::WrongSide => s.wrong_side += 1,
                        Outcome::OtherClauses => s.other_clauses += 1,
                        _ => s.missed += 1,
                    }
                }
                (Expect::Correct, outcome) => {
                    s.correct += 1;
                    match outcome {
                        Outcome::FalsePositive => s.false_positives += 1,
                        Outcome::Clean => {}
                        _ => s.correct_not_run += 1,
                    }
                }
            }
        }
        s
    }

    /// Caught with the right clause and side, over broken components, in
    /// percent (0 when there are none).
    #[must_use]
    pub fn catch_rate(&self) -> f64 {
        if self.broken == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss, reason = "counts are tiny")]
        let rate = self.caught as f64 * 100.0 / self.broken as f64;
        rate
    }

    fn line(&self, label: &str) -> String {
        format!(
            "| {label} | {} | {} ({:.1} %) | {} | {} | {} | {} | {} |",
            self.broken,
            self.caught,
            self.catch_rate(),
            self.wrong_side,
            self.other_clauses,
            self.missed,
            self.correct,
            self.false_positives,
        )
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Application => "application",
        Kind::Middleware => "middleware",
        Kind::Server => "server",
    }
}

fn interface_name(interface: Interface) -> &'static str {
    match interface {
        Interface::Sync => "sync",
        Interface::Async => "async",
    }
}

/// The table of every record and the summaries, as markdown.
#[must_use]
pub fn render(records: &[Record]) -> String {
    let mut out = String::new();
    let total = Summary::of(records);
    let _ = writeln!(out, "# RGI fault corpus: results\n");
    let _ = writeln!(
        out,
        "Catch rate (right clause and side / broken components): **{} / {} = {:.1} %**; \
         false positives: **{} / {}** correct components.\n",
        total.caught,
        total.broken,
        total.catch_rate(),
        total.false_positives,
        total.correct,
    );
    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(
        out,
        "| group | broken | caught (rate) | wrong side | other clauses | missed | correct | false positives |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let _ = writeln!(out, "{}", total.line("all"));
    let mut by_interface: BTreeMap<Interface, Vec<&Record>> = BTreeMap::new();
    let mut by_kind: BTreeMap<Kind, Vec<&Record>> = BTreeMap::new();
    let mut by_both: BTreeMap<(Kind, Interface), Vec<&Record>> = BTreeMap::new();
    for record in records {
        let c = record.component;
        by_interface.entry(c.interface).or_default().push(record);
        by_kind.entry(c.kind).or_default().push(record);
        by_both
            .entry((c.kind, c.interface))
            .or_default()
            .push(record);
    }
    for (interface, rs) in &by_interface {
        let _ = writeln!(
            out,
            "{}",
            Summary::of(rs.iter().copied()).line(interface_name(*interface))
        );
    }
    for (kind, rs) in &by_kind {
        let _ = writeln!(
            out,
            "{}",
            Summary::of(rs.iter().copied()).line(kind_name(*kind))
        );
    }
    for ((kind, interface), rs) in &by_both {
        let label = format!("{} / {}", kind_name(*kind), interface_name(*interface));
        let _ = writeln!(out, "{}", Summary::of(rs.iter().copied()).line(&label));
    }
    if total.correct_not_run > 0 {
        let _ = writeln!(
            out,
            "\n{} correct component(s) hung or crashed (not counted as false positives).",
            total.correct_not_run
        );
    }
    let _ = writeln!(out, "\n## Components\n");
    let _ = writeln!(
        out,
        "| component | interface | kind | expected | outcome | reported |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for record in records {
        let c = record.component;
        let expected = match c.expect {
            Expect::Broken { clause, side } => format!("{clause} / {side}"),
            Expect::Correct => "correct".to_owned(),
        };
        let reported = if record.reported.is_empty() {
            "-".to_owned()
        } else {
            record.reported.join(", ")
        };
        let outcome = record
            .outcome
            .to_string()
            .replace('|', "/")
            .replace('\n', " ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            c.name,
            interface_name(c.interface),
            kind_name(c.kind),
            expected,
            outcome,
            reported,
        );
    }
    out
}
