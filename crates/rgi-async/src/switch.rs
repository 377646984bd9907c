//! The steps an asynchronous body yields, and the one-way switch to
//! synchronous processing (spec/rgi-async.md, "The switch to synchronous
//! processing").

use std::fmt;
use std::task::Poll;

use bytes::Bytes;
use rgi::{Body, BoxError, StartResponse};

/// One step of an [`AsyncBody`](crate::AsyncBody): a chunk of the response
/// body, or the switch to synchronous processing.
///
/// # Examples
///
/// ```
/// use rgi_async::{Step, SyncSwitch};
/// use bytes::Bytes;
///
/// let chunk = Step::from(Bytes::from_static(b"hello"));
/// assert!(matches!(chunk, Step::Chunk(ref bytes) if bytes == "hello"));
///
/// let switch = Step::Switch(SyncSwitch::new(|_start| Ok(rgi::Empty)));
/// assert!(matches!(switch, Step::Switch(_)));
/// ```
///
/// Later minor versions may add steps (RGIA-VER-4), so a match outside
/// this crate needs a wildcard arm; one without it does not compile:
///
/// ```compile_fail,E0004
/// fn kind(step: &rgi_async::Step) -> &'static str {
///     match step {
///         rgi_async::Step::Chunk(_) => "chunk",
///         rgi_async::Step::Switch(_) => "switch",
///     }
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Step {
    /// A chunk of the response body. An empty chunk is a yield point: it
    /// sends nothing, and the server polls again.
    Chunk(Bytes),
    /// The rest of the response is produced synchronously: the server drops
    /// the asynchronous body, runs the continuation on a worker thread and
    /// pulls the synchronous body it returns there. There is no way back.
    Switch(SyncSwitch),
}

impl Step {
    /// What `poll_step` returns for a step that is ready now, from the
    /// `Result` of producing it: a chunk or a switch, or the error that
    /// fails the response.
    ///
    /// Inside `poll_step`, `?` works on its own, too: an `Err` converts to
    /// `Poll::Ready(Some(Err(..)))`, so `start.start(head)?;` fails the
    /// response with the start error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Poll;
    /// use bytes::Bytes;
    /// use rgi_async::Step;
    ///
    /// let parsed: Result<Bytes, std::num::ParseIntError> = "42".parse::<u8>().map(|n| Bytes::from(n.to_string()));
    /// assert!(matches!(Step::ready(parsed), Poll::Ready(Some(Ok(Step::Chunk(_))))));
    ///
    /// let failed: Result<Bytes, std::num::ParseIntError> = "x".parse::<u8>().map(|n| Bytes::from(n.to_string()));
    /// assert!(matches!(Step::ready(failed), Poll::Ready(Some(Err(_)))));
    /// ```
    pub fn ready<T, E>(result: Result<T, E>) -> Poll<Option<Result<Step, BoxError>>>
    where
        T: Into<Step>,
        E: Into<BoxError>,
    {
        Poll::Ready(Some(result.map(Into::into).map_err(Into::into)))
    }
}

impl From<Bytes> for Step {
    fn from(chunk: Bytes) -> Self {
        Step::Chunk(chunk)
    }
}

impl From<SyncSwitch> for Step {
    fn from(switch: SyncSwitch) -> Self {
        Step::Switch(switch)
    }
}

/// The boxed continuation a [`SyncSwitch`] holds.
pub type Continuation =
    Box<dyn FnOnce(&mut StartResponse<'_>) -> Result<Box<dyn Body>, BoxError> + Send>;

/// The continuation of a response that switches from asynchronous to
/// synchronous processing (WSGI's "input factory" done with ownership).
///
/// The continuation owns whatever it captured, typically the request's
/// [`rgi::Input`], which it then reads with blocking `Read` over exactly
/// the unread remainder. It receives the same response state the
/// asynchronous body had: a head stored or sent before the switch carries
/// over, and the continuation may start the response if nobody did.
///
/// # Examples
///
/// An application that reads the request body with blocking reads, on a
/// worker thread, by switching at its first step:
///
/// ```
/// use std::io::Read;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
///
/// use rgi::{BoxError, Environ, Input, ResponseHead, StartResponse};
/// use rgi_async::{AsyncBody, Step, SyncSwitch};
/// use http::StatusCode;
///
/// /// Echoes the request body, read synchronously.
/// struct Echo(Option<Input>);
///
/// impl AsyncBody for Echo {
///     fn poll_step(
///         mut self: Pin<&mut Self>,
///         _cx: &mut Context<'_>,
///         _start: &mut StartResponse<'_>,
///     ) -> Poll<Option<Result<Step, BoxError>>> {
///         let Some(mut input) = self.0.take() else {
///             return Poll::Ready(None);
///         };
///         Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |start| {
///             let mut body = Vec::new();
///             input.read_to_end(&mut body)?; // blocking is allowed here
///             start.start(ResponseHead::new(StatusCode::OK))?;
///             Ok(body)
///         })))))
///     }
/// }
///
/// let app = rgi_async::from_fn(|environ: Environ, _start| Ok(Echo(Some(environ.into_input()))));
/// # let _ = app;
/// ```
pub struct SyncSwitch {
    continuation: Continuation,
}

impl SyncSwitch {
    /// A switch that runs `continuation` and then pulls the synchronous body
    /// it returns.
    pub fn new<F, B>(continuation: F) -> Self
    where
        F: FnOnce(&mut StartResponse<'_>) -> Result<B, BoxError> + Send + 'static,
        B: Body + 'static,
    {
        SyncSwitch {
            continuation: Box::new(move |start| {
                continuation(start).map(|body| Box::new(body) as Box<dyn Body>)
            }),
        }
    }

    /// Runs the continuation (server side): on a worker thread, with the
    /// request's [`StartResponse`]. The server then pulls the returned body
    /// with [`Body::next_chunk`] on a worker thread.
    ///
    /// # Errors
    ///
    /// Whatever the continuation returns; the server treats it like an
    /// error from [`rgi::Application::call`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{Body, ResponseHead, ResponseSink, ResponseState};
    /// use rgi_async::SyncSwitch;
    /// use bytes::Bytes;
    /// use http::{Method, StatusCode};
    ///
    /// struct Discard;
    /// impl ResponseSink for Discard {
    ///     fn send_head(&mut self, _: ResponseHead) -> std::io::Result<()> { Ok(()) }
    ///     fn send_data(&mut self, _: Bytes) -> std::io::Result<()> { Ok(()) }
    /// }
    ///
    /// let switch = SyncSwitch::new(|start| {
    ///     start.start(ResponseHead::new(StatusCode::OK))?;
    ///     Ok(Bytes::from_static(b"done"))
    /// });
    /// let (mut state, mut sink) = (ResponseState::new(&Method::GET), Discard);
    /// let mut body = switch.run(&mut state.start_response(&mut sink))?;
    /// assert_eq!(state.head().map(ResponseHead::status), Some(StatusCode::OK));
    /// let chunk = body.next_chunk(&mut state.start_response(&mut sink));
    /// assert_eq!(chunk.transpose()?.as_deref(), Some(&b"done"[..]));
    /// # Ok::<(), rgi::BoxError>(())
    /// ```
    pub fn run(self, start: &mut StartResponse<'_>) -> Result<Box<dyn Body>, BoxError> {
        (self.continuation)(start)
    }

    /// The boxed continuation, for a middleware that must wrap it so its
    /// interception still applies after the switch (spec/rgi-async.md,
    /// composition, `[RGIA-COMP-11]`): unwrap, wrap, and rebuild with
    /// [`SyncSwitch::new`].
    ///
    /// Wrap both halves: the continuation's [`StartResponse`] (for a head
    /// it starts at once) and the body it returns (for a head it starts
    /// lazily, in its first `next_chunk`, or replaces later).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{HeaderValue, Method, StatusCode};
    /// use rgi::{Body, BoxError, Intercept, ResponseHead, ResponseSink, ResponseState, StartResponse};
    /// use rgi_async::SyncSwitch;
    ///
    /// #[derive(Clone, Copy)]
    /// struct Stamp;
    /// impl Intercept for Stamp {
    ///     fn on_start(&mut self, head: &mut ResponseHead) {
    ///         head.headers_mut().insert("x-stamp", HeaderValue::from_static("1"));
    ///     }
    /// }
    ///
    /// /// The continuation's body, with every pull intercepted too.
    /// struct Stamped(Box<dyn Body>);
    /// impl Body for Stamped {
    ///     fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
    ///         self.0.next_chunk(&mut start.intercept(&mut Stamp))
    ///     }
    ///     fn size_hint(&self) -> Option<u64> {
    ///         self.0.size_hint()
    ///     }
    /// }
    ///
    /// fn stamped(inner: SyncSwitch) -> SyncSwitch {
    ///     let continuation = inner.into_continuation();
    ///     SyncSwitch::new(move |start| {
    ///         let body = continuation(&mut start.intercept(&mut Stamp))?;
    ///         Ok(Stamped(body))
    ///     })
    /// }
    ///
    /// /// A synchronous body that starts its head lazily, at its first pull.
    /// struct Lazy(bool);
    /// impl Body for Lazy {
    ///     fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
    ///         if std::mem::replace(&mut self.0, true) {
    ///             return None;
    ///         }
    ///         Some(start.start(ResponseHead::new(StatusCode::OK)).map(|()| Bytes::from_static(b"late")).map_err(Into::into))
    ///     }
    /// }
    ///
    /// struct Discard;
    /// impl ResponseSink for Discard {
    ///     fn send_head(&mut self, _: ResponseHead) -> std::io::Result<()> { Ok(()) }
    ///     fn send_data(&mut self, _: Bytes) -> std::io::Result<()> { Ok(()) }
    /// }
    ///
    /// let switch = stamped(SyncSwitch::new(|_start| Ok(Lazy(false))));
    /// let (mut state, mut sink) = (ResponseState::new(&Method::GET), Discard);
    /// let mut body = switch.run(&mut state.start_response(&mut sink))?;
    /// assert!(state.head().is_none(), "nothing started yet");
    /// let chunk = body.next_chunk(&mut state.start_response(&mut sink)).transpose()?;
    /// assert_eq!(chunk.as_deref(), Some(&b"late"[..]));
    /// let head = state.head().ok_or("no head")?;
    /// assert_eq!(head.headers()["x-stamp"], "1", "the lazy head was intercepted");
    /// # Ok::<(), BoxError>(())
    /// ```
    #[must_use]
    pub fn into_continuation(self) -> Continuation {
        self.continuation
    }
}

impl fmt::Debug for SyncSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncSwitch").finish_non_exhaustive()
    }
}
