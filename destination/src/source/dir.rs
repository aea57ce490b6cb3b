//! `dir:PATH` source: a directory of YAML manifests, watched for changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use wisp_profiles::ValidateOptions;

use super::manifest::{parse_documents_with, Document};
use super::SourceError;
use crate::index::{Index, IndexEvent, Object, ObjectRef};

/// Quiet period after a file-system event before the directory is re-read.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// Upper bound on how long a burst of events may delay a re-read.
const MAX_DELAY: Duration = Duration::from_millis(60);

/// Last read state of one manifest file.
#[derive(Debug, Default)]
struct FileState {
    /// The text last read (to skip unchanged files and repeated warnings).
    text: String,
    /// The objects last accepted from this file.
    objects: Vec<Object>,
}

/// The state of a manifest directory: the last good objects of every file.
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    opts: ValidateOptions,
}

impl DirSource {
    /// Creates a source for `root` (nothing is read yet); ServiceProfile
    /// names must end with the default cluster domain `cluster.local`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_cluster_domain(root, "cluster.local")
    }

    /// Creates a source for `root` whose ServiceProfile names must end
    /// with `cluster_domain`.
    pub fn with_cluster_domain(root: impl Into<PathBuf>, cluster_domain: &str) -> Self {
        Self {
            root: root.into(),
            files: BTreeMap::new(),
            opts: ValidateOptions {
                cluster_domain: cluster_domain.trim_matches('.').to_string(),
            },
        }
    }

    /// Re-reads the directory and returns every object currently served.
    ///
    /// Files whose text is unchanged are not parsed again. A file that is
    /// not valid YAML (for instance half-written) keeps its previous objects;
    /// an invalid object keeps its previous version from the same file.
    pub fn rescan(&mut self) -> Vec<Object> {
        let mut paths = Vec::new();
        collect_manifests(&self.root, &mut paths);
        let mut files = BTreeMap::new();
        for path in paths {
            let previous = self.files.remove(&path).unwrap_or_default();
            if let Some(state) = read_file(&path, previous, &self.opts) {
                files.insert(path, state);
            }
        }
        for gone in self.files.keys() {
            info!(path = %gone.display(), "manifest file removed");
        }
        self.files = files;
        self.files
            .values()
            .flat_map(|f| f.objects.iter().cloned())
            .collect()
    }
}

/// Reads one file, falling back to `previous` where the new content is bad.
/// Returns `None` if the file no longer exists.
fn read_file(path: &Path, previous: FileState, opts: &ValidateOptions) -> Option<FileState> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read manifest; keeping its last good state");
            return Some(previous);
        }
    };
    if text == previous.text {
        return Some(previous);
    }
    if text.trim().is_empty() && !previous.objects.is_empty() {
        // Most likely truncated by a writer that has not written yet; the
        // write itself produces another event and a re-read.
        debug!(path = %path.display(), "manifest file is empty; keeping its last good state");
        return Some(previous);
    }
    let file = path.display().to_string();
    let docs = match parse_documents_with(&text, Some(&file), opts) {
        Ok(docs) => docs,
        Err(error) => {
            warn!(path = %path.display(), %error, "invalid manifest file; keeping its last good state");
            return Some(FileState {
                text,
                objects: previous.objects,
            });
        }
    };
    let mut objects = Vec::with_capacity(docs.len());
    for doc in docs {
        match doc {
            Document::Object(object) => objects.push(object),
            Document::Invalid { kind, key, error } => {
                let wanted = ObjectRef { kind, key };
                let kept = previous
                    .objects
                    .iter()
                    .find(|o| o.object_ref() == wanted)
                    .cloned();
                warn!(
                    path = %path.display(),
                    object = %wanted,
                    %error,
                    kept_last_good = kept.is_some(),
                    "invalid object skipped"
                );
                objects.extend(kept);
            }
            Document::Skipped { api_version, kind } => {
                info!(
                    path = %path.display(),
                    %api_version,
                    %kind,
                    "object of a kind wisp does not act on: stored, not enforced"
                );
            }
        }
    }
    debug!(path = %path.display(), objects = objects.len(), "manifest file read");
    Some(FileState { text, objects })
}

/// Collects `*.yaml`/`*.yml` files under `dir`, recursively, skipping hidden entries.
fn collect_manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            warn!(path = %dir.display(), %error, "cannot list manifest directory");
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        // `metadata` follows symlinks.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => collect_manifests(&path, out),
            Ok(meta) if meta.is_file() => {
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext == "yaml" || ext == "yml" {
                    out.push(path);
                }
            }
            _ => {}
        }
    }
    out.sort();
}

/// A running directory source; stops watching when dropped.
#[derive(Debug)]
pub struct DirWatch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Loads `root` into `index` and keeps it in sync with the directory.
///
/// The initial load completes before this returns, so the first gRPC answers
/// already reflect the files. Must be called inside a tokio runtime.
///
/// ServiceProfile names must end with `cluster_domain`.
pub async fn start(
    root: PathBuf,
    index: Arc<Index>,
    cluster_domain: &str,
) -> Result<DirWatch, SourceError> {
    let meta = std::fs::metadata(&root).map_err(|error| SourceError::Dir {
        path: root.clone(),
        error,
    })?;
    if !meta.is_dir() {
        return Err(SourceError::NotADir(root));
    }
    let (events_tx, events_rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        match res {
            Ok(event) if is_relevant(&event.kind) => {
                // Full means a re-read is already pending: coalesce.
                let _ = events_tx.try_send(());
            }
            Ok(_) => {}
            Err(error) => warn!(%error, "manifest directory watch error"),
        }
    })?;
    watcher.watch(&root, RecursiveMode::Recursive)?;

    let mut source = DirSource::with_cluster_domain(root.clone(), cluster_domain);
    let objects = source.rescan();
    info!(dir = %root.display(), objects = objects.len(), "manifest directory loaded");
    index.apply(IndexEvent::Reset(objects));

    let task = tokio::spawn(watch_loop(source, watcher, events_rx, index));
    Ok(DirWatch { task })
}

async fn watch_loop(
    mut source: DirSource,
    watcher: notify::RecommendedWatcher,
    mut events: mpsc::Receiver<()>,
    index: Arc<Index>,
) {
    // Keep the watcher alive as long as this task runs.
    let _watcher = watcher;
    while events.recv().await.is_some() {
        let first = Instant::now();
        while first.elapsed() < MAX_DELAY {
            match tokio::time::timeout(DEBOUNCE, events.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let rescanned = tokio::task::spawn_blocking(move || {
            let objects = source.rescan();
            (source, objects)
        })
        .await;
        let objects;
        (source, objects) = match rescanned {
            Ok(done) => done,
            Err(error) => {
                warn!(%error, "manifest re-read failed");
                return;
            }
        };
        if index.apply(IndexEvent::Reset(objects)) {
            let ((services, slices, pods), (profiles, splits)) =
                index.read(|s| (s.counts(), s.profile_counts()));
            info!(
                services,
                slices, pods, profiles, splits, "index updated from manifest directory"
            );
        }
    }
}

fn is_relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}
