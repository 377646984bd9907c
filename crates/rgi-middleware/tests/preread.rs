//! `PreRead` on both stacks, with a validator on each side: the body in
//! memory before the call, 413 without the call beyond the limit, the
//! trailers kept, a failed read passed on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rgi::{Application, BoxError, Environ, Input, InputUse, StartResponse};
use rgi_async::AsyncApplication;
use rgi_conformance::client::{AsyncTestClient, TestClient, TestRequest, TestResponse};
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports};
use rgi_middleware::{Incoming, Middleware, PreRead};

use common::{assert_clean, text_head};

fn sync_stack<A: Application>(
    app: A,
    limit: usize,
) -> (TestClient<PreRead<Validator<A>>>, Reports) {
    let inner = Reports::new(Policy::Collect);
    let client = TestClient::new(PreRead::new(Validator::new(app, inner.clone()), limit));
    (client, inner)
}

fn async_stack<A: AsyncApplication>(
    app: A,
    limit: usize,
) -> (AsyncTestClient<PreRead<AsyncValidator<A>>>, Reports) {
    let inner = Reports::new(Policy::Collect);
    let client = AsyncTestClient::new(PreRead::new(AsyncValidator::new(app, inner.clone()), limit));
    (client, inner)
}

/// What the echo applications saw: the body, the `content-length` field,
/// whether `transfer-encoding` was left, the request trailer `x-sum`.
fn answer(
    environ: &Environ,
    body: Bytes,
    start: &mut StartResponse<'_>,
) -> Result<Bytes, BoxError> {
    let trailer = environ
        .input()
        .trailers()?
        .and_then(|t| t.get("x-sum").cloned());
    let mut head = text_head(Some(body.len()));
    let fields = head.headers_mut();
    if let Some(length) = environ.headers().get(CONTENT_LENGTH) {
        fields.insert("x-seen-length", length.clone());
    }
    if environ.headers().contains_key(TRANSFER_ENCODING) {
        fields.insert("x-seen-te", HeaderValue::from_static("yes"));
    }
    if let Some(trailer) = trailer {
        fields.insert("x-seen-sum", trailer);
    }
    start.start(head)?;
    Ok(body)
}

/// A synchronous echo that counts its calls.
fn sync_echo(calls: Arc<AtomicUsize>) -> impl Application {
    rgi::from_fn(move |mut environ: Environ, start: &mut StartResponse<'_>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        answer(&environ, body.into(), start)
    })
}

/// An asynchronous echo that reads its input inside `call` through the
/// non-blocking face with a waker that does nothing: it only works when
/// the whole body is already in memory, which is what is being proved.
fn async_echo(calls: Arc<AtomicUsize>) -> impl AsyncApplication {
    rgi_async::from_fn(move |mut environ: Environ, start: &mut StartResponse<'_>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut cx = Context::from_waker(Waker::noop());
        let mut body = BytesMut::new();
        loop {
            match environ.input_mut().poll_chunk(&mut cx, 4096) {
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                Poll::Ready(Ok(chunk)) => body.extend_from_slice(&chunk),
                Poll::Ready(Err(err)) => return Err(err.into()),
                Poll::Pending => return Err("the pre-read input was not in memory".into()),
            }
        }
        answer(&environ, body.freeze(), start)
    })
}

/// Runs `request` on both stacks with `limit`; returns both responses
/// and how often each application was called.
fn both(limit: usize, request: impl Fn() -> TestRequest) -> [(TestResponse, usize); 2] {
    let sync_calls = Arc::new(AtomicUsize::new(0));
    let (client, inner) = sync_stack(sync_echo(Arc::clone(&sync_calls)), limit);
    let sync_response = client.request(request()).unwrap();
    assert_clean(&sync_response, &inner);
    let async_calls = Arc::new(AtomicUsize::new(0));
    let (client, inner) = async_stack(async_echo(Arc::clone(&async_calls)), limit);
    let async_response = client.request(request()).unwrap();
    assert_clean(&async_response, &inner);
    [
        (sync_response, sync_calls.load(Ordering::SeqCst)),
        (async_response, async_calls.load(Ordering::SeqCst)),
    ]
}

#[test]
fn a_body_within_the_limit_reaches_the_application_in_memory() {
    for (response, calls) in both(16, || TestRequest::post("/", "hello, world")) {
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "hello, world");
        assert_eq!(response.header("x-seen-length"), Some("12"));
        assert_eq!(calls, 1);
    }
}

#[test]
fn a_body_of_exactly_the_limit_passes() {
    for (response, calls) in both(5, || TestRequest::post("/", "12345")) {
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "12345");
        assert_eq!(calls, 1);
    }
}

#[test]
fn a_declared_length_over_the_limit_is_413_without_the_application() {
    for (response, calls) in both(5, || TestRequest::post("/", "123456")) {
        response.assert_valid();
        assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(response.ending.is_complete());
        assert_eq!(calls, 0);
    }
}

#[test]
fn a_chunked_body_is_read_and_given_a_length() {
    let request = || TestRequest::new(Method::POST, "/").chunked(["hello", ", ", "world"]);
    for (response, calls) in both(64, request) {
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "hello, world");
        assert_eq!(response.header("x-seen-length"), Some("12"));
        assert_eq!(response.header("x-seen-te"), None);
        assert_eq!(calls, 1);
    }
}

#[test]
fn a_chunked_body_over_the_limit_is_413_without_the_application() {
    let request = || TestRequest::new(Method::POST, "/").chunked(["hello", ", ", "world"]);
    for (response, calls) in both(11, request) {
        response.assert_valid();
        assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.text(), "request body too large\n");
        assert_eq!(calls, 0);
    }
}

#[test]
fn request_trailers_are_kept() {
    let request = || {
        let mut fields = HeaderMap::new();
        fields.insert("x-sum", HeaderValue::from_static("42"));
        TestRequest::new(Method::POST, "/")
            .chunked(["ab", "cd"])
            .features(rgi::Features::none().with_request_trailers(true))
            .trailers(fields)
    };
    for (response, calls) in both(64, request) {
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "abcd");
        assert_eq!(response.header("x-seen-sum"), Some("42"));
        assert_eq!(calls, 1);
    }
}

#[test]
fn no_body_and_a_zero_limit() {
    for (response, calls) in both(0, || TestRequest::get("/")) {
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "");
        assert_eq!(response.header("x-seen-length"), None, "no field invented");
        assert_eq!(calls, 1);
    }
    let empty_chunked = || TestRequest::new(Method::POST, "/").chunked(Vec::<Bytes>::new());
    for (response, calls) in both(0, empty_chunked) {
        response.assert_ok_and_valid();
        assert_eq!(response.header("x-seen-length"), Some("0"));
        assert_eq!(calls, 1);
    }
    for (response, calls) in both(0, || TestRequest::post("/", "x")) {
        assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(calls, 0);
    }
}

#[test]
fn hints_say_the_input_is_read_whole() {
    let app = rgi::from_fn(|_environ, start: &mut StartResponse<'_>| {
        start.start(text_head(Some(0)))?;
        Ok(rgi::Empty)
    })
    .with_hints(
        rgi::Hints::default()
            .with_input(InputUse::None)
            .with_may_block(false),
    );
    let hints = PreRead::new(app, 1).hints();
    assert_eq!(hints.input, InputUse::Whole);
    assert!(!hints.may_block);
    assert!(hints.can_run_inline());
    // An application that promises nothing keeps its streaming input.
    let silent = rgi::from_fn(|_environ, start: &mut StartResponse<'_>| {
        start.start(text_head(Some(0)))?;
        Ok(rgi::Empty)
    });
    assert_eq!(PreRead::new(silent, 1).hints(), rgi::Hints::default());
}

/// Swaps the request's input for one with no non-blocking face.
struct BlockingInput;

impl Middleware for BlockingInput {
    type State = ();
    fn on_request(&self, request: &mut Incoming<'_>) {
        let environ = request.environ_mut();
        let length = environ.input().content_length();
        let mut original = environ.replace_input(Input::empty());
        let mut body = Vec::new();
        // The client's input is in memory here; this only changes its face.
        original.read_to_end(&mut body).unwrap();
        environ.replace_input(Input::new(std::io::Cursor::new(body), length));
    }
}

#[test]
fn an_input_without_a_non_blocking_face_fails_on_the_async_stack() {
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = Reports::new(Policy::Collect);
    let app = BlockingInput.wrap(PreRead::new(
        AsyncValidator::new(async_echo(Arc::clone(&calls)), inner.clone()),
        64,
    ));
    let client = AsyncTestClient::new(app).with_diagnosis(false);
    let response = client.request(TestRequest::post("/", "abc")).unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        response
            .ending
            .error()
            .is_some_and(|e| e.contains("non-blocking face")),
        "{:?}",
        response.ending
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(inner.take().is_empty());
}

#[test]
fn a_malformed_body_is_the_clients_fault() {
    // A chunked input whose source fails: the error passes on before the
    // head, and the server answers the status it names.
    struct Broken;
    impl Middleware for Broken {
        type State = ();
        fn on_request(&self, request: &mut Incoming<'_>) {
            struct Fails;
            impl Read for Fails {
                fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                    Err(rgi::InputError::MalformedBody {
                        reason: "bad chunk size".into(),
                    }
                    .into())
                }
            }
            request.environ_mut().replace_input(Input::new(Fails, None));
            request.environ_mut().headers_mut().remove(CONTENT_LENGTH);
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = Reports::new(Policy::Collect);
    let app = Broken.wrap(PreRead::new(
        Validator::new(sync_echo(Arc::clone(&calls)), inner.clone()),
        64,
    ));
    let client = TestClient::new(app).with_diagnosis(false);
    let response = client.request(TestRequest::post("/", "abc")).unwrap();
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(inner.take().is_empty());
}
