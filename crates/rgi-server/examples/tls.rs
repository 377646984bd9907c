//! `rgi-server` with TLS (HTTP/1.1 and HTTP/2 by ALPN), reloading its
//! certificate on SIGHUP without a restart.
//!
//! ```text
//! cargo run -p rgi-server --example tls -- cert.pem key.pem [127.0.0.1:8443]
//! cargo run -p rgi-server --example tls                   # a fresh self-signed certificate
//! curl -k --http2 https://localhost:8443/
//! kill -HUP <pid>                                          # re-reads cert.pem and key.pem
//! ```
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http::StatusCode;
use rgi::{Environ, ResponseHead};
use rgi_server::{CertificateResolver, Server, TlsConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (files, address) = match args.as_slice() {
        [cert, key, rest @ ..] => (
            Some((PathBuf::from(cert), PathBuf::from(key))),
            rest.first().cloned(),
        ),
        _ => (None, None),
    };
    let address: SocketAddr = address
        .unwrap_or_else(|| "127.0.0.1:8443".to_owned())
        .parse()?;
    let (chain, key) = match &files {
        Some((cert, key)) => (std::fs::read(cert)?, std::fs::read(key)?),
        None => {
            let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
            (
                generated.cert.pem().into_bytes(),
                generated.signing_key.serialize_pem().into_bytes(),
            )
        }
    };
    let resolver = Arc::new(CertificateResolver::from_pem(&chain, &key)?);
    let app = rgi::from_fn(|environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        let tls = environ.connection().tls();
        Ok(rgi::from_iter([format!(
            "{} over {:?} ({:?}, ALPN {:?})\n",
            environ.request_url(),
            environ.version(),
            tls.and_then(rgi::TlsInfo::version),
            tls.and_then(rgi::TlsInfo::alpn_protocol)
                .map(String::from_utf8_lossy),
        )]))
    });
    let server = Server::builder()
        .bind_tls(address, TlsConfig::new(Arc::clone(&resolver)))
        .handle_signals(true)
        .serve_sync(app)?;
    if let (Some((cert, key)), Some(runtime)) = (files, server.runtime_handle()) {
        runtime.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                return;
            };
            while hangups.recv().await.is_some() {
                let reload = || -> Result<(), Box<dyn std::error::Error>> {
                    resolver.reload_pem(&std::fs::read(&cert)?, &std::fs::read(&key)?)?;
                    Ok(())
                };
                match reload() {
                    Ok(()) => println!("certificate reloaded"),
                    Err(error) => println!("certificate not reloaded: {error}"),
                }
            }
        });
    }
    println!("listening on https://{address} (Ctrl-C to stop)");
    server.wait();
    Ok(())
}
