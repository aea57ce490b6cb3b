//! Default outbound routes: one rule sending everything to one backend.

use linkerd2_proxy_api::http_route::HttpRouteMatch;
use linkerd2_proxy_api::meta::Metadata;
use linkerd2_proxy_api::outbound::{http_route, opaque_route, Backend, HttpRoute, OpaqueRoute};

/// An HTTP route named by `metadata` with one rule: `matches`, then
/// `first_available` over `backend`.
pub fn http(metadata: Metadata, matches: Vec<HttpRouteMatch>, backend: Backend) -> HttpRoute {
    HttpRoute {
        metadata: Some(metadata),
        hosts: Vec::new(),
        rules: vec![http_route::Rule {
            matches,
            backends: Some(http_route::Distribution {
                kind: Some(http_route::distribution::Kind::FirstAvailable(
                    http_route::distribution::FirstAvailable {
                        backends: vec![http_route::RouteBackend {
                            backend: Some(backend),
                            filters: Vec::new(),
                            ..Default::default()
                        }],
                    },
                )),
            }),
            ..Default::default()
        }],
    }
}

/// An opaque route named by `metadata` with one rule: `first_available`
/// over `backend`.
pub fn opaque(metadata: Metadata, backend: Backend) -> OpaqueRoute {
    OpaqueRoute {
        metadata: Some(metadata),
        rules: vec![opaque_route::Rule {
            backends: Some(opaque_route::Distribution {
                kind: Some(opaque_route::distribution::Kind::FirstAvailable(
                    opaque_route::distribution::FirstAvailable {
                        backends: vec![opaque_route::RouteBackend {
                            backend: Some(backend),
                            filters: Vec::new(),
                        }],
                    },
                )),
            }),
            filters: Vec::new(),
        }],
    }
}
