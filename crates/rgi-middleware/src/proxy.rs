//! [`ProxyHeaders`]: the client's address, scheme and host as trusted
//! proxies forwarded them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::{FORWARDED, HOST};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use rgi::{Address, ConnectionInfo, Environ, EnvironError, Errors, TlsInfo};

use crate::middleware::{Incoming, Middleware};

/// Why a trusted-proxy list could not be parsed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustedProxiesError {
    /// An entry is neither an IP address nor `address/prefix-length`.
    #[error("not an IP address or CIDR block: {entry:?}")]
    Invalid {
        /// The entry as given.
        entry: String,
    },
}

/// Addresses and CIDR blocks whose forwarding fields are believed.
///
/// # Examples
///
/// ```
/// use rgi_middleware::TrustedProxies;
///
/// let trusted = TrustedProxies::parse(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])?;
/// assert!(trusted.contains("10.1.2.3".parse()?));
/// assert!(!trusted.contains("192.0.2.8".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    blocks: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses addresses (`192.0.2.7`, `::1`) and CIDR blocks
    /// (`10.0.0.0/8`, `fd00::/8`). An IPv4-mapped IPv6 peer
    /// (`::ffff:10.0.0.1`) is matched as its IPv4 address.
    ///
    /// # Errors
    ///
    /// [`TrustedProxiesError::Invalid`] for an entry that is neither, or
    /// whose prefix length is longer than the address.
    pub fn parse<I, S>(entries: I) -> Result<Self, TrustedProxiesError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut blocks = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            let invalid = || TrustedProxiesError::Invalid {
                entry: entry.to_owned(),
            };
            let (address, prefix) = match entry.split_once('/') {
                Some((address, prefix)) => (address, Some(prefix)),
                None => (entry, None),
            };
            let address: IpAddr = address.parse().map_err(|_| invalid())?;
            let width = if address.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(prefix) => prefix.parse::<u8>().map_err(|_| invalid())?,
                None => width,
            };
            if prefix > width {
                return Err(invalid());
            }
            blocks.push((normalise(address), prefix));
        }
        Ok(TrustedProxies { blocks })
    }

    /// Whether `address` is in one of the blocks.
    #[must_use]
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = normalise(address);
        self.blocks
            .iter()
            .any(|&(block, prefix)| in_block(address, block, prefix))
    }
}

fn normalise(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn in_block(address: IpAddr, block: IpAddr, prefix: u8) -> bool {
    match (address, block) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The client as trusted proxies declared it, put in the environ's
/// extensions by [`ProxyHeaders`] on every request it rewrites: the one
/// place the client's IP is when the fields gave no port.
///
/// # Examples
///
/// ```
/// use rgi_middleware::ForwardedClient;
///
/// fn client_ip(environ: &rgi::Environ) -> Option<std::net::IpAddr> {
///     match environ.extension::<ForwardedClient>() {
///         Some(client) => Some(client.ip),
///         None => environ.remote_addr().map(|peer| peer.ip()),
///     }
/// }
/// # let _ = client_ip;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardedClient {
    /// The client's IP address.
    pub ip: IpAddr,
    /// The client's port, when the field gave one (`Forwarded:
    /// for="[2001:db8::1]:4711"`); `X-Forwarded-For` usually does not.
    pub port: Option<u16>,
    /// The proxy that connected to this server, as its socket saw it.
    pub proxy: Option<Address>,
}

/// Which forwarding fields [`ProxyHeaders`] reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardingFields {
    /// `Forwarded` (RFC 7239) when the request has it, otherwise
    /// `X-Forwarded-For`, `-Proto` and `-Host`.
    #[default]
    Both,
    /// `Forwarded` only.
    Forwarded,
    /// `X-Forwarded-For`, `-Proto` and `-Host` only.
    XForwarded,
}

/// Rewrites the peer address, scheme and host the application sees from
/// the forwarding fields of trusted proxies.
///
/// Only a request whose peer (the socket address of the connection) is in
/// the [`TrustedProxies`] is rewritten; from anyone else the fields are
/// ignored and the environ is left exactly as the server built it. The
/// hops are read right to left: the peer vouches for the rightmost hop,
/// a trusted hop for the one left of it, and the first hop that is not a
/// trusted proxy is the client (all trusted: the leftmost). A field that
/// does not parse is ignored as a whole, never half-used; a chain that
/// reaches an obfuscated or `unknown` node before an untrusted address
/// leaves the address alone.
///
/// What changes, on a trusted request with a client found:
///
/// - A [`ForwardedClient`] in the environ's extensions: the client's IP,
///   its port if the field gave one, and the proxy.
/// - [`Environ::connection`]: a new [`ConnectionInfo`] for this request
///   (`RGI-CONN-8`). When the field gave the client's port
///   (`Forwarded: for="[2001:db8::1]:4711"`, `X-Forwarded-For:
///   203.0.113.9:5000`), its peer is [`Address::Proxied`], the client's
///   socket address with the proxy's own endpoint, so
///   [`Environ::remote_addr`] is the client's. Without a port (the usual
///   `X-Forwarded-For`, `Forwarded: for=192.0.2.60`) the peer is unknown
///   and `remote_addr` is `None`: RGI addresses are socket addresses, and
///   a made-up port is a placeholder the spec forbids (`RGI-CONN-7`,
///   `RGI-ENV-6`); the proxy's address would be wrong. Read the IP from
///   [`ForwardedClient`].
/// - The scheme: `https` from the client's hop gives the connection a
///   [`TlsInfo`] with nothing filled in (TLS ran between the client and
///   the proxy; nothing else about it is known, `RGI-CONN-7`), so
///   [`Environ::url_scheme`] is `https`; `http` removes the TLS
///   description.
/// - The host: the `Host` field (and the authority of an absolute-form
///   target) becomes the forwarded host, so
///   [`Environ::request_url`] is the URL the client asked for.
///   [`Environ::server_name`] stays the server's own name.
///
/// The environ is rebuilt for this ([`Environ::from_parts`]): extensions,
/// input, error stream and the mount point (`script_name`) carry over.
/// Put `ProxyHeaders` outermost, in front of any router that moves
/// `script_name`.
///
/// Which proxy's `X-Forwarded-Proto` and `-Host` to believe: a list as
/// long as `X-Forwarded-For` is read at the client's position (the proxy
/// that appended the client's address appended its scheme and host); a
/// single value is the edge proxy's; any other length is ambiguous and
/// ignored. `X-Forwarded-Proto` or `-Host` without `X-Forwarded-For` is
/// ignored: there is no client to attach it to. With `Forwarded`,
/// `proto` and `host` come from the element whose `for` is the client, and
/// a parameter repeated within one element makes the field malformed.
///
/// # Examples
///
/// ```
/// use rgi_middleware::{ForwardedClient, Middleware, ProxyHeaders, TrustedProxies};
/// use rgi_conformance::client::{TestClient, TestRequest};
///
/// let app = rgi::from_fn(|environ: rgi::Environ, start: &mut rgi::StartResponse<'_>| {
///     start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
///     let client = environ.extension::<ForwardedClient>().ok_or("not forwarded")?;
///     Ok(format!("{} {}", client.ip, environ.request_url()))
/// });
/// let app = ProxyHeaders::new(TrustedProxies::parse(["10.0.0.0/8"])?).wrap(app);
/// let response = TestClient::new(app).request(
///     TestRequest::get("/a")
///         .remote_addr("10.0.0.2:40000".parse()?)
///         .header(http::header::HOST, http::HeaderValue::from_static("internal"))
///         .header(http::header::FORWARDED, http::HeaderValue::from_static(r#"for=192.0.2.60;proto=https;host=shop.example"#)),
/// )?;
/// response.assert_ok_and_valid();
/// assert_eq!(response.text(), "192.0.2.60 https://shop.example/a");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ProxyHeaders {
    trusted: TrustedProxies,
    fields: ForwardingFields,
}

impl ProxyHeaders {
    /// Believes the forwarding fields of requests from `trusted`.
    #[must_use]
    pub fn new(trusted: TrustedProxies) -> Self {
        ProxyHeaders {
            trusted,
            fields: ForwardingFields::default(),
        }
    }

    /// Chooses the fields read.
    #[must_use]
    pub fn fields(mut self, fields: ForwardingFields) -> Self {
        self.fields = fields;
        self
    }

    /// What the trusted proxies say about the client, if anything usable.
    fn forwarded(&self, headers: &HeaderMap) -> Option<Client> {
        let standard = matches!(
            self.fields,
            ForwardingFields::Both | ForwardingFields::Forwarded
        );
        let legacy = matches!(
            self.fields,
            ForwardingFields::Both | ForwardingFields::XForwarded
        );
        if standard && headers.contains_key(FORWARDED) {
            return self.read_forwarded(headers);
        }
        if legacy {
            return self.read_x_forwarded(headers);
        }
        None
    }

    fn read_forwarded(&self, headers: &HeaderMap) -> Option<Client> {
        let mut elements = Vec::new();
        for value in headers.get_all(FORWARDED) {
            elements.extend(parse_forwarded(value.to_str().ok()?)?);
        }
        let index = self.client_index(elements.iter().map(|element| element.node))?;
        let element = elements.get(index)?;
        let Node::Ip(address) = element.node? else {
            return None;
        };
        Some(Client {
            address,
            https: element.https,
            host: element.host.clone(),
        })
    }

    fn read_x_forwarded(&self, headers: &HeaderMap) -> Option<Client> {
        let hops = list(headers, "x-forwarded-for")?;
        let nodes: Vec<Option<Node>> = hops.iter().map(|hop| parse_node(hop, false)).collect();
        if nodes.is_empty() || nodes.iter().any(Option::is_none) {
            return None;
        }
        let index = self.client_index(nodes.iter().copied())?;
        let Some(Node::Ip(address)) = nodes.get(index).copied().flatten() else {
            return None;
        };
        let at = |values: Option<Vec<String>>| -> Option<String> {
            let values = values?;
            match values.len() {
                1 => values.into_iter().next(),
                n if n == nodes.len() => values.into_iter().nth(index),
                _ => None,
            }
        };
        let https = at(list(headers, "x-forwarded-proto")).and_then(|proto| parse_proto(&proto));
        let host = at(list(headers, "x-forwarded-host")).and_then(|host| parse_host(&host));
        Some(Client {
            address,
            https,
            host,
        })
    }

    /// The index of the client among the hops: the rightmost that is not a
    /// trusted proxy, or the leftmost if all are. `None` when the walk
    /// meets a hop without a usable address first.
    fn client_index(
        &self,
        nodes: impl DoubleEndedIterator<Item = Option<Node>> + ExactSizeIterator,
    ) -> Option<usize> {
        let count = nodes.len();
        for (back, node) in nodes.rev().enumerate() {
            let index = count - 1 - back;
            match node {
                Some(Node::Ip(address)) if self.trusted.contains(address.ip()) && index > 0 => {}
                Some(Node::Ip(_)) => return Some(index),
                _ => return None,
            }
        }
        None
    }
}

/// The client as the trusted hops describe it.
struct Client {
    address: SocketAddr,
    https: Option<bool>,
    host: Option<Authority>,
}

/// One node of a forwarding chain: an address, or something that names no
/// address (`unknown`, an obfuscated `_name`).
#[derive(Clone, Copy, Debug)]
enum Node {
    Ip(SocketAddr),
    Hidden,
}

/// One `Forwarded` element; `node` is `None` when it has no `for`.
struct Element {
    node: Option<Node>,
    https: Option<bool>,
    host: Option<Authority>,
}

impl Middleware for ProxyHeaders {
    type State = ();

    fn on_request(&self, request: &mut Incoming<'_>) {
        let environ = request.environ();
        let Some(peer) = environ.remote_addr() else {
            return;
        };
        if !self.trusted.contains(peer.ip()) {
            return;
        }
        let Some(client) = self.forwarded(environ.headers()) else {
            return;
        };
        // The environ is rebuilt by value; a plain one stands in meanwhile.
        let Ok(stand_in) = Environ::builder().build() else {
            return;
        };
        let original = std::mem::replace(request.environ_mut(), stand_in);
        match rebuild(original, &client) {
            Ok(rebuilt) => *request.environ_mut() = rebuilt,
            Err(err) => {
                // Cannot happen for what was valid a moment ago (same
                // target, fields and input); were it to, the request is
                // refused rather than served with the stand-in.
                tracing::error!(%err, "proxy headers: the rebuilt environ is invalid");
                request.respond(StatusCode::BAD_REQUEST, "");
            }
        }
    }
}

/// The environ as the client's request.
fn rebuild(mut environ: Environ, client: &Client) -> Result<Environ, EnvironError> {
    let connection = environ.connection();
    let mut info = ConnectionInfo::new();
    // A socket address needs a port, and a placeholder port is not an
    // address (RGI-CONN-7, RGI-ENV-6): without one the peer is unknown and
    // the client's IP is in the `ForwardedClient` extension alone.
    let port = (client.address.port() != 0).then_some(client.address.port());
    if let (Some(peer), Some(_)) = (connection.peer_addr(), port) {
        info = info.with_peer_addr(Address::Proxied {
            address: client.address,
            proxy: Box::new(peer.clone()),
        });
    }
    let forwarded_client = ForwardedClient {
        ip: client.address.ip(),
        port,
        proxy: connection.peer_addr().cloned(),
    };
    if let Some(local) = connection.local_addr() {
        info = info.with_local_addr(local.clone());
    }
    let tls = match (client.https, connection.tls()) {
        (Some(false), _) => None,
        (Some(true), None) => Some(TlsInfo::new()),
        (_, tls) => tls.cloned(),
    };
    if let Some(tls) = tls {
        info = info.with_tls(tls);
    }
    let info = Arc::new(info);
    let server = Arc::clone(environ.server_info());
    let script_name = environ.script_name().len();
    let errors = environ.replace_errors(Errors::discard());
    let (mut parts, input) = environ.into_parts();
    if let Some(host) = &client.host {
        if let Ok(value) = HeaderValue::from_str(host.as_str()) {
            parts.headers.insert(HOST, value);
        }
        if parts.uri.authority().is_some() {
            let mut uri = parts.uri.clone().into_parts();
            uri.authority = Some(host.clone());
            if let Some(https) = client.https {
                uri.scheme = Some(if https { Scheme::HTTPS } else { Scheme::HTTP });
            }
            if let Ok(uri) = Uri::from_parts(uri) {
                parts.uri = uri;
            }
        }
    }
    let mut rebuilt = Environ::from_parts(parts, input, &server, &info)?;
    // A router in front moved segments into `script_name`; move them again.
    while rebuilt.script_name().len() < script_name {
        if rebuilt.shift_path().is_none() {
            break;
        }
    }
    rebuilt.replace_errors(errors);
    rebuilt.extensions_mut().insert(forwarded_client);
    Ok(rebuilt)
}

/// The comma-separated values of every line of `name`, trimmed; `None` if
/// absent, not text, or with an empty member.
fn list(headers: &HeaderMap, name: &str) -> Option<Vec<String>> {
    let mut values = Vec::new();
    for line in headers.get_all(name) {
        for member in line.to_str().ok()?.split(',') {
            let member = member.trim();
            if member.is_empty() {
                return None;
            }
            values.push(member.to_owned());
        }
    }
    (!values.is_empty()).then_some(values)
}

fn parse_proto(proto: &str) -> Option<bool> {
    if proto.eq_ignore_ascii_case("https") {
        Some(true)
    } else if proto.eq_ignore_ascii_case("http") {
        Some(false)
    } else {
        None
    }
}

fn parse_host(host: &str) -> Option<Authority> {
    let authority: Authority = host.parse().ok()?;
    // A host field names a host and port, never user information.
    (!authority.as_str().contains('@')).then_some(authority)
}

/// A node: `192.0.2.60`, `192.0.2.60:8080`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711`, a bare IPv6 address (`X-Forwarded-For` only),
/// `unknown`, or an obfuscated `_name` (`Forwarded` only).
fn parse_node(text: &str, rfc7239: bool) -> Option<Node> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(Node::Ip(address));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner
            .parse::<IpAddr>()
            .ok()
            .filter(IpAddr::is_ipv6)
            .map(|ip| Node::Ip(SocketAddr::new(ip, 0)));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        // RFC 7239 brackets every IPv6 address.
        if rfc7239 && ip.is_ipv6() {
            return None;
        }
        return Some(Node::Ip(SocketAddr::new(ip, 0)));
    }
    if rfc7239 {
        let name = text.split_once(':').map_or(text, |(name, _)| name);
        if name.eq_ignore_ascii_case("unknown")
            || (name.starts_with('_')
                && name.len() > 1
                && name[1..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'))
        {
            return Some(Node::Hidden);
        }
    }
    None
}

/// The elements of one `Forwarded` line (RFC 7239 §4): `None` if any part
/// does not parse, so that a malformed line is ignored whole.
fn parse_forwarded(line: &str) -> Option<Vec<Element>> {
    let mut elements = Vec::new();
    let mut element = Element {
        node: None,
        https: None,
        host: None,
    };
    let mut rest = line.trim_start();
    loop {
        let (name, after) = rest.split_once('=')?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return None;
        }
        let (value, after) = value(after.trim_start())?;
        // A parameter given twice in one element (RFC 7239 §4 forbids it)
        // makes the line malformed: which one to believe is anyone's guess.
        match name.to_ascii_lowercase().as_str() {
            "for" if element.node.is_none() => element.node = Some(parse_node(&value, true)?),
            "proto" if element.https.is_none() => element.https = Some(parse_proto(&value)?),
            "host" if element.host.is_none() => element.host = Some(parse_host(&value)?),
            "for" | "proto" | "host" => return None,
            _ => {}
        }
        let after = after.trim_start();
        if let Some(next) = after.strip_prefix(';') {
            rest = next.trim_start();
        } else if let Some(next) = after.strip_prefix(',') {
            elements.push(std::mem::replace(
                &mut element,
                Element {
                    node: None,
                    https: None,
                    host: None,
                },
            ));
            rest = next.trim_start();
        } else if after.is_empty() {
            break;
        } else {
            return None;
        }
    }
    elements.push(element);
    Some(elements)
}

/// A token or a quoted string, and what follows it.
fn value(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => return Some((out, &quoted[at + 1..])),
                '\\' => out.push(chars.next()?.1),
                c => out.push(c),
            }
        }
        return None;
    }
    let end = text
        .find(|c: char| !c.is_ascii() || !is_tchar(c as u8))
        .unwrap_or(text.len());
    if end == 0 {
        return None;
    }
    Some((text[..end].to_owned(), &text[end..]))
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}
