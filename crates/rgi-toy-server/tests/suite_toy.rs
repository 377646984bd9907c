//! The server suite against the kit's conforming toy server: every case
//! must pass (or be skipped for a capability the toy does not claim).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rgi_toy_server::ToyServer;

/// The conforming toy server.
fn toy() -> ToyServer {
    ToyServer::new()
}

rgi_conformance::server_suite!(toy);
