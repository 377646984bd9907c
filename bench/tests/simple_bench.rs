//! The rgi-simple-server benchmark's pieces: the thread-per-connection
//! anchor answers exactly the bytes rgi-simple-server answers (the `date`
//! value aside), and the load generators count and check answers from
//! both. Loopback only, small counts, every read bounded.
#![allow(clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rgi_bench::simple_client::{Active, open_idle};

fn simple_server() -> rgi_simple_server::Server {
    let server = rgi_simple_server::Builder::new()
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .workers(2)
        .serve_sync(rgi_bench::apps::sync_hello());
    match server {
        Ok(server) => server,
        Err(error) => panic!("rgi-simple-server did not start: {error}"),
    }
}

/// Sends `request` and reads until `answers` complete answers (each ends
/// after its body; the hello body and an empty 404 are the only ones), or
/// two seconds pass.
fn exchange(addr: SocketAddr, request: &[u8], expect_len: usize) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("timeout: {e}"));
    stream
        .write_all(request)
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut got = Vec::new();
    let mut buffer = [0_u8; 4096];
    let until = Instant::now() + Duration::from_secs(2);
    while got.len() < expect_len && Instant::now() < until {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => got.extend_from_slice(&buffer[..read]),
            Err(_) => {}
        }
    }
    got
}

/// The answers with every `date` value blanked.
fn without_dates(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .split("\r\n")
        .map(|line| {
            if line.starts_with("date: ") {
                "date: -"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn the_anchor_answers_the_same_bytes_as_rgi_simple_server() {
    let server = simple_server();
    let simple = server
        .tcp_addr()
        .unwrap_or_else(|| panic!("no TCP address"));
    let anchor = rgi_bench::threaded::spawn_local().unwrap_or_else(|e| panic!("anchor: {e}"));
    let request = b"GET /hello HTTP/1.1\r\nhost: a\r\n\r\n\
                    GET /hello?x=1 HTTP/1.1\r\nhost: a\r\n\r\n\
                    GET /elsewhere HTTP/1.1\r\nhost: a\r\n\r\n";
    let from_simple = exchange(simple, request, usize::MAX);
    let from_anchor = exchange(anchor, request, from_simple.len());
    assert_eq!(from_simple.matches_count(b"HTTP/1.1 200 OK"), 2);
    assert_eq!(without_dates(&from_anchor), without_dates(&from_simple));
    server.shutdown(Duration::from_secs(1));
}

trait Count {
    fn matches_count(&self, needle: &[u8]) -> usize;
}

impl Count for Vec<u8> {
    fn matches_count(&self, needle: &[u8]) -> usize {
        self.windows(needle.len())
            .filter(|window| *window == needle)
            .count()
    }
}

#[test]
fn the_load_generators_count_every_answer_from_both() {
    let server = simple_server();
    let simple = server
        .tcp_addr()
        .unwrap_or_else(|| panic!("no TCP address"));
    let anchor = rgi_bench::threaded::spawn_local().unwrap_or_else(|e| panic!("anchor: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let deadline = Duration::from_secs(20);
    for addr in [simple, anchor] {
        let idle = open_idle(addr, 20, deadline).unwrap_or_else(|e| panic!("idle: {e}"));
        assert_eq!(idle.len(), 20);
        runtime.block_on(async {
            let mut active = Active::connect(addr, 4)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"));
            let run = active
                .closed(200, deadline)
                .await
                .unwrap_or_else(|e| panic!("closed loop: {e}"));
            assert_eq!(run.requests, 200);
            assert_eq!(run.latencies.count(), 200);
            assert_eq!(run.connection_means.len(), 4);
            // 100 requests in bursts of 16: 7 bursts, 112 requests.
            let run = active
                .pipelined(16, 100, deadline)
                .await
                .unwrap_or_else(|e| panic!("pipelined: {e}"));
            assert_eq!(run.requests, 112);
            assert_eq!(run.latencies.count(), 7);
        });
    }
    server.shutdown(Duration::from_secs(1));
}
