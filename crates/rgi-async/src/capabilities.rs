//! What an asynchronous server offers the application (spec/rgi-async.md,
//! "Capabilities").

use rgi::{Environ, SpecVersion};

use crate::after::AfterResponse;
use crate::offload::Offload;
#[cfg(any(unix, windows))]
use crate::readiness::Readiness;
use crate::runtime::{Runtime, RuntimeError};
use crate::upgrade::Upgrade;

/// The version of spec/rgi-async.md this crate implements.
///
/// # Examples
///
/// ```
/// assert_eq!(rgi_async::SPEC_VERSION.to_string(), "1.2");
/// ```
pub const SPEC_VERSION: SpecVersion = SpecVersion::new(1, 2);

/// The handles an asynchronous server lends each request: set once for the
/// whole server with [`ServerInfo::with_extension`](rgi::ServerInfo::with_extension),
/// or per request in [`Environ::extensions`] when they differ from one
/// request to the next (an [`Upgrade`] always does).
///
/// A value in the request's own extensions overrides the server-wide one
/// for that request (`[RGIA-CAP-1]`): a server that offers an upgrade, or a
/// middleware that wraps or withholds handles, inserts a whole
/// `Capabilities` value there. Server-wide capabilities cost a request no
/// allocation; per-request ones cost the extension map's.
///
/// [`Capabilities::of`] returning `None` means the server is synchronous:
/// the application is not running on an event loop. An optional capability
/// that is absent is never an error at call time: the application cannot
/// call what it did not get, and degrades (no readiness: offload a blocking
/// wait instead).
///
/// # Examples
///
/// Server side (once, at start-up), then application side:
///
/// ```
/// # struct ThreadPerJob;
/// # impl rgi_async::OffloadService for ThreadPerJob {
/// #     fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
/// #         std::thread::spawn(move || job.run());
/// #         Ok(())
/// #     }
/// # }
/// use std::sync::Arc;
/// use rgi::{Environ, ServerInfo};
/// use rgi_async::{Capabilities, Offload};
///
/// let capabilities = Capabilities::builder(Offload::new(ThreadPerJob)).build();
/// let server = Arc::new(ServerInfo::new("localhost", 8080)?.with_extension(capabilities));
/// let environ = Environ::builder().server_info(server).build()?;
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
    runtime: Option<Runtime>,
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
                runtime: None,
            },
        }
    }

    /// The capabilities of `environ`'s request: its own value if the
    /// server or a middleware inserted one in [`Environ::extensions`], else
    /// the server-wide value of its [`ServerInfo`](rgi::ServerInfo);
    /// `None` on a synchronous server.
    ///
    /// Reaching either allocates nothing.
    #[must_use]
    pub fn of(environ: &Environ) -> Option<&Capabilities> {
        environ.extension::<Capabilities>()
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

    /// The runtime whose context the server keeps entered for every `call`
    /// and `poll_step` of this request, if it declares one
    /// (`[RGIA-RT-1]`).
    #[must_use]
    pub fn runtime(&self) -> Option<Runtime> {
        self.runtime
    }

    /// Checks that `wanted`'s context is entered wherever this request's
    /// `call` and `poll_step` run, before the application uses a library
    /// bound to that runtime (one that panics outside its context).
    ///
    /// The context is promised on the server's loop threads only: not in
    /// a switch continuation, an offload job or an after-response task
    /// (`[RGIA-RT-5]`).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NotDeclared`] when the server declares no runtime,
    /// [`RuntimeError::Different`] when it declares another one. Answer it
    /// like any failure (a `500` and a log line); never use the library
    /// anyway (`[RGIA-RT-4]`).
    ///
    /// # Examples
    ///
    /// ```
    /// # struct ThreadPerJob;
    /// # impl rgi_async::OffloadService for ThreadPerJob {
    /// #     fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
    /// #         std::thread::spawn(move || job.run());
    /// #         Ok(())
    /// #     }
    /// # }
    /// use rgi_async::{Capabilities, Offload, Runtime, RuntimeError};
    ///
    /// let plain = Capabilities::builder(Offload::new(ThreadPerJob)).build();
    /// assert_eq!(
    ///     plain.require_runtime(Runtime::Tokio),
    ///     Err(RuntimeError::NotDeclared { wanted: Runtime::Tokio })
    /// );
    ///
    /// let on_tokio = Capabilities::builder(Offload::new(ThreadPerJob))
    ///     .runtime(Runtime::Tokio)
    ///     .build();
    /// assert_eq!(on_tokio.require_runtime(Runtime::Tokio), Ok(()));
    /// ```
    pub fn require_runtime(&self, wanted: Runtime) -> Result<(), RuntimeError> {
        match self.runtime {
            Some(declared) if declared == wanted => Ok(()),
            Some(declared) => Err(RuntimeError::Different { wanted, declared }),
            None => Err(RuntimeError::NotDeclared { wanted }),
        }
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

    /// Declares the runtime whose context the server keeps entered for
    /// every `call`, `poll_step` and body drop it makes, on every loop
    /// thread (`[RGIA-RT-1]`, `[RGIA-RT-2]`).
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.capabilities.runtime = Some(runtime);
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
