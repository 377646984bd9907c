//! Shared by the examples: the test driver (a minimal server loop,
//! `block_on`, a thread-per-job offload service and, on Unix, the
//! poller-backed readiness service), reused from `tests/support`. Bodies
//! that answer once a future resolves are the crate's own
//! `rgi_async::from_async_fn`.

#![allow(dead_code, unused_imports, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use rgi::{BoxError, Environ, ResponseHead, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Capabilities, Offload, Step};

// Test machinery: an unwrap there is a bug in the driver, not a user error.
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "../../tests/support/mod.rs"]
mod driver;

#[cfg(unix)]
pub use driver::poller::PollerReadiness;
pub use driver::{Fed, Served, ThreadPerJob, block_on};

/// A boxed future a body can poll from `poll_step`.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The capabilities of the examples' server: thread-per-job offload and,
/// on Unix, a real poller.
///
/// # Errors
///
/// If the poller cannot be created.
pub fn capabilities() -> std::io::Result<Capabilities> {
    let builder = Capabilities::builder(Offload::new(ThreadPerJob));
    #[cfg(unix)]
    let builder = builder.readiness(rgi_async::Readiness::new(PollerReadiness::new()?));
    Ok(builder.build())
}

/// Serves one request to `app` with the examples' capabilities (and
/// `input`, if given), prints the response and returns what was served.
///
/// # Errors
///
/// Whatever the application or the transport reports.
pub fn serve_and_print<A: AsyncApplication>(
    label: &str,
    app: &A,
    input: Option<rgi::Input>,
) -> Result<Served, BoxError> {
    let mut environ = Environ::builder().extension(capabilities()?);
    if let Some(input) = input {
        environ = environ.input(input);
    }
    let served = driver::serve(app, environ.build()?)?;
    let status = served
        .wire
        .heads()
        .first()
        .map_or_else(|| "no head".to_owned(), |head| head.status().to_string());
    let body = served.wire.body();
    #[allow(clippy::print_stdout, reason = "examples print their responses")]
    {
        println!("[{label}] {status}");
        println!("{}", String::from_utf8_lossy(&body).trim_end());
    }
    Ok(served)
}
