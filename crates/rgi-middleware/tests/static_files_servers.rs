//! `ServeDir` behind `AccessLog` on real servers over 127.0.0.1: the
//! simple server's synchronous path sends the file with `sendfile` (the
//! body is never pulled for it), its asynchronous path and rgi-server
//! (through hyper) serve it after the switch. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rgi::{Application, Body, BoxError, Environ, FileBody, StartResponse};
use rgi_middleware::{AccessLog, Middleware, ServeDir};

const PATIENCE: Duration = Duration::from_secs(10);

struct Fixture(PathBuf, Vec<u8>);

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture(label: &str) -> Fixture {
    let root = std::env::temp_dir().join(format!(
        "rgi-mw-static-servers-{label}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&root).unwrap();
    // Larger than socket buffers, so that sendfile runs more than once.
    let bytes: Vec<u8> = (0..(1usize << 20))
        .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap())
        .collect();
    std::fs::write(root.join("big.bin"), &bytes).unwrap();
    Fixture(root, bytes)
}

/// Counts the chunks the server had to pull from the file body: none when
/// `sendfile` sent the file.
struct CountPulls<A>(A, Arc<AtomicUsize>);

struct Counted<B>(B, Arc<AtomicUsize>);

impl<A: Application> Application for CountPulls<A> {
    type Body = Counted<A::Body>;
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        Ok(Counted(self.0.call(environ, start)?, Arc::clone(&self.1)))
    }
}

impl<B: Body> Body for Counted<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        let chunk = self.0.next_chunk(start);
        if matches!(&chunk, Some(Ok(bytes)) if !bytes.is_empty()) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
        chunk
    }
    fn size_hint(&self) -> Option<u64> {
        self.0.size_hint()
    }
    fn file(&mut self) -> Option<&mut FileBody> {
        self.0.file()
    }
}

/// One request on a new connection (closed after it); the raw head and
/// the body.
fn fetch(addr: SocketAddr, target: &str, extra: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nhost: x\r\n{extra}connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8(raw[..split].to_vec())
        .unwrap()
        .to_ascii_lowercase();
    (head, raw[split + 4..].to_vec())
}

#[track_caller]
fn check(addr: SocketAddr, bytes: &[u8]) {
    let (head, body) = fetch(addr, "/big.bin", "");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", bytes.len())),
        "{head}"
    );
    assert!(
        head.contains("content-type: application/octet-stream"),
        "{head}"
    );
    assert!(body == bytes, "the file differs");
    let (head, body) = fetch(addr, "/big.bin", "range: bytes=1000-5999\r\n");
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(
        head.contains(&format!("content-range: bytes 1000-5999/{}", bytes.len())),
        "{head}"
    );
    assert!(body == bytes[1000..6000], "the range differs");
}

#[track_caller]
fn check_refusal(addr: SocketAddr) {
    let (head, body) = fetch(addr, "/../etc/passwd", "");
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert_eq!(body, b"not found\n");
}

#[test]
fn simple_server_sync_path_uses_sendfile() {
    let fx = fixture("simple-sync");
    let pulls = Arc::new(AtomicUsize::new(0));
    let app = CountPulls(
        AccessLog::new().wrap(ServeDir::new(&fx.0).unwrap()),
        Arc::clone(&pulls),
    );
    let server = rgi_simple_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .serve_sync(app)
        .unwrap();
    check(server.tcp_addr().unwrap(), &fx.1);
    assert_eq!(
        pulls.load(Ordering::Relaxed),
        0,
        "file bytes were read and copied, not sent by sendfile"
    );
    // The 404's short body is pulled, as it must be.
    check_refusal(server.tcp_addr().unwrap());
    assert_eq!(pulls.load(Ordering::Relaxed), 1);
    server.shutdown(Duration::from_secs(2));
}

#[test]
fn simple_server_async_path_serves_after_the_switch() {
    let fx = fixture("simple-async");
    let server = rgi_simple_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .serve_async(AccessLog::new().wrap(ServeDir::new(&fx.0).unwrap()))
        .unwrap();
    check(server.tcp_addr().unwrap(), &fx.1);
    check_refusal(server.tcp_addr().unwrap());
    server.shutdown(Duration::from_secs(2));
}

#[test]
fn rgi_server_through_hyper_serves_after_the_switch() {
    let fx = fixture("rgi-server");
    let server = rgi_server::Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .shutdown_timeout(Duration::from_secs(2))
        .serve_async(AccessLog::new().wrap(ServeDir::new(&fx.0).unwrap()))
        .unwrap();
    check(server.local_addr().unwrap(), &fx.1);
    check_refusal(server.local_addr().unwrap());
    server.shutdown();
}
