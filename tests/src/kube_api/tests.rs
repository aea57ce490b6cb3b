//! The test API server driven by the real kube-rs client.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use super::KubeApi;

fn cm(name: &str, value: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default", "labels": {"app": "x"}},
           "data": {"k": value}})
}

#[tokio::test]
async fn list_get_create_and_paginate() {
    let api = KubeApi::start().await;
    for i in 0..7 {
        api.apply(cm(&format!("c{i}"), "v"));
    }
    let client = api.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let all = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 7);
    assert_eq!(
        all.metadata.resource_version.as_deref(),
        Some(api.resource_version().to_string().as_str())
    );
    let page = cms.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    let token = page.metadata.continue_.clone().unwrap();
    let page2 = cms
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(page2.items[0].metadata.name.as_deref(), Some("c3"));
    assert_eq!(page2.metadata.remaining_item_count, Some(1));
    let page3 = cms
        .list(
            &ListParams::default()
                .limit(3)
                .continue_token(page2.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    let names: Vec<_> = page3
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["c6"]);
    assert!(page3.metadata.continue_.is_none());
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=c5"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    assert_eq!(
        cms.list(&ListParams::default().labels("app=y"))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    let one = cms.get("c1").await.unwrap();
    assert!(one.metadata.uid.is_some() && one.metadata.creation_timestamp.is_some());
    let created = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(cm("new", "1")).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let err = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(cm("new", "1")).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 409),
        "409 AlreadyExists"
    );
    let err = cms.get("missing").await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404));
    // No token: 401.
    let mut config = api.config().await;
    config.auth_info = Default::default();
    let anon: Api<Pod> = Api::all(kube::Client::try_from(config).unwrap());
    let err = anon.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 401),
        "401 without a token"
    );
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
}

/// Watcher events for ConfigMaps in `default`, as (type, name, data.k).
async fn next_event(
    stream: &mut (impl futures_util::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>>
              + Unpin),
) -> watcher::Event<ConfigMap> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
            Ok(Some(Ok(e))) => return e,
            Ok(Some(Err(_))) => continue,
            Ok(None) => panic!("watch ended"),
            Err(_) => panic!("no watch event within 20s"),
        }
    }
}

#[tokio::test]
async fn watch_relists_after_410_and_survives_cuts_and_restarts() {
    let api = KubeApi::start().await;
    api.apply(cm("a", "1"));
    let client = api.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut stream = watcher(cms, watcher::Config::default()).boxed();
    // Initial list.
    assert!(matches!(
        next_event(&mut stream).await,
        watcher::Event::Init
    ));
    assert!(
        matches!(next_event(&mut stream).await, watcher::Event::InitApply(c) if c.metadata.name.as_deref() == Some("a"))
    );
    assert!(matches!(
        next_event(&mut stream).await,
        watcher::Event::InitDone
    ));
    // A live change (replayed from history if the watch starts after it).
    api.apply(cm("a", "2"));
    assert!(
        matches!(next_event(&mut stream).await, watcher::Event::Apply(c) if c.data.as_ref().unwrap()["k"] == "2")
    );
    // Bookmark, then a cut: the watcher resumes from the bookmark's version without relisting.
    api.bookmark();
    let lists_before = api
        .requests()
        .iter()
        .filter(|r| !r.is_watch() && r.path.ends_with("/configmaps"))
        .count();
    api.drop_watches();
    api.apply(cm("b", "1"));
    assert!(
        matches!(next_event(&mut stream).await, watcher::Event::Apply(c) if c.metadata.name.as_deref() == Some("b"))
    );
    let lists_after = api
        .requests()
        .iter()
        .filter(|r| !r.is_watch() && r.path.ends_with("/configmaps"))
        .count();
    assert_eq!(lists_before, lists_after, "a resumed watch does not relist");
    // Compaction while disconnected: the watch gets 410 and the watcher relists.
    api.stop().await;
    api.apply(cm("c", "1"));
    api.compact();
    api.listen().await;
    assert!(matches!(
        next_event(&mut stream).await,
        watcher::Event::Init
    ));
    let mut names = Vec::new();
    loop {
        match next_event(&mut stream).await {
            watcher::Event::InitApply(c) => names.push(c.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            e => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(names, ["a", "b", "c"]);
    let gone = api
        .requests()
        .iter()
        .any(|r| r.is_watch() && r.status == 200)
        && api
            .requests()
            .iter()
            .filter(|r| !r.is_watch() && r.path.ends_with("/configmaps"))
            .count()
            >= 2;
    assert!(gone, "relisted after 410");
    // Deletes arrive; failures are retried.
    api.fail_next(2, 500);
    api.drop_watches();
    api.delete("ConfigMap", "default", "a");
    assert!(
        matches!(next_event(&mut stream).await, watcher::Event::Delete(c) if c.metadata.name.as_deref() == Some("a"))
    );
    assert!(api.requests().iter().any(|r| r.status == 500));
}

#[tokio::test]
async fn raw_watch_protocol() {
    let api = KubeApi::start().await;
    api.apply(cm("a", "1"));
    let rv = api.resource_version();
    api.apply(cm("a", "2"));
    api.compact();
    let client = api.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    // Too old: an ERROR event with a 410 Expired Status.
    let mut s = cms
        .watch(&kube::api::WatchParams::default(), &rv.to_string())
        .await
        .unwrap()
        .boxed();
    match s.next().await.unwrap() {
        Ok(kube::api::WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // Current: bookmarks and timeouts.
    let now = api.resource_version().to_string();
    let mut s = cms
        .watch(&kube::api::WatchParams::default().timeout(2), &now)
        .await
        .unwrap()
        .boxed();
    api.wait_for_watches(1, Duration::from_secs(10)).await;
    api.bookmark();
    assert!(matches!(
        s.next().await.unwrap().unwrap(),
        kube::api::WatchEvent::Bookmark(_)
    ));
    api.delete("ConfigMap", "default", "a");
    match s.next().await.unwrap().unwrap() {
        kube::api::WatchEvent::Deleted(c) => assert_eq!(c.metadata.name.as_deref(), Some("a")),
        e => panic!("{e:?}"),
    }
    assert!(s.next().await.is_none(), "timeoutSeconds ends the stream");
}

#[tokio::test]
async fn discovery_and_reviews() {
    let api = KubeApi::start().await;
    let client = api.client().await;
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "ServiceProfile")
        .unwrap();
    assert_eq!(ar.api_version, "linkerd.io/v1alpha2");
    assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
    api.set_token_reviewer(|spec| {
        json!({"authenticated": spec["token"] == "good", "user": {"username": "system:serviceaccount:default:web"}})
    });
    let reviews: Api<k8s_openapi::api::authentication::v1::TokenReview> = Api::all(client.clone());
    let r = reviews
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "good"}})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.unwrap().authenticated, Some(true));
    // A CRD registers its kind.
    api.apply(
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "servers.policy.linkerd.io"},
        "spec": {"group": "policy.linkerd.io", "scope": "Namespaced",
                 "names": {"kind": "Server", "plural": "servers"},
                 "versions": [{"name": "v1beta3", "served": true, "storage": true}]}}),
    );
    api.apply(
        json!({"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
        "metadata": {"name": "s", "namespace": "default"}, "spec": {"port": 80}}),
    );
    assert_eq!(api.list("Server").len(), 1);
}

#[tokio::test]
async fn portforward_copies_bytes_and_reports_kubelet_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = KubeApi::start().await;
    api.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
        "status": {"phase": "Running", "podIP": "192.0.2.7"}}));
    // The "pod's localhost:8080": an echo server that upper-cases.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let up = buf[..n].to_ascii_uppercase();
                    if s.write_all(&up).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    api.forward_pod_port("default", "web", 8080, echo_addr);
    let pods: Api<Pod> = Api::namespaced(api.client().await, "default");

    let mut pf = pods.portforward("web", &[8080]).await.unwrap();
    let mut stream = pf.take_stream(8080).unwrap();
    stream.write_all(b"hello").await.unwrap();
    let mut got = [0u8; 5];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"HELLO");
    drop(stream);
    tokio::time::timeout(Duration::from_secs(10), pf.join())
        .await
        .expect("the session closes")
        .unwrap();

    // A port nothing listens on: the kubelet's message on the error channel.
    let mut pf = pods.portforward("web", &[9999]).await.unwrap();
    let err = pf.take_error(9999).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), err)
        .await
        .expect("an error message")
        .expect("a message, not a closed channel");
    assert!(
        msg.starts_with("error forwarding port 9999 to pod default/web"),
        "{msg}"
    );

    // An unknown pod: 404 from the API server, no upgrade.
    let e = pods.portforward("nope", &[8080]).await.err().expect("404");
    match e {
        kube::Error::Api(s) => assert_eq!(s.code, 404),
        other => panic!("expected a 404 Status, got {other}"),
    }
    let logged = api.requests();
    assert!(logged
        .iter()
        .any(|r| r.path.ends_with("/pods/web/portforward") && r.status == 101));
}
