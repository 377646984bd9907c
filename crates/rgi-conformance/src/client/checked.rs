//! Where the clients put the validator around the application: every
//! request runs through [`Validator`] or [`AsyncValidator`] with the
//! client's [`Reports`], under [`Policy::Collect`](crate::Policy::Collect).

use rgi::Application;
use rgi_async::AsyncApplication;

use crate::Reports;
use crate::validate::{AsyncValidator, Validator};

/// A synchronous application as the client runs it.
pub(crate) type Checked<A> = Validator<A>;

/// Wraps a synchronous application for the client.
pub(crate) fn sync<A: Application>(app: A, reports: &Reports) -> Checked<A> {
    Validator::new(app, reports.clone())
}

/// An asynchronous application as the client runs it.
pub(crate) type CheckedAsync<A> = AsyncValidator<A>;

/// Wraps an asynchronous application for the client.
pub(crate) fn asynchronous<A: AsyncApplication>(app: A, reports: &Reports) -> CheckedAsync<A> {
    AsyncValidator::new(app, reports.clone())
}
