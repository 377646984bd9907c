//! Readiness waits, watched: what the server's readiness service resolves
//! is checked against the wait's interest, timeout and source kind.
//!
//! The kind of a source (regular file, directory, pipe, socket) is read
//! from a duplicate of the descriptor, made and closed when the wait
//! resolves; the application's descriptor itself is never touched.
//! Whether the application keeps its descriptor open during the wait
//! (`RGIA-READY-14`) is not checked: safe Rust cannot close a descriptor
//! a wait borrows, and only `unsafe` code (which the kit cannot contain,
//! and so cannot test) could break it.

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::FileTypeExt;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rgi_async::{
    Interest, RawSource as RawSourceNumber, Readiness, ReadinessError, ReadinessService, Ready,
    Source, WaitAnyFuture, WaitAnyOutcome, WaitFuture, WaitOutcome,
};

use super::rules;
use super::state::{Request, panic_text};

/// A readiness service that passes every wait to the server's, watched.
pub(crate) struct WatchedReadiness {
    inner: Readiness,
    request: Arc<Request>,
}

impl WatchedReadiness {
    pub(crate) fn new(inner: Readiness, request: Arc<Request>) -> Self {
        WatchedReadiness { inner, request }
    }
}

impl ReadinessService for WatchedReadiness {
    fn wait<'a>(
        &self,
        source: Source<'a>,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        Box::pin(WatchedWait {
            inner: self.inner.wait(source, interest, timeout),
            watch: Watch::new(Arc::clone(&self.request), vec![(source, interest)], timeout),
        })
    }

    fn wait_any<'a>(
        &self,
        sources: Vec<(Source<'a>, Interest)>,
        timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        Box::pin(WatchedWaitAny {
            inner: self.inner.wait_any(sources.iter().copied(), timeout),
            watch: Watch::new(Arc::clone(&self.request), sources, timeout),
        })
    }
}

/// What a source is, as far as readiness goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A regular file or a directory: never pollable.
    FileLike,
    /// A pipe, FIFO or socket: always pollable.
    Pollable,
    /// Anything else (devices, eventfd, ...), or unknown.
    Other,
}

fn kind(source: &Source<'_>) -> Kind {
    let Ok(duplicate) = source.borrowed().try_clone_to_owned() else {
        return Kind::Other;
    };
    let Ok(metadata) = File::from(duplicate).metadata() else {
        return Kind::Other;
    };
    let file_type = metadata.file_type();
    if file_type.is_file() || file_type.is_dir() {
        Kind::FileLike
    } else if file_type.is_fifo() || file_type.is_socket() {
        Kind::Pollable
    } else {
        Kind::Other
    }
}

/// The state both kinds of wait share.
struct Watch<'a> {
    request: Arc<Request>,
    sources: Vec<(Source<'a>, Interest)>,
    timeout: Option<Duration>,
    first_poll: Option<Instant>,
    /// Whether this wait's descriptors are counted as waited on.
    holding: bool,
}

impl<'a> Watch<'a> {
    fn new(
        request: Arc<Request>,
        sources: Vec<(Source<'a>, Interest)>,
        timeout: Option<Duration>,
    ) -> Self {
        Watch {
            request,
            sources,
            timeout,
            first_poll: None,
            holding: false,
        }
    }

    /// At the first poll: the application breaks RGIA-READY-20 if another
    /// wait of this request holds one of the descriptors, or if this wait
    /// lists one twice. A wait leaked with `mem::forget` stays counted: it
    /// is still in progress as far as the server can tell.
    fn hold(&mut self) {
        let mine: Vec<RawSourceNumber> = self.sources.iter().map(|(s, _)| s.as_raw()).collect();
        let twice = mine
            .iter()
            .enumerate()
            .find(|(at, fd)| mine[..*at].contains(fd))
            .map(|(_, fd)| *fd);
        let held = self.request.with(|t| {
            let held = mine.iter().find(|fd| t.waited.contains(fd)).copied();
            t.waited.extend(&mine);
            held
        });
        self.holding = true;
        if let Some(fd) = twice {
            self.request.violate(
                &rules::SECOND_WAIT_ON_A_DESCRIPTOR,
                "a wait_any listed one descriptor twice",
                format!("descriptor {fd}"),
            );
        } else if let Some(fd) = held {
            self.request.violate(
                &rules::SECOND_WAIT_ON_A_DESCRIPTOR,
                "a wait was polled on a descriptor that another wait in progress holds",
                format!("descriptor {fd}"),
            );
        }
    }

    /// When the wait resolves or is dropped: its descriptors are free.
    fn release(&mut self) {
        if !std::mem::take(&mut self.holding) {
            return;
        }
        let sources = &self.sources;
        self.request.with(|t| {
            for (source, _) in sources {
                if let Some(at) = t.waited.iter().position(|fd| *fd == source.as_raw()) {
                    t.waited.swap_remove(at);
                }
            }
        });
    }

    /// Polls the server's future, checking what does not depend on the
    /// outcome's type.
    fn poll<T>(
        &mut self,
        future: Pin<&mut (dyn Future<Output = Result<T, ReadinessError>> + Send + 'a)>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, ReadinessError>> {
        let first = self.first_poll.is_none();
        self.first_poll.get_or_insert_with(Instant::now);
        if first {
            self.hold();
        }
        super::state::clear_judged();
        let lent = super::watchdog::lent_waker(&self.request, cx);
        let polled = match panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(polled) => polled,
            Err(payload) => {
                if super::state::is_judged() {
                    panic::resume_unwind(payload);
                }
                self.request.violate(
                    &rules::READINESS_PANICKED,
                    "a readiness wait panicked instead of failing with a ReadinessError",
                    panic_text(&*payload),
                );
                // The application's step unwinds next: not its fault.
                super::state::mark_judged();
                panic::resume_unwind(payload)
            }
        };
        if polled.is_pending() {
            super::watchdog::judge_service_pending(
                &self.request,
                lent,
                &rules::READINESS_PENDING_WITHOUT_WAKEUP,
                "readiness wait",
            );
        }
        match &polled {
            Poll::Pending if first && self.timeout == Some(Duration::ZERO) => self.request.violate(
                &rules::READINESS_ZERO_TIMEOUT_PENDING,
                "a wait with a zero timeout stayed pending at its first poll",
                format!("{} source(s)", self.sources.len()),
            ),
            Poll::Ready(Err(error)) => self.judge_error(error),
            _ => {}
        }
        if polled.is_ready() {
            self.release();
        }
        polled
    }

    fn judge_error(&self, error: &ReadinessError) {
        match error {
            ReadinessError::Unpollable { fd, reason } => {
                let refused = self
                    .sources
                    .iter()
                    .find(|(source, _)| source.as_raw() == *fd);
                if refused.is_some_and(|(source, _)| kind(source) == Kind::Pollable) {
                    self.request.violate(
                        &rules::READINESS_REFUSED_POLLABLE,
                        "a wait on a pipe or socket was refused as unpollable",
                        format!("descriptor {fd}: {reason}"),
                    );
                }
            }
            ReadinessError::Io(io) if io.kind() == std::io::ErrorKind::Unsupported => {
                self.request.violate(
                    &rules::HOLLOW_CAPABILITY,
                    "the readiness capability was offered but its waits fail as unsupported",
                    io.to_string(),
                );
            }
            _ => {}
        }
    }

    fn judge_timeout(&self) {
        let elapsed = self.first_poll.map(|first| first.elapsed());
        match (self.timeout, elapsed) {
            (None, _) => self.request.violate(
                &rules::READINESS_TIMED_OUT_EARLY,
                "a wait without a timeout resolved TimedOut",
                "timeout None",
            ),
            (Some(timeout), Some(elapsed)) if elapsed < timeout => self.request.violate(
                &rules::READINESS_TIMED_OUT_EARLY,
                "a wait resolved TimedOut before its timeout had elapsed since its first poll",
                format!("timeout {timeout:?}, elapsed {elapsed:?}"),
            ),
            _ => {}
        }
    }

    fn judge_ready(&self, index: usize, ready: Ready) {
        let Some((source, interest)) = self.sources.get(index) else {
            return;
        };
        if kind(source) == Kind::FileLike {
            self.request.violate(
                &rules::READINESS_READY_FOR_FILE,
                "a wait on a regular file or directory resolved Ready instead of Unpollable",
                format!("descriptor {}: {ready:?}", source.as_raw()),
            );
            return;
        }
        let wanted = (interest.is_readable() && ready.is_readable())
            || (interest.is_writable() && ready.is_writable());
        if !wanted && !ready.is_hangup() && !ready.is_error() {
            self.request.violate(
                &rules::READINESS_READY_SET_WRONG,
                "a wait resolved Ready with none of the requested directions, hangup or error",
                format!("interest {interest:?}, outcome {ready:?}"),
            );
        }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if self.holding {
            super::watchdog::judge_unresolved_wait(&self.request, self.first_poll, self.timeout);
        }
        self.release();
    }
}

struct WatchedWait<'a> {
    inner: WaitFuture<'a>,
    watch: Watch<'a>,
}

impl Future for WatchedWait<'_> {
    type Output = Result<WaitOutcome, ReadinessError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let polled = this.watch.poll(this.inner.as_mut(), cx);
        match &polled {
            Poll::Ready(Ok(WaitOutcome::Ready(ready))) => this.watch.judge_ready(0, *ready),
            Poll::Ready(Ok(WaitOutcome::TimedOut)) => this.watch.judge_timeout(),
            _ => {}
        }
        polled
    }
}

struct WatchedWaitAny<'a> {
    inner: WaitAnyFuture<'a>,
    watch: Watch<'a>,
}

impl Future for WatchedWaitAny<'_> {
    type Output = Result<WaitAnyOutcome, ReadinessError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let polled = this.watch.poll(this.inner.as_mut(), cx);
        match &polled {
            Poll::Ready(Ok(WaitAnyOutcome::Ready(list))) => {
                let count = this.watch.sources.len();
                let mut seen = vec![false; count];
                let valid = !list.is_empty()
                    && list.iter().all(|(index, _)| {
                        *index < count && !std::mem::replace(&mut seen[*index], true)
                    });
                if valid {
                    for (index, ready) in list {
                        this.watch.judge_ready(*index, *ready);
                    }
                } else {
                    this.watch.request.violate(
                        &rules::WAIT_ANY_OUTCOME_INVALID,
                        "wait_any resolved Ready with no source, an index out of range or an index twice",
                        format!("{list:?} for {count} source(s)"),
                    );
                }
            }
            Poll::Ready(Ok(WaitAnyOutcome::TimedOut)) => this.watch.judge_timeout(),
            _ => {}
        }
        polled
    }
}
