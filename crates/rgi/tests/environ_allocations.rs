#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What building an environ costs in heap allocations, counted exactly by a
//! global allocator that forwards to the system's (RGI-ENV-1, RGI-PATH-3).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Uri, Version};
use rgi::{Address, ConnectionInfo, Environ, Errors, Input, ServerInfo};

mod counting_alloc;

use counting_alloc::allocations_during;

/// The head of `GET <target>` as an HTTP layer such as hyper parses it: the
/// target is a slice of the shared read buffer, not a copy.
fn parsed_head(target: &str, version: Version) -> Parts {
    let line = format!("GET {target} HTTP/1.1\r\n");
    let mut read_buffer = BytesMut::from(line.as_bytes());
    let head: Bytes = read_buffer.split_to(line.len()).freeze();
    let uri = Uri::from_maybe_shared(head.slice(4..4 + target.len())).unwrap();
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = Method::GET;
    parts.uri = uri;
    parts.version = version;
    parts
        .headers
        .append("host", HeaderValue::from_static("example.org"));
    parts
        .headers
        .append("accept", HeaderValue::from_static("*/*"));
    parts
}

fn server_and_connection() -> (Arc<ServerInfo>, Arc<ConnectionInfo>) {
    let server = Arc::new(ServerInfo::new("example.org", 8080).unwrap());
    let connection = Arc::new(
        ConnectionInfo::new().with_peer_addr(Address::Tcp("192.0.2.7:50000".parse().unwrap())),
    );
    (server, connection)
}

#[test]
fn from_parts_for_a_plain_path_allocates_nothing() {
    let (server, connection) = server_and_connection();
    let parts = parsed_head("/hello", Version::HTTP_11);
    let input = Input::empty();

    let (allocations, environ) =
        allocations_during(|| Environ::from_parts(parts, input, &server, &connection).unwrap());

    assert_eq!(allocations, 0);
    assert_eq!(environ.path_info(), "/hello");
    assert_eq!(environ.headers().len(), 2);
    assert_eq!(environ.server_name(), "example.org");
    assert_eq!(
        environ.remote_addr(),
        Some("192.0.2.7:50000".parse().unwrap())
    );
}

#[test]
fn from_parts_under_a_mount_point_allocates_nothing() {
    let server = Arc::new(
        ServerInfo::new("example.org", 8080)
            .unwrap()
            .with_script_name(Bytes::from_static(b"/shop"))
            .unwrap(),
    );
    let connection = Arc::new(ConnectionInfo::new());
    let parts = parsed_head("/shop/cart/items?page=2", Version::HTTP_11);

    let (allocations, mut environ) = allocations_during(|| {
        Environ::from_parts(parts, Input::empty(), &server, &connection).unwrap()
    });

    assert_eq!(allocations, 0);
    assert_eq!(environ.script_name(), "/shop");
    assert_eq!(environ.path_info(), "/cart/items");

    // Moving an unescaped segment keeps sharing the target's bytes.
    let (allocations, segment) = allocations_during(|| environ.shift_path());
    assert_eq!(allocations, 0);
    assert_eq!(segment.unwrap(), "/cart");
    assert_eq!(environ.script_name(), "/shop/cart");
    assert_eq!(environ.path_info(), "/items");
}

#[test]
fn an_escaped_path_costs_one_allocation() {
    let (server, connection) = server_and_connection();
    let parts = parsed_head("/caf%C3%A9/menu", Version::HTTP_11);

    let (allocations, environ) = allocations_during(|| {
        Environ::from_parts(parts, Input::empty(), &server, &connection).unwrap()
    });

    assert_eq!(allocations, 1);
    assert_eq!(environ.path_info(), "/café/menu");
}

#[test]
fn the_default_error_stream_and_an_http2_body_cost_nothing() {
    let (server, connection) = server_and_connection();
    let parts = parsed_head("/upload", Version::HTTP_2);
    let input = Input::from_bytes("streamed");

    let (allocations, mut environ) =
        allocations_during(|| Environ::from_parts(parts, input, &server, &connection).unwrap());
    assert_eq!(allocations, 0);

    let (allocations, previous) = allocations_during(|| environ.replace_errors(Errors::discard()));
    assert_eq!(allocations, 0);
    assert_eq!(format!("{previous:?}"), "Errors { sink: Stderr }");
}

#[test]
fn into_parts_allocates_nothing() {
    let (server, connection) = server_and_connection();
    let environ = Environ::from_parts(
        parsed_head("/hello", Version::HTTP_11),
        Input::empty(),
        &server,
        &connection,
    )
    .unwrap();

    let (allocations, (parts, _input)) = allocations_during(|| environ.into_parts());

    assert_eq!(allocations, 0);
    assert_eq!(parts.uri, "/hello");
    assert_eq!(parts.headers.len(), 2);
}

#[test]
fn the_builder_allocates_no_defaults() {
    // The shared defaults (server `localhost:80`, an unknown connection) are
    // allocated once per process; build one environ to get past that.
    drop(Environ::builder().build().unwrap());

    let (allocations, environ) = allocations_during(|| {
        Environ::builder()
            .uri(Uri::from_static("/plain/path"))
            .build()
            .unwrap()
    });

    assert_eq!(allocations, 0);
    assert_eq!(environ.server_name(), "localhost");
    assert_eq!(environ.path_info(), "/plain/path");
}

#[test]
fn a_server_wide_extension_is_reached_without_allocating() {
    #[derive(Clone, Debug, PartialEq)]
    struct Deployment(&'static str);

    let server = Arc::new(
        ServerInfo::new("example.org", 8080)
            .unwrap()
            .with_extension(Deployment("eu-1")),
    );
    let connection = Arc::new(ConnectionInfo::new());
    let parts = parsed_head("/hello", Version::HTTP_11);

    let (allocations, found) = allocations_during(|| {
        let environ = Environ::from_parts(parts, Input::empty(), &server, &connection).unwrap();
        environ.extension::<Deployment>().cloned()
    });

    assert_eq!(allocations, 0);
    assert_eq!(found, Some(Deployment("eu-1")));
}
