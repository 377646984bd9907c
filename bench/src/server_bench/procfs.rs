//! What the server benchmark reads about a process from `/proc`: CPU time,
//! resident memory, threads, context switches, the open-file limit.
//!
//! The parsers take the files' text, so that they can be tested on fixed
//! samples; the readers open the files of a given process.

use std::path::Path;

/// Why a `/proc` file could not be read or understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcError {
    /// The file could not be read (the process may have exited).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The file did not have the expected shape.
    #[error("unexpected contents in {what}: {text:?}")]
    Malformed {
        /// Which file or field.
        what: &'static str,
        /// What was found (truncated).
        text: String,
    },
}

fn malformed(what: &'static str, text: &str) -> ProcError {
    ProcError::Malformed {
        what,
        text: text.chars().take(200).collect(),
    }
}

fn read(path: &Path) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`.
///
/// The command name (field 2) may hold spaces and parentheses, so the
/// fields are counted from the last `)`: the state is field 3, utime is
/// field 14 and stime field 15. The kernel adds the time of the group's
/// exited threads to these, so the sum covers every thread that ever ran.
///
/// # Errors
///
/// [`ProcError::Malformed`] when the text is not a stat line.
pub fn parse_cpu_ticks(stat: &str) -> Result<u64, ProcError> {
    let (_, after_name) = stat
        .rsplit_once(')')
        .ok_or_else(|| malformed("stat", stat))?;
    // After the name: state (3), ppid (4), ... utime (14), stime (15).
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let mut next = || -> Result<u64, ProcError> {
        fields
            .next()
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| malformed("stat", stat))
    };
    Ok(next()? + next()?)
}

/// The fields of `/proc/PID/status` the benchmark reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// `VmRSS`, in KiB.
    pub rss_kib: u64,
    /// `Threads`.
    pub threads: u64,
    /// `voluntary_ctxt_switches`.
    pub voluntary_switches: u64,
    /// `nonvoluntary_ctxt_switches`.
    pub involuntary_switches: u64,
}

impl Status {
    /// Voluntary and involuntary context switches together.
    #[must_use]
    pub fn switches(&self) -> u64 {
        self.voluntary_switches + self.involuntary_switches
    }
}

fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        // `VmRSS:	    1234 kB`: the number is the first word.
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The [`Status`] fields from the text of a `status` file.
///
/// A thread's own `/proc/PID/task/TID/status` has the same shape; its
/// context switches are that thread's alone.
///
/// # Errors
///
/// [`ProcError::Malformed`] when a context-switch field is missing (every
/// kernel since 2.6.23 writes them). `VmRSS` is absent for a zombie and
/// read as 0; `Threads` is read as 1 when absent.
pub fn parse_status(status: &str) -> Result<Status, ProcError> {
    Ok(Status {
        rss_kib: status_field(status, "VmRSS").unwrap_or(0),
        threads: status_field(status, "Threads").unwrap_or(1),
        voluntary_switches: status_field(status, "voluntary_ctxt_switches")
            .ok_or_else(|| malformed("status: voluntary_ctxt_switches", status))?,
        involuntary_switches: status_field(status, "nonvoluntary_ctxt_switches")
            .ok_or_else(|| malformed("status: nonvoluntary_ctxt_switches", status))?,
    })
}

/// The soft limit on open files from the text of `/proc/PID/limits`;
/// `None` means unlimited.
///
/// # Errors
///
/// [`ProcError::Malformed`] when the line is missing or unreadable.
pub fn parse_open_files_limit(limits: &str) -> Result<Option<u64>, ProcError> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .ok_or_else(|| malformed("limits", limits))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()
        .ok_or_else(|| malformed("limits: Max open files", line))?;
    if soft == "unlimited" {
        return Ok(None);
    }
    soft.parse()
        .map(Some)
        .map_err(|_| malformed("limits: Max open files", line))
}

/// One process, read through `/proc/PID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pid: u32,
}

/// A reading of a process's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Threads now.
    pub threads: u64,
    /// Context switches of the live threads, summed over
    /// `/proc/PID/task/*/status` (the process's own `status` counts only
    /// its main thread's).
    pub switches: u64,
}

impl Process {
    /// The process `pid`.
    #[must_use]
    pub fn new(pid: u32) -> Self {
        Process { pid }
    }

    /// This process.
    #[must_use]
    pub fn current() -> Self {
        Process {
            pid: std::process::id(),
        }
    }

    fn file(&self, name: &str) -> String {
        format!("/proc/{}/{name}", self.pid)
    }

    /// utime + stime so far, clock ticks.
    ///
    /// # Errors
    ///
    /// See [`ProcError`].
    pub fn cpu_ticks(&self) -> Result<u64, ProcError> {
        parse_cpu_ticks(&read(Path::new(&self.file("stat")))?)
    }

    /// The process's `status`.
    ///
    /// # Errors
    ///
    /// See [`ProcError`].
    pub fn status(&self) -> Result<Status, ProcError> {
        parse_status(&read(Path::new(&self.file("status")))?)
    }

    /// Context switches summed over the live threads. A thread that exits
    /// between the listing and the read is skipped; a thread that exited
    /// before is not counted (the kernel keeps no group total for these),
    /// so scenarios that measure switches keep their threads alive.
    ///
    /// # Errors
    ///
    /// The task directory cannot be listed.
    pub fn thread_switches(&self) -> Result<u64, ProcError> {
        let dir = self.file("task");
        let entries = std::fs::read_dir(&dir).map_err(|source| ProcError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut total = 0;
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            if let Ok(status) = parse_status(&text) {
                total += status.switches();
            }
        }
        Ok(total)
    }

    /// All counters at once.
    ///
    /// # Errors
    ///
    /// See [`ProcError`].
    pub fn sample(&self) -> Result<Sample, ProcError> {
        let status = self.status()?;
        Ok(Sample {
            cpu_ticks: self.cpu_ticks()?,
            rss_kib: status.rss_kib,
            threads: status.threads,
            switches: self.thread_switches()?,
        })
    }

    /// The soft open-files limit; `None` means unlimited.
    ///
    /// # Errors
    ///
    /// See [`ProcError`].
    pub fn open_files_limit(&self) -> Result<Option<u64>, ProcError> {
        parse_open_files_limit(&read(Path::new(&self.file("limits")))?)
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), 100 when it
/// cannot be asked.
#[must_use]
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}
