//! `rgi-simple-server` as a [`ServerUnderTest`] of the conformance kit
//! (feature `conformance`), so that the kit's CLI and this crate's suite
//! test judge one and the same configuration.
//!
//! Each case starts a fresh server on an unused port of 127.0.0.1 with the
//! recommended limits and head-read, idle and stalled-body times of 2 s,
//! short enough that every timing case is judged (none is longer than
//! [`SuiteLimits::LONGEST_TIMED`]), and four workers, so that one blocking
//! application cannot stall the others (`[RGI-HINT-5]`).
//!
//! The server claims both interfaces and every capability it implements
//! (readiness, after-response tasks, upgrade): a synchronous probe is served
//! with [`Builder::serve_sync`], an asynchronous one with
//! [`Builder::serve_async`] on two async threads. It claims no runtime
//! context, which it does not provide.
//!
//! # Examples
//!
//! ```no_run
//! use rgi_conformance::suite;
//! use rgi_simple_server::conformance::SuiteServer;
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

use crate::{Builder, Limits, Server};

/// The time limits the suite's servers enforce: short enough for the
/// timing cases to be judged in a few seconds each.
const SUITE_TIME: Duration = Duration::from_secs(2);

/// How long a stopped case's server lets in-flight responses run: the
/// suite has finished talking to it, so a short grace keeps runs quick
/// while still exercising the graceful path.
const STOP_GRACE: Duration = Duration::from_millis(200);

/// `rgi-simple-server` configured for a suite run.
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

    /// The same limits in the server's own terms. The suite counts the
    /// header section without the request line, this server's `max_head`
    /// with it: the server is stricter than it declares by one request
    /// line, which only a head within a line's length of the limit notices.
    fn limits() -> Limits {
        let claimed = Self::claimed_limits();
        Limits::default()
            .with_max_target(claimed.target)
            .with_max_head(claimed.header_size)
            .with_max_fields(claimed.header_fields)
            .with_max_body(claimed.body)
            .with_head_timeout(claimed.head_time)
            .with_idle_timeout(claimed.idle_time)
            .with_body_timeout(claimed.body_time)
    }
}

impl ServerUnderTest for SuiteServer {
    fn name(&self) -> String {
        format!("rgi-simple-server {}", env!("CARGO_PKG_VERSION"))
    }

    fn claims(&self) -> Claims {
        Claims::asynchronous()
            .with_readiness()
            .with_after_response()
            .with_upgrade()
            .with_limits(Self::claimed_limits())
            .with_features(crate::server::FEATURES)
    }

    fn start(&self, app: Probe) -> Result<Box<dyn RunningServer>, BoxError> {
        let builder = Builder::new()
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .workers(4)
            .async_threads(2)
            .limits(Self::limits());
        let server = if app.is_async() {
            builder.serve_async(app)?
        } else {
            builder.serve_sync(app)?
        };
        let addr = server
            .tcp_addr()
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
        self.server.shutdown(STOP_GRACE);
        Ok(())
    }
}
