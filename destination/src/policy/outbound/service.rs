//! The policy of a Service port with no HTTPRoute/GRPCRoute/TCPRoute.

use k8s_openapi::api::core::v1::Service;
use linkerd2_proxy_api::meta::{metadata, Metadata, Resource};
use linkerd2_proxy_api::outbound::{proxy_protocol, OutboundPolicy, ProxyProtocol};

use super::backend::balancer;
use super::fallback::undefined_port;
use super::routes;
use crate::index::ObjectKey;
use crate::policy::proto::{default_meta, duration, match_all};
use crate::policy::PolicySettings;
use crate::resolve::endpoints::service_port;
use crate::resolve::ports::{PortSet, OPAQUE_PORTS};

/// A protocol fixed by the Service port's `appProtocol` or the opaque-ports
/// annotation (Linkerd's `AppProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppProtocol {
    /// `http`.
    Http1,
    /// `kubernetes.io/h2c`.
    Http2,
    /// `linkerd.io/opaque`, `linkerd.io/tcp`, any other value, or an opaque port.
    Opaque,
}

impl AppProtocol {
    /// Maps an `appProtocol` value like Linkerd's policy controller.
    pub fn from_app_protocol(value: &str) -> Self {
        match value {
            "http" => Self::Http1,
            "kubernetes.io/h2c" => Self::Http2,
            _ => Self::Opaque,
        }
    }
}

/// `Resource{group:"core", kind:"Service", name, namespace, port}`.
pub fn service_meta(key: &ObjectKey, port: u16) -> Metadata {
    Metadata {
        kind: Some(metadata::Kind::Resource(Resource {
            group: "core".into(),
            kind: "Service".into(),
            name: key.name.clone(),
            namespace: key.namespace.clone(),
            section: String::new(),
            port: u32::from(port),
        })),
    }
}

/// The protocol fixed for `port`: the Service port's `appProtocol` wins,
/// then the Service's `opaque-ports` annotation (the default opaque ports
/// when the annotation is absent); `None` means detect.
pub fn app_protocol(svc: &Service, port: u16, settings: &PolicySettings) -> Option<AppProtocol> {
    if let Some(value) = service_port(svc, port).and_then(|p| p.app_protocol.as_deref()) {
        return Some(AppProtocol::from_app_protocol(value));
    }
    let annotated = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(OPAQUE_PORTS));
    let opaque = match annotated {
        Some(list) => PortSet::parse(list, None).contains(port),
        None => settings.default_opaque_ports.contains(port),
    };
    opaque.then_some(AppProtocol::Opaque)
}

/// The policy Linkerd's controller sends for Service `key` on `port`.
///
/// `by_addr` is true when the target was its cluster IP: then a port the
/// Service does not define gets the `undefined-port` (forbidden) policy.
pub fn service_policy(
    svc: &Service,
    key: &ObjectKey,
    port: u16,
    by_addr: bool,
    cluster_domain: &str,
    settings: &PolicySettings,
) -> OutboundPolicy {
    let meta = service_meta(key, port);
    if by_addr && service_port(svc, port).is_none() {
        return undefined_port(meta);
    }
    let path = format!(
        "{}.{}.svc.{}:{}",
        key.name, key.namespace, cluster_domain, port
    );
    let backend = balancer(meta.clone(), path);
    let http = || routes::http(default_meta("http"), vec![match_all()], backend.clone());
    let opaque = || proxy_protocol::Opaque {
        routes: vec![routes::opaque(default_meta("opaq"), backend.clone())],
    };
    let kind = match app_protocol(svc, port, settings) {
        None => proxy_protocol::Kind::Detect(proxy_protocol::Detect {
            timeout: Some(duration(settings.detect_timeout)),
            opaque: Some(opaque()),
            http1: Some(proxy_protocol::Http1 {
                routes: vec![http()],
                failure_accrual: None,
            }),
            http2: Some(proxy_protocol::Http2 {
                routes: vec![http()],
                failure_accrual: None,
            }),
        }),
        Some(AppProtocol::Http1) => proxy_protocol::Kind::Http1(proxy_protocol::Http1 {
            routes: vec![http()],
            failure_accrual: None,
        }),
        Some(AppProtocol::Http2) => proxy_protocol::Kind::Http2(proxy_protocol::Http2 {
            routes: vec![http()],
            failure_accrual: None,
        }),
        Some(AppProtocol::Opaque) => proxy_protocol::Kind::Opaque(opaque()),
    };
    OutboundPolicy {
        protocol: Some(ProxyProtocol { kind: Some(kind) }),
        metadata: Some(meta),
    }
}
