//! ServiceProfiles and TrafficSplits from the manifest directory, served on
//! `GetProfile` streams (real server, real tonic client).

mod common;

use std::time::{Duration, Instant};

use common::*;
use linkerd2_proxy_api::destination::{DestinationProfile, WeightedDst};
use linkerd2_proxy_api::meta::{metadata, Resource};

const WEB_FQN: &str = "web.default.svc.cluster.local";
const CLIENT_DEFAULT: &str = r#"{"ns":"default"}"#;

/// A ServiceProfile for `web` in `ns` with one route per name.
fn web_profile(ns: &str, routes: &[&str]) -> String {
    let mut s = format!(
        "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {{name: {WEB_FQN}, namespace: {ns}}}\nspec:\n  routes:\n"
    );
    for (i, name) in routes.iter().enumerate() {
        s.push_str(&format!(
            "  - name: {name}\n    condition: {{method: GET, pathRegex: /r{i}}}\n"
        ));
    }
    s
}

/// A TrafficSplit `web-split` of apex `web` in `default`.
fn web_split(api_version: &str, weights: &[(&str, &str)]) -> String {
    let mut s = format!(
        "apiVersion: split.smi-spec.io/{api_version}\nkind: TrafficSplit\nmetadata: {{name: web-split, namespace: default}}\nspec:\n  service: web\n  backends:\n"
    );
    for (svc, w) in weights {
        s.push_str(&format!("  - service: {svc}\n    weight: {w}\n"));
    }
    s
}

fn route_names(p: &DestinationProfile) -> Vec<String> {
    p.routes
        .iter()
        .map(|r| r.metrics_labels.get("route").cloned().unwrap_or_default())
        .collect()
}

fn overrides(p: &DestinationProfile) -> Vec<(String, u32)> {
    p.dst_overrides
        .iter()
        .map(
            |WeightedDst {
                 authority, weight, ..
             }| (authority.clone(), *weight),
        )
        .collect()
}

fn profile_ref(p: &DestinationProfile) -> Option<(String, String)> {
    match p.profile_ref.as_ref()?.kind.as_ref()? {
        metadata::Kind::Resource(Resource {
            group,
            kind,
            name,
            namespace,
            ..
        }) => {
            assert_eq!(
                (group.as_str(), kind.as_str()),
                ("linkerd.io", "ServiceProfile")
            );
            Some((namespace.clone(), name.clone()))
        }
        other => panic!("unexpected profile_ref {other:?}"),
    }
}

#[tokio::test]
async fn service_profile_appears_then_edits_arrive_and_invalid_edits_are_skipped() {
    let server = TestServer::start(&[("web.yaml", WEB)]).await;
    let mut client = server.client().await;
    let mut stream = get_profile(&mut client, "web.default.svc.cluster.local:80")
        .await
        .expect("profile");
    let first = next(&mut stream).await;
    assert_eq!(first.fully_qualified_name, WEB_FQN);
    assert!(first.routes.is_empty() && first.dst_overrides.is_empty());
    assert!(first.profile_ref.is_none());

    // The ServiceProfile appears: routes within 1 s (the target is 100 ms).
    let written = Instant::now();
    write(
        server.dir.path(),
        "sp.yaml",
        &web_profile("default", &["GET /r0", "GET /r1"]),
    );
    let p = next(&mut stream).await;
    let took = written.elapsed();
    eprintln!("ServiceProfile reached the stream {took:?} after the write");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(route_names(&p), ["GET /r0", "GET /r1"]);
    assert_eq!(
        profile_ref(&p),
        Some(("default".to_string(), WEB_FQN.to_string()))
    );
    assert!(p.parent_ref.is_some());
    assert!(!p.opaque_protocol);
    let budget = p.retry_budget.expect("budget");
    assert_eq!(budget.min_retries_per_second, 10);

    // A TrafficSplit appears, then its weights change: each arrives.
    write(
        server.dir.path(),
        "ts.yaml",
        &web_split("v1alpha2", &[("web-v1", "90"), ("web-v2", "10")]),
    );
    let p = next(&mut stream).await;
    assert_eq!(route_names(&p).len(), 2, "routes kept");
    assert_eq!(
        overrides(&p),
        [
            ("web-v1.default.svc.cluster.local:80".to_string(), 900_000),
            ("web-v2.default.svc.cluster.local:80".to_string(), 100_000),
        ]
    );
    let written = Instant::now();
    write(
        server.dir.path(),
        "ts.yaml",
        &web_split("v1alpha2", &[("web-v1", "20"), ("web-v2", "80")]),
    );
    let p = next(&mut stream).await;
    eprintln!(
        "TrafficSplit edit reached the stream after {:?}",
        written.elapsed()
    );
    assert!(written.elapsed() < Duration::from_secs(1));
    assert_eq!(
        overrides(&p),
        [
            ("web-v1.default.svc.cluster.local:80".to_string(), 200_000),
            ("web-v2.default.svc.cluster.local:80".to_string(), 800_000),
        ]
    );

    // Invalid edits: a bad regex in the profile, a fractional v1alpha2
    // weight. Both are skipped; the last valid versions keep serving.
    let mut bad = web_profile("default", &["GET /r0", "broken"]);
    bad = bad.replace("pathRegex: /r1", "pathRegex: \"/r(1\"");
    write(server.dir.path(), "sp.yaml", &bad);
    write(
        server.dir.path(),
        "ts.yaml",
        &web_split("v1alpha2", &[("web-v1", "0.5"), ("web-v2", "80")]),
    );
    assert_quiet(&mut stream, Duration::from_millis(300)).await;
    let mut fresh = get_profile(&mut client, "web.default.svc.cluster.local:80")
        .await
        .expect("profile");
    let kept = next(&mut fresh).await;
    assert_eq!(route_names(&kept), ["GET /r0", "GET /r1"]);
    assert_eq!(overrides(&kept)[1].1, 800_000);

    // A valid edit after the invalid one is picked up.
    write(
        server.dir.path(),
        "sp.yaml",
        &web_profile("default", &["GET /only"]),
    );
    let p = next(&mut stream).await;
    assert_eq!(route_names(&p), ["GET /only"]);

    // Deleting the files brings back the default profile.
    std::fs::remove_file(server.path("sp.yaml")).expect("rm");
    std::fs::remove_file(server.path("ts.yaml")).expect("rm");
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut p = next(&mut stream).await;
    while (!p.routes.is_empty() || !p.dst_overrides.is_empty()) && Instant::now() < deadline {
        p = next(&mut stream).await;
    }
    assert!(p.routes.is_empty() && p.dst_overrides.is_empty());
    assert!(p.profile_ref.is_none());
    server.stop().await;
}

#[tokio::test]
async fn invalid_profile_at_start_is_not_served() {
    let bad = web_profile("default", &["GET /r0"]).replace("method: GET", "method: \"GE T\"");
    let server = TestServer::start(&[("web.yaml", WEB), ("sp.yaml", &bad)]).await;
    let mut client = server.client().await;
    let mut stream = get_profile(&mut client, "web.default.svc.cluster.local:80")
        .await
        .expect("profile");
    let p = next(&mut stream).await;
    assert!(p.routes.is_empty());
    assert!(p.profile_ref.is_none());
    server.stop().await;
}

#[tokio::test]
async fn client_namespace_profile_takes_precedence() {
    let server = TestServer::start(&[
        ("web.yaml", WEB),
        ("owner.yaml", &web_profile("default", &["owner"])),
        ("client.yaml", &web_profile("client", &["client-override"])),
    ])
    .await;
    let mut client = server.client().await;
    let path = "web.default.svc.cluster.local:80";

    let mut from_client = get_profile_with(&mut client, path, r#"{"ns":"client"}"#)
        .await
        .expect("profile");
    let p = next(&mut from_client).await;
    assert_eq!(route_names(&p), ["client-override"]);
    assert_eq!(
        profile_ref(&p),
        Some(("client".to_string(), WEB_FQN.to_string()))
    );

    for token in [CLIENT_DEFAULT, r#"{"ns":"other"}"#, "ns:other", ""] {
        let mut s = get_profile_with(&mut client, path, token)
            .await
            .expect("profile");
        let p = next(&mut s).await;
        assert_eq!(route_names(&p), ["owner"], "token {token:?}");
        assert_eq!(
            profile_ref(&p),
            Some(("default".to_string(), WEB_FQN.to_string()))
        );
    }

    // By cluster IP too.
    let mut by_ip = get_profile_with(&mut client, "10.96.0.10:80", r#"{"ns":"client"}"#)
        .await
        .expect("profile");
    assert_eq!(route_names(&next(&mut by_ip).await), ["client-override"]);

    // The client's profile goes away: the owner's applies again.
    std::fs::remove_file(server.path("client.yaml")).expect("rm");
    let p = next(&mut from_client).await;
    assert_eq!(route_names(&p), ["owner"]);
    server.stop().await;
}

#[tokio::test]
async fn traffic_split_versions_translate_weights() {
    let server = TestServer::start(&[
        ("web.yaml", WEB),
        (
            "ts.yaml",
            &web_split("v1alpha1", &[("web-v1", "900m"), ("web-v2", "100m")]),
        ),
    ])
    .await;
    let mut client = server.client().await;
    let mut stream = get_profile(&mut client, "web.default.svc.cluster.local:80")
        .await
        .expect("profile");
    let p = next(&mut stream).await;
    assert_eq!(
        overrides(&p),
        [
            ("web-v1.default.svc.cluster.local:80".to_string(), 9000),
            ("web-v2.default.svc.cluster.local:80".to_string(), 1000),
        ]
    );
    // A split without a ServiceProfile: no routes, no profile_ref.
    assert!(p.routes.is_empty());
    assert!(p.profile_ref.is_none());
    assert_eq!(p.fully_qualified_name, WEB_FQN);

    // v1alpha2 integers (a zero weight is dropped).
    write(
        server.dir.path(),
        "ts.yaml",
        &web_split(
            "v1alpha2",
            &[("web-v1", "50"), ("web-v2", "50"), ("web-v3", "0")],
        ),
    );
    let p = next(&mut stream).await;
    assert_eq!(
        overrides(&p),
        [
            ("web-v1.default.svc.cluster.local:80".to_string(), 500_000),
            ("web-v2.default.svc.cluster.local:80".to_string(), 500_000),
        ]
    );

    // v1alpha4 as well; splits of another apex or namespace do not apply.
    let other_apex = web_split("v1alpha2", &[("x", "1")])
        .replace("name: web-split", "name: a-split")
        .replace("service: web\n", "service: api\n");
    let other_ns = web_split("v1alpha2", &[("y", "1")])
        .replace("name: web-split", "name: a-split")
        .replace("namespace: default", "namespace: other");
    write(
        server.dir.path(),
        "ts.yaml",
        &format!(
            "{}---\n{other_apex}---\n{other_ns}",
            web_split("v1alpha4", &[("web-v1", "1"), ("web-v2", "3")])
        ),
    );
    let p = next(&mut stream).await;
    assert_eq!(
        overrides(&p),
        [
            ("web-v1.default.svc.cluster.local:80".to_string(), 10_000),
            ("web-v2.default.svc.cluster.local:80".to_string(), 30_000),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn default_opaque_ports_apply_without_annotation() {
    let svc = |annotation: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: db, namespace: default{annotation}}}\nspec:\n  clusterIP: 10.96.0.30\n  ports: [{{name: mysql, port: 3306}}, {{name: http, port: 80}}]\n"
        )
    };
    let server = TestServer::start(&[("db.yaml", &svc(""))]).await;
    let mut client = server.client().await;
    let opaque = |p: &DestinationProfile| p.opaque_protocol;
    let mut mysql = get_profile(&mut client, "db.default.svc.cluster.local:3306")
        .await
        .expect("profile");
    assert!(
        opaque(&next(&mut mysql).await),
        "3306 is a default opaque port"
    );
    let mut http = get_profile(&mut client, "10.96.0.30:80")
        .await
        .expect("profile");
    assert!(!opaque(&next(&mut http).await));

    // With the annotation, only its ports are opaque.
    write(
        server.dir.path(),
        "db.yaml",
        &svc(", annotations: {config.linkerd.io/opaque-ports: \"80\"}"),
    );
    assert!(!opaque(&next(&mut mysql).await));
    assert!(opaque(&next(&mut http).await));
    server.stop().await;
}

#[tokio::test]
async fn linkerd_docs_examples_are_served() {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../profiles/tests/fixtures/linkerd-docs.yaml"
    ))
    .expect("fixture");
    let books = "apiVersion: v1\nkind: Service\nmetadata: {name: books, namespace: booksapp}\nspec:\n  ports: [{name: http, port: 7002}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: authors, namespace: booksapp}\nspec:\n  ports: [{name: http, port: 7001}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: webapp, namespace: booksapp}\nspec:\n  ports: [{name: http, port: 7000}]\n";
    let server = TestServer::start(&[("books.yaml", books), ("docs.yaml", &fixture)]).await;
    let mut client = server.client().await;
    let token = r#"{"ns":"booksapp"}"#;

    let mut s = get_profile_with(&mut client, "books.booksapp.svc.cluster.local:7002", token)
        .await
        .expect("profile");
    let p = next(&mut s).await;
    assert_eq!(
        overrides(&p),
        [
            ("books.booksapp.svc.cluster.local:7002".to_string(), 9000),
            (
                "error-injector.booksapp.svc.cluster.local:7002".to_string(),
                1000
            ),
        ]
    );

    let mut s = get_profile_with(&mut client, "webapp.booksapp.svc.cluster.local:7000", token)
        .await
        .expect("profile");
    let p = next(&mut s).await;
    assert_eq!(p.routes.len(), 6);
    assert_eq!(route_names(&p)[3], "GET /books/{id}");

    let mut s = get_profile_with(
        &mut client,
        "authors.booksapp.svc.cluster.local:7001",
        token,
    )
    .await
    .expect("profile");
    let p = next(&mut s).await;
    assert_eq!(
        route_names(&p),
        ["HEAD /authors/{id}.json", "authors-by-id"]
    );
    assert!(p.routes[0].is_retryable);
    assert_eq!(p.routes[1].timeout.map(|t| t.nanos), Some(300_000_000));
    server.stop().await;
}
