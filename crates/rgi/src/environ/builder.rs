//! The convenient way to build an [`Environ`]: one setter per field.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use super::{Concurrency, Environ, EnvironError, PathBytes, ServerInfo};
use crate::UrlScheme;
use crate::{Address, ConnectionInfo, Errors, Input, TlsInfo};

/// Builds an [`Environ`] field by field, checking its invariants in
/// [`build`](Self::build).
///
/// The builder is the convenient path for tests, tools and middleware; a
/// server on the hot path uses [`Environ::from_parts`], which moves the
/// request's head in once and shares the server and connection descriptions
/// instead of copying them.
///
/// # Examples
///
/// ```
/// use http::{HeaderValue, Method, Uri, header::CONTENT_LENGTH};
/// use rgi::{Environ, Input, UrlScheme};
///
/// let environ = Environ::builder()
///     .method(Method::PUT)
///     .uri(Uri::from_static("/files/report.txt"))
///     .header(CONTENT_LENGTH, HeaderValue::from_static("5"))
///     .input(Input::new(&b"hello"[..], Some(5)))
///     .server("files.example", 443)
///     .url_scheme(UrlScheme::Https)
///     .remote_addr("192.0.2.7:50000".parse().unwrap())
///     .build()?;
/// assert_eq!(environ.content_length(), Some(5));
/// assert_eq!(environ.request_url(), "https://files.example/files/report.txt");
/// # Ok::<(), rgi::EnvironError>(())
/// ```
#[derive(Debug)]
#[must_use = "an EnvironBuilder does nothing until `build` is called"]
pub struct EnvironBuilder {
    parts: Parts,
    server: Arc<ServerInfo>,
    connection: Arc<ConnectionInfo>,
    input: Input,
    errors: Errors,
}

impl EnvironBuilder {
    pub(super) fn new() -> Self {
        let (parts, ()) = Request::new(()).into_parts();
        Self {
            parts,
            server: ServerInfo::shared_default(),
            connection: ConnectionInfo::shared_unknown(),
            input: Input::empty(),
            errors: Errors::stderr(),
        }
    }

    /// The server description, copied first if it is shared: the setters
    /// edit the builder's own copy, checked again by `build`.
    fn server_mut(&mut self) -> &mut ServerInfo {
        Arc::make_mut(&mut self.server)
    }

    /// Sets the request method (default `GET`).
    pub fn method(mut self, method: Method) -> Self {
        self.parts.method = method;
        self
    }

    /// Sets the request target as received (default `/`): origin-form,
    /// absolute-form, or `*` for `OPTIONS`.
    pub fn uri(mut self, uri: Uri) -> Self {
        self.parts.uri = uri;
        self
    }

    /// Sets the HTTP version (default HTTP/1.1).
    pub fn version(mut self, version: Version) -> Self {
        self.parts.version = version;
        self
    }

    /// Appends a header field, keeping earlier fields of the same name.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.parts.headers.append(name, value);
        self
    }

    /// Replaces all header fields.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.parts.headers = headers;
        self
    }

    /// Sets the application's mount point, percent-decoded (default empty:
    /// mounted at the root). It must match whole leading segments of the
    /// request path.
    ///
    /// # Examples
    ///
    /// ```
    /// let environ = rgi::Environ::builder()
    ///     .uri(http::Uri::from_static("/my%20app/x"))
    ///     .script_name("/my app")
    ///     .build()?;
    /// assert_eq!(environ.script_name(), "/my app");
    /// assert_eq!(environ.path_info(), "/x");
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    pub fn script_name(mut self, script_name: impl Into<Bytes>) -> Self {
        self.server_mut().script_name = PathBytes::from(script_name.into());
        self
    }

    /// Sets the server's name for itself and the port the request arrived on
    /// (default `localhost`, 80).
    pub fn server(mut self, name: impl Into<String>, port: u16) -> Self {
        let server = self.server_mut();
        server.name = name.into().into();
        server.port = port;
        self
    }

    /// Uses a shared server description, replacing the name, port, mount
    /// point and concurrency set so far; its server-wide extensions come with
    /// it (see [`ServerInfo::with_extension`]).
    pub fn server_info(mut self, server: Arc<ServerInfo>) -> Self {
        self.server = server;
        self
    }

    /// Uses a shared connection description (default: nothing known, plain
    /// `http`), replacing what [`remote_addr`](Self::remote_addr) and
    /// [`url_scheme`](Self::url_scheme) set so far.
    pub fn connection(mut self, connection: Arc<ConnectionInfo>) -> Self {
        self.connection = connection;
        self
    }

    /// Sets the peer's address to a TCP socket address (default none).
    pub fn remote_addr(mut self, remote_addr: SocketAddr) -> Self {
        Arc::make_mut(&mut self.connection).set_peer_addr(Some(Address::Tcp(remote_addr)));
        self
    }

    /// Sets the URL scheme the request arrived over (default `http`):
    /// `Https` records a TLS connection of which nothing else is known,
    /// `Http` removes any TLS description.
    pub fn url_scheme(mut self, url_scheme: UrlScheme) -> Self {
        if self.connection.url_scheme() != url_scheme {
            let tls = (url_scheme == UrlScheme::Https).then(TlsInfo::new);
            Arc::make_mut(&mut self.connection).set_tls(tls);
        }
        self
    }

    /// Sets how the server runs applications (default multithreaded, single
    /// process, not run-once).
    pub fn concurrency(mut self, concurrency: Concurrency) -> Self {
        self.server_mut().concurrency = concurrency;
        self
    }

    /// Adds a typed extension, replacing an earlier one of the same type.
    pub fn extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.parts.extensions.insert(value);
        self
    }

    /// Sets the request body (default [`Input::empty`]).
    pub fn input(mut self, input: Input) -> Self {
        self.input = input;
        self
    }

    /// Sets the error stream (default [`Errors::stderr`]).
    pub fn errors(mut self, errors: Errors) -> Self {
        self.errors = errors;
        self
    }

    /// Checks the invariants and builds the environment.
    ///
    /// # Errors
    ///
    /// - [`EnvironError::UnsupportedTarget`]: the target is in authority-form
    ///   or the method is `CONNECT` without being an extended CONNECT
    ///   ([`ConnectProtocol`](crate::ConnectProtocol)).
    /// - [`EnvironError::AsteriskNotOptions`]: target `*` with a method other
    ///   than `OPTIONS`.
    /// - [`EnvironError::InvalidScriptName`]: the script name is neither
    ///   empty nor `/…`, is `/` alone, or ends with `/`.
    /// - [`EnvironError::InvalidPercentEncoding`]: a `%` in the path is not
    ///   followed by two hex digits.
    /// - [`EnvironError::ScriptNameMismatch`]: the script name is not the
    ///   decoding of whole leading segments of the path.
    /// - [`EnvironError::EmptyServerName`]: the server name is empty.
    /// - [`EnvironError::TransferEncodingPresent`]: the headers still hold
    ///   `Transfer-Encoding`.
    /// - [`EnvironError::InvalidContentLength`]: a `Content-Length` header is
    ///   not a decimal number, or the values differ.
    /// - [`EnvironError::ContentLengthMismatch`]: the `Content-Length` header
    ///   disagrees with the input's framing.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{Environ, EnvironError};
    ///
    /// let result = Environ::builder()
    ///     .uri(http::Uri::from_static("/apple"))
    ///     .script_name("/app")
    ///     .build();
    /// assert!(matches!(result, Err(EnvironError::ScriptNameMismatch { .. })));
    /// ```
    pub fn build(self) -> Result<Environ, EnvironError> {
        self.server.check()?;
        let mut environ = Environ::assemble(self.parts, self.input, self.server, self.connection)?;
        environ.errors = self.errors;
        Ok(environ)
    }
}
