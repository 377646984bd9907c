//! `rgi-server`: the production reference RGI server on tokio and hyper.
//!
//! - [`Server::builder`] configures listeners (TCP, TLS, Unix domain
//!   sockets, inherited sockets), worker threads, [`Limits`],
//!   [`Http1Settings`] and [`Http2Settings`], then
//!   [`serve`](Builder::serve)s a [`ServiceFactory`] on its own multi-thread
//!   tokio runtime;
//! - the running [`Server`] reports its [`ListenAddr`]esses and [`Stats`],
//!   and a [`ShutdownHandle`] ends it gracefully;
//! - [`TlsConfig`] (rustls) with a [`CertificateResolver`] swapped at run
//!   time and a [`ClientAuth`] policy.
//!
//! Per connection the server builds one [`rgi::ConnectionInfo`] (addresses,
//! and after the handshake the TLS version, SNI, ALPN and client chain) and
//! asks the factory for the connection's service; HTTP/1.1 and HTTP/2 (h2c
//! with prior knowledge on plain TCP, ALPN on TLS) run through hyper.
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
pub use server::{Builder, ServeError, Server, ShutdownHandle};
pub use state::Stats;
pub use tls::{CertificateResolver, ClientAuth, TlsConfig, TlsError, certified_key_from_pem};

/// The error type bodies and services hand to hyper.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A duration in whole milliseconds for log fields, saturating.
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(target_os = "linux")]
pub mod listen_fds;
pub mod proxy_protocol;
pub mod strict;
