//! `rgi-conformance`: runs the RGI server suite against every reference
//! server of the workspace and writes its reports.
//!
//! The reference servers are `rgi-server` and `rgi-simple-server` (as
//! their `conformance::SuiteServer`s configure them), judged one after the
//! other and shown in one table with a column per server; `--toy` judges
//! the kit's own toy server instead, and `--toy-fault` the toy with one
//! deliberate fault. Exit status: 0 when
//! no case failed, 1 when one did, 2 when the command could not be carried
//! out as given (a usage error, a filter that matches nothing, a report that
//! could not be written).

mod output;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rgi_conformance::report;
use rgi_conformance::suite::{self, Case, ServerUnderTest};
use rgi_server::conformance::SuiteServer;
use rgi_simple_server::conformance::SuiteServer as SimpleSuiteServer;
use rgi_toy_server::{FAULTS, ToyServer};

use crate::output::Failure;

/// Runs the RGI server suite and writes its reports.
#[derive(Debug, Parser)]
#[command(
    name = "rgi-conformance",
    version,
    after_help = "By default the suite judges the workspace's reference servers, rgi-server and rgi-simple-server,\n\
                  and prints one table with a column per server.\n\
                  Exit status: 0 when no case failed, 1 when a case failed, 2 when the command could not be \
                  carried out as given (usage errors, a filter that matches nothing, an unwritable report)."
)]
struct Cli {
    /// Write the JSON report of the run to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the JUnit XML report of the run to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write SERVER.json, SERVER.xml and SERVER.txt for every server
    /// into DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Run (or list) only the cases whose name or clause IDs contain
    /// SUBSTRING, ignoring case.
    #[arg(long, value_name = "SUBSTRING")]
    filter: Option<String>,
    /// List the cases with their clauses and needs, and run nothing.
    #[arg(long, conflicts_with_all = ["json", "junit", "report_dir", "clauses"])]
    list: bool,
    /// Print every clause of the spec with how the kit judges it, and run
    /// nothing.
    #[arg(long, conflicts_with_all = ["json", "junit", "report_dir", "filter", "toy_fault"])]
    clauses: bool,
    /// Judge the toy server with one deliberate fault switched on, named
    /// as the variants of `rgi_toy_server::Fault` are (for example
    /// `LeaksUnreadBody`), to see how the suite reports a broken server.
    #[arg(long, value_name = "FAULT", conflicts_with = "list")]
    toy_fault: Option<String>,
    /// Judge the kit's toy server (without a fault) instead of the
    /// reference servers: the suite at work on a server built to be read.
    #[arg(long, conflicts_with_all = ["list", "toy_fault"])]
    toy: bool,
    /// Print panic messages on standard error. The suite's probes panic on
    /// purpose to see whether the server contains it, so by default panics
    /// are not printed; a case that fails reports what happened itself.
    #[arg(long)]
    show_panics: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version print and exit 0; usage errors exit 2.
        Err(error) => error.exit(),
    };
    let mut out = io::stdout().lock();
    match run(&cli, &mut out) {
        Ok(code) => code,
        Err(Failure::Stdout(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::from(2)
        }
        Err(failure) => {
            let _ = out.flush();
            eprintln!("rgi-conformance: {failure}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli, out: &mut dyn Write) -> Result<ExitCode, Failure> {
    if cli.clauses {
        output::clauses(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cases = selected(cli.filter.as_deref())?;
    if cli.list {
        output::list(out, &cases)?;
        return Ok(ExitCode::SUCCESS);
    }

    let servers = servers(out, cli.toy, cli.toy_fault.as_deref())?;
    if !cli.show_panics {
        // The probes' deliberate panics are caught by the server under test
        // (RGI-FAIL-2); printing each with its backtrace would bury the
        // results. A panic that matters fails a case, whose reason says so.
        std::panic::set_hook(Box::new(|_| {}));
    }
    if servers.len() > 1 && (cli.json.is_some() || cli.junit.is_some()) {
        return Err(Failure::Usage(
            "--json and --junit name one file, and there is more than one server: use --report-dir"
                .to_owned(),
        ));
    }
    let mut failed = false;
    let mut runs = Vec::with_capacity(servers.len());
    for server in &servers {
        let run = output::run_suite(out, server.as_ref(), &cases)?;
        if servers.len() == 1 {
            output::line(out, "")?;
            output::text(out, &report::table(&run))?;
        }
        failed |= run.has_failures();
        if let Some(path) = &cli.json {
            output::write_file(out, path, &report::json(&run))?;
        }
        if let Some(path) = &cli.junit {
            output::write_file(out, path, &report::junit(&run))?;
        }
        if let Some(dir) = &cli.report_dir {
            output::write_report_dir(out, dir, &run)?;
        }
        runs.push(run);
    }
    if runs.len() > 1 {
        // One table, a column per server: the servers side by side, case
        // by case.
        output::line(out, "")?;
        output::text(out, &output::side_by_side(&runs))?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The suite's cases that `filter` selects (all without one).
fn selected(filter: Option<&str>) -> Result<Vec<Case>, Failure> {
    let cases = suite::cases();
    let Some(filter) = filter else {
        return Ok(cases);
    };
    let needle = filter.to_lowercase();
    let matches = |text: &str| text.to_lowercase().contains(&needle);
    let chosen: Vec<Case> = cases
        .into_iter()
        .filter(|case| matches(case.name()) || case.check().clauses().iter().any(|id| matches(id)))
        .collect();
    if chosen.is_empty() {
        return Err(Failure::Usage(format!(
            "no case matches --filter {filter:?} (see --list)"
        )));
    }
    Ok(chosen)
}

/// The servers to judge: every reference server of the workspace; or the
/// toy server, announced as such, with `toy`; or the toy server with the
/// deliberate fault called `fault`.
fn servers(
    out: &mut dyn Write,
    toy: bool,
    fault: Option<&str>,
) -> Result<Vec<Box<dyn ServerUnderTest>>, Failure> {
    if let Some(name) = fault {
        let Some((fault, case, clause)) = FAULTS.iter().find(|(fault, ..)| fault.name() == name)
        else {
            let names: Vec<String> = FAULTS.iter().map(|(fault, ..)| fault.name()).collect();
            return Err(Failure::Usage(format!(
                "--toy-fault {name:?} is not a fault of the toy server; the faults are: {}",
                names.join(", ")
            )));
        };
        output::line(
            out,
            &format!(
                "NOTE: judging the toy server with the deliberate fault {name}: it breaks {clause}, which case {case} catches."
            ),
        )?;
        let toy: Box<dyn ServerUnderTest> = Box::new(ToyServer::with_fault(*fault));
        return Ok(vec![toy]);
    }
    if toy {
        output::line(
            out,
            "NOTE: judging the kit's own toy server (rgi_toy_server::ToyServer): this shows the suite at work, not a real server's conformance.",
        )?;
        let toy: Box<dyn ServerUnderTest> = Box::new(ToyServer::new());
        return Ok(vec![toy]);
    }
    // The reference servers of the workspace, each configured as its own
    // suite test configures it.
    let reference: Box<dyn ServerUnderTest> = Box::new(SuiteServer::new());
    let simple: Box<dyn ServerUnderTest> = Box::new(SimpleSuiteServer::new());
    Ok(vec![reference, simple])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn list_and_clauses_refuse_report_files() {
        for args in [
            ["rgi-conformance", "--list", "--json", "x"],
            ["rgi-conformance", "--clauses", "--junit", "x"],
            ["rgi-conformance", "--clauses", "--filter", "x"],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }
}
