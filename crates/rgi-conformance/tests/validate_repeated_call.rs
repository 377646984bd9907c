//! A server that calls the application a second time for one response,
//! after a failed call, with the same `ResponseState` (`RGI-APP-5`,
//! `RGIA-APP-1`). The state looks fresh, since the failed call stored
//! nothing: only the validator's mark on it (`StartResponse::record_call`)
//! tells the retry from a new request. Validators stacked on both sides of
//! an adapter, each called once, stay silent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{Application, Environ, ResponseHead, ResponseState};
use rgi_async::{AsyncApplication, Capabilities, Offload, Threaded};
use rgi_conformance::rt::{Recorder, ThreadOffload, serve_async, serve_sync};
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports, Side};

fn environ() -> Environ {
    Environ::builder()
        .header(header::HOST, HeaderValue::from_static("example.org"))
        .build()
        .expect("a well-formed request")
}

fn async_environ() -> Environ {
    Environ::builder()
        .header(header::HOST, HeaderValue::from_static("example.org"))
        .extension(Capabilities::builder(Offload::new(ThreadOffload::new())).build())
        .build()
        .expect("a well-formed request")
}

fn ok() -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

/// Fails its first call ("cold cache") and answers every later one.
fn cold_then_warm()
-> impl Fn(Environ, &mut rgi::StartResponse<'_>) -> Result<Bytes, rgi::BoxError> + Send + Sync + 'static
{
    let calls = AtomicUsize::new(0);
    move |_environ, start| {
        if calls.fetch_add(1, Ordering::Relaxed) == 0 {
            return Err("cold cache".into());
        }
        start.start(ok())?;
        Ok(Bytes::from_static(b"warm"))
    }
}

/// The (server-side) reports' clauses.
fn server_clauses(reports: &Reports) -> Vec<String> {
    reports
        .all()
        .iter()
        .filter(|violation| violation.side() == Side::Server)
        .map(|violation| violation.clause().to_owned())
        .collect()
}

#[test]
fn a_sync_retry_with_the_same_state_is_a_second_call() {
    let reports = Reports::new(Policy::Collect);
    let app = Validator::new(rgi::from_fn(cold_then_warm()), reports.clone());
    let mut state = ResponseState::new(&Method::GET);
    let mut wire = Recorder::new();
    assert!(
        app.call(environ(), &mut state.start_response(&mut wire))
            .is_err()
    );
    let retried = app.call(environ(), &mut state.start_response(&mut wire));
    drop(retried);
    drop(app);
    assert_eq!(
        server_clauses(&reports),
        ["RGI-APP-5"],
        "{:?}",
        reports.all()
    );
}

#[test]
fn an_async_retry_with_the_same_state_is_a_second_call() {
    let reports = Reports::new(Policy::Collect);
    let app = AsyncValidator::new(rgi_async::from_fn(cold_then_warm()), reports.clone());
    let mut state = ResponseState::new(&Method::GET);
    let mut wire = Recorder::new();
    assert!(
        app.call(async_environ(), &mut state.start_response(&mut wire))
            .is_err()
    );
    let retried = app.call(async_environ(), &mut state.start_response(&mut wire));
    drop(retried);
    drop(app);
    assert_eq!(
        server_clauses(&reports),
        ["RGIA-APP-1"],
        "{:?}",
        reports.all()
    );
}

#[test]
fn a_fresh_state_after_a_failed_call_is_clean() {
    let reports = Reports::new(Policy::Collect);
    let app = Validator::new(rgi::from_fn(cold_then_warm()), reports.clone());
    for _ in 0..2 {
        let _ = serve_sync(&app, environ(), &mut Recorder::new());
    }
    drop(app);
    assert!(server_clauses(&reports).is_empty(), "{:?}", reports.all());
}

#[test]
fn validators_on_both_sides_of_an_adapter_are_each_called_once() {
    let (outer, inner) = (Reports::new(Policy::Collect), Reports::new(Policy::Collect));
    let sync_app = rgi::from_fn(|_environ: Environ, start| {
        start.start(ok())?;
        Ok(Bytes::from_static(b"threaded"))
    });
    let app = AsyncValidator::new(
        Threaded::new(Validator::new(sync_app, inner.clone())),
        outer.clone(),
    );
    for _ in 0..3 {
        let mut wire = Recorder::new();
        let served = serve_async(&app, async_environ(), &mut wire);
        assert!(served.outcome.is_complete(), "{:?}", served.outcome);
        assert_eq!(wire.body(), b"threaded");
    }
    drop(app);
    assert!(outer.is_empty(), "{:?}", outer.all());
    assert!(inner.is_empty(), "{:?}", inner.all());
}

#[test]
fn a_validator_inside_a_validator_is_clean() {
    let (outer, inner) = (Reports::new(Policy::Collect), Reports::new(Policy::Collect));
    let app = Validator::new(
        Validator::new(
            rgi::from_fn(|_environ: Environ, start| {
                start.start(ok())?;
                Ok(Bytes::from_static(b"nested"))
            }),
            inner.clone(),
        ),
        outer.clone(),
    );
    let _ = serve_sync(&app, environ(), &mut Recorder::new());
    drop(app);
    assert!(outer.is_empty(), "{:?}", outer.all());
    assert!(inner.is_empty(), "{:?}", inner.all());
}
