//! `rgi-bench`: the server, the load generator, the steps runner and the
//! report of the interface benchmark, in one binary so that the report can
//! run each part as its own process.
//!
//! ```text
//! rgi-bench serve <bare|sync|async> [--deadline-secs S]
//! rgi-bench load <127.0.0.1:PORT> <REQUESTS> [--deadline-secs S]
//! rgi-bench steps <sync|async|head> <STAGE> <ITERATIONS>
//! rgi-bench report [--quick] [--no-valgrind] [--work DIR]
//! rgi-bench target <IMPLEMENTATION> <APP> [--workers N] [--pool N] [--pipeline-flush on|off] [--deadline-secs S]
//! rgi-bench server-report [--quick] [--no-valgrind] [--work DIR] [--candidate NAME]
//!                         [--rate R] [--workers N] [--only TEXT]
//! rgi-bench tower-report [--quick] [--no-valgrind] [--work DIR] [--only TEXT]
//! rgi-bench simple-target <threaded|simple> [--deadline-secs S]
//! rgi-bench simple-report [--quick] [--no-strace] [--rounds N] [--requests N] [--work DIR] [--only TEXT]
//! rgi-bench mw <sync|async> <bare|header-hand|header-wrapped|count-hand|count-wrapped> <REQUESTS>
//! rgi-bench mw-report [--quick] [--no-valgrind] [--work DIR]
//! ```
//!
//! `report` is the interface benchmark (issue 9); `target` is one server
//! under test of the rgi-server benchmark (issue 10) and `server-report`
//! runs that whole benchmark; `tower-report` runs the rgi-tower benchmark
//! (issue 14) on the same targets; `simple-target` and `simple-report` are the
//! rgi-simple-server benchmark's (issue 12); `mw` drives one stack of the
//! rgi-middleware overhead benchmark (issue 15) in process and `mw-report`
//! runs that benchmark.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rgi_bench::alloc_count::{AllocCounts, CountingAlloc};
use rgi_bench::report::{Plan, Reporter};
use rgi_bench::server::{self, Mode};
use rgi_bench::server_bench::report as server_report;
use rgi_bench::server_bench::target::{self, App, Implementation, Settings};
use rgi_bench::server_bench::tower_report;
use rgi_bench::simple::{self, Candidate};
use rgi_bench::{load, mw, mw_report, simple_report, steps};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc::new();

fn counts() -> AllocCounts {
    ALLOCATOR.counts()
}

fn counts_and_live() -> (AllocCounts, u64) {
    (ALLOCATOR.counts(), ALLOCATOR.live_bytes())
}

const USAGE: &str = "usage:
  rgi-bench serve <bare|sync|async> [--deadline-secs S]
  rgi-bench load <127.0.0.1:PORT> <REQUESTS> [--deadline-secs S]
  rgi-bench steps <sync|async|head> <STAGE> <ITERATIONS>
  rgi-bench report [--quick] [--no-valgrind] [--work DIR]
  rgi-bench target <hyper|rgi|bridge|axum|axum-in-rgi> <hello-async|hello-sync|blocking|park|mixed|stream>
                   [--workers N] [--pool N] [--pipeline-flush on|off] [--deadline-secs S]
  rgi-bench server-report [--quick] [--no-valgrind] [--work DIR] [--candidate hyper|rgi]
                          [--rate R] [--workers N] [--only TEXT]
  rgi-bench tower-report [--quick] [--no-valgrind] [--work DIR] [--only TEXT]
  rgi-bench simple-target <threaded|simple> [--deadline-secs S]
  rgi-bench simple-report [--quick] [--no-strace] [--rounds N] [--requests N] [--work DIR] [--only TEXT]
  rgi-bench mw <sync|async> <bare|header-hand|header-wrapped|count-hand|count-wrapped> <REQUESTS>
  rgi-bench mw-report [--quick] [--no-valgrind] [--work DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rgi-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The value after `flag` in `args`, if the flag is there.
fn option<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|arg| arg == flag)
        .and_then(|at| args.get(at + 1))
        .map(String::as_str)
}

fn deadline(args: &[String]) -> Result<Duration, String> {
    match option(args, "--deadline-secs") {
        None => Ok(Duration::from_secs(300)),
        Some(value) => value
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("--deadline-secs {value:?} is not a number of seconds")),
    }
}

/// The server settings, [`Settings::DEFAULT`] changed by `--workers`,
/// `--pipeline-flush` and `--pool`.
fn settings(args: &[String]) -> Result<Settings, String> {
    let mut settings = Settings::DEFAULT;
    if let Some(workers) = option(args, "--workers") {
        settings.workers = workers
            .parse()
            .map_err(|_| format!("--workers {workers:?} is not a number"))?;
    }
    match option(args, "--pipeline-flush") {
        None => {}
        Some("on") => settings.pipeline_flush = true,
        Some("off") => settings.pipeline_flush = false,
        Some(other) => return Err(format!("--pipeline-flush {other:?} is not on or off")),
    }
    if let Some(pool) = option(args, "--pool") {
        settings.pool = pool
            .parse()
            .map_err(|_| format!("--pool {pool:?} is not a number"))?;
    }
    Ok(settings)
}

fn number(value: Option<&String>, what: &str) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("missing {what}\n{USAGE}"))?;
    value
        .parse()
        .map_err(|_| format!("{what} {value:?} is not a number"))
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("serve") => {
            let mode = Mode::parse(args.get(1).map_or("", String::as_str))
                .map_err(|err| err.to_string())?;
            let mut stdout = std::io::stdout();
            let summary = server::serve(mode, deadline(args)?, counts, &mut stdout)
                .map_err(|err| err.to_string())?;
            writeln!(stdout, "{}", summary.line()).map_err(|err| err.to_string())
        }
        Some("load") => {
            let addr = args
                .get(1)
                .and_then(|addr| addr.parse().ok())
                .ok_or_else(|| format!("missing or invalid address\n{USAGE}"))?;
            let requests = number(args.get(2), "request count")?;
            let summary =
                load::run(addr, requests, deadline(args)?).map_err(|err| err.to_string())?;
            println!(
                "{} requests in {:.3} s ({:.1} us each)",
                summary.requests,
                summary.elapsed.as_secs_f64(),
                summary.elapsed.as_secs_f64() * 1e6 / summary.requests.max(1) as f64
            );
            Ok(())
        }
        Some("steps") => {
            let flavor = match args.get(1).map(String::as_str) {
                Some("sync") => steps::Flavor::Sync,
                Some("async") => steps::Flavor::Async,
                Some("head") => steps::Flavor::Head,
                _ => return Err(format!("steps needs sync, async or head\n{USAGE}")),
            };
            let stage =
                usize::try_from(number(args.get(2), "stage")?).map_err(|err| err.to_string())?;
            let iterations = number(args.get(3), "iteration count")?;
            steps::run(flavor, stage, iterations).map_err(|err| err.to_string())?;
            // Whole-process counts: the report subtracts two runs, which
            // cancels start-up exactly as for instructions.
            println!("steps allocations={}", counts().allocations);
            Ok(())
        }
        Some("report") => {
            let mut plan = if args.iter().any(|arg| arg == "--quick") {
                Plan::QUICK
            } else {
                Plan::FULL
            };
            if args.iter().any(|arg| arg == "--no-valgrind") {
                plan.valgrind = false;
            }
            let exe = std::env::current_exe().map_err(|err| err.to_string())?;
            let work = option(args, "--work").map_or_else(
                || std::env::temp_dir().join(format!("rgi-bench.{}", std::process::id())),
                PathBuf::from,
            );
            let reporter = Reporter::new(exe, work, plan).map_err(|err| err.to_string())?;
            let text = reporter.run().map_err(|err| err.to_string())?;
            print!("{text}");
            Ok(())
        }
        Some("target") => {
            let implementation = Implementation::parse(args.get(1).map_or("", String::as_str))
                .map_err(|err| err.to_string())?;
            let app = App::parse(args.get(2).map_or("", String::as_str))
                .map_err(|err| err.to_string())?;
            let settings = settings(args)?;
            target::run(
                implementation,
                app,
                settings,
                deadline(args)?,
                counts_and_live,
            )
            .map_err(|err| err.to_string())
        }
        Some("server-report") => {
            let mut plan = if args.iter().any(|arg| arg == "--quick") {
                server_report::Plan::quick()
            } else {
                server_report::Plan::full()
            };
            if args.iter().any(|arg| arg == "--no-valgrind") {
                plan.valgrind = false;
            }
            if let Some(rate) = option(args, "--rate") {
                plan.rate = rate
                    .parse()
                    .map_err(|_| format!("--rate {rate:?} is not a number"))?;
            }
            plan.settings = settings(args)?;
            plan.only = option(args, "--only").map(str::to_owned);
            let candidate = match option(args, "--candidate") {
                Some(name) => Implementation::parse(name).map_err(|err| err.to_string())?,
                None => Implementation::CANDIDATE,
            };
            let exe = std::env::current_exe().map_err(|err| err.to_string())?;
            let work = option(args, "--work").map_or_else(
                || std::env::temp_dir().join(format!("rgi-bench.{}", std::process::id())),
                PathBuf::from,
            );
            let reporter = server_report::ServerReport::new(exe, work, plan, candidate)
                .map_err(|err| err.to_string())?;
            let text = reporter.run().map_err(|err| err.to_string())?;
            print!("{text}");
            Ok(())
        }
        Some("tower-report") => {
            let mut plan = if args.iter().any(|arg| arg == "--quick") {
                tower_report::quick_plan()
            } else {
                tower_report::full_plan()
            };
            if args.iter().any(|arg| arg == "--no-valgrind") {
                plan.valgrind = false;
            }
            plan.only = option(args, "--only").map(str::to_owned);
            let exe = std::env::current_exe().map_err(|err| err.to_string())?;
            let work = option(args, "--work").map_or_else(
                || std::env::temp_dir().join(format!("rgi-bench.{}", std::process::id())),
                PathBuf::from,
            );
            let report =
                tower_report::TowerReport::new(exe, work, plan).map_err(|err| err.to_string())?;
            let text = report.run().map_err(|err| err.to_string())?;
            print!("{text}");
            Ok(())
        }
        Some("simple-target") => {
            let candidate = Candidate::parse(args.get(1).map_or("", String::as_str))
                .map_err(|err| err.to_string())?;
            simple::run_target(candidate, deadline(args)?).map_err(|err| err.to_string())
        }
        Some("simple-report") => {
            let mut plan = if args.iter().any(|arg| arg == "--quick") {
                simple_report::Plan::quick()
            } else {
                simple_report::Plan::full()
            };
            if args.iter().any(|arg| arg == "--no-strace") {
                plan.strace = false;
            }
            if let Some(rounds) = option(args, "--rounds") {
                plan.rounds = rounds
                    .parse()
                    .map_err(|_| format!("--rounds {rounds:?} is not a number"))?;
            }
            if let Some(requests) = option(args, "--requests") {
                plan.requests = requests
                    .parse()
                    .map_err(|_| format!("--requests {requests:?} is not a number"))?;
                plan.pipelined_requests = plan.requests * 16;
            }
            plan.only = option(args, "--only").map(str::to_owned);
            let exe = std::env::current_exe().map_err(|err| err.to_string())?;
            let work = option(args, "--work").map_or_else(
                || std::env::temp_dir().join(format!("rgi-bench.{}", std::process::id())),
                PathBuf::from,
            );
            let report =
                simple_report::SimpleReport::new(exe, work, plan).map_err(|err| err.to_string())?;
            let text = report.run().map_err(|err| err.to_string())?;
            print!("{text}");
            Ok(())
        }
        Some("mw") => {
            let flavor = mw::Flavor::parse(args.get(1).map_or("", String::as_str))
                .map_err(|err| err.to_string())?;
            let stack = mw::Stack::parse(args.get(2).map_or("", String::as_str))
                .map_err(|err| err.to_string())?;
            let requests = number(args.get(3), "request count")?;
            mw::run(flavor, stack, requests).map_err(|err| err.to_string())?;
            // Whole-process counts: the report subtracts two runs.
            println!("mw allocations={}", counts().allocations);
            Ok(())
        }
        Some("mw-report") => {
            let mut plan = if args.iter().any(|arg| arg == "--quick") {
                mw_report::Plan::QUICK
            } else {
                mw_report::Plan::FULL
            };
            if args.iter().any(|arg| arg == "--no-valgrind") {
                plan.valgrind = false;
            }
            let exe = std::env::current_exe().map_err(|err| err.to_string())?;
            let work = option(args, "--work").map_or_else(
                || std::env::temp_dir().join(format!("rgi-bench.{}", std::process::id())),
                PathBuf::from,
            );
            let report =
                mw_report::MwReport::new(exe, work, plan).map_err(|err| err.to_string())?;
            let text = report.run().map_err(|err| err.to_string())?;
            print!("{text}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    }
}
