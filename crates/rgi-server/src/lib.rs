//! `rgi-server`: the production reference RGI server on tokio and hyper.
//!
//! ```no_run
//! use http::StatusCode;
//! use rgi::{Environ, ResponseHead};
//! use rgi_server::Server;
//!
//! # fn main() -> Result<(), rgi_server::ServeError> {
//! let app = rgi::from_fn(|_environ: Environ, start| {
//!     start.start(ResponseHead::new(StatusCode::OK))?;
//!     Ok(rgi::from_iter(["hello\n"]))
//! });
//! let server = Server::builder()
//!     .bind(([127, 0, 0, 1], 8080))
//!     .workers(2)
//!     .handle_signals(true)
//!     .serve_sync(app)?;
//! server.wait(); // until SIGTERM or SIGINT, then a graceful shutdown
//! # Ok(()) }
//! ```
//!
//! # Contents
//!
//! - [`Server::builder`] configures listeners (TCP, TLS, Unix domain
//!   sockets, inherited sockets, PROXY protocol from trusted peers), worker
//!   threads, the blocking pool, [`Limits`], [`Http1Settings`] and
//!   [`Http2Settings`], then serves on its own multi-thread tokio runtime:
//!   [`serve_sync`](Builder::serve_sync) an [`rgi::Application`],
//!   [`serve_async`](Builder::serve_async) an
//!   [`rgi_async::AsyncApplication`] (both through `rgi-tower`), or
//!   [`serve`](Builder::serve) any [`ServiceFactory`] (a tower service per
//!   connection);
//! - the running [`Server`] reports its [`ListenAddr`]esses, [`Stats`] and
//!   the pool's counters; a [`ShutdownHandle`] ends it gracefully;
//! - [`TlsConfig`] (rustls) with a [`CertificateResolver`] swapped at run
//!   time and a [`ClientAuth`] policy;
//! - [`strict`], [`proxy_protocol`] and `listen_fds` (Linux): the protocol
//!   decisions of spec §12.3, the PROXY protocol parser and systemd socket
//!   activation.
//!
//! Deploying it, and writing applications for it: `docs/rgi-server.md` in
//! the repository.
//!
//! # What the connection layer does
//!
//! Per connection the server builds one [`rgi::ConnectionInfo`] (addresses,
//! and after the handshake the TLS version, SNI, ALPN and client chain) and
//! asks the factory for the connection's service. Plain TCP speaks HTTP/1.1
//! or, when the HTTP/2 preface arrives first, HTTP/2 with prior knowledge;
//! TLS speaks what ALPN chose. Before any application runs, each request is
//! judged by [`strict::check_request`]: a refusal gets its status (400,
//! 414, 417, 431, 501, …) and `connection: close` on HTTP/1.x, never the
//! application. The head-read, idle, detection and handshake timers, the
//! request and connection limits and graceful shutdown are this crate's;
//! the body limit, stalled-body time, pool dispatch, panics and capabilities
//! are `rgi-tower`'s, configured from this builder.
//!
//! # Deploying several processes on one port
//!
//! [`Builder::reuse_port`] sets `SO_REUSEPORT`: start one process per core,
//! each binding the same address, and the kernel spreads new connections
//! among them; a replacement process can bind before the old one shuts down
//! gracefully, so a restart loses no connection.

#![deny(unsafe_code)]

mod config;
mod conn;
mod io;
mod listen;
mod make;
mod server;
mod service;
mod state;
mod tls;

pub use config::{Http1Settings, Http2Settings, Limits};
pub use listen::ListenAddr;
pub use make::ServiceFactory;
pub use server::{
    Builder, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, FEATURES, ServeError, Server,
    ShutdownHandle,
};
pub use state::Stats;
pub use tls::{CertificateResolver, ClientAuth, TlsConfig, TlsError, certified_key_from_pem};

/// The blocking pool's size and its counters, from `rgi-tower`.
pub use rgi_tower::{PoolConfig, PoolStats};

/// The shutdown signal [`Builder::shutdown_signal`] takes, from `rgi-tower`,
/// so that a user needs no direct dependency on it.
pub use rgi_tower::caps::Shutdown;

/// The rustls version this server is built with: [`ClientAuth`] takes its
/// `RootCertStore`, and a [`CertificateResolver`] hands out its
/// `CertifiedKey`s. Using this path keeps the versions in step.
///
/// ```
/// use std::sync::Arc;
/// use rgi_server::{ClientAuth, Server, Shutdown};
///
/// let roots = Arc::new(rgi_server::rustls::RootCertStore::empty());
/// let _policy = ClientAuth::Optional(roots);
/// let _builder = Server::builder().shutdown_signal(Shutdown::new());
/// ```
pub use rustls;

/// The error type bodies and services hand to hyper.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A duration in whole milliseconds for log fields, saturating.
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(target_os = "linux")]
pub mod listen_fds;
pub mod proxy_protocol;
pub mod strict;

/// The Rust blocks of `docs/rgi-server.md` (the deployment guide), compiled
/// by `cargo test` so that the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/rgi-server.md")]
mod deployment_guide {}
