//! The lifespan hooks on rgi-server, for a synchronous and an asynchronous
//! application alike (spec/rgi.md §16.4, `[RGI-LIFE-1]` to `[RGI-LIFE-3]`,
//! `[RGIA-LIFE-1]`): the start-up runs once, off the runtime's worker
//! threads and before the first connection is accepted, and its state
//! reaches every request; a start-up that fails, panics or outlasts its
//! timeout is a typed error and nothing is served; the shut-down runs once,
//! after the last response of a graceful stop, or at the end of the grace
//! period, and never after a failed start-up or a stop that is not
//! graceful. Every wait is bounded; the one sleep gives a wrong order time
//! to show and synchronises nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use rgi::{Application, Body, BoxError, Environ, ResponseHead, StartResponse, StartupError};
use rgi_async::{AsyncApplication, AsyncBody, Step};
use rgi_server::{Limits, ServeError, Server};

/// Every wait of these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(30);

/// The state the start-up shares with every request.
#[derive(Clone, Debug)]
struct Ready(&'static str);

/// What happened, in order, and how often each hook ran.
#[derive(Default)]
struct Log {
    events: Mutex<Vec<String>>,
    startups: AtomicUsize,
    shutdowns: AtomicUsize,
    calls: AtomicUsize,
}

impl Log {
    fn push(&self, event: impl Into<String>) {
        self.events.lock().unwrap().push(event.into());
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

/// A door the test opens; blocking and asynchronous waits alike.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
    notify: tokio::sync::Notify,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
        self.notify.notify_waiters();
    }

    fn is_open(&self) -> bool {
        *self.open.lock().unwrap()
    }

    fn wait_blocking(&self) {
        let open = self.open.lock().unwrap();
        let (open, _) = self
            .changed
            .wait_timeout_while(open, BOUND, |open| !*open)
            .unwrap();
        assert!(*open, "the gate was never opened");
    }

    async fn wait(self: Arc<Self>) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.is_open() {
                return;
            }
            notified.await;
        }
    }
}

/// How the application's start-up behaves.
enum Start {
    Ok,
    Fail,
    Panic,
    /// Waits until the test sends, then succeeds.
    Block(Mutex<mpsc::Receiver<()>>),
}

/// The test application, synchronous and asynchronous:
/// - `/state`: the start-up's state, and whether the start-up had
///   returned when the request was called;
/// - `/slow`: tells the test it is in flight, waits for the gate, then
///   answers `done`; its body's drop is logged.
struct LifeApp {
    log: Arc<Log>,
    start: Start,
    /// Before its state is stored, the start-up sends a request to this
    /// address and hands the connection to the test.
    probe: Option<(SocketAddr, Mutex<mpsc::Sender<TcpStream>>)>,
    started: AtomicBool,
    gate: Arc<Gate>,
    entered: Mutex<mpsc::Sender<()>>,
    /// Signalled by the shut-down.
    stopped: Mutex<mpsc::Sender<()>>,
    shutdown_panics: bool,
}

/// The test's ends of a [`LifeApp`].
struct Handles {
    log: Arc<Log>,
    gate: Arc<Gate>,
    entered: mpsc::Receiver<()>,
    stopped: mpsc::Receiver<()>,
    probed: mpsc::Receiver<TcpStream>,
}

fn life_app(start: Start, probe: Option<SocketAddr>) -> (LifeApp, Handles) {
    let (entered_sender, entered) = mpsc::channel();
    let (stopped_sender, stopped) = mpsc::channel();
    let (probe_sender, probed) = mpsc::channel();
    let log = Arc::new(Log::default());
    let gate = Arc::new(Gate::default());
    let app = LifeApp {
        log: Arc::clone(&log),
        start,
        probe: probe.map(|address| (address, Mutex::new(probe_sender))),
        started: AtomicBool::new(false),
        gate: Arc::clone(&gate),
        entered: Mutex::new(entered_sender),
        stopped: Mutex::new(stopped_sender),
        shutdown_panics: false,
    };
    let handles = Handles {
        log,
        gate,
        entered,
        stopped,
        probed,
    };
    (app, handles)
}

impl LifeApp {
    fn start_up(&self, startup: &mut rgi::Startup<'_>) -> Result<(), BoxError> {
        self.log.startups.fetch_add(1, Ordering::SeqCst);
        let thread = std::thread::current();
        self.log.push(format!(
            "startup on {} with a runtime: {}, lifespan declared: {}",
            thread.name().unwrap_or("an unnamed thread"),
            tokio::runtime::Handle::try_current().is_ok(),
            startup.server_info().features().lifespan(),
        ));
        if let Some((address, handed)) = &self.probe {
            // A client that is already there: the listener is bound, and
            // the connection waits in its backlog.
            let mut client = TcpStream::connect(address)?;
            client.write_all(request("/state").as_bytes())?;
            handed.lock().unwrap().send(client)?;
        }
        match &self.start {
            Start::Ok => {}
            Start::Fail => return Err("no database".into()),
            Start::Panic => panic!("the start-up exploded"),
            Start::Block(release) => {
                release.lock().unwrap().recv_timeout(BOUND)?;
            }
        }
        startup.insert_state(Ready("ready"));
        self.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn shut_down(&self) {
        self.log.shutdowns.fetch_add(1, Ordering::SeqCst);
        self.log.push("shutdown");
        let _ = self.stopped.lock().unwrap().send(());
        assert!(!self.shutdown_panics, "the shut-down exploded");
    }

    fn state(&self, environ: &Environ) -> Bytes {
        Bytes::from(format!(
            "state={:?} started_before_call={}",
            environ.server_extension::<Ready>().map(|ready| ready.0),
            self.started.load(Ordering::SeqCst)
        ))
    }
}

/// A body that answers `done` and logs its drop.
struct Logged {
    chunk: Option<Bytes>,
    log: Arc<Log>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.log.push("body dropped");
    }
}

impl Body for Logged {
    fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.chunk.take().map(Ok)
    }

    fn size_hint(&self) -> Option<u64> {
        Some(self.chunk.as_ref().map_or(0, |chunk| chunk.len() as u64))
    }
}

impl Application for LifeApp {
    type Body = Logged;

    fn startup(&self, startup: &mut rgi::Startup<'_>) -> Result<(), BoxError> {
        self.start_up(startup)
    }

    fn shutdown(&self) {
        self.shut_down();
    }

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<Logged, BoxError> {
        self.log.calls.fetch_add(1, Ordering::SeqCst);
        let chunk = if environ.uri().path() == "/slow" {
            self.entered.lock().unwrap().send(())?;
            self.gate.wait_blocking();
            Bytes::from_static(b"done")
        } else {
            self.state(&environ)
        };
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Logged {
            chunk: Some(chunk),
            log: Arc::clone(&self.log),
        })
    }
}

/// A wait for the gate, as a future.
type GateWait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// `/slow` as an asynchronous body: it waits for the gate without a thread.
struct Waiting {
    wait: Option<GateWait>,
    logged: Logged,
}

impl AsyncBody for Waiting {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if let Some(wait) = this.wait.as_mut() {
            std::task::ready!(wait.as_mut().poll(cx));
            this.wait = None;
        }
        if !start.is_started() {
            if let Err(error) = start.start(ResponseHead::new(StatusCode::OK)) {
                return Poll::Ready(Some(Err(error.into())));
            }
        }
        Poll::Ready(this.logged.chunk.take().map(|chunk| Ok(Step::Chunk(chunk))))
    }

    fn size_hint(&self) -> Option<u64> {
        self.logged.size_hint()
    }
}

impl AsyncApplication for LifeApp {
    type Body = Waiting;

    fn startup(&self, startup: &mut rgi::Startup<'_>) -> Result<(), BoxError> {
        self.start_up(startup)
    }

    fn shutdown(&self) {
        self.shut_down();
    }

    fn call(&self, environ: Environ, _start: &mut StartResponse<'_>) -> Result<Waiting, BoxError> {
        self.log.calls.fetch_add(1, Ordering::SeqCst);
        let slow = environ.uri().path() == "/slow";
        let (wait, chunk): (Option<GateWait>, Bytes) = if slow {
            self.entered.lock().unwrap().send(())?;
            (
                Some(Box::pin(Arc::clone(&self.gate).wait())),
                Bytes::from_static(b"done"),
            )
        } else {
            (None, self.state(&environ))
        };
        Ok(Waiting {
            wait,
            logged: Logged {
                chunk: Some(chunk),
                log: Arc::clone(&self.log),
            },
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Face {
    Sync,
    Async,
}

const FACES: [Face; 2] = [Face::Sync, Face::Async];

fn serve(face: Face, builder: rgi_server::Builder, app: LifeApp) -> Result<Server, ServeError> {
    let builder = builder.workers(2);
    match face {
        Face::Sync => builder.serve_sync(app),
        Face::Async => builder.serve_async(app),
    }
}

fn request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: test.example\r\nconnection: close\r\n\r\n")
}

/// Reads an answer to its end (the requests ask for `connection: close`):
/// the status line and the content, or what the peer did instead.
fn read_answer(mut stream: TcpStream) -> String {
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(error) => panic!("reading the answer: {error}"),
    }
    let raw = String::from_utf8_lossy(&raw).into_owned();
    match raw.split_once("\r\n\r\n") {
        Some((head, body)) => {
            let status = head.lines().next().unwrap_or_default();
            format!("{status} | {body}")
        }
        None => raw,
    }
}

fn exchange(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(request(path).as_bytes()).unwrap();
    read_answer(stream)
}

fn bound_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

#[test]
fn the_startup_runs_once_before_the_first_accept_and_its_state_reaches_every_request() {
    for face in FACES {
        let (listener, address) = bound_listener();
        let (app, handles) = life_app(Start::Ok, Some(address));
        let server = serve(face, Server::builder().listener(listener, None), app).unwrap();
        // The request the start-up sent while it ran: answered only after
        // the start-up returned, and with its state.
        let early = handles.probed.recv_timeout(BOUND).unwrap();
        assert_eq!(
            read_answer(early),
            "HTTP/1.1 200 OK | state=Some(\"ready\") started_before_call=true",
            "{face:?}"
        );
        for _ in 0..2 {
            assert_eq!(
                exchange(address, "/state"),
                "HTTP/1.1 200 OK | state=Some(\"ready\") started_before_call=true",
                "{face:?}"
            );
        }
        assert_eq!(handles.log.startups.load(Ordering::SeqCst), 1, "{face:?}");
        assert_eq!(
            handles.log.events().first().map(String::as_str),
            Some("startup on rgi-startup with a runtime: true, lifespan declared: true"),
            "{face:?}: off the runtime's workers, in its context"
        );
        server.shutdown();
        assert_eq!(handles.log.shutdowns.load(Ordering::SeqCst), 1, "{face:?}");
    }
}

#[test]
fn a_failing_or_panicking_startup_is_a_typed_error_and_nothing_is_served() {
    for face in FACES {
        for start in [Start::Fail, Start::Panic] {
            let (listener, address) = bound_listener();
            let (app, handles) = life_app(start, Some(address));
            let refused = serve(face, Server::builder().listener(listener, None), app);
            match refused {
                Err(ServeError::Startup(StartupError::Failed(cause))) => {
                    assert_eq!(cause.to_string(), "no database", "{face:?}");
                }
                Err(ServeError::Startup(StartupError::Panicked(message))) => {
                    assert_eq!(message, "the start-up exploded", "{face:?}");
                }
                other => panic!("{face:?}: served anyway: {other:?}"),
            }
            // The client that came during the start-up gets no answer, and
            // the listener is gone.
            let early = handles.probed.recv_timeout(BOUND).unwrap();
            assert_eq!(read_answer(early), "", "{face:?}");
            assert!(
                TcpStream::connect(address).is_err(),
                "{face:?}: still listening"
            );
            assert_eq!(handles.log.calls.load(Ordering::SeqCst), 0, "{face:?}");
            assert_eq!(handles.log.shutdowns.load(Ordering::SeqCst), 0, "{face:?}");
        }
    }
}

#[test]
fn a_startup_over_its_timeout_is_timed_out_and_left_to_finish() {
    for face in FACES {
        let (release, blocked) = mpsc::channel();
        let (app, handles) = life_app(Start::Block(Mutex::new(blocked)), None);
        let limit = Duration::from_millis(300);
        let began = Instant::now();
        let refused = serve(
            face,
            Server::builder()
                .bind(([127, 0, 0, 1], 0))
                .startup_timeout(limit),
            app,
        );
        let waited = began.elapsed();
        assert!(
            matches!(refused, Err(ServeError::Startup(StartupError::TimedOut(timeout))) if timeout == limit),
            "{face:?}: {refused:?}"
        );
        assert!(
            waited >= limit && waited < BOUND,
            "{face:?}: waited {waited:?}"
        );
        release.send(()).unwrap();
        assert_eq!(handles.log.calls.load(Ordering::SeqCst), 0, "{face:?}");
        assert_eq!(handles.log.shutdowns.load(Ordering::SeqCst), 0, "{face:?}");
    }
}

#[test]
fn the_shutdown_runs_once_after_the_in_flight_response_ended() {
    for face in FACES {
        let (app, handles) = life_app(Start::Ok, None);
        let server = serve(
            face,
            Server::builder()
                .bind(([127, 0, 0, 1], 0))
                .limits(Limits::default().shutdown_grace(BOUND)),
            app,
        )
        .unwrap();
        let address = server.local_addr().unwrap();
        let mut client = TcpStream::connect(address).unwrap();
        client.write_all(request("/slow").as_bytes()).unwrap();
        handles.entered.recv_timeout(BOUND).unwrap();

        let stop = server.shutdown_handle();
        stop.shutdown();
        // Not a synchronisation: the time a shut-down called too early
        // gets to show itself.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            handles.log.shutdowns.load(Ordering::SeqCst),
            0,
            "{face:?}: the shut-down ran with a response in flight"
        );
        handles.gate.open();
        assert_eq!(read_answer(client), "HTTP/1.1 200 OK | done", "{face:?}");
        server.wait();
        assert_eq!(handles.log.shutdowns.load(Ordering::SeqCst), 1, "{face:?}");
        let events = handles.log.events();
        assert_eq!(
            events.get(1..).unwrap_or_default(),
            ["body dropped", "shutdown"],
            "{face:?}: {events:?}"
        );
    }
}

#[test]
fn the_shutdown_runs_by_the_end_of_the_grace_period_when_a_response_outlives_it() {
    for face in FACES {
        let (app, handles) = life_app(Start::Ok, None);
        let server = serve(
            face,
            Server::builder()
                .bind(([127, 0, 0, 1], 0))
                .limits(Limits::default().shutdown_grace(Duration::from_millis(300))),
            app,
        )
        .unwrap();
        let address = server.local_addr().unwrap();
        let mut client = TcpStream::connect(address).unwrap();
        client.write_all(request("/slow").as_bytes()).unwrap();
        handles.entered.recv_timeout(BOUND).unwrap();

        let began = Instant::now();
        server.shutdown_handle().shutdown();
        // Called while the response is still held at the gate.
        handles.stopped.recv_timeout(BOUND).unwrap();
        let elapsed = began.elapsed();
        assert!(!handles.gate.is_open(), "{face:?}");
        match face {
            // Blocked in the application's code on a pool thread: nothing
            // can drop that body, and the call waits for the period's end.
            Face::Sync => assert!(
                elapsed >= Duration::from_millis(300),
                "{face:?}: before the grace period's end ({elapsed:?})"
            ),
            // Parked: cut off a quarter of the period early, its body
            // dropped, then the call.
            Face::Async => {
                assert!(
                    elapsed >= Duration::from_millis(225),
                    "{face:?}: before the cut-off ({elapsed:?})"
                );
                let events = handles.log.events();
                assert!(
                    events.ends_with(&["body dropped".to_owned(), "shutdown".to_owned()]),
                    "{face:?}: {events:?}"
                );
            }
        }
        server.wait();
        handles.gate.open();
        assert_eq!(handles.log.shutdowns.load(Ordering::SeqCst), 1, "{face:?}");
        drop(client);
    }
}

#[test]
fn a_panicking_shutdown_is_contained_and_the_server_still_stops() {
    for face in FACES {
        let (mut app, handles) = life_app(Start::Ok, None);
        app.shutdown_panics = true;
        let server = serve(face, Server::builder().bind(([127, 0, 0, 1], 0)), app).unwrap();
        let address = server.local_addr().unwrap();
        assert!(
            exchange(address, "/state").starts_with("HTTP/1.1 200 OK"),
            "{face:?}"
        );
        server.shutdown();
        assert_eq!(handles.log.shutdowns.load(Ordering::SeqCst), 1, "{face:?}");
    }
}

#[test]
fn no_shutdown_without_a_graceful_stop() {
    for face in FACES {
        let (app, handles) = life_app(Start::Ok, None);
        let server = serve(face, Server::builder().bind(([127, 0, 0, 1], 0)), app).unwrap();
        drop(server);
        assert_eq!(handles.log.startups.load(Ordering::SeqCst), 1, "{face:?}");
        assert_eq!(handles.log.shutdowns.load(Ordering::SeqCst), 0, "{face:?}");
    }
}
