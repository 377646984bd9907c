//! How the validator tells a blocking read from a non-blocking poll: the
//! waker `rgi::Input` parks its blocking face with, learnt once. Apart from
//! the input observer so that the request state, which asks for it too,
//! does not depend on the observer.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, RawWakerVTable};

use bytes::Bytes;
use rgi::{AsyncSource, Input};

/// The vtable of the waker `rgi::Input` parks its blocking face with,
/// learnt once by reading an input over a source that records it.
///
/// A poll of the observer with this waker is a blocking read; any other
/// waker means the non-blocking face. `None` if it could not be learnt,
/// which only switches the blocking-read check off.
pub(crate) fn park_vtable() -> Option<RawWakerVTable> {
    static PARK: OnceLock<Option<RawWakerVTable>> = OnceLock::new();
    *PARK.get_or_init(|| {
        let seen = Arc::new(std::sync::Mutex::new(None));
        let mut probe = Input::from_async(Probe(Arc::clone(&seen)), Some(1));
        let read = probe.read(&mut [0; 1]).ok()?;
        let vtable = *seen.lock().ok()?;
        (read == 1).then_some(vtable).flatten()
    })
}

/// Records the waker it is polled with and delivers one byte.
struct Probe(Arc<std::sync::Mutex<Option<RawWakerVTable>>>);

impl AsyncSource for Probe {
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _max: usize,
    ) -> Poll<io::Result<Bytes>> {
        if let Ok(mut seen) = self.0.lock() {
            *seen = Some(*cx.waker().vtable());
        }
        Poll::Ready(Ok(Bytes::from_static(b"x")))
    }
}
