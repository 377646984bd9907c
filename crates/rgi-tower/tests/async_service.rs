//! `AsyncService` through real hyper over 127.0.0.1 and through
//! `tower::ServiceExt::oneshot`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "the applications panic on purpose; a failed unwrap is the test's failure"
)]

mod common;

use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::BodyExt;
use rgi::{BoxError, ConnectionInfo, Input, ResponseHead, ServerInfo, StartResponse};
use rgi_async::{AsyncBody, Step, SyncSwitch};
use rgi_tower::{AsyncService, Host, PoolConfig};
use tower::ServiceExt;

#[tokio::test]
async fn hello_async() {
    let app = rgi_async::from_fn(|environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        let offload = rgi_async::Capabilities::of(&environ).is_some();
        Ok(Bytes::from(format!(
            "hello {} {offload}",
            environ.path_info()
        )))
    });
    let service = AsyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let (parts, body) = fetch(server.addr, request("GET", "/there", TestBody::empty())).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-length"], "17");
    assert_eq!(body, "hello /there true");
}

#[tokio::test]
async fn head_then_get_on_one_connection() {
    let app = rgi_async::from_fn(|_environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(chunks_body(vec!["hel", "lo"]))
    });
    let service = AsyncService::new(app, host(small_pool()));
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
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, if method == "HEAD" { "" } else { "hello" });
    }
}

/// Echoes the input upper-cased through the non-blocking face.
struct AsyncEcho(Input);

impl AsyncBody for AsyncEcho {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        match std::task::ready!(self.get_mut().0.poll_chunk(cx, 1024)) {
            Ok(chunk) if chunk.is_empty() => Poll::Ready(None),
            Ok(chunk) => Step::ready(Ok::<_, BoxError>(Bytes::from(chunk.to_ascii_uppercase()))),
            Err(err) => Step::ready(Err::<Bytes, _>(err)),
        }
    }
}

#[tokio::test]
async fn streaming_both_ways_through_poll_step() {
    let app = rgi_async::from_fn(|environ: rgi::Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(AsyncEcho(environ.into_input()))
    });
    let service = AsyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let mut sender = client(server.addr).await;
    let (chunks, body) = TestBody::channel(1);
    chunks.send(Bytes::from_static(b"abc")).await.unwrap();
    let response = tokio::time::timeout(LIMIT, sender.send_request(request("POST", "/", body)))
        .await
        .unwrap()
        .unwrap();
    let mut response = response.into_body();
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

/// Polls the body with `step`, dropping `token` with it.
struct Scripted<F> {
    step: F,
    _token: Option<DropToken>,
}

impl<F> AsyncBody for Scripted<F>
where
    F: FnMut(&mut Context<'_>, &mut StartResponse<'_>) -> Poll<Option<Result<Step, BoxError>>>
        + Send
        + Unpin,
{
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        (self.get_mut().step)(cx, start)
    }
}

#[tokio::test]
async fn panics_before_the_head_are_500_after_it_an_abort() {
    let drops = DropCounter::default();
    let counter = drops.clone();
    let app = rgi_async::from_fn(
        move |environ: rgi::Environ, _start: &mut StartResponse<'_>| {
            if environ.path_info() == "/in-call" {
                panic!("application failure on purpose");
            }
            let early = environ.path_info() == "/in-poll";
            let mut polls = 0;
            Ok(Scripted {
                step: move |_cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
                    polls += 1;
                    if early || polls > 1 {
                        panic!("application body failure on purpose");
                    }
                    start.start(ResponseHead::new(StatusCode::OK))?;
                    Step::ready(Ok::<_, BoxError>(Bytes::from_static(b"first")))
                },
                _token: Some(counter.token()),
            })
        },
    );
    let service = AsyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    for target in ["/in-call", "/in-poll"] {
        let (parts, _) = fetch(server.addr, request("GET", target, TestBody::empty())).await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR, "{target}");
    }
    drops.expect(1).await;
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
    drops.expect(2).await;
}

#[tokio::test]
async fn a_client_that_goes_away_drops_the_body_once() {
    let drops = DropCounter::default();
    let counter = drops.clone();
    let app = rgi_async::from_fn(move |_environ, start: &mut StartResponse<'_>| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(Scripted {
            step: |_cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                Step::ready(Ok::<_, BoxError>(Bytes::from(vec![b'x'; 16 * 1024])))
            },
            _token: Some(counter.token()),
        })
    });
    let service = AsyncService::new(app, host(small_pool()));
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

/// Reads the whole input through the non-blocking face, then answers it.
struct ReadAll {
    input: Input,
    read: Vec<u8>,
}

impl AsyncBody for ReadAll {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        if start.is_started() {
            return Poll::Ready(None);
        }
        loop {
            match std::task::ready!(this.input.poll_chunk(cx, 1024)) {
                Ok(chunk) if chunk.is_empty() => break,
                Ok(chunk) => this.read.extend_from_slice(&chunk),
                Err(err) => return Step::ready(Err::<Bytes, _>(err)),
            }
        }
        start.start(ResponseHead::new(StatusCode::OK))?;
        Step::ready(Ok::<_, BoxError>(Bytes::from(std::mem::take(
            &mut this.read,
        ))))
    }
}

#[tokio::test]
async fn client_body_errors_are_answered_with_their_status() {
    let app = rgi_async::from_fn(|environ: rgi::Environ, _start: &mut StartResponse<'_>| {
        Ok(ReadAll {
            input: environ.into_input(),
            read: Vec::new(),
        })
    });
    let host = Host::builder(ServerInfo::new("127.0.0.1", 80).unwrap())
        .pool(small_pool())
        .max_body(8)
        .body_timeout(Some(Duration::from_millis(300)))
        .build();
    let service = AsyncService::new(app, host);
    let server = serve(move |connection| service.connection(connection)).await;
    let quiet = Duration::from_secs(3);
    let cases: [(&[u8], &str); 5] = [
        (
            b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n",
            "HTTP/1.1 413",
        ),
        (
            b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 9\r\n\r\n123456789",
            "HTTP/1.1 413",
        ),
        (
            b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nab",
            "HTTP/1.1 408",
        ),
        (
            b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            "HTTP/1.1 200",
        ),
    ];
    for (sent, expected) in cases {
        let answer = raw_exchange(server.addr, sent, quiet).await;
        assert!(
            answer.starts_with(expected),
            "{}: {answer}",
            String::from_utf8_lossy(sent)
        );
    }
}

#[tokio::test]
async fn continue_is_sent_on_the_first_read_only() {
    let app = rgi_async::from_fn(|environ: rgi::Environ, start: &mut StartResponse<'_>| {
        if environ.path_info() == "/ignore" {
            start.start(ResponseHead::new(StatusCode::OK))?;
            return Ok(Box::new(Bytes::from_static(b"ignored")) as Box<dyn AsyncBody + Unpin>);
        }
        Ok(Box::new(ReadAll {
            input: environ.into_input(),
            read: Vec::new(),
        }))
    });
    let service = AsyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let ignored = raw_exchange(
        server.addr,
        b"POST /ignore HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
        Duration::from_secs(1),
    )
    .await;
    assert!(ignored.starts_with("HTTP/1.1 200"), "{ignored}");
    assert!(!ignored.contains("100 Continue"), "{ignored}");
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

/// Reads up to three bytes without blocking, then switches: the
/// continuation reads the rest blocking, on a pool thread.
struct SwitchAfterThree {
    input: Option<Input>,
    token: Option<DropToken>,
}

impl AsyncBody for SwitchAfterThree {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        let Some(input) = this.input.as_mut() else {
            return Poll::Ready(None);
        };
        let first = match std::task::ready!(input.poll_chunk(cx, 3)) {
            Ok(first) => first,
            Err(err) => return Step::ready(Err::<Bytes, _>(err)),
        };
        let mut input = this.input.take().unwrap();
        let token = this.token.take();
        Step::ready(Ok::<_, BoxError>(SyncSwitch::new(move |start| {
            let _token = token;
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            let mut rest = String::new();
            input.read_to_string(&mut rest)?;
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(format!(
                "{}|{rest}|{}",
                String::from_utf8_lossy(&first),
                thread.starts_with("rgi-pool")
            ))
        })))
    }
}

#[tokio::test]
async fn a_switch_reads_exactly_the_unread_rest_on_the_pool() {
    let drops = DropCounter::default();
    let counter = drops.clone();
    let app = rgi_async::from_fn(
        move |environ: rgi::Environ, _start: &mut StartResponse<'_>| {
            Ok(SwitchAfterThree {
                input: Some(environ.into_input()),
                token: Some(counter.token()),
            })
        },
    );
    let service = AsyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    // Whole, and streamed in pieces the continuation waits for.
    let (parts, body) = fetch(
        server.addr,
        request("POST", "/", TestBody::full("abcdefgh")),
    )
    .await;
    assert_eq!(
        (parts.status, body),
        (StatusCode::OK, Bytes::from_static(b"abc|defgh|true"))
    );
    let mut sender = client(server.addr).await;
    let (chunks, streamed) = TestBody::channel(1);
    let response = tokio::spawn(async move {
        let response = sender
            .send_request(request("POST", "/", streamed))
            .await
            .unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    });
    for piece in ["ab", "cd", "ef"] {
        chunks
            .send(Bytes::from_static(piece.as_bytes()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(chunks);
    let body = tokio::time::timeout(LIMIT, response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body, "ab|cdef|true");
    // The token moved into each continuation, dropped once each.
    drops.expect(2).await;
}

#[tokio::test]
async fn a_switch_after_the_head_keeps_the_state() {
    let drops = DropCounter::default();
    let counter = drops.clone();
    let app = rgi_async::from_fn(move |_environ, _start: &mut StartResponse<'_>| {
        let mut polls = 0;
        Ok(Scripted {
            step: move |_cx: &mut Context<'_>, start: &mut StartResponse<'_>| {
                polls += 1;
                if polls == 1 {
                    start.start(ResponseHead::new(StatusCode::OK).with_header(
                        http::header::CONTENT_LENGTH,
                        http::HeaderValue::from_static("12"),
                    ))?;
                    return Step::ready(Ok::<_, BoxError>(Bytes::from_static(b"before ")));
                }
                Step::ready(Ok::<_, BoxError>(SyncSwitch::new(|_start| {
                    // The head went out; the state still enforces its length.
                    Ok(rgi::from_iter(["after", " and more than declared"]))
                })))
            },
            _token: Some(counter.token()),
        })
    });
    let service = AsyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let (parts, body) = fetch(server.addr, request("GET", "/", TestBody::empty())).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-length"], "12");
    assert_eq!(body, "before after");
    // The asynchronous body was dropped before the continuation ran.
    drops.expect(1).await;
}

#[tokio::test]
async fn a_switch_the_full_pool_refuses_is_503() {
    let app = rgi_async::from_fn(|_environ, _start: &mut StartResponse<'_>| {
        Ok(Scripted {
            step: |_cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                Step::ready(Ok::<_, BoxError>(SyncSwitch::new(|start| {
                    start.start(ResponseHead::new(StatusCode::OK))?;
                    Ok(String::from("ran"))
                })))
            },
            _token: None,
        })
    });
    let host = host(PoolConfig {
        threads: 1,
        queue: 0,
        per_connection: 1,
    });
    let pool = host.pool().clone();
    let service = AsyncService::new(app, host);
    let server = serve(move |connection| service.connection(connection)).await;
    let (release, released) = mpsc::channel::<()>();
    let (entered, entries) = mpsc::channel();
    pool.try_execute(move || {
        entered.send(()).ok();
        released.recv_timeout(LIMIT).ok();
    })
    .unwrap();
    tokio::task::spawn_blocking(move || entries.recv_timeout(LIMIT).unwrap())
        .await
        .unwrap();
    let (parts, _) = fetch(server.addr, request("GET", "/", TestBody::empty())).await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(parts.headers.contains_key("retry-after"));
    release.send(()).unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while pool.stats().running > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (parts, body) = fetch(server.addr, request("GET", "/", TestBody::empty())).await;
    assert_eq!(
        (parts.status, body),
        (StatusCode::OK, Bytes::from_static(b"ran"))
    );
}

#[tokio::test]
async fn offload_goes_to_the_connections_share_of_the_pool() {
    let app = rgi_async::from_fn(|environ: rgi::Environ, start: &mut StartResponse<'_>| {
        let capabilities = rgi_async::Capabilities::of(&environ).ok_or("no capabilities")?;
        let job = capabilities
            .offload()
            .run(|| std::thread::current().name().unwrap_or("").to_owned());
        start.start(ResponseHead::new(StatusCode::OK))?;
        let mut job = Some(job);
        Ok(Scripted {
            step: move |cx: &mut Context<'_>, _start: &mut StartResponse<'_>| {
                let Some(pending) = job.as_mut() else {
                    return Poll::Ready(None);
                };
                let name = std::task::ready!(Pin::new(pending).poll(cx))?;
                job = None;
                Step::ready(Ok::<_, BoxError>(Bytes::from(name)))
            },
            _token: None,
        })
    });
    let service = AsyncService::new(app, host(small_pool()));
    let response = tokio::time::timeout(
        LIMIT,
        service.connection(Arc::new(ConnectionInfo::new())).oneshot(
            http::Request::get("/")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"rgi-pool-"), "{body:?}");
}

use std::future::Future;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_body_is_detached_when_the_response_ends() {
    let (keep, kept) = mpsc::channel::<Input>();
    let keep = std::sync::Mutex::new(keep);
    let app = rgi_async::from_fn(
        move |environ: rgi::Environ, start: &mut StartResponse<'_>| {
            // The application keeps the input past its response.
            keep.lock().unwrap().send(environ.into_input()).unwrap();
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(Bytes::from_static(b"answered"))
        },
    );
    let service = AsyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let mut sender = client(server.addr).await;
    let (chunks, body) = TestBody::channel(1);
    let response = tokio::time::timeout(LIMIT, sender.send_request(request("POST", "/", body)))
        .await
        .unwrap()
        .unwrap();
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(answer, "answered");
    drop(chunks);
    let read = tokio::task::spawn_blocking(move || {
        let mut input = kept.recv_timeout(LIMIT).unwrap();
        let mut rest = Vec::new();
        input.read_to_end(&mut rest).map_err(|err| {
            matches!(
                rgi::InputError::from_io(&err),
                Some(rgi::InputError::ResponseFinished)
            )
        })
    })
    .await
    .unwrap();
    assert_eq!(
        read,
        Err(true),
        "a read after the response must fail with ResponseFinished"
    );
}
