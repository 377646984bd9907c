//! Listeners and their accept loops.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rgi::{Address, UnixAddr};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

use crate::conn::{self, ConnContext};
use crate::io::Stream;
use crate::make::ServiceFactory;
use crate::state::Phase;

/// An address the server listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenAddr {
    /// A TCP socket (its real port when port 0 was asked for).
    Tcp(SocketAddr),
    /// A TCP socket with TLS.
    Tls(SocketAddr),
    /// A Unix domain socket at this path.
    Unix(PathBuf),
}

/// A bound listener, ready for its accept loop.
pub(crate) enum Bound {
    Tcp {
        listener: TcpListener,
        local: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    },
    Unix {
        listener: UnixListener,
        path: PathBuf,
        /// Whether the server created the socket file and so removes it at
        /// shutdown; a listener handed in (by systemd, say) keeps its file,
        /// since its owner goes on accepting on it across restarts.
        remove_at_shutdown: bool,
    },
}

/// Binds a TCP listener with the options std does not expose.
pub(crate) fn bind_tcp(
    address: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // A restarted server rebinds while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Binds a Unix listener, replacing a stale socket file that nothing
/// listens on any more (a server that crashed leaves one behind).
pub(crate) fn bind_unix(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(metadata) = std::fs::symlink_metadata(path)
        && metadata.file_type().is_socket()
        && let Err(error) = std::os::unix::net::UnixStream::connect(path)
        && error.kind() == io::ErrorKind::ConnectionRefused
    {
        std::fs::remove_file(path)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// How long to wait before accepting again after `error`; `None` for an
/// error that concerns only the one connection (accept again at once).
///
/// Out of descriptors or memory, accepting again at once would fail again at
/// once: the loop would spin at full CPU while the backlog fills.
pub(crate) fn accept_backoff(error: &io::Error, previous: Duration) -> Option<Duration> {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    match error.raw_os_error() {
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM) => Some(
            (previous * 2)
                .max(Duration::from_millis(10))
                .min(Duration::from_secs(1)),
        ),
        _ => None,
    }
}

fn unix_address(address: &tokio::net::unix::SocketAddr) -> UnixAddr {
    if let Some(path) = address.as_pathname() {
        UnixAddr::Pathname(path.to_path_buf())
    } else if let Some(name) = address.as_abstract_name() {
        UnixAddr::Abstract(bytes::Bytes::copy_from_slice(name))
    } else {
        UnixAddr::Unnamed
    }
}

/// Accepts connections until shutdown begins; each waits for a permit first,
/// so that connections beyond the maximum stay in the kernel's backlog.
pub(crate) async fn accept_loop<F: ServiceFactory>(
    context: Arc<ConnContext<F>>,
    bound: Bound,
    permits: Arc<Semaphore>,
) {
    let mut phase = context.shared.phase.subscribe();
    let mut backoff = Duration::ZERO;
    loop {
        let permit = tokio::select! {
            biased;
            _ = phase.wait_for(|phase| *phase >= Phase::Draining) => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = phase.wait_for(|phase| *phase >= Phase::Draining) => break,
            accepted = accept(&bound) => accepted,
        };
        match accepted {
            Ok((stream, peer, local, tls)) => {
                backoff = Duration::ZERO;
                let guard = context.shared.connection_opened();
                tokio::spawn(conn::serve(
                    Arc::clone(&context),
                    stream,
                    peer,
                    local,
                    tls,
                    guard,
                    permit,
                ));
            }
            Err(error) => match accept_backoff(&error, backoff) {
                Some(delay) => {
                    backoff = delay;
                    tracing::warn!(%error, delay_ms = crate::millis(delay), "accept failed: backing off");
                    tokio::select! {
                        _ = phase.wait_for(|phase| *phase >= Phase::Draining) => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                None => tracing::debug!(%error, "accept failed for one connection"),
            },
        }
    }
    if let Bound::Unix {
        path,
        remove_at_shutdown: true,
        ..
    } = &bound
    {
        // The socket file would otherwise outlive the server.
        let _ = std::fs::remove_file(path);
    }
    tracing::debug!("listener closed");
}

type Accepted = (
    Stream,
    Address,
    Option<Address>,
    Option<tokio_rustls::TlsAcceptor>,
);

async fn accept(bound: &Bound) -> io::Result<Accepted> {
    match bound {
        Bound::Tcp {
            listener,
            local,
            tls,
        } => {
            let (stream, peer) = listener.accept().await?;
            // Responses are written whole by hyper; Nagle would only delay them.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY not set");
            }
            let local = if local.ip().is_unspecified() {
                stream.local_addr().ok().map(Address::Tcp)
            } else {
                Some(Address::Tcp(*local))
            };
            Ok((Stream::Tcp(stream), Address::Tcp(peer), local, tls.clone()))
        }
        Bound::Unix { listener, path, .. } => {
            let (stream, peer) = listener.accept().await?;
            Ok((
                Stream::Unix(stream),
                Address::Unix(unix_address(&peer)),
                Some(Address::Unix(UnixAddr::Pathname(path.clone()))),
                None,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_descriptors_backs_off_and_grows_to_a_bound() {
        let emfile = io::Error::from_raw_os_error(24);
        let first = accept_backoff(&emfile, Duration::ZERO);
        assert_eq!(first, Some(Duration::from_millis(10)));
        let mut delay = Duration::ZERO;
        for _ in 0..20 {
            delay = accept_backoff(&emfile, delay).unwrap_or_default();
        }
        assert_eq!(delay, Duration::from_secs(1));
        assert!(accept_backoff(&io::Error::from_raw_os_error(23), Duration::ZERO).is_some());
    }

    #[test]
    fn a_failed_connection_does_not_back_off() {
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(accept_backoff(&aborted, Duration::ZERO), None);
    }
}
