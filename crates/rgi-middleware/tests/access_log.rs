//! `AccessLog` on both stacks with a validator on each side: one `tracing`
//! event per request, written at the drop, with the bytes really sent:
//! complete, streamed, file-body, failed and aborted responses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderValue;
use rgi::{Application, Body, BoxError, Environ, ResponseState, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Step};
use rgi_conformance::client::TestRequest;
use rgi_conformance::rt::Recorder;
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports};
use rgi_middleware::{ACCESS_LOG_TARGET, AccessLog, LogFormat, Middleware, ServeDir};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use common::{Parts, assert_clean, async_stack, sync_stack, text_head};

// ---- Capturing the events -------------------------------------------------

type Fields = HashMap<String, String>;

static EVENTS: Mutex<Vec<Fields>> = Mutex::new(Vec::new());

/// Keeps every access-log event's fields. Global, because the events of
/// the asynchronous client may come from another thread; tests tell theirs
/// apart by a unique target.
struct Capture;

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _span: &Id, _values: &Record<'_>) {}
    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() != ACCESS_LOG_TARGET {
            return;
        }
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        fields.insert(String::from("level"), event.metadata().level().to_string());
        EVENTS.lock().unwrap().push(fields);
    }
    fn enter(&self, _span: &Id) {}
    fn exit(&self, _span: &Id) {}
}

fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tracing::subscriber::set_global_default(Capture).unwrap());
}

/// A path no other test uses.
fn unique(name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("/{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The events whose `target` field starts with `path`.
fn events_for(path: &str) -> Vec<Fields> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.get("target").is_some_and(|t| t.starts_with(path)))
        .cloned()
        .collect()
}

#[track_caller]
fn one_event(path: &str) -> Fields {
    let events = events_for(path);
    assert_eq!(events.len(), 1, "{path}: {events:#?}");
    events.into_iter().next().unwrap()
}

// ---- Applications ---------------------------------------------------------

fn sync_hello() -> impl Application {
    rgi::from_fn(|_environ, _start| Ok(Parts::new(Some(text_head(None)), &["hello, ", "world"])))
}

fn async_hello() -> impl AsyncApplication {
    rgi_async::from_fn(|_environ, _start| {
        Ok(Parts::new(Some(text_head(None)), &["hello, ", "world"]))
    })
}

/// Sends `first`, then fails.
struct FailsAfter(Option<&'static str>);

impl FailsAfter {
    fn step(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if !start.is_started() {
            if let Err(err) = start.start(text_head(None)) {
                return Some(Err(err.into()));
            }
        }
        match self.0.take() {
            Some(first) => Some(Ok(Bytes::from_static(first.as_bytes()))),
            None => Some(Err("the database went away".into())),
        }
    }
}

impl Body for FailsAfter {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.step(start)
    }
}

impl AsyncBody for FailsAfter {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(self.get_mut().step(start).map(|r| r.map(Step::Chunk)))
    }
}

// ---- Tests ----------------------------------------------------------------

#[test]
fn one_event_per_request_with_the_fields_sync_and_async() {
    install();
    for asynchronous in [false, true] {
        let path = unique("fields");
        let request =
            TestRequest::get(format!("{path}?q=1")).remote_addr("192.0.2.1:5000".parse().unwrap());
        let response = if asynchronous {
            let (client, inner) = async_stack(AccessLog::new(), async_hello());
            let response = client.request(request).unwrap();
            assert_clean(&response, &inner);
            response
        } else {
            let (client, inner) = sync_stack(AccessLog::new(), sync_hello());
            let response = client.request(request).unwrap();
            assert_clean(&response, &inner);
            response
        };
        response.assert_ok_and_valid();
        let event = one_event(&path);
        assert_eq!(event["method"], "GET");
        assert_eq!(event["target"], format!("{path}?q=1"));
        assert_eq!(event["status"], "200");
        assert_eq!(event["bytes"], "12");
        assert_eq!(event["ending"], "complete");
        assert_eq!(event["remote"], "192.0.2.1");
        assert_eq!(event["message"], "request");
        assert_eq!(event["level"], "INFO");
        event["duration_us"].parse::<u64>().unwrap();
    }
}

#[test]
fn common_and_combined_lines() {
    install();
    for (format, asynchronous) in [
        (LogFormat::Common, false),
        (LogFormat::Combined, true),
        (LogFormat::Combined, false),
    ] {
        let path = unique("clf");
        let request = TestRequest::get(format!("{path}?x=1"))
            .remote_addr("192.0.2.9:4000".parse().unwrap())
            .header(
                http::header::REFERER,
                HeaderValue::from_static("http://ref.example/"),
            )
            .header(
                http::header::USER_AGENT,
                HeaderValue::from_static("agent \"quoted\""),
            );
        let response = if asynchronous {
            let (client, inner) = async_stack(AccessLog::new().format(format), async_hello());
            let response = client.request(request).unwrap();
            assert_clean(&response, &inner);
            response
        } else {
            let (client, inner) = sync_stack(AccessLog::new().format(format), sync_hello());
            let response = client.request(request).unwrap();
            assert_clean(&response, &inner);
            response
        };
        response.assert_ok_and_valid();
        let line = one_event(&path)["message"].clone();
        assert!(line.starts_with("192.0.2.9 - - ["), "{line}");
        let (date, rest) = line["192.0.2.9 - - [".len()..].split_once("] ").unwrap();
        assert_eq!(date.len(), "10/Oct/2000:13:55:36 +0000".len(), "{date}");
        assert!(date.ends_with(" +0000"), "{date}");
        let common = format!("\"GET {path}?x=1 HTTP/1.1\" 200 12");
        match format {
            LogFormat::Common => assert_eq!(rest, common),
            _ => assert_eq!(
                rest,
                format!("{common} \"http://ref.example/\" \"agent \\\"quoted\\\"\"")
            ),
        }
    }
}

#[test]
fn head_and_empty_bodies_count_zero_bytes() {
    install();
    let path = unique("head");
    let (client, inner) = sync_stack(AccessLog::new().format(LogFormat::Common), sync_hello());
    let response = client.request(TestRequest::head(&path)).unwrap();
    assert_clean(&response, &inner);
    let event = one_event(&path);
    assert_eq!(
        (event["method"].as_str(), event["status"].as_str()),
        ("HEAD", "200")
    );
    assert!(
        event["message"].ends_with("\" 200 -"),
        "{}",
        event["message"]
    );
}

#[test]
fn a_file_body_is_counted() {
    install();
    let dir = std::env::temp_dir().join(format!("rgi-mw-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f.txt"), "0123456789").unwrap();
    for asynchronous in [false, true] {
        let name = unique("file");
        std::fs::copy(dir.join("f.txt"), dir.join(&name[1..])).unwrap();
        let app = ServeDir::new(&dir).unwrap();
        let response = if asynchronous {
            let (client, inner) = async_stack(AccessLog::new(), app);
            let response = client.get(&name).unwrap();
            assert_clean(&response, &inner);
            response
        } else {
            let (client, inner) = sync_stack(AccessLog::new(), app);
            let response = client.get(&name).unwrap();
            assert_clean(&response, &inner);
            response
        };
        response.assert_ok_and_valid();
        let event = one_event(&name);
        assert_eq!(event["bytes"], "10", "async: {asynchronous}");
        assert_eq!(event["ending"], "complete");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_response_is_logged_with_what_it_sent() {
    install();
    for asynchronous in [false, true] {
        let path = unique("failed");
        let response = if asynchronous {
            let (client, _inner) = async_stack(
                AccessLog::new(),
                rgi_async::from_fn(|_e, _s| Ok(FailsAfter(Some("partial")))),
            );
            client.get(&path).unwrap()
        } else {
            let (client, _inner) = sync_stack(
                AccessLog::new(),
                rgi::from_fn(|_e, _s| Ok(FailsAfter(Some("partial")))),
            );
            client.get(&path).unwrap()
        };
        assert!(!response.ending.is_complete());
        assert!(response.violations.is_empty(), "{:#?}", response.violations);
        let event = one_event(&path);
        assert_eq!(event["ending"], "failed");
        assert_eq!(event["status"], "200");
        assert_eq!(event["bytes"], "7");
    }
}

fn environ(path: &str) -> Environ {
    // What an asynchronous server gives every request (RGIA-CAP-1).
    let capabilities = rgi_async::Capabilities::builder(rgi_async::Offload::new(
        rgi_conformance::rt::ThreadOffload::new(),
    ))
    .build();
    Environ::builder()
        .extension(capabilities)
        .uri(path.parse().unwrap())
        .header(http::header::HOST, HeaderValue::from_static("example.org"))
        .build()
        .unwrap()
}

/// The client goes away after the first chunk: the event comes at the
/// drop, not before, and counts only what went out.
#[test]
fn an_aborted_response_is_logged_at_the_drop_sync() {
    install();
    let path = unique("aborted-sync");
    let (outer, inner) = (Reports::new(Policy::Collect), Reports::new(Policy::Collect));
    let app = Validator::new(
        AccessLog::new().wrap(Validator::new(sync_hello(), inner.clone())),
        outer.clone(),
    );
    let environ = environ(&path);
    let mut state = ResponseState::new(environ.method());
    let mut sink = Recorder::new();
    let mut body = app
        .call(environ, &mut state.start_response(&mut sink))
        .unwrap();
    let chunk = body
        .next_chunk(&mut state.start_response(&mut sink))
        .unwrap()
        .unwrap();
    state.send_chunk(&mut sink, chunk).unwrap();
    assert!(events_for(&path).is_empty(), "nothing before the drop");
    drop(body);
    let event = one_event(&path);
    assert_eq!(event["ending"], "aborted");
    assert_eq!(event["bytes"], "7");
    assert_eq!(event["status"], "200");
    assert!(outer.take().is_empty());
    assert!(inner.take().is_empty());
}

#[test]
fn an_aborted_response_is_logged_at_the_drop_async() {
    install();
    let path = unique("aborted-async");
    let (outer, inner) = (Reports::new(Policy::Collect), Reports::new(Policy::Collect));
    let app = AsyncValidator::new(
        AccessLog::new().wrap(AsyncValidator::new(async_hello(), inner.clone())),
        outer.clone(),
    );
    let environ = environ(&path);
    let mut state = ResponseState::new(environ.method());
    let mut sink = Recorder::new();
    let mut body = Box::pin(
        AsyncApplication::call(&app, environ, &mut state.start_response(&mut sink)).unwrap(),
    );
    let mut cx = Context::from_waker(Waker::noop());
    let step = body
        .as_mut()
        .poll_step(&mut cx, &mut state.start_response(&mut sink));
    let Poll::Ready(Some(Ok(Step::Chunk(chunk)))) = step else {
        panic!("a chunk: {step:?}");
    };
    state.send_chunk(&mut sink, chunk).unwrap();
    assert!(events_for(&path).is_empty(), "nothing before the drop");
    drop(body);
    let event = one_event(&path);
    assert_eq!(
        (event["ending"].as_str(), event["bytes"].as_str()),
        ("aborted", "7")
    );
    let seen = inner.take();
    assert!(seen.is_empty(), "{seen:#?}");
}

#[test]
fn request_text_is_escaped_in_the_line() {
    install();
    let path = unique("escape");
    let request = TestRequest::get(&path)
        .header(
            http::header::USER_AGENT,
            HeaderValue::from_bytes(b"evil\t\xff\" - [forged]").unwrap(),
        )
        .header(
            http::header::REFERER,
            HeaderValue::from_static("back\\slash"),
        );
    let (client, inner) = sync_stack(AccessLog::new().format(LogFormat::Combined), sync_hello());
    let response = client.request(request).unwrap();
    assert_clean(&response, &inner);
    let line = one_event(&path)["message"].clone();
    assert!(
        line.ends_with(r#" "back\\slash" "evil\x09\xff\" - [forged]""#),
        "{line}"
    );
}

#[test]
fn behind_proxy_headers_the_forwarded_client_is_logged() {
    use rgi_middleware::{ProxyHeaders, TrustedProxies};
    install();
    let path = unique("proxied");
    let proxy = ProxyHeaders::new(TrustedProxies::parse(["10.0.0.0/8"]).unwrap());
    for asynchronous in [false, true] {
        let path = format!("{path}-{asynchronous}");
        let request = TestRequest::get(&path)
            .remote_addr("10.0.0.2:1".parse().unwrap())
            .header(http::header::HOST, HeaderValue::from_static("internal"))
            .header(
                http::header::FORWARDED,
                HeaderValue::from_static("for=198.51.100.4"),
            );
        let response = if asynchronous {
            let (client, inner) = async_stack(proxy.clone(), AccessLog::new().wrap(async_hello()));
            let response = client.request(request).unwrap();
            assert_clean(&response, &inner);
            response
        } else {
            let (client, inner) = sync_stack(proxy.clone(), AccessLog::new().wrap(sync_hello()));
            let response = client.request(request).unwrap();
            assert_clean(&response, &inner);
            response
        };
        response.assert_ok_and_valid();
        assert_eq!(one_event(&path)["remote"], "198.51.100.4");
    }
}
