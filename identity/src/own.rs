//! A control-plane component's own TLS identity: a certificate the
//! in-process CA issues through the regular CSR path, renewed at 70% of its
//! lifetime. The identity service serves with one; so does the destination
//! service when it has the CA at hand (universal mode).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DnType, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tracing::{info, warn};

use crate::ca::{Ca, IssueError};
use crate::tls::{server_tls_config_with_resolver, ReloadableCert};
use crate::Error;

/// Shortest wait before renewing.
const MIN_REFRESH: Duration = Duration::from_secs(10);

/// A certificate for `name`, with what is needed to renew it.
#[derive(Clone, Debug)]
pub struct OwnIdentity {
    ca: Arc<Ca>,
    name: String,
    cert: Arc<ReloadableCert>,
    valid_until: SystemTime,
}

impl OwnIdentity {
    /// Issues a first certificate for `name`.
    pub fn issue(ca: Arc<Ca>, name: String) -> Result<Self, Error> {
        let (chain, key, valid_until) = issue_own(&ca, &name)?;
        let cert = Arc::new(ReloadableCert::new(chain, key)?);
        Ok(OwnIdentity {
            ca,
            name,
            cert,
            valid_until,
        })
    }

    /// The identity's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A server config presenting this (renewing) certificate, TLS 1.3,
    /// client certificates optional but verified.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        Ok(server_tls_config_with_resolver(
            self.cert.clone(),
            &self.ca.trust_anchors(),
        )?)
    }

    /// Renews the certificate forever (spawn it; abort to stop): at 70% of
    /// its lifetime, and at once when the CA's issuer is reloaded.
    pub async fn renew_forever(self) {
        let OwnIdentity {
            ca,
            name,
            cert,
            mut valid_until,
        } = self;
        let mut reloads = ca.subscribe();
        reloads.mark_unchanged();
        loop {
            let remaining = valid_until
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let wait = tokio::time::sleep(remaining.mul_f64(0.7).max(MIN_REFRESH));
            tokio::select! {
                () = wait => {}
                changed = reloads.changed() => {
                    if changed.is_err() {
                        // The CA is gone; only the timer remains.
                        reloads = ca.subscribe();
                    }
                    reloads.mark_unchanged();
                }
            }
            let renewed = issue_own(&ca, &name).and_then(|(chain, key, until)| {
                cert.set(chain, key)?;
                Ok(until)
            });
            match renewed {
                Ok(until) => {
                    valid_until = until;
                    info!(identity = %name, "renewed the service's own certificate");
                }
                Err(error) => {
                    warn!(%error, "cannot renew the service's own certificate; retrying");
                    valid_until = SystemTime::now();
                }
            }
        }
    }
}

/// A certificate chain (leaf first), its private key and the leaf's NotAfter.
pub type OwnCert = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    SystemTime,
);

/// Issues the service its own certificate through the regular CSR path.
fn issue_own(ca: &Ca, name: &str) -> Result<OwnCert, Error> {
    issue_with_new_key(ca, name).map_err(Error::OwnCertificate)
}

/// Generates a fresh ECDSA P-256 key and has `ca` issue a certificate for
/// `name` through the regular CSR path ([`Ca::issue`]: the CSR's names and
/// key are checked as the identity service checks a workload's). Returns
/// the chain (leaf, then issuer), the key (PKCS#8) and the leaf's NotAfter.
/// Used for a control-plane component's own certificate and by
/// `wisp identity issue`.
pub fn issue_with_new_key(ca: &Ca, name: &str) -> Result<OwnCert, IssueError> {
    let signing =
        |context: &'static str| move |source: rcgen::Error| IssueError::Signing { context, source };
    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(signing("generating a key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![SanType::DnsName(name.try_into().map_err(
        |source: rcgen::Error| IssueError::Identity {
            identity: name.to_string(),
            source,
        },
    )?)];
    let csr = params
        .serialize_request(&key)
        .map_err(signing("building the CSR"))?;
    let issued = ca.issue(name, csr.der())?;
    let mut chain = vec![issued.leaf];
    chain.extend(issued.intermediates);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((chain, key, issued.valid_until))
}
