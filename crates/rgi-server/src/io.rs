//! The byte stream under hyper: head and idle timers, the `408` answer,
//! bytes replayed after protocol detection, and a forced close that reaches
//! upgraded connections too.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// The answer to a head that did not arrive in time (RGI-LIMIT-5).
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// An accepted connection's byte stream, before protocol detection.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub(crate) const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What one connection's pieces (the I/O wrapper, the per-request service,
/// the connection task) tell each other.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// Requests whose service has been called.
    pub(crate) started: AtomicU64,
    /// Requests whose response body has been dropped.
    pub(crate) finished: AtomicU64,
    /// Nanoseconds after `opened` at which the last response ended: the
    /// idle time counts from there.
    pub(crate) last_end_nanos: AtomicU64,
    /// The connection left hyper through an upgrade (HTTP/1.1 `101`).
    pub(crate) upgraded: AtomicBool,
    /// The grace period is over: reads and writes of an upgraded connection fail.
    pub(crate) force_closed: AtomicBool,
    /// The I/O object still exists (hyper's, or the upgraded stream's owner's).
    pub(crate) io_alive: AtomicBool,
    /// Tasks parked on an upgraded connection's reads and writes.
    pub(crate) wakers: Mutex<[Option<Waker>; 2]>,
    /// Wakes the connection task (a request limit reached, the I/O dropped).
    pub(crate) notify: Notify,
    pub(crate) opened: Instant,
    pub(crate) is_h2: bool,
    pub(crate) max_requests: Option<u64>,
}

impl ConnState {
    pub(crate) fn new(opened: Instant, is_h2: bool, max_requests: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            last_end_nanos: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            force_closed: AtomicBool::new(false),
            io_alive: AtomicBool::new(true),
            wakers: Mutex::new([None, None]),
            notify: Notify::new(),
            opened,
            is_h2,
            max_requests,
        })
    }

    /// Cuts off an upgraded connection: its next read or write fails.
    pub(crate) fn force_close(&self) {
        self.force_closed.store(true, Ordering::Release);
        let wakers = match self.wakers.lock() {
            Ok(mut slots) => [slots[0].take(), slots[1].take()],
            Err(poisoned) => {
                let mut slots = poisoned.into_inner();
                [slots[0].take(), slots[1].take()]
            }
        };
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    fn park(&self, slot: usize, waker: &Waker) {
        let mut slots = match self.wakers.lock() {
            Ok(slots) => slots,
            Err(poisoned) => poisoned.into_inner(),
        };
        match &mut slots[slot] {
            Some(parked) if parked.will_wake(waker) => {}
            other => *other = Some(waker.clone()),
        }
    }
}

/// Up to 24 bytes read while telling HTTP/1.1 from HTTP/2, handed to hyper
/// before anything else.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    bytes: [u8; 24],
    start: usize,
    end: usize,
}

impl Replay {
    pub(crate) fn new(bytes: [u8; 24], len: usize) -> Self {
        Self {
            bytes,
            start: 0,
            end: len.min(24),
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// The HTTP/1.1 timers of RGI-LIMIT-5 and RGI-LIMIT-6, kept here because
/// hyper's own header timer closes silently even when half a head arrived.
#[derive(Debug)]
pub(crate) struct HeadTimers {
    sleep: Pin<Box<Sleep>>,
    header_timeout: Duration,
    idle_timeout: Duration,
    seen_started: u64,
    seen_finished: u64,
    /// Bytes arrived since the last request was dispatched.
    bytes_pending: bool,
    /// When a partial head was first seen waiting for more.
    head_since: Option<Instant>,
    /// When the connection became idle: accepted, or the last response ended.
    idle_since: Instant,
    /// Progress through [`REQUEST_TIMEOUT`] once the head time ran out.
    refusing: Option<usize>,
}

impl HeadTimers {
    /// Timers for a connection accepted at `accepted`; `head_since` is set
    /// when protocol detection already read the start of a head.
    pub(crate) fn new(
        header_timeout: Duration,
        idle_timeout: Duration,
        accepted: Instant,
        head_since: Option<Instant>,
    ) -> Self {
        let first = head_since.unwrap_or(accepted) + header_timeout;
        Self {
            sleep: Box::pin(tokio::time::sleep_until(first)),
            header_timeout,
            idle_timeout,
            seen_started: 0,
            seen_finished: 0,
            bytes_pending: false,
            head_since,
            idle_since: accepted,
            refusing: None,
        }
    }

    /// The deadline now in force and what running out of it means.
    fn deadline(&mut self, state: &ConnState) -> (Instant, Expiry) {
        let started = state.started.load(Ordering::Acquire);
        if started != self.seen_started {
            self.seen_started = started;
            self.head_since = None;
            self.bytes_pending = false;
        }
        let finished = state.finished.load(Ordering::Acquire);
        if started != finished {
            // A request is in flight: its body's stall time belongs to the
            // service that reads it. Look again later, in case hyper waits
            // for the next head without polling the socket again once the
            // response has ended.
            return (Instant::now() + self.idle_timeout, Expiry::LookAgain);
        }
        if finished != self.seen_finished {
            self.seen_finished = finished;
            self.bytes_pending = false;
            let ended = Duration::from_nanos(state.last_end_nanos.load(Ordering::Acquire));
            self.idle_since = state.opened + ended;
        }
        if self.bytes_pending && self.head_since.is_none() {
            self.head_since = Some(Instant::now());
        }
        match self.head_since {
            Some(since) => (since + self.header_timeout, Expiry::Refuse),
            None if finished == 0 => (self.idle_since + self.header_timeout, Expiry::Close),
            None => (self.idle_since + self.idle_timeout, Expiry::Close),
        }
    }

    /// Polls the timer; `Some` once a deadline has passed.
    fn poll_expired(&mut self, state: &ConnState, cx: &mut Context<'_>) -> Option<Expiry> {
        loop {
            let (deadline, expiry) = self.deadline(state);
            // The sleep may run early (a deadline that moved later is not
            // re-armed on every request); it is re-armed when it fires.
            if self.sleep.is_elapsed() || self.sleep.deadline() > deadline {
                self.sleep.as_mut().reset(deadline);
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Pending => return None,
                Poll::Ready(()) if expiry != Expiry::LookAgain && Instant::now() >= deadline => {
                    return Some(expiry);
                }
                Poll::Ready(()) => self.sleep.as_mut().reset(deadline),
            }
        }
    }
}

/// What a head or idle deadline running out leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// Part of a head arrived: `408` and close (RGI-LIMIT-5).
    Refuse,
    /// Nothing of a head arrived: close without a word (RGI-LIMIT-5, -6).
    Close,
    /// Not a deadline: a request is in flight; only evaluate again.
    LookAgain,
}

/// The I/O object hyper drives.
#[derive(Debug)]
pub(crate) struct ConnIo<IO> {
    inner: IO,
    state: Arc<ConnState>,
    replay: Replay,
    timers: Option<HeadTimers>,
    /// A read error met right after the replayed bytes, reported next.
    deferred: Option<io::Error>,
}

impl<IO> ConnIo<IO> {
    pub(crate) fn new(
        inner: IO,
        state: Arc<ConnState>,
        replay: Replay,
        timers: Option<HeadTimers>,
    ) -> Self {
        Self {
            inner,
            state,
            replay,
            timers,
            deferred: None,
        }
    }
}

impl<IO> Drop for ConnIo<IO> {
    fn drop(&mut self) {
        self.state.io_alive.store(false, Ordering::Release);
        self.state.notify.notify_one();
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "request head not received in time")
}

fn cut_off() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "server shutdown grace period over",
    )
}

impl<IO: AsyncRead + AsyncWrite + Unpin> ConnIo<IO> {
    /// Writes the `408`, flushes and shuts the write side, then fails the read.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(timers) = self.timers.as_mut() else {
            return Poll::Ready(Err(timed_out()));
        };
        let Some(written) = timers.refusing.as_mut() else {
            return Poll::Ready(Err(timed_out()));
        };
        while *written < REQUEST_TIMEOUT.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &REQUEST_TIMEOUT[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(timed_out())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        std::task::ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        std::task::ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
        Poll::Ready(Err(timed_out()))
    }

    /// Reads what the client sent after the replayed bytes into the same
    /// buffer, as one read would have without protocol detection: hyper
    /// then finds the whole head in its first read instead of regrowing
    /// its read buffer for the rest (a copy and a temporary allocation per
    /// connection, and a buffer twice as large). An error is kept for the
    /// next read, after the replayed bytes.
    fn read_after_replay(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && let Some(timers) = self.timers.as_mut()
                {
                    timers.bytes_pending = true;
                }
            }
            Poll::Ready(Err(error)) => self.deferred = Some(error),
            // Nothing more yet; the waker registered stays harmless.
            Poll::Pending => {}
        }
    }

    fn poll_read_upgraded(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.state.force_closed.load(Ordering::Acquire) {
            return Poll::Ready(Err(cut_off()));
        }
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Pending => {
                self.state.park(0, cx.waker());
                if self.state.force_closed.load(Ordering::Acquire) {
                    return Poll::Ready(Err(cut_off()));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }

    fn check_upgraded_write(&self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.state.upgraded.load(Ordering::Relaxed) {
            if self.state.force_closed.load(Ordering::Acquire) {
                return Err(cut_off());
            }
            self.state.park(1, cx.waker());
        }
        Ok(())
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for ConnIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state.upgraded.load(Ordering::Relaxed) {
            return this.poll_read_upgraded(cx, buf);
        }
        if !this.replay.is_empty() {
            let available = &this.replay.bytes[this.replay.start..this.replay.end];
            let n = available.len().min(buf.remaining());
            buf.put_slice(&available[..n]);
            this.replay.start += n;
            if this.replay.is_empty() && buf.remaining() > 0 {
                this.read_after_replay(cx, buf);
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(error) = this.deferred.take() {
            return Poll::Ready(Err(error));
        }
        if this
            .timers
            .as_ref()
            .is_some_and(|timers| timers.refusing.is_some())
        {
            return this.poll_refuse(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && let Some(timers) = this.timers.as_mut()
                {
                    timers.bytes_pending = true;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                let Some(timers) = this.timers.as_mut() else {
                    return Poll::Pending;
                };
                match timers.poll_expired(&this.state, cx) {
                    None | Some(Expiry::LookAgain) => Poll::Pending,
                    Some(Expiry::Refuse) => {
                        tracing::debug!(
                            limit = "header_read_timeout",
                            timeout_ms = crate::millis(timers.header_timeout),
                            "request head incomplete when its time ran out: 408"
                        );
                        timers.refusing = Some(0);
                        this.poll_refuse(cx)
                    }
                    Some(Expiry::Close) => {
                        tracing::debug!("connection idle when its time ran out: closed silently");
                        // End of stream: hyper closes an idle connection
                        // without writing anything.
                        Poll::Ready(Ok(()))
                    }
                }
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_upgraded_write(cx)?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_upgraded_write(cx)?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_upgraded_write(cx)?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
