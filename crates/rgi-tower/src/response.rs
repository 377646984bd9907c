//! The response side: the RGI state of one response and the chunks it
//! queues for hyper. The body hyper polls is in `body`, above this module
//! and the relay.

use std::any::Any;
use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::{Frame, SizeHint};
use rgi::{BoxError, InputError, ResponseHead, ResponseSink, ResponseState, SendError};

/// The status and fields hyper's `Response` is built from.
pub(crate) type SentHead = (StatusCode, HeaderMap);

/// One frame for hyper, or the failure that aborts the response.
pub(crate) type FrameResult = Result<Frame<Bytes>, BoxError>;

/// Why a response ended without the body the application meant to send:
/// the error hyper aborts the response with once the head went out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The application panicked after its head was sent.
    #[error("the application panicked after its response head was sent: {message}")]
    Panicked {
        /// The panic's message, when its payload is a string.
        message: String,
    },
    /// The application (or its body) failed after the head was sent.
    #[error("the application failed after its response head was sent: {0}")]
    Application(#[source] BoxError),
    /// A switch continuation could not be run after the head was sent:
    /// the pool was full or shut down.
    #[error("the switch to synchronous processing was refused: {0}")]
    SwitchRefused(#[source] crate::PoolError),
}

/// The text of a panic's payload, for the log line and the error.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        String::from("(a panic payload that is not a string)")
    }
}

/// The status an application's failure before its head is answered with:
/// the client's fault it carries (`[RGI-FAIL-10]`), else 500.
pub(crate) fn failure_status(error: &BoxError) -> StatusCode {
    rgi::client_body_error(&**error)
        .and_then(InputError::status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Drops an application's body, containing a panic in its `Drop`.
pub(crate) fn drop_contained<T>(body: T) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(body))) {
        tracing::error!(
            panic = %panic_message(payload.as_ref()),
            "an RGI application body panicked while being dropped"
        );
    }
}

/// The body chunks [`ResponseState`] hands over, queued until hyper polls
/// for them. Once hyper has the response the state has sent its head, so a
/// second head arriving here would break that promise and is refused.
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    /// The next chunk; nearly every pull yields at most one, so the queue
    /// behind it stays unallocated.
    next: Option<Bytes>,
    /// The chunks after `next`, taken from `taken` on. A `Vec` rather than a
    /// `VecDeque`: dropping an empty one is a capacity check, where the
    /// deque's drop cost about 35 instructions a request (callgrind).
    more: Vec<Bytes>,
    taken: usize,
    /// The trailer section `finish` handed over, sent after the last data
    /// as the body's trailers frame (`[RGI-TRAILER-7]`). Boxed: rare, and
    /// the queue moves with every response.
    trailers: Option<Box<HeaderMap>>,
}

impl Chunks {
    #[inline]
    pub(crate) fn take_data(&mut self) -> Option<Bytes> {
        let data = self.next.take()?;
        if !self.more.is_empty() {
            self.advance_queue();
        }
        Some(data)
    }

    /// Moves the first queued chunk to `next`: rare (a pull that yielded
    /// several chunks), so kept out of the inlined path.
    #[cold]
    fn advance_queue(&mut self) {
        if let Some(queued) = self.more.get_mut(self.taken) {
            self.next = Some(std::mem::take(queued));
            self.taken += 1;
            if self.taken == self.more.len() {
                self.more.clear();
                self.taken = 0;
            }
        }
    }

    #[inline]
    pub(crate) fn has_data(&self) -> bool {
        self.next.is_some()
    }

    /// The trailer section, once every chunk before it was taken.
    #[inline]
    pub(crate) fn take_trailers(&mut self) -> Option<HeaderMap> {
        if self.next.is_some() {
            return None;
        }
        self.trailers.take().map(|fields| *fields)
    }

    /// Whether a trailer section waits to be sent.
    #[inline]
    pub(crate) fn has_trailers(&self) -> bool {
        self.trailers.is_some()
    }

    /// Moves every queued chunk, in order, to `into`.
    pub(crate) fn drain_into(&mut self, into: &mut VecDeque<Bytes>) {
        while let Some(data) = self.take_data() {
            into.push_back(data);
        }
    }
}

impl ResponseSink for Chunks {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        Err(io::Error::other(format!(
            "a second head ({}) after hyper's response was built",
            head.status()
        )))
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        if self.next.is_none() {
            self.next = Some(data);
        } else {
            self.more.push(data);
        }
        Ok(())
    }

    /// Queued after the data; `finish` calls this only for a response the
    /// server enabled for trailers.
    fn send_trailers(&mut self, fields: HeaderMap) -> io::Result<()> {
        self.trailers = Some(Box::new(fields));
        Ok(())
    }
}

/// The transport up to the head: keeps the head for hyper's `Response`
/// and queues data in [`Chunks`]. The head slot lives outside [`Stream`],
/// which hyper moves with the body.
pub(crate) struct HeadSink<'a> {
    pub(crate) head: &'a mut Option<SentHead>,
    pub(crate) chunks: &'a mut Chunks,
}

impl ResponseSink for HeadSink<'_> {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        // The map moves on into hyper's response, uncopied.
        *self.head = Some(head.into_parts());
        Ok(())
    }

    /// The declared length stays out of the head: hyper writes
    /// `content-length` itself from the body's exact size hint, which
    /// [`Stream::exact_remaining`] takes from the length the state enforces,
    /// the same number (`[RGI-CL-11]`, `[RGI-CL-12]`). Encoding the field
    /// here would only have hyper parse it back. An empty body is the
    /// exception: it ends before hyper looks at its size, and HTTP/2 then
    /// writes no length, so a declared zero goes into the head.
    fn send_head_with_length(
        &mut self,
        mut head: ResponseHead,
        declared: Option<u64>,
    ) -> io::Result<()> {
        if declared == Some(0) {
            head.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        self.send_head(head)
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.chunks.send_data(data)
    }

    fn send_trailers(&mut self, fields: HeaderMap) -> io::Result<()> {
        self.chunks.send_trailers(fields)
    }
}

/// One response served on the runtime: its RGI state, the chunks queued
/// for hyper, and what went wrong after the head was sent.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) state: ResponseState,
    pub(crate) chunks: Chunks,
    /// Body bytes handed to hyper.
    pub(crate) delivered: u64,
    /// A failure after the head went out: hyper aborts the response with
    /// it once the data before it was delivered.
    pub(crate) error: Option<BoxError>,
    /// Whether hyper was given one chance to flush before the abort.
    pub(crate) abort_deferred: bool,
    /// Detaches the request body when the response goes (after the
    /// application's body, which the driver drops first).
    pub(crate) detach: Option<crate::request::DetachOnDrop>,
}

/// What one pull of the application's body gave.
pub(crate) enum Outcome {
    Chunk(Bytes),
    Failed(BoxError),
    End,
}

impl Stream {
    /// A stream over `state`, detaching the request body (`detach`) when
    /// it goes.
    #[inline]
    pub(crate) fn new(state: ResponseState, detach: Option<crate::request::DetachOnDrop>) -> Self {
        Stream {
            state,
            chunks: Chunks::default(),
            delivered: 0,
            error: None,
            abort_deferred: false,
            detach,
        }
    }

    /// The exact number of body bytes hyper has still to send, when the
    /// sent head fixed the length: the only size hyper may frame by
    /// (`[RGI-CL-11]`).
    #[inline]
    pub(crate) fn exact_remaining(&self) -> Option<u64> {
        let declared = self.state.content_length()?;
        Some(declared.saturating_sub(self.delivered))
    }

    /// Applies one outcome to the state; a head it sends goes to `head`
    /// (`None` once hyper has the response). Returns whether the
    /// application's body is done with (ended or failed).
    #[inline]
    pub(crate) fn deliver(
        &mut self,
        head: Option<&mut Option<SentHead>>,
        outcome: Outcome,
    ) -> bool {
        let Stream {
            state,
            chunks,
            error,
            ..
        } = self;
        let mut head_sink;
        let sink: &mut dyn ResponseSink = match head {
            Some(head) => {
                head_sink = HeadSink { head, chunks };
                &mut head_sink
            }
            None => chunks,
        };
        match outcome {
            Outcome::Chunk(chunk) if pulled_past_length(state) && !chunk.is_empty() => {
                // The sent head's length was met, and the body was pulled
                // again only for its trailers: the response on the wire is
                // complete, this is the application's excess (`[RGI-CL-2]`).
                excess_after_length(state, chunk.len());
                true
            }
            Outcome::Chunk(chunk) => match state.send_chunk(sink, chunk) {
                Ok(()) => false,
                Err(SendError::BodyNotAllowed { .. }) => {
                    // A 204 or 304 goes out without the data its body
                    // yielded, and the body is closed (`[RGI-BODY-18]`).
                    if let Err(err) = state.finish(sink) {
                        *error = Some(err.into());
                    }
                    true
                }
                Err(err) => {
                    *error = Some(err.into());
                    true
                }
            },
            Outcome::Failed(err) => {
                *error = Some(err);
                true
            }
            Outcome::End => {
                if let Err(err) = state.finish(sink) {
                    *error = Some(err.into());
                }
                true
            }
        }
    }

    /// Records a failure of the application: kept as the response's error
    /// (before the head it decides the status, after it aborts).
    #[inline]
    pub(crate) fn fail(&mut self, error: BoxError) {
        self.error = Some(error);
    }

    /// Whether pulling must go on before hyper can have the response.
    #[inline]
    pub(crate) fn before_head(&self) -> bool {
        !self.state.is_head_sent() && self.error.is_none()
    }
}

/// Whether a response still needs its body pulled although no more content
/// can reach the client: it met the Content-Length of its head and can
/// carry trailers, which the application gives at the latest in the pull
/// that ends its body (`[RGI-TRAILER-7]`; `[RGI-BODY-16]` allows the pull).
/// Never for HEAD, 204 or 304, which carry none.
#[inline]
pub(crate) fn awaits_trailers(state: &ResponseState) -> bool {
    // Only for a head that announced them, or trailers given already:
    // every other response with a met length ends with its last data, as
    // hyper ends it, without one more pull and an empty end-of-stream frame
    // (`[RGI-TRAILER-7]`).
    state.trailers_enabled()
        && (state.trailers_announced() || state.trailers().is_some())
        && !state.is_head_request()
        && state.status().is_some_and(|status| {
            status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED
        })
}

/// Whether the body must still be pulled: for content, or for the
/// trailers of a response whose content is complete.
#[inline]
pub(crate) fn wants_pull(state: &ResponseState) -> bool {
    state.wants_body() || awaits_trailers(state)
}

/// Whether a pull now is one past the sent head's Content-Length, made
/// only for the trailers.
#[inline]
fn pulled_past_length(state: &ResponseState) -> bool {
    state.remaining_length() == Some(0) && !state.is_head_request()
}

/// Logs an excess the application produced past a Content-Length already
/// met (`[RGI-CL-2]`): nothing of it is sent, the response is complete,
/// and it ends without the trailers the application may have meant.
pub(crate) fn excess_after_length(state: &ResponseState, excess: usize) {
    let declared = state.content_length().unwrap_or_default();
    let error = rgi::SendError::ContentLengthExceeded {
        declared,
        attempted: declared.saturating_add(excess as u64),
    };
    tracing::error!(error = %error, "the RGI application produced more than its Content-Length; the response is complete, its trailers are dropped");
}

/// A response body driven on the runtime: the application's body and its
/// [`Stream`], boxed together once per request.
pub(crate) trait Driver: Send {
    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>>;
    fn is_end_stream(&self) -> bool;
    fn size_hint(&self) -> SizeHint;
}

/// The next frame already produced by `stream` (data, then a failure), or
/// the end when the body is closed or can no longer reach the client.
/// `body_open` says whether the application's body is still there; `close`
/// drops it.
#[inline]
pub(crate) fn ready_frame(
    cx: &mut Context<'_>,
    stream: &mut Stream,
    body_open: bool,
    close: impl FnOnce(),
) -> Option<Poll<Option<FrameResult>>> {
    if let Some(data) = stream.chunks.take_data() {
        stream.delivered += data.len() as u64;
        return Some(Poll::Ready(Some(Ok(Frame::data(data)))));
    }
    if let Some(fields) = stream.chunks.take_trailers() {
        // Only `finish` gives them, after the body ended: the last frame.
        close();
        return Some(Poll::Ready(Some(Ok(Frame::trailers(fields)))));
    }
    if stream.error.is_some() {
        close();
        if defer_abort(cx, &mut stream.abort_deferred) {
            return Some(Poll::Pending);
        }
        return Some(Poll::Ready(stream.error.take().map(Err)));
    }
    if !body_open || !wants_pull(&stream.state) {
        // At the declared length the rest cannot reach the client: stop
        // pulling and close the body now (`[RGI-BODY-16]`), unless the
        // response can still carry trailers.
        close();
        return Some(Poll::Ready(None));
    }
    None
}

/// Whether to hold an abort back for one poll: hyper drops the connection
/// on a body error without flushing what it buffered, so the data sent
/// before the failure would be lost; a `Pending` (with an immediate wake)
/// lets it flush first.
#[inline]
pub(crate) fn defer_abort(cx: &mut Context<'_>, deferred: &mut bool) -> bool {
    if *deferred {
        return false;
    }
    *deferred = true;
    cx.waker().wake_by_ref();
    true
}

/// Whether hyper may stop polling a driven body. With a fixed length only
/// once all of it was delivered: hyper writes no Content-Length for a body
/// that is over before it starts, and a HEAD answer must still carry the
/// GET's length (nothing is delivered for HEAD; polling it ends it).
///
/// Never while a trailer section waits, nor while a body whose length is
/// met can still give one: hyper ends the message at once when told the
/// body is over after a data frame, and would never poll for the trailers.
#[inline]
pub(crate) fn end_of_stream(stream: &Stream, body_open: bool) -> bool {
    !stream.chunks.has_data()
        && !stream.chunks.has_trailers()
        && stream.error.is_none()
        && match stream.exact_remaining() {
            Some(remaining) => remaining == 0 && !(body_open && awaits_trailers(&stream.state)),
            None => !body_open || !wants_pull(&stream.state),
        }
}

#[inline]
pub(crate) fn stream_hint(stream: &Stream) -> SizeHint {
    stream
        .exact_remaining()
        .map_or_else(SizeHint::default, SizeHint::with_exact)
}
