//! Every read method of `Input`, mixed in any order with any sizes
//! (`usize::MAX` included), over a blocking source, an asynchronous source
//! that over-delivers, stalls and chunks arbitrarily, or a pre-read body.
//! Nothing may panic, and what the application receives is always a prefix
//! of the body, never a byte past the declared length.

#![no_main]

use std::io::{self, BufRead, Read};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rgi::{AsyncSource, Input, InputError};

#[derive(Debug, Arbitrary)]
enum Kind {
    Blocking,
    Async,
    PreRead,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Read(u16),
    ReadUntilNewline,
    ReadLineLimited(Size),
    FillAndConsume(Size),
    ReadToBytes(Size),
    ReadChunk(Size),
    PollChunk(Size),
    ReadToEnd,
}

/// A size an application passes: small, or at the top of the range, where
/// "no limit" (`usize::MAX`) and sums near it live. Uniform `usize`s almost
/// never land there.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Size {
    Small(u16),
    NearMax(u16),
    Max,
}

impl Size {
    fn get(self) -> usize {
        match self {
            Size::Small(size) => usize::from(size),
            Size::NearMax(below) => usize::MAX - usize::from(below),
            Size::Max => usize::MAX,
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Case {
    kind: Kind,
    /// What the connection holds: the body and whatever follows it.
    data: Vec<u8>,
    /// The declared length, if any (may exceed the data: a truncated body).
    declared: Option<u16>,
    /// How many bytes each source read hands out (0 means "not ready" for
    /// the asynchronous source).
    schedule: Vec<u8>,
    ops: Vec<Op>,
}

/// A blocking source that returns reads of scheduled sizes.
struct Trickle {
    data: Bytes,
    schedule: Vec<u8>,
    step: usize,
    /// A "not ready" is never followed by another, so a parked reader
    /// always progresses.
    was_pending: bool,
}

impl Trickle {
    fn next_size(&mut self) -> usize {
        let size = self
            .schedule
            .get(self.step % self.schedule.len().max(1))
            .copied()
            .unwrap_or(255);
        self.step += 1;
        usize::from(size)
    }
}

impl Read for Trickle {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let size = self.next_size().max(1).min(out.len()).min(self.data.len());
        out[..size].copy_from_slice(&self.data.split_to(size));
        Ok(size)
    }
}

impl AsyncSource for Trickle {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let size = self.next_size();
        let was_pending = std::mem::replace(&mut self.was_pending, false);
        if size == 0 && !self.data.is_empty() && !was_pending {
            self.was_pending = true;
            // Not ready; wake at once so a parked reader polls again.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // Deliberately ignores `max`: the input must keep the excess.
        let size = size.max(1).min(self.data.len());
        Poll::Ready(Ok(self.data.split_to(size)))
    }
}

fuzz_target!(|case: Case| {
    let declared = case.declared.map(u64::from);
    let source = Trickle {
        data: Bytes::from(case.data.clone()),
        schedule: case.schedule,
        step: 0,
        was_pending: false,
    };
    let body_len = case.declared.map_or(case.data.len(), |length| {
        case.data.len().min(usize::from(length))
    });
    let body = &case.data[..body_len];
    let mut input = match case.kind {
        Kind::Blocking => Input::new(source, declared),
        Kind::Async => Input::from_async(source, declared),
        Kind::PreRead => Input::from_bytes(body.to_vec()),
    };

    let mut received = Vec::new();
    // Bytes consumed but not returned (read_to_bytes failing part way)
    // make the check a bound only.
    let mut lost = false;
    let mut cx = Context::from_waker(Waker::noop());
    for op in case.ops {
        let result: io::Result<()> = match op {
            Op::Read(size) => {
                let mut buf = vec![0; usize::from(size)];
                input
                    .read(&mut buf)
                    .map(|count| received.extend_from_slice(&buf[..count]))
            }
            Op::ReadUntilNewline => input.read_until(b'\n', &mut received).map(drop),
            Op::ReadLineLimited(limit) => input
                .read_line_limited(&mut received, limit.get())
                .map(drop),
            Op::FillAndConsume(amount) => match input.fill_buf() {
                Ok(available) => {
                    let taken = amount.get().min(available.len());
                    received.extend_from_slice(&available[..taken]);
                    // Consuming more than is buffered is clamped; ask for it.
                    input.consume(amount.get());
                    Ok(())
                }
                Err(error) => Err(error),
            },
            Op::ReadToBytes(limit) => match input.read_to_bytes(limit.get()) {
                Ok(rest) => {
                    received.extend_from_slice(&rest);
                    Ok(())
                }
                Err(error) => {
                    // What it read before failing is consumed, not returned.
                    lost |= input.bytes_read() != received.len() as u64;
                    match error {
                        InputError::TooLarge { .. } => Ok(()),
                        other => Err(other.into()),
                    }
                }
            },
            Op::ReadChunk(max) => input
                .read_chunk(max.get())
                .map(|chunk| received.extend_from_slice(&chunk)),
            Op::PollChunk(max) => match input.poll_chunk(&mut cx, max.get()) {
                Poll::Ready(Ok(chunk)) => {
                    received.extend_from_slice(&chunk);
                    Ok(())
                }
                Poll::Ready(Err(error)) => Err(error),
                Poll::Pending => Ok(()),
            },
            Op::ReadToEnd => input.read_to_end(&mut received).map(drop),
        };
        if let Err(error) = result {
            // The only errors: a truncated body, a poll of a blocking
            // source, a zero-sized poll.
            let typed = InputError::from_io(&error);
            assert!(
                matches!(
                    typed,
                    Some(InputError::Truncated { .. } | InputError::WouldBlockThread)
                ) || error.kind() == io::ErrorKind::InvalidInput,
                "unexpected error {error:?}"
            );
        }
        assert!(received.len() as u64 <= input.bytes_read());
        if lost {
            assert!(input.bytes_read() <= body_len as u64);
        } else {
            assert_eq!(received.len() as u64, input.bytes_read());
            assert_eq!(
                &received[..],
                &body[..received.len()],
                "not a prefix of the body"
            );
        }
    }
    if input.is_finished() && !lost {
        assert_eq!(&received[..], body);
    }
});
