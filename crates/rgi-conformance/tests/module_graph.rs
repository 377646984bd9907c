//! Modules depend one way: no import cycles between sibling modules, in
//! this crate or any other crate of the workspace.
//!
//! The check reads the sources as text. For every file it takes the paths
//! that start with `crate::` or `super::` (in `use` lines and in code,
//! outside comments and the `#[cfg(test)] mod tests` block that ends a
//! file), resolves them to the module they name, and records an edge
//! between the two sibling modules under the nearest common parent: code
//! in `validate::input` naming `crate::validate::state::Flavor` is the edge
//! `validate::input -> validate::state`. A cycle is a strongly connected
//! set of two or more siblings.
//!
//! Cycles that are known and being removed are listed in [`KNOWN`]; the
//! test fails when a cycle appears that is not listed and when a listed
//! one is gone (so that the list only shrinks).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Cycles still to be broken, as `crate: module <-> module ...` with the
/// members sorted. Empty: the last five, found once the scan followed
/// re-exports (`crate::Reports` is `crate::violation`'s), were untied by
/// moving shared types below their users.
const KNOWN: &[&str] = &[];

type Module = Vec<String>;

/// Every `.rs` file under `src`, by the module it defines.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut found = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(src).unwrap().with_extension("");
                let mut module: Module = relative
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    module.last().map(String::as_str),
                    Some("lib" | "main" | "mod")
                ) {
                    module.pop();
                }
                // A binary's own modules (src/bin/...) are another crate.
                if module.first().is_some_and(|first| first == "bin") {
                    continue;
                }
                found.insert(module, path);
            }
        }
    }
    found
}

/// The text of a file without line comments and without a trailing
/// `#[cfg(test)] mod tests` block.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let mut kept = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        let without_comment = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        kept.push_str(without_comment);
        kept.push('\n');
    }
    kept
}

/// The module paths named in `code` from module `from`: `crate::a::b`,
/// `super::c`, and the members of `use crate::a::{b, c::d}` groups one
/// level deep.
fn named_paths(code: &str, from: &Module) -> Vec<Module> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let boundary = start == 0 || {
            let before = bytes[start - 1];
            !(before.is_ascii_alphanumeric() || before == b'_' || before == b'$')
        };
        if !boundary {
            continue;
        }
        let rest = &code[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches(':');
        let mut segments = path.split("::").filter(|segment| !segment.is_empty());
        let mut base: Module = match segments.next() {
            Some("crate") => Vec::new(),
            // `super` in a file's module is its parent.
            Some(_) => from[..from.len().saturating_sub(1)].to_vec(),
            None => continue,
        };
        let mut tail = Vec::new();
        for segment in segments {
            if segment == "super" && tail.is_empty() {
                base.pop();
            } else {
                tail.push(segment.to_owned());
            }
        }
        base.extend(tail);
        // `use crate::a::{b, c::d}`: each member of the group too.
        if rest[end..].starts_with('{') {
            if let Some(close) = rest[end..].find('}') {
                for member in rest[end + 1..end + close].split(',') {
                    let first = member.trim().split("::").next().unwrap_or_default();
                    if !first.is_empty() && first != "self" {
                        let mut grouped = base.clone();
                        grouped.push(first.to_owned());
                        paths.push(grouped);
                    }
                }
            }
        }
        paths.push(base);
    }
    paths
}

/// What each module re-exports from its child modules: `pub use
/// child::{A, b::C};` in module `m` makes `m::A` and `m::C` names for items
/// of `m::child`, so that a path through the re-export counts as an edge to
/// the child (`crate::Reports` is `crate::violation`'s).
fn reexports(modules: &BTreeMap<Module, PathBuf>) -> BTreeMap<Module, Module> {
    let mut found = BTreeMap::new();
    for (module, path) in modules {
        for statement in code(path).split(';') {
            let statement = statement.trim();
            let Some(rest) = ["pub use ", "pub(crate) use ", "pub(super) use "]
                .iter()
                .find_map(|prefix| statement.strip_prefix(prefix))
            else {
                continue;
            };
            let Some((child, items)) = rest.split_once("::") else {
                continue;
            };
            let mut child_module = module.clone();
            child_module.push(child.trim().to_owned());
            if !modules.contains_key(&child_module) {
                continue;
            }
            let items = items.trim().trim_start_matches('{').trim_end_matches('}');
            for item in items.split(',') {
                let item = item.trim();
                let name = item
                    .rsplit(" as ")
                    .next()
                    .unwrap_or(item)
                    .rsplit("::")
                    .next()
                    .unwrap_or_default()
                    .trim();
                if !name.is_empty() && name != "self" && name != "*" {
                    let mut alias = module.clone();
                    alias.push(name.to_owned());
                    found.insert(alias, child_module.clone());
                }
            }
        }
    }
    found
}

/// The edges between sibling modules of one crate.
fn edges(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules(src);
    let reexports = reexports(&modules);
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, path) in &modules {
        for mut target in named_paths(&code(path), from) {
            // Through a re-export to the module that defines the item.
            if let Some(defining) = (1..=target.len())
                .rev()
                .find_map(|len| reexports.get(&target[..len]))
            {
                target = defining.clone();
            }
            while !target.is_empty() && !modules.contains_key(&target) {
                target.pop();
            }
            let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < target.len() {
                edges
                    .entry(from[..=common].to_vec())
                    .or_default()
                    .insert(target[..=common].to_vec());
            }
        }
    }
    edges
}

/// The strongly connected sets of two or more modules (Tarjan's
/// algorithm), each sorted.
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, node: &'a Module) {
        let order = walk.index.len();
        walk.index.insert(node, order);
        walk.low.insert(node, order);
        walk.stack.push(node);
        walk.on_stack.insert(node);
        if let Some(targets) = walk.edges.get(node) {
            for target in targets {
                if !walk.index.contains_key(target) {
                    visit(walk, target);
                    let low = walk.low[node].min(walk.low[target]);
                    walk.low.insert(node, low);
                } else if walk.on_stack.contains(target) {
                    let low = walk.low[node].min(walk.index[target]);
                    walk.low.insert(node, low);
                }
            }
        }
        if walk.low[node] == walk.index[node] {
            let mut component = Vec::new();
            while let Some(member) = walk.stack.pop() {
                walk.on_stack.remove(member);
                component.push(member.clone());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                walk.found.push(component);
            }
        }
    }
    let nodes: BTreeSet<&Module> = edges
        .iter()
        .flat_map(|(from, targets)| std::iter::once(from).chain(targets))
        .collect();
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in nodes {
        if !walk.index.contains_key(node) {
            visit(&mut walk, node);
        }
    }
    walk.found
}

fn describe(krate: &str, cycle: &[Module]) -> String {
    let members: Vec<String> = cycle.iter().map(|module| module.join("::")).collect();
    format!("{krate}: {}", members.join(" <-> "))
}

#[test]
fn no_module_cycles_beyond_the_known_ones() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen = BTreeSet::new();
    for entry in fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let src = dir.join("src");
        if !src.is_dir() || !dir.join("Cargo.toml").is_file() {
            continue;
        }
        let krate = dir.file_name().unwrap().to_string_lossy().into_owned();
        for cycle in cycles(&edges(&src)) {
            seen.insert(describe(&krate, &cycle));
        }
    }
    let known: BTreeSet<String> = KNOWN.iter().map(|cycle| (*cycle).to_owned()).collect();
    let new: Vec<&String> = seen.difference(&known).collect();
    let gone: Vec<&String> = known.difference(&seen).collect();
    assert!(
        new.is_empty(),
        "module cycles (modules must depend one way): {new:#?}"
    );
    assert!(
        gone.is_empty(),
        "cycles listed in KNOWN are gone; remove them from the list: {gone:#?}"
    );
}

#[test]
fn the_scan_finds_a_cycle_and_resolves_paths() {
    let from: Module = vec!["validate".into(), "input".into()];
    let named = named_paths(
        "use super::state::{Flavor, Request};\nlet x = crate::report::table(&run);\nuse crate::{a, b::c};",
        &from,
    );
    assert!(named.contains(&vec!["validate".into(), "state".into(), "Flavor".into()]));
    assert!(named.contains(&vec!["report".into(), "table".into()]));
    assert!(named.contains(&vec!["a".into()]));
    assert!(named.contains(&vec!["b".into()]));

    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    let (a, b, c): (Module, Module, Module) =
        (vec!["a".into()], vec!["b".into()], vec!["c".into()]);
    edges.entry(a.clone()).or_default().insert(b.clone());
    edges.entry(b.clone()).or_default().insert(a.clone());
    edges.entry(b.clone()).or_default().insert(c.clone());
    assert_eq!(cycles(&edges), vec![vec![a, b]]);
}

#[test]
fn the_scan_follows_re_exports() {
    // `b` names `crate::X`, which the root re-exports from `a`; `a` names
    // `b` directly: a cycle visible only through the re-export.
    let src = std::env::temp_dir().join(format!("rgi-module-graph-{}", std::process::id()));
    let _ = fs::remove_dir_all(&src);
    fs::create_dir_all(&src).unwrap();
    fs::write(
        src.join("lib.rs"),
        "mod a;\nmod b;\npub use a::{X, Z as W};\n",
    )
    .unwrap();
    fs::write(
        src.join("a.rs"),
        "pub struct X;\npub struct Z;\nuse crate::b::Y;\n",
    )
    .unwrap();
    fs::write(src.join("b.rs"), "pub struct Y;\nfn f(_: crate::X) {}\n").unwrap();
    let found = cycles(&edges(&src));
    let _ = fs::remove_dir_all(&src);
    assert_eq!(found, [vec![vec!["a".to_owned()], vec!["b".to_owned()]]]);
}
