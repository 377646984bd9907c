//! The one small trait a server author implements to run the suite.

use std::net::SocketAddr;
use std::time::Duration;

use rgi::{BoxError, Features};
use serde::Serialize;

use super::Probe;

/// What a server claims to support beyond the synchronous interface. The
/// suite runs the cases of a capability only if it is claimed, and reports
/// the others as skipped, never as passed.
///
/// # Examples
///
/// ```
/// use rgi_conformance::suite::{Claims, Limits};
///
/// let claims = Claims::synchronous();
/// assert!(!claims.asynchronous);
/// let claims = Claims::asynchronous().with_readiness().with_after_response();
/// assert!(claims.readiness && claims.after_response && !claims.upgrade);
/// assert_eq!(claims.limits, Limits::RECOMMENDED);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Claims {
    /// Runs asynchronous applications, with offload and the switch to
    /// synchronous processing (both mandatory for an asynchronous server,
    /// `RGIA-CAP`).
    pub asynchronous: bool,
    /// Offers readiness waits on the application's descriptors.
    pub readiness: bool,
    /// Offers after-response tasks.
    pub after_response: bool,
    /// Offers the upgrade to another protocol on HTTP/1.1.
    pub upgrade: bool,
    /// The limits the server enforces on requests (`RGI-LIMIT-*`), as
    /// configured for the suite's run: the limit cases probe with values
    /// just past them.
    pub limits: Limits,
    /// The optional features of RGI 1.2 the server declares in the
    /// `ServerInfo` it serves the probe with (`RGI-FEAT-1`): the cases of
    /// a feature run only when it is claimed here, and a case compares
    /// this with what the probe's environ says.
    #[serde(serialize_with = "features")]
    pub features: Features,
}

/// Writes the declared features as one flag per feature.
fn features<S: serde::Serializer>(features: &Features, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct as _;
    let mut out = serializer.serialize_struct("Features", 4)?;
    out.serialize_field("request_trailers", &features.request_trailers())?;
    out.serialize_field("response_trailers", &features.response_trailers())?;
    out.serialize_field("early_hints", &features.early_hints())?;
    out.serialize_field("lifespan", &features.lifespan())?;
    out.end()
}

impl Claims {
    /// A server of the synchronous interface only.
    #[must_use]
    pub const fn synchronous() -> Self {
        Claims {
            asynchronous: false,
            readiness: false,
            after_response: false,
            upgrade: false,
            limits: Limits::RECOMMENDED,
            features: Features::none(),
        }
    }

    /// A server of asynchronous applications (offload and the switch
    /// included), with no optional capability yet.
    #[must_use]
    pub const fn asynchronous() -> Self {
        Claims {
            asynchronous: true,
            ..Claims::synchronous()
        }
    }

    /// Also claims readiness waits.
    #[must_use]
    pub const fn with_readiness(mut self) -> Self {
        self.readiness = true;
        self
    }

    /// Also claims after-response tasks.
    #[must_use]
    pub const fn with_after_response(mut self) -> Self {
        self.after_response = true;
        self
    }

    /// Also claims the upgrade.
    #[must_use]
    pub const fn with_upgrade(mut self) -> Self {
        self.upgrade = true;
        self
    }

    /// Declares the limits the server enforces in place of the
    /// recommended defaults.
    #[must_use]
    pub const fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Claims the optional features the server declares to the probe
    /// (`ServerInfo::with_features`); by default none.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi::Features;
    /// use rgi_conformance::suite::{Claims, Needs};
    ///
    /// let claims = Claims::synchronous().with_features(Features::none().with_lifespan(true));
    /// assert!(Needs::Lifespan.missing_from(claims).is_none());
    /// assert!(Needs::EarlyHints.missing_from(claims).is_some());
    /// ```
    #[must_use]
    pub const fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }
}

/// The limits a server enforces on requests (spec/rgi.md §12.2), as it
/// declares them to the suite: each limit case sends a request just past
/// one of them. A timing case is skipped, never passed, when its time is
/// longer than [`Limits::LONGEST_TIMED`], so that a run stays short; a
/// server configures short times for its suite run to have them judged.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use rgi_conformance::suite::{Claims, Limits};
///
/// let limits = Limits::RECOMMENDED
///     .with_target(4096)
///     .with_head_time(Duration::from_secs(1));
/// let claims = Claims::synchronous().with_limits(limits);
/// assert_eq!(claims.limits.target, 4096);
/// assert_eq!(claims.limits.header_fields, 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Limits {
    /// The longest request target accepted, in bytes (`RGI-LIMIT-2`).
    pub target: usize,
    /// The largest header section accepted, in bytes: the field lines
    /// with their line endings, without the request line
    /// (`RGI-LIMIT-3`).
    pub header_size: usize,
    /// The most field lines accepted in one head (`RGI-LIMIT-3`).
    pub header_fields: usize,
    /// The largest request body accepted, in bytes (`RGI-LIMIT-4`).
    pub body: u64,
    /// The time a request head may take to arrive (`RGI-LIMIT-5`).
    #[serde(rename = "head_time_ms", serialize_with = "as_millis")]
    pub head_time: Duration,
    /// The time a kept connection may stay idle between requests
    /// (`RGI-LIMIT-6`).
    #[serde(rename = "idle_time_ms", serialize_with = "as_millis")]
    pub idle_time: Duration,
    /// The time a request body may stall while the application waits
    /// for it (`RGI-LIMIT-7`).
    #[serde(rename = "body_time_ms", serialize_with = "as_millis")]
    pub body_time: Duration,
}

/// Writes a time as whole milliseconds, the unit of the reports' other
/// durations (`duration_ms`), instead of serde's `{secs, nanos}` pair.
fn as_millis<S: serde::Serializer>(time: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(time.as_millis())
}

impl Limits {
    /// The defaults spec/rgi.md §12.2 recommends.
    pub const RECOMMENDED: Limits = Limits {
        target: 8 * 1024,
        header_size: 64 * 1024,
        header_fields: 100,
        body: 64 * 1024 * 1024,
        head_time: Duration::from_secs(30),
        idle_time: Duration::from_secs(60),
        body_time: Duration::from_secs(30),
    };

    /// The longest time limit the suite waits out; a timing case whose
    /// limit is longer is skipped.
    pub const LONGEST_TIMED: Duration = Duration::from_secs(10);

    /// With another target limit.
    #[must_use]
    pub const fn with_target(mut self, bytes: usize) -> Self {
        self.target = bytes;
        self
    }

    /// With other header section limits: size in bytes and field lines.
    #[must_use]
    pub const fn with_header_section(mut self, bytes: usize, fields: usize) -> Self {
        self.header_size = bytes;
        self.header_fields = fields;
        self
    }

    /// With another body limit.
    #[must_use]
    pub const fn with_body(mut self, bytes: u64) -> Self {
        self.body = bytes;
        self
    }

    /// With another head-read time.
    #[must_use]
    pub const fn with_head_time(mut self, time: Duration) -> Self {
        self.head_time = time;
        self
    }

    /// With another idle keep-alive time.
    #[must_use]
    pub const fn with_idle_time(mut self, time: Duration) -> Self {
        self.idle_time = time;
        self
    }

    /// With another stalled-body time.
    #[must_use]
    pub const fn with_body_time(mut self, time: Duration) -> Self {
        self.body_time = time;
        self
    }
}

/// A server the suite can judge: starts a fresh server for one case.
///
/// A synchronous server serves the probe through [`rgi::Application`]; an
/// asynchronous one through [`rgi_async::AsyncApplication`]. [`Probe`]
/// implements both.
pub trait ServerUnderTest: Send + Sync {
    /// The server's name, for reports.
    fn name(&self) -> String;

    /// The capabilities it claims.
    fn claims(&self) -> Claims;

    /// Starts the server with `app` on an unused port of 127.0.0.1 and
    /// returns once it accepts connections.
    ///
    /// The application is mounted at the root (its `script_name()` is
    /// empty), serves plain HTTP/1.1 (no TLS), and any configuration that
    /// would change what the spec's defaults say (a configured server name,
    /// trusted proxies, a debugging mode that shows error details) is off.
    ///
    /// # Errors
    ///
    /// If the server cannot start; the case then fails.
    fn start(&self, app: Probe) -> Result<Box<dyn RunningServer>, BoxError>;
}

/// A server started for one case.
pub trait RunningServer: Send {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;

    /// Stops it: closes the listener and its connections, and returns once
    /// the server's threads or tasks have ended.
    ///
    /// # Errors
    ///
    /// If the server did not stop cleanly; the case then fails.
    fn stop(self: Box<Self>) -> Result<(), BoxError>;
}
