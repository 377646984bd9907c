//! The asynchronous validator, its body and the switch it wraps.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use http::Method;
use rgi::{Body, BoxError, Environ, StartResponse, Startup};
use rgi_async::{AsyncApplication, AsyncBody, Step, SyncSwitch};

use super::cap_spurious::Repoll;
use super::life::Life;
use super::rules;
use super::state::{self, Flavor, PollWaker, Registry, Request, Scope};
use super::switch_threads::LoopThreads;
use super::sync::ValidatedBody;
use super::watchdog::{AsyncSite, AsyncWatch, Watchdog, watch_async};
use super::{capabilities, environ, input};
use crate::{Policy, Reports};
use std::any::type_name;

/// Consecutive polls after `Pending` without a wake-up of the body's
/// waker, within [`BUSY_WINDOW`], before the validator calls it busy
/// polling. `RGIA-POLL-4` allows occasional polls after events the server
/// cannot attribute (a connection task woken by its socket polls the body
/// too); a thousand in a tenth of a second is a loop, not events.
const BUSY_POLLS: u32 = 1000;

/// See [`BUSY_POLLS`].
const BUSY_WINDOW: Duration = Duration::from_millis(100);

/// Wraps an asynchronous application and checks both sides of the
/// interface on every request: the environ and capabilities the server
/// hands in, how it polls, drops and switches the body, what its
/// capability handles do, and what the application does with all of them.
/// See the [module documentation](super).
///
/// The capabilities the application sees are wrapped (`RGIA-CAP-10`
/// allows it) so that offload jobs, after-response tasks, readiness waits
/// and upgrades pass the validator too.
///
/// # Examples
///
/// ```
/// use http::{header, HeaderValue, StatusCode};
/// use rgi::{Environ, ResponseHead};
/// use rgi_async::{Capabilities, Offload};
/// use rgi_conformance::rt::{serve_async, Recorder, ThreadOffload};
/// use rgi_conformance::validate::AsyncValidator;
///
/// let app = rgi_async::from_fn(|_environ: Environ, start| {
///     start.start(
///         ResponseHead::new(StatusCode::OK)
///             .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
///     )?;
///     Ok(bytes::Bytes::from_static(b"hello"))
/// });
/// let validator = AsyncValidator::panicking(app); // any violation panics
/// let environ = Environ::builder()
///     .header(header::HOST, HeaderValue::from_static("example.org"))
///     .extension(Capabilities::builder(Offload::new(ThreadOffload::new())).build())
///     .build()?;
/// let mut wire = Recorder::new();
/// assert!(serve_async(&validator, environ, &mut wire).outcome.is_complete());
/// assert_eq!(wire.body(), b"hello");
/// # Ok::<(), rgi::EnvironError>(())
/// ```
pub struct AsyncValidator<A> {
    app: A,
    reports: Reports,
    registry: Arc<Registry>,
    pub(super) watchdog: Watchdog,
    life: Arc<Life>,
}

impl<A> AsyncValidator<A> {
    /// Wraps `app`; every violation goes to `reports`, which applies its
    /// policy.
    pub fn new(app: A, reports: Reports) -> Self {
        AsyncValidator {
            app,
            life: Life::new(reports.clone()),
            reports,
            registry: Arc::default(),
            watchdog: Watchdog::new(),
        }
    }

    /// Wraps `app` with [`Policy::Panic`]: the first violation panics with
    /// its clause, at the call that broke the rule.
    pub fn panicking(app: A) -> Self {
        AsyncValidator::new(app, Reports::new(Policy::Panic))
    }

    /// The violations seen so far (shared with every clone of the
    /// [`Reports`] given to [`AsyncValidator::new`]).
    pub fn reports(&self) -> &Reports {
        &self.reports
    }

    /// The wrapped application.
    pub fn get_ref(&self) -> &A {
        &self.app
    }
}

impl<A> Drop for AsyncValidator<A> {
    fn drop(&mut self) {
        state::report_kept(&self.registry, &self.reports);
    }
}

impl<A> fmt::Debug for AsyncValidator<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncValidator")
            .field("app", &std::any::type_name::<A>())
            .field("reports", &self.reports)
            .finish_non_exhaustive()
    }
}

/// Clears the request's loop scope when a step ends, even by a panic.
struct LoopScope<'r>(&'r Request);

impl<'r> LoopScope<'r> {
    fn enter(request: &'r Request) -> Self {
        request.with(|t| t.loop_scope = Some(thread::current().id()));
        LoopScope(request)
    }
}

impl Drop for LoopScope<'_> {
    fn drop(&mut self) {
        self.0.quietly(|t| {
            t.loop_scope = None;
            t.poll_waker = None;
        });
    }
}

impl<A: AsyncApplication> AsyncApplication for AsyncValidator<A> {
    type Body = AsyncValidatedBody<A::Body>;

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let head = environ.method() == Method::HEAD;
        let request = Request::new(
            self.reports.clone(),
            Arc::clone(&self.registry),
            Flavor::Async,
            head,
        );
        request.note_target(&environ);
        request.with(|t| {
            t.features.note_request(&environ);
            environ::check(&environ, t);
            environ::check_async(&environ, t);
        });
        self.life.on_call(&environ, &request);
        let threads = LoopThreads::default();
        threads.record_here();
        let upgrade_unavailable = capabilities::upgrade_unavailable(&environ);
        capabilities::install(&mut environ, &request, &threads);
        input::install(&mut environ, &request);
        let called = {
            let _scope = LoopScope::enter(&request);
            state::scoped(
                &request,
                Flavor::Async,
                start,
                Scope::Call,
                Result::is_err,
                |start| {
                    watch_async(
                        &self.watchdog,
                        &request,
                        AsyncSite::Call,
                        type_name::<A>(),
                        || self.app.call(environ, start),
                    )
                },
            )
        };
        match called {
            Ok(body) => Ok(AsyncValidatedBody::new(
                body,
                request,
                threads,
                AsyncWatch::after_call(self.watchdog, type_name::<A>()),
            )),
            Err(error) => {
                capabilities::judge_failure(&request, upgrade_unavailable);
                request.registry.close(request.id);
                request.with(|t| t.done = true);
                request.judge_failure(&error);
                Err(error)
            }
        }
    }

    /// Judges the server's call (`RGI-LIFE-1`, `RGIA-LIFE-1`) and forwards
    /// it to the wrapped application (`RGIA-LIFE-2`).
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.life
            .startup(startup, |startup| self.app.startup(startup))
    }

    /// Judges the server's call (`RGI-LIFE-3`) and forwards it to the
    /// wrapped application (`RGIA-LIFE-2`).
    fn shutdown(&self) {
        self.life
            .shutdown(self.registry.live_count(), || self.app.shutdown());
    }
}

/// The body an [`AsyncValidator`] returns: watches how the server polls,
/// wakes, switches and drops it, and what the application's steps do.
pub struct AsyncValidatedBody<B: AsyncBody> {
    inner: Option<Pin<Box<B>>>,
    request: Arc<Request>,
    /// It returned `Ready(None)`, an error or a switch.
    ended: bool,
    /// A poll is in progress; still set at the next poll if it panicked.
    polling: bool,
    /// The last poll returned `Pending`.
    last_pending: bool,
    /// Polls since the last `Pending` without a wake-up in between, and
    /// when the first of them happened.
    unwoken_polls: u32,
    unwoken_since: Option<Instant>,
    /// The threads that called the application or polled this body.
    threads: LoopThreads,
    repoll: Repoll,
    watch: AsyncWatch,
}

impl<B: AsyncBody> AsyncValidatedBody<B> {
    fn new(inner: B, request: Arc<Request>, threads: LoopThreads, watch: AsyncWatch) -> Self {
        request.registry.body_created(request.id);
        let hint = inner.size_hint();
        request.with(|t| t.on_size_hint(hint));
        AsyncValidatedBody {
            inner: Some(Box::pin(inner)),
            request,
            ended: false,
            polling: false,
            last_pending: false,
            unwoken_polls: 0,
            unwoken_since: None,
            threads,
            repoll: Repoll::default(),
            watch,
        }
    }

    /// Counts polls after `Pending` that no wake-up asked for.
    fn check_busy_polling(&mut self) {
        let woken = self.request.woken.swap(false, Ordering::SeqCst);
        if !self.last_pending || woken {
            self.unwoken_polls = 0;
            self.unwoken_since = None;
            return;
        }
        self.unwoken_polls += 1;
        let since = *self.unwoken_since.get_or_insert_with(Instant::now);
        if since.elapsed() > BUSY_WINDOW {
            // Spread out: events, not a loop. Start counting afresh.
            self.unwoken_polls = 1;
            self.unwoken_since = Some(Instant::now());
        } else if self.unwoken_polls >= BUSY_POLLS {
            self.request.violate(
                &rules::BUSY_POLLING,
                "the server keeps polling a pending body that nobody woke",
                format!(
                    "{} polls in a row without a wake-up, within {:?}",
                    self.unwoken_polls,
                    since.elapsed()
                ),
            );
        }
    }
}

impl<B: AsyncBody> AsyncBody for AsyncValidatedBody<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if this.ended || this.polling {
            let why = if this.polling {
                "panicked"
            } else {
                "returned Ready(None), an error or a switch"
            };
            this.request.violate(
                &rules::POLL_AFTER_END,
                format!("the server polled the body again after it {why}"),
                "poll_step",
            );
            return Poll::Ready(None);
        }
        this.request.registry.polled_here(this.request.id);
        this.threads.record_here();
        this.check_busy_polling();
        let lent = Arc::new(PollWaker::new(
            this.watch.stamped(cx.waker()),
            Arc::clone(&this.request),
        ));
        let waker = Waker::from(Arc::clone(&lent));
        let mut lent_cx = Context::from_waker(&waker);
        let watch = &this.watch;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.polling = true;
        let spurious = this.repoll.begin();
        let (step, kept, blamed) = {
            let scope = LoopScope::enter(&this.request);
            this.request.with(|t| {
                t.poll_waker = Some(Arc::clone(&lent));
                t.source_blamed = false;
            });
            let before = Arc::strong_count(&lent);
            let step = state::scoped(
                &this.request,
                Flavor::Async,
                start,
                Scope::Pull,
                |step: &Poll<Option<Result<Step, BoxError>>>| {
                    matches!(step, Poll::Ready(Some(Err(_))))
                },
                |start| {
                    watch.poll(&this.request, || {
                        inner.as_mut().poll_step(&mut lent_cx, start)
                    })
                },
            );
            let kept = Arc::strong_count(&lent) > before || lent.was_woken();
            let blamed = this.request.with(|t| t.source_blamed);
            drop(scope);
            (step, kept, blamed)
        };
        this.polling = false;
        this.last_pending = step.is_pending();
        this.repoll
            .end(&this.request, &step, spurious, cx.waker(), &lent);
        match step {
            Poll::Pending => {
                if !kept && !blamed {
                    this.request.violate(
                        watch.pending_rule(),
                        "the body returned Pending without keeping or waking the waker it was given",
                        "Poll::Pending",
                    );
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.request.with(|t| {
                    t.on_end(Flavor::Async);
                    t.done = true;
                });
                this.request.compare_with_get();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                input::on_failure(&this.request, &*error);
                this.ended = true;
                this.request.with(|t| t.done = true);
                this.request.judge_failure(&error);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Some(Ok(Step::Chunk(chunk)))) => {
                this.request.with(|t| t.on_chunk(&chunk, Flavor::Async));
                Poll::Ready(Some(Ok(Step::Chunk(chunk))))
            }
            Poll::Ready(Some(Ok(Step::Switch(switch)))) => {
                this.ended = true;
                this.request.with(|t| {
                    if t.hinted() {
                        t.violate(
                            &rules::SIZE_HINT_BEFORE_SWITCH,
                            "the body gave a size_hint, then switched to synchronous processing",
                            "Step::Switch",
                        );
                    }
                    if t.upgrade_accepted {
                        t.violate(
                            &rules::HTTP_AFTER_UPGRADE,
                            "the body switched to synchronous processing after accepting an upgrade",
                            "Step::Switch",
                        );
                    }
                    t.at_switch = Some((t.started(), t.head_sent()));
                });
                let switch =
                    watched_switch(switch, Arc::clone(&this.request), this.threads.clone());
                Poll::Ready(Some(Ok(Step::Switch(switch))))
            }
            // RGIA-VER-4: a step of a later version passes through
            // unjudged; the server below decides what it means.
            Poll::Ready(Some(Ok(other))) => Poll::Ready(Some(Ok(other))),
        }
    }

    fn size_hint(&self) -> Option<u64> {
        let hint = self.inner.as_ref().and_then(AsyncBody::size_hint);
        if !self.ended {
            self.request.with(|t| t.on_size_hint(hint));
        }
        hint
    }
}

impl<B: AsyncBody> Drop for AsyncValidatedBody<B> {
    fn drop(&mut self) {
        self.request.check_runtime_context("drop of the body");
        let dropped = self
            .watch
            .drop_body(&self.request, || state::drop_body(self.inner.take()));
        self.request.registry.close(self.request.id);
        self.request.with(|t| {
            t.async_body_dropped = true;
            if t.at_switch.is_none() {
                t.done = true;
            }
        });
        self.request.judge_drop(dropped);
    }
}

impl<B: AsyncBody> fmt::Debug for AsyncValidatedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncValidatedBody")
            .field("body", &std::any::type_name::<B>())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// Marks the response done if the switch is dropped without running.
struct Unrun {
    request: Arc<Request>,
    ran: bool,
}

impl Drop for Unrun {
    fn drop(&mut self) {
        if !self.ran {
            self.request.quietly(|t| t.done = true);
        }
    }
}

/// Clears the request's synchronous scope when the continuation returns.
struct SyncScope<'r>(&'r Request);

impl Drop for SyncScope<'_> {
    fn drop(&mut self) {
        self.0.quietly(|t| t.sync_scope = None);
    }
}

/// Wraps a switch so that the validator keeps watching after it: the
/// continuation runs with the hook, and its body is a [`ValidatedBody`].
fn watched_switch(switch: SyncSwitch, request: Arc<Request>, threads: LoopThreads) -> SyncSwitch {
    let continuation = switch.into_continuation();
    let mut unrun = Unrun {
        request,
        ran: false,
    };
    SyncSwitch::new(move |start: &mut StartResponse<'_>| {
        unrun.ran = true;
        let request = Arc::clone(&unrun.request);
        let (started, head_sent) = (start.is_started(), start.is_head_sent());
        let registry = Arc::clone(&request.registry);
        request.with(|t| {
            let here = thread::current().id();
            if !t.async_body_dropped {
                t.violate(
                    &rules::SWITCH_BEFORE_DROP,
                    "the continuation ran before the asynchronous body was dropped",
                    "SyncSwitch::run",
                );
            } else if registry.is_loop_thread(here) || threads.contains_here() {
                t.violate(
                    &rules::SWITCH_ON_LOOP_THREAD,
                    "the continuation runs on a loop thread: one that polls a live asynchronous body, or called or polled this request's",
                    format!("{here:?}"),
                );
            }
            let lost = t
                .at_switch
                .filter(|&(was_started, was_sent)| (was_started && !started) || (was_sent && !head_sent));
            if let Some((was_started, was_sent)) = lost {
                t.lose_state();
                t.violate(
                    &rules::SWITCH_STATE_LOST,
                    "the continuation's handle does not carry over the response state from before the switch",
                    format!(
                        "before: started={was_started}, head sent={was_sent}; now: started={started}, head sent={head_sent}"
                    ),
                );
            }
            t.sync_scope = Some(here);
        });
        let result = {
            let _scope = SyncScope(&request);
            state::scoped(
                &request,
                Flavor::Sync,
                start,
                Scope::Continuation,
                Result::is_err,
                continuation,
            )
        };
        match result {
            Ok(body) => {
                let entry = registry.open(Flavor::Sync);
                Ok(ValidatedBody::<Box<dyn Body>>::new(
                    body,
                    request,
                    Some(entry),
                ))
            }
            Err(error) => {
                request.with(|t| t.done = true);
                Err(error)
            }
        }
    })
}

// ---- The watchdog settings ----

impl<A> AsyncValidator<A> {
    /// The same validator with other watchdog settings (the default is
    /// [`Watchdog::new`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rgi_conformance::validate::{AsyncValidator, Watchdog};
    /// use rgi_conformance::{Policy, Reports};
    ///
    /// let app = rgi_async::from_fn(|_environ, start| {
    ///     start.start(http::StatusCode::NO_CONTENT)?;
    ///     Ok(rgi::Empty)
    /// });
    /// let watchdog = Watchdog::new().with_blocking(Duration::from_secs(1));
    /// let validator = AsyncValidator::new(app, Reports::new(Policy::Collect)).with_watchdog(watchdog);
    /// assert_eq!(validator.watchdog().blocking(), Some(Duration::from_secs(1)));
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
