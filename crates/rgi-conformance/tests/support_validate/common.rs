//! What the validator tests share: well-formed requests, small bodies, and
//! hand-written drivers that can misbehave on purpose.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{
    Application, Body, BoxError, Environ, EnvironBuilder, ResponseHead, ResponseState,
    StartResponse,
};
use rgi_async::{AsyncApplication, AsyncBody, Capabilities, Offload, Step};
use rgi_conformance::rt::{Recorder, ThreadOffload, serve_async, serve_sync};
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports, Violation};

/// A well-formed HTTP/1.1 request to `example.org`.
pub(crate) fn environ() -> EnvironBuilder {
    Environ::builder().header(header::HOST, HeaderValue::from_static("example.org"))
}

/// A well-formed request for an asynchronous application: capabilities
/// with a working offload.
pub(crate) fn async_environ() -> EnvironBuilder {
    environ().extension(capabilities().build())
}

/// Capabilities with the kit's offload, ready for more.
pub(crate) fn capabilities() -> rgi_async::CapabilitiesBuilder {
    Capabilities::builder(Offload::new(ThreadOffload::new()))
}

/// A `text/plain` head.
pub(crate) fn text(status: StatusCode) -> ResponseHead {
    ResponseHead::new(status)
        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

/// A `text/plain` head declaring `length`.
pub(crate) fn text_with_length(status: StatusCode, length: u64) -> ResponseHead {
    text(status).with_header(header::CONTENT_LENGTH, HeaderValue::from(length))
}

/// Builds an environ, which the tests' requests always allow.
pub(crate) fn build(builder: EnvironBuilder) -> Environ {
    builder.build().expect("a well-formed test request")
}

/// A collecting report list.
pub(crate) fn collect() -> Reports {
    Reports::new(Policy::Collect)
}

/// Serves one request to `app` through a collecting [`Validator`] with the
/// kit's driver; returns what the validator reported (after dropping it).
pub(crate) fn serve<A: Application>(app: A, environ: Environ) -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(app, reports.clone());
    let _ = serve_sync(&validator, environ, &mut Recorder::new());
    drop(validator);
    reports.all()
}

/// As [`serve`], for an asynchronous application.
pub(crate) fn serve_asynchronously<A: AsyncApplication>(
    app: A,
    environ: Environ,
) -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(app, reports.clone());
    let _ = serve_async(&validator, environ, &mut Recorder::new());
    drop(validator);
    reports.all()
}

/// A server that does exactly what a test tells it, right or wrong.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) state: ResponseState,
    pub(crate) sink: Recorder,
}

impl Driver {
    pub(crate) fn new(method: &Method) -> Self {
        Driver {
            state: ResponseState::new(method),
            sink: Recorder::new(),
        }
    }

    /// Calls `app` with a handle over this driver's state.
    pub(crate) fn call<A: Application>(
        &mut self,
        app: &A,
        environ: Environ,
    ) -> Result<A::Body, BoxError> {
        app.call(environ, &mut self.state.start_response(&mut self.sink))
    }

    /// Calls an asynchronous `app` with a handle over this driver's state.
    pub(crate) fn call_async<A: AsyncApplication>(
        &mut self,
        app: &A,
        environ: Environ,
    ) -> Result<A::Body, BoxError> {
        app.call(environ, &mut self.state.start_response(&mut self.sink))
    }

    /// Pulls once and hands a chunk to `send_chunk`, as a server must.
    pub(crate) fn pull<B: Body>(&mut self, body: &mut B) -> Option<Result<Bytes, BoxError>> {
        let step = self.pull_unsent(body);
        if let Some(Ok(chunk)) = &step {
            let _ = self.state.send_chunk(&mut self.sink, chunk.clone());
        }
        step
    }

    /// Pulls once and keeps the chunk to itself.
    pub(crate) fn pull_unsent<B: Body>(&mut self, body: &mut B) -> Option<Result<Bytes, BoxError>> {
        body.next_chunk(&mut self.state.start_response(&mut self.sink))
    }

    /// Polls once with `waker`, sending a chunk step.
    pub(crate) fn poll<B: AsyncBody + Unpin>(
        &mut self,
        body: &mut B,
        waker: &Waker,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let step = self.poll_unsent(body, waker);
        if let Poll::Ready(Some(Ok(Step::Chunk(chunk)))) = &step {
            let _ = self.state.send_chunk(&mut self.sink, chunk.clone());
        }
        step
    }

    /// Polls once with `waker` and keeps a chunk to itself.
    pub(crate) fn poll_unsent<B: AsyncBody + Unpin>(
        &mut self,
        body: &mut B,
        waker: &Waker,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let mut cx = Context::from_waker(waker);
        Pin::new(body).poll_step(&mut cx, &mut self.state.start_response(&mut self.sink))
    }

    /// Runs a switch's continuation over this driver's state.
    pub(crate) fn run_switch(
        &mut self,
        switch: rgi_async::SyncSwitch,
    ) -> Result<Box<dyn Body>, BoxError> {
        switch.run(&mut self.state.start_response(&mut self.sink))
    }
}

/// A synchronous body written as a closure over its pull count.
pub(crate) struct Steps<F>(pub(crate) u32, pub(crate) F);

impl<F> Body for Steps<F>
where
    F: FnMut(u32, &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> + Send,
{
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        let step = (self.1)(self.0, start);
        self.0 += 1;
        step
    }
}

/// An asynchronous body written as a closure over its poll count.
pub(crate) struct AsyncSteps<F>(pub(crate) u32, pub(crate) F);

impl<F> AsyncBody for AsyncSteps<F>
where
    F: FnMut(u32, &mut Context<'_>, &mut StartResponse<'_>) -> Poll<Option<Result<Step, BoxError>>>
        + Send
        + Unpin,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        let step = (this.1)(this.0, cx, start);
        this.0 += 1;
        step
    }
}

/// An asynchronous body that runs a future, then ends (starting a 204 if
/// nobody started the response).
pub(crate) struct TaskBody(
    pub(crate) Pin<Box<dyn std::future::Future<Output = Result<(), BoxError>> + Send>>,
);

impl TaskBody {
    pub(crate) fn new(
        future: impl std::future::Future<Output = Result<(), BoxError>> + Send + 'static,
    ) -> Self {
        TaskBody(Box::pin(future))
    }
}

impl AsyncBody for TaskBody {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        match self.0.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error))),
            Poll::Ready(Ok(())) => {
                if !start.is_started() {
                    if let Err(error) = start.start(StatusCode::NO_CONTENT) {
                        return Poll::Ready(Some(Err(error.into())));
                    }
                }
                Poll::Ready(None)
            }
        }
    }
}

/// Whether `violations` hold one of `clause` by `side`.
pub(crate) fn has(violations: &[Violation], clause: &str, side: rgi_conformance::Side) -> bool {
    violations
        .iter()
        .any(|violation| violation.clause() == clause && violation.side() == side)
}
