//! The `kube` source against the Kubernetes API test server: answers follow
//! the cluster through watch cuts, API server restarts, 410 Gone relists,
//! bookmarks and 500s; invalid objects are skipped; and the same objects
//! give the same answers through `dir` and `kube`.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::{get, get_profile, inner, next, Serving, TestServer};
use linkerd2_proxy_api::destination::{update::Update as U, Update};
use linkerd2_proxy_api::inbound::{
    inbound_server_policies_client::InboundServerPoliciesClient, PortSpec,
};
use linkerd2_proxy_api::net::TcpAddress;
use linkerd2_proxy_api::outbound::{
    outbound_policies_client::OutboundPoliciesClient, traffic_spec, TrafficSpec,
};
use tonic::Streaming;
use wisp_destination::source::kube::KubeConfigSource;
use wisp_destination::{Config, Server, SourceSpec};
use wisp_tests::kube_api::KubeApi;

const WAIT: Duration = Duration::from_secs(30);

/// A destination server fed by the `kube` source from `api`.
struct KubeServer {
    serving: Serving,
    _kubeconfig: tempfile::TempDir,
}

impl KubeServer {
    async fn start(api: &KubeApi) -> KubeServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        api.kubeconfig(&path);
        let config = Config::new(
            SourceSpec::Kube(KubeConfigSource::File(path)),
            "127.0.0.1:0".parse().expect("addr"),
        );
        let server = Server::bind(config).await.expect("bind");
        KubeServer {
            serving: Serving::spawn(server),
            _kubeconfig: dir,
        }
    }

    async fn get(&self, path: &str) -> Streaming<Update> {
        let mut client = self.serving.client().await;
        get(&mut client, path, r#"{"ns":"default"}"#)
            .await
            .expect("get")
    }
}

/// The endpoints a Get stream has announced so far, kept up to date.
struct Endpoints {
    stream: Streaming<Update>,
    set: BTreeSet<SocketAddr>,
}

impl Endpoints {
    async fn open(server: &KubeServer) -> Endpoints {
        Endpoints {
            stream: server.get("web.default.svc.cluster.local:80").await,
            set: BTreeSet::new(),
        }
    }

    /// Reads updates until the set is `want`; panics after [`WAIT`].
    async fn until(&mut self, want: &[&str]) {
        let want: BTreeSet<SocketAddr> = want.iter().map(|s| s.parse().expect("addr")).collect();
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.set != want {
            let msg = tokio::time::timeout_at(deadline, self.stream.message())
                .await
                .unwrap_or_else(|_| panic!("endpoints still {:?}, expected {want:?}", self.set))
                .expect("stream ok")
                .expect("stream open");
            match inner(msg) {
                U::Add(add) => {
                    for a in add.addrs {
                        self.set.insert(
                            SocketAddr::try_from(a.addr.expect("addr")).expect("socket addr"),
                        );
                    }
                }
                U::Remove(rm) => {
                    for a in rm.addrs {
                        self.set
                            .remove(&SocketAddr::try_from(a).expect("socket addr"));
                    }
                }
                U::NoEndpoints(_) => self.set.clear(),
            }
        }
    }
}

fn slice(ips: &[&str]) -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> = ips
        .iter()
        .map(|ip| serde_json::json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

/// List requests for EndpointSlices so far.
fn slice_lists(api: &KubeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| !r.is_watch() && r.path.ends_with("/endpointslices") && r.status == 200)
        .count()
}

async fn web() -> (KubeApi, KubeServer, Endpoints) {
    let api = KubeApi::start().await;
    api.apply_yaml(common::WEB);
    let server = KubeServer::start(&api).await;
    let mut eps = Endpoints::open(&server).await;
    eps.until(&["127.0.0.11:8080"]).await;
    // Every kind's watch is open (after its list).
    api.wait_for_watches(5, WAIT).await;
    (api, server, eps)
}

#[tokio::test]
async fn follows_changes_and_deletes() {
    let (api, _server, mut eps) = web().await;
    api.apply(slice(&["127.0.0.11", "127.0.0.12"]));
    eps.until(&["127.0.0.11:8080", "127.0.0.12:8080"]).await;
    api.delete("EndpointSlice", "default", "web-1");
    eps.until(&[]).await;
    assert_eq!(slice_lists(&api), 1, "no relist was needed");
}

#[tokio::test]
async fn resumes_after_dropped_watches_without_relisting() {
    let (api, _server, mut eps) = web().await;
    api.drop_watches();
    api.apply(slice(&["127.0.0.12"]));
    eps.until(&["127.0.0.12:8080"]).await;
    assert_eq!(
        slice_lists(&api),
        1,
        "a cut watch resumes from its resourceVersion"
    );
}

#[tokio::test]
async fn bookmarks_move_the_resume_point() {
    let (api, _server, mut eps) = web().await;
    // Unrelated changes, then a bookmark past them, then a compaction: a
    // watcher that saw the bookmark resumes without a 410.
    for i in 0..5 {
        api.apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("c{i}"), "namespace": "default"}}));
    }
    api.bookmark();
    let bookmark_rv = api.resource_version();
    // The bookmark has been read once the watch requests resume from it.
    api.drop_watches();
    let ok = wisp_tests::eventually(WAIT, || async {
        api.requests().iter().any(|r| {
            r.is_watch()
                && r.path.ends_with("/endpointslices")
                && r.query.contains(&format!("resourceVersion={bookmark_rv}"))
        })
    })
    .await;
    assert!(ok, "the watch resumed from the bookmark's resourceVersion");
    api.apply(slice(&["127.0.0.13"]));
    eps.until(&["127.0.0.13:8080"]).await;
    assert_eq!(slice_lists(&api), 1);
}

#[tokio::test]
async fn relists_after_410_gone() {
    let (api, _server, mut eps) = web().await;
    api.stop().await;
    api.apply(slice(&["127.0.0.14"]));
    api.compact();
    api.listen().await;
    eps.until(&["127.0.0.14:8080"]).await;
    assert!(slice_lists(&api) >= 2, "relisted after 410");
    // Deletes missed while disconnected are caught by the relist too.
    api.stop().await;
    api.delete("EndpointSlice", "default", "web-1");
    api.compact();
    api.listen().await;
    eps.until(&[]).await;
}

#[tokio::test]
async fn survives_api_server_restarts() {
    let (api, _server, mut eps) = web().await;
    api.restart().await;
    api.apply(slice(&["127.0.0.15"]));
    eps.until(&["127.0.0.15:8080"]).await;
    api.stop().await;
    api.apply(slice(&["127.0.0.16"]));
    api.listen().await;
    eps.until(&["127.0.0.16:8080"]).await;
}

#[tokio::test]
async fn retries_after_500s() {
    let (api, _server, mut eps) = web().await;
    api.fail_next(4, 500);
    api.drop_watches();
    api.apply(slice(&["127.0.0.17"]));
    eps.until(&["127.0.0.17:8080"]).await;
    assert!(api.requests().iter().any(|r| r.status == 500));
}

const PROFILE: &str = r#"
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.default.svc.cluster.local, namespace: default}
spec:
  routes:
  - name: GET /books
    condition: {method: GET, pathRegex: /books}
    isRetryable: true
"#;

#[tokio::test]
async fn invalid_objects_are_skipped_keeping_the_last_good_version() {
    let api = KubeApi::start().await;
    api.apply_yaml(common::WEB);
    api.apply_yaml(PROFILE);
    let server = KubeServer::start(&api).await;
    let mut client = server.serving.client().await;
    let mut profiles = get_profile(&mut client, "web.default.svc.cluster.local:80")
        .await
        .expect("profile");
    let first = next(&mut profiles).await;
    assert_eq!(first.routes.len(), 1);
    // An invalid regex: logged and skipped, the good version stays.
    api.apply_yaml(&PROFILE.replace("pathRegex: /books", "pathRegex: \"/books(\""));
    // A later valid change goes through (so the invalid one was processed before it).
    api.apply_yaml(&PROFILE.replace("isRetryable: true", "isRetryable: false"));
    let update = next(&mut profiles).await;
    assert_eq!(update.routes.len(), 1);
    assert!(!update.routes[0].is_retryable);
    // An invalid slice (not an IP) is skipped whole; the endpoints stay.
    let mut eps = Endpoints {
        stream: server.get("web.default.svc.cluster.local:80").await,
        set: BTreeSet::new(),
    };
    eps.until(&["127.0.0.11:8080"]).await;
    api.apply(slice(&["127.0.0.11", "not-an-ip"]));
    api.apply(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "marker", "namespace": "default"},
        "spec": {"containers": [{"name": "c"}]}}));
    // After a relist the invalid slice is still replaced by its last good version.
    api.stop().await;
    api.compact();
    api.listen().await;
    let relisted = wisp_tests::eventually(WAIT, || async { slice_lists(&api) >= 2 }).await;
    assert!(relisted);
    // The endpoints never changed: the invalid slice was skipped, live and on the relist.
    common::assert_quiet(&mut eps.stream, Duration::from_millis(300)).await;
    assert_eq!(
        eps.set,
        BTreeSet::from(["127.0.0.11:8080".parse().expect("addr")])
    );
    api.apply(slice(&["127.0.0.18"]));
    eps.until(&["127.0.0.18:8080"]).await;
}

#[tokio::test]
async fn starts_without_optional_crds_and_picks_them_up_later() {
    let api = KubeApi::start().await;
    api.unregister("linkerd.io", "serviceprofiles");
    api.unregister("split.smi-spec.io", "trafficsplits");
    api.apply_yaml(common::WEB);
    let server = KubeServer::start(&api).await;
    let mut eps = Endpoints::open(&server).await;
    eps.until(&["127.0.0.11:8080"]).await;
    // The CRD gets installed, then a profile.
    api.register(
        "linkerd.io",
        "v1alpha2",
        "ServiceProfile",
        "serviceprofiles",
        true,
    );
    api.apply_yaml(PROFILE);
    let mut client = server.serving.client().await;
    let mut profiles = get_profile(&mut client, "web.default.svc.cluster.local:80")
        .await
        .expect("profile");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = tokio::time::timeout_at(deadline, profiles.message())
            .await
            .expect("the profile arrives once its CRD is served")
            .expect("ok")
            .expect("open");
        if p.routes.len() == 1 {
            break;
        }
    }
}

#[tokio::test]
async fn unreachable_api_server_fails_the_start_with_a_clear_error() {
    let api = KubeApi::start().await;
    api.stop().await;
    let index = std::sync::Arc::new(wisp_destination::index::Index::new());
    let err = wisp_destination::source::kube::start_with_client(
        api.client().await,
        index,
        "cluster.local",
        Duration::from_secs(2),
    )
    .await
    .expect_err("no API server");
    let msg = err.to_string();
    assert!(
        msg.contains("did not list") && msg.contains("Service"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------
// dir and kube give the same answers
// ---------------------------------------------------------------------------

/// Objects with the fields a real cluster adds (statuses, managed fields,
/// kubectl annotations, volumes) that the kube source trims.
const CLUSTER: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  annotations:
    config.linkerd.io/opaque-ports: "3306"
    kubectl.kubernetes.io/last-applied-configuration: '{"big": "blob"}'
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: mysql, port: 3306}
  - {name: grpc, port: 81, targetPort: http, appProtocol: kubernetes.io/h2c}
status: {loadBalancer: {}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels: {kubernetes.io/service-name: web, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
  annotations: {endpoints.kubernetes.io/last-change-trigger-time: "2026-01-01T00:00:00Z"}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}, {name: mysql, port: 3306, protocol: TCP}]
endpoints:
- addresses: [10.1.0.11]
  conditions: {ready: true, serving: true, terminating: false}
  zone: z1
  nodeName: node-1
  targetRef: {kind: Pod, name: web-a, namespace: default}
- addresses: [10.1.0.12]
  conditions: {ready: false}
  targetRef: {kind: Pod, name: web-b, namespace: default}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-a
  namespace: default
  labels: {app: web, pod-template-hash: 5d4f, linkerd.io/control-plane-ns: linkerd}
  annotations:
    config.linkerd.io/opaque-ports: "3306"
    linkerd.io/inject: enabled
    kubectl.kubernetes.io/restartedAt: "2026-01-01T00:00:00Z"
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-5d4f, uid: 11111111-2222-3333-4444-555555555555, controller: true}
spec:
  serviceAccountName: web
  nodeName: node-1
  volumes: [{name: tok, emptyDir: {}}]
  containers:
  - name: app
    image: demo
    resources: {requests: {cpu: 10m}}
    volumeMounts: [{name: tok, mountPath: /tok}]
    ports: [{name: http, containerPort: 8080}]
    livenessProbe: {httpGet: {path: /live, port: http}}
    readinessProbe: {httpGet: {path: /ready, port: 8080}}
  - name: linkerd-proxy
    image: wisp-proxy
    env: [{name: LINKERD2_PROXY_INBOUND_LISTEN_ADDR, value: "0.0.0.0:4143"}]
    ports: [{name: linkerd-admin, containerPort: 4191}]
    readinessProbe: {httpGet: {path: /ready, port: 4191}}
status:
  phase: Running
  podIP: 10.1.0.11
  podIPs: [{ip: 10.1.0.11}]
  hostIP: 192.168.0.1
  conditions: [{type: Ready, status: "True"}]
  containerStatuses: [{name: app, ready: true, restartCount: 0, image: demo, imageID: x, started: true, state: {running: {}}}]
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.default.svc.cluster.local, namespace: default}
spec:
  routes:
  - name: GET /books
    condition: {method: GET, pathRegex: /books}
    isRetryable: true
    timeout: 300ms
  retryBudget: {retryRatio: 0.2, minRetriesPerSecond: 10, ttl: 10s}
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: bad.default.svc.cluster.local, namespace: default}
spec:
  routes:
  - name: broken
    condition: {pathRegex: "/a("}
---
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: web-split, namespace: default}
spec:
  service: web
  backends:
  - {service: web, weight: 900m}
  - {service: web-v2, weight: 100m}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: default}
spec:
  clusterIP: 10.96.0.11
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;

/// One answer of one API, comparable (protobuf maps compare as maps).
#[derive(Debug, PartialEq)]
enum Answer {
    Get(String, Update),
    Profile(
        String,
        Box<linkerd2_proxy_api::destination::DestinationProfile>,
    ),
    Inbound(u32, linkerd2_proxy_api::inbound::Server),
    Outbound(
        String,
        Result<linkerd2_proxy_api::outbound::OutboundPolicy, (tonic::Code, String)>,
    ),
}

/// The first answer of every API for a set of targets.
async fn answers(addr: SocketAddr) -> Vec<Answer> {
    let mut out = Vec::new();
    let mut dst = linkerd2_proxy_api::destination::destination_client::DestinationClient::connect(
        format!("http://{addr}"),
    )
    .await
    .expect("connect");
    for path in [
        "web.default.svc.cluster.local:80",
        "web.default.svc.cluster.local:3306",
        "web-v2.default.svc.cluster.local:80",
    ] {
        let mut s = get(&mut dst, path, r#"{"ns":"default","nodeName":"node-1"}"#)
            .await
            .expect("get");
        out.push(Answer::Get(path.into(), next(&mut s).await));
    }
    for path in [
        "web.default.svc.cluster.local:80",
        "10.96.0.10:80",
        "10.1.0.11:8080",
        "bad.default.svc.cluster.local:80",
    ] {
        let mut s = get_profile(&mut dst, path).await.expect("profile");
        out.push(Answer::Profile(path.into(), Box::new(next(&mut s).await)));
    }
    let mut inbound = InboundServerPoliciesClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    for port in [8080, 4191, 3306] {
        let p = inbound
            .get_port(PortSpec {
                workload: r#"{"ns":"default","pod":"web-a"}"#.into(),
                port,
            })
            .await
            .expect("inbound")
            .into_inner();
        out.push(Answer::Inbound(port, p));
    }
    let mut outbound = OutboundPoliciesClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let targets = [
        traffic_spec::Target::Authority("web.default.svc.cluster.local:80".into()),
        traffic_spec::Target::Addr(TcpAddress::from(
            "10.96.0.10:81".parse::<SocketAddr>().expect("addr"),
        )),
        traffic_spec::Target::Addr(TcpAddress::from(
            "10.96.0.10:3306".parse::<SocketAddr>().expect("addr"),
        )),
    ];
    for target in targets {
        let p = outbound
            .get(TrafficSpec {
                source_workload: r#"{"ns":"default","pod":"web-a"}"#.into(),
                target: Some(target.clone()),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|e| (e.code(), e.message().to_string()));
        out.push(Answer::Outbound(format!("{target:?}"), p));
    }
    out
}

#[tokio::test]
async fn dir_and_kube_give_the_same_answers() {
    let dir = TestServer::start(&[("cluster.yaml", CLUSTER)]).await;
    let api = KubeApi::start().await;
    api.apply_yaml(CLUSTER);
    let kube = KubeServer::start(&api).await;
    let from_dir = answers(dir.serving.addr).await;
    let from_kube = answers(kube.serving.addr).await;
    assert_eq!(from_dir.len(), from_kube.len());
    for (d, k) in from_dir.iter().zip(&from_kube) {
        assert_eq!(d, k, "dir and kube answers differ");
    }
    // Sanity: the answers are not empty ones.
    let text = format!("{from_dir:?}");
    assert!(
        text.contains("167837707"),
        "10.1.0.11 is an endpoint: {text}"
    );
    assert!(text.contains("GET /books"), "the profile is served: {text}");
    assert!(
        text.contains("weight: 900") || text.contains("web-v2"),
        "the split is served: {text}"
    );
    dir.stop().await;
}
