//! Name resolution through offload (spec/rgi-async.md, recipe 17.2):
//! `std` resolves with the blocking `getaddrinfo(3)`, so the application
//! resolves on one of the server's blocking threads and the event loop
//! stays free. Only "localhost" is resolved: no network is needed.
//!
//! Run with `cargo run -p rgi-async --example dns_offload`.
#![allow(clippy::print_stdout)]

mod support;

use std::net::{SocketAddr, ToSocketAddrs};

use http::StatusCode;
use rgi::{BoxError, Environ};
use rgi_async::{Capabilities, Responder};
use support::serve_and_print;

/// Resolves on a blocking thread, then answers with the addresses.
async fn resolve(environ: Environ, response: Responder) -> Result<(), BoxError> {
    let capabilities = Capabilities::of(&environ).ok_or("needs an asynchronous server")?;
    let lookup = capabilities
        .offload()
        .run(|| "localhost:80".to_socket_addrs().map(Vec::from_iter));
    // OffloadError first, then the resolver's io::Error.
    let addrs: Vec<SocketAddr> = lookup.await??;
    let lines: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    response.append_header("content-type", "text/plain")?;
    response.send(lines.join("\n")).await;
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let app = rgi_async::from_async_fn(resolve);
    let served = serve_and_print("localhost:80", &app, None)?;
    assert_eq!(served.wire.heads()[0].status(), StatusCode::OK);
    assert!(
        !served.wire.body().is_empty(),
        "localhost resolves to something"
    );
    Ok(())
}
