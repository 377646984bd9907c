//! Waiting for a descriptor to become ready (spec/rgi-async.md, "Readiness
//! waits").

use std::fmt;
use std::future::Future;
use std::io;
use std::ops::{BitOr, BitOrAssign};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
#[cfg(windows)]
use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};

/// What a wait is for: reading, writing, or both (combine with `|`).
///
/// # Examples
///
/// ```
/// use rgi_async::Interest;
///
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert!(!Interest::READABLE.is_writable());
/// assert_eq!(format!("{both:?}"), "Interest(READABLE | WRITABLE)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// Wait until reading would not block.
    pub const READABLE: Interest = Interest(0b01);
    /// Wait until writing would not block.
    pub const WRITABLE: Interest = Interest(0b10);

    /// Whether this includes [`Interest::READABLE`].
    #[must_use]
    pub const fn is_readable(self) -> bool {
        self.0 & Self::READABLE.0 != 0
    }

    /// Whether this includes [`Interest::WRITABLE`].
    #[must_use]
    pub const fn is_writable(self) -> bool {
        self.0 & Self::WRITABLE.0 != 0
    }
}

impl BitOr for Interest {
    type Output = Interest;

    fn bitor(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

impl BitOrAssign for Interest {
    fn bitor_assign(&mut self, other: Interest) {
        self.0 |= other.0;
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.is_readable(), "READABLE"),
            (self.is_writable(), "WRITABLE"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        write!(f, "Interest({})", names.join(" | "))
    }
}

/// What a finished wait found: the source is readable, writable, hung up or
/// in error (several may hold at once).
///
/// Readiness is level-triggered and may be spurious: "readable" means a read
/// would probably not block now, so the application retries its
/// non-blocking operation and waits again on `WouldBlock`.
///
/// # Examples
///
/// ```
/// use rgi_async::Ready;
///
/// let ready = Ready::READABLE | Ready::HANGUP;
/// assert!(ready.is_readable() && ready.is_hangup());
/// assert!(!ready.is_writable() && !ready.is_error());
/// assert_eq!(format!("{ready:?}"), "Ready(READABLE | HANGUP)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ready(u8);

impl Ready {
    /// Reading would not block.
    pub const READABLE: Ready = Ready(0b0001);
    /// Writing would not block.
    pub const WRITABLE: Ready = Ready(0b0010);
    /// The peer closed its end (a read returns end of file, a write fails).
    pub const HANGUP: Ready = Ready(0b0100);
    /// The source is in an error state (the next operation reports it).
    pub const ERROR: Ready = Ready(0b1000);

    /// Whether reading would not block.
    #[must_use]
    pub const fn is_readable(self) -> bool {
        self.0 & Self::READABLE.0 != 0
    }

    /// Whether writing would not block.
    #[must_use]
    pub const fn is_writable(self) -> bool {
        self.0 & Self::WRITABLE.0 != 0
    }

    /// Whether the peer hung up.
    #[must_use]
    pub const fn is_hangup(self) -> bool {
        self.0 & Self::HANGUP.0 != 0
    }

    /// Whether the source is in an error state.
    #[must_use]
    pub const fn is_error(self) -> bool {
        self.0 & Self::ERROR.0 != 0
    }
}

impl BitOr for Ready {
    type Output = Ready;

    fn bitor(self, other: Ready) -> Ready {
        Ready(self.0 | other.0)
    }
}

impl BitOrAssign for Ready {
    fn bitor_assign(&mut self, other: Ready) {
        self.0 |= other.0;
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.is_readable(), "READABLE"),
            (self.is_writable(), "WRITABLE"),
            (self.is_hangup(), "HANGUP"),
            (self.is_error(), "ERROR"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        write!(f, "Ready({})", names.join(" | "))
    }
}

/// The platform's raw descriptor number, as carried by
/// [`ReadinessError::Unpollable`]: a file descriptor on Unix, a socket
/// handle on Windows.
#[cfg(unix)]
pub type RawSource = RawFd;
/// The platform's raw descriptor number, as carried by
/// [`ReadinessError::Unpollable`]: a file descriptor on Unix, a socket
/// handle on Windows.
#[cfg(windows)]
pub type RawSource = RawSocket;

/// A descriptor to wait on, borrowed for the wait's lifetime: the
/// application cannot close it while a wait on it is pending.
///
/// On Unix it is a [`BorrowedFd`] (sockets, pipes, FIFOs, and on Linux also
/// eventfd, timerfd, signalfd, pidfd, inotify and ttys); on Windows a
/// `BorrowedSocket` (sockets only). Regular files and directories are
/// refused with [`ReadinessError::Unpollable`].
///
/// # Examples
///
/// ```
/// # #[cfg(unix)] {
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use rgi_async::Source;
///
/// let (a, _b) = UnixStream::pair()?;
/// let source = Source::from(&a);
/// assert_eq!(source.as_raw(), a.as_raw_fd());
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    #[cfg(unix)]
    inner: BorrowedFd<'a>,
    #[cfg(windows)]
    inner: BorrowedSocket<'a>,
}

#[cfg(unix)]
impl<'a> Source<'a> {
    /// A source over a borrowed file descriptor.
    #[must_use]
    pub fn new(fd: BorrowedFd<'a>) -> Self {
        Source { inner: fd }
    }

    /// The borrowed descriptor (server side: register it with the poller).
    #[must_use]
    pub fn borrowed(&self) -> BorrowedFd<'a> {
        self.inner
    }

    /// The raw descriptor number.
    #[must_use]
    pub fn as_raw(&self) -> RawSource {
        self.inner.as_raw_fd()
    }
}

#[cfg(unix)]
impl<'a, T: AsFd> From<&'a T> for Source<'a> {
    fn from(value: &'a T) -> Self {
        Source::new(value.as_fd())
    }
}

#[cfg(unix)]
impl AsFd for Source<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner
    }
}

#[cfg(windows)]
impl<'a> Source<'a> {
    /// A source over a borrowed socket.
    #[must_use]
    pub fn new(socket: BorrowedSocket<'a>) -> Self {
        Source { inner: socket }
    }

    /// The borrowed socket (server side: register it with the poller).
    #[must_use]
    pub fn borrowed(&self) -> BorrowedSocket<'a> {
        self.inner
    }

    /// The raw socket handle.
    #[must_use]
    pub fn as_raw(&self) -> RawSource {
        self.inner.as_raw_socket()
    }
}

#[cfg(windows)]
impl<'a, T: AsSocket> From<&'a T> for Source<'a> {
    fn from(value: &'a T) -> Self {
        Source::new(value.as_socket())
    }
}

#[cfg(windows)]
impl AsSocket for Source<'_> {
    fn as_socket(&self) -> BorrowedSocket<'_> {
        self.inner
    }
}

/// How a wait on one source ended.
///
/// Later minor versions may add outcomes (RGIA-VER-4): match with a
/// wildcard arm, which a match outside this crate cannot leave out:
///
/// ```compile_fail,E0004
/// fn timed_out(outcome: rgi_async::WaitOutcome) -> bool {
///     match outcome {
///         rgi_async::WaitOutcome::Ready(_) => false,
///         rgi_async::WaitOutcome::TimedOut => true,
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitOutcome {
    /// The source became ready.
    Ready(Ready),
    /// The timeout passed first.
    TimedOut,
}

/// How a wait on several sources ended.
///
/// Later minor versions may add outcomes (RGIA-VER-4): match with a
/// wildcard arm, which a match outside this crate cannot leave out:
///
/// ```compile_fail,E0004
/// fn timed_out(outcome: &rgi_async::WaitAnyOutcome) -> bool {
///     match outcome {
///         rgi_async::WaitAnyOutcome::Ready(_) => false,
///         rgi_async::WaitAnyOutcome::TimedOut => true,
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitAnyOutcome {
    /// At least one source became ready: the indices (into the list given
    /// to the wait) of every ready source, in increasing order, with what
    /// each is ready for.
    Ready(Vec<(usize, Ready)>),
    /// The timeout passed first.
    TimedOut,
}

/// Why a wait failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadinessError {
    /// The descriptor cannot be waited on (a regular file or a directory,
    /// for example). Reported at the first poll of the wait.
    #[error("descriptor {fd} cannot be waited on: {reason}")]
    Unpollable {
        /// The descriptor's raw number.
        fd: RawSource,
        /// Why the server's poller refused it.
        reason: String,
    },
    /// Another wait in progress holds this descriptor: a reactor registers
    /// a descriptor once (epoll, kqueue, tokio's `AsyncFd`), so one
    /// descriptor has one wait at a time (`[RGIA-READY-20]`,
    /// `[RGIA-READY-21]`). Reported at the first poll of the second wait;
    /// the first is not disturbed. Also what a `wait_any` that lists one
    /// descriptor twice resolves to.
    #[error("descriptor {fd} is already being waited on by another wait in progress")]
    AlreadyWaited {
        /// The descriptor's raw number.
        fd: RawSource,
    },
    /// The server caps concurrent waits and the cap is reached.
    #[error("too many concurrent readiness waits (limit {limit})")]
    TooManyWaits {
        /// The server's cap.
        limit: usize,
    },
    /// The poller failed.
    #[error("readiness wait failed: {0}")]
    Io(#[from] io::Error),
}

/// The future of a wait on one source; it borrows the source for `'a`.
pub type WaitFuture<'a> =
    Pin<Box<dyn Future<Output = Result<WaitOutcome, ReadinessError>> + Send + 'a>>;

/// The future of a wait on several sources; it borrows them for `'a`.
pub type WaitAnyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<WaitAnyOutcome, ReadinessError>> + Send + 'a>>;

/// The server's poller, as applications see it through [`Readiness`].
///
/// Waits are level-triggered. `timeout` `None` waits without limit;
/// `Some(Duration::ZERO)` checks once.
///
/// A registration lives exactly as long as its wait (`[RGIA-READY-19]`):
/// it begins at the future's first poll and ends when the future resolves
/// or is dropped. Register the application's descriptor itself, never a
/// duplicate, so a leaked future holds nothing open; this is what a reactor
/// handle such as tokio's `AsyncFd` (registered on creation, deregistered
/// on drop) does over a borrowed descriptor. A reactor registers one
/// descriptor once, so a wait on a descriptor that a wait in progress holds
/// resolves at its first poll to [`ReadinessError::AlreadyWaited`]
/// (`[RGIA-READY-21]`), leaving the first wait alone.
pub trait ReadinessService: Send + Sync {
    /// Waits until `source` is ready for `interest`, or `timeout` passes.
    fn wait<'a>(
        &self,
        source: Source<'a>,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> WaitFuture<'a>;

    /// Waits until at least one of `sources` is ready for its interest, or
    /// `timeout` passes.
    fn wait_any<'a>(
        &self,
        sources: Vec<(Source<'a>, Interest)>,
        timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a>;
}

/// A handle to the server's poller: lets an application wait for a
/// descriptor of its own (a database connection, a child's pipe, a
/// library's socket) without blocking the event loop.
///
/// A server without a poller leaves it out of
/// [`Capabilities`](crate::Capabilities); the application then offloads a
/// blocking wait instead.
#[derive(Clone)]
pub struct Readiness {
    service: Arc<dyn ReadinessService>,
}

impl Readiness {
    /// A handle over `service` (server side).
    pub fn new(service: impl ReadinessService + 'static) -> Self {
        Readiness {
            service: Arc::new(service),
        }
    }

    /// A handle over a shared `service` (server side).
    pub fn from_arc(service: Arc<dyn ReadinessService>) -> Self {
        Readiness { service }
    }

    /// Waits until `source` is ready for `interest`, or `timeout` passes
    /// (`None`: no limit; `Some(Duration::ZERO)`: check once).
    ///
    /// Readiness is level-triggered and may be spurious: retry the
    /// non-blocking operation and wait again if it reports `WouldBlock`.
    ///
    /// One descriptor has one wait at a time (`[RGIA-READY-20]`): wait once
    /// with [`Interest::READABLE`]` | `[`Interest::WRITABLE`] for both
    /// directions, or on duplicates of your own for independent waits. The
    /// server's registration ends when the future resolves or is dropped,
    /// so waits one after the other always work.
    ///
    /// # Errors
    ///
    /// The future resolves to [`ReadinessError::Unpollable`] for a
    /// descriptor the poller cannot watch,
    /// [`ReadinessError::AlreadyWaited`] when another wait in progress holds
    /// the descriptor, [`ReadinessError::TooManyWaits`] when the server's
    /// cap is reached, [`ReadinessError::Io`] if the poller fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future deregisters the wait; nothing is lost, since the
    /// wait consumes nothing from the source.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::io::{ErrorKind, Read};
    /// use std::os::unix::net::UnixStream;
    /// use rgi_async::{Interest, Readiness, ReadinessError};
    ///
    /// /// Reads what is available, waiting without blocking the event loop.
    /// async fn read_some(
    ///     readiness: &Readiness,
    ///     stream: &mut UnixStream,
    ///     buf: &mut [u8],
    /// ) -> Result<usize, ReadinessError> {
    ///     loop {
    ///         match stream.read(buf) {
    ///             Err(err) if err.kind() == ErrorKind::WouldBlock => {
    ///                 readiness.wait(&*stream, Interest::READABLE, None).await?;
    ///             }
    ///             result => return Ok(result?),
    ///         }
    ///     }
    /// }
    /// # let _ = read_some;
    /// # }
    /// ```
    pub fn wait<'a>(
        &self,
        source: impl Into<Source<'a>>,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        self.service.wait(source.into(), interest, timeout)
    }

    /// Waits until at least one of `sources` is ready for its interest, or
    /// `timeout` passes; the outcome lists every ready source by its index.
    ///
    /// # Errors
    ///
    /// As for [`Readiness::wait`]; listing one descriptor twice resolves to
    /// [`ReadinessError::AlreadyWaited`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future deregisters every source.
    pub fn wait_any<'a>(
        &self,
        sources: impl IntoIterator<Item = (Source<'a>, Interest)>,
        timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        self.service
            .wait_any(sources.into_iter().collect(), timeout)
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness").finish_non_exhaustive()
    }
}
