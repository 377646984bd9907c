//! Arbitrary bytes as everything a client sends on one HTTP/1.1
//! connection: hyper's server connection with the head limits spec/rgi.md
//! §12.2 recommends, `rgi_server::strict` judging every head, and an
//! application that reads each body and answers. Nothing may panic, the
//! connection must end once the bytes run out (the clock is paused, so
//! every timer fires at once), and no response may follow a refusal: a
//! 4xx or 5xx is the last thing the connection sends (`RGI-PROTO-10`),
//! which is what "no smuggled second request" looks like from outside.

#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use libfuzzer_sys::fuzz_target;
use rgi_server::strict::{RequestRules, check_request, present_host};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

const BODY_LIMIT: usize = 1 << 20;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap_or_else(|error| panic!("no runtime: {error}"))
    })
}

fn closing(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

async fn application(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    if let Err(rejection) = check_request(&parts, &RequestRules::new()) {
        return rejection.response(Full::new(Bytes::new()));
    }
    present_host(&mut parts);
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(body) => Response::new(Full::new(Bytes::from(format!(
            "served {} bytes",
            body.to_bytes().len()
        )))),
        Err(_) => closing(StatusCode::BAD_REQUEST),
    }
}

/// The statuses of the responses in `output`, in order. A response starts
/// with `HTTP/1.1 ` and three digits; nothing else the connection sends
/// can contain that text, since the application's bodies never do.
fn statuses(output: &[u8]) -> Vec<u16> {
    let marker = b"HTTP/1.1 ";
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = output[at..]
        .windows(marker.len())
        .position(|window| window == marker)
    {
        let start = at + offset + marker.len();
        if let Some(digits) = output.get(start..start + 3) {
            if let Ok(status) = std::str::from_utf8(digits).unwrap_or("x").parse() {
                found.push(status);
            }
        }
        at = start;
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let output = runtime().block_on(async {
        let (client, server) = tokio::io::duplex(16 * 1024);
        let connection = async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .max_headers(100)
                .max_buf_size(8 * 1024 + 64 * 1024);
            let service = hyper::service::service_fn(|request| async move {
                Ok::<_, Infallible>(application(request).await)
            });
            let _ = builder
                .serve_connection(TokioIo::new(server), service)
                .await;
        };
        let (mut reader, mut writer) = tokio::io::split(client);
        let send = async move {
            let _ = writer.write_all(data).await;
            let _ = writer.shutdown().await;
        };
        let receive = async move {
            let mut output = Vec::new();
            let _ = reader.read_to_end(&mut output).await;
            output
        };
        let everything = async move { tokio::join!(connection, send, receive).2 };
        // Paused time makes this an hour of virtual time: a connection
        // still open after it would have no limit at all.
        tokio::time::timeout(Duration::from_secs(3600), everything).await
    });
    let Ok(output) = output else {
        panic!("the connection outlived every timeout");
    };
    let statuses = statuses(&output);
    if let Some(refusal) = statuses.iter().position(|&status| status >= 400) {
        assert_eq!(
            refusal + 1,
            statuses.len(),
            "responses after a refusal: {statuses:?}"
        );
    }
});
