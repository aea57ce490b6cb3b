//! Building one `WeightedAddr` the way Linkerd's endpoint translator does.

use std::collections::HashMap;
use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use linkerd2_proxy_api::destination::{
    http2_client_params::KeepAlive, protocol_hint, tls_identity, Http2ClientParams, ProtocolHint,
    TlsIdentity, WeightedAddr,
};

use super::ports::{PortSet, OPAQUE_PORTS, SKIP_INBOUND_PORTS};
use super::Settings;

/// Label a meshed pod carries: the namespace of its control plane.
pub const CONTROL_PLANE_NS_LABEL: &str = "linkerd.io/control-plane-ns";
/// Weight Linkerd gives every endpoint.
pub const DEFAULT_WEIGHT: u32 = 10_000;
/// Inbound port assumed when the proxy container does not say.
pub const DEFAULT_INBOUND_PORT: u32 = 4143;
const PROXY_CONTAINER: &str = "linkerd-proxy";
const INBOUND_LISTEN_ADDR_ENV: &str = "LINKERD2_PROXY_INBOUND_LISTEN_ADDR";

/// Everything known about one endpoint address.
#[derive(Clone, Copy, Debug)]
pub struct EndpointInput<'a> {
    /// The address to connect to.
    pub addr: SocketAddr,
    /// The Pod behind the address, if known.
    pub pod: Option<&'a Pod>,
    /// The endpoint's topology zone, if any.
    pub zone: Option<&'a str>,
    /// The Service the endpoint was resolved through and the requested port.
    pub service: Option<(&'a Service, u16)>,
}

/// Builds the `WeightedAddr` for one endpoint.
pub fn weighted_addr(settings: &Settings, input: EndpointInput<'_>) -> WeightedAddr {
    let mut addr = WeightedAddr {
        addr: Some(input.addr.into()),
        weight: DEFAULT_WEIGHT,
        metric_labels: HashMap::new(),
        ..Default::default()
    };
    if let Some(pod) = input.pod {
        addr.metric_labels = pod_labels(pod);
    }
    addr.metric_labels
        .insert("zone".into(), input.zone.unwrap_or_default().to_string());
    addr.metric_labels
        .insert("zone_locality".into(), "unknown".into());

    let Some(pod) = input.pod.filter(|p| is_meshed(settings, p)) else {
        return addr;
    };
    let port = input.addr.port();
    if PortSet::from_annotation(&pod.metadata, SKIP_INBOUND_PORTS, Some(pod)).contains(port) {
        return addr;
    }
    let identity = tls_identity::DnsLikeIdentity {
        name: identity_name(settings, pod),
    };
    addr.tls_identity = Some(TlsIdentity {
        strategy: Some(tls_identity::Strategy::DnsLikeIdentity(identity.clone())),
        server_name: Some(identity),
    });
    let opaque = is_opaque_port(pod, port, input.service);
    addr.protocol_hint = Some(ProtocolHint {
        protocol: Some(if opaque {
            protocol_hint::Protocol::Opaque(protocol_hint::Opaque {})
        } else {
            protocol_hint::Protocol::H2(protocol_hint::H2 {})
        }),
        opaque_transport: proxy_inbound_port(pod)
            .map(|inbound_port| protocol_hint::OpaqueTransport { inbound_port }),
    });
    addr.http2 = Some(meshed_http2_params());
    addr
}

/// Whether `port` on `pod` is opaque (pod annotation, or the Service's for its port).
pub fn is_opaque_port(pod: &Pod, port: u16, service: Option<(&Service, u16)>) -> bool {
    if PortSet::from_annotation(&pod.metadata, OPAQUE_PORTS, Some(pod)).contains(port) {
        return true;
    }
    service.is_some_and(|(svc, svc_port)| {
        let set = PortSet::from_annotation(&svc.metadata, OPAQUE_PORTS, None);
        set.contains(svc_port) || set.contains(port)
    })
}

/// Whether the pod is meshed with this control plane.
pub fn is_meshed(settings: &Settings, pod: &Pod) -> bool {
    label(pod, CONTROL_PLANE_NS_LABEL) == Some(settings.control_plane_ns.as_str())
}

/// `<sa>.<ns>.serviceaccount.identity.<controlNs>.<trustDomain>`.
pub fn identity_name(settings: &Settings, pod: &Pod) -> String {
    format!(
        "{}.{}.serviceaccount.identity.{}.{}",
        service_account(pod),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        settings.control_plane_ns,
        settings.trust_domain
    )
}

/// The port in the proxy container's `LINKERD2_PROXY_INBOUND_LISTEN_ADDR`
/// (4143 when the container exists without it); `None` without a proxy container.
pub fn proxy_inbound_port(pod: &Pod) -> Option<u32> {
    let spec = pod.spec.as_ref()?;
    let proxy = spec.containers.iter().find(|c| c.name == PROXY_CONTAINER)?;
    let value = proxy
        .env
        .iter()
        .flatten()
        .find(|e| e.name == INBOUND_LISTEN_ADDR_ENV)
        .and_then(|e| e.value.as_deref());
    let port = value
        .and_then(|v| v.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .filter(|p| *p != 0);
    Some(port.map_or(DEFAULT_INBOUND_PORT, u32::from))
}

fn meshed_http2_params() -> Http2ClientParams {
    Http2ClientParams {
        keep_alive: Some(KeepAlive {
            interval: Some(prost_types::Duration {
                seconds: 10,
                nanos: 0,
            }),
            timeout: Some(prost_types::Duration {
                seconds: 3,
                nanos: 0,
            }),
            while_idle: true,
        }),
        ..Default::default()
    }
}

fn service_account(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Address-level metric labels derived from a Pod.
fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    if let Some(name) = &pod.metadata.name {
        labels.insert("pod".to_string(), name.clone());
    }
    let hash = label(pod, "pod-template-hash");
    if let Some((kind, name)) = owner(pod, hash) {
        labels.insert(kind.to_string(), name);
    }
    labels.insert("serviceaccount".into(), service_account(pod).to_string());
    if let Some(ns) = label(pod, CONTROL_PLANE_NS_LABEL) {
        labels.insert("control_plane_ns".into(), ns.to_string());
    }
    if let Some(hash) = hash {
        labels.insert("pod_template_hash".into(), hash.to_string());
    }
    labels
}

/// The label key and name of the pod's owning workload.
fn owner(pod: &Pod, template_hash: Option<&str>) -> Option<(&'static str, String)> {
    let refs = pod.metadata.owner_references.as_ref()?;
    let owner = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or(refs.first())?;
    let name = owner.name.clone();
    Some(match owner.kind.as_str() {
        "ReplicaSet" => {
            // A Deployment names its ReplicaSets `<deployment>-<pod-template-hash>`.
            match template_hash.and_then(|h| name.strip_suffix(&format!("-{h}"))) {
                Some(deployment) if !deployment.is_empty() => {
                    ("deployment", deployment.to_string())
                }
                _ => ("replicaset", name),
            }
        }
        "Deployment" => ("deployment", name),
        "StatefulSet" => ("statefulset", name),
        "DaemonSet" => ("daemonset", name),
        "Job" => ("k8s_job", name),
        "CronJob" => ("cronjob", name),
        "ReplicationController" => ("replicationcontroller", name),
        _ => return None,
    })
}
