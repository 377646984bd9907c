//! The request body as a [`Stream`] (spec/rgi-async.md, "Non-blocking
//! input", [RGIA-INPUT-15]).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use rgi::Input;

/// A [`Stream`] view of the non-blocking face of an [`Input`]: each item is
/// one chunk of at most [`max`](InputStream::max) bytes, as
/// [`Input::poll_chunk`] returns it, and the stream ends (`None`) at the end
/// of the body and on every later poll.
///
/// It is a view, not a copy: it borrows the input, shares its buffer and
/// boundary, and bytes it has not yielded stay in the input for either
/// face. An error item (for example [`rgi::InputError::WouldBlockThread`]
/// on a blocking source) does not end the stream; the next poll asks the
/// input again.
///
/// # Examples
///
/// ```
/// use std::pin::Pin;
/// use std::task::{Context, Poll, Waker};
///
/// use futures_core::Stream;
/// use rgi::Input;
/// use rgi_async::InputStream;
///
/// let mut input = Input::from_bytes(&b"hello, world"[..]);
/// let mut stream = InputStream::new(&mut input).with_max(5);
/// let mut cx = Context::from_waker(Waker::noop());
/// let mut chunks = Vec::new();
/// while let Poll::Ready(Some(chunk)) = Pin::new(&mut stream).poll_next(&mut cx) {
///     chunks.push(chunk?);
/// }
/// assert_eq!(chunks, ["hello", ", wor", "ld"]);
/// assert!(input.is_finished());
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct InputStream<'a> {
    input: &'a mut Input,
    max: usize,
}

impl<'a> InputStream<'a> {
    /// The default largest chunk: 16 KiB.
    pub const DEFAULT_MAX: usize = 16 * 1024;

    /// A stream over `input`, in chunks of at most
    /// [`InputStream::DEFAULT_MAX`] bytes.
    pub fn new(input: &'a mut Input) -> Self {
        InputStream {
            input,
            max: Self::DEFAULT_MAX,
        }
    }

    /// The same stream in chunks of at most `max` bytes; a `max` of 0 is
    /// taken as 1 (a zero-sized read could not be told from the end).
    pub fn with_max(mut self, max: usize) -> Self {
        self.max = max.max(1);
        self
    }

    /// The largest chunk this stream yields.
    #[must_use]
    pub fn max(&self) -> usize {
        self.max
    }

    /// The input this stream reads.
    #[must_use]
    pub fn input(&mut self) -> &mut Input {
        self.input
    }
}

impl Stream for InputStream<'_> {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.input
            .poll_chunk(cx, this.max)
            .map(|result| match result {
                Ok(chunk) if chunk.is_empty() => None,
                other => Some(other),
            })
    }
}

impl fmt::Debug for InputStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputStream")
            .field("input", &self.input)
            .field("max", &self.max)
            .finish()
    }
}
