//! `InboundServerPolicies` and `OutboundPolicies` over a real gRPC
//! connection, on the same port as `Destination`.
//!
//! The expected messages are written out field by field from
//! proxy-api.md §6.1 / §7.2 (what Linkerd's policy controller sends when no
//! policy objects exist), and every answer is also run through the checks
//! the upstream proxy applies (`assert_valid_*`).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{assert_quiet, get, inner, next, write, Serving};
use linkerd2_proxy_api::destination::update;
use linkerd2_proxy_api::http_route::{path_match, HttpRouteMatch, PathMatch};
use linkerd2_proxy_api::http_types::{http_method, HttpMethod};
use linkerd2_proxy_api::inbound::{
    self, authn, inbound_server_policies_client::InboundServerPoliciesClient, Authn, Authz,
    IdentitySuffix, Network, PortSpec,
};
use linkerd2_proxy_api::meta::{metadata, Metadata, Resource};
use linkerd2_proxy_api::net::{ip_address, IPv6, IpAddress, IpNetwork, TcpAddress};
use linkerd2_proxy_api::outbound::{
    self, backend, outbound_policies_client::OutboundPoliciesClient, proxy_protocol, traffic_spec,
    OutboundPolicy, TrafficSpec,
};
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use wisp_destination::policy::{networks, DefaultPolicy, PolicySettings};
use wisp_destination::{Config, Server, SourceSpec};

const WORKLOAD: &str = r#"{"ns":"default","pod":"web-a"}"#;

/// A Service with a cluster IP and a pod with HTTP probes on 8080.
const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: h1, port: 81, targetPort: 8080, appProtocol: http}
  - {name: mysql, port: 3306}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.1.0.11]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: web-a, namespace: default}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-a
  namespace: default
  labels: {app: web, linkerd.io/control-plane-ns: linkerd}
spec:
  serviceAccountName: web
  containers:
  - name: app
    image: demo
    ports: [{name: http, containerPort: 8080}]
    livenessProbe: {httpGet: {path: /live, port: http}}
    readinessProbe: {httpGet: {path: "/ready?full=1", port: 8080}}
  - name: linkerd-proxy
    image: linkerd2-proxy
    livenessProbe: {httpGet: {path: /live, port: 4191}}
    readinessProbe: {httpGet: {path: /ready, port: 4191}}
status: {podIP: 10.1.0.11}
"#;

// === server and clients ===

struct PolicyServer {
    dir: tempfile::TempDir,
    serving: Serving,
}

impl PolicyServer {
    async fn start(files: &[(&str, &str)], settings: PolicySettings) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            write(dir.path(), name, text);
        }
        let config = Config::new(
            SourceSpec::Dir(dir.path().to_path_buf()),
            "127.0.0.1:0".parse().expect("addr"),
        );
        let server = Server::bind(config)
            .await
            .expect("bind")
            .with_policy(settings);
        Self {
            dir,
            serving: Serving::spawn(server),
        }
    }

    async fn inbound(&self) -> InboundServerPoliciesClient<Channel> {
        InboundServerPoliciesClient::connect(format!("http://{}", self.serving.addr))
            .await
            .expect("connect")
    }

    async fn outbound(&self) -> OutboundPoliciesClient<Channel> {
        OutboundPoliciesClient::connect(format!("http://{}", self.serving.addr))
            .await
            .expect("connect")
    }

    fn write(&self, name: &str, text: &str) {
        write(self.dir.path(), name, text);
    }

    async fn stop(self) {
        self.serving.stop().await;
    }
}

fn settings(policy: DefaultPolicy, nets: &str) -> PolicySettings {
    PolicySettings {
        default_inbound_policy: policy,
        cluster_networks: networks::parse_list(nets).expect("networks"),
        ..PolicySettings::default()
    }
}

async fn watch_port(
    client: &mut InboundServerPoliciesClient<Channel>,
    workload: &str,
    port: u32,
) -> Result<Streaming<inbound::Server>, tonic::Status> {
    client
        .watch_port(PortSpec {
            workload: workload.into(),
            port,
        })
        .await
        .map(|r| r.into_inner())
}

fn addr_spec(addr: &str) -> TrafficSpec {
    let addr: SocketAddr = addr.parse().expect("addr");
    TrafficSpec {
        source_workload: WORKLOAD.into(),
        target: Some(traffic_spec::Target::Addr(TcpAddress::from(addr))),
    }
}

fn authority_spec(authority: &str) -> TrafficSpec {
    TrafficSpec {
        source_workload: WORKLOAD.into(),
        target: Some(traffic_spec::Target::Authority(authority.into())),
    }
}

async fn watch(
    client: &mut OutboundPoliciesClient<Channel>,
    spec: TrafficSpec,
) -> Result<Streaming<OutboundPolicy>, tonic::Status> {
    client.watch(spec).await.map(|r| r.into_inner())
}

/// The next stream item, which must be an error.
async fn next_err<T: std::fmt::Debug>(stream: &mut Streaming<T>) -> tonic::Status {
    match tokio::time::timeout(Duration::from_secs(2), stream.message()).await {
        Ok(Err(status)) => status,
        other => panic!("expected an error, got {other:?}"),
    }
}

// === expected shapes, written out from the reference ===

fn secs(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

fn default_meta(name: &str) -> Option<Metadata> {
    Some(Metadata {
        kind: Some(metadata::Kind::Default(name.into())),
    })
}

fn default_labels(name: &str) -> HashMap<String, String> {
    [("group", ""), ("kind", "default"), ("name", name)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn net(ip: IpAddress, prefix_len: u32) -> Network {
    Network {
        net: Some(IpNetwork {
            ip: Some(ip),
            prefix_len,
        }),
        except: vec![],
    }
}

fn all_networks() -> Vec<Network> {
    vec![
        net(
            IpAddress {
                ip: Some(ip_address::Ip::Ipv4(0)),
            },
            0,
        ),
        net(
            IpAddress {
                ip: Some(ip_address::Ip::Ipv6(IPv6 { first: 0, last: 0 })),
            },
            0,
        ),
    ]
}

fn unauthenticated() -> Option<Authn> {
    Some(Authn {
        permit: Some(authn::Permit::Unauthenticated(
            authn::PermitUnauthenticated {},
        )),
    })
}

fn any_identity() -> Option<Authn> {
    Some(Authn {
        permit: Some(authn::Permit::MeshTls(authn::PermitMeshTls {
            clients: Some(authn::permit_mesh_tls::Clients::Identities(
                authn::permit_mesh_tls::PermitClientIdentities {
                    identities: vec![],
                    suffixes: vec![IdentitySuffix { parts: vec![] }],
                },
            )),
        })),
    })
}

fn authz(name: &str, networks: Vec<Network>, authentication: Option<Authn>) -> Authz {
    Authz {
        networks,
        authentication,
        labels: default_labels(name),
        metadata: default_meta(name),
    }
}

fn prefix_all() -> HttpRouteMatch {
    HttpRouteMatch {
        path: Some(PathMatch {
            kind: Some(path_match::Kind::Prefix("/".into())),
        }),
        ..Default::default()
    }
}

fn default_inbound_route() -> inbound::HttpRoute {
    inbound::HttpRoute {
        metadata: default_meta("default"),
        hosts: vec![],
        authorizations: vec![],
        rules: vec![inbound::http_route::Rule {
            matches: vec![prefix_all()],
            filters: vec![],
        }],
    }
}

fn probe_route(paths: &[&str]) -> inbound::HttpRoute {
    inbound::HttpRoute {
        metadata: default_meta("probe"),
        hosts: vec![],
        authorizations: vec![authz("probe", all_networks(), unauthenticated())],
        rules: vec![inbound::http_route::Rule {
            matches: paths
                .iter()
                .map(|p| HttpRouteMatch {
                    path: Some(PathMatch {
                        kind: Some(path_match::Kind::Exact(p.to_string())),
                    }),
                    method: Some(HttpMethod {
                        r#type: Some(http_method::Type::Registered(
                            http_method::Registered::Get as i32,
                        )),
                    }),
                    ..Default::default()
                })
                .collect(),
            filters: vec![],
        }],
    }
}

fn detect_server(
    name: &str,
    authorizations: Vec<Authz>,
    routes: Vec<inbound::HttpRoute>,
) -> inbound::Server {
    inbound::Server {
        protocol: Some(inbound::ProxyProtocol {
            kind: Some(inbound::proxy_protocol::Kind::Detect(
                inbound::proxy_protocol::Detect {
                    timeout: Some(secs(10)),
                    http_routes: routes,
                    http_local_rate_limit: None,
                },
            )),
        }),
        server_ips: vec![],
        authorizations,
        labels: default_labels(name),
    }
}

/// The server Linkerd's default `all-unauthenticated` policy gives a port
/// with protocol detection and `routes`.
fn all_unauthenticated_server(routes: Vec<inbound::HttpRoute>) -> inbound::Server {
    detect_server(
        "all-unauthenticated",
        vec![authz(
            "all-unauthenticated",
            all_networks(),
            unauthenticated(),
        )],
        routes,
    )
}

fn service_resource(port: u32) -> Option<Metadata> {
    Some(Metadata {
        kind: Some(metadata::Kind::Resource(Resource {
            group: "core".into(),
            kind: "Service".into(),
            name: "web".into(),
            namespace: "default".into(),
            section: String::new(),
            port,
        })),
    })
}

fn service_backend(port: u32) -> outbound::Backend {
    outbound::Backend {
        metadata: service_resource(port),
        queue: Some(outbound::Queue {
            capacity: 100,
            failfast_timeout: Some(secs(3)),
        }),
        kind: Some(backend::Kind::Balancer(backend::BalanceP2c {
            discovery: Some(backend::EndpointDiscovery {
                kind: Some(backend::endpoint_discovery::Kind::Dst(
                    backend::endpoint_discovery::DestinationGet {
                        path: format!("web.default.svc.cluster.local:{port}"),
                    },
                )),
            }),
            load: Some(backend::balance_p2c::Load::PeakEwma(
                backend::balance_p2c::PeakEwma {
                    default_rtt: Some(prost_types::Duration {
                        seconds: 0,
                        nanos: 30_000_000,
                    }),
                    decay: Some(secs(10)),
                },
            )),
        })),
    }
}

fn http_route(
    name: &str,
    matches: Vec<HttpRouteMatch>,
    backend: outbound::Backend,
) -> outbound::HttpRoute {
    outbound::HttpRoute {
        metadata: default_meta(name),
        hosts: vec![],
        rules: vec![outbound::http_route::Rule {
            matches,
            backends: Some(outbound::http_route::Distribution {
                kind: Some(outbound::http_route::distribution::Kind::FirstAvailable(
                    outbound::http_route::distribution::FirstAvailable {
                        backends: vec![outbound::http_route::RouteBackend {
                            backend: Some(backend),
                            ..Default::default()
                        }],
                    },
                )),
            }),
            ..Default::default()
        }],
    }
}

fn opaque_route(name: &str, backend: outbound::Backend) -> outbound::OpaqueRoute {
    outbound::OpaqueRoute {
        metadata: default_meta(name),
        rules: vec![outbound::opaque_route::Rule {
            backends: Some(outbound::opaque_route::Distribution {
                kind: Some(outbound::opaque_route::distribution::Kind::FirstAvailable(
                    outbound::opaque_route::distribution::FirstAvailable {
                        backends: vec![outbound::opaque_route::RouteBackend {
                            backend: Some(backend),
                            filters: vec![],
                        }],
                    },
                )),
            }),
            filters: vec![],
        }],
    }
}

/// proxy-api.md §7.2, field by field.
fn service_detect_policy(port: u32) -> OutboundPolicy {
    let b = service_backend(port);
    let r = http_route("http", vec![prefix_all()], b.clone());
    OutboundPolicy {
        metadata: service_resource(port),
        protocol: Some(outbound::ProxyProtocol {
            kind: Some(proxy_protocol::Kind::Detect(proxy_protocol::Detect {
                timeout: Some(secs(10)),
                opaque: Some(proxy_protocol::Opaque {
                    routes: vec![opaque_route("opaq", b)],
                }),
                http1: Some(proxy_protocol::Http1 {
                    routes: vec![r.clone()],
                    failure_accrual: None,
                }),
                http2: Some(proxy_protocol::Http2 {
                    routes: vec![r],
                    failure_accrual: None,
                }),
            })),
        }),
    }
}

fn service_opaque_policy(port: u32) -> OutboundPolicy {
    OutboundPolicy {
        metadata: service_resource(port),
        protocol: Some(outbound::ProxyProtocol {
            kind: Some(proxy_protocol::Kind::Opaque(proxy_protocol::Opaque {
                routes: vec![opaque_route("opaq", service_backend(port))],
            })),
        }),
    }
}

// === the proxy's validation rules (proxy-api.md §6, §7) ===

fn assert_valid_inbound(server: &inbound::Server) {
    let kind = server
        .protocol
        .as_ref()
        .and_then(|p| p.kind.as_ref())
        .expect("protocol.kind set");
    let routes = match kind {
        inbound::proxy_protocol::Kind::Detect(d) => {
            assert!(d.timeout.is_some(), "Detect.timeout set");
            d.http_routes.clone()
        }
        _ => vec![],
    };
    assert!(server.labels.contains_key("name"), "labels contain name");
    let route_authz = routes.iter().flat_map(|r| {
        assert!(r.metadata.is_some(), "route metadata set");
        r.authorizations.iter()
    });
    for authz in server.authorizations.iter().chain(route_authz) {
        assert!(!authz.networks.is_empty(), "Authz has ≥1 network");
        assert!(authz.networks.iter().all(|n| n.net.is_some()), "net set");
        let permit = authz
            .authentication
            .as_ref()
            .and_then(|a| a.permit.as_ref())
            .expect("authentication.permit set");
        if let authn::Permit::MeshTls(tls) = permit {
            assert!(tls.clients.is_some(), "meshTLS clients set");
        }
        assert!(authz.metadata.is_some(), "Authz metadata set");
    }
}

fn assert_valid_meta(meta: &Option<Metadata>) {
    match meta
        .as_ref()
        .and_then(|m| m.kind.as_ref())
        .expect("metadata set")
    {
        metadata::Kind::Default(name) => assert!(!name.is_empty()),
        metadata::Kind::Resource(r) => {
            for field in [&r.group, &r.kind, &r.name, &r.namespace] {
                assert!(!field.is_empty(), "Resource fields non-empty: {r:?}");
            }
        }
    }
}

fn assert_valid_backend(backend: &outbound::Backend) {
    assert_valid_meta(&backend.metadata);
    let queue = backend.queue.as_ref().expect("backend queue set");
    assert!(
        queue.failfast_timeout.is_some(),
        "queue failfast_timeout set"
    );
    if let Some(backend::Kind::Balancer(b)) = &backend.kind {
        assert!(b.discovery.as_ref().is_some_and(|d| d.kind.is_some()));
        match b.load.as_ref().expect("balancer load set") {
            backend::balance_p2c::Load::PeakEwma(p) => {
                assert!(p.default_rtt.is_some() && p.decay.is_some());
            }
            backend::balance_p2c::Load::PenaltyPeakEwma(_) => {}
        }
    }
}

fn assert_valid_http_routes(routes: &[outbound::HttpRoute]) {
    for route in routes {
        assert_valid_meta(&route.metadata);
        assert!(!route.rules.is_empty());
        for rule in &route.rules {
            let kind = rule
                .backends
                .as_ref()
                .and_then(|d| d.kind.as_ref())
                .expect("rule distribution kind");
            use outbound::http_route::distribution::Kind;
            match kind {
                Kind::Empty(_) => {}
                Kind::FirstAvailable(f) => {
                    assert!(!f.backends.is_empty());
                    for b in &f.backends {
                        assert_valid_backend(b.backend.as_ref().expect("route backend"));
                    }
                }
                Kind::RandomAvailable(r) => assert!(!r.backends.is_empty()),
            }
            if let Some(retry) = &rule.retry {
                assert!(retry.conditions.is_some());
            }
        }
    }
}

fn assert_valid_opaque(opaque: &proxy_protocol::Opaque) {
    for route in &opaque.routes {
        assert_valid_meta(&route.metadata);
        for rule in &route.rules {
            use outbound::opaque_route::distribution::Kind;
            match rule.backends.as_ref().and_then(|d| d.kind.as_ref()) {
                Some(Kind::Empty(_)) => {}
                Some(Kind::FirstAvailable(f)) => {
                    assert!(!f.backends.is_empty());
                    for b in &f.backends {
                        assert_valid_backend(b.backend.as_ref().expect("route backend"));
                    }
                }
                Some(Kind::RandomAvailable(r)) => assert!(!r.backends.is_empty()),
                None => panic!("opaque rule without distribution"),
            }
        }
    }
}

fn assert_valid_outbound(policy: &OutboundPolicy) {
    assert_valid_meta(&policy.metadata);
    match policy
        .protocol
        .as_ref()
        .and_then(|p| p.kind.as_ref())
        .expect("protocol.kind set")
    {
        proxy_protocol::Kind::Detect(d) => {
            assert!(d.timeout.is_some(), "Detect.timeout");
            assert_valid_opaque(d.opaque.as_ref().expect("Detect.opaque"));
            assert_valid_http_routes(&d.http1.as_ref().expect("Detect.http1").routes);
            assert_valid_http_routes(&d.http2.as_ref().expect("Detect.http2").routes);
        }
        proxy_protocol::Kind::Opaque(o) => assert_valid_opaque(o),
        proxy_protocol::Kind::Http1(h) => assert_valid_http_routes(&h.routes),
        proxy_protocol::Kind::Http2(h) => assert_valid_http_routes(&h.routes),
        other => panic!("unexpected protocol {other:?}"),
    }
}

// === inbound ===

#[tokio::test]
async fn inbound_default_policy_shape_and_probe_route() {
    let server = PolicyServer::start(&[("web.yaml", WEB)], PolicySettings::default()).await;
    let mut client = server.inbound().await;

    let started = Instant::now();
    let mut stream = watch_port(&mut client, WORKLOAD, 8080)
        .await
        .expect("watch");
    let first = next(&mut stream).await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "first message after {:?}",
        started.elapsed()
    );
    let expected = all_unauthenticated_server(vec![
        default_inbound_route(),
        probe_route(&["/live", "/ready"]),
    ]);
    assert_eq!(first, expected);
    assert_valid_inbound(&first);
    assert_quiet(&mut stream, Duration::from_millis(200)).await;

    // GetPort and the legacy workload form give the same answer.
    let unary = client
        .get_port(PortSpec {
            workload: "default:web-a".into(),
            port: 8080,
        })
        .await
        .expect("GetPort")
        .into_inner();
    assert_eq!(unary, expected);

    // The admin port carries the proxy's own probes; a port without
    // probes has only the default route (§6.1 minimal answer).
    let mut admin = watch_port(&mut client, WORKLOAD, 4191)
        .await
        .expect("watch");
    assert_eq!(
        next(&mut admin).await,
        all_unauthenticated_server(vec![
            default_inbound_route(),
            probe_route(&["/live", "/ready"])
        ])
    );
    let mut plain = watch_port(&mut client, WORKLOAD, 9090)
        .await
        .expect("watch");
    assert_eq!(
        next(&mut plain).await,
        all_unauthenticated_server(vec![default_inbound_route()])
    );
    server.stop().await;
}

#[tokio::test]
async fn inbound_opaque_ports_and_bad_input() {
    let server = PolicyServer::start(&[("web.yaml", WEB)], PolicySettings::default()).await;
    let mut client = server.inbound().await;

    // 3306 is in the default opaque list.
    let mut stream = watch_port(&mut client, WORKLOAD, 3306)
        .await
        .expect("watch");
    let opaque = next(&mut stream).await;
    assert_eq!(
        opaque,
        inbound::Server {
            protocol: Some(inbound::ProxyProtocol {
                kind: Some(inbound::proxy_protocol::Kind::Opaque(
                    inbound::proxy_protocol::Opaque {}
                )),
            }),
            server_ips: vec![],
            authorizations: vec![authz(
                "all-unauthenticated",
                all_networks(),
                unauthenticated()
            )],
            labels: default_labels("all-unauthenticated"),
        }
    );
    assert_valid_inbound(&opaque);

    for (workload, port) in [
        ("web-a", 8080),
        ("", 8080),
        (WORKLOAD, 0),
        (WORKLOAD, 70000),
    ] {
        let status = watch_port(&mut client, workload, port)
            .await
            .expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{workload} {port}");
    }

    // A pod the index does not know gets the cluster default right away.
    let mut unknown = watch_port(&mut client, r#"{"ns":"default","pod":"nope"}"#, 8080)
        .await
        .expect("watch");
    assert_eq!(
        next(&mut unknown).await,
        all_unauthenticated_server(vec![default_inbound_route()])
    );
    server.stop().await;
}

#[tokio::test]
async fn inbound_updates_on_annotation_change() {
    let server = PolicyServer::start(&[("web.yaml", WEB)], PolicySettings::default()).await;
    let mut client = server.inbound().await;
    let mut stream = watch_port(&mut client, WORKLOAD, 8080)
        .await
        .expect("watch");
    let first = next(&mut stream).await;
    assert_eq!(first.labels["name"], "all-unauthenticated");

    let annotated = WEB.replace(
        "  labels: {app: web, linkerd.io/control-plane-ns: linkerd}",
        "  labels: {app: web, linkerd.io/control-plane-ns: linkerd}\n  annotations:\n    config.linkerd.io/default-inbound-policy: cluster-authenticated",
    );
    server.write("web.yaml", &annotated);
    let update = next(&mut stream).await;
    let cluster_nets = [
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([172, 16, 0, 0], 12),
        ([192, 168, 0, 0], 16),
    ]
    .into_iter()
    .map(|(octets, len)| {
        net(
            IpAddress {
                ip: Some(ip_address::Ip::Ipv4(u32::from_be_bytes(octets))),
            },
            len,
        )
    })
    .chain([net(
        IpAddress {
            ip: Some(ip_address::Ip::Ipv6(IPv6 {
                first: 0xfd00_0000_0000_0000,
                last: 0,
            })),
        },
        8,
    )])
    .collect();
    assert_eq!(
        update,
        detect_server(
            "cluster-authenticated",
            vec![authz("cluster-authenticated", cluster_nets, any_identity())],
            vec![default_inbound_route(), probe_route(&["/live", "/ready"])],
        )
    );
    assert_valid_inbound(&update);

    // Marking the port opaque switches the protocol.
    let opaque = annotated.replace(
        "cluster-authenticated",
        "deny\n    config.linkerd.io/opaque-ports: http",
    );
    server.write("web.yaml", &opaque);
    let update = next(&mut stream).await;
    assert!(matches!(
        update.protocol.and_then(|p| p.kind),
        Some(inbound::proxy_protocol::Kind::Opaque(_))
    ));
    assert!(
        update.authorizations.is_empty(),
        "deny has no authorizations"
    );
    assert_eq!(update.labels, default_labels("deny"));
    server.stop().await;
}

#[tokio::test]
async fn inbound_cluster_defaults_carry_cluster_networks() {
    let nets = "10.0.0.0/8,fd00::/8";
    let ten = net(
        IpAddress {
            ip: Some(ip_address::Ip::Ipv4(0x0a00_0000)),
        },
        8,
    );
    let fd = net(
        IpAddress {
            ip: Some(ip_address::Ip::Ipv6(IPv6 {
                first: 0xfd00_0000_0000_0000,
                last: 0,
            })),
        },
        8,
    );
    let cases = [
        (
            DefaultPolicy::ClusterUnauthenticated,
            vec![authz(
                "cluster-unauthenticated",
                vec![ten.clone(), fd.clone()],
                unauthenticated(),
            )],
        ),
        (
            DefaultPolicy::ClusterAuthenticated,
            vec![authz(
                "cluster-authenticated",
                vec![ten.clone(), fd.clone()],
                any_identity(),
            )],
        ),
        (
            DefaultPolicy::AllAuthenticated,
            vec![authz("all-authenticated", all_networks(), any_identity())],
        ),
        (
            DefaultPolicy::Audit,
            vec![authz("audit", all_networks(), unauthenticated())],
        ),
        (DefaultPolicy::Deny, vec![]),
    ];
    for (policy, authorizations) in cases {
        let server = PolicyServer::start(&[("web.yaml", WEB)], settings(policy, nets)).await;
        let mut client = server.inbound().await;
        let mut stream = watch_port(&mut client, WORKLOAD, 8080)
            .await
            .expect("watch");
        let got = next(&mut stream).await;
        assert_eq!(
            got,
            detect_server(
                policy.as_str(),
                authorizations,
                vec![default_inbound_route(), probe_route(&["/live", "/ready"])],
            ),
            "{policy}"
        );
        assert_valid_inbound(&got);
        server.stop().await;
    }

    // A require-identity port turns the allow policy authenticated-only.
    let web = WEB.replace(
        "  labels: {app: web, linkerd.io/control-plane-ns: linkerd}",
        "  labels: {app: web, linkerd.io/control-plane-ns: linkerd}\n  annotations: {config.linkerd.io/proxy-require-identity-inbound-ports: \"8080\"}",
    );
    let server = PolicyServer::start(
        &[("web.yaml", &web)],
        settings(DefaultPolicy::ClusterUnauthenticated, nets),
    )
    .await;
    let mut client = server.inbound().await;
    let mut stream = watch_port(&mut client, WORKLOAD, 8080)
        .await
        .expect("watch");
    assert_eq!(
        next(&mut stream).await.labels["name"],
        "cluster-authenticated"
    );
    server.stop().await;
}

// === outbound ===

#[tokio::test]
async fn outbound_service_shape_by_ip_and_authority() {
    let server = PolicyServer::start(&[("web.yaml", WEB)], PolicySettings::default()).await;
    let mut client = server.outbound().await;
    let expected = service_detect_policy(80);

    let started = Instant::now();
    let mut stream = watch(&mut client, addr_spec("10.96.0.10:80"))
        .await
        .expect("watch");
    let first = next(&mut stream).await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(first, expected);
    assert_valid_outbound(&first);
    assert_quiet(&mut stream, Duration::from_millis(200)).await;

    for authority in [
        "web.default.svc.cluster.local:80",
        "web.default.svc.cluster.local.:80",
        "web.default.svc",
    ] {
        let mut stream = watch(&mut client, authority_spec(authority))
            .await
            .expect(authority);
        assert_eq!(next(&mut stream).await, expected, "{authority}");
    }
    let unary = client
        .get(addr_spec("10.96.0.10:80"))
        .await
        .expect("Get")
        .into_inner();
    assert_eq!(unary, expected);

    // appProtocol: http fixes HTTP/1.
    let h1 = client
        .get(addr_spec("10.96.0.10:81"))
        .await
        .expect("Get")
        .into_inner();
    assert_valid_outbound(&h1);
    assert_eq!(
        h1.protocol.and_then(|p| p.kind),
        Some(proxy_protocol::Kind::Http1(proxy_protocol::Http1 {
            routes: vec![http_route("http", vec![prefix_all()], service_backend(81))],
            failure_accrual: None,
        }))
    );
    server.stop().await;
}

#[tokio::test]
async fn outbound_opaque_ports() {
    let web = WEB.replace(
        "metadata: {name: web, namespace: default}\nspec:",
        "metadata: {name: web, namespace: default, annotations: {config.linkerd.io/opaque-ports: \"80\"}}\nspec:",
    );
    let server = PolicyServer::start(&[("web.yaml", &web)], PolicySettings::default()).await;
    let mut client = server.outbound().await;
    let mut stream = watch(&mut client, addr_spec("10.96.0.10:80"))
        .await
        .expect("watch");
    let policy = next(&mut stream).await;
    assert_eq!(policy, service_opaque_policy(80));
    assert_valid_outbound(&policy);
    // The annotation replaces the default list: 3306 is not opaque here.
    let mysql = client
        .get(addr_spec("10.96.0.10:3306"))
        .await
        .expect("Get")
        .into_inner();
    assert_eq!(mysql, service_detect_policy(3306));
    server.stop().await;

    // Without the annotation the default opaque ports apply.
    let server = PolicyServer::start(&[("web.yaml", WEB)], PolicySettings::default()).await;
    let mut client = server.outbound().await;
    let mysql = client
        .get(addr_spec("10.96.0.10:3306"))
        .await
        .expect("Get")
        .into_inner();
    assert_eq!(mysql, service_opaque_policy(3306));
    server.stop().await;
}

#[tokio::test]
async fn outbound_not_found_fallback_and_undefined_port() {
    let server = PolicyServer::start(&[("web.yaml", WEB)], PolicySettings::default()).await;
    let mut client = server.outbound().await;

    // Pod IPs and unknown IPs in the cluster networks, unknown Services and
    // non-cluster names: NotFound (the proxy falls back to its profile).
    for spec in [
        addr_spec("10.1.0.11:8080"),
        addr_spec("10.9.9.9:80"),
        authority_spec("nope.default.svc.cluster.local:80"),
        authority_spec("example.com:443"),
    ] {
        let status = watch(&mut client, spec.clone())
            .await
            .expect_err("not found");
        assert_eq!(status.code(), Code::NotFound, "{spec:?}");
        let status = client.get(spec.clone()).await.expect_err("not found");
        assert_eq!(status.code(), Code::NotFound, "{spec:?}");
    }

    // Bad input: InvalidArgument.
    let no_target = TrafficSpec {
        source_workload: WORKLOAD.into(),
        target: None,
    };
    for spec in [no_target, addr_spec("10.96.0.10:0")] {
        let status = watch(&mut client, spec).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument);
    }

    // An IP outside the cluster networks: egress-fallback forwarding to it.
    let mut stream = watch(&mut client, addr_spec("8.8.8.8:443"))
        .await
        .expect("watch");
    let fallback = next(&mut stream).await;
    assert_valid_outbound(&fallback);
    let forward = outbound::Backend {
        metadata: default_meta("egress-fallback"),
        queue: Some(outbound::Queue {
            capacity: 100,
            failfast_timeout: Some(secs(3)),
        }),
        kind: Some(backend::Kind::Forward(
            linkerd2_proxy_api::destination::WeightedAddr {
                addr: Some(TcpAddress::from(
                    "8.8.8.8:443".parse::<SocketAddr>().expect("addr"),
                )),
                weight: 1,
                ..Default::default()
            },
        )),
    };
    let r = http_route(
        "egress-fallback",
        vec![HttpRouteMatch::default()],
        forward.clone(),
    );
    assert_eq!(
        fallback,
        OutboundPolicy {
            metadata: default_meta("egress-fallback"),
            protocol: Some(outbound::ProxyProtocol {
                kind: Some(proxy_protocol::Kind::Detect(proxy_protocol::Detect {
                    timeout: Some(secs(10)),
                    opaque: Some(proxy_protocol::Opaque {
                        routes: vec![opaque_route("egress-fallback", forward)],
                    }),
                    http1: Some(proxy_protocol::Http1 {
                        routes: vec![r.clone()],
                        failure_accrual: None,
                    }),
                    http2: Some(proxy_protocol::Http2 {
                        routes: vec![r],
                        failure_accrual: None,
                    }),
                })),
            }),
        }
    );

    // A Service cluster IP on a port it does not define: forbidden.
    let undefined = client
        .get(addr_spec("10.96.0.10:9999"))
        .await
        .expect("Get")
        .into_inner();
    assert_valid_outbound(&undefined);
    assert_eq!(undefined.metadata, service_resource(9999));
    let Some(proxy_protocol::Kind::Opaque(opaque)) = undefined.protocol.and_then(|p| p.kind) else {
        panic!("undefined port must be opaque");
    };
    assert_eq!(opaque.routes.len(), 1);
    assert_eq!(opaque.routes[0].metadata, default_meta("undefined-port"));
    assert!(matches!(
        opaque.routes[0].rules[0].filters[0].kind,
        Some(outbound::opaque_route::filter::Kind::Forbidden(_))
    ));
    server.stop().await;
}

#[tokio::test]
async fn outbound_watch_follows_the_service() {
    let server = PolicyServer::start(&[("web.yaml", WEB)], PolicySettings::default()).await;
    let mut client = server.outbound().await;
    let mut stream = watch(&mut client, addr_spec("10.96.0.10:80"))
        .await
        .expect("watch");
    assert_eq!(next(&mut stream).await, service_detect_policy(80));

    // An unrelated change sends nothing.
    server.write(
        "other.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: other}\n",
    );
    assert_quiet(&mut stream, Duration::from_millis(300)).await;

    // Annotating the port opaque updates the stream.
    let opaque = WEB.replace(
        "metadata: {name: web, namespace: default}\nspec:",
        "metadata: {name: web, namespace: default, annotations: {config.linkerd.io/opaque-ports: \"80\"}}\nspec:",
    );
    server.write("web.yaml", &opaque);
    assert_eq!(next(&mut stream).await, service_opaque_policy(80));

    // Deleting the Service ends the stream with NotFound.
    std::fs::remove_file(server.dir.path().join("web.yaml")).expect("remove");
    assert_eq!(next_err(&mut stream).await.code(), Code::NotFound);

    // It appears again: a new Watch by name finds it.
    server.write("web.yaml", WEB);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut by_name = loop {
        match watch(
            &mut client,
            authority_spec("web.default.svc.cluster.local:80"),
        )
        .await
        {
            Ok(stream) => break stream,
            Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    };
    assert_eq!(next(&mut by_name).await, service_detect_policy(80));
    server.stop().await;
}

// === shared port ===

#[tokio::test]
async fn destination_still_served_on_the_same_port() {
    let server = PolicyServer::start(&[("web.yaml", WEB)], PolicySettings::default()).await;
    let mut dst = linkerd2_proxy_api::destination::destination_client::DestinationClient::connect(
        format!("http://{}", server.serving.addr),
    )
    .await
    .expect("connect");
    let mut stream = get(&mut dst, "web.default.svc.cluster.local:80", "")
        .await
        .expect("Get");
    let update::Update::Add(set) = inner(next(&mut stream).await) else {
        panic!("expected add");
    };
    assert_eq!(set.addrs.len(), 1);

    // And the policy services next to it on the same connection's port.
    let mut inbound = server.inbound().await;
    let mut ports = watch_port(&mut inbound, WORKLOAD, 8080)
        .await
        .expect("watch");
    assert_eq!(next(&mut ports).await.labels["name"], "all-unauthenticated");
    server.stop().await;
}
