#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The error stream: writes reach the log, log failures never reach the
//! application.

use std::io::{self, ErrorKind, Write};
use std::sync::{Arc, Mutex};

use rgi::Errors;

/// A log that records what reached it; optionally accepts only a few bytes
/// per call, to check that messages still arrive whole.
#[derive(Clone, Default)]
struct RecordingLog {
    written: Arc<Mutex<Vec<u8>>>,
    flushes: Arc<Mutex<usize>>,
    max_per_write: Option<usize>,
}

impl Write for RecordingLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let count = self
            .max_per_write
            .map_or(buf.len(), |max| max.min(buf.len()));
        self.written
            .lock()
            .unwrap()
            .extend_from_slice(&buf[..count]);
        Ok(count)
    }

    fn flush(&mut self) -> io::Result<()> {
        *self.flushes.lock().unwrap() += 1;
        Ok(())
    }
}

/// A log whose every operation fails.
struct BrokenLog {
    kind: ErrorKind,
}

impl Write for BrokenLog {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(self.kind, "log unavailable"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::new(self.kind, "log unavailable"))
    }
}

/// A log that accepts nothing (`Ok(0)`), which `write_all` turns into
/// `WriteZero`.
struct FullLog;

impl Write for FullLog {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Ok(0)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn writes_reach_the_sink() {
    let log = RecordingLog::default();
    let mut errors = Errors::new(log.clone());

    errors.write_all(b"first\n").unwrap();
    writeln!(errors, "second: {}", 2).unwrap();
    errors.write_all("non-ASCII: é\n".as_bytes()).unwrap();
    errors.write_all(b"\xff raw bytes\n").unwrap();
    errors.flush().unwrap();

    assert_eq!(
        *log.written.lock().unwrap(),
        b"first\nsecond: 2\nnon-ASCII: \xc3\xa9\n\xff raw bytes\n"
    );
    assert_eq!(*log.flushes.lock().unwrap(), 1);
}

#[test]
fn a_message_arrives_whole_through_a_sink_taking_short_writes() {
    let log = RecordingLog {
        max_per_write: Some(3),
        ..RecordingLog::default()
    };
    let mut errors = Errors::new(log.clone());

    assert_eq!(errors.write(b"one whole message\n").unwrap(), 18);

    assert_eq!(*log.written.lock().unwrap(), b"one whole message\n");
}

#[test]
fn a_failing_sink_does_not_surface_errors() {
    for kind in [
        ErrorKind::BrokenPipe,
        ErrorKind::PermissionDenied,
        ErrorKind::Other,
    ] {
        let mut errors = Errors::new(BrokenLog { kind });
        assert_eq!(errors.write(b"lost").unwrap(), 4);
        errors.write_all(b"lost too").unwrap();
        writeln!(errors, "formatted {}", 1).unwrap();
        errors.flush().unwrap();
    }
}

#[test]
fn a_full_sink_does_not_surface_errors() {
    let mut errors = Errors::new(FullLog);
    assert_eq!(errors.write(b"nowhere to go").unwrap(), 13);
    errors.flush().unwrap();
}

#[test]
fn discard_and_stderr_accept_writes() {
    let mut discard = Errors::discard();
    assert_eq!(discard.write(b"dropped").unwrap(), 7);
    discard.flush().unwrap();

    let mut stderr = Errors::stderr();
    stderr
        .write_all(b"rgi errors test: expected line on stderr\n")
        .unwrap();
    stderr.flush().unwrap();
}

#[test]
fn debug_names_the_sink_kind() {
    assert_eq!(format!("{:?}", Errors::stderr()), "Errors { sink: Stderr }");
    assert_eq!(
        format!("{:?}", Errors::discard()),
        "Errors { sink: Discard }"
    );
    assert_eq!(
        format!("{:?}", Errors::new(FullLog)),
        "Errors { sink: Custom }"
    );
}

#[test]
fn errors_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Errors>();
}
