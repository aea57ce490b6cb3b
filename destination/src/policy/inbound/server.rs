//! The `Server` message for one port.

use linkerd2_proxy_api::inbound::{proxy_protocol, ProxyProtocol, Server};

use super::authz::policy_authzs;
use super::port::PortPolicy;
use super::routes::default_routes;
use crate::policy::proto::{default_labels, duration};
use crate::policy::PolicySettings;

/// Builds the `Server` Linkerd's policy controller sends for a port with no
/// Server resource: labels `{group:"", kind:"default", name:<policy>}`, the
/// policy's authorizations, and `Detect{timeout, http_routes}` (or
/// `Opaque{}` for an opaque port).
pub fn to_server(port: &PortPolicy, settings: &PolicySettings) -> Server {
    let kind = if port.opaque {
        proxy_protocol::Kind::Opaque(proxy_protocol::Opaque {})
    } else {
        proxy_protocol::Kind::Detect(proxy_protocol::Detect {
            timeout: Some(duration(settings.detect_timeout)),
            http_routes: default_routes(&port.probe_paths, &settings.probe_networks),
            http_local_rate_limit: None,
        })
    };
    Server {
        protocol: Some(ProxyProtocol { kind: Some(kind) }),
        server_ips: Vec::new(),
        authorizations: policy_authzs(port.policy, &settings.cluster_networks),
        labels: default_labels(port.policy.as_str()),
    }
}
