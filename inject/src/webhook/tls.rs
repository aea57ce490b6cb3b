//! The webhook's serving certificate, read from `tls.crt`/`tls.key` in a
//! directory (a mounted Secret) and re-read when either file changes: each
//! handshake compares the files' (mtime, size, inode) with the loaded
//! ones — two `stat` calls — and reloads only on a difference. A broken
//! update keeps the previous certificate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate files could not be loaded (the operator's fault).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No certificate in `tls.crt`.
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// No usable key in `tls.key`.
    #[error("{path} holds no usable PEM private key")]
    Key {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

type Stamp = (SystemTime, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Loads `tls.crt` and `tls.key` from `dir`.
pub fn load(dir: &Path) -> Result<CertifiedKey, TlsError> {
    let crt_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let crt = read(&crt_path)?;
    let key = read(&key_path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&crt)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: crt_path });
    }
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| TlsError::Key {
        path: key_path.clone(),
        source: Box::new(e),
    })?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::Key {
            path: key_path,
            source: Box::new(e),
        })?;
    Ok(CertifiedKey::new(certs, signing))
}

#[derive(Default)]
struct State {
    stamps: Option<(Stamp, Stamp)>,
    key: Option<Arc<CertifiedKey>>,
}

/// A [`ResolvesServerCert`] that follows the files in a directory.
pub struct ReloadingCert {
    dir: PathBuf,
    state: Mutex<State>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("dir", &self.dir)
            .finish()
    }
}

impl ReloadingCert {
    /// Follows `dir/tls.crt` and `dir/tls.key` (missing files are
    /// tolerated until they appear; handshakes fail meanwhile).
    pub fn new(dir: PathBuf) -> Self {
        let this = Self {
            dir,
            state: Mutex::new(State::default()),
        };
        this.current();
        this
    }

    /// The certificate to serve now, reloading it when the files changed.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        let stamps = stamp(&self.dir.join("tls.crt")).zip(stamp(&self.dir.join("tls.key")));
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if stamps.is_some() && stamps != state.stamps {
            match load(&self.dir) {
                Ok(key) => {
                    tracing::info!(dir = %self.dir.display(), "loaded the webhook's TLS certificate");
                    state.key = Some(Arc::new(key));
                    state.stamps = stamps;
                }
                Err(error) => {
                    tracing::warn!(
                        error = %wisp_common::error::chain(&error),
                        "keeping the previous webhook certificate"
                    );
                }
            }
        }
        state.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}
