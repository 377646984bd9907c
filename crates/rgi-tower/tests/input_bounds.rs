//! The request body source `AsyncService` builds never hands the input a
//! chunk larger than it was polled for (`[RGIA-INPUT-2]`): a frame larger
//! than the poll's `max` is handed over in pieces, through real hyper over
//! 127.0.0.1.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is the test's failure")]

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::*;
use http::StatusCode;
use rgi::{BoxError, Input, ResponseHead, StartResponse};
use rgi_async::{AsyncBody, Step};
use rgi_tower::AsyncService;

/// Reads its input three bytes at a time and answers, for each poll, the
/// chunk and the excess the input had to hold back (`held_excess`).
struct SmallPolls {
    input: Input,
    report: String,
}

impl AsyncBody for SmallPolls {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        loop {
            let chunk = match std::task::ready!(this.input.poll_chunk(cx, 3)) {
                Ok(chunk) => chunk,
                Err(err) => return Step::ready(Err::<Bytes, _>(err)),
            };
            if chunk.is_empty() {
                if start.is_started() {
                    return Poll::Ready(None);
                }
                start.start(ResponseHead::new(StatusCode::OK))?;
                let report = std::mem::take(&mut this.report);
                return Step::ready(Ok::<_, BoxError>(Bytes::from(report)));
            }
            let excess = this.input.held_excess();
            this.report
                .push_str(&format!("{}+{excess} ", String::from_utf8_lossy(&chunk)));
        }
    }
}

async fn polled_in_threes(body: TestBody) -> Bytes {
    let app = rgi_async::from_fn(|environ, _start| {
        Ok(SmallPolls {
            input: environ.into_input(),
            report: String::new(),
        })
    });
    let service = AsyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let (parts, answer) = fetch(server.addr, request("POST", "/", body)).await;
    assert_eq!(parts.status, StatusCode::OK);
    answer
}

#[tokio::test]
async fn a_frame_larger_than_the_poll_is_handed_over_in_pieces() {
    // One frame of ten bytes, with a declared length.
    let answer = polled_in_threes(TestBody::full("abcdefghij")).await;
    assert_eq!(answer, "abc+0 def+0 ghi+0 j+0 ");
}

#[tokio::test]
async fn a_chunked_body_is_handed_over_in_pieces_too() {
    let (sender, body) = TestBody::channel(4);
    let feeding = tokio::spawn(async move {
        for part in ["abcdefg", "hijk"] {
            sender
                .send(Bytes::from_static(part.as_bytes()))
                .await
                .unwrap();
        }
    });
    let answer = polled_in_threes(body).await;
    feeding.await.unwrap();
    assert_eq!(answer, "abc+0 def+0 g+0 hij+0 k+0 ");
}
