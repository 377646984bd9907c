//! Correct but unusual components: the kit must not report an error for
//! any of them.

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{
    Application, Body, BoxError, Environ, Input, Intercept, ResponseHead, ResponseState,
    StartResponse,
};
use rgi_async::{
    AsyncApplication, AsyncBody, Capabilities, Interest, OffloadFuture, Step, SyncSwitch, Threaded,
    WaitFuture,
};
use rgi_conformance::Violation;
use rgi_conformance::client::{AsyncTestClient, TestRequest};
use rgi_conformance::validate::{AsyncValidator, Validator};

use crate::support::{
    AsyncScript, Script, Wire, async_client, async_mw, async_one, capabilities, chunk, correct,
    drive_async, head, ok, ok_with_length, pull_all, reports, request, seen, sync_client, sync_mw,
};
use crate::{Component, Interface, Kind};

type Run = Result<Vec<Violation>, String>;
type StepPoll = Poll<Option<Result<Step, BoxError>>>;

pub(crate) fn components() -> Vec<Component> {
    use Interface::{Async, Sync};
    use Kind::{Application as App, Middleware as Mw, Server as Srv};
    vec![
        correct("ok/sync_empty_chunks", App, Sync, sync_empty_chunks),
        correct("ok/sync_late_lazy_head", App, Sync, sync_late_lazy_head),
        correct("ok/sync_head_with_body", App, Sync, sync_head_with_body),
        correct("ok/sync_304_with_length", App, Sync, sync_304_with_length),
        correct("ok/sync_exact_size_hint", App, Sync, sync_exact_size_hint),
        correct("ok/sync_odd_size_reads", App, Sync, sync_odd_size_reads),
        correct(
            "ok/sync_replace_before_send",
            App,
            Sync,
            sync_replace_before_send,
        ),
        correct(
            "ok/sync_write_then_chunks",
            App,
            Sync,
            sync_write_then_chunks,
        ),
        correct("ok/sync_unread_body", App, Sync, sync_unread_body),
        correct(
            "ok/sync_error_before_head",
            App,
            Sync,
            sync_error_before_head,
        ),
        correct(
            "ok/sync_cleanup_in_drop_on_head",
            App,
            Sync,
            sync_cleanup_in_drop_on_head,
        ),
        correct(
            "ok/sync_mw_intercepts_head",
            Mw,
            Sync,
            sync_mw_intercepts_head,
        ),
        correct(
            "ok/sync_mw_replaces_input_and_length",
            Mw,
            Sync,
            sync_mw_replaces_input_and_length,
        ),
        correct("ok/sync_srv_plain_loop", Srv, Sync, sync_srv_plain_loop),
        correct(
            "ok/sync_srv_drops_on_other_thread",
            Srv,
            Sync,
            sync_srv_drops_on_other_thread,
        ),
        correct(
            "ok/sync_srv_stops_at_length",
            Srv,
            Sync,
            sync_srv_stops_at_length,
        ),
        correct("ok/async_long_poll", App, Async, async_long_poll),
        correct("ok/async_empty_chunks", App, Async, async_empty_chunks),
        correct("ok/async_late_lazy_head", App, Async, async_late_lazy_head),
        correct(
            "ok/async_switch_after_partial_read",
            App,
            Async,
            async_switch_after_partial_read,
        ),
        correct(
            "ok/async_exact_size_hint",
            App,
            Async,
            async_exact_size_hint,
        ),
        correct("ok/async_offload", App, Async, async_offload),
        correct("ok/async_readiness_pipe", App, Async, async_readiness_pipe),
        correct("ok/async_after_response", App, Async, async_after_response),
        correct(
            "ok/async_threaded_blocking_app",
            App,
            Async,
            async_threaded_blocking_app,
        ),
        correct(
            "ok/async_degrades_without_readiness",
            App,
            Async,
            async_degrades_without_readiness,
        ),
        correct(
            "ok/async_mw_passes_switch",
            Mw,
            Async,
            async_mw_passes_switch,
        ),
        correct(
            "ok/async_srv_loop_with_wake",
            Srv,
            Async,
            async_srv_loop_with_wake,
        ),
        correct(
            "ok/async_srv_loop_with_switch",
            Srv,
            Async,
            async_srv_loop_with_switch,
        ),
        correct("ok/async_upgrade_echo", App, Async, async_upgrade_echo),
        correct(
            "ok/sync_mw_replaces_inner_error",
            Mw,
            Sync,
            sync_mw_replaces_inner_error,
        ),
        correct(
            "ok/async_switch_after_head_sent",
            App,
            Async,
            async_switch_after_head_sent,
        ),
    ]
}

/// Empty chunks between data: yield points (RGI-BODY-7).
fn sync_empty_chunks() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            Ok(rgi::from_iter(["", "a", "", "", "b", ""]))
        }),
        [TestRequest::get("/")],
    )
}

/// Starts only on the third pull, after two empty chunks (RGI-START-4).
fn sync_late_lazy_head() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, _start| {
            let mut n = 0;
            Ok(Script::new(move |start: &mut StartResponse<'_>| {
                n += 1;
                match n {
                    1 | 2 => Some(Ok(Bytes::new())),
                    3 => Some(
                        start
                            .start(ok())
                            .map(|()| Bytes::from_static(b"late"))
                            .map_err(Into::into),
                    ),
                    _ => None,
                }
            }))
        }),
        [TestRequest::get("/")],
    )
}

/// Produces the GET body for HEAD, which the server discards
/// (RGI-BODY-15, RGI-BODY-17).
fn sync_head_with_body() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok_with_length(5))?;
            Ok(Bytes::from_static(b"hello"))
        }),
        [TestRequest::head("/"), TestRequest::get("/")],
    )
}

/// A 304 with the representation's Content-Length and no body
/// (RGI-CL-5).
fn sync_304_with_length() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(
                ResponseHead::new(StatusCode::NOT_MODIFIED)
                    .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("1234"))
                    .with_header(header::ETAG, HeaderValue::from_static("\"v1\"")),
            )?;
            Ok(rgi::Empty)
        }),
        [TestRequest::get("/")],
    )
}

/// An exact size hint that counts down (RGI-BODY-10).
fn sync_exact_size_hint() -> Run {
    struct Exact(Vec<&'static [u8]>);
    impl Body for Exact {
        fn next_chunk(&mut self, _s: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
            self.0.pop().map(|c| Ok(Bytes::from_static(c)))
        }
        fn size_hint(&self) -> Option<u64> {
            Some(self.0.iter().map(|c| c.len() as u64).sum())
        }
    }
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            Ok(Exact(vec![b"world", b"hello "]))
        }),
        [TestRequest::get("/")],
    )
}

/// Reads the body in odd sizes with every reading method (RGI-INPUT-7).
fn sync_odd_size_reads() -> Run {
    sync_client(
        rgi::from_fn(|mut e: Environ, start| {
            let input = e.input_mut();
            let mut one = [0u8; 1];
            let n = input.read(&mut one)?;
            let three = input.read_chunk(3)?;
            let mut line = Vec::new();
            input.read_line_limited(&mut line, 7)?;
            let rest = input.read_to_bytes(1024)?;
            start.start(ok())?;
            Ok(Bytes::from(format!(
                "{} {} {} {}",
                n,
                three.len(),
                line.len(),
                rest.len()
            )))
        }),
        [
            TestRequest::post("/", "").chunked(["ab", "c\nlonger line\n", "tail"]),
            TestRequest::post("/", "x"),
        ],
    )
}

/// Starts 200, fails, replaces with 503 before anything went out
/// (RGI-START-10, RGI-START-13).
fn sync_replace_before_send() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let failure: BoxError = "cache unavailable".into();
            start.replace(head(StatusCode::SERVICE_UNAVAILABLE), failure)?;
            Ok(Bytes::from_static(b"try again later"))
        }),
        [TestRequest::get("/")],
    )
}

/// Writes in `call` and in a pull, and yields chunks too (RGI-WRITE-3,
/// RGI-WRITE-4).
fn sync_write_then_chunks() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            start.write(Bytes::from_static(b"<prefix>"))?;
            let mut n = 0;
            Ok(Script::new(move |s: &mut StartResponse<'_>| {
                n += 1;
                match n {
                    1 => Some(
                        s.write(Bytes::from_static(b"<written>"))
                            .map(|()| Bytes::from_static(b"<yielded>"))
                            .map_err(Into::into),
                    ),
                    _ => None,
                }
            }))
        }),
        [TestRequest::get("/")],
    )
}

/// Answers without reading the upload (RGI-INPUT-14).
fn sync_unread_body() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(head(StatusCode::UNAUTHORIZED))?;
            Ok(Bytes::from_static(b"log in first"))
        }),
        [TestRequest::post("/", vec![b'x'; 10_000])],
    )
}

/// Fails in `call` before starting: a legitimate failure (RGI-APP-6).
fn sync_error_before_head() -> Run {
    crate::support::require_complete(false);
    sync_client(
        rgi::from_fn(|_e: Environ, _start| -> Result<Bytes, BoxError> {
            Err("database unavailable".into())
        }),
        [TestRequest::get("/")],
    )
}

/// Cleans up in `Drop`, which runs promptly even when HEAD stops the
/// pulls early (RGI-BODY-14).
fn sync_cleanup_in_drop_on_head() -> Run {
    struct Cursorish(Arc<Mutex<bool>>, u32);
    impl Body for Cursorish {
        fn next_chunk(&mut self, _s: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
            self.1 += 1;
            (self.1 <= 3).then(|| Ok(Bytes::from_static(b"row\n")))
        }
    }
    impl Drop for Cursorish {
        fn drop(&mut self) {
            *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        }
    }
    let closed = Arc::new(Mutex::new(false));
    sync_client(
        rgi::from_fn(move |_e: Environ, start| {
            start.start(ok())?;
            Ok(Cursorish(Arc::clone(&closed), 0))
        }),
        [TestRequest::head("/"), TestRequest::get("/")],
    )
}

struct AddHeader;

impl Intercept for AddHeader {
    fn on_start(&mut self, head: &mut ResponseHead) {
        head.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
}

struct Hooked<B>(B);

impl<B: Body> Body for Hooked<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        let mut hook = AddHeader;
        self.0.next_chunk(&mut start.intercept(&mut hook))
    }

    fn size_hint(&self) -> Option<u64> {
        self.0.size_hint()
    }
}

struct Secure<A>(A);

impl<A: Application> Application for Secure<A> {
    type Body = Hooked<A::Body>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Self::Body, BoxError> {
        let mut hook = AddHeader;
        self.0.call(e, &mut start.intercept(&mut hook)).map(Hooked)
    }

    fn hints(&self) -> rgi::Hints {
        self.0.hints()
    }
}

/// Adds a field through `Intercept` for `call` and every pull, passing
/// the body and its hint through unchanged (RGI-MW-3, RGI-MW-8).
fn sync_mw_intercepts_head() -> Run {
    sync_mw(
        rgi::from_fn(|_e: Environ, _start| {
            let mut n = 0;
            Ok(Script::new(move |start: &mut StartResponse<'_>| {
                n += 1;
                match n {
                    1 => Some(
                        start
                            .start(ok())
                            .map(|()| Bytes::from_static(b"lazy"))
                            .map_err(Into::into),
                    ),
                    _ => None,
                }
            }))
        }),
        Secure,
        [TestRequest::get("/")],
    )
}

struct Upper<A>(A);

impl<A: Application> Application for Upper<A> {
    type Body = A::Body;

    fn call(&self, mut e: Environ, start: &mut StartResponse<'_>) -> Result<A::Body, BoxError> {
        let body = e.input_mut().read_to_bytes(1 << 16)?;
        let upper = Bytes::from(body.to_ascii_uppercase());
        e.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(upper.len()));
        e.replace_input(Input::from_bytes(upper));
        self.0.call(e, start)
    }

    fn hints(&self) -> rgi::Hints {
        self.0.hints()
    }
}

/// Replaces the input with a bounded copy and fixes `content-length`
/// (RGI-INPUT-16).
fn sync_mw_replaces_input_and_length() -> Run {
    sync_mw(
        rgi::from_fn(|mut e: Environ, start| {
            let body = e.input_mut().read_to_bytes(1024)?;
            start.start(ok())?;
            Ok(body)
        }),
        Upper,
        [TestRequest::post("/", "abc")],
    )
}

fn echo_probe() -> impl Application {
    rgi::from_fn(|mut e: Environ, start| {
        let body = e.input_mut().read_to_bytes(1 << 16)?;
        start.start(ok_with_length(body.len() as u64 + 4))?;
        Ok(rgi::from_iter([Bytes::from_static(b"got "), body]))
    })
}

/// The sync server loop of spec/rgi.md §2.1, over two requests: the
/// control for the server components.
fn sync_srv_plain_loop() -> Run {
    let reports = reports();
    let app = Validator::new(echo_probe(), reports.clone());
    for method in [Method::POST, Method::HEAD] {
        let input = Input::new(std::io::Cursor::new(b"abc".to_vec()), Some(3));
        let environ = request(method)
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("3"))
            .input(input)
            .build()
            .map_err(|e| e.to_string())?;
        let mut state = ResponseState::new(environ.method());
        let mut wire = Wire::default();
        let mut body = app
            .call(environ, &mut state.start_response(&mut wire))
            .map_err(|e| e.to_string())?;
        pull_all(&mut body, &mut state, &mut wire)?;
        drop(body);
        state.finish(&mut wire).map_err(|e| e.to_string())?;
    }
    Ok(seen(app, &reports))
}

/// Pulls on one thread and drops the body on another (RGI-APP-4).
fn sync_srv_drops_on_other_thread() -> Run {
    let reports = reports();
    let app = Validator::new(echo_probe(), reports.clone());
    let environ = request(Method::GET).build().map_err(|e| e.to_string())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| pull_all(&mut body, &mut state, &mut wire))
            .join()
            .unwrap_or_else(|_| Err("pull thread panicked".to_owned()))
    })?;
    state.finish(&mut wire).map_err(|e| e.to_string())?;
    std::thread::spawn(move || drop(body))
        .join()
        .map_err(|_| "drop thread panicked")?;
    Ok(seen(app, &reports))
}

/// Stops pulling once `wants_body()` is false at the declared length,
/// then finishes and drops (RGI-BODY-16).
fn sync_srv_stops_at_length() -> Run {
    let reports = reports();
    let app = Validator::new(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok_with_length(6))?;
            Ok(rgi::from_iter(["abc", "def"]))
        }),
        reports.clone(),
    );
    let environ = request(Method::GET).build().map_err(|e| e.to_string())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    while state.wants_body() {
        match body.next_chunk(&mut state.start_response(&mut wire)) {
            Some(Ok(c)) => state.send_chunk(&mut wire, c).map_err(|e| e.to_string())?,
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    state.finish(&mut wire).map_err(|e| e.to_string())?;
    drop(body);
    Ok(seen(app, &reports))
}

/// A long-poll: parks, and a thread wakes it 300 ms later with an event.
fn async_long_poll() -> Run {
    struct LongPoll {
        event: Arc<Mutex<(Option<&'static str>, Option<Waker>)>>,
        started: bool,
    }
    impl AsyncBody for LongPoll {
        fn poll_step(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            _s: &mut StartResponse<'_>,
        ) -> StepPoll {
            let mut slot = self
                .event
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(event) = slot.0.take() {
                drop(slot);
                self.started = true;
                return Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(event.as_bytes())))));
            }
            if self.started {
                return Poll::Ready(None);
            }
            slot.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let event = Arc::new(Mutex::new((None, None::<Waker>)));
            let publisher = Arc::clone(&event);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let mut slot = publisher
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                slot.0 = Some("event: price changed\n");
                if let Some(w) = slot.1.take() {
                    w.wake();
                }
            });
            Ok(LongPoll {
                event,
                started: false,
            })
        }),
        TestRequest::get("/events"),
    )
}

/// Empty chunks as yield points in an asynchronous body.
fn async_empty_chunks() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut n = 0;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    n += 1;
                    match n {
                        1 | 3 | 4 => chunk(b""),
                        2 => chunk(b"a"),
                        5 => chunk(b"b"),
                        _ => Poll::Ready(None),
                    }
                },
            ))
        }),
        TestRequest::get("/"),
    )
}

/// Waits for an offload result, and only then starts (RGI-START-4).
fn async_late_lazy_head() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, _start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let mut job: Option<OffloadFuture<u16>> = Some(caps.offload().run(|| {
                std::thread::sleep(Duration::from_millis(50));
                201
            }));
            Ok(AsyncScript::new(
                move |cx: &mut Context<'_>, s: &mut StartResponse<'_>| {
                    let Some(fut) = job.as_mut() else {
                        return Poll::Ready(None);
                    };
                    match Pin::new(fut).poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(code) => {
                            job = None;
                            let status = code
                                .map_err(BoxError::from)
                                .and_then(|c| StatusCode::from_u16(c).map_err(Into::into));
                            Step::ready(
                                status
                                    .and_then(|st| s.start(head(st)).map_err(Into::into))
                                    .map(|()| Bytes::from_static(b"created")),
                            )
                        }
                    }
                },
            ))
        }),
        TestRequest::get("/"),
    )
}

/// Reads one piece without blocking, switches, reads the rest with
/// blocking reads (RGIA-SWITCH-6).
fn async_switch_after_partial_read() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, _start| {
            let mut input = Some(e.into_input());
            Ok(AsyncScript::new(
                move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    let Some(inp) = input.as_mut() else {
                        return Poll::Ready(None);
                    };
                    let first = match inp.poll_chunk(cx, 3) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                        Poll::Ready(Ok(first)) => first,
                    };
                    let Some(mut rest_input) = input.take() else {
                        return Poll::Ready(None);
                    };
                    Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |start| {
                        let mut rest = Vec::new();
                        rest_input.read_to_end(&mut rest)?;
                        start.start(ok())?;
                        Ok(format!("{}+{}", first.len(), rest.len()))
                    })))))
                },
            ))
        }),
        TestRequest::post("/", "").chunked(["head", "er", "-body"]),
    )
}

/// An exact, decreasing size hint on an asynchronous body.
fn async_exact_size_hint() -> Run {
    struct Exact(Vec<&'static [u8]>);
    impl AsyncBody for Exact {
        fn poll_step(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _s: &mut StartResponse<'_>,
        ) -> StepPoll {
            Poll::Ready(self.0.pop().map(|c| Ok(Step::Chunk(Bytes::from_static(c)))))
        }
        fn size_hint(&self) -> Option<u64> {
            Some(self.0.iter().map(|c| c.len() as u64).sum())
        }
    }
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            Ok(Exact(vec![b"two", b"one "]))
        }),
        TestRequest::get("/"),
    )
}

/// Offloads a blocking computation and waits for it properly.
fn async_offload() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let mut job = Some(caps.offload().run(|| {
                std::thread::sleep(Duration::from_millis(100));
                "hashed".to_owned()
            }));
            start.start(ok())?;
            Ok(AsyncScript::new(
                move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    let Some(fut) = job.as_mut() else {
                        return Poll::Ready(None);
                    };
                    match Pin::new(fut).poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(answer) => {
                            job = None;
                            Step::ready(answer.map(Bytes::from))
                        }
                    }
                },
            ))
        }),
        TestRequest::get("/"),
    )
}

/// Waits for a pipe to become readable, then reads it without blocking.
fn async_readiness_pipe() -> Run {
    struct PipeBody {
        reader: &'static std::io::PipeReader,
        waiting: Option<WaitFuture<'static>>,
        done: bool,
    }
    impl AsyncBody for PipeBody {
        fn poll_step(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            _s: &mut StartResponse<'_>,
        ) -> StepPoll {
            let this = &mut *self;
            if this.done {
                return Poll::Ready(None);
            }
            let Some(wait) = this.waiting.as_mut() else {
                return Poll::Ready(None);
            };
            match wait.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Ok(_)) => {
                    this.waiting = None;
                    let mut buf = [0u8; 64];
                    let mut reader = this.reader;
                    match reader.read(&mut buf) {
                        Ok(n) => {
                            this.done = true;
                            Poll::Ready(Some(Ok(Step::Chunk(Bytes::copy_from_slice(&buf[..n])))))
                        }
                        Err(e) => Poll::Ready(Some(Err(e.into()))),
                    }
                }
            }
        }
    }
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let readiness = caps.readiness().ok_or("no readiness")?.clone();
            let (reader, mut writer) = std::io::pipe()?;
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                let _ = writer.write_all(b"from the child");
            });
            start.start(ok())?;
            // The wait borrows the descriptor for as long as it lives
            // (RGIA-READY-14); leaking one pipe end per test request is
            // the simplest way to give it a 'static owner.
            let reader: &'static std::io::PipeReader = Box::leak(Box::new(reader));
            let waiting = readiness.wait(reader, Interest::READABLE, Some(Duration::from_secs(3)));
            Ok(PipeBody {
                reader,
                waiting: Some(waiting),
                done: false,
            })
        }),
        TestRequest::get("/"),
    )
}

/// Queues an after-response task.
fn async_after_response() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            if let Some(after) = caps.after_response() {
                after.spawn(|| std::thread::sleep(Duration::from_millis(10)))?;
            }
            start.start(ok())?;
            Ok(Bytes::from_static(b"accepted"))
        }),
        TestRequest::get("/"),
    )
}

/// A blocking synchronous application that reads its body, under
/// `Threaded` (RGIA-COMP-2).
fn async_threaded_blocking_app() -> Run {
    async_one(
        Threaded::new(rgi::from_fn(|mut e: Environ, start| {
            let mut body = Vec::new();
            e.input_mut().read_to_end(&mut body)?;
            std::thread::sleep(Duration::from_millis(50));
            start.start(ok())?;
            Ok(rgi::from_iter([
                Bytes::from_static(b"read "),
                Bytes::from(body.len().to_string()),
            ]))
        })),
        TestRequest::post("/", "").chunked(["a", "bc", "def"]),
    )
}

/// Falls back to an offloaded wait when readiness is absent
/// (RGIA-CAP-7).
fn async_degrades_without_readiness() -> Run {
    let client = AsyncTestClient::new(rgi_async::from_fn(|e: Environ, start| {
        let caps = Capabilities::of(&e).ok_or("no capabilities")?;
        start.start(ok())?;
        if caps.readiness().is_some() {
            return Ok(AsyncScript::new(Box::new(
                |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| chunk(b"polled"),
            )
                as Box<
                    dyn FnMut(&mut Context<'_>, &mut StartResponse<'_>) -> StepPoll + Send,
                >));
        }
        let mut job = Some(caps.offload().run(|| {
            std::thread::sleep(Duration::from_millis(50));
            "waited on a worker"
        }));
        Ok(AsyncScript::new(
            Box::new(move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                let Some(fut) = job.as_mut() else {
                    return Poll::Ready(None);
                };
                match Pin::new(fut).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(answer) => {
                        job = None;
                        Step::ready(answer.map(|text| Bytes::from_static(text.as_bytes())))
                    }
                }
            })
                as Box<dyn FnMut(&mut Context<'_>, &mut StartResponse<'_>) -> StepPoll + Send>,
        ))
    }))
    .without_readiness();
    async_client(&client, [TestRequest::get("/")])
}

struct PassThrough<A>(A);

struct PassBody(Pin<Box<dyn AsyncBody>>);

impl<A: AsyncApplication> AsyncApplication for PassThrough<A> {
    type Body = PassBody;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<PassBody, BoxError> {
        self.0.call(e, start).map(|b| PassBody(Box::pin(b)))
    }
}

impl AsyncBody for PassBody {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> StepPoll {
        // Pending, chunks and switches all pass through untouched.
        self.0.as_mut().poll_step(cx, start)
    }

    fn size_hint(&self) -> Option<u64> {
        self.0.size_hint()
    }
}

/// A pass-through asynchronous middleware over an inner body that
/// switches (RGIA-COMP-11).
fn async_mw_passes_switch() -> Run {
    async_mw(
        rgi_async::from_fn(|_e: Environ, _start| {
            let mut switched = false;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    if std::mem::replace(&mut switched, true) {
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|start| {
                        start.start(ok())?;
                        Ok(Bytes::from_static(b"sync part"))
                    })))))
                },
            ))
        }),
        PassThrough,
        TestRequest::get("/"),
    )
}

/// The async server loop with a body that parks and is woken: the
/// control for the asynchronous server components.
fn async_srv_loop_with_wake() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let mut job = Some(
                caps.offload()
                    .run(|| std::thread::sleep(Duration::from_millis(50))),
            );
            start.start(ok())?;
            Ok(AsyncScript::new(
                move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    let Some(fut) = job.as_mut() else {
                        return Poll::Ready(None);
                    };
                    match Pin::new(fut).poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(r) => {
                            job = None;
                            Step::ready(r.map(|()| Bytes::from_static(b"woken")))
                        }
                    }
                },
            ))
        }),
        reports.clone(),
    );
    let environ = request(Method::GET)
        .extension(capabilities())
        .build()
        .map_err(|e| e.to_string())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    drive_async(body, &mut state, &mut wire)?;
    Ok(seen(app, &reports))
}

/// The async server loop over a body that switches after its first
/// chunk: dropped first, continuation on a worker, same state.
fn async_srv_loop_with_switch() -> Run {
    let reports = reports();
    let app = AsyncValidator::new(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut n = 0;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    n += 1;
                    match n {
                        1 => chunk(b"async part, "),
                        2 => Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|_start| {
                            Ok(Bytes::from_static(b"sync part"))
                        }))))),
                        _ => Poll::Ready(None),
                    }
                },
            ))
        }),
        reports.clone(),
    );
    let environ = request(Method::GET)
        .extension(capabilities())
        .build()
        .map_err(|e| e.to_string())?;
    let mut state = ResponseState::new(environ.method());
    let mut wire = Wire::default();
    let body = app
        .call(environ, &mut state.start_response(&mut wire))
        .map_err(|e| e.to_string())?;
    drive_async(body, &mut state, &mut wire)?;
    Ok(seen(app, &reports))
}

/// Accepts an upgrade and echoes what the peer sends until it closes
/// (RGIA-UPGRADE-4, RGIA-UPGRADE-7).
fn async_upgrade_echo() -> Run {
    struct Echo {
        upgraded: Option<rgi_async::Upgraded>,
        stream: Option<Box<dyn rgi_async::ByteStream>>,
        pending: Vec<u8>,
    }
    impl AsyncBody for Echo {
        fn poll_step(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            _s: &mut StartResponse<'_>,
        ) -> StepPoll {
            let this = &mut *self;
            if let Some(upgraded) = this.upgraded.as_mut() {
                match Pin::new(upgraded).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    Poll::Ready(Ok(stream)) => {
                        this.upgraded = None;
                        this.stream = Some(stream);
                    }
                }
            }
            let Some(stream) = this.stream.as_mut() else {
                return Poll::Ready(None);
            };
            loop {
                if !this.pending.is_empty() {
                    match stream.poll_write(cx, &this.pending) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                        Poll::Ready(Ok(n)) => {
                            this.pending.drain(..n);
                            continue;
                        }
                    }
                }
                if let Poll::Ready(Err(e)) = stream.poll_flush(cx) {
                    return Poll::Ready(Some(Err(e.into())));
                }
                let mut buf = [0u8; 64];
                match stream.poll_read(cx, &mut buf) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    Poll::Ready(Ok(0)) => {
                        this.stream = None;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Ok(n)) => this.pending.extend_from_slice(&buf[..n]),
                }
            }
        }
    }
    async_one(
        rgi_async::from_fn(|e: Environ, _start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let upgrade = caps.upgrade().ok_or("no upgrade")?;
            let upgraded = upgrade.accept(http::HeaderMap::new())?;
            Ok(Echo {
                upgraded: Some(upgraded),
                stream: None,
                pending: Vec::new(),
            })
        }),
        TestRequest::get("/chat").upgrade(HeaderValue::from_static("echo"), |peer| {
            peer.write_all(b"ping")?;
            let mut answer = [0u8; 4];
            peer.read_exact(&mut answer)?;
            Ok(())
        }),
    )
}

struct ErrorPage<A>(A);

impl<A: Application> Application for ErrorPage<A> {
    type Body = Box<dyn Body>;

    fn call(&self, e: Environ, start: &mut StartResponse<'_>) -> Result<Box<dyn Body>, BoxError> {
        match self.0.call(e, start) {
            Ok(body) => Ok(Box::new(body)),
            Err(failure) => {
                start.replace(head(StatusCode::BAD_GATEWAY), failure)?;
                Ok(Box::new(Bytes::from_static(b"the backend failed")))
            }
        }
    }

    fn hints(&self) -> rgi::Hints {
        self.0.hints()
    }
}

/// Turns an inner failure before the head into its own error page with
/// `replace` (RGI-MW-10).
fn sync_mw_replaces_inner_error() -> Run {
    sync_mw(
        rgi::from_fn(|_e: Environ, start| -> Result<Bytes, BoxError> {
            start.start(ok())?;
            Err("backend timed out".into())
        }),
        ErrorPage,
        [TestRequest::get("/")],
    )
}

/// Streams two chunks, then switches with the head already sent
/// (RGIA-SWITCH-1, RGIA-SWITCH-4).
fn async_switch_after_head_sent() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut n = 0;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    n += 1;
                    match n {
                        1 => chunk(b"header row\n"),
                        2 => chunk(b""),
                        3 => Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|start| {
                            start.write(Bytes::from_static(b"written row\n"))?;
                            Ok(rgi::from_iter(["row 1\n", "row 2\n"]))
                        }))))),
                        _ => Poll::Ready(None),
                    }
                },
            ))
        }),
        TestRequest::get("/report"),
    )
}
