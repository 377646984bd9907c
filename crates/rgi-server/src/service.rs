//! The per-request layer between hyper and the application's service:
//! counters, the request span, the request limit of a connection.
//!
//! Nothing here allocates per request unless a `tracing` subscriber wants
//! the request span: the guard and the counters live inside the response
//! future and then inside the response body, and the span (with its start
//! time) is boxed only when it is enabled, so a request that nobody traces
//! carries one empty pointer instead of two span handles.
//!
//! For measurement only, the environment variable
//! `RGI_SERVER_MEASURE_WITHOUT` (read once per process) turns per-request
//! features off, so that a benchmark can show what each costs: a comma
//! separated list of `tracing` (no request span, whatever the subscriber
//! wants), `counters` (the server-wide request counters behind
//! [`Server::stats`](crate::Server::stats) stay at zero) and `limits` (no
//! [`strict::check_request`]: the request limits and RFC checks are skipped).
//! It is not a configuration: a server run with it is less observable or
//! less strict than it claims.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
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

/// The per-request features a measurement may turn off (see the module
/// documentation); all on unless `RGI_SERVER_MEASURE_WITHOUT` says
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Features {
    pub(crate) tracing: bool,
    pub(crate) counters: bool,
    pub(crate) limits: bool,
}

impl Features {
    /// Every feature on.
    pub(crate) const ALL: Features = Features {
        tracing: true,
        counters: true,
        limits: true,
    };

    /// The features left on by a `RGI_SERVER_MEASURE_WITHOUT` value;
    /// unknown names are ignored.
    pub(crate) fn without(list: &str) -> Features {
        let mut features = Features::ALL;
        for name in list.split(',').map(str::trim) {
            match name {
                "tracing" => features.tracing = false,
                "counters" => features.counters = false,
                "limits" => features.limits = false,
                _ => {}
            }
        }
        features
    }

    /// This process's features, read from the environment once.
    pub(crate) fn current() -> Features {
        static CURRENT: OnceLock<Features> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            std::env::var("RGI_SERVER_MEASURE_WITHOUT")
                .map_or(Features::ALL, |list| Features::without(&list))
        })
    }
}

/// Serves the requests of one connection; what hyper sees.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionService<S> {
    inner: S,
    conn: Arc<ConnState>,
    shared: Arc<Shared>,
    rules: RequestRules,
    /// The connection's last valid Host value (`strict::HostMemo`).
    host_memo: strict::HostMemo,
    features: Features,
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
            host_memo: strict::HostMemo::default(),
            features: Features::current(),
        }
    }
}

/// The request span, with what its last event reports; boxed, and only
/// there when a subscriber wants the span.
#[derive(Debug)]
struct Traced {
    span: Span,
    started: Instant,
}

impl Traced {
    /// The request's span, if tracing is on and a subscriber enables it.
    fn start(request: &Request<Incoming>, features: Features) -> Option<Box<Traced>> {
        if !features.tracing || !tracing::enabled!(tracing::Level::DEBUG) {
            return None;
        }
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            target = %request.uri(),
            status = tracing::field::Empty,
        );
        if span.is_disabled() {
            return None;
        }
        Some(Box::new(Traced {
            span,
            started: Instant::now(),
        }))
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

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let number = self.conn.started.fetch_add(1, Ordering::AcqRel) + 1;
        let shared = self.features.counters.then(|| {
            self.shared.requests.started.fetch_add(1, Ordering::Release);
            Arc::clone(&self.shared)
        });
        let last = self.conn.max_requests.is_some_and(|max| number >= max);
        if last && self.conn.is_h2 {
            // HTTP/2 has no `connection: close`; the connection task sends
            // GOAWAY and lets the streams already open finish.
            self.conn.notify.notify_one();
        }
        let traced = Traced::start(&request, self.features);
        let entered = traced.as_ref().map(|traced| traced.span.enter());
        let checked = if self.features.limits {
            strict::check_whole_request(&request, &self.rules, &self.host_memo)
        } else {
            Ok(())
        };
        let state = match checked {
            Ok(()) => {
                strict::present_request_host(&mut request);
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
                        pending: Some(Box::new((service, request))),
                    },
                }
            }
            Err(rejection) => {
                tracing::info!(%rejection, "request refused before the application");
                CallState::Rejected {
                    response: Some(Box::new(rejection.response(()))),
                }
            }
        };
        drop(entered);
        ObservedFuture {
            state,
            guard: Some(RequestGuard {
                conn: Arc::clone(&self.conn),
                shared,
                traced: None,
                bytes: 0,
                status: 0,
            }),
            close_after: last && !self.conn.is_h2,
            traced,
        }
    }
}

pin_project! {
    #[project = CallStateProj]
    enum CallState<S, R> where S: tower_service::Service<R> {
        // Boxed, as the refusal below: both are rare, and hyper moves this
        // future, whose size is its largest state's.
        NotReady { pending: Option<Box<(S, R)>> },
        Called { #[pin] future: S::Future },
        Rejected { response: Option<Box<Response<()>>> },
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
        traced: Option<Box<Traced>>,
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
        loop {
            match this.state.as_mut().project() {
                CallStateProj::NotReady { pending } => {
                    let Some(ready) = pending.as_mut() else {
                        this.state.set(CallState::Done);
                        continue;
                    };
                    let polled = {
                        let _entered = this.traced.as_ref().map(|traced| traced.span.enter());
                        ready.0.poll_ready(cx)
                    };
                    std::task::ready!(polled)?;
                    let Some(ready) = pending.take() else {
                        continue;
                    };
                    let (mut service, request) = *ready;
                    let future = {
                        let _entered = this.traced.as_ref().map(|traced| traced.span.enter());
                        service.call(request)
                    };
                    this.state.set(CallState::Called { future });
                }
                CallStateProj::Called { future } => {
                    let polled = {
                        let _entered = this.traced.as_ref().map(|traced| traced.span.enter());
                        future.poll(cx)
                    };
                    let mut response = std::task::ready!(polled)?;
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
                    if let Some(traced) = this.traced.take() {
                        traced.span.record("status", guard.status);
                        guard.traced = Some(traced);
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
    /// The server's counters; `None` when they are turned off.
    shared: Option<Arc<Shared>>,
    /// The request span, once the response went to hyper.
    traced: Option<Box<Traced>>,
    bytes: u64,
    status: u16,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.conn.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.conn.last_end_nanos.store(nanos, Ordering::Relaxed);
        self.conn.finished.fetch_add(1, Ordering::AcqRel);
        if let Some(shared) = &self.shared {
            shared.requests.finished.fetch_add(1, Ordering::Release);
        }
        if let Some(traced) = &self.traced
            && self.status != 0
        {
            let micros = u64::try_from(traced.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            tracing::debug!(
                parent: &traced.span,
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

#[cfg(test)]
mod tests {
    use super::Features;

    #[test]
    fn the_measurement_knob_names_features_off() {
        assert_eq!(Features::without(""), Features::ALL);
        assert_eq!(
            Features::without("tracing, limits"),
            Features {
                tracing: false,
                counters: true,
                limits: false,
            }
        );
        assert_eq!(
            Features::without("counters,unknown"),
            Features {
                tracing: true,
                counters: false,
                limits: true,
            }
        );
    }
}
