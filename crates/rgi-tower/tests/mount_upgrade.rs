//! An axum WebSocket route mounted through `TowerApplication` inside
//! `rgi-server`, over real sockets on 127.0.0.1: the bridge hands the
//! route hyper's `OnUpgrade` through an in-memory hyper connection,
//! accepts the RGI upgrade with the route's `101`, and relays the
//! WebSocket both ways, under the kit's `AsyncValidator`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed unwrap is the test's failure"
)]

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::extract::ws::{Message as AxumMessage, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use rgi::ServerInfo;
use rgi_async::Runtime;
use rgi_conformance::validate::AsyncValidator;
use rgi_conformance::{Policy, Reports};
use rgi_tower::from_service;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const BOUND: Duration = Duration::from_secs(30);

fn run<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async { tokio::time::timeout(BOUND, future).await })
        .expect("bounded in time")
}

/// Answers every text message with `echo: ` and it, every binary message
/// with itself, until the client closes.
async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let answer = match message {
            AxumMessage::Text(text) => AxumMessage::Text(format!("echo: {}", text.as_str()).into()),
            AxumMessage::Binary(bytes) => AxumMessage::Binary(bytes),
            AxumMessage::Close(_) => return,
            AxumMessage::Ping(_) | AxumMessage::Pong(_) => continue,
        };
        if socket.send(answer).await.is_err() {
            return;
        }
    }
}

fn router() -> Router {
    Router::new()
        .route(
            "/ws",
            get(|upgrade: WebSocketUpgrade| async move { upgrade.on_upgrade(echo) }),
        )
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("user {id}") }),
        )
}

fn serve(reports: &Reports) -> rgi_server::Server {
    let app = AsyncValidator::new(
        from_service(router()).require_runtime(Runtime::Tokio),
        reports.clone(),
    );
    rgi_server::Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .server_info(
            ServerInfo::new("127.0.0.1", 80)
                .unwrap()
                .with_script_name("/app")
                .unwrap(),
        )
        .serve_async(app)
        .unwrap()
}

#[test]
fn an_axum_websocket_route_talks_through_the_bridge() {
    let reports = Reports::new(Policy::Collect);
    let server = serve(&reports);
    let addr = server.local_addr().unwrap();
    run(async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut socket, response) =
            tokio_tungstenite::client_async(format!("ws://{addr}/app/ws"), stream)
                .await
                .unwrap();
        assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
        assert!(response.headers().contains_key("sec-websocket-accept"));

        socket.send(Message::text("hello")).await.unwrap();
        let answer = socket.next().await.unwrap().unwrap();
        assert_eq!(answer, Message::text("echo: hello"));

        // Larger than the in-memory connection holds at once: the relay
        // waits for room both ways.
        let big: Vec<u8> = (0..300_000_u32).map(|n| (n % 251) as u8).collect();
        socket.send(Message::binary(big.clone())).await.unwrap();
        let answer = socket.next().await.unwrap().unwrap();
        assert_eq!(answer, Message::binary(big));

        for n in 0..20 {
            socket.send(Message::text(format!("n{n}"))).await.unwrap();
        }
        for n in 0..20 {
            let answer = socket.next().await.unwrap().unwrap();
            assert_eq!(answer, Message::text(format!("echo: n{n}")));
        }

        socket.send(Message::Close(None)).await.unwrap();
        // The route ends on the close; the connection follows.
        let rest = socket.next().await;
        assert!(
            !matches!(rest, Some(Ok(Message::Text(_) | Message::Binary(_)))),
            "{rest:?}"
        );
    });
    server.shutdown();
    assert!(reports.is_empty(), "{:#?}", reports.all());
}

/// Writes `request` and reads the answer until the server closes.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    String::from_utf8_lossy(&received).into_owned()
}

#[test]
fn an_upgrade_request_the_service_does_not_switch_is_answered_as_usual() {
    let reports = Reports::new(Policy::Collect);
    let server = serve(&reports);
    let addr = server.local_addr().unwrap();
    let (plain, refused) = run(async {
        // An upgrade offer to a route that ignores it (RFC 9110 §7.8
        // allows that): the ordinary answer, on the ordinary connection.
        let plain = raw_exchange(
            addr,
            b"GET /app/users/5 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: upgrade, close\r\n\
              Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await;
        // A WebSocket handshake axum refuses (no key): axum's own answer.
        let refused = raw_exchange(
            addr,
            b"GET /app/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: upgrade, close\r\n\
              Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await;
        (plain, refused)
    });
    server.shutdown();
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert!(plain.ends_with("user 5"), "{plain}");
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(reports.is_empty(), "{:#?}", reports.all());
}
