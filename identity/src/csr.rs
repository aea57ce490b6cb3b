//! Certificate signing requests: parsing (with signature check) and the
//! name and key rules a workload CSR must follow.

use rcgen::CertificateSigningRequestParams;
use rustls_pki_types::CertificateSigningRequestDer;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::keys;

/// A parsed CSR whose self-signature has been verified.
#[derive(Debug)]
pub struct Csr {
    /// What rcgen understood of the request (subject and public key).
    pub(crate) params: CertificateSigningRequestParams,
    common_names: Vec<String>,
    sans: Vec<San>,
    key_check: Result<(), String>,
}

/// One subject alternative name from a CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
enum San {
    Dns(String),
    Email(String),
    Uri(String),
    Ip,
    Other(&'static str),
}

impl Csr {
    /// Parses a DER PKCS#10 request and verifies its signature.
    pub fn parse(der: &[u8]) -> Result<Self, String> {
        let (rest, csr) = X509CertificationRequest::from_der(der)
            .map_err(|e| format!("CSR is not a DER PKCS#10 certificate request: {e}"))?;
        if !rest.is_empty() {
            return Err("CSR has trailing bytes after the request".into());
        }
        // rcgen verifies the request's signature (x509-parser `verify`).
        let params =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(der))
                .map_err(|e| match e {
                    rcgen::Error::InvalidCertificationRequestSignature => {
                        "CSR signature does not verify".to_string()
                    }
                    other => format!("CSR cannot be used: {other}"),
                })?;
        let info = &csr.certification_request_info;
        let common_names = info
            .subject
            .iter_common_name()
            .map(|cn| {
                cn.as_str()
                    .map(str::to_string)
                    .map_err(|_| "CSR common name is not a string".to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut sans = Vec::new();
        for ext in csr.requested_extensions().into_iter().flatten() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                sans.extend(san.general_names.iter().map(San::from));
            }
        }
        Ok(Self {
            params,
            common_names,
            sans,
            key_check: keys::require_p256(&info.subject_pki).map_err(|e| format!("CSR {e}")),
        })
    }

    /// Checks the names: exactly one DNS SAN equal to `identity`, a common
    /// name that is empty or equal to it, and no email, IP or URI SANs.
    pub fn check_names(&self, identity: &str) -> Result<(), String> {
        for san in &self.sans {
            match san {
                San::Dns(_) => {}
                San::Email(e) => return Err(format!("CSR must not have email SANs; found {e:?}")),
                San::Uri(u) => return Err(format!("CSR must not have URI SANs; found {u:?}")),
                San::Ip => return Err("CSR must not have IP address SANs".into()),
                San::Other(kind) => return Err(format!("CSR must not have {kind} SANs")),
            }
        }
        let dns: Vec<&str> = self
            .sans
            .iter()
            .filter_map(|s| match s {
                San::Dns(d) => Some(d.as_str()),
                _ => None,
            })
            .collect();
        match dns.as_slice() {
            [] => {
                return Err(format!(
                    "CSR has no DNS SAN; expected exactly one, {identity:?}"
                ))
            }
            [one] if *one == identity => {}
            [one] => {
                return Err(format!(
                    "CSR DNS SAN {one:?} does not match the requested identity {identity:?}"
                ))
            }
            many => {
                return Err(format!(
                    "CSR has {} DNS SANs; expected exactly one, {identity:?}",
                    many.len()
                ))
            }
        }
        match self.common_names.as_slice() {
            [] => Ok(()),
            [cn] if cn.is_empty() || cn == identity => Ok(()),
            [cn] => Err(format!(
                "CSR common name {cn:?} does not match the requested identity {identity:?}"
            )),
            _ => Err("CSR has more than one common name".into()),
        }
    }

    /// Checks that the public key is ECDSA P-256.
    pub fn check_key(&self) -> Result<(), String> {
        self.key_check.clone()
    }
}

impl From<&GeneralName<'_>> for San {
    fn from(name: &GeneralName<'_>) -> Self {
        match name {
            GeneralName::DNSName(d) => San::Dns(d.to_string()),
            GeneralName::RFC822Name(e) => San::Email(e.to_string()),
            GeneralName::URI(u) => San::Uri(u.to_string()),
            GeneralName::IPAddress(_) => San::Ip,
            GeneralName::DirectoryName(_) => San::Other("directory name"),
            GeneralName::OtherName(..) => San::Other("otherName"),
            GeneralName::RegisteredID(_) => San::Other("registered ID"),
            _ => San::Other("unsupported"),
        }
    }
}
