//! `caps::AfterResponseTasks` through `rgi_async::AfterResponse`
//! (spec/rgi-async.md §11).

// Helpers outside `#[test]` functions fail the test that calls them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use rgi_async::AfterError;
use rgi_tower::caps::{AfterConfig, AfterResponseTasks, Shutdown, TokioContext};

/// The bound on everything a test expects to happen.
const BOUND: Duration = Duration::from_secs(5);
/// How long a test gives a wrong implementation to show itself.
const EARLY: Duration = Duration::from_millis(150);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn tasks(rt: &tokio::runtime::Runtime, config: AfterConfig) -> (AfterResponseTasks, Shutdown) {
    let context = TokioContext::new(rt.handle().clone()).unwrap();
    let shutdown = Shutdown::new();
    (
        AfterResponseTasks::new(&context, config, shutdown.clone()),
        shutdown,
    )
}

/// Waits, bounded, for `condition`: counters move just after the task's
/// own last action.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + BOUND;
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn tasks_start_only_once_the_response_is_complete_and_off_the_loop_thread() {
    let rt = runtime();
    let (tasks, _) = tasks(&rt, AfterConfig::default());
    let loop_thread = rt.block_on(async {
        tokio::spawn(async { thread::current().id() })
            .await
            .unwrap()
    });
    let request = tasks.request();
    let (ran, runs) = mpsc::channel();
    request
        .handle()
        .spawn(move || ran.send(thread::current().id()).unwrap())
        .unwrap();
    assert!(
        runs.recv_timeout(EARLY).is_err(),
        "ran before the response was complete"
    );
    assert_eq!(tasks.stats().pending, 1);
    request.complete();
    let task_thread = runs.recv_timeout(BOUND).unwrap();
    assert_ne!(task_thread, loop_thread, "ran on the runtime's worker");
    eventually("the task counted as run", || tasks.stats().ran == 1);
}

#[test]
fn a_dropped_request_counts_as_complete_and_later_spawns_run_at_once() {
    let rt = runtime();
    let (tasks, _) = tasks(&rt, AfterConfig::default());
    let request = tasks.request();
    let handle = request.handle();
    let (ran, runs) = mpsc::channel();
    let first = ran.clone();
    handle.spawn(move || first.send("queued").unwrap()).unwrap();
    // The client went away: the host drops the request's tasks unfinished.
    drop(request);
    assert_eq!(runs.recv_timeout(BOUND).unwrap(), "queued");
    // From a body's drop or an offload job, after the response.
    handle.spawn(move || ran.send("late").unwrap()).unwrap();
    assert_eq!(runs.recv_timeout(BOUND).unwrap(), "late");
}

#[test]
fn spawn_beyond_the_cap_is_rejected_until_tasks_finish() {
    let rt = runtime();
    let config = AfterConfig {
        max_tasks: 2,
        workers: 1,
    };
    let (tasks, _) = tasks(&rt, config);
    let request = tasks.request();
    let handle = request.handle();
    let (ran, runs) = mpsc::channel();
    for name in ["one", "two"] {
        let ran = ran.clone();
        handle.spawn(move || ran.send(name).unwrap()).unwrap();
    }
    let refused = handle.spawn(|| panic!("a rejected task must not run"));
    assert_eq!(refused, Err(AfterError::Rejected { limit: 2 }));
    request.complete();
    assert_eq!(runs.recv_timeout(BOUND).unwrap(), "one");
    assert_eq!(runs.recv_timeout(BOUND).unwrap(), "two");
    // The slots come back once the tasks have finished.
    eventually("the slots freed", || tasks.stats().pending == 0);
    handle.spawn(move || ran.send("three").unwrap()).unwrap();
    assert_eq!(runs.recv_timeout(BOUND).unwrap(), "three");
}

#[test]
fn a_panicking_task_is_contained_and_later_tasks_run() {
    let rt = runtime();
    let (tasks, _) = tasks(
        &rt,
        AfterConfig {
            workers: 1,
            ..AfterConfig::default()
        },
    );
    let request = tasks.request();
    let handle = request.handle();
    let (ran, runs) = mpsc::channel();
    handle
        .spawn(|| std::panic::resume_unwind(Box::new("a task's panic")))
        .unwrap();
    handle.spawn(move || ran.send("after").unwrap()).unwrap();
    request.complete();
    assert_eq!(runs.recv_timeout(BOUND).unwrap(), "after");
    eventually("both tasks counted", || {
        let stats = tasks.stats();
        (stats.ran, stats.panicked) == (2, 1)
    });
}

#[test]
fn workers_are_bounded() {
    let rt = runtime();
    let config = AfterConfig {
        max_tasks: 64,
        workers: 2,
    };
    let (tasks, _) = tasks(&rt, config);
    let request = tasks.request();
    let handle = request.handle();
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (done, dones) = mpsc::channel();
    for _ in 0..8 {
        let (now, most, done) = (Arc::clone(&now), Arc::clone(&most), done.clone());
        handle
            .spawn(move || {
                let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(at_once, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(10));
                now.fetch_sub(1, Ordering::SeqCst);
                done.send(()).unwrap();
            })
            .unwrap();
    }
    request.complete();
    for _ in 0..8 {
        dones.recv_timeout(BOUND).unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 2);
}

#[test]
fn shutdown_refuses_new_tasks_drops_queued_ones_and_waits_for_running_ones() {
    let rt = runtime();
    let (tasks, shutdown) = tasks(
        &rt,
        AfterConfig {
            workers: 1,
            ..AfterConfig::default()
        },
    );
    // One task running (held at a barrier), one queued behind it on the
    // single worker, one still waiting for its response.
    let (running, waiting) = (tasks.request(), tasks.request());
    let gate = Arc::new(Barrier::new(2));
    let (started, starts) = mpsc::channel();
    let (ran, runs) = mpsc::channel::<&str>();
    {
        let (gate, first) = (Arc::clone(&gate), ran.clone());
        running
            .handle()
            .spawn(move || {
                started.send(()).unwrap();
                gate.wait();
                first.send("running").unwrap();
            })
            .unwrap();
        let queued = ran.clone();
        running
            .handle()
            .spawn(move || queued.send("queued").unwrap())
            .unwrap();
        waiting
            .handle()
            .spawn(move || ran.send("waiting").unwrap())
            .unwrap();
    }
    let handle = running.handle();
    running.complete();
    starts.recv_timeout(BOUND).unwrap();

    shutdown.trigger();
    let refused = handle.spawn(|| panic!("refused at shutdown"));
    assert_eq!(refused, Err(AfterError::ShutDown));
    waiting.complete();
    let drained = {
        let tasks = tasks.clone();
        rt.spawn(async move { tasks.drain(BOUND).await })
    };
    thread::sleep(EARLY);
    assert!(
        !drained.is_finished(),
        "drain must wait for the running task"
    );
    gate.wait();
    let report = rt.block_on(drained).unwrap();
    assert_eq!(runs.recv_timeout(BOUND).unwrap(), "running");
    assert!(runs.recv_timeout(EARLY).is_err(), "a dropped task ran");
    assert_eq!((report.dropped, report.still_running), (2, 0));
    assert_eq!(tasks.stats().pending, 0);
}

#[test]
fn drain_gives_up_after_the_grace_period() {
    let rt = runtime();
    let (tasks, shutdown) = tasks(&rt, AfterConfig::default());
    let request = tasks.request();
    let (started, starts) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    request
        .handle()
        .spawn(move || {
            started.send(()).unwrap();
            let _ = released.recv_timeout(BOUND);
        })
        .unwrap();
    request.complete();
    starts.recv_timeout(BOUND).unwrap();
    shutdown.trigger();
    let report = rt.block_on(tasks.drain(Duration::from_millis(50)));
    assert_eq!((report.dropped, report.still_running), (0, 1));
    release.send(()).unwrap();
}
