//! The `rgi` crate's modules depend one way: read from the `use crate::…`
//! lines of its sources (items re-exported at the root count as their
//! defining module), the module graph has no cycle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The statements of `text` that begin with `prefix` at the start of a
/// line, each joined onto one line up to its `;` (rustfmt spreads a long
/// `use` over several lines), without the prefix and the `;`.
fn statements(text: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(statement) = open.as_mut() {
            statement.push(' ');
            statement.push_str(line);
        } else if let Some(rest) = line.strip_prefix(prefix) {
            open = Some(rest.to_owned());
        }
        if open
            .as_ref()
            .is_some_and(|statement| statement.ends_with(';'))
        {
            let statement = open.take().unwrap_or_default();
            let joined = statement.split_whitespace().collect::<Vec<_>>().join(" ");
            found.push(
                joined
                    .trim_end_matches(';')
                    .replace("{ ", "{")
                    .replace(", }", "}")
                    .replace(" }", "}"),
            );
        }
    }
    found
}

/// `pub use module::{A, B};` and `pub use module::A;` lines of lib.rs: which
/// module defines each name the root re-exports.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut owners = BTreeMap::new();
    for line in statements(lib, "pub use ") {
        let line = line.as_str();
        let Some((module, items)) = line.split_once("::") else {
            continue;
        };
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            owners.insert(item.to_owned(), module.to_owned());
        }
    }
    owners
}

/// The modules a source file names in its `use crate::…` lines.
fn dependencies(source: &str, owners: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for path in statements(source, "use crate::") {
        let path = path.as_str();
        if let Some(items) = path.strip_prefix('{') {
            for item in items.trim_end_matches('}').split(',').map(str::trim) {
                let owner = owners
                    .get(item)
                    .unwrap_or_else(|| panic!("crate::{item} is not re-exported"));
                modules.insert(owner.clone());
            }
        } else {
            let module = path.split("::").next().unwrap();
            modules.insert(owners.get(module).cloned().unwrap_or(module.to_owned()));
        }
    }
    modules
}

#[test]
fn the_modules_of_rgi_depend_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    let owners = root_reexports(&lib);
    let mut graph = BTreeMap::new();
    for module in lib
        .lines()
        .filter_map(|line| line.strip_prefix("mod "))
        .map(|name| name.trim_end_matches(';'))
    {
        let source = fs::read_to_string(src.join(format!("{module}.rs"))).unwrap();
        let mut uses = dependencies(&source, &owners);
        uses.remove(module);
        graph.insert(module.to_owned(), uses);
    }
    assert!(graph.len() >= 10, "modules found: {graph:?}");
    assert!(
        graph["app"].contains("body"),
        "the reader sees dependencies"
    );

    // Kahn's algorithm: repeatedly remove modules that depend on nothing
    // left; whatever remains lies on a cycle.
    let mut remaining = graph.clone();
    loop {
        let leaves: Vec<String> = remaining
            .iter()
            .filter(|(_, uses)| uses.iter().all(|used| !remaining.contains_key(used)))
            .map(|(module, _)| module.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            remaining.remove(&leaf);
        }
    }
    assert!(
        remaining.is_empty(),
        "modules on a dependency cycle: {remaining:?}"
    );
    // BoxError is a leaf, named by everything that fails.
    assert!(graph["box_error"].is_empty());
    for module in ["app", "body", "response", "state"] {
        assert!(
            !graph[module].contains("app"),
            "{module} reaches back to app"
        );
    }
}
