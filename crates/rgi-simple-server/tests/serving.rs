//! Serving over real sockets: the happy paths of phase 1.
// A failed unwrap in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, header};
use rgi::{Body, BoxError, Environ, ResponseHead, StartResponse};

use common::{connect, exchange, read_to_close, responses, start};

fn hello() -> impl rgi::Application {
    rgi::from_fn(|environ: Environ, start: &mut StartResponse<'_>| {
        let body = Bytes::from(format!("hello {}", environ.raw_path()));
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(header::CONTENT_TYPE, "text/plain".parse()?),
        )?;
        Ok(body)
    })
}

/// Echoes the request body, with a Content-Length when the request had one.
fn echo() -> impl rgi::Application {
    rgi::from_fn(|mut environ: Environ, start: &mut StartResponse<'_>| {
        let body = environ.input_mut().read_to_bytes(1 << 20)?;
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(body)
    })
}

#[test]
fn hello_with_date_and_server() {
    let server = start(hello());
    let addr = server.tcp_addr().unwrap();
    let (bytes, closed) = exchange(
        addr,
        b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(closed);
    let r = &responses(&bytes, &[])[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello /x");
    assert_eq!(r.header("content-length"), Some("8"));
    assert!(r.header("date").is_some_and(|d| d.ends_with("GMT")));
    assert!(
        r.header("server")
            .is_some_and(|s| s.starts_with("rgi-simple-server"))
    );
    assert_eq!(r.header("connection"), Some("close"));
    server.shutdown(Duration::from_secs(5));
}

struct Countdown {
    left: u32,
    dropped: Arc<AtomicUsize>,
}

impl Body for Countdown {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if !start.is_started() {
            if let Err(e) = start.start(ResponseHead::new(StatusCode::OK)) {
                return Some(Err(e.into()));
            }
        }
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(Ok(Bytes::from(format!("{}\n", self.left))))
    }
}

impl Drop for Countdown {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn streamed_chunked_response_and_drop_once() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&dropped);
    let server = start(rgi::from_fn(move |_e, _s| {
        Ok(Countdown {
            left: 3,
            dropped: Arc::clone(&counter),
        })
    }));
    let addr = server.tcp_addr().unwrap();
    let (bytes, _) = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let r = &responses(&bytes, &[])[0];
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body, b"2\n1\n0\n");
    server.shutdown(Duration::from_secs(5));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn drop_once_when_the_client_disconnects() {
    struct Endless(Arc<AtomicUsize>);
    impl Body for Endless {
        fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
            if !start.is_started() {
                if let Err(e) = start.start(ResponseHead::new(StatusCode::OK)) {
                    return Some(Err(e.into()));
                }
            }
            Some(Ok(Bytes::from(vec![b'x'; 64 * 1024])))
        }
    }
    impl Drop for Endless {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&dropped);
    let server = start(rgi::from_fn(move |_e, _s| {
        Ok(Endless(Arc::clone(&counter)))
    }));
    let addr = server.tcp_addr().unwrap();
    {
        let mut stream = connect(addr);
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dropped.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    server.shutdown(Duration::from_secs(5));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn post_echo_content_length_and_chunked() {
    let server = start(echo());
    let addr = server.tcp_addr().unwrap();
    let (bytes, _) = exchange(
        addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello worldPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    let rs = responses(&bytes, &[]);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].body, b"hello world");
    assert_eq!(rs[1].body, b"hello world");
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn expect_100_continue_on_first_read() {
    let server = start(echo());
    let addr = server.tcp_addr().unwrap();
    let mut stream = connect(addr);
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"ping").unwrap();
    let (bytes, _) = read_to_close(&mut stream);
    let r = &responses(&bytes, &[])[0];
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ping"[..]));
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn no_100_continue_when_the_body_is_not_read() {
    let server = start(hello());
    let addr = server.tcp_addr().unwrap();
    let (bytes, closed) = exchange(
        addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    assert!(closed, "an unread body with a pending expectation closes");
    let rs = responses(&bytes, &[]);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 200);
}

#[test]
fn head_has_no_body() {
    let server = start(hello());
    let addr = server.tcp_addr().unwrap();
    let (bytes, _) = exchange(addr, b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let rs = responses(&bytes, &[true, false]);
    assert_eq!(rs.len(), 2);
    // The server declares no length for HEAD (RGI-CL-6): the head carries
    // only what the application gave.
    assert_eq!(rs[0].status, 200);
    assert_eq!(rs[0].header("transfer-encoding"), None);
    assert!(rs[0].body.is_empty());
    assert_eq!(rs[1].body, b"hello /y");
}

#[test]
fn http10_close_delimited_and_keep_alive() {
    let streaming = rgi::from_fn(|_e, start: &mut StartResponse<'_>| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(rgi::from_iter(["a", "b"]))
    });
    let server = start(streaming);
    let addr = server.tcp_addr().unwrap();
    let (bytes, closed) = exchange(addr, b"GET / HTTP/1.0\r\n\r\n");
    assert!(closed);
    let r = &responses(&bytes, &[])[0];
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body, b"ab");
    server.shutdown(Duration::from_secs(5));

    let server = start(hello());
    let addr = server.tcp_addr().unwrap();
    let (bytes, _) = exchange(
        addr,
        b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    );
    let rs = responses(&bytes, &[]);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].header("connection"), Some("keep-alive"));
    assert_eq!(rs[1].body, b"hello /2");
}

#[test]
fn keep_alive_and_pipelining_in_order() {
    let server = start(hello());
    let addr = server.tcp_addr().unwrap();
    let mut burst = Vec::new();
    for i in 0..10 {
        burst.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
    burst.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let (bytes, closed) = exchange(addr, &burst);
    assert!(closed);
    let rs = responses(&bytes, &[]);
    assert_eq!(rs.len(), 11);
    for (i, r) in rs.iter().take(10).enumerate() {
        assert_eq!(r.body, format!("hello /{i}").as_bytes());
    }
    assert_eq!(rs[10].body, b"hello /last");

    // Sequential requests on one kept connection.
    let mut stream = connect(addr);
    for i in 0..3 {
        stream
            .write_all(format!("GET /k{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).unwrap();
        let rs = responses(&buf[..n], &[]);
        assert_eq!(rs[0].body, format!("hello /k{i}").as_bytes());
    }
}

#[test]
fn panic_is_500_and_the_server_keeps_serving() {
    let app = rgi::from_fn(|environ: Environ, start: &mut StartResponse<'_>| {
        if environ.raw_path() == "/panic" {
            panic!("deliberate");
        }
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from_static(b"fine"))
    });
    let server = start(app);
    let addr = server.tcp_addr().unwrap();
    let (bytes, _) = exchange(
        addr,
        b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let rs = responses(&bytes, &[]);
    assert_eq!(rs[0].status, 500);
    assert!(rs[0].body.is_empty(), "no application detail leaks");
    assert_eq!(rs[1].body, b"fine");
    for _ in 0..8 {
        let (bytes, _) = exchange(
            addr,
            b"GET /panic HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(responses(&bytes, &[])[0].status, 500);
    }
    let (bytes, _) = exchange(
        addr,
        b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(responses(&bytes, &[])[0].body, b"fine");
}

#[test]
fn panic_after_the_head_ends_abnormally() {
    struct Half;
    impl Body for Half {
        fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
            if !start.is_started() {
                if let Err(e) = start.start(ResponseHead::new(StatusCode::OK)) {
                    return Some(Err(e.into()));
                }
                return Some(Ok(Bytes::from_static(b"part")));
            }
            panic!("after the head");
        }
    }
    let server = start(rgi::from_fn(|_e, _s| Ok(Half)));
    let addr = server.tcp_addr().unwrap();
    let (bytes, closed) = exchange(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(closed);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("4\r\npart\r\n"));
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "no last-chunk after a failure: {text}"
    );
}

#[test]
fn unread_body_is_drained_and_the_connection_kept() {
    let server = start(hello());
    let addr = server.tcp_addr().unwrap();
    let (bytes, _) = exchange(
        addr,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabcdeGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let rs = responses(&bytes, &[]);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[1].body, b"hello /b");
}

#[test]
fn environ_is_built_as_the_spec_says() {
    let app = rgi::from_fn(|environ: Environ, start: &mut StartResponse<'_>| {
        let text = format!(
            "{} {} {:?} {} {} {:?} {:?} {}",
            environ.method(),
            environ.query_string(),
            environ.version(),
            environ.server_name(),
            environ.path_info().to_string_lossy(),
            environ.content_length(),
            environ.remote_addr().map(|a| a.ip()),
            environ.headers().get_all("x-dup").iter().count(),
        );
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(text))
    });
    let server = start(app);
    let addr = server.tcp_addr().unwrap();
    let (bytes, _) = exchange(
        addr,
        b"GET /a%2Fb?q=1 HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nX-Dup: 2\r\nConnection: close\r\n\r\n",
    );
    let r = &responses(&bytes, &[])[0];
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "GET q=1 HTTP/1.1 127.0.0.1 /a/b Some(0) Some(127.0.0.1) 2"
    );
}

#[test]
fn unix_socket() {
    let dir = std::env::temp_dir().join(format!("rgi-simple-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let server = rgi_simple_server::Builder::new()
        .bind_unix(&path)
        .workers(2)
        .serve_sync(hello())
        .unwrap();
    let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    stream.set_read_timeout(Some(common::PATIENCE)).unwrap();
    stream
        .write_all(b"GET /u HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    assert_eq!(responses(&bytes, &[])[0].body, b"hello /u");
    server.shutdown(Duration::from_secs(5));
    assert!(!path.exists());
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn graceful_shutdown_finishes_in_flight() {
    let app = rgi::from_fn(|_e, start: &mut StartResponse<'_>| {
        std::thread::sleep(Duration::from_millis(300));
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from_static(b"late"))
    });
    let server = start(app);
    let addr = server.tcp_addr().unwrap();
    let client = std::thread::spawn(move || {
        exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
    });
    std::thread::sleep(Duration::from_millis(100));
    server.shutdown(Duration::from_secs(5));
    let (bytes, _) = client.join().unwrap();
    assert_eq!(responses(&bytes, &[])[0].body, b"late");
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn absolute_form_and_asterisk_form_reach_the_application() {
    let app = rgi::from_fn(|environ: Environ, start: &mut StartResponse<'_>| {
        let text = format!(
            "{} {} {}",
            environ.method(),
            environ.path_info().to_string_lossy(),
            environ
                .headers()
                .get(header::HOST)
                .map_or("-", |h| h.to_str().unwrap_or("?")),
        );
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Bytes::from(text))
    });
    let server = start(app);
    let addr = server.tcp_addr().unwrap();
    let (bytes, _) = exchange(
        addr,
        b"GET http://Example.com:80/p?q HTTP/1.1\r\nHost: example.com\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let rs = responses(&bytes, &[]);
    assert_eq!(rs[0].body, b"GET /p Example.com:80");
    assert_eq!(rs[1].body, b"OPTIONS * a");
}

#[test]
fn an_unread_body_over_the_drain_limit_closes() {
    let server = common::start_with(
        hello(),
        rgi_simple_server::Limits::default().with_drain_limit(16),
    );
    let addr = server.tcp_addr().unwrap();
    let mut request = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n".to_vec();
    request.extend_from_slice(&[b'x'; 1000]);
    request.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    let (bytes, closed) = exchange(addr, &request);
    assert!(closed);
    assert_eq!(responses(&bytes, &[]).len(), 1);
}

#[test]
fn many_keep_alive_clients_with_pipelined_bursts_lose_nothing() {
    let server = start(hello());
    let addr = server.tcp_addr().unwrap();
    let clients: Vec<_> = (0..16)
        .map(|c| {
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                let mut served = 0;
                for round in 0..10 {
                    // Bursts of five requests in one write, then read all five.
                    let mut burst = Vec::new();
                    for i in 0..5 {
                        burst.extend_from_slice(
                            format!("GET /{c}/{round}/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
                        );
                    }
                    stream.write_all(&burst).unwrap();
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    while responses_complete(&got) < 5 {
                        let n = stream.read(&mut buf).unwrap();
                        assert!(n > 0, "closed early");
                        got.extend_from_slice(&buf[..n]);
                    }
                    let rs = responses(&got, &[]);
                    for (i, r) in rs.iter().enumerate() {
                        assert_eq!(r.body, format!("hello /{c}/{round}/{i}").as_bytes());
                    }
                    served += rs.len();
                }
                served
            })
        })
        .collect();
    let total: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(total, 16 * 10 * 5);
    server.shutdown(Duration::from_secs(5));
}

/// How many complete Content-Length responses `bytes` holds.
fn responses_complete(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if bytes.len() < end + 4 + length {
            break;
        }
        bytes = &bytes[end + 4 + length..];
        count += 1;
    }
    count
}

#[test]
fn shutdown_abandons_a_response_past_the_grace_period() {
    struct Slow(Arc<AtomicUsize>);
    impl Body for Slow {
        fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
            if !start.is_started() {
                if let Err(e) = start.start(ResponseHead::new(StatusCode::OK)) {
                    return Some(Err(e.into()));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
            Some(Ok(Bytes::from_static(b"tick\n")))
        }
    }
    impl Drop for Slow {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&dropped);
    let server = start(rgi::from_fn(move |_e, _s| Ok(Slow(Arc::clone(&counter)))));
    let addr = server.tcp_addr().unwrap();
    let mut stream = connect(addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let _ = stream.read(&mut buf).unwrap();
    let started = std::time::Instant::now();
    server.shutdown(Duration::from_millis(200));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    let (rest, closed) = read_to_close(&mut stream);
    assert!(closed);
    assert!(
        !String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n"),
        "an abandoned response is not completed"
    );
}
