//! What the toy puts around an application for one request: for
//! asynchronous applications a guard that lets `stop` end a parked body
//! (`RGI-CONN-5`, `RGIA-TASK-4`), and for some faults the hooks that break
//! their clause where the state machine would otherwise keep the rule.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header;
use rgi::StartResponse;
use rgi::{Application, Body, BoxError, Environ, FileBody, Hints, Intercept, ResponseHead};
use rgi_async::{AsyncApplication, AsyncBody, Step};

use super::Fault;
use super::conn::{Conn, lock};
use super::server::Cancel;
use super::sink::{OutFraming, WireSink};

/// State a fault's hooks and the request's sink share.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    /// The framing the head announced, once it went out.
    pub(crate) framing: Option<OutFraming>,
    /// [`Fault::SendsHeadEarly`]: the head already went out, this framed.
    pub(crate) early: Option<OutFraming>,
    /// [`Fault::BodyOnHead`]: chunks yielded before the head went out.
    pub(crate) stash: Vec<Bytes>,
    /// [`Fault::SendsPastContentLength`]: the declared length, the bytes
    /// yielded so far, and what went past the length.
    pub(crate) declared: Option<u64>,
    pub(crate) yielded: u64,
    pub(crate) excess: Option<Bytes>,
}

/// One request, as the toy's wrappers and sink see it.
#[derive(Debug)]
pub(crate) struct RequestCtx {
    pub(crate) conn: Arc<Conn>,
    pub(crate) fault: Option<Fault>,
    pub(crate) version: http::Version,
    pub(crate) head_request: bool,
    pub(crate) persist: bool,
    pub(crate) cancel: Option<Arc<Cancel>>,
    pub(crate) hooks: Mutex<Hooks>,
}

impl RequestCtx {
    /// Whether a synchronous application needs the wrapper for this
    /// request's fault.
    pub(crate) fn wraps_sync(&self) -> bool {
        matches!(
            self.fault,
            Some(
                Fault::SendsHeadEarly
                    | Fault::BodyOnHead
                    | Fault::ZeroChunkOnEmpty
                    | Fault::SendsPastContentLength
                    | Fault::DropsBodyLate
            )
        )
    }

    fn intercepts(&self) -> bool {
        matches!(
            self.fault,
            Some(Fault::SendsHeadEarly | Fault::SendsPastContentLength)
        )
    }

    /// Writes bytes behind the state machine's back.
    fn raw(&self, bytes: &[u8]) {
        let _ignored = lock(&self.conn.write).send(bytes);
    }

    /// Applies the chunk faults to a chunk on its way to the state machine.
    fn on_chunk(&self, chunk: &Bytes) {
        match self.fault {
            Some(Fault::BodyOnHead) if self.head_request && !chunk.is_empty() => {
                if lock(&self.conn.write).head_sent {
                    self.raw(chunk);
                } else {
                    lock(&self.hooks).stash.push(chunk.clone());
                }
            }
            Some(Fault::ZeroChunkOnEmpty) if chunk.is_empty() => {
                let chunked = lock(&self.hooks).framing == Some(OutFraming::Chunked);
                if chunked && lock(&self.conn.write).head_sent {
                    self.raw(b"0\r\n\r\n");
                }
            }
            Some(Fault::SendsPastContentLength) if !chunk.is_empty() => {
                let mut hooks = lock(&self.hooks);
                let before = hooks.yielded;
                hooks.yielded += chunk.len() as u64;
                if let Some(declared) = hooks.declared {
                    if hooks.yielded > declared {
                        let fits = usize::try_from(declared.saturating_sub(before)).unwrap_or(0);
                        hooks.excess = Some(chunk.slice(fits.min(chunk.len())..));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The interception hook of the head faults.
struct Hook<'a>(&'a Arc<RequestCtx>);

impl Intercept for Hook<'_> {
    fn on_start(&mut self, head: &mut ResponseHead) {
        let ctx = self.0;
        match ctx.fault {
            Some(Fault::SendsHeadEarly) => {
                if lock(&ctx.hooks).early.is_some() || lock(&ctx.conn.write).head_sent {
                    return;
                }
                let mut early = WireSink::new(Arc::clone(ctx));
                if early.write_head(head).is_ok() {
                    lock(&ctx.hooks).early = early.framing();
                }
            }
            Some(Fault::SendsPastContentLength) => {
                lock(&ctx.hooks).declared = head
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|text| text.parse().ok());
            }
            _ => {}
        }
    }
}

/// An application with the toy's per-request wrapper around it.
pub(crate) struct Wrapped<A: ?Sized> {
    pub(crate) app: Arc<A>,
    pub(crate) ctx: Arc<RequestCtx>,
}

/// Its body.
pub(crate) struct WrappedBody<B: Send + 'static> {
    inner: Option<B>,
    ctx: Arc<RequestCtx>,
}

impl<B: Send + 'static> WrappedBody<B> {
    fn new(inner: B, ctx: &Arc<RequestCtx>) -> Self {
        WrappedBody {
            inner: Some(inner),
            ctx: Arc::clone(ctx),
        }
    }
}

impl<B> Drop for WrappedBody<B>
where
    B: Send + 'static,
{
    fn drop(&mut self) {
        if self.ctx.fault == Some(Fault::DropsBodyLate) {
            if let Some(inner) = self.inner.take() {
                lock(&self.ctx.conn.graveyard).push(Box::new(inner));
            }
        }
    }
}

impl<A> Application for Wrapped<A>
where
    A: Application + ?Sized,
{
    type Body = WrappedBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let body = if self.ctx.intercepts() {
            self.app
                .call(environ, &mut start.intercept(&mut Hook(&self.ctx)))?
        } else {
            self.app.call(environ, start)?
        };
        Ok(WrappedBody::new(body, &self.ctx))
    }

    fn hints(&self) -> Hints {
        self.app.hints()
    }
}

impl<B: Body + 'static> Body for WrappedBody<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        let inner = self.inner.as_mut()?;
        let step = if self.ctx.intercepts() {
            inner.next_chunk(&mut start.intercept(&mut Hook(&self.ctx)))
        } else {
            inner.next_chunk(start)
        };
        if let Some(Ok(chunk)) = &step {
            self.ctx.on_chunk(chunk);
        }
        step
    }

    fn size_hint(&self) -> Option<u64> {
        self.inner.as_ref().and_then(Body::size_hint)
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        self.inner.as_mut().and_then(Body::file)
    }
}

impl<A> AsyncApplication for Wrapped<A>
where
    A: AsyncApplication + ?Sized,
{
    type Body = WrappedBody<Pin<Box<A::Body>>>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let body = if self.ctx.intercepts() {
            self.app
                .call(environ, &mut start.intercept(&mut Hook(&self.ctx)))?
        } else {
            self.app.call(environ, start)?
        };
        Ok(WrappedBody::new(Box::pin(body), &self.ctx))
    }
}

impl<B: AsyncBody + ?Sized + 'static> AsyncBody for WrappedBody<Pin<Box<B>>> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if let Some(cancel) = &this.ctx.cancel {
            if cancel.is_cancelled() {
                // Shutdown: the body is dropped here, once, and the
                // response ends as after a failure (RGI-CONN-5).
                if this.inner.take().is_some() {
                    return Poll::Ready(Some(Err("the server is shutting down".into())));
                }
                return Poll::Ready(None);
            }
            cancel.park(cx.waker());
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let step = if this.ctx.intercepts() {
            inner
                .as_mut()
                .poll_step(cx, &mut start.intercept(&mut Hook(&this.ctx)))
        } else {
            inner.as_mut().poll_step(cx, start)
        };
        match &step {
            Poll::Ready(Some(Ok(Step::Chunk(chunk)))) => this.ctx.on_chunk(chunk),
            Poll::Pending if this.ctx.fault == Some(Fault::BusyPolling) => {
                // The fault: poll again at once, without a wake-up.
                cx.waker().wake_by_ref();
            }
            _ => {}
        }
        step
    }

    fn size_hint(&self) -> Option<u64> {
        self.inner.as_ref().and_then(AsyncBody::size_hint)
    }
}
