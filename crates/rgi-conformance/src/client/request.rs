//! The request a test sends: a builder that becomes an [`Environ`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TE, UPGRADE};
use http::uri::Authority;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use rgi::{Environ, Errors, Features, Input, ResponseState, ServerInfo, TrailerSlot, UrlScheme};

use super::ClientError;
use super::body::{ErrorsLog, Feed, Network, PieceReader, PieceSource};
use super::upgrade::{PeerScript, UpgradeOffer, UpgradePeer};

/// The request body as the test gave it.
#[derive(Debug, Clone)]
enum Payload {
    /// No body (Content-Length 0 by framing, no header).
    None,
    /// A body of known length: `content-length` is set.
    Whole(Bytes),
    /// A body of unknown length, delivered piece by piece (a chunked
    /// upload the server has de-chunked).
    Pieces(Vec<Bytes>),
}

/// A request for the in-process clients, built step by step.
///
/// Defaults are those of [`Environ::builder`]: `GET /` over HTTP/1.1 to
/// `localhost:80`, no body, and no header fields but `host`: a request of
/// HTTP/1.1 or later without one gets the one its client would have sent
/// (the target's authority, else the server's name and port). As on a
/// conforming server, an HTTP/1.1 request with several `host` fields or an
/// invalid one is answered `400` without calling the application
/// ([`Ending::Rejected`](super::Ending::Rejected), RGI-HDR-5). Builder methods never fail; a
/// value that cannot be used (an unparsable target, say) is kept as an
/// error that [`TestClient::request`](super::TestClient::request) and
/// [`into_environ`](Self::into_environ) return, carrying the value.
///
/// # Examples
///
/// ```
/// use http::{header, HeaderValue, Method};
/// use rgi_conformance::client::TestRequest;
///
/// let environ = TestRequest::post("/app/upload?draft=1", "name=Ada")
///     .header(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"))
///     .script_name("/app")
///     .into_environ()?;
/// assert_eq!(environ.method(), Method::POST);
/// assert_eq!(environ.path_info(), "/upload");
/// assert_eq!(environ.query_string(), "draft=1");
/// assert_eq!(environ.content_length(), Some(8));
/// assert_eq!(environ.headers()[header::CONTENT_LENGTH], "8");
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
#[must_use = "a TestRequest does nothing until a client runs it"]
pub struct TestRequest {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    payload: Payload,
    script_name: Bytes,
    server: Option<(String, u16)>,
    remote_addr: Option<SocketAddr>,
    url_scheme: UrlScheme,
    extensions: Extensions,
    peer: Option<PeerScript>,
    error: Option<ClientError>,
    features: Features,
    trailers: Option<HeaderMap>,
}

impl fmt::Debug for TestRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRequest")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("payload", &self.payload)
            .field("script_name", &self.script_name)
            .field("remote_addr", &self.remote_addr)
            .field("upgrade_peer", &self.peer.is_some())
            .field("error", &self.error)
            .field("features", &self.features)
            .field("trailers", &self.trailers)
            .finish_non_exhaustive()
    }
}

impl TestRequest {
    /// A request with `method` for `uri` (origin-form such as `/a?b`,
    /// absolute-form, or `*` for `OPTIONS`).
    pub fn new(method: Method, uri: impl AsRef<str>) -> Self {
        let mut request = TestRequest {
            method,
            uri: Uri::from_static("/"),
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
            payload: Payload::None,
            script_name: Bytes::new(),
            server: None,
            remote_addr: None,
            url_scheme: UrlScheme::Http,
            extensions: Extensions::new(),
            peer: None,
            error: None,
            features: Features::none(),
            trailers: None,
        };
        let uri = uri.as_ref();
        match Uri::try_from(uri) {
            Ok(parsed) => request.uri = parsed,
            Err(source) => request.fail(ClientError::InvalidUri {
                uri: uri.to_owned(),
                source,
            }),
        }
        request
    }

    /// A request whose method is given as text, such as `"PROPFIND"`.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidMethod`] if `method` is not an HTTP token.
    pub fn with_method(method: &str, uri: impl AsRef<str>) -> Result<Self, ClientError> {
        let parsed =
            Method::from_bytes(method.as_bytes()).map_err(|_| ClientError::InvalidMethod {
                method: method.to_owned(),
            })?;
        Ok(TestRequest::new(parsed, uri))
    }

    /// A `GET` request for `uri`.
    pub fn get(uri: impl AsRef<str>) -> Self {
        TestRequest::new(Method::GET, uri)
    }

    /// A `HEAD` request for `uri`.
    pub fn head(uri: impl AsRef<str>) -> Self {
        TestRequest::new(Method::HEAD, uri)
    }

    /// A `POST` request for `uri` with `body` (and its `content-length`).
    pub fn post(uri: impl AsRef<str>, body: impl Into<Bytes>) -> Self {
        TestRequest::new(Method::POST, uri).body(body)
    }

    /// A `PUT` request for `uri` with `body` (and its `content-length`).
    pub fn put(uri: impl AsRef<str>, body: impl Into<Bytes>) -> Self {
        TestRequest::new(Method::PUT, uri).body(body)
    }

    /// Keeps the first error; later ones are consequences or noise.
    fn fail(&mut self, error: ClientError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// Appends a header field, keeping earlier fields of the same name (as
    /// separate entries, the way a server passes repeated fields).
    pub fn header(mut self, name: impl Into<HeaderName>, value: impl Into<HeaderValue>) -> Self {
        self.headers.append(name.into(), value.into());
        self
    }

    /// Appends a header field given as text.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidHeaderName`] or
    /// [`ClientError::InvalidHeaderValue`], carrying the text.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi_conformance::client::{ClientError, TestRequest};
    ///
    /// let request = TestRequest::get("/").try_header("x-trace", "abc")?;
    /// # let _ = request;
    /// let refused = TestRequest::get("/").try_header("x-trace", "a\nb");
    /// assert!(matches!(refused, Err(ClientError::InvalidHeaderValue { ref value, .. }) if value == "a\nb"));
    /// # Ok::<(), ClientError>(())
    /// ```
    pub fn try_header(self, name: &str, value: &str) -> Result<Self, ClientError> {
        let parsed_name =
            HeaderName::try_from(name).map_err(|_| ClientError::InvalidHeaderName {
                name: name.to_owned(),
            })?;
        let parsed_value =
            HeaderValue::try_from(value).map_err(|_| ClientError::InvalidHeaderValue {
                name: name.to_owned(),
                value: value.to_owned(),
            })?;
        Ok(self.header(parsed_name, parsed_value))
    }

    /// Sets a body of known length: the environ's input is framed by it and
    /// a `content-length` field is added unless the test set one itself (a
    /// disagreeing one is refused when the environ is built).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.payload = Payload::Whole(body.into());
        self
    }

    /// Sets a body of unknown length, as a de-chunked upload: no
    /// `content-length`, and the input ends where the pieces end. The
    /// synchronous client's input returns at most one piece per read; the
    /// asynchronous client's input makes each piece arrive separately, with
    /// `Pending` before it, so an application sees them one by one. Empty
    /// pieces are left out: no transfer coding can carry one.
    pub fn chunked<I>(mut self, pieces: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        self.payload = Payload::Pieces(pieces.into_iter().map(Into::into).collect());
        self
    }

    /// Serves the request as a server that declares RGI 1.2's optional
    /// `features` would (default none): the environ declares them, a
    /// piecewise body carries the [`trailers`](Self::trailers) when
    /// request trailers are declared, and response trailers and early
    /// hints are deliverable where the request allows them (trailers on
    /// HTTP/1.1 only with a `TE: trailers` field, and never for `HEAD`;
    /// early hints from HTTP/1.1 on). The response records what reached
    /// the transport ([`TestResponse::trailers`](super::TestResponse::trailers),
    /// [`TestResponse::early_hints`](super::TestResponse::early_hints)).
    /// Lifespan, if declared, is only declared: the clients call no
    /// `startup`.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::{header, HeaderMap, HeaderValue, StatusCode};
    /// use rgi::Features;
    /// use rgi_conformance::client::{TestClient, TestRequest};
    ///
    /// let client = TestClient::new(rgi::from_fn(|_environ, start| {
    ///     let mut hints = HeaderMap::new();
    ///     hints.insert(header::LINK, HeaderValue::from_static("</a.css>; rel=preload"));
    ///     start.send_early_hints(hints)?;
    ///     start.start(StatusCode::NO_CONTENT)?;
    ///     Ok(rgi::Empty)
    /// }));
    /// let hinted = Features::none().with_early_hints(true);
    /// let response = client.request(TestRequest::get("/").features(hinted))?;
    /// assert_eq!(response.early_hints.len(), 1);
    /// assert!(client.get("/")?.early_hints.is_empty()); // undeclared: dropped
    /// # Ok::<(), rgi_conformance::client::ClientError>(())
    /// ```
    pub fn features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// The trailer section of a piecewise body
    /// ([`chunked`](Self::chunked)): it reaches the application's input,
    /// after the body's end, when the request's
    /// [`features`](Self::features) declare request trailers; a body of
    /// known length carries none.
    pub fn trailers(mut self, fields: HeaderMap) -> Self {
        self.trailers = Some(fields);
        self
    }

    /// Sets the HTTP version (default HTTP/1.1).
    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// Sets the application's mount point, percent-decoded (default none);
    /// it must match whole leading segments of the path.
    pub fn script_name(mut self, script_name: impl AsRef<[u8]>) -> Self {
        self.script_name = Bytes::copy_from_slice(script_name.as_ref());
        self
    }

    /// Sets the peer's address (default none).
    pub fn remote_addr(mut self, remote_addr: SocketAddr) -> Self {
        self.remote_addr = Some(remote_addr);
        self
    }

    /// Sets the server's name for itself and its port (default
    /// `localhost`, 80).
    pub fn server(mut self, name: impl Into<String>, port: u16) -> Self {
        self.server = Some((name.into(), port));
        self
    }

    /// Sets the URL scheme (default `http`).
    pub fn url_scheme(mut self, url_scheme: UrlScheme) -> Self {
        self.url_scheme = url_scheme;
        self
    }

    /// Adds a typed extension to the environ, replacing an earlier one of
    /// the same type. (The asynchronous client sets
    /// [`rgi_async::Capabilities`] itself.)
    pub fn extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// Asks to switch the connection to `protocol` (`connection: upgrade`
    /// and `upgrade: <protocol>`), and scripts the client's side of the new
    /// protocol.
    ///
    /// Under the [`AsyncTestClient`](super::AsyncTestClient), an HTTP/1.1
    /// request built this way gets the [`rgi_async::Upgrade`] capability.
    /// When the application accepts, the client records the `101` head and
    /// runs `peer` on a thread of its own with the other end of an
    /// in-memory connection: what `peer` writes, the application reads from
    /// its [`rgi_async::ByteStream`], and the reverse. When `peer` returns,
    /// its sending side closes (the application reads the end of stream);
    /// its reads time out after [`UpgradePeer::timeout`]. Both directions
    /// are in [`TestResponse::upgrade`](super::TestResponse::upgrade). A
    /// panic in `peer` (a failed assertion) is re-raised by `request`.
    ///
    /// A request that carries the two fields without a script gets a peer
    /// that sends nothing and reads until the application closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use http::HeaderValue;
    /// use rgi_conformance::client::TestRequest;
    ///
    /// let request = TestRequest::get("/chat").upgrade(HeaderValue::from_static("echo"), |peer| {
    ///     peer.write_all(b"ping")?;
    ///     let mut answer = [0; 4];
    ///     peer.read_exact(&mut answer)?;
    ///     assert_eq!(&answer, b"ping");
    ///     Ok(())
    /// });
    /// # let _ = request;
    /// ```
    pub fn upgrade<F>(mut self, protocol: HeaderValue, peer: F) -> Self
    where
        F: FnOnce(&mut UpgradePeer) -> io::Result<()> + Send + 'static,
    {
        self.headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        self.headers.insert(UPGRADE, protocol);
        self.peer = Some(Box::new(peer));
        self
    }

    /// The request's header fields so far.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Builds the environ a synchronous server would hand the application:
    /// the body behind a blocking source, errors to standard error. For
    /// middleware tests that call an application directly.
    ///
    /// # Errors
    ///
    /// The first error kept by a builder method,
    /// [`ClientError::Rejected`] for a request a server answers with 400,
    /// or [`ClientError::Environ`] when the request breaks an invariant of
    /// [`Environ`].
    pub fn into_environ(self) -> Result<Environ, ClientError> {
        self.prepare(Delivery::Blocking, None)
            .map(|prepared| prepared.environ)
    }

    /// Builds the environ and what the client keeps to finish the request.
    pub(crate) fn prepare(
        mut self,
        delivery: Delivery<'_>,
        log: Option<&ErrorsLog>,
    ) -> Result<Prepared, ClientError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        self.settle_host()?;
        let state = self.response_state();
        let (input, feed) = match self.payload {
            Payload::None => (Input::empty(), None),
            Payload::Whole(body) => {
                if !self.headers.contains_key(CONTENT_LENGTH) {
                    self.headers
                        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
                }
                let length = Some(body.len() as u64);
                let feed = Feed::new([body]);
                (delivery.input(&feed, length), Some(feed))
            }
            Payload::Pieces(pieces) => {
                let feed = Feed::new(pieces);
                let input = delivery.input(&feed, None);
                let input = match self.trailers {
                    Some(fields) if self.features.request_trailers() => {
                        input.with_trailers(TrailerSlot::filled(fields))
                    }
                    _ => input,
                };
                (input, Some(feed))
            }
        };
        let upgrade = UpgradeOffer::of(self.version, &self.headers, self.peer);
        let mut builder = Environ::builder();
        if self.features != Features::none() {
            let server = ServerInfo::new("localhost", 80)?.with_features(self.features);
            builder = builder.server_info(Arc::new(server));
        }
        let mut builder = builder
            .method(self.method)
            .uri(self.uri)
            .version(self.version)
            .headers(self.headers)
            .script_name(self.script_name)
            .url_scheme(self.url_scheme)
            .input(input)
            .errors(log.map_or_else(Errors::stderr, |log| Errors::new(log.clone())));
        if let Some((name, port)) = self.server {
            builder = builder.server(name, port);
        }
        if let Some(remote_addr) = self.remote_addr {
            builder = builder.remote_addr(remote_addr);
        }
        let mut environ = builder.build()?;
        environ.extensions_mut().extend(self.extensions);
        Ok(Prepared {
            environ,
            feed,
            upgrade,
            state,
        })
    }

    /// The response state a server declaring the request's features
    /// prepares for it (`RGI-TRAILER-7`, `RGI-EARLY-3`).
    fn response_state(&self) -> ResponseState {
        let mut state = ResponseState::new(&self.method);
        let te_trailers = self.headers.get_all(TE).iter().any(|value| {
            value.as_bytes().split(|&byte| byte == b',').any(|item| {
                let coding = item.split(|&byte| byte == b';').next().unwrap_or_default();
                coding.trim_ascii().eq_ignore_ascii_case(b"trailers")
            })
        });
        let carries =
            self.version >= Version::HTTP_2 || (self.version == Version::HTTP_11 && te_trailers);
        if self.features.response_trailers() && carries && self.method != Method::HEAD {
            state.enable_trailers();
        }
        if self.features.early_hints() && self.version >= Version::HTTP_11 {
            state.enable_early_hints();
        }
        state
    }
}

impl TestRequest {
    /// A copy of the request for a diagnostic replay, or `None` when it
    /// cannot be replayed faithfully: one the client refuses to build, or
    /// one whose upgrade peer script (which runs once) is part of it.
    pub(crate) fn replica(&self) -> Option<TestRequest> {
        if self.error.is_some() || self.peer.is_some() {
            return None;
        }
        Some(TestRequest {
            method: self.method.clone(),
            uri: self.uri.clone(),
            version: self.version,
            headers: self.headers.clone(),
            payload: self.payload.clone(),
            script_name: self.script_name.clone(),
            server: self.server.clone(),
            remote_addr: self.remote_addr,
            url_scheme: self.url_scheme,
            extensions: self.extensions.clone(),
            peer: None,
            error: None,
            features: self.features,
            trailers: self.trailers.clone(),
        })
    }

    /// The same request without its connection-specific fields, for the
    /// replay that judges whether the application depends on them
    /// (`RGI-HDR-7`); `None` when there are none to take away or when they
    /// legitimately steer the answer: a request asking for an upgrade
    /// (`Upgrade` is what it is about), and `TE`, which decides whether
    /// trailers are deliverable and is left in place.
    ///
    /// Taken away: `Connection`, `Keep-Alive`, `Proxy-Connection` and every
    /// field `Connection` names, other than `TE`, `Upgrade` and the fields
    /// that frame or route the request.
    pub(crate) fn without_connection_fields(&self) -> Option<TestRequest> {
        if self.headers.contains_key(UPGRADE) {
            return None;
        }
        let mut named: Vec<HeaderName> = Vec::new();
        for value in &self.headers.get_all(CONNECTION) {
            for option in value.as_bytes().split(|&byte| byte == b',') {
                let Ok(name) = HeaderName::from_bytes(option.trim_ascii()) else {
                    continue;
                };
                if ![TE, UPGRADE, HOST, CONTENT_LENGTH].contains(&name) {
                    named.push(name);
                }
            }
        }
        let keep_alive = HeaderName::from_static("keep-alive");
        let proxy_connection = HeaderName::from_static("proxy-connection");
        named.extend([CONNECTION, keep_alive, proxy_connection]);
        if !named.iter().any(|name| self.headers.contains_key(name)) {
            return None;
        }
        let mut variant = self.replica()?;
        for name in &named {
            variant.headers.remove(name);
        }
        Some(variant)
    }

    /// The features the request declares.
    pub(crate) fn declared_features(&self) -> Features {
        self.features
    }

    /// The same request on a server that declares every feature but
    /// lifespan, with `TE: trailers` added on HTTP/1.1 so that trailers
    /// are deliverable: what a diagnosis of `RGI-FEAT-2` replays.
    pub(crate) fn with_every_feature(mut self) -> TestRequest {
        self.features = Features::none()
            .with_request_trailers(true)
            .with_response_trailers(true)
            .with_early_hints(true);
        if self.version == Version::HTTP_11 && !self.headers.contains_key(TE) {
            self.headers
                .insert(TE, HeaderValue::from_static("trailers"));
        }
        self
    }

    /// The same request with the same body bytes behind a declared
    /// length, or `None` when its body already had one (or none).
    pub(crate) fn with_declared_length(mut self) -> Option<TestRequest> {
        let Payload::Pieces(pieces) = &self.payload else {
            return None;
        };
        let whole: Vec<u8> = pieces
            .iter()
            .flat_map(|piece| piece.iter().copied())
            .collect();
        self.payload = Payload::Whole(Bytes::from(whole));
        Some(self)
    }

    /// Whether the test put an extension of type `T` in the request.
    pub(crate) fn has_extension<T: Send + Sync + 'static>(&self) -> bool {
        self.extensions.get::<T>().is_some()
    }

    /// Whether the request asks to switch protocols.
    pub(crate) fn asks_upgrade(&self) -> bool {
        self.headers.contains_key(UPGRADE) || self.headers.contains_key(CONNECTION)
    }

    /// Whether an upgrade offer could be added to the request: an
    /// HTTP/1.1 request without a body.
    pub(crate) fn can_offer_upgrade(&self) -> bool {
        self.version == Version::HTTP_11 && matches!(self.payload, Payload::None)
    }
}

impl TestRequest {
    /// Gives an HTTP/1.1 (or later) request without a `host` field the one
    /// its client would have sent, then refuses what a server answers with
    /// 400 (RGI-HDR-5).
    fn settle_host(&mut self) -> Result<(), ClientError> {
        if matches!(self.version, Version::HTTP_09 | Version::HTTP_10) {
            return Ok(());
        }
        if !self.headers.contains_key(HOST) {
            if let Some(host) = self.default_host() {
                self.headers.insert(HOST, host);
            }
        }
        if self.version != Version::HTTP_11 {
            return Ok(());
        }
        let mut hosts = self.headers.get_all(HOST).iter();
        let reason = match (hosts.next(), hosts.next()) {
            (None, _) => "an HTTP/1.1 request has no host field".to_owned(),
            (Some(_), Some(_)) => "an HTTP/1.1 request has more than one host field".to_owned(),
            (Some(host), None) => match Authority::try_from(host.as_bytes()) {
                Ok(authority)
                    if !authority.host().is_empty() && !authority.as_str().contains('@') =>
                {
                    return Ok(());
                }
                _ => format!("host field {host:?} is not a valid authority"),
            },
        };
        Err(ClientError::Rejected { reason })
    }

    /// The `host` a client sends: the authority of an absolute-form
    /// target, else the server's name, with the port unless it is the
    /// scheme's default.
    fn default_host(&self) -> Option<HeaderValue> {
        if let Some(authority) = self.uri.authority() {
            let host = match authority.port() {
                Some(port) => format!("{}:{port}", authority.host()),
                None => authority.host().to_owned(),
            };
            return HeaderValue::try_from(host).ok();
        }
        let (name, port) = self
            .server
            .as_ref()
            .map_or(("localhost", 80), |(name, port)| (name.as_str(), *port));
        let name = if name.contains(':') && !name.starts_with('[') {
            format!("[{name}]")
        } else {
            name.to_owned()
        };
        let host = if port == self.url_scheme.default_port() {
            name
        } else {
            format!("{name}:{port}")
        };
        HeaderValue::try_from(host).ok()
    }
}

/// How the body reaches the application.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Delivery<'a> {
    /// Through a blocking source (synchronous servers).
    Blocking,
    /// Through an asynchronous source fed by the client's network thread.
    Async(&'a Network),
}

impl Delivery<'_> {
    fn input(self, feed: &Arc<Feed>, length: Option<u64>) -> Input {
        match self {
            Delivery::Blocking => Input::new(PieceReader::new(Arc::clone(feed)), length),
            Delivery::Async(network) => {
                Input::from_async(PieceSource::new(Arc::clone(feed), network), length)
            }
        }
    }
}

/// A request made ready to run.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) environ: Environ,
    /// The body's pieces, to mark the response finished.
    pub(crate) feed: Option<Arc<Feed>>,
    /// The upgrade the request asks for, if it is one that can happen.
    pub(crate) upgrade: Option<UpgradeOffer>,
    /// The response state, with what the request's features allow
    /// enabled.
    pub(crate) state: ResponseState,
}
