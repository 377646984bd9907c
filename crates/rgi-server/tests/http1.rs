//! HTTP/1.1 over real loopback sockets: keep-alive, pipelining, chunked
//! bodies both ways, HEAD, the head and idle timers, request and connection
//! limits, Unix sockets, and a bounded load test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use rgi_server::{Limits, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = start(Server::builder());
    let address = addr(&server);
    run(async {
        let mut sender = h1_client(address).await;
        for _ in 0..5 {
            let response = sender.send_request(get("/")).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(body_text(response).await, "hello");
        }
    });
    let stats = server.stats();
    assert_eq!(stats.accepted_connections, 1);
    assert_eq!(stats.requests, 5);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start(Server::builder());
    let address = addr(&server);
    let received = run(async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(
                b"GET /sleep/50 HTTP/1.1\r\nhost: a\r\n\r\n\
                  GET /version HTTP/1.1\r\nhost: a\r\n\r\n\
                  GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
            )
            .await
            .expect("write");
        read_to_close(&mut stream).await
    });
    let text = String::from_utf8_lossy(&received);
    let slept = text.find("slept").expect("first answer");
    let hello = text.find("hello").expect("third answer");
    assert!(slept < hello, "{text}");
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
}

#[test]
fn chunked_request_and_response_bodies() {
    let server = start(Server::builder());
    let address = addr(&server);
    let received = run(raw_exchange(
        address,
        b"POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    ));
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{text}"
    );
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    // The echo answers in chunks of seven bytes: "hello w" then "orld".
    assert_eq!(body, "7\r\nhello w\r\n4\r\norld\r\n0\r\n\r\n", "{text}");
}

#[test]
fn head_gets_the_head_without_the_body() {
    let server = start(Server::builder());
    let address = addr(&server);
    run(async {
        let mut sender = h1_client(address).await;
        let request = Request::builder()
            .method(Method::HEAD)
            .uri("/")
            .header("host", "a")
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-length"], "5");
        assert_eq!(body_text(response).await, "");
        // The connection is still usable: the body was not sent.
        let response = sender
            .send_request(get("/"))
            .await
            .expect("second response");
        assert_eq!(body_text(response).await, "hello");
    });
}

#[test]
fn partial_head_gets_408_when_its_time_runs_out() {
    let server = start(
        Server::builder().limits(Limits::default().header_read_timeout(Duration::from_millis(300))),
    );
    let address = addr(&server);
    let (received, elapsed) = run(async {
        let started = Instant::now();
        let received = raw_exchange(address, b"GET / HTTP/1.1\r\nhost: a\r\n").await;
        (received, started.elapsed())
    });
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    assert!(text.contains("connection: close"), "{text}");
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
}

#[test]
fn silent_connection_is_closed_without_an_answer() {
    let server = start(
        Server::builder().limits(Limits::default().header_read_timeout(Duration::from_millis(200))),
    );
    let address = addr(&server);
    let received = run(raw_exchange(address, b""));
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
}

#[test]
fn idle_keep_alive_connection_is_closed_silently() {
    let server = start(
        Server::builder().limits(Limits::default().keep_alive_idle(Duration::from_millis(300))),
    );
    let address = addr(&server);
    let (received, elapsed) = run(async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .expect("write");
        let started = Instant::now();
        (read_to_close(&mut stream).await, started.elapsed())
    });
    let text = String::from_utf8_lossy(&received);
    // Exactly the one response, then a close with nothing more (no 408).
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
    assert!(text.ends_with("hello"), "{text}");
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn max_requests_per_connection_closes_after_the_last() {
    let server =
        start(Server::builder().limits(Limits::default().max_requests_per_connection(Some(2))));
    let address = addr(&server);
    let received = run(raw_exchange(
        address,
        b"GET / HTTP/1.1\r\nhost: a\r\n\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n",
    ));
    let text = String::from_utf8_lossy(&received);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert!(text.contains("connection: close"), "{text}");
}

#[test]
fn oversized_head_gets_431() {
    log();
    let server = start(Server::builder().limits(Limits::default().max_headers(3)));
    let address = addr(&server);
    let received = run(raw_exchange(
        address,
        b"GET / HTTP/1.1\r\nhost: a\r\nx-1: 1\r\nx-2: 2\r\nx-3: 3\r\n\r\n",
    ));
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 431"), "[{text}]");
}

#[test]
fn max_connections_keeps_the_excess_waiting() {
    let server = start(Server::builder().limits(Limits::default().max_connections(1)));
    let address = addr(&server);
    run(async {
        let mut first = TcpStream::connect(address).await.expect("first");
        first
            .write_all(b"GET /sleep/400 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let second = raw_exchange(
            address,
            b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
        )
        .await;
        let waited = started.elapsed();
        assert!(String::from_utf8_lossy(&second).ends_with("hello"));
        // The second was served only once the first connection ended.
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        let first = read_to_close(&mut first).await;
        assert!(String::from_utf8_lossy(&first).ends_with("slept"));
    });
    assert_eq!(server.stats().accepted_connections, 2);
}

#[test]
fn counters_report_open_connections_and_in_flight_requests() {
    let server = start(Server::builder());
    let address = addr(&server);
    let handle = server.shutdown_handle();
    run(async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(b"GET /sleep/500 HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .expect("write");
        assert!(
            eventually(|| {
                let stats = handle.stats();
                stats.open_connections == 1 && stats.in_flight_requests == 1
            })
            .await
        );
        let mut buffer = [0_u8; 1024];
        let mut received = Vec::new();
        while !String::from_utf8_lossy(&received).ends_with("slept") {
            let n = stream.read(&mut buffer).await.expect("read");
            assert_ne!(n, 0);
            received.extend_from_slice(&buffer[..n]);
        }
        assert!(eventually(|| handle.stats().in_flight_requests == 0).await);
        drop(stream);
        assert!(eventually(|| handle.stats().open_connections == 0).await);
    });
}

#[test]
fn unix_domain_socket_serves_and_reports_its_path() {
    let directory = std::env::temp_dir().join(format!("rgi-server-test-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temp dir");
    let path = directory.join("http.sock");
    let server = Server::builder()
        .bind_unix(&path)
        .workers(1)
        .serve(factory())
        .expect("serve");
    let received = run(async {
        let mut stream = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        stream
            .write_all(b"GET /info HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received).await;
        received
    });
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.contains(&format!("local=unix:{}", path.display())),
        "{text}"
    );
    assert!(text.contains("peer=unix:(unnamed)"), "{text}");
    server.shutdown();
    assert!(!path.exists(), "the socket file is removed at shutdown");
    let _ = std::fs::remove_dir(&directory);
}

#[test]
fn connection_info_has_both_tcp_addresses() {
    let server = start(Server::builder());
    let address = addr(&server);
    let received = run(raw_exchange(
        address,
        b"GET /info HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    ));
    let text = String::from_utf8_lossy(&received);
    assert!(text.contains(&format!("local={address}")), "{text}");
    assert!(text.contains("peer=127.0.0.1:"), "{text}");
    assert!(text.contains("tls=None"), "{text}");
}

#[test]
fn load_ten_thousand_keep_alive_requests_over_64_clients() {
    const CLIENTS: usize = 64;
    const REQUESTS: usize = 10_000;
    let server = start(Server::builder());
    let address = addr(&server);
    let started = Instant::now();
    let answered = run(async {
        let mut tasks = Vec::with_capacity(CLIENTS);
        for client in 0..CLIENTS {
            let share = REQUESTS / CLIENTS + usize::from(client < REQUESTS % CLIENTS);
            tasks.push(tokio::spawn(async move {
                let mut sender = h1_client(address).await;
                let mut ok = 0;
                for _ in 0..share {
                    let response = sender.send_request(get("/")).await.expect("response");
                    if response.status() == StatusCode::OK && body_text(response).await == "hello" {
                        ok += 1;
                    }
                }
                ok
            }));
        }
        let mut answered = 0;
        for task in tasks {
            answered += task.await.expect("client task");
        }
        answered
    });
    let elapsed = started.elapsed();
    assert_eq!(answered, REQUESTS);
    assert_eq!(server.stats().requests, REQUESTS as u64);
    assert_eq!(server.stats().accepted_connections, CLIENTS as u64);
    assert!(elapsed < BOUND, "{elapsed:?}");
    eprintln!("{REQUESTS} requests over {CLIENTS} keep-alive clients in {elapsed:?}");
}
