//! Asynchronous applications without a runtime: each request is a task on
//! a fixed pool of async threads, polled with a waker that re-queues it
//! there. The connection stays non-blocking; its readiness (for the request
//! body and for backpressure) and every timer come from the poller thread
//! through the [`Reactor`].
//!
//! A task's state is one atomic: idle, queued, running, running-and-woken,
//! done. A wake-up queues an idle task once; a wake-up while it runs marks
//! it, and it is polled again when the poll returns instead of going idle.
//! So a task is never polled on two threads at once, and no wake-up is lost.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Write};
use std::net::Shutdown;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use mio::Interest;
use rgi::{
    AsyncSource, ConnectionInfo, Environ, Input, InputError, ResponseHead, ResponseState,
    ServerInfo, TrailerSlot,
};
use rgi_async::{
    AfterResponse, AsyncApplication, AsyncBody, Capabilities, Offload, Readiness, Step, SyncSwitch,
    Upgrade, UpgradeError,
};

use crate::blocking::{AfterTasks, BlockingPool};
use crate::body::{self, InBuf, ReadSide, SharedReadSide, WriteGate};
use crate::config::Limits;
use crate::head::{Framing, RequestHead};
use crate::net::SharedStream;
use crate::poller::{Control, Dispatch, Job};
use crate::queue::WaitQueue;
use crate::reactor::{Dir, Reactor, TimerKey};
use crate::response::{Sink, refusal};
use crate::upgrade::{self, Handoff};
use crate::worker::{self, Connection, Failure, Finished};

/// The unsent output of a response above which its body is not polled
/// (`[RGIA-OUT-2]`); past it a response holds at most what the step just
/// taken produced (`[RGIA-OUT-3]`).
pub(crate) const OUTPUT_BOUND: usize = 64 * 1024;

/// Steps taken from one body before other tasks get a turn
/// (`[RGIA-TASK-3]`).
const STEP_BUDGET: u32 = 32;

/// The largest chunk one non-blocking read of the request body returns.
const READ_MAX: usize = 64 * 1024;

/// After-response tasks one request may hold.
const AFTER_LIMIT: usize = 64;

const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// What one turn of a task came to.
enum Drove {
    /// Parked until a waker fires.
    Pending,
    /// The step budget ran out; queue it again behind the others.
    Yield,
    /// The request left this task (finished, or switched to a worker).
    Done,
}

/// One request's work, behind the task's lock.
trait Drive: Send {
    fn drive(&mut self, cx: &mut Context<'_>, cancelled: bool) -> Drove;
}

/// A request's task.
pub(crate) struct Task {
    state: AtomicU8,
    cancelled: AtomicBool,
    id: u64,
    shared: Arc<AsyncShared>,
    work: Mutex<Option<Box<dyn Drive>>>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        schedule(&self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        schedule(self);
    }
}

/// Queues `task` if it is idle, marks it if it is running; otherwise (queued
/// already, or done) the wake-up has nothing to add (`[RGIA-POLL-5]`).
fn schedule(task: &Arc<Task>) {
    let mut state = task.state.load(Ordering::Acquire);
    loop {
        let next = match state {
            IDLE => QUEUED,
            RUNNING => NOTIFIED,
            _ => return,
        };
        match task
            .state
            .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                if next == QUEUED {
                    task.shared.push(Arc::clone(task));
                }
                return;
            }
            Err(actual) => state = actual,
        }
    }
}

/// What the async threads, their tasks and the server handle share.
pub(crate) struct AsyncShared {
    queue: WaitQueue<Arc<Task>>,
    pub(crate) reactor: Arc<Reactor>,
    pub(crate) blocking: Arc<BlockingPool>,
    returns: Mutex<Sender<Finished>>,
    poller: Arc<mio::Waker>,
    control: Arc<Control>,
    limits: Limits,
    live: Mutex<HashMap<u64, Arc<Task>>>,
    ids: AtomicU64,
}

impl std::fmt::Debug for AsyncShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncShared").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AsyncShared {
    pub(crate) fn new(
        reactor: Arc<Reactor>,
        blocking: Arc<BlockingPool>,
        returns: Sender<Finished>,
        poller: Arc<mio::Waker>,
        control: Arc<Control>,
        limits: Limits,
    ) -> Self {
        Self {
            queue: WaitQueue::new(),
            reactor,
            blocking,
            returns: Mutex::new(returns),
            poller,
            control,
            limits,
            live: Mutex::new(HashMap::new()),
            ids: AtomicU64::new(0),
        }
    }

    fn push(&self, task: Arc<Task>) {
        self.queue.push(task);
    }

    /// One async thread's loop: runs queued tasks until the queue is closed
    /// and empty.
    pub(crate) fn run_thread(&self) {
        while let Some(task) = self.queue.next() {
            run(&task);
        }
    }

    /// The grace period is over: every live request is cancelled, its body
    /// dropped on an async thread (`[RGIA-TASK-4]`).
    pub(crate) fn cancel_all(&self) {
        let live: Vec<Arc<Task>> = lock(&self.live).values().cloned().collect();
        for task in live {
            task.cancelled.store(true, Ordering::Release);
            schedule(&task);
        }
    }

    /// No more tasks start; the threads return once the queue is empty.
    pub(crate) fn close(&self) {
        self.cancel_all();
        self.queue.close();
    }

    /// A request is over: its connection goes back to the poller.
    fn finished(&self, id: u64, finished: Finished) {
        lock(&self.control.busy).remove(&id);
        let _ = lock(&self.returns).send(finished);
        self.control.in_flight.fetch_sub(1, Ordering::AcqRel);
        let _ = self.poller.wake();
        let task = lock(&self.live).remove(&id);
        drop(task);
    }
}

/// One turn of `task` on this thread.
fn run(task: &Arc<Task>) {
    task.state.store(RUNNING, Ordering::Release);
    let waker = Waker::from(Arc::clone(task));
    let mut cx = Context::from_waker(&waker);
    let cancelled = task.cancelled.load(Ordering::Acquire);
    let drove = {
        let mut work = lock(&task.work);
        match work.as_mut() {
            None => Drove::Done,
            Some(drive) => {
                match catch_unwind(AssertUnwindSafe(|| drive.drive(&mut cx, cancelled))) {
                    Ok(drove) => drove,
                    Err(payload) => {
                        // Every application call inside is contained; this
                        // is the server's own bug, and the request is lost.
                        tracing::error!(error = %worker::panic_message(payload.as_ref()), "an async task panicked");
                        Drove::Done
                    }
                }
            }
        }
    };
    match drove {
        Drove::Done => {
            task.state.store(DONE, Ordering::Release);
            let work = lock(&task.work).take();
            drop(work);
        }
        Drove::Yield => {
            task.state.store(QUEUED, Ordering::Release);
            task.shared.push(Arc::clone(task));
        }
        Drove::Pending => {
            if task
                .state
                .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // Woken while it ran: poll it again.
                task.state.store(QUEUED, Ordering::Release);
                task.shared.push(Arc::clone(task));
            }
        }
    }
}

/// Hands parsed requests to the async threads.
pub(crate) struct AsyncDispatch<A> {
    pub(crate) app: Arc<A>,
    pub(crate) shared: Arc<AsyncShared>,
    pub(crate) capabilities: CapabilityParts,
}

/// The server-wide handles; each request gets a `Capabilities` value of its
/// own, because its after-response tasks wait for its own response.
#[derive(Debug, Clone)]
pub(crate) struct CapabilityParts {
    pub(crate) offload: Offload,
    pub(crate) readiness: Readiness,
}

impl CapabilityParts {
    fn build(&self, after: AfterResponse, upgrade: Option<Upgrade>) -> Capabilities {
        // No runtime is declared: nothing here enters one (`[RGIA-RT-1]`).
        let builder = Capabilities::builder(self.offload.clone())
            .readiness(self.readiness.clone())
            .after_response(after);
        match upgrade {
            Some(upgrade) => builder.upgrade(upgrade).build(),
            None => builder.build(),
        }
    }
}

impl<A: AsyncApplication> Dispatch for AsyncDispatch<A> {
    fn dispatch(&self, job: Job) -> bool {
        let shared = &self.shared;
        let id = shared.ids.fetch_add(1, Ordering::Relaxed);
        let Job { conn, head } = job;
        let Connection {
            stream,
            info,
            server,
            buf,
        } = conn;
        let slot = match shared
            .reactor
            .register(stream.raw_fd(), Interest::READABLE | Interest::WRITABLE)
        {
            Ok(slot) => slot,
            Err(error) => {
                tracing::warn!(%error, "cannot watch a connection for an async request");
                return false;
            }
        };
        lock(&shared.control.busy).insert(id, Arc::clone(&stream));
        let request = Request::new(
            Arc::clone(&self.app),
            Arc::clone(shared),
            &self.capabilities,
            id,
            (stream, info, server, buf),
            slot,
            *head,
        );
        let task = Arc::new(Task {
            state: AtomicU8::new(QUEUED),
            cancelled: AtomicBool::new(false),
            id,
            shared: Arc::clone(shared),
            work: Mutex::new(Some(Box::new(request))),
        });
        lock(&shared.live).insert(task.id, Arc::clone(&task));
        shared.push(task);
        true
    }

    fn cancel_all(&self) {
        self.shared.cancel_all();
    }
}

/// Where a request stands on its task.
enum Phase {
    /// The application has not been called yet.
    Call(Box<RequestHead>),
    /// The body is being polled.
    Body,
    /// The body ended; the response is framed to its end.
    Ending,
    /// The last bytes go out.
    Flush,
    /// The unread rest of the request body is discarded, at most
    /// `drain_limit` bytes, until `deadline`.
    Drain { drained: u64, deadline: Instant },
    /// An upgrade was accepted: the rest of the request body is discarded
    /// and the 101 goes out.
    Upgrading { drained: u64, deadline: Instant },
    /// The connection is the application's; the body is polled until it
    /// ends, then the connection closes once the stream is dropped.
    Upgraded,
}

/// Everything of a request but the application and its body: what moves to
/// a worker on a switch.
pub(crate) struct Exchange {
    shared: Arc<AsyncShared>,
    id: u64,
    stream: SharedStream,
    info: Arc<ConnectionInfo>,
    server: Arc<ServerInfo>,
    side: SharedReadSide,
    slot: usize,
    state: ResponseState,
    sink: Sink,
    /// Framed output not yet written, from `at`.
    out: Vec<u8>,
    at: usize,
    /// The last time a client took bytes, and the timer that fires when it
    /// has taken none for `body_timeout`.
    progress: Instant,
    stall: Option<TimerKey>,
    keep: bool,
    after: Arc<AfterTasks>,
    /// The hand-over, on a request that asked for an upgrade.
    upgrade: Option<Arc<Handoff>>,
    /// The connection went back to the poller.
    done: bool,
    /// The body's last step was `Pending`: it waits for an event of its own,
    /// not for the client to take output.
    parked: bool,
}

impl Exchange {
    fn collect(&mut self) {
        self.sink.take_output(&mut self.out);
    }

    fn unsent(&self) -> usize {
        self.out.len() - self.at
    }

    /// Writes what it can without blocking; ready once at most `bound`
    /// bytes are unsent, else parked on writability (and on a timer for a
    /// client that takes nothing for `body_timeout`). Interim responses
    /// the sink or the input queued (`103`, `100`) go first.
    fn poll_write(&mut self, cx: &mut Context<'_>, bound: usize) -> Poll<io::Result<()>> {
        let reactor = Arc::clone(&self.shared.reactor);
        loop {
            let seen = reactor.events(self.slot, Dir::Write);
            let interim = match self.sink.flush_interim() {
                Ok(left) => left,
                Err(error) => return Poll::Ready(Err(error)),
            };
            if interim > 0 {
                // Behind them, nothing else may be written yet.
                if !reactor.park(self.slot, Dir::Write, seen, cx.waker()) {
                    continue;
                }
                let deadline = self.progress + self.shared.limits.body_timeout;
                if Instant::now() >= deadline {
                    self.disarm();
                    return Poll::Ready(Err(ErrorKind::TimedOut.into()));
                }
                if self.stall.is_none_or(|key| key.at() != deadline) {
                    self.disarm();
                    self.stall = Some(reactor.add_timer(deadline, cx.waker()));
                }
                return Poll::Pending;
            }
            while self.at < self.out.len() {
                match (&*self.stream).write(&self.out[self.at..]) {
                    Ok(0) => return Poll::Ready(Err(ErrorKind::WriteZero.into())),
                    Ok(count) => {
                        self.at += count;
                        self.progress = Instant::now();
                    }
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) => return Poll::Ready(Err(error)),
                }
            }
            if self.at == self.out.len() {
                // Nothing kept for a response that went out.
                self.out = Vec::new();
                self.at = 0;
            }
            if self.unsent() <= bound {
                self.disarm();
                return Poll::Ready(Ok(()));
            }
            let deadline = self.progress + self.shared.limits.body_timeout;
            if Instant::now() >= deadline {
                self.disarm();
                return Poll::Ready(Err(ErrorKind::TimedOut.into()));
            }
            if !reactor.park(self.slot, Dir::Write, seen, cx.waker()) {
                continue;
            }
            if self.stall.is_none_or(|key| key.at() != deadline) {
                self.disarm();
                self.stall = Some(reactor.add_timer(deadline, cx.waker()));
            }
            return Poll::Pending;
        }
    }

    fn disarm(&mut self) {
        if let Some(key) = self.stall.take() {
            self.shared.reactor.cancel_timer(key);
        }
    }

    /// Discards the unread rest of the request body without blocking
    /// (`[RGIA-INPUT-16]`); true when it ended within the limits.
    fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        drained: &mut u64,
        deadline: Instant,
    ) -> Poll<bool> {
        let reactor = Arc::clone(&self.shared.reactor);
        let mut scratch = [0u8; 4096];
        loop {
            let seen = reactor.events(self.slot, Dir::Read);
            let mut side = body::lock(&self.side);
            if side.is_complete() {
                return Poll::Ready(!side.broken);
            }
            if side.expect == body::Continue::Pending {
                // The client may wait for a 100 before sending anything.
                return Poll::Ready(false);
            }
            match side.read_body(&mut scratch) {
                Ok(0) => return Poll::Ready(side.is_complete() && !side.broken),
                Ok(count) => {
                    *drained += count as u64;
                    if *drained > self.shared.limits.drain_limit {
                        return Poll::Ready(false);
                    }
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    drop(side);
                    if Instant::now() >= deadline {
                        return Poll::Ready(false);
                    }
                    if !reactor.park(self.slot, Dir::Read, seen, cx.waker()) {
                        continue;
                    }
                    if self.stall.is_none_or(|key| key.at() != deadline) {
                        self.disarm();
                        self.stall = Some(reactor.add_timer(deadline, cx.waker()));
                    }
                    return Poll::Pending;
                }
                Err(_) => return Poll::Ready(false),
            }
        }
    }

    /// The end of the request: after-response tasks are released, the
    /// connection goes back to the poller, kept or to be closed.
    fn finish(mut self) {
        self.finish_in_place();
    }

    fn finish_in_place(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.disarm();
        let (keep, buf) = {
            let mut side = body::lock(&self.side);
            let keep = self.keep && self.sink.reusable() && side.is_complete() && !side.broken;
            // From here the request's input answers `ResponseFinished`.
            (keep, side.finish())
        };
        self.shared
            .reactor
            .deregister(self.slot, self.stream.raw_fd());
        self.after.release();
        if !keep {
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        let finished = Finished {
            conn: Connection {
                stream: Arc::clone(&self.stream),
                info: Arc::clone(&self.info),
                server: Arc::clone(&self.server),
                buf,
            },
            keep,
        };
        self.shared.finished(self.id, finished);
    }
}

impl Drop for Exchange {
    /// A request dropped on a path that did not finish it (a queued switch
    /// dropped unrun at shutdown, say) still returns its connection, to be
    /// closed, and its count.
    fn drop(&mut self) {
        if !self.done {
            self.keep = false;
            self.finish_in_place();
        }
    }
}

impl Exchange {
    /// The request's own failure before or after the head, as for a
    /// synchronous one; false when the connection cannot be kept.
    fn fail(&mut self, failure: Failure) {
        let clean = worker::fail(&mut self.state, &mut self.sink, failure);
        self.keep &= clean;
        self.collect();
    }

    fn client_gone(&self, upgraded: bool) -> bool {
        let (gone, read_closed) = self.shared.reactor.closed(self.slot);
        // A peer that ended its side after a complete request is taken as
        // gone, as hyper does by default: nothing more can arrive, and a
        // parked body would otherwise wait for its next send to learn it.
        // On an upgraded connection a half-close is the other protocol's
        // business (a read of 0).
        // Only a parked body with nothing left to send is given up: a
        // response still going out is the client's to read, half-closed or
        // not (a write fails soon enough if it has really left).
        gone || (!upgraded
            && read_closed
            && self.parked
            && self.unsent() == 0
            && body::lock(&self.side).is_complete())
    }
}

/// One request of an asynchronous application.
struct Request<A: AsyncApplication> {
    app: Arc<A>,
    body: Option<Pin<Box<A::Body>>>,
    phase: Phase,
    ex: Option<Exchange>,
    capabilities: Capabilities,
    /// The slot a chunked body's trailer fields go to, for the input.
    trailers: Option<TrailerSlot>,
}

impl<A: AsyncApplication> Request<A> {
    fn new(
        app: Arc<A>,
        shared: Arc<AsyncShared>,
        capabilities: &CapabilityParts,
        id: u64,
        (stream, info, server, buf): (SharedStream, Arc<ConnectionInfo>, Arc<ServerInfo>, InBuf),
        slot: usize,
        head: RequestHead,
    ) -> Self {
        let gate = Arc::new(WriteGate::default());
        let trailers = (head.framing == Framing::Chunked).then(TrailerSlot::new);
        let mut side = ReadSide::new(
            Arc::clone(&stream),
            Arc::clone(&gate),
            buf,
            (head.framing, head.expect_continue, head.budget_used),
            &shared.limits,
            trailers.clone(),
        );
        side.nonblocking = true;
        let mut sink = Sink::new(
            Arc::clone(&stream),
            Arc::clone(&gate),
            &head.parts.method,
            head.parts.version,
            head.keep_alive,
        );
        sink.set_deferred(true);
        let after = Arc::new(AfterTasks::new(Arc::clone(&shared.blocking), AFTER_LIMIT));
        let handoff = upgrade::offer(head.parts.version, &head.parts.headers)
            .map(|offered| Arc::new(Handoff::new(offered, Arc::clone(&gate))));
        let capabilities = capabilities.build(
            AfterResponse::from_arc(Arc::clone(&after) as _),
            handoff
                .as_ref()
                .map(|handoff| Upgrade::new(upgrade::Service(Arc::clone(handoff)))),
        );
        let state =
            worker::response_state(&head.parts.method, head.parts.version, head.te_trailers);
        let ex = Exchange {
            shared,
            id,
            stream,
            info,
            server,
            side: Arc::new(Mutex::new(side)),
            slot,
            state,
            sink,
            out: Vec::new(),
            at: 0,
            progress: Instant::now(),
            stall: None,
            keep: true,
            after,
            upgrade: handoff,
            done: false,
            parked: false,
        };
        Self {
            app,
            body: None,
            phase: Phase::Call(Box::new(head)),
            ex: Some(ex),
            capabilities,
            trailers,
        }
    }

    /// Builds the environ and calls the application.
    fn call(&mut self, head: RequestHead) {
        let Some(ex) = self.ex.as_mut() else { return };
        let RequestHead { parts, framing, .. } = head;
        let source = || ConnSource {
            side: Arc::clone(&ex.side),
            reactor: Arc::clone(&ex.shared.reactor),
            slot: ex.slot,
            timeout: ex.shared.limits.body_timeout,
            deadline: None,
            timer: None,
        };
        let input = match framing {
            Framing::None => Input::empty(),
            Framing::Length(n) => Input::from_async(source(), Some(n)),
            Framing::Chunked => Input::from_async(source(), None),
        };
        let input = match self.trailers.take() {
            Some(slot) => input.with_trailers(slot),
            None => input,
        };
        let mut environ = match Environ::from_parts(parts, input, &ex.server, &ex.info) {
            Ok(environ) => environ,
            Err(error) => {
                tracing::info!(%error, peer = ?ex.info.peer_addr(), "refused a request whose environ does not build");
                ex.out.extend_from_slice(&refusal(StatusCode::BAD_REQUEST));
                ex.keep = false;
                self.phase = Phase::Flush;
                return;
            }
        };
        environ.extensions_mut().insert(self.capabilities.clone());
        let app = &self.app;
        let called = catch_unwind(AssertUnwindSafe(|| {
            app.call(environ, &mut ex.state.start_response(&mut ex.sink))
        }));
        ex.collect();
        match called {
            Ok(Ok(body)) => {
                let body = Box::pin(body);
                if !ex.state.is_head_sent() {
                    match catch_unwind(AssertUnwindSafe(|| body.size_hint())) {
                        Ok(Some(length)) => {
                            let _ = ex.state.declare_length(length);
                        }
                        Ok(None) => {}
                        Err(payload) => {
                            ex.fail(Failure::Panic(payload));
                            ex.keep &= worker::drop_body(body);
                            self.phase = Phase::Flush;
                            return;
                        }
                    }
                }
                self.body = Some(body);
                self.phase = Phase::Body;
            }
            Ok(Err(error)) => {
                ex.fail(Failure::Error(error));
                self.phase = Phase::Flush;
            }
            Err(payload) => {
                ex.fail(Failure::Panic(payload));
                self.phase = Phase::Flush;
            }
        }
    }

    /// Drops the body exactly once, containing a panic in its `Drop`
    /// (`[RGIA-POLL-7]`, `[RGIA-POLL-8]`).
    fn drop_body(&mut self) {
        if let Some(body) = self.body.take() {
            let clean = worker::drop_body(body);
            if let Some(ex) = self.ex.as_mut() {
                ex.keep &= clean;
            }
        }
    }

    /// After the call or poll in which the application accepted an
    /// upgrade: the 101 replaces whatever head was stored
    /// (`[RGIA-UPGRADE-2]`, `[RGIA-UPGRADE-4]`); output alongside it closes
    /// the connection instead (`[RGIA-UPGRADE-6]`).
    fn begin_upgrade(&mut self, violation: bool) -> Option<Drove> {
        let ex = self.ex.as_mut()?;
        let handoff = ex.upgrade.clone()?;
        let fields = handoff.take_accepted()?;
        if violation || !ex.out.is_empty() {
            tracing::error!("HTTP output alongside an accepted upgrade; closing the connection");
            return Some(self.abandon());
        }
        ex.out = upgrade::switching_head(&fields);
        ex.at = 0;
        ex.keep = false;
        self.phase = Phase::Upgrading {
            drained: 0,
            deadline: Instant::now() + ex.shared.limits.body_timeout,
        };
        None
    }

    /// The connection failed under the response: drop and close.
    fn abandon(&mut self) -> Drove {
        if let Some(handoff) = self.ex.as_ref().and_then(|ex| ex.upgrade.as_ref()) {
            handoff.fail(UpgradeError::Closed);
        }
        self.drop_body();
        if let Some(mut ex) = self.ex.take() {
            ex.keep = false;
            ex.finish();
        }
        Drove::Done
    }

    fn switch(&mut self, switch: SyncSwitch) -> Drove {
        let Some(ex) = self.ex.take() else {
            return Drove::Done;
        };
        // The continuation runs with the exchange on a worker; if the pool
        // refuses it, both come back here through the cell.
        let pool = Arc::clone(&ex.shared.blocking);
        let cell = Arc::new(Mutex::new(Some((ex, switch))));
        let theirs = Arc::clone(&cell);
        let submitted = pool.submit(Box::new(move || {
            if let Some((ex, switch)) = lock(&theirs).take() {
                run_switched(ex, switch);
            }
        }));
        let Err(refused) = submitted else {
            return Drove::Done;
        };
        let Some((mut ex, switch)) = lock(&cell).take() else {
            return Drove::Done;
        };
        drop(switch);
        // `[RGIA-SWITCH-8]`: 503 before the head, an abnormal end after.
        tracing::error!(?refused, "a switch to synchronous processing was refused");
        if ex.state.is_head_sent() {
            ex.keep = false;
        } else {
            let replaced = ex.state.start_response(&mut ex.sink).replace(
                ResponseHead::new(StatusCode::SERVICE_UNAVAILABLE),
                rgi::BoxError::from(format!("switch refused: {refused:?}")),
            );
            let finished = replaced.is_ok() && ex.state.finish(&mut ex.sink).is_ok();
            ex.keep &= finished && ex.sink.complete().is_ok();
            ex.collect();
        }
        self.ex = Some(ex);
        self.phase = Phase::Flush;
        Drove::Yield
    }
}

impl<A: AsyncApplication> Drive for Request<A> {
    fn drive(&mut self, cx: &mut Context<'_>, cancelled: bool) -> Drove {
        let Some(ex) = self.ex.as_mut() else {
            return Drove::Done;
        };
        if cancelled {
            tracing::warn!("grace period over: an async request is cancelled");
            return self.abandon();
        }
        if ex.client_gone(matches!(
            self.phase,
            Phase::Upgrading { .. } | Phase::Upgraded
        )) && !matches!(self.phase, Phase::Call(_))
        {
            tracing::info!("the client went away");
            return self.abandon();
        }
        ex.shared.reactor.watch(ex.slot, cx.waker());
        let mut budget = STEP_BUDGET;
        loop {
            let Some(ex) = self.ex.as_mut() else {
                return Drove::Done;
            };
            match &mut self.phase {
                Phase::Call(_) => {
                    let Phase::Call(head) = std::mem::replace(&mut self.phase, Phase::Body) else {
                        continue;
                    };
                    self.call(*head);
                    if let Some(drove) = self.begin_upgrade(false) {
                        return drove;
                    }
                }
                Phase::Body => {
                    match ex.poll_write(cx, OUTPUT_BOUND) {
                        Poll::Pending => return Drove::Pending,
                        Poll::Ready(Err(error)) => {
                            tracing::info!(%error, "the client went away");
                            return self.abandon();
                        }
                        Poll::Ready(Ok(())) => {}
                    }
                    if !ex.state.wants_body() {
                        self.drop_body();
                        self.phase = Phase::Ending;
                        continue;
                    }
                    if budget == 0 {
                        return Drove::Yield;
                    }
                    budget -= 1;
                    let Some(body) = self.body.as_mut() else {
                        self.phase = Phase::Ending;
                        continue;
                    };
                    let step = catch_unwind(AssertUnwindSafe(|| {
                        body.as_mut()
                            .poll_step(cx, &mut ex.state.start_response(&mut ex.sink))
                    }));
                    ex.collect();
                    if ex.upgrade.as_ref().is_some_and(|h| h.is_accepted()) {
                        // HTTP output in the step that accepted is a
                        // violation (`[RGIA-UPGRADE-6]`); an end is kept.
                        let violation = match &step {
                            Ok(Poll::Ready(Some(Ok(Step::Chunk(chunk))))) => !chunk.is_empty(),
                            Ok(Poll::Ready(Some(Ok(_)))) => true,
                            Ok(Poll::Ready(None) | Poll::Pending) => false,
                            Ok(Poll::Ready(Some(Err(error)))) => {
                                tracing::error!(%error, "the upgraded body failed");
                                false
                            }
                            Err(payload) => {
                                tracing::error!(error = %worker::panic_message(payload.as_ref()), "the upgraded body panicked");
                                false
                            }
                        };
                        if !matches!(step, Ok(Poll::Pending | Poll::Ready(Some(Ok(_))))) {
                            self.drop_body();
                        }
                        drop(step);
                        if let Some(drove) = self.begin_upgrade(violation) {
                            return drove;
                        }
                        continue;
                    }
                    ex.parked = matches!(step, Ok(Poll::Pending));
                    match step {
                        Ok(Poll::Pending) => {
                            // Everything handed over goes out now
                            // (`[RGIA-OUT-4]`); unsent bytes park a write.
                            if let Poll::Ready(Err(error)) = ex.poll_write(cx, 0) {
                                tracing::info!(%error, "the client went away");
                                return self.abandon();
                            }
                            return Drove::Pending;
                        }
                        Ok(Poll::Ready(Some(Ok(Step::Chunk(chunk))))) => {
                            if let Err(error) = ex.state.send_chunk(&mut ex.sink, chunk) {
                                let clean = worker::send_failed(&mut ex.state, &mut ex.sink, error);
                                ex.keep &= clean;
                                ex.collect();
                                self.drop_body();
                                self.phase = Phase::Flush;
                            } else {
                                ex.collect();
                            }
                        }
                        Ok(Poll::Ready(Some(Ok(Step::Switch(switch))))) => {
                            // Dropped before the continuation runs
                            // (`[RGIA-SWITCH-2]`).
                            self.drop_body();
                            return self.switch(switch);
                        }
                        Ok(Poll::Ready(Some(Ok(_)))) => {
                            ex.fail(Failure::Error("an unknown kind of step".into()));
                            self.drop_body();
                            self.phase = Phase::Flush;
                        }
                        Ok(Poll::Ready(None)) => {
                            self.drop_body();
                            self.phase = Phase::Ending;
                        }
                        Ok(Poll::Ready(Some(Err(error)))) => {
                            ex.fail(Failure::Error(error));
                            self.drop_body();
                            self.phase = Phase::Flush;
                        }
                        Err(payload) => {
                            ex.fail(Failure::Panic(payload));
                            self.drop_body();
                            self.phase = Phase::Flush;
                        }
                    }
                }
                Phase::Ending => {
                    end_response(ex);
                    self.phase = Phase::Flush;
                }
                Phase::Flush => match ex.poll_write(cx, 0) {
                    Poll::Pending => return Drove::Pending,
                    Poll::Ready(Err(error)) => {
                        tracing::info!(%error, "the client went away");
                        return self.abandon();
                    }
                    Poll::Ready(Ok(())) => {
                        let complete = body::lock(&ex.side).is_complete();
                        if ex.keep && ex.sink.reusable() && !complete {
                            self.phase = Phase::Drain {
                                drained: 0,
                                deadline: Instant::now() + ex.shared.limits.body_timeout,
                            };
                        } else if let Some(ex) = self.ex.take() {
                            ex.finish();
                            return Drove::Done;
                        }
                    }
                },
                Phase::Upgrading { drained, deadline } => {
                    let deadline = *deadline;
                    let Some(handoff) = ex.upgrade.clone() else {
                        return self.abandon();
                    };
                    if !body::lock(&ex.side).is_complete() {
                        match ex.poll_drain(cx, drained, deadline) {
                            Poll::Pending => return Drove::Pending,
                            Poll::Ready(false) => {
                                handoff.fail(UpgradeError::Io(io::Error::other(
                                    "the request body's unread rest exceeds the drain limit",
                                )));
                                return self.abandon();
                            }
                            Poll::Ready(true) => {}
                        }
                    }
                    match ex.poll_write(cx, 0) {
                        Poll::Pending => return Drove::Pending,
                        Poll::Ready(Err(error)) => {
                            tracing::info!(%error, "the client went away before the 101");
                            return self.abandon();
                        }
                        Poll::Ready(Ok(())) => {}
                    }
                    let leftover = body::lock(&ex.side).finish();
                    handoff.hand_over(
                        Arc::clone(&ex.stream),
                        Arc::clone(&ex.shared.reactor),
                        ex.slot,
                        leftover,
                    );
                    self.phase = Phase::Upgraded;
                }
                Phase::Upgraded => {
                    let Some(body) = self.body.as_mut() else {
                        // `[RGIA-UPGRADE-7]`: closed once the body ended
                        // and the stream is gone.
                        let alive = ex
                            .upgrade
                            .as_ref()
                            .is_some_and(|handoff| handoff.stream_alive(cx.waker()));
                        if alive {
                            return Drove::Pending;
                        }
                        if let Some(mut ex) = self.ex.take() {
                            ex.keep = false;
                            ex.finish();
                        }
                        return Drove::Done;
                    };
                    if budget == 0 {
                        return Drove::Yield;
                    }
                    budget -= 1;
                    let step = catch_unwind(AssertUnwindSafe(|| {
                        body.as_mut()
                            .poll_step(cx, &mut ex.state.start_response(&mut ex.sink))
                    }));
                    ex.collect();
                    let violation = !ex.out.is_empty()
                        || match &step {
                            Ok(Poll::Ready(Some(Ok(Step::Chunk(chunk))))) => !chunk.is_empty(),
                            Ok(Poll::Ready(Some(Ok(_)))) => true,
                            _ => false,
                        };
                    if violation {
                        tracing::error!(
                            "HTTP output after an accepted upgrade; closing the connection"
                        );
                        drop(step);
                        return self.abandon();
                    }
                    match step {
                        Ok(Poll::Pending) => return Drove::Pending,
                        Ok(Poll::Ready(Some(Ok(_)))) => {}
                        Ok(Poll::Ready(None)) => self.drop_body(),
                        Ok(Poll::Ready(Some(Err(error)))) => {
                            tracing::error!(%error, "the upgraded body failed");
                            self.drop_body();
                        }
                        Err(payload) => {
                            tracing::error!(error = %worker::panic_message(payload.as_ref()), "the upgraded body panicked");
                            self.drop_body();
                        }
                    }
                }
                Phase::Drain { drained, deadline } => {
                    let deadline = *deadline;
                    match ex.poll_drain(cx, drained, deadline) {
                        Poll::Pending => return Drove::Pending,
                        Poll::Ready(clean) => {
                            if let Some(mut ex) = self.ex.take() {
                                ex.keep &= clean;
                                ex.finish();
                            }
                            return Drove::Done;
                        }
                    }
                }
            }
        }
    }
}

/// Frames the end of a response whose body ended, as the synchronous path
/// does.
fn end_response(ex: &mut Exchange) {
    let clean = match ex.state.finish(&mut ex.sink) {
        Ok(_) => ex.sink.complete().is_ok(),
        Err(rgi::FinishError::NotStarted) => worker::fail(
            &mut ex.state,
            &mut ex.sink,
            Failure::Error("the body ended without starting the response".into()),
        ),
        Err(error) => {
            tracing::warn!(%error, "response ended abnormally");
            false
        }
    };
    ex.keep &= clean;
    ex.collect();
}

/// The rest of a switched request, on a worker thread: unsent output first
/// (`[RGIA-SWITCH-4]`), then the socket turns blocking and the continuation
/// and its body run as a synchronous application's would
/// (`[RGIA-SWITCH-5]`).
fn run_switched(mut ex: Exchange, switch: SyncSwitch) {
    let written = park_on(|cx| ex.poll_write(cx, 0));
    if let Err(error) = written {
        tracing::info!(%error, "the client went away before a switch");
        ex.keep = false;
        ex.finish();
        return;
    }
    let blocking = ex
        .stream
        .set_nonblocking(false)
        .and_then(|()| ex.stream.set_timeouts(ex.shared.limits.body_timeout));
    if let Err(error) = blocking {
        tracing::debug!(%error, "cannot make the connection blocking");
        ex.keep = false;
        ex.finish();
        return;
    }
    body::lock(&ex.side).nonblocking = false;
    ex.sink.set_deferred(false);
    let called = catch_unwind(AssertUnwindSafe(|| {
        switch.run(&mut ex.state.start_response(&mut ex.sink))
    }));
    let clean = match called {
        Ok(Ok(body)) => worker::pull(body, &mut ex.state, &mut ex.sink),
        Ok(Err(error)) => worker::fail(&mut ex.state, &mut ex.sink, Failure::Error(error)),
        Err(payload) => worker::fail(&mut ex.state, &mut ex.sink, Failure::Panic(payload)),
    };
    ex.keep &= clean;
    let limits = ex.shared.limits;
    {
        let mut side = body::lock(&ex.side);
        if ex.keep && ex.sink.reusable() && !side.is_complete() {
            ex.keep = body::drain(&mut side, limits.drain_limit, limits.body_timeout);
        }
    }
    ex.finish();
}

/// Drives `poll` to completion on this (worker) thread, parking it between
/// wake-ups.
fn park_on<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(value) = poll(&mut cx) {
            return value;
        }
        // A spurious unpark costs one more poll; the deadlines live in the
        // polled function, so this never waits for ever.
        std::thread::park_timeout(Duration::from_secs(1));
    }
}

/// The request body as a non-blocking source (`[RGIA-INPUT-1]`,
/// `[RGIA-INPUT-2]`): a read that would block parks the waker on the
/// connection's readability in the poller, and on a timer that ends the
/// wait after `body_timeout` without a byte.
struct ConnSource {
    side: SharedReadSide,
    reactor: Arc<Reactor>,
    slot: usize,
    timeout: Duration,
    deadline: Option<Instant>,
    timer: Option<TimerKey>,
}

impl ConnSource {
    fn disarm(&mut self) {
        if let Some(key) = self.timer.take() {
            self.reactor.cancel_timer(key);
        }
    }
}

impl Drop for ConnSource {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl AsyncSource for ConnSource {
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let this = self.get_mut();
        let mut buf = vec![0u8; max.clamp(1, READ_MAX)];
        loop {
            let seen = this.reactor.events(this.slot, Dir::Read);
            // The first read sends a `100 Continue` owed, whether or not it
            // then has to wait (`[RGIA-INPUT-11]`).
            let result = body::lock(&this.side).read_for_app(&mut buf);
            match result {
                Ok(count) => {
                    this.disarm();
                    this.deadline = None;
                    buf.truncate(count);
                    return Poll::Ready(Ok(Bytes::from(buf)));
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    let deadline = *this.deadline.get_or_insert(now + this.timeout);
                    if now >= deadline {
                        this.disarm();
                        body::lock(&this.side).broken = true;
                        return Poll::Ready(Err(io::Error::new(
                            ErrorKind::TimedOut,
                            InputError::BodyTimedOut {
                                timeout: this.timeout,
                            },
                        )));
                    }
                    if !this.reactor.park(this.slot, Dir::Read, seen, cx.waker()) {
                        if this.reactor.closed(this.slot).0 {
                            return Poll::Ready(Err(ErrorKind::ConnectionReset.into()));
                        }
                        continue;
                    }
                    if this.timer.is_none_or(|key| key.at() != deadline) {
                        this.disarm();
                        this.timer = Some(this.reactor.add_timer(deadline, cx.waker()));
                    }
                    return Poll::Pending;
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}
