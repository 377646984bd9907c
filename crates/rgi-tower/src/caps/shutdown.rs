//! The host's graceful-shutdown signal, as the capabilities hear it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

/// A one-way signal that the host is shutting down gracefully: the server
/// triggers it when it stops accepting; the capabilities listen
/// (after-response tasks are refused from then on, queued ones dropped),
/// and so can anything else holding a clone, to end in time.
///
/// Cloning is cheap (an `Arc`); triggering is idempotent and never blocks.
///
/// # Examples
///
/// ```
/// use rgi_tower::caps::Shutdown;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let shutdown = Shutdown::new();
/// let heard = runtime.spawn(shutdown.triggered());
/// assert!(!shutdown.is_triggered());
/// shutdown.clone().trigger();
/// assert!(shutdown.is_triggered());
/// runtime.block_on(heard)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    /// A signal not yet triggered.
    #[must_use]
    pub fn new() -> Self {
        Shutdown {
            sender: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Triggers the signal; every listener hears it.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Whether the signal was triggered.
    #[must_use]
    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// A future that resolves once the signal is triggered (at once if it
    /// already was). It owns what it needs, so it can be spawned.
    ///
    /// # Cancel safety
    ///
    /// Dropping it only stops listening.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            // An error means every sender is gone, so no trigger can come:
            // the host dropped its handles, which ends everything anyway.
            let _ = receiver.wait_for(|triggered| *triggered).await;
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}
