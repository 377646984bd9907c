//! Capabilities discovery and after-response tasks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rgi::{Environ, ServerInfo};
use rgi_async::{
    AfterError, AfterResponse, AfterResponseService, AfterTask, Capabilities, Offload, Runtime,
};
use support::{Queue, ThreadPerJob, block_on};

/// Keeps tasks to run when the test says the response is complete.
#[derive(Default, Clone)]
struct Later(Arc<Mutex<Vec<AfterTask>>>);

impl AfterResponseService for Later {
    fn spawn(&self, task: AfterTask) -> Result<(), AfterError> {
        self.0.lock().unwrap().push(task);
        Ok(())
    }
}

impl Later {
    fn complete_response(&self) {
        let tasks: Vec<AfterTask> = self.0.lock().unwrap().drain(..).collect();
        for task in tasks {
            task();
        }
    }
}

/// Refuses every task with `error`.
struct Refusing(AfterError);

impl AfterResponseService for Refusing {
    fn spawn(&self, _task: AfterTask) -> Result<(), AfterError> {
        Err(self.0.clone())
    }
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_synchronous_server_has_no_capabilities() {
    let environ = Environ::builder().build().unwrap();
    assert!(Capabilities::of(&environ).is_none());
}

#[test]
fn the_offload_lent_through_capabilities_is_the_servers() {
    let queue = Queue::default();
    let environ = Environ::builder()
        .extension(Capabilities::builder(Offload::new(queue.clone())).build())
        .build()
        .unwrap();
    let capabilities = Capabilities::of(&environ).unwrap();
    let future = capabilities.offload().run(|| 5);
    assert_eq!(queue.len(), 1);
    queue.run_all();
    assert_eq!(block_on(future), Ok(5));
}

#[test]
fn server_wide_capabilities_are_found_through_the_server_info() {
    let queue = Queue::default();
    let server = Arc::new(
        ServerInfo::new("localhost", 8080)
            .unwrap()
            .with_extension(Capabilities::builder(Offload::new(queue.clone())).build()),
    );
    let environ = Environ::builder()
        .server_info(Arc::clone(&server))
        .build()
        .unwrap();
    assert!(environ.extensions().is_empty());
    let capabilities = Capabilities::of(&environ).unwrap();
    let future = capabilities.offload().run(|| 8);
    assert_eq!(queue.len(), 1);
    queue.run_all();
    assert_eq!(block_on(future), Ok(8));
}

#[test]
fn a_per_request_value_overrides_the_server_wide_one() {
    let server_queue = Queue::default();
    let request_queue = Queue::default();
    let server = Arc::new(
        ServerInfo::new("localhost", 8080).unwrap().with_extension(
            Capabilities::builder(Offload::new(server_queue.clone()))
                .runtime(Runtime::Tokio)
                .build(),
        ),
    );
    let environ = Environ::builder()
        .server_info(server)
        .extension(Capabilities::builder(Offload::new(request_queue.clone())).build())
        .build()
        .unwrap();

    let capabilities = Capabilities::of(&environ).unwrap();
    assert_eq!(
        capabilities.runtime(),
        None,
        "the server-wide value was used"
    );
    let future = capabilities.offload().run(|| 9);
    assert_eq!((server_queue.len(), request_queue.len()), (0, 1));
    request_queue.run_all();
    assert_eq!(block_on(future), Ok(9));

    // Removing the request's own value uncovers the server's again.
    let mut environ = environ;
    environ.extensions_mut().remove::<Capabilities>();
    let capabilities = Capabilities::of(&environ).unwrap();
    assert_eq!(capabilities.runtime(), Some(Runtime::Tokio));
}

#[test]
fn server_wide_values_of_other_types_are_not_capabilities() {
    #[derive(Clone)]
    struct Deployment;
    let server = Arc::new(
        ServerInfo::new("localhost", 80)
            .unwrap()
            .with_extension(Deployment),
    );
    let environ = Environ::builder().server_info(server).build().unwrap();
    assert!(environ.extension::<Deployment>().is_some());
    assert!(Capabilities::of(&environ).is_none());
}

#[test]
fn optional_capabilities_are_absent_unless_given() {
    let capabilities = Capabilities::builder(Offload::new(ThreadPerJob)).build();
    assert!(capabilities.after_response().is_none());
    #[cfg(any(unix, windows))]
    assert!(capabilities.readiness().is_none());
}

#[test]
fn after_response_tasks_run_when_the_server_completes_the_response() {
    let later = Later::default();
    let environ = Environ::builder()
        .extension(
            Capabilities::builder(Offload::new(ThreadPerJob))
                .after_response(AfterResponse::new(later.clone()))
                .build(),
        )
        .build()
        .unwrap();
    let after = Capabilities::of(&environ)
        .unwrap()
        .after_response()
        .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    after
        .spawn(move || flag.store(true, Ordering::SeqCst))
        .unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    later.complete_response();
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn a_rejected_task_is_reported_with_the_limit_and_dropped_unrun() {
    let after = AfterResponse::new(Refusing(AfterError::Rejected { limit: 16 }));
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = DropFlag(Arc::clone(&dropped));
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let err = after
        .spawn(move || {
            let _guard = guard;
            flag.store(true, Ordering::SeqCst);
        })
        .unwrap_err();
    assert_eq!(err, AfterError::Rejected { limit: 16 });
    assert_eq!(
        err.to_string(),
        "after-response task rejected: 16 tasks already queued"
    );
    assert!(dropped.load(Ordering::SeqCst));
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn a_task_offered_during_shutdown_is_refused() {
    let shared: Arc<dyn AfterResponseService> = Arc::new(Refusing(AfterError::ShutDown));
    let after = AfterResponse::from_arc(shared);
    assert_eq!(after.spawn(|| ()), Err(AfterError::ShutDown));
    assert_eq!(format!("{after:?}"), "AfterResponse { .. }");
}

#[test]
fn capabilities_are_cloneable_and_debug_printable() {
    let capabilities = Capabilities::builder(Offload::new(ThreadPerJob))
        .after_response(AfterResponse::new(Later::default()))
        .build();
    let clone = capabilities.clone();
    assert!(clone.after_response().is_some());
    let debug = format!("{clone:?}");
    assert!(
        debug.starts_with("Capabilities { spec_version: SpecVersion { major: 1, minor: 2 }"),
        "{debug}"
    );
    assert!(debug.contains("offload: Offload { .. }"), "{debug}");
}

#[test]
fn the_declared_spec_version_defaults_to_this_crates_and_can_be_lowered() {
    let capabilities = Capabilities::builder(Offload::new(ThreadPerJob)).build();
    assert_eq!(capabilities.spec_version(), rgi_async::SPEC_VERSION);
    let older = rgi::SpecVersion::new(1, 0);
    let capabilities = Capabilities::builder(Offload::new(ThreadPerJob))
        .spec_version(older)
        .build();
    assert_eq!(capabilities.spec_version(), older);
}

/// An application bound to tokio: it asks before it would touch the
/// runtime, and refuses with the typed error instead of panicking.
fn tokio_bound_app() -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(|environ: Environ, start| {
        let capabilities = Capabilities::of(&environ).ok_or("needs an asynchronous server")?;
        capabilities.require_runtime(rgi_async::Runtime::Tokio)?;
        start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
        Ok(bytes::Bytes::from_static(b"on tokio"))
    })
}

#[test]
fn runtime_context_is_refused_typed_when_not_declared_or_different() {
    use rgi_async::{Runtime, RuntimeError};
    let offload = || Offload::new(ThreadPerJob);
    let none = Capabilities::builder(offload()).build();
    assert_eq!(none.runtime(), None);
    assert_eq!(
        none.require_runtime(Runtime::Tokio),
        Err(RuntimeError::NotDeclared {
            wanted: Runtime::Tokio
        })
    );
    let other = Capabilities::builder(offload())
        .runtime(Runtime::Other("glommio"))
        .build();
    assert_eq!(
        other.require_runtime(Runtime::Tokio),
        Err(RuntimeError::Different {
            wanted: Runtime::Tokio,
            declared: Runtime::Other("glommio")
        })
    );
    assert_eq!(other.require_runtime(Runtime::Other("glommio")), Ok(()));
    let tokio = Capabilities::builder(offload())
        .runtime(Runtime::Tokio)
        .build();
    assert_eq!(tokio.runtime(), Some(Runtime::Tokio));
    assert_eq!(tokio.require_runtime(Runtime::Tokio), Ok(()));
}

#[test]
fn runtime_refusal_reaches_the_server_as_an_error_of_call() {
    let environ =
        |capabilities: Capabilities| Environ::builder().extension(capabilities).build().unwrap();
    let plain = Capabilities::builder(Offload::new(ThreadPerJob)).build();
    let Err(err) = support::serve(&tokio_bound_app(), environ(plain)) else {
        panic!("served without the runtime it needs");
    };
    assert!(
        matches!(
            err.downcast_ref::<rgi_async::RuntimeError>(),
            Some(rgi_async::RuntimeError::NotDeclared { .. })
        ),
        "{err}"
    );
    let declared = Capabilities::builder(Offload::new(ThreadPerJob))
        .runtime(rgi_async::Runtime::Tokio)
        .build();
    let served = support::serve(&tokio_bound_app(), environ(declared)).unwrap();
    assert_eq!(served.wire.body(), b"on tokio");
}
