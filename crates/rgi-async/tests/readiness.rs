//! Readiness waits: the value types, and the contract between the
//! application-side handle and a server's poller, checked against a
//! deterministic fake poller. Real descriptors, through a real poller, are
//! exercised in `readiness_poller.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

mod support;

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rgi::Environ;
use rgi_async::{
    Capabilities, Interest, Offload, RawSource, Readiness, ReadinessError, ReadinessService, Ready,
    Source, WaitAnyFuture, WaitAnyOutcome, WaitFuture, WaitOutcome,
};
use support::{ThreadPerJob, block_on};

/// One registration the fake poller saw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    sources: Vec<(RawSource, Interest)>,
    timeout: Option<Duration>,
}

/// A deterministic poller: refuses regular files and directories (checked
/// with fstat through std), caps live waits, reports every waited source as
/// ready for exactly what was asked (a zero timeout: timed out), and for
/// `wait_any` only the sources whose index is in `ready`.
#[derive(Default, Clone)]
struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    live: Arc<AtomicUsize>,
    limit: usize,
    ready: Vec<usize>,
}

/// Counts a live wait until dropped (the fake's "deregistration").
struct Registration(Arc<AtomicUsize>);

impl Drop for Registration {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn as_ready(interest: Interest) -> Ready {
    match (interest.is_readable(), interest.is_writable()) {
        (true, true) => Ready::READABLE | Ready::WRITABLE,
        (true, false) => Ready::READABLE,
        _ => Ready::WRITABLE,
    }
}

impl Fake {
    fn with_limit(limit: usize) -> Self {
        Fake {
            limit,
            ..Fake::default()
        }
    }

    fn register(
        &self,
        sources: &[(Source<'_>, Interest)],
        timeout: Option<Duration>,
    ) -> Result<Registration, ReadinessError> {
        self.calls.lock().unwrap().push(Call {
            sources: sources.iter().map(|(s, i)| (s.as_raw(), *i)).collect(),
            timeout,
        });
        for (source, _) in sources {
            let kind = File::from(source.borrowed().try_clone_to_owned()?).metadata()?;
            if kind.is_file() || kind.is_dir() {
                return Err(ReadinessError::Unpollable {
                    fd: source.as_raw(),
                    reason: String::from("regular files and directories are always ready"),
                });
            }
        }
        if self.live.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.live.fetch_sub(1, Ordering::SeqCst);
            return Err(ReadinessError::TooManyWaits { limit: self.limit });
        }
        Ok(Registration(Arc::clone(&self.live)))
    }
}

impl ReadinessService for Fake {
    fn wait<'a>(
        &self,
        source: Source<'a>,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> WaitFuture<'a> {
        let registration = self.register(&[(source, interest)], timeout);
        Box::pin(async move {
            let _registration = registration?;
            let _borrowed = source; // held for the wait's lifetime
            if timeout == Some(Duration::ZERO) {
                return Ok(WaitOutcome::TimedOut);
            }
            Ok(WaitOutcome::Ready(as_ready(interest)))
        })
    }

    fn wait_any<'a>(
        &self,
        sources: Vec<(Source<'a>, Interest)>,
        timeout: Option<Duration>,
    ) -> WaitAnyFuture<'a> {
        let registration = self.register(&sources, timeout);
        let ready: Vec<(usize, Ready)> = sources
            .iter()
            .enumerate()
            .filter(|(index, _)| self.ready.contains(index))
            .map(|(index, (_, interest))| (index, as_ready(*interest)))
            .collect();
        Box::pin(async move {
            let _registration = registration?;
            let _borrowed = sources;
            if ready.is_empty() {
                return Ok(WaitAnyOutcome::TimedOut);
            }
            Ok(WaitAnyOutcome::Ready(ready))
        })
    }
}

#[test]
fn interests_combine_and_report_their_parts() {
    let mut interest = Interest::READABLE;
    assert!(interest.is_readable() && !interest.is_writable());
    interest |= Interest::WRITABLE;
    assert_eq!(interest, Interest::READABLE | Interest::WRITABLE);
    assert_eq!(Interest::WRITABLE | Interest::WRITABLE, Interest::WRITABLE);
    assert_eq!(format!("{:?}", Interest::WRITABLE), "Interest(WRITABLE)");
}

#[test]
fn ready_flags_combine_and_report_their_parts() {
    let mut ready = Ready::WRITABLE;
    ready |= Ready::ERROR;
    assert!(ready.is_writable() && ready.is_error());
    assert!(!ready.is_readable() && !ready.is_hangup());
    assert_eq!(format!("{ready:?}"), "Ready(WRITABLE | ERROR)");
    let all = Ready::READABLE | Ready::WRITABLE | Ready::HANGUP | Ready::ERROR;
    assert_eq!(
        format!("{all:?}"),
        "Ready(READABLE | WRITABLE | HANGUP | ERROR)"
    );
}

#[test]
fn a_source_borrows_the_descriptor_it_was_made_from() {
    let (a, _b) = UnixStream::pair().unwrap();
    let source = Source::from(&a);
    assert_eq!(source.as_raw(), a.as_raw_fd());
    assert_eq!(source.as_fd().as_raw_fd(), a.as_raw_fd());
    assert_eq!(Source::new(a.as_fd()).borrowed().as_raw_fd(), a.as_raw_fd());
}

#[test]
fn a_wait_hands_the_poller_the_descriptor_interest_and_timeout() {
    let fake = Fake::with_limit(8);
    let readiness = Readiness::new(fake.clone());
    let (a, _b) = UnixStream::pair().unwrap();
    let timeout = Some(Duration::from_millis(250));
    let outcome = block_on(readiness.wait(&a, Interest::WRITABLE, timeout)).unwrap();
    assert_eq!(outcome, WaitOutcome::Ready(Ready::WRITABLE));
    assert_eq!(
        *fake.calls.lock().unwrap(),
        vec![Call {
            sources: vec![(a.as_raw_fd(), Interest::WRITABLE)],
            timeout,
        }]
    );
}

#[test]
fn a_timed_out_wait_says_so() {
    let readiness = Readiness::new(Fake::with_limit(8));
    let (a, _b) = UnixStream::pair().unwrap();
    let outcome = block_on(readiness.wait(&a, Interest::READABLE, Some(Duration::ZERO)));
    assert_eq!(outcome.unwrap(), WaitOutcome::TimedOut);
}

#[test]
fn wait_any_reports_ready_sources_by_their_index() {
    let fake = Fake {
        ready: vec![0, 2],
        ..Fake::with_limit(8)
    };
    let readiness = Readiness::new(fake.clone());
    let (a, b) = UnixStream::pair().unwrap();
    let (c, _d) = UnixStream::pair().unwrap();
    let sources = [
        (Source::from(&a), Interest::READABLE),
        (Source::from(&b), Interest::WRITABLE),
        (Source::from(&c), Interest::READABLE | Interest::WRITABLE),
    ];
    let outcome = block_on(readiness.wait_any(sources, None)).unwrap();
    assert_eq!(
        outcome,
        WaitAnyOutcome::Ready(vec![
            (0, Ready::READABLE),
            (2, Ready::READABLE | Ready::WRITABLE)
        ])
    );
    let calls = fake.calls.lock().unwrap();
    assert_eq!(calls[0].sources.len(), 3);
    assert_eq!(calls[0].sources[1], (b.as_raw_fd(), Interest::WRITABLE));
    assert_eq!(calls[0].timeout, None);
}

#[test]
fn wait_any_with_nothing_ready_times_out() {
    let readiness = Readiness::new(Fake::with_limit(8));
    let (a, _b) = UnixStream::pair().unwrap();
    let outcome = block_on(readiness.wait_any([(Source::from(&a), Interest::READABLE)], None));
    assert_eq!(outcome.unwrap(), WaitAnyOutcome::TimedOut);
}

#[test]
fn a_regular_file_is_unpollable_and_the_error_names_it() {
    let readiness = Readiness::new(Fake::with_limit(8));
    let file = File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let err = block_on(readiness.wait(&file, Interest::READABLE, None)).unwrap_err();
    let ReadinessError::Unpollable { fd, ref reason } = err else {
        panic!("expected Unpollable, got {err:?}");
    };
    assert_eq!(fd, file.as_raw_fd());
    assert_eq!(
        err.to_string(),
        format!("descriptor {fd} cannot be waited on: {reason}")
    );
}

#[test]
fn the_cap_on_concurrent_waits_is_reported_and_dropping_a_wait_frees_its_slot() {
    let fake = Fake::with_limit(1);
    let readiness = Readiness::new(fake.clone());
    let (a, b) = UnixStream::pair().unwrap();
    let first = readiness.wait(&a, Interest::READABLE, None);
    assert_eq!(fake.live.load(Ordering::SeqCst), 1);
    let err = block_on(readiness.wait(&b, Interest::READABLE, None)).unwrap_err();
    assert!(matches!(err, ReadinessError::TooManyWaits { limit: 1 }));
    assert_eq!(
        err.to_string(),
        "too many concurrent readiness waits (limit 1)"
    );
    drop(first);
    assert_eq!(fake.live.load(Ordering::SeqCst), 0);
    assert!(block_on(readiness.wait(&b, Interest::READABLE, None)).is_ok());
}

#[test]
fn io_errors_convert_into_readiness_errors() {
    let err = ReadinessError::from(std::io::Error::other("epoll_ctl failed"));
    assert!(matches!(err, ReadinessError::Io(_)));
    assert_eq!(err.to_string(), "readiness wait failed: epoll_ctl failed");
}

#[test]
fn wait_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let readiness = Readiness::new(Fake::with_limit(8));
    let (a, _b) = UnixStream::pair().unwrap();
    let future = readiness.wait(&a, Interest::READABLE, None);
    assert_send(&future);
}

#[test]
fn the_poller_lent_through_capabilities_is_the_servers() {
    let fake = Fake::with_limit(8);
    let capabilities = Capabilities::builder(Offload::new(ThreadPerJob))
        .readiness(Readiness::new(fake.clone()))
        .build();
    let environ = Environ::builder().extension(capabilities).build().unwrap();
    let readiness = Capabilities::of(&environ).unwrap().readiness().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    block_on(readiness.wait(&a, Interest::READABLE, None)).unwrap();
    assert_eq!(fake.calls.lock().unwrap().len(), 1);
    assert_eq!(format!("{readiness:?}"), "Readiness { .. }");
}

#[test]
fn a_shared_poller_can_back_several_handles() {
    let fake = Fake::with_limit(8);
    let shared: Arc<dyn ReadinessService> = Arc::new(fake.clone());
    let one = Readiness::from_arc(Arc::clone(&shared));
    let two = one.clone();
    let (a, _b) = UnixStream::pair().unwrap();
    block_on(one.wait(&a, Interest::READABLE, None)).unwrap();
    block_on(two.wait(&a, Interest::READABLE, None)).unwrap();
    assert_eq!(fake.calls.lock().unwrap().len(), 2);
}
