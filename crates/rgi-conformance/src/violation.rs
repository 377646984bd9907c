//! What the validator reports: a broken clause, the side at fault and the
//! offending value, and what to do about it ([`Policy`]).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// Which side of the interface broke a clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The server (or the middleware acting as one) handed the application
    /// something the spec forbids.
    Server,
    /// The application (or the middleware acting as one) did something the
    /// spec forbids.
    Application,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Server => "server",
            Side::Application => "application",
        })
    }
}

/// One broken rule, as the validator saw it.
///
/// # Examples
///
/// ```
/// use rgi_conformance::{Side, Violation};
///
/// let violation = Violation::new("RGI-START-2", Side::Application, "started the response twice", "200 OK");
/// assert_eq!(violation.clause(), "RGI-START-2");
/// assert_eq!(
///     violation.to_string(),
///     "[RGI-START-2] application: started the response twice (offending value: 200 OK)",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    clause: &'static str,
    side: Side,
    message: String,
    value: String,
}

impl Violation {
    /// A violation of `clause` by `side`: `message` says what went wrong and
    /// `value` shows the offending value (usually its `Debug` form).
    pub fn new(
        clause: &'static str,
        side: Side,
        message: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Violation {
            clause,
            side,
            message: message.into(),
            value: value.into(),
        }
    }

    /// The clause ID, such as `RGI-START-2` or `RGIA-SWITCH-4`.
    #[must_use]
    pub fn clause(&self) -> &'static str {
        self.clause
    }

    /// The side at fault.
    #[must_use]
    pub fn side(&self) -> Side {
        self.side
    }

    /// What went wrong, in a sentence.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The offending value.
    #[must_use]
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {} (offending value: {})",
            self.clause, self.side, self.message, self.value
        )
    }
}

/// What the validator does with a violation besides recording it in its
/// [`Reports`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Panic at once with the violation's text: for tests, so the failing
    /// assertion points at the call that broke the rule.
    #[default]
    Panic,
    /// Emit a `tracing` warning and carry on: for staging servers.
    Log,
    /// Only record it, for the caller to inspect (the test client does this).
    Collect,
}

/// A shared, cloneable list of the violations seen so far.
///
/// # Examples
///
/// ```
/// use rgi_conformance::{Policy, Reports, Side, Violation};
///
/// let reports = Reports::new(Policy::Collect);
/// reports.report(Violation::new("RGI-ENV-1", Side::Server, "no method", "-"));
/// assert_eq!(reports.clauses(), ["RGI-ENV-1"]);
/// assert_eq!(reports.take().len(), 1);
/// assert!(reports.is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Reports {
    policy: Policy,
    seen: Arc<Mutex<Vec<Violation>>>,
}

impl Reports {
    /// An empty list that applies `policy` to each violation reported.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Reports {
            policy,
            seen: Arc::default(),
        }
    }

    /// The policy applied to each violation.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Records `violation`, then applies the policy.
    ///
    /// # Panics
    ///
    /// Under [`Policy::Panic`], always: that is the policy's purpose.
    pub fn report(&self, violation: Violation) {
        let text = violation.to_string();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.push(violation);
        let Some(violation) = seen.last().cloned() else {
            return;
        };
        drop(seen);
        match self.policy {
            #[allow(clippy::panic, reason = "the panic policy exists to fail tests")]
            Policy::Panic => panic!("RGI violation: {text}"),
            Policy::Log => tracing::warn!(
                clause = violation.clause(),
                side = %violation.side(),
                value = violation.value(),
                "RGI violation: {}",
                violation.message()
            ),
            Policy::Collect => {}
        }
    }

    /// A copy of the violations recorded so far, oldest first.
    #[must_use]
    pub fn all(&self) -> Vec<Violation> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Removes and returns the violations recorded so far.
    #[must_use]
    pub fn take(&self) -> Vec<Violation> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The clause IDs recorded so far, oldest first.
    #[must_use]
    pub fn clauses(&self) -> Vec<&'static str> {
        self.all().iter().map(Violation::clause).collect()
    }

    /// Whether nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}
