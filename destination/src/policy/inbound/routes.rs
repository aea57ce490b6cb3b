//! The HTTP routes of a port without HTTPRoutes: `default` and `probe`.

use std::collections::BTreeSet;

use linkerd2_proxy_api::http_route::{path_match, HttpRouteMatch, PathMatch};
use linkerd2_proxy_api::inbound::{http_route, HttpRoute};

use super::authz::{authz, ClientAuthn};
use crate::policy::networks::Cidr;
use crate::policy::proto::{default_meta, match_all};

/// The routes Linkerd's policy controller sends for an unconfigured port:
/// `default` (every request; authorized by the server's authorizations),
/// then, if the pod has HTTP probes on the port and probe networks are
/// configured, `probe` (`GET` on exactly those paths, unauthenticated from
/// the probe networks).
pub fn default_routes(probe_paths: &BTreeSet<String>, probe_networks: &[Cidr]) -> Vec<HttpRoute> {
    let mut routes = vec![HttpRoute {
        metadata: Some(default_meta("default")),
        hosts: Vec::new(),
        authorizations: Vec::new(),
        rules: vec![http_route::Rule {
            matches: vec![match_all()],
            filters: Vec::new(),
        }],
    }];
    if probe_paths.is_empty() {
        return routes;
    }
    let Some(probe_authz) = authz("probe", probe_networks, ClientAuthn::Unauthenticated) else {
        return routes;
    };
    routes.push(HttpRoute {
        metadata: Some(default_meta("probe")),
        hosts: Vec::new(),
        authorizations: vec![probe_authz],
        rules: vec![http_route::Rule {
            matches: probe_paths.iter().map(|p| probe_match(p)).collect(),
            filters: Vec::new(),
        }],
    });
    routes
}

fn probe_match(path: &str) -> HttpRouteMatch {
    HttpRouteMatch {
        path: Some(PathMatch {
            kind: Some(path_match::Kind::Exact(path.to_string())),
        }),
        method: Some(http::Method::GET.into()),
        ..Default::default()
    }
}
