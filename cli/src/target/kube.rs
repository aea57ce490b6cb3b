//! Kubernetes targets: pods read from the API server, proxies reached
//! through `pods/portforward` ([`super::forward`]).
//!
//! - `pod/NAME`: `GET` the pod.
//! - `deploy/NAME`: `GET` the Deployment, then list the pods its
//!   `spec.selector` selects (`matchLabels` and `matchExpressions`
//!   rendered as a `labelSelector`).
//! - `ns/NAME` and [`Targets::all`]: list the pods of the namespace (or of
//!   every namespace).
//!
//! Only meshed, running pods are kept: a `linkerd-proxy` container, or a
//! native-sidecar init container of that name (`restartPolicy: Always`, as
//! the injector writes it), and `status.phase` `Running`. A group target
//! skips the others; if nothing is left — or a `pod/NAME` target is not
//! meshed or not running — the error names the target and why. The
//! proxy's admin and control ports are the port part of its container's
//! `LINKERD2_PROXY_ADMIN_LISTEN_ADDR` / `LINKERD2_PROXY_CONTROL_LISTEN_ADDR`,
//! else 4191 / 4190.

use std::net::IpAddr;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use kube::Api;
use wisp_destination::source::kube::KubeConfigSource;
use wisp_destination::source::SourceError;
use wisp_destination::SourceSpec;

use super::forward::{self, ForwardError};
use super::{
    address_target, listen_port, ProxyTarget, TargetSpec, Targets, ADMIN_ENV, CONTROL_ENV,
    DEFAULT_ADMIN_PORT, DEFAULT_CONTROL_PORT, PROXY_CONTAINER,
};

/// Errors resolving Kubernetes targets.
#[derive(Debug, thiserror::Error)]
pub enum KubeTargetError {
    /// No client could be built: the user's environment (kubeconfig,
    /// in-cluster credentials) is at fault.
    #[error("{source_name}: {error}")]
    Config {
        /// `kube` or `kube:PATH`.
        source_name: String,
        /// Why.
        #[source]
        error: Box<SourceError>,
    },
    /// An API call failed: the API server refused it (RBAC, …) or could
    /// not be reached.
    #[error("target {target}: cannot {what} through the Kubernetes API ({source_name}): {error}")]
    Api {
        /// The target being resolved.
        target: String,
        /// What was asked (`get pod default/web`).
        what: String,
        /// `kube` or `kube:PATH`.
        source_name: String,
        /// The client's error.
        #[source]
        error: Box<kube::Error>,
    },
    /// The target selects no usable proxy in the cluster: the user's
    /// target or the cluster's state.
    #[error("target {target}: {message} ({source_name})")]
    NoMatch {
        /// The target being resolved.
        target: String,
        /// What is missing.
        message: String,
        /// `kube` or `kube:PATH`.
        source_name: String,
    },
    /// Forwarding could not be set up.
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

/// Targets of a Kubernetes cluster.
#[derive(Clone)]
pub struct KubeTargets {
    source_name: String,
    client: kube::Client,
}

impl std::fmt::Debug for KubeTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTargets")
            .field("source", &self.source_name)
            .finish_non_exhaustive()
    }
}

impl KubeTargets {
    /// A client for `config` (built, not yet used: the first API call
    /// shows whether the cluster answers).
    pub fn connect(config: KubeConfigSource) -> Result<Self, KubeTargetError> {
        let source_name = SourceSpec::Kube(config.clone()).to_string();
        let client =
            forward::run(async move { wisp_destination::source::kube::client(&config).await })?
                .map_err(|error| KubeTargetError::Config {
                    source_name: source_name.clone(),
                    error: Box::new(error),
                })?;
        Ok(Self {
            source_name,
            client,
        })
    }

    /// `kube` or `kube:PATH`.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    fn no_match(&self, target: &str, message: String) -> KubeTargetError {
        KubeTargetError::NoMatch {
            target: target.to_string(),
            message,
            source_name: self.source_name.clone(),
        }
    }

    fn api_error(&self, target: &str, what: String, error: kube::Error) -> KubeTargetError {
        KubeTargetError::Api {
            target: target.to_string(),
            what,
            source_name: self.source_name.clone(),
            error: Box::new(error),
        }
    }

    async fn resolve_async(
        self,
        target: String,
        parsed: TargetSpec,
        namespace: String,
    ) -> Result<Vec<ProxyTarget>, KubeTargetError> {
        let (pods, group) = match &parsed {
            TargetSpec::Address(addr) => {
                return Ok(vec![address_target(&target, *addr, &namespace)])
            }
            TargetSpec::Pod(name) => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
                let pod = api.get_opt(name).await.map_err(|e| {
                    self.api_error(&target, format!("get pod {namespace}/{name}"), e)
                })?;
                let pod = pod
                    .ok_or_else(|| self.no_match(&target, format!("no pod {namespace}/{name}")))?;
                match pod_state(&pod) {
                    Ok(PodState::Meshed { .. }) => {}
                    Ok(PodState::NotMeshed) => {
                        return Err(self.no_match(
                            &target,
                            format!("pod {namespace}/{name} has no {PROXY_CONTAINER} container (not meshed)"),
                        ))
                    }
                    Ok(PodState::NotRunning(phase)) => {
                        return Err(self.no_match(
                            &target,
                            format!("pod {namespace}/{name} is not running (phase {phase})"),
                        ))
                    }
                    Err(e) => {
                        return Err(self.no_match(&target, format!("pod {namespace}/{name}: {e}")))
                    }
                }
                (vec![pod], format!("pod {namespace}/{name}"))
            }
            TargetSpec::Deployment(name) => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
                let deploy = api.get_opt(name).await.map_err(|e| {
                    self.api_error(&target, format!("get deployment {namespace}/{name}"), e)
                })?;
                let deploy = deploy.ok_or_else(|| {
                    self.no_match(&target, format!("no deployment {namespace}/{name}"))
                })?;
                let selector = render_selector(&deploy.spec.selector).map_err(|e| {
                    self.no_match(&target, format!("deployment {namespace}/{name} {e}"))
                })?;
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
                let list = api
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|e| {
                        self.api_error(
                            &target,
                            format!(
                                "list pods of namespace {namespace} (labelSelector {selector})"
                            ),
                            e,
                        )
                    })?;
                (
                    list.items,
                    format!("deployment {namespace}/{name} (selector {selector})"),
                )
            }
            TargetSpec::Namespace(_) | TargetSpec::Every(_) => {
                let ns = match &parsed {
                    TargetSpec::Namespace(ns) => ns,
                    _ => &namespace,
                };
                let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
                let list = api.list(&ListParams::default()).await.map_err(|e| {
                    self.api_error(&target, format!("list pods of namespace {ns}"), e)
                })?;
                (list.items, format!("namespace {ns}"))
            }
        };
        let kept = self.select(&target, &pods)?;
        if kept.is_empty() {
            return Err(self.no_match(&target, explain_empty(&pods, &group)));
        }
        self.proxy_targets(kept).await
    }

    /// The meshed running pods of `pods` with their proxy ports; a pod
    /// whose proxy env is invalid fails the whole target.
    fn select<'a>(
        &self,
        target: &str,
        pods: &'a [Pod],
    ) -> Result<Vec<(&'a Pod, u16, u16)>, KubeTargetError> {
        let mut kept = Vec::new();
        for pod in pods {
            match pod_state(pod) {
                Ok(PodState::Meshed { admin, control }) => kept.push((pod, admin, control)),
                Ok(_) => {}
                Err(e) => {
                    return Err(self.no_match(target, format!("pod {}: {e}", pod_name(pod))));
                }
            }
        }
        Ok(kept)
    }

    async fn proxy_targets(
        &self,
        pods: Vec<(&Pod, u16, u16)>,
    ) -> Result<Vec<ProxyTarget>, KubeTargetError> {
        let mut out = Vec::with_capacity(pods.len());
        for (pod, admin_port, control_port) in pods {
            let meta = &pod.metadata;
            let name = meta.name.clone().unwrap_or_default();
            let namespace = meta.namespace.clone().unwrap_or_default();
            let forward = |port| {
                forward::local_addr(
                    self.client.clone(),
                    &self.source_name,
                    &namespace,
                    &name,
                    port,
                )
            };
            let admin = forward(admin_port).await?;
            let control = forward(control_port).await?;
            out.push(ProxyTarget {
                admin,
                control,
                labels: meta.labels.clone().unwrap_or_default(),
                service_account: pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .filter(|s| !s.is_empty()),
                pod_ip: pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse::<IpAddr>().ok()),
                name,
                namespace,
            });
        }
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(out)
    }

    async fn all_async(
        self,
        namespace: Option<String>,
    ) -> Result<Vec<ProxyTarget>, KubeTargetError> {
        let (api, what): (Api<Pod>, String) = match &namespace {
            Some(ns) => (
                Api::namespaced(self.client.clone(), ns),
                format!("namespace {ns}"),
            ),
            None => (Api::all(self.client.clone()), "all namespaces".to_string()),
        };
        let target = format!("all pods of {what}");
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| self.api_error(&target, format!("list pods of {what}"), e))?;
        let kept = self.select(&target, &list.items)?;
        self.proxy_targets(kept).await
    }
}

impl Targets for KubeTargets {
    fn resolve(&self, spec: &str, namespace: &str) -> anyhow::Result<Vec<ProxyTarget>> {
        let parsed = match TargetSpec::parse(spec)? {
            // A kind alone: the pods of the namespace (`-A` is
            // `TargetArgs`'s business: it calls `all`).
            TargetSpec::Every(_) => TargetSpec::Namespace(namespace.to_string()),
            parsed => parsed,
        };
        let this = self.clone();
        let (spec, namespace) = (spec.to_string(), namespace.to_string());
        Ok(forward::run(this.resolve_async(spec, parsed, namespace))??)
    }

    fn all(&self, namespace: Option<&str>) -> anyhow::Result<Vec<ProxyTarget>> {
        let this = self.clone();
        let namespace = namespace.map(str::to_string);
        Ok(forward::run(this.all_async(namespace))??)
    }
}

/// What the resolver makes of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PodState {
    /// Meshed and running; the proxy's admin and control ports.
    Meshed {
        /// Admin port.
        admin: u16,
        /// Control (tap) port.
        control: u16,
    },
    /// No proxy container.
    NotMeshed,
    /// Meshed, but `status.phase` is this, not `Running`.
    NotRunning(String),
}

/// The pod's proxy container: a `linkerd-proxy` container, or a
/// native-sidecar init container of that name (`restartPolicy: Always`).
pub(crate) fn proxy_container(pod: &Pod) -> Option<&Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .find(|c| c.name == PROXY_CONTAINER)
        .or_else(|| {
            spec.init_containers.as_ref()?.iter().find(|c| {
                c.name == PROXY_CONTAINER && c.restart_policy.as_deref() == Some("Always")
            })
        })
}

/// Whether `pod` is meshed and running, with its proxy ports; fails if the
/// proxy's listen address variables have no usable port.
pub(crate) fn pod_state(pod: &Pod) -> Result<PodState, String> {
    let Some(proxy) = proxy_container(pod) else {
        return Ok(PodState::NotMeshed);
    };
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "unknown".to_string());
    if phase != "Running" {
        return Ok(PodState::NotRunning(phase));
    }
    let port = |key: &str, default: u16| -> Result<u16, String> {
        let value = proxy
            .env
            .as_ref()
            .and_then(|env| env.iter().find(|e| e.name == key))
            .and_then(|e| e.value.as_deref());
        match value {
            None => Ok(default),
            Some(v) => listen_port(v).ok_or_else(|| {
                format!("{PROXY_CONTAINER} env {key}={v:?} has no port (expected HOST:PORT)")
            }),
        }
    };
    Ok(PodState::Meshed {
        admin: port(ADMIN_ENV, DEFAULT_ADMIN_PORT)?,
        control: port(CONTROL_ENV, DEFAULT_CONTROL_PORT)?,
    })
}

/// A Deployment's `spec.selector` as a `labelSelector` query value
/// (`k=v,k in (a,b),k notin (c),k,!k`); an empty selector or an unknown
/// operator is an error (the text follows "deployment NS/NAME").
pub(crate) fn render_selector(selector: &LabelSelector) -> Result<String, String> {
    let mut parts = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        let list = || format!("({})", values.join(","));
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "has a selector expression {} {} without values",
                    e.key, e.operator
                ))
            }
            "In" => parts.push(format!("{} in {}", e.key, list())),
            "NotIn" => parts.push(format!("{} notin {}", e.key, list())),
            "Exists" => parts.push(e.key.clone()),
            "DoesNotExist" => parts.push(format!("!{}", e.key)),
            other => {
                return Err(format!(
                    "has a selector expression with unknown operator {other:?}"
                ))
            }
        }
    }
    if parts.is_empty() {
        return Err("has an empty selector".to_string());
    }
    Ok(parts.join(","))
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Why `pods` (of `group`) left no target.
fn explain_empty(pods: &[Pod], group: &str) -> String {
    if pods.is_empty() {
        return format!("no pod in {group}");
    }
    let meshed: Vec<&Pod> = pods
        .iter()
        .filter(|p| proxy_container(p).is_some())
        .collect();
    if meshed.is_empty() {
        return format!(
            "no meshed pod in {group} (none of its {} pod(s) has a {PROXY_CONTAINER} container)",
            pods.len()
        );
    }
    let not_running: Vec<String> = meshed
        .iter()
        .filter_map(|p| match pod_state(p) {
            Ok(PodState::NotRunning(phase)) => Some(format!("{} ({phase})", pod_name(p))),
            _ => None,
        })
        .collect();
    format!(
        "no running meshed pod in {group}; not running: {}",
        not_running.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).expect("pod yaml")
    }

    fn selector(yaml: &str) -> LabelSelector {
        serde_yaml_ng::from_str(yaml).expect("selector yaml")
    }

    #[test]
    fn selector_rendering() {
        assert_eq!(
            render_selector(&selector("matchLabels: {app: web, tier: front}")).expect("labels"),
            "app=web,tier=front"
        );
        assert_eq!(
            render_selector(&selector(
                "matchLabels: {app: web}\nmatchExpressions:\n- {key: env, operator: In, values: [prod, stage]}\n- {key: canary, operator: NotIn, values: [\"true\"]}\n- {key: linkerd.io/proxy-deployment, operator: Exists}\n- {key: legacy, operator: DoesNotExist}\n"
            ))
            .expect("expressions"),
            "app=web,env in (prod,stage),canary notin (true),linkerd.io/proxy-deployment,!legacy"
        );
        assert_eq!(
            render_selector(&selector("{}")).expect_err("empty"),
            "has an empty selector"
        );
        assert!(render_selector(&selector(
            "matchExpressions: [{key: a, operator: In, values: []}]"
        ))
        .expect_err("no values")
        .contains("without values"));
        assert!(render_selector(&selector(
            "matchExpressions: [{key: a, operator: Gt, values: [\"1\"]}]"
        ))
        .expect_err("operator")
        .contains("unknown operator \"Gt\""));
    }

    #[test]
    fn meshed_pod_detection() {
        let running = "status: {phase: Running, podIP: 10.0.0.5}";
        let sidecar = pod(&format!(
            "metadata: {{name: a}}\nspec:\n  containers: [{{name: app}}, {{name: linkerd-proxy}}]\n{running}"
        ));
        assert!(proxy_container(&sidecar).is_some());
        assert_eq!(
            pod_state(&sidecar),
            Ok(PodState::Meshed {
                admin: 4191,
                control: 4190
            })
        );
        let native = pod(&format!(
            "metadata: {{name: b}}\nspec:\n  initContainers:\n  - name: linkerd-proxy\n    restartPolicy: Always\n    env: [{{name: LINKERD2_PROXY_ADMIN_LISTEN_ADDR, value: \"[::]:9991\"}}, {{name: LINKERD2_PROXY_CONTROL_LISTEN_ADDR, value: \"0.0.0.0:9990\"}}]\n  containers: [{{name: app}}]\n{running}"
        ));
        assert_eq!(
            pod_state(&native),
            Ok(PodState::Meshed {
                admin: 9991,
                control: 9990
            })
        );
        // An init container of that name that is not a sidecar does not count.
        let init_only = pod(&format!(
            "metadata: {{name: c}}\nspec:\n  initContainers: [{{name: linkerd-proxy}}]\n  containers: [{{name: app}}]\n{running}"
        ));
        assert_eq!(pod_state(&init_only), Ok(PodState::NotMeshed));
        let plain = pod(&format!(
            "metadata: {{name: d}}\nspec:\n  containers: [{{name: app}}]\n{running}"
        ));
        assert_eq!(pod_state(&plain), Ok(PodState::NotMeshed));
        let pending = pod(
            "metadata: {name: e}\nspec:\n  containers: [{name: linkerd-proxy}]\nstatus: {phase: Pending}",
        );
        assert_eq!(
            pod_state(&pending),
            Ok(PodState::NotRunning("Pending".into()))
        );
        let no_status = pod("metadata: {name: f}\nspec:\n  containers: [{name: linkerd-proxy}]");
        assert_eq!(
            pod_state(&no_status),
            Ok(PodState::NotRunning("unknown".into()))
        );
        let bad = pod(&format!(
            "metadata: {{name: g}}\nspec:\n  containers:\n  - name: linkerd-proxy\n    env: [{{name: LINKERD2_PROXY_ADMIN_LISTEN_ADDR, value: \"localhost\"}}]\n{running}"
        ));
        assert!(pod_state(&bad)
            .expect_err("bad env")
            .contains("LINKERD2_PROXY_ADMIN_LISTEN_ADDR=\"localhost\" has no port"));
    }

    #[test]
    fn empty_groups_say_why() {
        let plain =
            pod("metadata: {name: p, namespace: d}\nspec: {containers: [{name: app}]}\nstatus: {phase: Running}");
        let pending = pod(
            "metadata: {name: q, namespace: d}\nspec: {containers: [{name: linkerd-proxy}]}\nstatus: {phase: Pending}",
        );
        assert_eq!(explain_empty(&[], "namespace d"), "no pod in namespace d");
        assert_eq!(
            explain_empty(std::slice::from_ref(&plain), "namespace d"),
            "no meshed pod in namespace d (none of its 1 pod(s) has a linkerd-proxy container)"
        );
        assert_eq!(
            explain_empty(&[plain, pending], "namespace d"),
            "no running meshed pod in namespace d; not running: d/q (Pending)"
        );
    }
}
