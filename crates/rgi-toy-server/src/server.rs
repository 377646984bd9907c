//! The listener, the accept thread, the registry of open connections and
//! helper threads, and stopping.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rgi::BoxError;
use rgi_async::{Offload, Readiness};

use super::Fault;
use super::caps;
use super::conn::{Conn, lock};
use super::serve::{self, Service};
use super::upgrade::StreamShared;

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
}

/// The documented limits of the toy (see the module documentation).
pub(crate) const TIMEOUTS: Timeouts = Timeouts {
    write: Duration::from_secs(10),
    drain: Duration::from_secs(2),
    linger: Duration::from_millis(500),
    stop: Duration::from_secs(5),
};

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

/// The open connections, by number, with their cancel flags.
type Registry = HashMap<u64, (Arc<Conn>, Arc<Cancel>)>;

/// What the accept thread, the connections and `stop` share.
pub(crate) struct Shared {
    pub(crate) fault: Option<Fault>,
    pub(crate) timeouts: Timeouts,
    /// Shared with the offload and readiness services, which refuse or
    /// clean up once `stop` has begun.
    stopping: Arc<AtomicBool>,
    next_conn: AtomicU64,
    conns: Mutex<Registry>,
    streams: Mutex<Vec<Weak<StreamShared>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Held while serving a request under [`Fault::OneRequestAtATime`].
    pub(crate) serial: Mutex<()>,
    /// Bodies being dropped under [`Fault::PanicInDropKillsServer`]: a new
    /// request waits for them, so that a panic there has taken the server
    /// down before it is served, however long the panic hook takes.
    pub(crate) dropping: AtomicUsize,
    pub(crate) offload: Offload,
    pub(crate) readiness: Option<Readiness>,
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
    fn new(fault: Option<Fault>) -> io::Result<Self> {
        let stopping = Arc::new(AtomicBool::new(false));
        Ok(Shared {
            fault,
            timeouts: TIMEOUTS,
            offload: caps::offload(fault, &stopping),
            readiness: caps::readiness(fault, &stopping)?,
            stopping,
            next_conn: AtomicU64::new(1),
            conns: Mutex::default(),
            streams: Mutex::default(),
            threads: Mutex::default(),
            serial: Mutex::default(),
            dropping: AtomicUsize::new(0),
        })
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
        for (conn, _) in lock(&self.conns).values() {
            if conn.accepted >= since {
                conn.shutdown();
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
    pub(crate) fn track_stream(&self, stream: &Arc<StreamShared>) {
        let mut streams = lock(&self.streams);
        streams.retain(|stream| stream.strong_count() > 0);
        streams.push(Arc::downgrade(stream));
    }

    /// The cancel flag of a connection.
    pub(crate) fn cancel_of(&self, id: u64) -> Option<Arc<Cancel>> {
        lock(&self.conns)
            .get(&id)
            .map(|(_, cancel)| Arc::clone(cancel))
    }
}

/// Binds 127.0.0.1:0 and starts the accept thread.
pub(crate) fn start(service: Arc<dyn Service>, fault: Option<Fault>) -> io::Result<ToyHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(fault)?);
    let accept_shared = Arc::clone(&shared);
    let accept = thread::Builder::new()
        .name("toy-accept".into())
        .spawn(move || accept_loop(&listener, &accept_shared, &service))?;
    tracing::debug!(%addr, ?fault, "toy server listening");
    Ok(ToyHandle {
        addr,
        shared,
        accept: Some(accept),
    })
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, service: &Arc<dyn Service>) {
    for stream in listener.incoming() {
        if shared.is_stopping() {
            break;
        }
        match stream {
            Ok(stream) => {
                if let Err(err) = spawn_connection(stream, shared, service) {
                    tracing::warn!(error = %err, "toy server: could not start a connection");
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "toy server: accept failed");
                // Out of descriptors, say: give the others a moment.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    tracing::debug!("toy server: accept thread ends");
}

fn spawn_connection(
    stream: TcpStream,
    shared: &Arc<Shared>,
    service: &Arc<dyn Service>,
) -> io::Result<()> {
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    let conn = Arc::new(Conn::new(stream, id, Arc::clone(shared))?);
    let cancel = Arc::new(Cancel::default());
    lock(&shared.conns).insert(id, (Arc::clone(&conn), Arc::clone(&cancel)));
    let thread_shared = Arc::clone(shared);
    let service = Arc::clone(service);
    let handle = thread::Builder::new()
        .name(format!("toy-conn-{id}"))
        .spawn(move || {
            // The toy's own bugs must not take the server down either.
            let served =
                panic::catch_unwind(AssertUnwindSafe(|| serve::connection(&conn, &*service)));
            if served.is_err() {
                tracing::error!(conn = id, "toy server: connection thread panicked");
                conn.shutdown();
            }
            lock(&thread_shared.conns).remove(&id);
        });
    match handle {
        Ok(handle) => {
            shared.track(handle);
            Ok(())
        }
        Err(err) => {
            lock(&shared.conns).remove(&id);
            Err(err)
        }
    }
}

/// A running toy server: where it listens, and how to stop it.
///
/// Dropping it stops the server too (ignoring a failure to stop cleanly).
#[derive(Debug)]
pub struct ToyHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// Why [`ToyHandle::stop`] did not stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    /// Threads were still running when the time allowed for stopping ran
    /// out (an application that never returns, for example).
    #[error("{running} toy server thread(s) still running after {waited:?}")]
    ThreadsRunning {
        /// How many threads had not ended.
        running: usize,
        /// How long `stop` waited.
        waited: Duration,
    },
    /// A server thread panicked.
    #[error("a toy server thread panicked")]
    Panicked,
}

impl ToyHandle {
    /// Where the server listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server: closes the listener, shuts every open connection
    /// down (ending parked asynchronous bodies by dropping them), refuses
    /// new offload jobs and after-response tasks with their `ShutDown`
    /// errors, and waits a bounded time for its threads.
    ///
    /// # Errors
    ///
    /// [`StopError`] if threads are still running when the time runs out
    /// or one of them panicked.
    pub fn stop(mut self) -> Result<(), StopError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StopError> {
        let Some(accept) = self.accept.take() else {
            return Ok(());
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The accept thread sleeps in accept(): a connection wakes it.
        let _woken = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let mut panicked = accept.join().is_err();
        let conns: Vec<_> = lock(&self.shared.conns).values().cloned().collect();
        if self.shared.fault != Some(Fault::StopLeavesConnectionsOpen) {
            for (conn, cancel) in conns {
                cancel.cancel();
                conn.shutdown();
            }
        }
        for stream in lock(&self.shared.streams).drain(..) {
            if let Some(stream) = stream.upgrade() {
                stream.shutdown();
            }
        }
        let started = Instant::now();
        let waited = self.shared.timeouts.stop;
        loop {
            let running = {
                let mut threads = lock(&self.shared.threads);
                let (done, running): (Vec<_>, Vec<_>) =
                    threads.drain(..).partition(JoinHandle::is_finished);
                *threads = running;
                for thread in done {
                    panicked |= thread.join().is_err();
                }
                threads.len()
            };
            if running == 0 {
                break;
            }
            if started.elapsed() > waited {
                return Err(StopError::ThreadsRunning { running, waited });
            }
            thread::sleep(Duration::from_millis(5));
        }
        if panicked {
            return Err(StopError::Panicked);
        }
        tracing::debug!(addr = %self.addr, "toy server stopped");
        Ok(())
    }
}

impl Drop for ToyHandle {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            tracing::warn!(error = %err, "toy server did not stop cleanly");
        }
    }
}

impl rgi_conformance::suite::RunningServer for ToyHandle {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(self: Box<Self>) -> Result<(), BoxError> {
        ToyHandle::stop(*self).map_err(BoxError::from)
    }
}
