//! The upgrade of a mounted tower service: hyper makes the `OnUpgrade`
//! a service (axum's `WebSocketUpgrade`) needs only inside its own
//! connections (`hyper::upgrade::pending` is private to hyper), so the
//! bridge gives the request one: it writes the request head into an
//! in-memory HTTP/1.1 connection served by hyper, whose service hands
//! hyper's `OnUpgrade` to the mounted service's request. When the service
//! answers `101`, the bridge accepts the RGI upgrade with the service's
//! fields and relays bytes between the RGI connection and its end of the
//! in-memory one, where hyper hands the service the other end.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use rgi::BoxError;
use rgi_async::ByteStream;
use tokio::sync::oneshot;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::input_body::InputBody;

/// How many bytes one direction of the in-memory connection holds before
/// its writer waits.
const PIPE_CAPACITY: usize = 64 * 1024;

/// The longest head the in-memory connection's `101` may have.
const MAX_SWITCH_HEAD: usize = 64 * 1024;

/// One direction of the in-memory connection.
#[derive(Default)]
struct Direction {
    bytes: VecDeque<u8>,
    /// The writer shut this direction down, or went away.
    closed: bool,
    /// The reader went away: writes fail.
    reader_gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

type Shared = Arc<Mutex<Direction>>;

fn lock(direction: &Shared) -> MutexGuard<'_, Direction> {
    // Nothing in a direction is left half-changed by a panic.
    direction.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One end of an in-memory, bidirectional byte connection with
/// backpressure: what it writes the other end reads.
pub(crate) struct End {
    incoming: Shared,
    outgoing: Shared,
}

/// A connected pair of ends.
fn pair() -> (End, End) {
    let one = Shared::default();
    let two = Shared::default();
    (
        End {
            incoming: Arc::clone(&one),
            outgoing: Arc::clone(&two),
        },
        End {
            incoming: two,
            outgoing: one,
        },
    )
}

impl End {
    /// Reads what the other end wrote; 0 once it shut its side and all was
    /// read.
    fn poll_read_slice(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut incoming = lock(&self.incoming);
        if incoming.bytes.is_empty() {
            if incoming.closed || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            incoming.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let count = buf.len().min(incoming.bytes.len());
        for (slot, byte) in buf.iter_mut().zip(incoming.bytes.drain(..count)) {
            *slot = byte;
        }
        if let Some(writer) = incoming.writer.take() {
            writer.wake();
        }
        Poll::Ready(Ok(count))
    }

    /// Writes for the other end, as much as it has room for.
    fn poll_write_slice(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut outgoing = lock(&self.outgoing);
        if outgoing.reader_gone || outgoing.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = PIPE_CAPACITY.saturating_sub(outgoing.bytes.len());
        if room == 0 {
            outgoing.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let count = room.min(buf.len());
        outgoing.bytes.extend(buf.iter().take(count));
        if let Some(reader) = outgoing.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(count))
    }

    /// Shuts the writing side: the other end reads its end after the bytes
    /// already written.
    fn shut_down(&mut self) {
        let mut outgoing = lock(&self.outgoing);
        outgoing.closed = true;
        if let Some(reader) = outgoing.reader.take() {
            reader.wake();
        }
    }
}

impl Drop for End {
    fn drop(&mut self) {
        self.shut_down();
        let mut incoming = lock(&self.incoming);
        incoming.reader_gone = true;
        if let Some(writer) = incoming.writer.take() {
            writer.wake();
        }
    }
}

impl Read for End {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut chunk = [0_u8; 8 * 1024];
        let room = buf.remaining().min(chunk.len());
        let read = std::task::ready!(self.get_mut().poll_read_slice(cx, &mut chunk[..room]))?;
        buf.put_slice(&chunk[..read]);
        Poll::Ready(Ok(()))
    }
}

impl Write for End {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slice(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().shut_down();
        Poll::Ready(Ok(()))
    }
}

impl fmt::Debug for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("End").finish_non_exhaustive()
    }
}

/// What the in-memory connection's service sends back: the mounted
/// service's response, or its failure.
type Answer<B> = Result<Response<B>, BoxError>;

/// A request on its way through the in-memory connection, until the
/// service answered.
pub(crate) struct Exchange<B> {
    ours: End,
    /// The request head still to be written.
    head: Bytes,
    answer: oneshot::Receiver<Answer<B>>,
}

impl<B> fmt::Debug for Exchange<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("head_left", &self.head.len())
            .finish_non_exhaustive()
    }
}

/// Sends `request` to `service` through an in-memory HTTP/1.1 connection
/// that hyper serves on a task of `runtime`, so that the service finds
/// hyper's `OnUpgrade` in it.
pub(crate) fn start<S, B>(
    runtime: &tokio::runtime::Handle,
    service: S,
    request: Request<InputBody>,
) -> Exchange<B>
where
    S: Service<Request<InputBody>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    let head = request_head(&request);
    let (ours, theirs) = pair();
    let (answer_sender, answer) = oneshot::channel();
    // hyper calls its service through `Fn`: the one request's parts are
    // taken out of a lock, once.
    let pending = Mutex::new(Some((service, request, answer_sender)));
    let inner = hyper::service::service_fn(move |mut incoming: Request<Incoming>| {
        let taken = pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let on_upgrade = hyper::upgrade::on(&mut incoming);
        async move {
            let Some((mut service, mut request, answer)) = taken else {
                // A second request on the in-memory connection: none is
                // ever written.
                return Ok::<_, std::convert::Infallible>(status_only(StatusCode::BAD_REQUEST));
            };
            request.extensions_mut().insert(on_upgrade);
            let response = service.call(request).await.map_err(Into::into);
            let switch = match &response {
                Ok(response) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                    let mut head = status_only(StatusCode::SWITCHING_PROTOCOLS);
                    *head.headers_mut() = response.headers().clone();
                    head
                }
                // The answer goes to the RGI side; hyper's connection ends.
                _ => status_only(StatusCode::NO_CONTENT),
            };
            // The RGI side gave up (its body was dropped): nothing to do.
            let _gone = answer.send(response);
            Ok(switch)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None).keep_alive(false);
    let connection = builder.serve_connection(theirs, inner).with_upgrades();
    runtime.spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "the in-memory connection of a mounted service ended");
        }
    });
    Exchange { ours, head, answer }
}

/// A response without a body.
fn status_only(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = status;
    response
}

/// The request head for the in-memory connection: origin-form target,
/// every field but the body's framing (the service reads the real body
/// through its [`InputBody`]; hyper's side has none).
fn request_head(request: &Request<InputBody>) -> Bytes {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(request.method().as_str().as_bytes());
    head.push(b' ');
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    Bytes::from(head)
}

impl<B> Exchange<B> {
    /// Writes the request head and waits for the service's answer.
    ///
    /// # Errors
    ///
    /// The service's failure; a [`BoxError`] if the in-memory connection
    /// failed before the answer.
    pub(crate) fn poll_answer(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<B>, BoxError>> {
        while !self.head.is_empty() {
            match self.ours.poll_write_slice(cx, &self.head) {
                Poll::Ready(Ok(written)) => {
                    let _sent = self.head.split_to(written);
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(Box::new(err))),
                Poll::Pending => break,
            }
        }
        match std::task::ready!(Pin::new(&mut self.answer).poll(cx)) {
            Ok(answer) => Poll::Ready(answer),
            Err(_) => Poll::Ready(Err(
                "the mounted service's in-memory connection ended before it answered".into(),
            )),
        }
    }

    /// The end the bridge relays through, once the service switched.
    pub(crate) fn into_end(self) -> End {
        self.ours
    }
}

/// The fields of the service's `101` the RGI upgrade takes: all but the
/// connection-specific ones (the RGI server writes `connection` and
/// `upgrade` itself, and takes the protocol from the `upgrade` field) and
/// those about a body, which a `101` has not (axum writes
/// `content-length: 0`).
pub(crate) fn switch_fields(mut headers: HeaderMap) -> HeaderMap {
    let upgrade = headers.remove(http::header::UPGRADE);
    crate::connection_fields::remove_connection_fields(&mut headers);
    headers.remove(CONTENT_LENGTH);
    headers.remove(http::header::TRAILER);
    if let Some(protocol) = upgrade {
        headers.insert(http::header::UPGRADE, protocol);
    }
    headers
}

/// Relays bytes both ways between the RGI connection and the bridge's end
/// of the in-memory one, after skipping the `101` head hyper wrote there.
pub(crate) struct Splice {
    stream: Box<dyn ByteStream>,
    end: End,
    /// The `101` head on the in-memory connection is still being skipped;
    /// what it ends with is not known yet.
    head_seen: Vec<u8>,
    skipping: bool,
    /// Bytes from the service on their way to the client, and where the
    /// unsent part starts.
    to_client: Vec<u8>,
    to_client_at: usize,
    /// What went to the client is still to be flushed.
    flush_due: bool,
    /// Bytes from the client on their way to the service.
    to_service: Vec<u8>,
    to_service_at: usize,
    /// The service ended its side and the client was told.
    service_done: bool,
    /// The client ended its side and the service was told.
    client_done: bool,
}

impl fmt::Debug for Splice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Splice")
            .field("service_done", &self.service_done)
            .field("client_done", &self.client_done)
            .finish_non_exhaustive()
    }
}

/// The size of each direction's relay buffer.
const RELAY_CHUNK: usize = 16 * 1024;

impl Splice {
    pub(crate) fn new(stream: Box<dyn ByteStream>, end: End) -> Self {
        Splice {
            stream,
            end,
            head_seen: Vec::new(),
            skipping: true,
            to_client: Vec::new(),
            to_client_at: 0,
            flush_due: false,
            to_service: Vec::new(),
            to_service_at: 0,
            service_done: false,
            client_done: false,
        }
    }

    /// Relays until both sides ended.
    ///
    /// # Errors
    ///
    /// A transport failure on either side, or a `101` head on the in-memory
    /// connection that never ends.
    pub(crate) fn poll_relay(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            let service_side = self.poll_service_to_client(cx)?;
            let client_side = self.poll_client_to_service(cx)?;
            if self.service_done && self.client_done {
                return Poll::Ready(Ok(()));
            }
            if service_side.is_pending() && client_side.is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Moves what the service wrote to the client; `Ready` when it made
    /// progress (or this direction is over).
    fn poll_service_to_client(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.service_done {
            return Poll::Pending;
        }
        if self.to_client_at < self.to_client.len() {
            let unsent = &self.to_client[self.to_client_at..];
            let written = std::task::ready!(self.stream.poll_write(cx, unsent))?;
            if written == 0 {
                return Poll::Ready(Err(Box::new(io::Error::from(io::ErrorKind::WriteZero))));
            }
            self.to_client_at += written;
            self.flush_due = self.to_client_at == self.to_client.len();
            return Poll::Ready(Ok(()));
        }
        if self.flush_due {
            // Each message the service wrote reaches the client before the
            // next one is waited for.
            std::task::ready!(self.stream.poll_flush(cx))?;
            self.flush_due = false;
            return Poll::Ready(Ok(()));
        }
        let mut buf = std::mem::take(&mut self.to_client);
        buf.resize(RELAY_CHUNK, 0);
        let read = match self.end.poll_read_slice(cx, &mut buf) {
            Poll::Ready(Ok(read)) => read,
            Poll::Ready(Err(err)) => return Poll::Ready(Err(Box::new(err))),
            Poll::Pending => {
                self.to_client = buf;
                self.to_client.clear();
                self.to_client_at = 0;
                return Poll::Pending;
            }
        };
        buf.truncate(read);
        self.to_client_at = 0;
        if read == 0 {
            std::task::ready!(self.stream.poll_close(cx))?;
            self.service_done = true;
            self.to_client = buf;
            return Poll::Ready(Ok(()));
        }
        if self.skipping {
            self.head_seen.extend_from_slice(&buf);
            let Some(end) = self
                .head_seen
                .windows(4)
                .position(|four| four == b"\r\n\r\n")
            else {
                if self.head_seen.len() > MAX_SWITCH_HEAD {
                    return Poll::Ready(Err("the in-memory 101 head never ended".into()));
                }
                self.to_client = buf;
                self.to_client.clear();
                return Poll::Ready(Ok(()));
            };
            self.skipping = false;
            let after = self.head_seen.split_off(end + 4);
            self.head_seen = Vec::new();
            self.to_client = after;
            return Poll::Ready(Ok(()));
        }
        self.to_client = buf;
        Poll::Ready(Ok(()))
    }

    /// Moves what the client wrote to the service; `Ready` when it made
    /// progress (or this direction is over).
    fn poll_client_to_service(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.client_done {
            return Poll::Pending;
        }
        if self.to_service_at < self.to_service.len() {
            let unsent = &self.to_service[self.to_service_at..];
            let Ok(written) = std::task::ready!(self.end.poll_write_slice(cx, unsent)) else {
                // The service's side is gone: nothing more goes that way.
                self.client_done = true;
                return Poll::Ready(Ok(()));
            };
            self.to_service_at += written;
            return Poll::Ready(Ok(()));
        }
        self.to_service.resize(RELAY_CHUNK, 0);
        self.to_service_at = 0;
        let read = match self.stream.poll_read(cx, &mut self.to_service) {
            Poll::Ready(Ok(read)) => read,
            Poll::Ready(Err(err)) => return Poll::Ready(Err(Box::new(err))),
            Poll::Pending => {
                self.to_service.clear();
                return Poll::Pending;
            }
        };
        self.to_service.truncate(read);
        if read == 0 {
            self.end.shut_down();
            self.client_done = true;
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use http::HeaderValue;

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_in_memory_connection_waits_for_room_and_ends_in_order() {
        let (mut one, mut two) = pair();
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);

        let big = vec![7_u8; PIPE_CAPACITY + 10];
        assert!(
            matches!(one.poll_write_slice(&mut cx, &big), Poll::Ready(Ok(n)) if n == PIPE_CAPACITY)
        );
        assert!(
            one.poll_write_slice(&mut cx, &big[PIPE_CAPACITY..])
                .is_pending()
        );
        let mut buf = [0_u8; 100];
        assert!(matches!(
            two.poll_read_slice(&mut cx, &mut buf),
            Poll::Ready(Ok(100))
        ));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the waiting writer is woken"
        );
        assert!(matches!(
            one.poll_write_slice(&mut cx, &big[PIPE_CAPACITY..]),
            Poll::Ready(Ok(10))
        ));

        one.shut_down();
        let mut drained = 0;
        loop {
            match two.poll_read_slice(&mut cx, &mut buf) {
                Poll::Ready(Ok(0)) => break,
                Poll::Ready(Ok(n)) => drained += n,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            drained,
            PIPE_CAPACITY + 10 - 100,
            "every byte before the end"
        );

        // The other direction: its reader gone, a write fails.
        drop(one);
        assert!(matches!(
            two.poll_write_slice(&mut cx, b"late"),
            Poll::Ready(Err(err)) if err.kind() == io::ErrorKind::BrokenPipe
        ));
    }

    #[test]
    fn a_read_with_nothing_written_waits_for_the_writer() {
        let (mut one, mut two) = pair();
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0_u8; 8];
        assert!(two.poll_read_slice(&mut cx, &mut buf).is_pending());
        assert!(matches!(
            one.poll_write_slice(&mut cx, b"hi"),
            Poll::Ready(Ok(2))
        ));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            two.poll_read_slice(&mut cx, &mut buf),
            Poll::Ready(Ok(2))
        ));
        assert_eq!(&buf[..2], b"hi");
    }

    #[test]
    fn the_request_head_leaves_the_body_framing_out() {
        let request = Request::get("/ws?room=1")
            .header("host", "example.org")
            .header("upgrade", "websocket")
            .header("content-length", "0")
            .body(InputBody::default())
            .map_err(|err| err.to_string());
        let head = request.map(|request| request_head(&request));
        assert_eq!(
            head.as_deref().ok(),
            Some(
                &b"GET /ws?room=1 HTTP/1.1\r\nhost: example.org\r\nupgrade: websocket\r\n\r\n"[..]
            )
        );
    }

    #[test]
    fn the_switch_keeps_the_protocol_and_the_service_fields_only() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("content-length", "0"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let fields = switch_fields(headers);
        assert_eq!(fields.len(), 2, "{fields:?}");
        assert_eq!(fields["upgrade"], "websocket");
        assert_eq!(
            fields["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
