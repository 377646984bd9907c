//! Runs the whole corpus through the kit and prints the catch rate.
//!
//! A miss or a false positive is the measurement, never a failure: the
//! test fails only when the harness itself is broken (an empty list, a
//! duplicate name, a corpus too small to mean anything).

#![allow(clippy::print_stdout, reason = "the table is the test's output")]

use std::collections::HashSet;
use std::time::Duration;

use rgi_fault_corpus::{Expect, Interface, Outcome, components, render, run};

/// How long one component may take before it counts as hung; generous,
/// because two cores are shared with other builds.
fn timeout() -> Duration {
    let secs = std::env::var("RGI_CORPUS_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    Duration::from_secs(secs)
}

#[test]
fn catch_rate() {
    let all = components();
    let broken = all
        .iter()
        .filter(|c| matches!(c.expect, Expect::Broken { .. }))
        .count();
    let correct = all.len() - broken;
    assert!(broken > 0, "the broken component list is empty");
    let mut names = HashSet::new();
    for c in &all {
        assert!(names.insert(c.name), "duplicate component name {}", c.name);
    }
    let only = std::env::var("RGI_CORPUS_ONLY").ok();
    let selected: Vec<_> = all
        .iter()
        .copied()
        .filter(|c| only.as_deref().is_none_or(|p| c.name.contains(p)))
        .collect();
    // Many components panic on purpose; one line each, no backtraces.
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(ToString::to_string).unwrap_or_default();
        eprintln!("(expected panic in a component at {at})");
    }));
    let records = run(&selected, timeout());
    drop(std::panic::take_hook());
    let table = render(&records);
    println!("{table}");
    let missed: Vec<_> = records
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Caught | Outcome::Clean))
        .map(|r| r.component.name)
        .collect();
    println!("not caught cleanly: {missed:?}");
    if only.is_none() {
        assert!(correct > 0, "the correct component list is empty");
        assert!(
            broken >= 80,
            "the corpus promises at least 80 broken components, has {broken}"
        );
        assert!(
            correct >= 20,
            "the corpus promises at least 20 correct components, has {correct}"
        );
        let async_broken = all
            .iter()
            .filter(|c| {
                c.interface == Interface::Async && matches!(c.expect, Expect::Broken { .. })
            })
            .count();
        assert!(
            async_broken * 3 >= broken,
            "at least a third of the broken components are asynchronous"
        );
        if std::env::var("RGI_CORPUS_WRITE").is_ok_and(|v| v == "1") {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md");
            if let Err(err) = std::fs::write(path, &table) {
                panic!("cannot write {path}: {err}");
            }
        }
    }
}
