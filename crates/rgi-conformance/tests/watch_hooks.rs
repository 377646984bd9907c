//! The checks that watch through the rgi crate's observation hooks
//! (issue 11 §2): a write's result (`Intercept::on_write_result`) and the
//! method a response state was made for (`StartResponse::is_head_request`),
//! plus the tokio-context check of the `tokio-context` feature. Each check
//! is tripped by its broken example and stays silent on a clean one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(
    dead_code,
    reason = "the table of broken examples is validate_sync.rs's"
)]
mod support_validate;

use std::io;

use bytes::Bytes;
use http::{Method, StatusCode};
use rgi::{Application, Environ, ResponseHead, ResponseSink, ResponseState};
use rgi_conformance::validate::Validator;
use rgi_conformance::{Side, Violation};

use support_validate::common::{build, collect, environ, has, text};
use support_validate::hook_examples as examples;

/// A client that goes away after the head: every body byte fails as a
/// transport error.
#[derive(Default)]
struct Vanishing;

impl ResponseSink for Vanishing {
    fn send_head(&mut self, _head: ResponseHead) -> io::Result<()> {
        Ok(())
    }

    fn send_data(&mut self, _data: Bytes) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "client gone"))
    }
}

/// Serves `app` once over a vanishing client, through a validator.
fn to_vanishing_client<A: Application>(app: A) -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(app, reports.clone());
    let mut state = ResponseState::new(&Method::GET);
    let mut sink = Vanishing;
    if let Ok(mut body) = validator.call(build(environ()), &mut state.start_response(&mut sink)) {
        while let Some(Ok(chunk)) =
            rgi::Body::next_chunk(&mut body, &mut state.start_response(&mut sink))
        {
            if state.send_chunk(&mut sink, chunk).is_err() {
                break;
            }
        }
    }
    drop(validator);
    reports.all()
}

// ---- RGI-WRITE-6: no output after a failed write ----

#[test]
fn writing_on_after_a_transport_failure_is_the_applications() {
    let violations = to_vanishing_client(rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        for row in 0..3 {
            let _ = start.write(Bytes::from(format!("row {row}\n")));
        }
        Ok(rgi::Empty)
    }));
    assert!(
        has(&violations, "RGI-WRITE-6", Side::Application),
        "{violations:?}"
    );
}

#[test]
fn stopping_at_the_first_failed_write_is_fine() {
    let violations = to_vanishing_client(rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        for row in 0..3 {
            start.write(Bytes::from(format!("row {row}\n")))?;
        }
        Ok(rgi::Empty)
    }));
    assert!(
        !violations.iter().any(|v| v.clause() == "RGI-WRITE-6"),
        "{violations:?}"
    );
}

// ---- RGI-BODY-15 and RGI-ENV-3: the state's method is the environ's ----

#[test]
fn a_head_request_over_a_get_state_is_the_servers() {
    let violations = examples::head_state_not_head();
    assert!(
        has(&violations, "RGI-BODY-15", Side::Server),
        "{violations:?}"
    );
}

#[test]
fn a_head_request_mapped_to_get_is_the_servers() {
    let violations = examples::head_state_for_other_method();
    assert!(
        has(&violations, "RGI-ENV-3", Side::Server),
        "{violations:?}"
    );
}

#[test]
fn matching_methods_are_fine() {
    for method in [Method::HEAD, Method::GET, Method::POST] {
        let violations = examples::served_with_state(method.clone(), &method);
        assert!(violations.is_empty(), "{method}: {violations:?}");
    }
}

// ---- RGIA-RT-1: a declared tokio context is entered ----

#[cfg(feature = "tokio-context")]
#[test]
fn declaring_tokio_and_polling_outside_it_is_the_servers() {
    let violations = examples::runtime_context_not_entered();
    assert!(
        has(&violations, "RGIA-RT-1", Side::Server),
        "{violations:?}"
    );
}

#[cfg(feature = "tokio-context")]
#[test]
fn declaring_tokio_and_polling_inside_it_is_fine() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let violations = examples::served_declaring_tokio();
    assert!(violations.is_empty(), "{violations:?}");
}
