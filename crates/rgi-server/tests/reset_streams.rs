//! The rapid-reset lesson (CVE-2023-44487) on the blocking pool: an HTTP/2
//! stream reset while its job waits in the pool's queue never starts the
//! application, so a client that opens and cancels streams cannot make the
//! server do the work it gave up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use common::{addr, body_text, eventually, h2_client, run};
use http::{Request, StatusCode, Version};
use rgi::{Environ, ResponseHead};
use rgi_server::{PoolConfig, Server};

/// Streams cancelled while queued.
const CANCELLED: usize = 6;
/// How long the held request may wait for its release.
const BOUND: Duration = Duration::from_secs(10);

fn h2_get(path: &str) -> Request<http_body_util::Full<Bytes>> {
    Request::get(format!("http://test.example{path}"))
        .version(Version::HTTP_2)
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request")
}

#[test]
fn a_stream_reset_while_its_job_is_queued_never_runs_the_application() {
    common::log();
    let calls = Arc::new(AtomicUsize::new(0));
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    let released = Mutex::new(released);
    let app = {
        let calls = Arc::clone(&calls);
        // No hint that it never blocks: every request runs on the pool.
        rgi::from_fn(move |environ: Environ, start| {
            if environ.path_info().as_bytes() == b"/hold" {
                entered_tx.lock().unwrap().send(()).unwrap();
                released.lock().unwrap().recv_timeout(BOUND).unwrap();
            } else {
                calls.fetch_add(1, Ordering::SeqCst);
            }
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(rgi::from_iter(["done"]))
        })
    };
    // One thread: while `/hold` runs, every other job waits in the queue.
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .pool(PoolConfig {
            threads: 1,
            queue: 16,
            per_connection: 16,
        })
        .serve_sync(app)
        .expect("server starts");
    let address = addr(&server);
    run(async {
        let sender = h2_client(address).await;
        let held = {
            let mut sender = sender.clone();
            tokio::spawn(async move { sender.send_request(h2_get("/hold")).await })
        };
        tokio::task::spawn_blocking(move || entered.recv_timeout(BOUND))
            .await
            .unwrap()
            .expect("the held request reached the application");

        let mut cancelled = Vec::new();
        for _ in 0..CANCELLED {
            let mut sender = sender.clone();
            cancelled.push(tokio::spawn(async move {
                sender.send_request(h2_get("/count")).await
            }));
        }
        assert!(
            eventually(|| server
                .pool_stats()
                .is_some_and(|stats| stats.queued == CANCELLED))
            .await,
            "the cancelled requests never queued: {:?}",
            server.pool_stats()
        );
        // Dropping a response future resets its stream (RST_STREAM CANCEL).
        for task in &cancelled {
            task.abort();
        }
        for task in cancelled {
            assert!(task.await.unwrap_err().is_cancelled());
        }
        // The resets reach the server in the connection's order, ahead of
        // this request, which is queued behind the cancelled jobs.
        let after = {
            let mut sender = sender.clone();
            tokio::spawn(async move { sender.send_request(h2_get("/count")).await })
        };
        assert!(
            eventually(|| server
                .pool_stats()
                .is_some_and(|stats| stats.queued == CANCELLED + 1))
            .await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).unwrap();

        let held = held.await.unwrap().expect("the held response");
        assert_eq!(body_text(held).await, "done");
        let after = after.await.unwrap().expect("the response after the resets");
        assert_eq!(after.status(), StatusCode::OK);
        assert_eq!(body_text(after).await, "done");
    });
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the request that was not reset reached the application"
    );
    let stats = server.pool_stats().unwrap();
    assert_eq!((stats.running, stats.queued), (0, 0));
    server.shutdown();
}
