#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Connection information: one value per connection, shared by its
//! requests, from which the URL scheme and the remote address follow
//! (RGI-CONN-6 to RGI-CONN-12).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use rgi::{
    Address, ConnectionInfo, Environ, Input, ServerInfo, TlsInfo, TlsVersion, UnixAddr, UrlScheme,
};

fn request(target: &'static str) -> http::request::Parts {
    Request::get(target).body(()).unwrap().into_parts().0
}

#[test]
fn nothing_known_means_plain_http_without_a_peer() {
    let connection = ConnectionInfo::new();
    assert_eq!(connection.peer_addr(), None);
    assert_eq!(connection.local_addr(), None);
    assert!(connection.tls().is_none());
    assert_eq!(connection.url_scheme(), UrlScheme::Http);
    assert_eq!(connection.remote_addr(), None);
}

#[test]
fn every_request_of_a_connection_shares_one_value() {
    let server = Arc::new(ServerInfo::new("example.org", 443).unwrap());
    let connection = Arc::new(
        ConnectionInfo::new()
            .with_peer_addr(Address::Tcp("192.0.2.7:50000".parse().unwrap()))
            .with_local_addr(Address::Tcp("10.0.0.5:443".parse().unwrap()))
            .with_tls(TlsInfo::new().with_version(TlsVersion::Tls1_3)),
    );

    let first = Environ::from_parts(request("/a"), Input::empty(), &server, &connection).unwrap();
    let second = Environ::from_parts(request("/b"), Input::empty(), &server, &connection).unwrap();

    assert!(Arc::ptr_eq(first.connection(), second.connection()));
    assert!(Arc::ptr_eq(first.connection(), &connection));
    assert_eq!(Arc::strong_count(&connection), 3);
    drop((first, second));
    assert_eq!(Arc::strong_count(&connection), 1);
}

#[test]
fn url_scheme_and_remote_addr_derive_from_the_connection() {
    let server = Arc::new(ServerInfo::new("example.org", 443).unwrap());
    let tls = Arc::new(
        ConnectionInfo::new()
            .with_peer_addr(Address::Tcp("[2001:db8::1]:40000".parse().unwrap()))
            .with_tls(TlsInfo::new()),
    );
    let environ = Environ::from_parts(request("/x"), Input::empty(), &server, &tls).unwrap();
    assert_eq!(environ.url_scheme(), UrlScheme::Https);
    assert_eq!(
        environ.remote_addr(),
        Some("[2001:db8::1]:40000".parse().unwrap())
    );
    assert_eq!(environ.request_url(), "https://example.org/x");

    let plain = Arc::new(ConnectionInfo::new());
    let environ = Environ::from_parts(request("/x"), Input::empty(), &server, &plain).unwrap();
    assert_eq!(environ.url_scheme(), UrlScheme::Http);
    assert_eq!(environ.remote_addr(), None);
    assert_eq!(environ.request_url(), "http://example.org:443/x");
}

#[test]
fn a_unix_socket_peer_has_no_remote_addr() {
    for peer in [
        UnixAddr::Unnamed,
        UnixAddr::Pathname(PathBuf::from("/run/app.sock")),
        UnixAddr::Abstract(Bytes::from_static(b"app")),
    ] {
        let connection = ConnectionInfo::new().with_peer_addr(Address::Unix(peer.clone()));
        assert_eq!(connection.remote_addr(), None, "{peer}");
        assert_eq!(connection.peer_addr(), Some(&Address::Unix(peer)));
    }
    assert_eq!(
        Address::Unix(UnixAddr::Pathname(PathBuf::from("/run/app.sock"))).to_string(),
        "unix:/run/app.sock"
    );
}

#[test]
fn a_proxied_peer_names_the_proxy_that_declared_it() {
    let proxy = Address::Tcp("10.0.0.2:51000".parse().unwrap());
    let peer = Address::Proxied {
        address: "203.0.113.9:41000".parse().unwrap(),
        proxy: Box::new(proxy.clone()),
    };
    let connection = ConnectionInfo::new().with_peer_addr(peer.clone());

    assert_eq!(
        connection.remote_addr(),
        Some("203.0.113.9:41000".parse().unwrap())
    );
    assert!(
        matches!(connection.peer_addr(), Some(Address::Proxied { proxy: declared_by, .. }) if **declared_by == proxy),
        "the peer is {:?}",
        connection.peer_addr()
    );
    assert_eq!(peer.to_string(), "203.0.113.9:41000 (via 10.0.0.2:51000)");
}

#[test]
fn tls_details_are_what_the_server_filled_in() {
    let chain = vec![
        Bytes::from_static(b"\x30\x82\x01\x0a leaf"),
        Bytes::from_static(b"\x30\x82\x01\x0b issuer"),
    ];
    let tls = TlsInfo::new()
        .with_version(TlsVersion::Other(0x0305))
        .with_server_name("shop.example")
        .with_alpn_protocol(Bytes::from_static(b"http/1.1"))
        .with_peer_certificates(chain.clone());

    assert_eq!(tls.version(), Some(TlsVersion::Other(0x0305)));
    assert_eq!(tls.server_name(), Some("shop.example"));
    assert_eq!(tls.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(tls.peer_certificates(), &chain[..]);

    let unknown = TlsInfo::new();
    assert_eq!(unknown.version(), None);
    assert_eq!(unknown.server_name(), None);
    assert_eq!(unknown.alpn_protocol(), None);
    assert!(unknown.peer_certificates().is_empty());
}

#[test]
fn the_builder_records_remote_addr_and_scheme_in_the_connection() {
    let environ = Environ::builder()
        .remote_addr("192.0.2.7:50000".parse().unwrap())
        .url_scheme(UrlScheme::Https)
        .build()
        .unwrap();
    let connection = environ.connection();
    assert_eq!(
        connection.peer_addr(),
        Some(&Address::Tcp("192.0.2.7:50000".parse().unwrap()))
    );
    // Https says TLS is on; the builder knows nothing else about it.
    assert_eq!(connection.tls(), Some(&TlsInfo::new()));

    let back_to_http = Environ::builder()
        .url_scheme(UrlScheme::Https)
        .url_scheme(UrlScheme::Http)
        .build()
        .unwrap();
    assert!(back_to_http.connection().tls().is_none());
}

#[test]
fn a_given_connection_replaces_the_builder_settings() {
    let connection = Arc::new(ConnectionInfo::new().with_tls(TlsInfo::new()));
    let environ = Environ::builder()
        .remote_addr("192.0.2.7:50000".parse().unwrap())
        .connection(Arc::clone(&connection))
        .build()
        .unwrap();
    assert!(Arc::ptr_eq(environ.connection(), &connection));
    assert_eq!(environ.remote_addr(), None);
    assert_eq!(environ.url_scheme(), UrlScheme::Https);
}
