//! `wisp inject` / `wisp uninject` as a user runs them: the real binary on
//! files and stdin (multi-document YAML, `kubectl get -o yaml` Lists,
//! CronJobs), idempotent re-injection, the uninject round trip, and clear
//! errors with exit code 1 on garbage.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const ANCHORS: &str = include_str!("../../inject/tests/fixtures/trust-anchors.pem");
const EMOJIVOTO: &str = include_str!("../../inject/tests/fixtures/emojivoto-web.yaml");

fn wisp(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wisp");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait wisp")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn docs(yaml: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn anchors_file(dir: &Path) -> String {
    let p = dir.join("ca.pem");
    std::fs::write(&p, ANCHORS).unwrap();
    p.display().to_string()
}

fn init_names(template: &serde_json::Value) -> Vec<String> {
    template["spec"]["initContainers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn injects_a_multi_document_stream_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let ta = anchors_file(dir.path());
    let o = wisp(&["inject", "--trust-anchors", &ta, "-"], EMOJIVOTO);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let d = docs(&out(&o));
    assert_eq!(d.len(), 3);
    assert_eq!(d[1]["kind"], "Deployment");
    assert_eq!(
        init_names(&d[1]["spec"]["template"]),
        ["linkerd-init", "linkerd-proxy"]
    );
    assert!(
        err(&o).contains("deployment \"web\" injected"),
        "{}",
        err(&o)
    );
    assert!(
        err(&o).contains("service \"web-svc\" skipped"),
        "{}",
        err(&o)
    );
}

#[test]
fn injects_a_kubectl_list_and_cronjob_with_flags() {
    let dir = tempfile::tempdir().unwrap();
    let ta = anchors_file(dir.path());
    let list = r#"apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: nightly, namespace: ops}
  spec:
    schedule: "0 0 * * *"
    jobTemplate:
      spec:
        template:
          spec:
            restartPolicy: OnFailure
            containers: [{name: job, image: busybox}]
- apiVersion: apps/v1
  kind: StatefulSet
  metadata: {name: db, namespace: ops}
  spec:
    serviceName: db
    selector: {matchLabels: {app: db}}
    template:
      metadata: {labels: {app: db}}
      spec:
        containers: [{name: db, image: postgres, ports: [{containerPort: 5432}]}]
"#;
    let o = wisp(
        &[
            "inject",
            "--trust-anchors",
            &ta,
            "--proxy-uid",
            "3000",
            "--native-sidecar=false",
            "--skip-outbound-ports",
            "443",
            "-f",
            "-",
        ],
        list,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let d = docs(&out(&o));
    assert_eq!(d.len(), 1);
    let items = d[0]["items"].as_array().unwrap();
    let cron = &items[0]["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(
        cron["metadata"]["labels"]["linkerd.io/proxy-cronjob"],
        "nightly"
    );
    assert_eq!(
        cron["metadata"]["annotations"]["config.linkerd.io/proxy-uid"],
        "3000"
    );
    assert_eq!(cron["spec"]["containers"][0]["name"], "linkerd-proxy");
    assert_eq!(
        cron["spec"]["containers"][0]["securityContext"]["runAsUser"],
        3000
    );
    let args = cron["spec"]["initContainers"][0]["args"]
        .as_array()
        .unwrap();
    assert!(args
        .windows(2)
        .any(|w| w[0] == "--outbound-ports-to-ignore" && w[1] == "443"));
    let sts = &items[1]["spec"]["template"];
    assert_eq!(
        sts["metadata"]["labels"]["linkerd.io/proxy-statefulset"],
        "db"
    );
    let e = err(&o);
    assert!(
        e.contains("cronjob \"nightly\" injected") && e.contains("statefulset \"db\" injected"),
        "{e}"
    );
}

#[test]
fn second_inject_is_identical_and_uninject_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let ta = anchors_file(dir.path());
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, EMOJIVOTO).unwrap();
    let once = wisp(
        &["inject", "--trust-anchors", &ta, file.to_str().unwrap()],
        "",
    );
    assert_eq!(once.status.code(), Some(0), "{}", err(&once));
    let twice = wisp(&["inject", "--trust-anchors", &ta, "-"], &out(&once));
    assert_eq!(twice.status.code(), Some(0), "{}", err(&twice));
    assert_eq!(out(&once), out(&twice));
    let back = wisp(&["uninject", "-"], &out(&once));
    assert_eq!(back.status.code(), Some(0), "{}", err(&back));
    assert_eq!(docs(&out(&back)), docs(EMOJIVOTO));
    assert!(
        err(&back).contains("deployment \"web\" uninjected"),
        "{}",
        err(&back)
    );
}

#[test]
fn annotate_only_needs_no_trust_anchors() {
    let o = wisp(&["inject", "--annotate-only", "-"], EMOJIVOTO);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let d = docs(&out(&o));
    assert_eq!(
        d[1]["spec"]["template"]["metadata"]["annotations"]["linkerd.io/inject"],
        "enabled"
    );
    assert!(init_names(&d[1]["spec"]["template"]).is_empty());
    assert!(err(&o).contains("deployment \"web\" annotated"));
}

#[test]
fn garbage_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ta = anchors_file(dir.path());
    let o = wisp(
        &["inject", "--trust-anchors", &ta, "-"],
        "kind: [unclosed\n  : :\n",
    );
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(
        e.starts_with("wisp: stdin: document 1 is not valid YAML"),
        "{e}"
    );
    assert!(out(&o).is_empty());
    let o = wisp(&["inject", "--trust-anchors", &ta, "-"], "just a string\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("not a Kubernetes object"), "{}", err(&o));
    // A pod template that is not a PodSpec.
    let o = wisp(
        &["inject", "--trust-anchors", &ta, "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: 7}\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("cannot inject pod \"p\""), "{}", err(&o));
    // Missing trust anchors and files.
    let o = wisp(&["inject", "-"], EMOJIVOTO);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no trust anchors"), "{}", err(&o));
    let o = wisp(&["inject", "--trust-anchors", &ta, "/nonexistent.yaml"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("cannot read /nonexistent.yaml"),
        "{}",
        err(&o)
    );
    let o = wisp(&["uninject"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no input"), "{}", err(&o));
    // A bad inject.yaml.
    let cfg = dir.path().join("inject.yaml");
    std::fs::write(&cfg, "proxyInit: {iptablesMode: bpf}\n").unwrap();
    let o = wisp(
        &[
            "inject",
            "--config",
            cfg.to_str().unwrap(),
            "--trust-anchors",
            &ta,
            "-",
        ],
        EMOJIVOTO,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("iptablesMode"), "{}", err(&o));
    assert!(!err(&o).to_lowercase().contains("backtrace"));
}

#[test]
fn reads_directories_and_applies_ingress() {
    let dir = tempfile::tempdir().unwrap();
    let ta = anchors_file(dir.path());
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(manifests.join("nested")).unwrap();
    std::fs::write(manifests.join("a.yaml"), EMOJIVOTO).unwrap();
    std::fs::write(
        manifests.join("nested/b.yml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: solo}\nspec: {containers: [{name: c, image: nginx}]}\n",
    )
    .unwrap();
    std::fs::write(manifests.join("notes.txt"), "not a manifest").unwrap();
    let o = wisp(
        &[
            "inject",
            "--trust-anchors",
            &ta,
            "--ingress",
            manifests.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let d = docs(&out(&o));
    assert_eq!(d.len(), 4);
    let pod = &d[3];
    assert_eq!(pod["metadata"]["name"], "solo");
    assert_eq!(
        pod["metadata"]["annotations"]["linkerd.io/inject"],
        "ingress"
    );
    let proxy = &pod["spec"]["initContainers"][1];
    let ingress = proxy["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "LINKERD2_PROXY_INGRESS_MODE")
        .unwrap();
    assert_eq!(ingress["value"], "true");
}
