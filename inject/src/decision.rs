//! Whether a pod gets a proxy, and if not, why not.
//!
//! Linkerd's table (`linkerd.io/inject` on the pod or its namespace), plus
//! Istio's switches so Istio-labelled namespaces and opted-out pods behave
//! as their authors meant:
//!
//! | origin  | namespace            | pod                    | injected |
//! |---------|----------------------|------------------------|----------|
//! | webhook | enabled/ingress      | (none), enabled        | yes      |
//! | webhook | enabled/ingress      | disabled               | no       |
//! | webhook | label istio-injection=enabled (no linkerd.io/inject) | not disabled | yes |
//! | webhook | anything             | enabled/ingress        | yes      |
//! | webhook | (none)/disabled      | (none)/disabled        | no       |
//! | cli     | –                    | anything but disabled  | yes      |
//!
//! Whatever the table says, a pod is never injected when it has
//! `sidecar.istio.io/inject: "false"` (label or annotation), uses
//! `hostNetwork`, already has a proxy (`linkerd-proxy`, `istio-proxy`, or
//! their init containers), or disables its token mount while token
//! projection is off. An invalid `linkerd.io/inject` value disables.

use std::fmt;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::names;

/// Who asks: the admission webhook (namespace annotations count) or the
/// CLI (`wisp inject`, which injects unless the pod opts out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The mutating admission webhook.
    Webhook,
    /// `wisp inject`.
    Cli,
}

/// Why a pod is not injected (codes are Linkerd's metric/report reasons).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// `hostNetwork: true`: iptables would capture the node's traffic.
    HostNetwork,
    /// A proxy (or its init container) is already there.
    SidecarExists,
    /// The object has no pod template.
    UnsupportedResource,
    /// The pod says `linkerd.io/inject: disabled`.
    DisabledAnnotation,
    /// Neither the pod nor its namespace enables injection.
    EnableAnnotationAbsent,
    /// The pod's `linkerd.io/inject` is not enabled/ingress/disabled.
    InvalidAtWorkload(String),
    /// The namespace's `linkerd.io/inject` is not enabled/ingress/disabled.
    InvalidAtNamespace(String),
    /// The pod says `sidecar.istio.io/inject: "false"`.
    IstioOptOut,
    /// `automountServiceAccountToken: false` without token projection.
    AutomountDisabled,
}

impl SkipReason {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::HostNetwork => "host_network_enabled",
            SkipReason::SidecarExists => "sidecar_already_exists",
            SkipReason::UnsupportedResource => "unsupported_resource",
            SkipReason::DisabledAnnotation => "injection_disable_annotation_present",
            SkipReason::EnableAnnotationAbsent => "injection_enable_annotation_absent",
            SkipReason::InvalidAtWorkload(_) => "invalid_inject_annotation_at_workload",
            SkipReason::InvalidAtNamespace(_) => "invalid_inject_annotation_at_ns",
            SkipReason::IstioOptOut => "istio_sidecar_inject_false",
            SkipReason::AutomountDisabled => "disabled_automount_service_account_token_account",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::HostNetwork => f.write_str("hostNetwork is enabled"),
            SkipReason::SidecarExists => f.write_str("pod has a sidecar injected already"),
            SkipReason::UnsupportedResource => f.write_str("this resource kind is unsupported"),
            SkipReason::DisabledAnnotation => {
                f.write_str("pod has the annotation \"linkerd.io/inject:disabled\"")
            }
            SkipReason::EnableAnnotationAbsent => f.write_str(
                "neither the namespace nor the pod have the annotation \"linkerd.io/inject:enabled\"",
            ),
            SkipReason::InvalidAtWorkload(v) => write!(
                f,
                "invalid value {v:?} for annotation \"linkerd.io/inject\" at workload"
            ),
            SkipReason::InvalidAtNamespace(v) => write!(
                f,
                "invalid value {v:?} for annotation \"linkerd.io/inject\" at namespace"
            ),
            SkipReason::IstioOptOut => f.write_str("pod has \"sidecar.istio.io/inject: false\""),
            SkipReason::AutomountDisabled => f.write_str(
                "automountServiceAccountToken set to \"false\", with identity.serviceAccountTokenProjection set to \"false\"",
            ),
        }
    }
}

/// The outcome for one pod template.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Empty when the pod is injected.
    pub reasons: Vec<SkipReason>,
    /// Some container declares a UDP port (reported, not blocking: only TCP
    /// is redirected).
    pub udp: bool,
}

impl Decision {
    /// Whether the pod gets a proxy.
    pub fn inject(&self) -> bool {
        self.reasons.is_empty()
    }
}

fn get<'a>(map: &'a Option<std::collections::BTreeMap<String, String>>, key: &str) -> &'a str {
    map.as_ref()
        .and_then(|m| m.get(key))
        .map(String::as_str)
        .unwrap_or("")
}

fn valid(value: &str) -> bool {
    matches!(value, "" | "enabled" | "disabled" | "ingress")
}

fn enables(value: &str) -> bool {
    matches!(value, "enabled" | "ingress")
}

/// Whether the pod already carries a proxy (Linkerd's or Istio's).
pub fn has_sidecar(spec: &PodSpec) -> bool {
    let proxy_images = [
        "cr.l5d.io/linkerd/proxy:",
        "gcr.io/istio-release/proxyv2:",
        "ghcr.io/wisp-mesh/proxy:",
    ];
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for c in containers {
        let image = c.image.as_deref().unwrap_or("");
        if proxy_images.iter().any(|p| image.starts_with(p))
            || c.name == names::PROXY_CONTAINER
            || c.name == "istio-proxy"
        {
            return true;
        }
    }
    spec.init_containers.iter().flatten().any(|c| {
        let image = c.image.as_deref().unwrap_or("");
        image.starts_with("cr.l5d.io/linkerd/proxy-init:")
            || image.starts_with("gcr.io/istio-release/proxy_init:")
            || image.starts_with("ghcr.io/wisp-mesh/init:")
            || c.name == names::INIT_CONTAINER
            || c.name == "istio-init"
    })
}

/// Whether the first container mounts the ServiceAccount token explicitly.
pub(crate) fn service_account_mount(
    spec: &PodSpec,
) -> Option<&k8s_openapi::api::core::v1::VolumeMount> {
    spec.containers
        .first()?
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == names::MOUNT_SERVICE_ACCOUNT)
}

/// Decides for one pod template (`meta`/`spec`), given its namespace's
/// metadata (webhook only) and whether token projection is on.
pub fn decide(
    origin: Origin,
    meta: &ObjectMeta,
    spec: &PodSpec,
    namespace: Option<&ObjectMeta>,
    token_projection: bool,
) -> Decision {
    let mut reasons = Vec::new();
    if spec.host_network == Some(true) {
        reasons.push(SkipReason::HostNetwork);
    }
    if has_sidecar(spec) {
        reasons.push(SkipReason::SidecarExists);
    }
    if let Some(reason) = by_annotation(origin, meta, namespace) {
        reasons.push(reason);
    }
    let mut automount = true;
    if !token_projection {
        if spec.automount_service_account_token == Some(false) {
            automount = false;
        }
        if origin == Origin::Webhook && service_account_mount(spec).is_none() {
            automount = false;
        }
    }
    if !automount {
        reasons.push(SkipReason::AutomountDisabled);
    }
    let udp = spec.containers.iter().any(|c| {
        c.ports
            .iter()
            .flatten()
            .any(|p| p.protocol.as_deref() == Some("UDP"))
    });
    Decision { reasons, udp }
}

fn by_annotation(
    origin: Origin,
    meta: &ObjectMeta,
    namespace: Option<&ObjectMeta>,
) -> Option<SkipReason> {
    let istio_pod = match get(&meta.labels, names::ISTIO_SIDECAR_INJECT) {
        "" => get(&meta.annotations, names::ISTIO_SIDECAR_INJECT),
        v => v,
    };
    if istio_pod == "false" {
        return Some(SkipReason::IstioOptOut);
    }
    let pod = get(&meta.annotations, names::ANN_INJECT);
    if origin == Origin::Cli {
        return (pod == "disabled").then_some(SkipReason::DisabledAnnotation);
    }
    let (ns, ns_istio) = namespace
        .map(|m| {
            (
                get(&m.annotations, names::ANN_INJECT),
                get(&m.labels, names::LABEL_ISTIO_INJECTION),
            )
        })
        .unwrap_or(("", ""));
    if !valid(ns) {
        return Some(SkipReason::InvalidAtNamespace(ns.to_string()));
    }
    if !valid(pod) {
        return Some(SkipReason::InvalidAtWorkload(pod.to_string()));
    }
    let ns_enables = match ns {
        "" => ns_istio == "enabled",
        v => enables(v),
    };
    if ns_enables {
        return (pod == "disabled").then_some(SkipReason::DisabledAnnotation);
    }
    if enables(pod) || (pod.is_empty() && istio_pod == "true") {
        return None;
    }
    Some(if pod == "disabled" {
        SkipReason::DisabledAnnotation
    } else {
        SkipReason::EnableAnnotationAbsent
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn meta(annotations: &[(&str, &str)], labels: &[(&str, &str)]) -> ObjectMeta {
        let map = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        ObjectMeta {
            annotations: map(annotations),
            labels: map(labels),
            ..ObjectMeta::default()
        }
    }

    fn spec() -> PodSpec {
        serde_json::from_value(serde_json::json!({"containers": [{"name": "app", "image": "app"}]}))
            .unwrap()
    }

    fn webhook(pod: &ObjectMeta, ns: &ObjectMeta) -> Vec<SkipReason> {
        decide(Origin::Webhook, pod, &spec(), Some(ns), true).reasons
    }

    #[test]
    fn linkerd_truth_table() {
        let none = meta(&[], &[]);
        let en = meta(&[("linkerd.io/inject", "enabled")], &[]);
        let ing = meta(&[("linkerd.io/inject", "ingress")], &[]);
        let dis = meta(&[("linkerd.io/inject", "disabled")], &[]);
        use SkipReason::*;
        // (namespace, pod, expected)
        let cases: Vec<(&ObjectMeta, &ObjectMeta, Vec<SkipReason>)> = vec![
            (&en, &en, vec![]),
            (&en, &none, vec![]),
            (&en, &dis, vec![DisabledAnnotation]),
            (&dis, &en, vec![]),
            (&none, &en, vec![]),
            (&none, &ing, vec![]),
            (&ing, &none, vec![]),
            (&dis, &dis, vec![DisabledAnnotation]),
            (&none, &dis, vec![DisabledAnnotation]),
            (&dis, &none, vec![EnableAnnotationAbsent]),
            (&none, &none, vec![EnableAnnotationAbsent]),
        ];
        for (i, (ns, pod, want)) in cases.into_iter().enumerate() {
            assert_eq!(webhook(pod, ns), want, "case {i}");
        }
    }

    #[test]
    fn invalid_values_disable() {
        let bad = meta(&[("linkerd.io/inject", "yes")], &[]);
        let en = meta(&[("linkerd.io/inject", "enabled")], &[]);
        // webhook(pod, namespace)
        assert_eq!(
            webhook(&bad, &en),
            vec![SkipReason::InvalidAtWorkload("yes".into())]
        );
        assert_eq!(
            webhook(&en, &bad),
            vec![SkipReason::InvalidAtNamespace("yes".into())]
        );
    }

    #[test]
    fn istio_namespace_label_and_pod_opt_out() {
        let istio_ns = meta(&[], &[("istio-injection", "enabled")]);
        let none = meta(&[], &[]);
        assert!(webhook(&none, &istio_ns).is_empty());
        let off_label = meta(&[], &[("sidecar.istio.io/inject", "false")]);
        let off_ann = meta(&[("sidecar.istio.io/inject", "false")], &[]);
        assert_eq!(
            webhook(&off_label, &istio_ns),
            vec![SkipReason::IstioOptOut]
        );
        assert_eq!(webhook(&off_ann, &istio_ns), vec![SkipReason::IstioOptOut]);
        // Even an explicit linkerd enable loses to Istio's opt-out.
        let both = meta(
            &[
                ("linkerd.io/inject", "enabled"),
                ("sidecar.istio.io/inject", "false"),
            ],
            &[],
        );
        assert_eq!(webhook(&both, &none), vec![SkipReason::IstioOptOut]);
        // A namespace explicitly disabled for linkerd stays disabled.
        let mixed = meta(
            &[("linkerd.io/inject", "disabled")],
            &[("istio-injection", "enabled")],
        );
        assert_eq!(
            webhook(&none, &mixed),
            vec![SkipReason::EnableAnnotationAbsent]
        );
        // istio-injection=disabled does not enable.
        let istio_off = meta(&[], &[("istio-injection", "disabled")]);
        assert_eq!(
            webhook(&none, &istio_off),
            vec![SkipReason::EnableAnnotationAbsent]
        );
        // Pod-level Istio opt-in.
        let pod_in = meta(&[], &[("sidecar.istio.io/inject", "true")]);
        assert!(webhook(&pod_in, &none).is_empty());
    }

    #[test]
    fn host_network_existing_proxy_and_automount() {
        let en = meta(&[("linkerd.io/inject", "enabled")], &[]);
        let host: PodSpec = serde_json::from_value(serde_json::json!({
            "hostNetwork": true, "containers": [{"name": "app"}]}))
        .unwrap();
        assert_eq!(
            decide(Origin::Webhook, &en, &host, None, true).reasons,
            vec![SkipReason::HostNetwork]
        );
        let injected: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "app"}],
            "initContainers": [{"name": "linkerd-proxy", "restartPolicy": "Always"}]}))
        .unwrap();
        assert_eq!(
            decide(Origin::Cli, &en, &injected, None, true).reasons,
            vec![SkipReason::SidecarExists]
        );
        let no_automount: PodSpec = serde_json::from_value(serde_json::json!({
            "automountServiceAccountToken": false, "containers": [{"name": "app"}]}))
        .unwrap();
        assert!(decide(Origin::Cli, &en, &no_automount, None, true).inject());
        assert_eq!(
            decide(Origin::Cli, &en, &no_automount, None, false).reasons,
            vec![SkipReason::AutomountDisabled]
        );
    }

    #[test]
    fn cli_injects_unless_disabled() {
        let none = meta(&[], &[]);
        let dis = meta(&[("linkerd.io/inject", "disabled")], &[]);
        assert!(decide(Origin::Cli, &none, &spec(), None, true).inject());
        assert_eq!(
            decide(Origin::Cli, &dis, &spec(), None, true).reasons,
            vec![SkipReason::DisabledAnnotation]
        );
    }

    #[test]
    fn udp_is_reported_not_blocking() {
        let s: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "dns", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]}))
        .unwrap();
        let d = decide(Origin::Cli, &meta(&[], &[]), &s, None, true);
        assert!(d.inject() && d.udp);
    }
}
