//! The HTTP probe paths a pod's containers declare for a port.

use std::collections::BTreeSet;

use crate::index::PodSummary;

/// The paths of the liveness/readiness/startup `httpGet` probes aimed at
/// `port` (named probe ports resolve against the same container's TCP
/// ports; a missing path is `/`; query strings are dropped), like Linkerd's
/// `pod_http_probes`. The index resolves the probe targets when it
/// summarizes the pod.
pub fn probe_paths(pod: &PodSummary, port: u16) -> BTreeSet<String> {
    pod.probes()
        .filter(|(p, _)| *p == port)
        .map(|(_, path)| path.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> PodSummary {
        PodSummary::from_pod(&serde_yaml_ng::from_str(yaml).expect("pod yaml"))
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
