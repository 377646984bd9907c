//! The synchronous validator and its body.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::Method;
use rgi::{
    Application, Body, BoxError, Environ, FileBody, Hints, InputUse, StartResponse, Startup,
};

use super::life::Life;
use super::rules;
use super::state::{self, Flavor, Registry, Request, Scope};
use super::watchdog::{self, BodyWatch, Watchdog};
use super::{environ, input};
use crate::{Policy, Reports, Violation};

/// Wraps a synchronous application and checks both sides of the
/// interface on every request: what the server hands in and how it drives
/// the body, and what the application does with the environ, the handle,
/// the input and its body. See the [module documentation](super).
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use http::{header, HeaderValue, StatusCode};
/// use rgi::{Environ, ResponseHead};
/// use rgi_conformance::validate::Validator;
/// use rgi_conformance::{Policy, Reports};
///
/// let app = rgi::from_fn(|_environ: Environ, start| {
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     start.start(ResponseHead::new(StatusCode::OK))?; // a second start: a bug
///     Ok(Bytes::from_static(b"hello"))
/// });
/// let validator = Validator::new(app, Reports::new(Policy::Collect));
/// let environ = Environ::builder()
///     .header(header::HOST, HeaderValue::from_static("example.org"))
///     .build()?;
/// let _ = rgi_conformance::rt::serve_sync(&validator, environ, &mut rgi_conformance::rt::Recorder::new());
/// assert_eq!(validator.reports().clauses(), ["RGI-START-7"]);
/// # Ok::<(), rgi::EnvironError>(())
/// ```
pub struct Validator<A> {
    app: A,
    reports: Reports,
    registry: Arc<Registry>,
    first_hints: Mutex<Option<Hints>>,
    hints_reported: AtomicBool,
    pub(super) watchdog: Watchdog,
    life: Arc<Life>,
}

impl<A> Validator<A> {
    /// Wraps `app`; every violation goes to `reports`, which applies its
    /// policy.
    pub fn new(app: A, reports: Reports) -> Self {
        Validator {
            app,
            registry: Arc::default(),
            first_hints: Mutex::new(None),
            hints_reported: AtomicBool::new(false),
            watchdog: Watchdog::new(),
            life: Life::new(reports.clone()),
            reports,
        }
    }

    /// Wraps `app` with [`Policy::Panic`]: the first violation panics with
    /// its clause, at the call that broke the rule.
    pub fn panicking(app: A) -> Self {
        Validator::new(app, Reports::new(Policy::Panic))
    }

    /// The violations seen so far (shared with every clone of the
    /// [`Reports`] given to [`Validator::new`]).
    pub fn reports(&self) -> &Reports {
        &self.reports
    }

    /// The wrapped application.
    pub fn get_ref(&self) -> &A {
        &self.app
    }
}

impl<A: Application> Validator<A> {
    /// The application's hints, checked for stability (`RGI-HINT-3`).
    fn checked_hints(&self) -> Hints {
        let hints = self.app.hints();
        let mut first = self
            .first_hints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let earlier = *first.get_or_insert(hints);
        drop(first);
        if earlier != hints && !self.hints_reported.swap(true, Ordering::SeqCst) {
            let rule = rules::HINTS_UNSTABLE;
            state::report(
                &self.reports,
                Violation::new(
                    rule.clause(),
                    rule.side,
                    "hints() returned a different value than before",
                    format!("first {earlier:?}, now {hints:?}"),
                ),
            );
        }
        hints
    }
}

impl<A> Drop for Validator<A> {
    fn drop(&mut self) {
        state::report_kept(&self.registry, &self.reports);
    }
}

impl<A> fmt::Debug for Validator<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("app", &std::any::type_name::<A>())
            .field("reports", &self.reports)
            .finish_non_exhaustive()
    }
}

impl<A: Application> Application for Validator<A> {
    type Body = ValidatedBody<A::Body>;

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let head = environ.method() == Method::HEAD;
        let request = Request::new(
            self.reports.clone(),
            Arc::clone(&self.registry),
            Flavor::Sync,
            head,
        );
        let hints = self.checked_hints();
        if let Some(kept) = self.registry.ended_alive_here(request.id) {
            request.violate(
                &rules::BODY_KEPT_AFTER_END,
                "the thread that drove a body to its end serves a new request while that body is still alive",
                format!("request #{kept} ended and was not dropped"),
            );
        }
        request.note_target(&environ);
        request.with(|t| {
            t.hints_no_input = hints.input == InputUse::None;
            t.hints = Some(hints);
            t.features.note_request(&environ);
            environ::check(&environ, t);
        });
        self.life.on_call(&environ, &request);
        input::install(&mut environ, &request);
        let called = state::scoped(
            &request,
            Flavor::Sync,
            start,
            Scope::Call,
            Result::is_err,
            |start| {
                watchdog::watch_sync_call(&self.watchdog, &request, hints, || {
                    self.app.call(environ, start)
                })
            },
        );
        match called {
            Ok(body) => Ok(ValidatedBody::new(body, request, None)
                .watched(BodyWatch::new(self.watchdog, hints))),
            Err(error) => {
                request.registry.close(request.id);
                request.with(|t| t.done = true);
                request.judge_failure(&error);
                Err(error)
            }
        }
    }

    fn hints(&self) -> Hints {
        self.checked_hints()
    }

    /// Judges the server's call (`RGI-LIFE-1`) and forwards it to the
    /// wrapped application (`RGI-LIFE-4`).
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.life
            .startup(startup, |startup| self.app.startup(startup))
    }

    /// Judges the server's call (`RGI-LIFE-3`) and forwards it to the
    /// wrapped application (`RGI-LIFE-4`).
    fn shutdown(&self) {
        self.life
            .shutdown(self.registry.live_count(), || self.app.shutdown());
    }
}

/// The body a [`Validator`] returns (also the body a switch continuation
/// returns under an [`AsyncValidator`](super::AsyncValidator)): watches
/// how the server pulls and drops it and what the application yields.
pub struct ValidatedBody<B: Body> {
    inner: Option<B>,
    request: Arc<Request>,
    /// The body's registry entry.
    entry: u64,
    /// It returned `None` or an error.
    ended: bool,
    /// A pull is in progress; still set at the next pull if it panicked.
    pulling: bool,
    /// The file body's offset when the server last asked for it.
    file_offset: Option<u64>,
    pub(super) watch: BodyWatch,
    /// The server pulled it at least once.
    pulled: bool,
}

impl<B: Body> ValidatedBody<B> {
    /// Wraps `inner`; `entry` is its registry entry when it is not the
    /// request's own.
    pub(crate) fn new(inner: B, request: Arc<Request>, entry: Option<u64>) -> Self {
        let entry = entry.unwrap_or(request.id);
        request.registry.body_created(entry);
        let hint = inner.size_hint();
        request.with(|t| t.on_size_hint(hint));
        ValidatedBody {
            inner: Some(inner),
            request,
            entry,
            ended: false,
            pulling: false,
            file_offset: None,
            watch: BodyWatch::default(),
            pulled: false,
        }
    }

    /// Accounts for bytes the server sent from the file body by itself.
    fn settle_file(&mut self) {
        let Some(before) = self.file_offset.take() else {
            return;
        };
        let Some(file) = self.inner.as_mut().and_then(Body::file) else {
            return;
        };
        let sent = file.offset().saturating_sub(before);
        self.request.with(|t| t.on_file_output(sent));
    }
}

impl<B: Body> Body for ValidatedBody<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if self.ended || self.pulling {
            let why = if self.pulling {
                "panicked"
            } else {
                "returned None or an error"
            };
            self.request.violate(
                &rules::PULL_AFTER_END,
                format!("the server pulled the body again after it {why}"),
                "next_chunk",
            );
            return None;
        }
        self.settle_file();
        let inner = self.inner.as_mut()?;
        self.pulling = true;
        self.pulled = true;
        let step = state::scoped(
            &self.request,
            Flavor::Sync,
            start,
            Scope::Pull,
            |step: &Option<Result<Bytes, BoxError>>| matches!(step, Some(Err(_))),
            |start| {
                watchdog::watch_sync_pull(&self.watch, &self.request, || inner.next_chunk(start))
            },
        );
        self.pulling = false;
        match &step {
            None => {
                self.ended = true;
                self.request.registry.ended_here(self.entry);
                self.request.with(|t| {
                    t.on_end(Flavor::Sync);
                    t.done = true;
                });
                self.request.compare_with_get();
            }
            Some(Err(error)) => {
                self.ended = true;
                self.request.registry.ended_here(self.entry);
                self.request.with(|t| t.done = true);
                self.request.judge_failure(error);
            }
            Some(Ok(chunk)) => self.request.with(|t| t.on_chunk(chunk, Flavor::Sync)),
        }
        step
    }

    fn size_hint(&self) -> Option<u64> {
        let hint = self.inner.as_ref().and_then(Body::size_hint);
        if !self.ended && self.file_offset.is_none() {
            self.request.with(|t| t.on_size_hint(hint));
        }
        hint
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        self.settle_file();
        let file = self.inner.as_mut()?.file()?;
        self.file_offset = Some(file.offset());
        Some(file)
    }
}

impl<B: Body> Drop for ValidatedBody<B> {
    fn drop(&mut self) {
        self.settle_file();
        if !self.pulled && self.entry == self.request.id && !std::thread::panicking() {
            let request = &self.request;
            request.quietly(|t| {
                if t.unstarted() {
                    t.violate(
                        &rules::UNSTARTED_BODY_NOT_PULLED,
                        "the server dropped the body of a response not started in call without pulling it",
                        "no pull",
                    );
                }
            });
        }
        let dropped = watchdog::watch_sync_drop(&self.watch, &self.request, || {
            state::drop_body(self.inner.take())
        });
        self.request.registry.close(self.entry);
        self.request.with(|t| t.done = true);
        self.request.judge_drop(dropped);
    }
}

impl<B: Body> fmt::Debug for ValidatedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatedBody")
            .field("body", &std::any::type_name::<B>())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

// ---- The watchdog settings ----

impl<A> Validator<A> {
    /// The same validator with other watchdog settings (the default is
    /// [`Watchdog::new`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi_conformance::validate::{Validator, Watchdog};
    /// use rgi_conformance::{Policy, Reports};
    ///
    /// let app = rgi::from_fn(|_environ, start| {
    ///     start.start(http::StatusCode::NO_CONTENT)?;
    ///     Ok(rgi::Empty)
    /// });
    /// let validator = Validator::new(app, Reports::new(Policy::Collect)).with_watchdog(Watchdog::disabled());
    /// assert_eq!(validator.watchdog(), Watchdog::disabled());
    /// ```
    #[must_use]
    pub fn with_watchdog(mut self, watchdog: Watchdog) -> Self {
        self.watchdog = watchdog;
        self
    }

    /// The watchdog settings in force.
    #[must_use]
    pub fn watchdog(&self) -> Watchdog {
        self.watchdog
    }
}

impl<B: Body> ValidatedBody<B> {
    /// This body, timed by `watch`.
    pub(super) fn watched(mut self, watch: BodyWatch) -> Self {
        self.watch = watch;
        self
    }
}
