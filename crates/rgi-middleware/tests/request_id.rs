//! `RequestId` on both stacks, with a validator on each side: a valid
//! incoming id is propagated to the application and the response, an
//! invalid or missing one is replaced by a generated one, and the
//! middleware's events (and the application's, in its span) carry the id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use http::{HeaderName, HeaderValue};
use rgi::Environ;
use rgi_conformance::client::{TestRequest, TestResponse};
use rgi_middleware::{RequestId, RequestIdValue, RequestSpan};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata};

use common::{Parts, assert_clean, async_stack, sync_stack, text_head};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

// ---- A subscriber that remembers each event with its span's request id.

#[derive(Default)]
struct Recorder {
    next: AtomicU64,
    spans: Mutex<HashMap<u64, Option<String>>>,
    events: Mutex<Vec<(String, Option<String>)>>,
}

thread_local! {
    static CURRENT: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    request_id: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "request_id" {
            self.request_id = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        self.spans.lock().unwrap().insert(id, fields.request_id);
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let current = CURRENT.with(|c| c.borrow().last().copied());
        let request_id =
            current.and_then(|id| self.spans.lock().unwrap().get(&id).cloned().flatten());
        self.events
            .lock()
            .unwrap()
            .push((fields.message.unwrap_or_default(), request_id));
    }
    fn enter(&self, span: &Id) {
        CURRENT.with(|c| c.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, _: &Id) {
        CURRENT.with(|c| c.borrow_mut().pop());
    }
}

fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static Recorder = Box::leak(Box::default());
        tracing::subscriber::set_global_default(Forward(recorder)).unwrap();
        recorder
    })
}

/// The global subscriber: forwards to the leaked recorder.
struct Forward(&'static Recorder);

impl tracing::Subscriber for Forward {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        self.0.enabled(m)
    }
    fn new_span(&self, a: &Attributes<'_>) -> Id {
        self.0.new_span(a)
    }
    fn record(&self, s: &Id, r: &Record<'_>) {
        self.0.record(s, r);
    }
    fn record_follows_from(&self, s: &Id, f: &Id) {
        self.0.record_follows_from(s, f);
    }
    fn event(&self, e: &Event<'_>) {
        self.0.event(e);
    }
    fn enter(&self, s: &Id) {
        self.0.enter(s);
    }
    fn exit(&self, s: &Id) {
        self.0.exit(s);
    }
}

/// The messages of the events recorded in the span of `id`.
fn events_of(id: &str) -> Vec<String> {
    recorder()
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, rid)| rid.as_deref() == Some(id))
        .map(|(message, _)| message.clone())
        .collect()
}

// ---- The application: tells what it saw, logs in the request's span.

fn seen(environ: &Environ) -> String {
    let fields: Vec<&str> = environ
        .headers()
        .get_all(X_REQUEST_ID)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let extension = environ
        .extension::<RequestIdValue>()
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    if let Some(RequestSpan(span)) = environ.extension::<RequestSpan>() {
        span.in_scope(|| tracing::info!("application event"));
    }
    format!("{}|{extension}", fields.join(","))
}

fn both(middleware: &RequestId, request: impl Fn() -> TestRequest) -> [TestResponse; 2] {
    recorder();
    let (sync_client, sync_inner) = sync_stack(
        middleware.clone(),
        rgi::from_fn(|environ, start| {
            let text = seen(&environ);
            start.start(text_head(Some(text.len())))?;
            Ok(text)
        }),
    );
    let (async_client, async_inner) = async_stack(
        middleware.clone(),
        rgi_async::from_fn(|environ, start| {
            let text = seen(&environ);
            start.start(text_head(Some(text.len())))?;
            Ok(bytes::Bytes::from(text))
        }),
    );
    let a = sync_client.request(request()).unwrap();
    assert_clean(&a, &sync_inner);
    let b = async_client.request(request()).unwrap();
    assert_clean(&b, &async_inner);
    [a, b]
}

fn with_id(value: &[u8]) -> TestRequest {
    TestRequest::get("/").header(X_REQUEST_ID, HeaderValue::from_bytes(value).unwrap())
}

/// `{16 hex}-{16 hex}`.
fn is_generated(id: &str) -> bool {
    let Some((prefix, counter)) = id.split_once('-') else {
        return false;
    };
    [prefix, counter]
        .iter()
        .all(|part| part.len() == 16 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn a_valid_incoming_id_is_propagated() {
    for id in [
        "abc-123",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "a",
        "!~{}[]",
    ] {
        for response in both(&RequestId::new(), || with_id(id.as_bytes())) {
            response.assert_ok_and_valid();
            assert_eq!(response.text(), format!("{id}|{id}"));
            assert_eq!(response.header(X_REQUEST_ID), Some(id));
        }
    }
    let longest = "x".repeat(128);
    for response in both(&RequestId::new(), || with_id(longest.as_bytes())) {
        assert_eq!(response.header(X_REQUEST_ID), Some(&*longest));
    }
}

#[test]
fn an_invalid_or_missing_id_is_replaced() {
    let too_long = "x".repeat(129);
    let requests: Vec<Box<dyn Fn() -> TestRequest>> = vec![
        Box::new(|| TestRequest::get("/")),
        Box::new(|| with_id(b"")),
        Box::new(|| with_id(b"has space")),
        Box::new(|| with_id(b"tab\there")),
        Box::new(|| with_id("caf\u{e9}".as_bytes())),
        Box::new(move || with_id(too_long.as_bytes())),
        Box::new(|| with_id(b"one").header(X_REQUEST_ID, HeaderValue::from_static("two"))),
    ];
    let mut ids = HashSet::new();
    for request in &requests {
        for response in both(&RequestId::new(), request) {
            response.assert_ok_and_valid();
            let id = response.header(X_REQUEST_ID).unwrap().to_owned();
            assert!(is_generated(&id), "{id}");
            // The application saw the one generated id, and only it.
            assert_eq!(response.text(), format!("{id}|{id}"));
            assert!(ids.insert(id), "ids are unique");
        }
    }
}

#[test]
fn configuration_is_honoured() {
    // Not trusting clients: even a valid id is replaced.
    for response in both(&RequestId::new().trust_incoming(false), || with_id(b"mine")) {
        let id = response.header(X_REQUEST_ID).unwrap();
        assert!(is_generated(id), "{id}");
    }
    // A shorter limit.
    for response in both(&RequestId::new().max_len(4), || with_id(b"12345")) {
        assert!(is_generated(response.header(X_REQUEST_ID).unwrap()));
    }
    for response in both(&RequestId::new().max_len(4), || with_id(b"1234")) {
        assert_eq!(response.header(X_REQUEST_ID), Some("1234"));
    }
    // Another field.
    let correlation = HeaderName::from_static("x-correlation-id");
    let middleware = RequestId::new().header(correlation.clone());
    for response in both(&middleware, || {
        TestRequest::get("/").header(correlation.clone(), HeaderValue::from_static("corr-1"))
    }) {
        assert_eq!(response.header(&correlation), Some("corr-1"));
        assert!(response.headers.get(X_REQUEST_ID).is_none());
        // The application finds it in the extension.
        assert_eq!(response.text(), "|corr-1");
    }
}

#[test]
fn the_applications_own_response_id_is_kept() {
    let (client, inner) = sync_stack(
        RequestId::new(),
        rgi::from_fn(|_e, _s| {
            let head =
                text_head(Some(2)).with_header(X_REQUEST_ID, HeaderValue::from_static("app-own"));
            Ok(Parts::new(Some(head), &["ok"]))
        }),
    );
    let response = client.request(with_id(b"incoming")).unwrap();
    assert_clean(&response, &inner);
    assert_eq!(response.header(X_REQUEST_ID), Some("app-own"));
}

#[test]
fn events_carry_the_id_in_the_request_span() {
    for (n, stack) in ["sync", "async"].iter().enumerate() {
        let id = format!("span-test-{stack}");
        let responses = both(&RequestId::new(), || with_id(id.as_bytes()));
        responses[n].assert_ok_and_valid();
    }
    for stack in ["sync", "async"] {
        let id = format!("span-test-{stack}");
        let events = events_of(&id);
        // Each of the two requests with this id (one per stack) logged
        // its arrival, its head, the application's event and its end.
        for message in [
            "request",
            "response head",
            "application event",
            "response done",
        ] {
            assert_eq!(
                events.iter().filter(|m| *m == message).count(),
                2,
                "{stack}: {message} in {events:?}"
            );
        }
    }
    // A generated id is in the span too.
    let responses = both(&RequestId::new(), || TestRequest::get("/"));
    for response in responses {
        let id = response.header(X_REQUEST_ID).unwrap();
        assert_eq!(events_of(id).len(), 4, "{id}");
    }
}
