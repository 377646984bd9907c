//! The other direction: a tower [`Service`] mounted as an RGI asynchronous
//! application ([`TowerApplication`], [`from_service`]), so that an axum
//! `Router`, a tonic service or any tower service runs inside an RGI stack,
//! behind RGI middleware, on any asynchronous RGI server.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use http::header::{
    CONNECTION, CONTENT_LENGTH, HeaderName, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body::{Body as HttpBody, SizeHint};
use rgi::{
    BoxError, Environ, PathBytes, ResponseHead, StartResponse, TrailersError, is_forbidden_trailer,
};
use rgi_async::{
    AsyncApplication, AsyncBody, Capabilities, Runtime, RuntimeError, Step, Upgrade, UpgradeError,
    Upgraded,
};
use tower_service::Service;

use crate::input_body::InputBody;
use crate::mount_upgrade::{self, Exchange, Splice};

/// The mount point of the application the service is mounted as: the
/// environ's percent-decoded `SCRIPT_NAME`
/// ([`Environ::script_name`]), empty at the root. Found in the extensions
/// of every request a [`TowerApplication`] hands its service, so that a
/// service routed on the mount-relative path can still build URLs that
/// reach it.
///
/// # Examples
///
/// ```
/// use rgi_tower::ScriptName;
///
/// let request = http::Request::get("/users/7")
///     .extension(ScriptName(rgi::PathBytes::from(bytes::Bytes::from_static(b"/api"))))
///     .body(())?;
/// let mount = request.extensions().get::<ScriptName>().map(|s| s.0.to_string());
/// assert_eq!(mount.as_deref(), Some("/api"));
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct ScriptName(pub PathBytes);

/// The request target as the client sent it (the environ's
/// [`Environ::uri`]): with the mount point, never decoded. Found in the
/// extensions of every request a [`TowerApplication`] hands its service,
/// whose own URI is mount-relative unless
/// [`keep_script_name`](TowerApplication::keep_script_name) was asked for.
///
/// # Examples
///
/// ```
/// use rgi_tower::OriginalUri;
///
/// let original = OriginalUri(http::Uri::from_static("/api/users/7?full=1"));
/// assert_eq!(original.0.path(), "/api/users/7");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginalUri(pub Uri);

/// Why a mounted tower service could not answer.
///
/// Before the response head is sent, the server answers any of these with
/// `500` (or the status of a client's body fault found in the source
/// chain, `[RGI-FAIL-10]`) and logs it; after, it ends the response
/// abnormally (`[RGI-FAIL-5]`).
///
/// # Examples
///
/// ```
/// use rgi_tower::MountError;
///
/// let error = MountError::InformationalStatus { status: http::StatusCode::CONTINUE };
/// assert_eq!(
///     error.to_string(),
///     "the mounted service answered with the informational status 100 Continue, which an RGI application cannot send as its response"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// The service's `poll_ready` failed.
    #[error("the mounted service is not ready: {0}")]
    NotReady(#[source] BoxError),
    /// The service's response future failed.
    #[error("the mounted service failed: {0}")]
    Service(#[source] BoxError),
    /// The service's response body failed while it was being read.
    #[error("the mounted service's response body failed: {0}")]
    Body(#[source] BoxError),
    /// The service's response body yielded a second trailers frame, or
    /// trailers the response cannot take.
    #[error("the mounted service's response trailers were refused: {0}")]
    Trailers(#[source] TrailersError),
    /// The service answered with a 1xx status other than
    /// `101 Switching Protocols` (see [`TowerApplication`] for that).
    #[error(
        "the mounted service answered with the informational status {status}, which an RGI application cannot send as its response"
    )]
    InformationalStatus {
        /// The status the service answered with.
        status: StatusCode,
    },
    /// The environ's `SCRIPT_NAME` is not the decoding of whole leading
    /// segments of its raw path (an environ changed by a middleware
    /// without keeping its invariant).
    #[error("the mount point {script_name:?} is not a prefix of the request path {path:?}")]
    ScriptNameNotInPath {
        /// The environ's `SCRIPT_NAME`.
        script_name: PathBytes,
        /// The raw path of the request target.
        path: String,
    },
    /// The mount-relative target is not a valid URI.
    #[error("the mount-relative request target is not a valid URI: {0}")]
    InvalidTarget(#[source] http::Error),
    /// The service answered `101 Switching Protocols` and the RGI upgrade
    /// refused its fields, or the connection failed before the switch.
    #[error("the mounted service's upgrade failed: {0}")]
    Upgrade(#[source] UpgradeError),
    /// The in-memory connection that carries an upgrade request to the
    /// service failed, or relaying the upgraded connection did.
    #[error("the mounted service's upgraded connection failed: {0}")]
    Upgraded(#[source] BoxError),
}

/// A tower service mounted as an RGI asynchronous application; made by
/// [`from_service`].
///
/// # What the service sees
///
/// Per request, the application clones the service and hands the clone
/// one `http::Request<`[`InputBody`]`>` built from the environ
/// ([`Environ::into_parts`]):
///
/// - the method, version and header fields as the environ holds them (no
///   `Transfer-Encoding`; an HTTP/2 request's `:authority` as `Host`);
/// - the URI from the **raw** request target, never the decoded
///   `PATH_INFO`: with a non-empty `SCRIPT_NAME`, the raw path with the raw
///   mount prefix removed (`/` when nothing is left), every escape such as
///   `%2F` kept as the client sent it, and the query unchanged, so that an
///   axum `Router` mounted at `/api` routes `/api/users/7` as `/users/7`.
///   [`keep_script_name`](Self::keep_script_name) hands the whole target
///   instead;
/// - in its extensions: every extension of the environ (the request's
///   [`Capabilities`] among them, when the server lends them per request),
///   [`ScriptName`], [`OriginalUri`], the connection's
///   `Arc<`[`ConnectionInfo`](rgi::ConnectionInfo)`>` and the server's
///   `Arc<`[`ServerInfo`](rgi::ServerInfo)`>` (its server-wide extensions, the state of
///   the start-up hook and the server-wide capabilities included);
/// - the environ's [`Input`](rgi::Input) as its body, read only as the
///   service polls it, ending with a trailers frame when the request
///   carried trailer fields.
///
/// # What the client sees
///
/// Readiness, the call and the response future are all polled inside the
/// body's `poll_step`, with the server's [`Context`]: `call` does no I/O
/// and never polls the service, as `[RGIA-APP-1]` requires. Once the
/// response future resolves:
///
/// - the RGI head carries the service's status and header fields, less the
///   connection-specific ones (`connection` and the fields it names,
///   `keep-alive`, `proxy-connection`, `transfer-encoding`, `te`,
///   `upgrade`), which the server writes itself;
/// - the service's `content-length` is kept when the body's size hint is
///   exact and equal to it, or when no body follows anyway (a HEAD request,
///   `304`); a `204` never carries one. A head without one gets the exact
///   size hint as its length, as hyper would give it, unless the request is
///   HEAD, the status has no body, or the head announces trailers
///   (`Trailer`);
/// - each DATA frame is one [`Step::Chunk`] (empty frames are skipped); a
///   trailers frame goes to [`StartResponse::send_trailers`], less the
///   fields no trailer section may carry ([`is_forbidden_trailer`]); the
///   body's end ends the response;
/// - failures are [`MountError`]s: before the head is sent the server
///   answers `500` and logs them, after it the response is aborted;
/// - a 1xx other than `101` is [`MountError::InformationalStatus`].
///
/// **Upgrades** (an axum `WebSocketUpgrade` route). A tower service takes
/// its upgraded connection from hyper's `OnUpgrade` in the request's
/// extensions, and hyper makes one only inside its own connections
/// (`hyper::upgrade::pending` is private to hyper). So when the server
/// offers the request an upgrade ([`Capabilities::upgrade`], HTTP/1.1)
/// and a tokio runtime is current, the bridge sends the request head
/// through an in-memory HTTP/1.1 connection that hyper serves on a task
/// of its own; there the service (the instance polled ready) is called
/// with the same request, body and extensions, plus hyper's `OnUpgrade`.
/// An answer other than `101` is served as usual. A `101` becomes the RGI
/// upgrade ([`Upgrade::accept`]) with the service's fields, less the
/// connection-specific and body ones (`content-length`, which axum
/// writes); the body then relays bytes both ways between the client's
/// connection and the in-memory one, where the service talks, until both
/// sides ended. It costs a task and one copy of each byte per direction.
/// Without an offered upgrade (an HTTP/2 extended CONNECT, a server that
/// cannot hand connections over, no tokio runtime) the request reaches the
/// service without `OnUpgrade`: axum's extractor answers `426` itself, and
/// a service that answers `101` anyway gets `501 Not Implemented`.
///
/// **Trailers.** Whether response trailers reach the client is the
/// server's decision (`[RGI-TRAILER-7]`): on HTTP/2 always, except that
/// `rgi-server` ends a response whose length it knows with its last data
/// when the head announced no trailers (no `Trailer` field) and so drops
/// trailers that were not announced; on HTTP/1.1 only to a request with
/// `TE: trailers`, on a chunked response, and with hyper (`rgi-server`)
/// only the fields the head announced in `Trailer`. A gRPC service's
/// responses carry no length and no `Trailer` field, so on HTTP/2 their
/// trailers (`grpc-status`) arrive; a service that wants them on HTTP/1.1
/// must announce them.
///
/// # Bounds
///
/// The service must be `Clone + Send + Sync + 'static` (one instance is
/// shared by every thread of the server, and each request gets a clone,
/// so a service with internal state shares it through `Arc`s as tower
/// services do); its future `Send + 'static`; its error and its body's
/// error anything that converts into a [`BoxError`]; its body
/// `Send + 'static` with `Send` data. An axum `Router` (state given with
/// `with_state`), a tonic server and a `tower::util::BoxCloneSyncService`
/// meet them.
///
/// # Runtime
///
/// A service written for tokio (axum's handlers, tonic, anything that
/// spawns, sleeps or does I/O through tokio) only works where a tokio
/// context is entered for every poll. Say so with
/// [`require_runtime`](Self::require_runtime): on a server that does not
/// declare that runtime `call` fails with the typed [`RuntimeError`]
/// (`[RGIA-RT-4]`), answered `500` and logged, instead of a panic inside
/// the service.
///
/// # Examples
///
/// Mounting a tower service and serving it with an in-process driver:
///
/// ```
/// use std::convert::Infallible;
/// use http_body_util::Full;
/// use rgi::Environ;
/// use rgi_conformance::rt::{Recorder, serve_async};
///
/// let service = tower::service_fn(|request: http::Request<rgi_tower::InputBody>| async move {
///     let text = format!("{} {}", request.method(), request.uri());
///     Ok::<_, Infallible>(http::Response::new(Full::new(bytes::Bytes::from(text))))
/// });
/// let app = rgi_tower::from_service(service);
///
/// let environ = Environ::builder()
///     .uri(http::Uri::from_static("/api/users/7?full=1"))
///     .script_name("/api")
///     .build()?;
/// let mut wire = Recorder::new();
/// assert!(serve_async(&app, environ, &mut wire).outcome.is_complete());
/// assert_eq!(wire.body(), b"GET /users/7?full=1");
/// assert_eq!(wire.heads()[0].headers()["content-length"], "19");
/// # Ok::<(), rgi::EnvironError>(())
/// ```
#[derive(Clone)]
pub struct TowerApplication<S> {
    service: S,
    runtime: Option<Runtime>,
    strip_script_name: bool,
}

/// Mounts `service` as an RGI asynchronous application: see
/// [`TowerApplication`].
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
///
/// let service = tower::service_fn(|_request: http::Request<rgi_tower::InputBody>| async {
///     Ok::<_, Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let app = rgi_tower::from_service(service).require_runtime(rgi_async::Runtime::Tokio);
/// # fn is_app<A: rgi_async::AsyncApplication>(_: &A) {}
/// is_app(&app);
/// ```
pub fn from_service<S>(service: S) -> TowerApplication<S> {
    TowerApplication {
        service,
        runtime: None,
        strip_script_name: true,
    }
}

impl<S> TowerApplication<S> {
    /// Requires `runtime`'s context for every poll of the service: on a
    /// server whose [`Capabilities`] do not declare it (or that lends
    /// none: a synchronous server), `call` fails with the typed
    /// [`RuntimeError`] before the service sees the request
    /// (`[RGIA-RT-4]`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use rgi::Environ;
    /// use rgi_async::{Runtime, RuntimeError};
    /// use rgi_conformance::rt::{Outcome, Recorder, serve_async};
    ///
    /// let service = tower::service_fn(|_request: http::Request<rgi_tower::InputBody>| async {
    ///     Ok::<_, Infallible>(http::Response::new(String::from("needs tokio")))
    /// });
    /// let app = rgi_tower::from_service(service).require_runtime(Runtime::Tokio);
    ///
    /// // An environ without capabilities: no runtime is declared.
    /// let mut wire = Recorder::new();
    /// let served = serve_async(&app, Environ::builder().build()?, &mut wire);
    /// let Outcome::FailedBeforeHead { error } = served.outcome else { panic!("served") };
    /// assert_eq!(
    ///     error.downcast_ref::<RuntimeError>(),
    ///     Some(&RuntimeError::NotDeclared { wanted: Runtime::Tokio })
    /// );
    /// assert_eq!(wire.heads()[0].status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    #[must_use]
    pub fn require_runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Hands the service the whole request target, mount point included,
    /// instead of the mount-relative one (the mount point is still in
    /// [`ScriptName`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http_body_util::Full;
    /// use rgi::Environ;
    /// use rgi_conformance::rt::{Recorder, serve_async};
    ///
    /// let service = tower::service_fn(|request: http::Request<rgi_tower::InputBody>| async move {
    ///     Ok::<_, Infallible>(http::Response::new(Full::new(bytes::Bytes::from(request.uri().to_string()))))
    /// });
    /// let app = rgi_tower::from_service(service).keep_script_name();
    /// let environ = Environ::builder()
    ///     .uri(http::Uri::from_static("/api/users"))
    ///     .script_name("/api")
    ///     .build()?;
    /// let mut wire = Recorder::new();
    /// serve_async(&app, environ, &mut wire);
    /// assert_eq!(wire.body(), b"/api/users");
    /// # Ok::<(), rgi::EnvironError>(())
    /// ```
    #[must_use]
    pub fn keep_script_name(mut self) -> Self {
        self.strip_script_name = false;
        self
    }

    /// The mounted service.
    #[must_use]
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The runtime this application requires, if any.
    #[must_use]
    pub fn required_runtime(&self) -> Option<Runtime> {
        self.runtime
    }
}

impl<S> fmt::Debug for TowerApplication<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TowerApplication")
            .field("service", &std::any::type_name::<S>())
            .field("runtime", &self.runtime)
            .field("strip_script_name", &self.strip_script_name)
            .finish()
    }
}

impl<S, B> AsyncApplication for TowerApplication<S>
where
    S: Service<Request<InputBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Body = TowerBody<S, B>;

    fn call(
        &self,
        environ: Environ,
        _start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        if let Some(wanted) = self.runtime {
            match Capabilities::of(&environ) {
                Some(capabilities) => capabilities.require_runtime(wanted)?,
                None => return Err(Box::new(RuntimeError::NotDeclared { wanted })),
            }
        }
        // An upgrade the server offers goes through hyper's own
        // connection machinery (see `mount_upgrade`): HTTP/1 only, since
        // that connection speaks HTTP/1.1.
        let upgrade = Capabilities::of(&environ)
            .and_then(Capabilities::upgrade)
            .filter(|_| environ.version() <= http::Version::HTTP_11)
            .cloned();
        let request = mounted_request(environ, self.strip_script_name)?;
        Ok(TowerBody {
            stage: Stage::Ready {
                service: Some(self.service.clone()),
                request: Some(request),
                upgrade,
            },
        })
    }
}

pin_project_lite::pin_project! {
    /// Where a [`TowerBody`] is.
    #[project = StageProj]
    enum Stage<S, F, B> {
        /// Waiting for the service's readiness, the request in hand.
        Ready {
            service: Option<S>,
            request: Option<Request<InputBody>>,
            upgrade: Option<Upgrade>,
        },
        /// Waiting for the response future.
        Calling { #[pin] future: F },
        /// Waiting for the answer to an upgradable request, sent through
        /// an in-memory hyper connection.
        Exchanging { exchange: Option<Exchange<B>>, upgrade: Upgrade },
        /// The service switched protocols and the RGI upgrade was
        /// accepted: waiting for the client's connection.
        Switching { upgraded: Upgraded, end: Option<mount_upgrade::End> },
        /// Relaying the upgraded connection.
        Splicing { splice: Splice },
        /// Reading the response body.
        Streaming { #[pin] body: B },
        /// Over.
        Done,
    }
}

pin_project_lite::pin_project! {
    /// The asynchronous body of a [`TowerApplication`]'s response: the
    /// service's readiness, its call, its response future and its response
    /// body, all polled in [`AsyncBody::poll_step`] with the server's
    /// context. Dropping it drops whichever of them is live, which cancels
    /// the service's work for this request.
    pub struct TowerBody<S, B>
    where
        S: Service<Request<InputBody>>,
    {
        #[pin]
        stage: Stage<S, S::Future, B>,
    }
}

impl<S, B> fmt::Debug for TowerBody<S, B>
where
    S: Service<Request<InputBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::Ready { .. } => "waiting for the service's readiness",
            Stage::Calling { .. } | Stage::Exchanging { .. } => "waiting for the response",
            Stage::Switching { .. } | Stage::Splicing { .. } => "relaying an upgraded connection",
            Stage::Streaming { .. } => "reading the response body",
            Stage::Done => "done",
        };
        f.debug_struct("TowerBody").field("stage", &stage).finish()
    }
}

impl<S, B> AsyncBody for TowerBody<S, B>
where
    S: Service<Request<InputBody>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let mut stage = self.project().stage;
        loop {
            match stage.as_mut().project() {
                StageProj::Ready {
                    service,
                    request,
                    upgrade,
                } => {
                    // Both are taken together, right before the stage
                    // changes; neither is ever missing here.
                    let (Some(ready_service), Some(_)) = (service.as_mut(), request.as_ref())
                    else {
                        stage.set(Stage::Done);
                        return Poll::Ready(None);
                    };
                    if let Err(err) = ready!(ready_service.poll_ready(cx)) {
                        stage.set(Stage::Done);
                        return fail(MountError::NotReady(err.into()));
                    }
                    let (Some(mut ready_service), Some(request)) = (service.take(), request.take())
                    else {
                        stage.set(Stage::Done);
                        return Poll::Ready(None);
                    };
                    let next = match upgrade.take() {
                        // The service that was polled ready is the one
                        // called, on the in-memory connection's task.
                        Some(upgrade) => match tokio::runtime::Handle::try_current() {
                            Ok(runtime) => Stage::Exchanging {
                                exchange: Some(mount_upgrade::start(
                                    &runtime,
                                    ready_service,
                                    request,
                                )),
                                upgrade,
                            },
                            Err(_) => Stage::Calling {
                                future: ready_service.call(request),
                            },
                        },
                        None => Stage::Calling {
                            future: ready_service.call(request),
                        },
                    };
                    stage.set(next);
                }
                StageProj::Calling { future } => {
                    let response = match ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(err) => {
                            stage.set(Stage::Done);
                            return fail(MountError::Service(err.into()));
                        }
                    };
                    match answered(response, start) {
                        Ok(next) => stage.set(next),
                        Err(err) => {
                            stage.set(Stage::Done);
                            return Poll::Ready(Some(Err(err)));
                        }
                    }
                }
                StageProj::Exchanging { exchange, upgrade } => {
                    let Some(current) = exchange.as_mut() else {
                        stage.set(Stage::Done);
                        return Poll::Ready(None);
                    };
                    let response = match ready!(current.poll_answer(cx)) {
                        Ok(response) => response,
                        Err(err) => {
                            stage.set(Stage::Done);
                            return fail(MountError::Service(err));
                        }
                    };
                    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                        // Not switching after all: an ordinary answer.
                        match answered(response, start) {
                            Ok(next) => stage.set(next),
                            Err(err) => {
                                stage.set(Stage::Done);
                                return Poll::Ready(Some(Err(err)));
                            }
                        }
                        continue;
                    }
                    let fields = mount_upgrade::switch_fields(response.into_parts().0.headers);
                    let end = exchange.take().map(Exchange::into_end);
                    match upgrade.accept(fields) {
                        Ok(upgraded) => stage.set(Stage::Switching { upgraded, end }),
                        Err(err) => {
                            stage.set(Stage::Done);
                            return fail(MountError::Upgrade(err));
                        }
                    }
                }
                StageProj::Switching { upgraded, end } => {
                    let stream = match ready!(Pin::new(upgraded).poll(cx)) {
                        Ok(stream) => stream,
                        Err(err) => {
                            stage.set(Stage::Done);
                            return fail(MountError::Upgrade(err));
                        }
                    };
                    let Some(end) = end.take() else {
                        stage.set(Stage::Done);
                        return Poll::Ready(None);
                    };
                    stage.set(Stage::Splicing {
                        splice: Splice::new(stream, end),
                    });
                }
                StageProj::Splicing { splice } => {
                    let relayed = ready!(splice.poll_relay(cx));
                    stage.set(Stage::Done);
                    return match relayed {
                        Ok(()) => Poll::Ready(None),
                        Err(err) => fail(MountError::Upgraded(err)),
                    };
                }
                StageProj::Streaming { body } => {
                    let frame = match ready!(body.poll_frame(cx)) {
                        None => {
                            stage.set(Stage::Done);
                            return Poll::Ready(None);
                        }
                        Some(Err(err)) => {
                            stage.set(Stage::Done);
                            return fail(MountError::Body(err.into()));
                        }
                        Some(Ok(frame)) => frame,
                    };
                    match frame.into_data() {
                        Ok(mut data) => {
                            let chunk = data.copy_to_bytes(data.remaining());
                            if !chunk.is_empty() {
                                return Poll::Ready(Some(Ok(Step::Chunk(chunk))));
                            }
                        }
                        Err(frame) => {
                            if let Ok(fields) = frame.into_trailers() {
                                if let Err(err) = start.send_trailers(allowed_trailers(fields)) {
                                    stage.set(Stage::Done);
                                    return fail(MountError::Trailers(err));
                                }
                            }
                            // A frame of another kind carries nothing RGI
                            // can send.
                        }
                    }
                }
                StageProj::Done => return Poll::Ready(None),
            }
        }
    }
}

/// The stage a response of the service leads to, its head started: its
/// body, or the end for a `101` nobody can switch to (`501`).
///
/// # Errors
///
/// [`MountError::InformationalStatus`] for another 1xx; what
/// [`StartResponse::start`] refuses.
fn answered<S, F, B: HttpBody>(
    response: Response<B>,
    start: &mut StartResponse<'_>,
) -> Result<Stage<S, F, B>, BoxError> {
    let (parts, body) = response.into_parts();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        tracing::warn!(
            "a mounted tower service answered 101 Switching Protocols to a request the server \
             offers no upgrade for; answering 501"
        );
        start.start(ResponseHead::new(StatusCode::NOT_IMPLEMENTED))?;
        return Ok(Stage::Done);
    }
    if parts.status.is_informational() {
        return Err(Box::new(MountError::InformationalStatus {
            status: parts.status,
        }));
    }
    let head = response_head(
        parts.status,
        parts.headers,
        &body.size_hint(),
        start.is_head_request(),
    );
    start.start(head)?;
    Ok(Stage::Streaming { body })
}

/// The request a mounted service gets for `environ` (see
/// [`TowerApplication`]): mount-relative when `strip_script_name`.
pub(crate) fn mounted_request(
    environ: Environ,
    strip_script_name: bool,
) -> Result<Request<InputBody>, MountError> {
    let script_name = environ.script_name().clone();
    let connection = Arc::clone(environ.connection());
    let server = Arc::clone(environ.server_info());
    let (mut parts, input) = environ.into_parts();
    if strip_script_name {
        let relative = mount_relative(&parts.uri, &script_name)?;
        let original = std::mem::replace(&mut parts.uri, relative);
        parts.extensions.insert(OriginalUri(original));
    } else {
        parts.extensions.insert(OriginalUri(parts.uri.clone()));
    }
    parts.extensions.insert(ScriptName(script_name));
    parts.extensions.insert(connection);
    parts.extensions.insert(server);
    Ok(Request::from_parts(parts, InputBody::new(input)))
}

/// The step that fails the response with `error`.
fn fail(error: MountError) -> Poll<Option<Result<Step, BoxError>>> {
    Poll::Ready(Some(Err(Box::new(error))))
}

/// The service's trailer fields less those no trailer section may carry
/// (RFC 9110 §6.5.1), which a recipient must not act on anyway.
fn allowed_trailers(mut fields: HeaderMap) -> HeaderMap {
    let forbidden: Vec<HeaderName> = fields
        .keys()
        .filter(|name| is_forbidden_trailer(name))
        .cloned()
        .collect();
    for name in forbidden {
        tracing::debug!(field = %name, "dropping a field no trailer section may carry");
        fields.remove(name);
    }
    fields
}

/// The RGI head for the service's response head; see
/// [`TowerApplication`] for the rules.
fn response_head(
    status: StatusCode,
    mut headers: HeaderMap,
    hint: &SizeHint,
    head_request: bool,
) -> ResponseHead {
    remove_connection_fields(&mut headers);
    let bodiless = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    match declared_length(&headers) {
        None => {
            let computed = hint
                .exact()
                .filter(|_| !head_request && !bodiless && !headers.contains_key(TRAILER));
            if let Some(length) = computed {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
            }
        }
        Some(declared) => {
            let keep = status != StatusCode::NO_CONTENT
                && declared.is_some_and(|length| {
                    head_request
                        || status == StatusCode::NOT_MODIFIED
                        || hint.exact() == Some(length)
                });
            if !keep {
                headers.remove(CONTENT_LENGTH);
            }
        }
    }
    ResponseHead::from_parts(status, headers)
}

/// The Content-Length the fields declare: `None` without the field,
/// `Some(None)` when its values are not one decimal number.
fn declared_length(headers: &HeaderMap) -> Option<Option<u64>> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let first = values.next()?;
    let parse = |value: &HeaderValue| {
        let text = value.to_str().ok()?;
        (!text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
            .then(|| text.parse::<u64>().ok())
            .flatten()
    };
    let length = parse(first);
    let agreed = values.all(|value| parse(value).is_some_and(|other| Some(other) == length));
    Some(length.filter(|_| agreed))
}

/// Removes the connection-specific fields (RFC 9110 §7.6.1), those a
/// `Connection` field names included: the server writes its own.
pub(crate) fn remove_connection_fields(headers: &mut HeaderMap) {
    // Most responses carry none of them: one pass over the names (standard
    // ones compare without hashing) spares the six removals' lookups, about
    // 1,300 instructions a request of a mounted axum hello.
    if !headers.keys().any(is_connection_field) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|option| HeaderName::from_bytes(option.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [CONNECTION, TRANSFER_ENCODING, TE, UPGRADE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Whether `name` is one of the fields [`remove_connection_fields`] always
/// removes (`Connection` standing for those it names).
fn is_connection_field(name: &HeaderName) -> bool {
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == TE
        || name == UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// The target `uri` relative to the mount point `script_name`: the raw
/// path with the raw segments that decode to `script_name` removed, the
/// query kept. The target itself when `script_name` is empty.
fn mount_relative(uri: &Uri, script_name: &PathBytes) -> Result<Uri, MountError> {
    if script_name.is_empty() {
        return Ok(uri.clone());
    }
    let raw = uri.path();
    let mount_end = raw_mount_len(raw, script_name.as_bytes()).ok_or_else(|| {
        MountError::ScriptNameNotInPath {
            script_name: script_name.clone(),
            path: raw.to_owned(),
        }
    })?;
    let rest = raw.get(mount_end..).unwrap_or_default();
    let query = uri.query();
    let mut target = String::with_capacity(rest.len() + 2 + query.map_or(0, str::len));
    target.push_str(if rest.is_empty() { "/" } else { rest });
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    let path_and_query =
        PathAndQuery::try_from(target).map_err(|err| MountError::InvalidTarget(err.into()))?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|err| MountError::InvalidTarget(err.into()))
}

/// How many bytes of `raw_path` the mount point takes: the whole leading
/// raw segments (each `/` and what follows up to the next `/`) whose
/// percent-decoding, joined, is `script_name`. `None` when no such
/// segments exist (the mount point ends inside a segment, or is not there).
fn raw_mount_len(raw_path: &str, script_name: &[u8]) -> Option<usize> {
    let raw = raw_path.as_bytes();
    let mut taken = 0;
    let mut wanted = script_name.iter();
    while wanted.len() > 0 {
        if raw.get(taken) != Some(&b'/') {
            return None;
        }
        let segment_end = raw
            .get(taken + 1..)?
            .iter()
            .position(|&byte| byte == b'/')
            .map_or(raw.len(), |offset| taken + 1 + offset);
        for byte in Decoded(raw.get(taken..segment_end)?) {
            if wanted.next() != Some(&byte) {
                return None;
            }
        }
        taken = segment_end;
    }
    Some(taken)
}

/// The percent-decoded bytes of a raw path piece; an escape that is not
/// one (a `%` without two hex digits) stays as it is.
struct Decoded<'a>(&'a [u8]);

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        if first == b'%' {
            if let [high, low, after @ ..] = rest {
                if let (Some(high), Some(low)) = (hex(*high), hex(*low)) {
                    self.0 = after;
                    return Some(high << 4 | low);
                }
            }
        }
        self.0 = rest;
        Some(first)
    }
}

/// The value of one hex digit.
fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &'static str) -> PathBytes {
        PathBytes::from(bytes::Bytes::from_static(text.as_bytes()))
    }

    fn relative(uri: &'static str, script_name: &'static str) -> Result<Uri, MountError> {
        mount_relative(&Uri::from_static(uri), &path(script_name))
    }

    #[test]
    fn the_mount_point_is_removed_from_the_raw_path() {
        let cases = [
            ("/api/users/7?full=1", "/api", "/users/7?full=1"),
            ("/api", "/api", "/"),
            ("/api?x=1", "/api", "/?x=1"),
            ("/api/", "/api", "/"),
            ("/a%20b/c%2Fd/e", "/a b", "/c%2Fd/e"),
            ("/a%2Fb/c", "/a/b", "/c"),
            ("/x/y/z", "/x/y", "/z"),
            ("/api//double", "/api", "//double"),
            ("/caf%C3%A9/menu", "/café", "/menu"),
        ];
        for (uri, script_name, expected) in cases {
            let relative = relative(uri, script_name).map(|uri| uri.to_string());
            assert_eq!(
                relative.ok().as_deref(),
                Some(expected),
                "{uri} at {script_name}"
            );
        }
    }

    #[test]
    fn the_root_mount_keeps_the_target() {
        let uri = relative("/a%2Fb?q", "").map(|uri| uri.to_string());
        assert_eq!(uri.ok().as_deref(), Some("/a%2Fb?q"));
    }

    #[test]
    fn an_absolute_form_target_keeps_its_authority() {
        let uri = relative("http://example.org/api/x", "/api").map(|uri| uri.to_string());
        assert_eq!(uri.ok().as_deref(), Some("http://example.org/x"));
    }

    #[test]
    fn a_mount_point_that_ends_inside_a_segment_is_refused() {
        for (uri, script_name) in [("/apple", "/app"), ("/app%2Fx", "/app"), ("/other", "/api")] {
            assert!(
                matches!(
                    relative(uri, script_name),
                    Err(MountError::ScriptNameNotInPath { .. })
                ),
                "{uri} at {script_name}"
            );
        }
    }

    fn head(
        status: StatusCode,
        fields: &[(&'static str, &'static str)],
        hint: SizeHint,
        head_request: bool,
    ) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(*name, HeaderValue::from_static(value));
        }
        response_head(status, headers, &hint, head_request)
            .into_parts()
            .1
    }

    #[test]
    fn connection_specific_fields_are_removed() {
        let headers = head(
            StatusCode::OK,
            &[
                ("connection", "close, x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("transfer-encoding", "chunked"),
                ("te", "trailers"),
                ("upgrade", "h2c"),
                ("x-kept", "yes"),
            ],
            SizeHint::new(),
            false,
        );
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "yes");
    }

    #[test]
    fn a_content_length_is_kept_only_when_the_body_agrees() {
        let agrees = head(
            StatusCode::OK,
            &[("content-length", "5")],
            SizeHint::with_exact(5),
            false,
        );
        assert_eq!(agrees["content-length"], "5");
        let differs = head(
            StatusCode::OK,
            &[("content-length", "5")],
            SizeHint::with_exact(4),
            false,
        );
        assert!(!differs.contains_key("content-length"));
        let unknown = head(
            StatusCode::OK,
            &[("content-length", "5")],
            SizeHint::new(),
            false,
        );
        assert!(!unknown.contains_key("content-length"));
        let invalid = head(
            StatusCode::OK,
            &[("content-length", "5, 6")],
            SizeHint::with_exact(5),
            false,
        );
        assert!(!invalid.contains_key("content-length"));
        let repeated = head(
            StatusCode::OK,
            &[("content-length", "5"), ("content-length", "5")],
            SizeHint::with_exact(5),
            false,
        );
        assert_eq!(repeated.get_all("content-length").iter().count(), 2);
    }

    #[test]
    fn a_head_response_or_304_keeps_the_representation_length() {
        let head_request = head(
            StatusCode::OK,
            &[("content-length", "42")],
            SizeHint::with_exact(0),
            true,
        );
        assert_eq!(head_request["content-length"], "42");
        let not_modified = head(
            StatusCode::NOT_MODIFIED,
            &[("content-length", "42")],
            SizeHint::with_exact(0),
            false,
        );
        assert_eq!(not_modified["content-length"], "42");
        let no_content = head(
            StatusCode::NO_CONTENT,
            &[("content-length", "0")],
            SizeHint::with_exact(0),
            false,
        );
        assert!(!no_content.contains_key("content-length"));
    }

    #[test]
    fn an_exact_body_gives_the_length_unless_trailers_are_announced() {
        let computed = head(StatusCode::OK, &[], SizeHint::with_exact(11), false);
        assert_eq!(computed["content-length"], "11");
        let announced = head(
            StatusCode::OK,
            &[("trailer", "grpc-status")],
            SizeHint::with_exact(11),
            false,
        );
        assert!(!announced.contains_key("content-length"));
        let for_head = head(StatusCode::OK, &[], SizeHint::with_exact(0), true);
        assert!(!for_head.contains_key("content-length"));
        let no_content = head(StatusCode::NO_CONTENT, &[], SizeHint::with_exact(0), false);
        assert!(!no_content.contains_key("content-length"));
    }

    #[test]
    fn forbidden_trailers_are_dropped() {
        let mut fields = HeaderMap::new();
        fields.insert("grpc-status", HeaderValue::from_static("0"));
        fields.insert("content-length", HeaderValue::from_static("3"));
        let allowed = allowed_trailers(fields);
        assert_eq!(allowed.len(), 1);
        assert_eq!(allowed["grpc-status"], "0");
    }
}
