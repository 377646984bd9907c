//! `ProxyHeaders` on both stacks with a validator on each side: trusted
//! peers' `Forwarded` and `X-Forwarded-*` rewrite the address, scheme and
//! host the application sees; everyone else's, and malformed values, are
//! ignored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use http::header::HOST;
use http::{HeaderValue, StatusCode};
use rgi::{Address, Environ, ResponseHead, StartResponse};
use rgi_conformance::client::{TestRequest, TestResponse};
use rgi_middleware::{
    ForwardedClient, ForwardingFields, ProxyHeaders, TrustedProxies, TrustedProxiesError,
};

use common::{assert_clean, async_stack, sync_stack};

/// What the application saw, one field per line.
fn describe(environ: &Environ) -> String {
    let proxied = match environ.connection().peer_addr() {
        Some(Address::Proxied { proxy, .. }) => format!("via {proxy}"),
        Some(other) => format!("direct {other}"),
        None => String::from("no peer"),
    };
    let client = environ.extension::<ForwardedClient>().map_or_else(
        || String::from("-"),
        |c| {
            format!(
                "{} {:?} {:?}",
                c.ip,
                c.port,
                c.proxy.as_ref().map(ToString::to_string)
            )
        },
    );
    format!(
        "client={client}\nremote={}\nscheme={}\nurl={}\npeer={proxied}\nlocal={:?}\nscript={}\npath={}\nbody-len={:?}",
        environ
            .remote_addr()
            .map_or_else(|| "-".to_owned(), |a| a.to_string()),
        environ.url_scheme(),
        environ.request_url(),
        environ.connection().local_addr().map(ToString::to_string),
        environ.script_name().to_string_lossy(),
        environ.path_info().to_string_lossy(),
        environ.content_length(),
    )
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "the shape rgi::from_fn wants"
)]
fn reply(environ: Environ, start: &mut StartResponse<'_>) -> Result<String, rgi::BoxError> {
    start.start(ResponseHead::new(StatusCode::OK).with_header(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    ))?;
    Ok(describe(&environ))
}

fn trusted() -> ProxyHeaders {
    ProxyHeaders::new(
        TrustedProxies::parse(["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.200"]).unwrap(),
    )
}

/// The request through `middleware` on both stacks; both answers must be
/// the same and clean. Returns the synchronous one.
fn both(middleware: impl Fn() -> ProxyHeaders, request: impl Fn() -> TestRequest) -> TestResponse {
    let (client, inner) = sync_stack(middleware(), rgi::from_fn(reply));
    let sync_response = client.request(request()).unwrap();
    assert_clean(&sync_response, &inner);
    sync_response.assert_ok_and_valid();
    let (client, inner) = async_stack(middleware(), rgi_async::from_fn(reply));
    let async_response = client.request(request()).unwrap();
    assert_clean(&async_response, &inner);
    async_response.assert_ok_and_valid();
    assert_eq!(sync_response.text(), async_response.text());
    sync_response
}

fn line(response: &TestResponse, key: &str) -> String {
    let text = response.text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("{key} in {text}"))
}

/// The forwarded client's IP, as the extension says.
fn client_ip(response: &TestResponse) -> String {
    line(response, "client")
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

fn from(peer: &str, uri: &str, fields: &[(&'static str, &'static str)]) -> TestRequest {
    let mut request = TestRequest::get(uri)
        .remote_addr(peer.parse().unwrap())
        .header(HOST, HeaderValue::from_static("internal:8080"));
    for (name, value) in fields {
        request = request.header(
            http::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    request
}

#[test]
fn forwarded_from_a_trusted_proxy_rewrites_everything() {
    let r = both(trusted, || {
        from(
            "10.0.0.2:40000",
            "/a?b=1",
            &[("forwarded", "for=192.0.2.60;proto=https;host=shop.example")],
        )
    });
    assert_eq!(client_ip(&r), "192.0.2.60");
    assert_eq!(line(&r, "remote"), "-");
    assert_eq!(line(&r, "scheme"), "https");
    assert_eq!(line(&r, "url"), "https://shop.example/a?b=1");
    assert_eq!(line(&r, "peer"), "no peer", "no port: the peer is unknown");
    assert_eq!(
        line(&r, "client"),
        "192.0.2.60 None Some(\"10.0.0.2:40000\")"
    );
}

#[test]
fn forwarded_with_ports_ipv6_quotes_and_case() {
    let r = both(trusted, || {
        from(
            "10.0.0.2:40000",
            "/",
            &[(
                "forwarded",
                r#"For="[2001:db8:cafe::17]:4711";Proto=HTTP;Host="shop.example:8443""#,
            )],
        )
    });
    assert_eq!(line(&r, "remote"), "[2001:db8:cafe::17]:4711");
    assert_eq!(line(&r, "peer"), "via 10.0.0.2:40000");
    assert_eq!(
        line(&r, "client"),
        "2001:db8:cafe::17 Some(4711) Some(\"10.0.0.2:40000\")"
    );
    assert_eq!(line(&r, "scheme"), "http");
    assert_eq!(line(&r, "url"), "http://shop.example:8443/");
}

#[test]
fn the_rightmost_untrusted_hop_is_the_client() {
    // The client claims to be 1.1.1.1 (spoofed, leftmost); the edge proxy
    // 192.0.2.200 appended the real client; 10.0.0.7 appended the edge.
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/",
            &[(
                "forwarded",
                "for=1.1.1.1, for=198.51.100.4;proto=https, for=192.0.2.200;proto=http",
            )],
        )
    });
    assert_eq!(client_ip(&r), "198.51.100.4");
    assert_eq!(line(&r, "remote"), "-");
    assert_eq!(
        line(&r, "scheme"),
        "https",
        "proto from the client's element"
    );
    // The same over several field lines.
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/",
            &[
                ("forwarded", "for=1.1.1.1"),
                ("forwarded", "for=198.51.100.4, for=10.9.9.9"),
            ],
        )
    });
    assert_eq!(client_ip(&r), "198.51.100.4");
    assert_eq!(line(&r, "remote"), "-");
    // X-Forwarded-For likewise.
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/",
            &[("x-forwarded-for", "1.1.1.1, 198.51.100.4, 10.1.1.1")],
        )
    });
    assert_eq!(client_ip(&r), "198.51.100.4");
    assert_eq!(line(&r, "remote"), "-");
    // All trusted: the leftmost.
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/",
            &[("x-forwarded-for", "10.3.3.3, 10.1.1.1")],
        )
    });
    assert_eq!(client_ip(&r), "10.3.3.3");
    assert_eq!(line(&r, "remote"), "-");
}

#[test]
fn x_forwarded_fields() {
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/x",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "shop.example"),
            ],
        )
    });
    assert_eq!(client_ip(&r), "203.0.113.9");
    assert_eq!(line(&r, "remote"), "-");
    assert_eq!(line(&r, "url"), "https://shop.example/x");
    // Proto/host lists as long as the hop list are read at the client's
    // position; other lengths are ambiguous and ignored.
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/",
            &[
                ("x-forwarded-for", "203.0.113.9, 10.1.1.1"),
                ("x-forwarded-proto", "https, http"),
                ("x-forwarded-host", "shop.example, inner.example"),
            ],
        )
    });
    assert_eq!(line(&r, "url"), "https://shop.example/");
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/",
            &[
                ("x-forwarded-for", "203.0.113.9, 10.1.1.1, 10.2.2.2"),
                ("x-forwarded-proto", "https, http"),
            ],
        )
    });
    assert_eq!(line(&r, "scheme"), "http");
    assert_eq!(client_ip(&r), "203.0.113.9");
    assert_eq!(line(&r, "remote"), "-");
    // A port in X-Forwarded-For (some proxies add one) makes a socket
    // address.
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/",
            &[("x-forwarded-for", "203.0.113.9:5000")],
        )
    });
    assert_eq!(line(&r, "remote"), "203.0.113.9:5000");
    // An explicit port 0 is no port.
    let r = both(trusted, || {
        from("10.0.0.2:1", "/", &[("forwarded", "for=\"203.0.113.9:0\"")])
    });
    assert_eq!(line(&r, "remote"), "-");
    // IPv6 in X-Forwarded-For, bare or bracketed.
    let r = both(trusted, || {
        from("10.0.0.2:1", "/", &[("x-forwarded-for", "2001:db8::5")])
    });
    assert_eq!(client_ip(&r), "2001:db8::5");
    assert_eq!(line(&r, "remote"), "-");
}

#[test]
fn forwarded_wins_over_x_forwarded_unless_configured() {
    let fields = [
        ("forwarded", "for=192.0.2.60"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    let r = both(trusted, || from("10.0.0.2:1", "/", &fields));
    assert_eq!(client_ip(&r), "192.0.2.60");
    assert_eq!(line(&r, "remote"), "-");
    let r = both(
        || trusted().fields(ForwardingFields::XForwarded),
        || from("10.0.0.2:1", "/", &fields),
    );
    assert_eq!(client_ip(&r), "203.0.113.9");
    assert_eq!(line(&r, "remote"), "-");
    let r = both(
        || trusted().fields(ForwardingFields::Forwarded),
        || from("10.0.0.2:1", "/", &[("x-forwarded-for", "203.0.113.9")]),
    );
    assert_eq!(line(&r, "remote"), "10.0.0.2:1");
}

#[test]
fn ignored_from_untrusted_peers() {
    for peer in ["198.51.100.1:5", "192.0.2.201:5", "[2001:db8:fffe::1]:5"] {
        let r = both(trusted, || {
            from(
                peer,
                "/",
                &[
                    ("forwarded", "for=1.2.3.4;proto=https;host=evil.example"),
                    ("x-forwarded-for", "1.2.3.4"),
                ],
            )
        });
        assert_eq!(line(&r, "remote"), peer.to_owned());
        assert_eq!(line(&r, "url"), "http://internal:8080/");
        assert!(line(&r, "peer").starts_with("direct "), "{peer}");
        assert_eq!(line(&r, "client"), "-");
    }
    // No peer address at all (a Unix socket): nothing to trust.
    let r = both(trusted, || {
        TestRequest::get("/")
            .header(HOST, HeaderValue::from_static("internal"))
            .header(
                http::header::FORWARDED,
                HeaderValue::from_static("for=1.2.3.4"),
            )
    });
    assert_eq!(line(&r, "remote"), "-");
}

#[test]
fn ipv4_mapped_peers_match_ipv4_blocks() {
    let r = both(trusted, || {
        from(
            "[::ffff:10.0.0.2]:1",
            "/",
            &[("x-forwarded-for", "203.0.113.9")],
        )
    });
    assert_eq!(client_ip(&r), "203.0.113.9");
    assert_eq!(line(&r, "remote"), "-");
}

#[test]
fn malformed_values_are_ignored_whole() {
    let bad: &[&[(&'static str, &'static str)]] = &[
        &[("forwarded", "for=")],
        &[("forwarded", "for=192.0.2.60;")],
        &[("forwarded", "for=\"192.0.2.60")],
        &[("forwarded", "for=2001:db8::1")],
        &[("forwarded", "for=192.0.2.60;proto=gopher")],
        &[("forwarded", "for=192.0.2.60;host=a@b")],
        &[("forwarded", "for=192.0.2.60 junk")],
        &[("forwarded", "for=not-an-address")],
        &[("forwarded", "for=192.0.2.60, for=bogus")],
        &[("forwarded", "proto=https")],
        &[("forwarded", "for=192.0.2.60;for=192.0.2.61")],
        &[("forwarded", "for=192.0.2.60;proto=https;PROTO=http")],
        &[("x-forwarded-for", "")],
        &[("x-forwarded-for", "203.0.113.9,,10.1.1.1")],
        &[("x-forwarded-for", "unknown")],
        &[("x-forwarded-for", "999.0.0.1")],
    ];
    for fields in bad {
        let r = both(trusted, || from("10.0.0.2:1", "/", fields));
        assert_eq!(line(&r, "remote"), "10.0.0.2:1", "{fields:?}");
        assert_eq!(line(&r, "client"), "-", "{fields:?}");
        assert_eq!(line(&r, "url"), "http://internal:8080/", "{fields:?}");
    }
    // Malformed proto or host in X-Forwarded-*: the address is still used,
    // the bad value is not.
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "ftp"),
                ("x-forwarded-host", "bad host"),
            ],
        )
    });
    assert_eq!(client_ip(&r), "203.0.113.9");
    assert_eq!(line(&r, "remote"), "-");
    assert_eq!(line(&r, "url"), "http://internal:8080/");
}

#[test]
fn hidden_nodes_stop_the_walk() {
    // An obfuscated or unknown hop where the client would be: the address
    // stays the peer's.
    for value in [
        "for=_hidden, for=10.1.1.1",
        "for=unknown",
        "for=\"_abc:_port\"",
    ] {
        let r = both(trusted, || from("10.0.0.2:1", "/", &[("forwarded", value)]));
        assert_eq!(line(&r, "remote"), "10.0.0.2:1", "{value}");
    }
    // Left of an untrusted hop it does not matter.
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/",
            &[("forwarded", "for=unknown, for=198.51.100.4")],
        )
    });
    assert_eq!(client_ip(&r), "198.51.100.4");
    assert_eq!(line(&r, "remote"), "-");
}

#[test]
fn https_connection_downgraded_by_the_proxy_and_the_rest_kept() {
    // The connection to us is TLS, the client's was plain: http.
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "/app/x",
            &[("forwarded", "for=198.51.100.4;proto=http")],
        )
        .url_scheme(rgi::UrlScheme::Https)
        .script_name("/app")
        .body("abc")
    });
    assert_eq!(line(&r, "scheme"), "http");
    assert_eq!(line(&r, "script"), "/app");
    assert_eq!(line(&r, "path"), "/x");
    assert_eq!(line(&r, "body-len"), "Some(3)");
    // No proto: the connection's own scheme stays.
    let r = both(trusted, || {
        from("10.0.0.2:1", "/", &[("forwarded", "for=198.51.100.4")])
            .url_scheme(rgi::UrlScheme::Https)
    });
    assert_eq!(line(&r, "scheme"), "https");
}

#[test]
fn absolute_form_targets_get_the_forwarded_authority() {
    let r = both(trusted, || {
        from(
            "10.0.0.2:1",
            "http://internal:8080/p?q",
            &[(
                "forwarded",
                "for=198.51.100.4;proto=https;host=shop.example",
            )],
        )
    });
    assert_eq!(line(&r, "url"), "https://shop.example/p?q");
}

#[test]
fn trusted_proxies_parse_and_refuse() {
    let list = TrustedProxies::parse(["10.0.0.0/8", " 192.0.2.7 ", "::1", "0.0.0.0/0"]).unwrap();
    assert!(
        list.contains("8.8.8.8".parse().unwrap()),
        "0.0.0.0/0 holds every IPv4 address"
    );
    assert!(!list.contains("::2".parse().unwrap()));
    let none = TrustedProxies::parse(Vec::<&str>::new()).unwrap();
    assert!(!none.contains("10.0.0.1".parse().unwrap()));
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "example.org",
        "10.0.0.0/",
        "10.0.0/8",
        "",
    ] {
        assert!(
            matches!(
                TrustedProxies::parse([bad]),
                Err(TrustedProxiesError::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
}
