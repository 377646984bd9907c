//! The per-step cost of the RGI modes: each request step run alone many
//! times, in process, with no network, so callgrind and the allocation
//! counter see nothing else.
//!
//! Stages are cumulative: stage `n` runs steps `0..=n` for each iteration,
//! so the cost of step `n` is stage `n` less stage `n - 1`.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use http::header::{CONTENT_TYPE, HOST};
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode, Uri};
use hyper::body::Body as HttpBody;
use rgi::{Application, BoxError, Input, ResponseHead};
use rgi_async::AsyncApplication;

use crate::adapter::{
    AsyncBodyOf, ConnectionContext, Exchange, SyncBody, environ_from_parts, remove_decoded_framing,
};
use crate::apps::{HELLO_PATH, async_hello, sync_hello};

/// Which adapter's steps to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The synchronous application, inline.
    Sync,
    /// The asynchronous application.
    Async,
    /// The hello head alone: built (stage 0), then validated (stage 1), to
    /// show what validation costs inside the call step.
    Head,
}

/// The stages, in order; the first is the baseline every later one
/// includes.
pub const STAGES: [&str; 5] = [
    "request parts (baseline, not RGI)",
    "environ from hyper's parts",
    "ResponseState + call (head stored, validated)",
    "pull to the head (head sent to the sink)",
    "response + body pulled, finished, dropped",
];

/// The stages of [`Flavor::Head`].
pub const HEAD_STAGES: [&str; 2] = [
    "hello head built (baseline)",
    "call step, of which ResponseHead::validate",
];

/// Why a steps run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepsError {
    /// No such stage.
    #[error("stage {0} does not exist for this flavor")]
    NoSuchStage(usize),
    /// A step failed; the hello application never should.
    #[error("step failed: {0}")]
    Step(BoxError),
    /// The body did not end without waiting, as the hello body must.
    #[error("the hello body asked to wait")]
    Pending,
}

/// The request head hyper hands the adapter for the load generator's
/// request.
#[must_use]
pub fn request_parts(host: &HeaderValue) -> Parts {
    let mut request = Request::new(());
    *request.uri_mut() = Uri::from_static(HELLO_PATH);
    request.headers_mut().insert(HOST, host.clone());
    request.into_parts().0
}

/// Runs stage `stage` of `flavor` `iterations` times.
///
/// # Errors
///
/// See [`StepsError`].
pub fn run(flavor: Flavor, stage: usize, iterations: u64) -> Result<(), StepsError> {
    let stages = if flavor == Flavor::Head {
        HEAD_STAGES.len()
    } else {
        STAGES.len()
    };
    if stage >= stages {
        return Err(StepsError::NoSuchStage(stage));
    }
    let capabilities = (flavor == Flavor::Async).then(crate::adapter::connection_capabilities);
    let connection = ConnectionContext::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 50000)),
        capabilities,
    )
    .map_err(|err| StepsError::Step(err.into()))?;
    let host = HeaderValue::from_static("127.0.0.1:8080");
    match flavor {
        Flavor::Sync => {
            let app = sync_hello();
            for _ in 0..iterations {
                sync_once(&app, stage, &host, &connection)?;
            }
        }
        Flavor::Async => {
            let app = async_hello();
            for _ in 0..iterations {
                async_once(&app, stage, &host, &connection)?;
            }
        }
        Flavor::Head => {
            for _ in 0..iterations {
                head_once(stage)?;
            }
        }
    }
    Ok(())
}

fn head_once(stage: usize) -> Result<(), StepsError> {
    let head = black_box(
        ResponseHead::new(StatusCode::OK)
            .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain")),
    );
    if stage == 1 {
        let declared = head
            .validate()
            .map_err(|err| StepsError::Step(err.into()))?;
        black_box(declared);
    }
    Ok(())
}

fn sync_once<A: Application>(
    app: &A,
    stage: usize,
    host: &HeaderValue,
    connection: &ConnectionContext,
) -> Result<(), StepsError>
where
    A::Body: Unpin,
{
    let mut parts = black_box(request_parts(host));
    if stage == 0 {
        return Ok(());
    }
    // hyper's body of a GET is empty, as the load generator's requests are.
    remove_decoded_framing(&mut parts, true);
    let environ = environ_from_parts(parts, Input::empty(), connection)
        .map_err(|err| StepsError::Step(err.into()))?;
    let environ = black_box(environ);
    if stage == 1 {
        return Ok(());
    }
    let mut exchange = Exchange::new(environ.method());
    let body = exchange.call_sync(app, environ).map_err(StepsError::Step)?;
    let mut body = black_box(Some(body));
    if stage == 2 {
        return Ok(());
    }
    exchange.pull_head_sync(&mut body);
    if stage == 3 {
        black_box(&exchange);
        return Ok(());
    }
    let response = exchange.into_response(body.map(SyncBody));
    drain(response.into_body())
}

fn async_once<A: AsyncApplication>(
    app: &A,
    stage: usize,
    host: &HeaderValue,
    connection: &ConnectionContext,
) -> Result<(), StepsError>
where
    A::Body: Unpin,
{
    let mut parts = black_box(request_parts(host));
    if stage == 0 {
        return Ok(());
    }
    remove_decoded_framing(&mut parts, true);
    let environ = environ_from_parts(parts, Input::empty(), connection)
        .map_err(|err| StepsError::Step(err.into()))?;
    let environ = black_box(environ);
    if stage == 1 {
        return Ok(());
    }
    let mut exchange = Exchange::new(environ.method());
    let body = exchange
        .call_async(app, environ)
        .map_err(StepsError::Step)?;
    let mut body = black_box(Some(body));
    if stage == 2 {
        return Ok(());
    }
    let mut cx = Context::from_waker(Waker::noop());
    if exchange.poll_head_async(&mut cx, &mut body).is_pending() {
        return Err(StepsError::Pending);
    }
    if stage == 3 {
        black_box(&exchange);
        return Ok(());
    }
    let response = exchange.into_response(body.map(AsyncBodyOf));
    drain(response.into_body())
}

/// Polls a response body to its end as hyper would, frame by frame.
fn drain<B>(body: B) -> Result<(), StepsError>
where
    B: HttpBody<Error = BoxError> + Unpin,
{
    let mut body = body;
    let mut cx = Context::from_waker(Waker::noop());
    let _ = black_box(body.size_hint());
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(None) => return Ok(()),
            Poll::Ready(Some(Ok(frame))) => {
                black_box(frame);
                if body.is_end_stream() {
                    return Ok(());
                }
            }
            Poll::Ready(Some(Err(err))) => return Err(StepsError::Step(err)),
            Poll::Pending => return Err(StepsError::Pending),
        }
    }
}
