//! Allocations per request on the inline paths, counted on this thread: a
//! guard on the per-request cost the benchmark measures against bare hyper.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a failed unwrap or a pending inline response is the test's failure"
)]

#[path = "../../rgi/tests/counting_alloc/mod.rs"]
mod counting_alloc;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use counting_alloc::allocations_during;
use http::StatusCode;
use http_body::Body as _;
use http_body_util::Empty;
use rgi::{ConnectionInfo, Hints, InputUse, ResponseHead, ServerInfo};
use rgi_tower::{AsyncService, Host, PoolConfig, ResponseBody};
use tower_service::Service;

fn host() -> Host {
    Host::builder(ServerInfo::new("127.0.0.1", 80).unwrap())
        .pool(PoolConfig {
            threads: 1,
            queue: 1,
            per_connection: 1,
        })
        .build()
}

/// A request as hyper hands it over (built outside the count: hyper's
/// parsing is hyper's cost, the same with or without this crate).
fn request() -> http::Request<Empty<Bytes>> {
    http::Request::get("/hello").body(Empty::new()).unwrap()
}

/// Calls the service, polls its future and its whole body once each
/// (every path here is ready at once), and returns the status.
fn serve_once<S>(service: &mut S, request: http::Request<Empty<Bytes>>) -> StatusCode
where
    S: Service<http::Request<Empty<Bytes>>, Response = http::Response<ResponseBody>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let future = pin!(service.call(request));
    let Poll::Ready(response) = future.poll(&mut cx) else {
        panic!("an inline response is ready at once");
    };
    let response = response.unwrap();
    let status = response.status();
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        frame.unwrap();
    }
    status
}

/// The most allocations one inline request may cost, the same as the
/// benchmark's bare adapter (issue 9): the one `Environ::from_parts` makes,
/// the boxed response state (which holds the application's body too), and
/// the response's header map (its index table and its entries, once the
/// state writes Content-Length into it).
const INLINE_BUDGET: usize = 4;

#[test]
fn an_inline_synchronous_request_allocates_within_budget() {
    let app = rgi::from_fn(|_environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from_static(b"hello"))
    })
    .with_hints(
        Hints::default()
            .with_input(InputUse::None)
            .with_may_block(false),
    );
    let service = rgi_tower::SyncService::new(app, host());
    let mut connection = service.connection(Arc::new(ConnectionInfo::new()));
    // The first request warms up what is lazily set up once.
    assert_eq!(serve_once(&mut connection, request()), StatusCode::OK);
    let request = request();
    let (allocations, status) = allocations_during(|| serve_once(&mut connection, request));
    assert_eq!(status, StatusCode::OK);
    eprintln!("inline synchronous hello: {allocations} allocations");
    assert!(allocations <= INLINE_BUDGET, "{allocations} allocations");
}

#[test]
fn an_asynchronous_request_allocates_within_budget() {
    let app = rgi_async::from_fn(|_environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from_static(b"hello"))
    });
    let service = AsyncService::new(app, host());
    let mut connection = service.connection(Arc::new(ConnectionInfo::new()));
    assert_eq!(serve_once(&mut connection, request()), StatusCode::OK);
    let request = request();
    let (allocations, status) = allocations_during(|| serve_once(&mut connection, request));
    assert_eq!(status, StatusCode::OK);
    eprintln!("asynchronous hello: {allocations} allocations");
    assert!(allocations <= INLINE_BUDGET, "{allocations} allocations");
}
