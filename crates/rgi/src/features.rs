//! The optional features of RGI 1.2 a server declares (spec/rgi.md,
//! "Declared features"), so that an application can tell what it will get
//! before it relies on it.

/// Which optional features of RGI 1.2 a server provides, as declared in its
/// [`ServerInfo`](crate::ServerInfo) (`[RGI-FEAT-1]`).
///
/// A feature a server does not declare is never an error to use: response
/// trailers and early hints are dropped silently, and request trailers read
/// as `None`. An application degrades accordingly (`[RGI-FEAT-2]`).
///
/// # Examples
///
/// ```
/// use rgi::{Features, ServerInfo};
///
/// let features = Features::none().with_request_trailers(true).with_response_trailers(true);
/// let server = ServerInfo::new("example.org", 443)?.with_features(features);
/// assert!(server.features().response_trailers());
/// assert!(!server.features().early_hints());
/// # Ok::<(), rgi::EnvironError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Features {
    request_trailers: bool,
    response_trailers: bool,
    early_hints: bool,
    lifespan: bool,
}

impl Features {
    /// No optional feature: what a server that predates RGI 1.2 offers.
    #[must_use]
    pub const fn none() -> Self {
        Features {
            request_trailers: false,
            response_trailers: false,
            early_hints: false,
            lifespan: false,
        }
    }

    /// Whether request bodies framed with trailers (chunked HTTP/1.1,
    /// HTTP/2) hand them to the application through
    /// [`Input::trailers`](crate::Input::trailers) (`[RGI-TRAILER-1]`).
    #[must_use]
    pub const fn request_trailers(&self) -> bool {
        self.request_trailers
    }

    /// Whether [`StartResponse::send_trailers`](crate::StartResponse::send_trailers)
    /// reaches clients that accept trailers (`[RGI-TRAILER-7]`).
    #[must_use]
    pub const fn response_trailers(&self) -> bool {
        self.response_trailers
    }

    /// Whether [`StartResponse::send_early_hints`](crate::StartResponse::send_early_hints)
    /// sends `103 Early Hints` to clients that can take them (`[RGI-EARLY-3]`).
    #[must_use]
    pub const fn early_hints(&self) -> bool {
        self.early_hints
    }

    /// Whether the server calls the application's
    /// [`startup`](crate::Application::startup) and
    /// [`shutdown`](crate::Application::shutdown) (`[RGI-LIFE-1]`).
    #[must_use]
    pub const fn lifespan(&self) -> bool {
        self.lifespan
    }

    /// The same set, with request trailers on or off.
    #[must_use]
    pub const fn with_request_trailers(mut self, yes: bool) -> Self {
        self.request_trailers = yes;
        self
    }

    /// The same set, with response trailers on or off.
    #[must_use]
    pub const fn with_response_trailers(mut self, yes: bool) -> Self {
        self.response_trailers = yes;
        self
    }

    /// The same set, with early hints on or off.
    #[must_use]
    pub const fn with_early_hints(mut self, yes: bool) -> Self {
        self.early_hints = yes;
        self
    }

    /// The same set, with the lifespan calls on or off.
    #[must_use]
    pub const fn with_lifespan(mut self, yes: bool) -> Self {
        self.lifespan = yes;
        self
    }
}
