//! Request heads: httparse does the parsing, this module applies the
//! framing and Host rules of RFC 9112 and spec/rgi.md (`RGI-HDR-4`,
//! `RGI-HDR-5`, `RGI-PATH-9`, `RGI-PATH-10`) and says what to answer when a
//! head is refused.

use http::header::{self, HeaderName, HeaderValue};
use http::uri::Authority;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode, Uri, Version};

use super::Fault;
use rgi_conformance::suite::Limits;

/// The toy's limits (`RGI-LIMIT-1`): the recommended ones, with times
/// short enough for the suite to wait them out.
pub(crate) const LIMITS: Limits = Limits::RECOMMENDED
    .with_header_section(16 * 1024, 100)
    .with_head_time(Duration::from_secs(3))
    .with_idle_time(Duration::from_secs(4))
    .with_body_time(Duration::from_secs(5));

/// The most bytes a head can take in the read-ahead buffer: a request
/// line at the target limit, a header section at its limit, and room for
/// the line endings that make it just too long.
pub(crate) const MAX_HEAD: usize = LIMITS.target + LIMITS.header_size + 64;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Neither Content-Length nor Transfer-Encoding: no body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

impl Framing {
    /// The input's declared length: `None` for a chunked body.
    pub(crate) fn declared(self) -> Option<u64> {
        match self {
            Framing::Empty => Some(0),
            Framing::Length(length) => Some(length),
            Framing::Chunked => None,
        }
    }

    /// Whether the request has body bytes to read at all.
    pub(crate) fn has_body(self) -> bool {
        !matches!(self, Framing::Empty | Framing::Length(0))
    }
}

/// A parsed and checked request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    /// Every field line as received, `transfer-encoding` removed; for an
    /// absolute-form target `host` is the target's authority.
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body.
    pub(crate) expect_continue: bool,
    /// Whether the client allows the connection to be kept afterwards.
    pub(crate) persist: bool,
    /// The protocols offered in `Upgrade`, when the request asks for an
    /// upgrade the way RFC 9110 §7.8 requires (HTTP/1.1, `Connection:
    /// upgrade`).
    pub(crate) upgrade: Option<Vec<String>>,
    /// The protocols of the `Upgrade` field, however the request was made.
    pub(crate) protocols: Vec<String>,
    /// The host name the request was addressed to, without its port.
    pub(crate) host: Option<String>,
}

/// What kind of head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// Not HTTP/1.x syntax.
    Malformed,
    /// A transfer coding the toy does not implement.
    Coding,
    /// A CONNECT request.
    Connect,
    /// Any other rule.
    Other,
}

/// Why a head was refused, and what the toy answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) status: StatusCode,
    pub(crate) why: Why,
    pub(crate) reason: String,
}

impl Rejection {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Rejection {
            status,
            why: Why::Other,
            reason: reason.into(),
        }
    }

    fn bad(reason: impl Into<String>) -> Self {
        Rejection::new(StatusCode::BAD_REQUEST, reason)
    }

    fn because(mut self, why: Why) -> Self {
        self.why = why;
        self
    }
}

/// The request line at the start of `buf` (after any empty lines, which
/// RFC 9112 §2.2 lets a server skip): `Ok(None)` while incomplete.
/// Judges its syntax (`RGI-PROTO-9`), the target's length (`RGI-LIMIT-2`)
/// and the version (`RGI-PROTO-7`) before httparse sees the head, so that
/// each gets its own status.
fn request_line(buf: &[u8], fault: Option<Fault>) -> Result<Option<(usize, usize)>, Rejection> {
    let skipped = buf
        .iter()
        .take_while(|&&byte| byte == b'\r' || byte == b'\n')
        .count();
    let rest = &buf[skipped..];
    let Some(newline) = rest.iter().position(|&byte| byte == b'\n') else {
        if rest.len() > LIMITS.target + 32 && fault != Some(Fault::NoTargetLimit) {
            return Err(Rejection::new(
                StatusCode::URI_TOO_LONG,
                format!(
                    "a request line of more than {} bytes and still going",
                    rest.len()
                ),
            ));
        }
        return Ok(None);
    };
    let line = rest[..newline]
        .strip_suffix(b"\r")
        .unwrap_or(&rest[..newline]);
    let shown = || String::from_utf8_lossy(line).into_owned();
    let lenient = fault == Some(Fault::LenientRequestLine);
    let parts: Vec<&[u8]> = if lenient {
        line.split(|&byte| byte == b' ')
            .filter(|part| !part.is_empty())
            .collect()
    } else {
        line.split(|&byte| byte == b' ').collect()
    };
    let [method, target, version] = parts[..] else {
        return Err(Rejection::bad(format!(
            "request line is not `method target version`: {:?}",
            shown()
        ))
        .because(Why::Malformed));
    };
    if method.is_empty() || !method.iter().all(|&byte| is_tchar(byte)) {
        return Err(
            Rejection::bad(format!("invalid method in {:?}", shown())).because(Why::Malformed)
        );
    }
    if target.len() > LIMITS.target && fault != Some(Fault::NoTargetLimit) {
        return Err(Rejection::new(
            StatusCode::URI_TOO_LONG,
            format!(
                "a request target of {} bytes, more than {}",
                target.len(),
                LIMITS.target
            ),
        ));
    }
    if target.is_empty() || !target.iter().all(|&byte| is_target_byte(byte)) {
        return Err(
            Rejection::bad(format!("invalid request target in {:?}", shown()))
                .because(Why::Malformed),
        );
    }
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major != b'1' && fault != Some(Fault::AnyVersionIsHttp11) {
                return Err(Rejection::new(
                    StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                    format!("HTTP major version {} is not supported", char::from(*major)),
                ));
            }
        }
        _ => {
            return Err(
                Rejection::bad(format!("invalid HTTP version in {:?}", shown()))
                    .because(Why::Malformed),
            );
        }
    }
    Ok(Some((skipped, skipped + newline + 1)))
}

/// A `tchar` of RFC 9110 §5.6.2.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// A byte RFC 3986 allows in a request target: unreserved, sub-delims,
/// `:` `@` `/` `?`, `%` of a pct-encoding, and `[` `]` of an IP literal.
fn is_target_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%[]".contains(&byte)
}

/// Replaces every obs-fold in the head at the start of `buf` with a
/// space: what [`Fault::UnfoldsObsFold`] does instead of refusing it.
fn unfold(buf: &[u8]) -> Vec<u8> {
    let end = buf
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(buf.len(), |at| at + 4);
    let mut out = Vec::with_capacity(buf.len());
    let mut index = 0;
    while index < end {
        if buf[index..end].starts_with(b"\r\n")
            && matches!(buf.get(index + 2), Some(b' ' | b'\t'))
            && index + 2 < end - 2
        {
            out.push(b' ');
            index += 3;
        } else {
            out.push(buf[index]);
            index += 1;
        }
    }
    out.extend_from_slice(&buf[end..]);
    out
}

/// Parses the head at the start of `buf`: `Ok(None)` when more bytes are
/// needed, `Ok(Some((head, length)))` with the head's length in bytes
/// (of `buf`: a fault that rewrites the head keeps the length it had).
///
/// Leading empty lines are skipped (RFC 9112 §2.2).
pub(crate) fn parse(
    buf: &[u8],
    fault: Option<Fault>,
) -> Result<Option<(RequestHead, usize)>, Rejection> {
    let Some((skipped, line_end)) = request_line(buf, fault)? else {
        return Ok(None);
    };
    let rewritten;
    let mut view = buf;
    if fault == Some(Fault::UnfoldsObsFold) {
        rewritten = unfold(buf);
        view = &rewritten;
    }
    let version_patched;
    if fault == Some(Fault::AnyVersionIsHttp11) {
        // The version's eight bytes end the request line.
        let line_stop = if view[..line_end].ends_with(b"\r\n") {
            line_end - 2
        } else {
            line_end - 1
        };
        let mut copy = view.to_vec();
        if let Some(version) = copy.get_mut(line_stop.saturating_sub(8)..line_stop) {
            version.copy_from_slice(b"HTTP/1.1");
        }
        version_patched = copy;
        view = &version_patched;
    }
    let line_length = line_end - skipped;
    let count_limit = if fault == Some(Fault::NoFieldCountLimit) {
        LIMITS.header_fields * 4
    } else {
        LIMITS.header_fields
    };
    let mut fields = vec![httparse::EMPTY_HEADER; count_limit];
    let mut request = httparse::Request::new(&mut fields);
    let mut config = httparse::ParserConfig::default();
    config
        .allow_multiple_spaces_in_request_line_delimiters(fault == Some(Fault::LenientRequestLine));
    let too_large = |size: usize| {
        Rejection::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "a header section of {size} bytes, more than {}",
                LIMITS.header_size
            ),
        )
    };
    let length = match config.parse_request(&mut request, view) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => {
            let section = view.len().saturating_sub(skipped + line_length);
            if section > LIMITS.header_size + 2 {
                return Err(too_large(section));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Rejection::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("more than {} header field lines", LIMITS.header_fields),
            ));
        }
        Err(err) => {
            return Err(
                Rejection::bad(format!("malformed request head: {err}")).because(Why::Malformed)
            );
        }
    };
    // The field lines with their line endings, without the request line
    // and the empty line that ends the head.
    let section = length.saturating_sub(skipped + line_length + 2);
    if section > LIMITS.header_size {
        return Err(too_large(section));
    }
    let length = length + buf.len() - view.len();
    let method_text = request.method.unwrap_or_default();
    let method = Method::from_bytes(method_text.as_bytes())
        .map_err(|_| Rejection::bad(format!("invalid method {method_text:?}")))?;
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for field in request.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| {
            Rejection::bad(format!("invalid field name {:?}", field.name)).because(Why::Malformed)
        })?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| {
            Rejection::bad(format!(
                "invalid value of field {}: {:?}",
                field.name,
                String::from_utf8_lossy(field.value)
            ))
            .because(Why::Malformed)
        })?;
        headers.append(name, value);
    }
    let target = request.path.unwrap_or_default();
    let form = Form::of(target);
    // RGI-PROTO-6: each target form with its method only.
    match (method == Method::CONNECT, form) {
        (true, Form::Authority) => {
            // RGI-PATH-10: a tunnel is not for an RGI application.
            return Err(
                Rejection::new(StatusCode::NOT_IMPLEMENTED, "CONNECT is not supported")
                    .because(Why::Connect),
            );
        }
        (true, _) => {
            return Err(Rejection::bad(format!(
                "CONNECT with a target that is not in authority-form: {target:?}"
            )));
        }
        (false, Form::Authority) if fault != Some(Fault::AcceptsAuthorityForm) => {
            return Err(Rejection::bad(format!(
                "an authority-form target {target:?} with {method}"
            )));
        }
        (false, Form::Asterisk)
            if method != Method::OPTIONS && fault != Some(Fault::AnswersEveryAsterisk) =>
        {
            return Err(Rejection::bad(format!(
                "an asterisk-form target with {method}"
            )));
        }
        _ => {}
    }
    let uri = if form == Form::Authority {
        // Only under Fault::AcceptsAuthorityForm: served as the path `/`.
        Uri::from_static("/")
    } else {
        Uri::try_from(target).map_err(|err| {
            Rejection::bad(format!("invalid request target {target:?}: {err}"))
                .because(Why::Malformed)
        })?
    };
    let head = check(method, uri, version, headers, fault)?;
    Ok(Some((head, length)))
}

/// The four forms of a request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Origin,
    Absolute,
    Authority,
    Asterisk,
}

impl Form {
    fn of(target: &str) -> Form {
        if target == "*" {
            Form::Asterisk
        } else if target.starts_with('/') {
            Form::Origin
        } else if target.contains("://") {
            Form::Absolute
        } else {
            Form::Authority
        }
    }
}

/// The comma-separated tokens of every `name` field, lowercased.
fn tokens(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(|token| token.trim_matches([' ', '\t']).to_ascii_lowercase())
                .filter(|token| !token.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Applies the Host, framing, persistence and upgrade rules.
fn check(
    method: Method,
    uri: Uri,
    version: Version,
    mut headers: HeaderMap,
    fault: Option<Fault>,
) -> Result<RequestHead, Rejection> {
    let host = host(&uri, version, &mut headers, fault)?;
    let framing = framing(version, &mut headers, fault)?;
    expectations(&headers, fault)?;
    let connection = tokens(&headers, &header::CONNECTION);
    let persist = if version == Version::HTTP_10 {
        connection.iter().any(|token| token == "keep-alive")
    } else {
        !connection.iter().any(|token| token == "close")
    };
    let expect_continue = (version == Version::HTTP_11 || fault == Some(Fault::ContinueOnHttp10))
        && framing.has_body()
        && tokens(&headers, &header::EXPECT)
            .iter()
            .any(|token| token == "100-continue");
    let protocols: Vec<String> = headers
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(|protocol| protocol.trim_matches([' ', '\t']).to_owned())
                .filter(|protocol| !protocol.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    let upgrade = (version == Version::HTTP_11
        && !protocols.is_empty()
        && connection.iter().any(|token| token == "upgrade"))
    .then(|| protocols.clone());
    Ok(RequestHead {
        method,
        uri,
        version,
        headers,
        framing,
        expect_continue,
        persist,
        upgrade,
        protocols,
        host,
    })
}

/// RFC 9112 §3.2 (`RGI-HDR-5`, `RGI-PROTO-1`) and §3.2.2 (`RGI-PATH-9`,
/// `RGI-PROTO-2`): returns the host name the request was addressed to.
fn host(
    uri: &Uri,
    version: Version,
    headers: &mut HeaderMap,
    fault: Option<Fault>,
) -> Result<Option<String>, Rejection> {
    let lenient = fault == Some(Fault::AcceptsMissingHost);
    let fields: Vec<HeaderValue> = headers.get_all(header::HOST).iter().cloned().collect();
    if fields.len() > 1 {
        return Err(Rejection::bad(format!(
            "{} Host fields: {fields:?}",
            fields.len()
        )));
    }
    let received = match fields.first() {
        Some(value) => Some(valid_authority(value, fault)?),
        None if version == Version::HTTP_11 && !lenient => {
            return Err(Rejection::bad("HTTP/1.1 request without a Host field"));
        }
        None => None,
    };
    let Some(authority) = uri.authority() else {
        return Ok(received.map(|authority| authority.host().to_owned()));
    };
    let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => {
            return Err(Rejection::bad(format!(
                "an absolute-form target with the scheme {scheme:?}"
            )));
        }
    };
    if let Some(received) = &received {
        let same = received.host().eq_ignore_ascii_case(authority.host())
            && received.port_u16().unwrap_or(default_port)
                == authority.port_u16().unwrap_or(default_port);
        if !same && fault != Some(Fault::IgnoresHostMismatch) {
            return Err(Rejection::bad(format!(
                "the Host field {:?} names another authority than the target's {:?}",
                received.as_str(),
                authority.as_str()
            )));
        }
        if fault == Some(Fault::KeepsHostForAbsoluteForm) {
            return Ok(Some(received.host().to_owned()));
        }
    }
    // The target's authority wins over the Host field received.
    let value = HeaderValue::from_str(authority.as_str())
        .map_err(|_| Rejection::bad(format!("invalid authority in the target: {authority}")))?;
    headers.insert(header::HOST, value);
    Ok(Some(authority.host().to_owned()))
}

/// A Host value is `uri-host [":" port]`: a non-empty host, no userinfo,
/// and a port of at most 65535 (`RGI-PROTO-1`).
fn valid_authority(value: &HeaderValue, fault: Option<Fault>) -> Result<Authority, Rejection> {
    let invalid = || {
        Rejection::bad(format!(
            "invalid Host field {:?}",
            String::from_utf8_lossy(value.as_bytes())
        ))
    };
    let text = value.to_str().map_err(|_| invalid())?;
    if text.is_empty() || text.contains('@') {
        return Err(invalid());
    }
    let port = if text.starts_with('[') {
        let close = text.find(']').ok_or_else(invalid)?;
        match &text[close + 1..] {
            "" => None,
            rest => Some(rest.strip_prefix(':').ok_or_else(invalid)?),
        }
    } else {
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if host.is_empty() {
            return Err(invalid());
        }
        port
    };
    if let Some(port) = port.filter(|port| !port.is_empty()) {
        let fits = port.bytes().all(|byte| byte.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|number| number <= 65535);
        if !fits && fault != Some(Fault::AcceptsAnyHostPort) {
            return Err(invalid());
        }
        if !port.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(invalid());
        }
    }
    if fault == Some(Fault::AcceptsAnyHostPort) {
        // Parsed without its port, which the http crate would refuse.
        if let Some((host, _)) = text.rsplit_once(':').filter(|_| !text.starts_with('[')) {
            return Authority::try_from(host).map_err(|_| invalid());
        }
    }
    Authority::try_from(text).map_err(|_| invalid())
}

/// RFC 9110 §10.1.1 (`RGI-PROTO-5`): every expectation but
/// `100-continue` is refused with 417.
fn expectations(headers: &HeaderMap, fault: Option<Fault>) -> Result<(), Rejection> {
    if fault == Some(Fault::IgnoresUnknownExpect) {
        return Ok(());
    }
    let unknown: Vec<String> = tokens(headers, &header::EXPECT)
        .into_iter()
        .filter(|token| token != "100-continue")
        .collect();
    if !unknown.is_empty()
        || headers
            .get_all(header::EXPECT)
            .iter()
            .any(HeaderValue::is_empty)
    {
        return Err(Rejection::new(
            StatusCode::EXPECTATION_FAILED,
            format!("unknown expectations {unknown:?}"),
        ));
    }
    Ok(())
}

/// RFC 9112 §6 (`RGI-HDR-4`, `RGI-PROTO-3`, `RGI-PROTO-4`,
/// `RGI-LIMIT-4`): decides the framing and removes `transfer-encoding`,
/// which the toy decodes itself.
fn framing(
    version: Version,
    headers: &mut HeaderMap,
    fault: Option<Fault>,
) -> Result<Framing, Rejection> {
    let mut codings = tokens(headers, &header::TRANSFER_ENCODING);
    let has_coding = headers.contains_key(header::TRANSFER_ENCODING);
    let lengths: Vec<HeaderValue> = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .cloned()
        .collect();
    if has_coding && !lengths.is_empty() && fault == Some(Fault::LengthWinsOverChunked) {
        headers.remove(header::TRANSFER_ENCODING);
    } else if has_coding {
        if version == Version::HTTP_10 {
            return Err(Rejection::bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if !lengths.is_empty() {
            return Err(Rejection::bad(
                "both Transfer-Encoding and Content-Length in one request",
            ));
        }
        if fault == Some(Fault::ChunkedNotLastIsChunked) {
            if let Some(first) = codings.iter().position(|coding| coding == "chunked") {
                codings.truncate(first + 1);
            }
        }
        let chunked = codings.iter().filter(|coding| *coding == "chunked").count();
        if chunked != 1 || codings.last().map(String::as_str) != Some("chunked") {
            return Err(Rejection::bad(format!(
                "the transfer codings are not one final chunked: {codings:?}"
            )));
        }
        if codings.len() > 1 {
            return Err(Rejection::new(
                StatusCode::NOT_IMPLEMENTED,
                format!("unsupported transfer codings {codings:?}"),
            )
            .because(Why::Coding));
        }
        headers.remove(header::TRANSFER_ENCODING);
        return Ok(Framing::Chunked);
    }
    match declared_length(&lengths, fault) {
        Ok(Some(length)) if length > LIMITS.body && fault != Some(Fault::ReadsOversizedBody) => {
            Err(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "a declared body of {length} bytes, more than {}",
                    LIMITS.body
                ),
            ))
        }
        Ok(Some(length)) if fault == Some(Fault::PlusSignContentLength) => {
            // The fault passes on the number it read, as a server that
            // re-serialises the field would.
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            Ok(Framing::Length(length))
        }
        Ok(declared) => Ok(declared.map_or(Framing::Empty, Framing::Length)),
        Err(_) if fault == Some(Fault::LenientContentLength) => {
            headers.remove(header::CONTENT_LENGTH);
            Ok(Framing::Empty)
        }
        Err(rejection) => Err(rejection),
    }
}

/// The one length that every Content-Length value states: each list
/// member a non-empty run of decimal digits that fits in 64 bits.
fn declared_length(
    lengths: &[HeaderValue],
    fault: Option<Fault>,
) -> Result<Option<u64>, Rejection> {
    let mut declared: Option<u64> = None;
    for value in lengths {
        let invalid = || Rejection::bad(format!("invalid Content-Length {value:?}"));
        let text = value.to_str().map_err(|_| invalid())?;
        for element in text.split(',') {
            let mut element = element.trim_matches([' ', '\t']);
            if fault == Some(Fault::PlusSignContentLength) {
                element = element.strip_prefix('+').unwrap_or(element);
            }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn parsed(raw: &[u8]) -> RequestHead {
        parse(raw, None).unwrap().unwrap().0
    }

    fn rejected(raw: &[u8]) -> StatusCode {
        parse(raw, None).unwrap_err().status
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a", None).unwrap().is_none());
    }

    #[test]
    fn repeated_fields_stay_separate_and_framing_is_removed() {
        let head = parsed(
            b"POST /x HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: b=2\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(head.headers.get_all(header::COOKIE).iter().count(), 2);
        assert!(!head.headers.contains_key(header::TRANSFER_ENCODING));
        assert_eq!(head.framing, Framing::Chunked);
        assert!(head.persist);
    }

    #[test]
    fn host_rules() {
        assert_eq!(rejected(b"GET / HTTP/1.1\r\n\r\n"), StatusCode::BAD_REQUEST);
        assert_eq!(
            rejected(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            rejected(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n", None).unwrap().is_some());
        let head = parsed(b"GET http://b.example:8/p?q HTTP/1.1\r\nHost: B.example:8\r\n\r\n");
        assert_eq!(head.headers[header::HOST], "b.example:8");
        assert_eq!(head.host.as_deref(), Some("b.example"));
        // RGI-PROTO-1 and RGI-PROTO-2.
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: \r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nHost: a:81\r\n\r\n",
            b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                rejected(bad),
                StatusCode::BAD_REQUEST,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            parse(b"GET http://a/ HTTP/1.1\r\nHost: A:80\r\n\r\n", None)
                .unwrap()
                .is_some()
        );
        assert!(
            parse(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", None)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn request_line_version_and_limits() {
        for bad in [
            &b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /\r\nHost: a\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
            b"GET a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n",
        ] {
            assert_eq!(
                rejected(bad),
                StatusCode::BAD_REQUEST,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            rejected(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        );
        assert_eq!(
            rejected(b"GET / HTTP/3.1\r\nHost: a\r\n\r\n"),
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        );
        let mut long = b"GET /".to_vec();
        long.resize(4 + LIMITS.target + 1, b'a');
        long.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(rejected(&long), StatusCode::URI_TOO_LONG);
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for index in 0..LIMITS.header_fields {
            many.extend_from_slice(format!("x-{index}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(rejected(&many), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(
            rejected(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n"),
            StatusCode::EXPECTATION_FAILED
        );
        assert_eq!(
            rejected(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 67108865\r\n\r\n"),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert!(parsed(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").uri == "*");
        assert!(parsed(b"\r\nGET / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n").persist);
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            rejected(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            rejected(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            ),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            rejected(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            rejected(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            StatusCode::NOT_IMPLEMENTED
        );
        for bad in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 123456789012345678901\r\n\r\n",
        ] {
            assert_eq!(rejected(bad), StatusCode::BAD_REQUEST, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parsed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n").framing,
            Framing::Length(3)
        );
        assert_eq!(
            parsed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").framing,
            Framing::Empty
        );
    }

    #[test]
    fn connect_obs_fold_and_size_limits() {
        assert_eq!(
            rejected(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
        let mut long = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        long.resize(LIMITS.header_size + 40, b'x');
        assert_eq!(rejected(&long), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn persistence_expect_and_upgrade() {
        let head = parsed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(head.persist);
        assert!(!parsed(b"GET / HTTP/1.0\r\n\r\n").persist);
        assert!(!parsed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").persist);
        let head = parsed(
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        );
        assert!(head.expect_continue);
        let head = parsed(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert_eq!(head.upgrade, Some(vec!["websocket".to_owned()]));
        assert!(
            parsed(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
                .upgrade
                .is_none()
        );
    }
}
