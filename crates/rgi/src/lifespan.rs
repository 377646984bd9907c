//! Start-up and shut-down of an application (spec/rgi.md, "Lifespan"):
//! what the application is handed at start-up, and the two calls a server
//! makes around its life so that a failure or a panic there is reported,
//! not propagated.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::box_error::BoxError;
use crate::environ::ServerInfo;

/// What an application's [`startup`](crate::Application::startup) is
/// handed: the server it will run on, and a place for the state every
/// request will share (`[RGI-LIFE-1]`).
///
/// State inserted here is a typed value, read back by every request with
/// [`Environ::server_extension`](crate::Environ::server_extension).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use rgi::{run_startup, ServerInfo};
///
/// #[derive(Clone)]
/// struct Pool(Arc<Vec<&'static str>>);
///
/// let server = run_startup(ServerInfo::new("localhost", 8080)?, |startup| {
///     assert_eq!(startup.server_info().port(), 8080);
///     startup.insert_state(Pool(Arc::new(vec!["conn-1", "conn-2"])));
///     Ok(())
/// })?;
/// assert_eq!(server.extension::<Pool>().map(|pool| pool.0.len()), Some(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Startup<'a> {
    server: &'a mut ServerInfo,
}

impl Startup<'_> {
    /// The server the application is about to run on.
    #[must_use]
    pub fn server_info(&self) -> &ServerInfo {
        self.server
    }

    /// Shares `value` with every request; returns the value of the same
    /// type inserted before, if any.
    pub fn insert_state<T>(&mut self, value: T) -> Option<T>
    where
        T: Clone + Send + Sync + 'static,
    {
        self.server.extensions_mut().insert(value)
    }
}

impl fmt::Debug for Startup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Startup")
            .field("server", &self.server.name())
            .field("port", &self.server.port())
            .finish_non_exhaustive()
    }
}

/// Runs an application's start-up against `server` and returns the server
/// description with the state the application shared, for the server to
/// put in every request's environ (`[RGI-LIFE-1]`). A panic is caught and
/// reported like an error.
///
/// A server calls it once, on a thread that may block, before it accepts
/// its first request; on an error it does not serve at all and does not
/// call [`run_shutdown`] (`[RGI-LIFE-2]`).
///
/// # Errors
///
/// [`StartupError::Failed`] with the application's error,
/// [`StartupError::Panicked`] with the panic's message.
///
/// # Examples
///
/// ```
/// use rgi::{run_startup, ServerInfo, StartupError};
///
/// let refused = run_startup(ServerInfo::new("localhost", 80)?, |_| Err("no database".into()));
/// assert!(matches!(refused, Err(StartupError::Failed(ref e)) if e.to_string() == "no database"));
/// # Ok::<(), rgi::EnvironError>(())
/// ```
pub fn run_startup<F>(mut server: ServerInfo, startup: F) -> Result<ServerInfo, StartupError>
where
    F: FnOnce(&mut Startup<'_>) -> Result<(), BoxError>,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        startup(&mut Startup {
            server: &mut server,
        })
    }));
    match outcome {
        Ok(Ok(())) => Ok(server),
        Ok(Err(error)) => Err(StartupError::Failed(error)),
        Err(payload) => Err(StartupError::Panicked(panic_message(&*payload))),
    }
}

/// Runs an application's shut-down, catching a panic: the server logs the
/// message it returns and stops as it would have (`[RGI-LIFE-3]`).
///
/// # Errors
///
/// The panic's message, when `shutdown` panicked.
///
/// # Examples
///
/// ```
/// assert_eq!(rgi::run_shutdown(|| {}), Ok(()));
/// assert_eq!(rgi::run_shutdown(|| panic!("flush failed")), Err("flush failed".to_owned()));
/// ```
pub fn run_shutdown<F: FnOnce()>(shutdown: F) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(shutdown)).map_err(|payload| panic_message(&*payload))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the start-up or shut-down panicked".to_owned())
}

/// An application's start-up failed; the server does not serve
/// (`[RGI-LIFE-2]`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The application's start-up returned this error.
    #[error("the application's start-up failed: {0}")]
    Failed(#[source] BoxError),
    /// The application's start-up panicked with this message.
    #[error("the application's start-up panicked: {0}")]
    Panicked(String),
    /// The start-up did not return within the server's start-up timeout.
    #[error("the application's start-up did not finish within {0:?}")]
    TimedOut(std::time::Duration),
}
