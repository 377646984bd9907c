//! The asynchronous application (spec/rgi-async.md, "The asynchronous
//! application").

use std::fmt;
use std::sync::Arc;

use rgi::{BoxError, Environ, StartResponse, Startup};

use crate::body::AsyncBody;

/// A web application whose body is polled instead of pulled: it never
/// blocks the server's event loop.
///
/// `call` runs on the event loop, so it must not block; it inspects the
/// request, may start the response, and returns an [`AsyncBody`] that does
/// the waiting. Blocking work goes through [`Offload`](crate::Offload) or
/// the [`SyncSwitch`](crate::SyncSwitch).
///
/// # Examples
///
/// ```
/// use rgi::{BoxError, Environ, ResponseHead, StartResponse};
/// use rgi_async::AsyncApplication;
/// use bytes::Bytes;
/// use http::StatusCode;
///
/// struct Hello;
///
/// impl AsyncApplication for Hello {
///     type Body = Bytes;
///
///     fn call(&self, _environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
///         start.start(ResponseHead::new(StatusCode::OK))?;
///         Ok(Bytes::from_static(b"Hello, world!\n"))
///     }
/// }
/// ```
pub trait AsyncApplication: Send + Sync + 'static {
    /// The body this application returns.
    type Body: AsyncBody + 'static;

    /// Handles one request without blocking: reads what it needs of
    /// `environ`, starts the response with `start` (now, or later inside the
    /// body), and returns the body.
    ///
    /// # Errors
    ///
    /// Any error that prevents a response; the server handles it as for a
    /// synchronous application (500 before the head is sent, an abnormal
    /// end after).
    fn call(&self, environ: Environ, start: &mut StartResponse<'_>)
    -> Result<Self::Body, BoxError>;

    /// Prepares the application before its first request, as
    /// [`rgi::Application::startup`] does; the server calls it off its
    /// event-loop threads, so it may block (`[RGIA-LIFE-1]`). The default
    /// does nothing.
    ///
    /// # Errors
    ///
    /// Anything that makes serving impossible: the server does not serve.
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        let _ = startup;
        Ok(())
    }

    /// Releases what [`startup`](Self::startup) acquired, once, after the
    /// last response on a graceful stop, off the event-loop threads
    /// (`[RGIA-LIFE-1]`). The default does nothing.
    fn shutdown(&self) {}
}

impl<A: AsyncApplication + ?Sized> AsyncApplication for Arc<A> {
    type Body = A::Body;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        (**self).call(environ, start)
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        (**self).startup(startup)
    }

    fn shutdown(&self) {
        (**self).shutdown();
    }
}

impl<A: AsyncApplication + ?Sized> AsyncApplication for Box<A> {
    type Body = A::Body;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        (**self).call(environ, start)
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        (**self).startup(startup)
    }

    fn shutdown(&self) {
        (**self).shutdown();
    }
}

/// An asynchronous application made from a closure; see [`from_fn`].
#[derive(Clone, Copy)]
pub struct FnAsyncApplication<F> {
    handler: F,
}

/// An asynchronous application that calls `handler` for each request.
///
/// # Examples
///
/// ```
/// use rgi::ResponseHead;
/// use http::StatusCode;
///
/// let app = rgi_async::from_fn(|_environ, start| {
///     start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
///     Ok(rgi::Empty)
/// });
/// # let _ = app;
/// ```
pub fn from_fn<F, B>(handler: F) -> FnAsyncApplication<F>
where
    F: Fn(Environ, &mut StartResponse<'_>) -> Result<B, BoxError> + Send + Sync + 'static,
    B: AsyncBody + 'static,
{
    FnAsyncApplication { handler }
}

impl<F, B> AsyncApplication for FnAsyncApplication<F>
where
    F: Fn(Environ, &mut StartResponse<'_>) -> Result<B, BoxError> + Send + Sync + 'static,
    B: AsyncBody + 'static,
{
    type Body = B;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<B, BoxError> {
        (self.handler)(environ, start)
    }
}

impl<F> fmt::Debug for FnAsyncApplication<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnAsyncApplication")
            .field("handler", &std::any::type_name::<F>())
            .finish()
    }
}
