//! What the validator records about RGI 1.2's optional features on one
//! request (spec/rgi.md §16), and the reading of an event stream: below
//! the request's state, which holds it, and the checks in `features`,
//! which judge it.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, TE};
use http::{HeaderMap, Version};
use rgi::{Environ, Features, ResponseHead, TrailersError};

/// What the validator knows about the request's optional features.
#[derive(Debug)]
pub(crate) struct FeatureWatch {
    /// The request's protocol version.
    pub(crate) version: Version,
    /// The request carried `TE: trailers`.
    pub(crate) te_trailers: bool,
    /// What the server declares.
    pub(crate) declared: Features,
    /// `send_trailers` was accepted once (no forbidden field).
    pub(crate) trailers_given: bool,
    /// The trailers given hold at least one field.
    pub(crate) trailers_nonempty: bool,
    /// The head stored last announces trailers.
    pub(crate) announced: bool,
    /// The head stored last is an event stream's: its frames are watched.
    pub(crate) event_stream: Option<EventStream>,
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
        media
            .trim_ascii()
            .eq_ignore_ascii_case(b"text/event-stream")
    })
}

/// Whether a `Cache-Control` value holds the `no-cache` directive.
pub(crate) fn says_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().any(|value| {
        value.as_bytes().split(|&byte| byte == b',').any(|item| {
            let directive = item.split(|&byte| byte == b'=').next().unwrap_or_default();
            directive.trim_ascii().eq_ignore_ascii_case(b"no-cache")
        })
    })
}

/// A `text/event-stream` body as a client reads it, line by line
/// (WHATWG HTML, "Server-sent events"), judged against the frames
/// `rgi::sse::Event::to_bytes` writes (`RGI-SSE-1`).
#[derive(Debug)]
pub(crate) struct EventStream {
    /// The line read so far.
    pub(crate) line: Vec<u8>,
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
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Option<String> {
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
    pub(crate) fn at_event_end(&self) -> bool {
        self.between && self.line.is_empty()
    }
}

/// How many body bytes the application had read when it asked for the
/// request trailers before the body's end, if its failure `error` carries
/// the input's answer (`RGI-TRAILER-3`): the only trace of such a request
/// the validator can see, since `Input::trailers` tells nobody else.
pub(crate) fn trailers_asked_early(error: &(dyn std::error::Error + 'static)) -> Option<u64> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(TrailersError::BodyNotFinished { read }) = current.downcast_ref() {
            return Some(*read);
        }
        cause = current.source();
    }
    None
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
            .map(|event| {
                event
                    .retry(std::time::Duration::from_millis(1500))
                    .data("a\nb")
            })
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
