//! Calling the application and driving its body (spec/rgi-async.md §5,
//! APP; §6, POLL; §15, TASK).

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{BoxError, Environ, StartResponse};
use rgi_async::{Capabilities, Step, SyncSwitch};

use super::super::kit;
use super::support::{
    AnyBody, BOUND, Latch, Log, Session, boxed, emit, exchange, fail, finished, future_body, head,
    poll_body, ready_or_park, recv, recv_within, shown, text_body, wire,
};
use crate::suite::wire::{Connection, Request, Response, WireError};
use crate::suite::{Case, Failure, Needs, Probe, ServerUnderTest};
use crate::validate::AsyncValidator;
use crate::{Check, Policy, Reports};

/// `RGIA-APP-1`.
pub(super) const ONE_CALL_PER_REQUEST: Case = Case::new(
    Check::new(
        "rgia_app_1_one_call_per_request",
        &["RGIA-APP-1"],
        "the server calls the asynchronous application exactly once per request, with that \
         request's environ, for pipelined requests and on separate connections",
    ),
    Needs::Asynchronous,
    one_call_per_request,
);

/// `RGIA-APP-1`, after a failed call.
pub(super) const A_FAILED_CALL_IS_NOT_RETRIED: Case = Case::new(
    Check::new(
        "rgia_app_1_a_failed_call_is_not_retried",
        &["RGIA-APP-1", "RGIA-APP-4"],
        "an AsyncApplication::call that fails is the request's only call: answered 500, never \
         retried with the same response state, the validator around the application silent",
    ),
    Needs::Asynchronous,
    a_failed_call_is_not_retried,
);

/// `RGIA-APP-4`.
pub(super) const FAILURES_OF_CALL: Case = Case::new(
    Check::new(
        "rgia_app_4_failures_of_call_get_a_500",
        &["RGIA-APP-4", "RGI-FAIL-4"],
        "an error or a panic out of AsyncApplication::call is answered 500 without the \
         application's message, and the server keeps serving",
    ),
    Needs::Asynchronous,
    failures_of_call,
);

/// `RGIA-POLL-1`.
pub(super) const START_RESPONSE_ON_EVERY_POLL: Case = Case::new(
    Check::new(
        "rgia_poll_1_a_start_response_on_every_poll",
        &["RGIA-POLL-1", "RGIA-POLL-3", "RGIA-OUT-7"],
        "a body woken from another thread is polled again and can start the response and write \
         through the StartResponse of a later poll",
    ),
    Needs::Asynchronous,
    start_response_on_every_poll,
);

/// `RGIA-POLL-4`.
pub(super) const NO_BUSY_POLLING: Case = Case::new(
    Check::new(
        "rgia_poll_4_no_busy_polling",
        &["RGIA-POLL-4", "RGIA-TASK-2"],
        "a pending body with no wake-up is not polled in a loop",
    ),
    Needs::Asynchronous,
    no_busy_polling,
);

/// `RGIA-POLL-5`.
pub(super) const LATE_WAKE_UPS_ARE_HARMLESS: Case = Case::new(
    Check::new(
        "rgia_poll_5_late_wake_ups_are_harmless",
        &["RGIA-POLL-5"],
        "waking the wakers of finished and dropped bodies, from other threads and after the \
         connection closed, is harmless",
    ),
    Needs::Asynchronous,
    late_wake_ups_are_harmless,
);

/// `RGIA-POLL-6`.
pub(super) const NO_POLL_AFTER_THE_END: Case = Case::new(
    Check::new(
        "rgia_poll_6_no_poll_after_the_end",
        &["RGIA-POLL-6"],
        "a body is never polled again after Ready(None), an error step or a switch, even when \
         it woke itself first",
    ),
    Needs::Asynchronous,
    no_poll_after_the_end,
);

/// `RGIA-POLL-7`, on keep-alive connections.
pub(super) const DROPPED_BEFORE_THE_NEXT_REQUEST: Case = Case::new(
    Check::new(
        "rgia_poll_7_dropped_before_the_next_request",
        &["RGIA-POLL-7", "RGIA-POLL-8"],
        "every body (ended, failed, panicked, switched) is dropped exactly once, before the \
         next request on the connection is called",
    ),
    Needs::Asynchronous,
    dropped_before_the_next_request,
);

/// `RGIA-POLL-7`, client disconnect.
pub(super) const DROPPED_WHEN_THE_CLIENT_VANISHES: Case = Case::new(
    Check::new(
        "rgia_poll_7_dropped_when_the_client_vanishes",
        &["RGIA-POLL-7", "RGI-FAIL-8"],
        "a streaming body whose client closed the connection is dropped once sending fails",
    ),
    Needs::Asynchronous,
    dropped_when_the_client_vanishes,
);

/// `RGIA-POLL-8`.
pub(super) const POLL_FAILURES: Case = Case::new(
    Check::new(
        "rgia_poll_8_poll_failures_follow_the_failure_rules",
        &["RGIA-POLL-8", "RGI-FAIL-3", "RGI-FAIL-5"],
        "errors and panics of poll_step give a 500 before the head and an abnormal end after \
         it, and a panic in a body's Drop disturbs no other request",
    ),
    Needs::Asynchronous,
    poll_failures,
);

/// `RGIA-TASK-1`.
pub(super) const A_WAITING_REQUEST_BLOCKS_NO_ONE: Case = Case::new(
    Check::new(
        "rgia_task_1_a_waiting_request_blocks_no_one",
        &["RGIA-TASK-1", "RGIA-TASK-2"],
        "while one request waits for a blocked offload job, a request on another connection is \
         answered",
    ),
    Needs::Asynchronous,
    a_waiting_request_blocks_no_one,
);

/// `RGIA-TASK-4`.
pub(super) const SHUTDOWN_DROPS_PARKED_BODIES: Case = Case::new(
    Check::new(
        "rgia_task_4_shutdown_drops_parked_bodies",
        &["RGIA-TASK-4", "RGIA-POLL-7"],
        "stopping the server drops a body that is parked without a wake-up, exactly once",
    ),
    Needs::Asynchronous,
    shutdown_drops_parked_bodies,
);

/// A panic with a string payload, without running the panic hook (so the
/// suite's output stays readable).
fn probe_panic(message: &'static str) -> ! {
    panic::resume_unwind(Box::new(message))
}

fn a_failed_call_is_not_retried(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let calls = Arc::new(AtomicUsize::new(0));
    let reports = Reports::new(Policy::Collect);
    let app = {
        let calls = Arc::clone(&calls);
        rgi_async::from_fn(move |environ: Environ, start: &mut StartResponse<'_>| {
            kit::cold_then_warm(&calls, &environ, start)
        })
    };
    let probe = Probe::asynchronous(AsyncValidator::new(app, reports.clone()));
    kit::failed_call_is_not_retried(server, probe, &calls, &reports, "RGIA-APP-1", "RGIA-APP-4")
}

fn one_call_per_request(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-APP-1";
    let calls: Log<String> = Log::new();
    let app = {
        let calls = calls.clone();
        rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
            let path = environ.uri().path().to_owned();
            calls.push(path.clone());
            Ok(text_body(path))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let pipelined: Vec<u8> = ["/a", "/b", "/c"]
        .iter()
        .flat_map(|path| Request::get(*path).to_bytes())
        .collect();
    conn.send(&pipelined)
        .map_err(wire(MAIN, "sending GET /a, /b and /c pipelined"))?;
    let mut answers = Vec::new();
    for path in ["/a", "/b", "/c"] {
        let response = conn
            .read_response("GET")
            .map_err(wire(MAIN, format!("reading the response to GET {path}")))?;
        answers.push((path, response));
    }
    answers.push(("/d", session.exchange(&Request::get("/d"), "GET")?));
    session.stop()?;
    for (path, response) in &answers {
        if response.body.data != path.as_bytes() {
            return Err(fail(
                MAIN,
                format!(
                    "GET {path} was answered by a call that saw the path {}",
                    shown(&response.body.data)
                ),
            ));
        }
    }
    let mut seen = calls.entries();
    seen.sort();
    if seen != ["/a", "/b", "/c", "/d"] {
        return Err(fail(
            MAIN,
            format!("four requests (/a, /b, /c pipelined, /d) gave the calls {seen:?}"),
        ));
    }
    Ok(())
}

fn failures_of_call(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-APP-4";
    let app = rgi_async::from_fn(
        |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            match environ.uri().path() {
                "/error" => Err("probe-secret: call failed".into()),
                "/panic" => probe_panic("probe-secret: call panicked"),
                _ => Ok(boxed(text_body("ok"))),
            }
        },
    );
    let session = Session::start(server, app, MAIN)?;
    for (path, what) in [("/error", "returned Err"), ("/panic", "panicked")] {
        let response = session.exchange(&Request::get(path), "GET")?;
        if response.head.status != 500 {
            return Err(fail(
                MAIN,
                format!(
                    "GET {path}: AsyncApplication::call {what}; the server answered {} instead \
                     of 500",
                    response.head.status
                ),
            ));
        }
        if response
            .body
            .data
            .windows(b"probe-secret".len())
            .any(|window| window == b"probe-secret")
        {
            return Err(fail(
                "RGI-FAIL-4",
                format!(
                    "GET {path}: the 500 shows the application's message: {}",
                    shown(&response.body.data)
                ),
            ));
        }
    }
    let after = session.exchange(&Request::get("/ok"), "GET")?;
    session.stop()?;
    if after.head.status != 200 || after.body.data != b"ok" {
        return Err(fail(
            MAIN,
            format!(
                "after the failed calls, GET /ok got {} {}",
                after.head.status,
                shown(&after.body.data)
            ),
        ));
    }
    Ok(())
}

fn start_response_on_every_poll(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-POLL-1";
    let latch = Latch::new();
    let problems: Log<String> = Log::new();
    let (parked, parks) = mpsc::channel();
    let app = {
        let latch = latch.clone();
        let problems = problems.clone();
        rgi_async::from_fn(move |_environ: Environ, _start: &mut StartResponse<'_>| {
            let latch = latch.clone();
            let problems = problems.clone();
            let parked = parked.clone();
            let mut done = false;
            Ok(poll_body(move |cx, start| {
                if done {
                    return finished();
                }
                let opened = latch.poll_open(cx);
                if opened.is_pending() {
                    // Only now is the waker registered: a latch opened
                    // after this message needs a real wake-up to be seen.
                    let _ = parked.send(());
                }
                ready_or_park!(opened);
                done = true;
                let lazy = head(StatusCode::OK, &[("x-lazy", "started-in-a-later-poll")]);
                if let Err(error) = start.start(lazy) {
                    problems.push(format!("start in the second poll failed: {error}"));
                    return Err(error.into());
                }
                if let Err(error) = start.write(Bytes::from_static(b"written,")) {
                    problems.push(format!("write in the second poll failed: {error}"));
                    return Err(error.into());
                }
                emit("yielded")
            }))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&Request::get("/lazy").to_bytes())
        .map_err(wire(MAIN, "sending GET /lazy"))?;
    recv(&parks, MAIN, "the first poll of the body")?;
    // Opened from this thread, not the server's: the wake-up comes from
    // outside the server's machinery.
    latch.open();
    let response = conn.read_response("GET").map_err(wire(
        "RGIA-POLL-3",
        "the body was woken from another thread after returning Pending; reading the response",
    ))?;
    session.stop()?;
    if let Some(problem) = problems.entries().first() {
        let clause = if problem.starts_with("write") {
            "RGIA-OUT-7"
        } else {
            MAIN
        };
        return Err(fail(clause, problem.clone()));
    }
    let lazy = response.head.field("x-lazy");
    if response.head.status != 200
        || lazy != Some(&b"started-in-a-later-poll"[..])
        || response.body.data != b"written,yielded"
    {
        return Err(fail(
            MAIN,
            format!(
                "a body that started, wrote \"written,\" and yielded \"yielded\" in its second \
                 poll was answered {} (x-lazy {:?}) with body {}",
                response.head.status,
                lazy.map(shown),
                shown(&response.body.data)
            ),
        ));
    }
    Ok(())
}

fn no_busy_polling(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-POLL-4";
    /// How long the body stays pending while its polls are counted.
    const WINDOW: Duration = Duration::from_millis(500);
    /// More polls than this in the window is a loop, not an occasional
    /// spurious poll.
    const MOST: usize = 10;
    let latch = Latch::new();
    let polls = Arc::new(AtomicUsize::new(0));
    let (parked, parks) = mpsc::channel();
    let app = {
        let latch = latch.clone();
        let polls = Arc::clone(&polls);
        rgi_async::from_fn(move |_environ: Environ, _start: &mut StartResponse<'_>| {
            let latch = latch.clone();
            let polls = Arc::clone(&polls);
            let parked = parked.clone();
            let mut done = false;
            Ok(poll_body(move |cx, start| {
                if done {
                    return finished();
                }
                if polls.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = parked.send(());
                }
                ready_or_park!(latch.poll_open(cx));
                done = true;
                start.start(StatusCode::OK)?;
                emit("woken")
            }))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&Request::get("/parked").to_bytes())
        .map_err(wire(MAIN, "sending GET /parked"))?;
    recv(&parks, MAIN, "the first poll of the body")?;
    thread::sleep(WINDOW);
    let counted = polls.load(Ordering::SeqCst);
    latch.open();
    let response = conn.read_response("GET").map_err(wire(
        "RGIA-POLL-3",
        "reading the response after the wake-up",
    ))?;
    session.stop()?;
    if counted > MOST {
        return Err(fail(
            MAIN,
            format!(
                "a body that returned Pending with no wake-up was polled {counted} times in \
                 {WINDOW:?}"
            ),
        ));
    }
    if response.body.data != b"woken" {
        return Err(fail(
            "RGIA-POLL-3",
            format!(
                "after the wake-up the body was {}",
                shown(&response.body.data)
            ),
        ));
    }
    Ok(())
}

/// Wakes every waker in `wakers` from this thread and from another one;
/// a panic (the server's waker misbehaving) becomes a failure.
fn wake_all(wakers: &[Waker], when: &str) -> Result<(), Failure> {
    let woken = panic::catch_unwind(AssertUnwindSafe(|| {
        for waker in wakers {
            waker.wake_by_ref();
        }
        let copies: Vec<Waker> = wakers.to_vec();
        let helper = thread::spawn(move || {
            for waker in copies {
                waker.wake();
            }
        });
        helper.join().is_ok()
    }));
    match woken {
        Ok(true) => Ok(()),
        _ => Err(fail(
            "RGIA-POLL-5",
            format!("waking the stored wakers {when} panicked"),
        )),
    }
}

fn late_wake_ups_are_harmless(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-POLL-5";
    let wakers: Log<Waker> = Log::new();
    let app = {
        let wakers = wakers.clone();
        rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
            let wakers = wakers.clone();
            let mut text = Some(Bytes::from(environ.uri().path().to_owned()));
            Ok(poll_body(move |cx, start| {
                wakers.push(cx.waker().clone());
                let Some(text) = text.take() else {
                    return finished();
                };
                start.start(StatusCode::OK)?;
                emit(text)
            }))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let first = exchange(&mut conn, &Request::get("/first"), "GET", MAIN)?;
    wake_all(&wakers.entries(), "after the first response")?;
    let second = exchange(&mut conn, &Request::get("/second"), "GET", MAIN)?;
    drop(conn);
    wake_all(&wakers.entries(), "after the connection closed")?;
    let third = session.exchange(&Request::get("/third"), "GET")?;
    session.stop()?;
    wake_all(&wakers.entries(), "after the server stopped")?;
    for (path, response) in [("/first", first), ("/second", second), ("/third", third)] {
        if response.body.data != path.as_bytes() {
            return Err(fail(
                MAIN,
                format!(
                    "after waking the wakers of finished bodies, GET {path} got {} {}",
                    response.head.status,
                    shown(&response.body.data)
                ),
            ));
        }
    }
    Ok(())
}

fn no_poll_after_the_end(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-POLL-6";
    let late: Log<String> = Log::new();
    let app = {
        let late = late.clone();
        rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
            let path = environ.uri().path().to_owned();
            let late = late.clone();
            let mut ended = false;
            Ok(poll_body(move |cx, start| {
                if ended {
                    late.push(format!(
                        "GET {path}: the body was polled after its last step"
                    ));
                    return finished();
                }
                ended = true;
                // A wake-up right before the end: a server that honours it
                // after the end breaks the clause.
                cx.waker().wake_by_ref();
                match path.as_str() {
                    "/error" => Err("probe: a failure step".into()),
                    "/switch" => Ok(Poll::Ready(Some(Step::Switch(SyncSwitch::new(|start| {
                        start.start(StatusCode::OK)?;
                        Ok(Bytes::from_static(b"switched"))
                    }))))),
                    _ => {
                        start.start(StatusCode::OK)?;
                        finished()
                    }
                }
            }))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut expected = Vec::new();
    for path in ["/end", "/error", "/switch", "/end"] {
        let response = session.exchange(&Request::get(path), "GET")?;
        expected.push((path, response.head.status));
    }
    session.stop()?;
    if let Some(problem) = late.entries().first() {
        return Err(fail(MAIN, problem.clone()));
    }
    for (path, status) in expected {
        let wanted = if path == "/error" { 500 } else { 200 };
        if status != wanted {
            return Err(fail(
                MAIN,
                format!("GET {path}: status {status}, expected {wanted}"),
            ));
        }
    }
    Ok(())
}

/// A connection that is opened again when the server closed it after a
/// response, as the failure rules allow.
struct Client<'s> {
    session: &'s Session,
    conn: Option<Connection>,
    clause: &'static str,
}

impl Client<'_> {
    fn get(&mut self, path: &str) -> Result<Response, Failure> {
        let request = &Request::get(path);
        let what = format!("GET {path}");
        if let Some(mut conn) = self.conn.take() {
            match Self::once(&mut conn, request) {
                Ok(response) => return Ok(self.keep(conn, response)),
                // The server closed it after the previous response.
                Err(error) if error.is_closed() => {}
                Err(error) => return Err(wire(self.clause, what)(error)),
            }
        }
        let mut conn = self.session.connect()?;
        let response = Self::once(&mut conn, request).map_err(wire(self.clause, what))?;
        Ok(self.keep(conn, response))
    }

    fn once(conn: &mut Connection, request: &Request) -> Result<Response, WireError> {
        conn.send(&request.to_bytes())?;
        conn.read_response("GET")
    }

    fn keep(&mut self, conn: Connection, response: Response) -> Response {
        if !response.head.lists("connection", "close") {
            self.conn = Some(conn);
        }
        response
    }
}

fn dropped_before_the_next_request(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-POLL-7";
    const PATHS: [&str; 5] = ["/end", "/error", "/panic", "/switch", "/last"];
    let called: Log<String> = Log::new();
    let dropped: Log<String> = Log::new();
    let problems: Log<String> = Log::new();
    let app = {
        let (called, dropped, problems) = (called.clone(), dropped.clone(), problems.clone());
        rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
            let path = environ.uri().path().to_owned();
            let drops = dropped.entries();
            for earlier in called.entries() {
                let count = drops.iter().filter(|gone| **gone == earlier).count();
                if count != 1 {
                    problems.push(format!(
                        "GET {path} was called while the body of GET {earlier} had been dropped \
                         {count} times"
                    ));
                }
            }
            called.push(path.clone());
            let mut ended = false;
            let what = path.clone();
            let dropped = dropped.clone();
            Ok(poll_body(move |_cx, start| {
                if ended {
                    return finished();
                }
                ended = true;
                match what.as_str() {
                    "/error" => Err("probe: a failure step".into()),
                    "/panic" => probe_panic("probe: poll_step panicked"),
                    "/switch" => Ok(Poll::Ready(Some(Step::Switch(SyncSwitch::new(|start| {
                        start.start(StatusCode::OK)?;
                        Ok(Bytes::from_static(b"switched"))
                    }))))),
                    _ => {
                        start.start(StatusCode::OK)?;
                        emit("ended")
                    }
                }
            })
            .on_drop(move || dropped.push(path)))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut client = Client {
        session: &session,
        conn: None,
        clause: MAIN,
    };
    for path in PATHS {
        client.get(path)?;
    }
    drop(client);
    // The last body is dropped after its response; give it the bound.
    let deadline = Instant::now() + BOUND;
    while dropped.len() < PATHS.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    session.stop()?;
    if let Some(problem) = problems.entries().first() {
        return Err(fail(MAIN, problem.clone()));
    }
    let drops = dropped.entries();
    for path in PATHS {
        let count = drops.iter().filter(|gone| *gone == path).count();
        if count != 1 {
            return Err(fail(
                MAIN,
                format!("the body of GET {path} was dropped {count} times, expected once"),
            ));
        }
    }
    Ok(())
}

/// 64 KiB of filler for bodies that produce as fast as they are polled.
pub(super) static FILLER: [u8; 64 * 1024] = [b'.'; 64 * 1024];

fn dropped_when_the_client_vanishes(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-POLL-7";
    let latch = Latch::new();
    let (gone, drops) = mpsc::channel();
    let app = {
        let latch = latch.clone();
        rgi_async::from_fn(move |_environ: Environ, _start: &mut StartResponse<'_>| {
            let latch = latch.clone();
            let gone = gone.clone();
            let mut polls = 0_u64;
            Ok(poll_body(move |cx, start| {
                polls += 1;
                if polls == 1 {
                    start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
                    return emit("first");
                }
                ready_or_park!(latch.poll_open(cx));
                emit(Bytes::from_static(&FILLER))
            })
            .on_drop(move || {
                let _ = gone.send(());
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
    conn.body_reader(&response_head, "GET")
        .and_then(|mut body| body.read_at_least(5))
        .map_err(wire(MAIN, "reading the first chunk"))?;
    drop(conn);
    latch.open();
    let dropped = recv(
        &drops,
        MAIN,
        "the drop of a body that yields 64 KiB on every poll after its client closed the \
         connection",
    );
    session.stop()?;
    dropped
}

fn poll_failures(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-POLL-8";
    let app = rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
        let path = environ.uri().path().to_owned();
        let mut polls = 0_u32;
        let body = poll_body(move |_cx, start| {
            polls += 1;
            match (path.as_str(), polls) {
                ("/error-before", _) => Err("probe: failure step".into()),
                ("/panic-before", _) => probe_panic("probe: poll_step panicked"),
                ("/error-after" | "/panic-after", 1) => {
                    start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
                    emit("partial")
                }
                ("/error-after", _) => Err("probe: failure step after the head".into()),
                ("/panic-after", _) => probe_panic("probe: poll_step panicked after the head"),
                (_, 1) => {
                    start.start(StatusCode::OK)?;
                    emit("ok")
                }
                _ => finished(),
            }
        });
        let panics_on_drop = environ.uri().path() == "/drop-panics";
        Ok(body.on_drop(move || {
            if panics_on_drop {
                probe_panic("probe: the body's Drop panicked");
            }
        }))
    });
    let session = Session::start(server, app, MAIN)?;
    for path in ["/error-before", "/panic-before"] {
        let response = session.exchange(&Request::get(path), "GET")?;
        if response.head.status != 500 {
            return Err(fail(
                "RGI-FAIL-3",
                format!(
                    "GET {path}: poll_step failed before the head was sent; status {}, \
                     expected 500",
                    response.head.status
                ),
            ));
        }
    }
    for path in ["/error-after", "/panic-after"] {
        let response = session.exchange(&Request::get(path), "GET")?;
        if response.head.status != 200 || response.body.complete {
            return Err(fail(
                "RGI-FAIL-5",
                format!(
                    "GET {path}: poll_step failed after the head and the chunk \"partial\" were \
                     sent; the response ended as status {}, body {}, complete: {} (an \
                     abnormal end is required)",
                    response.head.status,
                    shown(&response.body.data),
                    response.body.complete
                ),
            ));
        }
    }
    // Whatever the response to it looks like, a panicking Drop must leave
    // the server serving.
    let _ = session.exchange(&Request::get("/drop-panics"), "GET");
    let after = session.exchange(&Request::get("/ok"), "GET")?;
    session.stop()?;
    if after.head.status != 200 || after.body.data != b"ok" {
        return Err(fail(
            MAIN,
            format!(
                "after failures and panics of other bodies, GET /ok got {} {}",
                after.head.status,
                shown(&after.body.data)
            ),
        ));
    }
    Ok(())
}

fn a_waiting_request_blocks_no_one(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-TASK-1";
    let gate = Latch::new();
    let (started, starts) = mpsc::channel();
    let app = {
        let gate = gate.clone();
        rgi_async::from_fn(
            move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
                if environ.uri().path() != "/wait" {
                    return Ok(boxed(text_body("other")));
                }
                let Some(capabilities) = Capabilities::of(&environ) else {
                    let _ = started.send(false);
                    return Ok(boxed(text_body("no capabilities")));
                };
                let (gate, started) = (gate.clone(), started.clone());
                let job = capabilities.offload().run(move || {
                    let _ = started.send(true);
                    gate.wait(BOUND * 2)
                });
                Ok(boxed(future_body(async move {
                    match job.await {
                        Ok(opened) => format!("job:{opened}"),
                        Err(error) => format!("offload failed: {error}"),
                    }
                })))
            },
        )
    };
    let session = Session::start(server, app, MAIN)?;
    let mut waiting = session.connect()?;
    waiting
        .send(&Request::get("/wait").to_bytes())
        .map_err(wire(MAIN, "sending GET /wait"))?;
    if !recv(
        &starts,
        "RGIA-OFFLOAD-1",
        "the start of the offload job of GET /wait",
    )? {
        return Err(fail(
            "RGIA-CAP-1",
            "GET /wait carried no Capabilities, so no offload",
        ));
    }
    let other = session
        .exchange(&Request::get("/other"), "GET")
        .map_err(|failure| {
            fail(
                MAIN,
                format!(
                    "while GET /wait waited for its offload job, GET /other on another connection \
                 was not answered: {}",
                    failure.reason()
                ),
            )
        });
    gate.open();
    let waited = waiting
        .read_response("GET")
        .map_err(wire(MAIN, "reading the response to GET /wait"));
    session.stop()?;
    let (other, waited) = (other?, waited?);
    if other.body.data != b"other" || waited.body.data != b"job:true" {
        return Err(fail(
            MAIN,
            format!(
                "GET /other got {}, GET /wait got {}",
                shown(&other.body.data),
                shown(&waited.body.data)
            ),
        ));
    }
    Ok(())
}

fn shutdown_drops_parked_bodies(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-TASK-4";
    let never = Latch::new();
    let (parked, parks) = mpsc::channel();
    let (gone, drops) = mpsc::channel();
    let app = {
        let never = never.clone();
        rgi_async::from_fn(move |_environ: Environ, _start: &mut StartResponse<'_>| {
            let (never, parked, gone) = (never.clone(), parked.clone(), gone.clone());
            Ok(poll_body(move |cx, _start| {
                let _ = parked.send(());
                ready_or_park!(never.poll_open(cx));
                finished()
            })
            .on_drop(move || {
                let _ = gone.send(());
            }))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&Request::get("/parked").to_bytes())
        .map_err(wire(MAIN, "sending GET /parked"))?;
    recv(&parks, MAIN, "the first poll of the parked body")?;
    session.stop()?;
    recv_within(
        &drops,
        Duration::from_secs(1),
        MAIN,
        "the drop of the parked body by the time RunningServer::stop returned",
    )?;
    if drops.try_recv().is_ok() {
        return Err(fail(MAIN, "the parked body was dropped twice at shutdown"));
    }
    drop(conn);
    Ok(())
}
