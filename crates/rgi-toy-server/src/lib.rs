//! `rgi-toy-server`: the conformance kit's toy HTTP/1.1 server, small and
//! conforming, and, with a deliberate [`Fault`] switched on, the proof that
//! the kit's server suite catches a broken server and names the clause it
//! broke. It is the kit's test fixture (the kit itself holds no server) and
//! the CLI's `--toy` and `--toy-fault`; it is not published.
//!
//! **It is not a production server.** It uses `std::net` with blocking
//! sockets and a thread per connection, has no TLS, no HTTP/2, no limit on
//! connections and no configuration; it is meant for tests on 127.0.0.1.
//! It is, however, meant to be correct: it follows every server clause of
//! `spec/rgi.md` and `spec/rgi-async.md` that applies to it.
//!
//! # What it does
//!
//! - Request heads: the request line is checked by the toy (`RGI-PROTO-9`;
//!   a target over 8 KiB gets `414`, `RGI-LIMIT-2`; a major version other
//!   than 1 gets `505`, `RGI-PROTO-7`), the fields are parsed with
//!   `httparse` (a header section over 16 KiB or 100 field lines gets
//!   `431`, `RGI-LIMIT-3`). A malformed head (`RGI-PROTO-8`), a missing,
//!   repeated or invalid Host or one that disagrees with an absolute-form
//!   target (`RGI-PROTO-1`, `RGI-PROTO-2`), a target form its method does
//!   not allow (`RGI-PROTO-6`), framing fields in doubt (`RGI-PROTO-3`,
//!   `RGI-PROTO-4`) or an environ the client's target cannot make
//!   (`RGI-ENV-1`) is answered `400`; `CONNECT` and transfer codings other
//!   than chunked get `501`, expectations other than `100-continue` `417`
//!   (`RGI-PROTO-5`), a declared body over 64 MiB `413` (`RGI-LIMIT-4`).
//!   Each refusal is logged, carries `connection: close` and closes the
//!   connection before anything after the head is read (`RGI-PROTO-10`).
//! - Request bodies: Content-Length or chunked (decoded by the toy). A
//!   chunked body's trailer section goes into the input's
//!   [`rgi::TrailerSlot`] before the end of the body is reported, without
//!   the fields [`rgi::is_forbidden_trailer`] names (`RGI-TRAILER-1`). A
//!   chunked body that ends early fails with
//!   [`rgi::InputError::Truncated`] (its `declared` is what the chunk
//!   sizes announced so far); a length-delimited one is reported as
//!   truncated by [`rgi::Input`] itself. Broken chunked framing fails
//!   with [`rgi::InputError::MalformedBody`], chunk sizes announcing more
//!   than the body limit with [`rgi::InputError::BodyLimitExceeded`]
//!   (before any byte past it is read), and 5 s without a body byte with
//!   [`rgi::InputError::BodyTimedOut`]; an application that propagates
//!   one of them before its head gets the status it names (400, 413, 408)
//!   with `connection: close` instead of 500 (`RGI-FAIL-10`, through
//!   [`rgi::client_body_error`] in the kit's drivers). `100 Continue` goes out at the
//!   first read that reaches the connection, never after the final head.
//! - After each response the toy drains at most 1 MiB of unread body
//!   within 2 s, or closes the connection; read-ahead bytes belong to the
//!   next request (pipelining). HTTP/1.1 connections are kept unless the
//!   client says `close`; HTTP/1.0 ones only with `keep-alive`.
//! - Responses carry the application's Content-Length when it declared
//!   one, are chunked on HTTP/1.1 otherwise, and close-delimited on
//!   HTTP/1.0; HEAD, 204 and 304 responses have no body. The toy adds
//!   `date` and the framing fields. Each chunk is written to the socket
//!   (with `TCP_NODELAY`) before the next is pulled: unsent output is
//!   bounded by the kernel's socket buffer plus one chunk
//!   (`RGIA-OUT-2`). When a synchronous body's `size_hint()` is exact
//!   before its first pull and no head was sent, the toy declares it with
//!   `ResponseState::declare_length` (`RGI-CL-6`, `RGI-CL-10`): the head
//!   then carries it unless the application gave its own, and the state
//!   holds the body to it.
//! - RGI 1.2's optional features, all declared in the
//!   [`rgi::Features`] of its `ServerInfo` and claimed to the suite
//!   (`RGI-FEAT-1`): request trailers (above); response trailers, enabled
//!   for an HTTP/1.1 request with `TE: trailers` (not HEAD) and written as
//!   the trailer section of the last-chunk, dropped when the response is
//!   framed by its length (`RGI-TRAILER-7`); a head that announces
//!   trailers gets no length the toy computed and goes out chunked
//!   (`RGI-TRAILER-6`); `103 Early Hints`, enabled on every HTTP/1.1
//!   request and written at once (`RGI-EARLY-3`); each chunk of an event
//!   stream written at once, like every chunk (`RGI-SSE-3`).
//! - Lifespan: [`ToyServer::spawn_sync`] and the others bind the
//!   listener, then run the application's start-up on a thread of their
//!   own and wait for it at most 10 s (`RGI-LIFE-5`), before the accept
//!   thread starts; every request is served with the `ServerInfo` the
//!   start-up returned, so its state is a server extension of every
//!   environ (`RGI-LIFE-1`). A start-up that fails, panics or times out
//!   is [`StartError::Startup`]: nothing is served and no shut-down
//!   follows (`RGI-LIFE-2`). [`ToyHandle::stop`] calls the shut-down once,
//!   on the calling thread, after the connection threads ended or the
//!   stop's 5 s ran out, and logs a panic there (`RGI-LIFE-3`).
//! - Failures are handled by [`rgi_conformance::rt::serve_sync`] and
//!   [`rgi_conformance::rt::serve_async`]: a bare 500 before the head, a close
//!   without the last-chunk after it, a dropped body on disconnect.
//! - The environ: `server_name` is the host of the request's Host field
//!   (or of an absolute-form target), else the local address;
//!   `server_port` is the port the connection was accepted on;
//!   `remote_addr` is the peer; `url_scheme` is `http`; the toy is
//!   multithreaded, single-process, not run-once. [`rgi::Errors`] output
//!   becomes `tracing` events (target `rgi_toy_server::errors`), one
//!   per line. The toy inserts no extension of its own.
//! - Asynchronous applications get [`rgi_async::Capabilities`]: offload
//!   (a thread per job, [`rgi_conformance::rt::ThreadOffload`]), readiness (one
//!   [`rgi_conformance::rt::PollerReadiness`] per server, on Unix), after-response
//!   tasks (run on a worker thread once the response is complete) and, on
//!   HTTP/1.1 requests that ask for it, the upgrade (see below). Their
//!   input is non-blocking (`Input::from_async`): a pump thread reads the
//!   connection when the application asks, and wakes it.
//! - The upgrade: `accept` records the 101; a later poll of `Upgraded`
//!   drains the rest of the request body, writes the 101 and hands over a
//!   [`rgi_async::ByteStream`] served by a reader and a writer thread with
//!   a 64 KiB outbox, because the toy's sockets are blocking. The
//!   connection closes once the body has ended and the stream is dropped.
//! - Time limits (declared in its [`Claims`]): a head has 3 s to arrive
//!   once its first byte came, else `408` and a close (`RGI-LIMIT-5`); a
//!   new connection gets 3 s and a kept one 4 s for that first byte, else
//!   a silent close (`RGI-LIMIT-6`); 5 s without a body byte while reading
//!   a body; 10 s for a write the client does not take; none after a 101.
//! - [`ToyHandle::stop`] closes the listener, ends parked asynchronous
//!   bodies (dropping them), shuts every connection down, refuses new
//!   offload jobs and after-response tasks (`ShutDown`, `RGIA-OFFLOAD-9`,
//!   `RGIA-AFTER-5`), and waits at most 5 s for the toy's threads.
//! - Panics: applications' panics are caught by the drivers; the toy's
//!   own connection threads are guarded too.
//!
//! # Faults
//!
//! [`ToyServer::with_fault`] switches one deliberate [`Fault`] on. Each
//! breaks one clause and is caught by one suite case, named with the
//! clause in [`FAULTS`] (and [`Fault::breaks`]); `tests/toy_faults.rs`
//! runs every row against the faulty toy, which must fail with that
//! clause, and against the conforming toy, which must pass. Faults that
//! exist for both kinds of application come in pairs: one variant for
//! synchronous applications, its twin for asynchronous ones. Most faults
//! live where a real server would have the bug (the head parser, the
//! sink, the connection loop); those that break a rule `rgi`'s state
//! machine keeps for every server are hooks around the application
//! (interception of the head, a body wrapper), since a server built on
//! `rgi` cannot break them otherwise.
//!
//! # Examples
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//!
//! let app = rgi::from_fn(|_environ, start| {
//!     start.start(http::StatusCode::OK)?;
//!     Ok(bytes::Bytes::from_static(b"hello"))
//! });
//! let server = rgi_toy_server::serve_sync(app)?;
//! let mut client = TcpStream::connect(server.addr())?;
//! client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
//! let mut response = String::new();
//! client.read_to_string(&mut response)?;
//! assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
//! // The body's exact size hint became the Content-Length (RGI-CL-6, RGI-CL-10).
//! assert!(response.contains("\r\ncontent-length: 5\r\n"));
//! assert!(response.ends_with("\r\n\r\nhello"));
//! server.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod caps;
mod conn;
mod ctx;
mod fault;
mod input;
mod request;
mod serve;
mod server;
mod shared;
mod sink;
mod upgrade;
mod wrap;

use std::sync::Arc;

use rgi::{Application, BoxError};
use rgi_async::AsyncApplication;

pub use fault::{FAULTS, Fault};
pub use server::{StartError, StopError, ToyHandle};

use rgi_conformance::suite::{Claims, Probe, RunningServer, ServerUnderTest};
use serve::{AsyncService, ProbeService, SyncService};

/// The toy server as the suite sees it: conforming, or with one
/// deliberate [`Fault`].
///
/// # Examples
///
/// ```
/// use rgi_conformance::suite::ServerUnderTest;
/// use rgi_toy_server::{Fault, ToyServer};
///
/// assert_eq!(ToyServer::new().name(), "toy");
/// let broken = ToyServer::with_fault(Fault::LeaksUnreadBody);
/// assert_eq!(broken.name(), "toy (fault: LeaksUnreadBody)");
/// assert!(broken.claims().upgrade);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToyServer {
    fault: Option<Fault>,
}

impl ToyServer {
    /// The conforming toy server.
    #[must_use]
    pub const fn new() -> Self {
        ToyServer { fault: None }
    }

    /// The toy server with `fault` switched on.
    #[must_use]
    pub const fn with_fault(fault: Fault) -> Self {
        ToyServer { fault: Some(fault) }
    }

    /// The fault switched on, if any.
    #[must_use]
    pub const fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Serves a synchronous application on 127.0.0.1, on an unused port,
    /// after its start-up.
    ///
    /// # Errors
    ///
    /// [`StartError::Io`] if the listener cannot be bound or a thread
    /// cannot be started, [`StartError::Startup`] if the application's
    /// start-up fails.
    pub fn spawn_sync<A: Application>(&self, app: A) -> Result<ToyHandle, StartError> {
        server::start(Arc::new(SyncService(Arc::new(app))), self.fault)
    }

    /// Serves an asynchronous application on 127.0.0.1, on an unused
    /// port, after its start-up.
    ///
    /// # Errors
    ///
    /// [`StartError::Io`] if the listener cannot be bound, the readiness
    /// poller cannot be created, or a thread cannot be started,
    /// [`StartError::Startup`] if the application's start-up fails.
    pub fn spawn_async<A: AsyncApplication>(&self, app: A) -> Result<ToyHandle, StartError> {
        server::start(Arc::new(AsyncService(Arc::new(app))), self.fault)
    }
}

impl ServerUnderTest for ToyServer {
    fn name(&self) -> String {
        match self.fault {
            None => "toy".to_owned(),
            Some(fault) => format!("toy (fault: {fault:?})"),
        }
    }

    fn claims(&self) -> Claims {
        let claims = Claims::asynchronous()
            .with_after_response()
            .with_upgrade()
            .with_limits(request::LIMITS)
            .with_features(shared::FEATURES);
        if cfg!(unix) {
            claims.with_readiness()
        } else {
            claims
        }
    }

    fn start(&self, app: Probe) -> Result<Box<dyn RunningServer>, BoxError> {
        let handle = server::start(Arc::new(ProbeService(Arc::new(app))), self.fault)?;
        Ok(Box::new(handle))
    }
}

/// Serves a synchronous application with the conforming toy server, on
/// an unused port of 127.0.0.1.
///
/// # Errors
///
/// As [`ToyServer::spawn_sync`].
pub fn serve_sync<A: Application>(app: A) -> Result<ToyHandle, StartError> {
    ToyServer::new().spawn_sync(app)
}

/// Serves an asynchronous application with the conforming toy server, on
/// an unused port of 127.0.0.1.
///
/// # Errors
///
/// As [`ToyServer::spawn_async`].
pub fn serve_async<A: AsyncApplication>(app: A) -> Result<ToyHandle, StartError> {
    ToyServer::new().spawn_async(app)
}
