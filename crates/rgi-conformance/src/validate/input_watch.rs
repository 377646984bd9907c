//! What the request's shared state keeps for the input checks, kept apart
//! from them so that the state depends on plain data only and the checks
//! depend on the state, one way.

use std::cell::Cell;

use http::StatusCode;

/// What the validator remembers about the request's input across the
/// request, beyond what one read shows.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// The request carries `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
    /// The request declared its body's length, so a size limit can be
    /// applied before reading.
    pub(crate) length_declared: bool,
    /// A read reached the server's input before the response was started.
    pub(crate) read_before_start: bool,
}

impl Watch {
    /// Whether starting a response with `status` refuses an
    /// `Expect: 100-continue` request, for a reason its head already
    /// showed, after the application made the client send the body
    /// (`RGI-INPUT-25`).
    pub(crate) fn refuses_after_reading(&self, status: StatusCode) -> bool {
        self.expect_continue && self.read_before_start && self.refuses_on_head(status)
    }

    /// Statuses that refuse a request for what its head shows
    /// (credentials, method, media type, missing length), so the body was
    /// not needed to decide them. 413 counts only when the length was
    /// declared: without it, reading is how the application learns it.
    fn refuses_on_head(&self, status: StatusCode) -> bool {
        matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::PROXY_AUTHENTICATION_REQUIRED
                | StatusCode::LENGTH_REQUIRED
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
        ) || (status == StatusCode::PAYLOAD_TOO_LARGE && self.length_declared)
    }
}

thread_local! {
    /// How many validators' applications are running on this thread (a
    /// call, a pull or a continuation each).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Marks the current thread as running a validator's application until
/// dropped.
#[derive(Debug)]
pub(crate) struct AppScope(());

impl AppScope {
    /// Enters the scope of one call, pull or continuation.
    pub(crate) fn enter() -> Self {
        DEPTH.with(|depth| depth.set(depth.get().saturating_add(1)));
        AppScope(())
    }
}

impl Drop for AppScope {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Whether a validator's application is running on this thread, so that
/// whoever calls a validator now is a middleware inside it.
pub(crate) fn inside_another_validator() -> bool {
    DEPTH.with(Cell::get) > 0
}
