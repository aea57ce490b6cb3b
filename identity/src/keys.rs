//! ECDSA P-256 keys: loading signing keys and checking public keys.

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION};
use x509_parser::x509::SubjectPublicKeyInfo;

/// DER of the `id-ecPublicKey` + `prime256v1` AlgorithmIdentifier contents.
const EC_P256_ALGORITHM: &[u8] = &[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, // prime256v1
];

/// Why a key is not an acceptable ECDSA P-256 key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The private key is RSA.
    #[error("RSA keys are not supported; the issuer key must be ECDSA P-256")]
    RsaPrivateKey,
    /// The private key is in a format other than PKCS#8 or SEC1.
    #[error("unsupported private key format")]
    UnsupportedFormat,
    /// The private key does not load as a P-256 signing key.
    #[error("not an ECDSA P-256 private key ({0})")]
    NotP256(#[source] rcgen::Error),
    /// The public key is a compressed (or malformed) P-256 point.
    #[error("the ECDSA P-256 public key is not an uncompressed point")]
    NotUncompressed,
    /// The public key is ECDSA on another curve (named here).
    #[error("public key must be ECDSA P-256; got ECDSA on curve {0}")]
    OtherCurve(String),
    /// The public key is ECDSA without a named curve.
    #[error("public key must be ECDSA P-256; got ECDSA without a named curve")]
    NoNamedCurve,
    /// The public key is RSA.
    #[error("public key must be ECDSA P-256; got RSA")]
    RsaPublicKey,
    /// The public key uses another algorithm (its OID).
    #[error("public key must be ECDSA P-256; got key algorithm {0}")]
    OtherAlgorithm(String),
}

/// Turns a PEM-decoded private key into a P-256 signing key. PKCS#8
/// (`PRIVATE KEY`) and SEC1 (`EC PRIVATE KEY`, what `step` writes) are accepted.
pub fn p256_signing_key(key: &PrivateKeyDer<'_>) -> Result<KeyPair, KeyError> {
    let pkcs8 = match key {
        PrivateKeyDer::Pkcs8(pkcs8) => pkcs8.clone_key(),
        PrivateKeyDer::Sec1(sec1) => {
            PrivatePkcs8KeyDer::from(sec1_to_pkcs8(sec1.secret_sec1_der()))
        }
        PrivateKeyDer::Pkcs1(_) => return Err(KeyError::RsaPrivateKey),
        _ => return Err(KeyError::UnsupportedFormat),
    };
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &PKCS_ECDSA_P256_SHA256)
        .map_err(KeyError::NotP256)
}

/// Wraps a SEC1 `ECPrivateKey` in a PKCS#8 `PrivateKeyInfo` for P-256.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00]; // version 0
    body.extend(tlv(0x30, EC_P256_ALGORITHM));
    body.extend(tlv(0x04, sec1));
    tlv(0x30, &body)
}

/// One DER tag-length-value.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let len = value.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(value);
    out
}

/// Checks that a public key is an uncompressed ECDSA P-256 point; the error
/// names the key type found.
pub fn require_p256(spki: &SubjectPublicKeyInfo<'_>) -> Result<(), KeyError> {
    let alg = &spki.algorithm;
    if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
        return match curve {
            Some(curve) if curve == OID_EC_P256 => {
                let point = &spki.subject_public_key.data;
                if point.len() == 65 && point.first() == Some(&0x04) {
                    Ok(())
                } else {
                    Err(KeyError::NotUncompressed)
                }
            }
            Some(curve) => Err(KeyError::OtherCurve(
                curve_name(&curve.to_id_string()).to_string(),
            )),
            None => Err(KeyError::NoNamedCurve),
        };
    }
    if alg.algorithm == OID_PKCS1_RSAENCRYPTION {
        return Err(KeyError::RsaPublicKey);
    }
    Err(KeyError::OtherAlgorithm(alg.algorithm.to_id_string()))
}

fn curve_name(oid: &str) -> &str {
    match oid {
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        "1.3.132.0.10" => "secp256k1",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_lengths() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 1, 44]);
    }

    #[test]
    fn pkcs8_key_loads() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("keygen");
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let loaded = p256_signing_key(&der).expect("load");
        assert_eq!(loaded.public_key_raw(), key.public_key_raw());
    }
}
