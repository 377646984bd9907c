//! The asynchronous cases against the toy server with each of its
//! asynchronous faults switched on: every fault must be caught by at least
//! one case, with the clause the fault breaks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::thread;

use rgi_conformance::suite;
use rgi_conformance::suite::Verdict;
use rgi_toy_server::{Fault, ToyServer};

/// What the asynchronous cases say about `fault`: (case, clause, reason)
/// for every failure.
fn failures_with(fault: Fault) -> Vec<(&'static str, &'static str, String)> {
    let server = ToyServer::with_fault(fault);
    suite::cases()
        .into_iter()
        .filter(|case| case.name().starts_with("rgia_"))
        .filter_map(|case| match case.run(&server).verdict {
            Verdict::Failed { clause, reason } => Some((case.name(), clause, reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn every_asynchronous_fault_is_caught_with_its_clause() {
    let faults: Vec<Fault> = Fault::ALL
        .iter()
        .copied()
        .filter(|fault| fault.clause().starts_with("RGIA-"))
        .collect();
    assert!(!faults.is_empty());
    let runs: Vec<_> = faults
        .iter()
        .map(|&fault| (fault, thread::spawn(move || failures_with(fault))))
        .collect();
    let mut missed = Vec::new();
    for (fault, run) in runs {
        let failures = run.join().unwrap();
        for (case, clause, reason) in &failures {
            eprintln!("{fault:?}: {case} [{clause}] {reason}");
        }
        if !failures
            .iter()
            .any(|(_, clause, _)| *clause == fault.clause())
        {
            missed.push((fault, fault.clause()));
        }
    }
    assert!(
        missed.is_empty(),
        "faults not caught with their clause: {missed:?}"
    );
}
