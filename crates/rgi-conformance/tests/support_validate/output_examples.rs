//! Broken examples for the checks of the output after the head and of
//! middleware between two validators (issue 11 §2), each with the mistake
//! written out; `tests/watch_output.rs` pairs each with a clean example.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{
    Application, Body, BoxError, Environ, Hints, Input, InputUse, ResponseHead, StartResponse,
};
use rgi_async::{AsyncApplication, AsyncBody, Step, SyncSwitch};
use rgi_conformance::Violation;
use rgi_conformance::client::{AsyncTestClient, TestClient, TestRequest};
use rgi_conformance::validate::{AsyncValidator, Validator};

use super::common::{AsyncSteps, Driver, Steps, build, collect, environ, serve, text};

type Poll1 = Poll<Option<Result<Step, BoxError>>>;

/// Runs `requests` through a synchronous test client for `wrap(inner
/// validator)`: the middleware between two validators, as its author
/// tests it. Returns what both validators reported.
pub(crate) fn nested<A, M>(
    inner: A,
    wrap: impl FnOnce(Validator<A>) -> M,
    requests: impl IntoIterator<Item = TestRequest>,
) -> Vec<Violation>
where
    A: Application,
    M: Application,
{
    let reports = collect();
    let client = TestClient::new(wrap(Validator::new(inner, reports.clone())));
    let mut seen = Vec::new();
    for request in requests {
        let response = client.request(request).expect("the client runs");
        seen.extend(response.violations);
    }
    drop(client);
    seen.extend(reports.all());
    seen
}

/// As [`nested`], for an asynchronous middleware.
pub(crate) fn nested_async<A, M>(
    inner: A,
    wrap: impl FnOnce(AsyncValidator<A>) -> M,
) -> Vec<Violation>
where
    A: AsyncApplication,
    M: AsyncApplication,
{
    let reports = collect();
    let client = AsyncTestClient::new(wrap(AsyncValidator::new(inner, reports.clone())));
    let response = client
        .request(TestRequest::get("/"))
        .expect("the client runs");
    drop(client);
    let mut seen = response.violations;
    seen.extend(reports.all());
    seen
}

/// Inner application: three chunks under a Content-Length of 11.
pub(crate) fn three_chunks() -> impl Application {
    rgi::from_fn(|_environ: Environ, start| {
        start.start(
            text(StatusCode::OK).with_header(header::CONTENT_LENGTH, HeaderValue::from(11)),
        )?;
        Ok(rgi::from_iter(["abc", "defg", "hijk"]))
    })
}

/// Inner application: one in-memory chunk, no Content-Length.
pub(crate) fn one_chunk() -> impl Application {
    rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Bytes::from_static(b"payload"))
    })
}

/// Inner application: a chunk, then a failure after the head went out.
pub(crate) fn fails_after_head() -> impl Application {
    rgi::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(Steps(0, |n, _start: &mut StartResponse<'_>| match n {
            0 => Some(Ok(Bytes::from_static(b"first"))),
            1 => Some(Err(BoxError::from("the backend went away"))),
            _ => None,
        }))
    })
}

/// A middleware whose body is the inner body passed through `step`.
pub(crate) struct Map<A, F> {
    pub(crate) inner: A,
    pub(crate) step: F,
}

/// The body of [`Map`].
pub(crate) struct Mapped<B, F> {
    inner: B,
    step: F,
}

impl<A, F> Application for Map<A, F>
where
    A: Application,
    F: Fn(&mut A::Body, &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>>
        + Clone
        + Send
        + Sync
        + 'static,
{
    type Body = Mapped<A::Body, F>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        Ok(Mapped {
            inner: self.inner.call(environ, start)?,
            step: self.step.clone(),
        })
    }
}

impl<B, F> Body for Mapped<B, F>
where
    B: Body,
    F: Fn(&mut B, &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> + Send,
{
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        (self.step)(&mut self.inner, start)
    }

    fn size_hint(&self) -> Option<u64> {
        // Forwarded whatever the step does: right only for a step that
        // passes the bytes through.
        self.inner.size_hint()
    }
}

// ---- middleware between two validators ----

/// Buffers the inner body inside its own `call`.
pub(crate) fn mw_pulls_in_call() -> Vec<Violation> {
    struct Buffering<A>(A);
    impl<A: Application> Application for Buffering<A> {
        type Body = Bytes;
        fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
            let mut inner = self.0.call(environ, start)?;
            let mut all = BytesMut::new();
            while let Some(chunk) = inner.next_chunk(start) {
                all.extend_from_slice(&chunk?);
            }
            Ok(all.freeze())
        }
    }
    nested(three_chunks(), Buffering, [TestRequest::get("/")])
}

/// Gathers inner chunks until it has eight bytes for one pull.
pub(crate) fn mw_several_per_step() -> Vec<Violation> {
    nested(
        boxed(three_chunks()),
        |inner| Map {
            inner,
            step: |body: &mut Validated, start: &mut StartResponse<'_>| {
                let mut gathered = BytesMut::new();
                while gathered.len() < 8 {
                    match body.next_chunk(start)? {
                        Ok(chunk) => gathered.extend_from_slice(&chunk),
                        Err(error) => return Some(Err(error)),
                    }
                }
                Some(Ok(gathered.freeze()))
            },
        },
        [TestRequest::get("/")],
    )
}

type Validated = rgi_conformance::validate::ValidatedBody<Box<dyn Body>>;

/// Ends normally when the inner body fails after the head.
pub(crate) fn mw_swallows_failure() -> Vec<Violation> {
    nested(
        boxed(fails_after_head()),
        |inner| Map {
            inner,
            step: |body: &mut Validated, start: &mut StartResponse<'_>| match body.next_chunk(start)
            {
                Some(Err(_)) => None,
                other => other,
            },
        },
        [TestRequest::get("/")],
    )
}

/// Adds a field by replacing the inner head after the inner `call`.
pub(crate) fn mw_head_not_intercepted() -> Vec<Violation> {
    struct Replacing<A>(A);
    impl<A: Application> Application for Replacing<A> {
        type Body = A::Body;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<A::Body, BoxError> {
            let body = self.0.call(environ, start)?;
            start.replace(
                text(StatusCode::OK)
                    .with_header(header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                BoxError::from("adding cache-control"),
            )?;
            Ok(body)
        }
    }
    nested(one_chunk(), Replacing, [TestRequest::get("/")])
}

/// Sends every inner chunk with the outer `write`.
pub(crate) fn mw_writes_inner_chunk() -> Vec<Violation> {
    nested(
        boxed(three_chunks()),
        |inner| Map {
            inner,
            step: |body: &mut Validated, start: &mut StartResponse<'_>| match body
                .next_chunk(start)?
            {
                Ok(chunk) => Some(
                    start
                        .write(chunk)
                        .map(|()| Bytes::new())
                        .map_err(Into::into),
                ),
                Err(error) => Some(Err(error)),
            },
        },
        [TestRequest::get("/")],
    )
}

/// Upper-cases and repeats each chunk, forwarding the inner size hint.
pub(crate) fn mw_length_untrue() -> Vec<Violation> {
    nested(
        boxed(one_chunk()),
        |inner| Map {
            inner,
            step: |body: &mut Validated, start: &mut StartResponse<'_>| {
                body.next_chunk(start).map(|step| {
                    step.map(|chunk| {
                        let mut twice = BytesMut::from(&chunk[..]);
                        twice.extend_from_slice(&chunk);
                        twice.freeze()
                    })
                })
            },
        },
        [TestRequest::get("/")],
    )
}

/// Claims to read nothing and never block over an application that
/// streams its input.
pub(crate) fn mw_hints_understated() -> Vec<Violation> {
    struct Claims<A>(A);
    impl<A: Application> Application for Claims<A> {
        type Body = A::Body;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<A::Body, BoxError> {
            self.0.call(environ, start)
        }
        fn hints(&self) -> Hints {
            Hints::default()
                .with_input(InputUse::None)
                .with_may_block(false)
        }
    }
    nested(one_chunk(), Claims, [TestRequest::get("/")])
}

/// Forgets the inner body once it ended.
pub(crate) fn mw_inner_body_not_dropped() -> Vec<Violation> {
    struct Forgetting<B>(Option<B>);
    impl<B: Body> Body for Forgetting<B> {
        fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
            let step = self.0.as_mut()?.next_chunk(start);
            if step.is_none() {
                #[allow(clippy::mem_forget, reason = "the mistake this example makes")]
                std::mem::forget(self.0.take());
            }
            step
        }
    }
    struct Forget<A>(A);
    impl<A: Application> Application for Forget<A> {
        type Body = Forgetting<A::Body>;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<Self::Body, BoxError> {
            self.0
                .call(environ, start)
                .map(|body| Forgetting(Some(body)))
        }
    }
    nested(three_chunks(), Forget, [TestRequest::get("/")])
}

/// A synchronous application boxed, so that the middleware closures can
/// name the inner body's type.
pub(crate) fn boxed<A: Application>(app: A) -> impl Application<Body = Box<dyn Body>> {
    struct Boxed<A>(A);
    impl<A: Application> Application for Boxed<A> {
        type Body = Box<dyn Body>;
        fn call(
            &self,
            environ: Environ,
            start: &mut StartResponse<'_>,
        ) -> Result<Box<dyn Body>, BoxError> {
            Ok(Box::new(self.0.call(environ, start)?))
        }
        fn hints(&self) -> Hints {
            self.0.hints()
        }
    }
    Boxed(app)
}

// ---- asynchronous middleware between two validators ----

type Inner = Pin<Box<dyn AsyncBody>>;

/// An asynchronous middleware whose poll is `poll` over the inner body.
pub(crate) struct Layer<A, F> {
    pub(crate) inner: A,
    pub(crate) poll: F,
}

/// The body of [`Layer`].
pub(crate) struct LayerBody<F> {
    inner: Option<Inner>,
    poll: F,
}

impl<A, F> AsyncApplication for Layer<A, F>
where
    A: AsyncApplication,
    F: Fn(&mut Option<Inner>, &mut Context<'_>, &mut StartResponse<'_>) -> Poll1
        + Clone
        + Send
        + Sync
        + Unpin
        + 'static,
{
    type Body = LayerBody<F>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let inner: Inner = Box::pin(self.inner.call(environ, start)?);
        Ok(LayerBody {
            inner: Some(inner),
            poll: self.poll.clone(),
        })
    }
}

impl<F> AsyncBody for LayerBody<F>
where
    F: Fn(&mut Option<Inner>, &mut Context<'_>, &mut StartResponse<'_>) -> Poll1 + Send + Unpin,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll1 {
        let this = self.get_mut();
        (this.poll)(&mut this.inner, cx, start)
    }
}

/// Polls the inner body, or ends when it is gone.
pub(crate) fn poll_inner(
    inner: &mut Option<Inner>,
    cx: &mut Context<'_>,
    start: &mut StartResponse<'_>,
) -> Poll1 {
    match inner.as_mut() {
        Some(body) => body.as_mut().poll_step(cx, start),
        None => Poll::Ready(None),
    }
}

/// Inner asynchronous application: an empty chunk, then data.
pub(crate) fn sparse() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(AsyncSteps(
            0,
            |n, _cx: &mut Context<'_>, _start: &mut StartResponse<'_>| match n {
                0 => Poll::Ready(Some(Ok(Step::Chunk(Bytes::new())))),
                1 => Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"data"))))),
                _ => Poll::Ready(None),
            },
        ))
    })
}

/// Inner asynchronous application: `Pending` once (woken at once), then
/// a chunk.
pub(crate) fn pends_once() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, start| {
        start.start(text(StatusCode::OK))?;
        Ok(AsyncSteps(
            0,
            |n, cx: &mut Context<'_>, _start: &mut StartResponse<'_>| match n {
                0 => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                1 => Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"late"))))),
                _ => Poll::Ready(None),
            },
        ))
    })
}

/// Inner asynchronous application: switches to a synchronous body.
pub(crate) fn switches() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ: Environ, _start| {
        Ok(AsyncSteps(
            0,
            |n, _cx: &mut Context<'_>, _start: &mut StartResponse<'_>| match n {
                0 => Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|start| {
                    start.start(text(StatusCode::OK))?;
                    Ok(Box::new(Bytes::from_static(b"from the continuation")) as Box<dyn Body>)
                }))))),
                _ => Poll::Ready(None),
            },
        ))
    })
}

/// Skips empty inner chunks by polling again in the same poll.
pub(crate) fn async_mw_several_per_step() -> Vec<Violation> {
    nested_async(sparse(), |inner| Layer {
        inner,
        poll: |body: &mut Option<Inner>, cx: &mut Context<'_>, start: &mut StartResponse<'_>| loop {
            match poll_inner(body, cx, start) {
                Poll::Ready(Some(Ok(Step::Chunk(chunk)))) if chunk.is_empty() => {}
                other => return other,
            }
        },
    })
}

/// Turns the inner `Pending` into an empty chunk.
pub(crate) fn async_mw_pending_as_step() -> Vec<Violation> {
    nested_async(pends_once(), |inner| Layer {
        inner,
        poll: |body: &mut Option<Inner>, cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
            match poll_inner(body, cx, start) {
                Poll::Pending => Poll::Ready(Some(Ok(Step::Chunk(Bytes::new())))),
                other => other,
            }
        },
    })
}

/// Runs the inner continuation itself, inside its poll, and streams its
/// body.
pub(crate) fn async_mw_runs_continuation() -> Vec<Violation> {
    let slot: Arc<std::sync::Mutex<Option<Box<dyn Body>>>> = Arc::default();
    nested_async(switches(), move |inner| Layer {
        inner,
        poll: move |body: &mut Option<Inner>,
                    cx: &mut Context<'_>,
                    start: &mut StartResponse<'_>| {
            let mut slot = slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(sync_body) = slot.as_mut() {
                return match sync_body.next_chunk(start) {
                    Some(Ok(chunk)) => Poll::Ready(Some(Ok(Step::Chunk(chunk)))),
                    Some(Err(error)) => Poll::Ready(Some(Err(error))),
                    None => {
                        *slot = None;
                        Poll::Ready(None)
                    }
                };
            }
            match poll_inner(body, cx, start) {
                Poll::Ready(Some(Ok(Step::Switch(switch)))) => {
                    *body = None;
                    match switch.run(start) {
                        Ok(sync_body) => {
                            *slot = Some(sync_body);
                            Poll::Ready(Some(Ok(Step::Chunk(Bytes::new()))))
                        }
                        Err(error) => Poll::Ready(Some(Err(error))),
                    }
                }
                other => other,
            }
        },
    })
}

/// Forgets the inner asynchronous body once it ended.
pub(crate) fn async_mw_inner_body_not_dropped() -> Vec<Violation> {
    nested_async(sparse(), |inner| Layer {
        inner,
        poll: |body: &mut Option<Inner>, cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
            let step = poll_inner(body, cx, start);
            if matches!(step, Poll::Ready(None)) {
                #[allow(clippy::mem_forget, reason = "the mistake this example makes")]
                std::mem::forget(body.take());
            }
            step
        },
    })
}

// ---- servers that go on after a refused chunk ----

/// Pulls on whatever `send_chunk` said.
fn pull_regardless<A: Application>(app: A, method: &Method) -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(app, reports.clone());
    let mut driver = Driver::new(method);
    if let Ok(mut body) = driver.call(&validator, build(environ().method(method.clone()))) {
        for _ in 0..4 {
            if driver.pull(&mut body).is_none() {
                break;
            }
        }
    }
    drop(validator);
    reports.all()
}

/// Keeps pulling a body that yields before it starts.
pub(crate) fn pull_after_not_started() -> Vec<Violation> {
    pull_regardless(
        rgi::from_fn(|_environ: Environ, _start| Ok(rgi::from_iter(["never", "started"]))),
        &Method::GET,
    )
}

/// Keeps pulling past the declared length.
pub(crate) fn pull_after_excess() -> Vec<Violation> {
    pull_regardless(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(
                text(StatusCode::OK).with_header(header::CONTENT_LENGTH, HeaderValue::from(2)),
            )?;
            Ok(rgi::from_iter(["four", "more"]))
        }),
        &Method::GET,
    )
}

/// Keeps pulling content of a 304.
pub(crate) fn pull_after_bodiless_content() -> Vec<Violation> {
    pull_regardless(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(ResponseHead::new(StatusCode::NOT_MODIFIED))?;
            Ok(rgi::from_iter(["cached", "copy"]))
        }),
        &Method::GET,
    )
}

/// Takes an unstarted response after `call` for a failure and drops the
/// body without pulling it.
pub(crate) fn unstarted_body_not_pulled() -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(
        rgi::from_fn(|_environ: Environ, _start| {
            Ok(Steps(0, |n, start: &mut StartResponse<'_>| {
                (n == 0).then(|| {
                    start
                        .start(text(StatusCode::OK))
                        .map(|()| Bytes::from_static(b"lazy"))
                        .map_err(Into::into)
                })
            }))
        }),
        reports.clone(),
    );
    let mut driver = Driver::new(&Method::GET);
    let body = driver.call(&validator, build(environ()));
    drop(body);
    drop(validator);
    reports.all()
}

/// Keeps each ended body until the next request on the same thread.
pub(crate) fn body_kept_after_end() -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(one_chunk(), reports.clone());
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut driver = Driver::new(&Method::GET);
        let Ok(mut body) = driver.call(&validator, build(environ())) else {
            break;
        };
        kept.clear();
        while driver.pull(&mut body).is_some() {}
        let _ = driver.state.finish(&mut driver.sink);
        kept.push(body);
    }
    drop(kept);
    drop(validator);
    reports.all()
}

// ---- the body as a whole ----

/// Chunk-encodes its own output.
pub(crate) fn output_transfer_coded() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(text(StatusCode::OK))?;
            Ok(rgi::from_iter([
                "4\r\nwiki\r\n",
                "6\r\npedia\n\r\n",
                "0\r\n\r\n",
            ]))
        }),
        build(environ()),
    )
}

/// Yields a document byte by byte.
pub(crate) fn tiny_chunks() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(text(StatusCode::OK))?;
            Ok(Steps(0, |n, _start: &mut StartResponse<'_>| {
                (n < 1500).then(|| Ok(Bytes::from_static(b".")))
            }))
        }),
        build(environ()),
    )
}

/// Pushes all its output with `write`.
pub(crate) fn output_all_written() -> Vec<Violation> {
    serve(
        rgi::from_fn(|_environ: Environ, start| {
            start.start(text(StatusCode::OK))?;
            start.write(Bytes::from_static(b"pushed\n"))?;
            start.write(Bytes::from_static(b"again\n"))?;
            Ok(rgi::Empty)
        }),
        build(environ()),
    )
}

/// A request body of 6 declared bytes of which 2 arrived.
pub(crate) fn truncated_upload() -> Environ {
    build(
        environ()
            .method(Method::POST)
            .header(header::CONTENT_LENGTH, HeaderValue::from(6))
            .input(Input::new(std::io::Cursor::new(b"ab".to_vec()), Some(6))),
    )
}

/// Turns the truncated upload's error into one of its own.
pub(crate) fn client_fault_hidden() -> Vec<Violation> {
    serve(
        rgi::from_fn(|mut environ: Environ, start| {
            let upload = environ
                .input_mut()
                .read_to_bytes(1024)
                .map_err(|_| BoxError::from("could not store the upload"))?;
            start.start(text(StatusCode::OK))?;
            Ok(upload)
        }),
        truncated_upload(),
    )
}

/// Routes GET only: HEAD gets a 405.
pub(crate) fn head_differs_from_get() -> Vec<Violation> {
    let reports = collect();
    let validator = Validator::new(
        rgi::from_fn(|environ: Environ, start| {
            if environ.method() == Method::GET {
                start.start(text(StatusCode::OK))?;
                Ok(Bytes::from_static(b"page"))
            } else {
                start.start(text(StatusCode::METHOD_NOT_ALLOWED))?;
                Ok(Bytes::new())
            }
        }),
        reports.clone(),
    );
    for method in [Method::GET, Method::HEAD] {
        let _ = rgi_conformance::rt::serve_sync(
            &validator,
            build(environ().method(method)),
            &mut rgi_conformance::rt::Recorder::new(),
        );
    }
    drop(validator);
    reports.all()
}
