//! `wisp destination`: serve the Destination API from a resource index.

use std::net::SocketAddr;

use anyhow::Context;
use wisp_destination::policy::{self, Cidr, DefaultPolicy, PolicySettings};
use wisp_destination::{Config, SourceSpec};

/// Arguments of `wisp destination`.
#[derive(clap::Args)]
pub struct Args {
    /// Where resources come from: `dir:PATH` (a directory of YAML manifests),
    /// `kube` (the Kubernetes API: kubeconfig as kubectl finds it, else the
    /// in-cluster service account) or `kube:KUBECONFIG` (that kubeconfig file).
    #[arg(long, value_parser = parse_source)]
    source: SourceSpec,
    /// gRPC listen address.
    #[arg(long, default_value = wisp_destination::config::DEFAULT_ADDR)]
    addr: SocketAddr,
    /// Cluster DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Identity trust domain (defaults to the cluster domain).
    #[arg(long)]
    trust_domain: Option<String>,
    /// Namespace of the control plane whose meshed pods get identities.
    #[arg(long, default_value = "linkerd")]
    control_plane_ns: String,
    /// Identity directory (from `wisp identity init`): also serve mesh TLS
    /// as `linkerd-destination.<ns>.serviceaccount.identity.<ns>.<trust
    /// domain>`, with a certificate issued by that CA, for proxies that dial
    /// this service on a non-loopback address.
    #[arg(long)]
    identity_dir: Option<std::path::PathBuf>,
    /// Cluster networks (comma-separated CIDRs): the `cluster-*` inbound
    /// policies admit them, and outbound IPs outside them get the
    /// `egress-fallback` policy.
    #[arg(long, default_value = policy::DEFAULT_CLUSTER_NETWORKS, value_parser = parse_networks)]
    cluster_networks: Networks,
    /// Default inbound policy of pods without the
    /// `config.linkerd.io/default-inbound-policy` annotation: all-unauthenticated,
    /// all-authenticated, cluster-unauthenticated, cluster-authenticated, deny or audit.
    #[arg(long, default_value = "all-unauthenticated", value_parser = parse_default_policy)]
    default_inbound_policy: DefaultPolicy,
}

/// A parsed `--cluster-networks` list (also `wisp controller`'s).
#[derive(Clone, Debug)]
pub(crate) struct Networks(pub(crate) Vec<Cidr>);

/// Parses `--cluster-networks`: at least one CIDR.
pub(crate) fn parse_networks(s: &str) -> Result<Networks, String> {
    let nets = policy::networks::parse_list(s).map_err(|e| e.to_string())?;
    if nets.is_empty() {
        return Err("at least one network is required".into());
    }
    Ok(Networks(nets))
}

/// Parses `--default-inbound-policy`.
pub(crate) fn parse_default_policy(s: &str) -> Result<DefaultPolicy, String> {
    s.parse::<DefaultPolicy>().map_err(|e| e.to_string())
}

/// Parses `--source`.
pub(crate) fn parse_source(s: &str) -> Result<SourceSpec, String> {
    s.parse::<SourceSpec>().map_err(|e| e.to_string())
}

/// Runs the destination service until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config {
        source: args.source,
        addr: args.addr,
        trust_domain: args
            .trust_domain
            .unwrap_or_else(|| args.cluster_domain.clone()),
        cluster_domain: args.cluster_domain,
        control_plane_ns: args.control_plane_ns,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let identity_dir = args.identity_dir;
    let policy = PolicySettings {
        cluster_networks: args.cluster_networks.0,
        default_inbound_policy: args.default_inbound_policy,
        ..PolicySettings::default()
    };
    let result = runtime.block_on(async move {
        let mut server = wisp_destination::Server::bind(config.clone())
            .await
            .context("cannot start the destination service")?
            .with_policy(policy);
        let mut renew = None;
        if let Some(dir) = identity_dir {
            let ca = wisp_identity::Ca::load_dir(&dir, wisp_identity::Validity::default())
                .with_context(|| format!("cannot load the CA from {}", dir.display()))?;
            let name = wisp_identity::workload_identity(
                "linkerd-destination",
                &config.control_plane_ns,
                &config.control_plane_ns,
                &config.trust_domain,
            );
            let own = wisp_identity::OwnIdentity::issue(std::sync::Arc::new(ca), name.clone())
                .context("cannot issue the destination service's certificate")?;
            server = server.with_tls(own.server_config()?);
            renew = Some(tokio::spawn(own.renew_forever()));
            tracing::info!(identity = %name, "serving mesh TLS and plaintext");
        }
        let stop = crate::signal::shutdown_signal()?;
        let result = server.run(stop).await.context("destination service failed");
        if let Some(r) = renew {
            r.abort();
        }
        result
    });
    drop(runtime);
    result
}
