//! The validator's view of the request body: the application gets a new
//! `Input` over an observer of the one the server built, with the same
//! declared length and the same faces, so every read passes the observer.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::thread;

use bytes::Bytes;
use http::header::EXPECT;
use rgi::{AsyncSource, Environ, Input, InputError, TrailerSlot};

use super::rules;
use super::state::{Flavor, Request, Tracker};
use super::{declared, input_chain};

/// The text `rgi::Input` gives the `InvalidInput` error with which it
/// answers a `poll_chunk` of `max` 0 without asking its source.
const ZERO_SIZED_POLL_TEXT: &str = "poll_chunk called with max 0";

/// A step or call of the application failed with `error`: if the failure
/// is `Input`'s answer to a zero-sized poll, the application made one
/// (`RGIA-INPUT-9`); `Input` refuses it before the observer could see it,
/// so the error coming back out is the only trace.
pub(crate) fn on_failure(request: &Request, error: &(dyn std::error::Error + 'static)) {
    let mut cause = Some(error);
    while let Some(current) = cause {
        let zero_sized = current.downcast_ref::<io::Error>().is_some_and(|io| {
            io.kind() == io::ErrorKind::InvalidInput
                && io
                    .get_ref()
                    .is_some_and(|inner| inner.to_string() == ZERO_SIZED_POLL_TEXT)
        });
        if zero_sized {
            request.violate(
                &rules::ZERO_SIZED_POLL,
                "the application called poll_chunk with max 0 and failed with the input's answer",
                ZERO_SIZED_POLL_TEXT,
            );
            return;
        }
        cause = current.source();
    }
}

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
    /// A read has reached the original already.
    read_before: bool,
    /// The request of the validator outside the middleware that handed
    /// this environ inward, if any.
    outer: Option<Weak<Request>>,
    /// The slot of the input the application reads, filled from the
    /// original's trailers before the end is reported (`RGI-TRAILER-2`:
    /// the validator replaces the input, so it keeps them itself).
    trailers: TrailerSlot,
    /// The server declares request trailers.
    declared: bool,
    /// The original reported the end of the body.
    ended: bool,
}

impl Observer {
    /// The original reported the end of the body: its trailers go into the
    /// application's slot before the application sees the end, and are
    /// judged: present though undeclared (`RGI-FEAT-1`), or lost by a
    /// middleware that replaced the input (`RGI-TRAILER-2`).
    fn on_end(&mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let Ok(fields) = self.original.take_trailers() else {
            return;
        };
        if let Some(fields) = &fields {
            self.trailers.fill(fields.clone());
        }
        let outer = self.outer.as_ref().and_then(Weak::upgrade);
        let mut outer_seen = None;
        if let Some(outer) = &outer {
            outer.quietly(|outer| outer_seen = outer.features.request_trailers.clone());
        }
        let declared = self.declared;
        self.request.with(|t| {
            match &fields {
                Some(fields) if !fields.is_empty() && !declared => t.violate(
                    &rules::FEATURE_UNDECLARED,
                    "the input carried request trailers on a server that does not declare them",
                    format!("{} trailer fields", fields.len()),
                ),
                None => {
                    if let Some(Some(lost)) = outer_seen.filter(|seen| {
                        seen.as_ref().is_some_and(|seen| !seen.is_empty())
                    }) {
                        t.violate(
                            &rules::MW_TRAILERS_DROPPED,
                            "the input a middleware handed inward has no trailers, though the body it replaced had",
                            lost.keys().map(http::HeaderName::as_str).collect::<Vec<_>>().join(", "),
                        );
                    }
                }
                _ => {}
            }
            t.features.request_trailers = Some(fields);
        });
    }

    /// The room the next read may fill: the first read that reaches the
    /// server's input gets at most half of what it asked for, as a real
    /// connection's first packet may hold, so that a party assuming that a
    /// read fills its buffer (`RGI-INPUT-10`), or that the whole body came
    /// with the first read, shows it under the validator.
    fn room(&mut self, asked: usize) -> usize {
        if std::mem::replace(&mut self.read_before, true) || asked < 2 {
            asked
        } else {
            asked / 2
        }
    }

    /// A truncation reported by an input a middleware installed: unless the
    /// body it replaced was truncated too, the replacement declared more than
    /// it could deliver (`RGI-INPUT-16`), for example because the
    /// middleware read part of the body itself behind the application.
    fn check_replacement_truncated(&self, t: &mut Tracker, error: &io::Error) {
        // Only the typed truncation `Input` reports for a declared length:
        // an untyped early end from a decoder can be the decoded data's own
        // fault (a cut-off gzip stream in a complete body).
        if !matches!(
            InputError::from_io(error),
            Some(InputError::Truncated { .. })
        ) {
            return;
        }
        let Some(outer) = self.outer.as_ref().and_then(Weak::upgrade) else {
            return;
        };
        let mut outer_truncated = true;
        outer.quietly(|outer| outer_truncated = outer.truncated_seen);
        if !outer_truncated {
            t.violate(
                &rules::MW_INPUT_TRUNCATED,
                "the input a middleware handed inward ended before its declared length, though the body it replaced was not cut short",
                error.to_string(),
            );
        }
    }

    /// Checks what the application is doing by reading.
    fn on_access(&self, face: Face) {
        let flavor = self.request.flavor;
        self.request.with(|t| {
            if !t.started() {
                t.input_watch.read_before_start = true;
            }
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
    fn on_result(&mut self, result: Result<usize, &io::Error>, face: Face) {
        let declared = self.original.content_length();
        let flavor = self.request.flavor;
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
                if let Err(error) = result {
                    self.check_replacement_truncated(t, error);
                }
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
                Ok(count) if count > 0 && t.done => {
                    let rule = match flavor {
                        Flavor::Sync => rules::INPUT_READ_AFTER_RESPONSE,
                        Flavor::Async => rules::ASYNC_INPUT_READ_AFTER_RESPONSE,
                    };
                    t.violate(
                        &rule,
                        "a read after the response was over still got body bytes from the server's source",
                        format!("Ok({count})"),
                    );
                }
                Err(error) if InputError::from_io(error).is_none() => {
                    check_untyped(t, error, face);
                }
                _ => {}
            }
        });
    }
}

impl Read for Observer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.on_access(Face::Blocking);
        let room = self.room(buf.len());
        let result = self.original.read(&mut buf[..room]);
        if result.is_ok() && self.original.is_finished() {
            self.on_end();
        }
        self.on_result(result.as_ref().map(|count| *count), Face::Blocking);
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
        let room = this.room(max);
        let polled = this.original.poll_chunk(cx, room);
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
                if result.is_ok() && this.original.is_finished() {
                    this.on_end();
                }
                if result.is_ok() && this.original.held_excess() > 0 {
                    let excess = this.original.held_excess();
                    this.request.with(|t| {
                        t.violate(
                            &rules::SOURCE_OVERDELIVERED,
                            "the server's input source returned more bytes than it was polled for",
                            format!("{excess} bytes past poll_chunk(max {room})"),
                        );
                    });
                }
                this.on_result(result.as_ref().map(Bytes::len), face);
            }
        }
        polled
    }
}

/// An error from the server's input that carries no `InputError`: a
/// blocking read that would block, or a failure of the kinds a framing
/// fault shows as, which must be typed so the server answers 400.
fn check_untyped(t: &mut Tracker, error: &io::Error, face: Face) {
    match error.kind() {
        io::ErrorKind::WouldBlock if face == Face::Blocking => t.violate(
            &rules::BLOCKING_READ_WOULD_BLOCK,
            "a read through the blocking face failed with WouldBlock instead of waiting (a source left non-blocking?)",
            error.to_string(),
        ),
        io::ErrorKind::Other | io::ErrorKind::InvalidData => t.violate(
            &rules::INPUT_ERROR_UNTYPED,
            "the server's input failed with an error that carries no InputError; a malformed body is InputError::MalformedBody",
            format!("{:?}: {error}", error.kind()),
        ),
        _ => {}
    }
}

/// Puts the observer between the application and the server's input.
///
/// An input the server (or a middleware) already read from is left alone:
/// its declared length no longer says what it will deliver, which is
/// reported instead.
pub(crate) fn install(environ: &mut Environ, request: &Arc<Request>) {
    let length_agreed = super::environ::length_field_agrees(environ);
    let outer = input_chain::on_call(environ, request, length_agreed);
    declared::on_call(environ, request);
    let expect_continue = environ
        .headers()
        .get_all(EXPECT)
        .iter()
        .any(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let length_declared = environ.input().content_length().is_some();
    request.with(|t| {
        t.input_watch.expect_continue = expect_continue;
        t.input_watch.length_declared = length_declared;
    });
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
    let declared = environ.features().request_trailers();
    let original = environ.replace_input(Input::empty());
    let asynchronous = original.is_async();
    let trailers = TrailerSlot::new();
    let observer = Observer {
        original,
        request: Arc::clone(request),
        failed: false,
        read_before: false,
        outer,
        trailers: trailers.clone(),
        declared,
        ended: false,
    };
    let wrapped = if asynchronous {
        Input::from_async(observer, length)
    } else {
        Input::new(observer, length)
    };
    environ.replace_input(wrapped.with_trailers(trailers));
}
