//! [`Compression`]: gzip, deflate and brotli response bodies, streamed.

use std::fmt;
use std::io::{self, Write};

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rgi::ResponseHead;

use crate::middleware::{BodyAccess, Emit, Incoming, Middleware};

/// A content coding [`Compression`] can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Coding {
    /// `br`: brotli (RFC 7932).
    Brotli,
    /// `gzip` (RFC 1952).
    Gzip,
    /// `deflate`: the zlib format (RFC 1950) around deflate, as HTTP means
    /// it.
    Deflate,
}

impl Coding {
    /// The coding's token in `content-encoding`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }

    // Server preference on equal q-values: best ratio first.
    const PREFERENCE: [Coding; 3] = [Coding::Brotli, Coding::Gzip, Coding::Deflate];
}

/// Compresses response bodies with gzip, deflate or brotli, as the
/// request's `accept-encoding` asks.
///
/// # What is compressed
///
/// A response is compressed when the request's `accept-encoding` asks for
/// a coding this middleware has enabled (q-values honoured: `q=0`
/// refuses, `identity` and `*` count, the highest q wins and ties go to
/// brotli, then gzip, then deflate), the request is not `HEAD`, and the
/// response is *eligible*:
///
/// - its status is not informational, `204 No Content` or `304 Not
///   Modified` (they have no content to code);
/// - it has no `content-encoding` (never coded twice) and no
///   `content-range` (a range of coded bytes is not the range asked for);
/// - it has no `cache-control: no-transform` (RFC 9111 §5.2.2.6);
/// - its declared `content-length`, if any, is at least
///   [`min_size`](Compression::min_size) (32 bytes by default: under that
///   the coding's own framing makes the body larger);
/// - its `content-type` is not one that is already compressed or is
///   streamed event by event: `image/*` except `image/svg+xml`, `audio/*`,
///   `video/*`, `application/grpc*` (gRPC has its own per-message
///   compression), `text/event-stream` (unless
///   [`compress_event_streams`](Compression::compress_event_streams)),
///   and the archive and font formats `application/zip`,
///   `application/gzip`, `application/x-gzip`, `application/zstd`,
///   `application/x-7z-compressed`, `application/vnd.rar`, `font/woff`,
///   `font/woff2`.
///
/// `application/octet-stream` **is** compressed: it is what anything of
/// unknown type is served as, often text such as logs, and an
/// incompressible body costs a few bytes per block under each coding,
/// which is less than a text body gains.
///
/// An eligible response gets `vary: accept-encoding` whatever coding was
/// chosen (caches must know the body depends on the field), also for
/// `HEAD`. A compressed response also gets `content-encoding`, loses
/// `content-length` and `accept-ranges` (ranges of the coded bytes are
/// not offered) and the digests computed over the uncoded content
/// (`content-digest`, `repr-digest`, `digest`, `content-md5`, in the head
/// and in the trailers, `RGI-TRAILER-8`), and a strong `etag` becomes weak
/// (`"x"` becomes `W/"x"`: the coded bytes are not the ones the strong
/// validator names).
///
/// A request that refuses every coding this middleware could send, the
/// absence of one included (`identity;q=0` or `*;q=0` with nothing
/// acceptable), is answered `406 Not Acceptable` with `vary:
/// accept-encoding`, without calling the application.
///
/// # Streaming
///
/// The body is compressed chunk by chunk as the application yields it,
/// under [`BodyAccess::Transform`]. A response without `content-length`
/// (a stream) is flushed after every chunk (a sync flush for gzip and
/// deflate, a brotli flush), so each chunk reaches the client as soon as
/// it is produced, at some cost in ratio for many small chunks; a
/// response with `content-length` (its whole body known) is not flushed
/// before its end, and a chunk that produced no output yet becomes an
/// empty step. The tail (gzip's checksum, the last brotli block) is
/// emitted by `on_end`. Event streams compressed on request are
/// flushed per chunk, declared length or not.
///
/// # Encoder errors
///
/// The encoders write into memory and report no error in practice; should
/// one fail, the failure is logged as a `tracing` error, the encoder is
/// dropped and nothing more of the body is emitted. No hook can fail the
/// response (a [`Middleware`] hook has no error path), so the server ends
/// the body normally, but the coded stream is then cut short, which every
/// decoder detects (gzip and zlib lack their checksum trailer, brotli its
/// last meta-block). Nothing panics.
///
/// # Compared with tower-http's `CompressionLayer`
///
/// Checked on the same requests by `tests/compression.rs`. They agree on
/// the choice of coding, `content-encoding`, `vary`, the removal of
/// `content-length`, and on the decoded bytes. They differ where:
///
/// - tower-http answers an unsatisfiable `accept-encoding` with `406`
///   after calling the service, keeping its headers and body; this
///   middleware answers `406` with an empty body before calling the
///   application;
/// - tower-http compresses `audio/*`, `video/*`, archives and fonts, and
///   `HEAD` responses, ignores `no-transform`, keeps a strong `etag` and
///   the digest fields; this middleware does not;
/// - tower-http judges the size by the body's exact size hint before
///   `content-length`; here only `content-length` is known when the head
///   passes.
///
/// # Examples
///
/// ```
/// use http::{HeaderValue, StatusCode};
/// use rgi::ResponseHead;
/// use rgi_middleware::{Compression, Middleware};
///
/// let app = Compression::new().min_size(64).wrap(rgi::from_fn(|_environ, start| {
///     start.start(ResponseHead::new(StatusCode::OK).with_header(
///         http::header::CONTENT_TYPE,
///         HeaderValue::from_static("text/plain"),
///     ))?;
///     Ok(String::from("hello ").repeat(100))
/// }));
/// # use rgi_conformance::client::{TestClient, TestRequest};
/// # let response = TestClient::new(app).request(TestRequest::get("/").header(http::header::ACCEPT_ENCODING, HeaderValue::from_static("gzip")))?;
/// # response.assert_ok_and_valid();
/// # assert_eq!(response.header("content-encoding"), Some("gzip"));
/// # assert!(response.body.len() < 600);
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
///
/// ```
/// use rgi_middleware::{Coding, Compression, Middleware};
///
/// let compression = Compression::new()
///     .disable(Coding::Deflate)
///     .min_size(256);
/// let app = compression.wrap(rgi::from_fn(|_environ, start| {
///     start.start(rgi::ResponseHead::new(http::StatusCode::NO_CONTENT))?;
///     Ok(String::new())
/// }));
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct Compression {
    enabled: [bool; 3],
    min_size: u64,
    event_streams: bool,
    gzip_level: u32,
    brotli_quality: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::new()
    }
}

impl Compression {
    /// All three codings, a minimum size of 32 bytes, event streams left
    /// alone, gzip and deflate at level 6, brotli at quality 4 (fast
    /// enough for dynamic content, as tower-http chose).
    #[must_use]
    pub fn new() -> Self {
        Compression {
            enabled: [true; 3],
            min_size: 32,
            event_streams: false,
            gzip_level: 6,
            brotli_quality: 4,
        }
    }

    /// Never produces `coding`.
    #[must_use]
    pub fn disable(mut self, coding: Coding) -> Self {
        self.enabled[index(coding)] = false;
        self
    }

    /// Produces `coding` again after [`disable`](Self::disable).
    #[must_use]
    pub fn enable(mut self, coding: Coding) -> Self {
        self.enabled[index(coding)] = true;
        self
    }

    /// Leaves responses whose `content-length` is under `bytes` alone.
    #[must_use]
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.min_size = bytes;
        self
    }

    /// Compresses `text/event-stream` responses too (off by default),
    /// flushing after every event.
    #[must_use]
    pub fn compress_event_streams(mut self, on: bool) -> Self {
        self.event_streams = on;
        self
    }

    /// The gzip and deflate level, 0 (stored) to 9 (smallest); values
    /// above 9 mean 9.
    #[must_use]
    pub fn gzip_level(mut self, level: u32) -> Self {
        self.gzip_level = level.min(9);
        self
    }

    /// The brotli quality, 0 to 11; values above 11 mean 11.
    #[must_use]
    pub fn brotli_quality(mut self, quality: u32) -> Self {
        self.brotli_quality = quality.min(11);
        self
    }

    /// The coding for a request's `accept-encoding` fields: `Ok(None)` for
    /// none (identity), `Err(())` when nothing acceptable is left.
    fn negotiate(&self, headers: &HeaderMap) -> Result<Option<Coding>, ()> {
        let mut explicit: [Option<u16>; 3] = [None; 3];
        let mut identity: Option<u16> = None;
        let mut wildcard: Option<u16> = None;
        for value in headers.get_all(ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for entry in value.split(',') {
                let mut parts = entry.split(';');
                let token = parts.next().unwrap_or("").trim();
                if token.is_empty() {
                    continue;
                }
                let Some(q) = parse_q(parts) else { continue };
                let slot = if token.eq_ignore_ascii_case("br") {
                    &mut explicit[0]
                } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip")
                {
                    &mut explicit[1]
                } else if token.eq_ignore_ascii_case("deflate") {
                    &mut explicit[2]
                } else if token.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else if token == "*" {
                    &mut wildcard
                } else {
                    continue;
                };
                // A coding listed twice keeps its best q-value.
                *slot = Some(slot.map_or(q, |old| old.max(q)));
            }
        }
        let mut best: Option<(Coding, u16)> = None;
        for coding in Coding::PREFERENCE {
            let i = index(coding);
            if !self.enabled[i] {
                continue;
            }
            let q = explicit[i].or(wildcard).unwrap_or(0);
            if q > 0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((coding, q));
            }
        }
        // Identity is acceptable unless refused by name or by `*;q=0`
        // without a name of its own (RFC 9110 §12.5.3).
        let identity_q = identity.or(wildcard.filter(|q| *q == 0)).unwrap_or(1);
        match best {
            // The client prefers no coding to the best one offered.
            Some((_, q)) if identity.is_some_and(|i| i > q) => Ok(None),
            Some((coding, _)) => Ok(Some(coding)),
            None if identity_q > 0 => Ok(None),
            None => Err(()),
        }
    }

    /// Whether a response with `head` may be compressed at all (and so
    /// varies with `accept-encoding`).
    fn eligible(&self, head: &ResponseHead) -> bool {
        let status = head.status();
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return false;
        }
        let headers = head.headers();
        if headers.contains_key(CONTENT_ENCODING) || headers.contains_key(CONTENT_RANGE) {
            return false;
        }
        let no_transform = headers.get_all(CACHE_CONTROL).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
            })
        });
        if no_transform {
            return false;
        }
        if let Some(length) = headers.get(CONTENT_LENGTH) {
            let length = length
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            if length.is_some_and(|n| n < self.min_size) {
                return false;
            }
        }
        match headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
            Some(content_type) => self.compressible_type(content_type),
            None => true,
        }
    }

    fn compressible_type(&self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence == "text/event-stream" {
            return self.event_streams;
        }
        if essence == "image/svg+xml" {
            return true;
        }
        let already = [
            "application/zip",
            "application/gzip",
            "application/x-gzip",
            "application/zstd",
            "application/x-7z-compressed",
            "application/vnd.rar",
            "font/woff",
            "font/woff2",
        ];
        !(essence.starts_with("image/")
            || essence.starts_with("audio/")
            || essence.starts_with("video/")
            || essence.starts_with("application/grpc")
            || already.contains(&essence.as_str()))
    }
}

fn index(coding: Coding) -> usize {
    match coding {
        Coding::Brotli => 0,
        Coding::Gzip => 1,
        Coding::Deflate => 2,
    }
}

/// A q-value in thousandths from an entry's parameters (1000 when absent);
/// `None` when it is malformed, which drops the entry.
fn parse_q<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut q = 1000;
    for param in params {
        let param = param.trim();
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        q = parse_qvalue(value.trim())?;
    }
    Some(q)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
fn parse_qvalue(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, digit) in frac.bytes().enumerate() {
        let weight = [100, 10, 1][i];
        thousandths += u16::from(digit - b'0') * weight;
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The per-request state of [`Compression`]: the negotiated coding and,
/// once the head has said yes, the encoder.
pub struct CompressionState {
    coding: Option<Coding>,
    decided: bool,
    flush_each: bool,
    compressing: bool,
    broken: bool,
    encoder: Option<Encoder<Vec<u8>>>,
}

impl fmt::Debug for CompressionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompressionState")
            .field("coding", &self.coding)
            .field("decided", &self.decided)
            .field("compressing", &self.compressing)
            .field("broken", &self.broken)
            .finish()
    }
}

const DIGESTS: [&str; 4] = ["content-digest", "repr-digest", "digest", "content-md5"];

impl Middleware for Compression {
    type State = CompressionState;

    fn on_request(&self, request: &mut Incoming<'_>) -> CompressionState {
        let environ = request.environ();
        let negotiated = self.negotiate(environ.headers());
        let head_request = environ.method() == Method::HEAD;
        let coding = match negotiated {
            Ok(coding) => coding.filter(|_| !head_request),
            Err(()) => {
                let head = ResponseHead::new(StatusCode::NOT_ACCEPTABLE)
                    .with_header(VARY, HeaderValue::from_static("accept-encoding"));
                request.respond(head, "");
                None
            }
        };
        CompressionState {
            coding,
            decided: false,
            flush_each: false,
            compressing: false,
            broken: false,
            encoder: None,
        }
    }

    fn body_access(&self, state: &CompressionState) -> BodyAccess {
        // Until the head decides, a negotiated coding may still be used:
        // no length information may go out meanwhile.
        if state.encoder.is_some() || (!state.decided && state.coding.is_some()) {
            BodyAccess::Transform
        } else {
            BodyAccess::PassThrough
        }
    }

    fn on_head(&self, state: &mut CompressionState, head: &mut ResponseHead) {
        // A replacement head is judged afresh: no byte was coded before it
        // (a head is replaced only before the body starts).
        state.decided = true;
        state.encoder = None;
        state.compressing = false;
        if !self.eligible(head) {
            return;
        }
        add_vary(head.headers_mut());
        let Some(coding) = state.coding else { return };
        let headers = head.headers_mut();
        let streamed = !headers.contains_key(CONTENT_LENGTH);
        let event_stream = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .get(..17)
                    .is_some_and(|t| t.eq_ignore_ascii_case("text/event-stream"))
            });
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.as_str()));
        headers.remove(CONTENT_LENGTH);
        headers.remove(ACCEPT_RANGES);
        for name in DIGESTS {
            headers.remove(name);
        }
        if let Some(weak) = headers.get(ETAG).and_then(weaken) {
            headers.insert(ETAG, weak);
        }
        state.flush_each = streamed || event_stream;
        state.compressing = true;
        state.encoder = Some(Encoder::new(
            coding,
            Vec::new(),
            self.gzip_level,
            self.brotli_quality,
        ));
    }

    fn on_chunk(&self, state: &mut CompressionState, chunk: Bytes, out: &mut Emit<'_>) {
        let Some(encoder) = state.encoder.as_mut() else {
            // No encoder: none was wanted (the chunk passes), or it failed
            // (the coded stream stays cut short).
            if !state.broken {
                out.push(chunk);
            }
            return;
        };
        match encoder.write(&chunk, state.flush_each) {
            Ok(()) => out.push(encoder.take()),
            Err(err) => {
                tracing::error!(error = %err, "compression failed; the coded body is cut short");
                state.encoder = None;
                state.broken = true;
            }
        }
    }

    fn on_end(&self, state: &mut CompressionState, out: &mut Emit<'_>) {
        let Some(encoder) = state.encoder.take() else {
            return;
        };
        match encoder.finish() {
            Ok(tail) => out.push(tail),
            Err(err) => {
                tracing::error!(error = %err, "compression failed at the end; the coded body is cut short");
                state.broken = true;
            }
        }
    }

    fn on_trailers(&self, state: &mut CompressionState, fields: &mut HeaderMap) {
        if state.compressing {
            for name in DIGESTS {
                fields.remove(name);
            }
        }
    }
}

/// `vary: accept-encoding`, unless the field already names it or `*`.
fn add_vary(headers: &mut HeaderMap) {
    let named = headers.get_all(VARY).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',').any(|name| {
                let name = name.trim();
                name == "*" || name.eq_ignore_ascii_case("accept-encoding")
            })
        })
    });
    if !named {
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// `W/"x"` for a strong `"x"`; `None` for a weak or malformed tag.
fn weaken(etag: &HeaderValue) -> Option<HeaderValue> {
    let bytes = etag.as_bytes();
    if bytes.len() < 2 || bytes[0] != b'"' || bytes[bytes.len() - 1] != b'"' {
        return None;
    }
    let mut weak = Vec::with_capacity(bytes.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(bytes);
    HeaderValue::from_bytes(&weak).ok()
}

/// One response's encoder, writing into `W`.
enum Encoder<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Deflate(flate2::write::ZlibEncoder<W>),
    // Boxed: brotli's writer is several hundred bytes, the others a few
    // dozen.
    Brotli(Box<brotli::CompressorWriter<W>>),
}

impl<W: Write> Encoder<W> {
    fn new(coding: Coding, sink: W, level: u32, quality: u32) -> Self {
        match coding {
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::new(level),
            )),
            Coding::Deflate => Encoder::Deflate(flate2::write::ZlibEncoder::new(
                sink,
                flate2::Compression::new(level),
            )),
            // A 4 KiB staging buffer and the format's default window
            // (2^22 bytes).
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                sink, 4096, quality, 22,
            ))),
        }
    }

    /// Codes `data`; with `flush`, everything so far reaches the sink as
    /// whole decodable units (a sync flush, a brotli flush).
    fn write(&mut self, data: &[u8], flush: bool) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                if flush {
                    e.flush()?;
                }
            }
            Encoder::Deflate(e) => {
                e.write_all(data)?;
                if flush {
                    e.flush()?;
                }
            }
            Encoder::Brotli(e) => {
                e.write_all(data)?;
                if flush {
                    e.flush()?;
                }
            }
        }
        Ok(())
    }

    fn sink(&mut self) -> &mut W {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Deflate(e) => e.get_mut(),
            Encoder::Brotli(e) => e.get_mut(),
        }
    }
}

impl Encoder<Vec<u8>> {
    /// What the encoder produced since the last take.
    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(self.sink()))
    }

    /// Ends the stream: the rest of the output and the format's tail.
    fn finish(self) -> io::Result<Bytes> {
        let rest = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Deflate(e) => e.finish()?,
            // brotli's `into_inner` finishes the stream; its writer keeps
            // no error to report (it cannot fail writing into memory).
            Encoder::Brotli(e) => e.into_inner(),
        };
        Ok(Bytes::from(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that refuses every write: the encoders' failure must come
    /// back as an error, never a panic.
    struct Refusing;

    impl Write for Refusing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("refused"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("refused"))
        }
    }

    #[test]
    fn a_failing_sink_is_an_error_for_every_coding() {
        for coding in Coding::PREFERENCE {
            let mut encoder = Encoder::new(coding, Refusing, 6, 4);
            let data = vec![b'a'; 100_000];
            assert!(
                encoder.write(&data, true).is_err(),
                "{coding:?} reported the failure"
            );
        }
    }

    #[test]
    fn q_values_parse_as_the_grammar_says() {
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.001"), Some(1));
        assert_eq!(parse_qvalue("0"), Some(0));
        for bad in ["1.5", "2", "0.0001", "-1", "", "q", "0.a", ".5"] {
            assert_eq!(parse_qvalue(bad), None, "{bad}");
        }
    }
}
