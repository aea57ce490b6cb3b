//! Who may tap a proxy over mesh TLS: a client whose certificate names the
//! tap service (`LINKERD2_PROXY_TAP_SVC_NAME`) gets its events; a client
//! with another mesh identity gets `UNAUTHENTICATED`. (Plaintext from
//! loopback is tested in proxy/tests/tap.rs; plaintext from elsewhere by
//! the proxy's unit tests, since every address here is loopback.)

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use linkerd2_proxy_api::tap::tap_client::TapClient;
use linkerd2_proxy_api::tap::ObserveRequest;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wisp_tests::identity::identity_name;
use wisp_tests::*;

/// Dials the control port with mesh TLS and a client certificate.
#[derive(Clone)]
struct MeshConnector {
    addr: SocketAddr,
    server: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
}

impl tower_service::Service<http::Uri> for MeshConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(this.addr).await?;
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(this.server, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// A client config trusting `ca_pem`, presenting `crt` (+ the issuer) and `key`.
fn client_config(
    ca_pem: &str,
    chain: &[std::path::PathBuf],
    key: &std::path::Path,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let certs: Vec<CertificateDer<'static>> = chain
        .iter()
        .flat_map(|p| {
            CertificateDer::pem_file_iter(p)
                .unwrap()
                .map(Result::unwrap)
        })
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

#[tokio::test]
async fn only_the_tap_identity_may_tap_over_mtls() {
    if !require(
        "only_the_tap_identity_may_tap_over_mtls",
        &[Need::Tool("openssl")],
    ) {
        return;
    }
    let tap_identity = identity_name("tap", "linkerd-viz");
    // The control listener on a free port of every address of the pod.
    let (mesh, port) = Mesh::start_tapped(&tap_identity).await;
    let control = SocketAddr::new(mesh.pods[0].into(), port);
    let ca = mesh.identity.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = ServerName::try_from(identity_name("web", "default")).unwrap();

    let client = |name: &str| {
        let (crt, key) = ca.openssl_leaf(name, dir.path());
        let config = client_config(&ca.ca_pem(), &[crt, ca.issuer_path()], &key);
        let channel = tonic::transport::Endpoint::from_static("http://control.invalid")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(MeshConnector {
                addr: control,
                server: server.clone(),
                config: Arc::new(config),
            });
        TapClient::new(channel)
    };
    let observe = ObserveRequest {
        limit: 1,
        ..Default::default()
    };

    let err = client(&identity_name("intruder", "default"))
        .observe(observe.clone())
        .await
        .expect_err("another identity may not tap");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert_eq!(err.message(), "Unauthorized client");

    let tapped = client(&tap_identity).observe(observe).await;
    assert!(
        tapped.is_ok(),
        "the tap service may tap: {:?}",
        tapped.err()
    );
}
