//! No extra allocation per request (issue 15, item 1): a request through
//! a `Wrapped` middleware that observes or even transforms chunk for chunk
//! allocates exactly what the bare application does, on both stacks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../rgi/tests/counting_alloc/mod.rs"]
mod counting_alloc;

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http::StatusCode;
use rgi::{Application, Body, Environ, ResponseHead, ResponseSink, ResponseState};
use rgi_async::{AsyncApplication, AsyncBody, Step};
use rgi_middleware::{BodyAccess, Emit, Incoming, Middleware, Outcome};

use counting_alloc::allocations_during;

/// A transport that keeps nothing.
struct Discard;

impl ResponseSink for Discard {
    fn send_head(&mut self, _head: ResponseHead) -> std::io::Result<()> {
        Ok(())
    }

    fn send_data(&mut self, _data: Bytes) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts bytes in its state, passes on a trailer hook that adds nothing,
/// and totals at the drop.
struct Meter {
    access: BodyAccess,
    total: AtomicU64,
}

impl Middleware for Meter {
    type State = u64;

    fn on_request(&self, _request: &mut Incoming<'_>) -> u64 {
        0
    }

    fn body_access(&self, _state: &u64) -> BodyAccess {
        self.access
    }

    fn on_chunk(&self, count: &mut u64, chunk: Bytes, out: &mut Emit<'_>) {
        *count += chunk.len() as u64;
        out.push(chunk);
    }

    fn on_trailers(&self, _count: &mut u64, _fields: &mut HeaderMap) {}

    fn on_drop(&self, count: u64, _outcome: Outcome) {
        self.total.fetch_add(count, Ordering::Relaxed);
    }
}

const PARTS: [Bytes; 3] = [
    Bytes::from_static(b"one "),
    Bytes::from_static(b"two "),
    Bytes::from_static(b"three"),
];

fn handler(_environ: Environ, start: &mut rgi::StartResponse<'_>) -> Result<Chunks, rgi::BoxError> {
    start.start(ResponseHead::new(StatusCode::OK))?;
    Ok(Chunks(0))
}

/// The three parts, without allocating: both kinds of body.
struct Chunks(usize);

impl Body for Chunks {
    fn next_chunk(
        &mut self,
        _start: &mut rgi::StartResponse<'_>,
    ) -> Option<Result<Bytes, rgi::BoxError>> {
        let part = PARTS.get(self.0)?.clone();
        self.0 += 1;
        Some(Ok(part))
    }
}

impl AsyncBody for Chunks {
    fn poll_step(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut rgi::StartResponse<'_>,
    ) -> Poll<Option<Result<Step, rgi::BoxError>>> {
        Poll::Ready(self.get_mut().next_chunk(start).map(|r| r.map(Step::Chunk)))
    }
}

fn serve_sync<A: Application>(app: &A, environ: Environ) {
    let mut state = ResponseState::new(environ.method());
    let mut sink = Discard;
    let mut body = app
        .call(environ, &mut state.start_response(&mut sink))
        .unwrap();
    while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut sink)) {
        state.send_chunk(&mut sink, chunk.unwrap()).unwrap();
    }
    drop(body);
    state.finish(&mut sink).unwrap();
}

fn serve_async<A: AsyncApplication>(app: &A, environ: Environ) {
    let mut state = ResponseState::new(environ.method());
    let mut sink = Discard;
    let mut cx = Context::from_waker(Waker::noop());
    let body = app
        .call(environ, &mut state.start_response(&mut sink))
        .unwrap();
    {
        // Pinned on the stack, dropped at the end of this block.
        let mut body = pin!(body);
        loop {
            match body
                .as_mut()
                .poll_step(&mut cx, &mut state.start_response(&mut sink))
            {
                Poll::Ready(Some(Ok(Step::Chunk(chunk)))) => {
                    state.send_chunk(&mut sink, chunk).unwrap();
                }
                Poll::Ready(None) => break,
                _ => panic!("unexpected step"),
            }
        }
    }
    state.finish(&mut sink).unwrap();
}

/// Allocations of `requests` requests, the environs built beforehand.
fn allocations(requests: usize, serve: impl Fn(Environ)) -> usize {
    let environs: Vec<Environ> = (0..requests)
        .map(|_| Environ::builder().build().unwrap())
        .collect();
    // One warm-up request, outside the count, for lazily built statics.
    serve(Environ::builder().build().unwrap());
    allocations_during(|| environs.into_iter().for_each(&serve)).0
}

#[test]
fn no_extra_allocation_per_request() {
    const REQUESTS: usize = 50;
    let bare_sync = allocations(REQUESTS, |e| serve_sync(&rgi::from_fn(handler), e));
    let bare_async = allocations(REQUESTS, |e| serve_async(&rgi_async::from_fn(handler), e));
    for access in [
        BodyAccess::PassThrough,
        BodyAccess::Observe,
        BodyAccess::Transform,
    ] {
        let meter = || Meter {
            access,
            total: AtomicU64::new(0),
        };
        let sync_app = meter().wrap(rgi::from_fn(handler));
        let wrapped_sync = allocations(REQUESTS, |e| serve_sync(&sync_app, e));
        assert_eq!(wrapped_sync, bare_sync, "{access:?}, synchronous");

        let async_app = meter().wrap(rgi_async::from_fn(handler));
        let wrapped_async = allocations(REQUESTS, |e| serve_async(&async_app, e));
        assert_eq!(wrapped_async, bare_async, "{access:?}, asynchronous");

        if access != BodyAccess::PassThrough {
            // Proof the hooks ran: every byte of every request was counted.
            let per_request = 13;
            let served = (REQUESTS as u64 + 1) * per_request;
            assert_eq!(sync_app.middleware().total.load(Ordering::Relaxed), served);
            assert_eq!(async_app.middleware().total.load(Ordering::Relaxed), served);
        }
    }
}
