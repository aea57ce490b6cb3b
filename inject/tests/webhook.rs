//! The admission webhook over real HTTPS: a rustls client trusting a test
//! CA (rcgen) posts AdmissionReview bodies shaped like the API server's,
//! applies the returned JSONPatch with json-patch, and checks the pod. Also
//! the HTTP error paths, and the serving certificate being re-read after
//! its files change.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use wisp_inject::webhook::{self, Cluster, ClusterError, ClusterFuture};
use wisp_inject::{InjectConfig, Injector, VERSION};

const ANCHORS: &str = include_str!("fixtures/trust-anchors.pem");

/// Namespaces and owners a test cluster knows.
#[derive(Default)]
struct FakeCluster {
    namespaces: HashMap<String, ObjectMeta>,
    owners: HashMap<(String, String), ObjectMeta>,
}

impl Cluster for FakeCluster {
    fn namespace<'a>(&'a self, name: &'a str) -> ClusterFuture<'a, Option<ObjectMeta>> {
        Box::pin(async move {
            if name == "unreachable" {
                return Err(ClusterError("connection refused".into()));
            }
            Ok(self.namespaces.get(name).cloned())
        })
    }

    fn owner<'a>(
        &'a self,
        _namespace: &'a str,
        kind: &'a str,
        name: &'a str,
    ) -> ClusterFuture<'a, Option<ObjectMeta>> {
        Box::pin(async move {
            Ok(self
                .owners
                .get(&(kind.to_string(), name.to_string()))
                .cloned())
        })
    }
}

fn meta(v: Value) -> ObjectMeta {
    serde_json::from_value(v).unwrap()
}

fn cluster() -> Arc<dyn Cluster> {
    let mut c = FakeCluster::default();
    c.namespaces.insert(
        "emojivoto".into(),
        meta(json!({"name": "emojivoto", "annotations": {"linkerd.io/inject": "enabled"}})),
    );
    c.namespaces.insert(
        "bookinfo".into(),
        meta(json!({"name": "bookinfo", "labels": {"istio-injection": "enabled"}})),
    );
    c.namespaces
        .insert("plain".into(), meta(json!({"name": "plain"})));
    c.owners.insert(
        ("ReplicaSet".into(), "web-5d8b7f".into()),
        meta(json!({"name": "web-5d8b7f", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1"}]})),
    );
    Arc::new(c)
}

struct Pki {
    ca_der: CertificateDer<'static>,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn pki() -> Pki {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "webhook test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pki {
        ca_der: cert.der().clone(),
        ca: rcgen::Issuer::new(params, key),
    }
}

/// Writes a serving certificate for `linkerd-proxy-injector.linkerd.svc`
/// into `dir` (atomically, as a Secret volume update does); returns its DER.
fn write_cert(pki: &Pki, dir: &Path, cn: &str) -> Vec<u8> {
    let mut params =
        rcgen::CertificateParams::new(vec!["linkerd-proxy-injector.linkerd.svc".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &pki.ca).unwrap();
    let crt = pem("CERTIFICATE", cert.der());
    let key = pem("PRIVATE KEY", &key.serialize_der());
    for (name, text) in [("tls.crt", crt), ("tls.key", key)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    cert.der().to_vec()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

struct Server {
    addr: std::net::SocketAddr,
    roots: Arc<rustls::RootCertStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(pki: &Pki, dir: &Path) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let injector = Arc::new(Injector::new(InjectConfig::default()));
    // The controller hands the trust anchors over from the ConfigMap.
    injector.set_trust_anchors(ANCHORS);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(webhook::serve(
        listener,
        dir.to_path_buf(),
        injector,
        cluster(),
        Arc::new(|_| {}),
        async move {
            let _ = rx.await;
        },
    ));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    Server {
        addr,
        roots: Arc::new(roots),
        stop: Some(tx),
        task,
    }
}

/// One HTTPS request; returns (status, body, the server's leaf certificate).
async fn request(server: &Server, method: &str, body: Vec<u8>) -> (u16, Vec<u8>, Vec<u8>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(server.roots.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("linkerd-proxy-injector.linkerd.svc").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri("/")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, body, leaf)
}

fn review(api_version: &str, uid: &str, namespace: &str, pod: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "uid": "x", "groups": ["system:serviceaccounts"]},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    }))
    .unwrap()
}

/// A Pod as the ReplicaSet controller creates it (no name yet).
fn web_pod(annotations: Value, extra_spec: Value) -> Value {
    let mut spec = json!({
        "serviceAccountName": "web",
        "containers": [{"name": "web-svc", "image": "buoyantio/emojivoto-web:v8",
                        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "100m"}}}],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst"
    });
    for (k, v) in extra_spec.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({
        "metadata": {"generateName": "web-5d8b7f-", "namespace": "emojivoto",
                     "labels": {"app": "web-svc", "pod-template-hash": "5d8b7f"},
                     "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8b7f",
                                          "uid": "u2", "controller": true, "blockOwnerDeletion": true}]},
        "spec": spec
    })
}

fn response(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

fn env(c: &Value, name: &str) -> Value {
    find(&c["env"], name).clone()
}

#[tokio::test]
async fn admission_reviews_over_https() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    write_cert(&pki, dir.path(), "first");
    let mut server = start(&pki, dir.path()).await;

    // Namespace enabled: the patch adds the proxy; apply it and check the pod.
    let pod = web_pod(json!({}), json!({}));
    let (status, body, _) = request(
        &server,
        "POST",
        review("admission.k8s.io/v1", "uid-1", "emojivoto", pod.clone()),
    )
    .await;
    assert_eq!(status, 200);
    let r = response(&body);
    assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r["kind"], "AdmissionReview");
    assert_eq!(r["response"]["uid"], "uid-1");
    assert_eq!(r["response"]["allowed"], true);
    assert_eq!(r["response"]["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    let m = &patched["metadata"];
    assert_eq!(m["labels"]["linkerd.io/proxy-deployment"], "web");
    assert_eq!(m["labels"]["linkerd.io/workload-ns"], "emojivoto");
    assert_eq!(m["labels"]["linkerd.io/control-plane-ns"], "linkerd");
    assert_eq!(m["labels"]["pod-template-hash"], "5d8b7f");
    assert_eq!(
        m["annotations"]["linkerd.io/created-by"],
        format!("wisp/proxy-injector {VERSION}")
    );
    assert_eq!(m["annotations"]["linkerd.io/inject"], "enabled");
    assert_eq!(m["annotations"]["linkerd.io/proxy-version"], VERSION);
    let sha: String = ring::digest::digest(&ring::digest::SHA256, ANCHORS.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(m["annotations"]["linkerd.io/trust-root-sha256"], sha);
    let spec = &patched["spec"];
    let init_names: Vec<&str> = spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(init_names, ["linkerd-init", "linkerd-proxy"]);
    assert_eq!(spec["containers"], pod["spec"]["containers"]);
    let proxy = find(&spec["initContainers"], "linkerd-proxy");
    assert_eq!(proxy["restartPolicy"], "Always");
    assert_eq!(proxy["image"], format!("ghcr.io/wisp-mesh/proxy:{VERSION}"));
    assert_eq!(env(proxy, "LINKERD2_PROXY_INBOUND_PORTS")["value"], "8080");
    assert_eq!(
        env(proxy, "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS")["value"],
        format!("{}\n", ANCHORS.trim())
    );
    assert_eq!(
        env(proxy, "LINKERD2_PROXY_INBOUND_IPS")["valueFrom"]["fieldRef"]["fieldPath"],
        "status.podIPs"
    );
    assert_eq!(proxy["securityContext"]["runAsUser"], 2102);
    assert_eq!(
        proxy["readinessProbe"]["httpGet"],
        json!({"path": "/ready", "port": 4191})
    );
    let init = find(&spec["initContainers"], "linkerd-init");
    assert_eq!(init["command"], json!(["/usr/local/bin/wisp-init"]));
    assert_eq!(
        init["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN", "NET_RAW"])
    );
    let volumes: Vec<&str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        volumes,
        [
            "linkerd-proxy-init-xtables-lock",
            "linkerd-identity-end-entity",
            "linkerd-identity-token"
        ]
    );
    assert_eq!(
        find(&spec["volumes"], "linkerd-identity-token")["projected"]["sources"][0]
            ["serviceAccountToken"],
        json!({"path": "linkerd-identity-token", "expirationSeconds": 86400, "audience": "identity.l5d.io"})
    );

    // v1beta1 is echoed.
    let (_, body, _) = request(
        &server,
        "POST",
        review(
            "admission.k8s.io/v1beta1",
            "uid-2",
            "emojivoto",
            pod.clone(),
        ),
    )
    .await;
    let r = response(&body);
    assert_eq!(r["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(r["response"]["uid"], "uid-2");
    assert!(r["response"]["patch"].is_string());

    // Skips: allowed, no patch, the reason in an audit annotation.
    let skip_cases = [
        (
            "emojivoto",
            web_pod(json!({"linkerd.io/inject": "disabled"}), json!({})),
            "linkerd.io/inject:disabled",
        ),
        (
            "emojivoto",
            web_pod(json!({"sidecar.istio.io/inject": "false"}), json!({})),
            "sidecar.istio.io/inject",
        ),
        (
            "emojivoto",
            web_pod(json!({}), json!({"hostNetwork": true})),
            "hostNetwork is enabled",
        ),
        (
            "plain",
            web_pod(json!({}), json!({})),
            "neither the namespace nor the pod",
        ),
        ("emojivoto", patched.clone(), "sidecar injected already"),
    ];
    for (i, (ns, pod, why)) in skip_cases.into_iter().enumerate() {
        let uid = format!("skip-{i}");
        let (status, body, _) = request(
            &server,
            "POST",
            review("admission.k8s.io/v1", &uid, ns, pod),
        )
        .await;
        assert_eq!(status, 200);
        let r = response(&body);
        assert_eq!(r["response"]["uid"], uid.as_str());
        assert_eq!(r["response"]["allowed"], true, "{r}");
        assert!(r["response"].get("patch").is_none(), "{r}");
        let reason = r["response"]["auditAnnotations"]["injection-skipped"]
            .as_str()
            .unwrap();
        assert!(reason.contains(why), "{i}: {reason}");
    }

    // Istio's namespace label enables injection.
    let mut istio_pod = web_pod(json!({}), json!({}));
    istio_pod["metadata"]["namespace"] = json!("bookinfo");
    let (_, body, _) = request(
        &server,
        "POST",
        review("admission.k8s.io/v1", "uid-3", "bookinfo", istio_pod),
    )
    .await;
    assert_eq!(response(&body)["response"]["patchType"], "JSONPatch");

    // An internal error (namespace lookup failed) denies with a message.
    let (status, body, _) = request(
        &server,
        "POST",
        review("admission.k8s.io/v1", "uid-4", "unreachable", pod.clone()),
    )
    .await;
    assert_eq!(status, 200);
    let r = response(&body);
    assert_eq!(r["response"]["allowed"], false);
    assert!(
        r["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{r}"
    );

    // Malformed bodies, missing request or uid: 400.
    for bad in [
        b"{not json".to_vec(),
        serde_json::to_vec(
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        )
        .unwrap(),
        serde_json::to_vec(
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "request": {"kind": {"kind": "Pod"}, "operation": "CREATE"}}),
        )
        .unwrap(),
    ] {
        let (status, body, _) = request(&server, "POST", bad).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    }
    // Empty body: nothing written.
    let (status, body, _) = request(&server, "POST", Vec::new()).await;
    assert_eq!((status, body.len()), (200, 0));
    // Not POST.
    let (status, _, _) = request(&server, "GET", Vec::new()).await;
    assert_eq!(status, 405);
    // Over 10 MiB.
    let (status, _, _) = request(&server, "POST", vec![b' '; webhook::MAX_BODY + 1]).await;
    assert_eq!(status, 413);

    // Other operations and kinds pass untouched.
    let mut update: Value =
        serde_json::from_slice(&review("admission.k8s.io/v1", "uid-5", "emojivoto", pod)).unwrap();
    update["request"]["operation"] = json!("UPDATE");
    let (_, body, _) = request(&server, "POST", serde_json::to_vec(&update).unwrap()).await;
    let r = response(&body);
    assert_eq!(r["response"], json!({"uid": "uid-5", "allowed": true}));

    // Shutdown ends the server.
    let _ = server.stop.take().unwrap().send(());
    (&mut server.task).await.unwrap();
}

#[tokio::test]
async fn services_get_default_opaque_ports() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    write_cert(&pki, dir.path(), "svc");
    let server = start(&pki, dir.path()).await;
    let body = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "s1", "kind": {"group": "", "version": "v1", "kind": "Service"},
                    "namespace": "plain", "operation": "CREATE",
                    "object": {"metadata": {"name": "db"}, "spec": {"ports": [
                        {"port": 3306}, {"port": 80, "targetPort": 5432}, {"port": 6379, "targetPort": 8080}]}}}
    }))
    .unwrap();
    let (_, body, _) = request(&server, "POST", body).await;
    let r = response(&body);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r["response"]["patch"].as_str().unwrap())
        .unwrap();
    let ops: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        ops,
        json!([{"op": "add", "path": "/metadata/annotations", "value": {}},
               {"op": "add", "path": "/metadata/annotations/config.linkerd.io~1opaque-ports", "value": "3306,80"}])
    );
}

#[tokio::test]
async fn certificate_is_reread_when_its_files_change() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(&pki, dir.path(), "first");
    let server = start(&pki, dir.path()).await;
    let (_, _, leaf) = request(&server, "POST", Vec::new()).await;
    assert_eq!(leaf, first);
    let second = write_cert(&pki, dir.path(), "second");
    assert_ne!(first, second);
    // Poll: each handshake checks the files, so the next one sees it.
    let mut seen = Vec::new();
    for _ in 0..50 {
        let (_, _, leaf) = request(&server, "POST", Vec::new()).await;
        if leaf == second {
            seen = leaf;
            break;
        }
    }
    assert_eq!(seen, second);
    // A broken update keeps the current certificate.
    std::fs::write(dir.path().join("tls.crt"), "garbage").unwrap();
    let (_, _, leaf) = request(&server, "POST", Vec::new()).await;
    assert_eq!(leaf, second);
}

#[tokio::test]
async fn serves_once_the_certificate_appears() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&pki, dir.path()).await;
    // No files yet: the handshake fails, the server keeps running.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(server.roots.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("linkerd-proxy-injector.linkerd.svc").unwrap();
    assert!(connector.connect(name, tcp).await.is_err());
    let der = write_cert(&pki, dir.path(), "late");
    let (status, _, leaf) = request(&server, "POST", Vec::new()).await;
    assert_eq!((status, leaf), (200, der));
}
