//! The builder, the running server and its shutdown handle.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{Semaphore, watch};

use crate::config::{Http1Settings, Http2Settings, Limits};
use crate::conn::ConnContext;
use crate::listen::{self, Bound, ListenAddr};
use crate::make::ServiceFactory;
use crate::state::{Phase, Shared, Stats};
use crate::tls::{TlsConfig, TlsError};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// No listener was configured.
    #[error("no listener configured")]
    NoListener,
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address or path asked for.
        address: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The runtime could not be started.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] io::Error),
    /// A TLS configuration was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

enum ListenerSpec {
    Tcp {
        address: SocketAddr,
        tls: Option<TlsConfig>,
    },
    TcpStd {
        listener: std::net::TcpListener,
        tls: Option<TlsConfig>,
    },
    Unix {
        path: PathBuf,
    },
}

/// Configures and starts a [`Server`].
///
/// # Examples
///
/// ```no_run
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use rgi_server::{Limits, Server};
/// # fn factory() -> impl rgi_server::ServiceFactory { |_info| unimplemented_service() }
/// # fn unimplemented_service() -> tower_util_free::S { tower_util_free::S }
/// # mod tower_util_free {
/// #   #[derive(Clone)] pub struct S;
/// #   impl tower_service::Service<http::Request<hyper::body::Incoming>> for S {
/// #     type Response = http::Response<http_body_util::Empty<bytes::Bytes>>;
/// #     type Error = std::convert::Infallible;
/// #     type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
/// #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> { std::task::Poll::Ready(Ok(())) }
/// #     fn call(&mut self, _: http::Request<hyper::body::Incoming>) -> Self::Future { std::future::ready(Ok(http::Response::new(http_body_util::Empty::new()))) }
/// #   }
/// # }
/// # fn main() -> Result<(), rgi_server::ServeError> {
/// let server = Server::builder()
///     .bind(([127, 0, 0, 1], 8080))
///     .workers(2)
///     .limits(Limits::default().keep_alive_idle(Duration::from_secs(30)))
///     .handle_signals(true)
///     .serve(factory())?;
/// server.wait();
/// # Ok(()) }
/// ```
pub struct Builder {
    listeners: Vec<ListenerSpec>,
    workers: Option<usize>,
    limits: Limits,
    http1: Http1Settings,
    http2: Http2Settings,
    signals: bool,
    backlog: i32,
    reuse_port: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Builder")
            .field("listeners", &self.listeners.len())
            .field("workers", &self.workers)
            .field("limits", &self.limits)
            .field("http1", &self.http1)
            .field("http2", &self.http2)
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            listeners: Vec::new(),
            workers: None,
            limits: Limits::default(),
            http1: Http1Settings::default(),
            http2: Http2Settings::default(),
            signals: false,
            backlog: 1024,
            reuse_port: false,
        }
    }
}

impl Builder {
    /// Listens on a TCP address (plain text: HTTP/1.1, or HTTP/2 with prior
    /// knowledge). Port 0 picks a free port; [`Server::local_addrs`] says which.
    #[must_use]
    pub fn bind(mut self, address: impl Into<SocketAddr>) -> Self {
        self.listeners.push(ListenerSpec::Tcp {
            address: address.into(),
            tls: None,
        });
        self
    }

    /// Listens on a TCP address with TLS (HTTP/1.1 or HTTP/2 by ALPN).
    #[must_use]
    pub fn bind_tls(mut self, address: impl Into<SocketAddr>, tls: TlsConfig) -> Self {
        self.listeners.push(ListenerSpec::Tcp {
            address: address.into(),
            tls: Some(tls),
        });
        self
    }

    /// Serves an already bound TCP listener (inherited from a supervisor, say),
    /// with TLS when `tls` is given.
    #[must_use]
    pub fn listener(mut self, listener: std::net::TcpListener, tls: Option<TlsConfig>) -> Self {
        self.listeners.push(ListenerSpec::TcpStd { listener, tls });
        self
    }

    /// Listens on a Unix domain socket at `path`. A stale socket file (one
    /// nothing accepts on) is replaced; the file is removed at shutdown.
    #[must_use]
    pub fn bind_unix(mut self, path: impl Into<PathBuf>) -> Self {
        self.listeners
            .push(ListenerSpec::Unix { path: path.into() });
        self
    }

    /// Runtime worker threads; default: one per CPU.
    #[must_use]
    pub fn workers(mut self, threads: usize) -> Self {
        self.workers = Some(threads.max(1));
        self
    }

    /// Limits and timeouts (see [`Limits`] for the defaults).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// HTTP/1.1 settings.
    #[must_use]
    pub fn http1(mut self, settings: Http1Settings) -> Self {
        self.http1 = settings;
        self
    }

    /// HTTP/2 settings (see [`Http2Settings`] for the defaults).
    #[must_use]
    pub fn http2(mut self, settings: Http2Settings) -> Self {
        self.http2 = settings;
        self
    }

    /// Shut down gracefully on SIGTERM and SIGINT. Off by default: a library
    /// does not take the process's signals unless asked.
    #[must_use]
    pub fn handle_signals(mut self, enabled: bool) -> Self {
        self.signals = enabled;
        self
    }

    /// The listen backlog of the TCP listeners this builder binds. Default 1024.
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self
    }

    /// Set `SO_REUSEPORT` on the TCP listeners this builder binds, so that
    /// several server processes can listen on one port and the kernel spreads
    /// connections among them (one process per core, restarts without a gap).
    #[must_use]
    pub fn reuse_port(mut self, enabled: bool) -> Self {
        self.reuse_port = enabled;
        self
    }

    fn hyper_builders(&self) -> (http1::Builder, http2::Builder<TokioExecutor>) {
        let limits = &self.limits;
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            // The head and idle timers live in the connection's I/O, which
            // can answer 408 to a partial head (hyper's timer closes silently).
            .header_read_timeout(None)
            .keep_alive(true)
            .half_close(false)
            .max_headers(limits.max_headers)
            .max_header_size(limits.max_header_bytes)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .pipeline_flush(self.http1.pipeline_flush);
        if let Some(writev) = self.http1.writev {
            h1.writev(writev);
        }
        let settings = &self.http2;
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(settings.max_concurrent_streams)
            .initial_stream_window_size(settings.initial_stream_window)
            .initial_connection_window_size(settings.initial_connection_window)
            .max_header_list_size(settings.max_header_list_size)
            .max_send_buf_size(settings.max_send_buffer)
            .keep_alive_interval(settings.keep_alive_interval)
            .keep_alive_timeout(settings.keep_alive_timeout)
            .max_pending_accept_reset_streams(settings.max_pending_reset_streams);
        if settings.enable_connect_protocol {
            h2.enable_connect_protocol();
        }
        (h1, h2)
    }

    /// Binds every listener and starts serving on a new multi-thread runtime.
    ///
    /// # Errors
    ///
    /// [`ServeError::NoListener`] without a listener, [`ServeError::Bind`]
    /// when one cannot be bound, [`ServeError::Runtime`] when the runtime
    /// cannot start, [`ServeError::Tls`] for a TLS configuration rustls refuses.
    pub fn serve<F: ServiceFactory>(self, factory: F) -> Result<Server, ServeError> {
        if self.listeners.is_empty() {
            return Err(ServeError::NoListener);
        }
        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        runtime.enable_all().thread_name("rgi-server");
        if let Some(workers) = self.workers {
            runtime.worker_threads(workers);
        }
        let runtime = runtime.build().map_err(ServeError::Runtime)?;
        let (h1, h2) = self.hyper_builders();
        let shared = Shared::new(self.limits.shutdown_grace);
        let permits = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
        let mut bound = Vec::with_capacity(self.listeners.len());
        let mut addresses = Vec::with_capacity(self.listeners.len());
        {
            let _entered = runtime.enter();
            for spec in self.listeners {
                let (listener, address) = bind(spec, self.backlog, self.reuse_port)?;
                bound.push(listener);
                addresses.push(address);
            }
        }
        let context = Arc::new(ConnContext {
            factory,
            http1: h1,
            http2: h2,
            h2_idle: self.http2.idle_timeout,
            limits: self.limits,
            shared: Arc::clone(&shared),
        });
        let (done_sender, done) = watch::channel(false);
        for listener in bound {
            runtime.spawn(listen::accept_loop(
                Arc::clone(&context),
                listener,
                Arc::clone(&permits),
            ));
        }
        drop(context);
        runtime.spawn(supervise(Arc::clone(&shared), done_sender));
        if self.signals {
            runtime.spawn(on_signals(Arc::clone(&shared)));
        }
        for address in &addresses {
            tracing::info!(?address, "listening");
        }
        let handle = ShutdownHandle { shared, done };
        Ok(Server {
            runtime: Some(runtime),
            addresses,
            handle,
        })
    }
}

fn bind(
    spec: ListenerSpec,
    backlog: i32,
    reuse_port: bool,
) -> Result<(Bound, ListenAddr), ServeError> {
    let bind_error = |address: String| move |source| ServeError::Bind { address, source };
    match spec {
        ListenerSpec::Tcp { address, tls } => {
            let listener = listen::bind_tcp(address, backlog, reuse_port)
                .map_err(bind_error(address.to_string()))?;
            tcp(listener, tls, &address.to_string())
        }
        ListenerSpec::TcpStd { listener, tls } => {
            let name = listener
                .local_addr()
                .map_or_else(|_| "an inherited listener".to_owned(), |a| a.to_string());
            listener
                .set_nonblocking(true)
                .map_err(bind_error(name.clone()))?;
            tcp(listener, tls, &name)
        }
        ListenerSpec::Unix { path } => {
            let name = path.display().to_string();
            let listener = listen::bind_unix(&path)
                .and_then(tokio::net::UnixListener::from_std)
                .map_err(bind_error(name))?;
            Ok((
                Bound::Unix {
                    listener,
                    path: path.clone(),
                },
                ListenAddr::Unix(path),
            ))
        }
    }
}

fn tcp(
    listener: std::net::TcpListener,
    tls: Option<TlsConfig>,
    name: &str,
) -> Result<(Bound, ListenAddr), ServeError> {
    let error = |source| ServeError::Bind {
        address: name.to_owned(),
        source,
    };
    let local = listener.local_addr().map_err(error)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(error)?;
    let acceptor = match tls {
        Some(tls) => Some(tokio_rustls::TlsAcceptor::from(tls.server_config()?)),
        None => None,
    };
    let address = if acceptor.is_some() {
        ListenAddr::Tls(local)
    } else {
        ListenAddr::Tcp(local)
    };
    Ok((
        Bound::Tcp {
            listener,
            local,
            tls: acceptor,
        },
        address,
    ))
}

/// Waits for shutdown to begin, then for the connections to finish within
/// the grace period, then cuts off the rest.
async fn supervise(shared: Arc<Shared>, done: watch::Sender<bool>) {
    let mut phase = shared.phase.subscribe();
    if phase
        .wait_for(|phase| *phase >= Phase::Draining)
        .await
        .is_err()
    {
        return;
    }
    let grace = shared.grace;
    tracing::info!(
        grace_ms = crate::millis(grace),
        open = shared.stats().open_connections,
        "shutting down"
    );
    let drained = tokio::time::timeout(grace, connections_gone(&shared))
        .await
        .is_ok();
    if !drained {
        tracing::warn!(
            open = shared.stats().open_connections,
            "grace period over: cutting off the remaining connections"
        );
    }
    shared.advance(Phase::Closing);
    // Cut-off connections end at their next poll; an upgraded stream whose
    // owner never polls it again is not waited for beyond this.
    let _ = tokio::time::timeout(Duration::from_secs(1), connections_gone(&shared)).await;
    tracing::info!("shut down");
    let _ = done.send(true);
}

async fn connections_gone(shared: &Shared) {
    loop {
        let ended = shared.connection_ended.notified();
        let mut ended = std::pin::pin!(ended);
        ended.as_mut().enable();
        if shared.stats().open_connections == 0 {
            return;
        }
        ended.await;
    }
}

async fn on_signals(shared: Arc<Shared>) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
    shared.advance(Phase::Draining);
}

/// Starts a graceful shutdown and tells when it is over; cheap to clone.
///
/// # Examples
///
/// ```no_run
/// # async fn stop(handle: rgi_server::ShutdownHandle) {
/// handle.shutdown();
/// handle.stopped().await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
    done: watch::Receiver<bool>,
}

impl ShutdownHandle {
    /// Stops accepting, lets in-flight responses finish within the grace
    /// period ([`Limits::shutdown_grace`]), then closes what is left.
    /// Returns at once; calling it again does nothing.
    pub fn shutdown(&self) {
        self.shared.advance(Phase::Draining);
    }

    /// Whether shutdown has begun.
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        *self.shared.phase.borrow() >= Phase::Draining
    }

    /// Resolves once shutdown is over (every connection closed, or cut off
    /// at the end of the grace period).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches.
    pub async fn stopped(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|done| *done).await;
    }

    /// The server's counters now.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }
}

/// A running server: its addresses, counters and shutdown.
///
/// Dropping it shuts down at once without a grace period; call
/// [`shutdown`](Self::shutdown) (or [`wait`](Self::wait) after a signal or a
/// [`ShutdownHandle`]) for a graceful end.
#[derive(Debug)]
pub struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    addresses: Vec<ListenAddr>,
    handle: ShutdownHandle,
}

impl Server {
    /// A builder with no listener and the default limits.
    #[must_use]
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Every address listened on, in the order the listeners were added.
    #[must_use]
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.addresses
    }

    /// The first TCP (or TLS) address listened on.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addresses.iter().find_map(|address| match address {
            ListenAddr::Tcp(address) | ListenAddr::Tls(address) => Some(*address),
            ListenAddr::Unix(_) => None,
        })
    }

    /// A handle to shut the server down from anywhere.
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// The server's counters now.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// A handle to the server's runtime, to spawn work beside it.
    #[must_use]
    pub fn runtime_handle(&self) -> Option<tokio::runtime::Handle> {
        self.runtime
            .as_ref()
            .map(|runtime| runtime.handle().clone())
    }

    /// Blocks until the server has shut down (after a signal, when enabled,
    /// or a [`ShutdownHandle::shutdown`]).
    ///
    /// # Panics
    ///
    /// When called from inside an asynchronous context (a tokio runtime's
    /// thread), as every blocking wait on a runtime does.
    pub fn wait(mut self) {
        if let Some(runtime) = self.runtime.take() {
            let handle = self.handle.clone();
            runtime.block_on(async move { handle.stopped().await });
            // Blocking threads still running an application's work are not
            // waited for beyond this.
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }

    /// Shuts down gracefully and blocks until it is over.
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    pub fn shutdown(self) {
        self.handle.shutdown();
        self.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            self.handle.shared.advance(Phase::Closing);
            runtime.shutdown_background();
        }
    }
}
