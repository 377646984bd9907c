//! Every descriptor kind spec/rgi-async.md §8.2 lists for Linux waits on
//! `caps::TokioReadiness` (`[RGIA-READY-9]`): eventfd, timerfd, pidfd,
//! inotify and pseudo-terminals (sockets and pipes are in
//! `caps_readiness.rs`).

#![cfg(target_os = "linux")]
// Helpers outside `#[test]` functions fail the test that calls them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::OwnedFd;
use std::time::Duration;

use rgi_async::{Interest, Readiness, ReadinessError, WaitOutcome};
use rgi_tower::caps::TokioReadiness;
use rustix::event::{EventfdFlags, eventfd};
use rustix::fs::inotify;
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(5);

fn setup() -> (tokio::runtime::Runtime, Readiness) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let readiness = Readiness::new(TokioReadiness::new(rt.handle().clone()).unwrap());
    (rt, readiness)
}

/// Waits for `fd` to be readable: first that it is not yet (a short
/// timeout), then, after `make_ready`, that it is.
fn becomes_readable(fd: &OwnedFd, make_ready: impl FnOnce() + Send + 'static) {
    let (rt, readiness) = setup();
    rt.block_on(async {
        let quiet = readiness.wait(fd, Interest::READABLE, Some(Duration::from_millis(20)));
        assert_eq!(quiet.await.unwrap(), WaitOutcome::TimedOut);
        let wait = readiness.wait(fd, Interest::READABLE, Some(BOUND * 2));
        let maker = std::thread::spawn(make_ready);
        let outcome: Result<WaitOutcome, ReadinessError> = timeout(BOUND, wait).await.unwrap();
        match outcome {
            Ok(WaitOutcome::Ready(ready)) => assert!(ready.is_readable(), "{ready:?}"),
            other => panic!("expected readable, got {other:?}"),
        }
        maker.join().unwrap();
    });
}

#[test]
fn an_eventfd() {
    let fd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).unwrap();
    let signal = fd.try_clone().unwrap();
    becomes_readable(&fd, move || {
        rustix::io::write(&signal, &1_u64.to_ne_bytes()).unwrap();
    });
}

#[test]
fn a_timerfd() {
    let fd = timerfd_create_monotonic();
    let timer = fd.try_clone().unwrap();
    becomes_readable(&fd, move || {
        let fire_in = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            },
        };
        rustix::time::timerfd_settime(&timer, TimerfdTimerFlags::empty(), &fire_in).unwrap();
    });
}

fn timerfd_create_monotonic() -> OwnedFd {
    rustix::time::timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )
    .unwrap()
}

#[test]
fn a_pidfd_becomes_readable_when_the_child_exits() {
    let mut child = std::process::Command::new("sleep")
        .arg("0.3")
        .spawn()
        .unwrap();
    let pid = rustix::process::Pid::from_child(&child);
    let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        // Before Linux 5.3 there are no pidfds, and §8.2 lists none.
        child.wait().unwrap();
        return;
    };
    let (rt, readiness) = setup();
    rt.block_on(async {
        let running = readiness.wait(&fd, Interest::READABLE, Some(Duration::from_millis(20)));
        assert_eq!(running.await.unwrap(), WaitOutcome::TimedOut);
        let wait = readiness.wait(&fd, Interest::READABLE, Some(BOUND));
        match timeout(BOUND, wait).await.unwrap() {
            Ok(WaitOutcome::Ready(ready)) => assert!(ready.is_readable(), "{ready:?}"),
            other => panic!("expected readable, got {other:?}"),
        }
    });
    // Readable means exited: reaping it now does not block.
    assert!(
        child.try_wait().unwrap().is_some(),
        "readable before the child exited"
    );
}

#[test]
fn an_inotify_descriptor() {
    let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
    let dir = std::env::temp_dir().join(format!("rgi-caps-inotify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    inotify::add_watch(&fd, &dir, inotify::WatchFlags::CREATE).unwrap();
    let touched = dir.join("touched");
    becomes_readable(&fd, move || {
        std::fs::write(&touched, b"x").unwrap();
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_pseudo_terminal() {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let controller =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&controller).unwrap();
    unlockpt(&controller).unwrap();
    let name = ptsname(&controller, Vec::new()).unwrap();
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    // The terminal side is readable once the controller writes a line.
    let fd = OwnedFd::from(terminal);
    becomes_readable(&fd, move || {
        rustix::io::write(&controller, b"line\n").unwrap();
        // Keeps the controller open until the reader has seen the line.
        std::thread::sleep(Duration::from_millis(200));
    });
}
