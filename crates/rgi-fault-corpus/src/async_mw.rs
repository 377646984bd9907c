//! Broken asynchronous middleware and adapters, run between the
//! asynchronous test client and a validated inner application.

#![allow(
    clippy::mem_forget,
    reason = "the mistakes are the point of this module"
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rgi::{
    Application, Body, BoxError, Environ, Input, ResponseHead, ResponseSink, ResponseState,
    ServerInfo, StartResponse,
};
use rgi_async::{
    AfterError, AfterResponse, AfterResponseService, AfterTask, AsyncApplication, AsyncBody,
    Capabilities, Job, Offload, OffloadError, OffloadFuture, OffloadService, Step, SyncSwitch,
};
use rgi_conformance::client::TestRequest;
use rgi_conformance::{Side, Violation};

use crate::support::{AsyncScript, ThreadPerJob, adapter_mw, async_mw, broken, chunk, ok};
use crate::{Component, Interface, Kind};

type Run = Result<Vec<Violation>, String>;
type StepPoll = Poll<Option<Result<Step, BoxError>>>;

fn mw(name: &'static str, clause: &'static str, side: Side, run: fn() -> Run) -> Component {
    broken(name, Kind::Middleware, Interface::Async, clause, side, run)
}

pub(crate) fn components() -> Vec<Component> {
    use Side::{Application as App, Server};
    vec![
        mw(
            "async_mw/pending_becomes_empty_chunk",
            "RGIA-COMP-9",
            App,
            pending_becomes_empty_chunk,
        ),
        mw(
            "async_mw/own_pending_without_cause",
            "RGIA-COMP-9",
            App,
            own_pending_without_cause,
        ),
        mw(
            "async_mw/loops_over_inner_steps",
            "RGIA-COMP-10",
            App,
            loops_over_inner_steps,
        ),
        mw(
            "async_mw/runs_continuation_itself",
            "RGIA-COMP-11",
            App,
            runs_continuation_itself,
        ),
        mw(
            "async_mw/hides_capabilities",
            "RGIA-CAP-10",
            Server,
            hides_capabilities,
        ),
        mw(
            "async_mw/hollow_offload",
            "RGIA-CAP-5",
            Server,
            hollow_offload,
        ),
        mw(
            "async_mw/offload_on_caller",
            "RGIA-OFFLOAD-1",
            Server,
            offload_on_caller,
        ),
        mw(
            "async_mw/after_task_in_spawn",
            "RGIA-AFTER-4",
            Server,
            after_task_in_spawn,
        ),
        mw(
            "async_mw/swallows_error_after_head",
            "RGI-MW-9",
            App,
            swallows_error_after_head,
        ),
        mw(
            "async_mw/forgets_inner_body",
            "RGIA-COMP-12",
            Server,
            forgets_inner_body,
        ),
        mw(
            "async_mw/polls_inner_after_end",
            "RGIA-POLL-6",
            Server,
            polls_inner_after_end,
        ),
        mw("async_mw/blocks_in_call", "RGIA-APP-2", App, blocks_in_call),
        mw(
            "async_mw/reads_body_ahead_unbounded",
            "RGIA-INPUT-10",
            Server,
            reads_body_ahead_unbounded,
        ),
        mw(
            "adapter/unbounded_queue",
            "RGI-BODY-4",
            Server,
            unbounded_queue,
        ),
        mw(
            "adapter/runs_app_on_loop_thread",
            "RGI-HINT-5",
            Server,
            runs_app_on_loop_thread,
        ),
    ]
}

/// Inner application: waits 100 ms for an offload job, then answers.
fn waits_for_job() -> impl AsyncApplication {
    rgi_async::from_fn(|e: Environ, start| {
        let caps = Capabilities::of(&e).ok_or("no capabilities")?;
        let mut job: Option<OffloadFuture<()>> = Some(
            caps.offload()
                .run(|| std::thread::sleep(Duration::from_millis(100))),
        );
        start.start(ok())?;
        Ok(AsyncScript::new(
            move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                let Some(fut) = job.as_mut() else {
                    return Poll::Ready(None);
                };
                match Pin::new(fut).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(result) => {
                        job = None;
                        Step::ready(result.map(|()| Bytes::from_static(b"done")))
                    }
                }
            },
        ))
    })
}

/// Inner application: empty chunks around its data.
fn sparse() -> impl AsyncApplication {
    rgi_async::from_fn(|_e: Environ, start| {
        start.start(ok())?;
        let mut n = 0;
        Ok(AsyncScript::new(
            move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                n += 1;
                match n {
                    1 | 2 => chunk(b""),
                    3 => chunk(b"data"),
                    _ => Poll::Ready(None),
                }
            },
        ))
    })
}

/// Inner application: switches to synchronous processing at once.
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
                    Ok(Bytes::from_static(b"sync part"))
                })))))
            },
        ))
    })
}

/// Inner application: uses offload if it can, degrades otherwise.
fn degrading() -> impl AsyncApplication {
    rgi_async::from_fn(|e: Environ, start| {
        start.start(ok())?;
        Ok(Bytes::from(if Capabilities::of(&e).is_some() {
            "full"
        } else {
            "degraded"
        }))
    })
}

/// Inner application: one chunk, then a failure after the head.
fn fails_midway() -> impl AsyncApplication {
    rgi_async::from_fn(|_e: Environ, start| {
        start.start(ok())?;
        let mut n = 0;
        Ok(AsyncScript::new(
            move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                n += 1;
                if n == 1 {
                    chunk(b"partial")
                } else {
                    Poll::Ready(Some(Err("upstream reset".into())))
                }
            },
        ))
    })
}

/// Inner application: two chunks.
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

/// Inner application: echoes its body, read through the non-blocking face.
fn echo() -> impl AsyncApplication {
    rgi_async::from_fn(|e: Environ, start| {
        start.start(ok())?;
        let mut input = e.into_input();
        Ok(AsyncScript::new(
            move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| match input.poll_chunk(cx, 1024)
            {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(bytes)) if bytes.is_empty() => Poll::Ready(None),
                Poll::Ready(Ok(bytes)) => Poll::Ready(Some(Ok(Step::Chunk(bytes)))),
                Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err.into()))),
            },
        ))
    })
}

/// An inner body, pinned and type-erased.
type Inner = Pin<Box<dyn AsyncBody>>;

fn call_inner<A: AsyncApplication>(
    app: &A,
    e: Environ,
    start: &mut StartResponse<'_>,
) -> Result<Inner, BoxError> {
    app.call(e, start).map(|b| Box::pin(b) as Inner)
}

/// A middleware whose body is `poll` over the inner body.
struct Layer<A, F> {
    inner: A,
    poll: F,
}

struct LayerBody<B, F> {
    inner: Option<B>,
    poll: F,
}

impl<A, F> AsyncApplication for Layer<A, F>
where
    A: AsyncApplication,
    F: Fn(&mut Option<Inner>, &mut Context<'_>, &mut StartResponse<'_>) -> StepPoll
        + Clone
        + Send
        + Sync
        + Unpin
        + 'static,
{
    type Body = LayerBody<Inner, F>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        Ok(LayerBody {
            inner: Some(call_inner(&self.inner, e, start)?),
            poll: self.poll.clone(),
        })
    }
}

impl<B, F> AsyncBody for LayerBody<B, F>
where
    B: Send + Unpin,
    F: Fn(&mut Option<B>, &mut Context<'_>, &mut StartResponse<'_>) -> StepPoll + Send + Unpin,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> StepPoll {
        let this = self.get_mut();
        (this.poll)(&mut this.inner, cx, start)
    }
}

fn poll_inner(
    inner: &mut Option<Inner>,
    cx: &mut Context<'_>,
    start: &mut StartResponse<'_>,
) -> StepPoll {
    match inner.as_mut() {
        Some(body) => body.as_mut().poll_step(cx, start),
        None => Poll::Ready(None),
    }
}

/// Turns the inner `Pending` into an empty chunk ("never stall the
/// connection"). RGIA-COMP-9.
fn pending_becomes_empty_chunk() -> Run {
    async_mw(
        waits_for_job(),
        |inner| Layer {
            inner,
            poll: |b: &mut Option<Inner>, cx: &mut Context<'_>, s: &mut StartResponse<'_>| {
                match poll_inner(b, cx, s) {
                    Poll::Pending => chunk(b""),
                    other => other,
                }
            },
        },
        TestRequest::get("/"),
    )
}

/// Returns `Pending` on its first poll to "let others run", without any
/// inner `Pending` and without waking. RGIA-COMP-9.
fn own_pending_without_cause() -> Run {
    let yielded = Arc::new(Mutex::new(false));
    async_mw(
        two_chunks(),
        move |inner| Layer {
            inner,
            poll: move |b: &mut Option<Inner>, cx: &mut Context<'_>, s: &mut StartResponse<'_>| {
                let mut done = yielded
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !std::mem::replace(&mut *done, true) {
                    return Poll::Pending;
                }
                drop(done);
                poll_inner(b, cx, s)
            },
        },
        TestRequest::get("/"),
    )
}

/// Polls the inner body in a loop until it gets data, swallowing empty
/// chunks. RGIA-COMP-10.
fn loops_over_inner_steps() -> Run {
    async_mw(
        sparse(),
        |inner| Layer {
            inner,
            poll: |b: &mut Option<Inner>, cx: &mut Context<'_>, s: &mut StartResponse<'_>| loop {
                match poll_inner(b, cx, s) {
                    Poll::Ready(Some(Ok(Step::Chunk(c)))) if c.is_empty() => continue,
                    other => return other,
                }
            },
        },
        TestRequest::get("/"),
    )
}

/// Runs the inner switch's continuation itself, on the loop thread, and
/// streams the synchronous body. RGIA-COMP-11.
fn runs_continuation_itself() -> Run {
    let sync_body: Arc<Mutex<Option<Box<dyn Body>>>> = Arc::new(Mutex::new(None));
    async_mw(
        switcher(),
        move |inner| Layer {
            inner,
            poll: move |b: &mut Option<Inner>, cx: &mut Context<'_>, s: &mut StartResponse<'_>| {
                let mut slot = sync_body
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(body) = slot.as_mut() {
                    return match body.next_chunk(s) {
                        Some(Ok(c)) => Poll::Ready(Some(Ok(Step::Chunk(c)))),
                        Some(Err(e)) => Poll::Ready(Some(Err(e))),
                        None => {
                            *slot = None;
                            Poll::Ready(None)
                        }
                    };
                }
                match poll_inner(b, cx, s) {
                    Poll::Ready(Some(Ok(Step::Switch(switch)))) => {
                        *b = None;
                        match switch.run(s) {
                            Ok(body) => {
                                *slot = Some(body);
                                chunk(b"")
                            }
                            Err(e) => Poll::Ready(Some(Err(e))),
                        }
                    }
                    other => other,
                }
            },
        },
        TestRequest::get("/"),
    )
}

/// An environ rewriter.
struct Rewrite<A, F> {
    inner: A,
    rewrite: F,
}

impl<A, F> AsyncApplication for Rewrite<A, F>
where
    A: AsyncApplication,
    F: Fn(Environ) -> Result<Environ, BoxError> + Send + Sync + 'static,
{
    type Body = A::Body;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        self.inner.call((self.rewrite)(e)?, start)
    }
}

/// Rebuilds the environ with a `ServerInfo` of its own and removes the
/// request's capabilities (a "sanitising" layer). RGIA-CAP-10.
fn hides_capabilities() -> Run {
    async_mw(
        degrading(),
        |inner| Rewrite {
            inner,
            rewrite: |mut e: Environ| {
                e.extensions_mut().remove::<Capabilities>();
                let connection = Arc::clone(e.connection());
                let server = Arc::new(ServerInfo::new(
                    e.server_name().to_owned(),
                    e.server_port(),
                )?);
                let (parts, input) = e.into_parts();
                Ok(Environ::from_parts(parts, input, &server, &connection)?)
            },
        },
        TestRequest::get("/"),
    )
}

/// Replaces the capabilities: `f` builds the set it installs.
fn replace_capabilities(e: Environ, caps: Capabilities) -> Result<Environ, BoxError> {
    let mut e = e;
    e.extensions_mut().remove::<Capabilities>();
    let connection = Arc::clone(e.connection());
    let server = Arc::new(ServerInfo::new(
        e.server_name().to_owned(),
        e.server_port(),
    )?);
    let (parts, input) = e.into_parts();
    let mut e = Environ::from_parts(parts, input, &server, &connection)?;
    e.extensions_mut().insert(caps);
    Ok(e)
}

struct Refuses;

impl OffloadService for Refuses {
    fn execute(&self, _job: Job) -> Result<(), OffloadError> {
        // A placeholder pool nobody finished.
        Err(OffloadError::Saturated { capacity: 0 })
    }
}

/// Hands the inner application an offload whose service refuses every
/// job. RGIA-CAP-5.
fn hollow_offload() -> Run {
    async_mw(
        waits_for_job(),
        |inner| Rewrite {
            inner,
            rewrite: |e: Environ| {
                replace_capabilities(e, Capabilities::builder(Offload::new(Refuses)).build())
            },
        },
        TestRequest::get("/"),
    )
}

struct RunsOnCaller;

impl OffloadService for RunsOnCaller {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        job.run();
        Ok(())
    }
}

/// Wraps offload with a service that runs jobs on the calling thread.
/// RGIA-OFFLOAD-1.
fn offload_on_caller() -> Run {
    async_mw(
        waits_for_job(),
        |inner| Rewrite {
            inner,
            rewrite: |e: Environ| {
                replace_capabilities(e, Capabilities::builder(Offload::new(RunsOnCaller)).build())
            },
        },
        TestRequest::get("/"),
    )
}

struct RunsNow;

impl AfterResponseService for RunsNow {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        task();
        Ok(())
    }
}

/// Wraps after-response with a service that runs the task inside
/// `spawn`. RGIA-AFTER-4.
fn after_task_in_spawn() -> Run {
    async_mw(
        rgi_async::from_fn(|e: Environ, start| {
            if let Some(after) = Capabilities::of(&e).and_then(Capabilities::after_response) {
                after.spawn(|| std::thread::sleep(Duration::from_millis(20)))?;
            }
            start.start(ok())?;
            Ok(Bytes::from_static(b"queued"))
        }),
        |inner| Rewrite {
            inner,
            rewrite: |e: Environ| {
                replace_capabilities(
                    e,
                    Capabilities::builder(Offload::new(ThreadPerJob))
                        .after_response(AfterResponse::new(RunsNow))
                        .build(),
                )
            },
        },
        TestRequest::get("/"),
    )
}

/// Ends normally when the inner body fails after the head. RGI-MW-9
/// (RGIA-COMP-12 carries it over to polling).
fn swallows_error_after_head() -> Run {
    async_mw(
        fails_midway(),
        |inner| Layer {
            inner,
            poll: |b: &mut Option<Inner>, cx: &mut Context<'_>, s: &mut StartResponse<'_>| {
                match poll_inner(b, cx, s) {
                    Poll::Ready(Some(Err(_))) if s.is_head_sent() => Poll::Ready(None),
                    other => other,
                }
            },
        },
        TestRequest::get("/"),
    )
}

/// `mem::forget`s the inner body once it has ended. RGIA-COMP-12.
fn forgets_inner_body() -> Run {
    async_mw(
        two_chunks(),
        |inner| Layer {
            inner,
            poll: |b: &mut Option<Inner>, cx: &mut Context<'_>, s: &mut StartResponse<'_>| {
                let step = poll_inner(b, cx, s);
                if matches!(step, Poll::Ready(None)) {
                    std::mem::forget(b.take());
                }
                step
            },
        },
        TestRequest::get("/"),
    )
}

/// Polls the inner body again after `Ready(None)` ("is it really
/// done?"). RGIA-POLL-6.
fn polls_inner_after_end() -> Run {
    async_mw(
        two_chunks(),
        |inner| Layer {
            inner,
            poll: |b: &mut Option<Inner>, cx: &mut Context<'_>, s: &mut StartResponse<'_>| {
                match poll_inner(b, cx, s) {
                    Poll::Ready(None) => poll_inner(b, cx, s),
                    other => other,
                }
            },
        },
        TestRequest::get("/"),
    )
}

/// Checks a token against a slow service with a blocking call in `call`.
/// RGIA-APP-2.
fn blocks_in_call() -> Run {
    async_mw(
        two_chunks(),
        |inner| Rewrite {
            inner,
            rewrite: |e: Environ| {
                std::thread::sleep(Duration::from_millis(500));
                Ok(e)
            },
        },
        TestRequest::get("/"),
    )
}

/// Buffers the whole request body, without a bound, before calling the
/// inner application (from its first poll).
struct BufferRequest<A>(Arc<A>);

#[allow(clippy::large_enum_variant, reason = "one per request, short-lived")]
enum Buffering<A: AsyncApplication> {
    Reading {
        environ: Option<Environ>,
        input: Input,
        got: BytesMut,
        app: Arc<A>,
    },
    Inner(Inner),
}

impl<A: AsyncApplication> AsyncApplication for BufferRequest<A> {
    type Body = Buffering<A>;

    fn call(&self, mut e: Environ, _start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        let input = e.replace_input(Input::empty());
        Ok(Buffering::Reading {
            environ: Some(e),
            input,
            got: BytesMut::new(),
            app: Arc::clone(&self.0),
        })
    }
}

impl<A: AsyncApplication> AsyncBody for Buffering<A> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> StepPoll {
        let this = self.get_mut();
        loop {
            match this {
                Buffering::Inner(body) => return body.as_mut().poll_step(cx, start),
                Buffering::Reading {
                    environ,
                    input,
                    got,
                    app,
                } => match input.poll_chunk(cx, 1 << 16) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    Poll::Ready(Ok(bytes)) if !bytes.is_empty() => got.extend_from_slice(&bytes),
                    Poll::Ready(Ok(_)) => {
                        let Some(mut e) = environ.take() else {
                            return Poll::Ready(None);
                        };
                        e.replace_input(Input::from_bytes(std::mem::take(got).freeze()));
                        match call_inner(&**app, e, start) {
                            Ok(body) => *this = Buffering::Inner(body),
                            Err(err) => return Poll::Ready(Some(Err(err))),
                        }
                    }
                },
            }
        }
    }
}

/// Reads the whole request body ahead, unbounded, before the inner
/// application sees any of it. RGIA-INPUT-10 (as the inner app's server).
fn reads_body_ahead_unbounded() -> Run {
    async_mw(
        echo(),
        |inner| BufferRequest(Arc::new(inner)),
        TestRequest::post("/", "").chunked(["a", "bc", "def", "ghij"]),
    )
}

enum Message {
    Head(ResponseHead),
    Data(Bytes),
    Failed(String),
    End,
}

/// The relay of a hand-written threaded adapter: an unbounded channel.
struct Relay {
    tx: mpsc::Sender<Message>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Relay {
    fn send(&self, message: Message) {
        let _ = self.tx.send(message);
        if let Some(w) = self
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            w.wake();
        }
    }
}

impl ResponseSink for Relay {
    fn send_head(&mut self, head: ResponseHead) -> std::io::Result<()> {
        Relay::send(self, Message::Head(head));
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> std::io::Result<()> {
        Relay::send(self, Message::Data(data));
        Ok(())
    }
}

/// A hand-written threaded adapter whose worker relays through an
/// unbounded queue.
struct Unbounded<A>(Arc<A>);

struct Receiving {
    rx: Mutex<mpsc::Receiver<Message>>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl<A: Application> AsyncApplication for Unbounded<A> {
    type Body = Receiving;

    fn call(&self, e: Environ, _start: &mut StartResponse<'_>) -> Result<Receiving, BoxError> {
        let (tx, rx) = mpsc::channel();
        let waker = Arc::new(Mutex::new(None));
        let mut relay = Relay {
            tx,
            waker: Arc::clone(&waker),
        };
        let app = Arc::clone(&self.0);
        std::thread::spawn(move || {
            let mut state = ResponseState::new(e.method());
            let outcome =
                app.call(e, &mut state.start_response(&mut relay))
                    .and_then(|mut body| {
                        // Pulls as fast as it can: nothing waits for the client.
                        while let Some(c) = body.next_chunk(&mut state.start_response(&mut relay)) {
                            state.send_chunk(&mut relay, c?)?;
                        }
                        state.finish(&mut relay)?;
                        Ok(())
                    });
            relay.send(match outcome {
                Ok(()) => Message::End,
                Err(e) => Message::Failed(e.to_string()),
            });
        });
        Ok(Receiving {
            rx: Mutex::new(rx),
            waker,
        })
    }
}

impl AsyncBody for Receiving {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> StepPoll {
        *self
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cx.waker().clone());
        let rx = self
            .rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match rx.try_recv() {
            Ok(Message::Head(head)) => Step::ready(start.start(head).map(|()| Bytes::new())),
            Ok(Message::Data(data)) => chunk(b"").map(|_| Some(Ok(Step::Chunk(data)))),
            Ok(Message::Failed(e)) => Poll::Ready(Some(Err(e.into()))),
            Ok(Message::End) | Err(mpsc::TryRecvError::Disconnected) => Poll::Ready(None),
            Err(mpsc::TryRecvError::Empty) => Poll::Pending,
        }
    }
}

/// A synchronous application that streams a large body quickly.
fn big_stream() -> impl Application {
    rgi::from_fn(|_e: Environ, start| {
        start.start(ok())?;
        let mut left = 64;
        Ok(crate::support::Script::new(
            move |_s: &mut StartResponse<'_>| {
                (left > 0).then(|| {
                    left -= 1;
                    Ok(Bytes::from(vec![b'x'; 1024]))
                })
            },
        ))
    })
}

/// A hand-written threaded adapter relays through an unbounded queue, so
/// the worker pulls the synchronous body far ahead of the client.
/// RGI-BODY-4 ("placed in a bounded buffer"), which binds the adapter as
/// the synchronous application's server (RGI-MW-1, RGI-MW-2). RGIA-COMP-5
/// states the one-slot relay for `Threaded` only, so it does not bind a
/// hand-written adapter: the spec has no adapter-specific clause here.
fn unbounded_queue() -> Run {
    adapter_mw(
        big_stream(),
        |inner| Unbounded(Arc::new(inner)),
        TestRequest::get("/"),
    )
}

/// A hand-written adapter that calls and pulls a blocking synchronous
/// application on the loop thread.
struct OnLoop<A>(A);

struct Pulled<B>(Box<B>);

impl<A: Application> AsyncApplication for OnLoop<A> {
    type Body = Pulled<A::Body>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        self.0.call(e, start).map(|b| Pulled(Box::new(b)))
    }
}

impl<B: Body> AsyncBody for Pulled<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> StepPoll {
        match self.get_mut().0.next_chunk(start) {
            Some(Ok(c)) => Poll::Ready(Some(Ok(Step::Chunk(c)))),
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(None),
        }
    }
}

/// A blocking synchronous application (default hints).
fn blocking_sync() -> impl Application {
    rgi::from_fn(|_e: Environ, start| {
        std::thread::sleep(Duration::from_millis(300));
        start.start(ok())?;
        Ok(Bytes::from_static(b"queried the database"))
    })
}

/// Runs a blocking synchronous application's `call` and `next_chunk` on
/// the loop thread. RGI-HINT-5 (as the synchronous app's server).
fn runs_app_on_loop_thread() -> Run {
    adapter_mw(blocking_sync(), OnLoop, TestRequest::get("/"))
}
