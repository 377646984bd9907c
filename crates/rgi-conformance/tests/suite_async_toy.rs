//! The asynchronous cases of the server suite against the kit's conforming
//! toy server, which claims every asynchronous capability: every case must
//! pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rgi_conformance::toy::ToyServer;

/// The conforming toy server.
fn toy() -> ToyServer {
    ToyServer::new()
}

rgi_conformance::__rgi_async_cases!(toy);
