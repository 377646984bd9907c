//! Readiness waits on real descriptors, through the poller-backed test
//! driver (`support::poller`: one thread running epoll or kqueue via mio).
//!
//! Every wait carries a generous timeout, so a broken poller fails a test
//! rather than hanging it; only outcomes are asserted, never timings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(unix)]

mod support;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use std::os::fd::AsRawFd;

use rgi_async::{Interest, Readiness, ReadinessError, Source, WaitAnyOutcome, WaitOutcome};
use support::poller::PollerReadiness;
use support::{block_on, poll_once};

/// Long enough never to be reached when the poller works.
const SAFETY: Option<Duration> = Some(Duration::from_secs(10));

fn readiness() -> (Readiness, std::sync::Arc<PollerReadiness>) {
    let service = std::sync::Arc::new(PollerReadiness::new().unwrap());
    let shared: std::sync::Arc<dyn rgi_async::ReadinessService> = service.clone();
    (Readiness::from_arc(shared), service)
}

#[test]
fn becomes_readable_after_another_thread_writes() {
    let (readiness, _service) = readiness();
    let (reader, mut writer) = UnixStream::pair().unwrap();
    let notifier = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        writer.write_all(b"ping").unwrap();
        writer
    });
    let outcome = block_on(readiness.wait(&reader, Interest::READABLE, SAFETY)).unwrap();
    let WaitOutcome::Ready(ready) = outcome else {
        panic!("expected readiness, got {outcome:?}");
    };
    assert!(ready.is_readable());
    drop(notifier.join().unwrap());
}

#[test]
fn an_already_readable_source_is_ready_at_once() {
    let (readiness, _service) = readiness();
    let (reader, mut writer) = UnixStream::pair().unwrap();
    writer.write_all(b"x").unwrap();
    let outcome = block_on(readiness.wait(&reader, Interest::READABLE, SAFETY)).unwrap();
    assert!(matches!(outcome, WaitOutcome::Ready(ready) if ready.is_readable()));
}

#[test]
fn a_wait_without_a_writer_times_out() {
    let (readiness, service) = readiness();
    let (reader, _writer) = UnixStream::pair().unwrap();
    let outcome =
        block_on(readiness.wait(&reader, Interest::READABLE, Some(Duration::from_millis(50))))
            .unwrap();
    assert_eq!(outcome, WaitOutcome::TimedOut);
    assert_eq!(service.registered(), 0);
}

#[test]
fn a_zero_timeout_checks_once() {
    let (readiness, _service) = readiness();
    let (reader, _writer) = UnixStream::pair().unwrap();
    let outcome =
        block_on(readiness.wait(&reader, Interest::READABLE, Some(Duration::ZERO))).unwrap();
    assert_eq!(outcome, WaitOutcome::TimedOut);
}

#[test]
fn a_closed_peer_reports_hangup() {
    let (readiness, _service) = readiness();
    let (reader, writer) = UnixStream::pair().unwrap();
    drop(writer);
    let outcome = block_on(readiness.wait(&reader, Interest::READABLE, SAFETY)).unwrap();
    assert!(matches!(outcome, WaitOutcome::Ready(ready) if ready.is_hangup()));
}

#[test]
fn wait_any_reports_the_index_of_the_ready_source() {
    let (readiness, _service) = readiness();
    let (first, _first_writer) = UnixStream::pair().unwrap();
    let (second, mut second_writer) = UnixStream::pair().unwrap();
    let notifier = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        second_writer.write_all(b"2").unwrap();
        second_writer
    });
    let outcome = block_on(readiness.wait_any(
        [
            ((&first).into(), Interest::READABLE),
            ((&second).into(), Interest::READABLE),
        ],
        SAFETY,
    ))
    .unwrap();
    let WaitAnyOutcome::Ready(ready) = outcome else {
        panic!("expected readiness, got {outcome:?}");
    };
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].0, 1);
    assert!(ready[0].1.is_readable());
    drop(notifier.join().unwrap());
}

#[test]
fn wait_any_times_out_when_nothing_is_ready() {
    let (readiness, _service) = readiness();
    let (first, _a) = UnixStream::pair().unwrap();
    let (second, _b) = UnixStream::pair().unwrap();
    let outcome = block_on(readiness.wait_any(
        [
            ((&first).into(), Interest::READABLE),
            ((&second).into(), Interest::READABLE),
        ],
        Some(Duration::from_millis(50)),
    ))
    .unwrap();
    assert_eq!(outcome, WaitAnyOutcome::TimedOut);
}

#[test]
fn an_empty_socket_is_writable_at_once() {
    let (readiness, _service) = readiness();
    let (socket, _peer) = UnixStream::pair().unwrap();
    let outcome = block_on(readiness.wait(&socket, Interest::WRITABLE, SAFETY)).unwrap();
    let WaitOutcome::Ready(ready) = outcome else {
        panic!("expected readiness, got {outcome:?}");
    };
    assert!(ready.is_writable());
}

// kqueue accepts regular files (always ready); epoll refuses them.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn a_regular_file_is_unpollable() {
    use std::os::fd::AsRawFd;

    let (readiness, service) = readiness();
    let file = std::fs::File::open(env!("CARGO_MANIFEST_DIR").to_owned() + "/Cargo.toml").unwrap();
    let error = block_on(readiness.wait(&file, Interest::READABLE, SAFETY)).unwrap_err();
    let rgi_async::ReadinessError::Unpollable { fd, .. } = error else {
        panic!("expected Unpollable, got {error:?}");
    };
    assert_eq!(fd, file.as_raw_fd());
    assert_eq!(service.registered(), 0);
}

#[test]
fn dropping_a_pending_wait_deregisters_it() {
    let (readiness, service) = readiness();
    let (reader, mut writer) = UnixStream::pair().unwrap();
    let mut pending = readiness.wait(&reader, Interest::READABLE, None);
    assert!(poll_once(&mut pending).is_pending());
    assert_eq!(service.registered(), 1);
    drop(pending);
    assert_eq!(service.registered(), 0);

    // The descriptor is free again: a later wait on it works.
    writer.write_all(b"later").unwrap();
    let outcome = block_on(readiness.wait(&reader, Interest::READABLE, SAFETY)).unwrap();
    assert!(matches!(outcome, WaitOutcome::Ready(ready) if ready.is_readable()));
    assert_eq!(service.registered(), 0);
}

#[test]
fn many_sequential_waits_on_one_descriptor() {
    let (readiness, service) = readiness();
    let (reader, mut writer) = UnixStream::pair().unwrap();
    for round in 0..20_u8 {
        writer.write_all(&[round]).unwrap();
        let outcome = block_on(readiness.wait(&reader, Interest::READABLE, SAFETY)).unwrap();
        assert!(matches!(outcome, WaitOutcome::Ready(ready) if ready.is_readable()));
        let mut byte = [0_u8; 1];
        std::io::Read::read_exact(&mut &reader, &mut byte).unwrap();
        assert_eq!(byte[0], round);
    }
    assert_eq!(service.registered(), 0);
}

#[test]
fn dropping_the_service_stops_its_thread() {
    let service = PollerReadiness::new().unwrap();
    drop(service); // joins the poller thread; returning at all is the test
}

#[test]
fn a_real_pipe_wakes_the_wait_when_written_and_times_out_when_not() {
    let (readiness, _service) = readiness();
    let (reader, mut writer) = std::io::pipe().unwrap();
    let outcome =
        block_on(readiness.wait(&reader, Interest::READABLE, Some(Duration::from_millis(50))))
            .unwrap();
    assert!(matches!(outcome, WaitOutcome::TimedOut), "{outcome:?}");
    let notifier = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        writer.write_all(b"wake").unwrap();
        writer
    });
    let outcome = block_on(readiness.wait(&reader, Interest::READABLE, SAFETY)).unwrap();
    assert!(
        matches!(outcome, WaitOutcome::Ready(ready) if ready.is_readable()),
        "{outcome:?}"
    );
    drop(notifier.join().unwrap());
}

#[test]
fn a_pipe_whose_writer_closed_reports_hangup_or_readable() {
    let (readiness, _service) = readiness();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(writer);
    let outcome = block_on(readiness.wait(&reader, Interest::READABLE, SAFETY)).unwrap();
    assert!(
        matches!(outcome, WaitOutcome::Ready(ready) if ready.is_hangup() || ready.is_readable()),
        "{outcome:?}"
    );
}

#[test]
fn d8_a_leaked_wait_keeps_nothing_open() {
    let (readiness, _service) = readiness();
    let (waited, peer) = UnixStream::pair().unwrap();
    let mut pending = readiness.wait(&waited, Interest::READABLE, None);
    assert!(poll_once(&mut pending).is_pending());
    #[expect(
        clippy::mem_forget,
        reason = "the defect is about a wait leaked this way"
    )]
    std::mem::forget(pending);
    drop(waited);
    // Had the wait kept a duplicate, the socket would still be open and
    // the peer's read would block instead of seeing the end.
    peer.set_nonblocking(true).unwrap();
    let read = std::io::Read::read(&mut &peer, &mut [0_u8; 8]);
    assert!(
        matches!(read, Ok(0)),
        "the peer did not see the close: {read:?}"
    );
}

#[test]
fn d8_a_second_wait_on_a_held_descriptor_is_refused_and_the_first_goes_on() {
    let (readiness, service) = readiness();
    let (reader, mut writer) = UnixStream::pair().unwrap();
    let mut first = readiness.wait(&reader, Interest::READABLE, SAFETY);
    assert!(poll_once(&mut first).is_pending());
    let mut second = readiness.wait(&reader, Interest::WRITABLE, SAFETY);
    let refused = poll_once(&mut second);
    assert!(
        matches!(
            refused,
            std::task::Poll::Ready(Err(ReadinessError::AlreadyWaited { fd })) if fd == reader.as_raw_fd()
        ),
        "{refused:?}"
    );
    drop(second);
    assert_eq!(
        service.registered(),
        1,
        "the first wait keeps its registration"
    );
    writer.write_all(b"x").unwrap();
    let outcome = block_on(first).unwrap();
    assert!(matches!(outcome, WaitOutcome::Ready(ready) if ready.is_readable()));
    assert_eq!(service.registered(), 0);
}

#[test]
fn d8_a_wait_any_listing_one_descriptor_twice_is_refused() {
    let (readiness, service) = readiness();
    let (reader, _writer) = UnixStream::pair().unwrap();
    let sources = [
        (Source::from(&reader), Interest::READABLE),
        (Source::from(&reader), Interest::WRITABLE),
    ];
    let result = block_on(readiness.wait_any(sources, SAFETY));
    assert!(
        matches!(result, Err(ReadinessError::AlreadyWaited { fd }) if fd == reader.as_raw_fd()),
        "{result:?}"
    );
    assert_eq!(service.registered(), 0, "the first registration was undone");
}

#[test]
fn d8_a_resolved_wait_frees_its_descriptor_even_while_its_future_is_kept() {
    let (readiness, service) = readiness();
    let (reader, mut writer) = UnixStream::pair().unwrap();
    writer.write_all(b"x").unwrap();
    let mut kept = readiness.wait(&reader, Interest::READABLE, SAFETY);
    let mut outcome = poll_once(&mut kept);
    for _ in 0..1000 {
        if outcome.is_ready() {
            break;
        }
        thread::sleep(Duration::from_millis(5));
        outcome = poll_once(&mut kept);
    }
    assert!(matches!(
        outcome,
        std::task::Poll::Ready(Ok(WaitOutcome::Ready(_)))
    ));
    assert_eq!(service.registered(), 0);
    let again = block_on(readiness.wait(&reader, Interest::READABLE, SAFETY)).unwrap();
    assert!(matches!(again, WaitOutcome::Ready(ready) if ready.is_readable()));
    drop(kept);
}
