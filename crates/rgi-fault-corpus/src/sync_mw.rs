//! Broken synchronous middleware, run between the synchronous test client
//! and a validated inner application.

#![allow(
    clippy::mem_forget,
    reason = "the mistakes are the point of this module"
)]

use std::io::Read;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, header};
use rgi::{
    Application, Body, BoxError, Environ, Hints, Input, InputUse, Intercept, ResponseHead,
    ResponseState, StartResponse,
};
use rgi_conformance::client::TestRequest;
use rgi_conformance::{Side, Violation};

use crate::support::{Wire, broken, ok, ok_with_length, sync_mw};
use crate::{Component, Interface, Kind};

type Run = Result<Vec<Violation>, String>;

fn mw(name: &'static str, clause: &'static str, side: Side, run: fn() -> Run) -> Component {
    broken(name, Kind::Middleware, Interface::Sync, clause, side, run)
}

pub(crate) fn components() -> Vec<Component> {
    use Side::{Application as App, Server};
    vec![
        mw(
            "sync_mw/inserts_transfer_encoding",
            "RGI-HDR-4",
            Server,
            inserts_transfer_encoding,
        ),
        mw(
            "sync_mw/replaces_input_keeps_length",
            "RGI-INPUT-16",
            Server,
            replaces_input_keeps_length,
        ),
        mw("sync_mw/removes_host", "RGI-HDR-5", Server, removes_host),
        mw(
            "sync_mw/clears_extensions",
            "RGI-MW-11",
            Server,
            clears_extensions,
        ),
        mw(
            "sync_mw/doubles_body_keeps_hint",
            "RGI-MW-8",
            App,
            doubles_body_keeps_hint,
        ),
        mw(
            "sync_mw/stops_after_first_chunk",
            "RGI-CL-4",
            App,
            stops_after_first_chunk,
        ),
        mw(
            "sync_mw/sets_length_keeps_body",
            "RGI-MW-8",
            App,
            sets_length_keeps_body,
        ),
        mw("sync_mw/buffers_in_call", "RGI-MW-6", App, buffers_in_call),
        mw(
            "sync_mw/pulls_several_per_step",
            "RGI-MW-5",
            App,
            pulls_several_per_step,
        ),
        mw(
            "sync_mw/swallows_error_after_head",
            "RGI-MW-9",
            App,
            swallows_error_after_head,
        ),
        mw(
            "sync_mw/writes_inner_chunks",
            "RGI-MW-4",
            App,
            writes_inner_chunks,
        ),
        mw(
            "sync_mw/hints_claim_inline",
            "RGI-HINT-8",
            App,
            hints_claim_inline,
        ),
        mw(
            "sync_mw/forgets_inner_body",
            "RGI-MW-7",
            Server,
            forgets_inner_body,
        ),
        mw(
            "sync_mw/pulls_inner_after_end",
            "RGI-BODY-2",
            Server,
            pulls_inner_after_end,
        ),
        mw(
            "sync_mw/fresh_state_per_inner_pull",
            "RGI-START-1",
            Server,
            fresh_state_per_inner_pull,
        ),
        mw(
            "sync_mw/unbounded_pre_read",
            "RGI-HINT-7",
            Server,
            unbounded_pre_read,
        ),
        mw(
            "sync_mw/replaces_head_after_call",
            "RGI-MW-3",
            App,
            replaces_head_after_call,
        ),
        mw(
            "sync_mw/reads_ahead_after_head",
            "RGI-INPUT-16",
            Server,
            reads_ahead_after_head,
        ),
    ]
}

/// Inner application: echoes the request body with an exact length.
fn echo() -> impl Application {
    rgi::from_fn(|mut e: Environ, start| {
        let body = e.input_mut().read_to_bytes(1 << 16)?;
        start.start(ok_with_length(body.len() as u64))?;
        Ok(body)
    })
}

/// Inner application: three chunks under an exact Content-Length.
fn streamer() -> impl Application {
    rgi::from_fn(|_e: Environ, start| {
        start.start(ok_with_length(13))?;
        Ok(rgi::from_iter(["one ", "two ", "three"]))
    })
}

/// Inner application: a single in-memory chunk (exact size hint), no
/// Content-Length field.
fn greeter() -> impl Application {
    rgi::from_fn(|_e: Environ, start| {
        start.start(ok())?;
        Ok(Bytes::from_static(b"hello"))
    })
}

/// Inner application: one chunk, then a failure, after the head is sent.
fn fails_midway() -> impl Application {
    rgi::from_fn(|_e: Environ, start| {
        start.start(ok())?;
        let mut step = 0;
        Ok(crate::support::Script::new(
            move |_s: &mut StartResponse<'_>| {
                step += 1;
                match step {
                    1 => Some(Ok(Bytes::from_static(b"partial"))),
                    2 => Some(Err(BoxError::from("upstream reset"))),
                    _ => None,
                }
            },
        ))
    })
}

struct InsertsTransferEncoding<A>(A);

impl<A: Application> Application for InsertsTransferEncoding<A> {
    type Body = A::Body;

    fn call(&self, mut e: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        // Re-creates the framing header "for the inner app's information".
        if e.content_length().is_none() {
            e.headers_mut().insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
        self.0.call(e, start)
    }

    fn hints(&self) -> Hints {
        self.0.hints()
    }
}

/// A proxy-fix layer puts `Transfer-Encoding` back into the environ it
/// passes inward. RGI-HDR-4 (the middleware is the inner app's server,
/// RGI-MW-1).
fn inserts_transfer_encoding() -> Run {
    sync_mw(
        echo(),
        InsertsTransferEncoding,
        [TestRequest::post("/", "").chunked(["ab", "c"])],
    )
}

struct Inflate<A>(A);

impl<A: Application> Application for Inflate<A> {
    type Body = A::Body;

    fn call(&self, mut e: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        let packed = e.input_mut().read_to_bytes(1 << 16)?;
        // "Decompresses" (doubles) the body; forgets the content-length field.
        let mut inflated = BytesMut::from(&packed[..]);
        inflated.extend_from_slice(&packed);
        e.replace_input(Input::from_bytes(inflated.freeze()));
        self.0.call(e, start)
    }

    fn hints(&self) -> Hints {
        self.0.hints()
    }
}

/// A decompressing layer replaces the input but leaves the old
/// `content-length` field. RGI-INPUT-16.
fn replaces_input_keeps_length() -> Run {
    sync_mw(echo(), Inflate, [TestRequest::post("/", "abc")])
}

struct RemovesHost<A>(A);

impl<A: Application> Application for RemovesHost<A> {
    type Body = A::Body;

    fn call(&self, mut e: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        // Strips "untrusted" client fields, Host among them.
        e.headers_mut().remove(header::HOST);
        self.0.call(e, start)
    }

    fn hints(&self) -> Hints {
        self.0.hints()
    }
}

/// A header-scrubbing layer removes `Host` from an HTTP/1.1 request.
/// RGI-HDR-5.
fn removes_host() -> Run {
    sync_mw(greeter(), RemovesHost, [TestRequest::get("/")])
}

/// A request extension the middleware does not know.
#[derive(Debug, Clone)]
#[allow(dead_code, reason = "only its presence matters")]
struct TraceId(u64);

struct ClearsExtensions<A>(A);

impl<A: Application> Application for ClearsExtensions<A> {
    type Body = A::Body;

    fn call(&self, mut e: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        e.extensions_mut().clear();
        self.0.call(e, start)
    }

    fn hints(&self) -> Hints {
        self.0.hints()
    }
}

/// Drops every request extension, including ones it does not know.
/// RGI-MW-11.
fn clears_extensions() -> Run {
    sync_mw(
        greeter(),
        ClearsExtensions,
        [TestRequest::get("/").extension(TraceId(7))],
    )
}

struct Doubled<B>(B);

impl<B: Body> Body for Doubled<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.0.next_chunk(start).map(|r| {
            r.map(|c| {
                let mut twice = BytesMut::from(&c[..]);
                twice.extend_from_slice(&c);
                twice.freeze()
            })
        })
    }

    fn size_hint(&self) -> Option<u64> {
        self.0.size_hint()
    }
}

struct Doubles<A>(A);

impl<A: Application> Application for Doubles<A> {
    type Body = Doubled<A::Body>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        self.0.call(e, start).map(Doubled)
    }
}

/// Doubles every chunk and forwards the inner size hint. RGI-MW-8.
fn doubles_body_keeps_hint() -> Run {
    sync_mw(greeter(), Doubles, [TestRequest::get("/")])
}

struct FirstOnly<B>(Option<B>);

impl<B: Body> Body for FirstOnly<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        // A "preview" layer: the first chunk is enough.
        let mut inner = self.0.take()?;
        inner.next_chunk(start)
    }
}

struct Preview<A>(A);

impl<A: Application> Application for Preview<A> {
    type Body = FirstOnly<A::Body>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        self.0.call(e, start).map(|b| FirstOnly(Some(b)))
    }
}

/// Passes only the first inner chunk on, leaving the inner
/// Content-Length in place. RGI-CL-4 (towards the client it is the
/// application that declared the length).
fn stops_after_first_chunk() -> Run {
    sync_mw(streamer(), Preview, [TestRequest::get("/")])
}

struct SetLength;

impl Intercept for SetLength {
    fn on_start(&mut self, head: &mut ResponseHead) {
        // The length it would have after compression; the body is not
        // compressed after all.
        head.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        head.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
}

struct Compress<A>(A);

impl<A: Application> Application for Compress<A> {
    type Body = A::Body;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        let mut hook = SetLength;
        self.0.call(e, &mut start.intercept(&mut hook))
    }
}

/// Sets a compressed Content-Length but passes the body through
/// unchanged. RGI-MW-8.
fn sets_length_keeps_body() -> Run {
    sync_mw(greeter(), Compress, [TestRequest::get("/")])
}

struct Buffer<A>(A);

impl<A: Application> Application for Buffer<A> {
    type Body = Bytes;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
        let mut inner = self.0.call(e, start)?;
        let mut all = BytesMut::new();
        while let Some(chunk) = inner.next_chunk(start) {
            all.extend_from_slice(&chunk?);
        }
        Ok(all.freeze())
    }
}

/// Pulls the whole inner body inside its own `call`. RGI-MW-6.
fn buffers_in_call() -> Run {
    sync_mw(streamer(), Buffer, [TestRequest::get("/")])
}

struct Coalesced<B>(B, bool);

impl<B: Body> Body for Coalesced<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if self.1 {
            return None;
        }
        let mut pending = BytesMut::new();
        while pending.len() < 8 {
            match self.0.next_chunk(start) {
                Some(Ok(c)) => pending.extend_from_slice(&c),
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.1 = true;
                    break;
                }
            }
        }
        Some(Ok(pending.freeze()))
    }
}

struct Coalesce<A>(A);

impl<A: Application> Application for Coalesce<A> {
    type Body = Coalesced<A::Body>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        self.0.call(e, start).map(|b| Coalesced(b, false))
    }
}

/// Pulls inner chunks until it has 8 bytes before answering one pull.
/// RGI-MW-5.
fn pulls_several_per_step() -> Run {
    sync_mw(streamer(), Coalesce, [TestRequest::get("/")])
}

struct Forgiving<B>(B);

impl<B: Body> Body for Forgiving<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match self.0.next_chunk(start) {
            // An error after the head: "nothing to do now", end normally.
            Some(Err(_)) if start.is_head_sent() => None,
            other => other,
        }
    }
}

struct Forgive<A>(A);

impl<A: Application> Application for Forgive<A> {
    type Body = Forgiving<A::Body>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        self.0.call(e, start).map(Forgiving)
    }
}

/// Ends the body normally when the inner body fails after the head.
/// RGI-MW-9.
fn swallows_error_after_head() -> Run {
    sync_mw(fails_midway(), Forgive, [TestRequest::get("/")])
}

struct Pushing<B>(B);

impl<B: Body> Body for Pushing<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match self.0.next_chunk(start)? {
            Ok(chunk) => Some(
                start
                    .write(chunk)
                    .map(|()| Bytes::new())
                    .map_err(Into::into),
            ),
            Err(e) => Some(Err(e)),
        }
    }
}

struct Push<A>(A);

impl<A: Application> Application for Push<A> {
    type Body = Pushing<A::Body>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        self.0.call(e, start).map(Pushing)
    }
}

/// Sends inner chunks with the outer `write` (to "flush" each at once).
/// RGI-MW-4.
fn writes_inner_chunks() -> Run {
    sync_mw(streamer(), Push, [TestRequest::get("/")])
}

struct Inline<A>(A);

impl<A: Application> Application for Inline<A> {
    type Body = A::Body;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        self.0.call(e, start)
    }

    fn hints(&self) -> Hints {
        // Its own work never blocks, so it says so, ignoring the inner app.
        Hints::default()
            .with_input(InputUse::None)
            .with_may_block(false)
    }
}

/// Returns inline-safe hints over a default (blocking, streaming) inner
/// application. RGI-HINT-8.
fn hints_claim_inline() -> Run {
    sync_mw(echo(), Inline, [TestRequest::post("/", "abc")])
}

struct Forgetting<B>(Option<B>);

impl<B: Body> Body for Forgetting<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        let inner = self.0.as_mut()?;
        let step = inner.next_chunk(start);
        if step.is_none() {
            // "Already finished, no need to run its destructor."
            std::mem::forget(self.0.take());
        }
        step
    }
}

struct Forget<A>(A);

impl<A: Application> Application for Forget<A> {
    type Body = Forgetting<A::Body>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        self.0.call(e, start).map(|b| Forgetting(Some(b)))
    }
}

/// `mem::forget`s the inner body once it has ended. RGI-MW-7.
fn forgets_inner_body() -> Run {
    sync_mw(streamer(), Forget, [TestRequest::get("/")])
}

struct DoubleCheck<B>(B);

impl<B: Body> Body for DoubleCheck<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match self.0.next_chunk(start) {
            // "Make sure it is really finished."
            None => self.0.next_chunk(start),
            other => other,
        }
    }
}

struct Recheck<A>(A);

impl<A: Application> Application for Recheck<A> {
    type Body = DoubleCheck<A::Body>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        self.0.call(e, start).map(DoubleCheck)
    }
}

/// Pulls the inner body again after it returned `None`. RGI-BODY-2.
fn pulls_inner_after_end() -> Run {
    sync_mw(streamer(), Recheck, [TestRequest::get("/")])
}

struct Captured<B> {
    inner: B,
    head: Option<ResponseHead>,
}

impl<B: Body> Body for Captured<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if let Some(head) = self.head.take() {
            if let Err(e) = start.start(head) {
                return Some(Err(e.into()));
            }
        }
        // A new private state for every inner pull: the inner body's
        // handle knows nothing of its own response.
        let mut state = ResponseState::new(&http::Method::GET);
        let mut wire = Wire::default();
        self.inner.next_chunk(&mut state.start_response(&mut wire))
    }
}

struct Capture<A>(A);

impl<A: Application> Application for Capture<A> {
    type Body = Captured<A::Body>;

    fn call(&self, e: Environ, _start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        let mut state = ResponseState::new(e.method());
        let mut wire = Wire::default();
        let inner = self.0.call(e, &mut state.start_response(&mut wire))?;
        Ok(Captured {
            inner,
            head: state.head().cloned(),
        })
    }
}

/// Drives the inner application with a private state for `call`, and a
/// fresh one for every pull. RGI-START-1 (as the inner app's server,
/// RGI-MW-2).
fn fresh_state_per_inner_pull() -> Run {
    sync_mw(streamer(), Capture, [TestRequest::get("/")])
}

struct PreRead<A>(A);

impl<A: Application> Application for PreRead<A> {
    type Body = A::Body;

    fn call(&self, mut e: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        let mut all = Vec::new();
        e.input_mut().read_to_end(&mut all)?;
        e.replace_input(Input::from_bytes(all));
        self.0.call(e, start)
    }
}

/// Reads the whole body into memory first, with no bound. RGI-HINT-7.
fn unbounded_pre_read() -> Run {
    sync_mw(echo(), PreRead, [TestRequest::post("/", vec![b'x'; 4096])])
}

struct SecurityHeaders<A>(A);

impl<A: Application> Application for SecurityHeaders<A> {
    type Body = A::Body;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        let body = self.0.call(e, start)?;
        // Adds its field by replacing the inner head instead of
        // intercepting it: the inner status and fields are lost.
        if start.is_started() && !start.is_head_sent() {
            start.replace(
                ok().with_header(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
                BoxError::from("adding security headers"),
            )?;
        }
        Ok(body)
    }
}

/// Changes the inner head with `replace` after the inner `call` instead
/// of an `Intercept` hook. RGI-MW-3.
fn replaces_head_after_call() -> Run {
    sync_mw(streamer(), SecurityHeaders, [TestRequest::get("/")])
}

/// The original input, shared between the middleware and the replacement
/// it hands inward.
#[derive(Clone)]
struct SharedInput(std::sync::Arc<std::sync::Mutex<Input>>);

impl Read for SharedInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .read(buf)
    }
}

struct Audited<B> {
    inner: B,
    original: SharedInput,
    audit: Vec<u8>,
}

impl<B: Body> Body for Audited<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if start.is_head_sent() && self.audit.is_empty() {
            // Once the response is under way, drain the rest of the upload
            // into the audit log, ahead of the inner application.
            let _ = self.original.read_to_end(&mut self.audit);
            self.audit.push(b'.');
        }
        self.inner.next_chunk(start)
    }
}

struct Audit<A>(A);

impl<A: Application> Application for Audit<A> {
    type Body = Audited<A::Body>;

    fn call(&self, mut e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        let length = e.content_length();
        let original = SharedInput(std::sync::Arc::new(std::sync::Mutex::new(
            e.replace_input(Input::empty()),
        )));
        e.replace_input(Input::new(original.clone(), length));
        let inner = self.0.call(e, start)?;
        Ok(Audited {
            inner,
            original,
            audit: Vec::new(),
        })
    }
}

/// Inner application: streams the upload back one line per pull, reading
/// as it goes.
fn line_echo() -> impl Application {
    rgi::from_fn(|e: Environ, start| {
        start.start(ok())?;
        let mut input = e.into_input();
        Ok(crate::support::Script::new(
            move |_s: &mut StartResponse<'_>| {
                let mut line = Vec::new();
                match input.read_line_limited(&mut line, 64) {
                    Ok(0) => None,
                    Ok(_) => Some(Ok(Bytes::from(line))),
                    Err(e) => Some(Err(e.into())),
                }
            },
        ))
    })
}

/// An audit layer drains the rest of the request body once the head has
/// gone out, ahead of the inner application, whose replacement input
/// then ends early. RGI-INPUT-16 (the replacement must obey §5: a
/// declared length it cannot deliver).
fn reads_ahead_after_head() -> Run {
    sync_mw(
        line_echo(),
        Audit,
        [TestRequest::post("/", "line one\nline two\nline three\n")],
    )
}
