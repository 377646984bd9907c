//! Broken asynchronous applications, run behind the asynchronous test
//! client (and, for synchronous code under the threaded adapter, behind
//! `rgi_async::Threaded`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "the mistakes are the point of this module"
)]

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rgi::{Environ, Hints, InputUse, ResponseHead, StartResponse};
use rgi_async::{AsyncBody, Capabilities, Interest, OffloadFuture, Step, SyncSwitch, Threaded};
use rgi_conformance::client::{AsyncTestClient, TestRequest};
use rgi_conformance::{Side, Violation};

use crate::support::{
    AsyncScript, async_client, async_one, broken, chunk, head, ok, ok_with_length,
};
use crate::{Component, Interface, Kind};

type Run = Result<Vec<Violation>, String>;
type StepPoll = Poll<Option<Result<Step, rgi::BoxError>>>;

fn app(name: &'static str, clause: &'static str, run: fn() -> Run) -> Component {
    broken(
        name,
        Kind::Application,
        Interface::Async,
        clause,
        Side::Application,
        run,
    )
}

pub(crate) fn components() -> Vec<Component> {
    vec![
        app(
            "async_app/pending_without_wake",
            "RGIA-APP-5",
            pending_without_wake,
        ),
        app("async_app/sleeps_in_call", "RGIA-APP-2", sleeps_in_call),
        app("async_app/sleeps_in_poll", "RGIA-APP-3", sleeps_in_poll),
        app("async_app/blocking_drop", "RGIA-APP-3", blocking_drop),
        app(
            "async_app/blocking_read_in_poll",
            "RGIA-INPUT-8",
            blocking_read_in_poll,
        ),
        app(
            "async_app/zero_sized_poll_chunk",
            "RGIA-INPUT-9",
            zero_sized_poll_chunk,
        ),
        app("async_app/size_hint_lies", "RGIA-APP-7", size_hint_lies),
        app(
            "async_app/size_hint_then_switch",
            "RGIA-APP-7",
            size_hint_then_switch,
        ),
        app(
            "async_app/fails_on_spurious_poll",
            "RGIA-APP-6",
            fails_on_spurious_poll,
        ),
        app("async_app/panics_in_poll", "RGI-FAIL-1", panics_in_poll),
        app("async_app/panics_in_drop", "RGI-BODY-13", panics_in_drop),
        app("async_app/start_twice", "RGI-START-7", start_twice),
        app(
            "async_app/chunk_without_start",
            "RGI-START-3",
            chunk_without_start,
        ),
        app("async_app/body_on_204", "RGI-BODY-19", body_on_204),
        app(
            "async_app/body_shorter_than_length",
            "RGI-CL-4",
            body_shorter_than_length,
        ),
        app(
            "async_app/writes_instead_of_yielding",
            "RGIA-APP-9",
            writes_instead_of_yielding,
        ),
        app(
            "async_app/unwraps_readiness",
            "RGIA-CAP-6",
            unwraps_readiness,
        ),
        app("async_app/unwraps_upgrade", "RGIA-CAP-6", unwraps_upgrade),
        app(
            "async_app/file_read_in_call",
            "RGIA-OFFLOAD-10",
            file_read_in_call,
        ),
        app(
            "async_app/chunk_after_upgrade",
            "RGIA-UPGRADE-5",
            chunk_after_upgrade,
        ),
        app(
            "async_app/start_after_upgrade",
            "RGIA-UPGRADE-5",
            start_after_upgrade,
        ),
        app(
            "async_app/accept_without_choosing",
            "RGIA-UPGRADE-12",
            accept_without_choosing,
        ),
        app(
            "async_app/two_waits_one_descriptor",
            "RGIA-READY-20",
            two_waits_one_descriptor,
        ),
        app(
            "async_app/sync_code_upgrades",
            "RGIA-COMP-3",
            sync_code_upgrades,
        ),
        app(
            "async_app/inline_hints_but_blocks",
            "RGI-HINT-3",
            inline_hints_but_blocks,
        ),
        app("async_app/hop_by_hop_field", "RGI-HEAD-5", hop_by_hop_field),
        app(
            "async_app/blocks_on_offload_result",
            "RGIA-APP-2",
            blocks_on_offload_result,
        ),
        app(
            "async_app/no_upgrade_answers_500",
            "RGIA-UPGRADE-11",
            no_upgrade_answers_500,
        ),
        app(
            "async_app/cleanup_only_at_end",
            "RGIA-APP-8",
            cleanup_only_at_end,
        ),
        app(
            "async_app/jobs_wait_for_each_other",
            "RGIA-OFFLOAD-11",
            jobs_wait_for_each_other,
        ),
    ]
}

/// Returns `Pending` to "yield" on its first poll without arranging a
/// wake-up. RGIA-APP-5.
fn pending_without_wake() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut yielded = false;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    if std::mem::replace(&mut yielded, true) {
                        Poll::Ready(None)
                    } else {
                        Poll::Pending
                    }
                },
            ))
        }),
        TestRequest::get("/"),
    )
}

/// Sleeps in `call` (a blocking rate limiter). RGIA-APP-2.
fn sleeps_in_call() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            std::thread::sleep(Duration::from_millis(500));
            start.start(ok())?;
            Ok(Bytes::from_static(b"late"))
        }),
        TestRequest::get("/"),
    )
}

/// Sleeps in `poll_step` between two chunks (a naive ticker).
/// RGIA-APP-3.
fn sleeps_in_poll() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut ticks = 0;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    ticks += 1;
                    if ticks > 2 {
                        return Poll::Ready(None);
                    }
                    std::thread::sleep(Duration::from_millis(300));
                    chunk(b"tick\n")
                },
            ))
        }),
        TestRequest::get("/"),
    )
}

struct JoinsOnDrop(Option<std::thread::JoinHandle<()>>);

impl AsyncBody for JoinsOnDrop {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _s: &mut StartResponse<'_>,
    ) -> StepPoll {
        Poll::Ready(None)
    }
}

impl Drop for JoinsOnDrop {
    fn drop(&mut self) {
        // Waits for its background flush thread: blocks the loop.
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

/// Its body's `Drop` joins a thread that takes 500 ms. RGIA-APP-3.
fn blocking_drop() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let flush = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(500)));
            Ok(JoinsOnDrop(Some(flush)))
        }),
        TestRequest::get("/"),
    )
}

/// Reads the upload with the blocking face inside `poll_step`.
/// RGIA-INPUT-8.
fn blocking_read_in_poll() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            start.start(ok())?;
            let mut input = Some(e.into_input());
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    let Some(mut input) = input.take() else {
                        return Poll::Ready(None);
                    };
                    let mut body = Vec::new();
                    if let Err(err) = input.read_to_end(&mut body) {
                        return Poll::Ready(Some(Err(err.into())));
                    }
                    Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(body)))))
                },
            ))
        }),
        TestRequest::post("/", "").chunked(["up", "load"]),
    )
}

/// Asks `poll_chunk` for zero bytes (a computed buffer size that hit 0).
/// RGIA-INPUT-9.
fn zero_sized_poll_chunk() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            start.start(ok())?;
            let mut input = e.into_input();
            let want = usize::try_from(input.content_length().unwrap_or(0)).unwrap_or(0);
            Ok(AsyncScript::new(
                move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| match input
                    .poll_chunk(cx, want)
                {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(bytes)) if bytes.is_empty() => Poll::Ready(None),
                    Poll::Ready(Ok(bytes)) => Poll::Ready(Some(Ok(Step::Chunk(bytes)))),
                    Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err.into()))),
                },
            ))
        }),
        TestRequest::post("/", "").chunked(["a"]),
    )
}

/// Promises 64 bytes and yields 5. RGIA-APP-7.
fn size_hint_lies() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut done = false;
            Ok(AsyncScript {
                next: move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    if std::mem::replace(&mut done, true) {
                        Poll::Ready(None)
                    } else {
                        chunk(b"short")
                    }
                },
                hint: Some(64),
            })
        }),
        TestRequest::get("/"),
    )
}

/// Gives an exact size hint, then switches. RGIA-APP-7 ("a body that may
/// still switch returns None").
fn size_hint_then_switch() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, _start| {
            let mut switched = false;
            Ok(AsyncScript {
                next: move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    if std::mem::replace(&mut switched, true) {
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(|start| {
                        start.start(ok())?;
                        Ok(Bytes::from_static(
                            b"from the continuation, longer than hinted",
                        ))
                    })))))
                },
                hint: Some(4),
            })
        }),
        TestRequest::get("/"),
    )
}

/// Treats a poll that finds its offload job unfinished as an error
/// (assumes it is only polled when woken). RGIA-APP-6.
fn fails_on_spurious_poll() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let mut job: Option<OffloadFuture<u32>> = Some(caps.offload().run(|| {
                std::thread::sleep(Duration::from_millis(50));
                7
            }));
            start.start(ok())?;
            let mut polls = 0;
            Ok(AsyncScript::new(
                move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    polls += 1;
                    let Some(fut) = job.as_mut() else {
                        return Poll::Ready(None);
                    };
                    match Pin::new(fut).poll(cx) {
                        Poll::Ready(_) => {
                            job = None;
                            chunk(b"done")
                        }
                        Poll::Pending if polls > 1 => {
                            Poll::Ready(Some(Err("polled before the job finished".into())))
                        }
                        Poll::Pending => Poll::Pending,
                    }
                },
            ))
        }),
        TestRequest::get("/"),
    )
}

/// Panics in `poll_step` on a parse failure it could have returned.
/// RGI-FAIL-1.
fn panics_in_poll() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            start.start(ok())?;
            let query = e.query_string().to_owned();
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    let n: u32 = query.parse().expect("numeric query");
                    Poll::Ready(Some(Ok(Step::Chunk(Bytes::from(n.to_string())))))
                },
            ))
        }),
        TestRequest::get("/?abc"),
    )
}

struct PanicsOnDrop;

impl AsyncBody for PanicsOnDrop {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _s: &mut StartResponse<'_>,
    ) -> StepPoll {
        Poll::Ready(None)
    }
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("subscription already cancelled");
    }
}

/// Its asynchronous body panics when dropped. RGI-BODY-13 (through
/// RGIA-APP-8's "Drop is cancellation").
fn panics_in_drop() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            Ok(PanicsOnDrop)
        }),
        TestRequest::get("/"),
    )
}

/// Starts in `call` and again in the first poll. RGI-START-7.
fn start_twice() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut done = false;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, s: &mut StartResponse<'_>| {
                    if std::mem::replace(&mut done, true) {
                        return Poll::Ready(None);
                    }
                    let _ = s.start(head(StatusCode::ACCEPTED));
                    chunk(b"queued")
                },
            ))
        }),
        TestRequest::get("/"),
    )
}

/// Yields data without ever starting. RGI-START-3.
fn chunk_without_start() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, _start| Ok(Bytes::from_static(b"headless"))),
        TestRequest::get("/"),
    )
}

/// Yields content in a `204`. RGI-BODY-19.
fn body_on_204() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
            Ok(Bytes::from_static(b"{}"))
        }),
        TestRequest::get("/"),
    )
}

/// Declares 100 bytes and yields 5. RGI-CL-4.
fn body_shorter_than_length() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok_with_length(100))?;
            Ok(Bytes::from_static(b"hello"))
        }),
        TestRequest::get("/"),
    )
}

/// Sends its output with `write` from `poll_step`. RGIA-APP-9.
fn writes_instead_of_yielding() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut done = false;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, s: &mut StartResponse<'_>| {
                    if std::mem::replace(&mut done, true) {
                        return Poll::Ready(None);
                    }
                    if let Err(err) = s.write(Bytes::from_static(b"pushed")) {
                        return Poll::Ready(Some(Err(err.into())));
                    }
                    Poll::Ready(Some(Ok(Step::Chunk(Bytes::new()))))
                },
            ))
        }),
        TestRequest::get("/"),
    )
}

/// Unwraps the optional readiness capability. RGIA-CAP-6.
fn unwraps_readiness() -> Run {
    let client = AsyncTestClient::new(rgi_async::from_fn(|e: Environ, start| {
        let caps = Capabilities::of(&e).ok_or("no capabilities")?;
        let _readiness = caps.readiness().unwrap();
        start.start(ok())?;
        Ok(Bytes::from_static(b"ready"))
    }))
    .without_readiness();
    async_client(&client, [TestRequest::get("/")])
}

/// Unwraps the upgrade capability on a request that asked for no
/// upgrade. RGIA-CAP-6.
fn unwraps_upgrade() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, _start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let _upgraded = caps
                .upgrade()
                .expect("websocket endpoint")
                .accept(HeaderMap::new())?;
            Ok(rgi::Empty)
        }),
        TestRequest::get("/ws"),
    )
}

/// Reads a template file with `std::fs` inside `call`. RGIA-OFFLOAD-10.
fn file_read_in_call() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            let template = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))?;
            start.start(ok())?;
            Ok(Bytes::from(template))
        }),
        TestRequest::get("/"),
    )
}

fn upgrade_request(protocol: &'static str) -> TestRequest {
    TestRequest::get("/chat").upgrade(HeaderValue::from_static(protocol), |_peer| Ok(()))
}

/// Accepts the upgrade, then yields an HTTP body chunk. RGIA-UPGRADE-5.
fn chunk_after_upgrade() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, _start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let upgrade = caps.upgrade().ok_or("no upgrade")?;
            let _stream = upgrade.accept(HeaderMap::new())?;
            let mut done = false;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    if std::mem::replace(&mut done, true) {
                        Poll::Ready(None)
                    } else {
                        chunk(b"welcome")
                    }
                },
            ))
        }),
        upgrade_request("echo"),
    )
}

/// Accepts the upgrade, then starts an ordinary response too.
/// RGIA-UPGRADE-5.
fn start_after_upgrade() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let upgrade = caps.upgrade().ok_or("no upgrade")?;
            let _stream = upgrade.accept(HeaderMap::new())?;
            let _ = start.start(ok());
            Ok(rgi::Empty)
        }),
        upgrade_request("echo"),
    )
}

/// Accepts an upgrade offering two protocols without naming the one it
/// will speak. RGIA-UPGRADE-12.
fn accept_without_choosing() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, _start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let upgrade = caps.upgrade().ok_or("no upgrade")?;
            let _stream = upgrade.accept(HeaderMap::new())?;
            Ok(rgi::Empty)
        }),
        upgrade_request("echo, chat"),
    )
}

/// Polls two waits on one pipe at once (a reader task and a watchdog).
/// RGIA-READY-20.
fn two_waits_one_descriptor() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let readiness = caps.readiness().ok_or("no readiness")?.clone();
            let (reader, writer) = std::io::pipe()?;
            start.start(ok())?;
            let mut done = false;
            Ok(AsyncScript::new(
                move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    if std::mem::replace(&mut done, true) {
                        let _ = &writer;
                        return Poll::Ready(None);
                    }
                    let mut first =
                        readiness.wait(&reader, Interest::READABLE, Some(Duration::from_secs(1)));
                    let mut second =
                        readiness.wait(&reader, Interest::READABLE, Some(Duration::from_secs(1)));
                    let _ = first.as_mut().poll(cx);
                    let _ = second.as_mut().poll(cx);
                    chunk(b"watched")
                },
            ))
        }),
        TestRequest::get("/"),
    )
}

/// Synchronous code under the threaded adapter accepts an upgrade.
/// RGIA-COMP-3.
fn sync_code_upgrades() -> Run {
    async_one(
        Threaded::new(rgi::from_fn(|e: Environ, _start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let upgrade = caps.upgrade().ok_or("no upgrade")?;
            let _stream = upgrade.accept(HeaderMap::new())?;
            Ok(rgi::Empty)
        })),
        upgrade_request("echo"),
    )
}

/// A synchronous application claims it can run inline, then sleeps; the
/// threaded adapter runs it on the loop thread. RGI-HINT-3.
fn inline_hints_but_blocks() -> Run {
    async_one(
        Threaded::new(
            rgi::from_fn(|_e: Environ, start| {
                std::thread::sleep(Duration::from_millis(500));
                start.start(ok())?;
                Ok(Bytes::from_static(b"slow"))
            })
            .with_hints(
                Hints::default()
                    .with_input(InputUse::None)
                    .with_may_block(false),
            ),
        ),
        TestRequest::get("/"),
    )
}

/// Sets `Transfer-Encoding: chunked` for its stream. RGI-HEAD-5.
fn hop_by_hop_field() -> Run {
    async_one(
        rgi_async::from_fn(|_e: Environ, start| {
            start.start(ok().with_header(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            ))?;
            Ok(Bytes::from_static(b"stream"))
        }),
        TestRequest::get("/"),
    )
}

/// Offloads a lookup, then spins on the future in `call` until it is
/// done. RGIA-APP-2.
fn blocks_on_offload_result() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let mut job = caps.offload().run(|| {
                std::thread::sleep(Duration::from_millis(300));
                "resolved".to_owned()
            });
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let answer = loop {
                if let Poll::Ready(answer) = Pin::new(&mut job).poll(&mut cx) {
                    break answer?;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            start.start(ok())?;
            Ok(Bytes::from(answer))
        }),
        TestRequest::get("/"),
    )
}

/// A WebSocket endpoint on a server that cannot upgrade: fails with an
/// error (500) instead of answering 501. RGIA-UPGRADE-11.
///
/// The request is HTTP/1.0, which has no upgrade: the kit's test client
/// offers the capability for every HTTP/1.1 request that asks for one, so
/// over HTTP/1.1 the server could upgrade and the mistake never showed.
fn no_upgrade_answers_500() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, _start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let upgrade = caps.upgrade().ok_or("cannot upgrade")?;
            let _stream = upgrade.accept(HeaderMap::new())?;
            Ok(rgi::Empty)
        }),
        TestRequest::get("/ws")
            .version(http::Version::HTTP_10)
            .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
            .header(header::UPGRADE, HeaderValue::from_static("websocket")),
    )
}

/// Releases its subscription only when polled to the end, not in `Drop`;
/// HEAD stops the polls early. RGIA-APP-8.
fn cleanup_only_at_end() -> Run {
    let subscribers = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    async_one(
        rgi_async::from_fn(move |_e: Environ, start| {
            start.start(ok_with_length(12))?;
            subscribers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let subscribers = std::sync::Arc::clone(&subscribers);
            let mut n = 0;
            Ok(AsyncScript::new(
                move |_cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    n += 1;
                    match n {
                        1 => chunk(b"first "),
                        2 => chunk(b"second"),
                        _ => {
                            subscribers.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                            Poll::Ready(None)
                        }
                    }
                },
            ))
        }),
        TestRequest::head("/feed"),
    )
}

/// One offload job blocks waiting for the result of another.
/// RGIA-OFFLOAD-11.
fn jobs_wait_for_each_other() -> Run {
    async_one(
        rgi_async::from_fn(|e: Environ, start| {
            let caps = Capabilities::of(&e).ok_or("no capabilities")?;
            let (tx, rx) = std::sync::mpsc::channel::<u32>();
            let mut consumer: Option<OffloadFuture<u32>> = Some(
                caps.offload()
                    .run(move || rx.recv_timeout(Duration::from_secs(2)).unwrap_or(0)),
            );
            let producer = caps.offload().run(move || {
                let _ = tx.send(42);
            });
            drop(producer);
            start.start(ok())?;
            Ok(AsyncScript::new(
                move |cx: &mut Context<'_>, _s: &mut StartResponse<'_>| {
                    let Some(fut) = consumer.as_mut() else {
                        return Poll::Ready(None);
                    };
                    match Pin::new(fut).poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(v) => {
                            consumer = None;
                            Step::ready(v.map(|v| Bytes::from(v.to_string())))
                        }
                    }
                },
            ))
        }),
        TestRequest::get("/"),
    )
}
