//! The injection transformation for one pod template: decide, resolve the
//! overrides, and produce the JSON patch (Linkerd's order) that adds the
//! proxy, its init container, volumes, labels and annotations.

use std::collections::BTreeMap;
use std::sync::RwLock;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::config::InjectConfig;
use crate::decision::{self, Decision, Origin};
use crate::names::{self, config as ann};
use crate::overrides;
use crate::patch;
use crate::render;

/// wisp's version: the default image tag and the `created-by` suffix.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Owner kinds that get a `linkerd.io/proxy-<kind>` label.
const OWNER_KINDS: &[&str] = &[
    "deployment",
    "replicaset",
    "replicationcontroller",
    "statefulset",
    "daemonset",
    "job",
    "cronjob",
];

/// One pod template to inject.
#[derive(Clone, Debug)]
pub struct PodInput<'a> {
    /// The Pod, or the workload's pod template (`metadata` + `spec`).
    pub template: &'a Value,
    /// JSON pointer of `template` in the patched object (`""` for a Pod,
    /// `/spec/template`, `/spec/jobTemplate/spec/template`).
    pub prefix: &'a str,
    /// The pod's namespace (label `linkerd.io/workload-ns`).
    pub namespace: &'a str,
    /// Top-level owner (`deployment`, `web`) for `linkerd.io/proxy-<kind>`.
    pub owner: Option<(String, String)>,
    /// The namespace's metadata (webhook: enabling annotations/labels and
    /// inherited `config.linkerd.io/*`).
    pub namespace_meta: Option<&'a ObjectMeta>,
    /// Webhook or CLI rules.
    pub origin: Origin,
    /// Annotations to add and honour first (`wisp inject` flags).
    pub extra_annotations: BTreeMap<String, String>,
}

/// What became of one pod template.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Injected: apply `patch` (RFC 6902 operations).
    Injected {
        /// The operations, in Linkerd's order.
        patch: Vec<Value>,
        /// Annotation values that were ignored.
        warnings: Vec<String>,
        /// The decision (for UDP reporting).
        decision: Decision,
    },
    /// Left alone.
    Skipped(Decision),
}

/// Why a pod could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The pod template does not parse as a Kubernetes PodSpec (the
    /// manifest author's or the API server's fault).
    #[error("the pod template is not a valid PodSpec")]
    BadPod(#[source] serde_json::Error),
    /// No trust anchors: the operator did not configure them.
    #[error(
        "no identity trust anchors: set identityTrustAnchorsPEM in inject.yaml or pass them to the injector"
    )]
    NoTrustAnchors,
    /// The annotations ask for something the configuration forbids.
    #[error("cannot render the proxy")]
    Render(#[from] render::RenderError),
}

/// The injector: configuration plus the current trust anchors (which the
/// controller may replace when ConfigMap `linkerd-identity-trust-roots`
/// changes).
#[derive(Debug)]
pub struct Injector {
    config: InjectConfig,
    trust_anchors: RwLock<String>,
    created_by: String,
}

fn hex_sha256(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn meta_of(template: &Value) -> Result<ObjectMeta, InjectError> {
    match template.get("metadata") {
        None | Some(Value::Null) => Ok(ObjectMeta::default()),
        Some(m) => serde_json::from_value(m.clone()).map_err(InjectError::BadPod),
    }
}

fn spec_of(template: &Value) -> Result<PodSpec, InjectError> {
    let spec = template.get("spec").cloned().unwrap_or(Value::Null);
    serde_json::from_value(spec).map_err(InjectError::BadPod)
}

impl Injector {
    /// An injector for the webhook (`created-by: wisp/proxy-injector
    /// <version>`); trust anchors start as the config's.
    pub fn new(config: InjectConfig) -> Self {
        let anchors = config.identity_trust_anchors_pem.clone();
        Self {
            config,
            trust_anchors: RwLock::new(anchors),
            created_by: format!("wisp/proxy-injector {VERSION}"),
        }
    }

    /// An injector for `wisp inject` (`created-by: wisp/cli <version>`).
    pub fn for_cli(config: InjectConfig) -> Self {
        Self {
            created_by: format!("wisp/cli {VERSION}"),
            ..Self::new(config)
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InjectConfig {
        &self.config
    }

    /// Replaces the trust anchors (PEM bundle) written into new proxies.
    pub fn set_trust_anchors(&self, pem: impl Into<String>) {
        let pem = pem.into();
        match self.trust_anchors.write() {
            Ok(mut slot) => *slot = pem,
            Err(poisoned) => *poisoned.into_inner() = pem,
        }
    }

    /// The current trust anchors (empty when unknown).
    pub fn trust_anchors(&self) -> String {
        match self.trust_anchors.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Decides and, when injecting, builds the patch for one pod template.
    pub fn plan(&self, input: &PodInput<'_>) -> Result<Outcome, InjectError> {
        let meta = meta_of(input.template)?;
        let spec = spec_of(input.template)?;
        let config = &self.config;
        let decision = decision::decide(
            input.origin,
            &meta,
            &spec,
            input.namespace_meta,
            config.identity.service_account_token_projection,
        );
        if !decision.inject() {
            return Ok(Outcome::Skipped(decision));
        }
        let anchors = self.trust_anchors();
        if anchors.trim().is_empty() {
            return Err(InjectError::NoTrustAnchors);
        }
        let pod_annotations = meta.annotations.clone().unwrap_or_default();
        let ns_annotations = input
            .namespace_meta
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();

        // Annotations the pod gains before rendering (they count as
        // overrides): created-by, CLI flags, the namespace's config, and
        // (webhook) the default opaque ports the pod exposes.
        let mut added: BTreeMap<String, String> = BTreeMap::new();
        added.insert(names::ANN_CREATED_BY.into(), self.created_by.clone());
        added.extend(input.extra_annotations.clone());
        if input.origin == Origin::Webhook {
            for key in ann::INHERITED {
                if let Some(value) = ns_annotations.get(*key) {
                    if !pod_annotations.contains_key(*key) && !added.contains_key(*key) {
                        added.insert(key.to_string(), value.clone());
                    }
                }
            }
            if !pod_annotations.contains_key(ann::OPAQUE_PORTS)
                && !added.contains_key(ann::OPAQUE_PORTS)
            {
                let defaults: Vec<&str> = config.proxy.opaque_ports.split(',').collect();
                let exposed: Vec<String> = spec
                    .init_containers
                    .iter()
                    .flatten()
                    .chain(&spec.containers)
                    .flat_map(|c| c.ports.iter().flatten())
                    .map(|p| p.container_port.to_string())
                    .filter(|p| defaults.contains(&p.as_str()))
                    .collect();
                if !exposed.is_empty() {
                    added.insert(ann::OPAQUE_PORTS.into(), exposed.join(","));
                }
            }
        }
        let mut effective = pod_annotations.clone();
        effective.extend(added.clone());
        let (values, warnings) = overrides::resolve(
            config,
            VERSION,
            &effective,
            &ns_annotations,
            &effective,
            &spec,
        );

        let mut annotations = added;
        annotations.insert(
            names::ANN_PROXY_VERSION.into(),
            values.proxy_version.clone(),
        );
        annotations.insert(
            names::ANN_TRUST_ROOT_SHA.into(),
            hex_sha256(anchors.as_bytes()),
        );
        let mut labels = BTreeMap::new();
        labels.insert(
            names::LABEL_CONTROL_PLANE_NS.to_string(),
            config.control_plane_namespace.clone(),
        );
        if let Some((kind, name)) = &input.owner {
            let kind = kind.to_ascii_lowercase();
            if OWNER_KINDS.contains(&kind.as_str()) {
                labels.insert(format!("linkerd.io/proxy-{kind}"), name.clone());
            }
        }
        labels.insert(
            names::LABEL_WORKLOAD_NS.to_string(),
            input.namespace.to_string(),
        );

        let prefix = input.prefix;
        let mut ops = patch::metadata_ops(prefix, input.template, &annotations, &labels);
        let pod_spec = input.template.get("spec");
        if patch::is_empty(pod_spec.and_then(|s| s.get("volumes"))) {
            ops.push(patch::add(
                format!("{prefix}/spec/volumes"),
                Value::Array(vec![]),
            ));
        }
        if patch::is_empty(pod_spec.and_then(|s| s.get("initContainers"))) {
            ops.push(patch::add(
                format!("{prefix}/spec/initContainers"),
                Value::Array(vec![]),
            ));
        }
        let to_value = |c: k8s_openapi::api::core::v1::Container| {
            serde_json::to_value(c).map_err(InjectError::BadPod)
        };
        ops.push(patch::add(
            format!("{prefix}/spec/volumes/-"),
            render::xtables_volume(),
        ));
        let init_index = if values.native_sidecar { "0" } else { "-" };
        ops.push(patch::add(
            format!("{prefix}/spec/initContainers/{init_index}"),
            to_value(render::init_container(config, &values, &spec)?)?,
        ));
        if let Some((image, pull)) = &values.debug {
            ops.push(patch::add(
                format!("{prefix}/spec/containers/-"),
                to_value(render::debug_container(image, pull))?,
            ));
        }
        ops.push(patch::add(
            format!("{prefix}/spec/volumes/-"),
            render::end_entity_volume(),
        ));
        if config.identity.service_account_token_projection {
            ops.push(patch::add(
                format!("{prefix}/spec/volumes/-"),
                render::token_volume(),
            ));
        }
        let proxy_path = if values.native_sidecar {
            format!("{prefix}/spec/initContainers/1")
        } else if values.r#await {
            format!("{prefix}/spec/containers/0")
        } else {
            format!("{prefix}/spec/containers/-")
        };
        ops.push(patch::add(
            proxy_path,
            to_value(render::proxy_container(config, &anchors, &values, &spec))?,
        ));
        for w in &warnings {
            tracing::warn!("{w}");
        }
        Ok(Outcome::Injected {
            patch: ops,
            warnings,
            decision,
        })
    }

    /// The webhook's Service mutation: a Service without
    /// `config.linkerd.io/opaque-ports` gets its namespace's value, or the
    /// default opaque ports it exposes (by port, or by targetPort when set).
    /// `None` when nothing changes.
    pub fn service_patch(
        &self,
        service: &Value,
        namespace_meta: Option<&ObjectMeta>,
    ) -> Option<Vec<Value>> {
        let annotations = service.pointer("/metadata/annotations");
        if annotations.and_then(|a| a.get(ann::OPAQUE_PORTS)).is_some() {
            return None;
        }
        let inherited = namespace_meta
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(ann::OPAQUE_PORTS))
            .cloned();
        let value = match inherited {
            Some(v) => v,
            None => {
                let defaults: Vec<&str> = self.config.proxy.opaque_ports.split(',').collect();
                let ports: Vec<String> = service
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| {
                        let port = p.get("port")?.as_i64()?.to_string();
                        let target = match p.get("targetPort") {
                            Some(Value::Number(n)) if n.as_i64() != Some(0) => Some(n.to_string()),
                            Some(Value::String(s)) => s.parse::<i64>().ok().map(|n| n.to_string()),
                            _ => None,
                        };
                        let check = target.unwrap_or_else(|| port.clone());
                        defaults.contains(&check.as_str()).then_some(port)
                    })
                    .collect();
                if ports.is_empty() {
                    return None;
                }
                ports.join(",")
            }
        };
        let mut ops = Vec::new();
        if patch::is_empty(annotations) {
            ops.push(patch::add(
                "/metadata/annotations".into(),
                serde_json::json!({}),
            ));
        }
        ops.push(patch::add(
            format!("/metadata/annotations/{}", patch::escape(ann::OPAQUE_PORTS)),
            Value::String(value),
        ));
        Some(ops)
    }
}
