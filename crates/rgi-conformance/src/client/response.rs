//! What a test gets back: the response as the client saw it, how it ended
//! and what the validator found.

use std::borrow::Cow;
use std::fmt::Write as _;

use bytes::Bytes;
use http::header::AsHeaderName;
use http::{HeaderMap, StatusCode};

use super::upgrade::UpgradeTranscript;
use crate::Violation;
use crate::rt::Outcome;

/// How a request ended, as the client's server side saw it (the failure
/// rules of spec/rgi.md, `RGI-FAIL-*`).
///
/// Errors are kept as text: they are the application's, for the test to
/// read, and never reach an HTTP client (`RGI-FAIL-4`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// The response went out whole.
    Complete {
        /// Body bytes produced, counted even for `HEAD`, where none go out.
        body_bytes: u64,
    },
    /// The application failed before the head was sent: the client
    /// answered a bare `500` (`RGI-FAIL-3`, `RGI-FAIL-7`).
    FailedBeforeHead {
        /// The application's error.
        error: String,
    },
    /// The application failed after the head was sent: a real server
    /// would end the response abnormally (`RGI-FAIL-5`), so the body is
    /// truncated; for an upgraded request, the body failed after the `101`.
    FailedAfterHead {
        /// The application's error.
        error: String,
    },
    /// The connection failed (only when an upgrade hand-over failed: the
    /// in-process transport itself never does).
    Disconnected {
        /// What failed.
        error: String,
    },
    /// The application accepted an upgrade, the `101` went out and its
    /// body ended normally after talking over the connection.
    Upgraded,
    /// The asynchronous body stayed pending and nothing woke it within
    /// the client's stall timeout: the client dropped it instead of
    /// hanging (a bare `500` went out if the head had not).
    Stalled {
        /// What the client waited for, and how long.
        error: String,
    },
    /// The request never reached the application: the client answered
    /// `400` as a server must (see
    /// [`ClientError::Rejected`](super::ClientError::Rejected)).
    Rejected {
        /// Why, naming the offending value.
        reason: String,
    },
}

impl Ending {
    pub(crate) fn from_outcome(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Complete { body_bytes } => Ending::Complete {
                body_bytes: *body_bytes,
            },
            Outcome::FailedBeforeHead { error } => Ending::FailedBeforeHead {
                error: error.to_string(),
            },
            Outcome::FailedAfterHead { error } => Ending::FailedAfterHead {
                error: error.to_string(),
            },
            Outcome::Disconnected { error } => Ending::Disconnected {
                error: error.to_string(),
            },
            Outcome::Stalled { waited } => Ending::Stalled {
                error: format!("the body was pending and nothing woke it for {waited:?}"),
            },
        }
    }

    /// Whether the application's response went out whole (an upgrade
    /// counts; a request the client rejected does not).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        matches!(self, Ending::Complete { .. } | Ending::Upgraded)
    }

    /// The application's error, for the failure variants, or why the
    /// request was rejected.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        match self {
            Ending::FailedBeforeHead { error }
            | Ending::FailedAfterHead { error }
            | Ending::Disconnected { error }
            | Ending::Stalled { error }
            | Ending::Rejected { reason: error } => Some(error),
            Ending::Complete { .. } | Ending::Upgraded => None,
        }
    }
}

/// The response to one request run by a test client.
///
/// RGI 1.0 has no trailers (spec/rgi.md leaves them out of scope), so
/// there is no trailer field: a response is a head and a body.
///
/// # Examples
///
/// ```
/// use http::{header, HeaderValue, StatusCode};
/// use rgi::ResponseHead;
/// use rgi_conformance::client::{Ending, TestClient};
///
/// let client = TestClient::new(rgi::from_fn(|_environ, start| {
///     start.start(
///         ResponseHead::new(StatusCode::ACCEPTED)
///             .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
///     )?;
///     Ok(rgi::from_iter(["queued ", "as #7"]))
/// }));
/// let response = client.get("/jobs")?;
/// assert_eq!(response.status, StatusCode::ACCEPTED);
/// assert_eq!(response.text(), "queued as #7");
/// assert_eq!(response.chunks, ["queued ", "as #7"]);
/// assert_eq!(response.ending, Ending::Complete { body_bytes: 12 });
/// assert!(response.violations.is_empty());
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TestResponse {
    /// The status sent: the application's, `500` when it failed before the
    /// head, `101` for an accepted upgrade.
    pub status: StatusCode,
    /// The header fields sent, as the application produced them (the
    /// in-process transport adds no `date` or framing fields).
    pub headers: HeaderMap,
    /// The body bytes sent, joined (empty for `HEAD`).
    pub body: Bytes,
    /// The non-empty chunks as they reached the transport, to assert
    /// streaming.
    pub chunks: Vec<Bytes>,
    /// How the request ended.
    pub ending: Ending,
    /// What the validator reported during this request, oldest first:
    /// errors and warnings (see [`Violation::is_warning`]).
    pub violations: Vec<Violation>,
    /// Whether an asynchronous body switched to synchronous processing.
    pub switched: bool,
    /// How many after-response tasks ran (asynchronous client; they have
    /// all finished when the response is returned).
    pub after_tasks_ran: usize,
    /// How many offload jobs the application started (asynchronous
    /// client).
    pub offload_jobs: usize,
    /// What went over the connection after an accepted upgrade.
    pub upgrade: Option<UpgradeTranscript>,
    /// What the application wrote to its error stream (`Environ::errors_mut`).
    pub errors_output: String,
    /// The trailer section that reached the transport after the body, when
    /// the request's features made trailers deliverable
    /// ([`TestRequest::features`](super::TestRequest::features)).
    pub trailers: Option<HeaderMap>,
    /// The `103 Early Hints` that reached the transport, in order.
    pub early_hints: Vec<HeaderMap>,
}

impl TestResponse {
    /// The body as text; invalid UTF-8 becomes U+FFFD (use
    /// [`body`](Self::body) for the bytes).
    #[must_use]
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The first value of header `name` as text; `None` when absent or not
    /// visible ASCII (use [`headers`](Self::headers) for the bytes).
    #[must_use]
    pub fn header<K: AsHeaderName>(&self, name: K) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The clause IDs of the violations, oldest first.
    #[must_use]
    pub fn clauses(&self) -> Vec<&'static str> {
        self.violations.iter().map(Violation::clause).collect()
    }

    /// The violations of absolute (`MUST`, `MUST NOT`) clauses, oldest
    /// first: what [`assert_valid`](Self::assert_valid) fails on.
    pub fn errors(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(|violation| !violation.is_warning())
    }

    /// The violations of `SHOULD`, `SHOULD NOT` and `MAY` clauses, oldest
    /// first: reported, but no failure.
    pub fn warnings(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(|violation| violation.is_warning())
    }

    /// Whether the validator reported `clause` during this request.
    #[must_use]
    pub fn violated(&self, clause: &str) -> bool {
        self.violations
            .iter()
            .any(|violation| violation.clause() == clause)
    }

    /// Asserts that the validator reported no error: no violation of a
    /// `MUST` or `MUST NOT` clause. Warnings (violations of `SHOULD`
    /// clauses, such as a missing `content-type`, `RGI-HEAD-11`) do not
    /// fail it; they stay in [`violations`](Self::violations) and in the
    /// message of any failure.
    ///
    /// # Panics
    ///
    /// When there is an error; the message lists every violation with its
    /// clause, level, side and offending value.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::StatusCode;
    /// use rgi::ResponseHead;
    /// use rgi_conformance::client::TestClient;
    ///
    /// // No content-type: a SHOULD (RGI-HEAD-11), so a warning only.
    /// let client = TestClient::new(rgi::from_fn(|_environ, start| {
    ///     start.start(ResponseHead::new(StatusCode::OK))?;
    ///     Ok(bytes::Bytes::from_static(b"untyped"))
    /// }));
    /// let response = client.get("/")?;
    /// response.assert_valid();
    /// assert_eq!(response.clauses(), ["RGI-HEAD-11"]);
    /// assert_eq!(response.warnings().count(), 1);
    /// assert_eq!(response.errors().count(), 0);
    /// # Ok::<(), rgi_conformance::client::ClientError>(())
    /// ```
    #[track_caller]
    pub fn assert_valid(&self) -> &Self {
        if self.errors().next().is_some() {
            self.fail("the validator reported violations of MUST clauses");
        }
        self
    }

    /// Asserts that the response is a success (2xx), went out whole and
    /// broke no rule: the usual first line of an application test.
    ///
    /// # Panics
    ///
    /// When the status is not 2xx, the response did not complete, or the
    /// validator reported a violation; the message shows the status, how
    /// the response ended, the start of the body and every violation.
    #[track_caller]
    pub fn assert_ok_and_valid(&self) -> &Self {
        if !self.status.is_success() {
            self.fail("the status is not a success");
        }
        if !self.ending.is_complete() {
            self.fail("the response did not complete");
        }
        self.assert_valid()
    }

    #[track_caller]
    #[allow(clippy::panic, reason = "the assertion helpers exist to fail tests")]
    fn fail(&self, what: &str) -> ! {
        panic!("{what}\n{}", self.summary());
    }

    /// A multi-line summary for assertion messages.
    fn summary(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "status: {}", self.status);
        let _ = writeln!(text, "ending: {:?}", self.ending);
        let shown: String = self.text().chars().take(200).collect();
        let _ = writeln!(text, "body ({} bytes): {shown:?}", self.body.len());
        if self.violations.is_empty() {
            text.push_str("violations: none\n");
        } else {
            let _ = writeln!(text, "violations ({}):", self.violations.len());
            for violation in &self.violations {
                let _ = writeln!(text, "  - {violation}");
            }
        }
        if !self.errors_output.is_empty() {
            let _ = writeln!(text, "error stream: {:?}", self.errors_output);
        }
        text
    }
}
