//! The version of the specification this crate implements.

use std::fmt;

/// A version of the RGI specification: the minor number grows when optional
/// things are added, the major one when a conforming party could break
/// (`[RGI-VER-2]`).
///
/// The struct is `#[non_exhaustive]` so that a later version can add a
/// component (a pre-release marker, say) without breaking code that builds
/// one: outside this crate, build it with [`SpecVersion::new`] and read the
/// fields.
///
/// # Examples
///
/// ```
/// let older = rgi::SpecVersion::new(1, 0);
/// assert!(older < rgi::SPEC_VERSION);
/// assert_eq!((older.major, older.minor), (1, 0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct SpecVersion {
    /// Incompatible revisions.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
}

impl SpecVersion {
    /// The version `major.minor`.
    #[must_use]
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
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
/// assert_eq!(rgi::SPEC_VERSION.to_string(), "1.2");
/// ```
pub const SPEC_VERSION: SpecVersion = SpecVersion { major: 1, minor: 2 };
