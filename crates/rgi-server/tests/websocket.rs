//! WebSocket end to end: a tokio-tungstenite client against the echo
//! example's application served by `serve_async`, and the upgraded
//! connection counted until it ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../examples/support/echo.rs"]
mod echo;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, StatusCode, Version};
use rgi_server::{Http2Settings, Server};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

fn start_echo() -> Server {
    Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .http2(Http2Settings::default().enable_connect_protocol(true))
        .serve_async(echo::Echo)
        .expect("serve")
}

/// Sends a few messages and checks their echoes.
async fn converse<S>(socket: &mut WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for message in [
        Message::text("hello"),
        Message::binary(vec![0_u8, 1, 2, 255]),
        Message::text("é".repeat(10_000)),
    ] {
        socket.send(message.clone()).await.expect("send");
        let echoed = socket.next().await.expect("an echo").expect("a message");
        assert_eq!(echoed, message);
    }
}

#[test]
fn websocket_echo_over_http1_upgrade() {
    let server = start_echo();
    let address = addr(&server);
    let handle = server.shutdown_handle();
    run(async {
        let stream = TcpStream::connect(address).await.expect("connect");
        let (mut socket, response) =
            tokio_tungstenite::client_async(format!("ws://{address}/echo"), stream)
                .await
                .expect("WebSocket handshake");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        converse(&mut socket).await;
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

#[test]
fn websocket_echo_over_http2_extended_connect() {
    let server = start_echo();
    let address = addr(&server);
    run(async {
        let stream = TcpStream::connect(address).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .version(Version::HTTP_2)
            .uri(format!("http://{address}/echo"))
            .header("sec-websocket-version", "13")
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request");
        request
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let mut response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let upgraded = hyper::upgrade::on(&mut response).await.expect("stream");
        let mut socket = WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            Role::Client,
            None,
        )
        .await;
        converse(&mut socket).await;
        let _ = socket.send(Message::Close(None)).await;
    });
}
