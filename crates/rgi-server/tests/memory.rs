//! What a parked connection costs: 100 HTTP/1.1 connections, each with
//! one request its service holds without answering (a long-poll), against
//! bare hyper with the same settings serving the same service; the heap
//! (live bytes, counted process-wide) per connection must stay within
//! issue 10's 1.1x of bare hyper's.
//!
//! The clients are blocking standard-library sockets, which allocate
//! nothing, so the count is the server's alone.

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::addr;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use rgi_server::Server;

static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds `GlobalAlloc`'s contract; the only addition is an atomic counter
// update, which neither allocates nor touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `pointer` came from `System` through `alloc` above.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `pointer` came from `System`; the rest is the caller's
        // contract, passed through.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Requests parked in [`Park`] right now, both servers together.
static PARKED: AtomicUsize = AtomicUsize::new(0);

/// Holds every request without answering it, as a long-poll handler
/// holds its request while it waits.
#[derive(Clone)]
struct Park;

/// The response future of [`Park`]: never ready, holding the request.
struct Parked {
    _request: Request<Incoming>,
}

impl Drop for Parked {
    fn drop(&mut self) {
        PARKED.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Future for Parked {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Pending
    }
}

impl tower_service::Service<Request<Incoming>> for Park {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Parked;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Parked {
        PARKED.fetch_add(1, Ordering::Relaxed);
        Parked { _request: request }
    }
}

/// Waits until `count` requests are parked.
fn wait_parked(count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while PARKED.load(Ordering::Relaxed) < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} requests parked",
            PARKED.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let the server finish what it does after calling the service (its
    // next read, which finds nothing).
    std::thread::sleep(Duration::from_millis(200));
}

/// Live heap bytes per connection for `count` connections to `address`,
/// each with one request parked; the connections close at the end.
fn heap_per_parked_connection(address: SocketAddr, count: usize) -> f64 {
    let request = format!("GET /poll HTTP/1.1\r\nhost: {address}\r\n\r\n");
    // One connection first, so that what the server sets up once (its
    // first connection's lazy state) is not counted.
    let already = PARKED.load(Ordering::Relaxed) + 1;
    let mut first = TcpStream::connect(address).unwrap();
    first.write_all(request.as_bytes()).unwrap();
    wait_parked(already);
    let before = LIVE.load(Ordering::Relaxed);
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        streams.push(stream);
    }
    wait_parked(already + count);
    let after = LIVE.load(Ordering::Relaxed);
    drop(streams);
    drop(first);
    after.saturating_sub(before) as f64 / count as f64
}

#[test]
fn a_parked_connection_costs_at_most_a_tenth_more_than_bare_hypers() {
    // 100: a few hundred descriptors at most, within any default limit.
    const COUNT: usize = 100;
    let (runtime, bare) = common::bare_hyper(|| Park);
    let baseline = heap_per_parked_connection(bare, COUNT);
    drop(runtime);
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(1)
        .serve(|_info: Arc<rgi::ConnectionInfo>| Park)
        .unwrap();
    let ours = heap_per_parked_connection(addr(&server), COUNT);
    eprintln!("heap per parked connection: bare hyper {baseline:.0} B, rgi-server {ours:.0} B");
    assert!(
        ours <= baseline * 1.1,
        "bare hyper {baseline:.0} B, rgi-server {ours:.0} B per parked connection"
    );
}
