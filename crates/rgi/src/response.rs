//! Starting the response: the head, its validation, and the handle an
//! application uses to start it (spec/rgi.md, "Starting the response").

use std::fmt;

use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::app::BoxError;
use crate::state::{ResponseSink, ResponseState};

/// Header fields that describe one connection rather than the message, which
/// only the server may set (`[RGI-HEAD-5]`).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The status and header fields of a response, before the server adds the
/// fields HTTP requires (`Date`, framing).
///
/// Built from typed parts, a head can only be wrong in ways `http`'s types
/// cannot see; [`ResponseHead::validate`] checks those, and
/// [`StartResponse::start`] runs it for you. Untyped input goes through
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
            let (name, value) = (name.as_ref(), value.as_ref());
            let name = HeaderName::from_bytes(name).map_err(|_| HeadError::InvalidHeaderName {
                name: name.to_vec(),
            })?;
            let value =
                HeaderValue::from_bytes(value).map_err(|_| HeadError::InvalidHeaderValue {
                    name: name.clone(),
                    value: value.to_vec(),
                })?;
            head.headers.append(name, value);
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
        if self.status.is_informational() {
            return Err(HeadError::InformationalStatus {
                status: self.status,
            });
        }
        if let Some(name) = HOP_BY_HOP
            .iter()
            .find(|name| self.headers.contains_key(*name))
        {
            return Err(HeadError::HopByHop { name: name.clone() });
        }
        let mut declared = None;
        for value in self.headers.get_all(header::CONTENT_LENGTH) {
            let parsed =
                parse_content_length(value).ok_or_else(|| HeadError::InvalidContentLength {
                    value: value.clone(),
                })?;
            if declared.is_some_and(|earlier| earlier != parsed) {
                return Err(HeadError::InvalidContentLength {
                    value: value.clone(),
                });
            }
            declared = Some(parsed);
        }
        if declared.is_some() && self.status == StatusCode::NO_CONTENT {
            return Err(HeadError::ContentLengthNotAllowed {
                status: self.status,
            });
        }
        Ok(declared)
    }

    /// Whether a response with this status carries no body whatever the
    /// request was (204 and 304; 1xx never reaches a head).
    #[must_use]
    pub fn is_bodiless(&self) -> bool {
        self.status == StatusCode::NO_CONTENT || self.status == StatusCode::NOT_MODIFIED
    }
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

/// Starting the response failed; the stored head is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The response was started already and this call carried no error to
    /// justify a new head (`[RGI-START-8]`).
    #[error(
        "response already started with status {current}; cannot start again with {attempted} without an error"
    )]
    AlreadyStarted {
        /// The status stored by the first start.
        current: StatusCode,
        /// The status of the rejected call.
        attempted: StatusCode,
    },
    /// An error response was asked for after the head went out; the
    /// application gets its error back to propagate (`[RGI-START-11]`).
    #[error("head with status {status} already sent; cannot replace it: {cause}")]
    HeadAlreadySent {
        /// The status that was sent.
        status: StatusCode,
        /// The application's own error.
        cause: BoxError,
    },
    /// The head broke a rule (`[RGI-HEAD-*]`).
    #[error("invalid response head: {source}")]
    InvalidHead {
        /// What was wrong with it.
        #[source]
        source: HeadError,
        /// The application's error, when the invalid head was an error
        /// response given to [`StartResponse::replace`].
        cause: Option<BoxError>,
    },
}

impl StartError {
    /// The error an application should return from `call` or
    /// `next_chunk` after this failure: its own error when it was trying to
    /// report one, this error otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rgi::{BoxError, StartResponse, ResponseHead};
    /// # use http::StatusCode;
    /// fn fail(start: &mut StartResponse<'_>, cause: BoxError) -> BoxError {
    ///     match start.replace(ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR), cause) {
    ///         Ok(()) => "replaced the head with an error response".into(),
    ///         Err(err) => err.into_cause(),
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn into_cause(self) -> BoxError {
        match self {
            StartError::HeadAlreadySent { cause, .. }
            | StartError::InvalidHead {
                cause: Some(cause), ..
            } => cause,
            other => Box::new(other),
        }
    }
}

impl From<HeadError> for StartError {
    fn from(source: HeadError) -> Self {
        StartError::InvalidHead {
            source,
            cause: None,
        }
    }
}

/// Sending body bytes failed (from [`StartResponse::write`] or
/// [`ResponseState::send_chunk`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Body bytes before the response was started (`[RGI-START-3]`).
    #[error("body data before the response was started")]
    NotStarted,
    /// More bytes than the declared Content-Length: the bytes up to the
    /// limit were sent, the rest dropped (`[RGI-CL-1]`).
    #[error("Content-Length is {declared} but the body reached {attempted} bytes")]
    ContentLengthExceeded {
        /// The declared length.
        declared: u64,
        /// The total the body tried to reach.
        attempted: u64,
    },
    /// Body bytes for a status that has no body (`[RGI-BODY-18]`).
    #[error("status {status} has no body, but the application sent body data")]
    BodyNotAllowed {
        /// The status of the response.
        status: StatusCode,
    },
    /// The transport failed, usually because the client went away
    /// (`[RGI-FAIL-8]`).
    #[error("transport failed: {0}")]
    Transport(#[from] std::io::Error),
}

/// Middleware's view of the response an inner application starts.
///
/// A middleware passes an `Intercept` to [`StartResponse::intercept`] and
/// hands the resulting handle to the application it wraps; every head and
/// every written chunk passes through the hooks before the server's rules
/// are applied, so an intercepted head is validated like any other.
///
/// # Examples
///
/// ```
/// use rgi::{Intercept, ResponseHead};
/// use http::{header::HeaderName, HeaderValue};
///
/// /// Adds `x-served-by` to every response.
/// struct ServedBy(HeaderValue);
///
/// impl Intercept for ServedBy {
///     fn on_start(&mut self, head: &mut ResponseHead) {
///         head.headers_mut().insert(HeaderName::from_static("x-served-by"), self.0.clone());
///     }
/// }
/// ```
pub trait Intercept {
    /// Called with the head given to [`StartResponse::start`] or
    /// [`StartResponse::replace`], before it is stored.
    fn on_start(&mut self, head: &mut ResponseHead) {
        let _ = head;
    }

    /// Called with the error of [`StartResponse::replace`] before
    /// [`Intercept::on_start`] sees its head.
    fn on_replace(&mut self, cause: &BoxError) {
        let _ = cause;
    }

    /// Called with the bytes given to [`StartResponse::write`].
    fn on_write(&mut self, data: &mut Bytes) {
        let _ = data;
    }
}

/// The handle an application starts its response with: the RGI analogue of
/// WSGI's `start_response` and the `write` callable it returns.
///
/// The server lends it for the duration of [`Application::call`] and of
/// every [`Body::next_chunk`], so the response can be started lazily inside
/// the body, and no handle outlives its request.
///
/// [`Application::call`]: crate::Application::call
/// [`Body::next_chunk`]: crate::Body::next_chunk
///
/// # Examples
///
/// ```
/// use rgi::{Environ, ResponseHead, ResponseSink, ResponseState, StartResponse};
/// use bytes::Bytes;
/// use http::{Method, StatusCode};
///
/// // A server's transport; here it records what would go on the wire.
/// #[derive(Default)]
/// struct Wire(Vec<u8>);
/// impl ResponseSink for Wire {
///     fn send_head(&mut self, head: &ResponseHead) -> std::io::Result<()> {
///         self.0.extend_from_slice(head.status().as_str().as_bytes());
///         self.0.push(b'\n');
///         Ok(())
///     }
///     fn send_data(&mut self, data: Bytes) -> std::io::Result<()> {
///         self.0.extend_from_slice(&data);
///         Ok(())
///     }
/// }
///
/// let (mut state, mut wire) = (ResponseState::new(&Method::GET), Wire::default());
/// let mut start = state.start_response(&mut wire);
/// start.start(ResponseHead::new(StatusCode::OK)).unwrap();
/// assert!(!start.is_head_sent()); // nothing goes out before the first bytes
/// start.write("hello").unwrap();
/// assert!(start.is_head_sent());
/// assert_eq!(wire.0, b"200\nhello");
/// ```
pub struct StartResponse<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    Root {
        state: &'a mut ResponseState,
        sink: &'a mut (dyn ResponseSink + 'a),
    },
    Layer {
        hook: &'a mut (dyn Intercept + 'a),
        parent: &'a mut (dyn Respond + 'a),
    },
}

/// What a layer needs of the handle it wraps; erases the wrapped handle's
/// lifetime so layers can nest.
trait Respond {
    fn start(&mut self, head: ResponseHead) -> Result<(), StartError>;
    fn replace(&mut self, head: ResponseHead, cause: BoxError) -> Result<(), StartError>;
    fn write(&mut self, data: Bytes) -> Result<(), SendError>;
    fn is_started(&self) -> bool;
    fn is_head_sent(&self) -> bool;
}

impl<'a> StartResponse<'a> {
    pub(crate) fn root(
        state: &'a mut ResponseState,
        sink: &'a mut (dyn ResponseSink + 'a),
    ) -> Self {
        StartResponse {
            inner: Inner::Root { state, sink },
        }
    }

    /// Stores the status and header fields of the response. They go to the
    /// client with the first non-empty body chunk, or when the body ends.
    ///
    /// # Errors
    ///
    /// [`StartError::InvalidHead`] if the head breaks a rule (see
    /// [`ResponseHead::validate`]), and [`StartError::AlreadyStarted`] if a
    /// head is stored already: only [`StartResponse::replace`] may change it.
    pub fn start(&mut self, head: impl Into<ResponseHead>) -> Result<(), StartError> {
        Respond::start(self, head.into())
    }

    /// Replaces the response with an error response, the analogue of
    /// calling WSGI's `start_response` with `exc_info`. Starts the response
    /// if it was not started.
    ///
    /// # Errors
    ///
    /// [`StartError::HeadAlreadySent`] once the head has gone to the
    /// client, carrying `cause` back so the application can return it
    /// ([`StartError::into_cause`]); [`StartError::InvalidHead`] if the
    /// error head itself breaks a rule.
    pub fn replace(
        &mut self,
        head: impl Into<ResponseHead>,
        cause: impl Into<BoxError>,
    ) -> Result<(), StartError> {
        Respond::replace(self, head.into(), cause.into())
    }

    /// Sends body bytes now, the legacy push path (WSGI's `write`). The bytes
    /// are handed to the transport before this returns; the head goes first
    /// if it has not been sent. New applications should return a body
    /// instead, which lets the server apply backpressure.
    ///
    /// # Errors
    ///
    /// [`SendError::NotStarted`] before [`StartResponse::start`];
    /// [`SendError::ContentLengthExceeded`] past the declared length (the
    /// bytes up to it were sent); [`SendError::BodyNotAllowed`] for 204 and
    /// 304; [`SendError::Transport`] when the client is gone.
    pub fn write(&mut self, data: impl Into<Bytes>) -> Result<(), SendError> {
        Respond::write(self, data.into())
    }

    /// Whether a head is stored.
    #[must_use]
    pub fn is_started(&self) -> bool {
        Respond::is_started(self)
    }

    /// Whether the head has gone to the client, after which it can no
    /// longer be replaced.
    #[must_use]
    pub fn is_head_sent(&self) -> bool {
        Respond::is_head_sent(self)
    }

    /// A handle for an inner application whose heads and writes pass
    /// through `hook` first. See [`Intercept`].
    pub fn intercept<'b>(&'b mut self, hook: &'b mut dyn Intercept) -> StartResponse<'b> {
        StartResponse {
            inner: Inner::Layer { hook, parent: self },
        }
    }
}

impl Respond for StartResponse<'_> {
    fn start(&mut self, mut head: ResponseHead) -> Result<(), StartError> {
        match &mut self.inner {
            Inner::Root { state, .. } => state.store_head(head, None),
            Inner::Layer { hook, parent } => {
                hook.on_start(&mut head);
                parent.start(head)
            }
        }
    }

    fn replace(&mut self, mut head: ResponseHead, cause: BoxError) -> Result<(), StartError> {
        match &mut self.inner {
            Inner::Root { state, .. } => state.store_head(head, Some(cause)),
            Inner::Layer { hook, parent } => {
                hook.on_replace(&cause);
                hook.on_start(&mut head);
                parent.replace(head, cause)
            }
        }
    }

    fn write(&mut self, mut data: Bytes) -> Result<(), SendError> {
        match &mut self.inner {
            Inner::Root { state, sink } => {
                if !state.is_started() {
                    return Err(SendError::NotStarted);
                }
                state.send_chunk(&mut **sink, data)
            }
            Inner::Layer { hook, parent } => {
                hook.on_write(&mut data);
                parent.write(data)
            }
        }
    }

    fn is_started(&self) -> bool {
        match &self.inner {
            Inner::Root { state, .. } => state.is_started(),
            Inner::Layer { parent, .. } => parent.is_started(),
        }
    }

    fn is_head_sent(&self) -> bool {
        match &self.inner {
            Inner::Root { state, .. } => state.is_head_sent(),
            Inner::Layer { parent, .. } => parent.is_head_sent(),
        }
    }
}

impl fmt::Debug for StartResponse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartResponse")
            .field("started", &self.is_started())
            .field("head_sent", &self.is_head_sent())
            .field("intercepted", &matches!(self.inner, Inner::Layer { .. }))
            .finish()
    }
}
