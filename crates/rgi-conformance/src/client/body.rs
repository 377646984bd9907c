//! The request body as the client delivers it, and the captured error
//! stream.
//!
//! A body is a list of pieces. The synchronous client reads them through a
//! blocking [`Read`] source; the asynchronous client through an
//! [`AsyncSource`] whose pieces arrive one at a time from the client's
//! "network" thread, only when the application asks for them, so an
//! application sees `Pending` before every piece and the wake-up comes from
//! another thread, as from a real server's I/O machinery (RGIA-INPUT-2,
//! RGIA-INPUT-10). Once the response is over, a read that still needs the
//! source gets [`InputError::ResponseFinished`] (RGI-INPUT-15,
//! RGIA-INPUT-16).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;

use bytes::Bytes;
use rgi::{AsyncSource, InputError};

use super::ClientError;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pieces of one request body, shared by its source and the client.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    state: Mutex<FeedState>,
}

#[derive(Debug, Default)]
struct FeedState {
    /// Pieces not yet on their way.
    waiting: VecDeque<Bytes>,
    /// The piece that has arrived and is not yet fully read.
    arrived: Option<Bytes>,
    /// Whether the network thread was asked for the next piece.
    requested: bool,
    /// Whether the response is over.
    finished: bool,
    waker: Option<Waker>,
}

impl Feed {
    /// A feed of `pieces`; empty pieces are left out, as no transfer
    /// coding can carry one.
    pub(crate) fn new(pieces: impl IntoIterator<Item = Bytes>) -> Arc<Self> {
        let waiting = pieces
            .into_iter()
            .filter(|piece| !piece.is_empty())
            .collect();
        Arc::new(Feed {
            state: Mutex::new(FeedState {
                waiting,
                ..FeedState::default()
            }),
        })
    }

    /// Marks the response as over: the source answers every later read with
    /// [`InputError::ResponseFinished`], unless the body was read whole.
    pub(crate) fn finish(&self) {
        let waker = {
            let mut state = lock(&self.state);
            state.finished = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the body was read to its end.
    fn is_drained(state: &FeedState) -> bool {
        state.waiting.is_empty() && state.arrived.is_none()
    }

    /// The network thread's work: the next piece arrives.
    fn deliver(&self) {
        let waker = {
            let mut state = lock(&self.state);
            state.requested = false;
            if state.arrived.is_none() {
                state.arrived = state.waiting.pop_front();
            }
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn finished_error() -> io::Error {
        InputError::ResponseFinished.into()
    }
}

/// The blocking source of the synchronous client: at most one piece per
/// read.
#[derive(Debug)]
pub(crate) struct PieceReader {
    feed: Arc<Feed>,
}

impl PieceReader {
    pub(crate) fn new(feed: Arc<Feed>) -> Self {
        PieceReader { feed }
    }
}

impl Read for PieceReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut state = lock(&self.feed.state);
        if state.finished && !Feed::is_drained(&state) {
            return Err(Feed::finished_error());
        }
        if state.arrived.is_none() {
            state.arrived = state.waiting.pop_front();
        }
        let Some(piece) = state.arrived.as_mut() else {
            return Ok(0);
        };
        let count = piece.len().min(out.len());
        out[..count].copy_from_slice(&piece.split_to(count));
        if piece.is_empty() {
            state.arrived = None;
        }
        Ok(count)
    }
}

/// The asynchronous source of the asynchronous client.
pub(crate) struct PieceSource {
    feed: Arc<Feed>,
    network: Sender<Arc<Feed>>,
}

impl std::fmt::Debug for PieceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceSource")
            .field("feed", &self.feed)
            .finish_non_exhaustive()
    }
}

impl PieceSource {
    pub(crate) fn new(feed: Arc<Feed>, network: &Network) -> Self {
        PieceSource {
            feed,
            network: network.sender.clone(),
        }
    }
}

impl AsyncSource for PieceSource {
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let this = self.get_mut();
        let mut state = lock(&this.feed.state);
        if state.finished && !Feed::is_drained(&state) {
            return Poll::Ready(Err(Feed::finished_error()));
        }
        if let Some(piece) = state.arrived.as_mut() {
            let chunk = piece.split_to(piece.len().min(max));
            if piece.is_empty() {
                state.arrived = None;
            }
            return Poll::Ready(Ok(chunk));
        }
        if state.waiting.is_empty() {
            return Poll::Ready(Ok(Bytes::new()));
        }
        state.waker = Some(cx.waker().clone());
        if !state.requested {
            state.requested = true;
            drop(state);
            if this.network.send(Arc::clone(&this.feed)).is_err() {
                return Poll::Ready(Err(io::Error::other(
                    "the test client's network thread has stopped",
                )));
            }
        }
        Poll::Pending
    }
}

/// The asynchronous client's "network": one thread that makes requested
/// pieces arrive, so wake-ups never come from the polling thread. The
/// thread ends by itself once the client and every source it handed out
/// are gone.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    sender: Sender<Arc<Feed>>,
}

impl Network {
    pub(crate) fn start() -> Result<Self, ClientError> {
        let (sender, receiver): (Sender<Arc<Feed>>, Receiver<Arc<Feed>>) = mpsc::channel();
        thread::Builder::new()
            .name("rgi-test-network".into())
            .spawn(move || {
                for feed in receiver {
                    feed.deliver();
                }
            })
            .map_err(|source| ClientError::Thread {
                role: "network",
                source,
            })?;
        Ok(Network { sender })
    }
}

/// The error stream of one request, captured for the response.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorsLog(Arc<Mutex<Vec<u8>>>);

impl ErrorsLog {
    /// What the application wrote so far.
    pub(crate) fn contents(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

impl Write for ErrorsLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_reader_hands_out_one_piece_per_read_and_refuses_after_the_response() {
        let feed = Feed::new([
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
        ]);
        let mut reader = PieceReader::new(Arc::clone(&feed));
        let mut buf = [0; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 2);
        assert_eq!(reader.read(&mut buf[..1]).unwrap(), 1);
        assert_eq!(&buf[..1], b"c");
        feed.finish();
        let err = reader.read(&mut buf).unwrap_err();
        assert!(matches!(
            InputError::from_io(&err),
            Some(InputError::ResponseFinished)
        ));
    }

    #[test]
    fn a_drained_body_still_reads_as_its_end_after_the_response() {
        let feed = Feed::new([Bytes::from_static(b"x")]);
        let mut reader = PieceReader::new(Arc::clone(&feed));
        assert_eq!(reader.read(&mut [0; 4]).unwrap(), 1);
        feed.finish();
        assert_eq!(reader.read(&mut [0; 4]).unwrap(), 0);
    }
}
