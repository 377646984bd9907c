//! Client body errors: the typed `InputError`s a server's source reports for
//! a malformed, oversized or stalled body, the status each maps to, their
//! stickiness in `Input`, and `client_body_error` finding them in whatever
//! an application propagated (RGI-INPUT-17..19, RGI-FAIL-10).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::error::Error;
use std::io::{self, ErrorKind, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use rgi::{
    Application, AsyncSource, BoxError, Environ, Input, InputError, ResponseState,
    client_body_error,
};
use support::Recorder;

fn malformed() -> InputError {
    InputError::MalformedBody {
        reason: "chunk size line \"zz\" is not hexadecimal".into(),
    }
}

fn over_limit() -> InputError {
    InputError::BodyLimitExceeded { limit: 1024 }
}

fn stalled() -> InputError {
    InputError::BodyTimedOut {
        timeout: Duration::from_secs(30),
    }
}

#[test]
fn each_client_error_maps_to_its_status_and_io_kind() {
    let cases = [
        (malformed(), StatusCode::BAD_REQUEST, ErrorKind::InvalidData),
        (
            over_limit(),
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidData,
        ),
        (stalled(), StatusCode::REQUEST_TIMEOUT, ErrorKind::TimedOut),
        (
            InputError::Truncated {
                declared: 10,
                received: 3,
            },
            StatusCode::BAD_REQUEST,
            ErrorKind::UnexpectedEof,
        ),
        (
            InputError::TooLarge { limit: 4 },
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidData,
        ),
    ];
    for (error, status, kind) in cases {
        assert_eq!(error.status(), Some(status), "{error}");
        let message = error.to_string();
        let io = io::Error::from(error);
        assert_eq!(io.kind(), kind, "{message}");
        assert_eq!(InputError::from_io(&io).unwrap().status(), Some(status));
        assert_eq!(InputError::from(io).to_string(), message);
    }
    for not_the_clients in [
        InputError::ResponseFinished,
        InputError::WouldBlockThread,
        InputError::Io(io::Error::other("reset")),
    ] {
        assert_eq!(not_the_clients.status(), None, "{not_the_clients}");
    }
    assert!(malformed().to_string().contains("\"zz\""));
    assert!(over_limit().to_string().contains("1024"));
    assert!(stalled().to_string().contains("30s"));
}

/// A blocking source that delivers some bytes, then fails with a client
/// error, and counts how often it is asked.
struct FailingAfter {
    data: &'static [u8],
    error: fn() -> InputError,
    reads: Arc<AtomicUsize>,
}

impl Read for FailingAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.data.is_empty() {
            return Err((self.error)().into());
        }
        let count = buf.len().min(self.data.len());
        buf[..count].copy_from_slice(&self.data[..count]);
        self.data = &self.data[count..];
        Ok(count)
    }
}

#[test]
fn a_client_error_from_the_source_is_sticky_and_the_source_is_not_asked_again() {
    for error in [malformed, over_limit, stalled] {
        let reads = Arc::new(AtomicUsize::new(0));
        let source = FailingAfter {
            data: b"abc",
            error,
            reads: Arc::clone(&reads),
        };
        let mut input = Input::new(source, None);
        let mut body = Vec::new();
        let first = input.read_to_end(&mut body).unwrap_err();
        assert_eq!(body, b"abc");
        let asked = reads.load(Ordering::SeqCst);
        for _ in 0..3 {
            let again = input.read(&mut [0; 8]).unwrap_err();
            assert_eq!(again.kind(), first.kind());
            assert_eq!(
                InputError::from_io(&again).map(ToString::to_string),
                InputError::from_io(&first).map(ToString::to_string)
            );
        }
        assert_eq!(reads.load(Ordering::SeqCst), asked, "asked again");
        assert!(!input.is_finished());
        // read_to_bytes hands the typed error back unwrapped.
        assert_eq!(
            input.read_to_bytes(1 << 20).unwrap_err().status(),
            error().status()
        );
    }
}

/// An asynchronous source that fails with a client error at once.
struct FailingNow(Arc<AtomicUsize>);

impl AsyncSource for FailingNow {
    fn poll_chunk(self: Pin<&mut Self>, _: &mut Context<'_>, _: usize) -> Poll<io::Result<Bytes>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Err(over_limit().into()))
    }
}

#[test]
fn both_faces_of_an_asynchronous_input_report_the_sticky_client_error() {
    let polls = Arc::new(AtomicUsize::new(0));
    let mut input = Input::from_async(FailingNow(Arc::clone(&polls)), None);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..2 {
        let Poll::Ready(Err(error)) = input.poll_chunk(&mut cx, 16) else {
            panic!("expected the client error");
        };
        assert!(matches!(
            InputError::from_io(&error),
            Some(InputError::BodyLimitExceeded { limit: 1024 })
        ));
    }
    let error = input.read(&mut [0; 4]).unwrap_err();
    assert!(matches!(
        InputError::from_io(&error),
        Some(InputError::BodyLimitExceeded { limit: 1024 })
    ));
    assert_eq!(polls.load(Ordering::SeqCst), 1);
}

#[derive(Debug, thiserror::Error)]
#[error("could not store the upload")]
struct Wrapped(#[source] Box<dyn Error + Send + Sync>);

#[derive(Debug)]
/// An error whose source chain never ends.
struct SelfSourced;

impl std::fmt::Display for SelfSourced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("self-sourced")
    }
}

impl Error for SelfSourced {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self)
    }
}

#[test]
fn client_body_error_finds_the_error_however_the_application_wrapped_it() {
    let status = |error: &BoxError| client_body_error(&**error).and_then(InputError::status);

    // Directly, as `?` on `read_to_bytes` gives it.
    let direct: BoxError = Box::new(stalled());
    assert_eq!(status(&direct), Some(StatusCode::REQUEST_TIMEOUT));
    // Inside an io::Error, as `?` on `Read::read` gives it.
    let in_io: BoxError = Box::new(io::Error::from(malformed()));
    assert_eq!(status(&in_io), Some(StatusCode::BAD_REQUEST));
    // Inside an application error whose source is that io::Error, nested
    // twice, and behind an `InputError::Io` that carries another one.
    let nested: BoxError = Box::new(Wrapped(Box::new(Wrapped(Box::new(io::Error::from(
        over_limit(),
    ))))));
    assert_eq!(status(&nested), Some(StatusCode::PAYLOAD_TOO_LARGE));
    let behind_io: BoxError = Box::new(Wrapped(Box::new(InputError::Io(io::Error::other(
        Wrapped(Box::new(io::Error::from(stalled()))),
    )))));
    assert_eq!(status(&behind_io), Some(StatusCode::REQUEST_TIMEOUT));

    // Not the client's fault: no status, so the server answers 500.
    for unrelated in [
        BoxError::from("database down"),
        Box::new(io::Error::other("disk full")),
        Box::new(InputError::ResponseFinished),
        Box::new(Wrapped(Box::new(io::Error::from(ErrorKind::TimedOut)))),
    ] {
        assert_eq!(status(&unrelated), None, "{unrelated}");
    }
    // A chain that loops ends the search instead of hanging.
    let looping: BoxError = Box::new(SelfSourced);
    assert_eq!(status(&looping), None);
}

/// RGI-FAIL-10 end to end: an application that propagates the client's
/// fault with `?` before starting gets the status the error says, which a
/// server finds with `client_body_error`.
#[test]
fn an_application_that_propagates_a_client_error_is_answered_with_its_status() {
    let app = rgi::from_fn(|mut environ: Environ, start| {
        let upload = environ.input_mut().read_to_bytes(1 << 20)?;
        start.start(StatusCode::OK)?;
        Ok(upload)
    });
    for (error, status) in [
        (malformed as fn() -> InputError, StatusCode::BAD_REQUEST),
        (over_limit, StatusCode::PAYLOAD_TOO_LARGE),
        (stalled, StatusCode::REQUEST_TIMEOUT),
    ] {
        let source = FailingAfter {
            data: b"partial",
            error,
            reads: Arc::new(AtomicUsize::new(0)),
        };
        let environ = Environ::builder()
            .method(Method::POST)
            .input(Input::new(source, None))
            .build()
            .unwrap();
        let (mut state, mut wire) = (ResponseState::new(environ.method()), Recorder::default());
        let failure = app
            .call(environ, &mut state.start_response(&mut wire))
            .map(drop)
            .unwrap_err();
        let answer = client_body_error(&*failure)
            .and_then(InputError::status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer, status);
        assert!(!state.is_head_sent());
        state
            .start_response(&mut wire)
            .replace(answer, failure)
            .unwrap();
        state.finish(&mut wire).unwrap();
        assert_eq!(wire.heads()[0].status(), status);
    }
}
