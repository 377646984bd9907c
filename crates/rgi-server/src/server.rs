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
use crate::proxy_protocol::TrustedProxies;
use crate::state::{Phase, Shared, Stats};
use crate::strict::RequestRules;
use crate::tls::{TlsConfig, TlsError};
use rgi_tower::caps::{HostCapabilities, Shutdown, TokioContext};
use rgi_tower::{AsyncService, Host, Pool, PoolConfig, PoolStats, SyncService};

/// How long the server waits, by default, for an application's start-up
/// before it gives up and does not serve: 30 seconds
/// ([`Builder::startup_timeout`], `[RGI-LIFE-5]`).
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the server waits, by default, for an application's shut-down
/// to return once it has called it: 30 seconds
/// ([`Builder::shutdown_timeout`]).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The optional features of RGI 1.2 this server provides, declared in the
/// `ServerInfo` of every application it serves (`[RGI-FEAT-1]`): request
/// and response trailers (hyper carries trailers frames on HTTP/2, and on
/// HTTP/1.1 to a client that sent `TE: trailers`) and lifespan. Not early
/// hints: hyper 1.x has no server API for a `103`, so the server cannot
/// send one and does not claim it (`[RGI-EARLY-4]`).
///
/// # Examples
///
/// ```
/// let features = rgi_server::FEATURES;
/// assert!(features.request_trailers() && features.response_trailers() && features.lifespan());
/// assert!(!features.early_hints());
/// ```
pub const FEATURES: rgi::Features = rgi::Features::none()
    .with_request_trailers(true)
    .with_response_trailers(true)
    .with_lifespan(true)
    .with_early_hints(false);

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
    /// The server's description (name and port) is not valid.
    #[error("invalid server description: {0}")]
    ServerInfo(#[from] rgi::EnvironError),
    /// The runtime cannot back the asynchronous capabilities.
    #[error("the runtime cannot back the capabilities: {0}")]
    Capabilities(#[from] rgi_tower::caps::ContextError),
    /// The application's start-up failed, panicked or outlasted the
    /// [start-up timeout](Builder::startup_timeout): the server accepted
    /// no connection, and does not call the application's shut-down
    /// (`[RGI-LIFE-2]`).
    #[error("not serving: {0}")]
    Startup(#[source] rgi::StartupError),
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
    UnixStd {
        listener: std::os::unix::net::UnixListener,
    },
}

/// Configures and starts a [`Server`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use http::StatusCode;
/// use rgi::{Environ, ResponseHead};
/// use rgi_server::{Http2Settings, Limits, Server};
///
/// # fn main() -> Result<(), rgi_server::ServeError> {
/// let app = rgi::from_fn(|_environ: Environ, start| {
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(rgi::from_iter(["hello\n"]))
/// });
/// let server = Server::builder()
///     .bind(([0, 0, 0, 0], 8080))
///     .bind_unix("/run/app/http.sock")
///     .workers(4)
///     .pool(rgi_server::PoolConfig { threads: 32, queue: 128, per_connection: 16 })
///     .limits(Limits::default().keep_alive_idle(Duration::from_secs(30)))
///     .http2(Http2Settings::default().max_concurrent_streams(200))
///     .handle_signals(true)
///     .serve_sync(app)?;
/// println!("{:?}", server.local_addrs());
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
    pool: PoolConfig,
    server_info: Option<rgi::ServerInfo>,
    trusted_proxies: Option<TrustedProxies>,
    shutdown_signal: Option<Shutdown>,
    startup_timeout: Duration,
    shutdown_timeout: Duration,
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
            .field("startup_timeout", &self.startup_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
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
            pool: PoolConfig::default(),
            server_info: None,
            trusted_proxies: None,
            shutdown_signal: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
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

    /// The blocking pool of a synchronous application (and of an
    /// asynchronous one's offload): threads, queue and per-connection share.
    ///
    /// The default, `PoolConfig::default()`, is 64 threads, a queue of 256
    /// and 32 jobs per connection: at most 320 blocking requests admitted
    /// at once, and no single HTTP/2 connection holding more than 32 of
    /// them. All threads start with the server (each reserves its stack,
    /// 2 MiB of address space, little of it resident). Size `threads` to
    /// the blocking calls you expect at once (a database pool of 20 wants
    /// about 20) and `queue` to the burst you would rather delay than
    /// refuse. When the pool is full a request is answered `503` with
    /// [`Limits::retry_after`]; a request never waits in an unbounded
    /// queue.
    #[must_use]
    pub fn pool(mut self, config: PoolConfig) -> Self {
        self.pool = config;
        self
    }

    /// The server's name and port as applications see them (the `Host`
    /// field normally decides the URL); default: the first listener's
    /// address, `localhost` for a wildcard or Unix socket. Its declared
    /// [`Features`](rgi::Features) are replaced by what this server
    /// provides ([`FEATURES`]), and its extensions are kept.
    #[must_use]
    pub fn server_info(mut self, info: rgi::ServerInfo) -> Self {
        self.server_info = Some(info);
        self
    }

    /// Peers (load balancers) whose TCP connections begin with a PROXY
    /// protocol header (v1 or v2), read before TLS; the addresses it
    /// declares become the connection's `Address::Proxied`. A trusted peer
    /// that sends no valid header is disconnected; other peers are served
    /// as they are.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = Some(proxies);
        self
    }

    /// The signal an asynchronous application's parked work (long-polls,
    /// after-response tasks) hears when a graceful shutdown begins, so that
    /// it can end within the grace period. Give the application a clone;
    /// the server triggers it as it stops accepting. Without one the server
    /// makes its own, which only the capabilities hear.
    #[must_use]
    pub fn shutdown_signal(mut self, signal: Shutdown) -> Self {
        self.shutdown_signal = Some(signal);
        self
    }

    /// How long [`serve_sync`](Self::serve_sync) and
    /// [`serve_async`](Self::serve_async) wait for the application's
    /// start-up (`Application::startup`, `AsyncApplication::startup`)
    /// before they give up: default [`DEFAULT_STARTUP_TIMEOUT`], 30 s
    /// (`[RGI-LIFE-5]`). The start-up runs once, on a thread of its own
    /// inside the server's runtime context (it may block, and may spawn
    /// tasks on the runtime), after the listeners are bound and before the
    /// first connection is accepted. When it has not returned in time the
    /// server does not serve: the call returns
    /// [`ServeError::Startup`] with [`rgi::StartupError::TimedOut`], and
    /// the start-up is left to finish on its thread, its result ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rgi_server::{ServeError, Server};
    ///
    /// let slow = rgi::with_lifespan(
    ///     rgi::from_fn(|_environ, start| {
    ///         start.start(rgi::ResponseHead::new(http::StatusCode::NO_CONTENT))?;
    ///         Ok(bytes::Bytes::new())
    ///     }),
    ///     |_startup| {
    ///         std::thread::sleep(Duration::from_secs(2)); // a database that does not answer
    ///         Ok(())
    ///     },
    ///     || {},
    /// );
    /// let refused = Server::builder()
    ///     .bind(([127, 0, 0, 1], 0))
    ///     .startup_timeout(Duration::from_millis(50))
    ///     .serve_sync(slow);
    /// assert!(matches!(refused, Err(ServeError::Startup(rgi::StartupError::TimedOut(_)))));
    /// ```
    #[must_use]
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// How long a graceful shutdown waits for the application's shut-down
    /// (`Application::shutdown`, `AsyncApplication::shutdown`) to return:
    /// default [`DEFAULT_SHUTDOWN_TIMEOUT`], 30 s. The server calls it
    /// once, on a blocking thread, as soon as the last response has ended
    /// and its body was dropped, and no later than the end of the
    /// [grace period](Limits::shutdown_grace); this timeout counts from
    /// that call. A shut-down that outlasts it is left running, and the
    /// server stops without it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    /// use rgi_server::Server;
    ///
    /// let flushed = Arc::new(AtomicBool::new(false));
    /// let flag = Arc::clone(&flushed);
    /// let app = rgi::with_lifespan(
    ///     rgi::from_fn(|_environ, start| {
    ///         start.start(rgi::ResponseHead::new(http::StatusCode::NO_CONTENT))?;
    ///         Ok(bytes::Bytes::new())
    ///     }),
    ///     |_startup| Ok(()),
    ///     move || flag.store(true, Ordering::SeqCst), // flush what is buffered
    /// );
    /// let server = Server::builder()
    ///     .bind(([127, 0, 0, 1], 0))
    ///     .shutdown_timeout(Duration::from_secs(5))
    ///     .serve_sync(app)?;
    /// server.shutdown(); // graceful: the shut-down runs, once
    /// assert!(flushed.load(Ordering::SeqCst));
    /// # Ok::<(), rgi_server::ServeError>(())
    /// ```
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Serves an already bound Unix domain listener (one inherited through
    /// systemd socket activation, say: see [`crate::listen_fds`]). Its
    /// socket file stays at shutdown: whoever bound it owns it (systemd
    /// keeps accepting on it while the service restarts).
    #[must_use]
    pub fn unix_listener(mut self, listener: std::os::unix::net::UnixListener) -> Self {
        self.listeners.push(ListenerSpec::UnixStd { listener });
        self
    }

    /// Serves every listener a service manager passed to this process
    /// (systemd socket activation: see [`crate::listen_fds`]), TCP ones
    /// without TLS and Unix ones as [`unix_listener`](Self::unix_listener)
    /// does. For TLS on an inherited socket, take it with
    /// [`InheritedListener::into_tcp`](crate::listen_fds::InheritedListener::into_tcp)
    /// and hand it to [`listener`](Self::listener) instead.
    ///
    /// # Errors
    ///
    /// A [`ListenFdsError`](crate::listen_fds::ListenFdsError) for an
    /// inherited descriptor that is neither a TCP nor a Unix stream
    /// listener, or that cannot be made non-blocking; the builder is lost
    /// with it (the descriptors are closed), since serving only some of the
    /// sockets the service manager opened would leave the rest unanswered.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rgi_server::listen_fds::ListenFds;
    /// use rgi_server::Server;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let app = rgi::from_fn(|_environ, start| {
    ///     start.start(rgi::ResponseHead::new(http::StatusCode::NO_CONTENT))?;
    ///     Ok(bytes::Bytes::new())
    /// });
    /// let mut builder = Server::builder();
    /// builder = match ListenFds::take()? {
    ///     Some(inherited) => builder.inherited(inherited)?,
    ///     None => builder.bind(([127, 0, 0, 1], 8080)),
    /// };
    /// builder.serve_sync(app)?.wait();
    /// # Ok(()) }
    /// ```
    #[cfg(target_os = "linux")]
    pub fn inherited(
        mut self,
        listeners: crate::listen_fds::ListenFds,
    ) -> Result<Self, crate::listen_fds::ListenFdsError> {
        use crate::listen_fds::ListenerKind;
        for listener in listeners {
            self = match listener.kind()? {
                ListenerKind::Tcp => self.listener(listener.into_tcp()?, None),
                ListenerKind::Unix => self.unix_listener(listener.into_unix()?),
            };
        }
        Ok(self)
    }

    fn hyper_builders(&self) -> (http1::Builder, http2::Builder<TokioExecutor>) {
        let limits = &self.limits;
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            // The head and idle timers live in the connection's I/O, which
            // can answer 408 to a partial head (hyper's timer closes silently).
            .header_read_timeout(None)
            .keep_alive(true)
            // A client that ends its sending side after its request (`nc -N`,
            // a test harness's `shutdown(SHUT_WR)`) still reads its response:
            // with `false`, hyper takes the end of input for a vanished client
            // and drops any response not ready at that moment. A client that
            // has really gone is noticed when a write fails.
            .half_close(true)
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

    /// Binds every listener and starts serving `factory`'s services on a
    /// new multi-thread runtime.
    ///
    /// # Errors
    ///
    /// [`ServeError::NoListener`] without a listener, [`ServeError::Bind`]
    /// when one cannot be bound, [`ServeError::Runtime`] when the runtime
    /// cannot start, [`ServeError::Tls`] for a TLS configuration rustls refuses.
    pub fn serve<F: ServiceFactory>(self, factory: F) -> Result<Server, ServeError> {
        self.serve_with(|_, _| Ok((factory, None, None)))
    }

    /// Serves a synchronous RGI application: blocking ones on the pool,
    /// ones that declare they never block inline on the runtime (see
    /// `rgi_tower::SyncService` for the dispatch from hints).
    ///
    /// Before the first connection is accepted it runs the application's
    /// [`startup`](rgi::Application::startup) once (see
    /// [`startup_timeout`](Self::startup_timeout)), and every request's
    /// environ carries the `ServerInfo` it returned, with the state the
    /// application stored (`[RGI-LIFE-1]`); after a graceful shutdown it
    /// calls [`shutdown`](rgi::Application::shutdown) once
    /// (`[RGI-LIFE-3]`).
    ///
    /// # Errors
    ///
    /// As [`serve`](Self::serve), [`ServeError::ServerInfo`] when the
    /// default server description is not valid, and
    /// [`ServeError::Startup`] when the start-up failed, panicked or timed
    /// out: no connection was accepted, and the listeners are closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi_server::{ServeError, Server};
    ///
    /// let app = rgi::with_lifespan(
    ///     rgi::from_fn(|_environ, start| {
    ///         start.start(rgi::ResponseHead::new(http::StatusCode::NO_CONTENT))?;
    ///         Ok(bytes::Bytes::new())
    ///     }),
    ///     |_startup| Err("the database refused the connection".into()),
    ///     || unreachable!("no shut-down after a failed start-up"),
    /// );
    /// match Server::builder().bind(([127, 0, 0, 1], 0)).serve_sync(app) {
    ///     Err(ServeError::Startup(rgi::StartupError::Failed(cause))) => {
    ///         assert_eq!(cause.to_string(), "the database refused the connection");
    ///     }
    ///     other => panic!("served anyway: {other:?}"),
    /// }
    /// ```
    pub fn serve_sync<A: rgi::Application>(self, app: A) -> Result<Server, ServeError> {
        let app = Arc::new(app);
        self.serve_with(|builder, addresses| {
            let starting = Arc::clone(&app);
            let (host, hosted) = builder.host(addresses, false, move |startup| {
                rgi::Application::startup(&*starting, startup)
            })?;
            let stopping = Arc::clone(&app);
            let hook = builder.shutdown_hook(move || rgi::Application::shutdown(&*stopping));
            Ok((SyncService::from_arc(app, host), Some(hosted), Some(hook)))
        })
    }

    /// Serves an asynchronous RGI application, lending it the capabilities
    /// this server backs (offload on the pool, the tokio runtime context,
    /// readiness on tokio's reactor).
    ///
    /// The application's [`startup`](rgi_async::AsyncApplication::startup)
    /// and [`shutdown`](rgi_async::AsyncApplication::shutdown) run as for
    /// [`serve_sync`](Self::serve_sync), off the runtime's worker threads
    /// (`[RGIA-LIFE-1]`).
    ///
    /// # Errors
    ///
    /// As [`serve_sync`](Self::serve_sync), and
    /// [`ServeError::Capabilities`] when the runtime cannot back them.
    pub fn serve_async<A: rgi_async::AsyncApplication>(self, app: A) -> Result<Server, ServeError> {
        let app = Arc::new(app);
        self.serve_with(|builder, addresses| {
            let starting = Arc::clone(&app);
            let (host, hosted) = builder.host(addresses, true, move |startup| {
                rgi_async::AsyncApplication::startup(&*starting, startup)
            })?;
            let stopping = Arc::clone(&app);
            let hook =
                builder.shutdown_hook(move || rgi_async::AsyncApplication::shutdown(&*stopping));
            Ok((AsyncService::from_arc(app, host), Some(hosted), Some(hook)))
        })
    }

    fn shutdown_hook(&self, hook: impl FnOnce() + Send + 'static) -> ShutdownHook {
        ShutdownHook {
            hook: Box::new(hook),
            timeout: self.shutdown_timeout,
        }
    }

    /// The host `rgi-tower` serves applications with, described by the
    /// `ServerInfo` the application's start-up returned; runs inside the
    /// server's runtime (the capabilities bind to it).
    fn host(
        &self,
        addresses: &[ListenAddr],
        capabilities: bool,
        startup: impl FnOnce(&mut rgi::Startup<'_>) -> Result<(), rgi::BoxError> + Send + 'static,
    ) -> Result<(Host, Hosted), ServeError> {
        let info = match &self.server_info {
            Some(info) => info.clone(),
            None => default_server_info(addresses)?,
        };
        let info = start_up(info.with_features(FEATURES), self.startup_timeout, startup)
            .map_err(ServeError::Startup)?;
        let mut host = Host::builder(info)
            .pool(self.pool)
            .max_body(self.limits.max_body_bytes)
            .body_timeout(Some(self.limits.body_stall_timeout))
            .pre_read_limit(self.limits.max_pre_read_bytes)
            .retry_after(retry_after_value(self.limits.retry_after));
        let capabilities = if capabilities {
            let mut capabilities = HostCapabilities::builder(TokioContext::current()?);
            if let Some(signal) = &self.shutdown_signal {
                capabilities = capabilities.shutdown(signal.clone());
            }
            let capabilities = capabilities.build();
            host = host.tokio_capabilities(capabilities.clone());
            Some(capabilities)
        } else {
            None
        };
        let host = host.build();
        let hosted = Hosted {
            pool: host.pool().clone(),
            capabilities,
        };
        Ok((host, hosted))
    }

    fn serve_with<F: ServiceFactory>(
        mut self,
        make: impl FnOnce(&Self, &[ListenAddr]) -> Result<Made<F>, ServeError>,
    ) -> Result<Server, ServeError> {
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
        let listeners = std::mem::take(&mut self.listeners);
        let mut bound = Vec::with_capacity(listeners.len());
        let mut addresses = Vec::with_capacity(listeners.len());
        let made = {
            let _entered = runtime.enter();
            for spec in listeners {
                let (listener, address) = bind(spec, self.backlog, self.reuse_port)?;
                bound.push(listener);
                addresses.push(address);
            }
            make(&self, &addresses)
        };
        let (factory, hosted, shutdown_hook) = match made {
            Ok(made) => made,
            Err(error) => {
                // Nothing was accepted; the bound listeners close as they
                // drop. Tasks a failed start-up may have spawned are not
                // waited for.
                drop(bound);
                runtime.shutdown_background();
                return Err(error);
            }
        };
        let limits = self.limits;
        let rules = RequestRules::new()
            .max_target_len(limits.max_target_bytes)
            .max_header_section(limits.max_header_bytes, limits.max_headers)
            .extended_connect(self.http2.enable_connect_protocol);
        let context = Arc::new(ConnContext {
            factory,
            http1: h1,
            http2: h2,
            h2_idle: self.http2.idle_timeout,
            limits,
            shared: Arc::clone(&shared),
            rules,
            trusted_proxies: self.trusted_proxies,
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
        runtime.spawn(supervise(
            Arc::clone(&shared),
            hosted.clone(),
            shutdown_hook,
            done_sender,
        ));
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
            hosted,
        })
    }
}

/// What a factory maker gives `serve_with`: the factory, the host's pool
/// and capabilities, and the application's shut-down.
type Made<F> = (F, Option<Hosted>, Option<ShutdownHook>);

/// What a served application's host keeps running beside the connections.
#[derive(Debug, Clone)]
struct Hosted {
    pool: Pool,
    capabilities: Option<HostCapabilities>,
}

/// Runs an application's start-up once, on a thread of its own that has
/// the server's runtime context, and waits for it at most `timeout`
/// (`[RGI-LIFE-1]`, `[RGI-LIFE-2]`, `[RGIA-LIFE-1]`). The caller is the
/// thread that builds the server, before any accept loop runs.
fn start_up(
    info: rgi::ServerInfo,
    timeout: Duration,
    startup: impl FnOnce(&mut rgi::Startup<'_>) -> Result<(), rgi::BoxError> + Send + 'static,
) -> Result<rgi::ServerInfo, rgi::StartupError> {
    let runtime = tokio::runtime::Handle::try_current().ok();
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    let began = std::time::Instant::now();
    let spawned = std::thread::Builder::new()
        .name("rgi-startup".to_owned())
        .spawn(move || {
            let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
            let outcome = rgi::run_startup(info, startup);
            // Nobody listens once the server gave up waiting: the result of
            // a start-up that timed out is ignored.
            let _ = sender.send(outcome);
        });
    if let Err(error) = spawned {
        return Err(rgi::StartupError::Failed(
            format!("cannot start the start-up thread: {error}").into(),
        ));
    }
    let outcome = match receiver.recv_timeout(timeout) {
        Ok(outcome) => outcome,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            Err(rgi::StartupError::TimedOut(timeout))
        }
        // `run_startup` catches the application's panics; only a thread
        // that died some other way ends here.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(rgi::StartupError::Panicked(
            "the start-up thread ended without a result".to_owned(),
        )),
    };
    match &outcome {
        Ok(_) => tracing::info!(
            duration_ms = crate::millis(began.elapsed()),
            "the application started"
        ),
        Err(error) => tracing::error!(%error, "the application's start-up failed; not serving"),
    }
    outcome
}

/// The application's shut-down, run once after a graceful stop.
struct ShutdownHook {
    hook: Box<dyn FnOnce() + Send>,
    /// How long the server waits for it to return.
    timeout: Duration,
}

impl ShutdownHook {
    /// Calls the shut-down on a blocking thread and waits for it, at most
    /// its timeout; a panic there is caught and logged (`[RGI-LIFE-3]`).
    async fn run(self) {
        let ShutdownHook { hook, timeout } = self;
        let began = tokio::time::Instant::now();
        let called = tokio::task::spawn_blocking(move || rgi::run_shutdown(hook));
        match tokio::time::timeout(timeout, called).await {
            Ok(Ok(Ok(()))) => tracing::info!(
                duration_ms = crate::millis(began.elapsed()),
                "the application shut down"
            ),
            Ok(Ok(Err(panic))) => {
                tracing::error!(%panic, "the application's shut-down panicked");
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "the application's shut-down could not run");
            }
            Err(_) => tracing::warn!(
                timeout_ms = crate::millis(timeout),
                "the application's shut-down did not return in time; stopping without it"
            ),
        }
    }
}

fn default_server_info(addresses: &[ListenAddr]) -> Result<rgi::ServerInfo, rgi::EnvironError> {
    let first_tcp = addresses.iter().find_map(|address| match address {
        ListenAddr::Tcp(address) | ListenAddr::Tls(address) => Some(*address),
        ListenAddr::Unix(_) => None,
    });
    match first_tcp {
        Some(address) if !address.ip().is_unspecified() => {
            rgi::ServerInfo::new(address.ip().to_string(), address.port())
        }
        Some(address) => rgi::ServerInfo::new("localhost", address.port()),
        None => rgi::ServerInfo::new("localhost", 80),
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
        ListenerSpec::UnixStd { listener } => {
            let path = listener
                .local_addr()
                .ok()
                .and_then(|address| address.as_pathname().map(PathBuf::from))
                .unwrap_or_default();
            let name = path.display().to_string();
            let listener = listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixListener::from_std(listener))
                .map_err(bind_error(name))?;
            Ok((
                Bound::Unix {
                    listener,
                    path: path.clone(),
                    remove_at_shutdown: false,
                },
                ListenAddr::Unix(path),
            ))
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
                    remove_at_shutdown: true,
                },
                ListenAddr::Unix(path),
            ))
        }
    }
}

/// A delay as `Retry-After` seconds: whole, rounded up, at least one (a
/// `0` would invite the client straight back into the full pool).
fn retry_after_value(delay: Duration) -> http::HeaderValue {
    let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    http::HeaderValue::from(seconds.max(1))
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
/// the grace period, then cuts off the rest; then calls the application's
/// shut-down, once.
async fn supervise(
    shared: Arc<Shared>,
    hosted: Option<Hosted>,
    shutdown_hook: Option<ShutdownHook>,
    done: watch::Sender<bool>,
) {
    let mut phase = shared.phase.subscribe();
    // A graceful stop drains first; a server dropped without one goes
    // straight to `Closing`, and its application gets no shut-down call
    // (`[RGI-LIFE-3]`: the call follows a graceful stop only). The runtime
    // is being torn down then, and this task may or may not get this far.
    let began = phase
        .wait_for(|phase| *phase >= Phase::Draining)
        .await
        .map(|phase| *phase)
        .ok();
    if began != Some(Phase::Draining) {
        return;
    }
    let grace = shared.grace;
    let started = tokio::time::Instant::now();
    // Parked long-polls and after-response tasks hear it first, so that
    // they can end within the grace period too.
    if let Some(capabilities) = hosted
        .as_ref()
        .and_then(|hosted| hosted.capabilities.as_ref())
    {
        capabilities.shutdown().trigger();
    }
    tracing::info!(
        grace_ms = crate::millis(grace),
        open = shared.stats().open_connections,
        "shutting down"
    );
    // With a shut-down to call by the grace period's end, connections are
    // cut off a little before it: a cut-off body drops at its connection's
    // next poll, and the call must wait for that (`[RGI-LIFE-3]`).
    let reserve = if shutdown_hook.is_some() {
        (grace / 4).min(SHUTDOWN_RESERVE)
    } else {
        Duration::ZERO
    };
    let cut_off = grace - reserve;
    let drained = tokio::time::timeout(cut_off, connections_gone(&shared))
        .await
        .is_ok();
    if !drained {
        tracing::warn!(
            open = shared.stats().open_connections,
            "grace period over: cutting off the remaining connections"
        );
    }
    if let Some(after) = hosted
        .as_ref()
        .and_then(|hosted| hosted.capabilities.as_ref())
        .and_then(HostCapabilities::after_response)
    {
        let left = cut_off.saturating_sub(started.elapsed());
        let report = after.drain(left).await;
        tracing::debug!(?report, "after-response tasks drained");
    }
    shared.advance(Phase::Closing);
    if let Some(hosted) = &hosted {
        // Queued blocking jobs are dropped unrun; running ones finish.
        hosted.pool.shut_down();
    }
    if let Some(hook) = shutdown_hook {
        // After the application's last response ended and its body was
        // dropped (on a pool worker, for a blocking one), and no later
        // than the end of the grace period (`[RGI-LIFE-3]`).
        let left = grace.saturating_sub(started.elapsed());
        let idle = tokio::time::timeout(left, application_idle(&shared, hosted.as_ref())).await;
        if idle.is_err() {
            tracing::warn!(
                "grace period over: calling the application's shut-down with work still running"
            );
        }
        hook.run().await;
    }
    // Cut-off connections end at their next poll; an upgraded stream whose
    // owner never polls it again is not waited for beyond this.
    let _ = tokio::time::timeout(Duration::from_secs(1), connections_gone(&shared)).await;
    tracing::info!("shut down");
    let _ = done.send(true);
}

/// The most of the grace period kept, when the application has a shut-down
/// to call, between cutting off the connections still open and the period's
/// end: time for their bodies to drop before the call.
const SHUTDOWN_RESERVE: Duration = Duration::from_millis(100);

/// Resolves once no connection is open and the blocking pool runs and
/// holds no job of the application.
async fn application_idle(shared: &Shared, hosted: Option<&Hosted>) {
    connections_gone(shared).await;
    let Some(hosted) = hosted else {
        return;
    };
    // The pool's workers are threads of their own, with nothing to wait on
    // from here: looked at every few milliseconds, only while stopping.
    loop {
        let stats = hosted.pool.stats();
        if stats.running == 0 && stats.queued == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    hosted: Option<Hosted>,
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

    /// The blocking pool's counters (running, queued, rejected jobs), when
    /// the server serves an RGI application.
    #[must_use]
    pub fn pool_stats(&self) -> Option<PoolStats> {
        self.hosted.as_ref().map(|hosted| hosted.pool.stats())
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
