//! The response body as the client receives it: chunks, pacing,
//! backpressure and dropping (`RGI-BODY`), and framing (`RGI-CL`).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use rgi::{Body, BoxError, Environ, ResponseHead, StartResponse};

use super::super::kit::{
    Act, Counter, Esc, Event, Events, GATE_LIMIT, Gate, OrFail, Script, Served, WAIT, data, ensure,
    exchange, expect_body, expect_nothing_more, expect_status, head, head_with_length, recv,
    scripted, with_field,
};
use crate::suite::wire::{Framing, Request};
use crate::suite::{Failure, ServerUnderTest};

sync_case!(
    rgi_body_3_chunks_are_opaque_bytes
    ["RGI-BODY-3"]
    "every byte value, CR and LF, and text that looks like HTTP go out unchanged, with and without Content-Length"
    => opaque_bytes
);

fn opaque_bytes(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-BODY-3";
    let all: Vec<u8> = (0..=255).collect();
    let chunks: Vec<Bytes> = vec![
        Bytes::from(all),
        data(b"HTTP/1.1 200 OK\r\nx-smuggled: 1\r\n\r\n"),
        data(b"\n\r\n\r0\r\n\r\n"),
    ];
    let expected: Vec<u8> = chunks.concat();
    let app_chunks = chunks.clone();
    let app = rgi::from_fn(move |environ: Environ, start| {
        let total: usize = app_chunks.iter().map(Bytes::len).sum();
        start.start(if environ.raw_path() == "/length" {
            head_with_length(200, total as u64)
        } else {
            head(200)
        })?;
        Ok(rgi::from_iter(app_chunks.clone()))
    });
    let served = Served::start(server, app, CLAUSE)?;
    for target in ["/length", "/streamed"] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(target), "GET", CLAUSE)?;
        expect_body(&response, &expected, CLAUSE, target)?;
        expect_nothing_more(&mut conn, CLAUSE, target)?;
    }
    served.stop()
}

/// A body that yields `count` numbered chunks, waiting for the case's ack
/// before producing each chunk after the first.
struct Acked {
    next: usize,
    count: usize,
    ack: Gate,
    late: mpsc::Sender<usize>,
}

impl Body for Acked {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if self.next == self.count {
            return None;
        }
        if self.next > 0 && !self.ack.wait(GATE_LIMIT) {
            let _ = self.late.send(self.next);
        }
        self.next += 1;
        Some(Ok(Bytes::from(format!("chunk-{}\n", self.next - 1))))
    }
}

sync_case!(
    rgi_body_4_each_chunk_sent_before_the_next_pull
    ["RGI-BODY-4"]
    "each chunk reaches the client before the server asks for the next one"
    => chunk_before_next_pull
);

fn chunk_before_next_pull(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-BODY-4";
    const COUNT: usize = 5;
    let ack = Gate::new();
    let (late_tx, _late) = mpsc::channel();
    let app_ack = ack.clone();
    let app = rgi::from_fn(move |_environ: Environ, start| {
        start.start(head(200))?;
        Ok(Acked {
            next: 0,
            count: COUNT,
            ack: app_ack.clone(),
            late: late_tx.clone(),
        })
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(&Request::get("/stream").to_bytes())
        .or_fail(CLAUSE, "sending the request")?;
    let (_, head) = conn
        .read_final_head()
        .or_fail(CLAUSE, "waiting for the head and the first chunk")?;
    let mut reader = conn
        .body_reader(&head, "GET")
        .or_fail(CLAUSE, "reading the body")?;
    let mut received = Vec::new();
    for index in 0..COUNT {
        let expected: Vec<u8> = (0..=index)
            .flat_map(|n| format!("chunk-{n}\n").into_bytes())
            .collect();
        reader.extend_deadline(WAIT);
        let piece = reader.read_at_least(expected.len() as u64).map_err(|err| {
            Failure::new(
                CLAUSE,
                format!("chunk {index} did not reach the client before the next pull: {err}"),
            )
        })?;
        received.extend_from_slice(&piece);
        ensure(received == expected, CLAUSE, || {
            format!(
                "after chunk {index} the client has {}, expected {}",
                Esc(&received),
                Esc(&expected)
            )
        })?;
        ack.open();
    }
    reader.extend_deadline(WAIT);
    ensure(
        reader
            .next_data()
            .or_fail(CLAUSE, "reading the end")?
            .is_none(),
        CLAUSE,
        || "more data than the body yielded".to_owned(),
    )?;
    ensure(reader.is_complete(), CLAUSE, || {
        "the streamed body did not end completely".to_owned()
    })?;
    served.stop()
}

/// A body of `total` bytes in 64 KiB chunks, each filled with its index,
/// counting what it produced.
struct Flood {
    produced: Counter,
    total: usize,
    sent: usize,
}

const FLOOD_CHUNK: usize = 64 * 1024;

impl Body for Flood {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if self.sent >= self.total {
            return None;
        }
        let index = self.sent / FLOOD_CHUNK;
        self.sent += FLOOD_CHUNK;
        self.produced.add(FLOOD_CHUNK);
        Some(Ok(Bytes::from(vec![flood_byte(index); FLOOD_CHUNK])))
    }
}

/// The byte that fills chunk `index`.
fn flood_byte(index: usize) -> u8 {
    u8::try_from(index % 251).unwrap_or(0)
}

sync_case!(
    rgi_body_4_slow_reader_bounds_buffered_output
    ["RGI-BODY-4", "RGI-BODY-5", "RGI-BODY-3"]
    "while the client does not read, the server stops pulling after a bounded amount; then every byte arrives in order"
    => slow_reader
);

fn slow_reader(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-BODY-4";
    const TOTAL: usize = 64 * 1024 * 1024;
    const BOUND: usize = 16 * 1024 * 1024;
    let produced = Counter::default();
    let app_produced = produced.clone();
    let app = rgi::from_fn(move |_environ: Environ, start| {
        start.start(head_with_length(200, TOTAL as u64))?;
        Ok(Flood {
            produced: app_produced.clone(),
            total: TOTAL,
            sent: 0,
        })
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(&Request::get("/flood").to_bytes())
        .or_fail(CLAUSE, "sending the request")?;
    // Not reading: wait until the server stops pulling or passes the bound.
    let started = Instant::now();
    let mut last = (0, Instant::now());
    while started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        let now = produced.get();
        if now > BOUND {
            break;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if now > 0 && last.1.elapsed() > Duration::from_millis(500) {
            break;
        }
    }
    let held = produced.get();
    ensure(held <= BOUND, CLAUSE, || {
        format!(
            "with a client that does not read, the server pulled {held} bytes (bound {BOUND}): it buffers without limit"
        )
    })?;
    ensure(held > 0, CLAUSE, || "the body was never pulled".to_owned())?;
    conn.set_timeout(Duration::from_secs(10));
    let (_, head) = conn.read_final_head().or_fail(CLAUSE, "reading the head")?;
    let mut reader = conn
        .body_reader(&head, "GET")
        .or_fail(CLAUSE, "reading the body")?;
    let mut offset = 0_usize;
    while let Some(piece) = reader.next_data().or_fail(CLAUSE, "reading the flood")? {
        if let Some(at) = piece
            .iter()
            .enumerate()
            .position(|(index, byte)| *byte != flood_byte((offset + index) / FLOOD_CHUNK))
        {
            return Err(Failure::new(
                "RGI-BODY-3",
                format!("byte {} of the flood is wrong", offset + at),
            ));
        }
        offset += piece.len();
    }
    ensure(offset == TOTAL && reader.is_complete(), CLAUSE, || {
        format!("the client received {offset} of {TOTAL} bytes")
    })?;
    served.stop()
}

sync_case!(
    rgi_body_6_empty_chunks_send_nothing
    ["RGI-BODY-6", "RGI-CL-9"]
    "empty chunks send nothing (no zero-size chunk mid-body) and pulling continues; a body of only empty chunks is an empty response"
    => empty_chunks
);

fn empty_chunks(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-BODY-6";
    let (tx, _events) = Events::channel();
    let app = scripted(tx, |path| {
        let body = if path == "/mixed" {
            vec![
                Act::Yield(Bytes::new()),
                Act::Yield(data(b"a")),
                Act::Yield(Bytes::new()),
                Act::Yield(Bytes::new()),
                Act::Yield(data(b"b")),
                Act::Yield(Bytes::new()),
            ]
        } else {
            vec![Act::Yield(Bytes::new()), Act::Yield(Bytes::new())]
        };
        (vec![Act::Start(head(200))], body)
    });
    let served = Served::start(server, app, CLAUSE)?;
    for (target, expected) in [("/mixed", &b"ab"[..]), ("/empty", &b""[..])] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(target), "GET", CLAUSE)?;
        expect_status(&response, 200, CLAUSE, target)?;
        expect_body(&response, expected, CLAUSE, target)?;
        expect_nothing_more(&mut conn, CLAUSE, target)?;
    }
    served.stop()
}

/// A body of one chunk that counts its drops.
struct Counted {
    chunk: Option<Bytes>,
    drops: Counter,
}

impl Body for Counted {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.chunk.take().map(Ok)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.bump();
    }
}

sync_case!(
    rgi_body_11_dropped_once_before_the_next_request
    ["RGI-BODY-11", "RGI-BODY-12", "RGI-BODY-2"]
    "the body is dropped exactly once, right after the response, before the next request on the connection is called, and never pulled after its end"
    => dropped_once
);

fn dropped_once(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-BODY-11";
    let drops = Counter::default();
    let (seen_tx, seen) = mpsc::channel();
    let (tx, mut events) = Events::channel();
    let app_drops = drops.clone();
    let app = rgi::from_fn(
        move |environ: Environ, start| -> Result<Box<dyn Body>, BoxError> {
            start.start(head_with_length(200, 3))?;
            match environ.raw_path() {
                "/script" => Ok(Box::new(Script::new(
                    vec![Act::Yield(data(b"one"))],
                    tx.clone(),
                ))),
                "/second" => {
                    let _ = seen_tx.send(app_drops.get());
                    Ok(Box::new(data(b"two")))
                }
                _ => Ok(Box::new(Counted {
                    chunk: Some(data(b"one")),
                    drops: app_drops.clone(),
                })),
            }
        },
    );
    let served = Served::start(server, app, CLAUSE)?;
    // Prompt: dropped after the response without waiting for anything else.
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/script"), "GET", CLAUSE)?;
    expect_body(&response, b"one", CLAUSE, "the first response")?;
    events.expect_dropped(
        "RGI-BODY-12",
        "after a complete response, with the connection idle",
    )?;
    events.expect_no_pull_after_end()?;
    // Before the next request: pipelined, the second call sees the drop.
    let mut conn = served.connect()?;
    let mut bytes = Request::get("/counted").to_bytes();
    bytes.extend_from_slice(&Request::get("/second").to_bytes());
    conn.send(&bytes)
        .or_fail(CLAUSE, "sending two pipelined requests")?;
    for _ in 0..2 {
        conn.read_response("GET")
            .or_fail(CLAUSE, "reading the pipelined responses")?;
    }
    let drops_seen = recv(&seen, WAIT, CLAUSE, "the second request was not called")?;
    ensure(drops_seen == 1, CLAUSE, || {
        format!(
            "when the next request on the connection was called, the previous body had been dropped {drops_seen} times, expected once"
        )
    })?;
    ensure(drops.get() == 1, CLAUSE, || {
        format!("the body was dropped {} times", drops.get())
    })?;
    served.stop()
}

sync_case!(
    rgi_body_15_head_request_sends_no_body
    ["RGI-BODY-15", "RGI-BODY-11"]
    "a HEAD response keeps the application's content-length unchanged and carries no body bytes; the body is dropped"
    => head_request
);

fn head_request(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-BODY-15";
    let (tx, mut events) = Events::channel();
    let app = scripted(tx, |path| {
        let start = if path == "/length" {
            head_with_length(200, 11)
        } else {
            head(200)
        };
        (
            vec![Act::Start(with_field(start, "x-probe", "head"))],
            vec![Act::Yield(data(b"hello ")), Act::Yield(data(b"world"))],
        )
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::new("HEAD", "/length"), "HEAD", CLAUSE)?;
    expect_status(&response, 200, CLAUSE, "HEAD")?;
    ensure(
        response.head.field("content-length") == Some(b"11")
            && response.head.field("x-probe").is_some(),
        CLAUSE,
        || {
            format!(
                "the HEAD response must carry the application's head (content-length 11), got {}",
                Esc(&response.head.raw)
            )
        },
    )?;
    expect_nothing_more(&mut conn, CLAUSE, "after a HEAD response")?;
    events.expect_dropped("RGI-BODY-11", "after a HEAD response")?;
    let mut conn = served.connect()?;
    let response = exchange(
        &mut conn,
        &Request::new("HEAD", "/streamed"),
        "HEAD",
        CLAUSE,
    )?;
    expect_status(&response, 200, CLAUSE, "HEAD without a length")?;
    expect_nothing_more(&mut conn, CLAUSE, "after a HEAD response without a length")?;
    if !conn.is_eof() {
        let response = exchange(&mut conn, &Request::get("/length"), "GET", CLAUSE)?;
        expect_body(
            &response,
            b"hello world",
            CLAUSE,
            "a GET after HEAD on the same connection",
        )?;
    }
    served.stop()
}

sync_case!(
    rgi_body_18_no_content_for_204_and_304
    ["RGI-BODY-18", "RGI-CL-9", "RGI-BODY-11"]
    "204 and 304 responses carry no body bytes and no Transfer-Encoding (204 no Content-Length) even when the body yields data"
    => no_content
);

fn no_content(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-BODY-18";
    let (tx, mut events) = Events::channel();
    let app = scripted(tx, |path| {
        let status = if path == "/204" { 204 } else { 304 };
        let start =
            ResponseHead::new(StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT))
                .with_header(header::ETAG, HeaderValue::from_static("\"v1\""));
        (vec![Act::Start(start)], vec![Act::Yield(data(b"oops"))])
    });
    let served = Served::start(server, app, CLAUSE)?;
    for status in [204_u16, 304] {
        let target = format!("/{status}");
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(&target), "GET", CLAUSE)?;
        expect_status(&response, status, CLAUSE, &target)?;
        ensure(
            response.head.field("transfer-encoding").is_none(),
            "RGI-CL-9",
            || {
                format!(
                    "a {status} response carries Transfer-Encoding: {}",
                    Esc(&response.head.raw)
                )
            },
        )?;
        if status == 204 {
            ensure(
                response.head.field("content-length").is_none(),
                "RGI-CL-9",
                || {
                    format!(
                        "a 204 response carries Content-Length: {}",
                        Esc(&response.head.raw)
                    )
                },
            )?;
        }
        expect_nothing_more(&mut conn, CLAUSE, &format!("after a {status} response"))?;
        events.expect_dropped("RGI-BODY-11", &format!("after a {status} response"))?;
        events.clear();
    }
    served.stop()
}

sync_case!(
    rgi_cl_1_never_more_than_declared
    ["RGI-CL-1", "RGI-CL-2", "RGI-BODY-2"]
    "a body longer than its Content-Length is cut at the declared length, then pulling stops and the body is dropped"
    => never_more
);

fn never_more(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CL-1";
    let (tx, mut events) = Events::channel();
    let app = scripted(tx, |path| {
        let body = if path == "/one" {
            vec![Act::Yield(data(b"hello world"))]
        } else {
            vec![
                Act::Yield(data(b"hel")),
                Act::Yield(data(b"lo!!")),
                Act::Yield(data(b"more")),
            ]
        };
        (vec![Act::Start(head_with_length(200, 5))], body)
    });
    let served = Served::start(server, app, CLAUSE)?;
    for target in ["/one", "/several"] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(target), "GET", CLAUSE)?;
        expect_body(&response, b"hello", CLAUSE, target)?;
        expect_nothing_more(
            &mut conn,
            CLAUSE,
            &format!("{target}: after the declared 5 bytes"),
        )?;
        events.expect_dropped("RGI-CL-2", "after the excess")?;
        ensure(
            !events.drain().contains(&Event::PulledAfterEnd),
            "RGI-BODY-2",
            || "pulled after the end".to_owned(),
        )?;
        if !conn.is_eof() {
            let next = exchange(&mut conn, &Request::get("/one"), "GET", CLAUSE)?;
            expect_body(
                &next,
                b"hello",
                "RGI-CL-2",
                "the next request on a kept connection",
            )?;
            events.expect_dropped("RGI-CL-2", "after the next excess")?;
        }
        events.clear();
    }
    served.stop()
}

sync_case!(
    rgi_cl_3_fewer_than_declared_closes
    ["RGI-CL-3"]
    "a body shorter than its Content-Length is not padded: the connection closes after the bytes sent"
    => fewer_than_declared
);

fn fewer_than_declared(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CL-3";
    let (tx, _events) = Events::channel();
    let app = scripted(tx, |_| {
        (
            vec![Act::Start(head_with_length(200, 100))],
            vec![Act::Yield(data(b"only ten b"))],
        )
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response =
        exchange(&mut conn, &Request::get("/short"), "GET", CLAUSE).map_err(|failure| {
            Failure::new(
                CLAUSE,
                format!(
                    "the server neither sent the declared 100 bytes nor closed: {}",
                    failure.reason()
                ),
            )
        })?;
    ensure(
        response.body.data == b"only ten b" && !response.body.complete,
        CLAUSE,
        || {
            format!(
                "expected the 10 bytes sent and then a close; got {} (complete: {})",
                Esc(&response.body.data),
                response.body.complete
            )
        },
    )?;
    served.stop()
}

/// A body of two chunks without a size hint; `/length` declares its
/// length.
fn two_chunks(events: mpsc::Sender<Event>) -> impl rgi::Application {
    scripted(events, |path| {
        let start = if path == "/length" {
            head_with_length(200, 6)
        } else {
            head(200)
        };
        (
            vec![Act::Start(start)],
            vec![Act::Yield(data(b"abc")), Act::Yield(data(b"def"))],
        )
    })
}

sync_case!(
    rgi_cl_9_correct_framing
    ["RGI-CL-9", "RGI-CL-7", "RGI-HEAD-9"]
    "a response with Content-Length carries no Transfer-Encoding; one without is chunked with a last-chunk, or close-delimited with connection: close"
    => correct_framing
);

fn correct_framing(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CL-9";
    let (tx, _events) = Events::channel();
    let served = Served::start(server, two_chunks(tx), CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(&Request::get("/length").to_bytes())
        .or_fail(CLAUSE, "sending the request")?;
    let (_, head) = conn.read_final_head().or_fail(CLAUSE, "reading the head")?;
    ensure(
        head.field("transfer-encoding").is_none() && head.field("content-length") == Some(b"6"),
        CLAUSE,
        || {
            format!(
                "a response with a declared length must carry it and no Transfer-Encoding: {}",
                Esc(&head.raw)
            )
        },
    )?;
    let body = conn
        .body_reader(&head, "GET")
        .or_fail(CLAUSE, "reading the body")?
        .read_all(1 << 20)
        .or_fail(CLAUSE, "reading the body")?;
    ensure(body.data == b"abcdef" && body.complete, CLAUSE, || {
        format!("the body with a declared length is {}", Esc(&body.data))
    })?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/stream"), "GET", CLAUSE)?;
    expect_body(
        &response,
        b"abcdef",
        CLAUSE,
        "a response without Content-Length",
    )?;
    match response.body.framing {
        Framing::Chunked => {
            ensure(
                response.head.lists("transfer-encoding", "chunked"),
                CLAUSE,
                || "chunked framing without transfer-encoding: chunked".to_owned(),
            )?;
            expect_nothing_more(&mut conn, CLAUSE, "after the last-chunk")?;
        }
        Framing::Close => ensure(
            response.head.lists("connection", "close"),
            "RGI-HEAD-9",
            || {
                format!(
                    "a close-delimited HTTP/1.1 response must say connection: close; head {}",
                    Esc(&response.head.raw)
                )
            },
        )?,
        other => {
            return Err(Failure::new(
                CLAUSE,
                format!("a body without a declared or hinted length went out as {other:?}"),
            ));
        }
    }
    served.stop()
}

sync_case!(
    rgi_cl_8_close_delimited_on_http10
    ["RGI-CL-8"]
    "without Content-Length a response to HTTP/1.0 is delimited by closing the connection, never chunked"
    => close_delimited_http10
);

fn close_delimited_http10(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CL-8";
    let (tx, _events) = Events::channel();
    let served = Served::start(server, two_chunks(tx), CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/stream").http10(), "GET", CLAUSE)?;
    ensure(response.body.framing == Framing::Close, CLAUSE, || {
        format!(
            "a response to HTTP/1.0 without a length went out as {:?}: {}",
            response.body.framing,
            Esc(&response.head.raw)
        )
    })?;
    expect_body(&response, b"abcdef", CLAUSE, "a close-delimited response")?;
    served.stop()
}
