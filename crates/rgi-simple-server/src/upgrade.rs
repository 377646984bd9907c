//! The `Upgrade` capability: an HTTP/1.1 request that asked to switch
//! protocols may be answered with a 101, after which the raw connection is
//! the application's, as a non-blocking [`ByteStream`] woken through the
//! reactor (spec/rgi-async.md, "Connection upgrade").
//!
//! The hand-over is shared by three parties: the application's
//! `Upgrade::accept` (which records the 101's fields), the request's task
//! (which writes the 101 after the call or poll that accepted, then makes
//! the stream) and the `Upgraded` future (which takes the stream).

use std::future::Future;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use http::header::{CONNECTION, DATE, SERVER, UPGRADE};
use http::{HeaderMap, HeaderValue, Version};
use rgi_async::{ByteStream, UpgradeError, UpgradeFuture, UpgradeService};

use crate::body::{InBuf, WriteGate};
use crate::net::SharedStream;
use crate::reactor::{Dir, Reactor};
use crate::response::{SERVER_NAME, http_date};

/// Whether a request may be upgraded: HTTP/1.1 with an `Upgrade` field and
/// `upgrade` among the `Connection` options (`[RGIA-UPGRADE-1]`); the offer
/// when it may.
pub(crate) fn offer(version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let offered = headers.get(UPGRADE)?;
    let asks = headers.get_all(CONNECTION).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|o| o.trim().eq_ignore_ascii_case("upgrade"))
        })
    });
    asks.then(|| offered.clone())
}

enum State {
    /// Offered, not accepted.
    Offered,
    /// Accepted: the 101's fields (the chosen `Upgrade` included), not yet
    /// taken by the task.
    Accepted(HeaderMap),
    /// The 101 is on its way.
    Sending,
    /// The stream waits for the `Upgraded` future.
    Ready(Box<dyn ByteStream>),
    /// The future took the stream (or it was dropped untaken).
    Taken,
    /// The hand-over failed.
    Failed(Option<UpgradeError>),
}

struct Inner {
    state: State,
    /// The `Upgraded` future's waker.
    waiter: Option<Waker>,
    /// The stream exists and has not been dropped.
    alive: bool,
    /// The task's waker, woken when the stream is dropped.
    task: Option<Waker>,
}

/// One request's hand-over.
pub(crate) struct Handoff {
    offered: HeaderValue,
    gate: Arc<WriteGate>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("offered", &self.offered)
            .finish_non_exhaustive()
    }
}

impl Handoff {
    pub(crate) fn new(offered: HeaderValue, gate: Arc<WriteGate>) -> Self {
        Self {
            offered,
            gate,
            inner: Mutex::new(Inner {
                state: State::Offered,
                waiter: None,
                alive: false,
                task: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an `accept` is waiting for its 101.
    pub(crate) fn is_accepted(&self) -> bool {
        matches!(self.lock().state, State::Accepted(_))
    }

    /// The 101's fields, once, after an `accept`.
    pub(crate) fn take_accepted(&self) -> Option<HeaderMap> {
        let mut inner = self.lock();
        match std::mem::replace(&mut inner.state, State::Sending) {
            State::Accepted(fields) => Some(fields),
            other => {
                inner.state = other;
                None
            }
        }
    }

    /// The hand-over failed; the future resolves to `error`.
    pub(crate) fn fail(&self, error: UpgradeError) {
        let waiter = {
            let mut inner = self.lock();
            if matches!(inner.state, State::Taken | State::Failed(_)) {
                return;
            }
            inner.state = State::Failed(Some(error));
            inner.waiter.take()
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    /// The 101 went out: the stream is ready for the future.
    fn ready(&self, stream: Box<dyn ByteStream>) {
        let waiter = {
            let mut inner = self.lock();
            inner.state = State::Ready(stream);
            inner.alive = true;
            inner.waiter.take()
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    /// Whether the stream is still alive; if so, `task` is woken when it is
    /// dropped. A stream nobody took is dropped here.
    pub(crate) fn stream_alive(&self, task: &Waker) -> bool {
        let untaken = {
            let mut inner = self.lock();
            let untaken = match std::mem::replace(&mut inner.state, State::Taken) {
                State::Ready(stream) => {
                    inner.alive = false;
                    Some(stream)
                }
                other => {
                    inner.state = other;
                    None
                }
            };
            if inner.alive {
                inner.task = Some(task.clone());
            }
            (untaken, inner.alive)
        };
        let (untaken, alive) = untaken;
        drop(untaken);
        alive
    }

    fn dropped(&self) {
        let task = {
            let mut inner = self.lock();
            inner.alive = false;
            inner.task.take()
        };
        if let Some(task) = task {
            task.wake();
        }
    }

    /// Makes the stream over the connection, with the bytes already read
    /// past the request, and hands it to the future (`[RGIA-UPGRADE-4]`).
    pub(crate) fn hand_over(
        self: &Arc<Self>,
        stream: SharedStream,
        reactor: Arc<Reactor>,
        slot: usize,
        leftover: InBuf,
    ) {
        self.ready(Box::new(ConnStream {
            stream,
            reactor,
            slot,
            leftover,
            handoff: Arc::clone(self),
        }));
    }
}

/// The 101 head for `fields` (`[RGIA-UPGRADE-3]`): the server adds
/// `Connection: upgrade`, `Date` and `Server`.
pub(crate) fn switching_head(fields: &HeaderMap) -> Vec<u8> {
    let mut out = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    for (name, value) in fields {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: upgrade\r\n");
    if !fields.contains_key(DATE) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(http_date(SystemTime::now()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !fields.contains_key(SERVER) {
        out.extend_from_slice(b"server: ");
        out.extend_from_slice(SERVER_NAME.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The protocols of an `Upgrade` field value.
fn protocols(value: &HeaderValue) -> Vec<&str> {
    value.to_str().map_or_else(
        |_| Vec::new(),
        |text| {
            text.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect()
        },
    )
}

/// The application's side: `Upgrade::accept` lands here.
pub(crate) struct Service(pub(crate) Arc<Handoff>);

impl UpgradeService for Service {
    fn accept(&self, mut headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        let handoff = &self.0;
        if handoff.gate.lock().head_sent {
            return Err(UpgradeError::ResponseStarted);
        }
        let offered = protocols(&handoff.offered);
        let chosen = match headers.get(UPGRADE) {
            Some(chosen) => {
                let named = chosen.to_str().map(str::trim).unwrap_or("");
                if !offered.iter().any(|p| p.eq_ignore_ascii_case(named)) {
                    return Err(UpgradeError::ProtocolNotOffered {
                        chosen: chosen.clone(),
                        offered: handoff.offered.clone(),
                    });
                }
                chosen.clone()
            }
            None if offered.len() == 1 => handoff.offered.clone(),
            None => {
                return Err(UpgradeError::ProtocolNotChosen {
                    offered: handoff.offered.clone(),
                });
            }
        };
        headers.insert(UPGRADE, chosen);
        {
            let mut inner = handoff.lock();
            if !matches!(inner.state, State::Offered) {
                return Err(UpgradeError::AlreadyAccepted);
            }
            inner.state = State::Accepted(headers);
        }
        Ok(Box::pin(Wait(Arc::clone(handoff))))
    }
}

/// The `Upgraded` future's inside.
struct Wait(Arc<Handoff>);

impl Future for Wait {
    type Output = Result<Box<dyn ByteStream>, UpgradeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.0.lock();
        match std::mem::replace(&mut inner.state, State::Taken) {
            State::Ready(stream) => Poll::Ready(Ok(stream)),
            State::Failed(error) => {
                inner.state = State::Failed(None);
                Poll::Ready(Err(error.unwrap_or(UpgradeError::Closed)))
            }
            State::Taken => Poll::Ready(Err(UpgradeError::Closed)),
            other => {
                inner.state = other;
                inner.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The connection after the 101: reads begin with the bytes the server had
/// buffered past the request; writes go straight to the socket, so nothing
/// is buffered here (`[RGIA-UPGRADE-8]`).
struct ConnStream {
    stream: SharedStream,
    reactor: Arc<Reactor>,
    slot: usize,
    leftover: InBuf,
    handoff: Arc<Handoff>,
}

impl ConnStream {
    /// One non-blocking operation, parked on the reactor when it would
    /// block; an error once the request no longer holds the connection.
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        dir: Dir,
        mut op: impl FnMut(&SharedStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let seen = self.reactor.events(self.slot, dir);
            match op(&self.stream) {
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    if !self.reactor.has_slot(self.slot) {
                        return Poll::Ready(Err(ErrorKind::NotConnected.into()));
                    }
                    if self.reactor.park(self.slot, dir, seen, cx.waker()) {
                        return Poll::Pending;
                    }
                }
                other => return Poll::Ready(other),
            }
        }
    }
}

impl ByteStream for ConnStream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !self.leftover.is_empty() {
            let available = self.leftover.available();
            let count = available.len().min(buf.len());
            buf[..count].copy_from_slice(&available[..count]);
            self.leftover.consume(count);
            return Poll::Ready(Ok(count));
        }
        self.poll_io(cx, Dir::Read, |stream| (&**stream).read(buf))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.poll_io(cx, Dir::Write, |stream| (&**stream).write(buf))
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.stream.shutdown(Shutdown::Write) {
            Err(error) if error.kind() != ErrorKind::NotConnected => Err(error),
            _ => Ok(()),
        })
    }
}

impl Drop for ConnStream {
    fn drop(&mut self) {
        self.handoff.dropped();
    }
}
