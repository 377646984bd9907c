//! RGI applications as tower services.
//!
//! An [`rgi::Application`] or [`rgi_async::AsyncApplication`] served as a
//! `tower_service::Service<http::Request<B>>` for any `http_body::Body`:
//! the per-request work of an RGI server on hyper, written once.
//!
//! - [`Pool`], [`PoolConfig`], [`PoolError`], [`PoolStats`],
//!   [`ConnectionPool`]: the bounded blocking pool (and a connection's
//!   share of it) that runs blocking applications, offloaded jobs and
//!   switch continuations.
//! - [`Host`], [`HostBuilder`]: what the hosting server backs.
//! - [`SyncService`], [`SyncConnection`]: a synchronous application.
//! - [`AsyncService`], [`AsyncConnection`]: an asynchronous application.
//! - [`ResponseBody`], [`ResponseError`]: the body hyper sends.
//! - [`caps`]: the asynchronous capabilities the host backs on tokio
//!   (runtime context, readiness, after-response tasks, upgrade).

// `deny`, not `forbid`: one `unsafe` call, tokio's `AsyncFd` registration
// of a borrowed descriptor in `caps::readiness`, is allowed where it stands
// with its safety argument.
#![deny(unsafe_code)]

mod asynchronous;
pub mod caps;
mod host;
mod pool;
mod relay;
mod request;
mod response;
mod sync;

pub use asynchronous::{AsyncConnection, AsyncFuture, AsyncService};
pub use host::{
    CapabilitiesHook, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_PRE_READ_LIMIT, Host,
    HostBuilder,
};
pub use pool::{ConnectionPool, Pool, PoolConfig, PoolError, PoolStats};
pub use response::{ResponseBody, ResponseError};
pub use sync::{SyncConnection, SyncFuture, SyncService};
