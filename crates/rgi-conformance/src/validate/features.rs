//! The optional features of RGI 1.2 (spec/rgi.md §16) as the validator
//! sees them on one request: response trailers and early hints through
//! the hook, what the server made deliverable, request trailers at the end
//! of the input, and the head and frames of an event stream.
//!
//! What the `rgi` crate refuses itself (a forbidden trailer field, a
//! second trailer section, a 103 after the head or with a framing field)
//! returns an error to the application; the attempt is still the
//! application's violation, and the hook sees it before the state does.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, TE, TRAILER};
use http::{HeaderMap, StatusCode, Version};
use rgi::{Environ, Features, ResponseHead, TrailersError};

use super::nesting::Flavor;
use super::rules;
use super::state::{Output, Request, Tracker};

/// What the validator knows about the request's optional features.
#[derive(Debug)]
pub(crate) struct FeatureWatch {
    /// The request's protocol version.
    version: Version,
    /// The request carried `TE: trailers`.
    te_trailers: bool,
    /// What the server declares.
    declared: Features,
    /// `send_trailers` was accepted once (no forbidden field).
    trailers_given: bool,
    /// The trailers given hold at least one field.
    trailers_nonempty: bool,
    /// The head stored last announces trailers.
    announced: bool,
    /// The head stored last is an event stream's: its frames are watched.
    event_stream: Option<EventStream>,
    /// What the input gave as request trailers once it reached its end:
    /// `Some(None)` for none, `None` before the end.
    pub(crate) request_trailers: Option<Option<HeaderMap>>,
}

impl Default for FeatureWatch {
    fn default() -> Self {
        FeatureWatch {
            version: Version::HTTP_11,
            te_trailers: false,
            declared: Features::none(),
            trailers_given: false,
            trailers_nonempty: false,
            announced: false,
            event_stream: None,
            request_trailers: None,
        }
    }
}

impl FeatureWatch {
    /// Records what the request says about the features.
    pub(crate) fn note_request(&mut self, environ: &Environ) {
        self.version = environ.version();
        self.te_trailers = lists_trailers(environ.headers());
        self.declared = environ.features();
    }

}

/// Whether the request's `TE` fields list `trailers` (RFC 9110 §10.1.4).
fn lists_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(TE).iter().any(|value| {
        value.as_bytes().split(|&byte| byte == b',').any(|item| {
            let coding = item.split(|&byte| byte == b';').next().unwrap_or_default();
            coding.trim_ascii().eq_ignore_ascii_case(b"trailers")
        })
    })
}

/// Whether `head` is the head of an event stream: its media type is
/// `text/event-stream`, parameters aside.
pub(crate) fn is_event_stream(head: &ResponseHead) -> bool {
    head.headers().get(CONTENT_TYPE).is_some_and(|value| {
        let media = value
            .as_bytes()
            .split(|&byte| byte == b';')
            .next()
            .unwrap_or_default();
        media.trim_ascii().eq_ignore_ascii_case(b"text/event-stream")
    })
}

/// Fields no `103 Early Hints` may carry (`RGI-EARLY-2`).
fn invalid_in_early_hints(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

/// Whether a `Cache-Control` value holds the `no-cache` directive.
fn says_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().any(|value| {
        value.as_bytes().split(|&byte| byte == b',').any(|item| {
            let directive = item.split(|&byte| byte == b'=').next().unwrap_or_default();
            directive.trim_ascii().eq_ignore_ascii_case(b"no-cache")
        })
    })
}

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
        } else if trailers && (version < Version::HTTP_11 || (version == Version::HTTP_11 && !te)) {
            self.violate(
                &rules::TRAILERS_ENABLED_WRONGLY,
                "the server enabled trailers on a request that cannot carry them (HTTP/1.0, or HTTP/1.1 without TE: trailers)",
                format!("{version:?}, TE: trailers {}", if te { "sent" } else { "not sent" }),
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
        if let Some(name) = fields.keys().find(|name| invalid_in_early_hints(name)) {
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
        self.features.event_stream = Some(EventStream::default());
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

/// A `text/event-stream` body as a client reads it, line by line
/// (WHATWG HTML, "Server-sent events"), judged against the frames
/// `rgi::sse::Event::to_bytes` writes (`RGI-SSE-1`).
#[derive(Debug)]
struct EventStream {
    /// The line read so far.
    line: Vec<u8>,
    /// The last complete line was blank (or nothing came yet): the stream
    /// is between events.
    between: bool,
    /// The last byte was a CR: an LF right after it ends nothing.
    after_cr: bool,
}

impl Default for EventStream {
    fn default() -> Self {
        EventStream {
            line: Vec::new(),
            between: true,
            after_cr: false,
        }
    }
}

impl EventStream {
    /// Reads `bytes`; the first problem found, if any.
    fn feed(&mut self, bytes: &[u8]) -> Option<String> {
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    if let Some(problem) = self.end_line(&line) {
                        return Some(problem);
                    }
                }
                _ => self.line.push(byte),
            }
        }
        None
    }

    /// Judges one complete line.
    fn end_line(&mut self, line: &[u8]) -> Option<String> {
        self.between = line.is_empty();
        if line.is_empty() || line.starts_with(b":") {
            return None;
        }
        let (name, value) = match line.iter().position(|&byte| byte == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let text = String::from_utf8_lossy(line);
        match name {
            b"data" | b"event" => None,
            b"id" if value.contains(&0) => Some(format!("an id holds NUL: {text:?}")),
            b"id" => None,
            b"retry" if value.is_empty() || !value.iter().all(u8::is_ascii_digit) => Some(format!(
                "a retry that is not a number of milliseconds: {text:?}"
            )),
            b"retry" => None,
            _ => Some(format!(
                "a line that is neither a comment nor a data, event, id or retry field: {text:?}"
            )),
        }
    }

    /// Whether the stream is between events: the last line was blank and
    /// no partial line follows.
    fn at_event_end(&self) -> bool {
        self.between && self.line.is_empty()
    }
}

/// A failure of the application that carries the input's answer to a
/// request for trailers before the body's end (`RGI-TRAILER-3`): the only
/// trace of such a request the validator can see, since `Input::trailers`
/// tells nobody else.
pub(crate) fn on_failure(request: &Request, error: &(dyn std::error::Error + 'static)) {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(TrailersError::BodyNotFinished { read }) = current.downcast_ref() {
            request.violate(
                &rules::TRAILERS_READ_BEFORE_END,
                "the application asked for the request trailers before reading the body to its end, and failed with the input's answer",
                format!("BodyNotFinished after {read} bytes"),
            );
            return;
        }
        cause = current.source();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::EventStream;

    fn judged(chunks: &[&[u8]]) -> (Option<String>, bool) {
        let mut stream = EventStream::default();
        for chunk in chunks {
            if let Some(problem) = stream.feed(chunk) {
                return (Some(problem), stream.at_event_end());
            }
        }
        (None, stream.at_event_end())
    }

    #[test]
    fn frames_as_to_bytes_writes_them_pass() {
        let frame = rgi::sse::Event::new()
            .id("7")
            .and_then(|event| event.event("tick"))
            .map(|event| event.retry(std::time::Duration::from_millis(1500)).data("a\nb"))
            .map(|event| event.to_bytes())
            .expect("a valid event");
        assert_eq!(judged(&[&frame, rgi::sse::KEEP_ALIVE]), (None, true));
        assert_eq!(judged(&[b"data: x\r\n\r\n", b"data: y\r\r"]), (None, true));
        assert_eq!(judged(&[b"data: x\r", b"\n\r\n"]), (None, true));
    }

    #[test]
    fn broken_frames_are_found() {
        assert!(judged(&[b"date: x\n\n"]).0.is_some());
        assert!(judged(&[b"retry: soon\n\n"]).0.is_some());
        assert!(judged(&[b"id: a\0b\n\n"]).0.is_some());
        assert_eq!(judged(&[b"data: x\n"]), (None, false));
        assert_eq!(judged(&[b"data: x\n\ndata: y"]), (None, false));
    }
}
