//! TCP and Unix-domain sockets behind one type, owned as std sockets and
//! registered with mio through their descriptors.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rgi::{Address, ConnectionInfo, UnixAddr};

/// A listening socket.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Accepts one connection, with what the OS reports about both ends
    /// (`[RGI-CONN-7]`: nothing guessed).
    pub(crate) fn accept(&self) -> io::Result<(Stream, ConnectionInfo)> {
        match self {
            Self::Tcp(listener) => {
                let (stream, peer) = listener.accept()?;
                let mut info = ConnectionInfo::new().with_peer_addr(Address::Tcp(peer));
                if let Ok(local) = stream.local_addr() {
                    info = info.with_local_addr(Address::Tcp(local));
                }
                // Small responses go out at once rather than waiting for
                // an acknowledgement (Nagle).
                stream.set_nodelay(true)?;
                Ok((Stream::Tcp(stream), info))
            }
            Self::Unix(listener) => {
                let (stream, peer) = listener.accept()?;
                let info = ConnectionInfo::new()
                    .with_peer_addr(Address::Unix(unix_addr(&peer)))
                    .with_local_addr(Address::Unix(
                        stream
                            .local_addr()
                            .map_or(UnixAddr::Unnamed, |local| unix_addr(&local)),
                    ));
                Ok((Stream::Unix(stream), info))
            }
        }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        match self {
            Self::Tcp(listener) => listener.as_raw_fd(),
            Self::Unix(listener) => listener.as_raw_fd(),
        }
    }
}

fn unix_addr(address: &std::os::unix::net::SocketAddr) -> UnixAddr {
    if let Some(path) = address.as_pathname() {
        return UnixAddr::Pathname(path.to_path_buf());
    }
    {
        use std::os::linux::net::SocketAddrExt;
        if let Some(name) = address.as_abstract_name() {
            return UnixAddr::Abstract(bytes::Bytes::copy_from_slice(name));
        }
    }
    UnixAddr::Unnamed
}

/// A connected socket; reading and writing go through `&Stream`, so a body
/// source and the response sink can share one `Arc<Stream>`.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A connection's socket, shared between the worker's sink and the
/// request's body source.
pub(crate) type SharedStream = Arc<Stream>;

impl Stream {
    pub(crate) fn raw_fd(&self) -> RawFd {
        match self {
            Self::Tcp(stream) => stream.as_raw_fd(),
            Self::Unix(stream) => stream.as_raw_fd(),
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Self::Tcp(stream) => stream.set_nonblocking(on),
            Self::Unix(stream) => stream.set_nonblocking(on),
        }
    }

    /// Both directions' timeouts for blocking use on a worker.
    pub(crate) fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Self::Tcp(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))
            }
            Self::Unix(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))
            }
        }
    }

    /// Waits until the socket is readable (`write` false) or writable, or
    /// `deadline` passes; false when it passed first. A worker's socket
    /// stays non-blocking (no mode switch per request), so its blocking
    /// reads and writes wait here, bounded by the body timeout.
    pub(crate) fn wait(&self, write: bool, deadline: Instant) -> io::Result<bool> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        use std::os::fd::AsFd;

        let fd = match self {
            Self::Tcp(stream) => stream.as_fd(),
            Self::Unix(stream) => stream.as_fd(),
        };
        let flags = if write { PollFlags::OUT } else { PollFlags::IN };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            // Past what a timespec holds: wait without a bound, which the
            // limits' checks at start-up make unreachable in practice.
            let timeout = Timespec::try_from(left).ok();
            let mut fds = [PollFd::from_borrowed_fd(fd, flags)];
            match poll(&mut fds, timeout.as_ref()) {
                // Error and hang-up count as ready: the next call reports them.
                Ok(0) => {}
                Ok(_) => return Ok(true),
                Err(rustix::io::Errno::INTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// Writes all of `data`, waiting for room at most `timeout` per step
    /// when the socket is non-blocking; a stall is `TimedOut`. On a
    /// blocking socket (an asynchronous request that switched, whose send
    /// timeout is set) a `WouldBlock` comes after that timeout and ends it
    /// at once.
    pub(crate) fn write_all_within(&self, mut data: &[u8], timeout: Duration) -> io::Result<()> {
        while !data.is_empty() {
            let started = Instant::now();
            match (&*self).write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(count) => data = &data[count..],
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if !self.wait(true, started + timeout)? {
                        return Err(stalled());
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Self::Tcp(stream) => stream.shutdown(how),
            Self::Unix(stream) => stream.shutdown(how),
        }
    }
}

/// A client that took no response bytes within the body timeout.
pub(crate) fn stalled() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client took no response bytes within the body timeout",
    )
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(stream) => (&*stream).read(buf),
            Stream::Unix(stream) => (&*stream).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(stream) => (&*stream).write(buf),
            Stream::Unix(stream) => (&*stream).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
