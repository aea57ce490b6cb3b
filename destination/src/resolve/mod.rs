//! Turning index contents into Destination API answers.

pub mod endpoint;
pub mod endpoints;
pub mod ports;
pub mod profile;
pub mod target;

pub use endpoints::{resolve_endpoints, Endpoints};
pub use profile::{resolve_profile, ProfileError};
pub use target::{
    parse_context_token, parse_target, ContextToken, ServiceName, Target, TargetError,
};

/// Mesh-wide naming settings used when building answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Cluster DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// Identity trust domain (defaults to the cluster domain).
    pub trust_domain: String,
    /// Namespace of the control plane (`linkerd`).
    pub control_plane_ns: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
            trust_domain: "cluster.local".into(),
            control_plane_ns: "linkerd".into(),
        }
    }
}
