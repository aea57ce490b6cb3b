//! Configuration of the identity server.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ca::Validity;
use crate::names::{identity_service_name, workload_identity};

/// Default listen address of the identity service (Linkerd's port).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// Default control-plane namespace.
pub const DEFAULT_CONTROL_PLANE_NS: &str = "linkerd";

/// Everything `serve` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Identity directory holding `ca.crt`, `issuer.crt`, `issuer.key`, `token.key`.
    pub dir: PathBuf,
    /// Listen address (TLS and plaintext on the same port).
    pub addr: SocketAddr,
    /// Identity trust domain.
    pub trust_domain: String,
    /// Namespace of the control plane.
    pub control_plane_ns: String,
    /// How issued certificates are dated.
    pub validity: Validity,
}

impl Config {
    /// A config with default domain, namespace and validity.
    pub fn new(dir: impl Into<PathBuf>, addr: SocketAddr) -> Self {
        Self {
            dir: dir.into(),
            addr,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            control_plane_ns: DEFAULT_CONTROL_PLANE_NS.to_string(),
            validity: Validity::default(),
        }
    }

    /// The identity the service presents over TLS.
    pub fn service_name(&self) -> String {
        identity_service_name(&self.control_plane_ns, &self.trust_domain)
    }

    /// The identity of service account `sa` in namespace `ns`.
    pub fn workload_identity(&self, sa: &str, ns: &str) -> String {
        workload_identity(sa, ns, &self.control_plane_ns, &self.trust_domain)
    }
}
