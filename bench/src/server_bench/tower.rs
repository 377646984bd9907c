//! The rgi-tower benchmark's servers (issue 14, item 6; `bench/tower.sh`):
//! rgi-tower's bridge and an axum Router, each served by the very
//! hyper-util builder and accept loop that serve bare hyper, so that the
//! only difference from the baseline is the service.
//!
//! | Implementation | What answers `/hello` | Served by |
//! |---|---|---|
//! | `bridge` | the RGI hello through [`AsyncService`] / [`SyncService`] and one [`Host`] | hyper-util's builder, no rgi-server |
//! | `axum` | [`axum_hello`], an axum Router | hyper-util's builder (the axum user's reference) |
//! | `axum-in-rgi` | [`axum_hello`] mounted with [`rgi_tower::from_service`] | rgi-server (see [`rgi`](super::rgi)) |

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rgi::{Address, ConnectionInfo, Hints, InputUse, ServerInfo};
use rgi_tower::caps::HostCapabilities;
use rgi_tower::{AsyncService, Host, Pool, PoolConfig, SyncService};
use tokio::net::{TcpListener, TcpStream};

use super::target::{App, Implementation, Settings, TargetError, accept_loop, hyper_runtime};
use crate::apps::{HELLO_BODY, HELLO_PATH, async_hello, sync_hello};

/// The axum side of the comparison: one `GET /hello` route answering what
/// every other implementation answers (`200`, `content-type: text/plain`,
/// [`HELLO_BODY`]), the router's own empty `404` elsewhere.
///
/// # Examples
///
/// ```
/// let router = rgi_bench::server_bench::tower::axum_hello();
/// assert!(router.has_routes());
/// ```
pub fn axum_hello() -> Router {
    Router::new().route(HELLO_PATH, get(axum_hello_handler))
}

async fn axum_hello_handler() -> impl IntoResponse {
    // `Bytes` alone would say `application/octet-stream` and `&str`
    // `text/plain; charset=utf-8`: the field is set as the others set it.
    (
        [(CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        Bytes::from_static(HELLO_BODY),
    )
}

/// Starts `implementation` (one of [`Implementation::TOWER`]) serving `app`
/// on 127.0.0.1 (an ephemeral port). What it returns is held until the
/// process exits: the runtime for the hyper-served ones, rgi-server for
/// `axum-in-rgi`.
///
/// # Errors
///
/// [`TargetError::Unsupported`] for an application these implementations
/// do not serve (only the hellos; axum's router has no synchronous
/// flavour); binding or starting failed.
pub fn start(
    implementation: Implementation,
    app: App,
    settings: Settings,
) -> Result<(Started, SocketAddr), TargetError> {
    let unsupported = || TargetError::Unsupported {
        implementation: implementation.name(),
        app: app.name(),
    };
    match (implementation, app) {
        (Implementation::Bridge, App::HelloAsync | App::HelloSync) => {
            let (runtime, listener, addr) = hyper_runtime(settings)?;
            let served = runtime.spawn(serve_bridge(listener, addr, app, settings));
            drop(served);
            Ok((Started::Runtime(runtime), addr))
        }
        (Implementation::Axum, App::HelloAsync) => {
            let (runtime, listener, addr) = hyper_runtime(settings)?;
            let served = runtime.spawn(serve_axum(listener, settings));
            drop(served);
            Ok((Started::Runtime(runtime), addr))
        }
        (Implementation::AxumInRgi, App::HelloAsync) => {
            let (server, addr) = super::rgi::start_mounted(axum_hello(), settings)?;
            Ok((Started::Server(server), addr))
        }
        _ => Err(unsupported()),
    }
}

/// What [`start`] started.
#[derive(Debug)]
pub enum Started {
    /// A hyper-served implementation's runtime.
    Runtime(tokio::runtime::Runtime),
    /// rgi-server.
    Server(rgi_server::Server),
}

/// rgi-tower's services on bare hyper: per connection, its description
/// (peer and local address, as rgi-server gives it) and the service made
/// for it, handed to hyper-util's builder.
async fn serve_bridge(listener: TcpListener, local: SocketAddr, app: App, settings: Settings) {
    let pool = PoolConfig {
        threads: settings.pool.max(1),
        queue: settings.pool.max(1),
        per_connection: settings.pool.max(1),
    };
    let info = match ServerInfo::new("127.0.0.1", local.port()) {
        Ok(info) => info,
        Err(err) => {
            eprintln!("rgi-bench target: bridge: {err}");
            return;
        }
    };
    let builder = Arc::new(settings.hyper_builder());
    if app == App::HelloSync {
        let never_blocks = Hints::default()
            .with_input(InputUse::None)
            .with_may_block(false);
        let service = SyncService::new(
            sync_hello().with_hints(never_blocks),
            Host::builder(info).pool(pool).build(),
        );
        accept_loop(listener, move |stream| {
            let service = TowerToHyperService::new(service.connection(describe(&stream, local)));
            let builder = Arc::clone(&builder);
            tokio::spawn(async move {
                // A client that goes away mid-run is not the server's
                // failure; the run's counts come from the clients.
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        })
        .await;
    } else {
        // The pool and the capabilities exactly as the `rgi`
        // implementation's asynchronous host has them; this runs inside
        // the runtime, so its context can be declared.
        let mut host = Host::builder(info).shared_pool(Pool::new(pool));
        if let Ok(capabilities) = HostCapabilities::current() {
            host = host.capabilities(move |builder| capabilities.add_to(builder));
        }
        let service = AsyncService::new(async_hello(), host.build());
        accept_loop(listener, move |stream| {
            let service = TowerToHyperService::new(service.connection(describe(&stream, local)));
            let builder = Arc::clone(&builder);
            tokio::spawn(async move {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        })
        .await;
    }
}

/// The connection's description, as rgi-server makes it.
fn describe(stream: &TcpStream, local: SocketAddr) -> Arc<ConnectionInfo> {
    let mut info = ConnectionInfo::new().with_local_addr(Address::Tcp(local));
    if let Ok(peer) = stream.peer_addr() {
        info = info.with_peer_addr(Address::Tcp(peer));
    }
    Arc::new(info)
}

/// The axum Router on bare hyper, as `axum::serve` hands it over (a clone
/// per connection through `TowerToHyperService`), on the baseline's
/// builder.
async fn serve_axum(listener: TcpListener, settings: Settings) {
    let builder = Arc::new(settings.hyper_builder());
    let router = axum_hello();
    accept_loop(listener, move |stream| {
        let service = TowerToHyperService::new(router.clone());
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    })
    .await;
}
