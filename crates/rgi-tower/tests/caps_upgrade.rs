//! `caps::UpgradeOffer` (spec/rgi-async.md §12): an RGI WebSocket echo
//! application on tokio-tungstenite over the upgraded `ByteStream`, served
//! by a small hyper server on 127.0.0.1 (HTTP/1.1 `with_upgrades()`, and
//! HTTP/2 with extended CONNECT), driven by real clients; and the offer's
//! rules on requests built by hand.

// Helpers outside `#[test]` functions fail the test that calls them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rgi::{
    BoxError, ConnectionInfo, Environ, Input, ResponseHead, ResponseSink, ResponseState,
    ServerInfo, StartResponse,
};
use rgi_async::{
    AsyncApplication, AsyncBody, ByteStream, Capabilities, Offload, Step, UpgradeError,
};
use rgi_tower::caps::{HostCapabilities, UpgradeOffer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Every exchange's bound.
const BOUND: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------
// The application: a WebSocket echo, as an application author writes it.
// ---------------------------------------------------------------------

/// The upgraded connection as tokio's I/O traits, for tokio-tungstenite.
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
struct Conversation(Talk);

impl AsyncBody for Conversation {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        match ready!(self.0.as_mut().poll(cx)) {
            Ok(()) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(err))),
        }
    }
}

/// The echo: checks the handshake, accepts the upgrade, then echoes text
/// and binary messages until the client closes.
struct Echo;

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
        let extended = environ.version() == Version::HTTP_2;
        let mut fields = HeaderMap::new();
        if !extended {
            // RFC 6455's handshake; RFC 8441 drops it for extended CONNECT.
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
                match message? {
                    message @ (Message::Text(_) | Message::Binary(_)) => {
                        socket.send(message).await?;
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            Ok(())
        })))
    }
}

// ---------------------------------------------------------------------
// The host: just enough of one to drive the application through hyper.
// ---------------------------------------------------------------------

/// Keeps what the application sends over HTTP; after an accepted upgrade
/// it must send nothing (`[RGIA-UPGRADE-5]`).
#[derive(Default)]
struct Recorder {
    head: Option<ResponseHead>,
    data: Vec<u8>,
}

impl ResponseSink for Recorder {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.head = Some(head);
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.data.extend_from_slice(&data);
        Ok(())
    }
}

struct TestHost {
    capabilities: HostCapabilities,
    server_wide: Capabilities,
    server: Arc<ServerInfo>,
}

/// The offload the capabilities need: a thread per job is enough here.
struct ThreadPerJob;

impl rgi_async::OffloadService for ThreadPerJob {
    fn execute(&self, job: rgi_async::Job) -> Result<(), rgi_async::OffloadError> {
        std::thread::spawn(move || job.run());
        Ok(())
    }
}

impl TestHost {
    fn new() -> Arc<Self> {
        let capabilities = HostCapabilities::current().unwrap();
        let server_wide = capabilities.server_wide(Offload::new(ThreadPerJob));
        let server = Arc::new(
            ServerInfo::new("127.0.0.1", 80)
                .unwrap()
                .with_extension(server_wide.clone()),
        );
        Arc::new(TestHost {
            capabilities,
            server_wide,
            server,
        })
    }

    /// One request: the application's call, then either the switch head
    /// (and the body driven on its own task) or the application's response.
    async fn handle(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        connection: Arc<ConnectionInfo>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let per_request = self
            .capabilities
            .for_request(&self.server_wide, &mut request);
        let method = request.method().clone();
        let (parts, _) = request.into_parts();
        let environ =
            Environ::from_parts(parts, Input::empty(), &self.server, &connection).unwrap();
        let mut state = ResponseState::new(&method);
        let mut recorder = Recorder::default();
        let mut body = Box::pin(
            Echo.call(environ, &mut state.start_response(&mut recorder))
                .unwrap(),
        );
        if let Some(switch) = per_request.upgrade().and_then(UpgradeOffer::take_switch) {
            tokio::spawn(async move {
                let mut state = state;
                let mut recorder = recorder;
                let ended = std::future::poll_fn(|cx| {
                    body.as_mut()
                        .poll_step(cx, &mut state.start_response(&mut recorder))
                })
                .await;
                assert!(ended.is_none(), "the conversation failed: {ended:?}");
                assert!(recorder.head.is_none() && recorder.data.is_empty());
                per_request.complete();
            });
            return Ok(switch.map(|()| Full::default()));
        }
        if let Some(offer) = per_request.upgrade() {
            assert!(offer.seal().is_none());
        }
        while let Some(step) = std::future::poll_fn(|cx| {
            body.as_mut()
                .poll_step(cx, &mut state.start_response(&mut recorder))
        })
        .await
        {
            if let Step::Chunk(chunk) = step.unwrap() {
                state.send_chunk(&mut recorder, chunk).unwrap();
            }
        }
        state.finish(&mut recorder).unwrap();
        let (status, headers) = recorder.head.take().unwrap().into_parts();
        let mut response = Response::new(Full::new(Bytes::from(recorder.data)));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// Serves HTTP/1.1 (with upgrades) and HTTP/2 (prior knowledge, with
/// extended CONNECT) on 127.0.0.1; the protocol is chosen per listener.
async fn serve(http2: bool) -> SocketAddr {
    let host = TestHost::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let host = Arc::clone(&host);
            let connection = Arc::new(ConnectionInfo::new());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    Arc::clone(&host).handle(request, Arc::clone(&connection))
                });
                let io = TokioIo::new(stream);
                let _ = if http2 {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .enable_connect_protocol()
                        .serve_connection(io, service)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await
                };
            });
        }
    });
    addr
}

/// Sends text and binary messages and checks the echoes, then closes.
async fn converse<S>(mut socket: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let messages = [
        Message::text("hello"),
        Message::binary(vec![0_u8, 1, 2, 254, 255]),
        Message::text("é".repeat(10_000)),
        Message::binary(vec![7_u8; 100_000]),
    ];
    for message in messages {
        socket.send(message.clone()).await.unwrap();
        let echoed = tokio::time::timeout(BOUND, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }
    socket.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_gets_its_text_and_binary_messages_back_over_http1() {
    let addr = serve(false).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let url = format!("ws://{addr}/echo");
    let (socket, response) =
        tokio::time::timeout(BOUND, tokio_tungstenite::client_async(url, stream))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["upgrade"], "websocket");
    tokio::time::timeout(BOUND, converse(socket)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_101_names_one_protocol_and_bytes_sent_early_reach_the_stream() {
    let addr = serve(false).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The handshake and a masked text frame "hi" in one write: the frame
    // arrives with the request, in hyper's read buffer (`[RGIA-UPGRADE-4]`).
    let mut bytes = b"GET /echo HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: keep-alive, Upgrade\r\n\
upgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        .to_vec();
    let mask = [1_u8, 2, 3, 4];
    bytes.extend_from_slice(&[0x81, 0x82]);
    bytes.extend_from_slice(&mask);
    bytes.extend(
        b"hi"
            .iter()
            .zip(mask.iter().cycle())
            .map(|(byte, key)| byte ^ key),
    );
    stream.write_all(&bytes).await.unwrap();

    let mut seen = Vec::new();
    let mut buf = [0_u8; 1024];
    let head_end = loop {
        let read = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            read > 0,
            "closed after {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..read]);
        if let Some(end) = seen.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 101 switching protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(
        head.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    assert!(
        !head.contains("content-length") && !head.contains("transfer-encoding"),
        "{head}"
    );
    // The echo of "hi": an unmasked text frame from the server.
    while seen.len() < head_end + 4 {
        let read = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0);
        seen.extend_from_slice(&buf[..read]);
    }
    assert_eq!(&seen[head_end..head_end + 4], b"\x81\x02hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_an_upgrade_gets_no_capability() {
    let addr = serve(false).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("/echo")
        .header("host", "127.0.0.1")
        .header("upgrade", "websocket") // without `connection: upgrade`
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(BOUND, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_over_http2_extended_connect() {
    let addr = serve(true).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri(format!("http://{addr}/echo"))
        .header("sec-websocket-version", "13")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut response = tokio::time::timeout(BOUND, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("upgrade").is_none());
    assert!(response.headers().get("connection").is_none());
    let upgraded = tokio::time::timeout(BOUND, hyper::upgrade::on(&mut response))
        .await
        .unwrap()
        .unwrap();
    let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    tokio::time::timeout(BOUND, converse(socket)).await.unwrap();
}

// ---------------------------------------------------------------------
// The offer's rules, on requests built by hand.
// ---------------------------------------------------------------------

/// A request carrying an `OnUpgrade`, as hyper hands it over (this one
/// never completes).
fn upgradable(version: Version, fields: &[(&str, &str)]) -> Request<()> {
    let mut request = Request::builder().version(version);
    for (name, value) in fields {
        request = request.header(*name, *value);
    }
    let mut request = request.body(()).unwrap();
    let pending = hyper::upgrade::on(Request::new(()));
    request.extensions_mut().insert(pending);
    request
}

fn with_upgrade(protocol: &str) -> HeaderMap {
    let mut fields = HeaderMap::new();
    fields.insert("upgrade", HeaderValue::from_str(protocol).unwrap());
    fields
}

#[test]
fn an_offer_exists_only_where_an_upgrade_can_happen() {
    let offered = [("connection", "Upgrade"), ("upgrade", "websocket")];
    assert!(UpgradeOffer::detect(&mut upgradable(Version::HTTP_11, &offered)).is_some());
    assert!(UpgradeOffer::detect(&mut upgradable(Version::HTTP_10, &offered)).is_none());
    assert!(UpgradeOffer::detect(&mut upgradable(Version::HTTP_2, &offered)).is_none());
    let no_connection = [("upgrade", "websocket")];
    assert!(UpgradeOffer::detect(&mut upgradable(Version::HTTP_11, &no_connection)).is_none());
    // Without hyper's hand-over there is nothing to lend (`[RGIA-CAP-5]`).
    let mut plain = Request::builder()
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(())
        .unwrap();
    assert!(UpgradeOffer::detect(&mut plain).is_none());
}

#[test]
fn the_application_chooses_one_offered_protocol() {
    let offered = [("connection", "upgrade"), ("upgrade", "h2c, WebSocket")];
    let offer = UpgradeOffer::detect(&mut upgradable(Version::HTTP_11, &offered)).unwrap();
    let upgrade = offer.upgrade();
    assert!(matches!(
        upgrade.accept(HeaderMap::new()),
        Err(UpgradeError::ProtocolNotChosen { .. })
    ));
    assert!(matches!(
        upgrade.accept(with_upgrade("irc")),
        Err(UpgradeError::ProtocolNotOffered { .. })
    ));
    assert!(
        offer.take_switch().is_none(),
        "refusals leave the offer open"
    );
    let accepted = upgrade.accept(with_upgrade("websocket")).unwrap();
    assert!(matches!(
        upgrade.accept(with_upgrade("websocket")),
        Err(UpgradeError::AlreadyAccepted)
    ));
    let head = offer.take_switch().unwrap();
    assert_eq!(head.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(head.headers()["upgrade"], "websocket");
    assert_eq!(head.headers()["connection"], "upgrade");
    assert!(offer.take_switch().is_none(), "taken once");
    assert!(offer.is_accepted());
    drop(accepted);
}

#[test]
fn a_sent_head_closes_the_offer_and_a_prior_accept_wins() {
    let offered = [("connection", "upgrade"), ("upgrade", "websocket")];
    let offer = UpgradeOffer::detect(&mut upgradable(Version::HTTP_11, &offered)).unwrap();
    assert!(offer.seal().is_none());
    assert!(matches!(
        offer.upgrade().accept(HeaderMap::new()),
        Err(UpgradeError::ResponseStarted)
    ));

    let offer = UpgradeOffer::detect(&mut upgradable(Version::HTTP_11, &offered)).unwrap();
    let _accepted = offer.upgrade().accept(HeaderMap::new()).unwrap();
    let head = offer.seal().unwrap();
    assert_eq!(head.status(), StatusCode::SWITCHING_PROTOCOLS);
}

#[tokio::test]
async fn a_hand_over_that_never_happens_resolves_closed() {
    let offered = [("connection", "upgrade"), ("upgrade", "websocket")];
    let offer = UpgradeOffer::detect(&mut upgradable(Version::HTTP_11, &offered)).unwrap();
    let accepted = offer.upgrade().accept(HeaderMap::new()).unwrap();
    match tokio::time::timeout(BOUND, accepted).await.unwrap() {
        Err(UpgradeError::Closed) => {}
        other => panic!("expected Closed, got {:?}", other.map(|_| "a stream")),
    }
}

#[test]
fn an_extended_connect_is_answered_200_without_upgrade_fields() {
    let mut request = upgradable(Version::HTTP_2, &[]);
    *request.method_mut() = Method::CONNECT;
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let offer = UpgradeOffer::detect(&mut request).unwrap();
    assert!(offer.is_extended_connect());
    assert!(matches!(
        offer.upgrade().accept(with_upgrade("irc")),
        Err(UpgradeError::ProtocolNotOffered { .. })
    ));
    let _accepted = offer.upgrade().accept(with_upgrade("WebSocket")).unwrap();
    let head = offer.take_switch().unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.headers().get("upgrade").is_none());
    assert!(head.headers().get("connection").is_none());
}
