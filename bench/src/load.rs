//! The load generator: one keep-alive connection to a loopback server, a
//! bounded number of sequential `GET /hello` requests, a bounded time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::apps::{HELLO_BODY, HELLO_PATH};

/// Why a load run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The target is not a loopback address; the generator sends nowhere
    /// else.
    #[error("{0} is not a loopback address")]
    NotLoopback(SocketAddr),
    /// Connecting or the runtime failed.
    #[error("client I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// hyper reported an error on the connection.
    #[error("request {index} failed: {source}")]
    Request {
        /// Which request (0-based).
        index: u64,
        /// hyper's error.
        source: hyper::Error,
    },
    /// A response was not the hello answer.
    #[error("request {index} got {status} with {body:?}, not 200 with the hello body")]
    WrongAnswer {
        /// Which request (0-based).
        index: u64,
        /// Its status.
        status: StatusCode,
        /// Its body.
        body: Bytes,
    },
    /// The run did not finish in time.
    #[error("{requests} requests did not finish within {deadline:?}")]
    Deadline {
        /// The requests asked for.
        requests: u64,
        /// The time bound.
        deadline: Duration,
    },
}

/// The client's account of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSummary {
    /// Requests answered correctly.
    pub requests: u64,
    /// Wall time from the first request to the last response.
    pub elapsed: Duration,
}

/// Sends `requests` sequential `GET /hello` requests over one keep-alive
/// connection to `addr` (loopback only), checks every answer, then closes
/// the connection.
///
/// # Errors
///
/// See [`LoadError`].
pub fn run(addr: SocketAddr, requests: u64, deadline: Duration) -> Result<LoadSummary, LoadError> {
    if !addr.ip().is_loopback() {
        return Err(LoadError::NotLoopback(addr));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(deadline, send_all(addr, requests))
            .await
            .map_err(|_| LoadError::Deadline { requests, deadline })?
    })
}

/// A keep-alive HTTP/1.1 client connection (hyper's client), driven by a
/// task on the current runtime.
pub type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// Opens a keep-alive HTTP/1.1 connection to `addr` with `TCP_NODELAY`, as
/// every load generator of the benchmarks does; the connection is driven
/// by a task spawned on the current runtime, which ends when the returned
/// sender is dropped.
///
/// # Errors
///
/// [`LoadError::Io`] or [`LoadError::Request`] (index 0) when connecting
/// or the handshake fails.
pub async fn connect(addr: SocketAddr) -> Result<Sender, LoadError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| LoadError::Request { index: 0, source })?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The `Host` field for requests to `addr`.
///
/// # Errors
///
/// [`LoadError::NotLoopback`] if the address does not make a field value
/// (it always does).
pub fn host_of(addr: SocketAddr) -> Result<HeaderValue, LoadError> {
    HeaderValue::from_str(&addr.to_string()).map_err(|_| LoadError::NotLoopback(addr))
}

/// Sends `GET path` (with `Host: host`) on `sender`, reads the whole answer
/// and checks that it is the hello answer; `index` names the request in
/// errors.
///
/// # Errors
///
/// [`LoadError::Request`] when hyper fails, [`LoadError::WrongAnswer`] for
/// any other answer.
pub async fn get_hello(
    sender: &mut Sender,
    host: &HeaderValue,
    path: &'static str,
    index: u64,
) -> Result<(), LoadError> {
    let mut request = Request::new(Empty::<Bytes>::new());
    *request.uri_mut() = http::Uri::from_static(path);
    request.headers_mut().insert(HOST, host.clone());
    sender
        .ready()
        .await
        .map_err(|source| LoadError::Request { index, source })?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|source| LoadError::Request { index, source })?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|source| LoadError::Request { index, source })?
        .to_bytes();
    if status != StatusCode::OK || body != HELLO_BODY {
        return Err(LoadError::WrongAnswer {
            index,
            status,
            body,
        });
    }
    Ok(())
}

async fn send_all(addr: SocketAddr, requests: u64) -> Result<LoadSummary, LoadError> {
    let mut sender = connect(addr).await?;
    let host = host_of(addr)?;
    let started = Instant::now();
    for index in 0..requests {
        get_hello(&mut sender, &host, HELLO_PATH, index).await?;
    }
    let elapsed = started.elapsed();
    // Closing the connection ends the server's run.
    drop(sender);
    Ok(LoadSummary { requests, elapsed })
}
