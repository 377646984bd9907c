//! [`ResponseBody`], the body hyper polls, and the responses built around
//! it: the one module that knows both a driven stream and a relay.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use rgi::BoxError;

use crate::relay::{Relay, RelayedHead};
use crate::response::{Driver, SentHead, failure_status};

/// The body of every response an RGI service gives hyper.
///
/// It pulls the application's body only when hyper polls it, so output
/// never outruns the client; its size hint is exact only when the sent
/// head fixed a Content-Length (`[RGI-CL-11]`). Dropping it (the client
/// went away) closes the application's body, exactly once: at once for a
/// body served on the runtime, on its worker thread for one served on the
/// pool.
pub struct ResponseBody {
    kind: Kind,
}

enum Kind {
    /// Nothing (a status-only response, or a response over).
    Empty,
    /// Served on the runtime.
    Driven(Pin<Box<dyn Driver>>),
    /// Served on a pool worker, relayed with backpressure.
    Relayed(Arc<Relay>),
}

impl ResponseBody {
    /// A body without bytes.
    #[must_use]
    pub fn empty() -> Self {
        ResponseBody { kind: Kind::Empty }
    }

    #[inline]
    pub(crate) fn driven(driver: Pin<Box<dyn Driver>>) -> Self {
        ResponseBody {
            kind: Kind::Driven(driver),
        }
    }

    pub(crate) fn relayed(relay: Arc<Relay>) -> Self {
        ResponseBody {
            kind: Kind::Relayed(relay),
        }
    }
}

impl Default for ResponseBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Empty => "empty",
            Kind::Driven(_) => "driven",
            Kind::Relayed(_) => "relayed",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Kind::Relayed(relay) = &self.kind {
            relay.receiver_gone();
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Empty => return Poll::Ready(None),
            Kind::Driven(driver) => driver.as_mut().poll_frame(cx),
            Kind::Relayed(relay) => relay.poll_frame(cx),
        };
        if matches!(polled, Poll::Ready(None)) {
            // Over: answer the end from now on. A driven body's application
            // body is closed already (its driver contains a panicking drop
            // itself), so what is dropped here cannot panic.
            if let Kind::Relayed(relay) = &this.kind {
                relay.receiver_gone();
            }
            this.kind = Kind::Empty;
        }
        polled
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Driven(driver) => driver.is_end_stream(),
            Kind::Relayed(relay) => relay.is_end_stream(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Driven(driver) => driver.size_hint(),
            Kind::Relayed(relay) => relay.size_hint(),
        }
    }
}

/// A response the service gives itself, without the application's body:
/// `Content-Length: 0`, and the connection closed after it when `close`
/// (a client body error, whose unread rest cannot be trusted) on HTTP/1.
pub(crate) fn status_only(
    status: StatusCode,
    version: Version,
    close: bool,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    if close && version <= Version::HTTP_11 {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The answer to an application failure before its head.
pub(crate) fn failure_response(error: &BoxError, version: Version) -> Response<ResponseBody> {
    let status = failure_status(error);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %error, "the RGI application failed before its response head; answering 500");
    } else {
        tracing::info!(error = %error, status = status.as_u16(), "the request body failed the client's way; answering {status}");
    }
    status_only(status, version, status != StatusCode::INTERNAL_SERVER_ERROR)
}

/// The answer when the pool refuses the request.
pub(crate) fn unavailable(retry_after: &HeaderValue, version: Version) -> Response<ResponseBody> {
    let mut response = status_only(StatusCode::SERVICE_UNAVAILABLE, version, false);
    response
        .headers_mut()
        .insert(RETRY_AFTER, retry_after.clone());
    response
}

/// The response hyper sends for a head the state sent, with `body`.
#[inline]
pub(crate) fn with_head((status, headers): SentHead, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    // What comes back is the empty map `Response::new` made, which owns no
    // allocation: not dropping it leaks nothing and saves its drop (about 50
    // instructions a request, callgrind).
    let _empty = std::mem::ManuallyDrop::new(std::mem::replace(response.headers_mut(), headers));
    response
}

/// The response for what a relayed head resolved to.
#[inline]
pub(crate) fn relayed_response(head: RelayedHead) -> Response<ResponseBody> {
    match head {
        RelayedHead::Head(head, relay) => with_head(head, ResponseBody::relayed(relay)),
        RelayedHead::Status(status, version) => {
            status_only(status, version, status != StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}
