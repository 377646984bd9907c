//! The synchronous test client.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use rgi::Application;

use rgi_async::{Capabilities, Offload};

use super::body::ErrorsLog;
use super::checked::{self, Checked};
use super::diagnose::{self, Change, Variation};
use super::request::Delivery;
use super::response::{Ending, TestResponse};
use super::{ClientError, TestRequest, assemble, rejected};
use crate::rt::{Recorder, ThreadOffload, serve_sync_with};
use crate::{Policy, Reports, Violation};

/// Runs requests through an [`rgi::Application`] in process, as a
/// synchronous server would, with the validator watching both sides.
///
/// Each request gets an environ built from a [`TestRequest`], with its body
/// behind a blocking source and its error stream captured; the application
/// is called and its body pulled and dropped under the failure rules
/// (`RGI-FAIL-*`, via [`serve_sync_with`]). The environ carries no
/// [`rgi_async::Capabilities`], as from any synchronous server
/// (`RGIA-CAP-2`). The validator collects violations instead of
/// panicking; each [`TestResponse`] carries those of its own request.
/// Requests on one client run one at a time so that the attribution is
/// exact; use several clients to test concurrency.
///
/// # Diagnosis by replay
///
/// When the application fails a request before its head (an error or a
/// panic, answered with a bare `500`), the client calls the application
/// again with the same request, once per circumstance an application must
/// not depend on, changing only that one: a chunked body gets a declared
/// length (`RGI-INPUT-10`), the environ gets an
/// [`rgi_async::Capabilities`] value (`RGIA-CAP-6`; only for the
/// diagnosis, a synchronous server offers none) and an
/// [`rgi::ConnectProtocol`] extension (`RGI-EXT-3`), and a request that
/// declares no optional feature is served as by a server that declares
/// them all but lifespan, with `TE: trailers` (`RGI-FEAT-2`). If a replay
/// succeeds, the response's violations name that clause, application side;
/// the replays' own responses and violations are discarded.
///
/// A request that carries connection-specific fields (`Connection`,
/// `Keep-Alive`, `Proxy-Connection` or a field `Connection` names; not one
/// asking for an upgrade) is replayed twice once it is answered whole: unchanged,
/// and without those fields. When the unchanged replay answers as the
/// original did (status and content) and the one without the fields does
/// not, the application depends on fields a server may remove
/// (`RGI-HDR-7`). Any other application that succeeds is never called
/// again, and a failed request costs at most six more calls. Turn it off with
/// [`with_diagnosis(false)`](Self::with_diagnosis) for an application
/// whose calls must not repeat.
///
/// ```
/// use bytes::Bytes;
/// use http::StatusCode;
/// use rgi::ResponseHead;
/// use rgi_conformance::client::{TestClient, TestRequest};
///
/// let client = TestClient::new(rgi::from_fn(|environ, start| {
///     let length = environ.content_length().ok_or("Content-Length required")?;
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(Bytes::from(length.to_string()))
/// }));
/// let response = client.request(TestRequest::post("/", "").chunked(["ab", "cd"]))?;
/// assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
/// assert!(response.violations.iter().any(|v| v.clause() == "RGI-INPUT-10"));
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
///
/// # Examples
///
/// ```
/// use http::{header, HeaderValue, StatusCode};
/// use rgi::ResponseHead;
/// use rgi_conformance::client::{TestClient, TestRequest};
///
/// let client = TestClient::new(rgi::from_fn(|mut environ, start| {
///     let name = environ.input_mut().read_to_bytes(1024)?;
///     start.start(
///         ResponseHead::new(StatusCode::OK)
///             .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
///     )?;
///     Ok(format!("Hello, {}!", String::from_utf8_lossy(&name)))
/// }));
///
/// let response = client.post("/greet", "Ada")?;
/// response.assert_ok_and_valid();
/// assert_eq!(response.text(), "Hello, Ada!");
/// assert_eq!(response.header(header::CONTENT_TYPE), Some("text/plain"));
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
pub struct TestClient<A> {
    app: Checked<A>,
    reports: Reports,
    serial: Mutex<()>,
    diagnosis: bool,
}

impl<A> fmt::Debug for TestClient<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient")
            .field("app", &std::any::type_name::<A>())
            .field("reports", &self.reports)
            .finish_non_exhaustive()
    }
}

impl<A: Application> TestClient<A> {
    /// A client for `app`, wrapped in the validator with
    /// [`Policy::Collect`].
    pub fn new(app: A) -> Self {
        let reports = Reports::new(Policy::Collect);
        TestClient {
            app: checked::sync(app, &reports),
            reports,
            serial: Mutex::new(()),
            diagnosis: true,
        }
    }

    /// The same client with diagnosis by replay on (the default) or off
    /// (see the type's documentation): off, the application is called
    /// exactly once per request.
    #[must_use]
    pub fn with_diagnosis(mut self, on: bool) -> Self {
        self.diagnosis = on;
        self
    }

    /// Runs `request` and returns the response.
    ///
    /// # Errors
    ///
    /// A [`ClientError`] when the request cannot be built; the
    /// application's failures are reported in [`TestResponse::ending`].
    pub fn request(&self, request: TestRequest) -> Result<TestResponse, ClientError> {
        let _serial = self.serial.lock().unwrap_or_else(PoisonError::into_inner);
        let (replica, variant) = if self.diagnosis {
            (request.replica(), request.without_connection_fields())
        } else {
            (None, None)
        };
        let mut response = self.run(request)?;
        if let (Some(replica), Some(error)) = (&replica, diagnose::failed(&response)) {
            if let Some(found) = self.diagnose(replica, &error) {
                response.violations.push(found);
            }
        }
        if let (Some(replica), Some(variant)) = (&replica, variant) {
            if let Some(found) = self.hop_by_hop(replica, variant, &response) {
                response.violations.push(found);
            }
        }
        Ok(response)
    }

    /// Replays a request that carried connection-specific fields twice,
    /// unchanged and without them, and returns the `RGI-HDR-7` diagnosis
    /// when only their absence changed the answer.
    fn hop_by_hop(
        &self,
        request: &TestRequest,
        variant: TestRequest,
        original: &TestResponse,
    ) -> Option<Violation> {
        if !original.ending.is_complete() {
            return None;
        }
        let control = self.run(request.replica()?).ok()?;
        let variant = self.run(variant).ok()?;
        Variation::ConnectionFields.judge(original, &control, &variant)
    }

    /// Replays `request` once per circumstance it lacks, and returns the
    /// diagnosis of the first replay that succeeds.
    fn diagnose(&self, request: &TestRequest, error: &str) -> Option<Violation> {
        let mut replays = Vec::new();
        if let Some(replay) = request
            .replica()
            .and_then(TestRequest::with_declared_length)
        {
            replays.push((Change::DeclaredLength, replay));
        }
        if !request.has_extension::<Capabilities>() {
            let offload = ThreadOffload::new();
            let capabilities = Capabilities::builder(Offload::new(offload)).build();
            if let Some(replay) = request.replica() {
                replays.push((Change::Capabilities, replay.extension(capabilities)));
            }
        }
        if !request.has_extension::<rgi::ConnectProtocol>() {
            if let Some(replay) = request.replica() {
                let protocol = rgi::ConnectProtocol::new("websocket");
                replays.push((Change::ConnectProtocol, replay.extension(protocol)));
            }
        }
        if request.declared_features() == rgi::Features::none() {
            if let Some(replay) = request.replica() {
                replays.push((Change::Features, replay.with_every_feature()));
            }
        }
        replays.into_iter().find_map(|(change, replay)| {
            let replayed = self.run(replay).ok()?;
            if diagnose::succeeded(&replayed) {
                change.violation(error)
            } else {
                None
            }
        })
    }

    /// Runs one request through the application.
    fn run(&self, request: TestRequest) -> Result<TestResponse, ClientError> {
        // Anything left over belongs to an earlier request.
        let _ = self.reports.take();
        let log = ErrorsLog::default();
        let prepared = match request.prepare(Delivery::Blocking, Some(&log)) {
            Ok(prepared) => prepared,
            Err(ClientError::Rejected { reason }) => return Ok(rejected(reason)),
            Err(err) => return Err(err),
        };
        let mut recorder = Recorder::new();
        let served = serve_sync_with(
            &self.app,
            prepared.environ,
            prepared.state,
            &mut recorder,
            |_, _, _| {},
        );
        if let Some(feed) = &prepared.feed {
            feed.finish();
        }
        let ending = Ending::from_outcome(&served.outcome);
        let mut response = assemble(&recorder, ending, None)?;
        response.switched = served.switched;
        response.violations = self.reports.take();
        response.errors_output = log.contents();
        Ok(response)
    }

    /// Runs a `GET` request for `uri`.
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request).
    pub fn get(&self, uri: impl AsRef<str>) -> Result<TestResponse, ClientError> {
        self.request(TestRequest::get(uri))
    }

    /// Runs a `POST` request for `uri` with `body`.
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request).
    pub fn post(
        &self,
        uri: impl AsRef<str>,
        body: impl Into<Bytes>,
    ) -> Result<TestResponse, ClientError> {
        self.request(TestRequest::post(uri, body))
    }
}
