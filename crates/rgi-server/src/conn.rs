//! One connection from accept to close: TLS handshake or protocol
//! detection, hyper's HTTP/1.1 or HTTP/2 connection, the connection's own
//! limits (age, idle HTTP/2, request count), graceful and forced shutdown,
//! and upgraded connections until their stream is dropped.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rgi::{Address, ConnectionInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::Limits;
use crate::io::{ConnIo, ConnState, H2_PREFACE, HeadTimers, Replay};
use crate::listen::Stream;
use crate::make::ServiceFactory;
use crate::service::ConnectionService;
use crate::state::{ConnectionGuard, Phase, Shared};

/// What every connection of one server shares.
pub(crate) struct ConnContext<F> {
    pub(crate) factory: F,
    pub(crate) http1: http1::Builder,
    pub(crate) http2: http2::Builder<TokioExecutor>,
    pub(crate) limits: Limits,
    /// How long an HTTP/2 connection may have no open stream.
    pub(crate) h2_idle: Duration,
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Serves one accepted connection; the permit and the guard are held until
/// the connection (upgraded or not) is gone.
pub(crate) async fn serve<F: ServiceFactory>(
    context: Arc<ConnContext<F>>,
    stream: Stream,
    peer: Address,
    local: Option<Address>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    guard: ConnectionGuard,
    permit: OwnedSemaphorePermit,
) {
    let span = tracing::debug_span!("connection", peer = %peer, tls = tls.is_some());
    async move {
        let accepted = Instant::now();
        let mut info = ConnectionInfo::new().with_peer_addr(peer);
        if let Some(local) = local {
            info = info.with_local_addr(local);
        }
        match (stream, tls) {
            (Stream::Tcp(tcp), Some(acceptor)) => {
                let handshake = tokio::time::timeout(
                    context.limits.tls_handshake_timeout,
                    acceptor.accept(tcp),
                )
                .await;
                let tls_stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(
                            limit = "tls_handshake_timeout",
                            timeout_ms = crate::millis(context.limits.tls_handshake_timeout),
                            "TLS handshake not finished in time: closed"
                        );
                        return;
                    }
                };
                let session = tls_stream.get_ref().1;
                let protocol = if session.alpn_protocol() == Some(b"h2") {
                    Protocol::Http2
                } else {
                    Protocol::Http1
                };
                info = info.with_tls(crate::tls::tls_info(session));
                drive(
                    &context,
                    tls_stream,
                    protocol,
                    Replay::default(),
                    None,
                    info,
                    accepted,
                )
                .await;
            }
            (Stream::Tcp(tcp), None) => {
                plain(&context, tcp, info, accepted).await;
            }
            (Stream::Unix(unix), _) => {
                plain(&context, unix, info, accepted).await;
            }
        }
    }
    .instrument(span)
    .await;
    drop(permit);
    drop(guard);
}

/// Plain text: HTTP/2 with prior knowledge when the preface arrives, else
/// HTTP/1.1.
async fn plain<F, IO>(context: &ConnContext<F>, mut io: IO, info: ConnectionInfo, accepted: Instant)
where
    F: ServiceFactory,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = context.limits.protocol_detection_timeout;
    match tokio::time::timeout(timeout, detect(&mut io)).await {
        Ok(Ok(Some((protocol, replay, first_byte)))) => {
            let head_since = (protocol == Protocol::Http1).then_some(first_byte);
            drive(context, io, protocol, replay, head_since, info, accepted).await;
        }
        Ok(Ok(None)) => tracing::trace!("closed before sending anything"),
        Ok(Err(error)) => tracing::debug!(%error, "read error before the first request"),
        Err(_) => tracing::debug!(
            limit = "protocol_detection_timeout",
            timeout_ms = crate::millis(timeout),
            "protocol not known in time: closed"
        ),
    }
}

/// Reads until the bytes differ from the HTTP/2 preface or match all of it.
///
/// # Cancel safety
///
/// Not cancel safe: bytes read are lost when the future is dropped, which
/// only happens when the connection is abandoned anyway.
async fn detect<IO: AsyncRead + Unpin>(
    io: &mut IO,
) -> std::io::Result<Option<(Protocol, Replay, Instant)>> {
    let mut bytes = [0_u8; 24];
    let mut len = 0;
    let mut first_byte = None;
    loop {
        let read = io.read(&mut bytes[len..]).await?;
        if read == 0 {
            return Ok(None);
        }
        let since = *first_byte.get_or_insert_with(Instant::now);
        len += read;
        if bytes[..len] != H2_PREFACE[..len] {
            return Ok(Some((Protocol::Http1, Replay::new(bytes, len), since)));
        }
        if len == H2_PREFACE.len() {
            return Ok(Some((Protocol::Http2, Replay::new(bytes, len), since)));
        }
    }
}

/// A hyper connection that can be asked to finish gracefully.
trait Graceful: Future<Output = hyper::Result<()>> {
    fn begin_graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<crate::BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<crate::BoxError>,
{
    fn begin_graceful_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Graceful for http2::Connection<I, S, TokioExecutor>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<crate::BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<crate::BoxError>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn begin_graceful_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

async fn drive<F, IO>(
    context: &ConnContext<F>,
    io: IO,
    protocol: Protocol,
    replay: Replay,
    head_since: Option<Instant>,
    info: ConnectionInfo,
    accepted: Instant,
) where
    F: ServiceFactory,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &context.limits;
    let is_h2 = protocol == Protocol::Http2;
    let state = ConnState::new(accepted, is_h2, limits.max_requests_per_connection);
    let timers = (!is_h2).then(|| {
        HeadTimers::new(
            limits.header_read_timeout,
            limits.keep_alive_idle,
            accepted,
            head_since,
        )
    });
    let io = TokioIo::new(ConnIo::new(io, Arc::clone(&state), replay, timers));
    let service = ConnectionService::new(
        context.factory.connection(Arc::new(info)),
        Arc::clone(&state),
        Arc::clone(&context.shared),
    );
    let mut phase = context.shared.phase.subscribe();
    match protocol {
        Protocol::Http1 => {
            let connection = context.http1.serve_connection(io, service).with_upgrades();
            run(connection, &state, &mut phase, limits, None).await;
        }
        Protocol::Http2 => {
            let connection = context.http2.serve_connection(io, service);
            let idle = Some(context.h2_idle);
            run(connection, &state, &mut phase, limits, idle).await;
        }
    }
    if state.upgraded.load(Ordering::Acquire) {
        hold_upgraded(&state, &mut phase).await;
    }
}

/// Polls the hyper connection to its end while watching the shutdown phase,
/// the connection's age, its request count and (HTTP/2) its idle time.
async fn run<C: Graceful>(
    connection: C,
    state: &ConnState,
    phase: &mut watch::Receiver<Phase>,
    limits: &Limits,
    h2_idle: Option<Duration>,
) {
    let mut connection = pin!(connection);
    let far = state.opened + Duration::from_secs(86_400 * 365);
    let age = pin!(tokio::time::sleep_until(
        limits
            .max_connection_age
            .map_or(far, |age| state.opened + age)
    ));
    let mut age = age;
    let idle = pin!(tokio::time::sleep_until(
        h2_idle.map_or(far, |idle| state.opened + idle)
    ));
    let mut idle = idle;
    let mut graceful = false;
    let mut reason = "";
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                match result {
                    Ok(()) => tracing::trace!(reason, "connection closed"),
                    Err(error) => log_connection_error(&error),
                }
                return;
            }
            changed = phase.changed() => {
                let now = if changed.is_err() { Phase::Closing } else { *phase.borrow_and_update() };
                if now == Phase::Closing {
                    tracing::debug!("shutdown grace period over: connection cut off");
                    return;
                }
                if !graceful {
                    graceful = true;
                    reason = "shutdown";
                    connection.as_mut().begin_graceful_shutdown();
                }
            }
            () = &mut age, if !graceful && limits.max_connection_age.is_some() => {
                graceful = true;
                reason = "max_connection_age";
                connection.as_mut().begin_graceful_shutdown();
            }
            () = state.notify.notified(), if !graceful && state.is_h2 => {
                if state.max_requests.is_some_and(|max| state.started.load(Ordering::Acquire) >= max) {
                    graceful = true;
                    reason = "max_requests_per_connection";
                    connection.as_mut().begin_graceful_shutdown();
                }
            }
            () = &mut idle, if !graceful && h2_idle.is_some() => {
                let Some(timeout) = h2_idle else { continue };
                let active = state.started.load(Ordering::Acquire) != state.finished.load(Ordering::Acquire);
                if active {
                    idle.as_mut().reset(Instant::now() + timeout);
                    continue;
                }
                let last_end = state.opened + Duration::from_nanos(state.last_end_nanos.load(Ordering::Relaxed));
                let deadline = last_end + timeout;
                if Instant::now() >= deadline {
                    graceful = true;
                    reason = "http2_idle_timeout";
                    tracing::debug!(limit = "http2_idle_timeout", timeout_ms = crate::millis(timeout), "no open stream in time: GOAWAY");
                    connection.as_mut().begin_graceful_shutdown();
                } else {
                    idle.as_mut().reset(deadline);
                }
            }
        }
    }
}

fn log_connection_error(error: &hyper::Error) {
    if error.is_parse() || error.is_parse_too_large() || error.is_parse_status() {
        tracing::info!(%error, "request refused by the HTTP/1.1 parser; connection closed");
    } else if error.is_timeout() {
        tracing::debug!(%error, "connection timed out");
    } else {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// An upgraded connection stays counted until its stream is dropped; once
/// the grace period is over its reads and writes fail.
async fn hold_upgraded(state: &ConnState, phase: &mut watch::Receiver<Phase>) {
    let mut forced = false;
    while state.io_alive.load(Ordering::Acquire) {
        tokio::select! {
            () = state.notify.notified() => {}
            changed = phase.changed(), if !forced => {
                let closing = changed.is_err() || *phase.borrow_and_update() == Phase::Closing;
                if closing {
                    forced = true;
                    tracing::debug!("shutdown grace period over: upgraded connection cut off");
                    state.force_close();
                }
            }
        }
    }
}
