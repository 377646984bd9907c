#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Content-Length a server declares (RGI-CL-6, RGI-CL-10) joins the head
//! with the right digits at every length, and, for the lengths of most
//! bodies, without a heap allocation; counted exactly by a global allocator
//! that forwards to the system's.

use std::io;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use rgi::{ResponseHead, ResponseSink, ResponseState};

mod counting_alloc;

use counting_alloc::allocations_during;

/// A sink that keeps the Content-Length field of the head it was handed
/// (a clone of the value: a shared one would be promoted, and allocate).
#[derive(Default)]
struct LengthField(Option<HeaderValue>);

impl ResponseSink for LengthField {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.0 = head.headers().get(CONTENT_LENGTH).cloned();
        Ok(())
    }

    fn send_data(&mut self, _data: Bytes) -> io::Result<()> {
        Ok(())
    }
}

/// The hello head: one field already, so adding Content-Length does not
/// have to grow the header map.
fn hello_head() -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
        .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

/// Declares `length`, stores the hello head and sends it; returns the
/// allocations that took and the field the sink received.
fn declare_and_send(length: u64) -> (usize, Option<HeaderValue>) {
    let head = hello_head();
    let mut state = ResponseState::new(&Method::GET);
    let mut sink = LengthField::default();
    let (allocations, ()) = allocations_during(|| {
        state.declare_length(length).unwrap();
        state.start_response(&mut sink).start(head).unwrap();
        state.send_head(&mut sink).unwrap();
    });
    (allocations, sink.0)
}

#[test]
fn a_declared_length_is_written_in_decimal_at_every_magnitude() {
    for length in [
        0,
        1,
        9,
        10,
        13,
        99,
        100,
        999,
        1_000,
        4_096,
        9_999,
        10_000,
        65_536,
        123_456_789,
        u64::MAX,
    ] {
        let (_, field) = declare_and_send(length);
        let field = field.unwrap_or_else(|| panic!("no content-length for {length}"));
        assert_eq!(field.to_str().unwrap(), length.to_string(), "{length}");
    }
}

#[test]
fn a_declared_length_below_ten_thousand_joins_the_head_without_allocating() {
    for length in [0, 7, 13, 512, 9_999] {
        let (allocations, field) = declare_and_send(length);
        assert_eq!(allocations, 0, "declaring {length} allocated");
        assert_eq!(field.unwrap().to_str().unwrap(), length.to_string());
    }
}
