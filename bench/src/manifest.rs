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

/// Writes the manifests as `bench.yaml` into `dir`.
pub fn write(dir: &Path, backend: SocketAddr) -> Result<()> {
    let path = dir.join("bench.yaml");
    std::fs::write(&path, render(backend)).with_context(|| format!("writing {}", path.display()))
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
}
