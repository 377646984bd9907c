//! The validator's view of the request body: the application gets a new
//! `Input` over an observer of the one the server built, with the same
//! declared length and the same faces, so every read passes the observer.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;

use bytes::Bytes;
use rgi::{AsyncSource, Environ, Input, InputError};

use super::rules;
use super::state::{Flavor, Request};

/// Which face of the input a read came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Face {
    Blocking,
    NonBlocking,
}

/// Sits between the application's `Input` and the server's.
struct Observer {
    original: Input,
    request: Arc<Request>,
    /// The original reported the end of a truncated body.
    failed: bool,
}

impl Observer {
    /// Checks what the application is doing by reading.
    fn on_access(&self, face: Face) {
        let flavor = self.request.flavor;
        self.request.with(|t| {
            if t.hints_no_input {
                t.violate(
                    &rules::HINTS_INPUT_NONE_BUT_READ,
                    "the application declared InputUse::None in its hints, then read the request body",
                    format!("{face:?} read"),
                );
            }
            if flavor == Flavor::Async
                && face == Face::Blocking
                && t.loop_scope == Some(thread::current().id())
            {
                t.violate(
                    &rules::BLOCKING_READ_ON_LOOP_THREAD,
                    "the blocking face of the input was used inside call or poll_step, on a loop thread",
                    "Read/BufRead on the request body",
                );
            }
        });
    }

    /// Checks what the server's input delivered.
    fn on_result(&mut self, result: Result<usize, &io::Error>) {
        let declared = self.original.content_length();
        let failed_before = self.failed;
        let truncation = match result {
            Ok(_) => false,
            Err(error) => match InputError::from_io(error) {
                Some(InputError::Truncated { .. }) => true,
                _ => error.kind() == io::ErrorKind::UnexpectedEof,
            },
        };
        let untyped = match result {
            Err(error) if truncation => InputError::from_io(error).is_none() && declared.is_some(),
            _ => false,
        };
        self.failed |= truncation;
        self.request.with(|t| {
            t.note_input_result(result);
            if truncation {
                t.truncated_seen = true;
            }
            match result {
                Err(error) if untyped => t.violate(
                    &rules::INPUT_TRUNCATION_UNTYPED,
                    "the request body ended before its declared length with an error that is not InputError::Truncated",
                    format!("{error} (declared {declared:?})"),
                ),
                Ok(count) if failed_before => t.violate(
                    &rules::INPUT_ERROR_NOT_STICKY,
                    "after reporting a truncated body the input answered a later read successfully",
                    format!("Ok({count})"),
                ),
                _ => {}
            }
        });
    }
}

impl Read for Observer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.on_access(Face::Blocking);
        let result = self.original.read(buf);
        self.on_result(result.as_ref().map(|count| *count));
        result
    }
}

impl AsyncSource for Observer {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        let this = &mut *self;
        let blocking = this
            .request
            .park_vtable
            .is_some_and(|park| *cx.waker().vtable() == park);
        let face = if blocking {
            Face::Blocking
        } else {
            Face::NonBlocking
        };
        this.on_access(face);
        // The waker of the poll in progress, if this read passes it on: a
        // Pending from the server's source must leave a clone behind.
        let lent = this.request.with(|t| {
            t.poll_waker
                .as_ref()
                .filter(|waker| cx.waker().data() == Arc::as_ptr(waker).cast::<()>())
                .cloned()
        });
        let before = lent.as_ref().map(Arc::strong_count);
        let polled = this.original.poll_chunk(cx, max);
        match &polled {
            Poll::Pending => {
                let kept = match (&lent, before) {
                    (Some(waker), Some(before)) => {
                        Arc::strong_count(waker) > before || waker.was_woken()
                    }
                    _ => true,
                };
                if !kept {
                    this.request.with(|t| {
                        t.source_blamed = true;
                        t.violate(
                            &rules::INPUT_PENDING_WITHOUT_WAKEUP,
                            "the server's input source returned Pending without keeping the waker",
                            format!("poll_chunk(max {max})"),
                        );
                    });
                }
            }
            Poll::Ready(result) => {
                this.on_result(result.as_ref().map(Bytes::len));
            }
        }
        polled
    }
}

/// Puts the observer between the application and the server's input.
///
/// An input the server (or a middleware) already read from is left alone:
/// its declared length no longer says what it will deliver, which is
/// reported instead.
pub(crate) fn install(environ: &mut Environ, request: &Arc<Request>) {
    let already = environ.input().bytes_read();
    if already > 0 {
        request.violate(
            &rules::INPUT_ALREADY_READ,
            "the input reached the application with part of the body already read",
            format!(
                "{already} bytes read of {:?}",
                environ.input().content_length()
            ),
        );
        return;
    }
    let length = environ.input().content_length();
    let original = environ.replace_input(Input::empty());
    let asynchronous = original.is_async();
    let observer = Observer {
        original,
        request: Arc::clone(request),
        failed: false,
    };
    let wrapped = if asynchronous {
        Input::from_async(observer, length)
    } else {
        Input::new(observer, length)
    };
    environ.replace_input(wrapped);
}
