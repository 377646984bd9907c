//! Offload: result delivery, caught panics, cancellation, saturation and
//! shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};

use rgi_async::{Job, Offload, OffloadError};
use support::{CountingWaker, Queue, Refusing, ThreadPerJob, block_on, poll_once};

#[test]
fn the_future_resolves_to_the_closures_value() {
    let offload = Offload::new(ThreadPerJob);
    assert_eq!(block_on(offload.run(|| 6 * 7)), Ok(42));
}

#[test]
fn the_closure_runs_on_a_service_thread() {
    let offload = Offload::new(ThreadPerJob);
    let here = std::thread::current().id();
    let there = block_on(offload.run(|| std::thread::current().id())).unwrap();
    assert_ne!(here, there);
}

#[test]
fn concurrent_jobs_each_get_their_own_result() {
    let offload = Offload::new(ThreadPerJob);
    let futures: Vec<_> = (0..32u64).map(|n| offload.run(move || n * n)).collect();
    let results: Vec<u64> = futures.into_iter().map(|f| block_on(f).unwrap()).collect();
    assert_eq!(results, (0..32u64).map(|n| n * n).collect::<Vec<_>>());
}

#[test]
fn a_str_panic_becomes_panicked_with_its_message() {
    let offload = Offload::new(ThreadPerJob);
    let result = block_on(offload.run(|| -> () { panic!("static message") }));
    assert_eq!(
        result,
        Err(OffloadError::Panicked {
            message: "static message".into()
        })
    );
}

#[test]
fn a_formatted_panic_becomes_panicked_with_its_message() {
    let queue = Queue::default();
    let offload = Offload::new(queue.clone());
    let mut future = offload.run(|| -> u8 { panic!("code {}", 7) });
    // Runs on this thread: the unwind is caught inside the job.
    queue.run_all();
    assert_eq!(
        poll_once(&mut future),
        Poll::Ready(Err(OffloadError::Panicked {
            message: "code 7".into()
        }))
    );
}

#[test]
fn a_non_string_panic_payload_is_reported_as_such() {
    let offload = Offload::new(ThreadPerJob);
    let result = block_on(offload.run(|| std::panic::panic_any(17_u32)));
    let Err(OffloadError::Panicked { message }) = result else {
        panic!("expected Panicked, got {result:?}");
    };
    assert_eq!(message, "panic payload is not a string");
}

#[test]
fn the_future_is_pending_until_the_job_runs_and_then_woken() {
    let queue = Queue::default();
    let offload = Offload::new(queue.clone());
    let mut future = offload.run(|| "done");
    let (counter, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    assert_eq!(std::pin::Pin::new(&mut future).poll(&mut cx), Poll::Pending);
    assert_eq!(counter.count(), 0);
    assert_eq!(queue.len(), 1);
    queue.run_all();
    assert_eq!(counter.count(), 1);
    assert_eq!(poll_once(&mut future), Poll::Ready(Ok("done")));
}

#[test]
fn a_job_whose_future_was_dropped_before_it_started_is_skipped() {
    let queue = Queue::default();
    let offload = Offload::new(queue.clone());
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let future = offload.run(move || flag.store(true, Ordering::SeqCst));
    drop(future);
    queue.run_all();
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn a_running_job_whose_future_is_dropped_finishes_and_its_result_is_discarded() {
    let offload = Offload::new(ThreadPerJob);
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (finished_tx, finished_rx) = mpsc::channel();
    let future = offload.run(move || {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        finished_tx.send(()).unwrap();
        String::from("discarded")
    });
    started_rx.recv().unwrap();
    drop(future);
    release_tx.send(()).unwrap();
    finished_rx.recv().unwrap();
}

#[test]
fn saturation_is_passed_through_and_the_job_never_runs() {
    let offload = Offload::new(Refusing(OffloadError::Saturated { capacity: 4 }));
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let result = block_on(offload.run(move || flag.store(true, Ordering::SeqCst)));
    assert_eq!(result, Err(OffloadError::Saturated { capacity: 4 }));
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn a_refusal_to_accept_during_shutdown_is_passed_through() {
    let offload = Offload::new(Refusing(OffloadError::ShutDown));
    assert_eq!(block_on(offload.run(|| 1)), Err(OffloadError::ShutDown));
}

#[test]
fn a_job_dropped_unrun_by_the_service_resolves_to_shut_down() {
    let queue = Queue::default();
    let offload = Offload::new(queue.clone());
    let mut future = offload.run(|| 1);
    assert_eq!(poll_once(&mut future), Poll::Pending);
    queue.shut_down();
    assert_eq!(
        poll_once(&mut future),
        Poll::Ready(Err(OffloadError::ShutDown))
    );
}

#[test]
fn a_job_dropped_unrun_on_another_thread_wakes_the_waiting_task() {
    let queue = Queue::default();
    let offload = Offload::new(queue.clone());
    let future = offload.run(|| 1);
    let dropper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        queue.shut_down();
    });
    assert_eq!(block_on(future), Err(OffloadError::ShutDown));
    dropper.join().unwrap();
}

#[test]
fn a_job_made_directly_runs_its_closure() {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let job = Job::new(move || flag.store(true, Ordering::SeqCst));
    assert_eq!(format!("{job:?}"), "Job { .. }");
    job.run();
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn errors_display_their_values() {
    assert_eq!(
        OffloadError::Saturated { capacity: 8 }.to_string(),
        "offload service saturated (capacity 8)"
    );
    assert_eq!(
        OffloadError::Panicked {
            message: "boom".into()
        }
        .to_string(),
        "offloaded job panicked: boom"
    );
    assert_eq!(
        OffloadError::ShutDown.to_string(),
        "offload service shut down before the job ran"
    );
}

#[test]
fn offload_handles_are_cloneable_and_share_the_service() {
    let queue = Queue::default();
    let offload = Offload::new(queue.clone());
    let clone = offload.clone();
    let _a = offload.run(|| 1);
    let _b = clone.run(|| 2);
    assert_eq!(queue.len(), 2);
}

#[test]
#[should_panic(expected = "polled after completion")]
fn polling_a_completed_future_panics() {
    let offload = Offload::new(Refusing(OffloadError::ShutDown));
    let mut future = offload.run(|| 1);
    let _ = poll_once(&mut future);
    let _ = poll_once(&mut future);
}
