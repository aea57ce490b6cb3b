//! The names Linkerd's tooling knows injected pods by: containers, volumes,
//! labels and annotations. wisp keeps them so `linkerd` commands, dashboards
//! and users' scripts keep working on wisp-injected pods.

/// The proxy container.
pub const PROXY_CONTAINER: &str = "linkerd-proxy";
/// The iptables init container.
pub const INIT_CONTAINER: &str = "linkerd-init";
/// The optional debug sidecar.
pub const DEBUG_CONTAINER: &str = "linkerd-debug";
/// The xtables lock volume the init container mounts at `/run`.
pub const VOLUME_XTABLES: &str = "linkerd-proxy-init-xtables-lock";
/// The in-memory volume holding the proxy's key and CSR.
pub const VOLUME_END_ENTITY: &str = "linkerd-identity-end-entity";
/// The projected ServiceAccount token sent to Identity.Certify.
pub const VOLUME_TOKEN: &str = "linkerd-identity-token";
/// Where the proxy mounts [`VOLUME_END_ENTITY`].
pub const MOUNT_END_ENTITY: &str = "/var/run/linkerd/identity/end-entity";
/// Where the proxy mounts [`VOLUME_TOKEN`].
pub const MOUNT_TOKENS: &str = "/var/run/secrets/tokens";
/// Where Kubernetes mounts the default ServiceAccount token.
pub const MOUNT_SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The audience of the projected token.
pub const TOKEN_AUDIENCE: &str = "identity.l5d.io";
/// Lifetime of the projected token (24 h).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 86400;

/// The prefix uninject strips from labels and annotations.
pub const LINKERD_PREFIX: &str = "linkerd.io/";
/// `linkerd.io/inject`: `enabled`, `ingress` or `disabled`.
pub const ANN_INJECT: &str = "linkerd.io/inject";
/// `linkerd.io/created-by`.
pub const ANN_CREATED_BY: &str = "linkerd.io/created-by";
/// `linkerd.io/proxy-version`.
pub const ANN_PROXY_VERSION: &str = "linkerd.io/proxy-version";
/// `linkerd.io/trust-root-sha256`.
pub const ANN_TRUST_ROOT_SHA: &str = "linkerd.io/trust-root-sha256";
/// Label marking a meshed pod with the control-plane namespace.
pub const LABEL_CONTROL_PLANE_NS: &str = "linkerd.io/control-plane-ns";
/// Label carrying the pod's namespace.
pub const LABEL_WORKLOAD_NS: &str = "linkerd.io/workload-ns";
/// Label on control-plane pods (never injected by the webhook).
pub const LABEL_CONTROL_PLANE_COMPONENT: &str = "linkerd.io/control-plane-component";
/// Istio's namespace label: `enabled` turns injection on.
pub const LABEL_ISTIO_INJECTION: &str = "istio-injection";
/// Istio's per-pod switch (label or annotation): `"false"` keeps a pod out.
pub const ISTIO_SIDECAR_INJECT: &str = "sidecar.istio.io/inject";

/// `config.linkerd.io/` annotation keys.
pub mod config {
    /// Proxy image name.
    pub const PROXY_IMAGE: &str = "config.linkerd.io/proxy-image";
    /// Proxy image tag.
    pub const PROXY_VERSION: &str = "config.linkerd.io/proxy-version";
    /// Image pull policy.
    pub const IMAGE_PULL_POLICY: &str = "config.linkerd.io/image-pull-policy";
    /// Debug sidecar image.
    pub const DEBUG_IMAGE: &str = "config.linkerd.io/debug-image";
    /// Debug sidecar image tag.
    pub const DEBUG_IMAGE_VERSION: &str = "config.linkerd.io/debug-image-version";
    /// Debug sidecar pull policy.
    pub const DEBUG_IMAGE_PULL_POLICY: &str = "config.linkerd.io/debug-image-pull-policy";
    /// Proxy control (tap) port.
    pub const CONTROL_PORT: &str = "config.linkerd.io/control-port";
    /// Inbound ports not redirected to the proxy.
    pub const SKIP_INBOUND_PORTS: &str = "config.linkerd.io/skip-inbound-ports";
    /// Opaque ports.
    pub const OPAQUE_PORTS: &str = "config.linkerd.io/opaque-ports";
    /// Outbound ports not redirected to the proxy.
    pub const SKIP_OUTBOUND_PORTS: &str = "config.linkerd.io/skip-outbound-ports";
    /// Source subnets not redirected to the proxy.
    pub const SKIP_SUBNETS: &str = "config.linkerd.io/skip-subnets";
    /// Proxy inbound port.
    pub const INBOUND_PORT: &str = "config.linkerd.io/inbound-port";
    /// Proxy admin port.
    pub const ADMIN_PORT: &str = "config.linkerd.io/admin-port";
    /// Proxy outbound port.
    pub const OUTBOUND_PORT: &str = "config.linkerd.io/outbound-port";
    /// Explicit `LINKERD2_PROXY_INBOUND_PORTS`.
    pub const POD_INBOUND_PORTS: &str = "config.linkerd.io/pod-inbound-ports";
    /// Proxy CPU request.
    pub const CPU_REQUEST: &str = "config.linkerd.io/proxy-cpu-request";
    /// Proxy memory request.
    pub const MEMORY_REQUEST: &str = "config.linkerd.io/proxy-memory-request";
    /// Proxy ephemeral-storage request.
    pub const EPHEMERAL_STORAGE_REQUEST: &str = "config.linkerd.io/proxy-ephemeral-storage-request";
    /// Proxy CPU limit.
    pub const CPU_LIMIT: &str = "config.linkerd.io/proxy-cpu-limit";
    /// Ratio of the node's CPUs the proxy may use.
    pub const CPU_RATIO_LIMIT: &str = "config.linkerd.io/proxy-cpu-ratio-limit";
    /// Proxy memory limit.
    pub const MEMORY_LIMIT: &str = "config.linkerd.io/proxy-memory-limit";
    /// Proxy ephemeral-storage limit.
    pub const EPHEMERAL_STORAGE_LIMIT: &str = "config.linkerd.io/proxy-ephemeral-storage-limit";
    /// Proxy user id.
    pub const PROXY_UID: &str = "config.linkerd.io/proxy-uid";
    /// Proxy group id.
    pub const PROXY_GID: &str = "config.linkerd.io/proxy-gid";
    /// `POST /shutdown` on the admin port.
    pub const ADMIN_SHUTDOWN: &str = "config.linkerd.io/proxy-admin-shutdown";
    /// `LINKERD2_PROXY_LOG`.
    pub const LOG_LEVEL: &str = "config.linkerd.io/proxy-log-level";
    /// HTTP header logging (`off` / `insecure`).
    pub const LOG_HTTP_HEADERS: &str = "config.linkerd.io/proxy-log-http-headers";
    /// `LINKERD2_PROXY_LOG_FORMAT`.
    pub const LOG_FORMAT: &str = "config.linkerd.io/proxy-log-format";
    /// Profiles for every name.
    pub const ENABLE_EXTERNAL_PROFILES: &str = "config.linkerd.io/enable-external-profiles";
    /// Ports requiring identity.
    pub const REQUIRE_IDENTITY_INBOUND_PORTS: &str =
        "config.linkerd.io/proxy-require-identity-inbound-ports";
    /// Hostname labels on outbound metrics.
    pub const METRICS_HOSTNAME_LABELS: &str = "config.linkerd.io/proxy-metrics-hostname-labels";
    /// Outbound connect timeout.
    pub const OUTBOUND_CONNECT_TIMEOUT: &str = "config.linkerd.io/proxy-outbound-connect-timeout";
    /// Inbound connect timeout.
    pub const INBOUND_CONNECT_TIMEOUT: &str = "config.linkerd.io/proxy-inbound-connect-timeout";
    /// Outbound discovery cache eviction.
    pub const OUTBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT: &str =
        "config.linkerd.io/proxy-outbound-discovery-cache-unused-timeout";
    /// Inbound discovery cache eviction.
    pub const INBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT: &str =
        "config.linkerd.io/proxy-inbound-discovery-cache-unused-timeout";
    /// Outbound detect timeout set to 365d.
    pub const DISABLE_OUTBOUND_PROTOCOL_DETECT_TIMEOUT: &str =
        "config.linkerd.io/proxy-disable-outbound-protocol-detect-timeout";
    /// Inbound detect timeout set to 365d.
    pub const DISABLE_INBOUND_PROTOCOL_DETECT_TIMEOUT: &str =
        "config.linkerd.io/proxy-disable-inbound-protocol-detect-timeout";
    /// Gateway mode.
    pub const ENABLE_GATEWAY: &str = "config.linkerd.io/enable-gateway";
    /// Debug sidecar.
    pub const ENABLE_DEBUG_SIDECAR: &str = "config.linkerd.io/enable-debug-sidecar";
    /// `--timeout-close-wait-secs` of the init container.
    pub const CLOSE_WAIT_TIMEOUT: &str = "config.linkerd.io/close-wait-timeout";
    /// `preStop` sleep.
    pub const WAIT_BEFORE_EXIT_SECONDS: &str =
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds";
    /// Native sidecar (legacy alpha prefix).
    pub const NATIVE_SIDECAR_ALPHA: &str = "config.alpha.linkerd.io/proxy-enable-native-sidecar";
    /// Native sidecar (legacy beta prefix).
    pub const NATIVE_SIDECAR_BETA: &str = "config.beta.linkerd.io/proxy-enable-native-sidecar";
    /// Native sidecar.
    pub const NATIVE_SIDECAR: &str = "config.linkerd.io/proxy-enable-native-sidecar";
    /// App containers wait for the proxy.
    pub const PROXY_AWAIT: &str = "config.linkerd.io/proxy-await";
    /// Default inbound policy.
    pub const DEFAULT_INBOUND_POLICY: &str = "config.linkerd.io/default-inbound-policy";
    /// Access log format.
    pub const ACCESS_LOG: &str = "config.linkerd.io/access-log";
    /// Shutdown grace period.
    pub const SHUTDOWN_GRACE_PERIOD: &str = "config.linkerd.io/shutdown-grace-period";
    /// Extra proxy env (JSON list of EnvVar).
    pub const ADDITIONAL_ENV: &str = "config.linkerd.io/proxy-additional-env";

    /// The annotations a namespace passes down to the pods that lack them
    /// (Linkerd's list, plus `linkerd.io/inject`).
    pub const INHERITED: &[&str] = &[
        ADMIN_PORT,
        CONTROL_PORT,
        ENABLE_DEBUG_SIDECAR,
        ENABLE_EXTERNAL_PROFILES,
        IMAGE_PULL_POLICY,
        INBOUND_PORT,
        OUTBOUND_PORT,
        POD_INBOUND_PORTS,
        CPU_LIMIT,
        CPU_REQUEST,
        PROXY_IMAGE,
        ADMIN_SHUTDOWN,
        LOG_FORMAT,
        LOG_LEVEL,
        LOG_HTTP_HEADERS,
        MEMORY_LIMIT,
        MEMORY_REQUEST,
        EPHEMERAL_STORAGE_LIMIT,
        EPHEMERAL_STORAGE_REQUEST,
        PROXY_UID,
        PROXY_GID,
        PROXY_VERSION,
        REQUIRE_IDENTITY_INBOUND_PORTS,
        SKIP_INBOUND_PORTS,
        OPAQUE_PORTS,
        SKIP_OUTBOUND_PORTS,
        METRICS_HOSTNAME_LABELS,
        OUTBOUND_CONNECT_TIMEOUT,
        INBOUND_CONNECT_TIMEOUT,
        PROXY_AWAIT,
        DEFAULT_INBOUND_POLICY,
        SKIP_SUBNETS,
        ACCESS_LOG,
        SHUTDOWN_GRACE_PERIOD,
        OUTBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT,
        INBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT,
        DISABLE_OUTBOUND_PROTOCOL_DETECT_TIMEOUT,
        DISABLE_INBOUND_PROTOCOL_DETECT_TIMEOUT,
        NATIVE_SIDECAR,
        ADDITIONAL_ENV,
        WAIT_BEFORE_EXIT_SECONDS,
        NATIVE_SIDECAR_ALPHA,
        super::ANN_INJECT,
    ];
}
