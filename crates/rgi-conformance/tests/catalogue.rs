//! The clause catalogue: the built-in spec documents parse, the parser
//! rejects malformed clauses, and every `MUST`/`MUST NOT` clause is judged
//! by a check or carries a written reason, never both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use rgi_conformance::Check;
use rgi_conformance::catalogue::{
    self, By, Checker, Clause, Judged, Level, ParseError, Party, Problem, Spec, Summary,
};
use rgi_conformance::coverage;

#[test]
fn the_built_in_documents_parse() {
    let clauses = catalogue::try_clauses().expect("spec/rgi.md and spec/rgi-async.md parse");
    assert_eq!(clauses, catalogue::clauses());
    for spec in Spec::ALL {
        let own: Vec<&Clause> = clauses.iter().filter(|c| c.spec == spec).collect();
        assert!(own.len() >= 100, "{spec}: only {} clauses", own.len());
        assert!(
            own.iter()
                .all(|c| c.id.starts_with(&format!("{}-", spec.prefix())))
        );
        // Document order, with each clause on the line it claims.
        assert!(own.windows(2).all(|pair| pair[0].line < pair[1].line));
        for clause in own {
            let line = spec.source().lines().nth(clause.line - 1).unwrap();
            assert!(line.starts_with(&format!("- **[{}] ", clause.id)), "{line}");
        }
    }
    let ids: BTreeSet<&str> = clauses.iter().map(|c| c.id).collect();
    assert_eq!(
        ids.len(),
        clauses.len(),
        "clause IDs are unique across both documents"
    );
    for level in Level::ALL {
        assert!(
            clauses.iter().any(|c| c.level == level),
            "no {level} clause"
        );
    }
}

/// Appendix C of spec/rgi.md lists every clause with its level, party and
/// title: an independent account the parser must agree with.
#[test]
fn the_parser_agrees_with_the_clause_index_of_spec_rgi_md() {
    let source = Spec::Rgi.source();
    let index = source
        .split_once("## Appendix C")
        .expect("spec/rgi.md has Appendix C")
        .1;
    let rows: Vec<(String, String, String, String)> = index
        .lines()
        .filter(|line| line.starts_with("| RGI-"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 4, "{line}");
            (
                cells[0].to_owned(),
                cells[1].to_owned(),
                cells[2].to_owned(),
                cells[3].to_owned(),
            )
        })
        .collect();
    let parsed: Vec<(String, String, String, String)> = catalogue::clauses()
        .iter()
        .filter(|c| c.spec == Spec::Rgi)
        .map(|c| {
            (
                c.id.to_owned(),
                c.level.keyword().to_lowercase(),
                c.party.name().to_owned(),
                c.title.to_owned(),
            )
        })
        .collect();
    assert_eq!(parsed.len(), rows.len());
    for (parsed, row) in parsed.iter().zip(&rows) {
        assert_eq!(parsed, row);
    }
}

#[test]
fn a_well_formed_line_parses_into_its_parts() {
    let clauses = catalogue::parse(
        Spec::RgiAsync,
        "# Doc\n\n```text\n- **[RGIA-AREA-N] LEVEL (party) — Title.** Text.\n```\n\
         - **[RGIA-SWITCH-12] MUST NOT (middleware) — Keep `x.y` intact.** The text. More.\n\
         - **[RGIA-CAP-1] SHOULD NOT (all) — T.** U\n",
    )
    .unwrap();
    assert_eq!(clauses.len(), 2);
    let first = &clauses[0];
    assert_eq!(first.id, "RGIA-SWITCH-12");
    assert_eq!(first.level, Level::MustNot);
    assert_eq!(first.party, Party::Middleware);
    assert_eq!(first.title, "Keep `x.y` intact");
    assert_eq!(first.text, "The text. More.");
    assert_eq!(first.spec, Spec::RgiAsync);
    assert_eq!(first.line, 6);
    assert_eq!(clauses[1].level, Level::ShouldNot);
    assert_eq!(clauses[1].party, Party::All);
}

fn malformed(spec: Spec, source: &'static str) -> (usize, &'static str) {
    match catalogue::parse(spec, source) {
        Err(ParseError::Malformed {
            line,
            problem,
            text,
            spec: at,
        }) => {
            assert_eq!(at, spec);
            assert_eq!(text, source.lines().nth(line - 1).unwrap());
            (line, problem)
        }
        other => panic!("{source:?} gave {other:?}"),
    }
}

#[test]
fn malformed_clauses_are_typed_errors_naming_the_line_and_the_problem() {
    let good = "- **[RGI-A-1] MUST (server) — Fine.** Text.\n";
    let cases: [(&'static str, &str); 12] = [
        ("- **[RGI-START-2 MUST (server) — T.** X.", "not closed"),
        ("- **[RGIA-START-2] MUST (server) — T.** X.", "RGI-AREA-N"),
        ("- **[RGI-start-2] MUST (server) — T.** X.", "RGI-AREA-N"),
        ("- **[RGI-START-02] MUST (server) — T.** X.", "RGI-AREA-N"),
        ("- **[RGI-START] MUST (server) — T.** X.", "RGI-AREA-N"),
        ("- **[RGI-START-2-3] MUST (server) — T.** X.", "RGI-AREA-N"),
        ("- **[RGI-START-2] SHALL (server) — T.** X.", "level"),
        ("- **[RGI-START-2] MUST NOT(server) — T.** X.", "level"),
        ("- **[RGI-START-2] MUST (nobody) — T.** X.", "party is not"),
        ("- **[RGI-START-2] MUST (server) - T.** X.", "`) — `"),
        (
            "- **[RGI-START-2] MUST (server) — T** X.",
            "title does not end",
        ),
        ("- **[RGI-START-2] MUST (server) — .** X.", "title is empty"),
    ];
    for (line, expected) in cases {
        let source: &'static str = format!("{good}\n{line}\n").leak();
        let (at, problem) = malformed(Spec::Rgi, source);
        assert_eq!(at, 3, "{line}");
        assert!(problem.contains(expected), "{line}: {problem}");
    }
    let (_, problem) = malformed(Spec::Rgi, "- **[RGI-A-1] MUST (server) — T.**");
    assert!(problem.contains("the title does not end"), "{problem}");
    let (_, problem) = malformed(Spec::Rgi, "- **[RGI-A-1] MUST (server) — T.** \t");
    assert!(problem.contains("no text"), "{problem}");
    let (_, problem) = malformed(Spec::RgiAsync, "- **[RGI-A-1] MUST (server) — T.** X");
    assert!(problem.contains("RGIA-AREA-N"), "{problem}");
}

#[test]
fn duplicate_ids_and_empty_documents_are_errors() {
    let error = catalogue::parse(
        Spec::Rgi,
        "- **[RGI-A-1] MUST (server) — T.** X.\ntext\n- **[RGI-A-1] MAY (all) — U.** Y.\n",
    )
    .unwrap_err();
    assert_eq!(
        error,
        ParseError::Duplicate {
            spec: Spec::Rgi,
            id: "RGI-A-1".to_owned(),
            first: 1,
            line: 3
        }
    );
    assert_eq!(
        error.to_string(),
        "spec/rgi.md:3: clause RGI-A-1 is already defined on line 1"
    );
    for empty in [
        "",
        "# Title\n\nprose\n",
        "```\n- **[RGI-A-1] MUST (server) — T.** X.\n```\n",
    ] {
        assert_eq!(
            catalogue::parse(Spec::Rgi, empty),
            Err(ParseError::Empty { spec: Spec::Rgi })
        );
    }
}

fn area() -> impl Strategy<Value = String> {
    "[A-Z]{1,8}"
}

fn title() -> impl Strategy<Value = String> {
    // Anything but the title terminator and the bold marker.
    "[a-zA-Z`(). ,—-]{0,30}[a-zA-Z`]".prop_filter("no terminator", |t| {
        !t.contains(".** ") && !t.contains("**")
    })
}

proptest! {
    #[test]
    fn rendered_clauses_parse_back(
        spec_async in any::<bool>(),
        area in area(),
        number in 1u32..10_000,
        level in 0usize..5,
        party in 0usize..4,
        title in title(),
        text in "[^\n\r]{0,40}[a-z]",
    ) {
        let spec = if spec_async { Spec::RgiAsync } else { Spec::Rgi };
        let level = Level::ALL[level];
        let party = Party::ALL[party];
        let id = format!("{}-{area}-{number}", spec.prefix());
        let line = format!("- **[{id}] {} ({}) — {title}.** {text}", level.keyword(), party.name());
        let source: &'static str = format!("intro\n\n{line}\n").leak();
        let clauses = catalogue::parse(spec, source).unwrap();
        prop_assert_eq!(clauses.len(), 1);
        let clause = clauses[0];
        prop_assert_eq!(clause.id, id.as_str());
        prop_assert_eq!(clause.level, level);
        prop_assert_eq!(clause.party, party);
        prop_assert_eq!(clause.title, title.as_str());
        prop_assert_eq!(clause.text, text.trim());
        prop_assert_eq!(clause.line, 3);
    }

    #[test]
    fn arbitrary_text_never_panics_and_errors_name_a_real_line(source in "(- \\*\\*\\[RGI|[^\n]{0,20}|\n){0,12}") {
        let source: &'static str = source.leak();
        match catalogue::parse(Spec::Rgi, source) {
            Ok(clauses) => prop_assert!(!clauses.is_empty()),
            Err(ParseError::Malformed { line, text, .. }) => {
                prop_assert_eq!(source.lines().nth(line - 1), Some(text.as_str()));
                prop_assert!(text.starts_with("- **[RGI"));
            }
            Err(ParseError::Duplicate { first, line, .. }) => prop_assert!(first < line),
            Err(ParseError::Empty { .. }) => {
                prop_assert!(!source.lines().any(|line| line.starts_with("- **[RGI")));
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }
}

// --- Coverage -------------------------------------------------------------

/// The kit's own rule, on the real checks and reasons: what CI enforces.
#[test]
fn every_must_clause_is_checked_or_has_a_reason_and_nothing_is_stale() {
    let problems = coverage::audit();
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn coverage_lists_every_clause_once_in_catalogue_order() {
    let coverage = coverage::coverage();
    let clauses = catalogue::clauses();
    assert_eq!(coverage.len(), clauses.len());
    let checkers = coverage::checkers();
    for (entry, clause) in coverage.iter().zip(clauses) {
        assert_eq!(entry.clause, clause);
        match &entry.judged {
            Judged::Checked(checks) => {
                assert!(!checks.is_empty());
                for checker in checks {
                    assert!(checker.check.clauses().contains(&clause.id));
                    assert!(checkers.contains(checker));
                }
            }
            Judged::Unchecked(reason) => {
                assert!(catalogue::UNCHECKED.contains(&(clause.id, *reason)));
            }
            Judged::Neither => assert!(!clause.level.is_absolute(), "{}", clause.id),
        }
    }
    let summary = coverage::summary();
    assert_eq!(summary, Summary::of(&coverage, &checkers));
    assert_eq!(summary.total().clauses, clauses.len());
    assert_eq!(summary.absolute().neither, 0);
    let total = summary.total();
    assert_eq!(
        total.checked + total.with_reason + total.neither,
        total.clauses
    );
}

fn toy_clauses() -> &'static [Clause] {
    catalogue::parse(
        Spec::Rgi,
        "- **[RGI-A-1] MUST (server) — One.** X.\n\
         - **[RGI-A-2] MUST NOT (application) — Two.** X.\n\
         - **[RGI-A-3] SHOULD (all) — Three.** X.\n\
         - **[RGI-A-4] MAY (server) — Four.** X.\n",
    )
    .unwrap()
    .leak()
}

const CHECK_ONE: Check = Check::new("one", &["RGI-A-1"], "checks one");
const CHECK_TWO: Check = Check::new("two", &["RGI-A-2", "RGI-A-3"], "checks two and three");

fn validator(check: Check) -> Checker {
    Checker {
        by: By::Validator,
        check,
    }
}

fn suite(check: Check) -> Checker {
    Checker {
        by: By::Suite,
        check,
    }
}

#[test]
fn a_consistent_catalogue_has_no_problem() {
    let clauses = toy_clauses();
    let checkers = [validator(CHECK_ONE), suite(CHECK_ONE)];
    let reasons = [("RGI-A-2", "enforced by the type system")];
    assert_eq!(catalogue::audit_of(clauses, &checkers, &reasons), []);
    let coverage = catalogue::coverage_of(clauses, &checkers, &reasons);
    assert_eq!(
        coverage[0].judged,
        Judged::Checked(vec![validator(CHECK_ONE), suite(CHECK_ONE)])
    );
    assert_eq!(
        coverage[1].judged,
        Judged::Unchecked("enforced by the type system")
    );
    assert_eq!(coverage[2].judged, Judged::Neither);
    let summary = Summary::of(&coverage, &checkers);
    assert_eq!(summary.validator_checks, 1);
    assert_eq!(summary.suite_cases, 1);
    let absolute = summary.absolute();
    assert_eq!(
        (absolute.clauses, absolute.checked, absolute.with_reason),
        (2, 1, 1)
    );
    assert_eq!(summary.level(Level::Should).neither, 1);
    assert_eq!(summary.level(Level::ShouldNot).clauses, 0);
    let shown = summary.to_string();
    assert!(shown.contains("MUST NOT"), "{shown}");
    assert!(
        shown.ends_with("1 validator checks, 1 suite cases"),
        "{shown}"
    );
}

#[test]
fn an_absolute_clause_with_neither_check_nor_reason_is_a_problem() {
    let problems = catalogue::audit_of(toy_clauses(), &[validator(CHECK_ONE)], &[]);
    assert_eq!(
        problems,
        [Problem::Unjudged {
            id: "RGI-A-2",
            level: Level::MustNot
        }]
    );
    // SHOULD and MAY clauses may go unjudged.
    assert_eq!(
        catalogue::audit_of(
            toy_clauses(),
            &[validator(CHECK_ONE), suite(CHECK_TWO)],
            &[]
        ),
        []
    );
}

#[test]
fn a_reason_for_an_unknown_clause_is_a_problem() {
    let problems = catalogue::audit_of(
        toy_clauses(),
        &[suite(CHECK_ONE), suite(CHECK_TWO)],
        &[("RGI-A-9", "a property of the deployment")],
    );
    assert_eq!(
        problems,
        [Problem::ReasonForUnknownClause {
            id: "RGI-A-9".to_owned()
        }]
    );
}

#[test]
fn a_reason_for_a_checked_clause_is_stale() {
    let problems = catalogue::audit_of(
        toy_clauses(),
        &[suite(CHECK_ONE), validator(CHECK_TWO)],
        &[("RGI-A-3", "no longer true")],
    );
    assert_eq!(
        problems,
        [Problem::StaleReason {
            id: "RGI-A-3",
            checks: vec!["two"]
        }]
    );
}

#[test]
fn a_check_citing_an_undefined_clause_is_a_problem() {
    const BAD: Check = Check::new("bad", &["RGI-A-1", "RGI-Z-7"], "cites a typo");
    const NONE: Check = Check::new("none", &[], "cites nothing");
    let problems = catalogue::audit_of(
        toy_clauses(),
        &[validator(BAD), suite(CHECK_TWO), suite(NONE)],
        &[],
    );
    assert_eq!(
        problems,
        [
            Problem::UnknownClauseCited {
                check: "bad",
                id: "RGI-Z-7"
            },
            Problem::NoClauseCited { check: "none" },
        ]
    );
}

#[test]
fn duplicate_names_and_duplicate_or_empty_reasons_are_problems() {
    let problems = catalogue::audit_of(
        toy_clauses(),
        &[suite(CHECK_ONE), suite(CHECK_ONE), validator(CHECK_ONE)],
        &[("RGI-A-2", "first"), ("RGI-A-2", " "), ("RGI-A-4", "fine")],
    );
    assert_eq!(
        problems,
        [
            Problem::DuplicateCheckName {
                by: By::Suite,
                check: "one"
            },
            Problem::EmptyReason {
                id: "RGI-A-2".to_owned()
            },
            Problem::DuplicateReason {
                id: "RGI-A-2".to_owned()
            },
        ]
    );
}

#[test]
fn a_reason_mentioning_an_undefined_clause_is_a_problem() {
    let problems = catalogue::audit_of(
        toy_clauses(),
        &[suite(CHECK_ONE)],
        &[("RGI-A-2", "judged as RGI-A-1 and RGI-B-1 are, (RGIA-X-2).")],
    );
    assert_eq!(
        problems,
        [
            Problem::ReasonCitesUnknownClause {
                id: "RGI-A-2".to_owned(),
                cited: "RGI-B-1".to_owned()
            },
            Problem::ReasonCitesUnknownClause {
                id: "RGI-A-2".to_owned(),
                cited: "RGIA-X-2".to_owned()
            },
        ]
    );
}

/// The tests a reason names, as a path ending in `.rs` followed by `: ` and
/// a comma-separated list of names in backticks; a path without a list
/// names only the file.
fn cited_tests(reason: &str) -> Vec<(String, Vec<String>)> {
    let mut cited = Vec::new();
    for (start, _) in reason.match_indices("crates/") {
        let rest = &reason[start..];
        let Some(end) = rest.find(".rs") else {
            continue;
        };
        let path = rest[..end + 3].to_owned();
        let mut names = Vec::new();
        let mut list = &rest[end + 3..];
        if let Some(after) = list.strip_prefix(": ") {
            list = after;
            while let Some(after) = list.strip_prefix('`') {
                let (name, after) = after.split_once('`').unwrap();
                names.push(name.to_owned());
                match after.strip_prefix(", ") {
                    Some(next) if next.starts_with('`') => list = next,
                    _ => break,
                }
            }
            assert!(
                !names.is_empty(),
                "a list without names after {path}: {reason}"
            );
        }
        cited.push((path, names));
    }
    cited
}

#[test]
fn the_files_and_tests_that_reasons_cite_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut tests_cited = 0;
    for (id, reason) in catalogue::UNCHECKED {
        for (path, names) in cited_tests(reason) {
            let source = std::fs::read_to_string(root.join(&path))
                .unwrap_or_else(|error| panic!("{id} cites {path}: {error}"));
            for name in names {
                assert!(
                    source.contains(&format!("fn {name}(")),
                    "{id} cites {name} in {path}, which has no such function"
                );
                tests_cited += 1;
            }
        }
    }
    assert!(tests_cited > 0);
}

/// Method names the reasons mention in backticks; every other backticked
/// snake-case word must name a check of the kit or a cited test.
const API_NAMES: [&str; 4] = [
    "from_maybe_shared_unchecked",
    "next_chunk",
    "poll_chunk",
    "size_hint",
];

#[test]
fn the_check_names_that_reasons_mention_exist() {
    let checks: BTreeSet<&str> = coverage::checkers()
        .iter()
        .map(|checker| checker.check.name())
        .collect();
    for (id, reason) in catalogue::UNCHECKED {
        let tests: BTreeSet<String> = cited_tests(reason)
            .into_iter()
            .flat_map(|(_, names)| names)
            .collect();
        for word in reason.split('`').skip(1).step_by(2) {
            let snake = word.contains('_')
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if snake {
                assert!(
                    checks.contains(word) || tests.contains(word) || API_NAMES.contains(&word),
                    "the reason for {id} mentions `{word}`, which is no check, cited test or known method"
                );
            }
        }
    }
}

#[test]
fn the_citation_reader_finds_paths_and_lists() {
    assert_eq!(
        cited_tests("tested in (crates/a/tests/x.rs: `one`, `two`) and crates/b/src/y.rs, also."),
        [
            (
                "crates/a/tests/x.rs".to_owned(),
                vec!["one".to_owned(), "two".to_owned()]
            ),
            ("crates/b/src/y.rs".to_owned(), vec![]),
        ]
    );
}

#[test]
fn every_check_of_the_kit_cites_clauses_the_spec_defines() {
    for checker in coverage::checkers() {
        assert!(
            !checker.check.clauses().is_empty(),
            "{}",
            checker.check.name()
        );
        for id in checker.check.clauses() {
            assert!(
                catalogue::clause(id).is_some(),
                "{} {} cites {id}",
                checker.by,
                checker.check.name()
            );
        }
    }
}
