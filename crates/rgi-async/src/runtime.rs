//! The runtime whose context a server keeps entered (spec/rgi-async.md,
//! "Runtime context").

use std::fmt;

/// An asynchronous runtime whose context a server keeps entered for every
/// [`AsyncApplication::call`](crate::AsyncApplication::call) and
/// [`AsyncBody::poll_step`](crate::AsyncBody::poll_step) it makes, so that
/// the runtime's I/O, timers and spawning work there (`[RGIA-RT-1]`).
///
/// Declared by the server in [`Capabilities`](crate::Capabilities); an
/// application that needs one asks with
/// [`Capabilities::require_runtime`](crate::Capabilities::require_runtime).
/// Later minor versions may name more runtimes (`[RGIA-VER-4]`).
///
/// # Examples
///
/// ```
/// use rgi_async::Runtime;
///
/// assert_eq!(Runtime::Tokio.name(), "tokio");
/// assert_eq!(Runtime::Other("glommio").to_string(), "glommio");
/// assert_ne!(Runtime::Tokio, Runtime::Other("glommio"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Runtime {
    /// Tokio 1.x: `tokio::runtime::Handle::try_current()` succeeds in every
    /// call and poll, on a runtime with I/O and time drivers enabled.
    Tokio,
    /// Another runtime, by the name its crate is published under.
    Other(&'static str),
}

impl Runtime {
    /// The runtime's name: its crate's name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Runtime::Tokio => "tokio",
            Runtime::Other(name) => name,
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why [`Capabilities::require_runtime`](crate::Capabilities::require_runtime)
/// refused: the runtime the application needs is not entered where it
/// runs. An application answers it like any failure before the head (a
/// `500` and a log line, `[RGIA-RT-4]`), never by using the runtime-bound
/// library anyway.
///
/// # Examples
///
/// ```
/// use rgi_async::{Runtime, RuntimeError};
///
/// let refused = RuntimeError::NotDeclared { wanted: Runtime::Tokio };
/// assert_eq!(
///     refused.to_string(),
///     "this application needs the tokio runtime's context, and the server declares no runtime"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The server declares no runtime: it polls applications outside any
    /// runtime's context (or does not say that it does).
    #[error(
        "this application needs the {wanted} runtime's context, and the server declares no runtime"
    )]
    NotDeclared {
        /// The runtime the application needs.
        wanted: Runtime,
    },
    /// The server keeps another runtime's context entered.
    #[error(
        "this application needs the {wanted} runtime's context, and the server runs it in {declared}'s"
    )]
    Different {
        /// The runtime the application needs.
        wanted: Runtime,
        /// The runtime the server declares.
        declared: Runtime,
    },
}
