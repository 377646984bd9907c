//! The server benchmark's one-command report: every scenario of issue 10,
//! section 8, run against the baseline (bare hyper) and the candidate,
//! interleaved, printed as one table with each target beside its figure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use super::client::{self, ClientError, Clients};
use super::runner::{RunError, Snapshot, TargetChild};
use super::stats::{Schedule, median};
use super::target::{App, Implementation, Settings, Without, paths};
use crate::apps::HELLO_PATH;

/// How much to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// A/B pairs per CPU figure (the median ratio is reported).
    pub pairs: usize,
    /// Requests before the measured ones on the same connections.
    pub warmup: u64,
    /// Requests of a measured closed-loop run (CPU, allocations, switches).
    pub requests: u64,
    /// Requests of the larger and the smaller callgrind run.
    pub callgrind_requests: (u64, u64),
    /// Whether to run callgrind at all.
    pub valgrind: bool,
    /// Run every closed-loop scenario under callgrind, not only the 64
    /// connection ones.
    pub callgrind_all: bool,
    /// The fixed rate of the open-loop runs, requests per second.
    pub rate: f64,
    /// How long each open-loop run sends.
    pub open_duration: Duration,
    /// A/B pairs per p99 figure.
    pub open_pairs: usize,
    /// Connections parked in the long-poll scenario.
    pub parked_connections: usize,
    /// Streams parked on the one HTTP/2 connection.
    pub parked_streams: usize,
    /// Slow readers.
    pub slow_clients: usize,
    /// Bytes each slow reader reads at a time, and the pause after each
    /// read.
    pub slow_read: (usize, Duration),
    /// How long the slow readers read.
    pub slow_duration: Duration,
    /// The servers' settings.
    pub settings: Settings,
    /// Run only the scenarios whose name contains this text.
    pub only: Option<String>,
}

impl Plan {
    /// The full measurement (several minutes).
    #[must_use]
    pub fn full() -> Self {
        Plan {
            pairs: 5,
            warmup: 5_000,
            requests: 100_000,
            callgrind_requests: (20_000, 10_000),
            valgrind: true,
            callgrind_all: true,
            rate: 4_000.0,
            open_duration: Duration::from_secs(5),
            open_pairs: 3,
            parked_connections: 10_000,
            parked_streams: 1_000,
            slow_clients: 100,
            slow_read: (4_096, Duration::from_millis(10)),
            slow_duration: Duration::from_secs(10),
            settings: Settings::DEFAULT,
            only: None,
        }
    }

    /// The CI check: every scenario, small counts (about two minutes).
    #[must_use]
    pub fn quick() -> Self {
        Plan {
            pairs: 2,
            warmup: 1_000,
            requests: 10_000,
            callgrind_requests: (1_000, 500),
            valgrind: true,
            callgrind_all: false,
            rate: 4_000.0,
            open_duration: Duration::from_secs(1),
            open_pairs: 1,
            parked_connections: 10_000,
            parked_streams: 1_000,
            slow_clients: 100,
            slow_read: (4_096, Duration::from_millis(10)),
            slow_duration: Duration::from_secs(3),
            settings: Settings::DEFAULT,
            only: None,
        }
    }
}

/// Why the report could not be produced (a missed target is not one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A server run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A load generator failed.
    #[error("{scenario}: load generator: {source}")]
    Client {
        /// Which scenario.
        scenario: String,
        /// The failure.
        source: ClientError,
    },
    /// The reporting process's runtime or work directory failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The reporting process's `/proc` entries could not be read.
    #[error(transparent)]
    Proc(#[from] super::procfs::ProcError),
    /// A scenario did not reach the state it measures.
    #[error("{0}")]
    Scenario(String),
}

/// A figure's target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The candidate at most this many times the baseline.
    Ratio(f64),
    /// The candidate at most this value.
    AtMost(f64),
    /// Both.
    RatioAndAtMost(f64, f64),
    /// Reported beside the baseline, no target.
    Report,
}

/// The verdict on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within its target.
    Met,
    /// Outside it.
    Missed,
    /// No target, or a figure missing.
    NotJudged,
}

impl Target {
    /// The verdict on `candidate` (and `ratio`, the candidate over the
    /// baseline).
    #[must_use]
    pub fn judge(self, candidate: Option<f64>, ratio: Option<f64>) -> Verdict {
        let within = |value: Option<f64>, limit: f64| value.map(|value| value <= limit + 1e-9);
        let outcome = match self {
            Target::Report => None,
            Target::Ratio(limit) => within(ratio, limit),
            Target::AtMost(limit) => within(candidate, limit),
            Target::RatioAndAtMost(ratio_limit, limit) => within(ratio, ratio_limit)
                .zip(within(candidate, limit))
                .map(|(a, b)| a && b),
        };
        match outcome {
            Some(true) => Verdict::Met,
            Some(false) => Verdict::Missed,
            None => Verdict::NotJudged,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Target::Report => "reported".to_owned(),
            Target::Ratio(limit) => format!("<= {limit:.2}x"),
            Target::AtMost(limit) => format!("<= {limit} {unit}"),
            Target::RatioAndAtMost(ratio, limit) => format!("<= {ratio:.2}x, <= {limit} {unit}"),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The scenario.
    pub scenario: String,
    /// What is measured, with its unit.
    pub metric: String,
    /// The unit, for the target's text.
    pub unit: &'static str,
    /// The baseline's figure.
    pub baseline: Option<f64>,
    /// The candidate's figure.
    pub candidate: Option<f64>,
    /// The candidate over the baseline (for CPU: the median of the
    /// interleaved pairs' ratios, not the ratio of the medians).
    pub ratio: Option<f64>,
    /// The target.
    pub target: Target,
}

impl Row {
    fn new(scenario: &str, metric: &str, unit: &'static str, target: Target) -> Self {
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

    fn figures(mut self, baseline: Option<f64>, candidate: Option<f64>) -> Self {
        self.baseline = baseline;
        self.candidate = candidate;
        self.ratio = baseline
            .zip(candidate)
            .and_then(|(base, value)| (base > 0.0).then_some(value / base));
        self
    }

    fn with_ratio(mut self, ratio: Option<f64>) -> Self {
        self.ratio = ratio;
        self
    }

    /// The verdict on this row.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        self.target.judge(self.candidate, self.ratio)
    }
}

/// A closed-loop load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Load {
    /// Sequential keep-alive requests on this many connections.
    Hello(usize),
    /// This many connections writing 16 requests at a time.
    Pipelined(usize),
}

const PIPELINE_DEPTH: usize = 16;

/// A closed-loop scenario.
#[derive(Debug, Clone, Copy)]
pub(super) struct Closed {
    pub(super) name: &'static str,
    pub(super) app: App,
    pub(super) load: Load,
    /// The CPU and instruction target (a ratio to the baseline).
    pub(super) ratio: f64,
    /// Whether context switches per request are part of its report.
    pub(super) switches: bool,
    /// Whether allocations per request are part of its report.
    pub(super) allocations: bool,
    /// Whether the quick plan runs it under callgrind.
    pub(super) quick_callgrind: bool,
    /// How many times the plan's request counts it runs (pipelined
    /// requests cost a fraction of sequential ones, and the CPU clock
    /// ticks every 10 ms).
    pub(super) scale: u64,
    /// hyper's `pipeline_flush`, on both sides.
    pub(super) pipeline_flush: bool,
    /// Whether its instructions are also measured with each of
    /// rgi-server's per-request features off.
    pub(super) breakdown: bool,
}

const CLOSED: [Closed; 6] = [
    Closed {
        name: "async hello, 64 conns",
        app: App::HelloAsync,
        load: Load::Hello(64),
        ratio: 1.10,
        switches: false,
        allocations: true,
        quick_callgrind: true,
        pipeline_flush: false,
        scale: 1,
        breakdown: true,
    },
    Closed {
        name: "async hello, 256 conns",
        app: App::HelloAsync,
        load: Load::Hello(256),
        ratio: 1.10,
        switches: false,
        allocations: false,
        quick_callgrind: false,
        pipeline_flush: false,
        scale: 1,
        breakdown: false,
    },
    Closed {
        name: "async hello, 1000 conns",
        app: App::HelloAsync,
        load: Load::Hello(1_000),
        ratio: 1.10,
        switches: false,
        allocations: false,
        quick_callgrind: false,
        pipeline_flush: false,
        scale: 1,
        breakdown: false,
    },
    Closed {
        name: "sync never-blocking hello, 64 conns",
        app: App::HelloSync,
        load: Load::Hello(64),
        ratio: 1.15,
        switches: false,
        allocations: true,
        quick_callgrind: true,
        pipeline_flush: false,
        scale: 1,
        breakdown: false,
    },
    Closed {
        name: "blocking handler (100 us sleep), 64 conns",
        app: App::Blocking,
        load: Load::Hello(64),
        ratio: 1.0,
        switches: true,
        allocations: true,
        quick_callgrind: true,
        pipeline_flush: false,
        scale: 1,
        breakdown: false,
    },
    Closed {
        name: "16 pipelined per conn, 64 conns",
        app: App::HelloAsync,
        load: Load::Pipelined(64),
        ratio: 1.10,
        switches: false,
        allocations: false,
        quick_callgrind: true,
        pipeline_flush: true,
        scale: 8,
        breakdown: false,
    },
];

/// One closed-loop run's figures per request.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PerRequest {
    cpu_micros: f64,
    allocations: f64,
    switches: f64,
}

/// Measures and prints the table.
#[derive(Debug)]
pub struct ServerReport {
    exe: PathBuf,
    work: PathBuf,
    plan: Plan,
    baseline: Implementation,
    candidate: Implementation,
    runtime: Runtime,
    ticks_per_second: f64,
}

/// How long any load run may take (callgrind is slow).
const LOAD_DEADLINE: Duration = Duration::from_secs(300);

impl ServerReport {
    /// A report spawning `exe` (this binary) as its servers, keeping
    /// callgrind's files in `work`, comparing `candidate` with bare hyper.
    ///
    /// # Errors
    ///
    /// `work` or the load generator's runtime cannot be made.
    pub fn new(
        exe: PathBuf,
        work: PathBuf,
        plan: Plan,
        candidate: Implementation,
    ) -> Result<Self, ReportError> {
        std::fs::create_dir_all(&work)?;
        // The load generators share one thread: the other core is the
        // server's.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(ServerReport {
            exe,
            work,
            plan,
            baseline: Implementation::Hyper,
            candidate,
            runtime,
            ticks_per_second: super::procfs::ticks_per_second() as f64,
        })
    }

    fn start(
        &self,
        implementation: Implementation,
        app: App,
        callgrind_out: Option<&Path>,
    ) -> Result<TargetChild, ReportError> {
        self.start_with(implementation, app, self.plan.settings, callgrind_out)
    }

    fn start_with(
        &self,
        implementation: Implementation,
        app: App,
        settings: Settings,
        callgrind_out: Option<&Path>,
    ) -> Result<TargetChild, ReportError> {
        Ok(TargetChild::start(
            &self.exe,
            implementation,
            app,
            settings,
            callgrind_out,
        )?)
    }

    fn client<T>(
        &self,
        scenario: &str,
        load: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ReportError> {
        self.runtime
            .block_on(load)
            .map_err(|source| ReportError::Client {
                scenario: scenario.to_owned(),
                source,
            })
    }

    /// One server, a warm-up, then `requests` measured between two
    /// snapshots; returns them and callgrind's total if it ran under it.
    fn closed_run(
        &self,
        scenario: &Closed,
        implementation: Implementation,
        requests: u64,
        without: Without,
        callgrind_out: Option<&Path>,
    ) -> Result<(Snapshot, Snapshot, Option<u64>, u64), ReportError> {
        let settings = Settings {
            pipeline_flush: scenario.pipeline_flush,
            without,
            ..self.plan.settings
        };
        let mut child = self.start_with(implementation, scenario.app, settings, callgrind_out)?;
        let addr = child.addr();
        let (before, after, served) = match scenario.load {
            Load::Hello(connections) => {
                let mut clients =
                    self.client(scenario.name, Clients::connect(addr, connections))?;
                self.client(
                    scenario.name,
                    clients.closed(HELLO_PATH, self.plan.warmup, LOAD_DEADLINE),
                )?;
                let before = child.snapshot()?;
                self.client(
                    scenario.name,
                    clients.closed(HELLO_PATH, requests, LOAD_DEADLINE),
                )?;
                let after = child.snapshot()?;
                (before, after, requests)
            }
            Load::Pipelined(connections) => {
                self.client(
                    scenario.name,
                    client::pipelined(
                        addr,
                        connections,
                        PIPELINE_DEPTH,
                        self.plan.warmup,
                        LOAD_DEADLINE,
                    ),
                )?;
                let before = child.snapshot()?;
                let run = self.client(
                    scenario.name,
                    client::pipelined(addr, connections, PIPELINE_DEPTH, requests, LOAD_DEADLINE),
                )?;
                // Whole batches: the request count rounded up.
                let after = child.snapshot()?;
                (before, after, run.requests)
            }
        };
        let (_, instructions) = child.finish()?;
        Ok((before, after, instructions, served))
    }

    fn per_request(&self, before: &Snapshot, after: &Snapshot, requests: u64) -> PerRequest {
        let requests = requests as f64;
        let ticks = after
            .sample
            .cpu_ticks
            .saturating_sub(before.sample.cpu_ticks) as f64;
        let allocations = after
            .stats
            .allocations
            .since(before.stats.allocations)
            .allocations as f64;
        let switches = after.sample.switches.saturating_sub(before.sample.switches) as f64;
        PerRequest {
            cpu_micros: ticks / self.ticks_per_second * 1e6 / requests,
            allocations: allocations / requests,
            switches: switches / requests,
        }
    }

    fn implementations(&self) -> [Implementation; 2] {
        [self.baseline, self.candidate]
    }

    /// Compares `candidate` with `baseline` from now on (the rgi-tower
    /// benchmark's pairs are not all against bare hyper).
    pub(super) fn set_pair(&mut self, baseline: Implementation, candidate: Implementation) {
        self.baseline = baseline;
        self.candidate = candidate;
    }

    /// CPU, allocations and switches per request, A B A B ...
    pub(super) fn measure_closed(
        &self,
        scenario: &Closed,
        rows: &mut Vec<Row>,
    ) -> Result<(), ReportError> {
        eprintln!(
            "  {}: CPU per request, {} A/B pairs",
            scenario.name, self.plan.pairs
        );
        let mut figures: [Vec<PerRequest>; 2] = [Vec::new(), Vec::new()];
        let mut ratios = Vec::new();
        for _ in 0..self.plan.pairs {
            let mut pair = [None, None];
            for (side, implementation) in self.implementations().into_iter().enumerate() {
                let requests = self.plan.requests * scenario.scale;
                let (before, after, _, served) =
                    self.closed_run(scenario, implementation, requests, Without::NOTHING, None)?;
                let figure = self.per_request(&before, &after, served);
                figures[side].push(figure);
                pair[side] = Some(figure.cpu_micros);
            }
            if let [Some(base), Some(value)] = pair
                && base > 0.0
            {
                ratios.push(value / base);
            }
        }
        let median_of = |side: usize, pick: fn(&PerRequest) -> f64| {
            median(&figures[side].iter().map(pick).collect::<Vec<_>>())
        };
        rows.push(
            Row::new(
                scenario.name,
                "CPU us/req (median of A/B ratios)",
                "us",
                Target::Ratio(scenario.ratio),
            )
            .figures(
                median_of(0, |f| f.cpu_micros),
                median_of(1, |f| f.cpu_micros),
            )
            .with_ratio(median(&ratios)),
        );
        if scenario.allocations {
            rows.push(
                Row::new(scenario.name, "allocations/req", "", Target::Report).figures(
                    median_of(0, |f| f.allocations),
                    median_of(1, |f| f.allocations),
                ),
            );
        }
        if scenario.switches {
            rows.push(
                Row::new(scenario.name, "context switches/req", "", Target::Report)
                    .figures(median_of(0, |f| f.switches), median_of(1, |f| f.switches)),
            );
        }
        Ok(())
    }

    /// Instructions per request: two request counts under callgrind,
    /// subtracted.
    pub(super) fn measure_instructions(
        &self,
        scenario: &Closed,
        rows: &mut Vec<Row>,
    ) -> Result<[Option<f64>; 2], ReportError> {
        let (large, small) = self.plan.callgrind_requests;
        eprintln!(
            "  {}: callgrind, {} - {} requests",
            scenario.name,
            large * scenario.scale,
            small * scenario.scale
        );
        let mut figures = [None, None];
        for (side, implementation) in self.implementations().into_iter().enumerate() {
            figures[side] = Some(self.instructions(scenario, implementation, Without::NOTHING)?);
        }
        rows.push(
            Row::new(
                scenario.name,
                "instructions/req (callgrind)",
                "",
                Target::Ratio(scenario.ratio),
            )
            .figures(figures[0], figures[1]),
        );
        Ok(figures)
    }

    /// One side's instructions per request in `scenario`, with rgi-server's
    /// features in `without` off.
    fn instructions(
        &self,
        scenario: &Closed,
        implementation: Implementation,
        without: Without,
    ) -> Result<f64, ReportError> {
        let (large, small) = self.plan.callgrind_requests;
        let (large, small) = (large * scenario.scale, small * scenario.scale);
        let mut totals = [0_u64; 2];
        let mut served = [0_u64; 2];
        let off = without.list();
        for (slot, requests) in [large, small].into_iter().enumerate() {
            let out = self.work.join(format!(
                "callgrind.server.{}.{}.{}{}{}.{requests}",
                implementation.name(),
                scenario.app.name(),
                slug(scenario.name),
                if off.is_empty() { "" } else { ".without-" },
                off.replace(',', "-"),
            ));
            let (_, _, instructions, count) =
                self.closed_run(scenario, implementation, requests, without, Some(&out))?;
            totals[slot] = instructions.unwrap_or(0);
            served[slot] = count;
        }
        let span = served[0].saturating_sub(served[1]).max(1) as f64;
        Ok((totals[0] as f64 - totals[1] as f64) / span)
    }

    /// What each of rgi-server's per-request features costs in `scenario`:
    /// its instructions per request with all of them, then with each (and
    /// all) turned off; the difference is the feature's cost. `figures`
    /// are bare hyper's and rgi-server's with all features, as measured.
    fn measure_breakdown(
        &self,
        scenario: &Closed,
        figures: [Option<f64>; 2],
        rows: &mut Vec<Row>,
    ) -> Result<(), ReportError> {
        let [hyper, Some(all)] = figures else {
            return Ok(());
        };
        if self.candidate != Implementation::Rgi {
            return Ok(());
        }
        eprintln!(
            "  {}: callgrind, rgi-server's features one by one",
            scenario.name
        );
        let name = format!("{}: feature cost", scenario.name);
        rows.push(
            Row::new(&name, "instructions/req, all features", "", Target::Report)
                .figures(hyper, Some(all)),
        );
        let off = |tracing, counters, limits| Without {
            tracing,
            counters,
            limits,
        };
        for (label, without) in [
            ("tracing", off(true, false, false)),
            ("counters", off(false, true, false)),
            ("limits + RFC checks", off(false, false, true)),
            ("all three", off(true, true, true)),
        ] {
            let figure = self.instructions(scenario, self.candidate, without)?;
            rows.push(
                Row::new(
                    &name,
                    &format!("instructions/req, {label} off (cost {:.0})", all - figure),
                    "",
                    Target::Report,
                )
                .figures(hyper, Some(figure)),
            );
        }
        Ok(())
    }

    /// p99 under a fixed rate on `connections` connections, A B A B ...
    fn measure_p99(&self, connections: usize, rows: &mut Vec<Row>) -> Result<(), ReportError> {
        let name = format!("async hello, {connections} conns");
        let schedule = Schedule::new(self.plan.rate, self.plan.open_duration);
        eprintln!(
            "  {name}: p99 at {} req/s for {:?}, {} A/B pairs",
            self.plan.rate, self.plan.open_duration, self.plan.open_pairs
        );
        let mut figures: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut medians: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut ratios = Vec::new();
        for _ in 0..self.plan.open_pairs {
            let mut pair = [None, None];
            for (side, implementation) in self.implementations().into_iter().enumerate() {
                let child = self.start(implementation, App::HelloAsync, None)?;
                let mut clients =
                    self.client(&name, Clients::connect(child.addr(), connections))?;
                self.client(
                    &name,
                    clients.closed(HELLO_PATH, self.plan.warmup, LOAD_DEADLINE),
                )?;
                let latencies =
                    self.client(&name, clients.open(HELLO_PATH, schedule, LOAD_DEADLINE))?;
                drop(clients);
                child.finish()?;
                let p99 = latencies.micros(99.0);
                if let Some(p50) = latencies.micros(50.0) {
                    medians[side].push(p50);
                }
                if let Some(p99) = p99 {
                    figures[side].push(p99);
                }
                pair[side] = p99;
            }
            if let [Some(base), Some(value)] = pair
                && base > 0.0
            {
                ratios.push(value / base);
            }
        }
        rows.push(
            Row::new(
                &name,
                &format!("p99 us at {:.0} req/s (open loop)", self.plan.rate),
                "us",
                Target::Ratio(1.2),
            )
            .figures(median(&figures[0]), median(&figures[1]))
            .with_ratio(median(&ratios)),
        );
        rows.push(
            Row::new(&name, "p50 us, same runs", "us", Target::Report)
                .figures(median(&medians[0]), median(&medians[1])),
        );
        Ok(())
    }

    /// Whether the plan's `only` filter lets `scenario` run.
    fn selected(&self, scenario: &str) -> bool {
        self.plan
            .only
            .as_deref()
            .is_none_or(|only| scenario.contains(only))
    }

    /// Waits `duration` while running the load generator's tasks.
    fn pause(&self, duration: Duration) {
        self.runtime
            .block_on(async { tokio::time::sleep(duration).await });
    }

    /// Waits until the server has `count` requests parked.
    fn wait_parked(
        &self,
        child: &mut TargetChild,
        count: u64,
        scenario: &str,
    ) -> Result<(), ReportError> {
        let started = Instant::now();
        loop {
            let parked = child.snapshot()?.stats.parked;
            if parked >= count {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(ReportError::Scenario(format!(
                    "{scenario}: only {parked} of {count} requests parked after 120 s"
                )));
            }
            // The pause runs the load generator's runtime, which drives
            // the HTTP/2 connection.
            self.pause(Duration::from_millis(100));
        }
    }

    /// Heap, RSS and threads of `count` parked requests, per side.
    fn measure_parked(&self, http2: bool, rows: &mut Vec<Row>) -> Result<(), ReportError> {
        let count = if http2 {
            self.plan.parked_streams
        } else {
            self.plan.parked_connections
        };
        let name = if http2 {
            format!("long-poll, {count} parked streams on one HTTP/2 conn")
        } else {
            format!("long-poll, {count} parked HTTP/1.1 conns")
        };
        if !http2 {
            let limit = super::procfs::Process::current().open_files_limit()?;
            if limit.is_some_and(|limit| limit < count as u64 + 200) {
                eprintln!(
                    "  {name}: SKIPPED, the open-files limit ({}) is below {}; raise it with \
                     `ulimit -n` (bench/server.sh tries)",
                    limit.unwrap_or(0),
                    count + 200
                );
                rows.push(Row::new(
                    &name,
                    "skipped: open-files limit too low",
                    "",
                    Target::Report,
                ));
                return Ok(());
            }
        }
        eprintln!("  {name}");
        let mut per = [(None, None, None); 2];
        for (side, implementation) in self.implementations().into_iter().enumerate() {
            let mut child = self.start(implementation, App::Park, None)?;
            let addr = child.addr();
            let before = child.snapshot()?;
            let held = if http2 {
                let tasks = self.client(&name, client::park_http2(addr, count, HELLO_PATH))?;
                Held::Streams(tasks)
            } else {
                let streams = self.client(
                    &name,
                    client::park_http1(addr, count, HELLO_PATH, LOAD_DEADLINE),
                )?;
                Held::Connections(streams)
            };
            self.wait_parked(&mut child, count as u64, &name)?;
            if held.open() != count {
                return Err(ReportError::Scenario(format!(
                    "{name}: the client holds {} requests, not {count}",
                    held.open()
                )));
            }
            // Let the kernel and the allocator settle.
            self.pause(Duration::from_millis(300));
            let after = child.snapshot()?;
            let n = count as f64;
            let heap = after
                .stats
                .live_bytes
                .saturating_sub(before.stats.live_bytes) as f64
                / n;
            let rss =
                after.sample.rss_kib.saturating_sub(before.sample.rss_kib) as f64 * 1024.0 / n;
            let threads = after.sample.threads as f64 - before.sample.threads as f64;
            per[side] = (Some(heap / 1024.0), Some(rss / 1024.0), Some(threads));
            // Closing the client side inside the runtime, then the server.
            self.runtime.block_on(async move { drop(held) });
            child.finish()?;
        }
        let unit_target = |limit| {
            if http2 {
                Target::Ratio(1.1)
            } else {
                Target::RatioAndAtMost(1.1, limit)
            }
        };
        let what = if http2 { "stream" } else { "conn" };
        rows.push(
            Row::new(
                &name,
                &format!("heap KiB/{what} (live bytes)"),
                "KiB",
                unit_target(24.0),
            )
            .figures(per[0].0, per[1].0),
        );
        rows.push(
            Row::new(&name, &format!("RSS KiB/{what}"), "KiB", unit_target(24.0))
                .figures(per[0].1, per[1].1),
        );
        rows.push(
            Row::new(&name, "threads added while parked", "", Target::AtMost(0.0))
                .figures(per[0].2, per[1].2),
        );
        Ok(())
    }

    /// Async p99 on 64 connections, alone and beside 100 requests asleep
    /// in a blocking handler, per side.
    fn measure_mixed(&self, rows: &mut Vec<Row>) -> Result<(), ReportError> {
        let name = "mixed: 64 conns async hello + 100 in a 1 s blocking handler";
        eprintln!("  {name}");
        let schedule = Schedule::new(self.plan.rate, self.plan.open_duration);
        let mut unloaded = [None, None];
        let mut loaded = [None, None];
        for (side, implementation) in self.implementations().into_iter().enumerate() {
            let child = self.start(implementation, App::Mixed, None)?;
            let addr = child.addr();
            let mut clients = self.client(name, Clients::connect(addr, 64))?;
            let sleepers = self.client(name, Clients::connect(addr, 100))?;
            self.client(
                name,
                clients.closed(HELLO_PATH, self.plan.warmup, LOAD_DEADLINE),
            )?;
            let alone = self.client(name, clients.open(HELLO_PATH, schedule, LOAD_DEADLINE))?;
            let stop = Arc::new(AtomicBool::new(false));
            let beside = self.client(name, async {
                let sleeping = tokio::spawn({
                    let stop = Arc::clone(&stop);
                    let mut sleepers = sleepers;
                    async move { sleepers.until(paths::SLEEP, stop, LOAD_DEADLINE).await }
                });
                // Every sleeper is in the handler within a second.
                tokio::time::sleep(Duration::from_millis(1_200)).await;
                let beside = clients.open(HELLO_PATH, schedule, LOAD_DEADLINE).await;
                stop.store(true, Ordering::Relaxed);
                let slept = sleeping
                    .await
                    .map_err(|err| ClientError::Task(err.to_string()))??;
                if slept < 100 {
                    return Err(ClientError::Task(format!(
                        "only {slept} blocking requests were answered"
                    )));
                }
                beside
            })?;
            child.finish()?;
            unloaded[side] = alone.micros(99.0);
            loaded[side] = beside.micros(99.0);
        }
        let ratio = |side: usize| loaded[side].zip(unloaded[side]).map(|(l, u)| l / u);
        rows.push(
            Row::new(name, "async p99 us, alone", "us", Target::Report)
                .figures(unloaded[0], unloaded[1]),
        );
        rows.push(
            Row::new(
                name,
                "async p99 us, beside the sleepers",
                "us",
                Target::Report,
            )
            .figures(loaded[0], loaded[1]),
        );
        rows.push(
            Row::new(name, "p99 beside / p99 alone", "x", Target::AtMost(2.0))
                .figures(ratio(0), ratio(1))
                .with_ratio(None),
        );
        Ok(())
    }

    /// RSS growth per slow reader, per side.
    fn measure_slow(&self, rows: &mut Vec<Row>) -> Result<(), ReportError> {
        let (read_size, pause) = self.plan.slow_read;
        let clients = self.plan.slow_clients;
        let name = format!(
            "slow readers: {clients} x 1 GiB body, {} KiB per {} ms, {} s",
            read_size / 1024,
            pause.as_millis(),
            self.plan.slow_duration.as_secs()
        );
        eprintln!("  {name}");
        let mut growth = [None, None];
        for (side, implementation) in self.implementations().into_iter().enumerate() {
            let child = self.start(implementation, App::Stream, None)?;
            let process = child.process();
            let before = process.status()?.rss_kib;
            let (peak, run) = self.client(&name, async {
                let reading = tokio::spawn(client::slow_readers(
                    child.addr(),
                    clients,
                    paths::STREAM,
                    read_size,
                    pause,
                    self.plan.slow_duration,
                ));
                let mut peak = before;
                while !reading.is_finished() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Ok(status) = process.status() {
                        peak = peak.max(status.rss_kib);
                    }
                }
                let run = reading
                    .await
                    .map_err(|err| ClientError::Task(err.to_string()))??;
                Ok((peak, run))
            })?;
            child.finish()?;
            if run.bytes == 0 {
                return Err(ReportError::Scenario(format!("{name}: nothing was read")));
            }
            growth[side] = Some(peak.saturating_sub(before) as f64 / clients as f64);
        }
        rows.push(
            Row::new(
                &name,
                "RSS growth KiB/client (peak)",
                "KiB",
                Target::AtMost(512.0),
            )
            .figures(growth[0], growth[1])
            .with_ratio(None),
        );
        Ok(())
    }

    /// RSS growth per slowly read stream of one HTTP/2 connection, per
    /// side, against the configured stream window.
    fn measure_slow_http2(&self, rows: &mut Vec<Row>) -> Result<(), ReportError> {
        let (_, pause) = self.plan.slow_read;
        let streams = self.plan.slow_clients;
        let name = format!(
            "slow readers: {streams} HTTP/2 streams x 1 GiB, a frame per {} ms, {} s",
            pause.as_millis(),
            self.plan.slow_duration.as_secs()
        );
        eprintln!("  {name}");
        let mut growth = [None, None];
        for (side, implementation) in self.implementations().into_iter().enumerate() {
            let child = self.start(implementation, App::Stream, None)?;
            let process = child.process();
            let before = process.status()?.rss_kib;
            let (peak, run) = self.client(&name, async {
                let reading = tokio::spawn(client::slow_readers_http2(
                    child.addr(),
                    streams,
                    paths::STREAM,
                    pause,
                    self.plan.slow_duration,
                ));
                let mut peak = before;
                while !reading.is_finished() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Ok(status) = process.status() {
                        peak = peak.max(status.rss_kib);
                    }
                }
                let run = reading
                    .await
                    .map_err(|err| ClientError::Task(err.to_string()))??;
                Ok((peak, run))
            })?;
            child.finish()?;
            if run.bytes == 0 {
                return Err(ReportError::Scenario(format!("{name}: nothing was read")));
            }
            growth[side] = Some(peak.saturating_sub(before) as f64 / streams as f64);
        }
        let window = f64::from(self.plan.settings.stream_window) / 1024.0;
        rows.push(
            Row::new(
                &name,
                "RSS growth KiB/stream (peak)",
                "KiB (the stream window)",
                Target::AtMost(window),
            )
            .figures(growth[0], growth[1])
            .with_ratio(None),
        );
        Ok(())
    }

    /// Measures everything and returns the table.
    ///
    /// # Errors
    ///
    /// A run failed; a missed target is not an error.
    pub fn run(&self) -> Result<String, ReportError> {
        let started = Instant::now();
        let mut rows = Vec::new();
        eprintln!(
            "server benchmark: {} (baseline) against {}",
            self.baseline.name(),
            self.candidate.name()
        );
        for scenario in &CLOSED {
            if !self.selected(scenario.name) {
                continue;
            }
            self.measure_closed(scenario, &mut rows)?;
            if self.plan.valgrind && (self.plan.callgrind_all || scenario.quick_callgrind) {
                let figures = self.measure_instructions(scenario, &mut rows)?;
                if scenario.breakdown {
                    self.measure_breakdown(scenario, figures, &mut rows)?;
                }
            }
        }
        for connections in [64, 256, 1_000] {
            if self.selected(&format!("async hello, {connections} conns p99")) {
                self.measure_p99(connections, &mut rows)?;
            }
        }
        if self.selected("long-poll HTTP/1.1") {
            self.measure_parked(false, &mut rows)?;
        }
        if self.selected("long-poll HTTP/2") {
            self.measure_parked(true, &mut rows)?;
        }
        if self.selected("mixed") {
            self.measure_mixed(&mut rows)?;
        }
        if self.selected("slow readers HTTP/1.1") {
            self.measure_slow(&mut rows)?;
        }
        if self.selected("slow readers HTTP/2") {
            self.measure_slow_http2(&mut rows)?;
        }
        let mut text = String::new();
        self.write_header(&mut text);
        write_rows(
            &mut text,
            &rows,
            self.baseline.name(),
            self.candidate.name(),
        );
        let missed = rows
            .iter()
            .filter(|row| row.verdict() == Verdict::Missed)
            .count();
        let met = rows
            .iter()
            .filter(|row| row.verdict() == Verdict::Met)
            .count();
        let _ = writeln!(
            text,
            "\n{met} targets met, {missed} missed; measured in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(text)
    }

    fn write_header(&self, text: &mut String) {
        let plan = &self.plan;
        let settings = plan.settings;
        let _ = writeln!(
            text,
            "rgi-server benchmark (issue 10, section 8): {} against bare hyper 1.x, loopback, \
             server on a {}-worker multi-thread tokio runtime (blocking pool {}), load generator \
             on one current-thread runtime",
            self.candidate.name(),
            settings.workers,
            settings.pool
        );
        let _ = writeln!(
            text,
            "built alike (bare hyper: hyper-util's auto builder; rgi-server: its own hyper \
             builders): TokioTimer, header timeout {:?}, max_headers {}, pipeline_flush {} (on, \
             both sides, for the pipelined scenario), h2 max_concurrent_streams {}, stream \
             window {} KiB",
            settings.header_read_timeout,
            settings.max_headers,
            settings.pipeline_flush,
            settings.max_concurrent_streams,
            settings.stream_window / 1024
        );
        let _ = writeln!(
            text,
            "CPU: utime+stime from /proc/PID/stat over {} requests after {} warm-up, {} A/B pairs \
             interleaved, median; instructions: callgrind, ({} - {}) requests subtracted; p99: open \
             loop at {:.0} req/s for {:?}, latency from the scheduled send time",
            plan.requests,
            plan.warmup,
            plan.pairs,
            plan.callgrind_requests.0,
            plan.callgrind_requests.1,
            plan.rate,
            plan.open_duration
        );
        if self.candidate == self.baseline {
            let _ = writeln!(
                text,
                "SELF-CHECK: the candidate is bare hyper too; ratios show the harness's own noise"
            );
        }
        let _ = writeln!(text);
    }
}

/// What a parked scenario's client holds open.
#[derive(Debug)]
enum Held {
    Connections(Vec<tokio::net::TcpStream>),
    Streams(tokio::task::JoinSet<()>),
}

impl Held {
    /// How many requests it still holds (the HTTP/2 connection's own task
    /// is one of the set's).
    fn open(&self) -> usize {
        match self {
            Held::Connections(streams) => streams.len(),
            Held::Streams(tasks) => tasks.len().saturating_sub(1),
        }
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn cell(value: Option<f64>) -> String {
    match value {
        None => "n/a".to_owned(),
        Some(value) if value.abs() >= 1_000.0 => format!("{value:.0}"),
        Some(value) if value.abs() >= 10.0 => format!("{value:.1}"),
        Some(value) => format!("{value:.2}"),
    }
}

/// The table: one row per figure, the target beside it, the verdict last.
pub fn write_rows(text: &mut String, rows: &[Row], baseline: &str, candidate: &str) {
    let scenario_width = rows
        .iter()
        .map(|row| row.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let metric_width = rows
        .iter()
        .map(|row| row.metric.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        text,
        "{:<scenario_width$}  {:<metric_width$}  {:>10}  {:>10}  {:>7}  {:<20}  verdict",
        "scenario", "figure", baseline, candidate, "ratio", "target"
    );
    for row in rows {
        let verdict = match row.verdict() {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::NotJudged => "-",
        };
        let ratio = row
            .ratio
            .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.3}"));
        let _ = writeln!(
            text,
            "{:<scenario_width$}  {:<metric_width$}  {:>10}  {:>10}  {:>7}  {:<20}  {}",
            row.scenario,
            row.metric,
            cell(row.baseline),
            cell(row.candidate),
            ratio,
            row.target.describe(row.unit),
            verdict
        );
    }
}
