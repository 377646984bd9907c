//! Arbitrary bytes as everything a client sends on one TCP connection to
//! a running `rgi-server` (started once per fuzzing process, on 127.0.0.1,
//! serving a synchronous RGI application that reads each body): HTTP/1.1
//! or, when the bytes start with the preface, h2c. Nothing may panic (a
//! panic on any server thread aborts the process under libFuzzer), the
//! server must close the connection within a few seconds of the client
//! closing its side, and on HTTP/1.1 no response may follow a refusal: a
//! 4xx or 5xx is the last thing the connection sends (`RGI-PROTO-10`).

#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use rgi::{Environ, ResponseHead, StartResponse};
use rgi_server::{Limits, Server};

fn server() -> SocketAddr {
    static SERVER: OnceLock<(Server, SocketAddr)> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let app = rgi::from_fn(|mut environ: Environ, start: &mut StartResponse<'_>| {
                let mut body = Vec::new();
                environ.input_mut().read_to_end(&mut body)?;
                start.start(ResponseHead::new(StatusCode::OK))?;
                Ok(Bytes::from(format!("served {} body bytes", body.len())))
            });
            let server = Server::builder()
                .bind(([127, 0, 0, 1], 0))
                .workers(1)
                .handle_signals(false)
                .limits(
                    Limits::default()
                        .header_read_timeout(Duration::from_secs(2))
                        .body_stall_timeout(Duration::from_secs(2)),
                )
                .serve_sync(app)
                .unwrap_or_else(|error| panic!("the server does not start: {error}"));
            let address = server
                .local_addr()
                .unwrap_or_else(|| panic!("no TCP listener"));
            (server, address)
        })
        .1
}

fn statuses(output: &[u8]) -> Vec<u16> {
    let marker = b"HTTP/1.1 ";
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = output[at..]
        .windows(marker.len())
        .position(|window| window == marker)
    {
        let start = at + offset + marker.len();
        if let Some(status) = output
            .get(start..start + 3)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| digits.parse().ok())
        {
            found.push(status);
        }
        at = start;
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut stream) = TcpStream::connect(server()) else {
        return;
    };
    let limit = Duration::from_secs(8);
    let _ = stream.set_read_timeout(Some(limit));
    let _ = stream.set_write_timeout(Some(limit));
    let started = Instant::now();
    // The server may refuse and close before taking every byte.
    let _ = stream.write_all(data);
    let _ = stream.shutdown(Shutdown::Write);
    let mut output = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => output.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
                || error.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the server kept the connection open for {:?}", started.elapsed());
            }
            // A reset after a refusal: whatever came before it counts.
            Err(_) => break,
        }
    }
    if data.starts_with(b"PRI * HTTP/2.0") {
        return;
    }
    let statuses = statuses(&output);
    if let Some(refusal) = statuses.iter().position(|&status| status >= 400) {
        assert_eq!(
            refusal + 1,
            statuses.len(),
            "responses after a refusal: {statuses:?}"
        );
    }
});
