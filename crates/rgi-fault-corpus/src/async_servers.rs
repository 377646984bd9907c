//! Broken asynchronous servers: hand-written polling loops that drive a
//! validator-wrapped asynchronous probe, each with one mistake.

#![allow(
    clippy::mem_forget,
    reason = "the mistakes are the point of this module"
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use rgi::{Environ, Input, ResponseState, ServerInfo, SpecVersion, StartResponse};
use rgi_async::{
    AfterError, AfterResponse, AfterResponseService, AfterTask, AsyncApplication, Capabilities,
    Interest, Job, Offload, OffloadError, OffloadFuture, OffloadService, Readiness,
    ReadinessService, Source, Step, SyncSwitch, Upgrade, UpgradeError, UpgradeFuture,
    UpgradeService, WaitAnyFuture, WaitAnyOutcome, WaitFuture, WaitOutcome,
};
use rgi_conformance::validate::AsyncValidator;
use rgi_conformance::{Side, Violation};

use crate::support::{
    AsyncScript, Flag, ThreadPerJob, Wire, broken, capabilities, chunk, drive_async, ok, poll_step,
    pull_all, reports, request, seen,
};
use crate::{Component, Interface, Kind};

type Run = Result<Vec<Violation>, String>;

fn srv(name: &'static str, clause: &'static str, run: fn() -> Run) -> Component {
    broken(
        name,
        Kind::Server,
        Interface::Async,
        clause,
        Side::Server,
        run,
    )
}

pub(crate) fn components() -> Vec<Component> {
    vec![
        srv("async_srv/no_capabilities", "RGIA-CAP-1", no_capabilities),
        // Not a fault: see the function's comment.
        crate::support::correct(
            "async_srv/two_capability_sets",
            crate::Kind::Server,
            crate::Interface::Async,
            two_capability_sets,
        ),
        srv("async_srv/polls_after_end", "RGIA-POLL-6", polls_after_end),
        srv(
            "async_srv/polls_after_switch",
            "RGIA-POLL-6",
            polls_after_switch,
        ),
        srv(
            "async_srv/never_drops_body",
            "RGIA-POLL-7",
            never_drops_body,
        ),
        srv(
            "async_srv/continuation_on_loop_thread",
            "RGIA-SWITCH-3",
            continuation_on_loop_thread,
        ),
        srv(
            "async_srv/continuation_before_drop",
            "RGIA-SWITCH-2",
            continuation_before_drop,
        ),
        srv(
            "async_srv/fresh_state_for_continuation",
            "RGIA-SWITCH-4",
            fresh_state_for_continuation,
        ),
        srv(
            "async_srv/wake_honoured_late",
            "RGIA-POLL-3",
            wake_honoured_late,
        ),
        srv("async_srv/busy_polls", "RGIA-POLL-4", busy_polls),
        srv(
            "async_srv/fresh_state_per_poll",
            "RGIA-POLL-1",
            fresh_state_per_poll,
        ),
        srv(
            "async_srv/polls_before_sending",
            "RGIA-OUT-1",
            polls_before_sending,
        ),
        srv("async_srv/blocking_input", "RGIA-INPUT-1", blocking_input),
        srv(
            "async_srv/source_overdelivers",
            "RGIA-INPUT-2",
            source_overdelivers,
        ),
        srv(
            "async_srv/source_pending_without_wake",
            "RGIA-INPUT-2",
            source_pending_without_wake,
        ),
        srv(
            "async_srv/offload_on_caller",
            "RGIA-OFFLOAD-1",
            offload_on_caller,
        ),
        srv(
            "async_srv/offload_waits_for_capacity",
            "RGIA-OFFLOAD-2",
            offload_waits_for_capacity,
        ),
        srv(
            "async_srv/after_task_in_spawn",
            "RGIA-AFTER-4",
            after_task_in_spawn,
        ),
        srv(
            "async_srv/after_task_before_response",
            "RGIA-AFTER-1",
            after_task_before_response,
        ),
        srv(
            "async_srv/after_task_on_loop_thread",
            "RGIA-AFTER-2",
            after_task_on_loop_thread,
        ),
        srv(
            "async_srv/upgrade_on_plain_request",
            "RGIA-UPGRADE-1",
            upgrade_on_plain_request,
        ),
        srv(
            "async_srv/claims_newer_spec",
            "RGIA-VER-1",
            claims_newer_spec,
        ),
        srv("async_srv/refuses_switch", "RGIA-CAP-4", refuses_switch),
        srv(
            "async_srv/leaves_transfer_encoding",
            "RGI-HDR-4",
            leaves_transfer_encoding,
        ),
        srv(
            "async_srv/waits_for_wake_after_chunk",
            "RGIA-POLL-2",
            waits_for_wake_after_chunk,
        ),
        srv(
            "async_srv/ignores_continuation_body",
            "RGIA-SWITCH-5",
            ignores_continuation_body,
        ),
        srv(
            "async_srv/retries_failed_call",
            "RGIA-APP-1",
            retries_failed_call,
        ),
        srv(
            "async_srv/declares_runtime_without_context",
            "RGIA-RT-1",
            declares_runtime_without_context,
        ),
        srv(
            "async_srv/readiness_times_out_at_once",
            "RGIA-READY-7",
            readiness_times_out_at_once,
        ),
        srv(
            "async_srv/readiness_never_resolves",
            "RGIA-READY-1",
            readiness_never_resolves,
        ),
    ]
}

type StepPoll = Poll<Option<Result<Step, rgi::BoxError>>>;

/// Probe: two chunks.
fn two_chunks() -> impl AsyncApplication {
    rgi_async::from_fn(|_e: Environ, start| {
        start.start(ok())?;
        let mut n = 0;
        Ok(AsyncScript::new(
            move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                n += 1;
                match n {
                    1 => chunk(b"one "),
                    2 => chunk(b"two"),
                    _ => Poll::Ready(None),
                }
            },
        ))
    })
}

/// Probe: switches at once; the continuation answers.
fn switcher() -> impl AsyncApplication {
    rgi_async::from_fn(|_e: Environ, _start| {
        let mut switched = false;
        Ok(AsyncScript::new(
            move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                if std::mem::replace(&mut switched, true) {
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|start| {
                    start.start(ok())?;
                    Ok(Bytes::from_static(b"switched"))
                })))))
            },
        ))
    })
}

/// Probe: starts, then waits for an offload job before its one chunk.
fn offloader() -> impl AsyncApplication {
    rgi_async::from_fn(|e: Environ, start| {
        let caps = Capabilities::of(&e).ok_or("no capabilities")?;
        let mut job: Option<OffloadFuture<&'static str>> = Some(caps.offload().run(|| {
            std::thread::sleep(Duration::from_millis(100));
            "computed"
        }));
        start.start(ok())?;
        Ok(AsyncScript::new(
            move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                let Some(fut) = job.as_mut() else {
                    return Poll::Ready(None);
                };
                match Pin::new(fut).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(answer) => {
                        job = None;
                        Step::ready(answer.map(|text| Bytes::from_static(text.as_bytes())))
                    }
                }
            },
        ))
    })
}

/// Probe: reads its input through the non-blocking face, two bytes at a
/// time, and answers how much it got.
fn reader() -> impl AsyncApplication {
    rgi_async::from_fn(|e: Environ, start| {
        start.start(ok())?;
        let mut input = Some(e.into_input());
        let mut total = 0usize;
        Ok(AsyncScript::new(
            move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                let Some(inp) = input.as_mut() else {
                    return Poll::Ready(None);
                };
                match inp.poll_chunk(cx, 2) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err.into()))),
                    Poll::Ready(Ok(bytes)) if bytes.is_empty() => {
                        input = None;
                        Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(format!("{total} bytes"))))))
                    }
                    Poll::Ready(Ok(bytes)) => {
                        total += bytes.len();
                        Poll::Ready(Some(Ok(Step::Chunk(Bytes::new()))))
                    }
                }
            },
        ))
    })
}

/// Probe: spawns one after-response task.
fn after_spawner() -> impl AsyncApplication {
    rgi_async::from_fn(|e: Environ, start| {
        let caps = Capabilities::of(&e).ok_or("no capabilities")?;
        if let Some(after) = caps.after_response() {
            after.spawn(|| std::thread::sleep(Duration::from_millis(20)))?;
        }
        start.start(ok())?;
        Ok(Bytes::from_static(b"queued"))
    })
}

/// Probe: says whether an upgrade is on offer.
fn upgrade_checker() -> impl AsyncApplication {
    rgi_async::from_fn(|e: Environ, start| {
        let caps = Capabilities::of(&e).ok_or("no capabilities")?;
        start.start(ok())?;
        Ok(Bytes::from(if caps.upgrade().is_some() {
            "upgrade offered"
        } else {
            "plain"
        }))
    })
}

fn built(result: Result<Environ, rgi::EnvironError>) -> Result<Environ, String> {
    result.map_err(|e| format!("environ: {e}"))
}

/// A GET with the capabilities a correct asynchronous server would give.
fn get() -> Result<Environ, String> {
    built(request(Method::GET).extension(capabilities()).build())
}

/// Calls the validated probe and drives its body correctly.
fn serve<A: AsyncApplication>(app: &AsyncValidator<A>, environ: Environ) {
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    if let Ok(body) = app.call(environ, &mut state.start_response(&mut wire)) {
        let _ = drive_async(body, &mut state, &mut wire);
    }
}

/// Runs `probe` behind a validator in a correct loop over `environ`.
fn correct_loop<A: AsyncApplication>(probe: A, environ: Environ) -> Run {
    let reports = reports();
    let app = AsyncValidator::new(probe, reports.clone());
    serve(&app, environ);
    Ok(seen(app, &reports))
}

/// An asynchronous server that forgets the capabilities. RGIA-CAP-1.
fn no_capabilities() -> Run {
    correct_loop(two_chunks(), built(request(Method::GET).build())?)
}

/// Puts one capability set in the `ServerInfo` and another in the
/// request. First filed as breaking RGIA-CAP-1 ("exactly one"); the clause
/// itself says a value inserted into the request's extensions "overrides
/// the server-wide value for that request", so `Capabilities::of` finds
/// exactly one and this is a correct, unusual server (issue 11 review).
fn two_capability_sets() -> Run {
    let server = Arc::new(
        ServerInfo::new("example.org", 80)
            .map_err(|e| e.to_string())?
            .with_extension(capabilities()),
    );
    correct_loop(
        two_chunks(),
        built(
            request(Method::GET)
                .server_info(server)
                .extension(capabilities())
                .build(),
        )?,
    )
}

/// Polls once more after `Ready(None)`. RGIA-POLL-6.
fn polls_after_end() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(two_chunks(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    while let Poll::Ready(Some(Ok(Step::Chunk(c)))) =
        poll_step(body.as_mut(), &waker, &mut state, &mut wire)
    {
        let _ = state.send_chunk(&mut wire, c);
    }
    let _ = poll_step(body.as_mut(), &waker, &mut state, &mut wire);
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Keeps polling the body after it yielded a switch, then runs the
/// continuation. RGIA-POLL-6.
fn polls_after_switch() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(switcher(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    if let Poll::Ready(Some(Ok(Step::Switch(switch)))) =
        poll_step(body.as_mut(), &waker, &mut state, &mut wire)
    {
        let _ = poll_step(body.as_mut(), &waker, &mut state, &mut wire);
        drop(body);
        run_switch_on_worker(switch, &mut state, &mut wire);
    }
    Ok(seen(app, &reports))
}

fn run_switch_on_worker(switch: SyncSwitch, state: &mut ResponseState, wire: &mut Wire) {
    std::thread::scope(|scope| {
        let _ = scope
            .spawn(|| {
                if let Ok(mut sync_body) = switch.run(&mut state.start_response(wire)) {
                    let _ = pull_all(sync_body.as_mut(), state, wire);
                }
                let _ = state.finish(wire);
            })
            .join();
    });
}

/// `mem::forget`s the body after the end (its drop was "slow").
/// RGIA-POLL-7.
fn never_drops_body() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(two_chunks(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    while let Poll::Ready(Some(Ok(Step::Chunk(c)))) =
        poll_step(body.as_mut(), &waker, &mut state, &mut wire)
    {
        let _ = state.send_chunk(&mut wire, c);
    }
    let _ = state.finish(&mut wire);
    std::mem::forget(body);
    Ok(seen(app, &reports))
}

/// Runs the continuation on the loop thread that polled the body.
/// RGIA-SWITCH-3.
fn continuation_on_loop_thread() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(switcher(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    if let Poll::Ready(Some(Ok(Step::Switch(switch)))) =
        poll_step(body.as_mut(), &waker, &mut state, &mut wire)
    {
        drop(body);
        if let Ok(mut sync_body) = switch.run(&mut state.start_response(&mut wire)) {
            let _ = pull_all(sync_body.as_mut(), &mut state, &mut wire);
        }
        let _ = state.finish(&mut wire);
    }
    Ok(seen(app, &reports))
}

/// Runs the continuation on a worker while the asynchronous body is still
/// alive, and drops it afterwards. RGIA-SWITCH-2.
fn continuation_before_drop() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(switcher(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    if let Poll::Ready(Some(Ok(Step::Switch(switch)))) =
        poll_step(body.as_mut(), &waker, &mut state, &mut wire)
    {
        run_switch_on_worker(switch, &mut state, &mut wire);
        drop(body);
    }
    Ok(seen(app, &reports))
}

/// Gives the continuation a handle over a fresh `ResponseState`.
/// RGIA-SWITCH-4.
fn fresh_state_for_continuation() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut n = 0;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    n += 1;
                    match n {
                        1 => chunk(b"before "),
                        2 => Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|_start| {
                            Ok(Bytes::from_static(b"after"))
                        }))))),
                        _ => Poll::Ready(None),
                    }
                },
            ))
        }),
        reports.clone(),
    );
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    loop {
        match poll_step(body.as_mut(), &waker, &mut state, &mut wire) {
            Poll::Ready(Some(Ok(Step::Chunk(c)))) => {
                let _ = state.send_chunk(&mut wire, c);
            }
            Poll::Ready(Some(Ok(Step::Switch(switch)))) => {
                drop(body);
                let mut fresh = ResponseState::new(&Method::GET);
                run_switch_on_worker(switch, &mut fresh, &mut wire);
                break;
            }
            _ => break,
        }
    }
    Ok(seen(app, &reports))
}

/// Polls again only on a 1.5 s housekeeping tick, not when woken.
/// RGIA-POLL-3.
fn wake_honoured_late() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(offloader(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    for _ in 0..4 {
        match poll_step(body.as_mut(), &waker, &mut state, &mut wire) {
            Poll::Pending => std::thread::sleep(Duration::from_millis(1500)),
            Poll::Ready(Some(Ok(Step::Chunk(c)))) => {
                let _ = state.send_chunk(&mut wire, c);
            }
            _ => break,
        }
    }
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Polls in a tight loop after `Pending` instead of waiting for the
/// wake-up. RGIA-POLL-4.
fn busy_polls() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(offloader(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        match poll_step(body.as_mut(), &waker, &mut state, &mut wire) {
            Poll::Pending => std::hint::spin_loop(),
            Poll::Ready(Some(Ok(Step::Chunk(c)))) => {
                let _ = state.send_chunk(&mut wire, c);
            }
            _ => break,
        }
    }
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Lends each poll a handle over a fresh `ResponseState`. RGIA-POLL-1.
fn fresh_state_per_poll() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(
        rgi_async::from_fn(|_e: Environ, _start| {
            let mut n = 0;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, s: &mut StartResponse<'_>| {
                    n += 1;
                    match n {
                        1 => Step::ready(s.start(ok()).map(|()| Bytes::from_static(b"one "))),
                        2 => chunk(b"two"),
                        _ => Poll::Ready(None),
                    }
                },
            ))
        }),
        reports.clone(),
    );
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    loop {
        let mut fresh = ResponseState::new(&Method::GET);
        match poll_step(body.as_mut(), &waker, &mut fresh, &mut wire) {
            Poll::Ready(Some(Ok(Step::Chunk(c)))) => {
                let _ = state.send_chunk(&mut wire, c);
            }
            _ => break,
        }
    }
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Polls for the next step before handing the previous chunk over.
/// RGIA-OUT-1.
fn polls_before_sending() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(two_chunks(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    let mut held = Vec::new();
    while let Poll::Ready(Some(Ok(Step::Chunk(c)))) =
        poll_step(body.as_mut(), &waker, &mut state, &mut wire)
    {
        held.push(c);
    }
    for c in held {
        let _ = state.send_chunk(&mut wire, c);
    }
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Gives an asynchronous application an input over a blocking reader.
/// RGIA-INPUT-1.
fn blocking_input() -> Run {
    let (pipe, mut writer) = std::io::pipe().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let _ = std::io::Write::write_all(&mut writer, b"abcd");
    });
    correct_loop(
        reader(),
        built(
            request(Method::POST)
                .header(header::CONTENT_LENGTH, HeaderValue::from_static("4"))
                .input(Input::new(pipe, Some(4)))
                .extension(capabilities())
                .build(),
        )?,
    )
}

struct Greedy(Option<Bytes>);

impl rgi::AsyncSource for Greedy {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _max: usize,
    ) -> Poll<std::io::Result<Bytes>> {
        // Hands over the whole frame it has, whatever was asked.
        Poll::Ready(Ok(self.0.take().unwrap_or_default()))
    }
}

/// Its source returns more bytes than `max`. RGIA-INPUT-2.
fn source_overdelivers() -> Run {
    correct_loop(
        reader(),
        built(
            request(Method::POST)
                .input(Input::from_async(
                    Greedy(Some(Bytes::from_static(b"0123456789"))),
                    None,
                ))
                .extension(capabilities())
                .build(),
        )?,
    )
}

struct Forgetful(bool);

impl rgi::AsyncSource for Forgetful {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _max: usize,
    ) -> Poll<std::io::Result<Bytes>> {
        // The first poll finds nothing and arranges no wake-up.
        if std::mem::replace(&mut self.0, true) {
            Poll::Ready(Ok(Bytes::new()))
        } else {
            Poll::Pending
        }
    }
}

/// Its source returns `Pending` without arranging a wake-up.
/// RGIA-INPUT-2.
fn source_pending_without_wake() -> Run {
    correct_loop(
        reader(),
        built(
            request(Method::POST)
                .input(Input::from_async(Forgetful(false), None))
                .extension(capabilities())
                .build(),
        )?,
    )
}

struct RunsOnCaller;

impl OffloadService for RunsOnCaller {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        // "Small jobs are cheaper inline."
        job.run();
        Ok(())
    }
}

/// Its offload service runs jobs on the calling (loop) thread.
/// RGIA-OFFLOAD-1.
fn offload_on_caller() -> Run {
    let caps = Capabilities::builder(Offload::new(RunsOnCaller)).build();
    correct_loop(
        offloader(),
        built(request(Method::GET).extension(caps).build())?,
    )
}

struct WaitsForCapacity;

impl OffloadService for WaitsForCapacity {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        // Waits for a "free worker" instead of refusing.
        std::thread::sleep(Duration::from_millis(400));
        ThreadPerJob.execute(job)
    }
}

/// Its `execute` blocks while it waits for capacity. RGIA-OFFLOAD-2.
fn offload_waits_for_capacity() -> Run {
    let caps = Capabilities::builder(Offload::new(WaitsForCapacity)).build();
    correct_loop(
        offloader(),
        built(request(Method::GET).extension(caps).build())?,
    )
}

struct RunsInSpawn;

impl AfterResponseService for RunsInSpawn {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        task();
        Ok(())
    }
}

/// Runs after-response tasks inside `spawn`. RGIA-AFTER-4.
fn after_task_in_spawn() -> Run {
    let caps = Capabilities::builder(Offload::new(ThreadPerJob))
        .after_response(AfterResponse::new(RunsInSpawn))
        .build();
    correct_loop(
        after_spawner(),
        built(request(Method::GET).extension(caps).build())?,
    )
}

struct StartsAtOnce;

impl AfterResponseService for StartsAtOnce {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        std::thread::spawn(task);
        Ok(())
    }
}

/// Starts after-response tasks at once on a thread, before the response
/// is complete. RGIA-AFTER-1.
fn after_task_before_response() -> Run {
    let caps = Capabilities::builder(Offload::new(ThreadPerJob))
        .after_response(AfterResponse::new(StartsAtOnce))
        .build();
    correct_loop(
        after_spawner(),
        built(request(Method::GET).extension(caps).build())?,
    )
}

#[derive(Default)]
struct Queue(std::sync::Mutex<Vec<AfterTask>>);

struct SharedQueue(Arc<Queue>);

impl AfterResponseService for SharedQueue {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        self.0
            .0
            .lock()
            .map_err(|_| AfterError::ShutDown)?
            .push(task);
        Ok(())
    }
}

/// Queues after-response tasks correctly, then runs them on the loop
/// thread once the response is complete. RGIA-AFTER-2.
fn after_task_on_loop_thread() -> Run {
    let queue = Arc::new(Queue::default());
    let caps = Capabilities::builder(Offload::new(ThreadPerJob))
        .after_response(AfterResponse::new(SharedQueue(Arc::clone(&queue))))
        .build();
    let reports = reports();
    let app = AsyncValidator::new(after_spawner(), reports.clone());
    serve(&app, built(request(Method::GET).extension(caps).build())?);
    let tasks = std::mem::take(&mut *queue.0.lock().map_err(|_| "poisoned")?);
    for task in tasks {
        task();
    }
    Ok(seen(app, &reports))
}

struct NeverUpgrades;

impl UpgradeService for NeverUpgrades {
    fn accept(&self, _headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        Err(UpgradeError::AlreadyAccepted)
    }
}

/// Offers the upgrade capability on a request without `Upgrade`.
/// RGIA-UPGRADE-1.
fn upgrade_on_plain_request() -> Run {
    let caps = Capabilities::builder(Offload::new(ThreadPerJob))
        .upgrade(Upgrade::new(NeverUpgrades))
        .build();
    correct_loop(
        upgrade_checker(),
        built(request(Method::GET).extension(caps).build())?,
    )
}

/// Claims a newer RGI-async than exists in its capabilities (1.2 when the
/// corpus was frozen; 1.3 since the spec became 1.2). RGIA-VER-1.
fn claims_newer_spec() -> Run {
    let caps = Capabilities::builder(Offload::new(ThreadPerJob))
        .spec_version(SpecVersion::new(1, 3))
        .build();
    correct_loop(
        two_chunks(),
        built(request(Method::GET).extension(caps).build())?,
    )
}

/// Drops a switch unrun ("not implemented") and answers 500.
/// RGIA-CAP-4.
fn refuses_switch() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(switcher(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    let step: StepPoll = poll_step(body.as_mut(), &waker, &mut state, &mut wire);
    drop(body);
    drop(step);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Leaves `Transfer-Encoding` in the environ of an asynchronous request.
/// RGI-HDR-4.
fn leaves_transfer_encoding() -> Run {
    let mut environ = built(
        request(Method::POST)
            .input(Input::from_bytes(Bytes::from_static(b"abc")))
            .extension(capabilities())
            .build(),
    )?;
    environ.headers_mut().insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    correct_loop(reader(), environ)
}

/// Treats every step like `Pending`: waits for a wake-up after a chunk,
/// and gives up after 2 s without one. RGIA-POLL-2.
fn waits_for_wake_after_chunk() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(two_chunks(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    loop {
        match poll_step(body.as_mut(), &waker, &mut state, &mut wire) {
            Poll::Ready(Some(Ok(Step::Chunk(c)))) => {
                let _ = state.send_chunk(&mut wire, c);
                if !flag.wait(Duration::from_secs(2)) {
                    break;
                }
            }
            Poll::Pending => {
                if !flag.wait(Duration::from_secs(2)) {
                    break;
                }
            }
            _ => break,
        }
    }
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Runs the continuation on a worker but never pulls the synchronous body
/// it returns ("the continuation did the work"). RGIA-SWITCH-5.
fn ignores_continuation_body() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(switcher(), reports.clone());
    let environ = get()?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let (_flag, waker) = Flag::new();
    let mut body = Box::pin(body);
    if let Poll::Ready(Some(Ok(Step::Switch(switch)))) =
        poll_step(body.as_mut(), &waker, &mut state, &mut wire)
    {
        drop(body);
        std::thread::scope(|scope| {
            let _ = scope
                .spawn(|| {
                    let sync_body = switch.run(&mut state.start_response(&mut wire));
                    drop(sync_body);
                    let _ = state.finish(&mut wire);
                })
                .join();
        });
    }
    Ok(seen(app, &reports))
}

/// Retries a failed `call` with a rebuilt environ for the same request
/// and the same response state. RGIA-APP-1.
fn retries_failed_call() -> Run {
    let reports = reports();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = AsyncValidator::new(
        rgi_async::from_fn(move |_e: Environ, start| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
                return Err("cold cache".into());
            }
            start.start(ok())?;
            Ok(Bytes::from_static(b"warm"))
        }),
        reports.clone(),
    );
    let mut state = ResponseState::new(&Method::GET);
    let mut wire = Wire::default();
    for _ in 0..2 {
        if let Ok(body) = app.call(get()?, &mut state.start_response(&mut wire)) {
            let _ = drive_async(body, &mut state, &mut wire);
            break;
        }
    }
    Ok(seen(app, &reports))
}

/// Declares tokio in its capabilities while polling outside any tokio
/// context. RGIA-RT-1.
fn declares_runtime_without_context() -> Run {
    let caps = Capabilities::builder(Offload::new(ThreadPerJob))
        .runtime(rgi_async::Runtime::Tokio)
        .build();
    correct_loop(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            caps.require_runtime(rgi_async::Runtime::Tokio)?;
            start.start(ok())?;
            Ok(Bytes::from_static(b"would use tokio::net here"))
        }),
        built(request(Method::GET).extension(caps).build())?,
    )
}

struct Impatient;

impl ReadinessService for Impatient {
    fn wait<'a>(
        &self,
        _source: Source<'a>,
        _interest: Interest,
        _timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        // Reports a timeout at the first poll, whatever the timeout.
        Box::pin(std::future::ready(Ok(WaitOutcome::TimedOut)))
    }

    fn wait_any<'a>(
        &self,
        _sources: Vec<(Source<'a>, Interest)>,
        _timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        Box::pin(std::future::ready(Ok(WaitAnyOutcome::TimedOut)))
    }
}

/// Its readiness service resolves every wait as timed out at once.
/// RGIA-READY-7.
fn readiness_times_out_at_once() -> Run {
    let caps = Capabilities::builder(Offload::new(ThreadPerJob))
        .readiness(Readiness::new(Impatient))
        .build();
    correct_loop(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let readiness = caps.readiness().ok_or("no readiness")?.clone();
            let (pipe, mut writer) = std::io::pipe()?;
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                let _ = std::io::Write::write_all(&mut writer, b"x");
            });
            // The wait borrows the descriptor for its whole life; the probe
            // gives it a 'static owner by leaking one pipe end per request.
            let pipe: &'static std::io::PipeReader = Box::leak(Box::new(pipe));
            let mut wait =
                Some(readiness.wait(pipe, Interest::READABLE, Some(Duration::from_secs(2))));
            start.start(ok())?;
            Ok(AsyncScript::new(
                move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    let Some(w) = wait.as_mut() else {
                        return Poll::Ready(None);
                    };
                    match w.as_mut().poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(outcome) => {
                            wait = None;
                            Step::ready(outcome.map(|o| Bytes::from(format!("{o:?}"))))
                        }
                    }
                },
            ))
        }),
        built(request(Method::GET).extension(caps).build())?,
    )
}

struct Deaf;

impl ReadinessService for Deaf {
    fn wait<'a>(
        &self,
        _source: Source<'a>,
        _interest: Interest,
        _timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        // Registers nothing, so nothing ever wakes the wait.
        Box::pin(std::future::pending())
    }

    fn wait_any<'a>(
        &self,
        _sources: Vec<(Source<'a>, Interest)>,
        _timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        Box::pin(std::future::pending())
    }
}

/// Its readiness service never resolves a wait, not even a pipe that has
/// data, nor on timeout. RGIA-READY-1.
fn readiness_never_resolves() -> Run {
    let caps = Capabilities::builder(Offload::new(ThreadPerJob))
        .readiness(Readiness::new(Deaf))
        .build();
    correct_loop(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let readiness = caps.readiness().ok_or("no readiness")?.clone();
            let (pipe, mut writer) = std::io::pipe()?;
            std::io::Write::write_all(&mut writer, b"x")?;
            let pipe: &'static std::io::PipeReader = Box::leak(Box::new(pipe));
            let mut wait =
                Some(readiness.wait(pipe, Interest::READABLE, Some(Duration::from_millis(500))));
            start.start(ok())?;
            Ok(AsyncScript::new(
                move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    let _ = &writer;
                    let Some(w) = wait.as_mut() else {
                        return Poll::Ready(None);
                    };
                    match w.as_mut().poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(outcome) => {
                            wait = None;
                            Step::ready(outcome.map(|o| Bytes::from(format!("{o:?}"))))
                        }
                    }
                },
            ))
        }),
        built(request(Method::GET).extension(caps).build())?,
    )
}
