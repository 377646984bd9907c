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
/// A host lends it to applications as a server-wide extension
/// (`ServerInfo::with_extension(shutdown.clone())`), where
/// [`Shutdown::of`] finds it: a long-poll parked in a readiness wait or a
/// timer can then answer before the grace period ends instead of being cut
/// off. This is this crate's own extension, not part of RGI: an
/// application that uses it runs on other servers only if it treats its
/// absence as "no signal".
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
    /// The signal the host lends `environ`'s request, if it lends one.
    ///
    /// # Examples
    ///
    /// A long-poll that answers `503` when the host begins to shut down,
    /// rather than waiting to be cut off:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use http::StatusCode;
    /// use rgi::{BoxError, ConnectionInfo, Environ, Input, ServerInfo};
    /// use rgi_async::Responder;
    /// use rgi_tower::caps::Shutdown;
    ///
    /// async fn long_poll(environ: Environ, response: Responder) -> Result<(), BoxError> {
    ///     // Elsewhere than on this crate's hosts: a signal nobody triggers.
    ///     let shutdown = Shutdown::of(&environ).cloned().unwrap_or_default();
    ///     let news = tokio::time::sleep(Duration::from_secs(30)); // or a readiness wait
    ///     tokio::select! {
    ///         () = news => response.send("news").await,
    ///         () = shutdown.triggered() => response.set_status(StatusCode::SERVICE_UNAVAILABLE)?,
    ///     }
    ///     Ok(())
    /// }
    ///
    /// let shutdown = Shutdown::new();
    /// let server = Arc::new(ServerInfo::new("localhost", 8080)?.with_extension(shutdown.clone()));
    /// let parts = http::Request::get("/poll").body(())?.into_parts().0;
    /// let environ = Environ::from_parts(parts, Input::empty(), &server, &Arc::new(ConnectionInfo::new()))?;
    /// assert!(Shutdown::of(&environ).is_some_and(|found| !found.is_triggered()));
    /// shutdown.trigger();
    /// assert!(Shutdown::of(&environ).is_some_and(Shutdown::is_triggered));
    /// # let _ = rgi_async::from_async_fn(long_poll);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn of(environ: &rgi::Environ) -> Option<&Shutdown> {
        environ.extension::<Shutdown>()
    }

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
    /// already was), or once every clone of this signal is gone (nobody is
    /// left to trigger it). It owns what it needs, so it can be spawned.
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
