#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The request environment: defaults, path split, invariants, URL
//! reconstruction.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use rgi::{
    Concurrency, ConnectProtocol, ConnectionInfo, Environ, EnvironBuilder, EnvironError, Errors,
    Input, PathBytes, ServerInfo, UrlScheme,
};

fn at(target: &'static str) -> EnvironBuilder {
    Environ::builder().uri(Uri::from_static(target))
}

fn mounted(target: &'static str, script_name: &'static str) -> Environ {
    at(target).script_name(script_name).build().unwrap()
}

fn header(value: &'static str) -> HeaderValue {
    HeaderValue::from_static(value)
}

// ---------------------------------------------------------------------------
// Defaults and accessors.

#[test]
fn builder_defaults_describe_a_plain_local_get() {
    let environ = Environ::builder().build().unwrap();

    assert_eq!(environ.method(), Method::GET);
    assert_eq!(environ.uri(), "/");
    assert_eq!(environ.raw_path(), "/");
    assert_eq!(environ.query_string(), "");
    assert_eq!(environ.version(), Version::HTTP_11);
    assert!(environ.headers().is_empty());
    assert_eq!(environ.script_name(), "");
    assert_eq!(environ.path_info(), "/");
    assert_eq!(environ.server_name(), "localhost");
    assert_eq!(environ.server_port(), 80);
    assert_eq!(environ.remote_addr(), None);
    assert_eq!(environ.url_scheme(), UrlScheme::Http);
    assert_eq!(
        environ.concurrency(),
        Concurrency {
            multithread: true,
            multiprocess: false,
            run_once: false
        }
    );
    assert_eq!(environ.content_length(), Some(0));
    assert!(environ.input().is_finished());
    assert_eq!(environ.request_url(), "http://localhost/");
}

#[test]
fn builder_settings_reach_the_accessors() {
    let remote: SocketAddr = "[2001:db8::1]:51000".parse().unwrap();
    let concurrency = Concurrency {
        multithread: false,
        multiprocess: true,
        run_once: true,
    };
    let environ = Environ::builder()
        .method(Method::PATCH)
        .uri(Uri::from_static("/items/1?fields=name&sort=asc"))
        .version(Version::HTTP_2)
        .server("api.example", 8080)
        .remote_addr(remote)
        .url_scheme(UrlScheme::Https)
        .concurrency(concurrency)
        .build()
        .unwrap();

    assert_eq!(environ.method(), Method::PATCH);
    assert_eq!(environ.query_string(), "fields=name&sort=asc");
    assert_eq!(environ.version(), Version::HTTP_2);
    assert_eq!(environ.server_name(), "api.example");
    assert_eq!(environ.server_port(), 8080);
    assert_eq!(environ.remote_addr(), Some(remote));
    assert_eq!(environ.url_scheme(), UrlScheme::Https);
    assert_eq!(environ.concurrency(), concurrency);
}

#[test]
fn repeated_headers_are_kept_in_order_and_byte_exact() {
    let obs_text = HeaderValue::from_bytes(b"caf\xe9").unwrap();
    let environ = Environ::builder()
        .header(
            HeaderName::from_static("x-forwarded-for"),
            header("10.0.0.1"),
        )
        .header(
            HeaderName::from_static("x-forwarded-for"),
            header("10.0.0.2"),
        )
        .header(HeaderName::from_static("x-note"), obs_text.clone())
        .header(CONTENT_TYPE, header("text/plain"))
        .build()
        .unwrap();

    let forwarded: Vec<_> = environ
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .collect();
    assert_eq!(forwarded, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(environ.headers().get("x-note"), Some(&obs_text));
    assert_eq!(environ.headers().get(CONTENT_TYPE).unwrap(), "text/plain");
}

#[test]
fn headers_replaces_and_header_appends() {
    let mut map = HeaderMap::new();
    map.insert(HOST, header("a.example"));
    let mut environ = Environ::builder()
        .header(CONTENT_TYPE, header("text/plain"))
        .headers(map)
        .header(HeaderName::from_static("x-extra"), header("1"))
        .build()
        .unwrap();

    assert_eq!(environ.headers().len(), 2);
    assert!(environ.headers().get(CONTENT_TYPE).is_none());

    environ.headers_mut().remove("x-extra");
    assert_eq!(environ.headers().len(), 1);
}

#[test]
fn extensions_are_typed() {
    #[derive(Clone, Debug, PartialEq)]
    struct PeerCertificate(Vec<u8>);
    #[derive(Clone, Debug, PartialEq)]
    struct RequestId(u64);

    let mut environ = Environ::builder()
        .extension(PeerCertificate(vec![1, 2, 3]))
        .extension(RequestId(1))
        .extension(RequestId(2))
        .build()
        .unwrap();

    assert_eq!(
        environ.extensions().get::<PeerCertificate>(),
        Some(&PeerCertificate(vec![1, 2, 3]))
    );
    assert_eq!(environ.extensions().get::<RequestId>(), Some(&RequestId(2)));
    environ.extensions_mut().insert(RequestId(3));
    assert_eq!(
        environ.extensions_mut().remove::<RequestId>(),
        Some(RequestId(3))
    );
}

#[test]
fn input_can_be_read_replaced_and_taken() {
    let mut environ = Environ::builder()
        .method(Method::POST)
        .header(CONTENT_LENGTH, header("5"))
        .input(Input::new(&b"hello, next request"[..], Some(5)))
        .build()
        .unwrap();
    assert_eq!(environ.content_length(), Some(5));

    let mut start = [0; 2];
    environ.input_mut().read_exact(&mut start).unwrap();
    assert_eq!(&start, b"he");
    assert_eq!(environ.input().bytes_read(), 2);

    let mut previous = environ.replace_input(Input::from_bytes("replaced body"));
    let mut rest = String::new();
    previous.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "llo");
    assert_eq!(environ.content_length(), Some(13));

    let mut input = environ.into_input();
    assert_eq!(input.read_to_bytes(100).unwrap(), "replaced body");
}

#[test]
fn errors_write_to_the_given_sink() {
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);
    impl Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Log::default();
    let mut environ = Environ::builder()
        .errors(Errors::new(log.clone()))
        .build()
        .unwrap();

    writeln!(environ.errors_mut(), "warning: {}", 42).unwrap();

    assert_eq!(*log.0.lock().unwrap(), b"warning: 42\n");
}

#[test]
fn environ_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Environ>();
    assert_send::<EnvironBuilder>();
    assert_send::<EnvironError>();
}

#[test]
fn debug_is_available() {
    let environ = Environ::builder().build().unwrap();
    let debug = format!("{environ:?}");
    assert!(debug.contains("Environ"), "{debug}");
    assert!(format!("{:?}", Environ::builder()).contains("EnvironBuilder"));
}

// ---------------------------------------------------------------------------
// SCRIPT_NAME / PATH_INFO.

#[test]
fn unmounted_application_gets_the_whole_decoded_path() {
    let environ = at("/a%20b/c%2Fd").build().unwrap();
    assert_eq!(environ.script_name(), "");
    assert_eq!(environ.path_info(), "/a b/c/d");
    assert_eq!(environ.raw_path(), "/a%20b/c%2Fd");
}

#[test]
fn script_name_matches_decoded_whole_segments() {
    let environ = mounted("/my%20app/x", "/my app");
    assert_eq!(environ.script_name(), "/my app");
    assert_eq!(environ.path_info(), "/x");
}

#[test]
fn script_name_spanning_several_segments() {
    let environ = mounted("/tools/wiki/Main_Page?action=edit", "/tools/wiki");
    assert_eq!(environ.script_name(), "/tools/wiki");
    assert_eq!(environ.path_info(), "/Main_Page");
    assert_eq!(environ.query_string(), "action=edit");
}

#[test]
fn script_name_equal_to_the_path_leaves_path_info_empty() {
    let environ = mounted("/app", "/app");
    assert_eq!(environ.script_name(), "/app");
    assert_eq!(environ.path_info(), "");

    let environ = mounted("/app/", "/app");
    assert_eq!(environ.path_info(), "/");
}

#[test]
fn percent_escapes_decode_in_either_case() {
    let environ = at("/%c3%a9t%C3%A9/%7e").build().unwrap();
    assert_eq!(environ.path_info().as_bytes(), "/été/~".as_bytes());
}

#[test]
fn encoded_slash_in_the_script_segment_still_matches_its_decoding() {
    // The script name arrives decoded, so "/a/b" is the decoding of the raw
    // segment "a%2Fb": a whole segment.
    let environ = mounted("/a%2Fb/c", "/a/b");
    assert_eq!(environ.script_name(), "/a/b");
    assert_eq!(environ.path_info(), "/c");
}

#[test]
fn empty_segments_are_kept() {
    let environ = mounted("/app//x/", "/app");
    assert_eq!(environ.path_info(), "//x/");
}

#[test]
fn absolute_form_uses_its_path() {
    let environ = at("http://example.com/app/x?q=1")
        .script_name("/app")
        .build()
        .unwrap();
    assert_eq!(environ.raw_path(), "/app/x");
    assert_eq!(environ.script_name(), "/app");
    assert_eq!(environ.path_info(), "/x");
    assert_eq!(environ.query_string(), "q=1");
}

#[test]
fn absolute_form_without_a_path_is_the_root() {
    let environ = at("http://example.com").build().unwrap();
    assert_eq!(environ.path_info(), "/");
}

#[test]
fn asterisk_form_is_served_with_options() {
    let environ = at("*").method(Method::OPTIONS).build().unwrap();
    assert_eq!(environ.raw_path(), "*");
    assert_eq!(environ.script_name(), "");
    assert_eq!(environ.path_info(), "*");
    assert_eq!(environ.request_url(), "http://localhost");
}

// ---------------------------------------------------------------------------
// Every EnvironError variant.

#[test]
fn rejects_invalid_percent_encoding() {
    for target in ["/a%zz", "/a%2", "/a%", "/%g0/x"] {
        let error = at(target).build().unwrap_err();
        assert_eq!(
            error,
            EnvironError::InvalidPercentEncoding {
                path: target.to_owned()
            }
        );
    }
}

#[test]
fn rejects_invalid_percent_encoding_inside_the_script_name_part() {
    let error = at("/a%zz/x").script_name("/a").build().unwrap_err();
    assert!(matches!(error, EnvironError::InvalidPercentEncoding { .. }));
}

#[test]
fn rejects_invalid_script_names() {
    for script_name in ["/", "app", "/app/", "//"] {
        let error = at("/app/x").script_name(script_name).build().unwrap_err();
        assert_eq!(
            error,
            EnvironError::InvalidScriptName {
                script_name: PathBytes::from(bytes::Bytes::from_static(script_name.as_bytes()))
            },
            "{script_name}"
        );
    }
}

#[test]
fn rejects_a_script_name_that_is_not_whole_leading_segments() {
    for (target, script_name) in [
        ("/app%2Fx", "/app"),
        ("/apple", "/app"),
        ("/other/app", "/app"),
        ("/ap", "/app"),
        ("/", "/app"),
        ("/my%20app/x", "/my%20app"),
    ] {
        let error = at(target).script_name(script_name).build().unwrap_err();
        match error {
            EnvironError::ScriptNameMismatch {
                script_name: rejected,
                path,
            } => {
                assert_eq!(rejected, script_name);
                assert_eq!(path, Uri::from_static(target).path());
            }
            other => panic!("{target} / {script_name}: {other:?}"),
        }
    }
}

#[test]
fn rejects_a_script_name_with_the_asterisk_target() {
    let error = at("*")
        .method(Method::OPTIONS)
        .script_name("/app")
        .build()
        .unwrap_err();
    assert!(matches!(error, EnvironError::ScriptNameMismatch { path, .. } if path == "*"));
}

#[test]
fn rejects_the_asterisk_target_without_options() {
    let error = at("*").method(Method::GET).build().unwrap_err();
    assert_eq!(
        error,
        EnvironError::AsteriskNotOptions {
            method: Method::GET
        }
    );
}

#[test]
fn rejects_authority_form_and_connect() {
    let error = at("example.com:443")
        .method(Method::CONNECT)
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        EnvironError::UnsupportedTarget {
            target: "example.com:443".to_owned()
        }
    );

    let error = at("example.com:443").build().unwrap_err();
    assert!(matches!(error, EnvironError::UnsupportedTarget { .. }));

    let error = at("/").method(Method::CONNECT).build().unwrap_err();
    assert!(matches!(error, EnvironError::UnsupportedTarget { target } if target == "/"));
}

#[test]
fn rejects_an_empty_server_name() {
    let error = Environ::builder().server("", 80).build().unwrap_err();
    assert_eq!(error, EnvironError::EmptyServerName);
}

#[test]
fn rejects_transfer_encoding() {
    let error = Environ::builder()
        .method(Method::POST)
        .header(TRANSFER_ENCODING, header("chunked"))
        .input(Input::new(&b""[..], None))
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        EnvironError::TransferEncodingPresent {
            value: header("chunked")
        }
    );
}

#[test]
fn rejects_invalid_content_length() {
    let cases: [&[&'static str]; 7] = [
        &["abc"],
        &["-1"],
        &["+5"],
        &[""],
        &["5,"],
        &["5", "6"],
        &["99999999999999999999999"],
    ];
    for values in cases {
        let mut builder = Environ::builder().method(Method::POST);
        for value in values {
            builder = builder.header(CONTENT_LENGTH, header(value));
        }
        let error = builder.build().unwrap_err();
        assert!(
            matches!(error, EnvironError::InvalidContentLength { .. }),
            "{values:?}: {error:?}"
        );
    }

    let error = Environ::builder()
        .header(CONTENT_LENGTH, header("5, 6"))
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        EnvironError::InvalidContentLength {
            value: header("5, 6")
        }
    );

    let error = Environ::builder()
        .header(CONTENT_LENGTH, HeaderValue::from_bytes(b"\xff").unwrap())
        .build()
        .unwrap_err();
    assert!(matches!(error, EnvironError::InvalidContentLength { .. }));
}

#[test]
fn rejects_content_length_that_disagrees_with_the_framing() {
    let error = Environ::builder()
        .method(Method::POST)
        .header(CONTENT_LENGTH, header("10"))
        .input(Input::new(&b"0123456789"[..], Some(9)))
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        EnvironError::ContentLengthMismatch {
            header: 10,
            framing: Some(9)
        }
    );

    let error = Environ::builder()
        .method(Method::POST)
        .header(CONTENT_LENGTH, header("10"))
        .input(Input::new(&b"0123456789"[..], None))
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        EnvironError::ContentLengthMismatch {
            header: 10,
            framing: None
        }
    );
}

#[test]
fn accepts_repeated_identical_content_lengths() {
    for values in [&["4"][..], &["4", "4"], &["4, 4"], &[" 4 "]] {
        let mut builder = Environ::builder()
            .method(Method::POST)
            .input(Input::from_bytes("body"));
        for value in values {
            builder = builder.header(CONTENT_LENGTH, header(value));
        }
        let environ = builder.build().unwrap();
        assert_eq!(environ.content_length(), Some(4), "{values:?}");
    }
}

#[test]
fn content_length_comes_from_the_framing() {
    // A chunked upload has no Content-Length header and no known length.
    let environ = Environ::builder()
        .method(Method::POST)
        .input(Input::new(&b"chunked"[..], None))
        .build()
        .unwrap();
    assert_eq!(environ.content_length(), None);
}

#[test]
fn error_messages_carry_the_offending_values() {
    let cases = [
        (
            EnvironError::InvalidPercentEncoding {
                path: "/a%zz".to_owned(),
            },
            "\"/a%zz\"",
        ),
        (
            EnvironError::InvalidScriptName {
                script_name: PathBytes::from(bytes::Bytes::from_static(b"/app/")),
            },
            "/app/",
        ),
        (
            EnvironError::ScriptNameMismatch {
                script_name: PathBytes::from(bytes::Bytes::from_static(b"/app")),
                path: "/apple".to_owned(),
            },
            "/apple",
        ),
        (
            EnvironError::AsteriskNotOptions {
                method: Method::DELETE,
            },
            "DELETE",
        ),
        (
            EnvironError::UnsupportedTarget {
                target: "example.com:443".to_owned(),
            },
            "example.com:443",
        ),
        (EnvironError::EmptyServerName, "server name"),
        (
            EnvironError::TransferEncodingPresent {
                value: header("gzip, chunked"),
            },
            "gzip, chunked",
        ),
        (
            EnvironError::InvalidContentLength {
                value: header("ten"),
            },
            "ten",
        ),
        (
            EnvironError::ContentLengthMismatch {
                header: 10,
                framing: Some(9),
            },
            "10 bytes, but the input is framed as 9 bytes",
        ),
        (
            EnvironError::ContentLengthMismatch {
                header: 10,
                framing: None,
            },
            "delimited by end of stream",
        ),
    ];
    for (error, expected) in cases {
        let message = error.to_string();
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

// ---------------------------------------------------------------------------
// shift_path.

#[test]
fn shift_path_moves_one_segment_at_a_time() {
    let mut environ = mounted("/app/users/42/", "/app");

    assert_eq!(environ.shift_path().unwrap(), "/users");
    assert_eq!(environ.script_name(), "/app/users");
    assert_eq!(environ.path_info(), "/42/");

    assert_eq!(environ.shift_path().unwrap(), "/42");
    assert_eq!(environ.script_name(), "/app/users/42");
    assert_eq!(environ.path_info(), "/");

    assert_eq!(environ.shift_path(), None);
    assert_eq!(environ.script_name(), "/app/users/42");
    assert_eq!(environ.path_info(), "/");
}

#[test]
fn shift_path_to_the_end() {
    let mut environ = at("/a").build().unwrap();
    assert_eq!(environ.shift_path().unwrap(), "/a");
    assert_eq!(environ.script_name(), "/a");
    assert_eq!(environ.path_info(), "");
    assert_eq!(environ.shift_path(), None);
}

#[test]
fn shift_path_keeps_encoded_slashes_inside_the_segment() {
    let mut environ = at("/files/a%2Fb%20c/d").build().unwrap();
    assert_eq!(environ.shift_path().unwrap(), "/files");
    assert_eq!(environ.shift_path().unwrap(), "/a/b c");
    assert_eq!(environ.path_info(), "/d");
    assert_eq!(environ.request_url(), "http://localhost/files/a%2Fb%20c/d");
}

#[test]
fn shift_path_refuses_an_empty_first_segment() {
    let mut environ = at("//x").build().unwrap();
    assert_eq!(environ.shift_path(), None);
    assert_eq!(environ.script_name(), "");
    assert_eq!(environ.path_info(), "//x");
}

#[test]
fn shift_path_does_not_apply_to_the_asterisk() {
    let mut environ = at("*").method(Method::OPTIONS).build().unwrap();
    assert_eq!(environ.shift_path(), None);
    assert_eq!(environ.path_info(), "*");
}

// ---------------------------------------------------------------------------
// request_url.

#[test]
fn request_url_uses_the_host_header() {
    let environ = at("/app/page?x=1&y=%20")
        .header(HOST, header("www.example.org:8080"))
        .server("10.1.2.3", 80)
        .build()
        .unwrap();
    assert_eq!(
        environ.request_url(),
        "http://www.example.org:8080/app/page?x=1&y=%20"
    );
}

#[test]
fn request_url_falls_back_to_server_name_and_port() {
    let environ = at("/").server("example.net", 8000).build().unwrap();
    assert_eq!(environ.request_url(), "http://example.net:8000/");

    let environ = at("/")
        .server("example.net", 443)
        .url_scheme(UrlScheme::Https)
        .build()
        .unwrap();
    assert_eq!(environ.request_url(), "https://example.net/");

    let environ = at("/")
        .server("example.net", 80)
        .url_scheme(UrlScheme::Https)
        .build()
        .unwrap();
    assert_eq!(environ.request_url(), "https://example.net:80/");
}

#[test]
fn request_url_brackets_an_ipv6_server_name() {
    let environ = at("/").server("::1", 8080).build().unwrap();
    assert_eq!(environ.request_url(), "http://[::1]:8080/");
}

#[test]
fn request_url_ignores_invalid_or_repeated_host_headers() {
    let environ = at("/")
        .header(HOST, header("bad host/name"))
        .server("fallback.example", 80)
        .build()
        .unwrap();
    assert_eq!(environ.request_url(), "http://fallback.example/");

    let environ = at("/")
        .header(HOST, header("a.example"))
        .header(HOST, header("b.example"))
        .server("fallback.example", 80)
        .build()
        .unwrap();
    assert_eq!(environ.request_url(), "http://fallback.example/");

    let environ = at("/")
        .header(HOST, header("user@a.example"))
        .server("fallback.example", 80)
        .build()
        .unwrap();
    assert_eq!(environ.request_url(), "http://fallback.example/");
}

#[test]
fn request_url_prefers_the_absolute_form_authority() {
    let environ = at("http://user@target.example:81/x")
        .header(HOST, header("ignored.example"))
        .build()
        .unwrap();
    assert_eq!(environ.request_url(), "http://target.example:81/x");
}

#[test]
fn request_url_encodes_the_path_canonically() {
    let environ = at("/my%20app/caf%c3%a9/a%2fb/%7Euser/!$&'()*+,;=:@-._~?q=%zz")
        .script_name("/my app")
        .build()
        .unwrap();
    assert_eq!(
        environ.request_url(),
        "http://localhost/my%20app/caf%C3%A9/a%2Fb/~user/!$&'()*+,;=:@-._~?q=%zz"
    );
}

#[test]
fn request_url_drops_an_empty_query() {
    let environ = at("/x?").build().unwrap();
    assert_eq!(environ.request_url(), "http://localhost/x");
}

// ---------------------------------------------------------------------------
// PathBytes and UrlScheme.

#[test]
fn path_bytes_offers_bytes_text_and_comparisons() {
    let environ = at("/caf%C3%A9/%FF").build().unwrap();
    let path = environ.path_info();

    assert_eq!(path.as_bytes(), b"/caf\xc3\xa9/\xff");
    assert_eq!(path.len(), 8);
    assert!(!path.is_empty());
    assert!(path.to_str().is_err());
    assert_eq!(path.to_string_lossy(), "/café/\u{FFFD}");
    assert_eq!(path.to_string(), "/café/\u{FFFD}");
    assert_eq!(format!("{path:?}"), "PathBytes(b\"/caf\\xc3\\xa9/\\xff\")");
    let expected: &[u8] = b"/caf\xc3\xa9/\xff";
    assert!(*path == *expected);
    assert!(*path == expected);

    let script = environ.script_name();
    assert!(script.is_empty());
    assert_eq!(script.to_str().unwrap(), "");
    let root = at("/x").build().unwrap();
    let expected: &str = "/x";
    assert!(*root.path_info() == expected);
    assert!(*root.path_info() == *expected);
    assert!(*root.path_info() != "/y");
    assert_eq!(PathBytes::default(), *script);
    assert_eq!(bytes::Bytes::from(path.clone()), &b"/caf\xc3\xa9/\xff"[..]);
}

#[test]
fn url_scheme_names_and_ports() {
    assert_eq!(UrlScheme::Http.as_str(), "http");
    assert_eq!(UrlScheme::Https.to_string(), "https");
    assert_eq!(UrlScheme::Http.default_port(), 80);
    assert_eq!(UrlScheme::Https.default_port(), 443);
    assert_eq!(UrlScheme::default(), UrlScheme::Http);
}

// ---------------------------------------------------------------------------
// The server's path: from_parts, into_parts, shared server descriptions.

fn head(request: http::Request<()>) -> http::request::Parts {
    request.into_parts().0
}

fn root_server() -> Arc<ServerInfo> {
    Arc::new(ServerInfo::new("example.org", 8080).unwrap())
}

#[test]
fn from_parts_moves_the_head_in() {
    let server = Arc::new(
        ServerInfo::new("example.org", 8080)
            .unwrap()
            .with_script_name("/app")
            .unwrap()
            .with_concurrency(Concurrency {
                multithread: false,
                multiprocess: true,
                run_once: false,
            }),
    );
    let connection = Arc::new(ConnectionInfo::new());
    let mut request = http::Request::builder()
        .method(Method::PUT)
        .uri("/app/files/a%2Fb?x=1")
        .version(Version::HTTP_10)
        .header(HOST, "example.org")
        .header(CONTENT_LENGTH, "3")
        .body(())
        .unwrap();
    request.extensions_mut().insert(7_u32);

    let environ = Environ::from_parts(
        head(request),
        Input::from_bytes("abc"),
        &server,
        &connection,
    )
    .unwrap();

    assert_eq!(environ.method(), Method::PUT);
    assert_eq!(environ.version(), Version::HTTP_10);
    assert_eq!(environ.raw_path(), "/app/files/a%2Fb");
    assert_eq!(environ.query_string(), "x=1");
    assert_eq!(environ.script_name(), "/app");
    assert_eq!(environ.path_info(), "/files/a/b");
    assert_eq!(environ.headers().len(), 2);
    assert_eq!(environ.extensions().get::<u32>(), Some(&7));
    assert_eq!(environ.server_name(), "example.org");
    assert_eq!(environ.server_port(), 8080);
    assert!(!environ.concurrency().multithread);
    assert_eq!(environ.content_length(), Some(3));
    assert!(Arc::ptr_eq(environ.server_info(), &server));
}

#[test]
fn from_parts_checks_what_build_checks() {
    let server = root_server();
    let connection = Arc::new(ConnectionInfo::new());
    let build = |request: http::Request<()>, input: Input| {
        Environ::from_parts(head(request), input, &server, &connection).unwrap_err()
    };

    let error = build(
        http::Request::get("/a%zz").body(()).unwrap(),
        Input::empty(),
    );
    assert_eq!(
        error,
        EnvironError::InvalidPercentEncoding {
            path: "/a%zz".to_owned()
        }
    );
    let error = build(
        http::Request::get("/")
            .header(TRANSFER_ENCODING, "chunked")
            .body(())
            .unwrap(),
        Input::new(&b""[..], None),
    );
    assert!(matches!(
        error,
        EnvironError::TransferEncodingPresent { .. }
    ));
    let error = build(
        http::Request::get("/")
            .header(CONTENT_LENGTH, "4")
            .body(())
            .unwrap(),
        Input::from_bytes("abc"),
    );
    assert_eq!(
        error,
        EnvironError::ContentLengthMismatch {
            header: 4,
            framing: Some(3)
        }
    );
    let error = build(http::Request::get("*").body(()).unwrap(), Input::empty());
    assert_eq!(
        error,
        EnvironError::AsteriskNotOptions {
            method: Method::GET
        }
    );
    let error = build(
        http::Request::connect("example.org:443").body(()).unwrap(),
        Input::empty(),
    );
    assert!(matches!(error, EnvironError::UnsupportedTarget { .. }));

    let mounted = Arc::new(
        ServerInfo::new("example.org", 80)
            .unwrap()
            .with_script_name("/app")
            .unwrap(),
    );
    let error = Environ::from_parts(
        head(http::Request::get("/apple").body(()).unwrap()),
        Input::empty(),
        &mounted,
        &connection,
    )
    .unwrap_err();
    assert!(matches!(error, EnvironError::ScriptNameMismatch { .. }));
}

#[test]
fn server_info_is_checked_once_when_built() {
    assert_eq!(
        ServerInfo::new("", 80).unwrap_err(),
        EnvironError::EmptyServerName
    );
    for script_name in ["/", "app", "/app/"] {
        assert!(
            matches!(
                ServerInfo::new("example.org", 80)
                    .unwrap()
                    .with_script_name(script_name),
                Err(EnvironError::InvalidScriptName { .. })
            ),
            "{script_name}"
        );
    }
    let shared = root_server();
    let environ = Environ::builder()
        .server_info(Arc::clone(&shared))
        .build()
        .unwrap();
    assert!(Arc::ptr_eq(environ.server_info(), &shared));
    assert_eq!(environ.request_url(), "http://example.org:8080/");
}

#[test]
fn into_parts_gives_back_the_head_and_the_body() {
    let environ = Environ::builder()
        .method(Method::POST)
        .uri(Uri::from_static("http://example.org/a%20b?q"))
        .version(Version::HTTP_2)
        .header(CONTENT_TYPE, header("text/plain"))
        .extension(5_u8)
        .input(Input::from_bytes("body"))
        .build()
        .unwrap();

    let (parts, mut input) = environ.into_parts();
    assert_eq!(parts.method, Method::POST);
    assert_eq!(parts.uri, "http://example.org/a%20b?q");
    assert_eq!(parts.version, Version::HTTP_2);
    assert_eq!(parts.headers[CONTENT_TYPE], "text/plain");
    assert_eq!(parts.extensions.get::<u8>(), Some(&5));
    let mut body = String::new();
    input.read_to_string(&mut body).unwrap();
    assert_eq!(body, "body");

    // And back again: the same request.
    let again = Environ::from_parts(
        parts,
        Input::empty(),
        &root_server(),
        &Arc::new(ConnectionInfo::new()),
    )
    .unwrap();
    assert_eq!(again.path_info(), "/a b");
    assert_eq!(again.uri(), "http://example.org/a%20b?q");
}

#[test]
fn shared_and_decoded_paths_compare_by_their_bytes() {
    use std::collections::HashSet;

    let plain = at("/same").build().unwrap();
    let escaped = at("/s%61me").build().unwrap();
    assert_eq!(plain.path_info(), escaped.path_info());
    assert_eq!(
        plain.path_info().cmp(escaped.path_info()),
        std::cmp::Ordering::Equal
    );
    let set: HashSet<PathBytes> = [plain.path_info().clone(), escaped.path_info().clone()].into();
    assert_eq!(set.len(), 1);
    assert_eq!(bytes::Bytes::from(plain.path_info().clone()), "/same");
    assert_eq!(format!("{:?}", plain.path_info()), "PathBytes(b\"/same\")");
}

#[test]
fn shift_path_over_escaped_and_plain_segments() {
    let mut environ = at("/a/b%20c/d/e").script_name("/a").build().unwrap();
    assert_eq!(environ.shift_path().unwrap(), "/b c");
    assert_eq!(environ.shift_path().unwrap(), "/d");
    assert_eq!(environ.script_name(), "/a/b c/d");
    assert_eq!(environ.path_info(), "/e");
    assert_eq!(environ.shift_path().unwrap(), "/e");
    assert_eq!(environ.path_info(), "");
    assert_eq!(environ.shift_path(), None);
}

#[test]
fn replace_errors_swaps_the_stream() {
    let log = Arc::new(Mutex::new(Vec::new()));
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut environ = Environ::builder().build().unwrap();
    let previous = environ.replace_errors(Errors::new(Shared(Arc::clone(&log))));
    assert_eq!(format!("{previous:?}"), "Errors { sink: Stderr }");
    environ.errors_mut().write_all(b"logged").unwrap();
    assert_eq!(*log.lock().unwrap(), b"logged");
}

// ---------------------------------------------------------------------------
// D3: a body framed by the connection is read to its end.

/// A source that hands out its body in small pieces, like HTTP/2 DATA
/// frames, without saying in advance how long it is.
struct Frames(std::collections::VecDeque<&'static [u8]>);

impl Read for Frames {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(frame) = self.0.pop_front() else {
            return Ok(0);
        };
        let taken = frame.len().min(buf.len());
        buf[..taken].copy_from_slice(&frame[..taken]);
        if taken < frame.len() {
            self.0.push_front(&frame[taken..]);
        }
        Ok(taken)
    }
}

#[test]
fn d3_http2_body_without_content_length_is_read_to_its_end() {
    let frames = Frames(
        [
            &b"first frame, "[..],
            &b"second frame, "[..],
            &b"last frame"[..],
        ]
        .into_iter()
        .collect(),
    );
    let request = http::Request::post("/upload")
        .version(Version::HTTP_2)
        .header(HOST, "example.org")
        .body(())
        .unwrap();

    let mut environ = Environ::from_parts(
        head(request),
        Input::new(frames, None),
        &root_server(),
        &Arc::new(ConnectionInfo::new()),
    )
    .unwrap();

    assert_eq!(environ.version(), Version::HTTP_2);
    assert_eq!(environ.content_length(), None);
    let mut body = String::new();
    environ.input_mut().read_to_string(&mut body).unwrap();
    assert_eq!(body, "first frame, second frame, last frame");
    assert!(environ.input().is_finished());
}

#[test]
fn d3_http2_body_with_content_length_keeps_its_length() {
    let request = http::Request::post("/upload")
        .version(Version::HTTP_2)
        .header(CONTENT_LENGTH, "5")
        .body(())
        .unwrap();
    let environ = Environ::from_parts(
        head(request),
        Input::new(&b"hello"[..], Some(5)),
        &root_server(),
        &Arc::new(ConnectionInfo::new()),
    )
    .unwrap();
    assert_eq!(environ.content_length(), Some(5));
}

// ---------------------------------------------------------------------------
// Extended CONNECT (RFC 8441) reaches applications; a tunnel never does.

#[test]
fn extended_connect_over_http2_is_admitted() {
    let mut request = http::Request::connect("/chat?room=1")
        .version(Version::HTTP_2)
        .header(HOST, "example.org")
        .body(())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectProtocol::new("websocket"));

    let environ = Environ::from_parts(
        head(request),
        Input::new(&b""[..], None),
        &root_server(),
        &Arc::new(ConnectionInfo::new()),
    )
    .unwrap();

    assert_eq!(environ.method(), Method::CONNECT);
    assert_eq!(environ.path_info(), "/chat");
    assert_eq!(environ.query_string(), "room=1");
    assert_eq!(
        environ.extensions().get::<ConnectProtocol>(),
        Some(&ConnectProtocol::from_static("websocket"))
    );
}

#[test]
fn connect_without_protocol_or_over_http1_is_refused() {
    let refused = |builder: EnvironBuilder| {
        matches!(
            builder.method(Method::CONNECT).build(),
            Err(EnvironError::UnsupportedTarget { .. })
        )
    };
    // No `:protocol`: a tunnel request.
    assert!(refused(at("/chat").version(Version::HTTP_2)));
    // HTTP/1.1 has no extended CONNECT.
    assert!(refused(
        at("/chat").extension(ConnectProtocol::from_static("websocket"))
    ));
    // Authority-form stays a tunnel whatever it carries.
    assert!(refused(
        Environ::builder()
            .uri(Uri::from_static("example.org:443"))
            .version(Version::HTTP_2)
            .extension(ConnectProtocol::from_static("websocket"))
    ));
}

// ---------------------------------------------------------------------------
// Server-wide extensions (RGI-EXT-1): set once in the ServerInfo, overridden
// per request by a value of the same type in the environ's own extensions.

#[derive(Clone, Debug, PartialEq)]
struct Deployment(&'static str);

#[test]
fn server_wide_extensions_reach_every_request_of_the_server() {
    let server = Arc::new(
        ServerInfo::new("example.org", 8080)
            .unwrap()
            .with_extension(Deployment("eu-1"))
            .with_extension(Deployment("eu-2")),
    );
    let connection = Arc::new(ConnectionInfo::new());
    for target in ["/a", "/b"] {
        let environ = Environ::from_parts(
            head(http::Request::get(target).body(()).unwrap()),
            Input::empty(),
            &server,
            &connection,
        )
        .unwrap();
        assert_eq!(environ.extension::<Deployment>(), Some(&Deployment("eu-2")));
        assert_eq!(
            environ.server_extension::<Deployment>(),
            Some(&Deployment("eu-2"))
        );
        assert!(environ.extensions().get::<Deployment>().is_none());
    }
    assert_eq!(server.extension::<Deployment>(), Some(&Deployment("eu-2")));
    assert_eq!(server.extensions().len(), 1);
}

#[test]
fn a_request_value_overrides_the_server_wide_one_for_that_request_only() {
    let server = Arc::new(
        ServerInfo::new("example.org", 8080)
            .unwrap()
            .with_extension(Deployment("eu-1")),
    );
    let mut overridden = Environ::builder()
        .server_info(Arc::clone(&server))
        .extension(Deployment("canary"))
        .build()
        .unwrap();
    let plain = Environ::builder()
        .server_info(Arc::clone(&server))
        .build()
        .unwrap();

    assert_eq!(
        overridden.extension::<Deployment>(),
        Some(&Deployment("canary"))
    );
    assert_eq!(
        overridden.server_extension::<Deployment>(),
        Some(&Deployment("eu-1"))
    );
    assert_eq!(plain.extension::<Deployment>(), Some(&Deployment("eu-1")));

    overridden.extensions_mut().remove::<Deployment>();
    assert_eq!(
        overridden.extension::<Deployment>(),
        Some(&Deployment("eu-1"))
    );
}

#[test]
fn builder_server_settings_keep_the_server_wide_extensions() {
    let server = Arc::new(
        ServerInfo::new("example.org", 8080)
            .unwrap()
            .with_extension(Deployment("eu-1")),
    );
    let environ = Environ::builder()
        .server_info(Arc::clone(&server))
        .server("other.example", 81)
        .build()
        .unwrap();

    assert_eq!(environ.server_name(), "other.example");
    assert_eq!(environ.extension::<Deployment>(), Some(&Deployment("eu-1")));
    // The builder edited its own copy; the shared description is unchanged.
    assert_eq!(server.name(), "example.org");
    assert!(!Arc::ptr_eq(environ.server_info(), &server));
}

#[test]
fn an_environ_without_server_wide_extensions_finds_none() {
    let environ = Environ::builder().build().unwrap();
    assert!(environ.extension::<Deployment>().is_none());
    assert!(environ.server_extension::<Deployment>().is_none());
    assert!(environ.server_info().extensions().is_empty());
}
