//! `rgi-server` as a [`ServerUnderTest`] of the conformance kit (feature
//! `conformance`), so that the kit's CLI and this crate's tests judge the
//! same configuration.
//!
//! The suite starts one server per case. Each starts with the limits it
//! claims, its timers shortened so that every timing case is judged
//! (none is longer than [`SuiteLimits::LONGEST_TIMED`]), on one port of
//! 127.0.0.1, with two workers and a small blocking pool.
//!
//! # Examples
//!
//! ```no_run
//! use rgi_conformance::suite;
//! use rgi_server::conformance::SuiteServer;
//!
//! let run = suite::run(&SuiteServer::new());
//! assert!(!run.has_failures());
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use rgi::BoxError;
use rgi_conformance::suite::{
    Claims, Limits as SuiteLimits, Probe, RunningServer, ServerUnderTest,
};

use crate::{Limits, PoolConfig, Server};

/// The time limits the suite's servers enforce: short enough for the
/// timing cases to be judged in a few seconds each.
const SUITE_TIME: Duration = Duration::from_secs(2);

/// `rgi-server` configured for a suite run: asynchronous probes are served
/// with [`serve_async`](crate::Builder::serve_async) and every capability
/// the server backs (offload, the switch, readiness, after-response tasks,
/// the upgrade), synchronous ones with
/// [`serve_sync`](crate::Builder::serve_sync).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct SuiteServer;

impl SuiteServer {
    /// The server as the suite judges it.
    #[must_use]
    pub const fn new() -> Self {
        Self
    }

    /// The limits the suite's servers enforce, as the suite sees them.
    #[must_use]
    pub const fn claimed_limits() -> SuiteLimits {
        SuiteLimits::RECOMMENDED
            .with_head_time(SUITE_TIME)
            .with_idle_time(SUITE_TIME)
            .with_body_time(SUITE_TIME)
    }

    /// The same limits in the server's own terms.
    fn limits() -> Limits {
        let claimed = Self::claimed_limits();
        Limits::default()
            .max_target_bytes(claimed.target)
            .max_header_bytes(claimed.header_size)
            .max_headers(claimed.header_fields)
            .max_body_bytes(claimed.body)
            .header_read_timeout(claimed.head_time)
            .keep_alive_idle(claimed.idle_time)
            .body_stall_timeout(claimed.body_time)
            .protocol_detection_timeout(claimed.head_time)
            // A stopped case's server closes at once: the suite has
            // finished talking to it.
            .shutdown_grace(Duration::from_millis(200))
    }
}

impl ServerUnderTest for SuiteServer {
    fn name(&self) -> String {
        format!("rgi-server {}", env!("CARGO_PKG_VERSION"))
    }

    fn claims(&self) -> Claims {
        Claims::asynchronous()
            .with_readiness()
            .with_after_response()
            .with_upgrade()
            .with_limits(Self::claimed_limits())
            .with_features(crate::FEATURES)
    }

    fn start(&self, app: Probe) -> Result<Box<dyn RunningServer>, BoxError> {
        let builder = Server::builder()
            .bind(([127, 0, 0, 1], 0))
            .workers(2)
            .limits(Self::limits())
            .pool(PoolConfig {
                threads: 8,
                queue: 16,
                per_connection: 8,
            });
        let server = if app.is_async() {
            builder.serve_async(app)?
        } else {
            builder.serve_sync(app)?
        };
        let addr = server
            .local_addr()
            .ok_or("the server reports no TCP address")?;
        Ok(Box::new(RunningSuiteServer { addr, server }))
    }
}

/// A server started for one case.
struct RunningSuiteServer {
    addr: SocketAddr,
    server: Server,
}

impl RunningServer for RunningSuiteServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(self: Box<Self>) -> Result<(), BoxError> {
        self.server.shutdown();
        Ok(())
    }
}
