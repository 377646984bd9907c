//! The rgi-simple-server benchmark's one-command report: every scenario
//! run against both candidates, interleaved round by round (threaded,
//! simple; then simple, threaded; ...), the medians printed as one table
//! with each target of issue 12, item 6 beside its figure.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::server_bench::client::ClientError;
use crate::server_bench::procfs::{ProcError, Process, ticks_per_second};
use crate::server_bench::report::{Row, Target, Verdict, write_rows};
use crate::server_bench::stats::median;
use crate::simple::{Candidate, SimpleError, TargetProcess};
use crate::simple_client::{Active, Run, open_idle};

/// How much to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Rounds per scenario; each round runs both candidates once.
    pub rounds: usize,
    /// Requests on the active connections before the measured ones.
    pub warmup: u64,
    /// Requests of a measured closed-loop run.
    pub requests: u64,
    /// Requests of a measured pipelined run.
    pub pipelined_requests: u64,
    /// Requests of the run that strace watches (syscalls per request).
    pub strace_requests: u64,
    /// Whether strace is installed and used.
    pub strace: bool,
    /// Whether the scenarios with idle connections get a strace run too
    /// (opening them again costs the quick plan its time budget).
    pub strace_idle: bool,
    /// Run only the scenarios whose name contains this text.
    pub only: Option<String>,
}

impl Plan {
    /// The full measurement (a few minutes).
    #[must_use]
    pub fn full() -> Self {
        Plan {
            rounds: 5,
            warmup: 2_000,
            requests: 60_000,
            pipelined_requests: 320_000,
            strace_requests: 10_000,
            strace: true,
            strace_idle: true,
            only: None,
        }
    }

    /// The CI check: every scenario, one round, small counts.
    #[must_use]
    pub fn quick() -> Self {
        Plan {
            rounds: 1,
            warmup: 500,
            requests: 10_000,
            pipelined_requests: 16_000,
            strace_requests: 1_000,
            strace: true,
            strace_idle: false,
            only: None,
        }
    }
}

/// Why the report could not be produced (a missed target is not one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimpleReportError {
    /// A candidate could not be started or ended.
    #[error(transparent)]
    Target(#[from] SimpleError),
    /// A load generator failed.
    #[error("{scenario}, {candidate}: load generator: {source}")]
    Client {
        /// Which scenario.
        scenario: &'static str,
        /// Which candidate.
        candidate: &'static str,
        /// The failure.
        source: ClientError,
    },
    /// `/proc` could not be read.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// The runtime, strace or the work directory failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One scenario: how many connections carry load, how many sit idle, how
/// many requests each write carries, and the CPU target.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    active: usize,
    idle: usize,
    depth: usize,
    /// The CPU-per-request target, a ratio to the anchor.
    cpu_ratio: Option<f64>,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario {
        name: "(a) 64 keep-alive conns",
        active: 64,
        idle: 0,
        depth: 1,
        cpu_ratio: Some(1.25),
    },
    Scenario {
        name: "(b) 1000 idle + 64 active",
        active: 64,
        idle: 1_000,
        depth: 1,
        cpu_ratio: Some(1.0),
    },
    Scenario {
        name: "(c) 10000 idle + 64 active",
        active: 64,
        idle: 10_000,
        depth: 1,
        cpu_ratio: Some(1.0),
    },
    Scenario {
        name: "(d) 64 conns, pipelined bursts of 16",
        active: 64,
        idle: 0,
        depth: 16,
        cpu_ratio: None,
    },
    Scenario {
        name: "(e) 1000 active conns (starvation)",
        active: 1_000,
        idle: 0,
        depth: 1,
        cpu_ratio: None,
    },
];

/// How long any one load may take before the run fails.
const LOAD_DEADLINE: Duration = Duration::from_secs(180);
/// The slowest connection's mean latency, over the mean of all requests,
/// that this benchmark reads as starvation (the issue asks for "bounded").
const STARVATION_BOUND: f64 = 2.0;
/// The idle-connection memory target, bytes per connection.
const IDLE_BYTES: f64 = 2_048.0;

/// What one candidate did in one round.
#[derive(Debug, Clone, Default)]
struct Figures {
    cpu_us: f64,
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    slowest_us: f64,
    mean_us: f64,
    threads_start: f64,
    threads_load: f64,
    idle_bytes: Option<f64>,
    switches: f64,
}

/// What strace counted over one run.
#[derive(Debug, Clone, Default)]
struct Syscalls {
    per_request: f64,
    /// The most frequent calls, per request.
    top: Vec<(String, f64)>,
}

/// The report: runs every scenario and prints the table.
#[derive(Debug)]
pub struct SimpleReport {
    exe: PathBuf,
    work: PathBuf,
    plan: Plan,
    runtime: Runtime,
    ticks: u64,
}

impl SimpleReport {
    /// A report that starts `exe simple-target ...` for each run and keeps
    /// strace's output in `work`.
    ///
    /// # Errors
    ///
    /// The runtime or the work directory could not be made.
    pub fn new(exe: PathBuf, work: PathBuf, plan: Plan) -> Result<Self, SimpleReportError> {
        std::fs::create_dir_all(&work)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        Ok(SimpleReport {
            exe,
            work,
            plan,
            runtime,
            ticks: ticks_per_second(),
        })
    }

    fn client<T>(
        &self,
        scenario: &Scenario,
        candidate: Candidate,
        load: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, SimpleReportError> {
        self.runtime
            .block_on(load)
            .map_err(|source| SimpleReportError::Client {
                scenario: scenario.name,
                candidate: candidate.name(),
                source,
            })
    }

    fn measured_load(
        &self,
        scenario: &Scenario,
        candidate: Candidate,
        active: &mut Active,
        requests: u64,
    ) -> Result<Run, SimpleReportError> {
        if scenario.depth > 1 {
            self.client(
                scenario,
                candidate,
                active.pipelined(scenario.depth, requests, LOAD_DEADLINE),
            )
        } else {
            self.client(scenario, candidate, active.closed(requests, LOAD_DEADLINE))
        }
    }

    /// One candidate, one round: start, warm up, open the idle
    /// connections, measure, end.
    fn round(
        &self,
        scenario: &Scenario,
        candidate: Candidate,
    ) -> Result<Figures, SimpleReportError> {
        let target = TargetProcess::start(&self.exe, candidate)?;
        let process = target.process();
        let threads_start = process.status()?.threads;
        let mut active = self.client(
            scenario,
            candidate,
            Active::connect(target.addr(), scenario.active),
        )?;
        self.measured_load(scenario, candidate, &mut active, self.plan.warmup)?;
        let rss_before = process.status()?.rss_kib;
        let idle = open_idle(target.addr(), scenario.idle, LOAD_DEADLINE).map_err(|source| {
            SimpleReportError::Client {
                scenario: scenario.name,
                candidate: candidate.name(),
                source,
            }
        })?;
        // Let the server finish with the last idle connection's answer.
        std::thread::sleep(Duration::from_millis(200));
        let rss_after = process.status()?.rss_kib;
        let requests = if scenario.depth > 1 {
            self.plan.pipelined_requests
        } else {
            self.plan.requests
        };
        let cpu_before = process.cpu_ticks()?;
        let switches_before = process.thread_switches()?;
        let run = self.measured_load(scenario, candidate, &mut active, requests)?;
        let cpu_after = process.cpu_ticks()?;
        let switches_after = process.thread_switches()?;
        let threads_load = process.status()?.threads;
        drop(idle);
        drop(active);
        target.finish()?;
        let served = run.requests.max(1) as f64;
        let idle_bytes = (scenario.idle > 0)
            .then(|| (rss_after as f64 - rss_before as f64) * 1024.0 / scenario.idle as f64);
        Ok(Figures {
            cpu_us: (cpu_after - cpu_before) as f64 * 1e6 / self.ticks as f64 / served,
            rate: run.rate(),
            p50_us: run.latencies.micros(50.0).unwrap_or(0.0),
            p99_us: run.latencies.micros(99.0).unwrap_or(0.0),
            max_us: run.latencies.micros(100.0).unwrap_or(0.0),
            slowest_us: run.slowest_connection_micros().unwrap_or(0.0),
            mean_us: run.mean / 1e3,
            threads_start: threads_start as f64,
            threads_load: threads_load as f64,
            idle_bytes,
            switches: switches_after.saturating_sub(switches_before) as f64 / served,
        })
    }

    /// One candidate under `strace -c -f -p PID` for the measured run
    /// only (attached after the warm-up and the idle connections, detached
    /// right after), so the count is the run's alone.
    fn strace_round(
        &self,
        scenario: &Scenario,
        candidate: Candidate,
    ) -> Result<Syscalls, SimpleReportError> {
        let target = TargetProcess::start(&self.exe, candidate)?;
        let mut active = self.client(
            scenario,
            candidate,
            Active::connect(target.addr(), scenario.active),
        )?;
        self.measured_load(scenario, candidate, &mut active, self.plan.warmup)?;
        let idle = open_idle(target.addr(), scenario.idle, LOAD_DEADLINE).map_err(|source| {
            SimpleReportError::Client {
                scenario: scenario.name,
                candidate: candidate.name(),
                source,
            }
        })?;
        let out = self.work.join(format!(
            "strace-{}-{}.txt",
            slug(scenario.name),
            candidate.name()
        ));
        let tracer = Tracer::attach(target.pid(), &out)?;
        let run =
            self.measured_load(scenario, candidate, &mut active, self.plan.strace_requests)?;
        let text = tracer.detach()?;
        drop(idle);
        drop(active);
        target.finish()?;
        let served = run.requests.max(1) as f64;
        let (total, mut calls) = parse_strace_summary(&text);
        calls.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        Ok(Syscalls {
            per_request: total as f64 / served,
            top: calls
                .into_iter()
                .take(6)
                .map(|(name, count)| (name, count as f64 / served))
                .collect(),
        })
    }

    fn selected(&self, scenario: &Scenario) -> bool {
        self.plan
            .only
            .as_ref()
            .is_none_or(|only| scenario.name.contains(only.as_str()))
    }

    /// Whether both processes can hold the scenario's descriptors.
    fn fits(scenario: &Scenario) -> Result<bool, SimpleReportError> {
        let wanted = (scenario.idle + scenario.active + 200) as u64;
        Ok(Process::current()
            .open_files_limit()?
            .is_none_or(|limit| limit >= wanted))
    }

    /// Measures everything and returns the table.
    ///
    /// # Errors
    ///
    /// A run failed; a missed target is not an error.
    pub fn run(&self) -> Result<String, SimpleReportError> {
        let started = Instant::now();
        let mut rows = Vec::new();
        let mut notes = String::new();
        for scenario in &SCENARIOS {
            if !self.selected(scenario) {
                continue;
            }
            if !Self::fits(scenario)? {
                eprintln!(
                    "  {}: SKIPPED, the open-files limit is below {}; raise it with `ulimit -n` \
                     (bench/simple.sh does)",
                    scenario.name,
                    scenario.idle + scenario.active + 200
                );
                rows.push(row(
                    scenario.name,
                    "skipped: open-files limit too low",
                    "",
                    Target::Report,
                ));
                continue;
            }
            eprintln!("  {}", scenario.name);
            let mut figures: [Vec<Figures>; 2] = [Vec::new(), Vec::new()];
            let mut ratios = Vec::new();
            for round in 0..self.plan.rounds {
                // Alternate which goes first, so a drift in the machine's
                // load does not favour one side.
                let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                let mut this = [Figures::default(), Figures::default()];
                for side in order {
                    let candidate = Candidate::ALL[side];
                    let measured = self.round(scenario, candidate)?;
                    eprintln!(
                        "    round {} {:<8} cpu {:>6.2} us/req  {:>8.0} req/s  p99 {:>8.0} us  \
                         threads {}",
                        round + 1,
                        candidate.name(),
                        measured.cpu_us,
                        measured.rate,
                        measured.p99_us,
                        measured.threads_load
                    );
                    this[side] = measured;
                }
                if this[0].cpu_us > 0.0 {
                    ratios.push(this[1].cpu_us / this[0].cpu_us);
                }
                let [anchor, simple] = this;
                figures[0].push(anchor);
                figures[1].push(simple);
            }
            let syscalls = if self.plan.strace && (self.plan.strace_idle || scenario.idle == 0) {
                let mut both = [None, None];
                for (side, candidate) in Candidate::ALL.into_iter().enumerate() {
                    let counted = self.strace_round(scenario, candidate)?;
                    let _ = writeln!(
                        notes,
                        "{}, {}: {:.2} syscalls/request: {}",
                        scenario.name,
                        candidate.name(),
                        counted.per_request,
                        counted
                            .top
                            .iter()
                            .map(|(name, per)| format!("{name} {per:.2}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    both[side] = Some(counted.per_request);
                }
                Some(both)
            } else {
                None
            };
            self.scenario_rows(scenario, &figures, &ratios, syscalls, &mut rows);
        }
        let mut text = String::new();
        self.write_header(&mut text);
        write_rows(
            &mut text,
            &rows,
            Candidate::Threaded.name(),
            Candidate::Simple.name(),
        );
        let met = rows.iter().filter(|r| r.verdict() == Verdict::Met).count();
        let missed = rows
            .iter()
            .filter(|r| r.verdict() == Verdict::Missed)
            .count();
        if !notes.is_empty() {
            let _ = writeln!(
                text,
                "\nsyscalls by strace -c -f -p PID over the measured run, the most frequent per request:"
            );
            text.push_str(&notes);
        }
        let _ = writeln!(
            text,
            "\n{met} targets met, {missed} missed; measured in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(text)
    }

    fn scenario_rows(
        &self,
        scenario: &Scenario,
        figures: &[Vec<Figures>; 2],
        ratios: &[f64],
        syscalls: Option<[Option<f64>; 2]>,
        rows: &mut Vec<Row>,
    ) {
        let name = scenario.name;
        let med = |side: usize, pick: fn(&Figures) -> f64| {
            median(&figures[side].iter().map(pick).collect::<Vec<_>>())
        };
        let pair = |pick: fn(&Figures) -> f64| (med(0, pick), med(1, pick));

        let (anchor, simple) = pair(|f| f.cpu_us);
        let cpu_target = scenario.cpu_ratio.map_or(Target::Report, Target::Ratio);
        rows.push(with_ratio(
            figures_row(
                name,
                "server CPU us/request (median ratio)",
                "",
                cpu_target,
                anchor,
                simple,
            ),
            median(ratios),
        ));
        let (anchor, simple) = pair(|f| f.rate);
        rows.push(figures_row(
            name,
            "req/s",
            "",
            Target::Report,
            anchor,
            simple,
        ));
        let latency = if scenario.depth > 1 {
            "burst"
        } else {
            "request"
        };
        let (anchor, simple) = pair(|f| f.p50_us);
        rows.push(figures_row(
            name,
            &format!("p50 us per {latency}"),
            "",
            Target::Report,
            anchor,
            simple,
        ));
        let (anchor, simple) = pair(|f| f.p99_us);
        rows.push(figures_row(
            name,
            &format!("p99 us per {latency}"),
            "",
            Target::Report,
            anchor,
            simple,
        ));
        let (anchor, simple) = pair(|f| f.max_us);
        rows.push(figures_row(
            name,
            &format!("max us per {latency}"),
            "",
            Target::Report,
            anchor,
            simple,
        ));
        let (anchor, simple) = pair(|f| f.slowest_us);
        rows.push(figures_row(
            name,
            "slowest conn's mean latency us",
            "",
            Target::Report,
            anchor,
            simple,
        ));
        let (anchor, simple) = pair(|f| {
            if f.mean_us > 0.0 {
                f.slowest_us / f.mean_us
            } else {
                0.0
            }
        });
        rows.push(
            figures_row(
                name,
                "slowest conn mean / mean of all",
                "x",
                Target::AtMost(STARVATION_BOUND),
                anchor,
                simple,
            )
            .without_ratio(),
        );
        let (anchor, simple) = pair(|f| f.threads_load);
        rows.push(
            figures_row(
                name,
                "server threads under load",
                "",
                Target::Report,
                anchor,
                simple,
            )
            .without_ratio(),
        );
        let (anchor, simple) = pair(|f| f.threads_load - f.threads_start);
        rows.push(
            figures_row(
                name,
                "threads added by the connections",
                "",
                Target::AtMost(0.0),
                anchor,
                simple,
            )
            .without_ratio(),
        );
        if scenario.idle > 0 {
            let idle = |side: usize| {
                median(
                    &figures[side]
                        .iter()
                        .filter_map(|f| f.idle_bytes)
                        .collect::<Vec<_>>(),
                )
            };
            rows.push(
                Row {
                    scenario: name.to_owned(),
                    metric: "idle conn memory, RSS bytes/conn".to_owned(),
                    unit: "B",
                    baseline: idle(0),
                    candidate: idle(1),
                    ratio: None,
                    target: Target::AtMost(IDLE_BYTES),
                }
                .with_computed_ratio(),
            );
        }
        let (anchor, simple) = pair(|f| f.switches);
        rows.push(figures_row(
            name,
            "context switches/request",
            "",
            Target::Report,
            anchor,
            simple,
        ));
        if let Some([anchor, simple]) = syscalls {
            rows.push(
                Row {
                    scenario: name.to_owned(),
                    metric: "syscalls/request (strace)".to_owned(),
                    unit: "",
                    baseline: anchor,
                    candidate: simple,
                    ratio: None,
                    target: Target::Report,
                }
                .with_computed_ratio(),
            );
        }
    }

    fn write_header(&self, text: &mut String) {
        let plan = &self.plan;
        let _ = writeln!(
            text,
            "rgi-simple-server benchmark (issue 12, item 6): rgi-simple-server (default workers \
             and limits) serving the sync hello application against a std thread-per-connection \
             server answering the same bytes; loopback; load generator on one current-thread \
             tokio runtime in the reporting process"
        );
        let _ = writeln!(
            text,
            "{} rounds per scenario, candidates alternating (threaded first in odd rounds), \
             medians; CPU: utime+stime of the server from /proc/PID/stat over {} requests \
             ({} pipelined) after {} warm-up, {} ticks/s; the CPU ratio is the median of the \
             rounds' ratios; idle conns: one request each, then silent; memory: VmRSS delta over \
             opening them; context switches: summed over /proc/PID/task/*/status; syscalls: \
             {}",
            plan.rounds,
            plan.requests,
            plan.pipelined_requests,
            plan.warmup,
            self.ticks,
            if plan.strace {
                format!(
                    "strace -c -f -p PID attached for a separate run of {} requests (not the \
                     CPU runs)",
                    plan.strace_requests
                )
            } else {
                "not counted (strace not installed)".to_owned()
            }
        );
        let _ = writeln!(text);
    }
}

fn row(scenario: &str, metric: &str, unit: &'static str, target: Target) -> Row {
    Row {
        scenario: scenario.to_owned(),
        metric: metric.to_owned(),
        unit,
        baseline: None,
        candidate: None,
        ratio: None,
        target,
    }
}

fn figures_row(
    scenario: &str,
    metric: &str,
    unit: &'static str,
    target: Target,
    baseline: Option<f64>,
    candidate: Option<f64>,
) -> Row {
    Row {
        baseline,
        candidate,
        ..row(scenario, metric, unit, target)
    }
    .with_computed_ratio()
}

fn with_ratio(mut row: Row, ratio: Option<f64>) -> Row {
    row.ratio = ratio;
    row
}

/// The table's ratio column, filled in or cleared.
trait RatioExt {
    fn with_computed_ratio(self) -> Self;
    fn without_ratio(self) -> Self;
}

impl RatioExt for Row {
    fn with_computed_ratio(mut self) -> Self {
        self.ratio = self
            .baseline
            .zip(self.candidate)
            .and_then(|(base, value)| (base > 0.0).then_some(value / base));
        self
    }

    fn without_ratio(mut self) -> Self {
        self.ratio = None;
        self
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The total calls and each syscall's calls in the text of `strace -c`.
#[must_use]
pub fn parse_strace_summary(text: &str) -> (u64, Vec<(String, u64)>) {
    let mut total = 0;
    let mut calls = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `% time  seconds  usecs/call  calls  [errors]  syscall`
        if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
            continue;
        }
        let (Some(count), Some(name)) = (
            fields.get(3).and_then(|field| field.parse::<u64>().ok()),
            fields.last(),
        ) else {
            continue;
        };
        if *name == "total" {
            total = count;
        } else {
            calls.push(((*name).to_owned(), count));
        }
    }
    (total, calls)
}

/// strace attached to a running process.
struct Tracer {
    child: Child,
    out: PathBuf,
}

impl Tracer {
    /// Attaches `strace -c -f -p pid` and waits (bounded) until it reports
    /// the process attached.
    fn attach(pid: u32, out: &Path) -> Result<Self, SimpleReportError> {
        let mut child = std::process::Command::new("strace")
            .arg("-c")
            .arg("-f")
            .arg("-o")
            .arg(out)
            .arg("-p")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let (sender, attached) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("attached") && sender.send(()).is_err() {
                        return;
                    }
                }
            });
        }
        // strace says `Process PID attached with N threads` once it holds
        // them all (-f takes every thread of the process).
        let _ = attached.recv_timeout(Duration::from_secs(30));
        Ok(Tracer {
            child,
            out: out.to_path_buf(),
        })
    }

    /// Detaches (SIGINT to our own strace, by its pid) and returns its
    /// summary.
    fn detach(mut self) -> Result<String, SimpleReportError> {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()?;
        let until = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait()?.is_none() {
            if Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(std::fs::read_to_string(&self.out)?)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strace_summaries() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
             60.00    0.000600           6       100           sendto\n\
             40.00    0.000400           2       200        10 recvfrom\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
            100.00    0.001000           3       300        10 total\n";
        let (total, calls) = parse_strace_summary(text);
        assert_eq!(total, 300);
        assert_eq!(
            calls,
            vec![("sendto".to_owned(), 100), ("recvfrom".to_owned(), 200)]
        );
    }
}
