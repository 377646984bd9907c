//! `ServeDir` on both stacks, behind a pass-through middleware with a
//! validator on each side: files, HEAD, conditional requests, ranges,
//! precompressed siblings, directories, and every way out of the root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderValue, Method, StatusCode};
use rgi_conformance::client::{TestRequest, TestResponse};
use rgi_middleware::{AccessLog, ServeDir, ServeDirError};

use common::{assert_clean, async_stack, sync_stack};

/// A fresh directory with known files, removed when dropped.
struct Fixture {
    root: PathBuf,
    outside: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_dir_all(&self.outside);
    }
}

const HELLO: &str = "hello, world\n";

fn fixture() -> Fixture {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let base = std::env::temp_dir().join(format!("rgi-mw-static-{}-{n}", std::process::id()));
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("bare")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("hello.txt"), HELLO).unwrap();
    std::fs::write(root.join("index.html"), "<p>home</p>").unwrap();
    std::fs::write(root.join("sub/index.html"), "<p>sub</p>").unwrap();
    std::fs::write(root.join("empty.txt"), "").unwrap();
    std::fs::write(root.join("app.js"), "console.log('plain');").unwrap();
    std::fs::write(root.join("app.js.br"), "BR-BYTES").unwrap();
    std::fs::write(root.join("app.js.gz"), "GZIP-BYTES").unwrap();
    std::fs::write(root.join("data.bin"), [0u8, 1, 2, 3]).unwrap();
    std::fs::write(root.join("a b.txt"), "spaced").unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(root.join("hello.txt"), root.join("link-in.txt")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link-out.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("dir-out")).unwrap();
    Fixture { root, outside }
}

/// Serves `request` from `app` on the chosen stack, behind a pass-through
/// middleware, checking both validators; a pass-through middleware keeps
/// the file body reaching the server.
fn serve(app: ServeDir, asynchronous: bool, request: TestRequest) -> TestResponse {
    if asynchronous {
        let (client, inner) = async_stack(AccessLog::new(), app);
        let response = client.request(request).unwrap();
        assert_clean(&response, &inner);
        assert!(response.switched, "the async stack serves after a switch");
        response
    } else {
        let (client, inner) = sync_stack(AccessLog::new(), app);
        let response = client.request(request).unwrap();
        assert_clean(&response, &inner);
        response
    }
}

fn both(
    root: &Path,
    configure: impl Fn(ServeDir) -> ServeDir,
    request: impl Fn() -> TestRequest,
    check: impl Fn(&TestResponse),
) {
    for asynchronous in [false, true] {
        let app = configure(ServeDir::new(root).unwrap());
        let response = serve(app, asynchronous, request());
        assert!(
            response.ending.is_complete(),
            "ended: {:?}",
            response.ending
        );
        check(&response);
    }
}

fn get(path: &str) -> TestRequest {
    TestRequest::get(path)
}

fn header(name: &'static str, value: &str) -> (http::HeaderName, HeaderValue) {
    (
        http::HeaderName::from_static(name),
        HeaderValue::from_str(value).unwrap(),
    )
}

fn with(request: TestRequest, fields: &[(&'static str, &str)]) -> TestRequest {
    fields.iter().fold(request, |request, (name, value)| {
        let (name, value) = header(name, value);
        request.header(name, value)
    })
}

fn etag_of(root: &Path, path: &str) -> String {
    let response = serve(ServeDir::new(root).unwrap(), false, get(path));
    response.header("etag").unwrap().to_owned()
}

#[test]
fn serves_a_file_with_type_length_and_validators() {
    let fx = fixture();
    both(
        &fx.root,
        |d| d,
        || get("/hello.txt"),
        |r| {
            r.assert_ok_and_valid();
            assert_eq!(r.text(), HELLO);
            assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
            assert_eq!(r.header("content-length"), Some("13"));
            assert_eq!(r.header("accept-ranges"), Some("bytes"));
            assert!(r.header("etag").unwrap().starts_with('"'));
            assert!(httpdate::parse_http_date(r.header("last-modified").unwrap()).is_ok());
            assert_eq!(r.header("vary"), None, "no precompression, no vary");
        },
    );
    both(
        &fx.root,
        |d| d,
        || get("/data.bin"),
        |r| {
            assert_eq!(r.header("content-type"), Some("application/octet-stream"));
            assert_eq!(&r.body[..], &[0u8, 1, 2, 3]);
        },
    );
    both(
        &fx.root,
        |d| d,
        || get("/a%20b.txt"),
        |r| assert_eq!(r.text(), "spaced"),
    );
    both(
        &fx.root,
        |d| d,
        || get("/empty.txt"),
        |r| {
            r.assert_ok_and_valid();
            assert_eq!(r.header("content-length"), Some("0"));
            assert!(r.body.is_empty());
        },
    );
}

#[test]
fn small_chunks_stream_the_whole_file() {
    let fx = fixture();
    both(
        &fx.root,
        |d| d.chunk_size(4),
        || get("/hello.txt"),
        |r| {
            r.assert_ok_and_valid();
            assert_eq!(r.text(), HELLO);
        },
    );
}

#[test]
fn head_has_the_get_head_and_no_body() {
    let fx = fixture();
    both(
        &fx.root,
        |d| d,
        || TestRequest::head("/hello.txt"),
        |r| {
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.header("content-length"), Some("13"));
            assert!(r.header("etag").is_some());
            assert!(r.body.is_empty());
        },
    );
}

#[test]
fn other_methods_are_405_with_allow() {
    let fx = fixture();
    both(
        &fx.root,
        |d| d,
        || TestRequest::post("/hello.txt", "x"),
        |r| {
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        },
    );
    both(
        &fx.root,
        |d| d,
        || TestRequest::new(Method::DELETE, "/hello.txt"),
        |r| {
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        },
    );
}

#[test]
fn missing_files_are_404() {
    let fx = fixture();
    for path in ["/nope.txt", "/sub/nope", "/hello.txt/", "/hello.txt/x"] {
        both(
            &fx.root,
            |d| d,
            || get(path),
            |r| assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}"),
        );
    }
}

#[test]
fn no_escape_from_the_root() {
    let fx = fixture();
    let paths = [
        "/../outside/secret.txt",
        "/sub/../../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/sub%2F..%2F..%2Foutside%2Fsecret.txt",
        "/sub%2f..%2fhello.txt",
        // An existing file, named with an encoded slash: refused all the same.
        "/sub%2Findex.html",
        "/hello.txt%00.png",
        "/..%5Coutside%5Csecret.txt",
        "/link-out.txt",
        "/dir-out/secret.txt",
        "/%ff.txt",
    ];
    for path in paths {
        both(
            &fx.root,
            |d| d,
            || get(path),
            |r| {
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
                assert!(!r.text().contains("secret"), "{path}");
            },
        );
    }
    // A link inside the root is followed.
    both(
        &fx.root,
        |d| d,
        || get("/link-in.txt"),
        |r| assert_eq!(r.text(), HELLO),
    );
    // Links leaving the root are followed only when configured.
    both(
        &fx.root,
        |d| d.follow_symlinks_outside(true),
        || get("/link-out.txt"),
        |r| {
            assert_eq!(r.text(), "secret");
        },
    );
    both(
        &fx.root,
        |d| d.follow_symlinks_outside(true),
        || get("/dir-out/secret.txt"),
        |r| {
            assert_eq!(r.text(), "secret");
        },
    );
}

#[test]
fn directories_use_the_index_or_are_404() {
    let fx = fixture();
    both(
        &fx.root,
        |d| d,
        || get("/"),
        |r| {
            assert_eq!(r.text(), "<p>home</p>");
            assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        },
    );
    both(
        &fx.root,
        |d| d,
        || get("/sub/"),
        |r| assert_eq!(r.text(), "<p>sub</p>"),
    );
    both(
        &fx.root,
        |d| d,
        || get("/sub?x=1"),
        |r| {
            assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
            assert_eq!(r.header("location"), Some("/sub/?x=1"));
        },
    );
    both(
        &fx.root,
        |d| d,
        || get("/bare/"),
        |r| assert_eq!(r.status, StatusCode::NOT_FOUND),
    );
    both(
        &fx.root,
        |d| d.index_file(None),
        || get("/sub/"),
        |r| {
            assert_eq!(r.status, StatusCode::NOT_FOUND);
        },
    );
}

#[test]
fn mounted_under_a_script_name() {
    let fx = fixture();
    both(
        &fx.root,
        |d| d,
        || get("/static/hello.txt").script_name("/static"),
        |r| {
            assert_eq!(r.text(), HELLO);
        },
    );
    both(
        &fx.root,
        |d| d,
        || get("/static/sub").script_name("/static"),
        |r| {
            assert_eq!(r.header("location"), Some("/static/sub/"));
        },
    );
}

#[test]
fn if_none_match_and_if_modified_since_give_304() {
    let fx = fixture();
    let etag = etag_of(&fx.root, "/hello.txt");
    let cases: Vec<Vec<(&'static str, String)>> = vec![
        vec![("if-none-match", etag.clone())],
        vec![("if-none-match", format!("\"other\", W/{etag}"))],
        vec![("if-none-match", String::from("*"))],
        vec![(
            "if-modified-since",
            httpdate::fmt_http_date(
                std::time::SystemTime::now() + std::time::Duration::from_secs(60),
            ),
        )],
    ];
    for fields in &cases {
        let fields: Vec<(&'static str, &str)> =
            fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        both(
            &fx.root,
            |d| d,
            || with(get("/hello.txt"), &fields),
            |r| {
                assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{fields:?}");
                assert_eq!(r.header("etag"), Some(etag.as_str()));
                assert!(r.body.is_empty());
            },
        );
    }
    // If-None-Match wins over If-Modified-Since; a stale date and a
    // garbage date are 200.
    let stale = httpdate::fmt_http_date(std::time::UNIX_EPOCH);
    for fields in [
        vec![
            ("if-none-match", "\"other\""),
            ("if-modified-since", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ],
        vec![("if-modified-since", stale.as_str())],
        vec![("if-modified-since", "yesterday")],
    ] {
        both(
            &fx.root,
            |d| d,
            || with(get("/hello.txt"), &fields),
            |r| {
                assert_eq!(r.status, StatusCode::OK, "{fields:?}");
                assert_eq!(r.text(), HELLO);
            },
        );
    }
}

#[test]
fn if_match_and_if_unmodified_since_give_412() {
    let fx = fixture();
    let etag = etag_of(&fx.root, "/hello.txt");
    let stale = httpdate::fmt_http_date(std::time::UNIX_EPOCH);
    for fields in [
        vec![("if-match", "\"other\"")],
        vec![("if-match", format!("W/{etag}").leak() as &str)],
        vec![("if-unmodified-since", stale.as_str())],
    ] {
        both(
            &fx.root,
            |d| d,
            || with(get("/hello.txt"), &fields),
            |r| {
                assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{fields:?}");
            },
        );
    }
    // Matching: served. If-Match wins over If-Unmodified-Since.
    for fields in [
        vec![("if-match", etag.as_str())],
        vec![("if-match", "*")],
        vec![
            ("if-match", etag.as_str()),
            ("if-unmodified-since", stale.as_str()),
        ],
        vec![("if-unmodified-since", "not a date")],
    ] {
        both(
            &fx.root,
            |d| d,
            || with(get("/hello.txt"), &fields),
            |r| {
                assert_eq!(r.status, StatusCode::OK, "{fields:?}");
            },
        );
    }
}

#[test]
fn single_ranges_are_206_and_bad_ones_416_or_ignored() {
    let fx = fixture();
    let etag = etag_of(&fx.root, "/hello.txt");
    for (range, body, content_range) in [
        ("bytes=0-4", "hello", "bytes 0-4/13"),
        ("bytes=7-", "world\n", "bytes 7-12/13"),
        ("bytes=-6", "world\n", "bytes 7-12/13"),
        ("bytes=7-1000", "world\n", "bytes 7-12/13"),
        ("bytes=-1000", HELLO, "bytes 0-12/13"),
    ] {
        both(
            &fx.root,
            |d| d,
            || with(get("/hello.txt"), &[("range", range)]),
            |r| {
                assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
                assert_eq!(r.text(), body, "{range}");
                assert_eq!(r.header("content-range"), Some(content_range), "{range}");
                assert_eq!(
                    r.header("content-length"),
                    Some(body.len().to_string().as_str())
                );
            },
        );
    }
    for range in ["bytes=13-", "bytes=100-200", "bytes=-0"] {
        both(
            &fx.root,
            |d| d,
            || with(get("/hello.txt"), &[("range", range)]),
            |r| {
                assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
                assert_eq!(r.header("content-range"), Some("bytes */13"));
            },
        );
    }
    both(
        &fx.root,
        |d| d,
        || with(get("/empty.txt"), &[("range", "bytes=0-")]),
        |r| {
            assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
        },
    );
    // Invalid, another unit, several ranges (no multipart): the whole file.
    for range in [
        "bytes=5-2",
        "bytes=x-y",
        "items=0-1",
        "bytes=0-1,3-4",
        "bytes0-1",
    ] {
        both(
            &fx.root,
            |d| d,
            || with(get("/hello.txt"), &[("range", range)]),
            |r| {
                assert_eq!(r.status, StatusCode::OK, "{range}");
                assert_eq!(r.text(), HELLO);
            },
        );
    }
    // If-Range: matching etag keeps the range, another one drops it.
    both(
        &fx.root,
        |d| d,
        || {
            with(
                get("/hello.txt"),
                &[("range", "bytes=0-4"), ("if-range", etag.as_str())],
            )
        },
        |r| {
            assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
        },
    );
    both(
        &fx.root,
        |d| d,
        || {
            with(
                get("/hello.txt"),
                &[("range", "bytes=0-4"), ("if-range", "\"old\"")],
            )
        },
        |r| {
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.text(), HELLO);
        },
    );
    // HEAD ignores Range.
    both(
        &fx.root,
        |d| d,
        || with(TestRequest::head("/hello.txt"), &[("range", "bytes=0-4")]),
        |r| {
            assert_eq!(r.status, StatusCode::OK);
        },
    );
}

#[test]
fn precompressed_siblings_by_accept_encoding() {
    let fx = fixture();
    let on = |d: ServeDir| d.precompressed_br(true).precompressed_gzip(true);
    for (accept, body, coding) in [
        ("br, gzip", "BR-BYTES", Some("br")),
        ("gzip, br;q=0.5", "GZIP-BYTES", Some("gzip")),
        ("gzip", "GZIP-BYTES", Some("gzip")),
        ("*", "BR-BYTES", Some("br")),
        ("br;q=0, gzip;q=0", "console.log('plain');", None),
        ("identity", "console.log('plain');", None),
        ("br;q=bogus", "console.log('plain');", None),
    ] {
        both(
            &fx.root,
            on,
            || with(get("/app.js"), &[("accept-encoding", accept)]),
            |r| {
                r.assert_ok_and_valid();
                assert_eq!(r.text(), body, "{accept}");
                assert_eq!(r.header("content-encoding"), coding, "{accept}");
                assert_eq!(
                    r.header("content-type"),
                    Some("text/javascript; charset=utf-8")
                );
                assert_eq!(r.header("vary"), Some("accept-encoding"));
            },
        );
    }
    // Off: the sibling is never chosen. No sibling: the file itself.
    both(
        &fx.root,
        |d| d,
        || with(get("/app.js"), &[("accept-encoding", "br")]),
        |r| {
            assert_eq!(r.header("content-encoding"), None);
        },
    );
    both(
        &fx.root,
        on,
        || with(get("/hello.txt"), &[("accept-encoding", "br")]),
        |r| {
            assert_eq!(r.text(), HELLO);
            assert_eq!(r.header("vary"), Some("accept-encoding"));
        },
    );
    // The variants have distinct etags.
    let plain = serve(on(ServeDir::new(&fx.root).unwrap()), false, get("/app.js"));
    let br = serve(
        on(ServeDir::new(&fx.root).unwrap()),
        false,
        with(get("/app.js"), &[("accept-encoding", "br")]),
    );
    assert_ne!(plain.header("etag"), br.header("etag"));
}

#[test]
fn hints_say_no_input_and_blocking() {
    use rgi::Application;
    let fx = fixture();
    let hints = Application::hints(&ServeDir::new(&fx.root).unwrap());
    assert_eq!(hints.input, rgi::InputUse::None);
    assert!(hints.may_block);
    assert!(!hints.can_run_inline());
}

#[test]
fn the_root_must_be_a_directory() {
    let fx = fixture();
    assert!(matches!(
        ServeDir::new(fx.root.join("hello.txt")),
        Err(ServeDirError::NotADirectory { .. })
    ));
    assert!(matches!(
        ServeDir::new(fx.root.join("missing")),
        Err(ServeDirError::NotADirectory { .. })
    ));
}

/// The synchronous body hands the server the file (for `sendfile`), also
/// through a pass-through middleware.
#[test]
fn the_file_body_reaches_the_server() {
    use rgi::{Application, Body, ResponseState};
    use rgi_conformance::rt::Recorder;
    let fx = fixture();
    let app = AccessLog::new().wrap(ServeDir::new(&fx.root).unwrap());
    for (range, offset, len) in [(None, 0, 13), (Some("bytes=7-"), 7, 6)] {
        let mut builder = rgi::Environ::builder()
            .uri(http::Uri::from_static("/hello.txt"))
            .header(http::header::HOST, HeaderValue::from_static("localhost"));
        if let Some(range) = range {
            builder = builder.header(http::header::RANGE, HeaderValue::from_static(range));
        }
        let environ = builder.build().unwrap();
        let mut state = ResponseState::new(environ.method());
        let mut sink = Recorder::new();
        let mut body =
            Application::call(&app, environ, &mut state.start_response(&mut sink)).unwrap();
        let file = body.file().expect("a file body");
        assert_eq!((file.offset(), file.remaining()), (offset, Some(len)));
    }
}

use rgi_middleware::Middleware as _;
