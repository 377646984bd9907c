//! The server suite catches broken servers: for every deliberate fault of
//! the toy server, the suite case named in `rgi_toy_server::FAULTS` fails with the
//! expected clause against the faulty toy, and passes against the
//! conforming one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use rgi_conformance::suite;
use rgi_conformance::suite::Verdict;
use rgi_toy_server::{FAULTS, Fault, ToyServer};

/// Runs one row of the table: the case must fail with `clause` against
/// the faulty toy and pass against the conforming one.
fn row(fault: Fault, case_name: &str, clause: &str) -> Result<(), String> {
    let case = suite::case(case_name).ok_or_else(|| format!("no suite case {case_name}"))?;
    if !case.check().clauses().contains(&clause) {
        return Err(format!(
            "{case_name} does not judge {clause} (it judges {:?})",
            case.check().clauses()
        ));
    }
    let broken = case.run(&ToyServer::with_fault(fault));
    match &broken.verdict {
        Verdict::Failed { clause: got, .. } if *got == clause => {}
        other => {
            return Err(format!(
                "{case_name} against {fault:?}: expected a failure of {clause}, got {other:?}"
            ));
        }
    }
    let conforming = case.run(&ToyServer::new());
    if conforming.verdict != Verdict::Passed {
        return Err(format!(
            "{case_name} against the conforming toy: {:?}",
            conforming.verdict
        ));
    }
    Ok(())
}

/// How many rows run at once: most of a faulty row's time is spent
/// waiting for something the broken server never does.
const PARALLEL: usize = 4;

#[test]
fn every_fault_is_caught_with_its_clause() {
    for &(fault, case, clause) in FAULTS {
        assert_eq!(
            fault.clause(),
            clause,
            "{fault:?}: the table and the fault disagree"
        );
        assert_eq!(
            fault.case(),
            Some(case),
            "{fault:?}: the table and the fault disagree"
        );
    }
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                while let Some(&(fault, case, clause)) =
                    FAULTS.get(next.fetch_add(1, Ordering::SeqCst))
                {
                    if let Err(problem) = row(fault, case, clause) {
                        problems.lock().unwrap().push(problem);
                    }
                }
            });
        }
    });
    let problems = problems.into_inner().unwrap();
    assert!(
        problems.is_empty(),
        "{} row(s) failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_fault_is_in_the_table_once() {
    let listed: Vec<Fault> = FAULTS.iter().map(|&(fault, _, _)| fault).collect();
    let unique: HashSet<Fault> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a fault is listed twice");
    for fault in Fault::ALL {
        assert!(unique.contains(fault), "{fault:?} has no row in FAULTS");
        assert_eq!(
            fault.breaks(),
            fault.case().map(|case| (case, fault.clause()))
        );
    }
}

/// The reason the case `case_name` gives against the toy with
/// [`Fault::RetriesFailedCall`], which it must fail with `clause`.
fn retry_caught(case_name: &str, clause: &str) -> Result<String, String> {
    let case = suite::case(case_name).ok_or_else(|| format!("no suite case {case_name}"))?;
    match case
        .run(&ToyServer::with_fault(Fault::RetriesFailedCall))
        .verdict
    {
        Verdict::Failed {
            clause: got,
            reason,
        } if got == clause => Ok(reason),
        other => Err(format!(
            "{case_name}: expected a failure of {clause}, got {other:?}"
        )),
    }
}

/// The retry is seen on the wire (two calls for one request, answered
/// with the second call's 200) and by the validator around the probe
/// (the same response state called twice).
#[test]
fn a_retried_call_is_seen_on_the_wire_and_by_the_validator() {
    let reason = retry_caught("rgi_app_5_a_failed_call_is_not_retried", "RGI-APP-5").unwrap();
    assert!(reason.contains("cost 2 calls"), "{reason}");
    assert!(reason.contains("HTTP/1.1 200 OK"), "{reason}");
    assert!(
        reason.contains("RGI-APP-5 call came a second time with the same response state"),
        "{reason}"
    );
}

/// [`Fault::RetriesFailedCall`] breaks the asynchronous path too, where
/// the same retry breaks `RGIA-APP-1`: the asynchronous twin of its case
/// catches it there, on the wire and through the validator (the table
/// holds one case per fault, the synchronous one), and passes against the
/// conforming toy.
#[test]
fn a_retried_async_call_is_caught_by_the_async_case() {
    let case = "rgia_app_1_a_failed_call_is_not_retried";
    let reason = retry_caught(case, "RGIA-APP-1").unwrap();
    assert!(reason.contains("cost 2 calls"), "{reason}");
    assert!(
        reason.contains("RGIA-APP-1 call came a second time with the same response state"),
        "{reason}"
    );
    row(Fault::RetriesFailedCall, case, "RGIA-APP-1").unwrap();
}
