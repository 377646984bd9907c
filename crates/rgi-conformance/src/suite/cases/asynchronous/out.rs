//! Output: streaming and backpressure (spec/rgi-async.md §13, OUT).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{Environ, StartResponse};

use super::poll::FILLER;
use super::support::{
    BOUND, Latch, Session, emit, exchange, fail, finished, head, poll_body, ready_or_park, shown,
    wire,
};
use crate::Check;
use crate::suite::wire::Request;
use crate::suite::{Case, Failure, Needs, ServerUnderTest};

/// `RGIA-OUT-4`.
pub(super) const CHUNKS_ARE_STREAMED: Case = Case::new(
    Check::new(
        "rgia_out_4_chunks_are_streamed_as_produced",
        &["RGIA-OUT-4", "RGIA-OUT-1", "RGIA-POLL-2"],
        "each chunk of an asynchronous body reaches the client while the body waits, and ready \
         chunks are followed by another poll without a wake-up",
    ),
    Needs::Asynchronous,
    chunks_are_streamed,
);

/// `RGIA-OUT-6`.
pub(super) const EMPTY_CHUNKS_SEND_NOTHING: Case = Case::new(
    Check::new(
        "rgia_out_6_empty_chunks_send_nothing",
        &["RGIA-OUT-6"],
        "empty chunks, before and after the start, put no head and no last-chunk on the wire",
    ),
    Needs::Asynchronous,
    empty_chunks_send_nothing,
);

/// `RGIA-OUT-2`.
pub(super) const UNSENT_OUTPUT_IS_BOUNDED: Case = Case::new(
    Check::new(
        "rgia_out_2_unsent_output_is_bounded",
        &["RGIA-OUT-2", "RGIA-OUT-3", "RGIA-POLL-2"],
        "a body that produces on every poll stops being polled while the client reads nothing, \
         and is polled again once the client reads",
    ),
    Needs::Asynchronous,
    unsent_output_is_bounded,
);

/// `RGIA-OUT-9`.
pub(super) const HEAD_AND_LENGTH_RULES_APPLY: Case = Case::new(
    Check::new(
        "rgia_out_9_head_and_length_rules_apply",
        &["RGIA-OUT-9", "RGI-FAIL-5", "RGI-FAIL-7"],
        "asynchronous bodies get no body on HEAD, an abnormal end when short of their \
         Content-Length, and a 500 for data before the start",
    ),
    Needs::Asynchronous,
    head_and_length_rules_apply,
);

fn chunks_are_streamed(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-OUT-4";
    let (second, end) = (Latch::new(), Latch::new());
    let app = {
        let (second, end) = (second.clone(), end.clone());
        rgi_async::from_fn(move |_environ: Environ, _start: &mut StartResponse<'_>| {
            let (second, end) = (second.clone(), end.clone());
            let mut phase = 0;
            Ok(poll_body(move |cx, start| match phase {
                0 => {
                    phase = 1;
                    start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
                    emit("one")
                }
                1 => {
                    ready_or_park!(second.poll_open(cx));
                    phase = 2;
                    emit("two")
                }
                2 => {
                    phase = 3;
                    emit("three")
                }
                _ => {
                    ready_or_park!(end.poll_open(cx));
                    finished()
                }
            }))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&Request::get("/stream").to_bytes())
        .map_err(wire(MAIN, "sending GET /stream"))?;
    let (_, response_head) = conn
        .read_final_head()
        .map_err(wire(MAIN, "reading the head of the streamed response"))?;
    let mut body = conn
        .body_reader(&response_head, "GET")
        .map_err(wire(MAIN, "the framing of the streamed response"))?;
    let first = body.read_at_least(3).map_err(wire(
        MAIN,
        "the body yielded \"one\" and then waited for the client; \"one\" did not arrive",
    ))?;
    if first != b"one" {
        return Err(fail(
            MAIN,
            format!("the first chunk arrived as {}", shown(&first)),
        ));
    }
    second.open();
    body.extend_deadline(BOUND);
    // Counts are of the whole body so far: "one" is 3 bytes, "onetwo" 6.
    let mut rest = body.read_at_least(6).map_err(wire(
        MAIN,
        "the body was woken and yielded \"two\"; \"two\" did not arrive",
    ))?;
    if rest.len() < 8 {
        body.extend_deadline(BOUND);
        let more = body.read_at_least(11).map_err(wire(
            "RGIA-POLL-2",
            "after the ready chunk \"two\" the server did not poll again without a wake-up: \
             \"three\" did not arrive",
        ))?;
        rest.extend_from_slice(&more);
    }
    if rest != b"twothree" {
        return Err(fail(MAIN, format!("after \"one\" came {}", shown(&rest))));
    }
    end.open();
    body.extend_deadline(BOUND);
    let tail = body
        .read_all(1024)
        .map_err(wire(MAIN, "reading the end of the streamed response"))?;
    session.stop()?;
    if !tail.data.is_empty() || !tail.complete {
        return Err(fail(
            MAIN,
            format!(
                "the streamed response ended with {} (complete: {})",
                shown(&tail.data),
                tail.complete
            ),
        ));
    }
    Ok(())
}

fn empty_chunks_send_nothing(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-OUT-6";
    let app = rgi_async::from_fn(move |_environ: Environ, _start: &mut StartResponse<'_>| {
        let mut phase = 0;
        Ok(poll_body(move |_cx, start| {
            phase += 1;
            match phase {
                // Not started yet: an empty chunk must not send a head.
                1 => emit(Bytes::new()),
                2 => {
                    start.start(head(StatusCode::CREATED, &[("x-after-empty", "yes")]))?;
                    emit(Bytes::new())
                }
                3 => emit("data"),
                // After data: an empty chunk must not end a chunked body.
                4 => emit(Bytes::new()),
                5 => emit("-more"),
                _ => finished(),
            }
        }))
    });
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(exchange(&mut conn, &Request::get("/empty"), "GET", MAIN)?);
    }
    session.stop()?;
    for (index, response) in answers.iter().enumerate() {
        let marked = response.head.field("x-after-empty") == Some(&b"yes"[..]);
        if response.head.status != 201 || !marked {
            return Err(fail(
                MAIN,
                format!(
                    "request {}: a body that yielded an empty chunk before starting 201 was \
                     answered {} (x-after-empty present: {marked})",
                    index + 1,
                    response.head.status
                ),
            ));
        }
        if response.body.data != b"data-more" || !response.body.complete {
            return Err(fail(
                MAIN,
                format!(
                    "request {}: chunks \"\", \"data\", \"\", \"-more\" arrived as {} \
                     (complete: {}, chunk sizes {:?})",
                    index + 1,
                    shown(&response.body.data),
                    response.body.complete,
                    response.body.chunk_sizes
                ),
            ));
        }
    }
    Ok(())
}

fn unsent_output_is_bounded(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-OUT-2";
    /// Produced while the client reads nothing, this is no bound at all.
    const TOO_MUCH: u64 = 64 * 1024 * 1024;
    /// The body refuses to produce beyond this, so a broken server cannot
    /// exhaust memory.
    const CAP: u64 = 2 * TOO_MUCH;
    /// Unchanged for this long: the server stopped polling.
    const STILL: Duration = Duration::from_millis(400);
    let produced = Arc::new(AtomicU64::new(0));
    let app = {
        let produced = Arc::clone(&produced);
        rgi_async::from_fn(move |_environ: Environ, _start: &mut StartResponse<'_>| {
            let produced = Arc::clone(&produced);
            Ok(poll_body(move |_cx, start| {
                if !start.is_started() {
                    start.start(head(
                        StatusCode::OK,
                        &[("content-type", "application/octet-stream")],
                    ))?;
                }
                let total = produced.fetch_add(FILLER.len() as u64, Ordering::SeqCst);
                if total >= CAP {
                    return Err("probe: polled far beyond any bound".into());
                }
                emit(Bytes::from_static(&FILLER))
            }))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&Request::get("/flood").to_bytes())
        .map_err(wire(MAIN, "sending GET /flood"))?;
    let deadline = Instant::now() + BOUND;
    let (mut last, mut since) = (0, Instant::now());
    let plateau = loop {
        thread::sleep(Duration::from_millis(50));
        let now = produced.load(Ordering::SeqCst);
        if now > TOO_MUCH {
            return Err(fail(
                MAIN,
                format!(
                    "the client read nothing, yet the server polled the body for {} MiB",
                    now / (1024 * 1024)
                ),
            ));
        }
        if now != last || now == 0 {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= STILL {
            break now;
        }
        if Instant::now() > deadline {
            return Err(fail(
                MAIN,
                format!(
                    "the client read nothing for {BOUND:?} and the server kept polling the body \
                     ({} KiB so far)",
                    now / 1024
                ),
            ));
        }
    };
    let (_, response_head) = conn
        .read_final_head()
        .map_err(wire(MAIN, "reading the head of the flood"))?;
    let mut body = conn
        .body_reader(&response_head, "GET")
        .map_err(wire(MAIN, "the framing of the flood"))?;
    let wanted = plateau + 4 * 1024 * 1024;
    body.read_at_least(wanted).map_err(wire(
        "RGIA-POLL-2",
        format!(
            "after the server stopped at {} KiB, the client read on but the server did not poll \
             the body again up to {} KiB",
            plateau / 1024,
            wanted / 1024
        ),
    ))?;
    drop(conn);
    session.stop()
}

fn head_and_length_rules_apply(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-OUT-9";
    let app = rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
        let path = environ.uri().path().to_owned();
        let mut polls = 0;
        Ok(poll_body(move |_cx, start| {
            polls += 1;
            if polls > 1 {
                return finished();
            }
            match path.as_str() {
                "/short" => {
                    start.start(head(
                        StatusCode::OK,
                        &[("content-type", "text/plain"), ("content-length", "10")],
                    ))?;
                    emit("short")
                }
                "/unstarted" => emit("data before any start"),
                _ => {
                    start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
                    emit("hello")
                }
            }
        }))
    });
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let to_head = exchange(&mut conn, &Request::new("HEAD", "/hello"), "HEAD", MAIN)?;
    let after = exchange(&mut conn, &Request::get("/hello"), "GET", MAIN).map_err(|failure| {
        fail(
            MAIN,
            format!(
                "after a HEAD request whose asynchronous body yielded \"hello\", the next \
                 response on the connection: {}",
                failure.reason()
            ),
        )
    })?;
    let short = session.exchange(&Request::get("/short"), "GET")?;
    let unstarted = session.exchange(&Request::get("/unstarted"), "GET")?;
    session.stop()?;
    if to_head.head.status != 200 || after.body.data != b"hello" {
        return Err(fail(
            MAIN,
            format!(
                "HEAD /hello got {}, then GET /hello got {}",
                to_head.head.status,
                shown(&after.body.data)
            ),
        ));
    }
    if short.body.complete || short.body.data != b"short" {
        return Err(fail(
            "RGI-FAIL-5",
            format!(
                "a body that declared content-length 10 and ended after \"short\" gave {} \
                 (complete: {}); the server must end it abnormally",
                shown(&short.body.data),
                short.body.complete
            ),
        ));
    }
    if unstarted.head.status != 500 {
        return Err(fail(
            "RGI-FAIL-7",
            format!(
                "a body that yielded data before starting the response got status {}, expected \
                 500",
                unstarted.head.status
            ),
        ));
    }
    Ok(())
}
