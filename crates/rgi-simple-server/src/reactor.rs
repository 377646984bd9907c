//! What the poller thread does for asynchronous requests: readiness of
//! their connections (and of the application's own descriptors) and
//! timers, turned into wake-ups. Other threads register here; the poller
//! thread's one `mio::Poll` delivers the events, so there is no second
//! event loop.
//!
//! mio is edge-triggered. A waiter therefore records the slot's event count
//! before it tries its operation and parks only if no event arrived since
//! ([`Reactor::park`]); the poller bumps the count and takes the waker
//! under the same lock, so no wake-up is lost between a `WouldBlock` and the
//! parking.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// Tokens at and above this belong to the reactor; below it, to the
/// poller's own listener and connections, whose numbers never get here.
pub(crate) const REACTOR_BASE: usize = 1 << (usize::BITS - 2);

/// Which way a waiter waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Read,
    Write,
}

/// The readiness seen on a slot, for readiness waits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) hangup: bool,
    pub(crate) error: bool,
}

#[derive(Debug, Default)]
struct Slot {
    read_events: u64,
    write_events: u64,
    readable: Option<Waker>,
    writable: Option<Waker>,
    /// Woken when the peer is gone, whatever the task waits for.
    watcher: Option<Waker>,
    /// The peer reset or closed both directions.
    gone: bool,
    /// The peer ended its sending side.
    read_closed: bool,
    /// Everything seen since the slot was made, for readiness waits.
    seen: Seen,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<usize, Slot>,
    next_slot: usize,
    timers: BTreeMap<(Instant, u64), Waker>,
    next_timer: u64,
}

/// A timer's key, to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey(Instant, u64);

impl TimerKey {
    pub(crate) fn at(self) -> Instant {
        self.0
    }
}

/// Shared by the poller thread (which dispatches) and every thread that
/// waits (which registers).
#[derive(Debug)]
pub(crate) struct Reactor {
    registry: Registry,
    poller: Arc<mio::Waker>,
    inner: Mutex<Inner>,
}

impl Reactor {
    pub(crate) fn new(registry: Registry, poller: Arc<mio::Waker>) -> Self {
        Self {
            registry,
            poller,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches `fd` for both directions; the slot number names it from now
    /// on.
    ///
    /// # Errors
    ///
    /// What `epoll_ctl` reports (for instance a descriptor already
    /// registered, or one that cannot be polled).
    pub(crate) fn register(&self, fd: RawFd, interest: Interest) -> io::Result<usize> {
        let slot = {
            let mut inner = self.lock();
            let slot = inner.next_slot;
            inner.next_slot = inner.next_slot.wrapping_add(1) % REACTOR_BASE;
            inner.slots.insert(slot, Slot::default());
            slot
        };
        if let Err(error) =
            self.registry
                .register(&mut SourceFd(&fd), Token(REACTOR_BASE + slot), interest)
        {
            self.lock().slots.remove(&slot);
            return Err(error);
        }
        Ok(slot)
    }

    /// Stops watching; wakers still parked on the slot are dropped.
    pub(crate) fn deregister(&self, slot: usize, fd: RawFd) {
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        let removed = self.lock().slots.remove(&slot);
        drop(removed);
    }

    /// The slot's event count for `dir`, read before an attempt.
    pub(crate) fn events(&self, slot: usize, dir: Dir) -> u64 {
        let inner = self.lock();
        inner.slots.get(&slot).map_or(0, |s| match dir {
            Dir::Read => s.read_events,
            Dir::Write => s.write_events,
        })
    }

    /// Parks `waker` until the next event for `dir`; false (and nothing
    /// parked) when an event arrived since `seen` was read, so the caller
    /// tries again instead of waiting for an edge that has passed.
    pub(crate) fn park(&self, slot: usize, dir: Dir, seen: u64, waker: &Waker) -> bool {
        let mut inner = self.lock();
        let Some(s) = inner.slots.get_mut(&slot) else {
            return false;
        };
        let (count, place) = match dir {
            Dir::Read => (s.read_events, &mut s.readable),
            Dir::Write => (s.write_events, &mut s.writable),
        };
        if count != seen || s.gone {
            return false;
        }
        match place {
            Some(old) if old.will_wake(waker) => {}
            _ => *place = Some(waker.clone()),
        }
        true
    }

    /// Wakes `waker` when the peer is gone (`[RGIA-POLL-9]`).
    pub(crate) fn watch(&self, slot: usize, waker: &Waker) {
        if let Some(s) = self.lock().slots.get_mut(&slot) {
            match &s.watcher {
                Some(old) if old.will_wake(waker) => {}
                _ => s.watcher = Some(waker.clone()),
            }
        }
    }

    /// Whether the slot is still registered.
    pub(crate) fn has_slot(&self, slot: usize) -> bool {
        self.lock().slots.contains_key(&slot)
    }

    /// Whether the peer reset the connection or closed both directions,
    /// and whether it ended its sending side.
    pub(crate) fn closed(&self, slot: usize) -> (bool, bool) {
        self.lock()
            .slots
            .get(&slot)
            .map_or((false, false), |s| (s.gone, s.read_closed))
    }

    /// What the slot has seen so far.
    pub(crate) fn seen(&self, slot: usize) -> Seen {
        self.lock()
            .slots
            .get(&slot)
            .map(|s| s.seen)
            .unwrap_or_default()
    }

    /// Wakes `waker` at `at` (on the poller thread, which is woken to
    /// shorten its sleep when this timer is the earliest).
    pub(crate) fn add_timer(&self, at: Instant, waker: &Waker) -> TimerKey {
        let (key, earliest) = {
            let mut inner = self.lock();
            let id = inner.next_timer;
            inner.next_timer = inner.next_timer.wrapping_add(1);
            inner.timers.insert((at, id), waker.clone());
            let earliest = inner.timers.keys().next().is_some_and(|k| k.1 == id);
            (TimerKey(at, id), earliest)
        };
        if earliest {
            let _ = self.poller.wake();
        }
        key
    }

    pub(crate) fn cancel_timer(&self, key: TimerKey) {
        let removed = self.lock().timers.remove(&(key.0, key.1));
        drop(removed);
    }

    /// Poller side: one event for a reactor token.
    pub(crate) fn dispatch(&self, event: &Event) {
        let Some(slot) = event.token().0.checked_sub(REACTOR_BASE) else {
            return;
        };
        let mut wake = Vec::new();
        {
            let mut inner = self.lock();
            let Some(s) = inner.slots.get_mut(&slot) else {
                return;
            };
            let hangup = event.is_read_closed() || event.is_write_closed();
            let error = event.is_error();
            if event.is_readable() || hangup || error {
                s.read_events += 1;
                s.seen.readable |= event.is_readable();
                wake.extend(s.readable.take());
            }
            if event.is_writable() || event.is_write_closed() || error {
                s.write_events += 1;
                s.seen.writable |= event.is_writable();
                wake.extend(s.writable.take());
            }
            s.seen.hangup |= hangup;
            s.seen.error |= error;
            if error || (event.is_read_closed() && event.is_write_closed()) {
                s.gone = true;
            }
            if event.is_read_closed() {
                s.read_closed = true;
            }
            if s.gone || s.read_closed {
                wake.extend(s.watcher.take());
            }
        }
        // Woken outside the lock: a wake-up may take other locks.
        for waker in wake {
            waker.wake();
        }
    }

    /// Poller side: when the earliest timer is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.lock().timers.keys().next().map(|k| k.0)
    }

    /// Poller side: wakes every timer due by `now`.
    pub(crate) fn fire_due(&self, now: Instant) {
        let due = {
            let mut inner = self.lock();
            let later = inner.timers.split_off(&(now, u64::MAX));
            std::mem::replace(&mut inner.timers, later)
        };
        for (_, waker) in due {
            waker.wake();
        }
    }
}
