//! What the capabilities cost a request in allocations (counted per
//! thread by the workspace's counting allocator): nothing when a request
//! needs no capabilities of its own, a few when it gets after-response
//! tasks or an upgrade (spec/rgi-async.md §4, RGIA-CAP-1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../rgi/tests/counting_alloc/mod.rs"]
mod counting_alloc;

use std::sync::Arc;

use counting_alloc::allocations_during;
use rgi::{ConnectionInfo, Environ, Input, ServerInfo};
use rgi_async::{Capabilities, Offload};
use rgi_tower::caps::{HostCapabilities, TokioContext};

struct Nowhere;

impl rgi_async::OffloadService for Nowhere {
    fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
        drop(job);
        Err(rgi_async::OffloadError::ShutDown)
    }
}

fn setup(after_response: bool) -> (tokio::runtime::Runtime, HostCapabilities, Capabilities) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let context = TokioContext::new(rt.handle().clone()).unwrap();
    let builder = HostCapabilities::builder(context);
    let builder = if after_response {
        builder
    } else {
        builder.after_response(None)
    };
    let host = builder.build();
    let server_wide = host.server_wide(Offload::new(Nowhere));
    (rt, host, server_wide)
}

fn request() -> http::Request<()> {
    http::Request::get("/").body(()).unwrap()
}

#[test]
fn a_request_without_capabilities_of_its_own_costs_nothing() {
    let (_rt, host, server_wide) = setup(false);
    let server = Arc::new(
        ServerInfo::new("127.0.0.1", 80)
            .unwrap()
            .with_extension(server_wide.clone()),
    );
    let connection = Arc::new(ConnectionInfo::new());
    let mut plain = request();
    let (count, per_request) = allocations_during(|| host.for_request(&server_wide, &mut plain));
    assert_eq!(count, 0);
    assert!(per_request.upgrade().is_none());
    let (parts, ()) = plain.into_parts();
    let environ = Environ::from_parts(parts, Input::empty(), &server, &connection).unwrap();
    let (count, capabilities) =
        allocations_during(|| Capabilities::of(&environ).map(|found| found.readiness().is_some()));
    assert_eq!(count, 0);
    assert_eq!(capabilities, Some(true));
    let (count, ()) = allocations_during(|| per_request.complete());
    assert_eq!(count, 0);
}

#[test]
fn after_response_tasks_cost_a_request_a_few_allocations() {
    let (_rt, host, server_wide) = setup(true);
    // Once, so that lazily built state of the allocator or the runtime is
    // not counted against the request.
    host.for_request(&server_wide, &mut request()).complete();
    let mut with_tasks = request();
    let (count, per_request) =
        allocations_during(|| host.for_request(&server_wide, &mut with_tasks));
    eprintln!("for_request with after-response tasks: {count} allocations");
    // The request's task list, the extension map and its table, the boxed
    // `Capabilities`: a handful, never a number that grows with anything.
    assert!((1..=6).contains(&count), "{count} allocations");
    let (count, ()) = allocations_during(|| per_request.complete());
    assert_eq!(count, 0, "completing a request without tasks");
}

#[cfg(unix)]
#[test]
fn a_parked_readiness_wait_costs_a_few_allocations() {
    use std::task::{Context, Waker};
    use std::time::Duration;

    use rgi_async::{Interest, Readiness};
    use rgi_tower::caps::TokioReadiness;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let readiness = Readiness::new(TokioReadiness::new(rt.handle().clone()).unwrap());
    let (quiet, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    for limit in [None, Some(Duration::from_secs(60))] {
        // Warm-up: tokio's registration slab and timer wheel grow once.
        let mut warm = readiness.wait(&quiet, Interest::READABLE, limit);
        assert!(warm.as_mut().poll(&mut cx).is_pending());
        drop(warm);
        let (count, parked) = allocations_during(|| {
            let mut wait = readiness.wait(&quiet, Interest::READABLE, limit);
            assert!(wait.as_mut().poll(&mut cx).is_pending());
            wait
        });
        let bytes = std::mem::size_of_val(&*parked);
        eprintln!(
            "a parked wait with timeout {limit:?}: {count} allocations, a future of {bytes} bytes"
        );
        // Well inside the 24 KiB a parked connection may cost in all.
        assert!(bytes < 2048, "{bytes} bytes");
        // The boxed future and the reactor's registration; nothing that
        // grows with time or with the number of waits.
        assert!((1..=3).contains(&count), "{count} allocations");
        drop(parked);
    }
}

#[test]
fn capabilities_that_could_never_work_are_left_out() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let context = TokioContext::new(rt.handle().clone()).unwrap();
    let builder =
        HostCapabilities::builder(context).after_response(Some(rgi_tower::caps::AfterConfig {
            max_tasks: 0,
            workers: 1,
        }));
    #[cfg(unix)]
    let builder = builder.readiness(Some(0));
    let host = builder.build();
    assert!(host.after_response().is_none());
    let server_wide = host.server_wide(Offload::new(Nowhere));
    #[cfg(unix)]
    assert!(host.readiness().is_none() && server_wide.readiness().is_none());
    let mut plain = request();
    let per_request = host.for_request(&server_wide, &mut plain);
    assert!(plain.extensions().get::<Capabilities>().is_none());
    per_request.complete();
}
