//! The descriptor every check of the kit carries, so coverage of the spec
//! can be computed (`catalogue`) and every report can name its clauses.

use serde::Serialize;

/// One automated check: a validator rule or a server-suite case.
///
/// # Examples
///
/// ```
/// use rgi_conformance::Check;
///
/// const START_TWICE: Check = Check::new(
///     "start_twice",
///     &["RGI-START-2"],
///     "the application starts the response only once",
/// );
/// assert_eq!(START_TWICE.clauses(), ["RGI-START-2"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Check {
    name: &'static str,
    clauses: &'static [&'static str],
    title: &'static str,
}

impl Check {
    /// A check called `name` (a Rust identifier, unique in the kit) that
    /// judges `clauses`, described by `title`.
    #[must_use]
    pub const fn new(
        name: &'static str,
        clauses: &'static [&'static str],
        title: &'static str,
    ) -> Self {
        Check {
            name,
            clauses,
            title,
        }
    }

    /// The check's unique name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The clause IDs it judges; the first is the main one.
    #[must_use]
    pub const fn clauses(&self) -> &'static [&'static str] {
        self.clauses
    }

    /// What it checks, in a sentence.
    #[must_use]
    pub const fn title(&self) -> &'static str {
        self.title
    }
}
