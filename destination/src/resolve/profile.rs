//! Building a `DestinationProfile` from the index.
//!
//! ServiceProfile and TrafficSplit translation slots in here: see
//! [`service_profile`], which today returns the default profile.

use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Service;
use linkerd2_proxy_api::destination::{DestinationProfile, RetryBudget, WeightedAddr};
use linkerd2_proxy_api::meta::{metadata, Metadata, Resource};

use super::endpoint::{is_opaque_port, weighted_addr, EndpointInput};
use super::endpoints::{resolve_endpoints, service_port, Endpoints};
use super::ports::{PortSet, OPAQUE_PORTS};
use super::target::{ServiceName, Target};
use super::Settings;
use crate::index::{ObjectKey, Store};

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

/// The profile for `target` as the index stands now.
///
/// Unknown targets get an empty `DestinationProfile{}`.
pub fn resolve_profile(
    store: &Store,
    settings: &Settings,
    target: &Target,
) -> Result<DestinationProfile, ProfileError> {
    match target {
        Target::Addr(addr) => profile_by_addr(store, settings, *addr),
        Target::Service { name, port } if name.hostname.is_some() => {
            Ok(instance_profile(store, settings, name, *port))
        }
        Target::Service { name, port } => {
            let key = ObjectKey::new(&name.namespace, &name.service);
            Ok(store
                .service(&key)
                .and_then(|svc| service_profile(settings, &key, svc, *port))
                .unwrap_or_default())
        }
    }
}

fn profile_by_addr(
    store: &Store,
    settings: &Settings,
    addr: SocketAddr,
) -> Result<DestinationProfile, ProfileError> {
    let services = store.services_by_cluster_ip(addr.ip());
    match services.as_slice() {
        [] => {}
        [(key, svc)] => {
            return Ok(service_profile(settings, key, svc, addr.port()).unwrap_or_default())
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
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    Ok(endpoint_profile(
        endpoint,
        namespace,
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
/// This is where ServiceProfile routes and TrafficSplit overrides will be
/// applied once the index holds them.
pub fn service_profile(
    settings: &Settings,
    key: &ObjectKey,
    svc: &Service,
    port: u16,
) -> Option<DestinationProfile> {
    service_port(svc, port)?;
    let opaque = PortSet::from_annotation(&svc.metadata, OPAQUE_PORTS, None).contains(port);
    Some(DestinationProfile {
        fully_qualified_name: format!(
            "{}.{}.svc.{}",
            key.name, key.namespace, settings.cluster_domain
        ),
        opaque_protocol: opaque,
        retry_budget: Some(default_retry_budget()),
        parent_ref: Some(Metadata {
            kind: Some(metadata::Kind::Resource(Resource {
                group: "core".into(),
                kind: "Service".into(),
                name: key.name.clone(),
                namespace: key.namespace.clone(),
                section: String::new(),
                port: u32::from(port),
            })),
        }),
        ..Default::default()
    })
}
