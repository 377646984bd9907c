//! Property tests over a real socket: arbitrary bytes, and valid requests
//! with random damage, thrown at the server. Whatever arrives, the server
//! answers only with well-formed responses of the statuses its parser can
//! give, closes after every refusal, never serves a request smuggled
//! behind a refused one, and keeps serving other clients.
// A failed unwrap in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use proptest::prelude::*;
use rgi::{Environ, ResponseHead, StartResponse};
use rgi_conformance::suite::garbled::{Answer, Damage, damage, judge, valid_request};
use rgi_simple_server::{Limits, Server};

use common::start_with;

/// Reads the whole body (so body faults surface) and records each path.
fn recording_echo(seen: Arc<Mutex<Vec<String>>>) -> impl rgi::Application {
    rgi::from_fn(move |mut environ: Environ, start: &mut StartResponse<'_>| {
        seen.lock().unwrap().push(environ.raw_path().to_string());
        let body = environ.input_mut().read_to_bytes(1 << 16)?;
        start.start(ResponseHead::new(StatusCode::OK))?;
        Ok(body)
    })
}

fn server(seen: &Arc<Mutex<Vec<String>>>) -> Server {
    let limits = Limits::default()
        .with_max_body(4096)
        .with_head_timeout(Duration::from_millis(500))
        .with_idle_timeout(Duration::from_millis(500))
        .with_body_timeout(Duration::from_millis(500));
    start_with(recording_echo(Arc::clone(seen)), limits)
}

/// The statuses a request can get from the echo application behind this
/// server: its answer, or one of the refusals.
const EXPECTED: [u16; 12] = [200, 400, 408, 411, 413, 414, 417, 431, 500, 501, 503, 505];

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Replace(at, byte)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Insert(at, byte)),
        any::<usize>().prop_map(Damage::Remove),
    ]
}

fn judged(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<Answer>, TestCaseError> {
    judge(addr, bytes, &EXPECTED).map_err(|error| {
        TestCaseError::fail(format!(
            "{error} (sent {:?})",
            String::from_utf8_lossy(bytes)
        ))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Bytes of any kind: well-formed answers only, and a server that goes
    /// on serving.
    #[test]
    fn arbitrary_bytes_get_well_formed_answers(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = server(&seen);
        let addr = server.tcp_addr().unwrap();
        judged(addr, &bytes)?;
        let after = judged(addr, b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")?;
        prop_assert_eq!(after.first().map(|answer| answer.status), Some(200));
        server.shutdown(Duration::from_secs(1));
    }

    /// A damaged request followed by a second one in the same write: if the
    /// first is refused, the second is never served.
    #[test]
    fn nothing_is_smuggled_behind_a_damaged_request(
        chunked in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        changes in proptest::collection::vec(damage_strategy(), 1..4),
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = server(&seen);
        let addr = server.tcp_addr().unwrap();
        let mut request = valid_request(chunked, &body);
        damage(&mut request, &changes);
        request.extend_from_slice(b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
        let answers = judged(addr, &request)?;
        let refused = answers.first().is_none_or(|first| first.status >= 400);
        let served = seen.lock().unwrap().clone();
        if refused {
            prop_assert!(
                !served.iter().any(|path| path == "/smuggled"),
                "served behind a refusal: {:?} (request {:?})",
                served,
                String::from_utf8_lossy(&request)
            );
        }
        server.shutdown(Duration::from_secs(1));
    }
}
