//! The response head and when it goes out (`RGI-START`, `RGI-HEAD`), and
//! the legacy push path `write` (`RGI-WRITE`).

use std::sync::mpsc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use rgi::{Body, BoxError, Environ, StartError, StartResponse};

use super::super::kit::{
    Act, Esc, Event, Events, Gate, OrFail, QUIET, Served, WAIT, data, ensure, exchange,
    expect_body, expect_status, head, head_with_length, recv, scripted, with_field,
};
use crate::suite::wire::{Arrival, Request};
use crate::suite::{Failure, ServerUnderTest};

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
    ["RGI-START-5", "RGI-BODY-11"]
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
