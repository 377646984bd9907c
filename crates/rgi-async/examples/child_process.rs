//! Streaming a child process's output and reaping it (spec/rgi-async.md,
//! recipe 17.3): the body waits for the child's stdout pipe to become
//! readable through the server's poller, yields each line as a chunk, and
//! once the output ends reaps the child, waiting for its exit on a pidfd
//! (Linux) or with a blocking `child.wait()` in offload, so the event loop
//! never blocks.
//!
//! `std` cannot put a pipe in non-blocking mode, so every read here comes
//! right after a readiness wait said the pipe is readable (one reader,
//! level-triggered): the read then returns what is there, or 0 at the end,
//! without blocking. On Linux 5.3 and later the exit could be waited on
//! without a thread as well, through a pidfd (`pidfd_open(2)`), which
//! becomes readable when the child exits: this example does that on Linux
//! (through rustix's safe `pidfd_open`), and offloads the `wait` elsewhere
//! or when the kernel has no pidfd support.
//!
//! Run with `cargo run -p rgi-async --example child_process` (Unix).
#![allow(clippy::print_stdout)]

mod support;

#[cfg(unix)]
fn main() -> Result<(), rgi::BoxError> {
    use std::io::Read;
    use std::pin::Pin;
    use std::process::{Child, ChildStdout, Command, Stdio};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use bytes::Bytes;
    use http::StatusCode;
    use rgi::{BoxError, Environ, ResponseHead, StartResponse};
    use rgi_async::{AsyncBody, Capabilities, Interest, Offload, Readiness, Step, WaitOutcome};
    use support::{BoxFuture, serve_and_print};

    /// The child, its output and what has been read of it.
    struct Proc {
        child: Option<Child>,
        out: ChildStdout,
        pending: Vec<u8>,
        ended: bool,
        readiness: Readiness,
        offload: Offload,
    }

    type Next = (Proc, Option<Result<Bytes, BoxError>>);

    impl Proc {
        /// The next line of output; after the output, one line with the
        /// exit status; then `None`.
        async fn next(mut self) -> Next {
            let item = self.next_item().await.transpose();
            (self, item)
        }

        async fn next_item(&mut self) -> Result<Option<Bytes>, BoxError> {
            loop {
                if let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
                    return Ok(Some(self.pending.drain(..=end).collect::<Vec<u8>>().into()));
                }
                if self.ended {
                    if !self.pending.is_empty() {
                        return Ok(Some(std::mem::take(&mut self.pending).into()));
                    }
                    break;
                }
                let wait = self.readiness.wait(
                    &self.out,
                    Interest::READABLE,
                    Some(Duration::from_secs(10)),
                );
                if wait.await? == WaitOutcome::TimedOut {
                    return Err("the child stayed silent for 10 s".into());
                }
                let mut buf = [0_u8; 4096];
                match self.out.read(&mut buf)? {
                    0 => self.ended = true,
                    n => self.pending.extend_from_slice(&buf[..n]),
                }
            }
            let Some(mut child) = self.child.take() else {
                return Ok(None);
            };
            // Linux: the pidfd turns readable when the child exits, so the
            // exit is awaited on the poller like any descriptor; `wait` then
            // returns at once. Elsewhere (or on a kernel without pidfd_open),
            // a worker thread waits instead.
            #[cfg(target_os = "linux")]
            {
                use rustix::process::{Pid, PidfdFlags, pidfd_open};
                if let Ok(pidfd) = pidfd_open(Pid::from_child(&child), PidfdFlags::empty()) {
                    let exited = self.readiness.wait(
                        &pidfd,
                        Interest::READABLE,
                        Some(Duration::from_secs(10)),
                    );
                    if exited.await? == WaitOutcome::TimedOut {
                        return Err("the child did not exit within 10 s".into());
                    }
                    let status = child.wait()?;
                    return Ok(Some(Bytes::from(format!("{status} (seen on a pidfd)\n"))));
                }
            }
            let status = self.offload.run(move || child.wait()).await??;
            Ok(Some(Bytes::from(format!("{status}\n"))))
        }
    }

    /// Polls the next line's future; each resolved item is one step.
    struct ProcBody(Option<BoxFuture<Next>>);

    impl AsyncBody for ProcBody {
        fn poll_step(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            start: &mut StartResponse<'_>,
        ) -> Poll<Option<Result<Step, BoxError>>> {
            let Some(next) = self.0.as_mut() else {
                return Poll::Ready(None);
            };
            let Poll::Ready((proc, item)) = next.as_mut().poll(cx) else {
                return Poll::Pending; // the poller or the offload wakes us
            };
            self.0 = match item {
                Some(Ok(_)) => Some(Box::pin(proc.next())),
                _ => None,
            };
            if !start.is_started() {
                if let Err(err) = start.start(ResponseHead::new(StatusCode::OK)) {
                    return Poll::Ready(Some(Err(err.into())));
                }
            }
            Poll::Ready(item.map(|result| result.map(Step::Chunk)))
        }
    }

    let app = rgi_async::from_fn(|environ: Environ, _start| {
        let capabilities = Capabilities::of(&environ).ok_or("needs an asynchronous server")?;
        let readiness = capabilities.readiness().ok_or("needs readiness")?.clone();
        let mut child = Command::new("sh")
            .args(["-c", "echo one; sleep 0.05; echo two"])
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().ok_or("no stdout pipe")?;
        let proc = Proc {
            child: Some(child),
            out,
            pending: Vec::new(),
            ended: false,
            readiness,
            offload: capabilities.offload().clone(),
        };
        Ok(ProcBody(Some(Box::pin(proc.next()))))
    });

    let served = serve_and_print("sh -c 'echo one; sleep 0.05; echo two'", &app, None)?;
    let body = served.wire.body();
    assert!(body.starts_with(b"one\ntwo\nexit status"), "{body:?}");
    // One step per line, plus the exit status.
    assert_eq!(served.steps, 3);
    Ok(())
}

#[cfg(not(unix))]
fn main() {
    println!("this example waits on a child's pipe with readiness; it runs on Unix only");
}
