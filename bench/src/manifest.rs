//! Kubernetes manifests describing the backend for the control plane.

use anyhow::{Context, Result};
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
/// the mesh variant ([`render_mesh`]).
pub fn write(dir: &Path, backend: SocketAddr, server_inbound: Option<SocketAddr>) -> Result<()> {
    let path = dir.join("bench.yaml");
    let text = match server_inbound {
        Some(inbound) => render_mesh(backend, inbound),
        None => render(backend),
    };
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
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
