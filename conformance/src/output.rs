//! What the command prints and writes.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rgi_conformance::coverage;
use rgi_conformance::report;
use rgi_conformance::suite::{self, Case, Needs, ServerUnderTest};
use rgi_conformance::suite::{CaseResult, SuiteRun, Verdict};

/// Why the command could not do what it was asked.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Arguments that parse but cannot be honoured.
    Usage(String),
    /// Standard output could not be written.
    Stdout(io::Error),
    /// A report file or directory could not be written.
    Write {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message) => f.write_str(message),
            Failure::Stdout(error) => write!(f, "cannot write to standard output: {error}"),
            Failure::Write { path, error } => {
                write!(f, "cannot write {}: {error}", path.display())
            }
        }
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Failure::Stdout(error)
    }
}

/// Prints one line.
pub(crate) fn line(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    writeln!(out, "{text}")?;
    Ok(())
}

/// Prints text that already ends its lines.
pub(crate) fn text(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// What a case needs, in words.
fn needs(needs: Needs) -> String {
    match needs {
        Needs::Nothing => "-".to_owned(),
        Needs::Asynchronous => "asynchronous".to_owned(),
        Needs::Readiness => "readiness".to_owned(),
        Needs::AfterResponse => "after-response".to_owned(),
        Needs::Upgrade => "upgrade".to_owned(),
        // `Needs` may grow; its debug name is still informative.
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `--list`: one row per case.
pub(crate) fn list(out: &mut dyn Write, cases: &[Case]) -> Result<(), Failure> {
    let rows: Vec<(&str, String, String, &str)> = cases
        .iter()
        .map(|case| {
            (
                case.name(),
                needs(case.needs()),
                case.check().clauses().join(","),
                case.check().title(),
            )
        })
        .collect();
    let width = |column: fn(&(&str, String, String, &str)) -> usize, header: &str| {
        rows.iter()
            .map(column)
            .chain([header.len()])
            .max()
            .unwrap_or(0)
    };
    let name_width = width(|row| row.0.len(), "CASE");
    let needs_width = width(|row| row.1.len(), "NEEDS");
    let clauses_width = width(|row| row.2.len(), "CLAUSES");
    writeln!(
        out,
        "{:<name_width$}  {:<needs_width$}  {:<clauses_width$}  TITLE",
        "CASE", "NEEDS", "CLAUSES"
    )?;
    for (name, needs, clauses, title) in &rows {
        writeln!(
            out,
            "{name:<name_width$}  {needs:<needs_width$}  {clauses:<clauses_width$}  {title}"
        )?;
    }
    writeln!(out, "\n{} cases", rows.len())?;
    Ok(())
}

/// `--clauses`: the catalogue with how each clause is judged.
pub(crate) fn clauses(out: &mut dyn Write) -> Result<(), Failure> {
    text(out, &report::clause_table(&coverage::coverage(), None))?;
    writeln!(out, "\n{}", coverage::summary())?;
    let problems = coverage::audit();
    if !problems.is_empty() {
        writeln!(out, "\n{} catalogue problems:", problems.len())?;
        for problem in problems {
            writeln!(out, "  {problem}")?;
        }
    }
    Ok(())
}

/// One progress line per case, as it finishes.
fn progress(
    out: &mut dyn Write,
    index: usize,
    total: usize,
    result: &CaseResult,
) -> io::Result<()> {
    let width = total.to_string().len();
    writeln!(
        out,
        "[{index:>width$}/{total}] {:<4}  {} ({} ms)",
        result.verdict.label(),
        result.check.name(),
        result.duration.as_millis()
    )?;
    out.flush()
}

/// Runs `cases` against `server`, printing a line per case as it ends.
pub(crate) fn run_suite(
    out: &mut dyn Write,
    server: &dyn ServerUnderTest,
    cases: &[Case],
) -> Result<SuiteRun, Failure> {
    writeln!(
        out,
        "Running {} cases against {}",
        cases.len(),
        server.name()
    )?;
    let total = cases.len();
    let mut index = 0;
    let mut printing = Ok(());
    let mut on_result = |result: &CaseResult| {
        index += 1;
        // Keep running if stdout breaks: the report files still matter.
        if printing.is_ok() {
            printing = progress(out, index, total, result);
        }
    };
    let run = if cases.len() == suite::cases().len() {
        suite::run_with(server, &mut on_result)
    } else {
        // A filtered run: the same runner, over the chosen cases only.
        let results = cases
            .iter()
            .map(|case| {
                let result = case.run(server);
                on_result(&result);
                result
            })
            .collect();
        SuiteRun {
            server: server.name(),
            claims: server.claims(),
            results,
        }
    };
    printing?;
    Ok(run)
}

/// The claimed capabilities of a run, in words.
fn claims_list(run: &SuiteRun) -> String {
    let claims = run.claims;
    let mut list = vec!["synchronous"];
    for (claimed, name) in [
        (claims.asynchronous, "asynchronous"),
        (claims.readiness, "readiness"),
        (claims.after_response, "after-response"),
        (claims.upgrade, "upgrade"),
    ] {
        if claimed {
            list.push(name);
        }
    }
    list.join(", ")
}

/// Several servers' runs of the same cases as one table: a row per case
/// (its first clause, name, one `PASS`/`FAIL`/`SKIP` column per server,
/// title), each server's failure or skip reason indented below the row,
/// then one summary line per server.
///
/// The runs must hold the same cases in the same order, as `run_suite`
/// makes them; a run with a different case in a row is shown as `?` there
/// rather than misattributed.
pub(crate) fn side_by_side(runs: &[SuiteRun]) -> String {
    use std::fmt::Write as _;

    let mut out = String::new();
    let _ = writeln!(out, "RGI server suite: {} servers", runs.len());
    for run in runs {
        let _ = writeln!(out, "  {} (claims: {})", run.server, claims_list(run));
    }
    let Some(first) = runs.first() else {
        return out;
    };
    let rows: Vec<(String, &str, &str)> = first
        .results
        .iter()
        .map(|result| {
            let clauses = result.check.clauses();
            let shown = clauses.first().copied().unwrap_or("-");
            let clause = if clauses.len() > 1 {
                format!("{shown} +{}", clauses.len() - 1)
            } else {
                shown.to_owned()
            };
            (clause, result.check.name(), result.check.title())
        })
        .collect();
    let clause_width = rows
        .iter()
        .map(|row| row.0.chars().count())
        .chain(["CLAUSE".len()])
        .max()
        .unwrap_or(6);
    let case_width = rows
        .iter()
        .map(|row| row.1.chars().count())
        .chain(["CASE".len()])
        .max()
        .unwrap_or(4);
    let columns: Vec<usize> = runs
        .iter()
        .map(|run| run.server.chars().count().max(4))
        .collect();
    let _ = write!(
        out,
        "\n{:<clause_width$}  {:<case_width$}",
        "CLAUSE", "CASE"
    );
    for (run, width) in runs.iter().zip(&columns) {
        let _ = write!(out, "  {:<width$}", run.server);
    }
    let _ = writeln!(out, "  TITLE");
    for (index, (clause, name, title)) in rows.iter().enumerate() {
        let _ = write!(out, "{clause:<clause_width$}  {name:<case_width$}");
        let mut details = Vec::new();
        for (run, width) in runs.iter().zip(&columns) {
            let result = run
                .results
                .get(index)
                .filter(|result| result.check.name() == *name);
            let label = result.map_or("?", |result| result.verdict.label());
            let _ = write!(out, "  {label:<width$}");
            match result.map(|result| &result.verdict) {
                Some(Verdict::Failed { clause, reason }) => {
                    details.push(format!("{}: {clause}: {reason}", run.server));
                }
                Some(Verdict::Skipped { reason }) => {
                    details.push(format!("{}: skipped: {reason}", run.server));
                }
                Some(Verdict::Passed) | None => {}
            }
        }
        let _ = writeln!(out, "  {title}");
        for line in details.iter().flat_map(|detail| detail.lines()) {
            let _ = writeln!(out, "    {line}");
        }
    }
    let _ = writeln!(out);
    for run in runs {
        let tally = run.tally();
        let _ = writeln!(
            out,
            "{}: {} passed, {} failed, {} skipped, of {} cases; {} clauses judged",
            run.server,
            tally.passed,
            tally.failed,
            tally.skipped,
            tally.cases,
            tally.clauses_judged
        );
    }
    out
}

/// Writes `contents` to `path` and says so.
pub(crate) fn write_file(out: &mut dyn Write, path: &Path, contents: &str) -> Result<(), Failure> {
    std::fs::write(path, contents).map_err(|error| Failure::Write {
        path: path.to_owned(),
        error,
    })?;
    writeln!(out, "wrote {}", path.display())?;
    Ok(())
}

/// A file name for a server: its name with every run of characters other
/// than letters, digits, `.` and `_` made one `-`, never empty, never
/// hidden and never a path.
pub(crate) fn file_stem(server: &str) -> String {
    let mut stem = String::new();
    for c in server.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
            stem.push(c);
        } else if !stem.ends_with('-') {
            stem.push('-');
        }
    }
    let stem = stem.trim_start_matches(['.', '-']).trim_end_matches('-');
    if stem.is_empty() {
        "server".to_owned()
    } else {
        stem.to_owned()
    }
}

/// `--report-dir`: `<server>.json`, `.xml` and `.txt`.
pub(crate) fn write_report_dir(
    out: &mut dyn Write,
    dir: &Path,
    run: &SuiteRun,
) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|error| Failure::Write {
        path: dir.to_owned(),
        error,
    })?;
    let stem = file_stem(&run.server);
    write_file(out, &dir.join(format!("{stem}.json")), &report::json(run))?;
    write_file(out, &dir.join(format!("{stem}.xml")), &report::junit(run))?;
    write_file(out, &dir.join(format!("{stem}.txt")), &report::table(run))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::file_stem;

    #[test]
    fn file_stems_are_safe_names() {
        assert_eq!(file_stem("toy"), "toy");
        assert_eq!(file_stem("toy server/1.0"), "toy-server-1.0");
        assert_eq!(
            file_stem("toy (fault: LeaksUnreadBody)"),
            "toy-fault-LeaksUnreadBody"
        );
        assert_eq!(file_stem("../../etc/passwd"), "etc-passwd");
        assert_eq!(file_stem(".hidden"), "hidden");
        assert_eq!(file_stem(""), "server");
        assert_eq!(file_stem("..."), "server");
    }
}
