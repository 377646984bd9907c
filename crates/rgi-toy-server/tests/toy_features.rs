//! RGI 1.2's optional features on the conforming toy server, over real
//! sockets: its declaration, trailers both ways, `103 Early Hints`, the
//! lifespan calls around serving (and a failing start-up as a typed
//! error), and an event stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rgi::sse::{Event, EventBody};
use rgi::{Application, BoxError, Environ, ResponseHead, StartupError};
use rgi_conformance::suite::wire::{Connection, Framing, Request};
use rgi_toy_server::{self as toy, StartError};

/// Reads the upload and its trailers; hints, announces and sends trailers.
fn featured() -> impl Application {
    rgi::from_fn(|mut environ: Environ, start| {
        let features = environ.features();
        assert!(features.request_trailers() && features.response_trailers());
        assert!(features.early_hints() && features.lifespan());
        let body = environ.input_mut().read_to_bytes(1 << 20)?;
        let sum = environ
            .input()
            .trailers()?
            .and_then(|fields| fields.get("x-sum").cloned())
            .unwrap_or(HeaderValue::from_static("none"));
        let mut hints = HeaderMap::new();
        hints.insert(
            header::LINK,
            HeaderValue::from_static("</a.css>; rel=preload"),
        );
        start.send_early_hints(hints)?;
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(header::TRAILER, HeaderValue::from_static("x-echoed-sum")),
        )?;
        let mut trailers = HeaderMap::new();
        trailers.insert("x-echoed-sum", sum);
        start.send_trailers(trailers)?;
        Ok(body)
    })
}

#[test]
fn trailers_and_early_hints_cross_the_wire() {
    let server = toy::serve_sync(featured()).unwrap();
    let mut conn = Connection::connect(server.addr()).unwrap();
    let upload = Request::new("PUT", "/")
        .header("te", "trailers")
        .chunked_with_trailers(&["up", "load"], &[("x-sum", "42"), ("cookie", "no")]);
    conn.send(&upload.to_bytes()).unwrap();
    let response = conn.read_response("PUT").unwrap();
    assert_eq!(response.interim.len(), 1);
    assert_eq!(response.interim[0].status, 103);
    assert_eq!(
        response.interim[0].field("link"),
        Some(&b"</a.css>; rel=preload"[..])
    );
    assert_eq!(response.head.status, 200);
    assert_eq!(response.body.framing, Framing::Chunked);
    assert_eq!(response.body.data, b"upload");
    assert_eq!(response.body.trailers_named("x-echoed-sum"), [b"42"]);
    // Without TE: trailers the trailers stay home, on HTTP/1.0 the hints too.
    conn.send(&Request::new("PUT", "/").chunked(&["again"]).to_bytes())
        .unwrap();
    let response = conn.read_response("PUT").unwrap();
    assert_eq!(response.body.data, b"again");
    assert!(response.body.trailers.is_empty());
    let mut old = Connection::connect(server.addr()).unwrap();
    old.send(&Request::new("PUT", "/").http10().body("old").to_bytes())
        .unwrap();
    let response = old.read_response("PUT").unwrap();
    assert!(response.interim.is_empty());
    assert_eq!(response.body.data, b"old");
    server.stop().unwrap();
}

/// The pool the start-up opens.
#[derive(Clone)]
struct Pool(&'static str);

#[test]
fn startup_state_reaches_requests_and_shutdown_runs_once_on_stop() {
    let shutdowns = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&shutdowns);
    let app = rgi::with_lifespan(
        rgi::from_fn(|environ: Environ, start| {
            let pool = environ.server_extension::<Pool>().ok_or("no pool")?;
            start.start(StatusCode::OK)?;
            Ok(Bytes::from_static(pool.0.as_bytes()))
        }),
        |startup| {
            assert!(startup.server_info().features().lifespan());
            startup.insert_state(Pool("pool"));
            Ok(())
        },
        move || {
            counted.fetch_add(1, Ordering::SeqCst);
        },
    );
    let server = toy::serve_sync(app).unwrap();
    let mut conn = Connection::connect(server.addr()).unwrap();
    conn.send(&Request::get("/").to_bytes()).unwrap();
    assert_eq!(conn.read_response("GET").unwrap().body.data, b"pool");
    assert_eq!(shutdowns.load(Ordering::SeqCst), 0);
    server.stop().unwrap();
    assert_eq!(shutdowns.load(Ordering::SeqCst), 1);
}

#[test]
fn a_failing_or_panicking_startup_is_a_typed_error() {
    let page = || {
        rgi::from_fn(|_environ: Environ, start| {
            start.start(StatusCode::OK)?;
            Ok(Bytes::new())
        })
    };
    let failing = rgi::with_lifespan(page(), |_| Err("no database".into()), || {});
    match toy::serve_sync(failing) {
        Err(StartError::Startup(StartupError::Failed(error))) => {
            assert_eq!(error.to_string(), "no database");
        }
        other => panic!("expected a failed start-up, got {other:?}"),
    }
    let panicking = rgi::with_lifespan(
        page(),
        |_| -> Result<(), BoxError> { panic!("no configuration") },
        || {},
    );
    match toy::serve_sync(panicking) {
        Err(StartError::Startup(StartupError::Panicked(message))) => {
            assert_eq!(message, "no configuration");
        }
        other => panic!("expected a panicked start-up, got {other:?}"),
    }
}

#[test]
fn event_streams_go_out_event_by_event() {
    let (senders, events) = mpsc::channel();
    let app = rgi::from_fn(move |_environ: Environ, start| {
        let (sender, receiver) = mpsc::channel();
        senders.send(sender).unwrap();
        start.start(rgi::sse::head())?;
        Ok(EventBody::new(receiver))
    });
    let server = toy::serve_sync(app).unwrap();
    let mut conn = Connection::connect(server.addr()).unwrap();
    conn.send(&Request::get("/events").to_bytes()).unwrap();
    let sender = events.recv().unwrap();
    sender.send(Event::from_data("one")).unwrap();
    let (_, head) = conn.read_final_head().unwrap();
    assert_eq!(head.field("content-type"), Some(&b"text/event-stream"[..]));
    let mut body = conn.body_reader(&head, "GET").unwrap();
    assert_eq!(body.read_at_least(11).unwrap(), b"data: one\n\n");
    sender.send(Event::from_data("two")).unwrap();
    assert_eq!(body.read_at_least(22).unwrap(), b"data: two\n\n");
    drop(sender);
    assert_eq!(body.next_data().unwrap(), None);
    assert!(body.is_complete());
    drop(body);
    server.stop().unwrap();
}
