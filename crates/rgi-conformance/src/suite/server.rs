//! The one small trait a server author implements to run the suite.

use std::net::SocketAddr;

use rgi::BoxError;
use serde::Serialize;

use super::Probe;

/// What a server claims to support beyond the synchronous interface. The
/// suite runs the cases of a capability only if it is claimed, and reports
/// the others as skipped, never as passed.
///
/// # Examples
///
/// ```
/// use rgi_conformance::suite::Claims;
///
/// let claims = Claims::synchronous();
/// assert!(!claims.asynchronous);
/// let claims = Claims::asynchronous().with_readiness().with_after_response();
/// assert!(claims.readiness && claims.after_response && !claims.upgrade);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Claims {
    /// Runs asynchronous applications, with offload and the switch to
    /// synchronous processing (both mandatory for an asynchronous server,
    /// `RGIA-CAP`).
    pub asynchronous: bool,
    /// Offers readiness waits on the application's descriptors.
    pub readiness: bool,
    /// Offers after-response tasks.
    pub after_response: bool,
    /// Offers the upgrade to another protocol on HTTP/1.1.
    pub upgrade: bool,
}

impl Claims {
    /// A server of the synchronous interface only.
    #[must_use]
    pub const fn synchronous() -> Self {
        Claims {
            asynchronous: false,
            readiness: false,
            after_response: false,
            upgrade: false,
        }
    }

    /// A server of asynchronous applications (offload and the switch
    /// included), with no optional capability yet.
    #[must_use]
    pub const fn asynchronous() -> Self {
        Claims {
            asynchronous: true,
            ..Claims::synchronous()
        }
    }

    /// Also claims readiness waits.
    #[must_use]
    pub const fn with_readiness(mut self) -> Self {
        self.readiness = true;
        self
    }

    /// Also claims after-response tasks.
    #[must_use]
    pub const fn with_after_response(mut self) -> Self {
        self.after_response = true;
        self
    }

    /// Also claims the upgrade.
    #[must_use]
    pub const fn with_upgrade(mut self) -> Self {
        self.upgrade = true;
        self
    }
}

/// A server the suite can judge: starts a fresh server for one case.
///
/// A synchronous server serves the probe through [`rgi::Application`]; an
/// asynchronous one through [`rgi_async::AsyncApplication`]. [`Probe`]
/// implements both.
pub trait ServerUnderTest: Send + Sync {
    /// The server's name, for reports.
    fn name(&self) -> String;

    /// The capabilities it claims.
    fn claims(&self) -> Claims;

    /// Starts the server with `app` on an unused port of 127.0.0.1 and
    /// returns once it accepts connections.
    ///
    /// The application is mounted at the root (its `script_name()` is
    /// empty), serves plain HTTP/1.1 (no TLS), and any configuration that
    /// would change what the spec's defaults say (a configured server name,
    /// trusted proxies, a debugging mode that shows error details) is off.
    ///
    /// # Errors
    ///
    /// If the server cannot start; the case then fails.
    fn start(&self, app: Probe) -> Result<Box<dyn RunningServer>, BoxError>;
}

/// A server started for one case.
pub trait RunningServer: Send {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;

    /// Stops it: closes the listener and its connections, and returns once
    /// the server's threads or tasks have ended.
    ///
    /// # Errors
    ///
    /// If the server did not stop cleanly; the case then fails.
    fn stop(self: Box<Self>) -> Result<(), BoxError>;
}
