//! Which proxies an operator's command talks to.
//!
//! Every inspection command (`wisp stat`, `routes`, `edges`, `tap`, `top`,
//! `proxy-config`, `profile --tap`) names its proxies with a *target*:
//!
//! | Target | Proxies |
//! |---|---|
//! | `pod/NAME`, `po/NAME` | the meshed pod `NAME` in the namespace |
//! | `deploy/NAME`, `deployment/NAME` | universal mode: every meshed pod whose `app` label (or, failing that, `linkerd.io/proxy-deployment` label) is `NAME`; Kubernetes: every running meshed pod the Deployment's `spec.selector` selects |
//! | `ns/NAME`, `namespace/NAME` | every meshed pod of namespace `NAME` |
//! | `deploy`, `po`, `ns` (a kind alone, as `linkerd viz stat deploy`) | every meshed pod of the namespace (`-A`: of every namespace; `ns`: always every namespace), grouped by that kind where the command groups |
//! | `HOST:PORT` | the proxy whose admin server listens there; its control (tap) port is the same host, port 4190 |
//!
//! Where pods come from is the *source* (`--source`, else `$WISP_SOURCE`,
//! else `dir:./manifests` when that directory exists, else `kube`):
//!
//! - `dir:PATH` — universal mode, [`manifest::ManifestTargets`]: the Pod
//!   manifests of the destination's source directory, read with the
//!   destination's own parser; a proxy is reached at its pod's address.
//! - `kube` / `kube:KUBECONFIG` — a cluster, [`kube::KubeTargets`]: pods are
//!   read from the API server (kubeconfig as kubectl finds it, else the
//!   in-cluster service account; or that kubeconfig file), and each proxy's
//!   admin and control ports are reached through the API server's
//!   `pods/portforward` subresource ([`forward`]): the target's addresses
//!   are local `127.0.0.1` listeners whose connections are forwarded into
//!   the pod. A forwarded connection arrives inside the pod's network
//!   namespace from loopback, so the proxy's tap server admits it as
//!   loopback plaintext and `/metrics`, `/config.json` answer as usual.
//!
//! A *meshed* pod has a `linkerd-proxy` container (or, on Kubernetes, a
//! native-sidecar init container of that name with `restartPolicy:
//! Always`). Its admin and control ports are that container's
//! `LINKERD2_PROXY_ADMIN_LISTEN_ADDR` / `LINKERD2_PROXY_CONTROL_LISTEN_ADDR`,
//! else 4191 / 4190.
//!
//! The [`Targets`] trait is synchronous: the Kubernetes implementation runs
//! its API calls and forwarders on a process-wide runtime of its own
//! ([`forward`]), so the forwarders outlive the call and serve the
//! command's own runtimes until the process exits.

// The tap commands use parts of this API that these commands do not.
#![allow(dead_code)]

pub(crate) mod forward;
pub(crate) mod kube;
pub(crate) mod manifest;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use wisp_destination::source::kube::KubeConfigSource;
use wisp_destination::SourceSpec;

pub use self::kube::KubeTargets;
pub use self::manifest::ManifestTargets;

/// The manifest directory used by default, when it exists.
pub const DEFAULT_DIR: &str = "./manifests";
/// The source used when neither `--source` nor `WISP_SOURCE` is given and
/// [`DEFAULT_DIR`] exists (else `kube`).
pub const DEFAULT_SOURCE: &str = "dir:./manifests";
/// The environment variable giving the default `--source`.
pub const SOURCE_ENV: &str = "WISP_SOURCE";
/// The proxy's admin port when the pod does not set one.
pub const DEFAULT_ADMIN_PORT: u16 = 4191;
/// The proxy's control (tap) port when the pod does not set one.
pub const DEFAULT_CONTROL_PORT: u16 = 4190;
/// Name of the proxy container of a meshed pod.
pub const PROXY_CONTAINER: &str = "linkerd-proxy";
/// The proxy's admin listen address variable.
pub const ADMIN_ENV: &str = "LINKERD2_PROXY_ADMIN_LISTEN_ADDR";
/// The proxy's control listen address variable.
pub const CONTROL_ENV: &str = "LINKERD2_PROXY_CONTROL_LISTEN_ADDR";

/// A proxy the operator's commands talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    /// The pod name, or the address given for a `HOST:PORT` target.
    pub name: String,
    /// The pod's namespace (the command's namespace for an address target).
    pub namespace: String,
    /// Where the proxy's admin server (`/metrics`, `/ready`, …) is reached:
    /// the pod's address, or a local port-forward listener on Kubernetes.
    pub admin: SocketAddr,
    /// Where the proxy's control server (tap) is reached, likewise.
    pub control: SocketAddr,
    /// The pod's labels (empty for an address target).
    pub labels: BTreeMap<String, String>,
    /// The pod's `spec.serviceAccountName`, if known.
    pub service_account: Option<String>,
    /// The pod's `status.podIP`, if known (the address other pods dial).
    pub pod_ip: Option<IpAddr>,
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

    /// The IP other proxies see for this pod: `status.podIP` when known,
    /// else the admin address's IP.
    pub fn ip(&self) -> IpAddr {
        self.pod_ip.unwrap_or_else(|| self.admin.ip())
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

/// A kind of resource a target names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `pod`, `pods`, `po`.
    Pod,
    /// `deploy`, `deployment`, `deployments`.
    Deployment,
    /// `ns`, `namespace`, `namespaces`.
    Namespace,
}

impl Kind {
    /// The kind an alias names, as kubectl and linkerd spell them.
    pub fn parse(alias: &str) -> Option<Kind> {
        match alias {
            "pod" | "pods" | "po" => Some(Kind::Pod),
            "deploy" | "deployment" | "deployments" => Some(Kind::Deployment),
            "ns" | "namespace" | "namespaces" => Some(Kind::Namespace),
            _ => None,
        }
    }
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
    /// A kind alone (`deploy`, `po`, `ns`): every meshed pod of the
    /// namespace (of every namespace for `ns` or with `-A`), one row per
    /// resource of that kind where the command makes rows.
    Every(Kind),
}

impl TargetSpec {
    /// Parses a target; `HOST:PORT` may use a host name (resolved now).
    pub fn parse(spec: &str) -> anyhow::Result<TargetSpec> {
        if let Some((kind, name)) = spec.split_once('/') {
            if name.is_empty() || name.contains('/') {
                bail!("invalid target {spec:?}: expected KIND/NAME");
            }
            let name = name.to_string();
            return Ok(match Kind::parse(kind) {
                Some(Kind::Pod) => TargetSpec::Pod(name),
                Some(Kind::Deployment) => TargetSpec::Deployment(name),
                Some(Kind::Namespace) => TargetSpec::Namespace(name),
                None => bail!(
                    "invalid target {spec:?}: unknown kind {kind:?} (expected pod, deploy, ns, or HOST:PORT)"
                ),
            });
        }
        if let Some(kind) = Kind::parse(spec) {
            return Ok(TargetSpec::Every(kind));
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
        bail!(
            "invalid target {spec:?}: expected pod/NAME, deploy/NAME, ns/NAME, a kind (deploy, po, ns) or HOST:PORT"
        )
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
        pod_ip: None,
    }
}

/// The resolver a source selects.
#[derive(Debug)]
pub enum SourceTargets {
    /// Universal mode: a manifest directory.
    Manifest(ManifestTargets),
    /// A Kubernetes cluster, through its API server.
    Kube(KubeTargets),
}

impl Targets for SourceTargets {
    fn resolve(&self, spec: &str, namespace: &str) -> anyhow::Result<Vec<ProxyTarget>> {
        match self {
            SourceTargets::Manifest(t) => t.resolve(spec, namespace),
            SourceTargets::Kube(t) => t.resolve(spec, namespace),
        }
    }

    fn all(&self, namespace: Option<&str>) -> anyhow::Result<Vec<ProxyTarget>> {
        match self {
            SourceTargets::Manifest(t) => t.all(namespace),
            SourceTargets::Kube(t) => t.all(namespace),
        }
    }
}

/// How the source was chosen (for error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceOrigin {
    /// `--source`.
    Flag,
    /// `$WISP_SOURCE`.
    Env,
    /// The default: `./manifests` exists.
    DefaultDir,
    /// The default: no `./manifests`, so the cluster.
    DefaultKube,
}

/// The source selected by `flag` (`--source`), else `env` (`$WISP_SOURCE`),
/// else `dir:./manifests` if `default_dir_exists`, else `kube`.
pub fn select_source(
    flag: Option<&str>,
    env: Option<&str>,
    default_dir_exists: bool,
) -> anyhow::Result<(SourceSpec, SourceOrigin)> {
    let (text, origin) = match (flag, env.filter(|s| !s.is_empty())) {
        (Some(s), _) => (s, SourceOrigin::Flag),
        (None, Some(s)) => (s, SourceOrigin::Env),
        (None, None) if default_dir_exists => (DEFAULT_SOURCE, SourceOrigin::DefaultDir),
        (None, None) => {
            return Ok((
                SourceSpec::Kube(KubeConfigSource::Infer),
                SourceOrigin::DefaultKube,
            ))
        }
    };
    let spec = text.parse::<SourceSpec>().map_err(|e| {
        let from = if origin == SourceOrigin::Env {
            format!(" (from ${SOURCE_ENV})")
        } else {
            String::new()
        };
        anyhow!("{e}{from}")
    })?;
    Ok((spec, origin))
}

/// Target options shared by the inspection commands.
#[derive(clap::Args, Clone, Debug)]
pub struct TargetArgs {
    /// Namespace of pod and deployment targets.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// With a kind alone (`deploy`, `po`): every namespace instead of `-n`.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Where pods are read from: `dir:PATH` (the destination's manifest
    /// directory), `kube` (the cluster of the kubeconfig kubectl would use,
    /// else in-cluster) or `kube:KUBECONFIG`. Default: $WISP_SOURCE, else
    /// `dir:./manifests` if that directory exists, else `kube`.
    #[arg(long)]
    pub source: Option<String>,
}

impl TargetArgs {
    /// The resolver these options select.
    pub fn targets(&self) -> anyhow::Result<SourceTargets> {
        let env = std::env::var(SOURCE_ENV).ok();
        let (spec, origin) = select_source(
            self.source.as_deref(),
            env.as_deref(),
            Path::new(DEFAULT_DIR).is_dir(),
        )?;
        Ok(match spec {
            SourceSpec::Dir(path) => SourceTargets::Manifest(ManifestTargets::new(path)),
            SourceSpec::Kube(config) => {
                let targets = KubeTargets::connect(config).map_err(|e| {
                    if origin == SourceOrigin::DefaultKube {
                        anyhow!(e).context(format!(
                            "no {DEFAULT_DIR} directory, so the Kubernetes cluster was tried (give --source dir:PATH, kube or kube:KUBECONFIG, or set {SOURCE_ENV})"
                        ))
                    } else {
                        anyhow!(e)
                    }
                })?;
                SourceTargets::Kube(targets)
            }
        })
    }

    /// The proxies of each of `specs`, in order; the source is read only
    /// if a spec needs it.
    pub fn resolve_each(
        &self,
        specs: &[String],
    ) -> anyhow::Result<Vec<(String, Vec<ProxyTarget>)>> {
        let needs_source = specs
            .iter()
            .any(|s| !matches!(TargetSpec::parse(s), Ok(TargetSpec::Address(_))));
        let resolver = if needs_source {
            Some(self.targets()?)
        } else {
            None
        };
        let mut out = Vec::new();
        for spec in specs {
            let found = match (&resolver, TargetSpec::parse(spec)?) {
                (Some(r), TargetSpec::Every(kind)) => self.every(r, spec, kind)?,
                (Some(r), _) => r.resolve(spec, &self.namespace)?,
                (None, TargetSpec::Address(addr)) => {
                    vec![address_target(spec, addr, &self.namespace)]
                }
                (None, _) => bail!("target {spec}: needs a source"),
            };
            out.push((spec.clone(), found));
        }
        Ok(out)
    }

    /// The proxies of a kind alone: every meshed pod of `-n`, or of every
    /// namespace for `ns` or with `-A`.
    fn every(&self, r: &SourceTargets, spec: &str, kind: Kind) -> anyhow::Result<Vec<ProxyTarget>> {
        let namespace = self.namespace_of(kind);
        let found = r.all(namespace)?;
        if found.is_empty() {
            match namespace {
                Some(ns) => bail!("target {spec}: no meshed pod in namespace {ns}"),
                None => bail!("target {spec}: no meshed pod in any namespace"),
            }
        }
        Ok(found)
    }

    /// The namespace a kind alone covers: `-n`, or none (every namespace)
    /// for `ns` or with `-A`.
    pub fn namespace_of(&self, kind: Kind) -> Option<&str> {
        (!self.all_namespaces && kind != Kind::Namespace).then_some(&*self.namespace)
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

/// The port of a listen address such as `0.0.0.0:4191` or `[::]:4191`.
pub(crate) fn listen_port(value: &str) -> Option<u16> {
    let (_, port) = value.trim().rsplit_once(':')?;
    port.parse().ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn address_target_needs_no_source() {
        let args = TargetArgs {
            namespace: "default".into(),
            all_namespaces: false,
            source: Some("dir:/nonexistent/wisp".into()),
        };
        let t = args
            .resolve_all(&["127.0.0.5:4191".to_string()])
            .expect("address");
        assert_eq!(t[0].name, "127.0.0.5:4191");
        assert_eq!(t[0].control, "127.0.0.5:4190".parse().expect("addr"));
        assert_eq!(t[0].ip(), "127.0.0.5".parse::<IpAddr>().expect("ip"));
        let t = args
            .resolve_all(&["localhost:9000".to_string()])
            .expect("host");
        assert_eq!(t[0].admin.port(), 9000);
        assert_eq!(t[0].control.port(), 4190);
        assert!(t[0].admin.ip().is_loopback());
    }

    #[test]
    fn target_spec_errors() {
        let err = |s: &str| TargetSpec::parse(s).expect_err(s).to_string();
        assert!(err("svc/web").contains("unknown kind \"svc\""));
        assert!(err("web").contains("expected pod/NAME"));
        assert!(err("pod/").contains("expected KIND/NAME"));
        assert_eq!(
            TargetSpec::parse("deployments/web").expect("deploy"),
            TargetSpec::Deployment("web".into())
        );
        for (alias, kind) in [
            ("deploy", Kind::Deployment),
            ("po", Kind::Pod),
            ("pods", Kind::Pod),
            ("ns", Kind::Namespace),
        ] {
            assert_eq!(
                TargetSpec::parse(alias).expect(alias),
                TargetSpec::Every(kind)
            );
        }
        assert!(err("svc").contains("a kind (deploy, po, ns)"));
    }

    #[test]
    fn source_selection_order() {
        let dir = |p: &str| SourceSpec::Dir(PathBuf::from(p));
        let kube_file = |p: &str| SourceSpec::Kube(KubeConfigSource::File(PathBuf::from(p)));
        let infer = SourceSpec::Kube(KubeConfigSource::Infer);
        assert_eq!(
            select_source(Some("dir:/x"), Some("kube"), true).expect("flag"),
            (dir("/x"), SourceOrigin::Flag)
        );
        assert_eq!(
            select_source(Some("kube:/k"), None, true).expect("flag"),
            (kube_file("/k"), SourceOrigin::Flag)
        );
        assert_eq!(
            select_source(None, Some("kube"), true).expect("env"),
            (infer.clone(), SourceOrigin::Env)
        );
        assert_eq!(
            select_source(None, Some(""), true).expect("empty env"),
            (dir("./manifests"), SourceOrigin::DefaultDir)
        );
        assert_eq!(
            select_source(None, None, false).expect("default"),
            (infer, SourceOrigin::DefaultKube)
        );
        let err = select_source(None, Some("http://x"), true)
            .expect_err("bad env")
            .to_string();
        assert!(err.contains("$WISP_SOURCE"), "{err}");
        assert!(select_source(Some("kube:"), None, true).is_err());
    }

    #[test]
    fn listen_ports() {
        assert_eq!(listen_port("0.0.0.0:4191"), Some(4191));
        assert_eq!(listen_port("[::]:9990"), Some(9990));
        assert_eq!(listen_port("127.0.0.1:0"), None);
        assert_eq!(listen_port("4191"), None);
        assert_eq!(listen_port("x:y"), None);
    }
}
