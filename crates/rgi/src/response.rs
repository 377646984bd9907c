//! Starting the response: the handle an application uses to start it
//! (spec/rgi.md, "Starting the response"), lent from the server's
//! [`ResponseState`].

use std::fmt;

use bytes::Bytes;
use http::HeaderMap;

use crate::box_error::BoxError;
use crate::caller::CallerId;
use crate::head::ResponseHead;
use crate::response_error::{EarlyHintsError, SendError, StartError};
use crate::state::{ResponseSink, ResponseState};
use crate::trailers::TrailersError;

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

    /// Called with the result of every [`StartResponse::write`] that went
    /// through this hook, once the server has handled the bytes: `Ok` when
    /// they were accepted, or the error the application gets back. Only a
    /// layer that sees results can tell a failed write from one that went
    /// out (a metrics middleware counting bytes actually sent, or one that
    /// notices the client has gone).
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{Intercept, SendError};
    ///
    /// /// Counts writes that reached the transport and writes that failed there.
    /// #[derive(Default)]
    /// struct WriteMetrics {
    ///     sent: u64,
    ///     transport_errors: u64,
    /// }
    ///
    /// impl Intercept for WriteMetrics {
    ///     fn on_write_result(&mut self, result: Result<(), &SendError>) {
    ///         match result {
    ///             Ok(()) => self.sent += 1,
    ///             Err(SendError::Transport(_)) => self.transport_errors += 1,
    ///             Err(_) => {}
    ///         }
    ///     }
    /// }
    /// ```
    fn on_write_result(&mut self, result: Result<(), &SendError>) {
        let _ = result;
    }

    /// Called with the fields given to [`StartResponse::send_trailers`]
    /// before the server's rules see them: a layer that changes the body
    /// (a compressor, a checksum) decides here what its trailers say
    /// (`[RGI-TRAILER-8]`).
    fn on_trailers(&mut self, fields: &mut HeaderMap) {
        let _ = fields;
    }

    /// Called with the fields given to [`StartResponse::send_early_hints`].
    fn on_early_hints(&mut self, fields: &mut HeaderMap) {
        let _ = fields;
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
///     fn send_head(&mut self, head: ResponseHead) -> std::io::Result<()> {
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
    fn is_head_request(&self) -> bool;
    fn send_trailers(&mut self, fields: HeaderMap) -> Result<(), TrailersError>;
    fn send_early_hints(&mut self, fields: HeaderMap) -> Result<(), EarlyHintsError>;
    fn trailers_deliverable(&self) -> bool;
    fn early_hints_deliverable(&self) -> bool;
    fn record_call(&mut self, caller: CallerId) -> bool;
}

impl ResponseState {
    /// A handle to lend the application for [`Application::call`] or one
    /// [`Body::next_chunk`].
    ///
    /// [`Application::call`]: crate::Application::call
    /// [`Body::next_chunk`]: crate::Body::next_chunk
    pub fn start_response<'a>(
        &'a mut self,
        sink: &'a mut (dyn ResponseSink + 'a),
    ) -> StartResponse<'a> {
        StartResponse::root(self, sink)
    }
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

    /// Whether the response state behind this handle was made for a HEAD
    /// request ([`ResponseState::new`] with `Method::HEAD`): its body is
    /// counted and checked against the Content-Length but never sent. An
    /// application may skip producing an expensive body then, as long as
    /// its head (status and Content-Length) stays what a GET would get.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{ResponseHead, ResponseSink, ResponseState};
    /// use bytes::Bytes;
    /// use http::Method;
    ///
    /// struct Discard;
    /// impl ResponseSink for Discard {
    ///     fn send_head(&mut self, _head: ResponseHead) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    ///     fn send_data(&mut self, _data: Bytes) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let mut state = ResponseState::new(&Method::HEAD);
    /// assert!(state.start_response(&mut Discard).is_head_request());
    /// let mut state = ResponseState::new(&Method::GET);
    /// assert!(!state.start_response(&mut Discard).is_head_request());
    /// ```
    #[must_use]
    pub fn is_head_request(&self) -> bool {
        Respond::is_head_request(self)
    }

    /// Gives the response's trailer section, sent after the last body
    /// byte (`[RGI-TRAILER-4]`): from `call`, from a pull or poll of the
    /// body (with the handle lent to it), or from a switch continuation,
    /// any time before the body ends. Announce them with a `Trailer` field
    /// in the head (`[RGI-TRAILER-5]`): that keeps a computed Content-Length
    /// off the head, and some HTTP layers send only announced fields.
    ///
    /// Trailers reach only clients that can take them; otherwise they are
    /// dropped silently and this still returns `Ok`
    /// ([`trailers_deliverable`](Self::trailers_deliverable) tells which).
    ///
    /// # Errors
    ///
    /// [`TrailersError::Forbidden`] for a field no trailer section may carry
    /// ([`is_forbidden_trailer`](crate::is_forbidden_trailer)),
    /// [`TrailersError::AlreadySet`] for a second call.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{header, HeaderMap, HeaderValue, StatusCode};
    /// use rgi::{Body, BoxError, ResponseHead, StartResponse};
    ///
    /// /// Streams its parts, then reports how many there were.
    /// struct Counted { parts: Vec<Bytes>, sent: usize }
    ///
    /// impl Body for Counted {
    ///     fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
    ///         if let Some(part) = self.parts.pop() {
    ///             self.sent += 1;
    ///             return Some(Ok(part));
    ///         }
    ///         let mut fields = HeaderMap::new();
    ///         fields.insert("x-parts", HeaderValue::from(self.sent));
    ///         start.send_trailers(fields).err().map(|e| Err(e.into()))
    ///     }
    /// }
    ///
    /// let app = rgi::from_fn(|_environ, start| {
    ///     start.start(
    ///         ResponseHead::new(StatusCode::OK)
    ///             .with_header(header::TRAILER, HeaderValue::from_static("x-parts")),
    ///     )?;
    ///     Ok(Counted { parts: vec![Bytes::from("b"), Bytes::from("a")], sent: 0 })
    /// });
    /// # let _ = app;
    /// ```
    pub fn send_trailers(&mut self, fields: HeaderMap) -> Result<(), TrailersError> {
        Respond::send_trailers(self, fields)
    }

    /// Whether trailers given now reach the client: the server declared
    /// them and this connection and client can take them
    /// (`[RGI-TRAILER-7]`).
    #[must_use]
    pub fn trailers_deliverable(&self) -> bool {
        Respond::trailers_deliverable(self)
    }

    /// Sends a `103 Early Hints` interim response, typically `Link`
    /// fields for the client to preload, before the final head
    /// (`[RGI-EARLY-1]`). It does not start the response: a lazy head and
    /// an error replacement work as before. Any number may be sent; where
    /// the client or the server cannot take them they are dropped silently
    /// and this still returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`EarlyHintsError::HeadAlreadySent`] once the final head went out,
    /// [`EarlyHintsError::InvalidField`] for a framing or
    /// connection-specific field (`[RGI-EARLY-2]`),
    /// [`EarlyHintsError::Transport`] when writing it failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::{header, HeaderMap, HeaderValue, StatusCode};
    ///
    /// let app = rgi::from_fn(|_environ, start| {
    ///     let mut hints = HeaderMap::new();
    ///     hints.insert(header::LINK, HeaderValue::from_static("</style.css>; rel=preload; as=style"));
    ///     start.send_early_hints(hints)?;
    ///     // ... the slow work that the hints let the client overlap ...
    ///     start.start(StatusCode::OK)?;
    ///     Ok(String::from("<!doctype html><link rel=stylesheet href=/style.css>"))
    /// });
    /// # let _ = app;
    /// ```
    pub fn send_early_hints(&mut self, fields: HeaderMap) -> Result<(), EarlyHintsError> {
        Respond::send_early_hints(self, fields)
    }

    /// Whether early hints sent now reach the client (`[RGI-EARLY-3]`).
    #[must_use]
    pub fn early_hints_deliverable(&self) -> bool {
        Respond::early_hints_deliverable(self)
    }

    /// Records that `caller` is calling an application for this response,
    /// and returns whether this is its first call for it (like
    /// `HashSet::insert`). A server calls an application once per request
    /// with that request's own response state (`[RGI-APP-5]`,
    /// `[RGIA-APP-1]`): a validator that gets `false` has been called
    /// twice for one response. The record lives in the
    /// [`ResponseState`](crate::ResponseState), so it sees through
    /// [`intercept`](Self::intercept) layers; it keeps two callers (a
    /// validator on each side of an adapter), and a third and later caller
    /// always gets `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{CallerId, ResponseHead, ResponseSink, ResponseState};
    /// use bytes::Bytes;
    /// use http::Method;
    ///
    /// struct Discard;
    /// impl ResponseSink for Discard {
    ///     fn send_head(&mut self, _head: ResponseHead) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    ///     fn send_data(&mut self, _data: Bytes) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let (validator, inner) = (CallerId::new(), CallerId::new());
    /// let mut state = ResponseState::new(&Method::GET);
    /// assert!(state.start_response(&mut Discard).record_call(validator));
    /// assert!(state.start_response(&mut Discard).record_call(inner));
    /// // The same caller again, for the same response: a second call.
    /// assert!(!state.start_response(&mut Discard).record_call(validator));
    /// ```
    #[must_use]
    pub fn record_call(&mut self, caller: CallerId) -> bool {
        Respond::record_call(self, caller)
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
                let result = parent.write(data);
                hook.on_write_result(result.as_ref().map(|&()| ()));
                result
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

    fn is_head_request(&self) -> bool {
        match &self.inner {
            Inner::Root { state, .. } => state.is_head_request(),
            Inner::Layer { parent, .. } => parent.is_head_request(),
        }
    }

    fn send_trailers(&mut self, mut fields: HeaderMap) -> Result<(), TrailersError> {
        match &mut self.inner {
            Inner::Root { state, .. } => state.store_trailers(fields),
            Inner::Layer { hook, parent } => {
                hook.on_trailers(&mut fields);
                parent.send_trailers(fields)
            }
        }
    }

    fn send_early_hints(&mut self, mut fields: HeaderMap) -> Result<(), EarlyHintsError> {
        match &mut self.inner {
            Inner::Root { state, sink } => state.send_early_hints(&mut **sink, fields),
            Inner::Layer { hook, parent } => {
                hook.on_early_hints(&mut fields);
                parent.send_early_hints(fields)
            }
        }
    }

    fn trailers_deliverable(&self) -> bool {
        match &self.inner {
            Inner::Root { state, .. } => state.trailers_enabled(),
            Inner::Layer { parent, .. } => parent.trailers_deliverable(),
        }
    }

    fn early_hints_deliverable(&self) -> bool {
        match &self.inner {
            Inner::Root { state, .. } => state.early_hints_enabled() && !state.is_head_sent(),
            Inner::Layer { parent, .. } => parent.early_hints_deliverable(),
        }
    }

    fn record_call(&mut self, caller: CallerId) -> bool {
        match &mut self.inner {
            Inner::Root { state, .. } => state.record_call(caller),
            Inner::Layer { parent, .. } => parent.record_call(caller),
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
