//! Property tests over a real socket: arbitrary bytes, and valid requests
//! with random damage, thrown at the server. Whatever arrives, the server
//! answers only with well-formed responses of the statuses its parser can
//! give, closes after every refusal, never serves a request smuggled
//! behind a refused one, and keeps serving other clients.
// A failed unwrap in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use proptest::prelude::*;
use rgi_conformance::suite::garbled::{Damage, Recorder, check_arbitrary, check_damaged};
use rgi_simple_server::{Limits, Server};

use common::start_with;

fn server(recorder: &Recorder) -> Server {
    let limits = Limits::default()
        .with_max_body(4096)
        .with_head_timeout(Duration::from_millis(500))
        .with_idle_timeout(Duration::from_millis(500))
        .with_body_timeout(Duration::from_millis(500));
    start_with(recorder.clone(), limits)
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
        let result = check_arbitrary(server.tcp_addr().unwrap(), &bytes);
        server.shutdown(Duration::from_secs(1));
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
        let result = check_damaged(server.tcp_addr().unwrap(), &recorder, chunked, &body, &changes);
        server.shutdown(Duration::from_secs(1));
        result.map_err(|error| TestCaseError::fail(error.to_string()))?;
    }
}
