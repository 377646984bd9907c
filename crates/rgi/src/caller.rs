//! Identities for the callers of an application, so that a second call
//! for one response can be told from the first.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// An identity, unique in the process, for one caller of applications:
/// typically a validator or a middleware that wants to see whether it is
/// called twice for the same response ([`StartResponse::record_call`]).
///
/// Servers never need one; they pay nothing for it.
///
/// [`StartResponse::record_call`]: crate::StartResponse::record_call
///
/// # Examples
///
/// ```
/// use rgi::CallerId;
///
/// let (a, b) = (CallerId::new(), CallerId::new());
/// assert_ne!(a, b);
/// assert_eq!(a, a.clone());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallerId(NonZeroU64);

impl CallerId {
    /// A new identity, different from every other made in this process
    /// (for the first 2^64 − 1 of them).
    #[must_use]
    pub fn new() -> Self {
        static MADE: AtomicU64 = AtomicU64::new(0);
        CallerId(NonZeroU64::MIN.saturating_add(MADE.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Default for CallerId {
    fn default() -> Self {
        CallerId::new()
    }
}

/// The callers that recorded a call on one response. Two slots cover a
/// validator on each side of an adapter; further callers go untracked
/// rather than risk calling a first call a second one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CallRecord([Option<CallerId>; 2]);

impl CallRecord {
    /// Records `caller`; `false` when it had been recorded before.
    pub(crate) fn record(&mut self, caller: CallerId) -> bool {
        for slot in &mut self.0 {
            match slot {
                Some(seen) if *seen == caller => return false,
                Some(_) => {}
                None => {
                    *slot = Some(caller);
                    return true;
                }
            }
        }
        true
    }
}
