//! Manifest files: collecting them, checking them, writing them atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use wisp_destination::source::manifest;
use wisp_profiles::{parse_documents, DocumentStatus, ObjectId, ValidateOptions};

/// The files named on the command line; a directory stands for its
/// `*.yaml`/`*.yml`/`*.json` files (not recursive), sorted.
pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// One checked document of a file.
pub struct Checked {
    /// Kind, namespace and name.
    pub id: ObjectId,
    /// The document.
    pub value: serde_yaml_ng::Value,
    /// Whether wisp knows the kind (profiles, splits, Service, EndpointSlice, Pod).
    pub known: bool,
}

/// Result of checking files: problem lines, notes and the documents.
#[derive(Default)]
pub struct Report {
    /// `FILE: KIND NS/NAME: PATH: MESSAGE` lines.
    pub problems: Vec<String>,
    /// Informational lines (skipped kinds).
    pub notes: Vec<String>,
    /// Every document, valid or not.
    pub docs: Vec<Checked>,
}

/// Whether `(apiVersion, kind)` is a core kind the destination index reads.
fn core_kind(api_version: &str, kind: &str) -> bool {
    matches!(
        (api_version, kind),
        ("v1", "Service") | ("v1", "Pod") | ("discovery.k8s.io/v1", "EndpointSlice")
    )
}

/// Reads and checks every document of every file.
pub fn check_files(files: &[PathBuf], opts: &ValidateOptions) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for file in files {
        let shown = file.display().to_string();
        let text = fs::read_to_string(file).with_context(|| format!("reading {shown}"))?;
        let docs = match parse_documents(&text, Some(&shown), opts) {
            Ok(docs) => docs,
            Err(problem) => {
                report.problems.push(problem.to_string());
                continue;
            }
        };
        // The destination's parser gives the core kinds' errors; it skips
        // the same empty documents, so indexes line up.
        let core = manifest::parse_documents(&text).ok();
        for doc in docs {
            let mut known = true;
            match &doc.status {
                DocumentStatus::Invalid(problems) => {
                    report
                        .problems
                        .extend(problems.iter().map(ToString::to_string));
                }
                DocumentStatus::Valid(_) => {}
                DocumentStatus::Unknown if core_kind(&doc.api_version, &doc.id.kind) => {
                    let error = match core.as_ref().and_then(|c| c.get(doc.index)) {
                        Some(manifest::Document::Invalid { error, .. }) => Some(error.clone()),
                        Some(_) => None,
                        None => single_core_error(&doc.value),
                    };
                    if let Some(error) = error {
                        report
                            .problems
                            .push(format!("{shown}: {}: {error}", doc.id));
                    }
                }
                DocumentStatus::Unknown => {
                    known = false;
                    report.notes.push(format!(
                        "{shown}: {}: skipped (unknown kind {:?} {:?})",
                        doc.id, doc.api_version, doc.id.kind
                    ));
                }
            }
            if known
                && (doc.id.name.is_empty()
                    || doc.id.name.contains(['/', '\\'])
                    || doc.id.name.starts_with('.'))
            {
                report.problems.push(format!(
                    "{shown}: {}: metadata.name: not usable as an object name",
                    doc.id
                ));
            }
            report.docs.push(Checked {
                id: doc.id,
                value: doc.value,
                known,
            });
        }
    }
    Ok(report)
}

fn single_core_error(value: &serde_yaml_ng::Value) -> Option<String> {
    let text = serde_yaml_ng::to_string(value).ok()?;
    match manifest::parse_documents(&text) {
        Ok(docs) => docs.into_iter().find_map(|d| match d {
            manifest::Document::Invalid { error, .. } => Some(error),
            _ => None,
        }),
        Err(e) => Some(e.to_string()),
    }
}

/// `<kind>-<ns>-<name>.yaml`, the file of an object in a source directory.
pub fn object_file_name(id: &ObjectId) -> String {
    format!(
        "{}-{}-{}.yaml",
        id.kind.to_lowercase(),
        id.namespace,
        id.name
    )
}

/// Writes `contents` to `dir/name` so readers see the old file or the new
/// one, never half of one: a hidden temp file in the same directory,
/// fsync, rename over the target, fsync the directory.
pub fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> anyhow::Result<()> {
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&temp, &target)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.with_context(|| format!("writing {}", target.display()))
}
