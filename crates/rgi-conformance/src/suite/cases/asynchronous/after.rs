//! After-response tasks (spec/rgi-async.md §11, AFTER).

use std::panic;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use rgi::{BoxError, Environ, StartResponse};
use rgi_async::{AfterError, AfterResponse, Capabilities};

use super::poll::FILLER;
use super::support::{
    AnyBody, BOUND, Latch, Log, Session, boxed, current, emit, exchange, fail, finished, head,
    lock, poll_body, ready_or_park, recv, recv_within, shown, text_body, wire,
};
use crate::Check;
use crate::suite::wire::Request;
use crate::suite::{Case, Failure, Needs, ServerUnderTest};

/// `RGIA-AFTER-1`, with the client present.
pub(super) const TASKS_RUN_AFTER_THE_RESPONSE: Case = Case::new(
    Check::new(
        "rgia_after_1_tasks_run_after_the_response",
        &[
            "RGIA-AFTER-1",
            "RGIA-AFTER-3",
            "RGIA-AFTER-2",
            "RGIA-AFTER-4",
        ],
        "a task spawned by a body starts only after the body ended, off the loop threads, while \
         the response completes and the next request is served without waiting for it",
    ),
    Needs::AfterResponse,
    tasks_run_after_the_response,
);

/// `RGIA-AFTER-1`, without the client.
pub(super) const TASKS_RUN_WITHOUT_THE_CLIENT: Case = Case::new(
    Check::new(
        "rgia_after_1_tasks_run_without_the_client",
        &["RGIA-AFTER-1"],
        "a task spawned by a body runs although the client disconnected before the response \
         ended",
    ),
    Needs::AfterResponse,
    tasks_run_without_the_client,
);

/// `RGIA-AFTER-2`.
pub(super) const A_PANICKING_TASK_IS_CONTAINED: Case = Case::new(
    Check::new(
        "rgia_after_2_a_panicking_task_is_contained",
        &["RGIA-AFTER-2"],
        "a panicking after-response task leaves the connection, the server and later tasks \
         working",
    ),
    Needs::AfterResponse,
    a_panicking_task_is_contained,
);

/// `RGIA-AFTER-5`.
pub(super) const NO_TASKS_AFTER_SHUTDOWN: Case = Case::new(
    Check::new(
        "rgia_after_5_no_tasks_after_shutdown",
        &["RGIA-AFTER-5"],
        "an AfterResponse handle kept past RunningServer::stop refuses a new task with \
         AfterError::ShutDown, not Rejected, and the task never runs",
    ),
    Needs::AfterResponse,
    no_tasks_after_shutdown,
);

/// The message a probe sends when the server offers no after-response
/// tasks.
const MISSING: &str =
    "the server claims after-response tasks, but Capabilities::after_response() is None";

/// The request's after-response handle, or a note of its absence.
fn after_of(environ: &Environ, problems: &Log<String>) -> Option<AfterResponse> {
    let after = Capabilities::of(environ)
        .and_then(Capabilities::after_response)
        .cloned();
    if after.is_none() {
        problems.push(MISSING.to_owned());
    }
    after
}

/// Spawns `task` through `after`, noting a refusal in `problems`.
fn spawn(after: &AfterResponse, problems: &Log<String>, task: impl FnOnce() + Send + 'static) {
    if let Err(error) = after.spawn(task) {
        problems.push(format!("AfterResponse::spawn refused the task: {error}"));
    }
}

/// What the task saw when it started.
struct Started {
    thread: ThreadId,
    body_ended: bool,
}

fn tasks_run_after_the_response(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-AFTER-1";
    /// Time given to a server that runs tasks too early to show it.
    const EARLY: Duration = Duration::from_millis(300);
    let problems: Log<String> = Log::new();
    let loop_threads: Log<ThreadId> = Log::new();
    let (release, gate) = (Latch::new(), Latch::new());
    let (started, starts) = mpsc::channel::<Started>();
    let (done, dones) = mpsc::channel();
    let app = {
        let (problems, loop_threads) = (problems.clone(), loop_threads.clone());
        let (release, gate) = (release.clone(), gate.clone());
        rgi_async::from_fn(
            move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
                loop_threads.push(current());
                if environ.uri().path() == "/next" {
                    return Ok(boxed(text_body("next")));
                }
                let Some(after) = after_of(&environ, &problems) else {
                    return Ok(boxed(text_body("no after-response tasks")));
                };
                let (problems, loop_threads) = (problems.clone(), loop_threads.clone());
                let (release, gate) = (release.clone(), gate.clone());
                let (started, done) = (started.clone(), done.clone());
                let body_ended = Arc::new(AtomicBool::new(false));
                let mut phase = 0;
                Ok(boxed(poll_body(move |cx, start| {
                    loop_threads.push(current());
                    match phase {
                        0 => {
                            phase = 1;
                            start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
                            let (ended, gate) = (Arc::clone(&body_ended), gate.clone());
                            let (started, done) = (started.clone(), done.clone());
                            spawn(&after, &problems, move || {
                                let _ = started.send(Started {
                                    thread: current(),
                                    body_ended: ended.load(Ordering::SeqCst),
                                });
                                let _ = done.send(gate.wait(BOUND * 2));
                            });
                            emit("first,")
                        }
                        1 => {
                            ready_or_park!(release.poll_open(cx));
                            phase = 2;
                            emit("last")
                        }
                        _ => {
                            body_ended.store(true, Ordering::SeqCst);
                            finished()
                        }
                    }
                })))
            },
        )
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&Request::get("/task").to_bytes())
        .map_err(wire(MAIN, "sending GET /task"))?;
    let (_, response_head) = conn
        .read_final_head()
        .map_err(wire(MAIN, "reading the head of GET /task"))?;
    let mut body = conn
        .body_reader(&response_head, "GET")
        .map_err(wire(MAIN, "the framing of GET /task"))?;
    body.read_at_least(6)
        .map_err(wire(MAIN, "reading the first chunk of GET /task"))?;
    if starts.recv_timeout(EARLY).is_ok() {
        gate.open();
        release.open();
        return Err(fail(
            MAIN,
            "the after-response task started while its body was still waiting to yield its \
             last chunk",
        ));
    }
    release.open();
    body.extend_deadline(BOUND);
    let rest = body.read_all(1024).map_err(wire(
        "RGIA-AFTER-3",
        "the after-response task is blocked; reading the rest of the response",
    ));
    let next = rest.and_then(|rest| {
        let next = exchange(&mut conn, &Request::get("/next"), "GET", "RGIA-AFTER-3")?;
        Ok((rest, next))
    });
    let task = recv(&starts, MAIN, "the start of the after-response task");
    gate.open();
    let finished_task = recv(&dones, MAIN, "the end of the after-response task");
    session.stop()?;
    if let Some(problem) = problems.entries().first() {
        return Err(fail(MAIN, problem.clone()));
    }
    let (rest, next) = next?;
    if rest.data != b"last" || !rest.complete || next.body.data != b"next" {
        return Err(fail(
            "RGIA-AFTER-3",
            format!(
                "while the task was blocked, the response ended with {} (complete: {}) and the \
                 next request got {}",
                shown(&rest.data),
                rest.complete,
                shown(&next.body.data)
            ),
        ));
    }
    let task = task?;
    if !task.body_ended {
        return Err(fail(
            MAIN,
            "the after-response task started before its body returned its end",
        ));
    }
    if loop_threads.entries().contains(&task.thread) {
        return Err(fail(
            "RGIA-AFTER-2",
            format!(
                "the after-response task ran on {:?}, a thread that called the application or \
                 polled a body (a loop thread)",
                task.thread
            ),
        ));
    }
    finished_task.map(|_| ())
}

fn tasks_run_without_the_client(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-AFTER-1";
    let problems: Log<String> = Log::new();
    let latch = Latch::new();
    let (ran, runs) = mpsc::channel();
    let app = {
        let (problems, latch) = (problems.clone(), latch.clone());
        rgi_async::from_fn(
            move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
                let Some(after) = after_of(&environ, &problems) else {
                    return Ok(boxed(text_body("no after-response tasks")));
                };
                let (problems, latch, ran) = (problems.clone(), latch.clone(), ran.clone());
                let mut polls = 0;
                Ok(boxed(poll_body(move |cx, start| {
                    polls += 1;
                    if polls == 1 {
                        start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
                        let ran = ran.clone();
                        spawn(&after, &problems, move || {
                            let _ = ran.send(());
                        });
                        return emit("first");
                    }
                    ready_or_park!(latch.poll_open(cx));
                    if polls > 20 {
                        return finished();
                    }
                    emit(Bytes::from_static(&FILLER))
                })))
            },
        )
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&Request::get("/task").to_bytes())
        .map_err(wire(MAIN, "sending GET /task"))?;
    let (_, response_head) = conn
        .read_final_head()
        .map_err(wire(MAIN, "reading the head of GET /task"))?;
    conn.body_reader(&response_head, "GET")
        .and_then(|mut body| body.read_at_least(5))
        .map_err(wire(MAIN, "reading the first chunk of GET /task"))?;
    drop(conn);
    latch.open();
    let task = recv(
        &runs,
        MAIN,
        "the after-response task of a request whose client disconnected",
    );
    session.stop()?;
    if let Some(problem) = problems.entries().first() {
        return Err(fail(MAIN, problem.clone()));
    }
    task
}

fn a_panicking_task_is_contained(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-AFTER-2";
    let problems: Log<String> = Log::new();
    let (note, notes) = mpsc::channel::<&'static str>();
    let app = {
        let problems = problems.clone();
        rgi_async::from_fn(
            move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
                let Some(after) = after_of(&environ, &problems) else {
                    return Ok(boxed(text_body("no after-response tasks")));
                };
                let panics = environ.uri().path() == "/panic";
                let note: Sender<&'static str> = note.clone();
                spawn(&after, &problems, move || {
                    if panics {
                        let _ = note.send("panicking");
                        panic::resume_unwind(Box::new("probe: the after-response task panicked"));
                    }
                    let _ = note.send("ran");
                });
                Ok(boxed(text_body(if panics { "panic" } else { "again" })))
            },
        )
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let first = exchange(&mut conn, &Request::get("/panic"), "GET", MAIN)?;
    let panicked = recv(&notes, MAIN, "the start of the panicking task");
    let same = exchange(&mut conn, &Request::get("/again"), "GET", MAIN);
    let ran_same = recv(
        &notes,
        MAIN,
        "the task of the next request on the same connection",
    );
    let other = session.exchange(&Request::get("/again"), "GET");
    let ran_other = recv_within(
        &notes,
        BOUND,
        MAIN,
        "the task of a request on a new connection",
    );
    session.stop()?;
    if let Some(problem) = problems.entries().first() {
        return Err(fail(MAIN, problem.clone()));
    }
    panicked?;
    let (same, other) = (same?, other?);
    if first.body.data != b"panic" || same.body.data != b"again" || other.body.data != b"again" {
        return Err(fail(
            MAIN,
            format!(
                "after a task panicked, the responses were {}, {} and {}",
                shown(&first.body.data),
                shown(&same.body.data),
                shown(&other.body.data)
            ),
        ));
    }
    for ran in [ran_same?, ran_other?] {
        if ran != "ran" {
            return Err(fail(MAIN, format!("a later task reported {ran:?}")));
        }
    }
    Ok(())
}

fn no_tasks_after_shutdown(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-AFTER-5";
    let problems: Log<String> = Log::new();
    let kept: Arc<Mutex<Option<AfterResponse>>> = Arc::default();
    let app = {
        let (problems, kept) = (problems.clone(), Arc::clone(&kept));
        rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
            *lock(&kept) = after_of(&environ, &problems);
            Ok(text_body("kept"))
        })
    };
    let session = Session::start(server, app, MAIN)?;
    session.exchange(&Request::get("/keep"), "GET")?;
    session.stop()?;
    if let Some(problem) = problems.entries().first() {
        return Err(fail(MAIN, problem.clone()));
    }
    let Some(after) = lock(&kept).take() else {
        return Err(fail(
            MAIN,
            "the probe was never called, so it kept no AfterResponse handle",
        ));
    };
    let ran = Arc::new(AtomicBool::new(false));
    let spawned = {
        let ran = Arc::clone(&ran);
        after.spawn(move || ran.store(true, Ordering::SeqCst))
    };
    match spawned {
        Err(AfterError::ShutDown) if !ran.load(Ordering::SeqCst) => Ok(()),
        Err(AfterError::ShutDown) => Err(fail(
            MAIN,
            "a task offered after RunningServer::stop was refused with ShutDown, but it ran",
        )),
        Err(AfterError::Rejected { limit }) => Err(fail(
            MAIN,
            format!(
                "a task offered after RunningServer::stop was refused with \
                 AfterError::Rejected {{ limit: {limit} }}, which says the queue is full; at \
                 shutdown the refusal must say so (AfterError::ShutDown)"
            ),
        )),
        Err(other) => Err(fail(
            MAIN,
            format!(
                "a task offered after RunningServer::stop was refused with {other:?} instead \
                 of AfterError::ShutDown"
            ),
        )),
        Ok(()) => Err(fail(
            MAIN,
            "AfterResponse::spawn accepted a task after RunningServer::stop returned: a server \
             that has shut down refuses it with AfterError::ShutDown",
        )),
    }
}
