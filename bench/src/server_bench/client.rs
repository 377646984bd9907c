//! The load generators of the server benchmark. They run in the reporting
//! process on one current-thread runtime (one core), send to loopback
//! only, and are bounded in count and time.
//!
//! - [`Clients::closed`]: every connection sends its next request as soon
//!   as its last answer is read (for CPU, instructions and allocations per
//!   request, where only the work done counts);
//! - [`Clients::open`]: requests due at a fixed rate whatever the server
//!   does, latency from the due time (for p99);
//! - [`pipelined`]: raw sockets writing 16 requests at once;
//! - [`park_http1`], [`park_http2`]: requests that wait in the server;
//! - [`slow_readers`], [`slow_readers_http2`]: large bodies read slowly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::stats::{Latencies, Schedule};
use crate::apps::{HELLO_BODY, HELLO_PATH};
use crate::load::{self, LoadError, Sender};

/// Why a load run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A request or connection failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Raw socket I/O failed.
    #[error("socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// A pipelined answer was not the hello answer.
    #[error("pipelined answer: {0}")]
    Pipeline(#[from] ResponseError),
    /// The run exceeded its time bound.
    #[error("the load did not finish within {0:?}")]
    Deadline(Duration),
    /// The server closed a connection that should have stayed open.
    #[error("the server closed a connection mid-run")]
    Closed,
    /// A task of the generator panicked or was cancelled.
    #[error("a load task failed: {0}")]
    Task(String),
}

/// A closed-loop run's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedRun {
    /// Requests answered (all of them checked).
    pub requests: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// A set of keep-alive HTTP/1.1 connections (hyper's client) to one
/// server, kept open across runs so that a warm-up and a measured run see
/// the same connections.
#[derive(Debug)]
pub struct Clients {
    senders: Vec<Sender>,
    host: HeaderValue,
}

fn join_error(err: &tokio::task::JoinError) -> ClientError {
    ClientError::Task(err.to_string())
}

impl Clients {
    /// Opens `connections` connections to `addr` (loopback only).
    ///
    /// # Errors
    ///
    /// [`LoadError::NotLoopback`], or connecting failed.
    pub async fn connect(addr: SocketAddr, connections: usize) -> Result<Self, ClientError> {
        if !addr.ip().is_loopback() {
            return Err(LoadError::NotLoopback(addr).into());
        }
        let mut senders = Vec::with_capacity(connections);
        for _ in 0..connections {
            senders.push(load::connect(addr).await?);
        }
        Ok(Clients {
            senders,
            host: load::host_of(addr)?,
        })
    }

    /// How many connections are open.
    #[must_use]
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// `requests` requests for `path`, each connection sending its next as
    /// soon as its last is answered, until all are claimed.
    ///
    /// # Errors
    ///
    /// Any failed or wrong answer, or `deadline` passing.
    pub async fn closed(
        &mut self,
        path: &'static str,
        requests: u64,
        deadline: Duration,
    ) -> Result<ClosedRun, ClientError> {
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for (id, mut sender) in self.senders.drain(..).enumerate() {
            let (next, host) = (Arc::clone(&next), self.host.clone());
            tasks.spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= requests {
                        break;
                    }
                    load::get_hello(&mut sender, &host, path, index).await?;
                }
                Ok::<_, ClientError>((id, sender))
            });
        }
        let senders = collect(tasks, deadline).await?;
        self.senders = senders;
        Ok(ClosedRun {
            requests,
            elapsed: started.elapsed(),
        })
    }

    /// Requests for `path` due at the times of `schedule`, each sent on
    /// the first idle connection once due, its latency counted from the
    /// due time (so time spent waiting for an idle connection counts).
    ///
    /// # Errors
    ///
    /// Any failed or wrong answer, or `deadline` passing.
    pub async fn open(
        &mut self,
        path: &'static str,
        schedule: Schedule,
        deadline: Duration,
    ) -> Result<Latencies, ClientError> {
        let (idle_sender, mut idle) = mpsc::unbounded_channel::<usize>();
        let mut jobs = Vec::with_capacity(self.senders.len());
        let mut tasks = JoinSet::new();
        for (id, mut sender) in self.senders.drain(..).enumerate() {
            let (job_sender, mut job) = mpsc::channel::<(u64, Instant)>(1);
            jobs.push(job_sender);
            let (idle_sender, host) = (idle_sender.clone(), self.host.clone());
            // Every connection starts idle.
            let _ = idle_sender.send(id);
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                while let Some((index, due)) = job.recv().await {
                    load::get_hello(&mut sender, &host, path, index).await?;
                    latencies.push(nanos(due.elapsed()));
                    // The dispatcher is gone only when the run is over.
                    let _ = idle_sender.send(id);
                }
                Ok::<_, ClientError>(((id, sender), latencies))
            });
        }
        drop(idle_sender);
        let dispatch = async {
            let start = Instant::now();
            for index in 0..schedule.requests() {
                let due = start + schedule.due(index);
                wait_until(due).await;
                let Some(id) = idle.recv().await else {
                    break;
                };
                let Some(job) = jobs.get(id) else { break };
                if job.send((index, due)).await.is_err() {
                    break;
                }
            }
            jobs.clear();
        };
        let all = async {
            dispatch.await;
            let mut senders = Vec::new();
            let mut latencies = Vec::new();
            while let Some(done) = tasks.join_next().await {
                let (sender, mut some) = done.map_err(|err| join_error(&err))??;
                senders.push(sender);
                latencies.append(&mut some);
            }
            Ok::<_, ClientError>((senders, latencies))
        };
        let (mut senders, latencies) = tokio::time::timeout(deadline, all)
            .await
            .map_err(|_| ClientError::Deadline(deadline))??;
        if latencies.len() as u64 != schedule.requests() {
            // A connection failed and the dispatcher stopped early: the
            // error is in the task that failed, which `all` returned; this
            // is a closed connection without an error.
            return Err(ClientError::Closed);
        }
        senders.sort_by_key(|(id, _)| *id);
        self.senders = senders.into_iter().map(|(_, sender)| sender).collect();
        Ok(Latencies::new(latencies))
    }

    /// Keeps every connection busy with `path` (each sends its next
    /// request when its last is answered) until `stop` is set; returns the
    /// requests answered.
    ///
    /// # Errors
    ///
    /// Any failed or wrong answer, or `deadline` passing.
    pub async fn until(
        &mut self,
        path: &'static str,
        stop: Arc<AtomicBool>,
        deadline: Duration,
    ) -> Result<u64, ClientError> {
        let answered = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for (id, mut sender) in self.senders.drain(..).enumerate() {
            let (stop, answered, host) =
                (Arc::clone(&stop), Arc::clone(&answered), self.host.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let index = answered.load(Ordering::Relaxed);
                    load::get_hello(&mut sender, &host, path, index).await?;
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, ClientError>((id, sender))
            });
        }
        self.senders = collect(tasks, deadline).await?;
        Ok(answered.load(Ordering::Relaxed))
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Waits until `due`: tokio's timer for all but the last millisecond (its
/// resolution), then yielding to the other tasks until the time comes, so
/// that requests leave within microseconds of their due time.
async fn wait_until(due: Instant) {
    let coarse = Duration::from_millis(2);
    if due.saturating_duration_since(Instant::now()) > coarse {
        tokio::time::sleep_until((due - Duration::from_millis(1)).into()).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

/// Joins `tasks` (each returning its connection with its index) within
/// `deadline`, failing on the first error; the connections in index order.
async fn collect<T: Send + 'static>(
    mut tasks: JoinSet<Result<(usize, T), ClientError>>,
    deadline: Duration,
) -> Result<Vec<T>, ClientError> {
    let all = async {
        let mut done = Vec::new();
        while let Some(result) = tasks.join_next().await {
            done.push(result.map_err(|err| join_error(&err))??);
        }
        Ok::<_, ClientError>(done)
    };
    let mut done = tokio::time::timeout(deadline, all)
        .await
        .map_err(|_| ClientError::Deadline(deadline))??;
    done.sort_by_key(|(id, _)| *id);
    Ok(done.into_iter().map(|(_, item)| item).collect())
}

/// Why bytes read off a connection are not a sequence of hello answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The status line is not `HTTP/1.1 200 ...`.
    #[error("status line {0:?} is not HTTP/1.1 200")]
    Status(String),
    /// No usable `Content-Length` field.
    #[error("the answer has no valid Content-Length")]
    Length,
    /// The body differs from the hello body.
    #[error("the body {0:?} is not the hello body")]
    Body(Vec<u8>),
    /// A head grew past 16 KiB without ending.
    #[error("a response head exceeds 16 KiB")]
    HeadTooLong,
}

/// Counts complete hello answers in the bytes of an HTTP/1.1 connection,
/// fed as they arrive (answers may be split anywhere).
#[derive(Debug, Default)]
pub struct HelloAnswers {
    buffer: Vec<u8>,
}

const MAX_HEAD: usize = 16 * 1024;

impl HelloAnswers {
    /// A counter with nothing read.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `bytes` read off the connection and returns how many answers
    /// they completed; a partial answer is kept for the next call.
    ///
    /// # Errors
    ///
    /// An answer that is not `200` with a `Content-Length` and the hello
    /// body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, ResponseError> {
        self.buffer.extend_from_slice(bytes);
        let mut complete = 0;
        let mut consumed = 0;
        loop {
            let rest = &self.buffer[consumed..];
            let Some(head_end) = rest.windows(4).position(|window| window == b"\r\n\r\n") else {
                if rest.len() > MAX_HEAD {
                    return Err(ResponseError::HeadTooLong);
                }
                break;
            };
            let head = String::from_utf8_lossy(&rest[..head_end]);
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap_or_default();
            if !status.starts_with("HTTP/1.1 200") {
                return Err(ResponseError::Status(status.to_owned()));
            }
            let length: usize = lines
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse().ok())
                .ok_or(ResponseError::Length)?;
            let body_start = head_end + 4;
            let Some(body) = rest.get(body_start..body_start + length) else {
                break;
            };
            if body != HELLO_BODY {
                return Err(ResponseError::Body(body.to_vec()));
            }
            consumed += body_start + length;
            complete += 1;
        }
        self.buffer.drain(..consumed);
        Ok(complete)
    }
}

/// `GET path` requests as raw bytes, `count` of them back to back.
#[must_use]
pub fn raw_requests(addr: SocketAddr, path: &str, count: usize) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n")
        .repeat(count)
        .into_bytes()
}

/// `connections` raw connections, each writing `depth` hello requests in
/// one write and reading their answers, until `requests` (rounded up to a
/// whole batch per connection) are answered.
///
/// # Errors
///
/// Connecting, I/O, a wrong answer, a closed connection, or `deadline`.
pub async fn pipelined(
    addr: SocketAddr,
    connections: usize,
    depth: usize,
    requests: u64,
    deadline: Duration,
) -> Result<ClosedRun, ClientError> {
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let batch = raw_requests(addr, HELLO_PATH, depth);
    let batches = Arc::new(AtomicU64::new(0));
    let total_batches = requests.div_ceil(depth as u64);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (id, mut stream) in streams.into_iter().enumerate() {
        let (batch, batches) = (batch.clone(), Arc::clone(&batches));
        tasks.spawn(async move {
            let mut answers = HelloAnswers::new();
            let mut buffer = vec![0; 64 * 1024];
            while batches.fetch_add(1, Ordering::Relaxed) < total_batches {
                stream.write_all(&batch).await?;
                let mut pending = depth;
                while pending > 0 {
                    let read = stream.read(&mut buffer).await?;
                    if read == 0 {
                        return Err(ClientError::Closed);
                    }
                    pending = pending.saturating_sub(answers.feed(&buffer[..read])?);
                }
            }
            Ok::<_, ClientError>((id, ()))
        });
    }
    collect(tasks, deadline).await?;
    Ok(ClosedRun {
        requests: total_batches * depth as u64,
        elapsed: started.elapsed(),
    })
}

/// Opens `connections` raw connections, each sending one `GET path`
/// request it never waits for; returns the connections (closing them ends
/// the requests).
///
/// # Errors
///
/// Connecting or writing failed, or `deadline` passed.
pub async fn park_http1(
    addr: SocketAddr,
    connections: usize,
    path: &str,
    deadline: Duration,
) -> Result<Vec<TcpStream>, ClientError> {
    let request = raw_requests(addr, path, 1);
    let open = async {
        let mut streams = Vec::with_capacity(connections);
        for _ in 0..connections {
            let mut stream = TcpStream::connect(addr).await?;
            stream.write_all(&request).await?;
            streams.push(stream);
        }
        Ok::<_, ClientError>(streams)
    };
    tokio::time::timeout(deadline, open)
        .await
        .map_err(|_| ClientError::Deadline(deadline))?
}

/// One HTTP/2 connection (prior knowledge) with `streams` concurrent
/// `GET path` requests, none of them awaited to the end; the returned set
/// holds the requests and the connection (dropping it cancels them).
///
/// # Errors
///
/// Connecting or the handshake failed.
pub async fn park_http2(
    addr: SocketAddr,
    streams: usize,
    path: &'static str,
) -> Result<JoinSet<()>, ClientError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|source| LoadError::Request { index: 0, source })?;
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let _ = connection.await;
    });
    let host = load::host_of(addr)?;
    for _ in 0..streams {
        let mut sender = sender.clone();
        let mut request = Request::new(Empty::<Bytes>::new());
        *request.uri_mut() = http::Uri::from_static(path);
        request.headers_mut().insert(HOST, host.clone());
        tasks.spawn(async move {
            let _ = sender.ready().await;
            let _ = sender.send_request(request).await;
        });
    }
    Ok(tasks)
}

/// What the slow readers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowRun {
    /// Body and head bytes read, all clients together.
    pub bytes: u64,
}

/// `clients` raw connections each requesting `path` and reading at most
/// `read_size` bytes every `pause` until `duration` has passed; returns
/// what they read. The connections close at the end.
///
/// # Errors
///
/// Connecting or I/O failed, or the server closed a connection early.
pub async fn slow_readers(
    addr: SocketAddr,
    clients: usize,
    path: &str,
    read_size: usize,
    pause: Duration,
    duration: Duration,
) -> Result<SlowRun, ClientError> {
    let request = raw_requests(addr, path, 1);
    let mut tasks = JoinSet::new();
    let end = Instant::now() + duration;
    for id in 0..clients {
        let request = request.clone();
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.write_all(&request).await?;
            let mut buffer = vec![0; read_size];
            let mut read_total = 0_u64;
            while Instant::now() < end {
                let read = stream.read(&mut buffer).await?;
                if read == 0 {
                    return Err(ClientError::Closed);
                }
                read_total += read as u64;
                tokio::time::sleep(pause).await;
            }
            Ok::<_, ClientError>((id, read_total))
        });
    }
    let read = collect(tasks, duration + Duration::from_secs(30)).await?;
    Ok(SlowRun {
        bytes: read.iter().sum(),
    })
}

/// One HTTP/2 connection (prior knowledge) with `streams` concurrent
/// requests for `path`, each response body read one frame at a time with
/// `pause` after each, until `duration` has passed; returns the body bytes
/// read. The client's stream window is HTTP/2's default (64 KiB), released
/// only as frames are read, so the server can send a stream no further
/// ahead of the reader than that.
///
/// # Errors
///
/// Connecting, the handshake or a stream failed, or a stream ended early.
pub async fn slow_readers_http2(
    addr: SocketAddr,
    streams: usize,
    path: &'static str,
    pause: Duration,
    duration: Duration,
) -> Result<SlowRun, ClientError> {
    use http_body_util::BodyExt as _;

    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|source| LoadError::Request { index: 0, source })?;
    let driver = tokio::spawn(connection);
    let host = load::host_of(addr)?;
    let end = Instant::now() + duration;
    let mut tasks = JoinSet::new();
    for id in 0..streams {
        let mut sender = sender.clone();
        let mut request = Request::new(Empty::<Bytes>::new());
        *request.uri_mut() = http::Uri::from_static(path);
        request.headers_mut().insert(HOST, host.clone());
        tasks.spawn(async move {
            let index = id as u64;
            sender
                .ready()
                .await
                .map_err(|source| LoadError::Request { index, source })?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|source| LoadError::Request { index, source })?;
            let mut body = response.into_body();
            let mut read = 0_u64;
            while Instant::now() < end {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        read += frame.data_ref().map_or(0, |data| data.len() as u64);
                    }
                    Some(Err(source)) => return Err(LoadError::Request { index, source }.into()),
                    None => return Err(ClientError::Closed),
                }
                tokio::time::sleep(pause).await;
            }
            Ok::<_, ClientError>((id, read))
        });
    }
    let read = collect(tasks, duration + Duration::from_secs(30)).await;
    driver.abort();
    Ok(SlowRun {
        bytes: read?.iter().sum(),
    })
}
