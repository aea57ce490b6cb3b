//! Resolving a Service name and port to its current endpoint set.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use linkerd2_proxy_api::destination::WeightedAddr;

use super::endpoint::{weighted_addr, EndpointInput};
use super::target::ServiceName;
use super::Settings;
use crate::index::{EndpointSliceSummary, ObjectKey, Store};

/// The answer to a `Get` at one point in time.
#[derive(Clone, Debug, PartialEq)]
pub enum Endpoints {
    /// The Service does not exist.
    NotFound,
    /// The Service exists; these are its ready endpoints (possibly none).
    Found {
        /// Set-level metric labels (`service`, `namespace`).
        labels: HashMap<String, String>,
        /// The endpoints, by socket address.
        addrs: BTreeMap<SocketAddr, WeightedAddr>,
    },
}

/// Resolves `name:port` against the index.
pub fn resolve_endpoints(
    store: &Store,
    settings: &Settings,
    name: &ServiceName,
    port: u16,
) -> Endpoints {
    let key = ObjectKey::new(&name.namespace, &name.service);
    let Some(svc) = store.service(&key) else {
        return Endpoints::NotFound;
    };
    let svc_port = service_port(svc, port);
    let mut addrs = BTreeMap::new();
    for slice in store.slices_for_service(&name.namespace, &name.service) {
        let Some(target_port) = slice_target_port(slice, svc_port, port) else {
            continue;
        };
        for endpoint in slice.endpoints() {
            if !endpoint.matches_hostname(name.hostname.as_deref()) {
                continue;
            }
            let ip = endpoint.ip();
            let addr = SocketAddr::new(ip, target_port);
            let pod = slice
                .target_pod(endpoint)
                .and_then(|(ns, pod)| store.pod(&ObjectKey::new(ns, pod)))
                .or_else(|| store.pod_by_ip(ip));
            let input = EndpointInput {
                addr,
                pod,
                zone: slice.zone(endpoint),
                service: Some((svc, port)),
            };
            addrs.insert(addr, weighted_addr(settings, input));
        }
    }
    let labels = HashMap::from([
        ("service".to_string(), name.service.clone()),
        ("namespace".to_string(), name.namespace.clone()),
    ]);
    Endpoints::Found { labels, addrs }
}

/// The Service port with this port number.
pub fn service_port(svc: &Service, port: u16) -> Option<&ServicePort> {
    svc.spec
        .as_ref()?
        .ports
        .iter()
        .flatten()
        .find(|p| p.port == i32::from(port))
}

/// The port endpoints of `slice` listen on for the requested Service port.
fn slice_target_port(
    slice: &EndpointSliceSummary,
    svc_port: Option<&ServicePort>,
    requested: u16,
) -> Option<u16> {
    let Some(svc_port) = svc_port else {
        // Unknown Service port: like Linkerd, use the requested port as is.
        return Some(requested);
    };
    let ports: Vec<_> = slice.ports().collect();
    let name = svc_port.name.as_deref().unwrap_or_default();
    let by_name = ports
        .iter()
        .find(|(port_name, _)| *port_name == name)
        .and_then(|(_, port)| *port);
    let only = match ports.as_slice() {
        [(_, only)] => *only,
        _ => None,
    };
    let by_target = match &svc_port.target_port {
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(_)) => None,
        None => Some(svc_port.port),
    };
    by_name
        .or(only)
        .or(by_target)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}
