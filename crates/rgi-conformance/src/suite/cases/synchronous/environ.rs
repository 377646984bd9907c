//! The request as the application sees it: the environ built from the
//! request line and header fields (`RGI-ENV`, `RGI-PATH`, `RGI-HDR`), the
//! error stream, and hints.

use std::io::Write;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http::Version;
use rgi::{Environ, Hints, InputUse, UrlScheme};

use super::super::kit::{
    Counter, Esc, Event, Events, Gate, OrFail, QUIET, Served, WAIT, echo, ensure, exchange,
    expect_not_called, expect_status, expect_still_serving, head_with_length, raw_exchange,
    read_body, recv, seen_for,
};
use crate::suite::wire::Request;
use crate::suite::{Failure, ServerUnderTest};

sync_case!(
    rgi_env_3_method_and_version_as_received
    ["RGI-ENV-3"]
    "the method (case-sensitive, extension methods included) and the request's HTTP version reach the application as received"
    => method_and_version
);

fn method_and_version(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-ENV-3";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    for (request, method, version) in [
        (Request::new("BREW", "/pot"), "BREW", Version::HTTP_11),
        (Request::new("get", "/lower"), "get", Version::HTTP_11),
        (Request::get("/old").http10(), "GET", Version::HTTP_10),
    ] {
        let (_, snapshot) = seen_for(&served, &seen, &request, method, CLAUSE)?;
        ensure(snapshot.method == method, CLAUSE, || {
            format!(
                "sent method {method:?}, the application saw {:?}",
                snapshot.method
            )
        })?;
        ensure(snapshot.version == version, CLAUSE, || {
            format!(
                "sent a {version:?} request, the application saw version {:?}",
                snapshot.version
            )
        })?;
    }
    served.stop()
}

sync_case!(
    rgi_env_4_target_and_query_undecoded
    ["RGI-ENV-4"]
    "uri(), raw_path() and query_string() are the request-target and its parts as received, undecoded"
    => target_and_query
);

fn target_and_query(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-ENV-4";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let target = "/a%20b/c%2Fd?x=1+2&y=%41&&z=";
    let (_, snapshot) = seen_for(&served, &seen, &Request::get(target), "GET", CLAUSE)?;
    ensure(snapshot.uri == target, CLAUSE, || {
        format!("sent target {target:?}, uri() is {:?}", snapshot.uri)
    })?;
    ensure(snapshot.raw_path == "/a%20b/c%2Fd", CLAUSE, || {
        format!(
            "raw_path() is {:?}, expected \"/a%20b/c%2Fd\"",
            snapshot.raw_path
        )
    })?;
    ensure(snapshot.query == "x=1+2&y=%41&&z=", CLAUSE, || {
        format!(
            "query_string() is {:?}, expected \"x=1+2&y=%41&&z=\"",
            snapshot.query
        )
    })?;
    served.stop()
}

sync_case!(
    rgi_env_5_server_name_and_port
    ["RGI-ENV-5", "RGI-ENV-2"]
    "server_name() is not empty and server_port() is the port the request was addressed to"
    => server_name_and_port
);

fn server_name_and_port(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-ENV-5";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let port = served.addr().port();
    let authority = format!("127.0.0.1:{port}");
    let request = Request::get("/where").host(Some(&authority));
    let (_, snapshot) = seen_for(&served, &seen, &request, "GET", CLAUSE)?;
    ensure(!snapshot.server_name.is_empty(), CLAUSE, || {
        "server_name() is empty".to_owned()
    })?;
    ensure(snapshot.server_port == port, CLAUSE, || {
        format!(
            "the request went to port {port} (host {authority}), server_port() is {}",
            snapshot.server_port
        )
    })?;
    served.stop()
}

sync_case!(
    rgi_env_6_remote_address_is_the_peer
    ["RGI-ENV-6", "RGI-ENV-2"]
    "remote_addr() is the client's socket address over TCP"
    => remote_address
);

fn remote_address(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-ENV-6";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let (conn, snapshot) = seen_for(&served, &seen, &Request::get("/who"), "GET", CLAUSE)?;
    let peer = conn
        .local_addr()
        .or_fail(CLAUSE, "reading the client's address")?;
    ensure(snapshot.remote_addr == Some(peer), CLAUSE, || {
        format!(
            "the client connected from {peer}, remote_addr() is {:?}",
            snapshot.remote_addr
        )
    })?;
    served.stop()
}

sync_case!(
    rgi_env_7_url_scheme_is_http_without_tls
    ["RGI-ENV-7"]
    "url_scheme() is Http for a request that did not arrive over TLS"
    => url_scheme
);

fn url_scheme(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-ENV-7";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let (_, snapshot) = seen_for(&served, &seen, &Request::get("/scheme"), "GET", CLAUSE)?;
    ensure(snapshot.url_scheme == UrlScheme::Http, CLAUSE, || {
        format!(
            "the request came over plain TCP, url_scheme() is {:?}",
            snapshot.url_scheme
        )
    })?;
    served.stop()
}

sync_case!(
    rgi_env_8_concurrency_facts
    ["RGI-ENV-8"]
    "a server seen calling the application for two requests at once on different threads reports multithread"
    => concurrency_facts
);

fn concurrency_facts(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-ENV-8";
    let in_call = Counter::default();
    let second_arrived = Gate::new();
    let (events_tx, mut events) = Events::channel();
    let (tx, reports) = mpsc::channel();
    let (app_in_call, app_gate) = (in_call.clone(), second_arrived.clone());
    let app = rgi::from_fn(move |environ: Environ, start| {
        let overlapping = app_in_call.bump() > 0;
        if environ.raw_path() == "/first" {
            let _ = events_tx.send(Event::Reached("first"));
            // Waits, briefly, for the second request to arrive meanwhile.
            app_gate.wait(Duration::from_millis(1500));
        } else {
            app_gate.open();
        }
        let _ = tx.send((
            environ.raw_path().to_owned(),
            thread::current().id(),
            environ.concurrency(),
            overlapping,
        ));
        app_in_call.drop_one();
        start.start(head_with_length(200, 2))?;
        Ok(Bytes::from_static(b"ok"))
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut first = served.connect()?;
    first
        .send(&Request::get("/first").to_bytes())
        .or_fail(CLAUSE, "sending the first request")?;
    ensure(
        events.wait_for(&Event::Reached("first"), WAIT),
        CLAUSE,
        || "the first request never reached the application".to_owned(),
    )?;
    let mut second = served.connect()?;
    exchange(&mut second, &Request::get("/second"), "GET", CLAUSE)?;
    first
        .read_response("GET")
        .or_fail(CLAUSE, "reading the first response")?;
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(recv(&reports, WAIT, CLAUSE, "a request was not called")?);
    }
    let concurrent =
        seen.iter().any(|(_, _, _, overlapping)| *overlapping) && seen[0].1 != seen[1].1;
    if concurrent {
        for (path, _, concurrency, _) in &seen {
            ensure(concurrency.multithread, CLAUSE, || {
                format!(
                    "the server ran two calls at once on two threads, but {path} reports {concurrency:?}"
                )
            })?;
        }
    }
    served.stop()
}

sync_case!(
    rgi_env_10_content_length_from_framing
    ["RGI-ENV-10", "RGI-INPUT-1"]
    "content_length() is Some(0) without a body, Some(n) for Content-Length n, None for a chunked body, and equals the input's"
    => content_length_from_framing
);

fn content_length_from_framing(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-ENV-10";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, true), CLAUSE)?;
    for (request, expected, what) in [
        (Request::get("/none"), Some(0), "a request without a body"),
        (
            Request::new("POST", "/length").body("hello"),
            Some(5),
            "a body with Content-Length 5",
        ),
        (
            Request::new("POST", "/chunked").chunked(&["hel", "lo"]),
            None,
            "a chunked body",
        ),
    ] {
        let (_, snapshot) = seen_for(&served, &seen, &request, "POST", CLAUSE)?;
        ensure(snapshot.content_length == expected, CLAUSE, || {
            format!(
                "for {what}, content_length() is {:?}, expected {expected:?}",
                snapshot.content_length
            )
        })?;
        ensure(
            snapshot.input_length == snapshot.content_length,
            CLAUSE,
            || {
                format!(
                    "for {what}, content_length() is {:?} but input().content_length() is {:?}",
                    snapshot.content_length, snapshot.input_length
                )
            },
        )?;
    }
    served.stop()
}

sync_case!(
    rgi_env_1_malformed_request_rejected
    ["RGI-ENV-1", "RGI-FAIL-2"]
    "a malformed request gets a 4xx without calling the application, and the server goes on serving"
    => malformed_request
);

fn malformed_request(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-ENV-1";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    for bytes in [
        &b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nno-colon-here\r\n\r\n"[..],
        &b"GET /a\x01b HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nhost : 127.0.0.1\r\n\r\n"[..],
    ] {
        let response = raw_exchange(&served, bytes, "GET", CLAUSE)?;
        ensure((400..500).contains(&response.head.status), CLAUSE, || {
            format!(
                "the malformed request {} got status {}, expected a 4xx",
                Esc(bytes),
                response.head.status
            )
        })?;
        expect_not_called(
            &seen,
            CLAUSE,
            &format!("for the malformed request {}", Esc(bytes)),
        )?;
    }
    expect_still_serving(&served, Some(&seen), CLAUSE)?;
    served.stop()
}

sync_case!(
    rgi_path_1_root_mount_gets_the_whole_path
    ["RGI-PATH-1", "RGI-PATH-2"]
    "an application mounted at the root sees an empty script_name() and the whole decoded path as path_info()"
    => root_mount
);

fn root_mount(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PATH-1";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    for target in ["/", "/a/b/", "/app/x?q"] {
        let (_, snapshot) = seen_for(&served, &seen, &Request::get(target), "GET", CLAUSE)?;
        let path = target.split('?').next().unwrap_or_default();
        ensure(snapshot.script_name.is_empty(), CLAUSE, || {
            format!(
                "for {target:?}, script_name() is {}, expected empty (mounted at the root)",
                Esc(&snapshot.script_name)
            )
        })?;
        ensure(snapshot.path_info == path.as_bytes(), "RGI-PATH-2", || {
            format!(
                "for {target:?}, path_info() is {}, expected {path:?}",
                Esc(&snapshot.path_info)
            )
        })?;
    }
    served.stop()
}

sync_case!(
    rgi_path_3_decoded_once_nothing_else
    ["RGI-PATH-3", "RGI-ENV-4"]
    "path_info() decodes every %HH exactly once and keeps +, dot-segments and repeated slashes"
    => decoded_once
);

fn decoded_once(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PATH-3";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let target = "/x%252c/a+b/./c//d/../%7e%2c";
    let expected = b"/x%2c/a+b/./c//d/../~,";
    let (_, snapshot) = seen_for(&served, &seen, &Request::get(target), "GET", CLAUSE)?;
    ensure(snapshot.path_info == expected, CLAUSE, || {
        format!(
            "for {target:?}, path_info() is {}, expected {}",
            Esc(&snapshot.path_info),
            Esc(expected)
        )
    })?;
    ensure(snapshot.raw_path == target, "RGI-ENV-4", || {
        format!("raw_path() is {:?}, expected {target:?}", snapshot.raw_path)
    })?;
    served.stop()
}

sync_case!(
    rgi_path_3_bad_percent_encoding_is_400
    ["RGI-PATH-3", "RGI-ENV-1"]
    "a path with a % not followed by two hex digits gets 400 without calling the application"
    => bad_percent
);

fn bad_percent(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PATH-3";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    for target in ["/bad%zz", "/bad%4", "/bad%"] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(target), "GET", CLAUSE)?;
        expect_status(&response, 400, CLAUSE, &format!("the path {target:?}"))?;
        expect_not_called(&seen, CLAUSE, &format!("for the path {target:?}"))?;
    }
    served.stop()
}

sync_case!(
    rgi_path_4_encoded_slash_does_not_split
    ["RGI-PATH-4"]
    "%2F decodes to a / byte in path_info() while raw_path() keeps %2F"
    => encoded_slash
);

fn encoded_slash(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PATH-4";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let target = "/files/a%2Fb/c";
    let (_, snapshot) = seen_for(&served, &seen, &Request::get(target), "GET", CLAUSE)?;
    ensure(snapshot.path_info == b"/files/a/b/c", CLAUSE, || {
        format!(
            "for {target:?}, path_info() is {}, expected \"/files/a/b/c\"",
            Esc(&snapshot.path_info)
        )
    })?;
    ensure(snapshot.raw_path == target, CLAUSE, || {
        format!("raw_path() is {:?}, expected {target:?}", snapshot.raw_path)
    })?;
    ensure(snapshot.script_name.is_empty(), CLAUSE, || {
        format!(
            "script_name() is {}, expected empty",
            Esc(&snapshot.script_name)
        )
    })?;
    served.stop()
}

sync_case!(
    rgi_path_5_decoded_paths_are_bytes
    ["RGI-PATH-5"]
    "a path that decodes to invalid UTF-8 is served, and path_info() holds the bytes exactly"
    => path_bytes
);

fn path_bytes(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PATH-5";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let target = "/caf%C3%A9/%FF%FE%00";
    let expected = b"/caf\xC3\xA9/\xFF\xFE\x00";
    let (_, snapshot) = seen_for(&served, &seen, &Request::get(target), "GET", CLAUSE)?;
    ensure(snapshot.path_info == expected, CLAUSE, || {
        format!(
            "for {target:?}, path_info() is {}, expected {}",
            Esc(&snapshot.path_info),
            Esc(expected)
        )
    })?;
    served.stop()
}

sync_case!(
    rgi_path_8_options_asterisk_form
    ["RGI-PATH-8"]
    "OPTIONS * is answered by the server or reaches the application with raw_path() and path_info() `*`; another method with `*` gets 400"
    => options_asterisk
);

fn options_asterisk(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PATH-8";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let mut conn = served.connect()?;
    exchange(&mut conn, &Request::new("OPTIONS", "*"), "OPTIONS", CLAUSE)?;
    if let Ok(snapshot) = seen.recv_timeout(QUIET) {
        ensure(
            snapshot.method == "OPTIONS"
                && snapshot.raw_path == "*"
                && snapshot.path_info == b"*"
                && snapshot.script_name.is_empty(),
            CLAUSE,
            || {
                format!(
                    "OPTIONS * reached the application as method {:?}, raw_path() {:?}, path_info() {}, script_name() {}",
                    snapshot.method,
                    snapshot.raw_path,
                    Esc(&snapshot.path_info),
                    Esc(&snapshot.script_name)
                )
            },
        )?;
    }
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("*"), "GET", CLAUSE)?;
    expect_status(&response, 400, CLAUSE, "GET *")?;
    expect_not_called(&seen, CLAUSE, "for GET *")?;
    served.stop()
}

sync_case!(
    rgi_path_9_absolute_form_target
    ["RGI-PATH-9"]
    "an absolute-form target keeps uri(), uses its path and query, and its authority replaces the Host field"
    => absolute_form
);

fn absolute_form(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PATH-9";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let target = "http://example.test:8080/abs/p?q=1";
    // The same authority as the target's (RGI-PROTO-2), spelled otherwise.
    let request = Request::get(target).host(Some("EXAMPLE.test:8080"));
    let (_, snapshot) = seen_for(&served, &seen, &request, "GET", CLAUSE)?;
    ensure(snapshot.uri == target, CLAUSE, || {
        format!("uri() is {:?}, expected {target:?}", snapshot.uri)
    })?;
    ensure(
        snapshot.raw_path == "/abs/p" && snapshot.path_info == b"/abs/p" && snapshot.query == "q=1",
        CLAUSE,
        || {
            format!(
                "raw_path() {:?}, path_info() {}, query_string() {:?}; expected \"/abs/p\", \"/abs/p\", \"q=1\"",
                snapshot.raw_path,
                Esc(&snapshot.path_info),
                snapshot.query
            )
        },
    )?;
    let hosts = snapshot.values("host");
    ensure(hosts == [b"example.test:8080"], CLAUSE, || {
        format!(
            "the host entries are {:?}, expected only \"example.test:8080\" from the target",
            hosts
                .iter()
                .map(|value| Esc(value).to_string())
                .collect::<Vec<_>>()
        )
    })?;
    let (_, snapshot) = seen_for(
        &served,
        &seen,
        &Request::get("http://example.test").host(Some("example.test")),
        "GET",
        CLAUSE,
    )?;
    ensure(
        snapshot.raw_path == "/" && snapshot.path_info == b"/",
        CLAUSE,
        || {
            format!(
                "for an absolute-form target with an empty path, raw_path() is {:?} and path_info() {}, expected \"/\"",
                snapshot.raw_path,
                Esc(&snapshot.path_info)
            )
        },
    )?;
    served.stop()
}

sync_case!(
    rgi_path_10_connect_not_passed_on
    ["RGI-PATH-10"]
    "CONNECT never reaches the application; the server answers 405 or 501 or tunnels outside RGI"
    => connect_not_passed
);

fn connect_not_passed(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PATH-10";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(
        &Request::new("CONNECT", "example.test:443")
            .host(Some("example.test:443"))
            .to_bytes(),
    )
    .or_fail(CLAUSE, "sending CONNECT")?;
    conn.set_timeout(QUIET * 3);
    // A tunnel handled outside RGI may stay silent; only an answer that
    // arrives is judged.
    if let Ok(head) = conn.read_head() {
        ensure(matches!(head.status, 405 | 501 | 200..=299), CLAUSE, || {
            format!(
                "CONNECT got status {}, expected 405 or 501 (or a tunnel)",
                head.status
            )
        })?;
    }
    expect_not_called(&seen, CLAUSE, "for CONNECT")?;
    served.stop()
}

sync_case!(
    rgi_errs_2_error_stream_accepts_any_bytes
    ["RGI-ERRS-2", "RGI-ERRS-1"]
    "writes and flushes of the error stream succeed for any bytes, UTF-8 or not"
    => error_stream
);

fn error_stream(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-ERRS-2";
    let (tx, results) = mpsc::channel();
    let app = rgi::from_fn(move |mut environ: Environ, start| {
        let errors = environ.errors_mut();
        let outcome = [
            errors.write_all(b"rgi suite: non-UTF-8 \xFF\xFE and CR LF\r\n"),
            errors.write_all("rgi suite: text line\n".as_bytes()),
            errors.write_all(&[0_u8; 3]),
            errors.flush(),
        ]
        .into_iter()
        .map(|result| result.map_err(|err| err.to_string()))
        .collect::<Vec<_>>();
        let _ = tx.send(outcome);
        start.start(head_with_length(200, 2))?;
        Ok(Bytes::from_static(b"ok"))
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    exchange(&mut conn, &Request::get("/errors"), "GET", CLAUSE)?;
    let outcome = recv(&results, WAIT, CLAUSE, "the application was not called")?;
    ensure(outcome.iter().all(Result::is_ok), CLAUSE, || {
        format!("writing to the error stream failed: {outcome:?}")
    })?;
    served.stop()
}

sync_case!(
    rgi_hint_6_hints_do_not_change_the_input
    ["RGI-HINT-6"]
    "an application that declares InputUse::None, or Whole without blocking, still reads the real body"
    => hints_keep_input
);

fn hints_keep_input(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HINT-6";
    for hints in [
        Hints::default().with_input(InputUse::None),
        Hints::default()
            .with_input(InputUse::Whole)
            .with_may_block(false),
    ] {
        let (tx, seen) = mpsc::channel();
        let app = rgi::from_fn(move |mut environ: Environ, start| {
            let body = read_body(&mut environ, 1 << 20);
            let _ = tx.send(body);
            start.start(head_with_length(200, 2))?;
            Ok(Bytes::from_static(b"ok"))
        })
        .with_hints(hints);
        let served = Served::start(server, app, CLAUSE)?;
        let mut conn = served.connect()?;
        let request = Request::new("POST", "/hinted").body("the real body");
        exchange(&mut conn, &request, "POST", CLAUSE)?;
        let body = recv(&seen, WAIT, CLAUSE, "the application was not called")?;
        ensure(
            matches!(&body, Ok(bytes) if bytes == b"the real body"),
            CLAUSE,
            || format!("with {hints:?} the body read as {body:?}, expected \"the real body\""),
        )?;
        served.stop()?;
    }
    Ok(())
}

sync_case!(
    rgi_hint_5_blocking_app_does_not_stall_others
    ["RGI-HINT-5"]
    "while an application with default hints blocks on one connection, a request on another is served"
    => blocking_does_not_stall
);

fn blocking_does_not_stall(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HINT-5";
    let gate = Gate::new();
    let (events_tx, mut events) = Events::channel();
    let app_gate = gate.clone();
    let app = rgi::from_fn(move |environ: Environ, start| {
        if environ.raw_path() == "/block" {
            let _ = events_tx.send(Event::Reached("blocking"));
            app_gate.wait(super::super::kit::GATE_LIMIT);
        }
        start.start(head_with_length(200, 2))?;
        Ok(Bytes::from_static(b"ok"))
    });
    let served = Served::start(server, app, CLAUSE)?;
    let mut blocked = served.connect()?;
    blocked
        .send(&Request::get("/block").to_bytes())
        .or_fail(CLAUSE, "sending the blocking request")?;
    ensure(
        events.wait_for(&Event::Reached("blocking"), WAIT),
        CLAUSE,
        || "the blocking request never reached the application".to_owned(),
    )?;
    let mut other = served.connect()?;
    let outcome = exchange(&mut other, &Request::get("/free"), "GET", CLAUSE);
    gate.open();
    let response = outcome.map_err(|failure| {
        Failure::new(
            CLAUSE,
            format!(
                "a request on another connection was not served while one application call blocked: {}",
                failure.reason()
            ),
        )
    })?;
    expect_status(&response, 200, CLAUSE, "the request on another connection")?;
    let response = blocked
        .read_response("GET")
        .or_fail(CLAUSE, "reading the blocked request's response")?;
    expect_status(&response, 200, CLAUSE, "the blocked request")?;
    served.stop()
}
