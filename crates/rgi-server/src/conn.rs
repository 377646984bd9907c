//! One connection from accept to close: TLS handshake or protocol
//! detection, hyper's HTTP/1.1 or HTTP/2 connection, the connection's own
//! limits (age, idle HTTP/2, request count), graceful and forced shutdown,
//! and upgraded connections until their stream is dropped.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pin_project_lite::pin_project;
use rgi::{Address, ConnectionInfo, TlsInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::Limits;
use crate::io::{ConnIo, ConnState, H2_PREFACE, HeadTimers, Replay, Stream};
use crate::make::ServiceFactory;
use crate::proxy_protocol::{TrustedProxies, read_proxy_header};
use crate::service::ConnectionService;
use crate::state::{ConnectionGuard, Phase, Shared};
use crate::strict::RequestRules;

/// What every connection of one server shares.
pub(crate) struct ConnContext<F> {
    pub(crate) factory: F,
    pub(crate) http1: http1::Builder,
    pub(crate) http2: http2::Builder<TokioExecutor>,
    pub(crate) limits: Limits,
    /// How long an HTTP/2 connection may have no open stream.
    pub(crate) h2_idle: Duration,
    pub(crate) shared: Arc<Shared>,
    /// The protocol decisions of spec §12.3 and the target limit.
    pub(crate) rules: RequestRules,
    /// Peers whose connections begin with a PROXY protocol header.
    pub(crate) trusted_proxies: Option<TrustedProxies>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Serves one accepted connection; the permit and the guard are held until
/// the connection (upgraded or not) is gone.
///
/// This future is what every connection's task holds for its whole life,
/// parked requests included, so its size is memory per connection. It
/// runs in two stages whose states share their bytes: the preparation
/// (PROXY header, protocol detection), then the connection. An `async fn`
/// keeps its arguments for its whole life, so the long-lived stage gets
/// only small values (an `Arc<ConnectionInfo>`, the detection's outcome),
/// and paths most connections never take (TLS, HTTP/2) are boxed.
pub(crate) fn serve<F: ServiceFactory>(
    context: Arc<ConnContext<F>>,
    stream: Stream,
    peer: Address,
    local: Option<Address>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    guard: ConnectionGuard,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()> {
    let span = tracing::debug_span!("connection", peer = %peer, tls = tls.is_some());
    let held = Held {
        _permit: permit,
        _guard: guard,
    };
    let preparing = prepare(Arc::clone(&context), stream, peer, local, tls);
    Staged::First {
        first: preparing,
        then: Some(move |prepared| serving(context, prepared, held)),
    }
    .instrument(span)
}

/// What a connection holds until it is gone, released in this order.
struct Held {
    _permit: OwnedSemaphorePermit,
    _guard: ConnectionGuard,
}

pin_project! {
    /// A future, then the future made from its output, in the same bytes.
    #[project = StagedProj]
    enum Staged<A, T, B> {
        First {
            #[pin]
            first: A,
            then: Option<T>,
        },
        Second {
            #[pin]
            second: B,
        },
    }
}

impl<A, T, B> Future for Staged<A, T, B>
where
    A: Future,
    T: FnOnce(A::Output) -> B,
    B: Future,
{
    type Output = B::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<B::Output> {
        loop {
            match self.as_mut().project() {
                StagedProj::First { first, then } => {
                    let output = std::task::ready!(first.poll(cx));
                    let Some(then) = then.take() else {
                        // Only after a panic in `then`: never polled again.
                        return Poll::Pending;
                    };
                    let second = then(output);
                    self.set(Staged::Second { second });
                }
                StagedProj::Second { second } => return second.poll(cx),
            }
        }
    }
}

pin_project! {
    /// One of two futures with the same output.
    #[project = EitherProj]
    enum Either<L, R> {
        Left { #[pin] future: L },
        Right { #[pin] future: R },
    }
}

impl<L, R> Future for Either<L, R>
where
    L: Future,
    R: Future<Output = L::Output>,
{
    type Output = L::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<L::Output> {
        match self.project() {
            EitherProj::Left { future } => future.poll(cx),
            EitherProj::Right { future } => future.poll(cx),
        }
    }
}

/// A connection ready to be served.
enum Prepared {
    /// Plain text, its protocol known.
    Tcp(tokio::net::TcpStream, Detected),
    /// A Unix socket, its protocol known.
    Unix(tokio::net::UnixStream, Detected),
    /// TLS, its handshake still to come.
    Tls {
        tcp: tokio::net::TcpStream,
        acceptor: tokio_rustls::TlsAcceptor,
        info: ConnectionInfo,
        opened: Instant,
    },
}

/// What the connection's stage needs besides its stream.
struct Detected {
    protocol: Protocol,
    /// Bytes read while detecting the protocol, handed to hyper first.
    replay: Replay,
    /// When the first byte of an HTTP/1.1 head arrived.
    head_since: Option<Instant>,
    info: Arc<ConnectionInfo>,
    opened: Instant,
}

/// The first stage: the PROXY header of a trusted peer and the protocol
/// (plain text), or nothing when the connection closes first.
async fn prepare<F: ServiceFactory>(
    context: Arc<ConnContext<F>>,
    mut stream: Stream,
    peer: Address,
    local: Option<Address>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Option<Prepared> {
    let opened = Instant::now();
    let (peer, local, proxied_tls) = proxied(&context, &mut stream, peer, local).await?;
    let mut info = ConnectionInfo::new().with_peer_addr(peer);
    if let Some(local) = local {
        info = info.with_local_addr(local);
    }
    // The client spoke TLS to the proxy: its scheme is https. A listener
    // that terminates TLS itself replaces this with its own session.
    if let Some(tls) = proxied_tls {
        info = info.with_tls(tls);
    }
    match stream {
        Stream::Tcp(tcp) => match tls {
            Some(acceptor) => Some(Prepared::Tls {
                tcp,
                acceptor,
                info,
                opened,
            }),
            None => {
                let (tcp, detected) = plain(&context, tcp, info, opened).await?;
                Some(Prepared::Tcp(tcp, detected))
            }
        },
        Stream::Unix(unix) => {
            let (unix, detected) = plain(&context, unix, info, opened).await?;
            Some(Prepared::Unix(unix, detected))
        }
    }
}

/// The second stage: the connection itself.
fn serving<F: ServiceFactory>(
    context: Arc<ConnContext<F>>,
    prepared: Option<Prepared>,
    held: Held,
) -> impl Future<Output = ()> {
    match prepared {
        Some(Prepared::Tcp(tcp, detected)) => Either::Left {
            future: Either::Left {
                future: drive(context, tcp, detected, held),
            },
        },
        Some(Prepared::Unix(unix, detected)) => Either::Left {
            future: Either::Right {
                future: drive(context, unix, detected, held),
            },
        },
        Some(Prepared::Tls {
            tcp,
            acceptor,
            info,
            opened,
        }) => Either::Right {
            // Boxed: the handshake and the TLS stream are large, and a TLS
            // connection pays far more for its handshake than for one
            // allocation.
            future: Either::Left {
                future: Box::pin(secure(context, tcp, acceptor, info, opened, held)),
            },
        },
        None => Either::Right {
            future: Either::Right {
                future: std::future::ready(()),
            },
        },
    }
}

/// TLS: the handshake within its time limit, then the protocol ALPN chose.
async fn secure<F: ServiceFactory>(
    context: Arc<ConnContext<F>>,
    tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    info: ConnectionInfo,
    opened: Instant,
    held: Held,
) {
    let handshake =
        tokio::time::timeout(context.limits.tls_handshake_timeout, acceptor.accept(tcp)).await;
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
    let info = Arc::new(info.with_tls(crate::tls::tls_info(session)));
    let detected = Detected {
        protocol,
        replay: Replay::default(),
        head_since: None,
        info,
        opened,
    };
    drive(context, tls_stream, detected, held).await;
}

/// The connection as a trusted proxy declares it in its PROXY protocol
/// header (before TLS): the client's and the proxy's addresses, and the
/// client's TLS when the proxy terminated it (PROXY v2 `PP2_TYPE_SSL`); the
/// socket's own addresses for other peers. `None` closes the connection (a
/// trusted peer that sent no valid header).
async fn proxied<F>(
    context: &ConnContext<F>,
    stream: &mut Stream,
    peer: Address,
    local: Option<Address>,
) -> Option<(Address, Option<Address>, Option<TlsInfo>)> {
    let (Some(trusted), Stream::Tcp(tcp), Address::Tcp(socket_peer)) =
        (&context.trusted_proxies, &mut *stream, &peer)
    else {
        return Some((peer, local, None));
    };
    if !trusted.trusts(socket_peer.ip()) {
        return Some((peer, local, None));
    }
    match read_proxy_header(tcp, context.limits.protocol_detection_timeout).await {
        Ok(header) => {
            let local = local.map(|local| header.local_address(local));
            Some((header.peer_address(peer), local, header.tls_info()))
        }
        Err(error) => {
            tracing::info!(%error, "trusted proxy sent no valid PROXY header: closed");
            None
        }
    }
}

/// Plain text: HTTP/2 with prior knowledge when the preface arrives, else
/// HTTP/1.1; `None` when the connection closes or fails first.
async fn plain<F, IO>(
    context: &ConnContext<F>,
    mut io: IO,
    info: ConnectionInfo,
    opened: Instant,
) -> Option<(IO, Detected)>
where
    IO: AsyncRead + Unpin,
{
    let timeout = context.limits.protocol_detection_timeout;
    match tokio::time::timeout(timeout, detect(&mut io)).await {
        Ok(Ok(Some((protocol, replay, first_byte)))) => {
            let head_since = (protocol == Protocol::Http1).then_some(first_byte);
            let detected = Detected {
                protocol,
                replay,
                head_since,
                info: Arc::new(info),
                opened,
            };
            Some((io, detected))
        }
        Ok(Ok(None)) => {
            tracing::trace!("closed before sending anything");
            None
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, "read error before the first request");
            None
        }
        Err(_) => {
            tracing::debug!(
                limit = "protocol_detection_timeout",
                timeout_ms = crate::millis(timeout),
                "protocol not known in time: closed"
            );
            None
        }
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

async fn drive<F, IO>(context: Arc<ConnContext<F>>, io: IO, detected: Detected, held: Held)
where
    F: ServiceFactory,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Detected {
        protocol,
        replay,
        head_since,
        info,
        opened: accepted,
    } = detected;
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
        context.factory.connection(info),
        Arc::clone(&state),
        Arc::clone(&context.shared),
        context.rules,
    );
    let mut phase = context.shared.phase.subscribe();
    match protocol {
        Protocol::Http1 => {
            let connection = pin!(context.http1.serve_connection(io, service).with_upgrades());
            run(connection, &state, &mut phase, limits, None).await;
        }
        Protocol::Http2 => {
            // Boxed: held inline, the larger HTTP/2 connection would size
            // every HTTP/1.1 connection's task too; an HTTP/2 connection
            // allocates far more than this for its streams anyway.
            let mut connection = Box::pin(context.http2.serve_connection(io, service));
            let idle = Some(context.h2_idle);
            run(connection.as_mut(), &state, &mut phase, limits, idle).await;
        }
    }
    if state.upgraded.load(Ordering::Acquire) {
        hold_upgraded(&state, &mut phase).await;
    }
    drop(held);
}

/// Polls the hyper connection to its end while watching the shutdown phase,
/// the connection's age, its request count and (HTTP/2) its idle time.
///
/// The connection is borrowed, not moved in: an `async fn` keeps its
/// arguments beside its locals, so a connection taken by value would be
/// held twice in the task.
async fn run<C: Graceful>(
    mut connection: Pin<&mut C>,
    state: &ConnState,
    phase: &mut watch::Receiver<Phase>,
    limits: &Limits,
    h2_idle: Option<Duration>,
) {
    // Boxed and made only when the limit is set: most HTTP/1.1 connections
    // have neither timer, and their task is memory per connection.
    let mut age = limits
        .max_connection_age
        .map(|age| Box::pin(tokio::time::sleep_until(state.opened + age)));
    let mut idle = h2_idle.map(|idle| Box::pin(tokio::time::sleep_until(state.opened + idle)));
    let mut graceful = false;
    let mut reason = "";
    // Compares versions for `PhaseChanged`; cloned once per connection.
    let probe = phase.clone();
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
            changed = PhaseChanged::new(phase.changed(), &probe) => {
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
            () = expired(&mut age), if !graceful && age.is_some() => {
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
            () = expired(&mut idle), if !graceful && idle.is_some() => {
                let (Some(timeout), Some(idle)) = (h2_idle, idle.as_mut()) else { continue };
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

pin_project! {
    /// `watch::Receiver::changed`, polled only on its first poll and when the
    /// phase has a new version: the connection's task is woken for every
    /// read and write, and polling the channel's `Notified` each time cost
    /// about 180 instructions a request (callgrind). After its first poll the
    /// inner future stays registered with the task's waker (a tokio task's
    /// waker is the same for its whole life), so a shutdown still wakes it.
    struct PhaseChanged<'a, F> {
        #[pin]
        inner: F,
        probe: &'a watch::Receiver<Phase>,
        polled: bool,
    }
}

impl<'a, F> PhaseChanged<'a, F> {
    fn new(inner: F, probe: &'a watch::Receiver<Phase>) -> Self {
        Self {
            inner,
            probe,
            polled: false,
        }
    }
}

impl<F: Future> Future for PhaseChanged<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // A closed channel reads as changed, so its end is seen too.
        if *this.polled && !this.probe.has_changed().unwrap_or(true) {
            return Poll::Pending;
        }
        *this.polled = true;
        this.inner.poll(cx)
    }
}

/// Ready when the timer is set and has run out; a timer not set never is.
async fn expired(sleep: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match sleep {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
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
