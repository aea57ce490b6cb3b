//! The proxy's own identity: an ECDSA P-256 key generated in memory (never
//! written to disk), a CSR for `LINKERD2_PROXY_IDENTITY_LOCAL_NAME`, and a
//! loop that calls Identity.Certify and refreshes the certificate at 70% of
//! its lifetime (clamped to the min/max refresh), retrying with jittered
//! backoff on failure.
//!
//! The certificate goes into the [`CertStore`] the TLS configurations read.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use linkerd2_proxy_api::identity::{identity_client::IdentityClient, CertifyRequest};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use tonic::transport::Channel;
use wisp_common::backoff::Backoff;

use wisp_common::error::chain as describe;

use crate::config::IdentityConfig;
use crate::telemetry::metrics::Registry;
use crate::transport::cert_store::CertStore;

/// First retry delay after a failed Certify call.
const RETRY_MIN: Duration = Duration::from_millis(250);

/// Why a Certify round failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CertifyError {
    /// The token file could not be read.
    #[error("cannot read the token file {path}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file is empty.
    #[error("the token file {0} is empty")]
    EmptyToken(String),
    /// The identity service failed or refused.
    #[error("identity service: {0}")]
    Rpc(#[from] tonic::Status),
    /// The call did not complete in time.
    #[error("identity service did not answer in time")]
    Timeout,
    /// The issued certificate is unusable.
    #[error("invalid certificate from the identity service: {0}")]
    Invalid(String),
}

/// The key and CSR a proxy certifies with; generated once per process.
pub(crate) struct LocalIdentity {
    key_der: Vec<u8>,
    csr_der: Vec<u8>,
}

impl LocalIdentity {
    /// Generates a P-256 key and a CSR with CN = DNS SAN = `name`.
    pub(crate) fn generate(name: &str) -> Result<Self, rcgen::Error> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let csr = params.serialize_request(&key)?;
        Ok(LocalIdentity {
            key_der: key.serialize_der(),
            csr_der: csr.der().to_vec(),
        })
    }
}

/// Runs Certify forever: first certificate as soon as possible, then
/// refreshes. Updates the store and the identity metrics.
pub(crate) async fn run(
    cfg: IdentityConfig,
    local: LocalIdentity,
    client: IdentityClient<Channel>,
    roots: RootCertStore,
    store: Arc<CertStore>,
    metrics: Arc<Registry>,
) {
    let mut backoff = Backoff::new(RETRY_MIN, cfg.min_refresh.max(RETRY_MIN), 0.5);
    let mut waiting_since = std::time::Instant::now();
    loop {
        match certify(&cfg, &local, client.clone(), &roots).await {
            Ok((key, expiry)) => {
                store.set(Arc::new(key));
                let expiry_secs = expiry.duration_since(UNIX_EPOCH).unwrap_or_default();
                metrics.identity_refreshed(true, expiry_secs.as_secs_f64());
                let lifetime = expiry.duration_since(SystemTime::now()).unwrap_or_default();
                let refresh = lifetime
                    .mul_f64(0.7)
                    .clamp(cfg.min_refresh, cfg.max_refresh);
                tracing::info!(identity = %cfg.local_name, ?lifetime, ?refresh, "certified");
                backoff.reset();
                tokio::time::sleep(refresh).await;
            }
            Err(e) => {
                metrics.identity_refreshed(false, 0.0);
                if !store.is_ready() && waiting_since.elapsed() >= Duration::from_secs(15) {
                    tracing::warn!(error = %describe(&e), "still waiting for an identity certificate");
                    waiting_since = std::time::Instant::now();
                } else {
                    tracing::info!(error = %describe(&e), "certify failed; retrying");
                }
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
}

async fn certify(
    cfg: &IdentityConfig,
    local: &LocalIdentity,
    mut client: IdentityClient<Channel>,
    roots: &RootCertStore,
) -> Result<(CertifiedKey, SystemTime), CertifyError> {
    let path = cfg.token_file.display().to_string();
    // A small local file: read it inline rather than starting tokio's
    // blocking thread pool (a thread costs more memory than this read costs time).
    let token = std::fs::read(&cfg.token_file).map_err(|source| CertifyError::Token {
        path: path.clone(),
        source,
    })?;
    if token.is_empty() {
        return Err(CertifyError::EmptyToken(path));
    }
    let req = CertifyRequest {
        identity: cfg.local_name.clone(),
        token,
        certificate_signing_request: local.csr_der.clone(),
    };
    let rsp = tokio::time::timeout(Duration::from_secs(10), client.certify(req))
        .await
        .map_err(|_| CertifyError::Timeout)??
        .into_inner();
    let invalid = |m: &str| CertifyError::Invalid(m.to_string());
    let valid_until = rsp.valid_until.ok_or_else(|| invalid("no valid_until"))?;
    let expiry = UNIX_EPOCH
        + Duration::new(
            u64::try_from(valid_until.seconds).map_err(|_| invalid("valid_until before 1970"))?,
            u32::try_from(valid_until.nanos).unwrap_or(0),
        );
    if expiry <= SystemTime::now() {
        return Err(invalid("already expired"));
    }
    let leaf = CertificateDer::from(rsp.leaf_certificate);
    let intermediates: Vec<CertificateDer<'static>> = rsp
        .intermediate_certificates
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    // The leaf must name us and chain to our trust anchors, or no peer
    // would accept it.
    let ee =
        webpki::EndEntityCert::try_from(&leaf).map_err(|e| CertifyError::Invalid(e.to_string()))?;
    let name = rustls_pki_types::ServerName::try_from(cfg.local_name.as_str())
        .map_err(|e| CertifyError::Invalid(e.to_string()))?;
    ee.verify_is_valid_for_subject_name(&name)
        .map_err(|e| CertifyError::Invalid(format!("not issued for {}: {e}", cfg.local_name)))?;
    ee.verify_for_usage(
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all,
        &roots.roots,
        &intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| CertifyError::Invalid(format!("does not chain to the trust anchors: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(local.key_der.clone()));
    let signer = rustls::crypto::ring::sign::any_ecdsa_type(&key)
        .map_err(|e| CertifyError::Invalid(e.to_string()))?;
    let mut chain = vec![leaf.into_owned()];
    chain.extend(intermediates);
    let certified = CertifiedKey::new(chain, signer);
    certified
        .keys_match()
        .map_err(|e| CertifyError::Invalid(format!("certificate does not match our key: {e}")))?;
    Ok((certified, expiry))
}
