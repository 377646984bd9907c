//! The asynchronous validator stays silent for well-behaved asynchronous
//! applications on a well-behaved server: streaming with offload, the
//! switch to synchronous processing, a synchronous application through
//! `rgi_async::Threaded`, readiness waits on real descriptors,
//! after-response tasks, input that really makes the body wait, HEAD and
//! an accepted upgrade. (Each check's broken example runs in
//! `validate_sync.rs`, which owns the table.)
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, reason = "the broken examples are run by validate_sync.rs")]
mod support_validate;

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rgi::{AsyncSource, Environ, Input, InputUse, StartResponse};
use rgi_async::{
    AfterResponse, AsyncApplication, AsyncBody, Capabilities, Interest, OffloadFuture, Readiness,
    Source, Step, SyncSwitch, Threaded, Upgrade, UpgradeError, UpgradeFuture, UpgradeService,
    WaitAnyOutcome, WaitOutcome,
};
use rgi_conformance::rt::{AfterQueue, PollerReadiness, Recorder, serve_async};
use rgi_conformance::validate::{AsyncValidator, Validator};

use support_validate::common::{
    AsyncSteps, TaskBody, async_environ, build, capabilities, collect, environ, text,
    text_with_length,
};

/// Serves `app` and asserts the validator stayed silent; returns the wire.
fn clean<A: AsyncApplication>(app: A, environ: Environ) -> Recorder {
    let reports = collect();
    let validator = AsyncValidator::new(app, reports.clone());
    let mut wire = Recorder::new();
    let served = serve_async(&validator, environ, &mut wire);
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
    assert!(served.outcome.is_complete(), "{:?}", served.outcome);
    wire
}

#[test]
fn streaming_with_offload_is_clean() {
    let app = rgi_async::from_fn(|environ: Environ, _start| {
        let offload = Capabilities::of(&environ).unwrap().offload().clone();
        let mut job: Option<OffloadFuture<u64>> = Some(offload.run(|| {
            thread::sleep(Duration::from_millis(5));
            6 * 7
        }));
        let mut left = 3;
        Ok(AsyncSteps(
            0,
            move |_, cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
                if let Some(pending) = job.as_mut() {
                    let answer = match Pin::new(pending).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(answer) => answer,
                    };
                    job = None;
                    let answer = match answer {
                        Ok(answer) => answer,
                        Err(error) => return Poll::Ready(Some(Err(error.into()))),
                    };
                    if let Err(error) = start.start(text(StatusCode::OK)) {
                        return Poll::Ready(Some(Err(error.into())));
                    }
                    return Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(format!("{answer}\n"))))));
                }
                if left == 0 {
                    return Poll::Ready(None);
                }
                left -= 1;
                Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"tick\n")))))
            },
        ))
    });
    let wire = clean(app, build(async_environ()));
    assert_eq!(wire.body(), b"42\ntick\ntick\ntick\n");
}

/// Hands out its bytes two at a time.
struct Trickle(Bytes);

impl AsyncSource for Trickle {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let take = max.min(2).min(self.0.len());
        Poll::Ready(Ok(self.0.split_to(take)))
    }
}

#[test]
fn an_upload_checked_asynchronously_then_stored_after_the_switch_is_clean() {
    let app = rgi_async::from_fn(|environ: Environ, _start| {
        let mut input = Some(environ.into_input());
        let mut prefix = Vec::new();
        Ok(AsyncSteps(
            0,
            move |_, cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                let Some(reading) = input.as_mut() else {
                    return Poll::Ready(None);
                };
                while prefix.len() < 5 {
                    match reading.poll_chunk(cx, 5 - prefix.len()) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                        Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                        Poll::Ready(Ok(chunk)) => prefix.extend_from_slice(&chunk),
                    }
                }
                let mut rest_of = input.take().unwrap();
                let prefix = std::mem::take(&mut prefix);
                Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |start| {
                    let mut rest = Vec::new();
                    rest_of.read_to_end(&mut rest)?; // blocking, on a worker thread
                    let stored = format!("{} + {}", String::from_utf8_lossy(&prefix), rest.len());
                    start.start(text(StatusCode::CREATED))?;
                    Ok(Bytes::from(stored))
                })))))
            },
        ))
    });
    let environ = build(
        async_environ()
            .method(Method::POST)
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("11"))
            .input(Input::from_async(
                Trickle(Bytes::from_static(b"hello world")),
                Some(11),
            )),
    );
    let wire = clean(app, environ);
    assert_eq!(wire.heads()[0].status(), StatusCode::CREATED);
    assert_eq!(wire.body(), b"hello + 6");
}

#[test]
fn a_synchronous_application_through_threaded_is_clean_on_both_sides() {
    let inner_reports = collect();
    let sync_app = rgi::from_fn(|mut environ: Environ, start| {
        let body = environ.input_mut().read_to_bytes(1024)?;
        start.start(text(StatusCode::OK))?;
        start.write("echo: ")?;
        Ok(rgi::from_iter([body, Bytes::from_static(b"\n")]))
    })
    .with_hints(rgi::Hints::default().with_input(InputUse::Whole));
    let app = Threaded::new(Validator::new(sync_app, inner_reports.clone()));
    let environ = build(
        async_environ()
            .method(Method::POST)
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("4"))
            .input(Input::from_bytes("ping")),
    );
    let wire = clean(app, environ);
    assert_eq!(wire.body(), b"echo: ping\n");
    assert!(inner_reports.is_empty(), "{:?}", inner_reports.all());
}

#[test]
fn readiness_waits_on_a_real_pipe_are_clean() {
    let app = rgi_async::from_fn(|environ: Environ, _start| {
        let readiness = Capabilities::of(&environ)
            .and_then(Capabilities::readiness)
            .unwrap()
            .clone();
        let (mut reader, mut writer) = io::pipe()?;
        writer.write_all(b"ready")?;
        Ok(TaskBody::new(async move {
            let outcome = readiness
                .wait(&reader, Interest::READABLE, Some(Duration::from_secs(5)))
                .await?;
            assert!(matches!(outcome, WaitOutcome::Ready(ready) if ready.is_readable()));
            let any = readiness
                .wait_any(
                    [
                        (Source::from(&writer), Interest::WRITABLE),
                        (Source::from(&reader), Interest::READABLE),
                    ],
                    Some(Duration::from_secs(5)),
                )
                .await?;
            assert!(matches!(any, WaitAnyOutcome::Ready(ref list) if !list.is_empty()));
            let mut got = [0; 5];
            reader.read_exact(&mut got)?;
            // An empty wait_any is a timer: it times out, never early.
            let begun = Instant::now();
            let timer = readiness
                .wait_any(std::iter::empty(), Some(Duration::from_millis(20)))
                .await?;
            assert_eq!(timer, WaitAnyOutcome::TimedOut);
            assert!(begun.elapsed() >= Duration::from_millis(20));
            drop(writer);
            Ok(())
        }))
    });
    let readiness = Readiness::new(PollerReadiness::new().unwrap());
    let environ = build(environ().extension(capabilities().readiness(readiness).build()));
    let wire = clean(app, environ);
    assert_eq!(wire.heads()[0].status(), StatusCode::NO_CONTENT);
}

#[test]
fn an_after_response_task_run_after_the_response_is_clean() {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let app = rgi_async::from_fn(move |environ: Environ, start| {
        let after = Capabilities::of(&environ)
            .and_then(Capabilities::after_response)
            .unwrap()
            .clone();
        let flag = Arc::clone(&flag);
        after.spawn(move || flag.store(true, Ordering::SeqCst))?;
        start.start(text_with_length(StatusCode::OK, 4))?;
        Ok(Bytes::from_static(b"done"))
    });
    let queue = AfterQueue::new();
    let environ = build(
        environ().extension(
            capabilities()
                .after_response(AfterResponse::new(queue.clone()))
                .build(),
        ),
    );
    let reports = collect();
    let validator = AsyncValidator::new(app, reports.clone());
    assert!(
        serve_async(&validator, environ, &mut Recorder::new())
            .outcome
            .is_complete()
    );
    queue.run().unwrap().join().unwrap();
    assert!(ran.load(Ordering::SeqCst));
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

/// Delivers its body after a wake-up from another thread, which wakes the
/// waker of the latest poll (RGIA-INPUT-2: each `Pending` arranges to wake
/// the waker it was given).
struct Late {
    body: Bytes,
    ready: Arc<AtomicBool>,
    asked: bool,
    waker: Arc<std::sync::Mutex<Option<std::task::Waker>>>,
}

impl AsyncSource for Late {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        if !self.ready.load(Ordering::SeqCst) {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if !self.asked {
                self.asked = true;
                let ready = Arc::clone(&self.ready);
                let waker = Arc::clone(&self.waker);
                thread::spawn(move || {
                    thread::sleep(Duration::from_millis(10));
                    ready.store(true, Ordering::SeqCst);
                    if let Some(waker) = waker.lock().unwrap().take() {
                        waker.wake();
                    }
                });
            }
            return Poll::Pending;
        }
        let take = max.min(self.body.len());
        Poll::Ready(Ok(self.body.split_to(take)))
    }
}

#[test]
fn a_body_waiting_for_its_input_is_clean() {
    let app = rgi_async::from_fn(|environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        let mut input = environ.into_input();
        Ok(AsyncSteps(
            0,
            move |_, cx: &mut Context<'_>, _start: &mut StartResponse<'_>| match input
                .poll_chunk(cx, 64)
            {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => Poll::Ready(None),
                Poll::Ready(Ok(chunk)) => Poll::Ready(Some(Ok(Step::Chunk(chunk)))),
            },
        ))
    });
    let environ = build(
        async_environ()
            .method(Method::POST)
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("4"))
            .input(Input::from_async(
                Late {
                    body: Bytes::from_static(b"late"),
                    ready: Arc::default(),
                    asked: false,
                    waker: Arc::default(),
                },
                Some(4),
            )),
    );
    assert_eq!(clean(app, environ).body(), b"late");
}

#[test]
fn head_and_bodiless_responses_are_clean() {
    let app = rgi_async::from_fn(|environ: Environ, start| {
        if environ.raw_path() == "/gone" {
            start.start(rgi::ResponseHead::new(StatusCode::NO_CONTENT))?;
            return Ok(Bytes::new());
        }
        start.start(text_with_length(StatusCode::OK, 5))?;
        Ok(Bytes::from_static(b"hello"))
    });
    let wire = clean(app, build(async_environ().method(Method::HEAD)));
    assert!(wire.body().is_empty());
    clean(
        rgi_async::from_fn(|_environ: Environ, start| {
            start.start(rgi::ResponseHead::new(StatusCode::NO_CONTENT))?;
            Ok(Bytes::new())
        }),
        build(async_environ()),
    );
}

/// Accepts every upgrade and counts them; the hand-over fails.
struct Counting(Arc<AtomicUsize>);

impl UpgradeService for Counting {
    fn accept(&self, _headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Box::pin(std::future::ready(Err(UpgradeError::Closed))))
    }
}

#[test]
fn an_upgrade_accepted_before_any_output_is_clean() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let app = rgi_async::from_fn(|environ: Environ, _start| {
        let upgrade = Capabilities::of(&environ)
            .and_then(Capabilities::upgrade)
            .ok_or("no upgrade")?
            .clone();
        let mut upgraded = upgrade.accept(HeaderMap::new())?;
        Ok(AsyncSteps(
            0,
            move |_, cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                // Nothing HTTP from here on: the body only drives the stream.
                // The fake has no connection, so the hand-over fails; end.
                match Pin::new(&mut upgraded).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(_) => Poll::Ready(None),
                }
            },
        ))
    });
    let environ = build(
        environ()
            .header(header::UPGRADE, HeaderValue::from_static("websocket"))
            .header(
                header::CONNECTION,
                HeaderValue::from_static("keep-alive, Upgrade"),
            )
            .extension(
                capabilities()
                    .upgrade(Upgrade::new(Counting(Arc::clone(&accepted))))
                    .build(),
            ),
    );
    let reports = collect();
    let validator = AsyncValidator::new(app, reports.clone());
    let _ = serve_async(&validator, environ, &mut Recorder::new());
    drop(validator);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

#[test]
fn the_async_panic_policy_names_the_clause_of_a_must_and_only_warns_on_a_should_not() {
    let validator = AsyncValidator::panicking(rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        // RGIA-APP-9 is a SHOULD NOT: a warning, no panic.
        start.write("pushed")?;
        // RGI-START-7 is a MUST: the panic.
        let _ = start.start(text(StatusCode::OK));
        Ok(Bytes::new())
    }));
    let mut state = rgi::ResponseState::new(&Method::GET);
    let mut sink = Recorder::new();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = validator.call(build(async_environ()), &mut state.start_response(&mut sink));
    }));
    let message = caught
        .expect_err("starting twice in an asynchronous call panics")
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("[RGI-START-7]"), "{message}");
    assert_eq!(validator.reports().clauses(), ["RGIA-APP-9", "RGI-START-7"]);
    assert_eq!(validator.reports().warnings()[0].clause(), "RGIA-APP-9");
}

/// Wakes nobody; a distinct waker per poll.
struct Quiet;

impl std::task::Wake for Quiet {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn a_server_that_polls_with_a_new_waker_each_time_is_clean() {
    let reports = collect();
    let validator = AsyncValidator::new(
        rgi_async::from_fn(|_environ: Environ, start| {
            start.start(text(StatusCode::OK))?;
            let mut kept: Option<std::task::Waker> = None;
            Ok(AsyncSteps(
                0,
                move |step, cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                    if step < 3 {
                        // Waiting: keep the latest waker, as APP-5 asks.
                        kept = Some(cx.waker().clone());
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    drop(kept.take());
                    Poll::Ready(None)
                },
            ))
        }),
        reports.clone(),
    );
    let mut state = rgi::ResponseState::new(&Method::GET);
    let mut sink = Recorder::new();
    let mut body = validator
        .call(build(async_environ()), &mut state.start_response(&mut sink))
        .unwrap();
    for _ in 0..4 {
        let waker = std::task::Waker::from(Arc::new(Quiet));
        let mut cx = Context::from_waker(&waker);
        let step = Pin::new(&mut body).poll_step(&mut cx, &mut state.start_response(&mut sink));
        if step.is_ready() {
            break;
        }
    }
    drop(body);
    state.finish(&mut sink).unwrap();
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
}

/// An application written as an `async fn` (`rgi_async::from_async_fn`):
/// offload, a streamed body and the head it built pass the validator.
#[test]
fn an_async_fn_application_is_clean() {
    async fn answer(environ: Environ, response: rgi_async::Responder) -> Result<(), rgi::BoxError> {
        let offload = Capabilities::of(&environ)
            .ok_or("needs an asynchronous server")?
            .offload()
            .clone();
        let answer = offload.run(|| 6 * 7).await?;
        response.append_header("content-type", "text/plain")?;
        for part in ["the answer ", "is ", &answer.to_string()] {
            response.send(part.to_owned()).await;
        }
        Ok(())
    }
    let wire = clean(
        rgi_async::from_async_fn(answer),
        async_environ().build().unwrap(),
    );
    assert_eq!(wire.heads()[0].status(), StatusCode::OK);
    assert_eq!(wire.body(), b"the answer is 42");
}

/// Server-wide capabilities (`ServerInfo::with_extension`, RGIA-CAP-1)
/// satisfy the validator like per-request ones.
#[test]
fn server_wide_capabilities_are_clean() {
    let server = Arc::new(
        rgi::ServerInfo::new("example.org", 80)
            .unwrap()
            .with_extension(capabilities().build()),
    );
    let app = rgi_async::from_fn(|environ: Environ, start| {
        let offload = Capabilities::of(&environ)
            .ok_or("no capabilities")?
            .offload()
            .clone();
        start.start(text(StatusCode::OK))?;
        Ok(TaskBody::new(async move {
            let _answer = offload.run(|| 6 * 7).await?;
            Ok(())
        }))
    });
    let environ = build(environ().server_info(server));
    assert!(environ.extensions().get::<Capabilities>().is_none());
    clean(app, environ);
}

/// Runs each job inside `execute`, on the caller's thread.
struct RunsInline;

impl rgi_async::OffloadService for RunsInline {
    fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
        job.run();
        Ok(())
    }
}

/// The validator wraps server-wide handles as it wraps per-request ones
/// (its own per-request value overrides the server's), so a server-wide
/// offload that runs jobs on the loop thread is still caught.
#[test]
fn server_wide_offload_is_watched() {
    let server = Arc::new(
        rgi::ServerInfo::new("example.org", 80)
            .unwrap()
            .with_extension(Capabilities::builder(rgi_async::Offload::new(RunsInline)).build()),
    );
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
    let reports = collect();
    let validator = AsyncValidator::new(app, reports.clone());
    let mut wire = Recorder::new();
    let _served = serve_async(&validator, build(environ().server_info(server)), &mut wire);
    drop(validator);
    let clauses = reports.clauses();
    assert!(
        clauses
            .iter()
            .any(|clause| clause.starts_with("RGIA-OFFLOAD")),
        "{:?}",
        reports.all()
    );
}
