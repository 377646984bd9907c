//! The switch to synchronous processing: the middleware's interception
//! reaches the continuation's handle and the body it returns, and its
//! per-request state moves along (it is not `Clone`, so it cannot be
//! copied).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use rgi::{BoxError, Environ, ResponseHead, StartResponse};
use rgi_async::{AsyncBody, Step, SyncSwitch};
use rgi_conformance::client::TestRequest;
use rgi_middleware::{BodyAccess, Emit, Ending, Incoming, Middleware, Outcome};

use common::{Parts, assert_clean, text_head, with_trailers};

/// Bytes seen, and the thread each chunk was seen on: not `Clone`.
struct Seen {
    bytes: u64,
    threads: Vec<std::thread::ThreadId>,
}

type Log = Arc<Mutex<Vec<(Outcome, u64, usize)>>>;

struct Counted(Log);

impl Middleware for Counted {
    type State = Seen;

    fn on_request(&self, _request: &mut Incoming<'_>) -> Seen {
        Seen {
            bytes: 0,
            threads: Vec::new(),
        }
    }

    fn body_access(&self, _state: &Seen) -> BodyAccess {
        BodyAccess::Observe
    }

    fn on_head(&self, _state: &mut Seen, head: &mut ResponseHead) {
        head.headers_mut()
            .insert("x-counted", HeaderValue::from_static("yes"));
        head.headers_mut()
            .append("trailer", HeaderValue::from_static("x-bytes"));
    }

    fn on_chunk(&self, seen: &mut Seen, chunk: Bytes, out: &mut Emit<'_>) {
        seen.bytes += chunk.len() as u64;
        let thread = std::thread::current().id();
        if !seen.threads.contains(&thread) {
            seen.threads.push(thread);
        }
        out.push(chunk.to_ascii_uppercase());
    }

    fn on_trailers(&self, seen: &mut Seen, fields: &mut HeaderMap) {
        fields.insert("x-bytes", HeaderValue::from(seen.bytes));
    }

    fn on_drop(&self, seen: Seen, outcome: Outcome) {
        self.0
            .lock()
            .expect("not poisoned")
            .push((outcome, seen.bytes, seen.threads.len()));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HeadAt {
    /// Started in the first poll, before a chunk and the switch.
    Poll,
    /// Started by the continuation itself.
    Continuation,
    /// Started lazily by the synchronous body's first pull.
    SyncBody,
}

/// Yields `before ` (when the head is started in the poll), then
/// switches; the continuation's body yields `after switch`.
struct Switching {
    head_at: HeadAt,
    polls: u32,
}

impl AsyncBody for Switching {
    fn poll_step(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        self.polls += 1;
        let head_at = self.head_at;
        if head_at == HeadAt::Poll && self.polls == 1 {
            start.start(text_head(None))?;
            return Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"before ")))));
        }
        let switch = SyncSwitch::new(move |start| {
            let lazy = match head_at {
                HeadAt::Continuation => {
                    start.start(text_head(None))?;
                    None
                }
                HeadAt::SyncBody => Some(text_head(None)),
                HeadAt::Poll => None,
            };
            Ok(Parts::new(lazy, &["after ", "switch"]))
        });
        Poll::Ready(Some(Ok(Step::Switch(switch))))
    }
}

fn check(head_at: HeadAt) {
    let log = Log::default();
    let app =
        rgi_async::from_fn(move |_environ: Environ, _start| Ok(Switching { head_at, polls: 0 }));
    let (client, inner) = common::async_stack(Counted(log.clone()), app);
    let response = client
        .request(with_trailers(TestRequest::get("/")))
        .expect("well formed");
    assert_clean(&response, &inner);
    assert!(response.switched, "the continuation ran");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.header("x-counted"),
        Some("yes"),
        "the head passed on_head"
    );
    let expected = if head_at == HeadAt::Poll {
        "BEFORE AFTER SWITCH"
    } else {
        "AFTER SWITCH"
    };
    assert_eq!(
        response.text(),
        expected,
        "chunks on both sides of the switch transformed"
    );
    let length = expected.len() as u64;
    let trailers = response.trailers.clone().expect("trailers sent");
    assert_eq!(
        trailers.get("x-bytes").map(HeaderValue::as_bytes),
        Some(length.to_string().as_bytes()),
        "one count across the switch"
    );
    let log = log.lock().expect("not poisoned");
    assert_eq!(
        log.len(),
        1,
        "on_drop ran once, after the switch, not at it"
    );
    let (outcome, bytes, _threads) = log[0];
    assert_eq!(bytes, length);
    assert_eq!(outcome.body_bytes, length);
    assert_eq!(outcome.ending, Ending::Complete);
}

#[test]
fn state_moves_into_the_switch_with_the_head_started_in_a_poll() {
    check(HeadAt::Poll);
}

#[test]
fn interception_reaches_the_continuation_handle() {
    check(HeadAt::Continuation);
}

#[test]
fn interception_reaches_the_continuation_body() {
    check(HeadAt::SyncBody);
}

#[test]
fn state_crosses_threads_at_the_switch() {
    let log = Log::default();
    let app = rgi_async::from_fn(move |_environ: Environ, _start| {
        Ok(Switching {
            head_at: HeadAt::Poll,
            polls: 0,
        })
    });
    let (client, inner) = common::async_stack(Counted(log.clone()), app);
    let response = client.get("/").expect("well formed");
    assert_clean(&response, &inner);
    let (_, _, threads) = log.lock().expect("not poisoned")[0];
    // The chunk before the switch is seen on the client's loop thread,
    // those after on a worker: the same state served both.
    assert_eq!(threads, 2);
}

#[test]
fn a_failing_continuation_is_passed_on_and_logged_once() {
    let log = Log::default();
    let app = rgi_async::from_fn(|_environ: Environ, _start| Ok(FailingSwitch));
    let (client, inner) = common::async_stack(Counted(log.clone()), app);
    let client = client.with_diagnosis(false);
    let response = client.get("/").expect("well formed");
    assert_clean(&response, &inner);
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    let log = log.lock().expect("not poisoned");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].0.ending, Ending::Failed);
}

struct FailingSwitch;

impl AsyncBody for FailingSwitch {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(
            |_start| -> Result<rgi::Empty, BoxError> { Err("the continuation failed".into()) },
        )))))
    }
}
