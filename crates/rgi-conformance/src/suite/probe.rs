//! The probe application: one type a server runs for every case, wrapping
//! a synchronous or an asynchronous application chosen by the case.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use rgi::{Application, Body, BoxError, Environ, Hints, StartResponse, Startup};
use rgi_async::{AsyncApplication, AsyncBody, Threaded};

/// A synchronous application with its body boxed.
trait ErasedApp: Send + Sync {
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Box<dyn Body>, BoxError>;
    fn hints(&self) -> Hints;
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError>;
    fn shutdown(&self);
}

impl<A: Application> ErasedApp for A {
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Box<dyn Body>, BoxError> {
        Ok(Box::new(Application::call(self, environ, start)?))
    }

    fn hints(&self) -> Hints {
        Application::hints(self)
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        Application::startup(self, startup)
    }

    fn shutdown(&self) {
        Application::shutdown(self);
    }
}

/// An asynchronous application with its body boxed.
trait ErasedAsyncApp: Send + Sync {
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Pin<Box<dyn AsyncBody>>, BoxError>;
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError>;
    fn shutdown(&self);
}

impl<A: AsyncApplication> ErasedAsyncApp for A {
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Pin<Box<dyn AsyncBody>>, BoxError> {
        Ok(Box::pin(AsyncApplication::call(self, environ, start)?))
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        AsyncApplication::startup(self, startup)
    }

    fn shutdown(&self) {
        AsyncApplication::shutdown(self);
    }
}

/// A shared synchronous application, as an [`Application`] again.
#[derive(Clone)]
struct SharedApp(Arc<dyn ErasedApp>);

#[derive(Clone)]
enum Kind {
    Sync {
        app: SharedApp,
        threaded: Threaded<SharedApp>,
    },
    Async(Arc<dyn ErasedAsyncApp>),
}

/// The application a case hands to [`ServerUnderTest::start`]: a
/// synchronous or an asynchronous application behind one type.
///
/// A synchronous server calls it as an [`Application`]; an asynchronous
/// server as an [`AsyncApplication`], and a synchronous probe then runs on
/// the server's offload threads through [`Threaded`]. The runner never
/// hands an asynchronous probe to a server that does not claim
/// [`Claims::asynchronous`]; if one arrives anyway, `call` fails and the
/// server answers 500.
///
/// [`ServerUnderTest::start`]: super::ServerUnderTest::start
/// [`Claims::asynchronous`]: super::Claims::asynchronous
///
/// # Examples
///
/// ```
/// use rgi_conformance::suite::Probe;
///
/// let probe = Probe::sync(rgi::from_fn(|_environ, start| {
///     start.start(http::StatusCode::OK)?;
///     Ok(bytes::Bytes::from_static(b"ok"))
/// }));
/// assert!(!probe.is_async());
/// ```
#[derive(Clone)]
pub struct Probe(Kind);

impl Probe {
    /// A probe around a synchronous application.
    pub fn sync(app: impl Application) -> Self {
        let app = SharedApp(Arc::new(app));
        Probe(Kind::Sync {
            threaded: Threaded::new(app.clone()),
            app,
        })
    }

    /// A probe around an asynchronous application.
    pub fn asynchronous(app: impl AsyncApplication) -> Self {
        Probe(Kind::Async(Arc::new(app)))
    }

    /// Whether it wraps an asynchronous application.
    #[must_use]
    pub fn is_async(&self) -> bool {
        matches!(self.0, Kind::Async(_))
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("async", &self.is_async())
            .finish_non_exhaustive()
    }
}

impl Application for SharedApp {
    type Body = Box<dyn Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Box<dyn Body>, BoxError> {
        ErasedApp::call(&*self.0, environ, start)
    }

    fn hints(&self) -> Hints {
        ErasedApp::hints(&*self.0)
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        ErasedApp::startup(&*self.0, startup)
    }

    fn shutdown(&self) {
        ErasedApp::shutdown(&*self.0);
    }
}

impl Application for Probe {
    type Body = Box<dyn Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Box<dyn Body>, BoxError> {
        match &self.0 {
            Kind::Sync { app, .. } => Application::call(app, environ, start),
            Kind::Async(_) => {
                Err("an asynchronous probe was handed to a synchronous server".into())
            }
        }
    }

    fn hints(&self) -> Hints {
        match &self.0 {
            Kind::Sync { app, .. } => Application::hints(app),
            Kind::Async(_) => Hints::default(),
        }
    }

    /// The wrapped application's start-up (`[RGI-LIFE-4]`); an
    /// asynchronous probe's too, so that a server that declares lifespan
    /// and mistakes the kind still runs it.
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        match &self.0 {
            Kind::Sync { app, .. } => Application::startup(app, startup),
            Kind::Async(app) => app.startup(startup),
        }
    }

    /// The wrapped application's shut-down (`[RGI-LIFE-4]`).
    fn shutdown(&self) {
        match &self.0 {
            Kind::Sync { app, .. } => Application::shutdown(app),
            Kind::Async(app) => app.shutdown(),
        }
    }
}

impl AsyncApplication for Probe {
    type Body = Pin<Box<dyn AsyncBody>>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Pin<Box<dyn AsyncBody>>, BoxError> {
        match &self.0 {
            Kind::Sync { threaded, .. } => {
                Ok(Box::pin(AsyncApplication::call(threaded, environ, start)?))
            }
            Kind::Async(app) => app.call(environ, start),
        }
    }

    /// The wrapped application's start-up, through `Threaded` for a
    /// synchronous one (`[RGIA-LIFE-2]`).
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        match &self.0 {
            Kind::Sync { threaded, .. } => AsyncApplication::startup(threaded, startup),
            Kind::Async(app) => app.startup(startup),
        }
    }

    /// The wrapped application's shut-down (`[RGIA-LIFE-2]`).
    fn shutdown(&self) {
        match &self.0 {
            Kind::Sync { threaded, .. } => AsyncApplication::shutdown(threaded),
            Kind::Async(app) => app.shutdown(),
        }
    }
}
