//! The request environment handed to the application.

mod path;

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::str::Utf8Error;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::Authority;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};

use crate::{Errors, Input};

/// Everything the server knows about one request (the WSGI `environ`).
///
/// Built by the server with [`Environ::builder`], which checks the
/// invariants an application may rely on (see [`EnvironError`]), then moved
/// into the application.
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
    script_name: PathBytes,
    path_info: PathBytes,
    /// Where `path_info` starts in `uri.path()`, so that `shift_path` splits
    /// on raw segments as `build` did.
    raw_path_info_start: usize,
    server_name: String,
    server_port: u16,
    remote_addr: Option<SocketAddr>,
    url_scheme: UrlScheme,
    concurrency: Concurrency,
    extensions: Extensions,
    input: Input,
    errors: Errors,
}

impl Environ {
    /// A builder with the defaults of a plain local request: `GET /`
    /// HTTP/1.1 to `localhost:80` over `http`, no headers, no remote address,
    /// an empty body, errors to standard error, and
    /// `Concurrency { multithread: true, multiprocess: false, run_once: false }`.
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
        EnvironBuilder {
            method: Method::GET,
            uri: Uri::from_static("/"),
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
            script_name: Bytes::new(),
            server_name: String::from("localhost"),
            server_port: 80,
            remote_addr: None,
            url_scheme: UrlScheme::Http,
            concurrency: Concurrency {
                multithread: true,
                multiprocess: false,
                run_once: false,
            },
            extensions: Extensions::new(),
            input: Input::empty(),
            errors: Errors::stderr(),
        }
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
        let raw_rest = self.uri.path().get(self.raw_path_info_start..)?;
        let raw_segment = path::first_raw_segment(raw_rest)?;
        let decoded_len = path::decode(raw_segment)?.len();
        if self.path_info.len() < decoded_len {
            return None;
        }
        let mut rest = self.path_info.0.clone();
        let segment = rest.split_to(decoded_len);
        if segment.ends_with(b"/") {
            return None;
        }
        let mut script_name = Vec::with_capacity(self.script_name.len() + segment.len());
        script_name.extend_from_slice(&self.script_name.0);
        script_name.extend_from_slice(&segment);
        self.script_name = PathBytes(Bytes::from(script_name));
        self.path_info = PathBytes(rest);
        self.raw_path_info_start += raw_segment.len();
        Some(PathBytes(segment))
    }

    /// The server's name for itself (`SERVER_NAME`), never empty.
    #[must_use]
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The port the request arrived on (`SERVER_PORT`).
    #[must_use]
    pub fn server_port(&self) -> u16 {
        self.server_port
    }

    /// The peer's address, if the transport has one.
    #[must_use]
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// Whether the request arrived over `http` or `https`.
    #[must_use]
    pub fn url_scheme(&self) -> UrlScheme {
        self.url_scheme
    }

    /// How the server runs applications.
    #[must_use]
    pub fn concurrency(&self) -> Concurrency {
        self.concurrency
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
        let mut url = String::from(self.url_scheme.as_str());
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
        let bracketed = self.server_name.contains(':') && !self.server_name.starts_with('[');
        if bracketed {
            url.push('[');
            url.push_str(&self.server_name);
            url.push(']');
        } else {
            url.push_str(&self.server_name);
        }
        if self.server_port != self.url_scheme.default_port() {
            url.push(':');
            url.push_str(&self.server_port.to_string());
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

/// Builds an [`Environ`], checking its invariants in [`build`](Self::build).
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
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    script_name: Bytes,
    server_name: String,
    server_port: u16,
    remote_addr: Option<SocketAddr>,
    url_scheme: UrlScheme,
    concurrency: Concurrency,
    extensions: Extensions,
    input: Input,
    errors: Errors,
}

impl EnvironBuilder {
    /// Sets the request method (default `GET`).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Sets the request target as received (default `/`): origin-form,
    /// absolute-form, or `*` for `OPTIONS`.
    pub fn uri(mut self, uri: Uri) -> Self {
        self.uri = uri;
        self
    }

    /// Sets the HTTP version (default HTTP/1.1).
    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// Appends a header field, keeping earlier fields of the same name.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Replaces all header fields.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
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
        self.script_name = script_name.into();
        self
    }

    /// Sets the server's name for itself and the port the request arrived on
    /// (default `localhost`, 80).
    pub fn server(mut self, name: impl Into<String>, port: u16) -> Self {
        self.server_name = name.into();
        self.server_port = port;
        self
    }

    /// Sets the peer's address (default none).
    pub fn remote_addr(mut self, remote_addr: SocketAddr) -> Self {
        self.remote_addr = Some(remote_addr);
        self
    }

    /// Sets the URL scheme the request arrived over (default `http`).
    pub fn url_scheme(mut self, url_scheme: UrlScheme) -> Self {
        self.url_scheme = url_scheme;
        self
    }

    /// Sets how the server runs applications (default multithreaded, single
    /// process, not run-once).
    pub fn concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Adds a typed extension, replacing an earlier one of the same type.
    pub fn extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
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
    ///   or the method is `CONNECT`.
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
        let raw_path = self.uri.path();
        let is_asterisk = raw_path == "*";
        if self.method == Method::CONNECT || !(is_asterisk || raw_path.starts_with('/')) {
            return Err(EnvironError::UnsupportedTarget {
                target: self.uri.to_string(),
            });
        }
        if is_asterisk && self.method != Method::OPTIONS {
            return Err(EnvironError::AsteriskNotOptions {
                method: self.method,
            });
        }
        let script_name = PathBytes(self.script_name);
        if !is_valid_script_name(script_name.as_bytes()) {
            return Err(EnvironError::InvalidScriptName { script_name });
        }
        let split = if is_asterisk {
            if !script_name.is_empty() {
                return Err(EnvironError::ScriptNameMismatch {
                    script_name,
                    path: raw_path.to_owned(),
                });
            }
            path::Split {
                script_name: Vec::new(),
                path_info: b"*".to_vec(),
                raw_path_info_start: 0,
            }
        } else {
            path::split(raw_path, script_name.as_bytes()).map_err(|error| match error {
                path::SplitError::InvalidPercentEncoding => EnvironError::InvalidPercentEncoding {
                    path: raw_path.to_owned(),
                },
                path::SplitError::ScriptNameMismatch => EnvironError::ScriptNameMismatch {
                    script_name: script_name.clone(),
                    path: raw_path.to_owned(),
                },
            })?
        };
        if self.server_name.is_empty() {
            return Err(EnvironError::EmptyServerName);
        }
        if let Some(value) = self.headers.get(TRANSFER_ENCODING) {
            return Err(EnvironError::TransferEncodingPresent {
                value: value.clone(),
            });
        }
        if let Some(header) = declared_content_length(&self.headers)? {
            let framing = self.input.content_length();
            if framing != Some(header) {
                return Err(EnvironError::ContentLengthMismatch { header, framing });
            }
        }
        Ok(Environ {
            method: self.method,
            uri: self.uri,
            version: self.version,
            headers: self.headers,
            script_name: PathBytes(Bytes::from(split.script_name)),
            path_info: PathBytes(Bytes::from(split.path_info)),
            raw_path_info_start: split.raw_path_info_start,
            server_name: self.server_name,
            server_port: self.server_port,
            remote_addr: self.remote_addr,
            url_scheme: self.url_scheme,
            concurrency: self.concurrency,
            extensions: self.extensions,
            input: self.input,
            errors: self.errors,
        })
    }
}

fn is_valid_script_name(script_name: &[u8]) -> bool {
    script_name.is_empty() || (script_name.starts_with(b"/") && !script_name.ends_with(b"/"))
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
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathBytes(Bytes);

impl PathBytes {
    /// The decoded bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The decoded path as UTF-8.
    ///
    /// # Errors
    ///
    /// [`Utf8Error`] if the decoded bytes are not valid UTF-8.
    pub fn to_str(&self) -> Result<&str, Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// The decoded path as UTF-8, with invalid sequences replaced by U+FFFD.
    #[must_use]
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// Whether the path is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<Bytes> for PathBytes {
    fn from(bytes: Bytes) -> Self {
        Self(bytes)
    }
}

impl From<PathBytes> for Bytes {
    fn from(path: PathBytes) -> Self {
        path.0
    }
}

impl AsRef<[u8]> for PathBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for PathBytes {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for PathBytes {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<[u8]> for PathBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl PartialEq<&[u8]> for PathBytes {
    fn eq(&self, other: &&[u8]) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for PathBytes {
    /// Shows the path as UTF-8, invalid sequences replaced by U+FFFD.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_string_lossy())
    }
}

impl fmt::Debug for PathBytes {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_tuple("PathBytes").field(&self.0).finish()
    }
}

/// The scheme the request arrived over (`wsgi.url_scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UrlScheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

impl UrlScheme {
    /// `"http"` or `"https"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(rgi::UrlScheme::Https.as_str(), "https");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// The scheme's default port: 80 or 443.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

impl fmt::Display for UrlScheme {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// How the server runs applications (`wsgi.multithread`,
/// `wsgi.multiprocess`, `wsgi.run_once`).
///
/// Applications are `Send + Sync` whatever these say; the flags tell an
/// application whether, for example, an in-process cache is shared by other
/// requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concurrency {
    /// The same application value may serve requests on several threads at
    /// once.
    pub multithread: bool,
    /// Several processes serve the same application.
    pub multiprocess: bool,
    /// The process will serve only this one request (CGI-like).
    pub run_once: bool,
}

/// Why [`EnvironBuilder::build`] refused to build an environment; every
/// variant carries the offending value.
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
    /// An authority-form target or a `CONNECT` request: not a resource an
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
