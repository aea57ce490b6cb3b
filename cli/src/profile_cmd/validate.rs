//! `wisp validate FILE...`: every problem of every document, one per line.

use std::path::PathBuf;

use wisp_profiles::ValidateOptions;

use super::files;

/// Arguments of `wisp validate`.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Manifest files or directories to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Cluster domain ServiceProfile names must end with.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
}

/// Runs `wisp validate`: prints `FILE: KIND NS/NAME: PATH: MESSAGE` per
/// problem and fails if there is any.
pub fn run_validate(args: ValidateArgs) -> anyhow::Result<()> {
    let opts = ValidateOptions {
        cluster_domain: args.cluster_domain,
    };
    let report = files::check_files(&files::collect(&args.files)?, &opts)?;
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
