//! One request as the toy's wrappers and its sink see it: the request's
//! context, the state a fault's hooks share with the sink, and the framing
//! the head announced. Below both the sink and the wrappers, so that they
//! depend on it and not on each other.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use rgi::{Environ, ResponseHead, ResponseState};

use super::conn::{Conn, UpgradeStage};
use super::fault::{Fault, acts};
use super::shared::{Cancel, lock};

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutFraming {
    /// HEAD, 204, 304: no body whatever the fields say.
    Bodiless,
    /// The head's Content-Length.
    Length,
    /// The chunked transfer coding (HTTP/1.1).
    Chunked,
    /// The end of the connection (HTTP/1.0 without a length).
    Close,
}

/// Where an application panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Call,
    Body,
    Drop,
}

/// State a fault's hooks and the request's sink share.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    /// The framing the head announced, once it went out.
    pub(crate) framing: Option<OutFraming>,
    /// [`Fault::SendsHeadEarly`]: the head already went out, this framed.
    pub(crate) early: Option<OutFraming>,
    /// Chunks yielded before a bodiless head went out
    /// ([`Fault::BodyOnHead`], [`Fault::BodyOn204`]).
    pub(crate) stash: Vec<Bytes>,
    /// The status of the head stored last.
    pub(crate) status: Option<StatusCode>,
    /// [`Fault::SendsPastContentLength`]: the declared length, the bytes
    /// yielded so far, and what went past the length.
    pub(crate) declared: Option<u64>,
    pub(crate) yielded: u64,
    pub(crate) excess: Option<Bytes>,
    /// [`Fault::KeepsFirstHead`]: the first head, and whether `replace`
    /// is under way. [`Fault::HintsPinTheHead`]: the head stored last.
    pub(crate) first_head: Option<ResponseHead>,
    /// [`Fault::HintsPinTheHead`]: the head stored when an early hint went
    /// out, which the fault keeps.
    pub(crate) pinned: Option<ResponseHead>,
    pub(crate) replacing: bool,
    /// Written data held back ([`Fault::HoldsWrittenData`],
    /// [`Fault::ReordersWrittenData`]).
    pub(crate) written: Vec<u8>,
    /// The data on its way to the sink comes from `write`.
    pub(crate) writing: bool,
    /// Where the application panicked, if it did.
    pub(crate) panicked: Option<Place>,
    /// `AsyncApplication::call` failed.
    pub(crate) call_failed: bool,
    /// [`Fault::SecondStartWins`]: the head given to the latest `start`.
    pub(crate) latest_head: Option<ResponseHead>,
    /// [`Fault::SwitchRepeatsOutput`]: the last chunk yielded.
    pub(crate) last_chunk: Option<Bytes>,
    /// [`Fault::CallsTwice`]: the copy of the request for the extra call.
    pub(crate) spare: Option<Environ>,
    /// [`Fault::RetriesFailedCall`]: the environ rebuilt for the same
    /// request, for the call after a failed one.
    pub(crate) retry: Option<Environ>,
}

/// One request, as the toy's wrappers and sink see it.
#[derive(Debug)]
pub(crate) struct RequestCtx {
    pub(crate) conn: Arc<Conn>,
    pub(crate) fault: Option<Fault>,
    pub(crate) is_async: bool,
    pub(crate) version: http::Version,
    pub(crate) head_request: bool,
    /// The request carried `TE: trailers`.
    pub(crate) te_trailers: bool,
    pub(crate) persist: bool,
    pub(crate) cancel: Option<Arc<Cancel>>,
    pub(crate) hooks: Mutex<Hooks>,
}

impl RequestCtx {
    /// The response state of this request, with what it can carry
    /// enabled before the application gets its first handle: trailers on
    /// HTTP/1.1 with `TE: trailers`, but not for HEAD (`RGI-TRAILER-7`; a
    /// response framed by length drops them in the sink), `103 Early Hints` on HTTP/1.1 and
    /// never on HTTP/1.0 (`RGI-EARLY-3`).
    pub(crate) fn response_state(&self, method: &http::Method) -> ResponseState {
        let mut state = ResponseState::new(method);
        let http11 = self.version == http::Version::HTTP_11;
        let trailers = !self.head_request
            && match self.fault {
                Some(Fault::TrailersWithoutTe) => http11,
                Some(Fault::TrailersOnHttp10) => self.te_trailers,
                _ => http11 && self.te_trailers,
            };
        if trailers {
            state.enable_trailers();
        }
        let hints = match self.fault {
            Some(Fault::EarlyHintsNeverSent) => false,
            Some(Fault::EarlyHintsOnHttp10) => true,
            _ => http11,
        };
        if hints {
            state.enable_early_hints();
        }
        state
    }

    /// Whether a fault's behaviour is on for this request.
    pub(crate) fn acts(&self, behaviour: Fault) -> bool {
        acts(self.fault, behaviour, self.is_async)
    }

    /// Whether a synchronous application gets the wrapper: only with a
    /// fault, since the conforming toy needs nothing of it.
    /// [`Fault::RetriesFailedCall`]: the environ for a second call after
    /// a failed one, once; `None` without the fault.
    pub(crate) fn retry(&self) -> Option<Environ> {
        if self.fault != Some(Fault::RetriesFailedCall) {
            return None;
        }
        lock(&self.hooks).retry.take()
    }

    pub(crate) fn wraps_sync(&self) -> bool {
        self.fault.is_some()
    }

    pub(crate) fn intercepts(&self) -> bool {
        matches!(
            self.fault,
            Some(
                Fault::SendsHeadEarly
                    | Fault::SendsPastContentLength
                    | Fault::KeepsFirstHead
                    | Fault::HoldsWrittenData
                    | Fault::ReordersWrittenData
                    | Fault::BodyOn204
                    | Fault::WriteIgnoresDisconnect
                    | Fault::SecondStartWins
                    | Fault::ReplaceAfterHeadSendsHead
                    | Fault::EarlyHintsAfterHead
                    | Fault::HintsPinTheHead
            )
        )
    }

    /// Writes body bytes behind the state machine's back, in the
    /// response's framing.
    pub(crate) fn raw_data(&self, bytes: &[u8]) {
        if lock(&self.hooks).framing == Some(OutFraming::Chunked) {
            let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
            framed.extend_from_slice(bytes);
            framed.extend_from_slice(b"\r\n");
            self.raw(&framed);
        } else {
            self.raw(bytes);
        }
    }

    /// Writes bytes behind the state machine's back.
    pub(crate) fn raw(&self, bytes: &[u8]) {
        let _ignored = lock(&self.conn.write).send(bytes);
    }

    /// Applies the chunk faults to a chunk on its way to the state machine.
    pub(crate) fn on_chunk(&self, chunk: &Bytes) {
        if chunk.is_empty() {
            if self.acts(Fault::ZeroChunkOnEmpty) {
                let chunked = lock(&self.hooks).framing == Some(OutFraming::Chunked);
                if chunked && lock(&self.conn.write).head_sent {
                    self.raw(b"0\r\n\r\n");
                }
            }
            return;
        }
        if self.fault == Some(Fault::SendsHttpAfterUpgrade)
            && lock(&self.conn.write).upgrade == UpgradeStage::HandedOver
        {
            // The fault: HTTP data onto the upgraded connection.
            self.raw(chunk);
        }
        let bodiless = lock(&self.hooks).status.is_some_and(|status| {
            status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
        });
        if (self.head_request && self.acts(Fault::BodyOnHead))
            || (bodiless && self.acts(Fault::BodyOn204))
        {
            if lock(&self.conn.write).head_sent {
                self.raw(chunk);
            } else {
                lock(&self.hooks).stash.push(chunk.clone());
            }
        }
        if self.fault == Some(Fault::SwitchRepeatsOutput) {
            lock(&self.hooks).last_chunk = Some(chunk.clone());
        }
        if self.acts(Fault::SendsPastContentLength) {
            let mut hooks = lock(&self.hooks);
            let before = hooks.yielded;
            hooks.yielded += chunk.len() as u64;
            if let Some(declared) = hooks.declared {
                if hooks.yielded > declared {
                    let fits = usize::try_from(declared.saturating_sub(before)).unwrap_or(0);
                    hooks.excess = Some(chunk.slice(fits.min(chunk.len())..));
                }
            }
        }
    }

    /// Notes a panic at `place`; the panic faults take the server down
    /// right here, before anything else happens.
    pub(crate) fn panicked(&self, place: Place, since: Instant) {
        lock(&self.hooks).panicked = Some(place);
        let kills = match (self.fault, place) {
            (Some(Fault::PanicInCallKillsServer), Place::Call)
            | (Some(Fault::PanicInDropKillsServer), Place::Drop) => true,
            // After the head: the response has started, then the server dies.
            (Some(Fault::PanicInBodyKillsServer), Place::Body) => lock(&self.conn.write).head_sent,
            _ => false,
        };
        if kills {
            self.conn.server.kill_since(since);
        }
    }
}
