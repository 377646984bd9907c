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

#![forbid(unsafe_code)]

mod pool;

pub use pool::{ConnectionPool, Pool, PoolConfig, PoolError, PoolStats};
