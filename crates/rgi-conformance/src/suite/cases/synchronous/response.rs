//! The response as the client receives it: the head and when it goes out
//! (`RGI-START`, `RGI-HEAD`), `write` (`RGI-WRITE`), chunks, pacing and
//! dropping (`RGI-BODY`), framing (`RGI-CL`) and file bodies (`RGI-FILE`).

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use rgi::{Body, BoxError, Environ, FileBody, ResponseHead, StartError, StartResponse};

use super::super::kit::{
    Act, Counter, Esc, Event, Events, GATE_LIMIT, Gate, OrFail, QUIET, Script, Served, WAIT,
    ensure, exchange, expect_status, head, head_with_length, recv, with_field,
};
use super::input::pattern;
use crate::suite::wire::{Arrival, Connection, Framing, Request, Response};
use crate::suite::{Failure, ServerUnderTest};

/// An application that answers every request with a scripted body made by
/// `script` (given the request's raw path), reporting on `events`.
fn scripted<F>(events: mpsc::Sender<Event>, script: F) -> impl rgi::Application
where
    F: Fn(&str) -> (Vec<Act>, Vec<Act>) + Send + Sync + 'static,
{
    rgi::from_fn(move |environ: Environ, start| {
        let (in_call, in_body) = script(environ.raw_path());
        Script::run_in_call(in_call, start, &events)?;
        Ok(Script::new(in_body, events.clone()))
    })
}

/// A chunk of static bytes.
fn data(bytes: &'static [u8]) -> Bytes {
    Bytes::from_static(bytes)
}

/// Fails `clause` unless `response` is a complete body equal to
/// `expected`.
fn expect_body(
    response: &Response,
    expected: &[u8],
    clause: &'static str,
    context: &str,
) -> Result<(), Failure> {
    ensure(response.body.data == expected, clause, || {
        format!(
            "{context}: the body is {}, expected {}",
            Esc(&response.body.data),
            Esc(expected)
        )
    })?;
    ensure(response.body.complete, clause, || {
        format!(
            "{context}: the body did not end completely ({:?} framing)",
            response.body.framing
        )
    })
}

/// Fails `clause` if bytes arrive on `conn` within [`QUIET`].
fn expect_nothing_more(
    conn: &mut Connection,
    clause: &'static str,
    context: &str,
) -> Result<(), Failure> {
    match conn.wait_for_data(QUIET).or_fail(clause, context)? {
        Arrival::Data(bytes) => Err(Failure::new(
            clause,
            format!("{context}: unexpected bytes arrived: {}", Esc(&bytes)),
        )),
        Arrival::Nothing | Arrival::Closed => Ok(()),
    }
}

sync_case!(
    rgi_start_2_status_sent_as_given
    ["RGI-START-2"]
    "the status line carries the application's status, unusual codes included"
    => status_as_given
);

fn status_as_given(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-START-2";
    let app = rgi::from_fn(|environ: Environ, start| {
        let code = environ
            .raw_path()
            .trim_start_matches('/')
            .parse()
            .unwrap_or(500);
        start.start(head_with_length(code, 1))?;
        Ok(data(b"s"))
    });
    let served = Served::start(server, app, CLAUSE)?;
    for code in [200_u16, 299, 404, 418, 599] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(format!("/{code}")), "GET", CLAUSE)?;
        expect_status(&response, code, CLAUSE, "the application's status")?;
    }
    served.stop()
}

sync_case!(
    rgi_head_8_fields_sent_as_given
    ["RGI-HEAD-8"]
    "each response field goes out as its own line, repeated names in order, values byte for byte"
    => fields_as_given
);

fn fields_as_given(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HEAD-8";
    let long = "w".repeat(4000);
    let latin: &[u8] = b"caf\xE9  \t x\xFF";
    let app_long = long.clone();
    let app = rgi::from_fn(move |_environ: Environ, start| {
        let mut head = head_with_length(200, 2);
        let fields = head.headers_mut();
        fields.append(header::SET_COOKIE, HeaderValue::from_static("a=1; Path=/"));
        fields.append(header::SET_COOKIE, HeaderValue::from_static("b=2, c=3"));
        fields.append(
            HeaderName::from_static("x-bytes"),
            HeaderValue::from_bytes(latin).map_err(BoxError::from)?,
        );
        fields.append(
            HeaderName::from_static("x-long"),
            HeaderValue::from_str(&app_long).map_err(BoxError::from)?,
        );
        start.start(head)?;
        Ok(data(b"ok"))
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/fields"), "GET", CLAUSE)?;
    let cookies = response.head.fields_named("set-cookie");
    ensure(
        cookies == [&b"a=1; Path=/"[..], &b"b=2, c=3"[..]],
        CLAUSE,
        || {
            format!(
                "two set-cookie fields must go out as two lines in order; got {:?}",
                cookies
                    .iter()
                    .map(|value| Esc(value).to_string())
                    .collect::<Vec<_>>()
            )
        },
    )?;
    ensure(
        response.head.fields_named("x-bytes") == [latin],
        CLAUSE,
        || {
            format!(
                "x-bytes was {}, went out as {:?}",
                Esc(latin),
                response
                    .head
                    .fields_named("x-bytes")
                    .iter()
                    .map(|value| Esc(value).to_string())
                    .collect::<Vec<_>>()
            )
        },
    )?;
    ensure(
        response.head.fields_named("x-long") == [long.as_bytes()],
        CLAUSE,
        || "a 4000-byte field value did not go out unchanged".to_owned(),
    )?;
    served.stop()
}

sync_case!(
    rgi_head_9_date_added
    ["RGI-HEAD-9"]
    "the server adds a Date field"
    => date_added
);

fn date_added(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HEAD-9";
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(head_with_length(200, 2))?;
        Ok(data(b"ok"))
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/date"), "GET", CLAUSE)?;
    let date = response.head.field_text("date").unwrap_or_default();
    ensure(date.ends_with(" GMT") && date.len() >= 29, CLAUSE, || {
        format!(
            "expected a Date field in IMF-fixdate form, got {:?} (head {})",
            response.head.field_text("date"),
            Esc(&response.head.raw)
        )
    })?;
    served.stop()
}

sync_case!(
    rgi_start_5_response_started_in_the_body
    ["RGI-START-5"]
    "a response started only in the first pull of the body is served normally"
    => started_in_body
);

fn started_in_body(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-START-5";
    let (tx, mut events) = Events::channel();
    let app = scripted(tx, |_| {
        (
            vec![],
            vec![
                Act::Start(with_field(head(201), "x-late", "yes")),
                Act::Yield(data(b"late")),
            ],
        )
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/late"), "GET", CLAUSE)?;
    expect_status(&response, 201, CLAUSE, "a response started in the body")?;
    ensure(
        response.head.field("x-late") == Some(b"yes"),
        CLAUSE,
        || {
            format!(
                "the lazily started head lost its field: {}",
                Esc(&response.head.raw)
            )
        },
    )?;
    expect_body(&response, b"late", CLAUSE, "a response started in the body")?;
    events.expect_dropped("RGI-BODY-11", "after the response")?;
    served.stop()
}

sync_case!(
    rgi_start_6_head_waits_for_first_data
    ["RGI-START-6", "RGI-BODY-6"]
    "a started head is not sent while the body yields only empty chunks; it goes out with the first data"
    => head_waits
);

fn head_waits(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-START-6";
    let gate = Gate::new();
    let (tx, mut events) = Events::channel();
    let app_gate = gate.clone();
    let app = scripted(tx, move |_| {
        (
            vec![Act::Start(head(200))],
            vec![
                Act::Yield(Bytes::new()),
                Act::Reach("after the empty chunk"),
                Act::Wait(app_gate.clone()),
                Act::Yield(data(b"data")),
            ],
        )
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(&Request::get("/lazy").to_bytes())
        .or_fail(CLAUSE, "sending the request")?;
    ensure(
        events.wait_for(&Event::Reached("after the empty chunk"), WAIT),
        CLAUSE,
        || "the server did not pull again after an empty chunk".to_owned(),
    )?;
    let early = conn
        .wait_for_data(QUIET)
        .or_fail(CLAUSE, "listening before the first data");
    gate.open();
    match early? {
        Arrival::Data(bytes) => {
            return Err(Failure::new(
                CLAUSE,
                format!(
                    "bytes went out before the body yielded any data (after start and an empty chunk): {}",
                    Esc(&bytes)
                ),
            ));
        }
        Arrival::Closed => {
            return Err(Failure::new(
                CLAUSE,
                "the server closed the connection while the body waited",
            ));
        }
        Arrival::Nothing => {}
    }
    let response = conn
        .read_response("GET")
        .or_fail(CLAUSE, "reading the response")?;
    expect_status(&response, 200, CLAUSE, "the lazily sent head")?;
    expect_body(&response, b"data", CLAUSE, "the lazily sent head")?;
    served.stop()
}

sync_case!(
    rgi_start_6_replaced_head_is_the_one_sent
    ["RGI-START-6", "RGI-START-10"]
    "a head replaced before any data went out is the head the client receives; the first one never goes out"
    => replaced_head
);

fn replaced_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-START-6";
    let (tx, mut events) = Events::channel();
    let app = scripted(tx, |_| {
        (
            vec![Act::Start(with_field(head(200), "x-first", "1"))],
            vec![
                Act::Replace(with_field(head(503), "x-replaced", "1")),
                Act::Yield(data(b"replaced")),
            ],
        )
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/replace"), "GET", CLAUSE)?;
    ensure(
        events.drain().contains(&Event::Started(Ok(()))),
        CLAUSE,
        || format!("start or replace failed: {:?}", events.drain()),
    )?;
    expect_status(&response, 503, CLAUSE, "the replaced head")?;
    ensure(
        response.head.field("x-replaced").is_some() && response.head.field("x-first").is_none(),
        CLAUSE,
        || {
            format!(
                "the client must see only the replacement head, got {}",
                Esc(&response.head.raw)
            )
        },
    )?;
    expect_body(&response, b"replaced", CLAUSE, "the replaced head")?;
    served.stop()
}

sync_case!(
    rgi_start_8_second_start_is_a_typed_error
    ["RGI-START-8", "RGI-START-1"]
    "a second start returns AlreadyStarted and the first head is the one sent"
    => second_start
);

fn second_start(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-START-8";
    let (tx, results) = mpsc::channel();
    let app = rgi::from_fn(move |_environ: Environ, start| {
        start.start(with_field(head_with_length(200, 5), "x-first", "1"))?;
        let second = start.start(with_field(head_with_length(201, 5), "x-second", "1"));
        let _ = tx.send(match second {
            Err(StartError::AlreadyStarted { current, attempted }) => Ok((current, attempted)),
            other => Err(format!("{other:?}")),
        });
        Ok(data(b"first"))
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/twice"), "GET", CLAUSE)?;
    let second = recv(&results, WAIT, CLAUSE, "the application was not called")?;
    ensure(
        second == Ok((StatusCode::OK, StatusCode::CREATED)),
        CLAUSE,
        || format!("a second start returned {second:?}, expected AlreadyStarted {{ 200, 201 }}"),
    )?;
    expect_status(&response, 200, CLAUSE, "after a rejected second start")?;
    ensure(response.head.field("x-second").is_none(), CLAUSE, || {
        format!(
            "the rejected head's field went out: {}",
            Esc(&response.head.raw)
        )
    })?;
    served.stop()
}

/// A body that sends a chunk, then tries to replace the head and reports
/// what `replace` returned.
struct ReplaceLate {
    step: u8,
    report: mpsc::Sender<Result<(StatusCode, String), String>>,
}

impl Body for ReplaceLate {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.step += 1;
        match self.step {
            1 => Some(Ok(data(b"first"))),
            2 => {
                let outcome = start.replace(head(500), BoxError::from("the late cause"));
                let _ = self.report.send(match outcome {
                    Err(StartError::HeadAlreadySent { status, cause }) => {
                        Ok((status, cause.to_string()))
                    }
                    other => Err(format!("{other:?}")),
                });
                Some(Ok(data(b"-second")))
            }
            _ => None,
        }
    }
}

sync_case!(
    rgi_start_11_replace_after_head_sent_returns_the_cause
    ["RGI-START-11", "RGI-START-1"]
    "replace after the head went out returns HeadAlreadySent with the sent status and the application's own cause"
    => replace_after_head
);

fn replace_after_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-START-11";
    let (tx, results) = mpsc::channel();
    let app = rgi::from_fn(move |_environ: Environ, start| {
        start.start(head(200))?;
        Ok(ReplaceLate {
            step: 0,
            report: tx.clone(),
        })
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/late-replace"), "GET", CLAUSE)?;
    let outcome = recv(
        &results,
        WAIT,
        CLAUSE,
        "the body was not pulled a second time",
    )?;
    ensure(
        outcome == Ok((StatusCode::OK, "the late cause".to_owned())),
        CLAUSE,
        || {
            format!(
                "replace after the head was sent returned {outcome:?}, expected HeadAlreadySent {{ 200, \"the late cause\" }}"
            )
        },
    )?;
    expect_status(&response, 200, CLAUSE, "after a late replace")?;
    expect_body(&response, b"first-second", CLAUSE, "after a late replace")?;
    served.stop()
}

sync_case!(
    rgi_write_2_written_data_reaches_the_client_before_write_returns
    ["RGI-WRITE-2", "RGI-WRITE-1"]
    "write before start is NotStarted and sends nothing; written data reaches the client while the application still runs"
    => write_is_prompt
);

fn write_is_prompt(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-WRITE-2";
    let gate = Gate::new();
    let (tx, mut events) = Events::channel();
    let app_gate = gate.clone();
    let app = scripted(tx, move |_| {
        (
            vec![
                Act::Write(data(b"too-early")),
                Act::Start(head(200)),
                Act::Write(data(b"written-early")),
            ],
            vec![
                Act::Wait(app_gate.clone()),
                Act::Yield(data(b"-then-yielded")),
            ],
        )
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(&Request::get("/write").to_bytes())
        .or_fail(CLAUSE, "sending the request")?;
    let (_, head) = conn.read_final_head().map_err(|err| {
        Failure::new(
            CLAUSE,
            format!("nothing arrived after write() while the application waited: {err}"),
        )
    })?;
    let mut reader = conn
        .body_reader(&head, "GET")
        .or_fail(CLAUSE, "reading the body")?;
    let early = reader.read_at_least(13);
    gate.open();
    let early = early.map_err(|err| {
        Failure::new(
            CLAUSE,
            format!("the written bytes did not arrive while the application waited: {err}"),
        )
    })?;
    ensure(early.starts_with(b"written-early"), CLAUSE, || {
        format!(
            "the first body bytes are {}, expected \"written-early\"",
            Esc(&early)
        )
    })?;
    reader.extend_deadline(WAIT);
    let rest = reader
        .read_all(1 << 20)
        .or_fail(CLAUSE, "reading the rest of the body")?;
    let whole = [early.as_slice(), rest.data.as_slice()].concat();
    ensure(
        whole == b"written-early-then-yielded" && rest.complete,
        CLAUSE,
        || {
            format!(
                "the body is {}, expected \"written-early-then-yielded\"",
                Esc(&whole)
            )
        },
    )?;
    let wrote = events.drain().to_vec();
    ensure(
        matches!(wrote.first(), Some(Event::Wrote(Err(err))) if err == "NotStarted"),
        CLAUSE,
        || {
            format!(
                "write before start must return NotStarted; the probe saw {:?}",
                wrote.first()
            )
        },
    )?;
    served.stop()
}

sync_case!(
    rgi_write_3_written_data_precedes_yielded_data
    ["RGI-WRITE-3", "RGI-WRITE-1"]
    "data written in call comes before every chunk, and data written in a pull before that pull's chunk"
    => write_order
);

fn write_order(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-WRITE-3";
    let (tx, mut events) = Events::channel();
    let app = scripted(tx, |_| {
        (
            vec![Act::Start(head(200)), Act::Write(data(b"a"))],
            vec![
                Act::Write(data(b"b")),
                Act::Yield(data(b"c")),
                Act::Write(data(b"d")),
                Act::Yield(Bytes::new()),
                Act::Write(data(b"e")),
                Act::Yield(data(b"f")),
            ],
        )
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/order"), "GET", CLAUSE)?;
    expect_body(&response, b"abcdef", CLAUSE, "writes mixed with chunks")?;
    let failed: Vec<Event> = events
        .drain()
        .iter()
        .filter(|event| matches!(event, Event::Wrote(Err(_))))
        .cloned()
        .collect();
    ensure(failed.is_empty(), "RGI-WRITE-1", || {
        format!("write failed: {failed:?}")
    })?;
    served.stop()
}

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
    ["RGI-BODY-4", "RGI-BODY-5"]
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
    ["RGI-BODY-18", "RGI-CL-9"]
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
    ["RGI-CL-1", "RGI-CL-2"]
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

/// A body of two chunks without a size hint.
fn two_chunks(events: mpsc::Sender<Event>) -> impl rgi::Application {
    scripted(events, |_| {
        (
            vec![Act::Start(head(200))],
            vec![Act::Yield(data(b"abc")), Act::Yield(data(b"def"))],
        )
    })
}

sync_case!(
    rgi_cl_9_framing_without_length_on_http11
    ["RGI-CL-9", "RGI-CL-7", "RGI-HEAD-9"]
    "without Content-Length an HTTP/1.1 response is chunked with a last-chunk, or close-delimited with connection: close"
    => framing_http11
);

fn framing_http11(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CL-9";
    let (tx, _events) = Events::channel();
    let served = Served::start(server, two_chunks(tx), CLAUSE)?;
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

/// A temporary file that is removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn with(contents: &[u8]) -> Result<Self, Failure> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "rgi-suite-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        File::create(&path)
            .and_then(|mut file| file.write_all(contents))
            .map_err(|err| {
                Failure::new(
                    "RGI-FILE-2",
                    format!("the suite cannot write {}: {err}", path.display()),
                )
            })?;
        Ok(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A file body that reports its drop and forwards everything else.
struct Filed {
    inner: FileBody,
    events: mpsc::Sender<Event>,
}

impl Body for Filed {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.inner.next_chunk(start)
    }

    fn size_hint(&self) -> Option<u64> {
        self.inner.size_hint()
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        Some(&mut self.inner)
    }
}

impl Drop for Filed {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Dropped);
    }
}

/// An application serving `path`: `/whole` the whole file with its length,
/// `/bare` without a declared length, `/range` bytes 1000..6000, `/long`
/// the whole file declaring `declared` bytes.
fn file_app(path: PathBuf, declared: u64, events: mpsc::Sender<Event>) -> impl rgi::Application {
    rgi::from_fn(move |environ: Environ, start| {
        let file = File::open(&path)?;
        let length = file.metadata()?.len();
        let (inner, head) = match environ.raw_path() {
            "/range" => (
                FileBody::range(file, 1000, 5000)?,
                head_with_length(200, 5000),
            ),
            "/bare" => (FileBody::new(file)?, head(200)),
            "/long" => (FileBody::new(file)?, head_with_length(200, declared)),
            _ => (FileBody::new(file)?, head_with_length(200, length)),
        };
        start.start(head)?;
        Ok(Filed {
            inner: inner.with_chunk_size(16 * 1024),
            events: events.clone(),
        })
    })
}

sync_case!(
    rgi_file_2_file_body_served_exactly
    ["RGI-FILE-2", "RGI-FILE-5", "RGI-FILE-7"]
    "a FileBody's bytes arrive exactly, with and without a declared length, and the body is dropped"
    => file_exact
);

fn file_exact(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FILE-2";
    let contents = pattern(300 * 1024 + 17);
    let file = TempFile::with(&contents)?;
    let (tx, mut events) = Events::channel();
    let served = Served::start(server, file_app(file.0.clone(), 0, tx), CLAUSE)?;
    for target in ["/whole", "/bare"] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(target), "GET", CLAUSE)?;
        expect_status(&response, 200, CLAUSE, target)?;
        ensure(
            response.body.data == contents && response.body.complete,
            CLAUSE,
            || {
                format!(
                    "{target}: {} bytes arrived (complete: {}), expected the file's {} bytes{}",
                    response.body.data.len(),
                    response.body.complete,
                    contents.len(),
                    response
                        .body
                        .data
                        .iter()
                        .zip(&contents)
                        .position(|(a, b)| a != b)
                        .map(|at| format!(", differing from byte {at}"))
                        .unwrap_or_default()
                )
            },
        )?;
        events.expect_dropped("RGI-FILE-7", &format!("after serving {target}"))?;
        events.clear();
    }
    served.stop()?;
    drop(file);
    Ok(())
}

sync_case!(
    rgi_file_5_file_range_and_head
    ["RGI-FILE-5"]
    "a FileBody range sends exactly its bytes, and nothing for HEAD"
    => file_range
);

fn file_range(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FILE-5";
    let contents = pattern(64 * 1024);
    let file = TempFile::with(&contents)?;
    let (tx, _events) = Events::channel();
    let served = Served::start(server, file_app(file.0.clone(), 0, tx), CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/range"), "GET", CLAUSE)?;
    ensure(
        response.body.data == contents[1000..6000] && response.body.complete,
        CLAUSE,
        || {
            format!(
                "the range 1000..6000 arrived as {} bytes (complete: {})",
                response.body.data.len(),
                response.body.complete
            )
        },
    )?;
    expect_nothing_more(&mut conn, CLAUSE, "after the range")?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::new("HEAD", "/whole"), "HEAD", CLAUSE)?;
    expect_status(&response, 200, CLAUSE, "HEAD of a file")?;
    expect_nothing_more(&mut conn, CLAUSE, "after a HEAD response for a file")?;
    served.stop()?;
    drop(file);
    Ok(())
}

sync_case!(
    rgi_file_5_short_file_closes_the_connection
    ["RGI-FILE-5", "RGI-CL-3"]
    "a file shorter than the declared Content-Length sends what it has, then the connection closes"
    => short_file
);

fn short_file(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FILE-5";
    let contents = pattern(1000);
    let file = TempFile::with(&contents)?;
    let (tx, _events) = Events::channel();
    let served = Served::start(server, file_app(file.0.clone(), 2000, tx), CLAUSE)?;
    let mut conn = served.connect()?;
    let response =
        exchange(&mut conn, &Request::get("/long"), "GET", CLAUSE).map_err(|failure| {
            Failure::new(
                CLAUSE,
                format!(
                    "a file shorter than its declared length neither completed nor closed: {}",
                    failure.reason()
                ),
            )
        })?;
    ensure(
        response.body.data == contents && !response.body.complete,
        CLAUSE,
        || {
            format!(
                "expected the file's 1000 bytes and a close before the declared 2000; got {} bytes (complete: {})",
                response.body.data.len(),
                response.body.complete
            )
        },
    )?;
    served.stop()?;
    drop(file);
    Ok(())
}
