//! Universal mode: targets read from the Pod manifests of a `dir:PATH`
//! source directory, with the destination crate's own manifest parser, so
//! `wisp` sees exactly the pods `wisp destination` serves. A proxy is
//! reached at its pod's address: the proxy container's
//! `LINKERD2_PROXY_ADMIN_LISTEN_ADDR` (an unspecified host such as
//! `0.0.0.0` replaced by `status.podIP`), else `status.podIP:4191`; the
//! control address likewise from `LINKERD2_PROXY_CONTROL_LISTEN_ADDR`, else
//! `status.podIP:4190`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use wisp_destination::index::Object;
use wisp_destination::source::dir::DirSource;

use super::{
    address_target, ProxyTarget, TargetSpec, Targets, ADMIN_ENV, CONTROL_ENV, DEFAULT_ADMIN_PORT,
    DEFAULT_CONTROL_PORT, PROXY_CONTAINER, SOURCE_ENV,
};

/// Universal mode: the Pod manifests of a `dir:PATH` source directory.
#[derive(Clone, Debug)]
pub struct ManifestTargets {
    root: PathBuf,
}

/// A pod as read from the manifests; `addrs` fails with what is missing.
struct PodEntry {
    name: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    service_account: Option<String>,
    meshed: bool,
    pod_ip: Option<IpAddr>,
    addrs: Result<(SocketAddr, SocketAddr), String>,
}

impl ManifestTargets {
    /// Reads the manifests under directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory read.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn pods(&self) -> anyhow::Result<Vec<PodEntry>> {
        if !self.root.is_dir() {
            bail!(
                "manifest directory {} does not exist (give --source dir:PATH or set {SOURCE_ENV})",
                self.root.display()
            );
        }
        let mut pods: Vec<PodEntry> = DirSource::new(&self.root)
            .rescan()
            .into_iter()
            .filter_map(|object| match object {
                Object::Pod(pod) => Some(pod_entry(&pod)),
                _ => None,
            })
            .collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(pods)
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }
}

impl Targets for ManifestTargets {
    fn resolve(&self, spec: &str, namespace: &str) -> anyhow::Result<Vec<ProxyTarget>> {
        let parsed = match TargetSpec::parse(spec)? {
            // A kind alone: the pods of the namespace (`-A` is
            // `TargetArgs`'s business: it calls `all`).
            TargetSpec::Every(_) => TargetSpec::Namespace(namespace.to_string()),
            parsed => parsed,
        };
        let pods = match parsed {
            TargetSpec::Address(addr) => return Ok(vec![address_target(spec, addr, namespace)]),
            _ => self.pods()?,
        };
        let (selected, what): (Vec<&PodEntry>, String) = match &parsed {
            TargetSpec::Pod(name) => (
                pods.iter()
                    .filter(|p| p.namespace == namespace && &p.name == name)
                    .collect(),
                format!("no pod {namespace}/{name}"),
            ),
            TargetSpec::Deployment(name) => (
                pods.iter()
                    .filter(|p| {
                        p.namespace == namespace
                            && p.labels
                                .get("app")
                                .or_else(|| p.labels.get("linkerd.io/proxy-deployment"))
                                == Some(name)
                    })
                    .collect(),
                format!("no pod in namespace {namespace} with label app={name}"),
            ),
            TargetSpec::Namespace(ns) => (
                pods.iter().filter(|p| &p.namespace == ns).collect(),
                format!("no pod in namespace {ns}"),
            ),
            TargetSpec::Address(_) | TargetSpec::Every(_) => (Vec::new(), String::new()),
        };
        if selected.is_empty() {
            bail!("target {spec}: {what} in {}", self.describe());
        }
        let mut out = Vec::new();
        for pod in selected {
            if !pod.meshed {
                // A single pod must be meshed; a group just skips the others.
                if matches!(parsed, TargetSpec::Pod(_)) {
                    bail!(
                        "target {spec}: pod {}/{} has no {PROXY_CONTAINER} container (not meshed)",
                        pod.namespace,
                        pod.name
                    );
                }
                continue;
            }
            out.push(
                to_target(pod).map_err(|e| {
                    anyhow!("target {spec}: pod {}/{}: {e}", pod.namespace, pod.name)
                })?,
            );
        }
        if out.is_empty() {
            bail!(
                "target {spec}: no meshed pod (none has a {PROXY_CONTAINER} container) in {}",
                self.describe()
            );
        }
        Ok(out)
    }

    fn all(&self, namespace: Option<&str>) -> anyhow::Result<Vec<ProxyTarget>> {
        let pods = self.pods()?;
        pods.iter()
            .filter(|p| p.meshed && namespace.is_none_or(|ns| p.namespace == ns))
            .map(|p| to_target(p).map_err(|e| anyhow!("pod {}/{}: {e}", p.namespace, p.name)))
            .collect()
    }
}

fn to_target(pod: &PodEntry) -> Result<ProxyTarget, String> {
    let (admin, control) = pod.addrs.clone()?;
    Ok(ProxyTarget {
        name: pod.name.clone(),
        namespace: pod.namespace.clone(),
        admin,
        control,
        labels: pod.labels.clone(),
        service_account: pod.service_account.clone(),
        pod_ip: pod.pod_ip,
    })
}

/// Reads what the commands need of a Pod.
fn pod_entry(pod: &Pod) -> PodEntry {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let labels = meta.labels.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let service_account = spec
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty());
    let proxy = spec.and_then(|s| s.containers.iter().find(|c| c.name == PROXY_CONTAINER));
    let env = |key: &str| -> Option<String> {
        proxy?
            .env
            .as_ref()?
            .iter()
            .find(|e| e.name == key)
            .and_then(|e| e.value.clone())
    };
    let pod_ip: Option<IpAddr> = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let addrs =
        proxy_addr(env(ADMIN_ENV), ADMIN_ENV, pod_ip, DEFAULT_ADMIN_PORT).and_then(|admin| {
            proxy_addr(env(CONTROL_ENV), CONTROL_ENV, pod_ip, DEFAULT_CONTROL_PORT)
                .map(|control| (admin, control))
        });
    PodEntry {
        name,
        namespace,
        labels,
        service_account,
        meshed: proxy.is_some(),
        pod_ip,
        addrs,
    }
}

/// One listen address of the proxy: the env value (an unspecified host is
/// replaced by the pod IP), else the pod IP and `default_port`.
fn proxy_addr(
    env: Option<String>,
    key: &str,
    pod_ip: Option<IpAddr>,
    default_port: u16,
) -> Result<SocketAddr, String> {
    match env {
        Some(value) => {
            let addr: SocketAddr = value
                .parse()
                .map_err(|_| format!("{PROXY_CONTAINER} env {key}={value:?} is not an IP:PORT"))?;
            if addr.ip().is_unspecified() {
                let ip = pod_ip.ok_or_else(|| {
                    format!(
                        "{key}={value} listens on all addresses and the pod has no status.podIP"
                    )
                })?;
                Ok(SocketAddr::new(ip, addr.port()))
            } else {
                Ok(addr)
            }
        }
        None => pod_ip
            .map(|ip| SocketAddr::new(ip, default_port))
            .ok_or_else(|| {
                format!("no status.podIP and no {key} in its {PROXY_CONTAINER} container")
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ns: &str, app: &str, ip: &str, env: &str, proxy: bool) -> String {
        let proxy = if proxy {
            format!("  - name: linkerd-proxy\n    image: wisp-proxy\n    env: [{env}]\n")
        } else {
            String::new()
        };
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: {app}}}\nspec:\n  serviceAccountName: {app}\n  containers:\n  - name: app\n    image: app\n{proxy}status: {{podIP: \"{ip}\"}}\n---\n"
        )
    }

    fn dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = String::new();
        text += &pod("web-a", "default", "web", "127.0.0.11", "", true);
        text += &pod("web-b", "default", "web", "127.0.0.12",
            "{name: LINKERD2_PROXY_ADMIN_LISTEN_ADDR, value: \"0.0.0.0:9991\"}, {name: LINKERD2_PROXY_CONTROL_LISTEN_ADDR, value: \"127.0.0.99:9990\"}", true);
        text += &pod("api-a", "default", "api", "127.0.0.21", "", true);
        text += &pod("plain", "default", "plain", "127.0.0.31", "", false);
        text += &pod("web-x", "other", "web", "127.0.0.41", "", true);
        text +=
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n";
        std::fs::write(dir.path().join("pods.yaml"), text).expect("write");
        dir
    }

    fn names(targets: &[ProxyTarget]) -> Vec<String> {
        targets.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn pod_target_uses_pod_ip_and_default_ports() {
        let dir = dir();
        let targets = ManifestTargets::new(dir.path());
        for spec in ["pod/web-a", "po/web-a", "pods/web-a"] {
            let t = targets.resolve(spec, "default").expect(spec);
            assert_eq!(t.len(), 1);
            assert_eq!(t[0].name, "web-a");
            assert_eq!(t[0].namespace, "default");
            assert_eq!(t[0].admin, "127.0.0.11:4191".parse().expect("addr"));
            assert_eq!(t[0].control, "127.0.0.11:4190".parse().expect("addr"));
            assert_eq!(t[0].labels.get("app").map(String::as_str), Some("web"));
            assert_eq!(t[0].service_account.as_deref(), Some("web"));
            assert_eq!(t[0].workload(), "web");
        }
    }

    #[test]
    fn env_addresses_win_and_unspecified_host_is_the_pod_ip() {
        let dir = dir();
        let t = ManifestTargets::new(dir.path())
            .resolve("pod/web-b", "default")
            .expect("resolve");
        assert_eq!(t[0].admin, "127.0.0.12:9991".parse().expect("addr"));
        assert_eq!(t[0].control, "127.0.0.99:9990".parse().expect("addr"));
    }

    #[test]
    fn deployment_namespace_and_all() {
        let dir = dir();
        let targets = ManifestTargets::new(dir.path());
        for spec in ["deploy/web", "deployment/web"] {
            let t = targets.resolve(spec, "default").expect(spec);
            assert_eq!(names(&t), ["web-a", "web-b"]);
        }
        assert_eq!(
            names(&targets.resolve("deploy/web", "other").expect("other")),
            ["web-x"]
        );
        // Unmeshed pods are left out of groups.
        assert_eq!(
            names(&targets.resolve("ns/default", "ignored").expect("ns")),
            ["api-a", "web-a", "web-b"]
        );
        assert_eq!(
            names(&targets.all(None).expect("all")),
            ["api-a", "web-a", "web-b", "web-x"]
        );
        assert_eq!(names(&targets.all(Some("other")).expect("all")), ["web-x"]);
    }

    #[test]
    fn errors_name_the_target_and_what_is_missing() {
        let dir = dir();
        let targets = ManifestTargets::new(dir.path());
        let err = |spec: &str| {
            targets
                .resolve(spec, "default")
                .expect_err(spec)
                .to_string()
        };
        assert_eq!(
            err("pod/nope"),
            format!(
                "target pod/nope: no pod default/nope in dir:{}",
                dir.path().display()
            )
        );
        assert!(err("deploy/nope").contains("no pod in namespace default with label app=nope"));
        assert_eq!(
            err("pod/plain"),
            "target pod/plain: pod default/plain has no linkerd-proxy container (not meshed)"
        );
        let missing = ManifestTargets::new("/nonexistent/wisp")
            .resolve("pod/web-a", "default")
            .expect_err("missing dir")
            .to_string();
        assert!(
            missing.contains("/nonexistent/wisp does not exist"),
            "{missing}"
        );
    }

    #[test]
    fn pod_without_ip_or_env_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("p.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: linkerd-proxy}]\n",
        )
        .expect("write");
        let err = ManifestTargets::new(dir.path())
            .resolve("pod/p", "default")
            .expect_err("no ip")
            .to_string();
        assert_eq!(
            err,
            "target pod/p: pod default/p: no status.podIP and no LINKERD2_PROXY_ADMIN_LISTEN_ADDR in its linkerd-proxy container"
        );
    }
}
