//! Applications written as `async fn`s (`from_async_fn` and `Responder`),
//! and stream bodies that set their own head.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::future::poll_fn;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use rgi::{BoxError, Environ, Input, ResponseHead};
use rgi_async::{Responder, ResponderError};
use support::{Sent, serve};

async fn hello(_environ: Environ, response: Responder) -> Result<(), BoxError> {
    response.set_status(StatusCode::CREATED)?;
    response.append_header("content-type", "text/plain")?;
    response.append_header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))?;
    response.send("Hello, ").await;
    response.send(String::from("world!\n")).await;
    Ok(())
}

#[test]
fn an_async_fn_sets_status_and_fields_then_streams_its_body() {
    let served = serve(
        &rgi_async::from_async_fn(hello),
        Environ::builder().build().unwrap(),
    )
    .unwrap();
    let heads = served.wire.heads();
    let [head] = heads.as_slice() else {
        panic!("{} heads", heads.len());
    };
    assert_eq!(head.status(), StatusCode::CREATED);
    assert_eq!(head.headers()["content-type"], "text/plain");
    assert_eq!(head.headers()["cache-control"], "no-store");
    assert_eq!(served.wire.body(), b"Hello, world!\n");
    // Streamed: one step per send, the head before the first chunk.
    assert_eq!(served.steps, 2);
    assert!(matches!(served.wire.sent.first(), Some(Sent::Head(_))));
}

#[test]
fn the_head_cannot_change_after_it_went_out() {
    async fn late(_environ: Environ, response: Responder) -> Result<(), BoxError> {
        response.send("first").await;
        let status = response.set_status(StatusCode::NOT_FOUND);
        let field = response.append_header("x-late", "1");
        match (status, field) {
            (Err(ResponderError::HeadSent { .. }), Err(ResponderError::HeadSent { .. })) => Ok(()),
            other => Err(format!("changed a sent head: {other:?}").into()),
        }
    }
    let served = serve(
        &rgi_async::from_async_fn(late),
        Environ::builder().build().unwrap(),
    )
    .unwrap();
    assert_eq!(served.wire.heads()[0].status(), StatusCode::OK);
    assert!(!served.wire.heads()[0].headers().contains_key("x-late"));
}

#[test]
fn invalid_fields_are_refused_typed() {
    async fn invalid(_environ: Environ, response: Responder) -> Result<(), BoxError> {
        let name = response.append_header("bad name", "x");
        let value = response.append_header("x-ok", "bad\nvalue");
        assert!(
            matches!(name, Err(ResponderError::InvalidName { .. })),
            "{name:?}"
        );
        assert!(
            matches!(value, Err(ResponderError::InvalidValue { .. })),
            "{value:?}"
        );
        Ok(())
    }
    let served = serve(
        &rgi_async::from_async_fn(invalid),
        Environ::builder().build().unwrap(),
    )
    .unwrap();
    assert_eq!(served.wire.heads()[0].status(), StatusCode::OK);
    assert!(served.wire.body().is_empty());
}

#[test]
fn an_error_returned_with_question_mark_fails_the_response_before_the_head() {
    async fn failing(environ: Environ, response: Responder) -> Result<(), BoxError> {
        let id: u32 = environ.uri().path().trim_start_matches('/').parse()?;
        response.send(id.to_string()).await;
        Ok(())
    }
    let environ = Environ::builder()
        .uri(http::Uri::from_static("/not-a-number"))
        .build()
        .unwrap();
    let err = serve(&rgi_async::from_async_fn(failing), environ).unwrap_err();
    assert!(
        err.downcast_ref::<std::num::ParseIntError>().is_some(),
        "{err}"
    );
}

/// A form echo: the body read through the non-blocking face, as it arrives.
async fn echo(mut environ: Environ, response: Responder) -> Result<(), BoxError> {
    response.append_header("content-type", "application/x-www-form-urlencoded")?;
    loop {
        let chunk = poll_fn(|cx| environ.input_mut().poll_chunk(cx, 4)).await?;
        if chunk.is_empty() {
            return Ok(());
        }
        response.send(chunk).await;
    }
}

#[test]
fn a_form_echo_streams_the_request_body_back_as_it_arrives() {
    let fed = support::Fed::default();
    fed.push("name=Ada&");
    let feeder = fed.clone();
    let late = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        feeder.push("lang=rust");
        feeder.end();
    });
    let environ = Environ::builder()
        .method(Method::POST)
        .input(Input::from_async(fed, None))
        .build()
        .unwrap();
    let served = serve(&rgi_async::from_async_fn(echo), environ).unwrap();
    late.join().unwrap();
    assert_eq!(served.wire.body(), b"name=Ada&lang=rust");
    assert!(
        served.steps >= 5,
        "chunks of at most 4 bytes: {}",
        served.steps
    );
}

struct Items(Vec<Bytes>);

impl futures_core::Stream for Items {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready((!self.0.is_empty()).then(|| Ok(self.0.remove(0))))
    }
}

#[test]
fn a_stream_body_starts_its_own_head_even_when_empty() {
    let head = || {
        ResponseHead::new(StatusCode::ACCEPTED).with_header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        )
    };
    for items in [vec![], vec![Bytes::from_static(b"data: 1\n\n")]] {
        let expected: Vec<u8> = items.iter().flatten().copied().collect();
        let app = rgi_async::from_fn(move |_environ, _start| {
            Ok(rgi_async::from_stream(Items(items.clone())).with_head(head()))
        });
        let served = serve(&app, Environ::builder().build().unwrap()).unwrap();
        assert_eq!(served.wire.heads()[0].status(), StatusCode::ACCEPTED);
        assert_eq!(
            served.wire.heads()[0].headers()["content-type"],
            "text/event-stream"
        );
        assert_eq!(served.wire.body(), expected);
    }
}
