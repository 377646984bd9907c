//! Starting the threads, and the handle that stops them.

use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Poll, Waker};
use rgi::{Application, BoxError, Concurrency, Features, ServerInfo, Startup, StartupError};
use rgi_async::{AsyncApplication, Offload, Readiness};

use crate::async_driver::{AsyncDispatch, AsyncShared, CapabilityParts};
use crate::blocking::{BlockingPool, PoolOffload};
use crate::config::{Bind, Builder, Limits};
use crate::error::Error;
use crate::net::{Listener, SharedStream};
use crate::poller::{BusySlot, Control, Dispatch, Job, Poller, WAKER};
use crate::reactor::Reactor;
use crate::readiness::PollerReadiness;
use crate::worker::{self, Finished, Next};

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
    async_parts: Option<AsyncParts>,
    /// The application's shut-down, called once every thread has ended.
    lifespan: ShutdownHook,
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
    /// pulls or writes, `[RGI-CONN-5]`) and joins every thread. Then, once
    /// the last response has ended and its body has been dropped, it calls
    /// the application's `shutdown` once, on this thread, and logs a panic
    /// there (`[RGI-LIFE-3]`).
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
            self.control.stopping.store(true, Ordering::Release);
        }
        let _ = self.waker.wake();
        if let Some(poller) = self.poller.take() {
            if poller.join().is_err() {
                tracing::error!("the poller thread panicked");
            }
        }
        if let Some(mut parts) = self.async_parts.take() {
            // Bodies still alive are dropped on their threads, then the
            // blocking queue is dropped unrun (`[RGIA-OFFLOAD-9]`).
            parts.shared.close();
            for thread in parts.threads.drain(..) {
                if thread.join().is_err() {
                    tracing::error!("an async thread panicked");
                }
            }
            parts.blocking.close();
        }
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
        if let Some(path) = self.unix_path.take() {
            let _ = std::fs::remove_file(path);
        }
        // Every response has ended or been abandoned, and every body has
        // been dropped with its thread's work.
        self.lifespan.run();
    }
}

impl Drop for Server {
    /// Stops with no grace period; the application's `shutdown` still runs
    /// once the threads have ended.
    fn drop(&mut self) {
        if self.poller.is_some() || self.async_parts.is_some() {
            self.stop(Duration::ZERO);
        }
    }
}

/// The optional features of RGI 1.2 this server provides, declared in the
/// `ServerInfo` of every request (`[RGI-FEAT-1]`): request trailers on
/// chunked bodies, response trailers to HTTP/1.1 clients that send
/// `TE: trailers`, `103 Early Hints` on HTTP/1.1, and the lifespan calls.
pub(crate) const FEATURES: Features = Features::none()
    .with_request_trailers(true)
    .with_response_trailers(true)
    .with_early_hints(true)
    .with_lifespan(true);

/// The application's shut-down, owed once its start-up succeeded: run at
/// most once, by [`run`](ShutdownHook::run) or when dropped (a server that
/// started the application but then failed to start itself).
pub(crate) struct ShutdownHook(Option<Box<dyn FnOnce() + Send>>);

impl ShutdownHook {
    fn new(shutdown: impl FnOnce() + Send + 'static) -> Self {
        Self(Some(Box::new(shutdown)))
    }

    /// Calls the shut-down unless it ran already, containing and logging a
    /// panic (`[RGI-LIFE-3]`).
    pub(crate) fn run(&mut self) {
        let Some(shutdown) = self.0.take() else {
            return;
        };
        let began = Instant::now();
        match rgi::run_shutdown(shutdown) {
            Ok(()) => tracing::info!(took = ?began.elapsed(), "the application shut down"),
            Err(panic) => tracing::error!(%panic, "the application's shut-down panicked"),
        }
    }
}

impl Drop for ShutdownHook {
    fn drop(&mut self) {
        self.run();
    }
}

impl std::fmt::Debug for ShutdownHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHook")
            .field("owed", &self.0.is_some())
            .finish()
    }
}

/// Runs the application's start-up on a thread of its own (it may block)
/// and waits for it, at most `timeout` (`[RGI-LIFE-1]`, `[RGI-LIFE-2]`): the
/// `ServerInfo` with the state it stored, or why it failed. A start-up that
/// timed out is left to finish on its thread; its result is dropped.
fn start_up<F>(server: ServerInfo, timeout: Duration, startup: F) -> Result<ServerInfo, Error>
where
    F: FnOnce(&mut Startup<'_>) -> Result<(), BoxError> + Send + 'static,
{
    let (done, outcome) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("rgi-simple-startup".into())
        .spawn(move || {
            // Nobody listens any more after a timeout.
            let _ = done.send(rgi::run_startup(server, startup));
        })
        .map_err(Error::Thread)?;
    let began = Instant::now();
    let error = match outcome.recv_timeout(timeout) {
        Ok(Ok(server)) => {
            tracing::info!(took = ?began.elapsed(), "the application started");
            return Ok(server);
        }
        Ok(Err(error)) => error,
        Err(RecvTimeoutError::Timeout) => StartupError::TimedOut(timeout),
        // `run_startup` contains panics; only an aborting one ends the
        // thread without a word, and then the process with it.
        Err(RecvTimeoutError::Disconnected) => {
            StartupError::Panicked("the start-up thread ended without an outcome".into())
        }
    };
    tracing::error!(%error, "the application did not start; not serving");
    Err(Error::Startup(error))
}

/// What both kinds of server start from: the bound listener, the poll with
/// the listener registered, the shared state, and the started
/// application's shut-down.
struct Prepared {
    listener: Listener,
    local: LocalAddr,
    unix_path: Option<PathBuf>,
    server: Arc<ServerInfo>,
    poll: Poll,
    waker: Arc<Waker>,
    control: Arc<Control>,
    lifespan: ShutdownHook,
}

/// The async side of a server, stopped after the poller.
#[derive(Debug)]
struct AsyncParts {
    shared: Arc<AsyncShared>,
    blocking: Arc<BlockingPool>,
    threads: Vec<JoinHandle<()>>,
}

impl Builder {
    /// Binds (an address in use is reported before the application
    /// starts), starts the application, and sets up the poll. Nothing is
    /// accepted before the start-up has returned `Ok`; after it, a failure
    /// here or later calls the application's shut-down (the hook in the
    /// result, dropped).
    fn prepare<F, D>(&self, startup: F, shutdown: D) -> Result<Prepared, Error>
    where
        F: FnOnce(&mut Startup<'_>) -> Result<(), BoxError> + Send + 'static,
        D: FnOnce() + Send + 'static,
    {
        self.limits.check()?;
        let (listener, local, unix_path) = bind(&self.bind)?;
        let (name, port) = match (&self.server_name, &local) {
            (Some(name), LocalAddr::Tcp(address)) => (name.clone(), address.port()),
            (None, LocalAddr::Tcp(address)) => (address.ip().to_string(), address.port()),
            (Some(name), LocalAddr::Unix(_)) => (name.clone(), 0),
            (None, LocalAddr::Unix(_)) => ("localhost".to_string(), 0),
        };
        let server = ServerInfo::new(name, port)?
            .with_concurrency(Concurrency::MULTITHREADED)
            .with_features(FEATURES);
        let server = match start_up(server, self.startup_timeout, startup) {
            Ok(server) => Arc::new(server),
            Err(error) => {
                if let Some(path) = unix_path {
                    let _ = std::fs::remove_file(path);
                }
                return Err(error);
            }
        };
        let lifespan = ShutdownHook::new(shutdown);

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
        Ok(Prepared {
            listener,
            local,
            unix_path,
            server,
            poll,
            waker,
            control: Arc::new(Control::new()),
            lifespan,
        })
    }

    /// Starts serving a synchronous application: binds, runs the
    /// application's `startup` once and waits for it (at most
    /// [`startup_timeout`](Builder::startup_timeout)), then starts the
    /// poller and the worker pool and returns. Every request's
    /// `ServerInfo` holds the state the start-up stored, and declares the
    /// optional features this server provides (request and response
    /// trailers, early hints, lifespan). The application's `shutdown` runs
    /// when the server stops ([`Server::shutdown`]).
    ///
    /// # Errors
    ///
    /// [`Error`] when the socket cannot be bound, a limit is zero, the
    /// server name is invalid, or a thread cannot start;
    /// [`Error::Startup`] when the application's start-up fails, panics or
    /// times out (nothing is accepted, and `shutdown` is not called).
    pub fn serve_sync<A: Application>(self, app: A) -> Result<Server, Error> {
        let app = Arc::new(app);
        let (starting, stopping) = (Arc::clone(&app), Arc::clone(&app));
        let prepared = self.prepare(
            move |startup| starting.startup(startup),
            move || stopping.shutdown(),
        )?;
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (ret_tx, ret_rx) = mpsc::channel::<Finished>();

        let mut workers = Vec::with_capacity(self.workers);
        for index in 0..self.workers {
            let slot: BusySlot = Arc::new(Mutex::new(None));
            prepared
                .control
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(&slot));
            let pool = WorkerPool {
                app: Arc::clone(&app),
                jobs: Arc::clone(&job_rx),
                returns: ret_tx.clone(),
                waker: Arc::clone(&prepared.waker),
                control: Arc::clone(&prepared.control),
                limits: self.limits,
                slot,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("rgi-simple-worker-{index}"))
                .spawn(move || pool.run());
            match spawned {
                Ok(handle) => workers.push(handle),
                // The workers already started end when the sender drops.
                Err(error) => return Err(Error::Thread(error)),
            }
        }
        drop(ret_tx);
        self.launch(
            prepared,
            Box::new(JobSender(job_tx)),
            None,
            ret_rx,
            workers,
            None,
        )
    }

    /// Starts serving an asynchronous application, with no async runtime:
    /// binds, runs the application's `startup` once on a thread that is
    /// none of the loop's and waits for it (at most
    /// [`startup_timeout`](Builder::startup_timeout), `[RGIA-LIFE-1]`),
    /// then starts the poller, the async threads that call the application
    /// and poll its bodies, and the worker pool for its blocking work
    /// (offload, switch continuations, after-response tasks); returns once
    /// they run. The application's `shutdown` runs when the server stops
    /// ([`Server::shutdown`]), on the stopping thread.
    ///
    /// Each request gets a [`Capabilities`](rgi_async::Capabilities) value
    /// in its extensions with offload, readiness and after-response tasks,
    /// and no runtime: [`Capabilities::require_runtime`](rgi_async::Capabilities::require_runtime)
    /// refuses every runtime with `RuntimeError::NotDeclared`.
    ///
    /// # Errors
    ///
    /// [`Error`] when the socket cannot be bound, a limit is zero, the
    /// server name is invalid, or a thread cannot start;
    /// [`Error::Startup`] when the application's start-up fails, panics or
    /// times out (nothing is accepted, and `shutdown` is not called).
    pub fn serve_async<A: AsyncApplication>(self, app: A) -> Result<Server, Error> {
        let app = Arc::new(app);
        let (starting, stopping) = (Arc::clone(&app), Arc::clone(&app));
        let prepared = self.prepare(
            move |startup| starting.startup(startup),
            move || stopping.shutdown(),
        )?;
        let (ret_tx, ret_rx) = mpsc::channel::<Finished>();
        let registry = prepared.poll.registry().try_clone().map_err(Error::Poll)?;
        let reactor = Arc::new(Reactor::new(registry, Arc::clone(&prepared.waker)));
        let blocking = Arc::new(BlockingPool::new(self.blocking_queue));

        let mut workers = Vec::with_capacity(self.workers);
        for index in 0..self.workers {
            let pool = Arc::clone(&blocking);
            let handle = std::thread::Builder::new()
                .name(format!("rgi-simple-worker-{index}"))
                .spawn(move || pool.run_thread())
                .map_err(Error::Thread)?;
            workers.push(handle);
        }
        let shared = Arc::new(AsyncShared::new(
            Arc::clone(&reactor),
            Arc::clone(&blocking),
            ret_tx,
            Arc::clone(&prepared.waker),
            Arc::clone(&prepared.control),
            self.limits,
        ));
        let mut threads = Vec::with_capacity(self.async_threads);
        for index in 0..self.async_threads {
            let theirs = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("rgi-simple-async-{index}"))
                .spawn(move || theirs.run_thread());
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(error) => {
                    blocking.close();
                    shared.close();
                    return Err(Error::Thread(error));
                }
            }
        }
        let dispatch = AsyncDispatch {
            app,
            shared: Arc::clone(&shared),
            capabilities: CapabilityParts {
                offload: Offload::new(PoolOffload(Arc::clone(&blocking))),
                readiness: Readiness::new(PollerReadiness::new(Arc::clone(&reactor))),
            },
        };
        let parts = AsyncParts {
            shared,
            blocking,
            threads,
        };
        self.launch(
            prepared,
            Box::new(dispatch),
            Some(reactor),
            ret_rx,
            workers,
            Some(parts),
        )
    }

    fn launch(
        &self,
        prepared: Prepared,
        jobs: Box<dyn Dispatch>,
        reactor: Option<Arc<Reactor>>,
        returns: Receiver<Finished>,
        workers: Vec<JoinHandle<()>>,
        async_parts: Option<AsyncParts>,
    ) -> Result<Server, Error> {
        let Prepared {
            listener,
            local,
            unix_path,
            server,
            poll,
            waker,
            control,
            lifespan,
        } = prepared;
        let poller = Poller {
            poll,
            listener: Some(listener),
            server,
            limits: self.limits,
            jobs: Some(jobs),
            reactor,
            returns,
            control: Arc::clone(&control),
            unread: std::collections::HashSet::new(),
        };
        let mut handle = Server {
            local,
            control,
            waker,
            poller: None,
            workers,
            unix_path,
            async_parts,
            lifespan,
        };
        let poller = std::thread::Builder::new()
            .name("rgi-simple-poller".into())
            .spawn(move || poller.run())
            .map_err(Error::Thread)?;
        handle.poller = Some(poller);
        tracing::info!(address = ?handle.local, workers = handle.workers.len(), "rgi-simple-server listening");
        Ok(handle)
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

/// How many requests of one connection a worker serves in a row when each
/// next one is already there, before the connection goes back to the
/// poller and the worker to the queue: a pipelining client's burst of 16
/// costs one trip, and no connection keeps a worker for longer.
const IN_A_ROW: usize = 16;

/// The poller's end of the job channel. The workers share the receiver
/// behind a mutex: the one holding it waits in `recv`, which spins briefly
/// before it sleeps, so under load most jobs are taken without a sleep and
/// a wake-up. A condvar'd queue that slept at once was tried and measured
/// worse in (a) without strace: 2.9 futex calls and 0.8 context switches
/// per request against 1.1 and 0.25, and 27 against 17 us of CPU.
struct JobSender(mpsc::Sender<Job>);

impl Dispatch for JobSender {
    fn dispatch(&self, job: Job) -> bool {
        self.0.send(job).is_ok()
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
    /// The socket this worker serves, for the end of the grace period; its
    /// own lock, so workers never contend for it.
    slot: BusySlot,
}

impl<A: Application> WorkerPool<A> {
    fn run(self) {
        loop {
            let job = {
                let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
                jobs.recv()
            };
            // The poller dropped the sender: the server stops.
            let Ok(Job { mut conn, mut head }) = job else {
                return;
            };
            self.set_busy(Some(Arc::clone(&conn.stream)));
            let mut served = 1;
            let finished = loop {
                let mut finished = worker::serve(&*self.app, conn, *head, &self.limits);
                if !finished.keep
                    || served >= IN_A_ROW
                    || self.control.stopping.load(Ordering::Acquire)
                {
                    break finished;
                }
                // The next request is served here when it is already
                // there; otherwise the poller waits for it, holding no
                // worker.
                match worker::next_head(&mut finished.conn, &self.limits) {
                    Next::Head(next) => {
                        conn = finished.conn;
                        head = next;
                        served += 1;
                    }
                    Next::Poller => break finished,
                    Next::Closed => {
                        finished.keep = false;
                        break finished;
                    }
                }
            };
            self.set_busy(None);
            if !finished.keep {
                let _ = finished.conn.stream.shutdown(Shutdown::Write);
            }
            let _ = self.returns.send(finished);
            self.control.in_flight.fetch_sub(1, Ordering::AcqRel);
            let _ = self.waker.wake();
        }
    }

    fn set_busy(&self, stream: Option<SharedStream>) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = stream;
    }
}
