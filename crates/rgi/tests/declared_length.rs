//! D1 (response splitting): a server's Content-Length declaration joins the
//! head `ResponseState` sends, the application's own length wins, and the
//! length the head carries is the only one enforced and reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderValue};
use http::{Method, StatusCode};
use rgi::{
    Application, Body, BoxError, DeclareError, Environ, FinishError, ResponseHead, ResponseState,
    SendError, StartResponse,
};
use support::Recorder;

/// A body that promises an exact size, may start or replace the head in its
/// first pull, and then yields its chunks.
struct Scripted {
    hint: Option<u64>,
    first_pull: FirstPull,
    chunks: VecDeque<&'static str>,
}

enum FirstPull {
    Nothing,
    Start(ResponseHead),
    Replace(ResponseHead),
}

impl Body for Scripted {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match std::mem::replace(&mut self.first_pull, FirstPull::Nothing) {
            FirstPull::Nothing => {}
            FirstPull::Start(head) => {
                if let Err(err) = start.start(head) {
                    return Some(Err(err.into()));
                }
            }
            FirstPull::Replace(head) => {
                if let Err(err) = start.replace(head, "changed its mind") {
                    return Some(Err(err.into_cause()));
                }
            }
        }
        let chunk = self.chunks.pop_front()?;
        self.hint = self
            .hint
            .map(|hint| hint.saturating_sub(chunk.len() as u64));
        Some(Ok(Bytes::from_static(chunk.as_bytes())))
    }

    fn size_hint(&self) -> Option<u64> {
        self.hint
    }
}

fn content_length(head: &ResponseHead) -> Vec<&HeaderValue> {
    head.headers().get_all(CONTENT_LENGTH).iter().collect()
}

fn with_length(status: StatusCode, length: u64) -> ResponseHead {
    ResponseHead::new(status).with_header(CONTENT_LENGTH, HeaderValue::from(length))
}

/// What a server that computes Content-Length does: declare the exact hint
/// after `call` and before the first pull, then pull to the end and report
/// every send error.
struct Served {
    wire: Recorder,
    state: ResponseState,
    send_errors: Vec<SendError>,
    finished: Result<u64, FinishError>,
}

fn serve_declaring<A: Application>(app: &A, method: Method) -> Served {
    let environ = Environ::builder().method(method).build().unwrap();
    let mut wire = Recorder::default();
    let mut state = ResponseState::new(environ.method());
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .unwrap();
    if let Some(hint) = body.size_hint() {
        state.declare_length(hint).unwrap();
    }
    let mut send_errors = Vec::new();
    while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut wire)) {
        if let Err(err) = state.send_chunk(&mut wire, chunk.unwrap()) {
            send_errors.push(err);
        }
    }
    drop(body);
    let finished = state.finish(&mut wire);
    Served {
        wire,
        state,
        send_errors,
        finished,
    }
}

fn app(
    started_in_call: Option<ResponseHead>,
    hint: u64,
    first_pull: fn() -> FirstPull,
    chunks: &'static [&'static str],
) -> impl Application<Body = Scripted> {
    rgi::from_fn(move |_environ, start| {
        if let Some(head) = started_in_call.clone() {
            start.start(head)?;
        }
        Ok(Scripted {
            hint: Some(hint),
            first_pull: first_pull(),
            chunks: chunks.iter().copied().collect(),
        })
    })
}

#[test]
fn d1_a_head_started_lazily_after_the_declaration_carries_the_declared_length() {
    // The body promises 5 bytes but yields 10: the head must say 5 and the
    // wire must hold 5, or a keep-alive client reads the rest as the next
    // response.
    let served = serve_declaring(
        &app(
            None,
            5,
            || FirstPull::Start(ResponseHead::new(StatusCode::OK)),
            &["hello", "EXTRA"],
        ),
        Method::GET,
    );
    let heads = served.wire.heads();
    assert_eq!(heads.len(), 1);
    assert_eq!(content_length(heads[0]), [&HeaderValue::from(5)]);
    assert_eq!(served.wire.body(), b"hello");
    assert_eq!(served.state.content_length(), Some(5));
    assert!(matches!(
        served.send_errors[..],
        [SendError::ContentLengthExceeded {
            declared: 5,
            attempted: 10
        }]
    ));
    assert_eq!(served.finished.unwrap(), 5);
}

#[test]
fn d1_a_head_replaced_after_the_declaration_drops_it_and_goes_out_without_a_length() {
    let served = serve_declaring(
        &app(
            Some(ResponseHead::new(StatusCode::OK)),
            4,
            || FirstPull::Replace(ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR)),
            &["oops", "!!"],
        ),
        Method::GET,
    );
    let heads = served.wire.heads();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(content_length(heads[0]).is_empty());
    assert_eq!(served.wire.body(), b"oops!!");
    assert_eq!(served.state.content_length(), None);
    assert!(served.send_errors.is_empty());
    assert_eq!(served.finished.unwrap(), 6);
}

#[test]
fn d1_a_servers_own_500_after_a_failed_first_pull_carries_no_declared_length() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(StatusCode::OK)
        .unwrap();
    state.declare_length(100).unwrap();
    // The first pull failed; the server answers 500 itself (RGI-FAIL-3).
    state
        .start_response(&mut wire)
        .replace(StatusCode::INTERNAL_SERVER_ERROR, "the body failed")
        .unwrap();
    assert_eq!(state.finish(&mut wire).unwrap(), 0);
    assert_eq!(wire.heads()[0].status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(content_length(wire.heads()[0]).is_empty());
    // A declaration made after the replacement describes the body as it is.
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .replace(StatusCode::NOT_FOUND, "no such page")
        .unwrap();
    state.declare_length(2).unwrap();
    state
        .send_chunk(&mut wire, Bytes::from_static(b"no"))
        .unwrap();
    assert_eq!(content_length(wire.heads()[0]), [&HeaderValue::from(2)]);
}

#[test]
fn d1_a_replacement_with_its_own_length_wins_over_the_declaration() {
    let served = serve_declaring(
        &app(
            Some(ResponseHead::new(StatusCode::OK)),
            4,
            || FirstPull::Replace(with_length(StatusCode::INTERNAL_SERVER_ERROR, 6)),
            &["oops", "!!"],
        ),
        Method::GET,
    );
    let heads = served.wire.heads();
    assert_eq!(content_length(heads[0]), [&HeaderValue::from(6)]);
    assert_eq!(served.wire.body(), b"oops!!");
    assert_eq!(served.state.content_length(), Some(6));
    assert!(served.send_errors.is_empty());
    assert_eq!(served.finished.unwrap(), 6);
}

#[test]
fn d1_the_applications_content_length_wins_over_a_disagreeing_declaration() {
    // Declared 10 by the server; the application's lazy head says 3.
    let served = serve_declaring(
        &app(
            None,
            10,
            || FirstPull::Start(with_length(StatusCode::OK, 3)),
            &["abcde", "fghij"],
        ),
        Method::GET,
    );
    let heads = served.wire.heads();
    assert_eq!(content_length(heads[0]), [&HeaderValue::from(3)]);
    assert_eq!(served.wire.body(), b"abc");
    assert_eq!(served.state.content_length(), Some(3));
    assert!(matches!(
        served.send_errors[0],
        SendError::ContentLengthExceeded {
            declared: 3,
            attempted: 5
        }
    ));
    // And a short body is judged against the application's length too.
    let served = serve_declaring(
        &app(
            Some(with_length(StatusCode::OK, 8)),
            2,
            || FirstPull::Nothing,
            &["ab"],
        ),
        Method::GET,
    );
    assert_eq!(
        content_length(served.wire.heads()[0]),
        [&HeaderValue::from(8)]
    );
    assert!(matches!(
        served.finished,
        Err(FinishError::ContentLengthShort {
            declared: 8,
            sent: 2
        })
    ));
}

#[test]
fn d1_declaring_after_the_head_was_sent_is_refused_and_changes_nothing() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut start = state.start_response(&mut wire);
    start.start(StatusCode::OK).unwrap();
    start.write("streamed").unwrap();
    let err = state.declare_length(3).unwrap_err();
    assert!(matches!(
        err,
        DeclareError::HeadAlreadySent {
            length: 3,
            sent: None
        }
    ));
    assert!(err.to_string().contains('3'), "{err}");
    state
        .send_chunk(&mut wire, Bytes::from_static(b" on"))
        .unwrap();
    assert_eq!(state.content_length(), None);
    assert!(content_length(wire.heads()[0]).is_empty());
    assert_eq!(state.finish(&mut wire).unwrap(), 11);

    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(with_length(StatusCode::OK, 2))
        .unwrap();
    state.send_head(&mut wire).unwrap();
    assert!(matches!(
        state.declare_length(2),
        Err(DeclareError::HeadAlreadySent {
            length: 2,
            sent: Some(2)
        })
    ));
}

#[test]
fn d1_the_last_declaration_before_the_head_is_the_one_sent() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state.declare_length(9).unwrap();
    state
        .start_response(&mut wire)
        .start(StatusCode::OK)
        .unwrap();
    state.declare_length(2).unwrap();
    state
        .send_chunk(&mut wire, Bytes::from_static(b"ok"))
        .unwrap();
    assert_eq!(content_length(wire.heads()[0]), [&HeaderValue::from(2)]);
    assert_eq!(state.content_length(), Some(2));
    assert_eq!(state.remaining_length(), Some(0));
}

#[test]
fn d1_head_requests_and_bodiless_statuses_carry_no_declared_length() {
    // HEAD: the head is the application's own (RGI-BODY-15).
    let served = serve_declaring(
        &app(
            None,
            5,
            || FirstPull::Start(ResponseHead::new(StatusCode::OK)),
            &["hello"],
        ),
        Method::HEAD,
    );
    assert!(content_length(served.wire.heads()[0]).is_empty());
    assert_eq!(served.state.content_length(), None);
    assert!(served.wire.body().is_empty());
    // 204 cannot carry one, 304 describes another representation.
    for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
        let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
        state.declare_length(0).unwrap();
        state.start_response(&mut wire).start(status).unwrap();
        assert_eq!(state.finish(&mut wire).unwrap(), 0);
        assert!(content_length(wire.heads()[0]).is_empty(), "{status}");
        assert_eq!(state.content_length(), None);
    }
}

#[test]
fn d1_a_declaration_with_nothing_sent_is_met_or_reported_short_at_finish() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(StatusCode::OK)
        .unwrap();
    state.declare_length(0).unwrap();
    assert_eq!(state.finish(&mut wire).unwrap(), 0);
    assert_eq!(content_length(wire.heads()[0]), [&HeaderValue::from(0)]);

    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(StatusCode::OK)
        .unwrap();
    state.declare_length(4).unwrap();
    assert!(matches!(
        state.finish(&mut wire),
        Err(FinishError::ContentLengthShort {
            declared: 4,
            sent: 0
        })
    ));
}

/// D4: at the declared length `wants_body()` is false; a server that stops
/// pulling has a complete response, one that pulls once more gets the typed
/// excess for a non-empty chunk and sends none of it.
#[test]
fn d4_at_the_declared_length_the_server_may_stop_or_pull_once_more() {
    for declared_by_server in [false, true] {
        let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
        let head = if declared_by_server {
            state.declare_length(3).unwrap();
            ResponseHead::new(StatusCode::OK)
        } else {
            with_length(StatusCode::OK, 3)
        };
        state.start_response(&mut wire).start(head).unwrap();
        assert!(state.wants_body(), "nothing sent yet");
        state
            .send_chunk(&mut wire, Bytes::from_static(b"ab"))
            .unwrap();
        assert!(state.wants_body());
        state
            .send_chunk(&mut wire, Bytes::from_static(b"c"))
            .unwrap();
        assert!(!state.wants_body(), "the declared length is reached");

        // Pulling once more: an empty chunk is still a yield point...
        state.send_chunk(&mut wire, Bytes::new()).unwrap();
        // ...and a non-empty one is the excess, none of it sent.
        let sent_before = wire.sent.len();
        let err = state
            .send_chunk(&mut wire, Bytes::from_static(b"de"))
            .unwrap_err();
        assert!(matches!(
            err,
            SendError::ContentLengthExceeded {
                declared: 3,
                attempted: 5
            }
        ));
        assert_eq!(wire.sent.len(), sent_before);
        // A write past the length is the same excess.
        let err = state.start_response(&mut wire).write("f").unwrap_err();
        assert!(matches!(
            err,
            SendError::ContentLengthExceeded {
                declared: 3,
                attempted: 4
            }
        ));
        assert_eq!(wire.body(), b"abc");
        assert_eq!(state.finish(&mut wire).unwrap(), 3);
    }
}

#[test]
fn d4_a_server_that_stops_at_wants_body_never_sees_the_excess() {
    // The body yields 10 bytes for a declared 5; the server stops pulling
    // as soon as wants_body() is false, so no error exists to log.
    let app = app(
        None,
        5,
        || FirstPull::Start(ResponseHead::new(StatusCode::OK)),
        &["hello", "EXTRA"],
    );
    let environ = Environ::builder().build().unwrap();
    let (mut state, mut wire) = (ResponseState::new(environ.method()), Recorder::default());
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .unwrap();
    state.declare_length(body.size_hint().unwrap()).unwrap();
    let mut pulls = 0;
    while state.wants_body() {
        let Some(chunk) = body.next_chunk(&mut state.start_response(&mut wire)) else {
            break;
        };
        pulls += 1;
        state.send_chunk(&mut wire, chunk.unwrap()).unwrap();
    }
    drop(body);
    assert_eq!(pulls, 1);
    assert_eq!(state.finish(&mut wire).unwrap(), 5);
    assert_eq!(wire.body(), b"hello");
}

#[test]
fn d4_a_length_of_zero_still_lets_the_head_be_replaced_before_it_is_sent() {
    // wants_body() stays true until the head is sent, so the application can
    // still fail and be answered with an error response.
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(with_length(StatusCode::OK, 0))
        .unwrap();
    assert!(state.wants_body());
    state
        .start_response(&mut wire)
        .replace(StatusCode::SERVICE_UNAVAILABLE, "backend down")
        .unwrap();
    assert_eq!(state.finish(&mut wire).unwrap(), 0);
    assert_eq!(wire.heads()[0].status(), StatusCode::SERVICE_UNAVAILABLE);

    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(with_length(StatusCode::OK, 0))
        .unwrap();
    state.send_head(&mut wire).unwrap();
    assert!(!state.wants_body(), "a sent length of 0 is reached at once");
}

/// A sink whose HTTP layer writes Content-Length itself: it takes the
/// declared length apart from the head (`RGI-CL-12`).
#[derive(Default)]
struct LengthApart {
    heads: Vec<(ResponseHead, Option<u64>)>,
    data: Vec<u8>,
}

impl rgi::ResponseSink for LengthApart {
    fn send_head(&mut self, _head: ResponseHead) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "send_head called: the state must use send_head_with_length",
        ))
    }

    fn send_head_with_length(
        &mut self,
        head: ResponseHead,
        declared: Option<u64>,
    ) -> std::io::Result<()> {
        self.heads.push((head, declared));
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> std::io::Result<()> {
        self.data.extend_from_slice(&data);
        Ok(())
    }
}

fn serve_to_length_apart(app: &impl Application, method: Method) -> (LengthApart, ResponseState) {
    let environ = Environ::builder().method(method).build().unwrap();
    let mut state = ResponseState::new(environ.method());
    let mut sink = LengthApart::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut sink))
        .unwrap();
    if let Some(hint) = body.size_hint() {
        state.declare_length(hint).unwrap();
    }
    while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut sink)) {
        state.send_chunk(&mut sink, chunk.unwrap()).unwrap();
    }
    drop(body);
    state.finish(&mut sink).unwrap();
    (sink, state)
}

#[test]
fn d1_a_sink_that_writes_the_length_itself_gets_the_declaration_beside_the_head() {
    let lazy = app(
        None,
        5,
        || FirstPull::Start(ResponseHead::new(StatusCode::OK)),
        &["hel", "lo"],
    );
    let (sink, state) = serve_to_length_apart(&lazy, Method::GET);
    assert_eq!(sink.heads.len(), 1);
    let (head, declared) = &sink.heads[0];
    assert_eq!(*declared, Some(5));
    // Apart means apart: the field is not written twice.
    assert!(content_length(head).is_empty());
    assert_eq!(state.content_length(), Some(5));
    assert_eq!(sink.data, b"hello");

    // The application's own length is in the head: nothing beside it.
    let own = app(
        Some(with_length(StatusCode::OK, 5)),
        5,
        || FirstPull::Nothing,
        &["hello"],
    );
    let (sink, _) = serve_to_length_apart(&own, Method::GET);
    let (head, declared) = &sink.heads[0];
    assert_eq!(*declared, None);
    assert_eq!(content_length(head), [&HeaderValue::from_static("5")]);

    // HEAD: no declared length at all.
    let (sink, state) = serve_to_length_apart(&lazy, Method::HEAD);
    assert_eq!(sink.heads[0].1, None);
    assert_eq!(state.content_length(), None);
}

#[test]
fn d1_the_default_sink_writes_the_declared_length_into_the_head() {
    let mut sink = Recorder::default();
    rgi::ResponseSink::send_head_with_length(
        &mut sink,
        ResponseHead::new(StatusCode::OK),
        Some(42),
    )
    .unwrap();
    rgi::ResponseSink::send_head_with_length(
        &mut sink,
        ResponseHead::new(StatusCode::NO_CONTENT),
        None,
    )
    .unwrap();
    let heads = sink.heads();
    assert_eq!(content_length(heads[0]), [&HeaderValue::from_static("42")]);
    assert!(content_length(heads[1]).is_empty());
}
