//! `caps::TokioReadiness` through `rgi_async::Readiness`, on real pipes,
//! sockets and files (spec/rgi-async.md §8).

#![cfg(unix)]
// Helpers outside `#[test]` functions fail the test that calls them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rgi_async::{Interest, Readiness, ReadinessError, Source, WaitAnyOutcome, WaitOutcome};
use rgi_tower::caps::TokioReadiness;
use tokio::time::timeout;

/// The bound on every wait a test expects to resolve.
const BOUND: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn service(rt: &tokio::runtime::Runtime) -> (TokioReadiness, Readiness) {
    let service = TokioReadiness::new(rt.handle().clone()).expect("the runtime has its drivers");
    (service.clone(), Readiness::new(service))
}

/// Polls `future` once with a no-op waker.
fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

fn ready(outcome: Result<WaitOutcome, ReadinessError>) -> rgi_async::Ready {
    match outcome {
        Ok(WaitOutcome::Ready(ready)) => ready,
        other => panic!("expected a ready outcome, got {other:?}"),
    }
}

#[test]
fn a_pipe_becomes_readable_when_written() {
    let rt = runtime();
    let (_, readiness) = service(&rt);
    let (reader, mut writer) = std::io::pipe().expect("a pipe");
    rt.block_on(async {
        let wait = readiness.wait(&reader, Interest::READABLE, Some(BOUND * 2));
        let writing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            writer.write_all(b"x").expect("write");
            writer
        });
        let started = Instant::now();
        let seen = ready(timeout(BOUND, wait).await.expect("bounded"));
        assert!(seen.is_readable() && !seen.is_hangup(), "{seen:?}");
        assert!(started.elapsed() >= Duration::from_millis(25));
        drop(writing.await);
    });
}

#[test]
fn a_ready_descriptor_resolves_at_once_level_triggered() {
    let rt = runtime();
    let (_, readiness) = service(&rt);
    let (reader, mut writer) = UnixStream::pair().expect("a pair");
    writer.write_all(b"unread").expect("write");
    rt.block_on(async {
        // The data stays unread: every wait sees it again.
        for _ in 0..3 {
            let wait = readiness.wait(&reader, Interest::READABLE, None);
            let seen = ready(timeout(BOUND, wait).await.expect("bounded"));
            assert!(seen.is_readable());
        }
    });
}

#[test]
fn a_socket_is_writable() {
    let rt = runtime();
    let (_, readiness) = service(&rt);
    let (socket, _peer) = UnixStream::pair().expect("a pair");
    rt.block_on(async {
        let wait = readiness.wait(&socket, Interest::WRITABLE, None);
        let seen = ready(timeout(BOUND, wait).await.expect("bounded"));
        assert!(seen.is_writable() && !seen.is_readable(), "{seen:?}");
        let both = Interest::READABLE | Interest::WRITABLE;
        let wait = readiness.wait(&socket, both, None);
        let seen = ready(timeout(BOUND, wait).await.expect("bounded"));
        assert!(seen.is_writable(), "{seen:?}");
    });
}

#[test]
fn a_wait_times_out_no_sooner_than_asked() {
    let rt = runtime();
    let (service, readiness) = service(&rt);
    let (reader, _writer) = std::io::pipe().expect("a pipe");
    rt.block_on(async {
        let started = Instant::now();
        let limit = Some(Duration::from_millis(50));
        let wait = readiness.wait(&reader, Interest::READABLE, limit);
        let outcome = timeout(BOUND, wait).await.expect("bounded");
        let waited = started.elapsed();
        assert_eq!(outcome.expect("no error"), WaitOutcome::TimedOut);
        assert!(
            waited >= Duration::from_millis(50),
            "timed out after {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(2),
            "timed out after {waited:?}"
        );
    });
    assert_eq!(service.registered(), 0);
}

#[test]
fn a_zero_timeout_checks_once_without_registering() {
    let rt = runtime();
    let (service, readiness) = service(&rt);
    let (reader, mut writer) = UnixStream::pair().expect("a pair");
    rt.block_on(async {
        let mut check = readiness.wait(&reader, Interest::READABLE, Some(Duration::ZERO));
        let Poll::Ready(outcome) = poll_once(check.as_mut()) else {
            panic!("a zero timeout resolves at the first poll");
        };
        assert_eq!(outcome.expect("no error"), WaitOutcome::TimedOut);

        writer.write_all(b"x").expect("write");
        // Registered by another wait in progress: the zero-timeout check
        // needs no registration, so it is honoured (RGIA-READY-21 allows).
        let mut held = readiness.wait(&reader, Interest::READABLE, None);
        let mut check = readiness.wait(&reader, Interest::READABLE, Some(Duration::ZERO));
        let _ = poll_once(held.as_mut());
        assert_eq!(service.registered(), 1);
        let Poll::Ready(outcome) = poll_once(check.as_mut()) else {
            panic!("a zero timeout resolves at the first poll");
        };
        assert!(ready(outcome).is_readable());
        assert!(ready(timeout(BOUND, held).await.expect("bounded")).is_readable());
    });
}

#[test]
fn a_second_wait_on_one_descriptor_is_refused_and_the_first_goes_on() {
    let rt = runtime();
    let (service, readiness) = service(&rt);
    let (reader, mut writer) = UnixStream::pair().expect("a pair");
    rt.block_on(async {
        let mut first = readiness.wait(&reader, Interest::READABLE, Some(BOUND));
        assert!(poll_once(first.as_mut()).is_pending());
        let second = readiness.wait(&reader, Interest::WRITABLE, Some(BOUND));
        match timeout(BOUND, second).await.expect("bounded") {
            Err(ReadinessError::AlreadyWaited { fd }) => assert_eq!(fd, reader.as_raw_fd()),
            other => panic!("expected AlreadyWaited, got {other:?}"),
        }
        assert_eq!(service.registered(), 1);
        writer.write_all(b"x").expect("write");
        assert!(ready(timeout(BOUND, first).await.expect("bounded")).is_readable());
        assert_eq!(service.registered(), 0);
    });
}

#[test]
fn dropping_a_wait_deregisters_its_descriptor() {
    let rt = runtime();
    let (service, readiness) = service(&rt);
    let (reader, mut writer) = std::io::pipe().expect("a pipe");
    rt.block_on(async {
        let mut dropped = readiness.wait(&reader, Interest::READABLE, None);
        assert!(poll_once(dropped.as_mut()).is_pending());
        assert_eq!(service.registered(), 1);
        drop(dropped);
        assert_eq!(service.registered(), 0);
        // Registered afresh: not AlreadyWaited, and it sees the new data.
        let mut again = readiness.wait(&reader, Interest::READABLE, Some(BOUND));
        assert!(poll_once(again.as_mut()).is_pending());
        writer.write_all(b"x").expect("write");
        assert!(ready(timeout(BOUND, again).await.expect("bounded")).is_readable());
    });
}

#[test]
#[allow(clippy::mem_forget, reason = "the test is about a leaked wait future")]
fn a_leaked_wait_keeps_nothing_once_its_descriptor_closes() {
    let rt = runtime();
    let (_, readiness) = service(&rt);
    rt.block_on(async {
        let (reader, writer) = UnixStream::pair().expect("a pair");
        let number = reader.as_raw_fd();
        {
            let mut leaked = readiness.wait(&reader, Interest::READABLE, None);
            assert!(poll_once(leaked.as_mut()).is_pending());
            std::mem::forget(leaked);
        }
        // The number gets another open socket, in one step (so that no
        // other test's descriptor takes it): `dup2` closes the leaked
        // wait's socket, and the kernel forgets its registration.
        let (other, mut other_peer) = UnixStream::pair().expect("a pair");
        let mut reader = std::os::fd::OwnedFd::from(reader);
        rustix::io::dup2(&other, &mut reader).expect("dup2");
        drop((other, writer));
        assert_eq!(reader.as_raw_fd(), number);
        other_peer.write_all(b"x").expect("write");
        let outcome = timeout(BOUND, readiness.wait(&reader, Interest::READABLE, None)).await;
        assert!(ready(outcome.expect("bounded")).is_readable());
    });
}

#[test]
fn a_hangup_resolves_every_wait_and_reads_as_readable() {
    let rt = runtime();
    let (_, readiness) = service(&rt);
    let (reader, writer) = std::io::pipe().expect("a pipe");
    rt.block_on(async {
        let wait = readiness.wait(&reader, Interest::READABLE, Some(BOUND * 2));
        let closing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(writer);
        });
        let seen = ready(timeout(BOUND, wait).await.expect("bounded"));
        assert!(seen.is_hangup() && seen.is_readable(), "{seen:?}");
        closing.await.expect("closed");
        let check = readiness.wait(&reader, Interest::READABLE, Some(Duration::ZERO));
        let seen = ready(check.await);
        assert!(seen.is_hangup() && seen.is_readable(), "{seen:?}");
    });
}

#[test]
fn regular_files_and_directories_are_unpollable() {
    let rt = runtime();
    let (service, readiness) = service(&rt);
    let dir = std::env::temp_dir();
    let path = dir.join(format!("rgi-tower-caps-readiness-{}", std::process::id()));
    let file = std::fs::File::create(&path).expect("a file");
    let directory = std::fs::File::open(&dir).expect("the directory");
    rt.block_on(async {
        for source in [Source::from(&file), Source::from(&directory)] {
            for limit in [None, Some(Duration::ZERO), Some(BOUND)] {
                let wait = readiness.wait(source, Interest::READABLE, limit);
                match timeout(BOUND, wait).await.expect("bounded") {
                    Err(ReadinessError::Unpollable { fd, .. }) => assert_eq!(fd, source.as_raw()),
                    other => panic!("expected Unpollable, got {other:?}"),
                }
            }
        }
    });
    assert_eq!(service.registered(), 0);
    drop(file);
    let _ = std::fs::remove_file(path);
}

#[test]
fn wait_any_reports_every_ready_source_by_index() {
    let rt = runtime();
    let (service, readiness) = service(&rt);
    let (quiet, _quiet_peer) = UnixStream::pair().expect("a pair");
    let (first, mut first_peer) = UnixStream::pair().expect("a pair");
    let (second, mut second_peer) = UnixStream::pair().expect("a pair");
    rt.block_on(async {
        let sources = || {
            [
                (Source::from(&quiet), Interest::READABLE),
                (Source::from(&first), Interest::READABLE),
                (Source::from(&second), Interest::READABLE),
            ]
        };
        let wait = readiness.wait_any(sources(), Some(Duration::from_millis(30)));
        let outcome = timeout(BOUND, wait).await.expect("bounded");
        assert_eq!(outcome.expect("no error"), WaitAnyOutcome::TimedOut);

        let mut waiting = readiness.wait_any(sources(), Some(BOUND));
        assert!(poll_once(waiting.as_mut()).is_pending());
        assert_eq!(service.registered(), 3);
        second_peer.write_all(b"x").expect("write");
        match timeout(BOUND, waiting).await.expect("bounded") {
            Ok(WaitAnyOutcome::Ready(found)) => {
                assert_eq!(found.len(), 1, "{found:?}");
                assert_eq!(found[0].0, 2);
                assert!(found[0].1.is_readable());
            }
            other => panic!("expected source 2 ready, got {other:?}"),
        }
        assert_eq!(service.registered(), 0);

        // Two ready at once: both listed, whatever the reactor saw first.
        first_peer.write_all(b"x").expect("write");
        let wait = readiness.wait_any(sources(), Some(Duration::ZERO));
        match timeout(BOUND, wait).await.expect("bounded") {
            Ok(WaitAnyOutcome::Ready(found)) => {
                let indices: Vec<usize> = found.iter().map(|(index, _)| *index).collect();
                assert_eq!(indices, [1, 2]);
            }
            other => panic!("expected sources 1 and 2 ready, got {other:?}"),
        }
    });
}

#[test]
fn wait_any_refuses_a_descriptor_listed_twice_and_times_with_no_sources() {
    let rt = runtime();
    let (service, readiness) = service(&rt);
    let (socket, _peer) = UnixStream::pair().expect("a pair");
    rt.block_on(async {
        let twice = [
            (Source::from(&socket), Interest::READABLE),
            (Source::from(&socket), Interest::WRITABLE),
        ];
        match timeout(BOUND, readiness.wait_any(twice, None))
            .await
            .expect("bounded")
        {
            Err(ReadinessError::AlreadyWaited { fd }) => assert_eq!(fd, socket.as_raw_fd()),
            other => panic!("expected AlreadyWaited, got {other:?}"),
        }
        assert_eq!(service.registered(), 0);
        let started = Instant::now();
        let timer = readiness.wait_any([], Some(Duration::from_millis(40)));
        let outcome = timeout(BOUND, timer).await.expect("bounded");
        assert_eq!(outcome.expect("no error"), WaitAnyOutcome::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(40));
        let mut never = readiness.wait_any([], None);
        assert!(
            timeout(Duration::from_millis(50), never.as_mut())
                .await
                .is_err()
        );
    });
}

#[test]
fn waits_beyond_the_cap_are_refused_until_one_ends() {
    let rt = runtime();
    let service = TokioReadiness::new(rt.handle().clone())
        .expect("drivers")
        .with_max_waits(2);
    let readiness = Readiness::new(service.clone());
    let pairs: Vec<_> = (0..3)
        .map(|_| UnixStream::pair().expect("a pair"))
        .collect();
    rt.block_on(async {
        let mut first = readiness.wait(&pairs[0].0, Interest::READABLE, None);
        let mut second = readiness.wait(&pairs[1].0, Interest::READABLE, None);
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(poll_once(second.as_mut()).is_pending());
        let third = readiness.wait(&pairs[2].0, Interest::READABLE, None);
        match timeout(BOUND, third).await.expect("bounded") {
            Err(ReadinessError::TooManyWaits { limit }) => assert_eq!(limit, 2),
            other => panic!("expected TooManyWaits, got {other:?}"),
        }
        drop(first);
        let mut third = readiness.wait(&pairs[2].0, Interest::READABLE, None);
        assert!(poll_once(third.as_mut()).is_pending());
        assert_eq!(service.registered(), 2);
    });
}

#[test]
fn a_wait_makes_progress_polled_outside_any_runtime_with_drivers() {
    // The service's runtime drives the reactor and the timer on its own
    // worker; the wait is polled on a runtime that has neither driver.
    let rt = runtime();
    let (_, readiness) = service(&rt);
    let bare = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a bare runtime");
    let (reader, mut writer) = UnixStream::pair().expect("a pair");
    let limit = Some(Duration::from_millis(30));
    let outcome = bare.block_on(readiness.wait(&reader, Interest::READABLE, limit));
    assert_eq!(outcome.expect("no error"), WaitOutcome::TimedOut);
    writer.write_all(b"x").expect("write");
    let seen = ready(bare.block_on(readiness.wait(&reader, Interest::READABLE, Some(BOUND))));
    assert!(seen.is_readable());
}
