//! The PROXY protocol, versions 1 (text) and 2 (binary), as its specification
//! (`proxy-protocol.txt` of haproxy.org) defines it: a load balancer in front of the server writes
//! one header at the start of each connection that names the client it
//! accepted, before any TLS or HTTP byte.
//!
//! A header is believed only from a peer in the deployer's
//! [`TrustedProxies`] (`RGI-CONN-8`: `Address::Proxied` only for an address
//! a trusted proxy declared); the server does not look for one on any other
//! connection, whose first bytes are then HTTP or TLS like any other. From
//! a trusted peer the header is mandatory: a connection from a trusted
//! network that does not start with one is refused, because guessing
//! whether `PROXY ...` is a header or a request is exactly the kind of
//! double reading that smuggling lives on.
//!
//! [`parse`] judges bytes already in memory; [`read_proxy_header`] reads
//! the header off a socket, consuming exactly its bytes so that the next
//! read returns the first byte of the TLS or HTTP stream.
//!
//! ```
//! use std::net::SocketAddr;
//! use rgi_server::proxy_protocol::{Parsed, parse};
//!
//! let bytes = b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\nGET / HTTP/1.1\r\n";
//! let Parsed::Complete { header, length } = parse(bytes).unwrap() else { panic!() };
//! assert_eq!(length, 45);
//! assert_eq!(header.source(), Some("192.0.2.1:51000".parse::<SocketAddr>().unwrap()));
//! assert_eq!(&bytes[length..length + 3], b"GET");
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use rgi::{Address, TlsInfo, TlsVersion};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The 12 bytes every version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 header, its CRLF included (the specification's
/// figure: a `TCP6` line with the longest addresses and ports).
pub const V1_MAX_LEN: usize = 107;

/// The most bytes of addresses and TLVs a version 2 header may carry here.
/// The protocol allows 65,535; what proxies send (addresses, a few TLVs:
/// ALPN, authority, a cloud endpoint ID, TLS details) fits well inside
/// this, and a finite bound caps what one connection can make the server
/// buffer before a single HTTP byte.
pub const V2_MAX_PAYLOAD: usize = 4096;

const V2_FIXED: usize = 16;
const V1_PREFIX: &[u8] = b"PROXY ";
/// `PROXY UNKNOWN\r\n`, the shortest header of either version.
const MIN_HEADER: usize = 15;

/// Which version of the protocol a header used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyVersion {
    /// The text header.
    V1,
    /// The binary header.
    V2,
}

/// What the proxy declared about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    version: ProxyVersion,
    local: bool,
    addresses: Option<(SocketAddr, SocketAddr)>,
    details: Details,
}

/// What a version 2 header's TLVs told about the client's connection to
/// the proxy; empty for version 1 and `LOCAL`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Details {
    alpn: Option<Bytes>,
    authority: Option<Box<str>>,
    tls: Option<ProxiedTls>,
}

/// The TLS connection between the client and a proxy that terminated it,
/// as a version 2 header's `PP2_TYPE_SSL` record describes it (present only
/// when its `PP2_CLIENT_SSL` flag is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedTls {
    version: Option<Box<str>>,
    cipher: Option<Box<str>>,
    client_certificate: bool,
    verified: bool,
}

impl ProxiedTls {
    /// The protocol version as the proxy named it (`TLSv1.3`), if it did.
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The cipher as the proxy named it, if it did.
    #[must_use]
    pub fn cipher(&self) -> Option<&str> {
        self.cipher.as_deref()
    }

    /// Whether the client presented a certificate on this connection or an
    /// earlier one of the same TLS session.
    #[must_use]
    pub fn client_certificate(&self) -> bool {
        self.client_certificate
    }

    /// Whether the proxy verified the client's certificate: a certificate
    /// was presented and the proxy's check of it passed.
    #[must_use]
    pub fn verified(&self) -> bool {
        self.client_certificate && self.verified
    }

    /// The version as `rgi`'s [`TlsVersion`], when the proxy's name for it
    /// is one of the usual spellings.
    fn rgi_version(&self) -> Option<TlsVersion> {
        match self.version.as_deref()? {
            "TLSv1" | "TLSv1.0" => Some(TlsVersion::Tls1_0),
            "TLSv1.1" => Some(TlsVersion::Tls1_1),
            "TLSv1.2" => Some(TlsVersion::Tls1_2),
            "TLSv1.3" => Some(TlsVersion::Tls1_3),
            _ => None,
        }
    }
}

impl ProxyHeader {
    /// The protocol version of the header.
    #[must_use]
    pub fn version(&self) -> ProxyVersion {
        self.version
    }

    /// Whether the proxy opened the connection on its own behalf (the
    /// version 2 `LOCAL` command: a health check, say), in which case the
    /// socket's own addresses are the true ones.
    #[must_use]
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The client's address as the proxy saw it, when the header declared
    /// an IPv4 or IPv6 one. `None` for `LOCAL`, for version 1 `UNKNOWN`
    /// and for version 2 families without an IP address (`UNSPEC`, `UNIX`),
    /// where the specification tells the receiver to keep the socket's
    /// addresses.
    #[must_use]
    pub fn source(&self) -> Option<SocketAddr> {
        self.addresses.map(|(source, _)| source)
    }

    /// The address the client connected to, on the proxy, under the same
    /// conditions as [`source`](Self::source).
    #[must_use]
    pub fn destination(&self) -> Option<SocketAddr> {
        self.addresses.map(|(_, destination)| destination)
    }

    /// The protocol the client agreed with the proxy through ALPN
    /// (`PP2_TYPE_ALPN`), if the header carried one.
    #[must_use]
    pub fn alpn(&self) -> Option<&[u8]> {
        self.details.alpn.as_deref()
    }

    /// The host name the client gave the proxy (`PP2_TYPE_AUTHORITY`,
    /// typically its TLS SNI), if the header carried one.
    #[must_use]
    pub fn authority(&self) -> Option<&str> {
        self.details.authority.as_deref()
    }

    /// The client's TLS connection to the proxy, when the proxy terminated
    /// TLS and said so (`PP2_TYPE_SSL` with `PP2_CLIENT_SSL`).
    #[must_use]
    pub fn tls(&self) -> Option<&ProxiedTls> {
        self.details.tls.as_ref()
    }

    /// The connection's TLS information for its `rgi::ConnectionInfo` when
    /// the proxy terminated TLS: the client spoke TLS, so its URL scheme is
    /// `https` (`RGI-CONN-7`), with the version, the server name (from the
    /// authority record) and the ALPN protocol the header declared. The
    /// client's certificate itself is not carried by the protocol.
    ///
    /// ```
    /// use rgi::TlsVersion;
    /// use rgi_server::proxy_protocol::{Parsed, parse};
    ///
    /// let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    /// let mut payload = vec![192, 0, 2, 1, 198, 51, 100, 2, 0xc7, 0x38, 0x01, 0xbb];
    /// payload.extend_from_slice(&[0x02, 0, 11]);
    /// payload.extend_from_slice(b"example.com");
    /// // PP2_TYPE_SSL: client flags (PP2_CLIENT_SSL), verify, PP2_SUBTYPE_SSL_VERSION.
    /// payload.extend_from_slice(&[0x20, 0, 15, 0x01, 0, 0, 0, 0, 0x21, 0, 7]);
    /// payload.extend_from_slice(b"TLSv1.3");
    /// header.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    /// header.extend_from_slice(&payload);
    /// let Parsed::Complete { header, .. } = parse(&header).unwrap() else { panic!() };
    /// let tls = header.tls_info().unwrap();
    /// assert_eq!(tls.version(), Some(TlsVersion::Tls1_3));
    /// assert_eq!(tls.server_name(), Some("example.com"));
    /// ```
    #[must_use]
    pub fn tls_info(&self) -> Option<TlsInfo> {
        let tls = self.details.tls.as_ref()?;
        let mut info = TlsInfo::new();
        if let Some(version) = tls.rgi_version() {
            info = info.with_version(version);
        }
        if let Some(authority) = &self.details.authority {
            info = info.with_server_name(authority.clone());
        }
        if let Some(alpn) = &self.details.alpn {
            info = info.with_alpn_protocol(alpn.clone());
        }
        Some(info)
    }

    /// The connection's peer address for its `rgi::ConnectionInfo`:
    /// `Address::Proxied` naming the declared client and `proxy`, the
    /// socket's own peer, when the header declared a client, and `proxy`
    /// unchanged when it did not.
    ///
    /// ```
    /// use rgi::Address;
    /// use rgi_server::proxy_protocol::{Parsed, parse};
    ///
    /// let Parsed::Complete { header, .. } =
    ///     parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n").unwrap() else { panic!() };
    /// let proxy = Address::Tcp("10.0.0.5:40000".parse().unwrap());
    /// let peer = header.peer_address(proxy.clone());
    /// assert_eq!(peer.socket_addr(), Some("192.0.2.1:51000".parse().unwrap()));
    /// assert!(matches!(peer, Address::Proxied { proxy: p, .. } if *p == proxy));
    /// ```
    #[must_use]
    pub fn peer_address(&self, proxy: Address) -> Address {
        match self.source() {
            Some(address) => Address::Proxied {
                address,
                proxy: Box::new(proxy),
            },
            None => proxy,
        }
    }

    /// The connection's local address for its `rgi::ConnectionInfo`, like
    /// [`peer_address`](Self::peer_address) with the declared destination
    /// and the socket's own local address.
    #[must_use]
    pub fn local_address(&self, socket_local: Address) -> Address {
        match self.destination() {
            Some(address) => Address::Proxied {
                address,
                proxy: Box::new(socket_local),
            },
            None => socket_local,
        }
    }
}

/// The outcome of [`parse`] on the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, `length` bytes long; the connection's own bytes
    /// start right after it.
    Complete {
        /// What the header declared.
        header: ProxyHeader,
        /// The header's length in bytes.
        length: usize,
    },
    /// The bytes so far start a valid header but do not finish it; every
    /// one of them belongs to the header.
    Incomplete,
}

/// Why a PROXY header was refused. The connection is closed without a
/// response: the peer is a proxy, not an HTTP client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The connection does not start with either version's signature.
    #[error("the connection does not start with a PROXY protocol header")]
    NotProxyProtocol,
    /// A version 1 line longer than 107 bytes.
    #[error("a PROXY v1 header longer than {V1_MAX_LEN} bytes")]
    V1TooLong,
    /// A version 1 line that breaks the grammar.
    #[error("invalid PROXY v1 header: {0}")]
    V1Syntax(&'static str),
    /// A version 2 header with a version nibble other than 2.
    #[error("PROXY v2 header with version {0}")]
    V2Version(u8),
    /// A version 2 command other than `LOCAL` (0) and `PROXY` (1).
    #[error("PROXY v2 header with the unknown command {0}")]
    V2Command(u8),
    /// A version 2 address family or transport the specification does not
    /// define.
    #[error("PROXY v2 header with the unknown family and transport byte {0:#04x}")]
    V2Family(u8),
    /// A version 2 length too short for the addresses of its family.
    #[error("PROXY v2 header of {length} bytes cannot hold the {needed} bytes of its addresses")]
    V2TooShort {
        /// The declared length.
        length: usize,
        /// What the family's addresses take.
        needed: usize,
    },
    /// A version 2 length above [`V2_MAX_PAYLOAD`].
    #[error("PROXY v2 header declares {0} bytes, more than {V2_MAX_PAYLOAD}")]
    V2TooLong(usize),
    /// A TLV that runs past the end of the header, or one the server reads
    /// (ALPN, authority, TLS) whose value is malformed.
    #[error("PROXY v2 TLV at offset {0} runs past the end of the header or is malformed")]
    V2Tlv(usize),
    /// The peer closed the connection before the header was complete.
    #[error("the connection closed in the middle of a PROXY header")]
    Closed,
    /// The header did not arrive within the allowed time.
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    /// Reading the socket failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Parses a PROXY header at the start of `buf`.
///
/// # Errors
///
/// A [`ProxyError`] when the bytes cannot start a valid header of either
/// version; this is decided as early as the bytes allow, so that a peer
/// that is not a proxy is refused without waiting for more.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let signature_len = buf.len().min(V2_SIGNATURE.len());
    if buf[..signature_len] == V2_SIGNATURE[..signature_len] {
        if buf.len() < V2_SIGNATURE.len() {
            // Both signatures start differently: no need to consider v1.
            return Ok(Parsed::Incomplete);
        }
        return parse_v2(buf);
    }
    let prefix_len = buf.len().min(V1_PREFIX.len());
    if buf[..prefix_len] == V1_PREFIX[..prefix_len] {
        if buf.len() < V1_PREFIX.len() {
            return Ok(Parsed::Incomplete);
        }
        return parse_v1(buf);
    }
    Err(ProxyError::NotProxyProtocol)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(newline) = window.iter().position(|&byte| byte == b'\n') else {
        if window.contains(&b'\r') && !window.ends_with(b"\r") {
            return Err(ProxyError::V1Syntax("a CR not followed by LF"));
        }
        return if buf.len() >= V1_MAX_LEN {
            Err(ProxyError::V1TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let Some(line) = window[..newline].strip_suffix(b"\r") else {
        return Err(ProxyError::V1Syntax("the line does not end in CRLF"));
    };
    let length = newline + 1;
    let line = std::str::from_utf8(&line[V1_PREFIX.len()..])
        .map_err(|_| ProxyError::V1Syntax("bytes that are not ASCII"))?;
    let mut fields = line.split(' ');
    let protocol = fields.next().unwrap_or_default();
    let addresses = match protocol {
        // UNKNOWN may be followed by anything up to the CRLF, which the
        // receiver ignores.
        "UNKNOWN" => None,
        "TCP4" | "TCP6" => {
            let mut next = || {
                fields
                    .next()
                    .ok_or(ProxyError::V1Syntax("fewer than four address fields"))
            };
            let (source, destination) = (next()?, next()?);
            let (source_port, destination_port) = (next()?, next()?);
            if fields.next().is_some() {
                return Err(ProxyError::V1Syntax("more than four address fields"));
            }
            let ip = |text: &str| -> Result<IpAddr, ProxyError> {
                if protocol == "TCP4" {
                    text.parse::<Ipv4Addr>()
                        .map(IpAddr::V4)
                        .map_err(|_| ProxyError::V1Syntax("an invalid IPv4 address"))
                } else {
                    text.parse::<Ipv6Addr>()
                        .map(IpAddr::V6)
                        .map_err(|_| ProxyError::V1Syntax("an invalid IPv6 address"))
                }
            };
            Some((
                SocketAddr::new(ip(source)?, v1_port(source_port)?),
                SocketAddr::new(ip(destination)?, v1_port(destination_port)?),
            ))
        }
        _ => {
            return Err(ProxyError::V1Syntax(
                "a protocol other than TCP4, TCP6, UNKNOWN",
            ));
        }
    };
    Ok(Parsed::Complete {
        header: ProxyHeader {
            version: ProxyVersion::V1,
            local: false,
            addresses,
            details: Details::default(),
        },
        length,
    })
}

/// A port in decimal, 0 to 65535, without a sign or leading zeros.
fn v1_port(text: &str) -> Result<u16, ProxyError> {
    let invalid = ProxyError::V1Syntax("an invalid port");
    let digits_only = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits_only || (text.len() > 1 && text.starts_with('0')) {
        return Err(invalid);
    }
    text.parse().map_err(|_| invalid)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    // The fixed part: signature, version and command, family and
    // transport, length.
    if let Some(&version_command) = buf.get(12) {
        let version = version_command >> 4;
        if version != 2 {
            return Err(ProxyError::V2Version(version));
        }
        let command = version_command & 0x0f;
        if command > 1 {
            return Err(ProxyError::V2Command(command));
        }
    }
    let family_byte = buf.get(13).copied();
    let address_len = match family_byte {
        None => None,
        Some(byte) => Some(v2_address_len(byte)?),
    };
    let (Some(&high), Some(&low)) = (buf.get(14), buf.get(15)) else {
        return Ok(Parsed::Incomplete);
    };
    let payload = usize::from(u16::from_be_bytes([high, low]));
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyError::V2TooLong(payload));
    }
    let local = buf[12] & 0x0f == 0;
    let needed = address_len.unwrap_or(0);
    // LOCAL carries no meaningful addresses, but whatever length it
    // declares is still part of the header and skipped.
    if !local && payload < needed {
        return Err(ProxyError::V2TooShort {
            length: payload,
            needed,
        });
    }
    let length = V2_FIXED + payload;
    let Some(body) = buf.get(V2_FIXED..length) else {
        return Ok(Parsed::Incomplete);
    };
    let (addresses, tlvs) = if local {
        (None, None)
    } else {
        let addresses = v2_addresses(family_byte.unwrap_or(0), body);
        (addresses, body.get(needed..))
    };
    let details = match tlvs {
        Some(tlvs) => read_tlvs(tlvs, V2_FIXED + needed)?,
        None => Details::default(),
    };
    Ok(Parsed::Complete {
        header: ProxyHeader {
            version: ProxyVersion::V2,
            local,
            addresses,
            details,
        },
        length,
    })
}

/// The bytes of addresses each family and transport carries, or an error
/// for a combination the specification does not define.
fn v2_address_len(byte: u8) -> Result<usize, ProxyError> {
    // UNSPEC goes with UNSPEC only; each address family with STREAM (1)
    // or DGRAM (2).
    match byte {
        0x00 => Ok(0),
        0x11 | 0x12 => Ok(12),
        0x21 | 0x22 => Ok(36),
        0x31 | 0x32 => Ok(216),
        _ => Err(ProxyError::V2Family(byte)),
    }
}

/// The source and destination of an IPv4 or IPv6 block; `None` for the
/// families without IP addresses, whose connections keep the socket's own.
fn v2_addresses(family: u8, body: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let port = |bytes: &[u8]| -> Option<u16> { Some(u16::from_be_bytes(bytes.try_into().ok()?)) };
    match family >> 4 {
        1 => {
            let source: [u8; 4] = body.get(0..4)?.try_into().ok()?;
            let destination: [u8; 4] = body.get(4..8)?.try_into().ok()?;
            Some((
                SocketAddr::new(IpAddr::from(source), port(body.get(8..10)?)?),
                SocketAddr::new(IpAddr::from(destination), port(body.get(10..12)?)?),
            ))
        }
        2 => {
            let source: [u8; 16] = body.get(0..16)?.try_into().ok()?;
            let destination: [u8; 16] = body.get(16..32)?.try_into().ok()?;
            Some((
                SocketAddr::new(IpAddr::from(source), port(body.get(32..34)?)?),
                SocketAddr::new(IpAddr::from(destination), port(body.get(34..36)?)?),
            ))
        }
        _ => None,
    }
}

/// `PP2_TYPE_ALPN`, `PP2_TYPE_AUTHORITY` and `PP2_TYPE_SSL`.
const TLV_ALPN: u8 = 0x01;
const TLV_AUTHORITY: u8 = 0x02;
const TLV_SSL: u8 = 0x20;
/// Sub-records of `PP2_TYPE_SSL`: the version and the cipher names.
const SSL_VERSION: u8 = 0x21;
const SSL_CIPHER: u8 = 0x23;
/// Flags of `PP2_TYPE_SSL`'s client byte.
const CLIENT_SSL: u8 = 0x01;
const CLIENT_CERT_CONN: u8 = 0x02;
const CLIENT_CERT_SESS: u8 = 0x04;

/// Walks the type-length-value records in `tlvs` (which start `offset`
/// bytes into the header), calling `each` with every record's type, value
/// and offset; every record must fit inside `tlvs`.
fn walk_tlvs(
    mut tlvs: &[u8],
    mut offset: usize,
    mut each: impl FnMut(u8, &[u8], usize) -> Result<(), ProxyError>,
) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let [kind, high, low, rest @ ..] = tlvs else {
            return Err(ProxyError::V2Tlv(offset));
        };
        let value_len = usize::from(u16::from_be_bytes([*high, *low]));
        let Some(value) = rest.get(..value_len) else {
            return Err(ProxyError::V2Tlv(offset));
        };
        each(*kind, value, offset)?;
        tlvs = &rest[value_len..];
        offset += 3 + value_len;
    }
    Ok(())
}

/// Reads the records a server acts on (ALPN, authority, TLS) and checks
/// that every record fits inside the header; other types are skipped, as
/// the specification asks. A record the server reads must be well formed:
/// a trusted proxy that sends a broken one is refused rather than guessed
/// at.
fn read_tlvs(tlvs: &[u8], offset: usize) -> Result<Details, ProxyError> {
    let mut details = Details::default();
    walk_tlvs(tlvs, offset, |kind, value, at| {
        match kind {
            TLV_ALPN if !value.is_empty() => {
                details.alpn = Some(Bytes::copy_from_slice(value));
            }
            TLV_AUTHORITY => details.authority = Some(text(value, at)?),
            TLV_SSL => details.tls = read_ssl(value, at)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(details)
}

/// A `PP2_TYPE_SSL` value: a client flags byte, a 32-bit verify result
/// (0 when a client certificate was verified), then sub-records. `None`
/// when the client did not use TLS (no `PP2_CLIENT_SSL`).
fn read_ssl(value: &[u8], at: usize) -> Result<Option<ProxiedTls>, ProxyError> {
    let [client, v0, v1, v2, v3, subrecords @ ..] = value else {
        return Err(ProxyError::V2Tlv(at));
    };
    let mut tls = ProxiedTls {
        version: None,
        cipher: None,
        client_certificate: client & (CLIENT_CERT_CONN | CLIENT_CERT_SESS) != 0,
        verified: u32::from_be_bytes([*v0, *v1, *v2, *v3]) == 0,
    };
    // The sub-records start 3 (type, length) + 5 bytes into the record.
    walk_tlvs(subrecords, at + 8, |kind, value, at| {
        match kind {
            SSL_VERSION => tls.version = Some(text(value, at)?),
            SSL_CIPHER => tls.cipher = Some(text(value, at)?),
            _ => {}
        }
        Ok(())
    })?;
    Ok((client & CLIENT_SSL != 0).then_some(tls))
}

/// A record's value as text: printable ASCII only, since the names it
/// carries (host names, TLS versions, cipher names) are.
fn text(value: &[u8], at: usize) -> Result<Box<str>, ProxyError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_graphic) {
        return Err(ProxyError::V2Tlv(at));
    }
    std::str::from_utf8(value)
        .map(Box::from)
        .map_err(|_| ProxyError::V2Tlv(at))
}

/// Reads a PROXY header from the start of `stream`, consuming exactly its
/// bytes: the next read of `stream` returns the first byte after it.
///
/// The bytes are peeked first, so a header that arrives in one segment
/// (what proxies send) costs one peek and one read; bytes of a header that
/// is still incomplete are consumed as they arrive, since every one of them
/// belongs to it.
///
/// # Errors
///
/// [`ProxyError::Timeout`] when no complete header arrives within
/// `timeout`, [`ProxyError::Closed`] when the peer closes first,
/// [`ProxyError::Io`] when reading fails, and the parse errors of
/// [`parse`].
///
/// # Cancel safety
///
/// Not cancel safe: a future dropped part-way may already have consumed
/// some of the header's bytes, after which the connection is unusable and
/// should be closed.
pub async fn read_proxy_header(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<ProxyHeader, ProxyError> {
    match tokio::time::timeout(timeout, read_header(stream)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::Timeout(timeout)),
    }
}

async fn read_header(stream: &mut TcpStream) -> Result<ProxyHeader, ProxyError> {
    // The largest header this module accepts, so that one peek can see it.
    let mut peeked = vec![0u8; V2_FIXED + V2_MAX_PAYLOAD];
    let mut consumed: Vec<u8> = Vec::with_capacity(MIN_HEADER);
    loop {
        let room = peeked.len() - consumed.len();
        let seen = stream.peek(&mut peeked[..room]).await?;
        if seen == 0 {
            return Err(ProxyError::Closed);
        }
        let mut view = consumed.clone();
        view.extend_from_slice(&peeked[..seen]);
        match parse(&view)? {
            Parsed::Complete { header, length } => {
                let rest = length - consumed.len();
                stream.read_exact(&mut peeked[..rest]).await?;
                return Ok(header);
            }
            Parsed::Incomplete => {
                // All of it is header; taking it off the socket makes the
                // next peek wait for new bytes instead of spinning.
                stream.read_exact(&mut peeked[..seen]).await?;
                consumed.extend_from_slice(&peeked[..seen]);
            }
        }
    }
}

/// A network of trusted proxies: an address and a prefix length.
///
/// ```
/// use rgi_server::proxy_protocol::Cidr;
///
/// let net: Cidr = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// let one: Cidr = "::1".parse().unwrap();
/// assert!(one.contains("::1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// The address part is not an IP address.
    #[error("\"{0}\" is not an IP address")]
    Address(String),
    /// The prefix length is not a number or too long for the family.
    #[error("invalid prefix length \"{0}\"")]
    Prefix(String),
    /// Bits are set beyond the prefix, which usually means a typo.
    #[error("{0} has host bits set beyond its prefix")]
    HostBits(String),
}

impl Cidr {
    /// A network from its address and prefix length.
    ///
    /// # Errors
    ///
    /// [`CidrError::Prefix`] when `prefix` is longer than the address, and
    /// [`CidrError::HostBits`] when the address has bits set past it.
    pub fn new(network: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let bits = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix > bits {
            return Err(CidrError::Prefix(prefix.to_string()));
        }
        if masked(network, prefix) != network {
            return Err(CidrError::HostBits(format!("{network}/{prefix}")));
        }
        Ok(Cidr { network, prefix })
    }

    /// Whether `address` lies in this network. An IPv4-mapped IPv6 address
    /// (what a dual-stack listener reports for an IPv4 peer) counts as the
    /// IPv4 address it maps.
    #[must_use]
    pub fn contains(&self, address: IpAddr) -> bool {
        self.contains_same_family(address.to_canonical())
    }

    fn contains_same_family(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                masked(address, self.prefix) == self.network
            }
            _ => false,
        }
    }
}

fn masked(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| CidrError::Address(address.to_owned()))?;
        let prefix = match prefix {
            None => match network {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            },
            Some(digits) => {
                if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                    return Err(CidrError::Prefix(digits.to_owned()));
                }
                digits
                    .parse()
                    .map_err(|_| CidrError::Prefix(digits.to_owned()))?
            }
        };
        Cidr::new(network, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The networks whose connections must start with a PROXY header. Empty by
/// default: nobody is trusted until the deployer says so.
///
/// ```
/// use rgi_server::proxy_protocol::TrustedProxies;
///
/// let trusted = TrustedProxies::parse(["10.0.0.0/8", "192.0.2.7", "fd00::/8"]).unwrap();
/// assert!(trusted.trusts("10.9.9.9".parse().unwrap()));
/// assert!(trusted.trusts("::ffff:192.0.2.7".parse().unwrap()));
/// assert!(!trusted.trusts("192.0.2.8".parse().unwrap()));
/// assert!(!TrustedProxies::default().trusts("127.0.0.1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Cidr>,
}

impl TrustedProxies {
    /// No trusted proxy.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the networks written as `address/prefix` or a bare address.
    ///
    /// # Errors
    ///
    /// The first [`CidrError`] among them.
    pub fn parse<I, S>(networks: I) -> Result<Self, CidrError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let networks = networks
            .into_iter()
            .map(|network| network.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { networks })
    }

    /// Adds a network.
    #[must_use]
    pub fn with(mut self, network: Cidr) -> Self {
        self.networks.push(network);
        self
    }

    /// Whether a connection from `peer` must carry a PROXY header.
    #[must_use]
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(peer))
    }

    /// Whether no network is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The trusted networks.
    #[must_use]
    pub fn networks(&self) -> &[Cidr] {
        &self.networks
    }
}

impl FromIterator<Cidr> for TrustedProxies {
    fn from_iter<I: IntoIterator<Item = Cidr>>(networks: I) -> Self {
        TrustedProxies {
            networks: networks.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    fn complete(bytes: &[u8]) -> (ProxyHeader, usize) {
        match parse(bytes).unwrap() {
            Parsed::Complete { header, length } => (header, length),
            Parsed::Incomplete => panic!("incomplete: {bytes:?}"),
        }
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.push(0x20 | command);
        bytes.push(family);
        bytes.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    fn v4_block() -> Vec<u8> {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2];
        body.extend_from_slice(&51000u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body
    }

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let (header, length) = complete(b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\nrest");
        assert_eq!(length, 45);
        assert_eq!(header.version(), ProxyVersion::V1);
        assert_eq!(header.source(), Some("192.0.2.1:51000".parse().unwrap()));
        assert_eq!(
            header.destination(),
            Some("198.51.100.2:443".parse().unwrap())
        );
        let (header, _) = complete(b"PROXY TCP6 2001:db8::1 ::1 0 65535\r\n");
        assert_eq!(header.source(), Some("[2001:db8::1]:0".parse().unwrap()));
        let (header, length) = complete(b"PROXY UNKNOWN whatever follows\r\nX");
        assert_eq!(header.source(), None);
        assert_eq!(length, 32);
        let (header, _) = complete(b"PROXY UNKNOWN\r\n");
        assert!(!header.is_local());
    }

    #[test]
    fn v1_refusals() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 51000\r\n"[..],
            b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443 9\r\n",
            b"PROXY TCP4 192.0.2.1  198.51.100.2 51000 443\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 051000 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 +1 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1 443\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1\r443\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.2 1 443\r\n",
            b"PROXY tcp4 192.0.2.1 198.51.100.2 1 443\r\n",
            b"PROXY TCP4 010.0.0.1 198.51.100.2 1 443\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyError::V1Syntax(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(bad),
                parse(bad)
            );
        }
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n"),
            Err(ProxyError::NotProxyProtocol)
        ));
        assert!(matches!(parse(b"PROXX"), Err(ProxyError::NotProxyProtocol)));
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN, b'x');
        assert!(matches!(parse(&long), Err(ProxyError::V1TooLong)));
        // At exactly 107 bytes with its CRLF it is still a header.
        long.truncate(V1_MAX_LEN - 2);
        long.extend_from_slice(b"\r\n");
        assert_eq!(complete(&long).1, V1_MAX_LEN);
    }

    #[test]
    fn prefixes_are_incomplete() {
        let whole = b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n";
        for end in 0..whole.len() {
            assert_eq!(parse(&whole[..end]).unwrap(), Parsed::Incomplete, "{end}");
        }
        let whole = v2(1, 0x11, &v4_block());
        for end in 0..whole.len() {
            assert_eq!(parse(&whole[..end]).unwrap(), Parsed::Incomplete, "{end}");
        }
    }

    #[test]
    fn v2_inet_inet6_local_and_tlvs() {
        let mut bytes = v2(1, 0x11, &v4_block());
        bytes.extend_from_slice(b"GET");
        let (header, length) = complete(&bytes);
        assert_eq!(length, 28);
        assert_eq!(header.version(), ProxyVersion::V2);
        assert_eq!(header.source(), Some("192.0.2.1:51000".parse().unwrap()));
        assert_eq!(
            header.destination(),
            Some("198.51.100.2:443".parse().unwrap())
        );

        let mut body = Vec::new();
        body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        body.extend_from_slice(&7u16.to_be_bytes());
        body.extend_from_slice(&8u16.to_be_bytes());
        // Two TLVs: an ALPN and an empty NOOP.
        body.extend_from_slice(&[0x01, 0, 2, b'h', b'2', 0x04, 0, 0]);
        let (header, length) = complete(&v2(1, 0x21, &body));
        assert_eq!(length, 16 + 36 + 8);
        assert_eq!(header.source(), Some("[2001:db8::1]:7".parse().unwrap()));

        let (header, length) = complete(&v2(0, 0x00, &[]));
        assert!(header.is_local());
        assert_eq!(header.source(), None);
        assert_eq!(length, 16);
        // LOCAL with addresses: skipped, not used.
        let (header, _) = complete(&v2(0, 0x11, &v4_block()));
        assert!(header.is_local() && header.source().is_none());
        // UNIX: the socket's addresses stay.
        let (header, length) = complete(&v2(1, 0x31, &[0u8; 216]));
        assert_eq!((header.source(), length), (None, 232));
        // UNSPEC with PROXY: no addresses.
        assert_eq!(complete(&v2(1, 0x00, &[])).0.source(), None);
    }

    /// A record of `kind` with `value`.
    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(value);
        bytes
    }

    /// A `PP2_TYPE_SSL` value: client flags, verify result, sub-records.
    fn ssl(client: u8, verify: u32, subrecords: &[u8]) -> Vec<u8> {
        let mut value = vec![client];
        value.extend_from_slice(&verify.to_be_bytes());
        value.extend_from_slice(subrecords);
        tlv(0x20, &value)
    }

    #[test]
    fn v2_tls_terminated_by_the_proxy() {
        let mut body = v4_block();
        body.extend(tlv(0x01, b"h2"));
        body.extend(tlv(0x02, b"www.example.com"));
        let mut subrecords = tlv(0x21, b"TLSv1.2");
        subrecords.extend(tlv(0x23, b"ECDHE-RSA-AES128-GCM-SHA256"));
        subrecords.extend(tlv(0x22, b"client common name"));
        // PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, verified.
        body.extend(ssl(0x03, 0, &subrecords));
        let (header, _) = complete(&v2(1, 0x11, &body));
        assert_eq!(header.alpn(), Some(&b"h2"[..]));
        assert_eq!(header.authority(), Some("www.example.com"));
        let tls = header.tls().unwrap();
        assert_eq!(tls.version(), Some("TLSv1.2"));
        assert_eq!(tls.cipher(), Some("ECDHE-RSA-AES128-GCM-SHA256"));
        assert!(tls.client_certificate() && tls.verified());
        let info = header.tls_info().unwrap();
        assert_eq!(info.version(), Some(rgi::TlsVersion::Tls1_2));
        assert_eq!(info.server_name(), Some("www.example.com"));
        assert_eq!(info.alpn_protocol(), Some(&b"h2"[..]));
        let connection = rgi::ConnectionInfo::new().with_tls(info);
        assert_eq!(connection.url_scheme(), rgi::UrlScheme::Https);

        // A certificate whose check failed (verify != 0) is not verified.
        let mut body = v4_block();
        body.extend(ssl(0x05, 1, &[]));
        let (header, _) = complete(&v2(1, 0x11, &body));
        let tls = header.tls().unwrap();
        assert!(tls.client_certificate() && !tls.verified());
        assert_eq!(tls.version(), None);
        assert_eq!(header.tls_info().unwrap().version(), None);
    }

    #[test]
    fn v2_without_tls_to_the_proxy() {
        // No SSL record, or one without PP2_CLIENT_SSL: plain text.
        let mut body = v4_block();
        body.extend(tlv(0x02, b"www.example.com"));
        let (header, _) = complete(&v2(1, 0x11, &body));
        assert!(header.tls().is_none() && header.tls_info().is_none());
        assert_eq!(header.authority(), Some("www.example.com"));
        let mut body = v4_block();
        body.extend(ssl(0x00, 0, &tlv(0x21, b"TLSv1.3")));
        let (header, _) = complete(&v2(1, 0x11, &body));
        assert!(header.tls_info().is_none());
        // Version 1 and LOCAL carry none of it.
        let (header, _) = complete(b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n");
        assert!(header.tls().is_none() && header.authority().is_none());
        // Unknown records are skipped; an unknown TLS version name keeps TLS
        // on without a version.
        let mut body = v4_block();
        body.extend(tlv(0xe0, b"\xff\x00 anything"));
        body.extend(ssl(0x01, 0, &tlv(0x21, b"QUICv1")));
        let (header, _) = complete(&v2(1, 0x11, &body));
        let info = header.tls_info().unwrap();
        assert_eq!((info.version(), info.server_name()), (None, None));
    }

    #[test]
    fn v2_malformed_records_the_server_reads_are_refused() {
        let offset = 28;
        let cases: Vec<Vec<u8>> = vec![
            // An SSL record too short for its flags and verify result.
            tlv(0x20, &[0x01, 0, 0]),
            // A sub-record that runs past its SSL record.
            ssl(0x01, 0, &[0x21, 0, 9, b'T']),
            // Names that are not printable ASCII, or empty.
            tlv(0x02, b"www.exa mple.com"),
            tlv(0x02, "www.exämple.com".as_bytes()),
            tlv(0x02, b""),
            ssl(0x01, 0, &tlv(0x21, b"TLS\x00v1.3")),
        ];
        for record in cases {
            let mut body = v4_block();
            body.extend_from_slice(&record);
            assert!(
                matches!(parse(&v2(1, 0x11, &body)), Err(ProxyError::V2Tlv(at)) if at >= offset),
                "{record:?}"
            );
        }
    }

    #[test]
    fn v2_refusals() {
        let mut bad_version = v2(1, 0x11, &v4_block());
        bad_version[12] = 0x11;
        assert!(matches!(parse(&bad_version), Err(ProxyError::V2Version(1))));
        assert!(matches!(
            parse(&v2(2, 0x11, &v4_block())),
            Err(ProxyError::V2Command(2))
        ));
        assert!(matches!(
            parse(&v2(1, 0x41, &v4_block())),
            Err(ProxyError::V2Family(0x41))
        ));
        assert!(matches!(
            parse(&v2(1, 0x13, &v4_block())),
            Err(ProxyError::V2Family(0x13))
        ));
        assert!(matches!(
            parse(&v2(1, 0x10, &v4_block())),
            Err(ProxyError::V2Family(0x10))
        ));
        assert!(matches!(
            parse(&v2(1, 0x21, &v4_block())),
            Err(ProxyError::V2TooShort {
                length: 12,
                needed: 36
            })
        ));
        let mut with_bad_tlv = v4_block();
        with_bad_tlv.extend_from_slice(&[0x01, 0, 5, b'h']);
        assert!(matches!(
            parse(&v2(1, 0x11, &with_bad_tlv)),
            Err(ProxyError::V2Tlv(28))
        ));
        let mut stub_tlv = v4_block();
        stub_tlv.extend_from_slice(&[0x01, 0]);
        assert!(matches!(
            parse(&v2(1, 0x11, &stub_tlv)),
            Err(ProxyError::V2Tlv(28))
        ));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(parse(&huge), Err(ProxyError::V2TooLong(65535))));
        // Decided before the whole header is there.
        assert!(matches!(
            parse(&v2(1, 0x21, &v4_block())[..16]),
            Err(ProxyError::V2TooShort { .. })
        ));
    }

    #[test]
    fn cidrs_and_trust() {
        assert!(matches!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err(CidrError::HostBits(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/+8".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "ten/8".parse::<Cidr>(),
            Err(CidrError::Address(_))
        ));
        let everything: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains("255.1.2.3".parse().unwrap()));
        assert!(!everything.contains("::1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(v6.to_string(), "2001:db8::/32");
        let trusted: TrustedProxies = ["127.0.0.0/8".parse::<Cidr>().unwrap()]
            .into_iter()
            .collect();
        assert!(trusted.trusts("127.0.0.2".parse().unwrap()));
        assert!(trusted.trusts("::ffff:127.0.0.2".parse().unwrap()));
        assert!(!trusted.trusts("::1".parse().unwrap()));
        assert!(TrustedProxies::parse(["1.2.3.4/40"]).is_err());
    }

    #[test]
    fn addresses_for_connection_info() {
        let (header, _) = complete(b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n");
        let proxy = Address::Tcp("10.0.0.1:5000".parse().unwrap());
        let local = Address::Tcp("10.0.0.2:80".parse().unwrap());
        assert_eq!(
            header.peer_address(proxy.clone()),
            Address::Proxied {
                address: "192.0.2.1:51000".parse().unwrap(),
                proxy: Box::new(proxy.clone())
            }
        );
        assert_eq!(
            header.local_address(local.clone()).socket_addr(),
            Some("198.51.100.2:443".parse().unwrap())
        );
        let (unknown, _) = complete(b"PROXY UNKNOWN\r\n");
        assert_eq!(unknown.peer_address(proxy.clone()), proxy);
        assert_eq!(unknown.local_address(local.clone()), local);
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn reads_exactly_the_header_in_one_piece_or_many() {
        tokio::time::timeout(Duration::from_secs(10), async {
            // One segment, with HTTP bytes right behind the header.
            let (mut client, mut server) = pair().await;
            client
                .write_all(b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\nGET / HTTP/1.1\r\n")
                .await
                .unwrap();
            let header = read_proxy_header(&mut server, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(header.source(), Some("192.0.2.1:51000".parse().unwrap()));
            let mut next = [0u8; 3];
            server.read_exact(&mut next).await.unwrap();
            assert_eq!(&next, b"GET");

            // A v2 header dribbled a few bytes at a time.
            let (mut client, mut server) = pair().await;
            let mut bytes = v2(1, 0x11, &v4_block());
            bytes.extend_from_slice(b"\x16\x03\x01");
            let writer = tokio::spawn(async move {
                for piece in bytes.chunks(5) {
                    client.write_all(piece).await.unwrap();
                    client.flush().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                client
            });
            let header = read_proxy_header(&mut server, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(header.version(), ProxyVersion::V2);
            let _client = writer.await.unwrap();
            let mut next = [0u8; 3];
            server.read_exact(&mut next).await.unwrap();
            assert_eq!(&next, b"\x16\x03\x01");
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn read_refuses_times_out_and_sees_close() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let (mut client, mut server) = pair().await;
            client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            assert!(matches!(
                read_proxy_header(&mut server, Duration::from_secs(5)).await,
                Err(ProxyError::NotProxyProtocol)
            ));

            let (mut client, mut server) = pair().await;
            client.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
            assert!(matches!(
                read_proxy_header(&mut server, Duration::from_millis(200)).await,
                Err(ProxyError::Timeout(_))
            ));

            let (mut client, mut server) = pair().await;
            client.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
            drop(client);
            assert!(matches!(
                read_proxy_header(&mut server, Duration::from_secs(5)).await,
                Err(ProxyError::Closed)
            ));
        })
        .await
        .unwrap();
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Parsed::Complete { length, .. }) = parse(&bytes) {
                prop_assert!(length <= bytes.len());
            }
        }

        #[test]
        fn arbitrary_v2_bodies_never_panic(
            command in 0u8..3,
            family in any::<u8>(),
            body in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let bytes = v2(command, family, &body);
            if let Ok(Parsed::Complete { length, header }) = parse(&bytes) {
                prop_assert_eq!(length, bytes.len());
                prop_assert_eq!(header.is_local(), command == 0);
            }
        }

        #[test]
        fn arbitrary_v1_lines_never_panic(line in "PROXY [ -~]{0,110}\r\n") {
            if let Ok(Parsed::Complete { length, .. }) = parse(line.as_bytes()) {
                prop_assert!(length <= V1_MAX_LEN);
            }
        }
    }
}
