//! The response side: the `ResponseSink` that frames a response on the
//! wire, the server's own refusals, and the `Date` field.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, DATE, SERVER};
use http::{HeaderMap, Method, StatusCode, Version};
use rgi::{FinishError, ResponseHead, ResponseSink, ResponseState, SendError};

use crate::body::WriteGate;
use crate::net::Stream;

/// The `Server` field this server sends.
pub(crate) const SERVER_NAME: &str = concat!("rgi-simple-server/", env!("CARGO_PKG_VERSION"));

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No head sent yet.
    Unsent,
    /// Content-Length, or no content at all (HEAD, 204, 304).
    Length,
    /// The chunked transfer coding (`[RGI-CL-7]`).
    Chunked,
    /// Until the connection closes (`[RGI-CL-8]`).
    Close,
}

/// Writes one response to the connection.
#[derive(Debug)]
pub(crate) struct Sink {
    stream: Arc<Stream>,
    gate: Arc<WriteGate>,
    out: Vec<u8>,
    framing: Framing,
    version: Version,
    head_request: bool,
    /// Whether the connection will be kept after this response; a head
    /// sent while this is false carries `connection: close`.
    pub(crate) keep_alive: bool,
    /// Whether the buffered bytes include the head.
    head_buffered: bool,
    /// Output stays in `out` for [`Sink::take_output`] instead of being
    /// written: an asynchronous request writes without blocking.
    deferred: bool,
    /// How long a write may wait for the client to take bytes
    /// (`body_timeout`); zero leaves it to the socket's own send timeout.
    timeout: Duration,
    /// The trailer section `ResponseState::finish` handed over, written
    /// after the last-chunk by [`Sink::complete`] (`[RGI-TRAILER-7]`).
    trailers: Option<HeaderMap>,
    /// The response was replaced by the server's error answer: trailers
    /// the application gave belong to the response it did not complete.
    trailers_void: bool,
}

impl Sink {
    pub(crate) fn new(
        stream: Arc<Stream>,
        gate: Arc<WriteGate>,
        method: &Method,
        version: Version,
        keep_alive: bool,
    ) -> Self {
        Self {
            stream,
            gate,
            out: Vec::new(),
            framing: Framing::Unsent,
            version,
            head_request: method == Method::HEAD,
            keep_alive,
            head_buffered: false,
            deferred: false,
            timeout: Duration::ZERO,
            trailers: None,
            trailers_void: false,
        }
    }

    /// Drops the trailers of this response, given or still to come: the
    /// server answers with an error response in its place.
    pub(crate) fn void_trailers(&mut self) {
        self.trailers = None;
        self.trailers_void = true;
    }

    /// The status the server answers a client's body error with instead of
    /// the error's own, if the request's read side set one (431 for a
    /// trailer section over the limits).
    pub(crate) fn client_status(&self) -> Option<StatusCode> {
        self.gate.lock().client_status
    }

    /// Writes queued interim responses (`100 Continue`, `103 Early Hints`)
    /// of an asynchronous request without blocking; how many bytes are
    /// left. They go out before any other output of the response.
    pub(crate) fn flush_interim(&self) -> io::Result<usize> {
        self.gate.lock().flush_interim(&self.stream)
    }

    /// Bounds each wait for the client to take bytes on a non-blocking
    /// socket; without it a write that would block fails at once.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether output stays for [`Sink::take_output`] (true) or is
    /// written at once, blocking (false).
    pub(crate) fn set_deferred(&mut self, on: bool) {
        self.deferred = on;
    }

    /// Moves the framed output not yet taken to the end of `into`.
    pub(crate) fn take_output(&mut self, into: &mut Vec<u8>) {
        into.append(&mut self.out);
    }

    /// Writes the terminator of a complete response (the last-chunk, with
    /// the trailer section when there is one) and everything still
    /// buffered.
    pub(crate) fn complete(&mut self) -> io::Result<()> {
        if self.framing == Framing::Chunked {
            self.out.extend_from_slice(b"0\r\n");
            if let Some(trailers) = self.trailers.take() {
                write_fields(&mut self.out, &trailers);
            }
            self.out.extend_from_slice(b"\r\n");
        }
        self.flush()
    }

    /// Whether the connection can carry another response after this one.
    pub(crate) fn reusable(&self) -> bool {
        self.keep_alive && self.framing != Framing::Close
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut gate = self.gate.lock();
        if self.head_buffered {
            gate.head_sent = true;
            self.head_buffered = false;
        }
        if self.deferred {
            return Ok(());
        }
        let result = self.stream.write_all_within(&self.out, self.timeout);
        drop(gate);
        self.out.clear();
        result
    }

    /// Buffers `bytes` as they are, as part of the body's framing, and
    /// writes them out.
    fn write_framing(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        self.flush()
    }
}

/// Field lines, each `name: value` CRLF.
fn write_fields(out: &mut Vec<u8>, fields: &HeaderMap) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

impl ResponseSink for Sink {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        let status = head.status();
        let no_content = self.head_request
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        self.framing = if no_content || head.headers().contains_key(CONTENT_LENGTH) {
            Framing::Length
        } else if self.version == Version::HTTP_11 {
            Framing::Chunked
        } else {
            Framing::Close
        };
        if self.framing == Framing::Close {
            self.keep_alive = false;
        }
        write_status_line(&mut self.out, status);
        write_fields(&mut self.out, head.headers());
        if !head.headers().contains_key(DATE) {
            self.out.extend_from_slice(b"date: ");
            append_date(&mut self.out);
            self.out.extend_from_slice(b"\r\n");
        }
        if !head.headers().contains_key(SERVER) {
            self.out.extend_from_slice(b"server: ");
            self.out.extend_from_slice(SERVER_NAME.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        if self.framing == Framing::Chunked {
            self.out
                .extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if !self.keep_alive {
            self.out.extend_from_slice(b"connection: close\r\n");
        } else if self.version == Version::HTTP_10 {
            self.out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        self.head_buffered = true;
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        if self.framing == Framing::Chunked {
            let _ = write!(HexLen(&mut self.out), "{:x}\r\n", data.len());
            self.out.extend_from_slice(&data);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.out.extend_from_slice(&data);
        }
        // Handed to the OS before returning (`[RGI-BODY-4]`): each event
        // of an event stream goes out alone (`[RGI-SSE-3]`).
        self.flush()
    }

    /// Keeps the trailer section for [`Sink::complete`] when the response
    /// is chunked; a response framed otherwise (a Content-Length of the
    /// application's, a close-delimited HTTP/1.0 one) cannot carry it, and
    /// it is dropped silently (`[RGI-TRAILER-7]`). `ResponseState` calls
    /// this only when the server enabled trailers: an HTTP/1.1 request
    /// with `TE: trailers`, not HEAD.
    fn send_trailers(&mut self, fields: HeaderMap) -> io::Result<()> {
        if self.framing == Framing::Chunked && !self.trailers_void {
            self.trailers = Some(fields);
        }
        Ok(())
    }

    /// Writes `HTTP/1.1 103 Early Hints` and the fields at once
    /// (`[RGI-EARLY-3]`): a worker's socket takes it whole before this
    /// returns; an asynchronous request's takes what it can now and the
    /// rest is queued ahead of every later byte of the response.
    /// `ResponseState` calls this only before the final head and only when
    /// the server enabled early hints (HTTP/1.1).
    fn send_early_hints(&mut self, fields: HeaderMap) -> io::Result<()> {
        if self.version != Version::HTTP_11 || self.framing != Framing::Unsent {
            return Ok(());
        }
        let mut interim = Vec::with_capacity(64);
        interim.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\n");
        write_fields(&mut interim, &fields);
        interim.extend_from_slice(b"\r\n");
        let mut gate = self.gate.lock();
        if gate.head_sent {
            return Ok(());
        }
        gate.send_interim(&self.stream, &interim, self.deferred, self.timeout)
    }
}

/// Sends what platform transfer can of a file body (`[RGI-FILE-3]`):
/// when the body offers a [`FileBody`](rgi::FileBody), the head goes out
/// alone and then `sendfile` copies the file to the socket in the kernel,
/// each count recorded on the state and the file body (`[RGI-FILE-4]`,
/// `[RGI-FILE-5]`).
///
/// - A response framed by a Content-Length: the file up to that length.
///   Whatever the transfer leaves (a file the call refuses, a file that
///   ended early) the caller pulls with `next_chunk` as usual: the file
///   body reads on from where the transfer stopped.
/// - A chunked response (a head announcing trailers, `[RGI-TRAILER-9]`,
///   or a file body without a size hint): when the file's length is known,
///   the rest of the file as the data of one chunk, after the chunk-size
///   line written here; what `sendfile` refuses of it is read and written
///   instead, since the size is on the wire already. The body's next pull
///   then finds the file at its end, and may give its trailers.
/// - Anything else (an unknown length, an HTTP/1.0 response delimited by
///   the close) is left to the pull loop.
///
/// Calls the body's `file()`, which is the application's code: the caller
/// contains panics.
pub(crate) fn send_file<B: rgi::Body>(
    body: &mut B,
    state: &mut ResponseState,
    sink: &mut Sink,
) -> Result<(), SendError> {
    let Some(file) = body.file() else {
        return Ok(());
    };
    if !state.is_started() || sink.deferred {
        // `next_chunk` may still start it; the pull loop handles that.
        return Ok(());
    }
    match state.send_head(sink) {
        Ok(()) => {}
        Err(FinishError::Transport(error)) => return Err(SendError::Transport(error)),
        Err(_) => return Ok(()),
    }
    // The head was only buffered: out before any file byte.
    sink.flush().map_err(SendError::Transport)?;
    if !state.wants_body() {
        return Ok(());
    }
    match sink.framing {
        Framing::Length => {
            let Some(mut left) = state.remaining_length() else {
                return Ok(());
            };
            if let Some(remaining) = file.remaining() {
                left = left.min(remaining);
            }
            transfer(file, state, sink, left).map(drop)
        }
        Framing::Chunked => {
            let Some(left) = file.remaining().filter(|&left| left > 0) else {
                return Ok(());
            };
            let mut size_line = Vec::with_capacity(20);
            let _ = write!(HexLen(&mut size_line), "{left:x}\r\n");
            sink.write_framing(&size_line)
                .map_err(SendError::Transport)?;
            let sent = transfer(file, state, sink, left)?;
            if sent < left {
                read_into_chunk(file, state, sink, left - sent)?;
            }
            sink.write_framing(b"\r\n").map_err(SendError::Transport)
        }
        Framing::Unsent | Framing::Close => Ok(()),
    }
}

/// Moves up to `left` bytes of `file` to the socket with `sendfile`; how
/// many it moved. It stops short when the platform refuses the file (the
/// caller falls back to reading it) or the file ends early.
fn transfer(
    file: &mut rgi::FileBody,
    state: &mut ResponseState,
    sink: &Sink,
    mut left: u64,
) -> Result<u64, SendError> {
    let mut moved = 0;
    while left > 0 {
        let mut offset = file.offset();
        let count = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(SENDFILE_MAX);
        let started = Instant::now();
        match sendfile(&sink.stream, file.file(), &mut offset, count) {
            // The file ended early: the caller decides what that means.
            Ok(0) => return Ok(moved),
            Ok(sent) => {
                state.record_sent(sent as u64)?;
                file.advance(sent as u64);
                left -= sent as u64;
                moved += sent as u64;
            }
            Err(Refused::Platform(error)) => {
                // The fallback reads on from the recorded offset.
                tracing::debug!(%error, "sendfile refused; reading the file instead");
                return Ok(moved);
            }
            // A non-blocking socket's buffer is full: wait for room within
            // the body timeout (a blocking one's send timeout has already
            // run out, and so has this wait).
            Err(Refused::Full) => match sink.stream.wait(true, started + sink.timeout) {
                Ok(true) => {}
                Ok(false) => return Err(SendError::Transport(crate::net::stalled())),
                Err(error) => return Err(SendError::Transport(error)),
            },
            Err(Refused::Transport(error)) => return Err(SendError::Transport(error)),
        }
    }
    Ok(moved)
}

/// How much of a file one read takes when `sendfile` cannot.
const READ_RUN: usize = 64 * 1024;

/// Completes a chunk whose size is on the wire by reading `left` more bytes
/// of `file` from its offset and writing them.
///
/// # Errors
///
/// A file that ends before `left` bytes cannot complete the chunk: the
/// response cannot be completed either, and the connection must close
/// (reported as a transport failure, after a log line that says why).
fn read_into_chunk(
    file: &mut rgi::FileBody,
    state: &mut ResponseState,
    sink: &mut Sink,
    mut left: u64,
) -> Result<(), SendError> {
    use std::os::unix::fs::FileExt;

    let mut buf = vec![0u8; usize::try_from(left).map_or(READ_RUN, |left| left.min(READ_RUN))];
    while left > 0 {
        let want = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        let read = match file.file().read_at(&mut buf[..want], file.offset()) {
            Ok(0) => {
                tracing::warn!(
                    missing = left,
                    "a file ended inside the chunk announced for it; closing the connection"
                );
                return Err(SendError::Transport(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended inside its chunk",
                )));
            }
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(SendError::Transport(error)),
        };
        sink.write_framing(&buf[..read])
            .map_err(SendError::Transport)?;
        state.record_sent(read as u64)?;
        file.advance(read as u64);
        left -= read as u64;
    }
    Ok(())
}

/// The most one `sendfile` call is asked to send (Linux sends at most
/// 0x7ffff000 bytes per call anyway).
const SENDFILE_MAX: usize = 0x7fff_f000;

/// Why a `sendfile` call did not send.
enum Refused {
    /// The platform cannot transfer this file this way: fall back.
    Platform(io::Error),
    /// The socket's send buffer is full (or its send timeout expired).
    Full,
    /// The socket failed: the response is over.
    Transport(io::Error),
}

/// One `sendfile(2)` through rustix's safe wrapper: up to `count` bytes of
/// `file` from `offset` (which it advances; the file's own position is
/// untouched) to the socket; the number of bytes sent.
///
/// Unlike std's socket writes, `sendfile` cannot pass `MSG_NOSIGNAL`: a
/// peer that has gone away raises SIGPIPE, which a Rust program ignores
/// from `main` on (the standard runtime sets it to `SIG_IGN`), so the call
/// fails with `EPIPE` instead.
fn sendfile(
    stream: &Stream,
    file: &std::fs::File,
    offset: &mut u64,
    count: usize,
) -> Result<usize, Refused> {
    use std::os::fd::AsFd;

    let socket = match stream {
        Stream::Tcp(socket) => socket.as_fd(),
        Stream::Unix(socket) => socket.as_fd(),
    };
    loop {
        match rustix::fs::sendfile(socket, file, Some(offset), count) {
            Ok(sent) => return Ok(sent),
            Err(rustix::io::Errno::INTR) => {}
            // The file is not one sendfile reads (a pipe, some special
            // files), or the offset is past what it handles.
            Err(
                errno @ (rustix::io::Errno::INVAL
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::OVERFLOW
                | rustix::io::Errno::SPIPE),
            ) => return Err(Refused::Platform(errno.into())),
            Err(rustix::io::Errno::AGAIN) => return Err(Refused::Full),
            // EIO on the file is also the end of this response: its bytes
            // cannot be produced either way.
            Err(errno) => return Err(Refused::Transport(errno.into())),
        }
    }
}

/// `fmt::Write` into a byte buffer.
struct HexLen<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for HexLen<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

fn write_status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The server's own answer to a request it refuses, closing the connection
/// (`[RGI-PROTO-10]`).
pub(crate) fn refusal(status: StatusCode) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    write_status_line(&mut out, status);
    let mut fields = String::new();
    let _ = write!(
        fields,
        "date: {}\r\nserver: {SERVER_NAME}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        http_date(SystemTime::now())
    );
    out.extend_from_slice(fields.as_bytes());
    out
}

/// Appends the `Date` value for now. The value changes once a second, so
/// each thread formats it once a second and copies it otherwise.
fn append_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, http_date(now));
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
}

/// An IMF-fixdate (RFC 9110 §5.6.7).
pub(crate) fn http_date(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_cached_date_is_the_formatted_one() {
        let mut out = Vec::new();
        append_date(&mut out);
        let after = http_date(SystemTime::now());
        let text = String::from_utf8(out).unwrap_or_default();
        // At most one second apart, whichever side of a tick it fell on.
        let before = http_date(SystemTime::now() - Duration::from_secs(1));
        assert!(text == after || text == before, "{text} vs {after}");
    }

    #[test]
    fn formats_dates() {
        let when = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(when), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
