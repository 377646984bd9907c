//! `Cors` on both stacks, with a validator on each side: preflights
//! answered without the application, actual requests decorated, `vary`
//! as the Fetch standard needs it, wildcards and credentials, bad input;
//! and tower-http's `CorsLayer` with the same configuration agreeing on
//! the same requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use rgi::{ConnectionInfo, ServerInfo};
use rgi_conformance::client::{TestRequest, TestResponse};
use rgi_middleware::{AllowOrigin, Cors};
use tower::{Layer, ServiceExt};
use tower_http::cors::CorsLayer;

use common::{Parts, assert_clean, async_stack, sync_stack, text_head};

const SITE: &str = "https://app.example";
const OTHER: &str = "https://evil.example";

/// Both stacks' responses to `request()`, validators clean, and how many
/// times the application was called.
fn both(cors: &Cors, request: impl Fn() -> TestRequest) -> ([TestResponse; 2], usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (c1, c2) = (Arc::clone(&calls), Arc::clone(&calls));
    let (sync_client, sync_inner) = sync_stack(
        cors.clone(),
        rgi::from_fn(move |_e, _s| {
            c1.fetch_add(1, Ordering::SeqCst);
            Ok(Parts::new(Some(text_head(Some(5))), &["hello"]))
        }),
    );
    let (async_client, async_inner) = async_stack(
        cors.clone(),
        rgi_async::from_fn(move |_e, _s| {
            c2.fetch_add(1, Ordering::SeqCst);
            Ok(Parts::new(Some(text_head(Some(5))), &["hello"]))
        }),
    );
    let a = sync_client.request(request()).unwrap();
    assert_clean(&a, &sync_inner);
    let b = async_client.request(request()).unwrap();
    assert_clean(&b, &async_inner);
    ([a, b], calls.load(Ordering::SeqCst))
}

fn from(request: TestRequest, origin: &str) -> TestRequest {
    request.header(ORIGIN, HeaderValue::from_str(origin).unwrap())
}

fn preflight(origin: &str, method: &str, headers: Option<&str>) -> TestRequest {
    let request = from(TestRequest::new(Method::OPTIONS, "/api"), origin).header(
        ACCESS_CONTROL_REQUEST_METHOD,
        HeaderValue::from_str(method).unwrap(),
    );
    match headers {
        Some(h) => request.header(
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_str(h).unwrap(),
        ),
        None => request,
    }
}

/// A comma-separated field as a set of lower-cased items.
fn items(headers: &HeaderMap, name: HeaderName) -> BTreeSet<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|i| i.trim().to_ascii_lowercase())
        .filter(|i| !i.is_empty())
        .collect()
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(ToString::to_string).collect()
}

/// A request maker and its name, for messages.
type Named = (&'static str, fn() -> TestRequest);

fn site_cors() -> Cors {
    Cors::new(AllowOrigin::list([SITE, "null"]))
        .allow_methods([Method::GET, Method::PUT, Method::DELETE])
        .allow_headers(["content-type", "x-token"])
        .expose_headers(["x-request-id", "etag"])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
}

#[test]
fn a_preflight_is_answered_without_the_application() {
    let (responses, calls) = both(&site_cors(), || {
        preflight(SITE, "PUT", Some("content-type"))
    });
    assert_eq!(calls, 0);
    for response in responses {
        response.assert_ok_and_valid();
        assert!(response.body.is_empty());
        assert_eq!(response.header(ACCESS_CONTROL_ALLOW_ORIGIN), Some(SITE));
        assert_eq!(
            response.header(ACCESS_CONTROL_ALLOW_CREDENTIALS),
            Some("true")
        );
        assert_eq!(
            items(&response.headers, ACCESS_CONTROL_ALLOW_METHODS),
            set(&["get", "put", "delete"])
        );
        assert_eq!(
            items(&response.headers, ACCESS_CONTROL_ALLOW_HEADERS),
            set(&["content-type", "x-token"])
        );
        assert_eq!(response.header(ACCESS_CONTROL_MAX_AGE), Some("600"));
        assert_eq!(items(&response.headers, VARY), set(&["origin"]));
        // Exposing is for actual responses only.
        assert!(
            response
                .headers
                .get(ACCESS_CONTROL_EXPOSE_HEADERS)
                .is_none()
        );
    }
}

#[test]
fn an_actual_request_from_an_allowed_origin_is_decorated() {
    for origin in [SITE, "null"] {
        let (responses, calls) = both(&site_cors(), || from(TestRequest::get("/api"), origin));
        assert_eq!(calls, 2);
        for response in responses {
            response.assert_ok_and_valid();
            assert_eq!(response.text(), "hello");
            assert_eq!(response.header(ACCESS_CONTROL_ALLOW_ORIGIN), Some(origin));
            assert_eq!(
                response.header(ACCESS_CONTROL_ALLOW_CREDENTIALS),
                Some("true")
            );
            assert_eq!(
                items(&response.headers, ACCESS_CONTROL_EXPOSE_HEADERS),
                set(&["x-request-id", "etag"])
            );
            assert!(response.headers.get(ACCESS_CONTROL_ALLOW_METHODS).is_none());
            assert!(response.headers.get(ACCESS_CONTROL_MAX_AGE).is_none());
            assert_eq!(items(&response.headers, VARY), set(&["origin"]));
        }
    }
}

#[test]
fn other_origins_and_no_origin_get_no_cors_fields_but_vary() {
    let requests: Vec<Box<dyn Fn() -> TestRequest>> = vec![
        Box::new(|| from(TestRequest::get("/api"), OTHER)),
        Box::new(|| TestRequest::get("/api")),
        // Origins are compared exactly: another scheme, port or case is
        // another origin.
        Box::new(|| from(TestRequest::get("/api"), "http://app.example")),
        Box::new(|| from(TestRequest::get("/api"), "https://app.example:8443")),
        Box::new(|| from(TestRequest::get("/api"), "https://APP.example")),
        Box::new(|| preflight(OTHER, "PUT", None)),
    ];
    for request in &requests {
        let (responses, _) = both(&site_cors(), request);
        for response in responses {
            response.assert_ok_and_valid();
            for name in [
                ACCESS_CONTROL_ALLOW_ORIGIN,
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                ACCESS_CONTROL_ALLOW_METHODS,
                ACCESS_CONTROL_ALLOW_HEADERS,
                ACCESS_CONTROL_EXPOSE_HEADERS,
                ACCESS_CONTROL_MAX_AGE,
            ] {
                assert!(response.headers.get(&name).is_none(), "{name}");
            }
            assert_eq!(items(&response.headers, VARY), set(&["origin"]));
        }
    }
}

#[test]
fn options_that_is_no_preflight_reaches_the_application() {
    let requests: [fn() -> TestRequest; 2] = [
        || TestRequest::new(Method::OPTIONS, "/api"),
        || from(TestRequest::new(Method::OPTIONS, "/api"), SITE),
    ];
    for request in requests {
        let (responses, calls) = both(&site_cors(), request);
        assert_eq!(calls, 2);
        for response in responses {
            assert_eq!(response.text(), "hello");
        }
    }
}

#[test]
fn any_origin_without_credentials_is_a_constant_star() {
    let cors = Cors::new(AllowOrigin::any())
        .allow_any_method()
        .allow_any_header()
        .expose_any_header();
    let (responses, _) = both(&cors, || preflight(OTHER, "PATCH", Some("x-anything")));
    for response in responses {
        assert_eq!(response.header(ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
        assert_eq!(response.header(ACCESS_CONTROL_ALLOW_METHODS), Some("*"));
        assert_eq!(response.header(ACCESS_CONTROL_ALLOW_HEADERS), Some("*"));
        assert!(
            response
                .headers
                .get(ACCESS_CONTROL_ALLOW_CREDENTIALS)
                .is_none()
        );
        assert!(response.headers.get(VARY).is_none(), "nothing varies");
    }
    let (responses, _) = both(&cors, || from(TestRequest::get("/"), OTHER));
    for response in responses {
        assert_eq!(response.header(ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
        assert_eq!(response.header(ACCESS_CONTROL_EXPOSE_HEADERS), Some("*"));
        assert!(response.headers.get(VARY).is_none());
    }
}

#[test]
fn wildcards_with_credentials_mirror_the_request() {
    let cors = Cors::new(AllowOrigin::any())
        .allow_any_method()
        .allow_any_header()
        .expose_any_header()
        .allow_credentials(true);
    let (responses, _) = both(&cors, || preflight(OTHER, "PATCH", Some("X-One, x-two")));
    for response in responses {
        assert_eq!(response.header(ACCESS_CONTROL_ALLOW_ORIGIN), Some(OTHER));
        assert_eq!(response.header(ACCESS_CONTROL_ALLOW_METHODS), Some("PATCH"));
        assert_eq!(
            items(&response.headers, ACCESS_CONTROL_ALLOW_HEADERS),
            set(&["x-one", "x-two"])
        );
        assert_eq!(
            items(&response.headers, VARY),
            set(&[
                "origin",
                "access-control-request-method",
                "access-control-request-headers"
            ])
        );
    }
    let (responses, _) = both(&cors, || from(TestRequest::get("/"), OTHER));
    for response in responses {
        assert_eq!(response.header(ACCESS_CONTROL_ALLOW_ORIGIN), Some(OTHER));
        // The response's own field names, never `*`.
        let exposed = items(&response.headers, ACCESS_CONTROL_EXPOSE_HEADERS);
        assert!(exposed.contains("content-type"), "{exposed:?}");
        assert!(!exposed.contains("*"));
    }
}

#[test]
fn a_predicate_decides_per_request() {
    let cors = Cors::new(AllowOrigin::predicate(|origin, environ| {
        origin.as_bytes().ends_with(b".example.org") && environ.uri().path().starts_with("/public")
    }));
    let (responses, _) = both(&cors, || {
        from(TestRequest::get("/public/x"), "https://a.example.org")
    });
    for response in responses {
        assert_eq!(
            response.header(ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://a.example.org")
        );
        assert_eq!(items(&response.headers, VARY), set(&["origin"]));
    }
    let (responses, _) = both(&cors, || {
        from(TestRequest::get("/private"), "https://a.example.org")
    });
    for response in responses {
        assert!(response.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert_eq!(items(&response.headers, VARY), set(&["origin"]));
    }
}

#[test]
fn bad_preflight_input_gets_no_cors_fields() {
    let requests: [fn() -> TestRequest; 2] = [
        // Not a method token.
        || preflight(SITE, "PU T", None),
        || preflight(SITE, "", None),
    ];
    for request in requests {
        let (responses, calls) = both(&site_cors(), request);
        assert_eq!(calls, 0);
        for response in responses {
            response.assert_ok_and_valid();
            assert!(response.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
            assert!(response.headers.get(ACCESS_CONTROL_ALLOW_METHODS).is_none());
        }
    }
    // Requested headers that are not field names are not mirrored.
    let cors = Cors::new(AllowOrigin::any())
        .allow_any_header()
        .allow_credentials(true);
    let (responses, _) = both(&cors, || preflight(SITE, "GET", Some("good, b@d")));
    for response in responses {
        assert_eq!(response.header(ACCESS_CONTROL_ALLOW_ORIGIN), Some(SITE));
        assert!(response.headers.get(ACCESS_CONTROL_ALLOW_HEADERS).is_none());
    }
}

#[test]
fn the_applications_vary_is_kept() {
    let cors = site_cors();
    let (sync_client, inner) = sync_stack(
        cors,
        rgi::from_fn(|_e, _s| {
            let head =
                text_head(Some(5)).with_header(VARY, HeaderValue::from_static("accept-encoding"));
            Ok(Parts::new(Some(head), &["hello"]))
        }),
    );
    let response = sync_client
        .request(from(TestRequest::get("/"), SITE))
        .unwrap();
    assert_clean(&response, &inner);
    assert_eq!(
        items(&response.headers, VARY),
        set(&["accept-encoding", "origin"])
    );
}

// ---- The differential oracle: tower-http's CorsLayer. ----

struct Oracle {
    status: StatusCode,
    headers: HeaderMap,
    called: bool,
}

fn tower_http(layer: &CorsLayer, request: fn() -> TestRequest) -> Oracle {
    let called = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&called);
    let app = rgi_async::from_fn(move |_e, _s| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(Parts::new(Some(text_head(Some(5))), &["hello"]))
    });
    let host = rgi_tower::Host::builder(ServerInfo::new("127.0.0.1", 80).unwrap()).build();
    let service =
        rgi_tower::AsyncService::new(app, host).connection(Arc::new(ConnectionInfo::new()));
    let service = layer.layer(service);
    let environ = request().into_environ().unwrap();
    let mut builder = http::Request::builder()
        .method(environ.method().clone())
        .uri(format!("http://127.0.0.1{}", environ.uri()))
        .header(http::header::HOST, "127.0.0.1");
    for (name, value) in environ.headers() {
        if name != http::header::HOST {
            builder = builder.header(name, value);
        }
    }
    let request = builder.body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let response = service.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let _ = body.collect().await.unwrap();
        Oracle {
            status: parts.status,
            headers: parts.headers,
            called: called.load(Ordering::SeqCst) > 0,
        }
    })
}

#[test]
fn tower_http_agrees_for_allowed_origins() {
    use tower_http::cors::{AllowOrigin as TowerOrigin, Any};
    let configs: Vec<(&str, Cors, CorsLayer)> = vec![
        (
            "list with credentials",
            site_cors(),
            CorsLayer::new()
                .allow_origin(TowerOrigin::list([
                    HeaderValue::from_static(SITE),
                    HeaderValue::from_static("null"),
                ]))
                .allow_methods([Method::GET, Method::PUT, Method::DELETE])
                .allow_headers([
                    HeaderName::from_static("content-type"),
                    HeaderName::from_static("x-token"),
                ])
                .expose_headers([
                    HeaderName::from_static("x-request-id"),
                    HeaderName::from_static("etag"),
                ])
                .allow_credentials(true)
                .max_age(Duration::from_secs(600)),
        ),
        (
            "any",
            Cors::new(AllowOrigin::any())
                .allow_any_method()
                .allow_any_header()
                .expose_any_header(),
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods(Any)
                .allow_headers(Any)
                .expose_headers(Any),
        ),
        (
            "predicate",
            Cors::new(AllowOrigin::predicate(|o, _| {
                o.as_bytes().ends_with(b".example")
            }))
            .allow_methods([Method::POST]),
            CorsLayer::new()
                .allow_origin(TowerOrigin::predicate(|o, _| {
                    o.as_bytes().ends_with(b".example")
                }))
                .allow_methods([Method::POST]),
        ),
    ];
    let requests: [Named; 5] = [
        ("preflight PUT", || {
            preflight(SITE, "PUT", Some("content-type"))
        }),
        ("preflight DELETE", || preflight(SITE, "DELETE", None)),
        ("GET", || from(TestRequest::get("/api"), SITE)),
        ("POST", || {
            from(TestRequest::new(Method::POST, "/api"), SITE)
        }),
        ("DELETE", || {
            from(TestRequest::new(Method::DELETE, "/api"), SITE)
        }),
    ];
    let fields = [
        ACCESS_CONTROL_ALLOW_ORIGIN,
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        ACCESS_CONTROL_ALLOW_METHODS,
        ACCESS_CONTROL_ALLOW_HEADERS,
        ACCESS_CONTROL_MAX_AGE,
        ACCESS_CONTROL_EXPOSE_HEADERS,
    ];
    for (name, cors, layer) in &configs {
        for (what, request) in requests {
            let oracle = tower_http(layer, request);
            let (responses, calls) = both(cors, request);
            assert_eq!(calls > 0, oracle.called, "{name}: {what}");
            for ours in responses {
                assert_eq!(ours.status, oracle.status, "{name}: {what}");
                for field in &fields {
                    assert_eq!(
                        items(&ours.headers, field.clone()),
                        items(&oracle.headers, field.clone()),
                        "{name}, {field}: {what}"
                    );
                }
                // Where ours varies, tower-http's does too (it varies on
                // more, always).
                assert!(
                    items(&ours.headers, VARY).is_subset(&items(&oracle.headers, VARY)),
                    "{name}: {what}"
                );
            }
        }
    }
}

#[test]
fn tower_http_differs_where_documented() {
    let layer = CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::exact(
            HeaderValue::from_static(SITE),
        ))
        .allow_methods([Method::PUT]);
    let cors = Cors::new(AllowOrigin::list([SITE])).allow_methods([Method::PUT]);
    // An OPTIONS request that is no preflight: tower-http answers it.
    let plain_options = || TestRequest::new(Method::OPTIONS, "/api");
    assert!(!tower_http(&layer, plain_options).called);
    let (_, calls) = both(&cors, plain_options);
    assert_eq!(calls, 2);
    // A preflight from another origin: tower-http still lists methods.
    let other = || preflight(OTHER, "PUT", None);
    let oracle = tower_http(&layer, other);
    assert!(oracle.headers.contains_key(ACCESS_CONTROL_ALLOW_METHODS));
    let (responses, _) = both(&cors, other);
    for ours in responses {
        assert!(!ours.headers.contains_key(ACCESS_CONTROL_ALLOW_METHODS));
    }
}
