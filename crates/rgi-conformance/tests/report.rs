//! The renderings of a suite run: the human table, JSON read back, JUnit XML
//! checked for well-formedness by a small parser with hostile strings, and
//! the clause table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use rgi_conformance::Check;
use rgi_conformance::catalogue::Judged;
use rgi_conformance::coverage;
use rgi_conformance::report;
use rgi_conformance::suite::Claims;
use rgi_conformance::suite::{CaseResult, SuiteRun, Tally, Verdict};
use serde_json::json;

const START: Check = Check::new(
    "start_once",
    &["RGI-START-2", "RGI-START-3"],
    "the head goes out once",
);
const LENGTH: Check = Check::new(
    "content_length_short",
    &["RGI-CL-1"],
    "short bodies end the connection",
);
const READY: Check = Check::new(
    "readiness_wait",
    &["RGIA-READY-1"],
    "a readiness wait completes",
);

fn result(check: Check, verdict: Verdict, millis: u64) -> CaseResult {
    CaseResult {
        check,
        verdict,
        duration: Duration::from_millis(millis),
    }
}

fn run() -> SuiteRun {
    SuiteRun {
        server: "demo".to_owned(),
        claims: Claims::asynchronous().with_after_response().with_features(
            rgi::Features::none()
                .with_response_trailers(true)
                .with_lifespan(true),
        ),
        results: vec![
            result(START, Verdict::Passed, 12),
            result(
                LENGTH,
                Verdict::Failed {
                    clause: "RGI-CL-1",
                    reason: "sent 3 bytes of 5\nthen kept the connection".to_owned(),
                },
                1500,
            ),
            result(
                READY,
                Verdict::Skipped {
                    reason: "the server does not claim readiness waits".to_owned(),
                },
                0,
            ),
        ],
    }
}

#[test]
fn the_tally_counts_each_verdict_and_the_clauses_of_cases_that_ran() {
    assert_eq!(
        run().tally(),
        Tally {
            cases: 3,
            passed: 1,
            failed: 1,
            skipped: 1,
            // START's two clauses and LENGTH's one; READY was skipped.
            clauses_judged: 3,
            duration: Duration::from_millis(1512),
        }
    );
    assert!(run().has_failures());
}

#[test]
fn the_table_has_a_row_per_case_reasons_below_and_a_summary() {
    let expected = "\
RGI server suite: demo (claims: synchronous, asynchronous, after-response, response-trailers, lifespan)

CLAUSE          CASE                  RESULT  TITLE
RGI-START-2 +1  start_once            PASS    the head goes out once
RGI-CL-1        content_length_short  FAIL    short bodies end the connection
    RGI-CL-1: sent 3 bytes of 5
    then kept the connection
RGIA-READY-1    readiness_wait        SKIP    a readiness wait completes
    skipped: the server does not claim readiness waits

1 passed, 1 failed, 1 skipped, of 3 cases; 3 clauses judged
";
    assert_eq!(report::table(&run()), expected);
}

#[test]
fn a_failure_on_a_secondary_clause_shows_that_clause() {
    let mut run = run();
    run.results.truncate(1);
    run.results[0].verdict = Verdict::Failed {
        clause: "RGI-START-3",
        reason: "x".to_owned(),
    };
    let table = report::table(&run);
    assert!(
        table.contains("\nRGI-START-3 +1  start_once  FAIL  "),
        "{table}"
    );
    assert!(table.contains("\n    RGI-START-3: x\n"), "{table}");
    assert!(table.ends_with("0 passed, 1 failed, 0 skipped, of 1 cases; 2 clauses judged\n"));
}

#[test]
fn the_json_reads_back_with_stable_fields() {
    let text = report::json(&run());
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        json!({
            "format": "rgi-conformance-suite/1",
            "server": "demo",
            "claims": {
                "asynchronous": true,
                "limits": {
                    "target": 8192,
                    "header_size": 65536,
                    "header_fields": 100,
                    "body": 67_108_864,
                    "head_time_ms": 30_000,
                    "idle_time_ms": 60_000,
                    "body_time_ms": 30_000,
                },
                "readiness": false,
                "after_response": true,
                "upgrade": false,
                "features": {
                    "request_trailers": false,
                    "response_trailers": true,
                    "early_hints": false,
                    "lifespan": true
                }
            },
            "summary": {
                "cases": 3,
                "passed": 1,
                "failed": 1,
                "skipped": 1,
                "clauses_judged": 3,
                "duration_ms": 1512
            },
            "results": [
                {
                    "case": "start_once",
                    "title": "the head goes out once",
                    "clauses": ["RGI-START-2", "RGI-START-3"],
                    "result": "passed",
                    "clause": null,
                    "reason": null,
                    "duration_ms": 12
                },
                {
                    "case": "content_length_short",
                    "title": "short bodies end the connection",
                    "clauses": ["RGI-CL-1"],
                    "result": "failed",
                    "clause": "RGI-CL-1",
                    "reason": "sent 3 bytes of 5\nthen kept the connection",
                    "duration_ms": 1500
                },
                {
                    "case": "readiness_wait",
                    "title": "a readiness wait completes",
                    "clauses": ["RGIA-READY-1"],
                    "result": "skipped",
                    "clause": null,
                    "reason": "the server does not claim readiness waits",
                    "duration_ms": 0
                }
            ]
        })
    );
    // Pretty: one field per line, and a final newline for files.
    assert!(text.contains("\n  \"server\": \"demo\",\n"), "{text}");
    assert!(text.ends_with("}\n"));
}

// --- A small XML parser, enough to prove well-formedness ---------------------

#[derive(Debug)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attribute(&self, name: &str) -> &str {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("<{}> has no {name}", self.name))
    }

    fn children(&self, name: &str) -> Vec<&Element> {
        self.children.iter().filter(|c| c.name == name).collect()
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// Resolves the references of character data or an attribute value,
/// rejecting a raw `<`, a bare `&`, an unknown entity and characters XML
/// 1.0 forbids.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        if !is_xml_char(c) {
            return Err(format!("forbidden character {c:?}"));
        }
        match c {
            '<' => return Err(format!("raw < in {raw:?}")),
            '&' => {
                let end = rest.find(';').ok_or_else(|| format!("bare & in {raw:?}"))?;
                let name = &rest[1..end];
                let resolved = match name {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    _ => {
                        let code = if let Some(hex) = name.strip_prefix("#x") {
                            u32::from_str_radix(hex, 16)
                        } else if let Some(decimal) = name.strip_prefix('#') {
                            decimal.parse()
                        } else {
                            return Err(format!("unknown entity &{name};"));
                        };
                        code.ok()
                            .and_then(char::from_u32)
                            .filter(|c| is_xml_char(*c))
                            .ok_or_else(|| format!("bad reference &{name};"))?
                    }
                };
                out.push(resolved);
                rest = &rest[end + 1..];
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    Ok(out)
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// Parses a document with an optional declaration and one root element;
/// whitespace between elements is kept in `text`.
fn parse_xml(document: &str) -> Result<Element, String> {
    let mut rest = document;
    if let Some(after) = rest.strip_prefix("<?xml ") {
        let end = after.find("?>").ok_or("unterminated declaration")?;
        rest = &after[end + 2..];
    }
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let text_end = rest.find('<').unwrap_or(rest.len());
        let text = unescape(&rest[..text_end])?;
        match stack.last_mut() {
            Some(open) => open.text.push_str(&text),
            None if text.trim().is_empty() => {}
            None => return Err(format!("text outside the root: {text:?}")),
        }
        rest = &rest[text_end..];
        if rest.is_empty() {
            break;
        }
        let tag_end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..tag_end];
        rest = &rest[tag_end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let element = stack.pop().ok_or(format!("stray </{name}>"))?;
            if element.name != name {
                return Err(format!("<{}> closed by </{name}>", element.name));
            }
            match stack.last_mut() {
                Some(parent) => parent.children.push(element),
                None if root.is_none() => root = Some(element),
                None => return Err("two roots".to_owned()),
            }
            continue;
        }
        let (tag, empty) = match tag.strip_suffix('/') {
            Some(tag) => (tag, true),
            None => (tag, false),
        };
        let (name, mut attributes_text) = tag.split_once(' ').unwrap_or((tag, ""));
        if !is_name(name) {
            return Err(format!("bad element name {name:?}"));
        }
        let mut element = Element {
            name: name.to_owned(),
            attributes: Vec::new(),
            children: Vec::new(),
            text: String::new(),
        };
        loop {
            attributes_text = attributes_text.trim_start();
            if attributes_text.is_empty() {
                break;
            }
            let (key, after) = attributes_text
                .split_once("=\"")
                .ok_or(format!("bad attribute in <{name}>"))?;
            if !is_name(key) {
                return Err(format!("bad attribute name {key:?}"));
            }
            let end = after.find('"').ok_or("unterminated attribute")?;
            if element.attributes.iter().any(|(k, _)| k == key) {
                return Err(format!("repeated attribute {key}"));
            }
            element
                .attributes
                .push((key.to_owned(), unescape(&after[..end])?));
            attributes_text = &after[end + 1..];
            if !(attributes_text.is_empty() || attributes_text.starts_with(' ')) {
                return Err(format!("no space after attribute {key}"));
            }
        }
        if empty {
            match stack.last_mut() {
                Some(parent) => parent.children.push(element),
                None if root.is_none() => root = Some(element),
                None => return Err("two roots".to_owned()),
            }
        } else {
            stack.push(element);
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("<{}> never closed", open.name));
    }
    root.ok_or_else(|| "no root element".to_owned())
}

#[test]
fn the_xml_checker_rejects_malformed_documents() {
    for bad in [
        "<a>",
        "<a></b>",
        "<a/><b/>",
        "<a>x & y</a>",
        "<a>x < y</a>",
        "<a x=\"1\" x=\"2\"/>",
        "<a x=\"<\"/>",
        "<a x='1'/>",
        "<a>&bogus;</a>",
        "<a>&#1;</a>",
        "<a>\u{1}</a>",
        "text<a/>",
        "</a>",
        "",
    ] {
        assert!(parse_xml(bad).is_err(), "{bad:?} accepted");
    }
    let good = parse_xml("<?xml version=\"1.0\"?>\n<a k=\"&lt;&#10;\"><b/>t&amp;</a>\n").unwrap();
    assert_eq!(good.attribute("k"), "<\n");
    assert_eq!(good.children("b").len(), 1);
    assert_eq!(good.text, "t&");
}

#[test]
fn the_junit_document_is_well_formed_with_the_expected_structure() {
    let xml = report::junit(&run());
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
    let root = parse_xml(&xml).unwrap_or_else(|error| panic!("{error}\n{xml}"));
    assert_eq!(root.name, "testsuites");
    assert_eq!(root.attribute("tests"), "3");
    let suites = root.children("testsuite");
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    assert_eq!(suite.attribute("name"), "demo");
    assert_eq!(suite.attribute("tests"), "3");
    assert_eq!(suite.attribute("failures"), "1");
    assert_eq!(suite.attribute("errors"), "0");
    assert_eq!(suite.attribute("skipped"), "1");
    assert_eq!(suite.attribute("time"), "1.512");
    let properties = &suite.children("properties")[0].children("property");
    let claimed: Vec<(&str, &str)> = properties
        .iter()
        .map(|p| (p.attribute("name"), p.attribute("value")))
        .collect();
    assert_eq!(
        claimed,
        [
            ("claims.asynchronous", "true"),
            ("claims.readiness", "false"),
            ("claims.after_response", "true"),
            ("claims.upgrade", "false"),
            ("claims.features.request_trailers", "false"),
            ("claims.features.response_trailers", "true"),
            ("claims.features.early_hints", "false"),
            ("claims.features.lifespan", "true"),
        ]
    );
    let cases = suite.children("testcase");
    assert_eq!(cases.len(), 3);
    let names: Vec<&str> = cases.iter().map(|c| c.attribute("name")).collect();
    assert_eq!(
        names,
        ["start_once", "content_length_short", "readiness_wait"]
    );
    assert!(cases.iter().all(|c| c.attribute("classname") == "demo"));
    assert_eq!(cases[0].attribute("time"), "0.012");
    assert!(cases[0].children.is_empty());
    let failure = &cases[1].children("failure")[0];
    assert_eq!(failure.attribute("message"), "RGI-CL-1");
    assert_eq!(failure.text, "sent 3 bytes of 5\nthen kept the connection");
    assert_eq!(cases[1].children.len(), 1);
    let skipped = &cases[2].children("skipped")[0];
    assert_eq!(
        skipped.attribute("message"),
        "the server does not claim readiness waits"
    );
}

/// Strings a server (its name) or a case (its reason) could produce that
/// would break a careless writer.
const HOSTILE: [&str; 6] = [
    "</failure></testcase><testcase name=\"injected\">",
    "a & b &amp; c &#60; ]]> <![CDATA[ x ]]>",
    "quotes \" and ' in \"attributes\"",
    "lines\r\nwith\ttabs\rand CR",
    "<!-- comment --> <?pi?> <!DOCTYPE x>",
    "ünïcödé → ✓ 𝄞",
];

#[test]
fn hostile_strings_are_escaped_and_survive_a_parse_exactly() {
    for hostile in HOSTILE {
        let run = SuiteRun {
            server: hostile.to_owned(),
            claims: Claims::synchronous(),
            results: vec![
                result(
                    START,
                    Verdict::Failed {
                        clause: "RGI-START-2",
                        reason: hostile.to_owned(),
                    },
                    1,
                ),
                result(
                    READY,
                    Verdict::Skipped {
                        reason: hostile.to_owned(),
                    },
                    1,
                ),
            ],
        };
        let xml = report::junit(&run);
        let root = parse_xml(&xml).unwrap_or_else(|error| panic!("{hostile:?}: {error}\n{xml}"));
        let suite = root.children("testsuite")[0];
        assert_eq!(suite.attribute("name"), hostile);
        let cases = suite.children("testcase");
        assert_eq!(cases.len(), 2, "{xml}");
        assert_eq!(cases[0].attribute("classname"), hostile);
        assert_eq!(cases[0].children("failure")[0].text, hostile);
        assert_eq!(
            cases[1].children("skipped")[0].attribute("message"),
            hostile
        );

        let value: serde_json::Value = serde_json::from_str(&report::json(&run)).unwrap();
        assert_eq!(value["server"], hostile);
        assert_eq!(value["results"][0]["reason"], hostile);
    }
}

#[test]
fn characters_xml_cannot_carry_are_written_visibly() {
    let run = SuiteRun {
        server: "nul\u{0}bell\u{7}".to_owned(),
        claims: Claims::synchronous(),
        results: vec![result(
            START,
            Verdict::Failed {
                clause: "RGI-START-2",
                reason: "esc\u{1b}[31m \u{FFFF}".to_owned(),
            },
            1,
        )],
    };
    let xml = report::junit(&run);
    let root = parse_xml(&xml).unwrap_or_else(|error| panic!("{error}\n{xml}"));
    let suite = root.children("testsuite")[0];
    assert_eq!(suite.attribute("name"), "nul\\u{0}bell\\u{7}");
    assert_eq!(
        suite.children("testcase")[0].children("failure")[0].text,
        "esc\\u{1b}[31m \\u{ffff}"
    );
}

#[test]
fn an_empty_run_renders_in_every_format() {
    let run = SuiteRun {
        server: "empty".to_owned(),
        claims: Claims::synchronous(),
        results: Vec::new(),
    };
    assert!(
        report::table(&run)
            .ends_with("0 passed, 0 failed, 0 skipped, of 0 cases; 0 clauses judged\n")
    );
    let root = parse_xml(&report::junit(&run)).unwrap();
    assert_eq!(root.children("testsuite")[0].attribute("tests"), "0");
    let value: serde_json::Value = serde_json::from_str(&report::json(&run)).unwrap();
    assert_eq!(value["results"], json!([]));
}

#[test]
fn the_clause_table_lists_every_clause_with_how_it_is_judged_and_the_run_outcome() {
    let coverage = coverage::coverage();
    let plain = report::clause_table(&coverage, None);
    let lines: Vec<&str> = plain.lines().collect();
    assert!(lines[0].starts_with("CLAUSE "), "{}", lines[0]);
    assert!(lines[0].ends_with("JUDGED   TITLE"), "{}", lines[0]);
    for entry in &coverage {
        let row = lines
            .iter()
            .position(|line| line.starts_with(&format!("{} ", entry.clause.id)))
            .unwrap_or_else(|| panic!("no row for {}", entry.clause.id));
        assert!(lines[row].contains(entry.clause.level.keyword()));
        assert!(lines[row].ends_with(entry.clause.title));
        match &entry.judged {
            Judged::Checked(checks) => {
                assert!(lines[row].contains(" checked "));
                let below = lines[row + 1];
                assert!(
                    below.contains(checks[0].check.name()),
                    "{}: {below}",
                    entry.clause.id
                );
            }
            Judged::Unchecked(reason) => {
                assert!(lines[row].contains(" reason "));
                assert_eq!(lines[row + 1], format!("    not checked: {reason}"));
            }
            Judged::Neither => assert!(lines[row].contains(" -  ")),
        }
    }

    // With a run: the outcome of the cases that cite each clause.
    let mut run = run();
    run.results.truncate(2);
    let with_run = report::clause_table(&coverage, Some(&run));
    let row = |id: &str| {
        with_run
            .lines()
            .find(|line| line.starts_with(&format!("{id} ")))
            .unwrap()
            .to_owned()
    };
    assert!(with_run.lines().next().unwrap().contains("RESULT"));
    assert!(
        row("RGI-START-2").contains(" PASS "),
        "{}",
        row("RGI-START-2")
    );
    assert!(row("RGI-CL-1").contains(" FAIL "), "{}", row("RGI-CL-1"));
    assert!(row("RGI-APP-1").contains(" -  "), "{}", row("RGI-APP-1"));
}

#[test]
fn a_clause_whose_only_case_stopped_at_another_clause_is_not_passed() {
    let run = SuiteRun {
        server: "demo".to_owned(),
        claims: Claims::synchronous(),
        results: vec![result(
            START,
            Verdict::Failed {
                clause: "RGI-START-2",
                reason: "x".to_owned(),
            },
            1,
        )],
    };
    let table = report::clause_table(&coverage::coverage(), Some(&run));
    let row = |id: &str| {
        table
            .lines()
            .find(|line| line.starts_with(&format!("{id} ")))
            .unwrap()
            .to_owned()
    };
    assert!(row("RGI-START-2").contains(" FAIL "));
    assert!(
        row("RGI-START-3").contains(" SKIP "),
        "{}",
        row("RGI-START-3")
    );
}
