//! `Destination.GetProfile` over a real gRPC connection.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use linkerd2_proxy_api::destination::{protocol_hint, DestinationProfile};
use linkerd2_proxy_api::meta::{metadata, Resource};

fn assert_service_profile(profile: &DestinationProfile, opaque: bool) {
    assert_eq!(
        profile.fully_qualified_name,
        "web.default.svc.cluster.local"
    );
    assert!(profile.routes.is_empty());
    assert_eq!(profile.opaque_protocol, opaque);
    let budget = profile.retry_budget.as_ref().expect("budget");
    assert!((budget.retry_ratio - 0.2).abs() < 1e-6);
    assert_eq!(budget.min_retries_per_second, 10);
    assert_eq!(budget.ttl.map(|t| t.seconds), Some(10));
    assert_eq!(
        profile.parent_ref.as_ref().and_then(|m| m.kind.clone()),
        Some(metadata::Kind::Resource(Resource {
            group: "core".into(),
            kind: "Service".into(),
            name: "web".into(),
            namespace: "default".into(),
            section: String::new(),
            port: 80,
        }))
    );
    assert!(profile.endpoint.is_none());
}

#[tokio::test]
async fn profile_by_name_and_cluster_ip() {
    let web = WEB.replace(
        "metadata: {name: web, namespace: default}\nspec:",
        "metadata: {name: web, namespace: default, annotations: {config.linkerd.io/opaque-ports: \"80\"}}\nspec:",
    );
    let server = TestServer::start(&[("web.yaml", &web)]).await;
    let mut client = server.client().await;
    for path in [
        "web.default.svc.cluster.local:80",
        "web:80",
        "10.96.0.10:80",
    ] {
        let mut stream = get_profile(&mut client, path).await.expect(path);
        assert_service_profile(&next(&mut stream).await, true);
    }
    server.stop().await;
}

#[tokio::test]
async fn profile_by_pod_ip_sets_endpoint() {
    let server = TestServer::start(&[("web.yaml", WEB)]).await;
    let mut client = server.client().await;
    let mut stream = get_profile(&mut client, "127.0.0.11:8080")
        .await
        .expect("profile");
    let profile = next(&mut stream).await;
    assert!(profile.fully_qualified_name.is_empty());
    assert!(!profile.opaque_protocol);
    assert!(profile.retry_budget.is_some());
    let endpoint = profile.endpoint.expect("endpoint");
    assert_eq!(
        SocketAddr::try_from(endpoint.addr.expect("addr")).expect("addr"),
        "127.0.0.11:8080".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(
        endpoint.metric_labels.get("namespace").map(String::as_str),
        Some("default")
    );
    assert_eq!(
        endpoint.metric_labels.get("pod").map(String::as_str),
        Some("web-a")
    );
    let hint = endpoint.protocol_hint.expect("hint");
    assert_eq!(
        hint.protocol,
        Some(protocol_hint::Protocol::H2(protocol_hint::H2 {}))
    );
    assert_eq!(hint.opaque_transport.map(|o| o.inbound_port), Some(4143));
    assert!(endpoint.tls_identity.is_some());
    server.stop().await;
}

#[tokio::test]
async fn unknown_targets_get_empty_profile_and_updates_later() {
    let server = TestServer::start(&[("web.yaml", WEB)]).await;
    let mut client = server.client().await;
    for path in [
        "10.9.9.9:80",
        "web.default.svc.cluster.local:81",
        "nope.default.svc.cluster.local:80",
    ] {
        let mut stream = get_profile(&mut client, path).await.expect(path);
        assert_eq!(
            next(&mut stream).await,
            DestinationProfile::default(),
            "{path}"
        );
        assert_quiet(&mut stream, Duration::from_millis(100)).await;
    }
    let status = get_profile(&mut client, "a.b.c.example.com:80")
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // The service appears later: the open stream gets its profile.
    let mut stream = get_profile(&mut client, "api.default.svc.cluster.local:80")
        .await
        .expect("profile");
    assert_eq!(next(&mut stream).await, DestinationProfile::default());
    write(
        server.dir.path(),
        "api.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: default}\nspec:\n  ports: [{port: 80}]\n",
    );
    let profile = next(&mut stream).await;
    assert_eq!(
        profile.fully_qualified_name,
        "api.default.svc.cluster.local"
    );
    server.stop().await;
}
