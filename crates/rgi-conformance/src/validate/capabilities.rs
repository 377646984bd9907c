//! The capability handles an asynchronous application sees, wrapped so
//! that what the server's services do passes the validator
//! (`RGIA-CAP-10` lets a middleware wrap handles).

use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, ThreadId};
use std::time::Duration;

use http::{HeaderMap, header};
use rgi::Environ;
use rgi_async::{
    AfterError, AfterResponse, AfterResponseService, AfterTask, Capabilities, Job, Offload,
    OffloadError, OffloadFuture, OffloadService, Upgrade, UpgradeError, UpgradeFuture,
    UpgradeService,
};

use super::rules;
use super::state::{self, Request};
use super::switch_threads::LoopThreads;

/// How long `AfterResponse::spawn` waits, while the response is still in
/// progress, to see whether the server starts the task at once
/// (`RGIA-AFTER-1`). A server that starts it on a fresh thread usually
/// does so within a millisecond; without the wait the response would
/// often end first and hide the mistake. A correct server never starts
/// it, so for it this is only a short delay in `spawn`.
const EARLY_START_WINDOW: Duration = Duration::from_millis(50);

/// Marks an environ whose capabilities a validator handed inward, so that
/// a validator further in can tell a middleware that removed them
/// (`RGIA-CAP-10`) from a server that never gave any (`RGIA-CAP-1`).
#[derive(Debug, Clone, Copy)]
struct HandedInward;

/// Gives the request watched capabilities: wraps the ones
/// `Capabilities::of` finds (the request's own or the server-wide value)
/// and inserts the result into the request's extensions, where it
/// overrides a server-wide value for this request only (`RGIA-CAP-1`).
/// `threads` are the request's loop threads, where no after-response task
/// may run.
pub(crate) fn install(environ: &mut Environ, request: &Arc<Request>, threads: &LoopThreads) {
    let Some(original) = Capabilities::of(environ).cloned() else {
        if environ.extensions().get::<HandedInward>().is_some() {
            request.violate(
                &rules::CAPABILITIES_REMOVED,
                "a middleware removed the Capabilities an outer validator handed it, or hid them behind another ServerInfo",
                "Capabilities::of returned None",
            );
        }
        return;
    };
    // The threads running this request's offload jobs: synchronous code,
    // like the threaded adapter's application.
    let jobs = LoopThreads::default();
    let offload = Offload::new(WatchedOffload {
        inner: original.offload().clone(),
        request: Arc::clone(request),
        jobs: jobs.clone(),
    });
    let mut builder = Capabilities::builder(offload).spec_version(original.spec_version());
    #[cfg(unix)]
    if let Some(readiness) = original.readiness() {
        builder = builder.readiness(rgi_async::Readiness::new(
            super::readiness::WatchedReadiness::new(readiness.clone(), Arc::clone(request)),
        ));
    }
    #[cfg(windows)]
    if let Some(readiness) = original.readiness() {
        // Windows sockets cannot be classified without more machinery;
        // waits pass through unwatched.
        builder = builder.readiness(readiness.clone());
    }
    if let Some(after) = original.after_response() {
        builder = builder.after_response(AfterResponse::new(WatchedAfter {
            inner: after.clone(),
            request: Arc::clone(request),
            threads: threads.clone(),
        }));
    }
    if let Some(upgrade) = original.upgrade() {
        builder = builder.upgrade(Upgrade::new(WatchedUpgrade {
            inner: upgrade.clone(),
            request: Arc::clone(request),
            offered: crate::rt::offered_protocols(environ.headers()),
            jobs,
        }));
    }
    // The validator polls inside the server's own calls, so the server's
    // runtime context stays entered for the wrapped application.
    if let Some(runtime) = original.runtime() {
        builder = builder.runtime(runtime);
    }
    environ.extensions_mut().insert(builder.build());
    environ.extensions_mut().insert(HandedInward);
}

/// Whether the request asks for an upgrade (an `Upgrade` field, or an
/// extended CONNECT) that its capabilities cannot provide.
pub(crate) fn upgrade_unavailable(environ: &Environ) -> bool {
    let asked = environ.headers().contains_key(header::UPGRADE)
        || environ.extension::<rgi::ConnectProtocol>().is_some();
    asked && Capabilities::of(environ).is_none_or(|caps| caps.upgrade().is_none())
}

/// `call` failed: for a request that asked for an upgrade the server
/// cannot provide, `RGIA-UPGRADE-11` wants `501 Not Implemented`, not a
/// failure (which the server answers with 500).
pub(crate) fn judge_failure(request: &Request, upgrade_unavailable: bool) {
    if upgrade_unavailable && !request.with(|t| t.started()) {
        request.violate(
            &rules::UPGRADE_UNAVAILABLE_FAILED,
            "the request asked for an upgrade the server cannot provide, and the application failed instead of answering 501",
            "call returned Err",
        );
    }
}

/// Runs one operation of the server's capability service, reporting a
/// panic (`RGIA-CAP-8`) before letting it continue.
fn guarded<T>(request: &Request, what: &str, operation: impl FnOnce() -> T) -> T {
    state::clear_judged();
    match panic::catch_unwind(AssertUnwindSafe(|| {
        super::watchdog::watch_service(request, what, operation)
    })) {
        Ok(value) => value,
        Err(payload) => {
            if !state::is_judged() {
                let when = if request.with(|t| t.done) {
                    "after its request had ended"
                } else {
                    "during its request"
                };
                request.violate(
                    &rules::CAPABILITY_PANICKED,
                    format!("{what} panicked {when} instead of returning a typed error"),
                    state::panic_text(&*payload),
                );
            }
            // The application's step unwinds next: not its fault.
            state::mark_judged();
            panic::resume_unwind(payload)
        }
    }
}

/// Whether the current thread runs work it was handed while the handing
/// call is still in progress on the same thread.
struct Handing {
    caller: ThreadId,
    in_progress: AtomicBool,
    /// The work ran inline (already reported; it also explains a slow
    /// handing call).
    ran_inline: AtomicBool,
}

impl Handing {
    fn begin() -> Arc<Self> {
        Arc::new(Handing {
            caller: thread::current().id(),
            in_progress: AtomicBool::new(true),
            ran_inline: AtomicBool::new(false),
        })
    }

    fn inline(&self) -> bool {
        let inline =
            self.in_progress.load(Ordering::SeqCst) && thread::current().id() == self.caller;
        if inline {
            self.ran_inline.store(true, Ordering::SeqCst);
        }
        inline
    }

    fn end(&self) {
        self.in_progress.store(false, Ordering::SeqCst);
    }
}

/// Runs every job through the server's offload, checking where it runs.
struct WatchedOffload {
    inner: Offload,
    request: Arc<Request>,
    jobs: LoopThreads,
}

/// Takes the current thread out of a job set when its job ends, even by a
/// panic.
struct InJob(LoopThreads);

impl InJob {
    fn enter(jobs: &LoopThreads) -> Self {
        jobs.record_here();
        InJob(jobs.clone())
    }
}

impl Drop for InJob {
    fn drop(&mut self) {
        self.0.forget_here();
    }
}

impl OffloadService for WatchedOffload {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        // An `execute` that blocks (`RGIA-OFFLOAD-2`) is the watchdog's to
        // judge, in blocked time rather than wall-clock time (`guarded`).
        let handing = Handing::begin();
        // The server's future must outlive this call (dropping it would
        // cancel the job) until the job starts; the job itself drops it.
        let keeper: Arc<Mutex<Option<OffloadFuture<()>>>> = Arc::default();
        let request = Arc::clone(&self.request);
        let job_handing = Arc::clone(&handing);
        let job_keeper = Arc::clone(&keeper);
        let jobs = self.jobs.clone();
        let mut future = guarded(&self.request, "Offload::run", || {
            self.inner.run(move || {
                drop(
                    job_keeper
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take(),
                );
                let here = thread::current().id();
                if job_handing.inline() {
                    request.violate(
                    &rules::OFFLOAD_ON_LOOP_THREAD,
                    "the offload service ran the job on the calling thread before execute returned",
                    format!("{here:?}"),
                );
                } else if request.registry.is_loop_thread(here) {
                    request.violate(
                        &rules::OFFLOAD_ON_LOOP_THREAD,
                        "an offload job runs on a thread that polls a live asynchronous body",
                        format!("{here:?}"),
                    );
                }
                let _in_job = InJob::enter(&jobs);
                job.run();
            })
        });
        // A refusal is known at the first poll (`Offload::run` reports
        // `execute`'s error there); a job that ran inline is done already.
        let mut cx = Context::from_waker(Waker::noop());
        let outcome = match Pin::new(&mut future).poll(&mut cx) {
            Poll::Ready(Err(OffloadError::Saturated { capacity: 0 })) => {
                self.request.violate(
                    &rules::HOLLOW_CAPABILITY,
                    "the offload capability was offered but its pool has no capacity at all, so no job can ever run",
                    "OffloadError::Saturated { capacity: 0 }",
                );
                Err(OffloadError::Saturated { capacity: 0 })
            }
            Poll::Ready(Err(error)) => Err(error),
            Poll::Ready(Ok(())) => Ok(()),
            Poll::Pending => {
                *keeper.lock().unwrap_or_else(PoisonError::into_inner) = Some(future);
                Ok(())
            }
        };
        handing.end();
        outcome
    }
}

/// Runs after-response tasks through the server's service, checking when
/// and where they run.
struct WatchedAfter {
    inner: AfterResponse,
    request: Arc<Request>,
    threads: LoopThreads,
}

/// Set by an after-response task when it starts; `spawn` waits on it for
/// [`EARLY_START_WINDOW`] while the response is in progress.
#[derive(Default)]
struct Started {
    started: Mutex<bool>,
    signal: Condvar,
}

impl Started {
    fn set(&self) {
        *self.started.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.signal.notify_all();
    }

    /// Waits up to `window` for the task to start.
    fn wait(&self, window: Duration) {
        let started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let _waited = self
            .signal
            .wait_timeout_while(started, window, |started| !*started)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

impl AfterResponseService for WatchedAfter {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        let handing = Handing::begin();
        let request = Arc::clone(&self.request);
        let task_handing = Arc::clone(&handing);
        let threads = self.threads.clone();
        let started = Arc::new(Started::default());
        let task_started = Arc::clone(&started);
        let spawned = guarded(&self.request, "AfterResponse::spawn", || {
            self.inner.spawn(move || {
                let here = thread::current().id();
                let done = request.with(|t| t.done);
                if task_handing.inline() {
                    request.violate(
                        &rules::AFTER_TASK_INLINE,
                        "AfterResponse::spawn ran the task on the calling thread",
                        format!("{here:?}"),
                    );
                } else if !done {
                    request.violate(
                        &rules::AFTER_TASK_EARLY,
                        "an after-response task started before the response was complete",
                        format!("{here:?}"),
                    );
                } else if request.registry.is_loop_thread(here) || threads.contains_here() {
                    request.violate(
                        &rules::AFTER_TASK_ON_LOOP_THREAD,
                        "an after-response task runs on a loop thread: one that polls a live asynchronous body, or called or polled its own request's",
                        format!("{here:?}"),
                    );
                }
                // After the checks, so that their reports are in before
                // `spawn` stops waiting.
                task_started.set();
                task();
            })
        });
        handing.end();
        if spawned.is_ok() && !self.request.with(|t| t.done) {
            super::watchdog::validator_wait(|| started.wait(EARLY_START_WINDOW));
        }
        spawned
    }
}

/// Hands upgrades to the server's service, watching what the
/// application does around them.
struct WatchedUpgrade {
    inner: Upgrade,
    request: Arc<Request>,
    /// The protocols the request's `Upgrade` fields offer.
    offered: Vec<String>,
    /// The threads running the request's offload jobs.
    jobs: LoopThreads,
}

/// The `Upgrade` fields an application passed to `accept`, trimmed.
fn named_protocols(headers: &HeaderMap) -> Vec<&[u8]> {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .map(|value| value.as_bytes().trim_ascii())
        .collect()
}

impl WatchedUpgrade {
    fn is_offered(&self, protocol: &[u8]) -> bool {
        self.offered
            .iter()
            .any(|offered| offered.as_bytes().eq_ignore_ascii_case(protocol))
    }

    /// `RGIA-UPGRADE-12`: among several offered protocols, the
    /// application names the one it will speak, in one `Upgrade` field.
    fn check_protocol_named(&self, headers: &HeaderMap) {
        if self.offered.len() < 2 {
            return;
        }
        let named = named_protocols(headers);
        let chosen = match named.as_slice() {
            [one] => self.is_offered(one),
            _ => false,
        };
        if !chosen {
            self.request.violate(
                &rules::UPGRADE_PROTOCOL_NOT_NAMED,
                "the application accepted an upgrade offering several protocols without naming one of them in a single Upgrade field",
                format!(
                    "offered {:?}, accept named {:?}",
                    self.offered,
                    named
                        .iter()
                        .map(|field| String::from_utf8_lossy(field))
                        .collect::<Vec<_>>()
                ),
            );
        }
    }

    /// `RGIA-UPGRADE-3`, the server's half of the choice: an `accept` that
    /// succeeded had a choice to record, one of those offered, or a
    /// single offer to fall back on. (A request without `Upgrade` fields,
    /// an extended CONNECT, offers nothing to compare with.)
    fn check_choice_enforced(&self, headers: &HeaderMap) {
        if self.offered.is_empty() {
            return;
        }
        let named = named_protocols(headers);
        let refusal = match named.as_slice() {
            [] if self.offered.len() > 1 => Some("ProtocolNotChosen"),
            [one] if !self.is_offered(one) => Some("ProtocolNotOffered"),
            _ => None,
        };
        if let Some(refusal) = refusal {
            self.request.violate(
                &rules::UPGRADE_CHOICE_NOT_ENFORCED,
                format!("the server accepted an upgrade it had to refuse with {refusal}"),
                format!(
                    "offered {:?}, accept named {:?}",
                    self.offered,
                    named
                        .iter()
                        .map(|field| String::from_utf8_lossy(field))
                        .collect::<Vec<_>>()
                ),
            );
        }
    }
}

impl UpgradeService for WatchedUpgrade {
    fn accept(&self, headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        let here = thread::current().id();
        self.check_protocol_named(&headers);
        self.request.with(|t| {
            if t.sync_scope == Some(here) {
                t.violate(
                    &rules::UPGRADE_FROM_SYNC_CODE,
                    "a switch continuation accepted an upgrade, tying a worker thread to the connection",
                    format!("{headers:?}"),
                );
            } else if self.jobs.contains_here() {
                t.violate(
                    &rules::UPGRADE_FROM_SYNC_CODE,
                    "an offload job (such as the threaded adapter's synchronous application) accepted an upgrade, tying a worker thread to the connection",
                    format!("{headers:?}"),
                );
            }
        });
        let sent = headers.clone();
        match guarded(&self.request, "Upgrade::accept", || {
            self.inner.accept(headers)
        }) {
            Ok(upgraded) => {
                self.check_choice_enforced(&sent);
                self.request.with(|t| {
                    if t.head_sent() {
                        t.violate(
                            &rules::UPGRADE_AFTER_HEAD_SENT,
                            "the server accepted an upgrade after the response head was sent",
                            "Upgrade::accept returned Ok",
                        );
                    }
                    t.upgrade_accepted = true;
                });
                Ok(Box::pin(upgraded))
            }
            Err(UpgradeError::Io(error)) => {
                if error.kind() == io::ErrorKind::Unsupported {
                    self.request.violate(
                        &rules::HOLLOW_CAPABILITY,
                        "the upgrade capability was offered but accept fails as unsupported",
                        error.to_string(),
                    );
                }
                Err(UpgradeError::Io(error))
            }
            Err(error) => Err(error),
        }
    }
}
