//! Every mode answers the same requests with the same bytes (status line,
//! header fields in order, body), `Date` aside, over one keep-alive
//! connection, through the very `serve` path the benchmark measures. One
//! difference is the spec's: an RGI answer to HEAD carries only the
//! Content-Length the application gave (RGI-BODY-15, RGI-CL-6), where bare
//! hyper frames its HEAD answer like the GET one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use rgi_bench::alloc_count::AllocCounts;
use rgi_bench::server::{self, Mode, ServeSummary};

use common::{Answer, read_answer};

/// Hands the server's `listening ADDR` line to the test thread.
struct Announce(mpsc::Sender<String>, Vec<u8>);

impl Write for Announce {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.1.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.1)).into_owned();
        self.0.send(line).map_err(io::Error::other)
    }
}

const EXCHANGES: [(&str, bool); 4] = [
    ("GET /hello HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n", false),
    ("HEAD /hello HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n", true),
    ("GET /elsewhere HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n", false),
    ("GET /hello HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n", false),
];

/// Starts `mode`'s server, sends [`EXCHANGES`] on one connection, closes
/// it, and returns the answers and the server's summary.
fn answers_of(mode: Mode) -> (Vec<Answer>, ServeSummary) {
    let (sender, receiver) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let mut announce = Announce(sender, Vec::new());
        server::serve(
            mode,
            Duration::from_secs(20),
            AllocCounts::default,
            &mut announce,
        )
    });
    let line = receiver.recv_timeout(Duration::from_secs(10)).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap()
        .parse()
        .unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut answers = Vec::new();
    for (request, head_request) in EXCHANGES {
        writer.write_all(request.as_bytes()).unwrap();
        answers.push(read_answer(&mut reader, head_request));
    }
    writer.shutdown(std::net::Shutdown::Write).unwrap();
    let summary = server.join().unwrap().unwrap();
    (answers, summary)
}

#[test]
fn every_mode_answers_identical_bytes() {
    let (bare, bare_summary) = answers_of(Mode::Bare);
    assert_eq!(bare_summary.served, EXCHANGES.len() as u64);
    assert_eq!(bare[0].head[0], "HTTP/1.1 200 OK");
    assert!(
        bare[0]
            .head
            .contains(&"content-type: text/plain".to_owned())
    );
    assert!(bare[0].head.contains(&"content-length: 13".to_owned()));
    assert_eq!(bare[0].body, b"Hello, world!");
    assert!(
        bare[1].head.contains(&"content-length: 13".to_owned()),
        "HEAD: {:?}",
        bare[1]
    );
    assert_eq!(bare[2].head[0], "HTTP/1.1 404 Not Found");
    // RGI-BODY-15: the hello application declares no length itself, so
    // the server's declaration stays off its HEAD answer.
    let mut expected = bare;
    expected[1].head.retain(|line| line != "content-length: 13");
    assert_eq!(expected[1].head.len(), 2, "{:?}", expected[1]);
    for mode in [Mode::Sync, Mode::Async] {
        let (answers, summary) = answers_of(mode);
        assert_eq!(
            answers,
            expected,
            "{} differs from bare hyper",
            mode.label()
        );
        assert_eq!(summary.served, EXCHANGES.len() as u64, "{}", mode.label());
    }
}
