//! `wisp apply` / `wisp delete`: put objects into (or take them out of) the
//! directory the destination service watches in universal mode.

use std::path::PathBuf;

use anyhow::Context;
use wisp_profiles::ValidateOptions;

use super::files;

/// The manifests and the source directory `apply` and `delete` work on.
#[derive(clap::Args)]
pub struct Targets {
    /// Manifest files or directories.
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR"
    )]
    pub files: Vec<PathBuf>,
    /// The source directory the destination service watches.
    #[arg(long, value_name = "SOURCE_DIR")]
    pub dir: PathBuf,
}

/// Arguments of `wisp apply`.
#[derive(clap::Args)]
pub struct ApplyArgs {
    /// What to apply, and where.
    #[command(flatten)]
    pub targets: Targets,
    /// Cluster domain ServiceProfile names must end with.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
}

/// Arguments of `wisp delete`: the manifests naming the objects to delete.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// What to delete, and where.
    #[command(flatten)]
    pub targets: Targets,
}

/// Runs `wisp apply`: validates everything first (nothing is written if
/// anything is wrong), then writes each object as `<kind>-<ns>-<name>.yaml`.
pub fn run_apply(args: ApplyArgs) -> anyhow::Result<()> {
    let opts = ValidateOptions {
        cluster_domain: args.cluster_domain,
    };
    let report = files::check_files(&files::collect(&args.targets.files)?, &opts)?;
    for note in &report.notes {
        eprintln!("{note}");
    }
    if !report.problems.is_empty() {
        for problem in &report.problems {
            println!("{problem}");
        }
        anyhow::bail!(
            "{} problem(s) found; nothing applied",
            report.problems.len()
        );
    }
    std::fs::create_dir_all(&args.targets.dir)
        .with_context(|| format!("creating {}", args.targets.dir.display()))?;
    for doc in report.docs.iter().filter(|d| d.known) {
        let name = files::object_file_name(&doc.id);
        let text = serde_yaml_ng::to_string(&doc.value)?;
        files::write_atomically(&args.targets.dir, &name, text.as_bytes())?;
        println!("{} applied ({name})", doc.id);
    }
    Ok(())
}

/// Runs `wisp delete`: removes the files of the objects named in the manifests.
pub fn run_delete(args: DeleteArgs) -> anyhow::Result<()> {
    let report = files::check_files(
        &files::collect(&args.targets.files)?,
        &ValidateOptions::default(),
    )?;
    for doc in report
        .docs
        .iter()
        .filter(|d| d.known && !d.id.name.is_empty())
    {
        let name = files::object_file_name(&doc.id);
        if name.contains(['/', '\\']) {
            continue;
        }
        let path = args.targets.dir.join(&name);
        match std::fs::remove_file(&path) {
            Ok(()) => println!("{} deleted", doc.id),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("{} not found", doc.id),
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    Ok(())
}
