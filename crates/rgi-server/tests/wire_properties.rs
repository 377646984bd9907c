//! Property tests over a real socket: arbitrary bytes, and valid requests
//! with random damage, thrown at `rgi-server` over HTTP/1.1. Whatever
//! arrives, the server answers only with well-formed responses of the
//! statuses it and hyper give, closes after every refusal, never serves a
//! request smuggled behind a refused one, and keeps serving other clients.
// A failed unwrap in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use proptest::prelude::*;
use rgi_conformance::suite::garbled::{
    Damage, Recorder, STATUSES, check_arbitrary, check_damaged, judge,
};
use rgi_server::{Limits, Server};

fn server(recorder: &Recorder) -> Server {
    Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(1)
        .handle_signals(false)
        .limits(Limits::default().header_read_timeout(Duration::from_millis(500)))
        .serve_sync(recorder.clone())
        .expect("the server starts")
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Replace(at, byte)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Insert(at, byte)),
        any::<usize>().prop_map(Damage::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Bytes of any kind: well-formed answers only, and a server that goes
    /// on serving.
    #[test]
    fn arbitrary_bytes_get_well_formed_answers(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let server = server(&Recorder::new());
        let result = check_arbitrary(server.local_addr().unwrap(), &bytes);
        server.shutdown();
        result.map_err(|error| TestCaseError::fail(error.to_string()))?;
    }

    /// A damaged request followed by a second one in the same write: if the
    /// first is refused, the second is never served.
    #[test]
    fn nothing_is_smuggled_behind_a_damaged_request(
        chunked in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        changes in proptest::collection::vec(damage_strategy(), 1..4),
    ) {
        let recorder = Recorder::new();
        let server = server(&recorder);
        let result = check_damaged(server.local_addr().unwrap(), &recorder, chunked, &body, &changes);
        server.shutdown();
        result.map_err(|error| TestCaseError::fail(error.to_string()))?;
    }
}

/// A client that ends its sending side right after its request (`nc -N`, a
/// test harness's `shutdown(SHUT_WR)`) still gets the answer, which the
/// application produces on a pool thread after the end of input arrived.
#[test]
fn a_client_that_half_closes_gets_its_answer() {
    let recorder = Recorder::new();
    let server = server(&recorder);
    let addr = server.local_addr().unwrap();
    for request in [
        &b"GET /half HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[..],
        b"POST /half HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /half HTTP/1.0\r\n\r\n",
    ] {
        let answers = judge(addr, request, &STATUSES).unwrap();
        assert_eq!(
            answers
                .iter()
                .map(|answer| answer.status)
                .collect::<Vec<_>>(),
            [200],
            "{}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(recorder.seen().len(), 3);
    server.shutdown();
}
