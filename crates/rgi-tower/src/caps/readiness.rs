//! Readiness waits on tokio's reactor (spec/rgi-async.md §8, RGIA-READY).
//!
//! Each wait registers the application's own descriptor (a
//! [`BorrowedFd`], never a duplicate) with tokio's reactor through an
//! [`AsyncFd`] created at the wait's first poll and dropped when the wait
//! resolves or is dropped, so a registration lives exactly as long as its
//! wait (`[RGIA-READY-19]`). The reactor is edge-triggered, but every wait
//! registers afresh and the kernel reports a descriptor that is already
//! ready at registration, so each wait sees level-triggered readiness
//! (`[RGIA-READY-2]`). epoll refuses a second registration of one open
//! descriptor with `EEXIST`, which becomes
//! [`ReadinessError::AlreadyWaited`] (`[RGIA-READY-21]`).
//!
//! Two questions the reactor cannot answer at once go to `poll(2)` with a
//! zero timeout: a wait with `Some(Duration::ZERO)` (answered without any
//! registration), and the last look when a timeout expires, so that a
//! descriptor ready at that instant resolves `Ready` (`[RGIA-READY-7]`).

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use rgi_async::{
    Interest, ReadinessError, ReadinessService, Ready, Source, WaitAnyFuture, WaitAnyOutcome,
    WaitFuture, WaitOutcome,
};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::FileType;
use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

use super::runtime::{ContextError, TokioContext};

/// How many descriptors may be registered by waits in progress at once,
/// unless [`TokioReadiness::with_max_waits`] says otherwise; each source of
/// a `wait_any` counts (`[RGIA-READY-17]`).
pub const DEFAULT_MAX_WAITS: usize = 65_536;

/// A [`ReadinessService`] on tokio's reactor: what an RGI host on tokio
/// lends as [`rgi_async::Readiness`].
///
/// Timeouts run on tokio's timer, which has a resolution of one
/// millisecond and never fires early: a wait with `Some(d)` resolves
/// `TimedOut` no sooner than `d` after its first poll, and normally within
/// a few milliseconds after (`[RGIA-READY-8]`); waits with earlier
/// deadlines time out first.
///
/// The futures it returns need no runtime context of their own
/// (`[RGIA-CAP-9]`): the registration and the timer are made with this
/// service's runtime entered, and any thread may poll them.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use rgi_async::{Interest, Readiness, WaitOutcome};
/// use rgi_tower::caps::TokioReadiness;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let readiness = Readiness::new(TokioReadiness::new(runtime.handle().clone())?);
/// let (mut ours, theirs) = UnixStream::pair()?;
/// runtime.block_on(async {
///     let nothing = readiness.wait(&theirs, Interest::READABLE, Some(Duration::from_millis(20)));
///     assert_eq!(nothing.await?, WaitOutcome::TimedOut);
///     ours.write_all(b"ping")?;
///     let outcome = readiness.wait(&theirs, Interest::READABLE, None).await?;
///     assert!(matches!(outcome, WaitOutcome::Ready(ready) if ready.is_readable()));
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })
/// # }
/// ```
#[derive(Clone)]
pub struct TokioReadiness {
    shared: Arc<Shared>,
}

/// What every wait of one service shares.
struct Shared {
    context: TokioContext,
    max_waits: usize,
    /// Descriptors registered by waits in progress.
    registered: AtomicUsize,
}

impl TokioReadiness {
    /// A service on `handle`'s reactor and timer, with at most
    /// [`DEFAULT_MAX_WAITS`] descriptors registered at once.
    ///
    /// # Errors
    ///
    /// As [`TokioContext::new`]: the runtime lacks its I/O or time driver.
    pub fn new(handle: tokio::runtime::Handle) -> Result<Self, ContextError> {
        Ok(TokioReadiness::with_context(TokioContext::new(handle)?))
    }

    /// A service on a runtime already checked.
    #[must_use]
    pub fn with_context(context: TokioContext) -> Self {
        TokioReadiness {
            shared: Arc::new(Shared {
                context,
                max_waits: DEFAULT_MAX_WAITS,
                registered: AtomicUsize::new(0),
            }),
        }
    }

    /// Caps the descriptors registered by waits in progress at `limit`; a
    /// wait beyond it resolves to [`ReadinessError::TooManyWaits`].
    ///
    /// Call it before handing the service out: waits already made keep
    /// counting against the limit they were made with.
    #[must_use]
    pub fn with_max_waits(self, limit: usize) -> Self {
        TokioReadiness {
            shared: Arc::new(Shared {
                context: self.shared.context.clone(),
                max_waits: limit,
                registered: AtomicUsize::new(0),
            }),
        }
    }

    /// The cap on registered descriptors.
    #[must_use]
    pub fn max_waits(&self) -> usize {
        self.shared.max_waits
    }

    /// How many descriptors waits in progress hold registered now.
    #[must_use]
    pub fn registered(&self) -> usize {
        self.shared.registered.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for TokioReadiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioReadiness")
            .field("max_waits", &self.shared.max_waits)
            .field("registered", &self.registered())
            .finish()
    }
}

impl ReadinessService for TokioReadiness {
    fn wait<'a>(
        &self,
        source: Source<'a>,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { wait_one(&shared, source.borrowed(), interest, timeout).await })
    }

    fn wait_any<'a>(
        &self,
        sources: Vec<(Source<'a>, Interest)>,
        timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { wait_many(&shared, &sources, timeout).await })
    }
}

/// One wait; everything it registers is dropped before it returns.
async fn wait_one(
    shared: &Shared,
    fd: BorrowedFd<'_>,
    interest: Interest,
    timeout: Option<Duration>,
) -> Result<WaitOutcome, ReadinessError> {
    if timeout == Some(Duration::ZERO) {
        check_pollable(fd)?;
        return Ok(match poll_now(&[(fd, interest)])?.pop() {
            Some((_, ready)) => WaitOutcome::Ready(ready),
            None => WaitOutcome::TimedOut,
        });
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    check_pollable(fd)?;
    let _permit = Permit::take(shared, 1)?;
    let registration = shared.register(fd, interest)?;
    let readiness = registration.ready(tokio_interest(interest));
    let mut readiness = std::pin::pin!(readiness);
    let mut timer = timeout.map(|timeout| Box::pin(shared.sleep(timeout)));
    poll_fn(|cx| {
        if let Poll::Ready(seen) = readiness.as_mut().poll(cx) {
            let seen = seen?.ready();
            return Poll::Ready(Ok(WaitOutcome::Ready(ready_of(seen, interest))));
        }
        match timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Ok(match poll_now(&[(fd, interest)])?.pop() {
                Some((_, ready)) => WaitOutcome::Ready(ready),
                None => WaitOutcome::TimedOut,
            })),
            _ => Poll::Pending,
        }
    })
    .await
}

/// A wait on several sources; everything it registers is dropped before it
/// returns.
async fn wait_many(
    shared: &Shared,
    sources: &[(Source<'_>, Interest)],
    timeout: Option<Duration>,
) -> Result<WaitAnyOutcome, ReadinessError> {
    if let Some(fd) = listed_twice(sources) {
        return Err(ReadinessError::AlreadyWaited { fd });
    }
    let fds: Vec<(BorrowedFd<'_>, Interest)> = sources
        .iter()
        .map(|(source, interest)| (source.borrowed(), *interest))
        .collect();
    let answer_now =
        |fds: &[(BorrowedFd<'_>, Interest)]| -> Result<WaitAnyOutcome, ReadinessError> {
            let ready = poll_now(fds)?;
            Ok(if ready.is_empty() {
                WaitAnyOutcome::TimedOut
            } else {
                WaitAnyOutcome::Ready(ready)
            })
        };
    if timeout == Some(Duration::ZERO) {
        for (fd, _) in &fds {
            check_pollable(*fd)?;
        }
        return answer_now(&fds);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    for (fd, _) in &fds {
        check_pollable(*fd)?;
    }
    let _permit = Permit::take(shared, fds.len())?;
    let registrations = fds
        .iter()
        .map(|(fd, interest)| shared.register(*fd, *interest))
        .collect::<Result<Vec<_>, _>>()?;
    let mut waits: Vec<_> = registrations
        .iter()
        .zip(&fds)
        .map(|(registration, (_, interest))| {
            Box::pin(registration.ready(tokio_interest(*interest)))
        })
        .collect();
    let mut timer = timeout.map(|timeout| Box::pin(shared.sleep(timeout)));
    poll_fn(|cx| {
        let mut found = Vec::new();
        // Every source is polled, not only up to the first ready one, so
        // that the outcome lists all that are ready now (`[RGIA-READY-16]`).
        for (index, wait) in waits.iter_mut().enumerate() {
            if let Poll::Ready(seen) = wait.as_mut().poll(cx) {
                let seen = seen?.ready();
                found.push((index, ready_of(seen, fds[index].1)));
            }
        }
        if !found.is_empty() {
            return Poll::Ready(Ok(WaitAnyOutcome::Ready(found)));
        }
        match timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(answer_now(&fds)),
            _ => Poll::Pending,
        }
    })
    .await
}

/// The first descriptor `sources` lists twice, if any.
fn listed_twice(sources: &[(Source<'_>, Interest)]) -> Option<RawFd> {
    let mut raw: Vec<RawFd> = sources.iter().map(|(source, _)| source.as_raw()).collect();
    raw.sort_unstable();
    raw.windows(2)
        .find(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
}

impl Shared {
    /// Registers `fd` with the reactor, with the runtime entered.
    fn register<'fd>(
        &self,
        fd: BorrowedFd<'fd>,
        interest: Interest,
    ) -> Result<AsyncFd<BorrowedFd<'fd>>, ReadinessError> {
        let _entered = self.context.enter();
        // SAFETY: `register_with_interest` requires the descriptor to stay
        // open, on the same open file description, for as long as the
        // `AsyncFd` lives (until it is dropped or forgotten). The `AsyncFd`
        // holds a `BorrowedFd<'fd>`: the borrow keeps the application from
        // closing the descriptor for `'fd`, and the `AsyncFd` lives inside
        // a wait future that carries `'fd`, so it is dropped within `'fd`
        // or never (a leaked future is never polled or dropped again, and
        // tokio then keeps only a registration the kernel forgets when the
        // descriptor closes). `BorrowedFd::as_raw_fd` always returns the
        // same number.
        #[allow(unsafe_code)]
        let registered = unsafe { AsyncFd::register_with_interest(fd, tokio_interest(interest)) };
        registered.map_err(|failed| {
            let (_, err) = failed.into_parts();
            registration_error(fd, err)
        })
    }

    /// A timer on this service's runtime.
    fn sleep(&self, timeout: Duration) -> Sleep {
        let _entered = self.context.enter();
        tokio::time::sleep(timeout)
    }
}

/// A reservation of registered descriptors against the cap, released on
/// drop.
struct Permit<'s> {
    shared: &'s Shared,
    count: usize,
}

impl<'s> Permit<'s> {
    fn take(shared: &'s Shared, count: usize) -> Result<Self, ReadinessError> {
        let limit = shared.max_waits;
        shared
            .registered
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(count).filter(|after| *after <= limit)
            })
            .map_err(|_| ReadinessError::TooManyWaits { limit })?;
        Ok(Permit { shared, count })
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.shared
            .registered
            .fetch_sub(self.count, Ordering::AcqRel);
    }
}

/// The reactor interest for a wait's interest, errors included: an error
/// condition resolves every wait (`[RGIA-READY-6]`).
fn tokio_interest(interest: Interest) -> tokio::io::Interest {
    let base = match (interest.is_readable(), interest.is_writable()) {
        (true, true) => tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE,
        (false, true) => tokio::io::Interest::WRITABLE,
        _ => tokio::io::Interest::READABLE,
    };
    base | tokio::io::Interest::ERROR
}

/// What the reactor saw, as RGI reports it: an end of file is readable for
/// a reader and a closed peer writable for a writer (`[RGIA-READY-6]`).
fn ready_of(seen: tokio::io::Ready, interest: Interest) -> Ready {
    let closed = seen.is_read_closed() || seen.is_write_closed();
    let flags = [
        (
            seen.is_readable() || (interest.is_readable() && seen.is_read_closed()),
            Ready::READABLE,
        ),
        (
            seen.is_writable() || (interest.is_writable() && seen.is_write_closed()),
            Ready::WRITABLE,
        ),
        (closed, Ready::HANGUP),
        (seen.is_error(), Ready::ERROR),
    ];
    // The reactor resolved the wait, so it saw something of the interest;
    // should it report nothing RGI names, the wait is a spurious wake-up,
    // which RGIA-READY-3 allows, reported as the interest.
    ready_from(flags).unwrap_or(if interest.is_readable() {
        Ready::READABLE
    } else {
        Ready::WRITABLE
    })
}

/// The union of the flags that are set, if any is.
fn ready_from(flags: [(bool, Ready); 4]) -> Option<Ready> {
    flags
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .reduce(|all, flag| all | flag)
}

/// The error of a failed registration of `fd`.
fn registration_error(fd: BorrowedFd<'_>, err: io::Error) -> ReadinessError {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&fd);
    match err.kind() {
        // epoll: EEXIST, this open descriptor is registered already, by a
        // wait in progress (or by the application's own reactor use).
        io::ErrorKind::AlreadyExists => ReadinessError::AlreadyWaited { fd },
        // epoll: EPERM, the descriptor does not support polling (a regular
        // file or a directory).
        io::ErrorKind::PermissionDenied => ReadinessError::Unpollable {
            fd,
            reason: err.to_string(),
        },
        _ => ReadinessError::Io(err),
    }
}

/// Refuses regular files and directories, which `poll(2)` reports ready
/// although reading them may block (spec/rgi-async.md §8.2).
fn check_pollable(fd: BorrowedFd<'_>) -> Result<(), ReadinessError> {
    let stat = rustix::fs::fstat(fd).map_err(io::Error::from)?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    let reason = match kind {
        FileType::RegularFile => "a regular file (blocking file access belongs in offload)",
        FileType::Directory => "a directory",
        _ => return Ok(()),
    };
    Err(ReadinessError::Unpollable {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        reason: reason.to_owned(),
    })
}

/// What `poll(2)` reports for `fds` right now: the index and ready set of
/// each source with something to report.
fn poll_now(fds: &[(BorrowedFd<'_>, Interest)]) -> Result<Vec<(usize, Ready)>, ReadinessError> {
    let mut polled: Vec<PollFd<'_>> = fds
        .iter()
        .map(|(fd, interest)| {
            let mut events = PollFlags::empty();
            if interest.is_readable() {
                events |= PollFlags::IN;
                #[cfg(any(target_os = "linux", target_os = "android"))]
                {
                    events |= PollFlags::RDHUP;
                }
            }
            if interest.is_writable() {
                events |= PollFlags::OUT;
            }
            PollFd::from_borrowed_fd(fd.as_fd(), events)
        })
        .collect();
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        match rustix::event::poll(&mut polled, Some(&zero)) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(ReadinessError::Io(err.into())),
        }
    }
    let mut ready = Vec::new();
    for (index, (polled, (fd, interest))) in polled.iter().zip(fds).enumerate() {
        let seen = polled.revents();
        if seen.contains(PollFlags::NVAL) {
            return Err(ReadinessError::Io(io::Error::other(format!(
                "descriptor {} is not open",
                std::os::fd::AsRawFd::as_raw_fd(fd)
            ))));
        }
        let hangup = seen.intersects(PollFlags::HUP | rdhup());
        let found = ready_from([
            (
                seen.contains(PollFlags::IN) || (interest.is_readable() && hangup),
                Ready::READABLE,
            ),
            (
                seen.contains(PollFlags::OUT)
                    || (interest.is_writable() && seen.intersects(PollFlags::HUP | PollFlags::ERR)),
                Ready::WRITABLE,
            ),
            (hangup, Ready::HANGUP),
            (seen.contains(PollFlags::ERR), Ready::ERROR),
        ]);
        if let Some(found) = found {
            ready.push((index, found));
        }
    }
    Ok(ready)
}

/// `POLLRDHUP` where the platform has it: the peer shut its writing side.
fn rdhup() -> PollFlags {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        PollFlags::RDHUP
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        PollFlags::empty()
    }
}
