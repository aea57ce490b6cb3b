//! Identity on Kubernetes.
//!
//! - [`TokenReviewValidator`]: proxies' ServiceAccount tokens checked by
//!   the API server (an `authentication.k8s.io/v1` TokenReview with
//!   audience [`AUDIENCE`]).
//! - [`KubeCa`]: the CA's material read from the issuer Secret and the
//!   trust-roots ConfigMap of the control-plane namespace, watched, and
//!   swapped into the running [`Ca`](crate::Ca) when it changes.

mod material;
mod token;
mod watch;

pub use material::{anchors_from_configmap, ca_from_objects, issuer_from_secret, MaterialError};
pub use token::TokenReviewValidator;
pub use watch::{KubeCa, KubeCaStats, ObjectNames};

/// The audience of the tokens proxies send (their projected ServiceAccount
/// token volume is requested for it).
pub const AUDIENCE: &str = "identity.l5d.io";
/// Default name of the Secret holding the issuer certificate and key.
pub const ISSUER_SECRET: &str = "linkerd-identity-issuer";
/// Default name of the ConfigMap holding the trust anchors.
pub const TRUST_ROOTS_CONFIGMAP: &str = "linkerd-identity-trust-roots";
/// The ConfigMap key holding the trust anchors (PEM bundle).
pub const TRUST_ROOTS_KEY: &str = "ca-bundle.crt";

/// An error and its causes on one line.
pub(crate) use wisp_common::error::chain;
