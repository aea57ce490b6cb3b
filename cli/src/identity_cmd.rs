//! `wisp identity`: create identity material (`init`), mint workload tokens
//! (`token`), or serve `Identity.Certify` (no subcommand) from an identity
//! directory (`--dir`) or, with `--source kube`, from the issuer Secret and
//! trust-roots ConfigMap with TokenReview-checked tokens (the controller's
//! identity role alone).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use wisp_common::duration::parse_positive_flag_duration;
use wisp_identity::config::{DEFAULT_ADDR, DEFAULT_CONTROL_PLANE_NS, DEFAULT_TRUST_DOMAIN};
use wisp_identity::init::{init, InitOptions};
use wisp_identity::{Config, TokenKey, Validity};

/// Arguments of `wisp identity`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// What `wisp identity` does besides serving.
#[derive(clap::Subcommand)]
enum Command {
    /// Create a trust anchor, an issuer and a token key in a directory.
    Init(InitArgs),
    /// Print a token for a service account, signed with DIR/token.key.
    Token(TokenArgs),
}

/// Arguments of `wisp identity` (serving).
#[derive(clap::Args)]
struct ServeArgs {
    /// Identity directory (ca.crt, issuer.crt, issuer.key, token.key).
    #[arg(long, conflicts_with = "source")]
    dir: Option<PathBuf>,
    /// Where the CA comes from: `kube` (the issuer Secret and trust-roots
    /// ConfigMap of the control-plane namespace, tokens checked with
    /// TokenReview) or `dir:PATH` (same as --dir).
    #[arg(long)]
    source: Option<String>,
    /// With `--source kube`: the issuer Secret.
    #[arg(long, default_value = wisp_identity::k8s::ISSUER_SECRET)]
    issuer_secret: String,
    /// With `--source kube`: the trust-roots ConfigMap.
    #[arg(long, default_value = wisp_identity::k8s::TRUST_ROOTS_CONFIGMAP)]
    trust_roots_configmap: String,
    /// With `--source kube`: also serve GET /ready, /live, /metrics here.
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
    /// Listen address; TLS and plaintext gRPC share it.
    #[arg(long, default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// Identity trust domain.
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// Namespace of the control plane.
    #[arg(long, default_value = DEFAULT_CONTROL_PLANE_NS)]
    control_plane_ns: String,
    /// Lifetime of issued certificates (e.g. 24h, 1h30m).
    #[arg(long, default_value = "24h", value_parser = parse_positive_flag_duration)]
    lifetime: Duration,
    /// Clock-skew allowance added on both ends of the validity window.
    #[arg(long, default_value = "20s", value_parser = parse_positive_flag_duration)]
    skew: Duration,
}

/// Arguments of `wisp identity init`.
#[derive(clap::Args)]
struct InitArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Identity trust domain.
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// Namespace of the control plane (names the issuer).
    #[arg(long, default_value = DEFAULT_CONTROL_PLANE_NS)]
    control_plane_ns: String,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

/// Arguments of `wisp identity token`.
#[derive(clap::Args)]
struct TokenArgs {
    /// Identity directory holding token.key.
    #[arg(long)]
    dir: PathBuf,
    /// Service account name.
    #[arg(long)]
    sa: String,
    /// Namespace of the service account.
    #[arg(long)]
    ns: String,
    /// How long the token is valid.
    #[arg(long, default_value = "8760h", value_parser = parse_positive_flag_duration)]
    ttl: Duration,
}

/// Runs `wisp identity`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(Command::Init(init_args)) => run_init(init_args),
        Some(Command::Token(token_args)) => run_token(token_args),
        None => run_serve(args.serve),
    }
}

fn run_init(args: InitArgs) -> anyhow::Result<()> {
    let written = init(&InitOptions {
        out: args.out,
        trust_domain: args.trust_domain,
        control_plane_ns: args.control_plane_ns,
        force: args.force,
    })
    .context("identity init failed")?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn run_token(args: TokenArgs) -> anyhow::Result<()> {
    let key = TokenKey::load(&args.dir.join(wisp_identity::files::TOKEN_KEY))?;
    let token = key
        .sign_for(&args.sa, &args.ns, args.ttl)
        .map_err(anyhow::Error::msg)
        .context("cannot create the token")?;
    println!("{token}");
    Ok(())
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let dir = match args.source.as_deref() {
        Some("kube") => return run_serve_kube(args),
        Some(source) => Some(PathBuf::from(source.strip_prefix("dir:").ok_or_else(
            || anyhow::anyhow!("--source {source:?}: expected kube or dir:PATH"),
        )?)),
        None => args.dir,
    };
    let dir = dir.context(
        "--dir (or --source) is required to serve (or use `wisp identity init` / `token`)",
    )?;
    let config = Config {
        dir,
        addr: args.addr,
        trust_domain: args.trust_domain,
        control_plane_ns: args.control_plane_ns,
        validity: Validity {
            lifetime: args.lifetime,
            skew: args.skew,
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        let stop = crate::signal::shutdown_signal()?;
        wisp_identity::serve(config, stop)
            .await
            .context("identity service failed")
    });
    drop(runtime);
    result
}

/// `--source kube`: the controller with only its identity role.
fn run_serve_kube(args: ServeArgs) -> anyhow::Result<()> {
    let settings = crate::controller::Settings {
        roles: crate::controller::Roles {
            destination: false,
            identity: true,
            injector: false,
        },
        source: None,
        cluster_domain: args.trust_domain.clone(),
        trust_domain: args.trust_domain,
        control_plane_ns: args.control_plane_ns,
        cluster_networks: Vec::new(),
        default_inbound_policy: wisp_destination::DefaultPolicy::AllUnauthenticated,
        destination_addr: args.addr,
        identity_addr: args.addr,
        injector_addr: args.addr,
        admin_addr: args.admin_addr,
        issuer_secret: args.issuer_secret,
        trust_roots_configmap: args.trust_roots_configmap,
        validity: Validity {
            lifetime: args.lifetime,
            skew: args.skew,
        },
        injector_tls_dir: PathBuf::new(),
        injector_config: PathBuf::new(),
    };
    crate::controller_cmd::block_on(settings)
}
