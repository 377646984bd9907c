//! A response produced on a pool worker and relayed to hyper with
//! backpressure both ways: the worker pulls the application's body only
//! when hyper has asked for more, and hyper's side waits for the head or
//! the next chunk without blocking the runtime.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};
use http_body::{Frame, SizeHint};
use rgi::{Body, BoxError, ResponseHead, ResponseSink, ResponseState, StartResponse};

use crate::request::DetachOnDrop;
use crate::response::{
    FrameResult, ResponseError, SentHead, drop_contained, excess_after_length, failure_status,
    panic_message, wants_pull,
};

/// How a relayed response ended.
enum End {
    /// The body ended and the state finished it.
    Finished,
    /// Before the head: answer this status instead (the connection closes
    /// unless it is a 500).
    Status(StatusCode),
    /// After the head: abort with this error.
    Abort(BoxError),
}

struct Shared {
    /// The head, until the waiting future takes it.
    head: Option<SentHead>,
    /// Whether the head has gone to the async side (so an end is an abort).
    head_taken: bool,
    /// The Content-Length the sent head carries: the only exact size.
    length: Option<u64>,
    chunks: VecDeque<Bytes>,
    /// The trailer section, published with the end and sent after the
    /// last chunk (`[RGI-TRAILER-7]`).
    trailers: Option<HeaderMap>,
    /// Body bytes handed to hyper.
    delivered: u64,
    end: Option<End>,
    /// hyper (or the head future) is waiting for more: the worker may pull.
    demand: bool,
    /// The response body or head future was dropped: the client is gone.
    gone: bool,
    /// Whether hyper was given one chance to flush before an abort.
    abort_deferred: bool,
    /// Detaches the request body once the response is over.
    detach: Option<DetachOnDrop>,
    waker: Option<Waker>,
}

/// The channel between one worker and hyper's side of one response.
pub(crate) struct Relay {
    shared: Mutex<Shared>,
    worker: Condvar,
}

impl Relay {
    /// A relay for a response whose head may have been sent already with
    /// `length` and `delivered` bytes of it (a switch after the head).
    pub(crate) fn new(
        length: Option<u64>,
        delivered: u64,
        chunks: VecDeque<Bytes>,
        head_sent: bool,
        detach: Option<DetachOnDrop>,
    ) -> Arc<Self> {
        Arc::new(Relay {
            shared: Mutex::new(Shared {
                head: None,
                head_taken: head_sent,
                length,
                chunks,
                trailers: None,
                delivered,
                end: None,
                demand: true,
                gone: false,
                abort_deferred: false,
                detach,
                waker: None,
            }),
            worker: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Nothing panics under this lock but plain field updates.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The chunks queued and not yet delivered (a refused switch takes
    /// back what it handed over).
    pub(crate) fn take_chunks(&self) -> VecDeque<Bytes> {
        std::mem::take(&mut self.lock().chunks)
    }

    /// The receiving side is gone: the worker stops pulling.
    pub(crate) fn receiver_gone(&self) {
        let detach = {
            let mut shared = self.lock();
            shared.gone = true;
            shared.detach.take()
        };
        self.worker.notify_all();
        // The response is over: hyper may drain the unread request body.
        drop(detach);
    }

    /// Whether the receiving side went away before the worker started:
    /// the job then does nothing (no work for a stream already reset).
    fn is_gone(&self) -> bool {
        self.lock().gone
    }

    fn publish(&self, update: impl FnOnce(&mut Shared)) {
        let waker = {
            let mut shared = self.lock();
            update(&mut shared);
            shared.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Blocks the worker until hyper wants more; false if the client left.
    fn wait_for_demand(&self) -> bool {
        let mut shared = self.lock();
        loop {
            if shared.gone {
                return false;
            }
            if shared.demand {
                return true;
            }
            shared = self
                .worker
                .wait(shared)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The head future's poll: the head once it arrived, or the status of
    /// an early end.
    fn poll_head(self: &Arc<Self>, cx: &mut Context<'_>, version: Version) -> Poll<RelayedHead> {
        let mut shared = self.lock();
        if let Some(head) = shared.head.take() {
            shared.head_taken = true;
            drop(shared);
            return Poll::Ready(RelayedHead::Head(head, Arc::clone(self)));
        }
        if let Some(End::Status(status)) = shared.end {
            return Poll::Ready(RelayedHead::Status(status, version));
        }
        shared.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        let mut shared = self.lock();
        if let Some(data) = shared.chunks.pop_front() {
            shared.delivered += data.len() as u64;
            let drained = shared.chunks.is_empty();
            if drained {
                // hyper took the last chunk and will ask again as soon as it
                // has written it: the worker may pull one chunk ahead now.
                // Unsent output stays bounded by that one chunk, while the
                // two threads' hand-overs overlap instead of alternating
                // (strict alternation costs two cross-thread wake-ups a
                // chunk, which a loaded machine turns into seconds).
                shared.demand = true;
            }
            drop(shared);
            if drained {
                // A worker blocked in `write`, or waiting for demand, goes on.
                self.worker.notify_all();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(fields) = shared.trailers.take() {
            // Published with the end, after the last chunk: the last frame.
            return Poll::Ready(Some(Ok(Frame::trailers(fields))));
        }
        if matches!(shared.end, Some(End::Abort(_)))
            && crate::response::defer_abort(cx, &mut shared.abort_deferred)
        {
            return Poll::Pending;
        }
        match shared.end.take() {
            Some(End::Abort(err)) => return Poll::Ready(Some(Err(err))),
            Some(End::Finished | End::Status(_)) => return Poll::Ready(None),
            None => {}
        }
        shared.waker = Some(cx.waker().clone());
        if !shared.demand {
            shared.demand = true;
            drop(shared);
            self.worker.notify_all();
        }
        Poll::Pending
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        let shared = self.lock();
        // Only once the worker has published the end, which it does after
        // dropping the body: hyper takes the end as the response being
        // over and moves on to the connection's next request.
        shared.chunks.is_empty()
            && shared.trailers.is_none()
            && matches!(shared.end, Some(End::Finished | End::Status(_)))
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        let shared = self.lock();
        shared.length.map_or_else(SizeHint::default, |length| {
            SizeHint::with_exact(length.saturating_sub(shared.delivered))
        })
    }
}

/// What the head of a relayed response resolved to; `body` turns it into
/// hyper's response (this module never names the body type, so that the
/// body can hold a relay without a cycle between the two).
pub(crate) enum RelayedHead {
    /// The application's head; the relay carries the body.
    Head(SentHead, Arc<Relay>),
    /// The response ended before a head: answer this status.
    Status(StatusCode, Version),
}

/// Waits for the head of a relayed response.
pub(crate) struct RelayHead {
    relay: Option<Arc<Relay>>,
    version: Version,
}

impl RelayHead {
    pub(crate) fn new(relay: Arc<Relay>, version: Version) -> Self {
        RelayHead {
            relay: Some(relay),
            version,
        }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<RelayedHead> {
        let Some(relay) = self.relay.as_ref() else {
            return Poll::Ready(RelayedHead::Status(
                StatusCode::INTERNAL_SERVER_ERROR,
                self.version,
            ));
        };
        let head = std::task::ready!(relay.poll_head(cx, self.version));
        // The body owns the relay now (or the response is status-only).
        if let Some(relay) = self.relay.take() {
            let head_taken = relay.lock().head_taken;
            if !head_taken {
                relay.receiver_gone();
            }
        }
        Poll::Ready(head)
    }
}

impl Future for RelayHead {
    type Output = RelayedHead;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        RelayHead::poll(self.get_mut(), cx)
    }
}

impl Drop for RelayHead {
    fn drop(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.receiver_gone();
        }
    }
}

/// The worker's transport: publishes the head and each chunk to hyper's
/// side at once, and returns from a chunk only once hyper has taken it
/// (`[RGI-BODY-4]`: a `write` blocks as it does on any synchronous server).
struct RelaySink<'a> {
    relay: &'a Relay,
    tail: &'a mut Tail,
}

/// What the worker's sink knows of the body it relays, to hold back the
/// chunk that completes a declared length: hyper drops the response body
/// and reads the connection's next request as soon as the length is met,
/// so that chunk goes out only once the application's body is dropped
/// (`[RGI-CONN-3]`: requests on a connection never overlap).
#[derive(Default)]
struct Tail {
    /// The Content-Length of the sent head.
    length: Option<u64>,
    /// Body bytes handed to the sink.
    sent: u64,
    /// The chunk that completed the length, not yet published.
    held: Option<Bytes>,
    /// The trailer section, published with the end: after the held
    /// chunk, and only once the body is dropped.
    trailers: Option<HeaderMap>,
}

/// The Content-Length a sent head carries: the state wrote the length it
/// enforces into the head (or kept the application's), so the field is
/// that length.
fn head_length(head: &ResponseHead) -> Option<u64> {
    let value = head.headers().get(http::header::CONTENT_LENGTH)?;
    value.to_str().ok()?.trim().parse().ok()
}

impl ResponseSink for RelaySink<'_> {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        let length = head_length(&head);
        self.tail.length = length;
        let head = head.into_parts();
        let mut gone = false;
        self.relay.publish(|shared| {
            gone = shared.gone;
            shared.head = Some(head);
            shared.length = length;
        });
        if gone {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.tail.sent += data.len() as u64;
        if self.tail.length == Some(self.tail.sent) {
            // The last chunk: published with the end, after the drop.
            self.tail.held = Some(data);
            return Ok(());
        }
        self.relay.publish(|shared| {
            // What was pulled answers the demand that pulled it.
            shared.demand = false;
            shared.chunks.push_back(data);
        });
        let mut shared = self.relay.lock();
        loop {
            if shared.gone {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the client is gone: the response body was dropped",
                ));
            }
            if shared.chunks.is_empty() {
                return Ok(());
            }
            shared = self
                .relay
                .worker
                .wait(shared)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Kept for the end: `finish` calls this only for a response the
    /// server enabled for trailers, after its last data.
    fn send_trailers(&mut self, fields: HeaderMap) -> io::Result<()> {
        self.tail.trailers = Some(fields);
        Ok(())
    }
}

/// The worker's side of one response.
struct Worker<'a> {
    relay: &'a Relay,
    state: ResponseState,
    tail: Tail,
    /// How the response ended, published only once the body is dropped:
    /// hyper moves on to the connection's next request as soon as it
    /// sees the end, and that request must not overlap this one's body
    /// (`[RGI-CONN-3]`).
    end: Option<End>,
}

impl Worker<'_> {
    /// Ends the response with `error`: a status before the head, an abort
    /// after.
    fn fail(&mut self, error: BoxError) {
        let end = if self.state.is_head_sent() {
            End::Abort(error)
        } else {
            let status = failure_status(&error);
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = %error, "the RGI application failed before its response head; answering 500");
            } else {
                tracing::info!(error = %error, status = status.as_u16(), "the request body failed the client's way");
            }
            End::Status(status)
        };
        self.end = Some(end);
    }

    fn panicked(&mut self, payload: &(dyn std::any::Any + Send)) {
        let message = panic_message(payload);
        tracing::error!(panic = %message, "the RGI application panicked");
        self.end = Some(if self.state.is_head_sent() {
            End::Abort(ResponseError::Panicked { message }.into())
        } else {
            End::Status(StatusCode::INTERNAL_SERVER_ERROR)
        });
    }

    fn finish(&mut self) {
        let mut sink = RelaySink {
            relay: self.relay,
            tail: &mut self.tail,
        };
        match self.state.finish(&mut sink) {
            Ok(_) => self.end = Some(End::Finished),
            Err(err) => self.fail(err.into()),
        }
    }

    /// Pulls `body` to its end, one chunk per demand from hyper.
    fn pull<B: Body>(&mut self, body: &mut B) {
        loop {
            if self.state.is_head_sent() && !wants_pull(&self.state) {
                // Complete: the rest could not reach the client (a response
                // that can carry trailers is pulled to its end for them).
                self.finish();
                return;
            }
            if !self.relay.wait_for_demand() {
                return;
            }
            let mut sink = RelaySink {
                relay: self.relay,
                tail: &mut self.tail,
            };
            let state = &mut self.state;
            let pulled = catch_unwind(AssertUnwindSafe(|| {
                body.next_chunk(&mut state.start_response(&mut sink))
            }));
            let chunk = match pulled {
                Err(payload) => {
                    self.panicked(payload.as_ref());
                    return;
                }
                Ok(None) => {
                    self.finish();
                    return;
                }
                Ok(Some(Err(err))) => {
                    self.fail(err);
                    return;
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            if self.state.remaining_length() == Some(0) && !chunk.is_empty() {
                // Pulled past the met length only for the trailers: the
                // response is complete without them (`[RGI-CL-2]`).
                excess_after_length(&self.state, chunk.len());
                self.end = Some(End::Finished);
                return;
            }
            match self.state.send_chunk(&mut sink, chunk) {
                Ok(()) => {}
                Err(rgi::SendError::BodyNotAllowed { .. }) => {
                    // A 204 or 304 goes out without the data its body
                    // yielded (`[RGI-BODY-18]`).
                    self.finish();
                    return;
                }
                Err(err) => {
                    self.fail(err.into());
                    return;
                }
            }
        }
    }
}

/// Runs one response on the calling worker thread: `first` (the
/// application's `call`, or a switch continuation) over `state`, then its
/// body, pulled as hyper asks. The body is dropped here, once, whatever
/// happens.
pub(crate) fn run_on_worker<B, F>(relay: &Relay, state: ResponseState, first: F)
where
    B: Body,
    F: FnOnce(&mut StartResponse<'_>) -> Result<B, BoxError>,
{
    if relay.is_gone() {
        // The client left while the job was queued: nothing is started
        // for a request already given up.
        return;
    }
    let mut worker = Worker {
        relay,
        // A switch after the head carries over what was sent of it.
        tail: Tail {
            length: state.content_length(),
            sent: state.body_bytes(),
            held: None,
            trailers: None,
        },
        state,
        end: None,
    };
    let mut sink = RelaySink {
        relay,
        tail: &mut worker.tail,
    };
    let state = &mut worker.state;
    let called = catch_unwind(AssertUnwindSafe(|| {
        first(&mut state.start_response(&mut sink))
    }));
    match called {
        Err(payload) => worker.panicked(payload.as_ref()),
        Ok(Err(err)) => worker.fail(err),
        Ok(Ok(mut body)) => {
            if let Some(size) = body.size_hint() {
                // A refusal (the head already went out) changes nothing.
                worker.state.declare_length(size).ok();
            }
            worker.pull(&mut body);
            drop_contained(body);
        }
    }
    let held = worker.tail.held.take();
    let trailers = worker.tail.trailers.take();
    let end = worker.end.take();
    if held.is_some() || end.is_some() {
        relay.publish(|shared| {
            if let Some(last) = held {
                shared.demand = false;
                shared.chunks.push_back(last);
            }
            if end.is_some() {
                shared.trailers = trailers;
                shared.end = end;
            }
        });
    }
}
