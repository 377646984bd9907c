//! The `rgi-conformance` binary, run as a user runs it: listing, filtered
//! runs against the toy server (conforming and with a deliberate fault),
//! the report files, the clause table and the exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rgi_conformance::{catalogue, coverage, suite};

/// A case of the synchronous suite that the conforming toy passes, and the
/// fault of the toy that this case catches.
const CASE: &str = "rgi_fail_4_no_application_detail_in_error_response";
const FAULT: &str = "LeaksErrorDetail";

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rgi-conformance"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "rgi-conformance-cli-{label}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn list_shows_every_case_with_its_needs_and_clauses() {
    let output = cli(&["--list"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("CASE "), "{}", lines[0]);
    assert!(lines[0].contains(" NEEDS ") && lines[0].contains(" CLAUSES "));
    let cases = suite::cases();
    assert_eq!(
        lines.last().copied(),
        Some(format!("{} cases", cases.len()).as_str())
    );
    for case in &cases {
        let row = lines
            .iter()
            .find(|line| line.starts_with(&format!("{} ", case.name())))
            .unwrap_or_else(|| panic!("{} is not listed", case.name()));
        assert!(row.contains(&case.check().clauses().join(",")), "{row}");
        assert!(row.ends_with(case.check().title()), "{row}");
    }
    // Listing runs nothing, so it says nothing about servers.
    assert!(!text.contains("NOTE"));
}

#[test]
fn list_with_a_filter_shows_only_matching_cases() {
    let output = cli(&["--list", "--filter", "RGI-CL-3"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    let listed: Vec<&str> = text
        .lines()
        .skip(1)
        .take_while(|line| !line.is_empty())
        .collect();
    assert!(!listed.is_empty());
    let expected: Vec<String> = suite::cases()
        .into_iter()
        .filter(|case| {
            case.check()
                .clauses()
                .iter()
                .any(|id| id.to_lowercase().contains("rgi-cl-3"))
        })
        .map(|case| case.name().to_owned())
        .collect();
    assert_eq!(listed.len(), expected.len(), "{text}");
    for line in listed {
        assert!(line.contains("RGI-CL-3"), "{line}");
    }
}

#[test]
fn by_default_both_reference_servers_are_judged_in_one_table() {
    let output = cli(&["--filter", CASE]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(!text.contains("toy"), "{text}");
    let version = env!("CARGO_PKG_VERSION");
    let server = format!("rgi-server {version}");
    let simple = format!("rgi-simple-server {version}");
    assert!(
        text.starts_with(&format!("Running 1 cases against {server}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nRunning 1 cases against {simple}\n")),
        "{text}"
    );
    assert_eq!(
        text.matches(&format!("[1/1] PASS  {CASE} (")).count(),
        2,
        "{text}"
    );
    // One table: a header with a column per server, one row with a result
    // in each, one summary line per server.
    assert!(text.contains("RGI server suite: 2 servers\n"), "{text}");
    let header = text
        .lines()
        .find(|line| line.starts_with("CLAUSE "))
        .unwrap_or_else(|| panic!("no table header in {text}"));
    let at_server = header.find(&server).expect("a column for rgi-server");
    let at_simple = header
        .find(&simple)
        .expect("a column for rgi-simple-server");
    assert!(
        at_server < at_simple && header.ends_with("  TITLE"),
        "{header}"
    );
    let row = text
        .lines()
        .find(|line| line.starts_with("RGI-FAIL-4 "))
        .unwrap_or_else(|| panic!("no row for the case in {text}"));
    assert_eq!(row.get(at_server..at_server + 4), Some("PASS"), "{row}");
    assert_eq!(row.get(at_simple..at_simple + 4), Some("PASS"), "{row}");
    for name in [&server, &simple] {
        assert!(
            text.contains(&format!(
                "\n{name}: 1 passed, 0 failed, 0 skipped, of 1 cases; 1 clauses judged\n"
            )),
            "{text}"
        );
    }
}

#[test]
fn a_filtered_run_of_the_toy_announces_it_prints_progress_and_writes_reports() {
    let dir = temp_dir("run");
    let json = dir.join("run.json");
    let junit = dir.join("run.xml");
    let output = cli(&[
        "--toy",
        "--filter",
        CASE,
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NOTE: judging the kit's own toy server"),
        "{text}"
    );
    assert!(text.contains("Running 1 cases against toy\n"), "{text}");
    assert!(text.contains(&format!("[1/1] PASS  {CASE} (")), "{text}");
    assert!(
        text.contains(&format!("\nRGI-FAIL-4  {CASE}  PASS  ")),
        "{text}"
    );
    assert!(
        text.contains("\n1 passed, 0 failed, 0 skipped, of 1 cases; 1 clauses judged\n"),
        "{text}"
    );
    assert!(text.contains(&format!("wrote {}", json.display())));

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["format"], "rgi-conformance-suite/1");
    assert_eq!(report["server"], "toy");
    assert_eq!(report["summary"]["cases"], 1);
    assert_eq!(report["results"][0]["case"], CASE);
    assert_eq!(report["results"][0]["result"], "passed");

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"<testsuite name="toy" tests="1" failures="0" errors="0" skipped="0""#));
    assert!(xml.contains(&format!(r#"<testcase name="{CASE}" classname="toy""#)));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_broken_server_fails_with_exit_status_1_and_the_clause_in_every_report() {
    let dir = temp_dir("fault");
    let output = cli(&[
        "--toy-fault",
        FAULT,
        "--filter",
        CASE,
        "--report-dir",
        dir.to_str().unwrap(),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}{}", stderr(&output));
    assert!(text.starts_with(&format!(
        "NOTE: judging the toy server with the deliberate fault {FAULT}"
    )));
    assert!(text.contains(&format!("[1/1] FAIL  {CASE} (")), "{text}");
    assert!(text.contains("\n    RGI-FAIL-4: "), "{text}");
    assert!(
        text.contains("\n0 passed, 1 failed, 0 skipped, of 1 cases"),
        "{text}"
    );

    let stem = "toy-fault-LeaksErrorDetail";
    let table = std::fs::read_to_string(dir.join(format!("{stem}.txt"))).unwrap();
    assert!(
        text.contains(&table),
        "the .txt report is the printed table"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{stem}.json"))).unwrap())
            .unwrap();
    assert_eq!(report["summary"]["failed"], 1);
    assert_eq!(report["results"][0]["clause"], "RGI-FAIL-4");
    let xml = std::fs::read_to_string(dir.join(format!("{stem}.xml"))).unwrap();
    assert!(xml.contains(r#"failures="1""#));
    assert!(xml.contains(r#"<failure message="RGI-FAIL-4" type="RGI-FAIL-4">"#));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn clauses_prints_every_clause_and_the_summary() {
    let output = cli(&["--clauses"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for clause in catalogue::clauses() {
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("{} ", clause.id))),
            "{} missing",
            clause.id
        );
    }
    assert!(text.contains(&coverage::summary().to_string()));
}

#[test]
fn usage_errors_exit_with_status_2_and_a_message() {
    for (args, message) in [
        (&["--no-such-option"][..], "--no-such-option"),
        (
            &["--filter", "no-case-has-this-name"][..],
            "no case matches",
        ),
        (&["--list", "--json", "x.json"][..], "cannot be used with"),
        (&["--clauses", "--filter", "x"][..], "cannot be used with"),
        (
            &["--toy-fault", "NotAFault", "--filter", CASE][..],
            "LeaksUnreadBody",
        ),
        (
            &["--filter", CASE, "--json", "x.json"][..],
            "more than one server",
        ),
    ] {
        let output = cli(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            !stdout(&output).contains("Running"),
            "{args:?} ran the suite"
        );
    }
}

#[test]
fn an_unwritable_report_is_an_error_after_the_run() {
    let dir = temp_dir("unwritable");
    let missing = dir.join("no-such-dir").join("run.json");
    // One server (`--json` names one file, so it takes one server's run).
    let output = cli(&[
        "--toy",
        "--filter",
        CASE,
        "--json",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).contains("[1/1] PASS"), "not after the run");
    assert!(
        stderr(&output).contains("cannot write"),
        "{}",
        stderr(&output)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn help_exits_0() {
    let output = cli(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for option in [
        "--json",
        "--junit",
        "--report-dir",
        "--filter",
        "--list",
        "--clauses",
    ] {
        assert!(text.contains(option), "{option} missing from --help");
    }
}

#[test]
fn deliberate_panics_of_the_probes_are_printed_only_when_asked() {
    let quiet = cli(&["--filter", "rgi_fail_2"]);
    assert_eq!(quiet.status.code(), Some(0), "{}", stdout(&quiet));
    assert_eq!(stderr(&quiet), "");
    let loud = cli(&["--filter", "rgi_fail_2", "--show-panics"]);
    assert_eq!(loud.status.code(), Some(0));
    assert!(stderr(&loud).contains("panicked"), "{}", stderr(&loud));
}
