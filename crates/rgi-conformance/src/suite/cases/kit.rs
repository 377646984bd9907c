//! What every case uses: a started server that stops itself, the probes'
//! building blocks (gates, scripted bodies, environ snapshots) and the
//! conversion of wire errors into failures.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, Version, header};
use rgi::{Application, Body, BoxError, Environ, ResponseHead, StartResponse, UrlScheme};

use super::super::wire::{Arrival, Connection, Request, Response, WireError};
use super::super::{Failure, Probe, RunningServer, ServerUnderTest};

/// How long a case waits for something that should happen at once (an
/// event from the probe, a response, the server stopping).
pub(crate) const WAIT: Duration = Duration::from_secs(3);

/// How long a case listens to assert that nothing arrives.
pub(crate) const QUIET: Duration = Duration::from_millis(300);

/// How long a probe body waits for a gate before giving up, so that a
/// failing case never leaves a body blocked for long.
pub(crate) const GATE_LIMIT: Duration = Duration::from_secs(6);

/// Text that probes put in their errors and panics; a server must never
/// show it to the client (`RGI-FAIL-4`, `RGI-FAIL-6`).
pub(crate) const SECRET: &str = "rgi-suite-secret-detail-5c1e";

/// A server started for one case; stops when dropped, so that every
/// failure path stops it too.
pub(crate) struct Served {
    running: Option<Box<dyn RunningServer>>,
    addr: SocketAddr,
    clause: &'static str,
}

impl Served {
    /// Starts `server` with `app` for a case judging `clause`.
    pub(crate) fn start(
        server: &dyn ServerUnderTest,
        app: impl Application,
        clause: &'static str,
    ) -> Result<Self, Failure> {
        Served::with_probe(server, Probe::sync(app), clause)
    }

    /// Starts `server` with `probe`, synchronous or asynchronous, for a
    /// case judging `clause`.
    pub(crate) fn with_probe(
        server: &dyn ServerUnderTest,
        probe: Probe,
        clause: &'static str,
    ) -> Result<Self, Failure> {
        let running = server
            .start(probe)
            .map_err(|err| Failure::new(clause, format!("the server did not start: {err}")))?;
        Ok(Served {
            addr: running.addr(),
            running: Some(running),
            clause,
        })
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new connection to it.
    pub(crate) fn connect(&self) -> Result<Connection, Failure> {
        Connection::connect(self.addr).or_fail(self.clause, "connecting")
    }

    /// Stops it; a server that does not stop cleanly, or within [`WAIT`]
    /// plus a grace second, fails `RGI-CONN-5`.
    pub(crate) fn stop(mut self) -> Result<(), Failure> {
        match self.running.take() {
            Some(running) => stop_bounded(running, WAIT + Duration::from_secs(1))
                .map_err(|reason| Failure::new("RGI-CONN-5", reason)),
            None => Ok(()),
        }
    }

    /// Starts stopping it on another thread; the receiver gets the outcome.
    pub(crate) fn stop_in_background(mut self) -> Receiver<Result<(), String>> {
        let (tx, rx) = mpsc::channel();
        if let Some(running) = self.running.take() {
            thread::spawn(move || {
                let _ = tx.send(running.stop().map_err(|err| err.to_string()));
            });
        }
        rx
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = stop_bounded(running, WAIT);
        }
    }
}

/// Stops `running` on a helper thread, waiting at most `limit`: a server
/// that hangs in `stop` fails the case instead of hanging the suite.
fn stop_bounded(running: Box<dyn RunningServer>, limit: Duration) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(running.stop().map_err(|err| err.to_string()));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(format!("the server did not stop cleanly: {err}")),
        Err(_) => Err(format!("the server did not stop within {limit:?}")),
    }
}

/// A temporary file that is removed when dropped.
pub(crate) struct TempFile(PathBuf);

impl TempFile {
    /// A new file holding `contents`; a failure to write it fails `clause`.
    pub(crate) fn with(contents: &[u8], clause: &'static str) -> Result<Self, Failure> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "rgi-suite-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        File::create(&path)
            .and_then(|mut file| file.write_all(contents))
            .map_err(|err| {
                Failure::new(
                    clause,
                    format!("the suite cannot write {}: {err}", path.display()),
                )
            })?;
        Ok(TempFile(path))
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Turns wire errors into failures of a clause; broken framing is always
/// reported against `RGI-CL-9`, whatever the case.
pub(crate) trait OrFail<T> {
    /// The failure of `clause` while `doing` something.
    fn or_fail(self, clause: &'static str, doing: &str) -> Result<T, Failure>;
}

impl<T> OrFail<T> for Result<T, WireError> {
    fn or_fail(self, clause: &'static str, doing: &str) -> Result<T, Failure> {
        self.map_err(|err| {
            let clause = if err.is_framing() { "RGI-CL-9" } else { clause };
            Failure::new(clause, format!("{doing}: {err}"))
        })
    }
}

/// Fails `clause` with `reason` unless `condition` holds.
pub(crate) fn ensure(
    condition: bool,
    clause: &'static str,
    reason: impl FnOnce() -> String,
) -> Result<(), Failure> {
    if condition {
        Ok(())
    } else {
        Err(Failure::new(clause, reason()))
    }
}

/// Bytes shown escaped, for failure reasons.
pub(crate) struct Esc<'a>(pub &'a [u8]);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = self.0.len().min(300);
        write!(f, "\"{}\"", self.0[..cut].escape_ascii())?;
        if self.0.len() > cut {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// Whether `haystack` contains `needle`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Waits up to `within` for the next value on `rx`.
pub(crate) fn recv<T>(
    rx: &Receiver<T>,
    within: Duration,
    clause: &'static str,
    what: &str,
) -> Result<T, Failure> {
    rx.recv_timeout(within).map_err(|err| match err {
        RecvTimeoutError::Timeout => Failure::new(clause, format!("{what} within {within:?}")),
        RecvTimeoutError::Disconnected => Failure::new(
            clause,
            format!("{what}: the probe is gone (was it dropped early?)"),
        ),
    })
}

/// Sends `request` on `conn` and reads the response to it.
pub(crate) fn exchange(
    conn: &mut Connection,
    request: &Request,
    method: &str,
    clause: &'static str,
) -> Result<Response, Failure> {
    conn.send(&request.to_bytes())
        .or_fail(clause, "sending the request")?;
    conn.read_response(method)
        .or_fail(clause, "reading the response")
}

/// Fails `clause` unless `response` has `status`.
pub(crate) fn expect_status(
    response: &Response,
    status: u16,
    clause: &'static str,
    context: &str,
) -> Result<(), Failure> {
    ensure(response.head.status == status, clause, || {
        format!(
            "{context}: expected status {status}, got {} (head {})",
            response.head.status,
            Esc(&response.head.raw)
        )
    })
}

/// A one-shot latch a case opens to let a probe go on.
#[derive(Clone, Default)]
pub(crate) struct Gate(Arc<(Mutex<u32>, Condvar)>);

impl Gate {
    /// A closed gate.
    pub(crate) fn new() -> Self {
        Gate::default()
    }

    /// Lets one waiter through (now or later).
    pub(crate) fn open(&self) {
        let (count, signal) = &*self.0;
        *count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        signal.notify_all();
    }

    /// Waits for the gate to be opened, at most `limit`; true if it was.
    pub(crate) fn wait(&self, limit: Duration) -> bool {
        let (count, signal) = &*self.0;
        let deadline = Instant::now() + limit;
        let mut open = count.lock().unwrap_or_else(PoisonError::into_inner);
        while *open == 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            open = signal
                .wait_timeout(open, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *open -= 1;
        true
    }
}

/// A counter shared by a probe and its case.
#[derive(Clone, Default)]
pub(crate) struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// Adds one; returns the count before.
    pub(crate) fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    /// Adds `n`.
    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::SeqCst);
    }

    /// Takes one away.
    pub(crate) fn drop_one(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }

    /// The count.
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a scripted body reports to its case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// `write` returned this (`Ok` or the error's `Debug` form).
    Wrote(Result<(), String>),
    /// `start` or `replace` returned this.
    Started(Result<(), String>),
    /// A named point of the script was reached.
    Reached(&'static str),
    /// The server pulled after the body had ended (`RGI-BODY-2`).
    PulledAfterEnd,
    /// The body was dropped.
    Dropped,
}

/// One step of a scripted body.
pub(crate) enum Act {
    /// `start` with this head.
    Start(ResponseHead),
    /// `replace` with this head (the cause carries [`SECRET`]).
    Replace(ResponseHead),
    /// `write` these bytes.
    Write(Bytes),
    /// Yield this chunk (possibly empty).
    Yield(Bytes),
    /// Wait for the gate (at most [`GATE_LIMIT`]).
    Wait(Gate),
    /// Report reaching this point.
    Reach(&'static str),
    /// Fail with an error that carries [`SECRET`].
    Fail,
    /// Panic with a message that carries [`SECRET`].
    Panic,
}

/// A body that plays a script, one chunk-producing step per pull, and
/// reports what happened.
pub(crate) struct Script {
    acts: VecDeque<Act>,
    events: Sender<Event>,
    ended: bool,
    panic_on_drop: bool,
}

impl Script {
    /// A body playing `acts`, reporting to `events`.
    pub(crate) fn new(acts: Vec<Act>, events: Sender<Event>) -> Self {
        Script {
            acts: acts.into(),
            events,
            ended: false,
            panic_on_drop: false,
        }
    }

    /// The same body, panicking (with [`SECRET`]) when dropped.
    pub(crate) fn panicking_on_drop(mut self) -> Self {
        self.panic_on_drop = true;
        self
    }

    /// Runs the script from a handle the application holds (in `call`).
    pub(crate) fn run_in_call(
        acts: Vec<Act>,
        start: &mut StartResponse<'_>,
        events: &Sender<Event>,
    ) -> Result<(), BoxError> {
        for act in acts {
            match perform(act, start, events) {
                Performed::Continue => {}
                Performed::Fail => return Err(secret_error()),
                Performed::Chunk(_) => return Err("a Yield step cannot run in call".into()),
            }
        }
        Ok(())
    }
}

/// The error probes fail with.
pub(crate) fn secret_error() -> BoxError {
    format!("the probe failed on purpose: {SECRET}").into()
}

/// What one step did.
enum Performed {
    Continue,
    Chunk(Bytes),
    Fail,
}

/// Performs one step on `start`.
fn perform(act: Act, start: &mut StartResponse<'_>, events: &Sender<Event>) -> Performed {
    match act {
        Act::Start(head) => {
            let result = start.start(head).map_err(|err| err.to_string());
            let _ = events.send(Event::Started(result));
            Performed::Continue
        }
        Act::Replace(head) => {
            let result = start
                .replace(head, secret_error())
                .map_err(|err| err.to_string());
            let _ = events.send(Event::Started(result));
            Performed::Continue
        }
        Act::Write(data) => {
            let result = start.write(data).map_err(|err| format!("{err:?}"));
            let _ = events.send(Event::Wrote(result));
            Performed::Continue
        }
        Act::Yield(chunk) => Performed::Chunk(chunk),
        Act::Wait(gate) => {
            gate.wait(GATE_LIMIT);
            Performed::Continue
        }
        Act::Reach(point) => {
            let _ = events.send(Event::Reached(point));
            Performed::Continue
        }
        Act::Fail => Performed::Fail,
        Act::Panic => panic_on_purpose(),
    }
}

/// Panics with [`SECRET`] in the message, as a buggy application would.
#[allow(
    clippy::panic,
    reason = "the probe panics on purpose to test RGI-FAIL-2"
)]
pub(crate) fn panic_on_purpose() -> ! {
    panic!("the probe panicked on purpose: {SECRET}")
}

impl Body for Script {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if self.ended {
            let _ = self.events.send(Event::PulledAfterEnd);
            return None;
        }
        while let Some(act) = self.acts.pop_front() {
            match perform(act, start, &self.events) {
                Performed::Continue => {}
                Performed::Chunk(chunk) => return Some(Ok(chunk)),
                Performed::Fail => {
                    self.ended = true;
                    return Some(Err(secret_error()));
                }
            }
        }
        self.ended = true;
        None
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Dropped);
        if self.panic_on_drop && !thread::panicking() {
            panic_on_purpose();
        }
    }
}

/// Collects events from a probe and answers questions about them.
pub(crate) struct Events {
    rx: Receiver<Event>,
    seen: Vec<Event>,
}

impl Events {
    /// A channel: the sender for the probe, the collector for the case.
    pub(crate) fn channel() -> (Sender<Event>, Events) {
        let (tx, rx) = mpsc::channel();
        (
            tx,
            Events {
                rx,
                seen: Vec::new(),
            },
        )
    }

    /// Waits up to `within` for `event`; true if it came.
    pub(crate) fn wait_for(&mut self, event: &Event, within: Duration) -> bool {
        if self.seen.contains(event) {
            return true;
        }
        let deadline = Instant::now() + within;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(next) => {
                    let found = next == *event;
                    self.seen.push(next);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Fails `clause` unless the body is dropped within [`WAIT`].
    pub(crate) fn expect_dropped(
        &mut self,
        clause: &'static str,
        when: &str,
    ) -> Result<(), Failure> {
        ensure(self.wait_for(&Event::Dropped, WAIT), clause, || {
            format!("the body was not dropped within {WAIT:?} {when}")
        })
    }

    /// Everything received so far (without waiting).
    pub(crate) fn drain(&mut self) -> &[Event] {
        while let Ok(next) = self.rx.try_recv() {
            self.seen.push(next);
        }
        &self.seen
    }

    /// Forgets everything received so far, for the next request.
    pub(crate) fn clear(&mut self) {
        self.drain();
        self.seen.clear();
    }

    /// How often `event` was received so far.
    pub(crate) fn count(&mut self, event: &Event) -> usize {
        self.drain().iter().filter(|seen| *seen == event).count()
    }

    /// Fails `RGI-BODY-2` if the server pulled after the end.
    pub(crate) fn expect_no_pull_after_end(&mut self) -> Result<(), Failure> {
        ensure(
            self.count(&Event::PulledAfterEnd) == 0,
            "RGI-BODY-2",
            || "the server pulled the body again after it ended".to_owned(),
        )
    }
}

/// A response head with a status and a Content-Type.
pub(crate) fn head(status: u16) -> ResponseHead {
    ResponseHead::new(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

/// The same head with a Content-Length.
pub(crate) fn head_with_length(status: u16, length: u64) -> ResponseHead {
    head(status).with_header(header::CONTENT_LENGTH, HeaderValue::from(length))
}

/// A head with an extra field.
pub(crate) fn with_field(
    head: ResponseHead,
    name: &'static str,
    value: &'static str,
) -> ResponseHead {
    head.with_header(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

/// What an application saw of a request: a snapshot of its environ and of
/// reading its body.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) raw_path: String,
    pub(crate) query: String,
    pub(crate) version: Version,
    /// Field names and values, grouped by name in first-seen order, values
    /// in received order.
    pub(crate) fields: Vec<(String, Vec<u8>)>,
    pub(crate) script_name: Vec<u8>,
    pub(crate) path_info: Vec<u8>,
    pub(crate) server_name: String,
    pub(crate) server_port: u16,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) url_scheme: UrlScheme,
    pub(crate) content_length: Option<u64>,
    pub(crate) input_length: Option<u64>,
    /// The body as read to its end, or the read error.
    pub(crate) body: Option<Result<Vec<u8>, String>>,
}

impl Seen {
    /// A snapshot of `environ` (the body not read).
    pub(crate) fn of(environ: &Environ) -> Self {
        let headers = environ.headers();
        let mut fields = Vec::new();
        for name in headers.keys() {
            for value in headers.get_all(name) {
                fields.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
            }
        }
        Seen {
            method: environ.method().as_str().to_owned(),
            uri: environ.uri().to_string(),
            raw_path: environ.raw_path().to_owned(),
            query: environ.query_string().to_owned(),
            version: environ.version(),
            fields,
            script_name: environ.script_name().as_bytes().to_vec(),
            path_info: environ.path_info().as_bytes().to_vec(),
            server_name: environ.server_name().to_owned(),
            server_port: environ.server_port(),
            remote_addr: environ.remote_addr(),
            url_scheme: environ.url_scheme(),
            content_length: environ.content_length(),
            input_length: environ.input().content_length(),
            body: None,
        }
    }

    /// Every value of field `name`, in order.
    pub(crate) fn values(&self, name: &str) -> Vec<&[u8]> {
        self.fields
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.as_slice())
            .collect()
    }
}

/// Reads the whole input, up to `limit` bytes.
pub(crate) fn read_body(environ: &mut Environ, limit: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    environ
        .input_mut()
        .take(limit)
        .read_to_end(&mut body)
        .map(|_| body)
        .map_err(|err| describe_io(&err))
}

/// An input error, with the typed `InputError` when it carries one.
pub(crate) fn describe_io(err: &std::io::Error) -> String {
    match rgi::InputError::from_io(err) {
        Some(typed) => format!("{:?} ({typed:?})", err.kind()),
        None => format!("{:?} ({err})", err.kind()),
    }
}

/// An application that records what it saw on `seen` (reading the body
/// when `read` is set) and answers `200` with `<method> <target>` as its
/// body.
pub(crate) fn echo(seen: Sender<Seen>, read: bool) -> impl Application {
    rgi::from_fn(move |mut environ: Environ, start| {
        let mut snapshot = Seen::of(&environ);
        if read {
            snapshot.body = Some(read_body(&mut environ, 16 * 1024 * 1024));
        }
        let answer = format!("{} {}", snapshot.method, snapshot.uri);
        let _ = seen.send(snapshot);
        start.start(head_with_length(200, answer.len() as u64))?;
        Ok(Bytes::from(answer))
    })
}

/// Fails `clause` if the application was called (something arrived on
/// `seen`) within a short wait.
pub(crate) fn expect_not_called(
    seen: &Receiver<Seen>,
    clause: &'static str,
    context: &str,
) -> Result<(), Failure> {
    match seen.recv_timeout(Duration::from_millis(100)) {
        Ok(snapshot) => Err(Failure::new(
            clause,
            format!(
                "{context}: the application was called (method {}, target {})",
                snapshot.method, snapshot.uri
            ),
        )),
        Err(_) => Ok(()),
    }
}

/// Checks that a server still serves after something bad happened: a new
/// connection gets a `200` from the echo app behind `served`.
pub(crate) fn expect_still_serving(
    served: &Served,
    seen: Option<&Receiver<Seen>>,
    clause: &'static str,
) -> Result<(), Failure> {
    let mut conn = served.connect()?;
    let response =
        exchange(&mut conn, &Request::get("/still-serving"), "GET", clause).map_err(|failure| {
            Failure::new(
                clause,
                format!("the server no longer serves: {}", failure.reason()),
            )
        })?;
    if let Some(seen) = seen {
        let _ = seen.recv_timeout(WAIT);
    }
    expect_status(&response, 200, clause, "a later request")
}

/// Reads a response on a connection the server may have closed instead:
/// `None` when it did.
pub(crate) fn response_or_close(
    conn: &mut Connection,
    method: &str,
    clause: &'static str,
    doing: &str,
) -> Result<Option<Response>, Failure> {
    match conn.read_response(method) {
        Ok(response) => Ok(Some(response)),
        Err(err) if err.is_closed() => Ok(None),
        Err(err) => Err(err).or_fail(clause, doing),
    }
}

/// An application that answers every request with a scripted body made by
/// `script` (given the request's raw path), reporting on `events`.
pub(crate) fn scripted<F>(events: mpsc::Sender<Event>, script: F) -> impl rgi::Application
where
    F: Fn(&str) -> (Vec<Act>, Vec<Act>) + Send + Sync + 'static,
{
    rgi::from_fn(move |environ: Environ, start| {
        let (in_call, in_body) = script(environ.raw_path());
        Script::run_in_call(in_call, start, &events)?;
        Ok(Script::new(in_body, events.clone()))
    })
}

/// A chunk of static bytes.
pub(crate) fn data(bytes: &'static [u8]) -> Bytes {
    Bytes::from_static(bytes)
}

/// Fails `clause` unless `response` is a complete body equal to
/// `expected`.
pub(crate) fn expect_body(
    response: &Response,
    expected: &[u8],
    clause: &'static str,
    context: &str,
) -> Result<(), Failure> {
    ensure(response.body.data == expected, clause, || {
        format!(
            "{context}: the body is {}, expected {}",
            Esc(&response.body.data),
            Esc(expected)
        )
    })?;
    ensure(response.body.complete, clause, || {
        format!(
            "{context}: the body did not end completely ({:?} framing)",
            response.body.framing
        )
    })
}

/// Fails `clause` if bytes arrive on `conn` within [`QUIET`].
pub(crate) fn expect_nothing_more(
    conn: &mut Connection,
    clause: &'static str,
    context: &str,
) -> Result<(), Failure> {
    match conn.wait_for_data(QUIET).or_fail(clause, context)? {
        Arrival::Data(bytes) => Err(Failure::new(
            clause,
            format!("{context}: unexpected bytes arrived: {}", Esc(&bytes)),
        )),
        Arrival::Nothing | Arrival::Closed => Ok(()),
    }
}

/// Sends raw bytes on a new connection and reads the response.
pub(crate) fn raw_exchange(
    served: &Served,
    bytes: &[u8],
    method: &str,
    clause: &'static str,
) -> Result<Response, Failure> {
    let mut conn = served.connect()?;
    conn.send(bytes).or_fail(clause, "sending the request")?;
    conn.read_response(method)
        .or_fail(clause, &format!("reading the response to {}", Esc(bytes)))
}

/// One request on a new connection to the echo app; what it saw.
pub(crate) fn seen_for(
    served: &Served,
    seen: &mpsc::Receiver<Seen>,
    request: &Request,
    method: &str,
    clause: &'static str,
) -> Result<(Connection, Seen), Failure> {
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, request, method, clause)?;
    expect_status(&response, 200, clause, "a plain request")?;
    let snapshot = recv(seen, WAIT, clause, "the application was not called")?;
    Ok((conn, snapshot))
}

/// The path whose first call fails in [`failed_call_is_not_retried`].
const COLD: &str = "/cold";

/// The application of the retry cases: its `call` fails the first time it
/// is called for [`COLD`] (a cache not warm yet) and answers `200 warm`
/// every later time, counting its calls for that path in `calls`.
pub(crate) fn cold_then_warm(
    calls: &AtomicUsize,
    environ: &Environ,
    start: &mut StartResponse<'_>,
) -> Result<Bytes, BoxError> {
    if environ.raw_path() == COLD && calls.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(secret_error());
    }
    start.start(head_with_length(200, 4))?;
    Ok(Bytes::from_static(b"warm"))
}

/// The validator's reports that are not warnings.
fn breaches(reports: &crate::Reports) -> Vec<crate::Violation> {
    reports
        .all()
        .into_iter()
        .filter(|seen| !seen.is_warning())
        .collect()
}

/// A validator's report as the failure of its own clause.
fn reported(seen: &crate::Violation) -> Failure {
    Failure::new(
        seen.clause(),
        format!(
            "the validator around the application reported a {:?}-side breach: {} ({})",
            seen.side(),
            seen.message(),
            seen.value()
        ),
    )
}

/// The judge of the retry cases: `probe` is [`cold_then_warm`] behind a
/// validator that reports to `reports`. A `GET /cold` whose call failed
/// must have cost exactly one call (`once`: a server that calls again,
/// with the same `ResponseState` or a fresh one, for the same request
/// breaks it), leave the validator silent (a second call with the same
/// state is its `once` report), and be answered 500 (`failed`); the next
/// `GET /cold` is the application's `200 warm` from its second call; and
/// once the server stopped the validator still reports nothing (any
/// report but a warning fails its own clause).
pub(crate) fn failed_call_is_not_retried(
    server: &dyn ServerUnderTest,
    probe: Probe,
    calls: &AtomicUsize,
    reports: &crate::Reports,
    once: &'static str,
    failed: &'static str,
) -> Result<(), Failure> {
    let served = Served::with_probe(server, probe, failed)?;
    let mut conn = served.connect()?;
    let first = exchange(&mut conn, &Request::get(COLD), "GET", failed)?;
    let count = calls.load(Ordering::SeqCst);
    let seen = breaches(reports);
    // The calls before the status: a retry is why a failed call could
    // come back as anything but a 500.
    ensure(count == 1, once, || {
        let found: Vec<String> = seen
            .iter()
            .map(|seen| format!("{} {}", seen.clause(), seen.message()))
            .collect();
        format!(
            "one GET {COLD} whose call failed cost {count} calls of the application (the \
             server called it again for the same request) and was answered {}; the validator \
             around the application reported {found:?}",
            Esc(&first.head.raw)
        )
    })?;
    if let Some(seen) = seen.first() {
        return Err(reported(seen));
    }
    expect_status(&first, 500, failed, "GET /cold, whose call failed")?;
    drop(conn);
    let mut conn = served.connect()?;
    let second = exchange(&mut conn, &Request::get(COLD), "GET", failed)?;
    expect_status(
        &second,
        200,
        failed,
        "the next GET /cold, whose call succeeds",
    )?;
    ensure(second.body.data == b"warm", failed, || {
        format!(
            "the next GET /cold: expected the body \"warm\", got {}",
            Esc(&second.body.data)
        )
    })?;
    let count = calls.load(Ordering::SeqCst);
    ensure(count == 2, once, || {
        format!("two GET {COLD} cost {count} calls of the application")
    })?;
    drop(conn);
    served.stop()?;
    match breaches(reports).first() {
        Some(seen) => Err(reported(seen)),
        None => Ok(()),
    }
}
