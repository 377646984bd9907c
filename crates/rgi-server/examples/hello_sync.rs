//! A synchronous RGI application on `rgi-server`.
//!
//! ```text
//! cargo run -p rgi-server --example hello_sync            # 127.0.0.1:8080
//! cargo run -p rgi-server --example hello_sync 0.0.0.0:80
//! curl http://127.0.0.1:8080/anything
//! ```
//!
//! The application declares that it never blocks, so it runs inline on the
//! runtime's workers; drop the declaration and it runs on the blocking pool.
//! Ctrl-C (or SIGTERM) shuts down gracefully.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;

use http::{HeaderValue, StatusCode, header};
use rgi::{Environ, Hints, InputUse, ResponseHead};
use rgi_server::Server;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()?;
    // It reads no body and never blocks: declaring both runs it inline on
    // the runtime's workers instead of on the blocking pool.
    let hints = Hints::default()
        .with_input(InputUse::None)
        .with_may_block(false);
    let app = rgi::from_fn(|environ: Environ, start| {
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
        )?;
        Ok(rgi::from_iter([format!(
            "Hello from RGI {}, {}!\n",
            rgi::SPEC_VERSION,
            environ.request_url()
        )]))
    })
    .with_hints(hints);
    let server = Server::builder()
        .bind(address)
        .handle_signals(true)
        .serve_sync(app)?;
    println!("listening on http://{address} (Ctrl-C to stop)");
    server.wait();
    Ok(())
}
