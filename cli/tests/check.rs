//! `wisp check` as a real process against the Kubernetes API test server
//! populated as an installed control plane: everything passes (exit 0);
//! an issuer expiring soon warns; missing CRDs fail (exit 1); `-o json`
//! parses; `--pre` checks RBAC with SelfSubjectAccessReviews.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256,
};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use wisp_tests::kube_api::KubeApi;
use wisp_tests::Net;

fn pem(label: &str, der: &[u8]) -> String {
    wisp_identity::pem::encode(label, der)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn ca_params(cn: &str, path_len: u8, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(days);
    params
}

/// An installed control plane in the test API server.
struct Installed {
    api: KubeApi,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    _webhook: tokio::task::JoinHandle<()>,
}

/// Options of [`install`].
struct Options {
    issuer_days: i64,
    crds: bool,
}

async fn install(options: Options) -> Installed {
    let api = KubeApi::start().await;
    let ns = "linkerd";
    api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    if options.crds {
        for (group, plural, kind) in [
            ("linkerd.io", "serviceprofiles", "ServiceProfile"),
            ("split.smi-spec.io", "trafficsplits", "TrafficSplit"),
        ] {
            api.apply(json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.{group}")},
                "spec": {"group": group, "scope": "Namespaced",
                         "names": {"plural": plural, "kind": kind},
                         "versions": [{"name": "v1alpha2", "served": true, "storage": true,
                                       "schema": {"openAPIV3Schema": {"type": "object"}}}]},
                "status": {"conditions": [{"type": "Established", "status": "True"}]},
            }));
        }
    }
    // Identity: a 10-year root and an issuer.
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = ca_params("root.linkerd.cluster.local", 1, 3650);
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer = ca_params("identity.linkerd.cluster.local", 0, options.issuer_days)
        .signed_by(&issuer_key, &root_issuer)
        .unwrap();
    api.apply(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "linkerd-identity-trust-roots", "namespace": ns},
        "data": {"ca-bundle.crt": pem("CERTIFICATE", root.der())},
    }));
    api.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "linkerd-identity-issuer", "namespace": ns},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(&pem("CERTIFICATE", issuer.der())),
                 "tls.key": b64(&pem("PRIVATE KEY", &issuer_key.serialize_der()))},
    }));
    // The injector: a webhook CA, a serving certificate, the webhook
    // configuration and a Service whose ClusterIP is a loopback address
    // where this test serves TLS with that certificate.
    let webhook_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let webhook_params = ca_params("webhook.linkerd.cluster.local", 0, 3650);
    let webhook_ca = webhook_params.self_signed(&webhook_key).unwrap();
    let webhook_issuer = Issuer::new(webhook_params, webhook_key);
    let serving_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut serving_params = CertificateParams::default();
    serving_params.subject_alt_names = vec![SanType::DnsName(
        "linkerd-proxy-injector.linkerd.svc".try_into().unwrap(),
    )];
    serving_params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    serving_params.not_after = OffsetDateTime::now_utc() + Duration::days(365);
    let serving = serving_params
        .signed_by(&serving_key, &webhook_issuer)
        .unwrap();
    api.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "wisp-proxy-injector-k8s-tls", "namespace": ns},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(&pem("CERTIFICATE", serving.der())),
                 "tls.key": b64(&pem("PRIVATE KEY", &serving_key.serialize_der()))},
    }));
    let net = Net::new();
    let probe_addr: SocketAddr = net.addr(3, 18443);
    let webhook = serve_tls(
        probe_addr,
        serving.der().to_vec(),
        serving_key.serialize_der(),
    )
    .await;
    api.apply(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "linkerd-proxy-injector-webhook-config"},
        "webhooks": [{
            "name": "linkerd-proxy-injector.linkerd.io",
            "clientConfig": {
                "service": {"name": "linkerd-proxy-injector", "namespace": ns, "path": "/",
                            "port": probe_addr.port()},
                "caBundle": b64(&pem("CERTIFICATE", webhook_ca.der())),
            },
            "admissionReviewVersions": ["v1"], "sideEffects": "None",
        }],
    }));
    api.apply(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "linkerd-proxy-injector", "namespace": ns},
        "spec": {"clusterIP": probe_addr.ip().to_string(),
                 "ports": [{"port": probe_addr.port(), "targetPort": 8443}]},
    }));
    // The controller, available, and its ready pod.
    api.apply(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "wisp-controller", "namespace": ns},
        "spec": {"replicas": 1,
                 "selector": {"matchLabels": {"linkerd.io/control-plane-component": "controller"}},
                 "template": {"metadata": {"labels": {"linkerd.io/control-plane-component": "controller"}},
                              "spec": {"containers": [{"name": "controller", "image": "wisp"}]}}},
        "status": {"replicas": 1, "availableReplicas": 1, "readyReplicas": 1},
    }));
    api.apply(pod(ns, "wisp-controller-abc", true, None));
    // A meshed workload running this version's proxy.
    api.apply(pod("shop", "web-1", false, Some(env!("CARGO_PKG_VERSION"))));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig);
    Installed {
        api,
        _dir: dir,
        kubeconfig,
        _webhook: webhook,
    }
}

fn pod(ns: &str, name: &str, control_plane: bool, proxy_version: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {}, "annotations": {}},
        "spec": {"containers": [{"name": "main", "image": "x"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    });
    if control_plane {
        pod["metadata"]["labels"]["linkerd.io/control-plane-component"] = json!("controller");
    }
    if let Some(v) = proxy_version {
        pod["metadata"]["annotations"]["linkerd.io/proxy-version"] = json!(v);
    }
    pod
}

/// A TLS server answering handshakes with `cert` (what the probe checks).
async fn serve_tls(addr: SocketAddr, cert: Vec<u8>, key: Vec<u8>) -> tokio::task::JoinHandle<()> {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![rustls_pki_types::CertificateDer::from(cert)],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    })
}

async fn check(installed: &Installed, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
    cmd.arg("check")
        .args(args)
        .env("KUBECONFIG", &installed.kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("WISP_CONTROL_PLANE_NS");
    tokio::task::spawn_blocking(move || cmd.output().expect("run wisp check"))
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn line<'a>(text: &'a str, description: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(description))
        .unwrap_or_else(|| panic!("no line {description:?} in:\n{text}"))
}

#[tokio::test]
async fn installed_control_plane_passes() {
    let installed = install(Options {
        issuer_days: 365,
        crds: true,
    })
    .await;
    let out = check(&installed, &[]).await;
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains('×') && !text.contains('‼'), "{text}");
    for description in [
        "can query the Kubernetes API",
        "is running the minimum Kubernetes API version",
        "control plane CustomResourceDefinitions exist",
        "controller Deployments are available",
        "control plane pods are ready",
        "issuer certificate is issued by the trust anchor",
        "the webhook's caBundle verifies the injector's serving certificate",
        "proxy-injector webhook is reachable",
        "data plane proxies are up to date",
    ] {
        assert!(
            line(&text, description).starts_with('√'),
            "{description}:\n{text}"
        );
    }
    assert!(
        line(&text, "issuer certificate is valid for at least 30 days").contains("(expires in 36")
    );
    assert!(text.ends_with("Status check results are √\n"), "{text}");

    let out = check(&installed, &["-o", "json"]).await;
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["success"], json!(true));
    let categories: Vec<&str> = report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["categoryName"].as_str().unwrap())
        .collect();
    assert!(categories.contains(&"kubernetes-api"), "{categories:?}");
    assert!(categories.contains(&"linkerd-identity"), "{categories:?}");
    for category in report["categories"].as_array().unwrap() {
        for check in category["checks"].as_array().unwrap() {
            assert_eq!(check["result"], json!("success"), "{check}");
        }
    }
}

#[tokio::test]
async fn expiring_issuer_and_stale_proxies_warn() {
    let installed = install(Options {
        issuer_days: 10,
        crds: true,
    })
    .await;
    installed
        .api
        .apply(pod("shop", "old-1", false, Some("v0.0.1-old")));
    let out = check(&installed, &[]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "warnings do not fail: {text}");
    let warning = line(&text, "issuer certificate is valid for at least 30 days");
    assert!(warning.starts_with('‼'), "{text}");
    assert!(
        text.contains("expires in 9 days") || text.contains("expires in 10 days"),
        "{text}"
    );
    assert!(
        line(&text, "data plane proxies are up to date").starts_with('‼'),
        "{text}"
    );
    assert!(text.contains("shop/old-1 runs proxy v0.0.1-old"), "{text}");

    let out = check(&installed, &["-o", "json"]).await;
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["success"], json!(true));
    let warnings: Vec<&Value> = report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .filter(|c| c["result"] == json!("warning"))
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().all(|w| w["hint"].is_string()));
}

#[tokio::test]
async fn missing_crds_fail() {
    let installed = install(Options {
        issuer_days: 365,
        crds: false,
    })
    .await;
    let out = check(&installed, &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failed = line(&text, "control plane CustomResourceDefinitions exist");
    assert!(failed.starts_with('×'), "{text}");
    assert!(
        text.contains("missing serviceprofiles.linkerd.io"),
        "{text}"
    );
    assert!(text.ends_with("Status check results are ×\n"), "{text}");

    let out = check(&installed, &["-o", "json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["success"], json!(false));
}

#[tokio::test]
async fn pre_checks_rbac_and_namespace() {
    let api = KubeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig);
    let installed = Installed {
        api,
        _dir: dir,
        kubeconfig,
        _webhook: tokio::spawn(async {}),
    };
    let out = check(&installed, &["--pre"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(line(&text, "can create non-namespaced resources").starts_with('√'));

    installed.api.set_access_reviewer(|spec: &Value| {
        spec["resourceAttributes"]["resource"] != json!("clusterroles")
    });
    let out = check(&installed, &["--pre"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(line(&text, "can create non-namespaced resources").starts_with('×'));
    assert!(
        text.contains("not allowed to create clusterroles"),
        "{text}"
    );
}
