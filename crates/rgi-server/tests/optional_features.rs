//! RGI 1.2's optional features on rgi-server, through real sockets on
//! 127.0.0.1, for a synchronous and an asynchronous application alike:
//! what the server declares, request trailers (chunked HTTP/1.1 and
//! HTTP/2, h2c and TLS), response trailers and when they are dropped, the
//! framing of a head that announces trailers, and server-sent events sent
//! one event at a time. The lifespan hooks are in `tests/lifespan.rs`.
//!
//! HTTP/1.1 answers are read as raw bytes, so the framing is the one on the
//! wire; HTTP/2 goes through hyper's client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use common::{BOUND, addr, body_text, h2_client, raw_exchange, read_to_close, run};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Version, header};
use http_body::Frame;
use http_body_util::BodyExt;
use rgi::sse::Event;
use rgi::{
    Application, Body, BoxError, Environ, FileBody, Hints, Input, InputUse, ResponseHead,
    StartResponse,
};
use rgi_async::{AsyncApplication, AsyncBody, Step};
use rgi_server::{Server, TlsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which kind of application the server runs.
#[derive(Debug, Clone, Copy)]
enum Face {
    /// `serve_sync`, the application run on the pool.
    Sync,
    /// `serve_sync`, an application that reads its input whole without
    /// blocking: the server reads the body ahead and runs it inline.
    SyncPreRead,
    /// `serve_async`.
    Async,
}

const FACES: [Face; 3] = [Face::Sync, Face::SyncPreRead, Face::Async];

/// The trailer fields the test applications send.
fn sent_trailers() -> HeaderMap {
    let mut fields = HeaderMap::new();
    fields.insert("x-checksum", HeaderValue::from_static("abcd-sum"));
    fields.insert("x-rows", HeaderValue::from_static("2"));
    fields
}

/// The announcement of [`sent_trailers`].
const ANNOUNCED: &str = "x-checksum, x-rows";

/// The request trailers an application received, as one line: each field
/// `name: value`, sorted, or `none`.
fn render(fields: Option<&HeaderMap>) -> String {
    let Some(fields) = fields else {
        return "none".to_owned();
    };
    let mut lines: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    lines.sort();
    lines.join("; ")
}

/// What `/features` answers: the declaration, and whether trailers given
/// now would reach this client.
fn describe(environ: &Environ, start: &StartResponse<'_>) -> String {
    let features = environ.features();
    format!(
        "request_trailers={} response_trailers={} early_hints={} lifespan={} deliverable={} early_deliverable={}",
        features.request_trailers(),
        features.response_trailers(),
        features.early_hints(),
        features.lifespan(),
        start.trailers_deliverable(),
        start.early_hints_deliverable(),
    )
}

fn text_head() -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

fn announcing_head() -> ResponseHead {
    text_head().with_header(header::TRAILER, HeaderValue::from_static(ANNOUNCED))
}

/// A file with `contents`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(contents: &[u8]) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "rgi-server-optional-features-{}-{n}",
            std::process::id()
        ));
        std::fs::File::create(&path)
            .and_then(|mut file| file.write_all(contents))
            .expect("temporary file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------
// The synchronous application
// ---------------------------------------------------------------------------

/// Streams `parts`, then gives `fields` as trailers in its last pull.
struct Trailed {
    parts: VecDeque<Bytes>,
    fields: Option<HeaderMap>,
}

impl Trailed {
    fn new() -> Self {
        Trailed {
            parts: VecDeque::from([Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]),
            fields: Some(sent_trailers()),
        }
    }
}

impl Body for Trailed {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if let Some(part) = self.parts.pop_front() {
            return Some(Ok(part));
        }
        let fields = self.fields.take()?;
        match start.send_trailers(fields) {
            Ok(()) => None,
            Err(refused) => Some(Err(refused.into())),
        }
    }
}

/// The synchronous test application:
/// - `/features`: [`describe`];
/// - `/upload`: reads the body to its end, then its trailers:
///   `body=<bytes> trailers=<render>`;
/// - `/trailers`: `abcd` in two chunks, trailers announced and given in
///   the last pull;
/// - `/trailers/sized`: `abcd` whole (an exact size hint), trailers
///   announced and given in `call`;
/// - `/trailers/unannounced`: as `sized`, without a `Trailer` field;
/// - `/trailers/file`: `abcd` from a file, trailers announced and given
///   in `call`;
/// - `/events`: the events of the channel the test holds.
struct SyncApp {
    hints: Hints,
    events: Mutex<Option<std::sync::mpsc::Receiver<Event>>>,
    file: Option<TempFile>,
}

impl SyncApp {
    fn new(face: Face) -> Self {
        let hints = match face {
            Face::SyncPreRead => Hints::default()
                .with_may_block(false)
                .with_input(InputUse::Whole),
            _ => Hints::default(),
        };
        SyncApp {
            hints,
            events: Mutex::new(None),
            file: Some(TempFile::new(b"abcd")),
        }
    }
}

impl Application for SyncApp {
    type Body = Box<dyn Body>;

    fn hints(&self) -> Hints {
        self.hints
    }

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        let path = environ.uri().path().to_owned();
        match path.as_str() {
            "/features" => {
                let description = describe(&environ, start);
                start.start(text_head())?;
                Ok(Box::new(Bytes::from(description)))
            }
            "/upload" => {
                let body = environ.input_mut().read_to_bytes(1 << 20)?;
                let trailers = environ.input().trailers()?;
                start.start(text_head())?;
                Ok(Box::new(Bytes::from(format!(
                    "body={} trailers={}",
                    body.len(),
                    render(trailers.as_ref())
                ))))
            }
            "/trailers" => {
                start.start(announcing_head())?;
                Ok(Box::new(Trailed::new()))
            }
            "/trailers/sized" => {
                start.start(announcing_head())?;
                start.send_trailers(sent_trailers())?;
                Ok(Box::new(Bytes::from_static(b"abcd")))
            }
            "/trailers/unannounced" => {
                start.start(text_head())?;
                start.send_trailers(sent_trailers())?;
                Ok(Box::new(Bytes::from_static(b"abcd")))
            }
            "/trailers/file" => {
                let path = &self.file.as_ref().ok_or("no file")?.0;
                let file = FileBody::new(std::fs::File::open(path)?)?;
                start.start(announcing_head())?;
                start.send_trailers(sent_trailers())?;
                Ok(Box::new(file))
            }
            "/events" => {
                let events = self
                    .events
                    .lock()
                    .unwrap()
                    .take()
                    .ok_or("the events were taken")?;
                start.start(rgi::sse::head())?;
                Ok(Box::new(rgi::sse::EventBody::new(events)))
            }
            _ => {
                start.start(ResponseHead::new(StatusCode::NOT_FOUND))?;
                Ok(Box::new(Bytes::new()))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The asynchronous application
// ---------------------------------------------------------------------------

type AsyncBoxed = Pin<Box<dyn AsyncBody + Send>>;

/// Reads the input through its non-blocking face, then answers with what
/// it read and the trailers.
struct AsyncUpload {
    input: Input,
    received: usize,
}

impl AsyncBody for AsyncUpload {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = &mut *self;
        if start.is_started() {
            return Poll::Ready(None);
        }
        loop {
            match this.input.poll_chunk(cx, 64 * 1024) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                Poll::Ready(Ok(chunk)) => this.received += chunk.len(),
            }
        }
        let report = match this.input.trailers() {
            Ok(trailers) => format!(
                "body={} trailers={}",
                this.received,
                render(trailers.as_ref())
            ),
            Err(error) => return Poll::Ready(Some(Err(error.into()))),
        };
        if let Err(error) = start.start(text_head()) {
            return Poll::Ready(Some(Err(error.into())));
        }
        Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(report)))))
    }
}

/// [`Trailed`] as an asynchronous body.
struct AsyncTrailed(Trailed);

impl AsyncBody for AsyncTrailed {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let chunk = self.get_mut().0.next_chunk(start);
        Poll::Ready(chunk.map(|chunk| chunk.map(Step::Chunk)))
    }
}

/// A tokio channel as the event source of an `EventStream`.
struct Events(tokio::sync::mpsc::UnboundedReceiver<Event>);

impl futures_util::Stream for Events {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.get_mut().0.poll_recv(cx)
    }
}

/// The asynchronous twin of [`SyncApp`] (no file route: a `FileBody` is a
/// synchronous body).
struct AsyncApp {
    events: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Event>>>,
}

impl AsyncApplication for AsyncApp {
    type Body = AsyncBoxed;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<AsyncBoxed, BoxError> {
        let path = environ.uri().path().to_owned();
        match path.as_str() {
            "/features" => {
                let description = describe(&environ, start);
                start.start(text_head())?;
                Ok(Box::pin(Bytes::from(description)))
            }
            "/upload" => Ok(Box::pin(AsyncUpload {
                input: environ.into_input(),
                received: 0,
            })),
            "/trailers" => {
                start.start(announcing_head())?;
                Ok(Box::pin(AsyncTrailed(Trailed::new())))
            }
            "/trailers/sized" => {
                start.start(announcing_head())?;
                start.send_trailers(sent_trailers())?;
                Ok(Box::pin(Bytes::from_static(b"abcd")))
            }
            "/trailers/unannounced" => {
                start.start(text_head())?;
                start.send_trailers(sent_trailers())?;
                Ok(Box::pin(Bytes::from_static(b"abcd")))
            }
            "/events" => {
                let events = self
                    .events
                    .lock()
                    .unwrap()
                    .take()
                    .ok_or("the events were taken")?;
                Ok(Box::pin(rgi_async::sse::EventStream::new(Events(events))))
            }
            _ => {
                start.start(ResponseHead::new(StatusCode::NOT_FOUND))?;
                Ok(Box::pin(Bytes::new()))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Servers and clients
// ---------------------------------------------------------------------------

/// Where a test sends the events of `/events`.
enum EventSender {
    Sync(std::sync::mpsc::Sender<Event>),
    Async(tokio::sync::mpsc::UnboundedSender<Event>),
}

impl EventSender {
    fn send(&self, event: Event) {
        match self {
            EventSender::Sync(sender) => sender.send(event).expect("the body listens"),
            EventSender::Async(sender) => sender.send(event).expect("the body listens"),
        }
    }
}

/// A server of `face` on `builder`, and the sender of its event stream.
fn serve_on(face: Face, builder: rgi_server::Builder) -> (Server, EventSender) {
    let builder = builder.workers(2);
    match face {
        Face::Sync | Face::SyncPreRead => {
            let (sender, receiver) = std::sync::mpsc::channel();
            let app = SyncApp::new(face);
            *app.events.lock().unwrap() = Some(receiver);
            let server = builder.serve_sync(app).expect("serves");
            (server, EventSender::Sync(sender))
        }
        Face::Async => {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            let app = AsyncApp {
                events: Mutex::new(Some(receiver)),
            };
            let server = builder.serve_async(app).expect("serves");
            (server, EventSender::Async(sender))
        }
    }
}

fn serve(face: Face) -> (Server, EventSender) {
    serve_on(face, Server::builder().bind(([127, 0, 0, 1], 0)))
}

/// An HTTP/1.x answer as it was on the wire.
#[derive(Debug)]
struct Wire {
    head: String,
    /// The content, de-chunked when it was chunked.
    body: String,
    /// The trailer section after the last-chunk (`None`: not chunked).
    trailers: Option<String>,
}

impl Wire {
    fn parse(raw: &[u8]) -> Wire {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete head in {text:?}"));
        let head = head.to_ascii_lowercase();
        if !head.contains("\r\ntransfer-encoding: chunked") {
            return Wire {
                head,
                body: rest.to_owned(),
                trailers: None,
            };
        }
        let mut body = String::new();
        let mut rest = rest;
        loop {
            let (size_line, after) = rest
                .split_once("\r\n")
                .unwrap_or_else(|| panic!("a cut chunk in {text:?}"));
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("a bad chunk size {size_line:?} in {text:?}"));
            if size == 0 {
                // The trailer section, up to the blank line that ends it.
                let end = after
                    .find("\r\n\r\n")
                    .map(|at| at + 2)
                    .or_else(|| after.starts_with("\r\n").then_some(0))
                    .unwrap_or_else(|| panic!("no end of the trailer section in {text:?}"));
                return Wire {
                    head,
                    body,
                    trailers: Some(after[..end].to_ascii_lowercase()),
                };
            }
            body.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
    }

    fn is_chunked(&self) -> bool {
        self.trailers.is_some()
    }

    fn has_header(&self, line: &str) -> bool {
        self.head.contains(&format!("\r\n{line}\r\n"))
    }
}

/// One HTTP/1.x request on a fresh connection, read until the server
/// closes it.
fn exchange(address: std::net::SocketAddr, request: &str) -> Wire {
    let raw = run(raw_exchange(address, request.as_bytes()));
    Wire::parse(&raw)
}

fn get_request(method: &str, path: &str, version: &str, extra: &str) -> String {
    format!("{method} {path} {version}\r\nhost: test.example\r\nconnection: close\r\n{extra}\r\n")
}

/// The trailer section of [`sent_trailers`], as hyper writes it.
fn expected_trailer_section() -> &'static str {
    "x-checksum: abcd-sum\r\nx-rows: 2\r\n"
}

// ---------------------------------------------------------------------------
// Declared features
// ---------------------------------------------------------------------------

#[test]
fn the_declaration_is_trailers_and_lifespan_and_no_early_hints() {
    for face in FACES {
        let (server, _events) = serve(face);
        let address = addr(&server);
        let declared =
            "request_trailers=true response_trailers=true early_hints=false lifespan=true";
        let cases = [
            ("HTTP/1.1", "te: trailers\r\n", true),
            ("HTTP/1.1", "te: gzip;q=0.5, Trailers\r\n", true),
            ("HTTP/1.1", "te: deflate\r\nte: trailers\r\n", true),
            ("HTTP/1.1", "", false),
            ("HTTP/1.1", "te: trailers;q=0.5\r\n", false),
            ("HTTP/1.1", "te: gzip\r\n", false),
            ("HTTP/1.0", "te: trailers\r\n", false),
        ];
        for (version, te, deliverable) in cases {
            let wire = exchange(address, &get_request("GET", "/features", version, te));
            assert_eq!(
                wire.body,
                format!("{declared} deliverable={deliverable} early_deliverable=false"),
                "{face:?} {version} {te:?}"
            );
        }
        run(async {
            let mut sender = h2_client(address).await;
            let response = sender.send_request(h2_get("/features")).await.unwrap();
            assert_eq!(
                body_text(response).await,
                format!("{declared} deliverable=true early_deliverable=false"),
                "{face:?} HTTP/2"
            );
        });
    }
}

// ---------------------------------------------------------------------------
// Request trailers
// ---------------------------------------------------------------------------

/// A chunked upload of `hello world` whose trailer section carries a
/// checksum and fields no trailer section may carry.
const CHUNKED_UPLOAD: &str = "POST /upload HTTP/1.1\r\nhost: test.example\r\nconnection: close\r\n\
    transfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n\
    5\r\nhello\r\n6\r\n world\r\n0\r\n\
    x-checksum: 5eb63bbb\r\ncontent-type: text/evil\r\nset-cookie: session=stolen\r\n\
    host: elsewhere.example\r\ncontent-length: 99\r\nx-note: two\r\nx-note: values\r\n\r\n";

#[test]
fn chunked_http1_request_trailers_reach_the_application_without_forbidden_fields() {
    for face in FACES {
        let (server, _events) = serve(face);
        let wire = exchange(addr(&server), CHUNKED_UPLOAD);
        assert!(wire.head.starts_with("http/1.1 200"), "{face:?}: {wire:?}");
        assert_eq!(
            wire.body, "body=11 trailers=x-checksum: 5eb63bbb; x-note: two; x-note: values",
            "{face:?}"
        );
    }
}

#[test]
fn a_request_without_a_trailer_section_reads_none_after_its_end() {
    for face in FACES {
        let (server, _events) = serve(face);
        let address = addr(&server);
        let chunked = "POST /upload HTTP/1.1\r\nhost: test.example\r\nconnection: close\r\n\
            transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(
            exchange(address, chunked).body,
            "body=5 trailers=none",
            "{face:?}"
        );
        let sized = "POST /upload HTTP/1.1\r\nhost: test.example\r\nconnection: close\r\n\
            content-length: 5\r\n\r\nhello";
        assert_eq!(
            exchange(address, sized).body,
            "body=5 trailers=none",
            "{face:?}"
        );
    }
}

/// A request body of DATA frames, then a trailers frame.
type FramedBody = http_body_util::StreamBody<
    futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>,
>;

fn framed(parts: &[&'static str], trailers: HeaderMap) -> FramedBody {
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = parts
        .iter()
        .map(|part| Ok(Frame::data(Bytes::from_static(part.as_bytes()))))
        .collect();
    frames.push(Ok(Frame::trailers(trailers)));
    http_body_util::StreamBody::new(futures_util::stream::iter(frames))
}

fn upload_trailers() -> HeaderMap {
    let mut fields = HeaderMap::new();
    fields.insert("x-checksum", HeaderValue::from_static("5eb63bbb"));
    fields.insert("content-type", HeaderValue::from_static("text/evil"));
    fields.insert("cookie", HeaderValue::from_static("session=stolen"));
    fields
}

fn h2_upload(length: Option<usize>) -> Request<FramedBody> {
    let mut request = Request::post("http://test.example/upload").version(Version::HTTP_2);
    if let Some(length) = length {
        request = request.header(header::CONTENT_LENGTH, length);
    }
    request
        .body(framed(&["hello", " world"], upload_trailers()))
        .unwrap()
}

/// Sends `request` on an HTTP/2 connection over `io`, returning the body.
async fn h2_send<I>(io: I, request: Request<FramedBody>) -> String
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    body_text(response).await
}

#[test]
fn http2_request_trailers_reach_the_application_with_or_without_a_length() {
    for face in FACES {
        let (server, _events) = serve(face);
        let address = addr(&server);
        for length in [None, Some(11)] {
            let body = run(async {
                let stream = TcpStream::connect(address).await.unwrap();
                h2_send(stream, h2_upload(length)).await
            });
            assert_eq!(
                body, "body=11 trailers=x-checksum: 5eb63bbb",
                "{face:?}, content-length {length:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Response trailers on HTTP/1.x
// ---------------------------------------------------------------------------

#[test]
fn http1_response_trailers_follow_the_last_chunk_when_the_client_sent_te_trailers() {
    for face in FACES {
        let (server, _events) = serve(face);
        let wire = exchange(
            addr(&server),
            &get_request("GET", "/trailers", "HTTP/1.1", "te: trailers\r\n"),
        );
        assert!(
            wire.has_header("transfer-encoding: chunked"),
            "{face:?}: {wire:?}"
        );
        assert!(
            wire.has_header(&format!("trailer: {ANNOUNCED}")),
            "{face:?}: {wire:?}"
        );
        assert_eq!(wire.body, "abcd", "{face:?}");
        assert_eq!(
            wire.trailers.as_deref(),
            Some(expected_trailer_section()),
            "{face:?}"
        );
    }
}

#[test]
fn http1_response_trailers_are_dropped_without_te_trailers() {
    for face in FACES {
        let (server, _events) = serve(face);
        let wire = exchange(
            addr(&server),
            &get_request("GET", "/trailers", "HTTP/1.1", ""),
        );
        // Still chunked, as the announcement asks (`[RGI-TRAILER-6]`), and
        // ended by a last-chunk with no trailer section.
        assert!(
            wire.has_header("transfer-encoding: chunked"),
            "{face:?}: {wire:?}"
        );
        assert_eq!(wire.body, "abcd", "{face:?}");
        assert_eq!(wire.trailers.as_deref(), Some(""), "{face:?}");
    }
}

#[test]
fn http1_0_and_head_requests_get_no_trailers() {
    for face in FACES {
        let (server, _events) = serve(face);
        let address = addr(&server);
        let old = exchange(
            address,
            &get_request("GET", "/trailers", "HTTP/1.0", "te: trailers\r\n"),
        );
        assert!(!old.is_chunked(), "{face:?}: {old:?}");
        assert_eq!(
            old.body, "abcd",
            "{face:?}: HTTP/1.0 content, nothing after it"
        );
        // hyper leaves the announcement out where no chunked body can follow.
        assert!(!old.head.contains("\r\ntrailer:"), "{face:?}: {old:?}");

        let head = exchange(
            address,
            &get_request("HEAD", "/trailers", "HTTP/1.1", "te: trailers\r\n"),
        );
        assert!(head.head.starts_with("http/1.1 200"), "{face:?}: {head:?}");
        assert_eq!(
            head.body, "",
            "{face:?}: nothing after a HEAD answer's head"
        );
    }
}

#[test]
fn a_head_announcing_trailers_is_sent_chunked_despite_an_exact_size() {
    for face in FACES {
        let (server, _events) = serve(face);
        let address = addr(&server);
        for (te, section) in [("te: trailers\r\n", expected_trailer_section()), ("", "")] {
            let wire = exchange(
                address,
                &get_request("GET", "/trailers/sized", "HTTP/1.1", te),
            );
            assert!(
                wire.has_header("transfer-encoding: chunked"),
                "{face:?}: {wire:?}"
            );
            assert!(!wire.head.contains("content-length"), "{face:?}: {wire:?}");
            assert_eq!(wire.body, "abcd", "{face:?}");
            assert_eq!(wire.trailers.as_deref(), Some(section), "{face:?} {te:?}");
        }
    }
}

#[test]
fn an_unannounced_trailer_after_a_sized_body_is_dropped_on_http1() {
    for face in FACES {
        let (server, _events) = serve(face);
        let wire = exchange(
            addr(&server),
            &get_request(
                "GET",
                "/trailers/unannounced",
                "HTTP/1.1",
                "te: trailers\r\n",
            ),
        );
        // Framed by the length the size hint gave: no room for trailers.
        assert!(wire.has_header("content-length: 4"), "{face:?}: {wire:?}");
        assert_eq!(wire.body, "abcd", "{face:?}");
    }
}

#[test]
fn a_file_body_announcing_trailers_is_sent_chunked_with_them() {
    let (server, _events) = serve(Face::Sync);
    let wire = exchange(
        addr(&server),
        &get_request("GET", "/trailers/file", "HTTP/1.1", "te: trailers\r\n"),
    );
    assert!(wire.has_header("transfer-encoding: chunked"), "{wire:?}");
    assert!(!wire.head.contains("content-length"), "{wire:?}");
    assert_eq!(wire.body, "abcd");
    assert_eq!(wire.trailers.as_deref(), Some(expected_trailer_section()));
}

// ---------------------------------------------------------------------------
// Response trailers on HTTP/2
// ---------------------------------------------------------------------------

fn h2_get(path: &str) -> Request<http_body_util::Full<Bytes>> {
    Request::get(format!("http://test.example{path}"))
        .version(Version::HTTP_2)
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap()
}

/// The body and trailers of an HTTP/2 response.
async fn h2_collect(
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Full<Bytes>>,
    request: Request<http_body_util::Full<Bytes>>,
) -> (Option<String>, String, Option<HeaderMap>) {
    let response = sender.send_request(request).await.expect("response");
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .map(|value| value.to_str().unwrap().to_owned());
    let collected = response.into_body().collect().await.expect("whole body");
    let trailers = collected.trailers().cloned();
    let body = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
    (length, body, trailers)
}

#[test]
fn http2_response_trailers_arrive_announced_or_not_sized_or_not() {
    for face in FACES {
        let (server, _events) = serve(face);
        let address = addr(&server);
        run(async {
            let mut sender = h2_client(address).await;
            for path in ["/trailers", "/trailers/sized"] {
                let (_, body, trailers) = h2_collect(&mut sender, h2_get(path)).await;
                assert_eq!(body, "abcd", "{face:?} {path}");
                assert_eq!(trailers, Some(sent_trailers()), "{face:?} {path}");
            }
            // Unannounced, given before the body ended: the server's
            // length is kept and the trailers follow it.
            let (length, body, trailers) =
                h2_collect(&mut sender, h2_get("/trailers/unannounced")).await;
            assert_eq!(body, "abcd", "{face:?} unannounced");
            assert_eq!(length.as_deref(), Some("4"), "{face:?} unannounced");
            assert_eq!(trailers, Some(sent_trailers()), "{face:?} unannounced");
            let head = Request::head("http://test.example/trailers")
                .version(Version::HTTP_2)
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap();
            let (_, body, trailers) = h2_collect(&mut sender, head).await;
            assert_eq!((body.as_str(), trailers), ("", None), "{face:?} HEAD");
        });
    }
}

#[test]
fn http2_file_body_trailers_arrive() {
    let (server, _events) = serve(Face::Sync);
    let address = addr(&server);
    run(async {
        let mut sender = h2_client(address).await;
        let (_, body, trailers) = h2_collect(&mut sender, h2_get("/trailers/file")).await;
        assert_eq!(body, "abcd");
        assert_eq!(trailers, Some(sent_trailers()));
    });
}

// ---------------------------------------------------------------------------
// Trailers both ways over TLS (HTTP/2 by ALPN)
// ---------------------------------------------------------------------------

/// A CA and a `localhost` certificate it issued: the server's configuration
/// and a client connector that trusts it, offering only `h2`.
fn tls_pair() -> (TlsConfig, tokio_rustls::TlsConnector) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let server =
        TlsConfig::from_pem(leaf.pem().as_bytes(), leaf_key.serialize_pem().as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    (server, tokio_rustls::TlsConnector::from(Arc::new(client)))
}

#[test]
fn trailers_both_ways_over_tls_http2() {
    for face in FACES {
        let (tls, connector) = tls_pair();
        let (server, _events) =
            serve_on(face, Server::builder().bind_tls(([127, 0, 0, 1], 0), tls));
        let address = addr(&server);
        run(async {
            let connect = || async {
                let tcp = TcpStream::connect(address).await.unwrap();
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                connector.connect(name, tcp).await.expect("TLS handshake")
            };
            let tls = connect().await;
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            let upload = h2_send(tls, h2_upload(None)).await;
            assert_eq!(upload, "body=11 trailers=x-checksum: 5eb63bbb", "{face:?}");

            let (mut sender, connection) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(connect().await),
            )
            .await
            .unwrap();
            tokio::spawn(connection);
            let request = Request::get("https://localhost/trailers")
                .version(Version::HTTP_2)
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap();
            let (_, body, trailers) = h2_collect(&mut sender, request).await;
            assert_eq!(body, "abcd", "{face:?}");
            assert_eq!(trailers, Some(sent_trailers()), "{face:?}");
        });
    }
}

// ---------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------

/// Reads from `stream` into `seen` until it contains `wanted`; bounded by
/// the test's timeout, so an event the server holds back fails the test.
async fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, wanted: &str) {
    while !String::from_utf8_lossy(seen).contains(wanted) {
        let mut buffer = [0_u8; 1024];
        let read = tokio::time::timeout(BOUND, stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{wanted:?} never arrived; got {:?}",
                    String::from_utf8_lossy(seen)
                )
            })
            .expect("read");
        assert_ne!(
            read,
            0,
            "closed before {wanted:?}: {:?}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
}

#[test]
fn http1_each_event_reaches_the_client_before_the_next_is_produced() {
    for face in [Face::Sync, Face::Async] {
        let (server, events) = serve(face);
        let address = addr(&server);
        run(async {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream
                .write_all(get_request("GET", "/events", "HTTP/1.1", "").as_bytes())
                .await
                .unwrap();
            let mut seen = Vec::new();
            events.send(Event::new().id("1").unwrap().data("one"));
            read_until(&mut stream, &mut seen, "id: 1\ndata: one\n\n").await;
            // Only now is the second event produced: the first went out
            // alone, without waiting for more.
            events.send(Event::new().event("tick").unwrap().data("two\nlines"));
            read_until(
                &mut stream,
                &mut seen,
                "event: tick\ndata: two\ndata: lines\n\n",
            )
            .await;
            drop(events);
            seen.extend(read_to_close(&mut stream).await);
            let wire = Wire::parse(&seen);
            assert!(
                wire.has_header("content-type: text/event-stream"),
                "{face:?}: {wire:?}"
            );
            assert!(
                wire.has_header("cache-control: no-cache"),
                "{face:?}: {wire:?}"
            );
            assert!(
                wire.has_header("transfer-encoding: chunked"),
                "{face:?}: {wire:?}"
            );
            assert_eq!(
                wire.body, "id: 1\ndata: one\n\nevent: tick\ndata: two\ndata: lines\n\n",
                "{face:?}"
            );
        });
    }
}

#[test]
fn http2_each_event_reaches_the_client_before_the_next_is_produced() {
    for face in [Face::Sync, Face::Async] {
        let (server, events) = serve(face);
        let address = addr(&server);
        run(async {
            let mut sender = h2_client(address).await;
            // The head goes out with the first event (a stored head is
            // sent with the first data, `[RGI-START-6]`).
            events.send(Event::from_data("one"));
            let response = sender.send_request(h2_get("/events")).await.unwrap();
            assert_eq!(
                response.headers().get(header::CONTENT_TYPE).unwrap(),
                "text/event-stream"
            );
            let mut body = response.into_body();
            let mut seen = String::new();
            for (event, wanted) in [
                (None, "data: one\n\n"),
                (Some(Event::from_data("two")), "data: two\n\n"),
            ] {
                // The second event is produced only once the first has
                // arrived: it went out alone, without waiting for more.
                if let Some(event) = event {
                    events.send(event);
                }
                while !seen.ends_with(wanted) {
                    let frame = tokio::time::timeout(BOUND, body.frame())
                        .await
                        .unwrap_or_else(|_| panic!("{wanted:?} never arrived; got {seen:?}"))
                        .expect("a frame before the end")
                        .expect("a good frame");
                    if let Ok(data) = frame.into_data() {
                        seen.push_str(&String::from_utf8_lossy(&data));
                    }
                }
            }
            drop(events);
            assert!(body.frame().await.is_none_or(|frame| frame.is_ok()));
            assert_eq!(seen, "data: one\n\ndata: two\n\n", "{face:?}");
        });
    }
}
