//! What an asynchronous server offers the application (spec/rgi-async.md,
//! "Capabilities").

use rgi::{Environ, SpecVersion};

use crate::after::AfterResponse;
use crate::offload::Offload;
#[cfg(any(unix, windows))]
use crate::readiness::Readiness;
use crate::upgrade::Upgrade;

/// The version of spec/rgi-async.md this crate implements.
///
/// # Examples
///
/// ```
/// assert_eq!(rgi_async::SPEC_VERSION.to_string(), "1.1");
/// ```
pub const SPEC_VERSION: SpecVersion = SpecVersion { major: 1, minor: 1 };

/// The handles an asynchronous server lends each request, stored in
/// [`Environ::extensions`].
///
/// [`Capabilities::of`] returning `None` means the server is synchronous:
/// the application is not running on an event loop. An optional capability
/// that is absent is never an error at call time: the application cannot
/// call what it did not get, and degrades (no readiness: offload a blocking
/// wait instead).
///
/// # Examples
///
/// Server side, then application side:
///
/// ```
/// # struct ThreadPerJob;
/// # impl rgi_async::OffloadService for ThreadPerJob {
/// #     fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
/// #         std::thread::spawn(move || job.run());
/// #         Ok(())
/// #     }
/// # }
/// use rgi::Environ;
/// use rgi_async::{Capabilities, Offload};
///
/// let capabilities = Capabilities::builder(Offload::new(ThreadPerJob)).build();
/// let environ = Environ::builder().extension(capabilities).build()?;
///
/// let capabilities = Capabilities::of(&environ).ok_or("not an asynchronous server")?;
/// assert!(capabilities.after_response().is_none());
/// # Ok::<(), rgi::BoxError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Capabilities {
    spec_version: SpecVersion,
    offload: Offload,
    #[cfg(any(unix, windows))]
    readiness: Option<Readiness>,
    after_response: Option<AfterResponse>,
    upgrade: Option<Upgrade>,
}

impl Capabilities {
    /// Starts the capabilities of an asynchronous server; offload is
    /// mandatory for one, the rest optional.
    pub fn builder(offload: Offload) -> CapabilitiesBuilder {
        CapabilitiesBuilder {
            capabilities: Capabilities {
                spec_version: SPEC_VERSION,
                offload,
                #[cfg(any(unix, windows))]
                readiness: None,
                after_response: None,
                upgrade: None,
            },
        }
    }

    /// The capabilities the server stored in `environ`, or `None` on a
    /// synchronous server.
    #[must_use]
    pub fn of(environ: &Environ) -> Option<&Capabilities> {
        environ.extensions().get::<Capabilities>()
    }

    /// The highest RGI-async version whose clauses the server implements
    /// in full; [`SPEC_VERSION`] unless the server said otherwise.
    #[must_use]
    pub fn spec_version(&self) -> SpecVersion {
        self.spec_version
    }

    /// The server's blocking threads.
    #[must_use]
    pub fn offload(&self) -> &Offload {
        &self.offload
    }

    /// The server's poller, if it lends one.
    #[cfg(any(unix, windows))]
    #[must_use]
    pub fn readiness(&self) -> Option<&Readiness> {
        self.readiness.as_ref()
    }

    /// After-response tasks for this request, if the server runs them.
    #[must_use]
    pub fn after_response(&self) -> Option<&AfterResponse> {
        self.after_response.as_ref()
    }

    /// The switch to another protocol, if this request asked for one and
    /// the server can hand the connection over.
    #[must_use]
    pub fn upgrade(&self) -> Option<&Upgrade> {
        self.upgrade.as_ref()
    }
}

/// Builds [`Capabilities`]; see [`Capabilities::builder`].
#[derive(Debug)]
#[must_use]
pub struct CapabilitiesBuilder {
    capabilities: Capabilities,
}

impl CapabilitiesBuilder {
    /// Lends the server's poller.
    #[cfg(any(unix, windows))]
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.capabilities.readiness = Some(readiness);
        self
    }

    /// Declares the RGI-async version the server implements in full, when
    /// it is older than this crate's [`SPEC_VERSION`].
    pub fn spec_version(mut self, version: SpecVersion) -> Self {
        self.capabilities.spec_version = version;
        self
    }

    /// Offers after-response tasks.
    pub fn after_response(mut self, after_response: AfterResponse) -> Self {
        self.capabilities.after_response = Some(after_response);
        self
    }

    /// Offers this request's upgrade.
    pub fn upgrade(mut self, upgrade: Upgrade) -> Self {
        self.capabilities.upgrade = Some(upgrade);
        self
    }

    /// The finished capabilities.
    pub fn build(self) -> Capabilities {
        self.capabilities
    }
}
