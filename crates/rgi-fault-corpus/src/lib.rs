//! An independent fault corpus for the RGI conformance kit (issue 11 §1).
//!
//! Every [`Component`] here is a small RGI party: a broken application,
//! middleware or server with the clause it breaks and the side to blame,
//! or a correct but unusual one that the kit must not flag. The corpus was
//! written from `spec/rgi.md` and `spec/rgi-async.md` alone, without
//! reading the validator, so that [`run`] measures what the kit catches
//! rather than what its authors thought of. See the crate's README.
//!
//! The corpus is frozen: rows added after the first measurement go in a
//! separate, labelled batch module, so that the first figures stay
//! comparable.

#![forbid(unsafe_code)]

mod async_apps;
mod async_mw;
mod async_servers;
mod component;
mod correct;
mod harness;
mod support;
mod sync_apps;
mod sync_mw;
mod sync_servers;

pub use component::{Component, Expect, Interface, Kind};
pub use harness::{Outcome, Record, Summary, components, render, run, run_one};
