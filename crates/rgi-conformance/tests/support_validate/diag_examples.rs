//! Broken examples for the test clients' diagnosis by replay (issue 11
//! §2): applications that fail a request before their head because they
//! depend on a circumstance the spec lets a server leave out;
//! `tests/client_diagnose.rs` pairs each with a clean example.

use std::future::Future;

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

/// Answers a request carrying `Connection: close` differently from the
/// same request without it.
pub(crate) fn hop_by_hop_relied_on() -> Vec<Violation> {
    let client = TestClient::new(rgi::from_fn(|environ: Environ, start| {
        let closing = environ
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|value| value == "close");
        start.start(ResponseHead::new(StatusCode::OK).with_header(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        ))?;
        Ok(Bytes::from_static(if closing { b"bye" } else { b"hello" }))
    }));
    client
        .request(TestRequest::get("/").header(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        ))
        .expect("the client runs")
        .violations
}

/// One offload job waits for the result of another: it answers only when
/// both run at once.
pub(crate) fn offload_jobs_interdependent() -> Vec<Violation> {
    let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, start| {
        let capabilities = Capabilities::of(&environ).ok_or("no capabilities")?;
        let (sender, receiver) = std::sync::mpsc::channel::<u32>();
        let consumer = capabilities.offload().run(move || {
            receiver
                .recv_timeout(std::time::Duration::from_millis(300))
                .unwrap_or(0)
        });
        // Kept alive with the body: dropping it would cancel the job.
        let producer = capabilities.offload().run(move || {
            let _ = sender.send(42);
        });
        start.start(ResponseHead::new(StatusCode::OK).with_header(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        ))?;
        Ok(AwaitJob(Some(consumer), producer))
    }));
    client.get("/").expect("the client runs").violations
}

/// A body of one chunk: what an offload job computed.
pub(crate) struct AwaitJob(
    Option<rgi_async::OffloadFuture<u32>>,
    #[allow(dead_code)] rgi_async::OffloadFuture<()>,
);

impl rgi_async::AsyncBody for AwaitJob {
    fn poll_step(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        _start: &mut rgi::StartResponse<'_>,
    ) -> std::task::Poll<Option<Result<rgi_async::Step, rgi::BoxError>>> {
        let Some(job) = self.0.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        match std::pin::Pin::new(job).poll(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(value) => {
                self.0 = None;
                let step = value
                    .map(|value| rgi_async::Step::Chunk(Bytes::from(value.to_string())))
                    .map_err(rgi::BoxError::from);
                std::task::Poll::Ready(Some(step))
            }
        }
    }
}
