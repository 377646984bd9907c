//! Server-sent events for asynchronous applications (spec/rgi-async.md,
//! `[RGIA-SSE-1]`): a body that turns a stream of [`rgi::sse::Event`]s into
//! one chunk per event, with keep-alive comments driven by a ticker stream,
//! and no runtime of its own.
//!
//! The frames, the head and the synchronous variant are in [`rgi::sse`].

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use rgi::sse::{Event, KEEP_ALIVE};
use rgi::{BoxError, StartResponse};

use crate::body::AsyncBody;
use crate::switch::Step;

/// The ticker that paces keep-alive comments, boxed so that the body's
/// type does not depend on where the ticks come from.
type Ticker = Pin<Box<dyn Stream<Item = ()> + Send>>;

pin_project_lite::pin_project! {
    /// An event-stream body: each event of the stream is one
    /// [`Step::Chunk`], so the server sends it at once (`[RGI-SSE-3]`);
    /// each tick of the keep-alive ticker with no event ready is a
    /// keep-alive comment; the stream's end ends the response.
    ///
    /// At its first poll it starts the response with [`rgi::sse::head`]
    /// unless the application started it already.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::pin::Pin;
    /// use std::task::{Context, Poll};
    /// use futures_core::Stream;
    /// use rgi::sse::Event;
    /// use rgi_async::sse::EventStream;
    ///
    /// /// Three price updates, then the end.
    /// struct Prices(u32);
    /// impl Stream for Prices {
    ///     type Item = Event;
    ///     fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Event>> {
    ///         self.0 += 1;
    ///         Poll::Ready((self.0 <= 3).then(|| Event::from_data(format!("{}", 100 + self.0))))
    ///     }
    /// }
    ///
    /// let app = rgi_async::from_fn(|_environ, _start| Ok(EventStream::new(Prices(0))));
    /// # let _ = app;
    /// ```
    pub struct EventStream<S> {
        #[pin]
        events: S,
        ticks: Option<Ticker>,
    }
}

impl<S: Stream<Item = Event> + Send> EventStream<S> {
    /// A body sending each event of `events`, without keep-alives.
    #[must_use]
    pub fn new(events: S) -> Self {
        EventStream {
            events,
            ticks: None,
        }
    }

    /// The same body, sending a keep-alive comment at each item of `ticks`
    /// that finds no event ready (`[RGI-SSE-4]`). Any stream paces it: an
    /// interval timer of the runtime the server declares, a readiness wait
    /// on a timer descriptor, or a channel another thread ticks.
    #[must_use]
    pub fn keep_alive(mut self, ticks: impl Stream<Item = ()> + Send + 'static) -> Self {
        self.ticks = Some(Box::pin(ticks));
        self
    }
}

impl<S: Stream<Item = Event> + Send> AsyncBody for EventStream<S> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.project();
        if !start.is_started() {
            start.start(rgi::sse::head())?;
        }
        match this.events.poll_next(cx) {
            Poll::Ready(Some(event)) => {
                return Poll::Ready(Some(Ok(Step::Chunk(event.to_bytes()))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        let Some(ticks) = this.ticks.as_mut() else {
            return Poll::Pending;
        };
        match ticks.as_mut().poll_next(cx) {
            Poll::Ready(Some(())) => {
                Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(KEEP_ALIVE)))))
            }
            Poll::Ready(None) => {
                // The ticker ended: no more keep-alives, events still flow.
                *this.ticks = None;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S> fmt::Debug for EventStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("events", &std::any::type_name::<S>())
            .field("keep_alive", &self.ticks.is_some())
            .finish()
    }
}
