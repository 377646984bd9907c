//! [`AccessLog`]: one `tracing` event per request, written when the
//! response is gone.

use std::fmt::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::header::{REFERER, USER_AGENT};
use http::{HeaderMap, Method, StatusCode, Version};

use crate::middleware::{Ending, Incoming, Middleware, Outcome};
use crate::proxy::ForwardedClient;

/// The `tracing` target of every access-log event, to route or filter them
/// apart from other logs.
pub const ACCESS_LOG_TARGET: &str = "rgi_middleware::access";

/// Logs every request as one `tracing` event at `INFO` level, with target
/// [`ACCESS_LOG_TARGET`], when the response has been dropped.
///
/// The event carries the fields `method`, `target` (path and query as
/// received), `status` (`0` when no head was ever stored), `bytes` (body
/// bytes handed towards the server, including bytes the server sent from a
/// file body by platform transfer; `0` for `HEAD`, `204` and `304`, whose
/// bodies the server discards), `duration_us` (from the request to the
/// drop of the response), `ending` (`complete`, `failed` or `aborted`) and
/// `remote` (the client's IP: the one a trusted proxy named, when
/// [`ProxyHeaders`](crate::ProxyHeaders) is in front, else the peer's; or
/// `-`). Text from the request (target, `Referer`, `User-Agent`) is
/// escaped in the log line (`\"`, `\\`, `\xHH` for anything not printable
/// ASCII), so a client cannot forge lines. With [`LogFormat::Common`] or
/// [`LogFormat::Combined`] the event's message is also the classic log
/// line.
///
/// Written in [`Middleware::on_drop`], so a streamed response is logged
/// with every byte it sent, and an aborted or failed one is logged too,
/// with what it sent before it stopped. The body passes through untouched
/// ([`BodyAccess::PassThrough`](crate::BodyAccess)): the file body is
/// forwarded and `sendfile` still works.
///
/// # Examples
///
/// ```
/// use rgi_middleware::{AccessLog, LogFormat, Middleware};
///
/// let app = rgi::from_fn(|_environ, start: &mut rgi::StartResponse<'_>| {
///     start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
///     Ok(String::from("hello"))
/// });
/// let logged = AccessLog::new().format(LogFormat::Combined).wrap(app);
/// # let response = rgi_conformance::client::TestClient::new(logged).get("/")?;
/// # response.assert_ok_and_valid();
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessLog {
    format: LogFormat,
}

/// The message of each access-log event ([`AccessLog::format`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogFormat {
    /// Structured fields only; the message is `request`.
    #[default]
    Fields,
    /// The fields, and the Common Log Format line as the message:
    /// `host - - [10/Oct/2000:13:55:36 +0000] "GET /a HTTP/1.1" 200 2326`.
    Common,
    /// The Common line followed by the quoted `Referer` and `User-Agent`.
    Combined,
}

impl AccessLog {
    /// An access log with structured fields only.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the message format.
    #[must_use]
    pub fn format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }
}

/// What one request's event needs, taken from the environ before the inner
/// application owns it.
#[derive(Debug)]
pub struct AccessState {
    started: Instant,
    received: SystemTime,
    method: Method,
    target: String,
    version: Version,
    remote: Option<String>,
    referer: Option<String>,
    user_agent: Option<String>,
}

impl Middleware for AccessLog {
    type State = AccessState;

    fn on_request(&self, request: &mut Incoming<'_>) -> AccessState {
        let environ = request.environ();
        let uri = environ.uri();
        let target = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let combined = self.format == LogFormat::Combined;
        AccessState {
            started: Instant::now(),
            received: SystemTime::now(),
            method: environ.method().clone(),
            target,
            version: environ.version(),
            // The client a trusted proxy named (`ProxyHeaders` in front),
            // else the peer.
            remote: environ
                .extension::<ForwardedClient>()
                .map(|client| client.ip)
                .or_else(|| environ.remote_addr().map(|addr| addr.ip()))
                .map(|ip| ip.to_string()),
            referer: combined
                .then(|| field(environ.headers(), REFERER))
                .flatten(),
            user_agent: combined
                .then(|| field(environ.headers(), USER_AGENT))
                .flatten(),
        }
    }

    fn on_drop(&self, state: AccessState, mut outcome: Outcome) {
        let duration = state.started.elapsed();
        // What a HEAD or bodiless response produced, the server discarded:
        // nothing of it was sent.
        if state.method == Method::HEAD
            || outcome.status.is_some_and(|status| {
                status.is_informational()
                    || status == StatusCode::NO_CONTENT
                    || status == StatusCode::NOT_MODIFIED
            })
        {
            outcome.body_bytes = 0;
        }
        let status = outcome.status.map_or(0, |status| status.as_u16());
        let ending = match outcome.ending {
            Ending::Complete => "complete",
            Ending::Failed => "failed",
            _ => "aborted",
        };
        let remote = state.remote.as_deref().unwrap_or("-");
        let duration_us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let line = match self.format {
            LogFormat::Fields => None,
            LogFormat::Common | LogFormat::Combined => {
                Some(clf_line(&state, &outcome, self.format))
            }
        };
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            method = %state.method,
            target = %state.target,
            status,
            bytes = outcome.body_bytes,
            duration_us,
            ending,
            remote,
            "{}",
            line.as_deref().unwrap_or("request"),
        );
    }
}

/// A header field as printable text for the log: non-visible bytes and the
/// quote and backslash escaped, so a client cannot forge log lines.
fn field(headers: &HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers.get(name).map(|value| escape(value.as_bytes()))
}

fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out
}

fn clf_line(state: &AccessState, outcome: &Outcome, format: LogFormat) -> String {
    let mut line = String::with_capacity(128);
    let status = outcome
        .status
        .map_or_else(|| String::from("-"), |status| status.as_u16().to_string());
    let bytes = if outcome.body_bytes == 0 {
        String::from("-")
    } else {
        outcome.body_bytes.to_string()
    };
    let _ = write!(
        line,
        "{} - - [{}] \"{} {} {:?}\" {status} {bytes}",
        state.remote.as_deref().unwrap_or("-"),
        clf_time(state.received),
        state.method,
        escape(state.target.as_bytes()),
        state.version,
    );
    if format == LogFormat::Combined {
        let _ = write!(
            line,
            " \"{}\" \"{}\"",
            state.referer.as_deref().unwrap_or("-"),
            state.user_agent.as_deref().unwrap_or("-"),
        );
    }
    line
}

/// `10/Oct/2000:13:55:36 +0000`, in UTC.
pub(crate) fn clf_time(time: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let month_name = usize::try_from(month.saturating_sub(1))
        .ok()
        .and_then(|index| MONTHS.get(index))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{day:02}/{month_name}/{year:04}:{:02}:{:02}:{:02} +0000",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clf_time_matches_known_dates() {
        let at = |secs| clf_time(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(at(971_185_736), "10/Oct/2000:13:48:56 +0000");
        assert_eq!(at(951_782_400), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(at(4_102_444_799), "31/Dec/2099:23:59:59 +0000");
    }
}
