//! WebSocket end to end: a tokio-tungstenite client against the echo
//! example's application served by `serve_async`, and the upgraded
//! connection counted until it ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../examples/support/echo.rs"]
mod echo;

use common::*;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use rgi_server::{Http2Settings, Server};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[test]
fn websocket_echo_over_http1_upgrade() {
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .http2(Http2Settings::default().enable_connect_protocol(true))
        .serve_async(echo::Echo)
        .expect("serve");
    let address = addr(&server);
    let handle = server.shutdown_handle();
    run(async {
        let stream = TcpStream::connect(address).await.expect("connect");
        let (mut socket, response) =
            tokio_tungstenite::client_async(format!("ws://{address}/echo"), stream)
                .await
                .expect("WebSocket handshake");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        for message in [
            Message::text("hello"),
            Message::binary(vec![0_u8, 1, 2, 255]),
            Message::text("é".repeat(10_000)),
        ] {
            socket.send(message.clone()).await.expect("send");
            let echoed = socket.next().await.expect("an echo").expect("a message");
            assert_eq!(echoed, message);
        }
        // The upgraded connection is still one open connection.
        assert_eq!(handle.stats().open_connections, 1);
        socket.send(Message::Close(None)).await.expect("close");
        while let Some(Ok(_)) = socket.next().await {}
        assert!(eventually(|| handle.stats().open_connections == 0).await);
    });
    // A plain request asks for no upgrade.
    let received = run(raw_exchange(
        address,
        b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    ));
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 426"));
}
