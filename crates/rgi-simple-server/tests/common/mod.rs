//! Shared helpers: start a server on 127.0.0.1, talk raw HTTP/1.1 to it,
//! and split what comes back into responses.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rgi::Application;
use rgi_simple_server::{Builder, Limits, Server};

/// Every socket operation in the tests gives up after this long.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) fn start<A: Application>(app: A) -> Server {
    start_with(app, Limits::default())
}

pub(crate) fn start_with<A: Application>(app: A, limits: Limits) -> Server {
    Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(4)
        .limits(limits)
        .serve_sync(app)
        .unwrap()
}

pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Sends `request` and reads until the server closes (or `PATIENCE`).
/// Returns the bytes and whether the server closed the connection.
pub(crate) fn exchange(addr: SocketAddr, request: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = connect(addr);
    // A server that refuses early may reset before all is written.
    let _ = stream.write_all(request);
    read_to_close(&mut stream)
}

pub(crate) fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + PATIENCE;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
        if Instant::now() > deadline {
            return (out, false);
        }
    }
}

/// One parsed response.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// The trailer section of a chunked response, as sent.
    pub(crate) trailers: Vec<(String, String)>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `bytes` into responses; `head_request[i]` says whether the i-th
/// answered a HEAD (no body whatever the fields say). The last response may
/// be close-delimited.
pub(crate) fn responses(mut bytes: &[u8], head_request: &[bool]) -> Vec<Response> {
    let mut out = Vec::new();
    let mut index = 0;
    while !bytes.is_empty() {
        let end = find(bytes, b"\r\n\r\n").expect("incomplete head") + 4;
        let head = std::str::from_utf8(&bytes[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        bytes = &bytes[end..];
        let response_to_head = head_request.get(index).copied().unwrap_or(false);
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        if (100..200).contains(&status) && status != 101 {
            // An interim response: the final one follows.
            out.push(response);
            continue;
        }
        index += 1;
        if response_to_head || status == 204 || status == 304 {
        } else if response.header("transfer-encoding") == Some("chunked") {
            loop {
                let line_end = find(bytes, b"\r\n").unwrap();
                let size =
                    usize::from_str_radix(std::str::from_utf8(&bytes[..line_end]).unwrap(), 16)
                        .unwrap();
                bytes = &bytes[line_end + 2..];
                if size == 0 {
                    // The trailer section: field lines up to an empty one.
                    loop {
                        let line_end = find(bytes, b"\r\n").unwrap();
                        let line = std::str::from_utf8(&bytes[..line_end]).unwrap();
                        bytes = &bytes[line_end + 2..];
                        if line.is_empty() {
                            break;
                        }
                        let (n, v) = line.split_once(':').unwrap();
                        response
                            .trailers
                            .push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                    break;
                }
                response.body.extend_from_slice(&bytes[..size]);
                assert_eq!(&bytes[size..size + 2], b"\r\n");
                bytes = &bytes[size + 2..];
            }
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().unwrap();
            response.body = bytes[..length].to_vec();
            bytes = &bytes[length..];
        } else {
            response.body = bytes.to_vec();
            bytes = &[];
        }
        out.push(response);
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
