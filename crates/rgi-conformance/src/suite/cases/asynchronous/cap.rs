//! Capabilities (spec/rgi-async.md §4, CAP; §16, VER).

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;

use bytes::Bytes;
use http::StatusCode;
use rgi::{BoxError, Environ, SpecVersion, StartResponse};
use rgi_async::Capabilities;

use super::support::{
    AnyBody, BOUND, Session, boxed, fail, future_body, poll_for, recv, text_body,
};
use crate::Check;
use crate::suite::wire::Request;
use crate::suite::{Case, Failure, Needs, Probe, ServerUnderTest};

/// `RGIA-CAP-1`: every request carries one `Capabilities` value.
pub(super) const ONE_CAPABILITY_SET_PER_REQUEST: Case = Case::new(
    Check::new(
        "rgia_cap_1_one_capability_set_per_request",
        &["RGIA-CAP-1", "RGIA-CAP-3", "RGIA-VER-1"],
        "every request to an asynchronous application, pipelined or not, carries a Capabilities \
         value of an RGI-async 1.x version whose offload works",
    ),
    Needs::Asynchronous,
    one_capability_set_per_request,
);

/// `RGIA-CAP-2`: only asynchronous servers insert capabilities.
pub(super) const NO_CAPABILITIES_FROM_A_SYNCHRONOUS_SERVER: Case = Case::new(
    Check::new(
        "rgia_cap_2_no_capabilities_from_a_synchronous_server",
        &["RGIA-CAP-2", "RGIA-CAP-3"],
        "a synchronous server gives a synchronous application no Capabilities; where an \
         asynchronous server gives it some, their offload works",
    ),
    Needs::Nothing,
    no_capabilities_from_a_synchronous_server,
);

/// What one call of the application saw.
struct Seen {
    path: String,
    version: Option<SpecVersion>,
}

fn one_capability_set_per_request(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-CAP-1";
    let (report, reports) = mpsc::channel();
    let app = rgi_async::from_fn(
        move |environ: Environ, _start: &mut StartResponse<'_>| -> Result<AnyBody, BoxError> {
            let capabilities = Capabilities::of(&environ);
            let _ = report.send(Seen {
                path: environ.uri().path().to_owned(),
                version: capabilities.map(Capabilities::spec_version),
            });
            let Some(capabilities) = capabilities else {
                return Ok(boxed(text_body("no capabilities")));
            };
            let job = capabilities.offload().run(|| 6 * 7);
            Ok(boxed(future_body(async move {
                match job.await {
                    Ok(value) => format!("offload:{value}"),
                    Err(error) => format!("offload failed: {error}"),
                }
            })))
        },
    );
    let session = Session::start(server, app, MAIN)?;
    let mut conn = session.connect()?;
    let pipelined = [
        Request::get("/one").to_bytes(),
        Request::get("/two").to_bytes(),
    ]
    .concat();
    conn.send(&pipelined).map_err(super::support::wire(
        MAIN,
        "sending GET /one and GET /two pipelined",
    ))?;
    let mut answers = Vec::new();
    for path in ["/one", "/two"] {
        let response = conn.read_response("GET").map_err(super::support::wire(
            MAIN,
            format!("reading the response to GET {path}"),
        ))?;
        answers.push((path, response));
    }
    answers.push(("/three", session.exchange(&Request::get("/three"), "GET")?));
    session.stop()?;

    for _ in 0..answers.len() {
        let seen = recv(&reports, MAIN, "a call of the application")?;
        let Some(version) = seen.version else {
            return Err(fail(
                MAIN,
                format!(
                    "GET {}: Capabilities::of(&environ) returned None in AsyncApplication::call",
                    seen.path
                ),
            ));
        };
        if version.major != rgi_async::SPEC_VERSION.major {
            return Err(fail(
                "RGIA-VER-1",
                format!(
                    "GET {}: Capabilities::spec_version() is {version}; the suite judges \
                     RGI-async {}.x",
                    seen.path,
                    rgi_async::SPEC_VERSION.major
                ),
            ));
        }
    }
    for (path, response) in answers {
        let body = response.body.data;
        if body != b"offload:42" {
            return Err(fail(
                "RGIA-CAP-3",
                format!(
                    "GET {path}: status {}, body {}; the probe offloaded 6 * 7 and expected \
                     \"offload:42\"",
                    response.head.status,
                    super::support::shown(&body)
                ),
            ));
        }
    }
    Ok(())
}

fn no_capabilities_from_a_synchronous_server(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const MAIN: &str = "RGIA-CAP-2";
    // A synchronous application may block: it waits for the offload job
    // here, bounded, on the server's thread.
    let probe = Probe::sync(rgi::from_fn(|environ: Environ, start| {
        let answer = match Capabilities::of(&environ) {
            None => String::from("absent"),
            Some(capabilities) => {
                let mut job = capabilities.offload().run(|| 6 * 7);
                match poll_for(BOUND, |cx| Pin::new(&mut job).poll(cx)) {
                    Some(Ok(value)) => format!("present, offload:{value}"),
                    Some(Err(error)) => format!("present, offload failed: {error}"),
                    None => format!("present, offload gave no answer within {BOUND:?}"),
                }
            }
        };
        start.start(StatusCode::OK)?;
        Ok(Bytes::from(answer))
    }));
    let session = Session::with_probe(server, probe, MAIN)?;
    let response = session.exchange(&Request::get("/"), "GET")?;
    session.stop()?;
    let answer = response.body.data.as_slice();
    match (server.claims().asynchronous, answer) {
        (_, b"absent") | (true, b"present, offload:42") => Ok(()),
        (false, _) if answer.starts_with(b"present") => Err(fail(
            MAIN,
            "a server that does not claim asynchronous applications put a Capabilities value \
             in the environ of a synchronous application",
        )),
        (true, _) if answer.starts_with(b"present") => Err(fail(
            "RGIA-CAP-3",
            format!(
                "a synchronous application found Capabilities whose offload does not work: {}",
                super::support::shown(answer)
            ),
        )),
        (_, other) => Err(fail(
            MAIN,
            format!(
                "the probe's answer was status {} with body {}",
                response.head.status,
                super::support::shown(other)
            ),
        )),
    }
}
