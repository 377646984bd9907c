//! What the validator reports: a broken clause, the side at fault and the
//! offending value, and what to do about it ([`Policy`]).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use crate::catalogue::{self, Level};

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
/// A violation carries the level of its clause, read from the catalogue:
/// breaking a `SHOULD` or `SHOULD NOT` clause is a *warning*
/// ([`is_warning`](Self::is_warning)), still reported but never a failure
/// (neither [`Policy::Panic`] nor
/// [`TestResponse::assert_valid`](crate::client::TestResponse::assert_valid)
/// fails on it); breaking a `MUST` or `MUST NOT` clause, or a clause the
/// catalogue does not know, is an error.
///
/// # Examples
///
/// ```
/// use rgi_conformance::catalogue::Level;
/// use rgi_conformance::{Side, Violation};
///
/// let violation = Violation::new("RGI-START-2", Side::Application, "started the response twice", "200 OK");
/// assert_eq!(violation.clause(), "RGI-START-2");
/// assert!(!violation.is_warning());
/// assert_eq!(
///     violation.to_string(),
///     "[RGI-START-2] application: started the response twice (offending value: 200 OK)",
/// );
///
/// let untyped = Violation::new("RGI-HEAD-11", Side::Application, "content without a content-type", "200 OK");
/// assert_eq!(untyped.level(), Some(Level::Should));
/// assert!(untyped.is_warning());
/// assert_eq!(
///     untyped.to_string(),
///     "[RGI-HEAD-11] application (warning, SHOULD): content without a content-type (offending value: 200 OK)",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    clause: &'static str,
    level: Option<Level>,
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
            level: level_of(clause),
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

    /// The level of the clause as the catalogue records it; `None` for a
    /// clause the catalogue does not define.
    #[must_use]
    pub fn level(&self) -> Option<Level> {
        self.level
    }

    /// Whether this is only a warning: the clause is a `SHOULD`,
    /// `SHOULD NOT` or `MAY`, which a conforming party may depart from for
    /// a good reason. Violations of absolute clauses, and of clauses the
    /// catalogue does not know, are errors.
    #[must_use]
    pub fn is_warning(&self) -> bool {
        self.level.is_some_and(|level| !level.is_absolute())
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
        write!(f, "[{}] {}", self.clause, self.side)?;
        if let (true, Some(level)) = (self.is_warning(), self.level) {
            write!(f, " (warning, {level})")?;
        }
        write!(f, ": {} (offending value: {})", self.message, self.value)
    }
}

/// The level of `clause` in the built-in catalogue. A catalogue that does
/// not parse (which the kit's tests rule out) leaves every level unknown,
/// so every violation stays an error rather than silently a warning.
fn level_of(clause: &str) -> Option<Level> {
    catalogue::try_clauses()
        .ok()?
        .iter()
        .find(|known| known.id == clause)
        .map(|known| known.level)
}

/// What the validator does with a violation besides recording it in its
/// [`Reports`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Panic at once with the violation's text: for tests, so the failing
    /// assertion points at the call that broke the rule. A warning (see
    /// [`Violation::is_warning`]) does not panic: it is recorded and
    /// emitted as a `tracing` warning, as under [`Policy::Log`].
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
/// reports.report(Violation::new("RGI-HEAD-11", Side::Application, "no content-type", "200 OK"));
/// assert_eq!(reports.clauses(), ["RGI-ENV-1", "RGI-HEAD-11"]);
/// assert_eq!(reports.errors()[0].clause(), "RGI-ENV-1");
/// assert_eq!(reports.warnings()[0].clause(), "RGI-HEAD-11");
/// assert_eq!(reports.take().len(), 2);
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

    /// Whether reporting `violation` panics: under [`Policy::Panic`], for
    /// every violation that is not a warning.
    #[must_use]
    pub fn panics_on(&self, violation: &Violation) -> bool {
        self.policy == Policy::Panic && !violation.is_warning()
    }

    /// Records `violation`, then applies the policy.
    ///
    /// # Panics
    ///
    /// Under [`Policy::Panic`], for every violation that is not a warning:
    /// that is the policy's purpose.
    pub fn report(&self, violation: Violation) {
        let text = violation.to_string();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.push(violation);
        let Some(violation) = seen.last().cloned() else {
            return;
        };
        drop(seen);
        let policy = match self.policy {
            Policy::Panic if violation.is_warning() => Policy::Log,
            policy => policy,
        };
        match policy {
            #[allow(clippy::panic, reason = "the panic policy exists to fail tests")]
            Policy::Panic => panic!("RGI violation: {text}"),
            Policy::Log => tracing::warn!(
                clause = violation.clause(),
                warning = violation.is_warning(),
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

    /// The violations recorded so far that are errors (not warnings),
    /// oldest first.
    #[must_use]
    pub fn errors(&self) -> Vec<Violation> {
        let mut all = self.all();
        all.retain(|violation| !violation.is_warning());
        all
    }

    /// The warnings recorded so far (violations of `SHOULD`, `SHOULD NOT`
    /// and `MAY` clauses), oldest first.
    #[must_use]
    pub fn warnings(&self) -> Vec<Violation> {
        let mut all = self.all();
        all.retain(Violation::is_warning);
        all
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
