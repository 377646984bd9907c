//! The server's side of a response under any sequence of application and
//! server actions: start, replace, write, yielded chunks, declared lengths,
//! the head alone, sendfile counts and finish. Nothing may panic, at most one
//! head goes out and before any data, the data never passes the
//! Content-Length that head carries (D1), and nothing goes out for HEAD,
//! 204 and 304.

#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderValue};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use rgi::{ResponseHead, ResponseSink, ResponseState};

#[derive(Debug, Arbitrary)]
enum Action {
    Start { status: u16, length: Option<u16> },
    Replace { status: u16, length: Option<u16> },
    Write(u8),
    Chunk(u8),
    Declare(u16),
    SendHead,
    RecordSent(u16),
    Finish,
}

#[derive(Debug, Arbitrary)]
struct Case {
    head_request: bool,
    actions: Vec<Action>,
}

#[derive(Default)]
struct Wire {
    heads: Vec<ResponseHead>,
    data: u64,
}

impl ResponseSink for Wire {
    fn send_head(&mut self, head: ResponseHead) -> std::io::Result<()> {
        assert!(self.heads.is_empty(), "a second head");
        assert_eq!(self.data, 0, "data before the head");
        self.heads.push(head);
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> std::io::Result<()> {
        assert!(!data.is_empty(), "an empty chunk reached the sink");
        assert_eq!(self.heads.len(), 1, "data without a head");
        self.data += data.len() as u64;
        Ok(())
    }
}

fn head(status: u16, length: Option<u16>) -> ResponseHead {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let head = ResponseHead::new(status);
    match length {
        Some(length) => head.with_header(CONTENT_LENGTH, HeaderValue::from(length)),
        None => head,
    }
}

fuzz_target!(|case: Case| {
    let method = if case.head_request {
        Method::HEAD
    } else {
        Method::GET
    };
    let mut state = ResponseState::new(&method);
    let mut wire = Wire::default();
    let mut by_server = 0u64;
    for action in case.actions {
        match action {
            Action::Start { status, length } => {
                let _ = state.start_response(&mut wire).start(head(status, length));
            }
            Action::Replace { status, length } => {
                let _ = state
                    .start_response(&mut wire)
                    .replace(head(status, length), "changed its mind");
            }
            Action::Write(size) => {
                let _ = state
                    .start_response(&mut wire)
                    .write(vec![b'w'; usize::from(size)]);
            }
            Action::Chunk(size) => {
                let _ = state.send_chunk(&mut wire, Bytes::from(vec![b'c'; usize::from(size)]));
            }
            Action::Declare(length) => {
                let sent = state.is_head_sent();
                assert_eq!(state.declare_length(u64::from(length)).is_err(), sent);
            }
            Action::SendHead => {
                let _ = state.send_head(&mut wire);
            }
            Action::RecordSent(count) => {
                let allowed = state.remaining_length();
                if state.record_sent(u64::from(count)).is_ok() {
                    by_server += u64::from(count);
                    assert!(allowed.is_none_or(|allowed| u64::from(count) <= allowed));
                }
            }
            Action::Finish => {
                let _ = state.finish(&mut wire);
            }
        }
        let Some(sent_head) = wire.heads.first() else {
            assert!(!state.is_head_sent());
            assert_eq!(wire.data, 0);
            continue;
        };
        assert!(state.is_head_sent());
        let field: Vec<u64> = sent_head
            .headers()
            .get_all(CONTENT_LENGTH)
            .iter()
            .map(|value| value.to_str().unwrap_or("").parse().unwrap_or(u64::MAX))
            .collect();
        // The one accessor agrees with the field that went out.
        assert!(
            field
                .iter()
                .all(|&length| Some(length) == state.content_length())
        );
        assert_eq!(field.is_empty(), state.content_length().is_none());
        if let Some(length) = state.content_length() {
            assert!(
                wire.data + by_server <= length,
                "body past its Content-Length"
            );
        }
        if case.head_request || sent_head.is_bodiless() {
            assert_eq!(wire.data, 0, "content for HEAD, 204 or 304");
        }
    }
});
