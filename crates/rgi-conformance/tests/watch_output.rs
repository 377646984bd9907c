//! The validator watches the output after the head and judges middleware
//! from both of its boundaries (issue 11 §2): every check of this area
//! trips on its broken example (in `support_validate/output_examples.rs`,
//! also run by the table in `validate_sync.rs`) with its clause and side,
//! and stays silent on a clean example of the same shape.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, reason = "the other examples are run by validate_sync.rs")]
mod support_validate;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{Application, Body, BoxError, Environ, Hints, Intercept, ResponseHead, StartResponse};
use rgi_async::Step;
use rgi_conformance::client::TestRequest;
use rgi_conformance::rt::{Recorder, serve_sync};
use rgi_conformance::validate::{ValidatedBody, Validator};
use rgi_conformance::{Side, Violation};

use support_validate::common::{build, collect, environ, has, serve, text};
use support_validate::output_examples::{
    self as examples, Layer, Map, boxed, fails_after_head, nested, nested_async, one_chunk,
    pends_once, poll_inner, sparse, switches, three_chunks, truncated_upload,
};

type Validated = ValidatedBody<Box<dyn Body>>;
type Inner = Pin<Box<dyn rgi_async::AsyncBody>>;

/// A check's name, the clause and side it names, its broken example.
type Row = (&'static str, &'static str, Side, fn() -> Vec<Violation>);

/// Every check of this area.
const BROKEN: &[Row] = &[
    (
        "mw_pulls_in_call",
        "RGI-MW-6",
        Side::Application,
        examples::mw_pulls_in_call,
    ),
    (
        "mw_several_per_step",
        "RGI-MW-5",
        Side::Application,
        examples::mw_several_per_step,
    ),
    (
        "async_mw_several_per_step",
        "RGIA-COMP-10",
        Side::Application,
        examples::async_mw_several_per_step,
    ),
    (
        "async_mw_runs_continuation",
        "RGIA-COMP-11",
        Side::Application,
        examples::async_mw_runs_continuation,
    ),
    (
        "async_mw_pending_as_step",
        "RGIA-COMP-9",
        Side::Application,
        examples::async_mw_pending_as_step,
    ),
    (
        "mw_swallows_failure",
        "RGI-MW-9",
        Side::Application,
        examples::mw_swallows_failure,
    ),
    (
        "mw_head_not_intercepted",
        "RGI-MW-3",
        Side::Application,
        examples::mw_head_not_intercepted,
    ),
    (
        "mw_writes_inner_chunk",
        "RGI-MW-4",
        Side::Application,
        examples::mw_writes_inner_chunk,
    ),
    (
        "mw_length_untrue",
        "RGI-MW-8",
        Side::Application,
        examples::mw_length_untrue,
    ),
    (
        "mw_hints_understated",
        "RGI-HINT-8",
        Side::Application,
        examples::mw_hints_understated,
    ),
    (
        "mw_inner_body_not_dropped",
        "RGI-MW-7",
        Side::Server,
        examples::mw_inner_body_not_dropped,
    ),
    (
        "async_mw_inner_body_not_dropped",
        "RGIA-COMP-12",
        Side::Server,
        examples::async_mw_inner_body_not_dropped,
    ),
    (
        "pull_after_not_started",
        "RGI-FAIL-7",
        Side::Server,
        examples::pull_after_not_started,
    ),
    (
        "pull_after_excess",
        "RGI-CL-2",
        Side::Server,
        examples::pull_after_excess,
    ),
    (
        "pull_after_bodiless_content",
        "RGI-BODY-18",
        Side::Server,
        examples::pull_after_bodiless_content,
    ),
    (
        "unstarted_body_not_pulled",
        "RGI-START-5",
        Side::Server,
        examples::unstarted_body_not_pulled,
    ),
    (
        "body_kept_after_end",
        "RGI-BODY-12",
        Side::Server,
        examples::body_kept_after_end,
    ),
    (
        "output_transfer_coded",
        "RGI-BODY-9",
        Side::Application,
        examples::output_transfer_coded,
    ),
    (
        "tiny_chunks",
        "RGI-BODY-8",
        Side::Application,
        examples::tiny_chunks,
    ),
    (
        "output_all_written",
        "RGI-WRITE-5",
        Side::Application,
        examples::output_all_written,
    ),
    (
        "client_fault_hidden",
        "RGI-FAIL-12",
        Side::Application,
        examples::client_fault_hidden,
    ),
    (
        "head_differs_from_get",
        "RGI-BODY-17",
        Side::Application,
        examples::head_differs_from_get,
    ),
];

#[test]
fn every_broken_example_names_its_clause_and_side() {
    let mut failures = Vec::new();
    for (name, clause, side, example) in BROKEN {
        let violations = example();
        if !has(&violations, clause, *side) {
            failures.push(format!(
                "{name}: expected {clause} by the {side}, got {violations:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_checks_of_this_area_are_listed_with_their_clauses() {
    for (name, clause, ..) in BROKEN {
        let check = rgi_conformance::validate::CHECKS
            .iter()
            .find(|check| check.name() == *name)
            .unwrap_or_else(|| panic!("{name} is not in CHECKS"));
        assert_eq!(check.clauses()[0], *clause, "{name}");
    }
}

#[track_caller]
fn assert_silent(violations: &[Violation]) {
    assert!(violations.is_empty(), "{violations:?}");
}

/// The identity middleware: one inner pull per pull, chunks returned.
fn pass_through(
    body: &mut Validated,
    start: &mut StartResponse<'_>,
) -> Option<Result<Bytes, BoxError>> {
    body.next_chunk(start)
}

// ---- middleware between two validators: clean shapes ----

#[test]
fn a_middleware_that_passes_the_body_through_is_silent() {
    assert_silent(&nested(
        boxed(three_chunks()),
        |inner| Map {
            inner,
            step: pass_through,
        },
        [TestRequest::get("/"), TestRequest::head("/")],
    ));
}

#[test]
fn a_middleware_that_gathers_with_empty_chunks_is_silent() {
    // One inner pull per pull; what it holds back goes out as an empty
    // chunk now and whole at the end (RGI-MW-5 allows exactly this).
    let held = std::sync::Arc::new(std::sync::Mutex::new((BytesMut::new(), false)));
    assert_silent(&nested(
        boxed(three_chunks()),
        move |inner| Map {
            inner,
            step: move |body: &mut Validated, start: &mut StartResponse<'_>| {
                let mut held = held.lock().unwrap();
                if held.1 {
                    return None;
                }
                match body.next_chunk(start) {
                    Some(Ok(chunk)) => {
                        held.0.extend_from_slice(&chunk);
                        Some(Ok(Bytes::new()))
                    }
                    Some(Err(error)) => Some(Err(error)),
                    None => {
                        held.1 = true;
                        Some(Ok(std::mem::take(&mut held.0).freeze()))
                    }
                }
            },
        },
        [TestRequest::get("/")],
    ));
}

#[test]
fn a_middleware_that_passes_an_inner_failure_on_is_silent() {
    let violations = nested(
        boxed(fails_after_head()),
        |inner| Map {
            inner,
            step: pass_through,
        },
        [TestRequest::get("/")],
    );
    assert!(
        !has(&violations, "RGI-MW-9", Side::Application),
        "{violations:?}"
    );
}

#[test]
fn a_middleware_that_intercepts_the_head_is_silent() {
    struct AddsField;
    impl Intercept for AddsField {
        fn on_start(&mut self, head: &mut ResponseHead) {
            head.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    struct Intercepting<A>(A);
    impl<A: Application> Application for Intercepting<A> {
        type Body = A::Body;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<A::Body, BoxError> {
            self.0.call(environ, &mut start.intercept(&mut AddsField))
        }
    }
    assert_silent(&nested(one_chunk(), Intercepting, [TestRequest::get("/")]));
}

#[test]
fn a_middleware_that_replaces_an_inner_failure_before_the_head_is_silent() {
    struct ErrorPage<A>(A);
    impl<A: Application> Application for ErrorPage<A> {
        type Body = Box<dyn Body>;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<Box<dyn Body>, BoxError> {
            match self.0.call(environ, start) {
                Ok(body) => Ok(Box::new(body)),
                Err(cause) => {
                    start.replace(text(StatusCode::BAD_GATEWAY), cause)?;
                    Ok(Box::new(Bytes::from_static(b"the backend failed")))
                }
            }
        }
    }
    let failing = rgi::from_fn(|_environ: Environ, start| -> Result<Bytes, BoxError> {
        start.start(text(StatusCode::OK))?;
        Err("backend timed out".into())
    });
    assert_silent(&nested(failing, ErrorPage, [TestRequest::get("/")]));
}

#[test]
fn a_middleware_that_writes_its_own_bytes_is_not_blamed_for_inner_chunks() {
    struct Banner<A>(A);
    impl<A: Application> Application for Banner<A> {
        type Body = A::Body;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<A::Body, BoxError> {
            let body = self.0.call(environ, start)?;
            start.write(Bytes::from_static(b"banner\n"))?;
            Ok(body)
        }
    }
    let violations = nested(one_chunk(), Banner, [TestRequest::get("/")]);
    assert!(
        !has(&violations, "RGI-MW-4", Side::Application),
        "{violations:?}"
    );
    assert!(
        !has(&violations, "RGI-MW-3", Side::Application),
        "{violations:?}"
    );
}

#[test]
fn a_middleware_that_changes_the_content_and_drops_the_length_is_silent() {
    struct Doubling<B>(B);
    impl<B: Body> Body for Doubling<B> {
        fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
            self.0.next_chunk(start).map(|step| {
                step.map(|chunk| {
                    let mut twice = BytesMut::from(&chunk[..]);
                    twice.extend_from_slice(&chunk);
                    twice.freeze()
                })
            })
        }
        // No size_hint: the inner one no longer describes these bytes.
    }
    struct DropsLength;
    impl Intercept for DropsLength {
        fn on_start(&mut self, head: &mut ResponseHead) {
            head.headers_mut().remove(header::CONTENT_LENGTH);
        }
    }
    struct Double<A>(A);
    impl<A: Application> Application for Double<A> {
        type Body = Doubling<A::Body>;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<Self::Body, BoxError> {
            self.0
                .call(environ, &mut start.intercept(&mut DropsLength))
                .map(Doubling)
        }
    }
    assert_silent(&nested(three_chunks(), Double, [TestRequest::get("/")]));
}

#[test]
fn a_middleware_that_forwards_the_inner_hints_is_silent() {
    struct Forwards<A>(A);
    impl<A: Application> Application for Forwards<A> {
        type Body = A::Body;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<A::Body, BoxError> {
            self.0.call(environ, start)
        }
        fn hints(&self) -> Hints {
            self.0.hints()
        }
    }
    assert_silent(&nested(
        one_chunk(),
        Forwards,
        [TestRequest::post("/", "x")],
    ));
}

#[test]
fn an_asynchronous_middleware_that_passes_steps_through_is_silent() {
    let pass = |body: &mut Option<Inner>, cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
        poll_inner(body, cx, start)
    };
    assert_silent(&nested_async(sparse(), |inner| Layer { inner, poll: pass }));
    assert_silent(&nested_async(pends_once(), |inner| Layer {
        inner,
        poll: pass,
    }));
    assert_silent(&nested_async(switches(), |inner| Layer {
        inner,
        poll: pass,
    }));
}

#[test]
fn an_asynchronous_middleware_may_drop_the_inner_body_once_it_ended() {
    let drops = |body: &mut Option<Inner>, cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
        let step = poll_inner(body, cx, start);
        if matches!(step, Poll::Ready(None)) {
            *body = None;
        }
        step
    };
    assert_silent(&nested_async(sparse(), |inner| Layer {
        inner,
        poll: drops,
    }));
}

// ---- servers: the kit's own drivers stop where they must ----

fn server_side(violations: &[Violation]) -> Vec<&Violation> {
    violations
        .iter()
        .filter(|violation| violation.side() == Side::Server)
        .collect()
}

#[test]
fn a_server_that_stops_after_a_refused_chunk_is_not_blamed() {
    let unstarted =
        rgi::from_fn(|_environ: Environ, _start| Ok(rgi::from_iter(["never", "started"])));
    let excess = rgi::from_fn(|_environ: Environ, start| {
        start.start(
            text(StatusCode::OK).with_header(header::CONTENT_LENGTH, HeaderValue::from(2)),
        )?;
        Ok(rgi::from_iter(["four", "more"]))
    });
    let not_modified = rgi::from_fn(|_environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::NOT_MODIFIED))?;
        Ok(rgi::from_iter(["cached", "copy"]))
    });
    for violations in [
        serve(unstarted, build(environ())),
        serve(excess, build(environ())),
        serve(not_modified, build(environ())),
    ] {
        assert!(server_side(&violations).is_empty(), "{violations:?}");
    }
}

#[test]
fn a_server_that_pulls_a_lazy_body_and_drops_each_body_at_once_is_silent() {
    let lazy = rgi::from_fn(|_environ: Environ, _start| {
        let mut pulled = false;
        Ok(support_validate::common::Steps(
            0,
            move |_n, start: &mut StartResponse<'_>| {
                if std::mem::replace(&mut pulled, true) {
                    return None;
                }
                Some(
                    start
                        .start(text(StatusCode::OK))
                        .map(|()| Bytes::from_static(b"lazy"))
                        .map_err(Into::into),
                )
            },
        ))
    });
    let reports = collect();
    let validator = Validator::new(lazy, reports.clone());
    for _ in 0..3 {
        let served = serve_sync(&validator, build(environ()), &mut Recorder::new());
        assert!(served.outcome.is_complete());
    }
    drop(validator);
    assert_silent(&reports.all());
}

// ---- the body as a whole: clean shapes ----

#[test]
fn text_that_mentions_chunk_framing_is_not_transfer_coded() {
    let raw = rgi::from_fn(|_environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK).with_header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("message/http"),
        ))?;
        Ok(Bytes::from_static(b"5\r\nhello\r\n0\r\n\r\n"))
    });
    assert_silent(&serve(raw, build(environ())));
    let prose = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(rgi::from_iter(["the last chunk is ", "0\r\n\r\n"]))
    });
    assert_silent(&serve(prose, build(environ())));
}

#[test]
fn a_stream_of_small_events_and_a_write_before_chunks_are_fine() {
    let events = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        start.write(Bytes::from_static(b"retry: 1000\n\n"))?;
        Ok(support_validate::common::Steps(
            0,
            |n, _start: &mut StartResponse<'_>| {
                (n < 200).then(|| Ok(Bytes::from_static(b"data: 1\n\n")))
            },
        ))
    });
    assert_silent(&serve(events, build(environ())));
}

#[test]
fn an_application_that_returns_the_input_error_lets_the_client_fault_through() {
    let honest = rgi::from_fn(|mut environ: Environ, start| {
        let upload = environ.input_mut().read_to_bytes(1024)?;
        start.start(text(StatusCode::OK))?;
        Ok(upload)
    });
    let violations = serve(honest, truncated_upload());
    assert!(
        !has(&violations, "RGI-FAIL-12", Side::Application),
        "{violations:?}"
    );
}

#[test]
fn head_and_get_agree_or_the_resource_changed_in_between() {
    let reports = collect();
    let removed = std::sync::atomic::AtomicBool::new(false);
    let validator = Validator::new(
        rgi::from_fn(move |environ: Environ, start| {
            if environ.method() == Method::DELETE {
                removed.store(true, std::sync::atomic::Ordering::SeqCst);
                start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
                return Ok(Bytes::new());
            }
            if removed.load(std::sync::atomic::Ordering::SeqCst) {
                start.start(text(StatusCode::NOT_FOUND))?;
                return Ok(Bytes::new());
            }
            start.start(text(StatusCode::OK))?;
            Ok(Bytes::from_static(b"page"))
        }),
        reports.clone(),
    );
    for method in [Method::GET, Method::HEAD, Method::DELETE, Method::HEAD] {
        let _ = serve_sync(
            &validator,
            build(environ().method(method)),
            &mut Recorder::new(),
        );
    }
    drop(validator);
    assert_silent(&reports.all());
}

#[test]
fn an_asynchronous_application_is_watched_too() {
    // The output watch lives in the tracker both validators share.
    let app = rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(support_validate::common::AsyncSteps(
            0,
            |n, _cx: &mut Context<'_>, _start: &mut StartResponse<'_>| match n {
                0 => Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"3\r\nabc\r\n"))))),
                1 => Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"0\r\n\r\n"))))),
                _ => Poll::Ready(None),
            },
        ))
    });
    let violations = support_validate::common::serve_asynchronously(
        app,
        build(support_validate::common::async_environ()),
    );
    assert!(
        has(&violations, "RGI-BODY-9", Side::Application),
        "{violations:?}"
    );
}

#[test]
fn a_panicking_report_between_two_validators_leaves_no_trace_on_the_thread() {
    struct Buffering<A>(A);
    impl<A: Application> Application for Buffering<A> {
        type Body = Bytes;
        fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
            let mut inner = self.0.call(environ, start)?;
            let mut all = BytesMut::new();
            while let Some(chunk) = inner.next_chunk(start) {
                all.extend_from_slice(&chunk?);
            }
            Ok(all.freeze())
        }
    }
    let inner_reports = collect();
    let outer = Validator::panicking(Buffering(Validator::new(
        three_chunks(),
        inner_reports.clone(),
    )));
    // RGI-MW-6 panics inside the middleware's call; the kit's driver, a
    // server, catches the panic at its boundary.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serve_sync(&outer, build(environ()), &mut Recorder::new())
    }));
    let before = inner_reports.all().len();
    // A later request on this thread is not taken for one nested in the
    // step that panicked (whose validator would then be told about it).
    assert_silent(&serve(three_chunks(), build(environ())));
    assert_eq!(
        inner_reports.all().len(),
        before,
        "{:?}",
        inner_reports.all()
    );
    assert_silent(&nested(
        boxed(three_chunks()),
        |inner| Map {
            inner,
            step: pass_through,
        },
        [TestRequest::get("/")],
    ));
}

#[test]
fn an_asynchronous_application_is_judged_for_hidden_client_faults_and_head_against_get() {
    let hides = rgi_async::from_fn(|mut environ: Environ, start| {
        let mut upload = Vec::new();
        std::io::Read::read_to_end(environ.input_mut(), &mut upload)
            .map_err(|_| BoxError::from("could not store the upload"))?;
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from(upload))
    });
    let environ = build(
        support_validate::common::async_environ()
            .method(Method::POST)
            .header(header::CONTENT_LENGTH, HeaderValue::from(6))
            .input(rgi::Input::new(
                std::io::Cursor::new(b"ab".to_vec()),
                Some(6),
            )),
    );
    let violations = support_validate::common::serve_asynchronously(hides, environ);
    assert!(
        has(&violations, "RGI-FAIL-12", Side::Application),
        "{violations:?}"
    );

    let routes_get_only = || {
        rgi_async::from_fn(|environ: Environ, start| {
            let status = if environ.method() == Method::GET {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            start.start(text(status))?;
            Ok(Bytes::new())
        })
    };
    let reports = collect();
    let validator =
        rgi_conformance::validate::AsyncValidator::new(routes_get_only(), reports.clone());
    for method in [Method::GET, Method::HEAD] {
        let _ = rgi_conformance::rt::serve_async(
            &validator,
            build(support_validate::common::async_environ().method(method)),
            &mut Recorder::new(),
        );
    }
    drop(validator);
    let violations = reports.all();
    assert!(
        has(&violations, "RGI-BODY-17", Side::Application),
        "{violations:?}"
    );
}

#[test]
fn an_asynchronous_application_that_returns_the_input_error_is_silent() {
    let honest = rgi_async::from_fn(|mut environ: Environ, start| {
        let mut upload = Vec::new();
        std::io::Read::read_to_end(environ.input_mut(), &mut upload)?;
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from(upload))
    });
    let environ = build(
        support_validate::common::async_environ()
            .method(Method::POST)
            .header(header::CONTENT_LENGTH, HeaderValue::from(6))
            .input(rgi::Input::new(
                std::io::Cursor::new(b"ab".to_vec()),
                Some(6),
            )),
    );
    let violations = support_validate::common::serve_asynchronously(honest, environ);
    assert!(
        !has(&violations, "RGI-FAIL-12", Side::Application),
        "{violations:?}"
    );
}
