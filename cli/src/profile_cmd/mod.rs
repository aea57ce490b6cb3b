//! `wisp profile` (print a ServiceProfile), `wisp validate`, `wisp apply`
//! and `wisp delete` (manifests of a universal-mode source directory).

mod apply;
mod files;
mod tap;
mod validate;

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::ArgGroup;
use wisp_profiles::generate;

pub use apply::{run_apply, run_delete, ApplyArgs, DeleteArgs};
pub use validate::{run_validate, ValidateArgs};

/// Arguments of `wisp profile`.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["template", "open_api", "proto", "tap"])))]
pub struct Args {
    /// Name of the service the profile is for.
    pub service: String,
    /// Namespace of the service.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Cluster domain of the profile name `<svc>.<ns>.svc.<domain>`.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Print a commented template.
    #[arg(long)]
    pub template: bool,
    /// Generate from a Swagger 2 / OpenAPI 3 document (JSON or YAML; `-` = stdin).
    #[arg(long, value_name = "FILE")]
    pub open_api: Option<PathBuf>,
    /// Generate from a protobuf service definition (`-` = stdin).
    #[arg(long, value_name = "FILE")]
    pub proto: Option<PathBuf>,
    /// Generate from live traffic of a target (`deploy/NAME`, `pod/NAME`,
    /// or a proxy's admin `HOST:PORT`): one route per method and path seen.
    #[arg(long, value_name = "TARGET")]
    pub tap: Option<String>,
    /// How long to tap with `--tap`.
    #[arg(long, default_value = "5s", value_parser = wisp_common::duration::parse_positive_flag_duration)]
    pub tap_duration: std::time::Duration,
    /// With `--tap`, stop once this many routes were seen.
    #[arg(long, default_value_t = 20)]
    pub tap_route_limit: usize,
    /// With `--tap`, where pods are read from: `dir:PATH`, `kube` or
    /// `kube:KUBECONFIG`. Default: $WISP_SOURCE, else `dir:./manifests` if
    /// that directory exists, else `kube`.
    #[arg(long)]
    pub source: Option<String>,
    /// With `--tap`: tap over mTLS (`--tls-dir`, `--server-id`,
    /// `--identity-trust-domain`), as `wisp tap` does.
    #[command(flatten)]
    pub tap_tls: crate::tap::TapTlsArgs,
}

/// Runs `wisp profile`: prints the profile YAML to stdout.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (svc, ns, cd) = (&args.service, &args.namespace, &args.cluster_domain);
    let yaml = if args.template {
        generate::template(svc, ns, cd)
    } else if let Some(path) = &args.open_api {
        let text = read_input(path)?;
        let profile = generate::from_openapi(&text, svc, ns, cd)
            .with_context(|| format!("{}", path.display()))?;
        generate::to_yaml(&profile)?
    } else if let Some(path) = &args.proto {
        let text = read_input(path)?;
        let profile = generate::from_proto(&text, svc, ns, cd)
            .with_context(|| format!("{}", path.display()))?;
        generate::to_yaml(&profile)?
    } else if let Some(target) = &args.tap {
        let seen = tap::tap_requests(&tap::TapProfile {
            target,
            targets: crate::target::TargetArgs {
                namespace: ns.clone(),
                all_namespaces: false,
                source: args.source.clone(),
            },
            duration: args.tap_duration,
            route_limit: args.tap_route_limit,
            tls: args.tap_tls.clone(),
        })?;
        let profile = tap::profile_from_requests(
            svc,
            ns,
            cd,
            seen.iter().map(|(m, p)| (m.as_str(), p.as_str())),
            args.tap_route_limit,
        );
        generate::to_yaml(&profile)?
    } else {
        anyhow::bail!("give one of --template, --open-api, --proto or --tap");
    };
    print!("{yaml}");
    Ok(())
}

fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}
