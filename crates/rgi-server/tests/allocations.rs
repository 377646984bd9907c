//! The connection layer adds no allocation per request: the same keep-alive
//! client against bare hyper (same hyper settings) and against `rgi-server`
//! serving the same tower service, allocations counted process-wide.
//!
//! The workspace's per-thread counting allocator (crates/rgi/tests) cannot
//! see a multi-thread server's worker threads, hence this process-wide one.

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rgi_server::Server;
use tokio::net::TcpStream;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds `GlobalAlloc`'s contract; the only addition is an atomic counter
// increment, which neither allocates nor touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` came from `System` through `alloc` above.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `pointer` came from `System`; the rest is the caller's
        // contract, passed through.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The same answer from both servers, with no allocation of its own.
#[derive(Clone)]
struct Hello;

static HELLO: &[u8] = b"hello";

impl tower_service::Service<Request<Incoming>> for Hello {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<Incoming>) -> Self::Future {
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(HELLO)))))
    }
}

/// Allocations per request over `count` keep-alive requests (after a
/// warm-up on the same connection), client included.
fn allocations_per_request(address: SocketAddr, count: usize) -> f64 {
    run(async move {
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let exchange = async |sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>| {
            let response = sender.send_request(get("/")).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], HELLO);
        };
        for _ in 0..200 {
            exchange(&mut sender).await;
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..count {
            exchange(&mut sender).await;
        }
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        (after - before) as f64 / count as f64
    })
}

#[test]
fn no_allocation_per_request_beyond_bare_hyper() {
    const COUNT: usize = 2_000;
    let (_runtime, bare) = common::bare_hyper(|| Hello);
    let baseline = allocations_per_request(bare, COUNT);
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(1)
        .serve(|_info: Arc<rgi::ConnectionInfo>| Hello)
        .unwrap();
    let ours = allocations_per_request(addr(&server), COUNT);
    eprintln!(
        "allocations per request, client included: bare hyper {baseline:.2}, rgi-server {ours:.2}"
    );
    assert!(
        ours <= baseline + 0.05,
        "bare hyper {baseline:.2}, rgi-server {ours:.2}"
    );
}
