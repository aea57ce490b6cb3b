//! The universal-mode manifests the destination service reads: a Service,
//! its EndpointSlice and one Pod per backend, written as YAML text.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::topology::{
    Workload, APP_PORT, CLUSTER_IP, INBOUND_PORT, NAMESPACE, SERVICE, SERVICE_PORT,
};

/// Writes the manifests for `backends` into `dir`, each file atomically.
pub fn write_all(dir: &Path, backends: &[Workload]) -> anyhow::Result<()> {
    write_atomic(dir, &format!("service-{SERVICE}.yaml"), &service())?;
    write_atomic(
        dir,
        &format!("endpointslice-{SERVICE}-1.yaml"),
        &endpoint_slice(backends),
    )?;
    for pod in backends {
        write_atomic(dir, &format!("pod-{}.yaml", pod.name), &pod_manifest(pod))?;
    }
    Ok(())
}

/// Writes `text` to `dir/name` through a temporary file and a rename, so the
/// directory watcher never sees a half-written file.
fn write_atomic(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// The `web` Service: port 80 (http) to target port 8080.
fn service() -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {SERVICE}
  namespace: {NAMESPACE}
spec:
  clusterIP: {CLUSTER_IP}
  ports:
  - {{name: http, port: {SERVICE_PORT}, targetPort: {APP_PORT}, protocol: TCP}}
"
    )
}

/// One EndpointSlice with every backend ready.
fn endpoint_slice(backends: &[Workload]) -> String {
    let mut text = format!(
        "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {SERVICE}-1
  namespace: {NAMESPACE}
  labels: {{kubernetes.io/service-name: {SERVICE}}}
addressType: IPv4
ports:
- {{name: http, port: {APP_PORT}, protocol: TCP}}
endpoints:
"
    );
    for pod in backends {
        // Writing into a String cannot fail.
        let _ = write!(
            text,
            "- addresses: [\"{ip}\"]
  conditions: {{ready: true}}
  targetRef: {{kind: Pod, name: {name}, namespace: {NAMESPACE}}}
",
            ip = pod.ip,
            name = pod.name,
        );
    }
    text
}

/// A meshed Pod whose proxy container names its inbound address, so the
/// destination service hints opaque transport to `<ip>:4143`.
fn pod_manifest(pod: &Workload) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {NAMESPACE}
  labels: {{app: {SERVICE}, linkerd.io/control-plane-ns: linkerd}}
spec:
  serviceAccountName: {sa}
  containers:
  - {{name: app, image: demo}}
  - name: linkerd-proxy
    image: wisp-proxy
    env: [{{name: LINKERD2_PROXY_INBOUND_LISTEN_ADDR, value: \"{inbound}\"}}]
status: {{podIP: \"{ip}\"}}
",
        name = pod.name,
        sa = pod.service_account,
        ip = pod.ip,
        inbound = pod.addr(INBOUND_PORT),
    )
}

#[cfg(test)]
mod tests {
    use super::super::topology::BACKENDS;
    use super::*;

    #[test]
    fn slice_lists_every_backend() {
        let text = endpoint_slice(&BACKENDS);
        for pod in BACKENDS {
            assert!(text.contains(&format!("addresses: [\"{}\"]", pod.ip)));
            assert!(text.contains(&format!("name: {},", pod.name)));
        }
        assert!(text.contains("kubernetes.io/service-name: web"));
    }

    #[test]
    fn pod_names_its_proxy_inbound_address() {
        let text = pod_manifest(&BACKENDS[0]);
        assert!(text.contains("name: web-a\n"));
        assert!(text.contains("value: \"127.0.0.11:4143\""));
        assert!(text.contains("podIP: \"127.0.0.11\""));
        assert!(text.contains("serviceAccountName: web\n"));
        assert!(text.contains("linkerd.io/control-plane-ns: linkerd"));
    }
}
