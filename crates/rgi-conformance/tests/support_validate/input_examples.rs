//! One deliberately broken party per check of the input over its whole
//! life and of the declared environ facts (issue 11 §2).

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use rgi::{
    Application, AsyncSource, Body, BoxError, Concurrency, Environ, Hints, Input, StartResponse,
};
use rgi_async::Step;
use rgi_conformance::Violation;
use rgi_conformance::client::{TestClient, TestRequest};
use rgi_conformance::rt::{Recorder, serve_async, serve_sync};
use rgi_conformance::validate::{AsyncValidator, Validator};

use super::common::{
    AsyncSteps, async_environ, build, collect, environ, serve, serve_asynchronously, text,
};

/// Reads the whole body (bounded) and answers it back.
pub(crate) fn echo() -> impl Application {
    rgi::from_fn(|mut environ: Environ, start| {
        let body = environ.input_mut().read_to_bytes(1 << 16)?;
        start.start(text(StatusCode::OK))?;
        Ok(body)
    })
}

/// A blocking source whose first read fails with `kind` (or with a plain
/// `io::Error::other` for `None`), then delivers `data`.
pub(crate) struct FailsFirst {
    pub(crate) data: &'static [u8],
    pub(crate) failure: Option<io::ErrorKind>,
}

impl Read for FailsFirst {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(kind) = self.failure.take() {
            return Err(io::Error::new(kind, "first read fails"));
        }
        let count = self.data.len().min(buf.len());
        buf[..count].copy_from_slice(&self.data[..count]);
        self.data = &self.data[count..];
        Ok(count)
    }
}

pub(crate) fn blocking_read_would_block() -> Vec<Violation> {
    // The server left its socket in non-blocking mode.
    let source = FailsFirst {
        data: b"abc",
        failure: Some(io::ErrorKind::WouldBlock),
    };
    serve(
        echo(),
        build(
            environ()
                .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
                .input(Input::new(source, Some(3))),
        ),
    )
}

/// A de-chunker that reports a chunk-size line it cannot parse as a plain
/// error.
struct BadChunkLine(bool);

impl Read for BadChunkLine {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !std::mem::replace(&mut self.0, true) && !buf.is_empty() {
            buf[0] = b'a';
            return Ok(1);
        }
        Err(io::Error::other("invalid chunk size line \"zz\""))
    }
}

pub(crate) fn input_error_untyped() -> Vec<Violation> {
    serve(
        echo(),
        build(environ().input(Input::new(BadChunkLine(false), None))),
    )
}

/// An application that keeps the input for later, unread.
pub(crate) fn keeps_input(stash: &Arc<Mutex<Option<Input>>>) -> impl Application + use<> {
    let stash = Arc::clone(stash);
    rgi::from_fn(move |environ: Environ, start| {
        *stash.lock().map_err(|_| "poisoned")? = Some(environ.into_input());
        start.start(text(StatusCode::ACCEPTED))?;
        Ok(Bytes::from_static(b"later"))
    })
}

/// Reads what is left in the stashed input; what the read returned.
pub(crate) fn read_stashed(stash: &Arc<Mutex<Option<Input>>>) -> io::Result<Vec<u8>> {
    let mut late = Vec::new();
    let taken = stash.lock().expect("not poisoned").take();
    if let Some(mut input) = taken {
        input.read_to_end(&mut late)?;
    }
    Ok(late)
}

pub(crate) fn input_read_after_response() -> Vec<Violation> {
    let reports = collect();
    let stash = Arc::new(Mutex::new(None));
    let validator = Validator::new(keeps_input(&stash), reports.clone());
    // The server leaves the connection's reader behind the input after the
    // response: the bytes that follow belong to the next request.
    let source = io::Cursor::new(b"abcGET /next HTTP/1.1\r\n".to_vec());
    let environ = build(
        environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
            .input(Input::new(source, Some(3))),
    );
    let _ = serve_sync(&validator, environ, &mut Recorder::new());
    let _ = read_stashed(&stash);
    drop(validator);
    reports.all()
}

/// An asynchronous source with all its bytes at hand.
pub(crate) struct AtHand(pub(crate) Bytes);

impl AsyncSource for AtHand {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let take = max.min(self.0.len());
        Poll::Ready(Ok(self.0.split_to(take)))
    }
}

/// An asynchronous application that keeps the input for later, unread.
pub(crate) fn keeps_input_async(
    stash: &Arc<Mutex<Option<Input>>>,
) -> impl rgi_async::AsyncApplication + use<> {
    let stash = Arc::clone(stash);
    rgi_async::from_fn(move |environ: Environ, start| {
        *stash.lock().map_err(|_| "poisoned")? = Some(environ.into_input());
        start.start(text(StatusCode::ACCEPTED))?;
        Ok(Bytes::from_static(b"later"))
    })
}

pub(crate) fn async_input_read_after_response() -> Vec<Violation> {
    let reports = collect();
    let stash = Arc::new(Mutex::new(None));
    let validator = AsyncValidator::new(keeps_input_async(&stash), reports.clone());
    let environ = build(
        async_environ()
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
            .input(Input::from_async(
                AtHand(Bytes::from_static(b"abcGET /")),
                Some(3),
            )),
    );
    let _ = serve_async(&validator, environ, &mut Recorder::new());
    let _ = read_stashed(&stash);
    drop(validator);
    reports.all()
}

/// An application whose calls wait for each other at `barrier`, so that
/// two calls are certainly in progress at once.
pub(crate) fn meets(barrier: &Arc<Barrier>) -> impl Application + use<> {
    let barrier = Arc::clone(barrier);
    rgi::from_fn(move |_environ: Environ, start| {
        barrier.wait();
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"met"))
    })
}

/// Serves two requests with `flags` from two threads at once.
pub(crate) fn two_at_once(flags: Concurrency) -> Vec<Violation> {
    let reports = collect();
    let barrier = Arc::new(Barrier::new(2));
    let validator = Validator::new(meets(&barrier), reports.clone());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let validator = &validator;
            scope.spawn(move || {
                let environ = build(environ().concurrency(flags));
                let _ = serve_sync(validator, environ, &mut Recorder::new());
            });
        }
    });
    drop(validator);
    reports.all()
}

pub(crate) fn single_thread_claim_concurrent_calls() -> Vec<Violation> {
    two_at_once(Concurrency::MULTITHREADED.with_multithread(false))
}

pub(crate) fn run_once_called_again() -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(echo(), reports.clone());
    let flags = Concurrency::MULTITHREADED
        .with_multithread(false)
        .with_run_once(true);
    for _ in 0..2 {
        let environ = build(environ().concurrency(flags));
        let _ = serve_sync(&validator, environ, &mut Recorder::new());
    }
    drop(validator);
    reports.all()
}

/// [`echo`] as a named type, so middleware examples can name the
/// validator around it.
pub(crate) struct Echo;

impl Application for Echo {
    type Body = Bytes;

    fn call(&self, mut environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
        let body = environ.input_mut().read_to_bytes(1 << 16)?;
        start.start(text(StatusCode::OK))?;
        Ok(body)
    }
}

/// Runs a middleware made by `wrap` around a validator around [`Echo`],
/// behind the kit's test client; what both validators reported.
pub(crate) fn through_middleware<M: Application>(
    wrap: impl FnOnce(Validator<Echo>) -> M,
    request: TestRequest,
) -> Vec<Violation> {
    let inner_reports = collect();
    let client = TestClient::new(wrap(Validator::new(Echo, inner_reports.clone())));
    let mut seen = client
        .request(request)
        .expect("the test client runs the request")
        .violations;
    drop(client);
    seen.extend(inner_reports.all());
    seen
}

/// A middleware that runs `edit` on the environ before calling inward.
pub(crate) struct Edits<A, F>(pub(crate) A, pub(crate) F);

impl<A, F> Application for Edits<A, F>
where
    A: Application,
    F: Fn(&mut Environ) -> Result<(), BoxError> + Send + Sync + 'static,
{
    type Body = A::Body;

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<A::Body, BoxError> {
        (self.1)(&mut environ)?;
        self.0.call(environ, start)
    }

    fn hints(&self) -> Hints {
        self.0.hints()
    }
}

/// Doubles the body (a "decompressor"), and forgets the length field.
pub(crate) fn inflates_keeping_length(environ: &mut Environ) -> Result<(), BoxError> {
    let packed = environ.input_mut().read_to_bytes(1 << 16)?;
    let mut inflated = packed.to_vec();
    inflated.extend_from_slice(&packed);
    environ.replace_input(Input::from_bytes(inflated));
    Ok(())
}

pub(crate) fn mw_input_length_disagrees() -> Vec<Violation> {
    through_middleware(
        |inner| Edits(inner, inflates_keeping_length),
        TestRequest::post("/", "abc"),
    )
}

/// The original input, shared between a middleware and the replacement it
/// hands inward.
#[derive(Clone)]
pub(crate) struct Shared(pub(crate) Arc<Mutex<Input>>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .read(buf)
    }
}

/// Hands inward an input over the original, then drains the original
/// itself at the first pull, before the inner application has read it all
/// (an "audit log" of the upload).
pub(crate) struct Audits<A>(pub(crate) A);

impl<A: Application> Application for Audits<A> {
    type Body = Audited<A::Body>;

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let length = environ.content_length();
        let original = Shared(Arc::new(Mutex::new(environ.replace_input(Input::empty()))));
        environ.replace_input(Input::new(original.clone(), length));
        let inner = self.0.call(environ, start)?;
        Ok(Audited {
            inner,
            original: Some(original),
        })
    }
}

/// The body of [`Audits`].
pub(crate) struct Audited<B> {
    inner: B,
    original: Option<Shared>,
}

impl<B: Body> Body for Audited<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if let Some(mut original) = self.original.take() {
            let mut audit = Vec::new();
            if let Err(error) = original.read_to_end(&mut audit) {
                return Some(Err(error.into()));
            }
        }
        self.inner.next_chunk(start)
    }
}

/// Reads one line of the upload in `call`, and the rest at its first pull.
pub(crate) fn line_then_rest() -> impl Application {
    rgi::from_fn(|environ: Environ, start| {
        let mut input = environ.into_input();
        let mut line = Vec::new();
        input.read_line_limited(&mut line, 64)?;
        start.start(text(StatusCode::OK))?;
        let mut first = Some(Bytes::from(line));
        Ok(super::common::Steps(
            0,
            move |_, _: &mut StartResponse<'_>| {
                if let Some(line) = first.take() {
                    let rest = match input.read_to_bytes(1 << 16) {
                        Ok(rest) => rest,
                        Err(error) => return Some(Err(error.into())),
                    };
                    let mut both = line.to_vec();
                    both.extend_from_slice(&rest);
                    return Some(Ok(Bytes::from(both)));
                }
                None
            },
        ))
    })
}

pub(crate) fn mw_input_truncated() -> Vec<Violation> {
    let inner_reports = collect();
    let client = TestClient::new(Audits(Validator::new(
        line_then_rest(),
        inner_reports.clone(),
    )));
    let mut seen = client
        .request(TestRequest::post("/", "line one\nline two\nline three\n"))
        .expect("the test client runs the request")
        .violations;
    drop(client);
    seen.extend(inner_reports.all());
    seen
}

/// Clears every request extension.
pub(crate) fn clears_extensions(environ: &mut Environ) -> Result<(), BoxError> {
    environ.extensions_mut().clear();
    Ok(())
}

pub(crate) fn mw_extension_removed() -> Vec<Violation> {
    through_middleware(
        |inner| Edits(inner, clears_extensions),
        TestRequest::get("/"),
    )
}

/// Reads the whole upload, then refuses it for `status`.
pub(crate) fn reads_then_refuses(status: StatusCode) -> impl Application {
    rgi::from_fn(move |mut environ: Environ, start| {
        let _ = environ.input_mut().read_to_bytes(1 << 16)?;
        start.start(text(status))?;
        Ok(Bytes::from_static(b"refused"))
    })
}

/// An upload of five bytes that asks for `100 Continue`.
pub(crate) fn expecting_upload() -> Environ {
    build(
        environ()
            .header(header::EXPECT, HeaderValue::from_static("100-continue"))
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("5"))
            .input(Input::new(&b"hello"[..], Some(5))),
    )
}

pub(crate) fn read_before_refusing() -> Vec<Violation> {
    serve(
        reads_then_refuses(StatusCode::UNAUTHORIZED),
        expecting_upload(),
    )
}

/// An asynchronous application that polls its input for `max` bytes at a
/// time and answers with what it read.
pub(crate) fn polls_input(max: usize) -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        let mut input = environ.into_input();
        Ok(AsyncSteps(
            0,
            move |_, cx: &mut Context<'_>, _: &mut StartResponse<'_>| match input
                .poll_chunk(cx, max)
            {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => Poll::Ready(None),
                Poll::Ready(Ok(chunk)) => Poll::Ready(Some(Ok(Step::Chunk(chunk)))),
                Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error.into()))),
            },
        ))
    })
}

pub(crate) fn zero_sized_poll() -> Vec<Violation> {
    // A buffer size computed from a content length the request does not
    // have: 0.
    serve_asynchronously(
        polls_input(0),
        build(async_environ().input(Input::from_async(AtHand(Bytes::from_static(b"ab")), None))),
    )
}

/// A source that answers every poll with all it has, whatever the `max`.
pub(crate) struct Generous(pub(crate) Bytes);

impl AsyncSource for Generous {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let all = self.0.len();
        Poll::Ready(Ok(self.0.split_to(all)))
    }
}

pub(crate) fn source_overdelivered() -> Vec<Violation> {
    serve_asynchronously(
        polls_input(2),
        build(
            async_environ()
                .header(header::CONTENT_LENGTH, HeaderValue::from_static("6"))
                .input(Input::from_async(
                    Generous(Bytes::from_static(b"abcdef")),
                    Some(6),
                )),
        ),
    )
}
