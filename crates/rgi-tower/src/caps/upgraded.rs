//! Upgraded connections through a graceful shutdown (spec/rgi-async.md
//! §15, RGIA-TASK-4).
//!
//! Once hyper hands a connection over, its graceful shutdown no longer sees
//! it: the conversation is a task of the host's own. [`UpgradedConnections`]
//! counts those tasks and ends them at shutdown: they get the grace period
//! to finish, then are dropped (the application's body with them, and the
//! connection closes).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::{AbortHandle, JoinSet};

use super::shutdown::Shutdown;

/// The host's upgraded connections: the conversations it drives after a
/// `101` (or an extended CONNECT's `200`), tracked so that shutdown can
/// wait for them and then end them.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rgi_tower::caps::{Shutdown, UpgradedConnections};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
/// let shutdown = Shutdown::new();
/// let upgraded = UpgradedConnections::new(runtime.handle().clone(), shutdown.clone());
/// // A conversation that would never end by itself.
/// upgraded.track(std::future::pending::<()>())?;
/// assert_eq!(upgraded.live(), 1);
/// shutdown.trigger();
/// let cut = runtime.block_on(upgraded.drain(Duration::from_millis(20)));
/// assert_eq!((cut, upgraded.live()), (1, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct UpgradedConnections {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: tokio::runtime::Handle,
    shutdown: Shutdown,
    tasks: Mutex<JoinSet<()>>,
    cut: AtomicU64,
}

/// Why [`UpgradedConnections::track`] refused a conversation: the host is
/// shutting down. The conversation was dropped, which closes its
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shutting down: the upgraded connection was closed")]
pub struct ShuttingDown;

impl UpgradedConnections {
    /// Conversations run on `runtime` and end with `shutdown`.
    #[must_use]
    pub fn new(runtime: tokio::runtime::Handle, shutdown: Shutdown) -> Self {
        UpgradedConnections {
            inner: Arc::new(Inner {
                runtime,
                shutdown,
                tasks: Mutex::new(JoinSet::new()),
                cut: AtomicU64::new(0),
            }),
        }
    }

    /// Runs `conversation` (the future that polls an upgraded request's
    /// body to its end) as a task of its own, counted until it ends.
    ///
    /// # Errors
    ///
    /// [`ShuttingDown`] once the shutdown signal was triggered; the
    /// conversation is dropped unpolled.
    pub fn track<F>(&self, conversation: F) -> Result<AbortHandle, ShuttingDown>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.inner.shutdown.is_triggered() {
            return Err(ShuttingDown);
        }
        let mut tasks = self.lock();
        // Finished conversations leave their results behind: collect them
        // here so that the set stays as large as what is live.
        while tasks.try_join_next().is_some() {}
        Ok(tasks.spawn_on(conversation, &self.inner.runtime))
    }

    /// How many conversations are running.
    #[must_use]
    pub fn live(&self) -> usize {
        let mut tasks = self.lock();
        while tasks.try_join_next().is_some() {}
        tasks.len()
    }

    /// How many conversations shutdown has cut so far.
    #[must_use]
    pub fn cut(&self) -> u64 {
        self.inner.cut.load(Ordering::Relaxed)
    }

    /// At shutdown: waits up to `grace` for the conversations to end, then
    /// drops the rest (their bodies and streams, which closes their
    /// connections), logs how many, and returns that number. Call it once
    /// the [`Shutdown`] was triggered, so that no new conversation starts.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the waiting; conversations go on.
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        let mut tasks = std::mem::take(&mut *self.lock());
        while !tasks.is_empty() {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let left = tasks.len();
        // Aborted tasks are dropped by the runtime, their futures with them.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        if left > 0 {
            self.inner.cut.fetch_add(left as u64, Ordering::Relaxed);
            tracing::warn!(
                cut = left,
                "upgraded connections still open at the end of the grace period were closed"
            );
        }
        left
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        // Nothing under this lock panics half-way through a change.
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for UpgradedConnections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradedConnections")
            .field("live", &self.live())
            .field("cut", &self.cut())
            .finish()
    }
}
