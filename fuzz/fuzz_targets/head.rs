//! Response head validation from arbitrary input: a numeric status and raw
//! field names and values, through `ResponseHead::from_raw`, `validate` and
//! `StartResponse::start`. Nothing may panic, and the three agree.

#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use rgi::{ResponseHead, ResponseSink, ResponseState, StartError};

#[derive(Debug, Arbitrary)]
struct Head<'a> {
    code: u16,
    fields: Vec<(&'a [u8], &'a [u8])>,
    head_request: bool,
}

struct Discard;

impl ResponseSink for Discard {
    fn send_head(&mut self, _: ResponseHead) -> std::io::Result<()> {
        Ok(())
    }

    fn send_data(&mut self, _: Bytes) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|input: Head<'_>| {
    let raw = ResponseHead::from_raw(input.code, input.fields.iter().copied());

    // The same head built from the typed parts that parse.
    let Ok(status) = StatusCode::from_u16(input.code) else {
        assert!(raw.is_err(), "from_raw accepted status {}", input.code);
        return;
    };
    let mut headers = HeaderMap::new();
    let mut all_parsed = true;
    for (name, value) in &input.fields {
        match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => all_parsed = false,
        }
    }
    let typed = ResponseHead::from_parts(status, headers);
    let validated = typed.validate();
    match &raw {
        Ok(head) => {
            assert!(all_parsed);
            assert_eq!(head, &typed);
            assert_eq!(head.validate().ok(), validated.as_ref().ok().copied());
        }
        Err(_) => assert!(!all_parsed || validated.is_err()),
    }
    if let Ok(Some(length)) = validated {
        assert!(typed.headers().get_all(CONTENT_LENGTH).iter().all(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                == Some(length)
        }));
    }

    // Storing it applies the same rules.
    let method = if input.head_request {
        Method::HEAD
    } else {
        Method::GET
    };
    let mut state = ResponseState::new(&method);
    let stored = state.start_response(&mut Discard).start(typed.clone());
    match (&validated, stored) {
        (Ok(_), Ok(())) => assert_eq!(state.head(), Some(&typed)),
        (Err(_), Err(StartError::InvalidHead { .. })) => assert!(!state.is_started()),
        (validated, stored) => panic!("validate {validated:?} but start {stored:?}"),
    }
});
