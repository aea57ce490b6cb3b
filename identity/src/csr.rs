//! Certificate signing requests: parsing (with signature check) and the
//! name and key rules a workload CSR must follow.

use rcgen::CertificateSigningRequestParams;
use rustls_pki_types::CertificateSigningRequestDer;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::error::X509Error;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::keys::{self, KeyError};

/// Why a CSR is unacceptable: it does not parse, or breaks a name or key
/// rule. The messages are those the Certify API returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CsrError {
    /// Not a DER PKCS#10 request.
    #[error("CSR is not a DER PKCS#10 certificate request: {0}")]
    NotDer(#[source] x509_parser::nom::Err<X509Error>),
    /// Bytes follow the request.
    #[error("CSR has trailing bytes after the request")]
    TrailingBytes,
    /// The self-signature does not verify.
    #[error("CSR signature does not verify")]
    BadSignature,
    /// rcgen cannot use the request.
    #[error("CSR cannot be used: {0}")]
    Unusable(#[source] rcgen::Error),
    /// A subject common name is not a string.
    #[error("CSR common name is not a string")]
    CommonNameNotString,
    /// An email SAN (the address).
    #[error("CSR must not have email SANs; found {0:?}")]
    EmailSan(String),
    /// A URI SAN (the URI).
    #[error("CSR must not have URI SANs; found {0:?}")]
    UriSan(String),
    /// An IP address SAN.
    #[error("CSR must not have IP address SANs")]
    IpSan,
    /// Another kind of SAN (its kind).
    #[error("CSR must not have {0} SANs")]
    OtherSan(&'static str),
    /// No DNS SAN; one equal to the identity is required.
    #[error("CSR has no DNS SAN; expected exactly one, {identity:?}")]
    NoDnsSan {
        /// The requested identity.
        identity: String,
    },
    /// The DNS SAN is not the requested identity.
    #[error("CSR DNS SAN {found:?} does not match the requested identity {identity:?}")]
    DnsSanMismatch {
        /// The SAN in the CSR.
        found: String,
        /// The requested identity.
        identity: String,
    },
    /// More than one DNS SAN.
    #[error("CSR has {count} DNS SANs; expected exactly one, {identity:?}")]
    ManyDnsSans {
        /// How many.
        count: usize,
        /// The requested identity.
        identity: String,
    },
    /// The common name is neither empty nor the requested identity.
    #[error("CSR common name {found:?} does not match the requested identity {identity:?}")]
    CommonNameMismatch {
        /// The common name in the CSR.
        found: String,
        /// The requested identity.
        identity: String,
    },
    /// More than one common name.
    #[error("CSR has more than one common name")]
    ManyCommonNames,
    /// The public key is not ECDSA P-256.
    #[error("CSR {0}")]
    Key(#[source] KeyError),
}

/// A parsed CSR whose self-signature has been verified.
#[derive(Debug)]
pub struct Csr {
    /// What rcgen understood of the request (subject and public key).
    pub(crate) params: CertificateSigningRequestParams,
    common_names: Vec<String>,
    sans: Vec<San>,
    key_check: Result<(), KeyError>,
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
    pub fn parse(der: &[u8]) -> Result<Self, CsrError> {
        let (rest, csr) = X509CertificationRequest::from_der(der).map_err(CsrError::NotDer)?;
        if !rest.is_empty() {
            return Err(CsrError::TrailingBytes);
        }
        // rcgen verifies the request's signature (x509-parser `verify`).
        let params =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(der))
                .map_err(|e| match e {
                    rcgen::Error::InvalidCertificationRequestSignature => CsrError::BadSignature,
                    other => CsrError::Unusable(other),
                })?;
        let info = &csr.certification_request_info;
        let common_names = info
            .subject
            .iter_common_name()
            .map(|cn| {
                cn.as_str()
                    .map(str::to_string)
                    .map_err(|_| CsrError::CommonNameNotString)
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
            key_check: keys::require_p256(&info.subject_pki),
        })
    }

    /// Checks the names: exactly one DNS SAN equal to `identity`, a common
    /// name that is empty or equal to it, and no email, IP or URI SANs.
    pub fn check_names(&self, identity: &str) -> Result<(), CsrError> {
        for san in &self.sans {
            match san {
                San::Dns(_) => {}
                San::Email(e) => return Err(CsrError::EmailSan(e.clone())),
                San::Uri(u) => return Err(CsrError::UriSan(u.clone())),
                San::Ip => return Err(CsrError::IpSan),
                San::Other(kind) => return Err(CsrError::OtherSan(kind)),
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
        let identity = identity.to_string();
        match dns.as_slice() {
            [] => return Err(CsrError::NoDnsSan { identity }),
            [one] if *one == identity => {}
            [one] => {
                return Err(CsrError::DnsSanMismatch {
                    found: one.to_string(),
                    identity,
                })
            }
            many => {
                return Err(CsrError::ManyDnsSans {
                    count: many.len(),
                    identity,
                })
            }
        }
        match self.common_names.as_slice() {
            [] => Ok(()),
            [cn] if cn.is_empty() || *cn == identity => Ok(()),
            [cn] => Err(CsrError::CommonNameMismatch {
                found: cn.clone(),
                identity,
            }),
            _ => Err(CsrError::ManyCommonNames),
        }
    }

    /// Checks that the public key is ECDSA P-256.
    pub fn check_key(&self) -> Result<(), CsrError> {
        self.key_check.clone().map_err(CsrError::Key)
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
