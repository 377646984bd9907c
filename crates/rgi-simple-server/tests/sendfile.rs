//! File bodies on the synchronous path: `sendfile` sends them when the
//! response has a Content-Length, or inside one chunk when it is chunked;
//! the bytes are exactly those the file body would have produced, and the
//! connection stays usable.
// A failed unwrap in a test is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use rgi::{Body, BoxError, Environ, FileBody, ResponseHead, StartResponse};

use common::{connect, read_to_close, responses, start};

/// A file of `len` bytes, none of them repeating with a short period.
fn temp_file(label: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let path = std::env::temp_dir().join(format!(
        "rgi-simple-sendfile-{label}-{}",
        std::process::id()
    ));
    let bytes: Vec<u8> = (0..len)
        .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap())
        .collect();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    (path, bytes)
}

/// A file body that counts the chunks it had to produce by reading: none
/// when `sendfile` sent it all.
struct Counted {
    file: FileBody,
    pulled: Arc<AtomicUsize>,
}

impl Body for Counted {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        let chunk = self.file.next_chunk(start);
        if matches!(&chunk, Some(Ok(bytes)) if !bytes.is_empty()) {
            self.pulled.fetch_add(1, Ordering::Relaxed);
        }
        chunk
    }

    fn size_hint(&self) -> Option<u64> {
        self.file.size_hint()
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        Some(&mut self.file)
    }
}

/// Serves `/whole` as the whole file and `/range` as bytes 1000..1000+5000.
fn file_app(path: PathBuf, pulled: Arc<AtomicUsize>) -> impl rgi::Application {
    rgi::from_fn(move |environ: Environ, start: &mut StartResponse<'_>| {
        let file = std::fs::File::open(&path)?;
        let file = match environ.raw_path() {
            "/range" => FileBody::range(file, 1000, 5000)?,
            _ => FileBody::new(file)?,
        };
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Counted {
            file,
            pulled: Arc::clone(&pulled),
        })
    })
}

#[test]
fn a_file_body_goes_out_by_sendfile_exactly_and_keeps_the_connection() {
    // Larger than the socket buffers, so that sendfile is called more
    // than once while the client reads.
    let (path, bytes) = temp_file("whole", 3 << 20);
    let pulled = Arc::new(AtomicUsize::new(0));
    let server = start(file_app(path.clone(), Arc::clone(&pulled)));
    let addr = server.tcp_addr().unwrap();

    let mut stream = connect(addr);
    stream
        .write_all(
            b"GET /whole HTTP/1.1\r\nhost: x\r\n\r\n\
              GET /range HTTP/1.1\r\nhost: x\r\n\r\n\
              HEAD /whole HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
    let (raw, closed) = read_to_close(&mut stream);
    assert!(closed);
    let answers = responses(&raw, &[false, false, true]);
    assert_eq!(answers.len(), 3);

    assert_eq!(answers[0].status, 200);
    assert_eq!(
        answers[0].header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert!(answers[0].body == bytes, "the whole file differs");

    assert_eq!(answers[1].header("content-length"), Some("5000"));
    assert!(answers[1].body == bytes[1000..6000], "the range differs");

    // HEAD: nothing sent by sendfile or otherwise; the head carries only
    // what the application gave it (`[RGI-BODY-15]`).
    assert_eq!(answers[2].status, 200);
    assert!(answers[2].body.is_empty());

    assert_eq!(
        pulled.load(Ordering::Relaxed),
        0,
        "file bytes were read and copied instead of sent by sendfile"
    );
    server.shutdown(Duration::from_secs(5));
    std::fs::remove_file(path).unwrap();
}

/// A file body that offers no size hint, so the response is chunked.
struct NoHint(Counted);

impl Body for NoHint {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.0.next_chunk(start)
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        self.0.file()
    }
}

/// Serves the file at `path` (or `len` bytes of it from the start) without
/// a size hint.
fn unhinted_app(
    path: PathBuf,
    len: Option<u64>,
    pulled: Arc<AtomicUsize>,
) -> impl rgi::Application {
    rgi::from_fn(move |_environ: Environ, start: &mut StartResponse<'_>| {
        let file = std::fs::File::open(&path)?;
        let file = match len {
            Some(len) => FileBody::range(file, 0, len)?,
            None => FileBody::new(file)?,
        };
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(NoHint(Counted {
            file,
            pulled: Arc::clone(&pulled),
        }))
    })
}

#[test]
fn a_chunked_file_response_goes_out_by_sendfile_in_one_chunk() {
    // No length known up front (the application removes the size hint):
    // the response is chunked, and the file's known length is the size of
    // the one chunk sendfile fills (`[RGI-TRAILER-9]`).
    let (path, bytes) = temp_file("chunked", 200_000);
    let pulled = Arc::new(AtomicUsize::new(0));
    let server = start(unhinted_app(path.clone(), None, Arc::clone(&pulled)));
    let mut stream = connect(server.tcp_addr().unwrap());
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let (raw, closed) = read_to_close(&mut stream);
    assert!(closed);
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        raw[head_end..].starts_with(b"30d40\r\n"),
        "one chunk of 200,000 bytes"
    );
    assert!(raw.ends_with(b"\r\n0\r\n\r\n"));
    let answer = &responses(&raw, &[])[0];
    assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
    assert!(answer.body == bytes, "the chunked file differs");
    assert_eq!(pulled.load(Ordering::Relaxed), 0, "read instead of sent");
    server.shutdown(Duration::from_secs(5));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_file_shorter_than_its_chunk_closes_the_connection_without_a_last_chunk() {
    // The file body promises 300,000 bytes of a 100,000-byte file: the
    // chunk cannot be completed, so neither can the response.
    let (path, bytes) = temp_file("short", 100_000);
    let pulled = Arc::new(AtomicUsize::new(0));
    let server = start(unhinted_app(
        path.clone(),
        Some(300_000),
        Arc::clone(&pulled),
    ));
    let mut stream = connect(server.tcp_addr().unwrap());
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let (raw, closed) = read_to_close(&mut stream);
    assert!(closed, "the connection closed");
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let data = &raw[head_end..];
    assert!(
        data.starts_with(b"493e0\r\n"),
        "the chunk announced 300,000 bytes: {:?}",
        String::from_utf8_lossy(&raw[..head_end + 20])
    );
    assert!(
        data[7..] == bytes[..],
        "all the file had, and nothing after it: {} of {}",
        data.len() - 7,
        bytes.len()
    );
    server.shutdown(Duration::from_secs(5));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_client_that_leaves_during_sendfile_costs_only_its_connection() {
    // Far more than the socket buffers hold: the transfer is still going
    // when the client closes.
    let (path, bytes) = temp_file("leaving", 16 << 20);
    let pulled = Arc::new(AtomicUsize::new(0));
    let server = start(file_app(path.clone(), Arc::clone(&pulled)));
    let addr = server.tcp_addr().unwrap();

    let mut leaving = connect(addr);
    leaving
        .write_all(b"GET /whole HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 1024];
    let read = std::io::Read::read(&mut leaving, &mut head).unwrap();
    assert!(head[..read].starts_with(b"HTTP/1.1 200 "));
    drop(leaving);

    // The server (and this process: no SIGPIPE) carries on.
    let mut next = connect(addr);
    next.write_all(b"GET /range HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let (raw, closed) = read_to_close(&mut next);
    assert!(closed);
    let answer = &responses(&raw, &[])[0];
    assert!(answer.body == bytes[1000..6000], "the range differs");
    server.shutdown(Duration::from_secs(5));
    std::fs::remove_file(path).unwrap();
}
