//! The demo's identity (mTLS) setup: a fresh CA in the work dir, a token
//! file per service account, the identity service's command line, and the
//! environment that points each proxy at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use wisp_identity::init::{init, InitOptions};
use wisp_identity::{files, TokenKey};

use super::topology::{self, Workload, CONTROL_PLANE_NS, NAMESPACE, TRUST_DOMAIN};

/// How long the demo's workload tokens are valid: a year, like `wisp
/// identity token`, so proxies can still renew in a demo left running.
const TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Identity material written for one demo run.
pub struct Material {
    /// The identity directory (`ca.crt`, `issuer.crt`, `issuer.key`, `token.key`).
    pub dir: PathBuf,
    /// The trust anchors, PEM (the proxies' `..._TRUST_ANCHORS`).
    pub trust_anchors_pem: String,
    /// Where the token files are (`<sa>.token`).
    tokens: PathBuf,
}

impl Material {
    /// Creates a trust anchor, issuer and token key in `dir` (as `wisp
    /// identity init` does) and signs a token into `tokens/<sa>.token` for
    /// every service account of the demo.
    pub fn create(dir: &Path, tokens: &Path) -> anyhow::Result<Self> {
        init(&InitOptions {
            out: dir.to_path_buf(),
            trust_domain: TRUST_DOMAIN.into(),
            control_plane_ns: CONTROL_PLANE_NS.into(),
            force: false,
        })
        .context("cannot create the demo's identity material")?;
        let key = TokenKey::load(&dir.join(files::TOKEN_KEY))?;
        std::fs::create_dir_all(tokens)
            .with_context(|| format!("cannot create {}", tokens.display()))?;
        let material = Material {
            dir: dir.to_path_buf(),
            trust_anchors_pem: String::new(),
            tokens: tokens.to_path_buf(),
        };
        for sa in topology::service_accounts() {
            let token = key
                .sign_for(sa, NAMESPACE, TOKEN_TTL)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("cannot sign a token for service account {sa}"))?;
            let path = material.token_file(sa);
            std::fs::write(&path, format!("{token}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let anchors = material.trust_anchors();
        let trust_anchors_pem = std::fs::read_to_string(&anchors)
            .with_context(|| format!("cannot read {}", anchors.display()))?;
        Ok(Material {
            trust_anchors_pem,
            ..material
        })
    }

    /// `DIR/ca.crt`.
    pub fn trust_anchors(&self) -> PathBuf {
        self.dir.join(files::TRUST_ANCHORS)
    }

    /// The issuer's common name, as `init` writes it.
    pub fn issuer_cn(&self) -> String {
        wisp_identity::names::issuer_cn(CONTROL_PLANE_NS, TRUST_DOMAIN)
    }

    /// The token file of service account `sa`.
    pub fn token_file(&self, sa: &str) -> PathBuf {
        self.tokens.join(format!("{sa}.token"))
    }

    /// `wisp identity --dir DIR --addr ADDR`, run by the `wisp` at `wisp`.
    pub fn serve_command(&self, wisp: &Path, addr: SocketAddr) -> Command {
        let mut cmd = Command::new(wisp);
        cmd.arg("identity")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--trust-domain")
            .arg(TRUST_DOMAIN)
            .arg("--control-plane-ns")
            .arg(CONTROL_PLANE_NS);
        cmd
    }

    /// Sets the identity variables of `w`'s proxy: certified as its service
    /// account by the identity service at `svc` (loopback, so plaintext, as
    /// upstream proxies talk to a local control plane).
    pub fn proxy_env(&self, cmd: &mut Command, w: Workload, svc: SocketAddr) {
        cmd.env(
            "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
            &self.trust_anchors_pem,
        )
        .env(
            "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
            self.token_file(w.service_account),
        )
        .env("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", w.identity())
        .env("LINKERD2_PROXY_IDENTITY_SVC_ADDR", svc.to_string())
        // Certify failures are logged at info; show them in the proxy's log.
        .env(
            "LINKERD2_PROXY_LOG",
            "warn,wisp_proxy::control::identity=info",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_ca_and_a_valid_token_per_service_account() -> anyhow::Result<()> {
        let base =
            std::env::temp_dir().join(format!("wisp-demo-identity-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let material = Material::create(&base.join("identity"), &base.join("tokens"))?;
        assert!(material.trust_anchors_pem.contains("BEGIN CERTIFICATE"));
        assert_eq!(
            material.trust_anchors(),
            base.join("identity").join("ca.crt")
        );
        let key = TokenKey::load(&base.join("identity").join(files::TOKEN_KEY))?;
        for sa in ["web", "client"] {
            let token = std::fs::read(material.token_file(sa))?;
            let account = key.verify(&token)?;
            assert_eq!(
                (account.name.as_str(), account.namespace.as_str()),
                (sa, "default")
            );
        }
        std::fs::remove_dir_all(&base)?;
        Ok(())
    }
}
