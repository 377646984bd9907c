//! Arbitrary bytes as everything an HTTP/2 client sends after the
//! connection preface (h2c with prior knowledge): hyper's HTTP/2 server
//! connection with `rgi_server::strict` judging every request. Nothing may
//! panic, the connection must end once the bytes run out (the clock is
//! paused, so every timer fires at once), and every request that passes the
//! checks must leave them with exactly one `host` entry (`RGI-H2-2`).

#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use libfuzzer_sys::fuzz_target;
use rgi_server::strict::{RequestRules, check_request, present_host};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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

async fn application(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    if let Err(rejection) = check_request(&parts, &RequestRules::new()) {
        assert!(
            !rejection.closes_connection(),
            "HTTP/2 refusals end the stream only"
        );
        return rejection.response(Full::new(Bytes::new()));
    }
    present_host(&mut parts);
    assert_eq!(
        parts.headers.get_all(header::HOST).iter().count(),
        1,
        "an accepted HTTP/2 request without exactly one host: {parts:?}"
    );
    let length = match Limited::new(body, 1 << 20).collect().await {
        Ok(body) => body.to_bytes().len(),
        Err(_) => 0,
    };
    Response::new(Full::new(Bytes::from(format!("served {length} bytes"))))
}

fuzz_target!(|data: &[u8]| {
    let finished = runtime().block_on(async {
        let (client, server) = tokio::io::duplex(16 * 1024);
        let connection = async move {
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .max_concurrent_streams(100)
                .max_header_list_size(64 * 1024);
            let service = hyper::service::service_fn(|request| async move {
                Ok::<_, Infallible>(application(request).await)
            });
            let _ = builder
                .serve_connection(TokioIo::new(server), service)
                .await;
        };
        let (mut reader, mut writer) = tokio::io::split(client);
        let send = async move {
            let _ = writer.write_all(PREFACE).await;
            let _ = writer.write_all(data).await;
            let _ = writer.shutdown().await;
        };
        let receive = async move {
            let mut output = Vec::new();
            let _ = reader.read_to_end(&mut output).await;
        };
        let everything = async move {
            tokio::join!(connection, send, receive);
        };
        tokio::time::timeout(Duration::from_secs(3600), everything).await
    });
    assert!(finished.is_ok(), "the connection outlived every timeout");
});
