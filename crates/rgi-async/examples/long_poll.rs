//! Long-poll on a pipe with a timeout (spec/rgi-async.md, recipe
//! 17.1): the request parks on a readiness wait, holding no thread, until
//! a notifier writes (200 with the message) or the timeout passes (204).
//!
//! Run with `cargo run -p rgi-async --example long_poll` (Unix).
#![allow(clippy::print_stdout)]

mod support;

#[cfg(unix)]
fn main() -> Result<(), rgi::BoxError> {
    use std::io::PipeReader;
    use std::io::{ErrorKind, Read, Write};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http::StatusCode;
    use rgi::{BoxError, Environ};
    use rgi_async::{Capabilities, Interest, Readiness, Responder, WaitOutcome};
    use support::serve_and_print;

    /// Waits for one message on `rx` until `timeout` passes.
    async fn next_message(
        readiness: Readiness,
        rx: PipeReader,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), BoxError> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0_u8; 4096];
        loop {
            // A pipe cannot be made non-blocking with std alone, so wait
            // first and read only once the wait says a read will not block.
            let left = deadline.saturating_duration_since(Instant::now());
            match readiness.wait(&rx, Interest::READABLE, Some(left)).await? {
                WaitOutcome::TimedOut => return Ok((StatusCode::NO_CONTENT, Bytes::new())),
                WaitOutcome::Ready(_) => match (&rx).read(&mut buf) {
                    Ok(0) => return Ok((StatusCode::NO_CONTENT, Bytes::new())), // hub hung up
                    Ok(n) => return Ok((StatusCode::OK, Bytes::copy_from_slice(&buf[..n]))),
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) => return Err(err.into()),
                },
                // RGIA-VER-4: outcomes of later versions end the wait as a failure.
                other => return Err(format!("an unknown wait outcome: {other:?}").into()),
            }
        }
    }

    /// Each request takes the next subscriber socket from the "hub".
    fn app(
        subscribers: Arc<Mutex<Vec<PipeReader>>>,
        timeout: Duration,
    ) -> impl rgi_async::AsyncApplication {
        rgi_async::from_async_fn(move |environ: Environ, response: Responder| {
            let subscribers = Arc::clone(&subscribers);
            async move {
                let capabilities =
                    Capabilities::of(&environ).ok_or("needs an asynchronous server")?;
                let readiness = capabilities.readiness().ok_or("needs readiness")?.clone();
                let rx = subscribers
                    .lock()
                    .map_err(|_| "hub poisoned")?
                    .pop()
                    .ok_or("no subscriber")?;
                let (status, message) = next_message(readiness, rx, timeout).await?;
                response.set_status(status)?;
                if !message.is_empty() {
                    response.send(message).await;
                }
                Ok(())
            }
        })
    }

    // A notifier writes after a short while: 200 with the message.
    let (rx, mut tx) = std::io::pipe()?;
    let notifier = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        tx.write_all(b"new message for you")
    });
    let served = serve_and_print(
        "notified",
        &app(Arc::new(Mutex::new(vec![rx])), Duration::from_secs(5)),
        None,
    )?;
    notifier.join().map_err(|_| "notifier panicked")??;
    assert_eq!(served.wire.heads()[0].status(), StatusCode::OK);

    // Nobody writes: the wait times out and the answer is 204.
    let (rx, _tx) = std::io::pipe()?;
    let served = serve_and_print(
        "timed out",
        &app(Arc::new(Mutex::new(vec![rx])), Duration::from_millis(50)),
        None,
    )?;
    assert_eq!(served.wire.heads()[0].status(), StatusCode::NO_CONTENT);
    Ok(())
}

#[cfg(not(unix))]
fn main() {
    println!("this example waits on a pipe; it runs on Unix only");
}
