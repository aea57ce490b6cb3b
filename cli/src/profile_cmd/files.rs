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
    /// Whether wisp acts on the kind (profiles, splits, Service,
    /// EndpointSlice, Pod): see [`acted_on`].
    pub known: bool,
}

/// Result of checking files: problem lines, notes and the documents.
#[derive(Default)]
pub struct Report {
    /// `FILE: KIND NS/NAME: PATH: MESSAGE` lines.
    pub problems: Vec<String>,
    /// Informational lines (objects stored but not enforced).
    pub notes: Vec<String>,
    /// Every document, valid or not.
    pub docs: Vec<Checked>,
}

/// What to do with objects of kinds wisp does not act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownKinds {
    /// They are problems: nothing would enforce them, and a user who
    /// applies, say, a deny-all AuthorizationPolicy must not believe it is
    /// in force.
    Reject,
    /// The user asked (`--allow-unknown-kinds`) to keep them anyway; each
    /// gets a note saying it is not enforced.
    Allow,
}

/// Whether wisp acts on `(apiVersion, kind)`: the kinds the destination
/// index consumes (ServiceProfile, TrafficSplit, Service, EndpointSlice,
/// Pod), as its manifest source recognises them.
pub fn acted_on(api_version: &str, kind: &str) -> bool {
    manifest::indexed_kind(api_version, kind).is_some()
}

/// The sentence explaining that wisp ignores objects of this kind.
fn not_acted_on(api_version: &str, kind: &str) -> String {
    format!("wisp does not act on kind {kind:?} (apiVersion {api_version:?}), so nothing would enforce this object")
}

/// Reads and checks every document of every file.
pub fn check_files(
    files: &[PathBuf],
    opts: &ValidateOptions,
    unknown: UnknownKinds,
) -> anyhow::Result<Report> {
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
            let known = match &doc.status {
                DocumentStatus::Invalid(problems) => {
                    report
                        .problems
                        .extend(problems.iter().map(ToString::to_string));
                    true
                }
                DocumentStatus::Valid(_) => true,
                DocumentStatus::Unknown if acted_on(&doc.api_version, &doc.id.kind) => {
                    let errors = match core.as_ref().and_then(|c| c.get(doc.index)) {
                        Some(manifest::Document::Invalid { error, .. }) => error.lines(),
                        Some(_) => Vec::new(),
                        None => single_core_errors(&doc.value),
                    };
                    report.problems.extend(
                        errors
                            .into_iter()
                            .map(|error| format!("{shown}: {}: {error}", doc.id)),
                    );
                    true
                }
                DocumentStatus::Unknown => {
                    let (api_version, kind) = (&doc.api_version, &doc.id.kind);
                    if kind.is_empty() || api_version.is_empty() {
                        let field = if kind.is_empty() {
                            "kind"
                        } else {
                            "apiVersion"
                        };
                        report
                            .problems
                            .push(format!("{shown}: {}: {field}: missing", doc.id));
                    } else if unknown == UnknownKinds::Allow {
                        report.notes.push(format!(
                            "{shown}: {}: stored but not enforced: {} (--allow-unknown-kinds)",
                            doc.id,
                            not_acted_on(api_version, kind)
                        ));
                    } else {
                        report.problems.push(format!(
                            "{shown}: {}: {}; remove it, or pass --allow-unknown-kinds to store it anyway",
                            doc.id,
                            not_acted_on(api_version, kind)
                        ));
                    }
                    false
                }
            };
            let stored = known || unknown == UnknownKinds::Allow;
            if stored
                && (doc.id.name.is_empty()
                    || doc.id.name.contains(['/', '\\'])
                    || doc.id.name.starts_with('.'))
            {
                report.problems.push(format!(
                    "{shown}: {}: metadata.name: not usable as an object name",
                    doc.id
                ));
            } else if stored && object_file_name(&doc.id).contains(['/', '\\']) {
                report.problems.push(format!(
                    "{shown}: {}: kind and metadata.namespace must not contain '/' or '\\'",
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

/// The problems of one core-kind document parsed on its own (when the
/// whole file could not be parsed by the destination's parser).
fn single_core_errors(value: &serde_yaml_ng::Value) -> Vec<String> {
    let text = match serde_yaml_ng::to_string(value) {
        Ok(text) => text,
        Err(e) => return vec![e.to_string()],
    };
    match manifest::parse_documents(&text) {
        Ok(docs) => docs
            .into_iter()
            .find_map(|d| match d {
                manifest::Document::Invalid { error, .. } => Some(error.lines()),
                _ => None,
            })
            .unwrap_or_default(),
        Err(e) => vec![e.to_string()],
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
