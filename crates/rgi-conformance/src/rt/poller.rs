//! A real [`ReadinessService`]: one background thread runs a `mio::Poll`
//! (epoll on Linux, kqueue on the BSDs and macOS).
//!
//! Each wait registers its descriptors at its first poll (so an unpollable
//! descriptor is reported there), is woken by the poller thread on the
//! first event or when its deadline passes, and deregisters them when its
//! future is dropped. mio registers edge-triggered, but every wait
//! registers afresh and the kernel reports a descriptor that is already
//! ready at registration, so each wait sees level-triggered readiness
//! (RGIA-READY).
//!
//! Each wait registers the application's descriptor itself, never a
//! duplicate, and only for as long as the wait lasts (RGIA-READY-19): a
//! leaked wait holds nothing open, and the kernel forgets its registration
//! when the application closes the descriptor, so a new descriptor that
//! gets the number back registers afresh (RGIA-READY-13). epoll and kqueue
//! refuse a second registration of a descriptor, as tokio's `AsyncFd` does,
//! so a second wait on a descriptor that a wait in progress holds resolves
//! at its first poll to `ReadinessError::AlreadyWaited` and leaves the
//! first wait alone (RGIA-READY-21). A wait with a zero timeout is answered
//! at its first poll from a throw-away poller (RGIA-READY-7).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Token};
use rgi_async::{
    Interest, ReadinessError, ReadinessService, Ready, Source, WaitAnyFuture, WaitAnyOutcome,
    WaitFuture, WaitOutcome,
};

/// The token of the poller thread's own waker.
const WAKE: Token = Token(0);

/// A [`ReadinessService`] backed by one poller thread; dropping it stops
/// the thread.
pub struct PollerReadiness {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PollerReadiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollerReadiness")
            .field("registered", &self.registered())
            .finish_non_exhaustive()
    }
}

/// What the poller thread and the waits share.
struct Shared {
    registry: mio::Registry,
    wake: mio::Waker,
    stop: AtomicBool,
    next_token: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Registered descriptors: token → (the wait, the source's index).
    targets: HashMap<Token, (Arc<Mutex<Slot>>, usize)>,
    /// Waits with a timeout, by their first token.
    deadlines: HashMap<Token, (Instant, Arc<Mutex<Slot>>)>,
}

/// One wait's outcome so far and the task to wake.
#[derive(Default)]
struct Slot {
    ready: Vec<(usize, Ready)>,
    timed_out: bool,
    waker: Option<Waker>,
}

impl Slot {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PollerReadiness {
    /// Starts the poller thread.
    ///
    /// # Errors
    ///
    /// If the system poller cannot be created.
    pub fn new() -> io::Result<Self> {
        let mut poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let wake = mio::Waker::new(poll.registry(), WAKE)?;
        let shared = Arc::new(Shared {
            registry,
            wake,
            stop: AtomicBool::new(false),
            next_token: AtomicUsize::new(1),
            state: Mutex::new(State::default()),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("readiness-poller".into())
            .spawn(move || run(&mut poll, &thread_shared))?;
        Ok(PollerReadiness {
            shared,
            thread: Some(thread),
        })
    }

    /// How many descriptors are registered right now: zero once every wait
    /// has ended, which is how tests see that a dropped wait deregistered.
    #[must_use]
    pub fn registered(&self) -> usize {
        lock(&self.shared.state).targets.len()
    }
}

impl Drop for PollerReadiness {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if self.shared.wake.wake().is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// The poller thread: waits for events or the nearest deadline, records
/// what it saw and wakes the waits concerned.
fn run(poll: &mut mio::Poll, shared: &Shared) {
    let mut events = Events::with_capacity(64);
    while !shared.stop.load(Ordering::SeqCst) {
        let nearest = lock(&shared.state)
            .deadlines
            .values()
            .map(|(deadline, _)| *deadline)
            .min();
        let timeout = nearest.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        if let Err(err) = poll.poll(&mut events, timeout) {
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let mut state = lock(&shared.state);
        for event in &events {
            if event.token() == WAKE {
                continue;
            }
            let Some((slot, index)) = state.targets.get(&event.token()) else {
                continue; // deregistered meanwhile
            };
            let Some(ready) = ready_of(event) else {
                continue;
            };
            let mut slot = lock(slot);
            match slot.ready.iter_mut().find(|(i, _)| i == index) {
                Some((_, seen)) => *seen |= ready,
                None => slot.ready.push((*index, ready)),
            }
            slot.wake();
        }
        let now = Instant::now();
        state.deadlines.retain(|_, (deadline, slot)| {
            if *deadline > now {
                return true;
            }
            let mut slot = lock(slot);
            if slot.ready.is_empty() {
                slot.timed_out = true;
                slot.wake();
            }
            false
        });
    }
}

/// The future of one wait (on one source or several).
struct PollerWait<'a> {
    shared: Arc<Shared>,
    sources: Vec<(Source<'a>, Interest)>,
    timeout: Option<Duration>,
    slot: Arc<Mutex<Slot>>,
    /// The tokens registered so far, with the descriptor each registered;
    /// empty until the first poll.
    tokens: Vec<(Token, RawFd)>,
    /// The key of this wait's deadline, if it has one.
    deadline: Option<Token>,
    started: bool,
}

/// The mio interest for a wait's interest.
fn mio_interest(interest: Interest) -> mio::Interest {
    match (interest.is_readable(), interest.is_writable()) {
        (true, true) => mio::Interest::READABLE | mio::Interest::WRITABLE,
        (false, true) => mio::Interest::WRITABLE,
        _ => mio::Interest::READABLE,
    }
}

/// What an event reports, if anything.
fn ready_of(event: &mio::event::Event) -> Option<Ready> {
    let mut ready = None;
    for (set, flag) in [
        (event.is_readable(), Ready::READABLE),
        (event.is_writable(), Ready::WRITABLE),
        (
            event.is_read_closed() || event.is_write_closed(),
            Ready::HANGUP,
        ),
        (event.is_error(), Ready::ERROR),
    ] {
        if set {
            ready = Some(ready.map_or(flag, |ready| ready | flag));
        }
    }
    ready
}

/// The error of a failed registration of `fd`.
fn registration_error(fd: RawFd, err: io::Error) -> ReadinessError {
    if err.kind() == io::ErrorKind::AlreadyExists {
        // EEXIST: another wait in progress holds the descriptor.
        return ReadinessError::AlreadyWaited { fd };
    }
    if err.kind() == io::ErrorKind::PermissionDenied {
        // epoll answers EPERM for regular files and directories.
        ReadinessError::Unpollable {
            fd,
            reason: err.to_string(),
        }
    } else {
        ReadinessError::Io(err)
    }
}

impl PollerWait<'_> {
    /// Answers a wait with a zero timeout at once: registers its
    /// descriptors with a poller of its own and asks it without waiting
    /// (the kernel reports what is ready at registration). A poller of its
    /// own holds a registration of its own, so such a check never collides
    /// with a wait in progress.
    fn check_now(&self) -> Result<WaitAnyOutcome, ReadinessError> {
        let mut poll = mio::Poll::new()?;
        for (index, (source, interest)) in self.sources.iter().enumerate() {
            poll.registry()
                .register(
                    &mut SourceFd(&source.as_raw()),
                    Token(index),
                    mio_interest(*interest),
                )
                .map_err(|err| registration_error(source.as_raw(), err))?;
        }
        let mut events = Events::with_capacity(self.sources.len().max(1));
        poll.poll(&mut events, Some(Duration::ZERO))?;
        let mut ready: Vec<(usize, Ready)> = Vec::new();
        for event in &events {
            let Some(seen) = ready_of(event) else {
                continue;
            };
            match ready
                .iter_mut()
                .find(|(index, _)| *index == event.token().0)
            {
                Some((_, earlier)) => *earlier |= seen,
                None => ready.push((event.token().0, seen)),
            }
        }
        // Dropping the poller removes every registration it holds.
        drop(poll);
        ready.sort_by_key(|(index, _)| *index);
        Ok(if ready.is_empty() {
            WaitAnyOutcome::TimedOut
        } else {
            WaitAnyOutcome::Ready(ready)
        })
    }

    /// Registers every source; on failure, undoes what was registered.
    fn register(&mut self) -> Result<(), ReadinessError> {
        for (index, (source, interest)) in self.sources.iter().enumerate() {
            let fd = source.as_raw();
            let token = Token(self.shared.next_token.fetch_add(1, Ordering::SeqCst));
            // The target goes in before the registration: mio is
            // edge-triggered, and an event for an unknown token is lost.
            lock(&self.shared.state)
                .targets
                .insert(token, (Arc::clone(&self.slot), index));
            if let Err(err) =
                self.shared
                    .registry
                    .register(&mut SourceFd(&fd), token, mio_interest(*interest))
            {
                lock(&self.shared.state).targets.remove(&token);
                self.deregister();
                return Err(registration_error(fd, err));
            }
            self.tokens.push((token, fd));
        }
        if let Some(timeout) = self.timeout {
            let key = Token(self.shared.next_token.fetch_add(1, Ordering::SeqCst));
            self.deadline = Some(key);
            lock(&self.shared.state)
                .deadlines
                .insert(key, (Instant::now() + timeout, Arc::clone(&self.slot)));
            // The poller thread recomputes its timeout.
            self.shared.wake.wake()?;
        }
        Ok(())
    }

    fn deregister(&mut self) {
        let mut state = lock(&self.shared.state);
        if let Some(key) = self.deadline.take() {
            state.deadlines.remove(&key);
        }
        for (token, fd) in self.tokens.drain(..) {
            state.targets.remove(&token);
            // The wait borrows the descriptor, so it is still open and still
            // the one registered; nothing of the wait outlives this.
            let _ = self.shared.registry.deregister(&mut SourceFd(&fd));
        }
    }
}

impl Future for PollerWait<'_> {
    type Output = Result<WaitAnyOutcome, ReadinessError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.started {
            this.started = true;
            if this.timeout == Some(Duration::ZERO) {
                return Poll::Ready(this.check_now());
            }
            if let Err(err) = this.register() {
                return Poll::Ready(Err(err));
            }
        }
        let mut slot = lock(&this.slot);
        let outcome = if !slot.ready.is_empty() {
            let mut ready = std::mem::take(&mut slot.ready);
            ready.sort_by_key(|(index, _)| *index);
            WaitAnyOutcome::Ready(ready)
        } else if slot.timed_out {
            WaitAnyOutcome::TimedOut
        } else {
            slot.waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        drop(slot);
        // RGIA-READY-19: the registration ends with the wait, even if the
        // resolved future is kept.
        this.deregister();
        Poll::Ready(Ok(outcome))
    }
}

impl Drop for PollerWait<'_> {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl ReadinessService for PollerReadiness {
    fn wait<'a>(
        &self,
        source: Source<'a>,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        let any = self.wait_any(vec![(source, interest)], timeout);
        Box::pin(async move {
            Ok(match any.await? {
                WaitAnyOutcome::Ready(ready) => WaitOutcome::Ready(
                    ready
                        .into_iter()
                        .map(|(_, ready)| ready)
                        .reduce(|a, b| a | b)
                        .unwrap_or(Ready::READABLE),
                ),
                WaitAnyOutcome::TimedOut => WaitOutcome::TimedOut,
                // RGIA-VER-4: an outcome a later version adds has no
                // single-source meaning this poller knows.
                other => {
                    return Err(ReadinessError::Io(io::Error::other(format!(
                        "wait_any resolved to an outcome this poller does not know: {other:?}"
                    ))));
                }
            })
        })
    }

    fn wait_any<'a>(
        &self,
        sources: Vec<(Source<'a>, Interest)>,
        timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        Box::pin(PollerWait {
            shared: Arc::clone(&self.shared),
            sources,
            timeout,
            slot: Arc::default(),
            tokens: Vec::new(),
            deadline: None,
            started: false,
        })
    }
}
