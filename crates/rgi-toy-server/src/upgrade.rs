//! The upgrade capability (spec/rgi-async.md section 12): `accept` records
//! the 101, a later poll of the `Upgraded` future hands the connection
//! over, and the application talks over a [`ByteStream`].
//!
//! The toy's sockets are blocking, and a [`ByteStream`] is polled. The
//! stream therefore has two helper threads: a reader that reads the socket
//! only when the application asks (so input is not buffered without
//! bound) and a writer that writes out a bounded outbox. `poll_*` only
//! look at shared state and never block; the helpers wake the wakers.
//! A readiness poller would need the stream to borrow its own socket for
//! each wait, which safe Rust cannot store; two threads per upgraded
//! connection is a fair price for a toy.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Instant, SystemTime};

use http::{HeaderMap, StatusCode};
use rgi::ResponseHead;
use rgi_async::{ByteStream, UpgradeError, UpgradeFuture, UpgradeService};

use super::Fault;
use super::conn::{Conn, UpgradeStage};
use super::shared::DRAIN_LIMIT;
use super::shared::{Closable, lock};
use super::sink::http_date;

/// The most bytes the application may have written that the peer has not
/// taken yet (`RGIA-UPGRADE-8`: no unbounded buffering).
const MAX_OUTBOX: usize = 64 * 1024;

/// What a request's upgrade has got to.
#[derive(Default)]
struct SlotState {
    /// The protocol and fields of the accepted 101.
    accepted: Option<(String, HeaderMap)>,
    /// The future was polled once since `accept`.
    polled: bool,
    handover: Option<JoinHandle<()>>,
    result: Option<Result<Box<dyn ByteStream>, UpgradeError>>,
    waker: Option<Waker>,
    /// The stream of a finished hand-over, for the connection's end.
    stream: Option<Arc<StreamShared>>,
}

/// A request's upgrade, shared by the capability, the future and the
/// connection thread.
#[derive(Default)]
pub(crate) struct Slot(Mutex<SlotState>);

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The request's body has ended. Sends a 101 that was accepted but not
    /// handed over yet (the application never awaited `Upgraded`), waits
    /// for a hand-over in progress, and returns the stream, if one was
    /// made, so that the connection closes only once both the body and the
    /// stream are gone.
    pub(crate) fn finish(&self, conn: &Arc<Conn>) -> Option<Arc<StreamShared>> {
        let handover = self.state().handover.take();
        if let Some(handover) = handover {
            let _joined = handover.join();
        }
        let mut state = self.state();
        if state.stream.is_none() && state.result.is_none() {
            if let Some((protocol, headers)) = state.accepted.take() {
                drop(state);
                let made = hand_over(conn, &protocol, &headers);
                state = self.state();
                if let Ok(stream) = made {
                    state.stream = Some(Arc::clone(&stream.0));
                    // Nobody will use it: dropping it ends the connection.
                    drop(stream);
                }
            }
        }
        // An unclaimed stream is dropped here with the slot's result.
        state.result = None;
        state.stream.clone()
    }
}

/// The server's side of `Upgrade` for one request.
pub(crate) struct ToyUpgrade {
    conn: Arc<Conn>,
    offered: Vec<String>,
    slot: Arc<Slot>,
}

impl ToyUpgrade {
    pub(crate) fn new(conn: Arc<Conn>, offered: Vec<String>, slot: Arc<Slot>) -> Self {
        ToyUpgrade {
            conn,
            offered,
            slot,
        }
    }
}

fn invalid(message: impl Into<String>) -> UpgradeError {
    UpgradeError::Io(io::Error::new(io::ErrorKind::InvalidInput, message.into()))
}

impl UpgradeService for ToyUpgrade {
    fn accept(&self, headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        let fault = self.conn.server.fault;
        let mut write = lock(&self.conn.write);
        if write.head_sent && fault != Some(Fault::UpgradeAfterHead) {
            return Err(UpgradeError::ResponseStarted);
        }
        if write.upgrade != UpgradeStage::None {
            return Err(UpgradeError::AlreadyAccepted);
        }
        // RGIA-UPGRADE-3: the application's choice among the offers, or
        // the request's only offer.
        let mut headers = headers;
        let protocol = match (
            self.offered.as_slice(),
            headers.contains_key(http::header::UPGRADE),
        ) {
            ([first, _, ..], false) if fault == Some(Fault::UpgradePicksFirstOffer) => {
                first.clone()
            }
            _ => rgi_conformance::rt::choose_protocol(&self.offered, &mut headers)?,
        };
        // RGIA-UPGRADE-2: the rules for response fields.
        ResponseHead::from_parts(StatusCode::OK, headers.clone())
            .validate()
            .map_err(|err| invalid(format!("invalid field in the 101: {err}")))?;
        write.upgrade = UpgradeStage::Accepted;
        drop(write);
        self.slot.state().accepted = Some((protocol, headers));
        Ok(Box::pin(Upgrading {
            conn: Arc::clone(&self.conn),
            slot: Arc::clone(&self.slot),
        }))
    }
}

/// The `Upgraded` future: the hand-over starts at its second poll, which
/// is never inside the call or poll in which `accept` succeeded
/// (`RGIA-UPGRADE-4`), and runs on a helper thread, so that draining the
/// request body and writing the 101 never block a poll.
struct Upgrading {
    conn: Arc<Conn>,
    slot: Arc<Slot>,
}

impl Future for Upgrading {
    type Output = Result<Box<dyn ByteStream>, UpgradeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.state();
        if let Some(result) = state.result.take() {
            return Poll::Ready(result);
        }
        state.waker = Some(cx.waker().clone());
        if !state.polled {
            // The poll that accepted may still be running: come back.
            state.polled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if state.handover.is_some() || state.stream.is_some() {
            return Poll::Pending;
        }
        let Some((protocol, headers)) = state.accepted.take() else {
            return Poll::Ready(Err(UpgradeError::Closed));
        };
        let conn = Arc::clone(&self.conn);
        let slot = Arc::clone(&self.slot);
        let spawned = thread::Builder::new()
            .name("toy-upgrade".into())
            .spawn(move || {
                let made = hand_over(&conn, &protocol, &headers);
                let mut state = slot.state();
                let result = made.map(|stream| {
                    state.stream = Some(Arc::clone(&stream.0));
                    Box::new(stream) as Box<dyn ByteStream>
                });
                state.result = Some(result);
                if let Some(waker) = state.waker.take() {
                    waker.wake();
                }
            });
        match spawned {
            Ok(handle) => {
                state.handover = Some(handle);
                Poll::Pending
            }
            Err(err) => Poll::Ready(Err(UpgradeError::Io(err))),
        }
    }
}

/// Discards the rest of the request body, writes the 101 and makes the
/// stream, whose reads begin with the bytes that followed the request.
fn hand_over(
    conn: &Arc<Conn>,
    protocol: &str,
    headers: &HeaderMap,
) -> Result<WireStream, UpgradeError> {
    let mut read = lock(&conn.read);
    if !read.body_done() {
        let deadline = Instant::now() + conn.server.timeouts.drain;
        if !read.drain(DRAIN_LIMIT, deadline) {
            return Err(UpgradeError::Io(io::Error::other(format!(
                "the request body was not read and is longer than the {DRAIN_LIMIT} bytes the toy drains"
            ))));
        }
    }
    read.body.finished = true;
    let mut early = read.take_buffered();
    if conn.server.fault == Some(Fault::UpgradeDropsBufferedBytes) {
        early.clear();
    }
    let mut write = lock(&conn.write);
    if write.head_sent && conn.server.fault != Some(Fault::UpgradeAfterHead) {
        return Err(UpgradeError::ResponseStarted);
    }
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {protocol}\r\ndate: {}\r\n",
        http_date(SystemTime::now())
    )
    .into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    write.head_sent = true;
    write.upgrade = UpgradeStage::HandedOver;
    match write.send(&head) {
        // RGIA-UPGRADE-9: the connection failed before the 101 was out.
        Err(err) if conn.server.fault != Some(Fault::UpgradeHidesFailedHandOver) => {
            return Err(UpgradeError::Io(err));
        }
        // The fault hands over a dead connection as if all went well.
        Err(_) | Ok(()) => {}
    }
    // RGIA-UPGRADE-10: HTTP's time limits end at the 101.
    let socket = write.stream.try_clone().map_err(UpgradeError::Io)?;
    socket.set_read_timeout(None).map_err(UpgradeError::Io)?;
    socket.set_write_timeout(None).map_err(UpgradeError::Io)?;
    drop(write);
    drop(read);
    WireStream::start(conn, socket, early).map_err(UpgradeError::Io)
}

/// The state the stream's helpers and its polls share.
#[derive(Default)]
struct StreamState {
    inbox: Vec<u8>,
    want_read: bool,
    read_eof: bool,
    read_error: Option<(io::ErrorKind, String)>,
    read_waker: Option<Waker>,
    outbox: Vec<u8>,
    /// Bytes the writer took and has not finished writing.
    writing: usize,
    write_error: Option<(io::ErrorKind, String)>,
    write_waker: Option<Waker>,
    close_requested: bool,
    write_closed: bool,
    /// The `ByteStream` was dropped.
    dropped: bool,
    /// The request's body ended.
    body_ended: bool,
}

/// An upgraded connection: what its stream, helpers and the server share.
pub(crate) struct StreamShared {
    state: Mutex<StreamState>,
    changed: Condvar,
    socket: TcpStream,
}

impl Closable for StreamShared {
    fn shutdown(&self) {
        StreamShared::shutdown(self);
    }
}

impl std::fmt::Debug for StreamShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamShared").finish_non_exhaustive()
    }
}

impl StreamShared {
    fn state(&self) -> MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, StreamState>) -> MutexGuard<'a, StreamState> {
        self.changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Shuts the connection down (server shutdown).
    pub(crate) fn shutdown(&self) {
        let _gone = self.socket.shutdown(Shutdown::Both);
        let mut state = self.state();
        state.dropped = true;
        drop(state);
        self.changed.notify_all();
    }

    /// The request's body ended: the connection closes once the stream is
    /// gone too (`RGIA-UPGRADE-7`).
    pub(crate) fn body_ended(&self) {
        let mut state = self.state();
        state.body_ended = true;
        let close = state.dropped;
        drop(state);
        if close {
            let _gone = self.socket.shutdown(Shutdown::Both);
        }
    }
}

/// The [`ByteStream`] of an upgraded connection.
pub(crate) struct WireStream(Arc<StreamShared>);

impl WireStream {
    fn start(conn: &Arc<Conn>, socket: TcpStream, early: Vec<u8>) -> io::Result<Self> {
        let shared = Arc::new(StreamShared {
            state: Mutex::new(StreamState {
                inbox: early,
                ..StreamState::default()
            }),
            changed: Condvar::new(),
            socket,
        });
        let mut reader = shared.socket.try_clone()?;
        let mut writer = shared.socket.try_clone()?;
        let for_reader = Arc::clone(&shared);
        let for_writer = Arc::clone(&shared);
        let read = thread::Builder::new()
            .name("toy-upgrade-read".into())
            .spawn(move || run_reader(&for_reader, &mut reader))?;
        conn.server.track(read);
        let write = thread::Builder::new()
            .name("toy-upgrade-write".into())
            .spawn(move || run_writer(&for_writer, &mut writer))?;
        conn.server.track(write);
        conn.server
            .track_stream(&(Arc::clone(&shared) as Arc<dyn Closable>));
        Ok(WireStream(shared))
    }
}

fn run_reader(shared: &StreamShared, socket: &mut TcpStream) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        {
            let mut state = shared.state();
            while !(state.dropped || (state.want_read && state.inbox.is_empty())) {
                state = shared.wait(state);
            }
            if state.dropped {
                return;
            }
        }
        let read = socket.read(&mut buf);
        let mut state = shared.state();
        state.want_read = false;
        match read {
            Ok(0) => state.read_eof = true,
            Ok(count) => state.inbox.extend_from_slice(&buf[..count]),
            Err(err) => state.read_error = Some((err.kind(), err.to_string())),
        }
        let ended = state.read_eof || state.read_error.is_some();
        let waker = state.read_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        if ended {
            return;
        }
    }
}

fn run_writer(shared: &StreamShared, socket: &mut TcpStream) {
    loop {
        let mut state = shared.state();
        let idle = |state: &StreamState| {
            let close_pending = state.close_requested && !state.write_closed;
            state.outbox.is_empty() && !close_pending && !state.dropped
        };
        while idle(&state) {
            state = shared.wait(state);
        }
        if !state.outbox.is_empty() {
            let out = std::mem::take(&mut state.outbox);
            state.writing = out.len();
            drop(state);
            let written = socket.write_all(&out).and_then(|()| socket.flush());
            let mut state = shared.state();
            state.writing = 0;
            if let Err(err) = written {
                state.write_error = Some((err.kind(), err.to_string()));
            }
            let failed = state.write_error.is_some();
            let waker = state.write_waker.take();
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
            if failed {
                return;
            }
        } else if state.close_requested && !state.write_closed {
            drop(state);
            let _closed = socket.shutdown(Shutdown::Write);
            let mut state = shared.state();
            state.write_closed = true;
            let waker = state.write_waker.take();
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
        } else {
            return;
        }
    }
}

fn stored(error: &(io::ErrorKind, String)) -> io::Error {
    io::Error::new(error.0, error.1.clone())
}

impl ByteStream for WireStream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut state = self.0.state();
        if !state.inbox.is_empty() {
            let count = buf.len().min(state.inbox.len());
            buf[..count].copy_from_slice(&state.inbox[..count]);
            state.inbox.drain(..count);
            return Poll::Ready(Ok(count));
        }
        if let Some(error) = &state.read_error {
            return Poll::Ready(Err(stored(error)));
        }
        if state.read_eof {
            return Poll::Ready(Ok(0));
        }
        state.want_read = true;
        state.read_waker = Some(cx.waker().clone());
        drop(state);
        self.0.changed.notify_all();
        Poll::Pending
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut state = self.0.state();
        if let Some(error) = &state.write_error {
            return Poll::Ready(Err(stored(error)));
        }
        if state.close_requested {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream was closed",
            )));
        }
        let room = MAX_OUTBOX.saturating_sub(state.outbox.len() + state.writing);
        if room == 0 {
            state.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let count = room.min(buf.len());
        state.outbox.extend_from_slice(&buf[..count]);
        drop(state);
        self.0.changed.notify_all();
        Poll::Ready(Ok(count))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.0.state();
        if let Some(error) = &state.write_error {
            return Poll::Ready(Err(stored(error)));
        }
        if state.outbox.is_empty() && state.writing == 0 {
            return Poll::Ready(Ok(()));
        }
        state.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.0.state();
        if let Some(error) = &state.write_error {
            return Poll::Ready(Err(stored(error)));
        }
        if state.write_closed {
            return Poll::Ready(Ok(()));
        }
        state.close_requested = true;
        state.write_waker = Some(cx.waker().clone());
        drop(state);
        self.0.changed.notify_all();
        Poll::Pending
    }
}

impl Drop for WireStream {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.dropped = true;
        let close = state.body_ended;
        drop(state);
        self.0.changed.notify_all();
        // The reader may sit in a blocking read nobody wants any more.
        let _unblocked = self.0.socket.shutdown(Shutdown::Read);
        if close {
            let _gone = self.0.socket.shutdown(Shutdown::Both);
        }
    }
}
