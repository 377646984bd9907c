//! The switch to synchronous processing (spec/rgi-async.md §10, SWITCH).

use std::collections::VecDeque;
use std::io::Read;
use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::Poll;
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{Body, BoxError, Environ, StartResponse};
use rgi_async::{Step, SyncSwitch};

use super::support::{
    AnyBody, BOUND, Latch, Log, Session, Stepped, boxed, current, emit, fail, finished, head,
    poll_body, ready_or_park, recv, shown, text_body, wire,
};
use crate::Check;
use crate::suite::wire::Request;
use crate::suite::{Case, Failure, Needs, ServerUnderTest};

/// `RGIA-SWITCH-1`.
pub(super) const A_SWITCH_BEFORE_THE_HEAD: Case = Case::new(
    Check::new(
        "rgia_switch_1_a_switch_before_the_head",
        &["RGIA-SWITCH-1", "RGIA-SWITCH-5", "RGIA-CAP-4"],
        "a switch as the first step runs the continuation, which starts the response and \
         returns a synchronous body that is pulled to its end",
    ),
    Needs::Asynchronous,
    a_switch_before_the_head,
);

/// `RGIA-SWITCH-2`.
pub(super) const THE_ASYNC_BODY_IS_DROPPED_FIRST: Case = Case::new(
    Check::new(
        "rgia_switch_2_the_async_body_is_dropped_first",
        &["RGIA-SWITCH-2", "RGIA-POLL-7"],
        "the asynchronous body is dropped, once, before the continuation runs",
    ),
    Needs::Asynchronous,
    the_async_body_is_dropped_first,
);

/// `RGIA-SWITCH-3`.
pub(super) const CONTINUATIONS_RUN_ON_WORKER_THREADS: Case = Case::new(
    Check::new(
        "rgia_switch_3_continuations_run_on_worker_threads",
        &["RGIA-SWITCH-3", "RGIA-TASK-1"],
        "a blocking continuation runs on none of the threads polling a live asynchronous body, \
         and another parked request is served while it blocks",
    ),
    Needs::Asynchronous,
    continuations_run_on_worker_threads,
);

/// `RGIA-SWITCH-4`, a stored head.
pub(super) const A_STORED_HEAD_CARRIES_OVER: Case = Case::new(
    Check::new(
        "rgia_switch_4_a_stored_head_carries_over",
        &["RGIA-SWITCH-4"],
        "a head stored before the switch and not yet sent is stored for the continuation, which \
         may keep or replace it",
    ),
    Needs::Asynchronous,
    a_stored_head_carries_over,
);

/// `RGIA-SWITCH-4`, sent output.
pub(super) const SENT_OUTPUT_CARRIES_OVER: Case = Case::new(
    Check::new(
        "rgia_switch_4_sent_output_carries_over",
        &["RGIA-SWITCH-4", "RGIA-SWITCH-1"],
        "after a switch that follows sent output, the head stays sent, the bytes counted towards \
         Content-Length stay counted, and the output keeps its order",
    ),
    Needs::Asynchronous,
    sent_output_carries_over,
);

/// `RGIA-SWITCH-5`.
pub(super) const CONTINUATION_FAILURES: Case = Case::new(
    Check::new(
        "rgia_switch_5_continuation_failures",
        &["RGIA-SWITCH-5", "RGI-FAIL-3", "RGI-FAIL-5"],
        "a continuation that fails or panics gets a 500, a synchronous body that fails after \
         the head an abnormal end, and the server keeps serving",
    ),
    Needs::Asynchronous,
    continuation_failures,
);

/// `RGIA-SWITCH-6`.
pub(super) const BLOCKING_INPUT_OVER_THE_REMAINDER: Case = Case::new(
    Check::new(
        "rgia_switch_6_blocking_input_over_the_remainder",
        &["RGIA-SWITCH-6", "RGIA-INPUT-5", "RGIA-INPUT-2"],
        "after the asynchronous part read the start of an upload, the continuation's blocking \
         reads deliver exactly the rest, including bytes sent only after the switch",
    ),
    Needs::Asynchronous,
    blocking_input_over_the_remainder,
);

/// A switch step to `continuation`.
fn switch_to<F, B>(continuation: F) -> Stepped
where
    F: FnOnce(&mut StartResponse<'_>) -> Result<B, BoxError> + Send + 'static,
    B: Body + 'static,
{
    Ok(Poll::Ready(Some(Step::Switch(SyncSwitch::new(
        continuation,
    )))))
}

/// A synchronous body that records the threads it runs on.
struct Recorded {
    chunks: VecDeque<&'static str>,
    threads: Log<ThreadId>,
}

impl Body for Recorded {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.threads.push(current());
        self.chunks
            .pop_front()
            .map(|chunk| Ok(Bytes::from_static(chunk.as_bytes())))
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        self.threads.push(current());
    }
}

fn a_switch_before_the_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-SWITCH-1";
    let app = rgi_async::from_fn(move |_environ: Environ, _start: &mut StartResponse<'_>| {
        let mut switched = false;
        Ok(poll_body(move |_cx, _start| {
            if switched {
                return finished();
            }
            switched = true;
            switch_to(|start| {
                start.start(head(StatusCode::OK, &[("x-sync", "yes")]))?;
                Ok(rgi::from_iter(["sync-1,", "sync-2"]))
            })
        }))
    });
    let session = Session::start(server, app, MAIN)?;
    let response = session.exchange(&Request::get("/switch"), "GET")?;
    session.stop()?;
    let marked = response.head.field("x-sync") == Some(&b"yes"[..]);
    if response.head.status != 200
        || !marked
        || response.body.data != b"sync-1,sync-2"
        || !response.body.complete
    {
        return Err(fail(
            MAIN,
            format!(
                "a switch as the first step gave status {} (x-sync present: {marked}), body {} \
                 (complete: {}); the continuation started 200 with x-sync and returned \
                 \"sync-1,\", \"sync-2\"",
                response.head.status,
                shown(&response.body.data),
                response.body.complete
            ),
        ));
    }
    Ok(())
}

fn the_async_body_is_dropped_first(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-SWITCH-2";
    let drops = Arc::new(AtomicUsize::new(0));
    let (report, reports) = mpsc::channel();
    let app = {
        let drops = Arc::clone(&drops);
        rgi_async::from_fn(move |_environ: Environ, _start: &mut StartResponse<'_>| {
            let seen = Arc::clone(&drops);
            let counted = Arc::clone(&drops);
            let report = report.clone();
            let mut switched = false;
            Ok(poll_body(move |_cx, _start| {
                if switched {
                    return finished();
                }
                switched = true;
                let (seen, report) = (Arc::clone(&seen), report.clone());
                switch_to(move |start| {
                    let _ = report.send(seen.load(Ordering::SeqCst));
                    start.start(StatusCode::OK)?;
                    Ok(Bytes::from_static(b"continued"))
                })
            })
            .on_drop(move || {
                counted.fetch_add(1, Ordering::SeqCst);
            }))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let response = session.exchange(&Request::get("/switch"), "GET")?;
    let deadline = Instant::now() + BOUND;
    while drops.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    session.stop()?;
    let at_continuation = recv(&reports, MAIN, "the start of the continuation")?;
    if at_continuation != 1 {
        return Err(fail(
            MAIN,
            format!(
                "when the continuation started, the asynchronous body had been dropped \
                 {at_continuation} times; it must be dropped before"
            ),
        ));
    }
    let total = drops.load(Ordering::SeqCst);
    if total != 1 {
        return Err(fail(
            "RGIA-POLL-7",
            format!("the switched asynchronous body was dropped {total} times, expected once"),
        ));
    }
    if response.body.data != b"continued" {
        return Err(fail(
            MAIN,
            format!("the switched response was {}", shown(&response.body.data)),
        ));
    }
    Ok(())
}

fn continuations_run_on_worker_threads(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-SWITCH-3";
    let parked_polls: Log<ThreadId> = Log::new();
    let release = Latch::new();
    let gate = Latch::new();
    let (parked, parks) = mpsc::channel();
    let (running, runs) = mpsc::channel();
    let sync_threads: Log<ThreadId> = Log::new();
    let app = {
        let (parked_polls, release, gate) = (parked_polls.clone(), release.clone(), gate.clone());
        let sync_threads = sync_threads.clone();
        rgi_async::from_fn(
            move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
                if environ.uri().path() == "/parked" {
                    let (polls, release, parked) =
                        (parked_polls.clone(), release.clone(), parked.clone());
                    let mut done = false;
                    return Ok(boxed(poll_body(move |cx, start| {
                        if done {
                            return finished();
                        }
                        polls.push(current());
                        let _ = parked.send(());
                        ready_or_park!(release.poll_open(cx));
                        done = true;
                        start.start(StatusCode::OK)?;
                        emit("parked-done")
                    })));
                }
                let (gate, running, threads) =
                    (gate.clone(), running.clone(), sync_threads.clone());
                let mut switched = false;
                Ok(boxed(poll_body(move |_cx, _start| {
                    if switched {
                        return finished();
                    }
                    switched = true;
                    let (gate, running, threads) = (gate.clone(), running.clone(), threads.clone());
                    switch_to(move |start| {
                        let _ = running.send(current());
                        // Blocks, as synchronous code may.
                        let opened = gate.wait(BOUND * 2);
                        start.start(StatusCode::OK)?;
                        Ok(Recorded {
                            chunks: VecDeque::from([if opened {
                                "sync-done"
                            } else {
                                "gate-closed"
                            }]),
                            threads,
                        })
                    })
                })))
            },
        )
    };
    let session = Session::start(server, app, MAIN)?;
    let mut parked_conn = session.connect()?;
    parked_conn
        .send(&Request::get("/parked").to_bytes())
        .map_err(wire(MAIN, "sending GET /parked"))?;
    recv(&parks, MAIN, "the first poll of GET /parked")?;
    let mut switching = session.connect()?;
    switching
        .send(&Request::get("/switch").to_bytes())
        .map_err(wire(MAIN, "sending GET /switch"))?;
    let continuation = recv(&runs, MAIN, "the start of the continuation of GET /switch")?;
    release.open();
    let parked_answer = parked_conn.read_response("GET").map_err(wire(
        "RGIA-TASK-1",
        "GET /parked was woken while the continuation of GET /switch blocked; reading its \
         response",
    ));
    gate.open();
    let switched_answer = switching
        .read_response("GET")
        .map_err(wire(MAIN, "reading the response to GET /switch"));
    session.stop()?;
    let loop_threads = parked_polls.entries();
    if loop_threads.contains(&continuation) {
        return Err(fail(
            MAIN,
            format!(
                "the continuation ran on {continuation:?}, the thread that polls the parked body \
                 of another request (a loop thread)"
            ),
        ));
    }
    let (parked_answer, switched_answer) = (parked_answer?, switched_answer?);
    if parked_answer.body.data != b"parked-done" || switched_answer.body.data != b"sync-done" {
        return Err(fail(
            MAIN,
            format!(
                "GET /parked got {}, GET /switch got {}",
                shown(&parked_answer.body.data),
                shown(&switched_answer.body.data)
            ),
        ));
    }
    if let Some(thread) = sync_threads
        .entries()
        .iter()
        .find(|thread| loop_threads.contains(thread))
    {
        return Err(fail(
            MAIN,
            format!(
                "the synchronous body of the switch was pulled or dropped on {thread:?}, which \
                 polled an asynchronous body"
            ),
        ));
    }
    Ok(())
}

fn a_stored_head_carries_over(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-SWITCH-4";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(move |environ: Environ, start: &mut StartResponse<'_>| {
        start.start(head(StatusCode::ACCEPTED, &[("x-stored", "async-head")]))?;
        let replace = environ.uri().path() == "/replace";
        let report = report.clone();
        let mut switched = false;
        Ok(poll_body(move |_cx, _start| {
            if switched {
                return finished();
            }
            switched = true;
            let report = report.clone();
            switch_to(move |start| {
                let _ = report.send((start.is_started(), start.is_head_sent()));
                if replace {
                    start.replace(
                        head(
                            StatusCode::NON_AUTHORITATIVE_INFORMATION,
                            &[("x-replaced", "yes")],
                        ),
                        "probe: replaced after the switch",
                    )?;
                }
                Ok(Bytes::from_static(b"rest"))
            })
        }))
    });
    let session = Session::start(server, app, MAIN)?;
    let kept = session.exchange(&Request::get("/keep"), "GET")?;
    let replaced = session.exchange(&Request::get("/replace"), "GET")?;
    session.stop()?;
    for _ in 0..2 {
        let (started, sent) = recv(&reports, MAIN, "the start of the continuation")?;
        if !started || sent {
            return Err(fail(
                MAIN,
                format!(
                    "the asynchronous part stored a 202 head and sent nothing; the \
                     continuation's StartResponse says is_started: {started}, is_head_sent: \
                     {sent}"
                ),
            ));
        }
    }
    if kept.head.status != 202
        || kept.head.field("x-stored") != Some(&b"async-head"[..])
        || kept.body.data != b"rest"
    {
        return Err(fail(
            MAIN,
            format!(
                "a head stored before the switch (202, x-stored) and kept by the continuation \
                 went out as {} {:?} with body {}",
                kept.head.status,
                kept.head.field_text("x-stored"),
                shown(&kept.body.data)
            ),
        ));
    }
    if replaced.head.status != 203 || replaced.head.field("x-replaced") != Some(&b"yes"[..]) {
        return Err(fail(
            MAIN,
            format!(
                "the continuation replaced the stored 202 with 203 and x-replaced; the client \
                 got {} (x-replaced {:?})",
                replaced.head.status,
                replaced.head.field_text("x-replaced")
            ),
        ));
    }
    Ok(())
}

fn sent_output_carries_over(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-SWITCH-4";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(move |_environ: Environ, start: &mut StartResponse<'_>| {
        start.start(head(
            StatusCode::OK,
            &[("content-type", "text/plain"), ("content-length", "12")],
        ))?;
        let report = report.clone();
        let mut polls = 0;
        Ok(poll_body(move |_cx, _start| {
            polls += 1;
            match polls {
                1 => emit("async-"),
                2 => {
                    let report = report.clone();
                    switch_to(move |start| {
                        let sent = start.is_head_sent();
                        let restarted = start.start(StatusCode::CREATED).is_ok();
                        let _ = report.send((sent, restarted));
                        Ok(rgi::from_iter(["sync", "!!"]))
                    })
                }
                _ => finished(),
            }
        }))
    });
    let session = Session::start(server, app, MAIN)?;
    let response = session.exchange(&Request::get("/switch"), "GET")?;
    session.stop()?;
    let (sent, restarted) = recv(&reports, MAIN, "the start of the continuation")?;
    if !sent {
        return Err(fail(
            MAIN,
            "the body's first chunk went out before the switch, yet the continuation's \
             StartResponse says the head was not sent",
        ));
    }
    if restarted {
        return Err(fail(
            MAIN,
            "after the switch, start() succeeded although the head had been sent",
        ));
    }
    if response.head.status != 200
        || response.body.data != b"async-sync!!"
        || !response.body.complete
    {
        return Err(fail(
            MAIN,
            format!(
                "\"async-\" before the switch and \"sync\", \"!!\" after it, under content-length \
                 12, arrived as status {} body {} (complete: {})",
                response.head.status,
                shown(&response.body.data),
                response.body.complete
            ),
        ));
    }
    Ok(())
}

/// A synchronous body that yields `"partial"` and then fails.
struct FailsAfterData(bool);

impl Body for FailsAfterData {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if self.0 {
            return Some(Err("probe: the synchronous body failed".into()));
        }
        self.0 = true;
        Some(Ok(Bytes::from_static(b"partial")))
    }
}

fn continuation_failures(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-SWITCH-5";
    let app = rgi_async::from_fn(
        move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            let path = environ.uri().path().to_owned();
            if path == "/ok" {
                return Ok(boxed(text_body("ok")));
            }
            let mut switched = false;
            Ok(boxed(poll_body(move |_cx, _start| {
                if switched {
                    return finished();
                }
                switched = true;
                let path = path.clone();
                switch_to(move |start| -> Result<Box<dyn Body>, BoxError> {
                    match path.as_str() {
                        "/error" => Err("probe: the continuation failed".into()),
                        "/panic" => {
                            panic::resume_unwind(Box::new("probe: the continuation panicked"))
                        }
                        _ => {
                            start.start(StatusCode::OK)?;
                            Ok(Box::new(FailsAfterData(false)))
                        }
                    }
                })
            })))
        },
    );
    let session = Session::start(server, app, MAIN)?;
    for path in ["/error", "/panic"] {
        let response = session.exchange(&Request::get(path), "GET")?;
        if response.head.status != 500 {
            return Err(fail(
                MAIN,
                format!(
                    "GET {path}: the continuation failed before any head was sent; status {}, \
                     expected 500",
                    response.head.status
                ),
            ));
        }
    }
    let late = session.exchange(&Request::get("/late"), "GET")?;
    let after = session.exchange(&Request::get("/ok"), "GET")?;
    session.stop()?;
    if late.head.status != 200 || late.body.complete {
        return Err(fail(
            "RGI-FAIL-5",
            format!(
                "a synchronous body that failed after the head and \"partial\" ended as status {} \
                 body {} (complete: {}); an abnormal end is required",
                late.head.status,
                shown(&late.body.data),
                late.body.complete
            ),
        ));
    }
    if after.body.data != b"ok" {
        return Err(fail(
            MAIN,
            format!(
                "after the failed continuations, GET /ok got {}",
                shown(&after.body.data)
            ),
        ));
    }
    Ok(())
}

/// What the upload probe saw.
#[derive(Debug)]
enum Upload {
    /// The asynchronous part read these bytes, in this many pieces, and
    /// switched.
    Async { read: Vec<u8>, pieces: usize },
    /// The asynchronous part's `poll_chunk` failed.
    Failed(String),
    /// The continuation started.
    Continued,
    /// The continuation's blocking reads ended with this.
    Sync(Result<Vec<u8>, String>),
}

fn blocking_input_over_the_remainder(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-SWITCH-6";
    /// The upload's length, what is sent before the switch, and how much
    /// the asynchronous part reads, in pieces of at most `PIECE`.
    const LENGTH: usize = 1000;
    const FIRST: usize = 400;
    const ASYNC_READS: usize = 250;
    const PIECE: usize = 100;
    let upload: Vec<u8> = b"abcdefghijklmnopqrstuvwxyz"
        .iter()
        .copied()
        .cycle()
        .take(LENGTH)
        .collect();
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
        let mut input = Some(environ.into_input());
        let report = report.clone();
        let mut read = Vec::new();
        let mut pieces = 0;
        Ok(poll_body(move |cx, _start| {
            let Some(reading) = input.as_mut() else {
                return finished();
            };
            while read.len() < ASYNC_READS {
                let piece = match ready_or_park!(reading.poll_chunk(cx, PIECE)) {
                    Ok(piece) => piece,
                    Err(error) => {
                        let _ = report.send(Upload::Failed(error.to_string()));
                        return Err(error.into());
                    }
                };
                if piece.is_empty() {
                    break;
                }
                pieces += 1;
                read.extend_from_slice(&piece);
            }
            let mut rest = input.take().ok_or("the input is gone")?;
            let _ = report.send(Upload::Async {
                read: read.clone(),
                pieces,
            });
            let report = report.clone();
            switch_to(move |start| {
                let _ = report.send(Upload::Continued);
                let mut remainder = Vec::new();
                let outcome = rest.read_to_end(&mut remainder);
                let _ = report.send(Upload::Sync(
                    outcome
                        .map(|_| remainder)
                        .map_err(|error| error.to_string()),
                ));
                start.start(StatusCode::OK)?;
                Ok(Bytes::from_static(b"stored"))
            })
        }))
    });
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let request = Request::new("POST", "/upload").body(&upload);
    let mut first = request.head_bytes();
    first.extend_from_slice(&upload[..FIRST]);
    conn.send(&first).map_err(wire(
        MAIN,
        format!("sending the head and {FIRST} of {LENGTH} bytes"),
    ))?;
    let (read, pieces) = match recv(&reports, MAIN, "the asynchronous part's reads")? {
        Upload::Async { read, pieces } => (read, pieces),
        Upload::Failed(error) => {
            return Err(fail(
                "RGIA-INPUT-1",
                format!("the asynchronous part's poll_chunk failed: {error}"),
            ));
        }
        other => return Err(fail(MAIN, format!("the probe saw {other:?} first"))),
    };
    match recv(&reports, MAIN, "the start of the continuation")? {
        Upload::Continued => {}
        other => {
            return Err(fail(
                MAIN,
                format!("the probe saw {other:?} before the continuation"),
            ));
        }
    }
    // Only now the rest: the continuation's first reads must wait for it.
    conn.send(&upload[FIRST..FIRST + 300])
        .map_err(wire(MAIN, "sending the middle of the upload"))?;
    thread::sleep(Duration::from_millis(50));
    conn.send(&upload[FIRST + 300..])
        .map_err(wire(MAIN, "sending the end of the upload"))?;
    let rest = recv(
        &reports,
        "RGIA-INPUT-2",
        "the end of the continuation's blocking reads (the rest was sent after the switch)",
    );
    let response = conn
        .read_response("POST")
        .map_err(wire(MAIN, "reading the response to the upload"));
    session.stop()?;
    if read.len() < ASYNC_READS || read != upload[..read.len()] {
        return Err(fail(
            "RGIA-INPUT-3",
            format!(
                "the asynchronous part read {} in {pieces} pieces of at most {PIECE}, not the \
                 start of the upload",
                shown(&read)
            ),
        ));
    }
    let rest = match rest? {
        Upload::Sync(Ok(rest)) => rest,
        Upload::Sync(Err(error)) => {
            return Err(fail(
                MAIN,
                format!("the continuation's blocking read of the remainder failed: {error}"),
            ));
        }
        other => return Err(fail(MAIN, format!("the probe saw {other:?}"))),
    };
    if rest != upload[read.len()..] {
        return Err(fail(
            MAIN,
            format!(
                "the asynchronous part read {} bytes; the continuation's blocking reads then \
                 delivered {} bytes ({}) instead of the remaining {} bytes ({})",
                read.len(),
                rest.len(),
                shown(&rest),
                LENGTH - read.len(),
                shown(&upload[read.len()..])
            ),
        ));
    }
    let response = response?;
    if response.body.data != b"stored" {
        return Err(fail(
            MAIN,
            format!("the upload was answered {}", shown(&response.body.data)),
        ));
    }
    Ok(())
}
