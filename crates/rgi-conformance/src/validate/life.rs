//! The lifespan calls (spec/rgi.md §16.4): what a validator sees of the
//! server's `startup` and `shutdown`, which it forwards to the application
//! it wraps (`RGI-LIFE-4`), and how each request relates to them.
//!
//! Every validator whose start-up succeeds leaves a private mark in the
//! start-up state, so that its requests can tell whether the server serves
//! them with the `ServerInfo` that `run_startup` returned
//! (`RGI-LIFE-1`), and a validator inside a middleware can tell that a
//! validator outside was started while it was not: the middleware did not
//! forward the call.

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rgi::{BoxError, Environ, Startup};

use super::rules::{self, Rule};
use super::state::{self, Request};
use crate::{Reports, Violation};

/// The numbers that tell validators apart in the start-up state.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The validators whose start-up returned `Ok`, as the start-up state
/// holds them: every request served with the `ServerInfo` `run_startup`
/// returned carries it.
#[derive(Clone)]
struct Started(Arc<Vec<Arc<Life>>>);

impl Started {
    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(|life| life.id)
    }
}

/// The state of one validator's lifespan calls.
#[derive(Debug, Default)]
struct Calls {
    startups: u32,
    /// How the start-up ended: `Some(true)` for `Ok`, `Some(false)` for an
    /// error or a panic.
    started: Option<bool>,
    shutdowns: u32,
    /// The validators inside this one that were started through its
    /// application (a middleware forwarded the call to them).
    inner: Vec<Arc<Life>>,
}

/// One validator's view of the lifespan calls.
pub(crate) struct Life {
    id: u64,
    reports: Reports,
    calls: Mutex<Calls>,
    /// Rules reported outside any request, once each.
    reported: Mutex<BTreeSet<&'static str>>,
}

impl std::fmt::Debug for Life {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Life")
            .field("id", &self.id)
            .field("calls", &*self.calls())
            .finish_non_exhaustive()
    }
}

impl Life {
    /// The lifespan view of a new validator reporting to `reports`.
    pub(crate) fn new(reports: Reports) -> Arc<Self> {
        Arc::new(Life {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            reports,
            calls: Mutex::default(),
            reported: Mutex::default(),
        })
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reports a violation of `rule` outside any request, once.
    fn violate(&self, rule: &Rule, message: &str, value: String) {
        let first = self
            .reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(rule.name());
        if first {
            state::report(
                &self.reports,
                Violation::new(rule.clause(), rule.side, message, value),
            );
        }
    }

    /// The server calls `startup`: checked, then forwarded to the wrapped
    /// application (`forward`); a successful start-up leaves this
    /// validator's mark in the state.
    ///
    /// # Errors
    ///
    /// The wrapped application's own.
    pub(crate) fn startup(
        self: &Arc<Self>,
        startup: &mut Startup<'_>,
        forward: impl FnOnce(&mut Startup<'_>) -> Result<(), BoxError>,
    ) -> Result<(), BoxError> {
        let count = {
            let mut calls = self.calls();
            calls.startups += 1;
            calls.startups
        };
        if count > 1 {
            self.violate(
                &rules::STARTUP_TWICE,
                "the server called the application's startup again",
                format!("call {count}"),
            );
        }
        let before: BTreeSet<u64> =
            marks(startup).map_or_else(BTreeSet::new, |started| started.ids().collect());
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| forward(&mut *startup)));
        let succeeded = matches!(outcome, Ok(Ok(())));
        let mut marked: Vec<Arc<Life>> = marks(startup)
            .map(|started| started.0.to_vec())
            .unwrap_or_default();
        let inner: Vec<Arc<Life>> = marked
            .iter()
            .filter(|life| !before.contains(&life.id))
            .cloned()
            .collect();
        {
            let mut calls = self.calls();
            calls.started = Some(succeeded);
            calls.inner = inner;
        }
        if succeeded {
            marked.push(Arc::clone(self));
            startup.insert_state(Started(Arc::new(marked)));
        }
        match outcome {
            Ok(result) => result,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// The server calls `shutdown` while `live` requests of this validator
    /// have not ended: checked, then forwarded (`forward`); afterwards,
    /// every validator started through the wrapped application must have
    /// been shut down through it too.
    pub(crate) fn shutdown(&self, live: usize, forward: impl FnOnce()) {
        let (count, started) = {
            let mut calls = self.calls();
            calls.shutdowns += 1;
            (calls.shutdowns, calls.started)
        };
        if count > 1 {
            self.violate(
                &rules::SHUTDOWN_TWICE,
                "the server called the application's shutdown again",
                format!("call {count}"),
            );
        }
        if started != Some(true) {
            self.violate(
                &rules::SHUTDOWN_WITHOUT_STARTUP,
                "the server called shutdown for an application whose start-up it did not call, or that failed",
                format!("start-up: {started:?}"),
            );
        }
        if live > 0 {
            self.violate(
                &rules::SHUTDOWN_BEFORE_LAST_RESPONSE,
                "the server called shutdown while responses were still under way or their bodies alive",
                format!("{live} request(s) not ended"),
            );
        }
        forward();
        let inner = std::mem::take(&mut self.calls().inner);
        for life in inner {
            if life.calls().shutdowns == 0 {
                self.violate(
                    &rules::MW_SHUTDOWN_NOT_FORWARDED,
                    "the middleware inside this validator did not forward shutdown to the application it wraps (a validator there was started and never shut down)",
                    format!("inner validator #{}", life.id),
                );
            }
        }
    }

    /// Judges a request against the lifespan calls so far.
    pub(crate) fn on_call(&self, environ: &Environ, request: &Request) {
        let (startups, started, shutdowns) = {
            let calls = self.calls();
            (calls.startups, calls.started, calls.shutdowns)
        };
        if shutdowns > 0 {
            request.violate(
                &rules::CALLED_AFTER_SHUTDOWN,
                "the server called the application after its shutdown",
                format!("{shutdowns} shutdown call(s) before"),
            );
        }
        if started == Some(false) {
            request.violate(
                &rules::CALLED_AFTER_FAILED_STARTUP,
                "the server serves an application whose start-up failed",
                "startup returned an error or panicked",
            );
            return;
        }
        let declared = environ.features().lifespan();
        if startups > 0 && !declared {
            request.violate(
                &rules::FEATURE_UNDECLARED,
                "the server called startup but does not declare lifespan",
                "Features::lifespan() false",
            );
            return;
        }
        if !declared {
            return;
        }
        let marks = environ.server_extension::<Started>();
        if startups == 0 {
            match marks.filter(|started| !started.0.is_empty()) {
                Some(started) => request.violate(
                    &rules::MW_STARTUP_NOT_FORWARDED,
                    "a validator outside was started, this one never: the middleware between them did not forward startup",
                    format!("started: validators {:?}", started.ids().collect::<Vec<_>>()),
                ),
                None => request.violate(
                    &rules::CALLED_BEFORE_STARTUP,
                    "the server declares lifespan and called the application before its startup",
                    "no startup call",
                ),
            }
        } else if !marks.is_some_and(|started| started.ids().any(|id| id == self.id)) {
            request.violate(
                &rules::STARTUP_STATE_MISSING,
                "the request is not served with the ServerInfo the start-up returned: the state stored in startup is missing",
                "environ.server_extension() lacks the start-up state",
            );
        }
    }
}

/// The marks in the start-up state so far.
fn marks<'s>(startup: &'s Startup<'_>) -> Option<&'s Started> {
    startup.server_info().extension::<Started>()
}
