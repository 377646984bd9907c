//! Limits: [`BodyLimit`] (request body size) and [`ConcurrencyLimit`]
//! (responses in flight).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use rgi::{AsyncSource, Input, InputError, ResponseHead, TrailerSlot};

use crate::middleware::{Incoming, Middleware, Outcome};
use crate::preread::too_large;

/// Refuses request bodies over a size, for both stacks: a declared
/// `content-length` over the limit is answered `413 Content Too Large`
/// before the application is called; a body without a declared length
/// (chunked) is counted as the application reads it, and the read that
/// goes past the limit fails with [`InputError::BodyLimitExceeded`], which
/// the server answers with 413 when the application passes the error on
/// before its head (`RGI-FAIL-10`).
///
/// The counting input keeps the original's faces (a non-blocking input
/// stays non-blocking) and its trailers. A body with a declared length is
/// left alone: its input never yields more than that length.
///
/// # Examples
///
/// ```
/// use std::io::Read;
///
/// use http::StatusCode;
/// use rgi::ResponseHead;
/// use rgi_conformance::client::{TestClient, TestRequest};
/// use rgi_middleware::{BodyLimit, Middleware};
///
/// let upload = rgi::from_fn(|mut environ: rgi::Environ, start: &mut rgi::StartResponse<'_>| {
///     let mut body = Vec::new();
///     environ.input_mut().read_to_end(&mut body)?; // fails past the limit: 413
///     start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
///     Ok(rgi::Empty)
/// });
/// let client = TestClient::new(BodyLimit::new(4).wrap(upload));
/// assert_eq!(client.request(TestRequest::post("/", "1234"))?.status, StatusCode::NO_CONTENT);
/// assert_eq!(client.request(TestRequest::post("/", "12345"))?.status, StatusCode::PAYLOAD_TOO_LARGE);
/// let chunked = TestRequest::new(http::Method::POST, "/").chunked(["12", "345"]);
/// assert_eq!(client.request(chunked)?.status, StatusCode::PAYLOAD_TOO_LARGE);
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit {
    limit: u64,
}

impl BodyLimit {
    /// A limit of `limit` bytes.
    #[must_use]
    pub fn new(limit: u64) -> Self {
        BodyLimit { limit }
    }

    /// The limit, in bytes.
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

impl Middleware for BodyLimit {
    type State = ();

    fn on_request(&self, request: &mut Incoming<'_>) {
        let length = request.environ().input().content_length();
        if length.is_some_and(|length| length > self.limit) {
            let (head, text) = too_large();
            request.respond(head, text);
            return;
        }
        if length.is_some() {
            return;
        }
        let environ = request.environ_mut();
        let original = environ.replace_input(Input::empty());
        let slot = TrailerSlot::new();
        let counted = Counted {
            input: original,
            limit: self.limit,
            seen: 0,
            over: false,
            slot: slot.clone(),
        };
        let input = if counted.input.is_async() {
            Input::from_async(counted, None)
        } else {
            Input::new(counted, None)
        };
        environ.replace_input(input.with_trailers(slot));
    }
}

/// The original input, counted; its trailers go to the new input's slot
/// when it ends.
struct Counted {
    input: Input,
    limit: u64,
    seen: u64,
    over: bool,
    slot: TrailerSlot,
}

impl Counted {
    /// Accounts for `count` bytes just read: an error once past the limit
    /// (and every time after), the trailers handed on at the end.
    fn account(&mut self, count: usize, asked: bool) -> io::Result<()> {
        self.seen += count as u64;
        if self.seen > self.limit {
            self.over = true;
        }
        if self.over {
            return Err(InputError::BodyLimitExceeded { limit: self.limit }.into());
        }
        if count == 0 && asked {
            if let Ok(Some(fields)) = self.input.take_trailers() {
                self.slot.fill(fields);
            }
        }
        Ok(())
    }
}

impl io::Read for Counted {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.over {
            return Err(InputError::BodyLimitExceeded { limit: self.limit }.into());
        }
        let count = self.input.read(out)?;
        self.account(count, !out.is_empty())?;
        Ok(count)
    }
}

impl AsyncSource for Counted {
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let this = self.get_mut();
        if this.over {
            return Poll::Ready(Err(
                InputError::BodyLimitExceeded { limit: this.limit }.into()
            ));
        }
        let chunk = match this.input.poll_chunk(cx, max) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Ready(Ok(chunk)) => chunk,
        };
        Poll::Ready(this.account(chunk.len(), true).map(|()| chunk))
    }
}

/// Answers `503 Service Unavailable` with `Retry-After` when `max`
/// responses are already in flight, for both stacks.
///
/// A response holds its permit from the call until its body is dropped
/// (complete, failed or aborted), so a slow streamed body counts for as
/// long as it streams. Clones share their count: one limit can guard
/// several applications.
///
/// # Examples
///
/// ```
/// use http::StatusCode;
/// use rgi::ResponseHead;
/// use rgi_conformance::client::TestClient;
/// use rgi_middleware::{ConcurrencyLimit, Middleware};
///
/// let limit = ConcurrencyLimit::new(1).with_retry_after(2);
/// let watch = limit.clone();
/// let app = rgi::from_fn(move |_environ, start: &mut rgi::StartResponse<'_>| {
///     assert_eq!(watch.in_flight(), 1); // this request's own permit
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(String::from("fine"))
/// });
/// let client = TestClient::new(limit.clone().wrap(app));
/// assert_eq!(client.get("/")?.text(), "fine");
/// assert_eq!(limit.in_flight(), 0); // released with the body
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
#[derive(Clone)]
pub struct ConcurrencyLimit {
    max: usize,
    retry_after: u32,
    in_flight: Arc<AtomicUsize>,
}

impl ConcurrencyLimit {
    /// At most `max` responses in flight; `Retry-After: 1` on refusals.
    #[must_use]
    pub fn new(max: usize) -> Self {
        ConcurrencyLimit {
            max,
            retry_after: 1,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The same limit, telling refused clients to retry after `seconds`.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = seconds;
        self
    }

    /// How many responses hold a permit now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The most responses in flight.
    #[must_use]
    pub fn max(&self) -> usize {
        self.max
    }

    fn acquire(&self) -> Option<Permit> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < self.max).then_some(now + 1)
            })
            .ok()
            .map(|_| Permit(Arc::clone(&self.in_flight)))
    }
}

impl fmt::Debug for ConcurrencyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimit")
            .field("max", &self.max)
            .field("retry_after", &self.retry_after)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// One response's place under a [`ConcurrencyLimit`], given back when
/// dropped.
#[derive(Debug)]
pub struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Middleware for ConcurrencyLimit {
    type State = Option<Permit>;

    fn on_request(&self, request: &mut Incoming<'_>) -> Option<Permit> {
        let permit = self.acquire();
        if permit.is_none() {
            let head = ResponseHead::new(StatusCode::SERVICE_UNAVAILABLE)
                .with_header(RETRY_AFTER, HeaderValue::from(self.retry_after))
                .with_header(CONTENT_LENGTH, HeaderValue::from_static("0"));
            request.respond(head, Bytes::new());
        }
        permit
    }

    fn on_drop(&self, permit: Option<Permit>, _outcome: Outcome) {
        // Explicit: the permit goes back exactly here, after the inner body.
        drop(permit);
    }
}
