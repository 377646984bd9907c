//! What the environ declares about the server (its concurrency facts)
//! against what one application value sees happen: calls counted, and
//! calls in progress on other threads.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, ThreadId};

use rgi::Environ;

use super::rules;
use super::state::{Registry, Request};

/// The calls each validator (each application value) has received, by its
/// registry. Kept here rather than in the registry so that the request
/// state does not depend on the checks that read it.
static CALLS: Mutex<Vec<Calls>> = Mutex::new(Vec::new());

/// The calls one validator has received.
#[derive(Debug)]
struct Calls {
    /// The validator's registry, which lives as long as the validator and
    /// its requests.
    registry: Weak<Registry>,
    /// Calls so far.
    count: u64,
    /// Requests whose call was made and whose response may still run.
    running: Vec<Running>,
}

/// One request that may still be running.
#[derive(Debug, Clone)]
struct Running {
    request: Weak<Request>,
    /// The thread its `call` ran on.
    thread: ThreadId,
    /// What its environ said.
    multithread: bool,
}

impl Running {
    /// Whether the request is still going: its tracker is alive and the
    /// application has not finished with it.
    fn is_live(&self) -> bool {
        let Some(request) = self.request.upgrade() else {
            return false;
        };
        let mut done = true;
        request.quietly(|t| done = t.done);
        !done
    }
}

/// Runs `f` on the calls of `registry`'s validator, forgetting those of
/// validators that are gone.
fn with_calls<R>(registry: &Arc<Registry>, f: impl FnOnce(&mut Calls) -> R) -> R {
    let mut all = CALLS.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|calls| calls.registry.strong_count() > 0);
    let at = match all
        .iter()
        .position(|calls| std::ptr::eq(calls.registry.as_ptr(), Arc::as_ptr(registry)))
    {
        Some(at) => at,
        None => {
            all.push(Calls {
                registry: Arc::downgrade(registry),
                count: 0,
                running: Vec::new(),
            });
            all.len() - 1
        }
    };
    f(&mut all[at])
}

/// Compares the concurrency facts of a new request with the calls the
/// same application value has had (`RGI-ENV-8`).
pub(crate) fn on_call(environ: &Environ, request: &Arc<Request>) {
    let concurrency = environ.concurrency();
    let here = thread::current().id();
    let (earlier, others) = with_calls(&request.registry, |calls| {
        let earlier = calls.count;
        calls.count += 1;
        let others = calls.running.clone();
        calls.running.push(Running {
            request: Arc::downgrade(request),
            thread: here,
            multithread: concurrency.multithread,
        });
        (earlier, others)
    });
    // The other requests' trackers are read with the list unlocked, so
    // that no two locks are ever held together.
    let (live, finished): (Vec<Running>, Vec<Running>) =
        others.into_iter().partition(Running::is_live);
    if !finished.is_empty() {
        with_calls(&request.registry, |calls| {
            calls.running.retain(|running| {
                !finished
                    .iter()
                    .any(|gone| gone.request.ptr_eq(&running.request))
            });
        });
    }
    let overlapping = live.iter().find(|running| {
        running.thread != here && !(running.multithread && concurrency.multithread)
    });
    if let Some(running) = overlapping {
        request.violate(
            &rules::SINGLE_THREAD_CLAIM_CONCURRENT_CALLS,
            "the application was called from one thread while a request it was called for from another thread still ran, though the environ says multithread is false",
            format!(
                "this request multithread={}, the running one multithread={}",
                concurrency.multithread, running.multithread
            ),
        );
    }
    if concurrency.run_once && earlier > 0 {
        request.violate(
            &rules::RUN_ONCE_CALLED_AGAIN,
            "the environ says run_once, but the same application value was called before",
            format!("call number {}", earlier + 1),
        );
    }
}
