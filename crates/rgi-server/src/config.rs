//! What a deployer tunes: connection limits, HTTP/1.1 and HTTP/2 settings.
//!
//! Every value has a finite, documented default (spec/rgi.md §12.2 asks for
//! exactly that); the builder methods change one value at a time.

use std::time::Duration;

/// Limits and timeouts enforced by the connection layer.
///
/// The body limit and the stalled-body time are enforced by the service
/// that reads the body (`rgi-tower`'s `Host`, which
/// [`Builder::serve_sync`](crate::Builder::serve_sync) and
/// [`Builder::serve_async`](crate::Builder::serve_async) configure with
/// them); the others by the connection layer.
///
/// | Limit | Default | What happens when it is reached |
/// |---|---|---|
/// | [`header_read_timeout`](Self::header_read_timeout) | 30 s | `408` and close if part of a head arrived, else a silent close |
/// | [`keep_alive_idle`](Self::keep_alive_idle) | 60 s | a silent close of an idle HTTP/1.1 connection |
/// | [`protocol_detection_timeout`](Self::protocol_detection_timeout) | 10 s | a silent close (plain TCP: HTTP/1.1 or the HTTP/2 preface) |
/// | [`tls_handshake_timeout`](Self::tls_handshake_timeout) | 10 s | a silent close |
/// | [`max_target_bytes`](Self::max_target_bytes) | 8 KiB | `414` and close |
/// | [`max_header_bytes`](Self::max_header_bytes) | 64 KiB | `431` and close |
/// | [`max_headers`](Self::max_headers) | 100 field lines | `431` and close |
/// | [`max_body_bytes`](Self::max_body_bytes) | 64 MiB | `413` (declared length) or a typed read error (served applications) |
/// | [`body_stall_timeout`](Self::body_stall_timeout) | 30 s | `408` or an abnormal end (served applications) |
/// | [`max_pre_read_bytes`](Self::max_pre_read_bytes) | 1 MiB | `413` for a body read whole before an inline application runs |
/// | [`retry_after`](Self::retry_after) | 1 s | the `Retry-After` of the `503` a full pool answers |
/// | [`max_requests_per_connection`](Self::max_requests_per_connection) | none | `connection: close` on the last response (HTTP/2: `GOAWAY`) |
/// | [`max_connection_age`](Self::max_connection_age) | none | a graceful close once the age is reached |
/// | [`max_connections`](Self::max_connections) | 16,384 | further connections wait in the listen backlog |
/// | [`shutdown_grace`](Self::shutdown_grace) | 30 s | in-flight responses still running are abandoned |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rgi_server::Limits;
///
/// let limits = Limits::default()
///     .header_read_timeout(Duration::from_secs(10))
///     .max_requests_per_connection(Some(1_000));
/// assert_eq!(limits.get_header_read_timeout(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
pub struct Limits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) keep_alive_idle: Duration,
    pub(crate) protocol_detection_timeout: Duration,
    pub(crate) tls_handshake_timeout: Duration,
    pub(crate) max_target_bytes: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_body_bytes: u64,
    pub(crate) body_stall_timeout: Duration,
    pub(crate) max_pre_read_bytes: u64,
    pub(crate) retry_after: Duration,
    pub(crate) max_requests_per_connection: Option<u64>,
    pub(crate) max_connection_age: Option<Duration>,
    pub(crate) max_connections: usize,
    pub(crate) shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            keep_alive_idle: Duration::from_secs(60),
            protocol_detection_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_target_bytes: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body_bytes: 64 * 1024 * 1024,
            body_stall_timeout: Duration::from_secs(30),
            max_pre_read_bytes: rgi_tower::DEFAULT_PRE_READ_LIMIT,
            retry_after: Duration::from_secs(1),
            max_requests_per_connection: None,
            max_connection_age: None,
            max_connections: 16_384,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Time allowed for a request head, from its first byte (on a new
    /// connection: from the accept). Default 30 s.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Time an HTTP/1.1 connection may sit between a response and the first
    /// byte of the next request. Default 60 s.
    #[must_use]
    pub fn keep_alive_idle(mut self, timeout: Duration) -> Self {
        self.keep_alive_idle = timeout;
        self
    }

    /// Time allowed on plain TCP to tell HTTP/1.1 from the HTTP/2 preface.
    /// Default 10 s.
    #[must_use]
    pub fn protocol_detection_timeout(mut self, timeout: Duration) -> Self {
        self.protocol_detection_timeout = timeout;
        self
    }

    /// Time allowed for a TLS handshake. Default 10 s.
    #[must_use]
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// Longest request target (or `:path`), in bytes. Default 8 KiB.
    #[must_use]
    pub fn max_target_bytes(mut self, bytes: usize) -> Self {
        self.max_target_bytes = bytes;
        self
    }

    /// Largest request body, in bytes. Default 64 MiB.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: u64) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Time a request body may go without a byte while the application
    /// waits for one. Default 30 s.
    #[must_use]
    pub fn body_stall_timeout(mut self, timeout: Duration) -> Self {
        self.body_stall_timeout = timeout;
        self
    }

    /// Largest body read into memory before a synchronous application that
    /// declares it never blocks but reads its input whole runs inline (see
    /// the crate docs on dispatch); never above
    /// [`max_body_bytes`](Self::max_body_bytes). Past it the answer is
    /// `413`, so raising it trades memory per request for fewer pool hops.
    /// Default 1 MiB.
    #[must_use]
    pub fn max_pre_read_bytes(mut self, bytes: u64) -> Self {
        self.max_pre_read_bytes = bytes;
        self
    }

    /// The `Retry-After` a full worker pool answers its `503` with, in
    /// whole seconds (rounded up, at least one). Default 1 s.
    #[must_use]
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = delay;
        self
    }

    /// Largest HTTP/1.1 request head (request line and fields), in bytes.
    /// Default 64 KiB. Values below 8 KiB are raised to 8 KiB, hyper's
    /// smallest read buffer.
    #[must_use]
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Most field lines in one request head. Default 100.
    #[must_use]
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }

    /// Requests served on one connection before it is closed; `None` (the
    /// default) leaves the count unbounded.
    #[must_use]
    pub fn max_requests_per_connection(mut self, count: Option<u64>) -> Self {
        self.max_requests_per_connection = count;
        self
    }

    /// Age after which a connection is closed gracefully (after its in-flight
    /// responses); `None` (the default) lets connections live on.
    #[must_use]
    pub fn max_connection_age(mut self, age: Option<Duration>) -> Self {
        self.max_connection_age = age;
        self
    }

    /// Connections served at once; further connections are not accepted
    /// until one ends, so they wait in the listen backlog. Default 16,384.
    /// Zero is raised to one.
    #[must_use]
    pub fn max_connections(mut self, count: usize) -> Self {
        self.max_connections = count;
        self
    }

    /// Time in-flight responses get to finish after shutdown begins.
    /// Default 30 s.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The configured head-read time.
    #[must_use]
    pub fn get_header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// The configured idle keep-alive time.
    #[must_use]
    pub fn get_keep_alive_idle(&self) -> Duration {
        self.keep_alive_idle
    }

    /// The configured maximum connection count.
    #[must_use]
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// The configured shutdown grace period.
    #[must_use]
    pub fn get_shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }

    /// The configured protocol detection time.
    #[must_use]
    pub fn get_protocol_detection_timeout(&self) -> Duration {
        self.protocol_detection_timeout
    }

    /// The configured TLS handshake time.
    #[must_use]
    pub fn get_tls_handshake_timeout(&self) -> Duration {
        self.tls_handshake_timeout
    }

    /// The configured longest request target, in bytes.
    #[must_use]
    pub fn get_max_target_bytes(&self) -> usize {
        self.max_target_bytes
    }

    /// The configured largest HTTP/1.1 request head, in bytes.
    #[must_use]
    pub fn get_max_header_bytes(&self) -> usize {
        self.max_header_bytes
    }

    /// The configured most field lines in a request head.
    #[must_use]
    pub fn get_max_headers(&self) -> usize {
        self.max_headers
    }

    /// The configured largest request body, in bytes.
    #[must_use]
    pub fn get_max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    /// The configured stalled-body time.
    #[must_use]
    pub fn get_body_stall_timeout(&self) -> Duration {
        self.body_stall_timeout
    }

    /// The configured largest pre-read body, in bytes.
    #[must_use]
    pub fn get_max_pre_read_bytes(&self) -> u64 {
        self.max_pre_read_bytes
    }

    /// The configured `Retry-After` delay of a full pool.
    #[must_use]
    pub fn get_retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The configured most requests per connection (`None`: unlimited).
    #[must_use]
    pub fn get_max_requests_per_connection(&self) -> Option<u64> {
        self.max_requests_per_connection
    }

    /// The configured longest connection life (`None`: unlimited).
    #[must_use]
    pub fn get_max_connection_age(&self) -> Option<Duration> {
        self.max_connection_age
    }
}

/// HTTP/1.1 settings that are not limits.
///
/// | Setting | Default |
/// |---|---|
/// | [`pipeline_flush`](Self::pipeline_flush) | off (see the method for why) |
/// | [`writev`](Self::writev) | hyper's choice (vectored writes when the socket supports them) |
///
/// # Memory per connection
///
/// hyper 1.12 gives every HTTP/1.1 connection an 8 KiB write buffer when
/// the connection starts and reads into an 8 KiB buffer; a request whose
/// application holds it (a long-poll holding its environ) keeps slices of
/// that buffer, so hyper reads on, watching for the client's close, into a
/// second 8 KiB one. No hyper setting changes these sizes (the maximum
/// buffer size bounds growth only, `writev` the write strategy only), so a
/// parked connection costs at least 24 KiB of heap, bare hyper's as much as
/// this server's; little of it is touched, so resident memory stays lower
/// (about 17 KiB per parked connection in `bench/server.sh`'s long-poll,
/// bare hyper about 15 KiB). What this server adds is kept small: the
/// connection's task holds hyper's connection once, and the paths most
/// connections never take (TLS, HTTP/2) are allocated only when taken.
#[derive(Debug, Clone, Default)]
pub struct Http1Settings {
    pub(crate) pipeline_flush: bool,
    pub(crate) writev: Option<bool>,
}

impl Http1Settings {
    /// Whether responses to pipelined requests are flushed together
    /// (one write for several responses). Default off: with it on, hyper
    /// 1.12 buffers the answer it writes itself to a head it cannot parse
    /// (`400`, `414`, `431`) and closes the connection without flushing it,
    /// so the client sees a bare close instead of the status (measured by
    /// this crate's tests against bare hyper).
    #[must_use]
    pub fn pipeline_flush(mut self, enabled: bool) -> Self {
        self.pipeline_flush = enabled;
        self
    }

    /// Force vectored writes on or off instead of hyper's automatic choice.
    #[must_use]
    pub fn writev(mut self, enabled: bool) -> Self {
        self.writev = Some(enabled);
        self
    }

    /// Whether pipelined responses are flushed together.
    #[must_use]
    pub fn get_pipeline_flush(&self) -> bool {
        self.pipeline_flush
    }

    /// The forced vectored-write choice (`None`: hyper's automatic one).
    #[must_use]
    pub fn get_writev(&self) -> Option<bool> {
        self.writev
    }
}

/// HTTP/2 settings (h2c prior knowledge, and TLS with ALPN `h2`).
///
/// | Setting | Default | Why |
/// |---|---|---|
/// | [`max_concurrent_streams`](Self::max_concurrent_streams) | 100 | spec/rgi.md RGI-H2-8 recommends 100 |
/// | [`initial_stream_window`](Self::initial_stream_window) | 256 KiB | bounds what one stream's client may send ahead of the application |
/// | [`initial_connection_window`](Self::initial_connection_window) | 1 MiB | the same for the whole connection |
/// | [`max_header_list_size`](Self::max_header_list_size) | 64 KiB | the header-section limit of §12.2, advertised as `SETTINGS_MAX_HEADER_LIST_SIZE` |
/// | [`max_send_buffer`](Self::max_send_buffer) | 64 KiB | unsent response bytes buffered per stream before the body is no longer polled |
/// | [`keep_alive_interval`](Self::keep_alive_interval) | 30 s | a `PING` after this much silence finds dead peers |
/// | [`keep_alive_timeout`](Self::keep_alive_timeout) | 20 s | a `PING` unanswered this long closes the connection |
/// | [`idle_timeout`](Self::idle_timeout) | 60 s | a connection without open streams this long is closed with `GOAWAY` |
/// | [`max_pending_reset_streams`](Self::max_pending_reset_streams) | 20 | streams reset by the client before being served (the rapid-reset bound) |
/// | [`enable_connect_protocol`](Self::enable_connect_protocol) | off | extended CONNECT (RFC 8441), used by WebSockets over HTTP/2 |
#[derive(Debug, Clone)]
pub struct Http2Settings {
    pub(crate) max_concurrent_streams: u32,
    pub(crate) initial_stream_window: u32,
    pub(crate) initial_connection_window: u32,
    pub(crate) max_header_list_size: u32,
    pub(crate) max_send_buffer: usize,
    pub(crate) keep_alive_interval: Option<Duration>,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_pending_reset_streams: usize,
    pub(crate) enable_connect_protocol: bool,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 100,
            initial_stream_window: 256 * 1024,
            initial_connection_window: 1024 * 1024,
            max_header_list_size: 64 * 1024,
            max_send_buffer: 64 * 1024,
            keep_alive_interval: Some(Duration::from_secs(30)),
            keep_alive_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_pending_reset_streams: 20,
            enable_connect_protocol: false,
        }
    }
}

impl Http2Settings {
    /// Streams a client may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    #[must_use]
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = streams;
        self
    }

    /// The receive window of each stream, in bytes.
    #[must_use]
    pub fn initial_stream_window(mut self, bytes: u32) -> Self {
        self.initial_stream_window = bytes;
        self
    }

    /// The receive window of the connection, in bytes.
    #[must_use]
    pub fn initial_connection_window(mut self, bytes: u32) -> Self {
        self.initial_connection_window = bytes;
        self
    }

    /// The largest decoded header section accepted, in bytes.
    #[must_use]
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.max_header_list_size = bytes;
        self
    }

    /// Unsent response bytes buffered per stream.
    #[must_use]
    pub fn max_send_buffer(mut self, bytes: usize) -> Self {
        self.max_send_buffer = bytes;
        self
    }

    /// Interval of keep-alive `PING`s; `None` sends none.
    #[must_use]
    pub fn keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive_interval = interval;
        self
    }

    /// How long a keep-alive `PING` may go unanswered.
    #[must_use]
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// How long a connection may have no open stream before it is closed.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Streams the client may reset before the server has served them,
    /// beyond which the connection is closed.
    #[must_use]
    pub fn max_pending_reset_streams(mut self, streams: usize) -> Self {
        self.max_pending_reset_streams = streams;
        self
    }

    /// Advertise extended CONNECT (RFC 8441).
    #[must_use]
    pub fn enable_connect_protocol(mut self, enabled: bool) -> Self {
        self.enable_connect_protocol = enabled;
        self
    }

    /// The configured most concurrent streams per connection.
    #[must_use]
    pub fn get_max_concurrent_streams(&self) -> u32 {
        self.max_concurrent_streams
    }

    /// The configured initial stream window, in bytes.
    #[must_use]
    pub fn get_initial_stream_window(&self) -> u32 {
        self.initial_stream_window
    }

    /// The configured initial connection window, in bytes.
    #[must_use]
    pub fn get_initial_connection_window(&self) -> u32 {
        self.initial_connection_window
    }

    /// The configured largest header list, in bytes.
    #[must_use]
    pub fn get_max_header_list_size(&self) -> u32 {
        self.max_header_list_size
    }

    /// The configured send buffer per stream, in bytes.
    #[must_use]
    pub fn get_max_send_buffer(&self) -> usize {
        self.max_send_buffer
    }

    /// The configured `PING` interval (`None`: no pings).
    #[must_use]
    pub fn get_keep_alive_interval(&self) -> Option<Duration> {
        self.keep_alive_interval
    }

    /// The configured `PING` answer time.
    #[must_use]
    pub fn get_keep_alive_timeout(&self) -> Duration {
        self.keep_alive_timeout
    }

    /// The configured idle time before `GOAWAY`.
    #[must_use]
    pub fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The configured bound on streams reset before being served.
    #[must_use]
    pub fn get_max_pending_reset_streams(&self) -> usize {
        self.max_pending_reset_streams
    }

    /// The configured extended CONNECT switch.
    #[must_use]
    pub fn get_enable_connect_protocol(&self) -> bool {
        self.enable_connect_protocol
    }
}
