//! The request's header fields as the application sees them
//! (`RGI-HDR`): every field, repeated fields, byte-exact values, framing
//! fields and the Host check.

use std::sync::mpsc;

use super::super::kit::{
    Esc, OrFail, Served, WAIT, echo, ensure, exchange, expect_not_called, expect_status,
    raw_exchange, recv, seen_for,
};
use crate::suite::wire::{Arrival, Request};
use crate::suite::{Failure, ServerUnderTest};

sync_case!(
    rgi_hdr_1_every_field_nothing_invented
    ["RGI-HDR-1"]
    "headers() holds every field line received and no field the client did not send"
    => every_field
);

fn every_field(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HDR-1";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let sent: [(&str, &[u8]); 6] = [
        ("host", b"127.0.0.1"),
        ("x-alpha", b"1"),
        ("x-beta", b"two words"),
        ("accept", b"*/*"),
        ("user-agent", b"rgi-suite"),
        ("authorization", b"Basic cmdpOnN1aXRl"),
    ];
    let mut request = Request::get("/fields").host(None);
    for (name, value) in sent {
        request = request.header(name, value);
    }
    let (_, snapshot) = seen_for(&served, &seen, &request, "GET", CLAUSE)?;
    for (name, value) in sent {
        ensure(snapshot.values(name) == [value], CLAUSE, || {
            format!(
                "sent {name}: {}, headers() has {:?}",
                Esc(value),
                snapshot
                    .values(name)
                    .iter()
                    .map(|value| Esc(value).to_string())
                    .collect::<Vec<_>>()
            )
        })?;
    }
    let invented: Vec<String> = snapshot
        .fields
        .iter()
        .filter(|(name, _)| !sent.iter().any(|(sent_name, _)| sent_name == name))
        .map(|(name, value)| format!("{name}: {}", Esc(value)))
        .collect();
    ensure(invented.is_empty(), CLAUSE, || {
        format!("headers() has fields the client did not send: {invented:?}")
    })?;
    served.stop()
}

sync_case!(
    rgi_hdr_2_repeated_fields_stay_separate
    ["RGI-HDR-2"]
    "a field sent on several lines (cookie included) is several entries in order, never joined"
    => repeated_fields
);

fn repeated_fields(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HDR-2";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let request = Request::get("/repeated")
        .header("x-rep", "a, b")
        .header("cookie", "a=1")
        .header("x-other", "z")
        .header("x-rep", "c")
        .header("cookie", "b=2");
    let (_, snapshot) = seen_for(&served, &seen, &request, "GET", CLAUSE)?;
    for (name, expected) in [
        ("x-rep", [&b"a, b"[..], &b"c"[..]]),
        ("cookie", [&b"a=1"[..], &b"b=2"[..]]),
    ] {
        let values = snapshot.values(name);
        ensure(values == expected, CLAUSE, || {
            format!(
                "sent two {name} lines {:?}, headers() has {:?}",
                expected.map(|value| Esc(value).to_string()),
                values
                    .iter()
                    .map(|value| Esc(value).to_string())
                    .collect::<Vec<_>>()
            )
        })?;
    }
    served.stop()
}

sync_case!(
    rgi_hdr_3_values_byte_exact
    ["RGI-HDR-3"]
    "field values keep obs-text and interior whitespace byte for byte, without the surrounding whitespace, long values included"
    => values_byte_exact
);

fn values_byte_exact(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HDR-3";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    let long = "v".repeat(4000);
    let mut bytes =
        b"GET /bytes HTTP/1.1\r\nhost: 127.0.0.1\r\nx-latin: \t caf\xE9  \t x\xFF \t\r\n".to_vec();
    bytes.extend_from_slice(format!("x-long: {long}\r\n\r\n").as_bytes());
    let mut conn = served.connect()?;
    conn.send(&bytes).or_fail(CLAUSE, "sending the request")?;
    let response = conn
        .read_response("GET")
        .or_fail(CLAUSE, "reading the response")?;
    expect_status(&response, 200, CLAUSE, "a request with obs-text in a field")?;
    let snapshot = recv(&seen, WAIT, CLAUSE, "the application was not called")?;
    let expected = b"caf\xE9  \t x\xFF";
    ensure(snapshot.values("x-latin") == [expected], CLAUSE, || {
        format!(
            "sent x-latin value {}, headers() has {:?}",
            Esc(expected),
            snapshot
                .values("x-latin")
                .iter()
                .map(|value| Esc(value).to_string())
                .collect::<Vec<_>>()
        )
    })?;
    ensure(
        snapshot.values("x-long") == [long.as_bytes()],
        CLAUSE,
        || {
            format!(
                "a 4000-byte value came through as {:?}",
                snapshot
                    .values("x-long")
                    .iter()
                    .map(|value| Esc(value).to_string())
                    .collect::<Vec<_>>()
            )
        },
    )?;
    served.stop()
}

sync_case!(
    rgi_hdr_4_framing_fields_kept_transfer_encoding_removed
    ["RGI-HDR-4"]
    "content-type and content-length stay in headers(); transfer-encoding is removed and the body decoded"
    => framing_fields
);

fn framing_fields(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HDR-4";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, true), CLAUSE)?;
    let request = Request::new("POST", "/length")
        .header("content-type", "application/x-probe")
        .body("hello");
    let (_, snapshot) = seen_for(&served, &seen, &request, "POST", CLAUSE)?;
    ensure(
        snapshot.values("content-length") == [b"5"]
            && snapshot.values("content-type") == [b"application/x-probe"],
        CLAUSE,
        || {
            format!(
                "content-length and content-type must stay in headers(); they are {:?} and {:?}",
                snapshot
                    .values("content-length")
                    .iter()
                    .map(|v| Esc(v).to_string())
                    .collect::<Vec<_>>(),
                snapshot
                    .values("content-type")
                    .iter()
                    .map(|v| Esc(v).to_string())
                    .collect::<Vec<_>>()
            )
        },
    )?;
    let request = Request::new("POST", "/chunked")
        .header("content-type", "application/x-probe")
        .chunked(&["hel", "lo"]);
    let (_, snapshot) = seen_for(&served, &seen, &request, "POST", CLAUSE)?;
    ensure(
        snapshot.values("transfer-encoding").is_empty(),
        CLAUSE,
        || {
            format!(
                "transfer-encoding was left in headers(): {:?}",
                snapshot
                    .values("transfer-encoding")
                    .iter()
                    .map(|v| Esc(v).to_string())
                    .collect::<Vec<_>>()
            )
        },
    )?;
    ensure(
        snapshot.values("content-type") == [b"application/x-probe"],
        CLAUSE,
        || "content-type is missing from a chunked request's headers()".to_owned(),
    )?;
    ensure(
        matches!(&snapshot.body, Some(Ok(body)) if body == b"hello"),
        CLAUSE,
        || {
            format!(
                "the chunked body read as {:?}, expected \"hello\"",
                snapshot.body
            )
        },
    )?;
    served.stop()
}

sync_case!(
    rgi_hdr_4_bad_content_length_is_400
    ["RGI-HDR-4"]
    "a malformed Content-Length, or several that differ, gets 400 without calling the application"
    => bad_content_length
);

fn bad_content_length(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HDR-4";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, true), CLAUSE)?;
    for bytes in [
        &b"POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5x\r\n\r\nhello"[..],
        &b"POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"[..],
        &b"POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: -1\r\n\r\n"[..],
    ] {
        let response = raw_exchange(&served, bytes, "POST", CLAUSE)?;
        expect_status(&response, 400, CLAUSE, &format!("the request {}", Esc(bytes)))?;
        expect_not_called(&seen, CLAUSE, &format!("for the request {}", Esc(bytes)))?;
    }
    served.stop()
}

sync_case!(
    rgi_hdr_4_unknown_transfer_coding_is_501
    ["RGI-HDR-4"]
    "a request body in a transfer coding the server does not implement gets 501 without calling the application"
    => unknown_coding
);

fn unknown_coding(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HDR-4";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, true), CLAUSE)?;
    let bytes = b"POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: x-rgi-unknown, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let response = raw_exchange(&served, bytes, "POST", CLAUSE)?;
    expect_status(
        &response,
        501,
        CLAUSE,
        "transfer-encoding: x-rgi-unknown, chunked",
    )?;
    expect_not_called(&seen, CLAUSE, "for an unknown transfer coding")?;
    served.stop()
}

sync_case!(
    rgi_hdr_4_length_and_chunked_together
    ["RGI-HDR-4", "RGI-CONN-2"]
    "Content-Length with Transfer-Encoding gets 400, or the body is decoded as chunked without content-length and the connection closes after the response"
    => length_and_chunked
);

fn length_and_chunked(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HDR-4";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, true), CLAUSE)?;
    let bytes = b"POST /both HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let mut conn = served.connect()?;
    conn.send(bytes).or_fail(CLAUSE, "sending the request")?;
    let response = conn
        .read_response("POST")
        .or_fail(CLAUSE, "reading the response")?;
    if response.head.status == 400 {
        expect_not_called(&seen, CLAUSE, "after answering 400")?;
        return served.stop();
    }
    expect_status(
        &response,
        200,
        CLAUSE,
        "Content-Length with Transfer-Encoding",
    )?;
    let snapshot = recv(&seen, WAIT, CLAUSE, "the application was not called")?;
    ensure(snapshot.values("content-length").is_empty(), CLAUSE, || {
        "with both framing fields, content-length must be removed; the application saw it"
            .to_owned()
    })?;
    ensure(
        matches!(&snapshot.body, Some(Ok(body)) if body == b"hello"),
        CLAUSE,
        || {
            format!(
                "the body must be decoded as chunked (\"hello\"), it read as {:?}",
                snapshot.body
            )
        },
    )?;
    let arrival = conn
        .wait_for_data(WAIT)
        .or_fail(CLAUSE, "waiting for the close")?;
    ensure(arrival == Arrival::Closed, "RGI-CONN-2", || {
        format!(
            "with both framing fields the connection must close after the response; instead: {arrival:?}"
        )
    })?;
    served.stop()
}

sync_case!(
    rgi_hdr_5_host_checked
    ["RGI-HDR-5"]
    "an HTTP/1.1 request without Host, with two, or with an invalid one gets 400 without calling the application"
    => host_checked
);

fn host_checked(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-HDR-5";
    let (tx, seen) = mpsc::channel();
    let served = Served::start(server, echo(tx, false), CLAUSE)?;
    for (request, what) in [
        (Request::get("/").host(None), "no Host field"),
        (
            Request::get("/").header("host", "127.0.0.1"),
            "two Host fields",
        ),
        (
            Request::get("/").host(Some("bad host")),
            "Host \"bad host\"",
        ),
        (
            Request::get("/").host(Some("example.test/path")),
            "Host \"example.test/path\"",
        ),
    ] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &request, "GET", CLAUSE)?;
        expect_status(
            &response,
            400,
            CLAUSE,
            &format!("an HTTP/1.1 request with {what}"),
        )?;
        expect_not_called(&seen, CLAUSE, &format!("for a request with {what}"))?;
    }
    let (_, _) = seen_for(&served, &seen, &Request::get("/").http10(), "GET", CLAUSE)?;
    served.stop()
}
