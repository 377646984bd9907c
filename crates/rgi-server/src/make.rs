//! What the server serves: one tower service per connection.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use rgi::ConnectionInfo;

use crate::BoxError;

/// Makes the service that answers one connection's requests.
///
/// The server calls [`connection`](Self::connection) once per connection,
/// after the TLS handshake, with the connection's [`ConnectionInfo`] (built
/// once, RGI-CONN-6), and clones the returned service for each request.
///
/// Any `Fn(Arc<ConnectionInfo>) -> S` is a factory, where `S` is a
/// `tower_service::Service` over hyper's request body:
///
/// ```
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use bytes::Bytes;
///
/// fn assert_factory<F: rgi_server::ServiceFactory>(_: &F) {}
///
/// #[derive(Clone)]
/// struct Hello;
/// impl tower_service::Service<Request<hyper::body::Incoming>> for Hello {
///     type Response = Response<Full<Bytes>>;
///     type Error = Infallible;
///     type Future = std::future::Ready<Result<Self::Response, Infallible>>;
///     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
///         std::task::Poll::Ready(Ok(()))
///     }
///     fn call(&mut self, _: Request<hyper::body::Incoming>) -> Self::Future {
///         std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"hello")))))
///     }
/// }
///
/// let factory = |_info: Arc<rgi::ConnectionInfo>| Hello;
/// assert_factory(&factory);
/// ```
pub trait ServiceFactory: Send + Sync + 'static {
    /// The per-connection service.
    type Service: tower_service::Service<
            Request<Incoming>,
            Response = Response<Self::Body>,
            Error = Self::Error,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static;
    /// The response body.
    type Body: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;
    /// The service's error; a response future that fails closes the
    /// connection (HTTP/1.1) or resets the stream (HTTP/2).
    type Error: Into<BoxError> + Send + 'static;

    /// The service for one connection.
    fn connection(&self, info: Arc<ConnectionInfo>) -> Self::Service;
}

impl<F, S, B> ServiceFactory for F
where
    F: Fn(Arc<ConnectionInfo>) -> S + Send + Sync + 'static,
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    type Service = S;
    type Body = B;
    type Error = S::Error;

    fn connection(&self, info: Arc<ConnectionInfo>) -> S {
        self(info)
    }
}
