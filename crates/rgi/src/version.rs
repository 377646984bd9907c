//! The version of the specification this crate implements.

use std::fmt;

/// A version of the RGI specification: the minor number grows when optional
/// things are added, the major one when a conforming party could break
/// (`[RGI-VER-2]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpecVersion {
    /// Incompatible revisions.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The version of spec/rgi.md this crate implements.
///
/// # Examples
///
/// ```
/// assert_eq!(rgi::SPEC_VERSION.to_string(), "1.1");
/// ```
pub const SPEC_VERSION: SpecVersion = SpecVersion { major: 1, minor: 1 };
