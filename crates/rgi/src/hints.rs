//! Application hints: what a server may assume to schedule a request well
//! (spec/rgi.md, "Application hints").

/// How an application uses the request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InputUse {
    /// It never reads the input; the server may run it before the body
    /// arrives and discard the body.
    None,
    /// It reads the whole input before doing anything else; the server may
    /// read the body into memory first (up to its own limit) so the
    /// application never blocks on the client.
    Whole,
    /// It reads the input incrementally, possibly while producing output;
    /// the server must not assume anything.
    Streaming,
}

/// What an application promises about itself, so a server can pick between
/// running it inline on an event loop, after pre-reading the body, or on a
/// worker thread (`[RGI-HINT-*]`).
///
/// Hints change scheduling, never meaning: a server may ignore them. The
/// default promises nothing.
///
/// # Examples
///
/// ```
/// use rgi::{Hints, InputUse};
///
/// // A health check: reads no body and never blocks.
/// let hints = Hints::default().with_input(InputUse::None).with_may_block(false);
/// assert!(hints.can_run_inline());
/// assert!(!Hints::default().can_run_inline());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Hints {
    /// How the application uses the request body.
    pub input: InputUse,
    /// Whether the application may block (on I/O, locks, heavy computation)
    /// while producing its response, apart from reading the input.
    pub may_block: bool,
}

impl Hints {
    /// No promises: streaming input, may block.
    pub const CONSERVATIVE: Hints = Hints {
        input: InputUse::Streaming,
        may_block: true,
    };

    /// These hints with `input` changed.
    #[must_use]
    pub const fn with_input(mut self, input: InputUse) -> Self {
        self.input = input;
        self
    }

    /// These hints with `may_block` changed.
    #[must_use]
    pub const fn with_may_block(mut self, may_block: bool) -> Self {
        self.may_block = may_block;
        self
    }

    /// Whether a server with the body already in memory (or no body) may run
    /// the application on a thread that must not block.
    #[must_use]
    pub const fn can_run_inline(self) -> bool {
        !self.may_block && !matches!(self.input, InputUse::Streaming)
    }
}

impl Default for Hints {
    fn default() -> Self {
        Hints::CONSERVATIVE
    }
}
