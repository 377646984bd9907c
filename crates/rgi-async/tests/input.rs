//! `InputStream`: the request body as a `Stream` (spec/rgi-async.md,
//! [RGIA-INPUT-15]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{self, Cursor, Read};
use std::pin::Pin;

use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_core::Stream;
use rgi::{Input, InputError};
use rgi_async::InputStream;
use support::{CountingWaker, Fed};

fn next(stream: &mut InputStream<'_>, waker: &Waker) -> Poll<Option<io::Result<Bytes>>> {
    Pin::new(stream).poll_next(&mut Context::from_waker(waker))
}

#[test]
fn yields_chunks_of_at_most_max_then_ends_for_good() {
    let mut input = Input::from_bytes(&b"abcdefg"[..]);
    let mut stream = InputStream::new(&mut input).with_max(3);
    assert_eq!(stream.max(), 3);
    let waker = Waker::noop();
    let mut chunks = Vec::new();
    while let Poll::Ready(Some(chunk)) = next(&mut stream, waker) {
        chunks.push(chunk.unwrap());
    }
    assert_eq!(chunks, ["abc", "def", "g"]);
    for _ in 0..3 {
        assert!(matches!(next(&mut stream, waker), Poll::Ready(None)));
    }
    assert!(input.is_finished());
    assert_eq!(input.bytes_read(), 7);
}

#[test]
fn default_max_is_16_kib_and_zero_becomes_one() {
    let mut input = Input::from_bytes(vec![7_u8; 40_000]);
    let mut stream = InputStream::new(&mut input);
    assert_eq!(stream.max(), InputStream::DEFAULT_MAX);
    assert_eq!(InputStream::DEFAULT_MAX, 16 * 1024);
    let first = match next(&mut stream, Waker::noop()) {
        Poll::Ready(Some(Ok(chunk))) => chunk,
        other => panic!("expected a chunk, got {other:?}"),
    };
    assert_eq!(first.len(), 16 * 1024);
    let mut stream = stream.with_max(0);
    assert_eq!(stream.max(), 1);
    assert!(
        matches!(next(&mut stream, Waker::noop()), Poll::Ready(Some(Ok(chunk))) if chunk.len() == 1)
    );
}

#[test]
fn empty_body_ends_at_once() {
    let mut input = Input::empty();
    let mut stream = InputStream::new(&mut input);
    assert!(matches!(
        next(&mut stream, Waker::noop()),
        Poll::Ready(None)
    ));
}

#[test]
fn blocking_source_reports_would_block_thread_without_ending() {
    let mut input = Input::new(Cursor::new(b"blocking".to_vec()), Some(8));
    {
        let mut stream = InputStream::new(&mut input);
        for _ in 0..2 {
            let Poll::Ready(Some(Err(error))) = next(&mut stream, Waker::noop()) else {
                panic!("expected WouldBlockThread");
            };
            assert!(matches!(
                InputError::from_io(&error),
                Some(InputError::WouldBlockThread)
            ));
        }
    }
    // Not sticky: the blocking face still reads the whole body.
    let mut body = String::new();
    input.read_to_string(&mut body).unwrap();
    assert_eq!(body, "blocking");
}

#[test]
fn truncated_body_is_an_error_item() {
    let fed = Fed::default();
    fed.push(&b"abc"[..]);
    fed.end();
    let mut input = Input::from_async(fed, Some(10));
    let mut stream = InputStream::new(&mut input);
    assert!(
        matches!(next(&mut stream, Waker::noop()), Poll::Ready(Some(Ok(chunk))) if chunk == "abc")
    );
    let Poll::Ready(Some(Err(error))) = next(&mut stream, Waker::noop()) else {
        panic!("expected a truncation error");
    };
    assert!(matches!(
        InputError::from_io(&error),
        Some(InputError::Truncated {
            declared: 10,
            received: 3
        })
    ));
}

#[test]
fn pending_until_the_source_is_fed_then_woken() {
    let fed = Fed::default();
    let mut input = Input::from_async(fed.clone(), None);
    let mut stream = InputStream::new(&mut input);
    let (counter, waker) = CountingWaker::new();

    assert!(next(&mut stream, &waker).is_pending());
    assert_eq!(counter.count(), 0);
    fed.push(&b"first"[..]);
    assert_eq!(counter.count(), 1);
    assert!(matches!(next(&mut stream, &waker), Poll::Ready(Some(Ok(chunk))) if chunk == "first"));

    assert!(next(&mut stream, &waker).is_pending());
    fed.end();
    assert_eq!(counter.count(), 2);
    assert!(matches!(next(&mut stream, &waker), Poll::Ready(None)));
    assert!(stream.input().is_finished());
}

#[test]
fn streams_through_a_thread_fed_source_with_block_on() {
    let fed = Fed::default();
    let mut input = Input::from_async(fed.clone(), Some(6));
    let feeder = std::thread::spawn(move || {
        for piece in [&b"ab"[..], b"cd", b"ef"] {
            std::thread::sleep(std::time::Duration::from_millis(5));
            fed.push(piece);
        }
    });
    let mut stream = InputStream::new(&mut input);
    let collected = support::block_on(std::future::poll_fn(|cx| {
        let mut out = Vec::new();
        loop {
            match Pin::new(&mut stream).poll_next(cx) {
                Poll::Ready(Some(chunk)) => out.extend_from_slice(&chunk?),
                Poll::Ready(None) => return Poll::Ready(Ok::<_, io::Error>(out)),
                Poll::Pending if out.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Ok(out)),
            }
        }
    }));
    // Collect whatever is left in further rounds.
    let mut all = collected.unwrap();
    while all.len() < 6 {
        let more = support::block_on(std::future::poll_fn(|cx| {
            Pin::new(&mut stream).poll_next(cx)
        }));
        all.extend_from_slice(&more.unwrap().unwrap());
    }
    feeder.join().unwrap();
    assert_eq!(all, b"abcdef");
    assert!(matches!(
        next(&mut stream, Waker::noop()),
        Poll::Ready(None)
    ));
}
