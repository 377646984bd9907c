//! The asynchronous capabilities a host on tokio backs
//! (spec/rgi-async.md §4, RGIA-CAP), each behind its `rgi_async` trait.
//!
//! [`HostCapabilities`] assembles them once per host: a server-wide
//! [`rgi_async::Capabilities`] for every request, and per request
//! ([`ForRequest`]) what differs: after-response tasks and an upgrade.
//!
//! | Capability | Backed by | Items |
//! |---|---|---|
//! | runtime context | the tokio runtime the host serves on | [`TOKIO`], [`TokioContext`], [`ContextError`] |
//! | readiness waits | tokio's reactor (`AsyncFd`) and timer | [`TokioReadiness`], [`DEFAULT_MAX_WAITS`] |
//! | after-response tasks | tokio's blocking threads, a bounded queue | [`AfterResponseTasks`], [`RequestTasks`], [`AfterConfig`], [`AfterStats`], [`DrainReport`] |
//! | connection upgrade | hyper's `OnUpgrade` (HTTP/1.1 `101`, HTTP/2 extended CONNECT) | [`UpgradeOffer`] |
//! | graceful shutdown, as the capabilities hear it | a `tokio::sync::watch` | [`Shutdown`] |
//!
//! Each is declared only where it works (`[RGIA-CAP-5]`): a host that
//! cannot back one leaves it out of its [`rgi_async::Capabilities`].

mod after;
mod host;
#[cfg(unix)]
mod readiness;
mod runtime;
mod shutdown;
mod upgrade;

pub use after::{AfterConfig, AfterResponseTasks, AfterStats, DrainReport, RequestTasks};
pub use host::{ForRequest, HostCapabilities, HostCapabilitiesBuilder};
#[cfg(unix)]
pub use readiness::{DEFAULT_MAX_WAITS, TokioReadiness};
pub use runtime::{ContextError, TOKIO, TokioContext};
pub use shutdown::Shutdown;
pub use upgrade::UpgradeOffer;
