//! The protocol decisions hyper leaves to the server (spec/rgi.md §12.3,
//! §12.4 and the target limit of §12.2), taken at the strictest reading of
//! RFC 9110, RFC 9112 and RFC 9113 that a request head parsed by hyper
//! still lets the server take.
//!
//! hyper (through httparse and h2) already refuses a good deal on its own:
//! request lines that are not `method SP target SP HTTP/1.x`, field names
//! that are not tokens, whitespace before a colon, obs-fold, NUL, CR, LF and
//! DEL in field values, a bare CR, Transfer-Encoding on HTTP/1.0 or without
//! a final `chunked`, differing Content-Length lines, and on HTTP/2 every
//! connection-specific field and malformed pseudo-header. What reaches the
//! service is an [`http::request::Parts`]; [`check_request`] judges it for
//! everything else, and re-checks the decisions hyper made where the check
//! costs next to nothing, so that a change in hyper cannot silently let a
//! request through that this module's callers believe was refused.
//!
//! A refused request never reaches the application: the server answers it
//! with [`Rejection::response`], logs [`Rejection`]'s `Display` text (the
//! offending bytes escaped), and on HTTP/1.x closes the connection after the
//! answer (`RGI-PROTO-10`), because a request refused for its framing leaves
//! the bytes after it impossible to trust.
//!
//! ```
//! use http::{Request, StatusCode};
//! use rgi_server::strict::{RequestRules, check_request};
//!
//! let rules = RequestRules::new();
//! let (ok, ()) = Request::get("/").header("host", "example.org").body(()).unwrap().into_parts();
//! assert!(check_request(&ok, &rules).is_ok());
//!
//! let (two_hosts, ()) = Request::get("/")
//!     .header("host", "a.example")
//!     .header("host", "b.example")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! let rejection = check_request(&two_hosts, &rules).unwrap_err();
//! assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
//! assert!(rejection.closes_connection());
//! ```

use std::cell::RefCell;
use std::fmt;
use std::net::Ipv6Addr;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Uri, Version};

/// The recommended target limit of spec/rgi.md §12.2 (`RGI-LIMIT-2`):
/// RFC 9112 §3 asks servers to take request lines of at least 8000 octets.
pub const DEFAULT_MAX_TARGET_LEN: usize = 8 * 1024;

/// The recommended header section limit of spec/rgi.md §12.2
/// (`RGI-LIMIT-3`), in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// The recommended limit on field lines of spec/rgi.md §12.2
/// (`RGI-LIMIT-3`).
pub const DEFAULT_MAX_HEADER_FIELDS: usize = 100;

/// What [`check_request`] allows where the specification leaves the server
/// a choice.
///
/// ```
/// use rgi_server::strict::RequestRules;
///
/// let rules = RequestRules::new().max_target_len(2048).extended_connect(true);
/// assert_eq!(rules.target_limit(), 2048);
/// assert!(rules.allows_extended_connect());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRules {
    max_target_len: usize,
    max_header_bytes: usize,
    max_header_fields: usize,
    extended_connect: bool,
}

impl RequestRules {
    /// The defaults: targets of up to [`DEFAULT_MAX_TARGET_LEN`] bytes,
    /// header sections of up to [`DEFAULT_MAX_HEADER_BYTES`] bytes and
    /// [`DEFAULT_MAX_HEADER_FIELDS`] field lines, and no extended CONNECT.
    #[must_use]
    pub const fn new() -> Self {
        RequestRules {
            max_target_len: DEFAULT_MAX_TARGET_LEN,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_header_fields: DEFAULT_MAX_HEADER_FIELDS,
            extended_connect: false,
        }
    }

    /// The largest header section accepted, counted as its field lines
    /// take on the wire in HTTP/1.1 (name, colon, space, value, CRLF), and
    /// the most field lines; a request beyond either is answered `431
    /// Request Header Fields Too Large`. hyper's own buffer limit is
    /// coarser (it counts the request line too and may read past it), so
    /// this is the limit that decides. Limits of 0 are raised to 1.
    #[must_use]
    pub const fn max_header_section(mut self, bytes: usize, fields: usize) -> Self {
        self.max_header_bytes = if bytes == 0 { 1 } else { bytes };
        self.max_header_fields = if fields == 0 { 1 } else { fields };
        self
    }

    /// The longest request target (the request line's target, or `:path`)
    /// accepted; a longer one is answered `414 URI Too Long`. A limit of 0
    /// is raised to 1, because no limit can switch the check off or refuse
    /// every request (`RGI-LIMIT-1`).
    #[must_use]
    pub const fn max_target_len(mut self, bytes: usize) -> Self {
        self.max_target_len = if bytes == 0 { 1 } else { bytes };
        self
    }

    /// Whether an HTTP/2 extended CONNECT (RFC 8441: `:method` CONNECT with
    /// a `:protocol`) may reach the application, which it may only when the
    /// server advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL` and offers the
    /// upgrade capability (`RGI-H2-10`). Off by default.
    #[must_use]
    pub const fn extended_connect(mut self, allowed: bool) -> Self {
        self.extended_connect = allowed;
        self
    }

    /// The configured target limit in bytes.
    #[must_use]
    pub const fn target_limit(&self) -> usize {
        self.max_target_len
    }

    /// The configured header section limits: bytes and field lines.
    #[must_use]
    pub const fn header_section_limits(&self) -> (usize, usize) {
        (self.max_header_bytes, self.max_header_fields)
    }

    /// Whether extended CONNECT is allowed.
    #[must_use]
    pub const fn allows_extended_connect(&self) -> bool {
        self.extended_connect
    }
}

impl Default for RequestRules {
    fn default() -> Self {
        Self::new()
    }
}

/// What was wrong with a refused request. The text of each variant is
/// meant for a log line: values a peer sent appear escaped and cut to a
/// bounded length (`RGI-LIMIT-9`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// An HTTP/1.1 request without a Host field, or an HTTP/2 request with
    /// neither `:authority` nor Host.
    MissingHost,
    /// More than one Host field line.
    RepeatedHost {
        /// How many there were.
        count: usize,
    },
    /// A Host value (or `:authority`, or a target's authority) that is not
    /// `uri-host [":" port]`.
    InvalidHost {
        /// The value, escaped.
        value: String,
    },
    /// A Host field naming another authority than the target's (absolute
    /// form) or than `:authority` (HTTP/2).
    HostMismatch {
        /// The Host field, escaped.
        host: String,
        /// The authority of the target or of `:authority`, escaped.
        authority: String,
    },
    /// An absolute-form target whose scheme is neither `http` nor `https`.
    UnsupportedScheme {
        /// The scheme, escaped.
        scheme: String,
    },
    /// A CONNECT request: a tunnel is not a request an RGI application can
    /// answer (`RGI-PATH-10`).
    Connect,
    /// An HTTP/2 extended CONNECT while the server does not allow one.
    ExtendedConnect,
    /// A target form that its method may not use (authority-form without
    /// CONNECT, asterisk-form without OPTIONS, CONNECT with another form).
    TargetForm {
        /// The method, escaped.
        method: String,
        /// Which form the target had.
        form: &'static str,
    },
    /// A header section larger than the configured limit, or with more
    /// field lines.
    HeaderSectionTooLarge {
        /// Its size in bytes, as HTTP/1.1 field lines.
        bytes: usize,
        /// Its number of field lines.
        fields: usize,
        /// The configured limits: bytes and field lines.
        limits: (usize, usize),
    },
    /// A target longer than the configured limit.
    TargetTooLong {
        /// Its length in bytes.
        length: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A target with a byte RFC 3986 does not allow, or a `%` that does not
    /// start a percent-encoding.
    InvalidTarget {
        /// The target, escaped.
        target: String,
    },
    /// A field name that is not a token.
    InvalidFieldName {
        /// The name, escaped.
        name: String,
    },
    /// A field value with a control character, DEL, or surrounding
    /// whitespace.
    InvalidFieldValue {
        /// The field's name.
        name: String,
    },
    /// A transfer coding other than `chunked`, which is all the server
    /// decodes.
    UnsupportedTransferCoding {
        /// The coding, escaped.
        coding: String,
    },
    /// Transfer codings that are not exactly one final `chunked`.
    InvalidTransferCoding {
        /// The codings as received, escaped.
        codings: String,
    },
    /// Transfer-Encoding in an HTTP/1.0 request.
    TransferEncodingOnHttp10,
    /// Both Transfer-Encoding and Content-Length.
    LengthWithTransferEncoding,
    /// A Content-Length member that is not a run of decimal digits fitting
    /// in 64 bits.
    InvalidContentLength {
        /// The value, escaped.
        value: String,
    },
    /// Content-Length lines or members that disagree.
    ConflictingContentLength {
        /// The first length seen.
        first: u64,
        /// The one that disagreed.
        other: u64,
    },
    /// An expectation other than `100-continue`.
    UnknownExpectation {
        /// The Expect value, escaped.
        value: String,
    },
    /// A connection-specific field on HTTP/2 (RFC 9113 §8.2.2).
    ConnectionSpecificField {
        /// The field's name.
        name: String,
    },
    /// A TE field with another value than `trailers` on HTTP/2.
    TeNotTrailers {
        /// The value, escaped.
        value: String,
    },
    /// An HTTP version the server does not implement.
    UnsupportedVersion {
        /// The version as `http` prints it.
        version: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::MissingHost => f.write_str("no Host field (and no :authority)"),
            Violation::RepeatedHost { count } => write!(f, "{count} Host field lines"),
            Violation::InvalidHost { value } => write!(f, "invalid authority \"{value}\""),
            Violation::HostMismatch { host, authority } => write!(
                f,
                "the Host field \"{host}\" names another authority than \"{authority}\""
            ),
            Violation::UnsupportedScheme { scheme } => {
                write!(f, "an absolute-form target with the scheme \"{scheme}\"")
            }
            Violation::Connect => f.write_str("CONNECT (a tunnel) is not served"),
            Violation::ExtendedConnect => f.write_str("extended CONNECT is not enabled"),
            Violation::TargetForm { method, form } => {
                write!(f, "a target in {form} with the method \"{method}\"")
            }
            Violation::HeaderSectionTooLarge {
                bytes,
                fields,
                limits,
            } => write!(
                f,
                "a header section of {bytes} bytes in {fields} field lines, beyond the limits of {} bytes and {} lines",
                limits.0, limits.1
            ),
            Violation::TargetTooLong { length, limit } => {
                write!(
                    f,
                    "a target of {length} bytes, more than the limit of {limit}"
                )
            }
            Violation::InvalidTarget { target } => write!(f, "invalid target \"{target}\""),
            Violation::InvalidFieldName { name } => write!(f, "invalid field name \"{name}\""),
            Violation::InvalidFieldValue { name } => {
                write!(f, "invalid bytes in the value of the field {name}")
            }
            Violation::UnsupportedTransferCoding { coding } => {
                write!(f, "the transfer coding \"{coding}\" is not implemented")
            }
            Violation::InvalidTransferCoding { codings } => write!(
                f,
                "transfer codings \"{codings}\" do not end in exactly one chunked"
            ),
            Violation::TransferEncodingOnHttp10 => {
                f.write_str("Transfer-Encoding in an HTTP/1.0 request")
            }
            Violation::LengthWithTransferEncoding => {
                f.write_str("both Content-Length and Transfer-Encoding")
            }
            Violation::InvalidContentLength { value } => {
                write!(f, "invalid Content-Length \"{value}\"")
            }
            Violation::ConflictingContentLength { first, other } => {
                write!(f, "Content-Length {first} and {other} disagree")
            }
            Violation::UnknownExpectation { value } => {
                write!(f, "unknown expectation \"{value}\"")
            }
            Violation::ConnectionSpecificField { name } => {
                write!(f, "connection-specific field {name} on HTTP/2")
            }
            Violation::TeNotTrailers { value } => {
                write!(f, "TE \"{value}\" on HTTP/2 (only trailers is allowed)")
            }
            Violation::UnsupportedVersion { version } => {
                write!(f, "unsupported HTTP version {version}")
            }
        }
    }
}

impl Violation {
    /// The clause of spec/rgi.md that decides this answer.
    #[must_use]
    pub fn clause(&self) -> &'static str {
        match self {
            Violation::MissingHost | Violation::RepeatedHost { .. } => "RGI-PROTO-1",
            Violation::InvalidHost { .. } => "RGI-PROTO-1",
            Violation::HostMismatch { .. } | Violation::UnsupportedScheme { .. } => "RGI-PROTO-2",
            Violation::Connect | Violation::TargetForm { .. } => "RGI-PROTO-6",
            Violation::ExtendedConnect => "RGI-H2-10",
            Violation::TargetTooLong { .. } => "RGI-LIMIT-2",
            Violation::HeaderSectionTooLarge { .. } => "RGI-LIMIT-3",
            Violation::InvalidTarget { .. } => "RGI-PROTO-9",
            Violation::InvalidFieldName { .. } | Violation::InvalidFieldValue { .. } => {
                "RGI-PROTO-8"
            }
            Violation::UnsupportedTransferCoding { .. }
            | Violation::InvalidTransferCoding { .. }
            | Violation::TransferEncodingOnHttp10 => "RGI-PROTO-3",
            Violation::LengthWithTransferEncoding
            | Violation::InvalidContentLength { .. }
            | Violation::ConflictingContentLength { .. } => "RGI-PROTO-4",
            Violation::UnknownExpectation { .. } => "RGI-PROTO-5",
            Violation::ConnectionSpecificField { .. } | Violation::TeNotTrailers { .. } => {
                "RGI-H2-3"
            }
            Violation::UnsupportedVersion { .. } => "RGI-PROTO-7",
        }
    }

    /// The status the server answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Violation::Connect
            | Violation::ExtendedConnect
            | Violation::UnsupportedTransferCoding { .. } => StatusCode::NOT_IMPLEMENTED,
            Violation::TargetTooLong { .. } => StatusCode::URI_TOO_LONG,
            Violation::HeaderSectionTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Violation::UnknownExpectation { .. } => StatusCode::EXPECTATION_FAILED,
            Violation::UnsupportedVersion { .. } => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A request the server refuses itself: the status to answer, why (for the
/// log line), and whether the connection must close after the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    violation: Violation,
    close: bool,
}

impl Rejection {
    fn new(violation: Violation, version: Version) -> Self {
        // On HTTP/2 and HTTP/3 each stream is framed on its own, so a
        // refusal ends the stream and leaves the connection (RGI-H2-7); on
        // HTTP/1.x the bytes after a refused head cannot be trusted.
        let close = !is_multiplexed(version);
        Rejection { violation, close }
    }

    /// The status to answer with: 400, 414, 417, 501 or 505.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.violation.status()
    }

    /// What was wrong.
    #[must_use]
    pub fn violation(&self) -> &Violation {
        &self.violation
    }

    /// Whether the connection must close after the answer: always on
    /// HTTP/1.x (`RGI-PROTO-10`), never on HTTP/2, where the stream ends
    /// instead (`RGI-H2-7`).
    #[must_use]
    pub fn closes_connection(&self) -> bool {
        self.close
    }

    /// The answer's head with `body`: the status and, when the connection
    /// closes, `connection: close`, which makes hyper close the connection
    /// after the response instead of reading another request from it.
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// use rgi_server::strict::{RequestRules, check_request};
    ///
    /// let (parts, ()) = Request::get("/").header("expect", "teapot").header("host", "a")
    ///     .body(()).unwrap().into_parts();
    /// let response = check_request(&parts, &RequestRules::new()).unwrap_err().response(());
    /// assert_eq!(response.status(), StatusCode::EXPECTATION_FAILED);
    /// assert_eq!(response.headers()["connection"], "close");
    /// ```
    pub fn response<B>(&self, body: B) -> Response<B> {
        let mut response = Response::new(body);
        *response.status_mut() = self.status();
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status().as_u16(),
            self.violation.clause(),
            self.violation
        )
    }
}

impl std::error::Error for Rejection {}

/// Judges a request head before it reaches the application.
///
/// The checks run in a fixed order, so that a request breaking several
/// rules always gets the same answer: version, target length (414), target
/// syntax and form (400, 501 for CONNECT), header section size (431),
/// HTTP/2's connection-specific
/// fields, field syntax, Host (400), framing (400, 501 for a transfer
/// coding other than `chunked`), and expectations (417).
///
/// After it returns `Ok`, call [`present_host`] to give the request the one
/// `host` entry the specification requires (`RGI-PATH-9`, `RGI-H2-2`).
///
/// # Errors
///
/// A [`Rejection`] saying what to answer, when any rule refuses the request.
pub fn check_request(parts: &Parts, rules: &RequestRules) -> Result<(), Rejection> {
    check_head(&Head::of_parts(parts), rules, None)
}

/// [`check_request`] on a whole request, which the server then hands on
/// without taking it apart and putting it back together.
/// `memo` carries the connection's last valid Host value from one request
/// to the next.
pub(crate) fn check_whole_request<B>(
    request: &http::Request<B>,
    rules: &RequestRules,
    memo: &HostMemo,
) -> Result<(), Rejection> {
    let head = Head {
        method: request.method(),
        uri: request.uri(),
        version: request.version(),
        headers: request.headers(),
        extensions: request.extensions(),
    };
    check_head(&head, rules, Some(memo))
}

fn check_head(
    head: &Head<'_>,
    rules: &RequestRules,
    memo: Option<&HostMemo>,
) -> Result<(), Rejection> {
    check(head, rules, memo).map_err(|violation| Rejection::new(violation, head.version))
}

/// The last Host value a connection's requests carried that was a valid
/// authority, with where its host ends and its port: a keep-alive client
/// sends the same Host on every request, and comparing the bytes costs a
/// tenth of parsing them again (callgrind: about 200 instructions a
/// request). Only a valid value is kept, so a hit is exactly the parse's
/// answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostMemo(RefCell<Option<KnownHost>>);

#[derive(Debug, Clone)]
struct KnownHost {
    value: Vec<u8>,
    host_len: usize,
    port: Option<u16>,
}

impl HostMemo {
    /// [`valid_authority`] of `text`, from the memo when `text` is the value
    /// it holds.
    fn authority<'a>(&self, text: &'a [u8]) -> Result<Authority<'a>, ()> {
        if let Some(known) = self.0.borrow().as_ref() {
            if known.value == text {
                if let Some(host) = text.get(..known.host_len) {
                    return Ok((host, known.port));
                }
            }
        }
        let (host, port) = valid_authority(text)?;
        // A name longer than DNS allows (253) with a port is not worth
        // keeping for the connection's lifetime.
        if text.len() <= 260 {
            *self.0.borrow_mut() = Some(KnownHost {
                value: text.to_vec(),
                host_len: host.len(),
                port,
            });
        }
        Ok((host, port))
    }
}

/// What the checks read of a request head, wherever it lives.
struct Head<'a> {
    method: &'a Method,
    uri: &'a Uri,
    version: Version,
    headers: &'a HeaderMap,
    extensions: &'a http::Extensions,
}

impl<'a> Head<'a> {
    fn of_parts(parts: &'a Parts) -> Self {
        Head {
            method: &parts.method,
            uri: &parts.uri,
            version: parts.version,
            headers: &parts.headers,
            extensions: &parts.extensions,
        }
    }
}

fn check(parts: &Head<'_>, rules: &RequestRules, memo: Option<&HostMemo>) -> Result<(), Violation> {
    let multiplexed = is_multiplexed(parts.version);
    if !multiplexed && parts.version != Version::HTTP_11 && parts.version != Version::HTTP_10 {
        return Err(Violation::UnsupportedVersion {
            version: format!("{:?}", parts.version),
        });
    }
    let form = Form::of(parts.uri);
    check_target(parts, form, rules)?;
    // One walk over the fields finds what every later check needs; a check
    // whose fields are absent has nothing to judge and is skipped, and the
    // rare request that needs a full check gets the same walk as always, so
    // that a refusal names the same violation in the same order.
    let scan = HeaderScan::of(parts.headers);
    check_header_section(&scan, rules)?;
    if multiplexed {
        check_connection_specific(parts.headers)?;
    }
    // The first Host value is judged as an authority only: every byte an
    // authority admits is one a field value admits, so a valid one needs no
    // second walk, and an invalid one gets the field check first, which
    // names it as before.
    let host = scan.host.map(|value| match memo {
        Some(memo) => memo.authority(value.as_bytes()),
        None => valid_authority(value.as_bytes()),
    });
    if scan.suspect_field || host.is_some_and(|authority| authority.is_err()) {
        check_fields(parts.headers)?;
    }
    check_host(parts, form, &scan, host)?;
    if scan.framing {
        check_framing(parts)?;
    }
    if scan.expect {
        check_expectations(parts.headers)?;
    }
    Ok(())
}

/// What one walk over a request's fields learns.
struct HeaderScan<'a> {
    fields: usize,
    bytes: usize,
    /// A field whose name or value may break RFC 9110 §5.
    suspect_field: bool,
    /// The first Host field, and how many there are.
    host: Option<&'a HeaderValue>,
    hosts: usize,
    /// Transfer-Encoding or Content-Length is present.
    framing: bool,
    expect: bool,
}

impl<'a> HeaderScan<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        let mut scan = HeaderScan {
            fields: headers.len(),
            bytes: 0,
            suspect_field: false,
            host: None,
            hosts: 0,
            framing: false,
            expect: false,
        };
        for (name, value) in headers {
            scan.bytes += name.as_str().len() + value.len() + 4;
            let first_host = name == header::HOST && scan.hosts == 0;
            if !valid_field_name(name.as_str().as_bytes())
                || (!first_host && !valid_field_value(value.as_bytes()))
            {
                scan.suspect_field = true;
            }
            if name == header::HOST {
                scan.hosts += 1;
                scan.host.get_or_insert(value);
            } else if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
                scan.framing = true;
            } else if name == header::EXPECT {
                scan.expect = true;
            }
        }
        scan
    }
}

/// Presents an accepted request the way spec/rgi.md describes it to the
/// application, whatever its HTTP version:
///
/// - its one `host` entry: an absolute-form target's authority replaces any
///   Host field (`RGI-PATH-9`), and an HTTP/2 request without a Host field
///   gets its `:authority` (`RGI-H2-2`);
/// - on HTTP/2 and HTTP/3 its target is the `:path` alone (`RGI-H2-1`,
///   `RGI-H2-11`): hyper builds an absolute URI from `:scheme`,
///   `:authority` and `:path`, which the application must not mistake for
///   an absolute-form target.
///
/// Call it only on a request [`check_request`] accepted, which guarantees
/// that the authority is a valid field value.
///
/// ```
/// use http::{Request, Version};
/// use rgi_server::strict::{RequestRules, check_request, present_host};
///
/// let (mut parts, ()) = Request::get("http://A.example/x").header("host", "a.example:80")
///     .body(()).unwrap().into_parts();
/// check_request(&parts, &RequestRules::new()).unwrap();
/// present_host(&mut parts);
/// assert_eq!(parts.headers["host"], "A.example");
/// assert_eq!(parts.uri, "http://A.example/x");
///
/// let (mut h2, ()) = Request::get("https://b.example/y?z").version(Version::HTTP_2)
///     .body(()).unwrap().into_parts();
/// check_request(&h2, &RequestRules::new()).unwrap();
/// present_host(&mut h2);
/// assert_eq!(h2.headers["host"], "b.example");
/// assert_eq!(h2.uri, "/y?z");
/// ```
pub fn present_host(parts: &mut Parts) {
    let Some((host, path)) = host_presentation(parts.version, &parts.uri, &parts.headers) else {
        return;
    };
    if let Some(host) = host {
        parts.headers.insert(header::HOST, host);
    }
    if let Some(path) = path {
        parts.uri = Uri::from(path);
    }
}

/// [`present_host`] on a whole request.
pub(crate) fn present_request_host<B>(request: &mut http::Request<B>) {
    let Some((host, path)) = host_presentation(request.version(), request.uri(), request.headers())
    else {
        return;
    };
    if let Some(host) = host {
        request.headers_mut().insert(header::HOST, host);
    }
    if let Some(path) = path {
        *request.uri_mut() = Uri::from(path);
    }
}

/// What [`present_host`] changes: the Host field to set and the target to
/// keep; `None` for a target without authority (every origin-form one),
/// which is presented as it came.
fn host_presentation(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<(Option<HeaderValue>, Option<http::uri::PathAndQuery>)> {
    let multiplexed = is_multiplexed(version);
    let authority = uri.authority()?;
    let replace = if multiplexed {
        !headers.contains_key(header::HOST)
    } else {
        uri.scheme().is_some()
    };
    let host = if replace {
        HeaderValue::from_str(authority.as_str()).ok()
    } else {
        None
    };
    // A CONNECT without :path keeps its authority-only URI; it never passes
    // check_request unless extended, which has a :path.
    let path = if multiplexed {
        uri.path_and_query().cloned()
    } else {
        None
    };
    Some((host, path))
}

fn is_multiplexed(version: Version) -> bool {
    version == Version::HTTP_2 || version == Version::HTTP_3
}

/// The request-target forms of RFC 9112 §3.2, as hyper's `Uri` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Origin,
    Absolute,
    Authority,
    Asterisk,
}

impl Form {
    fn of(uri: &Uri) -> Form {
        // On HTTP/2 an asterisk `:path` comes with `:scheme` and
        // `:authority`, which hyper puts in the same URI.
        if uri.path_and_query().is_some_and(|pq| pq.as_str() == "*") {
            return Form::Asterisk;
        }
        match (uri.scheme(), uri.authority()) {
            (Some(_), _) => Form::Absolute,
            (None, Some(_)) => Form::Authority,
            (None, None) if uri.path() == "*" => Form::Asterisk,
            (None, None) => Form::Origin,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Form::Origin => "origin-form",
            Form::Absolute => "absolute-form",
            Form::Authority => "authority-form",
            Form::Asterisk => "asterisk-form",
        }
    }
}

/// How long the target was on the wire: on HTTP/2 `:path` (or `:authority`
/// for a CONNECT without one), on HTTP/1.x the request line's target.
fn target_len(uri: &Uri, multiplexed: bool) -> usize {
    let path = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if multiplexed {
        return if path == 0 {
            uri.authority().map_or(0, |a| a.as_str().len())
        } else {
            path
        };
    }
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    scheme + uri.authority().map_or(0, |a| a.as_str().len()) + path
}

fn check_target(parts: &Head<'_>, form: Form, rules: &RequestRules) -> Result<(), Violation> {
    let multiplexed = is_multiplexed(parts.version);
    let uri = &parts.uri;
    let length = target_len(uri, multiplexed);
    if length > rules.max_target_len {
        return Err(Violation::TargetTooLong {
            length,
            limit: rules.max_target_len,
        });
    }
    if let Some(pq) = uri.path_and_query() {
        if !valid_target_bytes(pq.as_str().as_bytes()) {
            return Err(Violation::InvalidTarget {
                target: escaped(pq.as_str().as_bytes()),
            });
        }
    }
    let method = parts.method;
    let extended = multiplexed && parts.extensions.get::<hyper::ext::Protocol>().is_some();
    if *method == Method::CONNECT {
        if extended {
            return if rules.extended_connect {
                Ok(())
            } else {
                Err(Violation::ExtendedConnect)
            };
        }
        // RFC 9113 §8.5 and RFC 9112 §3.2.3: a CONNECT names only an
        // authority; it is refused as a tunnel, any other shape as garbage.
        return if form == Form::Authority {
            Err(Violation::Connect)
        } else {
            Err(Violation::TargetForm {
                method: escaped(method.as_str().as_bytes()),
                form: form.name(),
            })
        };
    }
    let refused_form = match form {
        Form::Authority => true,
        Form::Asterisk => *method != Method::OPTIONS,
        // HTTP/2 carries :scheme and :authority beside every :path, so
        // hyper always builds an absolute URI; only HTTP/1.x chose it.
        Form::Absolute | Form::Origin => false,
    };
    if refused_form {
        return Err(Violation::TargetForm {
            method: escaped(method.as_str().as_bytes()),
            form: form.name(),
        });
    }
    if let Some(scheme) = uri.scheme_str() {
        if !multiplexed
            && !scheme.eq_ignore_ascii_case("http")
            && !scheme.eq_ignore_ascii_case("https")
        {
            return Err(Violation::UnsupportedScheme {
                scheme: escaped(scheme.as_bytes()),
            });
        }
    }
    if form == Form::Absolute && !multiplexed {
        if let Some(authority) = uri.authority() {
            valid_authority(authority.as_str().as_bytes()).map_err(|()| {
                Violation::InvalidHost {
                    value: escaped(authority.as_str().as_bytes()),
                }
            })?;
        }
    }
    Ok(())
}

fn check_header_section(scan: &HeaderScan<'_>, rules: &RequestRules) -> Result<(), Violation> {
    let (bytes, fields) = (scan.bytes, scan.fields);
    if bytes > rules.max_header_bytes || fields > rules.max_header_fields {
        return Err(Violation::HeaderSectionTooLarge {
            bytes,
            fields,
            limits: (rules.max_header_bytes, rules.max_header_fields),
        });
    }
    Ok(())
}

/// RFC 3986 bytes of a path and query: unreserved, sub-delims, `:` `@` `/`
/// `?`, and `%` only as the start of a percent-encoding. `[` and `]`, which
/// RFC 3986 reserves as gen-delims, pass as well, since clients send them
/// unencoded in queries; a bare `*` is the asterisk-form target.
fn valid_target_bytes(target: &[u8]) -> bool {
    let mut index = 0;
    while index < target.len() {
        let byte = target[index];
        if byte == b'%' {
            let hex = target.get(index + 1..index + 3);
            if !hex.is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            index += 3;
            continue;
        }
        if BYTE_CLASSES[usize::from(byte)] & TARGET == 0 {
            return false;
        }
        index += 1;
    }
    true
}

/// RFC 9113 §8.2.2: these fields are HTTP/1.1's hop-by-hop machinery, which
/// HTTP/2 replaces; h2 refuses them already, and a request carrying one
/// must never reach the application even if that changes.
fn check_connection_specific(headers: &HeaderMap) -> Result<(), Violation> {
    const FORBIDDEN: [&str; 5] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ];
    for name in FORBIDDEN {
        if headers.contains_key(name) {
            return Err(Violation::ConnectionSpecificField {
                name: name.to_owned(),
            });
        }
    }
    for value in headers.get_all(header::TE) {
        if value.as_bytes() != b"trailers" {
            return Err(Violation::TeNotTrailers {
                value: escaped(value.as_bytes()),
            });
        }
    }
    Ok(())
}

/// RFC 9110 §5.1 and §5.5: a name is a token, and a value is field-vchar
/// (VCHAR or obs-text) with single spaces or tabs inside, never at either
/// end. obs-text passes unchanged (`RGI-HDR-3`): RFC 9110 §5.5 makes it
/// opaque data, not an error.
fn check_fields(headers: &HeaderMap) -> Result<(), Violation> {
    for (name, value) in headers {
        // HeaderName admits only lowercase tokens today; the check keeps
        // this module honest should a caller build the map by other means.
        if !valid_field_name(name.as_str().as_bytes()) {
            return Err(Violation::InvalidFieldName {
                name: escaped(name.as_str().as_bytes()),
            });
        }
        if !valid_field_value(value.as_bytes()) {
            return Err(Violation::InvalidFieldValue {
                name: name.as_str().to_owned(),
            });
        }
    }
    Ok(())
}

fn valid_field_value(value: &[u8]) -> bool {
    let edges_ok = match (value.first(), value.last()) {
        (Some(first), Some(last)) => !is_ows(*first) && !is_ows(*last),
        _ => true,
    };
    edges_ok
        && value
            .iter()
            .all(|&byte| byte == b'\t' || (byte >= 0x20 && byte != 0x7f))
}

fn is_ows(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// A token of RFC 9110 §5.6.2: one or more `tchar`.
fn valid_field_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&byte| BYTE_CLASSES[usize::from(byte)] & TCHAR != 0)
}

/// Bit of [`BYTE_CLASSES`]: a `tchar` (RFC 9110 §5.6.2).
const TCHAR: u8 = 1;
/// Bit of [`BYTE_CLASSES`]: unreserved or sub-delims (RFC 3986), the bytes
/// of a reg-name besides percent-encodings.
const REG_NAME: u8 = 2;
/// Bit of [`BYTE_CLASSES`]: a byte [`valid_target_bytes`] takes as it is.
const TARGET: u8 = 4;

/// Each byte's classes: the per-byte checks run on every request, and one
/// table lookup costs less than searching a set of punctuation per byte.
static BYTE_CLASSES: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    const fn within(set: &[u8], byte: u8) -> bool {
        let mut index = 0;
        while index < set.len() {
            if set[index] == byte {
                return true;
            }
            index += 1;
        }
        false
    }
    let mut table = [0; 256];
    let mut index = 0;
    while index < table.len() {
        #[allow(clippy::cast_possible_truncation)] // index < 256
        let byte = index as u8;
        let alphanumeric = byte.is_ascii_alphanumeric();
        let mut classes = 0;
        if alphanumeric || within(b"!#$%&'*+-.^_`|~", byte) {
            classes |= TCHAR;
        }
        if alphanumeric || within(b"-._~!$&'()*+,;=", byte) {
            classes |= REG_NAME;
        }
        if alphanumeric || within(b"-._~!$&'()*+,;=:@/?[]", byte) {
            classes |= TARGET;
        }
        table[index] = classes;
        index += 1;
    }
    table
}

/// RFC 9112 §3.2 (`RGI-PROTO-1`), §3.2.2 (`RGI-PROTO-2`) and RFC 9113
/// §8.3.1 (`RGI-H2-2`).
fn check_host(
    parts: &Head<'_>,
    form: Form,
    scan: &HeaderScan<'_>,
    authority: Option<Result<Authority<'_>, ()>>,
) -> Result<(), Violation> {
    let (host, count) = (scan.host.zip(authority), scan.hosts);
    if count > 1 {
        return Err(Violation::RepeatedHost { count });
    }
    let multiplexed = is_multiplexed(parts.version);
    let host = match host {
        Some((value, authority)) => Some(authority.map_err(|()| Violation::InvalidHost {
            value: escaped(value.as_bytes()),
        })?),
        None if parts.version == Version::HTTP_11 => return Err(Violation::MissingHost),
        None if multiplexed && parts.uri.authority().is_none() => {
            return Err(Violation::MissingHost);
        }
        None => None,
    };
    let Some(target) = parts.uri.authority() else {
        return Ok(());
    };
    if multiplexed {
        // :authority must be a valid authority without userinfo (RFC 9113
        // §8.3.1) whether or not a Host field is there as well.
        valid_authority(target.as_str().as_bytes()).map_err(|()| Violation::InvalidHost {
            value: escaped(target.as_str().as_bytes()),
        })?;
    } else if form != Form::Absolute {
        return Ok(());
    }
    let Some((host_name, host_port)) = host else {
        return Ok(());
    };
    let default_port = match parts.uri.scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => Some(443),
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => Some(80),
        _ => None,
    };
    let (target_name, target_port) =
        valid_authority(target.as_str().as_bytes()).map_err(|()| Violation::InvalidHost {
            value: escaped(target.as_str().as_bytes()),
        })?;
    let same = host_name.eq_ignore_ascii_case(target_name)
        && host_port.or(default_port) == target_port.or(default_port);
    if same {
        Ok(())
    } else {
        let host = parts
            .headers
            .get(header::HOST)
            .map_or_else(String::new, |value| escaped(value.as_bytes()));
        Err(Violation::HostMismatch {
            host,
            authority: escaped(target.as_str().as_bytes()),
        })
    }
}

/// A valid authority's host (as received) and port, if it names one.
type Authority<'a> = (&'a [u8], Option<u16>);

/// Splits `uri-host [":" port]` (RFC 3986 §3.2.2, §3.2.3) into its host and
/// port, or refuses it: an empty host, userinfo, an empty port, a port
/// above 65535, an IPv6 literal that does not parse, and any byte that a
/// reg-name does not allow are all invalid.
fn valid_authority(text: &[u8]) -> Result<Authority<'_>, ()> {
    let (host, port) = if text.first() == Some(&b'[') {
        let close = text.iter().position(|&byte| byte == b']').ok_or(())?;
        let literal = &text[1..close];
        if !valid_ip_literal(literal) {
            return Err(());
        }
        let rest = &text[close + 1..];
        let port = match rest {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return Err(()),
        };
        (&text[..=close], port)
    } else {
        let end = reg_name_len(text).ok_or(())?;
        let (host, rest) = text.split_at(end);
        let port = match rest {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return Err(()),
        };
        if host.is_empty() {
            return Err(());
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(digits) => Some(parse_port(digits)?),
    };
    Ok((host, port))
}

fn parse_port(digits: &[u8]) -> Result<u16, ()> {
    if digits.is_empty() {
        return Err(());
    }
    // Leading zeros are allowed (RFC 3986 §3.2.3: `*DIGIT`), so a long
    // port may still be small; only the value is bounded.
    let mut value: u32 = 0;
    for &digit in digits {
        let digit = digit.wrapping_sub(b'0');
        if digit > 9 {
            return Err(());
        }
        value = value * 10 + u32::from(digit);
        if value > u32::from(u16::MAX) {
            return Err(());
        }
    }
    u16::try_from(value).map_err(|_| ())
}

/// How long the `reg-name = *( unreserved / pct-encoded / sub-delims )`
/// (which also covers IPv4 addresses) at the start of `text` is: up to the
/// end or the first byte a reg-name cannot hold; `None` for a broken
/// percent-encoding. One walk finds both the host and where a port would
/// start.
fn reg_name_len(text: &[u8]) -> Option<usize> {
    let mut index = 0;
    while index < text.len() {
        let byte = text[index];
        if byte == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            index += 3;
            continue;
        }
        if BYTE_CLASSES[usize::from(byte)] & REG_NAME == 0 {
            break;
        }
        index += 1;
    }
    Some(index)
}

/// `IP-literal`'s inside: an IPv6 address (no zone identifier), or
/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn valid_ip_literal(literal: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = literal {
        let Some(dot) = rest.iter().position(|&byte| byte == b'.') else {
            return false;
        };
        let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&byte| byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&byte));
    }
    std::str::from_utf8(literal).is_ok_and(|text| text.parse::<Ipv6Addr>().is_ok())
}

/// RFC 9112 §6.1 and §6.3 (`RGI-PROTO-3`, `RGI-PROTO-4`).
fn check_framing(parts: &Head<'_>) -> Result<(), Violation> {
    let headers = &parts.headers;
    let has_coding = headers.contains_key(header::TRANSFER_ENCODING);
    if has_coding {
        if parts.version == Version::HTTP_10 {
            return Err(Violation::TransferEncodingOnHttp10);
        }
        // hyper drops a Content-Length it framed past; one left beside
        // Transfer-Encoding means the head was not framed as this module
        // assumes.
        if headers.contains_key(header::CONTENT_LENGTH) {
            return Err(Violation::LengthWithTransferEncoding);
        }
        check_codings(headers)?;
    }
    check_lengths(headers)
}

fn check_codings(headers: &HeaderMap) -> Result<(), Violation> {
    let mut chunked_seen = false;
    let mut unsupported: Option<&[u8]> = None;
    let mut valid = true;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for member in list_members(value.as_bytes()) {
            if chunked_seen {
                // Anything after chunked, another chunked included.
                valid = false;
            }
            if member.eq_ignore_ascii_case(b"chunked") {
                chunked_seen = true;
            } else if unsupported.is_none() {
                unsupported = Some(member);
            }
        }
    }
    if !valid || !chunked_seen {
        let codings = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .map(|value| escaped(value.as_bytes()))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Violation::InvalidTransferCoding { codings });
    }
    match unsupported {
        Some(coding) => Err(Violation::UnsupportedTransferCoding {
            coding: escaped(coding),
        }),
        None => Ok(()),
    }
}

fn check_lengths(headers: &HeaderMap) -> Result<(), Violation> {
    let mut declared: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let mut members = 0;
        for member in value.as_bytes().split(|&byte| byte == b',') {
            members += 1;
            let member = trim_ows(member);
            let length = parse_length(member).ok_or_else(|| Violation::InvalidContentLength {
                value: escaped(value.as_bytes()),
            })?;
            match declared {
                Some(first) if first != length => {
                    return Err(Violation::ConflictingContentLength {
                        first,
                        other: length,
                    });
                }
                _ => declared = Some(length),
            }
        }
        debug_assert!(members > 0);
    }
    Ok(())
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |total, &byte| {
        if byte.is_ascii_digit() {
            total.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
        } else {
            None
        }
    })
}

/// RFC 9110 §10.1.1 (`RGI-PROTO-5`): `100-continue` is the only
/// expectation; an empty Expect expects something no one can name.
fn check_expectations(headers: &HeaderMap) -> Result<(), Violation> {
    for value in headers.get_all(header::EXPECT) {
        let mut members = list_members(value.as_bytes()).peekable();
        let unknown = || Violation::UnknownExpectation {
            value: escaped(value.as_bytes()),
        };
        if members.peek().is_none() {
            return Err(unknown());
        }
        for member in members {
            if !member.eq_ignore_ascii_case(b"100-continue") {
                return Err(unknown());
            }
        }
    }
    Ok(())
}

/// The non-empty members of a comma-separated list (RFC 9110 §5.6.1),
/// without their surrounding whitespace.
fn list_members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(trim_ows)
        .filter(|member| !member.is_empty())
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_ows(*first) {
            break;
        }
        bytes = rest;
    }
    while let [rest @ .., last] = bytes {
        if !is_ows(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// Bytes a peer sent, made safe for a log line: printable ASCII kept,
/// everything else escaped, and no more than 128 bytes of input shown.
fn escaped(bytes: &[u8]) -> String {
    const SHOWN: usize = 128;
    let mut text: String = bytes
        .iter()
        .take(SHOWN)
        .flat_map(|byte| byte.escape_ascii())
        .map(char::from)
        .collect();
    if bytes.len() > SHOWN {
        text.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use proptest::prelude::*;

    fn parts(request: http::request::Builder) -> Parts {
        request.body(()).unwrap().into_parts().0
    }

    fn get(target: &str) -> http::request::Builder {
        Request::get(target)
    }

    fn rejected(parts: &Parts) -> Rejection {
        check_request(parts, &RequestRules::new()).unwrap_err()
    }

    fn status(parts: &Parts) -> u16 {
        rejected(parts).status().as_u16()
    }

    #[test]
    fn the_host_memo_answers_as_the_parse_does() {
        let memo = HostMemo::default();
        for text in [
            &b"example.org:8080"[..],
            b"example.org:8080",
            b"[::1]:443",
            b"[::1]:443",
            b"a",
        ] {
            assert_eq!(memo.authority(text), valid_authority(text));
        }
        // An invalid value is never kept, so the valid one before it still is.
        assert_eq!(memo.authority(b"a b"), Err(()));
        assert_eq!(memo.authority(b"a"), Ok((&b"a"[..], None)));
        let request = Request::get("/")
            .header("host", "example.org:8080")
            .body(())
            .unwrap();
        let memo = HostMemo::default();
        for _ in 0..2 {
            assert!(check_whole_request(&request, &RequestRules::new(), &memo).is_ok());
        }
        let two = Request::get("/")
            .header("host", "example.org:8080")
            .header("host", "example.org:8080")
            .body(())
            .unwrap();
        assert!(check_whole_request(&two, &RequestRules::new(), &memo).is_err());
    }

    #[test]
    fn a_plain_request_passes() {
        let ok = parts(get("/a/b?c=d%20e").header("host", "example.org:8080"));
        check_request(&ok, &RequestRules::new()).unwrap();
    }

    #[test]
    fn a_host_value_is_judged_as_a_field_before_as_an_authority() {
        // The first Host value skips the field-value walk when it is a valid
        // authority; an invalid one must still be named as the field check
        // names it, and a second Host is walked as any field.
        let padded = parts(get("/").header("host", HeaderValue::from_static("a.example\t")));
        assert!(matches!(
            rejected(&padded).violation(),
            Violation::InvalidFieldValue { name } if name == "host"
        ));
        let opaque = parts(get("/").header("host", HeaderValue::from_bytes(b"a\xffb").unwrap()));
        assert!(matches!(
            rejected(&opaque).violation(),
            Violation::InvalidHost { .. }
        ));
        let second = parts(
            get("/")
                .header("host", "a")
                .header("host", HeaderValue::from_static("\tb")),
        );
        assert!(matches!(
            rejected(&second).violation(),
            Violation::InvalidFieldValue { name } if name == "host"
        ));
        let percent = [
            ("a%4", false),
            ("a%41:80", true),
            ("a%41b:0080", true),
            ("a:", false),
        ];
        for (host, valid) in percent {
            let request = parts(get("/").header("host", host));
            assert_eq!(
                check_request(&request, &RequestRules::new()).is_ok(),
                valid,
                "{host:?}"
            );
        }
    }

    #[test]
    fn host_missing_repeated_or_invalid_is_400_and_closes() {
        let missing = parts(get("/"));
        assert_eq!(rejected(&missing).violation(), &Violation::MissingHost);
        assert!(rejected(&missing).closes_connection());
        let two = parts(get("/").header("host", "a").header("host", "a"));
        assert_eq!(
            rejected(&two).violation(),
            &Violation::RepeatedHost { count: 2 }
        );
        for bad in [
            "", "a b", "u@a", "a:99999", ":80", "a:", "a:8o", "[::1", "[zz]", "[::1]x", "a:1:2",
            "a%zz", "[v1.]", "a/b", "a?b",
        ] {
            let request = parts(get("/").header("host", bad));
            let rejection = rejected(&request);
            assert_eq!(rejection.status(), StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(
                matches!(rejection.violation(), Violation::InvalidHost { .. }),
                "{bad:?}: {rejection}"
            );
        }
        for good in [
            "a",
            "a:0",
            "a:65535",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:443",
            "x%41y",
            "[v7.a:b]",
            "EXAMPLE.org",
        ] {
            let request = parts(get("/").header("host", good));
            check_request(&request, &RequestRules::new()).unwrap();
        }
    }

    #[test]
    fn http10_needs_no_host_but_checks_one_given() {
        let request = parts(get("/").version(Version::HTTP_10));
        check_request(&request, &RequestRules::new()).unwrap();
        let request = parts(get("/").version(Version::HTTP_10).header("host", "a b"));
        assert_eq!(status(&request), 400);
    }

    #[test]
    fn absolute_form_must_agree_with_host() {
        let ok = parts(get("http://a.example/x").header("host", "A.EXAMPLE:80"));
        check_request(&ok, &RequestRules::new()).unwrap();
        let ok = parts(get("https://a.example:443/").header("host", "a.example"));
        check_request(&ok, &RequestRules::new()).unwrap();
        for (target, host) in [
            ("http://a.example/", "b.example"),
            ("http://a.example/", "a.example:81"),
            ("https://a.example/", "a.example:80"),
        ] {
            let request = parts(get(target).header("host", host));
            assert!(
                matches!(
                    rejected(&request).violation(),
                    Violation::HostMismatch { .. }
                ),
                "{target} {host}"
            );
        }
        let ftp = parts(get("ftp://a.example/").header("host", "a.example"));
        assert!(matches!(
            rejected(&ftp).violation(),
            Violation::UnsupportedScheme { .. }
        ));
        // HTTP/1.1 needs Host even with the authority in the target.
        let no_host = parts(get("http://a.example/"));
        assert_eq!(rejected(&no_host).violation(), &Violation::MissingHost);
        let userinfo = parts(get("http://u@a.example/").header("host", "a.example"));
        assert!(matches!(
            rejected(&userinfo).violation(),
            Violation::InvalidHost { .. }
        ));
    }

    #[test]
    fn present_host_takes_the_targets_authority() {
        let mut request = parts(get("http://a.example:8/x").header("host", "A.example:8"));
        check_request(&request, &RequestRules::new()).unwrap();
        present_host(&mut request);
        assert_eq!(request.headers.get_all("host").iter().count(), 1);
        assert_eq!(request.headers["host"], "a.example:8");
        let mut origin = parts(get("/x").header("host", "B"));
        present_host(&mut origin);
        assert_eq!(origin.headers["host"], "B");
        let mut h2 = parts(get("https://c.example/x").version(Version::HTTP_2));
        check_request(&h2, &RequestRules::new()).unwrap();
        present_host(&mut h2);
        assert_eq!(h2.headers["host"], "c.example");
        assert_eq!(h2.uri, "/x");
        let asterisk = http::uri::Builder::new()
            .scheme("https")
            .authority("c.example")
            .path_and_query("*")
            .build()
            .unwrap();
        let mut star = parts(Request::options(asterisk).version(Version::HTTP_2));
        check_request(&star, &RequestRules::new()).unwrap();
        present_host(&mut star);
        assert_eq!(star.uri, "*");
        assert_eq!(star.headers["host"], "c.example");
        let mut h2 = parts(
            get("https://c.example/x")
                .version(Version::HTTP_2)
                .header("host", "C.example"),
        );
        check_request(&h2, &RequestRules::new()).unwrap();
        present_host(&mut h2);
        assert_eq!(h2.headers["host"], "C.example");
    }

    #[test]
    fn target_forms_and_their_methods() {
        let connect = parts(Request::connect("a.example:443").header("host", "a.example:443"));
        assert_eq!(rejected(&connect).violation(), &Violation::Connect);
        assert_eq!(status(&connect), 501);
        let connect_origin = parts(Request::connect("/x").header("host", "a"));
        assert_eq!(status(&connect_origin), 400);
        let authority = parts(get("a.example:443").header("host", "a"));
        assert!(matches!(
            rejected(&authority).violation(),
            Violation::TargetForm {
                form: "authority-form",
                ..
            }
        ));
        let star = parts(get("*").header("host", "a"));
        assert!(matches!(
            rejected(&star).violation(),
            Violation::TargetForm {
                form: "asterisk-form",
                ..
            }
        ));
        let options = parts(Request::options("*").header("host", "a"));
        check_request(&options, &RequestRules::new()).unwrap();
    }

    #[test]
    fn extended_connect_only_when_allowed() {
        let mut request =
            parts(Request::connect("https://a.example/chat").version(Version::HTTP_2));
        request
            .extensions
            .insert(hyper::ext::Protocol::from_static("websocket"));
        assert_eq!(rejected(&request).violation(), &Violation::ExtendedConnect);
        assert_eq!(status(&request), 501);
        assert!(!rejected(&request).closes_connection());
        check_request(&request, &RequestRules::new().extended_connect(true)).unwrap();
        // Without :protocol it is a tunnel.
        let tunnel = parts(Request::connect("a.example:443").version(Version::HTTP_2));
        assert_eq!(rejected(&tunnel).violation(), &Violation::Connect);
    }

    #[test]
    fn target_length_and_bytes() {
        let long = format!("/{}", "a".repeat(DEFAULT_MAX_TARGET_LEN));
        let request = parts(get(&long).header("host", "a"));
        assert_eq!(status(&request), 414);
        let exact = format!("/{}", "a".repeat(DEFAULT_MAX_TARGET_LEN - 1));
        check_request(
            &parts(get(&exact).header("host", "a")),
            &RequestRules::new(),
        )
        .unwrap();
        let rules = RequestRules::new().max_target_len(4);
        assert_eq!(
            check_request(&parts(get("/abcd").header("host", "a")), &rules)
                .unwrap_err()
                .status(),
            StatusCode::URI_TOO_LONG
        );
        for bad in [
            "/a%zz", "/a%4", "/a%", "/a?b=%g0", "/a{b}", "/a|b", "/a^b", "/a\"b",
        ] {
            let Ok(uri) = bad.parse::<Uri>() else {
                continue;
            };
            let request = parts(Request::get(uri).header("host", "a"));
            assert!(
                matches!(
                    rejected(&request).violation(),
                    Violation::InvalidTarget { .. }
                ),
                "{bad}"
            );
        }
        check_request(
            &parts(get("/a[0]=1?x[]=y&z=%41~").header("host", "a")),
            &RequestRules::new(),
        )
        .unwrap();
    }

    #[test]
    fn transfer_codings() {
        let post = || Request::post("/").header("host", "a");
        let chunked = parts(post().header("transfer-encoding", "Chunked"));
        check_request(&chunked, &RequestRules::new()).unwrap();
        let gzip = parts(post().header("transfer-encoding", "gzip, chunked"));
        assert_eq!(status(&gzip), 501);
        assert!(rejected(&gzip).closes_connection());
        let two_lines = parts(
            post()
                .header("transfer-encoding", "gzip")
                .header("transfer-encoding", "chunked"),
        );
        assert_eq!(status(&two_lines), 501);
        for bad in ["chunked, chunked", "chunked, gzip", "gzip", "", ",,"] {
            let request = parts(post().header("transfer-encoding", bad));
            assert!(
                matches!(
                    rejected(&request).violation(),
                    Violation::InvalidTransferCoding { .. }
                ),
                "{bad:?}"
            );
        }
        let repeated = parts(
            post()
                .header("transfer-encoding", "chunked")
                .header("transfer-encoding", "chunked"),
        );
        assert_eq!(status(&repeated), 400);
        let http10 = parts(
            post()
                .version(Version::HTTP_10)
                .header("transfer-encoding", "chunked"),
        );
        assert_eq!(
            rejected(&http10).violation(),
            &Violation::TransferEncodingOnHttp10
        );
        let both = parts(
            post()
                .header("transfer-encoding", "chunked")
                .header("content-length", "5"),
        );
        assert_eq!(
            rejected(&both).violation(),
            &Violation::LengthWithTransferEncoding
        );
    }

    #[test]
    fn content_lengths() {
        let post = || Request::post("/").header("host", "a");
        for good in ["0", "5", "5, 5", "18446744073709551615"] {
            check_request(
                &parts(post().header("content-length", good)),
                &RequestRules::new(),
            )
            .unwrap();
        }
        check_request(
            &parts(
                post()
                    .header("content-length", "5")
                    .header("content-length", "5"),
            ),
            &RequestRules::new(),
        )
        .unwrap();
        for bad in [
            "+5",
            "-1",
            "",
            "0x5",
            "5 5",
            "18446744073709551616",
            "5,",
            "five",
        ] {
            let request = parts(post().header("content-length", bad));
            assert!(
                matches!(
                    rejected(&request).violation(),
                    Violation::InvalidContentLength { .. }
                ),
                "{bad:?}"
            );
        }
        let conflicting = parts(
            post()
                .header("content-length", "5")
                .header("content-length", "6"),
        );
        assert_eq!(
            rejected(&conflicting).violation(),
            &Violation::ConflictingContentLength { first: 5, other: 6 }
        );
        assert_eq!(status(&parts(post().header("content-length", "5, 6"))), 400);
    }

    #[test]
    fn expectations() {
        let put = || Request::put("/").header("host", "a");
        check_request(
            &parts(put().header("expect", "100-Continue")),
            &RequestRules::new(),
        )
        .unwrap();
        for bad in ["foo", "100-continue, foo", "", "100-continue; x=1"] {
            let request = parts(put().header("expect", bad));
            assert_eq!(status(&request), 417, "{bad:?}");
        }
    }

    #[test]
    fn field_values() {
        // obs-text is opaque data (RFC 9110 §5.5) and is kept.
        let obs = parts(
            get("/")
                .header("host", "a")
                .header("x-latin", HeaderValue::from_bytes(b"caf\xe9").unwrap()),
        );
        check_request(&obs, &RequestRules::new()).unwrap();
        for bad in [&b" lead"[..], b"trail\t", b"del\x7f"] {
            let Ok(value) = HeaderValue::from_bytes(bad) else {
                continue;
            };
            let request = parts(get("/").header("host", "a").header("x-bad", value));
            assert!(matches!(
                rejected(&request).violation(),
                Violation::InvalidFieldValue { .. }
            ));
        }
        // A HeaderValue cannot hold these, but the check must refuse them
        // should one ever be built unchecked.
        assert!(!valid_field_value(b"a\0b"));
        assert!(!valid_field_value(b"a\rb"));
        assert!(!valid_field_value(b"a\nb"));
        assert!(valid_field_value(b"a \tb"));
        assert!(valid_field_value(b""));
    }

    #[test]
    fn http2_connection_specific_fields_and_te() {
        let h2 = || get("https://a.example/").version(Version::HTTP_2);
        check_request(&parts(h2().header("te", "trailers")), &RequestRules::new()).unwrap();
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
        ] {
            let request = parts(h2().header(name, "x"));
            let rejection = rejected(&request);
            assert!(
                matches!(
                    rejection.violation(),
                    Violation::ConnectionSpecificField { .. }
                ),
                "{name}"
            );
            assert!(!rejection.closes_connection());
        }
        let te = parts(h2().header("te", "gzip"));
        assert!(matches!(
            rejected(&te).violation(),
            Violation::TeNotTrailers { .. }
        ));
    }

    #[test]
    fn http2_authority_and_host() {
        let h2 = |target: &str| get(target).version(Version::HTTP_2);
        check_request(
            &parts(h2("https://a.example/").header("host", "A.example:443")),
            &RequestRules::new(),
        )
        .unwrap();
        let mismatch = parts(h2("https://a.example/").header("host", "b.example"));
        assert!(matches!(
            rejected(&mismatch).violation(),
            Violation::HostMismatch { .. }
        ));
        let neither = parts(h2("/x"));
        assert_eq!(rejected(&neither).violation(), &Violation::MissingHost);
        check_request(&parts(h2("/x").header("host", "a")), &RequestRules::new()).unwrap();
        let userinfo = parts(h2("https://u@a.example/"));
        assert!(matches!(
            rejected(&userinfo).violation(),
            Violation::InvalidHost { .. }
        ));
        let star = parts(
            Request::options("*")
                .version(Version::HTTP_2)
                .header("host", "a"),
        );
        check_request(&star, &RequestRules::new()).unwrap();
    }

    #[test]
    fn header_section_limits() {
        let rules = RequestRules::new().max_header_section(40, 3);
        // "host: a\r\n" is 9 bytes and "x: " with 20 bytes and CRLF 25: 34 in two lines.
        let fits = parts(get("/").header("host", "a").header("x", "a".repeat(20)));
        check_request(&fits, &rules).unwrap();
        let big = parts(get("/").header("host", "a").header("x", "a".repeat(30)));
        let rejection = check_request(&big, &rules).unwrap_err();
        assert_eq!(
            rejection.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert!(rejection.closes_connection());
        let many = parts(
            get("/")
                .header("host", "a")
                .header("x", "1")
                .header("x", "2")
                .header("y", "3"),
        );
        assert!(matches!(
            check_request(&many, &rules).unwrap_err().violation(),
            Violation::HeaderSectionTooLarge { fields: 4, .. }
        ));
        let default = parts(
            get("/")
                .header("host", "a")
                .header("x", "a".repeat(64 * 1024)),
        );
        assert_eq!(status(&default), 431);
    }

    #[test]
    fn versions() {
        let request = parts(get("/").version(Version::HTTP_09).header("host", "a"));
        assert_eq!(status(&request), 505);
    }

    #[test]
    fn rejections_display_escaped() {
        let request = parts(get("/").header("host", HeaderValue::from_bytes(b"\xff\"x").unwrap()));
        let text = rejected(&request).to_string();
        assert!(text.starts_with("400 RGI-PROTO-1"), "{text}");
        assert!(text.contains("\\xff\\\"x"), "{text}");
        assert!(escaped(&[b'a'; 300]).ends_with("... (300 bytes)"));
    }

    fn arbitrary_parts() -> impl Strategy<Value = Parts> {
        let methods = prop::sample::select(vec!["GET", "POST", "CONNECT", "OPTIONS", "X-Y"]);
        let versions = prop::sample::select(vec![
            Version::HTTP_09,
            Version::HTTP_10,
            Version::HTTP_11,
            Version::HTTP_2,
            Version::HTTP_3,
        ]);
        let names = prop::sample::select(vec![
            "host",
            "content-length",
            "transfer-encoding",
            "expect",
            "te",
            "connection",
            "x-any",
        ]);
        let fields =
            prop::collection::vec((names, prop::collection::vec(any::<u8>(), 0..24)), 0..8);
        (methods, "[ -~]{0,40}", versions, fields, any::<bool>()).prop_map(
            |(method, target, version, fields, protocol)| {
                let mut builder = Request::builder().method(method).version(version);
                if let Ok(uri) = target.parse::<Uri>() {
                    builder = builder.uri(uri);
                }
                let (mut parts, ()) = match builder.body(()) {
                    Ok(request) => request.into_parts(),
                    Err(_) => Request::new(()).into_parts(),
                };
                for (name, value) in fields {
                    if let Ok(value) = HeaderValue::from_bytes(&value) {
                        parts.headers.append(name, value);
                    }
                }
                if protocol {
                    parts
                        .extensions
                        .insert(hyper::ext::Protocol::from_static("websocket"));
                }
                parts
            },
        )
    }

    proptest! {
        #[test]
        fn no_request_panics(mut parts in arbitrary_parts(), limit in 0usize..64, extended: bool) {
            let rules = RequestRules::new().max_target_len(limit).extended_connect(extended);
            match check_request(&parts, &rules) {
                Ok(()) => {
                    present_host(&mut parts);
                    let hosts = parts.headers.get_all(header::HOST).iter().count();
                    prop_assert!(hosts <= 1);
                    if parts.version == Version::HTTP_11 || parts.version == Version::HTTP_2 {
                        prop_assert_eq!(hosts, 1);
                    }
                }
                Err(rejection) => {
                    let status = rejection.status().as_u16();
                    prop_assert!([400, 414, 417, 431, 501, 505].contains(&status));
                    prop_assert!(!rejection.to_string().is_empty());
                    prop_assert_eq!(rejection.closes_connection(), !is_multiplexed(parts.version));
                }
            }
        }

        #[test]
        fn authority_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            if let Ok((host, port)) = valid_authority(&bytes) {
                prop_assert!(!host.is_empty());
                prop_assert!(port.is_none() || bytes.contains(&b':'));
            }
        }
    }
}
