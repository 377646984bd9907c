//! The asynchronous test client: offload, readiness on real descriptors,
//! request bodies through the non-blocking face, the switch to synchronous
//! processing, after-response tasks, the upgrade hand-over, synchronous
//! applications through `Threaded`, and the validator's violations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use rgi::{BoxError, Environ, Input, InputError, ResponseHead, StartResponse};
use rgi_async::{AsyncBody, ByteStream, Capabilities, Step, SyncSwitch, Threaded, Upgraded};
use rgi_conformance::client::{AsyncTestClient, Ending, TestRequest};

fn text_head(status: StatusCode) -> ResponseHead {
    ResponseHead::new(status).with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain"))
}

type Reply = Pin<Box<dyn Future<Output = Result<(ResponseHead, Bytes), BoxError>> + Send>>;

/// Awaits a future, then answers with the head and body it produced.
struct Answer(Option<Reply>);

fn answer(
    future: impl Future<Output = Result<(ResponseHead, Bytes), BoxError>> + Send + 'static,
) -> Answer {
    Answer(Some(Box::pin(future)))
}

impl AsyncBody for Answer {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let Some(future) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        let Poll::Ready(result) = future.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        self.0 = None;
        let (head, body) = match result {
            Ok(reply) => reply,
            Err(err) => return Poll::Ready(Some(Err(err))),
        };
        if let Err(err) = start.start(head) {
            return Poll::Ready(Some(Err(err.into())));
        }
        Poll::Ready(Some(Ok(Step::Chunk(body))))
    }
}

fn capabilities(environ: &Environ) -> Result<&Capabilities, BoxError> {
    Capabilities::of(environ).ok_or_else(|| "not an asynchronous server".into())
}

#[test]
fn a_blocking_closure_run_through_offload_resumes_the_body() {
    let test_thread = thread::current().id();
    let client = AsyncTestClient::new(rgi_async::from_fn(move |environ: Environ, _start| {
        let job = capabilities(&environ)?.offload().run(move || {
            thread::sleep(Duration::from_millis(20)); // a blocking call
            thread::current().id() != test_thread
        });
        Ok(answer(async move {
            let elsewhere = job.await?;
            Ok((
                text_head(StatusCode::OK),
                Bytes::from(format!("worker thread: {elsewhere}")),
            ))
        }))
    }));
    let response = client.get("/lookup").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "worker thread: true");
    assert_eq!(response.offload_jobs, 1);
}

#[cfg(unix)]
mod readiness {
    use std::io::PipeReader;

    use rgi_async::{Interest, WaitOutcome};

    use super::*;

    /// Waits for the pipe in `slot` to become readable, for at most
    /// `timeout`: 200 with what was read, or 204.
    fn long_poll(
        slot: Arc<Mutex<Option<PipeReader>>>,
        timeout: Duration,
    ) -> impl rgi_async::AsyncApplication {
        rgi_async::from_fn(move |environ: Environ, _start| {
            let readiness = capabilities(&environ)?
                .readiness()
                .ok_or("needs readiness")?
                .clone();
            let rx = slot.lock().unwrap().take().ok_or("no pipe left")?;
            Ok(answer(async move {
                match readiness
                    .wait(&rx, Interest::READABLE, Some(timeout))
                    .await?
                {
                    WaitOutcome::TimedOut => {
                        Ok((ResponseHead::new(StatusCode::NO_CONTENT), Bytes::new()))
                    }
                    WaitOutcome::Ready(_) => {
                        let mut buf = [0; 64];
                        let count = (&rx).read(&mut buf)?;
                        Ok((
                            text_head(StatusCode::OK),
                            Bytes::copy_from_slice(&buf[..count]),
                        ))
                    }
                    other => Err(format!("an unknown outcome: {other:?}").into()),
                }
            }))
        })
    }

    #[test]
    fn a_wait_on_a_real_pipe_resumes_when_another_thread_writes() {
        let (rx, mut tx) = std::io::pipe().unwrap();
        let client = AsyncTestClient::try_new(long_poll(
            Arc::new(Mutex::new(Some(rx))),
            Duration::from_secs(5),
        ))
        .unwrap();
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            tx.write_all(b"new message")
        });
        let response = client.get("/events").unwrap();
        writer.join().unwrap().unwrap();
        response.assert_ok_and_valid();
        assert_eq!(response.text(), "new message");
        // The wait was dropped with the body and deregistered.
        assert_eq!(client.readiness_registrations(), Some(0));
    }

    #[test]
    fn a_wait_nobody_satisfies_times_out() {
        let (rx, tx) = std::io::pipe().unwrap();
        let client = AsyncTestClient::new(long_poll(
            Arc::new(Mutex::new(Some(rx))),
            Duration::from_millis(50),
        ));
        let response = client.get("/events").unwrap();
        drop(tx); // kept open until now, so only the timeout could end the wait
        assert_eq!(response.status, StatusCode::NO_CONTENT);
        assert!(response.ending.is_complete());
        response.assert_valid();
        assert_eq!(client.readiness_registrations(), Some(0));
    }
}

#[test]
fn without_readiness_the_capability_is_absent_and_the_application_degrades() {
    let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, start| {
        let caps = capabilities(&environ)?;
        let what = if caps.readiness().is_some() {
            "readiness"
        } else {
            "offload instead"
        };
        start.start(text_head(StatusCode::OK))?;
        Ok(Bytes::from(what))
    }))
    .without_readiness();
    assert_eq!(client.get("/").unwrap().text(), "offload instead");
    assert!(client.readiness_error().is_some());
    assert_eq!(client.readiness_registrations(), None);
}

/// Reads the whole body through the non-blocking face, noting each chunk's
/// size and each `Pending`.
struct Sizes {
    input: Input,
    sizes: Vec<String>,
    pendings: usize,
}

impl AsyncBody for Sizes {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if start.is_started() {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        loop {
            match this.input.poll_chunk(cx, 1024) {
                Poll::Pending => {
                    this.pendings += 1;
                    return Poll::Pending;
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => break,
                Poll::Ready(Ok(chunk)) => this.sizes.push(chunk.len().to_string()),
            }
        }
        if let Err(err) = start.start(text_head(StatusCode::OK)) {
            return Poll::Ready(Some(Err(err.into())));
        }
        let text = format!("sizes={} pendings={}", this.sizes.join(","), this.pendings);
        Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(text)))))
    }
}

#[test]
fn chunked_pieces_arrive_one_by_one_through_the_non_blocking_face() {
    let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, _start| {
        Ok(Sizes {
            input: environ.into_input(),
            sizes: Vec::new(),
            pendings: 0,
        })
    }));
    let response = client
        .request(TestRequest::post("/", "").chunked(["abc", "de", "fghij"]))
        .unwrap();
    response.assert_ok_and_valid();
    // The client's validator arranges one spurious poll per body
    // (RGIA-APP-6): one more `Pending`, unless data came in before it.
    let text = response.text();
    assert!(
        ["sizes=3,2,5 pendings=3", "sizes=3,2,5 pendings=4"].contains(&&*text),
        "{text}"
    );

    let response = client.post("/", "whole body").unwrap();
    let text = response.text();
    assert!(
        ["sizes=10 pendings=1", "sizes=10 pendings=2"].contains(&&*text),
        "{text}"
    );
}

/// Reads the first piece without blocking, then switches and reads the
/// rest with blocking reads of the same input.
struct CheckThenStore {
    input: Option<Input>,
    test_thread: thread::ThreadId,
}

impl AsyncBody for CheckThenStore {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let Some(input) = self.input.as_mut() else {
            return Poll::Ready(None);
        };
        let first = match input.poll_chunk(cx, 1024) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(Ok(first)) => first,
        };
        // The head is stored before the switch and carries over.
        if let Err(err) = start.start(text_head(StatusCode::CREATED)) {
            return Poll::Ready(Some(Err(err.into())));
        }
        let mut input = self.input.take().unwrap();
        let test_thread = self.test_thread;
        Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |_start| {
            let mut rest = String::new();
            input.read_to_string(&mut rest)?;
            let elsewhere = thread::current().id() != test_thread;
            Ok(format!(
                "first={} rest={rest} worker={elsewhere}",
                String::from_utf8_lossy(&first)
            ))
        })))))
    }
}

#[test]
fn a_switch_mid_body_continues_with_blocking_reads_of_the_remainder() {
    let test_thread = thread::current().id();
    let client = AsyncTestClient::new(rgi_async::from_fn(move |environ: Environ, _start| {
        Ok(CheckThenStore {
            input: Some(environ.into_input()),
            test_thread,
        })
    }));
    let response = client
        .request(TestRequest::post("/upload", "").chunked(["alpha-", "beta-", "gamma"]))
        .unwrap();
    response.assert_ok_and_valid();
    assert!(response.switched);
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.text(), "first=alpha- rest=beta-gamma worker=true");
}

/// A body that notes its drop.
struct Tracked {
    body: Option<Bytes>,
    dropped: Arc<AtomicBool>,
}

impl AsyncBody for Tracked {
    fn poll_step(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(self.body.take().map(|body| Ok(Step::Chunk(body))))
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[test]
fn after_response_tasks_run_after_the_response_and_are_counted() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&log);
    let client = AsyncTestClient::new(rgi_async::from_fn(move |environ: Environ, start| {
        let after = capabilities(&environ)?
            .after_response()
            .ok_or("needs after-response tasks")?
            .clone();
        let dropped = Arc::new(AtomicBool::new(false));
        let (log, seen) = (Arc::clone(&shared), Arc::clone(&dropped));
        after.spawn(move || {
            let done = seen.load(Ordering::SeqCst);
            log.lock()
                .unwrap()
                .push(format!("first: body dropped {done}"));
        })?;
        #[allow(clippy::panic, reason = "a failing task must not stop the others")]
        after.spawn(|| panic!("this task fails"))?;
        let log = Arc::clone(&shared);
        after.spawn(move || log.lock().unwrap().push("third".to_owned()))?;
        // Nothing ran on the calling thread (RGIA-AFTER-4).
        let ran_early = shared.lock().unwrap().len();
        start.start(text_head(StatusCode::ACCEPTED))?;
        Ok(Tracked {
            body: Some(Bytes::from(format!("tasks run so far: {ran_early}"))),
            dropped,
        })
    }));
    let response = client.get("/upload").unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.text(), "tasks run so far: 0");
    assert_eq!(response.after_tasks_ran, 3);
    assert_eq!(*log.lock().unwrap(), ["first: body dropped true", "third"]);
}

#[test]
fn an_input_read_after_the_response_is_over_reports_response_finished() {
    let outcome = Arc::new(Mutex::new(String::new()));
    let shared = Arc::clone(&outcome);
    let client = AsyncTestClient::new(rgi_async::from_fn(move |environ: Environ, start| {
        let after = capabilities(&environ)?
            .after_response()
            .ok_or("needs after-response tasks")?
            .clone();
        let mut input = environ.into_input();
        let outcome = Arc::clone(&shared);
        after.spawn(move || {
            let result = input.read_to_end(&mut Vec::new());
            *outcome.lock().unwrap() = match &result {
                Err(err) => format!("{:?}", InputError::from_io(err)),
                Ok(count) => format!("read {count} bytes"),
            };
        })?;
        start.start(StatusCode::NO_CONTENT)?;
        Ok(rgi::Empty)
    }));
    let response = client
        .request(TestRequest::post("/", "").chunked(["never", "read"]))
        .unwrap();
    assert_eq!(response.after_tasks_ran, 1);
    assert_eq!(*outcome.lock().unwrap(), "Some(ResponseFinished)");
}

#[test]
fn a_synchronous_application_runs_through_the_threaded_adapter() {
    let sync_app = rgi::from_fn(|mut environ: Environ, start| {
        let mut body = String::new();
        environ.input_mut().read_to_string(&mut body)?; // blocking, on a worker
        start.start(text_head(StatusCode::OK))?;
        Ok(rgi::from_iter(["got: ".to_owned(), body]))
    });
    let client = AsyncTestClient::new(Threaded::new(sync_app));
    let response = client
        .request(TestRequest::post("/", "").chunked(["sync ", "over ", "async"]))
        .unwrap();
    response.assert_ok_and_valid();
    assert_eq!(response.chunks, ["got: ", "sync over async"]);
    assert_eq!(response.offload_jobs, 1);
}

#[test]
fn failures_follow_the_synchronous_rules() {
    let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, start| {
        if environ.raw_path() == "/early" {
            return Err("refused early".into());
        }
        start.start(text_head(StatusCode::OK))?;
        Ok(rgi_async::from_stream(Chunks(vec![
            Err("late failure".into()),
            Ok(Bytes::from_static(b"some")),
        ])))
    }));
    let early = client.get("/early").unwrap();
    assert_eq!(early.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        early.ending,
        Ending::FailedBeforeHead {
            error: "refused early".into()
        }
    );
    early.assert_valid();
    let late = client.get("/late").unwrap();
    assert_eq!(late.status, StatusCode::OK);
    assert_eq!(late.text(), "some");
    assert_eq!(
        late.ending,
        Ending::FailedAfterHead {
            error: "late failure".into()
        }
    );
    late.assert_valid();
}

/// A stream of prepared items, popped from the end.
struct Chunks(Vec<Result<Bytes, BoxError>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.pop())
    }
}

/// Accepts an upgrade, then echoes what it reads until the peer closes.
enum Echo {
    Refused,
    Waiting(Upgraded),
    Talking {
        stream: Box<dyn ByteStream>,
        buf: Vec<u8>,
        filled: usize,
        written: usize,
    },
    /// Breaks RGIA-UPGRADE-5 on purpose: body data after the hand-over.
    Chatty(Upgraded),
    /// Breaks RGIA-UPGRADE-5 on purpose: an HTTP head after the hand-over.
    LateStart(Upgraded),
}

impl AsyncBody for Echo {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        loop {
            match &mut *self {
                Echo::Refused => return Poll::Ready(None),
                Echo::LateStart(upgraded) => {
                    return match Pin::new(upgraded).poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err.into()))),
                        Poll::Ready(Ok(_stream)) => match start.start(StatusCode::OK) {
                            Ok(()) => Poll::Ready(None),
                            Err(err) => Poll::Ready(Some(Err(err.into()))),
                        },
                    };
                }
                Echo::Chatty(upgraded) => {
                    return match Pin::new(upgraded).poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err.into()))),
                        // Talks HTTP instead of over the stream it got.
                        Poll::Ready(Ok(_stream)) => {
                            Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(b"http!")))))
                        }
                    };
                }
                Echo::Waiting(upgraded) => match Pin::new(upgraded).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                    Poll::Ready(Ok(stream)) => {
                        *self = Echo::Talking {
                            stream,
                            buf: vec![0; 1024],
                            filled: 0,
                            written: 0,
                        };
                    }
                },
                Echo::Talking {
                    stream,
                    buf,
                    filled,
                    written,
                } => {
                    if written < filled {
                        match stream.poll_write(cx, &buf[*written..*filled]) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                            Poll::Ready(Ok(count)) => *written += count,
                        }
                        continue;
                    }
                    match stream.poll_read(cx, buf) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                        Poll::Ready(Ok(0)) => {
                            if let Poll::Ready(Err(err)) = stream.poll_close(cx) {
                                return Poll::Ready(Some(Err(err.into())));
                            }
                            *self = Echo::Refused;
                            return Poll::Ready(None);
                        }
                        Poll::Ready(Ok(count)) => {
                            *filled = count;
                            *written = 0;
                        }
                    }
                }
            }
        }
    }
}

/// How [`echo_app`] behaves once it has the upgrade.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Echo,
    /// Stores an ordinary head first, which the `101` replaces.
    StartThenAccept,
    Chatty,
    LateStart,
}

fn echo_app(mode: Mode) -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(move |environ: Environ, start| {
        let Some(upgrade) = capabilities(&environ)?.upgrade() else {
            start.start(text_head(StatusCode::NOT_IMPLEMENTED))?;
            return Ok(Echo::Refused);
        };
        if mode == Mode::StartThenAccept {
            start.start(text_head(StatusCode::UPGRADE_REQUIRED))?;
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-echo-version"),
            HeaderValue::from_static("1"),
        );
        let upgraded = upgrade.accept(headers)?;
        Ok(match mode {
            Mode::Echo | Mode::StartThenAccept => Echo::Waiting(upgraded),
            Mode::Chatty => Echo::Chatty(upgraded),
            Mode::LateStart => Echo::LateStart(upgraded),
        })
    })
}

#[test]
fn an_upgraded_connection_runs_an_echo_protocol() {
    let client = AsyncTestClient::new(echo_app(Mode::Echo));
    let request = TestRequest::get("/echo").upgrade(HeaderValue::from_static("echo"), |peer| {
        peer.write_all(b"ping")?;
        let mut answer = [0; 4];
        peer.read_exact(&mut answer)?;
        assert_eq!(&answer, b"ping");
        peer.write_all(b"pong!")?;
        let mut answer = [0; 5];
        peer.read_exact(&mut answer)?;
        assert_eq!(&answer, b"pong!");
        peer.close_sending();
        // The application closes after our end of stream.
        assert_eq!(peer.read(&mut [0; 8])?, 0);
        Ok(())
    });
    let response = client.request(request).unwrap();
    assert_eq!(response.status, StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.header(UPGRADE), Some("echo"));
    assert_eq!(response.header(CONNECTION), Some("upgrade"));
    assert_eq!(response.header("x-echo-version"), Some("1"));
    assert_eq!(response.ending, Ending::Upgraded);
    response.assert_ok_and_valid_upgrade();
    let transcript = response.upgrade.as_ref().unwrap();
    assert_eq!(transcript.protocol, "echo");
    assert_eq!(transcript.to_app, "pingpong!");
    assert_eq!(transcript.from_app, "pingpong!");
    assert_eq!(transcript.peer_error, None);
}

trait UpgradeAssertions {
    fn assert_ok_and_valid_upgrade(&self);
}

impl UpgradeAssertions for rgi_conformance::client::TestResponse {
    fn assert_ok_and_valid_upgrade(&self) {
        assert!(self.ending.is_complete(), "{:?}", self.ending);
        self.assert_valid();
    }
}

#[test]
fn no_upgrade_is_offered_on_http_1_0_and_the_application_answers_501() {
    let client = AsyncTestClient::new(echo_app(Mode::Echo));
    let request = TestRequest::get("/echo")
        .upgrade(HeaderValue::from_static("echo"), |_peer| Ok(()))
        .version(Version::HTTP_10);
    let response = client.request(request).unwrap();
    assert_eq!(response.status, StatusCode::NOT_IMPLEMENTED);
    assert!(response.upgrade.is_none());
    response.assert_valid();
    let response = client.get("/echo").unwrap();
    assert_eq!(response.status, StatusCode::NOT_IMPLEMENTED);
}

#[test]
fn body_data_after_accepting_an_upgrade_is_an_application_error() {
    let client = AsyncTestClient::new(echo_app(Mode::Chatty));
    let response = client
        .request(
            TestRequest::get("/echo").upgrade(HeaderValue::from_static("echo"), |peer| {
                let mut rest = Vec::new();
                peer.read_to_end(&mut rest)?;
                assert!(rest.is_empty());
                Ok(())
            }),
        )
        .unwrap();
    assert_eq!(response.status, StatusCode::SWITCHING_PROTOCOLS);
    assert!(
        matches!(&response.ending, Ending::FailedAfterHead { error } if error.contains("RGIA-UPGRADE-5")),
        "{:?}",
        response.ending
    );
    assert!(response.body.is_empty());
    assert!(
        response.violated("RGIA-UPGRADE-5"),
        "{:?}",
        response.clauses()
    );
}

#[test]
fn a_head_stored_before_accepting_is_replaced_by_the_101() {
    let client = AsyncTestClient::new(echo_app(Mode::StartThenAccept));
    let response = client
        .request(
            TestRequest::get("/echo").upgrade(HeaderValue::from_static("echo"), |peer| {
                peer.write_all(b"hello")?;
                peer.close_sending();
                let mut echoed = Vec::new();
                peer.read_to_end(&mut echoed)?;
                assert_eq!(echoed, b"hello");
                Ok(())
            }),
        )
        .unwrap();
    assert_eq!(response.status, StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.header(CONTENT_TYPE), None);
    assert_eq!(response.ending, Ending::Upgraded);
}

#[test]
fn an_http_head_after_the_hand_over_is_an_application_error() {
    let client = AsyncTestClient::new(echo_app(Mode::LateStart));
    let response = client
        .request(
            TestRequest::get("/echo").upgrade(HeaderValue::from_static("echo"), |_peer| Ok(())),
        )
        .unwrap();
    assert_eq!(response.status, StatusCode::SWITCHING_PROTOCOLS);
    assert!(
        matches!(&response.ending, Ending::FailedAfterHead { error } if error.contains("started an HTTP response")),
        "{:?}",
        response.ending
    );
}

#[test]
#[should_panic(expected = "the peer saw the wrong greeting")]
fn a_failed_assertion_in_the_peer_script_fails_the_test() {
    let client = AsyncTestClient::new(echo_app(Mode::Echo));
    let _ = client.request(TestRequest::get("/echo").upgrade(
        HeaderValue::from_static("echo"),
        |peer| {
            peer.write_all(b"hi")?;
            let mut answer = [0; 2];
            peer.read_exact(&mut answer)?;
            assert_eq!(&answer, b"yo", "the peer saw the wrong greeting");
            Ok(())
        },
    ));
}

#[test]
fn a_silent_application_times_the_peer_out_instead_of_hanging() {
    /// Accepts, then waits for the peer's end of stream without writing.
    struct Silent(Option<Upgraded>, Option<Box<dyn ByteStream>>);
    impl AsyncBody for Silent {
        fn poll_step(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            _start: &mut StartResponse<'_>,
        ) -> Poll<Option<Result<Step, BoxError>>> {
            if let Some(upgraded) = self.0.as_mut() {
                match Pin::new(upgraded).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                    Poll::Ready(Ok(stream)) => {
                        self.0 = None;
                        self.1 = Some(stream);
                    }
                }
            }
            let Some(stream) = self.1.as_mut() else {
                return Poll::Ready(None);
            };
            match stream.poll_read(cx, &mut [0; 16]) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(_) => Poll::Ready(None),
            }
        }
    }
    let client = AsyncTestClient::new(rgi_async::from_fn(|environ: Environ, _start| {
        let upgrade = capabilities(&environ)?.upgrade().ok_or("no upgrade")?;
        Ok(Silent(Some(upgrade.accept(HeaderMap::new())?), None))
    }));
    let response = client
        .request(
            TestRequest::get("/").upgrade(HeaderValue::from_static("quiet"), |peer| {
                peer.set_timeout(Duration::from_millis(50));
                let err = peer.read(&mut [0; 4]).unwrap_err();
                Err(io::Error::new(err.kind(), "no greeting"))
            }),
        )
        .unwrap();
    assert_eq!(response.ending, Ending::Upgraded);
    let transcript = response.upgrade.unwrap();
    assert_eq!(transcript.peer_error.as_deref(), Some("no greeting"));
    assert!(transcript.from_app.is_empty());
}

/// Starts the response twice inside the body.
struct StartsTwice;

impl AsyncBody for StartsTwice {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        if start.is_started() {
            return Poll::Ready(None);
        }
        if let Err(err) = start.start(text_head(StatusCode::OK)) {
            return Poll::Ready(Some(Err(err.into())));
        }
        let _ = start.start(text_head(StatusCode::ACCEPTED));
        Poll::Ready(Some(Ok(Step::Chunk(Bytes::from_static(
            b"first head wins",
        )))))
    }
}

#[test]
fn starting_twice_in_an_async_body_is_reported_with_its_clause() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let client = AsyncTestClient::new(rgi_async::from_fn(move |_environ: Environ, _start| {
        seen.fetch_add(1, Ordering::SeqCst);
        Ok(StartsTwice)
    }));
    let response = client.get("/").unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        response.violated("RGI-START-7"),
        "expected RGI-START-7 among {:?}",
        response.clauses()
    );
}
