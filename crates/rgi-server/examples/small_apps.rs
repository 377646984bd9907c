//! Three small synchronous RGI applications on `rgi-server`, the ones
//! `docs/rgi-server.md` sets beside axum: pick one by name.
//!
//! ```text
//! cargo run -p rgi-server --example small_apps -- hello       # 127.0.0.1:8080
//! cargo run -p rgi-server --example small_apps -- json_echo 127.0.0.1:3000
//! cargo run -p rgi-server --example small_apps -- routes
//! curl http://127.0.0.1:8080/
//! curl --data 'say "hi"' http://127.0.0.1:8080/              # json_echo
//! curl -i http://127.0.0.1:8080/users/42                      # routes; /nope is 404
//! ```
#![allow(clippy::print_stdout)]

mod support {
    pub(crate) mod small_apps;
}

use std::net::SocketAddr;

use rgi_server::Server;
use support::small_apps;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "hello".to_owned());
    let address: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()?;
    let builder = Server::builder().bind(address).handle_signals(true);
    // Each application is its own type, so each gets its own `serve_sync`.
    let server = match name.as_str() {
        "hello" => builder.serve_sync(small_apps::hello())?,
        "json_echo" => builder.serve_sync(small_apps::json_echo())?,
        "routes" => builder.serve_sync(small_apps::routes())?,
        other => {
            return Err(format!("no application {other:?}: hello, json_echo or routes").into());
        }
    };
    println!("{name} listening on http://{address} (Ctrl-C to stop)");
    server.wait();
    Ok(())
}
