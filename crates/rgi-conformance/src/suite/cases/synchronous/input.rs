//! The request body as the application reads it (`RGI-INPUT`): framing,
//! the end of the body, truncation, `Expect: 100-continue`, and reads after
//! the response.

use std::io::{self, BufRead, Read};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use rgi::{BoxError, Environ, Hints, InputError, InputUse};

use super::super::kit::{
    Esc, Gate, OrFail, QUIET, Seen, Served, WAIT, contains, describe_io, echo, ensure, exchange,
    expect_status, head, head_with_length, read_body, recv, response_or_close,
};
use crate::suite::wire::{Arrival, Request, chunk};
use crate::suite::{Failure, ServerUnderTest};

/// `len` bytes of a pattern that shows shifts and repeats.
pub(super) fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|index| u8::try_from((index * 7 + index / 251) % 256).unwrap_or(0))
        .collect()
}

/// How a read of a whole body ended, as an application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadOutcome {
    /// The body ended normally after these bytes.
    Complete(Vec<u8>),
    /// `InputError::Truncated`, and a later read failed the same way.
    Truncated {
        declared: u64,
        received: u64,
        sticky: bool,
    },
    /// An error of kind `UnexpectedEof` without a typed `Truncated`.
    UnexpectedEof(String),
    /// Another error.
    Other(String),
}

/// Reads the whole input and classifies how it ended.
fn read_outcome(environ: &mut Environ) -> ReadOutcome {
    let mut body = Vec::new();
    let input = environ.input_mut();
    match input.read_to_end(&mut body) {
        Ok(_) => ReadOutcome::Complete(body),
        Err(err) => match InputError::from_io(&err) {
            Some(InputError::Truncated { declared, received }) => {
                let (declared, received) = (*declared, *received);
                let again = input.read(&mut [0_u8; 16]);
                let sticky = matches!(
                    &again,
                    Err(later) if matches!(InputError::from_io(later), Some(InputError::Truncated { .. }))
                );
                ReadOutcome::Truncated {
                    declared,
                    received,
                    sticky,
                }
            }
            _ if err.kind() == io::ErrorKind::UnexpectedEof => {
                ReadOutcome::UnexpectedEof(describe_io(&err))
            }
            _ => ReadOutcome::Other(describe_io(&err)),
        },
    }
}

/// An application that reports how reading the whole body ended.
fn reading_app(outcomes: mpsc::Sender<ReadOutcome>) -> impl rgi::Application {
    rgi::from_fn(move |mut environ: Environ, start| {
        let outcome = read_outcome(&mut environ);
        let _ = outcomes.send(outcome);
        start.start(head_with_length(200, 4))?;
        Ok(Bytes::from_static(b"read"))
    })
}

sync_case!(
    rgi_input_3_content_length_body_read_exactly
    ["RGI-INPUT-3", "RGI-INPUT-1"]
    "a 96000-byte Content-Length upload reads back exactly, and the pipelined request after it is intact"
    => content_length_body
);

fn content_length_body(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-INPUT-3";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, true), CLAUSE)?;
    let body = pattern(96_000);
    let mut bytes = Request::new("POST", "/upload").body(&body).to_bytes();
    bytes.extend_from_slice(&Request::get("/after").to_bytes());
    let mut conn = served.connect()?;
    conn.send(&bytes)
        .or_fail(CLAUSE, "sending the upload and the next request")?;
    let first = conn
        .read_response("POST")
        .or_fail(CLAUSE, "reading the upload's response")?;
    expect_status(&first, 200, CLAUSE, "the upload")?;
    let upload: Seen = recv(
        &seen,
        WAIT,
        CLAUSE,
        "the upload did not reach the application",
    )?;
    match &upload.body {
        Some(Ok(read)) => ensure(read == &body, CLAUSE, || {
            format!(
                "the application read {} bytes of the 96000 sent{}",
                read.len(),
                read.iter()
                    .zip(&body)
                    .position(|(a, b)| a != b)
                    .map(|at| format!(", differing from byte {at}"))
                    .unwrap_or_default()
            )
        })?,
        other => {
            return Err(Failure::new(
                CLAUSE,
                format!("reading the upload failed: {other:?}"),
            ));
        }
    }
    let second = conn
        .read_response("GET")
        .or_fail(CLAUSE, "reading the pipelined request's response")?;
    ensure(second.body.data == b"GET /after", CLAUSE, || {
        format!(
            "the request pipelined after the upload was answered with {} (status {})",
            Esc(&second.body.data),
            second.head.status
        )
    })?;
    served.stop()
}

sync_case!(
    rgi_input_2_chunked_body_decoded
    ["RGI-INPUT-2", "RGI-INPUT-1", "RGI-ENV-10"]
    "a chunked upload sent piece by piece, with extensions and trailers, reads back exactly, and the request after it is intact"
    => chunked_body
);

fn chunked_body(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-INPUT-2";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, true), CLAUSE)?;
    let pieces: [&[u8]; 4] = [b"first,", b"\r\n0\r\n\r\n", b"", b"last"];
    let mut conn = served.connect()?;
    conn.send(
        &Request::new("POST", "/chunked")
            .chunked(&["x"])
            .head_bytes(),
    )
    .or_fail(CLAUSE, "sending the head")?;
    for piece in pieces.iter().filter(|piece| !piece.is_empty()) {
        let mut framed = chunk(piece);
        if piece.starts_with(b"first") {
            framed = [
                format!("{:X};ext=\"v\"\r\n", piece.len()).as_bytes(),
                piece,
                b"\r\n",
            ]
            .concat();
        }
        conn.send(&framed).or_fail(CLAUSE, "sending a chunk")?;
        thread::sleep(Duration::from_millis(30));
    }
    let mut end = b"0\r\nx-trailer: t\r\n\r\n".to_vec();
    end.extend_from_slice(&Request::get("/after").to_bytes());
    conn.send(&end)
        .or_fail(CLAUSE, "sending the last-chunk and the next request")?;
    let first = conn
        .read_response("POST")
        .or_fail(CLAUSE, "reading the upload's response")?;
    expect_status(&first, 200, CLAUSE, "the chunked upload")?;
    let upload = recv(
        &seen,
        WAIT,
        CLAUSE,
        "the upload did not reach the application",
    )?;
    let expected = pieces.concat();
    ensure(
        matches!(&upload.body, Some(Ok(read)) if *read == expected),
        CLAUSE,
        || {
            format!(
                "the chunked body read as {}, expected {}",
                match &upload.body {
                    Some(Ok(read)) => Esc(read).to_string(),
                    other => format!("{other:?}"),
                },
                Esc(&expected)
            )
        },
    )?;
    ensure(upload.content_length.is_none(), "RGI-ENV-10", || {
        format!(
            "a chunked body has content_length() None, got {:?}",
            upload.content_length
        )
    })?;
    let second = conn
        .read_response("GET")
        .or_fail(CLAUSE, "reading the next request's response")?;
    ensure(second.body.data == b"GET /after", CLAUSE, || {
        format!(
            "the request after the chunked upload was answered with {} (status {}): the trailer or body leaked",
            Esc(&second.body.data),
            second.head.status
        )
    })?;
    let after = recv(
        &seen,
        WAIT,
        CLAUSE,
        "the next request did not reach the application",
    )?;
    ensure(after.values("x-trailer").is_empty(), CLAUSE, || {
        "the upload's trailer field reached the next request".to_owned()
    })?;
    served.stop()
}

sync_case!(
    rgi_input_4_end_of_body_is_eof_forever
    ["RGI-INPUT-4"]
    "after the whole body, every further read, read_chunk and line read returns the end at once"
    => eof_forever
);

fn eof_forever(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-INPUT-4";
    let (tx, reports) = mpsc::channel();
    let app = rgi::from_fn(move |mut environ: Environ, start| {
        let input = environ.input_mut();
        let mut problems = Vec::new();
        let mut body = Vec::new();
        if let Err(err) = input.read_to_end(&mut body) {
            problems.push(format!("reading the body failed: {}", describe_io(&err)));
        }
        for attempt in 0..3 {
            match input.read(&mut [0_u8; 32]) {
                Ok(0) => {}
                other => problems.push(format!("read #{attempt} after the end returned {other:?}")),
            }
        }
        match input.read_chunk(64) {
            Ok(chunk) if chunk.is_empty() => {}
            other => problems.push(format!("read_chunk after the end returned {other:?}")),
        }
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => {}
            other => problems.push(format!("a line read after the end returned {other:?}")),
        }
        let _ = tx.send((body, problems));
        start.start(head_with_length(200, 2))?;
        Ok(Bytes::from_static(b"ok"))
    });
    let served = Served::start(server, app, CLAUSE)?;
    for request in [
        Request::new("POST", "/length").body("0123456789"),
        Request::new("POST", "/chunked").chunked(&["01234", "56789"]),
    ] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &request, "POST", CLAUSE).map_err(|failure| {
            Failure::new(
                CLAUSE,
                format!(
                    "no response after reading past the end (did a read block?): {}",
                    failure.reason()
                ),
            )
        })?;
        expect_status(&response, 200, CLAUSE, "reading past the end")?;
        let (body, problems) = recv(&reports, WAIT, CLAUSE, "the application was not called")?;
        ensure(body == b"0123456789", CLAUSE, || {
            format!("the body read as {}, expected \"0123456789\"", Esc(&body))
        })?;
        ensure(problems.is_empty(), CLAUSE, || problems.join("; "))?;
    }
    served.stop()
}

/// Sends a request head and part of its body, then shuts down the
/// client's side; returns what the application reported, or `None` when
/// it was not called but the server answered or closed (a pre-read that
/// saw the truncation, which `RGI-INPUT-11` allows).
fn truncated_upload(
    served: &Served,
    reports: &mpsc::Receiver<ReadOutcome>,
    bytes: &[u8],
    clause: &'static str,
) -> Result<Option<ReadOutcome>, Failure> {
    let mut conn = served.connect()?;
    conn.send(bytes)
        .or_fail(clause, "sending the partial upload")?;
    conn.shutdown_write()
        .or_fail(clause, "closing the client's side")?;
    if let Ok(outcome) = reports.recv_timeout(WAIT) {
        return Ok(Some(outcome));
    }
    match conn
        .wait_for_data(QUIET)
        .or_fail(clause, "waiting for an answer")?
    {
        Arrival::Nothing => Err(Failure::new(
            clause,
            "after a truncated upload the application was never called and the server neither answered nor closed",
        )),
        Arrival::Data(_) | Arrival::Closed => Ok(None),
    }
}

sync_case!(
    rgi_input_5_truncated_body_is_an_error
    ["RGI-INPUT-5"]
    "an upload cut short of its Content-Length is InputError::Truncated, sticky, never a short body that looks complete"
    => truncated_length
);

fn truncated_length(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-INPUT-5";
    let (tx, reports) = mpsc::channel();
    let served = Served::start(server, reading_app(tx), CLAUSE)?;
    let mut bytes =
        b"POST /cut HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 1000\r\n\r\n".to_vec();
    bytes.extend_from_slice(&pattern(100));
    if let Some(outcome) = truncated_upload(&served, &reports, &bytes, CLAUSE)? {
        ensure(
            outcome
                == ReadOutcome::Truncated {
                    declared: 1000,
                    received: 100,
                    sticky: true,
                },
            CLAUSE,
            || {
                format!(
                    "the client sent 100 of 1000 declared bytes and closed; the application's read ended with {outcome:?}, expected a sticky Truncated {{ declared: 1000, received: 100 }}"
                )
            },
        )?;
    }
    served.stop()
}

sync_case!(
    rgi_input_2_truncated_chunked_body_is_an_error
    ["RGI-INPUT-2"]
    "a chunked upload that stops before its last-chunk is an UnexpectedEof error, never the end of the body"
    => truncated_chunked
);

fn truncated_chunked(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-INPUT-2";
    let (tx, reports) = mpsc::channel();
    let served = Served::start(server, reading_app(tx), CLAUSE)?;
    let bytes = b"POST /cut HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n8\r\nwor";
    if let Some(outcome) = truncated_upload(&served, &reports, bytes, CLAUSE)? {
        ensure(
            matches!(
                outcome,
                ReadOutcome::UnexpectedEof(_) | ReadOutcome::Truncated { .. }
            ),
            CLAUSE,
            || {
                format!(
                    "the chunked upload stopped inside a chunk and the client closed; the application's read ended with {outcome:?}, expected an UnexpectedEof error"
                )
            },
        )?;
    }
    served.stop()
}

sync_case!(
    rgi_input_12_expect_100_continue_on_first_read
    ["RGI-INPUT-12"]
    "with Expect: 100-continue the server sends 100 Continue when the application reads, without waiting for the body"
    => continue_on_read
);

fn continue_on_read(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-INPUT-12";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, true), CLAUSE)?;
    let request = Request::new("POST", "/continue")
        .header("expect", "100-continue")
        .body("hello world");
    let mut conn = served.connect()?;
    conn.send(&request.head_bytes())
        .or_fail(CLAUSE, "sending the head")?;
    let head = conn.read_head().map_err(|err| {
        Failure::new(
            CLAUSE,
            format!("the application reads the body, but no 100 Continue came: {err}"),
        )
    })?;
    ensure(head.status == 100, CLAUSE, || {
        format!(
            "expected 100 Continue before the body was sent, got status {} ({})",
            head.status,
            Esc(&head.raw)
        )
    })?;
    conn.send(&request.body_bytes())
        .or_fail(CLAUSE, "sending the body")?;
    let response = conn
        .read_response("POST")
        .or_fail(CLAUSE, "reading the final response")?;
    expect_status(&response, 200, CLAUSE, "the request after 100 Continue")?;
    let snapshot = recv(&seen, WAIT, CLAUSE, "the application was not called")?;
    ensure(
        matches!(&snapshot.body, Some(Ok(body)) if body == b"hello world"),
        CLAUSE,
        || {
            format!(
                "the body read as {:?}, expected \"hello world\"",
                snapshot.body
            )
        },
    )?;
    served.stop()
}

sync_case!(
    rgi_input_13_no_100_continue_for_unread_body
    ["RGI-INPUT-13", "RGI-INPUT-22"]
    "with Expect: 100-continue, no 100 Continue goes out for a body nobody reads (unless a pre-read asks for it), nor after the final head, and a body read after the head is read whole when the client sends it unprompted"
    => no_continue_unread
);

/// Regression case for issue 9's D2: RGI 1.0's INPUT-12 and INPUT-13
/// disagreed about a `100 Continue` once the final head was sent; 1.1 sends
/// it only at the first read and only before the final head.
fn no_continue_unread(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-INPUT-13";
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(head_with_length(200, 9))?;
        Ok(Bytes::from_static(b"no thanks"))
    })
    .with_hints(Hints::default().with_input(InputUse::None));
    let served = Served::start(server, app, CLAUSE)?;
    let request = Request::new("POST", "/unread")
        .header("expect", "100-continue")
        .body("hello world");
    let mut conn = served.connect()?;
    conn.send(&request.head_bytes())
        .or_fail(CLAUSE, "sending the head")?;
    let first = conn
        .read_head()
        .or_fail(CLAUSE, "waiting for the response")?;
    let body = if first.status == 100 {
        // A 100 is allowed only if a pre-read wants the body: then the
        // final response cannot come before the body is sent.
        conn.set_timeout(Duration::from_secs(1));
        if let Ok(head) = conn.read_head() {
            return Err(Failure::new(
                CLAUSE,
                format!(
                    "the server sent 100 Continue and then answered {} without reading the body: a 100 for a body nobody read",
                    head.status
                ),
            ));
        }
        conn.set_timeout(WAIT);
        conn.send(&request.body_bytes())
            .or_fail(CLAUSE, "sending the body after 100 Continue")?;
        let (_, head) = conn
            .read_final_head()
            .or_fail(CLAUSE, "reading the final response")?;
        conn.body_reader(&head, "POST")
            .or_fail(CLAUSE, "reading the final response")?
            .read_all(1 << 20)
            .or_fail(CLAUSE, "reading the final response")?
    } else {
        conn.body_reader(&first, "POST")
            .or_fail(CLAUSE, "reading the final response")?
            .read_all(1 << 20)
            .or_fail(CLAUSE, "reading the final response")?
    };
    ensure(body.data == b"no thanks", CLAUSE, || {
        format!(
            "the final response's body is {}, expected \"no thanks\"",
            Esc(&body.data)
        )
    })?;
    if let Arrival::Data(bytes) = conn
        .wait_for_data(QUIET)
        .or_fail(CLAUSE, "listening after the response")?
    {
        return Err(Failure::new(
            CLAUSE,
            format!("bytes arrived after the final response: {}", Esc(&bytes)),
        ));
    }
    served.stop()?;
    late_reader(server)
}

/// The second half of `rgi_input_13`: an application that sends its head,
/// then reads the body; no `100 Continue` may follow the final head.
fn late_reader(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-INPUT-13";
    let app = rgi::from_fn(|mut environ: Environ, start| {
        start.start(head(200))?;
        start.write(Bytes::from_static(b"head-sent"))?;
        let body = read_body(&mut environ, 1 << 20).map_err(BoxError::from)?;
        Ok(Bytes::from(body))
    });
    let served = Served::start(server, app, CLAUSE)?;
    let request = Request::new("POST", "/late-read")
        .header("expect", "100-continue")
        .body("hello world");
    let mut conn = served.connect()?;
    conn.send(&request.head_bytes())
        .or_fail(CLAUSE, "sending the head")?;
    let first = conn
        .read_head()
        .or_fail(CLAUSE, "waiting for the response")?;
    if first.status == 100 {
        // A pre-read asked for the body before the application ran.
        conn.send(&request.body_bytes())
            .or_fail(CLAUSE, "sending the body after 100 Continue")?;
        conn.read_response("POST")
            .or_fail(CLAUSE, "reading the final response")?;
        return served.stop();
    }
    let mut reader = conn
        .body_reader(&first, "POST")
        .or_fail(CLAUSE, "reading the body")?;
    reader
        .read_at_least(9)
        .or_fail(CLAUSE, "reading the data written before the read")?;
    // The application now reads the body, after its head went out.
    if let Arrival::Data(bytes) = reader
        .connection()
        .wait_for_data(QUIET)
        .or_fail(CLAUSE, "listening while the application reads")?
    {
        ensure(!contains(&bytes, b" 100 "), CLAUSE, || {
            format!(
                "100 Continue went out after the final head: {}",
                Esc(&bytes)
            )
        })?;
    }
    reader
        .connection()
        .send(&request.body_bytes())
        .or_fail(CLAUSE, "sending the body")?;
    reader.extend_deadline(WAIT);
    let rest = match reader.read_all(1 << 20) {
        // A 100 that came after the quiet window lands inside the body.
        Err(err) if err.to_string().contains("100 Continue") => {
            return Err(Failure::new(
                CLAUSE,
                format!("100 Continue went out after the final head, inside the body: {err}"),
            ));
        }
        other => other.or_fail(CLAUSE, "reading the rest")?,
    };
    ensure(
        rest.data == b"hello world" && rest.complete,
        "RGI-INPUT-22",
        || {
            format!(
                "after the client sent the body anyway, the rest of the response is {}",
                Esc(&rest.data)
            )
        },
    )?;
    served.stop()
}

/// What reading an input after its response had finished gave.
#[derive(Debug)]
enum LateRead {
    /// These bytes, then the end.
    Ended(Vec<u8>),
    /// These bytes, then this error.
    Failed(Vec<u8>, String, bool),
}

sync_case!(
    rgi_input_15_reads_after_the_response_finished
    ["RGI-INPUT-15"]
    "an input read after its response finished and the connection moved on returns ResponseFinished (or its own bytes), never blocks and never another request's bytes"
    => late_read
);

fn late_read(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-INPUT-15";
    let gate = Gate::new();
    let (tx, reports) = mpsc::channel();
    let app_gate = gate.clone();
    let app = rgi::from_fn(move |mut environ: Environ, start| {
        if environ.raw_path() == "/keep" {
            let mut input = environ.replace_input(rgi::Input::empty());
            let gate = app_gate.clone();
            let tx = tx.clone();
            thread::spawn(move || {
                gate.wait(super::super::kit::GATE_LIMIT);
                let mut got = Vec::new();
                let outcome = loop {
                    match input.read_chunk(64) {
                        Ok(chunk) if chunk.is_empty() => break LateRead::Ended(got),
                        Ok(chunk) => got.extend_from_slice(&chunk),
                        Err(err) => {
                            let finished = matches!(
                                InputError::from_io(&err),
                                Some(InputError::ResponseFinished)
                            );
                            break LateRead::Failed(got, describe_io(&err), finished);
                        }
                    }
                };
                let _ = tx.send(outcome);
            });
        }
        start.start(head_with_length(200, 2))?;
        Ok(Bytes::from_static(b"ok"))
    });
    let served = Served::start(server, app, CLAUSE)?;
    let own = b"own-body-0123456789";
    let mut conn = served.connect()?;
    let keep = Request::new("POST", "/keep").body(own);
    let response = exchange(&mut conn, &keep, "POST", CLAUSE)?;
    expect_status(&response, 200, CLAUSE, "the request whose input is kept")?;
    let next = Request::new("POST", "/next").body("NEXT-REQUEST-BYTES");
    conn.send(&next.to_bytes())
        .or_fail(CLAUSE, "sending the next request")?;
    if response_or_close(&mut conn, "POST", CLAUSE, "reading the next response")?.is_none() {
        let mut fresh = served.connect()?;
        exchange(&mut fresh, &next, "POST", CLAUSE)?;
    }
    gate.open();
    let outcome = recv(
        &reports,
        WAIT,
        CLAUSE,
        "a read of the kept input blocked (no result)",
    )?;
    let (got, error) = match &outcome {
        LateRead::Ended(got) => (got, None),
        LateRead::Failed(got, error, finished) => (got, Some((error, *finished))),
    };
    ensure(own.starts_with(got), CLAUSE, || {
        format!(
            "the late read returned {}, which is not this request's body {}",
            Esc(got),
            Esc(own)
        )
    })?;
    match error {
        None => ensure(got.as_slice() == own.as_slice(), CLAUSE, || {
            format!(
                "the late read ended normally after {} of the {}-byte body",
                got.len(),
                own.len()
            )
        })?,
        Some((error, finished)) => ensure(finished, CLAUSE, || {
            format!("the late read failed with {error}, expected InputError::ResponseFinished")
        })?,
    }
    served.stop()
}
