//! `Compression` on both stacks, with a validator on each side: the
//! three codings decode to the application's bytes, streamed responses
//! come out chunk by chunk, the skip rules hold, and tower-http's
//! `CompressionLayer` (through rgi-tower, in-process) agrees on the same
//! requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use rgi::{ConnectionInfo, ResponseHead, ServerInfo};
use rgi_conformance::client::{TestRequest, TestResponse};
use rgi_middleware::{Coding, Compression};
use tower::{Layer, ServiceExt};
use tower_http::compression::CompressionLayer;

use common::{Parts, Trailing, assert_clean, async_stack, sync_stack, with_trailers};

const EVENTS: &[&str] = &[
    "data: one\n\n",
    "data: two\n\n",
    "data: three and a few more bytes\n\n",
];

const TEXT: &str = "The quick brown fox jumps over the lazy dog. ";

fn text(times: usize) -> &'static str {
    Box::leak(TEXT.repeat(times).into_boxed_str())
}

fn head(content_type: &'static str, length: Option<usize>) -> ResponseHead {
    let head = ResponseHead::new(StatusCode::OK)
        .with_header(CONTENT_TYPE, HeaderValue::from_static(content_type));
    match length {
        Some(n) => head.with_header(CONTENT_LENGTH, HeaderValue::from(n)),
        None => head,
    }
}

fn accepting(request: TestRequest, accept: &str) -> TestRequest {
    request.header(ACCEPT_ENCODING, HeaderValue::from_str(accept).unwrap())
}

/// [`Parts`], with its exact size hint unless it is an event stream,
/// whose body must have none (`RGI-SSE-2`).
struct TestBody(Parts, bool);

impl rgi::Body for TestBody {
    fn next_chunk(
        &mut self,
        start: &mut rgi::StartResponse<'_>,
    ) -> Option<Result<Bytes, rgi::BoxError>> {
        self.0.next_chunk(start)
    }

    fn size_hint(&self) -> Option<u64> {
        self.1.then(|| rgi::Body::size_hint(&self.0)).flatten()
    }
}

impl rgi_async::AsyncBody for TestBody {
    fn poll_step(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        start: &mut rgi::StartResponse<'_>,
    ) -> std::task::Poll<Option<Result<rgi_async::Step, rgi::BoxError>>> {
        std::pin::Pin::new(&mut self.0).poll_step(cx, start)
    }

    fn size_hint(&self) -> Option<u64> {
        self.1
            .then(|| rgi_async::AsyncBody::size_hint(&self.0))
            .flatten()
    }
}

fn body_for(head: &ResponseHead, parts: &'static [&'static str]) -> TestBody {
    let event_stream = head
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v == "text/event-stream");
    TestBody(Parts::new(Some(head.clone()), parts), !event_stream)
}

/// The same response from both stacks, both validators clean.
fn both(
    compression: &Compression,
    head: &ResponseHead,
    parts: &'static [&'static str],
    request: impl Fn() -> TestRequest,
) -> [TestResponse; 2] {
    let (h, p) = (head.clone(), parts);
    let (sync_client, sync_inner) = sync_stack(
        compression.clone(),
        rgi::from_fn(move |_e, _s| Ok(body_for(&h, p))),
    );
    let (h, p) = (head.clone(), parts);
    let (async_client, async_inner) = async_stack(
        compression.clone(),
        rgi_async::from_fn(move |_e, _s| Ok(body_for(&h, p))),
    );
    let a = sync_client.request(request()).unwrap();
    assert_clean(&a, &sync_inner);
    let b = async_client.request(request()).unwrap();
    assert_clean(&b, &async_inner);
    [a, b]
}

fn decode(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("deflate") => {
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

/// What a decoder makes of a stream's first bytes, before its end.
fn decode_prefix(coding: &str, prefix: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut d = flate2::write::GzDecoder::new(Vec::new());
            d.write_all(prefix).unwrap();
            d.flush().unwrap();
            d.get_ref().clone()
        }
        "deflate" => {
            let mut d = flate2::write::ZlibDecoder::new(Vec::new());
            d.write_all(prefix).unwrap();
            d.flush().unwrap();
            d.get_ref().clone()
        }
        "br" => {
            let mut d = brotli::DecompressorWriter::new(Vec::new(), 4096);
            d.write_all(prefix).unwrap();
            d.flush().unwrap();
            d.get_ref().clone()
        }
        other => panic!("unexpected coding {other}"),
    }
}

fn vary_names(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(VARY)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect()
}

#[test]
fn each_coding_decodes_to_the_applications_bytes() {
    let body = text(50);
    let parts: &'static [&'static str] = Box::leak(Box::new([body]));
    for (accept, coding) in [("gzip", "gzip"), ("deflate", "deflate"), ("br", "br")] {
        let head = head("text/plain; charset=utf-8", Some(body.len()))
            .with_header(ETAG, HeaderValue::from_static("\"v1\""))
            .with_header(ACCEPT_RANGES, HeaderValue::from_static("bytes"))
            .with_header(
                http::HeaderName::from_static("content-digest"),
                HeaderValue::from_static("sha-256=:x:"),
            );
        for response in both(&Compression::new(), &head, parts, || {
            accepting(TestRequest::get("/"), accept)
        }) {
            response.assert_ok_and_valid();
            assert_eq!(response.header(CONTENT_ENCODING), Some(coding));
            assert!(response.headers.get(CONTENT_LENGTH).is_none());
            assert!(response.headers.get(ACCEPT_RANGES).is_none());
            assert!(response.headers.get("content-digest").is_none());
            assert_eq!(response.header(ETAG), Some("W/\"v1\""));
            assert_eq!(vary_names(&response.headers), ["accept-encoding"]);
            assert!(response.body.len() < body.len() / 4, "compressed");
            assert_eq!(decode(Some(coding), &response.body), body.as_bytes());
        }
    }
}

#[test]
fn a_stream_comes_out_flushed_chunk_by_chunk() {
    let parts: &'static [&'static str] = &["first part, ", "second part, ", "third part"];
    for coding in ["gzip", "deflate", "br"] {
        for response in both(
            &Compression::new(),
            &head("text/plain", None),
            parts,
            || accepting(TestRequest::get("/"), coding),
        ) {
            response.assert_ok_and_valid();
            assert_eq!(response.header(CONTENT_ENCODING), Some(coding));
            // Each part is decodable from the bytes sent with it and
            // before it, before the stream ends.
            let mut sent = Vec::new();
            let mut expected = String::new();
            let mut part = 0;
            for chunk in &response.chunks {
                if chunk.is_empty() {
                    continue;
                }
                sent.extend_from_slice(chunk);
                if part < parts.len() {
                    expected.push_str(parts[part]);
                    part += 1;
                    assert_eq!(
                        decode_prefix(coding, &sent),
                        expected.as_bytes(),
                        "{coding}: part {part} out on its own"
                    );
                }
            }
            assert_eq!(part, parts.len());
            assert_eq!(
                decode(Some(coding), &response.body),
                parts.concat().as_bytes()
            );
        }
    }
}

#[test]
fn a_body_written_by_the_application_is_compressed_too() {
    let body = text(40);
    let app = move |_e, start: &mut rgi::StartResponse<'_>| {
        start.start(head("text/html", None))?;
        start.write(Bytes::from_static(body.as_bytes()))?;
        Ok(rgi::from_iter([" and the end"]))
    };
    let (client, inner) = sync_stack(Compression::new(), rgi::from_fn(app));
    let response = client
        .request(accepting(TestRequest::get("/"), "gzip"))
        .unwrap();
    assert_clean(&response, &inner);
    response.assert_ok_and_valid();
    assert_eq!(response.header(CONTENT_ENCODING), Some("gzip"));
    assert_eq!(
        decode(Some("gzip"), &response.body),
        format!("{body} and the end").as_bytes()
    );
}

#[test]
fn q_values_choose_the_coding() {
    let body = text(20);
    let parts: &'static [&'static str] = Box::leak(Box::new([body]));
    let h = head("application/json", Some(body.len()));
    let cases: &[(&str, Option<&str>)] = &[
        ("gzip, deflate, br", Some("br")),
        ("gzip;q=1.0, br;q=0.5", Some("gzip")),
        ("br;q=0, gzip;q=0.1", Some("gzip")),
        ("deflate;q=0.9, gzip;q=0.8", Some("deflate")),
        ("*", Some("br")),
        ("*;q=0.5, gzip", Some("gzip")),
        ("br;q=0, *", Some("gzip")),
        ("identity", None),
        ("gzip;q=0.5, identity", None),
        ("", None),
        ("compress, zstd", None),
        // Malformed q-values drop their entry.
        ("gzip;q=2, deflate;q=abc, br;q=0.5000", None),
        ("GZIP;Q=0.7", Some("gzip")),
        ("x-gzip", Some("gzip")),
    ];
    for (accept, expected) in cases {
        for response in both(&Compression::new(), &h, parts, || {
            accepting(TestRequest::get("/"), accept)
        }) {
            response.assert_ok_and_valid();
            assert_eq!(response.header(CONTENT_ENCODING), *expected, "{accept:?}");
            assert_eq!(
                vary_names(&response.headers),
                ["accept-encoding"],
                "{accept:?}"
            );
            assert_eq!(decode(*expected, &response.body), body.as_bytes());
        }
    }
    // Without the field at all: identity, and still `vary`.
    for response in both(&Compression::new(), &h, parts, || TestRequest::get("/")) {
        assert_eq!(response.header(CONTENT_ENCODING), None);
        assert_eq!(
            response.header(CONTENT_LENGTH),
            Some(&*body.len().to_string())
        );
        assert_eq!(vary_names(&response.headers), ["accept-encoding"]);
    }
}

#[test]
fn disabled_codings_are_never_chosen() {
    let body = text(20);
    let parts: &'static [&'static str] = Box::leak(Box::new([body]));
    let compression = Compression::new()
        .disable(Coding::Brotli)
        .disable(Coding::Gzip);
    for response in both(&compression, &head("text/plain", None), parts, || {
        accepting(TestRequest::get("/"), "br, gzip, deflate;q=0.1")
    }) {
        assert_eq!(response.header(CONTENT_ENCODING), Some("deflate"));
        assert_eq!(decode(Some("deflate"), &response.body), body.as_bytes());
    }
    let compression = compression.enable(Coding::Gzip);
    for response in both(&compression, &head("text/plain", None), parts, || {
        accepting(TestRequest::get("/"), "br, gzip;q=0.5, deflate;q=0.1")
    }) {
        assert_eq!(response.header(CONTENT_ENCODING), Some("gzip"));
    }
}

#[test]
fn refusing_every_coding_is_406_without_the_application() {
    let called = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&called);
    let (client, inner) = sync_stack(
        Compression::new().disable(Coding::Brotli),
        rgi::from_fn(move |_e, _s| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Parts::new(Some(head("text/plain", None)), &["hello"]))
        }),
    );
    for accept in [
        "identity;q=0",
        "*;q=0",
        "br, identity;q=0",
        "gzip;q=0, *;q=0",
    ] {
        let response = client
            .request(accepting(TestRequest::get("/"), accept))
            .unwrap();
        assert_clean(&response, &inner);
        assert_eq!(response.status, StatusCode::NOT_ACCEPTABLE, "{accept}");
        assert_eq!(vary_names(&response.headers), ["accept-encoding"]);
        assert!(response.body.is_empty());
    }
    assert_eq!(called.load(std::sync::atomic::Ordering::SeqCst), 0);
    // `*;q=0` with identity named acceptable is not a refusal.
    let response = client
        .request(accepting(TestRequest::get("/"), "*;q=0, identity"))
        .unwrap();
    assert_clean(&response, &inner);
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "hello");
}

#[test]
fn ineligible_responses_pass_untouched() {
    let body = text(20);
    let parts: &'static [&'static str] = Box::leak(Box::new([body]));
    let len = Some(body.len());
    let cases: Vec<(&str, ResponseHead, bool)> = vec![
        ("png", head("image/png", len), false),
        ("jpeg", head("image/jpeg", None), false),
        ("video", head("video/mp4", None), false),
        ("audio", head("audio/ogg", None), false),
        ("woff2", head("font/woff2", None), false),
        ("zip", head("application/zip", None), false),
        ("grpc", head("application/grpc+proto", None), false),
        ("sse", rgi::sse::head(), false),
        (
            "coded",
            head("text/plain", None)
                .with_header(CONTENT_ENCODING, HeaderValue::from_static("zstd")),
            false,
        ),
        (
            "range",
            ResponseHead::new(StatusCode::PARTIAL_CONTENT)
                .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain"))
                .with_header(CONTENT_RANGE, HeaderValue::from_static("bytes 0-899/2000")),
            false,
        ),
        (
            "no-transform",
            head("text/plain", None).with_header(
                CACHE_CONTROL,
                HeaderValue::from_static("public, No-Transform"),
            ),
            false,
        ),
        ("small", head("text/plain", Some(31)), false),
        // Compressed, as the module documents.
        ("svg", head("image/svg+xml", None), true),
        ("octet", head("application/octet-stream", None), true),
        ("threshold", head("text/plain", Some(32)), true),
    ];
    for (name, h, compressed) in cases {
        let parts: &'static [&'static str] = match h.headers().get(CONTENT_LENGTH) {
            Some(n) if n == "31" => &["0123456789012345678901234567890"],
            Some(n) if n == "32" => &["01234567890123456789012345678901"],
            _ if name == "sse" => EVENTS,
            _ => parts,
        };
        for response in both(&Compression::new(), &h, parts, || {
            accepting(TestRequest::get("/"), "gzip")
        }) {
            response.assert_valid();
            let coding = response.header(CONTENT_ENCODING);
            if compressed {
                assert_eq!(coding, Some("gzip"), "{name}");
                assert_eq!(decode(coding, &response.body), parts.concat().as_bytes());
            } else {
                assert_ne!(coding, Some("gzip"), "{name}");
                assert_eq!(response.body, parts.concat().as_bytes(), "{name}");
            }
        }
    }
}

#[test]
fn vary_is_merged_not_duplicated() {
    let body = text(20);
    let parts: &'static [&'static str] = Box::leak(Box::new([body]));
    for (given, expected) in [
        ("origin", vec!["origin", "accept-encoding"]),
        ("Accept-Encoding", vec!["accept-encoding"]),
        ("*", vec!["*"]),
    ] {
        let h = head("text/plain", None).with_header(VARY, HeaderValue::from_static(given));
        for response in both(&Compression::new(), &h, parts, || {
            accepting(TestRequest::get("/"), "gzip")
        }) {
            assert_eq!(vary_names(&response.headers), expected, "{given}");
            assert_eq!(response.header(CONTENT_ENCODING), Some("gzip"));
        }
    }
    // A weak tag stays as it is.
    let h = head("text/plain", None).with_header(ETAG, HeaderValue::from_static("W/\"a\""));
    for response in both(&Compression::new(), &h, parts, || {
        accepting(TestRequest::get("/"), "gzip")
    }) {
        assert_eq!(response.header(ETAG), Some("W/\"a\""));
    }
}

#[test]
fn head_204_and_304_are_not_compressed() {
    let body = text(20);
    let parts: &'static [&'static str] = Box::leak(Box::new([body]));
    for response in both(
        &Compression::new(),
        &head("text/plain", Some(body.len())),
        parts,
        || accepting(TestRequest::head("/"), "gzip"),
    ) {
        response.assert_ok_and_valid();
        assert_eq!(response.header(CONTENT_ENCODING), None);
        assert_eq!(
            response.header(CONTENT_LENGTH),
            Some(&*body.len().to_string())
        );
        assert_eq!(vary_names(&response.headers), ["accept-encoding"]);
    }
    for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
        let h = ResponseHead::new(status).with_header(ETAG, HeaderValue::from_static("\"v\""));
        for response in both(&Compression::new(), &h, &[], || {
            accepting(TestRequest::get("/"), "gzip")
        }) {
            response.assert_valid();
            assert_eq!(response.status, status);
            assert_eq!(response.header(CONTENT_ENCODING), None);
            assert_eq!(response.header(ETAG), Some("\"v\""));
            assert!(response.headers.get(VARY).is_none());
            assert!(response.body.is_empty());
        }
    }
}

#[test]
fn event_streams_compressed_on_request_are_flushed_per_event() {
    let parts = EVENTS;
    let compression = Compression::new().compress_event_streams(true);
    let h = rgi::sse::head();
    let (sync_client, sync_inner) = sync_stack(
        compression.clone(),
        rgi::from_fn(move |_e, _s| Ok(body_for(&rgi::sse::head(), EVENTS))),
    );
    let (async_client, async_inner) = async_stack(
        compression,
        rgi_async::from_fn(move |_e, _s| Ok(body_for(&h, EVENTS))),
    );
    let request = || accepting(TestRequest::get("/"), "gzip");
    let responses = [
        (sync_client.request(request()).unwrap(), sync_inner),
        (async_client.request(request()).unwrap(), async_inner),
    ];
    for (response, inner) in responses {
        assert!(inner.take().is_empty());
        // The outer validator checks the event stream's head and leaves
        // the coded bytes unparsed.
        assert!(response.violations.is_empty(), "{:#?}", response.violations);
        assert_eq!(response.header(CONTENT_ENCODING), Some("gzip"));
        let first = response.chunks.iter().find(|c| !c.is_empty()).unwrap();
        assert_eq!(decode_prefix("gzip", first), parts[0].as_bytes());
        assert_eq!(
            decode(Some("gzip"), &response.body),
            parts.concat().as_bytes()
        );
    }
}

#[test]
fn digest_trailers_go_with_the_coding() {
    let body = text(20);
    let parts: &'static [&'static str] = Box::leak(Box::new([body]));
    let h = head("text/plain", None)
        .with_header(http::header::TRAILER, HeaderValue::from_static("x-inner"));
    let (client, inner) = sync_stack(
        Compression::new(),
        rgi::from_fn(move |_e, _s| Ok(Trailing(Parts::new(Some(h.clone()), parts)))),
    );
    let response = client
        .request(with_trailers(accepting(TestRequest::get("/"), "gzip")))
        .unwrap();
    assert_clean(&response, &inner);
    assert_eq!(response.header(CONTENT_ENCODING), Some("gzip"));
    let trailers = response.trailers.as_ref().unwrap();
    assert_eq!(trailers.get("x-inner").unwrap(), "yes");
    assert_eq!(decode(Some("gzip"), &response.body), body.as_bytes());
}

// ---- The differential oracle: tower-http's CompressionLayer. ----

struct Oracle {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// tower-http's `CompressionLayer` around the same application, served
/// by rgi-tower's `AsyncService`, called in-process.
fn tower_http(head: &ResponseHead, parts: &'static [&'static str], accept: Option<&str>) -> Oracle {
    let h = head.clone();
    let app = rgi_async::from_fn(move |_e, _s| Ok(body_for(&h, parts)));
    let host = rgi_tower::Host::builder(ServerInfo::new("127.0.0.1", 80).unwrap()).build();
    let service =
        rgi_tower::AsyncService::new(app, host).connection(Arc::new(ConnectionInfo::new()));
    let service = CompressionLayer::new().layer(service);
    let mut request =
        http::Request::get("http://127.0.0.1/").header(http::header::HOST, "127.0.0.1");
    if let Some(accept) = accept {
        request = request.header(ACCEPT_ENCODING, accept);
    }
    let request = request.body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let response = service.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Oracle {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
}

#[test]
fn tower_http_agrees_on_the_same_requests() {
    let big = text(30);
    let big_parts: &'static [&'static str] = Box::leak(Box::new([big]));
    let streamed: &'static [&'static str] = &[
        "one, ",
        "two, ",
        "three, and some more text to pass 32 bytes",
    ];
    let heads: Vec<(&str, ResponseHead, &'static [&'static str])> = vec![
        (
            "text with length",
            head("text/plain", Some(big.len())),
            big_parts,
        ),
        ("json streamed", head("application/json", None), streamed),
        ("html", head("text/html; charset=utf-8", None), big_parts),
        ("svg", head("image/svg+xml", None), big_parts),
        ("png", head("image/png", None), big_parts),
        ("sse", rgi::sse::head(), EVENTS),
        ("small", head("text/plain", Some(5)), &["small"]),
        (
            "coded",
            head("text/plain", None)
                .with_header(CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            big_parts,
        ),
        (
            "vary origin",
            head("text/plain", None).with_header(VARY, HeaderValue::from_static("origin")),
            big_parts,
        ),
    ];
    let accepts = [
        None,
        Some("gzip"),
        Some("deflate"),
        Some("br"),
        Some("gzip, deflate, br"),
        Some("gzip;q=0.5, br;q=0.9"),
        Some("br;q=0, *"),
        Some("identity"),
        Some("zstd"),
    ];
    for (name, h, parts) in &heads {
        for accept in accepts {
            let oracle = tower_http(h, parts, accept);
            let request = || match accept {
                Some(a) => accepting(TestRequest::get("/"), a),
                None => TestRequest::get("/"),
            };
            for ours in both(&Compression::new(), h, parts, request) {
                let what = format!("{name}, accept-encoding {accept:?}");
                assert_eq!(ours.status, oracle.status, "{what}");
                let coding = ours.header(CONTENT_ENCODING);
                assert_eq!(
                    coding,
                    oracle
                        .headers
                        .get(CONTENT_ENCODING)
                        .map(|v| v.to_str().unwrap()),
                    "{what}"
                );
                assert_eq!(
                    vary_names(&ours.headers),
                    vary_names(&oracle.headers),
                    "{what}"
                );
                assert_eq!(
                    ours.headers.contains_key(CONTENT_LENGTH),
                    oracle.headers.contains_key(CONTENT_LENGTH),
                    "{what}"
                );
                let oracle_coding = oracle
                    .headers
                    .get(CONTENT_ENCODING)
                    .map(|v| v.to_str().unwrap());
                // An already-coded body is compared as it is.
                let (ours_plain, theirs_plain) = if *name == "coded" {
                    (ours.body.to_vec(), oracle.body.to_vec())
                } else {
                    (
                        decode(coding, &ours.body),
                        decode(oracle_coding, &oracle.body),
                    )
                };
                assert_eq!(ours_plain, theirs_plain, "{what}");
                assert_eq!(ours_plain, parts.concat().as_bytes(), "{what}");
            }
        }
    }
}

#[test]
fn tower_http_differs_where_documented() {
    // Refusal: both 406; tower-http after calling the service, keeping
    // its headers and body, this middleware before, with an empty body.
    let h = head("text/plain", None);
    let oracle = tower_http(&h, &["hello"], Some("identity;q=0"));
    assert_eq!(oracle.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(oracle.body, "hello");
    for ours in both(&Compression::new(), &h, &["hello"], || {
        accepting(TestRequest::get("/"), "identity;q=0")
    }) {
        assert_eq!(ours.status, StatusCode::NOT_ACCEPTABLE);
        assert!(ours.body.is_empty());
    }
    // Audio and a strong etag: tower-http compresses and keeps the tag.
    let big = text(30);
    let parts: &'static [&'static str] = Box::leak(Box::new([big]));
    let h = head("audio/ogg", None).with_header(ETAG, HeaderValue::from_static("\"t\""));
    let oracle = tower_http(&h, parts, Some("gzip"));
    assert_eq!(oracle.headers.get(CONTENT_ENCODING).unwrap(), "gzip");
    for ours in both(&Compression::new(), &h, parts, || {
        accepting(TestRequest::get("/"), "gzip")
    }) {
        assert_eq!(ours.header(CONTENT_ENCODING), None);
    }
    let h = head("text/plain", None).with_header(ETAG, HeaderValue::from_static("\"t\""));
    let oracle = tower_http(&h, parts, Some("gzip"));
    assert_eq!(oracle.headers.get(ETAG).unwrap(), "\"t\"");
    for ours in both(&Compression::new(), &h, parts, || {
        accepting(TestRequest::get("/"), "gzip")
    }) {
        assert_eq!(ours.header(ETAG), Some("W/\"t\""));
    }
}

/// Yields a first part, then switches to synchronous processing; the
/// continuation's body yields the rest.
struct Switching {
    polls: u32,
}

impl rgi_async::AsyncBody for Switching {
    fn poll_step(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        start: &mut rgi::StartResponse<'_>,
    ) -> std::task::Poll<Option<Result<rgi_async::Step, rgi::BoxError>>> {
        self.polls += 1;
        if self.polls == 1 {
            start.start(head("text/plain", None))?;
            return std::task::Poll::Ready(Some(Ok(rgi_async::Step::Chunk(Bytes::from_static(
                b"before the switch, ",
            )))));
        }
        let switch = rgi_async::SyncSwitch::new(|_start| {
            Ok(Parts::new(
                None,
                &["after ", "the switch, ", "still one stream"],
            ))
        });
        std::task::Poll::Ready(Some(Ok(rgi_async::Step::Switch(switch))))
    }
}

#[test]
fn one_coded_stream_across_the_switch() {
    for coding in ["gzip", "deflate", "br"] {
        let (client, inner) = async_stack(
            Compression::new(),
            rgi_async::from_fn(|_e, _s| Ok(Switching { polls: 0 })),
        );
        let response = client
            .request(accepting(TestRequest::get("/"), coding))
            .unwrap();
        assert_clean(&response, &inner);
        response.assert_ok_and_valid();
        assert!(response.switched, "the continuation ran");
        assert_eq!(response.header(CONTENT_ENCODING), Some(coding));
        // One encoder, moved into the continuation: the bytes before and
        // after the switch decode as one stream.
        assert_eq!(
            decode(Some(coding), &response.body),
            b"before the switch, after the switch, still one stream"
        );
    }
}

#[test]
fn a_replaced_head_is_judged_afresh() {
    let body = text(20);
    // First a compressible head, then a replacement that is not: the
    // response goes out uncoded, with its length.
    let sync_app = move |_e, start: &mut rgi::StartResponse<'_>| {
        start.start(head("text/plain", None))?;
        start.replace(head("image/png", Some(body.len())), "changed its mind")?;
        Ok(String::from(body))
    };
    let (client, inner) = sync_stack(Compression::new(), rgi::from_fn(sync_app));
    let response = client
        .request(accepting(TestRequest::get("/"), "gzip"))
        .unwrap();
    assert_clean(&response, &inner);
    response.assert_ok_and_valid();
    assert_eq!(response.header(CONTENT_ENCODING), None);
    assert_eq!(response.header(CONTENT_TYPE), Some("image/png"));
    assert_eq!(response.body, body.as_bytes());
    // And the other way round: the replacement is compressed.
    let async_app = move |_e, start: &mut rgi::StartResponse<'_>| {
        start.start(head("image/png", None))?;
        start.replace(
            ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR)
                .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain")),
            "failed before the body",
        )?;
        Ok(Bytes::from_static(body.as_bytes()))
    };
    let (client, inner) = async_stack(Compression::new(), rgi_async::from_fn(async_app));
    let response = client
        .request(accepting(TestRequest::get("/"), "gzip"))
        .unwrap();
    assert_clean(&response, &inner);
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.header(CONTENT_ENCODING), Some("gzip"));
    assert_eq!(decode(Some("gzip"), &response.body), body.as_bytes());
}
