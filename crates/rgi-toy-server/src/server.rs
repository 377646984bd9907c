//! The listener, the accept thread, the registry of open connections and
//! helper threads, and stopping.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rgi::{BoxError, ServerInfo, StartupError};

use super::Fault;
use super::caps;
use super::conn::Conn;
use super::fault::acts;
use super::serve::{self, Service};
use super::shared::{Cancel, Closable, FEATURES, Registered, Shared, TIMEOUTS, lock};

/// Why the toy server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Binding the listener, or starting a thread, failed.
    #[error("the toy server could not start: {0}")]
    Io(#[from] io::Error),
    /// The application's start-up failed, panicked or did not finish
    /// within 10 s: the toy serves nothing and calls no shut-down
    /// (`RGI-LIFE-2`).
    #[error("the toy server did not start: {0}")]
    Startup(#[from] StartupError),
}

/// Binds 127.0.0.1:0, runs the application's start-up (`RGI-LIFE-1`),
/// and only then starts the accept thread.
pub(crate) fn start(
    service: Arc<dyn Service>,
    fault: Option<Fault>,
) -> Result<ToyHandle, StartError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let offload = caps::offload(fault, &stopping);
    let readiness = caps::readiness(fault, &stopping)?;
    let info = ServerInfo::new(addr.ip().to_string(), addr.port())
        .map_err(io::Error::other)?
        .with_features(FEATURES);
    let skips = acts(fault, Fault::SkipsStartup, service.is_async())
        || fault == Some(Fault::StartupAfterFirstRequest);
    let (info, started) = if skips {
        (info, false)
    } else {
        match run_startup(&service, info.clone(), TIMEOUTS.startup) {
            Ok(started) => (started, true),
            Err(error) if fault == Some(Fault::ServesAfterFailedStartup) => {
                // The fault: the failure is logged, and the toy serves anyway.
                tracing::error!(%error, "toy server: the application's start-up failed");
                (info, false)
            }
            Err(error) => {
                tracing::error!(%error, "toy server: the application's start-up failed; not serving");
                return Err(StartError::Startup(error));
            }
        }
    };
    let shared = Arc::new(Shared::new(fault, stopping, offload, readiness, info));
    shared.started.store(started, Ordering::SeqCst);
    let accept_shared = Arc::clone(&shared);
    let accept_service = Arc::clone(&service);
    let accept = thread::Builder::new()
        .name("toy-accept".into())
        .spawn(move || accept_loop(&listener, &accept_shared, &accept_service))?;
    tracing::debug!(%addr, ?fault, "toy server listening");
    Ok(ToyHandle {
        addr,
        shared,
        service,
        accept: Some(accept),
    })
}

/// Runs the application's start-up on a thread of its own, which may
/// block, and waits for it at most `limit`: a start-up still running then
/// is left to finish on its thread, and its result is ignored
/// (`RGI-LIFE-2`).
pub(crate) fn run_startup(
    service: &Arc<dyn Service>,
    info: ServerInfo,
    limit: Duration,
) -> Result<ServerInfo, StartupError> {
    let (done, outcome) = std::sync::mpsc::channel();
    let service = Arc::clone(service);
    thread::Builder::new()
        .name("toy-startup".into())
        .spawn(move || {
            let _ = done.send(rgi::run_startup(info, |startup| service.startup(startup)));
        })
        .map_err(|error| StartupError::Failed(error.into()))?;
    outcome
        .recv_timeout(limit)
        .unwrap_or(Err(StartupError::TimedOut(limit)))
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
    let registered = Registered {
        conn: Arc::clone(&conn) as Arc<dyn Closable>,
        accepted: conn.accepted,
        cancel: Arc::new(Cancel::default()),
    };
    lock(&shared.conns).insert(id, registered);
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
    service: Arc<dyn Service>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for dyn Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("async", &self.is_async())
            .finish_non_exhaustive()
    }
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
    /// errors, waits a bounded time for its threads, and then calls the
    /// application's shut-down once, on the calling thread, logging a
    /// panic there (`RGI-LIFE-3`).
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
        let conns: Vec<Registered> = lock(&self.shared.conns).values().cloned().collect();
        if self.shared.fault != Some(Fault::StopLeavesConnectionsOpen) {
            for registered in conns {
                registered.cancel.cancel();
                registered.conn.shutdown();
            }
        }
        for stream in lock(&self.shared.streams).drain(..) {
            if let Some(stream) = stream.upgrade() {
                stream.shutdown();
            }
        }
        let started = Instant::now();
        let waited = self.shared.timeouts.stop;
        let stopped = loop {
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
                break Ok(());
            }
            if started.elapsed() > waited {
                // The grace period is over: what still runs is abandoned.
                break Err(StopError::ThreadsRunning { running, waited });
            }
            thread::sleep(Duration::from_millis(5));
        };
        self.shut_down_application();
        stopped?;
        if panicked {
            return Err(StopError::Panicked);
        }
        tracing::debug!(addr = %self.addr, "toy server stopped");
        Ok(())
    }

    /// Calls the application's shut-down once, if its start-up was called
    /// and succeeded (`RGI-LIFE-3`).
    fn shut_down_application(&self) {
        if !self.shared.started.swap(false, Ordering::SeqCst) {
            return;
        }
        let calls = match self.shared.fault {
            Some(Fault::NoShutdown) => 0,
            Some(Fault::ShutdownTwice) => 2,
            _ => 1,
        };
        for _ in 0..calls {
            if let Err(panic) = rgi::run_shutdown(|| self.service.shutdown()) {
                tracing::error!(%panic, "toy server: the application's shut-down panicked");
            }
        }
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
