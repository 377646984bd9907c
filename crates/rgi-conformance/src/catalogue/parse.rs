//! The clause-line parser: `- **[RGI-START-2] MUST (application) — Title.** Text.`

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// A requirement level of a clause (RFC 2119 keywords, in capitals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// `MUST`: an absolute requirement.
    Must,
    /// `MUST NOT`: an absolute prohibition.
    MustNot,
    /// `SHOULD`: recommended; departures need a good reason.
    Should,
    /// `SHOULD NOT`: discouraged; departures need a good reason.
    ShouldNot,
    /// `MAY`: truly optional.
    May,
}

impl Level {
    /// Every level, strongest first.
    pub const ALL: [Level; 5] = [
        Level::Must,
        Level::MustNot,
        Level::Should,
        Level::ShouldNot,
        Level::May,
    ];

    /// The keyword as the spec writes it (`MUST NOT`).
    #[must_use]
    pub const fn keyword(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::MustNot => "MUST NOT",
            Level::Should => "SHOULD",
            Level::ShouldNot => "SHOULD NOT",
            Level::May => "MAY",
        }
    }

    /// Whether the level is absolute (`MUST` or `MUST NOT`): such a clause
    /// needs a check or a written reason why it has none.
    #[must_use]
    pub const fn is_absolute(self) -> bool {
        matches!(self, Level::Must | Level::MustNot)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.keyword())
    }
}

/// The party a clause binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The server (including gateways behind another web server).
    Server,
    /// The application.
    Application,
    /// Middleware: an application towards its caller, a server towards the
    /// application it calls.
    Middleware,
    /// Every party, the spec crates included.
    All,
}

impl Party {
    /// Every party, in the spec's order.
    pub const ALL: [Party; 4] = [
        Party::Server,
        Party::Application,
        Party::Middleware,
        Party::All,
    ];

    /// The name the spec writes in parentheses.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Party::Server => "server",
            Party::Application => "application",
            Party::Middleware => "middleware",
            Party::All => "all",
        }
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One of the two specification documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spec {
    /// `spec/rgi.md`, the synchronous interface; IDs start `RGI-`.
    Rgi,
    /// `spec/rgi-async.md`, the asynchronous extensions; IDs start `RGIA-`.
    RgiAsync,
}

impl Spec {
    /// Both documents.
    pub const ALL: [Spec; 2] = [Spec::Rgi, Spec::RgiAsync];

    /// The document's path in the repository.
    #[must_use]
    pub const fn path(self) -> &'static str {
        match self {
            Spec::Rgi => "spec/rgi.md",
            Spec::RgiAsync => "spec/rgi-async.md",
        }
    }

    /// The prefix of its clause IDs (`RGI`, `RGIA`).
    #[must_use]
    pub const fn prefix(self) -> &'static str {
        match self {
            Spec::Rgi => "RGI",
            Spec::RgiAsync => "RGIA",
        }
    }

    /// The document's text as built into the kit.
    #[must_use]
    pub const fn source(self) -> &'static str {
        match self {
            Spec::Rgi => include_str!("../../../../spec/rgi.md"),
            Spec::RgiAsync => include_str!("../../../../spec/rgi-async.md"),
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.path())
    }
}

/// One normative clause of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Clause {
    /// Its ID, such as `RGI-START-2`.
    pub id: &'static str,
    /// Its requirement level.
    pub level: Level,
    /// The party it binds.
    pub party: Party,
    /// Its title, without the closing full stop.
    pub title: &'static str,
    /// The rule itself: the rest of the line after the title.
    pub text: &'static str,
    /// The document that defines it.
    pub spec: Spec,
    /// Its line in that document, from 1.
    pub line: usize,
}

/// Why a document's clauses could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A line that starts like a clause is not a well-formed one.
    #[error("{spec}:{line}: malformed clause ({problem}): {text}")]
    Malformed {
        /// The document.
        spec: Spec,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: &'static str,
        /// The offending line.
        text: String,
    },
    /// Two clauses share an ID.
    #[error("{spec}:{line}: clause {id} is already defined on line {first}")]
    Duplicate {
        /// The document.
        spec: Spec,
        /// The repeated ID.
        id: String,
        /// The first definition's line.
        first: usize,
        /// The repeated definition's line.
        line: usize,
    },
    /// The document defines no clause at all (the wrong file, or a broken
    /// clause format).
    #[error("{spec}: no clause found")]
    Empty {
        /// The document.
        spec: Spec,
    },
}

/// Parses every clause of `source`, which is the text of `spec`.
///
/// A line is a clause if it starts with `- **[RGI` outside a fenced code
/// block; it must then have the form
/// `- **[PREFIX-AREA-N] LEVEL (party) — Title.** Text` with the
/// document's prefix.
///
/// # Errors
///
/// [`ParseError::Malformed`] for a line that starts like a clause but is
/// not one, [`ParseError::Duplicate`] for a reused ID and
/// [`ParseError::Empty`] when there is no clause at all.
///
/// # Examples
///
/// ```
/// use rgi_conformance::catalogue::{Level, Party, Spec, parse};
///
/// let clauses = parse(
///     Spec::Rgi,
///     "# Title\n\n- **[RGI-START-2] MUST (application) — Start once.** Text.\n",
/// )?;
/// assert_eq!(clauses[0].id, "RGI-START-2");
/// assert_eq!(clauses[0].level, Level::Must);
/// assert_eq!(clauses[0].party, Party::Application);
/// assert_eq!(clauses[0].title, "Start once");
/// assert!(parse(Spec::Rgi, "- **[RGI-START-2] MUST (nobody) — X.** Y.").is_err());
/// # Ok::<(), rgi_conformance::catalogue::ParseError>(())
/// ```
pub fn parse(spec: Spec, source: &'static str) -> Result<Vec<Clause>, ParseError> {
    let mut clauses = Vec::new();
    let mut first_line: BTreeMap<&str, usize> = BTreeMap::new();
    let mut in_code = false;
    for (index, text) in source.lines().enumerate() {
        let line = index + 1;
        // Fenced blocks show the clause format itself as an example.
        if text.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || !text.starts_with("- **[RGI") {
            continue;
        }
        let clause = parse_line(spec, line, text).map_err(|problem| ParseError::Malformed {
            spec,
            line,
            problem,
            text: text.to_owned(),
        })?;
        if let Some(&first) = first_line.get(clause.id) {
            return Err(ParseError::Duplicate {
                spec,
                id: clause.id.to_owned(),
                first,
                line,
            });
        }
        first_line.insert(clause.id, line);
        clauses.push(clause);
    }
    if clauses.is_empty() {
        return Err(ParseError::Empty { spec });
    }
    Ok(clauses)
}

/// One clause line, or what is wrong with it.
fn parse_line(spec: Spec, line: usize, text: &'static str) -> Result<Clause, &'static str> {
    let rest = text
        .strip_prefix("- **[")
        .ok_or("it does not start with `- **[`")?;
    let (id, rest) = rest
        .split_once("] ")
        .ok_or("the ID is not closed by `] `")?;
    if !is_id(spec.prefix(), id) {
        return Err(match spec {
            Spec::Rgi => "the ID is not RGI-AREA-N",
            Spec::RgiAsync => "the ID is not RGIA-AREA-N",
        });
    }
    // Requiring " (" straight after the keyword keeps `MUST` from matching
    // the start of `MUST NOT`.
    let (level, rest) = Level::ALL
        .into_iter()
        .find_map(|level| {
            rest.strip_prefix(level.keyword())
                .and_then(|after| after.strip_prefix(" ("))
                .map(|after| (level, after))
        })
        .ok_or("no level keyword followed by ` (`")?;
    let (party, rest) = rest
        .split_once(") — ")
        .ok_or("the party is not closed by `) — `")?;
    let party = Party::ALL
        .into_iter()
        .find(|known| known.name() == party)
        .ok_or("the party is not server, application, middleware or all")?;
    let (title, body) = rest
        .split_once(".** ")
        .ok_or("the title does not end with `.** `")?;
    if title.trim().is_empty() {
        return Err("the title is empty");
    }
    if title.contains("**") {
        return Err("the title contains `**`");
    }
    if body.trim().is_empty() {
        return Err("the clause has no text after its title");
    }
    Ok(Clause {
        id,
        level,
        party,
        title,
        text: body.trim(),
        spec,
        line,
    })
}

/// Whether `area` names an area: a capital letter, then capitals or digits
/// (`CL`, `H2`).
pub(super) fn is_area(area: &str) -> bool {
    area.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
        && area
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Whether `id` is `PREFIX-AREA-N`: AREA as [`is_area`] says, N a number
/// from 1 without leading zeros.
fn is_id(prefix: &str, id: &str) -> bool {
    let mut parts = id.split('-');
    parts.next() == Some(prefix)
        && parts.next().is_some_and(is_area)
        && parts.next().is_some_and(|n| {
            !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
        })
        && parts.next().is_none()
}
