//! Several pieces of `rgi-middleware` stacked in front of a small site,
//! served by `rgi-server`: request ids, an access log, error catching,
//! CORS, compression, a concurrency and a body limit, and a router that
//! mounts static files, a text page, an echo behind a pre-read and a
//! handler that panics.
//!
//! ```sh
//! cargo run -p rgi-middleware --example stack            # serves on 127.0.0.1:8090
//! cargo run -p rgi-middleware --example stack -- --check # asks every route, checks, exits
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{BoxError, Environ, ResponseHead, StartResponse};
use rgi_middleware::{
    AccessLog, AllowOrigin, BodyLimit, BoxApplication, CatchErrors, Compression, ConcurrencyLimit,
    Cors, Middleware, Mount, PreRead, RequestId, Router, ServeDir,
};

/// Long enough to be worth compressing.
const PAGE: &str = "RGI middleware, written once for both stacks. \
    Every piece here is an ordinary RGI application or middleware, so the \
    same stack runs on any conforming server.\n";

fn text(length: usize) -> ResponseHead {
    ResponseHead::new(StatusCode::OK)
        .with_header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )
        .with_header(header::CONTENT_LENGTH, HeaderValue::from(length))
}

fn page(_environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
    start.start(text(PAGE.len()))?;
    Ok(Bytes::from_static(PAGE.as_bytes()))
}

/// The body is in memory already: `PreRead` read it, or answered 413.
fn echo(mut environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
    let body = environ.input_mut().read_to_bytes(64 * 1024)?;
    start.start(text(body.len()))?;
    Ok(body)
}

#[allow(
    clippy::panic,
    reason = "the bug in a handler that CatchErrors turns into a 500"
)]
fn boom(_environ: Environ, _start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
    panic!("a bug in a handler");
}

type Handler = fn(Environ, &mut StartResponse<'_>) -> Result<Bytes, BoxError>;

/// The whole stack, outermost first.
fn site(static_root: &Path) -> Result<impl rgi::Application, BoxError> {
    let router = Router::new()
        .mount(
            Mount::at("/static")?,
            BoxApplication::new(ServeDir::new(static_root)?),
        )
        .mount(
            Mount::at("/page")?,
            BoxApplication::new(rgi::from_fn(page as Handler)),
        )
        .mount(
            Mount::at("/echo")?.methods([Method::POST]),
            BoxApplication::new(PreRead::new(rgi::from_fn(echo as Handler), 4096)),
        )
        .mount(
            Mount::at("/boom")?,
            BoxApplication::new(rgi::from_fn(boom as Handler)),
        );
    let limited = ConcurrencyLimit::new(256).wrap(BodyLimit::new(4096).wrap(router));
    let shaped = Cors::new(AllowOrigin::list(["https://app.example"]))
        .wrap(Compression::new().wrap(limited));
    Ok(RequestId::new().wrap(AccessLog::new().wrap(CatchErrors::new(shaped))))
}

fn static_files() -> std::io::Result<PathBuf> {
    let root = std::env::temp_dir().join(format!("rgi-middleware-stack-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("hello.txt"), "hello from a file\n")?;
    Ok(root)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_target(false).init();
    let check = std::env::args().any(|arg| arg == "--check");
    match run(check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stack: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(check: bool) -> Result<(), BoxError> {
    let root = static_files()?;
    let port = if check { 0 } else { 8090 };
    let server = rgi_server::Server::builder()
        .bind(([127, 0, 0, 1], port))
        .handle_signals(!check)
        .serve_sync(site(&root)?)?;
    let address = server.local_addr().ok_or("no TCP listener")?;
    let outcome = if check {
        let checked = check_routes(address);
        server.shutdown();
        checked
    } else {
        println!("serving on http://{address}");
        for path in ["/page", "/static/hello.txt", "/boom", "/nope"] {
            println!("  curl -i --compressed http://{address}{path}");
        }
        println!("  curl -i -d 'hi' http://{address}/echo");
        server.wait();
        Ok(())
    };
    let _ = std::fs::remove_dir_all(&root);
    outcome
}

/// One request on its own connection; the raw response.
fn ask(address: SocketAddr, request: &str) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

fn get(address: SocketAddr, path: &str, fields: &str) -> Result<String, BoxError> {
    ask(
        address,
        &format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{fields}\r\n"),
    )
}

fn expect(response: &str, what: &str, wanted: &[&str]) -> Result<(), BoxError> {
    let lower = response.to_ascii_lowercase();
    for needle in wanted {
        if !lower.contains(&needle.to_ascii_lowercase()) {
            return Err(format!("{what}: no {needle:?} in\n{response}").into());
        }
    }
    println!("ok  {what}");
    Ok(())
}

fn check_routes(address: SocketAddr) -> Result<(), BoxError> {
    let plain = get(address, "/page", "")?;
    expect(
        &plain,
        "a page, with a generated request id",
        &["HTTP/1.1 200", "x-request-id: ", PAGE],
    )?;
    let gzip = get(address, "/page", "accept-encoding: gzip\r\n")?;
    expect(
        &gzip,
        "the page compressed",
        &[
            "HTTP/1.1 200",
            "content-encoding: gzip",
            "vary: accept-encoding",
        ],
    )?;
    let kept = get(address, "/page", "x-request-id: abc-123\r\n")?;
    expect(
        &kept,
        "an incoming request id kept",
        &["x-request-id: abc-123"],
    )?;
    let file = get(address, "/static/hello.txt", "")?;
    expect(
        &file,
        "a static file",
        &[
            "HTTP/1.1 200",
            "etag: ",
            "last-modified: ",
            "hello from a file",
        ],
    )?;
    let range = get(address, "/static/hello.txt", "range: bytes=0-4\r\n")?;
    expect(
        &range,
        "a range of it",
        &["HTTP/1.1 206", "content-range: bytes 0-4/18"],
    )?;
    let preflight = ask(
        address,
        "OPTIONS /page HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
         origin: https://app.example\r\naccess-control-request-method: GET\r\n\r\n",
    )?;
    expect(
        &preflight,
        "a CORS preflight",
        &[
            "HTTP/1.1 200",
            "access-control-allow-origin: https://app.example",
        ],
    )?;
    let echoed = ask(
        address,
        "POST /echo HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello",
    )?;
    expect(
        &echoed,
        "an echo after a pre-read",
        &["HTTP/1.1 200", "\r\n\r\nhello"],
    )?;
    let large = ask(
        address,
        "POST /echo HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: 5000\r\n\r\n",
    )?;
    expect(&large, "a body over the limit", &["HTTP/1.1 413"])?;
    let wrong = ask(
        address,
        "PUT /echo HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
    )?;
    expect(
        &wrong,
        "a method the route does not take",
        &["HTTP/1.1 405", "allow: POST"],
    )?;
    let panicked = get(address, "/boom", "")?;
    expect(&panicked, "a panicking handler caught", &["HTTP/1.1 500"])?;
    let missing = get(address, "/nope", "")?;
    expect(&missing, "no route", &["HTTP/1.1 404"])?;
    println!("every route answered as expected");
    Ok(())
}
