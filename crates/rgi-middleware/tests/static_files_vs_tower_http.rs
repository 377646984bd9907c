//! Differential: `ServeDir` against tower-http's `ServeDir` on the same
//! temporary directory and the same requests, called in-process. The
//! status and the headers both specify must agree; the differences the
//! module documentation lists are asserted as differences, so that a
//! change on either side is noticed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use rgi_conformance::client::TestRequest;
use rgi_middleware::{AccessLog, ServeDir};
use tower::ServiceExt;

use common::{assert_clean, async_stack, sync_stack};

struct Fixture(PathBuf);

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture() -> Fixture {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let root = std::env::temp_dir().join(format!("rgi-mw-static-diff-{}-{n}", std::process::id()));
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("bare")).unwrap();
    std::fs::write(root.join("hello.txt"), "hello, world\n").unwrap();
    std::fs::write(root.join("index.html"), "<p>home</p>").unwrap();
    std::fs::write(root.join("sub/index.html"), "<p>sub</p>").unwrap();
    std::fs::write(root.join("style.css"), "p{}").unwrap();
    std::fs::write(root.join("image.png"), [0x89u8, b'P', b'N', b'G']).unwrap();
    std::fs::write(root.join("data.bin"), [0u8, 1, 2, 3]).unwrap();
    std::fs::write(root.join("app.js"), "console.log('plain');").unwrap();
    std::fs::write(root.join("app.js.br"), "BR-BYTES").unwrap();
    std::fs::write(root.join("app.js.gz"), "GZIP-BYTES").unwrap();
    Fixture(root)
}

/// What the comparison looks at.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

fn tower_http(
    root: &PathBuf,
    precompressed: bool,
    method: &Method,
    uri: &str,
    fields: &[(&str, &str)],
) -> Seen {
    let mut service = tower_http::services::ServeDir::new(root);
    if precompressed {
        service = service.precompressed_br().precompressed_gzip();
    }
    let mut request = Request::builder().method(method.clone()).uri(uri);
    for (name, value) in fields {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let response = service.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Seen {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
}

fn ours(
    root: &PathBuf,
    precompressed: bool,
    asynchronous: bool,
    method: &Method,
    uri: &str,
    fields: &[(&str, &str)],
) -> Seen {
    let app = ServeDir::new(root)
        .unwrap()
        .precompressed_br(precompressed)
        .precompressed_gzip(precompressed);
    let mut request = TestRequest::new(method.clone(), uri);
    for (name, value) in fields {
        request = request.try_header(name, value).unwrap();
    }
    let response = if asynchronous {
        let (client, inner) = async_stack(AccessLog::new(), app);
        let response = client.request(request).unwrap();
        assert_clean(&response, &inner);
        response
    } else {
        let (client, inner) = sync_stack(AccessLog::new(), app);
        let response = client.request(request).unwrap();
        assert_clean(&response, &inner);
        response
    };
    Seen {
        status: response.status,
        headers: response.headers,
        body: response.body,
    }
}

/// The media type without parameters: tower-http (`mime_guess`) gives
/// `text/plain`, this crate `text/plain; charset=utf-8`.
fn essence(headers: &HeaderMap) -> Option<String> {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// Compared on every response. `content-length` is compared on
/// successful ones only: on an empty error body tower-http leaves it to
/// hyper, which frames it on the wire, while an RGI application declares
/// it.
const AGREED: [&str; 5] = [
    "content-range",
    "content-encoding",
    "last-modified",
    "location",
    "vary",
];

#[track_caller]
#[allow(
    clippy::needless_pass_by_value,
    reason = "reads better at the call sites"
)]
fn compare(
    root: &PathBuf,
    precompressed: bool,
    method: Method,
    uri: &str,
    fields: &[(&str, &str)],
) -> (Seen, Seen) {
    let theirs = tower_http(root, precompressed, &method, uri, fields);
    let mut last = None;
    for asynchronous in [false, true] {
        let mine = ours(root, precompressed, asynchronous, &method, uri, fields);
        let what = format!("{method} {uri} {fields:?} (async: {asynchronous})");
        assert_eq!(
            mine.status, theirs.status,
            "{what}\nours: {mine:#?}\ntower-http: {theirs:#?}"
        );
        for name in AGREED {
            assert_eq!(
                mine.headers.get(name),
                theirs.headers.get(name),
                "{what}: {name}"
            );
        }
        assert_eq!(
            mine.headers.contains_key("etag"),
            theirs.headers.contains_key("etag"),
            "{what}: etag present"
        );
        if mine.status.is_success() {
            assert_eq!(
                mine.headers.get("content-length"),
                theirs.headers.get("content-length"),
                "{what}: content-length"
            );
            assert_eq!(
                essence(&mine.headers),
                essence(&theirs.headers),
                "{what}: content-type"
            );
            assert_eq!(mine.body, theirs.body, "{what}: body");
        }
        last = Some(mine);
    }
    (last.unwrap(), theirs)
}

#[test]
fn plain_files_agree() {
    let fx = fixture();
    for uri in [
        "/hello.txt",
        "/style.css",
        "/image.png",
        "/data.bin",
        "/",
        "/sub/",
        "/index.html",
    ] {
        compare(&fx.0, false, Method::GET, uri, &[]);
        compare(&fx.0, false, Method::HEAD, uri, &[]);
    }
}

#[test]
fn not_found_and_traversal_agree() {
    let fx = fixture();
    for uri in [
        "/nope",
        "/sub/nope.txt",
        "/../hello.txt",
        "/sub/../../etc/passwd",
        "/%2e%2e/x",
        "/bare/",
    ] {
        compare(&fx.0, false, Method::GET, uri, &[]);
    }
}

#[test]
fn redirect_to_the_directory_agrees() {
    let fx = fixture();
    compare(&fx.0, false, Method::GET, "/sub", &[]);
    compare(&fx.0, false, Method::GET, "/sub?x=1", &[]);
}

#[test]
fn method_not_allowed_agrees() {
    let fx = fixture();
    let (mine, theirs) = compare(&fx.0, false, Method::POST, "/hello.txt", &[]);
    assert_eq!(mine.headers.get("allow").unwrap(), "GET, HEAD");
    // The same list; tower-http writes it without the optional space.
    let members = |seen: &Seen| {
        seen.headers
            .get("allow")
            .unwrap()
            .to_str()
            .unwrap()
            .replace(' ', "")
    };
    assert_eq!(members(&mine), members(&theirs));
}

#[test]
fn ranges_agree() {
    let fx = fixture();
    for range in [
        "bytes=0-4",
        "bytes=7-",
        "bytes=-6",
        "bytes=7-1000",
        "bytes=13-",
        "bytes=100-200",
    ] {
        compare(&fx.0, false, Method::GET, "/hello.txt", &[("range", range)]);
    }
}

#[test]
fn range_differences() {
    let fx = fixture();
    // Several ranges: tower-http refuses them (416); this crate ignores
    // the field and sends the whole file (200), as RFC 9110 allows.
    let theirs = tower_http(
        &fx.0,
        false,
        &Method::GET,
        "/hello.txt",
        &[("range", "bytes=0-1,3-4")],
    );
    let mine = ours(
        &fx.0,
        false,
        false,
        &Method::GET,
        "/hello.txt",
        &[("range", "bytes=0-1,3-4")],
    );
    assert_eq!(
        (mine.status, theirs.status),
        (StatusCode::OK, StatusCode::RANGE_NOT_SATISFIABLE)
    );
    // A syntactically invalid range: this crate ignores it (RFC 9110 §14.2),
    // tower-http answers 416.
    let theirs = tower_http(
        &fx.0,
        false,
        &Method::GET,
        "/hello.txt",
        &[("range", "bytes=x-y")],
    );
    let mine = ours(
        &fx.0,
        false,
        false,
        &Method::GET,
        "/hello.txt",
        &[("range", "bytes=x-y")],
    );
    assert_eq!(
        (mine.status, theirs.status),
        (StatusCode::OK, StatusCode::RANGE_NOT_SATISFIABLE)
    );
}

#[test]
fn if_modified_since_agrees() {
    let fx = fixture();
    let future = httpdate::fmt_http_date(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    let past = httpdate::fmt_http_date(std::time::UNIX_EPOCH);
    compare(
        &fx.0,
        false,
        Method::GET,
        "/hello.txt",
        &[("if-modified-since", &future)],
    );
    compare(
        &fx.0,
        false,
        Method::GET,
        "/hello.txt",
        &[("if-modified-since", &past)],
    );
    compare(
        &fx.0,
        false,
        Method::GET,
        "/hello.txt",
        &[("if-unmodified-since", &past)],
    );
    compare(
        &fx.0,
        false,
        Method::GET,
        "/hello.txt",
        &[("if-unmodified-since", &future)],
    );
}

#[test]
fn entity_tag_conditionals_agree() {
    let fx = fixture();
    // Both make strong tags from length and modification time, in their
    // own spelling (opaque, RFC 9110 §8.8.3): each side is asked with its
    // own tag.
    let etag = |seen: &Seen| {
        seen.headers
            .get("etag")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let mine = etag(&ours(&fx.0, false, false, &Method::GET, "/hello.txt", &[]));
    let theirs = etag(&tower_http(&fx.0, false, &Method::GET, "/hello.txt", &[]));
    for (name, template) in [
        ("if-none-match", "{}"),
        ("if-none-match", "\"other\", W/{}"),
        ("if-none-match", "\"other\""),
        ("if-none-match", "*"),
        ("if-match", "{}"),
        ("if-match", "W/{}"),
        ("if-match", "\"other\""),
        ("if-match", "*"),
    ] {
        let mine_value = template.replace("{}", &mine);
        let theirs_value = template.replace("{}", &theirs);
        for asynchronous in [false, true] {
            let a = ours(
                &fx.0,
                false,
                asynchronous,
                &Method::GET,
                "/hello.txt",
                &[(name, &mine_value)],
            );
            let b = tower_http(
                &fx.0,
                false,
                &Method::GET,
                "/hello.txt",
                &[(name, &theirs_value)],
            );
            assert_eq!(a.status, b.status, "{name}: {template}");
        }
    }
}

#[test]
fn precompressed_siblings_agree() {
    let fx = fixture();
    for accept in [
        "br",
        "gzip",
        "br, gzip",
        "gzip;q=1, br;q=0.5",
        "identity",
        "br;q=0",
    ] {
        let (mine, _) = compare(
            &fx.0,
            true,
            Method::GET,
            "/app.js",
            &[("accept-encoding", accept)],
        );
        assert_eq!(mine.headers.get("vary").unwrap(), "accept-encoding");
    }
    // No sibling: both send the file, both with `vary`.
    compare(
        &fx.0,
        true,
        Method::GET,
        "/hello.txt",
        &[("accept-encoding", "br")],
    );
}
