//! What a server says about itself, shared by every request it serves at
//! one mount point.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::{Concurrency, EnvironError, PathBytes};

/// The server's description of itself for the requests of one application
/// mount: its name and port (`SERVER_NAME`, `SERVER_PORT`), the mount point
/// (`SCRIPT_NAME`) and how it runs applications.
///
/// Built and checked once, when the server starts (or accepts a
/// connection), and shared through an [`Arc`] by every
/// [`Environ`](crate::Environ) built with
/// [`Environ::from_parts`](crate::Environ::from_parts), so a request pays a
/// reference count, not an allocation or a copy.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use rgi::ServerInfo;
///
/// let server = Arc::new(ServerInfo::new("api.example", 8080)?.with_script_name("/v1")?);
/// assert_eq!(server.name(), "api.example");
/// assert_eq!(server.script_name(), "/v1");
/// # Ok::<(), rgi::EnvironError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub(super) name: Cow<'static, str>,
    pub(super) port: u16,
    pub(super) script_name: PathBytes,
    pub(super) concurrency: Concurrency,
}

impl ServerInfo {
    /// A server named `name` (a host name or address literal) listening on
    /// `port`, mounting its application at the root, multithreaded, single
    /// process, not run-once.
    ///
    /// # Errors
    ///
    /// [`EnvironError::EmptyServerName`] if `name` is empty.
    pub fn new(name: impl Into<Cow<'static, str>>, port: u16) -> Result<Self, EnvironError> {
        let server = Self::unchecked(name.into(), port);
        server.check()?;
        Ok(server)
    }

    pub(super) fn unchecked(name: Cow<'static, str>, port: u16) -> Self {
        Self {
            name,
            port,
            script_name: PathBytes::default(),
            concurrency: Concurrency {
                multithread: true,
                multiprocess: false,
                run_once: false,
            },
        }
    }

    /// `localhost:80` mounted at the root, allocated once per process (the
    /// default of [`EnvironBuilder`](crate::EnvironBuilder)).
    pub(super) fn shared_default() -> Arc<Self> {
        static DEFAULT: OnceLock<Arc<ServerInfo>> = OnceLock::new();
        Arc::clone(
            DEFAULT.get_or_init(|| Arc::new(Self::unchecked(Cow::Borrowed("localhost"), 80))),
        )
    }

    /// Sets the application's mount point, percent-decoded: empty, or `/…`
    /// without a trailing `/`.
    ///
    /// # Errors
    ///
    /// [`EnvironError::InvalidScriptName`] if the mount point has another
    /// form.
    pub fn with_script_name(mut self, script_name: impl Into<Bytes>) -> Result<Self, EnvironError> {
        self.script_name = PathBytes::from(script_name.into());
        self.check()?;
        Ok(self)
    }

    /// Sets how the server runs applications.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// The server's name for itself, never empty.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port requests arrive on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The decoded mount point of the application.
    #[must_use]
    pub fn script_name(&self) -> &PathBytes {
        &self.script_name
    }

    /// How the server runs applications.
    #[must_use]
    pub fn concurrency(&self) -> Concurrency {
        self.concurrency
    }

    pub(super) fn check(&self) -> Result<(), EnvironError> {
        let script_name = self.script_name.as_bytes();
        let valid = script_name.is_empty()
            || (script_name.starts_with(b"/") && !script_name.ends_with(b"/"));
        if !valid {
            return Err(EnvironError::InvalidScriptName {
                script_name: self.script_name.clone(),
            });
        }
        if self.name.is_empty() {
            return Err(EnvironError::EmptyServerName);
        }
        Ok(())
    }
}
