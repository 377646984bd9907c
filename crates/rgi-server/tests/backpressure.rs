//! Output never outruns a slow client: the response body is pulled only as
//! the connection (HTTP/1.1) or the stream's window (HTTP/2) takes it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Version};
use http_body_util::BodyExt;
use rgi_server::{Http2Settings, Limits, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHUNKS: usize = 1024; // 64 MiB in all

// One test per binary process would be cleaner for the shared counter; the
// two cases run one after the other in this one test instead.
#[test]
fn a_client_that_does_not_read_stops_the_pulling() {
    let server = start(
        Server::builder()
            .limits(Limits::default())
            .http2(Http2Settings::default().initial_stream_window(256 * 1024)),
    );
    let address = addr(&server);

    // HTTP/1.1: the client reads nothing for a while.
    let pulled_while_stalled = run(async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(
                format!("GET /lazy/{CHUNKS} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pulled = PRODUCED.load(Ordering::Relaxed);
        // Then it reads everything: nothing was lost to the pause.
        let mut total = 0_usize;
        let mut buffer = vec![0_u8; 1 << 16];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        assert!(total > CHUNKS * 65_536, "{total}");
        pulled
    });
    // Socket buffers on loopback hold a few MiB; far less than 64 MiB.
    assert!(
        pulled_while_stalled < 16 * 1024 * 1024,
        "{pulled_while_stalled}"
    );
    assert_eq!(PRODUCED.load(Ordering::Relaxed), (CHUNKS * 65_536) as u64);

    // HTTP/2: the client's stream window is 256 KiB and it reads nothing, so
    // at most that window, the server's send buffer (64 KiB) and the chunk
    // in hand are pulled.
    PRODUCED.store(0, Ordering::Relaxed);
    let pulled_while_stalled = run(async {
        let stream = TcpStream::connect(address).await.expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .initial_stream_window_size(256 * 1024)
                .initial_connection_window_size(1024 * 1024)
                .handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        tokio::spawn(connection);
        let request = Request::get(format!("http://a/lazy/{CHUNKS}"))
            .version(Version::HTTP_2)
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.expect("response");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pulled = PRODUCED.load(Ordering::Relaxed);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body.len(), CHUNKS * 65_536);
        pulled
    });
    assert!(pulled_while_stalled > 0);
    assert!(
        pulled_while_stalled <= (256 + 64 + 64) * 1024,
        "{pulled_while_stalled}"
    );
}
