//! `wisp validate FILE...`: every problem of every document, one per line.

use std::path::PathBuf;

use wisp_profiles::ValidateOptions;

use super::files::{self, UnknownKinds};

/// Arguments of `wisp validate`.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Manifest files or directories to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Cluster domain ServiceProfile names must end with.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Accept objects of kinds wisp does not act on (for example Istio's
    /// AuthorizationPolicy): `apply` stores them in the directory, but they
    /// are not enforced. Without this flag they are problems.
    #[arg(long)]
    pub allow_unknown_kinds: bool,
}

/// Runs `wisp validate`: prints `FILE: KIND NS/NAME: PATH: MESSAGE` per
/// problem and fails if there is any. An object of a kind wisp does not
/// act on is a problem unless `--allow-unknown-kinds` is given.
pub fn run_validate(args: ValidateArgs) -> anyhow::Result<()> {
    let opts = ValidateOptions {
        cluster_domain: args.cluster_domain,
    };
    let unknown = if args.allow_unknown_kinds {
        UnknownKinds::Allow
    } else {
        UnknownKinds::Reject
    };
    let report = files::check_files(&files::collect(&args.files)?, &opts, unknown)?;
    for note in &report.notes {
        eprintln!("{note}");
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    if !report.problems.is_empty() {
        anyhow::bail!("{} problem(s) found", report.problems.len());
    }
    eprintln!(
        "{} object(s) valid",
        report.docs.iter().filter(|d| d.known).count()
    );
    Ok(())
}
