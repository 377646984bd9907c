//! # RGI: the Rust Gateway Interface
//!
//! RGI is a small written contract between web servers and web applications,
//! as WSGI (PEP 3333) is for Python: any conforming application runs on any
//! conforming server. This crate holds the types and traits of the
//! synchronous interface, `spec/rgi.md` in the repository; the asynchronous extensions live in
//! `rgi-async`. It depends on `http`, `bytes` and `thiserror` only, and on no
//! runtime.
//!
//! ## The contract in one paragraph
//!
//! A server builds an [`Environ`] for each request and calls
//! [`Application::call`] with it and a [`StartResponse`]. The application
//! stores the status and header fields with [`StartResponse::start`] and
//! returns a [`Body`], which the server pulls chunk by chunk; the head goes
//! out with the first non-empty chunk, so the application may change its
//! mind ([`StartResponse::replace`]) until then. The body is closed by
//! dropping it, exactly once. The server's side of the rules lives in
//! [`ResponseState`], so a server only supplies a transport
//! ([`ResponseSink`]).
//!
//! ## Contents
//!
//! | Area | Items |
//! |---|---|
//! | The application | [`Application`], [`from_fn`], [`FnApplication`], [`BoxError`], [`Hints`], [`InputUse`] |
//! | The request | [`Environ`], [`EnvironBuilder`], [`PathBytes`], [`UrlScheme`], [`Concurrency`], [`EnvironError`] |
//! | The request body | [`Input`], [`InputError`], [`client_body_error`] |
//! | The error stream | [`Errors`] |
//! | Starting the response | [`StartResponse`], [`ResponseHead`], [`Intercept`], [`HeadError`], [`StartError`], [`SendError`] |
//! | The response body | [`Body`], [`Empty`], [`from_iter`], [`Iter`], [`FileBody`] |
//! | The server's side | [`ResponseState`], [`ResponseSink`], [`FinishError`], [`DeclareError`] |
//! | Versioning | [`SPEC_VERSION`], [`SpecVersion`] |
//!
//! ## Examples
//!
//! ### Hello, world
//!
//! ```
//! use rgi::{Application, Environ, ResponseHead};
//! use bytes::Bytes;
//! use http::{header, HeaderValue, StatusCode};
//!
//! let app = rgi::from_fn(|_environ: Environ, start| {
//!     start.start(
//!         ResponseHead::new(StatusCode::OK)
//!             .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
//!     )?;
//!     Ok(Bytes::from_static(b"Hello, world!\n"))
//! });
//! # let (status, body) = run(&app, Environ::builder().build()?)?;
//! # assert_eq!((status, &body[..]), (StatusCode::OK, &b"Hello, world!\n"[..]));
//! # fn run<A: Application>(app: &A, env: Environ) -> Result<(StatusCode, Vec<u8>), rgi::BoxError> {
//! #     use rgi::Body;
//! #     struct W(Vec<u8>, Option<StatusCode>);
//! #     impl rgi::ResponseSink for W {
//! #         fn send_head(&mut self, h: ResponseHead) -> std::io::Result<()> { self.1 = Some(h.status()); Ok(()) }
//! #         fn send_data(&mut self, d: Bytes) -> std::io::Result<()> { self.0.extend_from_slice(&d); Ok(()) }
//! #     }
//! #     let (mut state, mut w) = (rgi::ResponseState::new(env.method()), W(Vec::new(), None));
//! #     let mut body = app.call(env, &mut state.start_response(&mut w))?;
//! #     while let Some(c) = body.next_chunk(&mut state.start_response(&mut w)) { state.send_chunk(&mut w, c?)?; }
//! #     drop(body);
//! #     state.finish(&mut w)?;
//! #     Ok((w.1.ok_or("no head")?, w.0))
//! # }
//! # Ok::<(), rgi::BoxError>(())
//! ```
//!
//! ### Streaming
//!
//! A body produces its chunks on demand; the server asks for the next one
//! only when the previous one has gone to the client, so a slow client slows
//! the producer instead of filling memory.
//!
//! ```
//! use rgi::{Body, BoxError, ResponseHead, StartResponse};
//! use bytes::Bytes;
//! use http::{header, HeaderValue, StatusCode};
//!
//! /// Streams the numbers 1 to `last`, one line each.
//! struct Numbers { next: u64, last: u64 }
//!
//! impl Body for Numbers {
//!     fn next_chunk(&mut self, _start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
//!         (self.next <= self.last).then(|| {
//!             self.next += 1;
//!             Ok(Bytes::from(format!("{}\n", self.next - 1)))
//!         })
//!     }
//! }
//!
//! let app = rgi::from_fn(|_environ, start| {
//!     start.start(
//!         ResponseHead::new(StatusCode::OK)
//!             .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
//!     )?;
//!     Ok(Numbers { next: 1, last: 1_000 })
//! });
//! # let _ = app;
//! ```
//!
//! ### Reading a form body
//!
//! [`Input`] is a blocking reader that ends exactly at the end of the request
//! body; [`Input::read_to_bytes`] reads it whole with a size limit.
//!
//! ```
//! use rgi::{Environ, Input, InputError, ResponseHead};
//! use http::{header, HeaderValue, Method, StatusCode};
//!
//! let app = rgi::from_fn(|mut environ: Environ, start| {
//!     let form = match environ.input_mut().read_to_bytes(64 * 1024) {
//!         Ok(form) => form,
//!         Err(InputError::TooLarge { .. }) => {
//!             start.start(StatusCode::PAYLOAD_TOO_LARGE)?;
//!             return Ok(String::new());
//!         }
//!         Err(err) => return Err(err.into()),
//!     };
//!     let name = form
//!         .split(|&byte| byte == b'&')
//!         .find_map(|pair| pair.strip_prefix(b"name="))
//!         .unwrap_or(b"stranger");
//!     start.start(
//!         ResponseHead::new(StatusCode::OK)
//!             .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
//!     )?;
//!     Ok(format!("Hello, {}!", String::from_utf8_lossy(name)))
//! });
//!
//! let environ = Environ::builder()
//!     .method(Method::POST)
//!     .header(header::CONTENT_LENGTH, HeaderValue::from_static("12"))
//!     .input(Input::from_bytes(&b"name=Ada&x=1"[..]))
//!     .build()?;
//! # let _ = (app, environ);
//! # Ok::<(), rgi::EnvironError>(())
//! ```
//!
//! ### A middleware that rewrites response headers
//!
//! Middleware is a server to the application it wraps and an application to
//! its server. It hands the inner application an intercepted
//! [`StartResponse`], both in `call` and in every `next_chunk`, because the
//! inner application may start its response lazily.
//!
//! ```
//! use rgi::{Application, Body, BoxError, Environ, Intercept, ResponseHead, StartResponse};
//! use bytes::Bytes;
//! use http::header::{HeaderName, HeaderValue, SERVER};
//!
//! /// Removes `server` and adds `x-content-type-options: nosniff`.
//! #[derive(Clone, Copy)]
//! struct Harden;
//!
//! impl Intercept for Harden {
//!     fn on_start(&mut self, head: &mut ResponseHead) {
//!         head.headers_mut().remove(SERVER);
//!         head.headers_mut().insert(
//!             HeaderName::from_static("x-content-type-options"),
//!             HeaderValue::from_static("nosniff"),
//!         );
//!     }
//! }
//!
//! struct Hardened<A>(A);
//!
//! impl<A: Application> Application for Hardened<A> {
//!     type Body = HardenedBody<A::Body>;
//!
//!     fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
//!         let inner = self.0.call(environ, &mut start.intercept(&mut Harden))?;
//!         Ok(HardenedBody(inner))
//!     }
//!
//!     fn hints(&self) -> rgi::Hints {
//!         self.0.hints() // scheduling promises pass through unchanged
//!     }
//! }
//!
//! struct HardenedBody<B>(B);
//!
//! impl<B: Body> Body for HardenedBody<B> {
//!     fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
//!         self.0.next_chunk(&mut start.intercept(&mut Harden))
//!     }
//!
//!     fn size_hint(&self) -> Option<u64> {
//!         self.0.size_hint() // the body is not transformed, so the hint stays true
//!     }
//! }
//! # let app = Hardened(rgi::from_fn(|_e, start| {
//! #     start.start(ResponseHead::new(http::StatusCode::OK).with_header(SERVER, HeaderValue::from_static("x")))?;
//! #     Ok(Bytes::from_static(b"hi"))
//! # }));
//! # struct W(Option<ResponseHead>);
//! # impl rgi::ResponseSink for W {
//! #     fn send_head(&mut self, h: ResponseHead) -> std::io::Result<()> { self.0 = Some(h); Ok(()) }
//! #     fn send_data(&mut self, _: Bytes) -> std::io::Result<()> { Ok(()) }
//! # }
//! # let env = Environ::builder().build()?;
//! # let (mut state, mut w) = (rgi::ResponseState::new(env.method()), W(None));
//! # let mut body = app.call(env, &mut state.start_response(&mut w))?;
//! # while let Some(c) = body.next_chunk(&mut state.start_response(&mut w)) { state.send_chunk(&mut w, c?)?; }
//! # state.finish(&mut w)?;
//! # let head = w.0.unwrap();
//! # assert!(head.headers().get(SERVER).is_none());
//! # assert_eq!(head.headers()["x-content-type-options"], "nosniff");
//! # Ok::<(), BoxError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod app;
mod body;
mod box_error;
mod caller;
mod connection;
mod environ;
mod errors;
mod features;
mod file;
mod head;
mod hints;
mod input;
mod lifespan;
mod response;
mod response_error;
pub mod sse;
mod state;
mod trailers;
mod version;

pub use app::{Application, FnApplication, WithLifespan, from_fn, with_lifespan};
pub use body::{Body, Empty, Iter, from_iter};
pub use box_error::BoxError;
pub use caller::CallerId;
pub use connection::{
    Address, ConnectProtocol, ConnectionInfo, TlsInfo, TlsVersion, UnixAddr, UrlScheme,
};
pub use environ::{Concurrency, Environ, EnvironBuilder, EnvironError, PathBytes, ServerInfo};
pub use errors::Errors;
pub use features::Features;
pub use file::FileBody;
pub use head::{HeadError, ResponseHead, is_forbidden_early_hint};
pub use hints::{Hints, InputUse};
pub use input::{AsyncSource, Input, InputError, client_body_error};
pub use lifespan::{Startup, StartupError, run_shutdown, run_startup};
pub use response::{Intercept, StartResponse};
pub use response_error::{EarlyHintsError, SendError, StartError};
pub use state::{DeclareError, FinishError, ResponseSink, ResponseState};
pub use trailers::{TrailerSlot, TrailersError, is_forbidden_trailer};
pub use version::{SPEC_VERSION, SpecVersion};
