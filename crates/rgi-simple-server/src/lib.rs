//! # rgi-simple-server
//!
//! The second, independent reference server for RGI: std sockets, a
//! [mio](https://docs.rs/mio) poller, [httparse](https://docs.rs/httparse)
//! for field lines, and no async runtime. It shares no code with
//! `rgi-server` beyond the spec crates, and owns its parser, so it takes
//! the strictest reading of RFC 9110 and RFC 9112 for every request. It
//! serves synchronous applications ([`Builder::serve_sync`]) and
//! asynchronous ones ([`Builder::serve_async`]); the guide, with the demo,
//! how to choose between the two, and deployment behind nginx, is
//! `docs/simple-server.md` in the RGI repository.
//!
//! ## Contents
//!
//! | Area | Items |
//! |---|---|
//! | Configuring and starting | [`Builder`], [`Limits`], [`Error`], [`DEFAULT_STARTUP_TIMEOUT`] |
//! | The running server | [`Server`], [`LocalAddr`] |
//! | Graceful shutdown on SIGTERM/SIGINT | [`ShutdownSignals`], [`Server::run_until_signal`], [`Server::run_until`], [`StopCause`], [`SignalError`] |
//! | The server under the conformance kit (feature `conformance`) | `conformance::SuiteServer` |
//!
//! - **Signals:** [`ShutdownSignals::install`] then [`Server::run_until`]
//!   (or just [`Server::run_until_signal`]) shuts down gracefully on the
//!   first SIGTERM or SIGINT, and a second one ends the process at once.
//! - **File bodies:** a synchronous body that offers an `rgi::FileBody`
//!   with a Content-Length goes out by `sendfile(2)`, never through user
//!   space (`[RGI-FILE-3]`); a chunked one of known length, as one chunk.
//!
//! ## Optional features (RGI 1.2)
//!
//! Every request's `ServerInfo` declares them all (`[RGI-FEAT-1]`), for
//! both kinds of application:
//!
//! - **Request trailers:** a chunked body's trailer section, parsed as
//!   strictly as a head and within the head's limits (431 past them), is
//!   in the input's `TrailerSlot` before the end of the body is reported;
//!   forbidden fields are dropped.
//! - **Response trailers:** on HTTP/1.1 requests with `TE: trailers`
//!   (not HEAD), written after the last-chunk; a head with a `Trailer`
//!   field is always chunked on HTTP/1.1; dropped silently elsewhere.
//! - **`103 Early Hints`:** on HTTP/1.1 (never 1.0), written before
//!   `send_early_hints` returns, ahead of the final head, which stays lazy
//!   and replaceable.
//! - **Lifespan:** [`Builder::serve_sync`] and [`Builder::serve_async`]
//!   run the application's `startup` once before accepting anything, on a
//!   thread of its own, within [`Builder::startup_timeout`] (30 s by
//!   default), and fail with [`Error::Startup`] if it fails;
//!   [`Server::shutdown`] calls its `shutdown` once after the last
//!   response.
//! - **Server-sent events:** each chunk is written to the socket before
//!   the next is asked for, on both paths.
//!
//! ## Architecture
//!
//! - One **poller** thread accepts connections, reads and parses request
//!   heads, and keeps idle keep-alive connections, so idle connections,
//!   partial heads and slow clients hold no worker. Its read buffer is
//!   released while a connection is idle.
//! - A fixed pool of **worker** threads runs the synchronous application
//!   for one parsed head at a time. The socket stays non-blocking; reads
//!   and writes wait in `poll(2)` for at most the stalled-body time. When
//!   the next request of a kept connection is already there, the worker
//!   serves it too (at most 16 in a row); otherwise it hands the connection
//!   back to the poller.
//! - Refusals (`400`, `413`, `414`, `417`, `431`, `501`, `505`, `408`) are
//!   written by the poller itself with `connection: close`; the connection
//!   is then shut for writing and read until the peer closes (at most two
//!   seconds), so the answer is not lost to a reset.
//!
//! ## Asynchronous applications ([`Builder::serve_async`])
//!
//! There is no async runtime; three kinds of thread share the work.
//!
//! - A fixed pool of **async** threads ([`Builder::async_threads`]) calls
//!   the application and polls its bodies. Each request is a task; its
//!   waker re-queues it on that pool. A woken task is queued once and never
//!   polled on two threads at once; a task woken while it is being polled
//!   is polled again right after. A task takes at most 32 steps before the
//!   others get a turn. Nothing on these threads blocks.
//! - The **poller** thread also serves as the reactor: an async request's
//!   connection, the descriptors of readiness waits and every timer are
//!   registered in its one `mio` poll, and its events become wake-ups. There
//!   is no second event loop.
//! - The **worker** threads ([`Builder::workers`]) become a blocking pool
//!   with a bounded queue ([`Builder::blocking_queue`], 1,024 by default):
//!   offload jobs, switch continuations, after-response tasks. A full queue
//!   answers offload with `OffloadError::Saturated` and a switch with `503`
//!   (or an abnormal end after the head); at shutdown queued items are
//!   dropped unrun. So a blocking synchronous part never holds an async
//!   thread.
//!
//! The connection of an async request stays non-blocking. Output is framed
//! by the same sink as for synchronous applications and written as the
//! socket accepts it; the body is polled again only while at most 64 KiB
//! of it is unsent (`[RGIA-OUT-2]`), and a client that takes nothing for
//! `body_timeout` ends the response. The request body is the `Input`'s
//! non-blocking face (`Input::from_async`): a read that would block parks
//! on the connection's readability in the poller, `100 Continue` goes out on
//! the first read, and `body_timeout` without a byte is a typed error. A
//! request whose client resets the connection, or ends its side after a
//! complete request (as hyper does by default), has its parked body
//! dropped at once (`[RGIA-POLL-9]`).
//!
//! After a switch the unsent output is written first, then the socket turns
//! blocking and the continuation and its body run on a worker as a
//! synchronous application's would; the `Input`'s blocking face reads the
//! rest of the body there.
//!
//! Each request's `Environ::extensions` holds its own
//! [`Capabilities`](rgi_async::Capabilities) (after-response tasks wait for
//! their own response):
//!
//! | Capability | Declared | Notes |
//! |---|---|---|
//! | offload | always | the blocking pool; `Saturated` when its queue is full |
//! | the switch | always | on the blocking pool; `503` when its queue is full |
//! | readiness | always | waits registered in the poller; up to 1,024 sources per `wait_any`; a zero timeout is answered at the first poll; timers fire when the poller next wakes after them |
//! | after-response | always | up to 64 per request, run on the blocking pool once the response is complete (also after a disconnect) |
//! | upgrade | on HTTP/1.1 requests with `Upgrade` and `Connection: upgrade` | the 101, then the raw connection as a non-blocking `ByteStream`; closed when the body has ended and the stream is dropped; no HTTP time limits after the 101 |
//! | runtime | never | `require_runtime` answers `RuntimeError::NotDeclared` (`[RGIA-RT-3]`) |
//!
//! Graceful shutdown lets async requests run for the grace period, then
//! cancels every one still alive: its body is dropped on an async thread,
//! once (`[RGIA-TASK-4]`).
//!
//! ## The environ (`[RGI-ENV-11]`)
//!
//! - `server_name()` is the configured name ([`Builder::server_name`]),
//!   else the listener's IP address (`localhost` on a Unix socket);
//!   `server_port()` is the listener's port (0 on a Unix socket).
//! - `connection()` holds the peer and local addresses the OS reports
//!   (`Address::Tcp`, or `Address::Unix`); there is no TLS, so
//!   `url_scheme()` is `http`.
//! - No extensions are inserted for a synchronous application; an
//!   asynchronous one finds its `Capabilities` there (see above).
//!   `Errors` is `Errors::stderr()`.
//! - `concurrency()` is multithreaded, single process.
//!
//! ## Protocol decisions (spec/rgi.md §12.3)
//!
//! A bare LF is accepted as the end of a head line (httparse accepts it);
//! a bare CR anywhere is refused. A Content-Length field with a list
//! (`5, 5`) is refused. Both Content-Length and Transfer-Encoding are
//! refused with 400. `HTTP/1.x` with x > 1 is answered as HTTP/1.1; any
//! other major version gets 505. CONNECT is answered 501.
//!
//! A build with `panic = "abort"` cannot contain application panics.
//!
//! ## Example
//!
//! ```no_run
//! use bytes::Bytes;
//! use http::{StatusCode, header};
//! use rgi::ResponseHead;
//!
//! let app = rgi::from_fn(|environ, start| {
//!     let body = Bytes::from(format!("hello from {}\n", environ.raw_path()));
//!     start.start(
//!         ResponseHead::new(StatusCode::OK)
//!             .with_header(header::CONTENT_TYPE, "text/plain".parse()?),
//!     )?;
//!     Ok(body)
//! });
//! let server = rgi_simple_server::Builder::new()
//!     .bind("127.0.0.1:8080".parse()?)
//!     .serve_sync(app)?;
//! # server.shutdown(std::time::Duration::from_secs(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The builder and the limits with their defaults.
mod config;
// Why a server could not start.
mod error;
// Starting the threads; the handle that stops them.
mod server;
// The poller thread: accepts, reads heads, keeps idle connections.
mod poller;
// The strict request-head parser (spec/rgi.md §12.3).
mod head;
// One request on a worker thread, from environ to dropped body.
mod worker;
// The request body: read buffer, framing state, the `Input` source, drain.
mod body;
// The strict chunked decoder.
mod chunked;
// The response sink, the server's own refusals, `Date`.
mod response;
// TCP and Unix sockets behind one type.
mod net;
// Graceful shutdown on SIGTERM and SIGINT.
mod signals;

// The server as the conformance kit's `ServerUnderTest` (feature
// `conformance`).
#[cfg(feature = "conformance")]
pub mod conformance;

// Every Rust example of the guide compiles as a doctest of this crate, so
// the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/simple-server.md")]
mod simple_server_guide {}

// Async requests as tasks on the async threads, woken by the reactor.
mod async_driver;
// The worker pool of an async server: offload, switches, after-response tasks.
mod blocking;
// The closable queue the async threads and the blocking pool wait on.
mod queue;
// Readiness and timers for async requests, served by the poller thread.
mod reactor;
// The `Readiness` capability over the reactor.
mod readiness;
// The `Upgrade` capability: the 101 and the raw connection.
mod upgrade;

pub use config::{Builder, DEFAULT_STARTUP_TIMEOUT, Limits};
pub use error::Error;
pub use server::{LocalAddr, Server};
pub use signals::{ShutdownSignals, SignalError, StopCause};
