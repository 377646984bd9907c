//! An upload checked asynchronously, then finished synchronously
//! (spec/rgi-async.md, recipe 17.4): the body reads the first part of the
//! request body through the non-blocking face (`Input::poll_chunk`), then
//! yields `Step::Switch`; the continuation, on a worker thread, reads the
//! rest of the same `Input` with blocking `Read` and answers with the byte
//! counts. No byte is lost or read twice across the switch.
//!
//! The request body arrives in pieces from a "network" thread, through an
//! `Input::from_async` source, as an asynchronous server would provide it.
//!
//! Run with `cargo run -p rgi-async --example upload_switch`.
#![allow(clippy::print_stdout)]

mod support;

use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use rgi::{BoxError, Environ, Input, ResponseHead, StartResponse};
use rgi_async::{AsyncBody, Step, SyncSwitch};
use support::{Fed, serve_and_print};

/// How much the body reads without blocking before it switches.
const FIRST: usize = 10;

/// The body of the upload, as it arrives.
const PIECES: [&[u8]; 4] = [
    b"\x89PNG",
    b"\r\n\x1a\n-header-",
    b"pixels pixels ",
    b"and more pixels",
];

/// Reads up to `FIRST` bytes with `poll_chunk`, then switches.
struct Upload {
    input: Option<Input>,
    first: Vec<u8>,
    /// Where the continuation leaves everything it saw, for the check in
    /// `main`.
    received: Arc<Mutex<Vec<u8>>>,
}

impl AsyncBody for Upload {
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = &mut *self;
        let Some(input) = this.input.as_mut() else {
            return Poll::Ready(None);
        };
        while this.first.len() < FIRST {
            match input.poll_chunk(cx, FIRST - this.first.len()) {
                Poll::Pending => return Poll::Pending, // the source wakes us
                Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(Ok(chunk)) if chunk.is_empty() => break, // a short upload
                Poll::Ready(Ok(chunk)) => this.first.extend_from_slice(&chunk),
            }
        }
        // The same `Input` moves into the continuation: blocking reads there
        // see exactly the unread remainder.
        let mut input = this.input.take().unwrap_or_else(Input::empty);
        let first = std::mem::take(&mut this.first);
        let received = Arc::clone(&this.received);
        Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |start| {
            let mut rest = Vec::new();
            input.read_to_end(&mut rest)?; // blocking: we are on a worker thread
            let answer = format!("first {} bytes, rest {} bytes\n", first.len(), rest.len());
            if let Ok(mut received) = received.lock() {
                received.extend_from_slice(&first);
                received.extend_from_slice(&rest);
            }
            start.start(ResponseHead::new(StatusCode::CREATED))?;
            Ok(Bytes::from(answer))
        })))))
    }
}

fn main() -> Result<(), BoxError> {
    let whole: Vec<u8> = PIECES.concat();
    let fed = Fed::default();
    let input = Input::from_async(fed.clone(), Some(whole.len() as u64));
    let network = thread::spawn(move || {
        for piece in PIECES {
            thread::sleep(Duration::from_millis(10));
            fed.push(piece);
        }
        fed.end();
    });

    let received = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&received);
    let app = rgi_async::from_fn(move |environ: Environ, _start| {
        Ok(Upload {
            input: Some(environ.into_input()),
            first: Vec::new(),
            received: Arc::clone(&shared),
        })
    });
    let served = serve_and_print("upload", &app, Some(input))?;
    network.join().map_err(|_| "network thread panicked")?;

    assert!(served.switched);
    assert_eq!(served.wire.heads()[0].status(), StatusCode::CREATED);
    let expected = format!("first {FIRST} bytes, rest {} bytes\n", whole.len() - FIRST);
    assert_eq!(served.wire.body(), expected.as_bytes());
    let received = received.lock().map_err(|_| "poisoned")?;
    assert_eq!(*received, whole, "first + rest is the whole body");
    Ok(())
}
