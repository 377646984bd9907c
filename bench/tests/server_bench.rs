//! The server benchmark's harness: the arithmetic it reports with, the
//! `/proc` parsing it measures with, the open-loop generator's freedom from
//! coordinated omission, the pipelined answers' parser, and the child
//! protocol end to end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use rgi_bench::alloc_count::{AllocCounts, CountingAlloc};
use rgi_bench::apps::HELLO_BODY;
use rgi_bench::child::{parse_callgrind_total, parse_listening};
use rgi_bench::server_bench::client::{Clients, HelloAnswers, ResponseError, raw_requests};
use rgi_bench::server_bench::procfs::{parse_cpu_ticks, parse_open_files_limit, parse_status};
use rgi_bench::server_bench::report::{Row, Target, Verdict, write_rows};
use rgi_bench::server_bench::runner::TargetChild;
use rgi_bench::server_bench::stats::{Latencies, Schedule, median, percentile};
use rgi_bench::server_bench::target::{
    App, Implementation, Repeat, STREAM_CHUNK, Settings, TargetStats, Without,
};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc::new();

#[test]
fn percentiles_use_the_nearest_rank() {
    let values: Vec<u64> = (1..=100).collect();
    assert_eq!(percentile(&values, 99.0), Some(99));
    assert_eq!(percentile(&values, 50.0), Some(50));
    assert_eq!(percentile(&values, 100.0), Some(100));
    assert_eq!(percentile(&values, 0.0), Some(1));
    // 99.5 % of 100 values: rank 99.5 rounds up to the 100th.
    assert_eq!(percentile(&values, 99.5), Some(100));
    // Ten values: p99 is the largest, p90 the ninth.
    let ten: Vec<u64> = (10..20).collect();
    assert_eq!(percentile(&ten, 99.0), Some(19));
    assert_eq!(percentile(&ten, 90.0), Some(18));
    assert_eq!(percentile(&[7], 99.0), Some(7));
    assert_eq!(percentile(&[], 99.0), None);
    // Out-of-range percentiles are clamped.
    assert_eq!(percentile(&ten, 250.0), Some(19));
    assert_eq!(percentile(&ten, -3.0), Some(10));
}

#[test]
fn latencies_sort_before_taking_percentiles() {
    let latencies = Latencies::new(vec![5_000, 1_000, 3_000, 2_000, 4_000]);
    assert_eq!(latencies.count(), 5);
    assert_eq!(latencies.micros(100.0), Some(5.0));
    assert_eq!(latencies.micros(20.0), Some(1.0));
    assert_eq!(latencies.micros(50.0), Some(3.0));
}

#[test]
fn medians_of_odd_and_even_counts() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(median(&[1.07]), Some(1.07));
    assert_eq!(median(&[]), None);
}

#[test]
fn the_schedule_spaces_requests_by_the_rate() {
    let schedule = Schedule::new(4_000.0, Duration::from_secs(2));
    assert_eq!(schedule.requests(), 8_000);
    assert_eq!(schedule.due(0), Duration::ZERO);
    assert_eq!(schedule.due(1), Duration::from_micros(250));
    assert_eq!(schedule.due(4_000), Duration::from_secs(1));
    // Computed from the index: no drift after many requests at a rate
    // whose interval is not a whole number of nanoseconds.
    let thirds = Schedule::new(3_000.0, Duration::from_secs(10));
    assert_eq!(thirds.requests(), 30_000);
    assert_eq!(thirds.due(29_999 + 1), Duration::from_secs(10));
    assert_eq!(thirds.due(3), Duration::from_millis(1));
    // A rate below one per second is one per second; at least one request.
    let slow = Schedule::new(0.0, Duration::from_millis(10));
    assert_eq!(slow.requests(), 1);
    assert_eq!(slow.due(1), Duration::from_secs(1));
}

#[test]
fn latency_counts_from_the_due_time() {
    let due = Duration::from_millis(10);
    // Sent late because the connection was busy, answered at 35 ms: the
    // latency is 25 ms, not the time since it was actually sent.
    assert_eq!(
        Schedule::latency(due, Duration::from_millis(35)),
        Duration::from_millis(25)
    );
    assert_eq!(
        Schedule::latency(due, Duration::from_millis(5)),
        Duration::ZERO
    );
}

const STAT: &str = "4242 (rgi bench) (x) S 1 4242 4242 0 -1 4194560 2810 0 0 0 \
                    137 58 0 0 20 0 3 0 123456 23456789 1234 18446744073709551615 1 1 0 0 0 0 0 \
                    4096 0 0 0 0 17 1 0 0 0 0 0";

#[test]
fn cpu_ticks_are_utime_plus_stime_after_the_last_parenthesis() {
    // The name holds spaces and parentheses; utime 137, stime 58.
    assert_eq!(parse_cpu_ticks(STAT).unwrap(), 195);
    assert!(parse_cpu_ticks("4242 (cut").is_err());
    assert!(parse_cpu_ticks("4242 (x) S 1 2").is_err());
}

const STATUS: &str = "Name:\trgi-bench\nUmask:\t0022\nState:\tS (sleeping)\n\
                      VmPeak:\t  123456 kB\nVmRSS:\t    8812 kB\nThreads:\t3\n\
                      voluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";

#[test]
fn status_fields_are_read_by_name() {
    let status = parse_status(STATUS).unwrap();
    assert_eq!(status.rss_kib, 8_812);
    assert_eq!(status.threads, 3);
    assert_eq!(status.voluntary_switches, 120);
    assert_eq!(status.involuntary_switches, 7);
    assert_eq!(status.switches(), 127);
    // VmPeak is not VmRSS, nonvoluntary is not voluntary.
    let without_switches = "VmRSS:\t1 kB\nnonvoluntary_ctxt_switches:\t7\n";
    assert!(parse_status(without_switches).is_err());
}

#[test]
fn the_open_files_limit_is_the_soft_one() {
    let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                  Max processes             63704                63704                processes \n\
                  Max open files            1024                 524288               files     \n";
    assert_eq!(parse_open_files_limit(limits).unwrap(), Some(1_024));
    let unlimited = "Max open files            unlimited            unlimited            files\n";
    assert_eq!(parse_open_files_limit(unlimited).unwrap(), None);
    assert!(parse_open_files_limit("Max processes 1 1 processes\n").is_err());
}

#[test]
fn live_bytes_follow_allocations_and_frees() {
    let before = ALLOCATOR.live_bytes();
    let block = vec![7_u8; 4 << 20];
    let during = ALLOCATOR.live_bytes();
    // Other test threads allocate too, but not 4 MiB at once.
    assert!(
        during >= before + (4 << 20) - (1 << 20),
        "{before} -> {during}"
    );
    drop(std::hint::black_box(block));
    assert!(ALLOCATOR.live_bytes() < during - (3 << 20));
}

#[test]
fn stats_lines_parse_back() {
    let stats = TargetStats {
        allocations: AllocCounts {
            allocations: 12,
            reallocations: 3,
            bytes: 4_096,
        },
        live_bytes: 1_000_000,
        parked: 9_999,
    };
    assert_eq!(TargetStats::parse(&stats.line()), Some(stats));
    assert_eq!(TargetStats::parse("listening 127.0.0.1:80"), None);
    assert_eq!(TargetStats::parse("stats allocations=1"), None);
    assert_eq!(
        parse_listening("listening 127.0.0.1:8080"),
        Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
    );
    assert_eq!(parse_listening("served 1"), None);
}

#[test]
fn callgrind_totals_come_from_the_summary_line() {
    let out = "version: 1\ncmd: x\nevents: Ir\nfn=main\n1 5\nsummary: 123456789\n";
    assert_eq!(parse_callgrind_total(out), Some(123_456_789));
    assert_eq!(parse_callgrind_total("events: Ir\ntotals: 42\n"), Some(42));
    assert_eq!(parse_callgrind_total("events: Ir\n"), None);
}

fn answer(extra: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n{extra}Content-Length: 13\r\n\r\nHello, world!"
    )
}

#[test]
fn pipelined_answers_are_counted_across_any_split() {
    let stream = format!("{}{}{}", answer(""), answer("date: x\r\n"), answer(""));
    let bytes = stream.as_bytes();
    for split in 0..bytes.len() {
        let mut answers = HelloAnswers::new();
        let first = answers.feed(&bytes[..split]).unwrap();
        let second = answers.feed(&bytes[split..]).unwrap();
        assert_eq!(first + second, 3, "split at {split}");
    }
    let mut answers = HelloAnswers::new();
    let not_found = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
    assert!(matches!(
        answers.feed(not_found.as_bytes()),
        Err(ResponseError::Status(_))
    ));
    let mut answers = HelloAnswers::new();
    let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    assert_eq!(answers.feed(chunked.as_bytes()), Err(ResponseError::Length));
    let mut answers = HelloAnswers::new();
    let wrong = "HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nHello, World?";
    assert!(matches!(
        answers.feed(wrong.as_bytes()),
        Err(ResponseError::Body(_))
    ));
    let request = raw_requests(SocketAddr::from(([127, 0, 0, 1], 9)), "/hello", 2);
    assert_eq!(
        request,
        b"GET /hello HTTP/1.1\r\nhost: 127.0.0.1:9\r\n\r\nGET /hello HTTP/1.1\r\nhost: 127.0.0.1:9\r\n\r\n"
    );
}

#[test]
fn the_streamed_body_is_exact_and_static() {
    let length = 3 * STREAM_CHUNK as u64 + 5;
    let mut body = Repeat::new(length);
    assert_eq!(body.size_hint().exact(), Some(length));
    let mut total = 0;
    let mut chunks = 0;
    while let Some(chunk) = body.next_chunk() {
        total += chunk.len() as u64;
        chunks += 1;
    }
    assert_eq!((total, chunks), (length, 4));
    assert!(body.is_end_stream());
    assert!(Repeat::new(0).is_end_stream());
}

#[test]
fn verdicts_follow_their_targets() {
    assert_eq!(
        Target::Ratio(1.10).judge(Some(5.0), Some(1.10)),
        Verdict::Met
    );
    assert_eq!(
        Target::Ratio(1.10).judge(Some(5.0), Some(1.11)),
        Verdict::Missed
    );
    assert_eq!(
        Target::AtMost(24.0).judge(Some(25.0), None),
        Verdict::Missed
    );
    assert_eq!(
        Target::RatioAndAtMost(1.1, 24.0).judge(Some(20.0), Some(1.2)),
        Verdict::Missed
    );
    assert_eq!(
        Target::RatioAndAtMost(1.1, 24.0).judge(Some(20.0), Some(1.0)),
        Verdict::Met
    );
    assert_eq!(Target::Ratio(1.1).judge(None, None), Verdict::NotJudged);
    assert_eq!(
        Target::Report.judge(Some(1.0), Some(9.0)),
        Verdict::NotJudged
    );
    let row = Row {
        scenario: "async hello, 64 conns".to_owned(),
        metric: "CPU us/req".to_owned(),
        unit: "us",
        baseline: Some(20.0),
        candidate: Some(23.0),
        ratio: Some(1.15),
        target: Target::Ratio(1.10),
    };
    assert_eq!(row.verdict(), Verdict::Missed);
    let mut text = String::new();
    write_rows(&mut text, &[row], "hyper", "rgi");
    let line = text.lines().nth(1).unwrap();
    assert!(line.contains("20.0") && line.contains("23.0") && line.contains("1.150"));
    assert!(
        line.contains("<= 1.10x") && line.ends_with("MISSED"),
        "{line}"
    );
}

/// A server whose first answer takes 100 ms and every other one none, on
/// one connection.
fn stalling_server() -> SocketAddr {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let answered = Arc::new(AtomicU64::new(0));
            let service = hyper::service::service_fn(move |_request: Request<Incoming>| {
                let answered = Arc::clone(&answered);
                async move {
                    if answered.fetch_add(1, Ordering::Relaxed) == 0 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(HELLO_BODY))))
                }
            });
            let serving = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(20), serving).await;
        });
    });
    receiver.recv_timeout(Duration::from_secs(10)).unwrap()
}

#[test]
fn the_open_loop_charges_a_stall_to_every_request_behind_it() {
    let addr = stalling_server();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let latencies = runtime.block_on(async {
        let mut clients = Clients::connect(addr, 1).await.unwrap();
        // 200 per second for 1 s: 20 requests fall due while the first
        // one stalls for 100 ms on the only connection.
        let schedule = Schedule::new(200.0, Duration::from_secs(1));
        clients
            .open("/hello", schedule, Duration::from_secs(20))
            .await
            .unwrap()
    });
    assert_eq!(latencies.count(), 200);
    // A closed loop would record one slow request; counting from the due
    // time, every request that fell due during the stall waited for it:
    // request k (due at 5k ms) waits about 100 - 5k ms, so 18 or more wait
    // 10 ms or more, and p95 (the 190th of 200) is one of them.
    assert!(latencies.micros(95.0).unwrap() >= 10_000.0, "{latencies:?}");
    // The first requests carry most of the stall.
    assert!(latencies.micros(99.0).unwrap() >= 80_000.0, "{latencies:?}");
    // And the schedule is kept: once the stall is over the backlog drains
    // and later requests are fast, so the median is far below the stall.
    assert!(latencies.micros(50.0).unwrap() < 10_000.0, "{latencies:?}");
}

#[test]
fn every_target_answers_stats_and_counts_closed_loop_requests() {
    for implementation in Implementation::ALL.iter().copied() {
        for app in [App::HelloAsync, App::HelloSync, App::Blocking, App::Mixed] {
            closed_loop_through_a_child(implementation, app);
        }
    }
}

fn closed_loop_through_a_child(implementation: Implementation, app: App) {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_rgi-bench"));
    let settings = Settings {
        pool: 8,
        ..Settings::DEFAULT
    };
    let mut child = TargetChild::start(exe, implementation, app, settings, None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut clients = runtime.block_on(Clients::connect(child.addr(), 4)).unwrap();
    let before = child.snapshot().unwrap();
    let run = runtime
        .block_on(clients.closed("/hello", 200, Duration::from_secs(20)))
        .unwrap();
    let after = child.snapshot().unwrap();
    assert_eq!(run.requests, 200, "{implementation:?} {app:?}");
    // 200 requests allocate (each request's header map at least).
    let allocations = after.stats.allocations.since(before.stats.allocations);
    assert!(
        allocations.allocations >= 200,
        "{implementation:?} {app:?}: {allocations:?}"
    );
    assert!(after.sample.cpu_ticks >= before.sample.cpu_ticks);
    assert!(
        after.sample.threads >= 2,
        "a runtime worker and the control thread"
    );
    drop(clients);
    let (last, instructions) = child.finish().unwrap();
    assert_eq!(instructions, None);
    assert!(last.allocations.allocations >= after.stats.allocations.allocations);
}

#[test]
fn pipelined_requests_are_answered_by_every_target() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_rgi-bench"));
    let settings = Settings {
        pipeline_flush: true,
        ..Settings::DEFAULT
    };
    for implementation in Implementation::ALL.iter().copied() {
        let child =
            TargetChild::start(exe, implementation, App::HelloAsync, settings, None).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // 100 requests in batches of 16 on 2 connections: 7 batches, 112.
        let run = runtime
            .block_on(rgi_bench::server_bench::client::pipelined(
                child.addr(),
                2,
                16,
                100,
                Duration::from_secs(20),
            ))
            .unwrap();
        assert_eq!(run.requests, 112, "{implementation:?}");
        child.finish().unwrap();
    }
}

#[test]
fn parked_requests_are_counted_by_every_target() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_rgi-bench"));
    for implementation in Implementation::ALL.iter().copied() {
        let mut child =
            TargetChild::start(exe, implementation, App::Park, Settings::DEFAULT, None).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let held = runtime
            .block_on(rgi_bench::server_bench::client::park_http1(
                child.addr(),
                3,
                "/hello",
                Duration::from_secs(10),
            ))
            .unwrap();
        let mut parked = 0;
        for _ in 0..100 {
            parked = child.snapshot().unwrap().stats.parked;
            if parked == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(parked, 3, "{implementation:?}");
        drop(held);
        child.finish().unwrap();
    }
}

#[test]
fn slow_readers_read_the_stream_from_every_target() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_rgi-bench"));
    for implementation in Implementation::ALL.iter().copied() {
        let child =
            TargetChild::start(exe, implementation, App::Stream, Settings::DEFAULT, None).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let run = runtime
            .block_on(rgi_bench::server_bench::client::slow_readers(
                child.addr(),
                2,
                "/stream",
                4_096,
                Duration::from_millis(10),
                Duration::from_millis(300),
            ))
            .unwrap();
        // Each client read about 30 times 4 KiB; at least the heads and a
        // few chunks arrived.
        assert!(run.bytes > 2 * 4_096, "{implementation:?}: {run:?}");
        child.finish().unwrap();
    }
}

#[test]
fn slow_http2_streams_read_from_every_target() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_rgi-bench"));
    for implementation in Implementation::ALL.iter().copied() {
        let child =
            TargetChild::start(exe, implementation, App::Stream, Settings::DEFAULT, None).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let run = runtime
            .block_on(rgi_bench::server_bench::client::slow_readers_http2(
                child.addr(),
                3,
                "/stream",
                Duration::from_millis(10),
                Duration::from_millis(300),
            ))
            .unwrap();
        assert!(run.bytes > 0, "{implementation:?}: {run:?}");
        child.finish().unwrap();
    }
}

#[test]
fn features_off_are_named_for_the_server() {
    assert_eq!(Without::NOTHING.list(), "");
    let all = Without {
        tracing: true,
        counters: true,
        limits: true,
    };
    assert_eq!(all.list(), "tracing,counters,limits");
    let counters = Without {
        counters: true,
        ..Without::NOTHING
    };
    assert_eq!(counters.list(), "counters");
}

#[test]
fn rgi_server_answers_with_its_features_off() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_rgi-bench"));
    let settings = Settings {
        without: Without {
            tracing: true,
            counters: true,
            limits: true,
        },
        ..Settings::DEFAULT
    };
    let child =
        TargetChild::start(exe, Implementation::Rgi, App::HelloAsync, settings, None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut clients = runtime.block_on(Clients::connect(child.addr(), 2)).unwrap();
    let run = runtime
        .block_on(clients.closed("/hello", 20, Duration::from_secs(20)))
        .unwrap();
    assert_eq!(run.requests, 20);
    drop(clients);
    child.finish().unwrap();
}
