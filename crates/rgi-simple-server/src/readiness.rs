//! The `Readiness` capability: waits on the application's own descriptors
//! through the poller thread's poll (the [`Reactor`]), with timeouts from
//! its timers.
//!
//! A wait registers each descriptor itself (no duplicate) at its first poll
//! and deregisters it before it resolves or when it is dropped
//! (`[RGIA-READY-19]`). mio is edge-triggered, but registering a descriptor
//! that is already ready queues an event at once, so a condition that holds
//! at the first poll is reported promptly after it (`[RGIA-READY-2]`). A
//! zero timeout is answered at the first poll by a one-off poll of its own
//! with no wait, so that it is `Ready` whenever the descriptor is ready
//! (`[RGIA-READY-7]`).
//!
//! Timer tolerance (`[RGIA-READY-8]`): a timed-out wait resolves when the
//! poller thread next wakes after its deadline, within a few milliseconds
//! on an idle machine; deadlines are kept in order, so an earlier one never
//! fires after a later one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Token};
use rgi_async::{
    Interest, RawSource, ReadinessError, ReadinessService, Ready, Source, WaitAnyFuture,
    WaitAnyOutcome, WaitFuture, WaitOutcome,
};

use crate::reactor::{Dir, Reactor, Seen, TimerKey};

/// The most sources one `wait_any` may list (`[RGIA-READY-17]`); at least
/// the 64 the spec requires.
pub(crate) const MAX_SOURCES: usize = 1024;

/// The readiness service over the poller thread.
#[derive(Debug)]
pub(crate) struct PollerReadiness {
    reactor: Arc<Reactor>,
}

impl PollerReadiness {
    pub(crate) fn new(reactor: Arc<Reactor>) -> Self {
        Self { reactor }
    }
}

impl ReadinessService for PollerReadiness {
    fn wait<'a>(
        &self,
        source: Source<'a>,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        let any = WaitAny::new(Arc::clone(&self.reactor), vec![(source, interest)], timeout);
        Box::pin(async move {
            Ok(match any.await? {
                WaitAnyOutcome::Ready(mut ready) => match ready.pop() {
                    Some((_, ready)) => WaitOutcome::Ready(ready),
                    None => WaitOutcome::TimedOut,
                },
                _ => WaitOutcome::TimedOut,
            })
        })
    }

    fn wait_any<'a>(
        &self,
        sources: Vec<(Source<'a>, Interest)>,
        timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        Box::pin(WaitAny::new(Arc::clone(&self.reactor), sources, timeout))
    }
}

/// A wait on several sources (one for `wait`).
struct WaitAny<'a> {
    reactor: Arc<Reactor>,
    sources: Vec<(Source<'a>, Interest)>,
    timeout: Option<Duration>,
    /// Set at the first poll: the reactor slots, one per source.
    slots: Option<Vec<usize>>,
    deadline: Option<Instant>,
    timer: Option<TimerKey>,
    done: bool,
}

fn mio_interest(interest: Interest) -> mio::Interest {
    match (interest.is_readable(), interest.is_writable()) {
        (true, true) => mio::Interest::READABLE | mio::Interest::WRITABLE,
        (false, true) => mio::Interest::WRITABLE,
        _ => mio::Interest::READABLE,
    }
}

/// What `seen` means for a wait with `interest`; hangup and error count
/// whatever the interest (`[RGIA-READY-6]`).
fn ready_for(seen: Seen, interest: Interest) -> Option<Ready> {
    let mut ready = None::<Ready>;
    let mut add = |r: Ready| ready = Some(ready.map_or(r, |old| old | r));
    if interest.is_readable() && (seen.readable || seen.hangup) {
        add(Ready::READABLE);
    }
    if interest.is_writable() && seen.writable {
        add(Ready::WRITABLE);
    }
    if seen.hangup {
        add(Ready::HANGUP);
    }
    if seen.error {
        add(Ready::ERROR);
    }
    ready
}

fn register_error(fd: RawSource, error: io::Error) -> ReadinessError {
    match error.kind() {
        // EPERM, epoll's answer for regular files and directories.
        io::ErrorKind::PermissionDenied => ReadinessError::Unpollable {
            fd,
            reason: "epoll cannot watch this kind of descriptor (a regular file or directory)"
                .into(),
        },
        // EEXIST, registered already: by a wait in progress (`[RGIA-READY-21]`), or
        // it is a connection of the server's own (`[RGIA-INPUT-12]`).
        io::ErrorKind::AlreadyExists => ReadinessError::AlreadyWaited { fd },
        _ => ReadinessError::Io(error),
    }
}

impl<'a> WaitAny<'a> {
    fn new(
        reactor: Arc<Reactor>,
        sources: Vec<(Source<'a>, Interest)>,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            reactor,
            sources,
            timeout,
            slots: None,
            deadline: None,
            timer: None,
            done: false,
        }
    }

    fn release(&mut self) {
        if let Some(slots) = self.slots.take() {
            for (slot, (source, _)) in slots.into_iter().zip(&self.sources) {
                self.reactor.deregister(slot, source.as_raw());
            }
        }
        if let Some(key) = self.timer.take() {
            self.reactor.cancel_timer(key);
        }
    }

    /// The first poll: checks the list and registers every source.
    fn start(&mut self) -> Result<(), ReadinessError> {
        if self.sources.len() > MAX_SOURCES {
            return Err(ReadinessError::TooManyWaits { limit: MAX_SOURCES });
        }
        for (index, (source, _)) in self.sources.iter().enumerate() {
            let fd = source.as_raw();
            if self.sources[..index].iter().any(|(s, _)| s.as_raw() == fd) {
                return Err(ReadinessError::AlreadyWaited { fd });
            }
        }
        let mut slots = Vec::with_capacity(self.sources.len());
        for (source, interest) in &self.sources {
            let fd = source.as_raw();
            match self.reactor.register(fd, mio_interest(*interest)) {
                Ok(slot) => slots.push(slot),
                Err(error) => {
                    for (slot, (source, _)) in slots.into_iter().zip(&self.sources) {
                        self.reactor.deregister(slot, source.as_raw());
                    }
                    return Err(register_error(fd, error));
                }
            }
        }
        self.slots = Some(slots);
        self.deadline = self.timeout.map(|timeout| Instant::now() + timeout);
        Ok(())
    }

    fn ready_now(&self) -> Vec<(usize, Ready)> {
        let Some(slots) = self.slots.as_ref() else {
            return Vec::new();
        };
        slots
            .iter()
            .zip(&self.sources)
            .enumerate()
            .filter_map(|(index, (slot, (_, interest)))| {
                ready_for(self.reactor.seen(*slot), *interest).map(|ready| (index, ready))
            })
            .collect()
    }

    /// A zero timeout: one poll of a private poller, no waiting.
    fn check_now(&self) -> Result<Vec<(usize, Ready)>, ReadinessError> {
        let mut poll = mio::Poll::new()?;
        let mut found = Vec::new();
        for (index, (source, interest)) in self.sources.iter().enumerate() {
            let fd = source.as_raw();
            poll.registry()
                .register(&mut SourceFd(&fd), Token(index), mio_interest(*interest))
                .map_err(|error| register_error(fd, error))?;
        }
        let mut events = Events::with_capacity(self.sources.len().max(1));
        poll.poll(&mut events, Some(Duration::ZERO))?;
        for event in &events {
            let index = event.token().0;
            let Some((_, interest)) = self.sources.get(index) else {
                continue;
            };
            let seen = Seen {
                readable: event.is_readable(),
                writable: event.is_writable(),
                hangup: event.is_read_closed() || event.is_write_closed(),
                error: event.is_error(),
            };
            if let Some(ready) = ready_for(seen, *interest) {
                found.push((index, ready));
            }
        }
        for (source, _) in &self.sources {
            let fd = source.as_raw();
            let _ = poll.registry().deregister(&mut SourceFd(&fd));
        }
        found.sort_by_key(|(index, _)| *index);
        Ok(found)
    }
}

impl Future for WaitAny<'_> {
    type Output = Result<WaitAnyOutcome, ReadinessError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            // Polled after it resolved: the same answer as a timeout would
            // be wrong, so report that nothing is watched any more.
            return Poll::Ready(Err(ReadinessError::Io(io::Error::other(
                "the wait already resolved",
            ))));
        }
        if this.timeout == Some(Duration::ZERO) {
            this.done = true;
            return Poll::Ready(this.check_now().map(|found| {
                if found.is_empty() {
                    WaitAnyOutcome::TimedOut
                } else {
                    WaitAnyOutcome::Ready(found)
                }
            }));
        }
        if this.slots.is_none() {
            if let Err(error) = this.start() {
                this.done = true;
                return Poll::Ready(Err(error));
            }
        }
        loop {
            let counts: Vec<(u64, u64)> = this
                .slots
                .as_ref()
                .map(|slots| {
                    slots
                        .iter()
                        .map(|slot| {
                            (
                                this.reactor.events(*slot, Dir::Read),
                                this.reactor.events(*slot, Dir::Write),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let found = this.ready_now();
            if !found.is_empty() {
                this.release();
                this.done = true;
                return Poll::Ready(Ok(WaitAnyOutcome::Ready(found)));
            }
            if let Some(deadline) = this.deadline {
                if Instant::now() >= deadline {
                    this.release();
                    this.done = true;
                    return Poll::Ready(Ok(WaitAnyOutcome::TimedOut));
                }
                if this.timer.is_none() {
                    this.timer = Some(this.reactor.add_timer(deadline, cx.waker()));
                }
            }
            let slots = this.slots.clone().unwrap_or_default();
            let parked = slots.iter().zip(&counts).all(|(slot, (read, write))| {
                this.reactor.park(*slot, Dir::Read, *read, cx.waker())
                    && this.reactor.park(*slot, Dir::Write, *write, cx.waker())
            });
            if parked {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for WaitAny<'_> {
    fn drop(&mut self) {
        // By the time the drop returns nothing refers to the descriptors
        // (`[RGIA-READY-12]`).
        self.release();
    }
}
