//! Serves one request to a hello-world application through the RGI contract
//! and prints the HTTP/1.1 response a server would write.
//!
//! ```text
//! cargo run -p rgi --example hello
//! ```
#![allow(clippy::print_stdout)]

use std::io;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use rgi::{Application, Body, BoxError, Environ, ResponseHead, ResponseSink, ResponseState};

/// A transport that renders HTTP/1.1 with chunked framing into a buffer.
#[derive(Default)]
struct Http11(Vec<u8>);

impl ResponseSink for Http11 {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        let status = head.status();
        let reason = status.canonical_reason().unwrap_or("");
        self.0
            .extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", status.as_u16()).as_bytes());
        for (name, value) in head.headers() {
            self.0.extend_from_slice(name.as_str().as_bytes());
            self.0.extend_from_slice(b": ");
            self.0.extend_from_slice(value.as_bytes());
            self.0.extend_from_slice(b"\r\n");
        }
        self.0
            .extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.0
            .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        self.0.extend_from_slice(&data);
        self.0.extend_from_slice(b"\r\n");
        Ok(())
    }
}

fn main() -> Result<(), BoxError> {
    let app = rgi::from_fn(|environ: Environ, start| {
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
        )?;
        Ok(rgi::from_iter([
            format!("Hello from RGI {}!\n", rgi::SPEC_VERSION),
            format!("You asked for {}\n", environ.request_url()),
        ]))
    });

    let environ = Environ::builder()
        .uri("/hello?lang=en".parse()?)
        .server("localhost", 8080)
        .build()?;
    let (mut state, mut wire) = (ResponseState::new(environ.method()), Http11::default());
    let mut body = app.call(environ, &mut state.start_response(&mut wire))?;
    while let Some(chunk) = body.next_chunk(&mut state.start_response(&mut wire)) {
        state.send_chunk(&mut wire, chunk?)?;
    }
    drop(body);
    state.finish(&mut wire)?;
    wire.0.extend_from_slice(b"0\r\n\r\n");
    print!("{}", String::from_utf8_lossy(&wire.0));
    Ok(())
}
