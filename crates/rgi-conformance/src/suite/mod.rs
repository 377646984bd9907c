//! The server suite: probe applications, a raw-socket HTTP/1.1 client and
//! one case per externally checkable clause.

mod case;
mod probe;
mod server;

pub use case::{Case, CaseFn, Failure, Needs};
pub use probe::Probe;
pub use server::{Claims, RunningServer, ServerUnderTest};
