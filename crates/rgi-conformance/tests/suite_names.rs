//! The suite's case list: the names `server_suite!` expands are the names
//! of `cases()`, each unique, named after its main clause, and every clause
//! a case cites exists in the specifications.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use rgi_conformance::suite::{self, Needs, SYNC_CASE_NAMES};

/// The clause IDs defined by a specification's clause items.
fn clause_ids(spec: &str) -> HashSet<String> {
    spec.lines()
        .filter_map(|line| line.strip_prefix("- **["))
        .filter_map(|rest| rest.split(']').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_macro_list_is_the_sync_prefix_of_cases() {
    let names: Vec<&str> = suite::cases().iter().map(suite::Case::name).collect();
    assert!(SYNC_CASE_NAMES.len() >= 70, "{}", SYNC_CASE_NAMES.len());
    assert_eq!(&names[..SYNC_CASE_NAMES.len()], SYNC_CASE_NAMES);
    // The same list, expanded by the macro in its `names` mode here, in a
    // foreign crate, as `server_suite!` expands it.
    const EXPANDED: &[&str] = rgi_conformance::__rgi_sync_cases!(names);
    assert_eq!(EXPANDED, SYNC_CASE_NAMES);
}

#[test]
fn names_are_unique_and_start_with_the_main_clause() {
    let mut seen = HashSet::new();
    for case in suite::cases() {
        assert!(seen.insert(case.name()), "duplicate case {}", case.name());
        let main = case.check().clauses()[0];
        let prefix = format!("{}_", main.to_lowercase().replace('-', "_"));
        assert!(
            case.name().starts_with(&prefix),
            "{} does not start with its main clause {main}",
            case.name()
        );
        assert!(!case.check().title().is_empty());
    }
}

#[test]
fn synchronous_cases_need_no_capability() {
    for name in SYNC_CASE_NAMES {
        let case = suite::case(name).unwrap();
        // Only the timing cases need something: times short enough to wait out.
        assert!(
            matches!(case.needs(), Needs::Nothing | Needs::ShortTimes),
            "{name}: {:?}",
            case.needs()
        );
        assert!(
            case.check()
                .clauses()
                .iter()
                .all(|id| id.starts_with("RGI-")),
            "{name}"
        );
    }
}

#[test]
fn every_cited_clause_exists() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/");
    let mut ids = clause_ids(&std::fs::read_to_string(format!("{root}rgi.md")).unwrap());
    ids.extend(clause_ids(
        &std::fs::read_to_string(format!("{root}rgi-async.md")).unwrap(),
    ));
    assert!(ids.len() > 250, "{}", ids.len());
    for case in suite::cases() {
        for clause in case.check().clauses() {
            assert!(
                ids.contains(*clause),
                "{} cites unknown clause {clause}",
                case.name()
            );
        }
    }
}

#[test]
fn every_synchronous_server_clause_with_a_case_is_a_server_clause() {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/rgi.md")).unwrap();
    let server_clauses: HashSet<&str> = spec
        .lines()
        .filter(|line| line.contains("(server)") || line.contains("(all)"))
        .filter_map(|line| line.strip_prefix("- **["))
        .filter_map(|rest| rest.split(']').next())
        .collect();
    for name in SYNC_CASE_NAMES {
        let main = suite::case(name).unwrap().check().clauses()[0];
        assert!(
            server_clauses.contains(main),
            "{name} judges {main}, which does not bind the server"
        );
    }
}

#[test]
fn lookup_by_name() {
    let case = suite::case("rgi_conn_1_unread_body_never_parsed_as_a_request").unwrap();
    assert_eq!(case.check().clauses()[0], "RGI-CONN-1");
    assert!(suite::case("rgi_no_such_case").is_none());
}
