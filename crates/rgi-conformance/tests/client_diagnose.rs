//! Diagnosis by replay in the test clients (issue 11 §2): each diagnosis's
//! broken example names its clause, and applications that are correct, or
//! that fail for another reason, get no diagnosis.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use rgi::{Environ, ResponseHead};
use rgi_async::Capabilities;
use rgi_conformance::client::{AsyncTestClient, Ending, TestClient, TestRequest};
use rgi_conformance::{Side, Violation};

fn names(violations: &[Violation], clause: &str) -> bool {
    violations
        .iter()
        .any(|v| v.clause() == clause && v.side() == Side::Application)
}

fn diagnoses(violations: &[Violation]) -> Vec<&'static str> {
    violations
        .iter()
        .map(Violation::clause)
        .filter(|clause| {
            [
                "RGI-INPUT-10",
                "RGIA-CAP-6",
                "RGI-EXT-3",
                "RGI-FEAT-2",
                "RGI-HDR-7",
                "RGIA-OFFLOAD-11",
            ]
            .contains(clause)
        })
        .collect()
}

fn ok() -> ResponseHead {
    ResponseHead::new(StatusCode::OK).with_header(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    )
}

// ---- RGI-INPUT-10: a known content_length() assumed ----

fn needs_length() -> impl rgi::Application {
    rgi::from_fn(|environ: Environ, start| {
        let length = environ.content_length().ok_or("Content-Length required")?;
        start.start(ok())?;
        Ok(Bytes::from(length.to_string()))
    })
}

#[test]
fn a_chunked_body_refused_for_want_of_a_length_is_diagnosed() {
    let response = TestClient::new(needs_length())
        .request(TestRequest::post("/", "").chunked(["ab", "cd"]))
        .unwrap();
    // The original response is what the test sees; only the diagnosis is added.
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(response.ending, Ending::FailedBeforeHead { .. }));
    assert!(
        names(&response.violations, "RGI-INPUT-10"),
        "{:?}",
        response.violations
    );
}

#[test]
fn the_same_application_with_a_declared_length_is_clean() {
    let response = TestClient::new(needs_length()).post("/", "abcd").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "4");
}

#[test]
fn the_asynchronous_client_diagnoses_a_length_assumed_too() {
    let app = rgi_async::from_fn(|environ: Environ, start| {
        let length = environ.content_length().ok_or("Content-Length required")?;
        start.start(ok())?;
        Ok(Bytes::from(length.to_string()))
    });
    let response = AsyncTestClient::new(app)
        .request(TestRequest::post("/", "").chunked(["ab", "cd"]))
        .unwrap();
    assert!(
        names(&response.violations, "RGI-INPUT-10"),
        "{:?}",
        response.violations
    );
}

// ---- RGIA-CAP-6: an optional capability assumed ----

#[test]
fn a_synchronous_application_that_needs_capabilities_is_diagnosed() {
    let app = rgi::from_fn(|environ: Environ, start| {
        let capabilities = Capabilities::of(&environ).ok_or("asynchronous server required")?;
        let _offload = capabilities.offload();
        start.start(ok())?;
        Ok(Bytes::from_static(b"offloaded"))
    });
    let response = TestClient::new(app).get("/").unwrap();
    assert!(
        names(&response.violations, "RGIA-CAP-6"),
        "{:?}",
        response.violations
    );
}

#[test]
fn a_synchronous_application_that_degrades_without_capabilities_is_clean() {
    let app = rgi::from_fn(|environ: Environ, start| {
        let how = if Capabilities::of(&environ).is_some() {
            "offloaded"
        } else {
            "inline"
        };
        start.start(ok())?;
        Ok(Bytes::from(how))
    });
    let response = TestClient::new(app).get("/").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "inline");
}

fn needs_readiness() -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(|environ: Environ, start| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        capabilities.readiness().ok_or("readiness required")?;
        start.start(ok())?;
        Ok(Bytes::from_static(b"ready"))
    })
}

#[test]
fn an_application_that_needs_readiness_is_diagnosed_when_it_is_absent() {
    let response = AsyncTestClient::new(needs_readiness())
        .without_readiness()
        .get("/")
        .unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        names(&response.violations, "RGIA-CAP-6"),
        "{:?}",
        response.violations
    );
}

#[test]
fn an_application_that_needs_readiness_is_clean_where_it_is_offered() {
    let client = AsyncTestClient::new(needs_readiness());
    if client.readiness_error().is_some() {
        return; // no poller on this platform: nothing to compare with
    }
    client.get("/").unwrap().assert_ok_and_valid();
}

#[test]
fn an_application_that_panics_without_an_upgrade_is_diagnosed() {
    let app = rgi_async::from_fn(|environ: Environ, _start| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        let upgrade = capabilities.upgrade().expect("a websocket endpoint");
        let _stream = upgrade.accept(HeaderMap::new())?;
        Ok(rgi::Empty)
    });
    let response = AsyncTestClient::new(app).get("/ws").unwrap();
    assert!(
        names(&response.violations, "RGIA-CAP-6"),
        "{:?}",
        response.violations
    );
}

#[test]
fn an_application_that_refuses_a_plain_request_clearly_is_clean() {
    let app = rgi_async::from_fn(|environ: Environ, start| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        if capabilities.upgrade().is_none() {
            start.start(ResponseHead::new(StatusCode::UPGRADE_REQUIRED).with_header(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            ))?;
            return Ok(Bytes::from_static(b"upgrade required"));
        }
        start.start(ok())?;
        Ok(Bytes::new())
    });
    let response = AsyncTestClient::new(app).get("/ws").unwrap();
    assert_eq!(response.status, StatusCode::UPGRADE_REQUIRED);
    assert!(
        diagnoses(&response.violations).is_empty(),
        "{:?}",
        response.violations
    );
}

// ---- RGI-EXT-3: an optional extension assumed ----

#[test]
fn an_application_that_needs_extended_connect_is_diagnosed() {
    let app = rgi::from_fn(|environ: Environ, start| {
        let protocol = environ
            .extension::<rgi::ConnectProtocol>()
            .ok_or("extended CONNECT required")?
            .as_str()
            .to_owned();
        start.start(ok())?;
        Ok(Bytes::from(protocol))
    });
    let response = TestClient::new(app).get("/").unwrap();
    assert!(
        names(&response.violations, "RGI-EXT-3"),
        "{:?}",
        response.violations
    );
}

#[test]
fn an_application_that_checks_for_the_extension_is_clean() {
    let app = rgi::from_fn(|environ: Environ, start| {
        let protocol = environ
            .extension::<rgi::ConnectProtocol>()
            .map_or("none", rgi::ConnectProtocol::as_str)
            .to_owned();
        start.start(ok())?;
        Ok(Bytes::from(protocol))
    });
    let response = TestClient::new(app).get("/").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "none");
}

// ---- RGI-FEAT-2: an optional feature assumed ----

/// Fails unless the server declares early hints.
fn needs_early_hints() -> impl rgi::Application {
    rgi::from_fn(|environ: Environ, start| {
        if !environ.features().early_hints() {
            return Err("this page needs early hints".into());
        }
        start.start(ok())?;
        Ok(Bytes::from_static(b"hinted"))
    })
}

#[test]
fn an_application_that_needs_early_hints_is_diagnosed() {
    let response = TestClient::new(needs_early_hints()).get("/").unwrap();
    assert!(matches!(response.ending, Ending::FailedBeforeHead { .. }));
    assert!(
        names(&response.violations, "RGI-FEAT-2"),
        "{:?}",
        response.violations
    );
    let response = AsyncTestClient::new(rgi_async::Threaded::new(needs_early_hints()))
        .get("/")
        .unwrap();
    assert!(
        names(&response.violations, "RGI-FEAT-2"),
        "{:?}",
        response.violations
    );
}

#[test]
fn an_application_that_degrades_without_features_is_clean() {
    let app = rgi::from_fn(|environ: Environ, start| {
        if environ.features().early_hints() {
            let mut hints = HeaderMap::new();
            hints.insert(
                http::header::LINK,
                http::HeaderValue::from_static("</a.css>; rel=preload"),
            );
            start.send_early_hints(hints)?;
        }
        start.start(ok())?;
        Ok(Bytes::from_static(b"page"))
    });
    let response = TestClient::new(app).get("/").unwrap();
    response.assert_ok_and_valid();
    assert!(diagnoses(&response.violations).is_empty());
}

// ---- no diagnosis where none is due ----

#[test]
fn an_application_that_fails_for_another_reason_gets_no_diagnosis() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = rgi::from_fn(
        move |_environ: Environ, _start| -> Result<Bytes, rgi::BoxError> {
            counted.fetch_add(1, Ordering::SeqCst);
            Err("the database is down".into())
        },
    );
    let response = TestClient::new(app)
        .request(TestRequest::post("/", "").chunked(["ab", "cd"]))
        .unwrap();
    assert!(matches!(response.ending, Ending::FailedBeforeHead { .. }));
    assert!(
        diagnoses(&response.violations).is_empty(),
        "{:?}",
        response.violations
    );
    // Replayed, but a bounded number of times: once per circumstance.
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[test]
fn an_asynchronous_application_that_fails_for_another_reason_gets_no_diagnosis() {
    let app = rgi_async::from_fn(
        |_environ: Environ, _start| -> Result<Bytes, rgi::BoxError> {
            Err("the database is down".into())
        },
    );
    let response = AsyncTestClient::new(app)
        .without_readiness()
        .without_after_response()
        .request(TestRequest::post("/", "").chunked(["ab", "cd"]))
        .unwrap();
    assert!(
        diagnoses(&response.violations).is_empty(),
        "{:?}",
        response.violations
    );
}

#[test]
fn a_successful_application_is_called_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = rgi::from_fn(move |_environ: Environ, start| {
        counted.fetch_add(1, Ordering::SeqCst);
        start.start(ok())?;
        Ok(Bytes::from_static(b"fine"))
    });
    TestClient::new(app)
        .request(TestRequest::post("/", "").chunked(["ab"]))
        .unwrap()
        .assert_ok_and_valid();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn diagnosis_can_be_turned_off() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = rgi::from_fn(move |environ: Environ, start| {
        counted.fetch_add(1, Ordering::SeqCst);
        let length = environ.content_length().ok_or("Content-Length required")?;
        start.start(ok())?;
        Ok(Bytes::from(length.to_string()))
    });
    let response = TestClient::new(app)
        .with_diagnosis(false)
        .request(TestRequest::post("/", "").chunked(["ab", "cd"]))
        .unwrap();
    assert!(
        diagnoses(&response.violations).is_empty(),
        "{:?}",
        response.violations
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let response = AsyncTestClient::new(needs_readiness())
        .without_readiness()
        .with_diagnosis(false)
        .get("/")
        .unwrap();
    assert!(
        diagnoses(&response.violations).is_empty(),
        "{:?}",
        response.violations
    );
}

// ---- RGI-HDR-7: connection-specific request fields relied on ----

fn closing_request() -> TestRequest {
    TestRequest::get("/").header(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close, x-hop"),
    )
}

#[test]
fn an_answer_that_changes_without_the_connection_field_is_diagnosed() {
    let app = rgi::from_fn(|environ: Environ, start| {
        let hop = environ.headers().contains_key("x-hop");
        start.start(ok())?;
        Ok(Bytes::from_static(if hop { b"hop" } else { b"plain" }))
    });
    let response = TestClient::new(app)
        .request(closing_request().header(
            http::HeaderName::from_static("x-hop"),
            http::HeaderValue::from_static("1"),
        ))
        .unwrap();
    // The original answer stands; the diagnosis is added.
    assert_eq!(response.body, "hop");
    assert!(
        names(&response.violations, "RGI-HDR-7"),
        "{:?}",
        response.violations
    );
}

#[test]
fn the_asynchronous_client_diagnoses_a_keep_alive_field_relied_on() {
    let app = rgi_async::from_fn(|environ: Environ, start| {
        let status = if environ.headers().contains_key("keep-alive") {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        start.start(ResponseHead::new(status))?;
        Ok(Bytes::new())
    });
    let response = AsyncTestClient::new(app)
        .request(TestRequest::get("/").header(
            http::HeaderName::from_static("keep-alive"),
            http::HeaderValue::from_static("timeout=5"),
        ))
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        names(&response.violations, "RGI-HDR-7"),
        "{:?}",
        response.violations
    );
}

#[test]
fn an_application_that_reads_the_connection_field_but_answers_alike_is_clean() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = rgi::from_fn(move |environ: Environ, start| {
        counted.fetch_add(1, Ordering::SeqCst);
        let _seen = environ.headers().get(http::header::CONNECTION);
        start.start(ok())?;
        Ok(Bytes::from_static(b"same"))
    });
    TestClient::new(app)
        .request(closing_request())
        .unwrap()
        .assert_ok_and_valid();
    // The original, the unchanged replay and the replay without the fields.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn an_answer_that_changes_on_every_call_is_not_judged() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = rgi::from_fn(move |_environ: Environ, start| {
        let call = counted.fetch_add(1, Ordering::SeqCst);
        start.start(ok())?;
        Ok(Bytes::from(format!("visit {call}")))
    });
    TestClient::new(app)
        .request(closing_request())
        .unwrap()
        .assert_ok_and_valid();
}

#[test]
fn an_upgrade_request_is_not_replayed_without_its_fields() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = rgi::from_fn(move |environ: Environ, start| {
        counted.fetch_add(1, Ordering::SeqCst);
        let status = if environ.headers().contains_key(http::header::UPGRADE) {
            StatusCode::UPGRADE_REQUIRED
        } else {
            StatusCode::OK
        };
        start.start(ResponseHead::new(status))?;
        Ok(Bytes::new())
    });
    let response = TestClient::new(app)
        .request(
            TestRequest::get("/")
                .header(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("upgrade"),
                )
                .header(
                    http::header::UPGRADE,
                    http::HeaderValue::from_static("websocket"),
                ),
        )
        .unwrap();
    assert_eq!(response.status, StatusCode::UPGRADE_REQUIRED);
    assert!(!names(&response.violations, "RGI-HDR-7"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn without_diagnosis_a_connection_field_costs_no_replay() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = rgi::from_fn(move |environ: Environ, start| {
        counted.fetch_add(1, Ordering::SeqCst);
        let closing = environ.headers().contains_key(http::header::CONNECTION);
        start.start(ok())?;
        Ok(Bytes::from_static(if closing { b"bye" } else { b"hi" }))
    });
    let response = TestClient::new(app)
        .with_diagnosis(false)
        .request(closing_request())
        .unwrap();
    assert!(!names(&response.violations, "RGI-HDR-7"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---- RGIA-OFFLOAD-11: one offload job waiting for another ----

/// Two jobs: the first waits (at most `wait`) for what the second sends,
/// or, when `independent`, each computes its own part.
fn two_jobs(independent: bool) -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        let (sender, receiver) = std::sync::mpsc::channel::<u32>();
        let first = if independent {
            capabilities.offload().run(|| 40)
        } else {
            capabilities.offload().run(move || {
                receiver
                    .recv_timeout(std::time::Duration::from_millis(300))
                    .unwrap_or(0)
            })
        };
        // Kept alive with the body: dropping it would cancel the job.
        let second = capabilities.offload().run(move || {
            let _ = sender.send(42);
        });
        start.start(ok())?;
        Ok(AwaitFirst(Some(first), second))
    })
}

struct AwaitFirst(
    Option<rgi_async::OffloadFuture<u32>>,
    #[allow(dead_code)] rgi_async::OffloadFuture<()>,
);

impl rgi_async::AsyncBody for AwaitFirst {
    fn poll_step(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        _start: &mut rgi::StartResponse<'_>,
    ) -> std::task::Poll<Option<Result<rgi_async::Step, rgi::BoxError>>> {
        use std::future::Future;
        let Some(job) = self.0.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let value = std::task::ready!(std::pin::Pin::new(job).poll(cx));
        self.0 = None;
        std::task::Poll::Ready(Some(
            value
                .map(|value| rgi_async::Step::Chunk(Bytes::from(value.to_string())))
                .map_err(rgi::BoxError::from),
        ))
    }
}

#[test]
fn a_job_waiting_for_another_is_diagnosed_by_running_them_one_at_a_time() {
    let response = AsyncTestClient::new(two_jobs(false)).get("/").unwrap();
    // Side by side, the second job's answer reached the first.
    assert_eq!(response.body, "42");
    assert_eq!(response.offload_jobs, 2);
    assert!(
        names(&response.violations, "RGIA-OFFLOAD-11"),
        "{:?}",
        response.violations
    );
}

#[test]
fn independent_jobs_are_clean_when_run_one_at_a_time() {
    let response = AsyncTestClient::new(two_jobs(true)).get("/").unwrap();
    assert_eq!(response.body, "40");
    response.assert_ok_and_valid();
}

#[test]
fn without_diagnosis_two_jobs_cost_no_replay() {
    let response = AsyncTestClient::new(two_jobs(false))
        .with_diagnosis(false)
        .get("/")
        .unwrap();
    assert_eq!(response.body, "42");
    assert!(!names(&response.violations, "RGIA-OFFLOAD-11"));
}
