//! Capabilities discovery and after-response tasks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rgi::Environ;
use rgi_async::{
    AfterError, AfterResponse, AfterResponseService, AfterTask, Capabilities, Offload,
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
        debug.starts_with("Capabilities { spec_version: SpecVersion { major: 1, minor: 1 }"),
        "{debug}"
    );
    assert!(debug.contains("offload: Offload { .. }"), "{debug}");
}

#[test]
fn the_declared_spec_version_defaults_to_this_crates_and_can_be_lowered() {
    let capabilities = Capabilities::builder(Offload::new(ThreadPerJob)).build();
    assert_eq!(capabilities.spec_version(), rgi_async::SPEC_VERSION);
    let older = rgi::SpecVersion { major: 1, minor: 0 };
    let capabilities = Capabilities::builder(Offload::new(ThreadPerJob))
        .spec_version(older)
        .build();
    assert_eq!(capabilities.spec_version(), older);
}
