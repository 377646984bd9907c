//! RGI 1.2's optional features through the public API: request and
//! response trailers, 103 Early Hints, the lifespan calls and server-sent
//! events (spec/rgi.md §16).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rgi::sse::{Event, EventBody, EventError};
use rgi::{
    Application, Body, EarlyHintsError, Features, Input, Intercept, ResponseHead, ResponseSink,
    ResponseState, ServerInfo, StartupError, TrailerSlot, TrailersError,
};

/// What reached the transport, in order.
#[derive(Debug, PartialEq)]
enum Wire {
    EarlyHints(HeaderMap),
    Head(ResponseHead),
    Data(Bytes),
    Trailers(HeaderMap),
}

#[derive(Default)]
struct Sink(Vec<Wire>);

impl ResponseSink for Sink {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.0.push(Wire::Head(head));
        Ok(())
    }
    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.0.push(Wire::Data(data));
        Ok(())
    }
    fn send_trailers(&mut self, fields: HeaderMap) -> io::Result<()> {
        self.0.push(Wire::Trailers(fields));
        Ok(())
    }
    fn send_early_hints(&mut self, fields: HeaderMap) -> io::Result<()> {
        self.0.push(Wire::EarlyHints(fields));
        Ok(())
    }
}

fn fields(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                http::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect()
}

/// Serves `app` for one request the way a server loop does.
fn serve<A: Application>(app: &A, mut state: ResponseState) -> Vec<Wire> {
    let mut sink = Sink::default();
    let environ = rgi::Environ::builder().build().unwrap();
    let mut body = app
        .call(environ, &mut state.start_response(&mut sink))
        .unwrap();
    while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut sink)) {
        state.send_chunk(&mut sink, chunk.unwrap()).unwrap();
    }
    drop(body);
    state.finish(&mut sink).unwrap();
    sink.0
}

/// Streams two parts, then gives a trailer from its last pull.
struct WithTrailer(u8);

impl Body for WithTrailer {
    fn next_chunk(
        &mut self,
        start: &mut rgi::StartResponse<'_>,
    ) -> Option<Result<Bytes, rgi::BoxError>> {
        self.0 += 1;
        match self.0 {
            1 => Some(Ok(Bytes::from_static(b"ab"))),
            2 => Some(Ok(Bytes::from_static(b"cd"))),
            _ => start
                .send_trailers(fields(&[("x-checksum", "abcd")]))
                .err()
                .map(|e| Err(e.into())),
        }
    }
    fn size_hint(&self) -> Option<u64> {
        Some(4)
    }
}

fn trailer_app() -> impl Application {
    rgi::from_fn(|_environ, start| {
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(header::TRAILER, HeaderValue::from_static("x-checksum")),
        )?;
        Ok(WithTrailer(0))
    })
}

#[test]
fn trailers_go_out_after_the_body_when_the_server_enabled_them() {
    let mut state = ResponseState::new(&Method::GET);
    state.enable_trailers();
    let wire = serve(&trailer_app(), state);
    assert!(matches!(&wire[0], Wire::Head(_)));
    assert_eq!(wire[1], Wire::Data(Bytes::from_static(b"ab")));
    assert_eq!(wire[2], Wire::Data(Bytes::from_static(b"cd")));
    assert_eq!(wire[3], Wire::Trailers(fields(&[("x-checksum", "abcd")])));
    assert_eq!(wire.len(), 4);
}

#[test]
fn trailers_are_dropped_silently_when_not_enabled_and_for_head_requests() {
    let wire = serve(&trailer_app(), ResponseState::new(&Method::GET));
    assert!(!wire.iter().any(|w| matches!(w, Wire::Trailers(_))));
    assert_eq!(wire.len(), 3, "{wire:?}");

    let mut state = ResponseState::new(&Method::HEAD);
    state.enable_trailers();
    let wire = serve(&trailer_app(), state);
    assert!(
        !wire.iter().any(|w| matches!(w, Wire::Trailers(_))),
        "{wire:?}"
    );
}

#[test]
fn a_head_announcing_trailers_never_gets_the_servers_computed_length() {
    let mut state = ResponseState::new(&Method::GET);
    state.enable_trailers();
    state.declare_length(4).unwrap();
    let wire = serve(&trailer_app(), state);
    let Wire::Head(head) = &wire[0] else {
        panic!("{wire:?}")
    };
    assert!(head.headers().get(header::CONTENT_LENGTH).is_none());
    assert_eq!(head.headers()[header::TRAILER], "x-checksum");

    // Without the announcement the declaration joins the head as before.
    let app = rgi::from_fn(|_environ, start| {
        start.start(StatusCode::OK)?;
        Ok(WithTrailer(0))
    });
    let mut state = ResponseState::new(&Method::GET);
    state.declare_length(4).unwrap();
    let wire = serve(&app, state);
    let Wire::Head(head) = &wire[0] else {
        panic!("{wire:?}")
    };
    assert_eq!(head.headers()[header::CONTENT_LENGTH], "4");
}

#[test]
fn forbidden_and_repeated_trailers_are_refused() {
    let mut state = ResponseState::new(&Method::GET);
    state.enable_trailers();
    let mut sink = Sink::default();
    let mut start = state.start_response(&mut sink);
    start.start(StatusCode::OK).unwrap();
    for name in [
        "content-length",
        "set-cookie",
        "host",
        "authorization",
        "content-type",
    ] {
        let mut bad = HeaderMap::new();
        bad.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static("1"),
        );
        let err = start.send_trailers(bad).unwrap_err();
        assert!(
            matches!(err, TrailersError::Forbidden { ref name } if name.as_str() == name.as_str()),
            "{err}"
        );
    }
    start
        .send_trailers(fields(&[("grpc-status", "0")]))
        .unwrap();
    assert!(matches!(
        start.send_trailers(fields(&[("grpc-message", "ok")])),
        Err(TrailersError::AlreadySet)
    ));
    assert!(start.trailers_deliverable());
    assert_eq!(state.trailers().unwrap()["grpc-status"], "0");
}

/// Adds a field to every trailer section, and records each early hints.
#[derive(Default)]
struct Layer {
    hints_seen: usize,
}

impl Intercept for Layer {
    fn on_trailers(&mut self, fields: &mut HeaderMap) {
        fields.insert("x-layer", HeaderValue::from_static("yes"));
    }
    fn on_early_hints(&mut self, _fields: &mut HeaderMap) {
        self.hints_seen += 1;
    }
}

#[test]
fn a_layer_sees_trailers_and_early_hints_on_their_way() {
    let mut state = ResponseState::new(&Method::GET);
    state.enable_trailers();
    state.enable_early_hints();
    let mut sink = Sink::default();
    let mut layer = Layer::default();
    {
        let mut outer = state.start_response(&mut sink);
        let mut inner = outer.intercept(&mut layer);
        assert!(inner.trailers_deliverable() && inner.early_hints_deliverable());
        inner
            .send_early_hints(fields(&[("link", "</a.css>; rel=preload")]))
            .unwrap();
        inner.start(StatusCode::OK).unwrap();
        inner.send_trailers(fields(&[("x-n", "1")])).unwrap();
    }
    assert_eq!(layer.hints_seen, 1);
    assert_eq!(state.trailers().unwrap()["x-layer"], "yes");
}

#[test]
fn early_hints_precede_the_head_and_leave_the_response_unstarted() {
    let mut state = ResponseState::new(&Method::GET);
    state.enable_early_hints();
    let mut sink = Sink::default();
    {
        let mut start = state.start_response(&mut sink);
        start
            .send_early_hints(fields(&[("link", "</a.css>; rel=preload; as=style")]))
            .unwrap();
        start
            .send_early_hints(fields(&[("link", "</b.js>; rel=preload; as=script")]))
            .unwrap();
        assert!(!start.is_started(), "early hints do not start the response");
        // A lazy head and a replacement still work.
        start.start(StatusCode::OK).unwrap();
        start
            .replace(StatusCode::SERVICE_UNAVAILABLE, "backend down")
            .unwrap();
    }
    state.finish(&mut sink).unwrap();
    assert!(
        matches!(&sink.0[0], Wire::EarlyHints(f) if f["link"] == "</a.css>; rel=preload; as=style")
    );
    assert!(
        matches!(&sink.0[1], Wire::EarlyHints(f) if f["link"] == "</b.js>; rel=preload; as=script")
    );
    assert!(matches!(&sink.0[2], Wire::Head(h) if h.status() == StatusCode::SERVICE_UNAVAILABLE));

    // After the head: refused, and nothing reaches the wire.
    let mut start = state.start_response(&mut sink);
    assert!(!start.early_hints_deliverable());
    let err = start
        .send_early_hints(fields(&[("link", "</c.css>")]))
        .unwrap_err();
    assert!(
        matches!(err, EarlyHintsError::HeadAlreadySent { status } if status == StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(sink.0.len(), 3);
}

#[test]
fn early_hints_are_dropped_when_not_enabled_and_framing_fields_refused() {
    let mut state = ResponseState::new(&Method::GET);
    let mut sink = Sink::default();
    {
        let mut start = state.start_response(&mut sink);
        assert!(!start.early_hints_deliverable());
        start
            .send_early_hints(fields(&[("link", "</a.css>; rel=preload")]))
            .unwrap();
        for name in [
            "content-length",
            "transfer-encoding",
            "connection",
            "upgrade",
        ] {
            let mut bad = HeaderMap::new();
            bad.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
            assert!(matches!(
                start.send_early_hints(bad),
                Err(EarlyHintsError::InvalidField { .. })
            ));
        }
    }
    assert!(sink.0.is_empty(), "{:?}", sink.0);
}

#[test]
fn request_trailers_come_after_the_end_and_forbidden_fields_are_discarded() {
    let slot = TrailerSlot::new();
    let mut input = Input::new(&b"0123456789"[..], None).with_trailers(slot.clone());
    let mut head = [0; 4];
    input.read_exact(&mut head).unwrap();
    assert!(matches!(
        input.trailers(),
        Err(TrailersError::BodyNotFinished { read: 4 })
    ));
    slot.fill(fields(&[
        ("x-sum", "45"),
        ("host", "evil.example"),
        ("transfer-encoding", "chunked"),
    ]));
    assert!(slot.is_filled());
    input.read_to_end(&mut Vec::new()).unwrap();
    let trailers = input.trailers().unwrap().unwrap();
    assert_eq!(trailers.len(), 1);
    assert_eq!(trailers["x-sum"], "45");

    // A middleware's pre-read keeps them for the input it installs.
    let taken = input.take_trailers().unwrap();
    assert!(input.take_trailers().unwrap().is_none());
    let mut replaced =
        Input::from_bytes("0123456789").with_trailers(TrailerSlot::filled(taken.unwrap()));
    replaced.read_to_bytes(64).unwrap();
    assert_eq!(replaced.trailers().unwrap().unwrap()["x-sum"], "45");

    // An input without a slot has none, once finished.
    let mut plain = Input::from_bytes("x");
    plain.read_to_bytes(8).unwrap();
    assert!(plain.trailers().unwrap().is_none());
}

#[test]
fn features_travel_with_the_server_description() {
    let none = rgi::Environ::builder().build().unwrap();
    assert_eq!(none.features(), Features::none());
    let all = Features::none()
        .with_request_trailers(true)
        .with_response_trailers(true)
        .with_early_hints(true)
        .with_lifespan(true);
    let server = Arc::new(
        ServerInfo::new("example.org", 443)
            .unwrap()
            .with_features(all),
    );
    let environ = rgi::Environ::builder().server_info(server).build().unwrap();
    assert_eq!(environ.features(), all);
    assert!(environ.features().early_hints() && environ.features().lifespan());
}

#[test]
fn startup_state_reaches_requests_and_shutdown_runs_in_reverse_order() {
    #[derive(Clone)]
    struct Greeting(&'static str);
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (inner_log, outer_log) = (Arc::clone(&order), Arc::clone(&order));
    let inner = rgi::with_lifespan(
        rgi::from_fn(|environ, start| {
            let greeting = environ.server_extension::<Greeting>().ok_or("no state")?.0;
            start.start(StatusCode::OK)?;
            Ok(greeting.to_owned())
        }),
        |startup| {
            startup.insert_state(Greeting("hello"));
            Ok(())
        },
        move || inner_log.lock().unwrap().push("inner"),
    );
    let app = rgi::with_lifespan(
        inner,
        |_| Ok(()),
        move || outer_log.lock().unwrap().push("outer"),
    );
    let server = rgi::run_startup(ServerInfo::new("localhost", 80).unwrap(), |s| {
        app.startup(s)
    })
    .unwrap();
    let environ = rgi::Environ::builder()
        .server_info(Arc::new(server))
        .build()
        .unwrap();
    let mut state = ResponseState::new(environ.method());
    let mut sink = Sink::default();
    let mut body = app
        .call(environ, &mut state.start_response(&mut sink))
        .unwrap();
    let chunk = body.next_chunk(&mut state.start_response(&mut sink));
    assert_eq!(chunk.unwrap().unwrap(), "hello");
    rgi::run_shutdown(|| app.shutdown()).unwrap();
    assert_eq!(*order.lock().unwrap(), ["outer", "inner"]);
}

#[test]
fn a_failing_or_panicking_startup_is_a_typed_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let failing = rgi::with_lifespan(
        rgi::from_fn(|_e, start| {
            start.start(StatusCode::OK)?;
            Ok(rgi::Empty)
        }),
        move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Err("database unreachable".into())
        },
        || {},
    );
    let err = rgi::run_startup(ServerInfo::new("localhost", 80).unwrap(), |s| {
        failing.startup(s)
    })
    .unwrap_err();
    assert!(matches!(&err, StartupError::Failed(e) if e.to_string() == "database unreachable"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let err = rgi::run_startup(ServerInfo::new("localhost", 80).unwrap(), |_| {
        panic!("config missing: {}", "PORT")
    })
    .unwrap_err();
    assert!(
        matches!(&err, StartupError::Panicked(m) if m == "config missing: PORT"),
        "{err}"
    );
    assert_eq!(
        rgi::run_shutdown(|| panic!("flush failed")),
        Err("flush failed".to_owned())
    );
}

#[test]
fn events_are_framed_line_by_line() {
    let event = Event::new()
        .id("7")
        .unwrap()
        .event("update")
        .unwrap()
        .data("a\r\nb\rc\nd");
    assert_eq!(
        event.to_bytes(),
        "id: 7\nevent: update\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    );
    assert_eq!(Event::from_data("").to_bytes(), "data:\n\n");
    assert_eq!(Event::from_data("x\n").to_bytes(), "data: x\ndata:\n\n");
    assert!(matches!(
        Event::new().id("1\n2"),
        Err(EventError::LineBreak { field: "id", .. })
    ));
    assert!(matches!(Event::new().id("a\0b"), Err(EventError::Nul)));
    assert!(matches!(
        Event::new().event("x\ry"),
        Err(EventError::LineBreak { field: "event", .. })
    ));
    assert!(Event::comment("two\nlines").is_err());
    assert_eq!(
        Event::new().retry(Duration::from_millis(1500)).to_bytes(),
        "retry: 1500\n\n"
    );
}

#[test]
fn the_event_body_sends_one_chunk_per_event_and_keep_alives_when_idle() {
    let (events, receiver) = std::sync::mpsc::channel();
    let producer = std::thread::spawn(move || {
        events.send(Event::from_data("one")).unwrap();
        std::thread::sleep(Duration::from_millis(120));
        events.send(Event::from_data("two")).unwrap();
    });
    let mut body = EventBody::new(receiver).keep_alive(Duration::from_millis(40));
    let mut state = ResponseState::new(&Method::GET);
    let mut sink = Sink::default();
    state
        .start_response(&mut sink)
        .start(rgi::sse::head())
        .unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut sink)) {
        chunks.push(chunk.unwrap());
    }
    producer.join().unwrap();
    assert_eq!(chunks.first().unwrap(), "data: one\n\n");
    assert_eq!(chunks.last().unwrap(), "data: two\n\n");
    let keep_alives = chunks
        .iter()
        .filter(|c| c.as_ref() == rgi::sse::KEEP_ALIVE)
        .count();
    assert!(
        keep_alives >= 1,
        "no keep-alive in 120 ms of silence: {chunks:?}"
    );
    assert_eq!(keep_alives + 2, chunks.len());
}
