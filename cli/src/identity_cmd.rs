//! `wisp identity`: create identity material (`init`), mint workload tokens
//! (`token`), issue a certificate for a named identity from the CA directory
//! (`issue`, e.g. the tap identity an operator's `wisp tap --tls-dir`
//! presents), or serve `Identity.Certify` (no subcommand) from an identity
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
    /// Issue a certificate for an identity (e.g. the tap service's) from
    /// the CA in DIR: writes OUT/tls.crt, OUT/tls.key and OUT/ca.crt.
    Issue(IssueArgs),
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

/// Arguments of `wisp identity issue`.
#[derive(clap::Args)]
struct IssueArgs {
    /// Identity directory holding ca.crt, issuer.crt and issuer.key.
    #[arg(long)]
    dir: PathBuf,
    /// The identity (a DNS name), e.g.
    /// `tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local`.
    #[arg(long)]
    name: String,
    /// Output directory (created if missing): tls.crt (leaf and issuer),
    /// tls.key (PKCS#8, mode 0600), ca.crt (trust anchors).
    #[arg(long)]
    out: PathBuf,
    /// Lifetime of the certificate (e.g. 24h, 1h30m).
    #[arg(long, default_value = "24h", value_parser = parse_positive_flag_duration)]
    lifetime: Duration,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

/// Runs `wisp identity`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(Command::Init(init_args)) => run_init(init_args),
        Some(Command::Token(token_args)) => run_token(token_args),
        Some(Command::Issue(issue_args)) => run_issue(issue_args),
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

/// Why `wisp identity issue` failed.
#[derive(Debug, thiserror::Error)]
enum IssueCmdError {
    /// `--name` is not an identity (the user's input).
    #[error(
        "--name {0:?} is not a valid identity: expected a DNS name of lowercase labels (a-z, 0-9, -) separated by dots, such as tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local"
    )]
    BadName(String),
    /// `--dir` does not exist (the user's input).
    #[error("--dir {}: not an identity directory (create one with `wisp identity init --out DIR`)", .0.display())]
    NoDir(PathBuf),
    /// The CA files are missing or unusable.
    #[error("cannot load the CA from {}", dir.display())]
    Ca {
        /// The identity directory.
        dir: PathBuf,
        /// Which file and why.
        #[source]
        source: wisp_identity::ca::CaError,
    },
    /// The CA refused to issue (expired issuer, unusable name).
    #[error("cannot issue a certificate for {name}")]
    Issue {
        /// The identity.
        name: String,
        /// Why.
        #[source]
        source: wisp_identity::ca::IssueError,
    },
    /// Output files exist and `--force` was not given (the user's choice).
    #[error("{} already exist(s); pass --force to overwrite", .0.join(", "))]
    Exists(Vec<String>),
    /// The output directory could not be created (the machine's fault or
    /// the user's path).
    #[error("cannot create {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] wisp_identity::files::FileError),
}

fn run_issue(args: IssueArgs) -> anyhow::Result<()> {
    for path in issue(&args)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Issues the certificate of `wisp identity issue`; the files written.
fn issue(args: &IssueArgs) -> Result<Vec<PathBuf>, IssueCmdError> {
    use wisp_identity::{files, pem};
    if !wisp_identity::names::is_dns_name(&args.name) {
        return Err(IssueCmdError::BadName(args.name.clone()));
    }
    if !args.dir.is_dir() {
        return Err(IssueCmdError::NoDir(args.dir.clone()));
    }
    // The names `wisp tap --tls-dir` reads.
    use crate::tap::tls::{CA_FILE, CERT_FILE, KEY_FILE};
    let paths = [CERT_FILE, KEY_FILE, CA_FILE].map(|f| args.out.join(f));
    if !args.force {
        let existing: Vec<String> = paths
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(IssueCmdError::Exists(existing));
        }
    }
    let validity = Validity {
        lifetime: args.lifetime,
        ..Validity::default()
    };
    let ca =
        wisp_identity::Ca::load_dir(&args.dir, validity).map_err(|source| IssueCmdError::Ca {
            dir: args.dir.clone(),
            source,
        })?;
    let (chain, key, _) =
        wisp_identity::own::issue_with_new_key(&ca, &args.name).map_err(|source| {
            IssueCmdError::Issue {
                name: args.name.clone(),
                source,
            }
        })?;
    let chain_pem: String = chain
        .iter()
        .map(|c| pem::encode("CERTIFICATE", c))
        .collect();
    let anchors_pem: String = ca
        .trust_anchors()
        .iter()
        .map(|c| pem::encode("CERTIFICATE", c))
        .collect();
    let key_pem = pem::encode("PRIVATE KEY", key.secret_der());
    std::fs::create_dir_all(&args.out).map_err(|source| IssueCmdError::CreateDir {
        path: args.out.clone(),
        source,
    })?;
    let [crt, key_path, anchors] = &paths;
    files::write_new(crt, chain_pem.as_bytes(), false, args.force)?;
    files::write_new(key_path, key_pem.as_bytes(), true, args.force)?;
    files::write_new(anchors, anchors_pem.as_bytes(), false, args.force)?;
    Ok(paths.to_vec())
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(dir: &std::path::Path, name: &str, out: &std::path::Path) -> IssueArgs {
        IssueArgs {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            out: out.to_path_buf(),
            lifetime: Duration::from_secs(3600),
            force: false,
        }
    }

    #[test]
    fn issue_writes_chain_key_and_anchors_and_refuses_bad_input() {
        let tmp = tempfile::tempdir().unwrap();
        let id = tmp.path().join("id");
        init(&InitOptions {
            out: id.clone(),
            trust_domain: "cluster.local".into(),
            control_plane_ns: "linkerd".into(),
            force: false,
        })
        .unwrap();
        let out = tmp.path().join("tap");
        let name = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local";
        let written = issue(&args(&id, name, &out)).unwrap();
        assert_eq!(written.len(), 3);
        let chain = wisp_identity::files::read_certs(&out.join("tls.crt")).unwrap();
        assert_eq!(chain.len(), 2, "leaf and issuer");
        let anchors = wisp_identity::files::read_certs(&out.join("ca.crt")).unwrap();
        let ours = wisp_identity::files::read_certs(&id.join("ca.crt")).unwrap();
        assert_eq!(anchors, ours);
        wisp_identity::files::read_private_key(&out.join("tls.key")).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join("tls.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let err = issue(&args(&id, name, &out)).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        let mut forced = args(&id, name, &out);
        forced.force = true;
        issue(&forced).unwrap();

        let err = issue(&args(&id, "Tap_Service", &out)).unwrap_err();
        assert!(matches!(err, IssueCmdError::BadName(_)), "{err}");
        let err = issue(&args(&tmp.path().join("nope"), name, &out)).unwrap_err();
        assert!(matches!(err, IssueCmdError::NoDir(_)), "{err}");
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let err = issue(&args(&empty, name, &tmp.path().join("x"))).unwrap_err();
        let chain = wisp_common::error::chain(&err);
        assert!(chain.contains("ca.crt"), "{chain}");
    }
}
