//! Mesh identity for the end-to-end tests: a `wisp identity` certificate
//! authority per test (its own trust anchor), workload tokens, the identity
//! environment a proxy needs, and small `openssl` helpers.
//!
//! An identity service on a loopback address is dialled in plaintext by the
//! proxies (as upstream: loopback control planes are not TLS'd).

use std::ffi::OsString;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{bin, wait_for_port, Process};

/// The identity suffix of workloads under the default control plane
/// (`linkerd`) and trust domain (`cluster.local`).
pub const IDENTITY_SUFFIX: &str = "serviceaccount.identity.linkerd.cluster.local";

/// The identity service's own identity (`LINKERD2_PROXY_IDENTITY_SVC_NAME`).
pub const IDENTITY_SVC_NAME: &str =
    "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local";

/// `<sa>.<ns>.serviceaccount.identity.linkerd.cluster.local`.
pub fn identity_name(sa: &str, ns: &str) -> String {
    format!("{sa}.{ns}.{IDENTITY_SUFFIX}")
}

/// Runs a `wisp` subcommand to completion; its stdout, panicking on failure.
fn wisp(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(bin("wisp")).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "wisp {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `wisp identity` certificate authority: a directory made by
/// `wisp identity init` and, when started, `wisp identity` serving
/// `Identity.Certify` on `addr`. Stopped (SIGKILL) on drop.
pub struct IdentityPlane {
    dir: tempfile::TempDir,
    /// Token files, world-readable (proxies may run as another user).
    tokens: tempfile::TempDir,
    /// Where the service listens.
    pub addr: SocketAddr,
    /// Extra `wisp identity` serve arguments (`--lifetime`, `--skew`, ...).
    pub serve_args: Vec<String>,
    process: Option<Process>,
}

impl IdentityPlane {
    /// Creates a fresh trust anchor, issuer and token key (`wisp identity
    /// init`); the service is not started.
    pub fn init(addr: SocketAddr) -> IdentityPlane {
        let dir = tempfile::tempdir().unwrap();
        wisp(&[
            "identity".as_ref(),
            "init".as_ref(),
            "--out".as_ref(),
            dir.path().as_os_str(),
        ]);
        let tokens = tempfile::tempdir().unwrap();
        set_mode(tokens.path(), 0o755);
        IdentityPlane {
            dir,
            tokens,
            addr,
            serve_args: Vec::new(),
            process: None,
        }
    }

    /// Sets the lifetime and skew of issued certificates (for the next start).
    pub fn with_lifetime(mut self, lifetime: &str, skew: &str) -> IdentityPlane {
        self.serve_args = vec![
            "--lifetime".into(),
            lifetime.into(),
            "--skew".into(),
            skew.into(),
        ];
        self
    }

    /// Creates and starts a certificate authority on `addr`.
    pub async fn start(addr: SocketAddr) -> IdentityPlane {
        let mut id = IdentityPlane::init(addr);
        id.restart().await;
        id
    }

    /// The identity directory (`ca.crt`, `issuer.crt`, `issuer.key`, `token.key`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the trust anchor bundle.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The trust anchors, PEM.
    pub fn ca_pem(&self) -> String {
        fs::read_to_string(self.ca_path()).unwrap()
    }

    /// The arguments after `wisp` that serve this directory on `addr`.
    pub fn serve_command_args(&self, addr: SocketAddr) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            "identity".into(),
            "--dir".into(),
            self.dir.path().into(),
            "--addr".into(),
            addr.to_string().into(),
        ];
        v.extend(self.serve_args.iter().map(OsString::from));
        v
    }

    /// (Re)starts the service on `addr` and waits for its port.
    pub async fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new(bin("wisp"));
        cmd.args(self.serve_command_args(self.addr));
        self.process = Some(Process::spawn("wisp identity", cmd));
        wait_for_port(self.addr, Duration::from_secs(10)).await;
    }

    /// Kills the service (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// The service's output so far.
    pub fn output(&self) -> String {
        self.process
            .as_ref()
            .map(Process::output)
            .unwrap_or_default()
    }

    /// Mints a token for `sa.ns` (`wisp identity token`) and writes it to a
    /// world-readable file; returns its path.
    pub fn token_file(&self, sa: &str, ns: &str) -> PathBuf {
        let token = wisp(&[
            "identity".as_ref(),
            "token".as_ref(),
            "--dir".as_ref(),
            self.dir.path().as_os_str(),
            "--sa".as_ref(),
            sa.as_ref(),
            "--ns".as_ref(),
            ns.as_ref(),
        ]);
        assert!(
            !token.trim().is_empty(),
            "wisp identity token printed nothing"
        );
        let path = self.tokens.path().join(format!("{sa}.{ns}.token"));
        fs::write(&path, token).unwrap();
        set_mode(&path, 0o644);
        path
    }

    /// The identity environment of a proxy certified as `sa.ns` by this
    /// authority (plaintext to a loopback identity service), trusting
    /// these anchors.
    pub fn proxy_env(&self, sa: &str, ns: &str) -> Vec<(String, String)> {
        self.proxy_env_trusting(sa, ns, &self.ca_pem())
    }

    /// Like [`IdentityPlane::proxy_env`], trusting `anchors_pem` instead.
    pub fn proxy_env_trusting(
        &self,
        sa: &str,
        ns: &str,
        anchors_pem: &str,
    ) -> Vec<(String, String)> {
        vec![
            (
                "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS".into(),
                anchors_pem.to_string(),
            ),
            (
                "LINKERD2_PROXY_IDENTITY_TOKEN_FILE".into(),
                self.token_file(sa, ns).display().to_string(),
            ),
            (
                "LINKERD2_PROXY_IDENTITY_LOCAL_NAME".into(),
                identity_name(sa, ns),
            ),
            (
                "LINKERD2_PROXY_IDENTITY_SVC_ADDR".into(),
                self.addr.to_string(),
            ),
            (
                "LINKERD2_PROXY_IDENTITY_SVC_NAME".into(),
                IDENTITY_SVC_NAME.into(),
            ),
        ]
    }

    /// Signs a client certificate for `name` with this authority's issuer
    /// using `openssl` (outside the identity service), into `out`:
    /// returns (leaf PEM path, key PEM path); send it with
    /// [`IdentityPlane::issuer_path`] as the chain.
    pub fn openssl_leaf(&self, name: &str, out: &Path) -> (PathBuf, PathBuf) {
        let key = out.join(format!("{name}.key"));
        let csr = out.join(format!("{name}.csr"));
        let crt = out.join(format!("{name}.crt"));
        let ext = out.join(format!("{name}.ext"));
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&csr),
        ]);
        fs::write(
            &ext,
            format!(
                "subjectAltName=DNS:{name}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .unwrap();
        let issuer = self.dir.path().join("issuer.crt");
        let issuer_key = self.dir.path().join("issuer.key");
        openssl(&[
            "x509",
            "-req",
            "-in",
            path_str(&csr),
            "-CA",
            path_str(&issuer),
            "-CAkey",
            path_str(&issuer_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-sha256",
            "-extfile",
            path_str(&ext),
            "-out",
            path_str(&crt),
        ]);
        (crt, key)
    }

    /// Path of the issuer certificate (the intermediate a leaf is sent with).
    pub fn issuer_path(&self) -> PathBuf {
        self.dir.path().join("issuer.crt")
    }
}

impl Drop for IdentityPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `openssl <args>`, panicking with its output on failure; its stdout.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What an `openssl s_client` run printed.
#[derive(Debug)]
pub struct SClient {
    /// stdout (certificates, session summary, application data).
    pub stdout: String,
    /// stderr (verification and alert messages).
    pub stderr: String,
    /// Whether it was killed at the deadline.
    pub timed_out: bool,
}

/// Runs `openssl s_client -connect addr <args>` feeding it `input` (stdin
/// then stays open, so the session ends only when the server closes it),
/// for at most `timeout` (then killed).
pub async fn s_client(addr: SocketAddr, args: &[&str], input: &[u8], timeout: Duration) -> SClient {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut child = tokio::process::Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        let _ = stdin.flush().await;
        std::future::pending::<()>().await;
        drop(stdin);
    });
    let read = |r: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf).await;
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = read(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = read(child.stderr.take().map(|s| Box::new(s) as _));
    let timed_out = tokio::time::timeout(timeout, child.wait()).await.is_err();
    if timed_out {
        let _ = child.kill().await;
    }
    writer.abort();
    SClient {
        stdout: stdout.await.unwrap_or_default(),
        stderr: stderr.await.unwrap_or_default(),
        timed_out,
    }
}

/// The PEM certificates in `text`, in order.
pub fn pem_certs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE-----") {
            cur = Some(String::new());
        }
        if let Some(c) = cur.as_mut() {
            c.push_str(line);
            c.push('\n');
        }
        if line.starts_with("-----END CERTIFICATE-----") {
            out.extend(cur.take());
        }
    }
    out
}

/// `control_identity_cert_expiration_timestamp_seconds` in a `/metrics`
/// text (unlabelled), if present.
pub fn cert_expiry(metrics: &str) -> Option<f64> {
    wisp_common::prometheus::value(
        metrics,
        "control_identity_cert_expiration_timestamp_seconds",
    )
}
