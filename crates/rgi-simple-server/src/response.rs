//! The response side: the `ResponseSink` that frames a response on the
//! wire, the server's own refusals, and the `Date` field.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, DATE, SERVER};
use http::{Method, StatusCode, Version};
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
        }
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

    /// Writes the terminator of a complete response (the last-chunk) and
    /// everything still buffered.
    pub(crate) fn complete(&mut self) -> io::Result<()> {
        if self.framing == Framing::Chunked {
            self.out.extend_from_slice(b"0\r\n\r\n");
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
        let mut head_sent = self.gate.lock();
        if self.head_buffered {
            *head_sent = true;
            self.head_buffered = false;
        }
        if self.deferred {
            return Ok(());
        }
        let result = self.stream.write_all_within(&self.out, self.timeout);
        drop(head_sent);
        self.out.clear();
        result
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
        for (name, value) in head.headers() {
            self.out.extend_from_slice(name.as_str().as_bytes());
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(value.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
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
        // Handed to the OS before returning (`[RGI-BODY-4]`).
        self.flush()
    }
}

/// Sends what platform transfer can of a file body (`[RGI-FILE-3]`):
/// when the body offers a [`FileBody`](rgi::FileBody) and the response is
/// framed by a Content-Length, the head goes out alone and then `sendfile`
/// copies the file to the socket in the kernel, each count recorded on the
/// state and the file body (`[RGI-FILE-4]`, `[RGI-FILE-5]`). Whatever it
/// leaves (a chunked response, a file the call refuses, a file that ended
/// early) the caller pulls with `next_chunk` as usual: the file body reads
/// on from where the transfer stopped.
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
    if !state.is_started() {
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
    if !state.wants_body() || sink.framing != Framing::Length {
        return Ok(());
    }
    let Some(mut left) = state.remaining_length() else {
        return Ok(());
    };
    if let Some(remaining) = file.remaining() {
        left = left.min(remaining);
    }
    while left > 0 {
        let mut offset = file.offset();
        let count = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(SENDFILE_MAX);
        let started = Instant::now();
        match sendfile(&sink.stream, file.file(), &mut offset, count) {
            // The file ended early: `next_chunk` finds and reports it.
            Ok(0) => return Ok(()),
            Ok(sent) => {
                state.record_sent(sent as u64)?;
                file.advance(sent as u64);
                left -= sent as u64;
            }
            Err(Refused::Platform(error)) => {
                // The fallback reads on from the recorded offset.
                tracing::debug!(%error, "sendfile refused; reading the file instead");
                return Ok(());
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
