//! `wisp apply` / `wisp delete`: put objects into (or take them out of) the
//! directory the destination service watches in universal mode.

use std::path::PathBuf;

use anyhow::Context;
use wisp_profiles::ValidateOptions;

use super::files::{self, UnknownKinds};

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
    /// Store objects of kinds wisp does not act on (for example Istio's
    /// AuthorizationPolicy) in the directory anyway: they are stored but
    /// not enforced. Without this flag they fail validation and nothing is
    /// applied.
    #[arg(long)]
    pub allow_unknown_kinds: bool,
}

/// Arguments of `wisp delete`: the manifests naming the objects to delete.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// What to delete, and where.
    #[command(flatten)]
    pub targets: Targets,
}

/// Runs `wisp apply`: validates everything first (nothing is written if
/// anything is wrong, including an object of a kind wisp does not act on
/// without `--allow-unknown-kinds`), then writes each object as
/// `<kind>-<ns>-<name>.yaml`.
pub fn run_apply(args: ApplyArgs) -> anyhow::Result<()> {
    let opts = ValidateOptions {
        cluster_domain: args.cluster_domain,
    };
    let unknown = if args.allow_unknown_kinds {
        UnknownKinds::Allow
    } else {
        UnknownKinds::Reject
    };
    let report = files::check_files(&files::collect(&args.targets.files)?, &opts, unknown)?;
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
    // Without --allow-unknown-kinds every document is of a kind wisp acts
    // on by now; with it, the others are stored too (and were noted above).
    for doc in &report.docs {
        let name = files::object_file_name(&doc.id);
        let text = serde_yaml_ng::to_string(&doc.value)?;
        files::write_atomically(&args.targets.dir, &name, text.as_bytes())?;
        if doc.known {
            println!("{} applied ({name})", doc.id);
        } else {
            println!("{} stored, not enforced ({name})", doc.id);
        }
    }
    Ok(())
}

/// Runs `wisp delete`: removes the files of the objects named in the
/// manifests, whatever their kind (deleting is always safe, and objects
/// stored with `--allow-unknown-kinds` must be removable).
pub fn run_delete(args: DeleteArgs) -> anyhow::Result<()> {
    let report = files::check_files(
        &files::collect(&args.targets.files)?,
        &ValidateOptions::default(),
        UnknownKinds::Allow,
    )?;
    for doc in report
        .docs
        .iter()
        .filter(|d| !d.id.name.is_empty() && !d.id.kind.is_empty())
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
