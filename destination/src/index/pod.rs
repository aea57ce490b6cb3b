//! The compact form the index keeps of a Pod: exactly what the resolvers
//! and the policy code read, nothing more.
//!
//! A `k8s-openapi` `Pod` is large even when nearly empty (`Container` and
//! `PodSpec` are kilobytes inline), so the sources convert every Pod into a
//! [`PodSummary`] before it reaches the index. What is kept, and who reads it:
//!
//! - namespace and name (the `pod` metric label, the identity name);
//! - the IPs (`status.podIP`, `status.podIPs`) and whether the phase is
//!   `Succeeded` or `Failed` (lookups by IP prefer running pods);
//! - the labels `linkerd.io/control-plane-ns` (meshed or not) and
//!   `pod-template-hash` (metric labels);
//! - the owning workload's metric label and name, from the controlling
//!   (else the first) owner reference;
//! - `spec.serviceAccountName` (identity, metric labels);
//! - the annotations `config.linkerd.io/opaque-ports`, `skip-inbound-ports`,
//!   `proxy-require-identity-inbound-ports` and `default-inbound-policy`,
//!   as written;
//! - the named container ports, when one of the port-list annotations is
//!   set (port names in them resolve against these);
//! - the `httpGet` probe targets as (port, path) (policy: probe routes);
//! - the inbound port of the `linkerd-proxy` container, if there is one.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::object::ObjectKey;

/// Label a meshed pod carries: the namespace of its control plane.
pub const CONTROL_PLANE_NS_LABEL: &str = "linkerd.io/control-plane-ns";
/// Label a ReplicaSet's pods carry: the hash of their pod template.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Annotation listing ports whose traffic is opaque TCP.
pub const OPAQUE_PORTS: &str = "config.linkerd.io/opaque-ports";
/// Annotation listing inbound ports the proxy does not handle.
pub const SKIP_INBOUND_PORTS: &str = "config.linkerd.io/skip-inbound-ports";
/// Annotation listing ports whose default policy requires mTLS identities.
pub const REQUIRE_IDENTITY_PORTS: &str = "config.linkerd.io/proxy-require-identity-inbound-ports";
/// Annotation setting the pod's default inbound policy.
pub const DEFAULT_INBOUND_POLICY_ANNOTATION: &str = "config.linkerd.io/default-inbound-policy";
/// Inbound port assumed when the proxy container does not say.
pub const DEFAULT_INBOUND_PORT: u32 = 4143;
/// Name of the proxy container the injector adds.
pub const PROXY_CONTAINER: &str = "linkerd-proxy";
/// The proxy container's variable holding its inbound listen address.
pub const INBOUND_LISTEN_ADDR_ENV: &str = "LINKERD2_PROXY_INBOUND_LISTEN_ADDR";

/// The workload owning a pod, as its metric label: from the controlling
/// owner reference, else the first one; a ReplicaSet named
/// `<deployment>-<pod-template-hash>` counts as its Deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodOwner {
    /// The metric label key (`deployment`, `statefulset`, `k8s_job`, …).
    pub label: &'static str,
    /// The owner's name.
    pub name: Box<str>,
}

impl PodOwner {
    /// The owner label of `kind`/`name`; `None` for kinds without one.
    fn new(kind: &str, name: &str, template_hash: Option<&str>) -> Option<Self> {
        let label = match kind {
            "ReplicaSet" => {
                let deployment = template_hash
                    .and_then(|h| name.strip_suffix(h))
                    .and_then(|rest| rest.strip_suffix('-'))
                    .filter(|d| !d.is_empty());
                if let Some(deployment) = deployment {
                    return Some(Self {
                        label: "deployment",
                        name: deployment.into(),
                    });
                }
                "replicaset"
            }
            "Deployment" => "deployment",
            "StatefulSet" => "statefulset",
            "DaemonSet" => "daemonset",
            "Job" => "k8s_job",
            "CronJob" => "cronjob",
            "ReplicationController" => "replicationcontroller",
            _ => return None,
        };
        Some(Self {
            label,
            name: name.into(),
        })
    }
}

/// What the index keeps of one Pod (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSummary {
    key: ObjectKey,
    ips: Box<[IpAddr]>,
    finished: bool,
    service_account: Option<Box<str>>,
    control_plane_ns: Option<Box<str>>,
    template_hash: Option<Box<str>>,
    owner: Option<PodOwner>,
    opaque_ports: Option<Box<str>>,
    skip_inbound_ports: Option<Box<str>>,
    require_identity_ports: Option<Box<str>>,
    default_inbound_policy: Option<Box<str>>,
    named_ports: Box<[(Box<str>, i32)]>,
    probes: Box<[(u16, Box<str>)]>,
    proxy_inbound_port: Option<u32>,
}

impl PodSummary {
    /// Summarizes `pod`, keeping only what wisp reads.
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let label = |key: &str| -> Option<Box<str>> {
            meta.labels.as_ref()?.get(key).map(|v| v.as_str().into())
        };
        let annotation = |key: &str| -> Option<Box<str>> {
            meta.annotations
                .as_ref()?
                .get(key)
                .map(|v| v.as_str().into())
        };
        let template_hash = label(POD_TEMPLATE_HASH_LABEL);
        let owner = meta.owner_references.as_ref().and_then(|refs| {
            let r = refs
                .iter()
                .find(|r| r.controller == Some(true))
                .or(refs.first())?;
            PodOwner::new(&r.kind, &r.name, template_hash.as_deref())
        });
        let containers = pod.spec.as_ref().map_or(&[][..], |s| &s.containers[..]);
        let service_account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|s| !s.is_empty())
            .map(Into::into);
        let opaque_ports = annotation(OPAQUE_PORTS);
        let skip_inbound_ports = annotation(SKIP_INBOUND_PORTS);
        let require_identity_ports = annotation(REQUIRE_IDENTITY_PORTS);
        // Port names are only ever looked up from those annotations.
        let lists_ports = opaque_ports.is_some()
            || skip_inbound_ports.is_some()
            || require_identity_ports.is_some();
        let named_ports = containers
            .iter()
            .filter(|_| lists_ports)
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| Some((p.name.as_deref()?.into(), p.container_port)))
            .collect();
        let probes = containers
            .iter()
            .flat_map(container_probes)
            .map(|(port, path)| (port, path.into_boxed_str()))
            .collect();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        Self {
            key: ObjectKey::from_meta(meta),
            ips: pod_ips(pod).into_boxed_slice(),
            finished: matches!(phase, Some("Succeeded") | Some("Failed")),
            service_account,
            control_plane_ns: label(CONTROL_PLANE_NS_LABEL),
            template_hash,
            owner,
            opaque_ports,
            skip_inbound_ports,
            require_identity_ports,
            default_inbound_policy: annotation(DEFAULT_INBOUND_POLICY_ANNOTATION),
            named_ports,
            probes,
            proxy_inbound_port: proxy_inbound_port(containers),
        }
    }

    /// Namespace and name of the pod.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// Namespace of the pod.
    pub fn namespace(&self) -> &str {
        &self.key.namespace
    }

    /// Name of the pod.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The pod's IPs (`status.podIP`, then `status.podIPs`, without duplicates).
    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    /// Whether the pod's phase is `Succeeded` or `Failed`.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// `spec.serviceAccountName`, or `default` when unset or empty.
    pub fn service_account(&self) -> &str {
        self.service_account.as_deref().unwrap_or("default")
    }

    /// The `linkerd.io/control-plane-ns` label.
    pub fn control_plane_ns(&self) -> Option<&str> {
        self.control_plane_ns.as_deref()
    }

    /// The `pod-template-hash` label.
    pub fn template_hash(&self) -> Option<&str> {
        self.template_hash.as_deref()
    }

    /// The owning workload's metric label and name.
    pub fn owner(&self) -> Option<&PodOwner> {
        self.owner.as_ref()
    }

    /// The value of one of the port-list annotations this summary keeps
    /// ([`OPAQUE_PORTS`], [`SKIP_INBOUND_PORTS`], [`REQUIRE_IDENTITY_PORTS`]);
    /// `None` when absent or not one of those.
    pub fn port_annotation(&self, key: &str) -> Option<&str> {
        match key {
            OPAQUE_PORTS => self.opaque_ports.as_deref(),
            SKIP_INBOUND_PORTS => self.skip_inbound_ports.as_deref(),
            REQUIRE_IDENTITY_PORTS => self.require_identity_ports.as_deref(),
            _ => None,
        }
    }

    /// The `config.linkerd.io/default-inbound-policy` annotation.
    pub fn default_inbound_policy(&self) -> Option<&str> {
        self.default_inbound_policy.as_deref()
    }

    /// The port of the first container port named `name` (any container);
    /// `None` when there is none or it is not a valid port number.
    pub fn named_container_port(&self, name: &str) -> Option<u16> {
        self.named_ports
            .iter()
            .find(|(n, _)| &**n == name)
            .and_then(|(_, p)| u16::try_from(*p).ok())
    }

    /// The `httpGet` liveness/readiness/startup probes of every container,
    /// as (port, path), in container order.
    pub fn probes(&self) -> impl Iterator<Item = (u16, &str)> + '_ {
        self.probes.iter().map(|(port, path)| (*port, &**path))
    }

    /// The port in the proxy container's `LINKERD2_PROXY_INBOUND_LISTEN_ADDR`
    /// (4143 when the container exists without it); `None` without a proxy
    /// container.
    pub fn proxy_inbound_port(&self) -> Option<u32> {
        self.proxy_inbound_port
    }
}

/// The IPs of a Pod (`status.podIP` and `status.podIPs`).
pub fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    if let Some(status) = &pod.status {
        let all = status
            .pod_ip
            .iter()
            .chain(status.pod_ips.iter().flatten().map(|p| &p.ip));
        for ip in all.filter_map(|s| s.parse::<IpAddr>().ok()) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    ips
}

fn proxy_inbound_port(containers: &[Container]) -> Option<u32> {
    let proxy = containers.iter().find(|c| c.name == PROXY_CONTAINER)?;
    let value = proxy
        .env
        .iter()
        .flatten()
        .find(|e| e.name == INBOUND_LISTEN_ADDR_ENV)
        .and_then(|e| e.value.as_deref());
    let port = value
        .and_then(|v| v.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .filter(|p| *p != 0);
    Some(port.map_or(DEFAULT_INBOUND_PORT, u32::from))
}

/// The (port, path) of the container's `httpGet` probes (named probe ports
/// resolve against the same container's TCP ports; a missing path is `/`;
/// query strings are dropped), like Linkerd's `pod_http_probes`.
fn container_probes(container: &Container) -> Vec<(u16, String)> {
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

    fn summary(yaml: &str) -> PodSummary {
        PodSummary::from_pod(&serde_yaml_ng::from_str(yaml).expect("pod yaml"))
    }

    #[test]
    fn keeps_what_is_read() {
        let pod = summary(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: ns
  labels: {app: web, pod-template-hash: abc, linkerd.io/control-plane-ns: linkerd}
  annotations:
    config.linkerd.io/opaque-ports: "3306,mysql"
    config.linkerd.io/default-inbound-policy: deny
    linkerd.io/inject: enabled
  ownerReferences:
  - {apiVersion: v1, kind: Other, name: first, uid: a}
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-abc, uid: b, controller: true}
spec:
  serviceAccountName: web
  containers:
  - name: app
    ports: [{name: mysql, containerPort: 3306}, {containerPort: 9}]
  - name: linkerd-proxy
    env: [{name: LINKERD2_PROXY_INBOUND_LISTEN_ADDR, value: "[::]:4000"}]
status:
  phase: Failed
  podIP: 10.0.0.1
  podIPs: [{ip: 10.0.0.1}, {ip: "fd00::1"}, {ip: bogus}]
"#,
        );
        assert_eq!(pod.key().to_string(), "ns/web-1");
        assert_eq!(
            pod.ips(),
            [
                "10.0.0.1".parse::<IpAddr>().expect("ip"),
                "fd00::1".parse().expect("ip")
            ]
        );
        assert!(pod.is_finished());
        assert_eq!(pod.service_account(), "web");
        assert_eq!(pod.control_plane_ns(), Some("linkerd"));
        assert_eq!(pod.template_hash(), Some("abc"));
        let owner = pod.owner().expect("owner");
        assert_eq!((owner.label, &*owner.name), ("deployment", "web"));
        assert_eq!(pod.port_annotation(OPAQUE_PORTS), Some("3306,mysql"));
        assert_eq!(pod.port_annotation(SKIP_INBOUND_PORTS), None);
        assert_eq!(pod.port_annotation("linkerd.io/inject"), None);
        assert_eq!(pod.default_inbound_policy(), Some("deny"));
        assert_eq!(pod.named_container_port("mysql"), Some(3306));
        assert_eq!(pod.named_container_port("http"), None);
        assert_eq!(pod.proxy_inbound_port(), Some(4000));
    }

    #[test]
    fn defaults_when_unset() {
        let pod = summary("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n");
        assert_eq!(pod.key().to_string(), "default/p");
        assert!(pod.ips().is_empty());
        assert!(!pod.is_finished());
        assert_eq!(pod.service_account(), "default");
        assert_eq!(pod.owner(), None);
        assert_eq!(pod.proxy_inbound_port(), None);
        let proxy = summary(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  serviceAccountName: ''\n  containers: [{name: linkerd-proxy}]\n",
        );
        assert_eq!(proxy.service_account(), "default");
        assert_eq!(proxy.proxy_inbound_port(), Some(DEFAULT_INBOUND_PORT));
    }
}
