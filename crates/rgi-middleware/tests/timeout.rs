//! `Timeout` on the asynchronous stack, timed by the test client's
//! readiness capability, with a validator on each side: 504 before the
//! head, aborted after, the clock restarted by each step, and the
//! fallback without a timer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{BoxError, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Step};
use rgi_conformance::client::{AsyncTestClient, Ending};
use rgi_conformance::validate::AsyncValidator;
use rgi_conformance::{Policy, Reports};
use rgi_middleware::{NoTimer, Timeout};

use common::text_head;

/// A body that waits on something that never comes (a backend that hangs),
/// after giving `head_first` chunks with its head; it keeps the waker, as
/// a real wait would, and says when it is dropped.
struct Hanging {
    head_first: usize,
    given: usize,
    waker: Option<Waker>,
    dropped: Arc<AtomicBool>,
}

impl AsyncBody for Hanging {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if this.given < this.head_first {
            if !start.is_started() {
                if let Err(err) = start.start(text_head(None)) {
                    return Poll::Ready(Some(Err(err.into())));
                }
            }
            this.given += 1;
            return Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"partial")))));
        }
        this.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// A body that gives `steps` chunks, each `delay` after the one before,
/// woken by a thread of its own (which wakes the latest waker it was
/// given, as a real event source does).
struct Paced {
    steps: usize,
    delay: Duration,
    shared: Arc<Mutex<(bool, Option<Waker>)>>,
    waiting: bool,
}

impl AsyncBody for Paced {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if this.steps == 0 {
            return Poll::Ready(None);
        }
        let mut shared = this.shared.lock().unwrap();
        if std::mem::take(&mut shared.0) {
            drop(shared);
            this.waiting = false;
            this.steps -= 1;
            if !start.is_started() {
                if let Err(err) = start.start(text_head(None)) {
                    return Poll::Ready(Some(Err(err.into())));
                }
            }
            return Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"step ")))));
        }
        shared.1 = Some(cx.waker().clone());
        drop(shared);
        if !this.waiting {
            this.waiting = true;
            let (shared, delay) = (Arc::clone(&this.shared), this.delay);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let mut shared = shared.lock().unwrap();
                shared.0 = true;
                if let Some(waker) = shared.1.take() {
                    waker.wake();
                }
            });
        }
        Poll::Pending
    }
}

fn hanging(head_first: usize, dropped: Arc<AtomicBool>) -> impl AsyncApplication {
    rgi_async::from_fn(move |_e, _s: &mut StartResponse<'_>| {
        Ok(Hanging {
            head_first,
            given: 0,
            waker: None,
            dropped: Arc::clone(&dropped),
        })
    })
}

fn paced(steps: usize, delay: Duration, calls: Arc<AtomicUsize>) -> impl AsyncApplication {
    rgi_async::from_fn(move |_e, _s: &mut StartResponse<'_>| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(Paced {
            steps,
            delay,
            shared: Arc::new(Mutex::new((false, None))),
            waiting: false,
        })
    })
}

fn client<A: AsyncApplication>(
    app: A,
    limit: Duration,
) -> (AsyncTestClient<Timeout<AsyncValidator<A>>>, Reports) {
    let inner = Reports::new(Policy::Collect);
    let client = AsyncTestClient::new(Timeout::new(AsyncValidator::new(app, inner.clone()), limit))
        .with_diagnosis(false);
    assert!(
        client.readiness_error().is_none(),
        "the test needs the client's poller"
    );
    (client, inner)
}

#[test]
fn no_head_in_time_is_a_504_and_the_body_is_dropped() {
    let dropped = Arc::new(AtomicBool::new(false));
    let limit = Duration::from_millis(150);
    let (client, inner) = client(hanging(0, Arc::clone(&dropped)), limit);
    let began = Instant::now();
    let response = client.get("/").unwrap();
    let took = began.elapsed();
    response.assert_valid();
    assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(response.text(), "gateway timeout\n");
    assert!(response.ending.is_complete());
    assert!(took >= limit, "answered after {took:?}");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert!(dropped.load(Ordering::SeqCst));
    assert!(inner.take().is_empty());
}

#[test]
fn no_next_step_in_time_after_the_head_aborts_the_response() {
    let dropped = Arc::new(AtomicBool::new(false));
    let (client, inner) = client(hanging(1, Arc::clone(&dropped)), Duration::from_millis(100));
    let response = client.get("/").unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "partial");
    assert!(
        matches!(&response.ending, Ending::FailedAfterHead { error } if error.contains("produced nothing")),
        "{:?}",
        response.ending
    );
    assert!(response.violations.is_empty(), "{:#?}", response.violations);
    assert!(dropped.load(Ordering::SeqCst));
    assert!(inner.take().is_empty());
}

#[test]
fn each_step_restarts_the_clock() {
    let calls = Arc::new(AtomicUsize::new(0));
    let limit = Duration::from_millis(700);
    let (client, inner) = client(paced(5, Duration::from_millis(200), calls), limit);
    let began = Instant::now();
    let response = client.get("/").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "step ".repeat(5));
    assert!(began.elapsed() > limit, "longer than the limit in all");
    let seen = inner.take();
    assert!(seen.is_empty(), "inner: {seen:#?}");
}

#[test]
fn a_prompt_application_is_untouched() {
    let hello = rgi_async::from_fn(|_e, start: &mut StartResponse<'_>| {
        start.start(text_head(Some(5)))?;
        Ok(String::from("hello"))
    });
    let (client, inner) = client(hello, Duration::from_millis(50));
    for _ in 0..3 {
        let response = client.get("/").unwrap();
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "hello");
    }
    assert!(inner.take().is_empty());
}

#[test]
fn timed_out_requests_one_after_another() {
    let dropped = Arc::new(AtomicBool::new(false));
    let (client, inner) = client(hanging(0, dropped), Duration::from_millis(10));
    for _ in 0..20 {
        assert_eq!(client.get("/").unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    }
    assert!(inner.take().is_empty());
}

#[test]
fn without_a_timer_the_declared_fallback_applies() {
    // Unlimited (the default): a step far beyond the limit still arrives.
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = Reports::new(Policy::Collect);
    let app = Timeout::new(
        AsyncValidator::new(
            paced(1, Duration::from_millis(200), Arc::clone(&calls)),
            inner.clone(),
        ),
        Duration::from_millis(20),
    );
    let client = AsyncTestClient::new(app).without_readiness();
    let response = client.get("/").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "step ");
    assert!(inner.take().is_empty());

    // Refuse: the request fails before the call.
    let refused = Arc::new(AtomicUsize::new(0));
    let app = Timeout::new(
        paced(1, Duration::from_millis(1), Arc::clone(&refused)),
        Duration::from_millis(20),
    )
    .with_no_timer(NoTimer::Refuse);
    let client = AsyncTestClient::new(app)
        .without_readiness()
        .with_diagnosis(false);
    let response = client.get("/").unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        response
            .ending
            .error()
            .is_some_and(|e| e.contains("no timer"))
    );
    assert_eq!(refused.load(Ordering::SeqCst), 0);
}
