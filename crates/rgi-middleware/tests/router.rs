//! `Router` on both stacks, with a validator around every mounted
//! application and the client's around the router: longest prefix on
//! raw segments, the paths moved, methods, automatic HEAD, 405 + Allow,
//! hosts, 404, boxed applications.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use http::header::{ALLOW, HOST};
use http::{HeaderValue, Method, StatusCode};
use rgi::{Application, BoxError, Environ, Hints, InputUse, StartResponse};
use rgi_async::AsyncApplication;
use rgi_conformance::client::{AsyncTestClient, TestClient, TestRequest, TestResponse};
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports};
use rgi_middleware::{BoxApplication, BoxAsyncApplication, Mount, RouteError, Router};

use common::text_head;

/// Answers `<tag> <method> <script_name> <path_info>`, on both stacks.
#[derive(Clone)]
struct Show(&'static str, Hints);

impl Show {
    fn answer(&self, environ: &Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
        let text = format!(
            "{} {} {} {}",
            self.0,
            environ.method(),
            environ.script_name().to_string_lossy(),
            environ.path_info().to_string_lossy()
        );
        start.start(text_head(Some(text.len())))?;
        Ok(Bytes::from(text))
    }
}

impl Application for Show {
    type Body = Bytes;
    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
        self.answer(&environ, start)
    }
    fn hints(&self) -> Hints {
        self.1
    }
}

impl AsyncApplication for Show {
    type Body = Bytes;
    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
        self.answer(&environ, start)
    }
}

fn show(tag: &'static str) -> Show {
    Show(tag, Hints::default())
}

/// The mounts every test uses, each application behind its own validator
/// reporting to `inner`.
fn mounts() -> Vec<(Mount, Show)> {
    vec![
        (Mount::at("/api").unwrap(), show("api")),
        (
            Mount::at("/api/v2/").unwrap().methods([Method::GET]),
            show("v2"),
        ),
        (
            Mount::at("/api/v2")
                .unwrap()
                .methods([Method::PUT, Method::GET]),
            show("v2-put"),
        ),
        (Mount::at("/files/a b").unwrap(), show("spaced")),
        (
            Mount::at("/").unwrap().host("Admin.Example.com").unwrap(),
            show("admin"),
        ),
        (
            Mount::at("/only-head")
                .unwrap()
                .methods([Method::HEAD, Method::GET]),
            show("only-head"),
        ),
        (
            Mount::at("/only-head").unwrap().methods([Method::GET]),
            show("get-not-head"),
        ),
    ]
}

struct Stacks {
    sync: TestClient<Router<Validator<Show>>>,
    asynchronous: AsyncTestClient<Router<AsyncValidator<Show>>>,
    inner: Reports,
}

fn stacks() -> Stacks {
    let inner = Reports::new(Policy::Collect);
    let mut sync = Router::new();
    let mut asynchronous = Router::new();
    for (mount, app) in mounts() {
        sync = sync.mount(mount.clone(), Validator::new(app.clone(), inner.clone()));
        asynchronous = asynchronous.mount(mount, AsyncValidator::new(app, inner.clone()));
    }
    Stacks {
        sync: TestClient::new(sync),
        asynchronous: AsyncTestClient::new(asynchronous),
        inner,
    }
}

impl Stacks {
    /// `request` on both stacks: the responses, which must agree, with
    /// nothing reported on either side.
    #[track_caller]
    fn run(&self, request: impl Fn() -> TestRequest) -> TestResponse {
        let sync = self.sync.request(request()).unwrap();
        let asynchronous = self.asynchronous.request(request()).unwrap();
        for response in [&sync, &asynchronous] {
            response.assert_valid();
            assert!(response.ending.is_complete(), "{:?}", response.ending);
        }
        let seen = self.inner.take();
        assert!(seen.is_empty(), "inner: {seen:#?}");
        assert_eq!(sync.status, asynchronous.status);
        assert_eq!(sync.body, asynchronous.body);
        assert_eq!(sync.headers.get(ALLOW), asynchronous.headers.get(ALLOW));
        sync
    }

    #[track_caller]
    fn text(&self, uri: &str) -> String {
        let response = self.run(|| TestRequest::get(uri));
        response.assert_ok_and_valid();
        response.text().into_owned()
    }

    #[track_caller]
    fn status(&self, request: impl Fn() -> TestRequest) -> StatusCode {
        self.run(request).status
    }
}

#[test]
fn the_prefix_moves_from_path_info_to_script_name() {
    let stacks = stacks();
    assert_eq!(stacks.text("/api"), "api GET /api ");
    assert_eq!(stacks.text("/api/"), "api GET /api /");
    assert_eq!(stacks.text("/api/users/7"), "api GET /api /users/7");
    assert_eq!(stacks.text("/api?q=1"), "api GET /api ");
}

#[test]
fn the_longest_prefix_wins_on_segment_boundaries() {
    let stacks = stacks();
    assert_eq!(stacks.text("/api/v2/users"), "v2 GET /api/v2 /users");
    assert_eq!(stacks.text("/api/v2"), "v2 GET /api/v2 ");
    assert_eq!(stacks.text("/api/v20"), "api GET /api /v20");
    assert_eq!(
        stacks.status(|| TestRequest::get("/apix")),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stacks.status(|| TestRequest::get("/")),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stacks.status(|| TestRequest::get("//api")),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn segments_are_decoded_once_and_encoded_slashes_stay_inside() {
    let stacks = stacks();
    // The same decoded segment as the mount's.
    assert_eq!(stacks.text("/ap%69/x"), "api GET /api /x");
    assert_eq!(stacks.text("/files/a%20b/c"), "spaced GET /files/a b /c");
    // An encoded slash is not a boundary: one segment, "api/v2".
    assert_eq!(
        stacks.status(|| TestRequest::get("/api%2Fv2")),
        StatusCode::NOT_FOUND
    );
    assert_eq!(stacks.text("/api/v2%2Fusers"), "api GET /api /v2/users");
    // Decoded once: %2569 is "%69", not "i".
    assert_eq!(
        stacks.status(|| TestRequest::get("/ap%2569")),
        StatusCode::NOT_FOUND
    );
    // Dot segments are not normalised: they go below the prefix as sent.
    assert_eq!(stacks.text("/api/../x"), "api GET /api /../x");
}

#[test]
fn methods_dispatch_with_automatic_head_and_405() {
    let stacks = stacks();
    let put = stacks.run(|| TestRequest::put("/api/v2/x", "body"));
    put.assert_ok_and_valid();
    assert_eq!(put.text(), "v2-put PUT /api/v2 /x");
    // HEAD goes to the first GET mount, and the application sees HEAD.
    let head = stacks.run(|| TestRequest::head("/api/v2/x"));
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.text(), "");
    assert_eq!(head.header("content-length"), Some("18")); // "v2 HEAD /api/v2 /x"
    // A mount naming HEAD itself goes before a GET mount's automatic HEAD.
    let text = |r: &TestResponse| r.header("content-length").map(str::to_owned);
    let explicit = stacks.run(|| TestRequest::head("/only-head"));
    assert_eq!(text(&explicit).as_deref(), Some("26")); // "only-head HEAD /only-head "
    assert_eq!(stacks.text("/only-head"), "only-head GET /only-head ");
    // Nothing at the longest prefix allows DELETE: 405, not the shorter /api.
    let delete = stacks.run(|| TestRequest::new(Method::DELETE, "/api/v2/x"));
    assert_eq!(delete.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(delete.header(ALLOW), Some("GET, PUT, HEAD"));
    assert_eq!(delete.text(), "method not allowed\n");
    let head_405 = stacks.run(|| TestRequest::new(Method::OPTIONS, "/only-head"));
    assert_eq!(head_405.header(ALLOW), Some("HEAD, GET"));
    // A mount with no methods takes every method, unknown ones included.
    let odd = Method::from_bytes(b"PURGE").unwrap();
    let purged = stacks.run(|| TestRequest::new(odd.clone(), "/api/x"));
    assert_eq!(purged.text(), "api PURGE /api /x");
}

#[test]
fn hosts_match_without_case_and_port() {
    let stacks = stacks();
    let to = |host: &'static str| {
        move || TestRequest::get("/x").header(HOST, HeaderValue::from_static(host))
    };
    assert_eq!(stacks.run(to("admin.example.com")).text(), "admin GET  /x");
    assert_eq!(
        stacks.run(to("ADMIN.example.COM:8080")).text(),
        "admin GET  /x"
    );
    assert_eq!(stacks.status(to("example.com")), StatusCode::NOT_FOUND);
    assert_eq!(stacks.status(to("[::1]:80")), StatusCode::NOT_FOUND);
    // A longer prefix beats a host-specific root.
    let api = stacks.run(|| {
        TestRequest::get("/api/x").header(HOST, HeaderValue::from_static("admin.example.com"))
    });
    assert_eq!(api.text(), "api GET /api /x");
}

#[test]
fn a_server_mount_point_stays_in_front() {
    let stacks = stacks();
    let mounted = stacks.run(|| TestRequest::get("/mnt/api/x").script_name("/mnt"));
    assert_eq!(mounted.text(), "api GET /mnt/api /x");
    let encoded = stacks.run(|| TestRequest::get("/m%6Et/api/x").script_name("/mnt"));
    assert_eq!(encoded.text(), "api GET /mnt/api /x");
}

#[test]
fn asterisk_options_and_an_empty_router() {
    let stacks = stacks();
    assert_eq!(
        stacks.status(|| TestRequest::new(Method::OPTIONS, "*")),
        StatusCode::NOT_FOUND
    );
    let root = Router::new().mount(Mount::at("/").unwrap(), show("root"));
    let response = TestClient::new(root.clone())
        .request(TestRequest::new(Method::OPTIONS, "*"))
        .unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "root OPTIONS  *");
    let empty: Router<Show> = Router::new();
    let response = AsyncTestClient::new(empty).get("/").unwrap();
    response.assert_valid();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.text(), "not found\n");
}

#[test]
fn bad_mounts_are_refused() {
    assert!(matches!(
        Mount::at("api"),
        Err(RouteError::NotAbsolute { .. })
    ));
    assert!(matches!(Mount::at(""), Err(RouteError::NotAbsolute { .. })));
    for bad in ["//", "/a//b", "/a/./b", "/a/..", "/.."] {
        assert!(
            matches!(Mount::at(bad), Err(RouteError::BadSegment { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        Mount::at("/").unwrap().host(""),
        Err(RouteError::BadHost { .. })
    ));
    assert!(matches!(
        Mount::at("/").unwrap().host("a\nb"),
        Err(RouteError::BadHost { .. })
    ));
}

#[test]
fn hints_are_the_most_demanding_of_the_mounted() {
    let calm = Hints::default()
        .with_input(InputUse::None)
        .with_may_block(false);
    let router = Router::new()
        .mount(Mount::at("/a").unwrap(), Show("a", calm))
        .mount(
            Mount::at("/b").unwrap(),
            Show("b", calm.with_input(InputUse::Whole)),
        );
    assert_eq!(
        Application::hints(&router),
        calm.with_input(InputUse::Whole)
    );
    let router = router.mount(Mount::at("/c").unwrap(), Show("c", Hints::default()));
    assert_eq!(Application::hints(&router), Hints::default());
    let none: Router<Show> = Router::new();
    assert!(Application::hints(&none).can_run_inline());
}

#[test]
fn boxed_applications_of_different_types_share_a_router() {
    let inner = Reports::new(Policy::Collect);
    let parts = rgi::from_fn(|_e, start: &mut StartResponse<'_>| {
        start.start(text_head(None))?;
        Ok(rgi::from_iter(["two ", "parts"]))
    });
    let router = Router::new()
        .mount(
            Mount::at("/show").unwrap(),
            BoxApplication::new(Validator::new(show("boxed"), inner.clone())),
        )
        .mount(
            Mount::at("/parts").unwrap(),
            BoxApplication::new(Validator::new(parts, inner.clone())),
        );
    let client = TestClient::new(router);
    client.get("/show/x").unwrap().assert_ok_and_valid();
    assert_eq!(client.get("/show/x").unwrap().text(), "boxed GET /show /x");
    assert_eq!(client.get("/parts").unwrap().text(), "two parts");
    assert!(inner.take().is_empty());

    let later = rgi_async::from_fn(|_e, start: &mut StartResponse<'_>| {
        start.start(text_head(Some(5)))?;
        Ok(String::from("later"))
    });
    let router = Router::new()
        .mount(
            Mount::at("/show").unwrap(),
            BoxAsyncApplication::new(AsyncValidator::new(show("boxed"), inner.clone())),
        )
        .mount(
            Mount::at("/later").unwrap(),
            BoxAsyncApplication::new(AsyncValidator::new(later, inner.clone())),
        );
    let client = AsyncTestClient::new(router);
    client.get("/later").unwrap().assert_ok_and_valid();
    assert_eq!(client.get("/show").unwrap().text(), "boxed GET /show ");
    assert_eq!(
        client.get("/nowhere").unwrap().status,
        StatusCode::NOT_FOUND
    );
    assert!(inner.take().is_empty());
}
