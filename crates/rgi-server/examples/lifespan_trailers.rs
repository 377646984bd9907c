//! Lifespan and trailers on `rgi-server`, for a synchronous application: a
//! small store of uploads.
//!
//! - Start-up opens the store (a stand-in for a database pool) and shares
//!   it with every request as typed state; shut-down reports what it holds
//!   once the last response has ended.
//! - `PUT /files/<name>` stores a body; a checksum the client sends in a
//!   `x-checksum` field, in the head or (for a chunked upload) in the
//!   trailers, must match it, else `422`.
//! - `GET /files/<name>` streams the file back with its checksum as a
//!   trailer, announced in a `Trailer` field, when the client can take
//!   trailers (HTTP/2, or HTTP/1.1 with `TE: trailers`); otherwise, the
//!   checksum goes into the head instead (`[RGI-FEAT-2]`).
//!
//! ```text
//! cargo run -p rgi-server --example lifespan_trailers    # 127.0.0.1:8080
//! curl -T README.md -H 'transfer-encoding: chunked' http://127.0.0.1:8080/files/readme
//! curl --raw -H 'te: trailers' http://127.0.0.1:8080/files/readme   # the trailer after the last chunk
//! curl -i --http2-prior-knowledge http://127.0.0.1:8080/files/readme
//! ```
//!
//! `cargo run -p rgi-server --example lifespan_trailers -- --check` serves
//! on a free port, uploads with a checksum in the trailers (right, then
//! wrong), downloads with and without `TE: trailers` over a plain
//! `TcpStream`, checks each answer byte for byte, stops gracefully, checks
//! that the shut-down ran once, and exits 0 when everything held, 1
//! otherwise.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, VecDeque};
use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use rgi::{Application, Body, BoxError, Environ, ResponseHead, StartResponse, Startup};
use rgi_server::Server;

/// The checksum field, in a head or a trailer section.
const CHECKSUM: HeaderName = HeaderName::from_static("x-checksum");

/// The largest upload.
const MAX_UPLOAD: usize = 1 << 20;

/// FNV-1a, 64 bits: a stand-in for a real digest, in hexadecimal.
fn checksum(bytes: &[u8]) -> String {
    let sum = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |sum, byte| {
        (sum ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{sum:016x}")
}

/// The store the start-up opens: every request shares it.
#[derive(Clone, Default)]
struct Store(Arc<Mutex<BTreeMap<String, Bytes>>>);

impl Store {
    fn put(&self, name: String, body: Bytes) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, body);
    }

    fn get(&self, name: &str) -> Option<Bytes> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// The application; what it counts lets `--check` see the hooks run.
#[derive(Default)]
struct Files {
    /// The store, kept here too so that the shut-down can close it.
    store: Mutex<Option<Store>>,
    startups: AtomicUsize,
    shutdowns: AtomicUsize,
}

/// A download: the file in pieces, then its checksum as a trailer.
struct Download {
    pieces: VecDeque<Bytes>,
    trailer: Option<HeaderValue>,
}

impl Body for Download {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if let Some(piece) = self.pieces.pop_front() {
            return Some(Ok(piece));
        }
        // The last pull: the trailers go in before the body reports its end.
        let value = self.trailer.take()?;
        let mut fields = HeaderMap::new();
        fields.insert(CHECKSUM, value);
        start
            .send_trailers(fields)
            .err()
            .map(|refused| Err(refused.into()))
    }
}

impl Application for Files {
    type Body = Box<dyn Body>;

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.startups.fetch_add(1, Ordering::SeqCst);
        let store = Store::default();
        *self.store.lock().unwrap_or_else(PoisonError::into_inner) = Some(store.clone());
        startup.insert_state(store);
        println!(
            "started on {}:{}, with {:?}",
            startup.server_info().name(),
            startup.server_info().port(),
            startup.server_info().features()
        );
        Ok(())
    }

    fn shutdown(&self) {
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
        let store = self
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        println!(
            "shut down with {} files stored",
            store.as_ref().map_or(0, Store::len)
        );
    }

    fn call(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Box<dyn Body>, BoxError> {
        // A server without lifespan calls no start-up: open the store then.
        let store = match environ.server_extension::<Store>() {
            Some(store) => store.clone(),
            None => self
                .store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(Store::default)
                .clone(),
        };
        let Some(name) = environ
            .uri()
            .path()
            .strip_prefix("/files/")
            .map(str::to_owned)
        else {
            return answer(start, StatusCode::NOT_FOUND, "try /files/<name>\n");
        };
        match environ.method().clone() {
            Method::PUT => {
                let body = environ.input_mut().read_to_bytes(MAX_UPLOAD)?;
                // Read after the body's end: `Some` when the client sent
                // trailers, `None` otherwise, and never before the end.
                let trailers = environ.input().trailers()?.unwrap_or_default();
                let claimed = environ
                    .headers()
                    .get(&CHECKSUM)
                    .or_else(|| trailers.get(&CHECKSUM));
                let sum = checksum(&body);
                match claimed {
                    Some(claimed) if claimed.as_bytes() != sum.as_bytes() => answer(
                        start,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &format!("checksum mismatch: the body's is {sum}\n"),
                    ),
                    _ => {
                        store.put(name, body);
                        answer(
                            start,
                            StatusCode::CREATED,
                            &format!("stored, checksum {sum}\n"),
                        )
                    }
                }
            }
            Method::GET | Method::HEAD => {
                let Some(file) = store.get(&name) else {
                    return answer(start, StatusCode::NOT_FOUND, "no such file\n");
                };
                let sum = HeaderValue::try_from(checksum(&file))?;
                let head = ResponseHead::new(StatusCode::OK).with_header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                if start.trailers_deliverable() {
                    start.start(
                        head.with_header(header::TRAILER, HeaderValue::from_static("x-checksum")),
                    )?;
                    let pieces = file.chunks(16).map(|piece| file.slice_ref(piece)).collect();
                    Ok(Box::new(Download {
                        pieces,
                        trailer: Some(sum),
                    }))
                } else {
                    // The client cannot take trailers: the field it needs
                    // goes into the head (`[RGI-FEAT-2]`).
                    start.start(head.with_header(CHECKSUM, sum))?;
                    Ok(Box::new(file))
                }
            }
            _ => answer(start, StatusCode::METHOD_NOT_ALLOWED, "PUT or GET\n"),
        }
    }
}

fn answer(
    start: &mut StartResponse<'_>,
    status: StatusCode,
    text: &str,
) -> Result<Box<dyn Body>, BoxError> {
    start.start(ResponseHead::new(status).with_header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    ))?;
    Ok(Box::new(Bytes::from(text.to_owned())))
}

fn main() -> Result<(), Box<dyn Error>> {
    let argument = std::env::args().nth(1);
    if argument.as_deref() == Some("--check") {
        return check();
    }
    let address: SocketAddr = argument
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()?;
    let server = Server::builder()
        .bind(address)
        .startup_timeout(Duration::from_secs(10))
        .handle_signals(true)
        .serve_sync(Arc::new(Files::default()))?;
    println!("file store on http://{address}/files/ (Ctrl-C to stop)");
    server.wait();
    Ok(())
}

/// An HTTP/1.1 answer as it was on the wire, de-chunked.
struct Wire {
    /// The status line and the head's fields, lowercase.
    head: String,
    body: String,
    /// The trailer section after the last-chunk; `None` when not chunked.
    trailers: Option<String>,
}

/// One request on its own connection (`connection: close`), read to the
/// end.
fn exchange(address: SocketAddr, request: &str) -> Result<Wire, Box<dyn Error>> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, mut rest) = raw.split_once("\r\n\r\n").ok_or("no complete head")?;
    let head = head.to_ascii_lowercase();
    if !head.contains("\r\ntransfer-encoding: chunked") {
        return Ok(Wire {
            head,
            body: rest.to_owned(),
            trailers: None,
        });
    }
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("a cut chunk")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            let section = match after.find("\r\n\r\n") {
                Some(end) => &after[..end + 2],
                None => "",
            };
            return Ok(Wire {
                head,
                body,
                trailers: Some(section.to_ascii_lowercase()),
            });
        }
        body.push_str(after.get(..size).ok_or("a short chunk")?);
        rest = after.get(size + 2..).ok_or("a chunk without its CRLF")?;
    }
}

/// A chunked upload of `body` in two chunks, with `sum` in its trailers.
fn upload(name: &str, body: &str, sum: &str) -> String {
    let (first, second) = body.split_at(body.len() / 2);
    format!(
        "PUT /files/{name} HTTP/1.1\r\nhost: files\r\nconnection: close\r\n\
         transfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n\
         {:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\nx-checksum: {sum}\r\n\r\n",
        first.len(),
        second.len()
    )
}

/// `--check`: every route, byte for byte, then a graceful stop.
fn check() -> Result<(), Box<dyn Error>> {
    let files = Arc::new(Files::default());
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .serve_sync(Arc::clone(&files))?;
    let address = server.local_addr().ok_or("no TCP address")?;
    let mut failures = 0;
    let mut verdict = |what: &str, ok: bool| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failures += 1;
        }
    };
    verdict(
        "the start-up ran once, before the server was returned",
        files.startups.load(Ordering::SeqCst) == 1,
    );

    let text = "a report that travels with its checksum in the trailers\n";
    let sum = checksum(text.as_bytes());
    let stored = exchange(address, &upload("report", text, &sum))?;
    verdict(
        "a chunked upload whose trailer checksum matches is stored (201)",
        stored.head.starts_with("http/1.1 201") && stored.body.contains(&sum),
    );
    let refused = exchange(address, &upload("bad", text, "0000000000000000"))?;
    verdict(
        "a chunked upload whose trailer checksum is wrong is refused (422)",
        refused.head.starts_with("http/1.1 422"),
    );

    let get = |te: &str| {
        exchange(
            address,
            &format!("GET /files/report HTTP/1.1\r\nhost: files\r\nconnection: close\r\n{te}\r\n"),
        )
    };
    let with_te = get("te: trailers\r\n")?;
    verdict(
        "with TE: trailers: chunked, announced, the checksum after the last chunk",
        with_te.head.contains("\r\ntrailer: x-checksum")
            && with_te.body == text
            && with_te.trailers == Some(format!("x-checksum: {sum}\r\n")),
    );
    let without = get("")?;
    verdict(
        "without TE: trailers: the checksum in the head, no trailer section",
        without.head.contains(&format!("\r\nx-checksum: {sum}"))
            && without.body == text
            && without.trailers.as_deref().is_none_or(str::is_empty),
    );

    verdict(
        "no shut-down while serving",
        files.shutdowns.load(Ordering::SeqCst) == 0,
    );
    server.shutdown();
    verdict(
        "the shut-down ran once, after the graceful stop",
        files.shutdowns.load(Ordering::SeqCst) == 1,
    );
    if failures > 0 {
        return Err(format!("{failures} checks failed").into());
    }
    println!("the store started, checked, served and stopped as expected");
    Ok(())
}
