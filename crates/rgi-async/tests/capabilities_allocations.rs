#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What reaching the capabilities costs a request in heap allocations
//! (RGIA-CAP-1), counted exactly by a global allocator that forwards to the
//! system's.
//!
//! The counter is per thread, so tests running in parallel do not disturb
//! each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderValue, Method, Request, Uri};
use rgi::{ConnectionInfo, Environ, Input, ServerInfo};
use rgi_async::{Capabilities, Job, Offload, OffloadError, OffloadService, Runtime};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds `GlobalAlloc`'s contract; the only addition is a thread-local
// counter increment, which neither allocates (a `const` thread-local with a
// `Cell` needs no lazy initialisation) nor touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` came from `System` through `alloc` above.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: `pointer` came from `System`; the rest is the caller's
        // contract, passed through.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during<T>(work: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = work();
    let after = ALLOCATIONS.with(Cell::get);
    (after - before, result)
}

/// Runs nothing: these tests only look the handle up.
struct Idle;

impl OffloadService for Idle {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        drop(job);
        Err(OffloadError::ShutDown)
    }
}

/// `GET /hello` as an HTTP layer hands it over, built before counting.
fn parsed_head() -> Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = Method::GET;
    parts.uri = Uri::from_static("/hello");
    parts
        .headers
        .append("host", HeaderValue::from_static("example.org"));
    parts
}

fn server_with_capabilities() -> Arc<ServerInfo> {
    let capabilities = Capabilities::builder(Offload::new(Idle))
        .runtime(Runtime::Tokio)
        .build();
    Arc::new(
        ServerInfo::new("example.org", 8080)
            .unwrap()
            .with_extension(capabilities),
    )
}

#[test]
fn server_wide_capabilities_cost_a_request_no_allocation() {
    let server = server_with_capabilities();
    let connection = Arc::new(ConnectionInfo::new());
    let parts = parsed_head();

    let (allocations, runtime) = allocations_during(|| {
        let environ = Environ::from_parts(parts, Input::empty(), &server, &connection).unwrap();
        let runtime = Capabilities::of(&environ).map(Capabilities::runtime);
        drop(environ);
        runtime
    });

    assert_eq!(allocations, 0);
    assert_eq!(runtime, Some(Some(Runtime::Tokio)));
}

#[test]
fn a_per_request_override_costs_the_extension_map() {
    // The contrast that makes the test above meaningful: the same lookup
    // through the request's own extensions allocates the map and the value.
    let server = server_with_capabilities();
    let connection = Arc::new(ConnectionInfo::new());
    let per_request = Capabilities::builder(Offload::new(Idle)).build();
    let parts = parsed_head();

    let (allocations, runtime) = allocations_during(|| {
        let mut parts = parts;
        parts.extensions.insert(per_request);
        let environ = Environ::from_parts(parts, Input::empty(), &server, &connection).unwrap();
        let runtime = Capabilities::of(&environ).map(Capabilities::runtime);
        drop(environ);
        runtime
    });

    assert!(allocations >= 2, "{allocations} allocations");
    assert_eq!(runtime, Some(None));
}
