//! Offload (spec/rgi-async.md §9, OFFLOAD).

use std::future::{Future, poll_fn};
use std::panic;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Poll, ready};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use rgi::{BoxError, Environ, StartResponse};
use rgi_async::{Capabilities, Offload, OffloadError};

use super::support::{
    AnyBody, BOUND, Latch, Log, Session, boxed, current, fail, future_body, lock, poll_for, recv,
    shown, text_body, wire,
};
use crate::Check;
use crate::suite::wire::Request;
use crate::suite::{Case, Failure, Needs, ServerUnderTest};

/// `RGIA-OFFLOAD-1`.
pub(super) const JOBS_RUN_ON_WORKER_THREADS: Case = Case::new(
    Check::new(
        "rgia_offload_1_jobs_run_on_worker_threads",
        &["RGIA-OFFLOAD-1", "RGIA-OFFLOAD-5", "RGIA-CAP-3"],
        "a blocking offload job runs on a thread that neither called the application nor polled \
         its body, and its value resumes the body",
    ),
    Needs::Asynchronous,
    jobs_run_on_worker_threads,
);

/// `RGIA-OFFLOAD-2`.
pub(super) const EXECUTE_NEVER_BLOCKS: Case = Case::new(
    Check::new(
        "rgia_offload_2_execute_never_blocks",
        &["RGIA-OFFLOAD-2", "RGIA-OFFLOAD-1"],
        "64 offload jobs that hold their workers until released are submitted from call: each \
         submission returns at once, accepted or refused with Saturated, and every accepted job \
         runs exactly once after the release",
    ),
    Needs::Asynchronous,
    execute_never_blocks,
);

/// `RGIA-OFFLOAD-9`.
pub(super) const NO_JOBS_AFTER_SHUTDOWN: Case = Case::new(
    Check::new(
        "rgia_offload_9_no_jobs_after_shutdown",
        &["RGIA-OFFLOAD-9"],
        "a job submitted through an Offload handle kept past RunningServer::stop resolves to \
         OffloadError::ShutDown and never runs",
    ),
    Needs::Asynchronous,
    no_jobs_after_shutdown,
);

/// `RGIA-OFFLOAD-6`.
pub(super) const PANICS_BECOME_ERRORS: Case = Case::new(
    Check::new(
        "rgia_offload_6_panics_become_errors",
        &["RGIA-OFFLOAD-6", "RGIA-OFFLOAD-7"],
        "a panicking offload job resolves to OffloadError::Panicked with its message, and the \
         next job and the next request still run",
    ),
    Needs::Asynchronous,
    panics_become_errors,
);

/// What a probe answers when the request carries no capabilities.
const NO_CAPABILITIES: &str = "no capabilities";

fn jobs_run_on_worker_threads(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-OFFLOAD-1";
    let loop_threads: Log<ThreadId> = Log::new();
    let (report, reports) = mpsc::channel();
    let app = {
        let loop_threads = loop_threads.clone();
        rgi_async::from_fn(
            move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
                loop_threads.push(current());
                let Some(capabilities) = Capabilities::of(&environ) else {
                    return Ok(boxed(text_body(NO_CAPABILITIES)));
                };
                let report = report.clone();
                let job = capabilities.offload().run(move || {
                    let _ = report.send(current());
                    // Blocking on purpose: this is what offload is for.
                    thread::sleep(Duration::from_millis(50));
                    6 * 7
                });
                let mut job = Some(job);
                let polled = loop_threads.clone();
                Ok(boxed(future_body(poll_fn(move |cx| {
                    polled.push(current());
                    let Some(future) = job.as_mut() else {
                        return Poll::Ready(String::from("polled after the end"));
                    };
                    let result = ready!(Pin::new(future).poll(cx));
                    job = None;
                    Poll::Ready(match result {
                        Ok(value) => format!("value:{value}"),
                        Err(error) => format!("offload failed: {error}"),
                    })
                }))))
            },
        )
    };
    let session = Session::start(server, app, MAIN)?;
    let response = session.exchange(&Request::get("/offload"), "GET")?;
    session.stop()?;
    if response.body.data == NO_CAPABILITIES.as_bytes() {
        return Err(fail(
            "RGIA-CAP-1",
            "the request carried no Capabilities, so no offload",
        ));
    }
    let worker = recv(&reports, MAIN, "the start of the offload job")?;
    if response.body.data != b"value:42" {
        return Err(fail(
            "RGIA-OFFLOAD-5",
            format!(
                "the body awaited a job returning 6 * 7 and answered {} {}",
                response.head.status,
                shown(&response.body.data)
            ),
        ));
    }
    if loop_threads.entries().contains(&worker) {
        return Err(fail(
            MAIN,
            format!(
                "the offload job ran on {worker:?}, a thread that also called the application or \
                 polled its body (a loop thread)"
            ),
        ));
    }
    Ok(())
}

fn execute_never_blocks(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-OFFLOAD-2";
    /// Jobs submitted one after the other, each holding its worker: more
    /// than a small pool and queue hold, so a server that waits for
    /// capacity shows it.
    const JOBS: usize = 64;
    /// The longest one submission may take: "at once", with room for a
    /// loaded machine.
    const PROMPT: Duration = Duration::from_secs(1);
    let gate = Latch::new();
    let runs: Log<usize> = Log::new();
    let (submitted, submissions) = mpsc::channel();
    let (resolved, resolutions) = mpsc::channel();
    let app = {
        let (gate, runs) = (gate.clone(), runs.clone());
        rgi_async::from_fn(
            move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
                let Some(capabilities) = Capabilities::of(&environ) else {
                    let _ = submitted.send(None);
                    return Ok(boxed(text_body(NO_CAPABILITIES)));
                };
                let offload = capabilities.offload();
                let mut jobs = Vec::with_capacity(JOBS);
                let mut slowest = (Duration::ZERO, 0);
                for index in 0..JOBS {
                    let (gate, runs) = (gate.clone(), runs.clone());
                    let started = Instant::now();
                    jobs.push(offload.run(move || {
                        runs.push(index);
                        gate.wait(BOUND * 2);
                        index
                    }));
                    let took = started.elapsed();
                    if took > slowest.0 {
                        slowest = (took, index);
                    }
                }
                let _ = submitted.send(Some(slowest));
                let resolved = resolved.clone();
                Ok(boxed(future_body(async move {
                    let mut outcomes = Vec::with_capacity(JOBS);
                    for job in jobs {
                        outcomes.push(job.await);
                    }
                    let _ = resolved.send(outcomes);
                    String::from("resolved")
                })))
            },
        )
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&Request::get("/jobs").to_bytes())
        .map_err(wire(MAIN, "sending GET /jobs"))?;
    let first = recv(
        &submissions,
        MAIN,
        "the return of 64 submissions of jobs that hold their workers",
    );
    // Released whatever happened, so that no job waits past the case.
    gate.open();
    let slowest = match first {
        Ok(slowest) => slowest,
        Err(blocked) => {
            let late = recv(
                &submissions,
                MAIN,
                "the return of the submissions once the jobs were released",
            );
            let after = match late {
                Ok(Some((took, index))) => {
                    format!("; once released, submission {index} had taken {took:?}")
                }
                _ => String::new(),
            };
            return Err(fail(
                MAIN,
                format!(
                    "while earlier jobs held their workers, the submissions from call did not \
                     return ({}){after}: execute must not wait for capacity",
                    blocked.reason()
                ),
            ));
        }
    };
    let response = conn.read_response("GET").map_err(wire(
        MAIN,
        "reading the response once the jobs were released",
    ));
    let outcomes = recv(&resolutions, MAIN, "the outcome of every job");
    session.stop()?;
    let Some((took, index)) = slowest else {
        return Err(fail(
            "RGIA-CAP-1",
            "the request carried no Capabilities, so no offload",
        ));
    };
    if took > PROMPT {
        return Err(fail(
            MAIN,
            format!(
                "submission {index} of {JOBS}, made while the jobs before it held their workers, \
                 took {took:?}: execute must return at once"
            ),
        ));
    }
    response?;
    let ran = runs.entries();
    for (job, outcome) in outcomes?.into_iter().enumerate() {
        let times = ran.iter().filter(|index| **index == job).count();
        match outcome {
            Ok(value) if value == job && times == 1 => {}
            Ok(value) => {
                return Err(fail(
                    "RGIA-OFFLOAD-1",
                    format!(
                        "accepted job {job} resolved to {value} after running {times} times; it \
                         must run exactly once"
                    ),
                ));
            }
            Err(OffloadError::Saturated { .. }) if times == 0 => {}
            Err(error) => {
                return Err(fail(
                    MAIN,
                    format!(
                        "job {job} of {JOBS}, submitted to a running server, resolved to \
                         {error:?} after running {times} times: the only refusal then is \
                         Saturated, and a refused job never runs"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn no_jobs_after_shutdown(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-OFFLOAD-9";
    let kept: Arc<Mutex<Option<Offload>>> = Arc::default();
    let app = {
        let kept = Arc::clone(&kept);
        rgi_async::from_fn(
            move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
                let Some(capabilities) = Capabilities::of(&environ) else {
                    return Ok(boxed(text_body(NO_CAPABILITIES)));
                };
                *lock(&kept) = Some(capabilities.offload().clone());
                Ok(boxed(text_body("kept")))
            },
        )
    };
    let session = Session::start(server, app, MAIN)?;
    let response = session.exchange(&Request::get("/keep"), "GET")?;
    session.stop()?;
    if response.body.data == NO_CAPABILITIES.as_bytes() {
        return Err(fail(
            "RGIA-CAP-1",
            "the request carried no Capabilities, so no offload",
        ));
    }
    let Some(offload) = lock(&kept).take() else {
        return Err(fail(
            MAIN,
            format!(
                "the probe never kept the request's Offload handle (the response was {} {})",
                response.head.status,
                shown(&response.body.data)
            ),
        ));
    };
    let ran = Arc::new(AtomicBool::new(false));
    let mut job = {
        let ran = Arc::clone(&ran);
        offload.run(move || ran.store(true, Ordering::SeqCst))
    };
    let outcome = poll_for(BOUND, |cx| Pin::new(&mut job).poll(cx));
    drop(job);
    let ran = ran.load(Ordering::SeqCst);
    match outcome {
        Some(Err(OffloadError::ShutDown)) if !ran => Ok(()),
        Some(Err(OffloadError::ShutDown)) => Err(fail(
            MAIN,
            "a job submitted after RunningServer::stop resolved to ShutDown, but it ran",
        )),
        Some(Ok(())) => Err(fail(
            MAIN,
            "a job submitted through an Offload handle after RunningServer::stop returned ran: \
             a server that has shut down refuses it with OffloadError::ShutDown",
        )),
        Some(Err(other)) => Err(fail(
            MAIN,
            format!(
                "a job submitted after RunningServer::stop resolved to {other:?}; at shutdown \
                 the refusal is OffloadError::ShutDown"
            ),
        )),
        None => Err(fail(
            MAIN,
            format!(
                "a job submitted after RunningServer::stop neither ran nor resolved within \
                 {BOUND:?} (ran: {ran})"
            ),
        )),
    }
}

fn panics_become_errors(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-OFFLOAD-6";
    const MESSAGE: &str = "offload-probe-panic";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(
        move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            if environ.uri().path() != "/panic" {
                return Ok(boxed(text_body("still serving")));
            }
            let Some(capabilities) = Capabilities::of(&environ) else {
                return Ok(boxed(text_body(NO_CAPABILITIES)));
            };
            let offload = capabilities.offload().clone();
            let report = report.clone();
            Ok(boxed(future_body(async move {
                let first = offload
                    .run(|| -> u32 { panic::resume_unwind(Box::new(MESSAGE)) })
                    .await;
                let second = offload.run(|| 7_u32).await;
                let answer = format!("{first:?} then {second:?}");
                let _ = report.send((first, second));
                answer
            })))
        },
    );
    let session = Session::start(server, app, MAIN)?;
    let response = session.exchange(&Request::get("/panic"), "GET")?;
    let after = session.exchange(&Request::get("/after"), "GET")?;
    session.stop()?;
    if response.body.data == NO_CAPABILITIES.as_bytes() {
        return Err(fail(
            "RGIA-CAP-1",
            "the request carried no Capabilities, so no offload",
        ));
    }
    let (first, second) = recv(&reports, MAIN, "the outcome of the panicking job")?;
    match first {
        Err(OffloadError::Panicked { message, .. }) if message.contains(MESSAGE) => {}
        other => {
            return Err(fail(
                MAIN,
                format!("a job that panicked with {MESSAGE:?} resolved to {other:?}"),
            ));
        }
    }
    if !matches!(second, Ok(7)) {
        return Err(fail(
            "RGIA-OFFLOAD-7",
            format!("after a job panicked, the next job resolved to {second:?} instead of Ok(7)"),
        ));
    }
    if response.head.status != 200 || after.body.data != b"still serving" {
        return Err(fail(
            "RGIA-OFFLOAD-7",
            format!(
                "after a job panicked, the responses were {} and {} {}",
                response.head.status,
                after.head.status,
                shown(&after.body.data)
            ),
        ));
    }
    Ok(())
}
