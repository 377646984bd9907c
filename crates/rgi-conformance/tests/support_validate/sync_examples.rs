//! One deliberately broken server or synchronous application per check of
//! the synchronous side.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, Uri, header};
use rgi::{
    Application, Body, BoxError, Concurrency, Empty, Environ, Hints, Input, InputUse, ResponseHead,
    StartResponse,
};
use rgi_conformance::Violation;
use rgi_conformance::validate::Validator;

use super::common::{Driver, Steps, build, collect, environ, serve, text, text_with_length};

/// A well-behaved application: 200, `text/plain`, "ok".
pub(crate) fn fine() -> impl Application {
    rgi::from_fn(|_environ: Environ, start| {
        start.start(text_with_length(StatusCode::OK, 2))?;
        Ok(Bytes::from_static(b"ok"))
    })
}

/// Serves [`fine`] with `environ`.
fn fine_with(environ: Environ) -> Vec<Violation> {
    serve(fine(), environ)
}

// ---- the environ ----

pub(crate) fn host_missing() -> Vec<Violation> {
    fine_with(build(Environ::builder()))
}

pub(crate) fn host_repeated() -> Vec<Violation> {
    fine_with(build(
        environ().header(header::HOST, HeaderValue::from_static("example.net")),
    ))
}

pub(crate) fn host_invalid() -> Vec<Violation> {
    fine_with(build(
        Environ::builder().header(header::HOST, HeaderValue::from_static("exa mple.org")),
    ))
}

pub(crate) fn absolute_form_host() -> Vec<Violation> {
    fine_with(build(
        Environ::builder()
            .uri(Uri::from_static("http://example.org/x"))
            .header(header::HOST, HeaderValue::from_static("elsewhere.org")),
    ))
}

pub(crate) fn transfer_encoding_left() -> Vec<Violation> {
    let mut environ = build(environ());
    environ.headers_mut().insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    fine_with(environ)
}

pub(crate) fn content_length_field_invalid() -> Vec<Violation> {
    let mut environ = build(environ());
    environ
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("12abc"));
    fine_with(environ)
}

pub(crate) fn content_length_disagrees() -> Vec<Violation> {
    let mut environ = build(environ().input(Input::from_bytes("hello")));
    environ
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
    fine_with(environ)
}

pub(crate) fn server_name_invalid() -> Vec<Violation> {
    fine_with(build(environ().server("example.org:8080", 8080)))
}

pub(crate) fn server_port_zero() -> Vec<Violation> {
    fine_with(build(environ().server("example.org", 0)))
}

pub(crate) fn http_scheme_on_tls_port() -> Vec<Violation> {
    fine_with(build(environ().server("example.org", 443)))
}

pub(crate) fn remote_addr_unspecified() -> Vec<Violation> {
    fine_with(build(
        environ().remote_addr("0.0.0.0:0".parse().expect("an address")),
    ))
}

pub(crate) fn concurrency_contradictory() -> Vec<Violation> {
    fine_with(build(
        environ().concurrency(Concurrency::MULTITHREADED.with_run_once(true)),
    ))
}

pub(crate) fn input_already_read() -> Vec<Violation> {
    let mut environ = build(
        environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("5"))
            .input(Input::from_bytes("hello")),
    );
    // A middleware above the validator ate the start of the body.
    environ
        .input_mut()
        .read_exact(&mut [0; 2])
        .expect("two bytes");
    fine_with(environ)
}

/// A connection that fails with `UnexpectedEof` once, then says EOF.
struct EofOnce(bool);

impl Read for EofOnce {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::replace(&mut self.0, true) {
            Ok(0)
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer went away",
            ))
        }
    }
}

/// Reads the body, then fails because it is incomplete.
fn reads_then_fails() -> impl Application {
    rgi::from_fn(|mut environ: Environ, _start| {
        let mut body = Vec::new();
        let first = environ.input_mut().read_to_end(&mut body);
        let second = environ.input_mut().read_to_end(&mut body);
        Err::<Empty, BoxError>(format!("incomplete upload: {first:?}, then {second:?}").into())
    })
}

pub(crate) fn input_truncation_untyped() -> Vec<Violation> {
    let environ = build(
        environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("10"))
            .input(Input::new(EofOnce(false), Some(10))),
    );
    serve(reads_then_fails(), environ)
}

pub(crate) fn input_error_not_sticky() -> Vec<Violation> {
    // A chunked upload whose source reports the early end once, then EOF.
    let environ = build(environ().input(Input::new(EofOnce(false), None)));
    serve(reads_then_fails(), environ)
}

// ---- how the server drives the body ----

pub(crate) fn pull_after_end() -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(fine(), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver.call(&validator, build(environ())).expect("a body");
    while driver.pull(&mut body).is_some() {}
    let _ = driver.pull(&mut body);
    drop(body);
    reports.all()
}

pub(crate) fn chunk_not_sent() -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(text(StatusCode::OK))?;
            Ok(rgi::from_iter(["one", "two"]))
        }),
        reports.clone(),
    );
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver.call(&validator, build(environ())).expect("a body");
    let _ = driver.pull_unsent(&mut body);
    let _ = driver.pull(&mut body);
    drop(body);
    reports.all()
}

pub(crate) fn handle_state_lost() -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(fine(), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver.call(&validator, build(environ())).expect("a body");
    // The pull gets a handle over a state of its own.
    let mut other = Driver::new(&Method::GET);
    let _ = other.pull(&mut body);
    drop(body);
    reports.all()
}

pub(crate) fn body_kept() -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(fine(), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver.call(&validator, build(environ())).expect("a body");
    while driver.pull(&mut body).is_some() {}
    // The server stops (drops its application) but keeps the body.
    drop(validator);
    let violations = reports.all();
    drop(body);
    violations
}

// ---- the head ----

fn starts_with(head: ResponseHead) -> Vec<Violation> {
    serve(
        rgi::from_fn(move |_environ: Environ, start| {
            start.start(head.clone())?;
            Ok(Bytes::from_static(b"ok"))
        }),
        build(environ()),
    )
}

pub(crate) fn head_informational_status() -> Vec<Violation> {
    starts_with(text(StatusCode::CONTINUE))
}

pub(crate) fn head_hop_by_hop() -> Vec<Violation> {
    starts_with(
        text(StatusCode::OK).with_header(header::CONNECTION, HeaderValue::from_static("close")),
    )
}

pub(crate) fn head_content_length_invalid() -> Vec<Violation> {
    starts_with(
        text(StatusCode::OK).with_header(header::CONTENT_LENGTH, HeaderValue::from_static("+2")),
    )
}

pub(crate) fn head_content_length_on_204() -> Vec<Violation> {
    starts_with(
        ResponseHead::new(StatusCode::NO_CONTENT)
            .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("0")),
    )
}

// ---- starting ----

pub(crate) fn start_twice() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(text(StatusCode::OK))?;
            start.start(text(StatusCode::CREATED))?;
            Ok(Bytes::from_static(b"ok"))
        }),
        build(environ()),
    )
}

pub(crate) fn start_error_ignored() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, start| {
            // The head is refused (1xx), the error dropped, the body sent.
            let _ = start.start(text(StatusCode::PROCESSING));
            Ok(Bytes::from_static(b"ok"))
        }),
        build(environ()),
    )
}

pub(crate) fn head_already_sent_swallowed() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(text(StatusCode::OK))?;
            Ok(Steps(0, |pull, start: &mut StartResponse<'_>| match pull {
                0 => Some(Ok(Bytes::from_static(b"first"))),
                1 => {
                    // Too late to replace: the head went out with "first".
                    let _ = start.replace(
                        text(StatusCode::INTERNAL_SERVER_ERROR),
                        "the database went away",
                    );
                    Some(Ok(Bytes::from_static(b" and more")))
                }
                _ => None,
            }))
        }),
        build(environ()),
    )
}

pub(crate) fn output_before_start() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, _start| Ok(Bytes::from_static(b"unstarted"))),
        build(environ()),
    )
}

pub(crate) fn ended_without_start() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, _start| Ok(Empty)),
        build(environ()),
    )
}

// ---- output ----

fn yields(head: ResponseHead, chunks: &'static [&'static str]) -> Vec<Violation> {
    serve(
        rgi::from_fn(move |_environ: Environ, start| {
            start.start(head.clone())?;
            Ok(rgi::from_iter(chunks.iter().copied()))
        }),
        build(environ()),
    )
}

pub(crate) fn content_type_missing() -> Vec<Violation> {
    yields(ResponseHead::new(StatusCode::OK), &["untyped"])
}

pub(crate) fn content_length_exceeded() -> Vec<Violation> {
    yields(text_with_length(StatusCode::OK, 2), &["hello"])
}

pub(crate) fn content_length_short() -> Vec<Violation> {
    yields(text_with_length(StatusCode::OK, 10), &["hello"])
}

pub(crate) fn content_in_bodiless_status() -> Vec<Violation> {
    yields(ResponseHead::new(StatusCode::NO_CONTENT), &["surprise"])
}

pub(crate) fn write_after_write_error() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(text_with_length(StatusCode::OK, 2))?;
            let _ = start.write("hello"); // past the length: fails
            let _ = start.write("again"); // and carries on regardless
            Ok(Empty)
        }),
        build(environ()),
    )
}

/// A body whose `size_hint` is `hint` whatever it yields.
struct Hinted {
    hint: u64,
    chunk: Option<Bytes>,
}

impl Body for Hinted {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.chunk.take().map(Ok)
    }

    fn size_hint(&self) -> Option<u64> {
        Some(self.hint)
    }
}

fn hinted(hint: u64) -> Vec<Violation> {
    serve(
        rgi::from_fn(move |_environ: Environ, start| {
            start.start(text(StatusCode::OK))?;
            Ok(Hinted {
                hint,
                chunk: Some(Bytes::from_static(b"hello")),
            })
        }),
        build(environ()),
    )
}

pub(crate) fn size_hint_overrun() -> Vec<Violation> {
    hinted(2)
}

pub(crate) fn size_hint_shortfall() -> Vec<Violation> {
    hinted(10)
}

/// An application whose hints change between calls.
struct Fickle(AtomicBool);

impl Application for Fickle {
    type Body = Empty;

    fn call(&self, _environ: Environ, start: &mut StartResponse<'_>) -> Result<Empty, BoxError> {
        start.start(StatusCode::NO_CONTENT)?;
        Ok(Empty)
    }

    fn hints(&self) -> Hints {
        let flipped = self.0.fetch_xor(true, Ordering::SeqCst);
        Hints::default().with_may_block(!flipped)
    }
}

pub(crate) fn hints_unstable() -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(Fickle(AtomicBool::new(false)), reports.clone());
    let _ = validator.hints();
    let _ = validator.hints();
    drop(validator);
    reports.all()
}

pub(crate) fn hints_input_none_but_read() -> Vec<Violation> {
    let app = rgi::from_fn(|mut environ: Environ, start| {
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        start.start(text(StatusCode::OK))?;
        Ok(body)
    })
    .with_hints(Hints::default().with_input(InputUse::None));
    serve(
        app,
        build(
            environ()
                .header(header::CONTENT_LENGTH, HeaderValue::from_static("5"))
                .input(Input::from_bytes("hello")),
        ),
    )
}

pub(crate) fn truncated_body_accepted() -> Vec<Violation> {
    let app = rgi::from_fn(|mut environ: Environ, start| {
        let mut body = Vec::new();
        // The error is dropped and the partial upload stored as if whole.
        let _ = environ.input_mut().read_to_end(&mut body);
        start.start(text(StatusCode::CREATED))?;
        Ok(format!("stored {} bytes", body.len()))
    });
    serve(
        app,
        build(
            environ()
                .header(header::CONTENT_LENGTH, HeaderValue::from_static("10"))
                .input(Input::new(&b"hello"[..], Some(10))),
        ),
    )
}

/// A body whose `Drop` panics.
struct PanicsOnDrop;

impl Body for PanicsOnDrop {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        None
    }
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        #[allow(clippy::panic, reason = "the broken application under test")]
        {
            panic!("the body's cleanup failed");
        }
    }
}

pub(crate) fn body_drop_panicked() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(StatusCode::NO_CONTENT)?;
            Ok(PanicsOnDrop)
        }),
        build(environ()),
    )
}

pub(crate) fn application_panicked() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, _start| -> Result<Empty, BoxError> {
            #[allow(clippy::panic, reason = "the broken application under test")]
            {
                panic!("unexpected request")
            }
        }),
        build(environ()),
    )
}

pub(crate) fn state_reused() -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(fine(), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver.call(&validator, build(environ())).expect("a body");
    while driver.pull(&mut body).is_some() {}
    drop(body);
    // The next request gets a handle over the finished response's state.
    let _ = driver.call(&validator, build(environ()));
    drop(validator);
    reports.all()
}
