//! The request body stream (`wsgi.input`).

use std::cmp::min;
use std::error::Error;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderMap, StatusCode};

use crate::trailers::{TrailerSlot, TrailersError};

/// Size of the internal buffer, allocated on the first buffered read.
const BUFFER_CAPACITY: usize = 8 * 1024;

/// Upper bound of a single allocation made for a direct (unbuffered) read, so
/// that a huge `max` or Content-Length does not reserve memory the peer has
/// not sent.
const MAX_DIRECT_READ: usize = 64 * 1024;

/// Upper bound of the up-front reservation in [`Input::read_to_bytes`]; a
/// larger body grows the buffer as its bytes actually arrive.
const MAX_INITIAL_RESERVATION: usize = 1024 * 1024;

/// The request body: a bounded, buffered reader (`wsgi.input`).
///
/// A server builds one per request and hands it to the application inside
/// the [`Environ`](crate::Environ). The framing decides where the body ends:
///
/// - `Some(n)` (a `Content-Length`): the body is exactly `n` bytes. The input
///   never asks its source for more than the bytes still missing, so a
///   pipelined next request on the same connection is never touched, and it
///   never yields a byte beyond `n`. A source that ends early is reported as
///   [`InputError::Truncated`].
/// - `None` (for example a chunked upload the server de-chunks): the source
///   delimits the body and signals its end with EOF.
///
/// After the end every read returns 0 (EOF), forever; the source is not asked
/// again. The input implements [`Read`] and [`BufRead`], so `read_to_end`,
/// `read_line`, `lines` and `take` work as usual. Its buffer is allocated on
/// the first buffered read only, and large reads into an empty buffer go
/// straight to the caller's memory, as with [`std::io::BufReader`].
///
/// # Examples
///
/// ```
/// use std::io::{BufRead, Read};
///
/// use rgi::Input;
///
/// // The source holds this request's body and the start of the next request.
/// let connection = &b"name=rgi\nlang=rust GET / HTTP/1.1\r\n"[..];
/// let mut input = Input::new(connection, Some(18));
///
/// let mut line = String::new();
/// input.read_line(&mut line)?;
/// assert_eq!(line, "name=rgi\n");
///
/// let mut rest = String::new();
/// input.read_to_string(&mut rest)?;
/// assert_eq!(rest, "lang=rust");
/// assert!(input.is_finished());
/// assert_eq!(input.bytes_read(), 18);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Input {
    source: Source,
    buffer: Buffer,
    /// Bytes handed to the application (not merely buffered).
    delivered: u64,
}

/// A non-blocking source of request body bytes, for servers built on an
/// event loop: the poll-based face of [`Input`] (spec/rgi-async.md, one
/// input with two faces).
///
/// The server reads its connection only when the input polls, which is how
/// input backpressure reaches the socket.
pub trait AsyncSource: Send {
    /// Polls for at most `max` bytes (`max` is never 0). An empty chunk means
    /// the end of the source; with a declared length, an end before that
    /// length is a truncated body.
    ///
    /// # Errors
    ///
    /// Any transport error; [`InputError::ResponseFinished`] once the
    /// response is over.
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>>;
}

/// The two kinds of source an input can read.
enum Reader {
    Blocking(Box<dyn Read + Send>),
    Async {
        source: Pin<Box<dyn AsyncSource>>,
        /// Bytes a source returned beyond what was asked for, kept for the
        /// next read rather than lost.
        spill: Bytes,
    },
}

/// The underlying reader and the framing that bounds it.
struct Source {
    reader: Option<Reader>,
    declared: Option<u64>,
    /// Bytes taken from the reader, whether or not already delivered.
    received: u64,
    state: SourceState,
    /// Where the server puts the trailer section (`[RGI-TRAILER-1]`).
    trailers: Option<TrailerSlot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceState {
    Open,
    Ended,
    /// Sticky: the reader ended before `declared` bytes.
    Truncated,
    /// Sticky: the reader reported the client's fault (malformed, over the
    /// server's limit, stalled); the body cannot be read any further.
    Failed(ClientFault),
}

/// A copy of a client error a source reported, kept to report it again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientFault {
    Malformed(String),
    OverLimit(u64),
    Stalled(Duration),
}

impl ClientFault {
    fn of(error: &InputError) -> Option<Self> {
        match error {
            InputError::MalformedBody { reason } => Some(Self::Malformed(reason.clone())),
            InputError::BodyLimitExceeded { limit } => Some(Self::OverLimit(*limit)),
            InputError::BodyTimedOut { timeout } => Some(Self::Stalled(*timeout)),
            _ => None,
        }
    }

    fn to_error(&self) -> InputError {
        match self {
            Self::Malformed(reason) => InputError::MalformedBody {
                reason: reason.clone(),
            },
            Self::OverLimit(limit) => InputError::BodyLimitExceeded { limit: *limit },
            Self::Stalled(timeout) => InputError::BodyTimedOut { timeout: *timeout },
        }
    }
}

enum Buffer {
    /// Bytes read from the source; `storage` stays empty until the first
    /// buffered read so an unread body costs no allocation.
    Owned {
        storage: Vec<u8>,
        start: usize,
        end: usize,
    },
    /// A pre-read body, served without copying.
    Shared(Bytes),
}

impl Source {
    fn missing(&self) -> Option<u64> {
        self.declared
            .map(|declared| declared.saturating_sub(self.received))
    }

    fn truncated_error(&self) -> io::Error {
        InputError::Truncated {
            declared: self.declared.unwrap_or(self.received),
            received: self.received,
        }
        .into()
    }

    /// How many bytes the next read may take given `room`; 0 means the
    /// read returns nothing (end of body, or no room).
    fn wanted(&mut self, room: usize) -> io::Result<usize> {
        match &self.state {
            SourceState::Open => {}
            SourceState::Ended => return Ok(0),
            SourceState::Truncated => return Err(self.truncated_error()),
            SourceState::Failed(fault) => return Err(fault.to_error().into()),
        }
        match self.missing() {
            Some(0) => {
                self.state = SourceState::Ended;
                Ok(0)
            }
            Some(missing) => Ok(min(room, usize::try_from(missing).unwrap_or(usize::MAX))),
            None => Ok(room),
        }
    }

    /// Makes a client error from the reader sticky, so every later read
    /// reports it without asking the reader again (`[RGI-INPUT-17]`).
    fn note_failure(&mut self, error: io::Error) -> io::Error {
        if let Some(fault) = InputError::from_io(&error).and_then(ClientFault::of) {
            self.state = SourceState::Failed(fault);
        }
        error
    }

    /// Accounts for `count` bytes taken from the reader; 0 is the reader's
    /// end, which is a truncation when a length was declared.
    fn settle(&mut self, count: usize) -> io::Result<usize> {
        if count == 0 {
            if self.declared.is_some() {
                self.state = SourceState::Truncated;
                return Err(self.truncated_error());
            }
            self.state = SourceState::Ended;
            return Ok(0);
        }
        self.received += count as u64;
        if self.missing() == Some(0) {
            // Ending here, not at the next read, lets `is_finished` turn true
            // as soon as the last byte is consumed.
            self.state = SourceState::Ended;
        }
        Ok(count)
    }

    /// Reads at most `out.len()` bytes and never more than the body still
    /// missing. `Ok(0)` only at the end of the body (or for an empty `out`).
    /// An asynchronous source blocks the calling thread until it is ready.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let wanted = self.wanted(out.len())?;
        if wanted == 0 {
            return Ok(0);
        }
        let count = match self.reader.as_mut() {
            None => {
                self.state = SourceState::Ended;
                return Ok(0);
            }
            // A misbehaving reader could claim more than it was given room
            // for; believing it would push the count past the boundary.
            Some(Reader::Blocking(reader)) => reader
                .read(&mut out[..wanted])
                .map(|count| min(count, wanted)),
            Some(Reader::Async { source, spill }) => {
                park_until_ready(|cx| poll_async(source, spill, cx, wanted)).map(|chunk| {
                    out[..chunk.len()].copy_from_slice(&chunk);
                    chunk.len()
                })
            }
        };
        match count {
            Ok(count) => self.settle(count),
            Err(error) => Err(self.note_failure(error)),
        }
    }

    /// The non-blocking read: at most `max` bytes, without blocking the
    /// thread.
    fn poll_read(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        let wanted = match self.wanted(max) {
            Ok(0) => return Poll::Ready(Ok(Bytes::new())),
            Ok(wanted) => wanted,
            Err(error) => return Poll::Ready(Err(error)),
        };
        let chunk = match self.reader.as_mut() {
            None => {
                self.state = SourceState::Ended;
                return Poll::Ready(Ok(Bytes::new()));
            }
            Some(Reader::Blocking(_)) => {
                return Poll::Ready(Err(InputError::WouldBlockThread.into()));
            }
            Some(Reader::Async { source, spill }) => match poll_async(source, spill, cx, wanted) {
                Poll::Ready(Ok(chunk)) => chunk,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(self.note_failure(error))),
                Poll::Pending => return Poll::Pending,
            },
        };
        Poll::Ready(self.settle(chunk.len()).map(|_| chunk))
    }
}

/// Polls an asynchronous source for at most `wanted` bytes, serving earlier
/// excess first.
fn poll_async(
    source: &mut Pin<Box<dyn AsyncSource>>,
    spill: &mut Bytes,
    cx: &mut Context<'_>,
    wanted: usize,
) -> Poll<io::Result<Bytes>> {
    if !spill.is_empty() {
        return Poll::Ready(Ok(spill.split_to(min(wanted, spill.len()))));
    }
    match source.as_mut().poll_chunk(cx, wanted) {
        Poll::Ready(Ok(mut chunk)) => {
            if chunk.len() > wanted {
                *spill = chunk.split_off(wanted);
            }
            Poll::Ready(Ok(chunk))
        }
        other => other,
    }
}

/// Drives `poll` to completion on the calling thread, parking it between
/// wake-ups: the blocking face of an asynchronous source, for code that runs
/// off the event loop (after the switch to synchronous processing, or in
/// offload).
fn park_until_ready<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(value) = poll(&mut cx) {
            return value;
        }
        // A spurious unpark only costs one more poll.
        thread::park();
    }
}

impl Buffer {
    fn available(&self) -> &[u8] {
        match self {
            Self::Owned {
                storage,
                start,
                end,
            } => &storage[*start..*end],
            Self::Shared(bytes) => bytes,
        }
    }

    fn consume(&mut self, amount: usize) -> usize {
        match self {
            Self::Owned { start, end, .. } => {
                let amount = min(amount, *end - *start);
                *start += amount;
                amount
            }
            Self::Shared(bytes) => {
                let amount = min(amount, bytes.len());
                bytes.advance(amount);
                amount
            }
        }
    }
}

impl Input {
    /// Creates the input over `source`, with the body's framing.
    ///
    /// `length` is `Some(n)` when the request declared a Content-Length of
    /// `n` (the input reads exactly `n` bytes from `source`, never more), or
    /// `None` when `source` itself ends at the end of the body with EOF (a
    /// de-chunked upload).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// use rgi::Input;
    ///
    /// let mut input = Input::new(&b"hello, world"[..], Some(5));
    /// let mut body = Vec::new();
    /// input.read_to_end(&mut body)?;
    /// assert_eq!(body, b"hello");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(source: impl Read + Send + 'static, length: Option<u64>) -> Self {
        let state = if length == Some(0) {
            SourceState::Ended
        } else {
            SourceState::Open
        };
        Self {
            source: Source {
                reader: Some(Reader::Blocking(Box::new(source))),
                declared: length,
                received: 0,
                state,
                trailers: None,
            },
            buffer: Buffer::Owned {
                storage: Vec::new(),
                start: 0,
                end: 0,
            },
            delivered: 0,
        }
    }

    /// Creates the input over a non-blocking `source`, with the body's
    /// framing as in [`Input::new`]. Both faces work: [`Input::poll_chunk`]
    /// without blocking, and [`Read`]/[`BufRead`] by parking the calling
    /// thread, which only code running off the event loop may do.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{self, Read};
    /// use std::pin::Pin;
    /// use std::task::{Context, Poll};
    ///
    /// use bytes::Bytes;
    /// use rgi::{AsyncSource, Input};
    ///
    /// /// Hands out its bytes two at a time, as if they arrived slowly.
    /// struct Trickle(Bytes);
    /// impl AsyncSource for Trickle {
    ///     fn poll_chunk(mut self: Pin<&mut Self>, _: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
    ///         let take = max.min(2).min(self.0.len());
    ///         Poll::Ready(Ok(self.0.split_to(take)))
    ///     }
    /// }
    ///
    /// let mut input = Input::from_async(Trickle(Bytes::from_static(b"hello, world")), Some(5));
    /// assert!(input.is_async());
    /// let mut body = String::new();
    /// input.read_to_string(&mut body)?;
    /// assert_eq!(body, "hello");
    /// # Ok::<(), io::Error>(())
    /// ```
    pub fn from_async(source: impl AsyncSource + 'static, length: Option<u64>) -> Self {
        let mut input = Self::new(io::empty(), length);
        input.source.reader = Some(Reader::Async {
            source: Box::pin(source),
            spill: Bytes::new(),
        });
        input
    }

    /// Whether [`Input::poll_chunk`] can serve this input without blocking
    /// the thread: true for asynchronous sources and for bodies already in
    /// memory, false for a blocking [`Read`] source.
    #[must_use]
    pub fn is_async(&self) -> bool {
        !matches!(self.source.reader, Some(Reader::Blocking(_)))
    }

    /// Bytes an asynchronous source delivered beyond the `max` it was
    /// polled with, held for the next read: 0 for a source that keeps the
    /// contract (spec/rgi-async.md RGIA-INPUT-2 bounds every chunk by
    /// `max`) and for every other kind of input. The input tolerates the
    /// excess so that no byte is lost; this accessor lets a validator name
    /// the server whose source overdelivered.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::pin::Pin;
    /// use std::task::{Context, Poll, Waker};
    /// use bytes::Bytes;
    ///
    /// struct Generous;
    /// impl rgi::AsyncSource for Generous {
    ///     fn poll_chunk(self: Pin<&mut Self>, _cx: &mut Context<'_>, _max: usize) -> Poll<std::io::Result<Bytes>> {
    ///         Poll::Ready(Ok(Bytes::from_static(b"abcdef")))
    ///     }
    /// }
    ///
    /// let mut input = rgi::Input::from_async(Generous, Some(6));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(matches!(input.poll_chunk(&mut cx, 4), Poll::Ready(Ok(chunk)) if chunk == "abcd"));
    /// assert_eq!(input.held_excess(), 2);
    /// ```
    #[must_use]
    pub fn held_excess(&self) -> usize {
        match &self.source.reader {
            Some(Reader::Async { spill, .. }) => spill.len(),
            _ => 0,
        }
    }

    /// The non-blocking face: polls for at most `max` bytes of the body.
    /// An empty chunk is the end of the body (and every poll after it).
    /// Bytes buffered by the blocking face come first, so the two faces
    /// never lose or repeat a byte.
    ///
    /// # Errors
    ///
    /// [`InputError::WouldBlockThread`] if the source is a blocking reader
    /// (switch to synchronous processing or offload instead); an error of
    /// kind [`io::ErrorKind::InvalidInput`] for a `max` of 0; otherwise as
    /// [`Input::read_chunk`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    ///
    /// let mut input = rgi::Input::from_bytes(&b"abc"[..]);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(matches!(input.poll_chunk(&mut cx, 2), Poll::Ready(Ok(chunk)) if chunk == "ab"));
    /// assert!(matches!(input.poll_chunk(&mut cx, 2), Poll::Ready(Ok(chunk)) if chunk == "c"));
    /// assert!(matches!(input.poll_chunk(&mut cx, 2), Poll::Ready(Ok(chunk)) if chunk.is_empty()));
    /// ```
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        if max == 0 {
            // An empty answer would be indistinguishable from the end.
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "poll_chunk called with max 0",
            )));
        }
        let chunk = match &mut self.buffer {
            // A pre-read body has no source left to poll.
            Buffer::Shared(bytes) => Some(bytes.split_to(min(max, bytes.len()))),
            Buffer::Owned {
                storage,
                start,
                end,
            } if *start < *end => {
                // `max` is the caller's and may be `usize::MAX` ("no limit"),
                // so it bounds the length taken, never an index sum (D10).
                let taken = min(max, *end - *start);
                let chunk = Bytes::copy_from_slice(&storage[*start..][..taken]);
                *start += taken;
                Some(chunk)
            }
            Buffer::Owned { .. } => None,
        };
        if let Some(chunk) = chunk {
            self.delivered += chunk.len() as u64;
            return Poll::Ready(Ok(chunk));
        }
        let polled = self.source.poll_read(cx, max);
        if let Poll::Ready(Ok(chunk)) = &polled {
            self.delivered += chunk.len() as u64;
        }
        polled
    }

    /// An input with an empty body (Content-Length 0).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let mut input = rgi::Input::empty();
    /// assert_eq!(input.content_length(), Some(0));
    /// assert_eq!(input.read(&mut [0; 16])?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn empty() -> Self {
        Self::from_bytes(Bytes::new())
    }

    /// An input serving a body the server has already read, without copying
    /// it. Its content length is the length of `body`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use rgi::Input;
    ///
    /// let mut input = Input::from_bytes(Bytes::from_static(b"pre-read body"));
    /// assert_eq!(input.content_length(), Some(13));
    /// assert_eq!(input.read_chunk(8)?, "pre-read");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn from_bytes(body: impl Into<Bytes>) -> Self {
        let body = body.into();
        let length = body.len() as u64;
        Self {
            source: Source {
                reader: None,
                declared: Some(length),
                received: length,
                state: SourceState::Ended,
                trailers: None,
            },
            buffer: Buffer::Shared(body),
            delivered: 0,
        }
    }

    /// The declared length of the whole body, or `None` when the body is
    /// delimited by the end of the source (chunked).
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::Input;
    ///
    /// assert_eq!(Input::new(&b"abc"[..], Some(3)).content_length(), Some(3));
    /// assert_eq!(Input::new(&b"abc"[..], None).content_length(), None);
    /// ```
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        self.source.declared
    }

    /// How many body bytes the application has read so far (bytes sitting in
    /// the internal buffer do not count).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let mut input = rgi::Input::new(&b"abcdef"[..], Some(6));
    /// input.read_exact(&mut [0; 4])?;
    /// assert_eq!(input.bytes_read(), 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn bytes_read(&self) -> u64 {
        self.delivered
    }

    /// Whether the whole body has been read: every further read returns 0.
    ///
    /// With a declared length this turns true as soon as the last byte has
    /// been read; without one, once a read has seen the source's EOF. A
    /// truncated body never finishes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let mut input = rgi::Input::new(&b"abc"[..], Some(3));
    /// assert!(!input.is_finished());
    /// input.read_exact(&mut [0; 3])?;
    /// assert!(input.is_finished());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.source.state == SourceState::Ended && self.buffer.available().is_empty()
    }

    /// The same input, with the slot its server fills with the body's
    /// trailer section (`[RGI-TRAILER-1]`, `[RGI-TRAILER-2]`).
    ///
    /// # Examples
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue};
    /// use rgi::{Input, TrailerSlot};
    ///
    /// // A pre-read input keeps the trailers of the body it replaces.
    /// let mut fields = HeaderMap::new();
    /// fields.insert("digest", HeaderValue::from_static("sha-256=:abc=:"));
    /// let mut input = Input::from_bytes("body").with_trailers(TrailerSlot::filled(fields));
    /// assert_eq!(input.read_to_bytes(16)?, "body");
    /// assert_eq!(input.trailers()?.map(|t| t.len()), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_trailers(mut self, slot: TrailerSlot) -> Self {
        self.source.trailers = Some(slot);
        self
    }

    /// The request's trailer fields, once the body has been read to its
    /// end: `None` when the request had none, or its server does not carry
    /// them ([`Features::request_trailers`](crate::Features::request_trailers)).
    ///
    /// # Errors
    ///
    /// [`TrailersError::BodyNotFinished`] before the body's end
    /// (`[RGI-TRAILER-3]`): trailers follow the body on the wire.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use rgi::{Input, TrailerSlot, TrailersError};
    ///
    /// let mut input = Input::new(&b"abc"[..], None).with_trailers(TrailerSlot::new());
    /// assert!(matches!(input.trailers(), Err(TrailersError::BodyNotFinished { read: 0 })));
    /// input.read_to_end(&mut Vec::new())?;
    /// assert!(input.trailers()?.is_none()); // the client sent no trailer section
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trailers(&self) -> Result<Option<HeaderMap>, TrailersError> {
        self.check_trailers_due()?;
        Ok(self.source.trailers.as_ref().and_then(TrailerSlot::get))
    }

    /// Like [`trailers`](Self::trailers), but moves the fields out (a
    /// middleware that replaces the input hands them on with
    /// [`TrailerSlot::filled`]); a second call returns `None`.
    ///
    /// # Errors
    ///
    /// [`TrailersError::BodyNotFinished`] before the body's end.
    pub fn take_trailers(&mut self) -> Result<Option<HeaderMap>, TrailersError> {
        self.check_trailers_due()?;
        Ok(self.source.trailers.as_ref().and_then(TrailerSlot::take))
    }

    fn check_trailers_due(&self) -> Result<(), TrailersError> {
        if self.is_finished() {
            Ok(())
        } else {
            Err(TrailersError::BodyNotFinished {
                read: self.delivered,
            })
        }
    }

    /// Reads the next piece of the body, at most `max` bytes; an empty
    /// `Bytes` means the end of the body (unless `max` is 0).
    ///
    /// A pre-read body ([`Input::from_bytes`]) is served without copying.
    ///
    /// # Errors
    ///
    /// The source's I/O errors, and [`InputError::Truncated`] (as an
    /// [`io::Error`] of kind [`UnexpectedEof`](io::ErrorKind::UnexpectedEof))
    /// if the source ends before the declared length.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut input = rgi::Input::new(&b"0123456789"[..], None);
    /// let mut chunks = Vec::new();
    /// loop {
    ///     let chunk = input.read_chunk(4)?;
    ///     if chunk.is_empty() {
    ///         break;
    ///     }
    ///     chunks.push(chunk);
    /// }
    /// assert_eq!(chunks, ["0123", "4567", "89"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_chunk(&mut self, max: usize) -> io::Result<Bytes> {
        if max == 0 {
            return Ok(Bytes::new());
        }
        if let Buffer::Shared(bytes) = &mut self.buffer {
            let chunk = bytes.split_to(min(max, bytes.len()));
            self.delivered += chunk.len() as u64;
            return Ok(chunk);
        }
        if self.buffer.available().is_empty() && max >= BUFFER_CAPACITY {
            let mut chunk = Vec::new();
            self.read_direct(&mut chunk, min(max, MAX_DIRECT_READ))?;
            // The allocation was sized for `max`; a short read should not pin
            // the rest of it for as long as the chunk lives.
            chunk.shrink_to_fit();
            return Ok(Bytes::from(chunk));
        }
        let available = self.fill_buf()?;
        let chunk = Bytes::copy_from_slice(&available[..min(max, available.len())]);
        self.consume(chunk.len());
        Ok(chunk)
    }

    /// Reads one line into `buf`, like [`BufRead::read_until`] with `b'\n'`,
    /// but appends at most `limit` bytes (PEP 3333's `readline(size)`).
    ///
    /// Reading stops after a `\n` (which is appended), after `limit` bytes,
    /// or at the end of the body. Returns the number of bytes appended; 0
    /// means the end of the body (or a `limit` of 0).
    ///
    /// # Errors
    ///
    /// As [`Input::read_chunk`]. Bytes read before the error stay appended
    /// to `buf`. [`io::ErrorKind::Interrupted`] is retried, not returned.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut input = rgi::Input::new(&b"a long line\nshort\n"[..], None);
    /// let mut line = Vec::new();
    /// assert_eq!(input.read_line_limited(&mut line, 6)?, 6);
    /// assert_eq!(line, b"a long");
    /// line.clear();
    /// assert_eq!(input.read_line_limited(&mut line, 100)?, 6);
    /// assert_eq!(line, b" line\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_line_limited(&mut self, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
        let mut appended = 0;
        while appended < limit {
            let available = match self.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                break;
            }
            let window = &available[..min(available.len(), limit - appended)];
            let (taken, line_complete) = match window.iter().position(|&byte| byte == b'\n') {
                Some(newline) => (newline + 1, true),
                None => (window.len(), false),
            };
            buf.extend_from_slice(&window[..taken]);
            self.consume(taken);
            appended += taken;
            if line_complete {
                break;
            }
        }
        Ok(appended)
    }

    /// Reads the rest of the body into memory, refusing bodies larger than
    /// `limit` bytes.
    ///
    /// With a declared length the check happens before anything is read.
    /// Without one the body is read up to `limit` bytes and the input checks
    /// whether more follow; in that case the input has been partially
    /// consumed when the error is returned. A pre-read body is returned
    /// without copying.
    ///
    /// # Errors
    ///
    /// [`InputError::TooLarge`] if the rest of the body exceeds `limit`;
    /// [`InputError::Truncated`] if the source ends before the declared
    /// length; the client errors a server's source reports
    /// ([`InputError::MalformedBody`], [`InputError::BodyLimitExceeded`],
    /// [`InputError::BodyTimedOut`]); [`InputError::Io`] for the source's
    /// other I/O errors ([`io::ErrorKind::Interrupted`] is retried). Bytes
    /// read before an error are consumed and counted by
    /// [`bytes_read`](Input::bytes_read), not returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::{Input, InputError};
    ///
    /// let mut input = Input::new(&b"{\"id\": 1}"[..], Some(9));
    /// assert_eq!(input.read_to_bytes(1024)?, "{\"id\": 1}");
    ///
    /// let mut input = Input::new(&b"far too long"[..], None);
    /// assert!(matches!(input.read_to_bytes(4), Err(InputError::TooLarge { limit: 4 })));
    /// # Ok::<(), InputError>(())
    /// ```
    pub fn read_to_bytes(&mut self, limit: usize) -> Result<Bytes, InputError> {
        let missing = self
            .source
            .missing()
            .map(|missing| missing.saturating_add(self.buffer.available().len() as u64));
        if missing.is_some_and(|missing| missing > limit as u64) {
            return Err(InputError::TooLarge { limit });
        }
        if let Buffer::Shared(bytes) = &mut self.buffer {
            let body = std::mem::take(bytes);
            self.delivered += body.len() as u64;
            return Ok(body);
        }
        let reservation = missing.map_or(0, |missing| {
            min(
                usize::try_from(missing).unwrap_or(usize::MAX),
                MAX_INITIAL_RESERVATION,
            )
        });
        let mut body = Vec::with_capacity(reservation);
        loop {
            let room = limit - body.len();
            if room > 0 && self.buffer.available().is_empty() {
                match self.read_direct(&mut body, min(room, MAX_DIRECT_READ)) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => return Err(error.into()),
                }
            }
            let available = match self.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            };
            if available.is_empty() {
                break;
            }
            if room == 0 {
                return Err(InputError::TooLarge { limit });
            }
            let taken = min(room, available.len());
            body.extend_from_slice(&available[..taken]);
            self.consume(taken);
        }
        Ok(Bytes::from(body))
    }

    /// Reads up to `max` bytes from the source straight onto the end of
    /// `out`, bypassing the internal buffer (which must be empty).
    fn read_direct(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let wanted = self.source.missing().map_or(max, |missing| {
            min(max, usize::try_from(missing).unwrap_or(usize::MAX))
        });
        let start = out.len();
        out.resize(start + wanted, 0);
        let result = self.source.read(&mut out[start..]);
        let count = *result.as_ref().unwrap_or(&0);
        out.truncate(start + count);
        self.delivered += count as u64;
        result
    }
}

impl Read for Input {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.buffer.available().is_empty() && out.len() >= BUFFER_CAPACITY {
            let count = self.source.read(out)?;
            self.delivered += count as u64;
            return Ok(count);
        }
        let available = self.fill_buf()?;
        let count = min(available.len(), out.len());
        out[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl BufRead for Input {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Buffer::Owned {
            storage,
            start,
            end,
        } = &mut self.buffer
        {
            if start == end {
                if storage.is_empty() && self.source.state == SourceState::Open {
                    let capacity = self.source.missing().map_or(BUFFER_CAPACITY, |missing| {
                        min(
                            BUFFER_CAPACITY,
                            usize::try_from(missing).unwrap_or(usize::MAX),
                        )
                    });
                    *storage = vec![0; capacity];
                }
                *start = 0;
                *end = 0;
                *end = self.source.read(storage)?;
            }
        }
        Ok(self.buffer.available())
    }

    fn consume(&mut self, amount: usize) {
        self.delivered += self.buffer.consume(amount) as u64;
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Input")
            .field("content_length", &self.source.declared)
            .field("bytes_read", &self.delivered)
            .field("buffered", &self.buffer.available().len())
            .field("state", &self.source.state)
            .finish_non_exhaustive()
    }
}

/// Why the request body could not be read.
///
/// Reads through [`Read`]/[`BufRead`] report these as [`io::Error`]s carrying
/// the typed error; [`InputError::from_io`] (or `InputError::from`) recovers
/// it.
///
/// # Examples
///
/// ```
/// use std::io::{ErrorKind, Read};
///
/// use rgi::{Input, InputError};
///
/// // The client promised 10 bytes and hung up after 3.
/// let mut input = Input::new(&b"abc"[..], Some(10));
/// let error = input.read_to_end(&mut Vec::new()).unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::UnexpectedEof);
/// assert!(matches!(
///     InputError::from_io(&error),
///     Some(InputError::Truncated { declared: 10, received: 3 })
/// ));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The source ended before the declared Content-Length.
    #[error("request body truncated: {declared} bytes declared, the source ended after {received}")]
    Truncated {
        /// The declared Content-Length.
        declared: u64,
        /// Bytes received before the source ended.
        received: u64,
    },
    /// The body is larger than the caller's limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The response has finished and the connection moved on; what a server's
    /// source returns when the body is read too late.
    #[error("the response has finished; the request body can no longer be read")]
    ResponseFinished,
    /// The non-blocking face was used on a blocking source; reading it would
    /// block the event loop. Switch to synchronous processing or offload.
    #[error(
        "the request body has a blocking source and cannot be read without blocking the thread"
    )]
    WouldBlockThread,
    /// The body's framing is malformed: a bad chunk size or chunk framing,
    /// or a body that ends otherwise than its framing says. The server's
    /// source reports it; the client's fault, answered with 400 Bad Request
    /// if no head was sent (`[RGI-INPUT-17]`, `[RGI-FAIL-10]`).
    #[error("malformed request body: {reason}")]
    MalformedBody {
        /// What was wrong, with the offending bytes where there are any.
        reason: String,
    },
    /// The body is larger than the server's body limit, counted while it
    /// streamed in (a declared Content-Length over the limit is refused
    /// before the application runs). Answered with 413 Content Too Large
    /// if no head was sent (`[RGI-INPUT-18]`, `[RGI-FAIL-10]`).
    #[error("request body exceeds the server's limit of {limit} bytes")]
    BodyLimitExceeded {
        /// The server's body limit, in bytes.
        limit: u64,
    },
    /// The client sent no body byte within the server's timeout while the
    /// application waited for one. Answered with 408 Request Timeout if no
    /// head was sent (`[RGI-INPUT-19]`, `[RGI-FAIL-10]`).
    #[error("the client sent no request body bytes for {timeout:?}")]
    BodyTimedOut {
        /// The server's timeout for a stalled body.
        timeout: Duration,
    },
    /// Another I/O error from the source.
    #[error("reading the request body failed: {0}")]
    Io(#[source] io::Error),
}

impl InputError {
    /// The typed error an [`io::Error`] from an [`Input`] carries, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    ///
    /// use rgi::InputError;
    ///
    /// let error = io::Error::from(InputError::ResponseFinished);
    /// assert!(matches!(InputError::from_io(&error), Some(InputError::ResponseFinished)));
    /// assert!(InputError::from_io(&io::Error::other("reset")).is_none());
    /// ```
    #[must_use]
    pub fn from_io(error: &io::Error) -> Option<&InputError> {
        error.get_ref()?.downcast_ref::<InputError>()
    }

    /// The status a server answers with when an application gives up with
    /// this error before the head was sent (`[RGI-FAIL-10]`): 400 for a
    /// malformed or truncated body, 413 for a body over a limit, 408 for a
    /// stalled client; `None` for errors that are not the client's fault.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use http::StatusCode;
    /// use rgi::InputError;
    ///
    /// let stalled = InputError::BodyTimedOut { timeout: Duration::from_secs(30) };
    /// assert_eq!(stalled.status(), Some(StatusCode::REQUEST_TIMEOUT));
    /// assert_eq!(InputError::ResponseFinished.status(), None);
    /// ```
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::MalformedBody { .. } | Self::Truncated { .. } => Some(StatusCode::BAD_REQUEST),
            Self::BodyLimitExceeded { .. } | Self::TooLarge { .. } => {
                Some(StatusCode::PAYLOAD_TOO_LARGE)
            }
            Self::BodyTimedOut { .. } => Some(StatusCode::REQUEST_TIMEOUT),
            Self::ResponseFinished | Self::WouldBlockThread | Self::Io(_) => None,
        }
    }

    fn io_kind(&self) -> io::ErrorKind {
        match self {
            Self::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            Self::TooLarge { .. } | Self::MalformedBody { .. } | Self::BodyLimitExceeded { .. } => {
                io::ErrorKind::InvalidData
            }
            Self::BodyTimedOut { .. } => io::ErrorKind::TimedOut,
            Self::ResponseFinished => io::ErrorKind::BrokenPipe,
            Self::WouldBlockThread => io::ErrorKind::Unsupported,
            Self::Io(error) => error.kind(),
        }
    }
}

impl From<io::Error> for InputError {
    /// Unwraps an [`InputError`] carried by `error` instead of nesting it in
    /// [`InputError::Io`].
    fn from(error: io::Error) -> Self {
        if InputError::from_io(&error).is_none() {
            return Self::Io(error);
        }
        let kind = error.kind();
        // The fallbacks are not reachable after the check above; rebuilding
        // keeps the kind and the message without a panic path.
        let Some(inner) = error.into_inner() else {
            return Self::Io(io::Error::from(kind));
        };
        match inner.downcast::<InputError>() {
            Ok(typed) => *typed,
            Err(other) => Self::Io(io::Error::new(kind, other)),
        }
    }
}

impl From<InputError> for io::Error {
    /// Wraps the typed error so [`InputError::from_io`] can recover it; an
    /// [`InputError::Io`] gives back its own error.
    fn from(error: InputError) -> Self {
        match error {
            InputError::Io(error) => error,
            typed => io::Error::new(typed.io_kind(), typed),
        }
    }
}

/// How many links of a source chain [`client_body_error`] follows: far more
/// than any real wrapping, and a bound on a chain that loops.
const MAX_CHAIN: usize = 64;

/// The client's fault behind an application's failure, if any: the first
/// [`InputError`] with a [`status`](InputError::status) found in `error`,
/// its [`source`](Error::source) chain, or the payload of an
/// [`io::Error`] anywhere in that chain (whose own `source` skips it).
///
/// A server calls it on every error out of `call` or `next_chunk`; before
/// the head was sent it answers the status found instead of 500 and closes
/// the connection (`[RGI-FAIL-10]`), after it aborts (`[RGI-FAIL-11]`).
///
/// # Examples
///
/// ```
/// use std::io;
///
/// use http::StatusCode;
/// use rgi::{BoxError, InputError};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("could not parse the upload")]
/// struct UploadError(#[source] io::Error);
///
/// // What a de-chunking source returned, wrapped by the application's `?`.
/// let read: io::Error = InputError::MalformedBody { reason: "chunk size \"zz\"".into() }.into();
/// let failure: BoxError = Box::new(UploadError(read));
/// let found = rgi::client_body_error(&*failure).map(InputError::status);
/// assert_eq!(found, Some(Some(StatusCode::BAD_REQUEST)));
///
/// let unrelated: BoxError = "database down".into();
/// assert!(rgi::client_body_error(&*unrelated).is_none());
/// ```
#[must_use]
pub fn client_body_error<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a InputError> {
    let mut current = Some(error);
    for _ in 0..MAX_CHAIN {
        let link = current?;
        if let Some(input) = link.downcast_ref::<InputError>() {
            if input.status().is_some() {
                return Some(input);
            }
        }
        current = match link.downcast_ref::<io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
            None => link.source(),
        };
    }
    None
}
