//! Workload tokens: who is asking for a certificate.
//!
//! [`TokenValidator`] turns the token a proxy sends into a service account.
//! [`DirTokenValidator`] checks `wisp1.` tokens signed with the identity
//! directory's `token.key`; [`crate::k8s::TokenReviewValidator`] asks the
//! Kubernetes API server (TokenReview).

mod signed;

use std::future::Future;
use std::pin::Pin;

pub use signed::{DirTokenValidator, SignError, TokenKey, TOKEN_PREFIX};

/// A Kubernetes-style service account: the subject of a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceAccount {
    /// Service account name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Forged, garbled or otherwise unusable.
    #[error("invalid token")]
    Invalid,
    /// Well-formed and authentic, but past its expiry (RFC 3339 time).
    #[error("token expired at {0}")]
    Expired(String),
    /// Understood but not authenticated by the authority (e.g. TokenReview).
    #[error("token not authenticated: {0}")]
    NotAuthenticated(String),
    /// The authority that validates tokens cannot be reached.
    #[error("token validation unavailable: {0}")]
    Unavailable(String),
}

/// The future returned by [`TokenValidator::validate`].
pub type ValidateFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ServiceAccount, TokenError>> + Send + 'a>>;

/// Checks a token and names the service account it was issued to.
pub trait TokenValidator: Send + Sync + 'static {
    /// Validates `token` (the raw bytes a proxy sends in `CertifyRequest.token`).
    fn validate<'a>(&'a self, token: &'a [u8]) -> ValidateFuture<'a>;
}
