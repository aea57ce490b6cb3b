//! Building one `WeightedAddr` the way Linkerd's endpoint translator does.

use std::collections::HashMap;
use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Service;
use linkerd2_proxy_api::destination::{
    http2_client_params::KeepAlive, protocol_hint, tls_identity, Http2ClientParams, ProtocolHint,
    TlsIdentity, WeightedAddr,
};

use super::ports::{PortSet, OPAQUE_PORTS, SKIP_INBOUND_PORTS};
use super::Settings;
use crate::index::PodSummary;

pub use crate::index::pod::{CONTROL_PLANE_NS_LABEL, DEFAULT_INBOUND_PORT};

/// Weight Linkerd gives every endpoint.
pub const DEFAULT_WEIGHT: u32 = 10_000;

/// Everything known about one endpoint address.
#[derive(Clone, Copy, Debug)]
pub struct EndpointInput<'a> {
    /// The address to connect to.
    pub addr: SocketAddr,
    /// The Pod behind the address, if known.
    pub pod: Option<&'a PodSummary>,
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
    if PortSet::from_pod(pod, SKIP_INBOUND_PORTS).is_some_and(|set| set.contains(port)) {
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
        opaque_transport: pod
            .proxy_inbound_port()
            .map(|inbound_port| protocol_hint::OpaqueTransport { inbound_port }),
    });
    addr.http2 = Some(meshed_http2_params());
    addr
}

/// Whether `port` on `pod` is opaque (pod annotation, or the Service's for its port).
pub fn is_opaque_port(pod: &PodSummary, port: u16, service: Option<(&Service, u16)>) -> bool {
    if PortSet::from_pod(pod, OPAQUE_PORTS).is_some_and(|set| set.contains(port)) {
        return true;
    }
    service.is_some_and(|(svc, svc_port)| {
        let set = PortSet::from_annotation(&svc.metadata, OPAQUE_PORTS);
        set.contains(svc_port) || set.contains(port)
    })
}

/// Whether the pod is meshed with this control plane.
pub fn is_meshed(settings: &Settings, pod: &PodSummary) -> bool {
    pod.control_plane_ns() == Some(settings.control_plane_ns.as_str())
}

/// `<sa>.<ns>.serviceaccount.identity.<controlNs>.<trustDomain>`.
pub fn identity_name(settings: &Settings, pod: &PodSummary) -> String {
    format!(
        "{}.{}.serviceaccount.identity.{}.{}",
        pod.service_account(),
        pod.namespace(),
        settings.control_plane_ns,
        settings.trust_domain
    )
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

/// Address-level metric labels derived from a Pod.
fn pod_labels(pod: &PodSummary) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    labels.insert("pod".to_string(), pod.name().to_string());
    let hash = pod.template_hash();
    if let Some(owner) = pod.owner() {
        labels.insert(owner.label.to_string(), owner.name.to_string());
    }
    labels.insert("serviceaccount".into(), pod.service_account().to_string());
    if let Some(ns) = pod.control_plane_ns() {
        labels.insert("control_plane_ns".into(), ns.to_string());
    }
    if let Some(hash) = hash {
        labels.insert("pod_template_hash".into(), hash.to_string());
    }
    labels
}
