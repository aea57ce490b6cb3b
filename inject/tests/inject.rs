//! The offline transformation on real sample manifests (Linkerd's
//! emojivoto `web`, Istio's bookinfo `productpage-v1`), checked field by
//! field against what Linkerd's injector writes: env, ports, probes,
//! security contexts, volumes, init arguments, labels and annotations.
//! Also every override annotation, idempotency and the uninject round trip.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{json, Value};
use wisp_inject::workload::{self, Options, Status};
use wisp_inject::{InjectConfig, Injector, Origin, Outcome, PodInput, VERSION};

const ANCHORS: &str = include_str!("fixtures/trust-anchors.pem");
const EMOJIVOTO: &str = include_str!("fixtures/emojivoto-web.yaml");
const BOOKINFO: &str = include_str!("fixtures/bookinfo-productpage.yaml");

fn config() -> InjectConfig {
    InjectConfig {
        identity_trust_anchors_pem: ANCHORS.to_string(),
        ..InjectConfig::default()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn inject(config: InjectConfig, input: &str) -> (Vec<Value>, Vec<workload::Report>) {
    let injector = Injector::for_cli(config);
    let (out, reports) = workload::inject_stream(&injector, input, &Options::default()).unwrap();
    (workload::parse_stream(&out).unwrap(), reports)
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// The proxy env Linkerd's chart renders with default values, for a pod
/// whose inbound ports are `ports`.
fn expected_env(ports: &str) -> Vec<(String, Value)> {
    let field = |p: &str| json!({"valueFrom": {"fieldRef": {"fieldPath": p}}});
    let val = |v: &str| json!({"value": v});
    let id = |sa: &str| format!("{sa}.linkerd.serviceaccount.identity.linkerd.cluster.local");
    let anchors = format!("{}\n", ANCHORS.trim());
    let nets = "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8";
    vec![
        ("_pod_name", field("metadata.name")),
        ("_pod_ns", field("metadata.namespace")),
        ("_pod_uid", field("metadata.uid")),
        ("_pod_ip", field("status.podIP")),
        ("_pod_nodeName", field("spec.nodeName")),
        ("_pod_containerName", val("linkerd-proxy")),
        ("LINKERD2_PROXY_CORES", val("1")),
        ("LINKERD2_PROXY_CORES_MIN", val("1")),
        ("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", val("false")),
        ("LINKERD2_PROXY_LOG", val("warn,linkerd=info,[{headers}]=off,[{request}]=off")),
        ("LINKERD2_PROXY_LOG_FORMAT", val("plain")),
        ("LINKERD2_PROXY_DESTINATION_SVC_ADDR", val("linkerd-dst-headless.linkerd.svc.cluster.local.:8086")),
        ("LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS", val(nets)),
        ("LINKERD2_PROXY_POLICY_SVC_ADDR", val("linkerd-policy.linkerd.svc.cluster.local.:8090")),
        ("LINKERD2_PROXY_POLICY_WORKLOAD", val("{\"ns\":\"$(_pod_ns)\", \"pod\":\"$(_pod_name)\"}\n")),
        ("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", val("all-unauthenticated")),
        ("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", val(nets)),
        ("LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT", val("3s")),
        ("LINKERD2_PROXY_CONTROL_STREAM_IDLE_TIMEOUT", val("5m")),
        ("LINKERD2_PROXY_CONTROL_STREAM_LIFETIME", val("1h")),
        ("LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT", val("100ms")),
        ("LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT", val("1000ms")),
        ("LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT", val("5s")),
        ("LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT", val("90s")),
        ("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", val("0.0.0.0:4190")),
        ("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", val("0.0.0.0:4191")),
        ("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", val("127.0.0.1:4140")),
        ("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS", val("127.0.0.1:4140")),
        ("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", val("0.0.0.0:4143")),
        ("LINKERD2_PROXY_INBOUND_IPS", field("status.podIPs")),
        ("LINKERD2_PROXY_INBOUND_PORTS", val(ports)),
        ("LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES", val("svc.cluster.local.")),
        ("LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE", val("10000ms")),
        ("LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE", val("10000ms")),
        ("LINKERD2_PROXY_INBOUND_ACCEPT_USER_TIMEOUT", val("30s")),
        ("LINKERD2_PROXY_OUTBOUND_CONNECT_USER_TIMEOUT", val("30s")),
        ("LINKERD2_PROXY_OUTBOUND_METRICS_HOSTNAME_LABELS", val("false")),
        ("LINKERD2_PROXY_INBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL", val("10s")),
        ("LINKERD2_PROXY_INBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT", val("3s")),
        ("LINKERD2_PROXY_OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL", val("10s")),
        ("LINKERD2_PROXY_OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT", val("3s")),
        ("LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION", val("25,587,3306,4444,5432,6379,9300,11211")),
        ("LINKERD2_PROXY_DESTINATION_CONTEXT", val("{\"ns\":\"$(_pod_ns)\", \"nodeName\":\"$(_pod_nodeName)\", \"pod\":\"$(_pod_name)\"}\n")),
        ("_pod_sa", field("spec.serviceAccountName")),
        ("_l5d_ns", val("linkerd")),
        ("_l5d_trustdomain", val("cluster.local")),
        ("LINKERD2_PROXY_IDENTITY_DIR", val("/var/run/linkerd/identity/end-entity")),
        ("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", val(&anchors)),
        ("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", val("/var/run/secrets/tokens/linkerd-identity-token")),
        ("LINKERD2_PROXY_IDENTITY_SVC_ADDR", val("linkerd-identity-headless.linkerd.svc.cluster.local.:8080")),
        ("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", val("$(_pod_sa).$(_pod_ns).serviceaccount.identity.linkerd.cluster.local")),
        ("LINKERD2_PROXY_IDENTITY_SVC_NAME", val(&id("linkerd-identity"))),
        ("LINKERD2_PROXY_DESTINATION_SVC_NAME", val(&id("linkerd-destination"))),
        ("LINKERD2_PROXY_POLICY_SVC_NAME", val(&id("linkerd-destination"))),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect()
}

fn env_of(proxy: &Value) -> Vec<(String, Value)> {
    proxy["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut rest = e.clone();
            let name = rest.as_object_mut().unwrap().remove("name").unwrap();
            (name.as_str().unwrap().to_string(), rest)
        })
        .collect()
}

fn env_value(proxy: &Value, name: &str) -> Option<String> {
    env_of(proxy)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v["value"].as_str().map(str::to_string))
}

/// Asserts that the proxy's env has each `(name, value)`.
fn assert_env(proxy: &Value, want: &[(&str, &str)]) {
    for (name, value) in want {
        assert_eq!(env_value(proxy, name).as_deref(), Some(*value), "{name}");
    }
}

fn check_proxy(proxy: &Value, ports: &str) {
    let got = env_of(proxy);
    let want = expected_env(ports);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "env #{i}");
    }
    assert_eq!(got.len(), want.len(), "env length");
    assert_eq!(proxy["image"], format!("ghcr.io/wisp-mesh/proxy:{VERSION}"));
    assert_eq!(proxy["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        proxy["ports"],
        json!([{"containerPort": 4143, "name": "linkerd-proxy"},
               {"containerPort": 4191, "name": "linkerd-admin"}])
    );
    assert_eq!(
        proxy["livenessProbe"],
        json!({"httpGet": {"path": "/live", "port": 4191}, "initialDelaySeconds": 10, "timeoutSeconds": 1})
    );
    assert_eq!(
        proxy["readinessProbe"],
        json!({"httpGet": {"path": "/ready", "port": 4191}, "initialDelaySeconds": 2, "timeoutSeconds": 1})
    );
    assert_eq!(
        proxy["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
               "runAsNonRoot": true, "runAsUser": 2102,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(proxy["terminationMessagePolicy"], "FallbackToLogsOnError");
    assert_eq!(
        proxy["volumeMounts"],
        json!([{"mountPath": "/var/run/linkerd/identity/end-entity", "name": "linkerd-identity-end-entity"},
               {"mountPath": "/var/run/secrets/tokens", "name": "linkerd-identity-token"}])
    );
}

fn check_native(proxy: &Value) {
    assert_eq!(proxy["restartPolicy"], "Always");
    assert_eq!(
        proxy["startupProbe"],
        json!({"httpGet": {"path": "/ready", "port": 4191}, "initialDelaySeconds": 0,
               "periodSeconds": 1, "failureThreshold": 120})
    );
    assert!(proxy.get("lifecycle").is_none());
}

fn check_init(init: &Value) {
    assert_eq!(
        init["args"],
        json!([
            "--ipv6=false",
            "--incoming-proxy-port",
            "4143",
            "--outgoing-proxy-port",
            "4140",
            "--proxy-uid",
            "2102",
            "--inbound-ports-to-ignore",
            "4190,4191,4567,4568",
            "--outbound-ports-to-ignore",
            "4567,4568"
        ])
    );
    assert_eq!(init["command"], json!(["/usr/local/bin/wisp-init"]));
    assert_eq!(init["image"], format!("ghcr.io/wisp-mesh/init:{VERSION}"));
    assert_eq!(init["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        init["securityContext"],
        json!({"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]},
               "privileged": false, "readOnlyRootFilesystem": true, "runAsGroup": 65534,
               "runAsNonRoot": true, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(init["terminationMessagePolicy"], "FallbackToLogsOnError");
    assert_eq!(
        init["volumeMounts"],
        json!([{"mountPath": "/run", "name": "linkerd-proxy-init-xtables-lock"}])
    );
    assert!(init.get("resources").is_none());
}

fn identity_volumes() -> Vec<Value> {
    vec![
        json!({"emptyDir": {}, "name": "linkerd-proxy-init-xtables-lock"}),
        json!({"name": "linkerd-identity-end-entity", "emptyDir": {"medium": "Memory"}}),
        json!({"name": "linkerd-identity-token", "projected": {"sources": [{"serviceAccountToken": {
            "path": "linkerd-identity-token", "expirationSeconds": 86400, "audience": "identity.l5d.io"}}]}}),
    ]
}

#[test]
fn emojivoto_web_matches_linkerd_field_by_field() {
    let original = workload::parse_stream(EMOJIVOTO).unwrap();
    let (docs, reports) = inject(config(), EMOJIVOTO);
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0], original[0], "ServiceAccount untouched");
    assert_eq!(docs[2], original[2], "Service untouched");
    let statuses: Vec<_> = reports.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        statuses,
        [
            "serviceaccount \"web\" skipped",
            "deployment \"web\" injected",
            "service \"web-svc\" skipped"
        ]
    );
    let t = &docs[1]["spec"]["template"];
    assert_eq!(
        t["metadata"]["annotations"],
        json!({"linkerd.io/created-by": format!("wisp/cli {VERSION}"),
               "linkerd.io/proxy-version": VERSION,
               "linkerd.io/trust-root-sha256": sha256_hex(ANCHORS.as_bytes())})
    );
    assert_eq!(
        t["metadata"]["labels"],
        json!({"app": "web-svc", "linkerd.io/control-plane-ns": "linkerd",
               "linkerd.io/proxy-deployment": "web", "linkerd.io/workload-ns": "emojivoto"})
    );
    let spec = &t["spec"];
    assert_eq!(
        names(&spec["initContainers"]),
        ["linkerd-init", "linkerd-proxy"]
    );
    assert_eq!(names(&spec["containers"]), ["web-svc"]);
    assert_eq!(
        spec["containers"][0],
        original[1]["spec"]["template"]["spec"]["containers"][0]
    );
    check_init(&spec["initContainers"][0]);
    let proxy = &spec["initContainers"][1];
    check_proxy(proxy, "8080");
    check_native(proxy);
    assert_eq!(spec["volumes"], Value::Array(identity_volumes()));
    // The Deployment's own metadata is untouched.
    assert_eq!(docs[1]["metadata"], original[1]["metadata"]);
}

#[test]
fn bookinfo_productpage_keeps_its_annotations_and_volumes() {
    let original = workload::parse_stream(BOOKINFO).unwrap();
    let (docs, _) = inject(config(), BOOKINFO);
    let t = &docs[2]["spec"]["template"];
    let ann = &t["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], "9080");
    assert_eq!(ann["linkerd.io/proxy-version"], VERSION);
    assert_eq!(t["metadata"]["labels"]["version"], "v1");
    assert_eq!(
        t["metadata"]["labels"]["linkerd.io/proxy-deployment"],
        "productpage-v1"
    );
    // No namespace in the manifest: Linkerd writes an empty label.
    assert_eq!(t["metadata"]["labels"]["linkerd.io/workload-ns"], "");
    let mut volumes = vec![json!({"name": "tmp", "emptyDir": {}})];
    volumes.extend(identity_volumes());
    assert_eq!(t["spec"]["volumes"], Value::Array(volumes));
    check_init(&t["spec"]["initContainers"][0]);
    check_proxy(&t["spec"]["initContainers"][1], "9080");
    assert_eq!(
        t["spec"]["containers"],
        original[2]["spec"]["template"]["spec"]["containers"]
    );
}

#[test]
fn non_native_sidecar_goes_first_with_await_hook() {
    let mut c = config();
    c.proxy.native_sidecar = false;
    let (docs, _) = inject(c.clone(), EMOJIVOTO);
    let spec = &docs[1]["spec"]["template"]["spec"];
    assert_eq!(names(&spec["initContainers"]), ["linkerd-init"]);
    assert_eq!(names(&spec["containers"]), ["linkerd-proxy", "web-svc"]);
    let proxy = &spec["containers"][0];
    check_proxy(proxy, "8080");
    assert!(proxy.get("restartPolicy").is_none());
    assert!(proxy.get("startupProbe").is_none());
    assert_eq!(
        proxy["lifecycle"],
        json!({"postStart": {"exec": {"command": ["/usr/local/bin/wisp-await", "--timeout=2m", "--port=4191"]}}})
    );
    // Without await the proxy is appended.
    c.proxy.r#await = false;
    let (docs, _) = inject(c, EMOJIVOTO);
    let spec = &docs[1]["spec"]["template"]["spec"];
    assert_eq!(names(&spec["containers"]), ["web-svc", "linkerd-proxy"]);
    assert!(spec["containers"][1].get("lifecycle").is_none());
}

/// Injects a pod with `annotations` (CLI origin) and returns (proxy, init).
fn with_annotations(annotations: &[(&str, &str)]) -> (Value, Value, Value) {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns",
                     "annotations": annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
        "spec": {"containers": [{"name": "app", "image": "app",
                  "ports": [{"containerPort": 3306, "name": "mysql"}, {"containerPort": 80, "name": "http"}],
                  "readinessProbe": {"httpGet": {"path": "/", "port": 9000}}}]}
    });
    let (docs, reports) = inject(config(), &serde_json::to_string(&pod).unwrap());
    assert_eq!(reports[0].status, Status::Injected, "{:?}", reports[0]);
    let spec = docs[0]["spec"].clone();
    let all: Vec<Value> = spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(spec["containers"].as_array().unwrap())
        .cloned()
        .collect();
    let all = Value::Array(all);
    (
        find(&all, "linkerd-proxy").clone(),
        find(&all, "linkerd-init").clone(),
        docs[0].clone(),
    )
}

#[test]
fn pod_inbound_ports_are_ports_and_probe_ports_sorted_as_strings() {
    let (proxy, _, _) = with_annotations(&[]);
    assert_eq!(
        env_value(&proxy, "LINKERD2_PROXY_INBOUND_PORTS").unwrap(),
        "3306,80,9000"
    );
}

#[test]
fn every_override_annotation_applies() {
    type Check = fn(&Value, &Value, &Value);
    let cases: Vec<(&[(&str, &str)], Check)> = vec![
        (
            &[("config.linkerd.io/proxy-image", "example/proxy")],
            |p, _, _| assert_eq!(p["image"], format!("example/proxy:{VERSION}")),
        ),
        (&[("config.linkerd.io/proxy-version", "v9")], |p, _, pod| {
            assert_eq!(p["image"], "ghcr.io/wisp-mesh/proxy:v9");
            assert_eq!(
                pod["metadata"]["annotations"]["linkerd.io/proxy-version"],
                "v9"
            );
        }),
        (
            &[("config.linkerd.io/image-pull-policy", "Always")],
            |p, _, _| assert_eq!(p["imagePullPolicy"], "Always"),
        ),
        (
            &[
                ("config.linkerd.io/proxy-cpu-request", "1500m"),
                ("config.linkerd.io/proxy-cpu-limit", "3"),
            ],
            |p, i, _| {
                assert_eq!(
                    p["resources"],
                    json!({"limits": {"cpu": "3"}, "requests": {"cpu": "1500m"}})
                );
                assert_eq!(i["resources"], p["resources"]);
                assert_env(
                    p,
                    &[
                        ("LINKERD2_PROXY_CORES", "2"),
                        ("LINKERD2_PROXY_CORES_MIN", "2"),
                        ("LINKERD2_PROXY_CORES_MAX", "3"),
                    ],
                );
            },
        ),
        (
            &[("config.linkerd.io/proxy-cpu-ratio-limit", "0.5")],
            |p, _, _| assert_env(p, &[("LINKERD2_PROXY_CORES_MAX_RATIO", "0.5")]),
        ),
        (
            &[
                ("config.linkerd.io/proxy-memory-request", "20Mi"),
                ("config.linkerd.io/proxy-memory-limit", "250Mi"),
                ("config.linkerd.io/proxy-ephemeral-storage-request", "1Mi"),
                ("config.linkerd.io/proxy-ephemeral-storage-limit", "2Mi"),
            ],
            |p, _, _| {
                assert_eq!(
                    p["resources"],
                    json!({"limits": {"memory": "250Mi", "ephemeral-storage": "2Mi"},
                           "requests": {"memory": "20Mi", "ephemeral-storage": "1Mi"}})
                )
            },
        ),
        (
            &[
                ("config.linkerd.io/proxy-uid", "1234"),
                ("config.linkerd.io/proxy-gid", "4321"),
            ],
            |p, i, _| {
                assert_eq!(p["securityContext"]["runAsUser"], 1234);
                assert_eq!(p["securityContext"]["runAsGroup"], 4321);
                let args: Vec<&str> = i["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                assert!(args.windows(2).any(|w| w == ["--proxy-uid", "1234"]));
                assert!(args.windows(2).any(|w| w == ["--proxy-gid", "4321"]));
            },
        ),
        (
            &[
                ("config.linkerd.io/proxy-log-level", "debug"),
                ("config.linkerd.io/proxy-log-format", "json"),
            ],
            |p, _, _| {
                assert_env(
                    p,
                    &[(
                        "LINKERD2_PROXY_LOG",
                        "debug,[{headers}]=off,[{request}]=off",
                    )],
                );
                assert_env(p, &[("LINKERD2_PROXY_LOG_FORMAT", "json")]);
            },
        ),
        (
            &[("config.linkerd.io/proxy-log-http-headers", "insecure")],
            |p, _, _| assert_env(p, &[("LINKERD2_PROXY_LOG", "warn,linkerd=info")]),
        ),
        (
            &[
                ("config.linkerd.io/skip-inbound-ports", "8443,9000-9010"),
                ("config.linkerd.io/skip-outbound-ports", "5432"),
                ("config.linkerd.io/skip-subnets", "10.1.0.0/16"),
            ],
            |_, i, _| {
                let args: Vec<&str> = i["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                assert!(args
                    .windows(2)
                    .any(|w| w == ["--inbound-ports-to-ignore", "4190,4191,8443,9000-9010"]));
                assert!(args
                    .windows(2)
                    .any(|w| w == ["--outbound-ports-to-ignore", "5432"]));
                assert!(args
                    .windows(2)
                    .any(|w| w == ["--subnets-to-ignore", "10.1.0.0/16"]));
            },
        ),
        (
            &[("config.linkerd.io/opaque-ports", "mysql,8000-8002")],
            |p, _, _| {
                assert_env(
                    p,
                    &[(
                        "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
                        "3306,8000-8002",
                    )],
                )
            },
        ),
        (
            &[
                ("config.linkerd.io/inbound-port", "5143"),
                ("config.linkerd.io/outbound-port", "5140"),
                ("config.linkerd.io/admin-port", "5191"),
                ("config.linkerd.io/control-port", "5190"),
            ],
            |p, i, _| {
                assert_env(
                    p,
                    &[
                        ("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "0.0.0.0:5143"),
                        ("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", "127.0.0.1:5140"),
                        ("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "0.0.0.0:5191"),
                        ("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", "0.0.0.0:5190"),
                    ],
                );
                assert_eq!(
                    p["ports"],
                    json!([{"containerPort": 5143, "name": "linkerd-proxy"}, {"containerPort": 5191, "name": "linkerd-admin"}])
                );
                assert_eq!(p["livenessProbe"]["httpGet"]["port"], 5191);
                let args: Vec<&str> = i["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                assert!(args
                    .windows(2)
                    .any(|w| w == ["--incoming-proxy-port", "5143"]));
                assert!(args
                    .windows(2)
                    .any(|w| w == ["--outgoing-proxy-port", "5140"]));
                assert!(args
                    .windows(2)
                    .any(|w| w == ["--inbound-ports-to-ignore", "5190,5191,4567,4568"]));
            },
        ),
        (
            &[("config.linkerd.io/pod-inbound-ports", "1,2")],
            |p, _, _| assert_env(p, &[("LINKERD2_PROXY_INBOUND_PORTS", "1,2")]),
        ),
        (
            &[
                ("config.linkerd.io/proxy-outbound-connect-timeout", "1m30s"),
                ("config.linkerd.io/proxy-inbound-connect-timeout", "2s"),
                (
                    "config.linkerd.io/proxy-outbound-discovery-cache-unused-timeout",
                    "2m",
                ),
                (
                    "config.linkerd.io/proxy-inbound-discovery-cache-unused-timeout",
                    "1500ms",
                ),
            ],
            |p, _, _| {
                assert_env(
                    p,
                    &[
                        ("LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT", "90000ms"),
                        ("LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT", "2000ms"),
                        ("LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT", "120s"),
                        ("LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT", "1s"),
                    ],
                );
            },
        ),
        (
            &[
                (
                    "config.linkerd.io/proxy-disable-outbound-protocol-detect-timeout",
                    "true",
                ),
                (
                    "config.linkerd.io/proxy-disable-inbound-protocol-detect-timeout",
                    "true",
                ),
            ],
            |p, _, _| {
                assert_env(
                    p,
                    &[
                        ("LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT", "365d"),
                        ("LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT", "365d"),
                    ],
                );
            },
        ),
        (
            &[("config.linkerd.io/default-inbound-policy", "deny")],
            |p, _, _| assert_env(p, &[("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "deny")]),
        ),
        (
            &[("config.linkerd.io/default-inbound-policy", "bogus")],
            |p, _, _| {
                assert_env(
                    p,
                    &[(
                        "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY",
                        "all-unauthenticated",
                    )],
                )
            },
        ),
        (
            &[(
                "config.linkerd.io/proxy-require-identity-inbound-ports",
                "8080",
            )],
            |p, _, _| {
                assert_env(
                    p,
                    &[("LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY", "8080")],
                )
            },
        ),
        (&[("config.linkerd.io/access-log", "json")], |p, _, _| {
            assert_env(p, &[("LINKERD2_PROXY_ACCESS_LOG", "json")])
        }),
        (
            &[("config.linkerd.io/shutdown-grace-period", "30s")],
            |p, _, _| assert_env(p, &[("LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "30000ms")]),
        ),
        (
            &[("config.linkerd.io/proxy-admin-shutdown", "enabled")],
            |p, _, _| assert_env(p, &[("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "true")]),
        ),
        (
            &[("config.linkerd.io/proxy-await", "disabled")],
            |p, _, pod| {
                assert!(p.get("startupProbe").is_none());
                assert_eq!(
                    names(&pod["spec"]["initContainers"]),
                    ["linkerd-init", "linkerd-proxy"]
                );
            },
        ),
        (
            &[("config.linkerd.io/proxy-enable-native-sidecar", "false")],
            |p, _, pod| {
                assert!(p.get("restartPolicy").is_none());
                assert_eq!(names(&pod["spec"]["containers"]), ["linkerd-proxy", "app"]);
            },
        ),
        (
            &[(
                "config.alpha.linkerd.io/proxy-enable-native-sidecar",
                "false",
            )],
            |_, _, pod| {
                assert_eq!(names(&pod["spec"]["containers"]), ["linkerd-proxy", "app"]);
            },
        ),
        (
            &[(
                "config.beta.linkerd.io/proxy-enable-native-sidecar",
                "false",
            )],
            |_, _, pod| {
                assert_eq!(names(&pod["spec"]["containers"]), ["linkerd-proxy", "app"]);
            },
        ),
        (
            &[("config.linkerd.io/enable-external-profiles", "true")],
            |p, _, _| assert_env(p, &[("LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES", ".")]),
        ),
        (
            &[("config.linkerd.io/proxy-metrics-hostname-labels", "true")],
            |p, _, _| {
                assert_env(
                    p,
                    &[("LINKERD2_PROXY_OUTBOUND_METRICS_HOSTNAME_LABELS", "true")],
                )
            },
        ),
        (
            &[("config.linkerd.io/enable-gateway", "true")],
            |p, _, _| {
                assert_env(
                    p,
                    &[(
                        "LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES",
                        "svc.cluster.local.",
                    )],
                )
            },
        ),
        (&[("linkerd.io/inject", "ingress")], |p, _, _| {
            assert_env(p, &[("LINKERD2_PROXY_INGRESS_MODE", "true")])
        }),
        (
            &[
                ("config.linkerd.io/enable-debug-sidecar", "true"),
                ("config.linkerd.io/debug-image", "example/debug"),
                ("config.linkerd.io/debug-image-version", "v1"),
                ("config.linkerd.io/debug-image-pull-policy", "Never"),
            ],
            |_, _, pod| {
                let debug = find(&pod["spec"]["containers"], "linkerd-debug");
                assert_eq!(debug["image"], "example/debug:v1");
                assert_eq!(debug["imagePullPolicy"], "Never");
            },
        ),
        (
            &[(
                "config.linkerd.io/proxy-additional-env",
                r#"[{"name":"EXTRA","value":"1"}]"#,
            )],
            |p, _, _| assert_env(p, &[("EXTRA", "1")]),
        ),
        (
            &[
                ("config.linkerd.io/proxy-enable-native-sidecar", "false"),
                (
                    "config.alpha.linkerd.io/proxy-wait-before-exit-seconds",
                    "7",
                ),
            ],
            |p, _, _| {
                assert_eq!(
                    p["lifecycle"]["preStop"],
                    json!({"exec": {"command": ["/bin/sleep", "7"]}})
                )
            },
        ),
    ];
    for (annotations, check) in cases {
        let (proxy, init, pod) = with_annotations(annotations);
        check(&proxy, &init, &pod);
    }
}

#[test]
fn close_wait_needs_a_root_init_container() {
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"config.linkerd.io/close-wait-timeout":"2m"}},"spec":{"containers":[{"name":"a"}]}}"#;
    let injector = Injector::for_cli(config());
    let err = workload::inject_stream(&injector, pod, &Options::default()).unwrap_err();
    assert!(
        wisp_common_chain(&err).contains("runAsRoot"),
        "{}",
        wisp_common_chain(&err)
    );
    let mut c = config();
    c.proxy_init.run_as_root = true;
    let (docs, _) = inject(c, pod);
    let init = find(&docs[0]["spec"]["initContainers"], "linkerd-init");
    let args: Vec<&str> = init["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args
        .windows(2)
        .any(|w| w == ["--timeout-close-wait-secs", "120"]));
    assert_eq!(init["securityContext"]["privileged"], true);
    assert_eq!(init["securityContext"]["allowPrivilegeEscalation"], true);
    assert_eq!(init["securityContext"]["runAsUser"], 0);
}

fn wisp_common_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut c = e.source();
    while let Some(x) = c {
        s.push_str(": ");
        s.push_str(&x.to_string());
        c = x.source();
    }
    s
}

#[test]
fn app_capabilities_and_service_account_mount_are_copied() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a",
            "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL", "NET_RAW"]}},
            "volumeMounts": [{"name": "sa", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]}]}});
    let (docs, _) = inject(config(), &pod.to_string());
    let spec = &docs[0]["spec"];
    let proxy = find(&spec["initContainers"], "linkerd-proxy");
    let init = find(&spec["initContainers"], "linkerd-init");
    assert_eq!(
        proxy["securityContext"]["capabilities"],
        json!({"add": ["NET_BIND_SERVICE"], "drop": ["ALL", "NET_RAW"]})
    );
    assert_eq!(
        init["securityContext"]["capabilities"],
        json!({"add": ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"], "drop": ["ALL"]})
    );
    let sa = json!({"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "sa", "readOnly": true});
    assert_eq!(proxy["volumeMounts"][2], sa);
    assert_eq!(init["volumeMounts"][1], sa);
}

#[test]
fn inject_is_idempotent_and_uninject_round_trips() {
    for input in [EMOJIVOTO, BOOKINFO] {
        let injector = Injector::for_cli(config());
        let (once, _) = workload::inject_stream(&injector, input, &Options::default()).unwrap();
        let (twice, reports) =
            workload::inject_stream(&injector, &once, &Options::default()).unwrap();
        assert_eq!(once, twice);
        assert!(reports.iter().any(|r| r.status == Status::Injected));
        let (back, reports) = workload::uninject_stream(&once).unwrap();
        assert_eq!(
            workload::parse_stream(&back).unwrap(),
            workload::parse_stream(input).unwrap()
        );
        assert!(reports.iter().any(|r| r.status == Status::Uninjected));
    }
}

#[test]
fn webhook_leaves_an_injected_pod_alone() {
    let injector = Injector::new(config());
    let (docs, _) = inject(config(), EMOJIVOTO);
    let template = &docs[1]["spec"]["template"];
    let input = PodInput {
        template,
        prefix: "",
        namespace: "emojivoto",
        owner: None,
        namespace_meta: None,
        origin: Origin::Cli,
        extra_annotations: BTreeMap::new(),
    };
    match injector.plan(&input).unwrap() {
        Outcome::Skipped(d) => assert_eq!(d.reasons, vec![wisp_inject::SkipReason::SidecarExists]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lists_cronjobs_and_other_kinds() {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "ops"},
         "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": {"spec": {
             "restartPolicy": "OnFailure", "containers": [{"name": "job", "image": "busybox"}]}}}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d", "namespace": "ops"},
         "spec": {"template": {"spec": {"hostNetwork": true, "containers": [{"name": "x"}]}}}}
    ]});
    let (docs, reports) = inject(config(), &list.to_string());
    let lines: Vec<String> = reports.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "cronjob \"nightly\" injected",
            "configmap \"c\" skipped",
            "daemonset \"d\" skipped: hostNetwork is enabled"
        ]
    );
    let items = &docs[0]["items"];
    let t = &items[0]["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(
        t["metadata"]["labels"]["linkerd.io/proxy-cronjob"],
        "nightly"
    );
    assert_eq!(
        names(&t["spec"]["initContainers"]),
        ["linkerd-init", "linkerd-proxy"]
    );
    assert_eq!(items[1], list["items"][1]);
    assert_eq!(items[2], list["items"][2]);
    // Uninjecting drops the metadata the injector had to create.
    let (back, _) = workload::uninject_stream(&workload::write_stream(&docs).unwrap()).unwrap();
    assert_eq!(workload::parse_stream(&back).unwrap()[0], list);
}

#[test]
fn annotate_only_adds_the_inject_annotation() {
    let injector = Injector::for_cli(config());
    let options = Options {
        annotate_only: true,
        ..Options::default()
    };
    let (out, reports) = workload::inject_stream(&injector, EMOJIVOTO, &options).unwrap();
    assert_eq!(reports[1].status, Status::Annotated);
    let docs = workload::parse_stream(&out).unwrap();
    let t = &docs[1]["spec"]["template"];
    assert_eq!(
        t["metadata"]["annotations"],
        json!({"linkerd.io/inject": "enabled"})
    );
    assert_eq!(t["metadata"]["labels"], json!({"app": "web-svc"}));
    assert!(t["spec"].get("initContainers").is_none());
}

#[test]
fn webhook_inherits_namespace_config_and_marks_default_opaque_ports() {
    let injector = Injector::new(config());
    let pod = json!({"metadata": {"name": "db-0", "namespace": "data"},
        "spec": {"containers": [{"name": "mysql", "ports": [{"containerPort": 3306}]}]}});
    let ns: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
        serde_json::from_value(json!({
        "name": "data",
        "annotations": {"linkerd.io/inject": "enabled", "config.linkerd.io/proxy-cpu-limit": "2",
                        "unrelated": "x"}}))
        .unwrap();
    let input = PodInput {
        template: &pod,
        prefix: "",
        namespace: "data",
        owner: Some(("statefulset".into(), "db".into())),
        namespace_meta: Some(&ns),
        origin: Origin::Webhook,
        extra_annotations: BTreeMap::new(),
    };
    let Outcome::Injected { patch, .. } = injector.plan(&input).unwrap() else {
        panic!()
    };
    let mut doc = pod.clone();
    wisp_inject::patch::apply(&mut doc, &patch).unwrap();
    let ann = &doc["metadata"]["annotations"];
    assert_eq!(ann["config.linkerd.io/proxy-cpu-limit"], "2");
    assert_eq!(ann["linkerd.io/inject"], "enabled");
    assert_eq!(ann["config.linkerd.io/opaque-ports"], "3306");
    assert_eq!(
        ann["linkerd.io/created-by"],
        format!("wisp/proxy-injector {VERSION}")
    );
    assert!(ann.get("unrelated").is_none());
    assert_eq!(
        doc["metadata"]["labels"]["linkerd.io/proxy-statefulset"],
        "db"
    );
    let proxy = find(&doc["spec"]["initContainers"], "linkerd-proxy");
    assert_eq!(env_value(proxy, "LINKERD2_PROXY_CORES_MAX").unwrap(), "2");
    assert_eq!(
        env_value(
            proxy,
            "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION"
        )
        .unwrap(),
        "3306"
    );
    // Patch order: annotations root, sorted annotations, labels root, labels, ...
    let paths: Vec<&str> = patch
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        &paths[..7],
        [
            "/metadata/annotations",
            "/metadata/annotations/config.linkerd.io~1opaque-ports",
            "/metadata/annotations/config.linkerd.io~1proxy-cpu-limit",
            "/metadata/annotations/linkerd.io~1created-by",
            "/metadata/annotations/linkerd.io~1inject",
            "/metadata/annotations/linkerd.io~1proxy-version",
            "/metadata/annotations/linkerd.io~1trust-root-sha256",
        ]
    );
    assert_eq!(
        &paths[7..],
        [
            "/metadata/labels",
            "/metadata/labels/linkerd.io~1control-plane-ns",
            "/metadata/labels/linkerd.io~1proxy-statefulset",
            "/metadata/labels/linkerd.io~1workload-ns",
            "/spec/volumes",
            "/spec/initContainers",
            "/spec/volumes/-",
            "/spec/initContainers/0",
            "/spec/volumes/-",
            "/spec/volumes/-",
            "/spec/initContainers/1",
        ]
    );
}

#[test]
fn missing_trust_anchors_is_an_operator_error() {
    let injector = Injector::for_cli(InjectConfig::default());
    let err = workload::inject_stream(&injector, EMOJIVOTO, &Options::default()).unwrap_err();
    assert!(wisp_common_chain(&err).contains("trust anchors"));
}

#[test]
fn documented_defaults_are_the_code_defaults() {
    let doc = include_str!("../../docs/kubernetes.md");
    let section = &doc[doc.find("## 4. Proxy defaults").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + section[start..].find("```").unwrap();
    let parsed = InjectConfig::from_yaml(&section[start..end], "docs").unwrap();
    assert_eq!(parsed, InjectConfig::default());
}

#[test]
fn untouched_documents_keep_their_text() {
    let injector = Injector::for_cli(config());
    let (out, _) = workload::inject_stream(&injector, EMOJIVOTO, &Options::default()).unwrap();
    assert!(
        out.starts_with("# From Linkerd's emojivoto sample"),
        "{out}"
    );
    let service = &EMOJIVOTO[EMOJIVOTO.rfind("---\n").unwrap() + 4..];
    assert!(out.ends_with(service), "{out}");
    // A stream with nothing to inject comes back byte for byte.
    let text = "# keep me\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: c}\ndata: {b: '2', a: '1'}\n---\n--- # empty\nkind: Secret\napiVersion: v1\nmetadata: {name: s}\n";
    let (out, reports) = workload::inject_stream(&injector, text, &Options::default()).unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(out, "# keep me\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: c}\ndata: {b: '2', a: '1'}\n---\n--- # empty\nkind: Secret\napiVersion: v1\nmetadata: {name: s}\n");
}
