//! Out of descriptors (EMFILE), the accept loop waits instead of spinning,
//! and serves the waiting connections once descriptors are free again.
//!
//! Its own test binary: it lowers this process's descriptor limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use rgi_server::Server;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// This process's user plus system CPU time, from /proc (the file opened
/// beforehand: no descriptor is left to open it when it is read).
fn cpu_time(stat: &std::fs::File) -> Duration {
    use std::os::unix::fs::FileExt;
    let mut buffer = [0_u8; 4096];
    let read = stat.read_at(&mut buffer, 0).unwrap();
    let stat = String::from_utf8_lossy(&buffer[..read]);
    // Fields after the command name, which is in parentheses.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // Linux reports clock ticks of 1/100 s to user space.
    Duration::from_millis(ticks * 10)
}

fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_then_recovers() {
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .workers(1)
        .serve(factory())
        .expect("serve");
    let address = addr(&server);
    let original = getrlimit(Resource::Nofile);
    let stat = std::fs::File::open("/proc/self/stat").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A little headroom for the client's own sockets, then none.
    let limit = open_descriptors() + 8;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: original.maximum,
        },
    )
    .unwrap();
    let mut clients = Vec::new();
    runtime.block_on(async {
        // Connect until this process has no descriptor left: the last
        // connections sit in the backlog, and accepting them fails.
        for _ in 0..64 {
            match tokio::net::TcpStream::connect(address).await {
                Ok(stream) => clients.push(stream),
                Err(_) => break,
            }
        }
    });
    assert!(!clients.is_empty());
    let before = cpu_time(&stat);
    std::thread::sleep(Duration::from_millis(1_000));
    let spent = cpu_time(&stat) - before;
    setrlimit(Resource::Nofile, original).unwrap();
    // A spinning accept loop would burn the whole second on its worker.
    assert!(
        spent < Duration::from_millis(300),
        "{spent:?} of CPU in 1 s while out of descriptors"
    );

    // With descriptors back, the last connection (waiting in the backlog)
    // is accepted and served.
    let last = clients.pop().unwrap();
    let received = run(async move {
        let mut last = tokio::net::TcpStream::from_std(last.into_std().unwrap()).unwrap();
        use tokio::io::AsyncWriteExt;
        last.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        read_to_close(&mut last).await
    });
    assert!(String::from_utf8_lossy(&received).ends_with("hello"));
    drop(clients);
}
