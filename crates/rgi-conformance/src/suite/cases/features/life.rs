//! The lifespan calls (spec/rgi.md §16.4, spec/rgi-async.md §19.1):
//! start-up once, before the first request, with its state in every
//! request (`RGI-LIFE-1`); a failed start-up stops the server
//! (`RGI-LIFE-2`); shut-down once, after the last response (`RGI-LIFE-3`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rgi::{Application, Body, BoxError, Environ, StartResponse, Startup};
use rgi_async::{AsyncApplication, AsyncBody, Step};

use super::super::kit::{
    QUIET, SECRET, Served, WAIT, ensure, exchange, expect_body, expect_status, head,
};
use crate::suite::wire::Request;
use crate::suite::{Failure, Probe, ServerUnderTest};

/// What happened to the probe, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// `startup` was entered.
    StartupBegan,
    /// `startup` returned `Ok`.
    StartupEnded,
    /// The application was called; whether the request carried the state
    /// the start-up stored.
    Called { state: bool },
    /// `shutdown` was called while this many bodies were alive.
    Shutdown { alive: usize },
}

/// The state the probe's start-up stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token(u64);

/// The one token the probes store.
const TOKEN: Token = Token(0x5eed);

/// How a probe's start-up ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Ok,
    Error,
    Panic,
}

/// The text of the failures the probe's start-up returns or panics with.
fn failure_text() -> String {
    format!("the probe's start-up failed on purpose: {SECRET}")
}

/// What a probe shares with its case.
#[derive(Clone, Default)]
struct Record {
    events: Arc<Mutex<Vec<Life>>>,
    alive: Arc<AtomicUsize>,
}

impl Record {
    fn push(&self, event: Life) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }

    fn events(&self) -> Vec<Life> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// How much `/held` streams at most: far more than the socket buffers
/// between a server and a client that does not read hold.
const HELD_LIMIT: usize = 64 << 20;

/// The size of each chunk `/held` yields.
const HELD_CHUNK: usize = 64 << 10;

/// An application, synchronous and asynchronous, that records its
/// lifespan calls and its requests; `/held` streams a large body, which a
/// client that does not read holds in the server's writes.
#[derive(Clone)]
struct Lives {
    record: Record,
    ending: Ending,
}

impl Lives {
    fn new(ending: Ending) -> Self {
        Lives {
            record: Record::default(),
            ending,
        }
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.record.push(Life::StartupBegan);
        match self.ending {
            Ending::Error => return Err(failure_text().into()),
            Ending::Panic => panic_on_purpose_at_startup(),
            Ending::Ok => {}
        }
        startup.insert_state(TOKEN);
        self.record.push(Life::StartupEnded);
        Ok(())
    }

    fn shutdown(&self) {
        self.record.push(Life::Shutdown {
            alive: self.record.alive.load(Ordering::SeqCst),
        });
    }

    fn call(&self, environ: &Environ, start: &mut StartResponse<'_>) -> Result<Counted, BoxError> {
        self.record.push(Life::Called {
            state: environ.server_extension::<Token>() == Some(&TOKEN),
        });
        start.start(head(200))?;
        self.record.alive.fetch_add(1, Ordering::SeqCst);
        Ok(Counted {
            record: self.record.clone(),
            held: environ.raw_path() == "/held",
            pulls: 0,
        })
    }
}

/// Panics in the start-up, with the text the case looks for.
#[allow(
    clippy::panic,
    reason = "the probe's start-up panics on purpose to test RGI-LIFE-2"
)]
fn panic_on_purpose_at_startup() -> ! {
    panic!("{}", failure_text())
}

/// The probe's body: counted alive until dropped.
struct Counted {
    record: Record,
    held: bool,
    pulls: usize,
}

impl Counted {
    /// `alive`, then for `/held` one large chunk after another, never
    /// waiting: only the server's writes hold it back.
    fn step(&mut self) -> Option<Bytes> {
        self.pulls = self.pulls.saturating_add(1);
        if self.pulls == 1 {
            return Some(Bytes::from_static(b"alive"));
        }
        (self.held && self.pulls * HELD_CHUNK < HELD_LIMIT)
            .then(|| Bytes::from(vec![b'h'; HELD_CHUNK]))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.record.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Body for Counted {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.step().map(Ok)
    }
}

impl AsyncBody for Counted {
    fn poll_step(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> std::task::Poll<Option<Result<Step, BoxError>>> {
        std::task::Poll::Ready(self.step().map(|chunk| Ok(Step::Chunk(chunk))))
    }
}

impl Application for Lives {
    type Body = Counted;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<Counted, BoxError> {
        Lives::call(self, &environ, start)
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        Lives::startup(self, startup)
    }

    fn shutdown(&self) {
        Lives::shutdown(self);
    }
}

/// The asynchronous face of the same probe.
struct AsyncLives(Lives);

impl AsyncApplication for AsyncLives {
    type Body = Counted;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<Counted, BoxError> {
        self.0.call(&environ, start)
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.0.startup(startup)
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}

/// Judges the start-up against the requests recorded in `events`.
fn judge_startup(events: &[Life], clause: &'static str) -> Result<(), Failure> {
    let began = events
        .iter()
        .filter(|event| **event == Life::StartupBegan)
        .count();
    ensure(began > 0, clause, || {
        format!("the server declares lifespan and never called startup (the probe saw {events:?})")
    })?;
    ensure(began == 1, clause, || {
        format!("startup was called {began} times: {events:?}")
    })?;
    let ended = events
        .iter()
        .position(|event| *event == Life::StartupEnded)
        .unwrap_or(usize::MAX);
    if let Some(early) = events
        .iter()
        .position(|event| matches!(event, Life::Called { .. }))
        .filter(|&called| called < ended)
    {
        return Err(Failure::new(
            clause,
            format!(
                "the application was called before its start-up returned (event {early} of {events:?})"
            ),
        ));
    }
    ensure(
        events
            .iter()
            .all(|event| !matches!(event, Life::Called { state: false })),
        clause,
        || {
            format!(
                "a request does not carry the state the start-up stored: it is not served with the ServerInfo run_startup returned ({events:?})"
            )
        },
    )
}

/// Judges the shut-down against `events`, recorded once the server
/// stopped.
fn judge_shutdown(events: &[Life], clause: &'static str) -> Result<(), Failure> {
    let shutdowns: Vec<(usize, usize)> = events
        .iter()
        .enumerate()
        .filter_map(|(at, event)| match event {
            Life::Shutdown { alive } => Some((at, *alive)),
            _ => None,
        })
        .collect();
    ensure(!shutdowns.is_empty(), clause, || {
        format!("the server stopped without calling shutdown: {events:?}")
    })?;
    ensure(shutdowns.len() == 1, clause, || {
        format!("shutdown was called {} times: {events:?}", shutdowns.len())
    })?;
    let (at, alive) = shutdowns[0];
    ensure(alive == 0, clause, || {
        format!("shutdown was called while {alive} response body(ies) were still alive")
    })?;
    ensure(
        events[at + 1..]
            .iter()
            .all(|event| !matches!(event, Life::Called { .. })),
        clause,
        || format!("the application was called after its shutdown: {events:?}"),
    )
}

feature_case!(
    rgi_life_1_startup_before_the_first_request
    needs Lifespan
    ["RGI-LIFE-1"]
    "startup is called once and returns before the application is first called, and every request carries the state it stored"
    => startup_before_the_first_request
);

fn startup_before_the_first_request(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-LIFE-1";
    let probe = Lives::new(Ending::Ok);
    let record = probe.record.clone();
    let served = Served::start(server, probe, CLAUSE)?;
    for target in ["/first", "/second"] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(target), "GET", CLAUSE)?;
        expect_status(&response, 200, CLAUSE, target)?;
        expect_body(&response, b"alive", CLAUSE, target)?;
    }
    judge_startup(&record.events(), CLAUSE)?;
    served.stop()
}

feature_case!(
    rgi_life_2_failed_startup_stops_the_server
    needs Lifespan
    ["RGI-LIFE-2"]
    "a start-up that returns an error, or panics, keeps the server from starting: start fails with an error that carries the application's text, no request is served and shutdown is not called"
    => failed_startup_stops_the_server
);

fn failed_startup_stops_the_server(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-LIFE-2";
    for ending in [Ending::Error, Ending::Panic] {
        let probe = Lives::new(ending);
        let record = probe.record.clone();
        let what = match ending {
            Ending::Error => "returns an error",
            _ => "panics",
        };
        match server.start(Probe::sync(probe)) {
            Ok(running) => {
                let addr = running.addr();
                let _stopped = running.stop();
                return Err(Failure::new(
                    CLAUSE,
                    format!(
                        "the application's start-up {what}, yet the server started and listens on {addr} (the probe saw {:?})",
                        record.events()
                    ),
                ));
            }
            Err(error) => {
                let mut text = error.to_string();
                let mut cause = error.source();
                while let Some(inner) = cause {
                    text.push_str(": ");
                    text.push_str(&inner.to_string());
                    cause = inner.source();
                }
                ensure(text.contains("failed on purpose"), CLAUSE, || {
                    format!(
                        "the start-up {what}; the server's error does not carry the application's text: {text}"
                    )
                })?;
            }
        }
        // The start-up may have been left running on its thread; nothing
        // may follow it.
        std::thread::sleep(QUIET);
        let events = record.events();
        ensure(
            events
                .iter()
                .all(|event| matches!(event, Life::StartupBegan)),
            CLAUSE,
            || format!("after a start-up that {what}, the probe saw {events:?}"),
        )?;
    }
    Ok(())
}

feature_case!(
    rgi_life_3_shutdown_once_after_the_last_response
    needs Lifespan
    ["RGI-LIFE-3"]
    "when the server stops, with one response done and one held up by a client that does not read, shutdown is called once, after the last body was dropped, and no request follows it"
    => shutdown_once_after_the_last_response
);

fn shutdown_once_after_the_last_response(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-LIFE-3";
    let probe = Lives::new(Ending::Ok);
    let record = probe.record.clone();
    let served = Served::start(server, probe, CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/done"), "GET", CLAUSE)?;
    expect_body(&response, b"alive", CLAUSE, "a finished response")?;
    let mut held = served.connect()?;
    held.send(&Request::get("/held").to_bytes())
        .map_err(|error| Failure::new(CLAUSE, format!("sending /held: {error}")))?;
    let (_, head) = held
        .read_final_head()
        .map_err(|error| Failure::new(CLAUSE, format!("reading the head of /held: {error}")))?;
    ensure(head.status == 200, CLAUSE, || {
        format!("the streaming response has status {}", head.status)
    })?;
    ensure(
        record
            .events()
            .iter()
            .all(|event| !matches!(event, Life::Shutdown { .. })),
        CLAUSE,
        || {
            format!(
                "shutdown was called while the server was serving: {:?}",
                record.events()
            )
        },
    )?;
    // The client reads no further: the server's writes of /held stall.
    std::thread::sleep(QUIET);
    let stopping = served.stop_in_background();
    match stopping.recv_timeout(WAIT + Duration::from_secs(1)) {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            return Err(Failure::new(
                "RGI-CONN-5",
                format!("the server did not stop cleanly: {error}"),
            ));
        }
        Err(_) => {
            return Err(Failure::new(
                "RGI-CONN-5",
                "the server did not stop within its bound".to_owned(),
            ));
        }
    }
    judge_shutdown(&record.events(), CLAUSE)
}

feature_case!(
    rgia_life_1_async_startup_and_shutdown
    needs AsyncLifespan
    ["RGIA-LIFE-1", "RGI-LIFE-1", "RGI-LIFE-3"]
    "for an asynchronous application, startup is called once before the first call and its state reaches every request, and stopping calls shutdown once, after the last body was dropped"
    => async_startup_and_shutdown
);

fn async_startup_and_shutdown(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGIA-LIFE-1";
    let probe = Lives::new(Ending::Ok);
    let record = probe.record.clone();
    let served = Served::with_probe(server, Probe::asynchronous(AsyncLives(probe)), CLAUSE)?;
    for target in ["/first", "/second"] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(target), "GET", CLAUSE)?;
        expect_status(&response, 200, CLAUSE, target)?;
        expect_body(&response, b"alive", CLAUSE, target)?;
    }
    judge_startup(&record.events(), CLAUSE)?;
    served.stop()?;
    judge_shutdown(&record.events(), CLAUSE)
}
