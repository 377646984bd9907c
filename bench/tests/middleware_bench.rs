//! Every stack of the rgi-middleware overhead benchmark answers the same
//! bytes through the very driver it is measured with: the hand-written
//! middleware and `Wrapped` agree (head fields in order, body, trailers),
//! and each differs from the bare hello application by exactly its field
//! or its trailer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use rgi::{BoxError, Environ, ResponseHead, StartResponse};
use rgi_bench::mw::{
    AddHeader, CountBytes, CountMiddleware, Driver, Flavor, HeaderMiddleware, Stack,
};
use rgi_bench::mw_report::parse_allocations;
use rgi_middleware::Middleware;

const BARE: &str = "200\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!\r\n";
const HEADER: &str = "200\r\ncontent-type: text/plain\r\nx-served-by: rgi\r\ncontent-length: 13\r\n\r\nHello, world!\r\n";
const COUNT: &str = "200\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!\r\nx-body-bytes: 13\r\n";

fn answer(flavor: Flavor, stack: Stack) -> String {
    let mut driver = Driver::new(flavor).unwrap();
    // Twice through one driver, as the measurement loops: the second
    // answer must be whole too (the sink is cleared, not appended to).
    driver.repeat(flavor, stack, 2).unwrap();
    String::from_utf8(driver.sink.wire()).unwrap()
}

#[test]
fn every_stack_answers_the_expected_bytes() {
    for flavor in Flavor::ALL {
        for (stack, expected) in [
            (Stack::Bare, BARE),
            (Stack::HeaderHand, HEADER),
            (Stack::HeaderWrapped, HEADER),
            (Stack::CountHand, COUNT),
            (Stack::CountWrapped, COUNT),
        ] {
            assert_eq!(
                answer(flavor, stack),
                expected,
                "{} {}",
                flavor.name(),
                stack.name()
            );
        }
    }
}

/// An application that writes through the handle and gives its own
/// trailers: the hand-written counter must count the writes and put its
/// field into those trailers, as `Wrapped` does.
fn writer(_environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
    start.start(ResponseHead::new(StatusCode::OK))?;
    start.write("written ")?;
    let mut trailers = HeaderMap::new();
    trailers.insert("x-own", HeaderValue::from_static("1"));
    start.send_trailers(trailers)?;
    Ok(Bytes::from_static(b"and returned"))
}

#[test]
fn hand_written_and_wrapped_agree_on_writes_and_own_trailers() {
    let mut answers = Vec::new();
    let mut sync = Driver::new(Flavor::Sync).unwrap();
    for run in 0..4 {
        let app = rgi::from_fn(writer);
        match run {
            0 => sync.sync_once(&CountBytes(app)).unwrap(),
            1 => sync.sync_once(&CountMiddleware.wrap(app)).unwrap(),
            2 => sync.sync_once(&AddHeader(app)).unwrap(),
            _ => sync.sync_once(&HeaderMiddleware.wrap(app)).unwrap(),
        }
        answers.push(String::from_utf8(sync.sink.wire()).unwrap());
    }
    let mut driver = Driver::new(Flavor::Async).unwrap();
    for run in 0..4 {
        let app = rgi_async::from_fn(writer);
        match run {
            0 => driver.async_once(&CountBytes(app)).unwrap(),
            1 => driver.async_once(&CountMiddleware.wrap(app)).unwrap(),
            2 => driver.async_once(&AddHeader(app)).unwrap(),
            _ => driver.async_once(&HeaderMiddleware.wrap(app)).unwrap(),
        }
        answers.push(String::from_utf8(driver.sink.wire()).unwrap());
    }
    // The head went out with the write, so without a length; the count
    // went into the application's own trailers when it gave them, after
    // the write and before the returned body (as `Middleware::on_trailers`
    // documents).
    let counted = "200\r\n\r\nwritten and returned\r\nx-own: 1\r\nx-body-bytes: 8\r\n";
    let headed = "200\r\nx-served-by: rgi\r\n\r\nwritten and returned\r\nx-own: 1\r\n";
    for (i, got) in answers.iter().enumerate() {
        let expected = if i % 4 < 2 { counted } else { headed };
        assert_eq!(got, expected, "run {i}");
    }
}

#[test]
fn names_round_trip_and_unknown_ones_are_refused() {
    for flavor in Flavor::ALL {
        assert_eq!(Flavor::parse(flavor.name()).unwrap(), flavor);
    }
    for stack in Stack::ALL {
        assert_eq!(Stack::parse(stack.name()).unwrap(), stack);
    }
    assert!(Flavor::parse("both").is_err());
    assert!(Stack::parse("wrapped").is_err());
    assert_eq!(parse_allocations("x\nmw allocations=42\n"), Some(42));
    assert_eq!(parse_allocations("steps allocations=42\n"), None);
}
