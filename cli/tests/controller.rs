//! `wisp controller` and `wisp identity --source kube` as real processes
//! against the Kubernetes API test server (KUBECONFIG pointing at it):
//! readiness, Certify with TokenReview-checked tokens, the destination's
//! mesh TLS identity, `/metrics`, and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use linkerd2_proxy_api::identity::CertifyRequest;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use wisp_tests::kube_api::KubeApi;
use wisp_tests::{http_get, prometheus, wait_until, Net, Process};

/// Debug builds start slowly on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(90);

fn pem(label: &str, der: &[u8]) -> String {
    wisp_identity::pem::encode(label, der)
}

fn ca_params(cn: &str, path_len: u8) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A test cluster: the API server with the issuer Secret, the trust-roots
/// ConfigMap, and a TokenReview answer for tokens `good-<ns>-<sa>`.
struct Cluster {
    api: KubeApi,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    root_der: Vec<u8>,
    /// The issuer Secret (applied unless the cluster was made without it).
    issuer: Value,
}

async fn cluster(with_issuer: bool) -> Cluster {
    let api = KubeApi::start().await;
    api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "linkerd"}}));
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = ca_params("root.linkerd.cluster.local", 1);
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer = ca_params("identity.linkerd.cluster.local", 0)
        .signed_by(&issuer_key, &root_issuer)
        .unwrap();
    api.apply(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "linkerd-identity-trust-roots", "namespace": "linkerd"},
        "data": {"ca-bundle.crt": pem("CERTIFICATE", root.der())},
    }));
    let secret = issuer_secret(
        &pem("CERTIFICATE", issuer.der()),
        &pem("PRIVATE KEY", &issuer_key.serialize_der()),
    );
    if with_issuer {
        api.apply(secret.clone());
    }
    api.set_token_reviewer(|spec: &Value| {
        let token = spec["token"].as_str().unwrap_or_default();
        match token.strip_prefix("good-").and_then(|r| r.split_once('-')) {
            Some((ns, sa)) => json!({"authenticated": true,
                "user": {"username": format!("system:serviceaccount:{ns}:{sa}")},
                "audiences": spec["audiences"]}),
            None => json!({"authenticated": false}),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig);
    Cluster {
        api,
        _dir: dir,
        kubeconfig,
        root_der: root.der().to_vec(),
        issuer: secret,
    }
}

fn issuer_secret(cert: &str, key: &str) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "linkerd-identity-issuer", "namespace": "linkerd"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(cert), "tls.key": b64(key)},
    })
}

fn wisp(kubeconfig: &Path, args: &[String]) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("WISP_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("WISP_CONTROL_PLANE_NS");
    Process::spawn("wisp", cmd)
}

async fn wait_ready(process: &mut Process, admin: SocketAddr) {
    let result = wait_until(WAIT, || {
        let exited = process.exited();
        async move {
            if let Some(status) = exited {
                return Err(format!("exited with {status}"));
            }
            match http_get(admin, "/ready").await {
                Ok((status, _)) if status.is_success() => Ok(()),
                Ok((status, body)) => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    if let Err(e) = result {
        panic!("not ready: {e}\n{}", process.output());
    }
}

async fn metrics(admin: SocketAddr) -> String {
    let (status, body) = http_get(admin, "/metrics").await.expect("metrics");
    assert!(status.is_success());
    String::from_utf8(body.to_vec()).expect("utf-8")
}

fn csr(identity: &str) -> Vec<u8> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, identity);
    params.subject_alt_names = vec![SanType::DnsName(identity.try_into().unwrap())];
    params.serialize_request(&key).unwrap().der().to_vec()
}

async fn certify(
    addr: SocketAddr,
    sa: &str,
    ns: &str,
    token: &str,
) -> Result<Vec<u8>, tonic::Status> {
    let identity = format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local");
    let channel = tonic::transport::Endpoint::try_from(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to identity");
    let resp = IdentityClient::new(channel)
        .certify(CertifyRequest {
            certificate_signing_request: csr(&identity),
            token: token.as_bytes().to_vec(),
            identity,
        })
        .await?;
    Ok(resp.into_inner().leaf_certificate)
}

/// A TLS 1.3 handshake with `addr`, verifying `name` against `root`.
async fn tls_handshake(addr: SocketAddr, root: &[u8], name: &str) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root.to_vec())).unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(wisp_identity::mesh_crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

#[tokio::test]
async fn identity_source_kube_serves_certify() {
    let cluster = cluster(true).await;
    let net = Net::new();
    let (addr, admin) = (net.addr(2, 8080), net.addr(2, 9990));
    let mut process = wisp(
        &cluster.kubeconfig,
        &[
            s("identity"),
            s("--source"),
            s("kube"),
            s("--addr"),
            s(addr),
            s("--admin-addr"),
            s(admin),
        ],
    );
    wait_ready(&mut process, admin).await;

    certify(addr, "web", "shop", "good-shop-web")
        .await
        .expect("certify");
    let err = certify(addr, "web", "shop", "bad")
        .await
        .expect_err("unauthenticated");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    tls_handshake(
        addr,
        &cluster.root_der,
        "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
    )
    .await
    .expect("identity serves its own name");

    let text = metrics(admin).await;
    // The service's own certificate and the workload's.
    assert!(
        prometheus::sum(&text, "wisp_identity_certificates_issued_total", &[]) >= 2.0,
        "{text}"
    );
    assert_eq!(
        prometheus::sum(&text, "wisp_controller_role_ready", &[("role", "identity")]),
        1.0
    );
    assert_eq!(
        prometheus::sum(
            &text,
            "wisp_controller_role_ready",
            &[("role", "destination")]
        ),
        0.0,
        "only the identity role runs"
    );

    process.stop_cleanly(Duration::from_secs(20)).await;
}

#[tokio::test]
async fn controller_runs_every_role_and_stops_on_sigterm() {
    let cluster = cluster(true).await;
    let (tls_dir, _) = injector_tls();
    let net = Net::new();
    let (dst, id, inj, admin) = (
        net.addr(2, 8086),
        net.addr(2, 8080),
        net.addr(2, 8443),
        net.addr(2, 9990),
    );
    let mut process = wisp(
        &cluster.kubeconfig,
        &[
            s("controller"),
            s("--destination-addr"),
            s(dst),
            s("--identity-addr"),
            s(id),
            s("--injector-addr"),
            s(inj),
            s("--admin-addr"),
            s(admin),
            s("--injector-tls-dir"),
            s(tls_dir.path().display()),
        ],
    );
    wisp_tests::wait_for_port(admin, WAIT).await;
    let (status, _) = http_get(admin, "/live").await.unwrap_or_else(|e| {
        panic!("live: {e}\n{}", process.output());
    });
    assert!(status.is_success());
    wait_ready(&mut process, admin).await;

    certify(id, "web", "shop", "good-shop-web")
        .await
        .expect("certify");
    tls_handshake(
        dst,
        &cluster.root_der,
        "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
    )
    .await
    .expect("destination serves mesh TLS as linkerd-destination");

    let text = metrics(admin).await;
    for role in ["destination", "identity", "injector"] {
        assert_eq!(
            prometheus::sum(&text, "wisp_controller_role_ready", &[("role", role)]),
            1.0,
            "{role}: {text}"
        );
    }
    // Two own certificates (destination, identity) and the workload's.
    assert!(prometheus::sum(&text, "wisp_identity_certificates_issued_total", &[]) >= 3.0);
    assert_eq!(
        prometheus::sum(
            &text,
            "wisp_identity_issuer_updates_total",
            &[("result", "loaded")]
        ),
        1.0
    );
    assert!(prometheus::value(&text, "wisp_identity_issuer_expiry_timestamp_seconds").is_some());

    process.stop_cleanly(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn controller_is_not_ready_until_the_issuer_exists() {
    let cluster = cluster(false).await;
    let net = Net::new();
    let (id, admin) = (net.addr(2, 8080), net.addr(2, 9990));
    let mut process = wisp(
        &cluster.kubeconfig,
        &[
            s("controller"),
            s("--identity-addr"),
            s(id),
            s("--admin-addr"),
            s(admin),
            s("--disable-injector"),
            s("--disable-destination"),
        ],
    );
    let reason = wait_until(WAIT, || async move {
        match http_get(admin, "/ready").await {
            Ok((status, body)) if status.as_u16() == 503 => {
                let body = String::from_utf8_lossy(&body).into_owned();
                if body.contains("not found") {
                    Ok(body)
                } else {
                    Err(body)
                }
            }
            Ok((status, _)) => Err(status.to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", process.output()));
    assert!(reason.contains("identity"), "{reason}");
    assert!(reason.contains("linkerd-identity-issuer"), "{reason}");

    assert!(http_get(admin, "/live").await.expect("live").0.is_success());

    // Once the Secret appears, the role becomes ready by itself.
    cluster.api.apply(cluster.issuer.clone());
    wait_ready(&mut process, admin).await;
    certify(id, "web", "shop", "good-shop-web")
        .await
        .expect("certify");
    process.stop_cleanly(Duration::from_secs(20)).await;
}

/// A webhook serving certificate for the injector Service, in a directory
/// as the Secret is mounted; returns (dir, CA DER).
fn injector_tls() -> (tempfile::TempDir, Vec<u8>) {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let ca_params = ca_params("webhook-ca", 0);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let ca_issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::DnsName(
        "linkerd-proxy-injector.linkerd.svc".try_into().unwrap(),
    )];
    let cert = params.signed_by(&key, &ca_issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), pem("CERTIFICATE", cert.der())).unwrap();
    std::fs::write(
        dir.path().join("tls.key"),
        pem("PRIVATE KEY", &key.serialize_der()),
    )
    .unwrap();
    (dir, ca.der().to_vec())
}

/// POSTs an AdmissionReview for a pod in `ns` to the webhook over HTTPS.
async fn admit(addr: SocketAddr, ca: &[u8], ns: &str, uid: &str) -> Value {
    use http_body_util::{BodyExt, Full};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.to_vec())).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            ServerName::try_from("linkerd-proxy-injector.linkerd.svc").unwrap(),
            tcp,
        )
        .await
        .expect("TLS with the webhook certificate");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("http1");
    tokio::spawn(conn);
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": ns, "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "web-1", "namespace": ns},
                       "spec": {"containers": [{"name": "app", "image": "web"}]}},
        },
    });
    let request = http::Request::post("/")
        .header("content-type", "application/json")
        .header("host", "linkerd-proxy-injector.linkerd.svc")
        .body(Full::new(bytes::Bytes::from(review.to_string())))
        .unwrap();
    let response = sender.send_request(request).await.expect("response");
    assert!(response.status().is_success(), "{:?}", response.status());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).expect("AdmissionReview JSON")
}

#[tokio::test]
async fn controller_injector_webhook_injects_and_counts() {
    let cluster = cluster(true).await;
    cluster
        .api
        .apply(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop", "annotations": {"linkerd.io/inject": "enabled"}}}));
    cluster
        .api
        .apply(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "plain"}}));
    let (tls_dir, webhook_ca) = injector_tls();
    let net = Net::new();
    let (inj, admin) = (net.addr(2, 8443), net.addr(2, 9990));
    let mut process = wisp(
        &cluster.kubeconfig,
        &[
            s("controller"),
            s("--disable-destination"),
            s("--disable-identity"),
            s("--injector-addr"),
            s(inj),
            s("--admin-addr"),
            s(admin),
            s("--injector-tls-dir"),
            s(tls_dir.path().display()),
            s("--injector-config"),
            s(tls_dir.path().join("no-inject.yaml").display()),
        ],
    );
    wait_ready(&mut process, admin).await;

    let answer = admit(inj, &webhook_ca, "shop", "u-1").await;
    assert_eq!(answer["response"]["uid"], json!("u-1"));
    assert_eq!(answer["response"]["allowed"], json!(true), "{answer}");
    let patch = answer["response"]["patch"].as_str().expect("a patch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .unwrap();
    let patch = String::from_utf8(patch).unwrap();
    assert!(patch.contains("linkerd-proxy"), "{patch}");
    // The trust anchors came from the ConfigMap.
    assert!(
        patch.contains("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"),
        "{patch}"
    );
    assert!(patch.contains("BEGIN CERTIFICATE"), "{patch}");

    let answer = admit(inj, &webhook_ca, "plain", "u-2").await;
    assert_eq!(answer["response"]["allowed"], json!(true));
    assert!(
        answer["response"].get("patch").is_none_or(Value::is_null),
        "{answer}"
    );

    let text = metrics(admin).await;
    let count = |result: &str| {
        prometheus::sum(
            &text,
            "wisp_injector_webhook_requests_total",
            &[("result", result)],
        )
    };
    assert_eq!((count("injected"), count("skipped")), (1.0, 1.0), "{text}");
    assert_eq!(
        prometheus::sum(&text, "wisp_controller_role_ready", &[("role", "injector")]),
        1.0
    );
    process.stop_cleanly(Duration::from_secs(20)).await;
}
