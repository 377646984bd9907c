//! The request environment handed to the application.

mod builder;
mod path;
mod server;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::str::Utf8Error;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::{Extensions, HeaderMap, HeaderValue, Method, Request, Uri, Version};

pub use self::builder::EnvironBuilder;
pub use self::server::ServerInfo;
use crate::{ConnectProtocol, ConnectionInfo, Errors, Input, UrlScheme};

/// Everything the server knows about one request (the WSGI `environ`).
///
/// Built by the server, which checks the invariants an application may rely
/// on (see [`EnvironError`]), then moved into the application. A server
/// builds it with [`Environ::from_parts`]: the request head parsed by its
/// HTTP layer moves in as it is, and the descriptions of the server
/// ([`ServerInfo`]) and of the connection ([`ConnectionInfo`]) are shared
/// through [`Arc`]s, so building an environ copies no header and, for a path
/// without percent-escapes, allocates nothing. [`Environ::builder`] sets
/// each field separately, for tests, tools and middleware.
/// [`Environ::into_parts`] turns an environ back into
/// [`http::request::Parts`].
///
/// The request target is kept exactly as received ([`Environ::uri`]); the
/// path is also offered split at the application's mount point into
/// [`script_name`](Environ::script_name) and
/// [`path_info`](Environ::path_info), both percent-decoded. The split is
/// made on the raw segments and each side decoded afterwards, so an encoded
/// slash (`%2F`) never becomes a segment boundary.
///
/// # Examples
///
/// ```
/// use http::{Method, Uri};
/// use rgi::Environ;
///
/// let environ = Environ::builder()
///     .method(Method::POST)
///     .uri(Uri::from_static("/shop/cart%20items/42?page=2"))
///     .script_name("/shop")
///     .build()?;
///
/// assert_eq!(environ.raw_path(), "/shop/cart%20items/42");
/// assert_eq!(environ.script_name(), "/shop");
/// assert_eq!(environ.path_info(), "/cart items/42");
/// assert_eq!(environ.query_string(), "page=2");
/// assert_eq!(environ.request_url(), "http://localhost/shop/cart%20items/42?page=2");
/// # Ok::<(), rgi::EnvironError>(())
/// ```
#[derive(Debug)]
pub struct Environ {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    script_name: PathBytes,
    path_info: PathBytes,
    /// Where `path_info` starts in `uri.path()`, so that `shift_path` splits
    /// on raw segments as the split at construction did. A `u32` (targets
    /// are at most 64 KiB) so that it shares a word with `version`.
    raw_path_info_start: u32,
    server: Arc<ServerInfo>,
    connection: Arc<ConnectionInfo>,
    input: Input,
    errors: Errors,
}

impl Environ {
    /// A builder with the defaults of a plain local request: `GET /`
    /// HTTP/1.1 to `localhost:80` over `http`, no headers, no remote address,
    /// an empty body, errors to standard error, and
    /// [`Concurrency::MULTITHREADED`].
    ///
    /// # Examples
    ///
    /// ```
    /// let environ = rgi::Environ::builder().build()?;
    /// assert_eq!(environ.method(), http::Method::GET);
    /// assert_eq!(environ.path_info(), "/");
    /// assert_eq!(environ.server_name(), "localhost");
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    pub fn builder() -> EnvironBuilder {
        EnvironBuilder::new()
    }

    /// Builds the environ of a request from the head its HTTP layer parsed,
    /// moving the method, target, version, header fields and extensions in
    /// without copying them; the error stream is standard error (see
    /// [`Environ::replace_errors`]).
    ///
    /// This is the server's path (RGI-ENV-1): `server` and `connection` are
    /// built once (per mount point and per connection) and only their
    /// reference counts change per request, and the path is split in place,
    /// so that a request whose path has no percent-escape costs no
    /// allocation here; a path with escapes costs one, for its decoded
    /// `path_info`. The checks are those of [`EnvironBuilder::build`].
    ///
    /// # Errors
    ///
    /// - [`EnvironError::UnsupportedTarget`]: the target is in authority-form
    ///   or the method is `CONNECT` without being an extended CONNECT
    ///   ([`ConnectProtocol`](crate::ConnectProtocol)).
    /// - [`EnvironError::AsteriskNotOptions`]: target `*` with a method other
    ///   than `OPTIONS`.
    /// - [`EnvironError::InvalidPercentEncoding`]: a `%` in the path is not
    ///   followed by two hex digits.
    /// - [`EnvironError::ScriptNameMismatch`]: the server's mount point is
    ///   not the decoding of whole leading segments of the path.
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
    /// use std::sync::Arc;
    /// use rgi::{Address, ConnectionInfo, Environ, Input, ServerInfo};
    ///
    /// // Once per server and once per connection:
    /// let server = Arc::new(ServerInfo::new("shop.example", 8080)?.with_script_name("/shop")?);
    /// let connection = Arc::new(
    ///     ConnectionInfo::new().with_peer_addr(Address::Tcp("192.0.2.7:50000".parse().unwrap())),
    /// );
    ///
    /// // Per request, from what the HTTP layer parsed:
    /// let (parts, ()) = http::Request::get("/shop/cart?page=2").body(()).unwrap().into_parts();
    /// let environ = Environ::from_parts(parts, Input::empty(), &server, &connection)?;
    /// assert_eq!(environ.script_name(), "/shop");
    /// assert_eq!(environ.path_info(), "/cart");
    /// assert_eq!(environ.remote_addr(), Some("192.0.2.7:50000".parse().unwrap()));
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    pub fn from_parts(
        parts: Parts,
        input: Input,
        server: &Arc<ServerInfo>,
        connection: &Arc<ConnectionInfo>,
    ) -> Result<Self, EnvironError> {
        Self::assemble(parts, input, Arc::clone(server), Arc::clone(connection))
    }

    /// Checks the invariants that depend on the request and assembles the
    /// environ; `server` is already checked.
    fn assemble(
        parts: Parts,
        input: Input,
        server: Arc<ServerInfo>,
        connection: Arc<ConnectionInfo>,
    ) -> Result<Self, EnvironError> {
        let Parts {
            method,
            uri,
            version,
            headers,
            extensions,
            ..
        } = parts;
        let (script_name, path_info, raw_path_info_start) =
            split_target(&method, &uri, version, &extensions, &server.script_name)?;
        // One pass over the (few) distinct names is cheaper than hashing
        // two names that are usually absent.
        let mut has_content_length = false;
        for name in headers.keys() {
            if name == TRANSFER_ENCODING {
                let value = headers.get(TRANSFER_ENCODING).cloned();
                return Err(EnvironError::TransferEncodingPresent {
                    value: value.unwrap_or_else(|| HeaderValue::from_static("")),
                });
            }
            has_content_length |= name == CONTENT_LENGTH;
        }
        let declared = if has_content_length {
            declared_content_length(&headers)?
        } else {
            None
        };
        if let Some(header) = declared {
            let framing = input.content_length();
            if framing != Some(header) {
                return Err(EnvironError::ContentLengthMismatch { header, framing });
            }
        }
        Ok(Self {
            method,
            uri,
            version,
            headers,
            extensions,
            script_name,
            path_info,
            // Unreachable for an `http::Uri`; were it ever reached,
            // `shift_path` would find no segment rather than a wrong one.
            raw_path_info_start: u32::try_from(raw_path_info_start).unwrap_or(u32::MAX),
            server,
            connection,
            input,
            errors: Errors::stderr(),
        })
    }

    /// Takes the environ apart into the request head, as
    /// [`http::request::Parts`], and the body: the inverse of
    /// [`Environ::from_parts`] for what `Parts` can hold. The method,
    /// target, version, header fields and extensions move out unchanged;
    /// the split path, the server and connection descriptions and the error
    /// stream are dropped (read them first if they are needed).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use rgi::{Environ, Input};
    ///
    /// let environ = Environ::builder()
    ///     .method(http::Method::POST)
    ///     .uri(http::Uri::from_static("/upload"))
    ///     .input(Input::from_bytes("abc"))
    ///     .build()?;
    /// let (parts, mut input) = environ.into_parts();
    /// assert_eq!(parts.method, http::Method::POST);
    /// assert_eq!(parts.uri, "/upload");
    /// let mut body = String::new();
    /// input.read_to_string(&mut body)?;
    /// assert_eq!(body, "abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn into_parts(self) -> (Parts, Input) {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = self.method;
        parts.uri = self.uri;
        parts.version = self.version;
        parts.headers = self.headers;
        parts.extensions = self.extensions;
        (parts, self.input)
    }

    /// The request method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request target exactly as received, not decoded.
    #[must_use]
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The path of the request target as received, not decoded (`*` for an
    /// asterisk-form `OPTIONS` request).
    #[must_use]
    pub fn raw_path(&self) -> &str {
        self.uri.path()
    }

    /// The query of the request target as received, not decoded; `""` if
    /// there is none.
    ///
    /// # Examples
    ///
    /// ```
    /// let environ = rgi::Environ::builder()
    ///     .uri(http::Uri::from_static("/search?q=a%20b"))
    ///     .build()?;
    /// assert_eq!(environ.query_string(), "q=a%20b");
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    #[must_use]
    pub fn query_string(&self) -> &str {
        self.uri.query().unwrap_or("")
    }

    /// The HTTP version of the request.
    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// The request headers: names lowercase, repeated fields kept as separate
    /// entries in order, values byte-exact. `Transfer-Encoding` is never
    /// present (the server decodes the body itself).
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The request headers, for middleware that rewrites them.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The percent-decoded mount point of the application: empty, or `/…`
    /// without a trailing `/`.
    #[must_use]
    pub fn script_name(&self) -> &PathBytes {
        &self.script_name
    }

    /// The percent-decoded rest of the path below the mount point: empty,
    /// `/…`, or `*` (asterisk-form `OPTIONS`).
    #[must_use]
    pub fn path_info(&self) -> &PathBytes {
        &self.path_info
    }

    /// Moves the first segment of `path_info` to the end of `script_name`
    /// and returns it, with its leading `/` (`"/a"` of `"/a/b"`), for
    /// URL-mapping middleware.
    ///
    /// Segments are those of the raw path, so an encoded slash stays inside
    /// its segment. No normalisation is applied (`.` and `..` move like any
    /// other segment). Returns `None`, changing nothing, when `path_info` is
    /// empty or `*`, or when moving the segment would leave `script_name`
    /// ending in `/` (an empty first segment, as in `"/"` or `"//x"`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut environ = rgi::Environ::builder()
    ///     .uri(http::Uri::from_static("/api/users%2Fadmins/7"))
    ///     .build()?;
    ///
    /// assert_eq!(environ.shift_path().unwrap(), "/api");
    /// assert_eq!(environ.shift_path().unwrap(), "/users/admins");
    /// assert_eq!(environ.script_name(), "/api/users/admins");
    /// assert_eq!(environ.path_info(), "/7");
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    pub fn shift_path(&mut self) -> Option<PathBytes> {
        let raw_start = usize::try_from(self.raw_path_info_start).ok()?;
        let raw_rest = self.uri.path().get(raw_start..)?;
        let raw_segment = path::first_raw_segment(raw_rest)?;
        let decoded_len = path::decoded_len(raw_segment);
        let segment = self.path_info.slice(0, decoded_len)?;
        if segment.as_bytes().ends_with(b"/") {
            return None;
        }
        let rest = self.path_info.slice(decoded_len, self.path_info.len())?;
        let raw_end = u32::try_from(raw_start + raw_segment.len()).ok()?;
        self.script_name = self.script_name.concat(&segment);
        self.path_info = rest;
        self.raw_path_info_start = raw_end;
        Some(segment)
    }

    /// The server's name for itself (`SERVER_NAME`), never empty.
    #[must_use]
    pub fn server_name(&self) -> &str {
        &self.server.name
    }

    /// The port the request arrived on (`SERVER_PORT`).
    #[must_use]
    pub fn server_port(&self) -> u16 {
        self.server.port
    }

    /// The peer's IP socket address, if the connection has one: derived
    /// from [`Environ::connection`] ([`ConnectionInfo::remote_addr`]).
    #[must_use]
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.connection.remote_addr()
    }

    /// Whether the request arrived over `http` or `https`: derived from
    /// [`Environ::connection`] (`https` exactly when it runs over TLS).
    #[must_use]
    pub fn url_scheme(&self) -> UrlScheme {
        self.connection.url_scheme()
    }

    /// How the server runs applications.
    #[must_use]
    pub fn concurrency(&self) -> Concurrency {
        self.server.concurrency
    }

    /// What the server knows about the connection the request arrived on,
    /// shared by every request of that connection.
    ///
    /// # Examples
    ///
    /// ```
    /// let environ = rgi::Environ::builder()
    ///     .remote_addr("192.0.2.7:50000".parse().unwrap())
    ///     .build()?;
    /// let peer = environ.connection().peer_addr();
    /// assert_eq!(peer, Some(&rgi::Address::Tcp("192.0.2.7:50000".parse().unwrap())));
    /// assert!(environ.connection().tls().is_none());
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    #[must_use]
    pub fn connection(&self) -> &Arc<ConnectionInfo> {
        &self.connection
    }

    /// The server's description of itself for this request's mount point.
    #[must_use]
    pub fn server_info(&self) -> &Arc<ServerInfo> {
        &self.server
    }

    /// The optional features the server declares (`[RGI-FEAT-1]`): the
    /// same as `server_info().features()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let environ = rgi::Environ::builder().build()?;
    /// assert_eq!(environ.features(), rgi::Features::none());
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    #[must_use]
    pub fn features(&self) -> crate::Features {
        self.server.features()
    }

    /// The length of the whole request body from its framing, or `None` when
    /// it is not known in advance (a chunked upload). Follows the current
    /// input, including one set with [`Environ::replace_input`].
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        self.input.content_length()
    }

    /// Typed extensions: the type of a value is its name. Spec-defined types
    /// live in `rgi`, server-specific ones in the server's crate.
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct TlsVersion(&'static str);
    ///
    /// let environ = rgi::Environ::builder()
    ///     .extension(TlsVersion("1.3"))
    ///     .build()?;
    /// assert_eq!(environ.extensions().get::<TlsVersion>(), Some(&TlsVersion("1.3")));
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    #[must_use]
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Typed extensions, for adding or taking values.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The extension value of type `T` this request sees: its own, from
    /// [`Environ::extensions`], or else the server-wide one from
    /// [`ServerInfo::extension`] (RGI-EXT-1). A request's own value
    /// overrides the server's, so a server or a middleware can change one
    /// request without touching the shared description.
    ///
    /// Finding either costs no allocation: an environ with no extensions of
    /// its own holds no map, and the server's values are behind the shared
    /// [`Arc`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rgi::{Environ, ServerInfo};
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Region(&'static str);
    ///
    /// let server = Arc::new(ServerInfo::new("localhost", 80)?.with_extension(Region("eu")));
    /// let environ = Environ::builder().server_info(Arc::clone(&server)).build()?;
    /// assert_eq!(environ.extension::<Region>(), Some(&Region("eu")));
    ///
    /// let overridden = Environ::builder()
    ///     .server_info(server)
    ///     .extension(Region("us"))
    ///     .build()?;
    /// assert_eq!(overridden.extension::<Region>(), Some(&Region("us")));
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    #[must_use]
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions
            .get::<T>()
            .or_else(|| self.server.extension::<T>())
    }

    /// The server-wide extension value of type `T`, ignoring any value of
    /// the request's own (see [`ServerInfo::with_extension`]).
    #[must_use]
    pub fn server_extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.server.extension::<T>()
    }

    /// The request body.
    #[must_use]
    pub fn input(&self) -> &Input {
        &self.input
    }

    /// The request body, for reading.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let mut environ = rgi::Environ::builder()
    ///     .input(rgi::Input::from_bytes("a=1"))
    ///     .build()?;
    /// let mut body = String::new();
    /// environ.input_mut().read_to_string(&mut body)?;
    /// assert_eq!(body, "a=1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn input_mut(&mut self) -> &mut Input {
        &mut self.input
    }

    /// Replaces the request body (for middleware that buffers or transforms
    /// it) and returns the previous one.
    pub fn replace_input(&mut self, input: Input) -> Input {
        std::mem::replace(&mut self.input, input)
    }

    /// Consumes the environment, keeping only the request body.
    #[must_use]
    pub fn into_input(self) -> Input {
        self.input
    }

    /// The error stream (`wsgi.errors`), for writing diagnostics to the
    /// server's log.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let mut environ = rgi::Environ::builder().errors(rgi::Errors::discard()).build()?;
    /// writeln!(environ.errors_mut(), "slow query: {} ms", 1200)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn errors_mut(&mut self) -> &mut Errors {
        &mut self.errors
    }

    /// Replaces the error stream (a server routing it to its log, or a
    /// middleware capturing it) and returns the previous one.
    pub fn replace_errors(&mut self, errors: Errors) -> Errors {
        std::mem::replace(&mut self.errors, errors)
    }

    /// Reconstructs the full URL of the request.
    ///
    /// The host is the authority of an absolute-form target, else the `Host`
    /// header if there is exactly one and it is a valid authority, else the
    /// server name with `:port` unless the port is the scheme's default. The
    /// path is `script_name` followed by `path_info`, percent-encoded (an
    /// encoded slash stays encoded); the query follows as received.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::{HeaderValue, Uri, header::HOST};
    /// use rgi::{Environ, UrlScheme};
    ///
    /// let environ = Environ::builder()
    ///     .uri(Uri::from_static("/docs/caf%c3%a9?lang=fr"))
    ///     .header(HOST, HeaderValue::from_static("example.org"))
    ///     .url_scheme(UrlScheme::Https)
    ///     .server("10.0.0.5", 8443)
    ///     .build()?;
    /// assert_eq!(environ.request_url(), "https://example.org/docs/caf%C3%A9?lang=fr");
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    #[must_use]
    pub fn request_url(&self) -> String {
        let scheme = self.url_scheme();
        let mut url = String::from(scheme.as_str());
        url.push_str("://");
        self.push_host(&mut url);
        // An asterisk-form target has an empty path in its URL (RFC 9112,
        // section 3.3).
        if self.uri.path() != "*" {
            path::push_encoded_path(&mut url, self.uri.path());
        }
        let query = self.query_string();
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    fn push_host(&self, url: &mut String) {
        // An absolute-form target overrides Host (RFC 9112, section 3.2.2).
        if let Some(authority) = self.uri.authority() {
            push_authority_without_userinfo(url, authority);
            return;
        }
        if let Some(host) = self.single_valid_host() {
            push_authority_without_userinfo(url, &host);
            return;
        }
        let name = self.server_name();
        let bracketed = name.contains(':') && !name.starts_with('[');
        if bracketed {
            url.push('[');
            url.push_str(name);
            url.push(']');
        } else {
            url.push_str(name);
        }
        if self.server_port() != self.url_scheme().default_port() {
            url.push(':');
            url.push_str(&self.server_port().to_string());
        }
    }

    fn single_valid_host(&self) -> Option<Authority> {
        let mut hosts = self.headers.get_all(HOST).iter();
        let host = hosts.next()?;
        if hosts.next().is_some() {
            return None;
        }
        let authority = Authority::try_from(host.as_bytes()).ok()?;
        let has_userinfo = authority.as_str().contains('@');
        (!has_userinfo && !authority.host().is_empty()).then_some(authority)
    }
}

fn push_authority_without_userinfo(url: &mut String, authority: &Authority) {
    url.push_str(authority.host());
    if let Some(port) = authority.port() {
        url.push(':');
        url.push_str(port.as_str());
    }
}

/// Checks the target's form and splits its path at `script_name` (already
/// checked), returning both decoded halves and where `path_info` starts in
/// the raw path. A half without escapes shares the target's bytes.
fn split_target(
    method: &Method,
    uri: &Uri,
    version: Version,
    extensions: &Extensions,
    script_name: &PathBytes,
) -> Result<(PathBytes, PathBytes, usize), EnvironError> {
    let raw_path = uri.path();
    let is_asterisk = raw_path == "*";
    let target = uri
        .path_and_query()
        .filter(|_| is_asterisk || raw_path.starts_with('/'));
    // A CONNECT reaches an application only as an extended CONNECT (RFC 8441,
    // RFC 9220): HTTP/2 or later, a `:protocol` the server recorded as
    // `ConnectProtocol`, and a path (RGI-H2-11); a tunnel never does.
    let admitted = *method != Method::CONNECT
        || (version >= Version::HTTP_2
            && extensions.get::<ConnectProtocol>().is_some()
            && raw_path.starts_with('/'));
    let Some(target) = target.filter(|_| admitted) else {
        return Err(EnvironError::UnsupportedTarget {
            target: uri.to_string(),
        });
    };
    if is_asterisk && *method != Method::OPTIONS {
        return Err(EnvironError::AsteriskNotOptions {
            method: method.clone(),
        });
    }
    let mismatch = || EnvironError::ScriptNameMismatch {
        script_name: script_name.clone(),
        path: raw_path.to_owned(),
    };
    if is_asterisk {
        if !script_name.is_empty() {
            return Err(mismatch());
        }
        return Ok((PathBytes::default(), PathBytes::in_target(target, 0, 1), 0));
    }
    let Some(first_escape) = path::first_escape(raw_path) else {
        return Err(EnvironError::InvalidPercentEncoding {
            path: raw_path.to_owned(),
        });
    };
    let split_at = path::split(raw_path, script_name.as_bytes()).ok_or_else(mismatch)?;
    let script_name = if first_escape < split_at {
        script_name.clone()
    } else {
        PathBytes::in_target(target, 0, split_at)
    };
    let raw_path_info = raw_path.get(split_at..).unwrap_or_default();
    let path_info = if first_escape < raw_path.len() {
        // Only an escape forces a copy: the decoded bytes differ from the
        // target's.
        PathBytes::from(Bytes::from(path::decode_valid(raw_path_info)))
    } else {
        PathBytes::in_target(target, split_at, raw_path.len())
    };
    Ok((script_name, path_info, split_at))
}

/// The Content-Length the headers declare, if any. Repeated fields and
/// comma-separated lists are accepted when every element is the same number
/// (RFC 9110, section 8.6).
fn declared_content_length(headers: &HeaderMap) -> Result<Option<u64>, EnvironError> {
    let mut declared = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let invalid = || EnvironError::InvalidContentLength {
            value: value.clone(),
        };
        let text = value.to_str().map_err(|_| invalid())?;
        for element in text.split(',') {
            let element = element.trim_matches([' ', '\t']);
            if element.is_empty() || !element.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(invalid());
            }
            let length: u64 = element.parse().map_err(|_| invalid())?;
            if declared.is_some_and(|earlier| earlier != length) {
                return Err(invalid());
            }
            declared = Some(length);
        }
    }
    Ok(declared)
}

/// A percent-decoded piece of the request path: arbitrary bytes, usually but
/// not necessarily UTF-8.
///
/// # Examples
///
/// ```
/// let environ = rgi::Environ::builder()
///     .uri(http::Uri::from_static("/caf%C3%A9/%FF"))
///     .build()?;
/// let path_info = environ.path_info();
///
/// assert_eq!(path_info.as_bytes(), b"/caf\xc3\xa9/\xff");
/// assert!(path_info.to_str().is_err());
/// assert_eq!(path_info.to_string_lossy(), "/café/\u{FFFD}");
/// # Ok::<(), rgi::EnvironError>(())
/// ```
#[derive(Clone, Default)]
pub struct PathBytes(PathRepr);

#[derive(Clone)]
enum PathRepr {
    /// Bytes of their own: decoded from escapes, or given by a server.
    Owned(Bytes),
    /// A stretch of the request target's path that has no escape, so its
    /// decoding is itself: shares the target's bytes instead of copying them.
    InTarget {
        target: PathAndQuery,
        start: u32,
        end: u32,
    },
}

impl Default for PathRepr {
    fn default() -> Self {
        Self::Owned(Bytes::new())
    }
}

impl PathBytes {
    /// `start..end` of `target.path()`, which holds no escape there.
    fn in_target(target: &PathAndQuery, start: usize, end: usize) -> Self {
        if start == end {
            return Self::default();
        }
        // A target is at most 64 KiB (`http::Uri`'s limit), so the offsets
        // fit; were that limit ever raised, copying stays correct.
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(start), Ok(end)) => Self(PathRepr::InTarget {
                target: target.clone(),
                start,
                end,
            }),
            _ => Self::from(Bytes::copy_from_slice(
                target.path().as_bytes().get(start..end).unwrap_or_default(),
            )),
        }
    }

    /// Bytes `start..end` of this path, sharing its storage; `None` if out of
    /// range.
    fn slice(&self, start: usize, end: usize) -> Option<Self> {
        if start > end || end > self.len() {
            return None;
        }
        Some(match &self.0 {
            PathRepr::Owned(bytes) => Self(PathRepr::Owned(bytes.slice(start..end))),
            PathRepr::InTarget {
                target,
                start: base,
                ..
            } => {
                let base = *base as usize;
                Self::in_target(target, base + start, base + end)
            }
        })
    }

    /// This path followed by `next`; shares the target's bytes when both are
    /// adjacent stretches of it (`shift_path` on an unescaped path).
    fn concat(&self, next: &Self) -> Self {
        if self.is_empty() {
            return next.clone();
        }
        if let (
            PathRepr::InTarget { target, start, end },
            PathRepr::InTarget {
                start: next_start,
                end: next_end,
                ..
            },
        ) = (&self.0, &next.0)
        {
            if end == next_start && target.path().len() >= *next_end as usize {
                return Self(PathRepr::InTarget {
                    target: target.clone(),
                    start: *start,
                    end: *next_end,
                });
            }
        }
        let mut joined = Vec::with_capacity(self.len() + next.len());
        joined.extend_from_slice(self.as_bytes());
        joined.extend_from_slice(next.as_bytes());
        Self::from(Bytes::from(joined))
    }

    /// The decoded bytes.
    #[must_use]
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            PathRepr::Owned(bytes) => bytes,
            PathRepr::InTarget { target, start, end } => target
                .path()
                .as_bytes()
                .get(*start as usize..*end as usize)
                .unwrap_or_default(),
        }
    }

    /// The decoded path as UTF-8.
    ///
    /// # Errors
    ///
    /// [`Utf8Error`] if the decoded bytes are not valid UTF-8.
    pub fn to_str(&self) -> Result<&str, Utf8Error> {
        std::str::from_utf8(self.as_bytes())
    }

    /// The decoded path as UTF-8, with invalid sequences replaced by U+FFFD.
    #[must_use]
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }

    /// Whether the path is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.0 {
            PathRepr::Owned(bytes) => bytes.len(),
            PathRepr::InTarget { start, end, .. } => (end - start) as usize,
        }
    }
}

impl From<Bytes> for PathBytes {
    fn from(bytes: Bytes) -> Self {
        Self(PathRepr::Owned(bytes))
    }
}

impl From<PathBytes> for Bytes {
    /// The bytes themselves, copied only if they were shared with a request
    /// target.
    fn from(path: PathBytes) -> Self {
        match path.0 {
            PathRepr::Owned(bytes) => bytes,
            PathRepr::InTarget { .. } => Bytes::copy_from_slice(path.as_bytes()),
        }
    }
}

impl AsRef<[u8]> for PathBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for PathBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for PathBytes {}

impl PartialOrd for PathBytes {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathBytes {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for PathBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq<str> for PathBytes {
    #[inline]
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for PathBytes {
    #[inline]
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<[u8]> for PathBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_bytes() == other
    }
}

impl PartialEq<&[u8]> for PathBytes {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_bytes() == *other
    }
}

impl fmt::Display for PathBytes {
    /// Shows the path as UTF-8, invalid sequences replaced by U+FFFD.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_string_lossy())
    }
}

impl fmt::Debug for PathBytes {
    /// Shows the bytes as a byte-string literal, `PathBytes(b"/caf\xc3\xa9")`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("PathBytes(b\"")?;
        for &byte in self.as_bytes() {
            match byte {
                b'\\' | b'"' => write!(formatter, "\\{}", char::from(byte))?,
                b'\n' => formatter.write_str("\\n")?,
                b'\r' => formatter.write_str("\\r")?,
                b'\t' => formatter.write_str("\\t")?,
                0x20..=0x7e => write!(formatter, "{}", char::from(byte))?,
                _ => write!(formatter, "\\x{byte:02x}")?,
            }
        }
        formatter.write_str("\")")
    }
}

/// How the server runs applications (`wsgi.multithread`,
/// `wsgi.multiprocess`, `wsgi.run_once`).
///
/// Applications are `Send + Sync` whatever these say; the flags tell an
/// application whether, for example, an in-process cache is shared by other
/// requests.
///
/// A later minor version may add flags (`[RGI-VER-2]`), so the struct is
/// `#[non_exhaustive]`: outside this crate, start from
/// [`Concurrency::MULTITHREADED`] (or `Default`) and change flags with the
/// `with_*` methods or by assigning a field.
///
/// # Examples
///
/// ```
/// let cgi = rgi::Concurrency::MULTITHREADED
///     .with_multithread(false)
///     .with_run_once(true);
/// assert!(cgi.run_once && !cgi.multithread && !cgi.multiprocess);
/// assert_eq!(rgi::Concurrency::default(), rgi::Concurrency::MULTITHREADED);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Concurrency {
    /// The same application value may serve requests on several threads at
    /// once.
    pub multithread: bool,
    /// Several processes serve the same application.
    pub multiprocess: bool,
    /// The process will serve only this one request (CGI-like).
    pub run_once: bool,
}

impl Concurrency {
    /// One process running requests on several threads, serving many
    /// requests: what a typical threaded server declares, and the default.
    pub const MULTITHREADED: Concurrency = Concurrency {
        multithread: true,
        multiprocess: false,
        run_once: false,
    };

    /// These flags with `multithread` changed.
    #[must_use]
    pub const fn with_multithread(mut self, multithread: bool) -> Self {
        self.multithread = multithread;
        self
    }

    /// These flags with `multiprocess` changed.
    #[must_use]
    pub const fn with_multiprocess(mut self, multiprocess: bool) -> Self {
        self.multiprocess = multiprocess;
        self
    }

    /// These flags with `run_once` changed.
    #[must_use]
    pub const fn with_run_once(mut self, run_once: bool) -> Self {
        self.run_once = run_once;
        self
    }
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency::MULTITHREADED
    }
}

/// Why [`Environ::from_parts`] or [`EnvironBuilder::build`] refused to
/// build an environment, or [`ServerInfo`] refused a server description;
/// every variant carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvironError {
    /// A `%` in the path is not followed by two hex digits.
    #[error("request path {path:?} has a `%` not followed by two hex digits")]
    InvalidPercentEncoding {
        /// The raw path.
        path: String,
    },
    /// The script name is neither empty nor `/…`, is `/` alone, or ends
    /// with `/`.
    #[error(
        "script name \"{script_name}\" must be empty or start with `/`, and must not end with `/`"
    )]
    InvalidScriptName {
        /// The rejected script name.
        script_name: PathBytes,
    },
    /// The script name is not the decoding of whole leading segments of the
    /// path.
    #[error("script name \"{script_name}\" does not match whole leading segments of path {path:?}")]
    ScriptNameMismatch {
        /// The script name.
        script_name: PathBytes,
        /// The raw path it should prefix.
        path: String,
    },
    /// The asterisk-form target `*` with a method other than `OPTIONS`.
    #[error("request target `*` is allowed only with OPTIONS, not {method}")]
    AsteriskNotOptions {
        /// The request method.
        method: Method,
    },
    /// An authority-form target, or a `CONNECT` request that is not an
    /// extended CONNECT (see [`ConnectProtocol`]): not a resource an
    /// application serves.
    #[error("request target {target:?} is not a path (authority-form or CONNECT)")]
    UnsupportedTarget {
        /// The request target.
        target: String,
    },
    /// The server name is empty.
    #[error("server name is empty")]
    EmptyServerName,
    /// The headers still hold `Transfer-Encoding`, which the server must
    /// remove after decoding the body itself.
    #[error("Transfer-Encoding {value:?} must be removed by the server, which decodes the body")]
    TransferEncodingPresent {
        /// The first `Transfer-Encoding` value.
        value: HeaderValue,
    },
    /// A `Content-Length` header is not a decimal number, or the values
    /// differ.
    #[error("Content-Length {value:?} is not a single decimal number")]
    InvalidContentLength {
        /// The offending header value.
        value: HeaderValue,
    },
    /// The `Content-Length` header disagrees with the input's framing.
    #[error(
        "Content-Length header says {header} bytes, but the input is framed as {}",
        FramingDescription(*.framing)
    )]
    ContentLengthMismatch {
        /// The length the header declares.
        header: u64,
        /// The input's declared length (`None`: delimited by EOF).
        framing: Option<u64>,
    },
}

/// Renders an input's framing for [`EnvironError::ContentLengthMismatch`].
struct FramingDescription(Option<u64>);

impl fmt::Display for FramingDescription {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(length) => write!(formatter, "{length} bytes"),
            None => formatter.write_str("delimited by end of stream"),
        }
    }
}
