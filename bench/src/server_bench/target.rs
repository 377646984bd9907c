//! The server under test: one child process per run, started by name
//! (`rgi-bench target IMPLEMENTATION APP`), serving every connection on a
//! multi-thread tokio runtime until its standard input closes.
//!
//! The protocol with the reporting process is line-based:
//!
//! - the child writes `listening ADDR` once it accepts connections;
//! - each `stats` line it reads on stdin is answered with one
//!   [`TargetStats`] line (its allocation counters and parked requests);
//! - at the end of stdin it writes a last [`TargetStats`] line and exits
//!   at once, without waiting for parked requests (callgrind writes its
//!   totals at that exit).
//!
//! The reporting process reads CPU time, RSS, threads and context switches
//! itself, from `/proc/PID` (see [`procfs`](super::procfs)).

use std::convert::Infallible;
use std::io::{BufRead, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

use crate::alloc_count::AllocCounts;
use crate::apps::bare_hello;

/// Which server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Implementation {
    /// Bare hyper 1.x through hyper-util's HTTP/1.1 + h2c builder, the
    /// baseline.
    Hyper,
    /// rgi-server with rgi-tower's services (see
    /// [`rgi`](super::rgi)).
    Rgi,
    /// rgi-tower's services served by bare hyper exactly as
    /// [`Implementation::Hyper`] is, no rgi-server (see
    /// [`tower`](super::tower)): the hellos only.
    Bridge,
    /// An axum Router served by bare hyper exactly as
    /// [`Implementation::Hyper`] is: the asynchronous hello only.
    Axum,
    /// That axum Router mounted with `rgi_tower::from_service` inside
    /// rgi-server, served as [`Implementation::Rgi`] serves its
    /// asynchronous applications: the asynchronous hello only.
    AxumInRgi,
}

impl Implementation {
    /// The server benchmark's implementations (each serves every
    /// [`App`]), baseline first.
    pub const ALL: &'static [Implementation] = &[Implementation::Hyper, Implementation::Rgi];

    /// The rgi-tower benchmark's added implementations, which serve the
    /// hellos only (see [`Implementation::serves`]).
    pub const TOWER: &'static [Implementation] = &[
        Implementation::Bridge,
        Implementation::Axum,
        Implementation::AxumInRgi,
    ];

    /// Whether this implementation serves `app`.
    #[must_use]
    pub fn serves(self, app: App) -> bool {
        match self {
            Implementation::Hyper | Implementation::Rgi => true,
            Implementation::Bridge => matches!(app, App::HelloAsync | App::HelloSync),
            Implementation::Axum | Implementation::AxumInRgi => app == App::HelloAsync,
        }
    }

    /// What the report compares with bare hyper unless told otherwise.
    pub const CANDIDATE: Implementation = Implementation::Rgi;

    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Hyper => "hyper",
            Implementation::Rgi => "rgi",
            Implementation::Bridge => "bridge",
            Implementation::Axum => "axum",
            Implementation::AxumInRgi => "axum-in-rgi",
        }
    }

    /// The implementation called `name`.
    ///
    /// # Errors
    ///
    /// [`TargetError::Unknown`] for any other name.
    pub fn parse(name: &str) -> Result<Self, TargetError> {
        Self::ALL
            .iter()
            .chain(Self::TOWER)
            .copied()
            .find(|implementation| implementation.name() == name)
            .ok_or_else(|| TargetError::Unknown {
                what: "implementation",
                name: name.to_owned(),
            })
    }
}

/// What the server runs: one application per scenario, so each side's
/// handler does exactly what the scenario measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// `GET /hello`, answered without blocking (RGI: an asynchronous
    /// application).
    HelloAsync,
    /// The same answer from a synchronous application that declares it
    /// never blocks (bare hyper: the same handler as [`App::HelloAsync`]).
    HelloSync,
    /// The hello answer after a blocking sleep of [`BLOCK_FOR`]; bare hyper
    /// runs it through `spawn_blocking` per request, RGI on its pool.
    Blocking,
    /// A long-poll: the request is held until [`PARK_FOR`] passes (a
    /// runtime timer); [`parked`] counts the requests waiting.
    Park,
    /// `/hello` as [`App::HelloAsync`]; `/hello?sleep` the same answer
    /// after a blocking sleep of [`MIXED_SLEEP`] off the event loop.
    Mixed,
    /// `/stream`: [`STREAM_BYTES`] of body, produced only as fast as the
    /// connection takes it.
    Stream,
}

impl App {
    /// Every application.
    pub const ALL: [App; 6] = [
        App::HelloAsync,
        App::HelloSync,
        App::Blocking,
        App::Park,
        App::Mixed,
        App::Stream,
    ];

    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            App::HelloAsync => "hello-async",
            App::HelloSync => "hello-sync",
            App::Blocking => "blocking",
            App::Park => "park",
            App::Mixed => "mixed",
            App::Stream => "stream",
        }
    }

    /// The application called `name`.
    ///
    /// # Errors
    ///
    /// [`TargetError::Unknown`] for any other name.
    pub fn parse(name: &str) -> Result<Self, TargetError> {
        Self::ALL
            .into_iter()
            .find(|app| app.name() == name)
            .ok_or_else(|| TargetError::Unknown {
                what: "application",
                name: name.to_owned(),
            })
    }
}

/// How long the blocking handler blocks per request.
pub const BLOCK_FOR: Duration = Duration::from_micros(100);
/// How long a parked request waits before it is answered: longer than any
/// run, so the answer never comes during one.
pub const PARK_FOR: Duration = Duration::from_secs(3_600);
/// How long the mixed scenario's blocking requests sleep.
pub const MIXED_SLEEP: Duration = Duration::from_secs(1);
/// The size of the slow readers' body: more than any run can send (a run
/// is bounded in time, see the README).
pub const STREAM_BYTES: u64 = 1 << 30;
/// The size of each chunk of the streamed body.
pub const STREAM_CHUNK: usize = 64 * 1024;

static CHUNK: [u8; STREAM_CHUNK] = [b'x'; STREAM_CHUNK];

/// The paths the load generators request.
pub mod paths {
    /// The query that makes the mixed scenario's `/hello` request sleep
    /// ([`MIXED_SLEEP`](super::MIXED_SLEEP)) off the event loop before it
    /// is answered.
    pub const SLEEP_QUERY: &str = "sleep";
    /// The mixed scenario's blocking request.
    pub const SLEEP: &str = "/hello?sleep";
    /// The slow readers' body.
    pub const STREAM: &str = "/stream";
}

/// The settings both implementations are built with, so that they differ
/// in nothing but what is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Runtime worker threads.
    pub workers: usize,
    /// Threads for blocking work (tokio's blocking pool for bare hyper,
    /// the RGI pool's size and queue for rgi-server).
    pub pool: usize,
    /// HTTP/1.1: time allowed to read a request head.
    pub header_read_timeout: Duration,
    /// HTTP/1.1: the most header fields in a request head.
    pub max_headers: usize,
    /// The largest request head (HTTP/1.1: hyper's read buffer limit;
    /// HTTP/2: the advertised header list size).
    pub max_header_bytes: usize,
    /// HTTP/2: unsent response bytes buffered per stream.
    pub max_send_buffer: usize,
    /// HTTP/1.1: aggregate pipelined responses into one write. Off by
    /// default, as in hyper: with it on, hyper 1.12 buffers a streamed
    /// body without bound while the body is ready (its write buffer's
    /// limit is skipped), so only the pipelined scenario turns it on, on
    /// both sides.
    pub pipeline_flush: bool,
    /// HTTP/2: the most concurrent streams per connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2: the initial stream window the server advertises.
    pub stream_window: u32,
    /// HTTP/2: the initial connection window the server advertises.
    pub connection_window: u32,
    /// rgi-server's per-request features turned off, to show what each
    /// costs (bare hyper has none of them).
    pub without: Without,
}

/// rgi-server's per-request features a measurement turns off, handed to the
/// server as the `RGI_SERVER_MEASURE_WITHOUT` environment variable (see
/// rgi-server's `service` module): never a setting of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Without {
    /// No request span, whatever the subscriber wants.
    pub tracing: bool,
    /// No server-wide request counters.
    pub counters: bool,
    /// No request limits or RFC checks (`rgi_server::strict`).
    pub limits: bool,
}

impl Without {
    /// Every feature on.
    pub const NOTHING: Without = Without {
        tracing: false,
        counters: false,
        limits: false,
    };

    /// The environment variable's value: the names of the features off,
    /// comma separated (empty when all are on).
    #[must_use]
    pub fn list(self) -> String {
        [
            (self.tracing, "tracing"),
            (self.counters, "counters"),
            (self.limits, "limits"),
        ]
        .into_iter()
        .filter_map(|(off, name)| off.then_some(name))
        .collect::<Vec<_>>()
        .join(",")
    }
}

impl Settings {
    /// The settings of every run unless a flag changes them.
    pub const DEFAULT: Settings = Settings {
        workers: 1,
        pool: 128,
        header_read_timeout: Duration::from_secs(30),
        max_headers: 100,
        max_header_bytes: 64 * 1024,
        max_send_buffer: 64 * 1024,
        pipeline_flush: false,
        max_concurrent_streams: 2_000,
        stream_window: 256 * 1024,
        connection_window: 1024 * 1024,
        without: Without::NOTHING,
    };

    /// [`max_header_bytes`](Self::max_header_bytes) as HTTP/2 advertises
    /// it.
    #[must_use]
    pub fn max_header_bytes_u32(&self) -> u32 {
        u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX)
    }

    /// hyper-util's builder configured as rgi-server configures hyper's:
    /// for HTTP/1.1 the timer, the head timeout, the header count and size
    /// limits, keep-alive, `pipeline_flush`; for HTTP/2 the timer, the
    /// streams, windows, header list size, send buffer, keep-alive pings and
    /// the reset-stream bound at rgi-server's defaults.
    #[must_use]
    pub fn hyper_builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .half_close(false)
            .header_read_timeout(self.header_read_timeout)
            .max_headers(self.max_headers)
            .max_buf_size(self.max_header_bytes.max(8192))
            .pipeline_flush(self.pipeline_flush);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.max_concurrent_streams)
            .initial_stream_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .max_header_list_size(self.max_header_bytes_u32())
            .max_send_buf_size(self.max_send_buffer)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_pending_accept_reset_streams(20);
        builder
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// An unknown implementation or application name.
    #[error("unknown {what} {name:?}")]
    Unknown {
        /// Which kind of name.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// The runtime, the listener or standard output failed.
    #[error("server I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The reporting process did not end the run in time.
    #[error("the run was not ended within {0:?}; the server stops by itself")]
    Deadline(Duration),
    /// rgi-server could not start.
    #[error("rgi-server did not start: {0}")]
    Rgi(#[from] rgi_server::ServeError),
    /// The implementation does not serve this application.
    #[error("the {implementation} implementation does not serve {app}")]
    Unsupported {
        /// The implementation's name.
        implementation: &'static str,
        /// The application's name.
        app: &'static str,
    },
}

static PARKED: AtomicU64 = AtomicU64::new(0);

/// Requests currently parked in [`App::Park`]'s handler (either
/// implementation).
#[must_use]
pub fn parked() -> u64 {
    PARKED.load(Ordering::Relaxed)
}

/// Counts a request as parked for as long as it lives.
#[derive(Debug)]
pub struct ParkedGuard(());

impl ParkedGuard {
    /// Counts one more parked request.
    #[must_use]
    pub fn new() -> Self {
        PARKED.fetch_add(1, Ordering::Relaxed);
        ParkedGuard(())
    }
}

impl Default for ParkedGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ParkedGuard {
    fn drop(&mut self) {
        PARKED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the server reports about itself on request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetStats {
    /// Whole-process allocation counts.
    pub allocations: AllocCounts,
    /// Bytes allocated and not yet freed.
    pub live_bytes: u64,
    /// Requests parked now.
    pub parked: u64,
}

impl TargetStats {
    /// The line's first word.
    pub const PREFIX: &'static str = "stats";

    /// The stats as one line.
    #[must_use]
    pub fn line(&self) -> String {
        format!(
            "{} allocations={} reallocations={} bytes={} live_bytes={} parked={}",
            Self::PREFIX,
            self.allocations.allocations,
            self.allocations.reallocations,
            self.allocations.bytes,
            self.live_bytes,
            self.parked
        )
    }

    /// Parses [`line`](Self::line)'s output; `None` if it is not one.
    #[must_use]
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        if words.next()? != Self::PREFIX {
            return None;
        }
        let mut field = |name: &str| -> Option<u64> {
            words
                .next()?
                .strip_prefix(name)?
                .strip_prefix('=')?
                .parse()
                .ok()
        };
        Some(TargetStats {
            allocations: AllocCounts {
                allocations: field("allocations")?,
                reallocations: field("reallocations")?,
                bytes: field("bytes")?,
            },
            live_bytes: field("live_bytes")?,
            parked: field("parked")?,
        })
    }
}

/// The allocation counters of the process, as the binary's global
/// allocator keeps them: (counts, live bytes).
pub type Probe = fn() -> (AllocCounts, u64);

fn stats(probe: Probe) -> TargetStats {
    let (allocations, live_bytes) = probe();
    TargetStats {
        allocations,
        live_bytes,
        parked: parked(),
    }
}

/// Answers `stats` lines on stdin until it closes, then writes the last
/// stats line and ends the process (parked requests are not waited for).
fn control_loop(probe: Probe) -> ! {
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim() == "stats" => {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{}", stats(probe).line());
                let _ = stdout.flush();
            }
            Ok(_) => {}
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", stats(probe).line());
    let _ = stdout.flush();
    std::process::exit(0)
}

/// Serves `app` with `implementation` on 127.0.0.1 (an ephemeral port,
/// announced on stdout) until stdin closes, which ends the process; a
/// watchdog ends it after `deadline` whatever happens (a reporting process
/// that died leaves no server behind).
///
/// # Errors
///
/// The runtime, the server or the listener could not be set up.
pub fn run(
    implementation: Implementation,
    app: App,
    settings: Settings,
    deadline: Duration,
    probe: Probe,
) -> Result<(), TargetError> {
    // Whichever runs is held until the process exits.
    let (_runtime, _server, _tower, addr) = match implementation {
        Implementation::Hyper => {
            let (runtime, addr) = start_hyper(app, settings)?;
            (Some(runtime), None, None, addr)
        }
        Implementation::Rgi => {
            let (server, addr) = super::rgi::start(app, settings)?;
            (None, Some(server), None, addr)
        }
        Implementation::Bridge | Implementation::Axum | Implementation::AxumInRgi => {
            let (started, addr) = super::tower::start(implementation, app, settings)?;
            (None, None, Some(started), addr)
        }
    };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening {addr}")?;
        stdout.flush()?;
    }
    std::thread::Builder::new()
        .name("watchdog".to_owned())
        .spawn(move || {
            std::thread::sleep(deadline);
            eprintln!("rgi-bench target: {}", TargetError::Deadline(deadline));
            std::process::exit(2);
        })?;
    control_loop(probe)
}

/// Bare hyper: a multi-thread runtime with the same worker count, its
/// blocking pool as large as rgi-server's pool, an accept loop.
fn start_hyper(
    app: App,
    settings: Settings,
) -> Result<(tokio::runtime::Runtime, std::net::SocketAddr), TargetError> {
    let (runtime, listener, addr) = hyper_runtime(settings)?;
    runtime.spawn(serve_hyper(listener, app, settings));
    Ok((runtime, addr))
}

/// The runtime every hyper-served implementation runs on (the same worker
/// count as rgi-server's, its blocking pool as large as rgi-server's pool)
/// and its listener on 127.0.0.1 (an ephemeral port).
pub(super) fn hyper_runtime(
    settings: Settings,
) -> Result<(tokio::runtime::Runtime, TcpListener, std::net::SocketAddr), TargetError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.workers.max(1))
        .max_blocking_threads(settings.pool.max(1))
        .enable_all()
        .build()?;
    let listener = runtime.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    Ok((runtime, listener, addr))
}

/// Accepts connections for ever, backing off briefly when accepting fails
/// (EMFILE) rather than spinning.
pub(super) async fn accept_loop(listener: TcpListener, mut serve: impl FnMut(TcpStream)) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                serve(stream);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_hyper(listener: TcpListener, app: App, settings: Settings) {
    let builder = Arc::new(settings.hyper_builder());
    accept_loop(listener, move |stream| {
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            // A client that goes away mid-run is not the server's failure;
            // the run's counts come from the clients.
            let _ = match app {
                App::HelloAsync | App::HelloSync => {
                    builder
                        .serve_connection(io, hyper::service::service_fn(hyper_hello))
                        .await
                }
                App::Blocking => {
                    builder
                        .serve_connection(io, hyper::service::service_fn(hyper_blocking))
                        .await
                }
                App::Park => {
                    builder
                        .serve_connection(io, hyper::service::service_fn(hyper_park))
                        .await
                }
                App::Mixed => {
                    builder
                        .serve_connection(io, hyper::service::service_fn(hyper_mixed))
                        .await
                }
                App::Stream => {
                    builder
                        .serve_connection(io, hyper::service::service_fn(hyper_stream))
                        .await
                }
            };
        });
    })
    .await;
}

async fn hyper_hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(bare_hello(&request))
}

/// The blocking handler's work: a blocking sleep, standing for a blocking
/// call (a database driver, a file read) that yields the CPU.
pub fn block() {
    std::thread::sleep(BLOCK_FOR);
}

async fn hyper_blocking(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // A join error means the blocking task panicked, which `block` never
    // does; answer as the handler would have either way.
    let _ = tokio::task::spawn_blocking(block).await;
    Ok(bare_hello(&request))
}

async fn hyper_park(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let parked = ParkedGuard::new();
    tokio::time::sleep(PARK_FOR).await;
    drop(parked);
    // Held to the end, as a long-poll handler holds its request.
    Ok(bare_hello(&request))
}

async fn hyper_mixed(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().query() == Some(paths::SLEEP_QUERY) {
        let _ = tokio::task::spawn_blocking(|| std::thread::sleep(MIXED_SLEEP)).await;
    }
    Ok(bare_hello(&request))
}

async fn hyper_stream(request: Request<Incoming>) -> Result<Response<Repeat>, Infallible> {
    let length = if request.uri().path() == paths::STREAM {
        STREAM_BYTES
    } else {
        0
    };
    Ok(Response::new(Repeat::new(length)))
}

/// A body of `length` bytes of `x`, in [`STREAM_CHUNK`]-sized frames of one
/// static buffer: producing it allocates nothing, so the server's memory
/// grows only by what it buffers for a slow reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    remaining: u64,
}

impl Repeat {
    /// A body of `length` bytes.
    #[must_use]
    pub fn new(length: u64) -> Self {
        Repeat { remaining: length }
    }

    /// The next chunk, or `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let size = usize::try_from(self.remaining).map_or(STREAM_CHUNK, |r| r.min(STREAM_CHUNK));
        self.remaining -= size as u64;
        Some(Bytes::from_static(&CHUNK[..size]))
    }
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.next_chunk().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
