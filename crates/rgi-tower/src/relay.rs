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
use http::{Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use rgi::{Body, BoxError, ResponseHead, ResponseSink, ResponseState, StartResponse};

use crate::response::{
    FrameResult, ResponseBody, ResponseError, SentHead, drop_contained, failure_status,
    panic_message, status_only, with_head,
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
    /// Body bytes handed to hyper.
    delivered: u64,
    end: Option<End>,
    /// hyper (or the head future) is waiting for more: the worker may pull.
    demand: bool,
    /// The response body or head future was dropped: the client is gone.
    gone: bool,
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
    ) -> Arc<Self> {
        Arc::new(Relay {
            shared: Mutex::new(Shared {
                head: None,
                head_taken: head_sent,
                length,
                chunks,
                delivered,
                end: None,
                demand: true,
                gone: false,
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
        self.lock().gone = true;
        self.worker.notify_all();
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

    /// The head future's poll: the response once the head or an early end
    /// arrived.
    fn poll_head(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        version: Version,
    ) -> Poll<Response<ResponseBody>> {
        let mut shared = self.lock();
        if let Some(head) = shared.head.take() {
            shared.head_taken = true;
            drop(shared);
            return Poll::Ready(with_head(head, ResponseBody::relayed(Arc::clone(self))));
        }
        if let Some(End::Status(status)) = shared.end {
            return Poll::Ready(status_only(
                status,
                version,
                status != StatusCode::INTERNAL_SERVER_ERROR,
            ));
        }
        shared.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        let mut shared = self.lock();
        if let Some(data) = shared.chunks.pop_front() {
            shared.delivered += data.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(data))));
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
        shared.chunks.is_empty()
            && match (&shared.end, shared.length) {
                (Some(End::Abort(_)), _) => false,
                (_, Some(length)) => shared.delivered >= length,
                (Some(_), None) => true,
                (None, None) => false,
            }
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        let shared = self.lock();
        shared.length.map_or_else(SizeHint::default, |length| {
            SizeHint::with_exact(length.saturating_sub(shared.delivered))
        })
    }
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

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Response<ResponseBody>> {
        let Some(relay) = self.relay.as_ref() else {
            return Poll::Ready(status_only(
                StatusCode::INTERNAL_SERVER_ERROR,
                self.version,
                false,
            ));
        };
        let response = std::task::ready!(relay.poll_head(cx, self.version));
        // The body owns the relay now (or the response is status-only).
        if let Some(relay) = self.relay.take() {
            let mut shared = relay.lock();
            if !shared.head_taken {
                shared.gone = true;
                drop(shared);
                relay.worker.notify_all();
            }
        }
        Poll::Ready(response)
    }
}

impl Future for RelayHead {
    type Output = Response<ResponseBody>;

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

/// The worker's transport: collects what one state operation sends, to be
/// published together with the length the sent head fixed.
#[derive(Default)]
struct WorkerSink {
    head: Option<ResponseHead>,
    chunks: Vec<Bytes>,
}

impl ResponseSink for WorkerSink {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.head = Some(head);
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.chunks.push(data);
        Ok(())
    }
}

/// The worker's side of one response.
struct Worker<'a> {
    relay: &'a Relay,
    state: ResponseState,
    sink: WorkerSink,
}

impl Worker<'_> {
    /// Publishes what the last state operation sent. `Err` when the client
    /// is gone (the body is then closed).
    fn flush(&mut self) -> Result<(), ()> {
        if self.sink.head.is_none() && self.sink.chunks.is_empty() {
            return Ok(());
        }
        let head = self.sink.head.take().map(ResponseHead::into_parts);
        let length = self.state.content_length();
        let chunks = std::mem::take(&mut self.sink.chunks);
        let mut gone = false;
        self.relay.publish(|shared| {
            gone = shared.gone;
            if head.is_some() {
                shared.head = head;
                shared.length = length;
            }
            if !chunks.is_empty() {
                // Whatever was pulled answers the demand that pulled it.
                shared.demand = false;
            }
            shared.chunks.extend(chunks);
        });
        if gone { Err(()) } else { Ok(()) }
    }

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
        self.relay.publish(|shared| shared.end = Some(end));
    }

    fn panicked(&mut self, payload: &(dyn std::any::Any + Send)) {
        let message = panic_message(payload);
        tracing::error!(panic = %message, "the RGI application panicked");
        if self.state.is_head_sent() {
            let error = ResponseError::Panicked { message };
            self.relay
                .publish(|shared| shared.end = Some(End::Abort(error.into())));
        } else {
            self.relay.publish(|shared| {
                shared.end = Some(End::Status(StatusCode::INTERNAL_SERVER_ERROR));
            });
        }
    }

    fn finish(&mut self) {
        match self.state.finish(&mut self.sink) {
            Ok(_) => {
                if self.flush().is_ok() {
                    self.relay
                        .publish(|shared| shared.end = Some(End::Finished));
                }
            }
            Err(rgi::FinishError::NotStarted) => {
                self.fail(Box::new(rgi::FinishError::NotStarted));
            }
            Err(err) => {
                let _ = self.flush();
                self.fail(err.into());
            }
        }
    }

    /// Pulls `body` to its end, one chunk per demand from hyper.
    fn pull<B: Body>(&mut self, body: &mut B) {
        loop {
            if self.state.is_head_sent() && !self.state.wants_body() {
                // Complete: the rest could not reach the client.
                self.finish();
                return;
            }
            if !self.relay.wait_for_demand() {
                return;
            }
            let Worker { state, sink, .. } = self;
            let pulled = catch_unwind(AssertUnwindSafe(|| {
                body.next_chunk(&mut state.start_response(sink))
            }));
            let chunk = match pulled {
                Err(payload) => {
                    let _ = self.flush();
                    self.panicked(payload.as_ref());
                    return;
                }
                Ok(None) => {
                    if self.flush().is_err() {
                        return;
                    }
                    self.finish();
                    return;
                }
                Ok(Some(Err(err))) => {
                    let _ = self.flush();
                    self.fail(err);
                    return;
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let sent = self.state.send_chunk(&mut self.sink, chunk);
            if self.flush().is_err() {
                return;
            }
            if let Err(err) = sent {
                self.fail(err.into());
                return;
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
        state,
        sink: WorkerSink::default(),
    };
    let Worker { state, sink, .. } = &mut worker;
    let called = catch_unwind(AssertUnwindSafe(|| first(&mut state.start_response(sink))));
    let mut body = match called {
        Err(payload) => {
            let _ = worker.flush();
            worker.panicked(payload.as_ref());
            return;
        }
        Ok(Err(err)) => {
            let _ = worker.flush();
            worker.fail(err);
            return;
        }
        Ok(Ok(body)) => body,
    };
    if worker.flush().is_ok() {
        if let Some(size) = body.size_hint() {
            // A refusal (the head already went out) changes nothing.
            worker.state.declare_length(size).ok();
        }
        worker.pull(&mut body);
    }
    drop_contained(body);
}
