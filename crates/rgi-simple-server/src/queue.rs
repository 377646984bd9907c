//! A closable first-in, first-out queue that a set of threads waits on: the
//! async threads' run queue and the blocking pool's work queue.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Why [`WaitQueue::push_bounded`] gave an item back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushRefused {
    /// The queue holds its bound of items already.
    Full,
    /// The queue was closed.
    Closed,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// The queue; `next` waits for an item, and returns `None` once the queue is
/// closed and empty.
pub(crate) struct WaitQueue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

impl<T> WaitQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while the lock is held but queue operations.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `item`, closed or not: the waiting threads still take what
    /// is queued before they see the close.
    pub(crate) fn push(&self, item: T) {
        self.lock().items.push_back(item);
        self.ready.notify_one();
    }

    /// Appends `item` unless the queue is closed or holds `bound` items
    /// already; gives it back otherwise, saying why.
    pub(crate) fn push_bounded(&self, item: T, bound: usize) -> Result<(), (T, PushRefused)> {
        {
            let mut state = self.lock();
            if state.closed {
                return Err((item, PushRefused::Closed));
            }
            if state.items.len() >= bound {
                return Err((item, PushRefused::Full));
            }
            state.items.push_back(item);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The next item, waiting for one; `None` once the queue is closed and
    /// empty.
    pub(crate) fn next(&self) -> Option<T> {
        let mut state = self.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Some(item);
            }
            if state.closed {
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Closes the queue; the waiting threads drain what is queued, then
    /// return.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Closes the queue and takes what is still queued, so that the caller
    /// decides its fate.
    pub(crate) fn close_and_take(&self) -> VecDeque<T> {
        let taken = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.items)
        };
        self.ready.notify_all();
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn bounded_pushes_are_refused_when_full_or_closed_and_threads_drain_then_stop() {
        let queue = Arc::new(WaitQueue::new());
        assert!(queue.push_bounded(1, 2).is_ok());
        assert!(queue.push_bounded(2, 2).is_ok());
        assert_eq!(queue.push_bounded(3, 2), Err((3, PushRefused::Full)));
        let taker = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || std::iter::from_fn(|| queue.next()).collect::<Vec<_>>())
        };
        queue.push(4);
        queue.close();
        assert_eq!(queue.push_bounded(5, 10), Err((5, PushRefused::Closed)));
        let taken = taker.join().unwrap_or_default();
        assert_eq!(taken, [1, 2, 4]);
        assert!(queue.close_and_take().is_empty());
    }
}
