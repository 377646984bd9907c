//! The upgrade hand-over of the asynchronous client: the `Upgrade`
//! capability's service, an in-memory connection, and the test's end of it.
//!
//! The connection is two bounded one-way pipes. The application's end is a
//! [`ByteStream`] (non-blocking, woken by the other side); the test's end,
//! [`UpgradePeer`], is a blocking [`Read`] + [`Write`] with a timeout, run
//! by the test's script on a thread of its own. Each pipe keeps a log of
//! everything written, which becomes the [`UpgradeTranscript`].

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, StatusCode, Version};
use rgi::{BoxError, ResponseHead};
use rgi_async::{ByteStream, Step, Upgrade, UpgradeError, UpgradeFuture, UpgradeService};

/// An upgrade the request asks for (RGIA-UPGRADE-1: HTTP/1.1, an
/// `upgrade` field and `connection` listing `upgrade`).
pub(crate) struct UpgradeOffer {
    /// The protocols the request offered, in order.
    pub(crate) offered: Vec<String>,
    pub(crate) peer: PeerScript,
}

impl fmt::Debug for UpgradeOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeOffer")
            .field("offered", &self.offered)
            .finish_non_exhaustive()
    }
}

impl UpgradeOffer {
    pub(crate) fn of(
        version: Version,
        headers: &HeaderMap,
        peer: Option<PeerScript>,
    ) -> Option<Self> {
        let connection_upgrade = headers.get_all(CONNECTION).iter().any(|value| {
            value
                .as_bytes()
                .split(|&byte| byte == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        });
        if headers.get(UPGRADE).is_none() || version != Version::HTTP_11 || !connection_upgrade {
            return None;
        }
        let offered = crate::rt::offered_protocols(headers);
        Some(UpgradeOffer {
            offered,
            peer: peer.unwrap_or_else(|| Box::new(UpgradePeer::read_until_closed)),
        })
    }
}

/// How many bytes a direction of the connection holds before a writer
/// waits: bounded, as RGIA-UPGRADE-8 requires of a real connection.
const PIPE_CAPACITY: usize = 64 * 1024;

/// The test's script for its side of an upgraded connection.
pub(crate) type PeerScript = Box<dyn FnOnce(&mut UpgradePeer) -> io::Result<()> + Send>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// One direction of the connection.
#[derive(Debug, Default)]
struct Pipe {
    state: Mutex<PipeState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct PipeState {
    buffer: VecDeque<u8>,
    /// Everything ever written, for the transcript.
    log: Vec<u8>,
    /// The writer closed its side: the reader sees the end once the
    /// buffer is empty.
    write_closed: bool,
    /// The reader is gone: writes fail.
    read_closed: bool,
    /// The asynchronous reader or writer waiting on this pipe.
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl PipeState {
    fn take_into(&mut self, out: &mut [u8]) -> usize {
        let count = out.len().min(self.buffer.len());
        for (slot, byte) in out.iter_mut().zip(self.buffer.drain(..count)) {
            *slot = byte;
        }
        count
    }

    fn put(&mut self, data: &[u8]) -> usize {
        let count = data.len().min(PIPE_CAPACITY - self.buffer.len());
        self.buffer.extend(&data[..count]);
        self.log.extend_from_slice(&data[..count]);
        count
    }
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, what.to_owned())
}

impl Pipe {
    fn poll_read(&self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut state = lock(&self.state);
        if state.buffer.is_empty() {
            if state.write_closed {
                return Poll::Ready(Ok(0));
            }
            state.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let count = state.take_into(out);
        let writer = state.writer.take();
        drop(state);
        self.changed.notify_all();
        wake(writer);
        Poll::Ready(Ok(count))
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut state = lock(&self.state);
        if state.write_closed {
            return Poll::Ready(Err(broken("the stream's sending side was closed")));
        }
        if state.read_closed {
            return Poll::Ready(Err(broken("the test's peer closed the connection")));
        }
        if state.buffer.len() >= PIPE_CAPACITY {
            state.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let count = state.put(data);
        let reader = state.reader.take();
        drop(state);
        self.changed.notify_all();
        wake(reader);
        Poll::Ready(Ok(count))
    }

    fn read_blocking(&self, out: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let state = lock(&self.state);
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |state| {
                state.buffer.is_empty() && !state.write_closed
            })
            .unwrap_or_else(PoisonError::into_inner);
        if state.buffer.is_empty() {
            if state.write_closed {
                return Ok(0);
            }
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the application sent nothing for {timeout:?}"),
            ));
        }
        let count = state.take_into(out);
        let writer = state.writer.take();
        drop(state);
        self.changed.notify_all();
        wake(writer);
        Ok(count)
    }

    fn write_blocking(&self, data: &[u8], timeout: Duration) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let state = lock(&self.state);
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |state| {
                state.buffer.len() >= PIPE_CAPACITY && !state.read_closed && !state.write_closed
            })
            .unwrap_or_else(PoisonError::into_inner);
        if state.write_closed {
            return Err(broken("the peer's sending side was closed"));
        }
        if state.read_closed {
            return Err(broken("the application closed the connection"));
        }
        if state.buffer.len() >= PIPE_CAPACITY {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the application read nothing for {timeout:?}"),
            ));
        }
        let count = state.put(data);
        let reader = state.reader.take();
        drop(state);
        self.changed.notify_all();
        wake(reader);
        Ok(count)
    }

    fn close_write(&self) {
        let reader = {
            let mut state = lock(&self.state);
            state.write_closed = true;
            state.reader.take()
        };
        self.changed.notify_all();
        wake(reader);
    }

    fn close_read(&self) {
        let writer = {
            let mut state = lock(&self.state);
            state.read_closed = true;
            state.buffer.clear();
            state.writer.take()
        };
        self.changed.notify_all();
        wake(writer);
    }

    fn log(&self) -> Bytes {
        Bytes::copy_from_slice(&lock(&self.state).log)
    }
}

/// The application's end of the connection.
#[derive(Debug)]
struct AppEnd {
    incoming: Arc<Pipe>,
    outgoing: Arc<Pipe>,
}

impl ByteStream for AppEnd {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.incoming.poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.outgoing.poll_write(cx, buf)
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Accepted bytes are already readable by the peer.
        Poll::Ready(Ok(()))
    }

    fn poll_close(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outgoing.close_write();
        Poll::Ready(Ok(()))
    }
}

impl Drop for AppEnd {
    fn drop(&mut self) {
        self.outgoing.close_write();
        self.incoming.close_read();
    }
}

/// The test's end of an upgraded connection: blocking reads and writes
/// with a timeout, so a script that waits for an application that never
/// answers fails instead of hanging.
///
/// Reads return 0 once the application closed its sending side (or
/// dropped its stream); writes fail with
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe) once it is gone. Dropping the
/// peer (the script returning) closes both directions.
///
/// # Examples
///
/// See [`TestRequest::upgrade`](super::TestRequest::upgrade).
pub struct UpgradePeer {
    incoming: Arc<Pipe>,
    outgoing: Arc<Pipe>,
    timeout: Duration,
}

impl fmt::Debug for UpgradePeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradePeer")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl UpgradePeer {
    /// How long a read or write waits for the application by default.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// How long a read or write waits for the application before failing
    /// with [`TimedOut`](io::ErrorKind::TimedOut).
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the timeout of later reads and writes.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Closes the sending side: the application reads the end of stream
    /// once it has read what was sent. Reading stays possible.
    pub fn close_sending(&mut self) {
        self.outgoing.close_write();
    }

    /// The script used when a request asks for an upgrade without one:
    /// send nothing, then read until the application closes.
    pub(crate) fn read_until_closed(&mut self) -> io::Result<()> {
        self.close_sending();
        io::copy(self, &mut io::sink()).map(|_| ())
    }
}

impl Read for UpgradePeer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.incoming.read_blocking(buf, self.timeout)
    }
}

impl Write for UpgradePeer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.write_blocking(buf, self.timeout)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for UpgradePeer {
    fn drop(&mut self) {
        self.outgoing.close_write();
        self.incoming.close_read();
    }
}

/// What went over an upgraded connection, from the test's side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpgradeTranscript {
    /// The protocol switched to (the `upgrade` field of the `101`).
    pub protocol: HeaderValue,
    /// Every byte the test's peer sent, whether or not the application
    /// read it.
    pub to_app: Bytes,
    /// Every byte the application wrote.
    pub from_app: Bytes,
    /// The error the peer's script returned, if any (as text).
    pub peer_error: Option<String>,
}

/// Where one request's upgrade stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Offered,
    Accepted,
    HandedOver,
    /// The hand-over could not happen (the peer's thread did not start).
    Failed(String),
    /// The request ended without a hand-over.
    Closed,
}

/// The per-request state behind the `Upgrade` capability.
pub(crate) struct HandOver {
    offered: Vec<String>,
    state: Mutex<HandState>,
}

struct HandState {
    phase: Phase,
    /// Whether the head was sent before the current call or poll.
    head_sent: bool,
    /// Whether a head was stored when the connection was handed over (the
    /// `101` replaced it, RGIA-UPGRADE-2).
    started_at_hand_over: bool,
    /// The `101`, once accepted.
    head: Option<ResponseHead>,
    stream: Option<AppEnd>,
    waker: Option<Waker>,
    peer: Option<PeerScript>,
    peer_thread: Option<JoinHandle<io::Result<()>>>,
    /// (to the application, from the application)
    pipes: Option<(Arc<Pipe>, Arc<Pipe>)>,
    /// How the body ended after the hand-over: `Err` carries its error.
    body_end: Option<Result<(), String>>,
}

impl fmt::Debug for HandOver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandOver")
            .field("offered", &self.offered)
            .field("phase", &lock(&self.state).phase)
            .finish_non_exhaustive()
    }
}

/// What the client reports about an upgrade once the request is over.
pub(crate) struct Concluded {
    /// The `101` head as sent.
    pub(crate) head: ResponseHead,
    pub(crate) transcript: Option<UpgradeTranscript>,
    /// How the body ended after the hand-over.
    pub(crate) body_end: Option<Result<(), String>>,
    /// Why the hand-over failed, if it did.
    pub(crate) failed: Option<String>,
    /// A panic of the peer's script, to re-raise in the test.
    pub(crate) peer_panic: Option<Box<dyn Any + Send>>,
}

impl HandOver {
    pub(crate) fn new(offer: UpgradeOffer) -> Arc<Self> {
        Arc::new(HandOver {
            offered: offer.offered,
            state: Mutex::new(HandState {
                phase: Phase::Offered,
                head_sent: false,
                started_at_hand_over: false,
                head: None,
                stream: None,
                waker: None,
                peer: Some(offer.peer),
                peer_thread: None,
                pipes: None,
                body_end: None,
            }),
        })
    }

    /// The capability the application sees.
    pub(crate) fn capability(self: &Arc<Self>) -> Upgrade {
        Upgrade::new(Door(Arc::clone(self)))
    }

    /// Notes, before a call or poll, whether the head was sent.
    pub(crate) fn before(&self, head_sent: bool) {
        lock(&self.state).head_sent = head_sent;
    }

    /// Whether the connection no longer carries HTTP.
    pub(crate) fn is_gone(&self) -> bool {
        matches!(
            lock(&self.state).phase,
            Phase::HandedOver | Phase::Failed(_)
        )
    }

    /// After a call or poll: sends the `101` if the application accepted
    /// in it (RGIA-UPGRADE-4), then refuses any HTTP output after the
    /// hand-over (RGIA-UPGRADE-5, RGIA-UPGRADE-6).
    ///
    /// # Errors
    ///
    /// The application error that ends the request when it started a
    /// response, yielded data or switched after the hand-over. (A head
    /// stored before `accept` was replaced by the `101`; starting one in
    /// the same call or poll as `accept`, after it, is the validator's to
    /// see.)
    pub(crate) fn after(&self, started: bool, step: Option<&Step>) -> Result<(), BoxError> {
        self.hand_over_if_accepted(started);
        let started_after = {
            let state = lock(&self.state);
            if !matches!(state.phase, Phase::HandedOver | Phase::Failed(_)) {
                return Ok(());
            }
            started && !state.started_at_hand_over
        };
        let broken = if started_after {
            Some("started an HTTP response")
        } else {
            match step {
                Some(Step::Chunk(chunk)) if !chunk.is_empty() => Some("yielded HTTP body data"),
                Some(Step::Switch(_)) => Some("yielded a switch to synchronous processing"),
                _ => None,
            }
        };
        match broken {
            Some(what) => Err(BoxError::from(format!(
                "RGIA-UPGRADE-5: the application {what} after accepting the upgrade"
            ))),
            None => Ok(()),
        }
    }

    /// Records how the body ended, if the connection was handed over.
    pub(crate) fn record_end(&self, end: Result<(), String>) {
        let mut state = lock(&self.state);
        if state.phase == Phase::HandedOver && state.body_end.is_none() {
            state.body_end = Some(end);
        }
    }

    fn hand_over_if_accepted(&self, started: bool) {
        let mut state = lock(&self.state);
        if state.phase != Phase::Accepted {
            return;
        }
        state.started_at_hand_over = started;
        let to_app = Arc::new(Pipe::default());
        let from_app = Arc::new(Pipe::default());
        let mut peer = UpgradePeer {
            incoming: Arc::clone(&from_app),
            outgoing: Arc::clone(&to_app),
            timeout: UpgradePeer::DEFAULT_TIMEOUT,
        };
        let script: PeerScript = state
            .peer
            .take()
            .unwrap_or_else(|| Box::new(UpgradePeer::read_until_closed));
        let spawned = thread::Builder::new()
            .name("rgi-test-upgrade-peer".into())
            .spawn(move || script(&mut peer));
        match spawned {
            Ok(thread) => {
                state.peer_thread = Some(thread);
                state.stream = Some(AppEnd {
                    incoming: Arc::clone(&to_app),
                    outgoing: Arc::clone(&from_app),
                });
                state.pipes = Some((to_app, from_app));
                state.phase = Phase::HandedOver;
            }
            Err(err) => {
                state.phase = Phase::Failed(format!("the peer's thread did not start: {err}"));
            }
        }
        let waker = state.waker.take();
        drop(state);
        wake(waker);
    }

    /// Ends the upgrade when the request is over: a future still waiting
    /// resolves to `Closed`, the peer's script is waited for, and what
    /// happened is returned (`None` if the connection was not handed over).
    pub(crate) fn conclude(&self) -> Option<Concluded> {
        let mut state = lock(&self.state);
        if matches!(state.phase, Phase::Offered | Phase::Accepted) {
            state.phase = Phase::Closed;
        }
        let waker = state.waker.take();
        // An end the application never collected is closed now, so the
        // peer sees the end of the connection instead of waiting for it.
        let uncollected = state.stream.take();
        let thread = state.peer_thread.take();
        let pipes = state.pipes.take();
        let phase = state.phase.clone();
        let head = state.head.take();
        let body_end = state.body_end.take();
        drop(state);
        drop(uncollected);
        wake(waker);
        if !matches!(phase, Phase::HandedOver | Phase::Failed(_)) {
            return None;
        }
        let head = head?;
        let (peer_error, peer_panic) = match thread.map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => (None, None),
            Some(Ok(Err(err))) => (Some(err.to_string()), None),
            Some(Err(payload)) => (None, Some(payload)),
        };
        let transcript = pipes.map(|(to_app, from_app)| UpgradeTranscript {
            protocol: head
                .headers()
                .get(UPGRADE)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("")),
            to_app: to_app.log(),
            from_app: from_app.log(),
            peer_error,
        });
        Some(Concluded {
            head,
            transcript,
            body_end,
            failed: match phase {
                Phase::Failed(why) => Some(why),
                _ => None,
            },
            peer_panic,
        })
    }
}

/// The [`UpgradeService`] the capability wraps.
struct Door(Arc<HandOver>);

impl UpgradeService for Door {
    fn accept(&self, headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        let hand = &self.0;
        let mut state = lock(&hand.state);
        if state.head_sent {
            return Err(UpgradeError::ResponseStarted);
        }
        if state.phase != Phase::Offered {
            return Err(UpgradeError::AlreadyAccepted);
        }
        // RGIA-UPGRADE-3: the application's choice among the offers, or
        // the request's only offer.
        let mut headers = headers;
        let protocol = crate::rt::choose_protocol(&hand.offered, &mut headers)?;
        let protocol = HeaderValue::from_str(&protocol)
            .map_err(|err| UpgradeError::Io(io::Error::new(io::ErrorKind::InvalidInput, err)))?;
        // RGIA-UPGRADE-2: the fields follow the rules for response fields.
        let mut head = ResponseHead::from_parts(StatusCode::OK, headers);
        head.validate()
            .map_err(|err| UpgradeError::Io(io::Error::new(io::ErrorKind::InvalidInput, err)))?;
        head.set_status(StatusCode::SWITCHING_PROTOCOLS);
        head.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        head.headers_mut().insert(UPGRADE, protocol);
        state.head = Some(head);
        state.phase = Phase::Accepted;
        Ok(Box::pin(Waiting(Arc::clone(hand))))
    }
}

/// The future behind [`rgi_async::Upgraded`]: resolves once the `101` is
/// sent.
struct Waiting(Arc<HandOver>);

impl Future for Waiting {
    type Output = Result<Box<dyn ByteStream>, UpgradeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.0.state);
        match &state.phase {
            Phase::Offered | Phase::Accepted => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Phase::HandedOver => match state.stream.take() {
                Some(stream) => Poll::Ready(Ok(Box::new(stream))),
                None => Poll::Ready(Err(UpgradeError::Closed)),
            },
            Phase::Failed(why) => Poll::Ready(Err(UpgradeError::Io(io::Error::other(why.clone())))),
            Phase::Closed => Poll::Ready(Err(UpgradeError::Closed)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::task::Waker;

    use super::*;

    fn ready<T>(poll: Poll<T>) -> Option<T> {
        match poll {
            Poll::Ready(value) => Some(value),
            Poll::Pending => None,
        }
    }

    #[test]
    fn a_full_pipe_holds_the_writer_until_the_reader_takes_bytes() {
        let pipe = Pipe::default();
        let mut cx = Context::from_waker(Waker::noop());
        let big = vec![7; PIPE_CAPACITY + 10];
        let accepted = ready(pipe.poll_write(&mut cx, &big)).unwrap().unwrap();
        assert_eq!(accepted, PIPE_CAPACITY);
        assert!(pipe.poll_write(&mut cx, &big[accepted..]).is_pending());
        let mut out = [0; 16];
        assert_eq!(
            pipe.read_blocking(&mut out, Duration::from_secs(1))
                .unwrap(),
            16
        );
        let more = ready(pipe.poll_write(&mut cx, &big[accepted..]))
            .unwrap()
            .unwrap();
        assert_eq!(more, 10);
        assert_eq!(pipe.log().len(), PIPE_CAPACITY + 10);
    }

    #[test]
    fn closing_either_side_is_seen_by_the_other() {
        let pipe = Pipe::default();
        let mut cx = Context::from_waker(Waker::noop());
        pipe.write_blocking(b"last", Duration::from_secs(1))
            .unwrap();
        pipe.close_write();
        let mut out = [0; 8];
        assert_eq!(
            ready(pipe.poll_read(&mut cx, &mut out)).unwrap().unwrap(),
            4
        );
        assert_eq!(
            ready(pipe.poll_read(&mut cx, &mut out)).unwrap().unwrap(),
            0
        );

        let pipe = Pipe::default();
        pipe.close_read();
        let err = ready(pipe.poll_write(&mut cx, b"x")).unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_silent_application_times_the_peer_out() {
        let pipe = Pipe::default();
        let err = pipe
            .read_blocking(&mut [0; 4], Duration::from_millis(20))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
