//! [`Timeout`]: a time limit on an asynchronous application's head and
//! each of its steps, on the server's own timer.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use rgi::{BoxError, Environ, ResponseHead, StartResponse, Startup};
use rgi_async::{AsyncApplication, AsyncBody, Capabilities, Readiness, Step};

/// Why a [`Timeout`] response failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimeoutError {
    /// The application produced no next step in time after its head was
    /// stored: the response is aborted and the application's body dropped.
    #[error("the application produced nothing for {0:?} after its head")]
    Elapsed(Duration),
    /// The server offers no timer ([`NoTimer::Refuse`]).
    #[error("no timer: the server offers no readiness capability to time the application by")]
    NoTimer,
}

/// What [`Timeout`] does on a server that offers no timer (no readiness
/// capability, or not on Unix).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoTimer {
    /// Runs the application without a time limit and logs a `tracing`
    /// warning per request.
    #[default]
    Unlimited,
    /// Fails the request before calling the application
    /// ([`TimeoutError::NoTimer`]: the server answers 500).
    Refuse,
}

/// A time limit on an asynchronous application: `504 Gateway Timeout`
/// when it has not stored its head within `limit` of the call, and the
/// response aborted (its body dropped, [`TimeoutError::Elapsed`]) when,
/// after the head, a step takes longer than `limit`. The clock restarts
/// at every step the application produces, so a long stream that keeps
/// moving is never cut.
///
/// **The timer is the server's**: a wait with a timeout on the
/// readiness capability ([`Capabilities::readiness`]), over a pipe no one
/// writes to, so the body is woken when the time is up, never polled in a
/// loop. Where there is no readiness (a server without a poller, or not on
/// Unix), [`NoTimer`] says what happens: by default the application runs
/// unlimited, with a warning. The runtime context (`Capabilities::runtime`)
/// is not used: it would tie this crate to one runtime. The pipes are kept
/// in a pool for the life of the process, one per wait in progress at
/// the busiest moment, and reused.
///
/// **Only asynchronous applications can be timed.** A synchronous call
/// cannot be interrupted: nothing can take a thread back from a `call` or
/// `next_chunk` that does not return, so `Timeout` is not an
/// [`rgi::Application`]. A synchronous application behind
/// [`rgi_async::Threaded`] can be timed from the asynchronous side: the
/// 504 or the abort comes on time and the worker stops at its next chunk,
/// but the worker thread stays busy until the application returns.
///
/// What is not timed: the inner `call` itself (it runs before any timer
/// can, and should return at once), and a switch to synchronous
/// processing, which runs on a worker as a synchronous call does.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use http::StatusCode;
/// use rgi_conformance::client::AsyncTestClient;
/// use rgi_middleware::Timeout;
///
/// /// Never answers: its body is pending for ever.
/// struct Stuck;
/// impl rgi_async::AsyncBody for Stuck {
///     fn poll_step(
///         self: std::pin::Pin<&mut Self>,
///         _cx: &mut std::task::Context<'_>,
///         _start: &mut rgi::StartResponse<'_>,
///     ) -> std::task::Poll<Option<Result<rgi_async::Step, rgi::BoxError>>> {
///         std::task::Poll::Pending
///     }
/// }
///
/// let app = Timeout::new(rgi_async::from_fn(|_e, _s: &mut rgi::StartResponse<'_>| Ok(Stuck)), Duration::from_millis(50));
/// let response = AsyncTestClient::new(app).get("/")?;
/// assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
pub struct Timeout<A> {
    app: A,
    limit: Duration,
    no_timer: NoTimer,
}

impl<A> Timeout<A> {
    /// `app`, given `limit` for its head and for each step.
    pub fn new(app: A, limit: Duration) -> Self {
        Timeout {
            app,
            limit,
            no_timer: NoTimer::default(),
        }
    }

    /// The same, doing `no_timer` on a server without a timer.
    #[must_use]
    pub fn with_no_timer(mut self, no_timer: NoTimer) -> Self {
        self.no_timer = no_timer;
        self
    }

    /// The limit.
    #[must_use]
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The wrapped application.
    #[must_use]
    pub fn get_ref(&self) -> &A {
        &self.app
    }
}

impl<A: Clone> Clone for Timeout<A> {
    fn clone(&self) -> Self {
        Timeout {
            app: self.app.clone(),
            limit: self.limit,
            no_timer: self.no_timer,
        }
    }
}

impl<A> fmt::Debug for Timeout<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("app", &std::any::type_name::<A>())
            .field("limit", &self.limit)
            .field("no_timer", &self.no_timer)
            .finish()
    }
}

impl<A: AsyncApplication> AsyncApplication for Timeout<A> {
    type Body = TimeoutBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let readiness = timer_of(&environ);
        if readiness.is_none() {
            match self.no_timer {
                NoTimer::Refuse => return Err(TimeoutError::NoTimer.into()),
                NoTimer::Unlimited => tracing::warn!(
                    "rgi_middleware::Timeout: the server offers no timer; the application runs without a time limit"
                ),
            }
        }
        let body = self.app.call(environ, start)?;
        Ok(TimeoutBody {
            timer: None,
            inner: Some(body),
            readiness,
            limit: self.limit,
            deadline: Instant::now() + self.limit,
        })
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.app.startup(startup)
    }

    fn shutdown(&self) {
        self.app.shutdown();
    }
}

/// The request's readiness capability, where it can serve as a timer.
fn timer_of(environ: &Environ) -> Option<Readiness> {
    if cfg!(unix) {
        Capabilities::of(environ)?.readiness().cloned()
    } else {
        None
    }
}

pin_project_lite::pin_project! {
    /// The body of a [`Timeout`] application.
    pub struct TimeoutBody<B> {
        // Declared first: the wait ends before its pipe goes back.
        timer: Option<timer::Timer>,
        #[pin]
        inner: Option<B>,
        readiness: Option<Readiness>,
        limit: Duration,
        deadline: Instant,
    }
}

impl<B> fmt::Debug for TimeoutBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutBody")
            .field("limit", &self.limit)
            .field("timed", &self.readiness.is_some())
            .field("inner_alive", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

/// The 504 answer.
fn gateway_timeout() -> (ResponseHead, Bytes) {
    const TEXT: &str = "gateway timeout\n";
    let head = ResponseHead::new(StatusCode::GATEWAY_TIMEOUT)
        .with_header(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )
        .with_header(CONTENT_LENGTH, HeaderValue::from(TEXT.len()));
    (head, Bytes::from_static(TEXT.as_bytes()))
}

impl<B: AsyncBody> AsyncBody for TimeoutBody<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(step) = inner.poll_step(cx, start) {
            // Progress: the clock starts again, and the wait is given up.
            *this.timer = None;
            *this.deadline = Instant::now() + *this.limit;
            if step.is_none() {
                this.inner.set(None);
            }
            return Poll::Ready(step);
        }
        let Some(readiness) = this.readiness.as_ref() else {
            return Poll::Pending;
        };
        let elapsed = loop {
            let now = Instant::now();
            if now >= *this.deadline {
                break true;
            }
            let timer = this
                .timer
                .get_or_insert_with(|| timer::Timer::new(readiness, *this.deadline - now));
            match timer.poll(cx) {
                Poll::Pending => break false,
                // Woken early, or the wait failed: a new wait for what is
                // left, unless the time is up (checked at the loop's top).
                Poll::Ready(true) => *this.timer = None,
                Poll::Ready(false) => {
                    // The poller refused the wait: no timer after all.
                    *this.timer = None;
                    *this.readiness = None;
                    tracing::warn!(
                        "rgi_middleware::Timeout: the server's readiness refused a timer wait; no time limit for this response"
                    );
                    break false;
                }
            }
        };
        if !elapsed {
            return Poll::Pending;
        }
        *this.timer = None;
        this.inner.set(None);
        if start.is_started() {
            return Poll::Ready(Some(Err(TimeoutError::Elapsed(*this.limit).into())));
        }
        let (head, text) = gateway_timeout();
        if let Err(err) = start.start(head) {
            return Poll::Ready(Some(Err(err.into())));
        }
        Poll::Ready(Some(Ok(Step::Chunk(text))))
    }

    fn size_hint(&self) -> Option<u64> {
        match &self.inner {
            Some(body) => body.size_hint(),
            None => Some(0),
        }
    }
}

#[cfg(unix)]
mod timer {
    //! A timer out of the readiness capability: a wait with a timeout on
    //! the read end of a pipe that nothing is written to.

    use std::io::{PipeReader, PipeWriter};
    use std::sync::{Mutex, PoisonError};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use rgi_async::{Interest, Readiness, WaitFuture, WaitOutcome};

    /// A pipe whose read end is waited on; the write end is kept so that
    /// the read end never sees an end of file.
    struct Pipe {
        reader: PipeReader,
        _writer: PipeWriter,
    }

    /// Pipes not in use. A pipe lives as long as the process (its waits
    /// borrow it for `'static`), and one descriptor has one wait at a
    /// time (`RGIA-READY-20`): a pipe is taken from here for one wait and
    /// put back after it, so there are as many as the most waits ever in
    /// progress at once.
    static FREE: Mutex<Vec<&'static Pipe>> = Mutex::new(Vec::new());

    fn lease() -> Option<&'static Pipe> {
        let free = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        free.or_else(|| {
            let (reader, writer) = std::io::pipe().ok()?;
            let pipe: &'static Pipe = Box::leak(Box::new(Pipe {
                reader,
                _writer: writer,
            }));
            Some(pipe)
        })
    }

    /// One wait on the server's poller, as a timer.
    pub(super) struct Timer {
        // Declared first: the wait (and its registration) ends before the
        // pipe goes back to the pool.
        wait: Option<WaitFuture<'static>>,
        pipe: Option<&'static Pipe>,
    }

    impl Timer {
        pub(super) fn new(readiness: &Readiness, after: Duration) -> Self {
            let pipe = lease();
            let wait =
                pipe.map(|pipe| readiness.wait(&pipe.reader, Interest::READABLE, Some(after)));
            Timer { wait, pipe }
        }

        /// `Ready(true)` when the wait is over (timed out, or woken for
        /// another reason), `Ready(false)` when no wait can be made.
        pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
            let Some(wait) = self.wait.as_mut() else {
                return Poll::Ready(false);
            };
            match wait.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(WaitOutcome::TimedOut | WaitOutcome::Ready(_))) => Poll::Ready(true),
                Poll::Ready(Ok(_) | Err(_)) => Poll::Ready(false),
            }
        }
    }

    impl Drop for Timer {
        fn drop(&mut self) {
            self.wait = None;
            if let Some(pipe) = self.pipe.take() {
                FREE.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(pipe);
            }
        }
    }
}

#[cfg(not(unix))]
mod timer {
    //! No timer off Unix: `timer_of` gives no readiness there, so none is
    //! ever made.

    use std::task::{Context, Poll};
    use std::time::Duration;

    use rgi_async::Readiness;

    pub(super) struct Timer;

    impl Timer {
        pub(super) fn new(_readiness: &Readiness, _after: Duration) -> Self {
            Timer
        }

        pub(super) fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<bool> {
            Poll::Ready(false)
        }
    }
}
