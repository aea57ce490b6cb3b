//! Identity on Kubernetes against the test API server: Certify with
//! TokenReview-checked tokens, the CA read from the issuer Secret (both key
//! schemes) and trust-roots ConfigMap, and issuer rotation picked up.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use linkerd2_proxy_api::identity::{CertifyRequest, CertifyResponse};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::Code;
use wisp_identity::k8s::{KubeCa, ObjectNames, TokenReviewValidator, AUDIENCE};
use wisp_identity::{Config, Server, Validity};
use wisp_tests::kube_api::KubeApi;

const WAIT: Duration = Duration::from_secs(20);

/// A CA certificate (PEM) and its key (PEM).
struct Pem {
    cert: String,
    key: String,
    der: Vec<u8>,
}

fn ca_params(cn: &str, path_len: u8) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A self-signed root and an issuer made by it.
fn root(cn: &str) -> (Pem, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let params = ca_params(cn, 1);
    let cert = params.self_signed(&key).expect("root");
    let pem = Pem {
        cert: wisp_identity::pem::encode("CERTIFICATE", cert.der()),
        key: wisp_identity::pem::encode("PRIVATE KEY", &key.serialize_der()),
        der: cert.der().to_vec(),
    };
    (pem, Issuer::new(params, key))
}

fn issuer(cn: &str, root: &Issuer<'static, KeyPair>) -> Pem {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = ca_params(cn, 0).signed_by(&key, root).expect("issuer");
    Pem {
        cert: wisp_identity::pem::encode("CERTIFICATE", cert.der()),
        key: wisp_identity::pem::encode("PRIVATE KEY", &key.serialize_der()),
        der: cert.der().to_vec(),
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The issuer Secret in `tls.crt`/`tls.key` (true) or `crt.pem`/`key.pem` form.
fn issuer_secret(pem: &Pem, tls_scheme: bool) -> Value {
    let (c, k, kind) = if tls_scheme {
        ("tls.crt", "tls.key", "kubernetes.io/tls")
    } else {
        ("crt.pem", "key.pem", "Opaque")
    };
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "linkerd-identity-issuer", "namespace": "linkerd"},
        "type": kind,
        "data": {c: b64(&pem.cert), k: b64(&pem.key)},
    })
}

fn trust_roots(pem: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "linkerd-identity-trust-roots", "namespace": "linkerd"},
        "data": {"ca-bundle.crt": pem},
    })
}

/// Tokens: `good-<ns>-<sa>` authenticated for our audience, `other-aud` for
/// another audience, `error` with a review error, anything else not
/// authenticated. Records the audiences each review asked for.
fn reviewer(api: &KubeApi) -> Arc<Mutex<Vec<Value>>> {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    api.set_token_reviewer(move |spec: &Value| {
        seen.lock().unwrap().push(spec["audiences"].clone());
        let token = spec["token"].as_str().unwrap_or_default();
        if let Some(rest) = token.strip_prefix("good-") {
            let (ns, sa) = rest.split_once('-').expect("good-<ns>-<sa>");
            json!({"authenticated": true,
                   "user": {"username": format!("system:serviceaccount:{ns}:{sa}")},
                   "audiences": spec["audiences"]})
        } else if token == "other-aud" {
            json!({"authenticated": true,
                   "user": {"username": "system:serviceaccount:shop:web"},
                   "audiences": ["https://kubernetes.default.svc"]})
        } else if token == "error" {
            json!({"authenticated": false, "error": "token is malformed"})
        } else {
            json!({"authenticated": false})
        }
    });
    asked
}

fn namespace(api: &KubeApi) {
    api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "linkerd"}}));
}

struct Running {
    addr: std::net::SocketAddr,
    kube_ca: KubeCa,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(api: &KubeApi) -> Running {
    let client = api.client().await;
    let kube_ca = KubeCa::spawn(
        client.clone(),
        ObjectNames::linkerd("linkerd"),
        Validity::default(),
    );
    let ca = tokio::time::timeout(WAIT, kube_ca.ready())
        .await
        .unwrap_or_else(|_| panic!("CA never ready: {:?}", kube_ca.stats().last_error()));
    let config = Config::new("", "127.0.0.1:0".parse().unwrap());
    let server = Server::bind_with_ca(config, ca, Arc::new(TokenReviewValidator::new(client)))
        .await
        .expect("bind");
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        addr,
        kube_ca,
        stop: Some(tx),
    }
}

/// A cluster with a root, an issuer Secret (`tls_scheme`: `tls.crt` /
/// `tls.key`, else Linkerd's `crt.pem` / `key.pem`), the trust roots and
/// TokenReview answered, and the identity service started on it.
struct Cluster {
    api: KubeApi,
    root_pem: Pem,
    root_issuer: Issuer<'static, KeyPair>,
    issuer_pem: Pem,
    asked: Arc<Mutex<Vec<Value>>>,
    running: Running,
}

async fn cluster(tls_scheme: bool) -> Cluster {
    let api = KubeApi::start().await;
    namespace(&api);
    let (root_pem, root_issuer) = root("root.linkerd.cluster.local");
    let issuer_pem = issuer("identity.linkerd.cluster.local", &root_issuer);
    api.apply(issuer_secret(&issuer_pem, tls_scheme));
    api.apply(trust_roots(&root_pem.cert));
    let asked = reviewer(&api);
    let running = start(&api).await;
    Cluster {
        api,
        root_pem,
        root_issuer,
        issuer_pem,
        asked,
        running,
    }
}

/// Polls Certify for `web.shop` until the certificate comes from the
/// issuer `want`; that response.
async fn issued_by(client: &IdentityClient<Channel>, want: &Pem, what: &str) -> CertifyResponse {
    wisp_tests::wait_until(WAIT, || {
        let mut client = client.clone();
        let want = want.der.clone();
        async move {
            let resp = client
                .certify(request("web", "shop", "good-shop-web"))
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            if resp.intermediate_certificates == vec![want] {
                Ok(resp)
            } else {
                Err("still issued by another issuer".to_string())
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The certificate chain the identity service presents over TLS.
async fn served_chain(
    addr: std::net::SocketAddr,
    anchors: &[CertificateDer<'static>],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let roots = wisp_identity::tls::root_store(anchors).map_err(|e| e.to_string())?;
    let mut config =
        rustls::ClientConfig::builder_with_provider(wisp_identity::mesh_crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from(
        "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
    )
    .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(tls
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect())
}

fn request(sa: &str, ns: &str, token: &str) -> CertifyRequest {
    let id = common::identity(sa, ns);
    CertifyRequest {
        certificate_signing_request: common::csr(&id),
        token: token.as_bytes().to_vec(),
        identity: id,
    }
}

#[tokio::test]
async fn certify_with_token_review() {
    let Cluster {
        api,
        root_pem,
        issuer_pem,
        asked,
        running,
        ..
    } = cluster(true).await;
    let mut client = common::plain_client(running.addr).await;

    let good = request("web", "shop", "good-shop-web");
    let id = good.identity.clone();
    let resp = client.certify(good).await.expect("certify").into_inner();
    assert_eq!(resp.intermediate_certificates, vec![issuer_pem.der.clone()]);
    common::verify_chain(&[CertificateDer::from(root_pem.der.clone())], &resp, &id);
    assert_eq!(asked.lock().unwrap()[0], json!([AUDIENCE]));

    // A valid token of another ServiceAccount: the identities differ.
    let err = client
        .certify(request("web", "shop", "good-shop-admin"))
        .await
        .expect_err("wrong sa");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    for (token, code) in [
        ("unknown", Code::FailedPrecondition),
        ("other-aud", Code::FailedPrecondition),
        ("error", Code::InvalidArgument),
    ] {
        let err = client
            .certify(request("web", "shop", token))
            .await
            .expect_err(token);
        assert_eq!(err.code(), code, "{token}: {err:?}");
    }
    let err = client
        .certify(request("web", "shop", "other-aud"))
        .await
        .expect_err("audience");
    assert!(err.message().contains(AUDIENCE), "{}", err.message());

    // The API server failing: Unavailable, so the proxy retries.
    api.fail_next(1, 500);
    let err = client
        .certify(request("web", "shop", "good-shop-web"))
        .await
        .expect_err("api down");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    client
        .certify(request("web", "shop", "good-shop-web"))
        .await
        .expect("works again");
    assert_eq!(running.kube_ca.stats().loads.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn issuer_rotation_is_picked_up_in_both_secret_schemes() {
    // Linkerd's own scheme first.
    let Cluster {
        api,
        root_pem,
        root_issuer,
        issuer_pem: first,
        running,
        ..
    } = cluster(false).await;
    let mut client = common::plain_client(running.addr).await;
    let anchors = [CertificateDer::from(root_pem.der.clone())];

    let resp = client
        .certify(request("web", "shop", "good-shop-web"))
        .await
        .expect("certify")
        .into_inner();
    assert_eq!(resp.intermediate_certificates, vec![first.der.clone()]);

    // Rotate to a new issuer under the same root, as kubernetes.io/tls.
    let second = issuer("identity.linkerd.cluster.local", &root_issuer);
    api.apply(issuer_secret(&second, true));
    let resp = issued_by(&client, &second, "the new issuer is used").await;
    common::verify_chain(&anchors, &resp, &common::identity("web", "shop"));
    assert_eq!(running.kube_ca.stats().loads.load(Ordering::Relaxed), 2);
    // The service re-issued its own serving certificate from the new issuer.
    wisp_tests::wait_until(WAIT, || {
        let want = second.der.clone();
        let anchors = anchors.clone();
        async move {
            let chain = served_chain(running.addr, &anchors).await?;
            if chain.get(1).map(|c| c.to_vec()) == Some(want) {
                Ok(())
            } else {
                Err("still serving the old chain".to_string())
            }
        }
    })
    .await
    .expect("own certificate renewed");

    // An issuer from another root is refused; the current one stays.
    let (_, stranger_root) = root("someone-else");
    let stranger = issuer("identity.linkerd.cluster.local", &stranger_root);
    api.apply(issuer_secret(&stranger, true));
    let stats = running.kube_ca.stats();
    wisp_tests::wait_until(WAIT, || {
        let stats = stats.clone();
        async move {
            if stats.rejected.load(Ordering::Relaxed) >= 1 {
                Ok(())
            } else {
                Err("not rejected yet".to_string())
            }
        }
    })
    .await
    .expect("the bad issuer is rejected");
    let error = stats.last_error().expect("reason kept");
    assert!(error.contains("does not chain"), "{error}");
    let resp = client
        .certify(request("web", "shop", "good-shop-web"))
        .await
        .expect("still issues")
        .into_inner();
    assert_eq!(resp.intermediate_certificates, vec![second.der.clone()]);

    // A missing key is refused with a reason naming the Secret.
    api.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "linkerd-identity-issuer", "namespace": "linkerd"},
        "data": {"tls.crt": b64(&second.cert)},
    }));
    wisp_tests::wait_until(WAIT, || {
        let stats = stats.clone();
        async move {
            match stats.last_error() {
                Some(e) if e.contains("linkerd/linkerd-identity-issuer") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
    .expect("the incomplete Secret is rejected");
}

#[tokio::test]
async fn waits_for_the_objects_to_appear() {
    let api = KubeApi::start().await;
    namespace(&api);
    let client = api.client().await;
    let kube_ca = KubeCa::spawn(client, ObjectNames::linkerd("linkerd"), Validity::default());
    let stats = kube_ca.stats();
    wisp_tests::wait_until(WAIT, || {
        let stats = stats.clone();
        async move {
            match stats.last_error() {
                Some(e) if e.contains("not found") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
    .expect("says what is missing");
    assert!(kube_ca.current().is_none());
    let (root_pem, root_issuer) = root("root");
    let pem = issuer("issuer", &root_issuer);
    api.apply(trust_roots(&root_pem.cert));
    api.apply(issuer_secret(&pem, true));
    let ca = tokio::time::timeout(WAIT, kube_ca.ready())
        .await
        .expect("ready");
    assert_eq!(ca.issuer_cert().as_ref(), pem.der.as_slice());
}

#[tokio::test]
async fn rotation_survives_cut_watches_and_compaction() {
    let Cluster {
        api,
        root_issuer,
        running,
        ..
    } = cluster(true).await;
    api.wait_for_watches(2, WAIT).await;

    // The API server goes away; the Secret changes meanwhile and the
    // history is forgotten: the watches resume with 410 Gone and re-list.
    api.stop().await;
    let second = issuer("identity.linkerd.cluster.local", &root_issuer);
    api.apply(issuer_secret(&second, false));
    api.compact();
    api.listen().await;
    let client = common::plain_client(running.addr).await;
    issued_by(
        &client,
        &second,
        "the new issuer is used after the watches resumed",
    )
    .await;
    let stats = running.kube_ca.stats();
    assert!(
        stats.watch_restarts.load(Ordering::Relaxed) + stats.watch_errors.load(Ordering::Relaxed)
            >= 1,
        "the cut was noticed"
    );
    assert_eq!(stats.loads.load(Ordering::Relaxed), 2);
}
