//! The Linkerd policy APIs: `InboundServerPolicies` and `OutboundPolicies`.
//!
//! wisp indexes no policy objects yet (Server, HTTPRoute,
//! AuthorizationPolicy, ...), so both services answer what Linkerd's policy
//! controller answers when none exist:
//!
//! * [`inbound`]: the pod's default policy (cluster default or the
//!   `config.linkerd.io/default-inbound-policy` annotation), `Detect` or
//!   `Opaque`, the default HTTP route plus a `probe` route for the pod's
//!   HTTP probe paths.
//! * [`outbound`]: for a Service, the default `http`/`opaq` routes to one
//!   balancer backend discovered through `Destination.Get`; `egress-fallback`
//!   for an IP outside the cluster networks; `NotFound` otherwise.
//!
//! Streams are driven by the index's change notifications ([`changes`]).

pub mod changes;
pub mod default_policy;
pub mod inbound;
pub mod networks;
pub mod outbound;
pub mod proto;
pub mod workload;

use std::time::Duration;

pub use default_policy::DefaultPolicy;
pub use inbound::InboundPolicyService;
pub use networks::{Cidr, NetworksError};
pub use outbound::OutboundPolicyService;
pub use workload::{Workload, WorkloadError};

use crate::resolve::ports::PortSet;

/// Linkerd's default `clusterNetworks`.
pub const DEFAULT_CLUSTER_NETWORKS: &str =
    "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8";
/// Ports that are opaque unless an annotation says otherwise.
pub const DEFAULT_OPAQUE_PORTS: &str = "25,587,3306,4444,5432,6379,9300,11211";
/// Networks kubelet probes may come from (Linkerd's default `probeNetworks`).
pub const DEFAULT_PROBE_NETWORKS: &str = "0.0.0.0/0,::/0";
/// Protocol detection timeout sent in `Detect`.
pub const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Cluster-wide settings of the policy services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySettings {
    /// Networks of the cluster: the `cluster-*` default policies allow them,
    /// and outbound IPs outside them get the `egress-fallback` policy.
    pub cluster_networks: Vec<Cidr>,
    /// The default inbound policy of pods without the annotation.
    pub default_inbound_policy: DefaultPolicy,
    /// Networks allowed to reach the `probe` route.
    pub probe_networks: Vec<Cidr>,
    /// Ports treated as opaque when no `opaque-ports` annotation applies.
    pub default_opaque_ports: PortSet,
    /// Protocol detection timeout.
    pub detect_timeout: Duration,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            cluster_networks: networks::parse_list(DEFAULT_CLUSTER_NETWORKS).unwrap_or_default(),
            default_inbound_policy: DefaultPolicy::AllUnauthenticated,
            probe_networks: networks::parse_list(DEFAULT_PROBE_NETWORKS).unwrap_or_default(),
            default_opaque_ports: PortSet::parse(DEFAULT_OPAQUE_PORTS, None),
            detect_timeout: DETECT_TIMEOUT,
        }
    }
}
