//! `wisp1.` tokens: `wisp1.<b64url(JSON {"sa","ns","exp"})>.<b64url(HMAC-SHA256)>`,
//! signed with the identity directory's `token.key`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::{ServiceAccount, TokenError, TokenValidator, ValidateFuture};
use crate::files::{self, FileError};
use crate::names::is_dns_label;

/// The first part of every token.
pub const TOKEN_PREFIX: &str = "wisp1";

/// Length of a generated token key, in bytes.
const KEY_LEN: usize = 32;

#[derive(Serialize, Deserialize)]
struct Claims {
    sa: String,
    ns: String,
    exp: u64,
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The service account or namespace is not a DNS-1123 label.
    #[error("{what} {name:?} is not a DNS-1123 label")]
    NotALabel {
        /// `service account` or `namespace`.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// The expiry is before the Unix epoch.
    #[error("expiry is before 1970")]
    BeforeEpoch,
    /// The TTL overflows the clock.
    #[error("TTL too long")]
    TtlTooLong,
    /// The claims could not be encoded.
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
}

/// The HMAC-SHA256 key that signs and verifies tokens.
pub struct TokenKey {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// Generates a fresh 32-byte key; returns it and its base64 file form.
    pub fn generate() -> Result<(Self, String), ring::error::Unspecified> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut bytes)?;
        let text = STANDARD.encode(bytes);
        Ok((Self::from_bytes(&bytes), text))
    }

    /// A key from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// Reads a `token.key` file (base64, surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = files::read_string(path)?;
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| FileError::invalid(path, format!("not base64: {e}")))?;
        if bytes.len() < 16 {
            return Err(FileError::invalid(
                path,
                format!("key is {} bytes; at least 16 are required", bytes.len()),
            ));
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// Signs a token for `sa` in `ns`, valid until `expires`. Names must be
    /// DNS-1123 labels.
    pub fn sign(&self, sa: &str, ns: &str, expires: SystemTime) -> Result<String, SignError> {
        for (what, name) in [("service account", sa), ("namespace", ns)] {
            if !is_dns_label(name) {
                return Err(SignError::NotALabel {
                    what,
                    name: name.to_string(),
                });
            }
        }
        let exp = expires
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SignError::BeforeEpoch)?
            .as_secs();
        let claims = Claims {
            sa: sa.to_string(),
            ns: ns.to_string(),
            exp,
        };
        let json = serde_json::to_vec(&claims).map_err(SignError::Encode)?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = hmac::sign(&self.key, payload.as_bytes());
        Ok(format!(
            "{TOKEN_PREFIX}.{payload}.{}",
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        ))
    }

    /// Signs a token valid for `ttl` from now.
    pub fn sign_for(&self, sa: &str, ns: &str, ttl: Duration) -> Result<String, SignError> {
        let expires = SystemTime::now()
            .checked_add(ttl)
            .ok_or(SignError::TtlTooLong)?;
        self.sign(sa, ns, expires)
    }

    /// Verifies a token (signature in constant time, then expiry) and
    /// returns its service account.
    pub fn verify(&self, token: &[u8]) -> Result<ServiceAccount, TokenError> {
        let token = std::str::from_utf8(token)
            .map_err(|_| TokenError::Invalid)?
            .trim();
        let mut parts = token.split('.');
        let (Some(TOKEN_PREFIX), Some(payload), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Invalid)?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).map_err(|_| TokenError::Invalid)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
        if !is_dns_label(&claims.sa) || !is_dns_label(&claims.ns) {
            return Err(TokenError::Invalid);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if claims.exp <= now {
            return Err(TokenError::Expired(format_unix(claims.exp)));
        }
        Ok(ServiceAccount {
            name: claims.sa,
            namespace: claims.ns,
        })
    }
}

fn format_unix(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or_else(|| secs.to_string(), crate::ca::rfc3339)
}

/// Validates `wisp1.` tokens with the identity directory's `token.key`.
#[derive(Debug)]
pub struct DirTokenValidator {
    key: TokenKey,
}

impl DirTokenValidator {
    /// A validator for tokens signed with `key`.
    pub fn new(key: TokenKey) -> Self {
        Self { key }
    }

    /// Loads `token.key` from an identity directory.
    pub fn load_dir(dir: &Path) -> Result<Self, FileError> {
        TokenKey::load(&dir.join(files::TOKEN_KEY)).map(Self::new)
    }
}

impl TokenValidator for DirTokenValidator {
    fn validate<'a>(&'a self, token: &'a [u8]) -> ValidateFuture<'a> {
        Box::pin(async move { self.key.verify(token) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::from_bytes(&[7; 32])
    }

    #[test]
    fn round_trip() {
        let token = key()
            .sign_for("web", "shop", Duration::from_secs(60))
            .expect("sign");
        assert!(token.starts_with("wisp1."));
        let sa = key()
            .verify(format!("{token}\n").as_bytes())
            .expect("verify");
        assert_eq!(sa.name, "web");
        assert_eq!(sa.namespace, "shop");
    }

    #[test]
    fn expired() {
        let past = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let token = key().sign("web", "shop", past).expect("sign");
        assert_eq!(
            key().verify(token.as_bytes()),
            Err(TokenError::Expired("2001-09-09T01:46:40Z".into()))
        );
        assert_eq!(
            TokenError::Expired("2001-09-09T01:46:40Z".into()).to_string(),
            "token expired at 2001-09-09T01:46:40Z"
        );
    }

    #[test]
    fn forged_and_garbled() {
        let token = key()
            .sign_for("web", "shop", Duration::from_secs(60))
            .expect("sign");
        let other = TokenKey::from_bytes(&[8; 32]);
        assert_eq!(other.verify(token.as_bytes()), Err(TokenError::Invalid));
        let (head, _) = token.rsplit_once('.').expect("dot");
        let forged_claims =
            URL_SAFE_NO_PAD.encode(br#"{"sa":"admin","ns":"shop","exp":99999999999}"#);
        let forged = format!(
            "wisp1.{forged_claims}.{}",
            head.rsplit('.').next().unwrap_or("")
        );
        for bad in [
            forged.as_str(),
            "",
            "wisp1",
            "wisp1.a.b",
            "x.y.z",
            "wisp1.a.b.c",
            "\u{0}",
        ] {
            assert_eq!(
                key().verify(bad.as_bytes()),
                Err(TokenError::Invalid),
                "{bad:?}"
            );
        }
        assert_eq!(key().verify(&[0xff, 0xfe]), Err(TokenError::Invalid));
    }

    #[test]
    fn names_must_be_labels() {
        assert!(key()
            .sign_for("Web", "shop", Duration::from_secs(60))
            .is_err());
        assert!(key()
            .sign_for("web", "a.b", Duration::from_secs(60))
            .is_err());
    }
}
