//! Starting the threads, and the handle that stops them.

use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Poll, Waker};
use rgi::{Application, Concurrency, ServerInfo};

use crate::config::{Bind, Builder, Limits};
use crate::error::Error;
use crate::net::Listener;
use crate::poller::{Control, Job, Poller, WAKER};
use crate::worker::{self, Finished};

/// Where a running server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalAddr {
    /// A TCP address, with the port the OS chose for port 0.
    Tcp(SocketAddr),
    /// A Unix-domain socket path.
    Unix(PathBuf),
}

/// A running server. [`shutdown`](Server::shutdown) stops it gracefully;
/// dropping the handle stops it with no grace period.
#[derive(Debug)]
pub struct Server {
    local: LocalAddr,
    control: Arc<Control>,
    waker: Arc<Waker>,
    poller: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    unix_path: Option<PathBuf>,
}

impl Server {
    /// The address the server listens on.
    #[must_use]
    pub fn local_addr(&self) -> &LocalAddr {
        &self.local
    }

    /// The TCP address, if the server listens on TCP.
    #[must_use]
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match &self.local {
            LocalAddr::Tcp(address) => Some(*address),
            LocalAddr::Unix(_) => None,
        }
    }

    /// Stops accepting at once, closes idle connections, lets in-flight
    /// responses finish for up to `grace`, then shuts the sockets of those
    /// still running (their bodies are dropped when the application next
    /// pulls or writes, `[RGI-CONN-5]`) and joins every thread.
    ///
    /// An application that blocks forever on something other than its
    /// connection keeps its worker, and this call, waiting.
    pub fn shutdown(mut self, grace: Duration) {
        self.stop(grace);
    }

    /// Whether the poller still runs: it ends on a shutdown, or by itself
    /// when its poll fails.
    pub(crate) fn is_running(&self) -> bool {
        self.poller
            .as_ref()
            .is_some_and(|poller| !poller.is_finished())
    }

    fn stop(&mut self, grace: Duration) {
        {
            let mut stop = self
                .control
                .stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if stop.is_none() {
                *stop = Some(Instant::now() + grace);
            }
        }
        let _ = self.waker.wake();
        if let Some(poller) = self.poller.take() {
            if poller.join().is_err() {
                tracing::error!("the poller thread panicked");
            }
        }
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
        if let Some(path) = self.unix_path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.poller.is_some() {
            self.stop(Duration::ZERO);
        }
    }
}

impl Builder {
    /// Starts serving a synchronous application: binds, starts the poller
    /// and the worker pool, and returns at once.
    ///
    /// # Errors
    ///
    /// [`Error`] when the socket cannot be bound, a limit is zero, the
    /// server name is invalid, or a thread cannot start.
    pub fn serve_sync<A: Application>(self, app: A) -> Result<Server, Error> {
        self.limits.check()?;
        let (listener, local, unix_path) = bind(&self.bind)?;
        let (name, port) = match (&self.server_name, &local) {
            (Some(name), LocalAddr::Tcp(address)) => (name.clone(), address.port()),
            (None, LocalAddr::Tcp(address)) => (address.ip().to_string(), address.port()),
            (Some(name), LocalAddr::Unix(_)) => (name.clone(), 0),
            (None, LocalAddr::Unix(_)) => ("localhost".to_string(), 0),
        };
        let server =
            Arc::new(ServerInfo::new(name, port)?.with_concurrency(Concurrency::MULTITHREADED));

        let poll = Poll::new().map_err(Error::Poll)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(Error::Poll)?);
        let fd = listener.raw_fd();
        poll.registry()
            .register(
                &mut SourceFd(&fd),
                crate::poller::LISTENER,
                Interest::READABLE,
            )
            .map_err(Error::Poll)?;

        let control = Arc::new(Control::new());
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (ret_tx, ret_rx) = mpsc::channel::<Finished>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let app = Arc::new(app);
        let ids = Arc::new(AtomicU64::new(0));

        let mut workers = Vec::with_capacity(self.workers);
        for index in 0..self.workers {
            let pool = WorkerPool {
                app: Arc::clone(&app),
                jobs: Arc::clone(&job_rx),
                returns: ret_tx.clone(),
                waker: Arc::clone(&waker),
                control: Arc::clone(&control),
                limits: self.limits,
                ids: Arc::clone(&ids),
            };
            let handle = std::thread::Builder::new()
                .name(format!("rgi-simple-worker-{index}"))
                .spawn(move || pool.run())
                .map_err(Error::Thread)?;
            workers.push(handle);
        }
        drop(ret_tx);

        let poller = Poller {
            poll,
            listener: Some(listener),
            server,
            limits: self.limits,
            jobs: Some(job_tx),
            returns: ret_rx,
            control: Arc::clone(&control),
        };
        let poller = std::thread::Builder::new()
            .name("rgi-simple-poller".into())
            .spawn(move || poller.run())
            .map_err(Error::Thread)?;
        tracing::info!(address = ?local, workers = workers.len(), "rgi-simple-server listening");
        Ok(Server {
            local,
            control,
            waker,
            poller: Some(poller),
            workers,
            unix_path,
        })
    }
}

fn bind(bind: &Bind) -> Result<(Listener, LocalAddr, Option<PathBuf>), Error> {
    match bind {
        Bind::Tcp(address) => {
            let error = |source| Error::Bind {
                address: address.to_string(),
                source,
            };
            let listener = TcpListener::bind(address).map_err(error)?;
            listener.set_nonblocking(true).map_err(error)?;
            let local = listener.local_addr().map_err(error)?;
            Ok((Listener::Tcp(listener), LocalAddr::Tcp(local), None))
        }
        Bind::Unix(path) => {
            let error = |source| Error::Bind {
                address: path.display().to_string(),
                source,
            };
            let listener = UnixListener::bind(path).map_err(error)?;
            listener.set_nonblocking(true).map_err(error)?;
            Ok((
                Listener::Unix(listener),
                LocalAddr::Unix(path.clone()),
                Some(path.clone()),
            ))
        }
    }
}

/// One worker thread's share of the pool.
struct WorkerPool<A> {
    app: Arc<A>,
    jobs: Arc<Mutex<Receiver<Job>>>,
    returns: mpsc::Sender<Finished>,
    waker: Arc<Waker>,
    control: Arc<Control>,
    limits: Limits,
    ids: Arc<AtomicU64>,
}

impl<A: Application> WorkerPool<A> {
    fn run(self) {
        loop {
            let job = {
                let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
                jobs.recv()
            };
            let Ok(Job { conn, head }) = job else { return };
            let id = self.ids.fetch_add(1, Ordering::Relaxed);
            self.busy().insert(id, Arc::clone(&conn.stream));
            let finished = worker::serve(&*self.app, conn, *head, &self.limits);
            self.busy().remove(&id);
            if !finished.keep {
                let _ = finished.conn.stream.shutdown(Shutdown::Write);
            }
            let _ = self.returns.send(finished);
            self.control.in_flight.fetch_sub(1, Ordering::AcqRel);
            let _ = self.waker.wake();
        }
    }

    fn busy(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<crate::net::Stream>>> {
        self.control
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
