//! The load generators of the rgi-simple-server benchmark: raw HTTP/1.1
//! keep-alive connections on loopback, each answer checked byte by byte
//! (status, Content-Length, the hello body), every latency kept per
//! connection so that the slowest connection can be told from the rest.
//!
//! - [`Active::closed`]: each connection sends its next request when its
//!   last answer is read, until a request count is reached;
//! - [`Active::pipelined`]: each connection writes a burst of requests in
//!   one write and reads all their answers;
//! - [`open_idle`]: connections that send one request, read its answer and
//!   then stay open and silent (blocking std sockets, outside the
//!   runtime, so that they cost the generator nothing while idle).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::apps::HELLO_PATH;
use crate::server_bench::client::{ClientError, HelloAnswers, raw_requests};
use crate::server_bench::stats::Latencies;

/// One measured run's account.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Requests answered (all checked).
    pub requests: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Every request's latency (for a pipelined run: every burst's, from
    /// its write to its last answer).
    pub latencies: Latencies,
    /// Each connection's mean latency, nanoseconds.
    pub connection_means: Vec<f64>,
    /// The mean latency over all requests (bursts), nanoseconds.
    pub mean: f64,
}

impl Run {
    /// Requests per second.
    #[must_use]
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The slowest connection's mean latency, microseconds.
    #[must_use]
    pub fn slowest_connection_micros(&self) -> Option<f64> {
        self.connection_means
            .iter()
            .copied()
            .max_by(f64::total_cmp)
            .map(|nanos| nanos / 1e3)
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Keep-alive connections that carry the load, kept open across runs so
/// that the warm-up and the measured run use the same connections.
#[derive(Debug)]
pub struct Active {
    streams: Vec<TcpStream>,
    addr: SocketAddr,
}

/// Why a connection's task failed, with the connection's place kept.
type Done = Result<(usize, TcpStream, Vec<u64>), ClientError>;

impl Active {
    /// Opens `connections` connections to `addr` (loopback only) with
    /// `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// Not loopback, or connecting failed.
    pub async fn connect(addr: SocketAddr, connections: usize) -> Result<Self, ClientError> {
        if !addr.ip().is_loopback() {
            return Err(crate::load::LoadError::NotLoopback(addr).into());
        }
        let mut streams = Vec::with_capacity(connections);
        for _ in 0..connections {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            streams.push(stream);
        }
        Ok(Active { streams, addr })
    }

    /// `requests` requests, each connection sending its next one as soon
    /// as its last is answered, until all are claimed.
    ///
    /// # Errors
    ///
    /// A wrong answer, a closed connection, I/O, or `deadline`.
    pub async fn closed(&mut self, requests: u64, deadline: Duration) -> Result<Run, ClientError> {
        self.bursts(1, requests, deadline).await
    }

    /// Bursts of `depth` requests written at once per connection, until
    /// `requests` (rounded up to whole bursts) are answered; latencies are
    /// per burst.
    ///
    /// # Errors
    ///
    /// A wrong answer, a closed connection, I/O, or `deadline`.
    pub async fn pipelined(
        &mut self,
        depth: usize,
        requests: u64,
        deadline: Duration,
    ) -> Result<Run, ClientError> {
        self.bursts(depth, requests, deadline).await
    }

    async fn bursts(
        &mut self,
        depth: usize,
        requests: u64,
        deadline: Duration,
    ) -> Result<Run, ClientError> {
        let depth = depth.max(1);
        let batch = Arc::new(raw_requests(self.addr, HELLO_PATH, depth));
        let total = requests.div_ceil(depth as u64);
        let claimed = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks: JoinSet<Done> = JoinSet::new();
        for (id, mut stream) in self.streams.drain(..).enumerate() {
            let (batch, claimed) = (Arc::clone(&batch), Arc::clone(&claimed));
            tasks.spawn(async move {
                let mut answers = HelloAnswers::new();
                let mut buffer = vec![0; 16 * 1024];
                let mut latencies = Vec::new();
                while claimed.fetch_add(1, Ordering::Relaxed) < total {
                    let sent = Instant::now();
                    stream.write_all(&batch).await?;
                    let mut pending = depth;
                    while pending > 0 {
                        let read = stream.read(&mut buffer).await?;
                        if read == 0 {
                            return Err(ClientError::Closed);
                        }
                        pending = pending.saturating_sub(answers.feed(&buffer[..read])?);
                    }
                    latencies.push(nanos(sent.elapsed()));
                }
                Ok((id, stream, latencies))
            });
        }
        let all = async {
            let mut done = Vec::new();
            while let Some(result) = tasks.join_next().await {
                done.push(result.map_err(|err| ClientError::Task(err.to_string()))??);
            }
            Ok::<_, ClientError>(done)
        };
        let mut done = tokio::time::timeout(deadline, all)
            .await
            .map_err(|_| ClientError::Deadline(deadline))??;
        let elapsed = started.elapsed();
        done.sort_by_key(|(id, _, _)| *id);
        let mut all_latencies = Vec::new();
        let mut connection_means = Vec::with_capacity(done.len());
        for (_, stream, latencies) in done {
            if !latencies.is_empty() {
                let sum: u64 = latencies.iter().sum();
                connection_means.push(sum as f64 / latencies.len() as f64);
            }
            all_latencies.extend_from_slice(&latencies);
            self.streams.push(stream);
        }
        let mean = if all_latencies.is_empty() {
            0.0
        } else {
            all_latencies.iter().sum::<u64>() as f64 / all_latencies.len() as f64
        };
        Ok(Run {
            requests: total * depth as u64,
            elapsed,
            latencies: Latencies::new(all_latencies),
            connection_means,
            mean,
        })
    }
}

/// Opens `count` connections to `addr` one after another, each sending one
/// hello request and reading its answer, and returns them open and silent:
/// idle keep-alive connections, as a browser leaves them. Bounded by
/// `deadline` over all and a 10 s read timeout per answer.
///
/// # Errors
///
/// Not loopback, connecting or I/O failed (the open-files limit, say), a
/// wrong answer, or `deadline`.
pub fn open_idle(
    addr: SocketAddr,
    count: usize,
    deadline: Duration,
) -> Result<Vec<std::net::TcpStream>, ClientError> {
    if !addr.ip().is_loopback() {
        return Err(crate::load::LoadError::NotLoopback(addr).into());
    }
    let until = Instant::now() + deadline;
    let request = raw_requests(addr, HELLO_PATH, 1);
    let mut buffer = [0_u8; 1024];
    let mut idle = Vec::with_capacity(count);
    for _ in 0..count {
        if Instant::now() >= until {
            return Err(ClientError::Deadline(deadline));
        }
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(&request)?;
        let mut answers = HelloAnswers::new();
        loop {
            let read = stream.read(&mut buffer)?;
            if read == 0 {
                return Err(ClientError::Closed);
            }
            if answers.feed(&buffer[..read])? > 0 {
                break;
            }
        }
        idle.push(stream);
    }
    Ok(idle)
}
