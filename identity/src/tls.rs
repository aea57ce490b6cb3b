//! Mesh TLS server configuration: TLS 1.3 only, ring, ALPN `h2`, client
//! certificates requested but optional.

use std::sync::{Arc, RwLock};

use rustls::crypto::{ring as ring_provider, CryptoProvider};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A trust anchor was rejected.
    #[error("trust anchor rejected: {0}")]
    TrustAnchor(rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls rejected the configuration, key or certificate.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// The mesh crypto provider: ring with the TLS 1.3 suites
/// `TLS13_AES_128_GCM_SHA256`, `TLS13_AES_256_GCM_SHA384`,
/// `TLS13_CHACHA20_POLY1305_SHA256` and key exchange X25519, SECP256R1
/// (ring has no X25519MLKEM768).
pub fn mesh_crypto_provider() -> Arc<CryptoProvider> {
    let base = ring_provider::default_provider();
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            ring_provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
            ring_provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
            ring_provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![
            ring_provider::kx_group::X25519,
            ring_provider::kx_group::SECP256R1,
        ],
        ..base
    })
}

/// A root store holding `trust_anchors`.
pub fn root_store(trust_anchors: &[CertificateDer<'_>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for anchor in trust_anchors {
        roots
            .add(anchor.clone().into_owned())
            .map_err(TlsError::TrustAnchor)?;
    }
    Ok(roots)
}

/// A server config presenting `chain` (leaf first) with `key`; client
/// certificates chaining to `trust_anchors` are requested but optional.
pub fn server_tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    trust_anchors: &[CertificateDer<'_>],
) -> Result<Arc<ServerConfig>, TlsError> {
    let resolver = ReloadableCert::new(chain, key)?;
    server_tls_config_with_resolver(Arc::new(resolver), trust_anchors)
}

/// Like [`server_tls_config`], with certificates chosen by `resolver`
/// (e.g. a [`ReloadableCert`] that is renewed in place).
pub fn server_tls_config_with_resolver(
    resolver: Arc<dyn ResolvesServerCert>,
    trust_anchors: &[CertificateDer<'_>],
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = mesh_crypto_provider();
    let roots = Arc::new(root_store(trust_anchors)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A server certificate that can be replaced while connections are served.
#[derive(Debug)]
pub struct ReloadableCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Starts with `chain` (leaf first) and `key`.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            current: RwLock::new(certified_key(chain, key)?),
        })
    }

    /// Replaces the certificate; new handshakes use it.
    pub fn set(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), TlsError> {
        let next = certified_key(chain, key)?;
        match self.current.write() {
            Ok(mut current) => *current = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }

    fn get(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let signing_key = mesh_crypto_provider().key_provider.load_private_key(key)?;
    Ok(Arc::new(CertifiedKey::new(chain, signing_key)))
}
