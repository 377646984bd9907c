//! RGI applications as tower services, and tower services as RGI
//! applications.
//!
//! An [`rgi::Application`] or [`rgi_async::AsyncApplication`] served as a
//! `tower_service::Service<http::Request<B>>` for any `http_body::Body`:
//! the per-request work of an RGI server on hyper, written once. A server
//! builds one [`Host`] (its description, pool and limits), one service per
//! application, and per accepted connection calls
//! [`SyncService::connection`] or [`AsyncService::connection`] with the
//! connection's [`rgi::ConnectionInfo`]; hyper (or any tower stack) does
//! the rest.
//!
//! The other way round, [`from_service`] mounts a tower service (an axum
//! `Router`, a tonic server, any `tower::Service`) as an RGI asynchronous
//! application ([`TowerApplication`]), to run behind RGI middleware on any
//! asynchronous RGI server.
//!
//! # Contents
//!
//! | Item | What it is |
//! |---|---|
//! | [`Host`], [`HostBuilder`] | what the hosting server backs: its [`rgi::ServerInfo`], the pool, the request body limit and stalled-body time, the capabilities of an asynchronous application |
//! | [`SyncService`], [`SyncConnection`], [`SyncFuture`] | a synchronous application, dispatched from its [`rgi::Hints`]: inline, inline after a pre-read, or on the pool |
//! | [`AsyncService`], [`AsyncConnection`], [`AsyncFuture`] | an asynchronous application, its body polled by hyper; a switch runs on the pool |
//! | [`ResponseBody`], [`ResponseError`] | the body of every response, pulled only as hyper asks; why a response was aborted |
//! | [`Pool`], [`PoolConfig`], [`PoolError`], [`PoolStats`], [`ConnectionPool`] | the bounded blocking pool and one connection's share of it |
//! | [`caps`] | the asynchronous capabilities backed on tokio: runtime context, readiness, after-response tasks, upgrade |
//! | [`TowerApplication`], [`from_service`], [`TowerBody`], [`MountError`] | a tower service mounted as an RGI asynchronous application |
//! | [`InputBody`], [`ScriptName`], [`OriginalUri`] | what the mounted service finds in its request: the environ's input as an `http_body::Body`, the mount point, the target as sent |
//! | [`environ_from_request`], [`request_from_environ`], [`ConvertError`] | the crossings between `http::Request` and [`rgi::Environ`] |
//!
//! # What the services do
//!
//! - **Environ** from the request head ([`rgi::Environ::from_parts`]): the
//!   `Transfer-Encoding` hyper decoded is removed; a head the environ
//!   refuses is answered `400` (`501` for CONNECT).
//! - **Request body**: read from the connection only as the application
//!   reads it (so hyper's `100 Continue` goes out on its first read), with
//!   the host's limit counted as it streams and its stalled-body time; the
//!   client's faults reach the application as the typed
//!   [`rgi::InputError`], and an application that gives up with one before
//!   its head is answered `400`, `413` or `408`, never `500`. A declared
//!   length over the limit is `413` before the application runs.
//! - **Response**: the head goes to hyper when the state sends it; body
//!   chunks are pulled as hyper polls; hyper frames by a size hint that is
//!   exact only when the sent head carries that Content-Length
//!   (`[RGI-CL-11]`).
//! - **Failures**: panics are contained (`500` before the head, an aborted
//!   response after, with a `tracing` error line); the application's body
//!   is dropped exactly once on every path, the client leaving included.
//! - **Pool**: blocking work runs there, admitted up to a bound; a full
//!   pool is `503` with `Retry-After`, never a queue without end.
//! - **RGI 1.2 trailers**, as the host's [`rgi::ServerInfo`] declares them
//!   ([`Host`] says more): request trailers reach the input from the
//!   body's trailers frame before its end; response trailers end the
//!   response body as a trailers frame, on HTTP/2 and on HTTP/1.1 to a
//!   request with `TE: trailers`. Early hints are never declared: hyper
//!   1.x has no API for a `103`.
//!
//! # Behind tower-http layers
//!
//! A service's response future resolves when the RGI head is sent: with
//! the first non-empty body chunk, or when the body ends (RGI's lazy
//! head). What that means for the layers around
//! [`AsyncService`] and [`SyncService`] (`tests/tower_http.rs` shows
//! each):
//!
//! - **`TimeoutLayer`** bounds the time to the head, not the response. A
//!   long poll whose event comes after the timeout is answered by the
//!   layer (`408` by default) and its application body dropped; a stream
//!   whose first chunk went out runs past it. Give routes that wait for
//!   events a timeout longer than their longest wait, or have them send a
//!   first chunk at once (an SSE comment such as [`rgi::sse::KEEP_ALIVE`]);
//!   bound a stream's whole life with the application's own deadline or
//!   tower-http's `ResponseBodyTimeoutLayer` instead.
//! - **`CompressionLayer`** leaves `text/event-stream` uncompressed with
//!   its default predicate (`NotForContentType::SSE`), so events reach the
//!   client one by one (`[RGI-SSE-5]`); keep that part in any predicate of
//!   your own. Compressed anyway, tower-http 0.7 still sends each event at
//!   once (its encoder flushes whenever the body waits), at some cost in
//!   compression.
//!
//! # gRPC
//!
//! A tonic service (generated, or written on `tonic::server::Grpc`) mounts
//! with [`from_service`] like any tower service: unary, server-streaming,
//! client-streaming and bidirectional calls work through `rgi-server`
//! with tonic's own client, metadata both ways, the status in the
//! trailers or, for an error before any message, in a trailers-only head
//! (`tests/grpc.rs` shows each). What it takes:
//!
//! - **HTTP/2** to the client (`rgi-server` speaks it on a plain port to a
//!   client with prior knowledge, as tonic's `Channel` is), and a server
//!   that declares **response trailers** ([`rgi::Features`]): elsewhere
//!   `grpc-status` is dropped, and tonic's client takes a response without
//!   one for OK, so an error after the first message would pass unseen.
//! - **`require_runtime(Runtime::Tokio)`**: gRPC services are written for
//!   tokio (its timers, tasks and channels).
//! - Under a **mount point**, the client puts it before every method path:
//!   give the mount in the client's origin (`with_origin`, which tonic's
//!   generated clients have too, with `http://host:port/rpc`).
//! - A **client stream is one request body**: the server's stalled-body
//!   time bounds the client's silence between messages and its body limit
//!   the bytes of the whole call (`rgi_server::Limits`); raise both for
//!   long-lived streams. Past them the call ends with a gRPC status
//!   naming the limit.
//! - gRPC never announces its trailers in a `Trailer` field, which RGI asks
//!   of applications (`[RGI-TRAILER-5]`, a SHOULD): the kit's validator
//!   warns once per such response. A `map_response` that adds
//!   `Trailer: grpc-status, grpc-message, grpc-status-details-bin` to heads
//!   without `grpc-status` announces them.
//!
//! # Mounting an RGI application in axum
//!
//! [`SyncService`] and [`AsyncService`] go into an axum `Router` with
//! `nest_service` or `fallback_service`, beside axum's own routes, through
//! a small service of the user's around the RGI one (the example below;
//! `tests/in_axum.rs` and `examples/rgi_in_axum.rs` show more):
//!
//! - **The mount point.** The host's [`rgi::ServerInfo`] carries it as
//!   its script name (`with_script_name("/rgi")`), and the request gets
//!   back the target axum's nesting stripped, from the
//!   `axum::extract::OriginalUri` axum leaves in its extensions (feature
//!   `original-uri`, on by default). The environ is then split as on any
//!   RGI server: `SCRIPT_NAME` `/rgi`, `PATH_INFO` the rest, decoded (empty
//!   for `/rgi` itself, where axum's own URI would say `/`), the query and
//!   [`rgi::Environ::uri`] raw. Without the restored target the environ
//!   refuses the request (`400`): its path does not start with the script
//!   name. The script name is the whole path from the root, nested
//!   Routers included, since `OriginalUri` is what the outermost Router
//!   saw; a nest path with parameters (`/t/{id}`) has no fixed script
//!   name: give the host none and let the application move the segments
//!   over with [`rgi::Environ::shift_path`]. Under `fallback_service`
//!   axum strips nothing: the host's script name is empty (the same
//!   wrapper serves, putting back the target it already has).
//! - **The connection.** axum shares one nested service between all its
//!   connections, so the RGI service's per-connection half is made per
//!   request, with an [`rgi::ConnectionInfo`] built from axum's
//!   `ConnectInfo` (serve with `into_make_service_with_connect_info`) for
//!   `REMOTE_ADDR`. [`PoolConfig::per_connection`] then bounds one
//!   request's share of the pool, and the per-connection set-up (for an
//!   [`AsyncService`], its server description with the capabilities) is
//!   paid per request, a few small allocations.
//! - **Layers** (tower-http's `TraceLayer`, `CompressionLayer`,
//!   `TimeoutLayer`, ...) go around that service with
//!   `tower::ServiceBuilder`, as in [Behind tower-http
//!   layers](#behind-tower-http-layers); inside the nesting they see the
//!   stripped target.
//!
//! The bounded pool works as under any server: a full pool is a `503`
//! with `Retry-After` from the RGI service (a blocking synchronous
//! application, an asynchronous one's switch; an offload job is refused
//! to the application as [`rgi_async::OffloadError::Saturated`]), and
//! axum's own routes are not held up by it.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//!
//! use axum::extract::{ConnectInfo, OriginalUri, Request};
//! use axum::routing::get;
//! use http::StatusCode;
//! use http_body_util::{BodyExt, Empty};
//! use hyper_util::rt::TokioIo;
//! use rgi::{Address, ConnectionInfo, ResponseHead, ServerInfo};
//! use rgi_tower::{Host, SyncService};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let app = rgi::from_fn(|environ, start| {
//!     start.start(ResponseHead::new(StatusCode::OK))?;
//!     Ok(format!(
//!         "script={} path={} query={}",
//!         environ.script_name(),
//!         environ.path_info(),
//!         environ.query_string()
//!     ))
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let info = ServerInfo::new("127.0.0.1", addr.port())?.with_script_name("/rgi")?;
//! let rgi = SyncService::new(app, Host::builder(info).build());
//!
//! // The target before axum stripped "/rgi", and the peer, per request.
//! let mounted = tower::service_fn(move |mut request: Request| {
//!     if let Some(OriginalUri(original)) = request.extensions().get::<OriginalUri>() {
//!         *request.uri_mut() = original.clone();
//!     }
//!     let mut connection = ConnectionInfo::new();
//!     if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
//!         connection = connection.with_peer_addr(Address::Tcp(*peer));
//!     }
//!     rgi.connection(Arc::new(connection)).oneshot(request)
//! });
//! let router = axum::Router::new()
//!     .route("/", get(|| async { "axum" }))
//!     .nest_service("/rgi", mounted);
//! tokio::spawn(async move {
//!     axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await
//! });
//!
//! let stream = tokio::net::TcpStream::connect(addr).await?;
//! let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
//! tokio::spawn(connection);
//! let request = http::Request::get("/rgi/hello?x=1").header("host", "127.0.0.1").body(Empty::<bytes::Bytes>::new())?;
//! let response = sender.send_request(request).await?;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "script=/rgi path=/hello query=x=1");
//! # Ok(())
//! # }
//! ```
//!
//! # Crossing between RGI and `http`
//!
//! There is one way across for each pair, and every part of this crate
//! uses it:
//!
//! | From | To | The way |
//! |---|---|---|
//! | `http::Request<B>` as hyper hands it over | [`rgi::Environ`] | [`environ_from_request`]: the framing hyper decoded removed, HTTP/2's `:authority` made `Host`, the body made the [`rgi::Input`] with its trailers; what [`AsyncService`] and [`SyncService`] do per request, less their body limits |
//! | `http::request::Parts` already in RGI's terms, and an [`rgi::Input`] | [`rgi::Environ`] | [`rgi::Environ::from_parts`] (no `Transfer-Encoding`; the mount point is the [`rgi::ServerInfo`]'s) |
//! | [`rgi::Environ`] | `http::request::Parts` and its [`rgi::Input`] | [`rgi::Environ::into_parts`], the plain inverse (the split path, the descriptions and the error stream stay behind) |
//! | [`rgi::Environ`] | `http::Request<InputBody>` for a tower service | [`request_from_environ`]: mount-relative target, [`ScriptName`], [`OriginalUri`], the descriptions as extensions |
//! | [`rgi::Input`] | `http_body::Body` | [`InputBody::new`] (non-blocking face, trailers as the last frame) |
//! | an RGI application's head and body | `http::Response<`[`ResponseBody`]`>` | [`AsyncService`] / [`SyncService`]: the head as [`rgi::ResponseState`] sends it (with the Content-Length it enforces), the body pulled as hyper polls, trailers as a trailers frame |
//! | a tower service's `http::Response<B>` | RGI head, chunks and trailers | [`TowerApplication`]: connection-specific fields dropped, the length kept only when the body agrees, DATA frames as chunks, the trailers frame through `send_trailers` |
//! | [`rgi::ResponseHead`] | status and `http::HeaderMap` | [`rgi::ResponseHead::into_parts`] and [`rgi::ResponseHead::from_parts`], which check nothing: [`rgi::StartResponse::start`] validates |
//!
//! ```
//! use std::sync::Arc;
//! use http_body_util::{BodyExt, Full};
//! use rgi::{ConnectionInfo, ServerInfo};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let server = Arc::new(ServerInfo::new("localhost", 80)?.with_script_name("/api")?);
//! let connection = Arc::new(ConnectionInfo::new());
//! let request = http::Request::post("/api/echo").body(Full::new(bytes::Bytes::from("hi")))?;
//!
//! // http -> RGI: what an RGI application gets ...
//! let environ = rgi_tower::environ_from_request(request, &server, &connection)?;
//! assert_eq!(environ.path_info(), "/echo");
//! // ... and RGI -> http: what a mounted tower service gets.
//! let request = rgi_tower::request_from_environ(environ)?;
//! assert_eq!(request.uri(), "/echo");
//! assert_eq!(request.into_body().collect().await?.to_bytes(), "hi");
//! # Ok(())
//! # }
//! ```
//!
//! # Example
//!
//! Serving a synchronous application over HTTP/1.1 with hyper:
//!
//! ```
//! use std::sync::Arc;
//!
//! use http::StatusCode;
//! use http_body_util::{BodyExt, Empty};
//! use hyper_util::rt::TokioIo;
//! use rgi::{Address, ConnectionInfo, ResponseHead, ServerInfo};
//! use rgi_tower::{Host, PoolConfig, SyncService};
//! use tower_service::Service;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let app = rgi::from_fn(|environ, start| {
//!     start.start(ResponseHead::new(StatusCode::OK))?;
//!     Ok(format!("hello from {}", environ.path_info()))
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let host = Host::builder(ServerInfo::new("127.0.0.1", addr.port())?)
//!     .pool(PoolConfig { threads: 4, queue: 16, per_connection: 4 })
//!     .build();
//! let service = SyncService::new(app, host);
//!
//! // The server: per connection, its description and hyper.
//! tokio::spawn(async move {
//!     while let Ok((stream, peer)) = listener.accept().await {
//!         let connection = Arc::new(
//!             ConnectionInfo::new()
//!                 .with_peer_addr(Address::Tcp(peer))
//!                 .with_local_addr(Address::Tcp(addr)),
//!         );
//!         let service = service.connection(connection);
//!         let service = hyper::service::service_fn(move |request| service.clone().call(request));
//!         tokio::spawn(
//!             hyper::server::conn::http1::Builder::new()
//!                 .serve_connection(TokioIo::new(stream), service),
//!         );
//!     }
//! });
//!
//! // A client.
//! let stream = tokio::net::TcpStream::connect(addr).await?;
//! let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
//! tokio::spawn(connection);
//! let request = http::Request::get("/world").header("host", "127.0.0.1").body(Empty::<bytes::Bytes>::new())?;
//! let response = sender.send_request(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "hello from /world");
//! # Ok(())
//! # }
//! ```

// `deny`, not `forbid`: one `unsafe` call, tokio's `AsyncFd` registration
// of a borrowed descriptor in `caps::readiness`, is allowed where it stands
// with its safety argument.
#![deny(unsafe_code)]

mod asynchronous;
mod body;
pub mod caps;
mod connection_fields;
mod convert;
mod host;
mod input_body;
mod mount;
mod mount_upgrade;
mod pool;
mod relay;
mod request;
mod response;
mod sync;

pub use asynchronous::{AsyncConnection, AsyncFuture, AsyncService};
pub use body::ResponseBody;
pub use convert::{ConvertError, environ_from_request, request_from_environ};
pub use host::{
    CapabilitiesHook, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_PRE_READ_LIMIT, Host,
    HostBuilder,
};
pub use input_body::InputBody;
pub use mount::{MountError, OriginalUri, ScriptName, TowerApplication, TowerBody, from_service};
pub use pool::{ConnectionPool, Pool, PoolConfig, PoolError, PoolStats};
pub use response::ResponseError;
pub use sync::{SyncConnection, SyncFuture, SyncService};
