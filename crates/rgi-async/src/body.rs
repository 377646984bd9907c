//! The asynchronous response body: polled step by step, closed by `Drop`
//! (spec/rgi-async.md, "The asynchronous application").

use std::fmt;
use std::ops::DerefMut;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use rgi::{BoxError, ResponseHead, StartResponse};

use crate::switch::Step;

/// The body of an asynchronous response, polled step by step by the server.
///
/// Each poll receives the request's [`StartResponse`], so the body may start
/// the response lazily. `Poll::Pending` means "wake me": the server polls
/// again only after the waker fires (spurious polls are allowed).
/// `Ready(None)` ends the body; an empty [`Step::Chunk`] is a yield point.
/// The server polls for the next step only once the earlier output went to
/// the transport (backpressure), and hands each non-empty chunk to the
/// transport before polling again (prompt streaming).
///
/// `StartResponse::write` must not block here: prefer yielding chunks.
///
/// **Cancellation and close are `Drop`.** The server drops the body exactly
/// once, on every path, including a client that went away.
///
/// # Examples
///
/// A body that starts the response lazily and yields three lines:
///
/// ```
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
///
/// use rgi::{BoxError, ResponseHead, StartResponse};
/// use rgi_async::{AsyncBody, Step};
/// use bytes::Bytes;
/// use http::StatusCode;
///
/// struct Countdown(u32);
///
/// impl AsyncBody for Countdown {
///     fn poll_step(
///         mut self: Pin<&mut Self>,
///         _cx: &mut Context<'_>,
///         start: &mut StartResponse<'_>,
///     ) -> Poll<Option<Result<Step, BoxError>>> {
///         if !start.is_started() {
///             if let Err(err) = start.start(ResponseHead::new(StatusCode::OK)) {
///                 return Poll::Ready(Some(Err(err.into())));
///             }
///         }
///         let Some(n) = self.0.checked_sub(1) else {
///             return Poll::Ready(None);
///         };
///         self.0 = n;
///         Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(format!("{n}\n"))))))
///     }
/// }
/// # let _ = Countdown(3);
/// ```
pub trait AsyncBody: Send {
    /// Polls for the next step.
    ///
    /// # Errors
    ///
    /// `Ready(Some(Err(_)))` ends the response: before the head is sent the
    /// server answers 500; after, it ends the response abnormally. The body
    /// is then dropped.
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>>;

    /// The exact number of body bytes still to come, if known. It must be
    /// accurate, as for [`rgi::Body::size_hint`].
    fn size_hint(&self) -> Option<u64> {
        None
    }
}

impl<B: AsyncBody + Unpin + ?Sized> AsyncBody for Box<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Pin::new(&mut **self.get_mut()).poll_step(cx, start)
    }

    fn size_hint(&self) -> Option<u64> {
        (**self).size_hint()
    }
}

impl<P> AsyncBody for Pin<P>
where
    P: DerefMut + Send,
    P::Target: AsyncBody,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        self.as_deref_mut().poll_step(cx, start)
    }

    fn size_hint(&self) -> Option<u64> {
        (**self).size_hint()
    }
}

/// Bodies already in memory never block, so the synchronous `rgi::Body`
/// implementation of each serves as its asynchronous one: one chunk (none for
/// `Empty`), then the end, always ready.
macro_rules! in_memory_async_body {
    ($($body:ty),* $(,)?) => {$(
        impl AsyncBody for $body {
            fn poll_step(
                self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
                start: &mut StartResponse<'_>,
            ) -> Poll<Option<Result<Step, BoxError>>> {
                let chunk = rgi::Body::next_chunk(self.get_mut(), start);
                Poll::Ready(chunk.map(|chunk| chunk.map(Step::Chunk)))
            }

            fn size_hint(&self) -> Option<u64> {
                rgi::Body::size_hint(self)
            }
        }
    )*};
}

in_memory_async_body!(Bytes, Vec<u8>, String, rgi::Empty);

pin_project_lite::pin_project! {
    /// A body whose chunks come from a [`Stream`]; see [`from_stream`].
    pub struct StreamBody<S> {
        #[pin]
        stream: S,
        head: Option<ResponseHead>,
    }
}

/// A body that yields each item of `stream` as one chunk; an error item
/// ends the response with that error.
///
/// The stream's own `Pending` and wake-ups pass through unchanged, so a
/// stream that produces events as they happen (server-sent events, long
/// polls) is delivered promptly.
///
/// # Examples
///
/// ```
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
///
/// use bytes::Bytes;
/// use futures_core::Stream;
///
/// /// Two events, then the end.
/// struct Events(u8);
///
/// impl Stream for Events {
///     type Item = Result<Bytes, std::io::Error>;
///
///     fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
///         self.0 += 1;
///         Poll::Ready((self.0 <= 2).then(|| Ok(Bytes::from(format!("data: {}\n\n", self.0)))))
///     }
/// }
///
/// let body = rgi_async::from_stream(Events(0));
/// # let _ = body;
/// ```
pub fn from_stream<S, T, E>(stream: S) -> StreamBody<S>
where
    S: Stream<Item = Result<T, E>> + Send,
    T: Into<Bytes>,
    E: Into<BoxError>,
{
    StreamBody { stream, head: None }
}

impl<S> StreamBody<S> {
    /// Starts the response with `head` (its status and header fields) at
    /// the first poll, before the stream's first item, so that even an
    /// empty stream answers with it; without it the status is whatever the
    /// application started, or `200 OK` by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::pin::Pin;
    /// use std::task::{Context, Poll};
    ///
    /// use bytes::Bytes;
    /// use http::{HeaderValue, StatusCode, header};
    /// use rgi::ResponseHead;
    ///
    /// struct Once(Option<Bytes>);
    /// impl futures_core::Stream for Once {
    ///     type Item = Result<Bytes, Infallible>;
    ///     fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
    ///         Poll::Ready(self.0.take().map(Ok))
    ///     }
    /// }
    ///
    /// let head = ResponseHead::new(StatusCode::ACCEPTED)
    ///     .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    /// let body = rgi_async::from_stream(Once(Some(Bytes::from_static(b"data: queued\n\n"))))
    ///     .with_head(head);
    /// # let _ = body;
    /// ```
    #[must_use]
    pub fn with_head(mut self, head: ResponseHead) -> Self {
        self.head = Some(head);
        self
    }
}

impl<S, T, E> AsyncBody for StreamBody<S>
where
    S: Stream<Item = Result<T, E>> + Send,
    T: Into<Bytes>,
    E: Into<BoxError>,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.project();
        if let Some(head) = this.head.take() {
            start.start(head)?;
        }
        this.stream.poll_next(cx).map(|item| {
            item.map(|result| {
                result
                    .map(|chunk| Step::Chunk(chunk.into()))
                    .map_err(Into::into)
            })
        })
    }
}

impl<S> fmt::Debug for StreamBody<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamBody")
            .field("stream", &std::any::type_name::<S>())
            .finish()
    }
}
