#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What reaching the capabilities costs a request in heap allocations
//! (RGIA-CAP-1), counted exactly by a global allocator that forwards to the
//! system's.

use std::sync::Arc;

use http::request::Parts;
use http::{HeaderValue, Method, Request, Uri};
use rgi::{ConnectionInfo, Environ, Input, ServerInfo};
use rgi_async::{Capabilities, Job, Offload, OffloadError, OffloadService, Runtime};

#[path = "../../rgi/tests/counting_alloc/mod.rs"]
mod counting_alloc;

use counting_alloc::allocations_during;

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
