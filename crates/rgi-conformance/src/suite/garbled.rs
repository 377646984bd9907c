//! Garbled input for property tests of a server's HTTP/1.1 parser: valid
//! requests, damage to apply to them, and a judge of what comes back.
//!
//! The suite's cases send the malformed requests their authors thought of;
//! a property test sends the ones nobody thought of. This module holds the
//! parts such a test needs whatever server it targets, so that a server
//! crate writes only the generators (with `proptest`, `quickcheck` or a
//! fuzzer) and the server's start-up:
//!
//! - [`valid_request`] builds a POST with a body framed either way;
//! - [`Damage`] and [`damage`] change, insert or remove bytes of it;
//! - [`judge`] sends bytes on a new connection, ends the sending side and
//!   reads to the close, then checks that every answer is a well-formed
//!   HTTP/1.1 response with one of the expected statuses, that every
//!   refusal (a 4xx or 5xx) says `connection: close`, and that nothing
//!   follows a refusal (no request smuggled behind it was answered);
//! - [`Recorder`] is the application to serve meanwhile: it reads each
//!   body whole (so body faults surface) and records each path;
//! - [`check_arbitrary`] and [`check_damaged`] are the two properties
//!   whole, for a server serving a [`Recorder`].
//!
//! # Examples
//!
//! ```no_run
//! use rgi_conformance::suite::garbled::{Damage, damage, judge, valid_request};
//!
//! # fn main() -> Result<(), rgi_conformance::suite::garbled::JudgeError> {
//! let addr = "127.0.0.1:8080".parse().expect("an address");
//! let mut request = valid_request(true, b"hello");
//! damage(&mut request, &[Damage::Replace(40, b'\0')]);
//! request.extend_from_slice(b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
//! let answers = judge(addr, &request, &[200, 400, 413, 431, 501])?;
//! assert!(answers.iter().all(|answer| answer.status < 400 || answer.closes));
//! # Ok(())
//! # }
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{BoxError, Environ, ResponseHead, StartResponse};

/// How long [`judge`] waits for the server to answer and close.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The statuses a server serving a [`Recorder`] may give: the recorder's
/// answer, a 500 when its body read fails, or one of the refusals of a
/// parser and its limits.
pub const STATUSES: [u16; 12] = [200, 400, 408, 411, 413, 414, 417, 431, 500, 501, 503, 505];

/// The path of the request [`check_damaged`] smuggles behind the damaged
/// one.
pub const SMUGGLED_PATH: &str = "/smuggled";

/// One final response, as far as a property needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Whether it says `connection: close`.
    pub closes: bool,
}

/// What [`judge`] found wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JudgeError {
    /// The connection could not be made or read.
    #[error("connection to {addr} failed: {source}")]
    Io {
        /// The server's address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The server neither answered fully nor closed within [`PATIENCE`].
    #[error("no close within {PATIENCE:?} after {received} bytes")]
    NoClose {
        /// The bytes received by then.
        received: usize,
    },
    /// What came back is not a sequence of well-formed responses.
    #[error("malformed answer: {answer:?}")]
    Malformed {
        /// The bytes, lossily as text.
        answer: String,
    },
    /// A status outside the expected ones.
    #[error("unexpected status {status}")]
    UnexpectedStatus {
        /// The status received.
        status: u16,
    },
    /// A refusal without `connection: close`.
    #[error("a {status} without connection: close")]
    RefusalKeptOpen {
        /// The refusal's status.
        status: u16,
    },
    /// A response after a refusal: the server went on reading the bytes
    /// after a request it refused.
    #[error("a {after} after the refusal {refusal}")]
    AnswerAfterRefusal {
        /// The refusal's status.
        refusal: u16,
        /// The status of the answer that followed.
        after: u16,
    },
    /// After garbage on one connection, a plain request on another was not
    /// answered `200`.
    #[error("the next client got {status:?}, not 200")]
    NotServingAfter {
        /// The status it got, if any.
        status: Option<u16>,
    },
    /// The application was called for the request smuggled behind a
    /// refused one.
    #[error("the request behind a refusal reached the application (paths seen: {seen:?})")]
    Smuggled {
        /// The paths the application was called for.
        seen: Vec<String>,
    },
}

/// The application a server serves for [`check_arbitrary`] and
/// [`check_damaged`]: reads each request body whole, up to 64 KiB, answers
/// it back with `200`, and records each request's path. Clones share the
/// record.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    /// A recorder that has seen nothing.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The paths of the requests the application was called for, in order.
    #[must_use]
    pub fn seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl rgi::Application for Recorder {
    type Body = Bytes;

    fn call(&self, mut environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(environ.raw_path().to_owned());
        let body = environ.input_mut().read_to_bytes(1 << 16)?;
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(body)
    }
}

/// The first property: `bytes` of any kind get only well-formed answers
/// ([`judge`] with [`STATUSES`]), and a plain request on a new connection
/// is still answered `200` afterwards.
///
/// # Errors
///
/// The first [`JudgeError`] found.
pub fn check_arbitrary(addr: SocketAddr, bytes: &[u8]) -> Result<(), JudgeError> {
    judge(addr, bytes, &STATUSES)?;
    let after = judge(
        addr,
        b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        &STATUSES,
    )?;
    match after.first().map(|answer| answer.status) {
        Some(200) => Ok(()),
        status => Err(JudgeError::NotServingAfter { status }),
    }
}

/// The second property: a valid request (`chunked`, `body`) with `changes`
/// applied and a request for [`SMUGGLED_PATH`] in the same write gets only
/// well-formed answers, and when the first is refused (or not answered) the
/// `recorder` the server serves was never called for the second.
///
/// # Errors
///
/// The first [`JudgeError`] found.
pub fn check_damaged(
    addr: SocketAddr,
    recorder: &Recorder,
    chunked: bool,
    body: &[u8],
    changes: &[Damage],
) -> Result<(), JudgeError> {
    let mut request = valid_request(chunked, body);
    damage(&mut request, changes);
    request
        .extend_from_slice(format!("GET {SMUGGLED_PATH} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    let answers = judge(addr, &request, &STATUSES)?;
    let refused = answers.first().is_none_or(|first| first.status >= 400);
    let seen = recorder.seen();
    if refused && seen.iter().any(|path| path == SMUGGLED_PATH) {
        return Err(JudgeError::Smuggled { seen });
    }
    Ok(())
}

/// A valid `POST /echo` with `body`, framed by `Transfer-Encoding: chunked`
/// or by `Content-Length`.
#[must_use]
pub fn valid_request(chunked: bool, body: &[u8]) -> Vec<u8> {
    let mut request = b"POST /echo HTTP/1.1\r\nHost: a\r\n".to_vec();
    if chunked {
        request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        if !body.is_empty() {
            request.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            request.extend_from_slice(body);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
    } else {
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
    }
    request
}

/// One change to a request's bytes; positions wrap around its length, so
/// any generated number is a valid position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The byte at the position becomes this one.
    Replace(usize, u8),
    /// This byte is inserted at the position.
    Insert(usize, u8),
    /// The byte at the position is removed.
    Remove(usize),
}

/// Applies each change in turn; an empty request stays empty.
pub fn damage(request: &mut Vec<u8>, changes: &[Damage]) {
    for change in changes {
        let len = request.len();
        if len == 0 {
            return;
        }
        match *change {
            Damage::Replace(at, byte) => request[at % len] = byte,
            Damage::Insert(at, byte) => request.insert(at % (len + 1), byte),
            Damage::Remove(at) => {
                request.remove(at % len);
            }
        }
    }
}

/// Splits `bytes` into final responses without trusting them: `None` when
/// they are not a sequence of well-formed HTTP/1.1 responses, each a head
/// and a body framed by Content-Length or chunked (or none). Interim `1xx`
/// heads are skipped.
#[must_use]
pub fn parse_answers(mut bytes: &[u8]) -> Option<Vec<Answer>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut fields);
        let httparse::Status::Complete(head_len) = response.parse(bytes).ok()? else {
            return None;
        };
        let status = response.code?;
        let field = |name: &str| {
            response
                .headers
                .iter()
                .find(|field| field.name.eq_ignore_ascii_case(name))
                .map(|field| String::from_utf8_lossy(field.value).to_ascii_lowercase())
        };
        let closes = field("connection").is_some_and(|value| value.contains("close"));
        let length = field("content-length");
        let chunked = field("transfer-encoding").is_some_and(|value| value == "chunked");
        bytes = bytes.get(head_len..)?;
        if status < 200 {
            continue;
        }
        if let Some(length) = length {
            let length: usize = length.parse().ok()?;
            bytes = bytes.get(length..)?;
        } else if chunked {
            let end = bytes.windows(5).position(|window| window == b"0\r\n\r\n")?;
            bytes = bytes.get(end + 5..)?;
        }
        out.push(Answer { status, closes });
    }
    Some(out)
}

/// Sends `bytes` on a new connection to `addr`, ends the sending side,
/// reads until the server closes, and judges the answers (see the module
/// documentation).
///
/// # Errors
///
/// A [`JudgeError`] naming the first thing wrong.
pub fn judge(addr: SocketAddr, bytes: &[u8], statuses: &[u16]) -> Result<Vec<Answer>, JudgeError> {
    let io = |source| JudgeError::Io { addr, source };
    let mut stream = TcpStream::connect(addr).map_err(io)?;
    stream.set_read_timeout(Some(PATIENCE)).map_err(io)?;
    stream.set_write_timeout(Some(PATIENCE)).map_err(io)?;
    // A server that refuses early may reset before all is written; what it
    // answered is still read below.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let received = read_to_close(&mut stream)?;
    let answers = parse_answers(&received).ok_or_else(|| JudgeError::Malformed {
        answer: String::from_utf8_lossy(&received).into_owned(),
    })?;
    let mut refusal = None;
    for answer in &answers {
        if let Some(refusal) = refusal {
            return Err(JudgeError::AnswerAfterRefusal {
                refusal,
                after: answer.status,
            });
        }
        if !statuses.contains(&answer.status) {
            return Err(JudgeError::UnexpectedStatus {
                status: answer.status,
            });
        }
        if answer.status >= 400 {
            if !answer.closes {
                return Err(JudgeError::RefusalKeptOpen {
                    status: answer.status,
                });
            }
            refusal = Some(answer.status);
        }
    }
    Ok(answers)
}

fn read_to_close(stream: &mut TcpStream) -> Result<Vec<u8>, JudgeError> {
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + PATIENCE;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            // A reset after the answer is how some servers close.
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => return Ok(received),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                return Err(JudgeError::NoClose {
                    received: received.len(),
                });
            }
        }
        if Instant::now() > deadline {
            return Err(JudgeError::NoClose {
                received: received.len(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_split_by_their_framing() {
        let bytes = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi\
            HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
            HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let answers = parse_answers(bytes).unwrap_or_default();
        assert_eq!(
            answers,
            [
                Answer {
                    status: 200,
                    closes: false
                },
                Answer {
                    status: 200,
                    closes: false
                },
                Answer {
                    status: 400,
                    closes: true
                },
            ]
        );
        assert_eq!(
            parse_answers(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhi"),
            None
        );
        assert_eq!(parse_answers(b"garbage"), None);
    }

    #[test]
    fn damage_wraps_positions_and_spares_an_empty_request() {
        let mut request = valid_request(false, b"ab");
        let before = request.len();
        damage(
            &mut request,
            &[
                Damage::Insert(usize::MAX, b'x'),
                Damage::Remove(0),
                Damage::Replace(7, b'!'),
            ],
        );
        assert_eq!(request.len(), before);
        let mut empty = Vec::new();
        damage(&mut empty, &[Damage::Remove(3)]);
        assert!(empty.is_empty());
        assert!(valid_request(true, b"abc").ends_with(b"3\r\nabc\r\n0\r\n\r\n"));
    }
}
