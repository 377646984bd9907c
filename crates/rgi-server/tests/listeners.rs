//! Listeners beyond a bound address: several at once, inherited TCP and Unix
//! listeners, and connections from a trusted proxy that begin with a PROXY
//! protocol header.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use rgi_server::proxy_protocol::TrustedProxies;
use rgi_server::{ListenAddr, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INFO: &[u8] = b"GET /info HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";

#[test]
fn several_listeners_and_inherited_ones_serve_alike() {
    let inherited = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let inherited_address = inherited.local_addr().unwrap();
    let directory =
        std::env::temp_dir().join(format!("rgi-server-listeners-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("inherited.sock");
    let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0))
        .bind(([127, 0, 0, 1], 0))
        .listener(inherited, None)
        .unix_listener(unix)
        .workers(1)
        .serve(factory())
        .expect("serve");
    let addresses = server.local_addrs().to_vec();
    assert_eq!(addresses.len(), 4);
    assert_eq!(addresses[2], ListenAddr::Tcp(inherited_address));
    assert_eq!(addresses[3], ListenAddr::Unix(path.clone()));
    for address in &addresses[..3] {
        let ListenAddr::Tcp(address) = address else {
            panic!("{address:?}")
        };
        let received = run(raw_exchange(*address, INFO));
        let text = String::from_utf8_lossy(&received);
        assert!(text.contains(&format!("local={address}")), "{text}");
    }
    let received = run(async {
        let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        stream.write_all(INFO).await.unwrap();
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received).await;
        received
    });
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200 OK"));
    server.shutdown();
    // The handed-in socket's file belongs to whoever bound it.
    assert!(path.exists(), "the inherited socket file was removed");
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn a_socket_file_the_server_bound_is_removed_at_shutdown() {
    let directory = std::env::temp_dir().join(format!("rgi-server-owned-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("owned.sock");
    let server = Server::builder()
        .bind_unix(&path)
        .workers(1)
        .serve(factory())
        .expect("serve");
    assert!(path.exists());
    server.shutdown();
    assert!(!path.exists(), "the server left its socket file behind");
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn a_trusted_proxy_declares_the_client_address() {
    let server =
        start(Server::builder().trusted_proxies(TrustedProxies::parse(["127.0.0.1/32"]).unwrap()));
    let address = addr(&server);
    // v1 header, then the request.
    let mut bytes = b"PROXY TCP4 192.0.2.7 198.51.100.2 51000 443\r\n".to_vec();
    bytes.extend_from_slice(INFO);
    let received = run(raw_exchange(address, &bytes));
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.contains("peer=192.0.2.7:51000 (via 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("local=198.51.100.2:443 (via "), "{text}");

    // A trusted peer that sends no header is not served.
    let received = run(raw_exchange(address, INFO));
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
}

#[test]
fn an_untrusted_peer_is_served_without_a_header() {
    let server =
        start(Server::builder().trusted_proxies(TrustedProxies::parse(["10.0.0.0/8"]).unwrap()));
    let address = addr(&server);
    let received = run(raw_exchange(address, INFO));
    let text = String::from_utf8_lossy(&received);
    assert!(text.contains("peer=127.0.0.1:"), "{text}");
    assert!(!text.contains("via"), "{text}");
    // Its PROXY header is not believed: it is no request either.
    let mut bytes = b"PROXY TCP4 192.0.2.7 198.51.100.2 51000 443\r\n".to_vec();
    bytes.extend_from_slice(INFO);
    let received = run(raw_exchange(address, &bytes));
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(!text.contains("192.0.2.7"), "{text}");
}

/// A PROXY v2 header from `source` (IPv4) with `tlvs` after the addresses.
fn proxy_v2(source: [u8; 4], port: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut payload = source.to_vec();
    payload.extend_from_slice(&[198, 51, 100, 2]);
    payload.extend_from_slice(&port.to_be_bytes());
    payload.extend_from_slice(&443u16.to_be_bytes());
    payload.extend_from_slice(tlvs);
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    header.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    header.extend_from_slice(&payload);
    header
}

/// A type-length-value record of a PROXY v2 header.
fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut record = vec![kind];
    record.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    record.extend_from_slice(value);
    record
}

#[test]
fn a_proxy_that_terminated_tls_makes_the_connection_https() {
    let server =
        start(Server::builder().trusted_proxies(TrustedProxies::parse(["127.0.0.1/32"]).unwrap()));
    let address = addr(&server);
    let mut tlvs = tlv(0x01, b"h2");
    tlvs.extend(tlv(0x02, b"shop.example"));
    // PP2_TYPE_SSL: PP2_CLIENT_SSL, verify 0, PP2_SUBTYPE_SSL_VERSION.
    let mut ssl = vec![0x01, 0, 0, 0, 0];
    ssl.extend(tlv(0x21, b"TLSv1.3"));
    tlvs.extend(tlv(0x20, &ssl));
    let mut bytes = proxy_v2([192, 0, 2, 9], 40_000, &tlvs);
    bytes.extend_from_slice(INFO);
    let text = String::from_utf8_lossy(&run(raw_exchange(address, &bytes))).into_owned();
    assert!(
        text.contains("peer=192.0.2.9:40000 (via 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("scheme=Https"), "{text}");
    assert!(text.contains("tls=Some(Tls1_3)"), "{text}");
    assert!(text.contains("sni=Some(\"shop.example\")"), "{text}");

    // Without the SSL record the client spoke plain HTTP to the proxy.
    let mut bytes = proxy_v2([192, 0, 2, 9], 40_001, &tlv(0x02, b"shop.example"));
    bytes.extend_from_slice(INFO);
    let text = String::from_utf8_lossy(&run(raw_exchange(address, &bytes))).into_owned();
    assert!(text.contains("scheme=Http tls=None"), "{text}");

    // A malformed SSL record from the trusted proxy closes the connection
    // without an answer.
    let mut bytes = proxy_v2([192, 0, 2, 9], 40_002, &tlv(0x20, &[0x01, 0]));
    bytes.extend_from_slice(INFO);
    let received = run(raw_exchange(address, &bytes));
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
}

/// Marks the re-executed test binary that plays the socket-activated
/// service in `a_socket_activated_server_serves_every_inherited_listener`.
const ACTIVATED: &str = "RGI_SERVER_ACTIVATED_CHILD";

/// The service side: serves whatever listeners it inherited until the
/// parent kills it (the parent's timeout bounds it).
#[test]
#[ignore = "the child process of a_socket_activated_server_serves_every_inherited_listener runs it"]
fn activated_service() {
    if std::env::var_os(ACTIVATED).is_none() {
        return;
    }
    let inherited = rgi_server::listen_fds::ListenFds::take()
        .unwrap()
        .expect("the parent passes two listeners");
    let server = Server::builder()
        .inherited(inherited)
        .unwrap()
        .workers(1)
        .serve(factory())
        .expect("serve");
    server.wait();
}

/// Starts this test binary the way systemd starts a socket-activated
/// service (a TCP listener on fd 3, a Unix one on fd 4, `LISTEN_PID` its
/// own pid) and checks that `Builder::inherited` serves both.
#[test]
fn a_socket_activated_server_serves_every_inherited_listener() {
    use std::os::fd::OwnedFd;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = tcp.local_addr().unwrap();
    let directory =
        std::env::temp_dir().join(format!("rgi-server-activated-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("activated.sock");
    let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();

    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(
            "exec 3<&0 4>&1 0</dev/null 1>&2; \
             LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=web:admin exec \"$0\" \"$@\"",
        )
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "--ignored",
            "activated_service",
            "--test-threads=1",
        ])
        .env(ACTIVATED, "1")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES")
        .stdin(Stdio::from(OwnedFd::from(tcp)))
        .stdout(Stdio::from(OwnedFd::from(unix)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // The listeners exist before the child starts, so connections wait in
    // the backlog until it accepts; each exchange is bounded on its own.
    let over_tcp = run(async {
        tokio::time::timeout(Duration::from_secs(20), raw_exchange(address, INFO)).await
    });
    let over_unix = run(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
            stream.write_all(INFO).await.unwrap();
            let mut received = Vec::new();
            let _ = stream.read_to_end(&mut received).await;
            received
        })
        .await
    });
    let _ = child.kill();
    let _ = child.wait();
    let over_tcp = over_tcp.expect("the TCP exchange timed out");
    let over_unix = over_unix.expect("the Unix exchange timed out");
    let over_tcp = String::from_utf8_lossy(&over_tcp);
    let over_unix = String::from_utf8_lossy(&over_unix);
    assert!(over_tcp.starts_with("HTTP/1.1 200 OK"), "{over_tcp}");
    assert!(over_tcp.contains(&format!("local={address}")), "{over_tcp}");
    assert!(over_unix.starts_with("HTTP/1.1 200 OK"), "{over_unix}");
    let _ = std::fs::remove_dir_all(&directory);
}
