//! TLS through rustls: certificates from PEM, a resolver that swaps them at
//! run time, the client-certificate policy, ALPN.

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration or a certificate could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The PEM text held no certificate.
    #[error("no certificate found in the PEM input")]
    NoCertificate,
    /// The PEM text held no private key, or one that could not be read.
    #[error("no usable private key in the PEM input: {0}")]
    PrivateKey(#[source] rustls_pki_types::pem::Error),
    /// A certificate block could not be read.
    #[error("malformed certificate PEM: {0}")]
    Certificate(#[source] rustls_pki_types::pem::Error),
    /// rustls refused the key, the pair, a root or the configuration.
    #[error("rustls refused the configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (no roots, say).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain (leaf first) and its private key from PEM text.
///
/// # Errors
///
/// [`TlsError::NoCertificate`], [`TlsError::Certificate`] or
/// [`TlsError::PrivateKey`] for unreadable input, [`TlsError::Rustls`] for a
/// key of an unsupported type or one that does not match the certificate.
pub fn certified_key_from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Certificate)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::PrivateKey)?;
    let signing_key = provider().key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match()?;
    Ok(certified)
}

/// The server's certificate, replaceable while the server runs: the next
/// handshake uses the new one, connections already established keep theirs.
///
/// # Examples
///
/// ```no_run
/// # fn reload(resolver: &rgi_server::CertificateResolver) -> Result<(), rgi_server::TlsError> {
/// let chain = std::fs::read("cert.pem").unwrap_or_default();
/// let key = std::fs::read("key.pem").unwrap_or_default();
/// resolver.reload_pem(&chain, &key)?;
/// # Ok(()) }
/// ```
pub struct CertificateResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertificateResolver {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CertificateResolver")
            .finish_non_exhaustive()
    }
}

impl CertificateResolver {
    /// A resolver serving `key`.
    #[must_use]
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
        }
    }

    /// A resolver serving the chain and key in PEM text.
    ///
    /// # Errors
    ///
    /// As [`certified_key_from_pem`].
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        certified_key_from_pem(chain_pem, key_pem).map(Self::new)
    }

    /// Serves `key` from the next handshake on.
    pub fn replace(&self, key: CertifiedKey) {
        let key = Arc::new(key);
        match self.current.write() {
            Ok(mut current) => *current = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }

    /// Reads a new chain and key from PEM text and serves them from the next
    /// handshake on; on error the current certificate stays.
    ///
    /// # Errors
    ///
    /// As [`certified_key_from_pem`].
    pub fn reload_pem(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        self.replace(certified_key_from_pem(chain_pem, key_pem)?);
        Ok(())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Whether clients present certificates.
///
/// When a client presents one under `Optional` or `Required`, rustls has
/// verified it against the roots before the connection is served, so the
/// chain in `rgi::TlsInfo::peer_certificates` is a verified chain
/// (RGI-CONN-11).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// No certificate is requested (the default).
    #[default]
    None,
    /// A certificate is requested; a client without one is still served, a
    /// client with one that does not verify is refused.
    Optional(Arc<RootCertStore>),
    /// A certificate verified against these roots is required.
    Required(Arc<RootCertStore>),
}

/// The TLS side of a listener.
///
/// ALPN offers `h2` and `http/1.1`; the negotiated protocol decides how the
/// connection is served (no sniffing on TLS).
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use rgi_server::{CertificateResolver, TlsConfig};
///
/// # fn build(chain: &[u8], key: &[u8]) -> Result<(), rgi_server::TlsError> {
/// let resolver = Arc::new(CertificateResolver::from_pem(chain, key)?);
/// let tls = TlsConfig::new(Arc::clone(&resolver));
/// // Later, without a restart:
/// resolver.reload_pem(chain, key)?;
/// # let _ = tls; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TlsConfig {
    resolver: Arc<CertificateResolver>,
    client_auth: ClientAuth,
}

impl TlsConfig {
    /// TLS serving the certificate `resolver` holds.
    #[must_use]
    pub fn new(resolver: Arc<CertificateResolver>) -> Self {
        Self {
            resolver,
            client_auth: ClientAuth::None,
        }
    }

    /// TLS serving the chain and key in PEM text.
    ///
    /// # Errors
    ///
    /// As [`certified_key_from_pem`].
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        CertificateResolver::from_pem(chain_pem, key_pem)
            .map(|resolver| Self::new(Arc::new(resolver)))
    }

    /// Sets the client-certificate policy.
    #[must_use]
    pub fn client_auth(mut self, policy: ClientAuth) -> Self {
        self.client_auth = policy;
        self
    }

    /// The resolver, for reloading the certificate.
    #[must_use]
    pub fn resolver(&self) -> &Arc<CertificateResolver> {
        &self.resolver
    }

    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider)
                    .allow_unauthenticated()
                    .build()?,
            ),
            ClientAuth::Required(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider).build()?,
            ),
        };
        let mut config =
            builder.with_cert_resolver(Arc::clone(&self.resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The spec's view of a finished handshake (RGI-CONN-9).
pub(crate) fn tls_info(connection: &rustls::ServerConnection) -> rgi::TlsInfo {
    let mut info = rgi::TlsInfo::new();
    if let Some(version) = connection.protocol_version() {
        info = info.with_version(match version {
            rustls::ProtocolVersion::TLSv1_3 => rgi::TlsVersion::Tls1_3,
            rustls::ProtocolVersion::TLSv1_2 => rgi::TlsVersion::Tls1_2,
            rustls::ProtocolVersion::TLSv1_1 => rgi::TlsVersion::Tls1_1,
            rustls::ProtocolVersion::TLSv1_0 => rgi::TlsVersion::Tls1_0,
            other => rgi::TlsVersion::Other(u16::from(other)),
        });
    }
    if let Some(name) = connection.server_name() {
        info = info.with_server_name(name);
    }
    if let Some(protocol) = connection.alpn_protocol() {
        info = info.with_alpn_protocol(bytes::Bytes::copy_from_slice(protocol));
    }
    if let Some(chain) = connection.peer_certificates() {
        info = info.with_peer_certificates(
            chain
                .iter()
                .map(|certificate| bytes::Bytes::copy_from_slice(certificate.as_ref()))
                .collect(),
        );
    }
    info
}
