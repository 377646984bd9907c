//! Broken synchronous servers: small hand-written server loops that drive
//! a validator-wrapped probe application, each with one mistake.

#![allow(
    clippy::mem_forget,
    reason = "the mistakes are the point of this module"
)]

use std::io::{self, Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, header};
use rgi::{
    Application, Body, BoxError, Concurrency, Environ, Input, ResponseState, ServerInfo,
    StartResponse,
};
use rgi_conformance::validate::Validator;
use rgi_conformance::{Side, Violation};

use crate::support::{Script, Wire, broken, capabilities, ok, pull_all, reports, request, seen};
use crate::{Component, Interface, Kind};

type Run = Result<Vec<Violation>, String>;

fn srv(name: &'static str, clause: &'static str, run: fn() -> Run) -> Component {
    broken(
        name,
        Kind::Server,
        Interface::Sync,
        clause,
        Side::Server,
        run,
    )
}

pub(crate) fn components() -> Vec<Component> {
    vec![
        srv(
            "sync_srv/leaves_transfer_encoding",
            "RGI-HDR-4",
            leaves_transfer_encoding,
        ),
        srv("sync_srv/no_host", "RGI-HDR-5", no_host),
        srv(
            "sync_srv/length_field_disagrees",
            "RGI-ENV-10",
            length_field_disagrees,
        ),
        srv("sync_srv/pulls_after_end", "RGI-BODY-2", pulls_after_end),
        srv(
            "sync_srv/pulls_after_error",
            "RGI-BODY-2",
            pulls_after_error,
        ),
        srv(
            "sync_srv/pulls_after_panic",
            "RGI-BODY-2",
            pulls_after_panic,
        ),
        srv(
            "sync_srv/pulls_before_sending",
            "RGI-BODY-4",
            pulls_before_sending,
        ),
        srv("sync_srv/never_drops_body", "RGI-BODY-12", never_drops_body),
        srv(
            "sync_srv/fresh_state_per_pull",
            "RGI-START-1",
            fresh_state_per_pull,
        ),
        srv("sync_srv/reuses_state", "RGI-APP-5", reuses_state),
        srv(
            "sync_srv/single_thread_claim_concurrent_calls",
            "RGI-ENV-8",
            single_thread_claim_concurrent_calls,
        ),
        srv(
            "sync_srv/run_once_serves_twice",
            "RGI-ENV-8",
            run_once_serves_twice,
        ),
        srv(
            "sync_srv/non_blocking_source",
            "RGI-INPUT-3",
            non_blocking_source,
        ),
        srv(
            "sync_srv/untyped_malformed_body",
            "RGI-INPUT-17",
            untyped_malformed_body,
        ),
        srv(
            "sync_srv/head_state_as_get",
            "RGI-BODY-15",
            head_state_as_get,
        ),
        srv(
            "sync_srv/offers_capabilities",
            "RGIA-CAP-2",
            offers_capabilities,
        ),
        srv(
            "sync_srv/keeps_body_until_next_request",
            "RGI-BODY-12",
            keeps_body_until_next_request,
        ),
        srv(
            "sync_srv/unstarted_after_call_is_error",
            "RGI-START-5",
            unstarted_after_call_is_error,
        ),
        srv(
            "sync_srv/no_input_for_input_none",
            "RGI-HINT-6",
            no_input_for_input_none,
        ),
        srv("sync_srv/maps_head_to_get", "RGI-ENV-3", maps_head_to_get),
        srv(
            "sync_srv/input_readable_after_response",
            "RGI-INPUT-15",
            input_readable_after_response,
        ),
        srv(
            "sync_srv/truncated_chunked_as_eof",
            "RGI-INPUT-2",
            truncated_chunked_as_eof,
        ),
        srv(
            "sync_srv/stalled_body_blocks",
            "RGI-INPUT-19",
            stalled_body_blocks,
        ),
        srv(
            "sync_srv/keeps_pulling_after_not_started",
            "RGI-FAIL-7",
            keeps_pulling_after_not_started,
        ),
        srv(
            "sync_srv/keeps_pulling_after_excess",
            "RGI-CL-2",
            keeps_pulling_after_excess,
        ),
        srv(
            "sync_srv/keeps_pulling_after_body_not_allowed",
            "RGI-BODY-18",
            keeps_pulling_after_body_not_allowed,
        ),
    ]
}

/// The probe: reads the whole body, answers it back in three chunks.
fn probe() -> impl Application {
    rgi::from_fn(|mut e: Environ, start| {
        let body = e.input_mut().read_to_bytes(1 << 16)?;
        start.start(ok())?;
        Ok(rgi::from_iter([
            Bytes::from_static(b"got "),
            body,
            Bytes::from_static(b"\n"),
        ]))
    })
}

/// A probe whose body fails after its first chunk.
fn failing_probe() -> impl Application {
    rgi::from_fn(|_e: Environ, start| {
        start.start(ok())?;
        let mut step = 0;
        Ok(Script::new(move |_s: &mut StartResponse<'_>| {
            step += 1;
            match step {
                1 => Some(Ok(Bytes::from_static(b"partial"))),
                2 => Some(Err(BoxError::from("backend gone"))),
                _ => Some(Ok(Bytes::from_static(b"zombie"))),
            }
        }))
    })
}

/// A probe whose body panics on its second pull.
fn panicking_probe() -> impl Application {
    rgi::from_fn(|_e: Environ, start| {
        start.start(ok())?;
        let mut step = 0;
        Ok(Script::new(move |_s: &mut StartResponse<'_>| {
            step += 1;
            assert!(step < 2, "probe panics on its second pull");
            Some(Ok(Bytes::from_static(b"first")))
        }))
    })
}

/// The server's error text for a build failure.
fn built(result: Result<Environ, rgi::EnvironError>) -> Result<Environ, String> {
    result.map_err(|e| format!("environ: {e}"))
}

/// Calls, pulls, drops and finishes correctly: the part of a server loop
/// that the components below do not get wrong.
fn serve<A: Application>(app: &Validator<A>, environ: Environ) {
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let Ok(mut body) = app.call(environ, &mut state.start_response(&mut wire)) else {
        return;
    };
    let _ = pull_all(&mut body, &mut state, &mut wire);
    drop(body);
    let _ = state.finish(&mut wire);
}

/// Leaves `Transfer-Encoding: chunked` in the environ after de-chunking
/// the body (it sets the field back after building). RGI-HDR-4.
fn leaves_transfer_encoding() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let mut environ = built(
        request(Method::POST)
            .input(Input::new(Cursor::new(b"abc".to_vec()), None))
            .build(),
    )?;
    environ.headers_mut().insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    serve(&app, environ);
    Ok(seen(app, &reports))
}

/// Passes an HTTP/1.1 request without `Host` to the application instead
/// of answering 400. RGI-HDR-5.
fn no_host() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let environ = built(Environ::builder().build())?;
    serve(&app, environ);
    Ok(seen(app, &reports))
}

/// Declares a 5-byte input but leaves a `content-length: 7` field (it
/// trimmed the body to what arrived and kept the client's field).
/// RGI-ENV-10.
fn length_field_disagrees() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let mut environ = built(
        request(Method::POST)
            .input(Input::new(Cursor::new(b"hello".to_vec()), Some(5)))
            .build(),
    )?;
    environ
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("7"));
    serve(&app, environ);
    Ok(seen(app, &reports))
}

/// Pulls once more after `None` ("drain it"). RGI-BODY-2.
fn pulls_after_end() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let environ = built(request(Method::GET).build())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let _ = pull_all(&mut body, &mut state, &mut wire);
    let _ = body.next_chunk(&mut state.start_response(&mut wire));
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Treats `Some(Err(..))` as a skippable chunk and keeps pulling.
/// RGI-BODY-2.
fn pulls_after_error() -> Run {
    let reports = reports();
    let app = Validator::new(failing_probe(), reports.clone());
    let environ = built(request(Method::GET).build())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    for _ in 0..3 {
        match body.next_chunk(&mut state.start_response(&mut wire)) {
            Some(Ok(chunk)) => {
                let _ = state.send_chunk(&mut wire, chunk);
            }
            Some(Err(_)) => continue,
            None => break,
        }
    }
    drop(body);
    Ok(seen(app, &reports))
}

/// Catches a panic in `next_chunk` and pulls again. RGI-BODY-2.
fn pulls_after_panic() -> Run {
    let reports = reports();
    let app = Validator::new(panicking_probe(), reports.clone());
    let environ = built(request(Method::GET).build())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    for _ in 0..3 {
        let step = catch_unwind(AssertUnwindSafe(|| {
            body.next_chunk(&mut state.start_response(&mut wire))
        }));
        if let Ok(Some(Ok(chunk))) = step {
            let _ = state.send_chunk(&mut wire, chunk);
        }
    }
    drop(body);
    Ok(seen(app, &reports))
}

/// Pulls two chunks ahead, then sends them (read-ahead "for
/// throughput"). RGI-BODY-4.
fn pulls_before_sending() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let environ = built(request(Method::GET).build())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    loop {
        let first = body.next_chunk(&mut state.start_response(&mut wire));
        let second = body.next_chunk(&mut state.start_response(&mut wire));
        let ended = first.is_none() || second.is_none();
        for chunk in [first, second].into_iter().flatten() {
            let _ = state.send_chunk(&mut wire, chunk.map_err(|e| e.to_string())?);
        }
        if ended {
            break;
        }
    }
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// `mem::forget`s the body after the last pull (to skip a slow
/// destructor). RGI-BODY-12 names `mem::forget` (RGI-BODY-11, "drop
/// exactly once", is broken too).
fn never_drops_body() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let environ = built(request(Method::GET).build())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let _ = pull_all(&mut body, &mut state, &mut wire);
    let _ = state.finish(&mut wire);
    std::mem::forget(body);
    Ok(seen(app, &reports))
}

/// Lends each pull a handle over a fresh `ResponseState` (it rebuilt the
/// state per write). RGI-START-1.
fn fresh_state_per_pull() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let environ = built(request(Method::GET).build())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    loop {
        let mut fresh = ResponseState::new(&Method::GET);
        match body.next_chunk(&mut fresh.start_response(&mut wire)) {
            Some(Ok(chunk)) => {
                let _ = state.send_chunk(&mut wire, chunk);
            }
            _ => break,
        }
    }
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Keeps one `ResponseState` per connection and reuses it for the next
/// request. RGI-APP-5.
fn reuses_state() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let mut state = ResponseState::new(&Method::GET);
    let mut wire = Wire::default();
    for _ in 0..2 {
        let environ = built(request(Method::GET).build())?;
        let Ok(mut body) = app.call(environ, &mut state.start_response(&mut wire)) else {
            continue;
        };
        let _ = pull_all(&mut body, &mut state, &mut wire);
        drop(body);
        let _ = state.finish(&mut wire);
    }
    Ok(seen(app, &reports))
}

/// A slow probe, so that two calls overlap.
fn slow_probe() -> impl Application {
    rgi::from_fn(|_e: Environ, start| {
        std::thread::sleep(Duration::from_millis(200));
        start.start(ok())?;
        Ok(Bytes::from_static(b"slow"))
    })
}

/// Declares `multithread: false` but calls the application from two
/// threads at once. RGI-ENV-8.
fn single_thread_claim_concurrent_calls() -> Run {
    let reports = reports();
    let app = Validator::new(slow_probe(), reports.clone());
    let flags = Concurrency::default().with_multithread(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let app = &app;
            scope.spawn(move || {
                if let Ok(environ) = request(Method::GET).concurrency(flags).build() {
                    serve(app, environ);
                }
            });
        }
    });
    Ok(seen(app, &reports))
}

/// Declares `run_once` (a CGI-style flag copied from a template) and
/// serves two requests with the same application value. RGI-ENV-8.
fn run_once_serves_twice() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let flags = Concurrency::default()
        .with_multithread(false)
        .with_run_once(true);
    for _ in 0..2 {
        serve(
            &app,
            built(request(Method::GET).concurrency(flags).build())?,
        );
    }
    Ok(seen(app, &reports))
}

struct NonBlocking {
    data: &'static [u8],
    tried: bool,
}

impl Read for NonBlocking {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The socket was left in non-blocking mode.
        if !std::mem::replace(&mut self.tried, true) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.data.len().min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Builds the input over a non-blocking socket, so the first read fails
/// with `WouldBlock`. RGI-INPUT-3.
fn non_blocking_source() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let source = NonBlocking {
        data: b"abc",
        tried: false,
    };
    let environ = built(
        request(Method::POST)
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
            .input(Input::new(source, Some(3)))
            .build(),
    )?;
    serve(&app, environ);
    Ok(seen(app, &reports))
}

struct BadChunks(bool);

impl Read for BadChunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !std::mem::replace(&mut self.0, true) && !buf.is_empty() {
            buf[0] = b'a';
            return Ok(1);
        }
        Err(io::Error::other("invalid chunk size line: \"zz\""))
    }
}

/// Reports a malformed chunked body as a plain `io::Error` instead of
/// `InputError::MalformedBody`. RGI-INPUT-17.
fn untyped_malformed_body() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let environ = built(
        request(Method::POST)
            .input(Input::new(BadChunks(false), None))
            .build(),
    )?;
    serve(&app, environ);
    Ok(seen(app, &reports))
}

/// Creates the `ResponseState` for `GET` while serving a `HEAD` request,
/// so the body goes out. RGI-BODY-15.
fn head_state_as_get() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let environ = built(request(Method::HEAD).build())?;
    let mut state = ResponseState::new(&Method::GET);
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let _ = pull_all(&mut body, &mut state, &mut wire);
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// A synchronous server that inserts `rgi_async::Capabilities` (copied
/// from its async sibling's setup). RGIA-CAP-2.
fn offers_capabilities() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let server = std::sync::Arc::new(
        ServerInfo::new("example.org", 80)
            .map_err(|e| e.to_string())?
            .with_extension(capabilities()),
    );
    let environ = built(request(Method::GET).server_info(server).build())?;
    serve(&app, environ);
    Ok(seen(app, &reports))
}

/// Keeps the finished body in a per-connection list and drops it only
/// when the next request arrives. RGI-BODY-12.
fn keeps_body_until_next_request() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let mut kept = Vec::new();
    for _ in 0..2 {
        let environ = built(request(Method::GET).build())?;
        let mut state = ResponseState::new(environ.method());
        let mut wire = Wire::default();
        let mut body = app
            .call(environ, &mut state.start_response(&mut wire))
            .map_err(|e| e.to_string())?;
        kept.clear();
        let _ = pull_all(&mut body, &mut state, &mut wire);
        let _ = state.finish(&mut wire);
        kept.push(body);
    }
    drop(kept);
    Ok(seen(app, &reports))
}

/// A probe that starts lazily, in its first pull.
fn lazy_probe() -> impl Application {
    rgi::from_fn(|_e: Environ, _start| {
        let mut n = 0;
        Ok(Script::new(move |start: &mut StartResponse<'_>| {
            n += 1;
            (n == 1).then(|| {
                start
                    .start(ok())
                    .map(|()| Bytes::from_static(b"lazy"))
                    .map_err(Into::into)
            })
        }))
    })
}

/// Answers 500 when `call` returns without a started response, without
/// pulling the body. RGI-START-5.
fn unstarted_after_call_is_error() -> Run {
    let reports = reports();
    let app = Validator::new(lazy_probe(), reports.clone());
    let environ = built(request(Method::GET).build())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    if state.is_started() {
        let _ = pull_all(&mut body, &mut state, &mut wire);
    }
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Skips the body of a request for an application that declared
/// `InputUse::None`: the environ gets an empty input and loses its
/// `content-length`. RGI-HINT-6.
fn no_input_for_input_none() -> Run {
    let reports = reports();
    let app = Validator::new(
        rgi::from_fn(|e: Environ, start| {
            start.start(ok())?;
            Ok(Bytes::from(format!("{:?}", e.content_length())))
        })
        .with_hints(
            rgi::Hints::default()
                .with_input(rgi::InputUse::None)
                .with_may_block(false),
        ),
        reports.clone(),
    );
    let input_use = app.hints().input;
    let builder = request(Method::POST);
    let environ = if input_use == rgi::InputUse::None {
        built(builder.build())?
    } else {
        built(
            builder
                .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
                .input(Input::new(Cursor::new(b"abc".to_vec()), Some(3)))
                .build(),
        )?
    };
    serve(&app, environ);
    Ok(seen(app, &reports))
}

/// Maps HEAD to GET in the environ ("the application only knows GET"),
/// keeping HEAD semantics in its own state. RGI-ENV-3.
fn maps_head_to_get() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let environ = built(request(Method::GET).build())?;
    let mut state = ResponseState::new(&Method::HEAD);
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    let _ = pull_all(&mut body, &mut state, &mut wire);
    drop(body);
    let _ = state.finish(&mut wire);
    Ok(seen(app, &reports))
}

/// Leaves the request's source live after the response: the input still
/// reads from the connection. RGI-INPUT-15.
fn input_readable_after_response() -> Run {
    let reports = reports();
    let stash = std::sync::Arc::new(std::sync::Mutex::new(None::<Input>));
    let keep = std::sync::Arc::clone(&stash);
    let app = Validator::new(
        rgi::from_fn(move |e: Environ, start| {
            // Keeps the input to audit the upload later.
            *keep.lock().map_err(|_| "poisoned")? = Some(e.into_input());
            start.start(ok())?;
            Ok(Bytes::from_static(b"accepted"))
        }),
        reports.clone(),
    );
    let source = Cursor::new(b"abcGET /next HTTP/1.1\r\n".to_vec());
    let environ = built(
        request(Method::POST)
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
            .input(Input::new(source, Some(3)))
            .build(),
    )?;
    serve(&app, environ);
    if let Some(mut input) = stash.lock().map_err(|_| "poisoned")?.take() {
        let mut late = Vec::new();
        let _ = input.read_to_end(&mut late);
    }
    Ok(seen(app, &reports))
}

/// A de-chunker that reports a connection closed mid-body as a clean end.
struct CleanEof(bool);

impl Read for CleanEof {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::replace(&mut self.0, true) || buf.is_empty() {
            // The peer closed before the last-chunk: reported as Ok(0).
            return Ok(0);
        }
        buf[0] = b'a';
        Ok(1)
    }
}

/// Its chunked source reports a body cut off before the last-chunk as a
/// normal end. RGI-INPUT-2.
fn truncated_chunked_as_eof() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let environ = built(
        request(Method::POST)
            .input(Input::new(CleanEof(false), None))
            .build(),
    )?;
    serve(&app, environ);
    Ok(seen(app, &reports))
}

/// A source that waits for the client without any timeout.
struct Stalled;

impl Read for Stalled {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        // The client stopped sending; this read waits "for ever".
        std::thread::sleep(Duration::from_secs(30));
        Ok(0)
    }
}

/// Lets a read of a stalled upload block with no timeout. RGI-INPUT-19.
fn stalled_body_blocks() -> Run {
    let reports = reports();
    let app = Validator::new(probe(), reports.clone());
    let environ = built(
        request(Method::POST)
            .input(Input::new(Stalled, None))
            .build(),
    )?;
    serve(&app, environ);
    Ok(seen(app, &reports))
}

/// Pulls every chunk to the end whatever `send_chunk` says, the loop
/// shared by the three components below.
fn pull_ignoring_errors<A: Application>(app: &Validator<A>, environ: Environ) {
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let Ok(mut body) = app.call(environ, &mut state.start_response(&mut wire)) else {
        return;
    };
    for _ in 0..8 {
        match body.next_chunk(&mut state.start_response(&mut wire)) {
            Some(Ok(c)) => {
                let _ = state.send_chunk(&mut wire, c);
            }
            _ => break,
        }
    }
    drop(body);
    let _ = state.finish(&mut wire);
}

/// Ignores `SendError::NotStarted` and keeps pulling a body that never
/// started. RGI-FAIL-7.
fn keeps_pulling_after_not_started() -> Run {
    let reports = reports();
    let app = Validator::new(
        rgi::from_fn(|_e: Environ, _start| Ok(rgi::from_iter(["un", "started"]))),
        reports.clone(),
    );
    pull_ignoring_errors(&app, built(request(Method::GET).build())?);
    Ok(seen(app, &reports))
}

/// Ignores `ContentLengthExceeded` and keeps pulling. RGI-CL-2.
fn keeps_pulling_after_excess() -> Run {
    let reports = reports();
    let app = Validator::new(
        rgi::from_fn(|_e: Environ, start| {
            start.start(crate::support::ok_with_length(3))?;
            Ok(rgi::from_iter(["hello", " world", "!"]))
        }),
        reports.clone(),
    );
    pull_ignoring_errors(&app, built(request(Method::GET).build())?);
    Ok(seen(app, &reports))
}

/// Ignores `BodyNotAllowed` on a 204 and keeps pulling.
/// RGI-BODY-18.
fn keeps_pulling_after_body_not_allowed() -> Run {
    let reports = reports();
    let app = Validator::new(
        rgi::from_fn(|_e: Environ, start| {
            start.start(rgi::ResponseHead::new(http::StatusCode::NO_CONTENT))?;
            Ok(rgi::from_iter(["{}", "{}"]))
        }),
        reports.clone(),
    );
    pull_ignoring_errors(&app, built(request(Method::GET).build())?);
    Ok(seen(app, &reports))
}
