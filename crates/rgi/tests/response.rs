//! Starting the response: every typed error of `StartResponse`,
//! `ResponseHead` and `ResponseState`, and the ordering rules.

mod support;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use rgi::{FinishError, HeadError, Intercept, ResponseHead, ResponseState, SendError, StartError};
use support::{Recorder, Sent};

fn ok() -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
}

fn with_length(status: StatusCode, length: &'static str) -> ResponseHead {
    ResponseHead::new(status).with_header(header::CONTENT_LENGTH, HeaderValue::from_static(length))
}

#[test]
fn starting_twice_without_an_error_is_rejected_and_keeps_the_first_head() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut start = state.start_response(&mut wire);
    start.start(ok()).unwrap();
    let err = start
        .start(ResponseHead::new(StatusCode::NOT_FOUND))
        .unwrap_err();
    assert!(matches!(
        err,
        StartError::AlreadyStarted {
            current: StatusCode::OK,
            attempted: StatusCode::NOT_FOUND
        }
    ));
    assert_eq!(state.head().unwrap().status(), StatusCode::OK);
}

#[test]
fn replace_before_the_head_is_sent_changes_the_head() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut start = state.start_response(&mut wire);
    start.start(ok()).unwrap();
    start.write("").unwrap(); // an empty write sends nothing, so replacing is still allowed
    start
        .replace(
            ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR),
            "database down",
        )
        .unwrap();
    start.write("sorry").unwrap();
    state.finish(&mut wire).unwrap();
    assert_eq!(wire.heads()[0].status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(wire.heads().len(), 1);
}

#[test]
fn replace_without_a_prior_start_starts_the_response() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .replace(ResponseHead::new(StatusCode::SERVICE_UNAVAILABLE), "busy")
        .unwrap();
    assert_eq!(
        state.head().unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[test]
fn replace_after_the_head_is_sent_hands_the_error_back() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut start = state.start_response(&mut wire);
    start.start(ok()).unwrap();
    start.write("partial").unwrap();
    let err = start
        .replace(
            ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR),
            "disk full",
        )
        .unwrap_err();
    assert!(matches!(
        err,
        StartError::HeadAlreadySent {
            status: StatusCode::OK,
            ..
        }
    ));
    assert_eq!(err.into_cause().to_string(), "disk full");
    assert_eq!(wire.heads()[0].status(), StatusCode::OK);
}

#[test]
fn an_invalid_error_head_still_returns_the_applications_error() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let bad = ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR).with_header(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    let err = state
        .start_response(&mut wire)
        .replace(bad, "original")
        .unwrap_err();
    assert!(matches!(
        err,
        StartError::InvalidHead {
            source: HeadError::HopByHop { .. },
            ..
        }
    ));
    assert_eq!(err.into_cause().to_string(), "original");
    assert!(!state.is_started());
}

#[test]
fn status_outside_100_to_999_is_rejected_with_the_code() {
    for code in [0, 99, 1000, u16::MAX] {
        let err = ResponseHead::from_raw(code, [("a", "b")]).unwrap_err();
        assert!(
            matches!(err, HeadError::InvalidStatus { code: c } if c == code),
            "{code}"
        );
        assert!(err.to_string().contains(&code.to_string()));
    }
}

#[test]
fn informational_status_is_not_a_final_response() {
    let err = ResponseHead::from_raw(101, Vec::<(&str, &str)>::new()).unwrap_err();
    assert!(matches!(err, HeadError::InformationalStatus { status } if status.as_u16() == 101));
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let err = state
        .start_response(&mut wire)
        .start(StatusCode::CONTINUE)
        .unwrap_err();
    assert!(matches!(
        err,
        StartError::InvalidHead {
            source: HeadError::InformationalStatus { .. },
            ..
        }
    ));
}

#[test]
fn header_name_that_is_not_a_token_is_rejected_with_the_name() {
    for name in ["bad name", "colon:", "", "tab\there", "quote\"", "(paren)"] {
        let err = ResponseHead::from_raw(200, [(name, "v")]).unwrap_err();
        match err {
            HeadError::InvalidHeaderName { name: given } => assert_eq!(given, name.as_bytes()),
            other => panic!("{name:?}: {other}"),
        }
    }
}

#[test]
fn header_value_with_cr_lf_nul_or_ctl_is_rejected_with_the_value() {
    for value in ["a\r\nb", "a\nb", "a\rb", "nul\0", "bell\x07", "del\x7f"] {
        let err = ResponseHead::from_raw(200, [("x-test", value)]).unwrap_err();
        match err {
            HeadError::InvalidHeaderValue { name, value: given } => {
                assert_eq!(name, "x-test");
                assert_eq!(given, value.as_bytes());
            }
            other => panic!("{value:?}: {other}"),
        }
    }
    // Tab and obs-text are legal and kept byte for byte.
    let head = ResponseHead::from_raw(200, [("x-test", b"a\tb\xe9".as_slice())]).unwrap();
    assert_eq!(head.headers()["x-test"].as_bytes(), b"a\tb\xe9");
}

#[test]
fn every_hop_by_hop_field_is_rejected_with_its_name() {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
    ] {
        let err = ResponseHead::from_raw(200, [(name, "x")]).unwrap_err();
        assert!(
            matches!(&err, HeadError::HopByHop { name: n } if n == name),
            "{name}: {err}"
        );
        // The same rule applies to heads built from typed parts, at start.
        let head = ok().with_header(HeaderName::from_static(name), HeaderValue::from_static("x"));
        let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
        let err = state.start_response(&mut wire).start(head).unwrap_err();
        assert!(matches!(
            err,
            StartError::InvalidHead {
                source: HeadError::HopByHop { .. },
                cause: None
            }
        ));
    }
}

#[test]
fn content_length_must_be_one_decimal_number() {
    for value in [
        "",
        "-1",
        "+5",
        " 5",
        "5 ",
        "0x10",
        "1e3",
        "18446744073709551616",
    ] {
        let err = ResponseHead::from_raw(200, [("content-length", value)]).unwrap_err();
        assert!(
            matches!(err, HeadError::InvalidContentLength { .. }),
            "{value:?}"
        );
    }
    let err = ResponseHead::from_raw(200, [("content-length", "5"), ("content-length", "6")])
        .unwrap_err();
    assert!(matches!(err, HeadError::InvalidContentLength { value } if value == "6"));
    // Repeating the same value is not a contradiction.
    let head =
        ResponseHead::from_raw(200, [("content-length", "5"), ("content-length", "5")]).unwrap();
    assert_eq!(head.validate().unwrap(), Some(5));
}

#[test]
fn content_length_on_204_is_rejected() {
    let err = with_length(StatusCode::NO_CONTENT, "0")
        .validate()
        .unwrap_err();
    assert!(matches!(
        err,
        HeadError::ContentLengthNotAllowed {
            status: StatusCode::NO_CONTENT
        }
    ));
}

#[test]
fn writing_before_the_response_is_started_is_rejected() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let err = state.start_response(&mut wire).write("early").unwrap_err();
    assert!(matches!(err, SendError::NotStarted));
    let err = state.start_response(&mut wire).write("").unwrap_err();
    assert!(matches!(err, SendError::NotStarted));
    assert!(wire.sent.is_empty());
}

#[test]
fn a_body_chunk_before_the_response_is_started_is_rejected_but_an_empty_one_is_a_yield() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state.send_chunk(&mut wire, Bytes::new()).unwrap();
    let err = state
        .send_chunk(&mut wire, Bytes::from_static(b"x"))
        .unwrap_err();
    assert!(matches!(err, SendError::NotStarted));
    assert!(matches!(
        state.finish(&mut wire),
        Err(FinishError::NotStarted)
    ));
    assert!(wire.sent.is_empty());
}

#[test]
fn the_head_goes_out_with_the_first_non_empty_chunk_and_only_once() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state.start_response(&mut wire).start(ok()).unwrap();
    for _ in 0..3 {
        state.send_chunk(&mut wire, Bytes::new()).unwrap();
    }
    assert!(wire.sent.is_empty(), "empty chunks must not send the head");
    state
        .send_chunk(&mut wire, Bytes::from_static(b"a"))
        .unwrap();
    state.start_response(&mut wire).write("b").unwrap();
    state
        .send_chunk(&mut wire, Bytes::from_static(b"c"))
        .unwrap();
    assert_eq!(state.finish(&mut wire).unwrap(), 3);
    assert_eq!(
        wire.sent,
        vec![
            Sent::Head(ok()),
            Sent::Data(Bytes::from_static(b"a")),
            Sent::Data(Bytes::from_static(b"b")),
            Sent::Data(Bytes::from_static(b"c")),
        ]
    );
}

#[test]
fn an_empty_body_sends_the_head_at_finish() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(with_length(StatusCode::OK, "0"))
        .unwrap();
    assert!(!state.is_head_sent());
    assert_eq!(state.finish(&mut wire).unwrap(), 0);
    assert_eq!(
        wire.sent,
        vec![Sent::Head(with_length(StatusCode::OK, "0"))]
    );
}

#[test]
fn more_than_content_length_is_cut_at_the_limit_with_a_typed_error() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(with_length(StatusCode::OK, "5"))
        .unwrap();
    state
        .send_chunk(&mut wire, Bytes::from_static(b"abc"))
        .unwrap();
    let err = state
        .send_chunk(&mut wire, Bytes::from_static(b"defg"))
        .unwrap_err();
    assert!(matches!(
        err,
        SendError::ContentLengthExceeded {
            declared: 5,
            attempted: 7
        }
    ));
    assert_eq!(wire.body(), b"abcde");
    assert!(!state.wants_body());
    // write() obeys the same limit.
    let err = state.start_response(&mut wire).write("z").unwrap_err();
    assert!(matches!(
        err,
        SendError::ContentLengthExceeded {
            declared: 5,
            attempted: 6
        }
    ));
    assert_eq!(wire.body(), b"abcde");
    assert_eq!(state.finish(&mut wire).unwrap(), 5);
}

#[test]
fn fewer_bytes_than_content_length_is_reported_at_finish() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(with_length(StatusCode::OK, "10"))
        .unwrap();
    state
        .send_chunk(&mut wire, Bytes::from_static(b"1234"))
        .unwrap();
    let err = state.finish(&mut wire).unwrap_err();
    assert!(matches!(
        err,
        FinishError::ContentLengthShort {
            declared: 10,
            sent: 4
        }
    ));
}

#[test]
fn head_requests_send_the_head_with_its_content_length_but_no_body() {
    let (mut state, mut wire) = (ResponseState::new(&Method::HEAD), Recorder::default());
    state
        .start_response(&mut wire)
        .start(with_length(StatusCode::OK, "11"))
        .unwrap();
    assert!(state.wants_body());
    state
        .send_chunk(&mut wire, Bytes::from_static(b"hello"))
        .unwrap();
    assert!(
        !state.wants_body(),
        "a server may stop pulling once the head is out"
    );
    assert_eq!(state.finish(&mut wire).unwrap(), 5);
    assert_eq!(
        wire.sent,
        vec![Sent::Head(with_length(StatusCode::OK, "11"))]
    );
}

#[test]
fn statuses_without_a_body_refuse_body_data() {
    for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
        let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
        state.start_response(&mut wire).start(status).unwrap();
        state.send_chunk(&mut wire, Bytes::new()).unwrap();
        let err = state
            .send_chunk(&mut wire, Bytes::from_static(b"x"))
            .unwrap_err();
        assert!(matches!(err, SendError::BodyNotAllowed { status: s } if s == status));
        assert_eq!(state.finish(&mut wire).unwrap(), 0);
        assert_eq!(wire.sent, vec![Sent::Head(ResponseHead::new(status))]);
    }
}

#[test]
fn a_304_may_carry_the_representations_content_length_without_a_body() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(with_length(StatusCode::NOT_MODIFIED, "42"))
        .unwrap();
    assert_eq!(state.finish(&mut wire).unwrap(), 0);
}

#[test]
fn transport_failures_reach_the_writer_and_the_server() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::failing_after(1));
    state.start_response(&mut wire).start(ok()).unwrap();
    let err = state.start_response(&mut wire).write("lost").unwrap_err();
    assert!(
        matches!(err, SendError::Transport(ref io) if io.kind() == std::io::ErrorKind::BrokenPipe)
    );
    let mut wire = Recorder::failing_after(0);
    let mut state = ResponseState::new(&Method::GET);
    state.start_response(&mut wire).start(ok()).unwrap();
    assert!(matches!(
        state.finish(&mut wire),
        Err(FinishError::Transport(_))
    ));
}

/// Adds a header to every head and counts what passes through.
#[derive(Default)]
struct Stamp {
    starts: usize,
    replaces: usize,
    written: usize,
}

impl Intercept for Stamp {
    fn on_start(&mut self, head: &mut ResponseHead) {
        self.starts += 1;
        head.headers_mut()
            .insert("x-stamp", HeaderValue::from_static("1"));
    }

    fn on_replace(&mut self, _cause: &rgi::BoxError) {
        self.replaces += 1;
    }

    fn on_write(&mut self, data: &mut Bytes) {
        self.written += data.len();
        *data = Bytes::from(data.to_ascii_uppercase());
    }
}

#[test]
fn interceptors_see_and_rewrite_heads_and_writes_in_nesting_order() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let (mut outer, mut inner) = (Stamp::default(), Stamp::default());
    {
        let mut start = state.start_response(&mut wire);
        let mut start = start.intercept(&mut outer);
        let mut start = start.intercept(&mut inner);
        start.start(ok()).unwrap();
        start
            .replace(ResponseHead::new(StatusCode::BAD_GATEWAY), "upstream")
            .unwrap();
        assert!(start.is_started() && !start.is_head_sent());
        start.write("quiet").unwrap();
        assert!(start.is_head_sent());
    }
    assert_eq!((outer.starts, outer.replaces, outer.written), (2, 1, 5));
    assert_eq!((inner.starts, inner.replaces, inner.written), (2, 1, 5));
    let head = wire.heads()[0].clone();
    assert_eq!(head.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(head.headers()["x-stamp"], "1");
    assert_eq!(wire.body(), b"QUIET");
}

/// An interceptor cannot smuggle a forbidden field past validation.
struct AddsConnection;

impl Intercept for AddsConnection {
    fn on_start(&mut self, head: &mut ResponseHead) {
        head.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

#[test]
fn intercepted_heads_are_validated_after_the_hooks_ran() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let mut hook = AddsConnection;
    let mut start = state.start_response(&mut wire);
    let err = start.intercept(&mut hook).start(ok()).unwrap_err();
    assert!(matches!(
        err,
        StartError::InvalidHead {
            source: HeadError::HopByHop { .. },
            ..
        }
    ));
}

#[test]
fn errors_name_the_offending_values() {
    let err = ResponseHead::from_raw(200, [("x-a", "b\nc")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"value "b\nc" of header x-a holds a control character"#
    );
    let err = ResponseHead::from_raw(200, [("bad name", "v")]).unwrap_err();
    assert_eq!(err.to_string(), r#"header name "bad name" is not a token"#);
    let err = SendError::ContentLengthExceeded {
        declared: 3,
        attempted: 9,
    };
    assert_eq!(
        err.to_string(),
        "Content-Length is 3 but the body reached 9 bytes"
    );
}

#[test]
fn a_sendfile_server_sends_the_head_alone_and_records_what_it_sent() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    assert!(matches!(
        state.send_head(&mut wire),
        Err(FinishError::NotStarted)
    ));
    assert!(matches!(state.record_sent(1), Err(SendError::NotStarted)));
    state
        .start_response(&mut wire)
        .start(with_length(StatusCode::OK, "10"))
        .unwrap();
    state.send_head(&mut wire).unwrap();
    state.send_head(&mut wire).unwrap(); // idempotent
    assert_eq!(
        wire.sent,
        vec![Sent::Head(with_length(StatusCode::OK, "10"))]
    );
    assert_eq!(state.remaining_length(), Some(10));
    state.record_sent(6).unwrap();
    assert_eq!(state.remaining_length(), Some(4));
    let err = state.record_sent(5).unwrap_err();
    assert!(matches!(
        err,
        SendError::ContentLengthExceeded {
            declared: 10,
            attempted: 11
        }
    ));
    assert_eq!(state.finish(&mut wire).unwrap(), 10);
}

#[test]
fn a_server_computed_length_is_enforced_like_a_declared_one_but_never_overrides_it() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state.start_response(&mut wire).start(ok()).unwrap();
    state.declare_length(3).unwrap();
    let err = state
        .send_chunk(&mut wire, Bytes::from_static(b"abcd"))
        .unwrap_err();
    assert!(matches!(
        err,
        SendError::ContentLengthExceeded {
            declared: 3,
            attempted: 4
        }
    ));
    assert_eq!(wire.body(), b"abc");
    assert_eq!(wire.heads(), [&with_length(StatusCode::OK, "3")]);

    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(with_length(StatusCode::OK, "2"))
        .unwrap();
    state.declare_length(100).unwrap();
    state
        .send_chunk(&mut wire, Bytes::from_static(b"x"))
        .unwrap();
    assert_eq!(state.remaining_length(), Some(1));
    assert!(matches!(
        state.finish(&mut wire),
        Err(FinishError::ContentLengthShort {
            declared: 2,
            sent: 1
        })
    ));
}

#[test]
fn the_sink_owns_the_sent_head_and_the_state_keeps_its_status() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    state
        .start_response(&mut wire)
        .start(StatusCode::CREATED)
        .unwrap();
    assert_eq!(
        state.head().map(ResponseHead::status),
        Some(StatusCode::CREATED)
    );
    state
        .send_chunk(&mut wire, Bytes::from_static(b"x"))
        .unwrap();
    assert!(state.head().is_none(), "the sink has it now");
    assert_eq!(state.status(), Some(StatusCode::CREATED));
    assert!(state.is_started() && state.is_head_sent());
    let err = state
        .start_response(&mut wire)
        .replace(StatusCode::INTERNAL_SERVER_ERROR, "late")
        .unwrap_err();
    assert!(matches!(
        err,
        StartError::HeadAlreadySent {
            status: StatusCode::CREATED,
            ..
        }
    ));
    assert_eq!(wire.heads(), [&ResponseHead::new(StatusCode::CREATED)]);
}

#[test]
fn a_head_the_sink_failed_to_send_counts_as_sent() {
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::failing_after(0));
    state.start_response(&mut wire).start(ok()).unwrap();
    assert!(matches!(
        state.send_chunk(&mut wire, Bytes::from_static(b"x")),
        Err(SendError::Transport(_))
    ));
    // Part of it may be on the wire: it can no longer be replaced.
    assert!(state.is_head_sent());
    assert!(matches!(
        state
            .start_response(&mut wire)
            .replace(StatusCode::INTERNAL_SERVER_ERROR, "gone"),
        Err(StartError::HeadAlreadySent { .. })
    ));
}

#[test]
fn validation_reports_a_hop_by_hop_field_before_a_bad_length_in_any_order() {
    let bad_length_first = with_length(StatusCode::OK, "x1")
        .with_header(header::UPGRADE, HeaderValue::from_static("websocket"));
    assert!(matches!(
        bad_length_first.validate(),
        Err(HeadError::HopByHop { name }) if name == header::UPGRADE
    ));
    let repeated = with_length(StatusCode::OK, "7")
        .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("7"));
    assert_eq!(repeated.validate().unwrap(), Some(7));
    let differing = with_length(StatusCode::OK, "7")
        .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("8"));
    assert!(matches!(
        differing.validate(),
        Err(HeadError::InvalidContentLength { value }) if value == "8"
    ));
    let custom_names_pass = ok()
        .with_header(
            HeaderName::from_static("x-connection"),
            HeaderValue::from_static("a"),
        )
        .with_header(
            HeaderName::from_static("tea"),
            HeaderValue::from_static("b"),
        );
    assert_eq!(custom_names_pass.validate().unwrap(), None);
}

#[test]
fn header_setters_take_any_bytes_and_errors_carry_what_was_given() {
    let head = ok()
        .try_with_header("Content-Type", "text/plain")
        .unwrap()
        .try_with_header(String::from("x-id"), format!("{}", 7))
        .unwrap()
        .try_with_header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
        .unwrap()
        .try_with_header(&b"x-raw"[..], Bytes::from_static(b"\xff\tok"))
        .unwrap();
    assert_eq!(head.headers()[header::CONTENT_TYPE], "text/plain");
    assert_eq!(head.headers()["x-id"], "7");
    assert_eq!(head.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(head.headers()["x-raw"].as_bytes(), b"\xff\tok");

    let mut head = ok();
    let err = head.try_append_header("x:colon", "v").unwrap_err();
    assert!(matches!(err, HeadError::InvalidHeaderName { name } if name == b"x:colon"));
    let err = head.try_append_header("x-nul", "a\0b").unwrap_err();
    assert!(matches!(
        err,
        HeadError::InvalidHeaderValue { name, value } if name == "x-nul" && value == b"a\0b"
    ));
    assert!(head.headers().is_empty(), "nothing appended on error");
    // Appending keeps repeated fields in order.
    head.try_append_header("set-cookie", "a=1").unwrap();
    head.try_append_header("set-cookie", "b=2").unwrap();
    let cookies: Vec<_> = head.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    // The rules of validate still apply when the head is started.
    let hop = ok().try_with_header("connection", "close").unwrap();
    assert!(matches!(hop.validate(), Err(HeadError::HopByHop { .. })));
}

#[test]
fn a_response_starts_from_an_http_response_and_gives_its_body_back() {
    let response = http::Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(header::CONTENT_TYPE, "text/plain")
        .header("set-cookie", "a=1")
        .header("set-cookie", "b=2")
        .body(Bytes::from_static(b"queued"))
        .unwrap();
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let body = state.start_response(&mut wire).respond(response).unwrap();
    assert_eq!(body, "queued");
    state.send_chunk(&mut wire, body).unwrap();
    state.finish(&mut wire).unwrap();
    let head = wire.heads()[0];
    assert_eq!(head.status(), StatusCode::ACCEPTED);
    assert_eq!(head.headers()[header::CONTENT_TYPE], "text/plain");
    assert_eq!(head.headers().get_all("set-cookie").iter().count(), 2);
    assert_eq!(wire.body(), b"queued");

    // The same rules as start: a second start, an invalid head.
    let again = http::Response::new(Bytes::new());
    assert!(matches!(
        state.start_response(&mut wire).respond(again),
        Err(StartError::AlreadyStarted { .. })
    ));
    let (mut state, mut wire) = (ResponseState::new(&Method::GET), Recorder::default());
    let hop = http::Response::builder()
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Bytes::new())
        .unwrap();
    assert!(matches!(
        state.start_response(&mut wire).respond(hop),
        Err(StartError::InvalidHead {
            source: HeadError::HopByHop { .. },
            ..
        })
    ));
    assert!(!state.is_started());
}
