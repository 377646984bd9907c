//! The conformance kit's readiness cases (spec/rgi-async.md §8) against
//! `AsyncService` over hyper with the server-wide capabilities of
//! `caps::HostCapabilities`: tokio's reactor and timer behind
//! `rgi_async::Readiness`, judged by the kit rather than by this crate.

#![cfg(unix)]
// Helpers outside `#[test]` functions fail the test that calls them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rgi::{Address, BoxError, ConnectionInfo, ServerInfo};
use rgi_conformance::suite::Verdict;
use rgi_conformance::suite::{self, Claims, Probe, RunningServer, ServerUnderTest};
use rgi_tower::caps::HostCapabilities;
use rgi_tower::{AsyncService, Host, PoolConfig};
use tower_service::Service;

/// An asynchronous host lending readiness and the runtime context, on a
/// runtime of its own per case.
struct TowerWithCaps;

struct Running {
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
}

impl ServerUnderTest for TowerWithCaps {
    fn name(&self) -> String {
        "rgi-tower AsyncService with caps::HostCapabilities".to_owned()
    }

    fn claims(&self) -> Claims {
        Claims::asynchronous().with_readiness()
    }

    fn start(&self, app: Probe) -> Result<Box<dyn RunningServer>, BoxError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let capabilities = runtime.block_on(async { HostCapabilities::current() })?;
        let host = Host::builder(ServerInfo::new("127.0.0.1", 80)?)
            .pool(PoolConfig {
                threads: 4,
                queue: 16,
                per_connection: 8,
            })
            .capabilities(move |builder| capabilities.add_to(builder))
            .build();
        let service = AsyncService::new(app, host);
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        runtime.spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let info = ConnectionInfo::new()
                    .with_peer_addr(Address::Tcp(peer))
                    .with_local_addr(Address::Tcp(addr));
                let connection = service.connection(Arc::new(info));
                tokio::spawn(async move {
                    let hyper_service = hyper::service::service_fn(move |request| {
                        let mut connection = connection.clone();
                        // Boxed as `Send` here: the compiler cannot prove it
                        // through the probe's `dyn AsyncBody` otherwise.
                        let response: Pin<Box<dyn Future<Output = _> + Send>> =
                            Box::pin(connection.call(request));
                        response
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), hyper_service)
                        .await;
                });
            }
        });
        Ok(Box::new(Running { addr, runtime }))
    }
}

impl RunningServer for Running {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(self: Box<Self>) -> Result<(), BoxError> {
        // Drops every task, and with them every body and its waits.
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        Ok(())
    }
}

/// Runs every case about readiness waits; each must pass, none skipped.
#[test]
fn the_kits_readiness_cases_pass() {
    let server = TowerWithCaps;
    let mut ran = Vec::new();
    for case in suite::cases() {
        let name = case.name();
        if !(name.starts_with("rgia_ready_") || name.starts_with("rgia_task_5_")) {
            continue;
        }
        let result = case.run(&server);
        match result.verdict {
            Verdict::Passed => ran.push(name),
            Verdict::Failed { clause, reason } => panic!("{name} failed [{clause}]: {reason}"),
            other => panic!("{name} did not run: {other:?}"),
        }
    }
    assert!(ran.len() >= 10, "only {ran:?} ran");
}
