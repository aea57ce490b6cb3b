//! Which proxies an operator's command talks to.
//!
//! Every inspection command (`wisp stat`, `routes`, `edges`, `tap`, `top`,
//! `proxy-config`, …) names its proxies with a *target*:
//!
//! | Target | Proxies |
//! |---|---|
//! | `pod/NAME`, `po/NAME` | the meshed pod `NAME` in the namespace |
//! | `deploy/NAME`, `deployment/NAME` | every meshed pod whose `app` label (or, failing that, `linkerd.io/proxy-deployment` label) is `NAME` |
//! | `ns/NAME`, `namespace/NAME` | every meshed pod of namespace `NAME` |
//! | `HOST:PORT` | the proxy whose admin server listens there; its control (tap) port is the same host, port 4190 |
//!
//! A *meshed* pod is one with a `linkerd-proxy` container. Its admin address
//! is that container's `LINKERD2_PROXY_ADMIN_LISTEN_ADDR` (an unspecified
//! host such as `0.0.0.0` is replaced by `status.podIP`), else
//! `status.podIP:4191`; its control address likewise from
//! `LINKERD2_PROXY_CONTROL_LISTEN_ADDR`, else `status.podIP:4190`.
//!
//! The one implementation today is [`ManifestTargets`] (universal mode): it
//! reads the Pod manifests of the destination's source directory with the
//! destination crate's own manifest parser, so `wisp` sees exactly the pods
//! `wisp destination` serves. The directory comes from `--source dir:PATH`,
//! else the `WISP_SOURCE` environment variable, else `dir:./manifests`
//! ([`DEFAULT_SOURCE`]). Kubernetes targets (listing pods through the API
//! server) come later, behind the same [`Targets`] trait.

// The tap commands use parts of this API that these commands do not.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use k8s_openapi::api::core::v1::Pod;
use wisp_destination::index::Object;
use wisp_destination::source::dir::DirSource;

/// The source used when neither `--source` nor `WISP_SOURCE` is given.
pub const DEFAULT_SOURCE: &str = "dir:./manifests";
/// The environment variable giving the default `--source`.
pub const SOURCE_ENV: &str = "WISP_SOURCE";
/// The proxy's admin port when the pod does not set one.
pub const DEFAULT_ADMIN_PORT: u16 = 4191;
/// The proxy's control (tap) port when the pod does not set one.
pub const DEFAULT_CONTROL_PORT: u16 = 4190;
/// Name of the proxy container of a meshed pod.
pub const PROXY_CONTAINER: &str = "linkerd-proxy";

/// A proxy the operator's commands talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    /// The pod name, or the address given for a `HOST:PORT` target.
    pub name: String,
    /// The pod's namespace (the command's namespace for an address target).
    pub namespace: String,
    /// The proxy's admin server (`/metrics`, `/ready`, …).
    pub admin: SocketAddr,
    /// The proxy's control server (tap).
    pub control: SocketAddr,
    /// The pod's labels (empty for an address target).
    pub labels: BTreeMap<String, String>,
    /// The pod's `spec.serviceAccountName`, if known.
    pub service_account: Option<String>,
}

impl ProxyTarget {
    /// The workload the pod belongs to: its `app` label, else its
    /// `linkerd.io/proxy-deployment` label, else the pod name.
    pub fn workload(&self) -> &str {
        self.labels
            .get("app")
            .or_else(|| self.labels.get("linkerd.io/proxy-deployment"))
            .map(String::as_str)
            .unwrap_or(&self.name)
    }
}

/// Resolves targets to proxies.
pub trait Targets {
    /// The proxies of `spec` (`pod/NAME`, `po/NAME`, `deploy/NAME`,
    /// `deployment/NAME`, `ns/NAME`, `namespace/NAME` or `HOST:PORT`);
    /// `namespace` applies to pod and deployment targets. Fails, naming
    /// the target, if nothing matches or a matching pod lacks an address.
    fn resolve(&self, spec: &str, namespace: &str) -> anyhow::Result<Vec<ProxyTarget>>;

    /// Every meshed pod, of `namespace` or of all namespaces.
    fn all(&self, namespace: Option<&str>) -> anyhow::Result<Vec<ProxyTarget>>;
}

/// A parsed target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// `pod/NAME`.
    Pod(String),
    /// `deploy/NAME`.
    Deployment(String),
    /// `ns/NAME`.
    Namespace(String),
    /// `HOST:PORT`: a proxy's admin address.
    Address(SocketAddr),
}

impl TargetSpec {
    /// Parses a target; `HOST:PORT` may use a host name (resolved now).
    pub fn parse(spec: &str) -> anyhow::Result<TargetSpec> {
        if let Some((kind, name)) = spec.split_once('/') {
            if name.is_empty() || name.contains('/') {
                bail!("invalid target {spec:?}: expected KIND/NAME");
            }
            let name = name.to_string();
            return Ok(match kind {
                "pod" | "pods" | "po" => TargetSpec::Pod(name),
                "deploy" | "deployment" | "deployments" => TargetSpec::Deployment(name),
                "ns" | "namespace" | "namespaces" => TargetSpec::Namespace(name),
                other => bail!(
                    "invalid target {spec:?}: unknown kind {other:?} (expected pod, deploy, ns, or HOST:PORT)"
                ),
            });
        }
        if let Ok(addr) = spec.parse::<SocketAddr>() {
            return Ok(TargetSpec::Address(addr));
        }
        if spec.contains(':') {
            let addr = spec
                .to_socket_addrs()
                .with_context(|| format!("invalid target {spec:?}: cannot resolve address"))?
                .next()
                .ok_or_else(|| anyhow!("invalid target {spec:?}: no address"))?;
            return Ok(TargetSpec::Address(addr));
        }
        bail!("invalid target {spec:?}: expected pod/NAME, deploy/NAME, ns/NAME or HOST:PORT")
    }
}

/// The proxy whose admin server is `admin`: control is the same host,
/// port 4190.
pub fn address_target(spec: &str, admin: SocketAddr, namespace: &str) -> ProxyTarget {
    ProxyTarget {
        name: spec.to_string(),
        namespace: namespace.to_string(),
        admin,
        control: SocketAddr::new(admin.ip(), DEFAULT_CONTROL_PORT),
        labels: BTreeMap::new(),
        service_account: None,
    }
}

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
    addrs: Result<(SocketAddr, SocketAddr), String>,
}

impl ManifestTargets {
    /// Reads the manifests under directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// From a `--source` value (`dir:PATH`); `None` means `WISP_SOURCE`,
    /// else [`DEFAULT_SOURCE`].
    pub fn from_source(source: Option<&str>) -> anyhow::Result<Self> {
        let env = std::env::var(SOURCE_ENV).ok().filter(|s| !s.is_empty());
        let spec = source
            .map(str::to_string)
            .or(env)
            .unwrap_or_else(|| DEFAULT_SOURCE.to_string());
        match spec.strip_prefix("dir:") {
            Some(path) if !path.is_empty() => Ok(Self::new(path)),
            _ => bail!(
                "invalid source {spec:?}: expected dir:PATH (Kubernetes targets are not available yet)"
            ),
        }
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
        let parsed = TargetSpec::parse(spec)?;
        if let TargetSpec::Address(addr) = parsed {
            return Ok(vec![address_target(spec, addr, namespace)]);
        }
        let pods = self.pods()?;
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
            TargetSpec::Address(_) => unreachable!("handled above"),
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
    let addrs = proxy_addr(
        env("LINKERD2_PROXY_ADMIN_LISTEN_ADDR"),
        "LINKERD2_PROXY_ADMIN_LISTEN_ADDR",
        pod_ip,
        DEFAULT_ADMIN_PORT,
    )
    .and_then(|admin| {
        proxy_addr(
            env("LINKERD2_PROXY_CONTROL_LISTEN_ADDR"),
            "LINKERD2_PROXY_CONTROL_LISTEN_ADDR",
            pod_ip,
            DEFAULT_CONTROL_PORT,
        )
        .map(|control| (admin, control))
    });
    PodEntry {
        name,
        namespace,
        labels,
        service_account,
        meshed: proxy.is_some(),
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

/// Target options shared by the inspection commands.
#[derive(clap::Args, Clone, Debug)]
pub struct TargetArgs {
    /// Namespace of pod and deployment targets.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Where pods are read from: `dir:PATH` (the destination's manifest
    /// directory). Default: $WISP_SOURCE, else `dir:./manifests`.
    #[arg(long)]
    pub source: Option<String>,
}

impl TargetArgs {
    /// The resolver these options select.
    pub fn targets(&self) -> anyhow::Result<ManifestTargets> {
        ManifestTargets::from_source(self.source.as_deref())
    }

    /// The proxies of each of `specs`, in order; the manifest directory
    /// is read only if a spec needs it.
    pub fn resolve_each(
        &self,
        specs: &[String],
    ) -> anyhow::Result<Vec<(String, Vec<ProxyTarget>)>> {
        let needs_dir = specs
            .iter()
            .any(|s| !matches!(TargetSpec::parse(s), Ok(TargetSpec::Address(_))));
        let resolver = if needs_dir {
            Some(self.targets()?)
        } else {
            None
        };
        let mut out = Vec::new();
        for spec in specs {
            let found = match &resolver {
                Some(r) => r.resolve(spec, &self.namespace)?,
                None => match TargetSpec::parse(spec)? {
                    TargetSpec::Address(addr) => vec![address_target(spec, addr, &self.namespace)],
                    _ => unreachable!("needs_dir"),
                },
            };
            out.push((spec.clone(), found));
        }
        Ok(out)
    }

    /// Every proxy of `specs`, in order, without duplicates (by admin
    /// address).
    pub fn resolve_all(&self, specs: &[String]) -> anyhow::Result<Vec<ProxyTarget>> {
        let mut out: Vec<ProxyTarget> = Vec::new();
        for (_, found) in self.resolve_each(specs)? {
            for t in found {
                if !out.iter().any(|o| o.admin == t.admin) {
                    out.push(t);
                }
            }
        }
        Ok(out)
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
    fn address_target_needs_no_manifests() {
        let targets = ManifestTargets::new("/nonexistent/wisp");
        let t = targets
            .resolve("127.0.0.5:4191", "default")
            .expect("address");
        assert_eq!(t[0].name, "127.0.0.5:4191");
        assert_eq!(t[0].control, "127.0.0.5:4190".parse().expect("addr"));
        let t = targets.resolve("localhost:9000", "default").expect("host");
        assert_eq!(t[0].admin.port(), 9000);
        assert_eq!(t[0].control.port(), 4190);
        assert!(t[0].admin.ip().is_loopback());
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
        assert!(err("svc/web").contains("unknown kind \"svc\""));
        assert!(err("web").contains("expected pod/NAME"));
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

    #[test]
    fn source_spec() {
        assert_eq!(
            ManifestTargets::from_source(Some("dir:/x"))
                .expect("dir")
                .root(),
            Path::new("/x")
        );
        assert!(ManifestTargets::from_source(Some("kube")).is_err());
    }
}
