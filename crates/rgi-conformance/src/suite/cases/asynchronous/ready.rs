//! Readiness waits on the application's own descriptors (spec/rgi-async.md
//! §8, READY), and what shutdown leaves of them (§15, TASK-5). Unix only:
//! the probes wait on pipes, Unix sockets, files and directories.

use std::fs::File;
use std::future::{Future, poll_fn};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rgi::{BoxError, Environ, StartResponse};
use rgi_async::{
    Capabilities, Interest, RawSource, Readiness, ReadinessError, Ready, Source, WaitAnyOutcome,
    WaitOutcome,
};

use super::support::{
    AnyBody, BOUND, Latch, Session, boxed, fail, future_body, lock, recv, recv_within, shown,
    text_body, wire,
};
use crate::Check;
use crate::suite::wire::Request;
use crate::suite::{Case, Failure, Needs, ServerUnderTest};

/// `RGIA-READY-1`.
pub(super) const A_PIPE_WAIT_WAKES_THE_BODY: Case = Case::new(
    Check::new(
        "rgia_ready_1_a_pipe_wait_wakes_the_body",
        &["RGIA-READY-1", "RGIA-POLL-3", "RGIA-CAP-9"],
        "a wait on a pipe that another thread writes to later resolves Ready with READABLE and \
         wakes the body",
    ),
    Needs::Readiness,
    a_pipe_wait_wakes_the_body,
);

/// `RGIA-READY-2`.
pub(super) const WAITS_ARE_LEVEL_TRIGGERED: Case = Case::new(
    Check::new(
        "rgia_ready_2_waits_are_level_triggered",
        &["RGIA-READY-2", "RGIA-READY-21"],
        "waits on a pipe that already holds data resolve at once, again and again, and of two \
         waits on it at the same time the first resolves Ready and the second Ready or \
         AlreadyWaited",
    ),
    Needs::Readiness,
    waits_are_level_triggered,
);

/// `RGIA-READY-6`.
pub(super) const HANGUP_IS_REPORTED: Case = Case::new(
    Check::new(
        "rgia_ready_6_hangup_is_reported",
        &["RGIA-READY-6"],
        "closing the other end resolves a READABLE wait on a pipe and a WRITABLE wait on a full \
         socket",
    ),
    Needs::Readiness,
    hangup_is_reported,
);

/// `RGIA-READY-7`.
pub(super) const TIMEOUTS_ARE_KEPT: Case = Case::new(
    Check::new(
        "rgia_ready_7_timeouts_are_kept",
        &["RGIA-READY-7", "RGIA-READY-16"],
        "a zero timeout resolves at the first poll, a timeout without data resolves TimedOut \
         and never early, and an empty wait_any is a timer",
    ),
    Needs::Readiness,
    timeouts_are_kept,
);

/// `RGIA-READY-10`.
pub(super) const FILES_ARE_UNPOLLABLE: Case = Case::new(
    Check::new(
        "rgia_ready_10_files_are_unpollable",
        &["RGIA-READY-10"],
        "a wait on a regular file or a directory resolves at its first poll to \
         ReadinessError::Unpollable naming the descriptor",
    ),
    Needs::Readiness,
    files_are_unpollable,
);

/// `RGIA-READY-12`.
pub(super) const A_DROPPED_WAIT_IS_DEREGISTERED: Case = Case::new(
    Check::new(
        "rgia_ready_12_a_dropped_wait_is_deregistered",
        &["RGIA-READY-12", "RGIA-READY-11", "RGIA-READY-22"],
        "after a pending wait is dropped, a new wait on the same pipe sees later data, and the \
         pipe is left open and unread",
    ),
    Needs::Readiness,
    a_dropped_wait_is_deregistered,
);

/// `RGIA-READY-13`.
pub(super) const A_LEAKED_WAIT_IS_HARMLESS: Case = Case::new(
    Check::new(
        "rgia_ready_13_a_leaked_wait_is_harmless",
        &["RGIA-READY-13"],
        "after a pending wait is leaked with mem::forget and its socket closed, a wait on a new \
         socket that reuses the descriptor number sees the socket become readable, and the \
         server goes on serving",
    ),
    Needs::Readiness,
    a_leaked_wait_is_harmless,
);

/// `RGIA-READY-19`.
pub(super) const A_LEAKED_WAIT_HOLDS_NOTHING_OPEN: Case = Case::new(
    Check::new(
        "rgia_ready_19_a_leaked_wait_holds_nothing_open",
        &["RGIA-READY-19"],
        "after a pending wait on a socket is leaked with mem::forget and the socket closed, the \
         socket's peer reads the end of the stream at once",
    ),
    Needs::Readiness,
    a_leaked_wait_holds_nothing_open,
);

/// `RGIA-TASK-5`.
pub(super) const SHUTDOWN_LEAVES_DESCRIPTORS_ALONE: Case = Case::new(
    Check::new(
        "rgia_task_5_shutdown_leaves_descriptors_alone",
        &["RGIA-TASK-5", "RGIA-TASK-4"],
        "stopping the server while a body waits for a full socket to become writable drops the \
         body and leaves the socket open, non-blocking and with its pending bytes unread",
    ),
    Needs::Readiness,
    shutdown_leaves_descriptors_alone,
);

/// `RGIA-READY-16`.
pub(super) const WAIT_ANY_REPORTS_WHICH_SOURCE: Case = Case::new(
    Check::new(
        "rgia_ready_16_wait_any_reports_which_source",
        &["RGIA-READY-16"],
        "wait_any reports the index of the pipe that became readable, among two and among 64",
    ),
    Needs::Readiness,
    wait_any_reports_which_source,
);

/// The outcome of one wait, as the case judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Ready(Ready),
    TimedOut,
    Unpollable(RawSource),
    AlreadyWaited(RawSource),
    Failed(String),
}

impl Seen {
    fn of(result: Result<WaitOutcome, ReadinessError>) -> Self {
        match result {
            Ok(WaitOutcome::Ready(ready)) => Seen::Ready(ready),
            Ok(WaitOutcome::TimedOut) => Seen::TimedOut,
            Ok(other) => Seen::Failed(format!("an unknown outcome {other:?}")),
            Err(error) => Seen::failed(&error),
        }
    }

    fn failed(error: &ReadinessError) -> Self {
        match error {
            ReadinessError::Unpollable { fd, .. } => Seen::Unpollable(*fd),
            ReadinessError::AlreadyWaited { fd } => Seen::AlreadyWaited(*fd),
            other => Seen::Failed(other.to_string()),
        }
    }

    fn is_readable(&self) -> bool {
        matches!(self, Seen::Ready(ready) if ready.is_readable())
    }
}

/// The message a probe sends when the server offers no readiness.
const MISSING: &str = "the server claims readiness waits, but Capabilities::readiness() is None";

/// An application whose body runs `work` with the request's readiness
/// handle; without one it reports [`MISSING`].
fn readiness_app<T, F, W>(
    report: Sender<Result<T, &'static str>>,
    work: W,
) -> impl rgi_async::AsyncApplication
where
    T: Send + 'static,
    W: Fn(Readiness, Sender<Result<T, &'static str>>) -> io::Result<F> + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    rgi_async::from_fn(
        move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            let Some(readiness) = Capabilities::of(&environ).and_then(Capabilities::readiness)
            else {
                let _ = report.send(Err(MISSING));
                return Ok(boxed(text_body("no readiness")));
            };
            let work = work(readiness.clone(), report.clone())?;
            Ok(boxed(future_body(async move {
                work.await;
                String::from("waited")
            })))
        },
    )
}

/// Runs one GET against a readiness probe and returns its report; `waits`
/// says what the probe waits for, for the failure when it never reports.
fn run_probe<T>(
    server: &dyn ServerUnderTest,
    app: impl rgi_async::AsyncApplication,
    reports: &mpsc::Receiver<Result<T, &'static str>>,
    clause: &'static str,
    waits: &str,
) -> Result<T, Failure> {
    let session = Session::start(server, app, clause)?;
    let response = session.exchange(&Request::get("/wait"), "GET");
    let report = recv(
        reports,
        clause,
        &format!("the end of the probe's waits ({waits})"),
    );
    session.stop()?;
    let report = report?.map_err(|missing| fail(clause, missing))?;
    let response = response?;
    if response.head.status != 200 {
        return Err(fail(
            clause,
            format!("the probe's response had status {}", response.head.status),
        ));
    }
    Ok(report)
}

/// Writes `bytes` to the pipe after `delay`, from another thread, then
/// keeps the writer open until `done` opens (or the bound passes).
fn write_later(writer: io::PipeWriter, bytes: &'static [u8], delay: Duration, done: Latch) {
    let _detached = thread::spawn(move || {
        thread::sleep(delay);
        let _ = (&writer).write_all(bytes);
        done.wait(BOUND * 2);
        drop(writer);
    });
}

fn a_pipe_wait_wakes_the_body(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-READY-1";
    let done = Latch::new();
    let (report, reports) = mpsc::channel();
    let app = {
        let done = done.clone();
        readiness_app(report, move |readiness, report| {
            let (reader, writer) = io::pipe()?;
            write_later(writer, b"x", Duration::from_millis(100), done.clone());
            Ok(async move {
                let started = Instant::now();
                let seen = Seen::of(
                    readiness
                        .wait(&reader, Interest::READABLE, Some(BOUND))
                        .await,
                );
                let _ = report.send(Ok((seen, started.elapsed())));
            })
        })
    };
    let judged = run_probe(
        server,
        app,
        &reports,
        MAIN,
        "a pipe written after 100 ms, with a 5 s timeout",
    );
    done.open();
    let (seen, took) = judged?;
    if !seen.is_readable() {
        return Err(fail(
            MAIN,
            format!(
                "a wait on a pipe written 100 ms later by another thread ended after {took:?} \
                 with {seen:?}, not Ready with READABLE"
            ),
        ));
    }
    Ok(())
}

fn waits_are_level_triggered(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-READY-2";
    /// A condition that already holds resolves "promptly".
    const PROMPTLY: Duration = Duration::from_secs(2);
    let (report, reports) = mpsc::channel();
    let app = readiness_app(report, move |readiness, report| {
        let (reader, mut writer) = io::pipe()?;
        writer.write_all(b"waiting data")?;
        Ok(async move {
            let started = Instant::now();
            let first = Seen::of(
                readiness
                    .wait(&reader, Interest::READABLE, Some(BOUND))
                    .await,
            );
            let first_took = started.elapsed();
            let second = Seen::of(
                readiness
                    .wait(&reader, Interest::READABLE, Some(BOUND))
                    .await,
            );
            let mut one = Some(readiness.wait(&reader, Interest::READABLE, Some(BOUND)));
            let mut other = Some(readiness.wait(&reader, Interest::READABLE, Some(BOUND)));
            let (mut seen_one, mut seen_other) = (None, None);
            poll_fn(|cx| {
                for (future, seen) in [(&mut one, &mut seen_one), (&mut other, &mut seen_other)] {
                    if let Some(waiting) = future.as_mut() {
                        if let Poll::Ready(result) = waiting.as_mut().poll(cx) {
                            *seen = Some(Seen::of(result));
                            *future = None;
                        }
                    }
                }
                if seen_one.is_some() && seen_other.is_some() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            drop(writer);
            let fd = reader.as_raw_fd();
            let _ = report.send(Ok((first, first_took, second, seen_one, seen_other, fd)));
        })
    });
    let (first, first_took, second, one, other, reader_fd) = run_probe(
        server,
        app,
        &reports,
        MAIN,
        "waits on a pipe that already holds data: two in turn, then two at once",
    )?;
    if !first.is_readable() || first_took > PROMPTLY {
        return Err(fail(
            MAIN,
            format!(
                "a wait on a pipe that already held data ended after {first_took:?} with \
                 {first:?}; it must resolve Ready (READABLE) at once"
            ),
        ));
    }
    if !second.is_readable() {
        return Err(fail(
            MAIN,
            format!(
                "a second wait on the same pipe, its data still unread, ended with {second:?}; a \
                 level-triggered wait resolves Ready again"
            ),
        ));
    }
    // RGIA-READY-21: a reactor registers a descriptor once, so the second
    // of two waits in progress on it may be refused, typed; it must not
    // hang, nor take the first wait's readiness.
    let first_fine = one.as_ref().is_some_and(Seen::is_readable);
    let second_fine = other.as_ref().is_some_and(|seen| {
        seen.is_readable() || matches!(seen, Seen::AlreadyWaited(fd) if *fd == reader_fd)
    });
    if !first_fine || !second_fine {
        return Err(fail(
            "RGIA-READY-21",
            format!(
                "two waits on the same readable pipe at the same time ended with {one:?} and \
                 {other:?}; the first must resolve Ready (READABLE), the second Ready \
                 (READABLE) or AlreadyWaited naming descriptor {reader_fd}"
            ),
        ));
    }
    Ok(())
}

fn hangup_is_reported(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-READY-6";
    let (report, reports) = mpsc::channel();
    let app = readiness_app(report, move |readiness, report| {
        let (reader, writer) = io::pipe()?;
        let (full, peer) = UnixStream::pair()?;
        full.set_nonblocking(true)?;
        // Fill the socket so that it is not writable: only the hangup can
        // end a WRITABLE wait on it.
        let block = [0_u8; 16 * 1024];
        loop {
            match (&full).write(&block) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        let _detached = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            drop(writer);
            drop(peer);
        });
        Ok(async move {
            let eof = Seen::of(
                readiness
                    .wait(&reader, Interest::READABLE, Some(BOUND))
                    .await,
            );
            let gone = Seen::of(readiness.wait(&full, Interest::WRITABLE, Some(BOUND)).await);
            let _ = report.send(Ok((eof, gone)));
        })
    });
    let (eof, gone) = run_probe(
        server,
        app,
        &reports,
        MAIN,
        "READABLE on a pipe whose writer closes, then WRITABLE on a full socket whose peer closes",
    )?;
    if !matches!(eof, Seen::Ready(ready) if ready.is_readable() || ready.is_hangup()) {
        return Err(fail(
            MAIN,
            format!(
                "a READABLE wait on a pipe whose writer was closed ended with {eof:?}; end of \
                 file counts as readable"
            ),
        ));
    }
    if !matches!(gone, Seen::Ready(_)) {
        return Err(fail(
            MAIN,
            format!(
                "a WRITABLE wait on a full socket whose peer was closed ended with {gone:?}; a \
                 hangup resolves the wait whatever the interest"
            ),
        ));
    }
    Ok(())
}

fn timeouts_are_kept(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-READY-7";
    const TIMEOUT: Duration = Duration::from_millis(200);
    const TIMER: Duration = Duration::from_millis(150);
    let (report, reports) = mpsc::channel();
    let app = readiness_app(report, move |readiness, report| {
        let (reader, writer) = io::pipe()?;
        Ok(async move {
            let mut zero = readiness.wait(&reader, Interest::READABLE, Some(Duration::ZERO));
            let at_first_poll =
                poll_fn(|cx| Poll::Ready(zero.as_mut().poll(cx).map(Seen::of))).await;
            drop(zero);
            let started = Instant::now();
            let timed = Seen::of(
                readiness
                    .wait(&reader, Interest::READABLE, Some(TIMEOUT))
                    .await,
            );
            let timed_took = started.elapsed();
            let started = Instant::now();
            let timer = readiness.wait_any(Vec::new(), Some(TIMER)).await;
            let timer_took = started.elapsed();
            drop(writer);
            let timer = match timer {
                Ok(WaitAnyOutcome::TimedOut) => Seen::TimedOut,
                Ok(WaitAnyOutcome::Ready(list)) => Seen::Failed(format!("Ready({list:?})")),
                Ok(other) => Seen::Failed(format!("an unknown outcome {other:?}")),
                Err(error) => Seen::failed(&error),
            };
            let _ = report.send(Ok((at_first_poll, timed, timed_took, timer, timer_took)));
        })
    });
    let (at_first_poll, timed, timed_took, timer, timer_took) = run_probe(
        server,
        app,
        &reports,
        MAIN,
        "a zero timeout, a 200 ms timeout on a silent pipe, an empty wait_any of 150 ms",
    )?;
    match at_first_poll {
        Poll::Ready(Seen::Ready(_) | Seen::TimedOut) => {}
        Poll::Ready(other) => {
            return Err(fail(
                MAIN,
                format!("a wait with Some(Duration::ZERO) on a pipe failed: {other:?}"),
            ));
        }
        Poll::Pending => {
            return Err(fail(
                MAIN,
                "a wait with Some(Duration::ZERO) returned Pending at its first poll; it must \
                 resolve there with Ready or TimedOut",
            ));
        }
    }
    if timed != Seen::TimedOut || timed_took < TIMEOUT {
        return Err(fail(
            MAIN,
            format!(
                "a wait with a {TIMEOUT:?} timeout on a pipe nobody writes to ended after \
                 {timed_took:?} with {timed:?}; it must end TimedOut, never before {TIMEOUT:?}"
            ),
        ));
    }
    if timer != Seen::TimedOut || timer_took < TIMER {
        return Err(fail(
            "RGIA-READY-16",
            format!(
                "wait_any on no sources with a {TIMER:?} timeout (a timer) ended after \
                 {timer_took:?} with {timer:?}; it must end TimedOut, never before {TIMER:?}"
            ),
        ));
    }
    Ok(())
}

/// A name for a temporary file that no other run uses.
fn temporary_path() -> std::path::PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!("rgi-suite-ready-{}-{nanos}", std::process::id()))
}

fn files_are_unpollable(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-READY-10";
    let path = temporary_path();
    let opened = File::create(&path).and_then(|file| Ok((file, File::open(std::env::temp_dir())?)));
    let (file, directory) = opened.map_err(|error| {
        fail(
            MAIN,
            format!("the case could not open a temporary file and directory: {error}"),
        )
    })?;
    let sources = Arc::new(Mutex::new(Some((file, directory))));
    let (report, reports) = mpsc::channel();
    let app = readiness_app(report, move |readiness, report| {
        let (file, directory) = lock(&sources)
            .take()
            .ok_or_else(|| io::Error::other("the probe was called twice"))?;
        Ok(async move {
            let mut seen = Vec::new();
            for (what, source) in [("a regular file", &file), ("a directory", &directory)] {
                let fd = source.as_raw_fd();
                let mut wait = readiness.wait(source, Interest::READABLE, Some(BOUND));
                let first = poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx).map(Seen::of))).await;
                let later = match first {
                    Poll::Ready(_) => None,
                    Poll::Pending => Some(Seen::of(wait.await)),
                };
                seen.push((what, fd, first, later));
            }
            let _ = report.send(Ok(seen));
        })
    });
    let judged = run_probe(
        server,
        app,
        &reports,
        MAIN,
        "a regular file, then a directory, each with a 5 s timeout",
    );
    let _ = std::fs::remove_file(&path);
    for (what, fd, first, later) in judged? {
        match first {
            Poll::Ready(Seen::Unpollable(named)) if named == fd => {}
            Poll::Ready(Seen::Unpollable(named)) => {
                return Err(fail(
                    MAIN,
                    format!(
                        "a wait on {what} (fd {fd}) was refused as Unpollable {{ fd: {named} }}"
                    ),
                ));
            }
            Poll::Ready(other) => {
                return Err(fail(
                    MAIN,
                    format!(
                        "a wait on {what} (fd {fd}) resolved to {other:?} instead of \
                         ReadinessError::Unpollable"
                    ),
                ));
            }
            Poll::Pending => {
                return Err(fail(
                    MAIN,
                    format!(
                        "a wait on {what} (fd {fd}) was Pending at its first poll and then ended \
                         with {later:?}; it must fail at once with ReadinessError::Unpollable"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn a_dropped_wait_is_deregistered(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-READY-12";
    let (report, reports) = mpsc::channel();
    let app = readiness_app(report, move |readiness, report| {
        let (mut reader, mut writer) = io::pipe()?;
        Ok(async move {
            let mut dropped = readiness.wait(&reader, Interest::READABLE, None);
            let first = poll_fn(|cx| Poll::Ready(dropped.as_mut().poll(cx).map(Seen::of))).await;
            drop(dropped);
            let wrote = writer.write_all(b"!").map_err(|error| error.to_string());
            let started = Instant::now();
            let again = Seen::of(
                readiness
                    .wait(&reader, Interest::READABLE, Some(BOUND))
                    .await,
            );
            let took = started.elapsed();
            // The pipe must still be open and unread: the byte is there.
            let mut byte = [0_u8; 1];
            let read = if again.is_readable() {
                reader
                    .read(&mut byte)
                    .map(|count| byte[..count].to_vec())
                    .map_err(|error| error.to_string())
            } else {
                Err(String::from("not attempted"))
            };
            let _ = report.send(Ok((first, wrote, again, took, read)));
        })
    });
    let (first, wrote, again, took, read) = run_probe(
        server,
        app,
        &reports,
        MAIN,
        "a dropped wait, then a wait with a 5 s timeout after a write",
    )?;
    if let Poll::Ready(seen) = first {
        return Err(fail(
            MAIN,
            format!("a wait on an empty pipe without a timeout resolved at once with {seen:?}"),
        ));
    }
    if let Err(error) = wrote {
        return Err(fail(
            MAIN,
            format!("the probe could not write to its pipe: {error}"),
        ));
    }
    if !again.is_readable() {
        return Err(fail(
            MAIN,
            format!(
                "after a pending wait on a pipe was dropped and a byte written, a new wait on \
                 the same pipe ended after {took:?} with {again:?}"
            ),
        ));
    }
    match read {
        Ok(byte) if byte == b"!" => Ok(()),
        other => Err(fail(
            "RGIA-READY-11",
            format!(
                "after the waits, reading the byte the probe wrote to its pipe gave {other:?}: \
                 the server read or closed a descriptor it only borrowed"
            ),
        )),
    }
}

fn wait_any_reports_which_source(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-READY-16";
    /// The clause requires at least this many sources in one call.
    const MANY: usize = 64;
    let done = Latch::new();
    let (report, reports) = mpsc::channel();
    let app = {
        let done = done.clone();
        readiness_app(report, move |readiness, report| {
            let (quiet, quiet_writer) = io::pipe()?;
            let (written, writer) = io::pipe()?;
            write_later(writer, b"x", Duration::from_millis(100), done.clone());
            let mut many = Vec::with_capacity(MANY);
            for _ in 0..MANY {
                many.push(io::pipe()?);
            }
            if let Some((_, last_writer)) = many.last_mut() {
                last_writer.write_all(b"x")?;
            }
            Ok(async move {
                let deadline = Instant::now() + BOUND;
                let mut outcomes = Vec::new();
                // Spurious readiness is allowed (RGIA-READY-3): wait again
                // until pipe 1 is reported or the bound passes.
                while outcomes.len() < 20 {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let sources = [
                        (Source::from(&quiet), Interest::READABLE),
                        (Source::from(&written), Interest::READABLE),
                    ];
                    let outcome = readiness.wait_any(sources, Some(left)).await;
                    let found = matches!(&outcome, Ok(WaitAnyOutcome::Ready(list))
                        if list.iter().any(|(index, ready)| *index == 1 && ready.is_readable()));
                    let settled = found || !matches!(outcome, Ok(WaitAnyOutcome::Ready(_)));
                    outcomes.push(outcome.map_err(|error| error.to_string()));
                    if settled {
                        break;
                    }
                }
                let sources = many
                    .iter()
                    .map(|(reader, _)| (Source::from(reader), Interest::READABLE));
                let among_many = readiness
                    .wait_any(sources, Some(BOUND))
                    .await
                    .map_err(|error| error.to_string());
                drop(quiet_writer);
                let _ = report.send(Ok((outcomes, among_many)));
            })
        })
    };
    let judged = run_probe(
        server,
        app,
        &reports,
        MAIN,
        "wait_any on two pipes, one written after 100 ms, then on 64 pipes",
    );
    done.open();
    let (outcomes, among_many) = judged?;
    let found = outcomes.last().is_some_and(|last| {
        matches!(last, Ok(WaitAnyOutcome::Ready(list))
            if list.iter().any(|(index, ready)| *index == 1 && ready.is_readable()))
    });
    if !found {
        return Err(fail(
            MAIN,
            format!(
                "wait_any on two pipes, of which pipe 1 was written 100 ms later, never reported \
                 index 1 readable; outcomes: {outcomes:?}"
            ),
        ));
    }
    let last = MANY - 1;
    let among_many_found = matches!(&among_many, Ok(WaitAnyOutcome::Ready(list))
        if list.iter().any(|(index, ready)| *index == last && ready.is_readable()));
    if !among_many_found {
        return Err(fail(
            MAIN,
            format!(
                "wait_any on {MANY} pipes, of which only pipe {last} held data, ended with \
                 {among_many:?}"
            ),
        ));
    }
    Ok(())
}

/// What the probe of `RGIA-READY-13` found.
#[derive(Debug)]
enum Leak {
    /// A new socket reused the number of the leaked wait's socket, and a
    /// wait on it ended so.
    Waited {
        number: i32,
        rounds: usize,
        seen: Seen,
        wrote: Result<(), String>,
    },
    /// No new socket got the number back.
    NotReused(Vec<i32>),
    /// The probe could not make its sockets.
    Failed(String),
}

fn a_leaked_wait_is_harmless(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-READY-13";
    /// Leaks tried, each giving the operating system a chance to hand the
    /// number out again (another thread of the process can take it first).
    const ROUNDS: usize = 16;
    /// The wait on the socket that reuses the number, which is readable
    /// right after the wait's first poll.
    const WAIT: Duration = Duration::from_secs(2);
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(
        move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            if environ.uri().path() != "/leak" {
                return Ok(boxed(text_body("still serving")));
            }
            let Some(readiness) = Capabilities::of(&environ)
                .and_then(Capabilities::readiness)
                .cloned()
            else {
                let _ = report.send(Err(MISSING));
                return Ok(boxed(text_body("no readiness")));
            };
            let report = report.clone();
            Ok(boxed(future_body(async move {
                let leak = leak_and_reuse(&readiness, ROUNDS, WAIT).await;
                let _ = report.send(Ok(leak));
                String::from("leaked")
            })))
        },
    );
    let session = Session::start(server, app, MAIN)?;
    let leaked = session.exchange(&Request::get("/leak"), "GET");
    let leak = recv(&reports, MAIN, "the end of the probe's leak and wait");
    let after = session.exchange(&Request::get("/after"), "GET");
    session.stop()?;
    let leak = leak?.map_err(|missing| fail(MAIN, missing))?;
    match leak {
        Leak::Waited { seen, .. } if seen.is_readable() => {}
        Leak::Waited {
            number,
            rounds,
            seen,
            wrote,
        } => {
            return Err(fail(
                MAIN,
                format!(
                    "a wait was leaked with mem::forget and its socket (descriptor {number}) \
                     closed; a wait on a new socket that got number {number} back (round \
                     {rounds}), written to after its first poll (write: {wrote:?}), ended with \
                     {seen:?} instead of Ready with READABLE"
                ),
            ));
        }
        Leak::NotReused(numbers) => {
            return Err(fail(
                MAIN,
                format!(
                    "the case could not set the clause up: in {ROUNDS} rounds, no new socket got \
                     the number of a closed one back (numbers {numbers:?})"
                ),
            ));
        }
        Leak::Failed(problem) => return Err(fail(MAIN, problem)),
    }
    let (leaked, after) = (leaked?, after?);
    if leaked.head.status != 200 || after.body.data != b"still serving" {
        return Err(fail(
            MAIN,
            format!(
                "after the leaked wait, the responses were {} and {} {}",
                leaked.head.status,
                after.head.status,
                shown(&after.body.data)
            ),
        ));
    }
    Ok(())
}

/// Leaks a pending wait on a socket, closes the socket, and waits on a
/// new socket that got the same descriptor number, writing to it after
/// the wait's first poll; tries again while the number is not reused.
async fn leak_and_reuse(readiness: &Readiness, rounds: usize, wait: Duration) -> Leak {
    let mut numbers = Vec::new();
    for round in 1..=rounds {
        let (leaked_on, leaked_peer) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(error) => {
                return Leak::Failed(format!("the probe could not make a socket pair: {error}"));
            }
        };
        let number = leaked_on.as_raw_fd();
        numbers.push(number);
        let mut leaked = readiness.wait(&leaked_on, Interest::READABLE, None);
        // Polled once, so that the server has registered it.
        poll_fn(|cx| Poll::Ready(leaked.as_mut().poll(cx).is_ready())).await;
        #[allow(
            clippy::mem_forget,
            reason = "the clause is about a wait leaked this way"
        )]
        std::mem::forget(leaked);
        drop(leaked_on);
        drop(leaked_peer);
        let (one, other) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(error) => {
                return Leak::Failed(format!("the probe could not make a socket pair: {error}"));
            }
        };
        let (reused, writer) = if one.as_raw_fd() == number {
            (one, other)
        } else if other.as_raw_fd() == number {
            (other, one)
        } else {
            continue;
        };
        let mut waiting = readiness.wait(&reused, Interest::READABLE, Some(wait));
        let mut wrote = None;
        let result = poll_fn(|cx| {
            let polled = waiting.as_mut().poll(cx);
            if polled.is_pending() && wrote.is_none() {
                wrote = Some((&writer).write_all(b"x").map_err(|error| error.to_string()));
            }
            polled
        })
        .await;
        return Leak::Waited {
            number,
            rounds: round,
            seen: Seen::of(result),
            wrote: wrote.unwrap_or(Ok(())),
        };
    }
    Leak::NotReused(numbers)
}

/// Sends `()` when dropped: the probe's way to see its body dropped.
struct Dropped(Sender<()>);

impl Drop for Dropped {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn shutdown_leaves_descriptors_alone(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-TASK-5";
    const PENDING: &[u8] = b"pending, unread";
    /// A read of the emptied socket returns at once while it is
    /// non-blocking; were it blocking, the read would wait this long.
    const READ_LIMIT: Duration = Duration::from_secs(2);
    /// Spurious readiness is allowed (RGIA-READY-3): waits again this
    /// many times at most.
    const RETRIES: usize = 100;
    let setup = |error: io::Error| {
        fail(
            MAIN,
            format!("the case could not set up its socket pair: {error}"),
        )
    };
    let (waited, peer) = UnixStream::pair().map_err(setup)?;
    waited.set_nonblocking(true).map_err(setup)?;
    // Only matters if the server makes the socket blocking: a read then
    // ends after this long instead of never.
    waited.set_read_timeout(Some(READ_LIMIT)).map_err(setup)?;
    (&peer).write_all(PENDING).map_err(setup)?;
    // Full, so that only the peer's reading could end a WRITABLE wait.
    let block = [0_u8; 16 * 1024];
    loop {
        match (&waited).write(&block) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) => return Err(setup(error)),
        }
    }
    let waited = Arc::new(waited);
    let (report, reports) = mpsc::channel();
    let (gone, drops) = mpsc::channel();
    let app = {
        let waited = Arc::clone(&waited);
        rgi_async::from_fn(
            move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
                let Some(readiness) = Capabilities::of(&environ)
                    .and_then(Capabilities::readiness)
                    .cloned()
                else {
                    let _ = report.send(Err(MISSING.to_owned()));
                    return Ok(boxed(text_body("no readiness")));
                };
                let (socket, report) = (Arc::clone(&waited), report.clone());
                let dropped = Dropped(gone.clone());
                Ok(boxed(future_body(async move {
                    let _dropped = dropped;
                    let mut announced = false;
                    for _ in 0..RETRIES {
                        let mut wait = readiness.wait(&*socket, Interest::WRITABLE, None);
                        let outcome = poll_fn(|cx| {
                            let polled = wait.as_mut().poll(cx);
                            if polled.is_pending() && !announced {
                                announced = true;
                                let _ = report.send(Ok(()));
                            }
                            polled
                        })
                        .await;
                        if !matches!(outcome, Ok(WaitOutcome::Ready(_))) {
                            let _ = report.send(Err(format!(
                                "a WRITABLE wait without a timeout on a full socket ended with \
                                 {outcome:?}"
                            )));
                            return String::from("ended");
                        }
                    }
                    let _ = report.send(Err(format!(
                        "a WRITABLE wait on a full socket resolved Ready {RETRIES} times"
                    )));
                    String::from("ended")
                })))
            },
        )
    };
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&Request::get("/wait").to_bytes())
        .map_err(wire(MAIN, "sending GET /wait"))?;
    let parked = recv(&reports, MAIN, "the first poll of a wait for a full socket");
    session.stop()?;
    drop(conn);
    parked?.map_err(|problem| fail(MAIN, problem))?;
    recv_within(
        &drops,
        Duration::from_secs(1),
        "RGIA-TASK-4",
        "the drop of the body parked in a readiness wait by the time RunningServer::stop returned",
    )?;
    let mut buffer = [0_u8; 64];
    match (&*waited).read(&mut buffer) {
        Ok(count) if &buffer[..count] == PENDING => {}
        Ok(0) => {
            return Err(fail(
                MAIN,
                "after the server stopped, the socket its wait was cancelled on read as ended: \
                 it was shut down",
            ));
        }
        Ok(count) => {
            return Err(fail(
                MAIN,
                format!(
                    "after the server stopped, the socket held {} instead of the unread bytes {}",
                    shown(&buffer[..count]),
                    shown(PENDING)
                ),
            ));
        }
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
            return Err(fail(
                MAIN,
                format!(
                    "the bytes {} that were pending on the socket when the server cancelled the \
                     wait on it were gone: the server read them",
                    shown(PENDING)
                ),
            ));
        }
        Err(error) => {
            return Err(fail(
                MAIN,
                format!("after the server stopped, reading the socket failed: {error}"),
            ));
        }
    }
    let started = Instant::now();
    let again = (&*waited).read(&mut buffer);
    let took = started.elapsed();
    match again {
        Err(error) if error.kind() == io::ErrorKind::WouldBlock && took < READ_LIMIT / 2 => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Err(fail(
            MAIN,
            format!(
                "a read of the emptied socket waited {took:?}: the server switched the \
                 descriptor to blocking when it cancelled the wait"
            ),
        )),
        other => Err(fail(
            MAIN,
            format!("a second read of the socket gave {other:?} instead of WouldBlock"),
        )),
    }
}

fn a_leaked_wait_holds_nothing_open(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-READY-19";
    let (report, reports) = mpsc::channel();
    let app = readiness_app(report, move |readiness, report| {
        let (waited, peer) = UnixStream::pair()?;
        peer.set_nonblocking(true)?;
        Ok(async move {
            let mut pending = readiness.wait(&waited, Interest::READABLE, None);
            // One poll registers the wait; nothing writes to the socket.
            let registered =
                poll_fn(|cx| Poll::Ready(pending.as_mut().poll(cx).is_pending())).await;
            #[expect(
                clippy::mem_forget,
                reason = "the clause is about a wait leaked this way"
            )]
            std::mem::forget(pending);
            drop(waited);
            let read = (&peer).read(&mut [0_u8; 8]);
            let _ = report.send(Ok((registered, format!("{read:?}"), matches!(read, Ok(0)))));
        })
    });
    let (registered, read, closed) = run_probe(
        server,
        app,
        &reports,
        MAIN,
        "a pending wait on a socket, leaked, then the socket closed and its peer read",
    )?;
    if !closed {
        return Err(fail(
            MAIN,
            format!(
                "a wait on a socket (pending after its first poll: {registered}) was leaked with \
                 mem::forget and the socket closed; the peer's non-blocking read gave {read} \
                 instead of the end of the stream, so the server still holds the socket open (a \
                 duplicate, or a registration that owns it)"
            ),
        ));
    }
    Ok(())
}
