//! The containers and volumes added to a pod, field by field as Linkerd's
//! chart partials render them (`_proxy.tpl`, `_proxy-init.tpl`,
//! `_volumes.tpl`), with wisp's images and binaries.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, HTTPGetAction,
    Lifecycle, LifecycleHandler, ObjectFieldSelector, PodSpec, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use crate::config::InjectConfig;
use crate::decision::service_account_mount;
use crate::names;
use crate::overrides::Values;

/// The init container's entrypoint in `ghcr.io/wisp-mesh/init`.
pub const INIT_COMMAND: &str = "/usr/local/bin/wisp-init";
/// The readiness waiter in `ghcr.io/wisp-mesh/proxy` (postStart hook).
pub const AWAIT_COMMAND: &str = "/usr/local/bin/wisp-await";

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: path.to_string(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn resources(v: &Values) -> Option<ResourceRequirements> {
    let r = &v.resources;
    let pick = |limit: bool| {
        let mut m = BTreeMap::new();
        for (name, rl) in [
            ("cpu", &r.cpu),
            ("memory", &r.memory),
            ("ephemeral-storage", &r.ephemeral_storage),
        ] {
            let q = if limit { &rl.limit } else { &rl.request };
            if !q.is_empty() {
                m.insert(name.to_string(), Quantity(q.clone()));
            }
        }
        (!m.is_empty()).then_some(m)
    };
    let (limits, requests) = (pick(true), pick(false));
    (limits.is_some() || requests.is_some()).then(|| ResourceRequirements {
        limits,
        requests,
        ..ResourceRequirements::default()
    })
}

/// The first app container's capabilities, which the proxy copies so
/// restrictive admission policies accept it.
fn app_capabilities(spec: &PodSpec) -> Option<(Vec<String>, Vec<String>)> {
    let caps = spec
        .containers
        .first()?
        .security_context
        .as_ref()?
        .capabilities
        .as_ref()?;
    Some((
        caps.add.clone().unwrap_or_default(),
        caps.drop.clone().unwrap_or_default(),
    ))
}

fn capabilities(add: Vec<String>, drop: Vec<String>) -> Option<Capabilities> {
    (!add.is_empty() || !drop.is_empty()).then(|| Capabilities {
        add: (!add.is_empty()).then_some(add),
        drop: (!drop.is_empty()).then_some(drop),
    })
}

fn listen(config: &InjectConfig, port: u16) -> String {
    if config.disable_ipv6 {
        format!("0.0.0.0:{port}")
    } else {
        format!("[::]:{port}")
    }
}

/// The proxy's environment, in the chart's order.
pub fn proxy_env(config: &InjectConfig, trust_anchors: &str, v: &Values) -> Vec<EnvVar> {
    let ns = &config.control_plane_namespace;
    let cd = &config.cluster_domain;
    let td = config.trust_domain();
    let mut e = vec![
        field_env("_pod_name", "metadata.name"),
        field_env("_pod_ns", "metadata.namespace"),
        field_env("_pod_uid", "metadata.uid"),
        field_env("_pod_ip", "status.podIP"),
        field_env("_pod_nodeName", "spec.nodeName"),
        env("_pod_containerName", names::PROXY_CONTAINER),
    ];
    let min = if v.cores_min > 0 { v.cores_min } else { 1 };
    e.push(env("LINKERD2_PROXY_CORES", min.to_string()));
    e.push(env("LINKERD2_PROXY_CORES_MIN", min.to_string()));
    if v.cores_max > 0 {
        e.push(env("LINKERD2_PROXY_CORES_MAX", v.cores_max.to_string()));
    }
    if let Some(r) = v.cores_max_ratio {
        e.push(env("LINKERD2_PROXY_CORES_MAX_RATIO", r.to_string()));
    }
    if !v.require_identity_inbound_ports.is_empty() {
        e.push(env(
            "LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY",
            v.require_identity_inbound_ports.clone(),
        ));
    }
    e.push(env(
        "LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED",
        v.enable_shutdown_endpoint.to_string(),
    ));
    let log = if v.log_http_headers == "insecure" {
        v.log_level.clone()
    } else {
        format!("{},[{{headers}}]=off,[{{request}}]=off", v.log_level)
    };
    e.push(env("LINKERD2_PROXY_LOG", log));
    e.push(env("LINKERD2_PROXY_LOG_FORMAT", v.log_format.clone()));
    e.push(env(
        "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
        format!("linkerd-dst-headless.{ns}.svc.{cd}.:8086"),
    ));
    e.push(env(
        "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS",
        config.cluster_networks.clone(),
    ));
    e.push(env(
        "LINKERD2_PROXY_POLICY_SVC_ADDR",
        format!("linkerd-policy.{ns}.svc.{cd}.:8090"),
    ));
    e.push(env(
        "LINKERD2_PROXY_POLICY_WORKLOAD",
        "{\"ns\":\"$(_pod_ns)\", \"pod\":\"$(_pod_name)\"}\n",
    ));
    e.push(env(
        "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY",
        v.default_inbound_policy.clone(),
    ));
    e.push(env(
        "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS",
        config.cluster_networks.clone(),
    ));
    e.push(env("LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT", "3s"));
    e.push(env("LINKERD2_PROXY_CONTROL_STREAM_IDLE_TIMEOUT", "5m"));
    e.push(env("LINKERD2_PROXY_CONTROL_STREAM_LIFETIME", "1h"));
    for (name, value) in [
        (
            "LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT",
            &v.inbound_connect_timeout,
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT",
            &v.outbound_connect_timeout,
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT",
            &v.outbound_discovery_timeout,
        ),
        (
            "LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT",
            &v.inbound_discovery_timeout,
        ),
    ] {
        if !value.is_empty() {
            e.push(env(name, value.clone()));
        }
    }
    if v.disable_outbound_detect_timeout {
        e.push(env("LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT", "365d"));
    }
    if v.disable_inbound_detect_timeout {
        e.push(env("LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT", "365d"));
    }
    e.push(env(
        "LINKERD2_PROXY_CONTROL_LISTEN_ADDR",
        listen(config, v.control_port),
    ));
    e.push(env(
        "LINKERD2_PROXY_ADMIN_LISTEN_ADDR",
        listen(config, v.admin_port),
    ));
    e.push(env(
        "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR",
        format!("127.0.0.1:{}", v.outbound_port),
    ));
    let mut outbound = format!("127.0.0.1:{}", v.outbound_port);
    if !config.disable_ipv6 {
        outbound.push_str(&format!(",[::1]:{}", v.outbound_port));
    }
    e.push(env("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS", outbound));
    e.push(env(
        "LINKERD2_PROXY_INBOUND_LISTEN_ADDR",
        listen(config, v.inbound_port),
    ));
    e.push(field_env("LINKERD2_PROXY_INBOUND_IPS", "status.podIPs"));
    e.push(env(
        "LINKERD2_PROXY_INBOUND_PORTS",
        v.pod_inbound_ports.clone(),
    ));
    if v.is_gateway {
        e.push(env(
            "LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES",
            format!("svc.{cd}."),
        ));
    }
    if v.is_ingress {
        e.push(env("LINKERD2_PROXY_INGRESS_MODE", "true"));
    }
    e.push(env(
        "LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES",
        if v.enable_external_profiles {
            ".".to_string()
        } else {
            format!("svc.{cd}.")
        },
    ));
    e.push(env("LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE", "10000ms"));
    e.push(env("LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE", "10000ms"));
    e.push(env("LINKERD2_PROXY_INBOUND_ACCEPT_USER_TIMEOUT", "30s"));
    e.push(env("LINKERD2_PROXY_OUTBOUND_CONNECT_USER_TIMEOUT", "30s"));
    e.push(env(
        "LINKERD2_PROXY_OUTBOUND_METRICS_HOSTNAME_LABELS",
        v.hostname_labels.to_string(),
    ));
    for dir in ["INBOUND", "OUTBOUND"] {
        e.push(env(
            &format!("LINKERD2_PROXY_{dir}_SERVER_HTTP2_KEEP_ALIVE_INTERVAL"),
            "10s",
        ));
        e.push(env(
            &format!("LINKERD2_PROXY_{dir}_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT"),
            "3s",
        ));
    }
    if !v.opaque_ports.is_empty() {
        e.push(env(
            "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
            v.opaque_ports.clone(),
        ));
    }
    e.push(env(
        "LINKERD2_PROXY_DESTINATION_CONTEXT",
        "{\"ns\":\"$(_pod_ns)\", \"nodeName\":\"$(_pod_nodeName)\", \"pod\":\"$(_pod_name)\"}\n",
    ));
    e.push(field_env("_pod_sa", "spec.serviceAccountName"));
    e.push(env("_l5d_ns", ns.clone()));
    e.push(env("_l5d_trustdomain", td));
    e.push(env("LINKERD2_PROXY_IDENTITY_DIR", names::MOUNT_END_ENTITY));
    e.push(env(
        "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
        format!("{}\n", trust_anchors.trim()),
    ));
    e.push(env(
        "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
        if config.identity.service_account_token_projection {
            format!("{}/{}", names::MOUNT_TOKENS, names::VOLUME_TOKEN)
        } else {
            format!("{}/token", names::MOUNT_SERVICE_ACCOUNT)
        },
    ));
    e.push(env(
        "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
        format!("linkerd-identity-headless.{ns}.svc.{cd}.:8080"),
    ));
    e.push(env(
        "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
        format!("$(_pod_sa).$(_pod_ns).serviceaccount.identity.{ns}.{td}"),
    ));
    let id = |sa: &str| format!("{sa}.{ns}.serviceaccount.identity.{ns}.{td}");
    e.push(env(
        "LINKERD2_PROXY_IDENTITY_SVC_NAME",
        id("linkerd-identity"),
    ));
    e.push(env(
        "LINKERD2_PROXY_DESTINATION_SVC_NAME",
        id("linkerd-destination"),
    ));
    e.push(env(
        "LINKERD2_PROXY_POLICY_SVC_NAME",
        id("linkerd-destination"),
    ));
    if !v.access_log.is_empty() {
        e.push(env("LINKERD2_PROXY_ACCESS_LOG", v.access_log.clone()));
    }
    if !v.shutdown_grace_period.is_empty() {
        e.push(env(
            "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD",
            v.shutdown_grace_period.clone(),
        ));
    }
    e.extend(v.additional_env.iter().cloned());
    e
}

fn http_probe(path: &str, port: u16) -> HTTPGetAction {
    HTTPGetAction {
        path: Some(path.to_string()),
        port: IntOrString::Int(i32::from(port)),
        ..HTTPGetAction::default()
    }
}

/// The `linkerd-proxy` container.
pub fn proxy_container(
    config: &InjectConfig,
    trust_anchors: &str,
    v: &Values,
    spec: &PodSpec,
) -> Container {
    let (add, drop) = app_capabilities(spec).unwrap_or_default();
    let mut mounts = vec![VolumeMount {
        mount_path: names::MOUNT_END_ENTITY.into(),
        name: names::VOLUME_END_ENTITY.into(),
        ..VolumeMount::default()
    }];
    if config.identity.service_account_token_projection {
        mounts.push(VolumeMount {
            mount_path: names::MOUNT_TOKENS.into(),
            name: names::VOLUME_TOKEN.into(),
            ..VolumeMount::default()
        });
    }
    mounts.extend(service_account_volume_mount(spec));
    let lifecycle = if !v.native_sidecar && (v.r#await || v.wait_before_exit_seconds > 0) {
        let exec = |command: Vec<String>| LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(command),
            }),
            ..LifecycleHandler::default()
        };
        Some(Lifecycle {
            post_start: v.r#await.then(|| {
                exec(vec![
                    AWAIT_COMMAND.into(),
                    "--timeout=2m".into(),
                    format!("--port={}", v.admin_port),
                ])
            }),
            pre_stop: (v.wait_before_exit_seconds > 0).then(|| {
                exec(vec![
                    "/bin/sleep".into(),
                    v.wait_before_exit_seconds.to_string(),
                ])
            }),
            ..Lifecycle::default()
        })
    } else {
        None
    };
    Container {
        env: Some(proxy_env(config, trust_anchors, v)),
        image: Some(format!("{}:{}", v.proxy_image, v.proxy_version)),
        image_pull_policy: Some(v.pull_policy.clone()).filter(|p| !p.is_empty()),
        lifecycle,
        liveness_probe: Some(Probe {
            http_get: Some(http_probe("/live", v.admin_port)),
            initial_delay_seconds: Some(10),
            timeout_seconds: Some(1),
            ..Probe::default()
        }),
        name: names::PROXY_CONTAINER.into(),
        ports: Some(vec![
            ContainerPort {
                container_port: i32::from(v.inbound_port),
                name: Some("linkerd-proxy".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                container_port: i32::from(v.admin_port),
                name: Some("linkerd-admin".into()),
                ..ContainerPort::default()
            },
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(http_probe("/ready", v.admin_port)),
            initial_delay_seconds: Some(2),
            timeout_seconds: Some(1),
            ..Probe::default()
        }),
        startup_probe: (v.native_sidecar && v.r#await).then(|| Probe {
            http_get: Some(http_probe("/ready", v.admin_port)),
            initial_delay_seconds: Some(0),
            period_seconds: Some(1),
            failure_threshold: Some(120),
            ..Probe::default()
        }),
        resources: resources(v),
        restart_policy: v.native_sidecar.then(|| "Always".to_string()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: capabilities(add, drop),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(v.uid),
            run_as_group: (v.gid >= 0).then_some(v.gid),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// `linkerd-init`'s arguments (linkerd2-proxy-init's flags).
pub fn init_args(config: &InjectConfig, v: &Values) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    if config.proxy_init.iptables_mode == "nft" {
        a.extend(
            [
                "--firewall-bin-path",
                "iptables-nft",
                "--firewall-save-bin-path",
                "iptables-nft-save",
            ]
            .map(String::from),
        );
    }
    if config.disable_ipv6 {
        a.push("--ipv6=false".into());
    }
    a.push("--incoming-proxy-port".into());
    a.push(v.inbound_port.to_string());
    a.push("--outgoing-proxy-port".into());
    a.push(v.outbound_port.to_string());
    a.push("--proxy-uid".into());
    a.push(v.uid.to_string());
    if v.gid >= 0 {
        a.push("--proxy-gid".into());
        a.push(v.gid.to_string());
    }
    a.push("--inbound-ports-to-ignore".into());
    let mut ignored = format!("{},{}", v.control_port, v.admin_port);
    if !v.ignore_inbound_ports.is_empty() {
        ignored.push(',');
        ignored.push_str(&v.ignore_inbound_ports);
    }
    a.push(ignored);
    if !v.ignore_outbound_ports.is_empty() {
        a.push("--outbound-ports-to-ignore".into());
        a.push(v.ignore_outbound_ports.clone());
    }
    if v.close_wait_timeout_secs > 0 {
        a.push("--timeout-close-wait-secs".into());
        a.push(v.close_wait_timeout_secs.to_string());
    }
    if !v.skip_subnets.is_empty() {
        a.push("--subnets-to-ignore".into());
        a.push(v.skip_subnets.clone());
    }
    a
}

/// Why the init container cannot be rendered (the pod author's or the
/// operator's fault).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// `close-wait-timeout` needs root.
    #[error("config.linkerd.io/close-wait-timeout needs proxyInit.runAsRoot: true in inject.yaml")]
    CloseWaitNeedsRoot,
}

/// The `linkerd-init` container.
pub fn init_container(
    config: &InjectConfig,
    v: &Values,
    spec: &PodSpec,
) -> Result<Container, RenderError> {
    let pi = &config.proxy_init;
    let close_wait = v.close_wait_timeout_secs > 0;
    if close_wait && !pi.run_as_root {
        return Err(RenderError::CloseWaitNeedsRoot);
    }
    let mut add = vec!["NET_ADMIN".to_string(), "NET_RAW".to_string()];
    let mut drop = Vec::new();
    if let Some((app_add, app_drop)) = app_capabilities(spec) {
        add.extend(app_add);
        drop.extend(
            app_drop
                .into_iter()
                .filter(|d| d != "NET_RAW" && d != "NET_ADMIN"),
        );
    }
    let or_nobody = |id: i64| if id == 0 { 65534 } else { id };
    let mut mounts = vec![VolumeMount {
        mount_path: "/run".into(),
        name: names::VOLUME_XTABLES.into(),
        ..VolumeMount::default()
    }];
    mounts.extend(service_account_volume_mount(spec));
    Ok(Container {
        args: Some(init_args(config, v)),
        command: Some(vec![INIT_COMMAND.into()]),
        image: Some(format!("{}:{}", v.init_image, v.init_version)),
        image_pull_policy: Some(v.init_pull_policy.clone()).filter(|p| !p.is_empty()),
        name: names::INIT_CONTAINER.into(),
        resources: resources(v),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(close_wait),
            capabilities: Some(Capabilities {
                add: Some(add),
                drop: (!drop.is_empty()).then_some(drop),
            }),
            privileged: Some(close_wait),
            read_only_root_filesystem: Some(true),
            run_as_group: Some(if pi.run_as_root {
                0
            } else {
                or_nobody(pi.run_as_group)
            }),
            run_as_non_root: Some(!pi.run_as_root),
            run_as_user: Some(if pi.run_as_root {
                0
            } else {
                or_nobody(pi.run_as_user)
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Container::default()
    })
}

/// The `linkerd-debug` sidecar.
pub fn debug_container(image: &str, pull_policy: &str) -> Container {
    let always_true = || Probe {
        exec: Some(ExecAction {
            command: Some(vec!["true".into()]),
        }),
        ..Probe::default()
    };
    Container {
        image: Some(image.to_string()),
        image_pull_policy: Some(pull_policy.to_string()).filter(|p| !p.is_empty()),
        name: names::DEBUG_CONTAINER.into(),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        liveness_probe: Some(always_true()),
        readiness_probe: Some(always_true()),
        ..Container::default()
    }
}

/// The xtables lock volume.
pub fn xtables_volume() -> Value {
    json!({"emptyDir": {}, "name": names::VOLUME_XTABLES})
}

/// The in-memory identity volume.
pub fn end_entity_volume() -> Value {
    json!({"name": names::VOLUME_END_ENTITY, "emptyDir": {"medium": "Memory"}})
}

/// The projected token volume (audience `identity.l5d.io`, 24 h).
pub fn token_volume() -> Value {
    json!({
        "name": names::VOLUME_TOKEN,
        "projected": {"sources": [{"serviceAccountToken": {
            "path": names::VOLUME_TOKEN,
            "expirationSeconds": names::TOKEN_EXPIRATION_SECONDS,
            "audience": names::TOKEN_AUDIENCE,
        }}]}
    })
}

/// The app's ServiceAccount token mount, repeated in an injected container
/// (`readOnly` made explicit), when the pod has one.
fn service_account_volume_mount(spec: &PodSpec) -> Option<VolumeMount> {
    service_account_mount(spec).map(|sa| VolumeMount {
        mount_path: sa.mount_path.clone(),
        name: sa.name.clone(),
        read_only: Some(sa.read_only.unwrap_or(false)),
        ..VolumeMount::default()
    })
}
