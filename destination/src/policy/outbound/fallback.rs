//! The answers that are not a Service's routes: `egress-fallback` and
//! `undefined-port`.

use std::net::SocketAddr;

use linkerd2_proxy_api::http_route::HttpRouteMatch;
use linkerd2_proxy_api::meta::Metadata;
use linkerd2_proxy_api::opaque_route::Forbidden;
use linkerd2_proxy_api::outbound::{
    opaque_route, proxy_protocol, OpaqueRoute, OutboundPolicy, ProxyProtocol,
};

use super::backend::forward;
use super::routes;
use crate::policy::proto::{default_meta, duration};
use crate::policy::PolicySettings;

/// Name of the policy for IPs outside the cluster networks.
pub const EGRESS_FALLBACK: &str = "egress-fallback";

/// Linkerd's policy for an IP outside the cluster networks: `Detect` whose
/// opaque, HTTP/1 and HTTP/2 routes all forward to the original destination.
pub fn egress_fallback(addr: SocketAddr, settings: &PolicySettings) -> OutboundPolicy {
    let meta = default_meta(EGRESS_FALLBACK);
    let backend = forward(meta.clone(), addr);
    let http = routes::http(
        meta.clone(),
        vec![HttpRouteMatch::default()],
        backend.clone(),
    );
    OutboundPolicy {
        protocol: Some(ProxyProtocol {
            kind: Some(proxy_protocol::Kind::Detect(proxy_protocol::Detect {
                timeout: Some(duration(settings.detect_timeout)),
                opaque: Some(proxy_protocol::Opaque {
                    routes: vec![routes::opaque(meta.clone(), backend)],
                }),
                http1: Some(proxy_protocol::Http1 {
                    routes: vec![http.clone()],
                    failure_accrual: None,
                }),
                http2: Some(proxy_protocol::Http2 {
                    routes: vec![http],
                    failure_accrual: None,
                }),
            })),
        }),
        metadata: Some(meta),
    }
}

/// Linkerd's policy for a Service cluster IP on a port the Service does not
/// define: `Opaque` with one route whose rule has an empty distribution and
/// a `Forbidden` filter.
pub fn undefined_port(meta: Metadata) -> OutboundPolicy {
    let route = OpaqueRoute {
        metadata: Some(default_meta("undefined-port")),
        rules: vec![opaque_route::Rule {
            backends: Some(opaque_route::Distribution {
                kind: Some(opaque_route::distribution::Kind::Empty(
                    opaque_route::distribution::Empty {},
                )),
            }),
            filters: vec![opaque_route::Filter {
                kind: Some(opaque_route::filter::Kind::Forbidden(Forbidden {})),
            }],
        }],
    };
    OutboundPolicy {
        protocol: Some(ProxyProtocol {
            kind: Some(proxy_protocol::Kind::Opaque(proxy_protocol::Opaque {
                routes: vec![route],
            })),
        }),
        metadata: Some(meta),
    }
}
