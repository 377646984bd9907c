//! `/proc` read back for this very process. Alone in its test binary: the
//! context switches are summed over the live threads, and other tests'
//! threads exiting would take theirs out of the sum.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rgi_bench::server_bench::procfs::Process;

#[test]
fn this_process_reads_back_through_proc() {
    let process = Process::current();
    let sample = process.sample().unwrap();
    assert!(sample.rss_kib > 0);
    assert!(sample.threads >= 1);
    // Sleeping switches the thread out voluntarily.
    std::thread::sleep(Duration::from_millis(5));
    assert!(process.thread_switches().unwrap() > sample.switches);
    assert!(
        process
            .open_files_limit()
            .unwrap()
            .is_none_or(|limit| limit > 0)
    );
}
