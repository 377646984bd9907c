//! The crossings between `http`'s request and RGI's:
//! `environ_from_request` and `request_from_environ`, alone and one after
//! the other.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a failed unwrap is the test's failure"
)]

use std::convert::Infallible;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Version, header};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use rgi::{ConnectionInfo, EnvironError, Features, ServerInfo};
use rgi_tower::{ConvertError, OriginalUri, environ_from_request, request_from_environ};

type Frames =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// `data`, then a trailer section with `x-sum: 1`, with no size hint.
fn with_trailers(data: &'static str) -> Frames {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", HeaderValue::from_static("1"));
    StreamBody::new(futures_util::stream::iter(vec![
        Ok(Frame::data(Bytes::from_static(data.as_bytes()))),
        Ok(Frame::trailers(trailers)),
    ]))
}

fn server(request_trailers: bool) -> Arc<ServerInfo> {
    Arc::new(
        ServerInfo::new("127.0.0.1", 80)
            .unwrap()
            .with_script_name("/api")
            .unwrap()
            .with_features(Features::none().with_request_trailers(request_trailers)),
    )
}

fn connection() -> Arc<ConnectionInfo> {
    Arc::new(ConnectionInfo::new())
}

#[test]
fn an_http2_request_gets_its_authority_as_host_and_its_path_as_target() {
    let request = Request::get("http://example.org/api/users?page=2")
        .version(Version::HTTP_2)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let environ = environ_from_request(request, &server(false), &connection()).unwrap();
    assert_eq!(environ.headers()[header::HOST], "example.org");
    assert_eq!(environ.uri(), "/api/users?page=2");
    assert_eq!(environ.path_info(), "/users");
    assert_eq!(environ.request_url(), "http://example.org/api/users?page=2");

    let disagreeing = Request::get("http://example.org/api")
        .version(Version::HTTP_2)
        .header(header::HOST, "other.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert!(matches!(
        environ_from_request(disagreeing, &server(false), &connection()),
        Err(ConvertError::AuthorityMismatch)
    ));
}

#[test]
fn the_decoded_framing_is_removed_and_equal_lengths_merged() {
    let chunked = Request::post("/api/upload")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(with_trailers("abc"))
        .unwrap();
    let mut environ = environ_from_request(chunked, &server(false), &connection()).unwrap();
    assert!(!environ.headers().contains_key(header::TRANSFER_ENCODING));
    assert_eq!(environ.content_length(), None);
    let mut body = String::new();
    environ.input_mut().read_to_string(&mut body).unwrap();
    assert_eq!(body, "abc");
    // The server declares no request trailers: the input has none.
    assert!(environ.input().trailers().unwrap().is_none());

    let repeated = Request::post("/api/upload")
        .header(header::CONTENT_LENGTH, "3")
        .header(header::CONTENT_LENGTH, "3")
        .body(Full::new(Bytes::from_static(b"xyz")))
        .unwrap();
    let environ = environ_from_request(repeated, &server(false), &connection()).unwrap();
    assert_eq!(
        environ
            .headers()
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .count(),
        1
    );
    assert_eq!(environ.content_length(), Some(3));
}

#[test]
fn what_the_environ_refuses_is_a_typed_error() {
    let outside = Request::get("/elsewhere")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert!(matches!(
        environ_from_request(outside, &server(false), &connection()),
        Err(ConvertError::Environ(
            EnvironError::ScriptNameMismatch { .. }
        ))
    ));
    let tunnel = Request::builder()
        .method(Method::CONNECT)
        .uri("example.org:443")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert!(matches!(
        environ_from_request(tunnel, &server(false), &connection()),
        Err(ConvertError::Environ(
            EnvironError::UnsupportedTarget { .. }
        ))
    ));
}

#[tokio::test]
async fn a_request_crosses_both_ways_with_its_body_and_trailers() {
    let request = Request::put("/api/notes/a%2Fb?v=1")
        .version(Version::HTTP_2)
        .header(header::HOST, "127.0.0.1")
        .body(with_trailers("note"))
        .unwrap();
    let environ = environ_from_request(request, &server(true), &connection()).unwrap();
    assert_eq!(environ.path_info(), "/notes/a/b");

    let back = request_from_environ(environ).unwrap();
    assert_eq!(back.method(), Method::PUT);
    assert_eq!(back.version(), Version::HTTP_2);
    assert_eq!(back.uri(), "/notes/a%2Fb?v=1");
    assert_eq!(
        back.extensions().get::<OriginalUri>().unwrap().0,
        "/api/notes/a%2Fb?v=1"
    );
    assert!(back.extensions().get::<Arc<ConnectionInfo>>().is_some());
    let collected = back.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-sum"], "1");
    assert_eq!(collected.to_bytes(), "note");
}
