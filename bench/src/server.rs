//! The server process of a measurement: one mode, one connection, a summary
//! line at exit.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::adapter;
use crate::alloc_count::AllocCounts;
use crate::apps;

/// What the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bare hyper, no RGI.
    Bare,
    /// A synchronous RGI application served inline.
    Sync,
    /// An asynchronous RGI application.
    Async,
}

impl Mode {
    /// Every mode, baseline first.
    pub const ALL: [Mode; 3] = [Mode::Bare, Mode::Sync, Mode::Async];

    /// The mode's name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::Sync => "sync",
            Mode::Async => "async",
        }
    }

    /// The mode's name in the report.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Mode::Bare => "bare hyper",
            Mode::Sync => "RGI sync, inline",
            Mode::Async => "RGI async",
        }
    }

    /// The mode called `name`.
    ///
    /// # Errors
    ///
    /// [`ServeError::UnknownMode`] for any other name.
    pub fn parse(name: &str) -> Result<Mode, ServeError> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.name() == name)
            .ok_or_else(|| ServeError::UnknownMode {
                name: name.to_owned(),
            })
    }
}

/// Why a server run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// No such mode.
    #[error("unknown mode {name:?} (expected bare, sync or async)")]
    UnknownMode {
        /// The name given.
        name: String,
    },
    /// Binding, accepting or the runtime failed.
    #[error("server I/O failed: {0}")]
    Io(#[from] io::Error),
    /// hyper reported a connection error.
    #[error("connection failed: {0}")]
    Connection(#[from] hyper::Error),
    /// No client connected, or the connection stayed open, past the
    /// deadline.
    #[error("no client connected or the connection outlived the {0:?} deadline")]
    Deadline(Duration),
    /// `/proc/self/stat` could not be read or parsed.
    #[error("cannot read the process's CPU time: {0}")]
    CpuTime(String),
}

/// The server's account of its run, printed as one line at exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeSummary {
    /// Responses produced.
    pub served: u64,
    /// Whole-process allocation counts at exit.
    pub allocations: AllocCounts,
    /// utime + stime (clock ticks) from the connection's accept to its end.
    pub cpu_ticks: u64,
}

impl ServeSummary {
    /// The line's prefix, for the report to find it.
    pub const PREFIX: &'static str = "served";

    /// The summary as one line.
    #[must_use]
    pub fn line(&self) -> String {
        format!(
            "{} requests={} allocations={} reallocations={} bytes={} cpu_ticks={}",
            Self::PREFIX,
            self.served,
            self.allocations.allocations,
            self.allocations.reallocations,
            self.allocations.bytes,
            self.cpu_ticks
        )
    }

    /// Parses [`line`](Self::line)'s output; `None` if it is not one.
    #[must_use]
    pub fn parse(line: &str) -> Option<ServeSummary> {
        let mut words = line.split_whitespace();
        if words.next()? != Self::PREFIX {
            return None;
        }
        let mut field = |name: &str| -> Option<u64> {
            words
                .next()?
                .strip_prefix(name)?
                .strip_prefix('=')?
                .parse()
                .ok()
        };
        Some(ServeSummary {
            served: field("requests")?,
            allocations: AllocCounts {
                allocations: field("allocations")?,
                reallocations: field("reallocations")?,
                bytes: field("bytes")?,
            },
            cpu_ticks: field("cpu_ticks")?,
        })
    }
}

/// utime + stime of this process, in clock ticks.
///
/// # Errors
///
/// [`ServeError::CpuTime`] when `/proc/self/stat` is unreadable or
/// malformed.
pub fn cpu_ticks() -> Result<u64, ServeError> {
    crate::server_bench::procfs::Process::current()
        .cpu_ticks()
        .map_err(|err| ServeError::CpuTime(err.to_string()))
}

/// Binds 127.0.0.1:0, writes `listening ADDR` to `announce`, serves one
/// connection in `mode` on a current-thread runtime until the client
/// closes it (or `deadline` passes), and returns the summary.
///
/// # Errors
///
/// See [`ServeError`].
pub fn serve(
    mode: Mode,
    deadline: Duration,
    counts: fn() -> AllocCounts,
    announce: &mut dyn Write,
) -> Result<ServeSummary, ServeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let served = Arc::new(AtomicU64::new(0));
    let cpu_ticks = runtime.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        writeln!(announce, "listening {}", listener.local_addr()?)?;
        announce.flush()?;
        let work = async {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let before = cpu_ticks()?;
            let served = Arc::clone(&served);
            match mode {
                Mode::Bare => apps::serve_bare(stream, served).await?,
                Mode::Sync => {
                    adapter::serve_sync(Arc::new(apps::sync_hello()), stream, served).await?;
                }
                Mode::Async => {
                    adapter::serve_async(Arc::new(apps::async_hello()), stream, served).await?;
                }
            }
            Ok::<u64, ServeError>(cpu_ticks()?.saturating_sub(before))
        };
        tokio::time::timeout(deadline, work)
            .await
            .map_err(|_| ServeError::Deadline(deadline))?
    })?;
    drop(runtime);
    Ok(ServeSummary {
        served: served.load(Ordering::Relaxed),
        allocations: counts(),
        cpu_ticks,
    })
}
