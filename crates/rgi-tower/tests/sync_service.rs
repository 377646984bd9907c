//! `SyncService` through real hyper over 127.0.0.1 and through
//! `tower::ServiceExt::oneshot`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "the applications panic on purpose; a failed unwrap is the test's failure"
)]

mod common;

use std::io::Read;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::BodyExt;
use rgi::{ConnectionInfo, Hints, Input, InputUse, ResponseHead, ServerInfo, StartResponse};
use rgi_tower::{Host, PoolConfig, SyncService};
use tower::ServiceExt;

fn inline() -> Hints {
    Hints::default()
        .with_input(InputUse::None)
        .with_may_block(false)
}

fn pre_read() -> Hints {
    Hints::default()
        .with_input(InputUse::Whole)
        .with_may_block(false)
}

/// Every dispatch a synchronous application can get.
fn all_dispatches() -> [Hints; 3] {
    [inline(), pre_read(), Hints::CONSERVATIVE]
}

#[tokio::test]
async fn hello_inline_pre_read_and_on_the_pool() {
    for hints in all_dispatches() {
        let app = rgi::from_fn(|environ, start| {
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(format!("hello {}", environ.path_info()))
        })
        .with_hints(hints);
        let service = SyncService::new(app, host(small_pool()));
        let server = serve(move |connection| service.connection(connection)).await;
        let (parts, body) = fetch(server.addr, request("GET", "/there", TestBody::empty())).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers["content-length"], "12");
        assert_eq!(body, "hello /there");
    }
}

#[tokio::test]
async fn oneshot_with_http_body_util_bodies() {
    for hints in all_dispatches() {
        let app = rgi::from_fn(|mut environ, start| {
            let mut body = Vec::new();
            if environ.method() == http::Method::POST {
                environ.input_mut().read_to_end(&mut body)?;
            }
            start.start(ResponseHead::new(StatusCode::CREATED))?;
            Ok(body)
        })
        .with_hints(hints.with_input(InputUse::Whole));
        let service = SyncService::new(app, host(small_pool()));
        let request = http::Request::post("/")
            .body(http_body_util::Full::new(Bytes::from_static(b"posted")))
            .unwrap();
        let response = tokio::time::timeout(
            LIMIT,
            service
                .connection(Arc::new(ConnectionInfo::new()))
                .oneshot(request),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "posted", "{hints:?}");
    }
}

/// Echoes the input upper-cased, one chunk per read, as it arrives.
struct Echo(Input);

impl rgi::Body for Echo {
    fn next_chunk(
        &mut self,
        _start: &mut StartResponse<'_>,
    ) -> Option<Result<Bytes, rgi::BoxError>> {
        match self.0.read_chunk(1024) {
            Ok(chunk) if chunk.is_empty() => None,
            Ok(chunk) => Some(Ok(Bytes::from(chunk.to_ascii_uppercase()))),
            Err(err) => Some(Err(err.into())),
        }
    }
}

#[tokio::test]
async fn streaming_both_ways_on_the_pool() {
    let app = rgi::from_fn(|environ: rgi::Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Echo(environ.into_input()))
    });
    let service = SyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let mut sender = client(server.addr).await;
    let (chunks, body) = TestBody::channel(1);
    chunks.send(Bytes::from_static(b"abc")).await.unwrap();
    let response = tokio::time::timeout(LIMIT, sender.send_request(request("POST", "/", body)))
        .await
        .unwrap()
        .unwrap();
    let mut response = response.into_body();
    // Each answer arrives before the next request chunk is sent: the
    // application reads as the client sends and writes as it reads.
    for (sent, expected) in [("def", "ABC"), ("ghi", "DEF")] {
        let frame = tokio::time::timeout(LIMIT, response.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(frame.into_data().unwrap(), expected);
        chunks
            .send(Bytes::from_static(sent.as_bytes()))
            .await
            .unwrap();
    }
    drop(chunks);
    let rest = tokio::time::timeout(LIMIT, response.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "GHI");
}

#[tokio::test]
async fn a_full_pool_answers_503_with_retry_after() {
    let (release, released) = mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    let (entered, entries) = mpsc::channel();
    let app = rgi::from_fn(move |_environ, start| {
        entered.send(()).ok();
        let _ = released.lock().map(|rx| rx.recv_timeout(LIMIT));
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(String::from("done"))
    });
    let host = host(PoolConfig {
        threads: 1,
        queue: 0,
        per_connection: 1,
    });
    let pool = host.pool().clone();
    let service = SyncService::new(app, host);
    let server = serve(move |connection| service.connection(connection)).await;
    let addr = server.addr;
    let first =
        tokio::spawn(async move { fetch(addr, request("GET", "/", TestBody::empty())).await });
    tokio::task::spawn_blocking(move || entries.recv_timeout(LIMIT).unwrap())
        .await
        .unwrap();
    let (parts, _) = fetch(addr, request("GET", "/", TestBody::empty())).await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(parts.headers["retry-after"], "1");
    assert_eq!(pool.stats().rejected, 1);
    release.send(()).unwrap();
    let (parts, body) = tokio::time::timeout(LIMIT, first).await.unwrap().unwrap();
    assert_eq!(
        (parts.status, body),
        (StatusCode::OK, Bytes::from_static(b"done"))
    );
}

/// A body that panics on its second pull, after a first chunk.
struct PanicsLater {
    pulls: u32,
    _token: DropToken,
}

impl rgi::Body for PanicsLater {
    fn next_chunk(
        &mut self,
        _start: &mut StartResponse<'_>,
    ) -> Option<Result<Bytes, rgi::BoxError>> {
        self.pulls += 1;
        if self.pulls > 1 {
            panic!("application body failure on purpose");
        }
        Some(Ok(Bytes::from_static(b"first")))
    }
}

#[tokio::test]
async fn panics_before_the_head_are_500_after_it_an_abort() {
    for hints in all_dispatches() {
        let drops = DropCounter::default();
        let counter = drops.clone();
        let app = rgi::from_fn(move |environ: rgi::Environ, start| {
            if environ.path_info() == "/early" {
                panic!("application failure on purpose");
            }
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(PanicsLater {
                pulls: 0,
                _token: counter.token(),
            })
        })
        .with_hints(hints);
        let service = SyncService::new(app, host(small_pool()));
        let server = serve(move |connection| service.connection(connection)).await;
        let (parts, body) = fetch(server.addr, request("GET", "/early", TestBody::empty())).await;
        assert_eq!(
            (parts.status, body.len()),
            (StatusCode::INTERNAL_SERVER_ERROR, 0)
        );

        let mut sender = client(server.addr).await;
        let response = tokio::time::timeout(
            LIMIT,
            sender.send_request(request("GET", "/late", TestBody::empty())),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let collected = tokio::time::timeout(LIMIT, response.into_body().collect())
            .await
            .unwrap();
        assert!(collected.is_err(), "an aborted body must not end cleanly");
        drops.expect(1).await;
        // The server goes on.
        let (parts, _) = fetch(server.addr, request("GET", "/early", TestBody::empty())).await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}

/// An endless body.
struct Endless(DropToken);

impl rgi::Body for Endless {
    fn next_chunk(
        &mut self,
        _start: &mut StartResponse<'_>,
    ) -> Option<Result<Bytes, rgi::BoxError>> {
        let _ = &self.0;
        Some(Ok(Bytes::from(vec![b'x'; 16 * 1024])))
    }
}

#[tokio::test]
async fn a_client_that_goes_away_drops_the_body_once() {
    for hints in all_dispatches() {
        let drops = DropCounter::default();
        let counter = drops.clone();
        let app = rgi::from_fn(move |_environ, start| {
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(Endless(counter.token()))
        })
        .with_hints(hints);
        let service = SyncService::new(app, host(small_pool()));
        let server = serve(move |connection| service.connection(connection)).await;
        let mut sender = client(server.addr).await;
        let response = tokio::time::timeout(
            LIMIT,
            sender.send_request(request("GET", "/", TestBody::empty())),
        )
        .await
        .unwrap()
        .unwrap();
        let mut body = response.into_body();
        tokio::time::timeout(LIMIT, body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        drop(body);
        drop(sender);
        drops.expect(1).await;
    }
}

#[tokio::test]
async fn a_finished_body_is_dropped_once() {
    for hints in all_dispatches() {
        let drops = DropCounter::default();
        let counter = drops.clone();
        let app = rgi::from_fn(move |_environ, start| {
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(chunks_body(vec!["a", "b", "c"]).counted(&counter))
        })
        .with_hints(hints);
        let service = SyncService::new(app, host(small_pool()));
        let server = serve(move |connection| service.connection(connection)).await;
        let (parts, body) = fetch(server.addr, request("GET", "/", TestBody::empty())).await;
        assert_eq!(
            (parts.status, body),
            (StatusCode::OK, Bytes::from_static(b"abc"))
        );
        drops.expect(1).await;
    }
}

#[tokio::test]
async fn head_carries_the_get_length_and_no_body() {
    for hints in all_dispatches() {
        // The application's own Content-Length goes out on HEAD too; the
        // server declares none of its own there (`[RGI-BODY-15]`).
        let app = rgi::from_fn(|_environ, start| {
            start.start(ResponseHead::new(StatusCode::OK).with_header(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_static("12"),
            ))?;
            Ok(String::from("twelve bytes"))
        })
        .with_hints(hints);
        let service = SyncService::new(app, host(small_pool()));
        let server = serve(move |connection| service.connection(connection)).await;
        let mut sender = client(server.addr).await;
        for method in ["HEAD", "GET", "HEAD"] {
            let response = tokio::time::timeout(
                LIMIT,
                sender.send_request(request(method, "/", TestBody::empty())),
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!(response.headers()["content-length"], "12", "{method}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body.len(), if method == "HEAD" { 0 } else { 12 });
        }
    }
}

/// Reads the whole input with `?` before starting: a client body error
/// ends the call with the typed error.
fn reads_whole_input(hints: Hints) -> impl rgi::Application {
    rgi::from_fn(|mut environ: rgi::Environ, start| {
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(body)
    })
    .with_hints(hints)
}

fn limited_host(max_body: u64, body_timeout: Duration) -> Host {
    Host::builder(ServerInfo::new("127.0.0.1", 80).unwrap())
        .pool(small_pool())
        .max_body(max_body)
        .body_timeout(Some(body_timeout))
        .build()
}

#[tokio::test]
async fn client_body_errors_are_answered_with_their_status() {
    for hints in [pre_read(), Hints::CONSERVATIVE] {
        let service = SyncService::new(
            reads_whole_input(hints),
            limited_host(8, Duration::from_millis(300)),
        );
        let server = serve(move |connection| service.connection(connection)).await;
        let quiet = Duration::from_secs(3);
        // Over the limit while streaming (chunked: no length up front).
        let over = raw_exchange(
            server.addr,
            b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n",
            quiet,
        )
        .await;
        assert!(over.starts_with("HTTP/1.1 413"), "{hints:?}: {over}");
        // Over the limit by its Content-Length: refused before the call.
        let declared = raw_exchange(
            server.addr,
            b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 9\r\n\r\n123456789",
            quiet,
        )
        .await;
        assert!(
            declared.starts_with("HTTP/1.1 413"),
            "{hints:?}: {declared}"
        );
        // Malformed chunked framing.
        let malformed = raw_exchange(
            server.addr,
            b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n",
            quiet,
        )
        .await;
        assert!(
            malformed.starts_with("HTTP/1.1 400"),
            "{hints:?}: {malformed}"
        );
        // Stalled past the body time.
        let stalled = raw_exchange(
            server.addr,
            b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nab",
            quiet,
        )
        .await;
        assert!(stalled.starts_with("HTTP/1.1 408"), "{hints:?}: {stalled}");
        // Within the limits the same application answers.
        let fine = raw_exchange(
            server.addr,
            b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            quiet,
        )
        .await;
        assert!(
            fine.starts_with("HTTP/1.1 200") && fine.ends_with("hello"),
            "{hints:?}: {fine}"
        );
    }
}

#[tokio::test]
async fn continue_is_sent_only_when_the_application_reads() {
    let app = rgi::from_fn(|mut environ: rgi::Environ, start| {
        let mut body = Vec::new();
        if environ.path_info() == "/read" {
            environ.input_mut().read_to_end(&mut body)?;
        }
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(body)
    });
    let service = SyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    // Not read: the answer comes without a 100 Continue.
    let ignored = raw_exchange(
        server.addr,
        b"POST /ignore HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
        Duration::from_secs(1),
    )
    .await;
    assert!(ignored.starts_with("HTTP/1.1 200"), "{ignored}");
    assert!(!ignored.contains("100 Continue"), "{ignored}");
    // Read: 100 Continue first, then the answer once the body came.
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /read HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
        )
        .await
        .unwrap();
    let interim = read_until(&mut stream, "\r\n\r\n").await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    stream.write_all(b"hello").await.unwrap();
    let answer = read_until(&mut stream, "hello").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn an_inline_application_that_reads_fails_instead_of_blocking() {
    let app = rgi::from_fn(|mut environ: rgi::Environ, start| {
        let mut body = Vec::new();
        let read = environ.input_mut().read_to_end(&mut body);
        let refused = read
            .as_ref()
            .err()
            .and_then(rgi::InputError::from_io)
            .is_some_and(|err| matches!(err, rgi::InputError::WouldBlockThread));
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(format!("refused: {refused}"))
    })
    .with_hints(inline());
    let service = SyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let (parts, body) = fetch(server.addr, request("POST", "/", TestBody::full("data"))).await;
    assert_eq!(
        (parts.status, body),
        (StatusCode::OK, Bytes::from_static(b"refused: true"))
    );
}

#[tokio::test]
async fn a_request_the_environ_refuses_is_400() {
    let app = rgi::from_fn(|_environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(String::new())
    });
    let service = SyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let answer = raw_exchange(
        server.addr,
        b"GET /bad%zz HTTP/1.1\r\nhost: a\r\n\r\n",
        Duration::from_secs(1),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// `total` bytes in 64 KiB chunks, counting what it produced.
struct Flood {
    left: usize,
    produced: Arc<std::sync::atomic::AtomicUsize>,
}

impl rgi::Body for Flood {
    fn next_chunk(
        &mut self,
        _start: &mut StartResponse<'_>,
    ) -> Option<Result<Bytes, rgi::BoxError>> {
        if self.left == 0 {
            return None;
        }
        let size = self.left.min(64 * 1024);
        self.left -= size;
        self.produced
            .fetch_add(size, std::sync::atomic::Ordering::SeqCst);
        Some(Ok(Bytes::from(vec![b'f'; size])))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_holds_the_pool_worker_back() {
    slow_reader().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_slow_reader_at_the_same_time() {
    slow_reader().await;
}

async fn slow_reader() {
    const TOTAL: usize = 64 * 1024 * 1024;
    let produced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&produced);
    let app = rgi::from_fn(move |_environ, start| {
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(http::header::CONTENT_LENGTH, http::HeaderValue::from(TOTAL)),
        )?;
        Ok(Flood {
            left: TOTAL,
            produced: Arc::clone(&counter),
        })
    });
    let service = SyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = produced.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        held > 0 && held < TOTAL / 2,
        "produced {held} bytes for a client that reads nothing"
    );
    let mut received = 0;
    let mut buffer = vec![0; 256 * 1024];
    while received < TOTAL {
        let count = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "stalled after {received} bytes, produced {}",
                    produced.load(std::sync::atomic::Ordering::SeqCst)
                )
            })
            .unwrap();
        assert!(count > 0);
        received += count;
    }
}

#[tokio::test]
async fn a_queued_request_whose_client_left_is_never_started() {
    let (release, released) = mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    let (entered, entries) = mpsc::channel();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = rgi::from_fn(move |environ: rgi::Environ, start| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if environ.path_info() == "/hold" {
            entered.send(()).ok();
            let _ = released.lock().map(|rx| rx.recv_timeout(LIMIT));
        }
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(String::from("done"))
    });
    let host = host(PoolConfig {
        threads: 1,
        queue: 1,
        per_connection: 2,
    });
    let pool = host.pool().clone();
    let service = SyncService::new(app, host);
    let server = serve(move |connection| service.connection(connection)).await;
    let addr = server.addr;
    let holder =
        tokio::spawn(async move { fetch(addr, request("GET", "/hold", TestBody::empty())).await });
    tokio::task::spawn_blocking(move || entries.recv_timeout(LIMIT).unwrap())
        .await
        .unwrap();
    // A second request waits in the queue; its client gives up.
    let mut sender = client(addr).await;
    let waiting = tokio::time::timeout(
        Duration::from_millis(300),
        sender.send_request(request("GET", "/queued", TestBody::empty())),
    )
    .await;
    assert!(waiting.is_err(), "the queued request was answered early");
    drop(sender);
    assert_eq!(pool.stats().queued, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.send(()).unwrap();
    let (parts, _) = tokio::time::timeout(LIMIT, holder).await.unwrap().unwrap();
    assert_eq!(parts.status, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while pool.stats().queued + pool.stats().running > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Only the held request ever reached the application.
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_absolute_form_target_names_the_host() {
    let app = rgi::from_fn(|environ: rgi::Environ, start| {
        let hosts: Vec<_> = environ
            .headers()
            .get_all(http::header::HOST)
            .iter()
            .map(|host| String::from_utf8_lossy(host.as_bytes()).into_owned())
            .collect();
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(format!("{} {}", environ.path_info(), hosts.join(",")))
    });
    let service = SyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let answer = raw_exchange(
        server.addr,
        b"GET http://example.test:8080/abs?q=1 HTTP/1.1\r\nhost: EXAMPLE.test:8080\r\nconnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(answer.ends_with("/abs example.test:8080"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_body_never_loses_the_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = rgi::from_fn(|environ: rgi::Environ, start| {
        let answer = format!("{} {}", environ.method(), environ.uri());
        start.start(ResponseHead::new(StatusCode::OK).with_header(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(answer.len()),
        ))?;
        Ok(Bytes::from(answer))
    });
    let service = SyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    for round in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /ignore HTTP/1.1\r\nhost: a\r\ncontent-length: 43\r\n\r\n")
            .await
            .unwrap();
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        // The body, separately: the server may see the head alone first.
        stream
            .write_all(b"GET /smuggled HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = [0; 1024];
        while !String::from_utf8_lossy(&received).ends_with("POST /ignore") {
            let count = tokio::time::timeout(LIMIT, stream.read(&mut buffer))
                .await
                .unwrap()
                .unwrap();
            assert!(
                count > 0,
                "round {round}: closed after {:?}",
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&buffer[..count]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_response_is_never_lost() {
    let app = rgi::from_fn(|mut environ: rgi::Environ, start| {
        let mut body = Vec::new();
        environ.input_mut().read_to_end(&mut body)?;
        start.start(ResponseHead::new(StatusCode::CREATED))?;
        Ok(body)
    });
    let service = SyncService::new(app, host(small_pool()));
    let connection = service.connection(Arc::new(ConnectionInfo::new()));
    for round in 0..300 {
        let request = http::Request::post("/")
            .body(http_body_util::Full::new(Bytes::from_static(b"posted")))
            .unwrap();
        let response = tokio::time::timeout(LIMIT, connection.clone().oneshot(request))
            .await
            .unwrap()
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(LIMIT, body.collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        assert_eq!(body, "posted", "round {round}: {parts:?}");
    }
}
