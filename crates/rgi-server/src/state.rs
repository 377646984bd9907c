//! What the accept loops, the connections and the handles share.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// Where the server is in its life; only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Accepting and serving.
    Running,
    /// Not accepting; connections finish what they have in flight.
    Draining,
    /// The grace period is over: whatever is left is cut off.
    Closing,
}

/// The server's counters and shutdown signal.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) open_connections: AtomicUsize,
    pub(crate) accepted_connections: AtomicU64,
    /// Written on every request: on a cache line of their own, away from
    /// the connection counters.
    pub(crate) requests: RequestCounters,
    pub(crate) phase: watch::Sender<Phase>,
    /// Notified whenever a connection ends, so that shutdown can wait for the
    /// last one without polling.
    pub(crate) connection_ended: Notify,
    pub(crate) grace: Duration,
}

impl Shared {
    pub(crate) fn new(grace: Duration) -> Arc<Self> {
        Arc::new(Self {
            open_connections: AtomicUsize::new(0),
            accepted_connections: AtomicU64::new(0),
            requests: RequestCounters {
                started: AtomicU64::new(0),
                finished: AtomicU64::new(0),
            },
            phase: watch::Sender::new(Phase::Running),
            connection_ended: Notify::new(),
            grace,
        })
    }

    pub(crate) fn stats(&self) -> Stats {
        // Finished first: a request that starts and ends between the two
        // loads is then counted as in flight, never as less than none.
        let finished = self.requests.finished.load(Ordering::Acquire);
        let started = self.requests.started.load(Ordering::Acquire);
        Stats {
            open_connections: self.open_connections.load(Ordering::Relaxed),
            in_flight_requests: usize::try_from(started.saturating_sub(finished))
                .unwrap_or(usize::MAX),
            accepted_connections: self.accepted_connections.load(Ordering::Relaxed),
            requests: started,
        }
    }

    pub(crate) fn advance(&self, to: Phase) {
        self.phase.send_if_modified(|phase| {
            if *phase < to {
                *phase = to;
                true
            } else {
                false
            }
        });
    }

    /// Counts one accepted connection until the returned guard drops.
    pub(crate) fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        self.accepted_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            shared: Arc::clone(self),
        }
    }
}

/// Requests started (service called) and finished (response body dropped);
/// the difference is the number in flight.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct RequestCounters {
    pub(crate) started: AtomicU64,
    pub(crate) finished: AtomicU64,
}

/// Keeps a connection counted as open; an upgraded connection keeps it too.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    shared: Arc<Shared>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shared.open_connections.fetch_sub(1, Ordering::Relaxed);
        self.shared.connection_ended.notify_waiters();
    }
}

/// A snapshot of the server's counters.
///
/// # Examples
///
/// ```no_run
/// # fn show(server: &rgi_server::Server) {
/// let stats = server.stats();
/// println!("{} connections, {} requests in flight", stats.open_connections, stats.in_flight_requests);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted and not yet closed, upgraded ones included.
    pub open_connections: usize,
    /// Requests whose service has been called and whose response body has
    /// not yet been dropped.
    pub in_flight_requests: usize,
    /// Connections accepted since the server started.
    pub accepted_connections: u64,
    /// Requests received since the server started.
    pub requests: u64,
}
