//! Graceful shutdown on SIGTERM and SIGINT (`ShutdownSignals`, `Server::run_until`),
//! with real signals sent to a child process: this test binary re-executed
//! to run only the ignored test `child_server`, which serves on 127.0.0.1
//! and prints what it does. Each signal goes to that child's pid only, and
//! every wait is bounded (the child is killed if it overstays).
// A failed unwrap in a test is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The child reports to the test through its standard output.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{Body, BoxError, Environ, ResponseHead, StartResponse};
use rustix::process::{Pid, Signal, kill_process};

/// The child's grace period, in milliseconds.
const GRACE_ENV: &str = "RGI_SIMPLE_SIGNALS_GRACE_MS";
/// The longest any step of a test waits.
const PATIENCE: Duration = Duration::from_secs(20);

/// A body that sends a chunk every 50 ms and never ends.
struct Endless;

impl Body for Endless {
    fn next_chunk(&mut self, _: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        std::thread::sleep(Duration::from_millis(50));
        Some(Ok(Bytes::from_static(b"tick\n")))
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        println!("DROPPED /endless");
    }
}

/// The child's application, with lifespan hooks that report themselves:
/// the shut-down must come after the last body was dropped, before the
/// server's run returns.
fn child_app() -> impl rgi::Application {
    rgi::with_lifespan(
        child_routes(),
        |_startup| {
            println!("STARTED");
            Ok(())
        },
        || println!("SHUT DOWN"),
    )
}

fn child_routes() -> impl rgi::Application {
    rgi::from_fn(|environ: Environ, start: &mut StartResponse<'_>| {
        println!("IN FLIGHT {}", environ.raw_path());
        let body: Box<dyn Body> = match environ.raw_path() {
            "/slow" => {
                // Long enough that the signal surely arrives first.
                std::thread::sleep(Duration::from_millis(800));
                Box::new(Bytes::from_static(b"slow done"))
            }
            "/endless" => Box::new(Endless),
            _ => Box::new(Bytes::from_static(b"hello")),
        };
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(body)
    })
}

/// The child: serves until a signal, then reports the cause and returns.
/// Run by the other tests through a re-executed test binary.
#[test]
#[ignore = "the signal tests' child process; runs only when they start it"]
fn child_server() {
    let grace: u64 = std::env::var(GRACE_ENV)
        .expect("started by a signal test")
        .parse()
        .unwrap();
    // Installed before the port is announced: a signal sent as soon as the
    // test reads it is held for `run_until`, never the default action.
    let signals = rgi_simple_server::ShutdownSignals::install().unwrap();
    let server = rgi_simple_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(4)
        .serve_sync(child_app())
        .unwrap();
    println!("LISTENING {}", server.tcp_addr().unwrap().port());
    let cause = server
        .run_until(signals, Duration::from_millis(grace))
        .unwrap();
    println!("STOPPED {cause:?}");
}

/// The child process, its stdout as lines, and its address.
struct Spawned {
    child: Child,
    lines: Receiver<String>,
    addr: SocketAddr,
}

impl Spawned {
    fn start(grace: Duration) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_server",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(GRACE_ENV, grace.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut spawned = Spawned {
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        // The start-up has run by the time the server listens.
        spawned.expect_line("STARTED");
        let port = spawned.expect_line("LISTENING ");
        spawned.addr.set_port(port.parse().unwrap());
        spawned
    }

    /// Waits for a line with `prefix`; what follows it.
    fn expect_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // The harness may print `test child_server ... ` first.
                Ok(line) => {
                    if let Some(at) = line.find(prefix) {
                        return line[at + prefix.len()..].to_owned();
                    }
                }
                Err(error) => {
                    let _ = self.child.kill();
                    panic!("no line {prefix:?} from the child: {error}");
                }
            }
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_child(&self.child);
        kill_process(pid, signal).unwrap();
    }

    /// Waits for the child to exit, killing it after `PATIENCE`.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the child did not exit within {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        stream
    }

    /// Connects until the listener refuses (bounded): the first signal has
    /// been acted on.
    fn wait_until_refused(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(self.addr).is_ok() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the server still accepts {PATIENCE:?} after the signal");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // A failed test must not leave its child running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads until the peer closes; the bytes, and whether it was a clean end
/// (not a timeout).
fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return (out, true);
            }
            Err(_) => return (out, false),
        }
    }
}

#[test]
fn sigterm_lets_the_in_flight_response_finish_and_closes_idle_connections() {
    let mut child = Spawned::start(Duration::from_secs(10));
    // A kept connection, idle when the signal comes.
    let mut idle = child.connect();
    idle.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    child.expect_line("IN FLIGHT /hello");
    let mut first = [0u8; 256];
    let read = idle.read(&mut first).unwrap();
    assert!(first[..read].starts_with(b"HTTP/1.1 200 "));

    let mut slow = child.connect();
    slow.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    child.expect_line("IN FLIGHT /slow");
    child.signal(Signal::TERM);

    let (bytes, closed) = read_to_end(&mut slow);
    let text = String::from_utf8_lossy(&bytes);
    assert!(closed, "the in-flight connection was not closed: {text}");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nslow done"), "{text}");
    assert!(text.contains("content-length: 9\r\n"), "{text}");

    let (rest, closed) = read_to_end(&mut idle);
    assert!(
        closed && rest.is_empty(),
        "the idle connection got {rest:?}"
    );

    let status = child.wait();
    assert!(status.success(), "{status:?}");
    // In this order: a line found skips those before it.
    child.expect_line("SHUT DOWN");
    assert_eq!(child.expect_line("STOPPED "), "Terminate");
}

#[test]
fn sigterm_cuts_a_response_that_outlasts_the_grace_period() {
    let grace = Duration::from_millis(300);
    let mut child = Spawned::start(grace);
    let mut endless = child.connect();
    endless
        .write_all(b"GET /endless HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    child.expect_line("IN FLIGHT /endless");
    let mut head = [0u8; 512];
    let read = endless.read(&mut head).unwrap();
    assert!(head[..read].starts_with(b"HTTP/1.1 200 "));

    let signalled = Instant::now();
    child.signal(Signal::TERM);
    let (bytes, closed) = read_to_end(&mut endless);
    assert!(closed, "the response was not cut");
    assert!(
        !bytes.ends_with(b"0\r\n\r\n"),
        "a cut response must not look complete"
    );
    let status = child.wait();
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= grace,
        "the response was cut before its grace period"
    );
    // The application's shut-down comes after the cut body was dropped,
    // and before the run returns.
    child.expect_line("DROPPED /endless");
    child.expect_line("SHUT DOWN");
    assert_eq!(child.expect_line("STOPPED "), "Terminate");
}

#[test]
fn sigint_stops_an_idle_server() {
    let mut child = Spawned::start(Duration::from_secs(5));
    child.signal(Signal::INT);
    let status = child.wait();
    assert!(status.success(), "{status:?}");
    child.expect_line("SHUT DOWN");
    assert_eq!(child.expect_line("STOPPED "), "Interrupt");
}

#[test]
fn a_second_sigterm_during_the_grace_period_ends_the_process() {
    let mut child = Spawned::start(Duration::from_secs(60));
    let mut endless = child.connect();
    endless
        .write_all(b"GET /endless HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    child.expect_line("IN FLIGHT /endless");
    child.signal(Signal::TERM);
    child.wait_until_refused();
    child.signal(Signal::TERM);
    let status = child.wait();
    assert_eq!(status.signal(), Some(libc_sigterm()), "{status:?}");
}

/// SIGTERM's number, as the exit status reports it.
fn libc_sigterm() -> i32 {
    Signal::TERM.as_raw()
}
