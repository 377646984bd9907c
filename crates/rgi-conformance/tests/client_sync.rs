//! The synchronous test client: responses as a conforming server produces
//! them (streaming, lazy start, the failure rules, HEAD), request bodies
//! through the blocking input, typed request errors, and the validator's
//! violations carried by each response.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode, Version};
use rgi::{Body, BoxError, Environ, ResponseHead, StartResponse};
use rgi_conformance::catalogue::Level;
use rgi_conformance::client::{ClientError, Ending, TestClient, TestRequest};

fn text_head(status: StatusCode) -> ResponseHead {
    ResponseHead::new(status).with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

#[test]
fn hello_world_is_a_valid_complete_response() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(text_head(StatusCode::OK))?;
        Ok(Bytes::from_static(b"Hello, world!\n"))
    }));
    let response = client.get("/").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header(CONTENT_TYPE), Some("text/plain"));
    assert_eq!(response.text(), "Hello, world!\n");
    assert_eq!(response.ending, Ending::Complete { body_bytes: 14 });
    assert!(!response.switched);
    assert_eq!(response.after_tasks_ran, 0);
    assert!(response.upgrade.is_none());
}

#[test]
fn a_missing_content_type_is_a_warning_that_assert_valid_accepts() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from_static(b"untyped"))
    }));
    let response = client.get("/").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.clauses(), ["RGI-HEAD-11"]);
    let warning = response.warnings().next().unwrap();
    assert_eq!(warning.level(), Some(Level::Should));
    assert!(warning.to_string().contains("warning, SHOULD"), "{warning}");
    assert_eq!(response.errors().count(), 0);
}

#[test]
#[should_panic(expected = "RGI-START-7")]
fn assert_valid_still_fails_on_a_must() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(text_head(StatusCode::OK))?;
        let _ = start.start(text_head(StatusCode::OK));
        Ok(Bytes::from_static(b"twice"))
    }));
    let response = client.get("/").unwrap();
    assert!(
        response
            .errors()
            .any(|error| error.clause() == "RGI-START-7")
    );
    response.assert_valid();
}

#[test]
fn streamed_chunks_arrive_as_sent_and_empty_chunks_send_nothing() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(text_head(StatusCode::OK))?;
        Ok(rgi::from_iter(["one\n", "", "two\n", "three\n"]))
    }));
    let response = client.get("/stream").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.chunks, ["one\n", "two\n", "three\n"]);
    assert_eq!(response.text(), "one\ntwo\nthree\n");
}

/// Starts the response in its first chunk, with a header that depends on
/// what was computed by then.
struct Lazy {
    started_in_call: bool,
    left: u8,
}

impl Body for Lazy {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if !start.is_started() {
            let seen = if self.started_in_call { "yes" } else { "no" };
            let head = text_head(StatusCode::OK).with_header(
                "x-started-in-call".parse().unwrap(),
                HeaderValue::from_static(seen),
            );
            if let Err(err) = start.start(head) {
                return Some(Err(err.into()));
            }
        }
        let left = self.left.checked_sub(1)?;
        self.left = left;
        Some(Ok(Bytes::from(format!("{left}"))))
    }
}

#[test]
fn a_response_started_lazily_inside_the_body_is_sent() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        Ok(Lazy {
            started_in_call: start.is_started(),
            left: 3,
        })
    }));
    let response = client.get("/lazy").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.header("x-started-in-call"), Some("no"));
    assert_eq!(response.chunks, ["2", "1", "0"]);
}

#[test]
fn an_error_from_call_becomes_a_bare_500() {
    let client = TestClient::new(rgi::from_fn(
        |_environ, _start| -> Result<Bytes, BoxError> { Err("database unreachable".into()) },
    ));
    let response = client.get("/").unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.body.is_empty());
    assert_eq!(response.header(CONTENT_LENGTH), Some("0"));
    assert_eq!(
        response.ending,
        Ending::FailedBeforeHead {
            error: "database unreachable".into()
        }
    );
    // The details stay in the ending, never in what the client received.
    assert!(!response.text().contains("database"));
    // Failing is not breaking a rule.
    response.assert_valid();
}

#[test]
fn a_body_that_fails_before_its_first_byte_has_its_stored_head_replaced_by_500() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(text_head(StatusCode::OK).with_header(
            "x-app".parse().unwrap(),
            HeaderValue::from_static("stored, never sent"),
        ))?;
        Ok(rgi::from_iter(std::iter::once(Bytes::new())).chain_error("template missing"))
    }));
    let response = client.get("/").unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.header("x-app"), None);
    assert!(matches!(
        response.ending,
        Ending::FailedBeforeHead { ref error } if error == "template missing"
    ));
    response.assert_valid();
}

#[test]
fn a_panic_in_the_application_becomes_a_500() {
    let client = TestClient::new(rgi::from_fn(
        |_environ, _start| -> Result<Bytes, BoxError> {
            #[allow(clippy::panic, reason = "the application under test panics on purpose")]
            {
                panic!("index out of bounds")
            }
        },
    ));
    let response = client.get("/").unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        response
            .ending
            .error()
            .is_some_and(|error| error.contains("index out of bounds")),
        "{:?}",
        response.ending
    );
}

#[test]
fn an_application_may_replace_its_own_head_with_an_error_page() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(text_head(StatusCode::OK))?;
        let cause: BoxError = "quota exceeded".into();
        start.replace(text_head(StatusCode::SERVICE_UNAVAILABLE), cause)?;
        Ok(Bytes::from_static(b"try again later"))
    }));
    let response = client.get("/").unwrap();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.text(), "try again later");
    assert!(response.ending.is_complete());
    response.assert_valid();
}

#[test]
fn a_failure_after_the_head_truncates_the_body() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(text_head(StatusCode::OK))?;
        Ok(rgi::from_iter([Bytes::from_static(b"partial")]).chain_error("disk read failed"))
    }));
    let response = client.get("/").unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "partial");
    assert_eq!(
        response.ending,
        Ending::FailedAfterHead {
            error: "disk read failed".into()
        }
    );
    response.assert_valid();
}

/// Parses `a=1&b=2` bodies read from the input.
fn form_app() -> impl rgi::Application {
    rgi::from_fn(|mut environ: Environ, start| {
        let declared = environ.content_length();
        let mut form = String::new();
        environ.input_mut().read_to_string(&mut form)?;
        let name = form
            .split('&')
            .find_map(|pair| pair.strip_prefix("name="))
            .unwrap_or("stranger")
            .to_owned();
        start.start(text_head(StatusCode::OK))?;
        Ok(format!("Hello, {name}! (declared {declared:?})"))
    })
}

#[test]
fn a_form_post_is_read_through_the_input() {
    let client = TestClient::new(form_app());
    let response = client
        .request(TestRequest::post("/form", "lang=rust&name=Ada").header(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        ))
        .unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "Hello, Ada! (declared Some(18))");
}

#[test]
fn a_chunked_upload_has_no_declared_length_and_arrives_whole() {
    let client = TestClient::new(form_app());
    let response = client
        .request(TestRequest::new(Method::POST, "/form").chunked(["name=", "Gr", "ace&x=1"]))
        .unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "Hello, Grace! (declared None)");
}

#[test]
fn the_blocking_input_hands_out_one_piece_per_read() {
    let client = TestClient::new(rgi::from_fn(|mut environ: Environ, start| {
        let mut sizes = Vec::new();
        let mut buf = [0; 64];
        loop {
            let count = environ.input_mut().read(&mut buf)?;
            if count == 0 {
                break;
            }
            sizes.push(count.to_string());
        }
        start.start(text_head(StatusCode::OK))?;
        Ok(sizes.join(","))
    }));
    let response = client
        .request(TestRequest::post("/", "").chunked(["abc", "", "de", "fghij"]))
        .unwrap();
    assert_eq!(response.text(), "3,2,5");
}

#[test]
fn head_sends_the_head_as_produced_and_no_body() {
    let client = TestClient::new(rgi::from_fn(|environ: Environ, start| {
        let method = environ.method().to_string();
        start.start(
            text_head(StatusCode::OK)
                .with_header(CONTENT_LENGTH, HeaderValue::from_static("5"))
                .with_header("x-method".parse().unwrap(), method.parse().unwrap()),
        )?;
        Ok(Bytes::from_static(b"hello"))
    }));
    let response = client.request(TestRequest::head("/")).unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.header("x-method"), Some("HEAD"));
    assert_eq!(response.header(CONTENT_LENGTH), Some("5"));
    assert!(response.body.is_empty());
    assert!(response.chunks.is_empty());
    assert_eq!(response.ending, Ending::Complete { body_bytes: 5 });
}

#[test]
fn the_environ_reflects_the_request_and_offers_no_async_capabilities() {
    let client = TestClient::new(rgi::from_fn(|environ: Environ, start| {
        let seen = format!(
            "{} {} {:?} script={} path={} query={} remote={:?} url={} async={}",
            environ.method(),
            environ.raw_path(),
            environ.version(),
            environ.script_name(),
            environ.path_info(),
            environ.query_string(),
            environ.remote_addr(),
            environ.request_url(),
            rgi_async::Capabilities::of(&environ).is_some(),
        );
        start.start(text_head(StatusCode::OK))?;
        Ok(seen)
    }));
    let request = TestRequest::with_method("PROPFIND", "/dav/a%20b?depth=1")
        .unwrap()
        .version(Version::HTTP_10)
        .script_name("/dav")
        .remote_addr("192.0.2.9:4000".parse().unwrap())
        .server("files.example", 8080);
    let response = client.request(request).unwrap();
    assert_eq!(
        response.text(),
        "PROPFIND /dav/a%20b HTTP/1.0 script=/dav path=/a b query=depth=1 \
         remote=Some(192.0.2.9:4000) url=http://files.example:8080/dav/a%20b?depth=1 async=false"
    );
}

/// Answers with the request's `host` fields, joined.
fn host_app(calls: Arc<AtomicUsize>) -> impl rgi::Application {
    rgi::from_fn(move |environ: Environ, start| {
        calls.fetch_add(1, Ordering::SeqCst);
        let hosts: Vec<&str> = environ
            .headers()
            .get_all(http::header::HOST)
            .iter()
            .map(|host| host.to_str().unwrap_or("?"))
            .collect();
        start.start(text_head(StatusCode::OK))?;
        Ok(hosts.join(" | "))
    })
}

#[test]
fn an_http_1_1_request_carries_the_host_its_client_would_send() {
    let calls = Arc::new(AtomicUsize::new(0));
    let client = TestClient::new(host_app(Arc::clone(&calls)));
    let host = |request: TestRequest| {
        let response = client.request(request).unwrap();
        response.assert_ok_and_valid();
        response.text().into_owned()
    };
    assert_eq!(host(TestRequest::get("/")), "localhost");
    assert_eq!(
        host(TestRequest::get("/").server("api.example", 8080)),
        "api.example:8080"
    );
    assert_eq!(
        host(
            TestRequest::get("/")
                .server("api.example", 443)
                .url_scheme(rgi::UrlScheme::Https)
        ),
        "api.example"
    );
    assert_eq!(
        host(TestRequest::get("http://proxy.example:81/x")),
        "proxy.example:81"
    );
    assert_eq!(
        host(
            TestRequest::get("/")
                .header(http::header::HOST, HeaderValue::from_static("mine.example"))
        ),
        "mine.example"
    );
    // HTTP/1.0 clients need not send one.
    assert_eq!(host(TestRequest::get("/").version(Version::HTTP_10)), "");
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[test]
fn a_request_with_a_bad_host_is_answered_400_without_calling_the_application() {
    let calls = Arc::new(AtomicUsize::new(0));
    let client = TestClient::new(host_app(Arc::clone(&calls)));
    let twice = TestRequest::get("/")
        .header(http::header::HOST, HeaderValue::from_static("a.example"))
        .header(http::header::HOST, HeaderValue::from_static("b.example"));
    let response = client.request(twice).unwrap();
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        matches!(&response.ending, Ending::Rejected { reason } if reason.contains("more than one host")),
        "{:?}",
        response.ending
    );
    assert!(!response.ending.is_complete());

    let invalid = TestRequest::get("/")
        .try_header("host", "user@a.example")
        .unwrap();
    let response = client.request(invalid).unwrap();
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(response.ending.error().unwrap().contains("user@a.example"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let direct = TestRequest::get("/")
        .try_header("host", "")
        .unwrap()
        .into_environ();
    assert!(
        matches!(direct, Err(ClientError::Rejected { .. })),
        "{direct:?}"
    );
}

#[test]
fn extensions_reach_the_application() {
    #[derive(Clone)]
    struct Tenant(&'static str);
    let client = TestClient::new(rgi::from_fn(|environ: Environ, start| {
        let tenant = environ.extensions().get::<Tenant>().map_or("none", |t| t.0);
        start.start(text_head(StatusCode::OK))?;
        Ok(tenant.to_owned())
    }));
    let response = client
        .request(TestRequest::get("/").extension(Tenant("acme")))
        .unwrap();
    assert_eq!(response.text(), "acme");
}

#[test]
fn the_error_stream_is_captured_per_request() {
    let client = TestClient::new(rgi::from_fn(|mut environ: Environ, start| {
        let path = environ.raw_path().to_owned();
        writeln!(environ.errors_mut(), "slow query on {path}")?;
        start.start(StatusCode::NO_CONTENT)?;
        Ok(rgi::Empty)
    }));
    assert_eq!(
        client.get("/a").unwrap().errors_output,
        "slow query on /a\n"
    );
    assert_eq!(
        client.get("/b").unwrap().errors_output,
        "slow query on /b\n"
    );
}

#[test]
fn requests_that_cannot_be_built_are_typed_errors_carrying_the_value() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(StatusCode::NO_CONTENT)?;
        Ok(rgi::Empty)
    }));
    let err = client.get("/a b").unwrap_err();
    assert!(
        matches!(err, ClientError::InvalidUri { ref uri, .. } if uri == "/a b"),
        "{err}"
    );

    let err = TestRequest::get("/")
        .try_header("bad name", "x")
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidHeaderName { ref name } if name == "bad name"));

    let err = TestRequest::with_method("GET POST", "/").unwrap_err();
    assert!(matches!(err, ClientError::InvalidMethod { ref method } if method == "GET POST"));

    let lying = TestRequest::post("/", "abc").header(CONTENT_LENGTH, HeaderValue::from_static("4"));
    let err = client.request(lying).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Environ(rgi::EnvironError::ContentLengthMismatch {
                header: 4,
                framing: Some(3)
            })
        ),
        "{err}"
    );

    let err = client
        .request(TestRequest::get("/apple").script_name("/app"))
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Environ(rgi::EnvironError::ScriptNameMismatch { .. })
    ));
}

#[test]
fn one_client_serves_requests_from_several_threads() {
    let client = TestClient::new(rgi::from_fn(|environ: Environ, start| {
        let path = environ.raw_path().to_owned();
        start.start(text_head(StatusCode::OK))?;
        Ok(path)
    }));
    thread::scope(|scope| {
        for worker in 0..4 {
            let client = &client;
            scope.spawn(move || {
                for request in 0..5 {
                    let path = format!("/w{worker}/r{request}");
                    let response = client.get(&path).unwrap();
                    response.assert_ok_and_valid();
                    assert_eq!(response.text(), path);
                }
            });
        }
    });
}

#[test]
fn a_response_the_application_never_starts_is_a_500() {
    let client = TestClient::new(rgi::from_fn(|_environ, _start| Ok(rgi::Empty)));
    let response = client.get("/").unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(response.ending, Ending::FailedBeforeHead { .. }));
    assert!(response.violated("RGI-START-3"), "{:?}", response.clauses());
}

#[test]
fn starting_twice_is_reported_with_its_clause() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let client = TestClient::new(rgi::from_fn(move |_environ, start| {
        seen.fetch_add(1, Ordering::SeqCst);
        start.start(text_head(StatusCode::OK))?;
        // Breaks RGI-START-7; the server refuses with a typed error, which
        // this application ignores (breaking RGI-START-9 too).
        let _ = start.start(text_head(StatusCode::CREATED));
        Ok(Bytes::from_static(b"first head wins"))
    }));
    let response = client.get("/").unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        response.violated("RGI-START-7"),
        "expected RGI-START-7 among {:?}",
        response.clauses()
    );
    // A later, clean request on the same client carries none of them.
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(StatusCode::NO_CONTENT)?;
        Ok(rgi::Empty)
    }));
    client.get("/").unwrap().assert_valid();
}

#[test]
fn a_short_body_under_a_declared_length_is_reported_with_its_clause() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(
            text_head(StatusCode::OK).with_header(CONTENT_LENGTH, HeaderValue::from_static("10")),
        )?;
        Ok(Bytes::from_static(b"short"))
    }));
    let response = client.get("/").unwrap();
    assert_eq!(response.text(), "short");
    assert!(
        matches!(response.ending, Ending::FailedAfterHead { .. }),
        "{:?}",
        response.ending
    );
    assert!(
        response.violated("RGI-CL-4"),
        "expected RGI-CL-4 among {:?}",
        response.clauses()
    );
}

#[test]
#[should_panic(expected = "the response did not complete")]
fn assert_ok_and_valid_fails_with_the_ending_listed() {
    let client = TestClient::new(rgi::from_fn(|_environ, start| {
        start.start(text_head(StatusCode::OK))?;
        Ok(rgi::from_iter([Bytes::from_static(b"x")]).chain_error("boom"))
    }));
    client.get("/").unwrap().assert_ok_and_valid();
}

/// A body that yields its inner chunks, then fails.
struct ThenFail<B> {
    inner: B,
    error: Option<&'static str>,
}

impl<B: Body> Body for ThenFail<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match self.inner.next_chunk(start) {
            Some(chunk) => Some(chunk),
            None => self.error.take().map(|error| Err(error.into())),
        }
    }
}

trait ChainError: Sized {
    fn chain_error(self, error: &'static str) -> ThenFail<Self>;
}

impl<B: Body> ChainError for B {
    fn chain_error(self, error: &'static str) -> ThenFail<Self> {
        ThenFail {
            inner: self,
            error: Some(error),
        }
    }
}
