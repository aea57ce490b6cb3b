//! The certificate authority: trust anchors plus an issuer that signs
//! workload leaf certificates from CSRs.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use tokio::sync::watch;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::csr::{Csr, CsrError};
use crate::files::{self, FileError};
use crate::keys;

/// Default lifetime of issued leaf certificates.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Default clock-skew allowance added on both ends of the validity window.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(20);

/// How leaf certificates are dated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Leaf lifetime (NotAfter − now, before skew).
    pub lifetime: Duration,
    /// Clock-skew allowance (NotBefore = now − skew, NotAfter += skew).
    pub skew: Duration,
}

impl Default for Validity {
    fn default() -> Self {
        Self {
            lifetime: DEFAULT_LIFETIME,
            skew: DEFAULT_SKEW,
        }
    }
}

/// Why a CA could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file is missing, unreadable or unacceptable.
    #[error(transparent)]
    File(#[from] FileError),
    /// The in-memory material is unacceptable.
    #[error("{0}")]
    Invalid(String),
}

/// Why a certificate was not issued; each maps to one gRPC code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IssueError {
    /// The CSR does not parse or its signature does not verify.
    #[error(transparent)]
    BadCsr(CsrError),
    /// The CSR's names break the rules.
    #[error(transparent)]
    Names(CsrError),
    /// The requested identity is not usable as a DNS SAN.
    #[error("identity {identity:?}: {source}")]
    Identity {
        /// The requested identity.
        identity: String,
        /// Why rcgen refused it.
        source: rcgen::Error,
    },
    /// The CSR's public key is not ECDSA P-256.
    #[error(transparent)]
    Key(CsrError),
    /// The issuer cannot sign (its chain expired).
    #[error("{0}")]
    Issuer(String),
    /// Building or signing a certificate failed.
    #[error("{context}: {source}")]
    Signing {
        /// What was being done.
        context: &'static str,
        /// The failure.
        source: rcgen::Error,
    },
    /// The clock gave an unusable time.
    #[error("{0}")]
    Clock(#[source] time::error::ComponentRange),
}

/// A freshly issued leaf certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The leaf certificate (DER).
    pub leaf: CertificateDer<'static>,
    /// The rest of the chain (DER): `[issuer]`.
    pub intermediates: Vec<CertificateDer<'static>>,
    /// The leaf's NotAfter.
    pub valid_until: SystemTime,
    /// The leaf's serial number.
    pub serial: u64,
}

/// The material a CA signs with; replaced whole by [`Ca::reload`].
struct Material {
    trust_anchors: Vec<CertificateDer<'static>>,
    issuer_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// Earliest NotAfter of the issuer and the anchor it chains to.
    chain_not_after: OffsetDateTime,
}

/// Trust anchors and an issuer able to sign leaf certificates.
///
/// The material can be swapped while the CA is shared ([`Ca::reload`]):
/// every holder of the `Arc<Ca>` issues from the new issuer at once, and
/// [`Ca::subscribe`] tells the holders of derived certificates to renew.
pub struct Ca {
    material: RwLock<Arc<Material>>,
    validity: Validity,
    next_serial: AtomicU64,
    issued: AtomicU64,
    generation: watch::Sender<u64>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let material = self.material();
        f.debug_struct("Ca")
            .field("trust_anchors", &material.trust_anchors.len())
            .field("chain_not_after", &material.chain_not_after)
            .field("validity", &self.validity)
            .field("issued", &self.issued_count())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Loads the trust anchors bundle, the issuer certificate (first PEM
    /// block) and the issuer key; errors name the offending file.
    pub fn load(
        trust_anchors: &Path,
        issuer_cert: &Path,
        issuer_key: &Path,
        validity: Validity,
    ) -> Result<Self, CaError> {
        let anchors = files::read_certs(trust_anchors)?;
        for (i, anchor) in anchors.iter().enumerate() {
            check_anchor(anchor).map_err(|e| {
                FileError::invalid(trust_anchors, format!("certificate #{}: {e}", i + 1))
            })?;
        }
        let issuer_der = files::read_certs(issuer_cert)?.swap_remove(0);
        let chain_not_after =
            check_issuer(&issuer_der, &anchors).map_err(|e| FileError::invalid(issuer_cert, e))?;
        let key = files::read_private_key(issuer_key)?;
        let key = keys::p256_signing_key(&key)
            .map_err(|e| FileError::invalid(issuer_key, e.to_string()))?;
        let ca = Self::assemble(anchors, issuer_der, key, chain_not_after, validity)
            .map_err(|e| FileError::invalid(issuer_key, e))?;
        Ok(ca)
    }

    /// Loads `ca.crt`, `issuer.crt` and `issuer.key` from an identity directory.
    pub fn load_dir(dir: &Path, validity: Validity) -> Result<Self, CaError> {
        Self::load(
            &dir.join(files::TRUST_ANCHORS),
            &dir.join(files::ISSUER_CERT),
            &dir.join(files::ISSUER_KEY),
            validity,
        )
    }

    /// Builds a CA from in-memory DER material, with the same checks as [`Ca::load`].
    pub fn from_der(
        trust_anchors: Vec<CertificateDer<'static>>,
        issuer_cert: CertificateDer<'static>,
        issuer_key: &PrivateKeyDer<'_>,
        validity: Validity,
    ) -> Result<Self, CaError> {
        if trust_anchors.is_empty() {
            return Err(CaError::Invalid("no trust anchors".into()));
        }
        for anchor in &trust_anchors {
            check_anchor(anchor).map_err(|e| CaError::Invalid(format!("trust anchor: {e}")))?;
        }
        let chain_not_after = check_issuer(&issuer_cert, &trust_anchors)
            .map_err(|e| CaError::Invalid(format!("issuer certificate: {e}")))?;
        let key = keys::p256_signing_key(issuer_key)
            .map_err(|e| CaError::Invalid(format!("issuer key: {e}")))?;
        Self::assemble(trust_anchors, issuer_cert, key, chain_not_after, validity)
            .map_err(|e| CaError::Invalid(format!("issuer key: {e}")))
    }

    fn assemble(
        trust_anchors: Vec<CertificateDer<'static>>,
        issuer_der: CertificateDer<'static>,
        key: KeyPair,
        chain_not_after: OffsetDateTime,
        validity: Validity,
    ) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(&issuer_der)
            .map_err(|e| format!("issuer certificate does not parse: {e}"))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err("the key does not belong to the issuer certificate".into());
        }
        let issuer = Issuer::from_ca_cert_der(&issuer_der, key)
            .map_err(|e| format!("issuer certificate unusable: {e}"))?;
        let material = Material {
            trust_anchors,
            issuer_der,
            issuer,
            chain_not_after,
        };
        Ok(Self {
            material: RwLock::new(Arc::new(material)),
            validity,
            next_serial: AtomicU64::new(random_serial_seed()),
            issued: AtomicU64::new(0),
            generation: watch::Sender::new(0),
        })
    }

    fn material(&self) -> Arc<Material> {
        match self.material.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces this CA's trust anchors and issuer with `next`'s (already
    /// checked when `next` was built); the validity, serial counter and
    /// issued count are kept. Holders of [`Ca::subscribe`] are notified.
    pub fn reload(&self, next: Ca) {
        let material = next.material();
        match self.material.write() {
            Ok(mut m) => *m = material,
            Err(poisoned) => *poisoned.into_inner() = material,
        }
        self.generation.send_modify(|g| *g += 1);
    }

    /// A receiver that changes each time [`Ca::reload`] swaps the material
    /// (e.g. to re-issue a server's own certificate from the new issuer).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The issuer chain's expiry: the earliest NotAfter of the issuer and
    /// the trust anchor it chains to.
    pub fn chain_not_after(&self) -> SystemTime {
        SystemTime::from(self.material().chain_not_after)
    }

    /// The current trust anchors (DER).
    pub fn trust_anchors(&self) -> Vec<CertificateDer<'static>> {
        self.material().trust_anchors.clone()
    }

    /// The current issuer certificate (DER).
    pub fn issuer_cert(&self) -> CertificateDer<'static> {
        self.material().issuer_der.clone()
    }

    /// How many certificates this CA has issued.
    pub fn issued_count(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// Checks `csr_der` (signature, names, key) and issues a leaf for `identity`.
    pub fn issue(&self, identity: &str, csr_der: &[u8]) -> Result<Issued, IssueError> {
        let csr = Csr::parse(csr_der).map_err(IssueError::BadCsr)?;
        csr.check_names(identity).map_err(IssueError::Names)?;
        self.issue_checked(identity, csr)
    }

    /// Issues a leaf for a CSR whose names were already checked against
    /// `identity` ([`Csr::check_names`]); checks the key and signs.
    pub fn issue_checked(&self, identity: &str, csr: Csr) -> Result<Issued, IssueError> {
        csr.check_key().map_err(IssueError::Key)?;
        let material = self.material();
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .map_err(IssueError::Clock)?;
        if material.chain_not_after <= now {
            return Err(IssueError::Issuer(format!(
                "the issuer certificate chain expired at {}",
                rfc3339(material.chain_not_after)
            )));
        }
        let skew = to_time(self.validity.skew);
        let lifetime = to_time(self.validity.lifetime);
        let not_after = now
            .checked_add(lifetime)
            .and_then(|t| t.checked_add(skew))
            .map_or(material.chain_not_after, |t| {
                t.min(material.chain_not_after)
            });
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);

        let mut params = CertificateParams::default();
        params.distinguished_name = csr.params.params.distinguished_name.clone();
        params.subject_alt_names = vec![rcgen::SanType::DnsName(identity.try_into().map_err(
            |source| IssueError::Identity {
                identity: identity.to_string(),
                source,
            },
        )?)];
        params.not_before = now.checked_sub(skew).unwrap_or(now);
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from(serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let mut request = csr.params;
        request.params = params;
        let leaf = request
            .signed_by(&material.issuer)
            .map_err(|source| IssueError::Signing {
                context: "signing failed",
                source,
            })?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        Ok(Issued {
            leaf: leaf.der().clone(),
            intermediates: vec![material.issuer_der.clone()],
            valid_until: SystemTime::from(not_after),
            serial,
        })
    }
}

/// A trust anchor must parse and be a CA.
fn check_anchor(der: &CertificateDer<'_>) -> Result<(), String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("does not parse: {e}"))?;
    if !cert.is_ca() {
        return Err(format!("{} is not a CA certificate", cert.subject()));
    }
    Ok(())
}

/// The issuer must be a P-256 CA, unexpired, and be a trust anchor or be
/// signed by one. Returns the earliest NotAfter of issuer and anchor.
fn check_issuer(
    der: &CertificateDer<'_>,
    anchors: &[CertificateDer<'static>],
) -> Result<OffsetDateTime, String> {
    let (_, issuer) = X509Certificate::from_der(der).map_err(|e| format!("does not parse: {e}"))?;
    if !issuer.is_ca() {
        return Err(format!("{} is not a CA certificate", issuer.subject()));
    }
    if let Ok(Some(ku)) = issuer.key_usage() {
        if !ku.value.key_cert_sign() {
            return Err(format!(
                "{} may not sign certificates (key usage)",
                issuer.subject()
            ));
        }
    }
    keys::require_p256(issuer.public_key()).map_err(|e| format!("issuer {e}"))?;
    let not_after = issuer.validity().not_after.to_datetime();
    if not_after <= OffsetDateTime::now_utc() {
        return Err(format!(
            "{} expired at {}",
            issuer.subject(),
            rfc3339(not_after)
        ));
    }
    for anchor_der in anchors {
        let Ok((_, anchor)) = X509Certificate::from_der(anchor_der) else {
            continue;
        };
        let signed = anchor_der.as_ref() == der.as_ref()
            || (anchor.subject() == issuer.issuer()
                && issuer.verify_signature(Some(anchor.public_key())).is_ok());
        if signed {
            return Ok(not_after.min(anchor.validity().not_after.to_datetime()));
        }
    }
    Err(format!(
        "{} (issued by {}) does not chain to any trust anchor",
        issuer.subject(),
        issuer.issuer()
    ))
}

fn random_serial_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // No system RNG: fall back to the clock; serials stay unique per run.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = (nanos as u64).to_be_bytes();
    }
    (u64::from_be_bytes(bytes) >> 2) | 1
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// Formats a time as RFC 3339 (UTC), for messages.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
