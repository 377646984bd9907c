//! The decisions a gateway server makes itself on hostile requests
//! (`RGI-PROTO`) and the limits it enforces (`RGI-LIMIT`): each refused
//! request is sent with a complete second request in the same write, and
//! the refusal must carry `connection: close`, be the only response on the
//! connection, close it, and never reach the application
//! (`RGI-PROTO-10`).

use std::sync::mpsc::{self, Receiver};

use super::super::kit::{
    Esc, OrFail, Seen, Served, WAIT, echo, ensure, expect_status, raw_exchange, recv,
};
use crate::suite::wire::Arrival;
use crate::suite::{Failure, Limits, ServerUnderTest};

/// The request a refused one smuggles behind it.
const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

/// The clause every refusal judges besides its own.
const CLOSES: &str = "RGI-PROTO-10";

/// Sends `bytes` followed by [`SMUGGLED`] in one write and judges the
/// refusal: a status of `statuses` under `clause`, no `100 Continue`
/// before it (`RGI-INPUT-24`), then under `RGI-PROTO-10` `connection:
/// close`, nothing after it, a closed connection; and the application
/// called for neither request.
fn refused(
    served: &Served,
    seen: &Receiver<Seen>,
    bytes: &[u8],
    statuses: &[u16],
    clause: &'static str,
) -> Result<(), Failure> {
    let what = Esc(&bytes[..bytes.len().min(160)]).to_string();
    let method =
        String::from_utf8_lossy(bytes.split(|&byte| byte == b' ').next().unwrap_or(b"GET"))
            .into_owned();
    let mut conn = served.connect()?;
    let mut both = bytes.to_vec();
    both.extend_from_slice(SMUGGLED);
    conn.send(&both).or_fail(clause, "sending the request")?;
    let response = conn
        .read_response(&method)
        .or_fail(clause, &format!("reading the answer to {what}"))?;
    ensure(statuses.contains(&response.head.status), clause, || {
        format!(
            "the request {what} was answered {}, expected {statuses:?}",
            response.head.status
        )
    })?;
    ensure(response.interim.is_empty(), "RGI-INPUT-24", || {
        format!("an interim response preceded the refusal of {what}")
    })?;
    if let Ok(snapshot) = seen.recv_timeout(std::time::Duration::from_millis(100)) {
        let smuggled = snapshot.uri.contains("smuggled");
        return Err(Failure::new(
            if smuggled { CLOSES } else { clause },
            format!(
                "the application was called for {} after the refusal of {what}",
                snapshot.uri
            ),
        ));
    }
    ensure(response.head.lists("connection", "close"), CLOSES, || {
        format!("the refusal of {what} has no `connection: close`")
    })?;
    match conn.read_to_close(64 * 1024) {
        Ok(rest) if rest.is_empty() => Ok(()),
        Ok(rest) => Err(Failure::new(
            CLOSES,
            format!(
                "after the refusal of {what} the server sent more: {}",
                Esc(&rest[..rest.len().min(160)])
            ),
        )),
        Err(err) => Err(Failure::new(
            CLOSES,
            format!("the connection did not close after the refusal of {what}: {err}"),
        )),
    }
}

/// Sends `bytes` on a new connection: the echo application must answer
/// `200`, having seen the request.
fn served_ok(
    served: &Served,
    seen: &Receiver<Seen>,
    bytes: &[u8],
    clause: &'static str,
) -> Result<Seen, Failure> {
    let response = raw_exchange(served, bytes, "GET", clause)?;
    expect_status(
        &response,
        200,
        clause,
        &format!("the request {}", Esc(bytes)),
    )?;
    recv(seen, WAIT, clause, "the application was not called")
}

/// Starts the echo application (reading bodies) for a refusal case.
fn start(
    server: &dyn ServerUnderTest,
    clause: &'static str,
) -> Result<(Served, Receiver<Seen>), Failure> {
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, true), clause)?;
    Ok((served, seen))
}

const CHUNKED_HELLO: &str = "5\r\nhello\r\n0\r\n\r\n";

sync_case!(
    rgi_proto_1_host_present_single_valid
    ["RGI-PROTO-1", "RGI-PROTO-10"]
    "no Host, two Host lines, an empty Host, a space in it, userinfo or a port above 65535 get 400 and a close, without calling the application"
    => host_present_single_valid
);

fn host_present_single_valid(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PROTO-1";
    let (served, seen) = start(server, CLAUSE)?;
    for bytes in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nhost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: \r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: u@127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: 127.0.0.1:99999\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: :80\r\n\r\n",
    ] {
        refused(&served, &seen, bytes, &[400], CLAUSE)?;
    }
    served_ok(
        &served,
        &seen,
        b"GET / HTTP/1.1\r\nhost: 127.0.0.1:65535\r\n\r\n",
        CLAUSE,
    )?;
    served.stop()
}

sync_case!(
    rgi_proto_2_absolute_form_and_host
    ["RGI-PROTO-2", "RGI-PROTO-10"]
    "an absolute-form target whose Host names another authority, or whose scheme is not http(s), gets 400; a matching Host (case and default port aside) is served"
    => absolute_form_and_host
);

fn absolute_form_and_host(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PROTO-2";
    let (served, seen) = start(server, CLAUSE)?;
    for bytes in [
        &b"GET http://a.test/ HTTP/1.1\r\nhost: b.test\r\n\r\n"[..],
        b"GET http://a.test/ HTTP/1.1\r\nhost: a.test:81\r\n\r\n",
        b"GET ftp://a.test/ HTTP/1.1\r\nhost: a.test\r\n\r\n",
    ] {
        refused(&served, &seen, bytes, &[400], CLAUSE)?;
    }
    let snapshot = served_ok(
        &served,
        &seen,
        b"GET http://a.test/x HTTP/1.1\r\nhost: A.TEST:80\r\n\r\n",
        CLAUSE,
    )?;
    let hosts = snapshot.values("host");
    ensure(hosts.len() == 1, CLAUSE, || {
        format!("headers() has {} host entries, expected one", hosts.len())
    })?;
    served.stop()
}

sync_case!(
    rgi_proto_3_transfer_codings
    ["RGI-PROTO-3", "RGI-PROTO-10"]
    "transfer codings other than one final chunked get 400 (chunked not last or repeated, HTTP/1.0) or 501 (an unknown coding) and a close"
    => transfer_codings
);

fn transfer_codings(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PROTO-3";
    let (served, seen) = start(server, CLAUSE)?;
    let cases: [(&str, u16); 6] = [
        (
            "POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked, identity\r\n\r\n",
            400,
        ),
        (
            "POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked, chunked\r\n\r\n",
            400,
        ),
        (
            "POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
            400,
        ),
        (
            "POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: x-rgi-unknown\r\n\r\n",
            400,
        ),
        (
            "POST /x HTTP/1.0\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n",
            400,
        ),
        (
            "POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: x-rgi-unknown\r\ntransfer-encoding: chunked\r\n\r\n",
            501,
        ),
    ];
    for (head, status) in cases {
        let bytes = format!("{head}{CHUNKED_HELLO}");
        refused(&served, &seen, bytes.as_bytes(), &[status], CLAUSE)?;
    }
    served.stop()
}

sync_case!(
    rgi_proto_4_content_length_strict
    ["RGI-PROTO-4", "RGI-PROTO-10"]
    "Content-Length +5, empty, of 21 digits, or `5, 6` gets 400 and a close; two agreeing field lines are one length; `5, 5` in one line is one length or a 400 and a close"
    => content_length_strict
);

fn content_length_strict(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PROTO-4";
    let (served, seen) = start(server, CLAUSE)?;
    for value in ["+5", "", "123456789012345678901", "5, 6", "0x5", "5 5"] {
        let bytes =
            format!("POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {value}\r\n\r\nhello");
        refused(&served, &seen, bytes.as_bytes(), &[400], CLAUSE)?;
    }
    let disagreeing: &[u8] =
        b"POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello";
    refused(&served, &seen, disagreeing, &[400], CLAUSE)?;
    let agreeing_lines: &[u8] =
        b"POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello";
    served_as_one_length(
        &served,
        &seen,
        agreeing_lines,
        "two `content-length: 5` lines",
    )?;
    // RFC 9110 §8.6 lets a recipient refuse a list of identical values in
    // one field line, or take it as one value; either is conformant, a
    // refusal only when it is complete.
    let agreeing_list: &[u8] =
        b"POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5, 5\r\n\r\nhello";
    let response = raw_exchange(&served, agreeing_list, "POST", CLAUSE)?;
    if response.head.status == 400 {
        ensure(
            seen.recv_timeout(std::time::Duration::from_millis(100))
                .is_err(),
            CLAUSE,
            || {
                "`content-length: 5, 5` was answered 400 after the application was called"
                    .to_owned()
            },
        )?;
        refused(&served, &seen, agreeing_list, &[400], CLAUSE)?;
    } else {
        expect_status(&response, 200, CLAUSE, "content-length: 5, 5")?;
        expect_body_hello(&seen, "content-length: 5, 5")?;
    }
    served.stop()
}

/// Sends `bytes`, a POST of `hello` whose Content-Length is given twice in
/// agreement, and checks that it is served as a body of five bytes.
fn served_as_one_length(
    served: &Served,
    seen: &Receiver<Seen>,
    bytes: &[u8],
    what: &str,
) -> Result<(), Failure> {
    let response = raw_exchange(served, bytes, "POST", "RGI-PROTO-4")?;
    expect_status(&response, 200, "RGI-PROTO-4", what)?;
    expect_body_hello(seen, what)
}

/// Checks that the application read the body `hello`.
fn expect_body_hello(seen: &Receiver<Seen>, what: &str) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PROTO-4";
    let snapshot = recv(seen, WAIT, CLAUSE, "the application was not called")?;
    ensure(
        matches!(&snapshot.body, Some(Ok(body)) if body == b"hello"),
        CLAUSE,
        || format!("with {what} the body read as {:?}", snapshot.body),
    )
}

sync_case!(
    rgi_proto_5_unknown_expectation_is_417
    ["RGI-PROTO-5", "RGI-PROTO-10"]
    "an Expect other than 100-continue gets 417 without calling the application; 100-Continue in any case is served"
    => unknown_expectation
);

fn unknown_expectation(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PROTO-5";
    let (served, seen) = start(server, CLAUSE)?;
    for value in ["x-rgi-teapot", "100-continue, x-rgi-teapot"] {
        let bytes = format!(
            "POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\nexpect: {value}\r\ncontent-length: 5\r\n\r\nhello"
        );
        refused(&served, &seen, bytes.as_bytes(), &[417], CLAUSE)?;
    }
    let response = raw_exchange(
        &served,
        b"POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\nexpect: 100-Continue\r\ncontent-length: 5\r\n\r\nhello",
        "POST",
        CLAUSE,
    )?;
    expect_status(&response, 200, CLAUSE, "expect: 100-Continue")?;
    let _ = recv(&seen, WAIT, CLAUSE, "the application was not called")?;
    served.stop()
}

sync_case!(
    rgi_proto_6_target_forms_match_methods
    ["RGI-PROTO-6", "RGI-PROTO-10"]
    "authority-form without CONNECT, asterisk-form without OPTIONS and CONNECT without authority-form get 400; CONNECT gets 501"
    => target_forms
);

fn target_forms(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PROTO-6";
    let (served, seen) = start(server, CLAUSE)?;
    for (bytes, status) in [
        (
            &b"GET 127.0.0.1:80 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"[..],
            400,
        ),
        (b"GET * HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n", 400),
        (b"CONNECT /x HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n", 400),
        (
            b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nhost: 127.0.0.1:443\r\n\r\n",
            501,
        ),
    ] {
        refused(&served, &seen, bytes, &[status], CLAUSE)?;
    }
    served.stop()
}

sync_case!(
    rgi_proto_7_unsupported_version_is_505
    ["RGI-PROTO-7", "RGI-PROTO-10"]
    "an HTTP/2.0 or HTTP/3.1 request line on an HTTP/1 connection gets 505 (or 400) and a close"
    => unsupported_version
);

fn unsupported_version(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PROTO-7";
    let (served, seen) = start(server, CLAUSE)?;
    for bytes in [
        &b"GET / HTTP/2.0\r\nhost: 127.0.0.1\r\n\r\n"[..],
        b"GET / HTTP/3.1\r\nhost: 127.0.0.1\r\n\r\n",
    ] {
        refused(&served, &seen, bytes, &[505, 400], CLAUSE)?;
    }
    served.stop()
}

sync_case!(
    rgi_proto_8_field_syntax
    ["RGI-PROTO-8", "RGI-PROTO-10"]
    "whitespace before a colon, obs-fold, a non-token name, NUL or CR in a value get 400 and a close"
    => field_syntax
);

fn field_syntax(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PROTO-8";
    let (served, seen) = start(server, CLAUSE)?;
    for bytes in [
        &b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-a : 1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-a: 1\r\n 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-a: 1\r\n\t2\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx(a): 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-a: 1\x002\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-a: 1\r2\r\n\r\n",
    ] {
        refused(&served, &seen, bytes, &[400], CLAUSE)?;
    }
    served.stop()
}

sync_case!(
    rgi_proto_9_request_line_syntax
    ["RGI-PROTO-9", "RGI-PROTO-10"]
    "a request line with extra spaces, a missing part, a non-token method or a target outside RFC 3986 gets 400 and a close"
    => request_line_syntax
);

fn request_line_syntax(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-PROTO-9";
    let (served, seen) = start(server, CLAUSE)?;
    for bytes in [
        &b"GET  / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"[..],
        b"GET /  HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1 \r\nhost: 127.0.0.1\r\n\r\n",
        b"GET /\r\nhost: 127.0.0.1\r\n\r\n",
        b"G(T / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
        b"GET /a\"b HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
        b"GET /a\x01b HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
        b"GET / http/1.1\r\nhost: 127.0.0.1\r\n\r\n",
    ] {
        refused(&served, &seen, bytes, &[400], CLAUSE)?;
    }
    served.stop()
}

sync_case!(
    rgi_proto_10_refusals_close_no_smuggling
    ["RGI-PROTO-10", "RGI-PROTO-4", "RGI-PROTO-1"]
    "a request with Content-Length and Transfer-Encoding and a second request behind it, and refused heads with one behind them: the server closes, the second request is never served"
    => no_smuggling
);

fn no_smuggling(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let (served, seen) = start(server, CLOSES)?;
    // CL.TE: a server framing by Content-Length swallows the second
    // request as body; one framing by chunked would find it next.
    let tail = format!("0\r\n\r\n{}", String::from_utf8_lossy(SMUGGLED));
    let both = format!(
        "POST /first HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\ntransfer-encoding: chunked\r\n\r\n{tail}",
        tail.len()
    );
    let mut conn = served.connect()?;
    conn.send(both.as_bytes())
        .or_fail(CLOSES, "sending Content-Length with Transfer-Encoding")?;
    let response = conn
        .read_response("POST")
        .or_fail(CLOSES, "reading the answer")?;
    let rest = conn.read_to_close(64 * 1024).map_err(|err| {
        Failure::new(
            CLOSES,
            format!(
                "the connection stayed open after a request with both Content-Length and Transfer-Encoding (answered {}): {err}",
                response.head.status
            ),
        )
    })?;
    ensure(rest.is_empty(), CLOSES, || {
        format!(
            "after the answer to a request with both framing fields, more came: {}",
            Esc(&rest[..rest.len().min(160)])
        )
    })?;
    while let Ok(snapshot) = seen.recv_timeout(std::time::Duration::from_millis(100)) {
        ensure(!snapshot.uri.contains("smuggled"), CLOSES, || {
            "the request smuggled behind a body framed two ways was served".to_owned()
        })?;
    }
    // Refusals of other kinds, each with a request behind it.
    refused(
        &served,
        &seen,
        b"POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
        &[400],
        "RGI-PROTO-4",
    )?;
    refused(
        &served,
        &seen,
        b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
        &[400],
        "RGI-PROTO-1",
    )?;
    served.stop()
}

sync_case!(
    rgi_limit_2_long_target_is_414
    ["RGI-LIMIT-2", "RGI-PROTO-10"]
    "a request target one byte longer than the server's declared limit gets 414 and a close, without calling the application"
    => long_target
);

fn long_target(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-LIMIT-2";
    let limits = server.claims().limits;
    let (served, seen) = start(server, CLAUSE)?;
    let target = format!("/{}", "t".repeat(limits.target));
    let bytes = format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    refused(&served, &seen, bytes.as_bytes(), &[414], CLAUSE)?;
    served.stop()
}

sync_case!(
    rgi_limit_3_large_header_section_is_431
    ["RGI-LIMIT-3", "RGI-PROTO-10"]
    "one field line more than the declared count limit, and a header section just over the size limit, get 431 and a close"
    => large_header_section
);

fn large_header_section(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-LIMIT-3";
    let limits: Limits = server.claims().limits;
    let (served, seen) = start(server, CLAUSE)?;
    let mut many = String::from("GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for index in 0..limits.header_fields {
        many.push_str(&format!("x-f{index}: 1\r\n"));
    }
    many.push_str("\r\n");
    refused(&served, &seen, many.as_bytes(), &[431], CLAUSE)?;
    let large = format!(
        "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-large: {}\r\n\r\n",
        "v".repeat(limits.header_size)
    );
    refused(&served, &seen, large.as_bytes(), &[431], CLAUSE)?;
    served.stop()
}

sync_case!(
    rgi_limit_4_declared_body_over_limit_is_413
    ["RGI-LIMIT-4", "RGI-INPUT-24", "RGI-PROTO-10"]
    "a Content-Length one byte over the declared body limit gets 413 at once, without the body, without 100 Continue, and a close"
    => declared_body_over_limit
);

fn declared_body_over_limit(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-LIMIT-4";
    let limits = server.claims().limits;
    let (served, seen) = start(server, CLAUSE)?;
    let over = limits.body.saturating_add(1);
    for expect in ["", "expect: 100-continue\r\n"] {
        // The body is withheld: the answer must not wait for it.
        let bytes = format!(
            "POST /upload HTTP/1.1\r\nhost: 127.0.0.1\r\n{expect}content-length: {over}\r\n\r\n"
        );
        refused(&served, &seen, bytes.as_bytes(), &[413], CLAUSE)?;
    }
    served.stop()
}

sync_case!(
    rgi_limit_5_stalled_head_is_408
    needs ShortTimes
    ["RGI-LIMIT-5"]
    "a head that stops half-way gets 408 and a close once the head-read time passes; a connection that sends nothing is closed silently"
    => stalled_head
);

fn stalled_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-LIMIT-5";
    let limits = server.claims().limits;
    let within = limits.head_time.max(limits.idle_time) + WAIT;
    let (served, seen) = start(server, CLAUSE)?;
    let mut conn = served.connect()?;
    conn.set_timeout(within);
    conn.send(b"GET /stalled HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .or_fail(CLAUSE, "sending half a head")?;
    let response = conn.read_response("GET").or_fail(
        CLAUSE,
        &format!("waiting {within:?} for the answer to a head that stopped half-way"),
    )?;
    expect_status(&response, 408, CLAUSE, "a head that stopped half-way")?;
    ensure(response.head.lists("connection", "close"), CLAUSE, || {
        "the 408 has no `connection: close`".to_owned()
    })?;
    ensure(
        matches!(conn.wait_for_data(WAIT), Ok(Arrival::Closed)),
        CLAUSE,
        || "the connection stayed open after the 408".to_owned(),
    )?;
    let mut silent = served.connect()?;
    let arrival = silent
        .wait_for_data(within)
        .or_fail(CLAUSE, "waiting on a connection that sent nothing")?;
    ensure(arrival == Arrival::Closed, CLAUSE, || {
        format!(
            "a connection that sent nothing must be closed without a response within {within:?}; instead: {arrival:?}"
        )
    })?;
    ensure(
        seen.recv_timeout(std::time::Duration::from_millis(100))
            .is_err(),
        CLAUSE,
        || "the application was called for a head that never arrived whole".to_owned(),
    )?;
    served.stop()
}

sync_case!(
    rgi_limit_6_idle_connection_closed_silently
    needs ShortTimes
    ["RGI-LIMIT-6"]
    "a kept connection left idle after a response is closed without a byte once the idle time passes"
    => idle_connection
);

fn idle_connection(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-LIMIT-6";
    let limits = server.claims().limits;
    let within = limits.idle_time + WAIT;
    let (served, seen) = start(server, CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(b"GET /first HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .or_fail(CLAUSE, "sending a request")?;
    let response = conn
        .read_response("GET")
        .or_fail(CLAUSE, "reading the response")?;
    expect_status(&response, 200, CLAUSE, "a plain request")?;
    let _ = recv(&seen, WAIT, CLAUSE, "the application was not called")?;
    let arrival = conn
        .wait_for_data(within)
        .or_fail(CLAUSE, "waiting on the idle connection")?;
    ensure(arrival == Arrival::Closed, CLAUSE, || match &arrival {
        Arrival::Data(bytes) => format!(
            "an idle connection must be closed silently; the server sent {}",
            Esc(&bytes[..bytes.len().min(160)])
        ),
        _ => format!("the idle connection was still open after {within:?}"),
    })?;
    served.stop()
}

sync_case!(
    rgi_input_23_no_interim_response_on_http10
    ["RGI-INPUT-23"]
    "an HTTP/1.0 request with Expect: 100-continue gets neither 100 Continue nor 417, and the application reads the body the client then sends"
    => no_interim_on_http10
);

/// Regression case for issue 9's D2, its second half: a request whose
/// connection cannot carry an interim response gets none and is still read.
fn no_interim_on_http10(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-INPUT-23";
    let (served, seen) = start(server, CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(b"POST /upload HTTP/1.0\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n")
        .or_fail(CLAUSE, "sending the head")?;
    if let Arrival::Data(bytes) = conn
        .wait_for_data(super::super::kit::QUIET)
        .or_fail(CLAUSE, "waiting before sending the body")?
    {
        return Err(Failure::new(
            CLAUSE,
            format!(
                "before the body, the server sent {} to an HTTP/1.0 request: it can send no interim response and must not refuse",
                Esc(&bytes[..bytes.len().min(160)])
            ),
        ));
    }
    conn.send(b"hello").or_fail(CLAUSE, "sending the body")?;
    let response = conn
        .read_response("POST")
        .or_fail(CLAUSE, "reading the response")?;
    expect_status(&response, 200, CLAUSE, "an HTTP/1.0 upload with Expect")?;
    ensure(response.interim.is_empty(), CLAUSE, || {
        "an interim response went out on HTTP/1.0".to_owned()
    })?;
    let snapshot = recv(&seen, WAIT, CLAUSE, "the application was not called")?;
    ensure(
        matches!(&snapshot.body, Some(Ok(body)) if body == b"hello"),
        CLAUSE,
        || format!("the application read the body as {:?}", snapshot.body),
    )?;
    served.stop()
}
