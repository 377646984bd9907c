//! The poller thread: accepts connections, reads and parses request heads,
//! and keeps idle connections, so that none of these holds a worker. A
//! parsed head goes to the worker pool with its connection; a finished
//! connection comes back through a channel and the poll's waker.
//!
//! For asynchronous applications the same poll also carries the
//! [`Reactor`]'s registrations (connections of async requests, and the
//! descriptors of readiness waits) and its timers: tokens from
//! `REACTOR_BASE` up are handed to it, and its earliest timer bounds the
//! poll's sleep.

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rgi::ServerInfo;

use crate::body::{InBuf, READ_SIZE};
use crate::config::Limits;
use crate::head::{self, Parsed, RequestHead};
use crate::net::{Listener, Stream};
use crate::reactor::{REACTOR_BASE, Reactor};
use crate::response::refusal;
use crate::worker::{Connection, Finished};

pub(crate) const WAKER: Token = Token(0);
pub(crate) const LISTENER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// A connection's token: its descriptor's number, past the fixed tokens.
/// Open descriptors are unique, so the token stays the connection's while
/// it is on a worker, and its registration can stay too.
fn token_of(stream: &Stream) -> Token {
    Token(stream.raw_fd().unsigned_abs() as usize + FIRST_CONN)
}

/// How long a closing connection is read and discarded, so that a refusal
/// is not lost to a reset caused by unread request bytes.
const LINGER: Duration = Duration::from_secs(2);

/// A head and its connection, for a worker.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) conn: Connection,
    pub(crate) head: Box<RequestHead>,
}

/// Where the poller sends parsed requests: the synchronous worker pool's
/// channel, or the async threads.
pub(crate) trait Dispatch: Send {
    /// Takes the request; false when it could not (the connection is then
    /// dropped, closing it).
    fn dispatch(&self, job: Job) -> bool;

    /// The grace period is over: cancel what runs.
    fn cancel_all(&self) {}
}

/// The socket a synchronous worker serves, if any.
pub(crate) type BusySlot = Arc<Mutex<Option<Arc<Stream>>>>;

/// What the server handle and the poller share.
#[derive(Debug)]
pub(crate) struct Control {
    /// Set by `shutdown`: stop accepting, and the grace deadline.
    pub(crate) stop: Mutex<Option<Instant>>,
    /// `stop` is set: a worker serves no further request of a connection
    /// and hands it back.
    pub(crate) stopping: AtomicBool,
    /// Requests on workers.
    pub(crate) in_flight: AtomicUsize,
    /// The sockets of requests on workers, shut down when the grace period
    /// ends (`[RGI-CONN-5]`).
    pub(crate) busy: Mutex<HashMap<u64, Arc<Stream>>>,
    /// The synchronous workers' sockets, one slot per worker, for the same.
    pub(crate) slots: Mutex<Vec<BusySlot>>,
}

impl Control {
    pub(crate) fn new() -> Self {
        Self {
            stop: Mutex::new(None),
            stopping: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            busy: Mutex::new(HashMap::new()),
            slots: Mutex::new(Vec::new()),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
enum Phase {
    /// Kept, waiting for the first byte of a next request.
    Idle,
    /// A head is being read.
    Head,
    /// The server's own answer is going out; then the connection closes.
    Writing { out: Vec<u8>, at: usize },
    /// Write side shut; reading and discarding until the peer closes.
    Linger,
}

#[derive(Debug)]
struct Entry {
    conn: Connection,
    phase: Phase,
    deadline: Instant,
}

pub(crate) struct Poller {
    pub(crate) poll: Poll,
    pub(crate) listener: Option<Listener>,
    pub(crate) server: Arc<ServerInfo>,
    pub(crate) limits: Limits,
    pub(crate) jobs: Option<Box<dyn Dispatch>>,
    /// Readiness of async requests and of applications' descriptors, with
    /// their timers; `None` for a synchronous application.
    pub(crate) reactor: Option<Arc<Reactor>>,
    pub(crate) returns: Receiver<Finished>,
    pub(crate) control: Arc<Control>,
    /// Connections on a worker whose socket may hold bytes nobody has
    /// read: an edge came while the worker had it, or the poller's own
    /// read stopped short of `WouldBlock`. Only these are read when they
    /// come back; the rest were read to `WouldBlock` by the worker or the
    /// poller, and any byte after that brings an edge.
    pub(crate) unread: HashSet<Token>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

impl Poller {
    pub(crate) fn run(mut self) {
        let mut conns: HashMap<Token, Entry> = HashMap::new();
        let mut events = Events::with_capacity(256);
        // Scanning every connection for deadlines on every wake-up costs
        // O(connections) per request (14% of the server's CPU under load
        // beside 10,000 idle connections, by perf). A deadline set after a scan is at least the
        // shortest timeout after it, so the scan runs only when the
        // earliest deadline it saw, or that bound, comes due; `SLACK` lets
        // one scan take connections that fall due close together.
        const SLACK: Duration = Duration::from_millis(10);
        let shortest = self
            .limits
            .head_timeout
            .min(self.limits.idle_timeout)
            .min(LINGER);
        let mut next_scan = Instant::now();
        loop {
            let now = Instant::now();
            if let Some(grace) = self.control.deadline() {
                if self.listener.take().is_some() {
                    tracing::info!("shutting down: no longer accepting");
                }
                // Idle and half-read connections have nothing in flight.
                conns.retain(|_, entry| {
                    matches!(entry.phase, Phase::Writing { .. } | Phase::Linger)
                });
                let in_flight = self.control.in_flight.load(Ordering::Acquire);
                if in_flight == 0 && conns.is_empty() {
                    break;
                }
                if now >= grace {
                    let busy = self
                        .control
                        .busy
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    for stream in busy.values() {
                        let _ = stream.shutdown(Shutdown::Both);
                    }
                    let mut abandoned = busy.len();
                    drop(busy);
                    let slots = self
                        .control
                        .slots
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    for slot in slots.iter() {
                        let slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Some(stream) = slot.as_ref() {
                            let _ = stream.shutdown(Shutdown::Both);
                            abandoned += 1;
                        }
                    }
                    drop(slots);
                    tracing::warn!(
                        abandoned,
                        "grace period over: abandoning in-flight responses"
                    );
                    if let Some(jobs) = self.jobs.as_ref() {
                        jobs.cancel_all();
                    }
                    break;
                }
            }
            if now >= next_scan {
                self.expire(&mut conns);
                let earliest = conns.values().map(|e| e.deadline).min();
                next_scan = earliest
                    .unwrap_or(now + shortest)
                    .min(now + shortest)
                    .max(now + SLACK);
            }
            let timeout = Some(next_scan)
                .into_iter()
                .chain(self.reactor.as_ref().and_then(|r| r.next_deadline()))
                .min()
                .map(|due| due.saturating_duration_since(now))
                .into_iter()
                .chain(self.control.deadline().map(|_| Duration::from_millis(20)))
                .min();
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != ErrorKind::Interrupted {
                    tracing::error!(%error, "poll failed; the server stops");
                    break;
                }
            }
            for event in &events {
                match event.token() {
                    WAKER => self.take_returns(&mut conns),
                    LISTENER => self.accept(&mut conns),
                    token if token.0 >= REACTOR_BASE => {
                        if let Some(reactor) = self.reactor.as_ref() {
                            reactor.dispatch(event);
                        }
                    }
                    token if conns.contains_key(&token) => {
                        // Without an end or an error in the event, a short
                        // read has emptied the socket (see `read_head`).
                        let ended = event.is_read_closed() || event.is_error();
                        self.read_head(&mut conns, token, ended);
                    }
                    // On a worker (its registration stays): read when it
                    // comes back.
                    token => {
                        self.unread.insert(token);
                    }
                }
            }
            if let Some(reactor) = self.reactor.as_ref() {
                reactor.fire_due(Instant::now());
            }
        }
        // Dropping the sender lets the workers finish.
        self.jobs = None;
    }

    fn register(&self, token: Token, stream: &Stream) -> bool {
        let fd = stream.raw_fd();
        match self.poll.registry().register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "cannot register a connection");
                false
            }
        }
    }

    fn deregister(&self, stream: &Stream) {
        let fd = stream.raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    fn accept(&mut self, conns: &mut HashMap<Token, Entry>) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, info)) => {
                    if let Err(error) = stream.set_nonblocking(true) {
                        tracing::warn!(%error, "cannot make a connection non-blocking");
                        continue;
                    }
                    let token = token_of(&stream);
                    // A descriptor number used before, by a closed connection.
                    self.unread.remove(&token);
                    let stream = Arc::new(stream);
                    if !self.register(token, &stream) {
                        continue;
                    }
                    let conn = Connection {
                        stream,
                        info: Arc::new(info),
                        server: Arc::clone(&self.server),
                        buf: InBuf::default(),
                    };
                    // The head time runs from the accept on a new connection
                    // (`[RGI-LIMIT-5]`).
                    let deadline = Instant::now() + self.limits.head_timeout;
                    conns.insert(
                        token,
                        Entry {
                            conn,
                            phase: Phase::Head,
                            deadline,
                        },
                    );
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    // Out of descriptors, say: back off until the next event
                    // rather than spin.
                    tracing::warn!(%error, "accept failed");
                    return;
                }
            }
        }
    }

    fn take_returns(&mut self, conns: &mut HashMap<Token, Entry>) {
        while let Ok(Finished { conn, keep }) = self.returns.try_recv() {
            let token = token_of(&conn.stream);
            // A synchronous worker keeps the socket non-blocking; an
            // asynchronous request that switched made it blocking.
            if self.reactor.is_some() {
                if let Err(error) = conn.stream.set_nonblocking(true) {
                    tracing::debug!(%error, "cannot make a returned connection non-blocking");
                    continue;
                }
            }
            let stopping = self.control.deadline().is_some();
            let now = Instant::now();
            let entry = if keep && !stopping {
                if conn.buf.is_empty() {
                    Entry {
                        conn,
                        phase: Phase::Idle,
                        deadline: now + self.limits.idle_timeout,
                    }
                } else {
                    Entry {
                        conn,
                        phase: Phase::Head,
                        deadline: now + self.limits.head_timeout,
                    }
                }
            } else {
                let _ = conn.stream.shutdown(Shutdown::Write);
                Entry {
                    conn,
                    phase: Phase::Linger,
                    deadline: now + LINGER,
                }
            };
            // A worker's connection stayed registered during its trip; an
            // async request's was the reactor's and comes back unregistered.
            if self.reactor.is_some() && !self.register(token, &entry.conn.stream) {
                continue;
            }
            // Read now what may be unread (see `unread`); parse what is
            // buffered; an asynchronous request's connection was not watched
            // during its trip; a closing one lingers.
            let read = self.unread.remove(&token)
                || self.reactor.is_some()
                || !matches!(entry.phase, Phase::Idle);
            conns.insert(token, entry);
            if read {
                self.ready(conns, token);
            }
        }
    }

    fn ready(&mut self, conns: &mut HashMap<Token, Entry>, token: Token) {
        self.read_head(conns, token, true);
    }

    /// Reads what the connection has and acts on it. With `ended` false
    /// (an event that reported no end of stream and no error), a read that
    /// returns less than it asked for has emptied the socket: a stream
    /// socket's read stops short only when its queue is empty, and a byte
    /// (or an end) arriving later brings a new edge. That saves the second
    /// read, which would only say `WouldBlock`, for each request.
    fn read_head(&mut self, conns: &mut HashMap<Token, Entry>, token: Token, ended: bool) {
        let Some(entry) = conns.get_mut(&token) else {
            return;
        };
        match &mut entry.phase {
            Phase::Idle | Phase::Head => {
                let mut closed = false;
                let mut drained = false;
                loop {
                    if entry.conn.buf.available().len()
                        > self.limits.max_head + self.limits.max_target
                    {
                        break;
                    }
                    match entry.conn.buf.fill_from(&entry.conn.stream) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(count) => {
                            if matches!(entry.phase, Phase::Idle) {
                                // The head time runs from the first byte on a
                                // kept connection.
                                entry.phase = Phase::Head;
                                entry.deadline = Instant::now() + self.limits.head_timeout;
                            }
                            if !ended && count < READ_SIZE {
                                drained = true;
                                break;
                            }
                        }
                        Err(error) if error.kind() == ErrorKind::WouldBlock => {
                            drained = true;
                            break;
                        }
                        Err(error) if error.kind() == ErrorKind::Interrupted => {}
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if entry.conn.buf.is_empty() {
                    entry.conn.buf.release();
                }
                if !drained {
                    // Bytes or an end left in the socket bring no new edge.
                    self.unread.insert(token);
                }
                // A client may half-close after a complete request; what it
                // sent is still served.
                self.parse(conns, token);
                if closed
                    && conns
                        .get(&token)
                        .is_some_and(|entry| matches!(entry.phase, Phase::Idle | Phase::Head))
                {
                    // A peer that ends mid-head gets no answer.
                    self.close(conns, token);
                }
            }
            Phase::Writing { .. } => self.write_out(conns, token),
            Phase::Linger => {
                let mut scratch = [0u8; 4096];
                loop {
                    match std::io::Read::read(&mut &*entry.conn.stream, &mut scratch) {
                        Ok(0) => {
                            self.close(conns, token);
                            return;
                        }
                        Ok(_) => {}
                        Err(error) if error.kind() == ErrorKind::Interrupted => {}
                        Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                        Err(_) => {
                            self.close(conns, token);
                            return;
                        }
                    }
                }
            }
        }
    }

    fn parse(&mut self, conns: &mut HashMap<Token, Entry>, token: Token) {
        let Some(entry) = conns.get_mut(&token) else {
            return;
        };
        if entry.conn.buf.is_empty() {
            return;
        }
        match head::parse(entry.conn.buf.available(), &self.limits) {
            Ok(Parsed::Partial) => {}
            Ok(Parsed::Complete(head, used)) => {
                entry.conn.buf.consume(used);
                let Some(entry) = conns.remove(&token) else {
                    return;
                };
                // For a worker it stays registered (its token is its
                // descriptor's), which saves two `epoll_ctl` calls per
                // request; events meanwhile find no entry and are dropped.
                // An async request registers it with the reactor in this same
                // poll, where a second registration would be refused.
                if self.reactor.is_some() {
                    self.deregister(&entry.conn.stream);
                }
                let Some(jobs) = self.jobs.as_ref() else {
                    return;
                };
                self.control.in_flight.fetch_add(1, Ordering::AcqRel);
                if !jobs.dispatch(Job {
                    conn: entry.conn,
                    head,
                }) {
                    self.control.in_flight.fetch_sub(1, Ordering::AcqRel);
                }
            }
            Err(refused) => {
                // The limit that refused it, with its configured value
                // (`[RGI-LIMIT-9]`); the offending bytes are not logged.
                let limit = match refused.status {
                    http::StatusCode::URI_TOO_LONG => {
                        format!("max_target = {}", self.limits.max_target)
                    }
                    http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => format!(
                        "max_head = {}, max_fields = {}",
                        self.limits.max_head, self.limits.max_fields
                    ),
                    http::StatusCode::PAYLOAD_TOO_LARGE => {
                        format!("max_body = {}", self.limits.max_body)
                    }
                    _ => String::new(),
                };
                tracing::info!(
                    status = refused.status.as_u16(),
                    reason = refused.reason,
                    limit,
                    peer = ?entry.conn.info.peer_addr(),
                    "refused a request"
                );
                self.refuse(conns, token, refused.status);
            }
        }
    }

    /// Starts writing the server's own answer; the connection closes after
    /// it and nothing more is parsed on it (`[RGI-PROTO-10]`).
    fn refuse(
        &mut self,
        conns: &mut HashMap<Token, Entry>,
        token: Token,
        status: http::StatusCode,
    ) {
        let Some(entry) = conns.get_mut(&token) else {
            return;
        };
        entry.conn.buf.release();
        entry.phase = Phase::Writing {
            out: refusal(status),
            at: 0,
        };
        entry.deadline = Instant::now() + LINGER;
        self.write_out(conns, token);
    }

    fn write_out(&mut self, conns: &mut HashMap<Token, Entry>, token: Token) {
        let Some(entry) = conns.get_mut(&token) else {
            return;
        };
        let Phase::Writing { out, at } = &mut entry.phase else {
            return;
        };
        while *at < out.len() {
            match (&*entry.conn.stream).write(&out[*at..]) {
                Ok(0) => {
                    self.close(conns, token);
                    return;
                }
                Ok(count) => *at += count,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.close(conns, token);
                    return;
                }
            }
        }
        let _ = entry.conn.stream.shutdown(Shutdown::Write);
        entry.phase = Phase::Linger;
        entry.deadline = Instant::now() + LINGER;
        // Anything already readable must be drained now: the edge has passed.
        self.ready(conns, token);
    }

    fn close(&mut self, conns: &mut HashMap<Token, Entry>, token: Token) {
        if let Some(entry) = conns.remove(&token) {
            self.deregister(&entry.conn.stream);
        }
    }

    /// Timeouts: idle and silent connections close without a word,
    /// a partial head gets 408 (`[RGI-LIMIT-5]`, `[RGI-LIMIT-6]`).
    fn expire(&mut self, conns: &mut HashMap<Token, Entry>) {
        let now = Instant::now();
        let due: Vec<Token> = conns
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in due {
            let Some(entry) = conns.get(&token) else {
                continue;
            };
            match entry.phase {
                Phase::Head if !entry.conn.buf.is_empty() => {
                    tracing::info!(
                        limit = ?self.limits.head_timeout,
                        peer = ?entry.conn.info.peer_addr(),
                        "head-read timeout"
                    );
                    self.refuse(conns, token, http::StatusCode::REQUEST_TIMEOUT);
                }
                _ => self.close(conns, token),
            }
        }
    }
}
