//! What the asynchronous cases share: a server session that is always
//! stopped, a body written as a closure, latches that a body polls and a
//! case opens, logs the probe fills and the case judges, and the mapping of
//! wire errors to failures of a clause.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread, ThreadId};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use rgi::{BoxError, ResponseHead, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Step};

use crate::suite::wire::{Connection, Request, Response, WireError};
use crate::suite::{Failure, Probe, RunningServer, ServerUnderTest};

/// The longest a case waits for any one thing (a response, a report of the
/// probe, a wake-up); generous, so only a server that never does the thing
/// fails.
pub(super) const BOUND: Duration = Duration::from_secs(5);

/// How long stopping a server may take.
const STOP_BOUND: Duration = Duration::from_secs(10);

/// The clause a server that does not stop cleanly breaks (as everywhere
/// in the suite).
const SHUTDOWN: &str = "RGI-CONN-5";

/// A failure of `clause`.
pub(super) fn fail(clause: &'static str, reason: impl Into<String>) -> Failure {
    Failure::new(clause, reason)
}

/// Maps a wire error met while doing `what` to a failure of `clause`;
/// broken response framing fails `RGI-CL-9`, as everywhere in the suite.
pub(super) fn wire(
    clause: &'static str,
    what: impl fmt::Display,
) -> impl FnOnce(WireError) -> Failure {
    move |error| {
        let clause = if error.is_framing() {
            "RGI-CL-9"
        } else {
            clause
        };
        fail(clause, format!("{what}: {error}"))
    }
}

/// A server started for one case; stopped by [`Session::stop`], or when
/// dropped on an early return.
pub(super) struct Session {
    running: Option<Box<dyn RunningServer>>,
    addr: SocketAddr,
    clause: &'static str,
}

impl Session {
    /// Starts `server` with an asynchronous application.
    pub(super) fn start(
        server: &dyn ServerUnderTest,
        app: impl AsyncApplication,
        clause: &'static str,
    ) -> Result<Session, Failure> {
        Session::with_probe(server, Probe::asynchronous(app), clause)
    }

    /// Starts `server` with `probe`; `clause` is the one a failure to start
    /// or to answer is reported against.
    pub(super) fn with_probe(
        server: &dyn ServerUnderTest,
        probe: Probe,
        clause: &'static str,
    ) -> Result<Session, Failure> {
        let running = server
            .start(probe)
            .map_err(|error| fail(clause, format!("the server did not start: {error}")))?;
        Ok(Session {
            addr: running.addr(),
            running: Some(running),
            clause,
        })
    }

    /// Where the server listens.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new connection to the server, with every read bounded by
    /// [`BOUND`].
    pub(super) fn connect(&self) -> Result<Connection, Failure> {
        let mut conn = Connection::connect(self.addr).map_err(wire(self.clause, "connecting"))?;
        conn.set_timeout(BOUND);
        Ok(conn)
    }

    /// Sends `request` on a new connection and reads the response.
    pub(super) fn exchange(&self, request: &Request, method: &str) -> Result<Response, Failure> {
        let mut conn = self.connect()?;
        exchange(&mut conn, request, method, self.clause)
    }

    /// Stops the server, bounded in time.
    pub(super) fn stop(mut self) -> Result<(), Failure> {
        match self.running.take() {
            Some(running) => stop_bounded(running),
            None => Ok(()),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            // The case already failed; a second failure would hide it.
            let _ = stop_bounded(running);
        }
    }
}

/// Sends `request` on `conn` and reads the response to it.
pub(super) fn exchange(
    conn: &mut Connection,
    request: &Request,
    method: &str,
    clause: &'static str,
) -> Result<Response, Failure> {
    conn.send(&request.to_bytes())
        .map_err(wire(clause, format!("sending a {method} request")))?;
    conn.read_response(method).map_err(wire(
        clause,
        format!("reading the response to a {method} request"),
    ))
}

/// Stops `running` on a helper thread and waits at most [`STOP_BOUND`].
fn stop_bounded(running: Box<dyn RunningServer>) -> Result<(), Failure> {
    let (done, stopped) = mpsc::channel();
    thread::Builder::new()
        .name("rgi-suite-stop".into())
        .spawn(move || {
            let _ = done.send(running.stop().map_err(|error| error.to_string()));
        })
        .map_err(|error| {
            fail(
                SHUTDOWN,
                format!("cannot spawn a thread to stop the server: {error}"),
            )
        })?;
    match stopped.recv_timeout(STOP_BOUND) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(fail(
            SHUTDOWN,
            format!("the server did not stop cleanly: {error}"),
        )),
        Err(RecvTimeoutError::Timeout) => Err(fail(
            SHUTDOWN,
            format!("RunningServer::stop did not return within {STOP_BOUND:?}"),
        )),
        Err(RecvTimeoutError::Disconnected) => Err(fail(SHUTDOWN, "RunningServer::stop panicked")),
    }
}

/// Waits up to [`BOUND`] for the probe to report something.
pub(super) fn recv<T>(
    reports: &Receiver<T>,
    clause: &'static str,
    what: &str,
) -> Result<T, Failure> {
    recv_within(reports, BOUND, clause, what)
}

/// Waits up to `window` for the probe to report something.
pub(super) fn recv_within<T>(
    reports: &Receiver<T>,
    window: Duration,
    clause: &'static str,
    what: &str,
) -> Result<T, Failure> {
    reports.recv_timeout(window).map_err(|error| match error {
        RecvTimeoutError::Timeout => {
            fail(clause, format!("{what} did not happen within {window:?}"))
        }
        RecvTimeoutError::Disconnected => fail(
            clause,
            format!("{what} never happened: the application was dropped first"),
        ),
    })
}

/// Locks `mutex`, ignoring poisoning: a probe that panicked on purpose
/// must not hide what it recorded.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a probe records for the case to judge, shared between threads.
#[derive(Debug)]
pub(super) struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log(Arc::clone(&self.0))
    }
}

impl<T> Default for Log<T> {
    fn default() -> Self {
        Log(Arc::default())
    }
}

impl<T: Clone> Log<T> {
    /// An empty log.
    pub(super) fn new() -> Self {
        Log::default()
    }

    /// Records `entry`.
    pub(super) fn push(&self, entry: T) {
        lock(&self.0).push(entry);
    }

    /// Everything recorded so far.
    pub(super) fn entries(&self) -> Vec<T> {
        lock(&self.0).clone()
    }

    /// How many entries there are.
    pub(super) fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

/// The calling thread's id.
pub(super) fn current() -> ThreadId {
    thread::current().id()
}

/// A one-way gate: asynchronous bodies poll it, blocking code waits on it,
/// the case opens it.
#[derive(Clone, Default)]
pub(super) struct Latch(Arc<LatchInner>);

#[derive(Default)]
struct LatchInner {
    state: Mutex<LatchState>,
    opened: Condvar,
}

#[derive(Default)]
struct LatchState {
    open: bool,
    wakers: Vec<Waker>,
}

impl fmt::Debug for Latch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latch")
            .field("open", &self.is_open())
            .finish()
    }
}

impl Latch {
    /// A closed latch.
    pub(super) fn new() -> Self {
        Latch::default()
    }

    /// Opens it, waking every body that polled it and every waiting thread.
    pub(super) fn open(&self) {
        let wakers = {
            let mut state = lock(&self.0.state);
            state.open = true;
            std::mem::take(&mut state.wakers)
        };
        self.0.opened.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether it is open.
    pub(super) fn is_open(&self) -> bool {
        lock(&self.0.state).open
    }

    /// Ready once open; otherwise registers the context's waker.
    pub(super) fn poll_open(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.0.state);
        if state.open {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Blocks until open or until `window` has passed; whether it opened.
    pub(super) fn wait(&self, window: Duration) -> bool {
        let state = lock(&self.0.state);
        let (state, _) = self
            .0
            .opened
            .wait_timeout_while(state, window, |state| !state.open)
            .unwrap_or_else(PoisonError::into_inner);
        state.open
    }
}

/// What a step closure returns: `Err` becomes a failure step, so `?` works
/// inside a body.
pub(super) type Stepped = Result<Poll<Option<Step>>, BoxError>;

/// Returns `Ok(Poll::Pending)` from the enclosing step closure unless the
/// poll is ready, giving its value.
macro_rules! ready_or_park {
    ($poll:expr) => {
        match $poll {
            ::std::task::Poll::Ready(value) => value,
            ::std::task::Poll::Pending => return Ok(::std::task::Poll::Pending),
        }
    };
}
pub(super) use ready_or_park;

/// An asynchronous body made from a closure called on every poll, with an
/// optional hook run when the body is dropped.
pub(super) struct PollBody<F> {
    step: F,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

/// A body whose every poll calls `step`.
pub(super) fn poll_body<F>(step: F) -> PollBody<F>
where
    F: FnMut(&mut Context<'_>, &mut StartResponse<'_>) -> Stepped + Send + Unpin,
{
    PollBody {
        step,
        on_drop: None,
    }
}

impl<F> PollBody<F> {
    /// Runs `hook` when the body is dropped.
    pub(super) fn on_drop(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.on_drop = Some(Box::new(hook));
        self
    }
}

impl<F> AsyncBody for PollBody<F>
where
    F: FnMut(&mut Context<'_>, &mut StartResponse<'_>) -> Stepped + Send + Unpin,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        match (self.get_mut().step)(cx, start) {
            Ok(Poll::Ready(step)) => Poll::Ready(step.map(Ok)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }
}

impl<F> Drop for PollBody<F> {
    fn drop(&mut self) {
        if let Some(hook) = self.on_drop.take() {
            hook();
        }
    }
}

/// Any asynchronous body, so one application can answer with several kinds.
pub(super) type AnyBody = Pin<Box<dyn AsyncBody>>;

/// Boxes `body`.
pub(super) fn boxed(body: impl AsyncBody + 'static) -> AnyBody {
    Box::pin(body)
}

/// A chunk step.
pub(super) fn emit(data: impl Into<Bytes>) -> Stepped {
    Ok(Poll::Ready(Some(Step::Chunk(data.into()))))
}

/// The end of the body.
pub(super) fn finished() -> Stepped {
    Ok(Poll::Ready(None))
}

/// A head with `status` and the given fields (lower-case names, visible
/// ASCII values: constants of the cases).
pub(super) fn head(status: StatusCode, fields: &[(&'static str, &'static str)]) -> ResponseHead {
    fields
        .iter()
        .fold(ResponseHead::new(status), |head, (name, value)| {
            head.with_header(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
}

/// A body that starts `200 OK` with `content-type: text/plain` unless
/// started already, yields `text` once, and ends.
pub(super) fn text_body(text: impl Into<Bytes>) -> impl AsyncBody + 'static {
    let mut text = Some(text.into());
    poll_body(move |_cx, start| {
        let Some(text) = text.take() else {
            return finished();
        };
        if !start.is_started() {
            start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
        }
        emit(text)
    })
}

/// A boxed future the probe runs inside a body.
pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A body that runs `work` to its end and then answers `200` with the text
/// it produced.
pub(super) fn future_body(work: impl Future<Output = String> + Send + 'static) -> impl AsyncBody {
    let mut work: Option<BoxFuture<String>> = Some(Box::pin(work));
    let mut answer: Option<String> = None;
    poll_body(move |cx, start| {
        if let Some(future) = work.as_mut() {
            let text = ready_or_park!(future.as_mut().poll(cx));
            work = None;
            answer = Some(text);
        }
        match answer.take() {
            Some(text) => {
                start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
                emit(text)
            }
            None => finished(),
        }
    })
}

/// Wakes the thread that created it.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `poll` on the calling thread, parking between wake-ups, until it
/// is ready or `window` has passed.
pub(super) fn poll_for<T>(
    window: Duration,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Option<T> {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + window;
    loop {
        if let Poll::Ready(value) = poll(&mut cx) {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::park_timeout(deadline - now);
    }
}

/// Bytes shown escaped, for failure reasons.
pub(super) fn shown(bytes: &[u8]) -> String {
    crate::suite::wire::Shown(bytes.to_vec()).to_string()
}
