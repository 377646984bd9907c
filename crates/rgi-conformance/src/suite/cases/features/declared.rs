//! What a server declares (`RGI-FEAT-1`): the `Features` in the environ
//! are the ones it claims, what it declares is deliverable where the
//! protocol allows it, and what it does not declare is not called.

use std::sync::mpsc::{self, Sender};

use bytes::Bytes;
use rgi::{Application, BoxError, Environ, Features, StartResponse, Startup};

use super::super::kit::{Counter, Served, WAIT, ensure, exchange, expect_status, head, recv};
use crate::suite::wire::Request;
use crate::suite::{Failure, ServerUnderTest};

/// What the probe saw of one request.
#[derive(Debug, Clone, Copy)]
struct Seen {
    features: Features,
    trailers: bool,
    hints: bool,
}

/// Reports every request's declaration and what is deliverable, and
/// counts the lifespan calls.
struct Declares {
    seen: Sender<Seen>,
    startups: Counter,
    shutdowns: Counter,
}

impl Application for Declares {
    type Body = Bytes;

    fn call(&self, environ: Environ, start: &mut StartResponse<'_>) -> Result<Bytes, BoxError> {
        let _ = self.seen.send(Seen {
            features: environ.features(),
            trailers: start.trailers_deliverable(),
            hints: start.early_hints_deliverable(),
        });
        start.start(head(200))?;
        Ok(Bytes::from_static(b"declared"))
    }

    fn startup(&self, _startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.startups.bump();
        Ok(())
    }

    fn shutdown(&self) {
        self.shutdowns.bump();
    }
}

feature_case!(
    rgi_feat_1_declared_features_match_the_claims
    needs Nothing
    ["RGI-FEAT-1", "RGI-TRAILER-7", "RGI-EARLY-3"]
    "the Features the environ declares are those the server claims; on HTTP/1.1 with TE: trailers what is declared is deliverable, on HTTP/1.0 nothing is; without lifespan declared, neither startup nor shutdown is called"
    => declared_features_match_the_claims
);

fn declared_features_match_the_claims(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FEAT-1";
    let claimed = server.claims().features;
    let (tx, seen) = mpsc::channel();
    let (startups, shutdowns) = (Counter::default(), Counter::default());
    let app = Declares {
        seen: tx,
        startups: startups.clone(),
        shutdowns: shutdowns.clone(),
    };
    let served = Served::start(server, app, CLAUSE)?;
    let mut conn = served.connect()?;
    let request = Request::get("/declared").header("te", "trailers");
    let response = exchange(&mut conn, &request, "GET", CLAUSE)?;
    expect_status(&response, 200, CLAUSE, "an HTTP/1.1 request")?;
    let http11 = recv(&seen, WAIT, CLAUSE, "the application was not called")?;
    ensure(http11.features == claimed, CLAUSE, || {
        format!(
            "the environ declares {:?}, the server claims {claimed:?}",
            http11.features
        )
    })?;
    ensure(
        http11.trailers == claimed.response_trailers(),
        if http11.trailers {
            CLAUSE
        } else {
            "RGI-TRAILER-7"
        },
        || {
            format!(
                "on HTTP/1.1 with TE: trailers, trailers_deliverable() is {} while the server {} response trailers",
                http11.trailers,
                if claimed.response_trailers() {
                    "declares"
                } else {
                    "does not declare"
                }
            )
        },
    )?;
    ensure(
        http11.hints == claimed.early_hints(),
        if http11.hints { CLAUSE } else { "RGI-EARLY-3" },
        || {
            format!(
                "on HTTP/1.1, early_hints_deliverable() is {} while the server {} early hints",
                http11.hints,
                if claimed.early_hints() {
                    "declares"
                } else {
                    "does not declare"
                }
            )
        },
    )?;
    let mut old = served.connect()?;
    let response = exchange(
        &mut old,
        &Request::get("/declared").http10().header("te", "trailers"),
        "GET",
        CLAUSE,
    )?;
    expect_status(&response, 200, CLAUSE, "an HTTP/1.0 request")?;
    let http10 = recv(&seen, WAIT, CLAUSE, "the application was not called")?;
    ensure(!http10.trailers, "RGI-TRAILER-7", || {
        "trailers_deliverable() is true on an HTTP/1.0 request, which can never carry trailers"
            .to_owned()
    })?;
    ensure(!http10.hints, "RGI-EARLY-3", || {
        "early_hints_deliverable() is true on an HTTP/1.0 request, which no 1xx response may reach"
            .to_owned()
    })?;
    served.stop()?;
    if !claimed.lifespan() {
        ensure(startups.get() == 0 && shutdowns.get() == 0, CLAUSE, || {
            format!(
                "the server does not declare lifespan, yet called startup {} time(s) and shutdown {} time(s)",
                startups.get(),
                shutdowns.get()
            )
        })?;
    }
    Ok(())
}
