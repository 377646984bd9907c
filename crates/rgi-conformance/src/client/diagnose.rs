//! Diagnosis by replay: when an application fails a request before its
//! head, the clients run the request again once per circumstance the spec
//! says an application must not depend on, changing only that one; if a
//! replay then succeeds, the failure came from depending on it, and the
//! original response names the circumstance's clause. Some circumstances
//! are judged on successful requests too ([`Variation`]): the request is
//! replayed unchanged and with the circumstance changed, and an answer
//! that repeats itself but changes with the circumstance depends on it.

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
        Some(Violation::new(
            clause_of(self.check())?,
            Side::Application,
            format!(
                "the application failed before its head, and succeeded when replayed with {}: it depends on a circumstance the spec lets a server leave out",
                self.what()
            ),
            error.to_owned(),
        ))
    }
}

/// A circumstance a successful answer must not depend on, judged by
/// replaying the request twice: unchanged (the control) and with the
/// circumstance changed (the variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variation {
    /// The request's connection-specific fields taken away (`RGI-HDR-7`).
    ConnectionFields,
    /// The offload jobs run one at a time on one thread (`RGIA-OFFLOAD-11`).
    SerialOffload,
}

impl Variation {
    /// The validator's check that reports this variation.
    fn check(self) -> &'static str {
        match self {
            Variation::ConnectionFields => "hop_by_hop_relied_on",
            Variation::SerialOffload => "offload_jobs_interdependent",
        }
    }

    /// What the variant changed and what depending on it means.
    fn what(self) -> &'static str {
        match self {
            Variation::ConnectionFields => {
                "the application answered differently when the request's connection-specific fields (Connection, Keep-Alive, Proxy-Connection and the fields Connection names) were taken away, and the same when the request was repeated unchanged: its answer depends on fields a server may remove (RGI-HDR-6)"
            }
            Variation::SerialOffload => {
                "the application answered differently when its offload jobs ran one at a time on one thread, as a conforming offload service may run them, and the same when the request was repeated unchanged: one job waits for another, or assumes they run side by side"
            }
        }
    }

    /// The diagnosis: `original` is the answer the test saw, `control` the
    /// same request replayed, `variant` the request with this variation.
    /// An answer (status, content, whether it completed) that repeats
    /// itself unchanged but differs in the variant depends on the
    /// variation; one that changes anyway (a clock, a counter) is not
    /// judged.
    pub(crate) fn judge(
        self,
        original: &TestResponse,
        control: &TestResponse,
        variant: &TestResponse,
    ) -> Option<Violation> {
        let answer = |response: &TestResponse| {
            (
                response.status,
                response.body.clone(),
                response.ending.is_complete(),
            )
        };
        if !original.ending.is_complete()
            || answer(original) != answer(control)
            || answer(variant) == answer(original)
        {
            return None;
        }
        Some(Violation::new(
            clause_of(self.check())?,
            Side::Application,
            self.what(),
            format!(
                "as sent: {} with {} bytes of content; varied: {} with {} bytes, {}",
                original.status,
                original.body.len(),
                variant.status,
                variant.body.len(),
                if variant.ending.is_complete() {
                    "complete"
                } else {
                    "not complete"
                }
            ),
        ))
    }
}

/// The clause the validator's check named `check` reports.
fn clause_of(check: &str) -> Option<&'static str> {
    CHECKS
        .iter()
        .find(|candidate| candidate.name() == check)
        .and_then(|found| found.clauses().first().copied())
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
