//! Shared helpers for the identity tests: a fresh identity directory, a
//! running server on 127.0.0.1:0, CSRs, tokens and gRPC clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use linkerd2_proxy_api::identity::{CertifyRequest, CertifyResponse};
use rcgen::{CertificateParams, DnType, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Uri};
use wisp_identity::init::{init, InitOptions};
use wisp_identity::{Ca, Config, Server, TokenKey};

/// A fresh identity directory made by `init` (cluster.local, linkerd).
pub fn init_dir() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    init(&InitOptions {
        out: dir.path().to_path_buf(),
        trust_domain: "cluster.local".into(),
        control_plane_ns: "linkerd".into(),
        force: false,
    })
    .expect("init");
    dir
}

/// A server running in the background.
pub struct Running {
    pub addr: SocketAddr,
    pub ca: Arc<Ca>,
    pub service_name: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), wisp_identity::Error>>,
}

impl Running {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops")
            .expect("server task");
        result.expect("server ran cleanly");
    }
}

/// Starts a server over `dir` on 127.0.0.1:0.
pub async fn start(dir: &Path) -> Running {
    let config = Config::new(dir, "127.0.0.1:0".parse().expect("addr"));
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr().expect("local addr");
    let ca = server.ca();
    let service_name = server.service_name();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        addr,
        ca,
        service_name,
        shutdown: Some(tx),
        task,
    }
}

/// The identity of `sa` in `ns` under cluster.local / linkerd.
pub fn identity(sa: &str, ns: &str) -> String {
    wisp_identity::workload_identity(sa, ns, "linkerd", "cluster.local")
}

/// A DER CSR like the proxy's: P-256, CN = DNS SAN = `identity`.
pub fn csr(identity: &str) -> Vec<u8> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    csr_for(
        identity,
        &[SanType::DnsName(identity.try_into().expect("ia5"))],
        &key,
    )
}

/// A DER CSR with CN `cn` and the given SANs, signed by `key`.
pub fn csr_for(cn: &str, sans: &[SanType], key: &KeyPair) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if !cn.is_empty() {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.subject_alt_names = sans.to_vec();
    params.serialize_request(key).expect("csr").der().to_vec()
}

/// A token for `sa`/`ns` valid for `ttl`, signed with the directory's key.
pub fn token(dir: &Path, sa: &str, ns: &str, ttl: Duration) -> String {
    TokenKey::load(&dir.join("token.key"))
        .expect("token key")
        .sign_for(sa, ns, ttl)
        .expect("sign")
}

/// A request for `sa`/`ns` with a valid token and a matching CSR.
pub fn good_request(dir: &Path, sa: &str, ns: &str) -> CertifyRequest {
    let id = identity(sa, ns);
    CertifyRequest {
        certificate_signing_request: csr(&id),
        token: token(dir, sa, ns, Duration::from_secs(3600)).into_bytes(),
        identity: id,
    }
}

/// A plaintext (h2c) client.
pub async fn plain_client(addr: SocketAddr) -> IdentityClient<Channel> {
    let channel = Endpoint::try_from(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    IdentityClient::new(channel)
}

/// The trust anchors of an identity directory.
pub fn anchors(dir: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(dir.join("ca.crt"))
        .expect("ca.crt")
        .collect::<Result<Vec<_>, _>>()
        .expect("pem")
}

/// A TLS client verifying the server as `server_name` against `anchors`.
pub async fn tls_client(
    addr: SocketAddr,
    anchors: &[CertificateDer<'static>],
    server_name: &str,
) -> Result<IdentityClient<Channel>, tonic::transport::Error> {
    tls_client_with_cert(addr, anchors, server_name, None).await
}

/// Like [`tls_client`], optionally presenting a client certificate.
pub async fn tls_client_with_cert(
    addr: SocketAddr,
    anchors: &[CertificateDer<'static>],
    server_name: &str,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<IdentityClient<Channel>, tonic::transport::Error> {
    let provider = wisp_identity::mesh_crypto_provider();
    let roots = wisp_identity::tls::root_store(anchors).expect("roots");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    let connect = tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        let name = name.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    let channel = Endpoint::try_from(format!("http://{addr}"))
        .expect("endpoint")
        .connect_with_connector(connect)
        .await?;
    Ok(IdentityClient::new(channel))
}

/// Verifies that `resp`'s leaf chains to `anchors` for server name `identity`.
pub fn verify_chain(anchors: &[CertificateDer<'static>], resp: &CertifyResponse, identity: &str) {
    let roots = wisp_identity::tls::root_store(anchors).expect("roots");
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        wisp_identity::mesh_crypto_provider(),
    )
    .build()
    .expect("verifier");
    let intermediates: Vec<CertificateDer<'static>> = resp
        .intermediate_certificates
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    verifier
        .verify_server_cert(
            &CertificateDer::from(resp.leaf_certificate.clone()),
            &intermediates,
            &ServerName::try_from(identity.to_string()).expect("name"),
            &[],
            UnixTime::now(),
        )
        .expect("leaf chains to the trust anchor for its identity");
}

/// True if `openssl` can be run.
pub fn have_openssl() -> bool {
    std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// PEM encoding of one certificate.
pub fn pem_cert(der: &[u8]) -> String {
    wisp_identity::pem::encode("CERTIFICATE", der)
}
