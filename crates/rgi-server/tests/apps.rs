//! RGI applications served through `serve_sync` and `serve_async` (the
//! per-request work of rgi-tower behind this server's connections), and the
//! protocol decisions the server takes before any application runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{HeaderValue, StatusCode, header};
use rgi::{Environ, ResponseHead};
use rgi_async::{Capabilities, Responder};
use rgi_server::{Limits, Server};

fn sync_app() -> impl rgi::Application {
    rgi::from_fn(|environ: Environ, start| {
        if environ.uri().path() == "/panic" {
            panic!("the application fails");
        }
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
        )?;
        Ok(rgi::from_iter([format!(
            "sync {} from {}",
            environ.request_url(),
            environ
                .connection()
                .peer_addr()
                .map(ToString::to_string)
                .unwrap_or_default()
        )]))
    })
}

fn async_app() -> impl rgi_async::AsyncApplication {
    rgi_async::from_async_fn(|environ: Environ, response: Responder| async move {
        let capabilities = Capabilities::of(&environ).ok_or("an asynchronous host")?;
        if environ.uri().path() == "/sleep" {
            // The runtime context is declared: tokio's timer works here.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        response.set_status(StatusCode::OK)?;
        response
            .send(Bytes::from(format!(
                "async runtime={:?} readiness={}",
                capabilities.runtime(),
                capabilities.readiness().is_some()
            )))
            .await;
        Ok(())
    })
}

fn start_sync() -> Server {
    Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .serve_sync(sync_app())
        .expect("serve")
}

#[test]
fn sync_application_is_served_with_its_connection_information() {
    let server = start_sync();
    let address = addr(&server);
    run(async {
        let mut sender = h1_client(address).await;
        let response = sender
            .send_request(get("/hello?x=1"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let text = body_text(response).await;
        assert!(
            text.starts_with("sync http://test.example/hello?x=1 from 127.0.0.1:"),
            "{text}"
        );
    });
    assert!(server.pool_stats().is_some());
}

#[test]
fn a_panicking_application_gets_500_and_the_server_goes_on() {
    let server = start_sync();
    let address = addr(&server);
    run(async {
        let mut sender = h1_client(address).await;
        let response = sender.send_request(get("/panic")).await.expect("response");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let _ = body_text(response).await;
        let mut sender = h1_client(address).await;
        let response = sender
            .send_request(get("/"))
            .await
            .expect("after the panic");
        assert_eq!(response.status(), StatusCode::OK);
    });
}

#[test]
fn async_application_gets_the_capabilities_the_server_backs() {
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .serve_async(async_app())
        .expect("serve");
    let address = addr(&server);
    run(async {
        let mut sender = h1_client(address).await;
        let response = sender.send_request(get("/sleep")).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let text = body_text(response).await;
        assert_eq!(text, "async runtime=Some(Tokio) readiness=true");
    });
    server.shutdown();
}

#[test]
fn refused_requests_never_reach_the_application() {
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .limits(Limits::default().max_target_bytes(64))
        .serve_sync(sync_app())
        .expect("serve");
    let address = addr(&server);
    let cases: [(&[u8], &str); 4] = [
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
        (b"GET / HTTP/1.1\r\nhost: a\r\nexpect: something-else\r\n\r\n", "HTTP/1.1 417"),
        (
            b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nhost: a\r\n\r\n",
            "HTTP/1.1 414",
        ),
        (b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n", "HTTP/1.1 400"),
    ];
    for (request, status) in cases {
        // A second request follows on the same connection: it must never
        // be answered, since the connection closes after the refusal.
        let mut bytes = request.to_vec();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n");
        let received = run(raw_exchange(address, &bytes));
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with(status), "{status}: {text}");
        assert!(text.contains("connection: close"), "{text}");
        assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
        assert!(!text.contains("sync "), "{text}");
    }
}

#[test]
fn a_parked_long_poll_hears_the_shutdown_and_answers_in_time() {
    let signal = rgi_tower::caps::Shutdown::new();
    let heard = signal.clone();
    let app = rgi_async::from_async_fn(move |_environ: Environ, response: Responder| {
        let heard = heard.clone();
        async move {
            // Parked for up to a minute, unless the server shuts down.
            let answer = tokio::select! {
                () = heard.triggered() => "shutting down",
                () = tokio::time::sleep(Duration::from_secs(60)) => "timed out",
            };
            response.set_status(StatusCode::OK)?;
            response.send(answer).await;
            Ok(())
        }
    });
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .shutdown_signal(signal)
        .serve_async(app)
        .expect("serve");
    let address = addr(&server);
    let handle = server.shutdown_handle();
    let (text, elapsed) = run(async {
        let mut sender = h1_client(address).await;
        let waiting = tokio::spawn(async move {
            let response = sender.send_request(get("/poll")).await.expect("response");
            body_text(response).await
        });
        assert!(eventually(|| handle.stats().in_flight_requests == 1).await);
        let started = std::time::Instant::now();
        handle.shutdown();
        let text = waiting.await.expect("client");
        handle.stopped().await;
        (text, started.elapsed())
    });
    assert_eq!(text, "shutting down");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}
