//! A spurious poll, arranged once per asynchronous body.
//!
//! `RGIA-POLL-4` lets a server poll a body that nothing woke, and
//! `RGIA-APP-6` makes the body tolerate it: re-register and return
//! `Pending` again, neither failing nor producing a step because of the
//! extra poll. Servers seldom do it in a test, so the validator arranges
//! one: the first time a body returns `Pending`, it wakes the server's own
//! waker (not the one it lent the body), so the server polls again although
//! nothing the body waits for has signalled. If the body's own wakers stay
//! quiet until that poll and the body then fails, the extra poll is the
//! only explanation left. A step produced there passes: the event it waits
//! for may have happened without a wake-up yet.
//!
//! The extra poll goes through the server, with a fresh lent waker, so
//! every other check sees an ordinary poll.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Poll, Waker};

use rgi::BoxError;
use rgi_async::Step;

use super::rules;
use super::state::{PollWaker, Request, panic_text};

/// Where a body is in its one spurious poll.
#[derive(Debug, Default)]
enum Stage {
    /// Not yet arranged: the body has not returned `Pending`.
    #[default]
    Waiting,
    /// The server's waker was woken after the body's first `Pending`; the
    /// waker lent for that poll tells whether the body was woken since.
    Arranged(Arc<PollWaker>),
    /// Delivered (or found not to be spurious).
    Done,
}

/// One body's spurious poll.
#[derive(Debug, Default)]
pub(crate) struct Repoll {
    stage: Stage,
}

impl Repoll {
    /// At the start of a poll: whether this poll is the arranged spurious
    /// one (nothing woke the body since its `Pending`).
    pub(crate) fn begin(&mut self) -> bool {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Arranged(lent) => !lent.was_woken(),
            Stage::Waiting => {
                self.stage = Stage::Waiting;
                false
            }
            Stage::Done => false,
        }
    }

    /// After a poll: judges the spurious one, and arranges it after the
    /// body's first `Pending` by waking `server` (the server's waker).
    pub(crate) fn end(
        &mut self,
        request: &Request,
        step: &Poll<Option<Result<Step, BoxError>>>,
        spurious: bool,
        server: &Waker,
        lent: &Arc<PollWaker>,
    ) {
        if let (true, Poll::Ready(Some(Err(error)))) = (spurious, step) {
            request.violate(
                &rules::FAILS_ON_SPURIOUS_POLL,
                "the body failed at a poll that nothing it waits for had asked for",
                error.to_string(),
            );
        }
        if !matches!(self.stage, Stage::Waiting) || step.is_ready() {
            return;
        }
        self.stage = Stage::Arranged(Arc::clone(lent));
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| server.wake_by_ref())) {
            request.violate(
                &rules::WAKER_PANICKED,
                "the server's waker panicked when woken",
                panic_text(&*payload),
            );
        }
    }
}
