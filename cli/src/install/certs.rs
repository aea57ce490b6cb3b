//! Certificates `wisp install` generates when none are given: the identity
//! trust anchor and issuer (by `wisp identity init`'s code), and the proxy
//! injector's CA and serving certificate. Also backs the chart's `genCA`
//! and `genSignedCert` functions.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;

/// Why certificate material could not be made or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CertError {
    /// rcgen failed (a bug or an unusable parameter, e.g. a bad name).
    #[error("cannot generate {what}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// A CA given to `genSignedCert` is not a PEM certificate and key.
    #[error("the CA passed to genSignedCert is unusable")]
    BadCa(#[source] rcgen::Error),
    /// `wisp identity init` failed.
    #[error("cannot generate the identity trust anchor and issuer")]
    Identity(#[source] wisp_identity::init::InitError),
    /// A temporary directory for the identity material failed.
    #[error("cannot use a temporary directory for the identity material")]
    Io(#[source] std::io::Error),
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub(crate) struct CertPem {
    /// The certificate (PEM).
    pub(crate) cert: String,
    /// Its PKCS#8 private key (PEM).
    pub(crate) key: String,
}

/// The identity material: trust anchors and the issuer they sign.
#[derive(Debug, Clone)]
pub(crate) struct IdentityPem {
    /// Trust anchor certificate (PEM).
    pub(crate) trust_anchors: String,
    /// Issuer certificate (PEM).
    pub(crate) issuer: CertPem,
}

/// A fresh trust anchor and issuer for `trust_domain`, made by the same code
/// as `wisp identity init` (written to a private temporary directory and
/// read back; the token key it also makes is discarded).
pub(crate) fn identity(
    trust_domain: &str,
    control_plane_ns: &str,
) -> Result<IdentityPem, CertError> {
    let dir = tempfile::tempdir().map_err(CertError::Io)?;
    let opts = wisp_identity::init::InitOptions {
        out: dir.path().join("identity"),
        trust_domain: trust_domain.to_string(),
        control_plane_ns: control_plane_ns.to_string(),
        force: false,
    };
    wisp_identity::init::init(&opts).map_err(CertError::Identity)?;
    let read = |name: &str| std::fs::read_to_string(opts.out.join(name)).map_err(CertError::Io);
    Ok(IdentityPem {
        trust_anchors: read(wisp_identity::files::TRUST_ANCHORS)?,
        issuer: CertPem {
            cert: read(wisp_identity::files::ISSUER_CERT)?,
            key: read(wisp_identity::files::ISSUER_KEY)?,
        },
    })
}

fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    let lifetime = Duration::from_secs(u64::from(days) * 24 * 60 * 60);
    (
        now - time::Duration::minutes(5),
        now + time::Duration::seconds(lifetime.as_secs() as i64),
    )
}

/// A self-signed ECDSA P-256 CA named `cn`, valid for `days` (Sprig's
/// `genCA`, with a P-256 key instead of RSA).
pub(crate) fn gen_ca(cn: &str, days: u32) -> Result<CertPem, CertError> {
    let gen = |what| move |source| CertError::Generate { what, source };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen("CA key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.not_before, params.not_after) = validity(days);
    let cert = params.self_signed(&key).map_err(gen("CA certificate"))?;
    Ok(CertPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A server certificate for `cn` with the given IP and DNS subject
/// alternative names, signed by `ca` (Sprig's `genSignedCert`).
pub(crate) fn gen_signed(
    cn: &str,
    ips: &[IpAddr],
    dns: &[String],
    days: u32,
    ca: &CertPem,
) -> Result<CertPem, CertError> {
    let gen = |what| move |source| CertError::Generate { what, source };
    let ca_key = KeyPair::from_pem(&ca.key).map_err(CertError::BadCa)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).map_err(CertError::BadCa)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen("serving key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    for name in dns {
        let name = name
            .as_str()
            .try_into()
            .map_err(gen("a DNS subject alternative name"))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = validity(days);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(gen("serving certificate"))?;
    Ok(CertPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The injector's CA and its serving certificate for Service
/// `linkerd-proxy-injector` in `ns`: (CA, serving certificate).
pub(crate) fn injector(
    ns: &str,
    cluster_domain: &str,
    days: u32,
) -> Result<(CertPem, CertPem), CertError> {
    let ca = gen_ca(&format!("wisp-proxy-injector.{ns}"), days)?;
    let host = format!("linkerd-proxy-injector.{ns}.svc");
    let names = [host.clone(), format!("{host}.{cluster_domain}")];
    let serving = gen_signed(&host, &[], &names, days, &ca)?;
    Ok((ca, serving))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn injector_certificate_chains_to_its_ca() {
        let (ca, serving) = injector("linkerd", "cluster.local", 30).unwrap();
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.cert.as_bytes()).unwrap();
        let ca_cert = ca_pem.parse_x509().unwrap();
        let (_, leaf_pem) = x509_parser::pem::parse_x509_pem(serving.cert.as_bytes()).unwrap();
        let leaf = leaf_pem.parse_x509().unwrap();
        leaf.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert!(ca_cert.is_ca());
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        let text = format!("{:?}", san.value);
        assert!(
            text.contains("linkerd-proxy-injector.linkerd.svc"),
            "{text}"
        );
        assert!(serving.key.contains("PRIVATE KEY"));
    }

    #[test]
    fn identity_material_is_a_chain() {
        let id = identity("cluster.local", "linkerd").unwrap();
        let (_, a) = x509_parser::pem::parse_x509_pem(id.trust_anchors.as_bytes()).unwrap();
        let anchor = a.parse_x509().unwrap();
        let (_, i) = x509_parser::pem::parse_x509_pem(id.issuer.cert.as_bytes()).unwrap();
        let issuer = i.parse_x509().unwrap();
        issuer.verify_signature(Some(anchor.public_key())).unwrap();
        assert!(issuer.is_ca());
    }
}
