//! The connection loop: one request at a time, in order (`RGI-CONN-3`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use rgi::{
    Application, BoxError, Concurrency, Environ, EnvironError, Errors, FinishError, Hints, Input,
    InputUse, Startup, TrailerSlot, UrlScheme,
};
use rgi_async::{AfterResponse, AsyncApplication, Capabilities, Upgrade};

use super::caps::After;
use super::conn::{BodyFlags, Conn, Expect, HeadRead, UpgradeStage};
use super::ctx::OutFraming;
use super::ctx::{Hooks, RequestCtx};
use super::fault::{Fault, acts};
use super::input::{BodyReader, CONTINUE, PumpSource};
use super::request::{self, Framing, RequestHead, Why};
use super::shared::DRAIN_LIMIT;
use super::shared::{Shared, lock};
use super::sink::{WireSink, http_date};
use super::upgrade::{Slot, StreamShared, ToyUpgrade};
use super::wrap::Wrapped;
use rgi_conformance::rt::{self, Outcome, Served};
use rgi_conformance::suite::Probe;

/// What the toy serves: one application, synchronous or asynchronous.
pub(crate) trait Service: Send + Sync + 'static {
    /// Whether requests go through [`AsyncApplication`] (with
    /// capabilities and a non-blocking input).
    fn is_async(&self) -> bool;

    /// Serves one request over `sink`.
    fn serve(&self, environ: Environ, sink: &mut WireSink, ctx: &Arc<RequestCtx>) -> Served;

    /// The application's hints, for a synchronous application.
    fn hints(&self) -> Option<Hints>;

    /// The application's start-up (`RGI-LIFE-1`, `RGIA-LIFE-1`).
    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError>;

    /// The application's shut-down (`RGI-LIFE-3`).
    fn shutdown(&self);
}

fn serve_sync<A: Application + ?Sized>(
    app: &Arc<A>,
    environ: Environ,
    sink: &mut WireSink,
    ctx: &Arc<RequestCtx>,
) -> Served {
    // RGI-CL-6 and RGI-CL-10: an exact size hint becomes the head's
    // Content-Length through the response state, which enforces it.
    let declare = |state: &mut rgi::ResponseState, sink: &mut WireSink, length: u64| {
        match ctx.fault {
            Some(Fault::SinkAddsHintedLength) => sink.add_length_itself(length),
            Some(Fault::LengthOnTrailerHead) => {
                // The fault: the state leaves a head that announces
                // trailers alone, and the sink adds the length anyway.
                let _refused_after_head = state.declare_length(length);
                sink.add_length_itself(length);
            }
            _ => {
                let _refused_after_head = state.declare_length(length);
            }
        }
    };
    let state = ctx.response_state(environ.method());
    if ctx.wraps_sync() {
        let wrapped = Wrapped {
            app: Arc::clone(app),
            ctx: Arc::clone(ctx),
        };
        return rt::serve_sync_with(&wrapped, environ, state, sink, declare);
    }
    rt::serve_sync_with(&**app, environ, state, sink, declare)
}

fn serve_async<A: AsyncApplication + ?Sized>(
    app: &Arc<A>,
    environ: Environ,
    sink: &mut WireSink,
    ctx: &Arc<RequestCtx>,
) -> Served {
    let wrapped = Wrapped {
        app: Arc::clone(app),
        ctx: Arc::clone(ctx),
    };
    let state = ctx.response_state(environ.method());
    rt::serve_async_with(&wrapped, environ, state, sink)
}

/// A synchronous application.
pub(crate) struct SyncService<A>(pub(crate) Arc<A>);

impl<A: Application> Service for SyncService<A> {
    fn is_async(&self) -> bool {
        false
    }

    fn serve(&self, environ: Environ, sink: &mut WireSink, ctx: &Arc<RequestCtx>) -> Served {
        serve_sync(&self.0, environ, sink, ctx)
    }

    fn hints(&self) -> Option<Hints> {
        Some(self.0.hints())
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        Application::startup(&*self.0, startup)
    }

    fn shutdown(&self) {
        Application::shutdown(&*self.0);
    }
}

/// An asynchronous application.
pub(crate) struct AsyncService<A>(pub(crate) Arc<A>);

impl<A: AsyncApplication> Service for AsyncService<A> {
    fn is_async(&self) -> bool {
        true
    }

    fn serve(&self, environ: Environ, sink: &mut WireSink, ctx: &Arc<RequestCtx>) -> Served {
        serve_async(&self.0, environ, sink, ctx)
    }

    fn hints(&self) -> Option<Hints> {
        None
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        AsyncApplication::startup(&*self.0, startup)
    }

    fn shutdown(&self) {
        AsyncApplication::shutdown(&*self.0);
    }
}

/// The suite's probe: served as what it wraps.
pub(crate) struct ProbeService(pub(crate) Arc<Probe>);

impl Service for ProbeService {
    fn is_async(&self) -> bool {
        self.0.is_async()
    }

    fn serve(&self, environ: Environ, sink: &mut WireSink, ctx: &Arc<RequestCtx>) -> Served {
        if self.0.is_async() {
            serve_async(&self.0, environ, sink, ctx)
        } else {
            serve_sync(&self.0, environ, sink, ctx)
        }
    }

    fn hints(&self) -> Option<Hints> {
        (!self.0.is_async()).then(|| Application::hints(&*self.0))
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        if self.0.is_async() {
            AsyncApplication::startup(&*self.0, startup)
        } else {
            Application::startup(&*self.0, startup)
        }
    }

    fn shutdown(&self) {
        if self.0.is_async() {
            AsyncApplication::shutdown(&*self.0);
        } else {
            Application::shutdown(&*self.0);
        }
    }
}

/// What follows a request on its connection.
enum Next {
    Keep,
    Close,
    /// The connection was upgraded: it closes once the stream is gone.
    Upgraded(Option<Arc<StreamShared>>),
}

/// Serves a connection until it closes.
pub(crate) fn connection(conn: &Arc<Conn>, service: &dyn Service) {
    let fault = conn.server.fault;
    loop {
        if conn.server.is_stopping() {
            break;
        }
        let read = lock(&conn.read).read_head(fault);
        if fault == Some(Fault::PanicInDropKillsServer) && !conn.server.alive_after_drops() {
            break;
        }
        match read {
            HeadRead::Head(head) => match request(conn, service, &head) {
                Next::Keep => {}
                Next::Close => break,
                Next::Upgraded(stream) => {
                    if let Some(stream) = stream {
                        stream.body_ended();
                    } else {
                        conn.shutdown();
                    }
                    lock(&conn.graveyard).clear();
                    return;
                }
            },
            HeadRead::Closed => break,
            HeadRead::Idle => {
                // RGI-LIMIT-6: a silent close.
                if fault == Some(Fault::IdleCloseSends408) {
                    let _sent = respond(conn, StatusCode::REQUEST_TIMEOUT);
                }
                break;
            }
            HeadRead::Stalled => {
                // RGI-LIMIT-5: part of a head came, then nothing.
                tracing::warn!(
                    conn = conn.id,
                    peer = %conn.peer,
                    limit = ?request::LIMITS.head_time,
                    "toy server: a request head did not arrive within the head-read time"
                );
                if fault != Some(Fault::StalledHeadClosesSilently) {
                    let _sent = respond(conn, StatusCode::REQUEST_TIMEOUT);
                }
                break;
            }
            HeadRead::Rejected(rejection) => {
                tracing::warn!(
                    conn = conn.id,
                    peer = %conn.peer,
                    status = rejection.status.as_u16(),
                    reason = %rejection.reason,
                    "toy server: refused a request head"
                );
                let status = match (fault, rejection.why) {
                    (Some(Fault::SilentOnMalformed), Why::Malformed) => break,
                    (Some(Fault::UnknownCodingIs400), Why::Coding)
                    | (Some(Fault::ConnectGets400), Why::Connect) => StatusCode::BAD_REQUEST,
                    _ => rejection.status,
                };
                if fault == Some(Fault::KeepsConnectionAfterRefusal) {
                    let head = format!(
                        "HTTP/1.1 {} {}\r\ncontent-length: 0\r\ndate: {}\r\n\r\n",
                        status.as_str(),
                        status.canonical_reason().unwrap_or(""),
                        http_date(SystemTime::now())
                    );
                    if lock(&conn.write).send(head.as_bytes()).is_err() {
                        break;
                    }
                    lock(&conn.read).skip_head();
                    continue;
                }
                let _sent = respond(conn, status);
                break;
            }
            HeadRead::Broken(err) => {
                tracing::debug!(conn = conn.id, error = %err, "toy server: connection broken");
                break;
            }
        }
    }
    close(conn);
    lock(&conn.graveyard).clear();
}

/// Answers with a bare status of the toy's own and `connection: close`.
fn respond(conn: &Conn, status: StatusCode) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\ndate: {}\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        http_date(SystemTime::now())
    );
    lock(&conn.write).send(head.as_bytes())
}

/// Closes gracefully: the toy's side first, then it reads what the client
/// still sends for a moment, so the response is not lost to a reset.
fn close(conn: &Conn) {
    conn.shutdown_write();
    let (mut read, clean) = conn.read_after_response();
    if clean {
        read.linger(64 * 1024, conn.server.timeouts.linger);
    }
    drop(read);
    conn.shutdown();
}

/// Serves one request; says what happens to the connection next.
fn request(conn: &Arc<Conn>, service: &dyn Service, head: &RequestHead) -> Next {
    let fault = conn.server.fault;
    let is_async = service.is_async();
    // RGI-TRAILER-1: a chunked body's trailer section reaches the
    // application through the slot of its input.
    let trailers = (head.framing == Framing::Chunked).then(TrailerSlot::new);
    {
        let mut read = lock(&conn.read);
        let flags = BodyFlags {
            is_async,
            skip_after: acts(fault, Fault::SkipsBytesAfterBody, is_async),
            keep_trailers: fault == Some(Fault::TrailersLeftOnConnection),
            untyped_errors: fault == Some(Fault::UntypedBodyErrors),
            late_trailers: fault == Some(Fault::TrailersFilledAfterTheEnd),
            leak_trailers: fault == Some(Fault::RequestTrailersLeak),
        };
        read.begin(head.framing, head.expect_continue, flags, trailers.clone());
        conn.readable.store(read.body.request, Ordering::SeqCst);
        let mut write = lock(&conn.write);
        write.head_sent = false;
        write.upgrade = UpgradeStage::None;
        if acts(fault, Fault::EagerContinue, is_async) && head.expect_continue {
            if write.send(CONTINUE).is_err() {
                return Next::Close;
            }
            read.body.expect = Expect::Sent;
        }
    }
    let persist = head.persist
        || (fault == Some(Fault::IgnoresConnectionClose) && head.version == Version::HTTP_11);
    if fault == Some(Fault::AnswersEveryAsterisk) && head.uri.path() == "*" {
        let _sent = respond(conn, StatusCode::OK);
        return Next::Close;
    }
    let ctx = Arc::new(RequestCtx {
        conn: Arc::clone(conn),
        fault,
        is_async,
        version: head.version,
        head_request: head.method == Method::HEAD,
        te_trailers: lists_trailers(&head.headers),
        persist,
        cancel: if is_async {
            conn.server.cancel_of(conn.id)
        } else {
            None
        },
        hooks: Mutex::new(Hooks::default()),
    });
    let after = After::new(Arc::clone(&conn.server));
    let slot = Arc::new(Slot::default());
    if fault == Some(Fault::RetriesFailedCall) {
        // The same request rebuilt, as a retrying server would; built
        // first because the request's own environ takes the trailer slot,
        // which the two share.
        let retry = environ(&ctx, head, service, &after, &slot, trailers.clone()).ok();
        lock(&ctx.hooks).retry = retry;
    }
    let environ = match environ(&ctx, head, service, &after, &slot, trailers) {
        Ok(environ) => environ,
        Err(err) => {
            // RGI-ENV-1: what the client sent cannot make an environ.
            tracing::warn!(conn = conn.id, error = %err, "toy server: bad request");
            let status = if fault == Some(Fault::EnvironErrorIs500) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_REQUEST
            };
            let _sent = respond(conn, status);
            return Next::Close;
        }
    };
    if fault == Some(Fault::RejectsNonUtf8Path) && environ.path_info().to_str().is_err() {
        let _sent = respond(conn, StatusCode::BAD_REQUEST);
        return Next::Close;
    }
    tracing::debug!(
        conn = conn.id,
        method = %head.method,
        target = %head.uri,
        "toy server: request"
    );
    let mut sink = WireSink::new(Arc::clone(&ctx));
    let served = if acts(fault, Fault::OneRequestAtATime, is_async) {
        let _one_at_a_time = lock(&conn.server.serial);
        service.serve(environ, &mut sink, &ctx)
    } else {
        service.serve(environ, &mut sink, &ctx)
    };
    let reusable = settle(&ctx, &mut sink, served);
    after.complete();
    if fault == Some(Fault::StartupAfterFirstRequest) {
        start_late(&conn.server, service);
    }
    if lock(&conn.write).upgrade != UpgradeStage::None {
        conn.readable.store(0, Ordering::SeqCst);
        lock(&conn.read).body.finished = true;
        return Next::Upgraded(slot.finish(conn));
    }
    let body_ended = end_of_body(conn, fault, is_async);
    if fault == Some(Fault::DropsPipelinedRequests) {
        let _thrown_away = lock(&conn.read).take_buffered();
    }
    if fault == Some(Fault::ClosesSilently) {
        return Next::Close;
    }
    if reusable && body_ended && !sink.closes() && !conn.server.is_stopping() {
        Next::Keep
    } else {
        Next::Close
    }
}

/// [`Fault::StartupAfterFirstRequest`]: the start-up runs after the first
/// response, on the connection's thread.
fn start_late(server: &Shared, service: &dyn Service) {
    let mut info = lock(&server.server_info);
    if server.started.load(Ordering::SeqCst) {
        return;
    }
    match rgi::run_startup((**info).clone(), |startup| service.startup(startup)) {
        Ok(started) => {
            *info = Arc::new(started);
            server.started.store(true, Ordering::SeqCst);
        }
        Err(error) => tracing::error!(%error, "toy server: the late start-up failed"),
    }
}

/// Whether a request's `TE` fields list `trailers` (RFC 9110 §10.1.4).
fn lists_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::TE).iter().any(|value| {
        value.as_bytes().split(|&byte| byte == b',').any(|item| {
            let coding = item.split(|&byte| byte == b';').next().unwrap_or_default();
            coding.trim_ascii().eq_ignore_ascii_case(b"trailers")
        })
    })
}

/// Deals with the unread rest of the request body (`RGI-CONN-1`) and
/// ends the input (`RGI-INPUT-15`); true if the connection can go on.
fn end_of_body(conn: &Conn, fault: Option<Fault>, is_async: bool) -> bool {
    let outlives = acts(fault, Fault::InputOutlivesResponse, is_async);
    if !outlives {
        conn.readable.store(0, Ordering::SeqCst);
    }
    let (mut read, clean) = conn.read_after_response();
    if !outlives {
        read.body.finished = true;
    }
    let leaks = if read.body.chunked {
        fault == Some(Fault::LeaksUnreadChunkedBody)
    } else {
        fault == Some(Fault::LeaksUnreadBody)
    };
    if read.body_done() || leaks {
        return clean;
    }
    if !clean || read.body_failed() {
        return false;
    }
    if matches!(read.body.expect, Expect::Awaiting | Expect::Declined) {
        // No 100 went out: the client may never send the body.
        return false;
    }
    read.drain(DRAIN_LIMIT, Instant::now() + conn.server.timeouts.drain)
}

/// Ends the response as its outcome requires; true if it went out whole
/// and framed, so that the connection may carry another request.
fn settle(ctx: &RequestCtx, sink: &mut WireSink, served: Served) -> bool {
    let conn = &ctx.conn;
    let fault = ctx.fault;
    let reusable = match served.outcome {
        Outcome::Complete { body_bytes } => {
            tracing::debug!(conn = conn.id, body_bytes, "toy server: response complete");
            let held = sink.take_held();
            let written = held.map_or(Ok(()), |held| sink.write_head(&held));
            written.is_ok()
                && sink.end().is_ok()
                && matches!(
                    sink.framing(),
                    Some(OutFraming::Length | OutFraming::Chunked | OutFraming::Bodiless)
                )
        }
        Outcome::FailedBeforeHead { error } => {
            tracing::error!(
                conn = conn.id,
                error = %error,
                "application failed before the head was sent; answered 500"
            );
            let held = sink.take_held();
            let call_failed = lock(&ctx.hooks).call_failed;
            let written = match (fault, held) {
                (Some(Fault::AsyncCallFailureDropsConnection), Some(_)) if call_failed => {
                    // The fault: no answer at all.
                    return false;
                }
                (Some(Fault::LeaksErrorDetail), Some(_)) => {
                    let text = error.to_string();
                    let head = rgi::ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR)
                        .with_header(http::header::CONTENT_LENGTH, HeaderValue::from(text.len()));
                    sink.write_head(&head)
                        .and_then(|()| sink.raw(text.as_bytes()))
                }
                (_, Some(_)) if ctx.acts(Fault::FailureIsNot500) => sink.write_head(
                    &rgi::ResponseHead::new(StatusCode::OK)
                        .with_header(http::header::CONTENT_LENGTH, HeaderValue::from(0)),
                ),
                (_, Some(held)) => sink.write_head(&held),
                (_, None) if lock(&ctx.hooks).early.is_some() => sink.end(),
                (_, None) => Ok(()),
            };
            written.is_ok()
        }
        Outcome::FailedAfterHead { error } => {
            tracing::error!(
                conn = conn.id,
                error = %error,
                "application failed after the head was sent; the response ends abnormally"
            );
            let excess = lock(&ctx.hooks).excess.take();
            if let Some(excess) = excess {
                let _sent = sink.raw(&excess);
            }
            let _held = sink.flush_written();
            match fault {
                Some(Fault::AppendsErrorText) => {
                    let text = format!("\n500 Internal Server Error: {error}\n");
                    let framed = if sink.framing() == Some(OutFraming::Chunked) {
                        let mut framed = format!("{:x}\r\n", text.len()).into_bytes();
                        framed.extend_from_slice(text.as_bytes());
                        framed.extend_from_slice(b"\r\n");
                        framed
                    } else {
                        text.into_bytes()
                    };
                    let _sent = sink.raw(&framed);
                    false
                }
                Some(Fault::CompletesFailedResponse) => {
                    let _sent = sink.end();
                    false
                }
                Some(Fault::PadsShortBody) => match error.downcast_ref::<FinishError>() {
                    Some(&FinishError::ContentLengthShort { declared, sent }) => {
                        let missing = usize::try_from(declared - sent).unwrap_or(0);
                        sink.raw(&vec![0; missing]).is_ok()
                    }
                    _ => false,
                },
                Some(Fault::KeepsAliveAfterShortBody) => {
                    // The fault: a short body leaves the connection open.
                    matches!(
                        error.downcast_ref::<FinishError>(),
                        Some(FinishError::ContentLengthShort { .. })
                    )
                }
                _ => false,
            }
        }
        Outcome::Disconnected { error } => {
            if sink.after_upgrade {
                // RGIA-UPGRADE-6.
                tracing::warn!(
                    conn = conn.id,
                    "application produced HTTP output after accepting an upgrade; connection closed"
                );
            } else {
                tracing::info!(conn = conn.id, error = %error, "client went away");
            }
            false
        }
        // An ending the kit added after this server was written: the
        // connection cannot be trusted to carry another request.
        other => {
            tracing::warn!(conn = conn.id, outcome = ?other, "unknown ending; connection closed");
            false
        }
    };
    let flushed = sink.flush_buffered().is_ok();
    reusable && flushed
}

/// Builds the environ of one request (`RGI-ENV-1`).
fn environ(
    ctx: &Arc<RequestCtx>,
    head: &RequestHead,
    service: &dyn Service,
    after: &After,
    slot: &Arc<Slot>,
    trailers: Option<TrailerSlot>,
) -> Result<Environ, EnvironError> {
    let conn = &ctx.conn;
    let fault = ctx.fault;
    let is_async = ctx.is_async;
    let mut headers = match fault {
        Some(Fault::JoinsRequestFields) => joined(&head.headers),
        Some(Fault::TranscodesFieldValues) => transcoded(&head.headers),
        _ => head.headers.clone(),
    };
    let input = match (head.framing, fault) {
        (Framing::Empty | Framing::Length(0), _) => Input::empty(),
        (Framing::Chunked, Some(Fault::PreReadsChunkedBody)) => Input::from_bytes(pre_read(conn).0),
        (Framing::Chunked, Some(Fault::TrailersIntoHeaders)) => {
            let (body, _complete) = pre_read(conn);
            let fields = lock(&conn.read).last_trailers.clone();
            // The fault: the trailer fields join the header section,
            // forbidden ones included.
            for (name, value) in &fields {
                headers.append(name.clone(), value.clone());
            }
            Input::from_bytes(body).with_trailers(TrailerSlot::filled(fields))
        }
        (Framing::Length(_), Some(Fault::PreReadsTruncatedBody)) => {
            let (body, _complete) = pre_read(conn);
            // The fault: whatever arrived is the body.
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            Input::from_bytes(body)
        }
        (Framing::Length(_), Some(Fault::PreReadsAsyncBody)) if is_async => {
            Input::from_bytes(pre_read(conn).0)
        }
        (framing, Some(Fault::HintsSkipTheBody))
            if service
                .hints()
                .is_some_and(|hints| hints.input == InputUse::None) =>
        {
            Input::new(io::empty(), framing.declared())
        }
        (framing, _) if is_async && fault != Some(Fault::BlockingInputForAsync) => {
            Input::from_async(PumpSource::new(Arc::clone(conn)), framing.declared())
        }
        (framing, _) => Input::new(BodyReader::new(Arc::clone(conn)), framing.declared()),
    };
    let input = match trailers {
        Some(slot) if fault != Some(Fault::TrailersIntoHeaders) => input.with_trailers(slot),
        _ => input,
    };
    let method = if fault == Some(Fault::UppercasesMethod) {
        Method::from_bytes(head.method.as_str().to_ascii_uppercase().as_bytes())
            .unwrap_or_else(|_| head.method.clone())
    } else {
        head.method.clone()
    };
    let uri = match fault {
        Some(Fault::NormalisesPath) => rewritten(&head.uri, merged_slashes, str::to_owned),
        Some(Fault::DecodesTarget) => rewritten(&head.uri, decoded_unreserved, decoded_unreserved),
        Some(Fault::DecodesEncodedSlash) => rewritten(
            &head.uri,
            |path| path.replace("%2F", "/").replace("%2f", "/"),
            str::to_owned,
        ),
        _ => head.uri.clone(),
    };
    match fault {
        Some(Fault::InventsField) => {
            headers.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(&conn.peer.ip().to_string())
                    .unwrap_or(HeaderValue::from_static("unknown")),
            );
        }
        Some(Fault::DropsContentLengthField) => {
            headers.remove(http::header::CONTENT_LENGTH);
        }
        Some(Fault::LeaksFieldsToNextRequest) => {
            let mut previous = lock(&conn.previous);
            if let Some(earlier) = previous.take() {
                for (name, value) in &earlier {
                    if !headers.contains_key(name) {
                        headers.append(name.clone(), value.clone());
                    }
                }
            }
            *previous = Some(head.headers.clone());
        }
        _ => {}
    }
    let server_name = head.host.clone().unwrap_or_else(|| match conn.local {
        SocketAddr::V4(addr) => addr.ip().to_string(),
        SocketAddr::V6(addr) => format!("[{}]", addr.ip()),
    });
    let port = if fault == Some(Fault::WrongServerPort) {
        80
    } else {
        conn.local.port()
    };
    let mut builder = Environ::builder();
    if fault != Some(Fault::ForgetsDeclaredFeatures) {
        // The description the start-up returned, with its state and the
        // declared features (RGI-LIFE-1, RGI-FEAT-1); name and port are
        // the request's.
        builder = builder.server_info(conn.server.server_info());
    }
    builder = builder
        .method(method)
        .uri(uri)
        .version(head.version)
        .headers(headers)
        .server(server_name, port)
        .url_scheme(if fault == Some(Fault::WrongScheme) {
            UrlScheme::Https
        } else {
            UrlScheme::Http
        })
        .concurrency(
            Concurrency::MULTITHREADED.with_multithread(fault != Some(Fault::WrongConcurrency)),
        )
        .input(input)
        .errors(Errors::new(AppLog::new(conn.id)));
    if fault != Some(Fault::MissingRemoteAddr) {
        builder = builder.remote_addr(conn.peer);
    }
    if fault == Some(Fault::MountsAtFirstSegment) {
        if let Some(mount) = first_segment(head.uri.path()) {
            builder = builder.script_name(mount);
        }
    }
    if fault == Some(Fault::CallsTwice) && is_async {
        let mut copied = head.headers.clone();
        copied.remove(http::header::CONTENT_LENGTH);
        lock(&ctx.hooks).spare = Environ::builder()
            .method(head.method.clone())
            .uri(head.uri.clone())
            .version(head.version)
            .headers(copied)
            .server(conn.local.ip().to_string(), conn.local.port())
            .build()
            .ok();
    }
    let capable =
        (is_async && fault != Some(Fault::NoCapabilities)) || fault == Some(Fault::HollowOffload);
    if capable {
        builder = builder.extension(capabilities(ctx, head, after, slot));
    }
    builder.build()
}

/// The capabilities of one asynchronous request (`RGIA-CAP-1`).
fn capabilities(
    ctx: &Arc<RequestCtx>,
    head: &RequestHead,
    after: &After,
    slot: &Arc<Slot>,
) -> Capabilities {
    let server = &ctx.conn.server;
    let mut builder = Capabilities::builder(server.offload.clone());
    #[cfg(any(unix, windows))]
    if let Some(readiness) = &server.readiness {
        builder = builder.readiness(readiness.clone());
    }
    builder = builder.after_response(AfterResponse::new(after.clone()));
    let offered = match (&head.upgrade, ctx.fault) {
        (Some(protocols), _) => Some(protocols.clone()),
        (None, Some(Fault::UpgradeWithoutConnectionField)) if !head.protocols.is_empty() => {
            Some(head.protocols.clone())
        }
        (None, _) => None,
    };
    if let Some(protocols) = offered {
        builder = builder.upgrade(Upgrade::new(ToyUpgrade::new(
            Arc::clone(&ctx.conn),
            protocols,
            Arc::clone(slot),
        )));
    }
    builder.build()
}

/// Reads the whole body now (for the pre-reading faults); true if it
/// arrived complete.
fn pre_read(conn: &Arc<Conn>) -> (Vec<u8>, bool) {
    let mut reader = BodyReader::new(Arc::clone(conn));
    let mut body = Vec::new();
    let mut buf = [0; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(count) => body.extend_from_slice(&buf[..count]),
        }
    }
    let complete = lock(&conn.read).body_done();
    (body, complete)
}

/// The target with its path and query rewritten (for the target faults).
fn rewritten(uri: &Uri, path: impl Fn(&str) -> String, query: impl Fn(&str) -> String) -> Uri {
    let Some(path_and_query) = uri.path_and_query() else {
        return uri.clone();
    };
    let new_path = path(path_and_query.path());
    let target = match path_and_query.query() {
        Some(old) => format!("{new_path}?{}", query(old)),
        None => new_path,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = target.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

/// [`Fault::NormalisesPath`]: repeated slashes merged.
fn merged_slashes(path: &str) -> String {
    let mut merged = String::with_capacity(path.len());
    for ch in path.chars() {
        if !(ch == '/' && merged.ends_with('/')) {
            merged.push(ch);
        }
    }
    merged
}

/// [`Fault::DecodesTarget`]: percent-encoded unreserved characters
/// decoded (RFC 3986 §2.3).
fn decoded_unreserved(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < bytes.len() {
        let decoded = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(byte));
        match decoded {
            Some(byte) => {
                out.push(char::from(byte));
                at += 3;
            }
            None => {
                out.push(char::from(bytes[at]));
                at += 1;
            }
        }
    }
    out
}

/// [`Fault::MountsAtFirstSegment`]: the decoded first segment of a path
/// with more than one.
fn first_segment(path: &str) -> Option<Vec<u8>> {
    let rest = path.strip_prefix('/')?;
    let end = rest.find('/')?;
    let raw = &rest[..end];
    let mut decoded = vec![b'/'];
    let bytes = raw.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let byte = (bytes[at] == b'%')
            .then(|| raw.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match byte {
            Some(byte) => {
                decoded.push(byte);
                at += 3;
            }
            None => {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
    }
    (decoded.len() > 1).then_some(decoded)
}

/// [`Fault::JoinsRequestFields`]: one entry per name, values joined.
fn joined(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let values: Vec<&[u8]> = headers
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        if let Ok(value) = HeaderValue::from_bytes(&values.join(&b", "[..])) {
            out.append(name.clone(), value);
        }
    }
    out
}

/// [`Fault::TranscodesFieldValues`]: obs-text read as Latin-1, re-encoded
/// as UTF-8.
fn transcoded(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let text: String = value
            .as_bytes()
            .iter()
            .map(|&byte| char::from(byte))
            .collect();
        let value = HeaderValue::from_str(&text).unwrap_or_else(|_| value.clone());
        out.append(HeaderName::clone(name), value);
    }
    out
}

/// The application's error stream: each line becomes a log event
/// (`RGI-ERRS-1`); writes never fail (`RGI-ERRS-2`).
struct AppLog {
    conn: u64,
    line: Vec<u8>,
}

/// The longest line kept before it is logged anyway.
const MAX_LOG_LINE: usize = 8 * 1024;

impl AppLog {
    fn new(conn: u64) -> Self {
        AppLog {
            conn,
            line: Vec::new(),
        }
    }

    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        tracing::warn!(target: "rgi_toy_server::errors", conn = self.conn, "{}", text.trim_end());
        self.line.clear();
    }
}

impl Write for AppLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &byte in buf {
            if byte == b'\n' {
                self.emit();
            } else {
                self.line.push(byte);
                if self.line.len() >= MAX_LOG_LINE {
                    self.emit();
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit();
        Ok(())
    }
}

impl Drop for AppLog {
    fn drop(&mut self) {
        self.emit();
    }
}
