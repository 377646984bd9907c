//! The listener, the accept thread, the registry of open connections and
//! helper threads, and stopping.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rgi::BoxError;

use super::Fault;
use super::caps;
use super::conn::Conn;
use super::serve::{self, Service};
use super::shared::{Cancel, Closable, Registered, Shared, lock};

/// Binds 127.0.0.1:0 and starts the accept thread.
pub(crate) fn start(service: Arc<dyn Service>, fault: Option<Fault>) -> io::Result<ToyHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let offload = caps::offload(fault, &stopping);
    let readiness = caps::readiness(fault, &stopping)?;
    let shared = Arc::new(Shared::new(fault, stopping, offload, readiness));
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
