//! D7 (RGIA-VER-4): the enums an application matches on are
//! non-exhaustive, so a downstream match needs a wildcard arm, and that arm
//! is not an `unreachable_patterns` warning. This file is such a downstream
//! crate: under `deny(warnings)` it would not compile if any of these enums
//! lost `#[non_exhaustive]` (the wildcard arms would be unreachable), and
//! the `compile_fail` example on `Step` proves the converse (a match
//! without the wildcard is refused).
#![deny(warnings)]

use bytes::Bytes;
use rgi_async::{Step, SyncSwitch};

fn describe_step(step: &Step) -> &'static str {
    match step {
        Step::Chunk(chunk) if chunk.is_empty() => "yield",
        Step::Chunk(_) => "chunk",
        Step::Switch(_) => "switch",
        _ => "a step of a later version",
    }
}

#[test]
fn d7_step_is_matched_with_a_wildcard_arm() {
    assert_eq!(describe_step(&Step::Chunk(Bytes::new())), "yield");
    assert_eq!(
        describe_step(&Step::from(Bytes::from_static(b"x"))),
        "chunk"
    );
    let switch = Step::Switch(SyncSwitch::new(|_start| Ok(rgi::Empty)));
    assert_eq!(describe_step(&switch), "switch");
}

#[cfg(any(unix, windows))]
mod readiness {
    use rgi_async::{Ready, WaitAnyOutcome, WaitOutcome};

    fn describe_wait(outcome: WaitOutcome) -> String {
        match outcome {
            WaitOutcome::Ready(ready) => format!("ready readable={}", ready.is_readable()),
            WaitOutcome::TimedOut => "timed out".to_owned(),
            _ => "an outcome of a later version".to_owned(),
        }
    }

    fn describe_wait_any(outcome: &WaitAnyOutcome) -> String {
        match outcome {
            WaitAnyOutcome::Ready(list) => format!("{} ready", list.len()),
            WaitAnyOutcome::TimedOut => "timed out".to_owned(),
            _ => "an outcome of a later version".to_owned(),
        }
    }

    #[test]
    fn d7_wait_outcomes_are_matched_with_a_wildcard_arm() {
        assert_eq!(
            describe_wait(WaitOutcome::Ready(Ready::READABLE)),
            "ready readable=true"
        );
        assert_eq!(describe_wait(WaitOutcome::TimedOut), "timed out");
        let any = WaitAnyOutcome::Ready(vec![(0, Ready::WRITABLE), (3, Ready::READABLE)]);
        assert_eq!(describe_wait_any(&any), "2 ready");
        assert_eq!(describe_wait_any(&WaitAnyOutcome::TimedOut), "timed out");
    }
}
