//! spec/*.md: every normative sentence carries a unique clause ID in the
//! machine-readable form the conformance kit reads.

use std::collections::BTreeMap;

const SPEC: &str = include_str!("../../../spec/rgi.md");
const ASYNC_SPEC: &str = include_str!("../../../spec/rgi-async.md");
/// Each document with the prefix its clause IDs carry.
const DOCUMENTS: [(&str, &str); 2] = [("RGI", SPEC), ("RGIA", ASYNC_SPEC)];
const KEYWORDS: [&str; 7] = [
    "MUST",
    "SHOULD",
    "MAY",
    "REQUIRED",
    "SHALL",
    "RECOMMENDED",
    "OPTIONAL",
];
const LEVELS: [&str; 5] = ["MUST NOT", "MUST", "SHOULD NOT", "SHOULD", "MAY"];
const PARTIES: [&str; 4] = ["server", "application", "middleware", "all"];

#[derive(Debug)]
struct Clause<'a> {
    id: &'a str,
    level: &'a str,
}

/// Parses `- **[RGI-AREA-N] LEVEL (party) — Title.** Text.`
fn parse_clause<'a>(prefix: &str, line: &'a str) -> Option<Clause<'a>> {
    let rest = line.strip_prefix("- **[")?;
    let (id, rest) = rest.split_once("] ")?;
    let mut parts = id.split('-');
    let valid_id = parts.next() == Some(prefix)
        && parts.next().is_some_and(is_area)
        && parts
            .next()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_none();
    if !valid_id {
        return None;
    }
    let level = LEVELS
        .into_iter()
        .find(|level| rest.starts_with(&format!("{level} (")))?;
    let rest = &rest[level.len() + 2..];
    let (party, rest) = rest.split_once(") — ")?;
    let (title, _text) = rest.split_once(".** ")?;
    (PARTIES.contains(&party) && !title.is_empty() && !title.contains("**"))
        .then_some(Clause { id, level })
}

/// An area is a capital letter, then capitals or digits (`CL`, `H2`).
fn is_area(area: &str) -> bool {
    area.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
        && area
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn has_keyword(line: &str) -> bool {
    line.split(|c: char| !c.is_ascii_alphabetic())
        .any(|word| KEYWORDS.contains(&word))
}

#[test]
fn every_normative_line_is_a_well_formed_clause_with_a_unique_id() {
    for (prefix, spec) in DOCUMENTS {
        check_document(prefix, spec);
    }
}

fn check_document(prefix: &str, spec: &str) {
    let mut in_code = false;
    let mut seen = BTreeMap::new();
    let mut problems = Vec::new();
    for (number, line) in spec.lines().enumerate() {
        let number = number + 1;
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        match parse_clause(prefix, line) {
            Some(clause) => {
                if let Some(first) = seen.insert(clause.id, number) {
                    problems.push(format!(
                        "line {number}: {} already used on line {first}",
                        clause.id
                    ));
                }
            }
            None if line.starts_with(&format!("- **[{prefix}-")) => {
                problems.push(format!("line {number}: malformed clause: {line}"));
            }
            None if has_keyword(line) => problems.push(format!(
                "line {number}: normative keyword outside a clause: {line}"
            )),
            None => {}
        }
    }
    assert!(problems.is_empty(), "{prefix}:\n{}", problems.join("\n"));
    assert!(seen.len() >= 100, "{prefix}: only {} clauses", seen.len());
}

#[test]
fn every_level_is_used_and_must_clauses_dominate() {
    let clauses: Vec<_> = SPEC
        .lines()
        .filter_map(|line| parse_clause("RGI", line))
        .collect();
    for level in LEVELS {
        assert!(
            clauses.iter().any(|clause| clause.level == level),
            "no {level} clause"
        );
    }
    let musts = clauses
        .iter()
        .filter(|clause| clause.level.starts_with("MUST"))
        .count();
    assert!(
        musts * 2 > clauses.len(),
        "{musts} of {} clauses are MUST/MUST NOT",
        clauses.len()
    );
}

#[test]
fn clause_ids_cited_by_the_crate_exist_in_the_spec() {
    let sources = [
        include_str!("../src/app.rs"),
        include_str!("../src/body.rs"),
        include_str!("../src/file.rs"),
        include_str!("../src/hints.rs"),
        include_str!("../src/response.rs"),
        include_str!("../src/state.rs"),
        include_str!("../src/version.rs"),
        include_str!("../src/environ.rs"),
        include_str!("../src/input.rs"),
        include_str!("../src/errors.rs"),
    ];
    let defined: Vec<&str> = SPEC
        .lines()
        .filter_map(|line| parse_clause("RGI", line))
        .map(|clause| clause.id)
        .collect();
    let mut missing = Vec::new();
    for source in sources {
        for cited in source
            .split("`[")
            .skip(1)
            .filter_map(|rest| rest.split_once("]`"))
            .map(|(id, _)| id)
        {
            if !cited.starts_with("RGI-") {
                continue;
            }
            let known = match cited.strip_suffix("-*") {
                Some(area) => defined.iter().any(|id| id.starts_with(&format!("{area}-"))),
                None => defined.contains(&cited),
            };
            if !known {
                missing.push(cited.to_owned());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited but not defined in spec/rgi.md: {missing:?}"
    );
}

/// The level columns of Appendix C's count table, in its order.
const TABLE_LEVELS: [&str; 5] = ["MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY"];

/// One row of Appendix C's count table: an area (or `**all**`) and its
/// counts per level followed by the total, as written.
fn count_row(line: &str) -> Option<(String, Vec<String>)> {
    let cells: Vec<&str> = line
        .strip_prefix('|')?
        .strip_suffix('|')?
        .split('|')
        .map(str::trim)
        .collect();
    let (area, counts) = cells.split_first()?;
    (counts.len() == TABLE_LEVELS.len() + 1 && *area != "Area" && !area.starts_with("---")).then(
        || {
            let counts = counts
                .iter()
                .map(|c| c.trim_matches('*').to_owned())
                .collect();
            (area.trim_matches('*').to_owned(), counts)
        },
    )
}

/// Appendix C of spec/rgi.md opens with a table of clause counts per area and
/// level; it agrees with the clauses themselves, area by area in order of
/// first appearance, and in its total row.
#[test]
fn the_clause_counts_of_appendix_c_match_the_clauses() {
    let mut areas: Vec<(&str, [usize; 5])> = Vec::new();
    for clause in SPEC.lines().filter_map(|line| parse_clause("RGI", line)) {
        let area = clause.id.split('-').nth(1).unwrap_or_default();
        let column = TABLE_LEVELS
            .iter()
            .position(|level| *level == clause.level)
            .unwrap_or_default();
        if !areas.iter().any(|(known, _)| *known == area) {
            areas.push((area, [0; 5]));
        }
        if let Some((_, counts)) = areas.iter_mut().find(|(known, _)| *known == area) {
            counts[column] += 1;
        }
    }
    let mut total = [0; 5];
    let mut expected: Vec<(String, Vec<String>)> = Vec::new();
    for (area, counts) in &areas {
        for (sum, count) in total.iter_mut().zip(counts) {
            *sum += count;
        }
        let mut cells: Vec<String> = counts.iter().map(ToString::to_string).collect();
        cells.push(counts.iter().sum::<usize>().to_string());
        expected.push(((*area).to_owned(), cells));
    }
    let mut cells: Vec<String> = total.iter().map(ToString::to_string).collect();
    cells.push(total.iter().sum::<usize>().to_string());
    expected.push(("all".to_owned(), cells));

    let appendix = SPEC
        .split_once("## Appendix C")
        .map(|(_, appendix)| appendix)
        .unwrap_or_default();
    let written: Vec<(String, Vec<String>)> = appendix
        .lines()
        .skip_while(|line| !line.starts_with("| Area |"))
        .take_while(|line| line.starts_with('|'))
        .filter_map(count_row)
        .collect();
    assert_eq!(
        written, expected,
        "Appendix C's count table (area, then MUST, MUST NOT, SHOULD, SHOULD NOT, MAY, total)"
    );
}
