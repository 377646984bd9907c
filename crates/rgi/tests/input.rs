#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The request body: message boundary, EOF, truncation, limits and line reads.

use std::io::{self, BufRead, ErrorKind, Read};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use proptest::prelude::*;
use rgi::{Input, InputError};

/// What the scripted source does on one call to `read`.
#[derive(Debug, Clone, Copy)]
enum SourceStep {
    /// Return at most this many bytes.
    Short(usize),
    /// Fail with `ErrorKind::Interrupted`.
    Interrupted,
}

/// The observable side of a [`ScriptedSource`], kept after the source itself
/// has moved into an `Input`.
#[derive(Debug, Default)]
struct SourceLog {
    data: Vec<u8>,
    position: usize,
    schedule: Vec<SourceStep>,
    next_step: usize,
    last_was_interrupted: bool,
    /// The largest `position + buf.len()` any read asked for.
    furthest_requested: usize,
    reads: usize,
    requested_sizes: Vec<usize>,
}

/// A connection stand-in: serves `data` in short reads per `schedule`
/// (cycled), and records what it was asked for.
#[derive(Debug, Clone)]
struct ScriptedSource(Arc<Mutex<SourceLog>>);

impl ScriptedSource {
    fn new(data: &[u8], schedule: Vec<SourceStep>) -> Self {
        Self(Arc::new(Mutex::new(SourceLog {
            data: data.to_vec(),
            schedule,
            ..SourceLog::default()
        })))
    }

    fn whole_reads(data: &[u8]) -> Self {
        Self::new(data, Vec::new())
    }

    fn log(&self) -> MutexGuard<'_, SourceLog> {
        self.0.lock().unwrap()
    }

    fn remaining(&self) -> Vec<u8> {
        let log = self.log();
        log.data[log.position..].to_vec()
    }
}

impl Read for ScriptedSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut log = self.log();
        log.reads += 1;
        log.requested_sizes.push(buf.len());
        log.furthest_requested = log.furthest_requested.max(log.position + buf.len());
        let step = if log.schedule.is_empty() {
            SourceStep::Short(usize::MAX)
        } else {
            let step = log.schedule[log.next_step % log.schedule.len()];
            log.next_step += 1;
            step
        };
        let limit = match step {
            // Two interruptions in a row could loop forever with an
            // all-interrupt schedule; real sources make progress eventually.
            SourceStep::Interrupted if !log.last_was_interrupted => {
                log.last_was_interrupted = true;
                return Err(io::Error::from(ErrorKind::Interrupted));
            }
            SourceStep::Interrupted => usize::MAX,
            SourceStep::Short(limit) => limit,
        };
        log.last_was_interrupted = false;
        let count = limit.min(buf.len()).min(log.data.len() - log.position);
        let start = log.position;
        buf[..count].copy_from_slice(&log.data[start..start + count]);
        log.position += count;
        Ok(count)
    }
}

/// Reads everything with `read`, retrying interruptions.
fn read_all(input: &mut Input, read_size: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut buf = vec![0; read_size];
    loop {
        match input.read(&mut buf) {
            Ok(0) => return Ok(body),
            Ok(count) => body.extend_from_slice(&buf[..count]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

fn assert_eof_forever(input: &mut Input) {
    for _ in 0..3 {
        assert_eq!(input.read(&mut [0; 64]).unwrap(), 0);
        assert_eq!(input.read(&mut vec![0; 64 * 1024]).unwrap(), 0);
        assert!(input.read_chunk(1024).unwrap().is_empty());
        assert!(input.fill_buf().unwrap().is_empty());
        assert_eq!(input.read_line_limited(&mut Vec::new(), 10).unwrap(), 0);
        assert_eq!(input.read_to_bytes(10).unwrap(), Bytes::new());
        assert!(input.is_finished());
    }
}

#[test]
fn reads_exactly_the_declared_length() {
    let source = ScriptedSource::whole_reads(b"hello world");
    let mut input = Input::new(source.clone(), Some(5));

    let mut body = [0; 5];
    input.read_exact(&mut body).unwrap();

    assert_eq!(&body, b"hello");
    assert_eq!(input.bytes_read(), 5);
    assert!(input.is_finished());
    assert_eq!(source.remaining(), b" world");
}

#[test]
fn returns_eof_forever_after_the_end_without_asking_the_source() {
    let source = ScriptedSource::whole_reads(b"abcNEXT REQUEST");
    let mut input = Input::new(source.clone(), Some(3));
    assert_eq!(read_all(&mut input, 2).unwrap(), b"abc");
    let reads_at_end = source.log().reads;

    assert_eof_forever(&mut input);

    assert_eq!(source.log().reads, reads_at_end);
    assert_eq!(source.remaining(), b"NEXT REQUEST");
}

#[test]
fn never_requests_bytes_beyond_the_boundary() {
    let source = ScriptedSource::whole_reads(b"0123456789GET / HTTP/1.1\r\n");
    let mut input = Input::new(source.clone(), Some(10));

    // A large read bypasses the buffer; it still must be cut to the body.
    let mut buf = vec![0; 64 * 1024];
    let count = input.read(&mut buf).unwrap();

    assert_eq!(&buf[..count], b"0123456789");
    assert_eq!(source.log().furthest_requested, 10);
    assert_eq!(source.remaining(), b"GET / HTTP/1.1\r\n");
}

#[test]
fn buffered_reads_never_request_beyond_the_boundary() {
    let source = ScriptedSource::new(b"line one\nline two\nNEXT", vec![SourceStep::Short(3)]);
    let mut input = Input::new(source.clone(), Some(18));

    let lines: Vec<String> = input.by_ref().lines().map(Result::unwrap).collect();

    assert_eq!(lines, ["line one", "line two"]);
    assert_eq!(source.log().furthest_requested, 18);
    assert_eq!(source.remaining(), b"NEXT");
}

#[test]
fn zero_length_body_never_touches_the_source() {
    let source = ScriptedSource::whole_reads(b"NEXT");
    let mut input = Input::new(source.clone(), Some(0));

    assert!(input.is_finished());
    assert_eof_forever(&mut input);
    assert_eq!(source.log().reads, 0);
}

#[test]
fn an_unread_body_costs_no_source_read() {
    let source = ScriptedSource::whole_reads(b"body");
    let input = Input::new(source.clone(), Some(4));
    drop(input);
    assert_eq!(source.log().reads, 0);
}

#[test]
fn large_reads_into_an_empty_buffer_bypass_it() {
    let body = vec![7; 100_000];
    let source = ScriptedSource::whole_reads(&body);
    let mut input = Input::new(source.clone(), None);

    let mut buf = vec![0; 50_000];
    assert_eq!(input.read(&mut buf).unwrap(), 50_000);

    assert_eq!(source.log().requested_sizes, [50_000]);
}

#[test]
fn small_reads_are_served_from_one_buffered_source_read() {
    let source = ScriptedSource::whole_reads(&[1; 1000]);
    let mut input = Input::new(source.clone(), Some(1000));

    for _ in 0..100 {
        input.read_exact(&mut [0; 10]).unwrap();
    }

    // The buffer is sized to the body, not to the default capacity.
    assert_eq!(source.log().requested_sizes, [1000]);
}

#[test]
fn truncation_is_a_typed_unexpected_eof() {
    let source = ScriptedSource::new(b"abc", vec![SourceStep::Short(2)]);
    let mut input = Input::new(source, Some(10));

    let mut received = Vec::new();
    let error = input.read_to_end(&mut received).unwrap_err();

    assert_eq!(received, b"abc");
    assert_eq!(error.kind(), ErrorKind::UnexpectedEof);
    assert!(matches!(
        InputError::from_io(&error),
        Some(InputError::Truncated {
            declared: 10,
            received: 3
        })
    ));
    assert!(!input.is_finished());
    assert_eq!(input.bytes_read(), 3);
}

#[test]
fn truncation_is_sticky() {
    let mut input = Input::new(&b"abc"[..], Some(10));
    let _ = input.read_to_end(&mut Vec::new());

    for _ in 0..3 {
        let error = input.read(&mut [0; 4]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnexpectedEof);
        let error = input.read(&mut vec![0; 64 * 1024]).unwrap_err();
        assert!(InputError::from_io(&error).is_some());
        assert!(input.read_chunk(10).is_err());
        assert!(input.fill_buf().is_err());
        assert!(input.read_line_limited(&mut Vec::new(), 10).is_err());
        assert!(matches!(
            input.read_to_bytes(100),
            Err(InputError::Truncated {
                declared: 10,
                received: 3
            })
        ));
    }
}

#[test]
fn read_to_bytes_reports_truncation_unwrapped() {
    let mut input = Input::new(&b"abc"[..], Some(5));
    let error = input.read_to_bytes(100).unwrap_err();
    assert!(matches!(
        error,
        InputError::Truncated {
            declared: 5,
            received: 3
        }
    ));
    assert_eq!(
        error.to_string(),
        "request body truncated: 5 bytes declared, the source ended after 3"
    );
}

#[test]
fn read_to_bytes_refuses_a_declared_length_over_the_limit_without_reading() {
    let source = ScriptedSource::whole_reads(b"0123456789");
    let mut input = Input::new(source.clone(), Some(10));

    let error = input.read_to_bytes(9).unwrap_err();

    assert!(matches!(error, InputError::TooLarge { limit: 9 }));
    assert_eq!(
        error.to_string(),
        "request body exceeds the limit of 9 bytes"
    );
    assert_eq!(source.log().reads, 0);
    assert_eq!(input.bytes_read(), 0);
}

#[test]
fn read_to_bytes_refuses_a_chunked_body_over_the_limit() {
    let mut input = Input::new(&b"0123456789"[..], None);
    assert!(matches!(
        input.read_to_bytes(9),
        Err(InputError::TooLarge { limit: 9 })
    ));
}

#[test]
fn read_to_bytes_accepts_a_body_of_exactly_the_limit() {
    let mut chunked = Input::new(
        ScriptedSource::new(b"0123456789", vec![SourceStep::Short(3)]),
        None,
    );
    assert_eq!(chunked.read_to_bytes(10).unwrap(), "0123456789");
    assert!(chunked.is_finished());

    let mut sized = Input::new(&b"0123456789"[..], Some(10));
    assert_eq!(sized.read_to_bytes(10).unwrap(), "0123456789");
    assert!(sized.is_finished());
}

#[test]
fn read_to_bytes_returns_the_rest_after_partial_reads() {
    let mut input = Input::new(&b"header:body"[..], Some(11));
    let mut header = Vec::new();
    input.read_until(b':', &mut header).unwrap();

    // Only the rest counts against the limit.
    assert_eq!(input.read_to_bytes(4).unwrap(), "body");
    assert_eq!(input.bytes_read(), 11);
}

#[test]
fn read_to_bytes_retries_interruptions() {
    let source = ScriptedSource::new(
        b"abcdef",
        vec![SourceStep::Interrupted, SourceStep::Short(2)],
    );
    let mut input = Input::new(source, None);
    assert_eq!(input.read_to_bytes(100).unwrap(), "abcdef");
}

#[test]
fn chunked_framing_reads_to_the_source_eof() {
    let source = ScriptedSource::new(b"de-chunked body", vec![SourceStep::Short(4)]);
    let mut input = Input::new(source.clone(), None);

    assert_eq!(input.content_length(), None);
    let mut chunks = Vec::new();
    loop {
        let chunk = input.read_chunk(100).unwrap();
        if chunk.is_empty() {
            break;
        }
        assert!(!input.is_finished() || input.bytes_read() == 15);
        chunks.push(chunk);
    }

    assert_eq!(chunks, ["de-c", "hunk", "ed b", "ody"]);
    assert!(input.is_finished());
    let reads = source.log().reads;
    assert_eof_forever(&mut input);
    assert_eq!(source.log().reads, reads);
}

#[test]
fn chunked_framing_finishes_only_after_seeing_eof() {
    let mut input = Input::new(&b"abc"[..], None);
    input.read_exact(&mut [0; 3]).unwrap();
    assert!(!input.is_finished());
    assert_eq!(input.read(&mut [0; 3]).unwrap(), 0);
    assert!(input.is_finished());
}

#[test]
fn from_bytes_serves_without_copying() {
    let body = Bytes::from(vec![b'x'; 100]);
    let start = body.as_ptr();

    let mut input = Input::from_bytes(body.clone());
    assert_eq!(input.content_length(), Some(100));
    let first = input.read_chunk(30).unwrap();
    let rest = input.read_to_bytes(1000).unwrap();

    assert_eq!(first.as_ptr(), start);
    assert_eq!(first.len(), 30);
    assert_eq!(rest.as_ptr(), start.wrapping_add(30));
    assert_eq!(rest.len(), 70);
    assert_eq!(input.bytes_read(), 100);
    assert_eof_forever(&mut input);
}

#[test]
fn from_bytes_supports_buffered_reads() {
    let mut input = Input::from_bytes("one\ntwo\n");
    let lines: Vec<String> = input.by_ref().lines().map(Result::unwrap).collect();
    assert_eq!(lines, ["one", "two"]);
    assert!(input.is_finished());
}

#[test]
fn from_bytes_refuses_more_than_the_limit() {
    let mut input = Input::from_bytes("too long");
    assert!(matches!(
        input.read_to_bytes(3),
        Err(InputError::TooLarge { limit: 3 })
    ));
    assert_eq!(input.read_to_bytes(8).unwrap(), "too long");
}

#[test]
fn empty_input_has_length_zero_and_is_finished() {
    let mut input = Input::empty();
    assert_eq!(input.content_length(), Some(0));
    assert!(input.is_finished());
    assert_eof_forever(&mut input);
}

#[test]
fn read_line_limited_stops_at_newline_limit_or_end() {
    let mut input = Input::new(&b"first line\nsecond\nlast"[..], None);
    let mut line = Vec::new();

    assert_eq!(input.read_line_limited(&mut line, 5).unwrap(), 5);
    assert_eq!(line, b"first");
    line.clear();
    assert_eq!(input.read_line_limited(&mut line, 100).unwrap(), 6);
    assert_eq!(line, b" line\n");
    line.clear();
    assert_eq!(input.read_line_limited(&mut line, 0).unwrap(), 0);
    assert_eq!(input.read_line_limited(&mut line, 7).unwrap(), 7);
    assert_eq!(line, b"second\n");
    line.clear();
    assert_eq!(input.read_line_limited(&mut line, usize::MAX).unwrap(), 4);
    assert_eq!(line, b"last");
    assert_eq!(input.read_line_limited(&mut line, 10).unwrap(), 0);
    assert!(input.is_finished());
}

#[test]
fn read_line_limited_spans_buffer_refills() {
    let source = ScriptedSource::new(
        b"a line longer than each read\n",
        vec![SourceStep::Short(3)],
    );
    let mut input = Input::new(source, Some(29));
    let mut line = Vec::new();
    assert_eq!(input.read_line_limited(&mut line, 1000).unwrap(), 29);
    assert_eq!(line, b"a line longer than each read\n");
}

#[test]
fn bytes_read_counts_only_what_the_application_took() {
    let mut input = Input::new(&b"0123456789"[..], Some(10));
    assert_eq!(input.bytes_read(), 0);

    assert_eq!(input.fill_buf().unwrap(), b"0123456789");
    assert_eq!(input.bytes_read(), 0);
    input.consume(4);
    assert_eq!(input.bytes_read(), 4);
    assert!(!input.is_finished());

    assert_eq!(input.read_chunk(3).unwrap(), "456");
    assert_eq!(input.bytes_read(), 7);
    input.read_exact(&mut [0; 3]).unwrap();
    assert_eq!(input.bytes_read(), 10);
    assert!(input.is_finished());
}

#[test]
fn consume_beyond_the_buffer_is_clamped() {
    let mut input = Input::new(&b"abc"[..], Some(3));
    input.fill_buf().unwrap();
    input.consume(100);
    assert_eq!(input.bytes_read(), 3);
    assert!(input.is_finished());
}

#[test]
fn source_errors_pass_through_and_are_not_sticky() {
    struct FlakySource {
        failed: bool,
    }
    impl Read for FlakySource {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.failed {
                self.failed = true;
                return Err(io::Error::new(ErrorKind::TimedOut, "slow client"));
            }
            buf[..2].copy_from_slice(b"ok");
            Ok(2)
        }
    }
    let mut input = Input::new(FlakySource { failed: false }, Some(2));

    let error = input.read(&mut [0; 8]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TimedOut);
    assert!(InputError::from_io(&error).is_none());

    assert_eq!(input.read_to_bytes(2).unwrap(), "ok");
}

#[test]
fn a_source_error_becomes_input_error_io() {
    struct BrokenSource;
    impl Read for BrokenSource {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(ErrorKind::ConnectionReset, "peer reset"))
        }
    }
    let mut input = Input::new(BrokenSource, None);
    let error = input.read_to_bytes(100).unwrap_err();
    assert!(matches!(&error, InputError::Io(io) if io.kind() == ErrorKind::ConnectionReset));
    assert_eq!(
        error.to_string(),
        "reading the request body failed: peer reset"
    );
}

#[test]
fn response_finished_from_the_source_reaches_the_application_typed() {
    struct FinishedSource;
    impl Read for FinishedSource {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(InputError::ResponseFinished.into())
        }
    }
    let mut input = Input::new(FinishedSource, Some(10));

    let error = input.read(&mut [0; 4]).unwrap_err();
    assert!(matches!(
        InputError::from_io(&error),
        Some(InputError::ResponseFinished)
    ));
    assert!(matches!(
        input.read_to_bytes(100),
        Err(InputError::ResponseFinished)
    ));
}

#[test]
fn input_error_converts_to_and_from_io_error_without_nesting() {
    let io_error = io::Error::from(InputError::Truncated {
        declared: 9,
        received: 4,
    });
    assert_eq!(io_error.kind(), ErrorKind::UnexpectedEof);
    assert!(matches!(
        InputError::from(io_error),
        InputError::Truncated {
            declared: 9,
            received: 4
        }
    ));

    let io_error = io::Error::from(InputError::TooLarge { limit: 3 });
    assert!(matches!(
        InputError::from(io_error),
        InputError::TooLarge { limit: 3 }
    ));

    let plain = io::Error::new(ErrorKind::BrokenPipe, "gone");
    let wrapped = InputError::from(plain);
    assert!(matches!(&wrapped, InputError::Io(inner) if inner.kind() == ErrorKind::BrokenPipe));
    let back = io::Error::from(wrapped);
    assert_eq!(back.kind(), ErrorKind::BrokenPipe);
    assert_eq!(back.to_string(), "gone");

    assert!(InputError::from_io(&io::Error::from(ErrorKind::Other)).is_none());
}

#[test]
fn debug_does_not_dump_the_source() {
    let mut input = Input::new(&b"secret-token-in-the-body"[..], Some(24));
    input.fill_buf().unwrap();
    let debug = format!("{input:?}");
    assert!(debug.starts_with("Input"), "{debug}");
    assert!(!debug.contains("secret"), "{debug}");
    assert!(debug.contains("24"), "{debug}");
}

#[test]
fn input_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Input>();
    assert_send::<InputError>();
}

// ---------------------------------------------------------------------------
// Properties.

fn source_step() -> impl Strategy<Value = SourceStep> {
    prop_oneof![
        4 => (1..16usize).prop_map(SourceStep::Short),
        2 => (16..20_000usize).prop_map(SourceStep::Short),
        1 => Just(SourceStep::Interrupted),
    ]
}

/// How the application reads in the property tests.
#[derive(Debug, Clone, Copy)]
enum AppRead {
    Read(usize),
    Chunk(usize),
    FillAndConsume(usize),
    LineLimited(usize),
}

fn app_read() -> impl Strategy<Value = AppRead> {
    let size = prop_oneof![1..32usize, 32..20_000usize];
    prop_oneof![
        size.clone().prop_map(AppRead::Read),
        size.clone().prop_map(AppRead::Chunk),
        size.clone().prop_map(AppRead::FillAndConsume),
        size.prop_map(AppRead::LineLimited),
    ]
}

/// One application read; `Ok(None)` at the end of the body.
fn perform(input: &mut Input, step: AppRead) -> io::Result<Option<Vec<u8>>> {
    let piece = match step {
        AppRead::Read(size) => {
            let mut buf = vec![0; size];
            let count = input.read(&mut buf)?;
            buf.truncate(count);
            buf
        }
        AppRead::Chunk(size) => input.read_chunk(size)?.to_vec(),
        AppRead::FillAndConsume(size) => {
            let available = input.fill_buf()?;
            let piece = available[..size.min(available.len())].to_vec();
            input.consume(piece.len());
            piece
        }
        AppRead::LineLimited(limit) => {
            let mut line = Vec::new();
            input.read_line_limited(&mut line, limit)?;
            line
        }
    };
    Ok((!piece.is_empty()).then_some(piece))
}

fn body_and_declared_length() -> impl Strategy<Value = (Vec<u8>, usize)> {
    prop::collection::vec(any::<u8>(), 0..30_000).prop_flat_map(|body| {
        let len = body.len();
        (Just(body), 0..=len)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn yields_exactly_the_declared_prefix_and_never_requests_beyond_it(
        (body, declared) in body_and_declared_length(),
        extra in prop::collection::vec(any::<u8>(), 0..64),
        schedule in prop::collection::vec(source_step(), 1..12),
        app_reads in prop::collection::vec(app_read(), 1..8),
    ) {
        let mut connection = body.clone();
        connection.extend_from_slice(&extra);
        let source = ScriptedSource::new(&connection, schedule);
        let mut input = Input::new(source.clone(), Some(declared as u64));

        let mut received = Vec::new();
        let mut step = 0;
        loop {
            match perform(&mut input, app_reads[step % app_reads.len()]) {
                Ok(Some(piece)) => received.extend_from_slice(&piece),
                Ok(None) => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(TestCaseError::fail(format!("read failed: {error}"))),
            }
            step += 1;
        }

        prop_assert_eq!(&received[..], &body[..declared]);
        prop_assert_eq!(input.bytes_read(), declared as u64);
        prop_assert!(input.is_finished());
        let log = source.log();
        prop_assert!(log.furthest_requested <= declared,
            "requested up to byte {} of a {}-byte body", log.furthest_requested, declared);
        prop_assert_eq!(&log.data[log.position..], &connection[declared..]);
    }

    #[test]
    fn chunked_framing_yields_the_whole_source(
        body in prop::collection::vec(any::<u8>(), 0..20_000),
        schedule in prop::collection::vec(source_step(), 1..12),
        app_reads in prop::collection::vec(app_read(), 1..8),
    ) {
        let mut input = Input::new(ScriptedSource::new(&body, schedule), None);
        let mut received = Vec::new();
        let mut step = 0;
        loop {
            match perform(&mut input, app_reads[step % app_reads.len()]) {
                Ok(Some(piece)) => received.extend_from_slice(&piece),
                Ok(None) => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(TestCaseError::fail(format!("read failed: {error}"))),
            }
            step += 1;
        }
        prop_assert_eq!(received, body);
        prop_assert!(input.is_finished());
    }

    #[test]
    fn truncated_sources_report_what_was_received(
        (body, received_len) in body_and_declared_length(),
        missing in 1..1000u64,
        schedule in prop::collection::vec(source_step(), 1..12),
    ) {
        let declared = received_len as u64 + missing;
        let mut input = Input::new(ScriptedSource::new(&body[..received_len], schedule), Some(declared));
        match input.read_to_bytes(usize::MAX) {
            Err(InputError::Truncated { declared: d, received: r }) => {
                prop_assert_eq!(d, declared);
                prop_assert_eq!(r, received_len as u64);
            }
            other => return Err(TestCaseError::fail(format!("expected truncation, got {other:?}"))),
        }
    }
}

/// How line-oriented reads are framed in the line property.
fn framed_input(body: &[u8], declared: bool, schedule: Vec<SourceStep>) -> Input {
    let mut connection = body.to_vec();
    if declared {
        // Bytes of a pipelined next request must never show up in a line.
        connection.extend_from_slice(b"NEXT\n");
    }
    let source = ScriptedSource::new(&connection, schedule);
    Input::new(source, declared.then_some(body.len() as u64))
}

fn line_body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(&b"ab\n\xff"[..]), 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn line_reads_agree_with_splitting_after_each_newline(
        body in line_body(),
        declared in any::<bool>(),
        schedule in prop::collection::vec(source_step(), 1..8),
        use_read_line in prop::collection::vec(any::<bool>(), 1..8),
    ) {
        // `read_line` needs UTF-8; the 0xFF bytes go through `read_until`.
        let text_body: Vec<u8> = body.iter().map(|&byte| if byte == 0xFF { b'c' } else { byte }).collect();
        let expected: Vec<&[u8]> = text_body.split_inclusive(|&byte| byte == b'\n').collect();
        let mut input = framed_input(&text_body, declared, schedule.clone());
        let mut lines = Vec::new();
        let mut index = 0;
        loop {
            let mut line = Vec::new();
            let result = if use_read_line[index % use_read_line.len()] {
                let mut text = String::new();
                let result = input.read_line(&mut text);
                line = text.into_bytes();
                result
            } else {
                input.read_until(b'\n', &mut line)
            };
            index += 1;
            match result {
                Ok(0) => break,
                Ok(count) => {
                    prop_assert_eq!(count, line.len());
                    lines.push(line);
                }
                Err(error) => return Err(TestCaseError::fail(format!("read failed: {error}"))),
            }
        }
        prop_assert_eq!(lines, expected);

        let expected: Vec<&[u8]> = body.split_inclusive(|&byte| byte == b'\n').collect();
        let mut input = framed_input(&body, declared, schedule);
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => lines.push(line),
                Err(error) => return Err(TestCaseError::fail(format!("read failed: {error}"))),
            }
        }
        prop_assert_eq!(lines, expected);
    }

    #[test]
    fn limited_line_reads_agree_with_a_reference_split(
        body in line_body(),
        declared in any::<bool>(),
        schedule in prop::collection::vec(source_step(), 1..8),
        limits in prop::collection::vec(0..12usize, 0..8),
        positive_limit in 1..12usize,
    ) {
        // At least one positive limit, or the reads could never reach the end.
        let limits: Vec<usize> = limits.into_iter().chain([positive_limit]).collect();
        let mut input = framed_input(&body, declared, schedule);
        let mut position = 0;
        let mut call = 0;
        loop {
            let limit = limits[call % limits.len()];
            call += 1;
            // Reference: up to `limit` bytes, cut after the first newline.
            let window = &body[position..(position + limit).min(body.len())];
            let expected = match window.iter().position(|&byte| byte == b'\n') {
                Some(newline) => &window[..=newline],
                None => window,
            };

            let mut line = Vec::new();
            let count = input.read_line_limited(&mut line, limit)
                .map_err(|error| TestCaseError::fail(format!("read failed: {error}")))?;

            prop_assert_eq!(count, line.len());
            prop_assert_eq!(&line[..], expected);
            position += count;
            if position == body.len() && limit > 0 && count == 0 {
                break;
            }
            // A run of zero limits must not be mistaken for the end.
            prop_assert!(call < 10 * (body.len() + 2) * limits.len(), "no progress");
        }
        prop_assert!(input.is_finished());
    }
}

/// Found by the `input` fuzz target (`fuzz/fuzz_targets/input.rs`): bytes
/// `read_to_bytes` read before the body turned out truncated are consumed,
/// counted and not returned, and the error stays.
#[test]
fn fuzz_read_to_bytes_consumes_what_it_read_before_a_truncation() {
    let mut input = Input::new(&[255u8][..], Some(54_306));
    assert!(matches!(
        input.read_to_bytes(4_342_338),
        Err(InputError::Truncated {
            declared: 54_306,
            received: 1
        })
    ));
    assert_eq!(input.bytes_read(), 1);
    assert!(matches!(
        input.read_to_bytes(usize::MAX),
        Err(InputError::Truncated { .. })
    ));
    assert_eq!(input.bytes_read(), 1);
}
