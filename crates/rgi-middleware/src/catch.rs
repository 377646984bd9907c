//! [`CatchErrors`]: errors and panics of the inner application become a
//! `500` before the head, an abnormal end after it (issue 15, item 4).

use std::any::Any;
use std::fmt::{self, Write as _};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use rgi::{
    Application, Body, BoxError, Environ, FileBody, Hints, ResponseHead, StartResponse, Startup,
};
use rgi_async::{AsyncApplication, AsyncBody, Step, SyncSwitch};

/// A panic of the inner application, caught and turned into an error.
#[derive(Debug, thiserror::Error)]
#[error("the application panicked: {message}")]
pub struct Panicked {
    message: String,
}

impl Panicked {
    fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| String::from("a panic payload that is not a string"));
        Panicked { message }
    }

    /// The panic's message (or a note that its payload was not text).
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Catches the inner application's errors and panics, in `call`, in every
/// pull or poll, and in a switch continuation and its body.
///
/// - **Before the head is sent** the failure is logged (`tracing`, level
///   error) and the response replaced with a `500 Internal Server Error`
///   through [`StartResponse::replace`] (`RGI-MW-10`), a plain-text page
///   that says nothing about the failure, unless the
///   [debug page](Self::with_debug_page) is on (development only:
///   `RGI-FAIL-4` forbids showing details otherwise). A failure that is
///   the client's (a malformed, too large or stalled request body,
///   [`rgi::client_body_error`]) is passed on instead, for the server to
///   answer `400`, `413` or `408` and close the connection (`RGI-FAIL-10`).
/// - **After the head is sent** the failure is logged and passed on, a
///   panic as a [`Panicked`] error, so the server ends the response
///   abnormally (`RGI-MW-9`, `RGI-FAIL-5`); nothing is appended to the
///   body (`RGI-FAIL-6`).
///
/// Either way the failed inner body is dropped at once, its own panic
/// while dropping caught too. Start-up, shut-down and hints are forwarded.
///
/// A panic is caught where it happens, so the process's panic hook runs
/// there first: for an asynchronous application that is the server's
/// event loop, and a hook that captures a backtrace (the default one with
/// `RUST_BACKTRACE` set) holds the loop for as long as that takes.
///
/// # Examples
///
/// ```
/// use http::StatusCode;
/// use rgi_conformance::client::TestClient;
/// use rgi_middleware::CatchErrors;
///
/// let app = CatchErrors::new(rgi::from_fn(|_environ, _start| -> Result<rgi::Empty, rgi::BoxError> {
///     Err("the database is down".into())
/// }))
/// .with_debug_page(true);
/// let response = TestClient::new(app).get("/")?;
/// assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
/// assert!(response.text().contains("the database is down"));
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
#[derive(Clone, Debug)]
pub struct CatchErrors<A> {
    app: A,
    debug_page: bool,
}

impl<A> CatchErrors<A> {
    /// `app` with its failures caught; the debug page is off.
    pub fn new(app: A) -> Self {
        CatchErrors {
            app,
            debug_page: false,
        }
    }

    /// With `on`, the `500` page shows the error and its sources: for
    /// development only, never where clients are untrusted (`RGI-FAIL-4`).
    #[must_use]
    pub fn with_debug_page(mut self, on: bool) -> Self {
        self.debug_page = on;
        self
    }

    /// The wrapped application.
    #[must_use]
    pub fn get_ref(&self) -> &A {
        &self.app
    }

    fn call_with<B>(
        &self,
        start: &mut StartResponse<'_>,
        call: impl FnOnce(&mut StartResponse<'_>) -> Result<B, BoxError>,
    ) -> Result<CatchBody<B>, BoxError> {
        match catching(|| call(start)) {
            Ok(inner) => Ok(CatchBody::new(inner, self.debug_page)),
            Err(err) => recover(start, err, self.debug_page).map(CatchBody::page),
        }
    }
}

impl<A: Application> Application for CatchErrors<A> {
    type Body = CatchBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        self.call_with(start, |start| self.app.call(environ, start))
    }

    fn hints(&self) -> Hints {
        self.app.hints()
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.app.startup(startup)
    }

    fn shutdown(&self) {
        self.app.shutdown();
    }
}

impl<A: AsyncApplication> AsyncApplication for CatchErrors<A> {
    type Body = CatchBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        self.call_with(start, |start| self.app.call(environ, start))
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.app.startup(startup)
    }

    fn shutdown(&self) {
        self.app.shutdown();
    }
}

/// Runs `work`, turning a panic into a [`Panicked`] error.
fn catching<T>(work: impl FnOnce() -> Result<T, BoxError>) -> Result<T, BoxError> {
    // The handle and the body are not used again after a panic except to
    // replace the response or drop them, which their own rules allow.
    panic::catch_unwind(AssertUnwindSafe(work))
        .unwrap_or_else(|payload| Err(Panicked::from_payload(&*payload).into()))
}

/// Drops a failed body at once, containing a panic of its `Drop`.
fn discard<T>(value: T) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(value))) {
        tracing::error!(
            error = %Panicked::from_payload(&*payload),
            "the application's body panicked while it was dropped"
        );
    }
}

/// What a failure becomes: the `500` page to send, or the error to pass
/// on (after the head, or the client's fault).
fn recover(
    start: &mut StartResponse<'_>,
    err: BoxError,
    debug_page: bool,
) -> Result<Bytes, BoxError> {
    if let Some(client) = rgi::client_body_error(&*err) {
        tracing::info!(error = %client, "request failed on its body; passed on for the server to answer");
        return Err(err);
    }
    if start.is_head_sent() {
        tracing::error!(error = %err, "application failed after the head was sent; the response is aborted");
        return Err(err);
    }
    tracing::error!(error = %err, "application failed before the head was sent; answering 500");
    let page = if debug_page {
        debug_page_text(&*err)
    } else {
        String::from("Internal Server Error\n")
    };
    let head = ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR)
        .with_header(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )
        .with_header(CONTENT_LENGTH, HeaderValue::from(page.len()));
    match start.replace(head, err) {
        Ok(()) => Ok(Bytes::from(page)),
        Err(refused) => Err(refused.into_cause()),
    }
}

fn debug_page_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut page = format!("Internal Server Error\n\n{err}\n");
    let mut source = err.source();
    while let Some(cause) = source {
        // Writing to a String cannot fail.
        let _ = writeln!(page, "caused by: {cause}");
        source = cause.source();
    }
    page
}

pin_project_lite::pin_project! {
    /// The body of a [`CatchErrors`] application: the inner body while it
    /// works, the `500` page once it failed before the head.
    pub struct CatchBody<B> {
        #[pin]
        inner: Option<B>,
        page: Option<Bytes>,
        debug_page: bool,
    }
}

impl<B> fmt::Debug for CatchBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatchBody")
            .field("inner_alive", &self.inner.is_some())
            .field("page", &self.page)
            .finish_non_exhaustive()
    }
}

impl<B> CatchBody<B> {
    fn new(inner: B, debug_page: bool) -> Self {
        CatchBody {
            inner: Some(inner),
            page: None,
            debug_page,
        }
    }

    fn page(page: Bytes) -> Self {
        CatchBody {
            inner: None,
            page: Some(page),
            debug_page: false,
        }
    }

    fn hint(&self, inner: impl FnOnce(&B) -> Option<u64>) -> Option<u64> {
        match (&self.page, &self.inner) {
            (Some(page), _) => Some(page.len() as u64),
            (None, Some(body)) => inner(body),
            (None, None) => Some(0),
        }
    }
}

impl<B: Body> Body for CatchBody<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if let Some(page) = self.page.take() {
            return Some(Ok(page));
        }
        let inner = self.inner.as_mut()?;
        let failure = match catching(|| inner.next_chunk(start).transpose()) {
            Ok(Some(chunk)) => return Some(Ok(chunk)),
            Ok(None) => {
                self.inner = None;
                return None;
            }
            Err(err) => err,
        };
        discard(self.inner.take());
        Some(recover(start, failure, self.debug_page))
    }

    fn size_hint(&self) -> Option<u64> {
        self.hint(Body::size_hint)
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        if self.page.is_some() {
            return None;
        }
        self.inner.as_mut()?.file()
    }
}

impl<B: AsyncBody> AsyncBody for CatchBody<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let mut this = self.project();
        if let Some(page) = this.page.take() {
            return Poll::Ready(Some(Ok(Step::Chunk(page))));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let polled = catching(|| match inner.poll_step(cx, start) {
            Poll::Pending => Ok(Poll::Pending),
            Poll::Ready(step) => step.transpose().map(Poll::Ready),
        });
        let failure = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Some(Step::Switch(switch)))) => {
                return Poll::Ready(Some(Ok(Step::Switch(caught_switch(
                    switch,
                    *this.debug_page,
                )))));
            }
            Ok(Poll::Ready(Some(step))) => return Poll::Ready(Some(Ok(step))),
            Ok(Poll::Ready(None)) => {
                this.inner.set(None);
                return Poll::Ready(None);
            }
            Err(err) => err,
        };
        // Dropping a pinned body in place: `set` runs its `Drop`, which is
        // contained like a panic of a step.
        let debug_page = *this.debug_page;
        let dropped = panic::catch_unwind(AssertUnwindSafe(|| this.inner.set(None)));
        if let Err(payload) = dropped {
            tracing::error!(
                error = %Panicked::from_payload(&*payload),
                "the application's body panicked while it was dropped"
            );
        }
        Poll::Ready(Some(recover(start, failure, debug_page).map(Step::Chunk)))
    }

    fn size_hint(&self) -> Option<u64> {
        self.hint(AsyncBody::size_hint)
    }
}

/// The inner switch with its continuation and the body it returns
/// caught too.
fn caught_switch(switch: SyncSwitch, debug_page: bool) -> SyncSwitch {
    let continuation = switch.into_continuation();
    SyncSwitch::new(move |start| match catching(|| continuation(start)) {
        Ok(body) => Ok(CatchBody::new(body, debug_page)),
        Err(err) => recover(start, err, debug_page).map(CatchBody::page),
    })
}
