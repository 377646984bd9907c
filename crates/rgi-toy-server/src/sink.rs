//! The response's transport: a [`ResponseSink`] that writes the head and
//! every chunk straight to the socket, framed by Content-Length, chunked
//! coding or the connection's end.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version, header};
use rgi::{ResponseHead, ResponseSink};

use super::Fault;
use super::conn::{Conn, UpgradeStage};
use super::ctx::{OutFraming, RequestCtx};
use super::shared::lock;

/// The error the sink reports once the connection belongs to an upgrade:
/// the application made an HTTP response after accepting it.
#[derive(Debug, thiserror::Error)]
#[error("the connection was upgraded; HTTP output after `accept` is not sent")]
pub(crate) struct AfterUpgrade;

/// A response's transport over one connection.
#[derive(Debug)]
pub(crate) struct WireSink {
    ctx: Arc<RequestCtx>,
    conn: Arc<Conn>,
    version: Version,
    head_request: bool,
    /// The client allows the connection to be kept.
    persist: bool,
    framing: Option<OutFraming>,
    /// A head held back by a fault that rewrites the server's 500.
    held: Option<ResponseHead>,
    /// The whole response, for [`Fault::BuffersWholeResponse`].
    buffered: Vec<u8>,
    /// The queue of [`Fault::UnboundedOutputQueue`].
    queue: Option<mpsc::Sender<Vec<u8>>>,
    /// The application's output reached the sink after an upgrade.
    pub(crate) after_upgrade: bool,
    /// A send failed: the client is gone.
    failed: bool,
    /// The length [`Fault::SinkAddsHintedLength`] writes into a head
    /// without one.
    own_length: Option<u64>,
    /// The trailer section the response state handed over, written with
    /// the last-chunk (`RGI-TRAILER-7`).
    trailers: Option<HeaderMap>,
    /// The early hints [`Fault::EarlyHintsHeldBack`] holds until the head.
    held_hints: Vec<u8>,
    /// [`Fault::BuffersEventStreams`]: this response's events are held,
    /// here, until the body ends.
    held_events: Option<Vec<u8>>,
}

impl WireSink {
    pub(crate) fn new(ctx: Arc<RequestCtx>) -> Self {
        WireSink {
            conn: Arc::clone(&ctx.conn),
            version: ctx.version,
            head_request: ctx.head_request,
            persist: ctx.persist,
            ctx,
            framing: None,
            held: None,
            buffered: Vec::new(),
            queue: None,
            after_upgrade: false,
            failed: false,
            own_length: None,
            trailers: None,
            held_hints: Vec::new(),
            held_events: None,
        }
    }

    /// [`Fault::SinkAddsHintedLength`]: the sink, not the response state,
    /// puts `length` into a head that has no Content-Length, and nothing
    /// holds the body to it.
    pub(crate) fn add_length_itself(&mut self, length: u64) {
        self.own_length = Some(length);
    }

    fn acts(&self, behaviour: Fault) -> bool {
        self.ctx.acts(behaviour)
    }

    /// How the body was framed, once the head went out.
    pub(crate) fn framing(&self) -> Option<OutFraming> {
        self.framing
    }

    /// Whether the head said the connection closes after this response.
    pub(crate) fn closes(&self) -> bool {
        !self.persist || self.framing == Some(OutFraming::Close)
    }

    /// A head held back by a fault, if any.
    pub(crate) fn take_held(&mut self) -> Option<ResponseHead> {
        self.held.take()
    }

    /// Writes bytes, under the connection's write lock.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self
            .ctx
            .cancel
            .as_ref()
            .is_some_and(|cancel| cancel.is_cancelled())
        {
            // RGI-CONN-5: an abandoned response sends nothing more.
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server is shutting down",
            ));
        }
        if self.acts(Fault::BuffersWholeResponse) {
            self.buffered.extend_from_slice(bytes);
            return Ok(());
        }
        if self.acts(Fault::UnboundedOutputQueue) {
            return self.enqueue(bytes);
        }
        let mut write = lock(&self.conn.write);
        if write.upgrade != UpgradeStage::None && !self.acts(Fault::SendsHttpAfterUpgrade) {
            self.after_upgrade = true;
            return Err(io::Error::other(AfterUpgrade));
        }
        match write.send(bytes) {
            Ok(()) => Ok(()),
            Err(err) => {
                self.failed = true;
                if self.pretends_sent() {
                    return Ok(());
                }
                Err(err)
            }
        }
    }

    /// Whether a fault pretends a send worked after the client went away.
    fn pretends_sent(&self) -> bool {
        if self.conn.server.is_stopping() {
            return false;
        }
        self.acts(Fault::KeepsBodyAfterDisconnect)
    }

    /// [`Fault::UnboundedOutputQueue`]: hands the bytes to a writer thread
    /// through a queue without a bound.
    fn enqueue(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.queue.is_none() {
            let (queue, pending) = mpsc::channel::<Vec<u8>>();
            let conn = Arc::clone(&self.conn);
            let writer = thread::Builder::new()
                .name("toy-output-queue".into())
                .spawn(move || {
                    for bytes in pending {
                        if lock(&conn.write).send(&bytes).is_err() {
                            return;
                        }
                    }
                })?;
            self.conn.server.track(writer);
            self.queue = Some(queue);
        }
        match &self.queue {
            Some(queue) => queue
                .send(bytes.to_vec())
                .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe)),
            None => Ok(()),
        }
    }

    /// Writes the head with the fields the framing needs.
    pub(crate) fn write_head(&mut self, head: &ResponseHead) -> io::Result<()> {
        if says_close(head) && self.acts(Fault::ClientErrorIs500) {
            // The fault: the client's fault answered as the server's.
            let failed = ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR)
                .with_header(header::CONTENT_LENGTH, http::HeaderValue::from(0));
            return self.write_head(&failed);
        }
        if says_close(head)
            && head.status() == StatusCode::REQUEST_TIMEOUT
            && self.acts(Fault::StalledBodyKeepsConnection)
        {
            // The fault: the 408 goes out as if the connection could go on.
            let mut kept = head.clone();
            kept.headers_mut().remove(header::CONNECTION);
            return self.write_head(&kept);
        }
        if says_close(head) {
            // The driver's answer to a client's fault (RGI-FAIL-10): the
            // connection ends with it.
            self.persist = false;
        }
        let (framing, mut bytes) = self.render_head(head);
        if !self.held_hints.is_empty() {
            // Fault::EarlyHintsHeldBack: the hints go out with the head.
            let mut hints = std::mem::take(&mut self.held_hints);
            hints.append(&mut bytes);
            bytes = hints;
        }
        if self.acts(Fault::BuffersEventStreams) && is_event_stream(head) {
            self.held_events = Some(Vec::new());
        }
        self.framing = Some(framing);
        lock(&self.ctx.hooks).framing = Some(framing);
        if !self.acts(Fault::BuffersWholeResponse) {
            let mut write = lock(&self.conn.write);
            if write.upgrade != UpgradeStage::None {
                // The 101 replaced this head (RGIA-UPGRADE-2).
                return Err(io::Error::other(AfterUpgrade));
            }
            write.head_sent = true;
        }
        self.send(&bytes)
    }

    /// The head on the wire, and the framing it announces.
    fn render_head(&self, head: &ResponseHead) -> (OutFraming, Vec<u8>) {
        let fault = self.ctx.fault;
        let mut status = head.status();
        if fault == Some(Fault::MapsUnknownStatus) && status.canonical_reason().is_none() {
            let class = status.as_u16() / 100 * 100;
            status = StatusCode::from_u16(class).unwrap_or(status);
        }
        let headers = head.headers();
        let own_length = self
            .own_length
            .filter(|_| !headers.contains_key(header::CONTENT_LENGTH));
        let framing = if self.head_request || head.is_bodiless() {
            OutFraming::Bodiless
        } else if headers.contains_key(header::CONTENT_LENGTH) || own_length.is_some() {
            OutFraming::Length
        } else if self.version == Version::HTTP_11 || fault == Some(Fault::ChunkedOnHttp10) {
            OutFraming::Chunked
        } else {
            OutFraming::Close
        };
        let mut out = String::with_capacity(256);
        let _infallible = write!(
            out,
            "HTTP/1.1 {} {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        );
        let mut bytes = out.into_bytes();
        write_fields(&mut bytes, headers, fault, self.head_request);
        if let Some(length) = own_length.filter(|_| framing == OutFraming::Length) {
            field(&mut bytes, b"content-length", length.to_string().as_bytes());
        }
        if !headers.contains_key(header::DATE) && fault != Some(Fault::NoDate) {
            field(&mut bytes, b"date", http_date(SystemTime::now()).as_bytes());
        }
        if framing == OutFraming::Chunked
            || (fault == Some(Fault::LengthAndChunked) && framing == OutFraming::Length)
        {
            field(&mut bytes, b"transfer-encoding", b"chunked");
        }
        if says_close(head) {
            // Written with the head's own fields.
        } else if !self.persist || framing == OutFraming::Close {
            field(&mut bytes, b"connection", b"close");
        } else if self.version == Version::HTTP_10 {
            field(&mut bytes, b"connection", b"keep-alive");
        }
        bytes.extend_from_slice(b"\r\n");
        (framing, bytes)
    }

    /// Ends a complete response: the last-chunk for chunked framing
    /// (`RGI-CL-9`), and whatever a buffering fault held back.
    pub(crate) fn end(&mut self) -> io::Result<()> {
        self.flush_written()?;
        if let Some(events) = self.held_events.take() {
            self.send(&events)?;
        }
        let trailers = self.trailers.take();
        if self.framing == Some(OutFraming::Chunked) {
            // The last-chunk, with the trailer section (RFC 9112 §7.1.2).
            let mut last = b"0\r\n".to_vec();
            if let Some(trailers) = &trailers {
                write_fields(&mut last, trailers, None, false);
            }
            last.extend_from_slice(b"\r\n");
            self.send(&last)?;
        } else if let Some(trailers) = trailers.filter(|_| self.acts(Fault::TrailersOnHttp10)) {
            // The fault: trailer lines after a body that cannot carry them.
            let mut lines = Vec::new();
            write_fields(&mut lines, &trailers, None, false);
            self.send(&lines)?;
        }
        self.flush_buffered()
    }

    /// Writes what [`Fault::BuffersWholeResponse`] collected, and lets the
    /// queue of [`Fault::UnboundedOutputQueue`] run dry.
    pub(crate) fn flush_buffered(&mut self) -> io::Result<()> {
        self.queue = None;
        if self.buffered.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.buffered);
        let mut write = lock(&self.conn.write);
        write.head_sent = true;
        write.send(&bytes)
    }

    /// Writes raw bytes after the head (for faults that put bytes on the
    /// wire behind the state machine's back).
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.send(bytes)
    }

    /// Sends what [`Fault::HoldsWrittenData`] or
    /// [`Fault::ReordersWrittenData`] held back, as body data.
    pub(crate) fn flush_written(&mut self) -> io::Result<()> {
        let written = std::mem::take(&mut lock(&self.ctx.hooks).written);
        if written.is_empty() || self.framing.is_none() {
            return Ok(());
        }
        self.write_data(&written)
    }

    /// Frames and writes one piece of body data.
    fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        let masked: Vec<u8>;
        let data = if self.ctx.fault == Some(Fault::MasksHighBytes) {
            masked = data
                .iter()
                .map(|&byte| if byte >= 0x80 { b'?' } else { byte })
                .collect();
            &masked[..]
        } else {
            data
        };
        let framed = match self.framing {
            Some(OutFraming::Chunked) => {
                let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
                framed.extend_from_slice(data);
                framed.extend_from_slice(b"\r\n");
                framed
            }
            Some(OutFraming::Bodiless) => return Ok(()),
            _ => data.to_vec(),
        };
        if let Some(held) = self.held_events.as_mut() {
            // Fault::BuffersEventStreams.
            held.extend_from_slice(&framed);
            return Ok(());
        }
        self.send(&framed)
    }
}

impl ResponseSink for WireSink {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        let head = &head;
        let rewrites_500 = self.acts(Fault::LeaksErrorDetail)
            || self.acts(Fault::FailureIsNot500)
            || self.acts(Fault::AsyncCallFailureDropsConnection);
        let server_500 = head.status() == StatusCode::INTERNAL_SERVER_ERROR
            && head
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|value| value == "0");
        if rewrites_500 && server_500 {
            // Held until the outcome says whether this was the server's
            // own 500 (see serve.rs).
            self.held = Some(head.clone());
            self.framing = Some(OutFraming::Length);
            return Ok(());
        }
        let early = lock(&self.ctx.hooks).early;
        if let Some(framing) = early {
            // Fault::SendsHeadEarly wrote it when it was stored.
            self.framing = Some(framing);
            return Ok(());
        }
        let latest = if self.ctx.fault == Some(Fault::SecondStartWins) {
            lock(&self.ctx.hooks).latest_head.take()
        } else {
            None
        };
        self.write_head(latest.as_ref().unwrap_or(head))?;
        let stash = std::mem::take(&mut lock(&self.ctx.hooks).stash);
        for chunk in stash {
            self.send(&chunk)?;
        }
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        if self.failed && self.pretends_sent() {
            return Ok(());
        }
        let writing = std::mem::take(&mut lock(&self.ctx.hooks).writing);
        let sent = self.write_data(&data);
        if writing && sent.is_err() && self.pretends_sent_write() {
            return Ok(());
        }
        sent?;
        if self.ctx.fault == Some(Fault::ReordersWrittenData) {
            self.flush_written()?;
        }
        let excess = lock(&self.ctx.hooks).excess.take();
        match excess {
            Some(excess) => self.send(&excess),
            None => Ok(()),
        }
    }

    fn send_trailers(&mut self, fields: HeaderMap) -> io::Result<()> {
        self.keep_trailers(fields);
        Ok(())
    }

    fn send_early_hints(&mut self, fields: HeaderMap) -> io::Result<()> {
        self.early_hints(&fields)
    }
}

/// A `103 Early Hints` response with `fields` (RFC 8297).
pub(crate) fn early_hints_bytes(fields: &HeaderMap) -> Vec<u8> {
    let mut bytes = b"HTTP/1.1 103 Early Hints\r\n".to_vec();
    write_fields(&mut bytes, fields, None, false);
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// Whether `head` is the head of an event stream.
fn is_event_stream(head: &ResponseHead) -> bool {
    head.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.as_bytes().split(|&byte| byte == b';').next())
        .is_some_and(|media| {
            media
                .trim_ascii()
                .eq_ignore_ascii_case(b"text/event-stream")
        })
}

impl WireSink {
    /// The trailer section the response state handed over (`RGI-TRAILER-7`):
    /// kept for the last-chunk; dropped when the response is not chunked.
    fn keep_trailers(&mut self, fields: HeaderMap) {
        if !self.acts(Fault::DropsResponseTrailers) && !fields.is_empty() {
            self.trailers = Some(fields);
        }
    }

    /// Writes a `103 Early Hints` at once (`RGI-EARLY-3`), or holds it for
    /// the head under [`Fault::EarlyHintsHeldBack`].
    fn early_hints(&mut self, fields: &HeaderMap) -> io::Result<()> {
        let bytes = early_hints_bytes(fields);
        if self.acts(Fault::EarlyHintsHeldBack) {
            self.held_hints.extend_from_slice(&bytes);
            return Ok(());
        }
        self.send(&bytes)
    }

    /// [`Fault::WriteIgnoresDisconnect`]: a failed `write` looks sent.
    fn pretends_sent_write(&self) -> bool {
        self.acts(Fault::WriteIgnoresDisconnect) && !self.conn.server.is_stopping()
    }
}

/// Appends one field line.
fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the application's fields, each entry on its own line, byte for
/// byte (`RGI-HEAD-8`).
fn write_fields(out: &mut Vec<u8>, headers: &HeaderMap, fault: Option<Fault>, head_request: bool) {
    for name in headers.keys() {
        if fault == Some(Fault::HeadLosesContentLength)
            && head_request
            && name == header::CONTENT_LENGTH
        {
            continue;
        }
        let values: Vec<&[u8]> = headers
            .get_all(name)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect();
        if fault == Some(Fault::JoinsResponseFields) && values.len() > 1 {
            field(out, name.as_str().as_bytes(), &values.join(&b", "[..]));
            continue;
        }
        for value in values {
            field(out, name.as_str().as_bytes(), value);
        }
    }
}

/// Whether `head` itself carries `connection: close`: only the driver's
/// own answers do (an application's head cannot, RGI-HEAD-4).
fn says_close(head: &ResponseHead) -> bool {
    head.headers()
        .get(header::CONNECTION)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"))
}

/// An IMF-fixdate (RFC 9110 §5.6.7), such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(now: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[usize::try_from(days % 7).unwrap_or(0)],
        day,
        MONTHS[usize::try_from(month - 1).unwrap_or(0)],
        year,
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates() {
        let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
        assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(at(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(at(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            http_date(at(4_107_542_399)),
            "Sun, 28 Feb 2100 23:59:59 GMT"
        );
        assert_eq!(
            http_date(at(4_133_980_799)),
            "Fri, 31 Dec 2100 23:59:59 GMT"
        );
    }
}
