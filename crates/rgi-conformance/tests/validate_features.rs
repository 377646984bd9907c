//! The validator and RGI 1.2's optional features: correct use of every
//! feature, by synchronous and asynchronous applications and by a
//! middleware, is silent; the validator forwards the lifespan calls and
//! keeps the request's trailers through the input it puts in place.
//! (`validate_sync.rs` proves each check fires on its broken example.)
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(
    dead_code,
    reason = "the table of broken examples is validate_sync.rs's"
)]
mod support_validate;

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::sse::{Event, EventBody};
use rgi::{
    Application, AsyncSource, Body, BoxError, Environ, Input, ResponseState, StartResponse,
    Startup, TrailerSlot,
};
use rgi_async::sse::EventStream;
use rgi_async::{AsyncApplication, AsyncBody, Step};
use rgi_conformance::rt::{Recorder, serve_async_with, serve_sync_with};
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports};

use support_validate::common::{async_environ, build, text};
use support_validate::feature_examples::{LIFESPAN, featured, fields, prepared, server};

/// The pool an application prepares at start-up and every request uses.
#[derive(Clone, Debug)]
struct Pool(&'static str);

/// Counts the lifespan calls that reached the application.
#[derive(Clone, Default)]
struct Calls {
    startups: Arc<AtomicUsize>,
    shutdowns: Arc<AtomicUsize>,
}

impl Calls {
    fn counts(&self) -> (usize, usize) {
        (
            self.startups.load(Ordering::SeqCst),
            self.shutdowns.load(Ordering::SeqCst),
        )
    }
}

/// A body that streams two rows and gives its trailer in its last pull.
struct Rows(u8);

impl Body for Rows {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.0 += 1;
        match self.0 {
            1 | 2 => Some(Ok(Bytes::from(format!("row {}\n", self.0)))),
            _ => start
                .send_trailers(fields("x-rows", "2"))
                .err()
                .map(|e| Err(e.into())),
        }
    }
}

/// Uses every feature correctly: reads the upload and its trailers, hints
/// before its head, announces and sends trailers; needs its start-up state.
fn every_feature(calls: &Calls) -> impl Application + use<> {
    let (up, down) = (calls.clone(), calls.clone());
    rgi::with_lifespan(
        rgi::from_fn(
            |mut environ: Environ, start| -> Result<Box<dyn Body>, BoxError> {
                let pool = environ
                    .server_extension::<Pool>()
                    .ok_or("started without a pool")?;
                assert_eq!(pool.0, "pool");
                let mut upload = Vec::new();
                environ.input_mut().read_to_end(&mut upload)?;
                let trailers = environ.input().trailers()?.unwrap_or_default();
                assert_eq!(upload, b"upload");
                assert_eq!(
                    trailers.get("x-sum").map(HeaderValue::as_bytes),
                    Some(&b"1"[..])
                );
                start.send_early_hints(fields("link", "</rows.css>; rel=preload"))?;
                if environ.uri().path() == "/events" {
                    let (events, receiver) = mpsc::channel();
                    events.send(Event::from_data("one\ntwo"))?;
                    events.send(Event::new().id("2")?.event("tick")?.data("three"))?;
                    drop(events);
                    start.start(rgi::sse::head())?;
                    return Ok(Box::new(EventBody::new(receiver)));
                }
                start.start(
                    text(StatusCode::OK)
                        .with_header(header::TRAILER, HeaderValue::from_static("x-rows")),
                )?;
                Ok(Box::new(Rows(0)))
            },
        ),
        move |startup: &mut Startup<'_>| {
            up.startups.fetch_add(1, Ordering::SeqCst);
            startup.insert_state(Pool("pool"));
            Ok(())
        },
        move || {
            down.shutdowns.fetch_add(1, Ordering::SeqCst);
        },
    )
}

#[test]
fn every_feature_used_correctly_is_silent_and_reaches_the_wire() {
    let calls = Calls::default();
    let reports = Reports::new(Policy::Panic);
    let validator = Validator::new(every_feature(&calls), reports.clone());
    let info = rgi::run_startup((*server(LIFESPAN)).clone(), |startup| {
        validator.startup(startup)
    })
    .expect("the start-up succeeds");
    let info = Arc::new(info);
    let mut wires = Vec::new();
    for path in ["/rows", "/events"] {
        let environ = build(
            featured()
                .server_info(Arc::clone(&info))
                .method(Method::PUT)
                .uri(http::Uri::from_static(path))
                .input(
                    Input::new(&b"upload"[..], None)
                        .with_trailers(TrailerSlot::filled(fields("x-sum", "1"))),
                ),
        );
        let state = prepared(&environ);
        let mut wire = Recorder::new();
        let served = serve_sync_with(&validator, environ, state, &mut wire, |_, _, _| {});
        assert!(served.outcome.is_complete(), "{path}: {:?}", served.outcome);
        wires.push(wire);
    }
    rgi::run_shutdown(|| validator.shutdown()).expect("no panic");
    assert!(reports.is_empty(), "{:?}", reports.all());
    assert_eq!(
        calls.counts(),
        (1, 1),
        "the validator forwards both calls once"
    );
    assert_eq!(wires[0].early_hints().len(), 1);
    assert_eq!(wires[0].body(), b"row 1\nrow 2\n");
    assert_eq!(
        wires[0]
            .trailers()
            .and_then(|t| t.get("x-rows"))
            .map(HeaderValue::as_bytes),
        Some(&b"2"[..])
    );
    assert_eq!(
        wires[1].body(),
        b"data: one\ndata: two\n\nid: 2\nevent: tick\ndata: three\n\n"
    );
}

#[test]
fn undeliverable_trailers_and_hints_are_nobodys_fault() {
    // HTTP/1.0: nothing is deliverable, the application's calls succeed
    // and nothing reaches the wire.
    let reports = Reports::new(Policy::Panic);
    let validator = Validator::new(
        rgi::from_fn(|_environ: Environ, start| {
            assert!(!start.trailers_deliverable() && !start.early_hints_deliverable());
            start.send_early_hints(fields("link", "</a.css>; rel=preload"))?;
            start.start(
                text(StatusCode::OK).with_header(header::TRAILER, HeaderValue::from_static("x-a")),
            )?;
            start.send_trailers(fields("x-a", "1"))?;
            Ok(Bytes::from_static(b"page"))
        }),
        reports.clone(),
    );
    let environ = build(
        Environ::builder()
            .version(http::Version::HTTP_10)
            .server_info(server(support_validate::feature_examples::ALL)),
    );
    let state = prepared(&environ);
    let mut wire = Recorder::new();
    assert!(
        serve_sync_with(&validator, environ, state, &mut wire, |_, _, _| {})
            .outcome
            .is_complete()
    );
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
    assert!(wire.early_hints().is_empty() && wire.trailers().is_none());
}

/// A middleware that reads the body ahead and hands its trailers on, and
/// forwards both lifespan calls.
struct Buffers<A>(A);

impl<A: Application> Application for Buffers<A> {
    type Body = A::Body;

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<A::Body, BoxError> {
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        let trailers = environ.input_mut().take_trailers()?.unwrap_or_default();
        environ.replace_input(Input::from_bytes(body).with_trailers(TrailerSlot::filled(trailers)));
        self.0.call(environ, start)
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.0.startup(startup)
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}

#[test]
fn a_middleware_that_keeps_trailers_and_forwards_the_calls_is_silent() {
    let calls = Calls::default();
    let reports = Reports::new(Policy::Panic);
    let app = Validator::new(
        Buffers(Validator::new(every_feature(&calls), reports.clone())),
        reports.clone(),
    );
    let info = rgi::run_startup((*server(LIFESPAN)).clone(), |startup| app.startup(startup))
        .expect("the start-up succeeds");
    let environ = build(
        featured()
            .server_info(Arc::new(info))
            .method(Method::PUT)
            .input(
                Input::new(&b"upload"[..], None)
                    .with_trailers(TrailerSlot::filled(fields("x-sum", "1"))),
            ),
    );
    let state = prepared(&environ);
    let served = serve_sync_with(&app, environ, state, &mut Recorder::new(), |_, _, _| {});
    assert!(served.outcome.is_complete(), "{:?}", served.outcome);
    rgi::run_shutdown(|| app.shutdown()).expect("no panic");
    drop(app);
    assert!(reports.is_empty(), "{:?}", reports.all());
    assert_eq!(calls.counts(), (1, 1));
}

/// An asynchronous source that yields `upload` in two pieces, then its end.
struct Pieces(Vec<&'static [u8]>);

impl AsyncSource for Pieces {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        if self.0.is_empty() {
            return Poll::Ready(Ok(Bytes::new()));
        }
        let piece = self.0.remove(0);
        Poll::Ready(Ok(Bytes::from_static(&piece[..piece.len().min(max)])))
    }
}

/// The events of a finished stream.
struct Events(Vec<Event>);

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Event>> {
        Poll::Ready((!self.0.is_empty()).then(|| self.0.remove(0)))
    }
}

/// An asynchronous application using every feature: its start-up state,
/// the request trailers read through the non-blocking face, early hints,
/// and either an event stream or trailers sent in the poll that ends.
struct AsyncEveryFeature(Calls);

/// The body of [`AsyncEveryFeature`] for `/rows`.
struct AsyncRows {
    input: Input,
    read: Vec<u8>,
    sent: bool,
}

impl AsyncBody for AsyncRows {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = &mut *self;
        loop {
            match this.input.poll_chunk(cx, 64) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                Poll::Ready(Ok(chunk)) => this.read.extend_from_slice(&chunk),
            }
        }
        if this.sent {
            let trailers = match this.input.trailers() {
                Ok(trailers) => trailers.unwrap_or_default(),
                Err(error) => return Poll::Ready(Some(Err(error.into()))),
            };
            let sum = trailers
                .get("x-sum")
                .cloned()
                .unwrap_or(HeaderValue::from_static("none"));
            let mut out = fields("x-rows", "1");
            out.insert("x-sum-seen", sum);
            return Poll::Ready(start.send_trailers(out).err().map(|e| Err(e.into())));
        }
        this.sent = true;
        Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(this.read.clone())))))
    }
}

impl AsyncApplication for AsyncEveryFeature {
    type Body = Pin<Box<dyn AsyncBody>>;

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        environ
            .server_extension::<Pool>()
            .ok_or("started without a pool")?;
        start.send_early_hints(fields("link", "</rows.css>; rel=preload"))?;
        if environ.uri().path() == "/events" {
            let events = Events(vec![
                Event::from_data("one"),
                Event::comment("beat")?,
                Event::from_data("two"),
            ]);
            return Ok(Box::pin(EventStream::new(events)));
        }
        start.start(text(StatusCode::OK).with_header(
            header::TRAILER,
            HeaderValue::from_static("x-rows, x-sum-seen"),
        ))?;
        let input = environ.replace_input(Input::empty());
        Ok(Box::pin(AsyncRows {
            input,
            read: Vec::new(),
            sent: false,
        }))
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.0.startups.fetch_add(1, Ordering::SeqCst);
        startup.insert_state(Pool("pool"));
        Ok(())
    }

    fn shutdown(&self) {
        self.0.shutdowns.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn asynchronous_use_of_every_feature_is_silent() {
    let calls = Calls::default();
    let reports = Reports::new(Policy::Panic);
    let validator = AsyncValidator::new(AsyncEveryFeature(calls.clone()), reports.clone());
    let info = Arc::new(
        rgi::run_startup((*server(LIFESPAN)).clone(), |startup| {
            validator.startup(startup)
        })
        .expect("the start-up succeeds"),
    );
    let mut wires = Vec::new();
    for path in ["/rows", "/events"] {
        let input = Input::from_async(Pieces(vec![b"up", b"load"]), None)
            .with_trailers(TrailerSlot::filled(fields("x-sum", "1")));
        let environ = build(
            async_environ()
                .server_info(Arc::clone(&info))
                .header(header::TE, HeaderValue::from_static("trailers"))
                .method(Method::PUT)
                .uri(http::Uri::from_static(path))
                .input(input),
        );
        let mut state = ResponseState::new(environ.method());
        state.enable_trailers();
        state.enable_early_hints();
        let mut wire = Recorder::new();
        let served = serve_async_with(&validator, environ, state, &mut wire);
        assert!(served.outcome.is_complete(), "{path}: {:?}", served.outcome);
        wires.push(wire);
    }
    rgi::run_shutdown(|| validator.shutdown()).expect("no panic");
    drop(validator);
    assert!(reports.is_empty(), "{:?}", reports.all());
    assert_eq!(calls.counts(), (1, 1));
    assert_eq!(wires[0].body(), b"upload");
    let trailers = wires[0].trailers().expect("trailers reached the sink");
    assert_eq!(
        trailers["x-sum-seen"], "1",
        "the request trailers passed the validator"
    );
    assert_eq!(
        wires[1].chunks(),
        ["data: one\n\n", ": beat\n\n", "data: two\n\n"]
    );
    assert_eq!(wires[1].early_hints().len(), 1);
}

#[test]
fn the_test_clients_serve_the_features_a_request_declares() {
    let features = support_validate::feature_examples::ALL;
    let app = || {
        rgi::from_fn(|mut environ: Environ, start| {
            let upload = environ.input_mut().read_to_bytes(1024)?;
            let sum = environ
                .input()
                .trailers()?
                .and_then(|fields| fields.get("x-sum").cloned())
                .unwrap_or(HeaderValue::from_static("none"));
            start.send_early_hints(fields("link", "</a.css>; rel=preload"))?;
            start.start(
                text(StatusCode::OK)
                    .with_header(header::TRAILER, HeaderValue::from_static("x-sum-seen")),
            )?;
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-sum-seen", sum);
            start.send_trailers(trailers)?;
            Ok(upload)
        })
    };
    let request = || {
        rgi_conformance::client::TestRequest::post("/", "")
            .chunked(["up", "load"])
            .trailers(fields("x-sum", "7"))
            .header(header::TE, HeaderValue::from_static("trailers"))
            .features(features)
    };
    let sync = rgi_conformance::client::TestClient::new(app())
        .request(request())
        .unwrap();
    let asynchronous = rgi_conformance::client::AsyncTestClient::new(AsyncUpload)
        .request(request())
        .unwrap();
    for response in [sync, asynchronous] {
        response.assert_ok_and_valid();
        assert_eq!(response.body, "upload");
        assert_eq!(response.early_hints.len(), 1);
        assert_eq!(
            response.trailers.as_ref().map(|t| t["x-sum-seen"].clone()),
            Some(HeaderValue::from_static("7"))
        );
    }
    // Undeclared, nothing of the features reaches the application or the
    // transport, and nothing fails.
    let plain = rgi_conformance::client::TestClient::new(app())
        .request(
            rgi_conformance::client::TestRequest::post("/", "")
                .chunked(["up", "load"])
                .trailers(fields("x-sum", "7")),
        )
        .unwrap();
    plain.assert_ok_and_valid();
    assert!(plain.early_hints.is_empty() && plain.trailers.is_none());
}

/// An asynchronous application that hints, then streams back the upload
/// it reads through the non-blocking face and sends the upload's trailer
/// in its own.
struct AsyncUpload;

impl AsyncApplication for AsyncUpload {
    type Body = AsyncRows;

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<AsyncRows, BoxError> {
        start.send_early_hints(fields("link", "</a.css>; rel=preload"))?;
        start.start(text(StatusCode::OK).with_header(
            header::TRAILER,
            HeaderValue::from_static("x-rows, x-sum-seen"),
        ))?;
        let input = environ.replace_input(Input::empty());
        Ok(AsyncRows {
            input,
            read: Vec::new(),
            sent: false,
        })
    }
}
