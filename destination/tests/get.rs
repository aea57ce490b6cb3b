//! `Destination.Get` over a real gRPC connection.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use linkerd2_proxy_api::destination::{
    protocol_hint, tls_identity, update::Update as U, NoEndpoints, WeightedAddrSet,
};

fn addrs(set: &WeightedAddrSet) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = set
        .addrs
        .iter()
        .map(|a| SocketAddr::try_from(a.addr.expect("addr")).expect("socket addr"))
        .collect();
    v.sort();
    v
}

fn sock(s: &str) -> SocketAddr {
    s.parse().expect("socket addr")
}

/// `web` with the endpoints given as (ip, ready) pairs, unmeshed.
fn web_slice(endpoints: &[(&str, bool)]) -> String {
    let mut text = String::from(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: api-1, namespace: default, labels: {kubernetes.io/service-name: api}}\naddressType: IPv4\nports: [{name: http, port: 9090}]\nendpoints:\n",
    );
    if endpoints.is_empty() {
        text = text.replace("endpoints:\n", "endpoints: []\n");
    }
    for (ip, ready) in endpoints {
        text.push_str(&format!(
            "- addresses: [{ip}]\n  conditions: {{ready: {ready}}}\n  zone: z1\n"
        ));
    }
    text
}

const API_SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: default}\nspec:\n  clusterIP: 10.96.0.20\n  ports: [{name: http, port: 80, targetPort: http}]\n";

#[tokio::test]
async fn known_meshed_service_gets_add_with_identity_and_hints() {
    let server = TestServer::start(&[("web.yaml", WEB)]).await;
    let mut client = server.client().await;
    let mut stream = get(&mut client, "web.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    let U::Add(set) = inner(next(&mut stream).await) else {
        panic!("expected add")
    };
    assert_eq!(addrs(&set), vec![sock("127.0.0.11:8080")]);
    assert_eq!(
        set.metric_labels.get("service").map(String::as_str),
        Some("web")
    );
    assert_eq!(
        set.metric_labels.get("namespace").map(String::as_str),
        Some("default")
    );
    let addr = &set.addrs[0];
    assert_eq!(addr.weight, 10000);
    let label = |k: &str| addr.metric_labels.get(k).map(String::as_str);
    assert_eq!(label("pod"), Some("web-a"));
    assert_eq!(label("serviceaccount"), Some("web"));
    assert_eq!(label("control_plane_ns"), Some("linkerd"));
    assert_eq!(label("zone"), Some(""));
    assert_eq!(label("zone_locality"), Some("unknown"));
    let id = "web.default.serviceaccount.identity.linkerd.cluster.local";
    let tls = addr.tls_identity.as_ref().expect("identity");
    assert_eq!(
        tls.strategy,
        Some(tls_identity::Strategy::DnsLikeIdentity(
            tls_identity::DnsLikeIdentity { name: id.into() }
        ))
    );
    assert_eq!(tls.server_name.as_ref().map(|s| s.name.as_str()), Some(id));
    let hint = addr.protocol_hint.as_ref().expect("hint");
    assert_eq!(
        hint.protocol,
        Some(protocol_hint::Protocol::H2(protocol_hint::H2 {}))
    );
    assert_eq!(hint.opaque_transport.map(|o| o.inbound_port), Some(4143));
    let keep_alive = addr.http2.and_then(|h| h.keep_alive).expect("keep alive");
    assert_eq!(keep_alive.interval.map(|d| d.seconds), Some(10));
    assert_eq!(keep_alive.timeout.map(|d| d.seconds), Some(3));
    assert!(keep_alive.while_idle);
    // Missing port means 80; trailing dot tolerated.
    let mut stream = get(&mut client, "web.default.svc.cluster.local.", "")
        .await
        .expect("get");
    assert!(matches!(inner(next(&mut stream).await), U::Add(_)));
    server.stop().await;
}

#[tokio::test]
async fn opaque_port_annotation_gives_opaque_hint() {
    let web = WEB.replace(
        "  labels: {app: web, linkerd.io/control-plane-ns: linkerd}",
        "  labels: {app: web, linkerd.io/control-plane-ns: linkerd}\n  annotations: {config.linkerd.io/opaque-ports: \"8000-8090\"}",
    );
    let server = TestServer::start(&[("web.yaml", &web)]).await;
    let mut client = server.client().await;
    let mut stream = get(&mut client, "web.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    let U::Add(set) = inner(next(&mut stream).await) else {
        panic!("expected add")
    };
    let hint = set.addrs[0].protocol_hint.as_ref().expect("hint");
    assert_eq!(
        hint.protocol,
        Some(protocol_hint::Protocol::Opaque(protocol_hint::Opaque {}))
    );
    assert_eq!(hint.opaque_transport.map(|o| o.inbound_port), Some(4143));
    server.stop().await;
}

#[tokio::test]
async fn short_names_resolve_like_cluster_dns() {
    let server = TestServer::start(&[("web.yaml", WEB)]).await;
    let mut client = server.client().await;
    for (path, token) in [
        ("web:80", r#"{"ns":"default","nodeName":"n","pod":"p"}"#),
        ("web:80", "ns:default"),
        ("web.default:80", ""),
        ("web.default.svc:80", ""),
        ("WEB.default.svc.cluster.local:80", ""),
    ] {
        let mut stream = get(&mut client, path, token).await.expect(path);
        let U::Add(set) = inner(next(&mut stream).await) else {
            panic!("expected add for {path}")
        };
        assert_eq!(addrs(&set), vec![sock("127.0.0.11:8080")], "{path}");
    }
    // Bare name in another namespace: the service is not there.
    let mut stream = get(&mut client, "web:80", r#"{"ns":"other"}"#)
        .await
        .expect("get");
    assert_eq!(
        inner(next(&mut stream).await),
        U::NoEndpoints(NoEndpoints { exists: false })
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_paths_are_rejected() {
    let server = TestServer::start(&[("web.yaml", WEB)]).await;
    let mut client = server.client().await;
    for path in [
        "10.96.0.10:80",
        "[::1]:80",
        "web:80",
        "web.default.svc.other.domain:80",
        "a.b.c.example.com:80",
        "web.default.svc.cluster.local:http",
    ] {
        let status = get(&mut client, path, "").await.expect_err(path);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_then_created_service() {
    let server = TestServer::start(&[("web.yaml", WEB)]).await;
    let mut client = server.client().await;
    let mut stream = get(&mut client, "api.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    assert_eq!(
        inner(next(&mut stream).await),
        U::NoEndpoints(NoEndpoints { exists: false })
    );
    write(
        server.dir.path(),
        "api.yaml",
        &format!("{API_SVC}---\n{}", web_slice(&[("10.1.0.1", true)])),
    );
    let U::Add(set) = inner(next(&mut stream).await) else {
        panic!("expected add")
    };
    assert_eq!(addrs(&set), vec![sock("10.1.0.1:9090")]);
    server.stop().await;
}

#[tokio::test]
async fn service_without_ready_endpoints() {
    let slice = web_slice(&[("10.1.0.1", false)]);
    let empty = "apiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: default}\nspec:\n  ports: [{port: 80}]\n";
    let server = TestServer::start(&[
        ("api.yaml", &format!("{API_SVC}---\n{slice}")),
        ("empty.yaml", empty),
    ])
    .await;
    let mut client = server.client().await;
    let mut stream = get(&mut client, "api.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    assert_eq!(
        inner(next(&mut stream).await),
        U::NoEndpoints(NoEndpoints { exists: true })
    );
    // A service with no slices at all also exists.
    let mut stream = get(&mut client, "empty.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    assert!(matches!(
        inner(next(&mut stream).await),
        U::NoEndpoints(NoEndpoints { exists: true })
    ));
    server.stop().await;
}

#[tokio::test]
async fn file_changes_stream_as_add_remove_and_no_endpoints() {
    let slice = |eps: &[(&str, bool)]| format!("{API_SVC}---\n{}", web_slice(eps));
    let server = TestServer::start(&[("api.yaml", &slice(&[("10.1.0.1", true)]))]).await;
    let mut client = server.client().await;
    let mut stream = get(&mut client, "api.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    let U::Add(set) = inner(next(&mut stream).await) else {
        panic!("expected add")
    };
    assert_eq!(addrs(&set), vec![sock("10.1.0.1:9090")]);
    assert_eq!(
        set.addrs[0].metric_labels.get("zone").map(String::as_str),
        Some("z1")
    );
    assert!(
        set.addrs[0].tls_identity.is_none(),
        "unmeshed endpoint has no identity"
    );

    // Add an endpoint by rewriting the file.
    let mut latencies = Vec::new();
    let started = Instant::now();
    write(
        server.dir.path(),
        "api.yaml",
        &slice(&[("10.1.0.1", true), ("10.1.0.2", true)]),
    );
    let update = inner(next(&mut stream).await);
    latencies.push(started.elapsed());
    let U::Add(set) = update else {
        panic!("expected add, got {update:?}")
    };
    assert_eq!(addrs(&set), vec![sock("10.1.0.2:9090")]);

    // Remove one endpoint.
    let started = Instant::now();
    write(server.dir.path(), "api.yaml", &slice(&[("10.1.0.2", true)]));
    let update = inner(next(&mut stream).await);
    latencies.push(started.elapsed());
    let U::Remove(removed) = update else {
        panic!("expected remove, got {update:?}")
    };
    assert_eq!(removed.addrs.len(), 1);
    assert_eq!(
        SocketAddr::try_from(removed.addrs[0]).expect("addr"),
        sock("10.1.0.1:9090")
    );

    // Mark the last one not ready.
    let started = Instant::now();
    write(
        server.dir.path(),
        "api.yaml",
        &slice(&[("10.1.0.2", false)]),
    );
    let update = inner(next(&mut stream).await);
    latencies.push(started.elapsed());
    assert_eq!(update, U::NoEndpoints(NoEndpoints { exists: true }));

    // Delete the file: the service is gone.
    let started = Instant::now();
    std::fs::remove_file(server.path("api.yaml")).expect("rm");
    let update = inner(next(&mut stream).await);
    latencies.push(started.elapsed());
    assert_eq!(update, U::NoEndpoints(NoEndpoints { exists: false }));

    eprintln!("file change -> stream latencies: {latencies:?}");
    for latency in latencies {
        assert!(latency < Duration::from_secs(1), "latency {latency:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn invalid_files_are_skipped_and_last_good_state_kept() {
    let broken_yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: default\n";
    let bad_field = "apiVersion: v1\nkind: Service\nmetadata: {name: bad2, namespace: default}\nspec:\n  ports: [{name: http, port: eighty}]\n";
    let server = TestServer::start(&[
        ("web.yaml", WEB),
        ("broken.yaml", broken_yaml),
        ("nested/bad-field.yml", bad_field),
        ("notes.txt", "not a manifest"),
    ])
    .await;
    let mut client = server.client().await;
    let mut stream = get(&mut client, "web.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    assert!(matches!(inner(next(&mut stream).await), U::Add(_)));
    let mut bad = get(&mut client, "bad2.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    assert_eq!(
        inner(next(&mut bad).await),
        U::NoEndpoints(NoEndpoints { exists: false })
    );

    // Corrupt web.yaml (half-written): nothing changes for open streams...
    write(server.dir.path(), "web.yaml", &WEB[..WEB.len() / 2]);
    write(server.dir.path(), "web.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {ports: [{port: [}\n");
    assert_quiet(&mut stream, Duration::from_millis(300)).await;
    // ...and new streams still see the last good state.
    let mut again = get(&mut client, "web.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    let U::Add(set) = inner(next(&mut again).await) else {
        panic!("expected add")
    };
    assert_eq!(addrs(&set), vec![sock("127.0.0.11:8080")]);

    // An invalid object keeps its last good version from the same file.
    let web_bad_slice = WEB.replace("addresses: [127.0.0.11]", "addresses: 5");
    write(server.dir.path(), "web.yaml", &web_bad_slice);
    assert_quiet(&mut stream, Duration::from_millis(300)).await;

    // Fixing the file resumes updates.
    write(
        server.dir.path(),
        "web.yaml",
        &WEB.replace("127.0.0.11]", "127.0.0.12]"),
    );
    let update = inner(next(&mut stream).await);
    assert!(matches!(update, U::Remove(_) | U::Add(_)), "{update:?}");
    server.stop().await;
}

#[tokio::test]
async fn statefulset_instance_name_selects_one_endpoint() {
    let slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: db-1, namespace: data, labels: {kubernetes.io/service-name: db}}\naddressType: IPv4\nports: [{port: 5432}]\nendpoints:\n- addresses: [10.2.0.1]\n  hostname: db-0\n- addresses: [10.2.0.2]\n  hostname: db-1\n";
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: data}\nspec:\n  clusterIP: None\n  ports: [{port: 5432}]\n";
    let server = TestServer::start(&[("db.yaml", &format!("{svc}---\n{slice}"))]).await;
    let mut client = server.client().await;
    let mut stream = get(&mut client, "db-1.db.data.svc.cluster.local:5432", "")
        .await
        .expect("get");
    let U::Add(set) = inner(next(&mut stream).await) else {
        panic!("expected add")
    };
    assert_eq!(addrs(&set), vec![sock("10.2.0.2:5432")]);
    let mut stream = get(&mut client, "db.data.svc.cluster.local:5432", "")
        .await
        .expect("get");
    let U::Add(set) = inner(next(&mut stream).await) else {
        panic!("expected add")
    };
    assert_eq!(addrs(&set).len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn server_stops_with_open_streams() {
    let server = TestServer::start(&[("web.yaml", WEB)]).await;
    let mut client = server.client().await;
    let mut stream = get(&mut client, "web.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    assert!(matches!(inner(next(&mut stream).await), U::Add(_)));
    // Dropping a client stream must not wedge anything.
    let mut dropped = get(&mut client, "web.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    let _ = next(&mut dropped).await;
    drop(dropped);
    server.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(2), stream.message()).await;
    assert!(
        matches!(end, Ok(Ok(None)) | Ok(Err(_))),
        "stream ended: {end:?}"
    );
}

/// An EndpointSlice with an address that is not an IP is invalid as a
/// whole, like any other invalid object: at start it is not served (no
/// endpoint set trimmed to the good addresses), and an edit that breaks it
/// keeps its last good version.
#[tokio::test]
async fn endpoint_slice_with_invalid_addresses_is_skipped_whole() {
    let bad = |ips: &str| WEB.replace("addresses: [127.0.0.11]", &format!("addresses: [{ips}]"));
    let server = TestServer::start(&[("web.yaml", &bad("127.0.0.11, not-an-ip"))]).await;
    let mut client = server.client().await;
    let mut stream = get(&mut client, "web.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    assert_eq!(
        inner(next(&mut stream).await),
        U::NoEndpoints(NoEndpoints { exists: true })
    );

    // Fixed: served.
    write(server.dir.path(), "web.yaml", WEB);
    let U::Add(set) = inner(next(&mut stream).await) else {
        panic!("expected add")
    };
    assert_eq!(addrs(&set), vec![sock("127.0.0.11:8080")]);

    // Broken again (a second, invalid address): the last good slice stays.
    write(server.dir.path(), "web.yaml", &bad("127.0.0.12, 999.1.1.1"));
    assert_quiet(&mut stream, Duration::from_millis(300)).await;
    let mut again = get(&mut client, "web.default.svc.cluster.local:80", "")
        .await
        .expect("get");
    let U::Add(set) = inner(next(&mut again).await) else {
        panic!("expected add")
    };
    assert_eq!(addrs(&set), vec![sock("127.0.0.11:8080")]);
    server.stop().await;
}

/// The manifest source names the object and the field of each bad address.
#[test]
fn invalid_endpoint_slice_addresses_are_named() {
    use wisp_destination::index::Kind;
    use wisp_destination::source::manifest::{parse_documents_with, Document};

    let text = WEB.replace(
        "addresses: [127.0.0.11]",
        "addresses: [127.0.0.11, \"999.1.1.1\"]",
    );
    let docs = parse_documents_with(&text, Some("web.yaml"), &Default::default()).expect("yaml");
    let Some(Document::Invalid { kind, key, error }) = docs.get(1) else {
        panic!("expected an invalid slice: {docs:?}")
    };
    assert_eq!(
        (*kind, key.to_string()),
        (Kind::EndpointSlice, "default/web-1".to_string())
    );
    assert_eq!(
        error.to_string(),
        r#"endpoints[0].addresses[1]: "999.1.1.1" is not an IP address"#
    );
}
