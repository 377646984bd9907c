//! HTTP/2 with prior knowledge (h2c) over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode, Version};
use rgi_server::{Http2Settings, Limits, Server};

fn h2_request(path: &str, body: &'static [u8]) -> Request<http_body_util::Full<Bytes>> {
    Request::post(format!("http://test.example{path}"))
        .version(Version::HTTP_2)
        .body(http_body_util::Full::new(Bytes::from_static(body)))
        .expect("request")
}

#[test]
fn h2c_prior_knowledge_serves_concurrent_streams_on_one_connection() {
    let server = start(Server::builder());
    let address = addr(&server);
    run(async {
        let sender = h2_client(address).await;
        let mut streams = Vec::new();
        for _ in 0..20 {
            let mut sender = sender.clone();
            streams.push(tokio::spawn(async move {
                let response = sender
                    .send_request(h2_request("/version", b""))
                    .await
                    .expect("response");
                assert_eq!(response.status(), StatusCode::OK);
                assert_eq!(response.version(), Version::HTTP_2);
                body_text(response).await
            }));
        }
        for stream in streams {
            assert_eq!(stream.await.expect("stream"), "HTTP/2.0");
        }
        let mut sender = sender.clone();
        let response = sender
            .send_request(h2_request("/echo", b"a body sent in DATA frames"))
            .await
            .expect("echo");
        assert_eq!(body_text(response).await, "a body sent in DATA frames");
    });
    let stats = server.stats();
    assert_eq!(stats.accepted_connections, 1);
    assert_eq!(stats.requests, 21);
}

#[test]
fn h2_max_requests_per_connection_sends_goaway() {
    let server =
        start(Server::builder().limits(Limits::default().max_requests_per_connection(Some(3))));
    let address = addr(&server);
    run(async {
        let mut sender = h2_client(address).await;
        for _ in 0..3 {
            let response = sender
                .send_request(h2_request("/", b""))
                .await
                .expect("response");
            assert_eq!(body_text(response).await, "hello");
        }
        // After GOAWAY the client's connection refuses new streams.
        assert!(eventually(|| sender.is_closed()).await);
    });
}

#[test]
fn h2_idle_connection_is_closed() {
    let server = start(
        Server::builder().http2(Http2Settings::default().idle_timeout(Duration::from_millis(300))),
    );
    let address = addr(&server);
    let handle = server.shutdown_handle();
    run(async {
        let mut sender = h2_client(address).await;
        let response = sender
            .send_request(h2_request("/", b""))
            .await
            .expect("response");
        assert_eq!(body_text(response).await, "hello");
        assert_eq!(handle.stats().open_connections, 1);
        assert!(eventually(|| sender.is_closed()).await);
        assert!(eventually(|| handle.stats().open_connections == 0).await);
    });
}
