//! A WebSocket echo as an RGI asynchronous application: it checks the
//! handshake, accepts the upgrade through the `Upgrade` capability, then
//! runs tokio-tungstenite over the upgraded `ByteStream`. Shared by the
//! `websocket_echo` example and the server's WebSocket test.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode, Version};
use rgi::{BoxError, Environ, ResponseHead, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, ByteStream, Capabilities, Step};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The upgraded connection through tokio's I/O traits.
struct TokioStream(Box<dyn ByteStream>);

impl AsyncRead for TokioStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = ready!(self.0.poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TokioStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_close(cx)
    }
}

type Talk = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A body that only drives the conversation over the upgraded connection.
pub(crate) struct Conversation(Talk);

impl AsyncBody for Conversation {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        match ready!(self.0.as_mut().poll(cx)) {
            Ok(()) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }
}

/// Echoes text and binary messages until the client closes; `426` to a
/// request that asks for no upgrade.
pub(crate) struct Echo;

impl AsyncApplication for Echo {
    type Body = Conversation;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Conversation, BoxError> {
        let capabilities = Capabilities::of(&environ).ok_or("an asynchronous host")?;
        let Some(upgrade) = capabilities.upgrade() else {
            start.start(ResponseHead::new(StatusCode::UPGRADE_REQUIRED))?;
            return Ok(Conversation(Box::pin(async { Ok(()) })));
        };
        let mut fields = HeaderMap::new();
        if environ.version() != Version::HTTP_2 {
            // RFC 6455's handshake; RFC 8441 (extended CONNECT) has none.
            let key = environ
                .headers()
                .get("sec-websocket-key")
                .ok_or("no sec-websocket-key")?;
            let accept = derive_accept_key(key.as_bytes());
            fields.insert("sec-websocket-accept", HeaderValue::from_str(&accept)?);
        }
        let upgraded = upgrade.accept(fields)?;
        Ok(Conversation(Box::pin(async move {
            let stream = TokioStream(upgraded.await?);
            let mut socket = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
            while let Some(message) = socket.next().await {
                let message = message?;
                if message.is_text() || message.is_binary() {
                    socket.send(message).await?;
                }
            }
            // The client may be gone already: no failure.
            let _ = socket.into_inner().shutdown().await;
            Ok(())
        })))
    }
}
