//! The application object and how a server calls it (spec/rgi.md, "The
//! application").

use std::fmt;
use std::sync::Arc;

use crate::body::Body;
use crate::box_error::BoxError;
use crate::environ::Environ;
use crate::hints::Hints;
use crate::lifespan::Startup;
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

    /// Prepares the application before its first request: opens pools,
    /// loads configuration, and shares what every request needs with
    /// [`Startup::insert_state`] (`[RGI-LIFE-1]`). A server that declares
    /// [`Features::lifespan`](crate::Features::lifespan) calls it once, on a
    /// thread that may block, before it accepts a request. The default does
    /// nothing.
    ///
    /// # Errors
    ///
    /// Anything that makes serving impossible: the server then does not
    /// serve and reports the error (`[RGI-LIFE-2]`).
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        let _ = startup;
        Ok(())
    }

    /// Releases what [`startup`](Self::startup) acquired, once, after the
    /// last response on a graceful stop (`[RGI-LIFE-3]`). The default does
    /// nothing.
    fn shutdown(&self) {}
}

impl<A: Application + ?Sized> Application for Arc<A> {
    type Body = A::Body;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        (**self).call(environ, start)
    }

    fn hints(&self) -> Hints {
        (**self).hints()
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        (**self).startup(startup)
    }

    fn shutdown(&self) {
        (**self).shutdown();
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

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        (**self).startup(startup)
    }

    fn shutdown(&self) {
        (**self).shutdown();
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

/// An application with a start-up and a shut-down added, made by
/// [`with_lifespan`].
#[derive(Clone, Copy)]
pub struct WithLifespan<A, S, D> {
    app: A,
    startup: S,
    shutdown: D,
}

/// Gives `app` a start-up and a shut-down without writing an
/// [`Application`] impl (`[RGI-LIFE-1]`, `[RGI-LIFE-3]`): `startup` runs
/// before the first request and shares state through [`Startup`];
/// `shutdown` runs after the last response.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use http::StatusCode;
/// use rgi::Application;
///
/// #[derive(Clone, Default)]
/// struct Hits(Arc<AtomicU64>);
///
/// let app = rgi::with_lifespan(
///     rgi::from_fn(|environ, start| {
///         let hits = environ.server_extension::<Hits>().ok_or("started without its state")?;
///         let n = hits.0.fetch_add(1, Ordering::Relaxed) + 1;
///         start.start(StatusCode::OK)?;
///         Ok(format!("hit {n}"))
///     }),
///     |startup| {
///         startup.insert_state(Hits::default());
///         Ok(())
///     },
///     || eprintln!("closing"),
/// );
/// let server = rgi::run_startup(rgi::ServerInfo::new("localhost", 80)?, |s| app.startup(s))?;
/// assert!(server.extension::<Hits>().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn with_lifespan<A, S, D>(app: A, startup: S, shutdown: D) -> WithLifespan<A, S, D>
where
    A: Application,
    S: Fn(&mut Startup<'_>) -> Result<(), BoxError> + Send + Sync + 'static,
    D: Fn() + Send + Sync + 'static,
{
    WithLifespan {
        app,
        startup,
        shutdown,
    }
}

impl<A, S, D> Application for WithLifespan<A, S, D>
where
    A: Application,
    S: Fn(&mut Startup<'_>) -> Result<(), BoxError> + Send + Sync + 'static,
    D: Fn() + Send + Sync + 'static,
{
    type Body = A::Body;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        self.app.call(environ, start)
    }

    fn hints(&self) -> Hints {
        self.app.hints()
    }

    /// The wrapped application's start-up first, then this one's.
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.app.startup(startup)?;
        (self.startup)(startup)
    }

    /// This shut-down first, then the wrapped application's.
    fn shutdown(&self) {
        (self.shutdown)();
        self.app.shutdown();
    }
}

impl<A: fmt::Debug, S, D> fmt::Debug for WithLifespan<A, S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithLifespan")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}
