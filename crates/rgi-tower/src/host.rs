//! What the hosting server backs: its description, its pool and its limits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use rgi::ServerInfo;
use rgi_async::{Capabilities, Offload};

use crate::caps::HostCapabilities;
use crate::pool::{ConnectionPool, Pool, PoolConfig};
use crate::request::BodyLimits;

/// The default largest request body: 16 MiB.
pub const DEFAULT_MAX_BODY: u64 = 16 * 1024 * 1024;

/// The default time a request body may stall while the application waits
/// for it: 30 seconds.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The default largest body read into memory before an application that
/// never blocks but reads its input whole runs inline: 1 MiB.
pub const DEFAULT_PRE_READ_LIMIT: u64 = 1024 * 1024;

/// Adds capabilities the host backs beyond offload (readiness, runtime,
/// after-response tasks) to one connection's [`Capabilities`].
pub type CapabilitiesHook =
    Arc<dyn Fn(rgi_async::CapabilitiesBuilder) -> rgi_async::CapabilitiesBuilder + Send + Sync>;

pub(crate) struct HostInner {
    /// The server's description without capabilities: what a synchronous
    /// application sees.
    pub(crate) server: Arc<ServerInfo>,
    pub(crate) pool: Pool,
    pub(crate) limits: BodyLimits,
    pub(crate) pre_read_limit: u64,
    pub(crate) retry_after: HeaderValue,
    pub(crate) capabilities: Option<CapabilitiesHook>,
    pub(crate) tokio: Option<HostCapabilities>,
    /// The server declares request trailers: inputs that can carry them
    /// get a [`rgi::TrailerSlot`] (`[RGI-TRAILER-1]`).
    pub(crate) request_trailers: bool,
    /// The server declares response trailers: responses that can carry
    /// them are enabled for them (`[RGI-TRAILER-7]`).
    pub(crate) response_trailers: bool,
}

/// What the hosting server backs, shared by every service and connection
/// of it: the server's [`ServerInfo`], the blocking [`Pool`], the request
/// body limits, and the capabilities an asynchronous application is lent.
///
/// Cloning is a reference-count increment.
///
/// # Optional features (RGI 1.2)
///
/// The services act on the [`Features`](rgi::Features) the host's
/// [`ServerInfo`] declares, and on nothing else (`[RGI-FEAT-1]`):
///
/// - **request trailers**: the input of a request whose body can carry a
///   trailer section (chunked HTTP/1.1, any HTTP/2 body) gets a
///   [`TrailerSlot`](rgi::TrailerSlot), filled from the body's trailers
///   frame before the input reports its end (`[RGI-TRAILER-1]`), a
///   pre-read input included;
/// - **response trailers**: a response to an HTTP/2 request, or to an
///   HTTP/1.1 request whose `TE` field lists `trailers`, is enabled for
///   them ([`ResponseState::enable_trailers`](rgi::ResponseState::enable_trailers)),
///   and the fields the application gives end the response body as a
///   trailers frame (`[RGI-TRAILER-7]`). hyper writes, on HTTP/1.1, only
///   the fields the head's `Trailer` field names;
/// - **early hints** are never provided: a tower service answers with one
///   final response and hyper 1.x has no API for a `103`, so the host
///   removes that declaration from its description (`[RGI-EARLY-4]`);
/// - **lifespan** is the embedding server's to provide (it calls the
///   application's start-up before it builds the host, with the
///   description the start-up returned); the host keeps the declaration
///   as given.
///
/// ```
/// use rgi::{Features, ServerInfo};
/// use rgi_tower::Host;
///
/// let declared = Features::none().with_response_trailers(true).with_early_hints(true);
/// let host = Host::builder(ServerInfo::new("localhost", 8080)?.with_features(declared)).build();
/// let features = host.server_info().features();
/// assert!(features.response_trailers());
/// assert!(!features.early_hints()); // hyper 1.x cannot send a 103
/// # Ok::<(), rgi::EnvironError>(())
/// ```
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rgi::ServerInfo;
/// use rgi_tower::{Host, PoolConfig};
///
/// let host = Host::builder(ServerInfo::new("localhost", 8080)?)
///     .pool(PoolConfig { threads: 4, queue: 16, per_connection: 4 })
///     .max_body(1 << 20)
///     .body_timeout(Some(Duration::from_secs(10)))
///     .build();
/// assert_eq!(host.max_body(), 1 << 20);
/// assert_eq!(host.pool().config().threads, 4);
/// # Ok::<(), rgi::EnvironError>(())
/// ```
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

impl Host {
    /// Starts a host describing itself as `server`.
    pub fn builder(server: ServerInfo) -> HostBuilder {
        HostBuilder {
            server,
            pool: None,
            pool_config: PoolConfig::default(),
            max_body: DEFAULT_MAX_BODY,
            body_timeout: Some(DEFAULT_BODY_TIMEOUT),
            pre_read_limit: DEFAULT_PRE_READ_LIMIT,
            retry_after: HeaderValue::from_static("1"),
            capabilities: None,
            tokio: None,
        }
    }

    /// The server's description, as a synchronous application sees it.
    #[must_use]
    pub fn server_info(&self) -> &Arc<ServerInfo> {
        &self.inner.server
    }

    /// The blocking pool.
    #[must_use]
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The largest request body, in bytes.
    #[must_use]
    pub fn max_body(&self) -> u64 {
        self.inner.limits.max_bytes
    }

    /// How long a request body may stall while the application waits.
    #[must_use]
    pub fn body_timeout(&self) -> Option<Duration> {
        self.inner.limits.stall
    }

    /// The capabilities on tokio the host backs, if it was given them.
    #[must_use]
    pub fn tokio_capabilities(&self) -> Option<&HostCapabilities> {
        self.inner.tokio.as_ref()
    }

    /// The server's description for one connection of an asynchronous
    /// application: with the [`Capabilities`] it lends, offload going to
    /// this connection's share of the pool. Built once per connection, so
    /// requests pay no allocation for it.
    pub(crate) fn async_server_info(&self, pool: &ConnectionPool) -> Arc<ServerInfo> {
        let mut builder = Capabilities::builder(Offload::new(pool.clone()));
        if let Some(tokio) = &self.inner.tokio {
            builder = tokio.add_to(builder);
        }
        if let Some(hook) = &self.inner.capabilities {
            builder = hook(builder);
        }
        Arc::new((*self.inner.server).clone().with_extension(builder.build()))
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("server", &self.inner.server)
            .field("pool", &self.inner.pool)
            .field("max_body", &self.inner.limits.max_bytes)
            .field("body_timeout", &self.inner.limits.stall)
            .field("pre_read_limit", &self.inner.pre_read_limit)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Host`]; see [`Host::builder`].
#[must_use]
pub struct HostBuilder {
    server: ServerInfo,
    pool: Option<Pool>,
    pool_config: PoolConfig,
    max_body: u64,
    body_timeout: Option<Duration>,
    pre_read_limit: u64,
    retry_after: HeaderValue,
    capabilities: Option<CapabilitiesHook>,
    tokio: Option<HostCapabilities>,
}

impl HostBuilder {
    /// The size of the pool the host starts (default [`PoolConfig::default`]).
    pub fn pool(mut self, config: PoolConfig) -> Self {
        self.pool_config = config;
        self
    }

    /// Shares an existing pool instead of starting one.
    pub fn shared_pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The largest request body, counted while it streams (default
    /// [`DEFAULT_MAX_BODY`]); past it the application's read fails with
    /// [`rgi::InputError::BodyLimitExceeded`], answered `413` if it gives up
    /// before its head.
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// How long the body may send nothing while the application waits for
    /// it (default [`DEFAULT_BODY_TIMEOUT`]; `None`: forever); past it the
    /// read fails with [`rgi::InputError::BodyTimedOut`] (`408`).
    pub fn body_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// The largest body read into memory for an application that never
    /// blocks but reads its input whole (default
    /// [`DEFAULT_PRE_READ_LIMIT`]; never above the body limit); past it the
    /// answer is `413`.
    pub fn pre_read_limit(mut self, bytes: u64) -> Self {
        self.pre_read_limit = bytes;
        self
    }

    /// The `Retry-After` value of a `503` when the pool is full (default
    /// `1`, seconds).
    pub fn retry_after(mut self, value: HeaderValue) -> Self {
        self.retry_after = value;
        self
    }

    /// Adds what the host backs beyond offload to every connection's
    /// [`Capabilities`] (readiness, runtime, after-response tasks).
    pub fn capabilities(
        mut self,
        hook: impl Fn(rgi_async::CapabilitiesBuilder) -> rgi_async::CapabilitiesBuilder
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.capabilities = Some(Arc::new(hook));
        self
    }

    /// Backs every capability of [`caps`](crate::caps) for asynchronous
    /// applications: the runtime declaration and readiness server-wide,
    /// and per request its after-response tasks (run once the response is
    /// complete) and, when the request asks for one, its upgrade (the
    /// `101`, or `200` to an extended CONNECT, goes out once the
    /// application accepts; its body keeps being polled after that). Its
    /// [`Shutdown`](crate::caps::Shutdown) signal is lent server-wide too.
    pub fn tokio_capabilities(mut self, capabilities: HostCapabilities) -> Self {
        self.tokio = Some(capabilities);
        self
    }

    /// The host; starts its pool unless one was shared. A declaration of
    /// early hints in the description is removed: no service of this
    /// crate can send a `103` (`[RGI-EARLY-4]`).
    pub fn build(self) -> Host {
        let pool = self.pool.unwrap_or_else(|| Pool::new(self.pool_config));
        let mut server = self.server;
        let features = server.features();
        if features.early_hints() {
            // hyper 1.x has no server API for informational responses other
            // than `100 Continue`, and a tower service returns one final
            // response: a declared 103 would be a promise nothing keeps.
            tracing::warn!("early hints declared, but hyper cannot send a 103: not declared");
            server = server.with_features(features.with_early_hints(false));
        }
        if let Some(tokio) = &self.tokio {
            // The host's shutdown signal, lent server-wide so that a parked
            // long-poll can answer in time (`caps::Shutdown::of`).
            if server.extension::<crate::caps::Shutdown>().is_none() {
                server = server.with_extension(tokio.shutdown().clone());
            }
        }
        Host {
            inner: Arc::new(HostInner {
                server: Arc::new(server),
                pool,
                limits: BodyLimits {
                    max_bytes: self.max_body,
                    stall: self.body_timeout,
                },
                pre_read_limit: self.pre_read_limit,
                retry_after: self.retry_after,
                capabilities: self.capabilities,
                tokio: self.tokio,
                request_trailers: features.request_trailers(),
                response_trailers: features.response_trailers(),
            }),
        }
    }
}

impl fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostBuilder")
            .field("server", &self.server)
            .field("pool_config", &self.pool_config)
            .field("max_body", &self.max_body)
            .field("body_timeout", &self.body_timeout)
            .finish_non_exhaustive()
    }
}
