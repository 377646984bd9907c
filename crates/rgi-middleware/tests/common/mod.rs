//! What the tests share: the stacks with a validator on each side of the
//! middleware, and a body that serves both stacks.
#![allow(dead_code, unreachable_pub, clippy::expect_used)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TE};
use http::{HeaderValue, StatusCode};
use rgi::{Application, Body, BoxError, ResponseHead, StartResponse};
use rgi_async::{AsyncApplication, AsyncBody, Step};
use rgi_conformance::client::{AsyncTestClient, TestClient, TestRequest, TestResponse};
use rgi_conformance::validate::{AsyncValidator, Validator};
use rgi_conformance::{Policy, Reports};
use rgi_middleware::{Middleware, Wrapped};

/// A synchronous client: the kit's validator outside (the client's own),
/// `middleware`, and a second validator inside, around `app`.
pub fn sync_stack<M: Middleware, A: Application>(
    middleware: M,
    app: A,
) -> (TestClient<Wrapped<M, Validator<A>>>, Reports) {
    let inner = Reports::new(Policy::Collect);
    let client = TestClient::new(middleware.wrap(Validator::new(app, inner.clone())));
    (client, inner)
}

/// The asynchronous counterpart of [`sync_stack`].
pub fn async_stack<M: Middleware, A: AsyncApplication>(
    middleware: M,
    app: A,
) -> (AsyncTestClient<Wrapped<M, AsyncValidator<A>>>, Reports) {
    let inner = Reports::new(Policy::Collect);
    let client = AsyncTestClient::new(middleware.wrap(AsyncValidator::new(app, inner.clone())));
    (client, inner)
}

/// Neither validator reported anything, warnings included.
#[track_caller]
pub fn assert_clean(response: &TestResponse, inner: &Reports) {
    assert!(
        response.violations.is_empty(),
        "outer validator: {:#?}",
        response.violations
    );
    let seen = inner.take();
    assert!(seen.is_empty(), "inner validator: {seen:#?}");
}

/// A request that can take response trailers.
pub fn with_trailers(request: TestRequest) -> TestRequest {
    request
        .header(TE, HeaderValue::from_static("trailers"))
        .features(rgi::Features::none().with_response_trailers(true))
}

/// `200 OK`, `text/plain`, with `content-length` when `length` is given.
pub fn text_head(length: Option<usize>) -> ResponseHead {
    let head = ResponseHead::new(StatusCode::OK)
        .with_header(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    match length {
        Some(length) => head.with_header(CONTENT_LENGTH, HeaderValue::from(length)),
        None => head,
    }
}

/// A body of fixed parts that starts `head` lazily, at its first step if
/// nobody started the response: both an `rgi::Body` and an
/// `rgi_async::AsyncBody`, with an exact size hint.
pub struct Parts {
    head: Option<ResponseHead>,
    parts: VecDeque<Bytes>,
}

impl Parts {
    pub fn new(head: Option<ResponseHead>, parts: &[&'static str]) -> Self {
        Parts {
            head,
            parts: parts
                .iter()
                .map(|p| Bytes::from_static(p.as_bytes()))
                .collect(),
        }
    }

    fn step(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        if let Some(head) = self.head.take() {
            if !start.is_started() {
                if let Err(err) = start.start(head) {
                    return Some(Err(err.into()));
                }
            }
        }
        self.parts.pop_front().map(Ok)
    }

    fn remaining(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }
}

impl Body for Parts {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.step(start)
    }

    fn size_hint(&self) -> Option<u64> {
        Some(self.remaining())
    }
}

impl AsyncBody for Parts {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(self.get_mut().step(start).map(|r| r.map(Step::Chunk)))
    }

    fn size_hint(&self) -> Option<u64> {
        Some(self.remaining())
    }
}

/// The whole of `parts`, joined.
pub fn joined(parts: &[&str]) -> String {
    parts.concat()
}

/// [`Parts`] that gives the trailer `x-inner: yes` when its parts are out.
pub struct Trailing(pub Parts);

impl Trailing {
    fn step(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match self.0.step(start) {
            None => {
                let mut fields = http::HeaderMap::new();
                fields.insert("x-inner", HeaderValue::from_static("yes"));
                start.send_trailers(fields).err().map(|e| Err(e.into()))
            }
            some => some,
        }
    }
}

impl Body for Trailing {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.step(start)
    }
}

impl AsyncBody for Trailing {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        Poll::Ready(self.get_mut().step(start).map(|r| r.map(Step::Chunk)))
    }
}
