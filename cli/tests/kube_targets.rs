//! The inspection commands against a cluster: the real `wisp` binary with
//! `--source kube:KUBECONFIG` (and once with only `$KUBECONFIG`, from a
//! directory without `./manifests`) resolves `deploy/NAME` / `pod/NAME`
//! through the Kubernetes API test server and reaches a real `wisp-proxy`
//! only through the `pods/portforward` subresource: the Pod's IP is in
//! TEST-NET-1 (192.0.2.0/24), so no other path could work. Also the
//! errors: unknown deployment, pod not meshed, pod not running, a port the
//! kubelet cannot reach, and no usable source at all.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use wisp_tests::kube_api::KubeApi;
use wisp_tests::*;

const NS: &str = "emojivoto";
const POD: &str = "web-7d9c-abcde";
const TAP_NAME: &str = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local";

/// A meshed pod as the injector writes it (native sidecar or not).
fn pod(name: &str, ip: &str, phase: &str, meshed: bool, native: bool) -> Value {
    let proxy = json!({"name": "linkerd-proxy", "image": "wisp-proxy", "env": [
        {"name": "LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "value": "0.0.0.0:4191"},
        {"name": "LINKERD2_PROXY_CONTROL_LISTEN_ADDR", "value": "0.0.0.0:4190"},
    ]});
    let app = json!({"name": "app", "image": "web"});
    let mut spec = json!({"serviceAccountName": "web", "containers": [app]});
    if meshed && native {
        let mut sidecar = proxy;
        sidecar["restartPolicy"] = json!("Always");
        spec["initContainers"] = json!([sidecar]);
    } else if meshed {
        spec["containers"].as_array_mut().unwrap().push(proxy);
    }
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS,
            "labels": {"app": "web", "pod-template-hash": "7d9c"}},
        "spec": spec,
        "status": {"phase": phase, "podIP": ip}})
}

fn deployment(name: &str, app: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": app},
                "matchExpressions": [{"key": "pod-template-hash", "operator": "Exists"}]},
            "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "app"}]}}}})
}

/// A cluster in the API test server; its kubeconfig in a temp directory
/// that has no `manifests/` subdirectory.
struct Cluster {
    api: KubeApi,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let api = KubeApi::start().await;
        api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
        let dir = tempfile::tempdir().unwrap();
        api.kubeconfig(&dir.path().join("kubeconfig"));
        Cluster { api, dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// `wisp ARGS -n emojivoto --source kube:KUBECONFIG`.
    fn wisp(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("wisp"));
        cmd.args(args)
            .args(["-n", NS, "--source"])
            .arg(format!("kube:{}", self.kubeconfig().display()))
            .current_dir(self.dir.path())
            .env_remove("WISP_SOURCE")
            .env_remove("KUBECONFIG")
            .env("WISP_LOG", "warn");
        cmd
    }
}

fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok_json(out: &Output) -> Value {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "wisp failed: {stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

fn failure(out: &Output) -> String {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "wisp succeeded: {stdout}");
    stderr
}

/// `GET path` to Service `web` through the proxy's outbound listener.
async fn send(proxy: &Proxy, path: &str) -> Option<StatusCode> {
    let client = http1_client();
    request_via(
        &client,
        proxy.outbound,
        WEB_FQDN,
        &Method::GET,
        path,
        Bytes::new(),
    )
    .await
    .status
    .ok()
}

fn outbound_requests(metrics: &str) -> f64 {
    metric_sum(
        metrics,
        "response_total",
        &[("direction", "outbound"), ("authority", WEB_AUTHORITY)],
    )
}

/// A real proxy (tap on, control on `.10:4190`) in front of Service `web`;
/// in the cluster it is pod `emojivoto/web-7d9c-abcde` of Deployment
/// `web`, with podIP 192.0.2.10, its ports 4191/4190 forwarded to the
/// proxy's real admin and control addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_proxy_config_and_tap_through_port_forward() {
    let net = Net::new();
    let mut cp = ControlPlane::create(net.addr(2, 8086));
    cp.write("web.yaml", &web_service_yaml(net.ip(11)));
    cp.restart().await;
    let _backend = HttpBackend::start(net.addr(11, 8080), "web-0").await;
    let control = net.addr(10, 4190);
    let proxy = Proxy::start(
        net.ip(10),
        &cp.addr.to_string(),
        &[
            ("LINKERD2_PROXY_TAP_SVC_NAME", TAP_NAME),
            ("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", &control.to_string()),
        ],
    )
    .await;
    let routable = eventually(Duration::from_secs(10), || async {
        send(&proxy, "/").await == Some(StatusCode::OK)
    })
    .await;
    assert!(routable, "web never became routable");

    let cluster = Cluster::start().await;
    cluster.api.apply(deployment("web", "web"));
    cluster
        .api
        .apply(pod(POD, "192.0.2.10", "Running", true, false));
    cluster.api.forward_pod_port(NS, POD, 4191, proxy.admin);
    cluster.api.forward_pod_port(NS, POD, 4190, control);

    // stat: counts since the proxy started (--window 0) are the proxy's
    // own, including the N requests sent now.
    const N: usize = 7;
    let before = outbound_requests(&proxy.metrics().await);
    for i in 0..N {
        assert_eq!(
            send(&proxy, &format!("/counted/{i}")).await,
            Some(StatusCode::OK)
        );
    }
    let after = outbound_requests(&proxy.metrics().await);
    assert_eq!(after - before, N as f64);
    let stat = ok_json(&run(cluster.wisp(&[
        "stat",
        "deploy/web",
        "--window",
        "0",
        "-o",
        "json",
    ])));
    let workload = &stat["workloads"][0];
    assert_eq!(workload["name"], "deploy/web", "{stat}");
    assert_eq!(workload["namespace"], NS, "{stat}");
    assert_eq!(workload["pods"], 1, "{stat}");
    assert_eq!(workload["meshed"], 1, "{stat}");
    let row = stat["authorities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["authority"] == WEB_AUTHORITY)
        .unwrap_or_else(|| panic!("no {WEB_AUTHORITY} row: {stat}"));
    assert_eq!(row["from"], "deploy/web", "{stat}");
    assert_eq!(row["requests"].as_f64(), Some(after), "{stat}");
    assert_eq!(row["successes"].as_f64(), Some(after), "{stat}");

    // The same with only $KUBECONFIG, from a directory without ./manifests.
    let mut cmd = Command::new(bin("wisp"));
    cmd.args([
        "stat",
        "pod/web-7d9c-abcde",
        "-n",
        NS,
        "--window",
        "0",
        "-o",
        "json",
    ])
    .current_dir(cluster.dir.path())
    .env_remove("WISP_SOURCE")
    .env("KUBECONFIG", cluster.kubeconfig())
    .env("WISP_LOG", "warn");
    let stat = ok_json(&run(cmd));
    assert_eq!(stat["workloads"][0]["name"], format!("pod/{POD}"), "{stat}");
    assert_eq!(stat["workloads"][0]["meshed"], 1, "{stat}");

    // ns/NAME and the default targets of `edges` (every meshed pod of -n).
    let stat = ok_json(&run(cluster.wisp(&[
        "stat",
        &format!("ns/{NS}"),
        "--window",
        "0",
        "-o",
        "json",
    ])));
    // (A namespace is one row, as in linkerd viz stat ns/NAME.)
    assert_eq!(stat["workloads"][0]["name"], format!("ns/{NS}"), "{stat}");
    assert_eq!(stat["workloads"][0]["meshed"], 1, "{stat}");
    // A kind alone: a row per workload of the namespace, by `app` label.
    let stat = ok_json(&run(
        cluster.wisp(&["stat", "deploy", "--window", "0", "-o", "json"])
    ));
    assert_eq!(stat["workloads"][0]["name"], "deploy/web", "{stat}");
    assert_eq!(stat["workloads"][0]["meshed"], 1, "{stat}");
    ok_json(&run(cluster.wisp(&["edges", "--window", "0", "-o", "json"])));

    // proxy-config: the proxy's own /config.json.
    let config = ok_json(&run(cluster.wisp(&[
        "proxy-config",
        &format!("pod/{POD}"),
        "-o",
        "json",
    ])));
    let (status, direct) = http_get(proxy.admin, "/config.json").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let direct: Value = serde_json::from_slice(&direct).unwrap();
    // (Endpoint EWMAs decay with time; the rest is the same document.)
    assert_eq!(config["listeners"], direct["listeners"]);
    assert_eq!(config["listeners"]["admin"], proxy.admin.to_string());
    assert_eq!(
        config["outbound"]["profiles"],
        direct["outbound"]["profiles"]
    );
    assert_eq!(
        config["outbound"]["services"][0]["authority"], WEB_AUTHORITY,
        "{config}"
    );

    // tap: a request sent while tapping is seen.
    let mut tap = Running::spawn(cluster.wisp(&[
        "tap",
        "deploy/web",
        "-o",
        "json",
        "--path",
        "/via-kube",
        "--max-events",
        "3",
    ]));
    let open = proxy.wait_tap_observers(1, Duration::from_secs(15)).await;
    assert!(open, "the tap never opened: {}", tap.kill());
    assert_eq!(send(&proxy, "/via-kube/1").await, Some(StatusCode::OK));
    let seen = eventually(Duration::from_secs(10), || async {
        tap.output().lines().count() >= 3
    })
    .await;
    let out = tap.output();
    assert!(seen, "tap saw {out:?}: {}", tap.kill());
    assert!(out.contains("/via-kube/1"), "{out}");
    let exited = wait_until(Duration::from_secs(10), || {
        let status = tap.try_wait();
        async move { status.ok_or_else(|| "tap still running".to_string()) }
    })
    .await;
    assert!(
        exited.as_ref().is_ok_and(|s| s.success()),
        "tap did not finish after 3 events: {exited:?}"
    );

    // Every proxy connection went through the API server.
    let forwards: Vec<String> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/api/v1/namespaces/{NS}/pods/{POD}/portforward"))
        .map(|r| format!("{} {}", r.query, r.status))
        .collect();
    assert!(
        forwards
            .iter()
            .any(|f| f.contains("ports=4191") && f.ends_with(" 101")),
        "{forwards:?}"
    );
    assert!(
        forwards
            .iter()
            .any(|f| f.contains("ports=4190") && f.ends_with(" 101")),
        "{forwards:?}"
    );
}

/// Errors name the target and say why; a port the kubelet cannot reach
/// is a closed connection for the command and a warning naming the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_target() {
    let cluster = Cluster::start().await;
    let source = format!("kube:{}", cluster.kubeconfig().display());
    cluster.api.apply(deployment("web", "web"));
    cluster.api.apply(deployment("empty", "nothing"));
    cluster
        .api
        .apply(pod("plain", "192.0.2.20", "Running", false, false));
    cluster
        .api
        .apply(pod("pending", "192.0.2.21", "Pending", true, true));
    cluster
        .api
        .apply(pod("dark", "192.0.2.22", "Running", true, true));
    let err = |args: &[&str]| {
        let e = failure(&run(cluster.wisp(args)));
        eprintln!("wisp {}:\n{e}", args.join(" "));
        e
    };

    let e = err(&["stat", "deploy/nope", "--window", "0"]);
    assert!(
        e.contains(&format!(
            "target deploy/nope: no deployment {NS}/nope ({source})"
        )),
        "{e}"
    );
    let e = err(&["proxy-config", "pod/plain"]);
    assert!(
        e.contains(&format!(
            "target pod/plain: pod {NS}/plain has no linkerd-proxy container (not meshed)"
        )),
        "{e}"
    );
    let e = err(&["proxy-config", "pod/pending"]);
    assert!(
        e.contains(&format!(
            "target pod/pending: pod {NS}/pending is not running (phase Pending)"
        )),
        "{e}"
    );
    let e = err(&["stat", "deploy/empty", "--window", "0"]);
    assert!(
        e.contains(&format!("target deploy/empty: no pod in deployment {NS}/empty (selector app=nothing,pod-template-hash)")),
        "{e}"
    );
    let e = err(&["proxy-config", "pod/nope"]);
    assert!(e.contains(&format!("no pod {NS}/nope")), "{e}");

    // The API server refusing (as RBAC would): the error says what was asked.
    cluster.api.fail_next(1, 403);
    let e = err(&["proxy-config", "pod/dark"]);
    assert!(
        e.contains(&format!(
            "target pod/dark: cannot get pod {NS}/dark through the Kubernetes API ({source})"
        )),
        "{e}"
    );

    // `dark` is meshed and running, but nothing listens on its ports: the
    // kubelet's error closes the forwarded connection.
    let e = err(&["proxy-config", "pod/dark"]);
    assert!(e.contains("proxy dark"), "{e}");
    assert!(
        e.contains("the kubelet could not forward the port")
            && e.contains("error forwarding port 4191 to pod emojivoto/dark"),
        "{e}"
    );

    // Neither ./manifests nor a kubeconfig: both were tried.
    let nothing = Path::new(cluster.dir.path()).join("missing-kubeconfig");
    let out = run({
        let mut cmd = Command::new(bin("wisp"));
        cmd.args(["stat", "deploy/web", "--window", "0"])
            .current_dir(cluster.dir.path())
            .env_remove("WISP_SOURCE")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env("HOME", cluster.dir.path())
            .env("KUBECONFIG", &nothing);
        cmd
    });
    let e = failure(&out);
    eprintln!("without a source:\n{e}");
    assert!(
        e.contains("no ./manifests directory, so the Kubernetes cluster was tried"),
        "{e}"
    );
    assert!(
        e.contains("no usable Kubernetes client configuration"),
        "{e}"
    );
}
