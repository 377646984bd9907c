//! `TowerApplication` through real sockets on 127.0.0.1: an axum `Router`
//! mounted under a `SCRIPT_NAME` inside `rgi-server` (HTTP/1.1 and
//! HTTP/2), trailers both ways through a tower `service_fn` on HTTP/2 and
//! on HTTP/1.1, and the typed refusal of a service that needs tokio on the
//! toy server, which declares no runtime. The kit's `AsyncValidator` wraps
//! the mounted application in each and must report nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed unwrap is the test's failure"
)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Extension, Path};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rgi::{ConnectionInfo, InputError, ServerInfo};
use rgi_async::Runtime;
use rgi_conformance::validate::AsyncValidator;
use rgi_conformance::{Policy, Reports};
use rgi_tower::{InputBody, OriginalUri, ScriptName, from_service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every client side is bounded by this.
const BOUND: Duration = Duration::from_secs(30);

/// Runs a client future on a runtime of its own, bounded in time: the
/// servers run their own runtimes (or none).
fn run<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async { tokio::time::timeout(BOUND, future).await })
        .expect("bounded in time")
}

/// A JSON document the echo route takes and gives back.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Note {
    title: String,
    tags: Vec<String>,
}

/// Describes where the router runs, from the bridge's extensions.
async fn whoami(
    Extension(script): Extension<ScriptName>,
    Extension(original): Extension<OriginalUri>,
    Extension(connection): Extension<Arc<ConnectionInfo>>,
    uri: Uri,
) -> String {
    let peer = connection
        .remote_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default();
    format!(
        "uri={uri} script={} original={} peer={peer}",
        script.0, original.0
    )
}

/// The router a team already has: path parameters, a JSON echo, a nested
/// router, a route that needs tokio's timer, axum's own 404.
fn router() -> Router {
    let v1 = Router::new().route("/hello", get(|| async { "hello from v1" }));
    Router::new()
        .route("/", get(|| async { "root" }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("user {id}") }),
        )
        .route(
            "/files/{name}",
            get(|Path(name): Path<String>| async move { format!("file {name}") }),
        )
        .route(
            "/notes",
            post(|Json(note): Json<Note>| async move { Json(note) }),
        )
        .route("/whoami", get(whoami))
        .route(
            "/sleep",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                "slept"
            }),
        )
        .nest("/v1", v1)
}

fn server_info(script_name: &'static str) -> ServerInfo {
    ServerInfo::new("127.0.0.1", 80)
        .unwrap()
        .with_script_name(script_name)
        .unwrap()
}

async fn h1(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn h2<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

fn request(method: Method, target: &str, body: &'static str) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(target)
        .header(header::HOST, "127.0.0.1");
    if !body.is_empty() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    builder
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn text(response: Response<Incoming>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn an_axum_router_runs_under_a_script_name_inside_rgi_server() {
    let reports = Reports::new(Policy::Collect);
    let app = AsyncValidator::new(
        from_service(router()).require_runtime(Runtime::Tokio),
        reports.clone(),
    );
    let server = rgi_server::Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .server_info(server_info("/app"))
        .serve_async(app)
        .unwrap();
    let addr = server.local_addr().unwrap();
    run(async {
        let mut client = h1(addr).await;
        let cases: [(Method, &str, &str, StatusCode, &str); 11] = [
            (Method::GET, "/app", "", StatusCode::OK, "root"),
            (Method::GET, "/app/users/42", "", StatusCode::OK, "user 42"),
            // The raw target reaches the router: `%2F` stays inside its
            // segment, and axum decodes the parameter.
            (
                Method::GET,
                "/app/files/a%2Fb.txt",
                "",
                StatusCode::OK,
                "file a/b.txt",
            ),
            (
                Method::GET,
                "/app/files/a/b.txt",
                "",
                StatusCode::NOT_FOUND,
                "",
            ),
            (
                Method::POST,
                "/app/notes",
                r#"{"title":"rgi","tags":["tower","axum"]}"#,
                StatusCode::OK,
                r#"{"title":"rgi","tags":["tower","axum"]}"#,
            ),
            (
                Method::POST,
                "/app/notes",
                r#"{"title":"#,
                StatusCode::BAD_REQUEST,
                "",
            ),
            (
                Method::GET,
                "/app/v1/hello",
                "",
                StatusCode::OK,
                "hello from v1",
            ),
            (
                Method::GET,
                "/app/whoami?x=%2F",
                "",
                StatusCode::OK,
                "uri=/whoami?x=%2F script=/app original=/app/whoami?x=%2F peer=127.0.0.1",
            ),
            (Method::GET, "/app/sleep", "", StatusCode::OK, "slept"),
            (Method::GET, "/app/nowhere", "", StatusCode::NOT_FOUND, ""),
            (Method::HEAD, "/app/users/42", "", StatusCode::OK, ""),
        ];
        for (method, target, body, status, expected) in cases {
            let response = client
                .send_request(request(method.clone(), target, body))
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{method} {target}");
            let length = response.headers().get(header::CONTENT_LENGTH).cloned();
            let answer = text(response).await;
            if status == StatusCode::OK {
                assert_eq!(answer, expected, "{method} {target}");
            }
            if target == "/app/users/42" {
                // axum's length, kept for GET and for HEAD alike.
                assert_eq!(
                    length,
                    Some(HeaderValue::from_static("7")),
                    "{method} {target}"
                );
            }
            if target == "/app/notes" && status == StatusCode::BAD_REQUEST {
                assert!(answer.contains("EOF"), "axum's own rejection: {answer}");
            }
        }

        // The same router over HTTP/2.
        let mut client = h2::<Full<Bytes>>(addr).await;
        let response = client
            .send_request(request(Method::GET, "http://127.0.0.1/app/users/7", ""))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(text(response).await, "user 7");
    });
    server.shutdown();
    assert!(reports.is_empty(), "{:#?}", reports.all());
}

/// Echoes the request body and its trailers (plus one of its own) as the
/// response's trailers; with `?announce` it announces them in a `Trailer`
/// field, as HTTP/1.1 needs.
fn trailer_echo() -> impl tower_service::Service<
    Request<InputBody>,
    Response = Response<impl http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static>,
    Error = InputError,
    Future = impl Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|request: Request<InputBody>| async move {
        let announce = request.uri().query() == Some("announce");
        let collected = request.into_body().collect().await?;
        let mut trailers = collected.trailers().cloned().unwrap_or_default();
        trailers.insert("x-echoed", HeaderValue::from_static("yes"));
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(collected.to_bytes())),
            Ok(Frame::trailers(trailers)),
        ];
        let mut response = Response::new(StreamBody::new(futures_util::stream::iter(frames)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if announce {
            response.headers_mut().insert(
                header::TRAILER,
                HeaderValue::from_static("x-checksum, x-echoed"),
            );
        }
        Ok::<_, InputError>(response)
    })
}

/// A server of [`trailer_echo`], under the validator when `reports` is
/// given.
///
/// Each test runs both ways: the validator passes the server's request
/// trailers on to the service (`[RGI-TRAILER-2]`) and watches the
/// response's.
fn trailer_server(reports: Option<&Reports>) -> rgi_server::Server {
    let builder = rgi_server::Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2);
    match reports {
        Some(reports) => builder.serve_async(AsyncValidator::new(
            from_service(trailer_echo()),
            reports.clone(),
        )),
        None => builder.serve_async(from_service(trailer_echo())),
    }
    .unwrap()
}

/// Sends `ping pong` with an `x-checksum` trailer over HTTP/2 and
/// returns the response's trailers.
async fn h2_trailer_exchange(addr: SocketAddr) -> HeaderMap {
    let mut client = h2(addr).await;
    let mut sent = HeaderMap::new();
    sent.insert("x-checksum", HeaderValue::from_static("c0ffee"));
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"ping "))),
        Ok(Frame::data(Bytes::from_static(b"pong"))),
        Ok(Frame::trailers(sent)),
    ];
    let body = StreamBody::new(futures_util::stream::iter(frames));
    // Unannounced, like a gRPC service's: HTTP/2 carries them anyway.
    let request = Request::post("http://127.0.0.1/echo").body(body).unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key(header::CONTENT_LENGTH));
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("response trailers");
    assert_eq!(collected.to_bytes(), "ping pong");
    trailers
}

#[test]
fn trailers_cross_the_bridge_both_ways_on_http2() {
    let server = trailer_server(None);
    let addr = server.local_addr().unwrap();
    let trailers = run(h2_trailer_exchange(addr));
    server.shutdown();
    assert_eq!(trailers["x-checksum"], "c0ffee");
    assert_eq!(trailers["x-echoed"], "yes");
    assert_eq!(trailers.len(), 2);

    let reports = Reports::new(Policy::Collect);
    let server = trailer_server(Some(&reports));
    let addr = server.local_addr().unwrap();
    let trailers = run(h2_trailer_exchange(addr));
    server.shutdown();
    assert_eq!(trailers["x-checksum"], "c0ffee");
    assert_eq!(trailers["x-echoed"], "yes");
    // Unannounced trailers are delivered on HTTP/2, and the validator says
    // once that the head should have announced them (a SHOULD).
    let all = reports.all();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].clause(), "RGI-TRAILER-5");
    assert!(all[0].is_warning());
}

async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    String::from_utf8_lossy(&received).into_owned()
}

/// The trailer section of a chunked HTTP/1.1 response, lower-cased.
fn trailer_section(response: &str) -> String {
    let lower = response.to_ascii_lowercase();
    let (_, after) = lower.rsplit_once("\r\n0\r\n").expect("a last chunk");
    after.to_owned()
}

#[test]
fn trailers_cross_the_bridge_on_http1_when_announced_and_asked_for() {
    for validated in [false, true] {
        let reports = Reports::new(Policy::Collect);
        let server = trailer_server(validated.then_some(&reports));
        let addr = server.local_addr().unwrap();
        let (asked, not_asked) = run(http1_trailer_exchanges(addr));
        server.shutdown();
        assert!(reports.is_empty(), "{:#?}", reports.all());

        let lower = asked.to_ascii_lowercase();
        assert!(lower.starts_with("http/1.1 200"), "{asked}");
        assert!(lower.contains("transfer-encoding: chunked"), "{asked}");
        assert!(lower.contains("\r\n\r\n4\r\nping\r\n0\r\n"), "{asked}");
        let trailers = trailer_section(&asked);
        assert!(trailers.contains("x-echoed: yes\r\n"), "{asked}");
        assert!(trailers.contains("x-checksum: c0ffee\r\n"), "{asked}");

        // Without `TE: trailers` they are dropped, and the response is
        // whole all the same.
        let lower = not_asked.to_ascii_lowercase();
        assert!(lower.starts_with("http/1.1 200"), "{not_asked}");
        assert!(
            lower.ends_with("\r\n4\r\nping\r\n0\r\n\r\n"),
            "{not_asked:?}"
        );
        assert_eq!(trailer_section(&not_asked), "\r\n");
    }
}

/// One chunked request with a trailer section, asking for trailers, and
/// one that does not ask: the two raw answers.
async fn http1_trailer_exchanges(addr: SocketAddr) -> (String, String) {
    let asked = raw_exchange(
        addr,
        b"POST /echo?announce HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\
          TE: trailers\r\nConnection: close\r\n\r\n4\r\nping\r\n0\r\nx-checksum: c0ffee\r\n\r\n",
    )
    .await;
    let not_asked = raw_exchange(
        addr,
        b"POST /echo?announce HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n4\r\nping\r\n0\r\nx-checksum: c0ffee\r\n\r\n",
    )
    .await;
    (asked, not_asked)
}

/// What the global subscriber of this test binary wrote.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::ERROR)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    }))
}

/// A writer into the captured log.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_service_that_needs_tokio_is_refused_where_no_runtime_is_declared() {
    let log = captured_log();
    let reports = Reports::new(Policy::Collect);
    let app = AsyncValidator::new(
        from_service(router()).require_runtime(Runtime::Tokio),
        reports.clone(),
    );
    let toy = rgi_toy_server::serve_async(app).unwrap();
    let addr = toy.addr();
    let answer = run(raw_exchange(
        addr,
        b"GET /sleep HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    ));
    toy.stop().unwrap();
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(
        !answer.contains("tokio"),
        "the cause stays in the log: {answer}"
    );
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        log.contains(
            "this application needs the tokio runtime's context, and the server declares no runtime"
        ),
        "{log}"
    );
    assert!(reports.is_empty(), "{:#?}", reports.all());
}
