//! `wisp identity init`: a fresh trust anchor, issuer and token key, like
//! `step certificate create` does for Linkerd.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;

use crate::files::{self, FileError};
use crate::names::{is_dns_label, is_dns_name, issuer_cn, trust_anchor_cn};
use crate::pem;
use crate::token::TokenKey;

/// Lifetime of the trust anchor.
pub const TRUST_ANCHOR_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Lifetime of the issuer certificate.
pub const ISSUER_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// What `init` creates and where.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Trust domain (`cluster.local`).
    pub trust_domain: String,
    /// Control-plane namespace (`linkerd`).
    pub control_plane_ns: String,
    /// Overwrite existing files.
    pub force: bool,
}

/// Why `init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// An option is unusable.
    #[error("{0}")]
    Invalid(String),
    /// A file exists and `force` was not given.
    #[error("{} already exists; pass --force to overwrite", .0.display())]
    Exists(PathBuf),
    /// Key or certificate generation failed.
    #[error("cannot generate {what}: {reason}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A file could not be written.
    #[error(transparent)]
    File(#[from] FileError),
}

/// Writes `ca.crt`, `issuer.crt`, `issuer.key` (0600) and `token.key` (0600)
/// into `opts.out`; returns the paths written. Nothing is written if any of
/// them exists and `force` is false.
pub fn init(opts: &InitOptions) -> Result<Vec<PathBuf>, InitError> {
    let trust_domain = opts.trust_domain.trim_matches('.');
    if !is_dns_name(trust_domain) {
        return Err(InitError::Invalid(format!(
            "trust domain {trust_domain:?} is not a DNS name"
        )));
    }
    if !is_dns_label(&opts.control_plane_ns) {
        return Err(InitError::Invalid(format!(
            "control-plane namespace {:?} is not a DNS-1123 label",
            opts.control_plane_ns
        )));
    }
    let paths: Vec<PathBuf> = [
        files::TRUST_ANCHORS,
        files::ISSUER_CERT,
        files::ISSUER_KEY,
        files::TOKEN_KEY,
    ]
    .iter()
    .map(|name| opts.out.join(name))
    .collect();
    if !opts.force {
        if let Some(existing) = paths.iter().find(|p| p.exists()) {
            return Err(InitError::Exists(existing.clone()));
        }
    }
    std::fs::create_dir_all(&opts.out).map_err(|error| FileError::Io {
        path: opts.out.clone(),
        error,
    })?;

    let material = generate(trust_domain, &opts.control_plane_ns)?;
    let contents: [(&[u8], bool); 4] = [
        (material.anchor_pem.as_bytes(), false),
        (material.issuer_pem.as_bytes(), false),
        (material.issuer_key_pem.as_bytes(), true),
        (material.token_key.as_bytes(), true),
    ];
    for (path, (bytes, secret)) in paths.iter().zip(contents) {
        write(path, bytes, secret, opts.force)?;
    }
    Ok(paths)
}

fn write(path: &Path, bytes: &[u8], secret: bool, force: bool) -> Result<(), InitError> {
    files::write_new(path, bytes, secret, force).map_err(|e| match e {
        FileError::Io { error, .. } if error.kind() == std::io::ErrorKind::AlreadyExists => {
            InitError::Exists(path.to_path_buf())
        }
        other => InitError::File(other),
    })
}

/// Generated PEM material.
struct Material {
    anchor_pem: String,
    issuer_pem: String,
    issuer_key_pem: String,
    token_key: String,
}

fn generate(trust_domain: &str, control_ns: &str) -> Result<Material, InitError> {
    let now = OffsetDateTime::now_utc();
    let gen = |what| {
        move |e: rcgen::Error| InitError::Generate {
            what,
            reason: e.to_string(),
        }
    };

    let anchor_key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen("trust anchor key"))?;
    let anchor_params = ca_params(
        &trust_anchor_cn(trust_domain),
        1,
        now,
        TRUST_ANCHOR_LIFETIME,
    );
    let anchor = anchor_params
        .self_signed(&anchor_key)
        .map_err(gen("trust anchor"))?;
    let anchor_issuer = Issuer::new(anchor_params, anchor_key);

    let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen("issuer key"))?;
    let mut issuer_params = ca_params(
        &issuer_cn(control_ns, trust_domain),
        0,
        now,
        ISSUER_LIFETIME,
    );
    issuer_params.use_authority_key_identifier_extension = true;
    let issuer = issuer_params
        .signed_by(&issuer_key, &anchor_issuer)
        .map_err(gen("issuer certificate"))?;

    let (_, token_key) = TokenKey::generate().map_err(|_| InitError::Generate {
        what: "token key",
        reason: "the system random number generator failed".into(),
    })?;
    Ok(Material {
        anchor_pem: pem::encode("CERTIFICATE", anchor.der()),
        issuer_pem: pem::encode("CERTIFICATE", issuer.der()),
        issuer_key_pem: pem::encode("PRIVATE KEY", &issuer_key.serialize_der()),
        token_key: format!("{token_key}\n"),
    })
}

/// Parameters of a CA certificate with path length `pathlen`.
fn ca_params(cn: &str, pathlen: u8, now: OffsetDateTime, lifetime: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(pathlen));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now;
    params.not_after = now + time::Duration::seconds(lifetime.as_secs() as i64);
    params
}
