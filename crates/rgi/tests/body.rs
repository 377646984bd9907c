//! Bodies: the provided implementations, the file body, lazy start, and a
//! whole request cycle in which the body is dropped exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Method, StatusCode};
use rgi::{
    Application, Body, BoxError, Empty, Environ, FileBody, ResponseHead, ResponseState, SendError,
    StartResponse,
};
use support::{Recorder, Sent};

/// Runs `app` the way a server does and returns what reached the wire and
/// the server-side outcome of the last step.
fn serve<A: Application>(app: &A, environ: Environ) -> (Recorder, Result<u64, String>) {
    let mut wire = Recorder::default();
    let mut state = ResponseState::new(environ.method());
    let mut body = match app.call(environ, &mut state.start_response(&mut wire)) {
        Ok(body) => body,
        Err(err) => return (wire, Err(err.to_string())),
    };
    let outcome = loop {
        match body.next_chunk(&mut state.start_response(&mut wire)) {
            Some(Ok(chunk)) => {
                if let Err(err) = state.send_chunk(&mut wire, chunk) {
                    break Err(err.to_string());
                }
            }
            Some(Err(err)) => break Err(err.to_string()),
            None => break Ok(()),
        }
    };
    drop(body);
    let outcome = outcome.and_then(|()| state.finish(&mut wire).map_err(|err| err.to_string()));
    (wire, outcome)
}

fn drain(body: &mut dyn Body) -> Result<Vec<u8>, BoxError> {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(ResponseHead::new(StatusCode::OK))?;
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut wire)) {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[test]
fn single_chunk_bodies_yield_once_and_report_their_length() {
    let mut bodies: Vec<Box<dyn Body>> = vec![
        Box::new(Bytes::from_static(b"bytes")),
        Box::new(b"vec".to_vec()),
        Box::new(String::from("string")),
    ];
    for (body, expected) in bodies.iter_mut().zip(["bytes", "vec", "string"]) {
        assert_eq!(body.size_hint(), Some(expected.len() as u64));
        assert_eq!(drain(body.as_mut()).unwrap(), expected.as_bytes());
        assert_eq!(body.size_hint(), Some(0));
        assert!(drain(body.as_mut()).unwrap().is_empty());
    }
    assert!(drain(&mut Empty).unwrap().is_empty());
    assert!(drain(&mut Bytes::new()).unwrap().is_empty());
}

#[test]
fn iterator_bodies_yield_each_item_as_a_chunk() {
    let mut body = rgi::from_iter(vec!["a", "", "bc"]);
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut chunks = Vec::new();
    while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut wire)) {
        chunks.push(chunk.unwrap());
    }
    assert_eq!(chunks, ["a", "", "bc"]);
}

fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("rgi-test-{}-{name}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(contents)
        .unwrap();
    path
}

#[test]
fn file_body_reads_from_the_current_position_in_chunks() {
    use std::io::{Seek, SeekFrom};
    let path = temp_file("position", b"0123456789");
    let mut file = std::fs::File::open(&path).unwrap();
    file.seek(SeekFrom::Start(3)).unwrap();
    let mut body = FileBody::new(file).unwrap().with_chunk_size(3);
    assert_eq!((body.offset(), body.remaining()), (3, Some(7)));
    assert!(
        rgi::Body::file(&mut body).is_some(),
        "a server can find the file for sendfile"
    );
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut chunks = Vec::new();
    while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut wire)) {
        chunks.push(chunk.unwrap());
    }
    assert_eq!(chunks, ["345", "678", "9"]);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn file_body_range_stops_at_its_length_and_resumes_after_sendfile_progress() {
    let path = temp_file("range", b"abcdefghij");
    let mut body = FileBody::range(std::fs::File::open(&path).unwrap(), 2, 6).unwrap();
    body.advance(2); // a server sent "cd" with sendfile
    assert_eq!(
        (body.offset(), body.remaining(), body.size_hint()),
        (4, Some(4), Some(4))
    );
    assert_eq!(drain(&mut body).unwrap(), b"efgh");
    body.advance(100); // progress past the end is clamped
    assert_eq!(body.remaining(), Some(0));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn file_body_that_ends_early_is_an_error_not_a_short_response() {
    let path = temp_file("short", b"abc");
    let mut body = FileBody::range(std::fs::File::open(&path).unwrap(), 0, 10).unwrap();
    let err = drain(&mut body).unwrap_err();
    assert!(err.to_string().contains("7 bytes before"), "{err}");
    std::fs::remove_file(path).unwrap();
}

/// A body that counts its drops and can fail or start lazily.
struct Probe {
    drops: Arc<AtomicUsize>,
    chunks: Vec<&'static str>,
    fail_at: Option<usize>,
    lazy_start: bool,
}

impl Body for Probe {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if self.lazy_start && !start.is_started() {
            if let Err(err) = start.start(ResponseHead::new(StatusCode::ACCEPTED)) {
                return Some(Err(err.into()));
            }
        }
        if self.fail_at == Some(self.chunks.len()) {
            return Some(Err("body failed".into()));
        }
        self.chunks
            .pop()
            .map(|chunk| Ok(Bytes::from_static(chunk.as_bytes())))
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn probe_app(
    drops: &Arc<AtomicUsize>,
    fail_at: Option<usize>,
    lazy_start: bool,
) -> impl Application<Body = Probe> {
    let drops = Arc::clone(drops);
    rgi::from_fn(move |_environ, start| {
        if !lazy_start {
            start.start(ResponseHead::new(StatusCode::OK))?;
        }
        Ok(Probe {
            drops: Arc::clone(&drops),
            chunks: vec!["c", "b", "a"],
            fail_at,
            lazy_start,
        })
    })
}

#[test]
fn the_body_is_dropped_exactly_once_on_success_and_on_failure() {
    for fail_at in [None, Some(3), Some(1)] {
        let drops = Arc::new(AtomicUsize::new(0));
        let (wire, outcome) = serve(
            &probe_app(&drops, fail_at, false),
            Environ::builder().build().unwrap(),
        );
        assert_eq!(drops.load(Ordering::SeqCst), 1, "fail_at {fail_at:?}");
        match fail_at {
            None => assert_eq!((outcome, wire.body()), (Ok(3), b"abc".to_vec())),
            Some(_) => assert_eq!(outcome, Err("body failed".to_owned())),
        }
    }
}

#[test]
fn a_body_can_start_the_response_lazily() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (wire, outcome) = serve(
        &probe_app(&drops, None, true),
        Environ::builder().build().unwrap(),
    );
    assert_eq!(outcome, Ok(3));
    assert!(matches!(&wire.sent[0], Sent::Head(head) if head.status() == StatusCode::ACCEPTED));
}

#[test]
fn applications_behind_arc_and_box_behave_the_same() {
    let drops = Arc::new(AtomicUsize::new(0));
    let app = Arc::new(probe_app(&drops, None, false));
    let (wire, _) = serve(&app, Environ::builder().build().unwrap());
    assert_eq!(wire.body(), b"abc");
    let boxed = Box::new(probe_app(&drops, None, false));
    let (wire, _) = serve(&boxed, Environ::builder().build().unwrap());
    assert_eq!(wire.body(), b"abc");
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn a_head_request_sends_no_body_but_still_drops_it_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let environ = Environ::builder().method(Method::HEAD).build().unwrap();
    let (wire, outcome) = serve(&probe_app(&drops, None, false), environ);
    assert_eq!(outcome, Ok(3));
    assert_eq!(
        wire.sent,
        vec![Sent::Head(ResponseHead::new(StatusCode::OK))]
    );
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn an_application_error_before_any_head_leaves_nothing_sent() {
    let app =
        rgi::from_fn(|_environ, _start| -> Result<Empty, BoxError> { Err("no database".into()) });
    let (wire, outcome) = serve(&app, Environ::builder().build().unwrap());
    assert_eq!(outcome, Err("no database".to_owned()));
    assert!(
        wire.sent.is_empty(),
        "the server is still free to answer 500"
    );
}

#[test]
fn a_body_that_never_starts_the_response_is_reported_at_finish() {
    let app = rgi::from_fn(|_environ, _start| Ok(Empty));
    let (_, outcome) = serve(&app, Environ::builder().build().unwrap());
    assert_eq!(outcome, Err(rgi::FinishError::NotStarted.to_string()));
}

#[test]
fn body_data_past_content_length_stops_the_response() {
    let app = rgi::from_fn(|_environ, start| {
        start.start(rgi::ResponseHead::from_raw(200, [("content-length", "2")])?)?;
        Ok(rgi::from_iter(["ab", "cd"]))
    });
    let (wire, outcome) = serve(&app, Environ::builder().build().unwrap());
    assert_eq!(
        outcome,
        Err(SendError::ContentLengthExceeded {
            declared: 2,
            attempted: 4
        }
        .to_string())
    );
    assert_eq!(wire.body(), b"ab");
}
