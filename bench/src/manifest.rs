//! Kubernetes manifests describing the backend for the control plane.

use crate::args::Split;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// Name of the Service the proxy is asked to route to.
pub const SERVICE: &str = "bench";
/// Its namespace.
pub const NAMESPACE: &str = "default";
/// Cluster IP given to the Service (never dialled; the proxy resolves by name).
const CLUSTER_IP: &str = "10.96.0.99";
/// Service port; requests for `bench.default.svc.cluster.local` (port 80) match it.
const SERVICE_PORT: u16 = 80;

/// The Service + EndpointSlice YAML for a backend listening on `backend`.
pub fn render(backend: SocketAddr) -> String {
    let port = backend.port();
    let ip = backend.ip();
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    format!(
        "apiVersion: v1\n\
kind: Service\n\
metadata: {{name: {SERVICE}, namespace: {NAMESPACE}}}\n\
spec: {{clusterIP: {CLUSTER_IP}, ports: [{{name: http, port: {SERVICE_PORT}, targetPort: {port}}}]}}\n\
---\n\
apiVersion: discovery.k8s.io/v1\n\
kind: EndpointSlice\n\
metadata: {{name: {SERVICE}-1, namespace: {NAMESPACE}, labels: {{kubernetes.io/service-name: {SERVICE}}}}}\n\
addressType: {family}\n\
ports: [{{name: http, port: {port}, protocol: TCP}}]\n\
endpoints: [{{addresses: [\"{ip}\"], conditions: {{ready: true}}}}]\n"
    )
}

/// The second Service of `--split`, over the same backend address.
pub const SERVICE_V2: &str = "bench-v2";
/// Its cluster IP (never dialled either).
const CLUSTER_IP_V2: &str = "10.96.0.98";
/// Name of the `--profile-routes` route every request of the load matches.
pub const MATCHING_ROUTE: &str = "GET /";

/// The `--profile-routes` / `--split` objects: with `routes`, a
/// ServiceProfile for `bench.default.svc.cluster.local` with `routes`
/// routes (`GET /r1` .. `GET /r<N-1>`, which the load's `GET /` never
/// matches, then [`MATCHING_ROUTE`]); with `split`, a Service `bench-v2` and
/// its EndpointSlice at the same `backend`, and a TrafficSplit (v1alpha2,
/// whole weights) of apex `bench` between `bench` and `bench-v2`.
pub fn render_profile(backend: SocketAddr, routes: Option<u32>, split: Option<Split>) -> String {
    let mut docs = Vec::new();
    if let Some(n) = routes {
        let mut text = format!(
            "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{name: {SERVICE}.{NAMESPACE}.svc.cluster.local, namespace: {NAMESPACE}}}
spec:
  routes:
"
        );
        for i in 1..n {
            let _ = writeln!(
                text,
                "  - {{name: \"GET /r{i}\", condition: {{method: GET, pathRegex: \"/r{i}\"}}}}"
            );
        }
        let _ = writeln!(
            text,
            "  - {{name: \"{MATCHING_ROUTE}\", condition: {{method: GET, pathRegex: \"/\"}}}}"
        );
        docs.push(text);
    }
    if let Some(split) = split {
        let port = backend.port();
        let ip = backend.ip();
        let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        docs.push(format!(
            "apiVersion: v1
kind: Service
metadata: {{name: {SERVICE_V2}, namespace: {NAMESPACE}}}
spec: {{clusterIP: {CLUSTER_IP_V2}, ports: [{{name: http, port: {SERVICE_PORT}, targetPort: {port}}}]}}
"
        ));
        docs.push(format!(
            "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {SERVICE_V2}-1, namespace: {NAMESPACE}, labels: {{kubernetes.io/service-name: {SERVICE_V2}}}}}
addressType: {family}
ports: [{{name: http, port: {port}, protocol: TCP}}]
endpoints: [{{addresses: [\"{ip}\"], conditions: {{ready: true}}}}]
"
        ));
        docs.push(format!(
            "apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {{name: {SERVICE}-split, namespace: {NAMESPACE}}}
spec:
  service: {SERVICE}
  backends:
  - {{service: {SERVICE}, weight: {a}}}
  - {{service: {SERVICE_V2}, weight: {b}}}
",
            a = split.primary,
            b = split.secondary,
        ));
    }
    docs.join("---\n")
}

/// Name of the meshed Pod behind the Service in mesh modes.
pub const SERVER_POD: &str = "bench-server";
/// Service account of the server side (its identity is
/// `server.default.serviceaccount.identity.linkerd.cluster.local`).
pub const SERVER_SA: &str = "server";
/// Service account of the client side.
pub const CLIENT_SA: &str = "client";

/// Service + EndpointSlice + meshed Pod for mesh modes: the endpoint is the
/// backend at the pod IP, and the pod's `linkerd-proxy` container names its
/// inbound listener, so the destination service hints the peer's identity
/// and opaque transport to `server_inbound`.
pub fn render_mesh(backend: SocketAddr, server_inbound: SocketAddr) -> String {
    let port = backend.port();
    let ip = backend.ip();
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    // A plain multi-line literal: `\` line continuations would strip the
    // YAML indentation.
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {SERVICE}, namespace: {NAMESPACE}}}
spec: {{clusterIP: {CLUSTER_IP}, ports: [{{name: http, port: {SERVICE_PORT}, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {SERVICE}-1, namespace: {NAMESPACE}, labels: {{kubernetes.io/service-name: {SERVICE}}}}}
addressType: {family}
ports: [{{name: http, port: {port}, protocol: TCP}}]
endpoints:
- addresses: [\"{ip}\"]
  conditions: {{ready: true}}
  targetRef: {{kind: Pod, name: {SERVER_POD}, namespace: {NAMESPACE}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: {SERVER_POD}
  namespace: {NAMESPACE}
  labels: {{app: {SERVICE}, linkerd.io/control-plane-ns: linkerd}}
spec:
  serviceAccountName: {SERVER_SA}
  containers:
  - {{name: app, image: wisp-bench}}
  - name: linkerd-proxy
    image: wisp-proxy
    env: [{{name: LINKERD2_PROXY_INBOUND_LISTEN_ADDR, value: \"{server_inbound}\"}}]
status: {{podIP: \"{ip}\"}}
"
    )
}

/// Writes the manifests as `bench.yaml` into `dir`; with `server_inbound`,
/// the mesh variant ([`render_mesh`]). With `routes` or `split`, also
/// `bench-profile.yaml` ([`render_profile`]).
pub fn write(
    dir: &Path,
    backend: SocketAddr,
    server_inbound: Option<SocketAddr>,
    routes: Option<u32>,
    split: Option<Split>,
) -> Result<()> {
    let path = dir.join("bench.yaml");
    let text = match server_inbound {
        Some(inbound) => render_mesh(backend, inbound),
        None => render(backend),
    };
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    if routes.is_some() || split.is_some() {
        let path = dir.join("bench-profile.yaml");
        std::fs::write(&path, render_profile(backend, routes, split))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_follow_backend() {
        let addr = "127.0.0.1:18081".parse().expect("test address");
        let yaml = super::render(addr);
        assert!(yaml.contains("targetPort: 18081"));
        assert!(yaml.contains("port: 18081, protocol: TCP"));
        assert!(yaml.contains("addresses: [\"127.0.0.1\"]"));
    }

    #[test]
    fn profile_routes_and_split() {
        let addr = "127.0.0.1:18080".parse().expect("test address");
        let split = crate::args::Split {
            primary: 90,
            secondary: 10,
        };
        let yaml = super::render_profile(addr, Some(20), Some(split));
        assert_eq!(yaml.matches("  - {name: \"GET /r").count(), 19);
        assert!(yaml
            .contains("  - {name: \"GET /r19\", condition: {method: GET, pathRegex: \"/r19\"}}\n"));
        assert!(
            yaml.contains("  - {name: \"GET /\", condition: {method: GET, pathRegex: \"/\"}}\n")
        );
        assert!(yaml.contains("name: bench.default.svc.cluster.local,"));
        assert!(yaml.contains("kubernetes.io/service-name: bench-v2}"));
        assert!(yaml.contains("endpoints: [{addresses: [\"127.0.0.1\"]"));
        assert!(yaml
            .contains("  - {service: bench, weight: 90}\n  - {service: bench-v2, weight: 10}\n"));
        assert_eq!(yaml.matches("---\n").count(), 3);
        let only_routes = super::render_profile(addr, Some(1), None);
        assert!(!only_routes.contains("GET /r"));
        assert!(!only_routes.contains("TrafficSplit"));
        assert!(!super::render_profile(addr, None, Some(split)).contains("ServiceProfile"));
    }

    #[test]
    fn mesh_pod_names_inbound_and_ip() {
        let backend = "127.0.0.3:18080".parse().expect("test address");
        let inbound = "127.0.0.3:4143".parse().expect("test address");
        let yaml = super::render_mesh(backend, inbound);
        assert!(yaml.contains("targetRef: {kind: Pod, name: bench-server, namespace: default}"));
        assert!(yaml.contains("serviceAccountName: server\n"));
        assert!(yaml.contains("linkerd.io/control-plane-ns: linkerd"));
        assert!(yaml.contains("value: \"127.0.0.3:4143\""));
        assert!(yaml.contains("podIP: \"127.0.0.3\""));
        assert!(yaml.contains("targetPort: 18080"));
    }
}
