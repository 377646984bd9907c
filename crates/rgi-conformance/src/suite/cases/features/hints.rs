//! `103 Early Hints` (spec/rgi.md §16.3): each hint goes out at once and
//! in order, before the final head, which stays lazy and replaceable
//! (`RGI-EARLY-3`); a declared feature is deliverable (`RGI-EARLY-4`); no
//! hint reaches an HTTP/1.0 client or follows the final head.

use std::sync::mpsc::{self, Receiver, Sender};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, header};
use rgi::{Body, BoxError, Environ, ResponseHead, StartResponse};
use rgi_async::Step;

use super::super::kit::{
    Esc, GATE_LIMIT, Gate, Served, WAIT, data, ensure, exchange, expect_body, expect_status, head,
    head_with_length, recv, secret_error,
};
use super::support::{Feed, PollFn, Stepped};
use crate::suite::wire::{Head, Request};
use crate::suite::{Failure, Probe, ServerUnderTest};

/// What a probe reports about its hints.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hinted {
    /// `early_hints_deliverable()` when the application was called.
    Deliverable(bool),
    /// What `send_early_hints` returned for hint `n`.
    Sent(u8, Result<(), String>),
    /// `is_started()` after a hint was sent, before any start.
    Started(bool),
}

/// The link of hint `n`.
fn link(n: u8) -> &'static str {
    match n {
        1 => "</first.css>; rel=preload; as=style",
        2 => "</second.js>; rel=preload; as=script",
        3 => "</replaced.css>; rel=preload; as=style",
        _ => "</lazy.css>; rel=preload; as=style",
    }
}

/// Sends hint `n` on `start` and reports what happened.
fn hint(start: &mut StartResponse<'_>, n: u8, report: &Sender<Hinted>) {
    let mut hints = http::HeaderMap::new();
    hints.insert(header::LINK, HeaderValue::from_static(link(n)));
    let sent = start
        .send_early_hints(hints)
        .map_err(|error| error.to_string());
    let _ = report.send(Hinted::Sent(n, sent));
}

/// The head stored before the hints: a 200 that frames a 4-byte page.
fn page_head() -> ResponseHead {
    head_with_length(200, 4)
}

/// The head that replaces it after a hint.
fn unavailable_head() -> ResponseHead {
    head_with_length(503, 11)
}

/// A body that starts its response in its first pull.
struct Lazy(bool);

impl Body for Lazy {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if std::mem::replace(&mut self.0, true) {
            return None;
        }
        Some(
            start
                .start(page_head())
                .map(|()| data(b"lazy"))
                .map_err(Into::into),
        )
    }
}

/// The synchronous probe: `/hints` sends hint 1, waits for the case to
/// see it, sends hint 2, then the stored 200; `/replaced` replaces a
/// stored 200 with a 503 after a hint; `/lazy` starts in the body.
fn sync_probe(report: Sender<Hinted>, gate: Gate) -> impl rgi::Application {
    rgi::from_fn(
        move |environ: Environ, start| -> Result<Box<dyn Body>, BoxError> {
            let _ = report.send(Hinted::Deliverable(start.early_hints_deliverable()));
            match environ.raw_path() {
                "/hints" => {
                    start.start(page_head())?;
                    hint(start, 1, &report);
                    gate.wait(GATE_LIMIT);
                    hint(start, 2, &report);
                    Ok(Box::new(data(b"page")))
                }
                "/replaced" => {
                    start.start(page_head())?;
                    hint(start, 3, &report);
                    start.replace(unavailable_head(), secret_error())?;
                    Ok(Box::new(data(b"unavailable")))
                }
                _ => {
                    hint(start, 4, &report);
                    let _ = report.send(Hinted::Started(start.is_started()));
                    Ok(Box::new(Lazy(false)))
                }
            }
        },
    )
}

/// The asynchronous probe: the same three paths, with the wait for the
/// case a poll that stays pending until `open` is fed.
fn async_probe(report: Sender<Hinted>, open: Feed<()>) -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        let _ = report.send(Hinted::Deliverable(start.early_hints_deliverable()));
        let path = environ.raw_path().to_owned();
        let (report, open) = (report.clone(), open.clone());
        // 0: nothing done yet; 1: hint 1 sent, waiting for the case; 2: done.
        let mut stage = 0_u8;
        Ok(PollFn(
            move |cx: &mut Context<'_>, start: &mut StartResponse<'_>| -> Stepped {
                let chunk = loop {
                    match (path.as_str(), stage) {
                        (_, 2) => return Poll::Ready(None),
                        ("/hints", 0) => {
                            if let Err(error) = start.start(page_head()) {
                                return Poll::Ready(Some(Err(error.into())));
                            }
                            hint(start, 1, &report);
                            stage = 1;
                        }
                        ("/hints", _) => match open.poll_next_item(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(_) => {
                                hint(start, 2, &report);
                                break Ok(data(b"page"));
                            }
                        },
                        ("/replaced", _) => {
                            break start.start(page_head()).and_then(|()| {
                                hint(start, 3, &report);
                                start
                                    .replace(unavailable_head(), secret_error())
                                    .map(|()| data(b"unavailable"))
                            });
                        }
                        _ => {
                            hint(start, 4, &report);
                            let _ = report.send(Hinted::Started(start.is_started()));
                            break start.start(page_head()).map(|()| data(b"lazy"));
                        }
                    }
                };
                stage = 2;
                Poll::Ready(Some(chunk.map(Step::Chunk).map_err(Into::into)))
            },
        ))
    })
}

feature_case!(
    rgi_early_3_hints_go_out_before_the_final_head
    needs EarlyHints
    ["RGI-EARLY-3", "RGI-EARLY-4", "RGI-FEAT-1"]
    "on HTTP/1.1 early hints are deliverable; each 103 reaches the client while the application still works, in order and before the final head; a head stored before a hint can still be replaced by an error, and one started after it goes out as started"
    => hints_before_the_final_head
);

feature_case!(
    rgi_early_3_async_hints_go_out_before_the_final_head
    needs AsyncEarlyHints
    ["RGI-EARLY-3", "RGI-EARLY-4", "RGI-FEAT-1"]
    "as rgi_early_3_hints_go_out_before_the_final_head, for an asynchronous body that waits in a pending poll between its hints"
    => async_hints_before_the_final_head
);

fn hints_before_the_final_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let (tx, reports) = mpsc::channel();
    let gate = Gate::new();
    let probe = Probe::sync(sync_probe(tx, gate.clone()));
    judge_hints(server, probe, &reports, &|| gate.open())
}

fn async_hints_before_the_final_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let (tx, reports) = mpsc::channel();
    let open = Feed::new();
    let probe = Probe::asynchronous(async_probe(tx, open.clone()));
    judge_hints(server, probe, &reports, &|| open.push(()))
}

/// Opens the probe's wait when dropped, so that no failure leaves it
/// waiting.
struct Opens<'a>(&'a dyn Fn());

impl Drop for Opens<'_> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Whether `head` is a 103 carrying exactly the link of hint `n`.
fn is_hint(head: &Head, n: u8) -> bool {
    head.status == 103 && head.fields_named("link") == [link(n).as_bytes()]
}

/// Waits for the report of hint `n` and fails unless it was sent.
fn expect_sent(reports: &Receiver<Hinted>, n: u8) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-EARLY-3";
    match recv(
        reports,
        WAIT,
        CLAUSE,
        "the application did not report its hint",
    )? {
        Hinted::Sent(sent, Ok(())) if sent == n => Ok(()),
        other => Err(Failure::new(
            CLAUSE,
            format!("hint {n}: the application reported {other:?}"),
        )),
    }
}

fn judge_hints(
    server: &dyn ServerUnderTest,
    probe: Probe,
    reports: &Receiver<Hinted>,
    open: &dyn Fn(),
) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-EARLY-3";
    let served = Served::with_probe(server, probe, CLAUSE)?;
    let opens = Opens(open);
    let mut conn = served.connect()?;
    conn.send(&Request::get("/hints").to_bytes())
        .map_err(|error| Failure::new(CLAUSE, format!("sending the request: {error}")))?;
    let deliverable = recv(reports, WAIT, CLAUSE, "the application was not called")?;
    ensure(
        deliverable == Hinted::Deliverable(true),
        "RGI-EARLY-4",
        || {
            "the server declares early hints, yet early_hints_deliverable() is false on an HTTP/1.1 request: every hint is dropped"
            .to_owned()
        },
    )?;
    expect_sent(reports, 1)?;
    let first = conn.read_head().map_err(|error| {
        Failure::new(
            CLAUSE,
            format!("no 103 reached the client while the application waited after sending it (held back for the final head?): {error}"),
        )
    })?;
    ensure(is_hint(&first, 1), CLAUSE, || {
        format!(
            "while the application waited after its first hint, the client got {} instead of the 103 with its link",
            Esc(&first.raw)
        )
    })?;
    drop(opens);
    expect_sent(reports, 2)?;
    let response = conn
        .read_response("GET")
        .map_err(|error| Failure::new(CLAUSE, format!("reading the rest of /hints: {error}")))?;
    ensure(
        response.interim.len() == 1 && is_hint(&response.interim[0], 2),
        CLAUSE,
        || {
            format!(
                "after the first 103 the client got the interim heads {:?}, expected one 103 with the second link",
                response
                    .interim
                    .iter()
                    .map(|head| Esc(&head.raw).to_string())
                    .collect::<Vec<_>>()
            )
        },
    )?;
    expect_status(&response, 200, CLAUSE, "the final head after two hints")?;
    expect_body(&response, b"page", CLAUSE, "the page after two hints")?;

    let replaced = exchange(&mut conn, &Request::get("/replaced"), "GET", CLAUSE)?;
    let _ = recv(reports, WAIT, CLAUSE, "the application was not called")?;
    expect_sent(reports, 3)?;
    ensure(
        replaced.interim.len() == 1 && is_hint(&replaced.interim[0], 3),
        CLAUSE,
        || format!("/replaced: the interim heads are {:?}", replaced.interim),
    )?;
    expect_status(
        &replaced,
        503,
        CLAUSE,
        "a head stored before an early hint and replaced after it",
    )?;
    expect_body(&replaced, b"unavailable", CLAUSE, "the replacement")?;

    let lazy = exchange(&mut conn, &Request::get("/lazy"), "GET", CLAUSE)?;
    let _ = recv(reports, WAIT, CLAUSE, "the application was not called")?;
    expect_sent(reports, 4)?;
    let started = recv(reports, WAIT, CLAUSE, "the application did not report")?;
    ensure(started == Hinted::Started(false), CLAUSE, || {
        format!(
            "after an early hint, before any start, the application saw {started:?}: the hint started the response"
        )
    })?;
    ensure(
        lazy.interim.len() == 1 && is_hint(&lazy.interim[0], 4),
        CLAUSE,
        || format!("/lazy: the interim heads are {:?}", lazy.interim),
    )?;
    expect_status(&lazy, 200, CLAUSE, "a head started after an early hint")?;
    expect_body(&lazy, b"lazy", CLAUSE, "the lazily started page")?;
    served.stop()
}

feature_case!(
    rgi_early_3_no_hints_to_http10
    needs Nothing
    ["RGI-EARLY-3"]
    "on HTTP/1.0 early hints are not deliverable, send_early_hints succeeds, and the client gets the final response alone"
    => no_hints_to_http10
);

fn no_hints_to_http10(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-EARLY-3";
    let (tx, reports) = mpsc::channel();
    let app = rgi::from_fn(move |_environ: Environ, start| {
        let _ = tx.send(Hinted::Deliverable(start.early_hints_deliverable()));
        hint(start, 1, &tx);
        start.start(page_head())?;
        Ok(data(b"page"))
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/old").http10(), "GET", CLAUSE)?;
    let deliverable = recv(&reports, WAIT, CLAUSE, "the application was not called")?;
    ensure(deliverable == Hinted::Deliverable(false), CLAUSE, || {
        "early_hints_deliverable() is true on an HTTP/1.0 request".to_owned()
    })?;
    expect_sent(&reports, 1)?;
    ensure(response.interim.is_empty(), CLAUSE, || {
        format!(
            "an HTTP/1.0 client got the interim responses {:?}",
            response
                .interim
                .iter()
                .map(|head| Esc(&head.raw).to_string())
                .collect::<Vec<_>>()
        )
    })?;
    expect_status(&response, 200, CLAUSE, "the final response")?;
    expect_body(&response, b"page", CLAUSE, "the page")?;
    served.stop()
}

/// A body that streams its first chunk, then tries an early hint and
/// streams a second.
struct HintsLate(u8, Sender<Hinted>);

impl Body for HintsLate {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.0 += 1;
        match self.0 {
            1 => Some(
                start
                    .start(head(200))
                    .map(|()| data(b"first|"))
                    .map_err(Into::into),
            ),
            2 => {
                hint(start, 1, &self.1);
                Some(Ok(data(b"second")))
            }
            _ => None,
        }
    }
}

feature_case!(
    rgi_early_3_no_hints_after_the_final_head
    needs Nothing
    ["RGI-EARLY-3"]
    "an early hint attempted after the final head went out is refused and nothing of it reaches the client: the streamed body arrives exactly"
    => no_hints_after_the_final_head
);

fn no_hints_after_the_final_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-EARLY-3";
    let (tx, reports) = mpsc::channel();
    let app = rgi::from_fn(move |_environ: Environ, _start| Ok(HintsLate(0, tx.clone())));
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/late"), "GET", CLAUSE)?;
    expect_status(&response, 200, CLAUSE, "the streamed response")?;
    ensure(response.interim.is_empty(), CLAUSE, || {
        format!("interim heads arrived: {:?}", response.interim)
    })?;
    expect_body(
        &response,
        b"first|second",
        CLAUSE,
        "a body after which a hint was attempted",
    )?;
    match recv(&reports, WAIT, CLAUSE, "the body did not report its hint")? {
        Hinted::Sent(1, Err(_)) => {}
        other => {
            return Err(Failure::new(
                CLAUSE,
                format!("a hint after the final head was not refused with an error: {other:?}"),
            ));
        }
    }
    let again = exchange(&mut conn, &Request::get("/again"), "GET", CLAUSE)?;
    expect_body(
        &again,
        b"first|second",
        CLAUSE,
        "the next request on the connection",
    )?;
    served.stop()
}
