//! An axum `Router` mounted as an RGI application inside `rgi-server`,
//! under the script name `/api`: `from_service` makes it an asynchronous
//! RGI application, and the server (which declares the tokio runtime axum
//! needs) serves it. The Router sees mount-relative paths, and finds the
//! mount point in its requests' extensions (`rgi_tower::ScriptName`) to
//! build URLs that reach it.
//!
//! ```text
//! cargo run -p rgi-tower --example axum_in_rgi            # 127.0.0.1:8080
//! curl http://127.0.0.1:8080/api/
//! curl -i -H 'content-type: application/json' \
//!      -d '{"title":"rgi","tags":["axum","tower"]}' http://127.0.0.1:8080/api/notes
//! curl http://127.0.0.1:8080/api/notes/7
//! curl http://127.0.0.1:8080/api/whoami?x=1
//! ```
//!
//! `cargo run -p rgi-tower --example axum_in_rgi -- --check` serves on a
//! free port, sends its own requests (the root, the JSON routes, axum's
//! own rejection and 404, where the Router runs), checks each answer,
//! stops the server gracefully and exits 0 when everything held, 1
//! otherwise, in well under a second (at most 30 when something is held
//! back).
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rgi::{ConnectionInfo, ServerInfo};
use rgi_async::Runtime;
use rgi_server::Server;
use rgi_tower::{OriginalUri, ScriptName, from_service};

/// Where the Router is mounted.
const MOUNT: &str = "/api";

/// A note, as the JSON routes take and give it.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Note {
    title: String,
    tags: Vec<String>,
}

/// A stored note, with the URL that reaches it from the server's root.
#[derive(Debug, serde::Serialize)]
struct Stored {
    id: u64,
    url: String,
    note: Note,
}

/// The mount point, as the bridge hands it to the Router (empty at the
/// root).
fn mount(script: &ScriptName) -> String {
    script.0.to_string_lossy().into_owned()
}

/// The Router a team already has: a root, JSON in and out, a path
/// parameter, and a route that describes where it runs.
fn router() -> Router {
    let ids = Arc::new(AtomicU64::new(0));
    Router::new()
        .route(
            "/",
            get(|Extension(script): Extension<ScriptName>| async move {
                format!("an axum Router, mounted at {}\n", mount(&script))
            }),
        )
        .route(
            "/notes",
            post(
                |State(ids): State<Arc<AtomicU64>>,
                 Extension(script): Extension<ScriptName>,
                 Json(note): Json<Note>| async move {
                    let id = ids.fetch_add(1, Ordering::Relaxed) + 1;
                    let url = format!("{}/notes/{id}", mount(&script));
                    let mut headers = HeaderMap::new();
                    if let Ok(location) = url.parse() {
                        headers.insert(header::LOCATION, location);
                    }
                    (StatusCode::CREATED, headers, Json(Stored { id, url, note }))
                },
            ),
        )
        .route(
            "/notes/{id}",
            get(
                |Path(id): Path<u64>, Extension(script): Extension<ScriptName>| async move {
                    let note = Note {
                        title: format!("note {id}"),
                        tags: vec![String::from("stored")],
                    };
                    let url = format!("{}/notes/{id}", mount(&script));
                    Json(Stored { id, url, note }).into_response()
                },
            ),
        )
        .route(
            "/whoami",
            get(
                |uri: Uri,
                 Extension(original): Extension<OriginalUri>,
                 Extension(connection): Extension<Arc<ConnectionInfo>>| async move {
                    let peer = connection
                        .remote_addr()
                        .map(|peer| peer.ip().to_string())
                        .unwrap_or_default();
                    format!("uri={uri} original={} peer={peer}\n", original.0)
                },
            ),
        )
        .with_state(ids)
}

/// Serves the Router under [`MOUNT`] on `listener`.
///
/// # Errors
///
/// The server could not start.
fn start(listener: std::net::TcpListener, signals: bool) -> Result<Server, Box<dyn Error>> {
    let port = listener.local_addr()?.port();
    let app = from_service(router()).require_runtime(Runtime::Tokio);
    let server = Server::builder()
        .listener(listener, None)
        .workers(2)
        .handle_signals(signals)
        .server_info(ServerInfo::new("127.0.0.1", port)?.with_script_name(MOUNT)?)
        .serve_async(app)?;
    Ok(server)
}

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::args().nth(1).as_deref() == Some("--check") {
        return check();
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
    let addr = listener.local_addr()?;
    let server = start(listener, true)?;
    println!("an axum Router at {MOUNT} inside rgi-server, on http://{addr} (Ctrl-C to stop)");
    println!("  curl http://{addr}{MOUNT}/");
    println!(
        "  curl -i -H 'content-type: application/json' -d '{{\"title\":\"rgi\",\"tags\":[\"axum\"]}}' http://{addr}{MOUNT}/notes"
    );
    println!("  curl http://{addr}{MOUNT}/notes/7");
    println!("  curl 'http://{addr}{MOUNT}/whoami?x=1'");
    server.wait();
    Ok(())
}

/// One answer: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends one request on a fresh connection.
async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    json: Option<&'static str>,
) -> Result<Answer, Box<dyn Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(target)
        .header(header::HOST, "127.0.0.1");
    if json.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = Full::new(Bytes::from_static(json.unwrap_or("").as_bytes()));
    let response = sender.send_request(request.body(body)?).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// `--check`: serves on a free port, asks, checks, stops.
fn check() -> Result<(), Box<dyn Error>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = start(listener, false)?;
    // rgi-server runs its own runtime; the client gets one of its own.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answers = client.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            Ok::<_, Box<dyn Error + Send + Sync>>([
                send(addr, "GET", "/api/", None).await?,
                send(
                    addr,
                    "POST",
                    "/api/notes",
                    Some(r#"{"title":"rgi","tags":["axum","tower"]}"#),
                )
                .await?,
                send(addr, "GET", "/api/notes/7", None).await?,
                send(addr, "POST", "/api/notes", Some(r#"{"title":"#)).await?,
                send(addr, "GET", "/api/nowhere", None).await?,
                send(addr, "GET", "/api/whoami?x=%2F", None).await?,
            ])
        })
        .await
    });
    let answers = match answers {
        Ok(Ok(answers)) => answers,
        Ok(Err(err)) => return Err(err.to_string().into()),
        Err(_) => return Err("the requests did not finish within 30 s".into()),
    };
    let [root, created, fetched, rejected, missing, whoami] = answers;

    let mut failures = 0;
    let mut verdict = |what: &str, ok: bool| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failures += 1;
        }
    };
    verdict(
        "the Router's root answers at the mount point, and knows it",
        root.status == StatusCode::OK && root.body == "an axum Router, mounted at /api\n",
    );
    verdict(
        "POST JSON: 201, the note echoed, its URL and Location under the mount point",
        created.status == StatusCode::CREATED
            && created
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|value| value == "application/json")
            && created
                .headers
                .get(header::LOCATION)
                .is_some_and(|value| value == "/api/notes/1")
            && created.json()
                == serde_json::json!({
                    "id": 1,
                    "url": "/api/notes/1",
                    "note": {"title": "rgi", "tags": ["axum", "tower"]}
                }),
    );
    verdict(
        "GET JSON with a path parameter",
        fetched.status == StatusCode::OK && fetched.json()["url"] == "/api/notes/7",
    );
    verdict(
        "axum's own rejection of a broken JSON body (400)",
        rejected.status == StatusCode::BAD_REQUEST,
    );
    verdict(
        "axum's own 404 below the mount point",
        missing.status == StatusCode::NOT_FOUND,
    );
    verdict(
        "the Router sees a mount-relative target, the original one and the peer",
        whoami.status == StatusCode::OK
            && whoami.body == "uri=/whoami?x=%2F original=/api/whoami?x=%2F peer=127.0.0.1\n",
    );

    server.shutdown();
    if failures > 0 {
        return Err(format!("{failures} checks failed").into());
    }
    println!("the axum Router answered inside rgi-server as expected; the server stopped");
    Ok(())
}
