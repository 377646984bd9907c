//! Application failures, panics and client disconnects (`RGI-FAIL`): what
//! the client sees, and that the server survives them.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rgi::{Body, BoxError, Environ, SendError, StartResponse};

use super::super::kit;
use super::super::kit::{
    Act, Esc, Event, Events, OrFail, SECRET, Script, Served, WAIT, contains, ensure, exchange,
    expect_status, expect_still_serving, head, head_with_length, panic_on_purpose, recv,
    response_or_close, with_field,
};
use crate::suite::wire::{Framing, Request, Response};
use crate::suite::{Failure, Probe, ServerUnderTest};
use crate::validate::Validator;
use crate::{Policy, Reports};

/// An application playing the script that `script` picks for a path; the
/// path `/still-serving` always gets a plain `200`.
fn scripted<F>(events: mpsc::Sender<Event>, script: F) -> impl rgi::Application
where
    F: Fn(&str) -> (Vec<Act>, Vec<Act>) + Send + Sync + 'static,
{
    rgi::from_fn(move |environ: Environ, start| {
        let (in_call, in_body) = if environ.raw_path() == "/still-serving" {
            (
                vec![Act::Start(head_with_length(200, 2))],
                vec![Act::Yield(Bytes::from_static(b"ok"))],
            )
        } else {
            script(environ.raw_path())
        };
        Script::run_in_call(in_call, start, &events)?;
        Ok(Script::new(in_body, events.clone()))
    })
}

/// Fails `RGI-FAIL-4` if the application's error text shows in `response`.
fn expect_no_detail(response: &Response, context: &str) -> Result<(), Failure> {
    for text in [SECRET.as_bytes(), b"on purpose"] {
        ensure(
            !contains(&response.head.raw, text) && !contains(&response.body.data, text),
            "RGI-FAIL-4",
            || {
                format!(
                    "{context}: the response shows the application's error ({}): head {}, body {}",
                    Esc(text),
                    Esc(&response.head.raw),
                    Esc(&response.body.data)
                )
            },
        )?;
    }
    Ok(())
}

/// Requests `target` on a new connection and expects a `500` without the
/// application's details and without the stored head's field `x-stored`.
fn expect_500(served: &Served, target: &str, clause: &'static str) -> Result<(), Failure> {
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get(target), "GET", clause)?;
    expect_status(&response, 500, clause, target)?;
    ensure(response.head.field("x-stored").is_none(), clause, || {
        format!(
            "{target}: the 500 carries a field of the discarded head: {}",
            Esc(&response.head.raw)
        )
    })?;
    expect_no_detail(&response, target)?;
    // The connection may be kept or closed; if kept, it must serve.
    if !conn.is_eof()
        && conn
            .send(&Request::get("/still-serving").to_bytes())
            .is_ok()
    {
        if let Some(next) =
            response_or_close(&mut conn, "GET", clause, "reading the response after a 500")?
        {
            expect_status(
                &next,
                200,
                clause,
                "the request after a 500 on the same connection",
            )?;
        }
    }
    Ok(())
}

sync_case!(
    rgi_app_5_a_failed_call_is_not_retried
    ["RGI-APP-5", "RGI-FAIL-3"]
    "a call that fails before the head is the request's only call: answered 500, never retried with the same response state, the validator around the application silent"
    => failed_call_is_not_retried
);

fn failed_call_is_not_retried(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let calls = Arc::new(AtomicUsize::new(0));
    let reports = Reports::new(Policy::Collect);
    let app = {
        let calls = Arc::clone(&calls);
        rgi::from_fn(move |environ: Environ, start: &mut StartResponse<'_>| {
            kit::cold_then_warm(&calls, &environ, start)
        })
    };
    let probe = Probe::sync(Validator::new(app, reports.clone()));
    kit::failed_call_is_not_retried(server, probe, &calls, &reports, "RGI-APP-5", "RGI-FAIL-3")
}

sync_case!(
    rgi_fail_3_error_before_head_is_500
    ["RGI-FAIL-3", "RGI-FAIL-4"]
    "an error from call, or from the body before the head went out, gets a bare 500 without the stored head"
    => error_before_head
);

fn error_before_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-3";
    let (tx, _events) = Events::channel();
    let app = scripted(tx, |path| {
        let stored = Act::Start(with_field(head(201), "x-stored", "yes"));
        if path == "/call" {
            (vec![stored, Act::Fail], vec![])
        } else {
            (vec![stored], vec![Act::Yield(Bytes::new()), Act::Fail])
        }
    });
    let served = Served::start(server, app, CLAUSE)?;
    expect_500(&served, "/call", CLAUSE)?;
    expect_500(&served, "/pull", CLAUSE)?;
    expect_still_serving(&served, None, CLAUSE)?;
    served.stop()
}

sync_case!(
    rgi_fail_4_no_application_detail_in_error_response
    ["RGI-FAIL-4"]
    "the server's error response shows nothing of the application's error or panic message"
    => no_detail
);

fn no_detail(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-4";
    let app = rgi::from_fn(|environ: Environ, _start| -> Result<Bytes, BoxError> {
        if environ.raw_path() == "/panic" {
            panic_on_purpose();
        }
        Err(super::super::kit::secret_error())
    });
    let served = Served::start(server, app, CLAUSE)?;
    for target in ["/error", "/panic"] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(target), "GET", CLAUSE)?;
        expect_status(&response, 500, CLAUSE, target)?;
        expect_no_detail(&response, target)?;
    }
    served.stop()
}

sync_case!(
    rgi_fail_2_panic_in_call_is_contained
    ["RGI-FAIL-2", "RGI-FAIL-3", "RGI-FAIL-4"]
    "a panic in call, before or after start, gets a 500 and the server goes on serving"
    => panic_in_call
);

fn panic_in_call(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-2";
    let (tx, _events) = Events::channel();
    let app = scripted(tx, |path| {
        if path == "/started" {
            (
                vec![
                    Act::Start(with_field(head(200), "x-stored", "yes")),
                    Act::Panic,
                ],
                vec![],
            )
        } else {
            (vec![Act::Panic], vec![])
        }
    });
    let served = Served::start(server, app, CLAUSE)?;
    expect_500(&served, "/panic", CLAUSE)?;
    expect_500(&served, "/started", CLAUSE)?;
    expect_still_serving(&served, None, CLAUSE)?;
    served.stop()
}

sync_case!(
    rgi_fail_2_panic_in_body_is_contained
    ["RGI-FAIL-2", "RGI-FAIL-5", "RGI-BODY-11", "RGI-FAIL-4", "RGI-FAIL-6"]
    "a panic in the body gets a 500 before the head went out and an abnormal end after; the body is dropped and the server goes on serving"
    => panic_in_body
);

fn panic_in_body(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-2";
    let (tx, mut events) = Events::channel();
    let app = scripted(tx, |path| {
        let body = if path == "/before" {
            vec![Act::Panic]
        } else {
            vec![Act::Yield(Bytes::from_static(b"part")), Act::Panic]
        };
        (
            vec![Act::Start(with_field(head(200), "x-stored", "yes"))],
            body,
        )
    });
    let served = Served::start(server, app, CLAUSE)?;
    expect_500(&served, "/before", CLAUSE)?;
    events.expect_dropped("RGI-BODY-11", "after a panic in the body")?;
    events.clear();
    let mut conn = served.connect()?;
    let response =
        exchange(&mut conn, &Request::get("/after"), "GET", CLAUSE).map_err(|failure| {
            Failure::new(
                "RGI-FAIL-5",
                format!(
                    "after a panic in the body the response neither ended nor closed: {}",
                    failure.reason()
                ),
            )
        })?;
    expect_abnormal_end(&response, b"part", "a panic after the head was sent")?;
    events.expect_dropped("RGI-BODY-11", "after a panic in the body")?;
    expect_still_serving(&served, None, CLAUSE)?;
    served.stop()
}

/// Fails `RGI-FAIL-5`/`RGI-FAIL-6` unless `response` carries exactly
/// `sent` and ends so the client can tell it is incomplete.
fn expect_abnormal_end(response: &Response, sent: &[u8], context: &str) -> Result<(), Failure> {
    ensure(response.head.status == 200, "RGI-FAIL-5", || {
        format!(
            "{context}: the head already sent was 200, the client got {}",
            response.head.status
        )
    })?;
    ensure(response.body.data == sent, "RGI-FAIL-6", || {
        format!(
            "{context}: the client received {}, expected exactly the {} sent before the failure",
            Esc(&response.body.data),
            Esc(sent)
        )
    })?;
    expect_no_detail(response, context)?;
    ensure(
        !response.body.complete || response.body.framing == Framing::Close,
        "RGI-FAIL-5",
        || {
            format!(
                "{context}: the response ended as if complete ({:?} framing)",
                response.body.framing
            )
        },
    )
}

sync_case!(
    rgi_fail_2_panic_in_drop_is_contained
    ["RGI-FAIL-2", "RGI-BODY-11"]
    "a panic in the body's Drop is contained: the server goes on serving"
    => panic_in_drop
);

fn panic_in_drop(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-2";
    let (tx, mut events) = Events::channel();
    let app = rgi::from_fn(move |environ: Environ, start| -> Result<Script, BoxError> {
        start.start(head_with_length(200, 2))?;
        let script = Script::new(vec![Act::Yield(Bytes::from_static(b"ok"))], tx.clone());
        Ok(if environ.raw_path() == "/still-serving" {
            script
        } else {
            script.panicking_on_drop()
        })
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(&Request::get("/drop").to_bytes())
        .or_fail(CLAUSE, "sending the request")?;
    // Whatever the client sees (the response, a 500, a close) is allowed;
    // the server must survive.
    let _ = response_or_close(&mut conn, "GET", CLAUSE, "reading the response");
    events.expect_dropped("RGI-BODY-11", "for a body whose Drop panics")?;
    expect_still_serving(&served, None, CLAUSE)?;
    served.stop()
}

sync_case!(
    rgi_fail_5_failure_after_head_ends_abnormally
    ["RGI-FAIL-5", "RGI-FAIL-6", "RGI-BODY-11", "RGI-FAIL-4"]
    "an error after the head went out ends the response so the client sees it is incomplete: no last-chunk, or short of Content-Length, then a close"
    => failure_after_head
);

fn failure_after_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-5";
    let (tx, mut events) = Events::channel();
    let app = scripted(tx, |path| {
        let start = if path == "/length" {
            head_with_length(200, 100)
        } else {
            head(200)
        };
        (
            vec![Act::Start(start)],
            vec![Act::Yield(Bytes::from_static(b"first")), Act::Fail],
        )
    });
    let served = Served::start(server, app, CLAUSE)?;
    for target in ["/streamed", "/length"] {
        let mut conn = served.connect()?;
        let response =
            exchange(&mut conn, &Request::get(target), "GET", CLAUSE).map_err(|failure| {
                Failure::new(
                    CLAUSE,
                    format!(
                        "{target}: after a failure the response neither ended nor closed: {}",
                        failure.reason()
                    ),
                )
            })?;
        expect_abnormal_end(&response, b"first", target)?;
        events.expect_dropped("RGI-BODY-11", "after a failure in the body")?;
        events.clear();
    }
    expect_still_serving(&served, None, CLAUSE)?;
    served.stop()
}

sync_case!(
    rgi_fail_6_no_error_text_after_the_head
    ["RGI-FAIL-6"]
    "after a failure or panic past the head, not a byte is appended to the body, even close-delimited"
    => no_error_text
);

fn no_error_text(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-6";
    let (tx, _events) = Events::channel();
    let app = scripted(tx, |path| {
        let failure = if path == "/panic" {
            Act::Panic
        } else {
            Act::Fail
        };
        (
            vec![Act::Start(head(200))],
            vec![Act::Yield(Bytes::from_static(b"partial")), failure],
        )
    });
    let served = Served::start(server, app, CLAUSE)?;
    for (request, what) in [
        (Request::get("/fail").http10(), "an error, HTTP/1.0"),
        (Request::get("/panic").http10(), "a panic, HTTP/1.0"),
        (Request::get("/fail"), "an error, HTTP/1.1"),
    ] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &request, "GET", CLAUSE)?;
        ensure(response.body.data == b"partial", CLAUSE, || {
            format!(
                "after {what} past the head the client received {}, expected exactly \"partial\"",
                Esc(&response.body.data)
            )
        })?;
    }
    served.stop()
}

sync_case!(
    rgi_fail_7_output_without_start_is_500
    ["RGI-FAIL-7"]
    "a body that yields data, writes or ends without ever starting the response gets a 500"
    => output_without_start
);

fn output_without_start(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-7";
    let (tx, _events) = Events::channel();
    let app = scripted(tx, |path| match path {
        "/yield" => (
            vec![],
            vec![Act::Yield(Bytes::from_static(b"unstarted-data"))],
        ),
        "/write" => (
            vec![Act::Write(Bytes::from_static(b"unstarted-data"))],
            vec![],
        ),
        _ => (vec![], vec![Act::Yield(Bytes::new())]),
    });
    let served = Served::start(server, app, CLAUSE)?;
    for target in ["/yield", "/write", "/end"] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(target), "GET", CLAUSE)?;
        expect_status(&response, 500, CLAUSE, &format!("{target} without a start"))?;
        ensure(
            !contains(&response.body.data, b"unstarted-data"),
            CLAUSE,
            || format!("{target}: data produced without a start went out"),
        )?;
    }
    served.stop()
}

/// A body that produces 64 KiB chunks until it is dropped (or for ten
/// seconds), reporting its drop.
struct Endless {
    events: mpsc::Sender<Event>,
    until: Instant,
}

impl Body for Endless {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if Instant::now() > self.until {
            return None;
        }
        thread::sleep(Duration::from_millis(1));
        Some(Ok(Bytes::from(vec![b'x'; 64 * 1024])))
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Dropped);
    }
}

sync_case!(
    rgi_fail_8_disconnect_drops_the_body_promptly
    ["RGI-FAIL-8", "RGI-BODY-11", "RGI-BODY-12"]
    "when the client disconnects mid-response, the server stops pulling and drops the body promptly"
    => disconnect_drops
);

fn disconnect_drops(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-8";
    let (tx, mut events) = Events::channel();
    let app = rgi::from_fn(
        move |environ: Environ, start| -> Result<Box<dyn Body>, BoxError> {
            if environ.raw_path() == "/still-serving" {
                start.start(head_with_length(200, 2))?;
                return Ok(Box::new(Bytes::from_static(b"ok")));
            }
            start.start(head(200))?;
            Ok(Box::new(Endless {
                events: tx.clone(),
                until: Instant::now() + Duration::from_secs(10),
            }))
        },
    );
    let served = Served::start(server, app, CLAUSE)?;
    {
        let mut conn = served.connect()?;
        conn.send(&Request::get("/endless").to_bytes())
            .or_fail(CLAUSE, "sending the request")?;
        let (_, head) = conn.read_final_head().or_fail(CLAUSE, "reading the head")?;
        conn.body_reader(&head, "GET")
            .or_fail(CLAUSE, "reading the body")?
            .read_at_least(64 * 1024)
            .or_fail(CLAUSE, "reading the first chunk")?;
        // The connection is dropped here: the client goes away.
    }
    events.expect_dropped(CLAUSE, "after the client disconnected mid-response")?;
    expect_still_serving(&served, None, CLAUSE)?;
    served.stop()
}

sync_case!(
    rgi_fail_8_write_after_disconnect_is_a_transport_error
    ["RGI-FAIL-8"]
    "write returns SendError::Transport once the client has gone"
    => write_after_disconnect
);

fn write_after_disconnect(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FAIL-8";
    let (tx, outcomes) = mpsc::channel();
    let app = rgi::from_fn(move |environ: Environ, start| {
        if environ.raw_path() == "/still-serving" {
            start.start(head_with_length(200, 2))?;
            start.write(Bytes::from_static(b"ok"))?;
            return Ok(rgi::Empty);
        }
        start.start(head(200))?;
        let until = Instant::now() + Duration::from_secs(10);
        let outcome = loop {
            if Instant::now() > until {
                break Err("write kept succeeding for 10 s after the client left".to_owned());
            }
            match start.write(vec![b'w'; 64 * 1024]) {
                Ok(()) => thread::sleep(Duration::from_millis(1)),
                Err(SendError::Transport(_)) => break Ok(()),
                Err(other) => break Err(format!("{other:?}")),
            }
        };
        let _ = tx.send(outcome);
        Ok(rgi::Empty)
    });
    let served = Served::start(server, app, CLAUSE)?;
    {
        let mut conn = served.connect()?;
        conn.send(&Request::get("/writer").to_bytes())
            .or_fail(CLAUSE, "sending the request")?;
        let (_, head) = conn.read_final_head().or_fail(CLAUSE, "reading the head")?;
        conn.body_reader(&head, "GET")
            .or_fail(CLAUSE, "reading the body")?
            .read_at_least(64 * 1024)
            .or_fail(CLAUSE, "reading the first writes")?;
    }
    let outcome = recv(
        &outcomes,
        WAIT,
        CLAUSE,
        "write did not fail after the client disconnected",
    )?;
    ensure(outcome.is_ok(), CLAUSE, || {
        format!(
            "after the client disconnected, write returned {outcome:?}, expected SendError::Transport"
        )
    })?;
    expect_still_serving(&served, None, CLAUSE)?;
    served.stop()
}
