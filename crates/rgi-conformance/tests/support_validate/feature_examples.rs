//! Broken examples for the checks of RGI 1.2's optional features: early
//! hints, trailers both ways, event streams and the lifespan calls, broken
//! by an application, a middleware or the server.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use rgi::{
    Application, Body, BoxError, Environ, EnvironBuilder, Features, Input, ResponseHead,
    ResponseState, ServerInfo, StartResponse, Startup, TrailerSlot,
};
use rgi_async::AsyncApplication;
use rgi_conformance::Violation;
use rgi_conformance::rt::{Recorder, serve_async_with, serve_sync_with};
use rgi_conformance::validate::{AsyncValidator, Validator};

use super::common::{AsyncSteps, Steps, async_environ, build, collect, environ, text};

/// Every feature a server can declare but lifespan, which the examples
/// of the other features leave out so as not to need a start-up.
pub(crate) const ALL: Features = Features::none()
    .with_request_trailers(true)
    .with_response_trailers(true)
    .with_early_hints(true);

/// Every feature, lifespan included.
pub(crate) const LIFESPAN: Features = ALL.with_lifespan(true);

/// One field.
pub(crate) fn fields(name: &'static str, value: &'static str) -> HeaderMap {
    let mut fields = HeaderMap::new();
    fields.insert(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    );
    fields
}

/// A server description declaring `features`.
pub(crate) fn server(features: Features) -> Arc<ServerInfo> {
    Arc::new(
        ServerInfo::new("example.org", 80)
            .expect("a valid server name")
            .with_features(features),
    )
}

/// A request to a server that declares every feature, over HTTP/1.1 with
/// `TE: trailers`.
pub(crate) fn featured() -> EnvironBuilder {
    environ()
        .server_info(server(ALL))
        .header(header::TE, HeaderValue::from_static("trailers"))
}

/// The state a correct server prepares for `environ`: trailers for
/// HTTP/1.1 with `TE: trailers`, early hints for HTTP/1.1, each only when
/// declared.
pub(crate) fn prepared(environ: &Environ) -> ResponseState {
    let mut state = ResponseState::new(environ.method());
    let features = environ.features();
    let http11 = environ.version() >= Version::HTTP_11;
    let head = environ.method() == Method::HEAD;
    if features.response_trailers() && http11 && !head && environ.headers().contains_key(header::TE)
    {
        state.enable_trailers();
    }
    if features.early_hints() && http11 {
        state.enable_early_hints();
    }
    state
}

/// Serves `app` through a collecting validator with `state`.
pub(crate) fn served_with<A: Application>(
    app: A,
    environ: Environ,
    state: ResponseState,
) -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(app, reports.clone());
    let _ = serve_sync_with(
        &validator,
        environ,
        state,
        &mut Recorder::new(),
        |_, _, _| {},
    );
    drop(validator);
    reports.all()
}

/// Serves `app` to `environ` with the state a correct server prepares.
pub(crate) fn served<A: Application>(app: A, environ: Environ) -> Vec<Violation> {
    let state = prepared(&environ);
    served_with(app, environ, state)
}

/// A body that yields one chunk, then runs `later` on the handle of its
/// second pull and ends.
fn then<F>(later: F) -> impl Body
where
    F: FnMut(&mut StartResponse<'_>) + Send + 'static,
{
    let mut later = later;
    Steps(0, move |pull, start: &mut StartResponse<'_>| match pull {
        0 => Some(Ok(Bytes::from_static(b"page"))),
        1 => {
            later(start);
            None
        }
        _ => None,
    })
}

// ---- the application ----

/// Sends early hints once the head went out with the first chunk.
pub(crate) fn early_hints_after_head() -> Vec<Violation> {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(then(|start| {
            let _refused = start.send_early_hints(fields("link", "</a.css>; rel=preload"));
        }))
    });
    served(app, build(featured()))
}

/// Puts a Content-Length into early hints.
pub(crate) fn early_hints_invalid_field() -> Vec<Violation> {
    let app = rgi::from_fn(|_environ: Environ, start| {
        let _refused = start.send_early_hints(fields("content-length", "4"));
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"page"))
    });
    served(app, build(featured()))
}

/// Sends `set-cookie` as a trailer.
pub(crate) fn trailers_forbidden_field() -> Vec<Violation> {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(
            text(StatusCode::OK)
                .with_header(header::TRAILER, HeaderValue::from_static("set-cookie")),
        )?;
        Ok(then(|start| {
            let _refused = start.send_trailers(fields("set-cookie", "id=1"));
        }))
    });
    served(app, build(featured()))
}

/// Gives the trailers twice.
pub(crate) fn trailers_twice() -> Vec<Violation> {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(
            text(StatusCode::OK).with_header(header::TRAILER, HeaderValue::from_static("x-rows")),
        )?;
        start.send_trailers(fields("x-rows", "1"))?;
        Ok(then(|start| {
            let _refused = start.send_trailers(fields("x-rows", "2"));
        }))
    });
    served(app, build(featured()))
}

/// Sends a trailer its head never announced.
pub(crate) fn trailers_not_announced() -> Vec<Violation> {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(then(|start| {
            let _sent = start.send_trailers(fields("x-rows", "1"));
        }))
    });
    served(app, build(featured()))
}

/// Asks for the request trailers before reading the body, and fails with
/// the answer.
pub(crate) fn trailers_read_before_end() -> Vec<Violation> {
    let app = rgi::from_fn(|environ: Environ, start| {
        let trailers = environ.input().trailers()?;
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from(format!("{:?}", trailers.map(|t| t.len()))))
    });
    let slot = TrailerSlot::filled(fields("x-sum", "1"));
    let input = Input::new(&b"upload"[..], None).with_trailers(slot);
    served(app, build(featured().method(Method::PUT).input(input)))
}

/// Frames an event stream by a Content-Length, without `no-cache`.
pub(crate) fn event_stream_head_invalid() -> Vec<Violation> {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                )
                .with_header(header::CONTENT_LENGTH, HeaderValue::from(9)),
        )?;
        Ok(Bytes::from_static(b"data: x\n\n"))
    });
    served(app, build(featured()))
}

/// Ends an event stream without the blank line of its last event.
pub(crate) fn event_stream_malformed() -> Vec<Violation> {
    let app = rgi::from_fn(|_environ: Environ, start| {
        start.start(rgi::sse::head())?;
        Ok(rgi::from_iter([
            Bytes::from_static(b"data: one\n\n"),
            Bytes::from_static(b"data: two\n"),
        ]))
    });
    served(app, build(featured()))
}

/// Yields the one event of its stream in two chunks.
fn split_event(
    poll: u32,
    _cx: &mut std::task::Context<'_>,
    _start: &mut StartResponse<'_>,
) -> std::task::Poll<Option<Result<rgi_async::Step, BoxError>>> {
    std::task::Poll::Ready(match poll {
        0 => Some(Ok(rgi_async::Step::Chunk(Bytes::from_static(b"data: a\n")))),
        1 => Some(Ok(rgi_async::Step::Chunk(Bytes::from_static(b"\n")))),
        _ => None,
    })
}

/// An asynchronous event stream that splits an event over two chunks.
pub(crate) fn async_event_not_one_chunk() -> Vec<Violation> {
    let app = rgi_async::from_fn(|_environ: Environ, start| {
        start.start(rgi::sse::head())?;
        Ok(AsyncSteps(0, split_event))
    });
    served_async(app, build(async_environ().server_info(server(ALL))))
}

/// Serves an asynchronous `app` through a collecting validator with the
/// state a correct server prepares.
pub(crate) fn served_async<A: AsyncApplication>(app: A, environ: Environ) -> Vec<Violation> {
    let reports = collect();
    let validator = AsyncValidator::new(app, reports.clone());
    let state = prepared(&environ);
    let _ = serve_async_with(&validator, environ, state, &mut Recorder::new());
    drop(validator);
    reports.all()
}

// ---- a middleware ----

/// Reads the whole body ahead and hands inward an input without the
/// original's trailers.
struct PreReads<A>(A);

impl<A: Application> Application for PreReads<A> {
    type Body = A::Body;

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<A::Body, BoxError> {
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        environ.replace_input(Input::from_bytes(body));
        self.0.call(environ, start)
    }
}

/// The application inside: reads the body, then its trailers.
fn reads_trailers() -> impl Application {
    rgi::from_fn(|mut environ: Environ, start| {
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        let trailers = environ.input().trailers()?;
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from(format!(
            "{} bytes, {:?}",
            body.len(),
            trailers.map(|t| t.len())
        )))
    })
}

/// A chunked upload with one trailer field.
fn upload_with_trailers() -> Environ {
    let slot = TrailerSlot::filled(fields("x-sum", "1"));
    let input = Input::new(&b"upload"[..], None).with_trailers(slot);
    build(featured().method(Method::PUT).input(input))
}

/// A middleware pre-reads the body and loses the trailers.
pub(crate) fn mw_trailers_dropped() -> Vec<Violation> {
    let reports = collect();
    let app = Validator::new(
        PreReads(Validator::new(reads_trailers(), reports.clone())),
        reports.clone(),
    );
    let environ = upload_with_trailers();
    let state = prepared(&environ);
    let _ = serve_sync_with(&app, environ, state, &mut Recorder::new(), |_, _, _| {});
    drop(app);
    reports.all()
}

/// A middleware that forwards `call` and, as `forwards_startup` says,
/// `startup`; never `shutdown`.
struct Forgets<A> {
    inner: A,
    forwards_startup: bool,
}

impl<A: Application> Application for Forgets<A> {
    type Body = A::Body;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        self.inner.call(environ, start)
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        if self.forwards_startup {
            self.inner.startup(startup)
        } else {
            Ok(())
        }
    }
}

/// A plain application.
fn page() -> impl Application {
    rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"page"))
    })
}

/// Starts `app` as a server declaring lifespan does, then serves one
/// request with the state it returned (or, if start-up failed, with the
/// server's own description); returns the environ's server for reuse.
fn start_and_serve<A: Application>(app: &A) -> Arc<ServerInfo> {
    let info = (*server(LIFESPAN)).clone();
    let info =
        Arc::new(rgi::run_startup(info.clone(), |startup| app.startup(startup)).unwrap_or(info));
    let environ = build(featured().server_info(Arc::clone(&info)));
    let state = prepared(&environ);
    let _ = serve_sync_with(app, environ, state, &mut Recorder::new(), |_, _, _| {});
    info
}

/// A middleware that keeps `startup` to itself.
pub(crate) fn mw_startup_not_forwarded() -> Vec<Violation> {
    let reports = collect();
    let app = Validator::new(
        Forgets {
            inner: Validator::new(page(), reports.clone()),
            forwards_startup: false,
        },
        reports.clone(),
    );
    start_and_serve(&app);
    drop(app);
    reports.all()
}

/// A middleware that forwards `startup` and keeps `shutdown` to itself.
pub(crate) fn mw_shutdown_not_forwarded() -> Vec<Violation> {
    let reports = collect();
    let app = Validator::new(
        Forgets {
            inner: Validator::new(page(), reports.clone()),
            forwards_startup: true,
        },
        reports.clone(),
    );
    start_and_serve(&app);
    let _ = rgi::run_shutdown(|| app.shutdown());
    drop(app);
    reports.all()
}

// ---- the server ----

/// Serves `app`, wrapped in a collecting validator, as `serve` says.
fn with_validator<A: Application>(app: A, serve: impl FnOnce(&Validator<A>)) -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(app, reports.clone());
    serve(&validator);
    drop(validator);
    reports.all()
}

/// One request through `validator`, with `info` as the server.
fn request<A: Application>(validator: &Validator<A>, info: Arc<ServerInfo>) {
    let environ = build(featured().server_info(info));
    let state = prepared(&environ);
    let _ = serve_sync_with(
        validator,
        environ,
        state,
        &mut Recorder::new(),
        |_, _, _| {},
    );
}

/// Declares lifespan and serves without calling startup.
pub(crate) fn called_before_startup() -> Vec<Violation> {
    with_validator(page(), |validator| request(validator, server(LIFESPAN)))
}

/// Calls startup twice.
pub(crate) fn startup_twice() -> Vec<Violation> {
    with_validator(page(), |validator| {
        let info = (*server(LIFESPAN)).clone();
        let _ = rgi::run_startup(info.clone(), |startup| validator.startup(startup));
        let _ = rgi::run_startup(info, |startup| validator.startup(startup));
    })
}

/// Starts the application, then serves it with a description without the
/// start-up state.
pub(crate) fn startup_state_missing() -> Vec<Violation> {
    with_validator(page(), |validator| {
        let _ = rgi::run_startup((*server(LIFESPAN)).clone(), |startup| {
            validator.startup(startup)
        });
        request(validator, server(LIFESPAN));
    })
}

/// An application whose start-up fails.
fn fails_to_start() -> impl Application {
    rgi::with_lifespan(
        page(),
        |_startup| Err("the database is unreachable".into()),
        || {},
    )
}

/// Serves an application whose start-up failed.
pub(crate) fn called_after_failed_startup() -> Vec<Violation> {
    with_validator(fails_to_start(), |validator| {
        start_and_serve(validator);
    })
}

/// Calls shutdown without a start-up.
pub(crate) fn shutdown_without_startup() -> Vec<Violation> {
    with_validator(page(), Application::shutdown)
}

/// Calls shutdown twice.
pub(crate) fn shutdown_twice() -> Vec<Violation> {
    with_validator(page(), |validator| {
        start_and_serve(validator);
        validator.shutdown();
        validator.shutdown();
    })
}

/// Calls shutdown while a body is still alive.
pub(crate) fn shutdown_before_last_response() -> Vec<Violation> {
    with_validator(page(), |validator| {
        let info = rgi::run_startup((*server(LIFESPAN)).clone(), |startup| {
            validator.startup(startup)
        })
        .expect("the start-up succeeds");
        let environ = build(featured().server_info(Arc::new(info)));
        let mut state = prepared(&environ);
        let mut sink = Recorder::new();
        let body = validator.call(environ, &mut state.start_response(&mut sink));
        validator.shutdown();
        drop(body);
    })
}

/// Serves a request after shutdown.
pub(crate) fn called_after_shutdown() -> Vec<Violation> {
    with_validator(page(), |validator| {
        let info = start_and_serve(validator);
        validator.shutdown();
        request(validator, info);
    })
}

/// Enables trailers on an HTTP/1.1 request without `TE: trailers`.
pub(crate) fn trailers_enabled_wrongly() -> Vec<Violation> {
    let environ = build(environ().server_info(server(ALL)));
    let mut state = ResponseState::new(environ.method());
    state.enable_trailers();
    served_with(page(), environ, state)
}

/// Enables early hints on an HTTP/1.0 request.
pub(crate) fn early_hints_on_http10() -> Vec<Violation> {
    let environ = build(
        Environ::builder()
            .version(Version::HTTP_10)
            .server_info(server(ALL)),
    );
    let mut state = ResponseState::new(environ.method());
    state.enable_early_hints();
    served_with(page(), environ, state)
}

/// Enables trailers without declaring them.
pub(crate) fn feature_undeclared() -> Vec<Violation> {
    let environ = build(environ().header(header::TE, HeaderValue::from_static("trailers")));
    let mut state = ResponseState::new(environ.method());
    state.enable_trailers();
    served_with(page(), environ, state)
}
