//! Request heads: httparse does the parsing, this module applies the
//! framing and Host rules of RFC 9112 and spec/rgi.md (`RGI-HDR-4`,
//! `RGI-HDR-5`, `RGI-PATH-9`, `RGI-PATH-10`) and says what to answer when a
//! head is refused.

use http::header::{self, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use super::Fault;

/// The largest request head the toy accepts, request line included.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// The most header field lines in one request head.
const MAX_FIELDS: usize = 128;

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

/// Parses the head at the start of `buf`: `Ok(None)` when more bytes are
/// needed, `Ok(Some((head, length)))` with the head's length in bytes.
///
/// Leading empty lines are skipped by httparse (RFC 9112 §2.2).
pub(crate) fn parse(
    buf: &[u8],
    fault: Option<Fault>,
) -> Result<Option<(RequestHead, usize)>, Rejection> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    let length = match request.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(Rejection::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request head longer than {MAX_HEAD} bytes"),
            ));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Rejection::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("more than {MAX_FIELDS} header field lines"),
            ));
        }
        Err(err) => {
            return Err(
                Rejection::bad(format!("malformed request head: {err}")).because(Why::Malformed)
            );
        }
    };
    if length > MAX_HEAD {
        return Err(Rejection::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request head of {length} bytes, more than {MAX_HEAD}"),
        ));
    }
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
    if method == Method::CONNECT {
        // RGI-PATH-10: a tunnel is not for an RGI 1.0 application.
        return Err(
            Rejection::new(StatusCode::NOT_IMPLEMENTED, "CONNECT is not supported")
                .because(Why::Connect),
        );
    }
    let target = request.path.unwrap_or_default();
    let uri = Uri::try_from(target).map_err(|err| {
        Rejection::bad(format!("invalid request target {target:?}: {err}")).because(Why::Malformed)
    })?;
    let head = check(method, uri, version, headers, fault)?;
    Ok(Some((head, length)))
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
    let connection = tokens(&headers, &header::CONNECTION);
    let persist = if version == Version::HTTP_10 {
        connection.iter().any(|token| token == "keep-alive")
    } else {
        !connection.iter().any(|token| token == "close")
    };
    let expect_continue = version == Version::HTTP_11
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

/// RFC 9112 §3.2 (`RGI-HDR-5`) and §3.2.2 (`RGI-PATH-9`): returns the
/// host name the request was addressed to.
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
        Some(value) => Some(valid_authority(value)?),
        None if version == Version::HTTP_11 && uri.authority().is_none() && !lenient => {
            return Err(Rejection::bad("HTTP/1.1 request without a Host field"));
        }
        None => None,
    };
    let keeps_host = fault == Some(Fault::KeepsHostForAbsoluteForm) && received.is_some();
    if let Some(authority) = uri.authority().filter(|_| !keeps_host) {
        // The target's authority wins over any Host field received.
        let value = HeaderValue::from_str(authority.as_str())
            .map_err(|_| Rejection::bad(format!("invalid authority in the target: {authority}")))?;
        headers.insert(header::HOST, value);
        return Ok(Some(authority.host().to_owned()));
    }
    Ok(received.map(|authority| authority.host().to_owned()))
}

/// A Host value is `uri-host [":" port]`: an authority without userinfo.
fn valid_authority(value: &HeaderValue) -> Result<Authority, Rejection> {
    let invalid = || {
        Rejection::bad(format!(
            "invalid Host field {:?}",
            String::from_utf8_lossy(value.as_bytes())
        ))
    };
    let text = value.to_str().map_err(|_| invalid())?;
    if text.contains('@') {
        return Err(invalid());
    }
    Authority::try_from(text).map_err(|_| invalid())
}

/// RFC 9112 §6 (`RGI-HDR-4`): decides the framing and removes
/// `transfer-encoding`, which the toy decodes itself.
fn framing(
    version: Version,
    headers: &mut HeaderMap,
    fault: Option<Fault>,
) -> Result<Framing, Rejection> {
    let codings = tokens(headers, &header::TRANSFER_ENCODING);
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
        if codings.last().map(String::as_str) != Some("chunked") {
            return Err(Rejection::bad(format!(
                "the final transfer coding is not chunked: {codings:?}"
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
    match declared_length(&lengths) {
        Ok(declared) => Ok(declared.map_or(Framing::Empty, Framing::Length)),
        Err(_) if fault == Some(Fault::LenientContentLength) => {
            headers.remove(header::CONTENT_LENGTH);
            Ok(Framing::Empty)
        }
        Err(rejection) => Err(rejection),
    }
}

/// The one length that every Content-Length value states.
fn declared_length(lengths: &[HeaderValue]) -> Result<Option<u64>, Rejection> {
    let mut declared: Option<u64> = None;
    for value in lengths {
        let invalid = || Rejection::bad(format!("invalid Content-Length {value:?}"));
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
        let head = parsed(b"GET http://b.example:8/p?q HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.headers[header::HOST], "b.example:8");
        assert_eq!(head.host.as_deref(), Some("b.example"));
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
        long.resize(MAX_HEAD + 10, b'x');
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
