//! The conformance kit's server suite (synchronous and asynchronous cases)
//! against a minimal hyper HTTP/1.1 server built on this crate's services.
//!
//! The services own the request's life (environ, input, head, body, errors,
//! the switch, capabilities); the connection's protocol decisions (§12.3 of
//! the spec: Host, framing fields, target forms, expectations, head limits)
//! belong to the server around them. The bare hyper connection here makes
//! none of them, so the cases that judge only those are left out, by name;
//! `rgi-server`'s suite runs every case, these included.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failure to start the test server is the test's failure"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rgi::{Address, BoxError, ConnectionInfo, ServerInfo};
use rgi_conformance::suite::Verdict;
use rgi_conformance::suite::{self, Claims, Limits, Probe, RunningServer, ServerUnderTest};
use rgi_tower::caps::HostCapabilities;
use rgi_tower::{AsyncService, Host, PoolConfig, SyncService};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_service::Service;

/// The stalled-body time the host enforces and claims.
const BODY_TIME: Duration = Duration::from_secs(2);
/// The body limit the host enforces and claims.
const BODY_LIMIT: u64 = Limits::RECOMMENDED.body;

/// hyper's HTTP/1.1 server with `rgi_tower` services, synchronous probes
/// on [`SyncService`] and asynchronous ones on [`AsyncService`].
struct TowerServer {
    asynchronous: bool,
}

fn asynchronous_server() -> TowerServer {
    TowerServer { asynchronous: true }
}

fn synchronous_server() -> TowerServer {
    TowerServer {
        asynchronous: false,
    }
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer for Running {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(mut self: Box<Self>) -> Result<(), BoxError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().map_err(|_| "server thread panicked")?;
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve_connection<S>(stream: tokio::net::TcpStream, service: S)
where
    S: Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<rgi_tower::ResponseBody>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let hyper_service = hyper::service::service_fn(move |request| {
        let mut service = service.clone();
        service.call(request)
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), hyper_service)
        .with_upgrades()
        .await;
}

impl ServerUnderTest for TowerServer {
    fn name(&self) -> String {
        format!(
            "rgi-tower on hyper ({})",
            if self.asynchronous { "async" } else { "sync" }
        )
    }

    fn claims(&self) -> Claims {
        let claims = if self.asynchronous {
            Claims::asynchronous()
                .with_readiness()
                .with_after_response()
                .with_upgrade()
        } else {
            Claims::synchronous()
        };
        claims.with_limits(
            Limits::RECOMMENDED
                .with_body(BODY_LIMIT)
                .with_body_time(BODY_TIME),
        )
    }

    fn start(&self, app: Probe) -> Result<Box<dyn RunningServer>, BoxError> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let asynchronous = self.asynchronous;
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let host =
                    Host::builder(ServerInfo::new(addr.ip().to_string(), addr.port()).unwrap())
                        .pool(PoolConfig {
                            threads: 8,
                            queue: 16,
                            per_connection: 8,
                        })
                        .max_body(BODY_LIMIT)
                        .body_timeout(Some(BODY_TIME))
                        .tokio_capabilities(HostCapabilities::current().unwrap())
                        .build();
                let sync_service =
                    (!app.is_async()).then(|| SyncService::new(app.clone(), host.clone()));
                let async_service = (asynchronous && app.is_async())
                    .then(|| AsyncService::new(app.clone(), host.clone()));
                let mut stopped = stopped;
                loop {
                    let accepted = tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => accepted,
                    };
                    let Ok((stream, peer)) = accepted else {
                        continue;
                    };
                    let info = Arc::new(
                        ConnectionInfo::new()
                            .with_peer_addr(Address::Tcp(peer))
                            .with_local_addr(Address::Tcp(addr)),
                    );
                    if let Some(service) = &async_service {
                        tokio::spawn(serve_connection(stream, service.connection(info)));
                    } else if let Some(service) = &sync_service {
                        tokio::spawn(serve_connection(stream, service.connection(info)));
                    }
                }
                // No job runs once the server stopped (`[RGIA-OFFLOAD-9]`),
                // and after-response tasks hear the shutdown.
                host.pool().shut_down();
                if let Some(capabilities) = host.tokio_capabilities() {
                    capabilities.shutdown().trigger();
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        Ok(Box::new(Running {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }))
    }
}

/// The cases that judge only the connection's protocol decisions, which
/// a bare hyper connection does not make.
const CONNECTION_LEVEL: &[&str] = &[
    "rgi_hdr_4_unknown_transfer_coding_is_501",
    "rgi_hdr_5_host_checked",
    "rgi_limit_2_long_target_is_414",
    "rgi_limit_3_large_header_section_is_431",
    "rgi_proto_1_host_present_single_valid",
    "rgi_proto_2_absolute_form_and_host",
    "rgi_proto_3_transfer_codings",
    "rgi_proto_4_content_length_strict",
    "rgi_proto_5_unknown_expectation_is_417",
    "rgi_proto_9_request_line_syntax",
    "rgi_proto_10_refusals_close_no_smuggling",
];

/// Threads the cases run on: the suite's cases mostly wait.
const PARALLEL: usize = 4;

/// Runs every case but the connection-level ones against `server`, in
/// parallel, and fails with the list of failures.
fn run_suite(server: &TowerServer) {
    let cases: Vec<_> = suite::cases()
        .into_iter()
        .filter(|case| !CONNECTION_LEVEL.contains(&case.name()))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(case) = cases.get(index) else { break };
                    let result = case.run(server);
                    if let Verdict::Failed { clause, reason } = result.verdict {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{} [{clause}]: {reason}", case.name()));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed on {}:\n{}",
        failures.len(),
        cases.len(),
        server.name(),
        failures.join("\n")
    );
}

#[test]
fn every_case_of_the_request_life_passes_on_the_asynchronous_services() {
    run_suite(&asynchronous_server());
}

#[test]
fn every_case_of_the_request_life_passes_on_the_synchronous_service() {
    run_suite(&synchronous_server());
}

/// The left-out cases exist: a renamed case would otherwise be run and
/// fail, or worse, a list entry would silently stop matching anything.
#[test]
fn the_left_out_cases_are_cases_of_the_suite() {
    for name in CONNECTION_LEVEL {
        assert!(
            suite::case(name).is_some(),
            "{name} is not a case of the suite"
        );
    }
}
