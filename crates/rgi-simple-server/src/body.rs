//! The request body: the connection's read buffer, the body framing state
//! shared between the application's `Input` and the worker, and the source
//! that `rgi::Input` reads.

use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rgi::{InputError, TrailerSlot};

use crate::chunked::{ChunkDecoder, DecodeError};
use crate::config::Limits;
use crate::head::{FieldBudget, Framing};
use crate::net::{SharedStream, Stream};

/// How much a single socket read asks for.
pub(crate) const READ_SIZE: usize = 8 * 1024;

/// Bytes read from a connection and not consumed yet: the rest of a head,
/// body bytes, or the next pipelined request. Released when empty, so an
/// idle connection holds no buffer.
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    data: Vec<u8>,
    start: usize,
}

impl InBuf {
    pub(crate) fn available(&self) -> &[u8] {
        &self.data[self.start..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.data.len()
    }

    pub(crate) fn consume(&mut self, count: usize) {
        self.start = (self.start + count).min(self.data.len());
        if self.is_empty() {
            self.release();
        }
    }

    /// Drops the storage; called for idle connections.
    pub(crate) fn release(&mut self) {
        self.data = Vec::new();
        self.start = 0;
    }

    /// One read from `stream` appended after the unconsumed bytes; `Ok(0)`
    /// is the peer's end of stream.
    ///
    /// The read goes into the thread's scratch buffer and only the bytes
    /// read are appended: growing `data` by `READ_SIZE` for every read
    /// zeroed 8 KiB and allocated for it even when the read found nothing
    /// (the poller's read after each response usually does) or a 40-byte
    /// request.
    pub(crate) fn fill_from(&mut self, stream: &Stream) -> io::Result<usize> {
        thread_local! {
            static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_SIZE].into_boxed_slice());
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let count = (&*stream).read(&mut scratch[..])?;
            if count > 0 {
                if self.start > 0 {
                    self.data.drain(..self.start);
                    self.start = 0;
                }
                self.data.extend_from_slice(&scratch[..count]);
            }
            Ok(count)
        })
    }
}

/// Where the `100 Continue` stands (`[RGI-INPUT-12]`, `[RGI-INPUT-13]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continue {
    /// The request did not ask for it.
    NotExpected,
    /// Asked for; not sent, and no body byte was requested yet.
    Pending,
    /// Sent, or made moot (the final head went first).
    Done,
}

/// The body's framing as far as it has been read.
#[derive(Debug)]
enum BodyState {
    Length(u64),
    Chunked(ChunkDecoder),
    Complete,
}

/// Serialises writes to the socket between the sink and the interim
/// responses (`100 Continue` from the application's read, `103 Early
/// Hints` from the sink), and records whether a final head went out.
#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    state: Mutex<GateState>,
}

/// What the gate guards.
#[derive(Debug, Default)]
pub(crate) struct GateState {
    /// The final head has gone out (or is queued to, ahead of nothing
    /// else): no interim response may follow it.
    pub(crate) head_sent: bool,
    /// Interim responses of an asynchronous request not yet written: they
    /// go out in order, before any other output of the response.
    interim: Vec<u8>,
    /// The status the server answers with instead of the one the client's
    /// body error carries: 431 for a trailer section over the head's
    /// limits, which reaches the application as a malformed body.
    pub(crate) client_status: Option<http::StatusCode>,
}

impl WriteGate {
    pub(crate) fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl GateState {
    /// Sends an interim response: on a worker's socket, whole, waiting for
    /// room within `timeout`; on an asynchronous request's, behind the
    /// interim bytes still queued, as much as the socket takes now, the
    /// rest queued for [`flush_interim`](Self::flush_interim). Either way
    /// no other write comes between its bytes: every writer holds the gate.
    pub(crate) fn send_interim(
        &mut self,
        stream: &Stream,
        bytes: &[u8],
        nonblocking: bool,
        timeout: Duration,
    ) -> io::Result<()> {
        if !nonblocking {
            return stream.write_all_within(bytes, timeout);
        }
        self.interim.extend_from_slice(bytes);
        self.flush_interim(stream).map(drop)
    }

    /// Writes queued interim bytes without blocking; how many are left.
    pub(crate) fn flush_interim(&mut self, stream: &Stream) -> io::Result<usize> {
        let mut written = 0;
        while written < self.interim.len() {
            match (&*stream).write(&self.interim[written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(count) => written += count,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        self.interim.drain(..written);
        if self.interim.is_empty() {
            self.interim = Vec::new();
        }
        Ok(self.interim.len())
    }
}

/// The read side of one request, shared by its `Input` source and the
/// worker that finishes it.
#[derive(Debug)]
pub(crate) struct ReadSide {
    /// `None` once the response finished: the source may outlive the
    /// request and must not keep the socket open (`[RGI-INPUT-15]`).
    stream: Option<SharedStream>,
    gate: Arc<WriteGate>,
    pub(crate) buf: InBuf,
    body: BodyState,
    pub(crate) expect: Continue,
    /// The client broke the framing, stalled, or went away: the connection
    /// cannot be kept.
    pub(crate) broken: bool,
    /// The peer ended its side of the stream.
    eof: bool,
    timeout: Duration,
    /// The socket is non-blocking (an asynchronous request): a read that
    /// would block is reported as `WouldBlock`, not as a stall.
    pub(crate) nonblocking: bool,
    /// Where a chunked body's trailer fields go, shared with the
    /// request's `Input` (`[RGI-TRAILER-1]`).
    trailers: Option<TrailerSlot>,
}

/// A `ReadSide` behind its lock.
pub(crate) type SharedReadSide = Arc<Mutex<ReadSide>>;

pub(crate) fn lock(side: &SharedReadSide) -> MutexGuard<'_, ReadSide> {
    side.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ReadSide {
    /// The read side of a body framed as `framing`; a chunked body's
    /// trailer section may take what `budget_used` (the head's) leaves of
    /// the limits, and its fields go into `trailers`.
    pub(crate) fn new(
        stream: SharedStream,
        gate: Arc<WriteGate>,
        buf: InBuf,
        (framing, expect_continue, budget_used): (Framing, bool, FieldBudget),
        limits: &Limits,
        trailers: Option<TrailerSlot>,
    ) -> Self {
        let body = match framing {
            Framing::None | Framing::Length(0) => BodyState::Complete,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => {
                BodyState::Chunked(ChunkDecoder::new(limits.max_body, budget_used.left(limits)))
            }
        };
        let expect = if expect_continue && !matches!(body, BodyState::Complete) {
            Continue::Pending
        } else {
            Continue::NotExpected
        };
        Self {
            stream: Some(stream),
            gate,
            buf,
            body,
            expect,
            broken: false,
            eof: false,
            timeout: limits.body_timeout,
            nonblocking: false,
            trailers,
        }
    }

    /// The whole body has been read.
    pub(crate) fn is_complete(&self) -> bool {
        matches!(self.body, BodyState::Complete)
    }

    /// Ends the request: later reads fail with `ResponseFinished`, and the
    /// buffered bytes (the next pipelined request) go back to the
    /// connection.
    pub(crate) fn finish(&mut self) -> InBuf {
        self.stream = None;
        std::mem::take(&mut self.buf)
    }

    /// Reads body bytes into `out`: `Ok(0)` only at the end of the body.
    pub(crate) fn read_body(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let available = self.buf.available();
            let (used, made) = match &mut self.body {
                BodyState::Complete => return Ok(0),
                BodyState::Length(left) => {
                    let take = available
                        .len()
                        .min(out.len())
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    out[..take].copy_from_slice(&available[..take]);
                    *left -= take as u64;
                    if *left == 0 {
                        self.body = BodyState::Complete;
                    }
                    (take, take)
                }
                BodyState::Chunked(decoder) => match decoder.decode(available, out) {
                    Ok((used, made)) => {
                        if decoder.is_done() {
                            // Filled before any read can report the end
                            // (`[RGI-TRAILER-1]`).
                            if let (Some(slot), Some(fields)) =
                                (self.trailers.as_ref(), decoder.take_trailers())
                            {
                                slot.fill(fields);
                            }
                            self.body = BodyState::Complete;
                        }
                        (used, made)
                    }
                    Err(error) => {
                        self.broken = true;
                        return Err(match error {
                            DecodeError::Malformed(reason) => io::Error::new(
                                ErrorKind::InvalidData,
                                InputError::MalformedBody { reason },
                            ),
                            DecodeError::OverLimit(limit) => {
                                io::Error::other(InputError::BodyLimitExceeded { limit })
                            }
                            DecodeError::TrailersTooLarge(reason) => {
                                // The client's fault, like a head over the
                                // limits: 431 rather than the 400 a
                                // malformed body gets.
                                self.gate.lock().client_status =
                                    Some(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
                                io::Error::new(
                                    ErrorKind::InvalidData,
                                    InputError::MalformedBody {
                                        reason: reason.to_owned(),
                                    },
                                )
                            }
                        });
                    }
                },
            };
            self.buf.consume(used);
            if made > 0 || self.is_complete() {
                return Ok(made);
            }
            if !self.fill()? {
                return Ok(0);
            }
        }
    }

    /// Reads more from the socket, sending the `100 Continue` first if one
    /// is owed; false when the socket ended inside a declared length.
    fn fill(&mut self) -> io::Result<bool> {
        let Some(stream) = self.stream.clone() else {
            return Err(io::Error::other(InputError::ResponseFinished));
        };
        if self.expect == Continue::Pending {
            self.expect = Continue::Done;
            let mut gate = self.gate.lock();
            if !gate.head_sent {
                // An asynchronous request's thread must not wait for room:
                // what the socket does not take now is queued, in order
                // with any early hints.
                let sent = gate.send_interim(
                    &stream,
                    b"HTTP/1.1 100 Continue\r\n\r\n",
                    self.nonblocking,
                    self.timeout,
                );
                if let Err(error) = sent {
                    self.broken = true;
                    return Err(error);
                }
            }
        }
        loop {
            let started = Instant::now();
            let error = match self.buf.fill_from(&stream) {
                Ok(0) => {
                    self.broken = true;
                    self.eof = true;
                    return match self.body {
                        // `Input` turns the early end into `Truncated`.
                        BodyState::Length(_) => Ok(false),
                        _ => Err(io::Error::new(
                            ErrorKind::UnexpectedEof,
                            InputError::MalformedBody {
                                reason: "the connection closed inside the chunked body".into(),
                            },
                        )),
                    };
                }
                Ok(_) => return Ok(true),
                Err(error) => error,
            };
            match error.kind() {
                ErrorKind::Interrupted => return Ok(true),
                ErrorKind::WouldBlock if self.nonblocking => return Err(error),
                // A worker's socket is non-blocking: wait for bytes within
                // the stalled-body timeout. On a blocking socket (a switched
                // asynchronous request) the receive timeout has already
                // run, and so has this wait.
                ErrorKind::WouldBlock => match stream.wait(false, started + self.timeout) {
                    Ok(true) => {}
                    Ok(false) => return Err(self.timed_out()),
                    Err(error) => {
                        self.broken = true;
                        return Err(error);
                    }
                },
                ErrorKind::TimedOut => return Err(self.timed_out()),
                _ => {
                    self.broken = true;
                    return Err(error);
                }
            }
        }
    }

    fn timed_out(&mut self) -> io::Error {
        self.broken = true;
        io::Error::new(
            ErrorKind::TimedOut,
            InputError::BodyTimedOut {
                timeout: self.timeout,
            },
        )
    }

    /// A read that reached the socket's end with a declared length left.
    fn at_eof_with_length(&self) -> bool {
        matches!(self.body, BodyState::Length(_)) && self.eof
    }
}

/// The `Read` source behind a request's `rgi::Input`.
#[derive(Debug)]
pub(crate) struct BodySource {
    pub(crate) side: SharedReadSide,
}

impl ReadSide {
    /// One read of the application's: `ResponseFinished` after the
    /// response, `Ok(0)` at the end (or a truncation `Input` reports).
    pub(crate) fn read_for_app(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.stream.is_none() {
            return Err(io::Error::other(InputError::ResponseFinished));
        }
        if self.at_eof_with_length() {
            return Ok(0);
        }
        self.read_body(out)
    }
}

impl Read for BodySource {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        lock(&self.side).read_for_app(out)
    }
}

/// Reads and discards the rest of an unread body, at most `limit` bytes,
/// giving up once `time` has passed (a read in progress is itself bounded by
/// the stalled-body timeout); true when the body ended within both
/// (`[RGI-CONN-1]`).
pub(crate) fn drain(side: &mut ReadSide, limit: u64, time: Duration) -> bool {
    if side.expect == Continue::Pending {
        // The client may be waiting for the 100 before it sends anything;
        // closing is the only answer that does not wait for it.
        return false;
    }
    if let BodyState::Length(left) = side.body {
        let buffered = side.buf.available().len() as u64;
        if left.saturating_sub(buffered) > limit {
            return false;
        }
    }
    let deadline = Instant::now() + time;
    let mut scratch = [0u8; 4096];
    let mut drained = 0u64;
    while !side.is_complete() {
        if Instant::now() >= deadline {
            return false;
        }
        match side.read_body(&mut scratch) {
            Ok(0) => return side.is_complete() && !side.broken,
            Ok(count) => {
                drained += count as u64;
                if drained > limit {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    !side.broken
}
