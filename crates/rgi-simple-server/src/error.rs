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
    /// The application's start-up returned an error, panicked, or did not
    /// finish within [`Builder::startup_timeout`](crate::Builder::startup_timeout)
    /// (`[RGI-LIFE-2]`). No connection was accepted, and the application's
    /// shut-down is not called.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi_simple_server::{Builder, Error};
    ///
    /// let app = rgi::with_lifespan(
    ///     rgi::from_fn(|_environ, start| {
    ///         start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
    ///         Ok(bytes::Bytes::new())
    ///     }),
    ///     |_startup| Err("the database is unreachable".into()),
    ///     || {},
    /// );
    /// let refused = Builder::new().bind("127.0.0.1:0".parse()?).serve_sync(app);
    /// let Err(Error::Startup(error)) = refused else { panic!("served without a start-up") };
    /// assert!(error.to_string().contains("the database is unreachable"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error(transparent)]
    Startup(#[from] rgi::StartupError),
}
