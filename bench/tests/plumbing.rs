//! The report's plumbing: the server's summary line survives the trip
//! through a pipe, CPU time is readable, and the load generator refuses to
//! send anywhere but loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rgi_bench::alloc_count::AllocCounts;
use rgi_bench::load::{self, LoadError};
use rgi_bench::server::{self, Mode, ServeError, ServeSummary};

#[test]
fn the_summary_line_parses_back_to_itself() {
    let summary = ServeSummary {
        served: 4_000,
        allocations: AllocCounts {
            allocations: 16_123,
            reallocations: 9,
            bytes: 8_930_906,
        },
        cpu_ticks: 42,
    };
    assert_eq!(ServeSummary::parse(&summary.line()), Some(summary));
    assert_eq!(ServeSummary::parse("listening 127.0.0.1:1"), None);
    assert_eq!(ServeSummary::parse("served requests=x"), None);
}

#[test]
fn cpu_time_grows_with_work() {
    let before = server::cpu_ticks().unwrap();
    let mut spin = 0_u64;
    let deadline = std::time::Instant::now() + Duration::from_millis(120);
    while std::time::Instant::now() < deadline {
        spin = std::hint::black_box(spin.wrapping_add(1));
    }
    assert!(
        server::cpu_ticks().unwrap() > before,
        "120 ms of spinning is several ticks"
    );
}

#[test]
fn modes_parse_by_name_and_refuse_others() {
    for mode in Mode::ALL {
        assert_eq!(Mode::parse(mode.name()).unwrap(), mode);
    }
    assert!(matches!(Mode::parse("axum"), Err(ServeError::UnknownMode { name }) if name == "axum"));
}

#[test]
fn the_load_generator_sends_to_loopback_only() {
    let outside = "192.0.2.1:80".parse().unwrap();
    let refused = load::run(outside, 1, Duration::from_secs(1));
    assert!(matches!(refused, Err(LoadError::NotLoopback(addr)) if addr == outside));
}
