//! The rgi-tower benchmark's targets (bench/tower.sh): every implementation
//! answers the hello with the same bytes as bare hyper (`Date` aside), each
//! runs the child protocol a closed-loop run needs, and what an
//! implementation does not serve is refused rather than served otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use rgi_bench::server_bench::client::Clients;
use rgi_bench::server_bench::runner::{RunError, TargetChild};
use rgi_bench::server_bench::target::{App, Implementation, Settings};
use rgi_bench::server_bench::tower_report::COMPARISONS;

use common::{Answer, read_answer};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rgi-bench"))
}

const GETS: [&str; 3] = [
    "GET /hello HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
    "GET /elsewhere HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
    "GET /hello HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
];
const HEAD: &str = "HEAD /hello HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

/// The answers of `implementation` serving `app` to [`GETS`] then [`HEAD`]
/// on one keep-alive connection.
fn answers(implementation: Implementation, app: App) -> (Vec<Answer>, Answer) {
    let child = TargetChild::start(exe(), implementation, app, Settings::DEFAULT, None).unwrap();
    let stream = TcpStream::connect(child.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut gets = Vec::new();
    for request in GETS {
        writer.write_all(request.as_bytes()).unwrap();
        gets.push(read_answer(&mut reader, false));
    }
    writer.write_all(HEAD.as_bytes()).unwrap();
    let head = read_answer(&mut reader, true);
    drop(reader);
    drop(writer);
    child.finish().unwrap();
    (gets, head)
}

#[test]
fn every_implementation_answers_the_hello_with_bare_hypers_bytes() {
    let (bare, bare_head) = answers(Implementation::Hyper, App::HelloAsync);
    assert_eq!(
        bare[0].head,
        [
            "HTTP/1.1 200 OK",
            "content-type: text/plain",
            "content-length: 13"
        ]
    );
    assert_eq!(bare[0].body, b"Hello, world!");
    assert_eq!(
        bare[1].head,
        ["HTTP/1.1 404 Not Found", "content-length: 0"]
    );
    assert_eq!(bare[2], bare[0]);
    assert_eq!(bare_head.head, bare[0].head);
    let mut served = 0;
    for &implementation in Implementation::ALL.iter().chain(Implementation::TOWER) {
        for app in [App::HelloAsync, App::HelloSync] {
            if !implementation.serves(app) {
                continue;
            }
            served += 1;
            let (gets, head) = answers(implementation, app);
            assert_eq!(
                gets, bare,
                "{implementation:?} {app:?} differs from bare hyper"
            );
            // HEAD: axum, like bare hyper, declares the length of the body
            // it would send; an RGI application that declared none has no
            // Content-Length on its HEAD answer (RGI-BODY-15, RGI-CL-6).
            // The mounted router declared one, so it is kept.
            let mut expected = bare_head.head.clone();
            if matches!(implementation, Implementation::Rgi | Implementation::Bridge) {
                expected.retain(|line| line != "content-length: 13");
            }
            assert_eq!(head.head, expected, "{implementation:?} {app:?}: HEAD");
        }
    }
    // hyper, rgi and bridge twice each, axum and axum-in-rgi once.
    assert_eq!(served, 8);
}

#[test]
fn the_tower_targets_count_closed_loop_requests() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for &implementation in Implementation::TOWER {
        for app in [App::HelloAsync, App::HelloSync] {
            if !implementation.serves(app) {
                continue;
            }
            let mut child =
                TargetChild::start(exe(), implementation, app, Settings::DEFAULT, None).unwrap();
            let mut clients = runtime.block_on(Clients::connect(child.addr(), 4)).unwrap();
            let before = child.snapshot().unwrap();
            let run = runtime
                .block_on(clients.closed("/hello", 200, Duration::from_secs(20)))
                .unwrap();
            let after = child.snapshot().unwrap();
            assert_eq!(run.requests, 200, "{implementation:?} {app:?}");
            let allocations = after.stats.allocations.since(before.stats.allocations);
            assert!(
                allocations.allocations >= 200,
                "{implementation:?} {app:?}: {allocations:?}"
            );
            drop(clients);
            child.finish().unwrap();
        }
    }
}

#[test]
fn an_application_an_implementation_does_not_serve_is_refused() {
    for (implementation, app) in [
        (Implementation::Axum, App::HelloSync),
        (Implementation::AxumInRgi, App::HelloSync),
        (Implementation::Bridge, App::Park),
    ] {
        assert!(!implementation.serves(app));
        let started = TargetChild::start(exe(), implementation, app, Settings::DEFAULT, None);
        match started {
            Err(RunError::Child { message, .. }) => {
                assert!(message.contains("exited"), "{message}");
            }
            other => panic!("{implementation:?} {app:?} started: {other:?}"),
        }
    }
}

#[test]
fn implementations_parse_back_from_their_names() {
    for &implementation in Implementation::ALL.iter().chain(Implementation::TOWER) {
        assert_eq!(
            Implementation::parse(implementation.name()).unwrap(),
            implementation
        );
    }
    assert!(Implementation::parse("tower").is_err());
}

#[test]
fn every_comparison_is_served_by_both_sides() {
    for comparison in COMPARISONS {
        assert!(comparison.baseline.serves(comparison.app), "{comparison:?}");
        assert!(
            comparison.candidate.serves(comparison.app),
            "{comparison:?}"
        );
    }
    let judged = COMPARISONS.iter().filter(|c| c.judged).count();
    assert_eq!(judged, 6);
}
