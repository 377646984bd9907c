//! Connection upgrade (spec/rgi-async.md §12, UPGRADE).

use std::future::Future;
use std::io::Write;
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use rgi::{BoxError, Environ, StartResponse};
use rgi_async::{ByteStream, Capabilities, Upgrade, Upgraded};

use super::support::{
    AnyBody, BOUND, Latch, Session, Stepped, boxed, emit, fail, finished, head, poll_body,
    ready_or_park, recv, shown, text_body, wire,
};
use crate::Check;
use crate::suite::wire::{Connection, Head, Request, WireError};
use crate::suite::{Case, Failure, Needs, ServerUnderTest};

/// `RGIA-UPGRADE-1`.
pub(super) const OFFERED_ONLY_WHEN_ASKED: Case = Case::new(
    Check::new(
        "rgia_upgrade_1_offered_only_when_asked",
        &["RGIA-UPGRADE-1"],
        "the Upgrade capability is present for an HTTP/1.1 request with Upgrade and Connection: \
         upgrade, and absent without them or on HTTP/1.0",
    ),
    Needs::Upgrade,
    offered_only_when_asked,
);

/// `RGIA-UPGRADE-2`.
pub(super) const NO_101_AFTER_THE_HEAD: Case = Case::new(
    Check::new(
        "rgia_upgrade_2_no_101_after_the_head",
        &["RGIA-UPGRADE-2"],
        "Upgrade::accept fails once the head has been sent, and the response goes on unchanged",
    ),
    Needs::Upgrade,
    no_101_after_the_head,
);

/// `RGIA-UPGRADE-3`.
pub(super) const SEVERAL_OFFERS_NEED_A_CHOICE: Case = Case::new(
    Check::new(
        "rgia_upgrade_3_several_offers_need_a_choice",
        &["RGIA-UPGRADE-3"],
        "when the request offers several protocols and the application names none, accept \
         fails with a typed error; the one it names among them is the one the 101 carries",
    ),
    Needs::Upgrade,
    several_offers_need_a_choice,
);

/// `RGIA-UPGRADE-4`.
pub(super) const THE_101_THEN_THE_STREAM: Case = Case::new(
    Check::new(
        "rgia_upgrade_4_the_101_then_the_stream",
        &[
            "RGIA-UPGRADE-4",
            "RGIA-UPGRADE-2",
            "RGIA-UPGRADE-3",
            "RGIA-UPGRADE-7",
            "RGIA-UPGRADE-8",
        ],
        "an accepted upgrade sends a 101 with the application's fields plus Connection and \
         Upgrade, then echoes bytes (early ones included) over the stream, and the connection \
         closes when the body ends",
    ),
    Needs::Upgrade,
    the_101_then_the_stream,
);

/// `RGIA-UPGRADE-6`.
pub(super) const HTTP_OUTPUT_AFTER_ACCEPT_CLOSES: Case = Case::new(
    Check::new(
        "rgia_upgrade_6_http_output_after_accept_closes",
        &["RGIA-UPGRADE-6"],
        "an upgraded body that yields an HTTP chunk gets its connection closed, the chunk unsent",
    ),
    Needs::Upgrade,
    http_output_after_accept_closes,
);

/// `RGIA-UPGRADE-9`.
pub(super) const A_FAILED_HAND_OVER_IS_REPORTED: Case = Case::new(
    Check::new(
        "rgia_upgrade_9_a_failed_hand_over_is_reported",
        &["RGIA-UPGRADE-9"],
        "an upgrade accepted after the client reset the connection resolves Upgraded to an \
         UpgradeError, and the body is then dropped as after a disconnect",
    ),
    Needs::Upgrade,
    a_failed_hand_over_is_reported,
);

/// The message a probe sends when a request that asked for an upgrade
/// finds no capability.
const MISSING: &str = "an HTTP/1.1 request with `connection: upgrade` and `upgrade: x-echo` \
                       found no Upgrade capability on a server that claims it";

/// A GET for `path` that asks for an upgrade to `protocols`.
fn asking(path: &str, protocols: &str) -> Request {
    Request::get(path)
        .header("connection", "upgrade")
        .header("upgrade", protocols)
}

/// The request's upgrade handle.
fn upgrade_of(environ: &Environ) -> Option<Upgrade> {
    Capabilities::of(environ)
        .and_then(Capabilities::upgrade)
        .cloned()
}

/// Reads raw bytes from the connection until at least `count` arrived or
/// the server closed it: after a 101 the connection carries no HTTP.
fn read_raw(conn: &mut Connection, count: u64) -> Result<Vec<u8>, WireError> {
    let no_framing = Head {
        minor_version: 1,
        status: 200,
        reason: String::new(),
        fields: Vec::new(),
        raw: Vec::new(),
    };
    conn.body_reader(&no_framing, "GET")?.read_at_least(count)
}

/// Where an echoing upgraded body is.
enum Echo {
    Waiting(Upgraded),
    Talking {
        stream: Box<dyn ByteStream>,
        unsent: Vec<u8>,
        flushing: bool,
    },
    Closing(Box<dyn ByteStream>),
    Done,
}

/// A body that waits for the upgrade and echoes every byte it reads until
/// the client closes its side, then closes its own; failures go to
/// `report`.
fn echo_body(upgraded: Upgraded, report: Sender<String>) -> impl rgi_async::AsyncBody {
    let mut state = Echo::Waiting(upgraded);
    poll_body(move |cx, _start| -> Stepped {
        loop {
            match &mut state {
                Echo::Waiting(upgraded) => match ready_or_park!(Pin::new(upgraded).poll(cx)) {
                    Ok(stream) => {
                        state = Echo::Talking {
                            stream,
                            unsent: Vec::new(),
                            flushing: false,
                        };
                    }
                    Err(error) => {
                        let _ = report.send(format!("Upgraded resolved to an error: {error}"));
                        state = Echo::Done;
                        return Err(error.into());
                    }
                },
                Echo::Talking {
                    stream,
                    unsent,
                    flushing,
                } => {
                    if !unsent.is_empty() {
                        let written = ready_or_park!(stream.poll_write(cx, unsent))?;
                        if written == 0 {
                            let _ = report.send("poll_write accepted 0 bytes".to_owned());
                            return Err("poll_write accepted 0 bytes of a non-empty buffer".into());
                        }
                        unsent.drain(..written.min(unsent.len()));
                        *flushing = unsent.is_empty();
                        continue;
                    }
                    if *flushing {
                        ready_or_park!(stream.poll_flush(cx))?;
                        *flushing = false;
                        continue;
                    }
                    let mut buffer = [0_u8; 1024];
                    let read = ready_or_park!(stream.poll_read(cx, &mut buffer))?;
                    if read > 0 {
                        unsent.extend_from_slice(&buffer[..read]);
                        continue;
                    }
                    if let Echo::Talking { stream, .. } = std::mem::replace(&mut state, Echo::Done)
                    {
                        state = Echo::Closing(stream);
                    }
                }
                Echo::Closing(stream) => {
                    ready_or_park!(stream.poll_close(cx))?;
                    state = Echo::Done;
                }
                Echo::Done => return finished(),
            }
        }
    })
}

/// The fields the probe adds to its 101.
fn probe_fields() -> HeaderMap {
    let mut fields = HeaderMap::new();
    fields.insert(
        HeaderName::from_static("x-echo-version"),
        HeaderValue::from_static("1"),
    );
    fields
}

fn offered_only_when_asked(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-UPGRADE-1";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
        let _ = report.send((
            environ.uri().path().to_owned(),
            upgrade_of(&environ).is_some(),
        ));
        Ok(text_body("seen"))
    });
    let session = Session::start(server, app, MAIN)?;
    let requests = [
        ("/plain", Request::get("/plain"), false),
        ("/asked", asking("/asked", "x-echo"), true),
        (
            "/no-connection",
            Request::get("/no-connection").header("upgrade", "x-echo"),
            false,
        ),
        ("/http10", asking("/http10", "x-echo").http10(), false),
    ];
    for (_, request, _) in &requests {
        session.exchange(request, "GET")?;
    }
    session.stop()?;
    for (path, _, wanted) in requests {
        let (seen_path, offered) = recv(&reports, MAIN, "a call of the application")?;
        if seen_path != path {
            return Err(fail(
                MAIN,
                format!("expected the call for {path}, got {seen_path}"),
            ));
        }
        if offered != wanted {
            let what = match path {
                "/plain" => "a request without Upgrade and Connection fields",
                "/asked" => "an HTTP/1.1 request with `connection: upgrade` and `upgrade: x-echo`",
                "/no-connection" => "a request with `upgrade: x-echo` but no `connection: upgrade`",
                _ => "an HTTP/1.0 request with `connection: upgrade` and `upgrade: x-echo`",
            };
            let verdict = if offered {
                "was offered"
            } else {
                "was not offered"
            };
            return Err(fail(
                MAIN,
                format!("{what} {verdict} the Upgrade capability"),
            ));
        }
    }
    Ok(())
}

fn no_101_after_the_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-UPGRADE-2";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(move |environ: Environ, _start: &mut StartResponse<'_>| {
        let upgrade = upgrade_of(&environ);
        let report = report.clone();
        let mut polls = 0;
        Ok(poll_body(move |_cx, start| {
            polls += 1;
            match polls {
                1 => {
                    start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
                    emit("sent")
                }
                2 => {
                    let Some(upgrade) = upgrade.as_ref() else {
                        let _ = report.send(Err(MISSING.to_owned()));
                        return emit(";no upgrade");
                    };
                    match upgrade.accept(probe_fields()) {
                        Ok(_upgraded) => {
                            let _ = report.send(Ok(true));
                            finished()
                        }
                        Err(_) => {
                            let _ = report.send(Ok(false));
                            emit(";refused")
                        }
                    }
                }
                _ => finished(),
            }
        }))
    });
    let session = Session::start(server, app, MAIN)?;
    let response = session.exchange(&asking("/late", "x-echo"), "GET");
    let accepted = recv(&reports, MAIN, "the probe's late call of Upgrade::accept");
    session.stop()?;
    match accepted? {
        Err(missing) => return Err(fail("RGIA-UPGRADE-1", missing)),
        Ok(true) => {
            return Err(fail(
                MAIN,
                "Upgrade::accept succeeded after the 200 head and a chunk had been sent",
            ));
        }
        Ok(false) => {}
    }
    let response = response?;
    if response.head.status != 200
        || response.body.data != b"sent;refused"
        || !response.body.complete
    {
        return Err(fail(
            MAIN,
            format!(
                "after the refused accept the response was {} {} (complete: {}); it must go on \
                 unchanged",
                response.head.status,
                shown(&response.body.data),
                response.body.complete
            ),
        ));
    }
    Ok(())
}

fn several_offers_need_a_choice(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-UPGRADE-3";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(
        move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            let Some(upgrade) = upgrade_of(&environ) else {
                // A server may decline to offer an upgrade it cannot settle.
                let _ = report.send(None);
                return Ok(boxed(text_body("not offered")));
            };
            match upgrade.accept(HeaderMap::new()) {
                Ok(upgraded) => {
                    let _ = report.send(Some(true));
                    // Give the connection back at once.
                    drop(upgraded);
                    Ok(boxed(poll_body(|_cx, _start| finished())))
                }
                Err(_) => {
                    let _ = report.send(Some(false));
                    Ok(boxed(text_body("refused")))
                }
            }
        },
    );
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&asking("/choose", "x-echo, x-other").to_bytes())
        .map_err(wire(MAIN, "sending a request offering x-echo and x-other"))?;
    let accepted = recv(&reports, MAIN, "the probe's call of Upgrade::accept");
    drop(conn);
    session.stop()?;
    if accepted? == Some(true) {
        return Err(fail(
            MAIN,
            "the request offered `x-echo, x-other` and the application named no protocol, yet \
             Upgrade::accept succeeded",
        ));
    }
    the_application_chooses(server)
}

/// The second half of `RGIA-UPGRADE-3`: among several offers, the protocol
/// the application names in `accept` is the one the 101 carries.
fn the_application_chooses(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-UPGRADE-3";
    const LATER: &[u8] = b"chosen, then echoed";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(
        move |environ: Environ, start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            let Some(upgrade) = upgrade_of(&environ) else {
                let _ = report.send(MISSING.to_owned());
                start.start(StatusCode::NOT_IMPLEMENTED)?;
                return Ok(boxed(text_body("no upgrade")));
            };
            let mut fields = probe_fields();
            fields.insert(http::header::UPGRADE, HeaderValue::from_static("x-echo"));
            match upgrade.accept(fields) {
                Ok(upgraded) => Ok(boxed(echo_body(upgraded, report.clone()))),
                Err(error) => {
                    let _ = report.send(format!(
                        "the request offered `x-other, x-echo` and the application chose \
                         x-echo, yet Upgrade::accept failed: {error}"
                    ));
                    start.start(StatusCode::NOT_IMPLEMENTED)?;
                    Ok(boxed(text_body("accept failed")))
                }
            }
        },
    );
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&asking("/chosen", "x-other, x-echo").to_bytes())
        .map_err(wire(MAIN, "sending a request offering x-other and x-echo"))?;
    let result = converse(&mut conn, b"", LATER);
    drop(conn);
    session.stop()?;
    if let Ok(problem) = reports.try_recv() {
        return Err(fail(MAIN, problem));
    }
    result
}

fn the_101_then_the_stream(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-UPGRADE-4";
    const EARLY: &[u8] = b"early!";
    const LATER: &[u8] = b"hello, stream";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(
        move |environ: Environ, start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            let Some(upgrade) = upgrade_of(&environ) else {
                let _ = report.send(MISSING.to_owned());
                start.start(StatusCode::NOT_IMPLEMENTED)?;
                return Ok(boxed(text_body("no upgrade")));
            };
            // A stored head that the 101 replaces.
            start.start(head(StatusCode::OK, &[("content-type", "text/plain")]))?;
            match upgrade.accept(probe_fields()) {
                Ok(upgraded) => Ok(boxed(echo_body(upgraded, report.clone()))),
                Err(error) => {
                    let _ = report.send(format!("Upgrade::accept failed: {error}"));
                    Ok(boxed(text_body("accept failed")))
                }
            }
        },
    );
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let mut opening = asking("/echo", "x-echo").to_bytes();
    opening.extend_from_slice(EARLY);
    conn.send(&opening).map_err(wire(
        MAIN,
        "sending the upgrade request followed by bytes of the new protocol",
    ))?;
    let result = converse(&mut conn, EARLY, LATER);
    drop(conn);
    session.stop()?;
    if let Ok(problem) = reports.try_recv() {
        let clause = if problem == MISSING {
            "RGIA-UPGRADE-1"
        } else {
            MAIN
        };
        return Err(fail(clause, problem));
    }
    result
}

/// The client's side of the echo conversation.
fn converse(conn: &mut Connection, early: &[u8], later: &[u8]) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-UPGRADE-4";
    let switching = conn
        .read_head()
        .map_err(wire(MAIN, "reading the response to the accepted upgrade"))?;
    if switching.status != 101 {
        return Err(fail(
            MAIN,
            format!(
                "the accepted upgrade was answered {} instead of 101 Switching Protocols",
                switching.status
            ),
        ));
    }
    if switching.field("x-echo-version") != Some(&b"1"[..]) {
        return Err(fail(
            "RGIA-UPGRADE-2",
            format!(
                "the 101 lacks the application's field x-echo-version: 1 (it has {:?})",
                switching.field_text("x-echo-version")
            ),
        ));
    }
    let protocol = switching.field_text("upgrade");
    if !switching.lists("connection", "upgrade") || protocol.as_deref() != Some("x-echo") {
        return Err(fail(
            "RGIA-UPGRADE-3",
            format!(
                "the 101 carries connection {:?} and upgrade {protocol:?}; it must list \
                 `upgrade` in Connection and name x-echo",
                switching.field_text("connection")
            ),
        ));
    }
    let echoed = read_raw(conn, early.len() as u64).map_err(wire(
        MAIN,
        "the client sent bytes right after the request; reading their echo",
    ))?;
    if echoed != early {
        return Err(fail(
            MAIN,
            format!(
                "the bytes sent right after the request, {}, came back as {}: the stream must \
                 begin with the first byte after the request",
                shown(early),
                shown(&echoed)
            ),
        ));
    }
    conn.send(later).map_err(wire(
        "RGIA-UPGRADE-8",
        "sending over the upgraded connection",
    ))?;
    let echoed = read_raw(conn, later.len() as u64).map_err(wire(
        "RGIA-UPGRADE-8",
        "reading the echo over the upgraded connection",
    ))?;
    if echoed != later {
        return Err(fail(
            "RGIA-UPGRADE-8",
            format!(
                "{} came back over the stream as {}",
                shown(later),
                shown(&echoed)
            ),
        ));
    }
    conn.shutdown_write()
        .map_err(wire(MAIN, "closing the client's sending side"))?;
    let left = conn.read_to_close(64 * 1024).map_err(wire(
        "RGIA-UPGRADE-7",
        "the client closed its side, so the echoing body ended; waiting for the server to close",
    ))?;
    if !left.is_empty() {
        return Err(fail(
            "RGIA-UPGRADE-7",
            format!("after the body ended, the server sent {}", shown(&left)),
        ));
    }
    Ok(())
}

fn http_output_after_accept_closes(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-UPGRADE-6";
    const OOPS: &[u8] = b"oops-http-data";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(
        move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            let Some(upgrade) = upgrade_of(&environ) else {
                let _ = report.send(MISSING.to_owned());
                return Ok(boxed(text_body("no upgrade")));
            };
            let mut upgraded = Some(upgrade.accept(probe_fields())?);
            let mut stream: Option<Box<dyn ByteStream>> = None;
            let report = report.clone();
            Ok(boxed(poll_body(move |cx, _start| {
                if let Some(waiting) = upgraded.as_mut() {
                    match ready_or_park!(Pin::new(waiting).poll(cx)) {
                        Ok(opened) => stream = Some(opened),
                        Err(error) => {
                            let _ = report.send(format!("Upgraded resolved to an error: {error}"));
                            return Err(error.into());
                        }
                    }
                    upgraded = None;
                    // Against RGIA-UPGRADE-5: HTTP output after the hand-over.
                    return emit(OOPS);
                }
                let _keep_open = stream.as_ref();
                finished()
            })))
        },
    );
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    conn.send(&asking("/oops", "x-echo").to_bytes())
        .map_err(wire(MAIN, "sending the upgrade request"))?;
    let switching = conn.read_head().map_err(wire(MAIN, "reading the 101"));
    let after = switching.and_then(|switching| {
        let after = conn.read_to_close(64 * 1024).map_err(wire(
            MAIN,
            "the upgraded body yielded an HTTP chunk; waiting for the server to close",
        ))?;
        Ok((switching, after))
    });
    drop(conn);
    session.stop()?;
    if let Ok(problem) = reports.try_recv() {
        let clause = if problem == MISSING {
            "RGIA-UPGRADE-1"
        } else {
            MAIN
        };
        return Err(fail(clause, problem));
    }
    let (switching, after) = after?;
    if switching.status != 101 {
        return Err(fail(
            "RGIA-UPGRADE-4",
            format!("the accepted upgrade was answered {}", switching.status),
        ));
    }
    if after.windows(OOPS.len()).any(|window| window == OOPS) {
        return Err(fail(
            MAIN,
            format!(
                "the chunk an upgraded body yielded (an application error) went onto the \
                 connection: {}",
                shown(&after)
            ),
        ));
    }
    Ok(())
}

/// What the probe of `RGIA-UPGRADE-9` saw, in order.
#[derive(Debug)]
enum HandOver {
    /// The body waits for the case's go-ahead before it accepts.
    Parked,
    /// The request carried no Upgrade capability.
    Missing,
    /// `accept` itself failed.
    Refused(String),
    /// `Upgraded` resolved to an error.
    Failed(String),
    /// `Upgraded` resolved to a stream.
    Resolved,
    /// The body was dropped.
    Dropped,
}

/// Where the probe of `RGIA-UPGRADE-9` is.
enum Stage {
    Parked,
    Waiting(Upgraded),
    Done,
}

fn a_failed_hand_over_is_reported(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-UPGRADE-9";
    let go = Latch::new();
    let (report, reports) = mpsc::channel();
    let app = {
        let go = go.clone();
        rgi_async::from_fn(
            move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
                if environ.uri().path() != "/upgrade" {
                    return Ok(boxed(text_body("first")));
                }
                let upgrade = upgrade_of(&environ);
                let (go, report) = (go.clone(), report.clone());
                let dropped = report.clone();
                let mut announced = false;
                let mut stage = Stage::Parked;
                Ok(boxed(
                    poll_body(move |cx, _start| -> Stepped {
                        if let Stage::Parked = stage {
                            let opened = go.poll_open(cx);
                            if opened.is_pending() && !announced {
                                // Only now is the waker registered.
                                announced = true;
                                let _ = report.send(HandOver::Parked);
                            }
                            ready_or_park!(opened);
                            let Some(upgrade) = upgrade.as_ref() else {
                                stage = Stage::Done;
                                let _ = report.send(HandOver::Missing);
                                return finished();
                            };
                            match upgrade.accept(probe_fields()) {
                                Ok(upgraded) => stage = Stage::Waiting(upgraded),
                                Err(error) => {
                                    stage = Stage::Done;
                                    let _ = report.send(HandOver::Refused(error.to_string()));
                                    return Err(error.into());
                                }
                            }
                        }
                        let Stage::Waiting(upgraded) = &mut stage else {
                            return finished();
                        };
                        let resolved = ready_or_park!(Pin::new(upgraded).poll(cx));
                        stage = Stage::Done;
                        match resolved {
                            Ok(_stream) => {
                                let _ = report.send(HandOver::Resolved);
                                finished()
                            }
                            Err(error) => {
                                let _ = report.send(HandOver::Failed(error.to_string()));
                                Err(error.into())
                            }
                        }
                    })
                    .on_drop(move || {
                        let _ = dropped.send(HandOver::Dropped);
                    }),
                ))
            },
        )
    };
    let session = Session::start(server, app, MAIN)?;
    let judged = reset_before_the_101(&session, &go, &reports);
    // Released on every path, so that the body never waits past the case.
    go.open();
    session.stop()?;
    judged
}

/// Sends a plain request and an upgrade request pipelined, resets the
/// connection while the upgrade's body is parked before `accept`, lets the
/// body accept, and judges what `Upgraded` resolved to.
fn reset_before_the_101(
    session: &Session,
    go: &Latch,
    reports: &Receiver<HandOver>,
) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-UPGRADE-9";
    /// Time for the reset to reach the server's socket over the loopback
    /// interface: a margin before the go-ahead, not a judged time.
    const SETTLE: Duration = Duration::from_millis(100);
    let socket = |error: std::io::Error| fail(MAIN, format!("the client's socket failed: {error}"));
    let mut client = TcpStream::connect_timeout(&session.addr(), BOUND).map_err(socket)?;
    client.set_read_timeout(Some(BOUND)).map_err(socket)?;
    client.set_write_timeout(Some(BOUND)).map_err(socket)?;
    let mut pipelined = Request::get("/first").to_bytes();
    pipelined.extend_from_slice(&asking("/upgrade", "x-echo").to_bytes());
    client.write_all(&pipelined).map_err(socket)?;
    // The response to GET /first stays unread: closing a socket with
    // unread data resets the connection instead of closing it gently.
    let mut peeked = [0_u8; 16];
    match client.peek(&mut peeked) {
        Ok(count) if count > 0 => {}
        Ok(_) => {
            return Err(fail(
                MAIN,
                "the server closed the connection after GET /first",
            ));
        }
        Err(error) => {
            return Err(fail(
                MAIN,
                format!(
                    "the response to GET /first, pipelined before the upgrade request, never arrived: {error}"
                ),
            ));
        }
    }
    match recv(
        reports,
        MAIN,
        "the first poll of the upgrade request's body",
    )? {
        HandOver::Parked => {}
        other => {
            return Err(fail(
                MAIN,
                format!("the upgrade request's body reported {other:?} before it was released"),
            ));
        }
    }
    drop(client);
    thread::sleep(SETTLE);
    go.open();
    let deadline = Instant::now() + BOUND;
    let mut failed: Option<String> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(event) = reports.recv_timeout(left) else {
            let reason = match &failed {
                Some(failure) => format!(
                    "the client reset the connection before the body accepted the upgrade, and \
                     {failure}, but the body was not dropped within {BOUND:?}: a failed \
                     hand-over is handled as a disconnect"
                ),
                None => format!(
                    "the client reset the connection before the body accepted the upgrade, and \
                     Upgraded had not resolved {BOUND:?} after the body was released: it must \
                     resolve to a typed UpgradeError"
                ),
            };
            return Err(fail(MAIN, reason));
        };
        match event {
            HandOver::Missing => return Err(fail("RGIA-UPGRADE-1", MISSING)),
            HandOver::Resolved => {
                return Err(fail(
                    MAIN,
                    "the client reset the connection before the body accepted the upgrade, yet \
                     Upgraded resolved to a stream: a hand-over that fails before the 101 is \
                     sent resolves to a typed UpgradeError",
                ));
            }
            HandOver::Refused(error) => failed = Some(format!("accept failed with {error}")),
            HandOver::Failed(error) => {
                failed = Some(format!("Upgraded resolved to the error {error}"));
            }
            // Dropped before accepting, or after a typed failure: handled
            // as a disconnect, as the clause asks.
            HandOver::Dropped => return Ok(()),
            HandOver::Parked => {}
        }
    }
}
