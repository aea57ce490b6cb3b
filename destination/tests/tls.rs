//! The destination service serves mesh TLS (with its own identity, issued by
//! the CA) and plaintext on the same port.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use linkerd2_proxy_api::destination::{
    destination_client::DestinationClient, update, GetDestination,
};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};
use wisp_destination::{Config, Server, SourceSpec};
use wisp_identity::init::{init, InitOptions};
use wisp_identity::{Ca, OwnIdentity, Validity};

mod common;

const NAME: &str = "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local";

async fn tls_channel(
    addr: SocketAddr,
    anchors: &[CertificateDer<'static>],
    name: &str,
) -> Result<Channel, tonic::transport::Error> {
    let roots = wisp_identity::tls::root_store(anchors).unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(wisp_identity::mesh_crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(name.to_string()).unwrap();
    let connect = tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        let name = name.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Endpoint::try_from(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect_with_connector(connect)
        .await
}

async fn first_update(channel: Channel) -> update::Update {
    let mut client = DestinationClient::new(channel);
    let req = GetDestination {
        scheme: String::new(),
        path: "web.default.svc.cluster.local:80".into(),
        context_token: String::new(),
    };
    let mut stream = client.get(req).await.unwrap().into_inner();
    let msg = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    msg.update.unwrap()
}

#[tokio::test]
async fn serves_tls_with_its_identity_and_plaintext_on_one_port() {
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(manifests.path().join("web.yaml"), common::WEB).unwrap();
    let id_dir = tempfile::tempdir().unwrap();
    init(&InitOptions {
        out: id_dir.path().to_path_buf(),
        trust_domain: "cluster.local".into(),
        control_plane_ns: "linkerd".into(),
        force: false,
    })
    .unwrap();
    let ca = Arc::new(Ca::load_dir(id_dir.path(), Validity::default()).unwrap());
    let anchors = ca.trust_anchors().to_vec();
    let own = OwnIdentity::issue(ca, NAME.to_string()).unwrap();
    let config = Config::new(
        SourceSpec::Dir(manifests.path().to_path_buf()),
        "127.0.0.1:0".parse().unwrap(),
    );
    let server = Server::bind(config)
        .await
        .unwrap()
        .with_tls(own.server_config().unwrap());
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    // Over TLS, verified as the destination service's identity.
    let tls = tls_channel(addr, &anchors, NAME).await.unwrap();
    assert!(matches!(first_update(tls).await, update::Update::Add(_)));
    // Plaintext on the same port (what loopback proxies do).
    let plain = Endpoint::try_from(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(matches!(first_update(plain).await, update::Update::Add(_)));
    // A client expecting another identity refuses the server.
    let wrong = tls_channel(
        addr,
        &anchors,
        "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
    )
    .await;
    assert!(
        wrong.is_err(),
        "a client expecting another name must fail the handshake"
    );

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
