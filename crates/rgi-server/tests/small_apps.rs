//! The three small applications of `docs/rgi-server.md` ("Coming from
//! axum"), served by `rgi-server` on 127.0.0.1 and asked by a real hyper
//! client: the answers the document claims are the answers the server gives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[allow(dead_code)]
#[path = "../examples/support/small_apps.rs"]
mod small_apps;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode, header};
use http_body_util::Full;
use rgi_server::Server;

fn serve(app: impl rgi::Application) -> Server {
    Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(2)
        .serve_sync(app)
        .expect("server starts")
}

fn post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "test.example")
        .body(Full::new(body.into()))
        .expect("request")
}

#[test]
fn hello_answers_every_path() {
    let server = serve(small_apps::hello());
    let address = addr(&server);
    run(async {
        let mut sender = h1_client(address).await;
        for path in ["/", "/anything"] {
            let response = sender.send_request(get(path)).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/plain; charset=utf-8"
            );
            assert_eq!(response.headers()[header::CONTENT_LENGTH], "14");
            assert_eq!(body_text(response).await, "Hello, world!\n");
        }
    });
    // Declared never-blocking and bodiless: it ran inline, not on the pool.
    let pool = server.pool_stats().expect("an RGI application");
    assert_eq!((pool.running, pool.queued, pool.rejected), (0, 0, 0));
}

#[test]
fn json_echo_wraps_the_posted_body_in_json() {
    let server = serve(small_apps::json_echo());
    let address = addr(&server);
    run(async {
        let mut sender = h1_client(address).await;
        let response = sender
            .send_request(post("/", "say \"hi\"\n\\ \u{1}é"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body_text(response).await,
            r#"{"length":14,"echo":"say \"hi\"\n\\ \u0001é"}"#
        );

        let response = sender.send_request(get("/")).await.expect("response");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "POST");
        let _ = body_text(response).await;

        let response = sender
            .send_request(post("/", vec![0xff_u8, 0xfe]))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let _ = body_text(response).await;
    });
}

#[test]
fn json_echo_refuses_a_body_over_its_limit_with_413() {
    let server = serve(small_apps::json_echo());
    let address = addr(&server);
    run(async {
        let mut sender = h1_client(address).await;
        let response = sender
            .send_request(post("/", vec![b'x'; small_apps::ECHO_LIMIT + 1]))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    });
}

#[test]
fn routes_answer_by_path_and_404_otherwise() {
    let server = serve(small_apps::routes());
    let address = addr(&server);
    run(async {
        let mut sender = h1_client(address).await;
        let cases = [
            ("/", StatusCode::OK, "home\n"),
            ("/users/42", StatusCode::OK, "user 42\n"),
            ("/users/a%2Fb", StatusCode::OK, "user a/b\n"),
            ("/users", StatusCode::NOT_FOUND, "not found\n"),
            ("/users/42/posts", StatusCode::NOT_FOUND, "not found\n"),
            ("/nope", StatusCode::NOT_FOUND, "not found\n"),
        ];
        for (path, status, text) in cases {
            let response = sender.send_request(get(path)).await.expect("response");
            assert_eq!(response.status(), status, "{path}");
            assert_eq!(body_text(response).await, text, "{path}");
        }
        let response = sender
            .send_request(post("/users/42", ""))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
    });
}
