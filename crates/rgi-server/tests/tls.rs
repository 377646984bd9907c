//! TLS over loopback with rcgen certificates and a hyper client over
//! tokio-rustls: HTTP/1.1 and HTTP/2 chosen by ALPN, the connection
//! information, certificate reload, client certificates, the handshake time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Version};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rgi_server::{ClientAuth, Limits, Server, TlsConfig};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::TcpStream;

/// A CA, and certificates it issues.
struct Pki {
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

struct Leaf {
    chain_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Pki {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&key).unwrap();
        Self {
            ca_der: ca.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        Arc::new(roots)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn connector(pki: &Pki, alpn: &[u8], client: Option<&Leaf>) -> tokio_rustls::TlsConnector {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots());
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn start_tls(tls: TlsConfig, limits: Limits) -> Server {
    Server::builder()
        .bind_tls(([127, 0, 0, 1], 0), tls)
        .limits(limits)
        .workers(2)
        .serve(factory())
        .expect("serve")
}

async fn tls_connect(
    address: std::net::SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(address).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn request(path: &str, version: Version) -> Request<http_body_util::Full<Bytes>> {
    Request::get(format!("https://localhost{path}"))
        .version(version)
        .header("host", "localhost")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap()
}

async fn h1_over_tls(
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    path: &str,
) -> hyper::Result<String> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request(path, Version::HTTP_11)).await?;
    Ok(body_text(response).await)
}

#[test]
fn tls_http1_by_alpn_fills_the_connection_information() {
    let pki = Pki::new();
    let leaf = pki.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let tls = TlsConfig::from_pem(leaf.chain_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let server = start_tls(tls, Limits::default());
    let address = addr(&server);
    let connector = connector(&pki, b"http/1.1", None);
    let info = run(async {
        let stream = tls_connect(address, &connector).await.expect("handshake");
        h1_over_tls(stream, "/info").await.expect("response")
    });
    assert!(info.contains("scheme=Https"), "{info}");
    assert!(info.contains("tls=Some(Tls1_3)"), "{info}");
    assert!(info.contains("sni=Some(\"localhost\")"), "{info}");
    assert!(info.contains("alpn=Some(\"http/1.1\")"), "{info}");
    assert!(info.contains("certs=0"), "{info}");
    assert!(info.contains(&format!("local={address}")), "{info}");
}

#[test]
fn tls_http2_by_alpn() {
    let pki = Pki::new();
    let leaf = pki.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let tls = TlsConfig::from_pem(leaf.chain_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let server = start_tls(tls, Limits::default());
    let address = addr(&server);
    let connector = connector(&pki, b"h2", None);
    let (version, info) = run(async {
        let stream = tls_connect(address, &connector).await.expect("handshake");
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(connection);
        let response = sender
            .send_request(request("/version", Version::HTTP_2))
            .await
            .expect("version");
        let version = body_text(response).await;
        let response = sender
            .send_request(request("/info", Version::HTTP_2))
            .await
            .expect("info");
        (version, body_text(response).await)
    });
    assert_eq!(version, "HTTP/2.0");
    assert!(info.contains("alpn=Some(\"h2\")"), "{info}");
}

#[test]
fn certificate_reload_takes_effect_without_restart() {
    let pki = Pki::new();
    let first = pki.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let second = pki.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let tls = TlsConfig::from_pem(first.chain_pem.as_bytes(), first.key_pem.as_bytes()).unwrap();
    let resolver = Arc::clone(tls.resolver());
    let server = start_tls(tls, Limits::default());
    let address = addr(&server);
    let connector = connector(&pki, b"http/1.1", None);
    let presented = |stream: &tokio_rustls::client::TlsStream<TcpStream>| {
        stream.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    run(async {
        let before = tls_connect(address, &connector).await.expect("handshake");
        assert_eq!(presented(&before), first.der);
        // A malformed reload is refused and the old certificate stays.
        assert!(resolver.reload_pem(b"not pem", b"not pem").is_err());
        resolver
            .reload_pem(second.chain_pem.as_bytes(), second.key_pem.as_bytes())
            .unwrap();
        let after = tls_connect(address, &connector).await.expect("handshake");
        assert_eq!(presented(&after), second.der);
        // The connection made before the reload still works.
        assert_eq!(
            h1_over_tls(before, "/").await.expect("old connection"),
            "hello"
        );
    });
}

#[test]
fn required_client_certificate_is_verified_and_reported() {
    let pki = Pki::new();
    let leaf = pki.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let client = pki.leaf("client", ExtendedKeyUsagePurpose::ClientAuth);
    let tls = TlsConfig::from_pem(leaf.chain_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .client_auth(ClientAuth::Required(pki.roots()));
    let server = start_tls(tls, Limits::default());
    let address = addr(&server);
    run(async {
        let with_cert = connector(&pki, b"http/1.1", Some(&client));
        let stream = tls_connect(address, &with_cert).await.expect("handshake");
        let info = h1_over_tls(stream, "/info").await.expect("response");
        assert!(info.contains("certs=1"), "{info}");

        let without = connector(&pki, b"http/1.1", None);
        // TLS 1.3: the client may finish its side first; the refusal then
        // arrives on the first exchange.
        let refused = match tls_connect(address, &without).await {
            Err(_) => true,
            Ok(stream) => h1_over_tls(stream, "/info").await.is_err(),
        };
        assert!(refused);
    });
}

#[test]
fn optional_client_certificate_serves_clients_without_one() {
    let pki = Pki::new();
    let leaf = pki.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let tls = TlsConfig::from_pem(leaf.chain_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .client_auth(ClientAuth::Optional(pki.roots()));
    let server = start_tls(tls, Limits::default());
    let address = addr(&server);
    let info = run(async {
        let stream = tls_connect(address, &connector(&pki, b"http/1.1", None))
            .await
            .expect("handshake");
        h1_over_tls(stream, "/info").await.expect("response")
    });
    assert!(info.contains("certs=0"), "{info}");
}

#[test]
fn stalled_handshake_is_closed_when_its_time_runs_out() {
    let pki = Pki::new();
    let leaf = pki.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let tls = TlsConfig::from_pem(leaf.chain_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let server = start_tls(
        tls,
        Limits::default().tls_handshake_timeout(Duration::from_millis(300)),
    );
    let address = addr(&server);
    let (received, elapsed) = run(async {
        let started = Instant::now();
        let mut stream = TcpStream::connect(address).await.expect("connect");
        (read_to_close(&mut stream).await, started.elapsed())
    });
    assert!(received.is_empty());
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn malformed_pem_is_a_typed_error() {
    assert!(matches!(
        TlsConfig::from_pem(b"", b""),
        Err(rgi_server::TlsError::NoCertificate)
    ));
    let pki = Pki::new();
    let leaf = pki.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let other = pki.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    // A key that is not the certificate's.
    assert!(TlsConfig::from_pem(leaf.chain_pem.as_bytes(), other.key_pem.as_bytes()).is_err());
}
