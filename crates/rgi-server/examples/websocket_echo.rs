//! A WebSocket echo on `rgi-server`: HTTP/1.1 `Upgrade` and HTTP/2
//! extended CONNECT, through the RGI `Upgrade` capability.
//!
//! ```text
//! cargo run -p rgi-server --example websocket_echo        # ws://127.0.0.1:8080/
//! ```
//!
//! Any WebSocket client can talk to it (`websocat ws://127.0.0.1:8080/`);
//! a plain GET gets `426 Upgrade Required`.
#![allow(clippy::print_stdout)]

mod support {
    pub(crate) mod echo;
}

use std::net::SocketAddr;

use rgi_server::{Http2Settings, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()?;
    let server = Server::builder()
        .bind(address)
        .http2(Http2Settings::default().enable_connect_protocol(true))
        .handle_signals(true)
        .serve_async(support::echo::Echo)?;
    println!("WebSocket echo on ws://{address}/ (Ctrl-C to stop)");
    server.wait();
    Ok(())
}
