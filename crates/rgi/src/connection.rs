//! What the server knows about the connection a request arrived on.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// What the server knows about one connection, shared by every request that
/// arrives on it.
///
/// A server builds one `ConnectionInfo` when it accepts a connection (and,
/// for TLS, once the handshake is over), wraps it in an [`Arc`] and hands a
/// clone of that `Arc` to every [`Environ`](crate::Environ) of the
/// connection, so a request pays one reference count, never an allocation.
/// It fills in what it knows and nothing else: a field the server cannot
/// know stays `None` (spec/rgi.md, RGI-CONN-6 to RGI-CONN-12).
///
/// [`Environ::url_scheme`](crate::Environ::url_scheme) and
/// [`Environ::remote_addr`](crate::Environ::remote_addr) are derived from it.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use rgi::{Address, ConnectionInfo, TlsInfo, TlsVersion, UrlScheme};
///
/// let connection = Arc::new(
///     ConnectionInfo::new()
///         .with_peer_addr(Address::Tcp("192.0.2.7:50000".parse().unwrap()))
///         .with_local_addr(Address::Tcp("10.0.0.5:443".parse().unwrap()))
///         .with_tls(
///             TlsInfo::new()
///                 .with_version(TlsVersion::Tls1_3)
///                 .with_server_name("shop.example")
///                 .with_alpn_protocol(&b"h2"[..]),
///         ),
/// );
/// assert_eq!(connection.url_scheme(), UrlScheme::Https);
/// assert_eq!(connection.remote_addr(), Some("192.0.2.7:50000".parse().unwrap()));
/// assert_eq!(connection.tls().unwrap().server_name(), Some("shop.example"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    peer_addr: Option<Address>,
    local_addr: Option<Address>,
    tls: Option<TlsInfo>,
}

impl ConnectionInfo {
    /// Nothing known: no addresses, no TLS (plain `http`).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A shared value saying nothing is known, allocated once per process
    /// and then only cloned (the default of
    /// [`EnvironBuilder`](crate::EnvironBuilder)).
    pub(crate) fn shared_unknown() -> Arc<Self> {
        static UNKNOWN: OnceLock<Arc<ConnectionInfo>> = OnceLock::new();
        Arc::clone(UNKNOWN.get_or_init(|| Arc::new(Self::new())))
    }

    /// Sets the address of the peer (the client, or the address a trusted
    /// proxy gave for it).
    #[must_use]
    pub fn with_peer_addr(mut self, address: Address) -> Self {
        self.peer_addr = Some(address);
        self
    }

    /// Sets the server's own address for this connection.
    #[must_use]
    pub fn with_local_addr(mut self, address: Address) -> Self {
        self.local_addr = Some(address);
        self
    }

    /// Records that the connection runs over TLS, with what the handshake
    /// told the server.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsInfo) -> Self {
        self.tls = Some(tls);
        self
    }

    pub(crate) fn set_peer_addr(&mut self, address: Option<Address>) {
        self.peer_addr = address;
    }

    pub(crate) fn set_tls(&mut self, tls: Option<TlsInfo>) {
        self.tls = tls;
    }

    /// The peer's address, if the server knows one.
    #[must_use]
    pub fn peer_addr(&self) -> Option<&Address> {
        self.peer_addr.as_ref()
    }

    /// The server's own address for this connection, if known.
    #[must_use]
    pub fn local_addr(&self) -> Option<&Address> {
        self.local_addr.as_ref()
    }

    /// The TLS session, or `None` on a plain connection.
    #[must_use]
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// `Https` when the connection runs over TLS, `Http` otherwise.
    #[must_use]
    pub fn url_scheme(&self) -> UrlScheme {
        if self.tls.is_some() {
            UrlScheme::Https
        } else {
            UrlScheme::Http
        }
    }

    /// The peer's IP socket address: a TCP peer, or the client address a
    /// trusted proxy reported; `None` for a Unix-socket peer or when unknown.
    #[must_use]
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.peer_addr.as_ref().and_then(Address::socket_addr)
    }
}

/// An endpoint of a connection.
///
/// # Examples
///
/// ```
/// use rgi::{Address, UnixAddr};
///
/// let proxied = Address::Proxied {
///     address: "203.0.113.9:41000".parse().unwrap(),
///     proxy: Box::new(Address::Unix(UnixAddr::Unnamed)),
/// };
/// assert_eq!(proxied.socket_addr(), Some("203.0.113.9:41000".parse().unwrap()));
/// assert_eq!(Address::Unix(UnixAddr::Unnamed).socket_addr(), None);
/// ```
///
/// A later minor version may add kinds of endpoint (`[RGI-VER-2]`), so a
/// match outside this crate needs a wildcard arm; one without it does not
/// compile:
///
/// ```compile_fail,E0004
/// fn is_local(address: &rgi::Address) -> bool {
///     match address {
///         rgi::Address::Tcp(socket) => socket.ip().is_loopback(),
///         rgi::Address::Unix(_) => true,
///         rgi::Address::Proxied { .. } => false,
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A TCP (or UDP, for QUIC) socket address.
    Tcp(SocketAddr),
    /// A Unix-domain socket endpoint.
    Unix(UnixAddr),
    /// An address a trusted proxy declared for the whole connection (the
    /// PROXY protocol, version 1 or 2), never one merely claimed by a
    /// request's fields. `proxy` is the socket endpoint of the proxy that
    /// declared it.
    Proxied {
        /// The address the proxy declared.
        address: SocketAddr,
        /// The proxy's own endpoint, as the server's socket saw it.
        proxy: Box<Address>,
    },
}

impl Address {
    /// The IP socket address, for [`Address::Tcp`] and [`Address::Proxied`].
    #[must_use]
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(address) | Self::Proxied { address, .. } => Some(*address),
            Self::Unix(_) => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(address) => write!(formatter, "{address}"),
            Self::Unix(unix) => write!(formatter, "{unix}"),
            Self::Proxied { address, proxy } => write!(formatter, "{address} (via {proxy})"),
        }
    }
}

/// A Unix-domain socket endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnixAddr {
    /// A socket bound to a path in the file system.
    Pathname(PathBuf),
    /// A socket in Linux's abstract namespace: its name without the leading
    /// NUL byte.
    Abstract(Bytes),
    /// A socket bound to no name (the usual client side of a connection).
    Unnamed,
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pathname(path) => write!(formatter, "unix:{}", path.display()),
            Self::Abstract(name) => {
                write!(formatter, "unix:@{}", String::from_utf8_lossy(name))
            }
            Self::Unnamed => formatter.write_str("unix:(unnamed)"),
        }
    }
}

/// What a TLS handshake established, as far as the server knows it.
///
/// Every field is optional: a server fills in what its TLS layer reports
/// and nothing else (a proxy that terminated TLS may report only that TLS
/// was used).
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use rgi::{TlsInfo, TlsVersion};
///
/// let tls = TlsInfo::new()
///     .with_version(TlsVersion::Tls1_2)
///     .with_peer_certificates(vec![Bytes::from_static(b"\x30\x82")]);
/// assert_eq!(tls.version(), Some(TlsVersion::Tls1_2));
/// assert_eq!(tls.peer_certificates().len(), 1);
/// assert_eq!(tls.alpn_protocol(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    version: Option<TlsVersion>,
    server_name: Option<Box<str>>,
    alpn_protocol: Option<Bytes>,
    peer_certificates: Vec<Bytes>,
}

impl TlsInfo {
    /// TLS is on; nothing else is known yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the negotiated protocol version.
    #[must_use]
    pub fn with_version(mut self, version: TlsVersion) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the server name the client sent (SNI).
    #[must_use]
    pub fn with_server_name(mut self, server_name: impl Into<Box<str>>) -> Self {
        self.server_name = Some(server_name.into());
        self
    }

    /// Sets the protocol agreed by ALPN (`h2`, `http/1.1`, …), as its bytes.
    #[must_use]
    pub fn with_alpn_protocol(mut self, protocol: impl Into<Bytes>) -> Self {
        self.alpn_protocol = Some(protocol.into());
        self
    }

    /// Sets the certificate chain the client presented, each certificate in
    /// DER, the client's own first.
    #[must_use]
    pub fn with_peer_certificates(mut self, chain: Vec<Bytes>) -> Self {
        self.peer_certificates = chain;
        self
    }

    /// The negotiated protocol version, if known.
    #[must_use]
    pub fn version(&self) -> Option<TlsVersion> {
        self.version
    }

    /// The server name the client asked for (SNI), if it sent one.
    #[must_use]
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The ALPN protocol, if one was agreed.
    #[must_use]
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.alpn_protocol.as_deref()
    }

    /// The client's certificate chain in DER, its own certificate first;
    /// empty when it sent none.
    #[must_use]
    pub fn peer_certificates(&self) -> &[Bytes] {
        &self.peer_certificates
    }
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.0.
    Tls1_0,
    /// TLS 1.1.
    Tls1_1,
    /// TLS 1.2.
    Tls1_2,
    /// TLS 1.3.
    Tls1_3,
    /// Another version, by its wire code point (`0x0304` is TLS 1.3).
    Other(u16),
}

/// The `:protocol` pseudo-header of an extended CONNECT request (RFC 8441
/// on HTTP/2, RFC 9220 on HTTP/3), such as `websocket`: the extension value
/// by which a server passes that request to an application (RGI-H2-11).
///
/// [`Environ::from_parts`](crate::Environ::from_parts) and
/// [`EnvironBuilder::build`](crate::EnvironBuilder::build) refuse every
/// `CONNECT` request except one made over HTTP/2 or later, carrying this
/// extension and a path.
///
/// # Examples
///
/// ```
/// use http::{Method, Version};
/// use rgi::{ConnectProtocol, Environ};
///
/// let environ = Environ::builder()
///     .method(Method::CONNECT)
///     .version(Version::HTTP_2)
///     .uri(http::Uri::from_static("/chat"))
///     .extension(ConnectProtocol::from_static("websocket"))
///     .build()?;
/// let protocol = environ.extensions().get::<ConnectProtocol>();
/// assert_eq!(protocol.map(ConnectProtocol::as_str), Some("websocket"));
/// # Ok::<(), rgi::EnvironError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectProtocol(Cow<'static, str>);

impl ConnectProtocol {
    /// The protocol named by `value`, as the client sent it.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(Cow::Owned(value.into()))
    }

    /// The protocol named by a constant, without allocating.
    #[must_use]
    pub const fn from_static(value: &'static str) -> Self {
        Self(Cow::Borrowed(value))
    }

    /// The protocol's name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The scheme the request arrived over (`wsgi.url_scheme`).
///
/// This version of the specification produces only `Http` and `Https`
/// (`[RGI-ENV-7]`), but a later minor version may name another scheme
/// (`[RGI-VER-2]`), so a match outside this crate needs a wildcard arm; one
/// without it does not compile:
///
/// ```compile_fail,E0004
/// fn is_secure(scheme: rgi::UrlScheme) -> bool {
///     match scheme {
///         rgi::UrlScheme::Http => false,
///         rgi::UrlScheme::Https => true,
///     }
/// }
/// ```
///
/// [`UrlScheme::as_str`] and [`UrlScheme::default_port`] cover every
/// variant, so most code needs no match at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
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
