//! The request side: the request body as an RGI [`Input`], read from the
//! connection only as the application consumes it, with the host's body
//! limit and stalled-body time applied while it streams.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TE, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderValue, Version};
use http_body::Body as HttpBody;
use rgi::{AsyncSource, BoxError, Input, InputError, TrailerSlot};
use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};

/// The host's limits on one request body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    pub(crate) max_bytes: u64,
    pub(crate) stall: Option<Duration>,
}

/// The slot for the request's trailer section, when the server declares
/// request trailers and the body's framing can carry one
/// (`[RGI-TRAILER-1]`): any HTTP/2 (or later) body, and an HTTP/1.1 body
/// without a length (chunked). A body framed by Content-Length on HTTP/1.x
/// has no trailer section, and an empty body none either; neither costs
/// the allocation.
pub(crate) fn trailer_slot<B: HttpBody>(
    declared: bool,
    version: Version,
    body: &B,
) -> Option<TrailerSlot> {
    let framed_for_trailers = match version {
        Version::HTTP_09 | Version::HTTP_10 => false,
        Version::HTTP_11 => body.size_hint().exact().is_none(),
        _ => true,
    };
    (declared && framed_for_trailers && !body.is_end_stream()).then(TrailerSlot::new)
}

/// Whether the response to this request can carry trailer fields
/// (`[RGI-TRAILER-7]`): always on HTTP/2 and later, on HTTP/1.1 only when
/// the request's `TE` field lists `trailers` (RFC 9112 §7.4; hyper writes
/// none otherwise), never on HTTP/1.0.
pub(crate) fn response_takes_trailers(parts: &Parts) -> bool {
    match parts.version {
        Version::HTTP_09 | Version::HTTP_10 => false,
        Version::HTTP_11 => te_lists_trailers(parts),
        _ => true,
    }
}

/// Whether a `TE` field lists the `trailers` member, exactly as hyper
/// decides whether it may write a trailer section: one member of a comma
/// separated list, case-insensitive, in any of the fields. (`trailers`
/// takes no weight in RFC 9110's grammar, so `trailers;q=0.5` is not it.)
fn te_lists_trailers(parts: &Parts) -> bool {
    parts.headers.get_all(TE).iter().any(|value| {
        value
            .as_bytes()
            .split(|&byte| byte == b',')
            .any(|member| member.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    })
}

/// Removes the `Transfer-Encoding` hyper has decoded (an environ carries no
/// framing of the connection's) from a request whose body is not known to
/// be empty; should a bodiless request carry one anyway,
/// [`rgi::Environ::from_parts`] refuses it and the client gets a 400.
///
/// A body with a length also gets one plain `Content-Length` field: hyper
/// accepts a list of equal values (`5, 5`) or repeated equal fields, which
/// the environ must not see as a conflict.
pub(crate) fn remove_decoded_framing(parts: &mut Parts, body_is_empty: bool, length: Option<u64>) {
    if body_is_empty {
        return;
    }
    parts.headers.remove(TRANSFER_ENCODING);
    let Some(length) = length else {
        return;
    };
    let mut fields = parts.headers.get_all(CONTENT_LENGTH).iter();
    let plain = match (fields.next(), fields.next()) {
        (Some(value), None) => value.as_bytes().iter().all(u8::is_ascii_digit),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !plain {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
}

/// Describes an HTTP/2 extended CONNECT (RFC 8441) to the environ: hyper
/// marks one with `hyper::ext::Protocol`, RGI with
/// [`rgi::ConnectProtocol`] (`[RGI-H2-11]`); without it the environ refuses
/// the CONNECT like a tunnel. Costs other methods one comparison.
#[inline]
pub(crate) fn mark_extended_connect(parts: &mut Parts) {
    if parts.method != http::Method::CONNECT {
        return;
    }
    let protocol = parts
        .extensions
        .get::<hyper::ext::Protocol>()
        .map(|protocol| rgi::ConnectProtocol::new(protocol.as_str()));
    if let Some(protocol) = protocol {
        parts.extensions.insert(protocol);
    }
}

/// The request's authority made the environ's `host` entry, as the spec
/// maps the target forms: an HTTP/1 absolute-form target's authority
/// replaces any Host field received (`[RGI-PATH-9]`); an HTTP/2 request's
/// `:authority` becomes `host` when no Host field came, and its target is
/// the `:path` as received (`[RGI-H2-1]`, `[RGI-H2-2]`). An origin-form
/// HTTP/1 request costs one check.
///
/// # Errors
///
/// [`AuthorityMismatch`] for a request whose Host field names another
/// authority than its target (HTTP/1 absolute-form) or `:authority`
/// (HTTP/2), answered `400`.
#[inline]
pub(crate) fn normalize_authority(parts: &mut Parts) -> Result<(), AuthorityMismatch> {
    let Some(authority) = parts.uri.authority() else {
        return Ok(());
    };
    if parts.method == http::Method::CONNECT && parts.version <= http::Version::HTTP_11 {
        // An authority-form CONNECT: the environ refuses it as a tunnel.
        return Ok(());
    }
    let Ok(value) = HeaderValue::from_str(authority.as_str()) else {
        return Err(AuthorityMismatch);
    };
    if parts.version <= http::Version::HTTP_11 {
        // A Host field naming another authority than the target is refused
        // (`[RGI-PROTO-2]`); an agreeing one is replaced by the target's.
        if let Some(host) = parts.headers.get(HOST) {
            if !host.as_bytes().eq_ignore_ascii_case(value.as_bytes()) {
                return Err(AuthorityMismatch);
            }
        }
        parts.headers.insert(HOST, value);
        return Ok(());
    }
    match parts.headers.get(HOST) {
        None => {
            parts.headers.insert(HOST, value);
        }
        Some(host) if host.as_bytes().eq_ignore_ascii_case(value.as_bytes()) => {}
        Some(_) => return Err(AuthorityMismatch),
    }
    if let Some(path) = parts.uri.path_and_query().cloned() {
        parts.uri = http::Uri::from(path);
    }
    Ok(())
}

/// An HTTP/2 request whose Host field disagrees with its `:authority`.
#[derive(Debug)]
pub(crate) struct AuthorityMismatch;

/// The stalled-body timer, armed while the application waits for bytes.
struct Stall {
    timeout: Duration,
    /// The runtime whose timer drives the sleep: a pool worker polls the
    /// body outside any runtime context.
    runtime: Handle,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Stall {
    /// Polls the timer, arming it if the last poll got bytes; ready when the
    /// client has sent nothing for the whole timeout.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = Instant::now() + self.timeout;
        if !self.armed {
            self.armed = true;
            match self.sleep.as_mut() {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => {
                    let _context = self.runtime.enter();
                    self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline)));
                }
            }
        }
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// The request body shared between the application's [`Input`] and the
/// response: the response detaches it when it ends, so that hyper drains
/// (or gives up on) the unread rest only then, never while the response is
/// still being written; an input read after that fails with
/// [`InputError::ResponseFinished`].
struct Shared<B> {
    body: std::sync::Mutex<Option<B>>,
}

/// Detaches a request body from its input.
pub(crate) trait Detach: Send + Sync {
    fn detach(&self);
}

impl<B: Send> Detach for Shared<B> {
    fn detach(&self) {
        let body = self
            .body
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        // Dropped outside the lock: hyper reacts to it.
        drop(body);
    }
}

/// Detaches the request body when dropped: held by the response.
pub(crate) struct DetachOnDrop(std::sync::Arc<dyn Detach>);

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        self.0.detach();
    }
}

impl std::fmt::Debug for DetachOnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DetachOnDrop")
    }
}

/// An `http_body::Body` as the source of an [`Input`].
pub(crate) struct RequestSource<B> {
    body: std::sync::Arc<Shared<B>>,
    /// The length the framing declared, if any.
    declared: Option<u64>,
    limit: u64,
    received: u64,
    stall: Option<Stall>,
    /// Where the body's trailers frame goes, before the end is reported.
    trailers: Option<TrailerSlot>,
    /// The data that completed a declared length, held back until the
    /// body's end has been seen: [`Input`] reports its end as soon as the
    /// declared length is read, without asking the source again, so a
    /// trailer section after it (HTTP/2) must be in the slot by then.
    held: Option<Bytes>,
    /// The body reported its end (or its trailers, which end it).
    ended: bool,
    /// What a frame held beyond the `max` of the poll that took it, for
    /// the next polls: a chunk never exceeds the `max` it was polled with
    /// (`[RGIA-INPUT-2]`).
    spill: Bytes,
}

impl<B> RequestSource<B>
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// The input over `body`: empty when the body is known to be, else read
    /// as the application polls or reads, with the length its framing
    /// declares.
    ///
    /// With it comes the handle that detaches the body when the response
    /// ends (`None` for an empty body: nothing to detach). With `trailers`
    /// the input carries that slot, filled from the body's trailers frame
    /// before the input reports its end.
    pub(crate) fn input(
        body: B,
        limits: BodyLimits,
        trailers: Option<TrailerSlot>,
    ) -> (Input, Option<DetachOnDrop>) {
        if body.is_end_stream() {
            return (Input::empty(), None);
        }
        let length = body.size_hint().exact();
        let source = RequestSource::new(body, length, limits.max_bytes, limits, trailers.clone());
        let detach = DetachOnDrop(source.body.clone());
        let input = Input::from_async(source, length);
        let input = match trailers {
            Some(slot) => input.with_trailers(slot),
            None => input,
        };
        (input, Some(detach))
    }

    /// The input over `body` for a caller that owns the whole exchange
    /// ([`crate::environ_from_request`]): no body limit, no stalled-body
    /// time, and nothing detaches the body from it; with `trailers` as for
    /// [`RequestSource::input`].
    pub(crate) fn standalone_input(body: B, trailers: Option<TrailerSlot>) -> Input {
        if body.is_end_stream() {
            return Input::empty();
        }
        let length = body.size_hint().exact();
        let limits = BodyLimits {
            max_bytes: u64::MAX,
            stall: None,
        };
        let source = RequestSource::new(body, length, u64::MAX, limits, trailers.clone());
        let input = Input::from_async(source, length);
        match trailers {
            Some(slot) => input.with_trailers(slot),
            None => input,
        }
    }

    fn new(
        body: B,
        declared: Option<u64>,
        limit: u64,
        limits: BodyLimits,
        trailers: Option<TrailerSlot>,
    ) -> Self {
        let stall = limits.stall.and_then(|timeout| {
            Handle::try_current().ok().map(|runtime| Stall {
                timeout,
                runtime,
                sleep: None,
                armed: false,
            })
        });
        RequestSource {
            body: std::sync::Arc::new(Shared {
                body: std::sync::Mutex::new(Some(body)),
            }),
            declared,
            limit,
            received: 0,
            stall,
            trailers,
            held: None,
            ended: false,
            spill: Bytes::new(),
        }
    }
}

impl<B> RequestSource<B> {
    /// The first `max` bytes of `data`; the rest waits in `spill`.
    fn bounded(&mut self, mut data: Bytes, max: usize) -> Bytes {
        if data.len() > max {
            self.spill = data.split_off(max);
        }
        data
    }
}

/// Whether a body error is the connection ending before the body did
/// (hyper reports an early EOF as an `UnexpectedEof` I/O error in the
/// chain, or as an incomplete message).
fn is_truncation(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    for _ in 0..16 {
        let Some(link) = current else {
            return false;
        };
        if let Some(io) = link.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::UnexpectedEof {
                return true;
            }
        }
        if let Some(hyper) = link.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() {
                return true;
            }
        }
        current = link.source();
    }
    false
}

/// The typed client error behind a body error: a truncated body, the
/// error itself if it is one, else a malformed body.
fn client_error(error: impl Into<BoxError>, declared: Option<u64>, received: u64) -> InputError {
    let error: BoxError = error.into();
    if is_truncation(&*error) {
        return InputError::Truncated {
            declared: declared.unwrap_or(received),
            received,
        };
    }
    match error.downcast::<InputError>() {
        Ok(typed) => *typed,
        Err(other) => match other.downcast::<io::Error>() {
            Ok(io) => InputError::from(*io),
            Err(other) => InputError::MalformedBody {
                reason: other.to_string(),
            },
        },
    }
}

impl<B> AsyncSource for RequestSource<B>
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let this = self.get_mut();
        // `Input` never polls with 0; were it done, an empty chunk would
        // read as the end.
        let max = max.max(1);
        if !this.spill.is_empty() {
            return Poll::Ready(Ok(this.spill.split_to(max.min(this.spill.len()))));
        }
        if this.ended {
            let held = this.held.take().unwrap_or_default();
            return Poll::Ready(Ok(this.bounded(held, max)));
        }
        let shared = std::sync::Arc::clone(&this.body);
        let mut slot = shared
            .body
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(body) = slot.as_mut() else {
            return Poll::Ready(Err(InputError::ResponseFinished.into()));
        };
        loop {
            // What exceeds `max` waits in `spill` for the next polls.
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => {
                    if let Some(stall) = this.stall.as_mut() {
                        if stall.poll_expired(cx).is_ready() {
                            let timeout = stall.timeout;
                            return Poll::Ready(Err(InputError::BodyTimedOut { timeout }.into()));
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    let held = this.held.take().unwrap_or_default();
                    return Poll::Ready(Ok(this.bounded(held, max)));
                }
                Poll::Ready(Some(Err(err))) => {
                    let error = client_error(err, this.declared, this.received);
                    return Poll::Ready(Err(error.into()));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let data = match frame.into_data() {
                        Ok(data) => data,
                        Err(frame) => {
                            if let (Ok(fields), Some(trailers)) =
                                (frame.into_trailers(), this.trailers.as_ref())
                            {
                                // Filled before the end is reported
                                // (`[RGI-TRAILER-1]`); `fill` drops the
                                // forbidden fields. A trailers frame is
                                // the body's last.
                                trailers.fill(fields);
                                this.ended = true;
                                let held = this.held.take().unwrap_or_default();
                                return Poll::Ready(Ok(this.bounded(held, max)));
                            }
                            // Trailers nobody declared carry no body bytes.
                            continue;
                        }
                    };
                    if data.is_empty() {
                        continue;
                    }
                    if let Some(stall) = this.stall.as_mut() {
                        stall.armed = false;
                    }
                    this.received = this.received.saturating_add(data.len() as u64);
                    if this.received > this.limit {
                        let limit = this.limit;
                        return Poll::Ready(Err(InputError::BodyLimitExceeded { limit }.into()));
                    }
                    let completes_length = this.declared == Some(this.received);
                    if completes_length && this.trailers.is_some() && !body.is_end_stream() {
                        // The input ends with this data; a trailer section
                        // may still follow it, so the data waits for it
                        // (or for the end) and is then handed over.
                        this.held = Some(data);
                        continue;
                    }
                    return Poll::Ready(Ok(this.bounded(data, max)));
                }
            }
        }
    }
}

/// Reads a request body whole, up to `limit` bytes, for an application run
/// inline on the runtime: its blocking reads must never wait on the socket
/// from a runtime thread.
pub(crate) struct PreRead<B> {
    source: RequestSource<B>,
    collected: BytesMut,
    limit: u64,
}

impl<B> PreRead<B>
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// Reads `body` into memory; with `trailers`, the slot its trailer
    /// section goes into, which the input built from the whole body keeps
    /// (`[RGI-TRAILER-2]`).
    pub(crate) fn new(
        trailers: Option<TrailerSlot>,
        body: B,
        limits: BodyLimits,
        pre_read_limit: u64,
    ) -> Self {
        let limit = limits.max_bytes.min(pre_read_limit);
        let declared = body.size_hint().exact();
        PreRead {
            source: RequestSource::new(body, declared, limit, limits, trailers),
            collected: BytesMut::new(),
            limit,
        }
    }

    /// The input over the whole body, with the trailer slot the read
    /// filled.
    fn whole(&self, body: Bytes) -> Input {
        let input = Input::from_bytes(body);
        match &self.source.trailers {
            Some(slot) => input.with_trailers(slot.clone()),
            None => input,
        }
    }

    /// The body, whole, once read.
    ///
    /// # Errors
    ///
    /// The client's fault: over the limit, malformed, stalled.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Input, InputError>> {
        loop {
            let polled = Pin::new(&mut self.source).poll_chunk(cx, usize::MAX);
            match std::task::ready!(polled) {
                Ok(data) if data.is_empty() => {
                    let body = std::mem::take(&mut self.collected).freeze();
                    return Poll::Ready(Ok(self.whole(body)));
                }
                Ok(data) => {
                    let at_end = self
                        .source
                        .body
                        .body
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .as_ref()
                        .is_none_or(HttpBody::is_end_stream);
                    if self.collected.is_empty() && (at_end || self.source.ended) {
                        // One frame, the whole body: no copy.
                        return Poll::Ready(Ok(self.whole(data)));
                    }
                    self.collected.extend_from_slice(&data);
                }
                Err(err) => {
                    let error = InputError::from(err);
                    return Poll::Ready(Err(match error {
                        InputError::BodyLimitExceeded { .. } => {
                            InputError::BodyLimitExceeded { limit: self.limit }
                        }
                        other => other,
                    }));
                }
            }
        }
    }
}
