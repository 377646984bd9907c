//! Sets of threads a request's checks remember: the threads that served
//! its asynchronous side, and the threads running its offload jobs.
//!
//! The registry knows the loop threads of bodies still alive; once a body
//! is dropped its entry goes. A continuation or an after-response task
//! that a server runs on the very thread that called the application or
//! polled its body, after the body is gone, is still run on a loop thread
//! (`RGIA-SWITCH-3`, `RGIA-AFTER-2`): that thread drives asynchronous
//! bodies, and blocking it stalls them. This list keeps those threads for
//! the whole request.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, ThreadId};

/// A shared set of threads: for the loop threads, the ones that ran the
/// request's `call` or polled its asynchronous body (shared by the body,
/// its switch and its capability handles).
#[derive(Debug, Clone, Default)]
pub(crate) struct LoopThreads(Arc<Mutex<Vec<ThreadId>>>);

impl LoopThreads {
    /// Adds the current thread.
    pub(crate) fn record_here(&self) {
        let here = thread::current().id();
        let mut threads = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !threads.contains(&here) {
            threads.push(here);
        }
    }

    /// Removes the current thread (once: a thread recorded twice stays).
    pub(crate) fn forget_here(&self) {
        let here = thread::current().id();
        let mut threads = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = threads.iter().position(|thread| *thread == here) {
            threads.swap_remove(at);
        }
    }

    /// Whether the current thread is in the set.
    pub(crate) fn contains_here(&self) -> bool {
        let here = thread::current().id();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&here)
    }
}
