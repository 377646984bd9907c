//! Graceful shutdown on SIGTERM and SIGINT: [`Server::run_until_signal`],
//! or [`ShutdownSignals::install`] then [`Server::run_until`].
//!
//! A signal handler may do almost nothing, so the work happens on a normal
//! thread: signal-hook's handler writes the signal into a self-pipe, and
//! signal-hook-mio makes that pipe a mio source, which the calling thread
//! waits on in a poll of its own (no flag checked in a loop, no `unsafe`).

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::Server;

/// The signal pipe in the waiting thread's poll.
const SIGNALS: Token = Token(0);
/// The shutdown thread's "done" in the same poll.
const DONE: Token = Token(1);

/// How often the wait checks that the server still runs: its poller ends
/// on its own only when polling itself fails, which must not leave the
/// caller waiting for a signal forever.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Why [`Server::run_until_signal`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopCause {
    /// `SIGTERM` arrived (what service managers and `kill` send).
    Terminate,
    /// `SIGINT` arrived (Ctrl-C in a terminal).
    Interrupt,
    /// The server's poller stopped by itself (its poll failed; the log says
    /// why) before any signal.
    ServerEnded,
}

/// Why signals could not be waited for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The handlers for SIGTERM and SIGINT could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Install(#[source] std::io::Error),
    /// The poll that waits for them could not be set up or failed.
    #[error("cannot wait for signals: {0}")]
    Poll(#[source] std::io::Error),
}

/// The SIGTERM and SIGINT handlers, installed and waiting to be acted on
/// by [`Server::run_until`].
///
/// Installing them before the server starts closes the window in which a
/// signal would still take its default action (end the process at once):
/// from [`install`](ShutdownSignals::install) on, a signal is held until
/// `run_until` reads it.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// use rgi_simple_server::ShutdownSignals;
///
/// let signals = ShutdownSignals::install()?;
/// let app = rgi::from_fn(|_environ, start| {
///     start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
///     Ok(bytes::Bytes::from_static(b"hello\n"))
/// });
/// let server = rgi_simple_server::Builder::new()
///     .bind("127.0.0.1:8080".parse()?)
///     .serve_sync(app)?;
/// println!("ready");
/// let cause = server.run_until(signals, Duration::from_secs(10))?;
/// eprintln!("stopped: {cause:?}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ShutdownSignals {
    signals: Signals,
    poll: Poll,
    done: Arc<Waker>,
}

impl std::fmt::Debug for ShutdownSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownSignals").finish_non_exhaustive()
    }
}

impl ShutdownSignals {
    /// Installs the handlers for SIGTERM and SIGINT. They stay installed
    /// for the rest of the process (a handler cannot be safely
    /// uninstalled): once this value is dropped, those signals are ignored.
    ///
    /// # Errors
    ///
    /// [`SignalError`] if the handlers or the poll cannot be set up.
    pub fn install() -> Result<Self, SignalError> {
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(SignalError::Install)?;
        let poll = Poll::new().map_err(SignalError::Poll)?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(SignalError::Poll)?;
        let done = Arc::new(Waker::new(poll.registry(), DONE).map_err(SignalError::Poll)?);
        Ok(Self {
            signals,
            poll,
            done,
        })
    }

    /// One bounded wait; the first signal pending, if any.
    fn next(&mut self, events: &mut Events) -> Result<Option<i32>, SignalError> {
        match self.poll.poll(events, Some(CHECK_EVERY)) {
            Ok(()) => {}
            // The signal that interrupted it is read from the pipe below.
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(SignalError::Poll(error)),
        }
        Ok(self.signals.pending().next())
    }
}

impl Server {
    /// Serves until the process receives SIGTERM or SIGINT, then shuts
    /// down gracefully: [`ShutdownSignals::install`] followed by
    /// [`run_until`](Server::run_until). A signal that arrives before this
    /// call still ends the process at once; install the handlers first
    /// when that matters.
    ///
    /// # Errors
    ///
    /// [`SignalError`] if the handlers cannot be installed or the wait
    /// cannot be set up; the server then shuts down with no grace period
    /// (it is dropped).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let app = rgi::from_fn(|_environ, start| {
    ///     start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
    ///     Ok(bytes::Bytes::from_static(b"hello\n"))
    /// });
    /// let server = rgi_simple_server::Builder::new()
    ///     .bind("127.0.0.1:8080".parse()?)
    ///     .serve_sync(app)?;
    /// let cause = server.run_until_signal(Duration::from_secs(10))?;
    /// eprintln!("stopped: {cause:?}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_until_signal(self, grace: Duration) -> Result<StopCause, SignalError> {
        let signals = ShutdownSignals::install()?;
        self.run_until(signals, grace)
    }

    /// Serves until `signals` sees SIGTERM or SIGINT, then shuts down
    /// gracefully as [`shutdown`](Server::shutdown) does: accepting stops
    /// at once, idle connections close, and in-flight responses get up to
    /// `grace` to finish before their sockets are shut. Returns which
    /// signal it was once every thread has ended.
    ///
    /// A second SIGTERM or SIGINT during the grace period ends the process
    /// at once with that signal's default action (as pressing Ctrl-C twice
    /// is meant to).
    ///
    /// # Errors
    ///
    /// [`SignalError::Poll`] if waiting for the first signal fails; the
    /// server then shuts down with no grace period (it is dropped). Once a
    /// signal has come, the graceful shutdown always completes.
    pub fn run_until(
        self,
        mut signals: ShutdownSignals,
        grace: Duration,
    ) -> Result<StopCause, SignalError> {
        let mut events = Events::with_capacity(4);
        let cause = loop {
            if !self.is_running() {
                break StopCause::ServerEnded;
            }
            match signals.next(&mut events)? {
                Some(SIGTERM) => break StopCause::Terminate,
                Some(SIGINT) => break StopCause::Interrupt,
                _ => {}
            }
        };
        tracing::info!(?cause, ?grace, "shutting down gracefully");

        // The shutdown runs on its own thread so that this one can still
        // act on a second signal while in-flight responses finish.
        let slot = Arc::new(Mutex::new(Some(self)));
        let stopper = {
            let slot = Arc::clone(&slot);
            let done = Arc::clone(&signals.done);
            std::thread::Builder::new()
                .name("rgi-simple-shutdown".into())
                .spawn(move || {
                    let server = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some(server) = server {
                        server.shutdown(grace);
                    }
                    // Ends the wait below at once rather than at its next
                    // periodic check.
                    let _ = done.wake();
                })
        };
        let stopper: JoinHandle<()> = match stopper {
            Ok(stopper) => stopper,
            Err(error) => {
                // No second-signal escape then, but still a graceful stop.
                tracing::warn!(%error, "cannot start the shutdown thread; shutting down here");
                let server = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(server) = server {
                    server.shutdown(grace);
                }
                return Ok(cause);
            }
        };
        while !stopper.is_finished() {
            let second = match signals.next(&mut events) {
                Ok(second) => second,
                Err(error) => {
                    // The shutdown goes on; only the second-signal escape
                    // is lost.
                    tracing::warn!(%error, "cannot wait for a second signal");
                    break;
                }
            };
            if let Some(second) = second {
                tracing::warn!(
                    signal = second,
                    "a second signal during the grace period: ending the process"
                );
                if let Err(error) = signal_hook::low_level::emulate_default_handler(second) {
                    tracing::error!(%error, "cannot end the process; waiting for the grace period");
                }
            }
        }
        if stopper.join().is_err() {
            tracing::error!("the shutdown thread panicked");
        }
        Ok(cause)
    }
}
