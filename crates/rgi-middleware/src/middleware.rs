//! The [`Middleware`] trait and the events it is given.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use rgi::{BoxError, Environ, ResponseHead, Startup};

use crate::wrapper::Wrapped;

/// The interception a middleware does, written once for both stacks.
///
/// [`Wrapped`] turns it into an [`rgi::Application`] around a synchronous
/// application and into an [`rgi_async::AsyncApplication`] around an
/// asynchronous one, switch to synchronous processing included. The
/// wrapper does the threading the spec's middleware rules ask for
/// (`RGI-MW-2` to `RGI-MW-9`, `RGIA-COMP-9` to `RGIA-COMP-12`): it hands
/// the inner application an intercepted handle in `call` and in every pull
/// or poll, pulls at most one inner chunk per step, drops the inner body
/// once, and keeps length information true.
///
/// One request's life, as the hooks see it:
///
/// 1. [`on_request`](Self::on_request) with the environ, before the inner
///    application is called; it returns the request's state and may answer
///    the request itself ([`Incoming::respond`]).
/// 2. [`on_head`](Self::on_head) with each head the inner application
///    stores (a replacement too), before it is validated and sent.
/// 3. [`on_chunk`](Self::on_chunk) with each inner chunk (and each inner
///    `write`), unless [`body_access`](Self::body_access) says
///    [`BodyAccess::PassThrough`].
/// 4. [`on_end`](Self::on_end) when the inner body has ended, then
///    [`on_trailers`](Self::on_trailers) with the inner trailers (or with
///    none, as an empty map, at the end, to add some).
/// 5. [`on_drop`](Self::on_drop) with the state, moved, when the response
///    is dropped: complete, failed or aborted.
///
/// Every hook has a pass-through default, so a later version adds hooks
/// without breaking a middleware, and a middleware overrides only what it
/// changes.
///
/// **Hooks never block**: they run on the server's event loop when the
/// inner application is asynchronous. Reading the request body is not a
/// hook's work.
///
/// **State is moved, never cloned.** It lives in the response body, moves
/// into the switch continuation with the rest of the response when an
/// asynchronous body switches to synchronous processing, and is handed to
/// `on_drop` by value at the end. It need not be `Clone`.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use http::HeaderValue;
/// use rgi::ResponseHead;
/// use rgi_middleware::{BodyAccess, Emit, Incoming, Middleware};
///
/// /// Upper-cases ASCII bodies and says so in a header.
/// struct Shout;
///
/// impl Middleware for Shout {
///     type State = ();
///
///     fn on_request(&self, _request: &mut Incoming<'_>) {}
///
///     fn body_access(&self, _state: &()) -> BodyAccess {
///         BodyAccess::Observe // same length, other bytes: the file body is not forwarded
///     }
///
///     fn on_head(&self, _state: &mut (), head: &mut ResponseHead) {
///         head.headers_mut().insert("x-shouted", HeaderValue::from_static("yes"));
///     }
///
///     fn on_chunk(&self, _state: &mut (), chunk: Bytes, out: &mut Emit<'_>) {
///         out.push(chunk.to_ascii_uppercase());
///     }
/// }
/// # let _ = Shout;
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// What the middleware keeps for one request, from `on_request` to
    /// `on_drop`. It crosses threads (a switch continuation runs on a
    /// worker thread) by being moved, so it is `Send`, never shared.
    type State: Send + 'static;

    /// Sees the request before the inner application does; may change the
    /// environ ([`Incoming::environ_mut`], keeping its invariants and the
    /// extensions it does not understand, `RGI-MW-11`) or answer the
    /// request itself with [`Incoming::respond`], in which case the inner
    /// application is not called. Returns the request's state.
    fn on_request(&self, request: &mut Incoming<'_>) -> Self::State;

    /// How this response's body is treated; asked again at each step, so a
    /// middleware may decide per response (in `on_head`). It may go from
    /// [`BodyAccess::Transform`] to a lesser access, never back once the
    /// head is stored: the length information given out meanwhile would be
    /// wrong. The default is [`BodyAccess::PassThrough`].
    fn body_access(&self, state: &Self::State) -> BodyAccess {
        let _ = state;
        BodyAccess::PassThrough
    }

    /// Changes a head the inner application stores (or its replacement
    /// error head), before the server's rules check it. Under
    /// [`BodyAccess::Transform`] the wrapper removes `content-length`
    /// afterwards (`RGI-MW-8`).
    fn on_head(&self, state: &mut Self::State, head: &mut ResponseHead) {
        let _ = (state, head);
    }

    /// Transforms one inner chunk into any number of chunks, none
    /// included; the default passes it on. Not called under
    /// [`BodyAccess::PassThrough`]. Under [`BodyAccess::Observe`] the
    /// output must have the chunk's length.
    ///
    /// Each emitted chunk is one step towards the server; a chunk that
    /// emits nothing becomes an empty step, so streaming stays prompt
    /// (`RGI-MW-5`, `RGIA-COMP-10`).
    fn on_chunk(&self, state: &mut Self::State, chunk: Bytes, out: &mut Emit<'_>) {
        let _ = state;
        out.push(chunk);
    }

    /// Changes the inner application's trailer section before the
    /// server's rules see it (`RGI-TRAILER-8`: a middleware that changes
    /// the content removes or recomputes what it made untrue). When the
    /// inner application gave none, it is called once at the end with an
    /// empty map, after [`on_end`](Self::on_end); fields left in it are
    /// sent as the trailers.
    ///
    /// The inner application's own trailers pass here when it gives them,
    /// which is usually in its last step but may be earlier (RGI allows
    /// any time before the body ends); they cannot be held back until the
    /// end, because the handle's interception passes them on at once. A
    /// field computed over the whole body is exact only when the inner
    /// application gives its trailers at its end or not at all.
    fn on_trailers(&self, state: &mut Self::State, fields: &mut HeaderMap) {
        let _ = (state, fields);
    }

    /// The inner body has ended: emit final bytes, such as a compressor's
    /// tail. A middleware that emits bytes here declares
    /// [`BodyAccess::Transform`].
    fn on_end(&self, state: &mut Self::State, out: &mut Emit<'_>) {
        let _ = (state, out);
    }

    /// The response is gone: the state comes back by value with how the
    /// response ended and how much of it was produced. Called exactly once
    /// per request that reached [`on_request`](Self::on_request), on every
    /// path, after the inner body was dropped (for an access log: streamed
    /// and aborted responses are counted right).
    fn on_drop(&self, state: Self::State, outcome: Outcome) {
        let _ = (state, outcome);
    }

    /// Prepares the middleware before the first request, after the inner
    /// application's own start-up (`RGI-LIFE-4`, `RGIA-LIFE-2`). The
    /// default does nothing.
    ///
    /// # Errors
    ///
    /// Anything that makes serving impossible.
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        let _ = startup;
        Ok(())
    }

    /// Releases what [`startup`](Self::startup) acquired, before the inner
    /// application's shut-down. The default does nothing.
    fn shutdown(&self) {}

    /// `app` with this middleware in front of it: an [`rgi::Application`]
    /// when `app` is one, an [`rgi_async::AsyncApplication`] when `app` is
    /// one.
    fn wrap<A>(self, app: A) -> Wrapped<Self, A>
    where
        Self: Sized,
    {
        Wrapped::new(self, app)
    }
}

/// What a middleware does to the bytes of one response
/// ([`Middleware::body_access`]), which decides what length information
/// may pass through (`RGI-MW-8`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyAccess {
    /// The bytes pass untouched and unseen: `on_chunk` is not called, and
    /// the inner size hint and file body (for `sendfile`) are forwarded.
    #[default]
    PassThrough,
    /// Every chunk passes through `on_chunk`, which keeps its length: the
    /// size hint is forwarded, the file body is not (platform transfer
    /// would bypass the hook).
    Observe,
    /// `on_chunk` and `on_end` change the bytes: no size hint, no file
    /// body, and `content-length` removed from the head.
    Transform,
}

impl BodyAccess {
    pub(crate) fn sees_chunks(self) -> bool {
        !matches!(self, BodyAccess::PassThrough)
    }

    pub(crate) fn keeps_length(self) -> bool {
        !matches!(self, BodyAccess::Transform)
    }
}

/// The request as [`Middleware::on_request`] sees it: the environ, and the
/// means to answer without the inner application.
#[derive(Debug)]
pub struct Incoming<'a> {
    environ: &'a mut Environ,
    answer: Option<(ResponseHead, Bytes)>,
}

impl<'a> Incoming<'a> {
    pub(crate) fn new(environ: &'a mut Environ) -> Self {
        Incoming {
            environ,
            answer: None,
        }
    }

    pub(crate) fn into_answer(self) -> Option<(ResponseHead, Bytes)> {
        self.answer
    }

    /// The request.
    #[must_use]
    pub fn environ(&self) -> &Environ {
        self.environ
    }

    /// The request, to change before the inner application sees it.
    pub fn environ_mut(&mut self) -> &mut Environ {
        self.environ
    }

    /// Answers the request with `head` and `body` instead of calling the
    /// inner application (a 403, a 413, a cached page). The answer is the
    /// middleware's own: it does not pass through `on_head` or `on_chunk`,
    /// but `on_drop` sees it. A second call replaces the first.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::StatusCode;
    /// use rgi_middleware::{Incoming, Middleware};
    ///
    /// /// Refuses requests without an `authorization` field.
    /// struct Gate;
    ///
    /// impl Middleware for Gate {
    ///     type State = ();
    ///
    ///     fn on_request(&self, request: &mut Incoming<'_>) {
    ///         if !request.environ().headers().contains_key("authorization") {
    ///             request.respond(StatusCode::UNAUTHORIZED, "");
    ///         }
    ///     }
    /// }
    /// # let _ = Gate;
    /// ```
    pub fn respond(&mut self, head: impl Into<ResponseHead>, body: impl Into<Bytes>) {
        self.answer = Some((head.into(), body.into()));
    }

    /// Whether [`respond`](Self::respond) was called.
    #[must_use]
    pub fn is_answered(&self) -> bool {
        self.answer.is_some()
    }
}

/// Where [`Middleware::on_chunk`] and [`Middleware::on_end`] put their
/// output: each pushed chunk becomes one step towards the server, in
/// order.
#[derive(Debug)]
pub struct Emit<'a> {
    // The first chunk is handed straight back, so that the common case
    // (one chunk in, one out) queues nothing and allocates nothing.
    first: Option<Bytes>,
    rest: &'a mut VecDeque<Bytes>,
}

impl<'a> Emit<'a> {
    pub(crate) fn new(rest: &'a mut VecDeque<Bytes>) -> Self {
        Emit { first: None, rest }
    }

    /// Emits `chunk` after what was emitted before; an empty chunk is
    /// ignored.
    pub fn push(&mut self, chunk: impl Into<Bytes>) {
        let chunk = chunk.into();
        if chunk.is_empty() {
            return;
        }
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    /// The first chunk emitted, if any; the others stay queued.
    pub(crate) fn into_first(self) -> Option<Bytes> {
        self.first
    }

    /// Everything emitted, as one buffer (for an inner `write`, which has
    /// one buffer to give on).
    pub(crate) fn into_joined(self) -> Bytes {
        let first = self.first.unwrap_or_default();
        if self.rest.is_empty() {
            return first;
        }
        let len = first.len() + self.rest.iter().map(Bytes::len).sum::<usize>();
        let mut joined = BytesMut::with_capacity(len);
        joined.extend_from_slice(&first);
        for chunk in self.rest.drain(..) {
            joined.extend_from_slice(&chunk);
        }
        joined.freeze()
    }
}

/// How a response ended, as [`Middleware::on_drop`] is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The status of the last head the inner application stored (through
    /// `on_head`) or of the middleware's own answer; `None` if none was.
    pub status: Option<StatusCode>,
    /// Body bytes this middleware handed on towards the server: its steps'
    /// chunks and the inner writes the server accepted.
    pub body_bytes: u64,
    /// How the response ended.
    pub ending: Ending,
}

/// How a response ended ([`Outcome::ending`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ending {
    /// The body ran to its end.
    Complete,
    /// The inner application failed: its `call`, a step, or its switch
    /// continuation returned an error.
    Failed,
    /// The response was dropped before its end: the client went away, the
    /// server shut down, or something further out failed.
    Aborted,
}
