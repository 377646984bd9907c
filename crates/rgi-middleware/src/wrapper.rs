//! The type of a middleware in front of an application. Its
//! implementations of both application traits, and its body, are in
//! `wrapped`; this module depends on nothing else of the crate, so that
//! `middleware` (whose `wrap` makes one) and `wrapped` depend on it one way.

use std::fmt;
use std::sync::Arc;

/// A [`Middleware`](crate::Middleware) in front of an application: an [`rgi::Application`]
/// when `A` is one, an [`rgi_async::AsyncApplication`] when `A` is one.
/// Made by [`Middleware::wrap`](crate::Middleware::wrap) or [`Wrapped::new`].
///
/// Start-up and shut-down are forwarded (`RGI-LIFE-4`, `RGIA-LIFE-2`): the
/// inner application's start-up first, then the middleware's; the
/// middleware's shut-down first, then the inner application's. The inner
/// [`Hints`](rgi::Hints) pass through unchanged, since hooks never block and never
/// read the input.
///
/// # Examples
///
/// ```
/// use http::{HeaderValue, StatusCode};
/// use rgi::ResponseHead;
/// use rgi_middleware::{Incoming, Middleware};
///
/// struct NoSniff;
///
/// impl Middleware for NoSniff {
///     type State = ();
///     fn on_request(&self, _request: &mut Incoming<'_>) {}
///     fn on_head(&self, _state: &mut (), head: &mut ResponseHead) {
///         head.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
///     }
/// }
///
/// let hello = |_environ, start: &mut rgi::StartResponse<'_>| {
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(String::from("hello"))
/// };
/// let sync_app = NoSniff.wrap(rgi::from_fn(hello)); // an rgi::Application
/// let async_app = NoSniff.wrap(rgi_async::from_fn(hello)); // an rgi_async::AsyncApplication
/// # fn is_sync<A: rgi::Application>(_: &A) {}
/// # fn is_async<A: rgi_async::AsyncApplication>(_: &A) {}
/// # is_sync(&sync_app);
/// # is_async(&async_app);
/// ```
pub struct Wrapped<M, A> {
    pub(crate) middleware: Arc<M>,
    pub(crate) app: A,
}

impl<M, A> Wrapped<M, A> {
    /// `app` behind `middleware`.
    pub fn new(middleware: M, app: A) -> Self {
        Wrapped {
            middleware: Arc::new(middleware),
            app,
        }
    }

    /// The middleware.
    #[must_use]
    pub fn middleware(&self) -> &M {
        &self.middleware
    }

    /// The wrapped application.
    #[must_use]
    pub fn get_ref(&self) -> &A {
        &self.app
    }
}

impl<M, A: Clone> Clone for Wrapped<M, A> {
    fn clone(&self) -> Self {
        Wrapped {
            middleware: Arc::clone(&self.middleware),
            app: self.app.clone(),
        }
    }
}

impl<M, A: fmt::Debug> fmt::Debug for Wrapped<M, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wrapped")
            .field("middleware", &std::any::type_name::<M>())
            .field("app", &self.app)
            .finish()
    }
}
