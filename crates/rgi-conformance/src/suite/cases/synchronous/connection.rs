//! Connections that carry several requests (`RGI-CONN`): unread bodies,
//! persistence, pipelining, isolation and shutdown.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rgi::{Body, BoxError, Environ, StartResponse};

use super::super::kit::{
    Counter, Esc, Event, Events, OrFail, Seen, Served, WAIT, echo, ensure, exchange, expect_status,
    head, head_with_length, response_or_close, with_field,
};
use crate::suite::wire::{Arrival, Request};
use crate::suite::{Failure, ServerUnderTest};

/// A request hidden in a body: if it is ever parsed as a request, the
/// application sees the target `/smuggled`.
const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

/// Fails `RGI-CONN-1` if the application saw the smuggled request among
/// what arrived on `seen`; returns the targets seen.
fn no_smuggling(seen: &mpsc::Receiver<Seen>) -> Result<Vec<String>, Failure> {
    let mut targets = Vec::new();
    while let Ok(snapshot) = seen.recv_timeout(Duration::from_millis(100)) {
        targets.push(snapshot.uri);
    }
    ensure(
        !targets.iter().any(|target| target == "/smuggled"),
        "RGI-CONN-1",
        || {
            format!(
                "an unread request body was parsed as a request; the application saw {targets:?}"
            )
        },
    )?;
    Ok(targets)
}

/// Sends `first` (whose body the application does not read), reads its
/// response, then sends `GET /next` on the same connection, or on a new
/// one if the server closed it; checks both answers.
fn unread_then_next(served: &Served, first: &Request, clause: &'static str) -> Result<(), Failure> {
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, first, "POST", clause)?;
    ensure(response.body.data == b"POST /ignore", clause, || {
        format!(
            "the first request was answered with {}",
            Esc(&response.body.data)
        )
    })?;
    let next = Request::get("/next");
    let answer = if conn.send(&next.to_bytes()).is_ok() {
        response_or_close(&mut conn, "GET", clause, "reading the next response")?
    } else {
        None
    };
    let answer = match answer {
        Some(answer) => answer,
        None => {
            let mut fresh = served.connect()?;
            exchange(&mut fresh, &next, "GET", clause)?
        }
    };
    ensure(answer.body.data == b"GET /next", clause, || {
        format!(
            "the request after an unread body was answered with {} (status {})",
            Esc(&answer.body.data),
            answer.head.status
        )
    })
}

sync_case!(
    rgi_conn_1_unread_body_never_parsed_as_a_request
    ["RGI-CONN-1", "RGI-INPUT-14"]
    "a Content-Length body the application never read is discarded or the connection closed; never parsed as a request"
    => unread_length_body
);

fn unread_length_body(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CONN-1";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    unread_then_next(
        &served,
        &Request::new("POST", "/ignore").body(SMUGGLED),
        CLAUSE,
    )?;
    no_smuggling(&seen)?;
    served.stop()
}

sync_case!(
    rgi_conn_1_unread_chunked_body_never_parsed_as_a_request
    ["RGI-CONN-1", "RGI-INPUT-14"]
    "a chunked body the application never read is discarded or the connection closed; never parsed as a request"
    => unread_chunked_body
);

fn unread_chunked_body(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CONN-1";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let first = Request::new("POST", "/ignore").chunked(&[&SMUGGLED[..20], &SMUGGLED[20..]]);
    unread_then_next(&served, &first, CLAUSE)?;
    no_smuggling(&seen)?;
    served.stop()
}

sync_case!(
    rgi_conn_2_keep_alive_serves_two_requests
    ["RGI-CONN-2"]
    "an HTTP/1.1 connection not marked for closing serves a second request after a complete response"
    => keep_alive
);

fn keep_alive(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CONN-2";
    let (tx, _seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let mut conn = served.connect()?;
    let first = exchange(&mut conn, &Request::get("/one"), "GET", CLAUSE)?;
    expect_status(&first, 200, CLAUSE, "the first request")?;
    if first.head.lists("connection", "close") {
        // The server announced the close: allowed, and then it must close.
        let arrival = conn
            .wait_for_data(WAIT)
            .or_fail(CLAUSE, "waiting for the close")?;
        ensure(arrival == Arrival::Closed, CLAUSE, || {
            format!("the server said connection: close but did not close: {arrival:?}")
        })?;
        return served.stop();
    }
    conn.send(&Request::get("/two").to_bytes()).map_err(|err| {
        Failure::new(
            CLAUSE,
            format!("the connection was closed without connection: close: {err}"),
        )
    })?;
    let second = conn.read_response("GET").map_err(|err| {
        Failure::new(
            CLAUSE,
            format!("the second request on a kept-alive connection was not answered: {err}"),
        )
    })?;
    ensure(second.body.data == b"GET /two", CLAUSE, || {
        format!(
            "the second request was answered with {}",
            Esc(&second.body.data)
        )
    })?;
    served.stop()
}

sync_case!(
    rgi_conn_2_connection_close_honoured
    ["RGI-CONN-2"]
    "the connection closes after the response to an HTTP/1.1 request with connection: close and to an HTTP/1.0 request without keep-alive"
    => close_honoured
);

fn close_honoured(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CONN-2";
    let (tx, _seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    for (request, what) in [
        (
            Request::get("/close").header("connection", "close"),
            "HTTP/1.1 with connection: close",
        ),
        (Request::get("/old").http10(), "HTTP/1.0 without keep-alive"),
    ] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &request, "GET", CLAUSE)?;
        expect_status(&response, 200, CLAUSE, what)?;
        let arrival = conn
            .wait_for_data(WAIT)
            .or_fail(CLAUSE, "waiting for the close")?;
        ensure(arrival == Arrival::Closed, CLAUSE, || {
            format!("after the response to {what} the connection must close; instead: {arrival:?}")
        })?;
    }
    served.stop()
}

/// A body of one chunk, yielded after a pause, that counts the requests in
/// flight.
struct InFlight {
    chunk: Option<Bytes>,
    in_flight: Counter,
}

impl Body for InFlight {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        thread::sleep(Duration::from_millis(30));
        self.chunk.take().map(Ok)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.in_flight.drop_one();
    }
}

sync_case!(
    rgi_conn_3_pipelined_requests_in_order_one_at_a_time
    ["RGI-CONN-3", "RGI-CONN-1"]
    "pipelined requests, one with an unread body, are answered in order, one at a time, and the unread body is never a request"
    => pipelined
);

fn pipelined(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CONN-3";
    let in_flight = Counter::default();
    let (overlap_tx, overlaps) = mpsc::channel();
    let (seen_tx, seen) = mpsc::channel();
    let app_in_flight = in_flight.clone();
    let app = rgi::from_fn(move |environ: Environ, start| {
        let before = app_in_flight.bump();
        if before > 0 {
            let _ = overlap_tx.send(environ.uri().to_string());
        }
        let answer = format!("{} {}", environ.method(), environ.uri());
        let _ = seen_tx.send(Seen::of(&environ));
        start.start(head_with_length(200, answer.len() as u64))?;
        Ok(InFlight {
            chunk: Some(Bytes::from(answer)),
            in_flight: app_in_flight.clone(),
        })
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut bytes = Request::get("/p1").to_bytes();
    bytes.extend_from_slice(&Request::new("POST", "/p2").body(SMUGGLED).to_bytes());
    bytes.extend_from_slice(&Request::get("/p3").to_bytes());
    let mut conn = served.connect()?;
    conn.send(&bytes)
        .or_fail(CLAUSE, "sending three pipelined requests")?;
    let expected: [&[u8]; 3] = [b"GET /p1", b"POST /p2", b"GET /p3"];
    for (index, answer) in expected.iter().enumerate() {
        let method = if index == 1 { "POST" } else { "GET" };
        let Some(response) =
            response_or_close(&mut conn, method, CLAUSE, "reading the pipelined responses")?
        else {
            // Closing after the unread body is allowed (RGI-CONN-1), but
            // not before it.
            ensure(index == 2, CLAUSE, || {
                format!(
                    "the connection closed before the response to pipelined request {}",
                    index + 1
                )
            })?;
            break;
        };
        ensure(response.body.data == *answer, CLAUSE, || {
            format!(
                "pipelined response {} is {}, expected {}",
                index + 1,
                Esc(&response.body.data),
                Esc(answer)
            )
        })?;
    }
    if let Ok(target) = overlaps.try_recv() {
        return Err(Failure::new(
            CLAUSE,
            format!(
                "the application was called for {target} while an earlier request on the connection was still in flight"
            ),
        ));
    }
    no_smuggling(&seen)?;
    served.stop()
}

sync_case!(
    rgi_conn_4_requests_are_isolated
    ["RGI-CONN-4"]
    "nothing of one request (fields, body bytes, response fields) reaches the next on the same connection"
    => isolated
);

fn isolated(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CONN-4";
    let (tx, seen) = mpsc::channel();
    let app = rgi::from_fn(move |mut environ: Environ, start| {
        let mut snapshot = Seen::of(&environ);
        let first = environ.raw_path() == "/first";
        let mut partial = [0_u8; 4];
        let read = if first {
            std::io::Read::read(environ.input_mut(), &mut partial).unwrap_or(0)
        } else {
            0
        };
        if !first {
            snapshot.body = Some(super::super::kit::read_body(&mut environ, 1 << 20));
        }
        let _ = tx.send(snapshot);
        let head = if first {
            with_field(head_with_length(200, read as u64), "x-first-response", "1")
        } else {
            head(200)
        };
        start.start(head)?;
        Ok(Bytes::copy_from_slice(&partial[..read]))
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let first = Request::new("POST", "/first")
        .header("x-first-request", "1")
        .body("AAAAAAAAAAAAAAAA");
    exchange(&mut conn, &first, "POST", CLAUSE)?;
    recv_first(&seen)?;
    let second = Request::get("/second");
    let response = if conn.send(&second.to_bytes()).is_ok() {
        response_or_close(&mut conn, "GET", CLAUSE, "reading the second response")?
    } else {
        None
    };
    let response = match response {
        Some(response) => response,
        None => exchange(&mut served.connect()?, &second, "GET", CLAUSE)?,
    };
    ensure(
        response.head.field("x-first-response").is_none(),
        CLAUSE,
        || {
            format!(
                "the second response carries the first response's field: {}",
                Esc(&response.head.raw)
            )
        },
    )?;
    let snapshot = seen
        .recv_timeout(WAIT)
        .map_err(|_| Failure::new(CLAUSE, "the second request was not called"))?;
    ensure(
        snapshot.values("x-first-request").is_empty(),
        CLAUSE,
        || "the second request's headers() has the first request's field".to_owned(),
    )?;
    ensure(
        snapshot.content_length == Some(0)
            && matches!(&snapshot.body, Some(Ok(body)) if body.is_empty()),
        CLAUSE,
        || {
            format!(
                "the second request (no body) has content_length() {:?} and reads {:?}",
                snapshot.content_length, snapshot.body
            )
        },
    )?;
    served.stop()
}

/// Waits for the first request's snapshot.
fn recv_first(seen: &mpsc::Receiver<Seen>) -> Result<Seen, Failure> {
    seen.recv_timeout(WAIT)
        .map_err(|_| Failure::new("RGI-CONN-4", "the first request was not called"))
}

/// A body that yields a chunk every 50 ms until dropped (or for ten
/// seconds), reporting its drop.
struct Trickle {
    events: mpsc::Sender<Event>,
    until: Instant,
}

impl Body for Trickle {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if Instant::now() > self.until {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
        Some(Ok(Bytes::from_static(b"tick\n")))
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Dropped);
    }
}

sync_case!(
    rgi_conn_5_shutdown_ends_in_flight_responses
    ["RGI-CONN-5", "RGI-FAIL-5"]
    "stopping the server during an endless response drops the body and ends the response abnormally, in bounded time"
    => shutdown
);

fn shutdown(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CONN-5";
    let (tx, mut events) = Events::channel();
    let app = rgi::from_fn(move |_environ: Environ, start| {
        start.start(head(200))?;
        Ok(Trickle {
            events: tx.clone(),
            until: Instant::now() + Duration::from_secs(10),
        })
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(&Request::get("/endless").to_bytes())
        .or_fail(CLAUSE, "sending the request")?;
    let (_, head) = conn.read_final_head().or_fail(CLAUSE, "reading the head")?;
    let framing = head.framing("GET").or_fail(CLAUSE, "reading the head")?;
    let mut reader = conn
        .body_reader(&head, "GET")
        .or_fail(CLAUSE, "reading the body")?;
    reader
        .read_at_least(5)
        .or_fail(CLAUSE, "reading the first chunk")?;
    let stopped = served.stop_in_background();
    let limit = WAIT + Duration::from_secs(1);
    let outcome = stopped.recv_timeout(limit).map_err(|_| {
        Failure::new(
            CLAUSE,
            format!("stop() did not return within {limit:?} during an endless response"),
        )
    })?;
    outcome.map_err(|err| Failure::new(CLAUSE, format!("stop() failed: {err}")))?;
    events.expect_dropped(CLAUSE, "after the server stopped")?;
    reader.extend_deadline(WAIT);
    while reader
        .next_data()
        .or_fail(
            CLAUSE,
            "reading the rest after the stop (the connection should close)",
        )?
        .is_some()
    {}
    ensure(
        !reader.is_complete() || framing == crate::suite::wire::Framing::Close,
        "RGI-FAIL-5",
        || format!("the abandoned response ended as if complete ({framing:?} framing)"),
    )
}
