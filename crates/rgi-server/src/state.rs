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
    pub(crate) in_flight_requests: AtomicUsize,
    pub(crate) accepted_connections: AtomicU64,
    pub(crate) requests: AtomicU64,
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
            in_flight_requests: AtomicUsize::new(0),
            accepted_connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            phase: watch::Sender::new(Phase::Running),
            connection_ended: Notify::new(),
            grace,
        })
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            open_connections: self.open_connections.load(Ordering::Relaxed),
            in_flight_requests: self.in_flight_requests.load(Ordering::Relaxed),
            accepted_connections: self.accepted_connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
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
