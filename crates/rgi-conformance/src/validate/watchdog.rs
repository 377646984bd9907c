//! The watchdog: how long each call into the application keeps the
//! calling thread blocked, and whether a synchronous application runs
//! where it may not block.
//!
//! An asynchronous application must not block in `call`, `poll_step` or
//! its body's `Drop` (`RGIA-APP-2`, `RGIA-APP-3`); a synchronous one whose
//! hints say it never blocks must not block in `call` or `next_chunk`
//! (`RGI-HINT-3`); no body may hang in `Drop` (`RGI-BODY-13`). The
//! validator times each of those calls.
//!
//! Wall-clock time would blame an application for the scheduler: on a
//! loaded machine a thread that is ready to run can wait for a core for a
//! long time. So on Linux the watchdog measures *blocked* time instead: a
//! shared sampler thread reads the state of every watched thread from
//! `/proc/self/task/<tid>/stat` every few milliseconds and counts only the
//! samples in which it sleeps (`S`) or waits uninterruptibly (`D`), never
//! those in which it runs or waits for a core (`R`). A starved sampler
//! takes fewer samples, which can only under-count. Where the thread state
//! cannot be read the watchdog falls back to wall-clock time with a floor
//! of [`Watchdog::WALL_CLOCK_FLOOR`].

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rgi::Hints;

use super::rules::{self, Rule};
use super::state::{PollWaker, Request};

/// The watchdog settings of a [`Validator`](super::Validator) or an
/// [`AsyncValidator`](super::AsyncValidator): how long a call into the
/// application may keep its thread blocked.
///
/// The default ([`Watchdog::new`]) allows
/// [`DEFAULT_BLOCKING`](Self::DEFAULT_BLOCKING) of blocked time in a call
/// that must not block (an asynchronous application's `call`, `poll_step`
/// and body `Drop`; a synchronous application's `call` and `next_chunk`
/// when its hints say `may_block = false`), and
/// [`DEFAULT_SLOW_DROP`](Self::DEFAULT_SLOW_DROP) in a synchronous body's
/// `Drop`. Time the thread spends running, or ready to run but waiting for
/// a core, is not counted: on Linux a sampler thread reads the calling
/// thread's state from `/proc/self/task/<tid>/stat` every few milliseconds
/// and counts only the samples in which it sleeps or waits for I/O, so a
/// loaded machine never makes a call look blocked. Where the thread's
/// state cannot be observed, wall-clock time is compared with the
/// threshold or [`WALL_CLOCK_FLOOR`](Self::WALL_CLOCK_FLOOR), whichever is
/// longer. Time spent inside the server's offload, after-response and
/// upgrade services is the server's and is not counted against the
/// application.
///
/// The same settings bound, in wall-clock time, how long after a wake-up
/// of a pending asynchronous body's waker the server may take to poll it
/// again ([`DEFAULT_LATE_WAKE`](Self::DEFAULT_LATE_WAKE)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rgi_conformance::validate::{Validator, Watchdog};
/// use rgi_conformance::{Policy, Reports};
///
/// let app = rgi::from_fn(|_environ, start| {
///     start.start(http::StatusCode::NO_CONTENT)?;
///     Ok(rgi::Empty)
/// });
/// let watchdog = Watchdog::new().with_blocking(Duration::from_millis(500));
/// let validator = Validator::new(app, Reports::new(Policy::Collect)).with_watchdog(watchdog);
/// assert_eq!(validator.watchdog().blocking(), Some(Duration::from_millis(500)));
/// assert_eq!(Watchdog::disabled().blocking(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdog {
    blocking: Option<Duration>,
    slow_drop: Option<Duration>,
    late_wake: Option<Duration>,
}

impl Watchdog {
    /// The default allowance of blocked time in a call that must not block:
    /// long enough for page faults, a contended lock or a log line, far
    /// shorter than any sleep, blocking read or join worth reporting.
    pub const DEFAULT_BLOCKING: Duration = Duration::from_millis(150);

    /// The default allowance of blocked time in a synchronous body's
    /// `Drop`, which may close files and sockets but must return promptly
    /// (`RGI-BODY-13`).
    pub const DEFAULT_SLOW_DROP: Duration = Duration::from_secs(1);

    /// The default allowance between a wake-up of a pending asynchronous
    /// body's waker and the server's next poll (`RGIA-POLL-3`): wall-clock
    /// time, so wide enough for a loaded machine's scheduler.
    pub const DEFAULT_LATE_WAKE: Duration = Duration::from_secs(1);

    /// The least wall-clock time that counts as blocking where blocked
    /// time cannot be measured: wide, because it includes time the
    /// thread merely waited for a core.
    pub const WALL_CLOCK_FLOOR: Duration = Duration::from_secs(2);

    /// The default settings.
    #[must_use]
    pub const fn new() -> Self {
        Watchdog {
            blocking: Some(Self::DEFAULT_BLOCKING),
            slow_drop: Some(Self::DEFAULT_SLOW_DROP),
            late_wake: Some(Self::DEFAULT_LATE_WAKE),
        }
    }

    /// No timing at all (the check that a blocking synchronous
    /// application is not run on a loop thread, `RGI-HINT-5`, stays: it
    /// does not time anything).
    #[must_use]
    pub const fn disabled() -> Self {
        Watchdog {
            blocking: None,
            slow_drop: None,
            late_wake: None,
        }
    }

    /// These settings with another allowance for calls that must not block.
    #[must_use]
    pub const fn with_blocking(mut self, threshold: Duration) -> Self {
        self.blocking = Some(threshold);
        self
    }

    /// These settings with another allowance for a synchronous body's
    /// `Drop`.
    #[must_use]
    pub const fn with_slow_drop(mut self, threshold: Duration) -> Self {
        self.slow_drop = Some(threshold);
        self
    }

    /// These settings with another allowance between a wake-up and the
    /// server's next poll.
    #[must_use]
    pub const fn with_late_wake(mut self, threshold: Duration) -> Self {
        self.late_wake = Some(threshold);
        self
    }

    /// The allowance between a wake-up and the next poll; `None` when off.
    #[must_use]
    pub const fn late_wake(&self) -> Option<Duration> {
        self.late_wake
    }

    /// The allowance for calls that must not block; `None` when off.
    #[must_use]
    pub const fn blocking(&self) -> Option<Duration> {
        self.blocking
    }

    /// The allowance for a synchronous body's `Drop`; `None` when off.
    #[must_use]
    pub const fn slow_drop(&self) -> Option<Duration> {
        self.slow_drop
    }

    /// Whether this platform lets the watchdog measure blocked time (the
    /// calling thread's state can be read); if not, it compares wall-clock
    /// time with at least [`WALL_CLOCK_FLOOR`](Self::WALL_CLOCK_FLOOR).
    #[must_use]
    pub fn measures_blocked_time() -> bool {
        sampler().is_some()
    }
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog::new()
    }
}

// ---- Where the application is called ----

/// A call into an asynchronous application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AsyncSite {
    Call,
    Poll,
    Drop,
}

/// What a synchronous body's watch needs: the settings and whether the
/// application's hints allow blocking.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyWatch {
    watchdog: Watchdog,
    may_block: bool,
    /// The body of an application whose hints were read (not of a switch
    /// continuation, which has none).
    hinted: bool,
}

impl Default for BodyWatch {
    /// A body whose application may block: only its `Drop` is timed (the
    /// body of a switch continuation, which runs off the loop threads).
    fn default() -> Self {
        BodyWatch {
            watchdog: Watchdog::new(),
            may_block: true,
            hinted: false,
        }
    }
}

impl BodyWatch {
    pub(super) fn new(watchdog: Watchdog, hints: Hints) -> Self {
        BodyWatch {
            watchdog,
            may_block: hints.may_block,
            hinted: true,
        }
    }
}

/// What happened inside one call into an asynchronous application, as
/// far as other validators on the same thread saw it.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// The settings of the validator that made the call.
    watchdog: Watchdog,
    /// Time spent blocked inside the server's services during the call:
    /// the server's, not the application's.
    in_services: Duration,
    /// A validator further in was called or polled: the application is a
    /// middleware around a validated application.
    inner_seen: bool,
    /// A validated body further in returned `Pending`.
    inner_pending: bool,
}

thread_local! {
    /// The calls into asynchronous applications in progress on this
    /// thread, outermost first: a synchronous application called
    /// meanwhile runs on a loop thread.
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// The frame of the call that ended last on this thread.
    static LAST: Cell<Frame> = const { Cell::new(Frame::new(Watchdog::new())) };
}

impl Frame {
    const fn new(watchdog: Watchdog) -> Self {
        Frame {
            watchdog,
            in_services: Duration::ZERO,
            inner_seen: false,
            inner_pending: false,
        }
    }
}

/// One asynchronous call in progress on this thread; its frame is popped
/// when it ends, also by a panic.
struct AsyncScope;

impl AsyncScope {
    fn enter(watchdog: Watchdog) -> Self {
        FRAMES.with(|frames| frames.borrow_mut().push(Frame::new(watchdog)));
        AsyncScope
    }
}

impl Drop for AsyncScope {
    fn drop(&mut self) {
        FRAMES.with(|frames| {
            let mut frames = frames.borrow_mut();
            let ended = frames.pop().unwrap_or(Frame::new(Watchdog::new()));
            LAST.with(|last| last.set(ended));
            if let Some(outer) = frames.last_mut() {
                outer.inner_seen = true;
            }
        });
    }
}

/// Tells the enclosing call (a middleware's) that its inner body returned
/// `Pending`.
fn inner_returned_pending() {
    FRAMES.with(|frames| {
        if let Some(outer) = frames.borrow_mut().last_mut() {
            outer.inner_pending = true;
        }
    });
}

fn on_loop_thread() -> bool {
    FRAMES.with(|frames| !frames.borrow().is_empty())
}

/// How an asynchronous validated body is watched: the settings, the
/// application's type, whether the application turned out to be a
/// middleware around another validated application, and when the server's
/// waker was last woken.
#[derive(Debug)]
pub(super) struct AsyncWatch {
    watchdog: Watchdog,
    app: &'static str,
    middleware: bool,
    stamp: Arc<WakeStamp>,
    /// The last poll returned `Pending`.
    pending: AtomicBool,
}

/// When the server's waker was first woken since the last poll.
#[derive(Debug, Default)]
struct WakeStamp(Mutex<Option<Instant>>);

/// The server's waker, wrapped to stamp its first wake-up.
struct Stamping {
    inner: Waker,
    stamp: Arc<WakeStamp>,
}

impl Wake for Stamping {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.stamp.0).get_or_insert_with(Instant::now);
        self.inner.wake_by_ref();
    }
}

impl AsyncWatch {
    /// Right after the application's `call` returned on this thread.
    pub(super) fn after_call(watchdog: Watchdog, app: &'static str) -> Self {
        AsyncWatch {
            watchdog,
            app,
            middleware: LAST.with(Cell::get).inner_seen,
            stamp: Arc::default(),
            pending: AtomicBool::new(false),
        }
    }

    /// The waker to lend in place of the server's: the same, stamping
    /// the time of its first wake-up (unless late wake-ups are not
    /// watched).
    pub(super) fn stamped(&self, server: &Waker) -> Waker {
        if self.watchdog.late_wake.is_none() {
            return server.clone();
        }
        Waker::from(Arc::new(Stamping {
            inner: server.clone(),
            stamp: Arc::clone(&self.stamp),
        }))
    }

    /// Runs `work`, one `poll_step`, timed; first judges how long after a
    /// wake-up of the pending body the server polled (`RGIA-POLL-3`).
    pub(super) fn poll<T>(&self, request: &Request, work: impl FnOnce() -> Poll<T>) -> Poll<T> {
        let woken = lock(&self.stamp.0).take();
        if let (true, Some(woken), Some(allowed)) = (
            self.pending.load(Ordering::Relaxed),
            woken,
            self.watchdog.late_wake,
        ) {
            let late = woken.elapsed();
            if late > allowed {
                request.violate(
                    &rules::WAKE_HONOURED_LATE,
                    "the server polled a woken body only long after the wake-up",
                    format!("polled {late:?} after the wake-up (allowed: {allowed:?})"),
                );
            }
        }
        let polled = watch_async(&self.watchdog, request, AsyncSite::Poll, self.app, work);
        self.pending.store(polled.is_pending(), Ordering::Relaxed);
        if polled.is_pending() {
            inner_returned_pending();
        }
        polled
    }

    /// Runs `work`, dropping the body, timed.
    pub(super) fn drop_body<T>(&self, request: &Request, work: impl FnOnce() -> T) -> T {
        watch_async(&self.watchdog, request, AsyncSite::Drop, self.app, work)
    }

    /// The rule a `Pending` without a wake-up breaks, right after the poll
    /// that returned it: a middleware whose inner body did not return
    /// `Pending` in that poll made the `Pending` up (`RGIA-COMP-9`).
    pub(super) fn pending_rule(&self) -> &'static Rule {
        if self.middleware && !LAST.with(Cell::get).inner_pending {
            &rules::MIDDLEWARE_PENDING_WITHOUT_CAUSE
        } else {
            &rules::PENDING_WITHOUT_WAKEUP
        }
    }
}

/// The spec crate's adapter runs a synchronous application inline only
/// when its hints promise it never blocks, and otherwise hands it to
/// offload, so blocking inside it is that application's broken promise.
/// Matched by type name: the validator cannot see through the generic
/// parameter to the application's hints.
fn is_threaded_adapter(type_name: &str) -> bool {
    type_name.starts_with("rgi_async::threaded::Threaded<")
}

/// Runs `work`, a call into an asynchronous application of type
/// `app_type`, timing how long it blocks its thread.
pub(super) fn watch_async<T>(
    watchdog: &Watchdog,
    request: &Request,
    site: AsyncSite,
    app_type: &'static str,
    work: impl FnOnce() -> T,
) -> T {
    let measure = watchdog.blocking.map(|_| Measure::start());
    let result = {
        let _scope = AsyncScope::enter(*watchdog);
        work()
    };
    let (Some(measure), Some(threshold)) = (measure, watchdog.blocking) else {
        return result;
    };
    let spent = measure.finish().without(LAST.with(Cell::get).in_services);
    if spent.exceeds(threshold) {
        let (rule, what): (&Rule, &str) = match site {
            _ if is_threaded_adapter(app_type) => (
                &rules::INLINE_SYNC_APP_BLOCKED,
                "the synchronous application the threaded adapter ran inline (its hints say it never blocks) blocked the loop thread",
            ),
            AsyncSite::Call => (
                &rules::ASYNC_CALL_BLOCKED,
                "the asynchronous application's call blocked its thread",
            ),
            AsyncSite::Poll => (
                &rules::ASYNC_POLL_BLOCKED,
                "the asynchronous body's poll_step blocked its thread",
            ),
            AsyncSite::Drop => (
                &rules::ASYNC_DROP_BLOCKED,
                "the asynchronous body's Drop blocked its thread",
            ),
        };
        request.violate(rule, what, spent.describe(threshold));
    }
    result
}

/// Runs `work`, a synchronous application's `call`: reports a server that
/// runs an application that may block on a loop thread, and times an
/// application whose hints say it never blocks.
pub(super) fn watch_sync_call<T>(
    watchdog: &Watchdog,
    request: &Request,
    hints: Hints,
    work: impl FnOnce() -> T,
) -> T {
    watch_sync_step(&BodyWatch::new(*watchdog, hints), request, "call", work)
}

/// As [`watch_sync_call`], for `next_chunk`.
pub(super) fn watch_sync_pull<T>(
    watch: &BodyWatch,
    request: &Request,
    work: impl FnOnce() -> T,
) -> T {
    watch_sync_step(watch, request, "next_chunk", work)
}

fn watch_sync_step<T>(
    watch: &BodyWatch,
    request: &Request,
    what: &str,
    work: impl FnOnce() -> T,
) -> T {
    if watch.hinted && watch.may_block && on_loop_thread() {
        request.violate(
            &rules::BLOCKING_APP_ON_LOOP_THREAD,
            "a synchronous application whose hints allow blocking is run inside an asynchronous call, on a loop thread",
            format!("{what} in {:?}", thread::current().id()),
        );
    }
    let threshold = watch.watchdog.blocking.filter(|_| !watch.may_block);
    let Some(threshold) = threshold else {
        return work();
    };
    let measure = Measure::start();
    let result = work();
    let spent = measure.finish();
    if spent.exceeds(threshold) {
        request.violate(
            &rules::NON_BLOCKING_HINT_BROKEN,
            format!(
                "the application's hints say it never blocks, but its {what} blocked its thread"
            ),
            spent.describe(threshold),
        );
    }
    result
}

/// Runs `work`, dropping a synchronous body, timing it (`RGI-BODY-13`).
pub(super) fn watch_sync_drop<T>(
    watch: &BodyWatch,
    request: &Request,
    work: impl FnOnce() -> T,
) -> T {
    let Some(threshold) = watch.watchdog.slow_drop else {
        return work();
    };
    let measure = Measure::start();
    let result = work();
    let spent = measure.finish();
    if spent.exceeds(threshold) {
        request.violate(
            &rules::SLOW_BODY_DROP,
            "the body's Drop did not return promptly",
            spent.describe(threshold),
        );
    }
    result
}

// ---- The server's services, as the application polls them ----

/// Takes `blocked` out of the account of every call in progress on this
/// thread: time that is not the application's.
fn credit_to_services(blocked: Duration) {
    FRAMES.with(|frames| {
        for frame in frames.borrow_mut().iter_mut() {
            frame.in_services += blocked;
        }
    });
}

/// Runs `work`, a wait of the validator's own inside a call into the
/// application (it holds `spawn` back briefly to see an early task), and
/// takes the time it blocked out of the application's account, as time in
/// the server's services is: the validator must not make the application
/// it watches look blocking.
pub(super) fn validator_wait<T>(work: impl FnOnce() -> T) -> T {
    let measure = Measure::start();
    let result = work();
    let spent = measure.finish();
    let blocked = spent.blocked.unwrap_or(spent.wall);
    credit_to_services(blocked);
    result
}

/// Runs `work`, an operation of the server's capability service named
/// `what` (`Offload::run`, `AfterResponse::spawn`, `Upgrade::accept`),
/// timing it: the time it blocks is the server's, so it is taken out of
/// the enclosing application call's, and an `execute` or `spawn` that
/// blocks beyond the allowance breaks `RGIA-OFFLOAD-2` or `RGIA-AFTER-4`.
pub(super) fn watch_service<T>(request: &Request, what: &str, work: impl FnOnce() -> T) -> T {
    let watchdog = FRAMES
        .with(|frames| frames.borrow().last().map(|frame| frame.watchdog))
        .unwrap_or_default();
    let Some(threshold) = watchdog.blocking else {
        return work();
    };
    let measure = Measure::start();
    let result = work();
    let spent = measure.finish();
    let blocked = spent.blocked.unwrap_or(spent.wall);
    credit_to_services(blocked);
    let rule = match what {
        "Offload::run" => Some(&rules::OFFLOAD_EXECUTE_BLOCKED),
        "AfterResponse::spawn" => Some(&rules::AFTER_SPAWN_BLOCKED),
        _ => None,
    };
    if let (Some(rule), true) = (rule, spent.exceeds(threshold)) {
        request.violate(
            rule,
            format!("the server's service blocked the thread that called {what}"),
            spent.describe(threshold),
        );
    }
    result
}

/// The waker of the body poll in progress, if `cx` carries it: a service
/// future polled with it must keep a clone when it returns `Pending`.
// Only readiness waits (Unix) poll a server's future with the lent waker.
#[cfg_attr(not(unix), allow(dead_code))]
pub(super) fn lent_waker(request: &Request, cx: &Context<'_>) -> Option<(Arc<PollWaker>, usize)> {
    let lent = request.with(|t| {
        t.poll_waker
            .as_ref()
            .filter(|waker| cx.waker().data() == Arc::as_ptr(waker).cast::<()>())
            .cloned()
    })?;
    let count = Arc::strong_count(&lent);
    Some((lent, count))
}

/// After a server's service future returned `Pending` to a body's poll:
/// if it neither kept nor woke the body's waker, nothing will ever wake
/// the body, and the stall is the server's (`rule`), not the body's.
// Only readiness waits (Unix) poll a server's future with the lent waker.
#[cfg_attr(not(unix), allow(dead_code))]
pub(super) fn judge_service_pending(
    request: &Request,
    lent: Option<(Arc<PollWaker>, usize)>,
    rule: &Rule,
    what: &str,
) {
    let Some((waker, before)) = lent else {
        return;
    };
    if Arc::strong_count(&waker) > before || waker.was_woken() {
        return;
    }
    request.with(|t| {
        t.source_blamed = true;
        t.violate(
            rule,
            format!("the server's {what} returned Pending without keeping the waker: it can never resolve"),
            what.to_owned(),
        );
    });
}

/// When a readiness wait that was polled is dropped unresolved: if its
/// timeout elapsed longer ago than the late-wake allowance, the server's
/// timer never fired (`RGIA-READY-7`), and the body that waited on it was
/// stalled by the server.
#[cfg_attr(not(unix), allow(dead_code))]
pub(super) fn judge_unresolved_wait(
    request: &Request,
    first_poll: Option<Instant>,
    timeout: Option<Duration>,
) {
    let watchdog = FRAMES
        .with(|frames| frames.borrow().last().map(|frame| frame.watchdog))
        .unwrap_or_default();
    let (Some(first_poll), Some(timeout), Some(allowed)) =
        (first_poll, timeout, watchdog.late_wake)
    else {
        return;
    };
    let pending = first_poll.elapsed();
    if pending > timeout.saturating_add(allowed) {
        request.violate(
            &rules::READINESS_TIMEOUT_MISSED,
            "a readiness wait was still pending when dropped, long after its timeout",
            format!("timeout {timeout:?}, pending for {pending:?} since its first poll (allowed: {allowed:?} late)"),
        );
    }
}

// ---- Measuring ----

/// How often the sampler looks at the watched threads.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// The most one sample can count: a sampler that was itself descheduled
/// for a while does not know what the thread did meanwhile.
const SAMPLE_CAP: Duration = Duration::from_millis(10);

/// One watched call in progress.
struct Slot {
    tid: u32,
    blocked_micros: AtomicU64,
    done: AtomicBool,
    /// When the sampler last looked (or the call started); the sampler's.
    last: Mutex<Instant>,
}

struct Sampler {
    slots: Arc<Mutex<Vec<Arc<Slot>>>>,
    thread: Thread,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process's sampler, started on first use; `None` where thread
/// states cannot be read or the thread cannot start.
fn sampler() -> Option<&'static Sampler> {
    static SAMPLER: OnceLock<Option<Sampler>> = OnceLock::new();
    SAMPLER
        .get_or_init(|| {
            let tid = this_tid()?;
            thread_blocked(tid)?;
            let slots: Arc<Mutex<Vec<Arc<Slot>>>> = Arc::default();
            let shared = Arc::clone(&slots);
            let handle = thread::Builder::new()
                .name("rgi-watchdog".into())
                .spawn(move || sample(&shared))
                .ok()?;
            Some(Sampler {
                slots,
                thread: handle.thread().clone(),
            })
        })
        .as_ref()
}

/// The sampler thread: parks while nothing is watched.
fn sample(slots: &Mutex<Vec<Arc<Slot>>>) {
    loop {
        let active: Vec<Arc<Slot>> = {
            let mut slots = lock(slots);
            slots.retain(|slot| !slot.done.load(Ordering::SeqCst));
            slots.clone()
        };
        if active.is_empty() {
            thread::park_timeout(Duration::from_secs(1));
            continue;
        }
        for slot in &active {
            let blocked = thread_blocked(slot.tid);
            let now = Instant::now();
            let since = {
                let mut last = lock(&slot.last);
                let since = now.saturating_duration_since(*last);
                *last = now;
                since
            };
            if blocked == Some(true) {
                let counted = u64::try_from(since.min(SAMPLE_CAP).as_micros()).unwrap_or(0);
                slot.blocked_micros.fetch_add(counted, Ordering::SeqCst);
            }
        }
        thread::sleep(SAMPLE_EVERY);
    }
}

thread_local! {
    /// This thread's kernel thread ID, once read.
    static TID: Cell<Option<Option<u32>>> = const { Cell::new(None) };
}

/// The calling thread's kernel thread ID, from `/proc/thread-self` (a
/// link to `<pid>/task/<tid>`), without `unsafe` code.
fn this_tid() -> Option<u32> {
    TID.with(|cached| {
        if let Some(tid) = cached.get() {
            return tid;
        }
        let tid = read_tid();
        cached.set(Some(tid));
        tid
    })
}

#[cfg(target_os = "linux")]
fn read_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn read_tid() -> Option<u32> {
    None
}

/// Whether thread `tid` of this process is blocked right now (`None`
/// when its state cannot be read). The state is the first field after the
/// command name, which is in parentheses and may itself hold any byte.
fn thread_blocked(tid: u32) -> Option<bool> {
    let stat = std::fs::read(format!("/proc/self/task/{tid}/stat")).ok()?;
    let close = stat.iter().rposition(|&byte| byte == b')')?;
    let state = stat[close + 1..]
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())?;
    Some(matches!(state, b'S' | b'D'))
}

/// The time one call took, blocked and in all.
#[derive(Debug, Clone, Copy)]
struct Spent {
    /// Blocked time, when the thread's state was sampled.
    blocked: Option<Duration>,
    wall: Duration,
}

impl Spent {
    /// The same, less time that was someone else's.
    fn without(self, others: Duration) -> Self {
        Spent {
            blocked: self.blocked.map(|blocked| blocked.saturating_sub(others)),
            wall: self.wall.saturating_sub(others),
        }
    }

    fn exceeds(&self, threshold: Duration) -> bool {
        match self.blocked {
            Some(blocked) => blocked > threshold,
            None => self.wall > threshold.max(Watchdog::WALL_CLOCK_FLOOR),
        }
    }

    fn describe(&self, threshold: Duration) -> String {
        match self.blocked {
            Some(blocked) => format!(
                "blocked for {blocked:?} of {:?} (allowed: {threshold:?} blocked)",
                self.wall
            ),
            None => format!(
                "took {:?} (allowed: {:?})",
                self.wall,
                threshold.max(Watchdog::WALL_CLOCK_FLOOR)
            ),
        }
    }
}

/// A measurement in progress; stops being sampled when dropped, also by
/// a panic of the call it measures.
struct Measure {
    slot: Option<Arc<Slot>>,
    started: Instant,
}

impl Measure {
    fn start() -> Self {
        let started = Instant::now();
        let slot = sampler().zip(this_tid()).map(|(sampler, tid)| {
            let slot = Arc::new(Slot {
                tid,
                blocked_micros: AtomicU64::new(0),
                done: AtomicBool::new(false),
                last: Mutex::new(started),
            });
            let mut slots = lock(&sampler.slots);
            slots.push(Arc::clone(&slot));
            if slots.len() == 1 {
                sampler.thread.unpark();
            }
            slot
        });
        Measure { slot, started }
    }

    fn finish(self) -> Spent {
        let wall = self.started.elapsed();
        let blocked = self.slot.as_ref().map(|slot| {
            slot.done.store(true, Ordering::SeqCst);
            Duration::from_micros(slot.blocked_micros.load(Ordering::SeqCst))
        });
        Spent { blocked, wall }
    }
}

impl Drop for Measure {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            slot.done.store(true, Ordering::SeqCst);
        }
    }
}
