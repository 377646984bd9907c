//! The worker side: one request on a blocking socket, from the environ to
//! the dropped body, following the server loop of spec/rgi.md §2.3.

use std::any::Any;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode, Version};
use rgi::{
    Application, Body, BoxError, ConnectionInfo, Environ, Input, ResponseHead, ResponseState,
    ServerInfo, TrailerSlot,
};

use crate::body::{self, BodySource, InBuf, ReadSide, WriteGate};
use crate::config::Limits;
use crate::head::{Framing, RequestHead};
use crate::net::SharedStream;
use crate::response::{Sink, refusal};

/// A connection between requests: what the poller owns, and what it hands
/// to a worker with a parsed head.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: SharedStream,
    pub(crate) info: Arc<ConnectionInfo>,
    pub(crate) server: Arc<ServerInfo>,
    pub(crate) buf: InBuf,
}

/// What the worker hands back.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) conn: Connection,
    /// The next request may be read; otherwise the poller closes it.
    pub(crate) keep: bool,
}

/// Why a request failed, for the log and the answer.
pub(crate) enum Failure {
    Error(BoxError),
    Panic(Box<dyn Any + Send>),
    /// Nothing to answer: the head went out or the transport failed.
    Quiet,
}

impl Failure {
    fn into_box(self) -> BoxError {
        match self {
            Self::Error(error) => error,
            Self::Panic(payload) => panic_message(payload.as_ref()).into(),
            Self::Quiet => "the response failed".into(),
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_string());
    format!("the application panicked: {text}")
}

/// What a worker found after a kept response.
pub(crate) enum Next {
    /// A complete head, taken from the buffer: serve it on this worker.
    Head(Box<RequestHead>),
    /// Nothing complete (or something to refuse): back to the poller,
    /// which reads, parses, waits and refuses as for any connection.
    Poller,
    /// The client ended its side (or the socket failed) after a complete
    /// exchange: the connection closes.
    Closed,
}

/// Looks for the next request on a kept connection without waiting: the
/// bytes already buffered (a pipelined request), else one non-blocking
/// read. A connection whose next request is already there is served
/// without the trip through the poller; one with nothing complete goes
/// back, so an idle connection or a partial head holds no worker.
pub(crate) fn next_head(conn: &mut Connection, limits: &Limits) -> Next {
    if conn.buf.is_empty() {
        match conn.buf.fill_from(&conn.stream) {
            Ok(0) => return Next::Closed,
            Ok(_) => {}
            // Nothing yet (or a signal): the poller waits for it.
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                conn.buf.release();
                return Next::Poller;
            }
            Err(_) => return Next::Closed,
        }
    }
    match crate::head::parse(conn.buf.available(), limits) {
        Ok(crate::head::Parsed::Complete(head, used)) => {
            conn.buf.consume(used);
            Next::Head(head)
        }
        _ => Next::Poller,
    }
}

/// Serves one request on `conn`; never panics on what the application does.
pub(crate) fn serve<A: Application>(
    app: &A,
    conn: Connection,
    head: RequestHead,
    limits: &Limits,
) -> Finished {
    let Connection {
        stream,
        info,
        server,
        buf,
    } = conn;
    // The socket stays non-blocking, as the poller keeps it: reads and
    // writes wait with `poll(2)` within the body timeout, which saves two
    // mode switches and two timeout settings per request.
    let RequestHead {
        parts,
        framing,
        keep_alive,
        expect_continue,
        te_trailers,
        budget_used,
    } = head;
    let method = parts.method.clone();
    let version = parts.version;
    let gate = Arc::new(WriteGate::default());
    let trailers = (framing == Framing::Chunked).then(TrailerSlot::new);
    let side = Arc::new(Mutex::new(ReadSide::new(
        Arc::clone(&stream),
        Arc::clone(&gate),
        buf,
        (framing, expect_continue, budget_used),
        limits,
        trailers.clone(),
    )));
    let input = match framing {
        Framing::None => Input::empty(),
        Framing::Length(n) => Input::new(
            BodySource {
                side: Arc::clone(&side),
            },
            Some(n),
        ),
        Framing::Chunked => Input::new(
            BodySource {
                side: Arc::clone(&side),
            },
            None,
        ),
    };
    let input = match trailers {
        Some(slot) => input.with_trailers(slot),
        None => input,
    };
    let mut sink = Sink::new(Arc::clone(&stream), gate, &method, version, keep_alive);
    sink.set_timeout(limits.body_timeout);

    let environ = match Environ::from_parts(parts, input, &server, &info) {
        Ok(environ) => environ,
        Err(error) => {
            // The server's own settings were checked at start-up, so what
            // remains is the client's (`[RGI-ENV-1]`).
            tracing::info!(%error, peer = ?info.peer_addr(), "refused a request whose environ does not build");
            let _ = (&*stream).write_all(&refusal(StatusCode::BAD_REQUEST));
            let buf = body::lock(&side).finish();
            return finished(stream, info, server, buf, false);
        }
    };

    let mut state = response_state(&method, version, te_trailers);
    let clean = run(app, environ, &mut state, &mut sink);
    let mut keep = clean && sink.reusable();
    {
        let mut read = body::lock(&side);
        if read.broken {
            keep = false;
        }
        if keep && !read.is_complete() {
            keep = body::drain(&mut read, limits.drain_limit, limits.body_timeout);
        }
    }
    let buf = body::lock(&side).finish();
    finished(stream, info, server, buf, keep)
}

/// The state of a response to a request with this method and version:
/// early hints enabled on HTTP/1.1 (never on HTTP/1.0, RFC 9110 §15.2,
/// `[RGI-EARLY-3]`), trailers on HTTP/1.1 when the request carried
/// `TE: trailers` and is not HEAD (`[RGI-TRAILER-7]`); the sink then sends
/// them when the response is chunked.
pub(crate) fn response_state(
    method: &Method,
    version: Version,
    te_trailers: bool,
) -> ResponseState {
    let mut state = ResponseState::new(method);
    if version == Version::HTTP_11 {
        state.enable_early_hints();
        if te_trailers && method != Method::HEAD {
            state.enable_trailers();
        }
    }
    state
}

fn finished(
    stream: SharedStream,
    info: Arc<ConnectionInfo>,
    server: Arc<ServerInfo>,
    buf: InBuf,
    keep: bool,
) -> Finished {
    Finished {
        conn: Connection {
            stream,
            info,
            server,
            buf,
        },
        keep,
    }
}

/// Calls the application and pulls its body; true when the response was
/// framed completely and the connection may be kept as far as the
/// response is concerned.
fn run<A: Application>(
    app: &A,
    environ: Environ,
    state: &mut ResponseState,
    sink: &mut Sink,
) -> bool {
    let called = catch_unwind(AssertUnwindSafe(|| {
        app.call(environ, &mut state.start_response(sink))
    }));
    let body = match called {
        Ok(Ok(body)) => body,
        Ok(Err(error)) => return fail(state, sink, Failure::Error(error)),
        Err(payload) => return fail(state, sink, Failure::Panic(payload)),
    };
    pull(body, state, sink)
}

/// Pulls a synchronous body to its end and drops it, as `run` does after
/// `call`; also the second half of an asynchronous request that switched
/// (`[RGIA-SWITCH-5]`).
pub(crate) fn pull<B: Body>(mut body: B, state: &mut ResponseState, sink: &mut Sink) -> bool {
    if !state.is_head_sent() {
        // An exact hint lets a one-piece body go out with a Content-Length
        // instead of chunks (`[RGI-CL-6]`).
        match catch_unwind(AssertUnwindSafe(|| body.size_hint())) {
            Ok(Some(length)) => {
                let _ = state.declare_length(length);
            }
            Ok(None) => {}
            Err(payload) => {
                let clean = fail(state, sink, Failure::Panic(payload));
                return drop_body(body) && clean;
            }
        }
    }
    // A file body goes out by `sendfile` where it can; the pull loop sends
    // whatever that leaves (`[RGI-FILE-3]`).
    let transfer = catch_unwind(AssertUnwindSafe(|| {
        crate::response::send_file(&mut body, state, sink)
    }));
    let mut outcome = match transfer {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(send_failed(state, sink, error)),
        Err(payload) => Some(fail(state, sink, Failure::Panic(payload))),
    };
    while outcome.is_none() && state.wants_body() {
        let step = catch_unwind(AssertUnwindSafe(|| {
            body.next_chunk(&mut state.start_response(sink))
        }));
        match step {
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => {
                if let Err(error) = state.send_chunk(sink, chunk) {
                    outcome = Some(send_failed(state, sink, error));
                    break;
                }
            }
            Ok(Some(Err(error))) => {
                outcome = Some(fail(state, sink, Failure::Error(error)));
                break;
            }
            Err(payload) => {
                outcome = Some(fail(state, sink, Failure::Panic(payload)));
                break;
            }
        }
    }
    // Close: exactly once, before the next request (`[RGI-BODY-11]`).
    let dropped = drop_body(body);
    let clean = match outcome {
        Some(clean) => clean,
        None => match state.finish(sink) {
            Ok(_) => sink.complete().is_ok(),
            Err(rgi::FinishError::NotStarted) => fail(
                state,
                sink,
                Failure::Error("the body ended without starting the response".into()),
            ),
            Err(error) => {
                tracing::warn!(%error, "response ended abnormally");
                false
            }
        },
    };
    dropped && clean
}

/// Drops the body, containing a panic in its `Drop` (`[RGI-FAIL-2]`).
pub(crate) fn drop_body<B>(body: B) -> bool {
    match catch_unwind(AssertUnwindSafe(move || drop(body))) {
        Ok(()) => true,
        Err(payload) => {
            tracing::error!(error = %panic_message(payload.as_ref()), "the body's Drop panicked");
            false
        }
    }
}

/// A `send_chunk` error: an excess is the application's fault with a
/// complete response on the wire (`[RGI-CL-2]`); anything else ends it.
pub(crate) fn send_failed(
    state: &mut ResponseState,
    sink: &mut Sink,
    error: rgi::SendError,
) -> bool {
    match error {
        rgi::SendError::ContentLengthExceeded { .. } | rgi::SendError::BodyNotAllowed { .. } => {
            tracing::error!(%error, "application error");
            match state.finish(sink) {
                Ok(_) => sink.complete().is_ok(),
                Err(_) => false,
            }
        }
        rgi::SendError::NotStarted => fail(state, sink, Failure::Error(error.into())),
        rgi::SendError::Transport(error) => {
            tracing::info!(%error, "the client went away");
            fail(state, sink, Failure::Quiet)
        }
        other => {
            tracing::error!(error = %other, "sending failed");
            false
        }
    }
}

/// An application failure: an error head if none went out, else an
/// abnormal end (`[RGI-FAIL-3]`, `[RGI-FAIL-5]`, `[RGI-FAIL-10]`).
pub(crate) fn fail(state: &mut ResponseState, sink: &mut Sink, failure: Failure) -> bool {
    if state.is_head_sent() {
        if !matches!(failure, Failure::Quiet) {
            tracing::error!(error = %failure.into_box(), "application failed after the head was sent");
        }
        return false;
    }
    let quiet = matches!(failure, Failure::Quiet);
    let cause = failure.into_box();
    let client = rgi::client_body_error(&*cause)
        .and_then(rgi::InputError::status)
        .map(|status| sink.client_status().unwrap_or(status));
    let status = client.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if client.is_some() {
        tracing::info!(error = %cause, %status, "the client's request body failed");
        sink.keep_alive = false;
    } else if !quiet {
        tracing::error!(error = %cause, "application failed");
    }
    if quiet {
        return false;
    }
    // The error response is not the one the application's trailers were
    // for.
    sink.void_trailers();
    let replaced = state
        .start_response(sink)
        .replace(ResponseHead::new(status), cause);
    let finished = replaced.is_ok() && state.finish(sink).is_ok();
    finished && sink.complete().is_ok() && client.is_none()
}
