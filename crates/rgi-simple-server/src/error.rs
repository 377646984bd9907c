//! Why a server could not start: below the builder that checks its
//! settings and the server that binds and spawns.

use std::io;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding the listening socket failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address or path.
        address: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Setting up the poller failed.
    #[error("cannot set up the poller: {0}")]
    Poll(#[source] io::Error),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] io::Error),
    /// The server's name or port is not valid for `rgi::ServerInfo`.
    #[error("invalid server settings: {0}")]
    ServerInfo(#[from] rgi::EnvironError),
    /// A limit or timeout was set to zero.
    #[error("the limit {name} must not be zero")]
    ZeroLimit {
        /// The limit's field name in [`Limits`](crate::Limits).
        name: &'static str,
    },
}
