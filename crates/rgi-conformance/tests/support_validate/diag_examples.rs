//! Broken examples for the test clients' diagnosis by replay (issue 11
//! §2): applications that fail a request before their head because they
//! depend on a circumstance the spec lets a server leave out;
//! `tests/client_diagnose.rs` pairs each with a clean example.

use bytes::Bytes;
use http::StatusCode;
use rgi::{Environ, ResponseHead};
use rgi_async::Capabilities;
use rgi_conformance::Violation;
use rgi_conformance::client::{AsyncTestClient, TestClient, TestRequest};

/// Refuses a chunked upload because it wants the length first.
pub(crate) fn content_length_assumed() -> Vec<Violation> {
    let client = TestClient::new(rgi::from_fn(|environ: Environ, start| {
        let length = environ.content_length().ok_or("Content-Length required")?;
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(length.to_string()))
    }));
    client
        .request(TestRequest::post("/", "").chunked(["ab", "cd"]))
        .expect("the client runs")
        .violations
}

/// Fails on an asynchronous server without readiness instead of falling
/// back to offload or answering a clear error.
pub(crate) fn capability_assumed() -> Vec<Violation> {
    let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, start| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        capabilities.readiness().ok_or("readiness required")?;
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from_static(b"ready"))
    }))
    .without_readiness();
    client.get("/").expect("the client runs").violations
}

/// Fails on a request without the extended-CONNECT extension.
pub(crate) fn extension_assumed() -> Vec<Violation> {
    let client = TestClient::new(rgi::from_fn(|environ: Environ, start| {
        let protocol = environ
            .extension::<rgi::ConnectProtocol>()
            .ok_or("extended CONNECT required")?
            .as_str()
            .to_owned();
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(protocol))
    }));
    client.get("/").expect("the client runs").violations
}

/// Fails on a server that declares no early hints instead of leaving them
/// out.
pub(crate) fn feature_assumed() -> Vec<Violation> {
    let client = TestClient::new(rgi::from_fn(|environ: Environ, start| {
        if !environ.features().early_hints() {
            return Err("early hints required".into());
        }
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from_static(b"hinted"))
    }));
    client.get("/").expect("the client runs").violations
}
