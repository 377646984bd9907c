//! Graceful shutdown over loopback: in-flight responses finish, the grace
//! period cuts off what is left, idle and upgraded connections are handled.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rgi_server::{Limits, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[test]
fn in_flight_response_finishes_and_new_connections_are_refused() {
    let server = start(Server::builder());
    let address = addr(&server);
    let handle = server.shutdown_handle();
    let received = run(async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(b"GET /sleep/500 HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .expect("write");
        assert!(eventually(|| handle.stats().in_flight_requests == 1).await);
        handle.shutdown();
        assert!(handle.is_shutting_down());
        // The listener is gone: a new connection is refused or closed unserved.
        let late = tokio::time::timeout(Duration::from_millis(200), async {
            match TcpStream::connect(address).await {
                Err(_) => Vec::new(),
                Ok(mut late) => {
                    let _ = late.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
                    read_to_close(&mut late).await
                }
            }
        })
        .await
        .unwrap_or_default();
        assert!(late.is_empty(), "{}", String::from_utf8_lossy(&late));
        let received = read_to_close(&mut stream).await;
        handle.stopped().await;
        received
    });
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.ends_with("slept"), "{text}");
    assert_eq!(server.stats().open_connections, 0);
    server.wait();
}

#[test]
fn grace_period_cuts_off_what_is_left() {
    let server = start(
        Server::builder().limits(Limits::default().shutdown_grace(Duration::from_millis(300))),
    );
    let address = addr(&server);
    let handle = server.shutdown_handle();
    let (received, elapsed) = run(async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(b"GET /sleep/20000 HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .expect("write");
        assert!(eventually(|| handle.stats().in_flight_requests == 1).await);
        let started = Instant::now();
        handle.shutdown();
        let received = read_to_close(&mut stream).await;
        handle.stopped().await;
        (received, started.elapsed())
    });
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    server.wait();
}

#[test]
fn idle_keep_alive_connections_close_at_once() {
    let server = start(Server::builder());
    let address = addr(&server);
    let handle = server.shutdown_handle();
    let elapsed = run(async {
        let mut sender = h1_client(address).await;
        let response = sender.send_request(get("/")).await.expect("response");
        assert_eq!(body_text(response).await, "hello");
        let started = Instant::now();
        handle.shutdown();
        handle.stopped().await;
        started.elapsed()
    });
    // Far below the 30-second grace period: nothing was in flight.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn upgraded_connections_are_tracked_and_cut_off_after_the_grace_period() {
    let server = start(
        Server::builder().limits(Limits::default().shutdown_grace(Duration::from_millis(400))),
    );
    let address = addr(&server);
    let handle = server.shutdown_handle();
    run(async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(
                b"GET /upgrade HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
            )
            .await
            .expect("write");
        let mut head = Vec::new();
        let mut buffer = [0_u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.expect("read");
            assert_ne!(n, 0, "closed before the 101");
            head.extend_from_slice(&buffer[..n]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"));
        stream.write_all(b"ping").await.expect("write");
        let n = stream.read(&mut buffer).await.expect("echo");
        assert_eq!(&buffer[..n], b"ping");

        let started = Instant::now();
        handle.shutdown();
        // Still counted, and still working, during the grace period.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(handle.stats().open_connections, 1);
        stream.write_all(b"pong").await.expect("write during grace");
        let n = stream.read(&mut buffer).await.expect("echo during grace");
        assert_eq!(&buffer[..n], b"pong");
        // Then cut off.
        let rest = read_to_close(&mut stream).await;
        assert!(rest.is_empty());
        handle.stopped().await;
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(handle.stats().open_connections, 0);
    });
}
