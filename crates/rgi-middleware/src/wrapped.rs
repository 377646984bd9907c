//! [`Wrapped`]: a [`Middleware`] in front of an application, for either
//! stack, and its body.

// The per-request path is marked `#[inline]`: it is generic, instantiated
// in the crate that serves the application and spread over that crate's
// codegen units, where moving the `Wrapped` type to `wrapper.rs` cost about
// 165 instructions a request until these hints let it inline again
// (bench/middleware.sh).
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Method, StatusCode};
use rgi::{
    Application, Body, BoxError, Environ, FileBody, Hints, Intercept, ResponseHead, SendError,
    StartResponse, Startup,
};
use rgi_async::{AsyncApplication, AsyncBody, Step, SyncSwitch};

use crate::middleware::{BodyAccess, Emit, Ending, Incoming, Middleware, Outcome};
use crate::wrapper::Wrapped;

impl<M: Middleware, A> Wrapped<M, A> {
    /// Runs `on_request` and, unless the middleware answered, calls the
    /// inner application through the hook: the part of `call` both stacks
    /// share.
    #[inline]
    fn call_with<B>(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
        inner: impl FnOnce(Environ, &mut StartResponse<'_>) -> Result<B, BoxError>,
    ) -> Result<WrappedBody<M, B>, BoxError> {
        let head_request = environ.method() == Method::HEAD;
        let mut incoming = Incoming::new(&mut environ);
        let state = self.middleware.on_request(&mut incoming);
        let answer = incoming.into_answer();
        let mut core = Core::new(Arc::clone(&self.middleware), state);
        core.tail.stats.head_request = head_request;
        if let Some((head, body)) = answer {
            core.tail.stats.on_head(&head);
            if let Err(err) = start.start(head) {
                core.tail.fail();
                return Err(err.into());
            }
            core.early = Some(body);
            return Ok(WrappedBody { inner: None, core });
        }
        let called = match core.tail.hook() {
            Some(mut hook) => inner(environ, &mut start.intercept(&mut hook)),
            None => inner(environ, start),
        };
        match called {
            Ok(body) => Ok(WrappedBody {
                inner: Some(body),
                core,
            }),
            Err(err) => {
                core.tail.fail();
                Err(err)
            }
        }
    }
}

impl<M: Middleware, A: Application> Application for Wrapped<M, A> {
    type Body = WrappedBody<M, A::Body>;

    #[inline]
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        self.call_with(environ, start, |environ, start| {
            self.app.call(environ, start)
        })
    }

    fn hints(&self) -> Hints {
        self.app.hints()
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.app.startup(startup)?;
        self.middleware.startup(startup)
    }

    fn shutdown(&self) {
        self.middleware.shutdown();
        self.app.shutdown();
    }
}

impl<M: Middleware, A: AsyncApplication> AsyncApplication for Wrapped<M, A> {
    type Body = WrappedBody<M, A::Body>;

    #[inline]
    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        self.call_with(environ, start, |environ, start| {
            self.app.call(environ, start)
        })
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.app.startup(startup)?;
        self.middleware.startup(startup)
    }

    fn shutdown(&self) {
        self.middleware.shutdown();
        self.app.shutdown();
    }
}

pin_project_lite::pin_project! {
    /// The body of a [`Wrapped`] application: an [`rgi::Body`] around a
    /// synchronous body, an [`rgi_async::AsyncBody`] around an
    /// asynchronous one.
    ///
    /// It owns the inner body and drops it once, as soon as it has ended
    /// or failed or else when it is dropped itself (`RGI-MW-7`); the
    /// middleware's `on_drop` runs after that.
    pub struct WrappedBody<M: Middleware, B> {
        // Declared first so that it drops before `core` calls `on_drop`.
        #[pin]
        inner: Option<B>,
        core: Core<M>,
    }
}

impl<M: Middleware, B> fmt::Debug for WrappedBody<M, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedBody")
            .field("middleware", &std::any::type_name::<M>())
            .field("inner_alive", &self.inner.is_some())
            .field("queued", &self.core.queue.len())
            .finish_non_exhaustive()
    }
}

/// What the body keeps besides the inner body: its output queue, the
/// middleware's own answer, and the state.
struct Core<M: Middleware> {
    queue: VecDeque<Bytes>,
    early: Option<Bytes>,
    /// What `file()` last saw remaining, to count bytes a server sent by
    /// platform transfer (they bypass `next_chunk`).
    file_mark: Option<u64>,
    tail: Tail<M>,
}

/// The state and the counts, which `on_drop` receives when this drops.
/// Moving a `Tail` is how the state follows the response into a switch
/// continuation.
struct Tail<M: Middleware> {
    middleware: Arc<M>,
    state: Option<M::State>,
    stats: Stats,
}

#[derive(Clone, Copy, Default)]
struct Stats {
    status: Option<StatusCode>,
    body_bytes: u64,
    ending: Option<Ending>,
    trailers_given: bool,
    /// The Content-Length of the head that went out.
    declared: Option<u64>,
    /// The request is a HEAD: the server pulls none of the body.
    head_request: bool,
}

impl Stats {
    /// Records the head that goes out.
    #[inline]
    fn on_head(&mut self, head: &ResponseHead) {
        self.status = Some(head.status());
        self.declared = head
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
    }

    /// How the response ended when nothing said so on the way: a server
    /// stops pulling a body once its declared length went out, and pulls
    /// none for HEAD, 1xx, 204 and 304 (`RGI-BODY-15`, `RGI-BODY-16`), so
    /// those responses are complete without the body's own end.
    #[inline]
    fn ending(&self) -> Ending {
        if let Some(ending) = self.ending {
            return ending;
        }
        let Some(status) = self.status else {
            return Ending::Aborted;
        };
        let bodiless = self.head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        if bodiless || self.declared == Some(self.body_bytes) {
            Ending::Complete
        } else {
            Ending::Aborted
        }
    }
}

impl<M: Middleware> Tail<M> {
    #[inline]
    fn hook(&mut self) -> Option<Hook<'_, M>> {
        Some(Hook {
            middleware: &self.middleware,
            state: self.state.as_mut()?,
            stats: &mut self.stats,
            write_len: 0,
        })
    }

    /// Marks the response failed, for `on_drop`.
    fn fail(&mut self) {
        self.stats.ending = Some(Ending::Failed);
    }

    /// Moves the state out into a new tail (for a switch continuation);
    /// this one is left without, so its drop reports nothing.
    fn carry(&mut self) -> Tail<M> {
        Tail {
            middleware: Arc::clone(&self.middleware),
            state: self.state.take(),
            stats: self.stats,
        }
    }
}

impl<M: Middleware> Drop for Tail<M> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            let outcome = Outcome {
                status: self.stats.status,
                body_bytes: self.stats.body_bytes,
                ending: self.stats.ending(),
            };
            self.middleware.on_drop(state, outcome);
        }
    }
}

impl<M: Middleware> Core<M> {
    #[inline]
    fn new(middleware: Arc<M>, state: M::State) -> Self {
        Core {
            queue: VecDeque::new(),
            early: None,
            file_mark: None,
            tail: Tail {
                middleware,
                state: Some(state),
                stats: Stats::default(),
            },
        }
    }

    #[inline]
    fn access(&self) -> BodyAccess {
        self.tail
            .state
            .as_ref()
            .map_or(BodyAccess::PassThrough, |state| {
                self.tail.middleware.body_access(state)
            })
    }

    /// A chunk handed on: counted.
    #[inline]
    fn out(&mut self, chunk: Bytes) -> Bytes {
        self.tail.stats.body_bytes += chunk.len() as u64;
        chunk
    }

    /// Output that needs no inner step: queued chunks, then the
    /// middleware's own answer, then the end if there is no inner body.
    #[inline]
    fn pending(&mut self, inner_alive: bool) -> Option<Option<Bytes>> {
        if let Some(chunk) = self.queue.pop_front() {
            return Some(Some(self.out(chunk)));
        }
        if let Some(answer) = self.early.take() {
            if !answer.is_empty() {
                return Some(Some(self.out(answer)));
            }
        }
        if inner_alive {
            return None;
        }
        if self.tail.stats.ending.is_none() {
            self.tail.stats.ending = Some(Ending::Complete);
        }
        Some(None)
    }

    /// An inner chunk: through `on_chunk` unless the body passes through;
    /// an empty step when the middleware emitted nothing.
    #[inline]
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        if !self.access().sees_chunks() {
            return self.out(chunk);
        }
        let Some(state) = self.tail.state.as_mut() else {
            return self.out(chunk);
        };
        let mut emit = Emit::new(&mut self.queue);
        self.tail.middleware.on_chunk(state, chunk, &mut emit);
        let first = emit.into_first();
        let chunk = first.or_else(|| self.queue.pop_front()).unwrap_or_default();
        self.out(chunk)
    }

    /// The inner body has ended: `on_end`, then the trailers the
    /// middleware adds; returns the first final chunk, or `None` for the
    /// end.
    #[inline]
    fn end(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if let Some(state) = self.tail.state.as_mut() {
            let middleware = &self.tail.middleware;
            let mut emit = Emit::new(&mut self.queue);
            middleware.on_end(state, &mut emit);
            let first = emit.into_first();
            if !self.tail.stats.trailers_given {
                self.tail.stats.trailers_given = true;
                let mut fields = HeaderMap::new();
                middleware.on_trailers(state, &mut fields);
                if !fields.is_empty() {
                    if let Err(err) = start.send_trailers(fields) {
                        self.tail.fail();
                        return Some(Err(err.into()));
                    }
                }
            }
            if let Some(chunk) = first {
                return Some(Ok(self.out(chunk)));
            }
        }
        self.pending(false).and_then(|chunk| chunk.map(Ok))
    }

    fn failed(&mut self, err: BoxError) -> Option<Result<Bytes, BoxError>> {
        self.tail.fail();
        Some(Err(err))
    }

    #[inline]
    fn size_hint(&self, inner: Option<u64>, inner_alive: bool) -> Option<u64> {
        let queued: u64 = self.queue.iter().map(|c| c.len() as u64).sum::<u64>()
            + self.early.as_ref().map_or(0, |c| c.len() as u64);
        if !inner_alive {
            return Some(queued);
        }
        if self.access().keeps_length() {
            inner.map(|n| n + queued)
        } else {
            None
        }
    }

    /// The file body has `now` bytes left: count what went since the
    /// last look.
    fn file_progress(&mut self, now: Option<u64>) {
        if let (Some(before), Some(now)) = (self.file_mark, now) {
            self.tail.stats.body_bytes += before.saturating_sub(now);
        }
        self.file_mark = now;
    }

    #[inline]
    fn file_allowed(&self) -> bool {
        self.access() == BodyAccess::PassThrough && self.queue.is_empty() && self.early.is_none()
    }
}

/// The [`Intercept`] the inner application's handle goes through: heads,
/// writes and trailers reach the middleware's hooks.
struct Hook<'a, M: Middleware> {
    middleware: &'a M,
    state: &'a mut M::State,
    stats: &'a mut Stats,
    write_len: u64,
}

impl<M: Middleware> Intercept for Hook<'_, M> {
    #[inline]
    fn on_start(&mut self, head: &mut ResponseHead) {
        self.middleware.on_head(self.state, head);
        if !self.middleware.body_access(self.state).keeps_length() {
            head.headers_mut().remove(CONTENT_LENGTH);
        }
        self.stats.on_head(head);
    }

    #[inline]
    fn on_write(&mut self, data: &mut Bytes) {
        if self.middleware.body_access(self.state).sees_chunks() {
            // A write has one buffer to pass on: several chunks emitted
            // for it are joined.
            let mut rest = VecDeque::new();
            let mut emit = Emit::new(&mut rest);
            self.middleware
                .on_chunk(self.state, std::mem::take(data), &mut emit);
            *data = emit.into_joined();
        }
        self.write_len = data.len() as u64;
    }

    #[inline]
    fn on_write_result(&mut self, result: Result<(), &SendError>) {
        if result.is_ok() {
            self.stats.body_bytes += self.write_len;
        }
        self.write_len = 0;
    }

    #[inline]
    fn on_trailers(&mut self, fields: &mut HeaderMap) {
        self.stats.trailers_given = true;
        self.middleware.on_trailers(self.state, fields);
    }
}

impl<M: Middleware, B: Body> WrappedBody<M, B> {
    /// Counts bytes a server sent from the file body by platform transfer
    /// since `file()` was last asked (`RGI-FILE-4`: the server calls
    /// `advance` before it pulls or asks again).
    fn account_file(&mut self) {
        if self.core.file_mark.is_none() {
            return;
        }
        let now = self
            .inner
            .as_mut()
            .and_then(Body::file)
            .and_then(|file| file.remaining());
        self.core.file_progress(now);
        // The pull about to happen reads the file itself and is counted
        // as a chunk: the next look starts afresh.
        self.core.file_mark = None;
    }
}

impl<M: Middleware, B: Body> Body for WrappedBody<M, B> {
    #[inline]
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.account_file();
        if let Some(ready) = self.core.pending(self.inner.is_some()) {
            return ready.map(Ok);
        }
        let inner = self.inner.as_mut()?;
        let step = match self.core.tail.hook() {
            Some(mut hook) => inner.next_chunk(&mut start.intercept(&mut hook)),
            None => inner.next_chunk(start),
        };
        match step {
            Some(Ok(chunk)) => Some(Ok(self.core.chunk(chunk))),
            Some(Err(err)) => {
                self.inner = None;
                self.core.failed(err)
            }
            None => {
                self.inner = None;
                self.core.end(start)
            }
        }
    }

    #[inline]
    fn size_hint(&self) -> Option<u64> {
        let inner = self.inner.as_ref();
        self.core
            .size_hint(inner.and_then(Body::size_hint), inner.is_some())
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        if !self.core.file_allowed() {
            return None;
        }
        let file = self.inner.as_mut()?.file()?;
        self.core.file_progress(file.remaining());
        Some(file)
    }
}

impl<M: Middleware, B: AsyncBody> AsyncBody for WrappedBody<M, B> {
    #[inline]
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let mut this = self.project();
        let core = this.core;
        if let Some(ready) = core.pending(this.inner.is_some()) {
            return Poll::Ready(ready.map(|chunk| Ok(Step::Chunk(chunk))));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let polled = match core.tail.hook() {
            Some(mut hook) => inner.poll_step(cx, &mut start.intercept(&mut hook)),
            None => inner.poll_step(cx, start),
        };
        let Poll::Ready(step) = polled else {
            return Poll::Pending;
        };
        let result = match step {
            Some(Ok(Step::Chunk(chunk))) => Some(Ok(Step::Chunk(core.chunk(chunk)))),
            Some(Ok(Step::Switch(switch))) => {
                Some(Ok(Step::Switch(switched(core.tail.carry(), switch))))
            }
            Some(Ok(other)) => Some(Ok(other)),
            Some(Err(err)) => {
                this.inner.set(None);
                core.failed(err).map(|chunk| chunk.map(Step::Chunk))
            }
            None => {
                this.inner.set(None);
                core.end(start).map(|chunk| chunk.map(Step::Chunk))
            }
        };
        Poll::Ready(result)
    }

    #[inline]
    fn size_hint(&self) -> Option<u64> {
        let inner = self.inner.as_ref();
        self.core
            .size_hint(inner.and_then(AsyncBody::size_hint), inner.is_some())
    }
}

/// The inner switch, wrapped so that the middleware's interception
/// applies to the continuation's handle and to the body it returns
/// (`RGIA-COMP-11`), with the request's state moved along.
fn switched<M: Middleware>(mut tail: Tail<M>, switch: SyncSwitch) -> SyncSwitch {
    let continuation = switch.into_continuation();
    SyncSwitch::new(move |start| {
        let ran = match tail.hook() {
            Some(mut hook) => continuation(&mut start.intercept(&mut hook)),
            None => continuation(start),
        };
        match ran {
            Ok(body) => Ok(WrappedBody {
                inner: Some(body),
                core: Core {
                    queue: VecDeque::new(),
                    early: None,
                    file_mark: None,
                    tail,
                },
            }),
            Err(err) => {
                tail.fail();
                Err(err)
            }
        }
    })
}
