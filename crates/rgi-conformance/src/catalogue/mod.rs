//! The clause catalogue: every clause of `spec/rgi.md` and
//! `spec/rgi-async.md`, read from the documents themselves (built into the
//! kit), and the rules by which a set of checks judges them.
//!
//! A clause is judged by one or more [`Check`]s (validator rules and
//! server-suite cases), or carries a written reason in [`UNCHECKED`] why no
//! automated check can judge it. Every `MUST` and `MUST NOT` clause has one
//! or the other; [`audit_of`] lists every departure from that rule. This
//! module knows no check itself, so that the validator and the suite can
//! read clause levels from it; [`crate::coverage`] applies it to the kit's
//! own checks.
//!
//! # Examples
//!
//! ```
//! use rgi_conformance::catalogue::{self, Level};
//!
//! let start = catalogue::clause("RGI-START-2").expect("a clause of spec/rgi.md");
//! assert_eq!(start.level, Level::Must);
//! ```

mod parse;
mod unchecked;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;

use crate::Check;

pub use parse::{Clause, Level, ParseError, Party, Spec, parse};
pub use unchecked::UNCHECKED;

/// Both documents, parsed once.
static CATALOGUE: OnceLock<Result<Vec<Clause>, ParseError>> = OnceLock::new();

/// Every clause of both documents, `spec/rgi.md` first, each in document
/// order; or why the built-in documents could not be read.
///
/// # Errors
///
/// The [`ParseError`] of the first document that does not parse. The
/// kit's tests prove that the documents it was built with parse, so a
/// released kit never returns it.
pub fn try_clauses() -> Result<&'static [Clause], &'static ParseError> {
    CATALOGUE
        .get_or_init(|| {
            let mut all = Vec::new();
            for spec in Spec::ALL {
                all.extend(parse(spec, spec.source())?);
            }
            Ok(all)
        })
        .as_deref()
}

/// Every clause of both documents, `spec/rgi.md` first, each in document
/// order.
///
/// # Panics
///
/// If the documents built into the kit do not parse. They are fixed at
/// build time and `tests/catalogue.rs` proves they parse, so this cannot
/// happen in a kit whose tests pass; [`try_clauses`] returns the error
/// instead.
#[must_use]
pub fn clauses() -> &'static [Clause] {
    // The input is the kit's own build-time text, not anything a peer
    // controls; a failure here is a defect of the build, caught by its tests.
    #[allow(clippy::panic)]
    match try_clauses() {
        Ok(clauses) => clauses,
        Err(error) => panic!("the built-in spec documents do not parse: {error}"),
    }
}

/// The clause with ID `id`, if the spec defines one.
#[must_use]
pub fn clause(id: &str) -> Option<&'static Clause> {
    clauses().iter().find(|clause| clause.id == id)
}

/// Which part of the kit a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// A rule of the validator middleware (`crate::validate`), which judges
    /// applications, middleware and the server side it wraps.
    Validator,
    /// A case of the server suite (`crate::suite`), which judges servers
    /// over real sockets.
    Suite,
}

impl fmt::Display for By {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            By::Validator => "validator",
            By::Suite => "suite",
        })
    }
}

/// One check of the kit and where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Checker {
    /// The validator or the suite.
    pub by: By,
    /// The check.
    pub check: Check,
}

/// How a clause is judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", content = "by", rename_all = "snake_case")]
pub enum Judged {
    /// By these checks.
    Checked(Vec<Checker>),
    /// By no check, for this written reason (from [`UNCHECKED`]).
    Unchecked(&'static str),
    /// By no check and with no reason: allowed only for `SHOULD`,
    /// `SHOULD NOT` and `MAY` clauses.
    Neither,
}

/// One clause and how it is judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The clause.
    pub clause: &'static Clause,
    /// How the kit judges it.
    pub judged: Judged,
}

/// How `checkers` and the written reasons `unchecked` judge `clauses`. A
/// clause with both a check and a reason counts as checked ([`audit_of`]
/// reports the stale reason).
#[must_use]
pub fn coverage_of(
    clauses: &'static [Clause],
    checkers: &[Checker],
    unchecked: &[(&str, &'static str)],
) -> Vec<Coverage> {
    clauses
        .iter()
        .map(|clause| {
            let checks: Vec<Checker> = checkers
                .iter()
                .filter(|checker| checker.check.clauses().contains(&clause.id))
                .copied()
                .collect();
            let judged = if !checks.is_empty() {
                Judged::Checked(checks)
            } else if let Some((_, reason)) = unchecked.iter().find(|(id, _)| *id == clause.id) {
                Judged::Unchecked(reason)
            } else {
                Judged::Neither
            };
            Coverage { clause, judged }
        })
        .collect()
}

/// A departure from the catalogue's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A `MUST` or `MUST NOT` clause with neither a check nor a reason.
    #[error("{id} is a {level} clause with neither a check nor a written reason")]
    Unjudged {
        /// The clause.
        id: &'static str,
        /// Its level.
        level: Level,
    },
    /// A written reason for a clause the spec does not define.
    #[error("the reason for {id} names a clause that the spec does not define")]
    ReasonForUnknownClause {
        /// The ID in the reason table.
        id: String,
    },
    /// A written reason for a clause that a check judges.
    #[error("{id} has a written reason but is checked by {checks:?}: the reason is stale")]
    StaleReason {
        /// The clause.
        id: &'static str,
        /// The checks that judge it.
        checks: Vec<&'static str>,
    },
    /// Two reasons for one clause.
    #[error("{id} has more than one written reason")]
    DuplicateReason {
        /// The clause.
        id: String,
    },
    /// A reason that mentions a clause ID the spec does not define.
    #[error("the reason for {id} mentions {cited}, which the spec does not define")]
    ReasonCitesUnknownClause {
        /// The clause the reason is for.
        id: String,
        /// The ID it mentions.
        cited: String,
    },
    /// A reason with no words in it.
    #[error("the reason for {id} is empty")]
    EmptyReason {
        /// The clause.
        id: String,
    },
    /// A check cites a clause the spec does not define.
    #[error("check {check} cites {id}, which the spec does not define")]
    UnknownClauseCited {
        /// The check's name.
        check: &'static str,
        /// The cited ID.
        id: &'static str,
    },
    /// A check cites no clause.
    #[error("check {check} cites no clause")]
    NoClauseCited {
        /// The check's name.
        check: &'static str,
    },
    /// Two checks of the same part of the kit share a name.
    #[error("two {by} checks are named {check}")]
    DuplicateCheckName {
        /// The validator or the suite.
        by: By,
        /// The shared name.
        check: &'static str,
    },
}

/// Every departure of `checkers` and `unchecked` from the rules, judged
/// against `clauses`: each `MUST`/`MUST NOT` clause is checked or has a
/// reason, never both; every reason and every citation names a defined
/// clause; reasons are unique and non-empty; check names are unique.
#[must_use]
pub fn audit_of(
    clauses: &[Clause],
    checkers: &[Checker],
    unchecked: &[(&str, &'static str)],
) -> Vec<Problem> {
    let defined: BTreeSet<&str> = clauses.iter().map(|clause| clause.id).collect();
    let mut problems = Vec::new();

    let mut names = BTreeSet::new();
    for checker in checkers {
        let check = checker.check;
        if !names.insert((checker.by, check.name())) {
            problems.push(Problem::DuplicateCheckName {
                by: checker.by,
                check: check.name(),
            });
        }
        if check.clauses().is_empty() {
            problems.push(Problem::NoClauseCited {
                check: check.name(),
            });
        }
        for id in check.clauses() {
            if !defined.contains(id) {
                problems.push(Problem::UnknownClauseCited {
                    check: check.name(),
                    id,
                });
            }
        }
    }

    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, reason) in unchecked {
        *reasons.entry(id).or_default() += 1;
        if reason.trim().is_empty() {
            problems.push(Problem::EmptyReason {
                id: (*id).to_owned(),
            });
        }
        if !defined.contains(id) {
            problems.push(Problem::ReasonForUnknownClause {
                id: (*id).to_owned(),
            });
        }
        for cited in clause_ids_in(reason) {
            if !defined.contains(cited) {
                problems.push(Problem::ReasonCitesUnknownClause {
                    id: (*id).to_owned(),
                    cited: cited.to_owned(),
                });
            }
        }
    }
    for (id, count) in &reasons {
        if *count > 1 {
            problems.push(Problem::DuplicateReason {
                id: (*id).to_owned(),
            });
        }
    }

    for clause in clauses {
        let checks: Vec<&'static str> = checkers
            .iter()
            .filter(|checker| checker.check.clauses().contains(&clause.id))
            .map(|checker| checker.check.name())
            .collect();
        let reasoned = reasons.contains_key(clause.id);
        if !checks.is_empty() && reasoned {
            problems.push(Problem::StaleReason {
                id: clause.id,
                checks,
            });
        } else if checks.is_empty() && !reasoned && clause.level.is_absolute() {
            problems.push(Problem::Unjudged {
                id: clause.id,
                level: clause.level,
            });
        }
    }
    problems
}

/// Every word of `text` shaped like a clause ID (`RGI-AREA-N`,
/// `RGIA-AREA-N`).
fn clause_ids_in(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| {
            let mut parts = word.split('-');
            matches!(parts.next(), Some("RGI" | "RGIA"))
                && parts.next().is_some_and(parse::is_area)
                && parts
                    .next()
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                && parts.next().is_none()
        })
}

/// Counts of one level's clauses by how they are judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Clauses of the level.
    pub clauses: usize,
    /// Judged by at least one check.
    pub checked: usize,
    /// Not checked, with a written reason.
    pub with_reason: usize,
    /// Neither checked nor given a reason.
    pub neither: usize,
}

impl Counts {
    fn add(&mut self, judged: &Judged) {
        self.clauses += 1;
        match judged {
            Judged::Checked(_) => self.checked += 1,
            Judged::Unchecked(_) => self.with_reason += 1,
            Judged::Neither => self.neither += 1,
        }
    }

    fn merge(&mut self, other: Counts) {
        self.clauses += other.clauses;
        self.checked += other.checked;
        self.with_reason += other.with_reason;
        self.neither += other.neither;
    }
}

/// The catalogue in numbers, for the CLI and the docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Counts per level, strongest first; every level appears.
    pub levels: Vec<(Level, Counts)>,
    /// Checks of the validator.
    pub validator_checks: usize,
    /// Cases of the server suite.
    pub suite_cases: usize,
}

impl Summary {
    /// The counts of `coverage`, with the numbers of checks in `checkers`.
    #[must_use]
    pub fn of(coverage: &[Coverage], checkers: &[Checker]) -> Self {
        let levels = Level::ALL
            .into_iter()
            .map(|level| {
                let mut counts = Counts::default();
                for entry in coverage.iter().filter(|entry| entry.clause.level == level) {
                    counts.add(&entry.judged);
                }
                (level, counts)
            })
            .collect();
        let count = |by| checkers.iter().filter(|checker| checker.by == by).count();
        Summary {
            levels,
            validator_checks: count(By::Validator),
            suite_cases: count(By::Suite),
        }
    }

    /// The counts of one level.
    #[must_use]
    pub fn level(&self, level: Level) -> Counts {
        self.levels
            .iter()
            .find(|(of, _)| *of == level)
            .map(|(_, counts)| *counts)
            .unwrap_or_default()
    }

    /// The counts of the `MUST` and `MUST NOT` clauses together.
    #[must_use]
    pub fn absolute(&self) -> Counts {
        let mut counts = self.level(Level::Must);
        counts.merge(self.level(Level::MustNot));
        counts
    }

    /// The counts of all clauses.
    #[must_use]
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for (_, counts) in &self.levels {
            total.merge(*counts);
        }
        total
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>7} {:>7} {:>11} {:>7}",
            "level", "clauses", "checked", "with reason", "neither"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, counts: Counts| {
            writeln!(
                f,
                "{:<12} {:>7} {:>7} {:>11} {:>7}",
                name, counts.clauses, counts.checked, counts.with_reason, counts.neither
            )
        };
        for (level, counts) in &self.levels {
            row(f, level.keyword(), *counts)?;
        }
        row(f, "total", self.total())?;
        write!(
            f,
            "{} validator checks, {} suite cases",
            self.validator_checks, self.suite_cases
        )
    }
}
