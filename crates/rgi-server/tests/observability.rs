//! The spans and events a subscriber sees: one span per connection (peer),
//! one per request (method, target, status), and the request's end (status,
//! bytes, duration).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use rgi_server::Server;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn request_spans_carry_method_target_status_bytes_and_duration() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let server = start(Server::builder());
    let address = addr(&server);
    let received = run(raw_exchange(
        address,
        b"GET /echo?q=1 HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ));
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200 OK"));
    // A refused request is logged inside its own request span, which sits
    // in its connection's.
    let refused = run(raw_exchange(
        address,
        b"GET /twice HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
    ));
    assert!(String::from_utf8_lossy(&refused).starts_with("HTTP/1.1 400"));
    server.shutdown();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let finished = log
        .lines()
        .find(|line| line.contains("response finished"))
        .unwrap_or_else(|| panic!("no request end in:\n{log}"));
    assert!(
        finished.contains("connection{peer=127.0.0.1:"),
        "{finished}"
    );
    assert!(
        finished.contains("request{method=GET target=/echo?q=1 status=200}"),
        "{finished}"
    );
    assert!(finished.contains("bytes=3"), "{finished}");
    assert!(finished.contains("duration_us="), "{finished}");
    let refusal = log
        .lines()
        .find(|line| line.contains("request refused before the application"))
        .unwrap_or_else(|| panic!("no refusal in:\n{log}"));
    assert!(refusal.contains("connection{peer=127.0.0.1:"), "{refusal}");
    assert!(
        refusal.contains("request{method=GET target=/twice"),
        "{refusal}"
    );
}
