//! The non-blocking face of `Input` and its agreement with the blocking
//! face: one object, one buffer, one boundary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use rgi::{AsyncSource, Input, InputError};

/// A source fed by the test (or another thread), like a socket.
#[derive(Clone, Default)]
struct Feed(Arc<Mutex<FeedState>>);

#[derive(Default)]
struct FeedState {
    chunks: VecDeque<Bytes>,
    closed: bool,
    waker: Option<Waker>,
    largest_request: usize,
}

impl Feed {
    fn push(&self, chunk: &'static [u8]) {
        let mut state = self.0.lock().unwrap();
        state.chunks.push_back(Bytes::from_static(chunk));
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    fn close(&self) {
        let mut state = self.0.lock().unwrap();
        state.closed = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

impl AsyncSource for Feed {
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let mut state = self.0.lock().unwrap();
        state.largest_request = state.largest_request.max(max);
        // Deliberately ignores `max`: the input must cope with a source that
        // returns more than it asked for.
        match state.chunks.pop_front() {
            Some(chunk) => Poll::Ready(Ok(chunk)),
            None if state.closed => Poll::Ready(Ok(Bytes::new())),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn noop_cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

fn poll(input: &mut Input, max: usize) -> Poll<io::Result<Bytes>> {
    input.poll_chunk(&mut noop_cx(), max)
}

#[test]
fn the_non_blocking_face_refuses_a_blocking_source_with_a_typed_error() {
    let mut input = Input::new(&b"body"[..], Some(4));
    assert!(!input.is_async());
    let Poll::Ready(Err(error)) = poll(&mut input, 10) else {
        panic!("expected an error")
    };
    assert!(matches!(
        InputError::from_io(&error),
        Some(InputError::WouldBlockThread)
    ));
    assert_eq!(error.kind(), io::ErrorKind::Unsupported);
    // Nothing was consumed: the blocking face still has the whole body.
    let mut body = String::new();
    input.read_to_string(&mut body).unwrap();
    assert_eq!(body, "body");
}

#[test]
fn a_zero_sized_poll_is_an_error_not_an_end_of_body() {
    let mut input = Input::from_bytes(&b"x"[..]);
    let Poll::Ready(Err(error)) = poll(&mut input, 0) else {
        panic!("expected an error")
    };
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(matches!(poll(&mut input, 1), Poll::Ready(Ok(chunk)) if chunk == "x"));
}

#[test]
fn pending_until_the_source_has_data_then_ready_and_bounded() {
    let feed = Feed::default();
    let mut input = Input::from_async(feed.clone(), Some(5));
    assert!(input.is_async());
    assert!(poll(&mut input, 64).is_pending());
    feed.push(b"abc");
    assert!(matches!(poll(&mut input, 64), Poll::Ready(Ok(chunk)) if chunk == "abc"));
    feed.push(b"defNEXT-REQUEST");
    assert!(matches!(poll(&mut input, 64), Poll::Ready(Ok(chunk)) if chunk == "de"));
    assert!(input.is_finished());
    for _ in 0..3 {
        assert!(matches!(poll(&mut input, 64), Poll::Ready(Ok(chunk)) if chunk.is_empty()));
    }
    assert_eq!(input.bytes_read(), 5);
    assert!(
        feed.0.lock().unwrap().largest_request <= 5,
        "asked the source past the boundary"
    );
}

#[test]
fn a_source_that_over_delivers_keeps_the_excess_for_the_next_read() {
    let feed = Feed::default();
    feed.push(b"0123456789");
    let mut input = Input::from_async(feed.clone(), None);
    assert!(matches!(poll(&mut input, 4), Poll::Ready(Ok(chunk)) if chunk == "0123"));
    assert!(matches!(poll(&mut input, 4), Poll::Ready(Ok(chunk)) if chunk == "4567"));
    feed.close();
    let mut rest = Vec::new();
    input.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"89");
}

#[test]
fn both_faces_share_one_buffer_so_no_byte_is_lost_or_repeated() {
    let feed = Feed::default();
    feed.push(b"first line\nsecond part");
    feed.close();
    let mut input = Input::from_async(feed, None);
    let mut line = String::new();
    input.read_line(&mut line).unwrap(); // buffers beyond the line
    assert_eq!(line, "first line\n");
    assert!(matches!(poll(&mut input, 100), Poll::Ready(Ok(chunk)) if chunk == "second part"));
    assert!(matches!(poll(&mut input, 100), Poll::Ready(Ok(chunk)) if chunk.is_empty()));
    assert_eq!(input.bytes_read(), 22);
}

#[test]
fn the_blocking_face_parks_until_another_thread_delivers() {
    let feed = Feed::default();
    let mut input = Input::from_async(feed.clone(), Some(6));
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        feed.push(b"abc");
        std::thread::sleep(Duration::from_millis(20));
        feed.push(b"def");
    });
    let mut body = Vec::new();
    input.read_to_end(&mut body).unwrap();
    assert_eq!(body, b"abcdef");
    producer.join().unwrap();
}

#[test]
fn truncation_is_reported_on_the_non_blocking_face_and_is_sticky() {
    let feed = Feed::default();
    feed.push(b"abc");
    feed.close();
    let mut input = Input::from_async(feed, Some(10));
    assert!(matches!(poll(&mut input, 64), Poll::Ready(Ok(chunk)) if chunk == "abc"));
    for _ in 0..2 {
        let Poll::Ready(Err(error)) = poll(&mut input, 64) else {
            panic!("expected truncation")
        };
        assert!(matches!(
            InputError::from_io(&error),
            Some(InputError::Truncated {
                declared: 10,
                received: 3
            })
        ));
    }
    assert!(
        input.read(&mut [0; 4]).is_err(),
        "the blocking face sees the same error"
    );
}

/// A ready source that hands out its bytes in a scheduled pattern.
struct Scheduled {
    data: Bytes,
    sizes: Vec<usize>,
    step: usize,
}

impl AsyncSource for Scheduled {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let size = self.sizes[self.step % self.sizes.len()];
        self.step += 1;
        let take = size.min(max).min(self.data.len());
        Poll::Ready(Ok(self.data.split_to(take)))
    }
}

proptest! {
    /// Any chunking of the source and any mix of the two faces yields
    /// exactly the declared prefix.
    #[test]
    fn mixed_faces_yield_exactly_the_declared_prefix(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        extra in proptest::collection::vec(any::<u8>(), 0..64),
        cut in any::<proptest::sample::Index>(),
        sizes in proptest::collection::vec(1usize..40, 1..8),
        plan in proptest::collection::vec((any::<bool>(), 1usize..50), 1..64),
    ) {
        let declared = cut.index(body.len() + 1);
        let mut data = body.clone();
        data.extend_from_slice(&extra);
        let source = Scheduled { data: Bytes::from(data), sizes, step: 0 };
        let mut input = Input::from_async(source, Some(declared as u64));
        let mut out = Vec::new();
        for (blocking, size) in plan.iter().cycle().take(2_000) {
            let got = if *blocking {
                let mut buf = vec![0; *size];
                let n = input.read(&mut buf).unwrap();
                buf.truncate(n);
                buf
            } else {
                match poll(&mut input, *size) {
                    Poll::Ready(Ok(chunk)) => chunk.to_vec(),
                    other => panic!("unexpected {other:?}"),
                }
            };
            if got.is_empty() {
                break;
            }
            out.extend_from_slice(&got);
        }
        prop_assert_eq!(&out[..], &body[..declared]);
    }
}

/// D10: `usize::MAX` is the natural way to say "no limit", and after a
/// buffered read it used to overflow the buffer index and panic.
#[test]
fn d10_a_poll_for_up_to_usize_max_after_a_buffered_read_returns_the_rest() {
    // A blocking source: the buffered byte is served, then the typed refusal.
    let mut input = Input::new(&b"ab"[..], Some(2));
    assert_eq!(input.fill_buf().unwrap(), b"ab");
    input.consume(1);
    assert!(matches!(poll(&mut input, usize::MAX), Poll::Ready(Ok(chunk)) if chunk == "b"));
    assert!(input.is_finished());
    assert!(matches!(poll(&mut input, usize::MAX), Poll::Ready(Ok(chunk)) if chunk.is_empty()));
    assert_eq!(input.bytes_read(), 2);

    // An asynchronous source: the buffer first, then the source, unbounded
    // by the caller but still bounded by the declared length.
    let feed = Feed::default();
    feed.push(b"xyz");
    let mut input = Input::from_async(feed.clone(), Some(5));
    let mut one = [0; 1];
    input.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"x");
    assert!(matches!(poll(&mut input, usize::MAX), Poll::Ready(Ok(chunk)) if chunk == "yz"));
    feed.push(b"uvNEXT");
    assert!(matches!(poll(&mut input, usize::MAX), Poll::Ready(Ok(chunk)) if chunk == "uv"));
    assert!(matches!(poll(&mut input, usize::MAX), Poll::Ready(Ok(chunk)) if chunk.is_empty()));
    assert!(feed.0.lock().unwrap().largest_request <= 5);

    // Without a declared length, and from a pre-read body.
    let feed = Feed::default();
    feed.push(b"12345");
    feed.close();
    let mut input = Input::from_async(feed, None);
    let mut line = String::new();
    input.read_line(&mut line).unwrap();
    assert_eq!(line, "12345");
    let mut input = Input::from_bytes(&b"pq"[..]);
    assert_eq!(input.read_chunk(1).unwrap(), "p");
    assert!(matches!(poll(&mut input, usize::MAX), Poll::Ready(Ok(chunk)) if chunk == "q"));
}

/// D10, audit: every size the caller or the peer picks is taken at its
/// extreme without overflow.
#[test]
fn d10_extreme_sizes_and_lengths_never_overflow() {
    let mut input = Input::new(&b"abc"[..], Some(u64::MAX));
    assert_eq!(input.read_chunk(usize::MAX).unwrap(), "abc");
    assert!(matches!(
        input.read_to_bytes(usize::MAX),
        Err(InputError::Truncated {
            declared: u64::MAX,
            received: 3
        })
    ));

    let mut input = Input::new(&b"abcdef"[..], Some(u64::MAX));
    input.fill_buf().unwrap();
    input.consume(1);
    assert!(matches!(
        input.read_to_bytes(usize::MAX),
        Err(InputError::Truncated {
            declared: u64::MAX,
            ..
        })
    ));

    let mut input = Input::new(&b"abcdef"[..], Some(u64::MAX));
    input.fill_buf().unwrap();
    input.consume(usize::MAX);
    assert_eq!(input.bytes_read(), 6);
    let mut line = Vec::new();
    let mut input = Input::new(&b"line\nrest"[..], None);
    assert_eq!(input.read_line_limited(&mut line, usize::MAX).unwrap(), 5);
    assert_eq!(input.read_to_bytes(usize::MAX).unwrap(), "rest");
}

/// D10 as the `input` fuzz target found it again with the fix reverted
/// (`fuzz/fuzz_targets/input.rs`): an asynchronous source, a line read that
/// leaves bytes buffered, then a poll for up to `usize::MAX`.
#[test]
fn d10_fuzz_crash_line_read_then_unbounded_poll() {
    /// Hands out everything at once, then ends.
    struct Once(Bytes);
    impl AsyncSource for Once {
        fn poll_chunk(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: usize,
        ) -> Poll<io::Result<Bytes>> {
            Poll::Ready(Ok(std::mem::take(&mut self.0)))
        }
    }
    let data = [7, 255, 255, 255, 95, 10, 1];
    let mut input = Input::from_async(Once(Bytes::copy_from_slice(&data)), None);
    let mut line = Vec::new();
    input.read_until(b'\n', &mut line).unwrap();
    assert_eq!(line, data[..6]);
    assert!(matches!(poll(&mut input, usize::MAX), Poll::Ready(Ok(chunk)) if chunk[..] == [1]));
    assert_eq!(input.read(&mut []).unwrap(), 0);
    assert!(matches!(poll(&mut input, usize::MAX), Poll::Ready(Ok(chunk)) if chunk.is_empty()));
    assert_eq!(input.bytes_read(), 7);
}
