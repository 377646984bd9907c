//! rgi-server serving each scenario's application through rgi-tower, built
//! with the same [`Settings`] as the bare hyper baseline.
//!
//! | App | RGI application | How rgi-server runs it |
//! |---|---|---|
//! | hello-async | `rgi_async::from_fn` hello | polled on the runtime |
//! | hello-sync | `rgi::from_fn` hello, hints: no input, never blocks | inline on the runtime |
//! | blocking | `rgi::from_fn`, [`block`] then hello, no hints | on the pool |
//! | park | [`ParkApp`]: a tokio timer inside `poll_step` (runtime context) | polled on the runtime |
//! | mixed | [`MixedApp`]: hello, or an offloaded sleep then hello | offload on the pool |
//! | stream | [`StreamApp`]: the static chunks of [`Repeat`] | polled as hyper takes them |
//!
//! [`start_mounted`] serves a tower service (the rgi-tower benchmark's axum
//! Router) mounted with `rgi_tower::from_service`, as hello-async is
//! served.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::StatusCode;
use rgi::{BoxError, Environ, Hints, InputUse, ResponseHead, ServerInfo, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Capabilities, OffloadFuture, Runtime, Step};
use rgi_server::{Http1Settings, Http2Settings, Limits, Server};
use rgi_tower::caps::HostCapabilities;
use rgi_tower::{AsyncService, Host, Pool, PoolConfig, SyncService};

use super::target::{
    App, MIXED_SLEEP, PARK_FOR, ParkedGuard, Repeat, STREAM_BYTES, Settings, TargetError, block,
    paths,
};
use crate::apps::{async_hello, hello, sync_hello};

/// Starts rgi-server on 127.0.0.1 (an ephemeral port) serving `app`.
///
/// # Errors
///
/// Binding or starting the server failed.
pub fn start(app: App, settings: Settings) -> Result<(Server, SocketAddr), TargetError> {
    let (builder, info, pool, addr) = configured(settings)?;
    let never_blocks = Hints::default()
        .with_input(InputUse::None)
        .with_may_block(false);
    let served = match app {
        App::HelloAsync => serve_async(builder, info, pool, async_hello()),
        App::HelloSync => serve_sync(builder, info, pool, sync_hello().with_hints(never_blocks)),
        App::Blocking => serve_sync(
            builder,
            info,
            pool,
            rgi::from_fn(|environ: Environ, start: &mut StartResponse<'_>| {
                block();
                hello(&environ, start)
            }),
        ),
        App::Park => serve_async(builder, info, pool, ParkApp),
        App::Mixed => serve_async(builder, info, pool, MixedApp),
        App::Stream => serve_async(builder, info, pool, StreamApp),
    };
    Ok((served?, addr))
}

/// Starts rgi-server on 127.0.0.1 (an ephemeral port) serving the tower
/// service `service` mounted with [`rgi_tower::from_service`], as
/// [`start`] serves its asynchronous applications (the rgi-tower
/// benchmark's `axum-in-rgi`).
///
/// # Errors
///
/// Binding or starting the server failed.
pub fn start_mounted<S>(service: S, settings: Settings) -> Result<(Server, SocketAddr), TargetError>
where
    rgi_tower::TowerApplication<S>: AsyncApplication,
    <rgi_tower::TowerApplication<S> as AsyncApplication>::Body: Unpin,
{
    let (builder, info, pool, addr) = configured(settings)?;
    let served = serve_async(builder, info, pool, rgi_tower::from_service(service))?;
    Ok((served, addr))
}

/// rgi-server's builder on a fresh listener, configured with `settings`;
/// the server's description and the pool's configuration to go with it.
fn configured(
    settings: Settings,
) -> Result<(rgi_server::Builder, ServerInfo, PoolConfig, SocketAddr), TargetError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let info = ServerInfo::new("127.0.0.1", addr.port()).map_err(std::io::Error::other)?;
    let builder = Server::builder()
        .listener(listener, None)
        .workers(settings.workers.max(1))
        .limits(
            Limits::default()
                .header_read_timeout(settings.header_read_timeout)
                .max_headers(settings.max_headers)
                .max_header_bytes(settings.max_header_bytes),
        )
        .http1(Http1Settings::default().pipeline_flush(settings.pipeline_flush))
        .http2(
            Http2Settings::default()
                .max_concurrent_streams(settings.max_concurrent_streams)
                .initial_stream_window(settings.stream_window)
                .initial_connection_window(settings.connection_window)
                .max_header_list_size(settings.max_header_bytes_u32())
                .max_send_buffer(settings.max_send_buffer),
        );
    let pool = PoolConfig {
        threads: settings.pool.max(1),
        queue: settings.pool.max(1),
        per_connection: settings.pool.max(1),
    };
    Ok((builder, info, pool, addr))
}

fn serve_sync<A: rgi::Application>(
    builder: rgi_server::Builder,
    info: ServerInfo,
    pool: PoolConfig,
    app: A,
) -> Result<Server, rgi_server::ServeError>
where
    A::Body: Unpin,
{
    let service = SyncService::new(app, Host::builder(info).pool(pool).build());
    builder.serve(move |connection| service.connection(connection))
}

fn serve_async<A: AsyncApplication>(
    builder: rgi_server::Builder,
    info: ServerInfo,
    pool: PoolConfig,
    app: A,
) -> Result<Server, rgi_server::ServeError>
where
    A::Body: Unpin,
{
    let app = Arc::new(app);
    // The pool's threads start now, as a synchronous application's do, so
    // that a run's "before" snapshot already counts them.
    let pool = Pool::new(pool);
    // The runtime context is declared from inside the runtime rgi-server
    // starts, so the service is made on the first connection.
    let service: OnceLock<AsyncService<Arc<A>>> = OnceLock::new();
    builder.serve(move |connection| {
        service
            .get_or_init(|| {
                let mut host = Host::builder(info.clone()).shared_pool(pool.clone());
                if let Ok(capabilities) = HostCapabilities::current() {
                    host = host.capabilities(move |builder| capabilities.add_to(builder));
                }
                AsyncService::new(Arc::clone(&app), host.build())
            })
            .connection(connection)
    })
}

/// The long-poll: checks that the host lends tokio (runtime context), then
/// waits on a tokio timer for [`PARK_FOR`] holding its environ, and answers
/// hello.
#[derive(Debug, Clone, Copy)]
pub struct ParkApp;

/// [`ParkApp`]'s body.
#[derive(Debug)]
pub struct ParkBody {
    environ: Environ,
    timer: Pin<Box<tokio::time::Sleep>>,
    parked: Option<ParkedGuard>,
}

impl AsyncApplication for ParkApp {
    type Body = ParkBody;

    fn call(&self, environ: Environ, _start: &mut StartResponse<'_>) -> Result<ParkBody, BoxError> {
        Capabilities::of(&environ)
            .ok_or("not an asynchronous host")?
            .require_runtime(Runtime::Tokio)?;
        Ok(ParkBody {
            environ,
            timer: Box::pin(tokio::time::sleep(PARK_FOR)),
            parked: Some(ParkedGuard::new()),
        })
    }
}

impl AsyncBody for ParkBody {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if self.parked.is_none() {
            return Poll::Ready(None);
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.parked = None;
        Step::ready(hello(&self.environ, start))
    }
}

/// The mixed scenario's application: `/hello` answered at once;
/// `/hello?sleep` after a blocking sleep of [`MIXED_SLEEP`] offloaded to
/// the host's pool.
#[derive(Debug, Clone, Copy)]
pub struct MixedApp;

/// [`MixedApp`]'s body.
#[derive(Debug)]
pub struct MixedBody {
    environ: Environ,
    sleeping: Option<OffloadFuture<()>>,
    done: bool,
}

impl AsyncApplication for MixedApp {
    type Body = MixedBody;

    fn call(
        &self,
        environ: Environ,
        _start: &mut StartResponse<'_>,
    ) -> Result<MixedBody, BoxError> {
        let sleeping = if environ.query_string() == paths::SLEEP_QUERY {
            let offload = Capabilities::of(&environ)
                .ok_or("not an asynchronous host")?
                .offload();
            Some(offload.run(|| std::thread::sleep(MIXED_SLEEP)))
        } else {
            None
        };
        Ok(MixedBody {
            environ,
            sleeping,
            done: false,
        })
    }
}

impl AsyncBody for MixedBody {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(sleeping) = self.sleeping.as_mut() {
            match Pin::new(sleeping).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(Ok(())) => self.sleeping = None,
            }
        }
        self.done = true;
        Step::ready(hello(&self.environ, start))
    }
}

/// The slow readers' application: `/stream` answered with
/// [`STREAM_BYTES`] of static chunks, anything else with an empty 404.
#[derive(Debug, Clone, Copy)]
pub struct StreamApp;

/// [`StreamApp`]'s body.
#[derive(Debug)]
pub struct StreamBody {
    body: Repeat,
    status: Option<StatusCode>,
}

impl AsyncApplication for StreamApp {
    type Body = StreamBody;

    fn call(
        &self,
        environ: Environ,
        _start: &mut StartResponse<'_>,
    ) -> Result<StreamBody, BoxError> {
        let (status, length) = if environ.path_info() == paths::STREAM {
            (StatusCode::OK, STREAM_BYTES)
        } else {
            (StatusCode::NOT_FOUND, 0)
        };
        Ok(StreamBody {
            body: Repeat::new(length),
            status: Some(status),
        })
    }
}

impl AsyncBody for StreamBody {
    fn poll_step(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if let Some(status) = self.status.take() {
            start.start(ResponseHead::new(status))?;
        }
        Poll::Ready(self.body.next_chunk().map(|chunk| Ok(Step::Chunk(chunk))))
    }

    fn size_hint(&self) -> Option<u64> {
        hyper::body::Body::size_hint(&self.body).exact()
    }
}
