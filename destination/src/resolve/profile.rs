//! Building a `DestinationProfile` from the index.
//!
//! A Service's profile ([`service_profile`]) is its ServiceProfile (the
//! client's namespace first, then the Service's, kubernetes.md §1.4) and the
//! TrafficSplits whose apex it is, translated by `wisp_profiles`.

use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Service;
use linkerd2_proxy_api::destination::{DestinationProfile, RetryBudget, WeightedAddr};
use wisp_profiles::{ServiceRef, TrafficSplit};

use super::endpoint::{is_opaque_port, weighted_addr, EndpointInput};
use super::endpoints::{resolve_endpoints, service_port, Endpoints};
use super::ports::{PortSet, OPAQUE_PORTS};
use super::target::{ServiceName, Target};
use super::Settings;
use crate::index::{ObjectKey, Store};
use crate::policy::DEFAULT_OPAQUE_PORTS;

/// Why a profile cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    /// More than one Service claims this cluster IP.
    #[error("cluster IP {0} is claimed by more than one Service")]
    ConflictingClusterIp(IpAddr),
}

/// The retry budget Linkerd sends when no ServiceProfile sets one.
pub fn default_retry_budget() -> RetryBudget {
    RetryBudget {
        retry_ratio: 0.2,
        min_retries_per_second: 10,
        ttl: Some(prost_types::Duration {
            seconds: 10,
            nanos: 0,
        }),
    }
}

/// The profile for `target` as the index stands now, for a client in
/// namespace `client_ns` (from the context token; its ServiceProfiles take
/// precedence over the Service's own).
///
/// Unknown targets get an empty `DestinationProfile{}`.
pub fn resolve_profile(
    store: &Store,
    settings: &Settings,
    target: &Target,
    client_ns: Option<&str>,
) -> Result<DestinationProfile, ProfileError> {
    match target {
        Target::Addr(addr) => profile_by_addr(store, settings, *addr, client_ns),
        Target::Service { name, port } if name.hostname.is_some() => {
            Ok(instance_profile(store, settings, name, *port))
        }
        Target::Service { name, port } => {
            let key = ObjectKey::new(&name.namespace, &name.service);
            Ok(store
                .service(&key)
                .and_then(|svc| service_profile(store, settings, &key, svc, *port, client_ns))
                .unwrap_or_default())
        }
    }
}

fn profile_by_addr(
    store: &Store,
    settings: &Settings,
    addr: SocketAddr,
    client_ns: Option<&str>,
) -> Result<DestinationProfile, ProfileError> {
    let services = store.services_by_cluster_ip(addr.ip());
    match services.as_slice() {
        [] => {}
        [(key, svc)] => {
            return Ok(
                service_profile(store, settings, key, svc, addr.port(), client_ns)
                    .unwrap_or_default(),
            )
        }
        _ => return Err(ProfileError::ConflictingClusterIp(addr.ip())),
    }
    let Some(pod) = store.pod_by_ip(addr.ip()) else {
        return Ok(DestinationProfile::default());
    };
    let endpoint = weighted_addr(
        settings,
        EndpointInput {
            addr,
            pod: Some(pod),
            zone: None,
            service: None,
        },
    );
    Ok(endpoint_profile(
        endpoint,
        pod.namespace(),
        is_opaque_port(pod, addr.port(), None),
    ))
}

/// `host.svc.ns.svc.cd`: the profile of that one instance.
fn instance_profile(
    store: &Store,
    settings: &Settings,
    name: &ServiceName,
    port: u16,
) -> DestinationProfile {
    let Endpoints::Found { addrs, .. } = resolve_endpoints(store, settings, name, port) else {
        return DestinationProfile::default();
    };
    let Some((addr, endpoint)) = addrs.into_iter().next() else {
        return DestinationProfile::default();
    };
    let opaque = store
        .pod_by_ip(addr.ip())
        .is_some_and(|pod| is_opaque_port(pod, addr.port(), None));
    endpoint_profile(endpoint, &name.namespace, opaque)
}

fn endpoint_profile(
    mut endpoint: WeightedAddr,
    namespace: &str,
    opaque: bool,
) -> DestinationProfile {
    endpoint
        .metric_labels
        .insert("namespace".into(), namespace.to_string());
    DestinationProfile {
        opaque_protocol: opaque,
        retry_budget: Some(default_retry_budget()),
        endpoint: Some(endpoint),
        ..Default::default()
    }
}

/// The profile of Service `key` on `port`; `None` if it has no such port.
///
/// - routes, retry budget, `dstOverrides` and `profile_ref` from the
///   ServiceProfile `<svc>.<ns>.svc.<cd>` in `client_ns` if there is one,
///   else from the one in the Service's namespace;
/// - TrafficSplits in the Service's namespace whose `spec.service` is the
///   Service replace the `dstOverrides` (the first by name);
/// - `opaque_protocol` from the Service's `config.linkerd.io/opaque-ports`
///   annotation, or the default opaque ports when it has none;
/// - `parent_ref` the Service. Neither object: the default profile.
pub fn service_profile(
    store: &Store,
    settings: &Settings,
    key: &ObjectKey,
    svc: &Service,
    port: u16,
    client_ns: Option<&str>,
) -> Option<DestinationProfile> {
    service_port(svc, port)?;
    let fqn = format!(
        "{}.{}.svc.{}",
        key.name, key.namespace, settings.cluster_domain
    );
    let profile = client_ns
        .into_iter()
        .chain([key.namespace.as_str()])
        .find_map(|ns| store.service_profile(&ObjectKey::new(ns, &fqn)));
    let splits: Vec<&TrafficSplit> = store
        .traffic_splits(&key.namespace)
        .filter(|ts| ts.spec.service == key.name)
        .collect();
    let parent = ServiceRef {
        name: key.name.clone(),
        namespace: key.namespace.clone(),
    };
    let mut out = wisp_profiles::destination_profile(
        &fqn,
        port,
        Some(&parent),
        profile,
        &splits,
        &settings.cluster_domain,
    );
    out.opaque_protocol = is_opaque_service_port(svc, port);
    Some(out)
}

/// Whether `port` of `svc` is opaque: listed in its
/// `config.linkerd.io/opaque-ports` annotation, or, without the annotation,
/// in the default opaque ports (as Linkerd's controller does).
pub fn is_opaque_service_port(svc: &Service, port: u16) -> bool {
    let annotated = svc
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(OPAQUE_PORTS));
    if annotated {
        PortSet::from_annotation(&svc.metadata, OPAQUE_PORTS).contains(port)
    } else {
        PortSet::parse(DEFAULT_OPAQUE_PORTS, None).contains(port)
    }
}
