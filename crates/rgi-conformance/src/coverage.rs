//! How the kit judges the spec: the [`catalogue`](crate::catalogue)'s
//! clauses against the kit's own checks, the validator's rules and the
//! server suite's cases. Above the catalogue, the validator and the suite,
//! which read clause levels from the catalogue and so cannot be below it.
//!
//! # Examples
//!
//! ```
//! use rgi_conformance::catalogue::{self, Judged};
//! use rgi_conformance::coverage;
//!
//! let summary = coverage::summary();
//! assert_eq!(summary.total().clauses, catalogue::clauses().len());
//! assert!(coverage::audit().is_empty());
//! for judged in coverage::coverage() {
//!     if judged.clause.level.is_absolute() {
//!         assert!(!matches!(judged.judged, Judged::Neither));
//!     }
//! }
//! ```

use crate::catalogue::{
    By, Checker, Coverage, Problem, Summary, UNCHECKED, audit_of, clauses, coverage_of,
};

/// Every check of the kit: the validator's rules, then the suite's cases.
#[must_use]
pub fn checkers() -> Vec<Checker> {
    let validator = crate::validate::CHECKS.iter().map(|check| Checker {
        by: By::Validator,
        check: *check,
    });
    let suite = crate::suite::cases().into_iter().map(|case| Checker {
        by: By::Suite,
        check: case.check(),
    });
    validator.chain(suite).collect()
}

/// How the kit judges every clause of the spec, in catalogue order.
#[must_use]
pub fn coverage() -> Vec<Coverage> {
    coverage_of(clauses(), &checkers(), UNCHECKED)
}

/// Every departure of the kit's checks and written reasons from the
/// catalogue's rules; empty in a kit whose tests pass.
#[must_use]
pub fn audit() -> Vec<Problem> {
    audit_of(clauses(), &checkers(), UNCHECKED)
}

/// The catalogue's counts with the kit's checks.
#[must_use]
pub fn summary() -> Summary {
    let checkers = checkers();
    Summary::of(&coverage_of(clauses(), &checkers, UNCHECKED), &checkers)
}
