//! `BodyLimit` and `ConcurrencyLimit` on both stacks, with a validator on
//! each side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rgi::{Application, Body, BoxError, Environ, Input, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Step};
use rgi_conformance::client::{TestClient, TestRequest, TestResponse};
use rgi_middleware::{BodyLimit, ConcurrencyLimit, Middleware};

use common::{assert_clean, async_stack, sync_stack, text_head};

/// Answers with the body it read and the request trailer `x-sum`.
fn echo_head(body: &[u8], trailers: Option<HeaderMap>) -> rgi::ResponseHead {
    let mut head = text_head(Some(body.len()));
    if let Some(sum) = trailers.and_then(|t| t.get("x-sum").cloned()) {
        head.headers_mut().insert("x-seen-sum", sum);
    }
    head
}

fn sync_echo(calls: Arc<AtomicUsize>) -> impl Application {
    rgi::from_fn(move |mut environ: Environ, start: &mut StartResponse<'_>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        start.start(echo_head(&body, environ.input().trailers()?))?;
        Ok(body)
    })
}

/// Reads its input through the non-blocking face in its steps, then
/// answers with it.
struct AsyncEcho {
    input: Input,
    read: BytesMut,
}

impl AsyncBody for AsyncEcho {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if start.is_started() {
            return Poll::Ready(None);
        }
        loop {
            match this.input.poll_chunk(cx, 4096) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                Poll::Ready(Ok(chunk)) => this.read.extend_from_slice(&chunk),
            }
        }
        let trailers = match this.input.trailers() {
            Ok(trailers) => trailers,
            Err(err) => return Poll::Ready(Some(Err(err.into()))),
        };
        if let Err(err) = start.start(echo_head(&this.read, trailers)) {
            return Poll::Ready(Some(Err(err.into())));
        }
        let body = std::mem::take(&mut this.read).freeze();
        Poll::Ready(Some(Ok(Step::Chunk(body))))
    }
}

fn async_echo(calls: Arc<AtomicUsize>) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(AsyncEcho {
            input: environ.into_input(),
            read: BytesMut::new(),
        })
    })
}

/// `request` through `BodyLimit::new(limit)` on both stacks; each
/// response with its application's calls.
fn limited(limit: u64, request: impl Fn() -> TestRequest) -> [(TestResponse, usize); 2] {
    let sync_calls = Arc::new(AtomicUsize::new(0));
    let (client, inner) = sync_stack(BodyLimit::new(limit), sync_echo(Arc::clone(&sync_calls)));
    let client = client.with_diagnosis(false);
    let sync_response = client.request(request()).unwrap();
    assert_clean(&sync_response, &inner);
    let async_calls = Arc::new(AtomicUsize::new(0));
    let (client, inner) = async_stack(BodyLimit::new(limit), async_echo(Arc::clone(&async_calls)));
    let client = client.with_diagnosis(false);
    let async_response = client.request(request()).unwrap();
    assert_clean(&async_response, &inner);
    [
        (sync_response, sync_calls.load(Ordering::SeqCst)),
        (async_response, async_calls.load(Ordering::SeqCst)),
    ]
}

#[test]
fn bodies_within_the_limit_pass() {
    for (response, calls) in limited(5, || TestRequest::post("/", "12345")) {
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "12345");
        assert_eq!(calls, 1);
    }
    let chunked = || TestRequest::new(Method::POST, "/").chunked(["12", "3", "45"]);
    for (response, _) in limited(5, chunked) {
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "12345");
    }
    for (response, _) in limited(0, || TestRequest::get("/")) {
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "");
    }
}

#[test]
fn a_declared_length_over_the_limit_is_413_without_the_application() {
    for (response, calls) in limited(4, || TestRequest::post("/", "12345")) {
        response.assert_valid();
        assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.text(), "request body too large\n");
        assert_eq!(calls, 0);
    }
}

#[test]
fn a_chunked_body_is_counted_and_the_read_past_the_limit_is_413() {
    let chunked = || TestRequest::new(Method::POST, "/").chunked(["12", "34", "5"]);
    for (response, calls) in limited(4, chunked) {
        assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            response
                .ending
                .error()
                .is_some_and(|e| e.contains("limit of 4 bytes")),
            "{:?}",
            response.ending
        );
        assert_eq!(calls, 1, "counted as read: the application was called");
    }
}

#[test]
fn request_trailers_pass_the_counting_input() {
    let request = || {
        let mut fields = HeaderMap::new();
        fields.insert("x-sum", HeaderValue::from_static("7"));
        TestRequest::new(Method::POST, "/")
            .chunked(["ab", "c"])
            .features(rgi::Features::none().with_request_trailers(true))
            .trailers(fields)
    };
    for (response, _) in limited(3, request) {
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "abc");
        assert_eq!(response.header("x-seen-sum"), Some("7"));
    }
}

/// A body that, at its first step, notes how many permits are held and
/// what a request to `other` gets, and puts both in its chunks.
struct Probe {
    limit: ConcurrencyLimit,
    other: Arc<TestClient<rgi_middleware::Wrapped<ConcurrencyLimit, rgi::FnApplication<Hello>>>>,
    step: u8,
    fail: bool,
}

type Hello = fn(Environ, &mut StartResponse<'_>) -> Result<Bytes, BoxError>;

fn hello(_environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
    start.start(text_head(Some(5)))?;
    Ok(Bytes::from_static(b"hello"))
}

impl Probe {
    fn step(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.step += 1;
        match self.step {
            1 => {
                if let Err(err) = start.start(text_head(None)) {
                    return Some(Err(err.into()));
                }
                let held = self.limit.in_flight();
                let nested = self.other.get("/").unwrap();
                let retry = nested.header(RETRY_AFTER).unwrap_or("-").to_owned();
                Some(Ok(Bytes::from(format!(
                    "{held} {} {retry}",
                    nested.status.as_u16()
                ))))
            }
            2 if self.fail => Some(Err("failed mid-body".into())),
            _ => None,
        }
    }
}

impl Body for Probe {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.step(start)
    }
}

impl AsyncBody for Probe {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(self.get_mut().step(start).map(|r| r.map(Step::Chunk)))
    }
}

fn other(
    limit: &ConcurrencyLimit,
) -> Arc<TestClient<rgi_middleware::Wrapped<ConcurrencyLimit, rgi::FnApplication<Hello>>>> {
    Arc::new(TestClient::new(
        limit.clone().wrap(rgi::from_fn(hello as Hello)),
    ))
}

#[test]
fn a_saturated_limit_answers_503_with_retry_after_while_a_body_streams() {
    for fail in [false, true] {
        let limit = ConcurrencyLimit::new(1).with_retry_after(7);
        let nested = other(&limit);
        let (probe_limit, probe_other) = (limit.clone(), Arc::clone(&nested));
        let (client, inner) = sync_stack(
            limit.clone(),
            rgi::from_fn(move |_environ, _start: &mut StartResponse<'_>| {
                Ok(Probe {
                    limit: probe_limit.clone(),
                    other: Arc::clone(&probe_other),
                    step: 0,
                    fail,
                })
            }),
        );
        let response = client.with_diagnosis(false).get("/").unwrap();
        assert_eq!(response.text(), "1 503 7");
        assert_eq!(response.ending.is_complete(), !fail);
        assert!(response.violations.is_empty(), "{:#?}", response.violations);
        let seen = inner.take();
        assert!(fail || seen.is_empty(), "inner: {seen:#?}");
        assert_eq!(limit.in_flight(), 0, "released with the body");
        // Free again: the nested application is served.
        let again = nested.get("/").unwrap();
        again.assert_ok_and_valid();
        assert_eq!(again.text(), "hello");

        let limit = ConcurrencyLimit::new(1).with_retry_after(7);
        let nested = other(&limit);
        let (probe_limit, probe_other) = (limit.clone(), Arc::clone(&nested));
        let (client, inner) = async_stack(
            limit.clone(),
            rgi_async::from_fn(move |_environ, _start: &mut StartResponse<'_>| {
                Ok(Probe {
                    limit: probe_limit.clone(),
                    other: Arc::clone(&probe_other),
                    step: 0,
                    fail,
                })
            }),
        );
        let response = client.with_diagnosis(false).get("/").unwrap();
        assert_eq!(response.text(), "1 503 7");
        assert_eq!(response.ending.is_complete(), !fail);
        assert!(response.violations.is_empty(), "{:#?}", response.violations);
        let seen = inner.take();
        assert!(fail || seen.is_empty(), "inner: {seen:#?}");
        assert_eq!(limit.in_flight(), 0, "released with the body");
        nested.get("/").unwrap().assert_ok_and_valid();
    }
}

#[test]
fn a_limit_of_zero_refuses_everything_without_calling() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (client, inner) = sync_stack(ConcurrencyLimit::new(0), sync_echo(Arc::clone(&calls)));
    let response = client.get("/").unwrap();
    assert_clean(&response, &inner);
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.header(RETRY_AFTER), Some("1"));
    assert_eq!(response.text(), "");
    let (client, inner) = async_stack(ConcurrencyLimit::new(0), async_echo(Arc::clone(&calls)));
    let response = client.get("/").unwrap();
    assert_clean(&response, &inner);
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_failed_call_gives_its_permit_back() {
    let limit = ConcurrencyLimit::new(1);
    let (client, _inner) = sync_stack(
        limit.clone(),
        rgi::from_fn(|_environ, _start: &mut StartResponse<'_>| {
            Err::<rgi::Empty, BoxError>("refused".into())
        }),
    );
    let response = client.with_diagnosis(false).get("/").unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(limit.in_flight(), 0);
    let (client, _inner) = async_stack(
        limit.clone(),
        rgi_async::from_fn(|_environ, _start: &mut StartResponse<'_>| {
            Err::<rgi::Empty, BoxError>("refused".into())
        }),
    );
    let response = client.with_diagnosis(false).get("/").unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(limit.in_flight(), 0);
}

#[test]
fn sequential_requests_each_get_a_permit() {
    let limit = ConcurrencyLimit::new(1);
    let (client, inner) = sync_stack(limit.clone(), rgi::from_fn(hello as Hello));
    for _ in 0..3 {
        let response = client.get("/").unwrap();
        response.assert_ok_and_valid();
        assert_clean(&response, &inner);
    }
    assert_eq!(limit.in_flight(), 0);
}

/// Switches to synchronous processing at its first step; the
/// continuation's body reports the permits held while it runs.
struct Switching(ConcurrencyLimit, bool);

impl AsyncBody for Switching {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if std::mem::replace(&mut this.1, true) {
            return Poll::Ready(None);
        }
        let limit = this.0.clone();
        Poll::Ready(Some(Ok(Step::Switch(rgi_async::SyncSwitch::new(
            move |start: &mut StartResponse<'_>| {
                start.start(text_head(None))?;
                let held = limit.in_flight();
                Ok(rgi::from_iter([format!("held {held} after the switch")]))
            },
        )))))
    }
}

#[test]
fn the_permit_follows_the_switch_to_synchronous_processing() {
    let limit = ConcurrencyLimit::new(1);
    let probe = limit.clone();
    let (client, inner) = async_stack(
        limit.clone(),
        rgi_async::from_fn(move |_environ, _start: &mut StartResponse<'_>| {
            Ok(Switching(probe.clone(), false))
        }),
    );
    let response = client.get("/").unwrap();
    response.assert_ok_and_valid();
    assert!(response.switched);
    assert_eq!(response.text(), "held 1 after the switch");
    assert_clean(&response, &inner);
    assert_eq!(limit.in_flight(), 0);
}
