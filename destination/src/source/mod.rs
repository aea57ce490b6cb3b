//! Sources that feed the index: where the objects come from.

pub mod dir;
pub mod kube;
pub mod manifest;

use std::path::PathBuf;
use std::sync::Arc;

use crate::index::Index;

/// Where the index gets its objects from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// A directory of YAML manifests (`dir:PATH`).
    Dir(PathBuf),
    /// A Kubernetes cluster's API server (`kube`: kubeconfig as kubectl
    /// finds it, else in-cluster; `kube:PATH`: that kubeconfig file).
    Kube(kube::KubeConfigSource),
}

impl std::str::FromStr for SourceSpec {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("dir:") {
            if path.is_empty() {
                return Err(SourceError::Spec(s.to_string(), "dir: needs a path"));
            }
            return Ok(SourceSpec::Dir(PathBuf::from(path)));
        }
        if s == "kube" {
            return Ok(SourceSpec::Kube(kube::KubeConfigSource::Infer));
        }
        if let Some(path) = s.strip_prefix("kube:") {
            if path.is_empty() {
                return Err(SourceError::Spec(
                    s.to_string(),
                    "kube: needs a kubeconfig path (or use plain `kube`)",
                ));
            }
            return Ok(SourceSpec::Kube(kube::KubeConfigSource::File(
                PathBuf::from(path),
            )));
        }
        Err(SourceError::Spec(
            s.to_string(),
            "unknown source scheme; expected dir:PATH, kube or kube:KUBECONFIG",
        ))
    }
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Dir(path) => write!(f, "dir:{}", path.display()),
            SourceSpec::Kube(kube::KubeConfigSource::Infer) => f.write_str("kube"),
            SourceSpec::Kube(kube::KubeConfigSource::File(path)) => {
                write!(f, "kube:{}", path.display())
            }
        }
    }
}

/// Errors starting a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The `--source` value is not understood.
    #[error("invalid source {0:?}: {1}")]
    Spec(String, &'static str),
    /// The manifest directory cannot be read.
    #[error("manifest directory {}: {error}", .path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The manifest path is not a directory.
    #[error("manifest path {} is not a directory", .0.display())]
    NotADir(PathBuf),
    /// The file watcher could not be set up.
    #[error("cannot watch manifest directory: {0}")]
    Watch(#[from] notify::Error),
    /// No usable Kubernetes client configuration (kubeconfig or in-cluster):
    /// the environment's fault.
    #[error("no usable Kubernetes client configuration: {0}")]
    KubeConfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The Kubernetes client could not be built from the configuration.
    #[error("cannot build the Kubernetes client: {0}")]
    KubeClient(#[source] ::kube::Error),
    /// The API server did not answer the initial lists in time (down,
    /// unreachable, or refusing wisp's credentials).
    #[error(
        "the Kubernetes API did not list {kinds} within {timeout:?}; last error: {last_error}"
    )]
    KubeSync {
        /// The kinds not listed yet.
        kinds: String,
        /// How long the source waited.
        timeout: std::time::Duration,
        /// The last watch error seen.
        last_error: String,
    },
}

/// A running source; stops feeding the index when dropped.
#[derive(Debug)]
pub enum SourceHandle {
    /// A directory source.
    Dir(dir::DirWatch),
    /// A Kubernetes API source.
    Kube(kube::KubeWatch),
}

/// Starts the source described by `spec`, feeding `index`; ServiceProfile
/// names must end with `cluster_domain`.
///
/// Returns once the initial state has been loaded into the index.
pub async fn start(
    spec: &SourceSpec,
    index: Arc<Index>,
    cluster_domain: &str,
) -> Result<SourceHandle, SourceError> {
    match spec {
        SourceSpec::Dir(path) => Ok(SourceHandle::Dir(
            dir::start(path.clone(), index, cluster_domain).await?,
        )),
        SourceSpec::Kube(config) => Ok(SourceHandle::Kube(
            kube::start(config, index, cluster_domain).await?,
        )),
    }
}
