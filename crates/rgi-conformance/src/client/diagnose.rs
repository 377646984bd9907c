//! Diagnosis by replay: when an application fails a request before its
//! head, the clients run the request again once per circumstance the spec
//! says an application must not depend on, changing only that one; if a
//! replay then succeeds, the failure came from depending on it, and the
//! original response names the circumstance's clause.

use super::response::{Ending, TestResponse};
use crate::validate::CHECKS;
use crate::{Side, Violation};

/// One circumstance a replay changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// A body without a declared length gets one (same bytes).
    DeclaredLength,
    /// A synchronous request gets an `rgi_async::Capabilities` value.
    Capabilities,
    /// The readiness capability is offered.
    Readiness,
    /// The after-response capability is offered.
    AfterResponse,
    /// The request asks for an upgrade, so the upgrade capability is
    /// offered.
    Upgrade,
    /// The request carries an `rgi::ConnectProtocol` extension.
    ConnectProtocol,
    /// The server declares every optional feature but lifespan, and the
    /// request allows trailers (`TE: trailers`).
    Features,
}

impl Change {
    /// The validator's check that a diagnosis of this change reports.
    fn check(self) -> &'static str {
        match self {
            Change::DeclaredLength => "content_length_assumed",
            Change::Capabilities | Change::Readiness | Change::AfterResponse | Change::Upgrade => {
                "capability_assumed"
            }
            Change::ConnectProtocol => "extension_assumed",
            Change::Features => "feature_assumed",
        }
    }

    /// What the replay changed, for the violation's message.
    fn what(self) -> &'static str {
        match self {
            Change::DeclaredLength => {
                "the same body with a declared length (content_length() known)"
            }
            Change::Capabilities => "an rgi_async::Capabilities value in the environ",
            Change::Readiness => "the readiness capability offered",
            Change::AfterResponse => "the after-response capability offered",
            Change::Upgrade => "an upgrade asked for (the upgrade capability offered)",
            Change::ConnectProtocol => "an rgi::ConnectProtocol extension in the environ",
            Change::Features => {
                "the optional features of RGI 1.2 declared and deliverable (request and response trailers, early hints)"
            }
        }
    }

    /// The violation a successful replay with this change diagnoses;
    /// `error` is the original failure.
    pub(crate) fn violation(self, error: &str) -> Option<Violation> {
        let clause = CHECKS
            .iter()
            .find(|check| check.name() == self.check())
            .and_then(|check| check.clauses().first().copied())?;
        Some(Violation::new(
            clause,
            Side::Application,
            format!(
                "the application failed before its head, and succeeded when replayed with {}: it depends on a circumstance the spec lets a server leave out",
                self.what()
            ),
            error.to_owned(),
        ))
    }
}

/// Whether `response` is a failure diagnosis looks into: the application
/// failed (an error or a panic) before its head.
pub(crate) fn failed(response: &TestResponse) -> Option<String> {
    match &response.ending {
        Ending::FailedBeforeHead { error } => Some(error.clone()),
        _ => None,
    }
}

/// Whether a replay went through: the response went out whole and the
/// application broke no clause on the way (the server-side findings are
/// those of the circumstance the replay put in, not the application's).
pub(crate) fn succeeded(response: &TestResponse) -> bool {
    response.ending.is_complete()
        && !response.status.is_server_error()
        && response
            .violations
            .iter()
            .all(|violation| violation.side() != Side::Application || violation.is_warning())
}
