//! `wisp controller`: the whole control plane on Kubernetes in one process
//! (Destination + policy APIs, Identity, the proxy-injector webhook and an
//! admin server); see [`crate::controller`] and `docs/kubernetes.md` §2.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use wisp_common::duration::parse_positive_flag_duration;
use wisp_destination::policy::{self, DefaultPolicy};

use crate::destination_cmd::{parse_default_policy, parse_networks, Networks};

use crate::controller::{self, Roles, Settings};

/// Arguments of `wisp controller`.
#[derive(clap::Args)]
pub struct Args {
    /// Where the destination's resources come from: `kube` (in-cluster
    /// config, else the kubeconfig as kubectl finds it) or `dir:PATH`.
    /// Identity and the injector always use the Kubernetes API.
    #[arg(long, default_value = "kube")]
    source: String,
    /// Namespace of the control plane (holds the issuer Secret and the
    /// trust-roots ConfigMap).
    #[arg(long, env = "WISP_CONTROL_PLANE_NS", default_value = "linkerd")]
    control_plane_ns: String,
    /// Cluster DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Identity trust domain (defaults to the cluster domain).
    #[arg(long)]
    trust_domain: Option<String>,
    /// Cluster networks (comma-separated CIDRs) for the `cluster-*` inbound
    /// policies and the outbound egress fallback.
    #[arg(long, default_value = policy::DEFAULT_CLUSTER_NETWORKS, value_parser = parse_networks)]
    cluster_networks: Networks,
    /// Default inbound policy of pods without the
    /// `config.linkerd.io/default-inbound-policy` annotation.
    #[arg(long, default_value = "all-unauthenticated", value_parser = parse_default_policy)]
    default_inbound_policy: DefaultPolicy,
    /// Destination + policy APIs (mesh TLS and plaintext on one port).
    #[arg(long, default_value = "0.0.0.0:8086")]
    destination_addr: SocketAddr,
    /// Identity.Certify (mesh TLS and plaintext on one port).
    #[arg(long, default_value = "0.0.0.0:8080")]
    identity_addr: SocketAddr,
    /// The proxy-injector webhook (HTTPS).
    #[arg(long, default_value = "0.0.0.0:8443")]
    injector_addr: SocketAddr,
    /// Admin server: GET /ready, /live, /metrics.
    #[arg(long, default_value = "0.0.0.0:9990")]
    admin_addr: SocketAddr,
    /// Do not serve the Destination and policy APIs.
    #[arg(long)]
    disable_destination: bool,
    /// Do not serve Identity.Certify.
    #[arg(long)]
    disable_identity: bool,
    /// Do not serve the proxy-injector webhook.
    #[arg(long)]
    disable_injector: bool,
    /// Secret (in the control-plane namespace) holding the issuer
    /// certificate and key (`tls.crt`/`tls.key` or `crt.pem`/`key.pem`).
    #[arg(long, default_value = wisp_identity::k8s::ISSUER_SECRET)]
    issuer_secret: String,
    /// ConfigMap (in the control-plane namespace) holding the trust anchors
    /// under `ca-bundle.crt`.
    #[arg(long, default_value = wisp_identity::k8s::TRUST_ROOTS_CONFIGMAP)]
    trust_roots_configmap: String,
    /// Lifetime of issued certificates.
    #[arg(long, default_value = "24h", value_parser = parse_positive_flag_duration)]
    identity_issuance_lifetime: Duration,
    /// Clock-skew allowance added on both ends of their validity.
    #[arg(long, default_value = "20s", value_parser = parse_positive_flag_duration)]
    identity_clock_skew_allowance: Duration,
    /// The injector's serving certificate directory (tls.crt, tls.key;
    /// re-read on change).
    #[arg(long, default_value = "/var/run/wisp/injector/tls")]
    injector_tls_dir: PathBuf,
    /// The injector's proxy defaults (inject.yaml).
    #[arg(long, default_value = "/var/run/wisp/config/inject.yaml")]
    injector_config: PathBuf,
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let roles = Roles {
        destination: !args.disable_destination,
        identity: !args.disable_identity,
        injector: !args.disable_injector,
    };
    if !roles.any() {
        anyhow::bail!("every role is disabled: nothing to run");
    }
    // The source is parsed only when the destination runs, so a build of
    // the destination without a source scheme does not stop the others.
    let source = if roles.destination {
        Some(
            args.source
                .parse::<wisp_destination::SourceSpec>()
                .map_err(|e| anyhow::anyhow!("--source: {e}"))?,
        )
    } else {
        None
    };
    let settings = Settings {
        roles,
        source,
        control_plane_ns: args.control_plane_ns,
        trust_domain: args
            .trust_domain
            .unwrap_or_else(|| args.cluster_domain.clone()),
        cluster_domain: args.cluster_domain,
        cluster_networks: args.cluster_networks.0,
        default_inbound_policy: args.default_inbound_policy,
        destination_addr: args.destination_addr,
        identity_addr: args.identity_addr,
        injector_addr: args.injector_addr,
        admin_addr: Some(args.admin_addr),
        issuer_secret: args.issuer_secret,
        trust_roots_configmap: args.trust_roots_configmap,
        validity: wisp_identity::Validity {
            lifetime: args.identity_issuance_lifetime,
            skew: args.identity_clock_skew_allowance,
        },
        injector_tls_dir: args.injector_tls_dir,
        injector_config: args.injector_config,
    };
    block_on(settings)
}

/// Runs `settings` on a multi-threaded runtime until SIGTERM or Ctrl-C.
pub(crate) fn block_on(settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        let stop = crate::signal::shutdown_signal()?;
        controller::run(settings, stop).await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
