//! The rgi-server benchmark (issue 10, section 8): the server under test
//! runs as a child process started by name, bare hyper 1.x built with the
//! same settings beside it, loads from the reporting process on loopback,
//! one table with every target.
//!
//! - [`target`]: the child, `rgi-bench target IMPLEMENTATION APP`, and
//!   the bare hyper baselines;
//! - [`rgi`]: rgi-server serving the same applications through rgi-tower;
//! - [`runner`]: starting it, asking for its counters, ending it;
//! - [`client`]: the load generators (closed loop, open loop, pipelined,
//!   parked, slow readers);
//! - [`procfs`]: CPU, memory, threads and context switches from `/proc`;
//! - [`stats`]: percentiles, medians, the open-loop schedule;
//! - [`report`]: the scenarios and the table;
//! - [`tower`] and [`tower_report`]: the rgi-tower benchmark (issue 14,
//!   `bench/tower.sh`): rgi-tower's bridge and an axum Router on the same
//!   hyper serving, that Router mounted in rgi-server, each against bare
//!   hyper with the same method.

pub mod client;
pub mod procfs;
pub mod report;
pub mod rgi;
pub mod runner;
pub mod stats;
pub mod target;
pub mod tower;
pub mod tower_report;
