//! The rgi-simple-server benchmark (issue 12, item 6): rgi-simple-server
//! serving the synchronous hello application against a plain std
//! thread-per-connection server ([`threaded`](crate::threaded)) answering
//! the same bytes, each in its own child process, loads from the reporting
//! process on loopback.
//!
//! - this module: the two candidates and the child process
//!   (`rgi-bench simple-target CANDIDATE`);
//! - [`simple_client`](crate::simple_client): the load generators;
//! - [`simple_report`](crate::simple_report): the scenarios, the rounds
//!   and the table (`rgi-bench simple-report`, `bench/simple.sh`).
//!
//! The child's protocol: it writes `listening ADDR` once it accepts
//! connections and exits when its standard input ends (or its deadline
//! passes), without waiting for open connections.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::server_bench::procfs::Process;

/// Which server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// The anchor: one std thread per connection.
    Threaded,
    /// rgi-simple-server with its default workers and limits.
    Simple,
}

impl Candidate {
    /// Both, anchor first.
    pub const ALL: [Candidate; 2] = [Candidate::Threaded, Candidate::Simple];

    /// The name on the command line and in the table.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Candidate::Threaded => "threaded",
            Candidate::Simple => "simple",
        }
    }

    /// The candidate called `name`.
    ///
    /// # Errors
    ///
    /// [`SimpleError::Unknown`] for any other name.
    pub fn parse(name: &str) -> Result<Self, SimpleError> {
        Self::ALL
            .into_iter()
            .find(|candidate| candidate.name() == name)
            .ok_or_else(|| SimpleError::Unknown(name.to_owned()))
    }
}

/// Why a candidate could not be served, started or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimpleError {
    /// No candidate by that name.
    #[error("unknown candidate {0:?} (threaded or simple)")]
    Unknown(String),
    /// Binding, starting or talking to a process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// rgi-simple-server did not start.
    #[error("rgi-simple-server: {0}")]
    Server(#[from] rgi_simple_server::Error),
    /// The child said something unexpected, or nothing.
    #[error("the {candidate} server: {message}")]
    Child {
        /// Which candidate.
        candidate: &'static str,
        /// What went wrong.
        message: String,
    },
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> SimpleError + '_ {
    move |source| SimpleError::Io {
        what: what.to_owned(),
        source,
    }
}

/// The child's side: serves `candidate` on `127.0.0.1:0`, prints
/// `listening ADDR`, and returns when standard input ends or `deadline`
/// passes, leaving open connections to the process's exit.
///
/// # Errors
///
/// The server could not start, or standard output could not be written.
pub fn run_target(candidate: Candidate, deadline: Duration) -> Result<(), SimpleError> {
    use std::io::Write as _;

    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    // Kept alive until the end: dropping it would stop the server.
    let mut server = None;
    let addr = match candidate {
        Candidate::Threaded => crate::threaded::spawn_local().map_err(io("binding the anchor"))?,
        Candidate::Simple => {
            let started = rgi_simple_server::Builder::new()
                .bind(loopback)
                .serve_sync(crate::apps::sync_hello())?;
            let addr = started.tcp_addr().ok_or_else(|| SimpleError::Child {
                candidate: candidate.name(),
                message: "no TCP address".to_owned(),
            })?;
            server = Some(started);
            addr
        }
    };
    // The stdin watcher starts before the address goes out, so that the
    // thread count the report reads first is already the final one.
    let (done, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = [0_u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(read) if read > 0) {}
        let _ = done.send(());
    });
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening {addr}")
        .and_then(|()| stdout.flush())
        .map_err(io("writing the address"))?;
    let _ = ended.recv_timeout(deadline);
    if let Some(server) = server {
        // Idle connections close at once; nothing is in flight.
        server.shutdown(Duration::ZERO);
    }
    Ok(())
}

/// How long a child waits for the reporting process before it stops by
/// itself.
pub const CHILD_DEADLINE: Duration = Duration::from_secs(900);
/// How long the reporting process waits for the child's address.
const START_WAIT: Duration = Duration::from_secs(30);
/// How long the reporting process waits for the child to exit.
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// A running candidate, seen from the reporting process.
#[derive(Debug)]
pub struct TargetProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    candidate: Candidate,
}

impl TargetProcess {
    /// Starts `exe simple-target CANDIDATE` and waits for its address.
    ///
    /// # Errors
    ///
    /// It could not start or did not announce an address in time.
    pub fn start(exe: &Path, candidate: Candidate) -> Result<Self, SimpleError> {
        let deadline = CHILD_DEADLINE.as_secs().to_string();
        let mut child = std::process::Command::new(exe)
            .args([
                "simple-target",
                candidate.name(),
                "--deadline-secs",
                &deadline,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io("starting a candidate"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = stdout {
            // Read on a thread so that the wait for the line is bounded.
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = sender.send(line);
            });
        }
        let mut process = TargetProcess {
            child,
            stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            candidate,
        };
        let line = lines
            .recv_timeout(START_WAIT)
            .map_err(|_| process.error("no address within 30 s".to_owned()))?;
        process.addr = crate::child::parse_listening(&line)
            .ok_or_else(|| process.error(format!("unexpected first line {line:?}")))?;
        Ok(process)
    }

    fn error(&self, message: String) -> SimpleError {
        SimpleError::Child {
            candidate: self.candidate.name(),
            message,
        }
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its `/proc` entries.
    #[must_use]
    pub fn process(&self) -> Process {
        Process::new(self.child.id())
    }

    /// Ends it: closes its standard input and waits (bounded) for it to
    /// exit.
    ///
    /// # Errors
    ///
    /// It did not exit in time or exited with a failure.
    pub fn finish(mut self) -> Result<(), SimpleError> {
        drop(self.stdin.take());
        let until = Instant::now() + EXIT_WAIT;
        loop {
            match self
                .child
                .try_wait()
                .map_err(io("waiting for a candidate"))?
            {
                Some(status) if status.success() => return Ok(()),
                Some(status) => return Err(self.error(format!("exited with {status}"))),
                None if Instant::now() >= until => {
                    return Err(self.error("did not exit within 30 s".to_owned()));
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        // Only a failed or unfinished run gets here with the child alive:
        // end our own child, by its handle.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
