//! The client's fault in a request body, propagated by the application
//! before it starts its response (`RGI-FAIL-10`): the server answers the
//! status the typed error names, not 500, and closes the connection.

use std::io::Read;
use std::sync::mpsc::{self, Sender};

use bytes::Bytes;
use rgi::{BoxError, Environ, InputError};

use super::super::kit::{Esc, OrFail, Served, WAIT, ensure, head_with_length, recv};
use crate::suite::{Failure, ServerUnderTest};

/// Reads the whole body and propagates a read error with `?` before
/// starting; reports on `seen` the typed error the read returned, if any.
fn propagating(seen: Sender<Option<String>>) -> impl rgi::Application {
    rgi::from_fn(
        move |mut environ: Environ, start| -> Result<Bytes, BoxError> {
            let mut body = Vec::new();
            let read = environ.input_mut().read_to_end(&mut body);
            let typed = read
                .as_ref()
                .err()
                .and_then(InputError::from_io)
                .map(|error| format!("{error:?}"));
            let _ = seen.send(typed);
            read?;
            start.start(head_with_length(200, body.len() as u64))?;
            Ok(Bytes::from(body))
        },
    )
}

sync_case!(
    rgi_fail_10_client_body_error_answered_with_its_status
    ["RGI-FAIL-10", "RGI-INPUT-17", "RGI-INPUT-18"]
    "a malformed chunk size, and a chunked body that runs past the body limit, reach the application as typed InputErrors; propagated before the head they are answered 400 and 413 with a close, never 500"
    => client_body_error
);

/// How a chunked upload of the case goes on after its first bytes.
enum Rest {
    /// Nothing more: the bytes sent are already malformed.
    Nothing,
    /// Zeros up to this many body bytes in all, unless the application
    /// has already seen its error (a server may refuse a chunk announced
    /// past its limit at once, RGI-INPUT-18 only requires the refusal once
    /// the bytes pass it).
    UpTo(u64),
}

/// The piece the over-limit body is written in.
const PIECE: usize = 64 * 1024;

fn client_body_error(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-10";
    let limits = server.claims().limits;
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, propagating(tx), CLAUSE)?;
    let over_limit = limits.body.saturating_add(1);
    let first = b"0123456789abcdef";
    let cases: [(String, Rest, u16, &str, &'static str); 2] = [
        (
            "zz\r\nhello\r\n0\r\n\r\n".to_owned(),
            Rest::Nothing,
            400,
            "MalformedBody",
            "RGI-INPUT-17",
        ),
        (
            format!("{over_limit:x}\r\n{}", String::from_utf8_lossy(first)),
            Rest::UpTo(over_limit),
            413,
            "BodyLimitExceeded",
            "RGI-INPUT-18",
        ),
    ];
    for (body, rest, status, variant, typed_clause) in cases {
        let bytes = format!(
            "POST /upload HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n{body}"
        );
        let what = Esc(bytes.as_bytes()).to_string();
        let mut conn = served.connect()?;
        conn.send(bytes.as_bytes())
            .or_fail(CLAUSE, "sending a chunked upload")?;
        let typed = match rest {
            Rest::Nothing => recv(&seen, WAIT, CLAUSE, "the application was not called")?,
            Rest::UpTo(total) => send_until_seen(&mut conn, &seen, total - first.len() as u64)?,
        };
        ensure(
            typed
                .as_deref()
                .is_some_and(|seen| seen.starts_with(variant)),
            typed_clause,
            || {
                format!(
                    "reading the body of {what} returned {typed:?}, expected InputError::{variant}"
                )
            },
        )?;
        let response = conn
            .read_response("POST")
            .or_fail(CLAUSE, &format!("reading the answer to {what}"))?;
        ensure(response.head.status == status, CLAUSE, || {
            format!(
                "the application propagated InputError::{variant} before its head; the server answered {}, expected {status}",
                response.head.status
            )
        })?;
        ensure(response.head.lists("connection", "close"), CLAUSE, || {
            format!("the {status} has no `connection: close`")
        })?;
        let rest = conn.read_to_close(64 * 1024).map_err(|err| {
            Failure::new(
                CLAUSE,
                format!("the connection stayed open after the {status}: {err}"),
            )
        })?;
        ensure(rest.is_empty(), CLAUSE, || {
            format!("more came after the {status}: {}", Esc(&rest))
        })?;
    }
    served.stop()
}

/// Writes `remaining` zero bytes of the chunk in [`PIECE`]s, stopping as
/// soon as the application reports what its read returned, and returns
/// that report. Stopping early matters: a server that refused at the
/// announcement closes the connection, and unread bytes would turn its
/// close into a reset that loses the answer.
fn send_until_seen(
    conn: &mut crate::suite::wire::Connection,
    seen: &mpsc::Receiver<Option<String>>,
    mut remaining: u64,
) -> Result<Option<String>, Failure> {
    const CLAUSE: &str = "RGI-INPUT-18";
    let zeros = [b'0'; PIECE];
    // An early refusal comes at once; give it the time of a round trip
    // through the server before pushing the rest.
    if let Ok(typed) = seen.recv_timeout(super::super::kit::QUIET) {
        return Ok(typed);
    }
    while remaining > 0 {
        if let Ok(typed) = seen.try_recv() {
            return Ok(typed);
        }
        let piece = usize::try_from(remaining).map_or(PIECE, |left| left.min(PIECE));
        conn.send(&zeros[..piece])
            .or_fail(CLAUSE, "sending the body past the limit")?;
        remaining -= piece as u64;
    }
    recv(
        seen,
        WAIT,
        CLAUSE,
        "the application's read did not fail once the body passed the limit",
    )
}

sync_case!(
    rgi_limit_7_stalled_body_is_408
    needs ShortTimes
    ["RGI-LIMIT-7", "RGI-INPUT-19"]
    "a body that stops half-way while the application reads it: the read fails with InputError::BodyTimedOut once the stalled-body time passes, and propagated before the head it is answered 408 with a close"
    => stalled_body
);

fn stalled_body(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-LIMIT-7";
    let limits = server.claims().limits;
    let within = limits.body_time + WAIT;
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, propagating(tx), CLAUSE)?;
    let mut conn = served.connect()?;
    conn.set_timeout(within);
    conn.send(b"POST /upload HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 10\r\n\r\nhalf.")
        .or_fail(CLAUSE, "sending half a body")?;
    let typed = recv(&seen, within, CLAUSE, "the application's read did not end")?;
    ensure(
        typed
            .as_deref()
            .is_some_and(|seen| seen.starts_with("BodyTimedOut")),
        "RGI-INPUT-19",
        || {
            format!(
                "the read of a stalled body returned {typed:?}, expected InputError::BodyTimedOut"
            )
        },
    )?;
    let response = conn
        .read_response("POST")
        .or_fail(CLAUSE, "reading the answer to a stalled body")?;
    ensure(response.head.status == 408, CLAUSE, || {
        format!(
            "the application propagated InputError::BodyTimedOut before its head; the server answered {}, expected 408",
            response.head.status
        )
    })?;
    ensure(response.head.lists("connection", "close"), CLAUSE, || {
        "the 408 has no `connection: close`".to_owned()
    })?;
    let rest = conn.read_to_close(64 * 1024).map_err(|err| {
        Failure::new(
            CLAUSE,
            format!("the connection stayed open after the 408: {err}"),
        )
    })?;
    ensure(rest.is_empty(), CLAUSE, || {
        format!("more came after the 408: {}", Esc(&rest))
    })?;
    served.stop()
}
