//! The builder, the limits and their documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The limits and timeouts of spec/rgi.md §12.2 (`[RGI-LIMIT-1]`): every
/// one finite and configurable.
///
/// | Limit | Default | Answer |
/// |---|---|---|
/// | `max_target` | 8 KiB | 414 URI Too Long |
/// | `max_head` (request line and fields) | 64 KiB | 431 |
/// | `max_fields` | 100 field lines | 431 |
/// | `max_body` | 64 MiB | 413 (declared), or a typed input error (chunked) |
/// | `head_timeout` | 30 s | 408 with a partial head, else a silent close |
/// | `idle_timeout` | 60 s | a silent close |
/// | `body_timeout` | 30 s without a body byte | a typed input error, then 408 |
///
/// `body_timeout` also bounds each blocking write of a response to a client
/// that does not read, and `drain_limit` (64 KiB) how much of an unread request
/// body is read and discarded to keep a connection; draining also gives up
/// once `body_timeout` has passed, and the connection is then closed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let limits = rgi_simple_server::Limits::default().with_max_body(1 << 20);
/// assert_eq!(limits.max_body, 1 << 20);
/// assert_eq!(limits.head_timeout, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest request target, in bytes.
    pub max_target: usize,
    /// Largest request head (request line and header section), in bytes.
    pub max_head: usize,
    /// Most field lines in a request head.
    pub max_fields: usize,
    /// Largest request body, in bytes.
    pub max_body: u64,
    /// Longest wait for a complete head once it began (or the connection opened).
    pub head_timeout: Duration,
    /// Longest wait for the first byte of a next request on a kept connection.
    pub idle_timeout: Duration,
    /// Longest wait for a body byte while the application reads, and for a
    /// client to take response bytes.
    pub body_timeout: Duration,
    /// Most bytes of an unread request body discarded to keep a connection.
    pub drain_limit: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_target: 8 * 1024,
            max_head: 64 * 1024,
            max_fields: 100,
            max_body: 64 * 1024 * 1024,
            head_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            drain_limit: 64 * 1024,
        }
    }
}

impl Limits {
    /// These limits with another target limit.
    #[must_use]
    pub fn with_max_target(mut self, bytes: usize) -> Self {
        self.max_target = bytes;
        self
    }

    /// These limits with another head size limit.
    #[must_use]
    pub fn with_max_head(mut self, bytes: usize) -> Self {
        self.max_head = bytes;
        self
    }

    /// These limits with another field count limit.
    #[must_use]
    pub fn with_max_fields(mut self, count: usize) -> Self {
        self.max_fields = count;
        self
    }

    /// These limits with another body limit.
    #[must_use]
    pub fn with_max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// These limits with another head-read timeout.
    #[must_use]
    pub fn with_head_timeout(mut self, timeout: Duration) -> Self {
        self.head_timeout = timeout;
        self
    }

    /// These limits with another idle keep-alive timeout.
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// These limits with another stalled-body (and stalled-write) timeout.
    #[must_use]
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// These limits with another drain limit for unread bodies.
    #[must_use]
    pub fn with_drain_limit(mut self, bytes: u64) -> Self {
        self.drain_limit = bytes;
        self
    }

    /// Refuses a zero limit: "finite" must not become "nothing passes".
    pub(crate) fn check(&self) -> Result<(), crate::error::Error> {
        let zero = [
            ("max_target", self.max_target == 0),
            ("max_head", self.max_head == 0),
            ("max_fields", self.max_fields == 0),
            ("head_timeout", self.head_timeout.is_zero()),
            ("idle_timeout", self.idle_timeout.is_zero()),
            ("body_timeout", self.body_timeout.is_zero()),
        ];
        match zero.iter().find(|(_, is_zero)| *is_zero) {
            Some((name, _)) => Err(crate::error::Error::ZeroLimit { name }),
            None => Ok(()),
        }
    }
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    /// A TCP address (port 0: the OS picks one).
    Tcp(SocketAddr),
    /// A Unix-domain socket path; an existing socket file there is an error.
    Unix(PathBuf),
}

/// Configures and starts a server.
///
/// # Examples
///
/// ```no_run
/// use bytes::Bytes;
/// use http::StatusCode;
/// use rgi::ResponseHead;
///
/// let app = rgi::from_fn(|_environ, start| {
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(Bytes::from_static(b"hello\n"))
/// });
/// let server = rgi_simple_server::Builder::new()
///     .bind("127.0.0.1:8080".parse()?)
///     .workers(8)
///     .serve_sync(app)?;
/// println!("listening on {:?}", server.local_addr());
/// server.shutdown(std::time::Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    pub(crate) bind: Bind,
    pub(crate) workers: usize,
    pub(crate) async_threads: usize,
    pub(crate) blocking_queue: usize,
    pub(crate) limits: Limits,
    pub(crate) server_name: Option<String>,
    pub(crate) startup_timeout: Duration,
}

/// How long [`Builder::serve_sync`] and [`Builder::serve_async`] wait for
/// the application's start-up by default (`[RGI-LIFE-5]`); change it with
/// [`Builder::startup_timeout`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(rgi_simple_server::DEFAULT_STARTUP_TIMEOUT, Duration::from_secs(30));
/// ```
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder for `127.0.0.1:8000`, twice as many workers as cores (at
    /// least 4), as many async threads as cores (at least 2), a blocking
    /// queue of 1,024 items, and the default [`Limits`].
    #[must_use]
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            bind: Bind::Tcp(SocketAddr::from(([127, 0, 0, 1], 8000))),
            workers: (cores * 2).max(4),
            async_threads: cores.max(2),
            blocking_queue: 1024,
            limits: Limits::default(),
            server_name: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }

    /// Listens on a TCP address; port 0 lets the OS choose
    /// ([`Server::local_addr`](crate::Server::local_addr) tells which).
    #[must_use]
    pub fn bind(mut self, address: SocketAddr) -> Self {
        self.bind = Bind::Tcp(address);
        self
    }

    /// Listens on a Unix-domain socket at `path`, which must not exist yet.
    #[must_use]
    pub fn bind_unix(mut self, path: impl Into<PathBuf>) -> Self {
        self.bind = Bind::Unix(path.into());
        self
    }

    /// The number of worker threads that run a synchronous application, or
    /// the blocking work of an asynchronous one (at least 1).
    #[must_use]
    pub fn workers(mut self, count: usize) -> Self {
        self.workers = count.max(1);
        self
    }

    /// The number of async threads that call asynchronous applications and
    /// poll their bodies (at least 1); only
    /// [`serve_async`](Builder::serve_async) starts them.
    #[must_use]
    pub fn async_threads(mut self, count: usize) -> Self {
        self.async_threads = count.max(1);
        self
    }

    /// How many items (offload jobs, switch continuations, after-response
    /// tasks) wait for a worker, beyond those running, before offload
    /// answers `Saturated` and a switch `503` (at least 1); only
    /// [`serve_async`](Builder::serve_async) uses it.
    #[must_use]
    pub fn blocking_queue(mut self, count: usize) -> Self {
        self.blocking_queue = count.max(1);
        self
    }

    /// The limits and timeouts.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The name `Environ::server_name` reports; by default the listener's IP
    /// address, or `localhost` on a Unix socket (`[RGI-ENV-5]`).
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// How long the application's start-up may take
    /// ([`DEFAULT_STARTUP_TIMEOUT`], 30 s, unless set; at least 1 ms).
    ///
    /// [`serve_sync`](Builder::serve_sync) and
    /// [`serve_async`](Builder::serve_async) bind the socket, then call the
    /// application's `startup` once on a thread of its own and wait for it
    /// before they accept anything; one that has not returned by then fails
    /// the call with [`Error::Startup`](crate::Error::Startup) holding
    /// `StartupError::TimedOut`, and is left to finish on its thread, its
    /// result ignored (`[RGI-LIFE-2]`, `[RGI-LIFE-5]`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use rgi_simple_server::{Builder, Error};
    ///
    /// let app = rgi::with_lifespan(
    ///     rgi::from_fn(|_environ, start| {
    ///         start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
    ///         Ok(bytes::Bytes::new())
    ///     }),
    ///     |_startup| {
    ///         std::thread::sleep(Duration::from_millis(500)); // a slow warm-up
    ///         Ok(())
    ///     },
    ///     || {},
    /// );
    /// let refused = Builder::new()
    ///     .bind("127.0.0.1:0".parse()?)
    ///     .startup_timeout(Duration::from_millis(50))
    ///     .serve_sync(app);
    /// assert!(matches!(refused, Err(Error::Startup(rgi::StartupError::TimedOut(_)))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout.max(Duration::from_millis(1));
        self
    }
}
