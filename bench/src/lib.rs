//! Five benchmarks in one crate:
//!
//! - the RGI interface benchmark (issue 9, section 4): a hello-world
//!   request answered by bare hyper and by the thinnest honest hyper
//!   adapter for a synchronous and an asynchronous RGI application,
//!   measured side by side in instructions, allocations and CPU time per
//!   request (`bench/run.sh`; the adapter lives in [`adapter`] alone);
//! - the rgi-server benchmark (issue 10, section 8): the server against
//!   bare hyper built alike, scenario by scenario, in [`server_bench`]
//!   (`bench/server.sh`);
//! - the rgi-simple-server benchmark (issue 12, item 6): the server against
//!   a plain std thread-per-connection server, in [`simple`],
//!   [`simple_client`], [`simple_report`] and [`threaded`]
//!   (`bench/simple.sh`);
//! - the rgi-tower benchmark (issue 14, item 6): rgi-tower's bridge on bare
//!   hyper, rgi-server, and an axum Router mounted in rgi-server, each
//!   against bare hyper with the server benchmark's method, in
//!   [`server_bench::tower`] and [`server_bench::tower_report`]
//!   (`bench/tower.sh`);
//! - rgi-middleware's overhead (issue 15, item 1): `Wrapped` against the
//!   same middleware written by hand, in process, in [`mw`] and
//!   [`mw_report`] (`bench/middleware.sh`).
//!
//! `bench/README.md` says what is measured and how.
#![deny(missing_docs)]

pub mod adapter;
pub mod alloc_count;
pub mod apps;
pub mod child;
pub mod load;
pub mod mw;
pub mod mw_report;
pub mod report;
pub mod server;
pub mod server_bench;
pub mod simple;
pub mod simple_client;
pub mod simple_report;
pub mod steps;
pub mod threaded;
