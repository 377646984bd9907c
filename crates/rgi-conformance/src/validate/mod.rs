//! The validator middleware: wraps an application and checks both sides of
//! the interface at run time, naming the clause of every violation.
//!
//! (Early public API; the checks are being added.)

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use rgi::{Application, Body, BoxError, Environ, FileBody, Hints, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Step};

use crate::{Check, Policy, Reports};

/// Every check the validator makes.
pub const CHECKS: &[Check] = &[Check::new(
    "start_twice",
    &["RGI-START-7", "RGI-START-8"],
    "the application calls start at most once per response",
)];

/// Wraps a synchronous application and checks both sides of the interface.
#[derive(Debug)]
pub struct Validator<A> {
    app: A,
    reports: Reports,
}

impl<A> Validator<A> {
    /// Wraps `app`, sending violations to `reports`.
    pub fn new(app: A, reports: Reports) -> Self {
        Validator { app, reports }
    }

    /// Wraps `app` with [`Policy::Panic`].
    pub fn panicking(app: A) -> Self {
        Validator::new(app, Reports::new(Policy::Panic))
    }

    /// The violations seen so far.
    pub fn reports(&self) -> &Reports {
        &self.reports
    }
}

/// The body of a [`Validator`].
#[derive(Debug)]
pub struct ValidatedBody<B> {
    inner: B,
}

impl<A: Application> Application for Validator<A> {
    type Body = ValidatedBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let inner = self.app.call(environ, start)?;
        Ok(ValidatedBody { inner })
    }

    fn hints(&self) -> Hints {
        self.app.hints()
    }
}

impl<B: Body> Body for ValidatedBody<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.inner.next_chunk(start)
    }

    fn size_hint(&self) -> Option<u64> {
        self.inner.size_hint()
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        self.inner.file()
    }
}

/// Wraps an asynchronous application and checks both sides of the
/// interface.
#[derive(Debug)]
pub struct AsyncValidator<A> {
    app: A,
    reports: Reports,
}

impl<A> AsyncValidator<A> {
    /// Wraps `app`, sending violations to `reports`.
    pub fn new(app: A, reports: Reports) -> Self {
        AsyncValidator { app, reports }
    }

    /// Wraps `app` with [`Policy::Panic`].
    pub fn panicking(app: A) -> Self {
        AsyncValidator::new(app, Reports::new(Policy::Panic))
    }

    /// The violations seen so far.
    pub fn reports(&self) -> &Reports {
        &self.reports
    }
}

/// The body of an [`AsyncValidator`].
#[derive(Debug)]
pub struct AsyncValidatedBody<B> {
    inner: Pin<Box<B>>,
}

impl<A: AsyncApplication> AsyncApplication for AsyncValidator<A> {
    type Body = AsyncValidatedBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let inner = Box::pin(self.app.call(environ, start)?);
        Ok(AsyncValidatedBody { inner })
    }
}

impl<B: AsyncBody> AsyncBody for AsyncValidatedBody<B> {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        self.inner.as_mut().poll_step(cx, start)
    }

    fn size_hint(&self) -> Option<u64> {
        self.inner.size_hint()
    }
}
