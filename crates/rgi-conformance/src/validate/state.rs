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
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{RawWakerVTable, Wake, Waker};
use std::thread::{self, ThreadId};

use bytes::Bytes;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use rgi::{HeadError, Intercept, ResponseHead};

use super::nesting::{self, Action, Boundary, StepOutcome};
pub(crate) use super::nesting::{Flavor, Scope};
use super::output::OutputWatch;
use super::rules::{self, Rule};
use crate::{Reports, Violation};

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
    /// The status the last GET or HEAD of each target got, and whether it
    /// was the HEAD (`RGI-BODY-17`).
    heads: Mutex<BTreeMap<String, (bool, StatusCode)>>,
    /// This validator's mark on every response it is called for, which
    /// tells a second call with the same response state (`RGI-APP-5`,
    /// `RGIA-APP-1`) from a fresh one that merely looks alike.
    caller: rgi::CallerId,
}

/// How many targets [`Registry`] remembers for the HEAD-against-GET
/// comparison before it forgets them all.
const REMEMBERED_TARGETS: usize = 1024;

/// One request's entry in the [`Registry`].
#[derive(Debug)]
struct Live {
    flavor: Flavor,
    /// Threads that called or polled the request while its asynchronous
    /// part was alive: the request's loop threads.
    loop_threads: Vec<ThreadId>,
    /// Whether a body was handed to the server (only those can be kept).
    has_body: bool,
    /// The request of the validator this one ran nested in (a middleware
    /// between them), if any.
    outer: Option<Weak<Request>>,
    /// The thread on which the body ended, while it is still alive.
    ended_on: Option<ThreadId>,
}

/// A body the server never dropped, as [`Registry::kept`] lists it.
#[derive(Debug)]
pub(crate) struct Kept {
    pub(crate) id: u64,
    pub(crate) flavor: Flavor,
    /// It ran nested in another validator's request whose own body was
    /// dropped: the middleware between them lost it.
    pub(crate) lost_by_middleware: bool,
}

impl Registry {
    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Live>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn heads(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (bool, StatusCode)>> {
        self.heads.lock().unwrap_or_else(PoisonError::into_inner)
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
                outer: None,
                ended_on: None,
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

    /// Whether the entry is still open (its body not dropped yet).
    pub(crate) fn is_live(&self, id: u64) -> bool {
        self.live().contains_key(&id)
    }

    /// How many entries are open: requests whose response has not ended
    /// or whose body was not dropped yet.
    pub(crate) fn live_count(&self) -> usize {
        self.live().len()
    }

    /// Records that the entry ran nested in `outer`'s request.
    pub(crate) fn link_outer(&self, id: u64, outer: Weak<Request>) {
        if let Some(live) = self.live().get_mut(&id) {
            live.outer.get_or_insert(outer);
        }
    }

    /// Records that the entry's body ended on the current thread.
    pub(crate) fn ended_here(&self, id: u64) {
        if let Some(live) = self.live().get_mut(&id) {
            live.ended_on = Some(thread::current().id());
        }
    }

    /// A synchronous body that ended on the current thread and is still
    /// alive, other than `except`.
    pub(crate) fn ended_alive_here(&self, except: u64) -> Option<u64> {
        let here = thread::current().id();
        self.live()
            .iter()
            .find(|(id, live)| {
                **id != except
                    && live.flavor == Flavor::Sync
                    && live.has_body
                    && live.ended_on == Some(here)
            })
            .map(|(id, _)| *id)
    }

    /// Whether `thread` is a loop thread of a live asynchronous body.
    pub(crate) fn is_loop_thread(&self, thread: ThreadId) -> bool {
        self.live()
            .values()
            .any(|live| live.flavor == Flavor::Async && live.loop_threads.contains(&thread))
    }

    /// The bodies handed to the server and never dropped.
    pub(crate) fn kept(&self) -> Vec<Kept> {
        let kept: Vec<(u64, Flavor, Option<Weak<Request>>)> = self
            .live()
            .iter()
            .filter(|(_, live)| live.has_body)
            .map(|(id, live)| (*id, live.flavor, live.outer.clone()))
            .collect();
        // The outer registries are looked at without this one's lock.
        kept.into_iter()
            .map(|(id, flavor, outer)| Kept {
                id,
                flavor,
                lost_by_middleware: outer.is_some_and(|outer| {
                    outer
                        .upgrade()
                        .is_none_or(|outer| !outer.registry.is_live(outer.id))
                }),
            })
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
    for kept in registry.kept() {
        let (rule, message) = match (kept.flavor, kept.lost_by_middleware) {
            (Flavor::Sync, false) => (
                rules::BODY_KEPT,
                "the validator was dropped while a body it returned was still alive (leaked or kept)",
            ),
            (Flavor::Async, false) => (
                rules::ASYNC_BODY_KEPT,
                "the validator was dropped while a body it returned was still alive (leaked or kept)",
            ),
            (Flavor::Sync, true) => (
                rules::MW_INNER_BODY_NOT_DROPPED,
                "the middleware around this validator dropped its own body but never this inner one (leaked or kept)",
            ),
            (Flavor::Async, true) => (
                rules::ASYNC_MW_INNER_BODY_NOT_DROPPED,
                "the middleware around this validator dropped its own body but never this inner one (leaked or kept)",
            ),
        };
        report(
            reports,
            Violation::new(
                rule.clause(),
                rule.side,
                message,
                format!("request #{}", kept.id),
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
    /// Linked to the request of a validator it runs nested in.
    linked: AtomicBool,
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
            linked: AtomicBool::new(false),
            tracker: Mutex::new(Tracker::new(head_request)),
        })
    }

    /// Links this request, once, to the request of the validator it runs
    /// nested in: the outer one learns this one's length information
    /// (`RGI-MW-8`), the registry whom to blame for a body never dropped
    /// (`RGI-MW-7`).
    pub(crate) fn link_outer(&self, outer: &Arc<Request>) {
        if self.linked.swap(true, Ordering::SeqCst) {
            return;
        }
        self.registry.link_outer(self.id, Arc::downgrade(outer));
        let (view, inner_hints) = self.with(|t| (Arc::clone(&t.view), t.hints));
        outer.with(|t| {
            t.inner_view.get_or_insert(view);
            if let (Some(own), Some(inner)) = (t.hints, inner_hints) {
                let input = |use_: rgi::InputUse| match use_ {
                    rgi::InputUse::None => 0,
                    rgi::InputUse::Whole => 1,
                    _ => 2,
                };
                if input(own.input) < input(inner.input) || (inner.may_block && !own.may_block) {
                    t.violate(
                        &rules::MW_HINTS_UNDERSTATED,
                        "the middleware's hints promise less than the hints of the application it wraps",
                        format!("middleware {own:?}, inner application {inner:?}"),
                    );
                }
            }
        });
    }

    /// Remembers the request's target for the HEAD-against-GET comparison
    /// (`RGI-BODY-17`).
    pub(crate) fn note_target(&self, environ: &rgi::Environ) {
        let method = environ.method();
        let target = environ
            .uri()
            .path_and_query()
            .map_or_else(|| environ.uri().to_string(), ToString::to_string);
        if method == http::Method::GET || method == http::Method::HEAD {
            self.with(|t| t.target = Some(target));
        } else {
            // Another method may change the resource: what GET and HEAD
            // answered before no longer has to agree.
            self.registry.heads().remove(&target);
        }
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

    /// Judges the failure the application returned: after the input handed
    /// it an error that is the client's fault, the failure should carry
    /// that error (`RGI-FAIL-12`).
    pub(crate) fn judge_failure(&self, error: &rgi::BoxError) {
        if let Some(read) = super::feature_watch::trailers_asked_early(&**error) {
            self.violate(
                &rules::TRAILERS_READ_BEFORE_END,
                "the application asked for the request trailers before reading the body to its end, and failed with the input's answer",
                format!("BodyNotFinished after {read} bytes"),
            );
        }
        let hidden =
            self.with(|t| t.client_fault_seen()) && !super::output::carries_input_error(error);
        if hidden {
            self.violate(
                &rules::CLIENT_FAULT_HIDDEN,
                "the input returned an error that is the client's fault, and the application failed with an error that hides it",
                error.to_string(),
            );
        }
    }

    /// Compares the status of a GET or HEAD that ended normally with the
    /// status the other method got for the same target (`RGI-BODY-17`).
    pub(crate) fn compare_with_get(&self) {
        let Some((target, head, status)) = self.with(|t| {
            let status = t.status?;
            t.target
                .clone()
                .map(|target| (target, t.head_request, status))
        }) else {
            return;
        };
        let other = {
            let mut heads = self.registry.heads();
            if heads.len() >= REMEMBERED_TARGETS && !heads.contains_key(&target) {
                heads.clear();
            }
            heads.insert(target.clone(), (head, status))
        };
        if let Some((_, earlier)) =
            other.filter(|&(was_head, earlier)| was_head != head && earlier != status)
        {
            let (get, head_status) = if head {
                (earlier, status)
            } else {
                (status, earlier)
            };
            self.violate(
                &rules::HEAD_DIFFERS_FROM_GET,
                "a HEAD request got another status than a GET of the same target",
                format!("{target}: GET {get}, HEAD {head_status}"),
            );
        }
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

    /// Where the server calls, polls or drops for an asynchronous request
    /// whose Capabilities declare `Runtime::Tokio`, tokio's context must
    /// be entered (`RGIA-RT-1`). Asking tokio needs tokio, so this checks
    /// only with the `tokio-context` feature; without it the kit has no way
    /// to see a runtime's context and judges nothing here.
    pub(crate) fn check_runtime_context(&self, site: &str) {
        #[cfg(feature = "tokio-context")]
        if self.with(|t| t.declares_tokio) && tokio::runtime::Handle::try_current().is_err() {
            self.violate(
                &rules::RUNTIME_CONTEXT_NOT_ENTERED,
                "the server declares Runtime::Tokio but runs the request without tokio's context entered",
                format!("{site}: tokio::runtime::Handle::try_current() failed"),
            );
        }
        #[cfg(not(feature = "tokio-context"))]
        let _ = site;
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
    /// The server's Capabilities declare `Runtime::Tokio` (RGIA-RT-1).
    pub(crate) declares_tokio: bool,
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

    /// This request's length information, for a validator it runs nested
    /// in; and that of the validator nested in it.
    view: Arc<Mutex<LengthView>>,
    inner_view: Option<Arc<Mutex<LengthView>>>,
    /// A chunk the server had to refuse in a way that obliges it to stop
    /// pulling; the rule a further pull breaks.
    stop_pulling: Option<Rule>,
    /// The whole-body watch.
    output: OutputWatch,
    /// The content type names a serialized HTTP message.
    raw_message: bool,
    /// The target of a GET or HEAD request.
    pub(crate) target: Option<String>,
    /// The hints the synchronous application gave for this request.
    pub(crate) hints: Option<rgi::Hints>,
    /// The input returned an `InputError` that is the client's fault.
    client_fault_seen: bool,
    /// The optional features of RGI 1.2 on this request.
    pub(crate) features: super::feature_watch::FeatureWatch,
}

/// What one boundary knows about the response's length, shared with the
/// validator it runs nested in.
#[derive(Debug, Default)]
pub(crate) struct LengthView {
    /// The declared Content-Length.
    declared: Option<u64>,
    /// The latest size hint.
    hint: Option<u64>,
    /// This boundary found a length or size-hint fault itself.
    faulted: bool,
}

fn lock_view(view: &Mutex<LengthView>) -> std::sync::MutexGuard<'_, LengthView> {
    view.lock().unwrap_or_else(PoisonError::into_inner)
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
            declares_tokio: false,
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
            view: Arc::default(),
            inner_view: None,
            stop_pulling: None,
            output: OutputWatch::default(),
            raw_message: false,
            target: None,
            hints: None,
            client_fault_seen: false,
            features: super::feature_watch::FeatureWatch::default(),
        }
    }

    /// Reports a length or size-hint fault (`rule`) of this boundary, or
    /// `RGI-MW-8` when the nested boundary shows the middleware between
    /// them made it: it changed the declared length (`hint` is `None`), or
    /// forwarded the inner size hint `hint` over bytes it changed; either
    /// way the inner application kept its own promise.
    fn length_fault(&mut self, rule: &Rule, hint: Option<u64>, message: String, value: String) {
        lock_view(&self.view).faulted = true;
        let middleware = self.inner_view.as_ref().is_some_and(|inner| {
            let inner = lock_view(inner);
            !inner.faulted
                && match hint {
                    None => inner.declared != self.declared,
                    Some(hint) => inner.hint == Some(hint),
                }
        });
        if middleware {
            self.violate(
                &rules::MW_LENGTH_UNTRUE,
                format!("{message}, while the inner application kept its own length information: the middleware changed the content or its length"),
                value,
            );
        } else {
            self.violate(rule, message, value);
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

    /// The status of the head stored last, if one was.
    pub(crate) fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// Whether the request is HEAD.
    pub(crate) fn head_request(&self) -> bool {
        self.head_request
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
    /// `pull` is `None` for a call, and for a pull whether a middleware
    /// may have held the last chunk back.
    pub(crate) fn begin(
        &mut self,
        started: bool,
        head_sent: bool,
        flavor: Flavor,
        pull: Option<bool>,
    ) {
        let held_back = pull == Some(true);
        let pull = pull.is_some();
        let (lost, not_sent) = match flavor {
            Flavor::Sync => (rules::HANDLE_STATE_LOST, rules::CHUNK_NOT_SENT),
            Flavor::Async => (rules::ASYNC_HANDLE_STATE_LOST, rules::ASYNC_CHUNK_NOT_SENT),
        };
        if pull {
            self.check_stop_pulling();
        }
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
        } else if pull
            && !held_back
            && self.last_chunk_nonempty
            && started
            && !self.bodiless()
            && !head_sent
        {
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

    /// The start of `call`: the handle must come from a fresh state, one
    /// this validator was not called for before (`first_call`).
    pub(crate) fn check_fresh_state(
        &mut self,
        started: bool,
        head_sent: bool,
        first_call: bool,
        flavor: Flavor,
    ) {
        if started || head_sent || !first_call {
            let rule = match flavor {
                Flavor::Sync => rules::STATE_REUSED,
                Flavor::Async => rules::ASYNC_STATE_REUSED,
            };
            self.state_lost = true;
            let message = if first_call {
                "the handle lent to call comes from a response state that was used before"
            } else {
                "call came a second time with the same response state: the application was called twice for one response"
            };
            self.violate(
                &rule,
                message,
                format!(
                    "started={started}, head sent={head_sent}, called before={}",
                    !first_call
                ),
            );
        }
    }

    /// The start of `call`: the response state must be made for the
    /// method the environ carries, HEAD for HEAD and only for HEAD
    /// (`state_head` says whether it was made for HEAD).
    pub(crate) fn check_head_state(&mut self, state_head: bool) {
        match (self.head_request, state_head) {
            (true, false) => self.violate(
                &rules::HEAD_STATE_NOT_HEAD,
                "the request is HEAD, but its response state was made for another method and would send the body",
                "environ HEAD, state not HEAD",
            ),
            (false, true) => self.violate(
                &rules::HEAD_STATE_FOR_OTHER_METHOD,
                "the response state was made for HEAD, but the environ gives another method",
                "environ not HEAD, state HEAD",
            ),
            _ => {}
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
                lock_view(&self.view).declared = declared;
                self.content_type = head.headers().contains_key(CONTENT_TYPE);
                self.raw_message = head.headers().get(CONTENT_TYPE).is_some_and(|value| {
                    let value = value.as_bytes();
                    value.len() >= 8 && value[..8].eq_ignore_ascii_case(b"message/")
                        || value.len() >= 16
                            && value[..16].eq_ignore_ascii_case(b"application/http")
                });
                self.features_on_head(head, self.hint.is_some());
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
                // Counted below as well: send_chunk refuses the chunk.
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
            if kind == Output::Chunk && !self.state_lost {
                self.stop_pulling
                    .get_or_insert(rules::PULL_AFTER_NOT_STARTED);
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
            if kind == Output::Chunk {
                self.stop_pulling
                    .get_or_insert(rules::PULL_AFTER_BODILESS_CONTENT);
            }
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
                self.length_fault(
                    &rules::CONTENT_LENGTH_EXCEEDED,
                    None,
                    "the application produced more bytes than its content-length declares"
                        .to_owned(),
                    format!("declared {declared}, produced {}", self.produced),
                );
                if kind == Output::Chunk {
                    self.stop_pulling.get_or_insert(rules::PULL_AFTER_EXCESS);
                }
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
                self.length_fault(
                    &rule,
                    Some(hint),
                    "the body produced more bytes than its size_hint promised".to_owned(),
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
        self.watch_output(chunk, Output::Chunk, flavor);
        self.last_chunk_nonempty = !chunk.is_empty();
    }

    /// Feeds content (output after a start, in a response that may have
    /// content) to the whole-body watch.
    fn watch_output(&mut self, bytes: &Bytes, kind: Output, flavor: Flavor) {
        if !self.started || self.bodiless() || self.upgrade_accepted {
            return;
        }
        self.features_on_output(bytes, kind, flavor);
        self.output.on_bytes(bytes, kind == Output::Write);
        if kind == Output::Chunk {
            if let Some((rule, message, value)) = self.output.on_chunk_len(bytes.len()) {
                self.violate(&rule, message, value);
            }
        }
    }

    /// Bytes the server sent from a file body by itself: content the
    /// watch cannot see.
    pub(crate) fn on_file_output(&mut self, len: u64) {
        self.on_output(len, Output::Chunk, Flavor::Sync);
        if len > 0 {
            self.output.on_opaque(len);
            self.features_on_opaque();
        }
    }

    /// The step that yielded the last chunk is over and the server pulls
    /// again: a pull it must not make after its `send_chunk` refused.
    fn check_stop_pulling(&mut self) {
        if let Some(rule) = self.stop_pulling {
            self.violate(
                &rule,
                "the server pulled the body again after send_chunk refused a chunk in a way that obliges it to stop",
                "next pull",
            );
        }
    }

    /// What a read of the input returned to the application: a client
    /// fault the application should let through (`RGI-FAIL-12`).
    pub(crate) fn note_input_result(&mut self, result: Result<usize, &std::io::Error>) {
        if let Err(error) = result {
            self.client_fault_seen |=
                rgi::InputError::from_io(error).is_some_and(|error| error.status().is_some());
        }
    }

    /// Whether the input handed the application a client-fault error.
    pub(crate) fn client_fault_seen(&self) -> bool {
        self.client_fault_seen
    }

    /// Whether the response was neither started nor lost by the server:
    /// an unstarted response the server may not treat as an error.
    pub(crate) fn unstarted(&self) -> bool {
        !self.started && !self.state_lost && !self.start_rejected
    }

    /// The body's answer to `size_hint`.
    pub(crate) fn on_size_hint(&mut self, hint: Option<u64>) {
        if let Some(hint) = hint {
            self.hint = Some((hint, self.produced));
            self.hinted = true;
            lock_view(&self.view).hint = Some(hint);
            self.features_on_size_hint();
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
            self.length_fault(
                &rules::CONTENT_LENGTH_SHORT,
                None,
                "the body ended before producing its declared content-length".to_owned(),
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
                self.length_fault(
                    &rule,
                    Some(hint),
                    "the body ended before producing the bytes its size_hint promised".to_owned(),
                    format!("hint {hint}, produced {since} since"),
                );
            }
        }
        if !self.head_request && !self.bodiless() {
            for (rule, message, value) in self.output.on_end(self.raw_message) {
                self.violate(&rule, message, value);
            }
        }
        self.features_on_end();
        if self.truncated_seen && self.status.is_some_and(|status| status.is_success()) {
            self.violate(
                &rules::TRUNCATED_BODY_ACCEPTED,
                "the request body was truncated, yet the application completed a success response",
                format!("status {:?}", self.status),
            );
        }
    }
}

impl Boundary for Request {
    fn report_rule(&self, rule: &Rule, message: String, value: String) {
        self.violate(rule, message, value);
    }

    fn link_to_outer(&self, outer: &Arc<dyn Boundary>) {
        let outer: Arc<dyn std::any::Any + Send + Sync> = Arc::clone(outer) as Arc<dyn Boundary>;
        if let Ok(outer) = outer.downcast::<Request>() {
            self.link_outer(&outer);
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
        nesting::own_action(self.request, Action::Head);
        self.request.with(|t| t.on_head(head, replace));
    }

    fn on_write(&mut self, data: &mut Bytes) {
        let flavor = self.flavor;
        nesting::own_action(self.request, Action::Write(data));
        self.request.with(|t| {
            t.on_output(data.len() as u64, Output::Write, flavor);
            t.watch_output(data, Output::Write, flavor);
        });
    }

    fn on_trailers(&mut self, fields: &mut http::HeaderMap) {
        self.request.with(|t| t.on_trailers(fields));
    }

    fn on_early_hints(&mut self, fields: &mut http::HeaderMap) {
        self.request.with(|t| t.on_early_hints(fields));
    }

    fn on_write_result(&mut self, result: Result<(), &rgi::SendError>) {
        // Only the transport's failure is news: the validator predicts
        // the other errors from the head and counts them already.
        if let Err(rgi::SendError::Transport(_)) = result {
            self.request.with(|t| t.write_failed = true);
        }
    }
}

/// Runs one step of the application (`work`) with the validator's hook
/// interposed: checks the handle first, reports a panic (then lets it
/// continue to the server), and checks afterwards that a rejected start
/// was answered by a failure (`failed` says whether the step's result is
/// one).
pub(crate) fn scoped<T: StepOutcome>(
    request: &Arc<Request>,
    flavor: Flavor,
    start: &mut rgi::StartResponse<'_>,
    scope: Scope,
    failed: impl FnOnce(&T) -> bool,
    work: impl FnOnce(&mut rgi::StartResponse<'_>) -> T,
) -> T {
    if flavor == Flavor::Async {
        request.check_runtime_context(match scope {
            Scope::Call => "call",
            Scope::Pull | Scope::Continuation => "poll_step",
        });
    }
    let (started, head_sent) = (start.is_started(), start.is_head_sent());
    let deliverable = (
        start.trailers_deliverable(),
        start.early_hints_deliverable(),
    );
    // A middleware may hold an inner chunk back and return an empty chunk
    // of its own (RGI-MW-5, RGIA-COMP-10): a pull made inside another
    // validator's pull does not have to find the last chunk sent.
    let held_back = nesting::inside_pull_of_another(&**request, flavor);
    let first_call = scope != Scope::Call || start.record_call(request.registry.caller);
    request.with(|t| match scope {
        Scope::Call => {
            t.check_fresh_state(started, head_sent, first_call, flavor);
            t.check_head_state(start.is_head_request());
            t.check_deliverable(deliverable.0, deliverable.1);
            t.begin(started, head_sent, flavor, None);
        }
        Scope::Pull => t.begin(started, head_sent, flavor, Some(held_back)),
        Scope::Continuation => {
            t.adopt(started, head_sent);
            t.pending = None;
        }
    });
    let mut hook = Hook::new(request, flavor);
    let _scope = super::input_watch::AppScope::enter();
    let boundary: Arc<dyn Boundary> = Arc::clone(request) as Arc<dyn Boundary>;
    let entered = nesting::enter(&boundary, flavor, scope);
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
    entered.exit(&result.outcome(), started, head_sent);
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
