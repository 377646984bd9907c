//! A raw-socket HTTP/1.1 client that judges a server the way a hostile or
//! slow client would.
//!
//! Ordinary HTTP clients hide exactly what the suite has to see: they
//! decode framing silently, retry, pool connections and treat a truncated
//! chunked body as complete. [`Connection`] instead writes whatever bytes a
//! case gives it (pipelined requests, malformed requests, chunked uploads
//! piece by piece, an `Expect: 100-continue` head without its body), and
//! reads responses with [`httparse`], reporting what a judge needs:
//!
//! - interim `1xx` heads separately from the final head;
//! - the framing the server chose ([`Framing`]) and whether the body ended
//!   as that framing says a complete body ends ([`Body::complete`]: the
//!   declared length reached, the last-chunk received);
//! - bytes that arrive when nothing should ([`Connection::wait_for_data`],
//!   [`Connection::expect_silence`]);
//! - an orderly close or a reset, both reported as the end of the stream.
//!
//! Every read is bounded by a deadline ([`Connection::set_timeout`], by
//! default [`DEFAULT_TIMEOUT`]), so a server that hangs makes a case fail
//! instead of hanging the suite. Errors are typed ([`WireError`]) and carry
//! the offending bytes.
//!
//! Backpressure is created by simply not reading: the standard library
//! cannot shrink `SO_RCVBUF`, so a case that wants a slow client leaves the
//! response unread while the server produces many megabytes, and the
//! kernel's socket buffers fill.
//!
//! # Examples
//!
//! ```no_run
//! use rgi_conformance::suite::wire::{Connection, Request};
//!
//! # fn main() -> Result<(), rgi_conformance::suite::wire::WireError> {
//! let addr = "127.0.0.1:8080".parse().expect("an address");
//! let mut conn = Connection::connect(addr)?;
//! conn.send(&Request::get("/hello?x=1").to_bytes())?;
//! let response = conn.read_response("GET")?;
//! assert_eq!(response.head.status, 200);
//! assert!(response.body.complete);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long one operation of a [`Connection`] (connecting, reading a head,
/// reading a body) may take before it fails with [`WireError::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest response head the client accepts.
const MAX_HEAD: usize = 64 * 1024;

/// The most header fields in one response head.
const MAX_FIELDS: usize = 128;

/// The largest body [`Connection::read_response`] collects in memory.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// How many received bytes an error keeps to show what arrived.
const KEPT: usize = 4096;

/// How many bytes an error message shows.
const SHOWN: usize = 600;

/// Bytes, shown escaped and cut to a readable length.
#[derive(Clone, PartialEq, Eq)]
pub struct Shown(pub Vec<u8>);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = self.0.len().min(SHOWN);
        write!(f, "\"{}\"", self.0[..cut].escape_ascii())?;
        if self.0.len() > cut {
            write!(f, "… ({} bytes in all)", self.0.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What went wrong on the wire; every variant carries the bytes involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Connecting failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where the client tried to connect.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Writing request bytes failed (usually: the server closed the
    /// connection).
    #[error("sending {} failed: {source}", Shown(.sent.clone()))]
    Send {
        /// The bytes that could not be sent (at most the first few KiB).
        sent: Vec<u8>,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Configuring or shutting down the socket failed.
    #[error("socket operation `{operation}` failed: {source}")]
    Socket {
        /// Which operation.
        operation: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Nothing more arrived before the deadline.
    #[error("nothing more arrived within {waited:?} while {doing}; received: {}", Shown(.received.clone()))]
    Timeout {
        /// How long the client waited.
        waited: Duration,
        /// What the client was waiting for.
        doing: &'static str,
        /// What had arrived for this operation (at most the first few
        /// KiB).
        received: Vec<u8>,
    },
    /// The server closed the connection before a whole response head
    /// arrived.
    #[error("the connection closed before a complete response head; received: {}", Shown(.received.clone()))]
    ClosedBeforeHead {
        /// What had arrived.
        received: Vec<u8>,
    },
    /// The response head is not valid HTTP/1.x.
    #[error("malformed response head ({reason}): {}", Shown(.received.clone()))]
    MalformedHead {
        /// What the parser rejected.
        reason: String,
        /// The bytes it rejected.
        received: Vec<u8>,
    },
    /// The chunked framing of the body is broken.
    #[error("malformed chunked body ({reason}): {}", Shown(.received.clone()))]
    MalformedChunked {
        /// What is wrong.
        reason: String,
        /// The offending bytes.
        received: Vec<u8>,
    },
    /// A Content-Length field of the response is not one decimal number.
    #[error("invalid Content-Length in the response: {}", Shown(.value.clone()))]
    InvalidContentLength {
        /// The offending value.
        value: Vec<u8>,
    },
    /// The response carries both Content-Length and Transfer-Encoding.
    #[error("the response carries both Content-Length {} and Transfer-Encoding {}", Shown(.content_length.clone()), Shown(.transfer_encoding.clone()))]
    ConflictingFraming {
        /// The Content-Length value.
        content_length: Vec<u8>,
        /// The Transfer-Encoding value.
        transfer_encoding: Vec<u8>,
    },
    /// The response head or body is larger than the client accepts.
    #[error("the response exceeds {limit} bytes ({what})")]
    TooLarge {
        /// The limit.
        limit: usize,
        /// What exceeded it.
        what: &'static str,
    },
    /// Bytes arrived when none were expected.
    #[error("bytes arrived when none were expected: {}", Shown(.received.clone()))]
    UnexpectedData {
        /// What arrived.
        received: Vec<u8>,
    },
    /// The connection closed when it was expected to stay open.
    #[error("the connection closed unexpectedly")]
    UnexpectedClose,
    /// Reading failed with an error other than a timeout or a reset.
    #[error("reading failed: {source}; received: {}", Shown(.received.clone()))]
    Read {
        /// The error.
        #[source]
        source: io::Error,
        /// What had arrived.
        received: Vec<u8>,
    },
}

impl WireError {
    /// Whether the error means the server closed (or reset) the
    /// connection.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        match self {
            WireError::ClosedBeforeHead { .. } | WireError::UnexpectedClose => true,
            WireError::Send { source, .. } => is_reset(source),
            _ => false,
        }
    }

    /// Whether the error is about the framing of the response
    /// (`RGI-CL-9`).
    #[must_use]
    pub fn is_framing(&self) -> bool {
        matches!(
            self,
            WireError::MalformedChunked { .. }
                | WireError::InvalidContentLength { .. }
                | WireError::ConflictingFraming { .. }
        )
    }
}

/// Whether an I/O error means the peer went away.
fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
    )
}

/// Whether an I/O error is a read timeout.
fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One response head, interim or final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The minor HTTP version (`1` for HTTP/1.1, `0` for HTTP/1.0).
    pub minor_version: u8,
    /// The status code.
    pub status: u16,
    /// The reason phrase, as sent.
    pub reason: String,
    /// The field lines in order, names as sent and values byte for byte.
    pub fields: Vec<(String, Vec<u8>)>,
    /// The raw bytes of the head, blank line included.
    pub raw: Vec<u8>,
}

impl Head {
    /// The first value of field `name` (case-insensitive).
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    /// Every value of field `name` (case-insensitive), in order.
    #[must_use]
    pub fn fields_named(&self, name: &str) -> Vec<&[u8]> {
        self.fields
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
            .collect()
    }

    /// The first value of field `name` as text, lossily.
    #[must_use]
    pub fn field_text(&self, name: &str) -> Option<String> {
        self.field(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }

    /// Whether the head is an interim (`1xx`) response.
    #[must_use]
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// Whether a comma-separated field `name` lists `token`
    /// (case-insensitive), e.g. `connection: close`.
    #[must_use]
    pub fn lists(&self, name: &str, token: &str) -> bool {
        self.fields_named(name).iter().any(|value| {
            value
                .split(|&byte| byte == b',')
                .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// How the body of this response is delimited, for a request with
    /// `method` (RFC 9112 §6.3).
    ///
    /// # Errors
    ///
    /// [`WireError::ConflictingFraming`] for Content-Length together with
    /// Transfer-Encoding, [`WireError::InvalidContentLength`] for a length
    /// that is not one decimal number.
    pub fn framing(&self, method: &str) -> Result<Framing, WireError> {
        let lengths = self.fields_named("content-length");
        let codings = self.fields_named("transfer-encoding");
        if let (Some(length), Some(coding)) = (lengths.first(), codings.first()) {
            return Err(WireError::ConflictingFraming {
                content_length: length.to_vec(),
                transfer_encoding: coding.to_vec(),
            });
        }
        if method.eq_ignore_ascii_case("HEAD")
            || self.is_interim()
            || self.status == 204
            || self.status == 304
        {
            return Ok(Framing::NoBody);
        }
        if !codings.is_empty() {
            let last = codings
                .iter()
                .flat_map(|value| value.split(|&byte| byte == b','))
                .map(<[u8]>::trim_ascii)
                .rfind(|item| !item.is_empty());
            return Ok(match last {
                Some(coding) if coding.eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
                _ => Framing::Close,
            });
        }
        match lengths.first() {
            None => Ok(Framing::Close),
            Some(_) => {
                let mut declared = None;
                for value in &lengths {
                    for item in value.split(|&byte| byte == b',') {
                        let parsed = parse_decimal(item.trim_ascii()).ok_or_else(|| {
                            WireError::InvalidContentLength {
                                value: value.to_vec(),
                            }
                        })?;
                        if declared.is_some_and(|known| known != parsed) {
                            return Err(WireError::InvalidContentLength {
                                value: value.to_vec(),
                            });
                        }
                        declared = Some(parsed);
                    }
                }
                declared
                    .map(Framing::Length)
                    .ok_or_else(|| WireError::InvalidContentLength { value: Vec::new() })
            }
        }
    }
}

/// A decimal number of digits only.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, `1xx`, `204` or `304`.
    NoBody,
    /// Exactly this many bytes (Content-Length).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// A response body as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The body bytes, framing removed.
    pub data: Vec<u8>,
    /// How it was delimited.
    pub framing: Framing,
    /// Whether it ended the way a complete body ends under its framing:
    /// the declared length reached, the last-chunk and the trailer section
    /// received, or the connection closed for a close-delimited body (which
    /// cannot show truncation).
    pub complete: bool,
    /// For a chunked body, the size of every chunk received, last-chunk
    /// excluded.
    pub chunk_sizes: Vec<u64>,
    /// For a chunked body, the field lines of its trailer section, in
    /// order, names as sent and values byte for byte (RFC 9112 §7.1.2).
    pub trailers: Vec<(String, Vec<u8>)>,
}

impl Body {
    /// Every value of trailer field `name` (case-insensitive), in order.
    #[must_use]
    pub fn trailers_named(&self, name: &str) -> Vec<&[u8]> {
        self.trailers
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
            .collect()
    }
}

/// A whole response: the interim heads, the final head and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The `1xx` heads that came before the final head, in order.
    pub interim: Vec<Head>,
    /// The final head.
    pub head: Head,
    /// The body.
    pub body: Body,
}

/// What arrived while the client waited ([`Connection::wait_for_data`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Nothing, before the window ended.
    Nothing,
    /// These bytes (left in the connection's buffer as well).
    Data(Vec<u8>),
    /// The server closed or reset the connection.
    Closed,
}

/// A client connection that reads and writes raw HTTP/1.1.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    /// Received and not yet consumed.
    buffer: Vec<u8>,
    /// The server closed its side (or reset the connection).
    eof: bool,
    /// What arrived for the current operation, for error messages.
    seen: Vec<u8>,
    timeout: Duration,
}

impl Connection {
    /// Connects to `addr` with read and write deadlines of
    /// [`DEFAULT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// [`WireError::Connect`] if the server does not accept the connection
    /// in time.
    pub fn connect(addr: SocketAddr) -> Result<Self, WireError> {
        let stream = TcpStream::connect_timeout(&addr, DEFAULT_TIMEOUT)
            .map_err(|source| WireError::Connect { addr, source })?;
        stream
            .set_nodelay(true)
            .map_err(|source| WireError::Socket {
                operation: "set_nodelay",
                source,
            })?;
        stream
            .set_write_timeout(Some(DEFAULT_TIMEOUT))
            .map_err(|source| WireError::Socket {
                operation: "set_write_timeout",
                source,
            })?;
        Ok(Connection {
            stream,
            buffer: Vec::new(),
            eof: false,
            seen: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the deadline of each later operation (one read of a head, a
    /// body, or a wait); at least one millisecond.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout.max(Duration::from_millis(1));
    }

    /// The deadline of each operation.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The client's address, as the server should see it.
    ///
    /// # Errors
    ///
    /// [`WireError::Socket`] if the socket cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr, WireError> {
        self.stream
            .local_addr()
            .map_err(|source| WireError::Socket {
                operation: "local_addr",
                source,
            })
    }

    /// Bytes received and not consumed by a read yet.
    #[must_use]
    pub fn buffered(&self) -> &[u8] {
        &self.buffer
    }

    /// Whether the server closed (or reset) the connection, as far as the
    /// client has seen.
    #[must_use]
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Writes `bytes` as they are.
    ///
    /// # Errors
    ///
    /// [`WireError::Send`] if the write fails or does not finish in time.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|source| WireError::Send {
                sent: bytes[..bytes.len().min(KEPT)].to_vec(),
                source,
            })
    }

    /// Shuts down the client's sending side: the server reads the end of
    /// the stream, while the client can still read the response.
    ///
    /// # Errors
    ///
    /// [`WireError::Socket`] if the shutdown fails.
    pub fn shutdown_write(&mut self) -> Result<(), WireError> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(|source| WireError::Socket {
                operation: "shutdown(write)",
                source,
            })
    }

    /// Reads more bytes into the buffer before `deadline`; `Ok(0)` when the
    /// server closed the connection.
    fn fill(&mut self, deadline: Instant, doing: &'static str) -> Result<usize, WireError> {
        if self.eof {
            return Ok(0);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(self.timeout_error(doing));
        }
        self.stream
            .set_read_timeout(Some(deadline - now))
            .map_err(|source| WireError::Socket {
                operation: "set_read_timeout",
                source,
            })?;
        let mut chunk = [0_u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(read) => {
                    self.buffer.extend_from_slice(&chunk[..read]);
                    let room = KEPT.saturating_sub(self.seen.len());
                    self.seen.extend_from_slice(&chunk[..read.min(room)]);
                    return Ok(read);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if is_timeout(&error) => return Err(self.timeout_error(doing)),
                Err(error) if is_reset(&error) => {
                    self.eof = true;
                    return Ok(0);
                }
                Err(source) => {
                    return Err(WireError::Read {
                        source,
                        received: self.seen.clone(),
                    });
                }
            }
        }
    }

    fn timeout_error(&self, doing: &'static str) -> WireError {
        WireError::Timeout {
            waited: self.timeout,
            doing,
            received: self.seen.clone(),
        }
    }

    /// Takes `count` bytes off the front of the buffer.
    fn take(&mut self, count: usize) -> Vec<u8> {
        let rest = self.buffer.split_off(count.min(self.buffer.len()));
        std::mem::replace(&mut self.buffer, rest)
    }

    /// Reads the next response head, interim or final.
    ///
    /// # Errors
    ///
    /// [`WireError::ClosedBeforeHead`], [`WireError::MalformedHead`],
    /// [`WireError::TooLarge`] or [`WireError::Timeout`].
    pub fn read_head(&mut self) -> Result<Head, WireError> {
        self.seen = self.buffer[..self.buffer.len().min(KEPT)].to_vec();
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(head) = self.parse_head()? {
                return Ok(head);
            }
            if self.buffer.len() > MAX_HEAD {
                return Err(WireError::TooLarge {
                    limit: MAX_HEAD,
                    what: "response head",
                });
            }
            if self.fill(deadline, "reading a response head")? == 0 {
                return Err(WireError::ClosedBeforeHead {
                    received: self.take(self.buffer.len()),
                });
            }
        }
    }

    /// Parses a head at the front of the buffer, if a whole one is there.
    fn parse_head(&mut self) -> Result<Option<Head>, WireError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut response = httparse::Response::new(&mut fields);
        let parsed = response
            .parse(&self.buffer)
            .map_err(|error| WireError::MalformedHead {
                reason: error.to_string(),
                received: self.buffer[..self.buffer.len().min(KEPT)].to_vec(),
            })?;
        let httparse::Status::Complete(length) = parsed else {
            return Ok(None);
        };
        let head = Head {
            minor_version: response.version.unwrap_or(1),
            status: response.code.unwrap_or(0),
            reason: response.reason.unwrap_or("").to_owned(),
            fields: response
                .headers
                .iter()
                .map(|field| (field.name.to_owned(), field.value.to_vec()))
                .collect(),
            raw: Vec::new(),
        };
        let raw = self.take(length);
        Ok(Some(Head { raw, ..head }))
    }

    /// Reads heads until a final one, collecting the interim `1xx` heads.
    ///
    /// # Errors
    ///
    /// As [`read_head`](Self::read_head).
    pub fn read_final_head(&mut self) -> Result<(Vec<Head>, Head), WireError> {
        let mut interim = Vec::new();
        loop {
            let head = self.read_head()?;
            if head.is_interim() {
                interim.push(head);
            } else {
                return Ok((interim, head));
            }
        }
    }

    /// A reader of the body that follows `head`, the response to a request
    /// with `method`.
    ///
    /// # Errors
    ///
    /// The framing errors of [`Head::framing`].
    pub fn body_reader(&mut self, head: &Head, method: &str) -> Result<BodyReader<'_>, WireError> {
        let framing = head.framing(method)?;
        self.seen = self.buffer[..self.buffer.len().min(KEPT)].to_vec();
        let state = match framing {
            Framing::NoBody => State::Done,
            Framing::Length(0) => State::Done,
            Framing::Length(length) => State::Length(length),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        Ok(BodyReader {
            deadline: Instant::now() + self.timeout,
            conn: self,
            framing,
            complete: matches!(state, State::Done),
            state,
            chunk_sizes: Vec::new(),
            trailers: Vec::new(),
            received: 0,
        })
    }

    /// Reads a whole response to a request with `method`: interim heads,
    /// the final head and the body (at most [`MAX_BODY`] bytes).
    ///
    /// A body cut short by the server closing the connection is returned
    /// with [`Body::complete`] false, not as an error.
    ///
    /// # Errors
    ///
    /// Head and framing errors, [`WireError::Timeout`] when the server
    /// neither finishes nor closes in time, [`WireError::TooLarge`].
    pub fn read_response(&mut self, method: &str) -> Result<Response, WireError> {
        let (interim, head) = self.read_final_head()?;
        let body = self.body_reader(&head, method)?.read_all(MAX_BODY)?;
        Ok(Response {
            interim,
            head,
            body,
        })
    }

    /// Waits up to `window` for anything from the server.
    ///
    /// # Errors
    ///
    /// [`WireError::Read`] for a read error other than a reset.
    pub fn wait_for_data(&mut self, window: Duration) -> Result<Arrival, WireError> {
        if !self.buffer.is_empty() {
            return Ok(Arrival::Data(self.buffer.clone()));
        }
        if self.eof {
            return Ok(Arrival::Closed);
        }
        self.seen.clear();
        match self.fill(Instant::now() + window, "waiting") {
            Ok(0) => Ok(Arrival::Closed),
            Ok(_) => Ok(Arrival::Data(self.buffer.clone())),
            Err(WireError::Timeout { .. }) => Ok(Arrival::Nothing),
            Err(other) => Err(other),
        }
    }

    /// Asserts that nothing arrives within `window` and the connection
    /// stays open.
    ///
    /// # Errors
    ///
    /// [`WireError::UnexpectedData`] with what arrived, or
    /// [`WireError::UnexpectedClose`].
    pub fn expect_silence(&mut self, window: Duration) -> Result<(), WireError> {
        match self.wait_for_data(window)? {
            Arrival::Nothing => Ok(()),
            Arrival::Data(received) => Err(WireError::UnexpectedData { received }),
            Arrival::Closed => Err(WireError::UnexpectedClose),
        }
    }

    /// Reads until the server closes the connection, returning everything
    /// that arrived (at most `limit` bytes are kept).
    ///
    /// # Errors
    ///
    /// [`WireError::Timeout`] if the server does not close in time.
    pub fn read_to_close(&mut self, limit: usize) -> Result<Vec<u8>, WireError> {
        self.seen = self.buffer[..self.buffer.len().min(KEPT)].to_vec();
        let deadline = Instant::now() + self.timeout;
        while self.fill(deadline, "waiting for the server to close")? > 0 {
            if self.buffer.len() > limit {
                return Err(WireError::TooLarge {
                    limit,
                    what: "data before the close",
                });
            }
        }
        Ok(self.take(self.buffer.len()))
    }
}

/// Where a [`BodyReader`] is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailer,
    Close,
    Done,
}

/// Reads a response body incrementally, as the server sends it.
#[derive(Debug)]
pub struct BodyReader<'c> {
    conn: &'c mut Connection,
    framing: Framing,
    state: State,
    complete: bool,
    chunk_sizes: Vec<u64>,
    trailers: Vec<(String, Vec<u8>)>,
    received: u64,
    deadline: Instant,
}

impl BodyReader<'_> {
    /// How the body is delimited.
    #[must_use]
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the body has ended as a complete body ends (so far: false
    /// until the end).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether the body has ended, completely or not.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes received so far.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The trailer section's field lines received so far (all of them once
    /// a chunked body has ended).
    #[must_use]
    pub fn trailers(&self) -> &[(String, Vec<u8>)] {
        &self.trailers
    }

    /// The connection underneath, for waiting on it
    /// ([`Connection::wait_for_data`]) between pieces of the body; bytes
    /// read from it directly are no longer part of the body.
    pub fn connection(&mut self) -> &mut Connection {
        self.conn
    }

    /// Gives every later read of this body `timeout` from now.
    pub fn extend_deadline(&mut self, timeout: Duration) {
        self.deadline = Instant::now() + timeout;
    }

    /// Makes sure the buffer is not empty; false at the end of the stream.
    fn more(&mut self, doing: &'static str) -> Result<bool, WireError> {
        if !self.conn.buffer.is_empty() {
            return Ok(true);
        }
        Ok(self.conn.fill(self.deadline, doing)? > 0)
    }

    /// Reads a CRLF-terminated line of the chunked framing.
    fn line(&mut self, doing: &'static str) -> Result<Option<Vec<u8>>, WireError> {
        loop {
            if let Some(end) = self.conn.buffer.windows(2).position(|pair| pair == b"\r\n") {
                let mut line = self.conn.take(end + 2);
                line.truncate(end);
                return Ok(Some(line));
            }
            if self.conn.buffer.len() > MAX_HEAD {
                return Err(WireError::MalformedChunked {
                    reason: "a chunk-size or trailer line longer than 64 KiB".into(),
                    received: self.conn.buffer[..KEPT].to_vec(),
                });
            }
            if self.conn.fill(self.deadline, doing)? == 0 {
                return Ok(None);
            }
        }
    }

    /// The body ended without its complete end.
    fn cut(&mut self) {
        self.state = State::Done;
        self.complete = false;
    }

    /// The next piece of body data as it arrives; `None` at the end of the
    /// body (check [`is_complete`](Self::is_complete)).
    ///
    /// # Errors
    ///
    /// [`WireError::Timeout`] when nothing arrives in time,
    /// [`WireError::MalformedChunked`] for broken chunked framing.
    pub fn next_data(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Length(remaining) => {
                    if !self.more("reading a Content-Length body")? {
                        self.cut();
                        return Ok(None);
                    }
                    let count = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.conn.buffer.len());
                    let data = self.conn.take(count);
                    let left = remaining - data.len() as u64;
                    if left == 0 {
                        self.state = State::Done;
                        self.complete = true;
                    } else {
                        self.state = State::Length(left);
                    }
                    self.received += data.len() as u64;
                    return Ok(Some(data));
                }
                State::Close => {
                    if !self.more("reading a close-delimited body")? {
                        self.state = State::Done;
                        self.complete = true;
                        return Ok(None);
                    }
                    let data = self.conn.take(self.conn.buffer.len());
                    self.received += data.len() as u64;
                    return Ok(Some(data));
                }
                State::ChunkSize => {
                    let Some(line) = self.line("reading a chunk-size line")? else {
                        self.cut();
                        return Ok(None);
                    };
                    let size = parse_chunk_size(&line)?;
                    if size == 0 {
                        self.state = State::Trailer;
                    } else {
                        if self.chunk_sizes.len() < 100_000 {
                            self.chunk_sizes.push(size);
                        }
                        self.state = State::ChunkData(size);
                    }
                }
                State::ChunkData(remaining) => {
                    if !self.more("reading chunk data")? {
                        self.cut();
                        return Ok(None);
                    }
                    let count = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.conn.buffer.len());
                    let data = self.conn.take(count);
                    let left = remaining - data.len() as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                    self.received += data.len() as u64;
                    return Ok(Some(data));
                }
                State::ChunkEnd => {
                    while self.conn.buffer.len() < 2 {
                        if self
                            .conn
                            .fill(self.deadline, "reading the CRLF after a chunk")?
                            == 0
                        {
                            self.cut();
                            return Ok(None);
                        }
                    }
                    if self.conn.buffer[..2] != *b"\r\n" {
                        return Err(WireError::MalformedChunked {
                            reason: "chunk data not followed by CRLF".into(),
                            received: self.conn.buffer[..self.conn.buffer.len().min(KEPT)].to_vec(),
                        });
                    }
                    self.conn.take(2);
                    self.state = State::ChunkSize;
                }
                State::Trailer => {
                    let Some(line) = self.line("reading the trailer section")? else {
                        self.cut();
                        return Ok(None);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                        self.complete = true;
                        return Ok(None);
                    }
                    let field = parse_trailer_line(&line)?;
                    if self.trailers.len() < MAX_FIELDS {
                        self.trailers.push(field);
                    }
                }
            }
        }
    }

    /// Reads the rest of the body, keeping at most `limit` bytes.
    ///
    /// # Errors
    ///
    /// As [`next_data`](Self::next_data), and [`WireError::TooLarge`].
    pub fn read_all(mut self, limit: usize) -> Result<Body, WireError> {
        let mut data = Vec::new();
        while let Some(piece) = self.next_data()? {
            if data.len() + piece.len() > limit {
                return Err(WireError::TooLarge {
                    limit,
                    what: "response body",
                });
            }
            data.extend_from_slice(&piece);
        }
        Ok(Body {
            data,
            framing: self.framing,
            complete: self.complete,
            chunk_sizes: self.chunk_sizes,
            trailers: self.trailers,
        })
    }

    /// Reads until at least `count` body bytes have arrived in all (or the
    /// body ends), returning the bytes this call read.
    ///
    /// # Errors
    ///
    /// As [`next_data`](Self::next_data).
    pub fn read_at_least(&mut self, count: u64) -> Result<Vec<u8>, WireError> {
        let mut data = Vec::new();
        while self.received < count {
            match self.next_data()? {
                Some(piece) => data.extend_from_slice(&piece),
                None => break,
            }
        }
        Ok(data)
    }
}

/// Parses a chunk-size line: hex digits, optional whitespace and chunk
/// extensions.
fn parse_chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let malformed = |reason: &str| WireError::MalformedChunked {
        reason: reason.to_owned(),
        received: line.to_vec(),
    };
    let size = line
        .split(|&byte| byte == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(malformed("chunk-size is not a hexadecimal number"));
    }
    let text = std::str::from_utf8(size).map_err(|_| malformed("chunk-size is not ASCII"))?;
    u64::from_str_radix(text, 16).map_err(|_| malformed("chunk-size out of range"))
}

/// Parses one field line of a trailer section: `name: value`, the name a
/// token, the value without its surrounding whitespace.
fn parse_trailer_line(line: &[u8]) -> Result<(String, Vec<u8>), WireError> {
    let malformed = |reason: &str| WireError::MalformedChunked {
        reason: reason.to_owned(),
        received: line[..line.len().min(KEPT)].to_vec(),
    };
    let colon = line
        .iter()
        .position(|&byte| byte == b':')
        .ok_or_else(|| malformed("a trailer line without a colon"))?;
    let name = &line[..colon];
    let token = |byte: &u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(byte);
    if name.is_empty() || !name.iter().all(token) {
        return Err(malformed("a trailer field name that is not a token"));
    }
    let value = line[colon + 1..].trim_ascii();
    Ok((String::from_utf8_lossy(name).into_owned(), value.to_vec()))
}

/// A request to write on a [`Connection`], built field by field; anything
/// this builder cannot express can be sent as raw bytes instead.
///
/// # Examples
///
/// ```
/// use rgi_conformance::suite::wire::Request;
///
/// let bytes = Request::new("POST", "/upload")
///     .header("content-type", "text/plain")
///     .body("hello")
///     .to_bytes();
/// assert_eq!(
///     bytes,
///     b"POST /upload HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: text/plain\r\n\
///       content-length: 5\r\n\r\nhello"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    version: &'static str,
    host: Option<String>,
    fields: Vec<(String, Vec<u8>)>,
    body: RequestBody,
}

/// The body of a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestBody {
    None,
    Length(Vec<u8>),
    /// The chunks, and the trailer section's field lines.
    Chunked(Vec<Vec<u8>>, Vec<(String, Vec<u8>)>),
}

impl Request {
    /// A request with `method` and `target`, HTTP/1.1, with
    /// `host: 127.0.0.1`.
    pub fn new(method: impl Into<String>, target: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            target: target.into(),
            version: "HTTP/1.1",
            host: Some("127.0.0.1".to_owned()),
            fields: Vec::new(),
            body: RequestBody::None,
        }
    }

    /// A GET request for `target`.
    pub fn get(target: impl Into<String>) -> Self {
        Request::new("GET", target)
    }

    /// Sends it as HTTP/1.0, without a Host field.
    #[must_use]
    pub fn http10(mut self) -> Self {
        self.version = "HTTP/1.0";
        self.host = None;
        self
    }

    /// Sets the Host field's value, or leaves it out with `None`.
    #[must_use]
    pub fn host(mut self, host: Option<&str>) -> Self {
        self.host = host.map(str::to_owned);
        self
    }

    /// Adds a field line.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.fields.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// A body with a Content-Length field.
    #[must_use]
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = RequestBody::Length(body.as_ref().to_vec());
        self
    }

    /// A body in the chunked transfer coding, one chunk per piece.
    #[must_use]
    pub fn chunked<P: AsRef<[u8]>>(mut self, pieces: &[P]) -> Self {
        self.body = RequestBody::Chunked(
            pieces.iter().map(|piece| piece.as_ref().to_vec()).collect(),
            Vec::new(),
        );
        self
    }

    /// A body in the chunked transfer coding, one chunk per piece, with
    /// a trailer section of `trailers` after the last-chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi_conformance::suite::wire::Request;
    ///
    /// let bytes = Request::new("PUT", "/x")
    ///     .chunked_with_trailers(&["ab"], &[("x-sum", "3")])
    ///     .to_bytes();
    /// assert!(bytes.ends_with(b"2\r\nab\r\n0\r\nx-sum: 3\r\n\r\n"));
    /// ```
    #[must_use]
    pub fn chunked_with_trailers<P: AsRef<[u8]>>(
        mut self,
        pieces: &[P],
        trailers: &[(&str, &str)],
    ) -> Self {
        self.body = RequestBody::Chunked(
            pieces.iter().map(|piece| piece.as_ref().to_vec()).collect(),
            trailers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
                .collect(),
        );
        self
    }

    /// The head alone: request line and fields, blank line included (with
    /// the framing field of the body, but not the body).
    #[must_use]
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut bytes =
            format!("{} {} {}\r\n", self.method, self.target, self.version).into_bytes();
        if let Some(host) = &self.host {
            bytes.extend_from_slice(format!("host: {host}\r\n").as_bytes());
        }
        for (name, value) in &self.fields {
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        match &self.body {
            RequestBody::None => {}
            RequestBody::Length(body) => {
                bytes.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
            }
            RequestBody::Chunked(..) => bytes.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        bytes.extend_from_slice(b"\r\n");
        bytes
    }

    /// The body bytes as they go on the wire (chunked framing included).
    #[must_use]
    pub fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            RequestBody::None => Vec::new(),
            RequestBody::Length(body) => body.clone(),
            RequestBody::Chunked(pieces, trailers) => {
                let mut bytes = Vec::new();
                for piece in pieces.iter().filter(|piece| !piece.is_empty()) {
                    bytes.extend_from_slice(&chunk(piece));
                }
                bytes.extend_from_slice(b"0\r\n");
                for (name, value) in trailers {
                    bytes.extend_from_slice(name.as_bytes());
                    bytes.extend_from_slice(b": ");
                    bytes.extend_from_slice(value);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"\r\n");
                bytes
            }
        }
    }

    /// The whole request.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.head_bytes();
        bytes.extend_from_slice(&self.body_bytes());
        bytes
    }
}

/// One chunk of the chunked coding around `data`.
#[must_use]
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{:x}\r\n", data.len()).into_bytes();
    bytes.extend_from_slice(data);
    bytes.extend_from_slice(b"\r\n");
    bytes
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    /// A server that answers the first connection with `script`: bytes to
    /// write, with optional pauses, then closes unless `keep` is set.
    fn scripted(script: Vec<Option<Vec<u8>>>, keep: Duration) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            for step in script {
                match step {
                    Some(bytes) => {
                        let _ = stream.write_all(&bytes);
                    }
                    None => thread::sleep(Duration::from_millis(150)),
                }
            }
            thread::sleep(keep);
        });
        addr
    }

    fn once(bytes: &[u8]) -> Connection {
        Connection::connect(scripted(vec![Some(bytes.to_vec())], Duration::ZERO)).unwrap()
    }

    #[test]
    fn content_length_body_is_complete_and_leaves_the_rest() {
        let mut conn = once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n");
        let response = conn.read_response("GET").unwrap();
        assert_eq!(response.head.status, 200);
        assert_eq!(response.head.fields_named("X-A"), [b"1", b"2"]);
        assert_eq!(response.body.data, b"hello");
        assert_eq!(response.body.framing, Framing::Length(5));
        assert!(response.body.complete);
        let next = conn.read_response("GET").unwrap();
        assert_eq!(next.head.status, 204);
        assert_eq!(next.body.framing, Framing::NoBody);
    }

    #[test]
    fn short_content_length_body_is_incomplete() {
        let mut conn = once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
        let body = conn.read_response("GET").unwrap().body;
        assert_eq!(body.data, b"hello");
        assert!(!body.complete);
    }

    #[test]
    fn chunked_body_with_extensions_and_trailer() {
        let mut conn = once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n \r\n0\r\nT: v\r\n\r\n",
        );
        let body = conn.read_response("GET").unwrap().body;
        assert_eq!(body.data, b"hello ");
        assert_eq!(body.chunk_sizes, [5, 1]);
        assert_eq!(body.trailers, [("T".to_owned(), b"v".to_vec())]);
        assert_eq!(body.trailers_named("t"), [b"v"]);
        assert!(body.complete);
    }

    #[test]
    fn a_broken_trailer_line_is_a_framing_error() {
        let mut conn = once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nno colon here\r\n\r\n",
        );
        let error = conn.read_response("GET").unwrap_err();
        assert!(error.is_framing(), "{error}");
        assert!(error.to_string().contains("no colon here"), "{error}");
    }

    #[test]
    fn chunked_body_without_last_chunk_is_incomplete() {
        let mut conn = once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        let body = conn.read_response("GET").unwrap().body;
        assert_eq!(body.data, b"hello");
        assert!(!body.complete);
    }

    #[test]
    fn broken_chunk_size_is_a_framing_error() {
        let mut conn = once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        let error = conn.read_response("GET").unwrap_err();
        assert!(error.is_framing(), "{error}");
        assert!(error.to_string().contains("zz"), "{error}");
    }

    #[test]
    fn both_length_and_chunked_is_a_framing_error() {
        let mut conn = once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        let error = conn.read_response("GET").unwrap_err();
        assert!(
            matches!(error, WireError::ConflictingFraming { .. }),
            "{error}"
        );
    }

    #[test]
    fn interim_heads_are_reported_apart() {
        let mut conn =
            once(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let response = conn.read_response("POST").unwrap();
        assert_eq!(response.interim.len(), 1);
        assert_eq!(response.interim[0].status, 100);
        assert_eq!(response.body.data, b"ok");
    }

    #[test]
    fn close_delimited_body_and_head_request() {
        let mut conn = once(b"HTTP/1.0 200 OK\r\n\r\nall of it");
        let body = conn.read_response("GET").unwrap().body;
        assert_eq!(
            (body.framing, body.data.as_slice()),
            (Framing::Close, &b"all of it"[..])
        );
        let mut conn = once(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n");
        let body = conn.read_response("HEAD").unwrap().body;
        assert_eq!(body.framing, Framing::NoBody);
        assert!(body.complete);
    }

    #[test]
    fn silence_data_and_close_are_told_apart() {
        let addr = scripted(
            vec![None, Some(b"late".to_vec())],
            Duration::from_millis(300),
        );
        let mut conn = Connection::connect(addr).unwrap();
        assert_eq!(
            conn.wait_for_data(Duration::from_millis(50)).unwrap(),
            Arrival::Nothing
        );
        assert!(matches!(
            conn.expect_silence(Duration::from_secs(2)),
            Err(WireError::UnexpectedData { .. })
        ));
        assert_eq!(conn.read_to_close(100).unwrap(), b"late");
        assert_eq!(
            conn.wait_for_data(Duration::from_millis(50)).unwrap(),
            Arrival::Closed
        );
    }

    #[test]
    fn a_hanging_server_times_out_with_what_arrived() {
        let addr = scripted(
            vec![Some(
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart".to_vec(),
            )],
            Duration::from_secs(2),
        );
        let mut conn = Connection::connect(addr).unwrap();
        conn.set_timeout(Duration::from_millis(200));
        let error = conn.read_response("GET").unwrap_err();
        assert!(matches!(error, WireError::Timeout { .. }), "{error}");
        assert!(error.to_string().contains("part"), "{error}");
    }

    #[test]
    fn incremental_reads_see_pieces_as_they_arrive() {
        let addr = scripted(
            vec![
                Some(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n".to_vec()),
                None,
                Some(b"3\r\ntwo\r\n0\r\n\r\n".to_vec()),
            ],
            Duration::ZERO,
        );
        let mut conn = Connection::connect(addr).unwrap();
        let (_, head) = conn.read_final_head().unwrap();
        let mut reader = conn.body_reader(&head, "GET").unwrap();
        assert_eq!(reader.next_data().unwrap().unwrap(), b"one");
        assert!(!reader.is_done());
        assert_eq!(reader.read_at_least(6).unwrap(), b"two");
        assert_eq!(reader.next_data().unwrap(), None);
        assert!(reader.is_complete());
    }

    #[test]
    fn request_builder_frames_bodies() {
        let bytes = Request::new("PUT", "/x")
            .http10()
            .chunked(&["ab", "", "c"])
            .to_bytes();
        assert_eq!(
            bytes,
            b"PUT /x HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
        );
    }
}
