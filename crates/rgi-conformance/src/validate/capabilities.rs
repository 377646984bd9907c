//! The capability handles an asynchronous application sees, wrapped so
//! that what the server's services do passes the validator
//! (`RGIA-CAP-10` lets a middleware wrap handles).

use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, ThreadId};

use http::HeaderMap;
use rgi::Environ;
use rgi_async::{
    AfterError, AfterResponse, AfterResponseService, AfterTask, Capabilities, Job, Offload,
    OffloadError, OffloadFuture, OffloadService, Upgrade, UpgradeError, UpgradeFuture,
    UpgradeService,
};

use super::rules;
use super::state::{self, Request};

/// Gives the request watched capabilities: wraps the ones
/// `Capabilities::of` finds (the request's own or the server-wide value)
/// and inserts the result into the request's extensions, where it
/// overrides a server-wide value for this request only (`RGIA-CAP-1`).
pub(crate) fn install(environ: &mut Environ, request: &Arc<Request>) {
    let Some(original) = Capabilities::of(environ).cloned() else {
        return;
    };
    let offload = Offload::new(WatchedOffload {
        inner: original.offload().clone(),
        request: Arc::clone(request),
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
        }));
    }
    if let Some(upgrade) = original.upgrade() {
        builder = builder.upgrade(Upgrade::new(WatchedUpgrade {
            inner: upgrade.clone(),
            request: Arc::clone(request),
        }));
    }
    // The validator polls inside the server's own calls, so the server's
    // runtime context stays entered for the wrapped application.
    if let Some(runtime) = original.runtime() {
        builder = builder.runtime(runtime);
    }
    environ.extensions_mut().insert(builder.build());
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
}

impl Handing {
    fn begin() -> Arc<Self> {
        Arc::new(Handing {
            caller: thread::current().id(),
            in_progress: AtomicBool::new(true),
        })
    }

    fn inline(&self) -> bool {
        self.in_progress.load(Ordering::SeqCst) && thread::current().id() == self.caller
    }

    fn end(&self) {
        self.in_progress.store(false, Ordering::SeqCst);
    }
}

/// Runs every job through the server's offload, checking where it runs.
struct WatchedOffload {
    inner: Offload,
    request: Arc<Request>,
}

impl OffloadService for WatchedOffload {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        let handing = Handing::begin();
        // The server's future must outlive this call (dropping it would
        // cancel the job) until the job starts; the job itself drops it.
        let keeper: Arc<Mutex<Option<OffloadFuture<()>>>> = Arc::default();
        let request = Arc::clone(&self.request);
        let job_handing = Arc::clone(&handing);
        let job_keeper = Arc::clone(&keeper);
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
                job.run();
            })
        });
        // A refusal is known at the first poll (`Offload::run` reports
        // `execute`'s error there); a job that ran inline is done already.
        let mut cx = Context::from_waker(Waker::noop());
        let outcome = match Pin::new(&mut future).poll(&mut cx) {
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
}

impl AfterResponseService for WatchedAfter {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        let handing = Handing::begin();
        let request = Arc::clone(&self.request);
        let task_handing = Arc::clone(&handing);
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
                } else if request.registry.is_loop_thread(here) {
                    request.violate(
                    &rules::AFTER_TASK_ON_LOOP_THREAD,
                    "an after-response task runs on a thread that polls a live asynchronous body",
                    format!("{here:?}"),
                );
                }
                task();
            })
        });
        handing.end();
        spawned
    }
}

/// Hands upgrades to the server's service, watching what the
/// application does around them.
struct WatchedUpgrade {
    inner: Upgrade,
    request: Arc<Request>,
}

impl UpgradeService for WatchedUpgrade {
    fn accept(&self, headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        let here = thread::current().id();
        self.request.with(|t| {
            if t.sync_scope == Some(here) {
                t.violate(
                    &rules::UPGRADE_FROM_SYNC_CODE,
                    "a switch continuation accepted an upgrade, tying a worker thread to the connection",
                    format!("{headers:?}"),
                );
            }
        });
        match guarded(&self.request, "Upgrade::accept", || {
            self.inner.accept(headers)
        }) {
            Ok(upgraded) => {
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
