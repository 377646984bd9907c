//! The validator watches the capabilities, the switch and the
//! after-response tasks over the whole request (issue 11 §2): each check
//! has a broken example that trips it, with its clause and side, and a
//! clean one that does not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rgi::{BoxError, Environ, ResponseHead, ResponseState, StartResponse};
use rgi_async::{
    AfterError, AfterResponse, AfterResponseService, AfterTask, AsyncApplication, AsyncBody,
    Capabilities, Job, Offload, OffloadError, OffloadFuture, OffloadService, Step, SyncSwitch,
};
use rgi_conformance::client::{AsyncTestClient, TestRequest};
use rgi_conformance::rt::{AfterQueue, Recorder, ThreadOffload, serve_async};
use rgi_conformance::validate::AsyncValidator;
use rgi_conformance::{Policy, Reports, Side, Violation};

type StepPoll = Poll<Option<Result<Step, BoxError>>>;

fn text(status: StatusCode) -> ResponseHead {
    ResponseHead::new(status)
        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

/// A body made of a closure.
struct Steps<F>(F);

impl<F> AsyncBody for Steps<F>
where
    F: FnMut(&mut Context<'_>, &mut StartResponse<'_>) -> StepPoll + Send + Unpin + 'static,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> StepPoll {
        (self.get_mut().0)(cx, start)
    }
}

fn chunk(bytes: &'static [u8]) -> StepPoll {
    Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(bytes)))))
}

/// Whether `violations` name `clause` against `side`.
fn names(violations: &[Violation], clause: &str, side: Side) -> bool {
    violations
        .iter()
        .any(|v| v.clause() == clause && v.side() == side)
}

fn environ_with(caps: Capabilities, headers: &[(header::HeaderName, &'static str)]) -> Environ {
    let mut builder = Environ::builder()
        .method(Method::GET)
        .header(header::HOST, HeaderValue::from_static("example.org"));
    for (name, value) in headers {
        builder = builder.header(name.clone(), HeaderValue::from_static(value));
    }
    builder.extension(caps).build().unwrap()
}

/// Serves `app` once through `serve_async`, returning what the validator
/// reported.
fn served<A: AsyncApplication>(app: A, environ: Environ) -> Vec<Violation> {
    let reports = Reports::new(Policy::Collect);
    let validator = AsyncValidator::new(app, reports.clone());
    let mut wire = Recorder::new();
    let _served = serve_async(&validator, environ, &mut wire);
    drop(validator);
    reports.all()
}

// ---- RGIA-APP-6: a spurious poll ------------------------------------------

/// An application that waits for an offload job; `tolerant` decides
/// whether a poll that finds the job unfinished returns `Pending` again
/// (right) or fails (wrong).
fn waits_for_job(tolerant: bool) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        let mut job: Option<OffloadFuture<u32>> = Some(caps.offload().run(|| {
            thread::sleep(Duration::from_millis(200));
            7
        }));
        start.start(text(StatusCode::OK))?;
        let mut polls = 0;
        Ok(Steps(move |cx: &mut Context<'_>, _: &mut StartResponse<'_>| {
            polls += 1;
            let Some(pending) = job.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(pending).poll(cx) {
                Poll::Ready(_) => {
                    job = None;
                    chunk(b"done")
                }
                Poll::Pending if polls > 1 && !tolerant => {
                    Poll::Ready(Some(Err("polled before the job finished".into())))
                }
                Poll::Pending => Poll::Pending,
            }
        }))
    })
}

#[test]
fn a_body_that_fails_on_a_poll_nothing_asked_for_breaks_app_6() {
    let response = AsyncTestClient::new(waits_for_job(false))
        .get("/")
        .unwrap();
    assert!(
        names(&response.violations, "RGIA-APP-6", Side::Application),
        "{:?}",
        response.violations
    );
}

#[test]
fn a_body_that_returns_pending_again_on_a_spurious_poll_is_clean() {
    let response = AsyncTestClient::new(waits_for_job(true)).get("/").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "done");
}

// ---- RGIA-CAP-10: a middleware removes the capabilities --------------------

/// A middleware that hands the inner application `rewrite(environ)`.
struct Rewrite<A> {
    inner: A,
    rewrite: fn(Environ) -> Environ,
}

impl<A: AsyncApplication> AsyncApplication for Rewrite<A> {
    type Body = A::Body;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        self.inner.call((self.rewrite)(environ), start)
    }
}

fn hello() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"hello"))
    })
}

/// Runs `rewrite` as a middleware between the test client's validator and
/// one around `hello`; returns what both reported.
fn through_middleware(rewrite: fn(Environ) -> Environ) -> Vec<Violation> {
    let inner_reports = Reports::new(Policy::Collect);
    let app = Rewrite {
        inner: AsyncValidator::new(hello(), inner_reports.clone()),
        rewrite,
    };
    let response = AsyncTestClient::new(app).get("/").unwrap();
    let mut seen = response.violations.clone();
    seen.extend(inner_reports.all());
    seen
}

#[test]
fn a_middleware_that_removes_the_capabilities_breaks_cap_10() {
    let seen = through_middleware(|mut environ| {
        environ.extensions_mut().remove::<Capabilities>();
        environ
    });
    assert!(names(&seen, "RGIA-CAP-10", Side::Server), "{seen:?}");
}

#[test]
fn a_middleware_that_withholds_a_capability_by_its_own_set_is_clean() {
    let seen = through_middleware(|mut environ| {
        let offload = Capabilities::of(&environ).unwrap().offload().clone();
        environ
            .extensions_mut()
            .insert(Capabilities::builder(offload).build());
        environ
    });
    assert!(seen.iter().all(Violation::is_warning), "{seen:?}");
}

// ---- RGIA-UPGRADE-11: no upgrade on offer ----------------------------------

fn websocket_endpoint(answers_501: bool) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        let caps = Capabilities::of(&environ).ok_or("no capabilities")?;
        if caps.upgrade().is_none() {
            if answers_501 {
                start.start(text(StatusCode::NOT_IMPLEMENTED))?;
                return Ok(Bytes::from_static(b"no upgrades here"));
            }
            return Err("cannot upgrade".into());
        }
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::new())
    })
}

/// HTTP/1.0 has no upgrade, so the server cannot provide one.
fn websocket_request() -> TestRequest {
    TestRequest::get("/ws")
        .version(http::Version::HTTP_10)
        .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
        .header(header::UPGRADE, HeaderValue::from_static("websocket"))
}

#[test]
fn failing_an_upgrade_the_server_cannot_provide_warns_under_upgrade_11() {
    let response = AsyncTestClient::new(websocket_endpoint(false))
        .request(websocket_request())
        .unwrap();
    assert!(
        names(&response.violations, "RGIA-UPGRADE-11", Side::Application),
        "{:?}",
        response.violations
    );
}

#[test]
fn answering_501_to_an_upgrade_the_server_cannot_provide_is_clean() {
    let response = AsyncTestClient::new(websocket_endpoint(true))
        .request(websocket_request())
        .unwrap();
    response.assert_valid();
    assert!(response.violations.is_empty(), "{:?}", response.violations);
}
