//! The `charts/wisp` chart and `wisp install`, checked with the real tools:
//! `helm lint --strict` and `helm template` (default and HA values),
//! every rendered object validated by `kubernetes-validate --strict`
//! against Kubernetes' published schemas, example ServiceProfiles and
//! TrafficSplits validated by `check-jsonschema` against our CRDs'
//! `openAPIV3Schema`, and `wisp install` rendering exactly what
//! `helm template` renders for the same values (compared as parsed YAML,
//! with fixed certificates).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;
use wisp_tests::{bin, require, Need};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    repo().join("charts/wisp")
}

/// Runs `cmd`, panicking with its output unless it succeeds; returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A CA certificate and key (PEM) named `cn`: self-signed, or signed by
/// `signer` (certificate parameters and key).
fn cert(cn: &str, signer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>) -> (String, String) {
    let (params, key) = ca_params(cn);
    let cert = match signer {
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (
        pem("CERTIFICATE", cert.der()),
        pem("PRIVATE KEY", &key.serialize_der()),
    )
}

fn ca_params(cn: &str) -> (rcgen::CertificateParams, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![format!("{cn}.test")]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    (params, key)
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A values file with fixed certificates for every certificate value, so
/// that neither Helm nor `wisp install` generates any.
fn certs_values(dir: &Path) -> PathBuf {
    // The issuer must chain to the anchor: `wisp install` checks that.
    let (anchor_params, anchor_key) = ca_params("root.linkerd.cluster.local");
    let anchor_cert = anchor_params.self_signed(&anchor_key).unwrap();
    let anchor = pem("CERTIFICATE", anchor_cert.der());
    let signer = rcgen::Issuer::new(anchor_params, anchor_key);
    let (issuer, issuer_key) = cert("identity.linkerd.cluster.local", Some(&signer));
    let (injector_ca, _) = cert("wisp-proxy-injector.linkerd", None);
    let (serving, serving_key) = cert("linkerd-proxy-injector.linkerd.svc", None);
    let mut values = BTreeMap::new();
    values.insert("identityTrustAnchorsPEM", Value::String(anchor));
    let yaml = format!(
        "{}identity:\n  issuer:\n    tls:\n      crtPEM: {}\n      keyPEM: {}\nproxyInjector:\n  caBundlePEM: {}\n  crtPEM: {}\n  keyPEM: {}\n",
        serde_yaml_ng::to_string(&values).unwrap(),
        serde_json::to_string(&issuer).unwrap(),
        serde_json::to_string(&issuer_key).unwrap(),
        serde_json::to_string(&injector_ca).unwrap(),
        serde_json::to_string(&serving).unwrap(),
        serde_json::to_string(&serving_key).unwrap(),
    );
    let path = dir.join("certs.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A value set the chart is checked with: (name, extra values files
/// relative to the chart, `wisp install` flags, `--set`s).
type Variant = (
    &'static str,
    Vec<&'static str>,
    Vec<&'static str>,
    Vec<&'static str>,
);

/// The value sets the chart is checked with.
fn variants() -> Vec<Variant> {
    vec![
        ("default", vec![], vec![], vec![]),
        ("ha", vec!["values-ha.yaml"], vec!["--ha"], vec![]),
        (
            "external",
            vec![],
            vec![],
            vec![
                "identity.externalCA=true,proxyInjector.existingSecret=my-injector-tls,controller.podDisruptionBudget.enabled=true,controller.tolerations[0].operator=Exists",
            ],
        ),
    ]
}

fn helm_template(certs: &Path, files: &[&str], sets: &[&str]) -> String {
    let mut cmd = Command::new("helm");
    cmd.args(["template", "wisp"])
        .arg(chart())
        .args(["--namespace", "linkerd", "-f"])
        .arg(certs);
    for f in files {
        cmd.arg("-f").arg(chart().join(f));
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    run(&mut cmd)
}

fn wisp_install(certs: &Path, flags: &[&str], sets: &[&str]) -> String {
    let mut cmd = Command::new(bin("wisp"));
    cmd.args(["install", "--ignore-cluster", "-f"])
        .arg(certs)
        .args(flags);
    for s in sets {
        cmd.args(["--set", s]);
    }
    run(&mut cmd)
}

/// The documents of a YAML stream, without empty ones, keyed by
/// kind/namespace/name.
fn documents(stream: &str) -> BTreeMap<String, Value> {
    let mut docs = BTreeMap::new();
    for doc in serde_yaml_ng::Deserializer::from_str(stream) {
        let value = <Value as serde::Deserialize>::deserialize(doc).unwrap();
        if value.is_null() {
            continue;
        }
        let key = format!(
            "{}/{}/{}",
            value["kind"].as_str().unwrap_or_default(),
            value["metadata"]["namespace"].as_str().unwrap_or_default(),
            value["metadata"]["name"].as_str().unwrap_or_default()
        );
        assert!(docs.insert(key.clone(), value).is_none(), "duplicate {key}");
    }
    docs
}

#[test]
fn helm_lint_strict_passes_with_default_and_ha_values() {
    if !require("helm_lint_strict", &[Need::Tool("helm")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = certs_values(dir.path());
    for (name, files, _, sets) in variants() {
        let mut cmd = Command::new("helm");
        cmd.args(["lint", "--strict", "--namespace", "linkerd"])
            .arg(chart())
            .arg("-f")
            .arg(&certs);
        for f in &files {
            cmd.arg("-f").arg(chart().join(f));
        }
        for s in &sets {
            cmd.args(["--set", s]);
        }
        let out = run(&mut cmd);
        assert!(out.contains("0 chart(s) failed"), "{name}: {out}");
    }
}

#[test]
fn helm_template_objects_are_valid_kubernetes() {
    if !require(
        "helm_template_objects_are_valid_kubernetes",
        &[Need::Tool("helm"), Need::Tool("kubernetes-validate")],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = certs_values(dir.path());
    for (name, files, _, sets) in variants() {
        let rendered = helm_template(&certs, &files, &sets);
        let docs = documents(&rendered);
        let kinds: Vec<&str> = docs.keys().map(|k| k.split('/').next().unwrap()).collect();
        for kind in [
            "Deployment",
            "Service",
            "ServiceAccount",
            "ClusterRole",
            "ConfigMap",
            "MutatingWebhookConfiguration",
        ] {
            assert!(kinds.contains(&kind), "{name}: no {kind} in {kinds:?}");
        }
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &rendered).unwrap();
        let out = run(Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(&file));
        assert!(!out.contains("ERROR"), "{name}: {out}");
    }
}

#[test]
fn ha_values_split_roles_with_budgets_and_anti_affinity() {
    if !require("ha_values", &[Need::Tool("helm")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = certs_values(dir.path());
    let docs = documents(&helm_template(&certs, &["values-ha.yaml"], &[]));
    for role in ["destination", "identity", "proxy-injector"] {
        let d = &docs[&format!("Deployment/linkerd/wisp-{role}")];
        assert_eq!(d["spec"]["replicas"].as_u64(), Some(3));
        let pod = &d["spec"]["template"];
        assert_eq!(
            pod["metadata"]["labels"]["linkerd.io/control-plane-component"].as_str(),
            Some(role)
        );
        assert_eq!(
            pod["spec"]["serviceAccountName"].as_str(),
            Some(format!("linkerd-{role}").as_str())
        );
        assert!(pod["spec"]["affinity"]["podAntiAffinity"].is_mapping());
        assert!(docs.contains_key(&format!("PodDisruptionBudget/linkerd/wisp-{role}")));
    }
    assert!(!docs.contains_key("Deployment/linkerd/wisp-controller"));
    // Each Service selects the pods serving it.
    let selector = |svc: &str| {
        docs[&format!("Service/linkerd/{svc}")]["spec"]["selector"]
            ["linkerd.io/control-plane-component"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(selector("linkerd-dst-headless"), "destination");
    assert_eq!(selector("linkerd-policy"), "destination");
    assert_eq!(selector("linkerd-identity-headless"), "identity");
    assert_eq!(selector("linkerd-proxy-injector"), "proxy-injector");
}

#[test]
fn wisp_install_renders_what_helm_template_renders() {
    if !require("wisp_install_equals_helm_template", &[Need::Tool("helm")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = certs_values(dir.path());
    for (name, files, flags, sets) in variants() {
        let helm = documents(&helm_template(&certs, &files, &sets));
        let wisp = documents(&wisp_install(&certs, &flags, &sets));
        assert_eq!(
            helm.keys().collect::<Vec<_>>(),
            wisp.keys().collect::<Vec<_>>(),
            "{name}: different objects"
        );
        for (key, doc) in &helm {
            assert_eq!(doc, &wisp[key], "{name}: {key} differs");
        }
    }
}

#[test]
fn wisp_install_generates_one_consistent_set_of_certificates() {
    if !require("wisp_install_certificates", &[Need::Tool("openssl")]) {
        return;
    }
    let out = run(Command::new(bin("wisp")).args(["install", "--ignore-cluster"]));
    let docs = documents(&out);
    let dir = tempfile::tempdir().unwrap();
    let b64 = |v: &Value| {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    let anchors = docs["ConfigMap/linkerd/linkerd-identity-trust-roots"]["data"]["ca-bundle.crt"]
        .as_str()
        .unwrap()
        .to_string();
    let issuer = &docs["Secret/linkerd/linkerd-identity-issuer"]["data"];
    assert_eq!(b64(&issuer["ca.crt"]).trim(), anchors.trim());
    let injector = &docs["Secret/linkerd/wisp-proxy-injector-k8s-tls"]["data"];
    let webhook = &docs["MutatingWebhookConfiguration//linkerd-proxy-injector-webhook-config"];
    let ca_bundle = b64(&webhook["webhooks"][0]["clientConfig"]["caBundle"]);
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let verify = |ca: &Path, leaf: &Path| {
        run(Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(ca)
            .arg(leaf))
    };
    // The issuer chains to the trust anchor, the serving certificate to
    // the webhook's caBundle.
    verify(
        &write("anchors.pem", &anchors),
        &write("issuer.pem", &b64(&issuer["tls.crt"])),
    );
    verify(
        &write("injector-ca.pem", &ca_bundle),
        &write("serving.pem", &b64(&injector["tls.crt"])),
    );
    // The proxies' defaults carry the same anchors.
    let inject: Value = serde_yaml_ng::from_str(
        docs["ConfigMap/linkerd/wisp-config"]["data"]["inject.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        inject["identityTrustAnchorsPEM"].as_str().unwrap().trim(),
        anchors.trim()
    );
}

#[test]
fn wisp_install_crds_prints_the_chart_crds() {
    let out = run(Command::new(bin("wisp")).args(["install", "--crds"]));
    let printed = documents(&out);
    let mut on_disk = BTreeMap::new();
    for entry in std::fs::read_dir(chart().join("crds")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        on_disk.append(&mut documents(&text));
    }
    assert_eq!(printed, on_disk);
    assert!(printed.contains_key("CustomResourceDefinition//serviceprofiles.linkerd.io"));
    assert!(printed.contains_key("CustomResourceDefinition//trafficsplits.split.smi-spec.io"));
    if require("crds_valid", &[Need::Tool("kubernetes-validate")]) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("crds.yaml");
        std::fs::write(&file, &out).unwrap();
        run(Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(&file));
    }
}

/// Writes each version's `openAPIV3Schema` of the chart's CRDs as a JSON
/// schema file; returns apiVersion/kind → file.
fn crd_schemas(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut schemas = BTreeMap::new();
    for entry in std::fs::read_dir(chart().join("crds")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let crd: Value = serde_yaml_ng::from_str(&text).unwrap();
        let group = crd["spec"]["group"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        for version in crd["spec"]["versions"].as_sequence().unwrap() {
            let name = version["name"].as_str().unwrap();
            let schema = serde_json::to_string(&version["schema"]["openAPIV3Schema"]).unwrap();
            let path = dir.join(format!("{kind}-{name}.schema.json"));
            std::fs::write(&path, schema).unwrap();
            schemas.insert(format!("{group}/{name}/{kind}"), path);
        }
    }
    schemas
}

fn check_jsonschema(
    schemas: &BTreeMap<String, PathBuf>,
    doc: &Value,
    dir: &Path,
    n: usize,
) -> std::process::Output {
    let key = format!(
        "{}/{}",
        doc["apiVersion"].as_str().unwrap(),
        doc["kind"].as_str().unwrap()
    );
    let schema = schemas
        .get(&key)
        .unwrap_or_else(|| panic!("no CRD version for {key}"));
    let file = dir.join(format!("doc-{n}.json"));
    std::fs::write(&file, serde_json::to_string(doc).unwrap()).unwrap();
    Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(schema)
        .arg(&file)
        .output()
        .unwrap()
}

#[test]
fn example_custom_resources_match_the_crd_schemas() {
    if !require("crd_schemas", &[Need::Tool("check-jsonschema")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let schemas = crd_schemas(dir.path());
    let mut examples = String::new();
    examples.push_str(
        &std::fs::read_to_string(repo().join("profiles/tests/fixtures/linkerd-docs.yaml")).unwrap(),
    );
    // What `wisp profile --template` prints is an example too.
    examples.push_str("\n---\n");
    examples.push_str(&run(Command::new(bin("wisp")).args([
        "profile",
        "--template",
        "-n",
        "default",
        "web",
    ])));
    examples.push_str(
        "\n---\napiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: web-split, namespace: default}\nspec:\n  service: web\n  backends:\n  - {service: web-v1, weight: 90}\n  - {service: web-v2, weight: 10}\n",
    );
    let mut checked = 0;
    for (n, doc) in serde_yaml_ng::Deserializer::from_str(&examples).enumerate() {
        let doc = <Value as serde::Deserialize>::deserialize(doc).unwrap();
        if doc.is_null() {
            continue;
        }
        let out = check_jsonschema(&schemas, &doc, dir.path(), n);
        assert!(
            out.status.success(),
            "{doc:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 6, "{checked} examples");

    // The schema rejects what it should: a route without a condition, a
    // weight that is not a quantity-like value.
    let bad: Value = serde_yaml_ng::from_str(
        "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {name: x}\nspec:\n  routes:\n  - name: no-condition\n",
    )
    .unwrap();
    let out = check_jsonschema(&schemas, &bad, dir.path(), 9999);
    assert!(!out.status.success(), "a route without a condition passed");
}

/// Every value in values.yaml is in the README's table, and every key in
/// the table is a value.
#[test]
fn chart_readme_documents_every_value() {
    let readme = std::fs::read_to_string(chart().join("README.md")).unwrap();
    let values: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())
            .unwrap();
    let documented: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    fn walk(prefix: &str, value: &Value, documented: &BTreeSet<String>, seen: &mut Vec<String>) {
        if documented.contains(prefix) {
            seen.push(prefix.to_string());
            return;
        }
        match value {
            Value::Mapping(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = k.as_str().unwrap();
                    let path = if prefix.is_empty() {
                        key.to_string()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, v, documented, seen);
                }
            }
            _ => panic!("value {prefix} is not in charts/wisp/README.md"),
        }
    }
    let mut seen = Vec::new();
    walk("", &values, &documented, &mut seen);
    for key in &documented {
        assert!(
            seen.contains(key),
            "README documents {key}, which is no value"
        );
    }
}

/// The chart's controller arguments are ones `wisp controller` accepts,
/// and the rendered `inject.yaml` is one `wisp inject --config` reads.
#[test]
fn rendered_controller_args_and_inject_config_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs_values(dir.path());
    for (name, _, flags, sets) in variants() {
        let docs = documents(&wisp_install(&certs, &flags, &sets));
        let deployments: Vec<&Value> = docs
            .iter()
            .filter(|(k, _)| k.starts_with("Deployment/"))
            .map(|(_, v)| v)
            .collect();
        assert!(!deployments.is_empty());
        for d in deployments {
            let container = &d["spec"]["template"]["spec"]["containers"][0];
            let command: Vec<&str> = container["command"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(command, ["/usr/local/bin/wisp", "controller"]);
            let args: Vec<&str> = container["args"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            // clap rejects an unknown or malformed flag before it gets to --help.
            run(Command::new(bin("wisp"))
                .arg("controller")
                .args(&args)
                .arg("--help"));
        }
        let inject = docs["ConfigMap/linkerd/wisp-config"]["data"]["inject.yaml"]
            .as_str()
            .unwrap();
        let config = dir.path().join(format!("{name}-inject.yaml"));
        std::fs::write(&config, inject).unwrap();
        let workload = dir.path().join("web.yaml");
        std::fs::write(
            &workload,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, image: nginx, ports: [{containerPort: 80}]}\n",
        )
        .unwrap();
        let injected = run(Command::new(bin("wisp"))
            .arg("inject")
            .arg("--config")
            .arg(&config)
            .arg(&workload));
        assert!(injected.contains("linkerd-proxy"), "{name}: {injected}");
        if name == "ha" {
            // values-ha.yaml's proxy requests reach the injected proxy.
            assert!(injected.contains("100m"), "{name}: {injected}");
        }
    }
}

/// Given identity files are used as they are, and an issuer that does not
/// chain to the given anchors, or a key that is not the issuer's, is the
/// user's error, reported before anything is printed.
#[test]
fn wisp_install_uses_and_checks_given_identity_files() {
    let dir = tempfile::tempdir().unwrap();
    let (anchor_params, anchor_key) = ca_params("root.linkerd.cluster.local");
    let anchor = pem(
        "CERTIFICATE",
        anchor_params.self_signed(&anchor_key).unwrap().der(),
    );
    let signer = rcgen::Issuer::new(anchor_params, anchor_key);
    let (issuer, issuer_key) = cert("identity.linkerd.cluster.local", Some(&signer));
    let (stranger, stranger_key) = cert("identity.linkerd.cluster.local", None);
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let install = |anchors: &str, crt: &str, key: &str| {
        Command::new(bin("wisp"))
            .args(["install", "--ignore-cluster"])
            .arg("--identity-trust-anchors-file")
            .arg(write("anchors.pem", anchors))
            .arg("--identity-issuer-certificate-file")
            .arg(write("issuer.crt", crt))
            .arg("--identity-issuer-key-file")
            .arg(write("issuer.key", key))
            .output()
            .unwrap()
    };
    let ok = install(&anchor, &issuer, &issuer_key);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let docs = documents(&String::from_utf8(ok.stdout).unwrap());
    assert_eq!(
        docs["ConfigMap/linkerd/linkerd-identity-trust-roots"]["data"]["ca-bundle.crt"]
            .as_str()
            .unwrap()
            .trim(),
        anchor.trim()
    );
    for (crt, key, why) in [
        (&stranger, &stranger_key, "not signed by any trust anchor"),
        (
            &issuer,
            &stranger_key,
            "does not belong to the issuer certificate",
        ),
    ] {
        let out = install(&anchor, crt, key);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(out.stdout.is_empty());
        assert!(stderr.contains(why), "{stderr}");
    }
}

/// Without `--ignore-cluster`, `wisp install` refuses a cluster that
/// already runs the control plane, and one it cannot ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wisp_install_refuses_a_cluster_that_already_has_it() {
    let api = wisp_tests::kube_api::KubeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig);
    let install = |extra: &'static [&'static str]| {
        let kubeconfig = kubeconfig.clone();
        async move {
            tokio::process::Command::new(bin("wisp"))
                .arg("install")
                .args(extra)
                .env("KUBECONFIG", kubeconfig)
                .output()
                .await
                .unwrap()
        }
    };
    let fresh = install(&[]).await;
    assert!(
        fresh.status.success(),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    assert!(!fresh.stdout.is_empty());

    api.apply_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: wisp-config, namespace: linkerd}\ndata: {inject.yaml: ''}\n",
    );
    let installed = install(&[]).await;
    let stderr = String::from_utf8_lossy(&installed.stderr);
    assert_eq!(installed.status.code(), Some(1), "{stderr}");
    assert!(installed.stdout.is_empty());
    assert!(
        stderr.contains("already installed in namespace linkerd")
            && stderr.contains("--ignore-cluster"),
        "{stderr}"
    );
    let ignored = install(&["--ignore-cluster"]).await;
    assert!(ignored.status.success());
    // The CRDs are always printable.
    assert!(install(&["--crds"]).await.status.success());

    api.stop().await;
    let unreachable = install(&[]).await;
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(unreachable.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot check the cluster"), "{stderr}");
}
