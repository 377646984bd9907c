//! # The validator middleware
//!
//! [`Validator`] (for an [`rgi::Application`]) and [`AsyncValidator`] (for
//! an [`rgi_async::AsyncApplication`]) sit between a server and an
//! application and check both sides of the interface while requests run,
//! as `wsgiref.validate`, `Rack::Lint` and `Plack::Lint` do for their
//! interfaces. Every violation names the clause of `spec/rgi.md` or
//! `spec/rgi-async.md` it breaks, the side at fault and the offending
//! value; [`CHECKS`] lists every check with its clauses.
//!
//! Many of the peers' checks cannot fail in Rust (a status is a
//! `StatusCode`, a body yields `Bytes`, the handle cannot outlive the
//! request), so the validator spends its effort on what the types leave
//! open.
//!
//! ## What the server side is checked for
//!
//! - **The environ**: a single, valid `host` field on HTTP/1.1 (and the
//!   target's authority for an absolute-form target); no
//!   `transfer-encoding`; a `content-length` field that parses and agrees
//!   with the input's declared length; a real server name, port and peer
//!   address; consistent concurrency facts; an input nobody has read from
//!   yet. For asynchronous applications also: one `Capabilities` value of
//!   a supported version, an input with the non-blocking face, and the
//!   upgrade capability only where an upgrade can happen.
//! - **The input**: the application reads through an observer of the
//!   server's `Input` (same declared length, same faces), which checks
//!   that a truncated body fails with `InputError::Truncated` and stays
//!   failed, and that an asynchronous source registers the waker before
//!   it returns `Pending`.
//! - **Driving the body**: no pull or poll after the end, an error, a
//!   switch or a panic; each non-empty chunk handed to `send_chunk` before
//!   the next step; every handle lent from the request's own, fresh
//!   `ResponseState`; no busy polling; wakers safe to wake at any time;
//!   every body dropped (a body still alive when the validator is dropped
//!   was leaked or kept).
//! - **The switch and the capabilities**: the asynchronous body dropped
//!   before the continuation runs, which runs off the loop threads with
//!   the response state carried over; offload jobs and after-response
//!   tasks run on worker threads, never inline, and tasks only after the
//!   response; readiness waits resolve consistently with their interest,
//!   timeout and source kind, never panic, and refuse exactly what cannot
//!   be polled; upgrades are refused once the head is sent; no capability
//!   fails as unsupported or panics, during or after its request.
//! - **RGI 1.2's optional features**: trailers deliverable only where they
//!   can go (HTTP/2, or HTTP/1.1 with `TE: trailers`, never HEAD), early
//!   hints never on HTTP/1.0, nothing deliverable that is not declared;
//!   the lifespan calls in order: `startup` once before the first call,
//!   every request served with the `ServerInfo` it returned, nothing after
//!   a failed start-up, `shutdown` once after the last response. The
//!   validators forward `startup` and `shutdown` to the application they
//!   wrap, and keep the request's trailers through the input they put in
//!   place.
//!
//! ## What the application side is checked for
//!
//! - **The head**: final status, no hop-by-hop fields, a well-formed
//!   `content-length` (none on 204), a `content-type` when there is
//!   content.
//! - **Starting**: no second `start`; no output before the start; no
//!   normal end without a start; a start error answered by a correction
//!   or a failure, `HeadAlreadySent` returned as the failure.
//! - **Output**: no content for 204 and 304; exactly the declared
//!   Content-Length (except for HEAD and 304); exactly the promised
//!   `size_hint`; no output after a failed `write`; no success response
//!   after a truncated request body; no panics, in steps or in `Drop`.
//! - **Hints**: stable, and `InputUse::None` means the input is not read.
//! - **Optional features**: early hints only before the head and without
//!   framing fields; trailers once, without forbidden fields, announced in
//!   the head (a warning); request trailers asked for only after the
//!   body's end (seen when the application fails with the input's answer);
//!   an event stream's head and frames as `rgi::sse` writes them, one
//!   chunk per event from an asynchronous body.
//! - **Asynchronous applications**: `Pending` only with a wake-up arranged;
//!   no blocking reads on a loop thread; chunks rather than `write`; no
//!   size hint from a body that then switches; nothing HTTP after
//!   accepting an upgrade, and no upgrade from a switch continuation.
//!
//! ## Over the whole request
//!
//! Beyond the head, the validator watches every read of the input, every
//! chunk and `write`, every drop, and the time each call keeps its thread
//! blocked ([`Watchdog`]: blocked time, not wall-clock time, so a loaded
//! machine does not make a call look blocking); it compares what the
//! environ and the hints declare with what happens (concurrent calls, the
//! method the response state was made for, a declared runtime); and two
//! validators around a middleware compare their boundaries, so that a
//! fault seen at one and not the other is blamed on the middleware under
//! its own clause. `docs/conformance.md` lists these checks by clause.
//!
//! ## Policies
//!
//! The [`Reports`](crate::Reports) given to the validator decides what a
//! violation does: [`Policy::Panic`](crate::Policy::Panic) panics with the
//! clause in the message (for tests: the failing assertion points at the
//! offending call), [`Policy::Log`](crate::Policy::Log) emits a `tracing`
//! warning, [`Policy::Collect`](crate::Policy::Collect) only records it.
//! Each check is reported at most once per request.
//!
//! ## Use in tests
//!
//! Wrap the application, serve requests through it (here with the kit's
//! own driver, [`rt::serve_sync`](crate::rt::serve_sync)), then assert
//! that nothing was reported:
//!
//! ```
//! use bytes::Bytes;
//! use http::{header, HeaderValue, StatusCode};
//! use rgi::{Environ, ResponseHead};
//! use rgi_conformance::rt::{serve_sync, Recorder};
//! use rgi_conformance::validate::Validator;
//! use rgi_conformance::{Policy, Reports};
//!
//! let app = rgi::from_fn(|_environ: Environ, start| {
//!     let body = Bytes::from_static(b"hello\n");
//!     start.start(
//!         ResponseHead::new(StatusCode::OK)
//!             .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
//!             .with_header(header::CONTENT_LENGTH, HeaderValue::from(body.len())),
//!     )?;
//!     Ok(body)
//! });
//! let validator = Validator::new(app, Reports::new(Policy::Collect));
//!
//! let environ = Environ::builder()
//!     .header(header::HOST, HeaderValue::from_static("example.org"))
//!     .build()?;
//! let mut wire = Recorder::new();
//! let served = serve_sync(&validator, environ, &mut wire);
//!
//! assert!(served.outcome.is_complete());
//! assert_eq!(wire.body(), b"hello\n");
//! assert!(validator.reports().is_empty(), "{:?}", validator.reports().all());
//! # Ok::<(), rgi::EnvironError>(())
//! ```
//!
//! ## What is not checked, and why
//!
//! Rules whose breach the types prevent, and rules only the transport can
//! see (framing, what reaches the client, timing and backpressure of the
//! connection), are the server suite's. Among the first: an `Input` never
//! delivers past its declared length, stays at EOF once there, and keeps
//! a truncation sticky whatever source the server gives it, so the
//! observer watches only what a source can still get wrong (the kind of
//! error, a success after it, a forgotten waker); the error stream cannot
//! fail; a body is dropped at most once. A readiness wait cannot lose its
//! descriptor in safe Rust (`RGIA-READY-14`), so that is not watched, and
//! a zero-size `poll_chunk` never reaches the observer (`Input` refuses it
//! first, `RGIA-INPUT-9`).
//!
//! Middleware authors get more out of the validator by wrapping both
//! their middleware and the application inside it: the inner validator
//! then sees whether the middleware drives the inner body as a server
//! must (`RGI-MW-1`). The two validators find each other on the thread
//! they run on and compare what they see, so that a fault seen at one
//! boundary and not the other is blamed on the middleware under its own
//! clause: a Content-Length the middleware changed (`RGI-MW-8`), several
//! inner chunks per step (`RGI-MW-5`, `RGIA-COMP-10`), an inner pull in its
//! `call` (`RGI-MW-6`), a swallowed failure (`RGI-MW-9`), an inner body it
//! never dropped (`RGI-MW-7`, `RGIA-COMP-12`), and more; the `nesting`
//! module's documentation lists them.

mod asynchronous;
mod cap_spurious;
mod capabilities;
mod declared;
mod environ;
mod feature_watch;
mod features;
mod input;
mod input_chain;
mod input_watch;
mod life;
mod nesting;
mod output;
mod park;
#[cfg(unix)]
mod readiness;
mod rules;
mod state;
mod switch_threads;
mod sync;
mod watchdog;

pub use asynchronous::{AsyncValidatedBody, AsyncValidator};
pub use sync::{ValidatedBody, Validator};
pub use watchdog::Watchdog;

use crate::Check;

/// Every check the validator makes, each with the clauses it judges (the
/// first is the one its violations name).
///
/// # Examples
///
/// ```
/// use rgi_conformance::validate::CHECKS;
///
/// let start_twice = CHECKS.iter().find(|check| check.name() == "start_twice").unwrap();
/// assert_eq!(start_twice.clauses()[0], "RGI-START-7");
/// ```
pub const CHECKS: &[Check] = &ALL_CHECKS;

const ALL_CHECKS: [Check; rules::RULES.len()] = {
    let mut checks = [Check::new("", &[], ""); rules::RULES.len()];
    let mut index = 0;
    while index < rules::RULES.len() {
        checks[index] = rules::RULES[index].check;
        index += 1;
    }
    checks
};
