//! Written reasons why a clause has no automated check.
//!
//! Every `MUST` and `MUST NOT` clause is either judged by a check of the
//! kit or listed here with a specific reason: the type system enforces it
//! (name the bound), the `rgi` crate implements it and its own tests prove
//! it (name the test), it is a property of the deployment that the
//! interface cannot observe, and so on. A reason for a clause that a check
//! judges is stale and fails the kit's tests.

/// `(clause ID, reason)` for every clause no check judges.
pub const UNCHECKED: &[(&str, &str)] = &[];
