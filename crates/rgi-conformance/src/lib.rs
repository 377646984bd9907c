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
//! | The validator middleware | [`validate`] |
//! | The in-process test client | [`client`] |
//! | The server suite | [`suite`] |
//! | Reports | [`report`] |
//! | The clause catalogue | [`catalogue`] |
//! | How the kit's checks cover it | [`coverage`] |
//! | The kit's small runtime | [`rt`] |
//!
//! ## Features
//!
//! - `tokio-context` (off by default): the asynchronous validator asks
//!   `tokio::runtime::Handle::try_current` in every call, poll and body
//!   drop of a request whose `Capabilities` declare `Runtime::Tokio`, and
//!   reports a server that declares tokio without entering its context
//!   (`RGIA-RT-1`). Off, the kit depends on no runtime at all.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod catalogue;
mod check;
pub mod client;
pub mod coverage;
pub mod report;
pub mod rt;
pub mod suite;
pub mod validate;
mod violation;

pub use check::Check;
pub use violation::{Policy, Reports, Side, Violation};
