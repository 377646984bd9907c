//! Trailers both ways (spec/rgi.md §16.2): a chunked upload's trailer
//! section in the input at the body's end (`RGI-TRAILER-1`), response
//! trailers delivered where they can go and dropped silently elsewhere
//! (`RGI-TRAILER-7`), and a head that announces them framed for them
//! (`RGI-TRAILER-6`, `RGI-TRAILER-9`).

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, header};
use rgi::{Body, BoxError, Environ, FileBody, Input, ResponseHead, StartResponse};
use rgi_async::Step;

use super::super::kit::{
    Esc, QUIET, Served, TempFile, WAIT, ensure, exchange, expect_body, expect_status, head,
    read_body, recv,
};
use super::support::{PollFn, Stepped, fields, sorted, sorted_map};
use crate::suite::wire::{Connection, Framing, Request, Response};
use crate::suite::{Failure, Probe, ServerUnderTest};

// ---- request trailers ----

/// What a probe saw of an upload: its body, and what `Input::trailers`
/// said once the body was read to its end (sorted `name: value` lines, or
/// the error); the names of the request's header fields.
#[derive(Debug, Clone)]
struct Upload {
    body: Result<Vec<u8>, String>,
    trailers: Result<Option<Vec<String>>, String>,
    fields: Vec<String>,
}

/// The synchronous probe: reads the body to its end, then the trailers.
fn reads_uploads(seen: Sender<Upload>) -> impl rgi::Application {
    rgi::from_fn(move |mut environ: Environ, start| {
        let body = read_body(&mut environ, 1 << 20);
        let trailers = environ
            .input()
            .trailers()
            .map(|fields| fields.map(|fields| sorted_map(&fields)))
            .map_err(|error| error.to_string());
        let _ = seen.send(Upload {
            body,
            trailers,
            fields: field_lines(&environ),
        });
        start.start(head(200).with_header(header::CONTENT_LENGTH, HeaderValue::from(2)))?;
        Ok(Bytes::from_static(b"ok"))
    })
}

/// The request's header fields as `name: value` lines.
fn field_lines(environ: &Environ) -> Vec<String> {
    sorted_map(environ.headers())
}

/// The asynchronous probe: polls the body to its end through the
/// non-blocking face, then reads the trailers.
fn reads_uploads_async(seen: Sender<Upload>) -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(move |mut environ: Environ, _start| {
        let mut input = environ.replace_input(Input::empty());
        let fields = field_lines(&environ);
        let seen = seen.clone();
        let mut body = Vec::new();
        let mut reported = false;
        Ok(PollFn(
            move |cx: &mut Context<'_>, start: &mut StartResponse<'_>| -> Stepped {
                if reported {
                    return Poll::Ready(None);
                }
                let read = loop {
                    match input.poll_chunk(cx, 16 * 1024) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(chunk)) if chunk.is_empty() => {
                            break Ok(std::mem::take(&mut body));
                        }
                        Poll::Ready(Ok(chunk)) => body.extend_from_slice(&chunk),
                        Poll::Ready(Err(error)) => break Err(error.to_string()),
                    }
                };
                let trailers = input
                    .trailers()
                    .map(|fields| fields.map(|fields| sorted_map(&fields)))
                    .map_err(|error| error.to_string());
                let _ = seen.send(Upload {
                    body: read,
                    trailers,
                    fields: fields.clone(),
                });
                reported = true;
                if let Err(error) = start.start(head(200)) {
                    return Poll::Ready(Some(Err(error.into())));
                }
                Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"ok")))))
            },
        ))
    })
}

feature_case!(
    rgi_trailer_1_request_trailers_after_the_body
    needs RequestTrailers
    ["RGI-TRAILER-1", "RGI-FEAT-1"]
    "a chunked upload's trailer fields are in the input once the body was read to its end, without the forbidden ones and never in the header section; an upload without trailers on the same connection gets none, nor does a Content-Length upload"
    => request_trailers_after_the_body
);

feature_case!(
    rgi_trailer_1_async_request_trailers_after_the_body
    needs AsyncRequestTrailers
    ["RGI-TRAILER-1", "RGI-FEAT-1"]
    "as rgi_trailer_1_request_trailers_after_the_body, for an asynchronous application reading through poll_chunk"
    => async_request_trailers_after_the_body
);

fn request_trailers_after_the_body(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let (tx, seen) = mpsc::channel();
    judge_uploads(server, Probe::sync(reads_uploads(tx)), &seen)
}

fn async_request_trailers_after_the_body(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let (tx, seen) = mpsc::channel();
    judge_uploads(server, Probe::asynchronous(reads_uploads_async(tx)), &seen)
}

/// Three uploads on one connection: chunked with trailers (one of them
/// forbidden), chunked without, and framed by Content-Length.
fn judge_uploads(
    server: &dyn ServerUnderTest,
    probe: Probe,
    seen: &mpsc::Receiver<Upload>,
) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-TRAILER-1";
    let served = Served::with_probe(server, probe, CLAUSE)?;
    let mut conn = served.connect()?;
    let with_trailers = Request::new("PUT", "/with-trailers").chunked_with_trailers(
        &["abc", "def"],
        &[
            ("x-checksum", "c0ffee"),
            ("content-type", "text/smuggled"),
            ("x-note", "sent last"),
        ],
    );
    let response = exchange(&mut conn, &with_trailers, "PUT", CLAUSE)?;
    expect_status(&response, 200, CLAUSE, "a chunked upload with trailers")?;
    let upload = recv(seen, WAIT, CLAUSE, "the application was not called")?;
    ensure(upload.body.as_deref() == Ok(&b"abcdef"[..]), CLAUSE, || {
        format!("the upload's body read as {:?}", upload.body)
    })?;
    let expected = vec![
        "x-checksum: c0ffee".to_owned(),
        "x-note: sent last".to_owned(),
    ];
    match &upload.trailers {
        Ok(Some(trailers)) => ensure(*trailers == expected, CLAUSE, || {
            format!(
                "at the body's end the input holds the trailer fields {trailers:?}; the client sent {expected:?} and the forbidden content-type"
            )
        })?,
        Ok(None) => {
            return Err(Failure::new(
                CLAUSE,
                format!(
                    "at the body's end Input::trailers() is Ok(None), though the client sent {expected:?} (the slot is filled after the end, or never)"
                ),
            ));
        }
        Err(error) => {
            return Err(Failure::new(
                CLAUSE,
                format!("Input::trailers() failed after the body was read to its end: {error}"),
            ));
        }
    }
    let leaked: Vec<&String> = upload
        .fields
        .iter()
        .filter(|line| {
            line.starts_with("x-checksum:")
                || line.starts_with("x-note:")
                || line.starts_with("content-type:")
        })
        .collect();
    ensure(leaked.is_empty(), CLAUSE, || {
        format!("trailer fields reached the request's header section: {leaked:?}")
    })?;
    let without = Request::new("PUT", "/without-trailers").chunked(&["xyz"]);
    let response = exchange(&mut conn, &without, "PUT", CLAUSE)?;
    expect_status(&response, 200, CLAUSE, "a chunked upload without trailers")?;
    let upload = recv(seen, WAIT, CLAUSE, "the application was not called")?;
    expect_no_trailers(
        &upload,
        "a chunked upload without a trailer section, after one with",
    )?;
    let framed = Request::new("PUT", "/content-length").body("framed");
    let response = exchange(&mut conn, &framed, "PUT", CLAUSE)?;
    expect_status(&response, 200, CLAUSE, "an upload framed by Content-Length")?;
    let upload = recv(seen, WAIT, CLAUSE, "the application was not called")?;
    expect_no_trailers(&upload, "an upload framed by Content-Length")?;
    served.stop()
}

/// Fails unless `upload` read its body and found no trailer field.
fn expect_no_trailers(upload: &Upload, what: &str) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-TRAILER-1";
    ensure(upload.body.is_ok(), CLAUSE, || {
        format!("{what}: the body read as {:?}", upload.body)
    })?;
    match &upload.trailers {
        Ok(None) => Ok(()),
        Ok(Some(trailers)) if trailers.is_empty() => Ok(()),
        Ok(Some(trailers)) => Err(Failure::new(
            CLAUSE,
            format!(
                "{what}: the input holds trailer fields the client never sent with it: {trailers:?}"
            ),
        )),
        Err(error) => Err(Failure::new(
            CLAUSE,
            format!("{what}: Input::trailers() failed after the body's end: {error}"),
        )),
    }
}

// ---- response trailers ----

/// What a probe saw of a response's trailers: whether they were
/// deliverable, and what `send_trailers` returned.
#[derive(Debug, Clone)]
struct Sent {
    deliverable: bool,
    result: Result<(), String>,
}

/// The trailer fields every probe sends.
const TRAILERS: &[(&str, &str)] = &[("x-rows", "2"), ("x-digest", "sha-256=:abc=:")];

/// The head every probe that sends trailers starts: announcing them.
fn announcing() -> ResponseHead {
    head(200).with_header(
        header::TRAILER,
        HeaderValue::from_static("x-rows, x-digest"),
    )
}

/// Two rows, then the trailers in the last pull.
struct Rows {
    pulls: u8,
    sent: Sender<Sent>,
}

impl Body for Rows {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.pulls += 1;
        match self.pulls {
            1 => Some(Ok(Bytes::from_static(b"row 1\n"))),
            2 => Some(Ok(Bytes::from_static(b"row 2\n"))),
            _ => {
                let deliverable = start.trailers_deliverable();
                let result = start.send_trailers(fields(TRAILERS));
                let _ = self.sent.send(Sent {
                    deliverable,
                    result: result.map_err(|error| error.to_string()),
                });
                None
            }
        }
    }
}

/// The synchronous probe that streams two rows and sends trailers.
fn sends_trailers(sent: Sender<Sent>) -> impl rgi::Application {
    rgi::from_fn(move |_environ: Environ, start| {
        start.start(announcing())?;
        Ok(Rows {
            pulls: 0,
            sent: sent.clone(),
        })
    })
}

/// The asynchronous probe: the trailers go in the poll that ends.
fn sends_trailers_async(sent: Sender<Sent>) -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(move |_environ: Environ, start| {
        start.start(announcing())?;
        let sent = sent.clone();
        let mut polls = 0_u8;
        Ok(PollFn(
            move |_cx: &mut Context<'_>, start: &mut StartResponse<'_>| -> Stepped {
                polls += 1;
                match polls {
                    1 => Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"row 1\n"))))),
                    2 => Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"row 2\n"))))),
                    _ => {
                        let deliverable = start.trailers_deliverable();
                        let result = start.send_trailers(fields(TRAILERS));
                        let _ = sent.send(Sent {
                            deliverable,
                            result: result.map_err(|error| error.to_string()),
                        });
                        Poll::Ready(None)
                    }
                }
            },
        ))
    })
}

feature_case!(
    rgi_trailer_7_trailers_reach_a_client_that_accepts_them
    needs ResponseTrailers
    ["RGI-TRAILER-7", "RGI-TRAILER-6", "RGI-FEAT-1"]
    "on HTTP/1.1 with TE: trailers, trailers given in the last pull are deliverable and arrive as the trailer section of a chunked response, and the connection serves the next request"
    => trailers_reach_a_client
);

feature_case!(
    rgi_trailer_7_async_trailers_reach_a_client_that_accepts_them
    needs AsyncResponseTrailers
    ["RGI-TRAILER-7", "RGI-TRAILER-6", "RGI-FEAT-1"]
    "as rgi_trailer_7_trailers_reach_a_client_that_accepts_them, for an asynchronous body that gives them in the poll that returns Ready(None)"
    => async_trailers_reach_a_client
);

fn trailers_reach_a_client(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let (tx, sent) = mpsc::channel();
    judge_delivery(server, Probe::sync(sends_trailers(tx)), &sent)
}

fn async_trailers_reach_a_client(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let (tx, sent) = mpsc::channel();
    judge_delivery(server, Probe::asynchronous(sends_trailers_async(tx)), &sent)
}

/// Reads the response to a `GET` sent on `conn` and what the probe said.
fn rows(
    conn: &mut Connection,
    request: &Request,
    method: &str,
    sent: &mpsc::Receiver<Sent>,
    clause: &'static str,
) -> Result<(Response, Option<Sent>), Failure> {
    let response = exchange(conn, request, method, clause)?;
    expect_status(&response, 200, clause, "the rows")?;
    // A server may drop the body of a HEAD request unpulled.
    let wait = if method == "HEAD" { QUIET } else { WAIT };
    let said = sent.recv_timeout(wait).ok();
    Ok((response, said))
}

fn judge_delivery(
    server: &dyn ServerUnderTest,
    probe: Probe,
    sent: &mpsc::Receiver<Sent>,
) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-TRAILER-7";
    let served = Served::with_probe(server, probe, CLAUSE)?;
    let mut conn = served.connect()?;
    let request = Request::get("/rows").header("te", "trailers");
    let (response, said) = rows(&mut conn, &request, "GET", sent, CLAUSE)?;
    let said = said.ok_or_else(|| {
        Failure::new(
            CLAUSE,
            "the body's last pull did not report (was it pulled to its end?)",
        )
    })?;
    ensure(said.result.is_ok(), CLAUSE, || {
        format!("send_trailers failed: {:?}", said.result)
    })?;
    ensure(said.deliverable, "RGI-FEAT-1", || {
        "the server declares response trailers, yet trailers_deliverable() is false for HTTP/1.1 with TE: trailers"
            .to_owned()
    })?;
    ensure(
        response.body.framing == Framing::Chunked,
        "RGI-TRAILER-6",
        || {
            format!(
                "the response to a head announcing trailers is framed {:?}, not chunked (head {})",
                response.body.framing,
                Esc(&response.head.raw)
            )
        },
    )?;
    expect_body(&response, b"row 1\nrow 2\n", CLAUSE, "the rows")?;
    let got = sorted(&response.body.trailers);
    let mut expected: Vec<String> = TRAILERS
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    expected.sort();
    ensure(got == expected, CLAUSE, || {
        format!(
            "the trailer section of the last-chunk holds {got:?}, the application sent {expected:?}"
        )
    })?;
    let again = exchange(&mut conn, &Request::get("/again"), "GET", CLAUSE)?;
    expect_status(&again, 200, CLAUSE, "the next request on the connection")?;
    let _ = sent.recv_timeout(WAIT);
    served.stop()
}

feature_case!(
    rgi_trailer_7_undeliverable_trailers_are_dropped_silently
    needs Nothing
    ["RGI-TRAILER-7"]
    "trailers given for HTTP/1.1 without TE: trailers, for HTTP/1.0 and for HEAD are not deliverable, send_trailers succeeds, nothing of them reaches the client, the body is intact and the connection goes on"
    => undeliverable_trailers_are_dropped
);

fn undeliverable_trailers_are_dropped(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-TRAILER-7";
    let (tx, sent) = mpsc::channel();
    let served = Served::start(server, sends_trailers(tx), CLAUSE)?;
    let cases = [
        (
            "HTTP/1.1 without TE: trailers",
            Request::get("/no-te"),
            "GET",
        ),
        (
            "HTTP/1.0 with TE: trailers",
            Request::get("/http10").http10().header("te", "trailers"),
            "GET",
        ),
        (
            "HEAD with TE: trailers",
            Request::new("HEAD", "/head").header("te", "trailers"),
            "HEAD",
        ),
    ];
    for (what, request, method) in cases {
        let mut conn = served.connect()?;
        let (response, said) = rows(&mut conn, &request, method, &sent, CLAUSE)?;
        if let Some(said) = said {
            ensure(!said.deliverable, CLAUSE, || {
                format!(
                    "{what}: trailers_deliverable() is true, but trailers cannot reach this client"
                )
            })?;
            ensure(said.result.is_ok(), CLAUSE, || {
                format!(
                    "{what}: send_trailers failed instead of dropping them: {:?}",
                    said.result
                )
            })?;
        } else if method != "HEAD" {
            return Err(Failure::new(
                CLAUSE,
                format!("{what}: the body's last pull did not report (was it pulled to its end?)"),
            ));
        }
        ensure(response.body.trailers.is_empty(), CLAUSE, || {
            format!(
                "{what}: the response carries the trailer fields {:?}",
                sorted(&response.body.trailers)
            )
        })?;
        let expected: &[u8] = if method == "HEAD" {
            b""
        } else {
            b"row 1\nrow 2\n"
        };
        expect_body(&response, expected, CLAUSE, what)?;
        if request_keeps(&response) {
            let again = exchange(&mut conn, &Request::get("/again"), "GET", CLAUSE)?;
            expect_status(&again, 200, CLAUSE, &format!("the request after {what}"))?;
            ensure(again.body.data == b"row 1\nrow 2\n", CLAUSE, || {
                format!(
                    "the request after {what} got the body {}",
                    Esc(&again.body.data)
                )
            })?;
            let _ = sent.recv_timeout(WAIT);
        }
    }
    served.stop()
}

/// Whether the connection of `response` stays open for another request.
fn request_keeps(response: &Response) -> bool {
    response.head.minor_version == 1
        && !response.head.lists("connection", "close")
        && response.body.framing != Framing::Close
}

// ---- framing for announced trailers ----

feature_case!(
    rgi_trailer_6_announced_trailers_keep_a_length_off_the_head
    needs Nothing
    ["RGI-TRAILER-6"]
    "a head that announces trailers, for a body with an exact size hint, goes out without a Content-Length the server computed, chunked on HTTP/1.1, with and without TE: trailers"
    => announced_trailers_keep_a_length_off
);

fn announced_trailers_keep_a_length_off(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-TRAILER-6";
    const BODY: &[u8] = b"twelve bytes";
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(head(200).with_header(header::TRAILER, HeaderValue::from_static("x-sum")))?;
        start.send_trailers(fields(&[("x-sum", "12")]))?;
        Ok(Bytes::from_static(BODY))
    });
    let served = Served::start(server, app, CLAUSE)?;
    for (what, request) in [
        ("without TE: trailers", Request::get("/sized")),
        (
            "with TE: trailers",
            Request::get("/sized").header("te", "trailers"),
        ),
    ] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &request, "GET", CLAUSE)?;
        expect_status(&response, 200, CLAUSE, what)?;
        ensure(
            response.head.field("content-length").is_none(),
            CLAUSE,
            || {
                format!(
                    "{what}: the head announces trailers and carries content-length: {} (the body's size hint became a length)",
                    response
                        .head
                        .field_text("content-length")
                        .unwrap_or_default()
                )
            },
        )?;
        ensure(response.body.framing == Framing::Chunked, CLAUSE, || {
            format!(
                "{what}: the response is framed {:?}, not chunked",
                response.body.framing
            )
        })?;
        expect_body(&response, BODY, CLAUSE, what)?;
    }
    served.stop()
}

/// A file body that gives its trailers once the file was sent, and lets
/// the server send the file as it likes.
struct FileWithTrailers {
    file: FileBody,
}

impl Body for FileWithTrailers {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match self.file.next_chunk(start) {
            None => start
                .send_trailers(fields(&[("x-sum", "file")]))
                .err()
                .map(|error| Err(error.into())),
            other => other,
        }
    }

    fn size_hint(&self) -> Option<u64> {
        self.file.size_hint()
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        Some(&mut self.file)
    }
}

/// Serves the file at `path` with a head that announces a trailer.
fn file_app(path: PathBuf) -> impl rgi::Application {
    rgi::from_fn(move |_environ: Environ, start| {
        let file = FileBody::new(File::open(&path)?)?;
        start.start(head(200).with_header(header::TRAILER, HeaderValue::from_static("x-sum")))?;
        Ok(FileWithTrailers { file })
    })
}

feature_case!(
    rgi_trailer_9_file_body_announcing_trailers_goes_chunked
    needs Nothing
    ["RGI-TRAILER-9", "RGI-TRAILER-7"]
    "a file body whose head announces trailers goes out chunked on HTTP/1.1, without Content-Length, with the file's bytes exact, and with its trailer section when the server declares response trailers"
    => file_body_goes_chunked
);

fn file_body_goes_chunked(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-TRAILER-9";
    let contents: Vec<u8> = (0..100_000_u32)
        .map(|n| u8::try_from(n % 251).unwrap_or_default())
        .collect();
    let file = TempFile::with(&contents, CLAUSE)?;
    let served = Served::start(server, file_app(file.path().to_path_buf()), CLAUSE)?;
    let mut conn = served.connect()?;
    let request = Request::get("/file").header("te", "trailers");
    let response = exchange(&mut conn, &request, "GET", CLAUSE)?;
    expect_status(&response, 200, CLAUSE, "the file")?;
    ensure(
        response.head.field("content-length").is_none(),
        CLAUSE,
        || {
            format!(
                "the head announces trailers and carries content-length: {}",
                response
                    .head
                    .field_text("content-length")
                    .unwrap_or_default()
            )
        },
    )?;
    ensure(response.body.framing == Framing::Chunked, CLAUSE, || {
        format!(
            "the file is framed {:?}, not chunked",
            response.body.framing
        )
    })?;
    expect_body(&response, &contents, CLAUSE, "the file")?;
    if server.claims().features.response_trailers() {
        ensure(
            response.body.trailers_named("x-sum") == [b"file"],
            CLAUSE,
            || {
                format!(
                    "the server declares response trailers; after the file the trailer section holds {:?}",
                    sorted(&response.body.trailers)
                )
            },
        )?;
    }
    served.stop()
}
