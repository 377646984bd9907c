//! The RGI interface benchmark (issue 9, section 4): a hello-world request
//! answered by bare hyper and by the thinnest honest hyper adapter for a
//! synchronous and an asynchronous RGI application, measured side by side
//! in instructions, allocations and CPU time per request.
//!
//! Run `bench/run.sh` from the workspace root; `bench/README.md` says what
//! is measured and how. The adapter lives in [`adapter`] alone.
#![deny(missing_docs)]

pub mod adapter;
pub mod alloc_count;
pub mod apps;
pub mod load;
pub mod report;
pub mod server;
pub mod steps;
