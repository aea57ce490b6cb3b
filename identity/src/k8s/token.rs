//! Tokens checked by the API server: a TokenReview per Certify.
//!
//! Outcomes, with the [`TokenError`] kind (and so the gRPC code the
//! Certify handler answers, as Linkerd's identity controller does):
//!
//! | TokenReview answer | Result |
//! |---|---|
//! | `status.error` set | [`TokenError::Invalid`] (`InvalidArgument`) |
//! | not `authenticated` | [`TokenError::NotAuthenticated`] (`FailedPrecondition`) |
//! | `status.audiences` lacks ours (an empty list means the API server's own audience) | [`TokenError::NotAuthenticated`] |
//! | user not `system:serviceaccount:<ns>:<sa>` with DNS-1123 labels | [`TokenError::Invalid`] |
//! | the API server cannot be asked (network, RBAC, 5xx) | [`TokenError::Unavailable`] (`Unavailable`) |

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{debug, info};

use super::chain;
use crate::names::is_dns_label;
use crate::token::{ServiceAccount, TokenError, TokenValidator, ValidateFuture};

/// Validates ServiceAccount tokens with the Kubernetes TokenReview API.
///
/// The controller's ServiceAccount needs `create` on
/// `authentication.k8s.io/tokenreviews`.
#[derive(Clone)]
pub struct TokenReviewValidator {
    api: Api<TokenReview>,
    audience: String,
}

impl std::fmt::Debug for TokenReviewValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewValidator")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenReviewValidator {
    /// A validator asking the API server behind `client`, for tokens of
    /// audience [`super::AUDIENCE`].
    pub fn new(client: Client) -> Self {
        Self {
            api: Api::all(client),
            audience: super::AUDIENCE.to_string(),
        }
    }

    /// The same validator for tokens of another audience.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    async fn review(&self, token: &[u8]) -> Result<ServiceAccount, TokenError> {
        let token = std::str::from_utf8(token)
            .map_err(|_| TokenError::Invalid)?
            .trim();
        if token.is_empty() {
            return Err(TokenError::Invalid);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..TokenReview::default()
        };
        let answer = self
            .api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                TokenError::Unavailable(format!("TokenReview request failed: {}", chain(&e)))
            })?;
        let status = answer.status.unwrap_or_default();
        if let Some(error) = status.error.filter(|e| !e.is_empty()) {
            info!(%error, "TokenReview: the API server rejected the token");
            return Err(TokenError::Invalid);
        }
        if status.authenticated != Some(true) {
            return Err(TokenError::NotAuthenticated(
                "the API server did not authenticate the token".into(),
            ));
        }
        let audiences = status.audiences.unwrap_or_default();
        if !audiences.contains(&self.audience) {
            return Err(TokenError::NotAuthenticated(format!(
                "the token is not for audience {:?} (reviewed audiences: {audiences:?})",
                self.audience
            )));
        }
        let username = status.user.and_then(|u| u.username).unwrap_or_default();
        let sa = service_account(&username).ok_or_else(|| {
            debug!(%username, "TokenReview: not a ServiceAccount");
            TokenError::Invalid
        })?;
        Ok(sa)
    }
}

/// `system:serviceaccount:<ns>:<sa>` → the ServiceAccount, if both are
/// DNS-1123 labels.
fn service_account(username: &str) -> Option<ServiceAccount> {
    let mut parts = username.split(':');
    let (Some("system"), Some("serviceaccount"), Some(ns), Some(sa), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (is_dns_label(ns) && is_dns_label(sa)).then(|| ServiceAccount {
        name: sa.to_string(),
        namespace: ns.to_string(),
    })
}

impl TokenValidator for TokenReviewValidator {
    fn validate<'a>(&'a self, token: &'a [u8]) -> ValidateFuture<'a> {
        Box::pin(self.review(token))
    }
}

#[cfg(test)]
mod tests {
    use super::service_account;

    #[test]
    fn usernames() {
        let sa = service_account("system:serviceaccount:shop:web").expect("sa");
        assert_eq!((sa.name.as_str(), sa.namespace.as_str()), ("web", "shop"));
        for bad in [
            "",
            "admin",
            "system:node:worker-1",
            "system:serviceaccount:shop",
            "system:serviceaccount:shop:web:x",
            "system:serviceaccount:Shop:web",
            "system:serviceaccount:shop:web.x",
            "user:serviceaccount:shop:web",
        ] {
            assert!(service_account(bad).is_none(), "{bad:?}");
        }
    }
}
