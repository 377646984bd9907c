//! The validator's proof: every check in `CHECKS` is tripped by a
//! deliberately broken server or application and names its clause and
//! side; well-behaved synchronous applications produce no violation; the
//! three policies behave as documented.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_validate;

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::panic::{self, AssertUnwindSafe};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{
    Application, Body, BoxError, Empty, Environ, FileBody, Hints, Input, InputUse, ResponseHead,
    StartResponse,
};
use rgi_conformance::catalogue::Level;
use rgi_conformance::rt::{Recorder, serve_sync};
use rgi_conformance::validate::{CHECKS, Validator};
use rgi_conformance::{Policy, Reports, Side, Violation};

use support_validate::common::{
    Driver, Steps, build, collect, environ, has, serve, text, text_with_length,
};
use support_validate::{COMPANIONS, EXAMPLES};

#[test]
fn every_check_has_a_broken_example_that_names_its_clause() {
    let all_clauses: BTreeSet<&str> = CHECKS
        .iter()
        .flat_map(|check| check.clauses().iter().copied())
        .collect();
    let mut failures = Vec::new();
    for check in CHECKS {
        let Some((_, side, example)) = EXAMPLES.iter().find(|(name, ..)| *name == check.name())
        else {
            failures.push(format!("{}: no broken example in the table", check.name()));
            continue;
        };
        let violations = example();
        let clause = check.clauses()[0];
        if !has(&violations, clause, *side) {
            failures.push(format!(
                "{}: expected {clause} by the {side}, got {violations:?}",
                check.name()
            ));
        }
        let companions = COMPANIONS
            .iter()
            .find(|(name, _)| *name == check.name())
            .map_or(&[][..], |(_, clauses)| clauses);
        for violation in &violations {
            if !all_clauses.contains(violation.clause()) {
                failures.push(format!(
                    "{}: reported {} which no check lists",
                    check.name(),
                    violation.clause()
                ));
            }
            if violation.clause() != clause && !companions.contains(&violation.clause()) {
                failures.push(format!(
                    "{}: also reported {violation} (a false positive?)",
                    check.name()
                ));
            }
        }
    }
    for (name, ..) in EXAMPLES {
        if !CHECKS.iter().any(|check| check.name() == *name) {
            failures.push(format!("{name}: in the table but not in CHECKS"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn checks_are_many_named_uniquely_and_cite_real_clauses() {
    assert!(CHECKS.len() >= 60, "only {} checks", CHECKS.len());
    let mut names = BTreeSet::new();
    for check in CHECKS {
        assert!(names.insert(check.name()), "{} twice", check.name());
        assert!(
            check
                .name()
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'),
            "{} is not snake_case",
            check.name()
        );
        assert!(
            !check.clauses().is_empty(),
            "{} cites nothing",
            check.name()
        );
        assert!(!check.title().is_empty());
    }
    let spec = [
        include_str!("../../../spec/rgi.md"),
        include_str!("../../../spec/rgi-async.md"),
    ]
    .concat();
    for check in CHECKS {
        for clause in check.clauses() {
            assert!(
                spec.contains(&format!("- **[{clause}] ")),
                "{} cites {clause}, which the spec does not define",
                check.name()
            );
        }
    }
}

// ---- no false positives ----

/// Serves `app` with `environ` and asserts the validator stayed silent;
/// returns what went on the wire.
fn clean<A: Application>(app: A, environ: Environ) -> Recorder {
    let reports = collect();
    let validator = Validator::new(app, reports.clone());
    let mut wire = Recorder::new();
    let served = serve_sync(&validator, environ, &mut wire);
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
    assert!(served.outcome.is_complete(), "{:?}", served.outcome);
    wire
}

#[test]
fn a_streaming_body_that_starts_lazily_is_clean() {
    let app = rgi::from_fn(|_environ: Environ, _start| {
        Ok(Steps(0, |pull, start: &mut StartResponse<'_>| {
            if pull == 0 {
                if let Err(error) = start.start(text(StatusCode::OK)) {
                    return Some(Err(error.into()));
                }
                return Some(Ok(Bytes::new())); // a yield point first
            }
            (pull < 4).then(|| Ok(Bytes::from(format!("line {pull}\n"))))
        }))
    });
    let wire = clean(app, build(environ()));
    assert_eq!(wire.body(), b"line 1\nline 2\nline 3\n");
}

#[test]
fn replacing_a_stored_head_with_a_cause_is_clean() {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        // The template failed before anything was sent: answer 500 instead.
        start.replace(
            text_with_length(StatusCode::INTERNAL_SERVER_ERROR, 6),
            "template not found",
        )?;
        Ok(Bytes::from_static(b"sorry\n"))
    });
    let wire = clean(app, build(environ()));
    assert_eq!(wire.heads()[0].status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn a_late_replace_whose_cause_is_returned_is_clean_of_application_faults() {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Steps(0, |pull, start: &mut StartResponse<'_>| match pull {
            0 => Some(Ok(Bytes::from_static(b"partial"))),
            _ => {
                let replaced = start.replace(text(StatusCode::INTERNAL_SERVER_ERROR), "failed");
                Some(Err(replaced
                    .err()
                    .map_or("replaced".into(), rgi::StartError::into_cause)))
            }
        }))
    });
    let reports = collect();
    let validator = Validator::new(app, reports.clone());
    let _ = serve_sync(&validator, build(environ()), &mut Recorder::new());
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

#[test]
fn head_with_a_length_and_a_body_is_clean() {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text_with_length(StatusCode::OK, 5))?;
        Ok(Bytes::from_static(b"hello")) // the same body as for GET
    });
    let wire = clean(app, build(environ().method(Method::HEAD)));
    assert!(wire.body().is_empty());
    assert_eq!(wire.heads()[0].headers()[header::CONTENT_LENGTH], "5");
}

#[test]
fn write_then_yield_is_clean() {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text_with_length(StatusCode::OK, 12))?;
        start.write("hello, ")?;
        Ok(Steps(0, |pull, start: &mut StartResponse<'_>| match pull {
            0 => match start.write("wo") {
                Ok(()) => Some(Ok(Bytes::from_static(b"rld"))),
                Err(error) => Some(Err(error.into())),
            },
            _ => None,
        }))
    });
    let wire = clean(app, build(environ()));
    assert_eq!(wire.body(), b"hello, world");
}

#[test]
fn bodiless_statuses_are_clean() {
    let no_content = rgi::from_fn(|_environ: Environ, start| {
        start.start(StatusCode::NO_CONTENT)?;
        Ok(Empty)
    });
    clean(no_content, build(environ()));
    let not_modified = rgi::from_fn(|_environ: Environ, start| {
        start.start(
            ResponseHead::new(StatusCode::NOT_MODIFIED)
                .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("1234")),
        )?;
        Ok(Empty)
    });
    clean(not_modified, build(environ()));
}

#[test]
fn an_echo_of_the_request_body_is_clean() {
    let app = rgi::from_fn(|mut environ: Environ, start| {
        let body = environ.input_mut().read_to_bytes(1024)?;
        start.start(text_with_length(StatusCode::OK, body.len() as u64))?;
        Ok(body)
    })
    .with_hints(Hints::default().with_input(InputUse::Whole));
    let environ = build(
        environ()
            .method(Method::POST)
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("11"))
            .input(Input::new(
                &b"hello world and the next request"[..],
                Some(11),
            )),
    );
    let wire = clean(app, environ);
    assert_eq!(wire.body(), b"hello world");
}

#[test]
fn a_chunked_upload_read_line_by_line_is_clean() {
    let app = rgi::from_fn(|mut environ: Environ, start| {
        let mut lines = 0;
        let mut line = Vec::new();
        while environ.input_mut().read_line_limited(&mut line, 64)? > 0 {
            lines += 1;
            line.clear();
        }
        start.start(text(StatusCode::OK))?;
        Ok(format!("{lines} lines"))
    });
    let environ = build(
        environ()
            .method(Method::POST)
            .input(Input::new(&b"a\nb\nc\n"[..], None)),
    );
    assert_eq!(clean(app, environ).body(), b"3 lines");
}

/// A temporary file with `content`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str, content: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("rgi-validate-{}-{tag}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(content)
            .unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_file_body_is_clean_pulled_or_sent_by_the_platform() {
    let file = TempFile::new("file-body", b"0123456789");
    let path = file.0.clone();
    let app = rgi::from_fn(move |_environ: Environ, start| {
        let body = FileBody::new(std::fs::File::open(&path)?)?.with_chunk_size(4);
        start.start(text_with_length(StatusCode::OK, 10))?;
        Ok(body)
    });
    // Pulled chunk by chunk.
    let reports = collect();
    let validator = Validator::new(app, reports.clone());
    let mut wire = Recorder::new();
    serve_sync(&validator, build(environ()), &mut wire);
    assert_eq!(wire.body(), b"0123456789");
    // Partly "sendfile": the server sends 6 bytes itself, then pulls.
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver.call(&validator, build(environ())).unwrap();
    assert_eq!(body.size_hint(), Some(10));
    let mut sent = Vec::new();
    {
        let platform = body.file().expect("a file body");
        let mut own = FileBody::file(platform).try_clone().unwrap();
        own.seek(SeekFrom::Start(platform.offset())).unwrap();
        let mut six = [0; 6];
        own.read_exact(&mut six).unwrap();
        sent.extend_from_slice(&six);
        driver.state.send_head(&mut driver.sink).unwrap();
        driver.state.record_sent(6).unwrap();
        platform.advance(6);
    }
    while let Some(chunk) = driver.pull(&mut body) {
        sent.extend_from_slice(&chunk.unwrap());
    }
    drop(body);
    assert_eq!(driver.state.finish(&mut driver.sink).unwrap(), 10);
    assert_eq!(sent, b"0123456789");
    drop(file);
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

#[test]
fn mounted_apps_and_absolute_targets_are_clean() {
    clean(
        support_validate::sync_examples::fine(),
        build(
            environ()
                .uri(http::Uri::from_static("/app/a%2Fb?x=1"))
                .script_name("/app")
                .server("10.0.0.1", 8080)
                .remote_addr("192.0.2.7:50000".parse().unwrap()),
        ),
    );
    clean(
        support_validate::sync_examples::fine(),
        build(
            rgi::Environ::builder()
                .uri(http::Uri::from_static("http://example.org:8080/x"))
                .header(header::HOST, HeaderValue::from_static("example.org:8080")),
        ),
    );
    clean(
        support_validate::sync_examples::fine(),
        build(rgi::Environ::builder().version(http::Version::HTTP_10)),
    );
}

#[test]
fn the_validator_leaves_the_input_as_the_server_framed_it() {
    let app = rgi::from_fn(|environ: Environ, start| {
        let description = format!(
            "{:?} {} {}",
            environ.content_length(),
            environ.input().bytes_read(),
            environ.input().is_async()
        );
        start.start(text(StatusCode::OK))?;
        Ok(description)
    });
    let environ = build(
        environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
            .input(Input::from_bytes("abc")),
    );
    assert_eq!(clean(app, environ).body(), b"Some(3) 0 true");
}

// ---- the three policies ----

/// An application that starts twice.
fn starts_twice() -> impl Application {
    rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        let _ = start.start(text(StatusCode::OK));
        Err::<Empty, BoxError>("gave up".into())
    })
}

#[test]
fn the_panic_policy_panics_with_the_clause_at_the_offending_call() {
    let validator = Validator::panicking(starts_twice());
    let mut driver = Driver::new(&Method::GET);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = driver.call(&validator, build(environ()));
    }));
    let payload = caught.expect_err("the second start panics");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("[RGI-START-7]"), "{message}");
    assert!(message.contains("application"), "{message}");
    assert_eq!(validator.reports().clauses(), ["RGI-START-7"]);
}

/// An application that sends content without a `content-type`: a
/// `SHOULD` (RGI-HEAD-11), so a warning.
fn untyped() -> impl Application {
    rgi::from_fn(|_environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from_static(b"untyped"))
    })
}

#[test]
fn the_panic_policy_records_a_should_as_a_warning_without_panicking() {
    let validator = Validator::panicking(untyped());
    let mut wire = Recorder::new();
    let served = panic::catch_unwind(AssertUnwindSafe(|| {
        serve_sync(&validator, build(environ()), &mut wire)
    }))
    .expect("a SHOULD does not panic");
    assert!(served.outcome.is_complete());
    assert_eq!(wire.body(), b"untyped");
    let reports = validator.reports();
    assert_eq!(reports.clauses(), ["RGI-HEAD-11"]);
    let warnings = reports.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].is_warning());
    assert_eq!(warnings[0].level(), Some(Level::Should));
    assert!(reports.errors().is_empty());
}

#[test]
fn a_must_is_an_error_and_a_should_a_warning_in_one_request() {
    let reports = collect();
    let validator = Validator::new(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(ResponseHead::new(StatusCode::OK))?;
            let _ = start.start(ResponseHead::new(StatusCode::OK));
            Ok(Bytes::from_static(b"untyped"))
        }),
        reports.clone(),
    );
    let _ = serve_sync(&validator, build(environ()), &mut Recorder::new());
    let errors: Vec<_> = reports.errors().iter().map(Violation::clause).collect();
    let warnings: Vec<_> = reports.warnings().iter().map(Violation::clause).collect();
    // Ignoring the second start's error may be reported too (RGI-START-9).
    assert_eq!(errors.first(), Some(&"RGI-START-7"), "{errors:?}");
    assert_eq!(warnings, ["RGI-HEAD-11"]);
    assert_eq!(reports.errors()[0].level(), Some(Level::MustNot));
}

#[test]
fn the_collect_policy_records_without_panicking() {
    let reports = collect();
    let validator = Validator::new(starts_twice(), reports.clone());
    let _ = serve_sync(&validator, build(environ()), &mut Recorder::new());
    let all = reports.all();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].clause(), "RGI-START-7");
    assert_eq!(all[0].side(), Side::Application);
    assert!(all[0].value().contains("200"), "{}", all[0].value());
}

#[test]
fn the_log_policy_carries_on_and_still_records() {
    let reports = Reports::new(Policy::Log);
    let validator = Validator::new(starts_twice(), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let called = driver.call(&validator, build(environ()));
    assert!(called.is_err());
    assert_eq!(reports.clauses(), ["RGI-START-7"]);
}

#[test]
fn a_check_is_reported_once_per_request() {
    let violations = serve(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(rgi::from_iter(["no", "content", "type"]))
        }),
        build(environ()),
    );
    assert_eq!(violations.len(), 1, "{violations:?}");
}

#[test]
fn an_unwatched_body_error_is_not_blamed_on_the_server() {
    // An application failing mid-body: the server stops pulling and drops
    // the body, and the validator reports nothing.
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Steps(
            0,
            |pull, _start: &mut StartResponse<'_>| match pull {
                0 => Some(Ok(Bytes::from_static(b"half"))),
                _ => Some(Err("the disk failed".into())),
            },
        ))
    });
    let reports = collect();
    let validator = Validator::new(app, reports.clone());
    let _ = serve_sync(&validator, build(environ()), &mut Recorder::new());
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

#[test]
fn body_type_is_the_validators_own() {
    fn body_of<A: Application>(_: &A) -> &'static str {
        std::any::type_name::<A::Body>()
    }
    let validator = Validator::new(support_validate::sync_examples::fine(), collect());
    assert!(body_of(&validator).contains("ValidatedBody"));
}

#[test]
fn nested_validators_stay_silent_for_a_good_app_and_blame_only_once() {
    // Both clean around a well-behaved application ...
    let inner = collect();
    let app = Validator::new(support_validate::sync_examples::fine(), inner.clone());
    clean(app, build(environ()));
    assert!(inner.is_empty(), "{:?}", inner.all());
    // ... and the inner one's panic passes the outer one unjudged.
    let outer = Validator::panicking(Validator::panicking(starts_twice()));
    let mut driver = Driver::new(&Method::GET);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = driver.call(&outer, build(environ()));
    }));
    assert!(caught.is_err());
    assert_eq!(outer.get_ref().reports().clauses(), ["RGI-START-7"]);
    assert!(outer.reports().is_empty(), "{:?}", outer.reports().all());
}

#[test]
fn hints_pass_through_unchanged() {
    let hints = Hints::default()
        .with_input(InputUse::Whole)
        .with_may_block(false);
    let validator = Validator::new(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(StatusCode::NO_CONTENT)?;
            Ok(Empty)
        })
        .with_hints(hints),
        collect(),
    );
    assert_eq!(validator.hints(), hints);
    assert_eq!(validator.hints(), hints);
    assert!(validator.reports().is_empty());
}
