//! One connection's two halves: the read side (read-ahead buffer, request
//! heads, the request body's framing) and the write side (the socket the
//! response, `100 Continue` and `101` go out on).
//!
//! Several threads touch a connection: its own thread, an application
//! thread reading the body, the async input's pump, the upgrade hand-over.
//! Each half sits behind its own mutex; code that needs both always takes
//! the read side first.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use rgi::{InputError, TrailerSlot};

use super::request::{self, Framing, Rejection, RequestHead};
use super::shared::{Closable, Shared, lock};

/// Size of a connection's read-ahead buffer: one whole head fits, and
/// pipelined requests and body bytes that arrive with a head wait here.
const READ_BUF: usize = 2 * request::MAX_HEAD;

/// The longest chunk-size or trailer line accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Where a request's `Expect: 100-continue` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Nothing expected.
    None,
    /// The client waits for `100 Continue`; nobody has read the body yet.
    Awaiting,
    /// `100 Continue` went out.
    Sent,
    /// The body was read after the final head went out, so no `100` was
    /// sent (`RGI-INPUT-13`).
    Declined,
}

/// How far the body decoder has got.
#[derive(Debug, Clone)]
enum Progress {
    Length { remaining: u64 },
    Chunked(Chunk),
    Done,
    Failed(Failure),
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size,
    Data { remaining: u64 },
    DataEnd,
    Trailers { seen: usize },
}

/// A sticky body error, recreated for every later read.
#[derive(Debug, Clone)]
enum Failure {
    /// The body ended early: bytes announced so far, bytes received.
    Truncated { declared: u64, received: u64 },
    /// The chunked framing is broken (`RGI-INPUT-17`).
    Malformed(String),
    /// A chunked body passed the body limit (`RGI-INPUT-18`).
    OverLimit(u64),
    /// No body byte came within the stalled-body time (`RGI-INPUT-19`).
    Stalled(Duration),
    Other {
        kind: io::ErrorKind,
        message: String,
    },
}

impl Failure {
    /// The error a read returns; `untyped` is
    /// [`Fault::UntypedBodyErrors`](super::Fault::UntypedBodyErrors), which
    /// hides the client's fault in a plain `io::Error`.
    fn error(&self, untyped: bool) -> io::Error {
        let typed = match self {
            Failure::Truncated { declared, received } => InputError::Truncated {
                declared: *declared,
                received: *received,
            },
            Failure::Malformed(reason) => InputError::MalformedBody {
                reason: reason.clone(),
            },
            Failure::OverLimit(limit) => InputError::BodyLimitExceeded { limit: *limit },
            Failure::Stalled(timeout) => InputError::BodyTimedOut { timeout: *timeout },
            Failure::Other { kind, message } => return io::Error::new(*kind, message.clone()),
        };
        if untyped && !matches!(self, Failure::Truncated { .. }) {
            return io::Error::new(io::ErrorKind::InvalidData, typed.to_string());
        }
        typed.into()
    }
}

/// How the toy treats one request's body, faults included.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BodyFlags {
    /// The request is served to an asynchronous application.
    pub(crate) is_async: bool,
    /// [`Fault::SkipsBytesAfterBody`](super::Fault::SkipsBytesAfterBody).
    pub(crate) skip_after: bool,
    /// [`Fault::TrailersLeftOnConnection`](super::Fault::TrailersLeftOnConnection).
    pub(crate) keep_trailers: bool,
    /// [`Fault::UntypedBodyErrors`](super::Fault::UntypedBodyErrors).
    pub(crate) untyped_errors: bool,
    /// [`Fault::TrailersFilledAfterTheEnd`](super::Fault::TrailersFilledAfterTheEnd).
    pub(crate) late_trailers: bool,
    /// [`Fault::RequestTrailersLeak`](super::Fault::RequestTrailersLeak).
    pub(crate) leak_trailers: bool,
}

/// The request whose body is current on a connection.
#[derive(Debug)]
pub(crate) struct BodyState {
    /// Which request of the connection (counts from 1).
    pub(crate) request: u64,
    /// The response is over and the connection moved on: reads of this
    /// request's input answer `ResponseFinished` (`RGI-INPUT-15`).
    pub(crate) finished: bool,
    pub(crate) expect: Expect,
    pub(crate) flags: BodyFlags,
    /// Whether the body is chunked.
    pub(crate) chunked: bool,
    /// [`Fault::SwitchDropsReadAhead`](super::Fault::SwitchDropsReadAhead):
    /// the next piece read is thrown away.
    pub(crate) skip_next: bool,
    progress: Progress,
    /// Where the trailer section goes, for the application
    /// (`RGI-TRAILER-1`); `None` when the toy hands none on.
    slot: Option<TrailerSlot>,
    /// Body bytes announced by chunk sizes so far (chunked only).
    announced: u64,
    /// Body bytes decoded so far.
    received: u64,
}

/// What reading a head produced.
#[derive(Debug)]
pub(crate) enum HeadRead {
    /// A request.
    Head(Box<RequestHead>),
    /// The client closed between requests.
    Closed,
    /// Nothing of a next head arrived within the idle (or, on a new
    /// connection, the head-read) time.
    Idle,
    /// A head had started and did not arrive whole within the head-read
    /// time.
    Stalled,
    /// A head the toy refuses.
    Rejected(Rejection),
    /// The connection failed, or ended inside a head.
    Broken(io::Error),
}

/// The read half of a connection.
#[derive(Debug)]
pub(crate) struct ReadSide {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    pub(crate) body: BodyState,
    /// The trailer fields read so far from the current body.
    trailer_fields: HeaderMap,
    /// The last trailer section read whole, as received (forbidden
    /// fields included).
    pub(crate) last_trailers: HeaderMap,
}

impl ReadSide {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, count: usize) {
        self.start += count;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes from the socket into the buffer; 0 is the end of
    /// the stream (or a full buffer, which callers prevent).
    fn fill(&mut self) -> io::Result<usize> {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let end = self.end;
        let count = self.stream.read(&mut self.buf[end..])?;
        self.end += count;
        Ok(count)
    }

    /// Takes whatever is buffered (for the upgrade hand-over).
    pub(crate) fn take_buffered(&mut self) -> Vec<u8> {
        let bytes = self.buffered().to_vec();
        self.consume(bytes.len());
        bytes
    }

    /// Reads the next request head; read-ahead bytes after it stay in the
    /// buffer for its body and the requests after it.
    ///
    /// The wait for its first byte is bounded by the head-read time on a
    /// new connection and by the idle time between requests
    /// (`RGI-LIMIT-6`); from its first byte the head has the head-read
    /// time to arrive whole (`RGI-LIMIT-5`). The body's reads then get the
    /// stalled-body time.
    pub(crate) fn read_head(&mut self, fault: Option<super::Fault>) -> HeadRead {
        let read = self.read_head_within(fault);
        let _restored = self
            .stream
            .set_read_timeout(Some(request::LIMITS.body_time));
        read
    }

    fn read_head_within(&mut self, fault: Option<super::Fault>) -> HeadRead {
        let waiting_since = Instant::now();
        let first_wait = if self.body.request == 0 {
            request::LIMITS.head_time
        } else {
            request::LIMITS.idle_time
        };
        let mut head_deadline: Option<Instant> = None;
        loop {
            if self.start < self.end {
                match request::parse(self.buffered(), fault) {
                    Ok(Some((head, length))) => {
                        self.consume(length);
                        return HeadRead::Head(Box::new(head));
                    }
                    Ok(None) => {}
                    Err(rejection) => return HeadRead::Rejected(rejection),
                }
            }
            // Empty lines before a request line are allowed (RFC 9112
            // §2.2): they do not start a head.
            let started = self
                .buffered()
                .iter()
                .any(|&byte| byte != b'\r' && byte != b'\n');
            let now = Instant::now();
            let deadline = if started {
                *head_deadline.get_or_insert(now + request::LIMITS.head_time)
            } else {
                waiting_since + first_wait
            };
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                return if started {
                    HeadRead::Stalled
                } else {
                    HeadRead::Idle
                };
            }
            if let Err(err) = self.stream.set_read_timeout(Some(left)) {
                return HeadRead::Broken(err);
            }
            match self.fill() {
                Ok(0) if started => {
                    return HeadRead::Broken(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection ended inside a request head",
                    ));
                }
                Ok(0) => return HeadRead::Closed,
                Ok(_) => {}
                // The deadline is judged at the top of the loop.
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(err)
                    if !started
                        && matches!(
                            err.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                        ) =>
                {
                    return HeadRead::Closed;
                }
                Err(err) => return HeadRead::Broken(err),
            }
        }
    }

    /// Consumes the buffered bytes up to the end of the first head in the
    /// buffer: what [`Fault::KeepsConnectionAfterRefusal`] does with a
    /// refused head before reading on.
    ///
    /// [`Fault::KeepsConnectionAfterRefusal`]: super::Fault::KeepsConnectionAfterRefusal
    pub(crate) fn skip_head(&mut self) {
        let end = self
            .buffered()
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .map_or(self.end - self.start, |at| at + 4);
        self.consume(end);
    }

    /// Makes `head`'s body the current one; its trailer section, if any,
    /// goes into `slot`.
    pub(crate) fn begin(
        &mut self,
        framing: Framing,
        expect_continue: bool,
        flags: BodyFlags,
        slot: Option<TrailerSlot>,
    ) {
        if !flags.leak_trailers {
            self.trailer_fields.clear();
        }
        let progress = match framing {
            Framing::Empty | Framing::Length(0) => Progress::Done,
            Framing::Length(remaining) => Progress::Length { remaining },
            Framing::Chunked => Progress::Chunked(Chunk::Size),
        };
        self.body = BodyState {
            request: self.body.request + 1,
            finished: false,
            expect: if expect_continue {
                Expect::Awaiting
            } else {
                Expect::None
            },
            flags,
            chunked: framing == Framing::Chunked,
            skip_next: false,
            progress,
            slot,
            announced: 0,
            received: 0,
        };
    }

    /// Whether the current body was consumed to its end.
    pub(crate) fn body_done(&self) -> bool {
        matches!(self.body.progress, Progress::Done)
    }

    /// Whether the current body failed (truncated, malformed, I/O error).
    pub(crate) fn body_failed(&self) -> bool {
        matches!(self.body.progress, Progress::Failed(_))
    }

    fn fail(&mut self, failure: Failure) -> io::Error {
        let error = failure.error(self.body.flags.untyped_errors);
        self.body.progress = Progress::Failed(failure);
        error
    }

    /// A failed read of the connection as the body's error: a read that
    /// timed out is the client stalling, invalid data its malformed body.
    fn io_failure(&mut self, err: &io::Error) -> io::Error {
        let failure = match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Failure::Stalled(request::LIMITS.body_time)
            }
            io::ErrorKind::InvalidData => Failure::Malformed(err.to_string()),
            kind => Failure::Other {
                kind,
                message: err.to_string(),
            },
        };
        self.fail(failure)
    }

    /// Copies buffered bytes, or reads straight from the socket when the
    /// buffer is empty, never more than `out.len()`.
    fn read_raw(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start < self.end {
            let count = out.len().min(self.end - self.start);
            out[..count].copy_from_slice(&self.buf[self.start..self.start + count]);
            self.consume(count);
            return Ok(count);
        }
        self.stream.read(out)
    }

    /// Makes sure a whole line is buffered; returns its length including
    /// the `\n`, or `None` at the end of the stream.
    fn buffered_line(&mut self) -> io::Result<Option<usize>> {
        loop {
            if let Some(at) = self.buffered().iter().position(|&byte| byte == b'\n') {
                return Ok(Some(at + 1));
            }
            if self.end - self.start > MAX_CHUNK_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("chunked body: a line longer than {MAX_CHUNK_LINE} bytes"),
                ));
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    fn truncated(&mut self) -> io::Error {
        let failure = Failure::Truncated {
            declared: self.body.announced.max(self.body.received),
            received: self.body.received,
        };
        self.fail(failure)
    }

    /// Decodes body bytes into `out`: at most `out.len()`, never past the
    /// body's end; `Ok(0)` only at the end (`RGI-INPUT-2`, `RGI-INPUT-3`).
    /// A chunked body that ends early fails with `InputError::Truncated`;
    /// a length-delimited one returns `Ok(0)`, which `rgi::Input` reports
    /// as `Truncated` itself. Errors are sticky.
    pub(crate) fn read_body(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.body.progress.clone() {
                Progress::Done => return Ok(0),
                Progress::Failed(failure) => {
                    return Err(failure.error(self.body.flags.untyped_errors));
                }
                Progress::Length { remaining } => {
                    let want = out
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let count = match self.read_raw(&mut out[..want]) {
                        Ok(count) => count,
                        Err(err) => return Err(self.io_failure(&err)),
                    };
                    if count == 0 {
                        let _sticky = self.truncated();
                        return Ok(0);
                    }
                    self.body.received += count as u64;
                    let remaining = remaining - count as u64;
                    self.body.progress = if remaining == 0 {
                        Progress::Done
                    } else {
                        Progress::Length { remaining }
                    };
                    if remaining == 0 && self.body.flags.skip_after {
                        // The fault: four bytes that are not this body's.
                        let mut skipped = 0;
                        while skipped < 4 {
                            if self.start == self.end && !matches!(self.fill(), Ok(1..)) {
                                break;
                            }
                            let step = (4 - skipped).min(self.end - self.start);
                            self.consume(step);
                            skipped += step;
                        }
                    }
                    return Ok(count);
                }
                Progress::Chunked(chunk) => match self.step_chunked(chunk, out) {
                    Ok(Some(count)) => return Ok(count),
                    Ok(None) => {}
                    Err(err) => return Err(err),
                },
            }
        }
    }

    /// One step of the chunked decoder: `Some(count)` when it produced
    /// body bytes (or reached the end, 0), `None` to go on.
    fn step_chunked(&mut self, chunk: Chunk, out: &mut [u8]) -> io::Result<Option<usize>> {
        match chunk {
            Chunk::Size => {
                let line = match self.buffered_line() {
                    Ok(Some(line)) => line,
                    Ok(None) => return Err(self.truncated()),
                    Err(err) => return Err(self.io_failure(&err)),
                };
                let size = parse_chunk_size(&self.buffered()[..line]);
                let shown = String::from_utf8_lossy(&self.buffered()[..line.min(64)]).into_owned();
                self.consume(line);
                match size {
                    Some(0) if self.body.flags.keep_trailers => {
                        // The fault: the trailer section stays behind.
                        self.body.progress = Progress::Done;
                        return Ok(Some(0));
                    }
                    Some(0) if self.body.flags.late_trailers => {
                        // The fault: the end is reported now, the trailer
                        // section read later, when the toy drains.
                        self.body.progress = Progress::Chunked(Chunk::Trailers { seen: 0 });
                        return Ok(Some(0));
                    }
                    Some(0) => {
                        self.body.progress = Progress::Chunked(Chunk::Trailers { seen: 0 });
                    }
                    Some(size) => {
                        self.body.announced = self.body.announced.saturating_add(size);
                        if self.body.announced > request::LIMITS.body {
                            // RGI-LIMIT-4: counted as the sizes arrive, so
                            // no byte past the limit is read.
                            return Err(self.fail(Failure::OverLimit(request::LIMITS.body)));
                        }
                        self.body.progress = Progress::Chunked(Chunk::Data { remaining: size });
                    }
                    None => {
                        return Err(self.fail(Failure::Malformed(format!(
                            "chunked body: malformed chunk-size line {shown:?}"
                        ))));
                    }
                }
                Ok(None)
            }
            Chunk::Data { remaining } => {
                let want = out
                    .len()
                    .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                let count = match self.read_raw(&mut out[..want]) {
                    Ok(0) => return Err(self.truncated()),
                    Ok(count) => count,
                    Err(err) => return Err(self.io_failure(&err)),
                };
                self.body.received += count as u64;
                let remaining = remaining - count as u64;
                self.body.progress = Progress::Chunked(if remaining == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data { remaining }
                });
                Ok(Some(count))
            }
            Chunk::DataEnd => {
                while self.end - self.start < 2 {
                    match self.fill() {
                        Ok(0) => return Err(self.truncated()),
                        Ok(_) => {}
                        Err(err) => return Err(self.io_failure(&err)),
                    }
                }
                if &self.buffered()[..2] != b"\r\n" {
                    return Err(self.fail(Failure::Malformed(
                        "chunked body: chunk data not followed by CRLF".into(),
                    )));
                }
                self.consume(2);
                self.body.progress = Progress::Chunked(Chunk::Size);
                Ok(None)
            }
            Chunk::Trailers { seen } => {
                let line = match self.buffered_line() {
                    Ok(Some(line)) => line,
                    Ok(None) => return Err(self.truncated()),
                    Err(err) => return Err(self.io_failure(&err)),
                };
                let empty = &self.buffered()[..line] == b"\r\n";
                let field = parse_trailer_line(&self.buffered()[..line]);
                self.consume(line);
                if empty {
                    // RGI-TRAILER-1: the section goes to the application
                    // before the end is reported.
                    let fields = if self.body.flags.leak_trailers {
                        // The fault: the fields of earlier requests stay.
                        self.trailer_fields.clone()
                    } else {
                        std::mem::take(&mut self.trailer_fields)
                    };
                    self.last_trailers = fields.clone();
                    if let Some(slot) = &self.body.slot {
                        slot.fill(fields);
                    }
                    self.body.progress = Progress::Done;
                    return Ok(Some(0));
                }
                let Some((name, value)) = field else {
                    return Err(self.fail(Failure::Malformed(
                        "chunked body: a malformed trailer field line".into(),
                    )));
                };
                self.trailer_fields.append(name, value);
                let seen = seen + line;
                if seen > request::LIMITS.header_size {
                    return Err(self.fail(Failure::Malformed(format!(
                        "chunked body: trailer section longer than {} bytes",
                        request::LIMITS.header_size
                    ))));
                }
                self.body.progress = Progress::Chunked(Chunk::Trailers { seen });
                Ok(None)
            }
        }
    }

    /// Reads and discards the rest of the current body, at most `limit`
    /// bytes and until `deadline`; true if the body reached its end
    /// (`RGI-CONN-1`).
    pub(crate) fn drain(&mut self, limit: u64, deadline: Instant) -> bool {
        let mut scratch = [0u8; 8 * 1024];
        let mut drained = 0u64;
        let previous = self.stream.read_timeout().ok().flatten();
        let done = loop {
            if self.body_done() {
                break true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || drained > limit {
                break false;
            }
            if self.stream.set_read_timeout(Some(left)).is_err() {
                break false;
            }
            match self.read_body(&mut scratch) {
                Ok(0) => break self.body_done(),
                Ok(count) => drained += count as u64,
                Err(_) => break false,
            }
        };
        let _restored = self.stream.set_read_timeout(previous);
        done
    }

    /// Reads and discards what the client still sends after the toy shut
    /// its sending side, so that closing does not reset the connection
    /// before the client has read the response (RFC 9112 §9.6).
    pub(crate) fn linger(&mut self, limit: usize, time: Duration) {
        let _bounded = self.stream.set_read_timeout(Some(time));
        let deadline = Instant::now() + time;
        let mut scratch = [0u8; 8 * 1024];
        let mut seen = 0;
        while seen < limit && Instant::now() < deadline {
            match self.stream.read(&mut scratch) {
                Ok(0) | Err(_) => break,
                Ok(count) => seen += count,
            }
        }
    }
}

/// Parses `1*HEXDIG [ BWS ";" chunk-ext ] CRLF`.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let digits = line
        .iter()
        .take_while(|byte| byte.is_ascii_hexdigit())
        .count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = &line[digits..];
    let rest = rest.trim_ascii_start();
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return None;
    }
    let text = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// Parses a trailer field line, `name: value` and its line ending, as a
/// header field line (RFC 9112 §5); `None` if it is not one.
fn parse_trailer_line(line: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let colon = line.iter().position(|&byte| byte == b':')?;
    let name = HeaderName::from_bytes(&line[..colon]).ok()?;
    let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
    Some((name, value))
}

/// Where the upgrade of the current request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpgradeStage {
    /// No upgrade accepted.
    None,
    /// Accepted: the 101 replaces any response the application makes.
    Accepted,
    /// The 101 went out; the connection is no longer HTTP.
    HandedOver,
}

/// The write half of a connection.
#[derive(Debug)]
pub(crate) struct WriteSide {
    pub(crate) stream: TcpStream,
    /// The final head (or the 101) of the current request went out.
    pub(crate) head_sent: bool,
    pub(crate) upgrade: UpgradeStage,
}

impl WriteSide {
    /// Writes `bytes` whole to the socket; `TCP_NODELAY` is on, so they leave
    /// at once (`RGIA-OUT-4`, `RGIA-OUT-5`).
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }
}

/// One accepted connection.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The connection's number, for logs.
    pub(crate) id: u64,
    /// When it was accepted.
    pub(crate) accepted: Instant,
    pub(crate) read: Mutex<ReadSide>,
    pub(crate) write: Mutex<WriteSide>,
    /// For shutting the socket down from any thread, without locks.
    control: TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) server: Arc<Shared>,
    /// The request whose body may be read, 0 between requests: checked
    /// without the read side's lock, which the connection thread holds
    /// while it waits for the next head.
    pub(crate) readable: AtomicU64,
    /// The previous request's fields
    /// ([`Fault::LeaksFieldsToNextRequest`](super::Fault::LeaksFieldsToNextRequest)).
    pub(crate) previous: Mutex<Option<http::HeaderMap>>,
    /// Bodies that [`Fault::DropsBodyLate`](super::Fault::DropsBodyLate)
    /// keeps until the connection closes.
    pub(crate) graveyard: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
}

impl Conn {
    /// Wraps an accepted stream.
    ///
    /// # Errors
    ///
    /// If the socket cannot be configured or cloned.
    pub(crate) fn new(stream: TcpStream, id: u64, server: Arc<Shared>) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(request::LIMITS.body_time))?;
        stream.set_write_timeout(Some(server.timeouts.write))?;
        let peer = stream.peer_addr()?;
        let local = stream.local_addr()?;
        Ok(Conn {
            id,
            accepted: Instant::now(),
            read: Mutex::new(ReadSide {
                stream: stream.try_clone()?,
                buf: vec![0; READ_BUF],
                start: 0,
                end: 0,
                body: BodyState {
                    request: 0,
                    finished: true,
                    expect: Expect::None,
                    flags: BodyFlags::default(),
                    chunked: false,
                    skip_next: false,
                    progress: Progress::Done,
                    slot: None,
                    announced: 0,
                    received: 0,
                },
                trailer_fields: HeaderMap::new(),
                last_trailers: HeaderMap::new(),
            }),
            write: Mutex::new(WriteSide {
                stream: stream.try_clone()?,
                head_sent: false,
                upgrade: UpgradeStage::None,
            }),
            control: stream,
            peer,
            local,
            server,
            readable: AtomicU64::new(0),
            previous: Mutex::default(),
            graveyard: Mutex::default(),
        })
    }

    /// Shuts both directions down: every blocked read or write on the
    /// connection returns.
    pub(crate) fn shutdown(&self) {
        let _gone = self.control.shutdown(Shutdown::Both);
    }
}

impl Closable for Conn {
    fn shutdown(&self) {
        Conn::shutdown(self);
    }
}

impl Conn {
    /// Shuts the sending side down after the last response.
    pub(crate) fn shutdown_write(&self) {
        let _gone = self.control.shutdown(Shutdown::Write);
    }

    /// Locks the read side after a response. Something still reading the
    /// old body (an application thread, the async input's pump) holds it
    /// in a blocking read; that read can only be ended by shutting the
    /// connection down, so `None` says the connection must close.
    pub(crate) fn read_after_response(&self) -> (MutexGuard<'_, ReadSide>, bool) {
        match self.read.try_lock() {
            Ok(guard) => (guard, true),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => (poisoned.into_inner(), true),
            Err(std::sync::TryLockError::WouldBlock) => {
                self.shutdown();
                (lock(&self.read), false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn trailer_lines() {
        let (name, value) = parse_trailer_line(b"X-Sum:  abc \r\n").unwrap();
        assert_eq!((name.as_str(), value.as_bytes()), ("x-sum", &b"abc"[..]));
        assert!(parse_trailer_line(b"no colon\r\n").is_none());
        assert!(parse_trailer_line(b"bad name: x\r\n").is_none());
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a\r\n"), Some(26));
        assert_eq!(parse_chunk_size(b"0\r\n"), Some(0));
        assert_eq!(parse_chunk_size(b"5 ;name=value\r\n"), Some(5));
        assert_eq!(parse_chunk_size(b"5;x\r\n"), Some(5));
        assert_eq!(parse_chunk_size(b"\r\n"), None);
        assert_eq!(parse_chunk_size(b"5\n"), None);
        assert_eq!(parse_chunk_size(b"5x\r\n"), None);
        assert_eq!(parse_chunk_size(b"11111111111111111\r\n"), None);
    }
}
