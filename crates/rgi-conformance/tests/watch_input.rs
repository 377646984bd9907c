//! The validator watches the input over its whole life and compares the
//! environ's declared facts with what happens (issue 11 §2): each check
//! is tripped by its broken example, with its clause and side, and stays
//! quiet on the correct party closest to it.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(
    dead_code,
    reason = "the table of broken examples is validate_sync.rs's"
)]
mod support_validate;

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use rgi::{BoxError, Concurrency, Environ, Input, InputError};
use rgi_conformance::client::{TestClient, TestRequest};
use rgi_conformance::rt::{Recorder, serve_sync};
use rgi_conformance::validate::Validator;
use rgi_conformance::{Side, Violation};

use support_validate::common::{
    async_environ, build, collect, environ, has, serve, serve_asynchronously, text,
};
use support_validate::input_examples::{
    self as examples, AtHand, Edits, FailsFirst, Shared, echo, expecting_upload, keeps_input,
    polls_input, read_stashed, reads_then_refuses, through_middleware, two_at_once,
};

/// Asserts that `violations` hold `clause` by `side`.
fn assert_caught(violations: &[Violation], clause: &str, side: Side) {
    assert!(
        has(violations, clause, side),
        "expected {clause} by the {side}, got {violations:?}"
    );
}

/// Asserts that nothing at error level was reported.
fn assert_clean(violations: &[Violation]) {
    let errors: Vec<&Violation> = violations
        .iter()
        .filter(|violation| !violation.is_warning())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

// ---- RGI-INPUT-3: a blocking read blocks ----

#[test]
fn a_blocking_read_that_would_block_is_the_servers() {
    assert_caught(
        &examples::blocking_read_would_block(),
        "RGI-INPUT-3",
        Side::Server,
    );
}

#[test]
fn a_source_that_answers_in_odd_sizes_is_fine() {
    /// Hands out at most three bytes a read, as a slow connection does.
    struct Trickle(&'static [u8]);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let count = self.0.len().min(buf.len()).min(3);
            buf[..count].copy_from_slice(&self.0[..count]);
            self.0 = &self.0[count..];
            Ok(count)
        }
    }
    let body = b"a body read in pieces";
    let violations = serve(
        echo(),
        build(
            environ()
                .header(header::CONTENT_LENGTH, HeaderValue::from(body.len()))
                .input(Input::new(Trickle(body), Some(body.len() as u64))),
        ),
    );
    assert!(violations.is_empty(), "{violations:?}");
}

// ---- RGI-INPUT-17: a malformed body is a typed error ----

#[test]
fn an_untyped_failure_of_the_body_is_the_servers() {
    assert_caught(
        &examples::input_error_untyped(),
        "RGI-INPUT-17",
        Side::Server,
    );
}

#[test]
fn typed_failures_and_transport_errors_are_fine() {
    /// A de-chunker that types its framing error.
    struct Typed(bool);
    impl Read for Typed {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !std::mem::replace(&mut self.0, true) && !buf.is_empty() {
                buf[0] = b'a';
                return Ok(1);
            }
            Err(InputError::MalformedBody {
                reason: "chunk size \"zz\" is not hexadecimal".to_owned(),
            }
            .into())
        }
    }
    let typed = serve(
        echo(),
        build(environ().input(Input::new(Typed(false), None))),
    );
    assert!(typed.is_empty(), "{typed:?}");
    // A connection reset is no framing fault: the kind says what happened.
    let reset = FailsFirst {
        data: b"",
        failure: Some(io::ErrorKind::ConnectionReset),
    };
    let reset = serve(echo(), build(environ().input(Input::new(reset, None))));
    assert!(reset.is_empty(), "{reset:?}");
}

// ---- RGI-INPUT-15, RGIA-INPUT-16: reads after the response ----

#[test]
fn body_bytes_after_the_response_are_the_servers() {
    assert_caught(
        &examples::input_read_after_response(),
        "RGI-INPUT-15",
        Side::Server,
    );
    assert_caught(
        &examples::async_input_read_after_response(),
        "RGIA-INPUT-16",
        Side::Server,
    );
}

#[test]
fn a_source_that_answers_response_finished_after_the_response_is_fine() {
    let stash = Arc::new(Mutex::new(None));
    let client = TestClient::new(keeps_input(&stash));
    let response = client
        .request(TestRequest::post("/", "kept for later"))
        .expect("the request runs");
    let late = read_stashed(&stash).expect_err("the test client's source refuses");
    assert!(matches!(
        InputError::from_io(&late),
        Some(InputError::ResponseFinished)
    ));
    drop(client);
    assert!(response.violations.is_empty(), "{:?}", response.violations);
}

#[test]
fn a_body_read_whole_stays_at_its_end_after_the_response() {
    let reports = collect();
    let stash = Arc::new(Mutex::new(None));
    let keep = Arc::clone(&stash);
    let validator = Validator::new(
        rgi::from_fn(move |mut environ: Environ, start| {
            let body = environ.input_mut().read_to_bytes(64)?;
            *keep.lock().map_err(|_| "poisoned")? = Some(environ.into_input());
            start.start(text(StatusCode::OK))?;
            Ok(body)
        }),
        reports.clone(),
    );
    let environ = build(
        environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
            .input(Input::new(&b"abc"[..], Some(3))),
    );
    let _ = serve_sync(&validator, environ, &mut Recorder::new());
    assert_eq!(read_stashed(&stash).expect("EOF"), b"");
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

// ---- RGI-ENV-8: concurrency facts against the calls counted ----

#[test]
fn concurrent_calls_under_a_single_thread_claim_are_the_servers() {
    assert_caught(
        &examples::single_thread_claim_concurrent_calls(),
        "RGI-ENV-8",
        Side::Server,
    );
}

#[test]
fn concurrent_calls_under_a_multithread_claim_are_fine() {
    let violations = two_at_once(Concurrency::MULTITHREADED);
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn one_call_after_another_on_different_threads_is_fine_for_a_single_thread_claim() {
    let reports = collect();
    let validator = Validator::new(echo(), reports.clone());
    let flags = Concurrency::MULTITHREADED.with_multithread(false);
    for _ in 0..2 {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let environ = build(environ().concurrency(flags));
                let _ = serve_sync(&validator, environ, &mut Recorder::new());
            });
        });
    }
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

#[test]
fn a_second_call_claiming_run_once_is_the_servers() {
    assert_caught(
        &examples::run_once_called_again(),
        "RGI-ENV-8",
        Side::Server,
    );
}

#[test]
fn run_once_on_the_only_call_is_fine() {
    let flags = Concurrency::MULTITHREADED
        .with_multithread(false)
        .with_run_once(true);
    let violations = serve(echo(), build(environ().concurrency(flags)));
    assert!(violations.is_empty(), "{violations:?}");
}

// ---- RGI-INPUT-16, RGI-MW-11: a middleware's changes to the environ ----

#[test]
fn a_middleware_that_replaces_the_input_and_keeps_the_length_field_is_blamed() {
    let violations = examples::mw_input_length_disagrees();
    assert_caught(&violations, "RGI-INPUT-16", Side::Server);
    assert_caught(&violations, "RGI-ENV-10", Side::Server);
}

#[test]
fn a_middleware_that_replaces_the_input_and_updates_the_length_field_is_fine() {
    let violations = through_middleware(
        |inner| {
            Edits(inner, |environ: &mut Environ| {
                let packed = environ.input_mut().read_to_bytes(1 << 16)?;
                let mut inflated = packed.to_vec();
                inflated.extend_from_slice(&packed);
                environ
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(inflated.len()));
                environ.replace_input(Input::from_bytes(inflated));
                Ok(())
            })
        },
        TestRequest::post("/", "abc"),
    );
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn a_server_whose_length_field_disagrees_is_not_a_middlewares_fault() {
    // No middleware between: the plain environ check, not RGI-INPUT-16.
    let mut environ = build(environ().input(Input::from_bytes("hello")));
    environ
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
    let violations = serve(echo(), environ);
    assert_caught(&violations, "RGI-ENV-10", Side::Server);
    assert!(
        !violations
            .iter()
            .any(|violation| violation.clause() == "RGI-INPUT-16"),
        "{violations:?}"
    );
}

#[test]
fn a_middleware_that_clears_the_extensions_is_blamed() {
    assert_caught(&examples::mw_extension_removed(), "RGI-MW-11", Side::Server);
}

#[test]
fn a_middleware_that_adds_and_takes_its_own_extensions_is_fine() {
    /// The middleware's own value.
    #[derive(Debug, Clone)]
    #[allow(dead_code, reason = "only its presence matters")]
    struct Tenant(&'static str);
    let violations = through_middleware(
        |inner| {
            Edits(inner, |environ: &mut Environ| {
                environ.extensions_mut().insert(Tenant("ada"));
                environ.extensions_mut().remove::<Tenant>();
                environ.extensions_mut().insert(Tenant("grace"));
                Ok(())
            })
        },
        TestRequest::get("/"),
    );
    assert!(violations.is_empty(), "{violations:?}");
}

// ---- RGI-INPUT-25: decide before reading ----

#[test]
fn reading_an_expect_continue_upload_then_refusing_on_the_head_is_a_warning() {
    let violations = examples::read_before_refusing();
    assert_caught(&violations, "RGI-INPUT-25", Side::Application);
    assert_clean(&violations);
}

#[test]
fn refusing_before_reading_or_for_what_the_body_says_is_fine() {
    let refuses_first = rgi::from_fn(|mut environ: Environ, start| {
        if environ.headers().get(header::AUTHORIZATION).is_none() {
            start.start(text(StatusCode::UNAUTHORIZED))?;
            return Ok(Bytes::from_static(b"token required"));
        }
        let body = environ.input_mut().read_to_bytes(64)?;
        start.start(text(StatusCode::OK))?;
        Ok(body)
    });
    let first = serve(refuses_first, expecting_upload());
    assert!(first.is_empty(), "{first:?}");
    // A body that turns out invalid needed reading to find out.
    let invalid = serve(
        reads_then_refuses(StatusCode::BAD_REQUEST),
        expecting_upload(),
    );
    assert!(invalid.is_empty(), "{invalid:?}");
    // Without the expectation, nobody was spared anything.
    let plain = build(
        environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("5"))
            .input(Input::new(&b"hello"[..], Some(5))),
    );
    let plain = serve(reads_then_refuses(StatusCode::UNAUTHORIZED), plain);
    assert!(plain.is_empty(), "{plain:?}");
}

// ---- RGIA-INPUT-9: no zero-sized polls ----

#[test]
fn a_zero_sized_poll_is_the_applications() {
    assert_caught(
        &examples::zero_sized_poll(),
        "RGIA-INPUT-9",
        Side::Application,
    );
}

#[test]
fn polls_of_one_byte_at_a_time_are_fine() {
    let violations = serve_asynchronously(
        polls_input(1),
        build(async_environ().input(Input::from_async(AtHand(Bytes::from_static(b"ab")), None))),
    );
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn a_failure_of_the_applications_own_is_not_a_zero_sized_poll() {
    let violations = serve_asynchronously(
        rgi_async::from_fn(|_environ: Environ, _start| {
            Err::<Bytes, rgi::BoxError>(
                io::Error::new(io::ErrorKind::InvalidInput, "bad query").into(),
            )
        }),
        build(async_environ()),
    );
    assert!(
        !violations
            .iter()
            .any(|violation| violation.clause() == "RGIA-INPUT-9"),
        "{violations:?}"
    );
}

// ---- the byte position across the switch ----

#[test]
fn a_switch_after_a_partial_read_resumes_at_the_next_unread_byte() {
    use std::task::Poll;

    use rgi_async::{Step, SyncSwitch};
    use support_validate::common::AsyncSteps;

    let reports = collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = rgi_async::from_fn(move |environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        let mut input = Some(environ.into_input());
        let record = Arc::clone(&record);
        Ok(AsyncSteps(
            0,
            move |_, cx: &mut std::task::Context<'_>, _: &mut rgi::StartResponse<'_>| {
                let Some(reading) = input.as_mut() else {
                    return Poll::Ready(None);
                };
                match reading.poll_chunk(cx, 3) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error.into()))),
                    Poll::Ready(Ok(first)) => {
                        record
                            .lock()
                            .expect("not poisoned")
                            .extend_from_slice(&first);
                        let mut rest_of = input.take().expect("still held");
                        let record = Arc::clone(&record);
                        Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |_start| {
                            let mut rest = Vec::new();
                            rest_of.read_to_end(&mut rest)?;
                            record
                                .lock()
                                .expect("not poisoned")
                                .extend_from_slice(&rest);
                            Ok(Bytes::from(rest))
                        })))))
                    }
                }
            },
        ))
    });
    let validator = rgi_conformance::validate::AsyncValidator::new(app, reports.clone());
    let body = b"0123456789";
    let environ = build(
        async_environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from(body.len()))
            .input(Input::from_async(
                AtHand(Bytes::from_static(body)),
                Some(body.len() as u64),
            )),
    );
    let served = rgi_conformance::rt::serve_async(&validator, environ, &mut Recorder::new());
    assert!(served.outcome.is_complete(), "{:?}", served.outcome);
    assert_eq!(*seen.lock().expect("not poisoned"), body);
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

// ---- RGI-INPUT-16: a replacement input that cannot deliver its length ----

#[test]
fn a_middleware_that_drains_the_body_behind_the_application_is_blamed() {
    assert_caught(
        &examples::mw_input_truncated(),
        "RGI-INPUT-16",
        Side::Server,
    );
}

/// Hands inward an input over the original, read only when the inner
/// application reads.
fn passes_through(environ: &mut Environ) -> Result<(), BoxError> {
    let length = environ.content_length();
    let original = Shared(Arc::new(Mutex::new(environ.replace_input(Input::empty()))));
    environ.replace_input(Input::new(original, length));
    Ok(())
}

#[test]
fn a_middleware_whose_replacement_reads_on_demand_is_fine() {
    let violations = through_middleware(
        |inner| Edits(inner, passes_through),
        TestRequest::post("/", "line one\nline two\nline three\n"),
    );
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn a_truncation_that_came_from_the_client_is_not_the_middlewares() {
    let inner_reports = collect();
    let outer_reports = collect();
    let outer = Validator::new(
        Edits(
            Validator::new(echo(), inner_reports.clone()),
            passes_through,
        ),
        outer_reports.clone(),
    );
    // The client promised five bytes and hung up after two.
    let environ = build(
        environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("5"))
            .input(Input::new(&b"ab"[..], Some(5))),
    );
    let _ = serve_sync(&outer, environ, &mut Recorder::new());
    drop(outer);
    let mut violations = outer_reports.all();
    violations.extend(inner_reports.all());
    assert!(
        !violations
            .iter()
            .any(|violation| violation.clause() == "RGI-INPUT-16"),
        "{violations:?}"
    );
}

// ---- the first read is short on purpose ----

#[test]
fn the_first_read_gets_at_most_half_of_what_it_asked_for() {
    let reports = collect();
    let got = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&got);
    let validator = Validator::new(
        rgi::from_fn(move |mut environ: Environ, start| {
            // One read, as if it filled the buffer: RGI-INPUT-10 says it
            // need not.
            let mut buf = [0; 16];
            let first = environ.input_mut().read(&mut buf)?;
            let rest = environ.input_mut().read_to_bytes(64)?;
            record
                .lock()
                .map_err(|_| "poisoned")?
                .push((first, rest.len()));
            start.start(text(StatusCode::OK))?;
            Ok(Bytes::new())
        }),
        reports.clone(),
    );
    let environ = build(
        environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("16"))
            .input(Input::new(&b"0123456789abcdef"[..], Some(16))),
    );
    let _ = serve_sync(&validator, environ, &mut Recorder::new());
    drop(validator);
    assert_eq!(*got.lock().expect("not poisoned"), [(8, 8)]);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

// ---- RGIA-INPUT-2: a source returns at most what it is polled for ----

#[test]
fn a_source_that_returns_more_than_asked_is_the_servers() {
    assert_caught(
        &examples::source_overdelivered(),
        "RGIA-INPUT-2",
        Side::Server,
    );
}

#[test]
fn a_source_that_keeps_to_max_is_fine() {
    let violations = serve_asynchronously(
        polls_input(2),
        build(
            async_environ()
                .header(header::CONTENT_LENGTH, HeaderValue::from_static("6"))
                .input(Input::from_async(
                    AtHand(Bytes::from_static(b"abcdef")),
                    Some(6),
                )),
        ),
    );
    assert!(violations.is_empty(), "{violations:?}");
}
