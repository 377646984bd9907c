//! Renderings of a suite run ([`SuiteRun`](crate::suite::SuiteRun)): a
//! human [`table`], [`json`] and [`junit`] XML; and the [`clause_table`] of
//! the catalogue.

mod clauses;
mod json;
mod junit;
mod table;

pub use clauses::clause_table;
pub use json::json;
pub use junit::junit;
pub use table::table;
