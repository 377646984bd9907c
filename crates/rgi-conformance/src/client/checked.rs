//! Where the clients put the validator around the application.
//!
//! The validator (`crate::validate`) is written alongside the client; until
//! it exists the clients run the bare application and report no
//! violations.

use rgi::Application;
use rgi_async::AsyncApplication;

use crate::Reports;

/// A synchronous application as the client runs it.
pub(crate) type Checked<A> = A;

/// Wraps a synchronous application for the client.
pub(crate) fn sync<A: Application>(app: A, _reports: &Reports) -> Checked<A> {
    app
}

/// An asynchronous application as the client runs it.
pub(crate) type CheckedAsync<A> = A;

/// Wraps an asynchronous application for the client.
pub(crate) fn asynchronous<A: AsyncApplication>(app: A, _reports: &Reports) -> CheckedAsync<A> {
    app
}
