//! The `config.linkerd.io/*` annotations: a pod's (and its namespace's)
//! overrides of the `inject.yaml` defaults, resolved into the values one
//! proxy is rendered from. Unparsable values are ignored with a warning,
//! as Linkerd does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, PodSpec};

use crate::config::{InjectConfig, RequestLimit, ResourcesConfig};
use crate::names::{self, config as ann};
use crate::parse;

/// Everything one injected pod is rendered from.
#[derive(Clone, Debug, PartialEq)]
pub struct Values {
    /// Proxy image repository.
    pub proxy_image: String,
    /// Proxy image tag (never empty).
    pub proxy_version: String,
    /// Proxy (and init) pull policy.
    pub pull_policy: String,
    /// Init image repository.
    pub init_image: String,
    /// Init image tag.
    pub init_version: String,
    /// Init pull policy.
    pub init_pull_policy: String,
    /// Admin port.
    pub admin_port: u16,
    /// Control port.
    pub control_port: u16,
    /// Inbound port.
    pub inbound_port: u16,
    /// Outbound port.
    pub outbound_port: u16,
    /// Proxy uid.
    pub uid: i64,
    /// Proxy gid (< 0: unset).
    pub gid: i64,
    /// Log filter (before header suppression).
    pub log_level: String,
    /// Log format.
    pub log_format: String,
    /// `off` / `insecure`.
    pub log_http_headers: String,
    /// Container resources.
    pub resources: ResourcesConfig,
    /// Worker threads minimum (`LINKERD2_PROXY_CORES`), default 1.
    pub cores_min: i64,
    /// Worker threads maximum (0: unset).
    pub cores_max: i64,
    /// Maximum share of the node's CPUs.
    pub cores_max_ratio: Option<f64>,
    /// `LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION`.
    pub opaque_ports: String,
    /// `LINKERD2_PROXY_INBOUND_PORTS`.
    pub pod_inbound_ports: String,
    /// Inbound connect timeout.
    pub inbound_connect_timeout: String,
    /// Outbound connect timeout.
    pub outbound_connect_timeout: String,
    /// Inbound discovery idle timeout.
    pub inbound_discovery_timeout: String,
    /// Outbound discovery idle timeout.
    pub outbound_discovery_timeout: String,
    /// Inbound detect timeout 365d.
    pub disable_inbound_detect_timeout: bool,
    /// Outbound detect timeout 365d.
    pub disable_outbound_detect_timeout: bool,
    /// Default inbound policy.
    pub default_inbound_policy: String,
    /// Ports requiring identity (policy controller; env kept for Linkerd parity).
    pub require_identity_inbound_ports: String,
    /// App containers wait for the proxy.
    pub r#await: bool,
    /// Native sidecar.
    pub native_sidecar: bool,
    /// `/shutdown` endpoint.
    pub enable_shutdown_endpoint: bool,
    /// Drain deadline.
    pub shutdown_grace_period: String,
    /// Access log format.
    pub access_log: String,
    /// Profiles for all names.
    pub enable_external_profiles: bool,
    /// Hostname labels on outbound metrics.
    pub hostname_labels: bool,
    /// Gateway mode.
    pub is_gateway: bool,
    /// Ingress mode (`linkerd.io/inject: ingress`).
    pub is_ingress: bool,
    /// `preStop` sleep seconds (non-native sidecar only; 0: none).
    pub wait_before_exit_seconds: u64,
    /// Extra env, merged by name (config < namespace < workload).
    pub additional_env: Vec<EnvVar>,
    /// Init: inbound ports not redirected (besides control/admin).
    pub ignore_inbound_ports: String,
    /// Init: outbound ports not redirected.
    pub ignore_outbound_ports: String,
    /// Init: source subnets not redirected.
    pub skip_subnets: String,
    /// Init: `--timeout-close-wait-secs` (0: unset).
    pub close_wait_timeout_secs: u64,
    /// Debug sidecar image, when enabled.
    pub debug: Option<(String, String)>,
}

/// Whether `p` names one of the proxy's default inbound policies.
pub(crate) fn is_inbound_policy(p: &str) -> bool {
    matches!(
        p,
        "all-unauthenticated"
            | "all-authenticated"
            | "cluster-unauthenticated"
            | "cluster-authenticated"
            | "deny"
            | "audit"
    )
}

/// Linkerd's pod inbound ports: every container port and every integer
/// HTTP probe port of init and app containers, deduplicated and sorted as
/// strings (Linkerd sorts them lexically).
pub fn pod_inbound_ports(spec: &PodSpec) -> String {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let mut ports = std::collections::BTreeSet::new();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        for p in c.ports.iter().flatten() {
            ports.insert(p.container_port.to_string());
        }
        for probe in [&c.readiness_probe, &c.liveness_probe]
            .into_iter()
            .flatten()
        {
            if let Some(get) = &probe.http_get {
                if let IntOrString::Int(port) = get.port {
                    ports.insert(port.to_string());
                }
            }
        }
    }
    ports.into_iter().collect::<Vec<_>>().join(",")
}

/// Named container ports of the pod (for `opaque-ports: mysql`).
pub(crate) fn named_ports(spec: &PodSpec) -> BTreeMap<String, i32> {
    let mut out = BTreeMap::new();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        for p in c.ports.iter().flatten() {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.insert(name.to_string(), p.container_port);
            }
        }
    }
    out
}

fn merge_env(dst: &mut Vec<EnvVar>, src: Vec<EnvVar>) {
    for e in src {
        match dst.iter_mut().find(|d| d.name == e.name) {
            Some(slot) => *slot = e,
            None => dst.push(e),
        }
    }
}

const NOT_A_BOOLEAN: &str = "not a boolean";
const NOT_A_DURATION: &str = "not a duration";
const NOT_A_QUANTITY: &str = "not a quantity";
const ENABLED_OR_DISABLED: &str = "valid values are enabled, disabled";

/// `enabled` / `disabled`.
fn enabled(x: &str) -> Option<bool> {
    match x {
        "enabled" => Some(true),
        "disabled" => Some(false),
        _ => None,
    }
}

/// Reads annotation values, keeping a warning for each one ignored.
struct Reader<'a> {
    annotations: &'a BTreeMap<String, String>,
    warnings: Vec<String>,
}

impl<'a> Reader<'a> {
    /// The value of annotation `key` as `parse` reads it; a value it
    /// refuses is ignored with the warning `why`.
    fn parsed<T>(
        &mut self,
        key: &str,
        why: &str,
        parse: impl FnOnce(&'a str) -> Option<T>,
    ) -> Option<T> {
        let x = self.annotations.get(key)?.as_str();
        let parsed = parse(x);
        if parsed.is_none() {
            self.warn(key, x, why);
        }
        parsed
    }

    /// Notes that `key=value` was ignored, and why.
    fn warn(&mut self, key: &str, value: &str, why: &str) {
        self.warnings
            .push(format!("ignored {key}={value:?}: {why}"));
    }
}

/// Resolves the values for one pod: `config` defaults, then `annotations`
/// (the pod's own, plus those it inherited or the injector added), then
/// `proxy-additional-env` merged from `ns_annotations` and
/// `pod_annotations`. Returns warnings for ignored values.
pub fn resolve(
    config: &InjectConfig,
    version: &str,
    annotations: &BTreeMap<String, String>,
    ns_annotations: &BTreeMap<String, String>,
    pod_annotations: &BTreeMap<String, String>,
    spec: &PodSpec,
) -> (Values, Vec<String>) {
    let p = &config.proxy;
    let pi = &config.proxy_init;
    let or_version = |v: &str| {
        if v.is_empty() {
            version.to_string()
        } else {
            v.to_string()
        }
    };
    let mut v = Values {
        proxy_image: p.image.name.clone(),
        proxy_version: or_version(&p.image.version),
        pull_policy: p.image.pull_policy.clone(),
        init_image: pi.image.name.clone(),
        init_version: or_version(&pi.image.version),
        init_pull_policy: pi.image.pull_policy.clone(),
        admin_port: p.ports.admin,
        control_port: p.ports.control,
        inbound_port: p.ports.inbound,
        outbound_port: p.ports.outbound,
        uid: p.uid,
        gid: p.gid,
        log_level: p.log_level.clone(),
        log_format: p.log_format.clone(),
        log_http_headers: p.log_http_headers.clone(),
        resources: p.resources.clone(),
        cores_min: 1,
        cores_max: 0,
        cores_max_ratio: None,
        opaque_ports: p.opaque_ports.clone(),
        pod_inbound_ports: pod_inbound_ports(spec),
        inbound_connect_timeout: p.inbound_connect_timeout.clone(),
        outbound_connect_timeout: p.outbound_connect_timeout.clone(),
        inbound_discovery_timeout: p.inbound_discovery_cache_unused_timeout.clone(),
        outbound_discovery_timeout: p.outbound_discovery_cache_unused_timeout.clone(),
        disable_inbound_detect_timeout: false,
        disable_outbound_detect_timeout: false,
        default_inbound_policy: p.default_inbound_policy.clone(),
        require_identity_inbound_ports: String::new(),
        r#await: p.r#await,
        native_sidecar: p.native_sidecar,
        enable_shutdown_endpoint: p.enable_shutdown_endpoint,
        shutdown_grace_period: p.shutdown_grace_period.clone(),
        access_log: p.access_log.clone(),
        enable_external_profiles: false,
        hostname_labels: false,
        is_gateway: false,
        is_ingress: false,
        wait_before_exit_seconds: 0,
        additional_env: p.additional_env.clone(),
        ignore_inbound_ports: pi.ignore_inbound_ports.clone(),
        ignore_outbound_ports: pi.ignore_outbound_ports.clone(),
        skip_subnets: pi.skip_subnets.clone(),
        close_wait_timeout_secs: pi.close_wait_timeout_secs,
        debug: None,
    };
    let mut r = Reader {
        annotations,
        warnings: Vec::new(),
    };
    let get = |key: &str| annotations.get(key).map(String::as_str);

    if get(names::ANN_INJECT) == Some("ingress") {
        v.is_ingress = true;
    }
    if let Some(x) = get(ann::PROXY_IMAGE) {
        v.proxy_image = x.to_string();
    }
    if let Some(x) = get(ann::PROXY_VERSION) {
        v.proxy_version = x.to_string();
    }
    if let Some(x) = get(ann::IMAGE_PULL_POLICY) {
        v.pull_policy = x.to_string();
    }
    for (key, slot) in [
        (ann::CONTROL_PORT, &mut v.control_port),
        (ann::INBOUND_PORT, &mut v.inbound_port),
        (ann::ADMIN_PORT, &mut v.admin_port),
        (ann::OUTBOUND_PORT, &mut v.outbound_port),
    ] {
        if let Some(port) = r.parsed(key, "not a port number", |x| x.parse().ok()) {
            *slot = port;
        }
    }
    if let Some(x) = get(ann::POD_INBOUND_PORTS) {
        v.pod_inbound_ports = x.to_string();
    }
    if let Some(on) = r.parsed(ann::ADMIN_SHUTDOWN, ENABLED_OR_DISABLED, enabled) {
        v.enable_shutdown_endpoint = on;
    }
    if let Some(x) = get(ann::LOG_LEVEL) {
        v.log_level = x.to_string();
    }
    let headers = r.parsed(
        ann::LOG_HTTP_HEADERS,
        "valid values are off, insecure",
        |x| matches!(x, "off" | "insecure" | "").then_some(x),
    );
    if let Some(x) = headers {
        v.log_http_headers = x.to_string();
    }
    if let Some(x) = get(ann::LOG_FORMAT) {
        v.log_format = x.to_string();
    }
    if let Some(x) = get(ann::REQUIRE_IDENTITY_INBOUND_PORTS) {
        v.require_identity_inbound_ports = x.to_string();
    }
    for (key, slot) in [
        (ann::METRICS_HOSTNAME_LABELS, &mut v.hostname_labels),
        (
            ann::DISABLE_OUTBOUND_PROTOCOL_DETECT_TIMEOUT,
            &mut v.disable_outbound_detect_timeout,
        ),
        (
            ann::DISABLE_INBOUND_PROTOCOL_DETECT_TIMEOUT,
            &mut v.disable_inbound_detect_timeout,
        ),
        (ann::ENABLE_GATEWAY, &mut v.is_gateway),
        (
            ann::ENABLE_EXTERNAL_PROFILES,
            &mut v.enable_external_profiles,
        ),
    ] {
        if let Some(b) = r.parsed(key, NOT_A_BOOLEAN, parse::go_bool) {
            *slot = b;
        }
    }
    // Connect timeouts are rewritten in whole milliseconds, discovery
    // timeouts in whole seconds, as Linkerd does.
    for (key, slot, millis) in [
        (
            ann::OUTBOUND_CONNECT_TIMEOUT,
            &mut v.outbound_connect_timeout,
            true,
        ),
        (
            ann::INBOUND_CONNECT_TIMEOUT,
            &mut v.inbound_connect_timeout,
            true,
        ),
        (
            ann::OUTBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT,
            &mut v.outbound_discovery_timeout,
            false,
        ),
        (
            ann::INBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT,
            &mut v.inbound_discovery_timeout,
            false,
        ),
        (
            ann::SHUTDOWN_GRACE_PERIOD,
            &mut v.shutdown_grace_period,
            true,
        ),
    ] {
        match r.parsed(key, NOT_A_DURATION, parse::go_duration_nanos) {
            Some(n) if millis => *slot = format!("{}ms", n / 1_000_000),
            Some(n) => *slot = format!("{}s", n / 1_000_000_000),
            None => {}
        }
    }
    let wait = r.parsed(
        ann::WAIT_BEFORE_EXIT_SECONDS,
        "not an unsigned integer",
        |x| x.parse().ok(),
    );
    if let Some(n) = wait {
        v.wait_before_exit_seconds = n;
    }
    let native = [
        ann::NATIVE_SIDECAR,
        ann::NATIVE_SIDECAR_BETA,
        ann::NATIVE_SIDECAR_ALPHA,
    ]
    .into_iter()
    .find(|k| get(k).is_some());
    if let Some(b) = native.and_then(|key| r.parsed(key, NOT_A_BOOLEAN, parse::go_bool)) {
        v.native_sidecar = b;
    }
    for (key, request) in [(ann::CPU_REQUEST, true), (ann::CPU_LIMIT, false)] {
        let quantity = r.parsed(key, NOT_A_QUANTITY, |x| parse::quantity(x).map(|q| (x, q)));
        if let Some((x, q)) = quantity {
            if request {
                v.resources.cpu.request = x.to_string();
                v.cores_min = parse::whole_cores(q);
            } else {
                v.resources.cpu.limit = x.to_string();
                v.cores_max = parse::whole_cores(q);
            }
        }
    }
    let ratio = r.parsed(
        ann::CPU_RATIO_LIMIT,
        "must be a number between 0.0 and 1.0",
        |x| x.parse::<f64>().ok().filter(|r| *r > 0.0 && *r < 1.0),
    );
    if ratio.is_some() {
        v.cores_max_ratio = ratio;
    }
    type Field = fn(&mut ResourcesConfig) -> &mut RequestLimit;
    let quantities: [(&str, Field, bool); 4] = [
        (ann::MEMORY_REQUEST, |r| &mut r.memory, true),
        (ann::MEMORY_LIMIT, |r| &mut r.memory, false),
        (
            ann::EPHEMERAL_STORAGE_REQUEST,
            |r| &mut r.ephemeral_storage,
            true,
        ),
        (
            ann::EPHEMERAL_STORAGE_LIMIT,
            |r| &mut r.ephemeral_storage,
            false,
        ),
    ];
    for (key, field, request) in quantities {
        if let Some(x) = r.parsed(key, NOT_A_QUANTITY, |x| parse::quantity(x).map(|_| x)) {
            let rl = field(&mut v.resources);
            if request {
                rl.request = x.to_string();
            } else {
                rl.limit = x.to_string();
            }
        }
    }
    for (key, slot) in [(ann::PROXY_UID, &mut v.uid), (ann::PROXY_GID, &mut v.gid)] {
        if let Some(n) = r.parsed(key, "not an integer", |x| x.parse().ok()) {
            *slot = n;
        }
    }
    if let Some(x) = get(ann::SKIP_INBOUND_PORTS) {
        v.ignore_inbound_ports = x.to_string();
    }
    if let Some(x) = get(ann::SKIP_OUTBOUND_PORTS) {
        v.ignore_outbound_ports = x.to_string();
    }
    if let Some(x) = get(ann::OPAQUE_PORTS) {
        let (ports, bad) = parse::opaque_ports(x, &named_ports(spec));
        for b in bad {
            r.warn(
                ann::OPAQUE_PORTS,
                &b,
                "not a port, range or container port name",
            );
        }
        v.opaque_ports = ports;
    }
    if let Some(on) = r.parsed(ann::PROXY_AWAIT, ENABLED_OR_DISABLED, enabled) {
        v.r#await = on;
    }
    let policy = r.parsed(ann::DEFAULT_INBOUND_POLICY, "unknown policy", |x| {
        is_inbound_policy(x).then_some(x)
    });
    if let Some(x) = policy {
        v.default_inbound_policy = x.to_string();
    }
    if let Some(x) = get(ann::SKIP_SUBNETS) {
        v.skip_subnets = x.to_string();
    }
    if let Some(x) = get(ann::ACCESS_LOG) {
        v.access_log = x.to_string();
    }
    let close_wait = r.parsed(ann::CLOSE_WAIT_TIMEOUT, NOT_A_DURATION, |x| {
        parse::go_duration_nanos(x).filter(|n| *n >= 0)
    });
    if let Some(n) = close_wait {
        v.close_wait_timeout_secs = (n / 1_000_000_000) as u64;
    }
    let debug = get(ann::ENABLE_DEBUG_SIDECAR).is_some_and(|x| !x.is_empty())
        && r.parsed(ann::ENABLE_DEBUG_SIDECAR, NOT_A_BOOLEAN, parse::go_bool) == Some(true);
    if debug {
        let d = &config.debug_container.image;
        let image = get(ann::DEBUG_IMAGE).unwrap_or(&d.name).to_string();
        let tag = get(ann::DEBUG_IMAGE_VERSION)
            .map(str::to_string)
            .unwrap_or_else(|| or_version(&d.version));
        let pull_policy = get(ann::DEBUG_IMAGE_PULL_POLICY)
            .unwrap_or(&d.pull_policy)
            .to_string();
        v.debug = Some((format!("{image}:{tag}"), pull_policy));
    }
    for source in [ns_annotations, pod_annotations] {
        if let Some(x) = source.get(ann::ADDITIONAL_ENV).filter(|x| !x.is_empty()) {
            match serde_json::from_str::<Vec<EnvVar>>(x) {
                Ok(env) => merge_env(&mut v.additional_env, env),
                Err(e) => r.warn(
                    ann::ADDITIONAL_ENV,
                    x,
                    &format!("invalid JSON list of EnvVar: {e}"),
                ),
            }
        }
    }
    (v, r.warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unparsable_values_are_ignored_with_a_warning() {
        let config = InjectConfig::default();
        let bad: BTreeMap<String, String> = [
            (ann::ADMIN_PORT, "http"),
            (ann::ADMIN_SHUTDOWN, "yes"),
            (ann::ENABLE_GATEWAY, "maybe"),
            (ann::OUTBOUND_CONNECT_TIMEOUT, "soon"),
            (ann::CPU_RATIO_LIMIT, "2"),
            (ann::MEMORY_LIMIT, "lots"),
            (ann::PROXY_UID, "root"),
            (ann::LOG_LEVEL, "debug"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let none = BTreeMap::new();
        let spec = PodSpec::default();
        let (defaults, clean) = resolve(&config, "v1", &none, &none, &none, &spec);
        assert!(clean.is_empty(), "{clean:?}");
        let (v, warnings) = resolve(&config, "v1", &bad, &none, &none, &spec);
        // Every unparsable value kept the default; the valid one applied.
        assert_eq!(v.admin_port, defaults.admin_port);
        assert_eq!(
            v.enable_shutdown_endpoint,
            defaults.enable_shutdown_endpoint
        );
        assert_eq!(v.is_gateway, defaults.is_gateway);
        assert_eq!(
            v.outbound_connect_timeout,
            defaults.outbound_connect_timeout
        );
        assert_eq!(v.cores_max_ratio, None);
        assert_eq!(v.resources, defaults.resources);
        assert_eq!(v.uid, defaults.uid);
        assert_eq!(v.log_level, "debug");
        let expected = [
            format!("ignored {}=\"http\": not a port number", ann::ADMIN_PORT),
            format!(
                "ignored {}=\"yes\": {ENABLED_OR_DISABLED}",
                ann::ADMIN_SHUTDOWN
            ),
            format!("ignored {}=\"maybe\": not a boolean", ann::ENABLE_GATEWAY),
            format!(
                "ignored {}=\"soon\": not a duration",
                ann::OUTBOUND_CONNECT_TIMEOUT
            ),
            format!(
                "ignored {}=\"2\": must be a number between 0.0 and 1.0",
                ann::CPU_RATIO_LIMIT
            ),
            format!("ignored {}=\"lots\": not a quantity", ann::MEMORY_LIMIT),
            format!("ignored {}=\"root\": not an integer", ann::PROXY_UID),
        ];
        assert_eq!(warnings, expected);
    }
}
