//! The strict request-head parser: the request line by hand, the field
//! lines with httparse, then every framing and routing rule of
//! spec/rgi.md §12.3 (`[RGI-PROTO-1]` to `[RGI-PROTO-10]`) before an environ
//! exists.

use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

use crate::config::Limits;

/// How the request says its body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Neither Content-Length nor Transfer-Encoding: no body.
    None,
    /// A Content-Length.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head that passed every check.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) parts: http::request::Parts,
    pub(crate) framing: Framing,
    /// The request allows the connection to be kept (version and
    /// Connection field).
    pub(crate) keep_alive: bool,
    /// HTTP/1.1 with `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
    /// HTTP/1.1 with `trailers` in its `TE` field: the client accepts a
    /// trailer section after a chunked response (RFC 9112 §7.4).
    pub(crate) te_trailers: bool,
    /// What the head took of the limits a trailer section shares with it.
    pub(crate) budget_used: FieldBudget,
}

/// Bytes and field lines of a request's fields: the head's own, and what
/// is left of `max_head` and `max_fields` for the trailer section after a
/// chunked body, which shares those limits with the head it follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FieldBudget {
    /// Bytes (of the head: the request line included).
    pub(crate) bytes: usize,
    /// Field lines.
    pub(crate) fields: usize,
}

impl FieldBudget {
    /// What `limits` leave after `self` was used.
    pub(crate) fn left(self, limits: &Limits) -> FieldBudget {
        FieldBudget {
            bytes: limits.max_head.saturating_sub(self.bytes),
            fields: limits.max_fields.saturating_sub(self.fields),
        }
    }
}

/// The server's own answer to a head it refuses; the connection closes
/// after it (`[RGI-PROTO-10]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
}

fn refuse<T>(status: StatusCode, reason: &'static str) -> Result<T, Refusal> {
    Err(Refusal { status, reason })
}

fn bad<T>(reason: &'static str) -> Result<T, Refusal> {
    refuse(StatusCode::BAD_REQUEST, reason)
}

/// What the bytes so far amount to.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A whole, valid head, and how many bytes of the buffer it took.
    Complete(Box<RequestHead>, usize),
}

/// Longest method accepted; also the slack for the request line around the
/// target when deciding 414 before the line is complete.
const MAX_METHOD: usize = 64;

/// How many empty lines before a request line are skipped (RFC 9112 §2.2:
/// a server SHOULD ignore at least one); more are refused, so that a peer
/// cannot hold a connection by sending nothing but line endings.
const MAX_EMPTY_LINES: usize = 4;

/// Parses the head at the start of `buf`, after at most
/// [`MAX_EMPTY_LINES`] empty lines.
pub(crate) fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, Refusal> {
    let mut skipped = 0;
    for _ in 0..MAX_EMPTY_LINES {
        match &buf[skipped..] {
            [b'\r', b'\n', ..] => skipped += 2,
            [b'\n', ..] => skipped += 1,
            _ => break,
        }
    }
    let rest = &buf[skipped..];
    match rest {
        // The CR of what may be an empty line: wait for its LF.
        [b'\r'] => return Ok(Parsed::Partial),
        [b'\r' | b'\n', ..] => return bad("empty lines or a CR before the request line"),
        _ => {}
    }
    match parse_head(rest, limits)? {
        Parsed::Complete(head, used) => Ok(Parsed::Complete(head, skipped + used)),
        Parsed::Partial => Ok(Parsed::Partial),
    }
}

/// Parses the head at the very start of `buf`.
fn parse_head(buf: &[u8], limits: &Limits) -> Result<Parsed, Refusal> {
    let Some(line_end) = buf.iter().position(|&b| b == b'\n') else {
        // The method is judged as soon as it arrives, so that bytes that
        // cannot start a request (a TLS handshake on a plain port, binary
        // noise) are answered at once instead of after the head timeout.
        let method_end = buf.iter().position(|&b| b == b' ').unwrap_or(buf.len());
        let method = &buf[..method_end];
        let method = method.strip_suffix(b"\r").unwrap_or(method);
        if method.len() > MAX_METHOD || !method.iter().all(|&b| is_tchar(b)) {
            return bad("method is not a token");
        }
        if buf.len() > limits.max_target + MAX_METHOD + 16 {
            return refuse(
                StatusCode::URI_TOO_LONG,
                "request line over the target limit",
            );
        }
        if buf.len() > limits.max_head {
            return refuse(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "head over the size limit",
            );
        }
        return Ok(Parsed::Partial);
    };
    let line = strip_cr(&buf[..line_end])?;
    let (method, target, version) = request_line(line, limits)?;

    let rest = &buf[line_end + 1..];
    let (headers, used) = match field_section(rest, limits.max_fields)? {
        Section::Complete(headers, used) => (headers, used),
        Section::Partial => {
            if buf.len() > limits.max_head {
                return refuse(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "head over the size limit",
                );
            }
            return Ok(Parsed::Partial);
        }
    };
    let consumed = line_end + 1 + used;
    if consumed > limits.max_head {
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "head over the size limit",
        );
    }
    let fields = headers.len();
    let mut head = check(method, target, version, headers, limits)?;
    head.budget_used = FieldBudget {
        bytes: consumed,
        fields,
    };
    Ok(Parsed::Complete(Box::new(head), consumed))
}

/// A field section (the field lines and the empty line that ends them) as
/// far as it has arrived.
#[derive(Debug)]
pub(crate) enum Section {
    /// The empty line has not arrived yet.
    Partial,
    /// The fields, and how many bytes the section took.
    Complete(HeaderMap, usize),
}

/// Parses the field section at the start of `buf`, with at most
/// `max_fields` field lines: the header section of a request, and the
/// trailer section after a chunked body (RFC 9112 §5, §7.1.2), under the
/// same rules. A field line is `field-name ":" OWS field-value OWS`, without
/// obs-fold (httparse refuses it in a request), whitespace before the colon,
/// a bare CR, NUL or another control character but HTAB in a value: 400;
/// more field lines than `max_fields`: 431.
pub(crate) fn field_section(buf: &[u8], max_fields: usize) -> Result<Section, Refusal> {
    let mut slots = vec![httparse::EMPTY_HEADER; max_fields];
    let (used, fields) = match httparse::parse_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete((used, fields))) => (used, fields),
        Ok(httparse::Status::Partial) => return Ok(Section::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return refuse(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many field lines",
            );
        }
        Err(_) => return bad("malformed field line"),
    };
    // httparse takes a bare CR for a line ending in places; RFC 9112 §2.2
    // makes a bare CR invalid anywhere in the head.
    let section = &buf[..used];
    if section
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\r' && section.get(i + 1) != Some(&b'\n'))
    {
        return bad("bare CR in a field section");
    }
    if section.contains(&0) {
        return bad("NUL in a field section");
    }

    let mut headers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        if field
            .value
            .iter()
            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return bad("control character in a field value");
        }
        let Ok(name) = HeaderName::from_bytes(field.name.as_bytes()) else {
            return bad("field name is not a token");
        };
        let Ok(value) = HeaderValue::from_bytes(field.value) else {
            return bad("invalid field value");
        };
        headers.append(name, value);
    }
    Ok(Section::Complete(headers, used))
}

/// The line without its CR, which may only end it.
fn strip_cr(line: &[u8]) -> Result<&[u8], Refusal> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&b'\r') {
        return bad("bare CR in the request line");
    }
    Ok(line)
}

/// `method SP request-target SP HTTP-version`, exactly (`[RGI-PROTO-9]`,
/// `[RGI-PROTO-7]`).
fn request_line<'a>(
    line: &'a [u8],
    limits: &Limits,
) -> Result<(Method, &'a [u8], Version), Refusal> {
    let Some(first) = line.iter().position(|&b| b == b' ') else {
        return bad("request line without spaces");
    };
    let method = &line[..first];
    if method.is_empty() || method.len() > MAX_METHOD || !method.iter().all(|&b| is_tchar(b)) {
        return bad("method is not a token");
    }
    let after = &line[first + 1..];
    let Some(second) = after.iter().position(|&b| b == b' ') else {
        return bad("request line without a version");
    };
    let target = &after[..second];
    let version = &after[second + 1..];
    if target.len() > limits.max_target {
        return refuse(StatusCode::URI_TOO_LONG, "request target over the limit");
    }
    if target.is_empty() || !target.iter().all(|&b| is_target_char(b)) {
        return bad("invalid request target");
    }
    let version = match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major, minor) {
                (b'1', b'0') => Version::HTTP_10,
                // RFC 9110 §2.5: a later 1.x minor is answered as 1.1.
                (b'1', _) => Version::HTTP_11,
                _ => {
                    return refuse(
                        StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                        "unsupported HTTP version",
                    );
                }
            }
        }
        _ => return bad("malformed HTTP version"),
    };
    let Ok(method) = Method::from_bytes(method) else {
        return bad("method is not a token");
    };
    Ok((method, target, version))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 3986 characters of a request target (no fragment).
fn is_target_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%[]".contains(&b)
}

/// The semantic checks on a syntactically valid head.
fn check(
    method: Method,
    target: &[u8],
    version: Version,
    mut headers: HeaderMap,
    limits: &Limits,
) -> Result<RequestHead, Refusal> {
    let Ok(uri) = Uri::try_from(target) else {
        return bad("invalid request target");
    };

    // Target form against method (`[RGI-PROTO-6]`, `[RGI-PATH-8]`).
    let hosts = headers.get_all(HOST).iter().count();
    if hosts > 1 {
        return bad("more than one Host field");
    }
    if version == Version::HTTP_11 && hosts == 0 {
        return bad("HTTP/1.1 request without Host");
    }
    if let Some(host) = headers.get(HOST) {
        if !valid_authority(host.as_bytes()) {
            return bad("invalid Host");
        }
    }
    if method == Method::CONNECT {
        if target.starts_with(b"/") || target == b"*" || uri.scheme().is_some() {
            return bad("CONNECT without an authority-form target");
        }
        return refuse(StatusCode::NOT_IMPLEMENTED, "CONNECT is not supported");
    }
    if target == b"*" {
        if method != Method::OPTIONS {
            return bad("asterisk-form with a method other than OPTIONS");
        }
    } else if !target.starts_with(b"/") {
        absolute_form(&uri, &mut headers)?;
    }

    // Transfer-Encoding (`[RGI-PROTO-3]`).
    let mut chunked = false;
    if headers.contains_key(TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return bad("Transfer-Encoding in an HTTP/1.0 request");
        }
        let mut codings = Vec::new();
        for value in headers.get_all(TRANSFER_ENCODING) {
            for member in value.as_bytes().split(|&b| b == b',') {
                let coding = trim_ows(member).to_ascii_lowercase();
                if coding.is_empty() {
                    return bad("empty transfer coding");
                }
                codings.push(coding);
            }
        }
        let count = codings
            .iter()
            .filter(|c| c.as_slice() == b"chunked")
            .count();
        if count != 1 || codings.last().map(Vec::as_slice) != Some(b"chunked".as_slice()) {
            return bad("chunked is not the final transfer coding, once");
        }
        if codings.len() > 1 {
            return refuse(
                StatusCode::NOT_IMPLEMENTED,
                "transfer coding not implemented",
            );
        }
        chunked = true;
    }

    // Content-Length (`[RGI-PROTO-4]`): a list within one line is refused.
    let mut length: Option<u64> = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let bytes = value.as_bytes();
        if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
            return bad("malformed Content-Length");
        }
        let Some(parsed) = std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return bad("Content-Length does not fit in 64 bits");
        };
        match length {
            Some(seen) if seen != parsed => return bad("conflicting Content-Length"),
            _ => length = Some(parsed),
        }
    }
    if chunked && length.is_some() {
        return bad("both Content-Length and Transfer-Encoding");
    }

    // Expect (`[RGI-PROTO-5]`); ignored on HTTP/1.0 once valid (`[RGI-INPUT-23]`).
    let mut expect_continue = false;
    for value in headers.get_all(EXPECT) {
        for member in value.as_bytes().split(|&b| b == b',') {
            if !trim_ows(member).eq_ignore_ascii_case(b"100-continue") {
                return refuse(StatusCode::EXPECTATION_FAILED, "unknown expectation");
            }
            expect_continue = version == Version::HTTP_11;
        }
    }

    // A close anywhere wins over a keep-alive (RFC 9112 §9.3).
    let (mut close, mut keep) = (false, false);
    for value in headers.get_all(CONNECTION) {
        for member in value.as_bytes().split(|&b| b == b',') {
            let token = trim_ows(member);
            close |= token.eq_ignore_ascii_case(b"close");
            keep |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    let keep_alive = !close && (version == Version::HTTP_11 || keep);

    // `TE` is a list of t-codings; `trailers` takes no parameters.
    let te_trailers = version == Version::HTTP_11
        && headers.get_all(TE).iter().any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|member| trim_ows(member).eq_ignore_ascii_case(b"trailers"))
        });

    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) if n > limits.max_body => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "declared body over the limit",
            );
        }
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::None,
    };
    // The server decodes the coding itself (`[RGI-HDR-4]`).
    headers.remove(TRANSFER_ENCODING);

    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(RequestHead {
        parts,
        framing,
        keep_alive,
        expect_continue,
        te_trailers,
        budget_used: FieldBudget::default(),
    })
}

/// An absolute-form target: `http` or `https`, a valid authority that
/// agrees with any Host field and becomes the `host` entry
/// (`[RGI-PROTO-2]`, `[RGI-PATH-9]`).
fn absolute_form(uri: &Uri, headers: &mut HeaderMap) -> Result<(), Refusal> {
    let Some(scheme) = uri.scheme_str() else {
        return bad("authority-form target without CONNECT");
    };
    let default_port = if scheme.eq_ignore_ascii_case("http") {
        80
    } else if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        return bad("absolute-form target with a scheme other than http or https");
    };
    let Some(authority) = uri.authority() else {
        return bad("absolute-form target without an authority");
    };
    if authority.as_str().contains('@') || !valid_authority(authority.as_str().as_bytes()) {
        return bad("invalid authority in the target");
    }
    if let Some(host) = headers.get(HOST) {
        let same = std::str::from_utf8(host.as_bytes())
            .ok()
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .is_some_and(|h| {
                h.host().eq_ignore_ascii_case(authority.host())
                    && h.port_u16().unwrap_or(default_port)
                        == authority.port_u16().unwrap_or(default_port)
            });
        if !same {
            return bad("Host disagrees with the target's authority");
        }
    }
    let Ok(value) = HeaderValue::from_str(authority.as_str()) else {
        return bad("invalid authority in the target");
    };
    headers.insert(HOST, value);
    Ok(())
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

/// `uri-host [ ":" port ]` with a non-empty host and a port of at most
/// 65535 when present (RFC 3986 §3.2.2, §3.2.3).
pub(crate) fn valid_authority(value: &[u8]) -> bool {
    let port = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &rest[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return false,
        }
    } else {
        let (host, port) = match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        };
        if host.is_empty() || !valid_reg_name(host) {
            return false;
        }
        port
    };
    match port {
        None => true,
        Some(port) => {
            !port.is_empty()
                && port.len() <= 5
                && port.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(port)
                    .ok()
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|p| p <= 65535)
        }
    }
}

/// unreserved / pct-encoded / sub-delims (which covers IPv4 literals).
fn valid_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if b == b'%' {
            let hex = host.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(raw: &[u8]) -> Option<StatusCode> {
        match parse(raw, &Limits::default()) {
            Ok(_) => None,
            Err(refusal) => Some(refusal.status),
        }
    }

    #[test]
    fn accepts_a_plain_get() {
        let raw = b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\nrest";
        let Ok(Parsed::Complete(head, used)) = parse(raw, &Limits::default()) else {
            panic!("not complete");
        };
        assert_eq!(used, raw.len() - 4);
        assert_eq!(head.framing, Framing::None);
        assert!(head.keep_alive);
    }

    #[test]
    fn partial_until_the_blank_line() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n", &Limits::default()),
            Ok(Parsed::Partial)
        ));
    }

    #[test]
    fn skips_a_few_empty_lines_before_the_request_line() {
        let raw = b"\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let Ok(Parsed::Complete(_, used)) = parse(raw, &Limits::default()) else {
            panic!("not complete");
        };
        assert_eq!(used, raw.len());
        assert!(matches!(
            parse(b"\r\n\r", &Limits::default()),
            Ok(Parsed::Partial)
        ));
        assert_eq!(
            status(b"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn refuses_a_method_that_is_not_a_token_before_the_line_ends() {
        // A TLS ClientHello on the plain port: no line end will come soon.
        assert_eq!(
            status(b"\x16\x03\x01\x00\xa5\x01\x00"),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(status(b"GE(T"), Some(StatusCode::BAD_REQUEST));
        assert!(matches!(
            parse(b"GET /a", &Limits::default()),
            Ok(Parsed::Partial)
        ));
        assert!(matches!(
            parse(b"PATCH", &Limits::default()),
            Ok(Parsed::Partial)
        ));
    }

    fn head(raw: &[u8]) -> Box<RequestHead> {
        match parse(raw, &Limits::default()) {
            Ok(Parsed::Complete(head, _)) => head,
            other => panic!("not a complete head: {other:?}"),
        }
    }

    #[test]
    fn te_trailers_is_a_list_member_on_http_1_1_only() {
        for (te, accepted) in [
            ("trailers", true),
            ("TRAILERS", true),
            ("deflate;q=0.5, trailers", true),
            (" trailers ,gzip", true),
            ("trailers;q=1", false),
            ("trailer", false),
            ("gzip", false),
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: x\r\nTE: {te}\r\n\r\n");
            assert_eq!(head(raw.as_bytes()).te_trailers, accepted, "TE: {te}");
        }
        let split = b"GET / HTTP/1.1\r\nHost: x\r\nTE: gzip\r\nTE: trailers\r\n\r\n";
        assert!(head(split).te_trailers);
        assert!(!head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").te_trailers);
        assert!(!head(b"GET / HTTP/1.0\r\nTE: trailers\r\n\r\n").te_trailers);
    }

    #[test]
    fn a_head_records_what_it_took_of_the_field_limits() {
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n";
        let used = head(raw).budget_used;
        assert_eq!(
            used,
            FieldBudget {
                bytes: raw.len(),
                fields: 2
            }
        );
        let limits = Limits::default().with_max_head(100).with_max_fields(5);
        assert_eq!(
            used.left(&limits),
            FieldBudget {
                bytes: 100 - raw.len(),
                fields: 3
            }
        );
    }

    #[test]
    fn authorities() {
        assert!(valid_authority(b"example.com:8080"));
        assert!(valid_authority(b"[::1]:80"));
        assert!(!valid_authority(b""));
        assert!(!valid_authority(b"a:99999"));
        assert!(!valid_authority(b"a b"));
        assert!(!valid_authority(b"a:"));
    }

    #[test]
    fn versions() {
        assert_eq!(
            status(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
            Some(StatusCode::HTTP_VERSION_NOT_SUPPORTED)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1x\r\nHost: x\r\n\r\n"),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
