//! Tapping over mesh TLS with the tap identity (`--tls-dir`).
//!
//! A proxy's control port (4190) admits a plaintext client only from
//! loopback; any other client must complete mesh TLS presenting a
//! certificate whose DNS SAN is the proxy's `LINKERD2_PROXY_TAP_SVC_NAME`
//! (Linkerd's viz tap service: `tap.linkerd-viz.serviceaccount.identity.
//! linkerd.<trust domain>`). With `--tls-dir DIR` the CLI holds that
//! identity itself: `DIR/tls.crt` (leaf first, then the issuer),
//! `DIR/tls.key` and `DIR/ca.crt`, as `wisp identity issue` writes them.
//!
//! The proxy's side of the handshake, which this client follows:
//! - it reads the ClientHello first and terminates TLS only when the SNI is
//!   exactly its own identity (`LINKERD2_PROXY_IDENTITY_LOCAL_NAME`);
//!   for any other name it closes the connection without an alert, so a
//!   wrong server name shows up here as a handshake cut short;
//! - TLS 1.3 only, ALPN `h2` offered (the proxy lists `h2`), its certificate
//!   chaining to the same trust anchors, client certificates verified
//!   against them.
//!
//! The server name (SNI and the name the proxy's certificate must carry)
//! is the proxy's identity: `--server-id`, else
//! `{serviceAccount}.{namespace}.serviceaccount.identity.linkerd.{trust
//! domain}` from the target's pod (`default` when the pod names no service
//! account). An address target (`HOST:PORT`) has no pod, so with
//! `--tls-dir` it needs `--server-id`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint};
use wisp_identity::config::DEFAULT_CONTROL_PLANE_NS;
use wisp_identity::files::{self, FileError};

use crate::target::ProxyTarget;

/// The client certificate chain in a `--tls-dir` (leaf first).
pub const CERT_FILE: &str = "tls.crt";
/// The client private key in a `--tls-dir` (PKCS#8 or SEC1 PEM).
pub const KEY_FILE: &str = "tls.key";
/// The trust anchors in a `--tls-dir` that proxies' certificates chain to.
pub const CA_FILE: &str = "ca.crt";
/// The service account of a pod that names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The default `--identity-trust-domain`.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// How long the TCP connection and the TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the tap commands reach proxies' control ports (shared by `wisp tap`,
/// `wisp top` and `wisp profile --tap`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TapTlsArgs {
    /// Tap over mutual TLS with the certificate in DIR (tls.crt, tls.key,
    /// ca.crt, as `wisp identity issue` writes them); it must name the
    /// proxies' LINKERD2_PROXY_TAP_SVC_NAME. Needed for proxies on other
    /// hosts (plaintext is accepted from loopback only).
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// With --tls-dir: the identity the proxies must present (default:
    /// derived from each pod's service account and namespace; required for
    /// HOST:PORT targets).
    #[arg(long, value_name = "NAME", requires = "tls_dir")]
    pub server_id: Option<String>,
    /// With --tls-dir: the trust domain of derived proxy identities.
    #[arg(long, value_name = "DOMAIN", default_value = DEFAULT_TRUST_DOMAIN)]
    pub identity_trust_domain: String,
}

/// What went wrong setting up or using tap TLS, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum TapTlsError {
    /// `--tls-dir` is not a directory (the user's input).
    #[error("--tls-dir {}: not a directory (create one with `wisp identity issue --dir IDENTITY_DIR --name TAP_IDENTITY --out DIR`)", .0.display())]
    NoDir(PathBuf),
    /// A file of `--tls-dir` is missing or unusable (the user's files).
    #[error("--tls-dir: bad file")]
    File(#[source] FileError),
    /// The leaf of `tls.crt` names no DNS identity (the user's files).
    #[error("{}: the first certificate has no DNS name (identity) in its subject alternative names", .0.display())]
    NoIdentity(PathBuf),
    /// rustls refused the certificate, key or trust anchors (the user's files).
    #[error("--tls-dir {}: the certificate, key or trust anchors are unusable", dir.display())]
    Config {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// An address target without `--server-id` (the user's command line).
    #[error("target {0} is an address, not a pod, so its identity is unknown: give --server-id (the proxy's LINKERD2_PROXY_IDENTITY_LOCAL_NAME, e.g. SA.NAMESPACE.serviceaccount.identity.linkerd.cluster.local)")]
    NeedServerId(String),
    /// The server identity is not a DNS name (the user's input or the pod's
    /// service account).
    #[error("{0:?} is not a valid proxy identity (a DNS name)")]
    BadServerId(String),
}

/// Loaded `--tls-dir` material and how proxy identities are derived.
#[derive(Debug)]
pub struct TapTls {
    config: Arc<ClientConfig>,
    client_id: String,
    dir: PathBuf,
    server_id: Option<String>,
    trust_domain: String,
}

/// The identity of the proxy of pod `sa`.`ns`:
/// `{sa}.{ns}.serviceaccount.identity.linkerd.{trust_domain}` (`default`
/// when `sa` is `None`).
pub fn proxy_identity(sa: Option<&str>, ns: &str, trust_domain: &str) -> String {
    let sa = sa
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT);
    wisp_identity::workload_identity(sa, ns, DEFAULT_CONTROL_PLANE_NS, trust_domain)
}

/// A proxy identity must be a DNS name, not an IP address: it is sent as
/// SNI, which the proxy compares with its own name.
fn check_identity(id: &str) -> Result<(), TapTlsError> {
    if wisp_identity::names::is_dns_name(id) && id.parse::<std::net::IpAddr>().is_err() {
        Ok(())
    } else {
        Err(TapTlsError::BadServerId(id.to_string()))
    }
}

/// True for a target given as `HOST:PORT` (no pod behind it).
fn is_address_target(t: &ProxyTarget) -> bool {
    // Pod names are DNS labels: never a `:`.
    t.name.contains(':') && t.labels.is_empty() && t.service_account.is_none()
}

/// The first DNS SAN of a certificate.
fn dns_identity(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::DNSName(d) => Some(d.to_string()),
        _ => None,
    })
}

impl TapTls {
    /// Loads `--tls-dir`, if given.
    pub fn load(args: &TapTlsArgs) -> Result<Option<Arc<TapTls>>, TapTlsError> {
        let Some(dir) = &args.tls_dir else {
            return Ok(None);
        };
        if let Some(id) = &args.server_id {
            check_identity(id)?;
        }
        if !dir.is_dir() {
            return Err(TapTlsError::NoDir(dir.clone()));
        }
        let cert_path = dir.join(CERT_FILE);
        let chain = files::read_certs(&cert_path).map_err(TapTlsError::File)?;
        let key = files::read_private_key(&dir.join(KEY_FILE)).map_err(TapTlsError::File)?;
        let anchors = files::read_certs(&dir.join(CA_FILE)).map_err(TapTlsError::File)?;
        let client_id = chain
            .first()
            .and_then(dns_identity)
            .ok_or_else(|| TapTlsError::NoIdentity(cert_path.clone()))?;
        let config_error = |source| TapTlsError::Config {
            dir: dir.clone(),
            source,
        };
        let roots = wisp_identity::tls::root_store(&anchors).map_err(|e| match e {
            wisp_identity::tls::TlsError::TrustAnchor(e)
            | wisp_identity::tls::TlsError::Rustls(e) => config_error(e),
            other => config_error(rustls::Error::General(other.to_string())),
        })?;
        let mut config =
            ClientConfig::builder_with_provider(wisp_identity::tls::mesh_crypto_provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(config_error)?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .map_err(config_error)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Arc::new(TapTls {
            config: Arc::new(config),
            client_id,
            dir: dir.clone(),
            server_id: args.server_id.clone(),
            trust_domain: args.identity_trust_domain.clone(),
        })))
    }

    /// The identity proxy `t` must present: `--server-id`, else derived
    /// from its pod; an address target needs `--server-id`.
    pub fn server_identity(&self, t: &ProxyTarget) -> Result<String, TapTlsError> {
        if let Some(id) = &self.server_id {
            return Ok(id.clone());
        }
        if is_address_target(t) {
            return Err(TapTlsError::NeedServerId(t.name.clone()));
        }
        let id = proxy_identity(
            t.service_account.as_deref(),
            &t.namespace,
            &self.trust_domain,
        );
        check_identity(&id)?;
        Ok(id)
    }

    /// A gRPC channel to `t`'s control port over mesh TLS, expecting the
    /// proxy to be `server_id`. The first connection is made now, so a
    /// failure is reported here, explained.
    pub async fn connect(&self, t: &ProxyTarget, server_id: &str) -> anyhow::Result<Channel> {
        let server = ServerName::try_from(server_id.to_string())
            .map_err(|_| TapTlsError::BadServerId(server_id.to_string()))?;
        let connector = TlsConnector {
            addr: t.control,
            server,
            config: self.config.clone(),
        };
        // The URI is not dialled: the connector knows the address.
        Endpoint::from_shared(format!("http://{}", t.control))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_with_connector(connector)
            .await
            .map_err(|e| self.connect_error(t, server_id, &e))
    }

    /// Explains a failed connection to `t`.
    fn connect_error(
        &self,
        t: &ProxyTarget,
        server_id: &str,
        e: &(dyn std::error::Error + 'static),
    ) -> anyhow::Error {
        let whose = match find_handshake_error(e) {
            Some(h) => h.explain(&self.dir, server_id, &self.client_id),
            None => "is LINKERD2_PROXY_TAP_SVC_NAME set on that proxy?".to_string(),
        };
        anyhow::anyhow!(
            "cannot connect over mTLS to the tap server of {} at {} (expected proxy identity {server_id}): {whose}: {}",
            t.name,
            t.control,
            wisp_common::error::chain(e)
        )
    }

    /// Explains an `UNAUTHENTICATED` answer of proxy `t`.
    pub fn unauthenticated(&self, t: &ProxyTarget, message: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "tap of {} at {} refused ({message}): the proxy does not accept identity {} as its tap client (its LINKERD2_PROXY_TAP_SVC_NAME is another identity, e.g. tap.linkerd-viz.serviceaccount.identity.linkerd.{}?); issue a certificate for that name with `wisp identity issue`",
            t.name,
            t.control,
            self.client_id,
            self.trust_domain.trim_matches('.')
        )
    }
}

/// Why a TLS connection failed (carried inside the transport error).
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    /// TCP failed: nothing listens, or it is unreachable.
    #[error("TCP connect failed")]
    Tcp(#[source] std::io::Error),
    /// The proxy closed the connection during the handshake.
    #[error("the proxy closed the connection during the TLS handshake")]
    Closed(#[source] std::io::Error),
    /// The handshake failed for another reason (certificate, alert).
    #[error("TLS handshake failed")]
    Tls(#[source] std::io::Error),
    /// Connect plus handshake took too long.
    #[error("the TCP connection and TLS handshake took more than {0:?}")]
    Timeout(Duration),
}

impl HandshakeError {
    /// Whose fault it likely is, in words.
    fn explain(&self, dir: &Path, server_id: &str, client_id: &str) -> String {
        let tls = |e: &std::io::Error| {
            e.get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned()
        };
        match self {
            HandshakeError::Tcp(_) => {
                "nothing accepts connections there (is LINKERD2_PROXY_TAP_SVC_NAME set on that proxy, and its control port right?)".into()
            }
            HandshakeError::Closed(_) => format!(
                "the proxy ends handshakes for a name other than its own identity, so it is not {server_id} (check --server-id, the pod's service account and --identity-trust-domain), or it has no identity (no mesh TLS)"
            ),
            HandshakeError::Tls(e) => match tls(e) {
                Some(rustls::Error::InvalidCertificate(c)) => format!(
                    "the proxy's certificate failed verification ({c:?}): it is not {server_id} or not signed by the trust anchors of {} (a mismatch between --tls-dir / --server-id and the proxy)",
                    dir.join(CA_FILE).display()
                ),
                Some(rustls::Error::AlertReceived(a)) => format!(
                    "the proxy refused the handshake ({a:?}): it does not trust the certificate of {client_id} in {} (issued by another trust anchor?)",
                    dir.join(CERT_FILE).display()
                ),
                _ => "TLS handshake failed".into(),
            },
            HandshakeError::Timeout(_) => "the proxy did not answer in time".into(),
        }
    }
}

/// The [`HandshakeError`] in an error's chain.
fn find_handshake_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a HandshakeError> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(h) = e.downcast_ref::<HandshakeError>() {
            return Some(h);
        }
        if let Some(h) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<HandshakeError>())
        {
            return Some(h);
        }
        next = e.source();
    }
    None
}

/// Dials one proxy's control port: TCP, then mesh TLS as `server`.
#[derive(Clone)]
struct TlsConnector {
    addr: SocketAddr,
    server: ServerName<'static>,
    config: Arc<ClientConfig>,
}

impl tonic::codegen::Service<http::Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let connect = async {
                let tcp = TcpStream::connect(this.addr)
                    .await
                    .map_err(HandshakeError::Tcp)?;
                let _ = tcp.set_nodelay(true);
                tokio_rustls::TlsConnector::from(this.config)
                    .connect(this.server, tcp)
                    .await
                    .map_err(|e| {
                        if e.kind() == std::io::ErrorKind::UnexpectedEof {
                            HandshakeError::Closed(e)
                        } else {
                            HandshakeError::Tls(e)
                        }
                    })
            };
            let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                .await
                .map_err(|_| HandshakeError::Timeout(CONNECT_TIMEOUT))??;
            Ok(TokioIo::new(tls))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pod(name: &str, ns: &str, sa: Option<&str>) -> ProxyTarget {
        ProxyTarget {
            name: name.into(),
            namespace: ns.into(),
            admin: "10.0.0.1:4191".parse().unwrap(),
            control: "10.0.0.1:4190".parse().unwrap(),
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            service_account: sa.map(str::to_string),
            pod_ip: Some("10.0.0.1".parse().unwrap()),
        }
    }

    fn tls(server_id: Option<&str>, trust_domain: &str) -> TapTls {
        let provider = wisp_identity::tls::mesh_crypto_provider();
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        TapTls {
            config: Arc::new(config),
            client_id: "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local".into(),
            dir: PathBuf::from("/tls"),
            server_id: server_id.map(str::to_string),
            trust_domain: trust_domain.into(),
        }
    }

    #[test]
    fn derives_proxy_identities() {
        assert_eq!(
            proxy_identity(Some("web"), "emojivoto", "cluster.local"),
            "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(
            proxy_identity(None, "default", "example.org."),
            "default.default.serviceaccount.identity.linkerd.example.org"
        );
        assert_eq!(
            proxy_identity(Some(""), "ns", "cluster.local"),
            "default.ns.serviceaccount.identity.linkerd.cluster.local"
        );
        let t = tls(None, "cluster.local");
        assert_eq!(
            t.server_identity(&pod("web-0", "books", Some("web")))
                .unwrap(),
            "web.books.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(
            t.server_identity(&pod("web-0", "books", None)).unwrap(),
            "default.books.serviceaccount.identity.linkerd.cluster.local"
        );
        let other = tls(None, "prod.example");
        assert_eq!(
            other
                .server_identity(&pod("web-0", "books", Some("web")))
                .unwrap(),
            "web.books.serviceaccount.identity.linkerd.prod.example"
        );
    }

    #[test]
    fn address_targets_need_server_id() {
        let addr = crate::target::address_target(
            "10.0.0.1:4191",
            "10.0.0.1:4191".parse().unwrap(),
            "default",
        );
        let err = tls(None, "cluster.local")
            .server_identity(&addr)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--server-id"), "{err}");
        assert!(err.contains("10.0.0.1:4191"), "{err}");
        let given = tls(
            Some("web.default.serviceaccount.identity.linkerd.cluster.local"),
            "x",
        );
        assert_eq!(
            given.server_identity(&addr).unwrap(),
            "web.default.serviceaccount.identity.linkerd.cluster.local"
        );
        // --server-id overrides a pod's derived identity too.
        assert_eq!(
            given
                .server_identity(&pod("web-0", "books", Some("web")))
                .unwrap(),
            "web.default.serviceaccount.identity.linkerd.cluster.local"
        );
    }

    #[test]
    fn bad_service_account_is_refused() {
        let err = tls(None, "cluster.local")
            .server_identity(&pod("web-0", "books", Some("bad name")))
            .unwrap_err();
        assert!(matches!(err, TapTlsError::BadServerId(_)), "{err}");
        for bad in ["10.0.0.1", "Web.default", "web..default", ""] {
            assert!(check_identity(bad).is_err(), "{bad}");
        }
        let err = TapTls::load(&TapTlsArgs {
            tls_dir: Some(std::env::temp_dir()),
            server_id: Some("10.0.0.1".into()),
            ..TapTlsArgs::default()
        });
        assert!(matches!(err, Err(TapTlsError::BadServerId(_))));
    }

    #[test]
    fn missing_dir_and_files_are_named() {
        let err = TapTls::load(&TapTlsArgs {
            tls_dir: Some("/nonexistent/wisp-tls".into()),
            ..TapTlsArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/wisp-tls"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = TapTls::load(&TapTlsArgs {
            tls_dir: Some(dir.path().into()),
            ..TapTlsArgs::default()
        })
        .unwrap_err();
        let chain = wisp_common::error::chain(&err).to_string();
        assert!(chain.contains("tls.crt"), "{chain}");
        assert!(TapTls::load(&TapTlsArgs::default()).unwrap().is_none());
    }
}
