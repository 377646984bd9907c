//! The in-process test client: what application and middleware authors use
//! in their unit tests.
//!
//! Build a [`TestRequest`], run it through a [`TestClient`] (for an
//! [`rgi::Application`]) or an [`AsyncTestClient`] (for an
//! [`rgi_async::AsyncApplication`]) and inspect the [`TestResponse`]: the
//! status, header fields, body and the chunks as they were streamed, how
//! the request ended ([`Ending`]), and every clause the validator saw
//! broken ([`TestResponse::violations`]). No network is involved, but
//! nothing is faked either: the clients drive the application with the
//! kit's own server machinery ([`crate::rt`]), so lazy starts, error
//! replacement, `HEAD`, Content-Length enforcement and the failure rules
//! behave as on a conforming server; the asynchronous client adds real
//! offload threads, a real poller for readiness waits, after-response
//! tasks, the switch to synchronous processing and the upgrade hand-over.
//!
//! Compared with WSGI's and Rack's mock requests, the response also says
//! *how* the request ended and which spec clauses were broken, and the
//! asynchronous client feeds request bodies piece by piece through the
//! non-blocking face, so an application's `Pending` paths run in tests.
//!
//! RGI 1.0 has no response trailers (spec/rgi.md leaves them out of
//! scope), so a [`TestResponse`] has none.
//!
//! # Examples
//!
//! ## A synchronous application
//!
//! ```
//! use http::{header, HeaderValue, StatusCode};
//! use rgi::ResponseHead;
//! use rgi_conformance::client::{Ending, TestClient, TestRequest};
//!
//! let app = rgi::from_fn(|environ, start| {
//!     let who = environ.query_string().strip_prefix("name=").unwrap_or("world").to_owned();
//!     start.start(
//!         ResponseHead::new(StatusCode::OK)
//!             .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
//!     )?;
//!     Ok(rgi::from_iter(["Hello, ".to_owned(), who, "!".to_owned()]))
//! });
//! let client = TestClient::new(app);
//!
//! let response = client.request(TestRequest::get("/greet?name=Ada"))?;
//! response.assert_ok_and_valid();
//! assert_eq!(response.text(), "Hello, Ada!");
//! assert_eq!(response.chunks.len(), 3); // streamed, not buffered
//!
//! let response = client.request(TestRequest::head("/greet"))?;
//! assert!(response.body.is_empty()); // nothing is sent for HEAD...
//! assert_eq!(response.ending, Ending::Complete { body_bytes: 13 }); // ...but it was produced
//! # Ok::<(), rgi_conformance::client::ClientError>(())
//! ```
//!
//! ## An asynchronous application
//!
//! The body below reads the first piece of a chunked upload without
//! blocking, then switches to synchronous processing and reads the rest
//! with blocking reads of the same input.
//!
//! ```
//! use std::io::Read;
//! use std::pin::Pin;
//! use std::task::{Context, Poll};
//!
//! use http::{header, HeaderValue, StatusCode};
//! use rgi::{BoxError, Environ, Input, ResponseHead, StartResponse};
//! use rgi_async::{AsyncBody, Step, SyncSwitch};
//! use rgi_conformance::client::{AsyncTestClient, TestRequest};
//!
//! struct Upload(Option<Input>);
//!
//! impl AsyncBody for Upload {
//!     fn poll_step(
//!         mut self: Pin<&mut Self>,
//!         cx: &mut Context<'_>,
//!         _start: &mut StartResponse<'_>,
//!     ) -> Poll<Option<Result<Step, BoxError>>> {
//!         let Some(input) = self.0.as_mut() else { return Poll::Ready(None) };
//!         let first = match input.poll_chunk(cx, 1024) {
//!             Poll::Pending => return Poll::Pending, // the piece has not arrived yet
//!             Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
//!             Poll::Ready(Ok(first)) => first,
//!         };
//!         let Some(mut input) = self.0.take() else { return Poll::Ready(None) };
//!         Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |start| {
//!             let mut rest = Vec::new();
//!             input.read_to_end(&mut rest)?; // blocking is fine after the switch
//!             start.start(
//!                 ResponseHead::new(StatusCode::OK)
//!                     .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
//!             )?;
//!             Ok(format!("first {} bytes, then {} more", first.len(), rest.len()))
//!         })))))
//!     }
//! }
//!
//! let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, _start| {
//!     Ok(Upload(Some(environ.into_input())))
//! }));
//! let response = client.request(TestRequest::post("/upload", "").chunked(["head", "er", "-body"]))?;
//! response.assert_ok_and_valid();
//! assert!(response.switched);
//! assert_eq!(response.text(), "first 4 bytes, then 7 more");
//! # Ok::<(), rgi_conformance::client::ClientError>(())
//! ```

mod async_client;
mod body;
mod checked;
mod diagnose;
mod error;
mod request;
mod response;
mod sync_client;
mod upgrade;

pub use async_client::AsyncTestClient;
pub use error::ClientError;
pub use request::TestRequest;
pub use response::{Ending, TestResponse};
pub use sync_client::TestClient;
pub use upgrade::{UpgradePeer, UpgradeTranscript};

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, StatusCode};
use rgi::ResponseHead;

use crate::rt::Recorder;

/// The `400` a server sends for a request it rejects without calling the
/// application.
fn rejected(reason: String) -> TestResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    TestResponse {
        status: StatusCode::BAD_REQUEST,
        headers,
        body: bytes::Bytes::new(),
        chunks: Vec::new(),
        ending: Ending::Rejected { reason },
        violations: Vec::new(),
        switched: false,
        after_tasks_ran: 0,
        offload_jobs: 0,
        upgrade: None,
        errors_output: String::new(),
        trailers: None,
        early_hints: Vec::new(),
    }
}

/// Builds the response from what reached the transport; `head` overrides
/// the recorded head (the `101` of an upgrade, which is not sent through
/// the HTTP transport).
fn assemble(
    recorder: &Recorder,
    ending: Ending,
    head: Option<ResponseHead>,
) -> Result<TestResponse, ClientError> {
    let Some(head) = head.or_else(|| recorder.heads().first().cloned()) else {
        return Err(ClientError::NoHead {
            ending: format!("{ending:?}"),
        });
    };
    let (status, headers) = head.into_parts();
    Ok(TestResponse {
        status,
        headers,
        body: bytes::Bytes::copy_from_slice(recorder.body()),
        chunks: recorder.chunks().to_vec(),
        ending,
        violations: Vec::new(),
        switched: false,
        after_tasks_ran: 0,
        offload_jobs: 0,
        upgrade: None,
        errors_output: String::new(),
        trailers: recorder.trailers().cloned(),
        early_hints: recorder.early_hints().to_vec(),
    })
}
