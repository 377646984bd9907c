//! The two sides of the comparison: bare hyper's hello-world, and the same
//! answer as a synchronous and an asynchronous RGI application.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rgi::{BoxError, Environ, ResponseHead, StartResponse};
use tokio::net::TcpStream;

/// The path the benchmark requests.
pub const HELLO_PATH: &str = "/hello";

/// The body every mode answers [`HELLO_PATH`] with (13 bytes).
pub const HELLO_BODY: &[u8] = b"Hello, world!";

/// The one handler both RGI applications share: `200 text/plain` with
/// [`HELLO_BODY`] for [`HELLO_PATH`], an empty 404 otherwise.
///
/// # Errors
///
/// None in practice: starting a fresh response with a valid head succeeds.
pub fn hello(environ: &Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
    if environ.path_info() != HELLO_PATH {
        start.start(StatusCode::NOT_FOUND)?;
        return Ok(Bytes::new());
    }
    start.start(
        ResponseHead::new(StatusCode::OK)
            .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain")),
    )?;
    Ok(Bytes::from_static(HELLO_BODY))
}

/// The hello application, synchronous (served inline by the adapter).
pub fn sync_hello()
-> rgi::FnApplication<impl Fn(Environ, &mut StartResponse<'_>) -> Result<Bytes, BoxError> + Copy> {
    rgi::from_fn(|environ: Environ, start: &mut StartResponse<'_>| hello(&environ, start))
}

/// The hello application, asynchronous.
pub fn async_hello() -> rgi_async::FnAsyncApplication<
    impl Fn(Environ, &mut StartResponse<'_>) -> Result<Bytes, BoxError> + Copy,
> {
    rgi_async::from_fn(|environ: Environ, start: &mut StartResponse<'_>| hello(&environ, start))
}

/// Bare hyper's answer, configured as the RGI modes: same status, same
/// field, same body, length from the body's exact size.
#[must_use]
pub fn bare_hello(request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != HELLO_PATH {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::from_static(HELLO_BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// Serves one connection with bare hyper until the client closes it;
/// counts the requests answered.
///
/// # Errors
///
/// hyper's, when the connection fails.
pub async fn serve_bare(stream: TcpStream, served: Arc<AtomicU64>) -> Result<(), hyper::Error> {
    // Shaped as the RGI adapter is: answered inside `Service::call` with a
    // ready future, the request dropped before hyper reads the next one (so
    // hyper reuses its read buffer instead of allocating another). Written
    // as the usual `async move` block, bare hyper costs about 580
    // instructions and 2 allocations a request more, and the comparison
    // would flatter RGI.
    let service = hyper::service::service_fn(|request: Request<Incoming>| {
        let response = bare_hello(&request);
        drop(request);
        served.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok::<_, Infallible>(response))
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
}
