//! Non-blocking input (spec/rgi-async.md §7, INPUT).

use std::io::{self, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use http::StatusCode;
use rgi::{BoxError, Environ, Input, InputError, StartResponse};
use rgi_async::InputStream;

use super::support::{
    AnyBody, BOUND, Latch, Session, boxed, emit, fail, finished, head, lock, poll_body, poll_for,
    ready_or_park, recv, shown, text_body, wire,
};
use crate::Check;
use crate::suite::wire::{Request, chunk};
use crate::suite::{Case, Failure, Needs, ServerUnderTest};

/// `RGIA-INPUT-1`.
pub(super) const THE_INPUT_HAS_A_NON_BLOCKING_FACE: Case = Case::new(
    Check::new(
        "rgia_input_1_the_input_has_a_non_blocking_face",
        &["RGIA-INPUT-1", "RGIA-INPUT-7", "RGIA-INPUT-3"],
        "the input of an asynchronous application is non-blocking (is_async) and poll_chunk \
         reads bodies of known and unknown length without WouldBlockThread",
    ),
    Needs::Asynchronous,
    the_input_has_a_non_blocking_face,
);

/// `RGIA-INPUT-3`.
pub(super) const A_SLOW_UPLOAD_ARRIVES_PIECE_BY_PIECE: Case = Case::new(
    Check::new(
        "rgia_input_3_a_slow_upload_arrives_piece_by_piece",
        &["RGIA-INPUT-3", "RGIA-INPUT-2", "RGIA-INPUT-15"],
        "each piece of a chunked upload sent slowly reaches InputStream before the next is \
         sent, and the stream ends at the last chunk and stays ended",
    ),
    Needs::Asynchronous,
    a_slow_upload_arrives_piece_by_piece,
);

/// `RGIA-INPUT-4`, the boundary.
pub(super) const THE_BODY_ENDS_AT_ITS_BOUNDARY: Case = Case::new(
    Check::new(
        "rgia_input_4_the_body_ends_at_its_boundary",
        &["RGIA-INPUT-4", "RGI-CONN-3"],
        "poll_chunk delivers exactly the declared body, then the end on every later poll, and \
         the pipelined request after it is served",
    ),
    Needs::Asynchronous,
    the_body_ends_at_its_boundary,
);

/// `RGIA-INPUT-4`, truncation.
pub(super) const A_TRUNCATED_UPLOAD_IS_AN_ERROR: Case = Case::new(
    Check::new(
        "rgia_input_4_a_truncated_upload_is_an_error",
        &["RGIA-INPUT-4", "RGI-INPUT-2", "RGI-INPUT-5"],
        "an upload cut short is InputError::Truncated (Content-Length) or UnexpectedEof \
         (chunked) through poll_chunk, never the end of the body, and stays an error",
    ),
    Needs::Asynchronous,
    a_truncated_upload_is_an_error,
);

/// `RGIA-INPUT-10`.
pub(super) const THE_BODY_IS_READ_ON_DEMAND: Case = Case::new(
    Check::new(
        "rgia_input_10_the_body_is_read_on_demand",
        &["RGIA-INPUT-10"],
        "while the application reads nothing, the server does not take a large upload off the \
         connection",
    ),
    Needs::Asynchronous,
    the_body_is_read_on_demand,
);

/// `RGIA-INPUT-11`.
pub(super) const CONTINUE_ON_FIRST_DEMAND: Case = Case::new(
    Check::new(
        "rgia_input_11_continue_on_first_demand",
        &["RGIA-INPUT-11", "RGI-INPUT-13"],
        "100 Continue goes out when poll_chunk first asks for the body, and never for a body \
         the application does not read",
    ),
    Needs::Asynchronous,
    continue_on_first_demand,
);

/// `RGIA-INPUT-16`.
pub(super) const NOTHING_FROM_THE_NEXT_REQUEST: Case = Case::new(
    Check::new(
        "rgia_input_16_nothing_from_the_next_request",
        &["RGIA-INPUT-16", "RGI-INPUT-15"],
        "an input kept past its response answers ResponseFinished (or its own body), never \
         bytes of the next request, and never blocks",
    ),
    Needs::Asynchronous,
    nothing_from_the_next_request,
);

/// How reading an input to its end went.
#[derive(Debug, Clone)]
enum Outcome {
    /// The end of the body, after these bytes.
    End(Vec<u8>),
    /// An error, after these bytes.
    Failed {
        got: Vec<u8>,
        kind: io::ErrorKind,
        typed: Option<String>,
        truncated: Option<(u64, u64)>,
        text: String,
    },
}

impl Outcome {
    fn failed(got: Vec<u8>, error: &io::Error) -> Self {
        let typed = InputError::from_io(error);
        Outcome::Failed {
            got,
            kind: error.kind(),
            typed: typed.map(|typed| format!("{typed:?}")),
            truncated: match typed {
                Some(InputError::Truncated { declared, received }) => Some((*declared, *received)),
                _ => None,
            },
            text: error.to_string(),
        }
    }
}

/// Polls `input` in pieces of at most `max` bytes, collecting them in
/// `got`, until the end of the body or an error.
fn poll_to_end(
    input: &mut Input,
    cx: &mut Context<'_>,
    max: usize,
    got: &mut Vec<u8>,
) -> Poll<Result<(), io::Error>> {
    loop {
        match input.poll_chunk(cx, max) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(piece)) if piece.is_empty() => return Poll::Ready(Ok(())),
            Poll::Ready(Ok(piece)) => got.extend_from_slice(&piece),
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
        }
    }
}

/// A body that reads its input to the end through `poll_chunk`, sends
/// `report` the outcome (with `tag`), and answers `200 read`.
fn reading_body(
    mut input: Input,
    tag: String,
    report: mpsc::Sender<(String, Outcome)>,
) -> impl rgi_async::AsyncBody {
    let mut got = Vec::new();
    let mut done = false;
    poll_body(move |cx, start| {
        if done {
            return finished();
        }
        let outcome = match ready_or_park!(poll_to_end(&mut input, cx, 4096, &mut got)) {
            Ok(()) => Outcome::End(std::mem::take(&mut got)),
            Err(error) => Outcome::failed(std::mem::take(&mut got), &error),
        };
        done = true;
        let _ = report.send((tag.clone(), outcome));
        start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
        emit("read")
    })
}

fn the_input_has_a_non_blocking_face(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-INPUT-1";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
        let tag = format!(
            "{} {} (is_async: {})",
            environ.method(),
            environ.uri().path(),
            environ.input().is_async()
        );
        Ok(reading_body(environ.into_input(), tag, report.clone()))
    });
    let session = Session::start(server, app, MAIN)?;
    let requests = [
        ("GET", Request::get("/none"), &b""[..]),
        (
            "POST",
            Request::new("POST", "/length").body("a body of known length"),
            b"a body of known length",
        ),
        (
            "POST",
            Request::new("POST", "/chunked").chunked(&["a chunked ", "body"]),
            b"a chunked body",
        ),
    ];
    for (method, request, _) in &requests {
        session.exchange(request, method)?;
    }
    session.stop()?;
    for (_, _, sent) in &requests {
        let (tag, outcome) = recv(&reports, MAIN, "the probe's report of its input")?;
        if tag.ends_with("(is_async: false)") {
            return Err(fail(
                MAIN,
                format!("{tag}: the input is blocking-only (Input::is_async() is false)"),
            ));
        }
        match outcome {
            Outcome::End(got) if got == *sent => {}
            Outcome::End(got) => {
                return Err(fail(
                    "RGIA-INPUT-3",
                    format!(
                        "{tag}: poll_chunk delivered {} for the body {}",
                        shown(&got),
                        shown(sent)
                    ),
                ));
            }
            Outcome::Failed { typed, text, .. } => {
                let clause = if typed.as_deref() == Some("WouldBlockThread") {
                    "RGIA-INPUT-7"
                } else {
                    MAIN
                };
                return Err(fail(clause, format!("{tag}: poll_chunk failed: {text}")));
            }
        }
    }
    Ok(())
}

/// What the slow-upload probe saw.
#[derive(Debug)]
enum Piece {
    Data(Vec<u8>),
    Failed(String),
    /// The stream ended; `Some` says what a poll after the end returned.
    Ended(Option<String>),
}

fn a_slow_upload_arrives_piece_by_piece(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-INPUT-3";
    const PIECES: [&[u8]; 3] = [b"alpha", b"beta-beta", b"gamma!"];
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
        let mut input = environ.into_input();
        let report = report.clone();
        let mut done = false;
        Ok(poll_body(move |cx, start| {
            if done {
                return finished();
            }
            let mut stream = InputStream::new(&mut input).with_max(1024);
            loop {
                match ready_or_park!(Pin::new(&mut stream).poll_next(cx)) {
                    Some(Ok(piece)) => {
                        let _ = report.send(Piece::Data(piece.to_vec()));
                    }
                    Some(Err(error)) => {
                        let _ = report.send(Piece::Failed(error.to_string()));
                        return Err(error.into());
                    }
                    None => break,
                }
            }
            let after = match Pin::new(&mut stream).poll_next(cx) {
                Poll::Ready(None) => None,
                Poll::Ready(Some(item)) => Some(format!("{item:?}")),
                Poll::Pending => Some("Pending".to_owned()),
            };
            let _ = report.send(Piece::Ended(after));
            done = true;
            start.start(StatusCode::OK)?;
            emit("uploaded")
        }))
    });
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let request = Request::new("POST", "/upload").chunked(&PIECES);
    conn.send(&request.head_bytes())
        .map_err(wire(MAIN, "sending the head of a chunked upload"))?;
    for (index, piece) in PIECES.iter().enumerate() {
        conn.send(&chunk(piece))
            .map_err(wire(MAIN, format!("sending piece {}", index + 1)))?;
        let mut got = Vec::new();
        while got.len() < piece.len() {
            let what = format!(
                "piece {} ({}) of a slow chunked upload reaching InputStream; {} of its bytes \
                 arrived",
                index + 1,
                shown(piece),
                got.len()
            );
            match recv(&reports, MAIN, &what)? {
                Piece::Data(data) if data.is_empty() => {
                    return Err(fail("RGIA-INPUT-15", "InputStream yielded an empty chunk"));
                }
                Piece::Data(data) => got.extend_from_slice(&data),
                Piece::Failed(error) => {
                    return Err(fail(
                        MAIN,
                        format!("{what}: InputStream yielded the error {error}"),
                    ));
                }
                Piece::Ended(_) => {
                    return Err(fail(MAIN, format!("{what}: InputStream ended early")));
                }
            }
        }
        if got != *piece {
            return Err(fail(
                MAIN,
                format!(
                    "piece {} was sent as {} and read as {}",
                    index + 1,
                    shown(piece),
                    shown(&got)
                ),
            ));
        }
    }
    conn.send(b"0\r\n\r\n")
        .map_err(wire(MAIN, "sending the last-chunk"))?;
    let ended = recv(&reports, MAIN, "the end of the upload after the last-chunk")?;
    let response = conn
        .read_response("POST")
        .map_err(wire(MAIN, "reading the response to the upload"));
    session.stop()?;
    match ended {
        Piece::Ended(None) => {}
        Piece::Ended(Some(after)) => {
            return Err(fail(
                "RGIA-INPUT-15",
                format!("after the end of the body, InputStream yielded {after} instead of None"),
            ));
        }
        other => {
            return Err(fail(
                MAIN,
                format!("after the last-chunk the stream gave {other:?} instead of its end"),
            ));
        }
    }
    let response = response?;
    if response.body.data != b"uploaded" {
        return Err(fail(
            MAIN,
            format!("the upload was answered {}", shown(&response.body.data)),
        ));
    }
    Ok(())
}

fn the_body_ends_at_its_boundary(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-INPUT-4";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(
        move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            if environ.uri().path() == "/next" {
                return Ok(boxed(text_body("next")));
            }
            let mut input = environ.into_input();
            let report = report.clone();
            let mut got = Vec::new();
            let mut done = false;
            Ok(boxed(poll_body(move |cx, start| {
                if done {
                    return finished();
                }
                let read = ready_or_park!(poll_to_end(&mut input, cx, 64, &mut got));
                let later: Vec<String> = (0..3)
                    .map(|_| match input.poll_chunk(cx, 64) {
                        Poll::Ready(Ok(piece)) if piece.is_empty() => String::new(),
                        other => format!("{other:?}"),
                    })
                    .filter(|answer| !answer.is_empty())
                    .collect();
                let _ = report.send((
                    std::mem::take(&mut got),
                    read.map_err(|e| e.to_string()),
                    later,
                ));
                done = true;
                start.start(StatusCode::OK)?;
                emit("upload")
            })))
        },
    );
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let pipelined = [
        Request::new("POST", "/upload")
            .body("0123456789")
            .to_bytes(),
        Request::get("/next").to_bytes(),
    ]
    .concat();
    conn.send(&pipelined).map_err(wire(
        MAIN,
        "sending POST /upload (10 bytes) and GET /next pipelined",
    ))?;
    let upload = conn
        .read_response("POST")
        .map_err(wire(MAIN, "reading the response to POST /upload"));
    let next = conn.read_response("GET").map_err(wire(
        MAIN,
        "reading the response to the pipelined GET /next",
    ));
    session.stop()?;
    let (got, read, later) = recv(&reports, MAIN, "the probe's report of its input")?;
    if let Err(error) = read {
        return Err(fail(
            MAIN,
            format!(
                "reading a complete 10-byte body failed after {}: {error}",
                shown(&got)
            ),
        ));
    }
    if got != b"0123456789" {
        return Err(fail(
            MAIN,
            format!(
                "poll_chunk delivered {} for the 10-byte body \"0123456789\"",
                shown(&got)
            ),
        ));
    }
    if let Some(answer) = later.first() {
        return Err(fail(
            MAIN,
            format!("after the end of the body, a later poll_chunk returned {answer}"),
        ));
    }
    let (upload, next) = (upload?, next?);
    if upload.body.data != b"upload" || next.body.data != b"next" {
        return Err(fail(
            "RGI-CONN-3",
            format!(
                "the pipelined responses were {} and {}",
                shown(&upload.body.data),
                shown(&next.body.data)
            ),
        ));
    }
    Ok(())
}

fn a_truncated_upload_is_an_error(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-INPUT-4";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
        let tag = environ.uri().path().to_owned();
        let mut input = environ.into_input();
        let report = report.clone();
        let mut got = Vec::new();
        let mut done = false;
        Ok(poll_body(move |cx, start| {
            if done {
                return finished();
            }
            let first = match ready_or_park!(poll_to_end(&mut input, cx, 1024, &mut got)) {
                Ok(()) => Outcome::End(std::mem::take(&mut got)),
                Err(error) => Outcome::failed(std::mem::take(&mut got), &error),
            };
            // The error stays in force: ask once more.
            let again = match input.poll_chunk(cx, 1024) {
                Poll::Ready(Err(error)) => Outcome::failed(Vec::new(), &error),
                Poll::Ready(Ok(piece)) => Outcome::End(piece.to_vec()),
                Poll::Pending => Outcome::Failed {
                    got: Vec::new(),
                    kind: io::ErrorKind::WouldBlock,
                    typed: None,
                    truncated: None,
                    text: "Pending".to_owned(),
                },
            };
            let _ = report.send((tag.clone(), first, again));
            done = true;
            start.start(StatusCode::OK)?;
            emit("seen")
        }))
    });
    let session = Session::start(server, app, MAIN)?;
    let mut length = session.connect()?;
    let mut declared =
        b"POST /length HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100\r\n\r\n".to_vec();
    declared.extend_from_slice(b"ten bytes!");
    length
        .send(&declared)
        .map_err(wire(MAIN, "sending 10 of 100 declared body bytes"))?;
    length
        .shutdown_write()
        .map_err(wire(MAIN, "closing the client's sending side"))?;
    let by_length = recv(
        &reports,
        MAIN,
        "the probe's report after the client sent 10 of 100 declared bytes and closed its side",
    );
    let mut chunked = session.connect()?;
    let mut cut = Request::new("POST", "/chunked")
        .chunked(&["x"])
        .head_bytes();
    cut.extend_from_slice(&chunk(b"hello"));
    chunked
        .send(&cut)
        .map_err(wire(MAIN, "sending a chunked body without its last-chunk"))?;
    chunked
        .shutdown_write()
        .map_err(wire(MAIN, "closing the client's sending side"))?;
    let by_chunks = recv(
        &reports,
        MAIN,
        "the probe's report after the client sent one chunk and closed its side",
    );
    session.stop()?;
    let (_, first, again) = by_length?;
    match (&first, &again) {
        (
            Outcome::Failed {
                truncated: Some((100, 10)),
                ..
            },
            Outcome::Failed {
                truncated: Some((100, 10)),
                ..
            },
        ) => {}
        (Outcome::End(got), _) => {
            return Err(fail(
                MAIN,
                format!(
                    "poll_chunk reported the end of the body after {} ({} of 100 declared \
                     bytes); a cut body is InputError::Truncated",
                    shown(got),
                    got.len()
                ),
            ));
        }
        (
            Outcome::Failed {
                truncated: Some((100, 10)),
                ..
            },
            other,
        ) => {
            return Err(fail(
                MAIN,
                format!("the Truncated error did not stay in force: the next poll gave {other:?}"),
            ));
        }
        (
            Outcome::Failed {
                got, typed, text, ..
            },
            _,
        ) => {
            return Err(fail(
                MAIN,
                format!(
                    "10 of 100 declared bytes gave the error {text} (typed: {typed:?}) after {}, \
                     not InputError::Truncated {{ declared: 100, received: 10 }}",
                    shown(got)
                ),
            ));
        }
    }
    let (_, first, _) = by_chunks?;
    match first {
        Outcome::Failed {
            kind: io::ErrorKind::UnexpectedEof,
            ..
        } => Ok(()),
        Outcome::End(got) => Err(fail(
            "RGI-INPUT-2",
            format!(
                "a chunked body cut before its last-chunk was read as complete: {}",
                shown(&got)
            ),
        )),
        Outcome::Failed { kind, text, .. } => Err(fail(
            "RGI-INPUT-2",
            format!(
                "a chunked body cut short gave an error of kind {kind:?} ({text}), not UnexpectedEof"
            ),
        )),
    }
}

fn the_body_is_read_on_demand(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-INPUT-10";
    /// The upload the client offers.
    const OFFERED: usize = 64 * 1024 * 1024;
    /// Accepted while the application reads nothing, this is no bound.
    const TOO_MUCH: usize = 48 * 1024 * 1024;
    let latch = Latch::new();
    let (parked, parks) = mpsc::channel();
    let app = {
        let latch = latch.clone();
        rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
            let input = environ.into_input();
            let (latch, parked) = (latch.clone(), parked.clone());
            let mut reported = false;
            Ok(poll_body(move |cx, start| {
                if !reported {
                    reported = true;
                    let _ = parked.send(());
                }
                ready_or_park!(latch.poll_open(cx));
                // The input is kept, unread, until the case is done.
                let _unread = &input;
                if start.is_started() {
                    return finished();
                }
                start.start(StatusCode::OK)?;
                emit("unread")
            }))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut stream = TcpStream::connect_timeout(&session.addr(), BOUND)
        .map_err(|error| fail(MAIN, format!("connecting: {error}")))?;
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .map_err(|error| fail(MAIN, format!("set_write_timeout: {error}")))?;
    let head =
        format!("POST /upload HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {OFFERED}\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .map_err(|error| fail(MAIN, format!("sending the head: {error}")))?;
    recv(&parks, MAIN, "the first poll of the body")?;
    let block = vec![b'u'; 64 * 1024];
    let mut accepted = 0;
    while accepted < OFFERED {
        match (&stream).write(&block) {
            Ok(written) => accepted += written,
            // Full buffers (the timeout), or the server gave up on the
            // upload: either way it stopped taking bytes.
            Err(_) => break,
        }
        if accepted > TOO_MUCH {
            break;
        }
    }
    latch.open();
    drop(stream);
    session.stop()?;
    if accepted > TOO_MUCH {
        return Err(fail(
            MAIN,
            format!(
                "the application read none of the body, yet the server took {} MiB of it off \
                 the connection",
                accepted / (1024 * 1024)
            ),
        ));
    }
    Ok(())
}

fn continue_on_first_demand(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-INPUT-11";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(
        move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            if environ.uri().path() == "/ignore" {
                return Ok(boxed(text_body("ignored")));
            }
            Ok(boxed(reading_body(
                environ.into_input(),
                "read".into(),
                report.clone(),
            )))
        },
    );
    let session = Session::start(server, app, MAIN)?;
    let mut asks = session.connect()?;
    let read = Request::new("POST", "/read")
        .header("expect", "100-continue")
        .body("hello");
    asks.send(&read.head_bytes())
        .map_err(wire(MAIN, "sending a head with expect: 100-continue"))?;
    let first = asks.read_head().map_err(wire(
        MAIN,
        "the application polled the input (poll_chunk returned Pending); waiting for 100 \
         Continue",
    ))?;
    if first.status != 100 {
        return Err(fail(
            MAIN,
            format!(
                "the application polled the input but the first head was {} instead of 100 \
                 Continue",
                first.status
            ),
        ));
    }
    asks.send(&read.body_bytes())
        .map_err(wire(MAIN, "sending the body after 100 Continue"))?;
    let answered = asks
        .read_response("POST")
        .map_err(wire(MAIN, "reading the response to POST /read"))?;
    let (_, outcome) = recv(&reports, MAIN, "the probe's report of its input")?;

    let mut ignores = session.connect()?;
    let ignore = Request::new("POST", "/ignore")
        .header("expect", "100-continue")
        .body("never");
    ignores
        .send(&ignore.head_bytes())
        .map_err(wire(MAIN, "sending a head with expect: 100-continue"))?;
    let ignored = ignores.read_head().map_err(wire(
        MAIN,
        "waiting for the response of an application that reads no body",
    ));
    session.stop()?;
    match outcome {
        Outcome::End(got) if got == b"hello" => {}
        other => {
            return Err(fail(
                MAIN,
                format!("after 100 Continue the body was read as {other:?}"),
            ));
        }
    }
    if answered.body.data != b"read" {
        return Err(fail(
            MAIN,
            format!("POST /read was answered {}", shown(&answered.body.data)),
        ));
    }
    let ignored = ignored?;
    if ignored.status == 100 {
        return Err(fail(
            MAIN,
            "100 Continue was sent for a request whose application never asked for the body",
        ));
    }
    Ok(())
}

fn nothing_from_the_next_request(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-INPUT-16";
    let kept: Arc<Mutex<Option<Input>>> = Arc::default();
    let app = {
        let kept = Arc::clone(&kept);
        rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
            let path = environ.uri().path().to_owned();
            if path == "/first" {
                *lock(&kept) = Some(environ.into_input());
            }
            Ok(text_body(path))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let pipelined = [
        Request::new("POST", "/first").body("hello").to_bytes(),
        Request::get("/second").to_bytes(),
    ]
    .concat();
    conn.send(&pipelined)
        .map_err(wire(MAIN, "sending POST /first and GET /second pipelined"))?;
    let first = conn
        .read_response("POST")
        .map_err(wire(MAIN, "reading the response to POST /first"))?;
    let second = conn.read_response("GET").map_err(wire(
        MAIN,
        "reading the response to the pipelined GET /second",
    ))?;
    let kept_input = lock(&kept).take();
    let Some(mut input) = kept_input else {
        return Err(fail(
            MAIN,
            "the probe did not receive the input of POST /first",
        ));
    };
    let mut got = Vec::new();
    let ended = poll_for(BOUND, |cx| poll_to_end(&mut input, cx, 1024, &mut got));
    // The application lets go of the input before the server stops.
    drop(input);
    session.stop()?;
    if first.body.data != b"/first" || second.body.data != b"/second" {
        return Err(fail(
            MAIN,
            format!(
                "the pipelined responses were {} and {}",
                shown(&first.body.data),
                shown(&second.body.data)
            ),
        ));
    }
    if !b"hello".starts_with(&got) {
        return Err(fail(
            MAIN,
            format!(
                "after the response, the input of POST /first (body \"hello\") delivered {}",
                shown(&got)
            ),
        ));
    }
    match ended {
        None => Err(fail(
            MAIN,
            format!("a read of a finished request's input blocked for {BOUND:?}"),
        )),
        Some(Ok(())) if got == b"hello" => Ok(()),
        Some(Ok(())) => Err(fail(
            MAIN,
            format!(
                "after the response, the input of POST /first reported the end of its 5-byte \
                 body after {}",
                shown(&got)
            ),
        )),
        Some(Err(error)) => match InputError::from_io(&error) {
            Some(InputError::ResponseFinished) => Ok(()),
            _ => Err(fail(
                MAIN,
                format!(
                    "a read of a finished request's input failed with {error} instead of \
                     InputError::ResponseFinished"
                ),
            )),
        },
    }
}
