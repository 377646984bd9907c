//! `CatchErrors` on both stacks, with a validator on each side: failures
//! and panics before the head become a `500` through the replacement
//! rule, after the head an abnormal end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use rgi::{Application, Body, BoxError, Environ, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Step, SyncSwitch};
use rgi_conformance::client::{AsyncTestClient, Ending, TestClient, TestResponse};
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports, Side};
use rgi_middleware::CatchErrors;

use common::text_head;

const SECRET: &str = "password=hunter2 in the database error";

/// The default panic hook captures and prints a backtrace when
/// `RUST_BACKTRACE` is set: over a hundred milliseconds on the loop thread,
/// which the validator rightly calls blocking. These tests panic on
/// purpose, so their hook prints the message only.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
}

fn sync_stack<A: Application>(
    app: A,
    debug: bool,
) -> (TestClient<CatchErrors<Validator<A>>>, Reports) {
    quiet_panics();
    let inner = Reports::new(Policy::Collect);
    let app = CatchErrors::new(Validator::new(app, inner.clone())).with_debug_page(debug);
    (TestClient::new(app).with_diagnosis(false), inner)
}

fn async_stack<A: AsyncApplication>(
    app: A,
    debug: bool,
) -> (AsyncTestClient<CatchErrors<AsyncValidator<A>>>, Reports) {
    quiet_panics();
    let inner = Reports::new(Policy::Collect);
    let app = CatchErrors::new(AsyncValidator::new(app, inner.clone())).with_debug_page(debug);
    (AsyncTestClient::new(app).with_diagnosis(false), inner)
}

/// The outer validator saw nothing; the inner one saw only what the
/// application itself did wrong (a panic is the application's fault,
/// which the middleware contains), and never blames the middleware.
#[track_caller]
fn assert_middleware_clean(response: &TestResponse, inner: &Reports, panicked: bool) {
    assert!(
        response.violations.is_empty(),
        "outer: {:#?}",
        response.violations
    );
    let seen = inner.take();
    if panicked {
        // RGI-FAIL-1: "errors, not panics", a SHOULD of the application's.
        assert!(
            seen.iter()
                .all(|v| v.side() == Side::Application && v.clause() == "RGI-FAIL-1"),
            "inner: {seen:#?}"
        );
        assert!(!seen.is_empty(), "the inner validator saw the panic");
    } else {
        assert!(seen.is_empty(), "inner: {seen:#?}");
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fail {
    Error,
    Panic,
}

impl Fail {
    fn now<T>(self) -> Result<T, BoxError> {
        match self {
            Fail::Error => Err(SECRET.into()),
            Fail::Panic => panic!("{SECRET}"),
        }
    }
}

/// Yields its parts (starting `head` lazily first if given), then fails.
struct Failing {
    head: Option<rgi::ResponseHead>,
    parts: VecDeque<Bytes>,
    fail: Fail,
}

impl Failing {
    fn new(head: Option<rgi::ResponseHead>, parts: &[&'static str], fail: Fail) -> Self {
        Failing {
            head,
            parts: parts
                .iter()
                .map(|p| Bytes::from_static(p.as_bytes()))
                .collect(),
            fail,
        }
    }

    fn step(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if let Some(head) = self.head.take() {
            if let Err(err) = start.start(head) {
                return Some(Err(err.into()));
            }
        }
        match self.parts.pop_front() {
            Some(part) => Some(Ok(part)),
            None => Some(self.fail.now()),
        }
    }
}

impl Body for Failing {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.step(start)
    }
}

impl AsyncBody for Failing {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(self.get_mut().step(start).map(|r| r.map(Step::Chunk)))
    }
}

/// Where the application fails.
#[derive(Clone, Copy)]
enum Where {
    /// In `call`.
    Call,
    /// In the first step, before any head was stored.
    FirstStep,
    /// In the first step, with a head stored in `call` (with its length)
    /// but not sent: the 500 replaces it.
    StoredHead,
    /// After the first chunk went out with the head.
    AfterHead,
}

fn app_failing(
    at: Where,
    fail: Fail,
) -> impl Fn(Environ, &mut StartResponse<'_>) -> Result<Failing, BoxError> + Send + Sync + 'static {
    move |_environ, start| match at {
        Where::Call => fail.now(),
        Where::FirstStep => Ok(Failing::new(None, &[], fail)),
        Where::StoredHead => {
            start.start(text_head(Some(11)))?;
            Ok(Failing::new(None, &[], fail))
        }
        Where::AfterHead => Ok(Failing::new(Some(text_head(None)), &["first"], fail)),
    }
}

fn check(response: &TestResponse, at: Where, fail: Fail, debug: bool) {
    let panicked = fail == Fail::Panic;
    match at {
        Where::AfterHead => {
            let Ending::FailedAfterHead { error } = &response.ending else {
                panic!("not aborted: {:?}", response.ending);
            };
            assert_eq!(response.status, StatusCode::OK);
            assert_eq!(response.text(), "first", "nothing appended (RGI-FAIL-6)");
            assert!(error.contains(SECRET), "{error}");
            if panicked {
                assert!(error.contains("panicked"), "{error}");
            }
        }
        _ => {
            assert!(response.ending.is_complete(), "{:?}", response.ending);
            assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                response.header(CONTENT_TYPE),
                Some("text/plain; charset=utf-8")
            );
            let length = response.body.len().to_string();
            assert_eq!(response.header(CONTENT_LENGTH), Some(length.as_str()));
            assert_eq!(
                response.text().contains(SECRET),
                debug,
                "{}",
                response.text()
            );
            assert!(response.text().starts_with("Internal Server Error"));
        }
    }
}

const CASES: [Where; 4] = [
    Where::Call,
    Where::FirstStep,
    Where::StoredHead,
    Where::AfterHead,
];

#[test]
fn errors_and_panics_sync() {
    for at in CASES {
        for fail in [Fail::Error, Fail::Panic] {
            for debug in [false, true] {
                let (client, inner) = sync_stack(rgi::from_fn(app_failing(at, fail)), debug);
                let response = client.get("/").expect("well formed");
                check(&response, at, fail, debug);
                assert_middleware_clean(&response, &inner, fail == Fail::Panic);
            }
        }
    }
}

#[test]
fn errors_and_panics_async() {
    for at in CASES {
        for fail in [Fail::Error, Fail::Panic] {
            for debug in [false, true] {
                let (client, inner) = async_stack(rgi_async::from_fn(app_failing(at, fail)), debug);
                let response = client.get("/").expect("well formed");
                check(&response, at, fail, debug);
                assert_middleware_clean(&response, &inner, fail == Fail::Panic);
            }
        }
    }
}

/// Switches at once; the continuation (or its body) fails.
struct SwitchThenFail {
    at: Where,
    fail: Fail,
}

impl AsyncBody for SwitchThenFail {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let (at, fail) = (self.at, self.fail);
        let continuation = SyncSwitch::new(move |start| {
            app_failing(at, fail)(Environ::builder().build().map_err(BoxError::from)?, start)
        });
        Poll::Ready(Some(Ok(Step::Switch(continuation))))
    }
}

#[test]
fn errors_and_panics_after_the_switch() {
    for at in CASES {
        for fail in [Fail::Error, Fail::Panic] {
            let (client, inner) = async_stack(
                rgi_async::from_fn(move |_environ, _start| Ok(SwitchThenFail { at, fail })),
                false,
            );
            let response = client.get("/").expect("well formed");
            assert!(response.switched);
            check(&response, at, fail, false);
            assert_middleware_clean(&response, &inner, fail == Fail::Panic);
        }
    }
}

#[test]
fn client_faults_are_left_to_the_server() {
    let (client, inner) = sync_stack(
        rgi::from_fn(|mut environ: Environ, start: &mut StartResponse<'_>| {
            let body = environ.input_mut().read_to_bytes(4)?;
            start.start(text_head(Some(body.len())))?;
            Ok(body)
        }),
        true,
    );
    let response = client.post("/", "far too long").expect("well formed");
    assert_eq!(
        response.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "RGI-FAIL-10, not 500"
    );
    assert_middleware_clean(&response, &inner, false);
}

#[test]
fn successes_pass_untouched() {
    for debug in [false, true] {
        let (client, inner) = sync_stack(
            rgi::from_fn(|_environ, start: &mut StartResponse<'_>| {
                start.start(text_head(Some(5)))?;
                Ok(rgi::from_iter(["he", "llo"]))
            }),
            debug,
        );
        let response = client.get("/").expect("well formed");
        assert_middleware_clean(&response, &inner, false);
        assert_eq!(
            (response.status, response.text().as_ref()),
            (StatusCode::OK, "hello")
        );
        assert_eq!(response.chunks.len(), 2);
    }
}
