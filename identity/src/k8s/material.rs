//! The CA's material in Kubernetes objects: the issuer Secret
//! (`tls.crt`/`tls.key`, or Linkerd's `crt.pem`/`key.pem`) and the
//! trust-roots ConfigMap (`ca-bundle.crt`).

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ca::{Ca, CaError, Validity};

/// The certificate and key entries an issuer Secret may use, in the order tried.
const KEY_SCHEMES: [(&str, &str); 2] = [("tls.crt", "tls.key"), ("crt.pem", "key.pem")];

/// Why the objects do not make a usable CA; the operator's to fix.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// The issuer Secret lacks its entries or they do not parse.
    #[error("Secret {object}: {reason}")]
    Secret {
        /// `<namespace>/<name>`.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// The trust-roots ConfigMap lacks its entry or it does not parse.
    #[error("ConfigMap {object}: {reason}")]
    ConfigMap {
        /// `<namespace>/<name>`.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// The issuer is not usable with these trust anchors (expired, not a
    /// CA, does not chain, key mismatch, ...).
    #[error("issuer in Secret {secret} with the trust anchors of ConfigMap {configmap}: {source}")]
    Ca {
        /// `<namespace>/<name>` of the Secret.
        secret: String,
        /// `<namespace>/<name>` of the ConfigMap.
        configmap: String,
        /// Why the CA refused them.
        #[source]
        source: CaError,
    },
}

fn object_name<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The issuer chain (leaf first) and key of an issuer Secret:
/// `tls.crt`/`tls.key` (type `kubernetes.io/tls`, cert-manager) or, failing
/// that, `crt.pem`/`key.pem` (Linkerd's own scheme).
pub fn issuer_from_secret(
    secret: &Secret,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), MaterialError> {
    let invalid = |reason: String| MaterialError::Secret {
        object: object_name(secret),
        reason,
    };
    let data = secret.data.clone().unwrap_or_default();
    let Some((cert_key, key_key)) = KEY_SCHEMES
        .into_iter()
        .find(|(c, k)| data.contains_key(*c) && data.contains_key(*k))
    else {
        return Err(invalid(
            "needs entries tls.crt and tls.key (or crt.pem and key.pem)".into(),
        ));
    };
    let certs = CertificateDer::pem_slice_iter(&data[cert_key].0)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{cert_key}: bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(format!("{cert_key}: no CERTIFICATE block")));
    }
    let key = PrivateKeyDer::from_pem_slice(&data[key_key].0)
        .map_err(|e| invalid(format!("{key_key}: no usable private key: {e}")))?;
    Ok((certs, key))
}

/// The trust anchors of a trust-roots ConfigMap (key `ca-bundle.crt`,
/// in `data` or `binaryData`).
pub fn anchors_from_configmap(
    configmap: &ConfigMap,
) -> Result<Vec<CertificateDer<'static>>, MaterialError> {
    let invalid = |reason: String| MaterialError::ConfigMap {
        object: object_name(configmap),
        reason,
    };
    let key = super::TRUST_ROOTS_KEY;
    let pem: Vec<u8> = match (
        configmap.data.as_ref().and_then(|d| d.get(key)),
        configmap.binary_data.as_ref().and_then(|d| d.get(key)),
    ) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(bytes)) => bytes.0.clone(),
        (None, None) => return Err(invalid(format!("has no {key} entry"))),
    };
    let anchors = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{key}: bad PEM: {e}")))?;
    if anchors.is_empty() {
        return Err(invalid(format!("{key}: no CERTIFICATE block")));
    }
    Ok(anchors)
}

/// A CA from an issuer Secret and a trust-roots ConfigMap, with the checks
/// of [`Ca::from_der`] (the issuer must chain to one of the anchors).
pub fn ca_from_objects(
    secret: &Secret,
    configmap: &ConfigMap,
    validity: Validity,
) -> Result<Ca, MaterialError> {
    let (mut chain, key) = issuer_from_secret(secret)?;
    let anchors = anchors_from_configmap(configmap)?;
    let issuer = chain.swap_remove(0);
    Ca::from_der(anchors, issuer, &key, validity).map_err(|source| MaterialError::Ca {
        secret: object_name(secret),
        configmap: object_name(configmap),
        source,
    })
}
