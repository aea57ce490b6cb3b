//! `inject.yaml`: the proxy defaults the injector and `wisp inject --config`
//! start from before a pod's `config.linkerd.io/*` annotations apply. Every
//! key is optional; the defaults are Linkerd's Helm values (with wisp's
//! images), as docs/kubernetes.md §4 lists them.

use std::path::Path;

use k8s_openapi::api::core::v1::EnvVar;
use serde::{Deserialize, Serialize};

/// The whole `inject.yaml` document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InjectConfig {
    /// Namespace of the control plane (Services, identities).
    pub control_plane_namespace: String,
    /// The cluster's DNS domain.
    pub cluster_domain: String,
    /// Trust domain of identities; empty means the cluster domain.
    pub identity_trust_domain: String,
    /// PEM trust anchors written inline into every proxy; empty means the
    /// caller supplies them (the controller reads ConfigMap
    /// `linkerd-identity-trust-roots`).
    #[serde(rename = "identityTrustAnchorsPEM")]
    pub identity_trust_anchors_pem: String,
    /// Comma-separated CIDRs of the cluster's pods and Services.
    pub cluster_networks: String,
    /// When true (Linkerd's default) the proxy listens on IPv4 only and the
    /// init container gets `--ipv6=false`.
    #[serde(rename = "disableIPv6")]
    pub disable_ipv6: bool,
    /// The proxy container.
    pub proxy: ProxyConfig,
    /// The iptables init container.
    pub proxy_init: ProxyInitConfig,
    /// How proxies authenticate to Identity.
    pub identity: IdentityConfig,
    /// The optional `linkerd-debug` sidecar.
    pub debug_container: DebugContainerConfig,
}

/// An image reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ImageConfig {
    /// Repository.
    pub name: String,
    /// Tag; empty means wisp's own version.
    pub version: String,
    /// `imagePullPolicy`.
    pub pull_policy: String,
}

/// The four proxy ports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortsConfig {
    /// Admin (metrics, probes).
    pub admin: u16,
    /// Control (tap).
    pub control: u16,
    /// Inbound.
    pub inbound: u16,
    /// Outbound.
    pub outbound: u16,
}

/// A request/limit pair (Kubernetes quantities; empty = unset).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestLimit {
    /// Request.
    pub request: String,
    /// Limit.
    pub limit: String,
}

/// Proxy container resources.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesConfig {
    /// CPU.
    pub cpu: RequestLimit,
    /// Memory.
    pub memory: RequestLimit,
    /// Ephemeral storage.
    #[serde(rename = "ephemeral-storage")]
    pub ephemeral_storage: RequestLimit,
}

/// The proxy container's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyConfig {
    /// Image.
    pub image: ImageConfig,
    /// `runAsUser`, and the uid iptables exempts.
    pub uid: i64,
    /// `runAsGroup` when ≥ 0.
    pub gid: i64,
    /// Listen ports.
    pub ports: PortsConfig,
    /// `LINKERD2_PROXY_LOG`.
    pub log_level: String,
    /// `LINKERD2_PROXY_LOG_FORMAT`.
    pub log_format: String,
    /// `off` or `insecure`.
    #[serde(rename = "logHTTPHeaders")]
    pub log_http_headers: String,
    /// Container resources.
    pub resources: ResourcesConfig,
    /// Default opaque ports.
    pub opaque_ports: String,
    /// `LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT`.
    pub inbound_connect_timeout: String,
    /// `LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT`.
    pub outbound_connect_timeout: String,
    /// `LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT`.
    pub inbound_discovery_cache_unused_timeout: String,
    /// `LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT`.
    pub outbound_discovery_cache_unused_timeout: String,
    /// `LINKERD2_PROXY_INBOUND_DEFAULT_POLICY`.
    pub default_inbound_policy: String,
    /// App containers start after the proxy is ready.
    pub r#await: bool,
    /// Inject the proxy as a native sidecar (init container with
    /// `restartPolicy: Always`).
    pub native_sidecar: bool,
    /// `LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED`.
    pub enable_shutdown_endpoint: bool,
    /// `LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD` (empty = unset).
    pub shutdown_grace_period: String,
    /// `LINKERD2_PROXY_ACCESS_LOG` (empty = off).
    pub access_log: String,
    /// Extra env appended to the proxy's.
    pub additional_env: Vec<EnvVar>,
}

/// The init container's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyInitConfig {
    /// Image (holds `/usr/local/bin/wisp-init`).
    pub image: ImageConfig,
    /// Inbound ports never redirected (besides control and admin).
    pub ignore_inbound_ports: String,
    /// Outbound ports never redirected.
    pub ignore_outbound_ports: String,
    /// Source subnets never redirected.
    pub skip_subnets: String,
    /// `legacy` or `nft`.
    pub iptables_mode: String,
    /// Run as uid 0 (needed for `close-wait-timeout`).
    pub run_as_root: bool,
    /// Uid when not root (0 means 65534).
    pub run_as_user: i64,
    /// Gid when not root (0 means 65534).
    pub run_as_group: i64,
    /// `--timeout-close-wait-secs` (0 = unset).
    pub close_wait_timeout_secs: u64,
}

/// Identity settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IdentityConfig {
    /// Mount a projected token (audience `identity.l5d.io`) instead of the
    /// default ServiceAccount token.
    pub service_account_token_projection: bool,
}

/// The debug sidecar (`config.linkerd.io/enable-debug-sidecar`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DebugContainerConfig {
    /// Image.
    pub image: ImageConfig,
}

impl Default for InjectConfig {
    fn default() -> Self {
        Self {
            control_plane_namespace: "linkerd".into(),
            cluster_domain: "cluster.local".into(),
            identity_trust_domain: String::new(),
            identity_trust_anchors_pem: String::new(),
            cluster_networks: "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8"
                .into(),
            disable_ipv6: true,
            proxy: ProxyConfig::default(),
            proxy_init: ProxyInitConfig::default(),
            identity: IdentityConfig::default(),
            debug_container: DebugContainerConfig::default(),
        }
    }
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            name: "ghcr.io/wisp-mesh/proxy".into(),
            version: String::new(),
            pull_policy: "IfNotPresent".into(),
        }
    }
}

impl Default for PortsConfig {
    fn default() -> Self {
        Self {
            admin: 4191,
            control: 4190,
            inbound: 4143,
            outbound: 4140,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            image: ImageConfig::default(),
            uid: 2102,
            gid: -1,
            ports: PortsConfig::default(),
            log_level: "warn,linkerd=info".into(),
            log_format: "plain".into(),
            log_http_headers: "off".into(),
            resources: ResourcesConfig::default(),
            opaque_ports: "25,587,3306,4444,5432,6379,9300,11211".into(),
            inbound_connect_timeout: "100ms".into(),
            outbound_connect_timeout: "1000ms".into(),
            inbound_discovery_cache_unused_timeout: "90s".into(),
            outbound_discovery_cache_unused_timeout: "5s".into(),
            default_inbound_policy: "all-unauthenticated".into(),
            r#await: true,
            native_sidecar: true,
            enable_shutdown_endpoint: false,
            shutdown_grace_period: String::new(),
            access_log: String::new(),
            additional_env: Vec::new(),
        }
    }
}

impl Default for ProxyInitConfig {
    fn default() -> Self {
        Self {
            image: ImageConfig {
                name: "ghcr.io/wisp-mesh/init".into(),
                ..ImageConfig::default()
            },
            ignore_inbound_ports: "4567,4568".into(),
            ignore_outbound_ports: "4567,4568".into(),
            skip_subnets: String::new(),
            iptables_mode: "legacy".into(),
            run_as_root: false,
            run_as_user: 65534,
            run_as_group: 65534,
            close_wait_timeout_secs: 0,
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            service_account_token_projection: true,
        }
    }
}

impl Default for DebugContainerConfig {
    fn default() -> Self {
        Self {
            image: ImageConfig {
                name: "cr.l5d.io/linkerd/debug".into(),
                ..ImageConfig::default()
            },
        }
    }
}

/// Why an `inject.yaml` was refused (the file's author's fault).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML of the expected shape.
    #[error("{path} is not a valid inject.yaml")]
    Parse {
        /// The file.
        path: String,
        /// The YAML error.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A value out of its domain.
    #[error("inject.yaml: {0}")]
    Invalid(String),
}

impl InjectConfig {
    /// Parses `inject.yaml` text (`origin` names it in errors) and validates it.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: InjectConfig = if text.trim().is_empty() {
            InjectConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Parse {
                path: origin.to_string(),
                source,
            })?
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates an `inject.yaml` file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// The trust domain (the cluster domain when unset).
    pub fn trust_domain(&self) -> &str {
        if self.identity_trust_domain.is_empty() {
            &self.cluster_domain
        } else {
            &self.identity_trust_domain
        }
    }

    /// Checks what Linkerd's templates would refuse to render.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for network in self
            .cluster_networks
            .trim_matches(',')
            .split(',')
            .filter(|n| !n.is_empty())
        {
            if !crate::parse::is_cidr(network.trim()) {
                return Err(ConfigError::Invalid(format!(
                    "clusterNetworks: {network:?} is not a CIDR"
                )));
            }
        }
        if !matches!(
            self.proxy_init.iptables_mode.as_str(),
            "legacy" | "nft" | ""
        ) {
            return Err(ConfigError::Invalid(format!(
                "proxyInit.iptablesMode: unsupported value {:?} (legacy or nft)",
                self.proxy_init.iptables_mode
            )));
        }
        if !matches!(
            self.proxy.log_http_headers.as_str(),
            "insecure" | "off" | ""
        ) {
            return Err(ConfigError::Invalid(format!(
                "proxy.logHTTPHeaders must be insecure or off, not {:?}",
                self.proxy.log_http_headers
            )));
        }
        if !crate::overrides::is_inbound_policy(&self.proxy.default_inbound_policy) {
            return Err(ConfigError::Invalid(format!(
                "proxy.defaultInboundPolicy: unknown policy {:?}",
                self.proxy.default_inbound_policy
            )));
        }
        if self.control_plane_namespace.is_empty() || self.cluster_domain.is_empty() {
            return Err(ConfigError::Invalid(
                "controlPlaneNamespace and clusterDomain must not be empty".into(),
            ));
        }
        Ok(())
    }
}
