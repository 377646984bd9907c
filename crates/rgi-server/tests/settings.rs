//! Settings that reach the services the builder configures: the pre-read
//! limit of inline applications and the `Retry-After` of a full pool.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{StatusCode, header};
use rgi::{Environ, Hints, InputUse, ResponseHead};
use rgi_server::{Limits, PoolConfig, Server};

fn post(length: usize) -> Vec<u8> {
    let mut request = format!(
        "POST /echo HTTP/1.1\r\nhost: a\r\nconnection: close\r\ncontent-length: {length}\r\n\r\n"
    )
    .into_bytes();
    request.resize(request.len() + length, b'x');
    request
}

#[test]
fn the_pre_read_limit_bounds_bodies_read_for_inline_applications() {
    let app = rgi::from_fn(|mut environ: Environ, start| {
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(header::CONTENT_LENGTH, body.len().into()),
        )?;
        Ok(Bytes::from(body))
    })
    .with_hints(
        Hints::default()
            .with_input(InputUse::Whole)
            .with_may_block(false),
    );
    let limits = Limits::default().max_pre_read_bytes(64);
    assert_eq!(limits.get_max_pre_read_bytes(), 64);
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(1)
        .limits(limits)
        .serve_sync(app)
        .expect("serve");
    let address = addr(&server);

    let within = run(raw_exchange(address, &post(64)));
    let within = String::from_utf8_lossy(&within);
    assert!(within.starts_with("HTTP/1.1 200 OK"), "{within}");
    assert!(within.ends_with(&"x".repeat(64)), "{within}");

    let over = run(raw_exchange(address, &post(65)));
    let over = String::from_utf8_lossy(&over);
    assert!(over.starts_with("HTTP/1.1 413 "), "{over}");
    server.shutdown();
}

#[test]
fn a_full_pool_answers_503_with_the_configured_retry_after() {
    let release = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let app = {
        let (release, entered) = (Arc::clone(&release), Arc::clone(&entered));
        // Blocks its worker (the only one) until the test releases it,
        // bounded so that a failed test cannot leave it running.
        rgi::from_fn(move |_environ: Environ, start| {
            entered.store(true, Ordering::SeqCst);
            let started = Instant::now();
            while !release.load(Ordering::SeqCst) && started.elapsed() < BOUND {
                std::thread::sleep(Duration::from_millis(5));
            }
            start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
            Ok(Bytes::new())
        })
    };
    let limits = Limits::default().retry_after(Duration::from_millis(2_500));
    assert_eq!(limits.get_retry_after(), Duration::from_millis(2_500));
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(1)
        .pool(PoolConfig {
            threads: 1,
            queue: 0,
            per_connection: 1,
        })
        .limits(limits)
        .serve_sync(app)
        .expect("serve");
    let address = addr(&server);
    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";

    let (first, refused) = run(async {
        let first = tokio::spawn(raw_exchange(address, GET));
        assert!(
            eventually(|| entered.load(Ordering::SeqCst)).await,
            "the first request never reached the application"
        );
        let refused = raw_exchange(address, GET).await;
        release.store(true, Ordering::SeqCst);
        (first.await.unwrap(), refused)
    });
    let refused = String::from_utf8_lossy(&refused);
    assert!(
        refused.starts_with("HTTP/1.1 503 "),
        "the second request was not refused: {refused}"
    );
    // 2.5 s rounds up to whole seconds.
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 3\r\n"),
        "{refused}"
    );
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 204 "));
    server.shutdown();
}

#[test]
fn every_setting_reads_back() {
    let limits = Limits::default()
        .max_body_bytes(1_000)
        .max_requests_per_connection(Some(7))
        .max_connection_age(Some(Duration::from_secs(9)));
    assert_eq!(limits.get_max_body_bytes(), 1_000);
    assert_eq!(limits.get_max_requests_per_connection(), Some(7));
    assert_eq!(
        limits.get_max_connection_age(),
        Some(Duration::from_secs(9))
    );
    let h1 = rgi_server::Http1Settings::default().writev(false);
    assert_eq!(h1.get_writev(), Some(false));
    assert!(!h1.get_pipeline_flush());
    let h2 = rgi_server::Http2Settings::default()
        .max_concurrent_streams(8)
        .keep_alive_interval(None);
    assert_eq!(h2.get_max_concurrent_streams(), 8);
    assert_eq!(h2.get_keep_alive_interval(), None);
    assert!(!h2.get_enable_connect_protocol());
}
