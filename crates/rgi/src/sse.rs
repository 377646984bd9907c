//! Server-sent events (spec/rgi.md, "Server-sent events"): well-formed
//! `text/event-stream` frames, the head that goes with them, and a
//! synchronous body that sends one frame per event with keep-alive
//! comments between them.
//!
//! The format is the event stream of the WHATWG HTML standard: lines of
//! `field: value` (`data`, `event`, `id`, `retry`) or `: comment`, each event
//! ended by a blank line.

use std::fmt::Write as _;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::body::Body;
use crate::box_error::BoxError;
use crate::head::ResponseHead;
use crate::response::StartResponse;

/// The comment a stream sends to keep idle connections open through
/// intermediaries (`[RGI-SSE-4]`); clients ignore it.
pub const KEEP_ALIVE: &[u8] = b":\n\n";

/// How often [`EventBody`] sends a keep-alive comment when no event came:
/// below the idle timeouts of common proxies and load balancers.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The head of an event stream (`[RGI-SSE-2]`): `200 OK`,
/// `Content-Type: text/event-stream`, `Cache-Control: no-cache`, and
/// `X-Accel-Buffering: no` so that nginx passes each event on at once. It
/// carries no Content-Length: the stream ends when the application says.
///
/// # Examples
///
/// ```
/// let head = rgi::sse::head();
/// assert_eq!(head.status(), http::StatusCode::OK);
/// assert_eq!(head.headers()["content-type"], "text/event-stream");
/// assert!(head.headers().get("content-length").is_none());
/// ```
#[must_use]
pub fn head() -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
        .with_header(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"))
        .with_header(CACHE_CONTROL, HeaderValue::from_static("no-cache"))
        .with_header(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        )
}

/// One event, or one comment, of an event stream (`[RGI-SSE-1]`).
///
/// The fields that name things (`id`, `event`) are checked when set, since
/// a line break in them would start another field; `data` may hold any
/// text, and each of its lines becomes a `data:` line.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rgi::sse::Event;
///
/// let event = Event::new()
///     .id("42")?
///     .event("price")?
///     .retry(Duration::from_secs(3))
///     .data("line one\nline two");
/// assert_eq!(
///     event.to_bytes(),
///     "id: 42\nevent: price\nretry: 3000\ndata: line one\ndata: line two\n\n",
/// );
/// assert_eq!(Event::comment("ping")?.to_bytes(), ": ping\n\n");
/// # Ok::<(), rgi::sse::EventError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    id: Option<String>,
    event: Option<String>,
    retry: Option<Duration>,
    data: Option<String>,
    comment: Option<String>,
}

impl Event {
    /// An empty event; give it data, an id or a name.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An event carrying `data` and nothing else.
    #[must_use]
    pub fn from_data(data: impl Into<String>) -> Self {
        Self::new().data(data)
    }

    /// A comment line, which clients ignore.
    ///
    /// # Errors
    ///
    /// [`EventError::LineBreak`] when `text` holds CR or LF.
    pub fn comment(text: impl Into<String>) -> Result<Self, EventError> {
        let text = text.into();
        check_line("comment", &text)?;
        Ok(Event {
            comment: Some(text),
            ..Self::default()
        })
    }

    /// Sets the event id, which the client sends back in `Last-Event-ID`
    /// when it reconnects.
    ///
    /// # Errors
    ///
    /// [`EventError::LineBreak`] for CR or LF, [`EventError::Nul`] for a
    /// NUL character (clients ignore such ids).
    pub fn id(mut self, id: impl Into<String>) -> Result<Self, EventError> {
        let id = id.into();
        check_line("id", &id)?;
        if id.contains('\0') {
            return Err(EventError::Nul);
        }
        self.id = Some(id);
        Ok(self)
    }

    /// Sets the event's type (`event:`), which selects the client's
    /// listener.
    ///
    /// # Errors
    ///
    /// [`EventError::LineBreak`] for CR or LF.
    pub fn event(mut self, name: impl Into<String>) -> Result<Self, EventError> {
        let name = name.into();
        check_line("event", &name)?;
        self.event = Some(name);
        Ok(self)
    }

    /// Sets the client's reconnection delay (sent in whole milliseconds).
    #[must_use]
    pub fn retry(mut self, delay: Duration) -> Self {
        self.retry = Some(delay);
        self
    }

    /// Sets the data; each of its lines (split at CRLF, CR or LF) becomes
    /// one `data:` line, and the client joins them back with LF.
    #[must_use]
    pub fn data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// The complete frame, ending with the blank line that dispatches it.
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        let mut frame = String::new();
        if let Some(comment) = &self.comment {
            push_field(&mut frame, "", comment);
        }
        if let Some(id) = &self.id {
            push_field(&mut frame, "id", id);
        }
        if let Some(event) = &self.event {
            push_field(&mut frame, "event", event);
        }
        if let Some(retry) = self.retry {
            // Writing to a String cannot fail.
            let _ = writeln!(frame, "retry: {}", retry.as_millis());
        }
        if let Some(data) = &self.data {
            for line in lines(data) {
                push_field(&mut frame, "data", line);
            }
        }
        frame.push('\n');
        Bytes::from(frame)
    }
}

/// `name: value\n`; a comment has no name.
fn push_field(frame: &mut String, name: &str, value: &str) {
    frame.push_str(name);
    frame.push(':');
    if !value.is_empty() {
        frame.push(' ');
        frame.push_str(value);
    }
    frame.push('\n');
}

/// The lines of `text` as the event-stream parser will see them: split at
/// CRLF, CR or LF; one empty line for empty data.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn check_line(field: &'static str, value: &str) -> Result<(), EventError> {
    if value.contains(['\r', '\n']) {
        return Err(EventError::LineBreak {
            field,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// An event field that cannot be written as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// A field that must stay on one line holds CR or LF.
    #[error("the {field} field {value:?} holds a line break")]
    LineBreak {
        /// `id`, `event` or `comment`.
        field: &'static str,
        /// The refused value.
        value: String,
    },
    /// An id holds a NUL character, which clients ignore.
    #[error("the id holds a NUL character")]
    Nul,
}

/// A synchronous event-stream body: one chunk per event received from a
/// channel, a keep-alive comment whenever none came for the keep-alive
/// interval, and the end when every sender is gone (`[RGI-SSE-3]`).
///
/// It blocks its thread while it waits, as a synchronous body may; its
/// application should say so in its hints (the default hints do).
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use rgi::sse::{Event, EventBody};
/// use rgi::{Body, ResponseSink, ResponseState};
///
/// # struct Sink;
/// # impl ResponseSink for Sink {
/// #     fn send_head(&mut self, _: rgi::ResponseHead) -> std::io::Result<()> { Ok(()) }
/// #     fn send_data(&mut self, _: bytes::Bytes) -> std::io::Result<()> { Ok(()) }
/// # }
/// let (events, receiver) = mpsc::channel();
/// let mut body = EventBody::new(receiver).keep_alive(Duration::from_millis(20));
/// let (mut state, mut sink) = (ResponseState::new(&http::Method::GET), Sink);
/// let mut pull = || body.next_chunk(&mut state.start_response(&mut sink)).transpose();
///
/// events.send(Event::from_data("hello"))?;
/// assert_eq!(pull()?.unwrap(), "data: hello\n\n");
/// assert_eq!(pull()?.unwrap(), ":\n\n"); // nothing for 20 ms: a keep-alive
/// drop(events);
/// assert!(pull()?.is_none()); // every sender gone: the stream ends
/// # Ok::<(), rgi::BoxError>(())
/// ```
#[derive(Debug)]
pub struct EventBody {
    events: Receiver<Event>,
    keep_alive: Duration,
}

impl EventBody {
    /// A body sending the events `events` receives, with a keep-alive
    /// comment every [`DEFAULT_KEEP_ALIVE`] of silence.
    #[must_use]
    pub fn new(events: Receiver<Event>) -> Self {
        EventBody {
            events,
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }

    /// The same body with another keep-alive interval.
    #[must_use]
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = interval;
        self
    }
}

impl Body for EventBody {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match self.events.recv_timeout(self.keep_alive) {
            Ok(event) => Some(Ok(event.to_bytes())),
            Err(RecvTimeoutError::Timeout) => Some(Ok(Bytes::from_static(KEEP_ALIVE))),
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }
}
