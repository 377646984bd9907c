//! [`InputBody`]: an RGI request body ([`rgi::Input`]) as the
//! `http_body::Body` a tower service reads.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use rgi::{Input, InputError};

/// The largest data frame an [`InputBody`] yields: what the input holds
/// beyond it stays there for the next frame.
const MAX_FRAME: usize = 64 * 1024;

/// The request body a mounted tower service reads: the environ's
/// [`Input`] through its non-blocking face ([`Input::poll_chunk`]), ending
/// with a trailers frame when the request carried trailer fields (RGI 1.2,
/// [`Input::take_trailers`]).
///
/// Data arrives as the service polls for it, so the service's reading is
/// what reads the connection (input backpressure reaches the socket). The
/// size hint is exact when the request declared its length; the body ends
/// ([`is_end_stream`](http_body::Body::is_end_stream)) only once the
/// trailers, if any, were handed over.
///
/// The input must have a non-blocking face: one an asynchronous server
/// built, or a body already in memory. A blocking input (a middleware's
/// `Input::new` over a reader) fails every poll with
/// [`InputError::WouldBlockThread`] rather than block the event loop.
///
/// # Errors
///
/// Frames fail with the typed [`InputError`] the input reports: the
/// client's faults ([`InputError::Truncated`],
/// [`InputError::MalformedBody`], [`InputError::BodyLimitExceeded`],
/// [`InputError::BodyTimedOut`]) keep their type, so a server that finds
/// one in a failure's source chain answers `400`, `413` or `408`
/// (`[RGI-FAIL-10]`).
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use http_body_util::BodyExt;
/// use rgi::{Input, TrailerSlot};
/// use rgi_tower::InputBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let mut fields = HeaderMap::new();
/// fields.insert("x-checksum", HeaderValue::from_static("c0ffee"));
/// let input = Input::from_bytes("payload").with_trailers(TrailerSlot::filled(fields));
///
/// let collected = InputBody::new(input).collect().await?;
/// assert_eq!(collected.trailers().map(|t| &t["x-checksum"]), Some(&HeaderValue::from_static("c0ffee")));
/// assert_eq!(collected.to_bytes(), "payload");
/// # Ok(())
/// # }
/// ```
pub struct InputBody {
    input: Input,
    /// The end was handed over (the last frame, or the end itself).
    done: bool,
}

impl InputBody {
    /// The body over `input`.
    #[must_use]
    pub fn new(input: Input) -> Self {
        InputBody { input, done: false }
    }

    /// The input this body reads.
    #[must_use]
    pub fn input(&self) -> &Input {
        &self.input
    }

    /// The input back, with what was not read yet still in it (and its
    /// trailers, unless the trailers frame was handed over).
    #[must_use]
    pub fn into_input(self) -> Input {
        self.input
    }

    /// The frame after the input's end: its trailers, if any.
    fn trailers_frame(&mut self) -> Option<Result<Frame<Bytes>, InputError>> {
        self.done = true;
        match self.input.take_trailers() {
            Ok(Some(fields)) => Some(Ok(Frame::trailers(fields))),
            Ok(None) => None,
            // The input reported its end, so its trailers are due; an
            // input that says otherwise is broken, and its reader is told.
            Err(err) => Some(Err(InputError::Io(io::Error::other(err)))),
        }
    }
}

impl From<Input> for InputBody {
    fn from(input: Input) -> Self {
        InputBody::new(input)
    }
}

impl Default for InputBody {
    /// An empty body.
    fn default() -> Self {
        InputBody::new(Input::empty())
    }
}

impl fmt::Debug for InputBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputBody")
            .field("input", &self.input)
            .field("done", &self.done)
            .finish()
    }
}

impl http_body::Body for InputBody {
    type Data = Bytes;
    type Error = InputError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, InputError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match std::task::ready!(this.input.poll_chunk(cx, MAX_FRAME)) {
            Ok(chunk) if chunk.is_empty() => Poll::Ready(this.trailers_frame()),
            Ok(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Err(err) => Poll::Ready(Some(Err(InputError::from(err)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        // Finished, and no trailers waiting for their frame (a `None`
        // costs no copy; fields still there are copied only to be looked
        // at, and only for a request that has them).
        self.done || (self.input.is_finished() && matches!(self.input.trailers(), Ok(None)))
    }

    fn size_hint(&self) -> SizeHint {
        match self.input.content_length() {
            Some(length) if !self.done => {
                SizeHint::with_exact(length.saturating_sub(self.input.bytes_read()))
            }
            Some(_) => SizeHint::with_exact(0),
            None => SizeHint::default(),
        }
    }
}
