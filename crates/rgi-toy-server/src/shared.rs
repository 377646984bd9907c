//! What every module of the toy shares: the server's state (its fault,
//! timeouts, the registry of open connections and upgraded streams, the
//! capability services), the cancel flag of a parked body, and the one
//! lock helper. It depends on no other module of the toy but the faults,
//! so that the modules above it depend one way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Waker;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rgi::{Features, ServerInfo};
use rgi_async::{Offload, Readiness};

use super::Fault;

/// Locks a mutex, recovering the data if a panicking thread poisoned it:
/// every guarded state here stays consistent between statements.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long the toy waits on a client that does not take its output, and
/// how long `stop` waits for its threads (the read times are the toy's
/// limits, `request::LIMITS`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// A write the client does not accept.
    pub(crate) write: Duration,
    /// Draining an unread request body after the response.
    pub(crate) drain: Duration,
    /// Lingering after the toy's last response on a connection.
    pub(crate) linger: Duration,
    /// `stop`'s wait for every thread to end.
    pub(crate) stop: Duration,
    /// The wait for the application's start-up (`RGI-LIFE-2`, `RGI-LIFE-5`).
    pub(crate) startup: Duration,
}

/// The documented limits of the toy (see the module documentation).
pub(crate) const TIMEOUTS: Timeouts = Timeouts {
    write: Duration::from_secs(10),
    drain: Duration::from_secs(2),
    linger: Duration::from_millis(500),
    stop: Duration::from_secs(5),
    startup: Duration::from_secs(10),
};

/// The optional features of RGI 1.2 the toy provides, and declares
/// (`RGI-FEAT-1`): all of them, on both kinds of application.
pub(crate) const FEATURES: Features = Features::none()
    .with_request_trailers(true)
    .with_response_trailers(true)
    .with_early_hints(true)
    .with_lifespan(true);

/// The most unread request body bytes the toy drains to keep a
/// connection (`RGI-CONN-1`).
pub(crate) const DRAIN_LIMIT: u64 = 1024 * 1024;

/// Lets `stop` end an asynchronous body that is parked: the body's guard
/// leaves its waker here and checks the flag on every poll.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    cancelled: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Cancel {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub(crate) fn park(&self, waker: &Waker) {
        let mut slot = lock(&self.waker);
        if !slot.as_ref().is_some_and(|parked| parked.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
    }
}

/// Something `stop` (or a fault that takes the server down) shuts down: a
/// connection or an upgraded stream. A trait, so that the state every
/// module shares does not depend on the modules that define them.
pub(crate) trait Closable: Send + Sync {
    /// Shuts it down: every blocked read or write on it returns.
    fn shutdown(&self);
}

/// An open connection in the registry.
#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) conn: Arc<dyn Closable>,
    pub(crate) accepted: Instant,
    pub(crate) cancel: Arc<Cancel>,
}

/// The open connections, by number.
type Registry = HashMap<u64, Registered>;

/// What the accept thread, the connections and `stop` share.
pub(crate) struct Shared {
    pub(crate) fault: Option<Fault>,
    pub(crate) timeouts: Timeouts,
    /// Shared with the offload and readiness services, which refuse or
    /// clean up once `stop` has begun.
    pub(crate) stopping: Arc<AtomicBool>,
    pub(crate) next_conn: AtomicU64,
    pub(crate) conns: Mutex<Registry>,
    pub(crate) streams: Mutex<Vec<Weak<dyn Closable>>>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    /// Held while serving a request under [`Fault::OneRequestAtATime`].
    pub(crate) serial: Mutex<()>,
    /// Bodies being dropped under [`Fault::PanicInDropKillsServer`]: a new
    /// request waits for them, so that a panic there has taken the server
    /// down before it is served, however long the panic hook takes.
    pub(crate) dropping: AtomicUsize,
    pub(crate) offload: Offload,
    pub(crate) readiness: Option<Readiness>,
    /// The description every request is served with: the one the
    /// application's start-up returned, with its state (`RGI-LIFE-1`).
    /// Replaced only by [`Fault::StartupAfterFirstRequest`].
    pub(crate) server_info: Mutex<Arc<ServerInfo>>,
    /// The application's start-up was called and returned `Ok`: `stop`
    /// owes it its shut-down (`RGI-LIFE-3`).
    pub(crate) started: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("fault", &self.fault)
            .field("stopping", &self.is_stopping())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The state of a server with `fault`, whose offload and readiness
    /// services watch `stopping`.
    pub(crate) fn new(
        fault: Option<Fault>,
        stopping: Arc<AtomicBool>,
        offload: Offload,
        readiness: Option<Readiness>,
        server_info: ServerInfo,
    ) -> Self {
        Shared {
            fault,
            timeouts: TIMEOUTS,
            offload,
            readiness,
            server_info: Mutex::new(Arc::new(server_info)),
            started: AtomicBool::new(false),
            stopping,
            next_conn: AtomicU64::new(1),
            conns: Mutex::default(),
            streams: Mutex::default(),
            threads: Mutex::default(),
            serial: Mutex::default(),
            dropping: AtomicUsize::new(0),
        }
    }

    /// Waits (a bounded time) for the drops that
    /// [`Fault::PanicInDropKillsServer`] watches, then says whether the
    /// server is still alive.
    pub(crate) fn alive_after_drops(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.dropping.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        !self.is_stopping()
    }

    /// The description the next request is served with.
    pub(crate) fn server_info(&self) -> Arc<ServerInfo> {
        Arc::clone(&lock(&self.server_info))
    }

    /// Whether `stop` has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stops accepting connections (what the faults that let a panic take
    /// the server down do); `stop` still cleans up.
    pub(crate) fn kill(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// [`Shared::kill`], and also shuts down the connections accepted
    /// since `since`: the server died then, even if noticing it took a
    /// moment (the panic hook prints first).
    pub(crate) fn kill_since(&self, since: Instant) {
        self.kill();
        for registered in lock(&self.conns).values() {
            if registered.accepted >= since {
                registered.conn.shutdown();
            }
        }
    }

    /// Keeps `value` for the rest of the process: what
    /// [`Fault::StopLeavesParkedBodies`] does to the bodies it should drop.
    pub(crate) fn keep(value: Box<dyn std::any::Any + Send>) {
        static KEPT: Mutex<Vec<Box<dyn std::any::Any + Send>>> = Mutex::new(Vec::new());
        lock(&KEPT).push(value);
    }

    /// Remembers a helper thread, so that `stop` can wait for it.
    pub(crate) fn track(&self, handle: JoinHandle<()>) {
        let mut threads = lock(&self.threads);
        threads.retain(|thread| !thread.is_finished());
        threads.push(handle);
    }

    /// Remembers an upgraded connection's stream, so that `stop` can shut
    /// it down even after its request has ended.
    pub(crate) fn track_stream(&self, stream: &Arc<dyn Closable>) {
        let mut streams = lock(&self.streams);
        streams.retain(|stream| stream.strong_count() > 0);
        streams.push(Arc::downgrade(stream));
    }

    /// The cancel flag of a connection.
    pub(crate) fn cancel_of(&self, id: u64) -> Option<Arc<Cancel>> {
        lock(&self.conns)
            .get(&id)
            .map(|registered| Arc::clone(&registered.cancel))
    }
}
