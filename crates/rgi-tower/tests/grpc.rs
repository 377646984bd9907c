//! A tonic gRPC service mounted through the bridge (`from_service`) inside
//! `rgi-server`, called over real loopback HTTP/2 (h2c, prior knowledge)
//! by tonic's own client: unary, server-streaming, client-streaming and
//! bidirectional calls; `grpc-status` and `grpc-message` in the HTTP/2
//! trailers, or in the head of a trailers-only answer; metadata both ways;
//! the service mounted under a `SCRIPT_NAME`; the server's body limits on
//! a client stream. The kit's `AsyncValidator` wraps the mounted
//! application in every server and reports nothing once the service
//! announces its trailers (a bare gRPC service draws exactly one
//! `RGI-TRAILER-5` warning per response with trailers, shown apart).
//!
//! There is no `protoc` here, so there is no generated code: the service
//! is written by hand on `tonic::server::Grpc`, the client calls
//! `tonic::client::Grpc` with method paths, and both use a codec whose
//! messages are the raw bytes of each gRPC message. The gRPC framing
//! (compression flag, length prefix, status in trailers) is tonic's own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed unwrap is the test's failure"
)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rgi::ServerInfo;
use rgi_async::Runtime;
use rgi_conformance::validate::AsyncValidator;
use rgi_conformance::{Policy, Reports};
use rgi_server::Limits;
use rgi_tower::{InputBody, ScriptName, from_service};
use tokio::net::TcpStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};
use tower::ServiceExt;
use tower_service::Service;

/// Every client side is bounded by this.
const BOUND: Duration = Duration::from_secs(30);

/// Where the service is mounted: its methods are reached at
/// `/rpc/rgi.test.Notes/...`, and it routes them as `/rgi.test.Notes/...`.
const MOUNT: &str = "/rpc";

/// The server-streaming call waits this long before its last message.
const PAUSE: Duration = Duration::from_millis(400);

/// Unary: a note by name.
const GET: &str = "/rgi.test.Notes/Get";
/// Server streaming: counts down from the number sent.
const COUNTDOWN: &str = "/rgi.test.Notes/Countdown";
/// Server streaming: one message, then `NOT_FOUND`.
const FAIL_LATE: &str = "/rgi.test.Notes/FailLate";
/// Server streaming: a message every few milliseconds, until cancelled.
const FOREVER: &str = "/rgi.test.Notes/Forever";
/// Client streaming: every message sent, joined.
const COLLECT: &str = "/rgi.test.Notes/Collect";
/// Bidirectional: each message answered upper-cased as it arrives.
const CHAT: &str = "/rgi.test.Notes/Chat";

/// Runs a client future on a runtime of its own, bounded in time: the
/// server runs its own runtime.
fn run<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async { tokio::time::timeout(BOUND, future).await })
        .expect("bounded in time")
}

/// gRPC messages as their raw bytes: what protobuf code would decode is
/// left to the handlers, which read text.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        // tonic hands over exactly one whole message.
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

type Replies = BoxStream<'static, Result<Bytes, Status>>;

/// The hand-written gRPC service: what tonic-build would generate, routed
/// on the mount-relative path the bridge hands it.
#[derive(Clone, Copy, Debug, Default)]
struct Notes;

impl Service<Request<InputBody>> for Notes {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<InputBody>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec);
            let path = request.uri().path().to_owned();
            let response = match path.as_str() {
                GET => grpc.unary(tower::service_fn(get), request).await,
                COUNTDOWN => {
                    grpc.server_streaming(tower::service_fn(countdown), request)
                        .await
                }
                FAIL_LATE => {
                    grpc.server_streaming(tower::service_fn(fail_late), request)
                        .await
                }
                FOREVER => {
                    grpc.server_streaming(tower::service_fn(forever), request)
                        .await
                }
                COLLECT => {
                    grpc.client_streaming(tower::service_fn(collect), request)
                        .await
                }
                CHAT => grpc.streaming(tower::service_fn(chat), request).await,
                _ => Status::unimplemented(format!("no method at {path}")).into_http(),
            };
            Ok(response)
        })
    }
}

/// Answers `note <name>`, with the caller's `x-tenant` and the mount point
/// the bridge put in the extensions as response metadata; `missing` is
/// `NOT_FOUND` before any message (tonic answers it trailers-only).
async fn get(request: tonic::Request<Bytes>) -> Result<tonic::Response<Bytes>, Status> {
    let tenant = request.metadata().get("x-tenant").cloned();
    let mount = request
        .extensions()
        .get::<ScriptName>()
        .map(|script| script.0.to_string())
        .unwrap_or_default();
    let name = request.into_inner();
    if name == "missing" {
        return Err(Status::not_found("no note named missing"));
    }
    let text = format!("note {}", String::from_utf8_lossy(&name));
    let mut response = tonic::Response::new(Bytes::from(text));
    if let Some(tenant) = tenant {
        response.metadata_mut().insert("x-tenant-seen", tenant);
    }
    let mount: MetadataValue<_> = mount
        .parse()
        .map_err(|_| Status::internal("the mount point is no metadata value"))?;
    response.metadata_mut().insert("x-mount", mount);
    Ok(response)
}

/// Counts down from the number sent to 1, waiting [`PAUSE`] before the
/// last message.
async fn countdown(request: tonic::Request<Bytes>) -> Result<tonic::Response<Replies>, Status> {
    let from: u32 = std::str::from_utf8(request.get_ref())
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| Status::invalid_argument("not a number"))?;
    let replies = stream::unfold(from, |left| async move {
        if left == 0 {
            return None;
        }
        if left == 1 {
            tokio::time::sleep(PAUSE).await;
        }
        Some((Ok(Bytes::from(left.to_string())), left - 1))
    });
    Ok(tonic::Response::new(replies.boxed()))
}

/// One message, then `NOT_FOUND` with a message and metadata of its own:
/// an error status that can only travel in trailers.
async fn fail_late(_request: tonic::Request<Bytes>) -> Result<tonic::Response<Replies>, Status> {
    let mut gone = Status::not_found("the second note is gone");
    gone.metadata_mut()
        .insert("x-detail", MetadataValue::from_static("page-2"));
    let replies = stream::iter([Ok(Bytes::from_static(b"first")), Err(gone)]);
    Ok(tonic::Response::new(replies.boxed()))
}

/// How many [`forever`] streams were dropped: each counts once, when the
/// bridge drops the service's response body.
static FOREVER_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Counts its drop in [`FOREVER_DROPPED`].
struct DropCount;

impl Drop for DropCount {
    fn drop(&mut self) {
        FOREVER_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

/// A message every 10 ms, without end: only the client's cancellation
/// ends it.
async fn forever(_request: tonic::Request<Bytes>) -> Result<tonic::Response<Replies>, Status> {
    let replies = stream::unfold((0_u64, DropCount), |(sent, guard)| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Some((Ok(Bytes::from(sent.to_string())), (sent + 1, guard)))
    });
    Ok(tonic::Response::new(replies.boxed()))
}

/// Reads every message the client streams, then answers once.
async fn collect(
    request: tonic::Request<Streaming<Bytes>>,
) -> Result<tonic::Response<Bytes>, Status> {
    let mut messages = request.into_inner();
    let mut parts = Vec::new();
    while let Some(message) = messages.message().await? {
        parts.push(String::from_utf8_lossy(&message).into_owned());
    }
    let text = format!("{} notes: {}", parts.len(), parts.join(","));
    Ok(tonic::Response::new(Bytes::from(text)))
}

/// Answers each message as it arrives, upper-cased.
async fn chat(
    request: tonic::Request<Streaming<Bytes>>,
) -> Result<tonic::Response<Replies>, Status> {
    let replies = request
        .into_inner()
        .map(|message| message.map(|text| Bytes::from(text.to_ascii_uppercase())));
    Ok(tonic::Response::new(replies.boxed()))
}

/// The `Trailer` field [`announce_trailers`] adds.
const GRPC_TRAILERS: &str = "grpc-status, grpc-message, grpc-status-details-bin";

/// Announces the trailers a gRPC response that carries messages ends with,
/// as RGI asks of an application that sends trailers (`[RGI-TRAILER-5]`,
/// a SHOULD): gRPC itself never announces them. A trailers-only answer
/// already carries its status in its head and has none to announce.
fn announce_trailers(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    if !response.headers().contains_key("grpc-status") {
        response
            .headers_mut()
            .insert(header::TRAILER, HeaderValue::from_static(GRPC_TRAILERS));
    }
    response
}

/// `rgi-server` serving [`Notes`] under [`MOUNT`], through the bridge and
/// the kit's validator; with `announce`, behind [`announce_trailers`].
fn grpc_server(reports: &Reports, announce: bool) -> rgi_server::Server {
    grpc_server_with(reports, announce, Limits::default())
}

/// [`grpc_server`] with `limits`.
fn grpc_server_with(reports: &Reports, announce: bool, limits: Limits) -> rgi_server::Server {
    let builder = rgi_server::Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .limits(limits)
        .server_info(
            ServerInfo::new("127.0.0.1", 80)
                .unwrap()
                .with_script_name(MOUNT)
                .unwrap(),
        );
    if announce {
        let service = Notes.map_response(announce_trailers as fn(_) -> _);
        builder.serve_async(AsyncValidator::new(
            from_service(service).require_runtime(Runtime::Tokio),
            reports.clone(),
        ))
    } else {
        builder.serve_async(AsyncValidator::new(
            from_service(Notes).require_runtime(Runtime::Tokio),
            reports.clone(),
        ))
    }
    .unwrap()
}

/// tonic's client over tonic's HTTP/2 channel. The mount point rides in
/// the origin: tonic's client puts the origin's path before each method's
/// path, and the channel keeps it.
async fn client(addr: SocketAddr) -> tonic::client::Grpc<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(BOUND)
        .timeout(BOUND)
        .connect()
        .await
        .unwrap();
    let origin = Uri::try_from(format!("http://{addr}{MOUNT}")).unwrap();
    tonic::client::Grpc::with_origin(channel, origin)
}

fn method(path: &'static str) -> PathAndQuery {
    PathAndQuery::from_static(path)
}

fn text(message: &Bytes) -> &str {
    std::str::from_utf8(message).unwrap()
}

#[test]
fn unary_calls_carry_metadata_both_ways_and_errors_trailers_only() {
    let reports = Reports::new(Policy::Collect);
    let server = grpc_server(&reports, true);
    let addr = server.local_addr().unwrap();
    run(async {
        let mut client = client(addr).await;

        let mut request = tonic::Request::new(Bytes::from_static(b"alpha"));
        request
            .metadata_mut()
            .insert("x-tenant", MetadataValue::from_static("blue"));
        client.ready().await.unwrap();
        let response = client
            .unary::<_, Bytes, _>(request, method(GET), RawCodec)
            .await
            .unwrap();
        let metadata = response.metadata();
        // The custom request header reached the service, and its response
        // metadata reached the client; so did the mount point the bridge
        // put in the request's extensions.
        assert_eq!(metadata.get("x-tenant-seen").unwrap(), "blue");
        assert_eq!(metadata.get("x-mount").unwrap(), MOUNT);
        // tonic's unary client merges the trailers into the metadata: the
        // OK status came in the trailers, not the head.
        assert_eq!(metadata.get("grpc-status").unwrap(), "0");
        assert_eq!(text(response.get_ref()), "note alpha");

        client.ready().await.unwrap();
        let error = client
            .unary::<_, Bytes, _>(
                tonic::Request::new(Bytes::from_static(b"missing")),
                method(GET),
                RawCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound, "{error:?}");
        assert_eq!(error.message(), "no note named missing");

        // A method the service does not have: its own UNIMPLEMENTED.
        client.ready().await.unwrap();
        let error = client
            .unary::<_, Bytes, _>(
                tonic::Request::new(Bytes::from_static(b"x")),
                method("/rgi.test.Notes/Nothing"),
                RawCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unimplemented, "{error:?}");
        assert_eq!(error.message(), "no method at /rgi.test.Notes/Nothing");
    });
    server.shutdown();
    assert!(reports.is_empty(), "{:#?}", reports.all());
}

#[test]
fn server_streaming_sends_each_message_as_it_is_made() {
    let reports = Reports::new(Policy::Collect);
    let server = grpc_server(&reports, true);
    let addr = server.local_addr().unwrap();
    run(async {
        let mut client = client(addr).await;
        client.ready().await.unwrap();
        let response = client
            .server_streaming::<_, Bytes, _>(
                tonic::Request::new(Bytes::from_static(b"3")),
                method(COUNTDOWN),
                RawCodec,
            )
            .await
            .unwrap();
        let mut messages = response.into_inner();
        let mut received = Vec::new();
        while let Some(message) = messages.message().await.unwrap() {
            received.push((text(&message).to_owned(), Instant::now()));
        }
        let texts: Vec<&str> = received.iter().map(|(text, _)| text.as_str()).collect();
        assert_eq!(texts, ["3", "2", "1"]);
        // The first two were not held back for the last: they arrived well
        // before the pause the service takes ahead of it had passed.
        let gap = received[2].1 - received[1].1;
        assert!(
            gap >= PAUSE / 2,
            "the last message came {gap:?} after the second"
        );
        // The OK status arrived as HTTP/2 trailers after the messages.
        let trailers = messages.trailers().await.unwrap().expect("trailers");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");

        // An error status after a message can only travel in trailers.
        client.ready().await.unwrap();
        let response = client
            .server_streaming::<_, Bytes, _>(
                tonic::Request::new(Bytes::new()),
                method(FAIL_LATE),
                RawCodec,
            )
            .await
            .unwrap();
        let mut messages = response.into_inner();
        let first = messages.message().await.unwrap().expect("a first message");
        assert_eq!(text(&first), "first");
        let error = messages.message().await.unwrap_err();
        assert_eq!(error.code(), Code::NotFound, "{error:?}");
        assert_eq!(error.message(), "the second note is gone");
        assert_eq!(error.metadata().get("x-detail").unwrap(), "page-2");
    });
    server.shutdown();
    assert!(reports.is_empty(), "{:#?}", reports.all());
}

#[test]
fn client_streaming_and_bidirectional_calls_stream_both_ways() {
    let reports = Reports::new(Policy::Collect);
    let server = grpc_server(&reports, true);
    let addr = server.local_addr().unwrap();
    run(async {
        let mut client = client(addr).await;

        // Client streaming, the messages spread out in time.
        let notes = stream::unfold(["a", "b", "c"].into_iter(), |mut notes| async move {
            let note = notes.next()?;
            tokio::time::sleep(Duration::from_millis(30)).await;
            Some((Bytes::from_static(note.as_bytes()), notes))
        });
        client.ready().await.unwrap();
        let response = client
            .client_streaming::<_, _, Bytes, _>(
                tonic::Request::new(notes),
                method(COLLECT),
                RawCodec,
            )
            .await
            .unwrap();
        assert_eq!(text(response.get_ref()), "3 notes: a,b,c");
        assert_eq!(response.metadata().get("grpc-status").unwrap(), "0");

        // Bidirectional, in lock step: each message is sent only after the
        // answer to the one before arrived, so the service answers while
        // the request body is still open.
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(1);
        let outgoing = stream::unfold(receiver, |mut receiver| async move {
            let message = receiver.recv().await?;
            Some((message, receiver))
        });
        client.ready().await.unwrap();
        sender.send(Bytes::from_static(b"one")).await.unwrap();
        let response = client
            .streaming::<_, _, Bytes, _>(tonic::Request::new(outgoing), method(CHAT), RawCodec)
            .await
            .unwrap();
        let mut replies = response.into_inner();
        for (said, answer) in [("two", "ONE"), ("three", "TWO")] {
            let reply = replies.message().await.unwrap().expect("an answer");
            assert_eq!(text(&reply), answer);
            sender.send(Bytes::from(said)).await.unwrap();
        }
        let reply = replies.message().await.unwrap().expect("an answer");
        assert_eq!(text(&reply), "THREE");
        // Closing the request stream ends the call, with OK in trailers.
        drop(sender);
        assert!(replies.message().await.unwrap().is_none());
        let trailers = replies.trailers().await.unwrap().expect("trailers");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    });
    server.shutdown();
    assert!(reports.is_empty(), "{:#?}", reports.all());
}

/// One gRPC message framed as the wire carries it: no compression, a
/// big-endian length, the bytes.
fn frame(message: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    Bytes::from(framed)
}

/// A unary call by hand over hyper's HTTP/2 client, to see where the
/// status travels: `(status, head, body, trailers)`.
async fn raw_unary(
    addr: SocketAddr,
    message: &'static [u8],
) -> (StatusCode, http::HeaderMap, Bytes, Option<http::HeaderMap>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::post(format!("http://127.0.0.1{MOUNT}{GET}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(Full::new(frame(message)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (status, parts.headers, collected.to_bytes(), trailers)
}

#[test]
fn grpc_status_travels_in_http2_trailers_or_in_a_trailers_only_head() {
    let reports = Reports::new(Policy::Collect);
    let server = grpc_server(&reports, true);
    let addr = server.local_addr().unwrap();
    let (ok, failed) = run(async {
        (
            raw_unary(addr, b"beta").await,
            raw_unary(addr, b"missing").await,
        )
    });
    server.shutdown();
    assert!(reports.is_empty(), "{:#?}", reports.all());

    let (status, head, body, trailers) = ok;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(head[header::CONTENT_TYPE], "application/grpc");
    assert_eq!(head[header::TRAILER], GRPC_TRAILERS);
    assert!(!head.contains_key("grpc-status"), "{head:?}");
    // No length: the trailers follow the data.
    assert!(!head.contains_key(header::CONTENT_LENGTH), "{head:?}");
    assert_eq!(body, frame(b"note beta"));
    let trailers = trailers.expect("a trailers frame");
    assert_eq!(trailers["grpc-status"], "0");

    // An error before any message: tonic answers with the status in the
    // head and no body, and no trailers follow.
    let (status, head, body, trailers) = failed;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(head[header::CONTENT_TYPE], "application/grpc");
    assert_eq!(
        head["grpc-status"],
        HeaderValue::from(Code::NotFound as i32)
    );
    // tonic percent-encodes the message (spaces included).
    assert_eq!(head["grpc-message"], "no%20note%20named%20missing");
    assert!(!head.contains_key(header::TRAILER), "{head:?}");
    // The empty body's exact length, as hyper gives it to any such head.
    assert_eq!(head[header::CONTENT_LENGTH], "0");
    assert!(body.is_empty(), "{body:?}");
    assert_eq!(trailers, None);
}

#[test]
fn a_service_that_does_not_announce_its_trailers_draws_only_that_warning() {
    let reports = Reports::new(Policy::Collect);
    let server = grpc_server(&reports, false);
    let addr = server.local_addr().unwrap();
    let (ok, failed) = run(async {
        (
            raw_unary(addr, b"gamma").await,
            raw_unary(addr, b"missing").await,
        )
    });
    server.shutdown();

    // gRPC works all the same: the status still travels in the trailers.
    let (status, head, body, trailers) = ok;
    assert_eq!(status, StatusCode::OK);
    assert!(!head.contains_key(header::TRAILER), "{head:?}");
    assert_eq!(body, frame(b"note gamma"));
    assert_eq!(trailers.expect("a trailers frame")["grpc-status"], "0");
    let (_, head, _, trailers) = failed;
    assert_eq!(
        head["grpc-status"],
        HeaderValue::from(Code::NotFound as i32)
    );
    assert_eq!(trailers, None);

    // The kit finds no error; it warns once, for the one response that
    // sent trailers it had not announced (the trailers-only one sent none).
    assert!(reports.errors().is_empty(), "{:#?}", reports.all());
    assert_eq!(reports.clauses(), ["RGI-TRAILER-5"], "{:#?}", reports.all());
    assert!(reports.warnings()[0].is_warning());
}

#[test]
fn the_servers_body_limits_bound_a_streaming_request() {
    // A client stream is one request body: the server's stalled-body time
    // bounds the client's silence between messages, and its body limit
    // the bytes of the whole call.
    let limits = Limits::default()
        .body_stall_timeout(Duration::from_millis(300))
        .max_body_bytes(64);
    let reports = Reports::new(Policy::Collect);
    let server = grpc_server_with(&reports, true, limits);
    let addr = server.local_addr().unwrap();
    run(async {
        let mut client = client(addr).await;

        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(1);
        let outgoing = stream::unfold(receiver, |mut receiver| async move {
            let message = receiver.recv().await?;
            Some((message, receiver))
        });
        client.ready().await.unwrap();
        sender.send(Bytes::from_static(b"one")).await.unwrap();
        let response = client
            .streaming::<_, _, Bytes, _>(tonic::Request::new(outgoing), method(CHAT), RawCodec)
            .await
            .unwrap();
        let mut replies = response.into_inner();
        let reply = replies.message().await.unwrap().expect("an answer");
        assert_eq!(text(&reply), "ONE");
        // Silent past the stalled-body time, the sender still open: the
        // service's request stream fails, and its status reaches the
        // client in the trailers of the response already under way.
        let error = replies.message().await.unwrap_err();
        assert_eq!(error.code(), Code::Unknown, "{error:?}");
        assert_eq!(
            error.message(),
            "the client sent no request body bytes for 300ms"
        );
        drop(sender);

        let notes = stream::iter([&b"0123456789abcdef"[..]; 5]).map(Bytes::from_static);
        client.ready().await.unwrap();
        let error = client
            .client_streaming::<_, _, Bytes, _>(
                tonic::Request::new(notes),
                method(COLLECT),
                RawCodec,
            )
            .await
            .unwrap_err();
        // Past 64 bytes the service's request stream fails before it
        // answered: a trailers-only answer.
        assert_eq!(error.code(), Code::Unknown, "{error:?}");
        assert_eq!(
            error.message(),
            "request body exceeds the server's limit of 64 bytes"
        );
    });
    server.shutdown();
    assert!(reports.is_empty(), "{:#?}", reports.all());
}

#[test]
fn a_client_that_cancels_a_call_stops_the_service() {
    let reports = Reports::new(Policy::Collect);
    let server = grpc_server(&reports, true);
    let addr = server.local_addr().unwrap();
    run(async {
        let mut client = client(addr).await;
        client.ready().await.unwrap();
        let response = client
            .server_streaming::<_, Bytes, _>(
                tonic::Request::new(Bytes::new()),
                method(FOREVER),
                RawCodec,
            )
            .await
            .unwrap();
        let mut messages = response.into_inner();
        for expected in ["0", "1"] {
            let message = messages.message().await.unwrap().expect("a message");
            assert_eq!(text(&message), expected);
        }
        assert_eq!(FOREVER_DROPPED.load(Ordering::SeqCst), 0);
        // Dropping the stream resets the HTTP/2 stream; the server drops
        // the application's body, and with it the service's stream.
        drop(messages);
        while FOREVER_DROPPED.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    server.shutdown();
    assert!(reports.is_empty(), "{:#?}", reports.all());
}
