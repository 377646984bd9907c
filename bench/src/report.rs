//! The one-command report: every mode measured in one run, printed side by
//! side with ratios against bare hyper.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::load;
use crate::server::{Mode, ServeSummary};
use crate::steps::{self, Flavor};

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Requests of the larger and the smaller callgrind run.
    pub requests: (u64, u64),
    /// Requests of the native CPU-time run.
    pub cpu_requests: u64,
    /// Iterations of the larger and the smaller steps run.
    pub iterations: (u64, u64),
    /// Whether to run under callgrind at all.
    pub valgrind: bool,
}

impl Plan {
    /// The full measurement of issue 9, section 4.
    pub const FULL: Plan = Plan {
        requests: (4_000, 2_000),
        cpu_requests: 20_000,
        iterations: (4_000, 2_000),
        valgrind: true,
    };

    /// A check that everything works, in well under a minute.
    pub const QUICK: Plan = Plan {
        requests: (200, 100),
        cpu_requests: 1_000,
        iterations: (200, 100),
        valgrind: true,
    };
}

/// Why the report could not be produced (a missed target is not one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A child process could not be started or read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// A child process misbehaved.
    #[error("{0}")]
    Child(String),
    /// The load generator failed.
    #[error("load generator: {0}")]
    Load(#[from] load::LoadError),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ReportError {
    let what = what.into();
    move |source| ReportError::Io { what, source }
}

/// One run of a child under callgrind (or natively).
#[derive(Debug, Clone, Copy)]
struct Counted {
    instructions: Option<u64>,
    allocations: u64,
    reallocations: u64,
}

/// What was measured for one mode.
#[derive(Debug, Clone, Copy)]
struct ModeResult {
    instructions: Option<f64>,
    allocations: f64,
    reallocations: f64,
    cpu_micros: f64,
    wall_micros: f64,
}

/// Runs the child processes that measure, and prints the table.
#[derive(Debug)]
pub struct Reporter {
    exe: PathBuf,
    work: PathBuf,
    plan: Plan,
    ticks_per_second: u64,
}

/// How long any one child may run.
const CHILD_DEADLINE: Duration = Duration::from_secs(300);

impl Reporter {
    /// A reporter that spawns `exe` (this binary) and keeps callgrind's
    /// files in `work`.
    ///
    /// # Errors
    ///
    /// `work` cannot be created.
    pub fn new(exe: PathBuf, work: PathBuf, plan: Plan) -> Result<Self, ReportError> {
        std::fs::create_dir_all(&work).map_err(io_error(format!("creating {}", work.display())))?;
        let ticks_per_second = crate::server_bench::procfs::ticks_per_second();
        Ok(Reporter {
            exe,
            work,
            plan,
            ticks_per_second,
        })
    }

    fn command(&self, valgrind_out: Option<&Path>, args: &[&str]) -> Command {
        crate::child::command(&self.exe, valgrind_out, args)
    }

    /// Runs one server in `mode`, drives `requests` through it, returns its
    /// summary and the client's.
    fn server_run(
        &self,
        mode: Mode,
        requests: u64,
        valgrind: bool,
    ) -> Result<(Counted, ServeSummary, load::LoadSummary), ReportError> {
        let out = self
            .work
            .join(format!("callgrind.{}.{requests}", mode.name()));
        let deadline = CHILD_DEADLINE.as_secs().to_string();
        let mut child = self
            .command(
                valgrind.then_some(out.as_path()),
                &["serve", mode.name(), "--deadline-secs", &deadline],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io_error(format!("starting the {} server", mode.name())))?;
        let result = drive(&mut child, requests);
        let (summary, client) = match result {
            Ok(done) => done,
            Err(err) => {
                // Our own child: end it rather than leave it waiting.
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        if summary.served != requests {
            return Err(ReportError::Child(format!(
                "the {} server answered {} requests, not {requests}",
                mode.name(),
                summary.served
            )));
        }
        let instructions = if valgrind {
            Some(callgrind_total(&out)?)
        } else {
            None
        };
        Ok((
            Counted {
                instructions,
                allocations: summary.allocations.allocations,
                reallocations: summary.allocations.reallocations,
            },
            summary,
            client,
        ))
    }

    fn measure_mode(&self, mode: Mode) -> Result<ModeResult, ReportError> {
        let (large, small) = self.plan.requests;
        let (a, _, _) = self.server_run(mode, large, self.plan.valgrind)?;
        let (b, _, _) = self.server_run(mode, small, self.plan.valgrind)?;
        let (_, native, client) = self.server_run(mode, self.plan.cpu_requests, false)?;
        let span = (large - small) as f64;
        let cpu_seconds = native.cpu_ticks as f64 / self.ticks_per_second as f64;
        Ok(ModeResult {
            instructions: a
                .instructions
                .zip(b.instructions)
                .map(|(a, b)| (a as f64 - b as f64) / span),
            allocations: (a.allocations as f64 - b.allocations as f64) / span,
            reallocations: (a.reallocations as f64 - b.reallocations as f64) / span,
            cpu_micros: cpu_seconds * 1e6 / native.served as f64,
            wall_micros: client.elapsed.as_secs_f64() * 1e6 / client.requests as f64,
        })
    }

    /// Runs one steps child; returns its instructions (under callgrind) and
    /// its whole-process allocations.
    fn steps_run(
        &self,
        flavor: Flavor,
        stage: usize,
        iterations: u64,
    ) -> Result<(Option<u64>, u64), ReportError> {
        let name = flavor_name(flavor);
        let out = self
            .work
            .join(format!("callgrind.steps.{name}.{stage}.{iterations}"));
        let output = self
            .command(
                self.plan.valgrind.then_some(out.as_path()),
                &["steps", name, &stage.to_string(), &iterations.to_string()],
            )
            .stdin(Stdio::null())
            .output()
            .map_err(io_error(format!("running steps {name} {stage}")))?;
        if !output.status.success() {
            return Err(ReportError::Child(format!(
                "steps {name} {stage} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let allocations = text
            .lines()
            .find_map(|line| line.strip_prefix("steps allocations="))
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| ReportError::Child(format!("steps printed no count: {text}")))?;
        let instructions = if self.plan.valgrind {
            Some(callgrind_total(&out)?)
        } else {
            None
        };
        Ok((instructions, allocations))
    }

    /// Per-stage (instructions, allocations) per iteration.
    fn measure_steps(&self, flavor: Flavor) -> Result<Vec<(Option<f64>, f64)>, ReportError> {
        let (large, small) = self.plan.iterations;
        let span = (large - small) as f64;
        let stages = if flavor == Flavor::Head {
            steps::HEAD_STAGES.len()
        } else {
            steps::STAGES.len()
        };
        (0..stages)
            .map(|stage| {
                let (a, a_allocations) = self.steps_run(flavor, stage, large)?;
                let (b, b_allocations) = self.steps_run(flavor, stage, small)?;
                let instructions = a.zip(b).map(|(a, b)| (a as f64 - b as f64) / span);
                let allocations = (a_allocations as f64 - b_allocations as f64) / span;
                Ok((instructions, allocations))
            })
            .collect()
    }

    /// Measures everything and returns the report's text.
    ///
    /// # Errors
    ///
    /// A child failed or misbehaved; a missed target is not an error.
    pub fn run(&self) -> Result<String, ReportError> {
        let started = Instant::now();
        let mut modes = Vec::new();
        for mode in Mode::ALL {
            eprintln!("measuring {} ...", mode.label());
            modes.push((mode, self.measure_mode(mode)?));
        }
        eprintln!("measuring the RGI steps ...");
        let sync_steps = self.measure_steps(Flavor::Sync)?;
        let async_steps = self.measure_steps(Flavor::Async)?;
        let head_steps = self.measure_steps(Flavor::Head)?;
        let mut text = String::new();
        self.write_table(&mut text, &modes);
        write_steps(&mut text, &sync_steps, &async_steps);
        write_validation(&mut text, &head_steps);
        let _ = writeln!(
            text,
            "\n(measured in {:.0} s)",
            started.elapsed().as_secs_f64()
        );
        Ok(text)
    }

    fn write_table(&self, text: &mut String, modes: &[(Mode, ModeResult)]) {
        let plan = self.plan;
        let _ = writeln!(
            text,
            "RGI interface benchmark: GET {} answered with 13 bytes, one keep-alive \
             connection, hyper 1.x http1 on a current-thread tokio runtime",
            crate::apps::HELLO_PATH
        );
        if plan.valgrind {
            let _ = writeln!(
                text,
                "instructions: callgrind, ({} - {}) requests subtracted; allocations: counting \
                 allocator, same runs; CPU: utime+stime over {} requests, no valgrind",
                plan.requests.0, plan.requests.1, plan.cpu_requests
            );
        } else {
            let _ = writeln!(
                text,
                "instructions: not measured (no valgrind); allocations: counting allocator, \
                 ({} - {}) requests subtracted; CPU: utime+stime over {} requests",
                plan.requests.0, plan.requests.1, plan.cpu_requests
            );
        }
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "{:<18} {:>10} {:>7} {:>11} {:>7} {:>13} {:>11} {:>7} {:>12}",
            "mode",
            "instr/req",
            "x hyper",
            "allocs/req",
            "+ hyper",
            "reallocs/req",
            "CPU us/req",
            "x hyper",
            "wall us/req"
        );
        let Some((_, bare)) = modes.iter().find(|(mode, _)| *mode == Mode::Bare) else {
            return;
        };
        for (mode, result) in modes {
            let instructions = result
                .instructions
                .map_or_else(|| "n/a".to_owned(), |value| format!("{value:.0}"));
            let instruction_ratio = result.instructions.zip(bare.instructions).map_or_else(
                || "n/a".to_owned(),
                |(value, base)| format!("{:.2}", value / base),
            );
            let _ = writeln!(
                text,
                "{:<18} {:>10} {:>7} {:>11.2} {:>+7.2} {:>13.2} {:>11.2} {:>7.2} {:>12.2}",
                mode.label(),
                instructions,
                instruction_ratio,
                result.allocations,
                result.allocations - bare.allocations,
                result.reallocations,
                result.cpu_micros,
                result.cpu_micros / bare.cpu_micros,
                result.wall_micros
            );
        }
        let _ = writeln!(
            text,
            "\ntargets (issue 9, section 4): allocations at most +1 (sync inline) and +2 \
             (async) over bare hyper; instructions at most 1.10x bare hyper (aim 1.05x)"
        );
        for (mode, result) in modes {
            let allowed = match mode {
                Mode::Bare => continue,
                Mode::Sync => 1.0,
                Mode::Async => 2.0,
            };
            let extra = result.allocations - bare.allocations;
            // Judged on the figure as printed (two decimals): a buffer that
            // grows once in a few thousand requests shows as +0.0005, which
            // is not an allocation per request.
            let shown = (extra * 100.0).round() / 100.0;
            let alloc_verdict = if shown <= allowed { "met" } else { "MISSED" };
            let instr_verdict = match result.instructions.zip(bare.instructions) {
                Some((value, base)) if value / base <= 1.10 => {
                    format!("met ({:.2}x)", value / base)
                }
                Some((value, base)) => format!("MISSED ({:.2}x > 1.10x)", value / base),
                None => "not measured".to_owned(),
            };
            let _ = writeln!(
                text,
                "  {:<18} allocations {alloc_verdict} ({extra:+.2}, allowed +{allowed:.0}); \
                 instructions {instr_verdict}",
                mode.label()
            );
        }
    }
}

fn write_steps(
    text: &mut String,
    sync: &[(Option<f64>, f64)],
    asynchronous: &[(Option<f64>, f64)],
) {
    let _ = writeln!(
        text,
        "\nper-step cost of the RGI modes (each step alone, in process; a stage runs its \
         step and every step above it, the step's cost is the difference)"
    );
    let _ = writeln!(
        text,
        "{:<48} {:>11} {:>11} {:>11} {:>11}",
        "step", "sync instr", "sync allocs", "async instr", "async allocs"
    );
    let instr = |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"));
    let mut totals = [(Some(0.0), 0.0); 2];
    for (stage, name) in steps::STAGES.iter().enumerate() {
        let mut cells = Vec::new();
        for (flavor, series) in [sync, asynchronous].into_iter().enumerate() {
            let (instructions, allocations) = series[stage];
            let (step_instructions, step_allocations) = if stage == 0 {
                (instructions, allocations)
            } else {
                let (before_instructions, before_allocations) = series[stage - 1];
                (
                    instructions.zip(before_instructions).map(|(a, b)| a - b),
                    allocations - before_allocations,
                )
            };
            if stage > 0 {
                totals[flavor].0 = totals[flavor].0.zip(step_instructions).map(|(a, b)| a + b);
                totals[flavor].1 += step_allocations;
            }
            cells.push((step_instructions, step_allocations));
        }
        let _ = writeln!(
            text,
            "{:<48} {:>11} {:>11.2} {:>11} {:>11.2}",
            name,
            instr(cells[0].0),
            cells[0].1,
            instr(cells[1].0),
            cells[1].1
        );
    }
    let _ = writeln!(
        text,
        "{:<48} {:>11} {:>11.2} {:>11} {:>11.2}",
        "all RGI steps (sum of the rows after the baseline)",
        instr(totals[0].0),
        totals[0].1,
        instr(totals[1].0),
        totals[1].1
    );
}

/// The validation row: the difference of the two head stages, the same in
/// both modes (the applications share one handler).
fn write_validation(text: &mut String, head: &[(Option<f64>, f64)]) {
    let (Some(&(built, built_allocations)), Some(&(validated, validated_allocations))) =
        (head.first(), head.get(1))
    else {
        return;
    };
    let instructions = validated
        .zip(built)
        .map_or_else(|| "n/a".to_owned(), |(a, b)| format!("{:.0}", a - b));
    let allocations = validated_allocations - built_allocations;
    let _ = writeln!(
        text,
        "{:<48} {:>11} {:>11.2} {:>11} {:>11.2}",
        steps::HEAD_STAGES[1],
        instructions,
        allocations,
        instructions,
        allocations
    );
}

fn flavor_name(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Sync => "sync",
        Flavor::Async => "async",
        Flavor::Head => "head",
    }
}

/// Reads the server's address, drives the load, waits for the server to
/// exit and reads its summary.
fn drive(
    child: &mut Child,
    requests: u64,
) -> Result<(ServeSummary, load::LoadSummary), ReportError> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ReportError::Child("the server's output is not piped".to_owned()))?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = read_address(&mut lines)?;
    let client = load::run(addr, requests, CHILD_DEADLINE)?;
    let summary = lines
        .map_while(Result::ok)
        .find_map(|line| ServeSummary::parse(&line))
        .ok_or_else(|| ReportError::Child("the server printed no summary".to_owned()))?;
    let status = child.wait().map_err(io_error("waiting for the server"))?;
    if !status.success() {
        return Err(ReportError::Child(format!(
            "the server exited with {status}"
        )));
    }
    Ok((summary, client))
}

fn read_address(
    lines: &mut std::io::Lines<BufReader<ChildStdout>>,
) -> Result<SocketAddr, ReportError> {
    let line = lines
        .next()
        .ok_or_else(|| ReportError::Child("the server exited before listening".to_owned()))?
        .map_err(io_error("reading the server's address"))?;
    crate::child::parse_listening(&line)
        .ok_or_else(|| ReportError::Child(format!("unexpected server output {line:?}")))
}

/// The total instruction count callgrind wrote to `path`.
fn callgrind_total(path: &Path) -> Result<u64, ReportError> {
    crate::child::callgrind_total(path).map_err(io_error(format!("reading {}", path.display())))
}
