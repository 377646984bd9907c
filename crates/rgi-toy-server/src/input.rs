//! The request body's sources: a blocking [`Read`] for synchronous
//! applications and a poll-based [`AsyncSource`] for asynchronous ones
//! (`RGIA-INPUT-1`), both over the connection's body decoder.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;

use bytes::Bytes;
use rgi::{AsyncSource, InputError};

use super::conn::{Conn, Expect};
use super::fault::{Fault, acts};
use super::shared::lock;

/// The interim response a client waiting on `Expect: 100-continue` needs.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The largest chunk one asynchronous read hands out.
const MAX_ASYNC_READ: usize = 64 * 1024;

/// A blocking reader of one request's body.
#[derive(Debug)]
pub(crate) struct BodyReader {
    conn: Arc<Conn>,
    request: u64,
    is_async: bool,
}

impl BodyReader {
    /// The body of the connection's current request.
    pub(crate) fn new(conn: Arc<Conn>) -> Self {
        let (request, is_async) = {
            let read = lock(&conn.read);
            (read.body.request, read.body.flags.is_async)
        };
        BodyReader {
            conn,
            request,
            is_async,
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let fault = self.conn.server.fault;
        let outlives = acts(fault, Fault::InputOutlivesResponse, self.is_async);
        // RGI-INPUT-15, unless the fault lets the old input read on.
        if self.conn.readable.load(Ordering::SeqCst) != self.request && !outlives {
            return Err(InputError::ResponseFinished.into());
        }
        let mut read = lock(&self.conn.read);
        if (read.body.request != self.request || read.body.finished) && !outlives {
            return Err(InputError::ResponseFinished.into());
        }
        if read.body.skip_next {
            // The fault: a piece of the body is lost.
            read.body.skip_next = false;
            let mut lost = vec![0; out.len()];
            let _lost = read.read_body(&mut lost);
        }
        if read.body.expect == Expect::Awaiting {
            // RGI-INPUT-12: the first read that reaches the source sends
            // the 100, before waiting for body bytes; RGI-INPUT-13: never
            // after the final head.
            let mut write = lock(&self.conn.write);
            let send = (!write.head_sent || fault == Some(Fault::ContinueAfterHead))
                && fault != Some(Fault::NeverSendsContinue);
            if send {
                write.send(CONTINUE)?;
                read.body.expect = Expect::Sent;
            } else {
                read.body.expect = Expect::Declined;
            }
        }
        let count = read.read_body(out);
        if acts(fault, Fault::TruncationLooksLikeEof, self.is_async) {
            if let Err(err) = &count {
                if matches!(InputError::from_io(err), Some(InputError::Truncated { .. })) {
                    return Ok(0);
                }
            }
        }
        count
    }
}

/// How often an idle pump looks whether the server is stopping.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// What the pump thread and the polling input share.
#[derive(Debug, Default)]
struct PumpState {
    /// A read asked for and not yet started: at most this many bytes.
    want: Option<usize>,
    /// A read in progress.
    busy: bool,
    /// The answer of the last read, until it is polled.
    result: Option<io::Result<Bytes>>,
    waker: Option<Waker>,
    /// The input was dropped: the pump ends.
    closed: bool,
}

#[derive(Debug, Default)]
struct Pump {
    state: Mutex<PumpState>,
    wanted: Condvar,
}

/// The poll-based source: reads happen on a pump thread, one at a time and
/// only when the application asks (`RGIA-INPUT-10`), so `poll_chunk` never
/// blocks; the pump wakes the waker when bytes arrive (`RGIA-INPUT-2`).
///
/// Why a thread: the toy's sockets are blocking, one thread per
/// connection. The pump is that thread's helper for the body, started on
/// the first read that needs the socket, and it ends when the input is
/// dropped or the connection is shut down.
#[derive(Debug)]
pub(crate) struct PumpSource {
    pump: Arc<Pump>,
    reader: Option<BodyReader>,
}

impl PumpSource {
    /// The body of the connection's current request.
    pub(crate) fn new(conn: Arc<Conn>) -> Self {
        PumpSource {
            pump: Arc::default(),
            reader: Some(BodyReader::new(conn)),
        }
    }

    fn start(&mut self) -> io::Result<()> {
        let Some(mut reader) = self.reader.take() else {
            return Ok(());
        };
        let server = Arc::clone(&reader.conn.server);
        let pump = Arc::clone(&self.pump);
        let handle = thread::Builder::new()
            .name("toy-input-pump".into())
            .spawn(move || run_pump(&pump, &mut reader))?;
        server.track(handle);
        Ok(())
    }
}

fn run_pump(pump: &Pump, reader: &mut BodyReader) {
    loop {
        let max = {
            let mut state = lock(&pump.state);
            loop {
                // An application may keep its input past the server's stop;
                // the pump must not keep the stop waiting for it.
                if state.closed || reader.conn.server.is_stopping() {
                    return;
                }
                if let Some(max) = state.want.take() {
                    state.busy = true;
                    break max;
                }
                state = pump
                    .wanted
                    .wait_timeout(state, STOP_POLL)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        };
        let mut buf = vec![0; max.min(MAX_ASYNC_READ)];
        let result = if reader.conn.server.fault == Some(Fault::FillsAsyncReads) {
            fill(reader, &mut buf)
        } else {
            reader.read(&mut buf)
        }
        .map(|count| {
            buf.truncate(count);
            Bytes::from(buf)
        });
        let waker = {
            let mut state = lock(&pump.state);
            state.busy = false;
            state.result = Some(result);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// [`Fault::FillsAsyncReads`]: reads until `buf` is full or the body
/// ended.
fn fill(reader: &mut BodyReader, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            count => filled += count,
        }
    }
    Ok(filled)
}

impl AsyncSource for PumpSource {
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let this = self.get_mut();
        {
            let mut state = lock(&this.pump.state);
            if let Some(result) = state.result.take() {
                return Poll::Ready(result);
            }
            state.waker = Some(cx.waker().clone());
            if !state.busy && state.want.is_none() {
                state.want = Some(max.max(1));
                this.pump.wanted.notify_all();
            }
        }
        if let Err(err) = this.start() {
            return Poll::Ready(Err(err));
        }
        Poll::Pending
    }
}

impl Drop for PumpSource {
    fn drop(&mut self) {
        lock(&self.pump.state).closed = true;
        self.pump.wanted.notify_all();
    }
}
