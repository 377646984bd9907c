//! The tokio runtime whose context the host keeps entered
//! (spec/rgi-async.md §4.1, RGIA-RT).

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use rgi_async::Runtime;
use tokio::runtime::{EnterGuard, Handle};

/// How [`rgi_async::Runtime`] names the runtime this crate serves on: what
/// a host built on it declares with
/// [`CapabilitiesBuilder::runtime`](rgi_async::CapabilitiesBuilder::runtime).
///
/// # Examples
///
/// ```
/// assert_eq!(rgi_tower::caps::TOKIO.name(), "tokio");
/// ```
pub const TOKIO: Runtime = Runtime::Tokio;

/// Why a tokio runtime cannot back the asynchronous capabilities.
///
/// The capabilities create reactor registrations and timers when an
/// application's future is first polled; tokio panics there if its I/O or
/// time driver is off. Checking once, when the host is built, turns that
/// panic into this error at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// No tokio runtime is entered on the calling thread.
    #[error("no tokio runtime is entered on this thread")]
    NoRuntime,
    /// The runtime was built without its I/O driver.
    #[error("the tokio runtime has no I/O driver (build it with `enable_io` or `enable_all`)")]
    IoDisabled,
    /// The runtime was built without its time driver.
    #[error("the tokio runtime has no time driver (build it with `enable_time` or `enable_all`)")]
    TimeDisabled,
}

/// A handle to a tokio runtime checked to have the I/O and time drivers
/// that [`Runtime::Tokio`] promises (`[RGIA-RT-1]`).
///
/// A host declares [`TOKIO`] only if it polls every application `call`,
/// `poll_step` and body drop with this context entered: on a hyper
/// connection task that is already so, and [`TokioContext::enter`] covers
/// the rest (a body dropped on another thread, for example).
///
/// # Examples
///
/// ```
/// use rgi_tower::caps::{ContextError, TokioContext};
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let context = TokioContext::new(runtime.handle().clone())?;
/// let _entered = context.enter();
/// assert!(tokio::runtime::Handle::try_current().is_ok());
///
/// let no_timers = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
/// # let hook = std::panic::take_hook();
/// # std::panic::set_hook(Box::new(|_| {}));
/// let refused = TokioContext::new(no_timers.handle().clone());
/// # std::panic::set_hook(hook);
/// assert_eq!(refused.unwrap_err(), ContextError::TimeDisabled);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TokioContext {
    handle: Handle,
}

impl TokioContext {
    /// Checks `handle`'s runtime: it must have its I/O and time drivers.
    ///
    /// The check creates a socket pair and a timer once, with the context
    /// entered; tokio reports a missing driver by panicking, which this
    /// catches (the panic hook still sees it).
    ///
    /// # Errors
    ///
    /// [`ContextError::IoDisabled`] or [`ContextError::TimeDisabled`].
    pub fn new(handle: Handle) -> Result<Self, ContextError> {
        probe_io(&handle)?;
        probe_time(&handle)?;
        Ok(TokioContext { handle })
    }

    /// The runtime entered on the calling thread, checked as by
    /// [`TokioContext::new`].
    ///
    /// # Errors
    ///
    /// [`ContextError::NoRuntime`] outside a runtime, else as
    /// [`TokioContext::new`].
    pub fn current() -> Result<Self, ContextError> {
        let handle = Handle::try_current().map_err(|_| ContextError::NoRuntime)?;
        TokioContext::new(handle)
    }

    /// The runtime's handle.
    #[must_use]
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// What a host on this runtime declares: [`TOKIO`].
    #[must_use]
    pub fn runtime(&self) -> Runtime {
        TOKIO
    }

    /// Enters the runtime's context on this thread until the guard drops,
    /// for a call into the application made outside a runtime task.
    ///
    /// # Panics
    ///
    /// If guards of nested contexts are dropped out of order (tokio's rule).
    pub fn enter(&self) -> EnterGuard<'_> {
        self.handle.enter()
    }
}

impl fmt::Debug for TokioContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioContext")
            .field("flavor", &self.handle.runtime_flavor())
            .finish()
    }
}

/// Registers a throw-away socket with the reactor.
fn probe_io(handle: &Handle) -> Result<(), ContextError> {
    let _entered = handle.enter();
    let registered = panic::catch_unwind(AssertUnwindSafe(|| -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let (ours, _theirs) = std::os::unix::net::UnixStream::pair()?;
            ours.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(ours).map(drop)
        }
        #[cfg(not(unix))]
        {
            let socket = std::net::UdpSocket::bind(("127.0.0.1", 0))?;
            socket.set_nonblocking(true)?;
            tokio::net::UdpSocket::from_std(socket).map(drop)
        }
    }));
    match registered {
        Ok(_) => Ok(()),
        Err(_) => Err(ContextError::IoDisabled),
    }
}

/// Creates a throw-away timer.
fn probe_time(handle: &Handle) -> Result<(), ContextError> {
    let _entered = handle.enter();
    panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO)))
        .map_err(|_| ContextError::TimeDisabled)
}
