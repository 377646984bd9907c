//! One middleware definition, both stacks: every test below runs the same
//! middleware in front of a synchronous and an asynchronous application,
//! through the kit's test clients, with a validator on each side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use rgi::{Environ, ResponseHead, StartResponse};
use rgi_conformance::Reports;
use rgi_conformance::client::{Ending as ClientEnding, TestRequest, TestResponse};
use rgi_middleware::{BodyAccess, Emit, Ending, Incoming, Middleware, Outcome};

use common::{Parts, Trailing, assert_clean, joined, text_head, with_trailers};

type Run<'a> = &'a dyn Fn(TestRequest) -> TestResponse;

/// Defines `$sync` and `$async`: the same middleware and handler served by
/// the synchronous and the asynchronous stack, judged by the same check.
macro_rules! on_both_stacks {
    ($sync:ident, $async:ident, $middleware:expr, $handler:expr, $check:expr $(,)?) => {
        #[test]
        fn $sync() {
            let (client, inner) = common::sync_stack($middleware, rgi::from_fn($handler));
            let run = |request| client.request(request).expect("the request is well formed");
            ($check)(&run, &inner);
        }

        #[test]
        fn $async() {
            let (client, inner) = common::async_stack($middleware, rgi_async::from_fn($handler));
            let run = |request| client.request(request).expect("the request is well formed");
            ($check)(&run, &inner);
        }
    };
}

const HELLO: &[&str] = &["hello ", "world"];

/// Starts the head (with its length) in `call`, or lazily in the body's
/// first step for `/lazy`.
#[allow(
    clippy::needless_pass_by_value,
    reason = "the signature of an RGI handler"
)]
fn hello(environ: Environ, start: &mut StartResponse<'_>) -> Result<Parts, rgi::BoxError> {
    let head = text_head(Some(joined(HELLO).len()));
    if environ.path_info().as_bytes() == b"/lazy" {
        return Ok(Parts::new(Some(head), HELLO));
    }
    start.start(head)?;
    Ok(Parts::new(None, HELLO))
}

// ---- A header-adding middleware ----------------------------------------

struct AddHeader;

impl Middleware for AddHeader {
    type State = ();

    fn on_request(&self, _request: &mut Incoming<'_>) {}

    fn on_head(&self, _state: &mut (), head: &mut ResponseHead) {
        head.headers_mut()
            .insert("x-layer", HeaderValue::from_static("on"));
    }
}

on_both_stacks!(
    header_added_sync,
    header_added_async,
    AddHeader,
    hello,
    |run: Run<'_>, inner: &Reports| {
        for path in ["/", "/lazy"] {
            let response = run(TestRequest::get(path));
            assert_clean(&response, inner);
            assert_eq!(response.status, StatusCode::OK);
            assert_eq!(response.header("x-layer"), Some("on"), "{path}");
            // The bytes pass untouched, so the length stays.
            assert_eq!(response.header(CONTENT_LENGTH), Some("11"));
            assert_eq!(response.text(), "hello world");
            assert_eq!(response.chunks.len(), 2, "streamed as the inner body did");
        }
    },
);

// ---- Chunk-transforming middleware --------------------------------------

/// Same length, other bytes.
struct Upper;

impl Middleware for Upper {
    type State = ();

    fn on_request(&self, _request: &mut Incoming<'_>) {}

    fn body_access(&self, _state: &()) -> BodyAccess {
        BodyAccess::Observe
    }

    fn on_chunk(&self, _state: &mut (), chunk: Bytes, out: &mut Emit<'_>) {
        out.push(chunk.to_ascii_uppercase());
    }
}

on_both_stacks!(
    uppercased_sync,
    uppercased_async,
    Upper,
    hello,
    |run: Run<'_>, inner: &Reports| {
        let response = run(TestRequest::get("/lazy"));
        assert_clean(&response, inner);
        assert_eq!(response.text(), "HELLO WORLD");
        assert_eq!(response.header(CONTENT_LENGTH), Some("11"));
        assert_eq!(response.chunks.len(), 2);
    },
);

/// Three chunks out per chunk in, and a tail at the end: the length
/// changes, so `content-length` must go.
struct Bracket;

impl Middleware for Bracket {
    type State = ();

    fn on_request(&self, _request: &mut Incoming<'_>) {}

    fn body_access(&self, _state: &()) -> BodyAccess {
        BodyAccess::Transform
    }

    fn on_chunk(&self, _state: &mut (), chunk: Bytes, out: &mut Emit<'_>) {
        out.push("[");
        out.push(chunk);
        out.push("]");
    }

    fn on_end(&self, _state: &mut (), out: &mut Emit<'_>) {
        out.push("!");
    }
}

on_both_stacks!(
    transformed_to_several_chunks_sync,
    transformed_to_several_chunks_async,
    Bracket,
    hello,
    |run: Run<'_>, inner: &Reports| {
        for path in ["/", "/lazy"] {
            let response = run(TestRequest::get(path));
            assert_clean(&response, inner);
            assert_eq!(response.text(), "[hello ][world]!");
            assert_eq!(response.header(CONTENT_LENGTH), None, "{path}");
            assert_eq!(response.chunks.len(), 7, "one step per emitted chunk");
            // HEAD: the same head, nothing sent.
            let head = run(TestRequest::head(path));
            assert_clean(&head, inner);
            assert!(head.body.is_empty());
            assert_eq!(head.header(CONTENT_LENGTH), None);
        }
    },
);

/// A middleware that swallows chunks: nothing out per chunk in, all of it
/// at the end.
struct Hold;

impl Middleware for Hold {
    type State = Vec<u8>;

    fn on_request(&self, _request: &mut Incoming<'_>) -> Vec<u8> {
        Vec::new()
    }

    fn body_access(&self, _state: &Vec<u8>) -> BodyAccess {
        BodyAccess::Transform
    }

    fn on_chunk(&self, held: &mut Vec<u8>, chunk: Bytes, _out: &mut Emit<'_>) {
        held.extend_from_slice(&chunk);
    }

    fn on_end(&self, held: &mut Vec<u8>, out: &mut Emit<'_>) {
        out.push(std::mem::take(held));
    }
}

on_both_stacks!(
    swallowed_chunks_become_empty_steps_sync,
    swallowed_chunks_become_empty_steps_async,
    Hold,
    hello,
    |run: Run<'_>, inner: &Reports| {
        let response = run(TestRequest::get("/"));
        assert_clean(&response, inner);
        assert_eq!(response.text(), "hello world");
        assert_eq!(
            response.chunks.len(),
            1,
            "the held bytes come out at the end"
        );
    },
);

#[test]
fn inner_writes_pass_on_chunk_sync() {
    let (client, inner) = common::sync_stack(
        Bracket,
        rgi::from_fn(|_environ, start| {
            start.start(text_head(None))?;
            start.write("pushed")?;
            Ok(Parts::new(None, &["pulled"]))
        }),
    );
    let response = client.get("/").expect("well formed");
    assert_clean(&response, &inner);
    assert_eq!(response.text(), "[pushed][pulled]!");
}

// ---- Answering early ----------------------------------------------------

/// Refuses bodies longer than its limit with `413`, without calling the
/// inner application.
struct Limit(u64);

impl Middleware for Limit {
    type State = ();

    fn on_request(&self, request: &mut Incoming<'_>) {
        if request
            .environ()
            .content_length()
            .is_some_and(|n| n > self.0)
        {
            request.respond(
                ResponseHead::new(StatusCode::PAYLOAD_TOO_LARGE)
                    .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain")),
                "too large",
            );
        }
    }
}

static LIMITED_CALLS_SYNC: AtomicUsize = AtomicUsize::new(0);
static LIMITED_CALLS_ASYNC: AtomicUsize = AtomicUsize::new(0);

fn echo(
    calls: &'static AtomicUsize,
) -> impl Fn(Environ, &mut StartResponse<'_>) -> Result<Bytes, rgi::BoxError> + Send + Sync + 'static
{
    // It does not read the body: a blocking read is not allowed in an
    // asynchronous `call` (RGIA-INPUT-8), and the length says enough.
    move |environ, start| {
        calls.fetch_add(1, Ordering::SeqCst);
        let body = Bytes::from(format!("{} bytes", environ.content_length().unwrap_or(0)));
        start.start(text_head(Some(body.len())))?;
        Ok(body)
    }
}

fn check_limit(run: Run<'_>, inner: &Reports, calls: &AtomicUsize) {
    let refused = run(TestRequest::post("/", "0123456789"));
    assert_clean(&refused, inner);
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refused.text(), "too large");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the inner application was not called"
    );
    let served = run(TestRequest::post("/", "abc"));
    assert_clean(&served, inner);
    assert_eq!(served.text(), "3 bytes");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn early_answer_sync() {
    let (client, inner) = common::sync_stack(Limit(5), rgi::from_fn(echo(&LIMITED_CALLS_SYNC)));
    check_limit(
        &|r| client.request(r).expect("well formed"),
        &inner,
        &LIMITED_CALLS_SYNC,
    );
}

#[test]
fn early_answer_async() {
    let (client, inner) =
        common::async_stack(Limit(5), rgi_async::from_fn(echo(&LIMITED_CALLS_ASYNC)));
    check_limit(
        &|r| client.request(r).expect("well formed"),
        &inner,
        &LIMITED_CALLS_ASYNC,
    );
}

// ---- Trailers, the end and the drop -------------------------------------

/// The byte count: deliberately not `Clone`, so the switch can only move
/// it.
struct Count(u64);

type Log = Arc<Mutex<Vec<(Outcome, u64)>>>;

/// Counts the body's bytes into an `x-bytes` trailer and logs every
/// response's outcome at its drop.
struct Tally(Log);

impl Middleware for Tally {
    type State = Count;

    fn on_request(&self, _request: &mut Incoming<'_>) -> Count {
        Count(0)
    }

    fn body_access(&self, _state: &Count) -> BodyAccess {
        BodyAccess::Observe
    }

    fn on_head(&self, _state: &mut Count, head: &mut ResponseHead) {
        head.headers_mut()
            .append("trailer", HeaderValue::from_static("x-bytes"));
        head.headers_mut()
            .insert("x-tallied", HeaderValue::from_static("yes"));
    }

    fn on_chunk(&self, count: &mut Count, chunk: Bytes, out: &mut Emit<'_>) {
        count.0 += chunk.len() as u64;
        out.push(chunk.to_ascii_uppercase());
    }

    fn on_trailers(&self, count: &mut Count, fields: &mut HeaderMap) {
        fields.insert("x-bytes", HeaderValue::from(count.0));
    }

    fn on_drop(&self, count: Count, outcome: Outcome) {
        self.0
            .lock()
            .expect("the log is never poisoned")
            .push((outcome, count.0));
    }
}

fn trailing(_environ: Environ, start: &mut StartResponse<'_>) -> Result<Trailing, rgi::BoxError> {
    let head =
        text_head(None).with_header(http::header::TRAILER, HeaderValue::from_static("x-inner"));
    start.start(head)?;
    Ok(Trailing(Parts::new(None, HELLO)))
}

fn check_trailers(run: Run<'_>, inner: &Reports, log: &Log, inner_trailers: bool) {
    let response = run(with_trailers(TestRequest::get("/")));
    assert_clean(&response, inner);
    assert_eq!(response.text(), "HELLO WORLD");
    let trailers = response.trailers.clone().expect("trailers were sent");
    assert_eq!(
        trailers.get("x-bytes").map(HeaderValue::as_bytes),
        Some(&b"11"[..])
    );
    assert_eq!(
        trailers.get("x-inner").is_some(),
        inner_trailers,
        "the inner trailers pass through: {trailers:?}"
    );
    let log = log.lock().expect("not poisoned");
    let (outcome, count) = log.last().copied().expect("on_drop ran");
    assert_eq!(count, 11);
    assert_eq!(outcome.ending, Ending::Complete);
    assert_eq!(outcome.status, Some(StatusCode::OK));
    assert_eq!(outcome.body_bytes, 11);
    assert_eq!(log.len(), 1, "on_drop ran once");
}

#[test]
fn trailers_added_sync() {
    let log = Log::default();
    let (client, inner) = common::sync_stack(Tally(log.clone()), rgi::from_fn(hello));
    check_trailers(
        &|r| client.request(r).expect("well formed"),
        &inner,
        &log,
        false,
    );
}

#[test]
fn trailers_added_async() {
    let log = Log::default();
    let (client, inner) = common::async_stack(Tally(log.clone()), rgi_async::from_fn(hello));
    check_trailers(
        &|r| client.request(r).expect("well formed"),
        &inner,
        &log,
        false,
    );
}

#[test]
fn trailers_passed_and_added_sync() {
    let log = Log::default();
    let (client, inner) = common::sync_stack(Tally(log.clone()), rgi::from_fn(trailing));
    check_trailers(
        &|r| client.request(r).expect("well formed"),
        &inner,
        &log,
        true,
    );
}

#[test]
fn trailers_passed_and_added_async() {
    let log = Log::default();
    let (client, inner) = common::async_stack(Tally(log.clone()), rgi_async::from_fn(trailing));
    check_trailers(
        &|r| client.request(r).expect("well formed"),
        &inner,
        &log,
        true,
    );
}

/// Fails after its first chunk went out.
fn fails_after_head(
    _environ: Environ,
    start: &mut StartResponse<'_>,
) -> Result<rgi::Iter<std::vec::IntoIter<Bytes>>, rgi::BoxError> {
    start.start(text_head(None))?;
    start.write("first")?;
    Err("gone wrong after the head".into())
}

#[test]
fn inner_failure_passed_on_and_logged_sync() {
    let log = Log::default();
    let (client, inner) = common::sync_stack(Tally(log.clone()), rgi::from_fn(fails_after_head));
    let client = client.with_diagnosis(false);
    let response = client.get("/").expect("well formed");
    assert_clean(&response, &inner);
    assert!(
        matches!(response.ending, ClientEnding::FailedAfterHead { .. }),
        "{:?}",
        response.ending
    );
    assert_eq!(response.text(), "FIRST");
    let (outcome, count) = log.lock().expect("not poisoned")[0];
    assert_eq!(
        (outcome.ending, outcome.body_bytes, count),
        (Ending::Failed, 5, 5)
    );
}

// ---- Length information ----------------------------------------------

#[test]
fn size_hints_follow_the_body_access() {
    use rgi::{Application, Body};
    use rgi_conformance::rt::Recorder;

    fn hint_of<A: Application>(app: &A) -> Option<u64> {
        let environ = Environ::builder().build().expect("a plain environ");
        let mut state = rgi::ResponseState::new(environ.method());
        let mut sink = Recorder::new();
        let body = app
            .call(environ, &mut state.start_response(&mut sink))
            .expect("the call succeeds");
        body.size_hint()
    }
    assert_eq!(hint_of(&AddHeader.wrap(rgi::from_fn(hello))), Some(11));
    assert_eq!(hint_of(&Upper.wrap(rgi::from_fn(hello))), Some(11));
    assert_eq!(hint_of(&Bracket.wrap(rgi::from_fn(hello))), None);
    let hinted = rgi::from_fn(hello).with_hints(
        rgi::Hints::default()
            .with_input(rgi::InputUse::None)
            .with_may_block(false),
    );
    assert_eq!(
        Bracket.wrap(hinted).hints(),
        hinted.hints(),
        "hints pass through"
    );
}

// ---- Stacking -----------------------------------------------------------

fn check_stacked(run: Run<'_>, inner: &Reports) {
    for path in ["/", "/lazy"] {
        let response = run(TestRequest::get(path));
        assert_clean(&response, inner);
        assert_eq!(response.text(), "[HELLO ][WORLD]!", "{path}");
        assert_eq!(response.header("x-layer"), Some("on"));
        assert_eq!(response.header(CONTENT_LENGTH), None);
    }
}

/// Client (validator) / `Upper` / validator / `Bracket` / `AddHeader` /
/// validator / application: three middlewares nested, judged at three
/// boundaries.
#[test]
fn stacked_sync() {
    use rgi_conformance::validate::Validator;
    let deepest = Reports::new(rgi_conformance::Policy::Collect);
    let app = Bracket.wrap(AddHeader.wrap(Validator::new(rgi::from_fn(hello), deepest.clone())));
    let (client, inner) = common::sync_stack(Upper, app);
    check_stacked(&|r| client.request(r).expect("well formed"), &inner);
    assert!(deepest.is_empty(), "{:#?}", deepest.all());
}

#[test]
fn stacked_async() {
    use rgi_conformance::validate::AsyncValidator;
    let deepest = Reports::new(rgi_conformance::Policy::Collect);
    let app = Bracket.wrap(AddHeader.wrap(AsyncValidator::new(
        rgi_async::from_fn(hello),
        deepest.clone(),
    )));
    let (client, inner) = common::async_stack(Upper, app);
    check_stacked(&|r| client.request(r).expect("well formed"), &inner);
    assert!(deepest.is_empty(), "{:#?}", deepest.all());
}

/// A synchronous application below asynchronous middleware, through the
/// threaded adapter (RGIA-COMP-1): the same middleware value serves it.
#[test]
fn over_the_threaded_adapter() {
    use rgi_conformance::validate::Validator;
    let deepest = Reports::new(rgi_conformance::Policy::Collect);
    let sync_app = Validator::new(rgi::from_fn(hello), deepest.clone());
    let app = Bracket.wrap(AddHeader.wrap(rgi_async::Threaded::new(sync_app)));
    let (client, inner) = common::async_stack(Upper, app);
    check_stacked(&|r| client.request(r).expect("well formed"), &inner);
    assert!(deepest.is_empty(), "{:#?}", deepest.all());
}

// ---- Pending passes through ----------------------------------------------

/// Echoes the request body as it arrives, through the input's
/// non-blocking face: `Pending` until each piece is there.
struct Echo(rgi::Input);

impl rgi_async::AsyncBody for Echo {
    fn poll_step(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> std::task::Poll<Option<Result<rgi_async::Step, rgi::BoxError>>> {
        use std::task::Poll;
        if !start.is_started() {
            start.start(text_head(None))?;
        }
        match self.0.poll_chunk(cx, 1024) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(chunk)) if chunk.is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(chunk)) => Poll::Ready(Some(Ok(rgi_async::Step::Chunk(chunk)))),
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err.into()))),
        }
    }
}

#[test]
fn pending_passes_through_async() {
    let (client, inner) = common::async_stack(
        Upper,
        rgi_async::from_fn(|environ: Environ, _start| Ok(Echo(environ.into_input()))),
    );
    let request = TestRequest::post("/", "").chunked(["ab", "cd", "ef"]);
    let response = client.request(request).expect("well formed");
    assert_clean(&response, &inner);
    assert_eq!(response.text(), "ABCDEF");
    assert_eq!(
        response.chunks.len(),
        3,
        "one chunk per piece, as each arrived"
    );
}
