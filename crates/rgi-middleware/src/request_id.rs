//! [`RequestId`]: an identifier per request, propagated or generated, for

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use rgi::ResponseHead;
use tracing::Span;

use crate::middleware::{Incoming, Middleware, Outcome};

/// Propagates or generates a request id, for the application, the
/// response and the logs.
///
/// # What it does
///
/// - An incoming `x-request-id` (or the field
///   [`header`](RequestId::header) names) is **kept** when the request
///   has exactly one, of 1 to [`max_len`](RequestId::max_len) bytes (128
///   by default), all visible ASCII (`!` to `~`): what a log line or
///   another service's field can carry safely. Anything else (missing,
///   empty, too long, with spaces or control or non-ASCII bytes, given
///   twice) is replaced by a generated one; with
///   [`trust_incoming(false)`](RequestId::trust_incoming) every request
///   gets a generated one.
/// - The application sees the id in its environ, as the request field
///   (every other value of it removed) and as the [`RequestIdValue`]
///   extension, with the request's [`RequestSpan`] beside it.
/// - The response carries the same field, unless the application set its
///   own.
/// - A `tracing` span named `request`, with the field `request_id`, is
///   entered around this middleware's hooks: an event at `debug` level
///   when the request arrives and when its head passes, and one at
///   `info` level when the response ends, with its status, the body bytes
///   sent and how it ended. The application can enter the same span
///   ([`RequestSpan`]) so that its own events carry the id.
///
/// # Generated ids
///
/// `{prefix:016x}-{counter:016x}`: 33 visible ASCII characters. The
/// counter is process-wide and never repeats within a process; the
/// prefix is drawn once per process from std's `RandomState` (whose keys
/// the operating system's randomness seeds) hashed with the process start
/// time and id, so that two processes, or two runs of one, are unlikely
/// to share it. No crypto dependency: the ids are unique, not secret;
/// they are guessable by anyone who has seen one, and must not be used as
/// credentials.
///
/// # Examples
///
/// ```
/// use rgi_middleware::{Middleware, RequestId, RequestIdValue};
///
/// let app = RequestId::new().wrap(rgi::from_fn(|environ, start| {
///     let id = environ.extension::<RequestIdValue>().map(|id| id.as_str().to_owned());
///     start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
///     Ok(id.unwrap_or_default())
/// }));
/// # use rgi_conformance::client::{TestClient, TestRequest};
/// # let response = TestClient::new(app).request(TestRequest::get("/").header(
/// #     http::HeaderName::from_static("x-request-id"), http::HeaderValue::from_static("abc-123")))?;
/// # response.assert_ok_and_valid();
/// # assert_eq!(response.text(), "abc-123");
/// # assert_eq!(response.header("x-request-id"), Some("abc-123"));
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RequestId {
    header: HeaderName,
    max_len: usize,
    trust_incoming: bool,
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl RequestId {
    /// `x-request-id`, incoming ids of up to 128 bytes kept.
    #[must_use]
    pub fn new() -> Self {
        RequestId {
            header: HeaderName::from_static("x-request-id"),
            max_len: 128,
            trust_incoming: true,
        }
    }

    /// The field that carries the id (such as `x-correlation-id`).
    #[must_use]
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// The longest incoming id kept, in bytes (at least 1).
    #[must_use]
    pub fn max_len(mut self, bytes: usize) -> Self {
        self.max_len = bytes.max(1);
        self
    }

    /// Whether a valid incoming id is kept (the default) or every request
    /// gets a generated one (for a service facing clients that should not
    /// choose the ids in its logs).
    #[must_use]
    pub fn trust_incoming(mut self, on: bool) -> Self {
        self.trust_incoming = on;
        self
    }

    /// The incoming id, if it is one to keep.
    fn incoming(&self, headers: &http::HeaderMap) -> Option<HeaderValue> {
        if !self.trust_incoming {
            return None;
        }
        let mut values = headers.get_all(&self.header).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let bytes = value.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= self.max_len
            && bytes.iter().all(|b| (0x21..=0x7e).contains(b));
        valid.then(|| value.clone())
    }
}

/// A new id: a per-process random prefix and a process-wide counter.
fn generate() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut hasher = RandomState::new().build_hasher();
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.write_u128(started);
        hasher.write_u32(std::process::id());
        hasher.finish()
    });
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("{prefix:016x}-{count:016x}");
    // Hex digits and a dash are always a valid field value; were they
    // not, the counter alone is still a unique id.
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from(count))
}

/// The request's id, as the application finds it in the environ's
/// extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestIdValue(HeaderValue);

impl RequestIdValue {
    /// The id (always visible ASCII).
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Kept or generated, the id is visible ASCII, so this never falls
        // back.
        self.0.to_str().unwrap_or("")
    }

    /// The id as a field value.
    #[must_use]
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// The request's `tracing` span (named `request`, with the field
/// `request_id`), in the environ's extensions, for the application to
/// enter.
#[derive(Clone, Debug)]
pub struct RequestSpan(pub Span);

/// The per-request state of [`RequestId`]: the id and its span.
#[derive(Debug)]
pub struct RequestIdState {
    id: HeaderValue,
    span: Span,
}

impl Middleware for RequestId {
    type State = RequestIdState;

    fn on_request(&self, request: &mut Incoming<'_>) -> RequestIdState {
        let environ = request.environ_mut();
        let (id, kept) = match self.incoming(environ.headers()) {
            Some(id) => (id, true),
            None => (generate(), false),
        };
        let value = RequestIdValue(id.clone());
        let span = tracing::info_span!("request", request_id = value.as_str());
        span.in_scope(|| {
            tracing::debug!(
                method = %environ.method(),
                path = environ.uri().path(),
                kept,
                "request"
            );
        });
        environ
            .headers_mut()
            .insert(self.header.clone(), id.clone());
        environ.extensions_mut().insert(value);
        environ.extensions_mut().insert(RequestSpan(span.clone()));
        RequestIdState { id, span }
    }

    fn on_head(&self, state: &mut RequestIdState, head: &mut ResponseHead) {
        let _entered = state.span.enter();
        tracing::debug!(status = head.status().as_u16(), "response head");
        if !head.headers().contains_key(&self.header) {
            head.headers_mut()
                .insert(self.header.clone(), state.id.clone());
        }
    }

    fn on_drop(&self, state: RequestIdState, outcome: Outcome) {
        let _entered = state.span.enter();
        tracing::info!(
            status = outcome.status.map(|s| s.as_u16()),
            body_bytes = outcome.body_bytes,
            ending = ?outcome.ending,
            "response done"
        );
    }
}
