//! Type-erased applications, so that applications of different types fit
//! behind one [`Router`](crate::Router).

use std::fmt;
use std::pin::Pin;

use rgi::{Application, Body, BoxError, Environ, Hints, StartResponse, Startup};
use rgi_async::{AsyncApplication, AsyncBody};

/// The object-safe face of an [`rgi::Application`].
trait DynApplication: Send + Sync + 'static {
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Box<dyn Body>, BoxError>;
    fn hints(&self) -> Hints;
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError>;
    fn shutdown(&self);
}

impl<A: Application> DynApplication for A {
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Box<dyn Body>, BoxError> {
        let body = Application::call(self, environ, start)?;
        Ok(Box::new(body))
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

/// Any [`rgi::Application`], boxed: one type for applications of many
/// types (the routes of one [`Router`](crate::Router)). Its body is boxed
/// too, an allocation per request; hints, start-up and shut-down pass
/// through.
///
/// # Examples
///
/// ```
/// use http::StatusCode;
/// use rgi::ResponseHead;
/// use rgi_middleware::{BoxApplication, Mount, Router};
///
/// let text = rgi::from_fn(|_e, start: &mut rgi::StartResponse<'_>| {
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(String::from("text"))
/// });
/// let parts = rgi::from_fn(|_e, start: &mut rgi::StartResponse<'_>| {
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(rgi::from_iter(["two ", "parts"]))
/// });
/// let router = Router::new()
///     .mount(Mount::at("/text")?, BoxApplication::new(text))
///     .mount(Mount::at("/parts")?, BoxApplication::new(parts));
/// # let client = rgi_conformance::client::TestClient::new(router);
/// # assert_eq!(client.get("/parts")?.text(), "two parts");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BoxApplication(Box<dyn DynApplication>);

impl BoxApplication {
    /// `app`, boxed.
    pub fn new(app: impl Application) -> Self {
        BoxApplication(Box::new(app))
    }
}

impl fmt::Debug for BoxApplication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxApplication").finish_non_exhaustive()
    }
}

impl Application for BoxApplication {
    type Body = Box<dyn Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        self.0.call(environ, start)
    }

    fn hints(&self) -> Hints {
        self.0.hints()
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.0.startup(startup)
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}

/// A boxed asynchronous body.
pub type BoxAsyncBody = Pin<Box<dyn AsyncBody>>;

/// The object-safe face of an [`rgi_async::AsyncApplication`].
trait DynAsyncApplication: Send + Sync + 'static {
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<BoxAsyncBody, BoxError>;
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError>;
    fn shutdown(&self);
}

impl<A: AsyncApplication> DynAsyncApplication for A {
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<BoxAsyncBody, BoxError> {
        let body = AsyncApplication::call(self, environ, start)?;
        Ok(Box::pin(body))
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        AsyncApplication::startup(self, startup)
    }

    fn shutdown(&self) {
        AsyncApplication::shutdown(self);
    }
}

/// Any [`rgi_async::AsyncApplication`], boxed, as [`BoxApplication`] is
/// for synchronous ones; its body is a pinned box.
///
/// # Examples
///
/// ```
/// use rgi_middleware::{BoxAsyncApplication, Mount, Router};
///
/// let hello = rgi_async::from_fn(|_e, start: &mut rgi::StartResponse<'_>| {
///     start.start(http::StatusCode::OK)?;
///     Ok(String::from("hello"))
/// });
/// let router = Router::new().mount(Mount::at("/")?, BoxAsyncApplication::new(hello));
/// # let client = rgi_conformance::client::AsyncTestClient::new(router);
/// # assert_eq!(client.get("/x")?.text(), "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BoxAsyncApplication(Box<dyn DynAsyncApplication>);

impl BoxAsyncApplication {
    /// `app`, boxed.
    pub fn new(app: impl AsyncApplication) -> Self {
        BoxAsyncApplication(Box::new(app))
    }
}

impl fmt::Debug for BoxAsyncApplication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxAsyncApplication")
            .finish_non_exhaustive()
    }
}

impl AsyncApplication for BoxAsyncApplication {
    type Body = BoxAsyncBody;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        self.0.call(environ, start)
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.0.startup(startup)
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}
