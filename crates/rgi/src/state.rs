//! The server's side of a response: the rules of spec/rgi.md applied once, in
//! one place, over a transport each server supplies.

use std::io;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

use crate::box_error::BoxError;
use crate::caller::{CallRecord, CallerId};
use crate::head::{ResponseHead, is_forbidden_early_hint};
use crate::response_error::{EarlyHintsError, SendError, StartError};
use crate::trailers::{TrailersError, is_forbidden_trailer};

/// A server's transport for one response.
///
/// [`ResponseState`] calls it only in an order that follows the spec: at
/// most one [`send_head`](ResponseSink::send_head), always before any
/// [`send_data`](ResponseSink::send_data); data is never empty, never past a
/// declared Content-Length, and never sent for HEAD requests or for 204 and
/// 304 responses. The sink adds what HTTP needs (`Date`, framing) and must
/// hand each chunk to the connection before returning (`[RGI-BODY-4]`).
pub trait ResponseSink {
    /// Sends (or queues, to go out with the next data) the head, which the
    /// sink now owns: a server whose HTTP layer wants an owned header map
    /// (hyper does) moves it on without a copy. The head carries the
    /// Content-Length the state enforces (`[RGI-CL-10]`).
    ///
    /// # Errors
    ///
    /// Any transport failure; the response is then abandoned, and the head
    /// counts as sent.
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()>;

    /// Sends the head with the Content-Length the server declared kept
    /// apart (`[RGI-CL-12]`). [`ResponseState`] calls this, not
    /// [`send_head`](ResponseSink::send_head): `declared` is `Some(n)` when
    /// the length it enforces is the server's declaration
    /// ([`ResponseState::declare_length`]), which the head's fields do not
    /// carry yet, and `None` when the head is complete as it is.
    ///
    /// The default writes `content-length: n` into the head and calls
    /// `send_head`, so a sink that knows nothing of this sends a correct
    /// head. A sink whose HTTP layer writes the field itself from an exact
    /// body size (hyper does, from a body's exact size hint) overrides it
    /// and saves encoding a field the layer would parse back; it must then
    /// make `n` the response's Content-Length, exactly.
    ///
    /// # Errors
    ///
    /// As [`send_head`](ResponseSink::send_head).
    fn send_head_with_length(
        &mut self,
        head: ResponseHead,
        declared: Option<u64>,
    ) -> io::Result<()> {
        let mut head = head;
        if let Some(length) = declared {
            head.headers_mut()
                .insert(CONTENT_LENGTH, content_length_value(length));
        }
        self.send_head(head)
    }

    /// Sends one non-empty chunk of the body.
    ///
    /// # Errors
    ///
    /// Any transport failure; the response is then abandoned.
    fn send_data(&mut self, data: Bytes) -> io::Result<()>;

    /// Sends the response's trailer section after the last data
    /// (`[RGI-TRAILER-7]`). Called at most once, by
    /// [`ResponseState::finish`], and only when the server enabled trailers
    /// for this response with [`ResponseState::enable_trailers`]. The
    /// default drops them: a sink that cannot carry trailers loses nothing
    /// else.
    ///
    /// # Errors
    ///
    /// Any transport failure.
    fn send_trailers(&mut self, fields: HeaderMap) -> io::Result<()> {
        drop(fields);
        Ok(())
    }

    /// Sends one `103 Early Hints` interim response before the final head
    /// (`[RGI-EARLY-3]`). Called only while no head has been sent, and only
    /// when the server enabled early hints for this request with
    /// [`ResponseState::enable_early_hints`]. The default drops them.
    ///
    /// # Errors
    ///
    /// Any transport failure.
    fn send_early_hints(&mut self, fields: HeaderMap) -> io::Result<()> {
        drop(fields);
        Ok(())
    }
}

/// The state of one response, owned by the server for one request.
///
/// The server lends [`StartResponse`](crate::StartResponse) handles from it, passes it every chunk
/// the body yields, and calls [`finish`](ResponseState::finish) when the body
/// ends. It enforces when the head goes out, Content-Length, HEAD and the
/// bodiless statuses, so a server only moves bytes.
///
/// # Examples
///
/// A whole (if minimal) server loop for one request:
///
/// ```
/// use rgi::{Application, Body, Environ, ResponseHead, ResponseSink, ResponseState};
/// use bytes::Bytes;
/// use http::StatusCode;
///
/// struct Wire(Vec<u8>);
/// impl ResponseSink for Wire {
///     fn send_head(&mut self, head: ResponseHead) -> std::io::Result<()> {
///         self.0.extend_from_slice(format!("HTTP/1.1 {}\r\n\r\n", head.status()).as_bytes());
///         Ok(())
///     }
///     fn send_data(&mut self, data: Bytes) -> std::io::Result<()> {
///         self.0.extend_from_slice(&data);
///         Ok(())
///     }
/// }
///
/// let app = rgi::from_fn(|_environ, start| {
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(rgi::from_iter(["hello, ", "world"]))
/// });
///
/// let environ = Environ::builder().build()?;
/// let (mut state, mut wire) = (ResponseState::new(environ.method()), Wire(Vec::new()));
/// let mut body = app.call(environ, &mut state.start_response(&mut wire))?;
/// while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut wire)) {
///     state.send_chunk(&mut wire, chunk?)?;
/// }
/// drop(body); // close: exactly once, before the next request
/// state.finish(&mut wire)?;
/// assert_eq!(wire.0, b"HTTP/1.1 200 OK\r\n\r\nhello, world");
/// # Ok::<(), rgi::BoxError>(())
/// ```
#[derive(Debug)]
pub struct ResponseState {
    /// The head the application stored, until it goes to the sink.
    head: Option<ResponseHead>,
    /// The status of the head once it went to the sink, which owns it now.
    sent_status: Option<StatusCode>,
    head_request: bool,
    /// The Content-Length of the stored head, which wins over the server's.
    app_length: Option<u64>,
    /// What the server computed with `declare_length`; it joins the head
    /// only when the head goes out without a length of its own.
    server_length: Option<u64>,
    /// The Content-Length the sent head carries: fixed when it goes out,
    /// and the only length enforced from then on.
    sent_length: Option<u64>,
    sent: u64,
    /// The trailer section the application gave, sent by `finish`.
    trailers: Option<Box<HeaderMap>>,
    trailers_set: bool,
    trailers_enabled: bool,
    /// Whether the stored head has a `Trailer` field (seen when it was
    /// validated, so that sending it looks nothing up).
    stored_announces_trailers: bool,
    trailers_announced: bool,
    early_hints_enabled: bool,
    /// Who called an application for this response (validators record
    /// themselves through `StartResponse::record_call`).
    calls: CallRecord,
}

impl ResponseState {
    /// The state of a response to a request with this method.
    #[must_use]
    pub fn new(request_method: &Method) -> Self {
        ResponseState {
            head: None,
            sent_status: None,
            head_request: request_method == Method::HEAD,
            app_length: None,
            server_length: None,
            sent_length: None,
            sent: 0,
            trailers: None,
            trailers_set: false,
            trailers_enabled: false,
            stored_announces_trailers: false,
            trailers_announced: false,
            early_hints_enabled: false,
            calls: CallRecord::default(),
        }
    }

    /// The head the application stored, until it is sent: the sink gets
    /// it by value then, and this returns `None` ([`status`](Self::status)
    /// still tells the status that went out).
    #[must_use]
    pub fn head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    /// The status of the stored head, or of the sent one.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.head
            .as_ref()
            .map(ResponseHead::status)
            .or(self.sent_status)
    }

    /// Whether the application has started the response.
    #[must_use]
    pub fn is_started(&self) -> bool {
        self.head.is_some() || self.sent_status.is_some()
    }

    /// Whether the head went to the sink.
    #[must_use]
    pub fn is_head_sent(&self) -> bool {
        self.sent_status.is_some()
    }

    /// Whether this state was made for a HEAD request: body bytes are
    /// counted and checked, never sent (`[RGI-BODY-15]`).
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::ResponseState;
    /// use http::Method;
    ///
    /// assert!(ResponseState::new(&Method::HEAD).is_head_request());
    /// assert!(!ResponseState::new(&Method::GET).is_head_request());
    /// ```
    #[must_use]
    pub fn is_head_request(&self) -> bool {
        self.head_request
    }

    /// Body bytes accepted so far (counted, though not sent, for HEAD).
    #[must_use]
    pub fn body_bytes(&self) -> u64 {
        self.sent
    }

    /// Whether more body chunks can change what the client receives. It
    /// turns false once the head is sent for a HEAD request or a 204/304
    /// response, and once the body has reached the Content-Length the sent
    /// head carries. The server may then stop pulling the body and drop it
    /// (`[RGI-BODY-16]`): the response is complete, and any excess the body
    /// would have produced is never seen. A server that pulls once more
    /// gets [`SendError::ContentLengthExceeded`] for a non-empty chunk, and
    /// nothing of it is sent (`[RGI-CL-1]`).
    #[must_use]
    pub fn wants_body(&self) -> bool {
        let Some(status) = self.sent_status else {
            return true;
        };
        !(self.head_request
            || is_bodiless(status)
            || self.sent_length.is_some_and(|length| self.sent >= length))
    }

    /// Passes one chunk the body yielded. An empty chunk is a yield point
    /// and sends nothing; the first non-empty one sends the head first.
    ///
    /// # Errors
    ///
    /// [`SendError::NotStarted`] for data before a head;
    /// [`SendError::BodyNotAllowed`] for data on 204/304 (nothing is sent);
    /// [`SendError::ContentLengthExceeded`] past the declared length (the
    /// bytes up to it were sent, none once it had been reached);
    /// [`SendError::Transport`] if the sink fails. After any of these the
    /// server stops pulling the body.
    pub fn send_chunk(
        &mut self,
        sink: &mut (dyn ResponseSink + '_),
        mut chunk: Bytes,
    ) -> Result<(), SendError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let Some(status) = self.status() else {
            return Err(SendError::NotStarted);
        };
        if is_bodiless(status) {
            return Err(SendError::BodyNotAllowed { status });
        }
        // The head goes out first, so the length checked below is the one
        // it carries, whoever declared it.
        self.send_stored_head(sink)?;
        let attempted = self.sent.saturating_add(chunk.len() as u64);
        let overflow = self.sent_length.filter(|&length| attempted > length);
        if let Some(length) = overflow {
            // Cut at the limit: what fits is still this response's body.
            let fits = usize::try_from(length.saturating_sub(self.sent)).unwrap_or(usize::MAX);
            chunk.truncate(fits);
        }
        if !chunk.is_empty() {
            self.sent += chunk.len() as u64;
            if !self.head_request {
                sink.send_data(chunk)?;
            }
        }
        match overflow {
            Some(declared) => Err(SendError::ContentLengthExceeded {
                declared,
                attempted,
            }),
            None => Ok(()),
        }
    }

    /// Sends the head now, without body bytes, for a server about to send
    /// a [`FileBody`](crate::FileBody) by other means (`sendfile`). Does
    /// nothing if the head was sent already.
    ///
    /// # Errors
    ///
    /// [`FinishError::NotStarted`] if no head is stored;
    /// [`FinishError::Transport`] if the sink fails.
    pub fn send_head(&mut self, sink: &mut (dyn ResponseSink + '_)) -> Result<(), FinishError> {
        if !self.is_started() {
            return Err(FinishError::NotStarted);
        }
        self.send_stored_head(sink)?;
        Ok(())
    }

    /// Records `count` body bytes the server sent itself after
    /// [`send_head`](Self::send_head) (`[RGI-FILE-4]`), so the same
    /// Content-Length rules apply to them (`[RGI-FILE-5]`). A server sends
    /// no more than [`remaining_length`](Self::remaining_length) allows.
    ///
    /// # Errors
    ///
    /// [`SendError::NotStarted`] before the head was sent;
    /// [`SendError::ContentLengthExceeded`] if the count passes the
    /// declared length (the server already broke the limit; it must close
    /// the connection).
    pub fn record_sent(&mut self, count: u64) -> Result<(), SendError> {
        if !self.is_head_sent() {
            return Err(SendError::NotStarted);
        }
        let attempted = self.sent.saturating_add(count);
        if let Some(declared) = self.sent_length.filter(|&length| attempted > length) {
            self.sent = declared;
            return Err(SendError::ContentLengthExceeded {
                declared,
                attempted,
            });
        }
        self.sent = attempted;
        Ok(())
    }

    /// How many more body bytes the sent head's Content-Length allows:
    /// `None` before the head is sent and when it carries no length.
    #[must_use]
    pub fn remaining_length(&self) -> Option<u64> {
        self.sent_length
            .map(|length| length.saturating_sub(self.sent))
    }

    /// The Content-Length the sent head carries, whether the application
    /// declared it or the server did ([`declare_length`](Self::declare_length));
    /// `None` before the head is sent and when it carries none.
    ///
    /// This is the only length a server may report to its HTTP layer as
    /// the exact size of the body (`[RGI-CL-11]`): an HTTP layer that
    /// frames by a size hint (hyper does, in release builds) would
    /// otherwise send a body that disagrees with the field.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rgi::{ResponseHead, ResponseSink, ResponseState};
    /// # use bytes::Bytes;
    /// # use http::{Method, StatusCode};
    /// # struct Wire;
    /// # impl ResponseSink for Wire {
    /// #     fn send_head(&mut self, _: ResponseHead) -> std::io::Result<()> { Ok(()) }
    /// #     fn send_data(&mut self, _: Bytes) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// let (mut state, mut wire) = (ResponseState::new(&Method::GET), Wire);
    /// state.declare_length(5)?; // from an exact size_hint
    /// state.start_response(&mut wire).start(StatusCode::OK)?;
    /// assert_eq!(state.content_length(), None); // not sent yet
    /// state.send_chunk(&mut wire, Bytes::from_static(b"hello"))?;
    /// assert_eq!(state.content_length(), Some(5));
    /// # Ok::<(), rgi::BoxError>(())
    /// ```
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        self.sent_length
    }

    /// Declares a Content-Length the server computed (from an exact
    /// [`Body::size_hint`](crate::Body::size_hint)) before the head is
    /// sent (`[RGI-CL-6]`, `[RGI-CL-10]`). When the head goes out without a
    /// Content-Length of its own, this state hands it to the sink with
    /// `length` as its Content-Length
    /// ([`ResponseSink::send_head_with_length`], which writes the field
    /// unless the sink's HTTP layer does, `[RGI-CL-12]`) and enforces it
    /// exactly like one the application declared; the server never adds
    /// the field by other means. An application's
    /// Content-Length wins, whenever it was stored. The declaration is
    /// dropped by a [`StartResponse::replace`](crate::StartResponse::replace) made after it (an error
    /// response is not the body the hint described), and ignored for a
    /// HEAD request and for 204 and 304, whose heads carry only what the
    /// application gave them (`[RGI-BODY-15]`). A later declaration
    /// replaces an earlier one.
    ///
    /// # Errors
    ///
    /// [`DeclareError::HeadAlreadySent`] once the head has been sent: its
    /// framing is fixed, and nothing changes.
    pub fn declare_length(&mut self, length: u64) -> Result<(), DeclareError> {
        if self.is_head_sent() {
            return Err(DeclareError::HeadAlreadySent {
                length,
                sent: self.sent_length,
            });
        }
        self.server_length = Some(length);
        Ok(())
    }

    /// Ends the response after the body ended: sends the head if no body
    /// bytes did, and checks the declared length was met. Returns the body
    /// length. The server adds its end-of-message framing afterwards.
    ///
    /// # Errors
    ///
    /// [`FinishError::NotStarted`] if the application never started the
    /// response (the server answers 500 instead);
    /// [`FinishError::ContentLengthShort`] if fewer bytes than declared were
    /// sent (the server must close the connection: the message cannot be
    /// completed); [`FinishError::Transport`] if the sink fails.
    pub fn finish(&mut self, sink: &mut (dyn ResponseSink + '_)) -> Result<u64, FinishError> {
        let Some(status) = self.status() else {
            return Err(FinishError::NotStarted);
        };
        let bodiless = is_bodiless(status);
        self.send_stored_head(sink)?;
        match self.sent_length {
            Some(declared) if self.sent < declared && !self.head_request && !bodiless => {
                Err(FinishError::ContentLengthShort {
                    declared,
                    sent: self.sent,
                })
            }
            _ => {
                if let Some(fields) = self.trailers.take() {
                    if self.trailers_enabled && !self.head_request && !bodiless {
                        sink.send_trailers(*fields)?;
                    }
                }
                Ok(self.sent)
            }
        }
    }

    /// Lets this response carry trailer fields: the server calls it when
    /// the connection and the client can take them (HTTP/2; chunked
    /// HTTP/1.1 to a request that carried `TE: trailers`), before lending
    /// the first handle (`[RGI-TRAILER-7]`). Without it, trailers the
    /// application gives are dropped silently.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::ResponseState;
    ///
    /// let mut state = ResponseState::new(&http::Method::POST);
    /// assert!(!state.trailers_enabled());
    /// state.enable_trailers();
    /// assert!(state.trailers_enabled());
    /// ```
    pub fn enable_trailers(&mut self) {
        self.trailers_enabled = true;
    }

    /// Whether trailers reach the client
    /// ([`enable_trailers`](Self::enable_trailers)).
    #[must_use]
    pub fn trailers_enabled(&self) -> bool {
        self.trailers_enabled
    }

    /// Whether the sent head announced trailer fields with a `Trailer`
    /// field (`[RGI-TRAILER-5]`). A server that knows the body's length may
    /// end the message with its last data when it did not, rather than
    /// wait for a trailer section (`[RGI-TRAILER-7]`).
    #[must_use]
    pub fn trailers_announced(&self) -> bool {
        self.trailers_announced
    }

    /// The trailer section the application gave and the server has not
    /// sent yet.
    #[must_use]
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_deref()
    }

    /// Lets the application send `103 Early Hints`: the server calls it
    /// when it can write interim responses on this request (never to an
    /// HTTP/1.0 client), before lending the first handle
    /// (`[RGI-EARLY-3]`). Without it, early hints are dropped silently.
    pub fn enable_early_hints(&mut self) {
        self.early_hints_enabled = true;
    }

    /// Whether early hints reach the client
    /// ([`enable_early_hints`](Self::enable_early_hints)).
    #[must_use]
    pub fn early_hints_enabled(&self) -> bool {
        self.early_hints_enabled
    }

    /// Records that `caller` called an application for this response;
    /// `false` when it had done so before.
    pub(crate) fn record_call(&mut self, caller: CallerId) -> bool {
        self.calls.record(caller)
    }

    /// Stores the application's trailer section
    /// ([`StartResponse::send_trailers`](crate::StartResponse::send_trailers)).
    pub(crate) fn store_trailers(&mut self, fields: HeaderMap) -> Result<(), TrailersError> {
        if self.trailers_set {
            return Err(TrailersError::AlreadySet);
        }
        if let Some(name) = fields.keys().find(|name| is_forbidden_trailer(name)) {
            return Err(TrailersError::Forbidden { name: name.clone() });
        }
        self.trailers_set = true;
        if self.trailers_enabled && !fields.is_empty() {
            self.trailers = Some(Box::new(fields));
        }
        Ok(())
    }

    /// Sends one early hints response now, or drops it when the server did
    /// not enable them
    /// ([`StartResponse::send_early_hints`](crate::StartResponse::send_early_hints)).
    pub(crate) fn send_early_hints(
        &mut self,
        sink: &mut (dyn ResponseSink + '_),
        fields: HeaderMap,
    ) -> Result<(), EarlyHintsError> {
        if let Some(status) = self.sent_status {
            return Err(EarlyHintsError::HeadAlreadySent { status });
        }
        if let Some(name) = fields.keys().find(|name| is_forbidden_early_hint(name)) {
            return Err(EarlyHintsError::InvalidField { name: name.clone() });
        }
        if self.early_hints_enabled && !fields.is_empty() {
            sink.send_early_hints(fields)
                .map_err(EarlyHintsError::Transport)?;
        }
        Ok(())
    }

    /// Sends the stored head unless it went out already, and fixes the
    /// Content-Length it carries: the application's, else the server's
    /// declaration, given beside it (`[RGI-CL-10]`, `[RGI-CL-12]`). Does
    /// nothing without a stored head; callers report that themselves.
    fn send_stored_head(&mut self, sink: &mut (dyn ResponseSink + '_)) -> io::Result<()> {
        let Some(head) = self.head.take() else {
            return Ok(());
        };
        let (length, declared) = match (self.app_length, self.server_length) {
            (Some(application), _) => (Some(application), None),
            // A head announcing trailers is framed by chunks, never by a
            // length the server computed (`[RGI-TRAILER-6]`).
            (None, Some(server))
                if !self.head_request && !head.is_bodiless() && !self.stored_announces_trailers =>
            {
                (Some(server), Some(server))
            }
            (None, _) => (None, None),
        };
        // Sent even if the sink fails: part of it may be on the wire, so it
        // can no longer be replaced.
        self.sent_status = Some(head.status());
        self.trailers_announced = self.stored_announces_trailers;
        self.sent_length = length;
        sink.send_head_with_length(head, declared)
    }

    /// Stores a head for [`StartResponse::start`] (`cause` is `None`) and
    /// [`StartResponse::replace`](crate::StartResponse::replace).
    pub(crate) fn store_head(
        &mut self,
        head: ResponseHead,
        cause: Option<BoxError>,
    ) -> Result<(), StartError> {
        match (self.status(), cause) {
            (Some(current), None) => Err(StartError::AlreadyStarted {
                current,
                attempted: head.status(),
            }),
            (Some(status), Some(cause)) if self.is_head_sent() => {
                Err(StartError::HeadAlreadySent { status, cause })
            }
            (_, cause) => match head.checked() {
                Ok(checked) => {
                    if cause.is_some() {
                        // An error response is not the body the size hint
                        // described; the server's own 500 after a failed
                        // pull must not promise its length either.
                        self.server_length = None;
                    }
                    self.app_length = checked.content_length;
                    self.stored_announces_trailers = checked.announces_trailers;
                    self.head = Some(head);
                    Ok(())
                }
                Err(source) => Err(StartError::InvalidHead { source, cause }),
            },
        }
    }
}

/// A server's Content-Length declaration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeclareError {
    /// The head has been sent, so its framing is fixed (`[RGI-CL-10]`).
    #[error(
        "cannot declare Content-Length {length}: the head was sent already{}",
        match .sent { Some(sent) => format!(" with Content-Length {sent}"), None => String::from(" without Content-Length") }
    )]
    HeadAlreadySent {
        /// The length the server tried to declare.
        length: u64,
        /// The length the sent head carries, if any.
        sent: Option<u64>,
    },
}

/// Ending the response failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FinishError {
    /// The body ended but the application never started the response
    /// (`[RGI-FAIL-7]`).
    #[error("the body ended but the application never started the response")]
    NotStarted,
    /// The body ended short of the declared Content-Length (`[RGI-CL-3]`).
    #[error("Content-Length is {declared} but the body ended after {sent} bytes")]
    ContentLengthShort {
        /// The declared length.
        declared: u64,
        /// The bytes sent.
        sent: u64,
    },
    /// The transport failed (`[RGI-FAIL-8]`).
    #[error("transport failed: {0}")]
    Transport(#[from] io::Error),
}

/// How many lengths [`content_length_value`] takes from [`SMALL_LENGTHS`].
const SMALL_LENGTH_COUNT: usize = 10_000;

/// Every number below [`SMALL_LENGTH_COUNT`] as four ASCII digits with
/// leading zeros (`0000`, `0001`, …, `9999`), in order.
static SMALL_LENGTHS: [u8; SMALL_LENGTH_COUNT * 4] = four_digit_numbers();

/// [`SMALL_LENGTHS`] as text, checked for UTF-8 once at compile time rather
/// than on every response (that check cost about 50 instructions a
/// request). Never empty: the table is ASCII digits only.
static SMALL_LENGTHS_TEXT: &str = match std::str::from_utf8(&SMALL_LENGTHS) {
    Ok(text) => text,
    Err(_) => "",
};

const fn four_digit_numbers() -> [u8; SMALL_LENGTH_COUNT * 4] {
    let mut table = [b'0'; SMALL_LENGTH_COUNT * 4];
    let mut digits = [b'0'; 4];
    let mut at = 0;
    while at < table.len() {
        table[at] = digits[0];
        table[at + 1] = digits[1];
        table[at + 2] = digits[2];
        table[at + 3] = digits[3];
        // Count up in decimal, carrying from the last digit.
        let mut place = 3;
        loop {
            if digits[place] < b'9' {
                digits[place] += 1;
                break;
            }
            digits[place] = b'0';
            if place == 0 {
                break;
            }
            place -= 1;
        }
        at += 4;
    }
    table
}

/// The `content-length` value of a declared length. `HeaderValue::from(u64)`
/// formats into a fresh buffer, one allocation per response (and one more
/// if a sink clones the head, which promotes that buffer to a shared one);
/// the lengths of most bodies a server can declare are small, so those
/// borrow their digits from a static table instead.
fn content_length_value(length: u64) -> HeaderValue {
    let Some(index) = usize::try_from(length)
        .ok()
        .filter(|&index| index < SMALL_LENGTH_COUNT)
    else {
        return HeaderValue::from(length);
    };
    let leading_zeros = match index {
        0..=9 => 3,
        10..=99 => 2,
        100..=999 => 1,
        _ => 0,
    };
    match SMALL_LENGTHS_TEXT.get(index * 4 + leading_zeros..index * 4 + 4) {
        Some(digits) => HeaderValue::from_static(digits),
        // Only if the table were not the ASCII digits it is built as;
        // formatting is still right.
        None => HeaderValue::from(length),
    }
}

/// Whether a response with this status carries no body whatever the request
/// was (204 and 304).
fn is_bodiless(status: StatusCode) -> bool {
    status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
}
