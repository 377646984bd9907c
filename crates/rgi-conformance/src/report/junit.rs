//! The JUnit XML rendering of a suite run, for CI systems.

use std::fmt::Write as _;
use std::time::Duration;

use crate::suite::{SuiteRun, Verdict};

/// The run as JUnit XML: one `<testsuite>` named after the server (inside
/// `<testsuites>`), with `tests`, `failures`, `errors`, `skipped` and
/// `time` (seconds); one `<testcase>` per case with `name` the case,
/// `classname` the server and `time`; a failed case holds
/// `<failure message="CLAUSE" type="CLAUSE">reason</failure>`, a skipped
/// one `<skipped message="reason"/>`. The claims are `<properties>`.
///
/// Every string is escaped; characters that XML 1.0 cannot carry at all
/// (control characters other than tab, line feed and carriage return, and
/// U+FFFE/U+FFFF) are written as `\u{…}` text.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rgi_conformance::Check;
/// use rgi_conformance::report;
/// use rgi_conformance::suite::{CaseResult, SuiteRun, Verdict};
/// use rgi_conformance::suite::Claims;
///
/// let run = SuiteRun {
///     server: "demo".into(),
///     claims: Claims::synchronous(),
///     results: vec![CaseResult {
///         check: Check::new("start_once", &["RGI-START-2"], "the head is sent once"),
///         verdict: Verdict::Failed { clause: "RGI-START-2", reason: "sent <twice> & more".into() },
///         duration: Duration::from_millis(3),
///     }],
/// };
/// let xml = report::junit(&run);
/// assert!(xml.contains(r#"<testsuite name="demo" tests="1" failures="1" errors="0" skipped="0" time="0.003">"#));
/// assert!(xml.contains(r#"<failure message="RGI-START-2" type="RGI-START-2">sent &lt;twice&gt; &amp; more</failure>"#));
/// ```
#[must_use]
pub fn junit(run: &SuiteRun) -> String {
    let tally = run.tally();
    let server = escape(&run.server, Context::Attribute);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"rgi-conformance\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\">",
        tally.cases,
        tally.failed,
        tally.skipped,
        seconds(tally.duration)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{server}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\">",
        tally.cases,
        tally.failed,
        tally.skipped,
        seconds(tally.duration)
    );
    let claims = run.claims;
    out.push_str("    <properties>\n");
    for (name, value) in [
        ("claims.asynchronous", claims.asynchronous),
        ("claims.readiness", claims.readiness),
        ("claims.after_response", claims.after_response),
        ("claims.upgrade", claims.upgrade),
        (
            "claims.features.request_trailers",
            claims.features.request_trailers(),
        ),
        (
            "claims.features.response_trailers",
            claims.features.response_trailers(),
        ),
        ("claims.features.early_hints", claims.features.early_hints()),
        ("claims.features.lifespan", claims.features.lifespan()),
    ] {
        let _ = writeln!(out, "      <property name=\"{name}\" value=\"{value}\"/>");
    }
    out.push_str("    </properties>\n");
    for result in &run.results {
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{server}\" time=\"{}\"",
            escape(result.check.name(), Context::Attribute),
            seconds(result.duration)
        );
        match &result.verdict {
            Verdict::Passed => out.push_str("/>\n"),
            Verdict::Failed { clause, reason } => {
                let clause = escape(clause, Context::Attribute);
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{clause}\" type=\"{clause}\">{}</failure>\n    </testcase>",
                    escape(reason, Context::Text)
                );
            }
            Verdict::Skipped { reason } => {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    escape(reason, Context::Attribute)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Seconds with millisecond precision, as JUnit writes time.
fn seconds(duration: Duration) -> String {
    format!("{}.{:03}", duration.as_secs(), duration.subsec_millis())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Attribute,
    Text,
}

/// `text` as XML character data or an attribute value (double-quoted).
fn escape(text: &str, context: Context) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            // Only needed after `]]`, but always escaping is simpler.
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A parser turns a raw CR (and CR LF) into LF; in attribute
            // values it also turns tab and LF into spaces. References
            // survive both normalisations.
            '\r' => out.push_str("&#13;"),
            '\n' | '\t' if context == Context::Attribute => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            '\n' | '\t' => out.push(c),
            // Not allowed in XML 1.0 even as references: keep it visible.
            c if u32::from(c) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}
