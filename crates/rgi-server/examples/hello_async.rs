//! An asynchronous RGI application on `rgi-server`: it waits on tokio's
//! timer inside the request (the runtime context the server declares)
//! without holding a thread.
//!
//! ```text
//! cargo run -p rgi-server --example hello_async           # 127.0.0.1:8080
//! curl http://127.0.0.1:8080/
//! curl http://127.0.0.1:8080/wait                         # answers after 100 ms
//! ```
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use rgi::Environ;
use rgi_async::{Capabilities, Responder, Runtime};
use rgi_server::Server;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()?;
    let app = rgi_async::from_async_fn(|environ: Environ, response: Responder| async move {
        if environ.uri().path() == "/wait" {
            let capabilities = Capabilities::of(&environ).ok_or("an asynchronous server")?;
            capabilities.require_runtime(Runtime::Tokio)?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        response.set_status(StatusCode::OK)?;
        response
            .send("Hello from an asynchronous RGI application!\n")
            .await;
        Ok(())
    });
    let server = Server::builder()
        .bind(address)
        .handle_signals(true)
        .serve_async(app)?;
    println!("listening on http://{address} (Ctrl-C to stop)");
    server.wait();
    Ok(())
}
