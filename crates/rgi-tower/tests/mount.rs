//! `TowerApplication`: tower services mounted as RGI asynchronous
//! applications, driven in process, by the conformance kit's driver and by
//! this file's own (which lends trailers and counts polls). The
//! real-socket tests (axum inside `rgi-server`, trailers on HTTP/2, the
//! toy server's refusal) are in `tests/mount_servers.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed unwrap is the test's failure"
)]

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body::{Body as _, Frame};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use rgi::{
    AsyncSource, BoxError, ConnectionInfo, Environ, Input, InputError, ResponseHead, ResponseSink,
    ResponseState, ServerInfo, TrailerSlot,
};
use rgi_async::{AsyncApplication, AsyncBody, Capabilities, Offload, Runtime, RuntimeError};
use rgi_conformance::rt::{Outcome, Recorder, ThreadOffload, serve_async};
use rgi_conformance::validate::AsyncValidator;
use rgi_conformance::{Policy, Reports};
use rgi_tower::{InputBody, MountError, OriginalUri, ScriptName, from_service};
use tower::service_fn;

fn text(body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::new(Full::new(body.into()))
}

fn fields(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

/// One frame of a [`frames`] body.
type FrameResult = Result<Frame<Bytes>, BoxError>;

/// A response body of the given frames, in order, without a size hint.
fn frames(
    frames: Vec<FrameResult>,
) -> StreamBody<futures_util::stream::Iter<std::vec::IntoIter<FrameResult>>> {
    StreamBody::new(futures_util::stream::iter(frames))
}

/// What [`drive`] saw on its wire.
#[derive(Debug, Default)]
struct Wire {
    heads: Vec<ResponseHead>,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
}

impl ResponseSink for Wire {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.heads.push(head);
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.body.extend_from_slice(&data);
        Ok(())
    }

    fn send_trailers(&mut self, fields: HeaderMap) -> io::Result<()> {
        self.trailers = Some(fields);
        Ok(())
    }
}

/// Wakes the test's thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Serves one request the way an HTTP/2 server would (trailers enabled),
/// parking between wake-ups; `between` runs after each `Pending`. Returns
/// the wire and the error the response failed with, if any.
fn drive<A: AsyncApplication>(
    app: &A,
    environ: Environ,
    mut between: impl FnMut(),
) -> (Wire, Option<BoxError>) {
    let mut state = ResponseState::new(environ.method());
    state.enable_trailers();
    let mut wire = Wire::default();
    let called = app.call(environ, &mut state.start_response(&mut wire));
    let mut body = match called {
        Ok(body) => Box::pin(body),
        Err(err) => return (wire, Some(err)),
    };
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match body
            .as_mut()
            .poll_step(&mut cx, &mut state.start_response(&mut wire))
        {
            Poll::Pending => {
                between();
                thread::park_timeout(std::time::Duration::from_millis(100));
            }
            Poll::Ready(Some(Ok(rgi_async::Step::Chunk(chunk)))) => {
                state.send_chunk(&mut wire, chunk).unwrap();
            }
            Poll::Ready(Some(Ok(other))) => panic!("unexpected step {other:?}"),
            Poll::Ready(Some(Err(err))) => return (wire, Some(err)),
            Poll::Ready(None) => {
                drop(body);
                state.finish(&mut wire).unwrap();
                return (wire, None);
            }
        }
    }
}

/// The server-wide state a start-up hook would store.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Region(&'static str);

/// A per-request extension a middleware would add.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RequestTag(u32);

#[test]
fn the_request_is_built_from_the_environ() {
    let seen = Arc::new(Mutex::new(String::new()));
    let record = Arc::clone(&seen);
    let service = service_fn(move |request: Request<InputBody>| {
        let record = Arc::clone(&record);
        async move {
            let extensions = request.extensions();
            let connection = extensions.get::<Arc<ConnectionInfo>>().unwrap();
            let server = extensions.get::<Arc<ServerInfo>>().unwrap();
            *record.lock().unwrap() = format!(
                "{} {} {:?} host={:?} original={} script={} peer={} region={:?} tag={:?}",
                request.method(),
                request.uri(),
                request.version(),
                request.headers()[header::HOST],
                extensions.get::<OriginalUri>().unwrap().0,
                extensions.get::<ScriptName>().unwrap().0,
                connection.peer_addr().unwrap(),
                server.extension::<Region>(),
                extensions.get::<RequestTag>(),
            );
            Ok::<_, Infallible>(text("seen"))
        }
    });
    let server = Arc::new(
        ServerInfo::new("shop.example", 8080)
            .unwrap()
            .with_script_name("/shop front")
            .unwrap()
            .with_extension(Region("eu")),
    );
    let environ = Environ::builder()
        .method(Method::PUT)
        .version(http::Version::HTTP_2)
        .uri(Uri::from_static("/shop%20front/a%2Fb/c%20d?x=%2F"))
        .server_info(server)
        .header(header::HOST, HeaderValue::from_static("shop.example"))
        .remote_addr("192.0.2.7:50000".parse().unwrap())
        .extension(RequestTag(7))
        .build()
        .unwrap();
    let mut wire = Recorder::new();
    let served = serve_async(&from_service(service), environ, &mut wire);
    assert!(served.outcome.is_complete(), "{:?}", served.outcome);
    assert_eq!(wire.body(), b"seen");
    assert_eq!(
        *seen.lock().unwrap(),
        "PUT /a%2Fb/c%20d?x=%2F HTTP/2.0 host=\"shop.example\" \
         original=/shop%20front/a%2Fb/c%20d?x=%2F script=/shop front peer=192.0.2.7:50000 \
         region=Some(Region(\"eu\")) tag=Some(RequestTag(7))"
    );
}

#[test]
fn a_shifted_environ_is_mounted_where_it_was_shifted_to() {
    let service = service_fn(|request: Request<InputBody>| async move {
        let script = request
            .extensions()
            .get::<ScriptName>()
            .unwrap()
            .0
            .to_string();
        Ok::<_, Infallible>(text(format!("{} at {script}", request.uri())))
    });
    let mut environ = Environ::builder()
        .uri(Uri::from_static("/v1/users%2Fadmins/7"))
        .build()
        .unwrap();
    environ.shift_path();
    environ.shift_path();
    let mut wire = Recorder::new();
    serve_async(&from_service(service), environ, &mut wire);
    assert_eq!(wire.body(), b"/7 at /v1/users/admins");
}

/// A service that is ready only once `open`, counting its polls and
/// calls.
#[derive(Clone, Default)]
struct Gated {
    open: Arc<AtomicBool>,
    waiting: Arc<Mutex<Option<Waker>>>,
    readiness_polls: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Gated {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waiting.lock().unwrap().take() {
            waker.wake();
        }
    }
}

impl tower_service::Service<Request<InputBody>> for Gated {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.readiness_polls.fetch_add(1, Ordering::SeqCst);
        if self.open.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        *self.waiting.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }

    fn call(&mut self, _request: Request<InputBody>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(text("opened")))
    }
}

#[test]
fn call_polls_nothing_and_readiness_is_awaited_in_poll_step() {
    let gated = Gated::default();
    let app = from_service(gated.clone());
    let mut state = ResponseState::new(&Method::GET);
    let mut wire = Wire::default();
    let environ = Environ::builder().build().unwrap();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .unwrap();
    assert_eq!(
        gated.readiness_polls.load(Ordering::SeqCst),
        0,
        "call polled the service"
    );
    assert_eq!(
        gated.calls.load(Ordering::SeqCst),
        0,
        "call called the service"
    );
    drop(body);

    let mut pendings = 0;
    let (wire, failed) = drive(&app, Environ::builder().build().unwrap(), || {
        pendings += 1;
        assert_eq!(gated.calls.load(Ordering::SeqCst), 0, "called before ready");
        gated.open();
    });
    assert!(failed.is_none(), "{failed:?}");
    assert_eq!(pendings, 1);
    assert_eq!(gated.readiness_polls.load(Ordering::SeqCst), 2);
    assert_eq!(gated.calls.load(Ordering::SeqCst), 1);
    assert_eq!(wire.body, b"opened");
}

#[test]
fn each_request_gets_a_clone_of_the_service() {
    /// Counts its own calls; clones share nothing.
    #[derive(Clone, Default)]
    struct Fresh(u32);

    impl tower_service::Service<Request<InputBody>> for Fresh {
        type Response = Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: Request<InputBody>) -> Self::Future {
            self.0 += 1;
            std::future::ready(Ok(text(self.0.to_string())))
        }
    }

    let app = from_service(Fresh::default());
    for _ in 0..3 {
        let mut wire = Recorder::new();
        serve_async(&app, Environ::builder().build().unwrap(), &mut wire);
        assert_eq!(wire.body(), b"1");
    }
}

#[test]
fn the_request_body_and_its_trailers_reach_the_service_and_come_back() {
    // Echoes the body and answers the request's trailers as its own.
    let service = service_fn(|request: Request<InputBody>| async move {
        let collected = request.into_body().collect().await?;
        let trailers = collected.trailers().cloned();
        let mut out = vec![Ok(Frame::data(collected.to_bytes()))];
        if let Some(mut trailers) = trailers {
            trailers.insert("x-echoed", HeaderValue::from_static("yes"));
            // Forbidden in a trailer section: dropped on the way out.
            trailers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            out.push(Ok(Frame::trailers(trailers)));
        }
        Ok::<_, InputError>(Response::new(frames(out)))
    });
    let app = from_service(service);
    let slot = TrailerSlot::filled(fields(&[("x-checksum", "c0ffee")]));
    let environ = Environ::builder()
        .method(Method::POST)
        .input(Input::from_bytes("payload").with_trailers(slot))
        .build()
        .unwrap();
    let (wire, failed) = drive(&app, environ, || {});
    assert!(failed.is_none(), "{failed:?}");
    assert_eq!(wire.body, b"payload");
    let trailers = wire.trailers.expect("trailers sent");
    assert_eq!(trailers.len(), 2, "{trailers:?}");
    assert_eq!(trailers["x-checksum"], "c0ffee");
    assert_eq!(trailers["x-echoed"], "yes");
    // No length computed for a body without an exact size.
    assert!(!wire.heads[0].headers().contains_key(header::CONTENT_LENGTH));
}

#[test]
fn the_body_is_not_polled_past_its_trailers_frame() {
    // What follows the trailers is never polled: a body may not be ready
    // for it (tonic's yields its error status a second time), and hyper
    // stops there too.
    let service = service_fn(|_request: Request<InputBody>| async {
        Ok::<_, Infallible>(Response::new(frames(vec![
            Ok(Frame::data(Bytes::from_static(b"data"))),
            Ok(Frame::trailers(fields(&[("x-a", "1")]))),
            Ok(Frame::trailers(fields(&[("x-b", "2")]))),
            Err("polled past the trailers".into()),
        ])))
    });
    let (wire, failed) = drive(
        &from_service(service),
        Environ::builder().build().unwrap(),
        || {},
    );
    assert!(failed.is_none(), "{failed:?}");
    assert_eq!(wire.heads.len(), 1);
    assert_eq!(wire.body, b"data");
    assert_eq!(wire.trailers, Some(fields(&[("x-a", "1")])));
}

/// An asynchronous source that sends `sent` and then ends, short of the
/// length its input declares.
struct ShortSource(Option<&'static [u8]>);

impl AsyncSource for ShortSource {
    fn poll_chunk(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _max: usize,
    ) -> Poll<io::Result<Bytes>> {
        Poll::Ready(Ok(self
            .get_mut()
            .0
            .take()
            .map(Bytes::from_static)
            .unwrap_or_default()))
    }
}

#[test]
fn a_client_fault_in_the_body_keeps_its_type_through_the_service_error() {
    let service = service_fn(|request: Request<InputBody>| async move {
        request.into_body().collect().await?;
        Ok::<_, InputError>(text("unreachable"))
    });
    let environ = Environ::builder()
        .method(Method::POST)
        .header(header::CONTENT_LENGTH, HeaderValue::from_static("10"))
        .input(Input::from_async(ShortSource(Some(b"abc")), Some(10)))
        .build()
        .unwrap();
    let mut wire = Recorder::new();
    let served = serve_async(&from_service(service), environ, &mut wire);
    let Outcome::FailedBeforeHead { error } = served.outcome else {
        panic!("served: {:?}", served.outcome);
    };
    assert!(matches!(
        error.downcast_ref::<MountError>(),
        Some(MountError::Service(_))
    ));
    let fault = rgi::client_body_error(&*error).expect("the client's fault is found");
    assert!(matches!(
        fault,
        InputError::Truncated {
            declared: 10,
            received: 3
        }
    ));
    assert_eq!(fault.status(), Some(StatusCode::BAD_REQUEST));
}

#[test]
fn failures_before_the_head_are_500_and_after_it_abort() {
    // Not ready.
    let not_ready = tower::service_fn(|_request: Request<InputBody>| async {
        Ok::<_, Infallible>(text("never"))
    });
    let not_ready = FailingReadiness(not_ready);
    let mut wire = Recorder::new();
    let served = serve_async(
        &from_service(not_ready),
        Environ::builder().build().unwrap(),
        &mut wire,
    );
    let Outcome::FailedBeforeHead { error } = served.outcome else {
        panic!("{:?}", served.outcome)
    };
    assert!(matches!(
        error.downcast_ref::<MountError>(),
        Some(MountError::NotReady(_))
    ));
    assert_eq!(wire.heads()[0].status(), StatusCode::INTERNAL_SERVER_ERROR);

    // The call fails.
    let failing = service_fn(|_request: Request<InputBody>| async {
        Err::<Response<Full<Bytes>>, _>(io::Error::other("database down"))
    });
    let mut wire = Recorder::new();
    let served = serve_async(
        &from_service(failing),
        Environ::builder().build().unwrap(),
        &mut wire,
    );
    let Outcome::FailedBeforeHead { error } = served.outcome else {
        panic!("{:?}", served.outcome)
    };
    assert_eq!(
        error.to_string(),
        "the mounted service failed: database down"
    );
    assert_eq!(wire.heads()[0].status(), StatusCode::INTERNAL_SERVER_ERROR);

    // The body fails before its first byte: the head was only stored.
    let early = service_fn(|_request: Request<InputBody>| async {
        Ok::<_, Infallible>(Response::new(frames(vec![Err("disk gone".into())])))
    });
    let mut wire = Recorder::new();
    let served = serve_async(
        &from_service(early),
        Environ::builder().build().unwrap(),
        &mut wire,
    );
    let Outcome::FailedBeforeHead { error } = served.outcome else {
        panic!("{:?}", served.outcome)
    };
    assert!(matches!(
        error.downcast_ref::<MountError>(),
        Some(MountError::Body(_))
    ));
    assert_eq!(wire.heads()[0].status(), StatusCode::INTERNAL_SERVER_ERROR);

    // The body fails after its first bytes went out.
    let late = service_fn(|_request: Request<InputBody>| async {
        Ok::<_, Infallible>(Response::new(frames(vec![
            Ok(Frame::data(Bytes::from_static(b"partial"))),
            Err("disk gone".into()),
        ])))
    });
    let mut wire = Recorder::new();
    let served = serve_async(
        &from_service(late),
        Environ::builder().build().unwrap(),
        &mut wire,
    );
    let Outcome::FailedAfterHead { error } = served.outcome else {
        panic!("{:?}", served.outcome)
    };
    assert_eq!(
        error.to_string(),
        "the mounted service's response body failed: disk gone"
    );
    assert_eq!(wire.heads().len(), 1);
    assert_eq!(wire.heads()[0].status(), StatusCode::OK);
    assert_eq!(wire.body(), b"partial");
}

/// A layer whose readiness always fails.
#[derive(Clone)]
struct FailingReadiness<S>(S);

impl<S: tower_service::Service<Request<InputBody>>> tower_service::Service<Request<InputBody>>
    for FailingReadiness<S>
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = std::future::Ready<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Err("overloaded".into()))
    }

    fn call(&mut self, _request: Request<InputBody>) -> Self::Future {
        std::future::ready(Err("called while not ready".into()))
    }
}

#[test]
fn informational_answers_are_refused() {
    let switching = service_fn(|_request: Request<InputBody>| async {
        let mut response = Response::new(Empty::<Bytes>::new());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        Ok::<_, Infallible>(response)
    });
    let mut wire = Recorder::new();
    let served = serve_async(
        &from_service(switching),
        Environ::builder().build().unwrap(),
        &mut wire,
    );
    assert!(served.outcome.is_complete(), "{:?}", served.outcome);
    assert_eq!(wire.heads()[0].status(), StatusCode::NOT_IMPLEMENTED);
    assert!(wire.body().is_empty());

    let early = service_fn(|_request: Request<InputBody>| async {
        let mut response = Response::new(Empty::<Bytes>::new());
        *response.status_mut() = StatusCode::EARLY_HINTS;
        Ok::<_, Infallible>(response)
    });
    let mut wire = Recorder::new();
    let served = serve_async(
        &from_service(early),
        Environ::builder().build().unwrap(),
        &mut wire,
    );
    let Outcome::FailedBeforeHead { error } = served.outcome else {
        panic!("{:?}", served.outcome)
    };
    assert!(matches!(
        error.downcast_ref::<MountError>(),
        Some(MountError::InformationalStatus { status }) if *status == StatusCode::EARLY_HINTS
    ));
}

#[test]
fn the_runtime_requirement_is_checked_before_the_service_runs() {
    let called = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&called);
    let service = service_fn(move |_request: Request<InputBody>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(text("on tokio")) }
    });
    let app = from_service(service).require_runtime(Runtime::Tokio);
    assert_eq!(app.required_runtime(), Some(Runtime::Tokio));
    let offload = || Offload::new(ThreadOffload::new());
    let cases = [
        (
            None,
            Some(RuntimeError::NotDeclared {
                wanted: Runtime::Tokio,
            }),
        ),
        (
            Some(Capabilities::builder(offload()).build()),
            Some(RuntimeError::NotDeclared {
                wanted: Runtime::Tokio,
            }),
        ),
        (
            Some(
                Capabilities::builder(offload())
                    .runtime(Runtime::Other("glommio"))
                    .build(),
            ),
            Some(RuntimeError::Different {
                wanted: Runtime::Tokio,
                declared: Runtime::Other("glommio"),
            }),
        ),
        (
            Some(
                Capabilities::builder(offload())
                    .runtime(Runtime::Tokio)
                    .build(),
            ),
            None,
        ),
    ];
    for (capabilities, refusal) in cases {
        let mut builder = Environ::builder();
        if let Some(capabilities) = capabilities {
            builder = builder.extension(capabilities);
        }
        let mut wire = Recorder::new();
        let served = serve_async(&app, builder.build().unwrap(), &mut wire);
        match (served.outcome, refusal) {
            (Outcome::FailedBeforeHead { error }, Some(refusal)) => {
                assert_eq!(error.downcast_ref::<RuntimeError>(), Some(&refusal));
                assert_eq!(wire.heads()[0].status(), StatusCode::INTERNAL_SERVER_ERROR);
            }
            (outcome, None) => {
                assert!(outcome.is_complete(), "{outcome:?}");
                assert_eq!(wire.body(), b"on tokio");
            }
            (outcome, refusal) => panic!("{outcome:?} where {refusal:?} was due"),
        }
    }
    assert_eq!(
        called.load(Ordering::SeqCst),
        1,
        "only the declared runtime reached the service"
    );
}

#[test]
fn head_and_bodiless_responses_keep_their_framing_right() {
    // Like axum: a HEAD answer keeps the GET's length, without its body.
    let service = service_fn(|request: Request<InputBody>| async move {
        let (status, body) = match request.uri().path() {
            "/no-content" => (StatusCode::NO_CONTENT, Bytes::new()),
            _ if request.method() == Method::HEAD => (StatusCode::OK, Bytes::new()),
            _ => (
                StatusCode::OK,
                Bytes::from_static(b"forty-two bytes of representation, really."),
            ),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("42"));
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        Ok::<_, Infallible>(response)
    });
    let app = from_service(service);
    for (method, path, status, length, body) in [
        (
            Method::GET,
            "/",
            StatusCode::OK,
            Some("42"),
            &b"forty-two bytes of representation, really."[..],
        ),
        (Method::HEAD, "/", StatusCode::OK, Some("42"), b""),
        (
            Method::GET,
            "/no-content",
            StatusCode::NO_CONTENT,
            None,
            b"",
        ),
    ] {
        let environ = Environ::builder()
            .method(method.clone())
            .uri(Uri::from_static(path))
            .build()
            .unwrap();
        let mut wire = Recorder::new();
        let served = serve_async(&app, environ, &mut wire);
        assert!(
            served.outcome.is_complete(),
            "{method} {path}: {:?}",
            served.outcome
        );
        let head = &wire.heads()[0];
        assert_eq!(head.status(), status);
        assert_eq!(
            head.headers()
                .get(header::CONTENT_LENGTH)
                .map(|v| v.to_str().unwrap()),
            length,
            "{method} {path}"
        );
        assert!(!head.headers().contains_key(header::CONNECTION));
        assert_eq!(wire.body(), body, "{method} {path}");
    }
}

#[test]
fn connection_specific_fields_are_dropped_and_the_rest_kept() {
    // Each alone (so that a shortcut for responses without any of them
    // cannot hide one), then none, then a field a `Connection` names.
    let cases: [&[(&'static str, &'static str)]; 8] = [
        &[("connection", "close")],
        &[("transfer-encoding", "chunked")],
        &[("te", "trailers")],
        &[("upgrade", "h2c")],
        &[("keep-alive", "timeout=5")],
        &[("proxy-connection", "keep-alive")],
        &[],
        &[("connection", "x-hop, close"), ("x-hop", "1")],
    ];
    for extra in cases {
        let answer = fields(extra);
        let service = service_fn(move |_request: Request<InputBody>| {
            let mut response = text("hi");
            response.headers_mut().extend(answer.clone());
            response
                .headers_mut()
                .insert("x-kept", HeaderValue::from_static("yes"));
            async move { Ok::<_, Infallible>(response) }
        });
        let mut wire = Recorder::new();
        let served = serve_async(
            &from_service(service),
            Environ::builder().build().unwrap(),
            &mut wire,
        );
        assert!(
            served.outcome.is_complete(),
            "{extra:?}: {:?}",
            served.outcome
        );
        let mut names: Vec<&str> = wire.heads()[0]
            .headers()
            .keys()
            .map(http::HeaderName::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-kept"], "{extra:?}");
        assert_eq!(wire.body(), b"hi");
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
fn dropping_the_body_cancels_the_response_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let service = service_fn(move |_request: Request<InputBody>| {
        let guard = DropFlag(Arc::clone(&flag));
        async move {
            std::future::pending::<()>().await;
            drop(guard);
            Ok::<_, Infallible>(text("never"))
        }
    });
    let app = from_service(service);
    let mut state = ResponseState::new(&Method::GET);
    let mut wire = Wire::default();
    let body = app
        .call(
            Environ::builder().build().unwrap(),
            &mut state.start_response(&mut wire),
        )
        .unwrap();
    let mut body = Box::pin(body);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        body.as_mut()
            .poll_step(&mut cx, &mut state.start_response(&mut wire))
            .is_pending()
    );
    assert!(!dropped.load(Ordering::SeqCst));
    drop(body);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the service's future outlived the body"
    );
}

#[test]
fn the_validator_reports_nothing_around_a_mounted_service() {
    let service = service_fn(|request: Request<InputBody>| async move {
        let method = request.method().clone();
        let collected = request.into_body().collect().await?;
        let trailers = collected.trailers().cloned();
        let body = collected.to_bytes();
        let mut out = vec![
            Ok(Frame::data(Bytes::from(format!("{method} ")))),
            Ok(Frame::data(body)),
        ];
        let announced = trailers.is_some();
        if let Some(trailers) = trailers {
            out.push(Ok(Frame::trailers(trailers)));
        }
        let mut response = Response::new(frames(out));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if announced {
            response
                .headers_mut()
                .insert(header::TRAILER, HeaderValue::from_static("x-sum"));
        }
        Ok::<_, InputError>(response)
    });
    let reports = Reports::new(Policy::Collect);
    let validator = AsyncValidator::new(from_service(service), reports.clone());
    // A server that hands the application request trailers declares them.
    let server = Arc::new(
        rgi::ServerInfo::new("example.org", 80)
            .unwrap()
            .with_features(
                rgi::Features::none()
                    .with_request_trailers(true)
                    .with_response_trailers(true),
            ),
    );
    for method in [Method::GET, Method::POST, Method::HEAD] {
        let environ = Environ::builder()
            .method(method.clone())
            .server_info(Arc::clone(&server))
            .header(header::HOST, HeaderValue::from_static("example.org"))
            .extension(Capabilities::builder(Offload::new(ThreadOffload::new())).build())
            .input(
                Input::from_bytes("body")
                    .with_trailers(TrailerSlot::filled(fields(&[("x-sum", "1")]))),
            )
            .build()
            .unwrap();
        let mut wire = Recorder::new();
        let served = serve_async(&validator, environ, &mut wire);
        assert!(
            served.outcome.is_complete(),
            "{method}: {:?}",
            served.outcome
        );
    }
    drop(validator);
    assert!(reports.is_empty(), "{:#?}", reports.all());
}

#[tokio::test]
async fn input_body_reads_the_non_blocking_face_with_an_exact_hint() {
    let mut body = InputBody::new(Input::from_bytes(Bytes::from(vec![b'x'; 100_000])));
    assert_eq!(body.size_hint().exact(), Some(100_000));
    assert!(!body.is_end_stream());
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first.len(), 64 * 1024);
    assert_eq!(body.size_hint().exact(), Some(100_000 - 64 * 1024));
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second.len(), 100_000 - 64 * 1024);
    assert!(body.is_end_stream());
    assert!(body.frame().await.is_none());

    assert!(InputBody::default().is_end_stream());

    // Trailers keep the body open until their frame went.
    let slot = TrailerSlot::filled(fields(&[("x-sum", "1")]));
    let mut body = InputBody::new(Input::from_bytes("ab").with_trailers(slot));
    body.frame().await.unwrap().unwrap();
    assert!(!body.is_end_stream());
    let trailers = body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_trailers()
        .unwrap();
    assert_eq!(trailers["x-sum"], "1");
    assert!(body.is_end_stream());
    assert!(body.frame().await.is_none());

    // A chunked body has no size hint.
    let chunked = InputBody::new(Input::from_async(ShortSource(Some(b"abc")), None));
    assert_eq!(chunked.size_hint().exact(), None);
    let collected = chunked.collect().await.unwrap();
    assert!(collected.trailers().is_none());
    assert_eq!(collected.to_bytes(), "abc");
}

#[tokio::test]
async fn input_body_refuses_to_block_on_a_blocking_input() {
    let mut body = InputBody::new(Input::new(&b"abc"[..], Some(3)));
    let error = body.frame().await.unwrap().unwrap_err();
    assert!(matches!(error, InputError::WouldBlockThread), "{error}");
}
