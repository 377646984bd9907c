//! How `on_drop` learns the response's ending when the server, not the
//! body, decides it: a server stops pulling once the declared length went
//! out, and pulls nothing for HEAD, 204 and 304 (`RGI-BODY-15`,
//! `RGI-BODY-16`); those responses are complete. Driven here as a server
//! does, with a `ResponseState` and the kit's recorder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use rgi::{Application, Body, Environ, ResponseHead, ResponseState};
use rgi_conformance::rt::Recorder;
use rgi_middleware::{Ending, Incoming, Middleware, Outcome};

type Log = Arc<Mutex<Vec<Outcome>>>;

/// Records each response's outcome.
struct Record(Log);

impl Middleware for Record {
    type State = ();

    fn on_request(&self, _request: &mut Incoming<'_>) {}

    fn on_drop(&self, (): (), outcome: Outcome) {
        self.0.lock().unwrap().push(outcome);
    }
}

/// `hello` in two chunks, with its length, or a 204.
fn app() -> impl Application {
    rgi::from_fn(|environ: Environ, start| {
        let status = if environ.path_info() == "/empty" {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::OK
        };
        let mut head = ResponseHead::new(status);
        if status == StatusCode::OK {
            head = head
                .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain"))
                .with_header(CONTENT_LENGTH, HeaderValue::from_static("5"));
        }
        start.start(head)?;
        Ok(rgi::from_iter(if status == StatusCode::OK {
            vec!["hel", "lo"]
        } else {
            vec![]
        }))
    })
}

/// Serves one request as a server does, pulling at most `pulls` chunks
/// and never past what the state wants; the outcome `on_drop` got.
fn serve(method: &Method, path: &str, pulls: usize) -> Outcome {
    let log = Log::default();
    let wrapped = Record(Arc::clone(&log)).wrap(app());
    let environ = Environ::builder()
        .method(method.clone())
        .uri(path.parse::<http::Uri>().unwrap())
        .header(http::header::HOST, HeaderValue::from_static("example.org"))
        .build()
        .unwrap();
    let mut state = ResponseState::new(method);
    let mut sink = Recorder::new();
    let mut body = wrapped
        .call(environ, &mut state.start_response(&mut sink))
        .unwrap();
    for _ in 0..pulls {
        if !state.wants_body() {
            break;
        }
        match body.next_chunk(&mut state.start_response(&mut sink)) {
            Some(Ok(chunk)) => state.send_chunk(&mut sink, chunk).unwrap(),
            Some(Err(error)) => panic!("{error}"),
            None => break,
        }
    }
    // A response cut short cannot finish: the server aborts it (its
    // connection closes), and only the head went out.
    if state.finish(&mut sink).is_err() {
        assert!(state.is_head_sent());
    }
    drop(body);
    let outcomes = log.lock().unwrap();
    assert_eq!(outcomes.len(), 1);
    outcomes[0]
}

#[test]
fn a_sized_response_whose_length_went_out_is_complete() {
    // The state stops wanting the body after 5 bytes: the body's own end
    // is never pulled.
    let outcome = serve(&Method::GET, "/", 2);
    assert_eq!(outcome.body_bytes, 5);
    assert_eq!(outcome.ending, Ending::Complete);
}

#[test]
fn a_sized_response_cut_short_is_aborted() {
    let outcome = serve(&Method::GET, "/", 1);
    assert_eq!(outcome.body_bytes, 3);
    assert_eq!(outcome.ending, Ending::Aborted);
}

#[test]
fn head_and_204_are_complete_without_a_pull() {
    let head = serve(&Method::HEAD, "/", 0);
    assert_eq!(head.status, Some(StatusCode::OK));
    assert_eq!(head.ending, Ending::Complete);
    let empty = serve(&Method::GET, "/empty", 0);
    assert_eq!(empty.status, Some(StatusCode::NO_CONTENT));
    assert_eq!(empty.ending, Ending::Complete);
}

#[test]
fn a_response_dropped_before_its_head_is_aborted() {
    let log = Log::default();
    let wrapped = Record(Arc::clone(&log)).wrap(rgi::from_fn(|_environ: Environ, _start| {
        Ok(Bytes::from_static(b"lazy"))
    }));
    let environ = Environ::builder()
        .header(http::header::HOST, HeaderValue::from_static("example.org"))
        .build()
        .unwrap();
    let mut state = ResponseState::new(&Method::GET);
    let mut sink = Recorder::new();
    let body = wrapped
        .call(environ, &mut state.start_response(&mut sink))
        .unwrap();
    drop(body);
    assert_eq!(log.lock().unwrap()[0].ending, Ending::Aborted);
}
