//! The demo's temporary directory (manifests and child logs), removed on drop.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// A fresh directory under the system temp dir; removed when dropped.
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates `wisp-demo-<pid>-<nonce>/` with `manifests/` and `logs/` inside.
    pub fn create() -> anyhow::Result<Self> {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path =
            std::env::temp_dir().join(format!("wisp-demo-{}-{nonce:08x}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let dir = WorkDir { path };
        for sub in [dir.manifests(), dir.logs()] {
            std::fs::create_dir(&sub)
                .with_context(|| format!("cannot create {}", sub.display()))?;
        }
        Ok(dir)
    }

    /// Where the manifests go (the destination service's source).
    pub fn manifests(&self) -> PathBuf {
        self.path.join("manifests")
    }

    /// The identity directory (`wisp identity init` output); not created here.
    pub fn identity(&self) -> PathBuf {
        self.path.join("identity")
    }

    /// Where the workload token files go; not created here.
    pub fn tokens(&self) -> PathBuf {
        self.path.join("tokens")
    }

    /// The file the demo's ServiceProfile and TrafficSplit are written to
    /// before `wisp apply` puts them into [`WorkDir::manifests`].
    pub fn profile_file(&self) -> PathBuf {
        self.path.join("web-profile.yaml")
    }

    /// Where each child's output goes.
    pub fn logs(&self) -> PathBuf {
        self.path.join("logs")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("wisp demo: cannot remove {}: {e}", self.path.display());
        }
    }
}
