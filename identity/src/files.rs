//! Reading and writing the identity directory's files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Trust anchors bundle (PEM) in an identity directory.
pub const TRUST_ANCHORS: &str = "ca.crt";
/// Issuer certificate (PEM) in an identity directory.
pub const ISSUER_CERT: &str = "issuer.crt";
/// Issuer private key (PEM) in an identity directory.
pub const ISSUER_KEY: &str = "issuer.key";
/// Token signing key (base64 of 32 bytes) in an identity directory.
pub const TOKEN_KEY: &str = "token.key";

/// A file that could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// I/O failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        error: std::io::Error,
    },
    /// The contents are not what was expected.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl FileError {
    /// An `Invalid` error for `path`.
    pub fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        FileError::Invalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    fn io(path: &Path, error: std::io::Error) -> Self {
        FileError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// Reads every `CERTIFICATE` block of a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let bytes = fs::read(path).map_err(|e| FileError::io(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::invalid(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(FileError::invalid(path, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// Reads a PEM private key (`PRIVATE KEY` or `EC PRIVATE KEY`).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    let bytes = fs::read(path).map_err(|e| FileError::io(path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| FileError::invalid(path, format!("no usable private key: {e}")))
}

/// Reads a whole file as text.
pub fn read_string(path: &Path) -> Result<String, FileError> {
    fs::read_to_string(path).map_err(|e| FileError::io(path, e))
}

/// Writes `contents` to a new file; `secret` files get mode 0600. Fails if
/// the file exists unless `overwrite`.
pub fn write_new(
    path: &Path,
    contents: &[u8],
    secret: bool,
    overwrite: bool,
) -> Result<(), FileError> {
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|e| FileError::io(path, e))?;
    #[cfg(unix)]
    if secret {
        // An existing file keeps its old mode when truncated: tighten it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| FileError::io(path, e))?;
    }
    file.write_all(contents)
        .map_err(|e| FileError::io(path, e))?;
    file.sync_all().map_err(|e| FileError::io(path, e))
}
