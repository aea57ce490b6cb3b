//! What the index says about one workload port: its default policy,
//! whether it is opaque, and its probe paths.

use std::collections::BTreeSet;

use tracing::warn;

use super::probes::probe_paths;
use crate::index::{ObjectKey, PodSummary, Store};
use crate::policy::default_policy::DefaultPolicy;
use crate::policy::workload::{Workload, WorkloadKind};
use crate::policy::PolicySettings;
use crate::resolve::ports::{PortSet, OPAQUE_PORTS};

pub use crate::index::pod::REQUIRE_IDENTITY_PORTS;

/// The inputs of one port's `Server` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPolicy {
    /// The default policy in force (after `require-identity` ports).
    pub policy: DefaultPolicy,
    /// Whether the port is opaque (`Opaque` instead of `Detect`).
    pub opaque: bool,
    /// HTTP probe paths on this port (the `probe` route).
    pub probe_paths: BTreeSet<String>,
}

/// Looks `workload`'s `port` up in the index.
///
/// A workload the index does not know (or an ExternalWorkload, which wisp
/// does not index) gets the cluster defaults, so the proxy always gets an
/// answer; it is updated once the pod appears.
pub fn port_policy(
    store: &Store,
    settings: &PolicySettings,
    workload: &Workload,
    port: u16,
) -> PortPolicy {
    let pod = match &workload.kind {
        WorkloadKind::Pod(name) => store.pod(&ObjectKey::new(&workload.namespace, name)),
        WorkloadKind::External(_) => None,
    };
    let Some(pod) = pod else {
        return PortPolicy {
            policy: settings.default_inbound_policy,
            opaque: settings.default_opaque_ports.contains(port),
            probe_paths: BTreeSet::new(),
        };
    };
    let mut policy = pod_default_policy(pod).unwrap_or(settings.default_inbound_policy);
    if PortSet::from_pod(pod, REQUIRE_IDENTITY_PORTS).is_some_and(|set| set.contains(port)) {
        policy = policy.require_identity();
    }
    let opaque = match PortSet::from_pod(pod, OPAQUE_PORTS) {
        Some(set) => set.contains(port),
        None => settings.default_opaque_ports.contains(port),
    };
    PortPolicy {
        policy,
        opaque,
        probe_paths: probe_paths(pod, port),
    }
}

/// The pod's `default-inbound-policy` annotation, if set and valid.
fn pod_default_policy(pod: &PodSummary) -> Option<DefaultPolicy> {
    match pod.default_inbound_policy()?.parse() {
        Ok(policy) => Some(policy),
        Err(error) => {
            warn!(pod = %pod.key(), %error, "ignoring invalid default-inbound-policy annotation");
            None
        }
    }
}
