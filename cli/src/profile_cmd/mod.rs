//! `wisp profile` (print a ServiceProfile), `wisp validate`, `wisp apply`
//! and `wisp delete` (manifests of a universal-mode source directory).

mod apply;
mod files;
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
    /// Generate from live traffic of a resource (not available yet).
    #[arg(long, value_name = "RESOURCE")]
    pub tap: Option<String>,
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
    } else {
        anyhow::bail!("`wisp profile --tap` is not available yet: it arrives with tap support");
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
