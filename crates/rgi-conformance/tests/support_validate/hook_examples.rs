//! Broken examples for the checks that need the rgi crate's hooks
//! (issue 11 §2): a response state made for the wrong method.

use bytes::Bytes;
use http::{Method, StatusCode};
use rgi::{Application, ResponseState};
use rgi_conformance::Violation;
use rgi_conformance::validate::Validator;

use super::common::{build, collect, environ, text};

/// Calls the validator with a state made for `state` while the environ says `method`.
pub(crate) fn served_with_state(method: Method, state: &Method) -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(
        rgi::from_fn(|_environ: rgi::Environ, start| {
            start.start(text(StatusCode::OK))?;
            Ok(Bytes::from_static(b"page"))
        }),
        reports.clone(),
    );
    let mut state = ResponseState::new(state);
    let mut sink = rgi_conformance::rt::Recorder::new();
    let _ = validator.call(
        build(environ().method(method)),
        &mut state.start_response(&mut sink),
    );
    drop(validator);
    reports.all()
}

/// A server that made the state of a HEAD request for GET.
pub(crate) fn head_state_not_head() -> Vec<Violation> {
    served_with_state(Method::HEAD, &Method::GET)
}

/// A server that mapped HEAD to GET in the environ.
pub(crate) fn head_state_for_other_method() -> Vec<Violation> {
    served_with_state(Method::GET, &Method::HEAD)
}

/// Serves a two-chunk asynchronous application whose request's
/// capabilities declare `Runtime::Tokio`, on the calling thread.
#[cfg(feature = "tokio-context")]
pub(crate) fn served_declaring_tokio() -> Vec<Violation> {
    use super::common::{capabilities, serve_asynchronously};
    let app = rgi_async::from_fn(|_environ: rgi::Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"tokio"))
    });
    let caps = capabilities().runtime(rgi_async::Runtime::Tokio).build();
    serve_asynchronously(app, build(environ().extension(caps)))
}

/// A server that declares tokio and polls outside its context.
#[cfg(feature = "tokio-context")]
pub(crate) fn runtime_context_not_entered() -> Vec<Violation> {
    served_declaring_tokio()
}
