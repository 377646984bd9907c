//! The rgi-tower benchmark's one-command report (issue 14, item 6;
//! `bench/tower.sh`): each way of serving the hello through rgi-tower
//! against bare hyper, with the server benchmark's method (interleaved A/B
//! pairs of CPU time from `/proc`, callgrind at two request counts
//! subtracted, the allocator's counts), printed as one table.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use super::report::{Closed, Load, Plan, ReportError, ServerReport, Target, Verdict, write_rows};
use super::target::{App, Implementation};

/// Keep-alive connections of every comparison.
pub const CONNECTIONS: usize = 64;

/// The target of every judged comparison: the candidate's CPU and
/// instructions per request at most this many times the baseline's.
pub const RATIO: f64 = 1.10;

/// One line of the benchmark: a candidate against a baseline, both serving
/// `app`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The scenario's name in the table.
    pub name: &'static str,
    /// What the candidate is compared with.
    pub baseline: Implementation,
    /// What is measured.
    pub candidate: Implementation,
    /// What both serve.
    pub app: App,
    /// Whether the [`RATIO`] target applies (otherwise the figures are
    /// reported for context).
    pub judged: bool,
}

/// Every comparison, in the table's order: the three (the bridge,
/// rgi-server, the mounted router) against bare hyper, the mounted router
/// against the same router on bare hyper, and that router against bare
/// hyper for context.
pub const COMPARISONS: [Comparison; 7] = [
    Comparison {
        name: "bridge vs hyper: async hello, 64 conns",
        baseline: Implementation::Hyper,
        candidate: Implementation::Bridge,
        app: App::HelloAsync,
        judged: true,
    },
    Comparison {
        name: "bridge vs hyper: sync never-blocking hello, 64 conns",
        baseline: Implementation::Hyper,
        candidate: Implementation::Bridge,
        app: App::HelloSync,
        judged: true,
    },
    Comparison {
        name: "rgi vs hyper: async hello, 64 conns",
        baseline: Implementation::Hyper,
        candidate: Implementation::Rgi,
        app: App::HelloAsync,
        judged: true,
    },
    Comparison {
        name: "rgi vs hyper: sync never-blocking hello, 64 conns",
        baseline: Implementation::Hyper,
        candidate: Implementation::Rgi,
        app: App::HelloSync,
        judged: true,
    },
    Comparison {
        name: "axum-in-rgi vs hyper: async hello, 64 conns",
        baseline: Implementation::Hyper,
        candidate: Implementation::AxumInRgi,
        app: App::HelloAsync,
        judged: true,
    },
    Comparison {
        name: "axum-in-rgi vs axum: async hello, 64 conns (extra)",
        baseline: Implementation::Axum,
        candidate: Implementation::AxumInRgi,
        app: App::HelloAsync,
        judged: true,
    },
    Comparison {
        name: "axum vs hyper: async hello, 64 conns (context)",
        baseline: Implementation::Hyper,
        candidate: Implementation::Axum,
        app: App::HelloAsync,
        judged: false,
    },
];

impl Comparison {
    /// The closed-loop scenario the server benchmark measures it with.
    fn scenario(&self) -> Closed {
        Closed {
            name: self.name,
            app: self.app,
            load: Load::Hello(CONNECTIONS),
            ratio: RATIO,
            switches: false,
            allocations: true,
            quick_callgrind: true,
            scale: 1,
            pipeline_flush: false,
            breakdown: false,
        }
    }
}

/// The full measurement's counts: modest enough that the seven
/// comparisons finish in about ten minutes on two shared cores.
#[must_use]
pub fn full_plan() -> Plan {
    Plan {
        pairs: 5,
        warmup: 5_000,
        requests: 200_000,
        callgrind_requests: (20_000, 10_000),
        ..Plan::full()
    }
}

/// The CI check's counts: every comparison, small counts.
#[must_use]
pub fn quick_plan() -> Plan {
    Plan {
        pairs: 2,
        warmup: 1_000,
        requests: 20_000,
        callgrind_requests: (1_000, 500),
        ..Plan::quick()
    }
}

/// Measures and prints the table.
#[derive(Debug)]
pub struct TowerReport {
    inner: ServerReport,
    plan: Plan,
}

impl TowerReport {
    /// A report spawning `exe` (this binary) as its servers, keeping
    /// callgrind's files in `work`. `plan.only`, if set, keeps the
    /// comparisons whose name contains it.
    ///
    /// # Errors
    ///
    /// `work` or the load generator's runtime cannot be made.
    pub fn new(exe: PathBuf, work: PathBuf, plan: Plan) -> Result<Self, ReportError> {
        let inner = ServerReport::new(exe, work, plan.clone(), Implementation::Rgi)?;
        Ok(TowerReport { inner, plan })
    }

    /// Measures every comparison and returns the table.
    ///
    /// # Errors
    ///
    /// A run failed; a missed target is not an error.
    pub fn run(mut self) -> Result<String, ReportError> {
        let started = Instant::now();
        eprintln!("rgi-tower benchmark: {} comparisons", COMPARISONS.len());
        let mut rows = Vec::new();
        for comparison in &COMPARISONS {
            if let Some(only) = &self.plan.only
                && !comparison.name.contains(only.as_str())
            {
                continue;
            }
            let scenario = comparison.scenario();
            self.inner
                .set_pair(comparison.baseline, comparison.candidate);
            let mut measured = Vec::new();
            self.inner.measure_closed(&scenario, &mut measured)?;
            if self.plan.valgrind {
                self.inner.measure_instructions(&scenario, &mut measured)?;
            }
            if !comparison.judged {
                for row in &mut measured {
                    row.target = Target::Report;
                }
            }
            rows.append(&mut measured);
        }
        let mut text = String::new();
        self.write_header(&mut text);
        write_rows(&mut text, &rows, "baseline", "candidate");
        let count = |verdict| rows.iter().filter(|row| row.verdict() == verdict).count();
        let _ = writeln!(
            text,
            "\n{} targets met, {} missed; measured in {:.0} s",
            count(Verdict::Met),
            count(Verdict::Missed),
            started.elapsed().as_secs_f64()
        );
        Ok(text)
    }

    fn write_header(&self, text: &mut String) {
        let plan = &self.plan;
        let _ = writeln!(
            text,
            "rgi-tower benchmark (issue 14, item 6): each row \"candidate vs baseline\", both \
             measured in the same run; hyper = bare hyper 1.x on hyper-util's auto builder; \
             bridge = rgi-tower's AsyncService/SyncService on that same builder; rgi = \
             rgi-server; axum = an axum Router on that same builder; axum-in-rgi = that Router \
             mounted with rgi_tower::from_service in rgi-server"
        );
        let _ = writeln!(
            text,
            "loopback, {CONNECTIONS} keep-alive connections, server on a {}-worker multi-thread \
             tokio runtime, load generator on one current-thread runtime",
            plan.settings.workers
        );
        let _ = writeln!(
            text,
            "CPU: utime+stime from /proc/PID/stat over {} requests after {} warm-up, {} A/B pairs \
             interleaved, median of the pairs' ratios; instructions: callgrind, ({} - {}) \
             requests subtracted{}; allocations: the server's counting allocator, median",
            plan.requests,
            plan.warmup,
            plan.pairs,
            plan.callgrind_requests.0,
            plan.callgrind_requests.1,
            if plan.valgrind { "" } else { " (not run)" }
        );
        let _ = writeln!(text);
    }
}
