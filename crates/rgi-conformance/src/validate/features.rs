//! The checks of RGI 1.2's optional features (spec/rgi.md §16) on one
//! request: response trailers and early hints through the hook, what the
//! server made deliverable, and the head and frames of an event stream.
//! Request trailers are judged where the input ends (`input`), the
//! lifespan calls in `life`.
//!
//! What the `rgi` crate refuses itself (a forbidden trailer field, a
//! second trailer section, a 103 after the head or with a framing field)
//! returns an error to the application; the attempt is still the
//! application's violation, and the hook sees it before the state does.

use bytes::Bytes;
use http::header::TRAILER;
use http::{HeaderMap, StatusCode, Version};
use rgi::ResponseHead;

use super::feature_watch::{EventStream, is_event_stream, says_no_cache};
use super::nesting::Flavor;
use super::rules;
use super::state::{Output, Tracker};

impl Tracker {
    /// The server lent the first handle of the request: what it made
    /// deliverable must be what the request and the declaration allow.
    pub(crate) fn check_deliverable(&mut self, trailers: bool, early_hints: bool) {
        let watch = &self.features;
        let (version, te, declared) = (watch.version, watch.te_trailers, watch.declared);
        if trailers && !declared.response_trailers() {
            self.violate(
                &rules::FEATURE_UNDECLARED,
                "response trailers are deliverable on a server that does not declare them",
                "trailers_deliverable() with Features::response_trailers() false",
            );
        } else if trailers
            && (version < Version::HTTP_11
                || (version == Version::HTTP_11 && !te)
                || self.head_request())
        {
            self.violate(
                &rules::TRAILERS_ENABLED_WRONGLY,
                "the server enabled trailers on a request that cannot carry them (HTTP/1.0, HTTP/1.1 without TE: trailers, or HEAD)",
                format!(
                    "{version:?}, TE: trailers {}, HEAD: {}",
                    if te { "sent" } else { "not sent" },
                    self.head_request()
                ),
            );
        }
        if early_hints && !declared.early_hints() {
            self.violate(
                &rules::FEATURE_UNDECLARED,
                "early hints are deliverable on a server that does not declare them",
                "early_hints_deliverable() with Features::early_hints() false",
            );
        } else if early_hints && version < Version::HTTP_11 {
            self.violate(
                &rules::EARLY_HINTS_ON_HTTP10,
                "the server enabled early hints on an HTTP/1.0 request",
                format!("{version:?}"),
            );
        }
    }

    /// The application gave `fields` to `send_trailers`.
    pub(crate) fn on_trailers(&mut self, fields: &HeaderMap) {
        if let Some(name) = fields.keys().find(|name| rgi::is_forbidden_trailer(name)) {
            self.violate(
                &rules::TRAILERS_FORBIDDEN_FIELD,
                "the application sent a trailer field that no trailer section may carry",
                name.as_str().to_owned(),
            );
            return;
        }
        if self.features.trailers_given {
            self.violate(
                &rules::TRAILERS_TWICE,
                "the application gave the response's trailers a second time",
                format!("{} fields", fields.len()),
            );
            return;
        }
        self.features.trailers_given = true;
        self.features.trailers_nonempty = !fields.is_empty();
    }

    /// The application gave `fields` to `send_early_hints`.
    pub(crate) fn on_early_hints(&mut self, fields: &HeaderMap) {
        if self.head_sent() {
            self.violate(
                &rules::EARLY_HINTS_AFTER_HEAD,
                "the application sent early hints after the final head went out",
                format!("final status {:?}", self.status()),
            );
        }
        if let Some(name) = fields
            .keys()
            .find(|name| rgi::is_forbidden_early_hint(name))
        {
            self.violate(
                &rules::EARLY_HINTS_INVALID_FIELD,
                "the application put a framing or connection-specific field into early hints",
                name.as_str().to_owned(),
            );
        }
    }

    /// A valid head was stored (`hinted`: the body gave a size hint).
    pub(crate) fn features_on_head(&mut self, head: &ResponseHead, hinted: bool) {
        self.features.announced = head.headers().contains_key(TRAILER);
        if !is_event_stream(head) {
            self.features.event_stream = None;
            return;
        }
        let mut problems = Vec::new();
        if head.status() != StatusCode::OK {
            problems.push(format!("status {}", head.status()));
        }
        if head.headers().contains_key(http::header::CONTENT_LENGTH) {
            problems.push("a Content-Length".to_owned());
        }
        if !says_no_cache(head.headers()) {
            problems.push("no Cache-Control: no-cache".to_owned());
        }
        if hinted {
            problems.push("a body with an exact size hint".to_owned());
        }
        if !problems.is_empty() {
            self.violate(
                &rules::EVENT_STREAM_HEAD_INVALID,
                "the head of an event stream is not the one rgi::sse::head() builds",
                problems.join(", "),
            );
        }
        // An encoded stream (a compression middleware's output) carries
        // its events only once decoded: its bytes are not parsed.
        let encoded = head
            .headers()
            .get_all(http::header::CONTENT_ENCODING)
            .iter()
            .any(|coding| !coding.as_bytes().eq_ignore_ascii_case(b"identity"));
        self.features.event_stream = (!encoded).then(EventStream::default);
    }

    /// The body gave an exact size hint.
    pub(crate) fn features_on_size_hint(&mut self) {
        if self.features.event_stream.is_some() {
            self.violate(
                &rules::EVENT_STREAM_HEAD_INVALID,
                "an event-stream body gave an exact size hint: its length is not known until it ends",
                "size_hint() is Some",
            );
        }
    }

    /// Content of the response: an event stream's frames are parsed.
    pub(crate) fn features_on_output(&mut self, bytes: &Bytes, kind: Output, flavor: Flavor) {
        let Some(stream) = self.features.event_stream.as_mut() else {
            return;
        };
        if let Some(problem) = stream.feed(bytes) {
            self.violate(&rules::EVENT_STREAM_MALFORMED, problem, shown(bytes));
            self.features.event_stream = None;
            return;
        }
        if kind == Output::Chunk
            && flavor == Flavor::Async
            && !bytes.is_empty()
            && !stream.at_event_end()
        {
            self.violate(
                &rules::ASYNC_EVENT_NOT_ONE_CHUNK,
                "an asynchronous event-stream body yielded a chunk that does not end with an event's blank line",
                shown(bytes),
            );
        }
    }

    /// Bytes the server sent from a file body: frames the watch cannot
    /// see, so it stops.
    pub(crate) fn features_on_opaque(&mut self) {
        self.features.event_stream = None;
    }

    /// The body ended normally.
    pub(crate) fn features_on_end(&mut self) {
        if self.features.trailers_nonempty && !self.features.announced {
            self.violate(
                &rules::TRAILERS_NOT_ANNOUNCED,
                "the application sent trailers without announcing them in a Trailer field of its head",
                format!("status {:?}", self.status()),
            );
        }
        if let Some(stream) = &self.features.event_stream {
            if !stream.at_event_end() {
                self.violate(
                    &rules::EVENT_STREAM_MALFORMED,
                    "the event stream ended inside an event: its last event has no blank line and is never dispatched",
                    String::from_utf8_lossy(&stream.line).into_owned(),
                );
            }
        }
    }
}

/// Up to 120 bytes, escaped, for a violation's value.
fn shown(bytes: &[u8]) -> String {
    let cut = bytes.len().min(120);
    format!("\"{}\"", bytes[..cut].escape_ascii())
}
