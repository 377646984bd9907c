//! Offload (spec/rgi-async.md §9, OFFLOAD).

use std::future::{Future, poll_fn};
use std::panic;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Poll, ready};
use std::thread::{self, ThreadId};
use std::time::Duration;

use rgi::{BoxError, Environ, StartResponse};
use rgi_async::{Capabilities, OffloadError};

use super::support::{
    AnyBody, Log, Session, boxed, current, fail, future_body, recv, shown, text_body,
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
