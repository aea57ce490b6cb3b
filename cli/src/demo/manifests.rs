//! The universal-mode manifests the destination service reads: per Service
//! (`web`, `web-v2`) the Service and its EndpointSlice, and one Pod per
//! backend and for the load driver's client (so `wisp edges`, `stat`, `tap`
//! find its proxy too), written as YAML text.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::topology::{
    Service, Workload, APP_PORT, BACKENDS, CLIENT, INBOUND_PORT, NAMESPACE, SERVICES, SERVICE_PORT,
};

/// Writes the manifests of every Service and backend into `dir`, each file
/// atomically.
pub fn write_all(dir: &Path) -> anyhow::Result<()> {
    for svc in &SERVICES {
        let backends: Vec<Workload> = svc.backends().collect();
        write_atomic(dir, &format!("service-{}.yaml", svc.name), &service(svc))?;
        write_atomic(
            dir,
            &format!("endpointslice-{}-1.yaml", svc.name),
            &endpoint_slice(svc, &backends),
        )?;
    }
    for pod in BACKENDS.iter().chain([&CLIENT]) {
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

/// A Service: port 80 (http) to target port 8080 (both versions expose the
/// same port, as a TrafficSplit backend must).
fn service(svc: &Service) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  clusterIP: {ip}
  ports:
  - {{name: http, port: {SERVICE_PORT}, targetPort: {APP_PORT}, protocol: TCP}}
",
        name = svc.name,
        ip = svc.cluster_ip,
    )
}

/// One EndpointSlice of `svc` with every one of its backends ready.
fn endpoint_slice(svc: &Service, backends: &[Workload]) -> String {
    let mut text = format!(
        "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: {NAMESPACE}
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports:
- {{name: http, port: {APP_PORT}, protocol: TCP}}
endpoints:
",
        name = svc.name,
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
/// destination service hints opaque transport to `<ip>:4143`. Backends are
/// labelled with their service (`app`) and version; the client with its
/// own name.
fn pod_manifest(pod: &Workload) -> String {
    let labels = match super::topology::version_of(pod.name) {
        Some(version) => format!("app: {}, version: {version}", pod.service),
        None => format!("app: {}", pod.name),
    };
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {NAMESPACE}
  labels: {{{labels}, linkerd.io/control-plane-ns: linkerd}}
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
    use super::*;

    #[test]
    fn slice_lists_every_backend_of_its_service() {
        let v1: Vec<Workload> = SERVICES[0].backends().collect();
        let text = endpoint_slice(&SERVICES[0], &v1);
        for pod in &BACKENDS[..3] {
            assert!(text.contains(&format!("addresses: [\"{}\"]", pod.ip)));
            assert!(text.contains(&format!("name: {},", pod.name)));
        }
        assert!(!text.contains("web-v2-a"));
        assert!(text.contains("kubernetes.io/service-name: web}"));
        let v2: Vec<Workload> = SERVICES[1].backends().collect();
        let text = endpoint_slice(&SERVICES[1], &v2);
        assert!(text.contains("addresses: [\"127.0.0.14\"]"));
        assert!(text.contains("kubernetes.io/service-name: web-v2}"));
        assert!(service(&SERVICES[1]).contains("name: web-v2\n"));
    }

    #[test]
    fn pod_names_its_proxy_inbound_address() {
        let text = pod_manifest(&BACKENDS[0]);
        assert!(text.contains("name: web-a\n"));
        assert!(text.contains("value: \"127.0.0.11:4143\""));
        assert!(text.contains("podIP: \"127.0.0.11\""));
        assert!(text.contains("serviceAccountName: web\n"));
        assert!(text.contains("linkerd.io/control-plane-ns: linkerd"));
        assert!(text.contains("app: web, version: v1,"));
        assert!(pod_manifest(&BACKENDS[3]).contains("app: web-v2, version: v2,"));
        assert!(pod_manifest(&CLIENT).contains("labels: {app: client, linkerd.io"));
    }
}
