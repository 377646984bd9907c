//! Broken synchronous applications, run behind the synchronous test client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "the mistakes are the point of this module"
)]

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use rgi::{Body, Environ, Hints, InputUse, ResponseHead, StartResponse};
use rgi_conformance::client::TestRequest;
use rgi_conformance::{Side, Violation};

use crate::support::{Script, broken, head, ok, ok_with_length, status, sync_client};
use crate::{Component, Interface, Kind};

type Run = Result<Vec<Violation>, String>;

fn app(name: &'static str, clause: &'static str, run: fn() -> Run) -> Component {
    broken(
        name,
        Kind::Application,
        Interface::Sync,
        clause,
        Side::Application,
        run,
    )
}

pub(crate) fn components() -> Vec<Component> {
    vec![
        app("sync_app/start_twice", "RGI-START-7", start_twice),
        app(
            "sync_app/chunk_without_start",
            "RGI-START-3",
            chunk_without_start,
        ),
        app(
            "sync_app/write_before_start",
            "RGI-START-3",
            write_before_start,
        ),
        app(
            "sync_app/starts_after_first_data",
            "RGI-START-3",
            starts_after_first_data,
        ),
        app(
            "sync_app/informational_status",
            "RGI-HEAD-1",
            informational_status,
        ),
        app("sync_app/hop_by_hop_field", "RGI-HEAD-5", hop_by_hop_field),
        app(
            "sync_app/content_length_on_204",
            "RGI-HEAD-6",
            content_length_on_204,
        ),
        app(
            "sync_app/conflicting_content_lengths",
            "RGI-HEAD-6",
            conflicting_content_lengths,
        ),
        app(
            "sync_app/body_shorter_than_length",
            "RGI-CL-4",
            body_shorter_than_length,
        ),
        app(
            "sync_app/body_longer_than_length",
            "RGI-CL-4",
            body_longer_than_length,
        ),
        app(
            "sync_app/size_hint_too_high",
            "RGI-BODY-10",
            size_hint_too_high,
        ),
        app(
            "sync_app/size_hint_too_low",
            "RGI-BODY-10",
            size_hint_too_low,
        ),
        app("sync_app/body_on_204", "RGI-BODY-19", body_on_204),
        app("sync_app/write_on_304", "RGI-BODY-19", write_on_304),
        app("sync_app/panics_in_call", "RGI-FAIL-1", panics_in_call),
        app(
            "sync_app/panics_in_next_chunk",
            "RGI-FAIL-1",
            panics_in_next_chunk,
        ),
        app("sync_app/panics_in_drop", "RGI-BODY-13", panics_in_drop),
        app("sync_app/slow_drop", "RGI-BODY-13", slow_drop),
        app(
            "sync_app/ignores_head_already_sent",
            "RGI-START-12",
            ignores_head_already_sent,
        ),
        app(
            "sync_app/ignores_invalid_head",
            "RGI-START-9",
            ignores_invalid_head,
        ),
        app(
            "sync_app/chunk_encodes_itself",
            "RGI-BODY-9",
            chunk_encodes_itself,
        ),
        app(
            "sync_app/assumes_content_length",
            "RGI-INPUT-10",
            assumes_content_length,
        ),
        app(
            "sync_app/hints_none_but_reads",
            "RGI-HINT-3",
            hints_none_but_reads,
        ),
        app(
            "sync_app/hints_nonblocking_but_sleeps",
            "RGI-HINT-3",
            hints_nonblocking_but_sleeps,
        ),
        app("sync_app/hints_change", "RGI-HINT-3", hints_change),
        app(
            "sync_app/state_leaks_between_requests",
            "RGI-APP-3",
            state_leaks_between_requests,
        ),
        app(
            "sync_app/unwraps_async_capabilities",
            "RGIA-CAP-6",
            unwraps_async_capabilities,
        ),
        app(
            "sync_app/head_differs_from_get",
            "RGI-BODY-17",
            head_differs_from_get,
        ),
        app("sync_app/tiny_chunks", "RGI-BODY-8", tiny_chunks),
        app("sync_app/no_content_type", "RGI-HEAD-11", no_content_type),
        app(
            "sync_app/pushes_with_write",
            "RGI-WRITE-5",
            pushes_with_write,
        ),
        app(
            "sync_app/depends_on_connection_field",
            "RGI-HDR-7",
            depends_on_connection_field,
        ),
        app(
            "sync_app/unbounded_line_read",
            "RGI-INPUT-9",
            unbounded_line_read,
        ),
        app(
            "sync_app/replace_with_informational",
            "RGI-HEAD-1",
            replace_with_informational,
        ),
        app(
            "sync_app/unwraps_connect_protocol",
            "RGI-EXT-3",
            unwraps_connect_protocol,
        ),
        app(
            "sync_app/ignores_truncation",
            "RGI-INPUT-6",
            ignores_truncation,
        ),
        app(
            "sync_app/hides_client_error",
            "RGI-FAIL-12",
            hides_client_error,
        ),
        app(
            "sync_app/reads_before_refusing",
            "RGI-INPUT-25",
            reads_before_refusing,
        ),
        app(
            "sync_app/writes_after_transport_error",
            "RGI-WRITE-6",
            writes_after_transport_error,
        ),
    ]
}

/// Starts twice, ignoring the `AlreadyStarted` error of the second start
/// (a framework that sets a default head, then the handler's). RGI-START-7.
fn start_twice() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let _ = start.start(head(StatusCode::CREATED));
            Ok(Bytes::from_static(b"hello"))
        }),
        [TestRequest::get("/")],
    )
}

/// Returns content without ever starting the response. RGI-START-3.
fn chunk_without_start() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, _s| Ok(Bytes::from_static(b"orphan"))),
        [TestRequest::get("/")],
    )
}

/// Writes before starting, ignoring the `NotStarted` error, then starts.
/// RGI-START-3.
fn write_before_start() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            let _ = start.write(Bytes::from_static(b"early"));
            start.start(ok())?;
            Ok(Bytes::from_static(b"late"))
        }),
        [TestRequest::get("/")],
    )
}

/// A lazy body that yields its first data and only starts on the next
/// pull. RGI-START-3 ("no later than inside the `next_chunk` call that yields
/// its first non-empty chunk").
fn starts_after_first_data() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, _s| {
            let mut step = 0;
            Ok(Script::new(move |start: &mut StartResponse<'_>| {
                step += 1;
                match step {
                    1 => Some(Ok(Bytes::from_static(b"data"))),
                    2 => start
                        .start(ok())
                        .err()
                        .map(|e| Err(e.into()))
                        .or(Some(Ok(Bytes::new()))),
                    _ => None,
                }
            }))
        }),
        [TestRequest::get("/")],
    )
}

/// Answers `103 Early Hints` as its final status. RGI-HEAD-1.
fn informational_status() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(head(status(103)))?;
            Ok(Bytes::from_static(b"hints"))
        }),
        [TestRequest::get("/")],
    )
}

/// Sets `Connection: keep-alive` itself. RGI-HEAD-5.
fn hop_by_hop_field() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(
                ok().with_header(header::CONNECTION, HeaderValue::from_static("keep-alive")),
            )?;
            Ok(Bytes::from_static(b"hello"))
        }),
        [TestRequest::get("/")],
    )
}

/// A `204` with `Content-Length: 0`. RGI-HEAD-6.
fn content_length_on_204() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(
                ResponseHead::new(StatusCode::NO_CONTENT)
                    .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("0")),
            )?;
            Ok(rgi::Empty)
        }),
        [TestRequest::get("/")],
    )
}

/// Appends a second, different Content-Length (a framework's and the
/// handler's). RGI-HEAD-6.
fn conflicting_content_lengths() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            let mut head = ok_with_length(5);
            head.headers_mut()
                .append(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
            start.start(head)?;
            Ok(Bytes::from_static(b"hello"))
        }),
        [TestRequest::get("/")],
    )
}

/// Declares 10 bytes and produces 5. RGI-CL-4.
fn body_shorter_than_length() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok_with_length(10))?;
            Ok(Bytes::from_static(b"hello"))
        }),
        [TestRequest::get("/")],
    )
}

/// Declares 3 bytes and produces 11. RGI-CL-4.
fn body_longer_than_length() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok_with_length(3))?;
            Ok(rgi::from_iter(["hello", " world"]))
        }),
        [TestRequest::get("/")],
    )
}

/// Promises 100 bytes and yields 5. RGI-BODY-10.
fn size_hint_too_high() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut done = false;
            Ok(Script {
                next: move |_s: &mut StartResponse<'_>| {
                    (!std::mem::replace(&mut done, true)).then(|| Ok(Bytes::from_static(b"hello")))
                },
                hint: Some(100),
            })
        }),
        [TestRequest::get("/")],
    )
}

/// Promises 2 bytes (the first chunk's size, say) and yields 10.
/// RGI-BODY-10.
fn size_hint_too_low() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut left = vec![&b"he"[..], b"llo", b" world"];
            left.reverse();
            Ok(Script {
                next: move |_s: &mut StartResponse<'_>| {
                    left.pop().map(|c| Ok(Bytes::from_static(c)))
                },
                hint: Some(2),
            })
        }),
        [TestRequest::get("/")],
    )
}

/// Yields content in a `204`. RGI-BODY-19.
fn body_on_204() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ResponseHead::new(StatusCode::NO_CONTENT))?;
            Ok(Bytes::from_static(b"deleted"))
        }),
        [TestRequest::get("/")],
    )
}

/// Writes content in a `304`. RGI-BODY-19.
fn write_on_304() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ResponseHead::new(StatusCode::NOT_MODIFIED))?;
            let _ = start.write(Bytes::from_static(b"cached copy"));
            Ok(rgi::Empty)
        }),
        [TestRequest::get("/")],
    )
}

/// Panics in `call` on an input it did not expect (an anticipated
/// failure reported by panicking). RGI-FAIL-1.
fn panics_in_call() -> Run {
    sync_client(
        rgi::from_fn(|e: Environ, start| {
            let id: u32 = e.query_string().parse().expect("the id is a number");
            start.start(ok())?;
            Ok(Bytes::from(id.to_string()))
        }),
        [TestRequest::get("/?id=x")],
    )
}

/// Panics in `next_chunk` when its data source runs dry. RGI-FAIL-1.
fn panics_in_next_chunk() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut rows = vec!["row 1\n"];
            Ok(Script::new(move |_s: &mut StartResponse<'_>| {
                let row = rows.pop().expect("the cursor has another row");
                Some(Ok(Bytes::from_static(row.as_bytes())))
            }))
        }),
        [TestRequest::get("/")],
    )
}

struct PanickyDrop;

impl Body for PanickyDrop {
    fn next_chunk(&mut self, _s: &mut StartResponse<'_>) -> Option<Result<Bytes, rgi::BoxError>> {
        None
    }
}

impl Drop for PanickyDrop {
    fn drop(&mut self) {
        panic!("connection returned to a closed pool");
    }
}

/// Its body's `Drop` panics. RGI-BODY-13.
fn panics_in_drop() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            Ok(PanickyDrop)
        }),
        [TestRequest::get("/")],
    )
}

struct SlowDrop(bool);

impl Body for SlowDrop {
    fn next_chunk(&mut self, _s: &mut StartResponse<'_>) -> Option<Result<Bytes, rgi::BoxError>> {
        (!std::mem::replace(&mut self.0, true)).then(|| Ok(Bytes::from_static(b"report")))
    }
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        // Flushes an audit log synchronously, slowly.
        std::thread::sleep(Duration::from_millis(1500));
    }
}

/// Its body's `Drop` takes 1.5 s (a synchronous flush). RGI-BODY-13
/// ("returns promptly").
fn slow_drop() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            Ok(SlowDrop(false))
        }),
        [TestRequest::get("/")],
    )
}

/// Meets an error after the head was sent, tries `replace`, gets
/// `HeadAlreadySent` and carries on with an error text in the body.
/// RGI-START-12.
fn ignores_head_already_sent() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut step = 0;
            Ok(Script::new(move |start: &mut StartResponse<'_>| {
                step += 1;
                match step {
                    1 => Some(Ok(Bytes::from_static(b"partial "))),
                    2 => {
                        let _ = start.replace(
                            head(StatusCode::INTERNAL_SERVER_ERROR),
                            rgi::BoxError::from("database gone"),
                        );
                        Some(Ok(Bytes::from_static(b"error: database gone")))
                    }
                    _ => None,
                }
            }))
        }),
        [TestRequest::get("/")],
    )
}

/// Ignores the `InvalidHead` of its start and produces output anyway.
/// RGI-START-9.
fn ignores_invalid_head() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            let _ = start.start(ok().with_header(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            ));
            Ok(Bytes::from_static(b"hello"))
        }),
        [TestRequest::get("/")],
    )
}

/// Chunk-encodes its own output, as it did behind a CGI gateway.
/// RGI-BODY-9.
fn chunk_encodes_itself() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            Ok(rgi::from_iter(["5\r\nhello\r\n", "0\r\n\r\n"]))
        }),
        [TestRequest::get("/")],
    )
}

/// Sizes its buffer from `content_length()`, failing a chunked upload.
/// RGI-INPUT-10.
fn assumes_content_length() -> Run {
    sync_client(
        rgi::from_fn(|mut e: Environ, start| {
            let length = e.content_length().ok_or("Content-Length required")?;
            let mut buf = vec![0; usize::try_from(length)?];
            e.input_mut().read_exact(&mut buf)?;
            start.start(ok())?;
            Ok(Bytes::from(buf))
        }),
        [TestRequest::post("/", "").chunked(["ab", "cd"])],
    )
}

/// Declares `InputUse::None` and reads the body. RGI-HINT-3.
fn hints_none_but_reads() -> Run {
    sync_client(
        rgi::from_fn(|mut e: Environ, start| {
            let body = e.input_mut().read_to_bytes(1024)?;
            start.start(ok())?;
            Ok(body)
        })
        .with_hints(
            Hints::default()
                .with_input(InputUse::None)
                .with_may_block(false),
        ),
        [TestRequest::post("/", "payload")],
    )
}

/// Declares `may_block = false` and sleeps in `call` (a rate limiter).
/// RGI-HINT-3.
fn hints_nonblocking_but_sleeps() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            std::thread::sleep(Duration::from_millis(300));
            start.start(ok())?;
            Ok(Bytes::from_static(b"throttled"))
        })
        .with_hints(
            Hints::default()
                .with_input(InputUse::None)
                .with_may_block(false),
        ),
        [TestRequest::get("/")],
    )
}

struct Flaky {
    calls: AtomicU64,
}

impl rgi::Application for Flaky {
    type Body = Bytes;

    fn call(&self, _e: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, rgi::BoxError> {
        start.start(ok())?;
        Ok(Bytes::from_static(b"ok"))
    }

    fn hints(&self) -> Hints {
        // Warms up as a blocking application, then claims to be inline-safe.
        let calls = self.calls.fetch_add(1, Ordering::Relaxed);
        Hints::default().with_may_block(calls < 1)
    }
}

/// `hints()` changes from one call to the next. RGI-HINT-3 ("the same
/// value every time").
fn hints_change() -> Run {
    sync_client(
        Flaky {
            calls: AtomicU64::new(0),
        },
        [TestRequest::get("/"), TestRequest::get("/")],
    )
}

/// Keeps the last request's user in `self` and shows it to the next
/// request. RGI-APP-3.
fn state_leaks_between_requests() -> Run {
    let last_user = Arc::new(Mutex::new(String::new()));
    sync_client(
        rgi::from_fn(move |e: Environ, start| {
            let mut last = last_user.lock().map_err(|_| "poisoned")?;
            if let Some(user) = e.query_string().strip_prefix("user=") {
                *last = user.to_owned();
            }
            start.start(ok())?;
            Ok(Bytes::from(format!("hello {last}")))
        }),
        [TestRequest::get("/?user=ada"), TestRequest::get("/")],
    )
}

/// Unwraps `Capabilities::of` on a synchronous server. RGIA-CAP-6.
fn unwraps_async_capabilities() -> Run {
    sync_client(
        rgi::from_fn(|e: Environ, start| {
            let caps = rgi_async::Capabilities::of(&e).unwrap();
            let _ = caps.offload();
            start.start(ok())?;
            Ok(Bytes::from_static(b"offloaded"))
        }),
        [TestRequest::get("/")],
    )
}

/// Routes only GET, so HEAD gets a 404 where GET gets 200. RGI-BODY-17.
fn head_differs_from_get() -> Run {
    sync_client(
        rgi::from_fn(|e: Environ, start| {
            if e.method() == http::Method::GET {
                start.start(ok_with_length(5))?;
                Ok(Bytes::from_static(b"hello"))
            } else {
                start.start(
                    head(StatusCode::NOT_FOUND)
                        .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("0")),
                )?;
                Ok(Bytes::new())
            }
        }),
        [TestRequest::get("/"), TestRequest::head("/")],
    )
}

/// Streams a 2000-byte document one byte per chunk. RGI-BODY-8.
fn tiny_chunks() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            let mut left = 2000;
            Ok(Script::new(move |_s: &mut StartResponse<'_>| {
                (left > 0).then(|| {
                    left -= 1;
                    Ok(Bytes::from_static(b"x"))
                })
            }))
        }),
        [TestRequest::get("/")],
    )
}

/// Content without a Content-Type. RGI-HEAD-11.
fn no_content_type() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(Bytes::from_static(b"<html></html>"))
        }),
        [TestRequest::get("/")],
    )
}

/// Pushes its whole output with `write` (a WSGI port). RGI-WRITE-5.
fn pushes_with_write() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            for line in ["one\n", "two\n", "three\n"] {
                start.write(Bytes::from_static(line.as_bytes()))?;
            }
            Ok(rgi::Empty)
        }),
        [TestRequest::get("/")],
    )
}

/// Chooses its answer by the `Connection` request field. RGI-HDR-7.
fn depends_on_connection_field() -> Run {
    sync_client(
        rgi::from_fn(|e: Environ, start| {
            let close = e
                .headers()
                .get(header::CONNECTION)
                .is_some_and(|v| v == "close");
            start.start(ok())?;
            Ok(Bytes::from_static(if close {
                b"bye"
            } else {
                b"streaming..."
            }))
        }),
        [TestRequest::get("/").header(header::CONNECTION, HeaderValue::from_static("close"))],
    )
}

/// Reads an upload line by line with an unbounded `read_line`.
/// RGI-INPUT-9.
fn unbounded_line_read() -> Run {
    sync_client(
        rgi::from_fn(|mut e: Environ, start| {
            let mut line = String::new();
            let mut lines = 0;
            while e.input_mut().read_line(&mut line)? > 0 {
                lines += 1;
                line.clear();
            }
            start.start(ok())?;
            Ok(Bytes::from(format!("{lines} lines")))
        }),
        [TestRequest::post("/", "a\nb\nc")],
    )
}

/// Replaces its head with `100 Continue` to ask for the body.
/// RGI-HEAD-1.
fn replace_with_informational() -> Run {
    sync_client(
        rgi::from_fn(|_e: Environ, start| {
            start.start(ok())?;
            start.replace(
                head(StatusCode::CONTINUE),
                rgi::BoxError::from("need the body"),
            )?;
            Ok(Bytes::new())
        }),
        [TestRequest::get("/")],
    )
}

/// An HTTP/2 WebSocket handler unwraps the extended-CONNECT protocol
/// extension on a request that has none. RGI-EXT-3.
fn unwraps_connect_protocol() -> Run {
    sync_client(
        rgi::from_fn(|e: Environ, start| {
            let protocol = e
                .extension::<rgi::ConnectProtocol>()
                .expect("extended CONNECT");
            start.start(ok())?;
            Ok(Bytes::from(format!("{protocol:?}")))
        }),
        [TestRequest::get("/")],
    )
}

/// Serves `app` once, behind a validator, with a correct loop over
/// `environ` and `sink`: for application mistakes that only a server
/// condition the test client cannot produce (a truncated body, a client
/// that went away) brings out.
fn via_server<A: rgi::Application>(
    app: A,
    environ: Environ,
    sink: &mut dyn rgi::ResponseSink,
) -> Run {
    let reports = crate::support::reports();
    let app = rgi_conformance::validate::Validator::new(app, reports.clone());
    let mut state = rgi::ResponseState::new(environ.method());
    if let Ok(mut body) = rgi::Application::call(&app, environ, &mut state.start_response(sink)) {
        while let Some(Ok(c)) = body.next_chunk(&mut state.start_response(sink)) {
            if state.send_chunk(sink, c).is_err() {
                break;
            }
        }
        drop(body);
        let _ = state.finish(sink);
    }
    Ok(crate::support::seen(app, &reports))
}

/// A POST whose client sent 2 of the 5 declared bytes.
fn truncated_post() -> Result<Environ, String> {
    crate::support::request(http::Method::POST)
        .header(header::CONTENT_LENGTH, HeaderValue::from_static("5"))
        .input(rgi::Input::new(
            std::io::Cursor::new(b"ab".to_vec()),
            Some(5),
        ))
        .build()
        .map_err(|e| e.to_string())
}

/// Ignores the read error of a truncated upload and stores what arrived
/// as if it were the whole file. RGI-INPUT-6.
fn ignores_truncation() -> Run {
    let app = rgi::from_fn(|mut e: Environ, start| {
        let mut upload = Vec::new();
        let _ = e.input_mut().read_to_end(&mut upload);
        start.start(head(StatusCode::CREATED))?;
        Ok(Bytes::from(format!("stored {} bytes", upload.len())))
    });
    via_server(app, truncated_post()?, &mut crate::support::Wire::default())
}

/// Replaces the `Truncated` input error with a fresh error of its own,
/// so the server answers 500 instead of 400. RGI-FAIL-12.
fn hides_client_error() -> Run {
    let app = rgi::from_fn(|mut e: Environ, start| {
        let upload = e
            .input_mut()
            .read_to_bytes(1024)
            .map_err(|_| rgi::BoxError::from("upload failed"))?;
        start.start(ok())?;
        Ok(upload)
    });
    via_server(app, truncated_post()?, &mut crate::support::Wire::default())
}

/// Reads the whole upload of an `Expect: 100-continue` request, then
/// refuses it for a missing token it could have checked first.
/// RGI-INPUT-25.
fn reads_before_refusing() -> Run {
    sync_client(
        rgi::from_fn(|mut e: Environ, start| {
            let _ = e.input_mut().read_to_bytes(1 << 20)?;
            if e.headers().get(header::AUTHORIZATION).is_none() {
                start.start(head(StatusCode::UNAUTHORIZED))?;
                return Ok(Bytes::from_static(b"token required"));
            }
            start.start(ok())?;
            Ok(Bytes::from_static(b"stored"))
        }),
        [TestRequest::post("/upload", vec![b'x'; 4096])
            .header(header::EXPECT, HeaderValue::from_static("100-continue"))],
    )
}

/// A transport whose client goes away after the first data.
#[derive(Default)]
struct Vanishing {
    sent: usize,
}

impl rgi::ResponseSink for Vanishing {
    fn send_head(&mut self, _head: ResponseHead) -> std::io::Result<()> {
        Ok(())
    }

    fn send_data(&mut self, _data: Bytes) -> std::io::Result<()> {
        self.sent += 1;
        if self.sent > 1 {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }
}

/// Keeps writing after `write` reported that the client went away.
/// RGI-WRITE-6.
fn writes_after_transport_error() -> Run {
    let app = rgi::from_fn(|_e: Environ, start| {
        start.start(ok())?;
        for row in 0..5 {
            let _ = start.write(Bytes::from(format!("row {row}\n")));
        }
        Ok(rgi::Empty)
    });
    let environ = crate::support::request(http::Method::GET)
        .build()
        .map_err(|e| e.to_string())?;
    via_server(app, environ, &mut Vanishing::default())
}
