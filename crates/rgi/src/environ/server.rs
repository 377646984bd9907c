//! What a server says about itself, shared by every request it serves at
//! one mount point.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::Extensions;

use super::{Concurrency, EnvironError, PathBytes};
use crate::features::Features;

/// The server's description of itself for the requests of one application
/// mount: its name and port (`SERVER_NAME`, `SERVER_PORT`), the mount point
/// (`SCRIPT_NAME`), how it runs applications, and the extension values it
/// offers every request (server-wide extensions, RGI-EXT-1).
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
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub(super) name: Cow<'static, str>,
    pub(super) port: u16,
    pub(super) script_name: PathBytes,
    pub(super) concurrency: Concurrency,
    features: Features,
    /// Set before the description is shared and never changed afterwards,
    /// so a request reaches a value through the shared `Arc` alone.
    extensions: Extensions,
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
            concurrency: Concurrency::MULTITHREADED,
            features: Features::none(),
            extensions: Extensions::new(),
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
    /// The same server, declaring the optional features it provides
    /// (`[RGI-FEAT-1]`); the default declares none.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{Features, ServerInfo};
    ///
    /// let server = ServerInfo::new("localhost", 8080)?
    ///     .with_features(Features::none().with_lifespan(true));
    /// assert!(server.features().lifespan());
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    #[must_use]
    pub fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// The optional features this server declares.
    #[must_use]
    pub fn features(&self) -> Features {
        self.features
    }

    /// The typed values this server shares with every request, for
    /// [`run_startup`](crate::run_startup) to add an application's state to.
    pub(crate) fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// Adds an extension value that every request served with this
    /// description sees, replacing an earlier value of the same type.
    ///
    /// The values are set while the server starts, before the description
    /// is shared, and cannot change afterwards: a request reaches them
    /// through [`Environ::extension`](crate::Environ::extension) or
    /// [`Environ::server_extension`](crate::Environ::server_extension) by
    /// following the shared [`Arc`], with no allocation. A value of the
    /// same type in a request's own [`Environ::extensions`](crate::Environ::extensions)
    /// overrides this one for that request (RGI-EXT-1); use it for what
    /// differs from request to request.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use http::Request;
    /// use rgi::{ConnectionInfo, Environ, Input, ServerInfo};
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Deployment(&'static str);
    ///
    /// let server = Arc::new(ServerInfo::new("api.example", 80)?.with_extension(Deployment("eu-1")));
    /// let connection = Arc::new(ConnectionInfo::new());
    ///
    /// let (parts, ()) = Request::new(()).into_parts();
    /// let environ = Environ::from_parts(parts, Input::empty(), &server, &connection)?;
    /// assert_eq!(environ.extension::<Deployment>(), Some(&Deployment("eu-1")));
    ///
    /// let (mut parts, ()) = Request::new(()).into_parts();
    /// parts.extensions.insert(Deployment("canary"));
    /// let environ = Environ::from_parts(parts, Input::empty(), &server, &connection)?;
    /// assert_eq!(environ.extension::<Deployment>(), Some(&Deployment("canary")));
    /// assert_eq!(environ.server_extension::<Deployment>(), Some(&Deployment("eu-1")));
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    #[must_use]
    pub fn with_extension<T>(mut self, value: T) -> Self
    where
        T: Clone + Send + Sync + 'static,
    {
        self.extensions.insert(value);
        self
    }

    /// The server-wide extension value of type `T`, if the server set one.
    #[must_use]
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions.get::<T>()
    }

    /// Every server-wide extension value.
    #[must_use]
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
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
