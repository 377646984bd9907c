//! What the toy puts around an application for one request: for
//! asynchronous applications a guard that lets `stop` end a parked body
//! (`RGI-CONN-5`, `RGIA-TASK-4`), and for the faults the hooks that break
//! their clause where the state machine would otherwise keep the rule.

use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Instant;

use bytes::Bytes;
use http::{StatusCode, header};
use rgi::{
    Application, Body, BoxError, Environ, FileBody, Hints, Intercept, ResponseHead, StartResponse,
};
use rgi_async::{AsyncApplication, AsyncBody, Step, SyncSwitch};

use super::ctx::{Place, RequestCtx};
use super::fault::Fault;
use super::shared::Shared;
use super::shared::lock;
use super::sink::{WireSink, early_hints_bytes};

/// The interception hook of the head and write faults.
struct Hook<'a>(&'a Arc<RequestCtx>);

impl Intercept for Hook<'_> {
    fn on_start(&mut self, head: &mut ResponseHead) {
        let ctx = self.0;
        lock(&ctx.hooks).status = Some(head.status());
        match ctx.fault {
            Some(Fault::SecondStartWins) => {
                lock(&ctx.hooks).latest_head = Some(head.clone());
            }
            Some(Fault::ReplaceAfterHeadSendsHead) => {
                let replacing = std::mem::take(&mut lock(&ctx.hooks).replacing);
                if replacing && lock(&ctx.conn.write).head_sent {
                    let line = format!(
                        "HTTP/1.1 {} {}\r\n\r\n",
                        head.status().as_str(),
                        head.status().canonical_reason().unwrap_or("")
                    );
                    ctx.raw_data(line.as_bytes());
                }
            }
            Some(Fault::SendsHeadEarly) => {
                if lock(&ctx.hooks).early.is_some() || lock(&ctx.conn.write).head_sent {
                    return;
                }
                let mut early = WireSink::new(Arc::clone(ctx));
                if early.write_head(head).is_ok() {
                    lock(&ctx.hooks).early = early.framing();
                }
            }
            Some(Fault::SendsPastContentLength) => {
                lock(&ctx.hooks).declared = head
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|text| text.parse().ok());
            }
            Some(Fault::KeepsFirstHead) => {
                let mut hooks = lock(&ctx.hooks);
                match &hooks.first_head {
                    None => hooks.first_head = Some(head.clone()),
                    Some(first) if hooks.replacing => {
                        *head = first.clone();
                        hooks.replacing = false;
                    }
                    Some(_) => {}
                }
            }
            Some(Fault::HintsPinTheHead) => {
                let mut hooks = lock(&ctx.hooks);
                let replacing = std::mem::take(&mut hooks.replacing);
                match hooks.pinned.clone() {
                    // The fault: the head stored before the hint stays.
                    Some(pinned) if replacing => *head = pinned,
                    _ => hooks.first_head = Some(head.clone()),
                }
            }
            _ => {}
        }
    }

    fn on_early_hints(&mut self, fields: &mut http::HeaderMap) {
        let ctx = self.0;
        match ctx.fault {
            Some(Fault::EarlyHintsAfterHead) if lock(&ctx.conn.write).head_sent => {
                // The fault: the hint goes out although the head went first.
                ctx.raw_data(&early_hints_bytes(fields));
            }
            Some(Fault::HintsPinTheHead) => {
                let mut hooks = lock(&ctx.hooks);
                hooks.pinned = hooks.first_head.clone();
            }
            _ => {}
        }
    }

    fn on_replace(&mut self, _cause: &BoxError) {
        lock(&self.0.hooks).replacing = true;
    }

    fn on_write(&mut self, data: &mut Bytes) {
        let ctx = self.0;
        match ctx.fault {
            Some(Fault::HoldsWrittenData | Fault::ReordersWrittenData) => {
                lock(&ctx.hooks).written.extend_from_slice(data);
                *data = Bytes::new();
            }
            Some(Fault::WriteIgnoresDisconnect) if !data.is_empty() => {
                lock(&ctx.hooks).writing = true;
            }
            _ => {}
        }
    }
}

/// Runs `work`, noting a panic at `place` before letting it go on to the
/// drivers, which contain it.
fn noting_panic<T>(ctx: &RequestCtx, place: Place, work: impl FnOnce() -> T) -> T {
    let since = Instant::now();
    match panic::catch_unwind(AssertUnwindSafe(work)) {
        Ok(value) => value,
        Err(payload) => {
            ctx.panicked(place, since);
            panic::resume_unwind(payload)
        }
    }
}

/// An application with the toy's per-request wrapper around it.
pub(crate) struct Wrapped<A: ?Sized> {
    pub(crate) app: Arc<A>,
    pub(crate) ctx: Arc<RequestCtx>,
}

/// Its body.
pub(crate) struct WrappedBody<B: Send + 'static> {
    inner: Option<B>,
    ctx: Arc<RequestCtx>,
    /// [`Fault::LateWakePanics`]: false once the body has ended.
    alive: Arc<AtomicBool>,
    /// The file faults sent the file already.
    file_sent: bool,
}

impl<B: Send + 'static> WrappedBody<B> {
    fn new(inner: B, ctx: &Arc<RequestCtx>) -> Self {
        WrappedBody {
            inner: Some(inner),
            ctx: Arc::clone(ctx),
            alive: Arc::new(AtomicBool::new(true)),
            file_sent: false,
        }
    }

    /// Drops the inner body now, or keeps it where a fault says.
    fn release(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if self.ctx.acts(Fault::DropsBodyLate) {
            lock(&self.ctx.conn.graveyard).push(Box::new(inner));
            return;
        }
        let server = Arc::clone(&self.ctx.conn.server);
        let watched = self.ctx.fault == Some(Fault::PanicInDropKillsServer);
        if watched {
            server.dropping.fetch_add(1, Ordering::SeqCst);
        }
        let dropped = panic::catch_unwind(AssertUnwindSafe(|| {
            noting_panic(&self.ctx, Place::Drop, || drop(inner));
        }));
        if watched {
            server.dropping.fetch_sub(1, Ordering::SeqCst);
        }
        if let Err(payload) = dropped {
            panic::resume_unwind(payload);
        }
    }
}

impl<B: Send + 'static> Drop for WrappedBody<B> {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
        self.release();
    }
}

impl<A> Application for Wrapped<A>
where
    A: Application + ?Sized,
{
    type Body = WrappedBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let ctx = &self.ctx;
        let call = |environ: Environ, start: &mut StartResponse<'_>| {
            noting_panic(ctx, Place::Call, || {
                if ctx.intercepts() {
                    self.app.call(environ, &mut start.intercept(&mut Hook(ctx)))
                } else {
                    self.app.call(environ, start)
                }
            })
        };
        let body = match call(environ, start) {
            Err(err) => match ctx.retry() {
                // The fault: the same response state, called again.
                Some(again) => call(again, start)?,
                None => return Err(err),
            },
            called => called?,
        };
        if ctx.fault == Some(Fault::RequiresStartInCall) && !start.is_started() {
            drop(body);
            return Err("the application did not start the response in call".into());
        }
        Ok(WrappedBody::new(body, ctx))
    }

    fn hints(&self) -> Hints {
        self.app.hints()
    }
}

/// Reads `file` from `offset` to its end, or `len` bytes, without moving
/// its cursor (the file faults' own "platform transfer").
#[cfg(unix)]
fn read_file(file: &std::fs::File, offset: u64, len: Option<u64>) -> Bytes {
    use std::os::unix::fs::FileExt as _;
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let mut at = offset;
    loop {
        let want = len.map_or(buf.len(), |len| {
            usize::try_from(len.saturating_sub(at - offset))
                .unwrap_or(usize::MAX)
                .min(buf.len())
        });
        match file.read_at(&mut buf[..want], at) {
            Ok(0) | Err(_) => break,
            Ok(count) => {
                out.extend_from_slice(&buf[..count]);
                at += count as u64;
            }
        }
    }
    Bytes::from(out)
}

#[cfg(not(unix))]
fn read_file(_file: &std::fs::File, _offset: u64, _len: Option<u64>) -> Bytes {
    Bytes::new()
}

impl<B: Body + 'static> WrappedBody<B> {
    /// The file faults: on the first pull of a file body, its file goes out
    /// here, wrongly.
    fn file_fault(&mut self) -> Option<Option<Result<Bytes, BoxError>>> {
        let fault = self.ctx.fault?;
        if !matches!(fault, Fault::FileSentTwice | Fault::FileIgnoresRange) {
            return None;
        }
        let first = !std::mem::replace(&mut self.file_sent, true);
        let inner = self.inner.as_mut()?;
        match (fault, first) {
            (Fault::FileIgnoresRange, false) => Some(None),
            (_, false) => None,
            (Fault::FileIgnoresRange, true) => {
                let file = inner.file()?;
                Some(Some(Ok(read_file(FileBody::file(file), 0, None))))
            }
            (_, true) => {
                let file = inner.file()?;
                // No `advance`: the body sends the same bytes again.
                Some(Some(Ok(read_file(
                    FileBody::file(file),
                    file.offset(),
                    file.remaining(),
                ))))
            }
        }
    }
}

impl<B: Body + 'static> Body for WrappedBody<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if let Some(step) = self.file_fault() {
            return step;
        }
        let ctx = Arc::clone(&self.ctx);
        let inner = self.inner.as_mut()?;
        let step = noting_panic(&ctx, Place::Body, || {
            if ctx.intercepts() {
                inner.next_chunk(&mut start.intercept(&mut Hook(&ctx)))
            } else {
                inner.next_chunk(start)
            }
        });
        if ctx.fault == Some(Fault::StartsDefaultHead) && !start.is_started() {
            let output = match &step {
                Some(Ok(chunk)) => !chunk.is_empty(),
                None => true,
                Some(Err(_)) => false,
            };
            if output {
                // The fault: the server makes up the head.
                let _made_up = start.start(ResponseHead::new(StatusCode::OK));
            }
        }
        if let Some(Ok(chunk)) = &step {
            ctx.on_chunk(chunk);
        }
        step
    }

    fn size_hint(&self) -> Option<u64> {
        if self.ctx.fault == Some(Fault::FileSentTwice) {
            // A length declared from the hint would cut the second copy
            // off (RGI-CL-1) and hide the fault from the case that judges
            // the file path; this fault's server declares nothing.
            return None;
        }
        self.inner.as_ref().and_then(Body::size_hint)
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        self.inner.as_mut().and_then(Body::file)
    }
}

impl<A> AsyncApplication for Wrapped<A>
where
    A: AsyncApplication + ?Sized,
{
    type Body = WrappedBody<Pin<Box<A::Body>>>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let ctx = &self.ctx;
        let spare = lock(&ctx.hooks).spare.take();
        if let Some(spare) = spare {
            // The fault: an extra call, whose response goes nowhere.
            let mut state = rgi::ResponseState::new(spare.method());
            let mut nowhere = rgi_conformance::rt::Recorder::new();
            let extra = panic::catch_unwind(AssertUnwindSafe(|| {
                self.app
                    .call(spare, &mut state.start_response(&mut nowhere))
            }));
            drop(extra);
        }
        let mut since = Instant::now();
        let call = |environ: Environ, start: &mut StartResponse<'_>| {
            panic::catch_unwind(AssertUnwindSafe(|| {
                if ctx.intercepts() {
                    self.app.call(environ, &mut start.intercept(&mut Hook(ctx)))
                } else {
                    self.app.call(environ, start)
                }
            }))
        };
        let mut called = call(environ, start);
        if matches!(called, Ok(Err(_))) {
            if let Some(again) = ctx.retry() {
                // The fault: the same response state, called again.
                since = Instant::now();
                called = call(again, start);
            }
        }
        match called {
            Ok(Ok(body)) => Ok(WrappedBody::new(Box::pin(body), ctx)),
            Ok(Err(err)) => {
                lock(&ctx.hooks).call_failed = true;
                Err(err)
            }
            Err(payload) => {
                lock(&ctx.hooks).call_failed = true;
                ctx.panicked(Place::Call, since);
                panic::resume_unwind(payload)
            }
        }
    }
}

/// [`Fault::LateWakePanics`]: a waker that panics once its body ended.
struct Checked {
    alive: Arc<AtomicBool>,
    inner: Waker,
}

impl Wake for Checked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    #[allow(clippy::panic, reason = "the fault is exactly this panic")]
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.alive.load(Ordering::SeqCst) {
            panic!("toy server fault LateWakePanics: a body was woken after it ended");
        }
        self.inner.wake_by_ref();
    }
}

/// The name prefixes of the threads the toy and the kit's runtime start:
/// its connections, workers, helpers and poller.
const SERVER_THREADS: &[&str] = &[
    "toy-",
    "rgi-offload",
    "rgi-switch",
    "rgi-after-response",
    "readiness-poller",
];

/// [`Fault::IgnoresForeignWakeUps`]: a waker that passes on only the
/// wake-ups made on the server's own threads.
struct ServerThreadsOnly(Waker);

impl Wake for ServerThreadsOnly {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let current = thread::current();
        let own = current
            .name()
            .is_some_and(|name| SERVER_THREADS.iter().any(|prefix| name.starts_with(prefix)));
        // The fault: a wake-up from a thread of the application is lost.
        if own {
            self.0.wake_by_ref();
        }
    }
}

impl<B: AsyncBody + ?Sized + 'static> WrappedBody<Pin<Box<B>>> {
    /// The waker the inner body gets: the driver's, unless a fault
    /// changes it.
    fn waker_for(&self, cx: &Context<'_>) -> Waker {
        match self.ctx.fault {
            Some(Fault::LateWakePanics) => Waker::from(Arc::new(Checked {
                alive: Arc::clone(&self.alive),
                inner: cx.waker().clone(),
            })),
            Some(Fault::IgnoresForeignWakeUps) => {
                Waker::from(Arc::new(ServerThreadsOnly(cx.waker().clone())))
            }
            _ => cx.waker().clone(),
        }
    }

    /// The switch faults.
    fn switched(&mut self, switch: SyncSwitch) -> Poll<Option<Result<Step, BoxError>>> {
        let ctx = Arc::clone(&self.ctx);
        let continuation = switch.into_continuation();
        let step = match ctx.fault {
            Some(Fault::IgnoresSwitch) => {
                drop(continuation);
                return Poll::Ready(None);
            }
            Some(Fault::KeepsAsyncBodyDuringSwitch) => {
                let body = self.inner.take();
                SyncSwitch::new(move |start: &mut StartResponse<'_>| {
                    let outcome = continuation(start);
                    drop(body);
                    outcome
                })
            }
            Some(Fault::SwitchForgetsStoredHead) => {
                SyncSwitch::new(move |start: &mut StartResponse<'_>| {
                    if start.is_started() && !start.is_head_sent() {
                        let _forgotten = start.replace(
                            ResponseHead::new(StatusCode::OK),
                            BoxError::from("the toy server forgot the stored head"),
                        );
                    }
                    continuation(start)
                })
            }
            Some(Fault::SwitchFailureIsNot500) => {
                SyncSwitch::new(move |start: &mut StartResponse<'_>| {
                    let outcome =
                        panic::catch_unwind(AssertUnwindSafe(|| continuation(&mut *start)));
                    match outcome {
                        Ok(Ok(body)) => Ok(body),
                        Ok(Err(_)) | Err(_) => {
                            let _covered = start.replace(
                                ResponseHead::new(StatusCode::OK).with_header(
                                    header::CONTENT_LENGTH,
                                    http::HeaderValue::from_static("0"),
                                ),
                                BoxError::from("the toy server hides the failure"),
                            );
                            Ok(Box::new(rgi::Empty) as Box<dyn Body>)
                        }
                    }
                })
            }
            Some(Fault::SwitchRepeatsOutput) => {
                let last = lock(&ctx.hooks).last_chunk.take();
                if let Some(last) = last {
                    ctx.raw_data(&last);
                }
                SyncSwitch::new(continuation)
            }
            Some(Fault::SwitchDropsReadAhead) => {
                lock(&ctx.conn.read).body.skip_next = true;
                SyncSwitch::new(continuation)
            }
            _ => SyncSwitch::new(continuation),
        };
        Poll::Ready(Some(Ok(Step::Switch(step))))
    }
}

impl<B: AsyncBody + ?Sized + 'static> AsyncBody for WrappedBody<Pin<Box<B>>> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if let Some(cancel) = &this.ctx.cancel {
            if cancel.is_cancelled() {
                // Shutdown: the body is dropped here, once, and the
                // response ends as after a failure (RGI-CONN-5).
                let Some(inner) = this.inner.take() else {
                    return Poll::Ready(None);
                };
                if this.ctx.fault == Some(Fault::StopLeavesParkedBodies) {
                    Shared::keep(Box::new(inner));
                } else {
                    drop(inner);
                }
                return Poll::Ready(Some(Err("the server is shutting down".into())));
            }
            cancel.park(cx.waker());
        }
        let waker = this.waker_for(cx);
        let mut inner_cx = Context::from_waker(&waker);
        let ctx = Arc::clone(&this.ctx);
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let step = noting_panic(&ctx, Place::Body, || {
            if ctx.intercepts() {
                inner
                    .as_mut()
                    .poll_step(&mut inner_cx, &mut start.intercept(&mut Hook(&ctx)))
            } else {
                inner.as_mut().poll_step(&mut inner_cx, start)
            }
        });
        if ctx.fault == Some(Fault::PollsAfterEnd) && matches!(step, Poll::Ready(None)) {
            // The fault: one more poll after the end.
            let _again = inner.as_mut().poll_step(&mut inner_cx, start);
        }
        let step = match step {
            Poll::Ready(Some(Ok(Step::Switch(switch)))) => return this.switched(switch),
            other => other,
        };
        match &step {
            Poll::Ready(Some(Ok(Step::Chunk(chunk)))) => ctx.on_chunk(chunk),
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(None) => this.alive.store(false, Ordering::SeqCst),
            Poll::Ready(Some(Err(_))) => this.alive.store(false, Ordering::SeqCst),
            Poll::Pending if ctx.fault == Some(Fault::BusyPolling) => {
                // The fault: poll again at once, without a wake-up.
                cx.waker().wake_by_ref();
            }
            Poll::Pending => {}
        }
        step
    }

    fn size_hint(&self) -> Option<u64> {
        self.inner.as_ref().and_then(AsyncBody::size_hint)
    }
}
