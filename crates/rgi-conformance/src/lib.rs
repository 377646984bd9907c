//! # The RGI conformance kit
//!
//! What makes RGI a standard rather than a set of traits: tools that judge
//! servers, applications and middleware against the clauses of
//! `spec/rgi.md` and `spec/rgi-async.md`, and always say which clause was
//! broken.
//!
//! ## Contents
//!
//! | Area | Items |
//! |---|---|
//! | Violations | [`Violation`], [`Side`], [`Policy`], [`Reports`], [`Check`] |
//! | The server suite | [`suite`] |
//! | The kit's small runtime | [`rt`] |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod check;
pub mod rt;
pub mod suite;
mod violation;

pub use check::Check;
pub use violation::{Policy, Reports, Side, Violation};
