//! What the environ declares about the server (its concurrency facts)
//! against what one application value sees happen: calls counted, and
//! calls in progress on other threads.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, ThreadId};

use rgi::Environ;

use super::rules;
use super::state::Request;

/// The calls one validator (one application value) has received.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    state: Mutex<CallsState>,
}

#[derive(Debug, Default)]
struct CallsState {
    /// Calls so far.
    count: u64,
    /// Requests whose call was made and whose response may still run.
    running: Vec<Running>,
}

/// One request that may still be running.
#[derive(Debug)]
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

/// Compares the concurrency facts of a new request with the calls the
/// same application value has had (`RGI-ENV-8`).
pub(crate) fn on_call(environ: &Environ, request: &Arc<Request>) {
    let concurrency = environ.concurrency();
    let here = thread::current().id();
    let (earlier, others) = {
        let mut state = request
            .registry
            .calls
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let earlier = state.count;
        state.count += 1;
        let others: Vec<(Weak<Request>, ThreadId, bool)> = state
            .running
            .iter()
            .map(|running| {
                (
                    Weak::clone(&running.request),
                    running.thread,
                    running.multithread,
                )
            })
            .collect();
        state.running.push(Running {
            request: Arc::downgrade(request),
            thread: here,
            multithread: concurrency.multithread,
        });
        (earlier, others)
    };
    // The other requests' trackers are read with this validator's list
    // unlocked, so no two locks are ever held together.
    let mut finished = Vec::new();
    let mut overlapping = None;
    for (weak, thread, multithread) in others {
        let running = Running {
            request: weak,
            thread,
            multithread,
        };
        if !running.is_live() {
            finished.push(running.request);
            continue;
        }
        if running.thread != here && !(running.multithread && concurrency.multithread) {
            overlapping = Some(running.multithread);
        }
    }
    if !finished.is_empty() {
        let mut state = request
            .registry
            .calls
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state
            .running
            .retain(|running| !finished.iter().any(|gone| gone.ptr_eq(&running.request)));
    }
    if let Some(other_multithread) = overlapping {
        request.violate(
            &rules::SINGLE_THREAD_CLAIM_CONCURRENT_CALLS,
            "the application was called from one thread while a request it was called for from another thread still ran, though the environ says multithread is false",
            format!(
                "this request multithread={}, the running one multithread={other_multithread}",
                concurrency.multithread
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
