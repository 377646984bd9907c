//! What the validator knows about one request, shared by the hook, the
//! body wrappers, the input observer and the capability wrappers.
//!
//! The response side keeps a shadow of the server's `ResponseState`: the
//! hook sees every head and write before the server's state does, so it
//! can predict which calls the server will reject and watch what the
//! application does with the error.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{RawWakerVTable, Wake, Waker};
use std::thread::{self, ThreadId};

use bytes::Bytes;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use rgi::{HeadError, Intercept, ResponseHead};

use super::rules::{self, Rule};
use crate::{Reports, Violation};

/// Which interface a piece of the validator serves; it picks the clause
/// of checks that exist in both documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// A synchronous body (an application's, or a switch continuation's).
    Sync,
    /// An asynchronous body.
    Async,
}

/// Where a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// `StartResponse::write`.
    Write,
    /// A chunk the body yielded (or bytes a server sent from a file body).
    Chunk,
}

/// A start or replace the server is about to reject, which the
/// application has to react to before its call or pull returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartFailure {
    AlreadyStarted,
    InvalidHead,
    HeadAlreadySent,
}

/// The validator-wide list of bodies and of the threads that poll them.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, Live>>,
}

/// One request's entry in the [`Registry`].
#[derive(Debug)]
struct Live {
    flavor: Flavor,
    /// Threads that called or polled the request while its asynchronous
    /// part was alive: the request's loop threads.
    loop_threads: Vec<ThreadId>,
    /// Whether a body was handed to the server (only those can be kept).
    has_body: bool,
}

impl Registry {
    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Live>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a request (or a continuation's body); returns its id.
    pub(crate) fn open(&self, flavor: Flavor) -> u64 {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let mut loop_threads = Vec::new();
        if flavor == Flavor::Async {
            loop_threads.push(thread::current().id());
        }
        self.live().insert(
            id,
            Live {
                flavor,
                loop_threads,
                has_body: false,
            },
        );
        id
    }

    /// Records that the entry's body went to the server.
    pub(crate) fn body_created(&self, id: u64) {
        if let Some(live) = self.live().get_mut(&id) {
            live.has_body = true;
        }
    }

    /// Records that the current thread polls the entry's body.
    pub(crate) fn polled_here(&self, id: u64) {
        let here = thread::current().id();
        let mut live = self.live();
        let threads = live.get_mut(&id).map(|entry| &mut entry.loop_threads);
        if let Some(threads) = threads.filter(|threads| !threads.contains(&here)) {
            threads.push(here);
        }
    }

    /// Removes the entry: its body was dropped, or it never got one.
    pub(crate) fn close(&self, id: u64) {
        self.live().remove(&id);
    }

    /// Whether `thread` is a loop thread of a live asynchronous body.
    pub(crate) fn is_loop_thread(&self, thread: ThreadId) -> bool {
        self.live()
            .values()
            .any(|live| live.flavor == Flavor::Async && live.loop_threads.contains(&thread))
    }

    /// The bodies handed to the server and never dropped, with their
    /// flavor.
    pub(crate) fn kept(&self) -> Vec<(u64, Flavor)> {
        self.live()
            .iter()
            .filter(|(_, live)| live.has_body)
            .map(|(id, live)| (*id, live.flavor))
            .collect()
    }
}

thread_local! {
    /// Set while a panic the validator has already judged unwinds (the
    /// panic policy reporting a violation, or a server component's panic
    /// passing through the application), so that the validator's outer
    /// panic catching lets it through without blaming the application.
    static JUDGED: Cell<bool> = const { Cell::new(false) };
}

/// Reports `violation`, marking the unwind if the policy panics.
pub(crate) fn report(reports: &Reports, violation: Violation) {
    let panics = reports.panics_on(&violation);
    if panics {
        mark_judged();
    }
    reports.report(violation);
    if panics {
        clear_judged();
    }
}

/// Marks the panic about to unwind as judged already.
pub(crate) fn mark_judged() {
    JUDGED.with(|judged| judged.set(true));
}

/// Whether a caught panic was judged already. The mark stays for outer
/// catchers of the same unwind; every guarded region clears it first.
pub(crate) fn is_judged() -> bool {
    JUDGED.with(Cell::get)
}

/// Clears a mark left by an earlier unwind, before a guarded region.
pub(crate) fn clear_judged() {
    JUDGED.with(|judged| judged.set(false));
}

/// Reports the bodies of `registry` that were never dropped; the
/// validators call it when they are dropped themselves (a server that
/// drops its application is shutting down).
pub(crate) fn report_kept(registry: &Registry, reports: &Reports) {
    if thread::panicking() {
        // Reporting could panic again and abort the process.
        return;
    }
    for (id, flavor) in registry.kept() {
        let rule = match flavor {
            Flavor::Sync => rules::BODY_KEPT,
            Flavor::Async => rules::ASYNC_BODY_KEPT,
        };
        report(
            reports,
            Violation::new(
                rule.clause(),
                rule.side,
                "the validator was dropped while a body it returned was still alive (leaked or kept)",
                format!("request #{id}"),
            ),
        );
    }
}

/// The waker the asynchronous validator lends for one poll: forwards to
/// the server's waker and records that it was woken.
#[derive(Debug)]
pub(crate) struct PollWaker {
    inner: Waker,
    /// Woken during or after the poll that created it.
    woken: AtomicBool,
    /// The request, for its busy-polling flag and to report a server
    /// waker that panics.
    request: Arc<Request>,
}

impl PollWaker {
    pub(crate) fn new(inner: Waker, request: Arc<Request>) -> Self {
        PollWaker {
            inner,
            woken: AtomicBool::new(false),
            request,
        }
    }

    pub(crate) fn was_woken(&self) -> bool {
        self.woken.load(Ordering::SeqCst)
    }

    fn wake_inner(&self) {
        self.woken.store(true, Ordering::SeqCst);
        self.request.woken.store(true, Ordering::SeqCst);
        clear_judged();
        let woken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.inner.wake_by_ref();
        }));
        if let Err(payload) = woken {
            if !is_judged() {
                self.request.violate(
                    &rules::WAKER_PANICKED,
                    "waking the server's waker panicked",
                    panic_text(&*payload),
                );
            }
            mark_judged();
            std::panic::resume_unwind(payload);
        }
    }
}

impl Wake for PollWaker {
    fn wake(self: Arc<Self>) {
        self.wake_inner();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_inner();
    }
}

/// Everything the validator tracks for one request.
#[derive(Debug)]
pub(crate) struct Request {
    reports: Reports,
    pub(crate) registry: Arc<Registry>,
    /// The request's registry entry.
    pub(crate) id: u64,
    pub(crate) flavor: Flavor,
    /// Set by every [`PollWaker`] of this request.
    pub(crate) woken: AtomicBool,
    /// The vtable of the waker `rgi::Input` uses for its blocking face, to
    /// tell blocking reads from polls.
    pub(crate) park_vtable: Option<RawWakerVTable>,
    tracker: Mutex<Tracker>,
}

impl Request {
    pub(crate) fn new(
        reports: Reports,
        registry: Arc<Registry>,
        flavor: Flavor,
        head_request: bool,
    ) -> Arc<Self> {
        let id = registry.open(flavor);
        Arc::new(Request {
            reports,
            registry,
            id,
            flavor,
            woken: AtomicBool::new(false),
            park_vtable: super::park::park_vtable(),
            tracker: Mutex::new(Tracker::new(head_request)),
        })
    }

    /// Runs `f` on the tracker, then reports what it found, after the lock
    /// is released (the panic policy must not poison it).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Tracker) -> R) -> R {
        let (result, found) = {
            let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
            let result = f(&mut tracker);
            (result, std::mem::take(&mut tracker.found))
        };
        for violation in found {
            report(&self.reports, violation);
        }
        result
    }

    /// Runs `f` on the tracker without reporting: for `Drop` impls, which
    /// must not panic. What `f` found is reported by the next [`with`](Self::with).
    pub(crate) fn quietly(&self, f: impl FnOnce(&mut Tracker)) {
        let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut tracker);
    }

    /// Judges how dropping a wrapped body went (`dropped`, from
    /// [`drop_body`]): a panic nobody judged yet is reported against the
    /// drop rule, then unwinds on to whoever drives the body.
    pub(crate) fn judge_drop(&self, dropped: std::thread::Result<()>) {
        if let Err(payload) = dropped {
            if !thread::panicking() && !is_judged() {
                self.violate(
                    &rules::BODY_DROP_PANICKED,
                    "dropping the body panicked",
                    panic_text(&*payload),
                );
            }
            std::panic::resume_unwind(payload);
        }
    }

    /// Reports one violation of `rule` (at most once per request).
    pub(crate) fn violate(
        &self,
        rule: &Rule,
        message: impl Into<String>,
        value: impl Into<String>,
    ) {
        self.with(|t| t.violate(rule, message, value));
    }
}

/// The mutable part of [`Request`].
#[derive(Debug)]
pub(crate) struct Tracker {
    /// Violations found and not yet reported.
    found: Vec<Violation>,
    /// Checks already reported for this request.
    reported: BTreeSet<&'static str>,

    head_request: bool,
    /// The application declared `InputUse::None`.
    pub(crate) hints_no_input: bool,
    /// The descriptors of this request's readiness waits in progress (polled,
    /// neither resolved nor dropped), one entry per source (RGIA-READY-20).
    pub(crate) waited: Vec<rgi_async::RawSource>,

    // The shadow of the response state.
    started: bool,
    head_sent: bool,
    status: Option<StatusCode>,
    declared: Option<u64>,
    content_type: bool,
    /// Body bytes yielded, written or sent from a file so far.
    produced: u64,

    start_rejected: bool,
    pub(crate) pending: Option<StartFailure>,
    write_failed: bool,
    /// The latest size hint and the bytes produced when it was given.
    hint: Option<(u64, u64)>,
    hinted: bool,
    last_chunk_nonempty: bool,

    /// The server lent a handle that forgot the response state; from then
    /// on the application is not blamed for what a missing start causes.
    state_lost: bool,

    /// The application was told that the request body was truncated.
    pub(crate) truncated_seen: bool,
    /// What the input checks remember across the request.
    pub(crate) input_watch: super::input_watch::Watch,
    pub(crate) upgrade_accepted: bool,

    /// The thread inside the asynchronous `call` or `poll_step`.
    pub(crate) loop_scope: Option<ThreadId>,
    /// The thread inside a switch continuation.
    pub(crate) sync_scope: Option<ThreadId>,
    /// The waker lent for the poll in progress.
    pub(crate) poll_waker: Option<Arc<PollWaker>>,
    /// This poll's `Pending` is the server's input source's fault.
    pub(crate) source_blamed: bool,

    /// The asynchronous body was dropped.
    pub(crate) async_body_dropped: bool,
    /// The response is over as far as the application is concerned: the
    /// last body ended or was dropped, or the call failed.
    pub(crate) done: bool,
    /// What the handle said when the body switched.
    pub(crate) at_switch: Option<(bool, bool)>,
}

impl Tracker {
    fn new(head_request: bool) -> Self {
        Tracker {
            found: Vec::new(),
            reported: BTreeSet::new(),
            head_request,
            hints_no_input: false,
            waited: Vec::new(),
            started: false,
            head_sent: false,
            status: None,
            declared: None,
            content_type: false,
            produced: 0,
            start_rejected: false,
            pending: None,
            write_failed: false,
            hint: None,
            hinted: false,
            last_chunk_nonempty: false,
            state_lost: false,
            truncated_seen: false,
            input_watch: super::input_watch::Watch::default(),
            upgrade_accepted: false,
            loop_scope: None,
            sync_scope: None,
            poll_waker: None,
            source_blamed: false,
            async_body_dropped: false,
            done: false,
            at_switch: None,
        }
    }

    /// Records a violation of `rule`, unless it was reported already for
    /// this request.
    pub(crate) fn violate(
        &mut self,
        rule: &Rule,
        message: impl Into<String>,
        value: impl Into<String>,
    ) {
        if self.reported.insert(rule.name()) {
            self.found
                .push(Violation::new(rule.clause(), rule.side, message, value));
        }
    }

    /// Whether the head was sent, as far as the validator knows.
    pub(crate) fn head_sent(&self) -> bool {
        self.head_sent
    }

    /// Whether the response was started, as far as the validator knows.
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    fn bodiless(&self) -> bool {
        self.status.is_some_and(|status| {
            status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
        })
    }

    /// Whether the declared length binds the body (not for HEAD or 304).
    fn length_binds(&self) -> bool {
        !self.head_request && self.status != Some(StatusCode::NOT_MODIFIED)
    }

    /// The start of a call or pull: compares the handle the server lent
    /// with what the validator saw before, then adopts the handle's state.
    pub(crate) fn begin(&mut self, started: bool, head_sent: bool, flavor: Flavor, pull: bool) {
        let (lost, not_sent) = match flavor {
            Flavor::Sync => (rules::HANDLE_STATE_LOST, rules::CHUNK_NOT_SENT),
            Flavor::Async => (rules::ASYNC_HANDLE_STATE_LOST, rules::ASYNC_CHUNK_NOT_SENT),
        };
        if (self.started && !started) || (self.head_sent && !head_sent) {
            self.state_lost = true;
            self.violate(
                &lost,
                "the handle lent for this step has forgotten the response state: it does not come from the request's own ResponseState",
                format!(
                    "before: started={}, head sent={}; now: started={started}, head sent={head_sent}",
                    self.started, self.head_sent
                ),
            );
        } else if pull && self.last_chunk_nonempty && started && !self.bodiless() && !head_sent {
            self.violate(
                &not_sent,
                "the body was asked for more before its last non-empty chunk reached send_chunk (the head is still unsent)",
                format!("status {:?}", self.status),
            );
        }
        self.adopt(started, head_sent);
        self.pending = None;
        self.last_chunk_nonempty = false;
    }

    /// Takes the handle's word for the state, without judging the server.
    pub(crate) fn adopt(&mut self, started: bool, head_sent: bool) {
        self.started = started;
        self.head_sent = head_sent;
    }

    /// Records that the server lost the response state (the switch
    /// checks find this).
    pub(crate) fn lose_state(&mut self) {
        self.state_lost = true;
    }

    /// The start of `call`: the handle must come from a fresh state.
    pub(crate) fn check_fresh_state(&mut self, started: bool, head_sent: bool, flavor: Flavor) {
        if started || head_sent {
            let rule = match flavor {
                Flavor::Sync => rules::STATE_REUSED,
                Flavor::Async => rules::ASYNC_STATE_REUSED,
            };
            self.state_lost = true;
            self.violate(
                &rule,
                "the handle lent to call comes from a response state that was used before",
                format!("started={started}, head sent={head_sent}"),
            );
        }
    }

    /// The end of a call or pull: an error from start or replace must
    /// have been answered by returning a failure.
    pub(crate) fn end(&mut self, failed: bool) {
        let pending = self.pending.take();
        if self.state_lost {
            // What the server's lost or reused state made fail is its own
            // violation, reported already.
            return;
        }
        match pending {
            Some(StartFailure::HeadAlreadySent) if !failed => self.violate(
                &rules::HEAD_ALREADY_SENT_SWALLOWED,
                "replace returned HeadAlreadySent, but the application did not return the failure",
                format!("status {:?} already sent", self.status),
            ),
            Some(StartFailure::AlreadyStarted | StartFailure::InvalidHead) if !failed => self.violate(
                &rules::START_ERROR_IGNORED,
                "start or replace failed, but the application neither corrected the head nor returned a failure",
                format!("status {:?}", self.status),
            ),
            _ => {}
        }
    }

    /// A head given to `start` (`replace` false) or `replace`.
    fn on_head(&mut self, head: &ResponseHead, replace: bool) {
        if self.upgrade_accepted {
            self.violate(
                &rules::HTTP_AFTER_UPGRADE,
                "the application started a response after accepting an upgrade",
                head.status().to_string(),
            );
        }
        if replace {
            if self.started && self.head_sent {
                self.pending = Some(StartFailure::HeadAlreadySent);
                return;
            }
        } else if self.started {
            if self.state_lost {
                // The server lent a used response state: not the
                // application's second start.
                self.pending = Some(StartFailure::AlreadyStarted);
                return;
            }
            self.violate(
                &rules::START_TWICE,
                "start was called on a response that is already started (use replace to change the head)",
                format!("current {:?}, attempted {}", self.status, head.status()),
            );
            self.pending = Some(StartFailure::AlreadyStarted);
            return;
        }
        match head.validate() {
            Ok(declared) => {
                if self.input_watch.refuses_after_reading(head.status()) {
                    self.violate(
                        &rules::READ_BEFORE_REFUSING,
                        "the application read the body of an Expect: 100-continue request, then refused it for a reason its head already showed",
                        head.status().to_string(),
                    );
                }
                self.started = true;
                self.status = Some(head.status());
                self.declared = declared;
                self.content_type = head.headers().contains_key(CONTENT_TYPE);
                if self.pending == Some(StartFailure::InvalidHead) {
                    self.pending = None;
                }
            }
            Err(error) => {
                let rule = match &error {
                    HeadError::InformationalStatus { .. } | HeadError::InvalidStatus { .. } => {
                        Some(rules::HEAD_INFORMATIONAL_STATUS)
                    }
                    HeadError::HopByHop { .. } => Some(rules::HEAD_HOP_BY_HOP),
                    HeadError::InvalidContentLength { .. } => {
                        Some(rules::HEAD_CONTENT_LENGTH_INVALID)
                    }
                    HeadError::ContentLengthNotAllowed { .. } => {
                        Some(rules::HEAD_CONTENT_LENGTH_ON_204)
                    }
                    // Names and values the `http` types cannot hold, and
                    // variants of later versions: the server rejects
                    // them and the pending failure is still watched.
                    _ => None,
                };
                if let Some(rule) = rule {
                    self.violate(&rule, format!("invalid head: {error}"), format!("{head:?}"));
                }
                self.start_rejected = true;
                self.pending = Some(StartFailure::InvalidHead);
            }
        }
    }

    /// `len` bytes of output; `flavor` picks the size-hint clause.
    pub(crate) fn on_output(&mut self, len: u64, kind: Output, flavor: Flavor) {
        if len == 0 {
            return;
        }
        let what = match kind {
            Output::Write => "wrote",
            Output::Chunk => "yielded",
        };
        if self.upgrade_accepted {
            self.violate(
                &rules::HTTP_AFTER_UPGRADE,
                format!("the application {what} body data after accepting an upgrade"),
                format!("{len} bytes"),
            );
            return;
        }
        if kind == Output::Write && self.loop_scope == Some(thread::current().id()) {
            self.violate(
                &rules::WRITE_IN_ASYNC_CONTEXT,
                "an asynchronous application sent data through write instead of yielding a chunk",
                format!("{len} bytes"),
            );
        }
        if self.write_failed {
            self.violate(
                &rules::WRITE_AFTER_WRITE_ERROR,
                format!("the application {what} more data after a write had failed"),
                format!("{len} bytes"),
            );
        }
        if !self.started {
            if self.state_lost {
                // The server forgot the head; that is its fault, reported.
            } else if self.start_rejected || self.pending.is_some() {
                self.violate(
                    &rules::START_ERROR_IGNORED,
                    format!("the application {what} body data after its start was rejected"),
                    format!("{len} bytes"),
                );
            } else {
                self.violate(
                    &rules::OUTPUT_BEFORE_START,
                    format!("the application {what} body data before starting the response"),
                    format!("{len} bytes"),
                );
            }
            self.write_failed |= kind == Output::Write;
            return;
        }
        if self.bodiless() {
            self.violate(
                &rules::CONTENT_IN_BODILESS_STATUS,
                format!("the application {what} body data for a status that has no content"),
                format!("{len} bytes with status {:?}", self.status),
            );
            self.write_failed |= kind == Output::Write;
            return;
        }
        if !self.content_type && !self.head_request {
            self.violate(
                &rules::CONTENT_TYPE_MISSING,
                "the response has content but no content-type field",
                format!("status {:?}", self.status),
            );
        }
        self.produced = self.produced.saturating_add(len);
        if let Some(declared) = self.declared.filter(|&declared| self.produced > declared) {
            if self.length_binds() {
                self.violate(
                    &rules::CONTENT_LENGTH_EXCEEDED,
                    "the application produced more bytes than its content-length declares",
                    format!("declared {declared}, produced {}", self.produced),
                );
            }
            self.write_failed |= kind == Output::Write;
        }
        if let Some((hint, at)) = self.hint {
            let since = self.produced - at;
            if since > hint {
                let rule = match flavor {
                    Flavor::Sync => rules::SIZE_HINT_OVERRUN,
                    Flavor::Async => rules::ASYNC_SIZE_HINT_OVERRUN,
                };
                self.violate(
                    &rule,
                    "the body produced more bytes than its size_hint promised",
                    format!("hint {hint}, produced {since} since"),
                );
            }
        }
        if kind == Output::Write {
            self.head_sent = true;
        }
    }

    /// A chunk the body returned.
    pub(crate) fn on_chunk(&mut self, chunk: &Bytes, flavor: Flavor) {
        self.on_output(chunk.len() as u64, Output::Chunk, flavor);
        self.last_chunk_nonempty = !chunk.is_empty();
    }

    /// The body's answer to `size_hint`.
    pub(crate) fn on_size_hint(&mut self, hint: Option<u64>) {
        if let Some(hint) = hint {
            self.hint = Some((hint, self.produced));
            self.hinted = true;
        }
    }

    /// Whether the body ever gave a size hint.
    pub(crate) fn hinted(&self) -> bool {
        self.hinted
    }

    /// The body ended normally (`None`).
    pub(crate) fn on_end(&mut self, flavor: Flavor) {
        if self.upgrade_accepted {
            return;
        }
        if !self.started {
            if self.state_lost {
                // The server forgot the head; that is its fault, reported.
            } else if self.start_rejected {
                self.violate(
                    &rules::START_ERROR_IGNORED,
                    "the body ended normally although its start was rejected",
                    "no head stored",
                );
            } else {
                self.violate(
                    &rules::ENDED_WITHOUT_START,
                    "the body ended without the response ever being started",
                    "no head stored",
                );
            }
            return;
        }
        let binds = self.length_binds() && !self.bodiless();
        if let Some(declared) = self
            .declared
            .filter(|&declared| binds && self.produced < declared)
        {
            self.violate(
                &rules::CONTENT_LENGTH_SHORT,
                "the body ended before producing its declared content-length",
                format!("declared {declared}, produced {}", self.produced),
            );
        }
        if let Some((hint, at)) = self.hint {
            let since = self.produced - at;
            if since < hint {
                let rule = match flavor {
                    Flavor::Sync => rules::SIZE_HINT_SHORTFALL,
                    Flavor::Async => rules::ASYNC_SIZE_HINT_SHORTFALL,
                };
                self.violate(
                    &rule,
                    "the body ended before producing the bytes its size_hint promised",
                    format!("hint {hint}, produced {since} since"),
                );
            }
        }
        if self.truncated_seen && self.status.is_some_and(|status| status.is_success()) {
            self.violate(
                &rules::TRUNCATED_BODY_ACCEPTED,
                "the request body was truncated, yet the application completed a success response",
                format!("status {:?}", self.status),
            );
        }
    }
}

/// The validator's [`Intercept`]: every head and write of the application
/// passes through it, before the server's rules are applied.
pub(crate) struct Hook<'r> {
    request: &'r Request,
    replacing: bool,
    flavor: Flavor,
}

impl<'r> Hook<'r> {
    pub(crate) fn new(request: &'r Request, flavor: Flavor) -> Self {
        Hook {
            request,
            replacing: false,
            flavor,
        }
    }
}

impl Intercept for Hook<'_> {
    fn on_replace(&mut self, _cause: &rgi::BoxError) {
        self.replacing = true;
    }

    fn on_start(&mut self, head: &mut ResponseHead) {
        let replace = std::mem::take(&mut self.replacing);
        self.request.with(|t| t.on_head(head, replace));
    }

    fn on_write(&mut self, data: &mut Bytes) {
        let flavor = self.flavor;
        self.request
            .with(|t| t.on_output(data.len() as u64, Output::Write, flavor));
    }
}

/// Which kind of step [`scoped`] wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `call`: the server lends a fresh handle.
    Call,
    /// A pull or poll: the handle must still know the earlier steps, and
    /// the last chunk must have been sent.
    Pull,
    /// A switch continuation, whose handle the switch checks judge.
    Continuation,
}

/// Runs one step of the application (`work`) with the validator's hook
/// interposed: checks the handle first, reports a panic (then lets it
/// continue to the server), and checks afterwards that a rejected start
/// was answered by a failure (`failed` says whether the step's result is
/// one).
pub(crate) fn scoped<T>(
    request: &Request,
    flavor: Flavor,
    start: &mut rgi::StartResponse<'_>,
    scope: Scope,
    failed: impl FnOnce(&T) -> bool,
    work: impl FnOnce(&mut rgi::StartResponse<'_>) -> T,
) -> T {
    let (started, head_sent) = (start.is_started(), start.is_head_sent());
    request.with(|t| match scope {
        Scope::Call => {
            t.check_fresh_state(started, head_sent, flavor);
            t.begin(started, head_sent, flavor, false);
        }
        Scope::Pull => t.begin(started, head_sent, flavor, true),
        Scope::Continuation => {
            t.adopt(started, head_sent);
            t.pending = None;
        }
    });
    let mut hook = Hook::new(request, flavor);
    let _scope = super::input_watch::AppScope::enter();
    // A mark left by an unwind that nothing of ours caught is stale now.
    clear_judged();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        work(&mut start.intercept(&mut hook))
    }));
    let result = match outcome {
        Ok(result) => result,
        Err(payload) => {
            if is_judged() {
                std::panic::resume_unwind(payload);
            }
            request.violate(
                &rules::APPLICATION_PANICKED,
                "the application panicked instead of returning an error",
                panic_text(&*payload),
            );
            std::panic::resume_unwind(payload)
        }
    };
    let failed = failed(&result);
    let (started, head_sent) = (start.is_started(), start.is_head_sent());
    request.with(|t| {
        t.end(failed);
        t.adopt(started, head_sent);
    });
    result
}

/// The text of a panic payload.
/// Drops a wrapped body, catching a panic out of its `Drop` so the
/// validator can judge it before it unwinds on ([`Request::judge_drop`]).
pub(crate) fn drop_body<T>(body: T) -> std::thread::Result<()> {
    clear_judged();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(body)))
}

pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}
