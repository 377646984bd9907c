//! One deliberately broken asynchronous server, capability or application
//! per check of the asynchronous side.

use std::fs::File;
use std::future::Future;
use std::io::{self, PipeReader, PipeWriter, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rgi::{AsyncSource, BoxError, Empty, Environ, Input, SpecVersion, StartResponse};
use rgi_async::{
    AfterError, AfterResponse, AfterResponseService, AfterTask, AsyncApplication, AsyncBody,
    Capabilities, Interest, Job, Offload, OffloadError, OffloadService, Readiness, ReadinessError,
    ReadinessService, Ready, Source, Step, SyncSwitch, Upgrade, UpgradeError, UpgradeFuture,
    UpgradeService, WaitAnyFuture, WaitAnyOutcome, WaitFuture, WaitOutcome,
};
use rgi_conformance::Violation;
use rgi_conformance::validate::AsyncValidator;

use super::common::{
    AsyncSteps, Driver, TaskBody, async_environ, build, capabilities, collect, environ,
    serve_asynchronously, text, text_with_length,
};

/// A well-behaved asynchronous application: 200, `text/plain`, "ok".
pub(crate) fn fine() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text_with_length(StatusCode::OK, 2))?;
        Ok(Bytes::from_static(b"ok"))
    })
}

/// An application that serves `path`-dependent bodies: `/wait` stays
/// pending (keeping its waker), anything else is [`fine`].
fn waits_or(
    other: impl Fn(Environ, &mut StartResponse<'_>) -> Result<Step2, BoxError> + Send + Sync + 'static,
) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        if environ.raw_path() == "/wait" {
            return Ok(Step2::Wait(None));
        }
        other(environ, start)
    })
}

/// The bodies of [`waits_or`].
enum Step2 {
    Wait(Option<Waker>),
    Then(Pin<Box<dyn AsyncBody>>),
}

impl AsyncBody for Step2 {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        match self.get_mut() {
            Step2::Wait(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Step2::Then(body) => body.as_mut().poll_step(cx, start),
        }
    }
}

/// A body that stays pending, keeping its waker.
fn waiting() -> impl AsyncBody + Unpin {
    let mut kept: Option<Waker> = None;
    AsyncSteps(
        0,
        move |_, cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
            if !kept
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
            {
                kept = Some(cx.waker().clone());
            }
            Poll::Pending
        },
    )
}

/// Polls `body` to its end with `driver`, then drops it.
fn finish<B: AsyncBody + Unpin>(driver: &mut Driver, body: &mut B) {
    for _ in 0..64 {
        if let Poll::Ready(None | Some(Err(_)) | Some(Ok(Step::Switch(_)))) =
            driver.poll(body, Waker::noop())
        {
            break;
        }
    }
}

// ---- what the server hands in ----

pub(crate) fn capabilities_missing() -> Vec<Violation> {
    serve_asynchronously(fine(), build(environ()))
}

pub(crate) fn capabilities_version() -> Vec<Violation> {
    let capabilities = capabilities().spec_version(SpecVersion::new(2, 0)).build();
    serve_asynchronously(fine(), build(environ().extension(capabilities)))
}

pub(crate) fn async_input_blocking_only() -> Vec<Violation> {
    serve_asynchronously(
        fine(),
        build(
            async_environ()
                .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
                .input(Input::new(&b"abc"[..], Some(3))),
        ),
    )
}

/// An input source that answers `Pending` and forgets the waker.
struct Forgetful;

impl AsyncSource for Forgetful {
    fn poll_chunk(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _max: usize,
    ) -> Poll<io::Result<Bytes>> {
        Poll::Pending
    }
}

pub(crate) fn input_pending_without_wakeup() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(
        rgi_async::from_fn(|environ: Environ, _start| {
            let mut input = environ.into_input();
            Ok(AsyncSteps(
                0,
                move |_, cx: &mut Context<'_>, _start: &mut StartResponse<'_>| match input
                    .poll_chunk(cx, 1024)
                {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error.into()))),
                    Poll::Ready(Ok(_)) => Poll::Ready(None),
                },
            ))
        }),
        reports.clone(),
    );
    let environ = build(
        async_environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("5"))
            .input(Input::from_async(Forgetful, Some(5))),
    );
    let mut driver = Driver::new(&Method::POST);
    let mut body = driver.call_async(&validator, environ).expect("a body");
    let _ = driver.poll(&mut body, Waker::noop());
    drop(body);
    reports.all()
}

// ---- how the server polls ----

pub(crate) fn poll_after_end() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(fine(), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    finish(&mut driver, &mut body);
    let _ = driver.poll(&mut body, Waker::noop());
    drop(body);
    reports.all()
}

pub(crate) fn busy_polling() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(
        rgi_async::from_fn(|_environ: Environ, _start| Ok(waiting())),
        reports.clone(),
    );
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    // Poll in a tight loop until the validator notices (a loaded machine
    // may need more than the minimum number of polls).
    for _ in 0..100_000 {
        let _ = driver.poll(&mut body, Waker::noop());
        if !reports.is_empty() {
            break;
        }
    }
    drop(body);
    reports.all()
}

/// Starts in `call`, then yields "one" and "two".
fn two_chunks() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(AsyncSteps(
            0,
            |step, _cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                Poll::Ready(match step {
                    0 => Some(Ok(Step::Chunk(Bytes::from_static(b"one")))),
                    1 => Some(Ok(Step::Chunk(Bytes::from_static(b"two")))),
                    _ => None,
                })
            },
        ))
    })
}

pub(crate) fn async_chunk_not_sent() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(two_chunks(), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    let _ = driver.poll_unsent(&mut body, Waker::noop());
    let _ = driver.poll(&mut body, Waker::noop());
    drop(body);
    reports.all()
}

pub(crate) fn async_handle_state_lost() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(two_chunks(), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    let mut other = Driver::new(&Method::GET);
    let _ = other.poll(&mut body, Waker::noop());
    drop(body);
    reports.all()
}

pub(crate) fn async_body_kept() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(fine(), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    finish(&mut driver, &mut body);
    drop(validator);
    let violations = reports.all();
    drop(body);
    violations
}

// ---- the switch ----

/// Starts in `call` (when `start_first`), then switches at the first poll
/// to a continuation that answers "ok".
fn switching(start_first: bool) -> impl AsyncApplication {
    rgi_async::from_fn(move |_environ: Environ, start| {
        if start_first {
            start.start(text(StatusCode::OK))?;
        }
        Ok(AsyncSteps(
            0,
            |_, _cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|start| {
                    if !start.is_started() {
                        start.start(text(StatusCode::OK))?;
                    }
                    Ok(Bytes::from_static(b"ok"))
                })))))
            },
        ))
    })
}

/// Polls `body` once, expecting a switch.
fn switch_of<B: AsyncBody + Unpin>(driver: &mut Driver, body: &mut B) -> SyncSwitch {
    let switch = match driver.poll(body, Waker::noop()) {
        Poll::Ready(Some(Ok(Step::Switch(switch)))) => Some(switch),
        _ => None,
    };
    switch.expect("a switch step")
}

pub(crate) fn switch_before_drop() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(switching(false), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    let switch = switch_of(&mut driver, &mut body);
    let sync_body = driver.run_switch(switch); // the asynchronous body is still alive
    drop(body);
    drop(sync_body);
    reports.all()
}

pub(crate) fn switch_on_loop_thread() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(
        waits_or(|_environ, _start| {
            let body: Pin<Box<dyn AsyncBody>> = Box::pin(AsyncSteps(
                0,
                |_, _cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                    Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|start| {
                        start.start(text(StatusCode::OK))?;
                        Ok(Bytes::from_static(b"ok"))
                    })))))
                },
            ));
            Ok(Step2::Then(body))
        }),
        reports.clone(),
    );
    // Request A parks on this thread ...
    let mut first = Driver::new(&Method::GET);
    let mut parked = first
        .call_async(
            &validator,
            build(async_environ().uri(http::Uri::from_static("/wait"))),
        )
        .expect("a body");
    let _ = first.poll(&mut parked, Waker::noop());
    // ... and request B's continuation runs here too.
    let mut second = Driver::new(&Method::GET);
    let mut body = second
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    let switch = switch_of(&mut second, &mut body);
    drop(body);
    let sync_body = second.run_switch(switch);
    drop(sync_body);
    drop(parked);
    reports.all()
}

pub(crate) fn switch_state_lost() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(switching(true), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    let switch = switch_of(&mut driver, &mut body);
    drop(body);
    // The continuation gets a handle over a new, unstarted state (on a
    // worker thread, as RGIA-SWITCH-3 wants).
    let mut other = Driver::new(&Method::GET);
    std::thread::scope(|scope| {
        scope
            .spawn(|| drop(other.run_switch(switch)))
            .join()
            .expect("the worker");
    });
    reports.all()
}

// ---- offload and after-response tasks ----

/// Runs jobs inside `execute`, on the caller's thread.
struct InlineOffload;

impl OffloadService for InlineOffload {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        job.run();
        Ok(())
    }
}

pub(crate) fn offload_on_loop_thread() -> Vec<Violation> {
    let app = rgi_async::from_fn(|environ: Environ, _start| {
        let offload = Capabilities::of(&environ)
            .ok_or("no capabilities")?
            .offload()
            .clone();
        let job = offload.run(|| 6 * 7);
        Ok(TaskBody::new(async move {
            job.await?;
            Ok(())
        }))
    });
    let capabilities = Capabilities::builder(Offload::new(InlineOffload)).build();
    serve_asynchronously(app, build(environ().extension(capabilities)))
}

/// Runs tasks inside `spawn`.
struct InlineAfter;

impl AfterResponseService for InlineAfter {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        task();
        Ok(())
    }
}

/// Runs tasks at once, on a thread of their own.
struct EagerAfter;

impl AfterResponseService for EagerAfter {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        thread::spawn(task);
        Ok(())
    }
}

/// Holds tasks for the test to run where it likes.
#[derive(Clone, Default)]
struct HeldAfter(Arc<Mutex<Vec<AfterTask>>>);

impl AfterResponseService for HeldAfter {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        self.0.lock().expect("not poisoned").push(task);
        Ok(())
    }
}

/// Spawns an after-response task in `call` that sends on `done`.
fn spawns_after(done: mpsc::Sender<()>) -> impl AsyncApplication {
    let done = Mutex::new(done);
    rgi_async::from_fn(move |environ: Environ, start| {
        let after = Capabilities::of(&environ)
            .and_then(Capabilities::after_response)
            .ok_or("no after-response tasks")?
            .clone();
        let done = done.lock().expect("not poisoned").clone();
        after.spawn(move || {
            let _ = done.send(());
        })?;
        start.start(text_with_length(StatusCode::OK, 2))?;
        Ok(Bytes::from_static(b"ok"))
    })
}

pub(crate) fn after_task_inline() -> Vec<Violation> {
    let (done, _) = mpsc::channel();
    let capabilities = capabilities()
        .after_response(AfterResponse::new(InlineAfter))
        .build();
    serve_asynchronously(spawns_after(done), build(environ().extension(capabilities)))
}

pub(crate) fn after_task_early() -> Vec<Violation> {
    let reports = collect();
    let (done, ran) = mpsc::channel();
    let validator = AsyncValidator::new(spawns_after(done), reports.clone());
    let capabilities = capabilities()
        .after_response(AfterResponse::new(EagerAfter))
        .build();
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(environ().extension(capabilities)))
        .expect("a body");
    ran.recv_timeout(Duration::from_secs(5))
        .expect("the task ran");
    finish(&mut driver, &mut body);
    drop(body);
    reports.all()
}

pub(crate) fn after_task_on_loop_thread() -> Vec<Violation> {
    let reports = collect();
    let held = HeldAfter::default();
    let (done, _ran) = mpsc::channel();
    let done = Mutex::new(done);
    let validator = AsyncValidator::new(
        waits_or(move |environ, start| {
            let after = Capabilities::of(&environ)
                .and_then(Capabilities::after_response)
                .ok_or("no after-response tasks")?
                .clone();
            let done = done.lock().expect("not poisoned").clone();
            after.spawn(move || {
                let _ = done.send(());
            })?;
            start.start(StatusCode::NO_CONTENT)?;
            Ok(Step2::Then(Box::pin(Empty)))
        }),
        reports.clone(),
    );
    let environ = || {
        environ().extension(
            capabilities()
                .after_response(AfterResponse::new(held.clone()))
                .build(),
        )
    };
    let mut first = Driver::new(&Method::GET);
    let mut parked = first
        .call_async(
            &validator,
            build(environ().uri(http::Uri::from_static("/wait"))),
        )
        .expect("a body");
    let _ = first.poll(&mut parked, Waker::noop());
    let mut second = Driver::new(&Method::GET);
    let mut body = second
        .call_async(&validator, build(environ()))
        .expect("a body");
    finish(&mut second, &mut body);
    drop(body);
    // The response is complete; its task runs on the thread polling A.
    let tasks = std::mem::take(&mut *held.0.lock().expect("not poisoned"));
    for task in tasks {
        task();
    }
    drop(parked);
    reports.all()
}

// ---- upgrade ----

/// Accepts every upgrade; the hand-over then fails (nothing to hand).
struct AcceptAll;

impl UpgradeService for AcceptAll {
    fn accept(&self, _headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        Ok(Box::pin(std::future::ready(Err(UpgradeError::Closed))))
    }
}

/// A request that asks for a WebSocket upgrade, with the capability.
fn upgrade_environ() -> rgi::EnvironBuilder {
    environ()
        .header(header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(header::CONNECTION, HeaderValue::from_static("Upgrade"))
        .extension(capabilities().upgrade(Upgrade::new(AcceptAll)).build())
}

/// The request's upgrade handle.
fn upgrade_of(environ: &Environ) -> Result<Upgrade, BoxError> {
    Ok(Capabilities::of(environ)
        .and_then(Capabilities::upgrade)
        .ok_or("no upgrade")?
        .clone())
}

pub(crate) fn upgrade_offered_wrongly() -> Vec<Violation> {
    let capabilities = capabilities().upgrade(Upgrade::new(AcceptAll)).build();
    serve_asynchronously(fine(), build(environ().extension(capabilities)))
}

pub(crate) fn upgrade_after_head_sent() -> Vec<Violation> {
    let app = rgi_async::from_fn(|environ: Environ, start| {
        let upgrade = upgrade_of(&environ)?;
        start.start(text(StatusCode::OK))?;
        Ok(AsyncSteps(
            0,
            move |step, _cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                Poll::Ready(match step {
                    0 => Some(Ok(Step::Chunk(Bytes::from_static(b"hello")))),
                    _ => {
                        let _ = upgrade.accept(HeaderMap::new()); // too late
                        None
                    }
                })
            },
        ))
    });
    serve_asynchronously(app, build(upgrade_environ()))
}

pub(crate) fn http_after_upgrade() -> Vec<Violation> {
    let app = rgi_async::from_fn(|environ: Environ, _start| {
        let upgraded = upgrade_of(&environ)?.accept(HeaderMap::new())?;
        drop(upgraded);
        Ok(Bytes::from_static(b"HTTP body on an upgraded connection"))
    });
    serve_asynchronously(app, build(upgrade_environ()))
}

pub(crate) fn upgrade_from_sync_code() -> Vec<Violation> {
    let app = rgi_async::from_fn(|environ: Environ, _start| {
        let upgrade = upgrade_of(&environ)?;
        let mut upgrade = Some(upgrade);
        Ok(AsyncSteps(
            0,
            move |_, _cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                let Some(upgrade) = upgrade.take() else {
                    return Poll::Ready(None);
                };
                Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |_start| {
                    let upgraded = upgrade.accept(HeaderMap::new())?;
                    drop(upgraded);
                    Ok(Empty)
                })))))
            },
        ))
    });
    serve_asynchronously(app, build(upgrade_environ()))
}

// ---- readiness ----

/// What the fake readiness service answers.
#[derive(Clone, Copy)]
enum Fake {
    Ready(Ready),
    TimedOut,
    Unpollable,
    Unsupported,
    Never,
    Panic,
    Index(usize),
}

struct FakeReadiness(Fake);

fn answer<'a, T: Send + 'a>(
    fake: Fake,
    fd: i32,
    outcome: impl FnOnce() -> T + Send + 'a,
) -> Pin<Box<dyn Future<Output = Result<T, ReadinessError>> + Send + 'a>> {
    match fake {
        Fake::Unpollable => Box::pin(std::future::ready(Err(ReadinessError::Unpollable {
            fd,
            reason: "refused by the fake".to_owned(),
        }))),
        Fake::Unsupported => Box::pin(std::future::ready(Err(ReadinessError::Io(
            io::Error::from(io::ErrorKind::Unsupported),
        )))),
        Fake::Never => {
            let mut kept: Option<Waker> = None;
            Box::pin(std::future::poll_fn(move |cx| {
                if !kept
                    .as_ref()
                    .is_some_and(|waker| waker.will_wake(cx.waker()))
                {
                    kept = Some(cx.waker().clone());
                }
                Poll::Pending
            }))
        }
        #[allow(clippy::panic, reason = "the broken server under test")]
        Fake::Panic => Box::pin(std::future::poll_fn(|_cx| panic!("the poller is broken"))),
        Fake::Ready(_) | Fake::TimedOut | Fake::Index(_) => {
            Box::pin(std::future::ready(Ok(outcome())))
        }
    }
}

impl ReadinessService for FakeReadiness {
    fn wait<'a>(
        &self,
        source: Source<'a>,
        _interest: Interest,
        _timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        let fake = self.0;
        answer(fake, source.as_raw(), move || match fake {
            Fake::Ready(ready) => WaitOutcome::Ready(ready),
            _ => WaitOutcome::TimedOut,
        })
    }

    fn wait_any<'a>(
        &self,
        sources: Vec<(Source<'a>, Interest)>,
        _timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        let fake = self.0;
        let fd = sources.first().map_or(-1, |(source, _)| source.as_raw());
        answer(fake, fd, move || match fake {
            Fake::Ready(ready) => WaitAnyOutcome::Ready(vec![(0, ready)]),
            Fake::Index(index) => WaitAnyOutcome::Ready(vec![(index, Ready::READABLE)]),
            _ => WaitAnyOutcome::TimedOut,
        })
    }
}

/// A descriptor to wait on.
enum Target {
    /// A regular file.
    File(File),
    /// The reading end of a pipe, and the writing end, kept open.
    Pipe(
        PipeReader,
        #[allow(dead_code, reason = "held open for the wait")] PipeWriter,
    ),
}

impl Target {
    fn file() -> Result<Target, BoxError> {
        Ok(Target::File(File::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/Cargo.toml"
        ))?))
    }

    fn pipe() -> Result<Target, BoxError> {
        let (reader, writer) = io::pipe()?;
        Ok(Target::Pipe(reader, writer))
    }
}

impl AsFd for Target {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Target::File(file) => file.as_fd(),
            Target::Pipe(reader, _) => reader.as_fd(),
        }
    }
}

/// An application that waits once (`any`: through `wait_any`) on a
/// fresh `target`, then answers 204.
fn waits(
    target: fn() -> Result<Target, BoxError>,
    timeout: Option<Duration>,
    any: bool,
) -> impl AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, _start| {
        let readiness = Capabilities::of(&environ)
            .and_then(Capabilities::readiness)
            .ok_or("no readiness")?
            .clone();
        let target = target()?;
        Ok(TaskBody::new(async move {
            if any {
                let _ = readiness
                    .wait_any([(Source::from(&target), Interest::READABLE)], timeout)
                    .await;
            } else {
                let _ = readiness.wait(&target, Interest::READABLE, timeout).await;
            }
            drop(target);
            Ok(())
        }))
    })
}

fn readiness_environ(fake: Fake) -> Environ {
    build(
        environ().extension(
            capabilities()
                .readiness(Readiness::new(FakeReadiness(fake)))
                .build(),
        ),
    )
}

pub(crate) fn readiness_ready_for_file() -> Vec<Violation> {
    serve_asynchronously(
        waits(Target::file, None, false),
        readiness_environ(Fake::Ready(Ready::READABLE)),
    )
}

pub(crate) fn readiness_refused_pollable() -> Vec<Violation> {
    serve_asynchronously(
        waits(Target::pipe, None, false),
        readiness_environ(Fake::Unpollable),
    )
}

pub(crate) fn readiness_ready_set_wrong() -> Vec<Violation> {
    serve_asynchronously(
        waits(Target::pipe, None, false),
        readiness_environ(Fake::Ready(Ready::WRITABLE)),
    )
}

pub(crate) fn readiness_zero_timeout_pending() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(
        waits(Target::pipe, Some(Duration::ZERO), false),
        reports.clone(),
    );
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, readiness_environ(Fake::Never))
        .expect("a body");
    let _ = driver.poll(&mut body, Waker::noop());
    drop(body);
    reports.all()
}

pub(crate) fn readiness_timed_out_early() -> Vec<Violation> {
    serve_asynchronously(
        waits(Target::pipe, Some(Duration::from_secs(60)), false),
        readiness_environ(Fake::TimedOut),
    )
}

pub(crate) fn wait_any_outcome_invalid() -> Vec<Violation> {
    serve_asynchronously(
        waits(Target::pipe, None, true),
        readiness_environ(Fake::Index(3)),
    )
}

pub(crate) fn readiness_panicked() -> Vec<Violation> {
    serve_asynchronously(
        waits(Target::pipe, None, false),
        readiness_environ(Fake::Panic),
    )
}

pub(crate) fn hollow_capability() -> Vec<Violation> {
    serve_asynchronously(
        waits(Target::pipe, None, false),
        readiness_environ(Fake::Unsupported),
    )
}

// ---- what the application does ----

pub(crate) fn pending_without_wakeup() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(
        rgi_async::from_fn(|_environ: Environ, _start| {
            Ok(AsyncSteps(
                0,
                |_, _cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                    Poll::Pending // and nobody will ever wake it
                },
            ))
        }),
        reports.clone(),
    );
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    let _ = driver.poll(&mut body, Waker::noop());
    drop(body);
    reports.all()
}

pub(crate) fn blocking_read_on_loop_thread() -> Vec<Violation> {
    let app = rgi_async::from_fn(|mut environ: Environ, start| {
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?; // blocks the loop thread
        start.start(text(StatusCode::OK))?;
        Ok(body)
    });
    serve_asynchronously(
        app,
        build(
            async_environ()
                .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
                .input(Input::from_bytes("abc")),
        ),
    )
}

pub(crate) fn write_in_async_context() -> Vec<Violation> {
    let app = rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        start.write("pushed")?;
        Ok(Empty)
    });
    serve_asynchronously(app, build(async_environ()))
}

/// An asynchronous body that promises `hint` bytes and yields "hello"
/// (or switches, when `switch`).
struct Promising {
    hint: u64,
    switch: bool,
    done: bool,
}

impl AsyncBody for Promising {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if std::mem::replace(&mut this.done, true) {
            return Poll::Ready(None);
        }
        if this.switch {
            return Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|_start| {
                Ok(Bytes::from_static(b"hello"))
            })))));
        }
        Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"hello")))))
    }

    fn size_hint(&self) -> Option<u64> {
        Some(self.hint)
    }
}

fn promising(hint: u64, switch: bool) -> Vec<Violation> {
    let app = rgi_async::from_fn(move |_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Promising {
            hint,
            switch,
            done: false,
        })
    });
    serve_asynchronously(app, build(async_environ()))
}

pub(crate) fn async_size_hint_overrun() -> Vec<Violation> {
    promising(1, false)
}

pub(crate) fn async_size_hint_shortfall() -> Vec<Violation> {
    promising(10, false)
}

pub(crate) fn size_hint_before_switch() -> Vec<Violation> {
    promising(5, true)
}

pub(crate) fn async_state_reused() -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(fine(), reports.clone());
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    finish(&mut driver, &mut body);
    drop(body);
    let _ = driver.call_async(&validator, build(async_environ()));
    drop(validator);
    reports.all()
}

/// A server waker that panics when woken.
struct Exploding;

impl std::task::Wake for Exploding {
    fn wake(self: Arc<Self>) {
        #[allow(clippy::panic, reason = "the broken server under test")]
        {
            panic!("the event loop is gone");
        }
    }
}

pub(crate) fn waker_panicked() -> Vec<Violation> {
    let reports = collect();
    let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
    let slot = Arc::clone(&kept);
    let validator = AsyncValidator::new(
        rgi_async::from_fn(move |_environ: Environ, _start| {
            let slot = Arc::clone(&slot);
            Ok(AsyncSteps(
                0,
                move |_, cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                    *slot.lock().expect("not poisoned") = Some(cx.waker().clone());
                    Poll::Pending
                },
            ))
        }),
        reports.clone(),
    );
    let mut driver = Driver::new(&Method::GET);
    let mut body = driver
        .call_async(&validator, build(async_environ()))
        .expect("a body");
    let _ = driver.poll(&mut body, &Waker::from(Arc::new(Exploding)));
    drop(body);
    // Another part of the application wakes the request after it ended.
    let waker = kept.lock().expect("not poisoned").take().expect("a waker");
    let woken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
    assert!(woken.is_err());
    reports.all()
}

/// An after-response service that panics.
struct PanickyAfter;

impl AfterResponseService for PanickyAfter {
    fn spawn(&self, _task: AfterTask) -> Result<(), AfterError> {
        #[allow(clippy::panic, reason = "the broken server under test")]
        {
            panic!("the task queue is gone");
        }
    }
}

pub(crate) fn capability_panicked() -> Vec<Violation> {
    let kept: Arc<Mutex<Option<AfterResponse>>> = Arc::default();
    let slot = Arc::clone(&kept);
    let app = rgi_async::from_fn(move |environ: Environ, start| {
        let after = Capabilities::of(&environ)
            .and_then(Capabilities::after_response)
            .ok_or("no after-response tasks")?
            .clone();
        *slot.lock().expect("not poisoned") = Some(after);
        start.start(StatusCode::NO_CONTENT)?;
        Ok(Empty)
    });
    let reports = collect();
    let validator = AsyncValidator::new(app, reports.clone());
    let capabilities = capabilities()
        .after_response(AfterResponse::new(PanickyAfter))
        .build();
    let _ = rgi_conformance::rt::serve_async(
        &validator,
        build(environ().extension(capabilities)),
        &mut rgi_conformance::rt::Recorder::new(),
    );
    // The handle is used after the request has ended.
    let after = kept.lock().expect("not poisoned").take().expect("a handle");
    let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| after.spawn(|| {})));
    assert!(spawned.is_err());
    drop(validator);
    reports.all()
}

pub(crate) fn second_wait_on_a_descriptor() -> Vec<Violation> {
    let app = rgi_async::from_fn(|environ: Environ, _start| {
        let readiness = Capabilities::of(&environ)
            .and_then(Capabilities::readiness)
            .expect("the example lends readiness")
            .clone();
        let (reader, writer) = io::pipe()?;
        Ok(TaskBody::new(async move {
            // The same descriptor twice in one wait: the server refuses it
            // (AlreadyWaited), and the application broke RGIA-READY-20.
            let twice = [
                (Source::from(&reader), Interest::READABLE),
                (Source::from(&reader), Interest::WRITABLE),
            ];
            let _refused = readiness
                .wait_any(twice, Some(Duration::from_millis(50)))
                .await;
            drop(writer);
            Ok(())
        }))
    });
    let poller = rgi_conformance::rt::PollerReadiness::new().expect("a poller");
    serve_asynchronously(
        app,
        build(environ().extension(capabilities().readiness(Readiness::new(poller)).build())),
    )
}
