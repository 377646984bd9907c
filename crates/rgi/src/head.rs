//! The response head and its validation (spec/rgi.md, "The response
//! head"); a leaf module.

use http::StatusCode;
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};

/// The status and header fields of a response, before the server adds the
/// fields HTTP requires (`Date`, framing).
///
/// Built from typed parts, a head can only be wrong in ways `http`'s types
/// cannot see; [`ResponseHead::validate`] checks those, and
/// [`StartResponse::start`](crate::StartResponse::start) runs it for you. Untyped input goes through
/// [`ResponseHead::from_raw`].
///
/// # Examples
///
/// ```
/// use rgi::ResponseHead;
/// use http::{header, HeaderValue, StatusCode};
///
/// let head = ResponseHead::new(StatusCode::OK)
///     .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
/// assert_eq!(head.status(), StatusCode::OK);
/// assert!(head.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    status: StatusCode,
    headers: HeaderMap,
}

impl ResponseHead {
    /// A head with `status` and no header fields.
    #[must_use]
    pub fn new(status: StatusCode) -> Self {
        ResponseHead {
            status,
            headers: HeaderMap::new(),
        }
    }

    /// A head from a status and a complete header map.
    #[must_use]
    pub fn from_parts(status: StatusCode, headers: HeaderMap) -> Self {
        ResponseHead { status, headers }
    }

    /// Appends one header field (a repeated name is sent as repeated
    /// fields, in order) and returns the head.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Appends one header field given as anything that is bytes (`&str`,
    /// `String`, `&[u8]`, `Bytes`, or the typed `HeaderName` and
    /// `HeaderValue`), checking it, and returns the head.
    ///
    /// The names and values are taken as bytes, not through `TryInto`,
    /// so that an error can carry what was given: `http`'s conversion
    /// errors carry nothing.
    ///
    /// # Errors
    ///
    /// [`HeadError::InvalidHeaderName`] if the name is not an RFC 9110
    /// token, [`HeadError::InvalidHeaderValue`] if the value holds CR, LF,
    /// NUL or another control character other than horizontal tab; each
    /// carries the bytes given. The head is consumed either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{HeadError, ResponseHead};
    /// use http::StatusCode;
    ///
    /// let head = ResponseHead::new(StatusCode::OK)
    ///     .try_with_header("content-type", "text/plain")?
    ///     .try_with_header("x-request-id", format!("{}", 42))?;
    /// assert_eq!(head.headers()["x-request-id"], "42");
    ///
    /// let err = ResponseHead::new(StatusCode::OK).try_with_header("bad name", "x").unwrap_err();
    /// assert!(matches!(err, HeadError::InvalidHeaderName { name } if name == b"bad name"));
    /// # Ok::<(), HeadError>(())
    /// ```
    pub fn try_with_header<N, V>(mut self, name: N, value: V) -> Result<Self, HeadError>
    where
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.try_append_header(name, value)?;
        Ok(self)
    }

    /// Appends one header field given as bytes, like
    /// [`try_with_header`](Self::try_with_header), to a head held by
    /// reference (a middleware's [`Intercept::on_start`](crate::Intercept::on_start),
    /// say).
    ///
    /// # Errors
    ///
    /// As [`try_with_header`](Self::try_with_header); the head is unchanged
    /// on error.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{HeadError, ResponseHead};
    /// use http::StatusCode;
    ///
    /// let mut head = ResponseHead::new(StatusCode::OK);
    /// head.try_append_header("set-cookie", "a=1")?;
    /// head.try_append_header("set-cookie", "b=2")?;
    /// assert_eq!(head.headers().get_all("set-cookie").iter().count(), 2);
    ///
    /// let err = head.try_append_header("x-evil", "a\r\nb").unwrap_err();
    /// assert!(matches!(err, HeadError::InvalidHeaderValue { ref value, .. } if value == b"a\r\nb"));
    /// assert_eq!(head.headers().len(), 2);
    /// # Ok::<(), HeadError>(())
    /// ```
    pub fn try_append_header<N, V>(&mut self, name: N, value: V) -> Result<(), HeadError>
    where
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let (name, value) = (name.as_ref(), value.as_ref());
        let name = HeaderName::from_bytes(name).map_err(|_| HeadError::InvalidHeaderName {
            name: name.to_vec(),
        })?;
        let value = HeaderValue::from_bytes(value).map_err(|_| HeadError::InvalidHeaderValue {
            name: name.clone(),
            value: value.to_vec(),
        })?;
        self.headers.append(name, value);
        Ok(())
    }

    /// Builds and validates a head from untyped input: a numeric status and
    /// header fields as raw bytes.
    ///
    /// # Errors
    ///
    /// [`HeadError::InvalidStatus`] if `code` is outside 100–999,
    /// [`HeadError::InvalidHeaderName`] if a name is not an RFC 9110 token,
    /// [`HeadError::InvalidHeaderValue`] if a value holds CR, LF, NUL or
    /// another control character other than horizontal tab, and any error
    /// of [`ResponseHead::validate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{HeadError, ResponseHead};
    ///
    /// let head = ResponseHead::from_raw(404, [("Content-Type", "text/plain")]).unwrap();
    /// assert_eq!(head.status().as_u16(), 404);
    ///
    /// let err = ResponseHead::from_raw(200, [("X-Evil", "a\r\nSet-Cookie: b")]).unwrap_err();
    /// assert!(matches!(err, HeadError::InvalidHeaderValue { .. }));
    /// ```
    pub fn from_raw<N, V>(
        code: u16,
        headers: impl IntoIterator<Item = (N, V)>,
    ) -> Result<Self, HeadError>
    where
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let status = StatusCode::from_u16(code).map_err(|_| HeadError::InvalidStatus { code })?;
        let mut head = ResponseHead::new(status);
        for (name, value) in headers {
            head.try_append_header(name, value)?;
        }
        head.validate()?;
        Ok(head)
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Replaces the status code.
    pub fn set_status(&mut self, status: StatusCode) {
        self.status = status;
    }

    /// The header fields.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The header fields, for changing them. The head is validated again
    /// when it is started, so nothing changed here escapes the rules.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Splits the head into its status and header map.
    #[must_use]
    pub fn into_parts(self) -> (StatusCode, HeaderMap) {
        (self.status, self.headers)
    }

    /// Checks the rules `http`'s types cannot express, and returns the
    /// declared Content-Length, if any.
    ///
    /// # Errors
    ///
    /// [`HeadError::InformationalStatus`] for a 1xx status,
    /// [`HeadError::HopByHop`] for a connection-specific field,
    /// [`HeadError::InvalidContentLength`] for a Content-Length that is not
    /// one decimal number (or repeats with different values), and
    /// [`HeadError::ContentLengthNotAllowed`] for Content-Length on a 204.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{HeadError, ResponseHead};
    /// use http::{header, HeaderValue, StatusCode};
    ///
    /// let head = ResponseHead::new(StatusCode::OK)
    ///     .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
    /// assert_eq!(head.validate().unwrap(), Some(5));
    ///
    /// let head = ResponseHead::new(StatusCode::OK)
    ///     .with_header(header::CONNECTION, HeaderValue::from_static("close"));
    /// assert!(matches!(head.validate(), Err(HeadError::HopByHop { .. })));
    /// ```
    pub fn validate(&self) -> Result<Option<u64>, HeadError> {
        self.checked().map(|checked| checked.content_length)
    }

    /// [`validate`](Self::validate), also telling whether the head
    /// announces trailer fields, found in the same pass over the fields.
    pub(crate) fn checked(&self) -> Result<Checked, HeadError> {
        if self.status.is_informational() {
            return Err(HeadError::InformationalStatus {
                status: self.status,
            });
        }
        // One pass over the distinct names, matched as strings: no list of
        // names to build, no hashing, and no walk over the values (which
        // costs more per field than the names do); the values of
        // Content-Length are read only when the field is there. A hop-by-hop
        // field is reported before a Content-Length problem, wherever each
        // stands.
        let mut has_content_length = false;
        let mut announces_trailers = false;
        for name in self.headers.keys() {
            match name.as_str() {
                // `Trailer` is not here: since 1.2 it announces the
                // response's trailer fields (`[RGI-TRAILER-5]`).
                "connection" | "keep-alive" | "proxy-connection" | "te" | "transfer-encoding"
                | "upgrade" => {
                    return Err(HeadError::HopByHop { name: name.clone() });
                }
                "content-length" => has_content_length = true,
                "trailer" => announces_trailers = true,
                _ => {}
            }
        }
        let mut declared = None;
        if has_content_length {
            for value in self.headers.get_all(CONTENT_LENGTH) {
                match parse_content_length(value) {
                    Some(parsed) if declared.is_none_or(|earlier| earlier == parsed) => {
                        declared = Some(parsed);
                    }
                    _ => {
                        return Err(HeadError::InvalidContentLength {
                            value: value.clone(),
                        });
                    }
                }
            }
        }
        if declared.is_some() && self.status == StatusCode::NO_CONTENT {
            return Err(HeadError::ContentLengthNotAllowed {
                status: self.status,
            });
        }
        Ok(Checked {
            content_length: declared,
            announces_trailers,
        })
    }

    /// Whether a response with this status carries no body whatever the
    /// request was (204 and 304; 1xx never reaches a head).
    #[must_use]
    pub fn is_bodiless(&self) -> bool {
        self.status == StatusCode::NO_CONTENT || self.status == StatusCode::NOT_MODIFIED
    }
}

/// Whether a field may not appear in a `103 Early Hints` response: the
/// framing and connection-specific fields, which an interim response has no
/// use for and a client could mistake for the final response's
/// (`[RGI-EARLY-2]`).
/// [`StartResponse::send_early_hints`](crate::StartResponse::send_early_hints)
/// refuses them.
///
/// # Examples
///
/// ```
/// use http::header;
///
/// assert!(rgi::is_forbidden_early_hint(&header::CONTENT_LENGTH));
/// assert!(rgi::is_forbidden_early_hint(&header::CONNECTION));
/// assert!(!rgi::is_forbidden_early_hint(&header::LINK));
/// ```
#[must_use]
pub fn is_forbidden_early_hint(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

/// What [`ResponseHead::checked`] found in a valid head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checked {
    /// The declared Content-Length.
    pub(crate) content_length: Option<u64>,
    /// Whether a `Trailer` field announces trailer fields.
    pub(crate) announces_trailers: bool,
}

impl From<StatusCode> for ResponseHead {
    fn from(status: StatusCode) -> Self {
        ResponseHead::new(status)
    }
}

/// RFC 9110 §8.6: one or more digits, nothing else (no sign, no spaces).
fn parse_content_length(value: &HeaderValue) -> Option<u64> {
    let bytes = value.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, digit| {
        acc.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// A response head broke a rule of spec/rgi.md; each variant carries the
/// offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// The status code is outside 100–999 (`[RGI-HEAD-1]`).
    #[error("status code {code} is outside 100-999")]
    InvalidStatus {
        /// The code that was given.
        code: u16,
    },
    /// A 1xx status cannot be a final response (`[RGI-HEAD-1]`); interim
    /// responses are the server's business, and 101 belongs to the upgrade
    /// extension.
    #[error("informational status {status} cannot be a final response")]
    InformationalStatus {
        /// The status that was given.
        status: StatusCode,
    },
    /// A header name is not an RFC 9110 token (`[RGI-HEAD-3]`).
    #[error("header name \"{}\" is not a token", .name.escape_ascii())]
    InvalidHeaderName {
        /// The name that was given.
        name: Vec<u8>,
    },
    /// A header value holds CR, LF, NUL or another control character
    /// (`[RGI-HEAD-4]`).
    #[error("value \"{}\" of header {name} holds a control character", .value.escape_ascii())]
    InvalidHeaderValue {
        /// The field the value belongs to.
        name: HeaderName,
        /// The value that was given.
        value: Vec<u8>,
    },
    /// The application set a connection-specific field (`[RGI-HEAD-5]`).
    #[error("header {name} is hop-by-hop and only the server may set it")]
    HopByHop {
        /// The field that was given.
        name: HeaderName,
    },
    /// Content-Length is not one decimal number, or repeats with a
    /// different value (`[RGI-HEAD-6]`).
    #[error("Content-Length {value:?} is not a single decimal number")]
    InvalidContentLength {
        /// The offending value.
        value: HeaderValue,
    },
    /// Content-Length on a status that forbids it (`[RGI-HEAD-6]`).
    #[error("status {status} must not carry Content-Length")]
    ContentLengthNotAllowed {
        /// The status of the head.
        status: StatusCode,
    },
}
