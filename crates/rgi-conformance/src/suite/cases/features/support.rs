//! What the feature cases share: field maps, a latch an asynchronous body
//! can wait on, a stream a case feeds, and an asynchronous body written as
//! a closure.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use http::{HeaderMap, HeaderName, HeaderValue};
use rgi::{BoxError, StartResponse};
use rgi_async::{AsyncBody, Step};

/// The fields `pairs` name (constants of the cases, so always valid).
pub(super) fn fields(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect()
}

/// Field lines as `name: value` text, sorted, for comparing and showing.
pub(super) fn sorted(lines: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut shown: Vec<String> = lines
        .iter()
        .map(|(name, value)| {
            format!(
                "{}: {}",
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(value)
            )
        })
        .collect();
    shown.sort();
    shown
}

/// A field map as sorted `name: value` lines.
pub(super) fn sorted_map(map: &HeaderMap) -> Vec<String> {
    let lines: Vec<(String, Vec<u8>)> = map
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    sorted(&lines)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a [`Feed`] holds: items not yet taken, whether it ended, and the
/// waker of the body waiting for the next.
struct FeedState<T> {
    items: VecDeque<T>,
    ended: bool,
    waker: Option<Waker>,
}

/// A stream a case feeds item by item, waking the body that polls it; it
/// ends when the case says so.
pub(super) struct Feed<T>(Arc<Mutex<FeedState<T>>>);

impl<T> Clone for Feed<T> {
    fn clone(&self) -> Self {
        Feed(Arc::clone(&self.0))
    }
}

impl<T> Feed<T> {
    /// An empty feed.
    pub(super) fn new() -> Self {
        Feed(Arc::new(Mutex::new(FeedState {
            items: VecDeque::new(),
            ended: false,
            waker: None,
        })))
    }

    /// Adds `item` and wakes the body.
    pub(super) fn push(&self, item: T) {
        let waker = {
            let mut state = lock(&self.0);
            state.items.push_back(item);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ends the stream and wakes the body.
    pub(super) fn end(&self) {
        let waker = {
            let mut state = lock(&self.0);
            state.ended = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next item, `Ready(None)` at the end, or `Pending` with the
    /// waker kept.
    pub(super) fn poll_next_item(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = lock(&self.0);
        if let Some(item) = state.items.pop_front() {
            return Poll::Ready(Some(item));
        }
        if state.ended {
            return Poll::Ready(None);
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> Stream for Feed<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.poll_next_item(cx)
    }
}

/// The step an asynchronous probe body takes.
pub(super) type Stepped = Poll<Option<Result<Step, BoxError>>>;

/// An asynchronous body written as a closure over its context and handle.
pub(super) struct PollFn<F>(pub(super) F);

impl<F> AsyncBody for PollFn<F>
where
    F: FnMut(&mut Context<'_>, &mut StartResponse<'_>) -> Stepped + Send + Unpin,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Stepped {
        (self.get_mut().0)(cx, start)
    }
}
