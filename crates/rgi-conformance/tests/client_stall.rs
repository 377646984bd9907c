//! The asynchronous test client never hangs (issue 11 §2, "Stalls"): a
//! body that returns `Pending` and is never woken, an offload job or an
//! after-response task that does not finish, all end the request after
//! the client's stall timeout, with the stall reported; a body woken in
//! time is not affected.
//!
//! Every stalled wait is seconds longer than the timeout the test sets,
//! and the bounds the tests assert are seconds wider than that timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use rgi::{BoxError, Environ, ResponseHead, StartResponse};
use rgi_async::{AsyncBody, Capabilities, OffloadFuture, Step};
use rgi_conformance::client::{AsyncTestClient, Ending, TestRequest};
use rgi_conformance::rt::{Outcome, Recorder, serve_async_within};
use rgi_conformance::{Side, Violation};

/// The stall timeout the tests set.
const STALL: Duration = Duration::from_millis(300);

/// How long the things that never finish take (well, "never").
const FOREVER: Duration = Duration::from_secs(6);

/// A wide bound on a request that must not wait for `FOREVER`.
const RETURNS_WITHIN: Duration = Duration::from_secs(4);

fn ok() -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

fn has(violations: &[Violation], clause: &str, side: Side) -> bool {
    violations
        .iter()
        .any(|v| v.clause() == clause && v.side() == side)
}

/// Returns `Pending` without arranging any wake-up (RGIA-APP-5).
struct Forgetful {
    started: bool,
}

impl AsyncBody for Forgetful {
    fn poll_step(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if !std::mem::replace(&mut self.started, true) {
            if let Err(err) = start.start(ok()) {
                return Poll::Ready(Some(Err(err.into())));
            }
            return Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"partial")))));
        }
        Poll::Pending
    }
}

#[test]
fn a_body_that_is_never_woken_ends_stalled_with_its_clause() {
    let client = AsyncTestClient::new(rgi_async::from_fn(|_environ: Environ, _start| {
        Ok(Forgetful { started: false })
    }))
    .with_stall_timeout(STALL);
    let began = Instant::now();
    let response = client.get("/").unwrap();
    assert!(began.elapsed() < RETURNS_WITHIN, "{:?}", began.elapsed());
    assert!(
        matches!(&response.ending, Ending::Stalled { .. }),
        "{:?}",
        response.ending
    );
    assert!(response.ending.error().is_some());
    // The head and the first chunk went out before the stall.
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "partial");
    assert!(
        has(&response.violations, "RGIA-APP-5", Side::Application),
        "{:?}",
        response.violations
    );
}

/// Keeps the waker it is given, but nothing ever wakes it: a long poll
/// longer than the timeout looks just like this.
struct Keeps(Arc<Mutex<Option<Waker>>>);

impl AsyncBody for Keeps {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        *self.0.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn a_body_that_keeps_its_waker_but_is_never_woken_ends_stalled_without_blame() {
    let client = AsyncTestClient::new(rgi_async::from_fn(|_environ: Environ, start| {
        start.start(ok())?;
        Ok(Keeps(Arc::default()))
    }))
    .with_stall_timeout(STALL);
    let began = Instant::now();
    let response = client.get("/").unwrap();
    assert!(began.elapsed() < RETURNS_WITHIN, "{:?}", began.elapsed());
    assert!(
        matches!(&response.ending, Ending::Stalled { .. }),
        "{:?}",
        response.ending
    );
    assert!(response.violations.is_empty(), "{:?}", response.violations);
}

/// Waits for an offload job.
struct AwaitsJob(Option<OffloadFuture<()>>);

impl AsyncBody for AwaitsJob {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let Some(job) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(job).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(done) => {
                self.0 = None;
                Poll::Ready(done.err().map(|err| Err(err.into())))
            }
        }
    }
}

#[test]
fn an_offload_job_that_does_not_finish_ends_the_request_stalled() {
    let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, start| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        let job = capabilities.offload().run(|| thread::sleep(FOREVER));
        start.start(ok())?;
        Ok(AwaitsJob(Some(job)))
    }))
    .with_stall_timeout(STALL);
    let began = Instant::now();
    let response = client.get("/").unwrap();
    assert!(began.elapsed() < RETURNS_WITHIN, "{:?}", began.elapsed());
    assert!(
        matches!(&response.ending, Ending::Stalled { .. }),
        "{:?}",
        response.ending
    );
    assert_eq!(response.offload_jobs, 1);
    assert!(response.violations.is_empty(), "{:?}", response.violations);
}

#[test]
fn an_after_response_task_that_does_not_finish_does_not_hang_the_client() {
    let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, start| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        let after = capabilities.after_response().ok_or("no after-response")?;
        after.spawn(|| thread::sleep(FOREVER))?;
        start.start(ok())?;
        Ok(Bytes::from_static(b"done"))
    }))
    .with_stall_timeout(STALL);
    let began = Instant::now();
    let response = client.get("/").unwrap();
    assert!(began.elapsed() < RETURNS_WITHIN, "{:?}", began.elapsed());
    assert!(response.ending.is_complete(), "{:?}", response.ending);
    assert_eq!(response.after_tasks_ran, 0);
}

/// Woken by a thread after `after`.
struct WokenLater {
    slot: Arc<Mutex<(bool, Option<Waker>)>>,
    done: bool,
}

impl AsyncBody for WokenLater {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut slot = self.slot.lock().unwrap();
        if slot.0 {
            drop(slot);
            self.done = true;
            return Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"event")))));
        }
        slot.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn a_long_poll_woken_within_the_timeout_completes() {
    let client = AsyncTestClient::new(rgi_async::from_fn(|_environ: Environ, start| {
        start.start(ok())?;
        let slot: Arc<Mutex<(bool, Option<Waker>)>> = Arc::default();
        let publisher = Arc::clone(&slot);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            let mut slot = publisher.lock().unwrap();
            slot.0 = true;
            if let Some(waker) = slot.1.take() {
                waker.wake();
            }
        });
        Ok(WokenLater { slot, done: false })
    }));
    assert_eq!(
        client.stall_timeout(),
        AsyncTestClient::<()>::DEFAULT_STALL_TIMEOUT
    );
    let response = client.get("/").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "event");
}

#[test]
fn the_driver_answers_500_to_a_body_that_stalls_before_its_head() {
    let app = rgi_async::from_fn(|_environ: Environ, _start| Ok(Keeps(Arc::default())));
    let mut wire = Recorder::new();
    let began = Instant::now();
    let served = serve_async_within(&app, Environ::builder().build().unwrap(), &mut wire, STALL);
    assert!(began.elapsed() < RETURNS_WITHIN, "{:?}", began.elapsed());
    assert!(
        matches!(served.outcome, Outcome::Stalled { waited } if waited == STALL),
        "{:?}",
        served.outcome
    );
    assert!(!served.outcome.is_reusable());
    assert_eq!(wire.heads().len(), 1);
    assert_eq!(wire.heads()[0].status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn a_test_request_through_a_stalling_app_reports_and_returns() {
    // The request builder path too (a POST with a body the app ignores).
    let client = AsyncTestClient::new(rgi_async::from_fn(|_environ: Environ, _start| {
        Ok(Forgetful { started: false })
    }))
    .with_stall_timeout(STALL);
    let response = client.request(TestRequest::post("/", "ignored")).unwrap();
    assert!(matches!(&response.ending, Ending::Stalled { .. }));
}
