//! The HTTP probe paths a pod's containers declare for a port.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The paths of the liveness/readiness/startup `httpGet` probes aimed at
/// `port` (named probe ports resolve against the same container's TCP
/// ports; a missing path is `/`; query strings are dropped), like Linkerd's
/// `pod_http_probes`.
pub fn probe_paths(pod: &Pod, port: u16) -> BTreeSet<String> {
    let Some(spec) = &pod.spec else {
        return BTreeSet::new();
    };
    spec.containers
        .iter()
        .flat_map(|c| container_probe_paths(c).into_iter())
        .filter(|(p, _)| *p == port)
        .map(|(_, path)| path)
        .collect()
}

fn container_probe_paths(container: &Container) -> Vec<(u16, String)> {
    [
        &container.liveness_probe,
        &container.readiness_probe,
        &container.startup_probe,
    ]
    .into_iter()
    .flatten()
    .filter_map(|probe| http_probe(container, probe))
    .collect()
}

fn http_probe(container: &Container, probe: &Probe) -> Option<(u16, String)> {
    let get = probe.http_get.as_ref()?;
    let port = match &get.port {
        IntOrString::Int(p) => u16::try_from(*p).ok().filter(|p| *p != 0)?,
        IntOrString::String(name) => named_tcp_port(container.ports.as_deref()?, name)?,
    };
    let raw = get.path.as_deref().unwrap_or("/");
    let path = raw.parse::<http::Uri>().ok()?.path().to_string();
    Some((port, path))
}

fn named_tcp_port(ports: &[ContainerPort], name: &str) -> Option<u16> {
    ports
        .iter()
        .filter(|p| {
            p.protocol
                .as_deref()
                .is_none_or(|proto| proto.eq_ignore_ascii_case("TCP"))
        })
        .find(|p| {
            p.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .and_then(|p| u16::try_from(p.container_port).ok())
        .filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).expect("pod yaml")
    }

    #[test]
    fn collects_paths_for_the_port() {
        let pod = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ns}
spec:
  containers:
  - name: app
    ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]
    livenessProbe: {httpGet: {path: /live?x=1, port: http}}
    readinessProbe: {httpGet: {path: /ready, port: 8080}}
    startupProbe: {httpGet: {port: 8080}}
  - name: other
    livenessProbe: {httpGet: {path: /other, port: http}}
    readinessProbe: {httpGet: {path: /dns, port: dns}}
"#);
        let paths: Vec<String> = probe_paths(&pod, 8080).into_iter().collect();
        assert_eq!(paths, ["/", "/live", "/ready"]);
        assert!(probe_paths(&pod, 53).is_empty());
        assert!(probe_paths(&pod, 9090).is_empty());
    }
}
