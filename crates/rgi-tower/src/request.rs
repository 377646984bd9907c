//! The request side: the request body as an RGI [`Input`], read from the
//! connection only as the application consumes it, with the host's body
//! limit and stalled-body time applied while it streams.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::TRANSFER_ENCODING;
use http::request::Parts;
use http_body::Body as HttpBody;
use rgi::{AsyncSource, BoxError, Input, InputError};
use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};

/// The host's limits on one request body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    pub(crate) max_bytes: u64,
    pub(crate) stall: Option<Duration>,
}

/// Removes the `Transfer-Encoding` hyper has decoded (an environ carries no
/// framing of the connection's) from a request whose body is not known to
/// be empty; should a bodiless request carry one anyway,
/// [`rgi::Environ::from_parts`] refuses it and the client gets a 400.
pub(crate) fn remove_decoded_framing(parts: &mut Parts, body_is_empty: bool) {
    if !body_is_empty {
        parts.headers.remove(TRANSFER_ENCODING);
    }
}

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

/// An `http_body::Body` as the source of an [`Input`].
pub(crate) struct RequestSource<B> {
    body: B,
    limit: u64,
    received: u64,
    stall: Option<Stall>,
}

impl<B> RequestSource<B>
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// The input over `body`: empty when the body is known to be, else read
    /// as the application polls or reads, with the length its framing
    /// declares.
    pub(crate) fn input(body: B, limits: BodyLimits) -> Input {
        if body.is_end_stream() {
            return Input::empty();
        }
        let length = body.size_hint().exact();
        let stall = limits.stall.and_then(|timeout| {
            Handle::try_current().ok().map(|runtime| Stall {
                timeout,
                runtime,
                sleep: None,
                armed: false,
            })
        });
        Input::from_async(
            RequestSource {
                body,
                limit: limits.max_bytes,
                received: 0,
                stall,
            },
            length,
        )
    }
}

/// The typed client error behind a body error, or a malformed body.
fn client_error(error: impl Into<BoxError>) -> InputError {
    let error: BoxError = error.into();
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
        _max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let this = self.get_mut();
        loop {
            // Input keeps what exceeds `max` for its next read, so a frame
            // is handed over whole.
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => {
                    if let Some(stall) = this.stall.as_mut() {
                        if stall.poll_expired(cx).is_ready() {
                            let timeout = stall.timeout;
                            return Poll::Ready(Err(InputError::BodyTimedOut { timeout }.into()));
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(Bytes::new())),
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(client_error(err).into())),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        // Trailers carry no body bytes.
                        continue;
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
                    return Poll::Ready(Ok(data));
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
    pub(crate) fn new(body: B, limits: BodyLimits, pre_read_limit: u64) -> Self {
        let limit = limits.max_bytes.min(pre_read_limit);
        let stall = limits.stall.and_then(|timeout| {
            Handle::try_current().ok().map(|runtime| Stall {
                timeout,
                runtime,
                sleep: None,
                armed: false,
            })
        });
        PreRead {
            source: RequestSource {
                body,
                limit,
                received: 0,
                stall,
            },
            collected: BytesMut::new(),
            limit,
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
                    return Poll::Ready(Ok(Input::from_bytes(body)));
                }
                Ok(data) => {
                    if self.collected.is_empty() && self.source.body.is_end_stream() {
                        // One frame, the whole body: no copy.
                        return Poll::Ready(Ok(Input::from_bytes(data)));
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
