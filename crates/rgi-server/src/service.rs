//! The per-request layer between hyper and the application's service:
//! counters, the request span, the request limit of a connection.
//!
//! Nothing here allocates per request: the span is a handle (empty when no
//! subscriber wants it), the guard and the counters live inside the response
//! future and then inside the response body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tracing::Span;

use crate::BoxError;
use crate::io::ConnState;
use crate::state::Shared;
use crate::strict::{self, RequestRules};

/// Serves the requests of one connection; what hyper sees.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionService<S> {
    inner: S,
    conn: Arc<ConnState>,
    shared: Arc<Shared>,
    rules: RequestRules,
}

impl<S> ConnectionService<S> {
    pub(crate) fn new(
        inner: S,
        conn: Arc<ConnState>,
        shared: Arc<Shared>,
        rules: RequestRules,
    ) -> Self {
        Self {
            inner,
            conn,
            shared,
            rules,
        }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnectionService<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = Response<ObservedBody<B>>;
    type Error = S::Error;
    type Future = ObservedFuture<S, Request<Incoming>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let number = self.conn.started.fetch_add(1, Ordering::AcqRel) + 1;
        self.shared.requests.started.fetch_add(1, Ordering::Release);
        let last = self.conn.max_requests.is_some_and(|max| number >= max);
        if last && self.conn.is_h2 {
            // HTTP/2 has no `connection: close`; the connection task sends
            // GOAWAY and lets the streams already open finish.
            self.conn.notify.notify_one();
        }
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            target = %request.uri(),
            status = tracing::field::Empty,
        );
        let started = if span.is_disabled() {
            None
        } else {
            Some(Instant::now())
        };
        let (mut parts, body) = request.into_parts();
        let state = match strict::check_request(&parts, &self.rules) {
            Ok(()) => {
                strict::present_host(&mut parts);
                let request = Request::from_parts(parts, body);
                let _entered = span.enter();
                let mut service = self.inner.clone();
                // Called now, as hyper calls its own services: a request
                // held until the first poll would keep hyper's read buffer
                // shared while it reads on, costing it two allocations per
                // request. A service not ready yet is polled again for real.
                let mut no_waker = Context::from_waker(Waker::noop());
                match service.poll_ready(&mut no_waker) {
                    Poll::Ready(Ok(())) => CallState::Called {
                        future: service.call(request),
                    },
                    Poll::Ready(Err(error)) => CallState::Failed { error: Some(error) },
                    Poll::Pending => CallState::NotReady {
                        service,
                        request: Some(Box::new(request)),
                    },
                }
            }
            Err(rejection) => {
                let _entered = span.enter();
                tracing::info!(%rejection, "request refused before the application");
                CallState::Rejected {
                    response: Some(rejection.response(())),
                }
            }
        };
        ObservedFuture {
            state,
            guard: Some(RequestGuard {
                conn: Arc::clone(&self.conn),
                shared: Arc::clone(&self.shared),
                span: Span::none(),
                started,
                bytes: 0,
                status: 0,
            }),
            close_after: last && !self.conn.is_h2,
            span,
        }
    }
}

pin_project! {
    #[project = CallStateProj]
    enum CallState<S, R> where S: tower_service::Service<R> {
        // The request boxed: a service that is not ready at once is rare,
        // and inline it would size every in-flight request's future.
        NotReady { service: S, request: Option<Box<R>> },
        Called { #[pin] future: S::Future },
        Rejected { response: Option<Response<()>> },
        Failed { error: Option<S::Error> },
        Done,
    }
}

pin_project! {
    /// The response future of one request.
    pub(crate) struct ObservedFuture<S, R> where S: tower_service::Service<R> {
        #[pin]
        state: CallState<S, R>,
        guard: Option<RequestGuard>,
        close_after: bool,
        span: Span,
    }
}

impl<S, B> Future for ObservedFuture<S, Request<Incoming>>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>>,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<ObservedBody<B>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        loop {
            match this.state.as_mut().project() {
                CallStateProj::NotReady { service, request } => {
                    std::task::ready!(service.poll_ready(cx))?;
                    let Some(request) = request.take() else {
                        this.state.set(CallState::Done);
                        continue;
                    };
                    let future = service.call(*request);
                    this.state.set(CallState::Called { future });
                }
                CallStateProj::Called { future } => {
                    let mut response = std::task::ready!(future.poll(cx))?;
                    this.state.set(CallState::Done);
                    if *this.close_after {
                        response
                            .headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                    if response.status() == StatusCode::SWITCHING_PROTOCOLS
                        && let Some(guard) = this.guard.as_ref()
                    {
                        guard.conn.upgraded.store(true, Ordering::Release);
                    }
                    let Some(mut guard) = this.guard.take() else {
                        // Polled again after completion: hyper never does.
                        return Poll::Pending;
                    };
                    guard.status = response.status().as_u16();
                    if !this.span.is_disabled() {
                        this.span.record("status", guard.status);
                        guard.span = this.span.clone();
                    }
                    return Poll::Ready(Ok(response.map(|inner| ObservedBody {
                        inner: Some(inner),
                        guard,
                    })));
                }
                CallStateProj::Rejected { response } => {
                    let (Some(response), Some(mut guard)) = (response.take(), this.guard.take())
                    else {
                        return Poll::Pending;
                    };
                    this.state.set(CallState::Done);
                    guard.status = response.status().as_u16();
                    return Poll::Ready(Ok(response.map(|()| ObservedBody { inner: None, guard })));
                }
                CallStateProj::Failed { error } => {
                    let error = error.take();
                    this.state.set(CallState::Done);
                    match error {
                        Some(error) => return Poll::Ready(Err(error)),
                        None => return Poll::Pending,
                    }
                }
                CallStateProj::Done => return Poll::Pending,
            }
        }
    }
}

/// Counts a request as in flight until its response body is dropped, then
/// logs how it ended.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    conn: Arc<ConnState>,
    shared: Arc<Shared>,
    span: Span,
    started: Option<Instant>,
    bytes: u64,
    status: u16,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.conn.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.conn.last_end_nanos.store(nanos, Ordering::Relaxed);
        self.conn.finished.fetch_add(1, Ordering::AcqRel);
        self.shared
            .requests
            .finished
            .fetch_add(1, Ordering::Release);
        if let Some(started) = self.started
            && self.status != 0
        {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            tracing::debug!(
                parent: &self.span,
                status = self.status,
                bytes = self.bytes,
                duration_us = micros,
                "response finished"
            );
        }
    }
}

pin_project! {
    /// The application's response body (none for a refusal), counted.
    #[derive(Debug)]
    pub(crate) struct ObservedBody<B> {
        #[pin]
        inner: Option<B>,
        guard: RequestGuard,
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            this.guard.bytes += data.len() as u64;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
