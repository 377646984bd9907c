//! Shared test machinery: a std-only executor, a recording transport, a
//! minimal asynchronous server loop and offload services.

#![allow(dead_code, unreachable_pub)]

/// The real readiness service: the conformance kit's mio poller.
#[cfg(unix)]
pub mod poller {
    #[allow(unused_imports, reason = "not every test file waits on descriptors")]
    pub use rgi_conformance::rt::PollerReadiness;
}

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use bytes::Bytes;
use rgi::{AsyncSource, BoxError, Environ, ResponseHead, ResponseSink, ResponseState};
use rgi_async::{AsyncApplication, AsyncBody, Job, OffloadError, OffloadService, Step};

/// Wakes a parked thread.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
pub struct CountingWaker(pub AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    pub fn new() -> (Arc<Self>, Waker) {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(Arc::clone(&counter));
        (counter, waker)
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs `future` to completion on the calling thread, parking between polls.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// Polls `future` once with a waker that does nothing.
pub fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// What reached the transport, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Head(ResponseHead),
    Data(Bytes),
}

/// A transport that records everything.
#[derive(Debug, Default)]
pub struct Recorder {
    pub sent: Vec<Sent>,
}

impl Recorder {
    pub fn heads(&self) -> Vec<&ResponseHead> {
        self.sent
            .iter()
            .filter_map(|sent| match sent {
                Sent::Head(head) => Some(head),
                Sent::Data(_) => None,
            })
            .collect()
    }

    pub fn body(&self) -> Vec<u8> {
        self.sent
            .iter()
            .filter_map(|sent| match sent {
                Sent::Data(data) => Some(data.as_ref()),
                Sent::Head(_) => None,
            })
            .flatten()
            .copied()
            .collect()
    }
}

impl ResponseSink for Recorder {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.sent.push(Sent::Head(head));
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.sent.push(Sent::Data(data));
        Ok(())
    }
}

/// What [`serve`] observed besides the wire.
#[derive(Debug, Default)]
pub struct Served {
    pub wire: Recorder,
    /// Steps the async body yielded (chunks and switches).
    pub steps: usize,
    /// Whether the body switched to synchronous processing.
    pub switched: bool,
    /// The thread the continuation ran on, if it switched.
    pub switch_thread: Option<thread::ThreadId>,
}

/// A minimal asynchronous server for one request: calls the application,
/// polls its body (parking on `Pending`), runs a switch's continuation on a
/// worker thread and pulls the synchronous body there.
pub fn serve<A: AsyncApplication>(app: &A, environ: Environ) -> Result<Served, BoxError> {
    let mut state = ResponseState::new(environ.method());
    let mut served = Served::default();
    let body = app.call(environ, &mut state.start_response(&mut served.wire))?;
    let mut body = Box::pin(body);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        let step = body
            .as_mut()
            .poll_step(&mut cx, &mut state.start_response(&mut served.wire));
        match step {
            Poll::Pending => thread::park(),
            Poll::Ready(None) => break,
            Poll::Ready(Some(step)) => {
                served.steps += 1;
                match step? {
                    Step::Chunk(chunk) => state.send_chunk(&mut served.wire, chunk)?,
                    Step::Switch(switch) => {
                        drop(body);
                        served.switched = true;
                        let wire = &mut served.wire;
                        let sync_state = &mut state;
                        let thread_id = thread::scope(|scope| {
                            scope
                                .spawn(move || -> Result<thread::ThreadId, BoxError> {
                                    let mut sync =
                                        switch.run(&mut sync_state.start_response(wire))?;
                                    while let Some(chunk) =
                                        sync.next_chunk(&mut sync_state.start_response(wire))
                                    {
                                        sync_state.send_chunk(wire, chunk?)?;
                                    }
                                    Ok(thread::current().id())
                                })
                                .join()
                                .map_err(|_| BoxError::from("continuation panicked"))
                        })??;
                        served.switch_thread = Some(thread_id);
                        state.finish(&mut served.wire)?;
                        return Ok(served);
                    }
                    other => {
                        return Err(format!("a step this driver does not know: {other:?}").into());
                    }
                }
            }
        }
    }
    drop(body);
    state.finish(&mut served.wire)?;
    Ok(served)
}

/// Polls an async body once, outside any server, with a no-op waker.
pub fn poll_body<B: AsyncBody + Unpin>(
    body: &mut B,
    state: &mut ResponseState,
    wire: &mut Recorder,
) -> Poll<Option<Result<Step, BoxError>>> {
    std::pin::Pin::new(body).poll_step(
        &mut Context::from_waker(Waker::noop()),
        &mut state.start_response(wire),
    )
}

/// Runs every job on a thread of its own.
#[derive(Debug, Default)]
pub struct ThreadPerJob;

impl OffloadService for ThreadPerJob {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        thread::spawn(move || job.run());
        Ok(())
    }
}

/// Keeps jobs until the test runs or drops them.
#[derive(Debug, Default, Clone)]
pub struct Queue(pub Arc<Mutex<Vec<Job>>>);

impl OffloadService for Queue {
    fn execute(&self, job: Job) -> Result<(), OffloadError> {
        self.0.lock().unwrap().push(job);
        Ok(())
    }
}

impl Queue {
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Runs the queued jobs on the calling thread, oldest first.
    pub fn run_all(&self) {
        let jobs: Vec<Job> = self.0.lock().unwrap().drain(..).collect();
        for job in jobs {
            job.run();
        }
    }

    /// Drops the queued jobs unrun, as a server does at shutdown.
    pub fn shut_down(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// Refuses every job with `error`.
#[derive(Debug)]
pub struct Refusing(pub OffloadError);

impl OffloadService for Refusing {
    fn execute(&self, _job: Job) -> Result<(), OffloadError> {
        Err(self.0.clone())
    }
}

/// An asynchronous request body source fed by hand (or by a thread):
/// `Pending` until a piece arrives, the end once `end` was called.
#[derive(Clone, Default)]
pub struct Fed(Arc<Mutex<FedState>>);

#[derive(Default)]
pub struct FedState {
    pieces: VecDeque<Bytes>,
    ended: bool,
    waker: Option<Waker>,
}

impl Fed {
    /// Queues `piece` and wakes the reader.
    pub fn push(&self, piece: impl Into<Bytes>) {
        let piece = piece.into();
        self.update(|state| state.pieces.push_back(piece));
    }

    /// Ends the body after the queued pieces and wakes the reader.
    pub fn end(&self) {
        self.update(|state| state.ended = true);
    }

    /// Changes the state, then wakes the reader outside the lock.
    fn update(&self, change: impl FnOnce(&mut FedState)) {
        let waker = {
            let mut state = self.0.lock().unwrap();
            change(&mut state);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl AsyncSource for Fed {
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let mut state = self.0.lock().unwrap();
        let ended = state.ended;
        match state.pieces.front_mut() {
            Some(piece) => {
                let chunk = piece.split_to(max.min(piece.len()));
                if piece.is_empty() {
                    state.pieces.pop_front();
                }
                Poll::Ready(Ok(chunk))
            }
            None if ended => Poll::Ready(Ok(Bytes::new())),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
