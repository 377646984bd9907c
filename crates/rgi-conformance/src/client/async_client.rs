//! The asynchronous test client.

use std::any::Any;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use rgi::{BoxError, Environ, ResponseHead, ResponseSink, StartResponse};
use rgi_async::{AfterResponse, AsyncApplication, AsyncBody, Capabilities, Offload, Step};

use super::body::{ErrorsLog, Network};
use super::checked::{self, CheckedAsync};
use super::diagnose::{self, Change, Variation};
use super::request::Delivery;
use super::response::{Ending, TestResponse};
use super::upgrade::HandOver;
use super::{ClientError, TestRequest, assemble, rejected};
#[cfg(unix)]
use crate::rt::PollerReadiness;
use crate::rt::{AfterQueue, Recorder, ThreadOffload, serve_async_within_with};
use crate::{Policy, Reports, Violation};

/// Runs requests through an [`AsyncApplication`] in process, as an
/// asynchronous server would, with the validator watching both sides.
///
/// Every request's environ carries one [`Capabilities`] (`RGIA-CAP-1`):
///
/// - **offload**: a thread per job ([`ThreadOffload`]); the response
///   reports how many jobs the request started;
/// - **readiness** (Unix): one real poller per client
///   ([`PollerReadiness`], epoll or kqueue), so applications wait on real
///   pipes and sockets;
/// - **after-response tasks**: a queue per request, run once the response
///   is complete; the client waits for them before it returns, so
///   [`TestResponse::after_tasks_ran`] is exact;
/// - **upgrade**: only for a request that asks for one (see
///   [`TestRequest::upgrade`]), over an in-memory connection.
///
/// The request body arrives through an asynchronous source, one piece at a
/// time and only on demand, woken from another thread; the blocking face
/// works over the same input after a switch, in offload jobs and under
/// [`rgi_async::Threaded`]. The body is polled on the calling thread, which
/// parks while it is pending; a [`Step::Switch`] runs on a worker thread
/// (via [`serve_async_within_with`]).
///
/// Requests on one client run one at a time, so each response carries
/// exactly its own violations.
///
/// The client never hangs on a body that is not woken: once a body has
/// been pending for the [stall timeout](Self::with_stall_timeout)
/// ([`DEFAULT_STALL_TIMEOUT`](Self::DEFAULT_STALL_TIMEOUT) unless set)
/// without a wake-up, the client drops it and the response ends with
/// [`Ending::Stalled`]. A body that returned `Pending` without arranging a
/// wake-up is also reported by the validator (`RGIA-APP-5`), as is a
/// readiness wait that could never resolve (`RGIA-READY-1`, the server's);
/// a body that kept its waker and was simply not woken in time (a long
/// poll longer than the timeout) gets the stalled ending alone.
/// After-response tasks are waited for up to the same timeout.
///
/// # Diagnosis by replay
///
/// When the application fails a request before its head (an error or a
/// panic, answered with a bare `500`), the client calls the application
/// again with the same request, once per circumstance an application must
/// not depend on that the request lacked, changing only that one: a
/// chunked body gets a declared length (`RGI-INPUT-10`); readiness or the
/// after-response capability, when this client was built without it, is
/// offered; a bodiless HTTP/1.1 request asks for an upgrade, so the
/// upgrade capability is offered (all `RGIA-CAP-6`); the environ gets an
/// [`rgi::ConnectProtocol`] extension (`RGI-EXT-3`); a request that
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
/// (`RGI-HDR-7`). A request whose application ran two offload jobs or more
/// is replayed twice too: unchanged, and with an offload service that runs
/// the jobs one at a time on one thread, as a server with a one-thread pool
/// does; an answer that repeats itself unchanged but differs (or stalls)
/// with them serialised has one job waiting for another
/// (`RGIA-OFFLOAD-11`). Any other application that succeeds is never called
/// again, and a failed request costs at most eight more calls. Turn it off with
/// [`with_diagnosis(false)`](Self::with_diagnosis) for an application
/// whose calls must not repeat.
///
/// ```
/// use bytes::Bytes;
/// use http::StatusCode;
/// use rgi::{Environ, ResponseHead};
/// use rgi_async::Capabilities;
/// use rgi_conformance::client::AsyncTestClient;
///
/// let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, start| {
///     let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
///     capabilities.readiness().ok_or("readiness required")?; // no fallback
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(Bytes::from_static(b"ready"))
/// }))
/// .without_readiness();
/// let response = client.get("/")?;
/// assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
/// # #[cfg(unix)]
/// assert!(response.violations.iter().any(|v| v.clause() == "RGIA-CAP-6"));
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
///
/// # Examples
///
/// An application that offloads a blocking lookup:
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
///
/// use bytes::Bytes;
/// use http::{header, HeaderValue, StatusCode};
/// use rgi::{BoxError, Environ, ResponseHead, StartResponse};
/// use rgi_async::{AsyncBody, Capabilities, OffloadFuture, Step};
/// use rgi_conformance::client::AsyncTestClient;
///
/// struct Lookup(Option<OffloadFuture<String>>);
///
/// impl AsyncBody for Lookup {
///     fn poll_step(
///         mut self: Pin<&mut Self>,
///         cx: &mut Context<'_>,
///         start: &mut StartResponse<'_>,
///     ) -> Poll<Option<Result<Step, BoxError>>> {
///         let Some(job) = self.0.as_mut() else { return Poll::Ready(None) };
///         let Poll::Ready(answer) = Pin::new(job).poll(cx) else { return Poll::Pending };
///         self.0 = None;
///         let answer = match answer {
///             Ok(answer) => answer,
///             Err(err) => return Poll::Ready(Some(Err(err.into()))),
///         };
///         let head = ResponseHead::new(StatusCode::OK)
///             .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
///         if let Err(err) = start.start(head) {
///             return Poll::Ready(Some(Err(err.into())));
///         }
///         Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(answer)))))
///     }
/// }
///
/// let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, _start| {
///     let capabilities = Capabilities::of(&environ).ok_or("needs an asynchronous server")?;
///     Ok(Lookup(Some(capabilities.offload().run(|| "resolved".to_owned()))))
/// }));
/// let response = client.get("/lookup")?;
/// response.assert_ok_and_valid();
/// assert_eq!(response.text(), "resolved");
/// assert_eq!(response.offload_jobs, 1);
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
pub struct AsyncTestClient<A> {
    app: Arc<CheckedAsync<A>>,
    reports: Reports,
    serial: Mutex<()>,
    network: Mutex<Option<Network>>,
    #[cfg(unix)]
    poller: Option<Arc<PollerReadiness>>,
    readiness_error: Option<String>,
    after_response: bool,
    stall: Duration,
    diagnosis: bool,
}

impl<A> fmt::Debug for AsyncTestClient<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("AsyncTestClient");
        debug
            .field("app", &std::any::type_name::<A>())
            .field("reports", &self.reports);
        #[cfg(unix)]
        debug.field("poller", &self.poller);
        debug
            .field("readiness_error", &self.readiness_error)
            .field("after_response", &self.after_response)
            .finish_non_exhaustive()
    }
}

impl<A> AsyncTestClient<A> {
    /// How long the client waits, by default, for a pending body to be
    /// woken before it gives up on it (and for after-response tasks to
    /// finish): longer than any wait a test means, short enough that a
    /// forgotten wake-up fails a test instead of hanging it.
    pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);
}

impl<A: AsyncApplication> AsyncTestClient<A> {
    /// A client for `app`, wrapped in the validator with
    /// [`Policy::Collect`], offering every capability it can. If the
    /// system poller cannot be created the client offers no readiness
    /// (absence is legal, `RGIA-CAP-5`) and
    /// [`readiness_error`](Self::readiness_error) says why; use
    /// [`try_new`](Self::try_new) to fail instead.
    pub fn new(app: A) -> Self {
        let reports = Reports::new(Policy::Collect);
        #[cfg(unix)]
        let (poller, readiness_error) = match PollerReadiness::new() {
            Ok(poller) => (Some(Arc::new(poller)), None),
            Err(err) => (None, Some(err.to_string())),
        };
        #[cfg(not(unix))]
        let readiness_error = Some("readiness waits need a Unix poller".to_owned());
        AsyncTestClient {
            app: Arc::new(checked::asynchronous(app, &reports)),
            reports,
            serial: Mutex::new(()),
            network: Mutex::new(None),
            #[cfg(unix)]
            poller,
            readiness_error,
            after_response: true,
            stall: Self::DEFAULT_STALL_TIMEOUT,
            diagnosis: true,
        }
    }

    /// The same client with another stall timeout (see the type's
    /// documentation).
    ///
    /// # Examples
    ///
    /// A body that returns `Pending` and never arranges a wake-up:
    ///
    /// ```
    /// use std::pin::Pin;
    /// use std::task::{Context, Poll};
    /// use std::time::Duration;
    ///
    /// use rgi::{BoxError, StartResponse};
    /// use rgi_async::{AsyncBody, Step};
    /// use rgi_conformance::client::{AsyncTestClient, Ending};
    ///
    /// struct Forgetful;
    ///
    /// impl AsyncBody for Forgetful {
    ///     fn poll_step(
    ///         self: Pin<&mut Self>,
    ///         _cx: &mut Context<'_>,
    ///         _start: &mut StartResponse<'_>,
    ///     ) -> Poll<Option<Result<Step, BoxError>>> {
    ///         Poll::Pending // and nobody was told to wake it
    ///     }
    /// }
    ///
    /// let client = AsyncTestClient::new(rgi_async::from_fn(|_environ, _start| Ok(Forgetful)))
    ///     .with_stall_timeout(Duration::from_millis(200));
    /// let response = client.get("/")?;
    /// assert!(matches!(response.ending, Ending::Stalled { .. }));
    /// assert!(response.violations.iter().any(|v| v.clause() == "RGIA-APP-5"));
    /// # Ok::<(), rgi_conformance::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn with_stall_timeout(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }

    /// The stall timeout in force.
    #[must_use]
    pub fn stall_timeout(&self) -> Duration {
        self.stall
    }

    /// A client for `app` that must offer readiness waits.
    ///
    /// # Errors
    ///
    /// [`ClientError::Readiness`] when the system poller cannot be created
    /// (or, off Unix, always).
    pub fn try_new(app: A) -> Result<Self, ClientError> {
        let client = AsyncTestClient::new(app);
        match &client.readiness_error {
            None => Ok(client),
            Some(why) => Err(ClientError::Readiness(io::Error::other(why.clone()))),
        }
    }

    /// The same client without the readiness capability, to test an
    /// application's degradation path (`RGIA-CAP-6`, `RGIA-CAP-7`).
    #[must_use]
    pub fn without_readiness(mut self) -> Self {
        #[cfg(unix)]
        {
            self.poller = None;
        }
        self.readiness_error = Some("readiness was turned off for this client".to_owned());
        self
    }

    /// The same client with diagnosis by replay on (the default) or off
    /// (see the type's documentation): off, the application is called
    /// exactly once per request.
    #[must_use]
    pub fn with_diagnosis(mut self, on: bool) -> Self {
        self.diagnosis = on;
        self
    }

    /// The same client without the after-response capability.
    #[must_use]
    pub fn without_after_response(mut self) -> Self {
        self.after_response = false;
        self
    }

    /// Why the client offers no readiness waits, if it does not.
    #[must_use]
    pub fn readiness_error(&self) -> Option<&str> {
        self.readiness_error.as_deref()
    }

    /// How many descriptors the client's poller has registered right now
    /// (`None` without readiness): zero between requests unless an
    /// application leaked a wait, which is how a test sees that a dropped
    /// wait deregistered (`RGIA-READY-12`).
    #[must_use]
    pub fn readiness_registrations(&self) -> Option<usize> {
        #[cfg(unix)]
        {
            self.poller.as_deref().map(PollerReadiness::registered)
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    fn network(&self) -> Result<Network, ClientError> {
        let mut network = self.network.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(network) = network.as_ref() {
            return Ok(network.clone());
        }
        let started = Network::start()?;
        *network = Some(started.clone());
        Ok(started)
    }

    /// The capabilities of one request.
    fn capabilities(
        &self,
        offload: &Offload,
        after: &AfterQueue,
        hand: Option<&Arc<HandOver>>,
        extra: &Extra,
    ) -> Capabilities {
        let mut builder = Capabilities::builder(offload.clone());
        #[cfg(unix)]
        if let Some(poller) = self.poller.as_ref().or(extra.readiness.as_ref()) {
            let service: Arc<dyn rgi_async::ReadinessService> = Arc::clone(poller) as _;
            builder = builder.readiness(rgi_async::Readiness::from_arc(service));
        }
        if self.after_response || extra.after_response {
            builder = builder.after_response(AfterResponse::new(after.clone()));
        }
        if let Some(hand) = hand {
            builder = builder.upgrade(hand.capability());
        }
        builder.build()
    }

    /// Runs `request` and returns the response, once the body has been
    /// dropped, the after-response tasks have finished and an upgraded
    /// connection's peer script has returned.
    ///
    /// # Errors
    ///
    /// A [`ClientError`] when the request cannot be built or a thread the
    /// client needs cannot start; the application's failures are reported
    /// in [`TestResponse::ending`].
    ///
    /// # Panics
    ///
    /// Re-raises a panic of the upgrade peer's script (a failed assertion
    /// in it), so that the test fails with its message.
    pub fn request(&self, request: TestRequest) -> Result<TestResponse, ClientError> {
        let _serial = self.serial.lock().unwrap_or_else(PoisonError::into_inner);
        let (replica, variant) = if self.diagnosis {
            (request.replica(), request.without_connection_fields())
        } else {
            (None, None)
        };
        let mut response = self.run(request, &Extra::default())?;
        if let (Some(replica), Some(error)) = (&replica, diagnose::failed(&response)) {
            if let Some(found) = self.diagnose(replica, &error) {
                response.violations.push(found);
            }
        }
        if let (Some(replica), Some(variant)) = (&replica, variant) {
            let found = self.vary(
                Variation::ConnectionFields,
                replica,
                (variant, Extra::default()),
                &response,
            );
            response.violations.extend(found);
        }
        // Two jobs or more may have waited for each other: a conforming
        // offload service may run them one at a time.
        if let Some(replica) = replica.as_ref().filter(|_| response.offload_jobs >= 2) {
            if let Some(variant) = replica.replica() {
                let extra = Extra {
                    serial_offload: true,
                    ..Extra::default()
                };
                let found = self.vary(
                    Variation::SerialOffload,
                    replica,
                    (variant, extra),
                    &response,
                );
                response.violations.extend(found);
            }
        }
        Ok(response)
    }

    /// Replays a request whose answer is judged against `variation` twice,
    /// unchanged and varied, and returns the diagnosis when only the
    /// variation changed the answer.
    fn vary(
        &self,
        variation: Variation,
        request: &TestRequest,
        (variant, extra): (TestRequest, Extra),
        original: &TestResponse,
    ) -> Option<Violation> {
        if !original.ending.is_complete() {
            return None;
        }
        let control = self.run(request.replica()?, &Extra::default()).ok()?;
        let variant = self.run(variant, &extra).ok()?;
        variation.judge(original, &control, &variant)
    }

    /// Replays `request` once per circumstance it lacks, and returns the
    /// diagnosis of the first replay that succeeds.
    fn diagnose(&self, request: &TestRequest, error: &str) -> Option<Violation> {
        let mut replays = Vec::new();
        if let Some(replay) = request
            .replica()
            .and_then(TestRequest::with_declared_length)
        {
            replays.push((Change::DeclaredLength, replay, Extra::default()));
        }
        #[cfg(unix)]
        if self.poller.is_none() {
            if let (Some(replay), Ok(poller)) = (request.replica(), PollerReadiness::new()) {
                let extra = Extra {
                    readiness: Some(Arc::new(poller)),
                    ..Extra::default()
                };
                replays.push((Change::Readiness, replay, extra));
            }
        }
        if !self.after_response {
            if let Some(replay) = request.replica() {
                let extra = Extra {
                    after_response: true,
                    ..Extra::default()
                };
                replays.push((Change::AfterResponse, replay, extra));
            }
        }
        if !request.asks_upgrade() && request.can_offer_upgrade() {
            if let Some(replay) = request.replica() {
                // The peer sends nothing and returns at once: the replay
                // only asks whether the application gets past its head.
                let replay = replay.upgrade(HeaderValue::from_static("websocket"), |_peer| Ok(()));
                replays.push((Change::Upgrade, replay, Extra::default()));
            }
        }
        if !request.has_extension::<rgi::ConnectProtocol>() {
            if let Some(replay) = request.replica() {
                let protocol = rgi::ConnectProtocol::new("websocket");
                replays.push((
                    Change::ConnectProtocol,
                    replay.extension(protocol),
                    Extra::default(),
                ));
            }
        }
        if request.declared_features() == rgi::Features::none() {
            if let Some(replay) = request.replica() {
                replays.push((
                    Change::Features,
                    replay.with_every_feature(),
                    Extra::default(),
                ));
            }
        }
        replays.into_iter().find_map(|(change, replay, extra)| {
            let replayed = self.run(replay, &extra).ok()?;
            if diagnose::succeeded(&replayed) {
                change.violation(error)
            } else {
                None
            }
        })
    }

    /// Runs one request through the application, with `extra`
    /// capabilities beyond the client's own.
    fn run(&self, request: TestRequest, extra: &Extra) -> Result<TestResponse, ClientError> {
        let _ = self.reports.take();
        let network = self.network()?;
        let log = ErrorsLog::default();
        let mut prepared = match request.prepare(Delivery::Async(&network), Some(&log)) {
            Ok(prepared) => prepared,
            Err(ClientError::Rejected { reason }) => return Ok(rejected(reason)),
            Err(err) => return Err(err),
        };
        let threads = ThreadOffload::new();
        let serial = if extra.serial_offload {
            let serial = SerialOffload::start().map_err(|source| ClientError::Thread {
                role: "serial offload",
                source,
            })?;
            Some(serial)
        } else {
            None
        };
        let offload = match &serial {
            Some(serial) => Offload::new(serial.clone()),
            None => Offload::new(threads.clone()),
        };
        let after = AfterQueue::new();
        let hand = prepared.upgrade.take().map(HandOver::new);
        let capabilities = self.capabilities(&offload, &after, hand.as_ref(), extra);
        prepared.environ.extensions_mut().insert(capabilities);

        let app = PerRequest {
            inner: Arc::clone(&self.app),
            hand: hand.clone(),
        };
        let mut sink = ClientSink {
            recorder: Recorder::new(),
            hand: hand.clone(),
        };
        let served = serve_async_within_with(
            &app,
            prepared.environ,
            prepared.state,
            &mut sink,
            self.stall,
        );
        drop(app);
        if let Some(feed) = &prepared.feed {
            feed.finish();
        }
        let concluded = hand.as_deref().and_then(HandOver::conclude);

        let tasks = after.run().map_err(|source| ClientError::Thread {
            role: "after-response",
            source,
        })?;
        // The tasks' panics are contained on that thread; a failed join
        // would only repeat one. A task that never returns is left behind
        // after the stall timeout: the response says how many ran.
        let deadline = Instant::now() + self.stall;
        while !tasks.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        if tasks.is_finished() {
            let _ = tasks.join();
        }

        let (ending, head, transcript, peer_panic) = match concluded {
            Some(concluded) => {
                let ending = match (concluded.failed, concluded.body_end) {
                    (Some(error), _) => Ending::Disconnected { error },
                    (None, Some(Err(error))) => Ending::FailedAfterHead { error },
                    (None, _) => Ending::Upgraded,
                };
                (
                    ending,
                    Some(concluded.head),
                    concluded.transcript,
                    concluded.peer_panic,
                )
            }
            None => (Ending::from_outcome(&served.outcome), None, None, None),
        };
        let mut response = assemble(&sink.recorder, ending, head)?;
        response.switched = served.switched;
        response.after_tasks_ran = after.ran();
        response.offload_jobs = serial
            .as_ref()
            .map_or_else(|| threads.accepted(), SerialOffload::accepted);
        response.upgrade = transcript;
        response.violations = self.reports.take();
        response.errors_output = log.contents();
        if let Some(payload) = peer_panic {
            panic::resume_unwind(payload);
        }
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

/// An offload service that runs its jobs one at a time, in order, on one
/// thread: what a server with a one-thread pool offers, and the variant of
/// the `RGIA-OFFLOAD-11` replay. The thread ends once every clone is
/// dropped and the jobs queued before are done.
#[derive(Clone)]
struct SerialOffload {
    queue: std::sync::mpsc::Sender<rgi_async::Job>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl SerialOffload {
    fn start() -> io::Result<Self> {
        let (queue, jobs) = std::sync::mpsc::channel::<rgi_async::Job>();
        thread::Builder::new()
            .name("rgi-serial-offload".into())
            .spawn(move || {
                for job in jobs {
                    job.run();
                }
            })?;
        Ok(SerialOffload {
            queue,
            accepted: Arc::default(),
        })
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl rgi_async::OffloadService for SerialOffload {
    fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
        // A send fails only once the thread is gone; the job comes back
        // inside the error and is dropped unrun, resolving its future.
        self.queue
            .send(job)
            .map_err(|_| rgi_async::OffloadError::ShutDown)?;
        self.accepted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// Capabilities a diagnostic replay offers beyond the client's own.
#[derive(Default)]
struct Extra {
    /// The offload jobs run one at a time on one thread
    /// ([`Variation::SerialOffload`]).
    serial_offload: bool,
    /// A poller for a client built without readiness.
    #[cfg(unix)]
    readiness: Option<Arc<PollerReadiness>>,
    /// The after-response capability, for a client built without it.
    after_response: bool,
}

/// The transport of one request: records what is sent, and refuses HTTP
/// once the connection was handed over (`RGIA-UPGRADE-7`).
struct ClientSink {
    recorder: Recorder,
    hand: Option<Arc<HandOver>>,
}

impl ClientSink {
    fn check(&self) -> io::Result<()> {
        match &self.hand {
            Some(hand) if hand.is_gone() => Err(io::Error::other(
                "the connection was handed over to another protocol",
            )),
            _ => Ok(()),
        }
    }
}

impl ResponseSink for ClientSink {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.check()?;
        self.recorder.send_head(head)
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.check()?;
        self.recorder.send_data(data)
    }

    fn send_trailers(&mut self, fields: http::HeaderMap) -> io::Result<()> {
        self.check()?;
        self.recorder.send_trailers(fields)
    }

    fn send_early_hints(&mut self, fields: http::HeaderMap) -> io::Result<()> {
        self.check()?;
        self.recorder.send_early_hints(fields)
    }
}

/// The application as one request sees it: the validated application,
/// plus the server's side of an upgrade, which needs to act after each
/// call and poll (the `101` goes out once the call or poll that accepted
/// has returned, `RGIA-UPGRADE-4`).
struct PerRequest<A> {
    inner: Arc<A>,
    hand: Option<Arc<HandOver>>,
}

impl<A: AsyncApplication> AsyncApplication for PerRequest<A> {
    type Body = Handed<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        if let Some(hand) = &self.hand {
            hand.before(start.is_head_sent());
        }
        let body = self.inner.call(environ, start)?;
        if let Some(hand) = &self.hand {
            if let Err(err) = hand.after(start.is_started(), None) {
                hand.record_end(Err(err.to_string()));
                return Err(err);
            }
        }
        Ok(Handed {
            inner: Box::pin(body),
            hand: self.hand.clone(),
        })
    }
}

/// The body of [`PerRequest`].
struct Handed<B> {
    inner: Pin<Box<B>>,
    hand: Option<Arc<HandOver>>,
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_owned())
}

impl<B: AsyncBody> AsyncBody for Handed<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        let Some(hand) = this.hand.clone() else {
            return this.inner.as_mut().poll_step(cx, start);
        };
        hand.before(start.is_head_sent());
        let polled = panic::catch_unwind(AssertUnwindSafe(|| {
            this.inner.as_mut().poll_step(cx, &mut *start)
        }));
        let polled = match polled {
            Ok(polled) => polled,
            Err(payload) => {
                hand.record_end(Err(format!(
                    "the application panicked: {}",
                    panic_text(&*payload)
                )));
                panic::resume_unwind(payload);
            }
        };
        let step = match &polled {
            Poll::Ready(Some(Ok(step))) => Some(step),
            _ => None,
        };
        if let Err(err) = hand.after(start.is_started(), step) {
            hand.record_end(Err(err.to_string()));
            return Poll::Ready(Some(Err(err)));
        }
        match &polled {
            Poll::Ready(None) => hand.record_end(Ok(())),
            Poll::Ready(Some(Err(err))) => hand.record_end(Err(err.to_string())),
            _ => {}
        }
        polled
    }

    fn size_hint(&self) -> Option<u64> {
        self.inner.size_hint()
    }
}
