//! The capabilities of one host, assembled once (spec/rgi-async.md §4,
//! RGIA-CAP).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use rgi_async::{Capabilities, CapabilitiesBuilder, Offload, Readiness};

use super::after::{AfterConfig, AfterResponseTasks, DrainReport, RequestTasks};
#[cfg(unix)]
use super::readiness::{DEFAULT_MAX_WAITS, TokioReadiness};
use super::runtime::{ContextError, TokioContext};
use super::shutdown::Shutdown;
use super::upgrade::UpgradeOffer;
use super::upgraded::UpgradedConnections;

/// Everything a host on tokio backs besides offload, built once per host:
/// the runtime declaration, the readiness service, the after-response
/// tasks, and the shutdown signal they end with.
///
/// What is the same for every request (offload, readiness, runtime) goes
/// into one server-wide [`Capabilities`] ([`HostCapabilities::add_to`],
/// [`HostCapabilities::server_wide`]), which costs a request nothing. What
/// is per request (after-response tasks, an upgrade) needs a
/// `Capabilities` value of the request's own ([`HostCapabilities::for_request`],
/// `[RGIA-CAP-1]`): with after-response tasks offered that is every
/// request, at the cost of a few allocations (the request's task list, the
/// extension map, the boxed value); without them, only requests that offer
/// an upgrade pay it.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use rgi::{Environ, ServerInfo};
/// use rgi_async::{Capabilities, Offload, Runtime};
/// use rgi_tower::caps::{HostCapabilities, TokioContext};
/// # struct ThreadPerJob;
/// # impl rgi_async::OffloadService for ThreadPerJob {
/// #     fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
/// #         std::thread::spawn(move || job.run());
/// #         Ok(())
/// #     }
/// # }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
/// let host = HostCapabilities::builder(TokioContext::new(runtime.handle().clone())?).build();
///
/// // Once, at start-up: the server-wide value.
/// let server_wide = host.server_wide(Offload::new(ThreadPerJob));
/// let server = Arc::new(ServerInfo::new("localhost", 8080)?.with_extension(server_wide.clone()));
///
/// // Per request: the request's own value, with its after-response tasks.
/// let mut request = http::Request::new(());
/// let per_request = host.for_request(&server_wide, &mut request);
/// let (parts, ()) = request.into_parts();
/// let connection = Arc::new(rgi::ConnectionInfo::new());
/// let environ = Environ::from_parts(parts, rgi::Input::empty(), &server, &connection)?;
///
/// let capabilities = Capabilities::of(&environ).ok_or("an asynchronous host")?;
/// assert_eq!(capabilities.require_runtime(Runtime::Tokio), Ok(()));
/// assert!(capabilities.readiness().is_some());
/// assert!(capabilities.after_response().is_some());
/// assert!(capabilities.upgrade().is_none(), "the request asked for no upgrade");
/// per_request.complete(); // once the response is complete
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HostCapabilities {
    inner: Arc<Inner>,
}

struct Inner {
    context: TokioContext,
    #[cfg(unix)]
    readiness: Option<TokioReadiness>,
    /// The handle lent to applications over `readiness`, made once: a host
    /// adds it to every connection's capabilities, and a handle made each
    /// time would be one more allocation per connection.
    #[cfg(unix)]
    lent_readiness: Option<Readiness>,
    after: Option<AfterResponseTasks>,
    upgraded: UpgradedConnections,
    shutdown: Shutdown,
}

/// Builds [`HostCapabilities`]; see [`HostCapabilities::builder`].
#[must_use]
pub struct HostCapabilitiesBuilder {
    context: TokioContext,
    #[cfg(unix)]
    max_waits: Option<usize>,
    after: Option<AfterConfig>,
    shutdown: Shutdown,
}

impl HostCapabilities {
    /// Starts the capabilities of a host on `context`'s runtime: by
    /// default with readiness (at most [`DEFAULT_MAX_WAITS`] registered
    /// descriptors, where the platform has it), after-response tasks
    /// ([`AfterConfig::default`]) and a fresh [`Shutdown`].
    pub fn builder(context: TokioContext) -> HostCapabilitiesBuilder {
        HostCapabilitiesBuilder {
            context,
            #[cfg(unix)]
            max_waits: Some(DEFAULT_MAX_WAITS),
            after: Some(AfterConfig::default()),
            shutdown: Shutdown::new(),
        }
    }

    /// The defaults of [`HostCapabilities::builder`] on the runtime
    /// entered on this thread.
    ///
    /// # Errors
    ///
    /// As [`TokioContext::current`].
    pub fn current() -> Result<Self, ContextError> {
        Ok(HostCapabilities::builder(TokioContext::current()?).build())
    }

    /// Adds what is the same for every request, beyond offload, to a
    /// host's server-wide capabilities: the runtime declaration
    /// (`[RGIA-RT-1]`: the host polls every call and step on this
    /// runtime) and readiness.
    pub fn add_to(&self, builder: CapabilitiesBuilder) -> CapabilitiesBuilder {
        let builder = builder.runtime(self.inner.context.runtime());
        #[cfg(unix)]
        let builder = match &self.inner.lent_readiness {
            Some(readiness) => builder.readiness(readiness.clone()),
            None => builder,
        };
        builder
    }

    /// The server-wide capabilities over `offload`, for the host's
    /// `ServerInfo` (`ServerInfo::with_extension`).
    #[must_use]
    pub fn server_wide(&self, offload: Offload) -> Capabilities {
        self.add_to(Capabilities::builder(offload)).build()
    }

    /// What `request` gets beyond the server-wide `base`: its
    /// after-response tasks (if the host runs them) and its upgrade (if it
    /// offers one, taking hyper's `OnUpgrade`). When it gets either, a
    /// `Capabilities` value with everything of `base` and these is inserted
    /// into the request's extensions, where `Capabilities::of` finds it
    /// first; otherwise the request is left alone and costs nothing.
    ///
    /// Keep the returned value with the response, and complete (or drop)
    /// it when the response is complete.
    pub fn for_request<B>(&self, base: &Capabilities, request: &mut Request<B>) -> ForRequest {
        let upgrade = UpgradeOffer::detect(request);
        let tasks = self.inner.after.as_ref().map(AfterResponseTasks::request);
        if upgrade.is_some() || tasks.is_some() {
            let mut builder = extend(base);
            if let Some(tasks) = &tasks {
                builder = builder.after_response(tasks.handle());
            }
            if let Some(offer) = &upgrade {
                builder = builder.upgrade(offer.upgrade().clone());
            }
            request.extensions_mut().insert(builder.build());
        }
        ForRequest { tasks, upgrade }
    }

    /// The runtime every capability is backed by.
    #[must_use]
    pub fn context(&self) -> &TokioContext {
        &self.inner.context
    }

    /// The readiness service, if the host lends one (for its counters).
    #[cfg(unix)]
    #[must_use]
    pub fn readiness(&self) -> Option<&TokioReadiness> {
        self.inner.readiness.as_ref()
    }

    /// The after-response tasks, if the host runs them (for its counters
    /// and [`AfterResponseTasks::drain`] at shutdown).
    #[must_use]
    pub fn after_response(&self) -> Option<&AfterResponseTasks> {
        self.inner.after.as_ref()
    }

    /// The conversations of upgraded connections, which the host runs
    /// through [`UpgradedConnections::track`] so that shutdown reaches
    /// them.
    #[must_use]
    pub fn upgraded(&self) -> &UpgradedConnections {
        &self.inner.upgraded
    }

    /// The signal the host triggers when its graceful shutdown begins;
    /// lend it to applications as a server-wide extension too
    /// (`ServerInfo::with_extension`), so that parked long-polls can answer
    /// in time ([`Shutdown::of`]).
    #[must_use]
    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }

    /// The end of the host's grace period: triggers the shutdown signal if
    /// the host has not yet, then, within `grace`, waits for running
    /// after-response tasks and upgraded conversations, dropping queued
    /// tasks unrun and, at the end, the conversations still going
    /// (`[RGIA-AFTER-5]`, `[RGIA-TASK-4]`). Each loss is logged.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the waiting only.
    pub async fn drain(&self, grace: Duration) -> Drained {
        self.inner.shutdown.trigger();
        let tasks = async {
            match &self.inner.after {
                Some(after) => Some(after.drain(grace).await),
                None => None,
            }
        };
        let (after_response, upgraded_cut) = tokio::join!(tasks, self.inner.upgraded.drain(grace));
        Drained {
            after_response,
            upgraded_cut,
        }
    }
}

/// What [`HostCapabilities::drain`] found at the end of the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drained {
    /// The after-response tasks' report, if the host runs them.
    pub after_response: Option<DrainReport>,
    /// Upgraded connections closed because they outlived the grace period.
    pub upgraded_cut: usize,
}

impl fmt::Debug for HostCapabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("HostCapabilities");
        debug.field("context", &self.inner.context);
        #[cfg(unix)]
        debug.field("readiness", &self.inner.readiness);
        debug
            .field("after_response", &self.inner.after)
            .field("upgraded", &self.inner.upgraded)
            .field("shutdown", &self.inner.shutdown)
            .finish()
    }
}

impl HostCapabilitiesBuilder {
    /// Caps the descriptors registered by readiness waits in progress
    /// (`None`, or a cap of 0, which no wait could pass: lend no readiness,
    /// `[RGIA-CAP-5]`).
    #[cfg(unix)]
    pub fn readiness(mut self, max_waits: Option<usize>) -> Self {
        self.max_waits = max_waits;
        self
    }

    /// The limits of after-response tasks (`None`, or `max_tasks` 0, which
    /// would refuse every task: run none, and requests without an upgrade
    /// need no capabilities of their own).
    pub fn after_response(mut self, config: Option<AfterConfig>) -> Self {
        self.after = config;
        self
    }

    /// The signal the host triggers at shutdown, if it already has one.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The capabilities.
    pub fn build(self) -> HostCapabilities {
        // A capability whose every use would fail is left out instead
        // (`[RGIA-CAP-5]`: no hollow handles).
        let after = self
            .after
            .filter(|config| config.max_tasks > 0)
            .map(|config| AfterResponseTasks::new(&self.context, config, self.shutdown.clone()));
        #[cfg(unix)]
        let readiness = self
            .max_waits
            .filter(|limit| *limit > 0)
            .map(|limit| TokioReadiness::with_context(self.context.clone()).with_max_waits(limit));
        HostCapabilities {
            inner: Arc::new(Inner {
                #[cfg(unix)]
                lent_readiness: readiness.clone().map(Readiness::new),
                #[cfg(unix)]
                readiness,
                after,
                upgraded: UpgradedConnections::new(
                    self.context.handle().clone(),
                    self.shutdown.clone(),
                ),
                shutdown: self.shutdown,
                context: self.context,
            }),
        }
    }
}

impl fmt::Debug for HostCapabilitiesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostCapabilitiesBuilder")
            .field("after_response", &self.after)
            .finish_non_exhaustive()
    }
}

/// Everything of `base` but its upgrade, which belongs to one request.
fn extend(base: &Capabilities) -> CapabilitiesBuilder {
    let mut builder =
        Capabilities::builder(base.offload().clone()).spec_version(base.spec_version());
    #[cfg(unix)]
    if let Some(readiness) = base.readiness() {
        builder = builder.readiness(readiness.clone());
    }
    if let Some(runtime) = base.runtime() {
        builder = builder.runtime(runtime);
    }
    if let Some(after) = base.after_response() {
        builder = builder.after_response(after.clone());
    }
    builder
}

/// What one request was lent beyond the server-wide capabilities; see
/// [`HostCapabilities::for_request`].
#[derive(Debug)]
pub struct ForRequest {
    tasks: Option<RequestTasks>,
    upgrade: Option<UpgradeOffer>,
}

impl ForRequest {
    /// The request's upgrade offer, for the host's
    /// [`UpgradeOffer::take_switch`] and [`UpgradeOffer::seal`].
    #[must_use]
    pub fn upgrade(&self) -> Option<&UpgradeOffer> {
        self.upgrade.as_ref()
    }

    /// The response is complete (its last byte handed to the transport, or
    /// it ended abnormally): the request's after-response tasks go to the
    /// workers. Dropping does the same.
    pub fn complete(self) {
        drop(self);
    }

    /// The parts, for a host that keeps them apart.
    #[must_use]
    pub fn into_parts(self) -> (Option<RequestTasks>, Option<UpgradeOffer>) {
        (self.tasks, self.upgrade)
    }
}
