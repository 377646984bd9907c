//! The application object and how a server calls it (spec/rgi.md, "The
//! application").

use std::fmt;
use std::sync::Arc;

use crate::body::Body;
use crate::box_error::BoxError;
use crate::environ::Environ;
use crate::hints::Hints;
use crate::response::StartResponse;

/// A web application: called once per request, from any thread, possibly
/// many times at once.
///
/// `Send + Sync + 'static` is the type-level form of WSGI's "may be invoked
/// concurrently" (`[RGI-APP-2]`); per-request state belongs in the body, not
/// in `self`.
///
/// # Examples
///
/// ```
/// use rgi::{Application, BoxError, Environ, ResponseHead, StartResponse};
/// use bytes::Bytes;
/// use http::{header, HeaderValue, StatusCode};
///
/// struct Hello;
///
/// impl Application for Hello {
///     type Body = Bytes;
///
///     fn call(&self, _environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
///         start.start(
///             ResponseHead::new(StatusCode::OK)
///                 .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
///         )?;
///         Ok(Bytes::from_static(b"Hello, world!\n"))
///     }
/// }
/// ```
pub trait Application: Send + Sync + 'static {
    /// The body this application returns.
    type Body: Body + 'static;

    /// Handles one request: reads what it needs of `environ`, starts the
    /// response with `start` (now, or later inside the body), and returns
    /// the body.
    ///
    /// # Errors
    ///
    /// Any error that prevents a response. Before the head is sent the
    /// server answers 500; after, it ends the response abnormally
    /// (`[RGI-FAIL-3]`, `[RGI-FAIL-5]`).
    fn call(&self, environ: Environ, start: &mut StartResponse<'_>)
    -> Result<Self::Body, BoxError>;

    /// What the application promises about itself (`[RGI-HINT-1]`).
    fn hints(&self) -> Hints {
        Hints::default()
    }
}

impl<A: Application + ?Sized> Application for Arc<A> {
    type Body = A::Body;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        (**self).call(environ, start)
    }

    fn hints(&self) -> Hints {
        (**self).hints()
    }
}

impl<A: Application + ?Sized> Application for Box<A> {
    type Body = A::Body;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        (**self).call(environ, start)
    }

    fn hints(&self) -> Hints {
        (**self).hints()
    }
}

/// An application made from a closure; see [`from_fn`].
#[derive(Clone, Copy)]
pub struct FnApplication<F> {
    handler: F,
    hints: Hints,
}

/// An application that calls `handler` for each request.
///
/// # Examples
///
/// ```
/// use rgi::{Hints, InputUse, ResponseHead};
/// use http::StatusCode;
///
/// let app = rgi::from_fn(|_environ, start| {
///     start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
///     Ok(rgi::Empty)
/// })
/// .with_hints(Hints::default().with_input(InputUse::None).with_may_block(false));
/// # let _ = app;
/// ```
pub fn from_fn<F, B>(handler: F) -> FnApplication<F>
where
    F: Fn(Environ, &mut StartResponse<'_>) -> Result<B, BoxError> + Send + Sync + 'static,
    B: Body + 'static,
{
    FnApplication {
        handler,
        hints: Hints::default(),
    }
}

impl<F> FnApplication<F> {
    /// This application with `hints` declared.
    #[must_use]
    pub fn with_hints(mut self, hints: Hints) -> Self {
        self.hints = hints;
        self
    }
}

impl<F, B> Application for FnApplication<F>
where
    F: Fn(Environ, &mut StartResponse<'_>) -> Result<B, BoxError> + Send + Sync + 'static,
    B: Body + 'static,
{
    type Body = B;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<B, BoxError> {
        (self.handler)(environ, start)
    }

    fn hints(&self) -> Hints {
        self.hints
    }
}

impl<F> fmt::Debug for FnApplication<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnApplication")
            .field("handler", &std::any::type_name::<F>())
            .field("hints", &self.hints)
            .finish()
    }
}
