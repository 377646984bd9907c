//! # RGI asynchronous extensions
//!
//! The asynchronous side of the Rust Gateway Interface, `spec/rgi-async.md`
//! in the RGI repository (with a guide in `docs/async-applications.md`):
//! applications whose bodies are polled instead of pulled, and the handles
//! an asynchronous server lends them. It builds on the synchronous interface
//! in [`rgi`] (same [`rgi::Environ`], same [`rgi::StartResponse`]) and
//! depends on no runtime: any server's event loop can drive it.
//!
//! ## The contract in one paragraph
//!
//! The server calls [`AsyncApplication::call`] on its event loop; the
//! application must not block there. It returns an [`AsyncBody`], which the
//! server polls for [`Step`]s: chunks of the response, or a one-way
//! [`SyncSwitch`] to blocking code on a worker thread. What the server
//! offers besides, it lists in [`Capabilities`], stored in the request's
//! extensions: blocking threads ([`Offload`], always), a poller for the
//! application's own descriptors ([`Readiness`]), after-response tasks
//! ([`AfterResponse`]) and the switch to another protocol ([`Upgrade`]), all
//! optional.
//!
//! ## Contents
//!
//! | Area | Items |
//! |---|---|
//! | The application | [`AsyncApplication`], [`from_fn`], [`FnAsyncApplication`] |
//! | The application as an `async fn` | [`from_async_fn`], [`Responder`], [`ResponderError`], [`SendChunk`], [`AsyncFnApplication`], [`AsyncFnBody`] |
//! | The response body | [`AsyncBody`], [`Step`], [`from_stream`], [`StreamBody`] |
//! | The switch to synchronous processing | [`SyncSwitch`] |
//! | Synchronous applications below | [`Threaded`], [`ThreadedBody`], [`ThreadedError`], [`PRE_READ_LIMIT`] |
//! | The request body as a stream | [`InputStream`] |
//! | Discovery | [`Capabilities`], [`CapabilitiesBuilder`] |
//! | A runtime's context | [`Runtime`], [`RuntimeError`] |
//! | Blocking work | [`Offload`], [`OffloadFuture`], [`OffloadError`], [`OffloadService`], [`Job`] |
//! | Readiness waits | [`Readiness`], [`Source`], [`Interest`], [`Ready`], [`WaitOutcome`], [`WaitAnyOutcome`], [`ReadinessError`], [`ReadinessService`], [`WaitFuture`], [`WaitAnyFuture`], [`RawSource`] |
//! | After-response tasks | [`AfterResponse`], [`AfterError`], [`AfterResponseService`], [`AfterTask`] |
//! | Upgrade (101, e.g. to the WebSocket protocol) | [`Upgrade`], [`Upgraded`], [`ByteStream`], [`UpgradeError`], [`UpgradeService`], [`UpgradeFuture`] |
//!
//! ## Example: an application that offloads a blocking call
//!
//! ```
//! use std::pin::Pin;
//! use std::task::{Context, Poll};
//!
//! use rgi::{BoxError, Environ, ResponseHead, StartResponse};
//! use rgi_async::{AsyncBody, Capabilities, OffloadFuture, Step};
//! use bytes::Bytes;
//! use http::StatusCode;
//!
//! /// Waits for the offloaded lookup, then answers with its result.
//! struct Lookup(Option<OffloadFuture<String>>);
//!
//! impl AsyncBody for Lookup {
//!     fn poll_step(
//!         mut self: Pin<&mut Self>,
//!         cx: &mut Context<'_>,
//!         start: &mut StartResponse<'_>,
//!     ) -> Poll<Option<Result<Step, BoxError>>> {
//!         let Some(future) = self.0.as_mut() else {
//!             return Poll::Ready(None);
//!         };
//!         let Poll::Ready(result) = Pin::new(future).poll(cx) else {
//!             return Poll::Pending; // the offload service wakes us
//!         };
//!         self.0 = None;
//!         let answer = match result {
//!             Ok(answer) => answer,
//!             Err(err) => return Poll::Ready(Some(Err(err.into()))),
//!         };
//!         if let Err(err) = start.start(ResponseHead::new(StatusCode::OK)) {
//!             return Poll::Ready(Some(Err(err.into())));
//!         }
//!         Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(answer)))))
//!     }
//! }
//!
//! let app = rgi_async::from_fn(|environ: Environ, _start| {
//!     let capabilities = Capabilities::of(&environ).ok_or("needs an asynchronous server")?;
//!     let lookup = capabilities.offload().run(|| String::from("the answer (slowly)"));
//!     Ok(Lookup(Some(lookup)))
//! });
//! # use std::future::Future;
//! # let _ = app;
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod after;
mod app;
mod body;
mod capabilities;
mod handler;
mod input;
mod offload;
#[cfg(any(unix, windows))]
mod readiness;
mod runtime;
pub mod sse;
mod switch;
mod threaded;
mod upgrade;

/// Every Rust example of the guide for application authors compiles and
/// runs as a test of this crate, so the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/async-applications.md")]
mod async_applications_guide {}

pub use after::{AfterError, AfterResponse, AfterResponseService, AfterTask};
pub use app::{AsyncApplication, FnAsyncApplication, from_fn};
pub use body::{AsyncBody, StreamBody, from_stream};
pub use capabilities::{Capabilities, CapabilitiesBuilder, SPEC_VERSION};
pub use handler::{
    AsyncFnApplication, AsyncFnBody, Responder, ResponderError, SendChunk, from_async_fn,
};
pub use input::InputStream;
pub use offload::{Job, Offload, OffloadError, OffloadFuture, OffloadService};
#[cfg(any(unix, windows))]
pub use readiness::{
    Interest, RawSource, Readiness, ReadinessError, ReadinessService, Ready, Source, WaitAnyFuture,
    WaitAnyOutcome, WaitFuture, WaitOutcome,
};
pub use runtime::{Runtime, RuntimeError};
pub use switch::{Continuation, Step, SyncSwitch};
pub use threaded::{PRE_READ_LIMIT, Threaded, ThreadedBody, ThreadedError};
pub use upgrade::{ByteStream, Upgrade, UpgradeError, UpgradeFuture, UpgradeService, Upgraded};

/// The Rust blocks of spec/rgi.md, compiled (and run where they have `main`)
/// as doctests so that the specification's code cannot drift from the crates
/// (issue 9, D9). This crate sees both `rgi` and `rgi_async`, so both
/// documents are included here.
#[cfg(doctest)]
#[doc = include_str!("../../../spec/rgi.md")]
pub struct SpecRgi;

/// The Rust blocks of spec/rgi-async.md, compiled as doctests (see
/// [`SpecRgi`]).
#[cfg(doctest)]
#[doc = include_str!("../../../spec/rgi-async.md")]
pub struct SpecRgiAsync;
