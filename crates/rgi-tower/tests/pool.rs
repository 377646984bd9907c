//! The bounded blocking pool: admission, per-connection cap, counters,
//! contained panics, shutdown.

use std::sync::mpsc;
use std::time::Duration;

use rgi_async::{Offload, OffloadError};
use rgi_tower::{Pool, PoolConfig, PoolError};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn refuses_past_threads_plus_queue_and_counts() {
    let pool = Pool::new(PoolConfig {
        threads: 2,
        queue: 1,
        per_connection: 8,
    });
    let (release, blocked) = mpsc::channel::<()>();
    let blocked = std::sync::Arc::new(std::sync::Mutex::new(blocked));
    let (started, running) = mpsc::channel();
    for _ in 0..3 {
        let blocked = blocked.clone();
        let started = started.clone();
        pool.try_execute(move || {
            started.send(()).ok();
            let _ = blocked.lock().map(|rx| rx.recv_timeout(WAIT));
        })
        .unwrap();
    }
    // Two run, one waits in the queue.
    running.recv_timeout(WAIT).unwrap();
    running.recv_timeout(WAIT).unwrap();
    let stats = pool.stats();
    assert_eq!((stats.running, stats.queued, stats.rejected), (2, 1, 0));
    assert_eq!(
        pool.try_execute(|| ()),
        Err(PoolError::Saturated { capacity: 3 })
    );
    assert_eq!(pool.stats().rejected, 1);
    for _ in 0..3 {
        release.send(()).unwrap();
    }
    running.recv_timeout(WAIT).unwrap();
    // Everything drains; the pool admits again.
    let deadline = std::time::Instant::now() + WAIT;
    while pool.stats().running + pool.stats().queued > 0 {
        assert!(std::time::Instant::now() < deadline, "pool never drained");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (done, finished) = mpsc::channel();
    pool.try_execute(move || done.send(7).unwrap()).unwrap();
    assert_eq!(finished.recv_timeout(WAIT).unwrap(), 7);
}

#[test]
fn a_connection_gets_its_share_only() {
    let pool = Pool::new(PoolConfig {
        threads: 4,
        queue: 4,
        per_connection: 2,
    });
    let connection = pool.connection();
    let (release, blocked) = mpsc::channel::<()>();
    let blocked = std::sync::Arc::new(std::sync::Mutex::new(blocked));
    for _ in 0..2 {
        let blocked = blocked.clone();
        connection
            .try_execute(move || {
                let _ = blocked.lock().map(|rx| rx.recv_timeout(WAIT));
            })
            .unwrap();
    }
    assert_eq!(
        connection.try_execute(|| ()),
        Err(PoolError::ConnectionSaturated { per_connection: 2 })
    );
    assert_eq!(connection.admitted(), 2);
    // Another connection is not held back by this one.
    let (done, finished) = mpsc::channel();
    pool.connection()
        .try_execute(move || done.send(()).unwrap())
        .unwrap();
    finished.recv_timeout(WAIT).unwrap();
    release.send(()).unwrap();
    release.send(()).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while connection.admitted() > 0 {
        assert!(std::time::Instant::now() < deadline, "share never returned");
        std::thread::sleep(Duration::from_millis(5));
    }
    connection.try_execute(|| ()).unwrap();
}

#[test]
fn a_panicking_job_keeps_its_thread() {
    let pool = Pool::new(PoolConfig {
        threads: 1,
        queue: 4,
        per_connection: 4,
    });
    pool.try_execute(|| panic!("job failure on purpose"))
        .unwrap();
    let (done, finished) = mpsc::channel();
    pool.try_execute(move || done.send(()).unwrap()).unwrap();
    finished.recv_timeout(WAIT).unwrap();
}

#[test]
fn offload_runs_on_the_pool_and_reports_saturation() {
    let pool = Pool::new(PoolConfig {
        threads: 1,
        queue: 0,
        per_connection: 1,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let share = pool.connection();
        let offload = Offload::new(share.clone());
        let name = offload.run(|| std::thread::current().name().map(str::to_owned));
        let name = tokio::time::timeout(WAIT, name).await.unwrap().unwrap();
        assert_eq!(name.as_deref(), Some("rgi-pool-0"));
        // The result arrives before the worker gives the job's place back
        // (the connection's share, then the pool's): wait for both, or the
        // next job may be refused for the finished one.
        let deadline = std::time::Instant::now() + WAIT;
        while share.admitted() > 0 || pool.stats().running > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the first job's place was never given back"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        let (release, blocked) = mpsc::channel::<()>();
        let held = offload.run(move || blocked.recv_timeout(WAIT).is_ok());
        let refused = offload.run(|| ()).await;
        assert_eq!(refused, Err(OffloadError::Saturated { capacity: 1 }));
        release.send(()).unwrap();
        assert_eq!(tokio::time::timeout(WAIT, held).await.unwrap(), Ok(true));
    });
}

#[test]
fn shut_down_drops_queued_jobs_unrun_and_refuses() {
    let pool = Pool::new(PoolConfig {
        threads: 1,
        queue: 2,
        per_connection: 4,
    });
    let (release, blocked) = mpsc::channel::<()>();
    let (started, running) = mpsc::channel();
    pool.try_execute(move || {
        started.send(()).ok();
        blocked.recv_timeout(WAIT).ok();
    })
    .unwrap();
    running.recv_timeout(WAIT).unwrap();
    struct Flag(mpsc::Sender<&'static str>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.send("dropped").ok();
        }
    }
    let (report, reports) = mpsc::channel();
    let flag = Flag(report);
    pool.try_execute(move || {
        let flag = flag;
        flag.0.send("ran").ok();
    })
    .unwrap();
    pool.shut_down();
    assert_eq!(reports.recv_timeout(WAIT).unwrap(), "dropped");
    assert_eq!(pool.try_execute(|| ()), Err(PoolError::ShutDown));
    release.send(()).ok();
}
