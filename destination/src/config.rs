//! Configuration of the Destination server.

use std::net::SocketAddr;

use crate::resolve::Settings;
use crate::source::SourceSpec;

/// Default listen address of the Destination API.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8086";

/// Everything `serve` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where objects come from.
    pub source: SourceSpec,
    /// gRPC listen address.
    pub addr: SocketAddr,
    /// Cluster DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// Identity trust domain.
    pub trust_domain: String,
    /// Namespace of the control plane whose meshed pods get identities.
    pub control_plane_ns: String,
}

impl Config {
    /// A config with default domains and control-plane namespace.
    pub fn new(source: SourceSpec, addr: SocketAddr) -> Self {
        let defaults = Settings::default();
        Self {
            source,
            addr,
            cluster_domain: defaults.cluster_domain,
            trust_domain: defaults.trust_domain,
            control_plane_ns: defaults.control_plane_ns,
        }
    }

    /// The naming settings used when building answers (trailing dots removed).
    pub fn settings(&self) -> Settings {
        Settings {
            cluster_domain: self.cluster_domain.trim_matches('.').to_string(),
            trust_domain: self.trust_domain.trim_matches('.').to_string(),
            control_plane_ns: self.control_plane_ns.clone(),
        }
    }
}
