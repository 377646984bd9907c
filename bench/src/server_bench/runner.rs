//! The reporting side of a server run: starts `rgi-bench target ...` as a
//! child (natively or under callgrind), asks it for its counters, reads
//! its `/proc` entries, and ends it.

use std::io::{BufRead, BufReader, Lines, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::procfs::{ProcError, Process, Sample};
use super::target::{App, Implementation, Settings, TargetStats};

/// Why a server run could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Starting or talking to the child failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The child said something unexpected, or nothing.
    #[error("the {implementation} server ({app}): {message}")]
    Child {
        /// Which implementation.
        implementation: &'static str,
        /// Which application.
        app: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Its `/proc` entries could not be read.
    #[error(transparent)]
    Proc(#[from] ProcError),
}

/// The counters of the server at one moment: its own (allocations,
/// parked requests) and the kernel's (CPU, memory, threads, switches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// What the server reported.
    pub stats: TargetStats,
    /// What `/proc` said.
    pub sample: Sample,
}

/// How long the child waits for the reporting process before it stops by
/// itself.
pub const CHILD_DEADLINE: Duration = Duration::from_secs(600);
/// How long the reporting process waits for any one line from the child.
const LINE_WAIT: Duration = Duration::from_secs(60);

/// A running server under test.
#[derive(Debug)]
pub struct TargetChild {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<std::io::Result<String>>,
    addr: SocketAddr,
    process: Process,
    callgrind_out: Option<PathBuf>,
    implementation: Implementation,
    app: App,
}

fn read_lines(
    lines: Lines<BufReader<ChildStdout>>,
    sender: &mpsc::Sender<std::io::Result<String>>,
) {
    for line in lines {
        if sender.send(line).is_err() {
            return;
        }
    }
}

impl TargetChild {
    /// Starts `exe target IMPLEMENTATION APP` with `settings`, under
    /// callgrind writing to `callgrind_out` if given, and waits for its
    /// address.
    ///
    /// # Errors
    ///
    /// The child could not start or did not announce an address.
    pub fn start(
        exe: &Path,
        implementation: Implementation,
        app: App,
        settings: Settings,
        callgrind_out: Option<&Path>,
    ) -> Result<Self, RunError> {
        let deadline = CHILD_DEADLINE.as_secs().to_string();
        let (workers, pool) = (settings.workers.to_string(), settings.pool.to_string());
        let pipeline_flush = if settings.pipeline_flush { "on" } else { "off" };
        let args = [
            "target",
            implementation.name(),
            app.name(),
            "--workers",
            &workers,
            "--pool",
            &pool,
            "--pipeline-flush",
            pipeline_flush,
            "--deadline-secs",
            &deadline,
        ];
        let mut command = crate::child::command(exe, callgrind_out, &args);
        let without = settings.without.list();
        if !without.is_empty() {
            command.env("RGI_SERVER_MEASURE_WITHOUT", without);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| RunError::Io {
                what: format!("starting the {} server", implementation.name()),
                source,
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        // Lines are read on a thread so that every wait for one is bounded.
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || read_lines(BufReader::new(stdout).lines(), &sender));
        }
        let process = Process::new(child.id());
        let mut started = TargetChild {
            child,
            stdin,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            process,
            callgrind_out: callgrind_out.map(Path::to_path_buf),
            implementation,
            app,
        };
        let line = started.next_line()?;
        started.addr = crate::child::parse_listening(&line)
            .ok_or_else(|| started.error(format!("unexpected first line {line:?}")))?;
        Ok(started)
    }

    fn error(&self, message: String) -> RunError {
        RunError::Child {
            implementation: self.implementation.name(),
            app: self.app.name(),
            message,
        }
    }

    fn next_line(&mut self) -> Result<String, RunError> {
        match self.lines.recv_timeout(LINE_WAIT) {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(source)) => Err(RunError::Io {
                what: "reading the server's output".to_owned(),
                source,
            }),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(self.error(format!("no line within {LINE_WAIT:?}")))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(self.error("exited before answering".to_owned()))
            }
        }
    }

    fn next_stats(&mut self) -> Result<TargetStats, RunError> {
        loop {
            let line = self.next_line()?;
            if let Some(stats) = TargetStats::parse(&line) {
                return Ok(stats);
            }
        }
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its `/proc` entries.
    #[must_use]
    pub fn process(&self) -> Process {
        self.process
    }

    /// Asks for its counters and reads `/proc` right after the answer.
    ///
    /// # Errors
    ///
    /// The child did not answer, or `/proc` could not be read.
    pub fn snapshot(&mut self) -> Result<Snapshot, RunError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| RunError::Io {
            what: "asking for stats".to_owned(),
            source: std::io::ErrorKind::BrokenPipe.into(),
        })?;
        stdin
            .write_all(b"stats\n")
            .and_then(|()| stdin.flush())
            .map_err(|source| RunError::Io {
                what: "asking for stats".to_owned(),
                source,
            })?;
        let stats = self.next_stats()?;
        let sample = self.process.sample()?;
        Ok(Snapshot { stats, sample })
    }

    /// Ends the run: closes its stdin, reads its last counters, waits for
    /// it, and returns callgrind's instruction total if it ran under
    /// callgrind.
    ///
    /// # Errors
    ///
    /// The child did not exit cleanly or wrote no total.
    pub fn finish(mut self) -> Result<(TargetStats, Option<u64>), RunError> {
        drop(self.stdin.take());
        let stats = self.next_stats()?;
        let status = self.child.wait().map_err(|source| RunError::Io {
            what: "waiting for the server".to_owned(),
            source,
        })?;
        if !status.success() {
            return Err(self.error(format!("exited with {status}")));
        }
        let instructions = match &self.callgrind_out {
            Some(out) => {
                Some(
                    crate::child::callgrind_total(out).map_err(|source| RunError::Io {
                        what: format!("reading {}", out.display()),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok((stats, instructions))
    }
}

impl Drop for TargetChild {
    fn drop(&mut self) {
        // Only a run that failed midway gets here with the child alive: end
        // our own child (by its handle, so by its pid) rather than leave it
        // waiting for its deadline.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
